/*
 * embed_request.c - the embedding endpoints' body parser and base64 encoder (embed.h): bytes in,
 * a validated mlxr_embed_req or a 400 API error out. No sockets and no model, so the unit test
 * (tests/server/test_embed_request.c) and the fuzzer (fuzz/fuzz_embed_json.c) run it alone.
 *
 * Checks: the body is one JSON object (duplicate keys refused); "model" a string; OpenAI "input"
 * present and a non-empty string, a non-empty array of non-empty strings, of token ids (integers
 * 0..INT32_MAX, range-checked against the model later) or of non-empty arrays of them, never
 * mixed, at most MAX_INPUTS; "encoding_format" float or base64; "dimensions" refused. Ollama
 * "input" a string or an array of strings (empty: nothing to embed), "truncate" a boolean,
 * "options" an object whose num_ctx (if any) is 1..2^20, "keep_alive" seconds or a duration;
 * legacy "prompt" a string. Strings hold no NUL. Unknown fields are ignored.
 */
#include "server/embed.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUTS 2048

#define BAD(param, ...)                                                                            \
    mlxr_api_error_set(e, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

void mlxr_embed_req_free(mlxr_embed_req *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_in; i++) {
        free(r->in[i].text);
        free(r->in[i].ids);
    }
    free(r->in);
    free(r->model);
    memset(r, 0, sizeof *r);
}

static bool add_text(mlxr_embed_req *r, const json_t *s, bool allow_empty, mlxr_api_error *e) {
    const char *param = r->kind == MLXR_EMBED_OLLAMA_LEGACY ? "prompt" : "input";
    if (!json_is_string(s))
        return BAD(param, "'%s' must be a string or an array of strings%s", param,
                   r->kind == MLXR_EMBED_OPENAI ? " or token ids" : "");
    size_t len = json_string_length(s);
    const char *v = json_string_value(s);
    if (len == 0 && !allow_empty) return BAD(param, "'%s' must not contain an empty string", param);
    if (memchr(v, 0, len)) return BAD(param, "'%s' must not contain NUL characters", param);
    mlxr_embed_input *in = &r->in[r->n_in];
    if (!(in->text = malloc(len + 1)))
        return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    memcpy(in->text, v, len + 1);
    in->len = len;
    r->n_in++;
    return true;
}

/* OpenAI token ids: a non-empty array of integers (range-checked later against the model). */
static bool add_ids(mlxr_embed_req *r, const json_t *a, mlxr_api_error *e) {
    size_t n = json_array_size(a);
    if (n == 0) return BAD("input", "'input' must not contain an empty array of token ids");
    mlxr_embed_input *in = &r->in[r->n_in];
    if (!(in->ids = malloc(n * sizeof *in->ids)))
        return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    r->n_in++; /* owned from here on */
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(a, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
            return BAD("input", "'input' token ids must be non-negative integers");
        in->ids[i] = (int32_t)json_integer_value(t);
    }
    in->n_ids = n;
    return true;
}

/* "input" of either API into r->in (array allocated for the elements). */
static bool parse_input(const json_t *v, mlxr_embed_req *r, mlxr_api_error *e) {
    const bool openai = r->kind == MLXR_EMBED_OPENAI;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0 && !openai))
        return true; /* Ollama: nothing to embed (the model is still loaded) */
    if (openai && json_is_array(v) && n == 0) return BAD("input", "'input' must not be empty");
    if (n > MAX_INPUTS) return BAD("input", "'input' holds %zu items; at most %d", n, MAX_INPUTS);
    if (n && !(r->in = calloc(n, sizeof *r->in)))
        return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    if (!json_is_array(v)) return add_text(r, v, false, e);
    /* OpenAI: one array of ids is one input; else every element is one input of one kind */
    if (openai && json_is_integer(json_array_get(v, 0))) return add_ids(r, v, e);
    const json_t *first = json_array_get(v, 0);
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(v, i);
        if (openai && (json_is_array(x) != json_is_array(first)))
            return BAD("input", "'input' must not mix texts and token-id arrays");
        if (!(openai && json_is_array(x) ? add_ids(r, x, e) : add_text(r, x, !openai, e)))
            return false;
    }
    return true;
}

/* Go duration syntax only ("1h30m", "-1", "2.5s", "500ms"), at most 32 characters: strtod,
 * which mlxr_api_parse_duration uses, would also take exponents, hex floats, "inf" and hundreds
 * of digits, whose values overflow its conversion to seconds (plain numbers are clamped here
 * for the same reason). */
static bool duration_chars(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n <= 32 && strspn(s, "0123456789.-+hms") == n;
}

static bool parse_ollama_extras(const json_t *o, mlxr_embed_req *r, mlxr_api_error *e) {
    const json_t *t = json_object_get(o, "truncate"), *opt = json_object_get(o, "options");
    const json_t *k = json_object_get(o, "keep_alive");
    if (t && !json_is_null(t)) {
        if (!json_is_boolean(t)) return BAD("truncate", "'truncate' must be a boolean");
        r->truncate = json_is_true(t);
    }
    if (opt && !json_is_null(opt)) {
        if (!json_is_object(opt)) return BAD("options", "'options' must be an object");
        const json_t *nc = json_object_get(opt, "num_ctx");
        if (nc && !json_is_null(nc)) {
            if (!json_is_integer(nc) || json_integer_value(nc) < 1 ||
                json_integer_value(nc) > (1 << 20))
                return BAD("options", "'options.num_ctx' must be an integer from 1 to %d", 1 << 20);
            r->num_ctx = (int32_t)json_integer_value(nc);
        }
    }
    if (k && !json_is_null(k)) {
        const char *ks = json_string_value(k);
        char *end = NULL;
        double s = json_is_number(k)          ? json_number_value(k)
                   : ks && duration_chars(ks) ? strtod(ks, &end)
                                              : 0;
        if (json_is_number(k) || (end && end != ks && !*end)) { /* plain seconds */
            r->keep_alive_s = s < 0 ? -1 : s > 1e12 ? (int64_t)1e12 : (int64_t)(s + 0.999);
        } else if (!end || !mlxr_api_parse_duration(ks, &r->keep_alive_s)) {
            return BAD("keep_alive", "'keep_alive' must be a number of seconds or a duration "
                                     "such as \"5m\" (negative: keep loaded)");
        }
    }
    return true;
}

static bool parse_openai_extras(const json_t *o, mlxr_embed_req *r, mlxr_api_error *e) {
    const json_t *f = json_object_get(o, "encoding_format"), *d = json_object_get(o, "dimensions");
    if (f && !json_is_null(f)) {
        const char *s = json_string_value(f);
        if (!s || (strcmp(s, "float") != 0 && strcmp(s, "base64") != 0))
            return BAD("encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
        r->base64 = !strcmp(s, "base64");
    }
    if (d && !json_is_null(d))
        return BAD("dimensions", "'dimensions' is not supported: vectors have the model's n_embd");
    return true;
}

bool mlxr_embed_parse(mlxr_embed_kind kind, const char *body, size_t len, mlxr_embed_req *out,
                      mlxr_api_error *e) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->truncate = true;
    out->keep_alive_s = -2;
    json_error_t je;
    json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    bool ok = false;
    if (!json_is_object(o)) {
        BAD(NULL, "the body must be a JSON object%s%s", o ? "" : ": ", o ? "" : je.text);
        goto done;
    }
    const json_t *m = json_object_get(o, "model");
    if (m && !json_is_null(m) && !json_is_string(m)) {
        BAD("model", "'model' must be a string");
        goto done;
    }
    if (json_is_string(m) && json_string_length(m) > 0 &&
        !(out->model = strdup(json_string_value(m)))) {
        mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        goto done;
    }
    const char *key = kind == MLXR_EMBED_OLLAMA_LEGACY ? "prompt" : "input";
    const json_t *in = json_object_get(o, key);
    if (kind == MLXR_EMBED_OPENAI && (!in || json_is_null(in))) {
        BAD("input", "'input' is required");
        goto done;
    }
    if (kind == MLXR_EMBED_OLLAMA_LEGACY && in && !json_is_null(in) && !json_is_string(in)) {
        BAD("prompt", "'prompt' must be a string");
        goto done;
    }
    ok = parse_input(in, out, e) && (kind == MLXR_EMBED_OPENAI ? parse_openai_extras(o, out, e)
                                                               : parse_ollama_extras(o, out, e));
done:
    json_decref(o);
    if (!ok) mlxr_embed_req_free(out);
    return ok;
}

void mlxr_embed_base64(const uint8_t *in, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}
