/*
 * request.c - JSON request bodies to validated mlxr_api_req (see request.h for the checks).
 */
#include "server/request.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSGS 4096

bool mlxr_api_error_set(mlxr_api_error *e, int status, const char *type, const char *code,
                        const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = type ? type : "invalid_request_error";
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return false;
}

#define BAD(param, ...) mlxr_api_error_set(e, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

/* Parse `body` as one JSON object. */
static json_t *load_object(const char *body, size_t len, mlxr_api_error *e) {
    json_error_t jerr;
    if (len == 0) {
        BAD(NULL, "the request body is empty; expected a JSON object");
        return NULL;
    }
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        BAD(NULL, "the request body is not valid JSON: %s (line %d, column %d)", jerr.text,
            jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        BAD(NULL, "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* A present, non-null member, or NULL. */
static json_t *member(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return v && !json_is_null(v) ? v : NULL;
}

/* Copy a JSON string, refusing embedded NULs. */
static bool dup_string(json_t *v, const char *param, char **out, mlxr_api_error *e) {
    if (!json_is_string(v)) return BAD(param, "'%s' must be a string", param);
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (memchr(s, '\0', n)) return BAD(param, "'%s' contains a NUL character", param);
    *out = malloc(n + 1);
    if (!*out) return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    memcpy(*out, s, n + 1);
    return true;
}

static bool opt_string(json_t *o, const char *key, char **out, mlxr_api_error *e) {
    json_t *v = member(o, key);
    return !v || dup_string(v, key, out, e);
}

static bool opt_bool(json_t *o, const char *key, bool *out, mlxr_api_error *e) {
    json_t *v = member(o, key);
    if (!v) return true;
    if (!json_is_boolean(v)) return BAD(key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return true;
}

static bool opt_number(json_t *o, const char *key, double lo, double hi, float *out, bool *set,
                       mlxr_api_error *e) {
    json_t *v = member(o, key);
    if (!v) return true;
    if (!json_is_number(v)) return BAD(key, "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return BAD(key, "'%s' must be between %g and %g, got %g", key, lo, hi, d);
    *out = (float)d;
    if (set) *set = true;
    return true;
}

/* An integer in [lo, hi]; a real with an integral value (1.0) is accepted too. */
static bool opt_int(json_t *o, const char *key, long long lo, long long hi, long long *out,
                    bool *set, mlxr_api_error *e) {
    json_t *v = member(o, key);
    if (!v) return true;
    long long x;
    if (json_is_integer(v)) x = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
             fabs(json_real_value(v)) < 9e18)
        x = (long long)json_real_value(v);
    else return BAD(key, "'%s' must be an integer", key);
    if (x < lo || x > hi) return BAD(key, "'%s' must be between %lld and %lld, got %lld", key, lo,
                                     hi, x);
    *out = x;
    if (set) *set = true;
    return true;
}

/* "stop": a string or an array of at most max strings, none empty. */
static bool parse_stops(json_t *v, size_t max, mlxr_api_req *r, mlxr_api_error *e) {
    if (!v) return true;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !json_is_array(v))
        return BAD("stop", "'stop' must be a string or an array of strings");
    if (n > max) return BAD("stop", "'stop' holds %zu strings; at most %zu are allowed", n, max);
    if (n == 0) return true;
    r->stops = calloc(n, sizeof *r->stops);
    if (!r->stops) return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        if (!dup_string(s, "stop", &r->stops[i], e)) return false;
        r->n_stops = i + 1;
        if (!r->stops[i][0]) return BAD("stop", "stop strings must not be empty");
    }
    r->params.stop = (const char *const *)r->stops;
    r->params.n_stop = r->n_stops;
    return true;
}

/* The sampling fields shared by OpenAI (top level) and Ollama (inside "options"). */
static bool parse_sampling(json_t *o, mlxr_api_req *r, mlxr_api_error *e) {
    mlxr_gen_params *p = &r->params;
    long long ll;
    bool set = false;
    if (!opt_number(o, "temperature", 0, 2, &p->temperature, NULL, e) ||
        !opt_number(o, "top_p", 0, 1, &p->top_p, NULL, e) ||
        !opt_number(o, "min_p", 0, 1, &p->min_p, NULL, e) ||
        !opt_number(o, "presence_penalty", -2, 2, &p->presence_penalty, NULL, e) ||
        !opt_number(o, "frequency_penalty", -2, 2, &p->frequency_penalty, NULL, e) ||
        !opt_number(o, "repeat_penalty", 0.001, 1000, &p->repeat_penalty, NULL, e))
        return false;
    if (!opt_int(o, "top_k", 0, 1 << 30, &ll, &set, e)) return false;
    if (set) p->top_k = (int32_t)ll;
    set = false;
    if (!opt_int(o, "repeat_last_n", 0, 1 << 20, &ll, &set, e)) return false;
    if (set) p->repeat_last_n = (int32_t)ll;
    set = false;
    /* any 64-bit integer: negative seeds wrap, as clients send them */
    if (!opt_int(o, "seed", INT64_MIN, INT64_MAX, &ll, &set, e)) return false;
    if (set) {
        p->seed = (uint64_t)ll;
        r->seed_set = true;
    }
    /* which of them were given (MLXR_OPT_* bits, in this order): a model's Modelfile
     * parameters are defaults for the others */
    static const char *const keys[] = {"temperature", "top_p", "min_p", "presence_penalty",
                                       "frequency_penalty", "repeat_penalty", "top_k",
                                       "repeat_last_n"};
    for (unsigned i = 0; i < sizeof keys / sizeof *keys; i++)
        if (member(o, keys[i])) r->opts_set |= 1u << i;
    return true;
}

/* OpenAI logit_bias: {"token id": bias, ...}, ids as decimal strings, biases -100..100. */
static bool parse_logit_bias(json_t *o, mlxr_api_req *r, mlxr_api_error *e) {
    json_t *lb = member(o, "logit_bias");
    if (!lb) return true;
    if (!json_is_object(lb))
        return BAD("logit_bias", "'logit_bias' must be an object mapping token ids to numbers");
    const size_t n = json_object_size(lb);
    if (n > 1024) return BAD("logit_bias", "'logit_bias' holds %zu entries; at most 1024", n);
    if (n == 0) return true;
    r->bias = calloc(n, sizeof *r->bias);
    if (!r->bias) return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(lb, key, v) {
        const size_t kl = strlen(key);
        const long long id = kl >= 1 && kl <= 10 && strspn(key, "0123456789") == kl
                                 ? strtoll(key, NULL, 10) : -1;
        if (id < 0 || id > INT32_MAX)
            return BAD("logit_bias", "'logit_bias' key '%.32s' is not a token id", key);
        if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
            json_number_value(v) < -100 || json_number_value(v) > 100)
            return BAD("logit_bias", "'logit_bias' value for token %lld must be a number between "
                       "-100 and 100", id);
        r->bias[r->n_bias].token = (int32_t)id;
        r->bias[r->n_bias].bias = (float)json_number_value(v);
        r->n_bias++;
    }
    r->params.logit_bias = r->bias;
    r->params.n_logit_bias = r->n_bias;
    return true;
}

/* logprobs: chat {logprobs: bool, top_logprobs: 0..20}; completions {logprobs: 0..5}. */
static bool parse_logprobs(json_t *o, mlxr_api_req *r, mlxr_api_error *e) {
    json_t *lp = member(o, "logprobs");
    long long ll = 0;
    bool set = false;
    if (r->kind == MLXR_API_CHAT) {
        if (!opt_bool(o, "logprobs", &r->params.logprobs, e) ||
            !opt_int(o, "top_logprobs", 0, 20, &ll, &set, e))
            return false;
        if (set && !r->params.logprobs)
            return BAD("top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
        r->params.top_logprobs = (int32_t)ll;
        return true;
    }
    if (!lp || json_is_false(lp)) return true;
    if (!opt_int(o, "logprobs", 0, 5, &ll, &set, e)) return false;
    r->params.logprobs = true;
    r->params.top_logprobs = (int32_t)ll;
    return true;
}

/* OpenAI response_format: {"type": "text" | "json_object" | "json_schema", ...}. */
static bool parse_response_format(json_t *o, mlxr_api_req *r, mlxr_api_error *e) {
    json_t *rf = member(o, "response_format");
    if (!rf) return true;
    json_t *t = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
    if (!json_is_string(t))
        return BAD("response_format", "'response_format' must be an object with a 'type'");
    const char *type = json_string_value(t);
    if (!strcmp(type, "json_object") || !strcmp(type, "json_schema")) r->params.json_mode = true;
    else if (strcmp(type, "text") != 0)
        return BAD("response_format", "'response_format.type' must be 'text', 'json_object' or "
                   "'json_schema'");
    return true;
}

/* Ollama format: "json", "" (none) or a JSON schema object (constrains to JSON only). */
static bool parse_format(json_t *o, mlxr_api_req *r, mlxr_api_error *e) {
    json_t *f = member(o, "format");
    if (!f) return true;
    if (json_is_object(f) || (json_is_string(f) && !strcmp(json_string_value(f), "json")))
        r->params.json_mode = true;
    else if (!json_is_string(f) || json_string_value(f)[0])
        return BAD("format", "'format' must be \"json\" or a JSON schema object");
    return true;
}

/* Content of a chat message: a string, or an array of {"type":"text","text":...} parts. */
static bool parse_content(json_t *c, size_t i, char **out, mlxr_api_error *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!c) {
        *out = calloc(1, 1);
        return *out ? true : mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (json_is_string(c)) return dup_string(c, param, out, e);
    if (!json_is_array(c)) return BAD(param, "'%s' must be a string or an array of parts", param);
    size_t total = 0, n = json_array_size(c);
    for (size_t k = 0; k < n; k++) {
        json_t *part = json_array_get(c, k), *type = json_object_get(part, "type");
        json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type))
            return BAD(param, "'%s' parts must be objects with a 'type'", param);
        if (strcmp(json_string_value(type), "text") != 0)
            return BAD(param, "content part type '%s' is not supported (only 'text')",
                       json_string_value(type));
        if (!json_is_string(text)) return BAD(param, "a text part needs a string 'text'");
        total += json_string_length(text);
    }
    char *s = malloc(total + 1);
    if (!s) return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    size_t at = 0;
    for (size_t k = 0; k < n; k++) {
        json_t *text = json_object_get(json_array_get(c, k), "text");
        size_t l = json_string_length(text);
        memcpy(s + at, json_string_value(text), l);
        at += l;
    }
    s[at] = '\0';
    if (strlen(s) != at) {
        free(s);
        return BAD(param, "'%s' contains a NUL character", param);
    }
    *out = s;
    return true;
}

static bool parse_messages(json_t *o, mlxr_api_req *r, mlxr_api_error *e) {
    json_t *m = member(o, "messages");
    if (!m) return BAD("messages", "'messages' is required");
    if (!json_is_array(m)) return BAD("messages", "'messages' must be an array");
    size_t n = json_array_size(m);
    if (n == 0 && r->kind == MLXR_API_CHAT) return BAD("messages", "'messages' must not be empty");
    if (n > MAX_MSGS) return BAD("messages", "at most %d messages are allowed", MAX_MSGS);
    r->msgs = calloc(n ? n : 1, sizeof *r->msgs);
    if (!r->msgs) return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    static const char *const roles[] = {"system", "user", "assistant", "tool", "developer"};
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(m, i), *role;
        char param[64];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(msg)) return BAD(param, "'%s' must be an object", param);
        role = json_object_get(msg, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role)) return BAD(param, "'%s' must be a string", param);
        bool known = false;
        for (size_t k = 0; k < sizeof roles / sizeof *roles; k++)
            known |= !strcmp(json_string_value(role), roles[k]);
        if (!known)
            return BAD(param, "unknown role '%s' (expected system, user, assistant, tool)",
                       json_string_value(role));
        if (!dup_string(role, param, &r->msgs[i].role, e)) return false;
        r->n_msgs = i + 1;
        if (!parse_content(member(msg, "content"), i, &r->msgs[i].content, e)) return false;
    }
    /* tools: passed to the chat template as they are (templates that know tools render them) */
    json_t *tools = member(o, "tools");
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools)) return BAD("tools", "'tools' must be an array");
        if (json_array_size(tools) > 0 &&
            !(r->tools_json = json_dumps(tools, JSON_COMPACT | JSON_ENSURE_ASCII)))
            return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    return true;
}

static bool parse_openai(json_t *o, mlxr_api_req *r, mlxr_api_error *e) {
    long long ll;
    bool set = false;
    if (!opt_string(o, "model", &r->model, e) || !opt_bool(o, "stream", &r->stream, e) ||
        !parse_sampling(o, r, e))
        return false;
    if (!opt_int(o, "n", 1, 1, &ll, NULL, e))
        return mlxr_api_error_set(e, 400, "invalid_request_error", NULL, "n",
                                  "only n=1 is supported");
    json_t *so = member(o, "stream_options");
    if (so && !json_is_object(so)) return BAD("stream_options", "'stream_options' must be an object");
    if (so && !opt_bool(so, "include_usage", &r->include_usage, e)) return false;
    const char *mt = member(o, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (!opt_int(o, mt, 1, 1 << 24, &ll, &set, e)) return false;
    if (set) {
        r->params.max_tokens = (int32_t)ll;
        r->max_tokens_set = true;
    }
    if (!parse_logit_bias(o, r, e) || !parse_logprobs(o, r, e) || !parse_response_format(o, r, e))
        return false;
    if (!parse_stops(member(o, "stop"), 4, r, e)) return false;
    if (r->kind == MLXR_API_CHAT) return parse_messages(o, r, e);
    json_t *p = member(o, "prompt");
    if (!p) return BAD("prompt", "'prompt' is required");
    if (json_is_array(p)) {
        if (json_array_size(p) != 1 || !json_is_string(json_array_get(p, 0)))
            return BAD("prompt", "'prompt' must be a string or an array of exactly one string");
        p = json_array_get(p, 0);
    }
    return dup_string(p, "prompt", &r->prompt, e);
}

bool mlxr_api_parse_duration(const char *s, int64_t *out_s) {
    /* Go's time.ParseDuration subset Ollama clients send: "-1", "0", "300", "5m", "1h30m",
     * "10s", "1.5h", "500ms" (rounded up to a second); a plain number is seconds */
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v)) return false; /* "inf", "nan", 1e999 */
    if (!*end) {
        *out_s = v < 0 ? -1 : (int64_t)((v > 1e12 ? 1e12 : v) + 0.999);
        return true;
    }
    double total = 0;
    bool neg = v < 0;
    for (;;) {
        double unit;
        if (!strncmp(end, "ms", 2)) unit = 1e-3, end += 2;
        else if (*end == 'h') unit = 3600, end++;
        else if (*end == 'm') unit = 60, end++;
        else if (*end == 's') unit = 1, end++;
        else return false;
        total += (v < 0 ? -v : v) * unit;
        if (!*end) break;
        const char *at = end;
        v = strtod(at, &end);
        if (end == at || v < 0 || !isfinite(v)) return false;
    }
    if (total > 1e12) total = 1e12;
    *out_s = neg ? -1 : (int64_t)(total + 0.999);
    return true;
}

/* Ollama's keep_alive: a duration string or a number of seconds; negative = forever. */
static bool parse_keep_alive(json_t *o, mlxr_api_req *r, mlxr_api_error *e) {
    json_t *k = member(o, "keep_alive");
    if (!k || json_is_null(k)) return true;
    if (json_is_number(k)) {
        double v = json_number_value(k);
        r->keep_alive_s = v < 0 ? -1 : v > 1e12 ? (int64_t)1e12 : (int64_t)(v + 0.999);
        return true;
    }
    if (json_is_string(k) && mlxr_api_parse_duration(json_string_value(k), &r->keep_alive_s))
        return true;
    return BAD("keep_alive", "'keep_alive' must be a number of seconds or a duration such as "
               "\"5m\" (negative: keep loaded)");
}

static bool parse_ollama(json_t *o, mlxr_api_req *r, mlxr_api_error *e) {
    r->stream = true; /* Ollama streams unless told not to */
    long long top = 0;
    bool top_set = false;
    if (!opt_string(o, "model", &r->model, e) || !opt_bool(o, "stream", &r->stream, e) ||
        !parse_keep_alive(o, r, e) || !parse_format(o, r, e) ||
        !opt_bool(o, "logprobs", &r->params.logprobs, e) ||
        !opt_int(o, "top_logprobs", 0, 20, &top, &top_set, e))
        return false;
    r->params.top_logprobs = (int32_t)top;
    if (top > 0) r->params.logprobs = true; /* alternatives imply the chosen token's too */
    json_t *opt = member(o, "options");
    if (opt && !json_is_object(opt)) return BAD("options", "'options' must be an object");
    if (opt) {
        long long ll;
        bool set = false;
        if (!parse_sampling(opt, r, e)) return false;
        /* -1: until the context is full (Ollama's default); -2: fill the context */
        if (!opt_int(opt, "num_predict", -2, 1 << 24, &ll, &set, e)) return false;
        if (set) r->opts_set |= MLXR_OPT_NUM_PREDICT;
        if (set && ll > 0) {
            r->params.max_tokens = (int32_t)ll;
            r->max_tokens_set = true;
        } else if (set && ll == 0) {
            return BAD("num_predict", "'num_predict' must be positive, -1 or -2");
        }
        set = false;
        if (!opt_int(opt, "num_ctx", 1, 1 << 24, &ll, &set, e)) return false;
        if (set) r->num_ctx = (int32_t)ll;
        json_t *st = member(opt, "stop");
        if (st && !json_is_array(st) && !json_is_string(st))
            return BAD("stop", "'options.stop' must be an array of strings");
        if (!parse_stops(st, 16, r, e)) return false;
    }
    if (r->kind == MLXR_API_OLLAMA_CHAT) return parse_messages(o, r, e);
    if (!opt_string(o, "prompt", &r->prompt, e) || !opt_string(o, "system", &r->system, e) ||
        !opt_bool(o, "raw", &r->raw, e))
        return false;
    json_t *img = member(o, "images");
    if (img && (!json_is_array(img) || json_array_size(img) > 0))
        return BAD("images", "images are not supported by this server");
    return true;
}

bool mlxr_api_parse(mlxr_api_kind kind, const char *body, size_t len, mlxr_api_req *out,
                    mlxr_api_error *e) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->keep_alive_s = -2;
    out->params = mlxr_gen_default_params();
    json_t *o = load_object(body, len, e);
    if (!o) return false;
    bool ok = kind == MLXR_API_COMPLETION || kind == MLXR_API_CHAT ? parse_openai(o, out, e)
                                                                   : parse_ollama(o, out, e);
    json_decref(o);
    if (!ok) {
        mlxr_api_req_free(out);
        out->kind = kind;
    }
    return ok;
}

void mlxr_api_req_free(mlxr_api_req *r) {
    if (!r) return;
    free(r->model);
    free(r->prompt);
    free(r->system);
    for (size_t i = 0; i < r->n_msgs; i++) {
        free(r->msgs[i].role);
        free(r->msgs[i].content);
    }
    free(r->msgs);
    free(r->tools_json);
    free(r->bias);
    for (size_t i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->stops);
    memset(r, 0, sizeof *r);
}

bool mlxr_api_parse_tokenize(const char *body, size_t len, mlxr_api_tokenize *out,
                             mlxr_api_error *e) {
    memset(out, 0, sizeof *out);
    out->add_special = true;
    json_t *o = load_object(body, len, e);
    if (!o) return false;
    json_t *c = member(o, "content");
    bool ok = opt_string(o, "model", &out->model, e) &&
              opt_bool(o, "add_special", &out->add_special, e) &&
              opt_bool(o, "parse_special", &out->parse_special, e);
    if (ok && !json_is_string(c)) ok = BAD("content", "'content' must be a string");
    if (ok) {
        /* tokenizing takes any bytes, NUL included, so keep the length */
        out->content_len = json_string_length(c);
        out->content = malloc(out->content_len + 1);
        if (!out->content) ok = mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        else memcpy(out->content, json_string_value(c), out->content_len + 1);
    }
    json_decref(o);
    if (!ok) mlxr_api_tokenize_free(out);
    return ok;
}

void mlxr_api_tokenize_free(mlxr_api_tokenize *t) {
    free(t->model);
    free(t->content);
    memset(t, 0, sizeof *t);
}

bool mlxr_api_parse_detokenize(const char *body, size_t len, mlxr_api_detokenize *out,
                               mlxr_api_error *e) {
    memset(out, 0, sizeof *out);
    json_t *o = load_object(body, len, e);
    if (!o) return false;
    json_t *t = member(o, "tokens");
    bool ok = opt_string(o, "model", &out->model, e);
    if (ok && !json_is_array(t)) ok = BAD("tokens", "'tokens' must be an array of integers");
    if (ok) {
        size_t n = json_array_size(t);
        out->tokens = malloc((n ? n : 1) * sizeof *out->tokens);
        if (!out->tokens) ok = mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        for (size_t i = 0; ok && i < n; i++) {
            json_t *v = json_array_get(t, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > INT32_MAX)
                ok = BAD("tokens", "tokens[%zu] must be a non-negative integer", i);
            else out->tokens[out->n_tokens++] = (int32_t)json_integer_value(v);
        }
    }
    json_decref(o);
    if (!ok) mlxr_api_detokenize_free(out);
    return ok;
}

void mlxr_api_detokenize_free(mlxr_api_detokenize *t) {
    free(t->model);
    free(t->tokens);
    memset(t, 0, sizeof *t);
}

bool mlxr_api_parse_model_only(const char *body, size_t len, char **model, mlxr_api_error *e) {
    *model = NULL;
    json_t *o = load_object(body, len, e);
    if (!o) return false;
    bool ok = opt_string(o, "model", model, e);
    if (ok && !*model) ok = opt_string(o, "name", model, e);
    json_decref(o);
    return ok;
}
