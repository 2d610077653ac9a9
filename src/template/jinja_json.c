/*
 * jinja_json.c - JSON in (jansson -> template values, object key order kept) and JSON out with
 * exactly Python's json.dumps formatting, as the tojson filter of transformers produces it:
 * ensure_ascii=False (non-ASCII text raw, only '"', '\\' and controls escaped), separators
 * (', ', ': ') without indent and (',', ': ') with one, float repr as Python's (shortest
 * round-trip), NaN/Infinity spelled as Python does, non-string keys converted like Python.
 */
#include "template/template.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 200

static mlxr_status from_json(jrt *rt, json_t *j, int depth, jv *out) {
    if (depth > JSON_MAX_DEPTH)
        return jfail(rt, MLXR_ERR_RANGE, "JSON nested deeper than %d", JSON_MAX_DEPTH);
    switch (json_typeof(j)) {
    case JSON_NULL:
        *out = jv_none();
        return MLXR_OK;
    case JSON_TRUE:
        *out = jv_bool(true);
        return MLXR_OK;
    case JSON_FALSE:
        *out = jv_bool(false);
        return MLXR_OK;
    case JSON_INTEGER:
        *out = jv_int((int64_t)json_integer_value(j));
        return MLXR_OK;
    case JSON_REAL:
        *out = jv_float(json_real_value(j));
        return MLXR_OK;
    case JSON_STRING:
        return jv_str(rt, json_string_value(j), json_string_length(j), out);
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        mlxr_status st = jv_list(rt, n, out);
        for (size_t i = 0; i < n && !st; i++) {
            st = from_json(rt, json_array_get(j, i), depth + 1, &out->u.l->v[i]);
            if (!st) out->u.l->n++;
        }
        return st;
    }
    case JSON_OBJECT: {
        mlxr_status st = jv_dict(rt, JDICT_PLAIN, out);
        const char *key;
        json_t *val;
        size_t klen;
        json_object_keylen_foreach(j, key, klen, val) {
            if (st) break;
            jv k, v;
            st = jv_str(rt, key, klen, &k);
            if (st) break;
            st = from_json(rt, val, depth + 1, &v);
            if (st) {
                jv_release(rt, k);
                break;
            }
            st = jdict_set(rt, out->u.d, k, v);
        }
        return st;
    }
    }
    return jfail(rt, MLXR_ERR_INTERNAL, "unknown JSON type");
}

mlxr_status jjson_parse(jrt *rt, const char *s, size_t n, jv *out) {
    json_error_t e;
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j)
        return jfail(rt, MLXR_ERR_FORMAT, "bad JSON at line %d, column %d: %s", e.line, e.column,
                     e.text);
    mlxr_status st = from_json(rt, j, 0, out);
    json_decref(j);
    if (st) {
        jv_release(rt, *out);
        *out = jv_undef();
    }
    return st;
}

/* ---- dumps -------------------------------------------------------------------------------- */

typedef struct dumper {
    jrt *rt;
    jbuf *b;
    const char *indent; /* NULL: no indent */
    const char *item_sep, *key_sep;
    bool sort_keys;
    bool ensure_ascii; /* escape non-ASCII as \uXXXX (surrogate pairs above U+FFFF) */
} dumper;

static mlxr_status put(dumper *D, const char *s) {
    return jbuf_put(D->rt, D->b, s, strlen(s));
}

static mlxr_status put_jstr(dumper *D, const char *s, size_t n) {
    mlxr_status st = jbuf_putc(D->rt, D->b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n && !st; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[8];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                esc = tmp;
            } else if (c >= 0x80 && D->ensure_ascii) {
                size_t w;
                uint32_t cp = jutf8_decode(s + i, n - i, &w);
                st = jbuf_put(D->rt, D->b, s + i - run, run);
                run = 0;
                char u[16];
                if (cp >= 0x10000) {
                    cp -= 0x10000;
                    snprintf(u, sizeof u, "\\u%04x\\u%04x", 0xd800 + (cp >> 10),
                             0xdc00 + (cp & 0x3ff));
                } else {
                    snprintf(u, sizeof u, "\\u%04x", cp);
                }
                if (!st) st = put(D, u);
                i += w - 1;
                continue;
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        st = jbuf_put(D->rt, D->b, s + i - run, run);
        run = 0;
        if (!st) st = put(D, esc);
    }
    if (!st) st = jbuf_put(D->rt, D->b, s + n - run, run);
    return st ? st : jbuf_putc(D->rt, D->b, '"');
}

static mlxr_status put_float(dumper *D, double f) {
    if (isnan(f)) return put(D, "NaN");
    if (isinf(f)) return put(D, f > 0 ? "Infinity" : "-Infinity");
    char tmp[48];
    jv_float_repr(f, tmp, sizeof tmp);
    return put(D, tmp);
}

static mlxr_status newline_indent(dumper *D, int level) {
    mlxr_status st = jbuf_putc(D->rt, D->b, '\n');
    for (int i = 0; i < level && !st; i++)
        st = put(D, D->indent);
    return st;
}

static mlxr_status dump(dumper *D, jv v, int level);

/* Python converts keys: str as is, float repr, True/False/None as true/false/null, int. */
static mlxr_status dump_key(dumper *D, jv k) {
    char tmp[48];
    switch (k.t) {
    case JV_STR:
        return put_jstr(D, k.u.s->s, k.u.s->len);
    case JV_BOOL:
        return put_jstr(D, k.u.b ? "true" : "false", k.u.b ? 4 : 5);
    case JV_NONE:
        return put_jstr(D, "null", 4);
    case JV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)k.u.i);
        return put_jstr(D, tmp, strlen(tmp));
    case JV_FLOAT:
        if (isnan(k.u.f))
            snprintf(tmp, sizeof tmp, "NaN");
        else if (isinf(k.u.f))
            snprintf(tmp, sizeof tmp, k.u.f > 0 ? "Infinity" : "-Infinity");
        else
            jv_float_repr(k.u.f, tmp, sizeof tmp);
        return put_jstr(D, tmp, strlen(tmp));
    default:
        return jfail(D->rt, MLXR_ERR_INVALID, "keys must be str, int, float, bool or None, not %s",
                     jv_type_name(k));
    }
}

static int cmp_keys_rt(jrt *rt, jv a, jv b, mlxr_status *st) {
    int c = 0;
    mlxr_status s = jv_cmp(rt, a, b, &c);
    if (s && !*st) *st = s;
    return c;
}

static mlxr_status dump_dict(dumper *D, jdict *d, int level) {
    if (d->n == 0) return put(D, "{}");
    size_t *order = jmem_alloc(D->rt, d->n * sizeof *order);
    if (!order) return D->rt->err->code;
    mlxr_status st = MLXR_OK;
    for (size_t i = 0; i < d->n; i++)
        order[i] = i;
    if (D->sort_keys) /* insertion sort: stable, and dicts in templates are small */
        for (size_t i = 1; i < d->n && !st; i++)
            for (size_t j = i;
                 j > 0 && cmp_keys_rt(D->rt, d->k[order[j - 1]], d->k[order[j]], &st) > 0; j--) {
                size_t t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
    if (!st) st = jbuf_putc(D->rt, D->b, '{');
    if (!st && D->indent) st = newline_indent(D, level + 1);
    for (size_t i = 0; i < d->n && !st; i++) {
        if (i) {
            st = put(D, D->item_sep);
            if (!st && D->indent) st = newline_indent(D, level + 1);
        }
        if (!st) st = dump_key(D, d->k[order[i]]);
        if (!st) st = put(D, D->key_sep);
        if (!st) st = dump(D, d->v[order[i]], level + 1);
    }
    if (!st && D->indent) st = newline_indent(D, level);
    if (!st) st = jbuf_putc(D->rt, D->b, '}');
    jmem_free(D->rt, order, d->n * sizeof *order);
    return st;
}

static mlxr_status dump(dumper *D, jv v, int level) {
    mlxr_status st = jstep(D->rt);
    if (st) return st;
    if (level > JSON_MAX_DEPTH)
        return jfail(D->rt, MLXR_ERR_RANGE, "tojson: value nested deeper than %d", JSON_MAX_DEPTH);
    char tmp[48];
    switch (v.t) {
    case JV_NONE:
        return put(D, "null");
    case JV_BOOL:
        return put(D, v.u.b ? "true" : "false");
    case JV_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
        return put(D, tmp);
    case JV_FLOAT:
        return put_float(D, v.u.f);
    case JV_STR:
        return put_jstr(D, v.u.s->s, v.u.s->len);
    case JV_LIST: {
        jlist *l = v.u.l;
        if (l->iter_type) break;
        if (l->n == 0) return put(D, "[]");
        st = jbuf_putc(D->rt, D->b, '[');
        if (!st && D->indent) st = newline_indent(D, level + 1);
        for (size_t i = 0; i < l->n && !st; i++) {
            if (i) {
                st = put(D, D->item_sep);
                if (!st && D->indent) st = newline_indent(D, level + 1);
            }
            if (!st) st = dump(D, l->v[i], level + 1);
        }
        if (!st && D->indent) st = newline_indent(D, level);
        return st ? st : jbuf_putc(D->rt, D->b, ']');
    }
    case JV_DICT:
        if (v.u.d->kind == JDICT_PLAIN) return dump_dict(D, v.u.d, level);
        break;
    default:
        break;
    }
    return jfail(D->rt, MLXR_ERR_INVALID, "Object of type %s is not JSON serializable",
                 jv_type_name(v));
}

mlxr_status jjson_dump(jrt *rt, jbuf *b, jv v, int indent, const char *indent_str,
                       const char *item_sep, const char *key_sep, bool sort_keys,
                       bool ensure_ascii) {
    char spaces[64];
    dumper D = {rt, b, NULL, item_sep, key_sep, sort_keys, ensure_ascii};
    if (indent_str) {
        D.indent = indent_str;
    } else if (indent >= 0) {
        if (indent >= (int)sizeof spaces) indent = (int)sizeof spaces - 1;
        memset(spaces, ' ', (size_t)indent);
        spaces[indent] = '\0';
        D.indent = spaces;
    }
    if (!D.item_sep) D.item_sep = D.indent ? "," : ", ";
    if (!D.key_sep) D.key_sep = ": ";
    return dump(&D, v, 0);
}
