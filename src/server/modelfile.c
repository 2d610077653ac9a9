/*
 * modelfile.c - Ollama Modelfiles: parse, store (JSON), render, apply (see modelfile.h).
 */
#include "server/modelfile.h"

#include "util/err.h"
#include "util/strbuf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One value may be at most this long (a license text fits; a runaway one does not). */
#define MAX_VALUE (1u << 20)

void mlxr_modelfile_free(mlxr_modelfile *mf) {
    if (!mf) return;
    free(mf->from);
    free(mf->system);
    free(mf->tmpl);
    free(mf->license);
    for (size_t i = 0; i < mf->n_stops; i++) free(mf->stops[i]);
    for (size_t i = 0; i < mf->n_msgs; i++) {
        free(mf->msgs[i].role);
        free(mf->msgs[i].content);
    }
    free(mf->msgs);
    memset(mf, 0, sizeof *mf);
}

static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ---- parameters --------------------------------------------------------------------------- */

typedef enum { P_FLOAT, P_INT, P_SEED, P_STOP } ptype;

static const struct param {
    const char *name;
    ptype type;
    uint32_t bit;
    double lo, hi; /* the ranges of the request parser (request.c), so that a stored default is
                      always a value a request could have given */
} params[] = {
    {"temperature", P_FLOAT, MLXR_MF_TEMPERATURE, 0, 2},
    {"top_k", P_INT, MLXR_MF_TOP_K, 0, 1 << 30},
    {"top_p", P_FLOAT, MLXR_MF_TOP_P, 0, 1},
    {"min_p", P_FLOAT, MLXR_MF_MIN_P, 0, 1},
    {"seed", P_SEED, MLXR_MF_SEED, 0, 0},
    {"num_predict", P_INT, MLXR_MF_NUM_PREDICT, -2, 1 << 24},
    {"num_ctx", P_INT, MLXR_MF_NUM_CTX, 1, 1 << 24},
    {"repeat_penalty", P_FLOAT, MLXR_MF_REPEAT_PENALTY, 0.001, 1000},
    {"repeat_last_n", P_INT, MLXR_MF_REPEAT_LAST_N, 0, 1 << 20},
    {"presence_penalty", P_FLOAT, MLXR_MF_PRESENCE_PENALTY, -2, 2},
    {"frequency_penalty", P_FLOAT, MLXR_MF_FREQUENCY_PENALTY, -2, 2},
    {"stop", P_STOP, 0, 0, 0},
};
#define N_PARAMS (sizeof params / sizeof *params)

static float *float_slot(mlxr_modelfile *mf, uint32_t bit) {
    switch (bit) {
    case MLXR_MF_TEMPERATURE: return &mf->temperature;
    case MLXR_MF_TOP_P: return &mf->top_p;
    case MLXR_MF_MIN_P: return &mf->min_p;
    case MLXR_MF_REPEAT_PENALTY: return &mf->repeat_penalty;
    case MLXR_MF_PRESENCE_PENALTY: return &mf->presence_penalty;
    default: return &mf->frequency_penalty;
    }
}

static int32_t *int_slot(mlxr_modelfile *mf, uint32_t bit) {
    switch (bit) {
    case MLXR_MF_TOP_K: return &mf->top_k;
    case MLXR_MF_NUM_PREDICT: return &mf->num_predict;
    case MLXR_MF_NUM_CTX: return &mf->num_ctx;
    default: return &mf->repeat_last_n;
    }
}

mlxr_status mlxr_modelfile_set_param(mlxr_modelfile *mf, const char *name, const char *value,
                                     mlxr_err *err) {
    const struct param *p = NULL;
    for (size_t i = 0; i < N_PARAMS && !p; i++)
        if (!strcmp(params[i].name, name)) p = &params[i];
    if (!p)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "unknown parameter '%.64s' (mlxr supports "
                         "temperature, top_k, top_p, min_p, seed, num_predict, num_ctx, "
                         "repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty, "
                         "stop)", name);
    if (!*value) return MLXR_FAIL(err, MLXR_ERR_INVALID, "parameter '%s' has no value", name);
    if (p->type == P_STOP) {
        if (mf->n_stops == MLXR_MF_MAX_STOPS)
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "at most %d stop parameters",
                             MLXR_MF_MAX_STOPS);
        if (!(mf->stops[mf->n_stops] = strdup(value)))
            return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
        mf->n_stops++;
        return MLXR_OK;
    }
    char *end = NULL;
    errno = 0;
    if (p->type == P_FLOAT) {
        double d = strtod(value, &end);
        if (end == value || *end || errno == ERANGE || !isfinite(d))
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "parameter '%s': '%.64s' is not a number",
                             name, value);
        if (d < p->lo || d > p->hi)
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "parameter '%s' must be between %g and %g, "
                             "got %g", name, p->lo, p->hi, d);
        *float_slot(mf, p->bit) = (float)d;
    } else {
        long long v = strtoll(value, &end, 10);
        if (end == value || *end || errno == ERANGE)
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "parameter '%s': '%.64s' is not an integer",
                             name, value);
        if (p->type == P_SEED) {
            mf->seed = v;
        } else {
            if (v < (long long)p->lo || v > (long long)p->hi ||
                (p->bit == MLXR_MF_NUM_PREDICT && v == 0))
                return MLXR_FAIL(err, MLXR_ERR_INVALID, "parameter '%s' must be between %lld "
                                 "and %lld%s, got %lld", name, (long long)p->lo,
                                 (long long)p->hi, p->bit == MLXR_MF_NUM_PREDICT ? " (not 0)" : "",
                                 v);
            *int_slot(mf, p->bit) = (int32_t)v;
        }
    }
    mf->set |= p->bit;
    return MLXR_OK;
}

/* ---- the text form ------------------------------------------------------------------------ */

static mlxr_status set_str(char **slot, const char *s, size_t n, mlxr_err *err) {
    char *p = dupn(s, n);
    if (!p) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    free(*slot);
    *slot = p;
    return MLXR_OK;
}

static mlxr_status add_message(mlxr_modelfile *mf, const char *role, const char *content,
                               mlxr_err *err) {
    if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "message role must be system, user or "
                         "assistant, not '%.32s'", role);
    if (mf->n_msgs == MLXR_MF_MAX_MESSAGES)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "at most %d messages", MLXR_MF_MAX_MESSAGES);
    mlxr_chat_msg *p = realloc(mf->msgs, (mf->n_msgs + 1) * sizeof *p);
    if (!p) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    mf->msgs = p;
    p[mf->n_msgs].role = strdup(role);
    p[mf->n_msgs].content = strdup(content);
    if (!p[mf->n_msgs].role || !p[mf->n_msgs].content) {
        free(p[mf->n_msgs].role);
        free(p[mf->n_msgs].content);
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    }
    mf->n_msgs++;
    return MLXR_OK;
}

/* LICENSE lines accumulate, separated by a blank line. */
static mlxr_status add_license(mlxr_modelfile *mf, const char *s, size_t n, mlxr_err *err) {
    size_t old = mf->license ? mf->license_len : 0;
    if (old + n > MAX_VALUE) return MLXR_FAIL(err, MLXR_ERR_INVALID, "license too long");
    if (!mf->license || old + n + 3 > mf->license_cap) {
        size_t cap = (old + n + 3) * 2;
        char *p = realloc(mf->license, cap);
        if (!p) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
        mf->license = p;
        mf->license_cap = cap;
    }
    char *p = mf->license;
    if (old) memcpy(p + old, "\n\n", 2), old += 2;
    memcpy(p + old, s, n);
    p[old + n] = '\0';
    mf->license_len = old + n;
    return MLXR_OK;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Read a value starting at *pp (spaces skipped): """...""" (multi-line), "..." (escapes), or the
 * rest of the line. On success *out is malloc'ed (trimmed, except for TEMPLATE: `keep_ws`),
 * *pp after the value's line, *line counts the newlines passed. */
static mlxr_status read_value(const char **pp, const char *end, bool keep_ws, char **out,
                              int *line, mlxr_err *err) {
    const char *p = *pp;
    while (p < end && is_space(*p)) p++;
    const char *s, *e;
    int start_line = *line;
    if (end - p >= 3 && !memcmp(p, "\"\"\"", 3)) {
        s = p + 3;
        e = NULL;
        for (const char *q = s; q + 3 <= end; q++) {
            if (!memcmp(q, "\"\"\"", 3)) {
                e = q;
                break;
            }
        }
        if (!e)
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "line %d: unterminated \"\"\" string",
                             start_line);
        for (const char *q = s; q < e; q++) *line += *q == '\n';
        p = e + 3;
        /* a single-line form like SYSTEM """x""" or the first/last newline of a block */
        if (!keep_ws) {
            while (s < e && (is_space(*s) || *s == '\n')) s++;
            while (e > s && (is_space(e[-1]) || e[-1] == '\n')) e--;
        }
        if ((size_t)(e - s) > MAX_VALUE)
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "line %d: value too long", start_line);
        if (!(*out = dupn(s, (size_t)(e - s)))) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    } else if (p < end && *p == '"') {
        const char *q = p + 1;
        /* a quoted value ends on its line: size the copy by the line, not the rest of the file
         * (many short values in a large body must not each cost a large allocation) */
        const char *eol = memchr(q, '\n', (size_t)(end - q));
        char *buf = malloc((size_t)((eol ? eol : end) - q) + 1);
        if (!buf) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
        size_t n = 0;
        while (q < end && *q != '"' && *q != '\n') {
            if (*q == '\\' && q + 1 < end && (q[1] == '"' || q[1] == '\\')) q++;
            buf[n++] = *q++;
        }
        if (q >= end || *q != '"') {
            free(buf);
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "line %d: unterminated \" string", start_line);
        }
        buf[n] = '\0';
        if (n > MAX_VALUE) {
            free(buf);
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "line %d: value too long", start_line);
        }
        *out = buf;
        p = q + 1;
    } else {
        s = p;
        while (p < end && *p != '\n') p++;
        e = p;
        while (e > s && is_space(e[-1])) e--;
        if ((size_t)(e - s) > MAX_VALUE)
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "line %d: value too long", start_line);
        if (!(*out = dupn(s, (size_t)(e - s)))) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    }
    /* nothing but spaces may follow a quoted value on its line */
    while (p < end && is_space(*p)) p++;
    if (p < end && *p != '\n') {
        free(*out);
        *out = NULL;
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "line %d: unexpected text after the closing "
                         "quote", *line);
    }
    if (p < end) {
        p++;
        (*line)++;
    }
    *pp = p;
    return MLXR_OK;
}

/* A word (a command, a parameter name, a role): letters, digits, '_'; at most cap-1 bytes. */
static size_t read_word(const char **pp, const char *end, char *buf, size_t cap) {
    const char *p = *pp;
    while (p < end && is_space(*p)) p++;
    size_t n = 0;
    while (p < end && !is_space(*p) && *p != '\n' && *p != '"') {
        if (n + 1 < cap) buf[n] = *p;
        n++;
        p++;
    }
    buf[n < cap ? n : cap - 1] = '\0';
    *pp = p;
    return n;
}

mlxr_status mlxr_modelfile_parse(const char *text, size_t len, mlxr_modelfile *mf, mlxr_err *err) {
    memset(mf, 0, sizeof *mf);
    if (memchr(text, '\0', len))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "the modelfile contains a NUL character");
    const char *p = text, *end = text + len;
    int line = 1;
    mlxr_status st = MLXR_OK;
    while (st == MLXR_OK && p < end) {
        while (p < end && (is_space(*p) || *p == '\n')) line += *p++ == '\n';
        if (p >= end) break;
        if (*p == '#') { /* a comment line */
            while (p < end && *p != '\n') p++;
            continue;
        }
        char cmd[16], name[64];
        int at = line;
        size_t n = read_word(&p, end, cmd, sizeof cmd);
        char *value = NULL;
        if (n >= sizeof cmd) {
            st = MLXR_FAIL(err, MLXR_ERR_INVALID, "line %d: unknown command", at);
        } else if (!strcasecmp(cmd, "PARAMETER") || !strcasecmp(cmd, "MESSAGE")) {
            bool is_param = !strcasecmp(cmd, "PARAMETER");
            n = read_word(&p, end, name, sizeof name);
            if (!n || n >= sizeof name) {
                st = MLXR_FAIL(err, MLXR_ERR_INVALID, "line %d: %s needs a %s and a value", at,
                               is_param ? "PARAMETER" : "MESSAGE", is_param ? "name" : "role");
            } else if ((st = read_value(&p, end, is_param, &value, &line, err)) == MLXR_OK) {
                for (char *c = name; *c; c++)
                    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
                st = is_param ? mlxr_modelfile_set_param(mf, name, value, err)
                              : add_message(mf, name, value, err);
                if (st != MLXR_OK && err) {
                    char msg[sizeof err->msg];
                    snprintf(msg, sizeof msg, "%s", err->msg);
                    st = MLXR_FAIL(err, st, "line %d: %s", at, msg);
                }
            }
        } else if (!strcasecmp(cmd, "FROM") || !strcasecmp(cmd, "SYSTEM") ||
                   !strcasecmp(cmd, "TEMPLATE") || !strcasecmp(cmd, "LICENSE")) {
            bool tmpl = !strcasecmp(cmd, "TEMPLATE");
            if ((st = read_value(&p, end, tmpl, &value, &line, err)) == MLXR_OK) {
                size_t vl = strlen(value);
                if (!strcasecmp(cmd, "FROM") && !vl)
                    st = MLXR_FAIL(err, MLXR_ERR_INVALID, "line %d: FROM needs a model", at);
                else if (!strcasecmp(cmd, "FROM")) st = set_str(&mf->from, value, vl, err);
                else if (!strcasecmp(cmd, "SYSTEM")) st = set_str(&mf->system, value, vl, err);
                else if (tmpl) st = set_str(&mf->tmpl, value, vl, err);
                else st = add_license(mf, value, vl, err);
            }
        } else if (!strcasecmp(cmd, "ADAPTER")) {
            st = MLXR_FAIL(err, MLXR_ERR_INVALID, "line %d: ADAPTER (LoRA adapters) is not "
                           "supported by mlxr", at);
        } else {
            st = MLXR_FAIL(err, MLXR_ERR_INVALID, "line %d: unknown command '%s': a modelfile "
                           "command must be one of FROM, PARAMETER, SYSTEM, TEMPLATE, LICENSE, "
                           "MESSAGE", at, cmd);
        }
        free(value);
    }
    if (st != MLXR_OK) mlxr_modelfile_free(mf);
    return st;
}

/* ---- JSON (structured create fields and catalog storage) ---------------------------------- */

/* A JSON string member without NULs, or NULL (absent); *bad when present but not one. */
static const char *json_str(json_t *o, const char *key, bool *bad) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_string(v) || memchr(json_string_value(v), '\0', json_string_length(v)) ||
        json_string_length(v) > MAX_VALUE) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

/* One parameter value as text: a number, a string, or (for stop) each string of an array. */
static mlxr_status json_param(mlxr_modelfile *mf, const char *name, json_t *v, mlxr_err *err) {
    char buf[64];
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (json_is_array(x))
                return MLXR_FAIL(err, MLXR_ERR_INVALID, "parameter '%.64s': nested array", name);
            mlxr_status st = json_param(mf, name, x, err);
            if (st != MLXR_OK) return st;
        }
        return MLXR_OK;
    }
    const char *s = buf;
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* an integral real (1.0) for an integer parameter */
        if (d == floor(d) && fabs(d) < 9e18) snprintf(buf, sizeof buf, "%lld", (long long)d);
        else snprintf(buf, sizeof buf, "%.9g", d);
    } else if (json_is_string(v) && !memchr(json_string_value(v), '\0', json_string_length(v))) {
        s = json_string_value(v);
    } else {
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "parameter '%.64s' must be a number or a string",
                         name);
    }
    return mlxr_modelfile_set_param(mf, name, s, err);
}

mlxr_status mlxr_modelfile_from_json(json_t *o, mlxr_modelfile *mf, mlxr_err *err) {
    bool bad = false;
    const char *from = json_str(o, "from", &bad), *sys = json_str(o, "system", &bad),
               *tmpl = json_str(o, "template", &bad);
    if (bad)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "'from', 'system' and 'template' must be "
                         "strings without NUL characters");
    mlxr_status st = MLXR_OK;
    if (from && *from) st = set_str(&mf->from, from, strlen(from), err);
    if (st == MLXR_OK && sys) st = set_str(&mf->system, sys, strlen(sys), err);
    if (st == MLXR_OK && tmpl) st = set_str(&mf->tmpl, tmpl, strlen(tmpl), err);
    json_t *lic = json_object_get(o, "license");
    if (st == MLXR_OK && lic && !json_is_null(lic)) {
        free(mf->license);
        mf->license = NULL;
        json_t *one = json_is_string(lic) ? json_pack("[O]", lic) : json_incref(lic);
        if (!json_is_array(one)) st = MLXR_FAIL(err, MLXR_ERR_INVALID, "'license' must be a "
                                                "string or an array of strings");
        size_t i;
        json_t *x;
        json_array_foreach(one, i, x) {
            if (st != MLXR_OK) break;
            if (!json_is_string(x) || memchr(json_string_value(x), '\0', json_string_length(x)))
                st = MLXR_FAIL(err, MLXR_ERR_INVALID, "'license' must hold strings");
            else st = add_license(mf, json_string_value(x), json_string_length(x), err);
        }
        json_decref(one);
    }
    json_t *ps = json_object_get(o, "parameters");
    if (st == MLXR_OK && ps && !json_is_null(ps)) {
        if (!json_is_object(ps)) {
            st = MLXR_FAIL(err, MLXR_ERR_INVALID, "'parameters' must be an object");
        } else {
            /* stored or given stops replace, not extend, the earlier ones of that name */
            const char *k;
            json_t *v;
            json_object_foreach(ps, k, v) {
                if (st != MLXR_OK) break;
                if (!strcmp(k, "stop")) {
                    for (size_t i = 0; i < mf->n_stops; i++) free(mf->stops[i]);
                    mf->n_stops = 0;
                }
                st = json_param(mf, k, v, err);
            }
        }
    }
    json_t *ms = json_object_get(o, "messages");
    if (st == MLXR_OK && ms && !json_is_null(ms)) {
        if (!json_is_array(ms)) st = MLXR_FAIL(err, MLXR_ERR_INVALID, "'messages' must be an array");
        /* given messages replace earlier ones (a base model's), as a new layer in Ollama */
        for (size_t i = 0; st == MLXR_OK && i < mf->n_msgs; i++) {
            free(mf->msgs[i].role);
            free(mf->msgs[i].content);
        }
        if (st == MLXR_OK) mf->n_msgs = 0;
        size_t i;
        json_t *m;
        json_array_foreach(ms, i, m) {
            if (st != MLXR_OK) break;
            bool b = false;
            const char *role = json_is_object(m) ? json_str(m, "role", &b) : NULL;
            const char *content = json_is_object(m) ? json_str(m, "content", &b) : NULL;
            if (!role || !content || b)
                st = MLXR_FAIL(err, MLXR_ERR_INVALID, "each message must be {\"role\": string, "
                               "\"content\": string}");
            else st = add_message(mf, role, content, err);
        }
    }
    return st;
}

/* The parameters as a JSON object {name: value, stop: [..]}. */
static json_t *params_json(const mlxr_modelfile *mf) {
    json_t *o = json_object();
    for (size_t i = 0; o && i < N_PARAMS; i++) {
        const struct param *p = &params[i];
        mlxr_modelfile *m = (mlxr_modelfile *)mf; /* the slot helpers only read here */
        if (p->type == P_STOP) {
            if (!mf->n_stops) continue;
            json_t *a = json_array();
            for (size_t k = 0; k < mf->n_stops; k++) json_array_append_new(a, json_string(mf->stops[k]));
            json_object_set_new(o, p->name, a);
        } else if (mf->set & p->bit) {
            json_t *v = p->type == P_FLOAT ? json_real(*float_slot(m, p->bit))
                        : p->type == P_SEED ? json_integer(mf->seed)
                                            : json_integer(*int_slot(m, p->bit));
            json_object_set_new(o, p->name, v);
        }
    }
    return o;
}

char *mlxr_modelfile_to_json(const mlxr_modelfile *mf, bool *oom) {
    *oom = false;
    if (!mf->system && !mf->tmpl && !mf->license && !mf->set && !mf->n_stops && !mf->n_msgs)
        return NULL;
    json_t *o = json_object(), *ps = params_json(mf), *ms = json_array();
    if (mf->system) json_object_set_new(o, "system", json_string(mf->system));
    if (mf->tmpl) json_object_set_new(o, "template", json_string(mf->tmpl));
    if (mf->license) json_object_set_new(o, "license", json_string(mf->license));
    for (size_t i = 0; i < mf->n_msgs; i++)
        json_array_append_new(ms, json_pack("{s:s,s:s}", "role", mf->msgs[i].role, "content",
                                            mf->msgs[i].content));
    if (json_object_size(ps)) json_object_set(o, "parameters", ps);
    if (mf->n_msgs) json_object_set(o, "messages", ms);
    json_decref(ps);
    json_decref(ms);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (!s) *oom = true;
    return s;
}

/* ---- text output -------------------------------------------------------------------------- */

/* A value as the text form reads it back: """...""" (trimmed by the reader unless keep_ws), or
 * "..." with \" and \\ escapes when it holds """ itself or when `quote` prefers it for a
 * one-line value (PARAMETER stop). */
static void sb_value(mlxr_strbuf *b, const char *v, bool quote) {
    bool one_line = !strchr(v, '\n');
    bool triple_ok = !strstr(v, "\"\"\"") && (!*v || v[strlen(v) - 1] != '"');
    if (triple_ok && !(quote && one_line)) {
        mlxr_strbuf_str(b, "\"\"\"");
        mlxr_strbuf_str(b, v);
        mlxr_strbuf_str(b, "\"\"\"");
        return;
    }
    /* (a value holding both """ and a newline cannot be written back exactly; it is rare) */
    mlxr_strbuf_str(b, "\"");
    for (const char *c = v; *c; c++) {
        if (*c == '"' || *c == '\\') mlxr_strbuf_add(b, "\\", 1);
        mlxr_strbuf_add(b, c, 1);
    }
    mlxr_strbuf_str(b, "\"");
}

/* Go's %q of a string, as Ollama's parameters text writes stop strings. */
static void sb_goquote(mlxr_strbuf *b, const char *v) {
    mlxr_strbuf_str(b, "\"");
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') snprintf(esc, sizeof esc, "\\%c", *c);
        else if (*c == '\n') snprintf(esc, sizeof esc, "\\n");
        else if (*c == '\t') snprintf(esc, sizeof esc, "\\t");
        else if (*c == '\r') snprintf(esc, sizeof esc, "\\r");
        else if (*c < 0x20 || *c == 0x7f) snprintf(esc, sizeof esc, "\\x%02x", *c);
        else snprintf(esc, sizeof esc, "%c", *c);
        mlxr_strbuf_str(b, esc);
    }
    mlxr_strbuf_str(b, "\"");
}

/* One line per parameter value: "PARAMETER name value" for the Modelfile (modelfile true), or
 * Ollama's show form "name<padded to 30> value". */
static void params_text(mlxr_strbuf *b, const mlxr_modelfile *mf, bool modelfile) {
    json_t *o = params_json(mf);
    for (size_t i = 0; o && i < N_PARAMS; i++) {
        json_t *v = json_object_get(o, params[i].name);
        if (!v) continue;
        json_t *arr = json_is_array(v) ? json_incref(v) : json_pack("[O]", v);
        size_t k;
        json_t *x;
        json_array_foreach(arr, k, x) {
            char num[64];
            if (modelfile) mlxr_strbuf_str(b, "PARAMETER ");
            mlxr_strbuf_str(b, params[i].name);
            for (size_t pad = strlen(params[i].name); !modelfile && pad < 30; pad++)
                mlxr_strbuf_add(b, " ", 1);
            mlxr_strbuf_add(b, " ", 1);
            if (json_is_string(x) && modelfile) {
                sb_value(b, json_string_value(x), true);
            } else if (json_is_string(x)) {
                sb_goquote(b, json_string_value(x));
            } else {
                if (json_is_integer(x))
                    snprintf(num, sizeof num, "%lld", (long long)json_integer_value(x));
                else snprintf(num, sizeof num, "%g", json_real_value(x));
                mlxr_strbuf_str(b, num);
            }
            mlxr_strbuf_str(b, "\n");
        }
        json_decref(arr);
    }
    json_decref(o);
}

char *mlxr_modelfile_params_text(const mlxr_modelfile *mf) {
    mlxr_strbuf b = {0};
    params_text(&b, mf, false);
    if (b.len && b.p[b.len - 1] == '\n') b.p[--b.len] = '\0'; /* Ollama's has no final newline */
    return mlxr_strbuf_done(&b);
}

char *mlxr_modelfile_render(const mlxr_modelfile *mf, const char *from) {
    mlxr_strbuf b = {0};
    mlxr_strbuf_str(&b, "# Modelfile generated by mlxr\nFROM ");
    mlxr_strbuf_str(&b, from);
    mlxr_strbuf_str(&b, "\n");
    if (mf->tmpl) {
        mlxr_strbuf_str(&b, "TEMPLATE ");
        sb_value(&b, mf->tmpl, false);
        mlxr_strbuf_str(&b, "\n");
    }
    if (mf->system) {
        mlxr_strbuf_str(&b, "SYSTEM ");
        sb_value(&b, mf->system, false);
        mlxr_strbuf_str(&b, "\n");
    }
    params_text(&b, mf, true);
    for (size_t i = 0; i < mf->n_msgs; i++) {
        mlxr_strbuf_str(&b, "MESSAGE ");
        mlxr_strbuf_str(&b, mf->msgs[i].role);
        mlxr_strbuf_str(&b, " ");
        sb_value(&b, mf->msgs[i].content, false);
        mlxr_strbuf_str(&b, "\n");
    }
    if (mf->license) {
        mlxr_strbuf_str(&b, "LICENSE ");
        sb_value(&b, mf->license, false);
        mlxr_strbuf_str(&b, "\n");
    }
    return mlxr_strbuf_done(&b);
}

/* ---- applying to a request ---------------------------------------------------------------- */

void mlxr_modelfile_applied_free(mlxr_modelfile_applied *keep) {
    free(keep->msgs);
    free(keep->stops);
    memset(keep, 0, sizeof *keep);
}

bool mlxr_modelfile_apply(const mlxr_modelfile *mf, const mlxr_api_req *in, bool has_template,
                          mlxr_api_req *out, mlxr_modelfile_applied *keep) {
    memset(keep, 0, sizeof *keep);
    *out = *in;
    mlxr_gen_params *p = &out->params;
    static const struct {
        uint32_t mf, opt;
    } map[] = {
        {MLXR_MF_TEMPERATURE, MLXR_OPT_TEMPERATURE},
        {MLXR_MF_TOP_P, MLXR_OPT_TOP_P},
        {MLXR_MF_MIN_P, MLXR_OPT_MIN_P},
        {MLXR_MF_PRESENCE_PENALTY, MLXR_OPT_PRESENCE_PENALTY},
        {MLXR_MF_FREQUENCY_PENALTY, MLXR_OPT_FREQUENCY_PENALTY},
        {MLXR_MF_REPEAT_PENALTY, MLXR_OPT_REPEAT_PENALTY},
        {MLXR_MF_TOP_K, MLXR_OPT_TOP_K},
        {MLXR_MF_REPEAT_LAST_N, MLXR_OPT_REPEAT_LAST_N},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        if (!(mf->set & map[i].mf) || (in->opts_set & map[i].opt)) continue;
        switch (map[i].mf) {
        case MLXR_MF_TEMPERATURE: p->temperature = mf->temperature; break;
        case MLXR_MF_TOP_P: p->top_p = mf->top_p; break;
        case MLXR_MF_MIN_P: p->min_p = mf->min_p; break;
        case MLXR_MF_PRESENCE_PENALTY: p->presence_penalty = mf->presence_penalty; break;
        case MLXR_MF_FREQUENCY_PENALTY: p->frequency_penalty = mf->frequency_penalty; break;
        case MLXR_MF_REPEAT_PENALTY: p->repeat_penalty = mf->repeat_penalty; break;
        case MLXR_MF_TOP_K: p->top_k = mf->top_k; break;
        default: p->repeat_last_n = mf->repeat_last_n; break;
        }
    }
    if ((mf->set & MLXR_MF_SEED) && !in->seed_set) {
        p->seed = (uint64_t)mf->seed;
        out->seed_set = true;
    }
    /* num_predict -1 / -2 (the rest of the context) is the default already */
    if ((mf->set & MLXR_MF_NUM_PREDICT) && !in->max_tokens_set &&
        !(in->opts_set & MLXR_OPT_NUM_PREDICT) && mf->num_predict > 0) {
        p->max_tokens = mf->num_predict;
        out->max_tokens_set = true;
    }
    if ((mf->set & MLXR_MF_NUM_CTX) && in->num_ctx <= 0) out->num_ctx = mf->num_ctx;
    if (mf->n_stops && !in->n_stops) {
        if (!(keep->stops = malloc(mf->n_stops * sizeof *keep->stops))) return false;
        for (size_t i = 0; i < mf->n_stops; i++) keep->stops[i] = mf->stops[i];
        out->stops = (char **)keep->stops;
        out->n_stops = mf->n_stops;
        p->stop = keep->stops;
        p->n_stop = mf->n_stops;
    }
    bool chat = in->kind == MLXR_API_CHAT || in->kind == MLXR_API_OLLAMA_CHAT;
    if (in->kind == MLXR_API_OLLAMA_GENERATE && !in->raw) {
        if (!in->system && mf->system) out->system = mf->system;
        if (!mf->n_msgs || !has_template) return true;
        /* MESSAGEs before the prompt: the generate request becomes a chat */
        bool sys = out->system && *out->system;
        size_t n = (size_t)sys + mf->n_msgs + 1;
        if (!(keep->msgs = calloc(n, sizeof *keep->msgs))) return false;
        size_t k = 0;
        if (sys) keep->msgs[k++] = (mlxr_chat_msg){"system", out->system};
        for (size_t i = 0; i < mf->n_msgs; i++) keep->msgs[k++] = mf->msgs[i];
        keep->msgs[k++] = (mlxr_chat_msg){"user", in->prompt ? in->prompt : ""};
        out->kind = MLXR_API_OLLAMA_CHAT;
        out->msgs = keep->msgs;
        out->n_msgs = k;
        return true;
    }
    if (!chat || (!mf->system && !mf->n_msgs)) return true;
    bool has_sys = false;
    for (size_t i = 0; i < in->n_msgs && !has_sys; i++)
        has_sys = !strcmp(in->msgs[i].role, "system") || !strcmp(in->msgs[i].role, "developer");
    bool add_sys = mf->system && !has_sys;
    size_t n = (size_t)add_sys + mf->n_msgs + in->n_msgs;
    if (!(keep->msgs = calloc(n ? n : 1, sizeof *keep->msgs))) return false;
    size_t k = 0;
    if (add_sys) keep->msgs[k++] = (mlxr_chat_msg){"system", mf->system};
    for (size_t i = 0; i < mf->n_msgs; i++) keep->msgs[k++] = mf->msgs[i];
    for (size_t i = 0; i < in->n_msgs; i++) keep->msgs[k++] = in->msgs[i];
    out->msgs = keep->msgs;
    out->n_msgs = k;
    return true;
}
