/*
 * jinja_filters.c - jinja2's builtin filters and tests (filters.py, tests.py) that chat
 * templates use, plus transformers' tojson. Each behaves as the Python original for the value
 * types templates see (str, int, float, bool, None, list, tuple, dict, undefined); unknown
 * filters/tests fail with jinja2's message ("No filter named 'x'.").
 */
#include "template/template.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRY(x)                                                                                     \
    do {                                                                                           \
        mlxr_status st_ = (x);                                                                     \
        if (st_) return st_;                                                                       \
    } while (0)

/* Argument `pos` (0-based, after the filtered value) or keyword `name`; NULL if absent. */
static const jv *arg(const jargs *a, size_t pos, const char *name) {
    if (pos < a->n_pos) return &a->pos[pos];
    for (size_t i = 0; i < a->n_kw; i++)
        if (name && !strcmp(a->kw_name[i], name)) return &a->kw_val[i];
    return NULL;
}

static bool arg_bool(const jargs *a, size_t pos, const char *name, bool dflt) {
    const jv *v = arg(a, pos, name);
    return v ? jv_truthy(*v) : dflt;
}

static mlxr_status undef_fail(jrt *rt, jv v) {
    return jfail(rt, MLXR_ERR_INVALID, "%s", v.u.s ? v.u.s->s : "value is undefined");
}

static mlxr_status buf_to_str(jrt *rt, jbuf *b, mlxr_status st, jv *out) {
    if (!st) st = jv_str(rt, b->p ? b->p : "", b->n, out);
    jbuf_free(rt, b);
    return st;
}

/* str(v) as a borrowed string: either v itself or a new value in *tmp (release after). */
static mlxr_status as_str(jrt *rt, jv v, jv *tmp, const jstr **s) {
    TRY(jv_stringify(rt, v, tmp));
    *s = tmp->u.s;
    return MLXR_OK;
}

static mlxr_status length_of(jrt *rt, jv v, int64_t *n) {
    switch (v.t) {
    case JV_STR:
        *n = (int64_t)jstr_n_cp(v.u.s->s, v.u.s->len);
        return MLXR_OK;
    case JV_LIST:
        if (v.u.l->lazy)
            return jfail(rt, MLXR_ERR_INVALID, "object of type '%s' has no len()",
                         v.u.l->iter_type);
        *n = (int64_t)v.u.l->n;
        return MLXR_OK;
    case JV_DICT:
        *n = (int64_t)v.u.d->n;
        return MLXR_OK;
    case JV_UNDEF:
        *n = 0;
        return MLXR_OK;
    default:
        return jfail(rt, MLXR_ERR_INVALID, "object of type '%s' has no len()", jv_type_name(v));
    }
}

/* Attribute lookup for map/selectattr/sort/unique/join attribute=: dotted path, items first
 * (jinja2's environment.getitem), integer parts index lists. */
static mlxr_status attr_path(jrt *rt, jv v, jv path, jv *out) {
    *out = jv_retain(v);
    if (path.t == JV_INT) {
        jv r = jv_undef();
        if (out->t == JV_LIST && path.u.i >= 0 && (size_t)path.u.i < out->u.l->n)
            r = jv_retain(out->u.l->v[path.u.i]);
        jv_release(rt, *out);
        *out = r;
        return MLXR_OK;
    }
    if (path.t != JV_STR) return jfail(rt, MLXR_ERR_INVALID, "attribute must be a string");
    const char *p = path.u.s->s, *end = p + path.u.s->len;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
        jv r = jv_undef();
        if (out->t == JV_DICT) {
            jv key;
            TRY(jv_str(rt, p, n, &key));
            jv *x = jdict_get(out->u.d, key);
            jv_release(rt, key);
            if (x) r = jv_retain(*x);
        } else if (out->t == JV_LIST && n > 0 && p[0] >= '0' && p[0] <= '9') {
            size_t idx = (size_t)strtoull(p, NULL, 10);
            if (idx < out->u.l->n) r = jv_retain(out->u.l->v[idx]);
        }
        jv_release(rt, *out);
        *out = r;
        if (!dot) break;
        p = dot + 1;
    }
    return MLXR_OK;
}

/* ---- sorting and uniqueness --------------------------------------------------------------- */

/* Key for sort/unique: attribute (optional), then lower-cased when case-insensitive. */
static mlxr_status sort_key(jrt *rt, jv item, const jv *attribute, bool case_sensitive, jv *out) {
    jv k;
    if (attribute)
        TRY(attr_path(rt, item, *attribute, &k));
    else
        k = jv_retain(item);
    if (!case_sensitive && k.t == JV_STR) {
        jbuf b = {0};
        mlxr_status st = jstr_lower(rt, &b, k.u.s->s, k.u.s->len);
        jv_release(rt, k);
        return buf_to_str(rt, &b, st, out);
    }
    *out = k;
    return MLXR_OK;
}

static mlxr_status do_sort(jrt *rt, jv in, const jargs *a, jv *out) {
    bool reverse = arg_bool(a, 0, "reverse", false);
    bool cs = arg_bool(a, 1, "case_sensitive", false);
    const jv *attribute = arg(a, 2, "attribute");
    jv items;
    TRY(jiter_list(rt, in, &items));
    size_t n = items.u.l->n;
    jv keys, res;
    mlxr_status st = jv_list(rt, n, &keys);
    if (!st)
        st = jv_list(rt, n, &res);
    else
        res = jv_undef();
    for (size_t i = 0; i < n && !st; i++) {
        st = sort_key(rt, items.u.l->v[i], attribute, cs, &keys.u.l->v[i]);
        if (!st) {
            keys.u.l->n++;
            res.u.l->v[res.u.l->n++] = jv_retain(items.u.l->v[i]);
        }
    }
    /* stable insertion sort (Python's sort is stable; reverse keeps equal items in order) */
    for (size_t i = 1; i < n && !st; i++) {
        for (size_t j = i; j > 0 && !st; j--) {
            int c;
            st = jv_cmp(rt, keys.u.l->v[j - 1], keys.u.l->v[j], &c);
            if (st || (reverse ? c >= 0 : c <= 0)) break;
            jv t = keys.u.l->v[j];
            keys.u.l->v[j] = keys.u.l->v[j - 1];
            keys.u.l->v[j - 1] = t;
            t = res.u.l->v[j];
            res.u.l->v[j] = res.u.l->v[j - 1];
            res.u.l->v[j - 1] = t;
            st = jstep(rt);
        }
    }
    jv_release(rt, items);
    if (keys.t == JV_LIST) jv_release(rt, keys);
    if (st) {
        jv_release(rt, res);
        return st;
    }
    *out = res;
    return MLXR_OK;
}

static mlxr_status do_unique(jrt *rt, jv in, const jargs *a, jv *out) {
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    const jv *attribute = arg(a, 1, "attribute");
    jv items, seen;
    TRY(jiter_list(rt, in, &items));
    mlxr_status st = jv_list(rt, 0, &seen);
    if (!st) st = jv_list(rt, 0, out);
    for (size_t i = 0; i < items.u.l->n && !st; i++) {
        jv k;
        st = sort_key(rt, items.u.l->v[i], attribute, cs, &k);
        if (st) break;
        if (k.t == JV_DICT || (k.t == JV_LIST && !k.u.l->tuple)) { /* set() needs hashables */
            st = jfail(rt, MLXR_ERR_INVALID, "unhashable type: '%s'", jv_type_name(k));
            jv_release(rt, k);
            break;
        }
        bool dup = false;
        for (size_t j = 0; j < seen.u.l->n && !dup; j++)
            dup = jv_eq(seen.u.l->v[j], k);
        if (dup) {
            jv_release(rt, k);
            continue;
        }
        st = jlist_push(rt, seen.u.l, k);
        if (!st) st = jlist_push(rt, out->u.l, jv_retain(items.u.l->v[i]));
    }
    jv_release(rt, items);
    jv_release(rt, seen);
    return st;
}

/* ---- select / map ------------------------------------------------------------------------- */

/* select/reject/selectattr/rejectattr: with_attr takes the attribute as the first argument. */
static mlxr_status do_select(jrt *rt, jframe *f, jv in, const jargs *a, bool with_attr, bool want,
                             jv *out) {
    size_t off = with_attr ? 1 : 0;
    if (with_attr && a->n_pos < 1)
        return jfail(rt, MLXR_ERR_INVALID, "Missing parameter for attribute name");
    if (!jv_truthy(in)) return jv_list(rt, 0, out); /* jinja2: `if seq:` guards the loop */
    jv items;
    TRY(jiter_list(rt, in, &items));
    mlxr_status st = jv_list(rt, 0, out);
    const char *test = a->n_pos > off && a->pos[off].t == JV_STR ? a->pos[off].u.s->s : NULL;
    jargs targs = {a->pos + off + 1, a->n_pos > off + 1 ? a->n_pos - off - 1 : 0, NULL, NULL, 0};
    for (size_t i = 0; i < items.u.l->n && !st; i++) {
        jv item = items.u.l->v[i], v;
        if (with_attr)
            st = attr_path(rt, item, a->pos[0], &v);
        else
            v = jv_retain(item);
        if (st) break;
        bool r;
        if (test)
            st = jtest_apply(rt, f, test, v, &targs, &r);
        else
            r = jv_truthy(v);
        jv_release(rt, v);
        if (!st && r == want) st = jlist_push(rt, out->u.l, jv_retain(item));
    }
    jv_release(rt, items);
    return st;
}

static mlxr_status do_map(jrt *rt, jframe *f, jv in, const jargs *a, jv *out) {
    if (!jv_truthy(in)) return jv_list(rt, 0, out); /* jinja2: `if value:` guards the loop */
    jv items;
    TRY(jiter_list(rt, in, &items));
    mlxr_status st = jv_list(rt, items.u.l->n, out);
    const jv *attribute = arg(a, (size_t)-1, "attribute");
    const jv *dflt = arg(a, (size_t)-1, "default");
    if (!attribute && (a->n_pos < 1 || a->pos[0].t != JV_STR))
        st = st ? st : jfail(rt, MLXR_ERR_INVALID, "map requires a filter argument");
    jargs fargs = {a->pos + 1, a->n_pos ? a->n_pos - 1 : 0, NULL, NULL, 0};
    for (size_t i = 0; i < items.u.l->n && !st; i++) {
        jv r;
        if (attribute) {
            st = attr_path(rt, items.u.l->v[i], *attribute, &r);
            if (!st && r.t == JV_UNDEF && dflt) {
                jv_release(rt, r);
                r = jv_retain(*dflt);
            }
        } else {
            st = jfilter_apply(rt, f, a->pos[0].u.s->s, items.u.l->v[i], &fargs, &r);
        }
        if (!st) out->u.l->v[out->u.l->n++] = r;
    }
    jv_release(rt, items);
    return st;
}

/* ---- string filters ----------------------------------------------------------------------- */

static bool is_linebreak(const char *s, size_t n, size_t i, size_t *w) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r') {
        *w = i + 1 < n && s[i + 1] == '\n' ? 2 : 1;
        return true;
    }
    if (c == '\n' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e)) {
        *w = 1;
        return true;
    }
    if (c >= 0x80) {
        uint32_t cp = jutf8_decode(s + i, n - i, w);
        return cp == 0x85 || cp == 0x2028 || cp == 0x2029;
    }
    return false;
}

/* Python str.splitlines() (no keepends) into a list of strings. */
mlxr_status jstr_splitlines(jrt *rt, const char *s, size_t n, jv *out) {
    TRY(jv_list(rt, 0, out));
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        size_t w;
        if (is_linebreak(s, n, i, &w)) {
            jv line;
            TRY(jv_str(rt, s + start, i - start, &line));
            TRY(jlist_push(rt, out->u.l, line));
            i += w;
            start = i;
        } else {
            i++;
        }
    }
    if (start < n) {
        jv line;
        TRY(jv_str(rt, s + start, n - start, &line));
        TRY(jlist_push(rt, out->u.l, line));
    }
    return MLXR_OK;
}

static mlxr_status do_indent(jrt *rt, jv in, const jargs *a, jv *out) {
    const jv *wv = arg(a, 0, "width");
    bool first = arg_bool(a, 1, "first", false), blank = arg_bool(a, 2, "blank", false);
    char ind_buf[256];
    const char *ind = "    ";
    size_t nind = 4;
    if (wv && wv->t == JV_STR) {
        ind = wv->u.s->s;
        nind = wv->u.s->len;
    } else if (wv && (wv->t == JV_INT || wv->t == JV_BOOL)) {
        int64_t w = wv->t == JV_INT ? wv->u.i : wv->u.b;
        if (w < 0) w = 0;
        if (w >= (int64_t)sizeof ind_buf)
            return jfail(rt, MLXR_ERR_RANGE, "indent width too large");
        memset(ind_buf, ' ', (size_t)w);
        ind = ind_buf;
        nind = (size_t)w;
    }
    /* jinja2 appends "\n" to the value and calls splitlines(): only strings survive that */
    if (in.t == JV_UNDEF) return undef_fail(rt, in);
    if (in.t == JV_LIST && !in.u.l->iter_type)
        return jfail(rt, MLXR_ERR_INVALID, "'%s' object has no attribute 'splitlines'",
                     jv_type_name(in));
    if (in.t != JV_STR)
        return jfail(rt, MLXR_ERR_INVALID, "unsupported operand type(s) for +=: '%s' and 'str'",
                     jv_type_name(in));
    jv tmp;
    const jstr *s;
    TRY(as_str(rt, in, &tmp, &s));
    jbuf src = {0}, b = {0};
    mlxr_status st = jbuf_put(rt, &src, s->s, s->len);
    if (!st) st = jbuf_putc(rt, &src, '\n'); /* jinja2 appends a newline before splitlines */
    jv lines = jv_undef();
    if (!st) st = jstr_splitlines(rt, src.p, src.n, &lines);
    if (!st && first) st = jbuf_put(rt, &b, ind, nind);
    for (size_t i = 0; i < (st ? 0 : lines.u.l->n) && !st; i++) {
        const jstr *line = lines.u.l->v[i].u.s;
        if (i) st = jbuf_putc(rt, &b, '\n');
        if (!st && i && (blank || line->len)) st = jbuf_put(rt, &b, ind, nind);
        if (!st) st = jbuf_put(rt, &b, line->s, line->len);
    }
    jv_release(rt, lines);
    jbuf_free(rt, &src);
    jv_release(rt, tmp);
    return buf_to_str(rt, &b, st, out);
}

static mlxr_status do_replace(jrt *rt, const jstr *s, const jstr *old, const jstr *new_,
                              int64_t count, jv *out) {
    jbuf b = {0};
    mlxr_status st = MLXR_OK;
    size_t i = 0;
    int64_t done = 0;
    if (old->len == 0) { /* Python inserts `new` between every code point and at both ends */
        while (!st && (count < 0 || done < count) && i <= s->len) {
            st = jbuf_put(rt, &b, new_->s, new_->len);
            done++;
            if (i == s->len) {
                i++;
                break;
            }
            size_t w;
            jutf8_decode(s->s + i, s->len - i, &w);
            if (!st) st = jbuf_put(rt, &b, s->s + i, w);
            i += w;
        }
        if (!st && i < s->len) st = jbuf_put(rt, &b, s->s + i, s->len - i);
        return buf_to_str(rt, &b, st, out);
    }
    while (!st && i <= s->len) {
        const char *hit =
            (count < 0 || done < count) ? memmem(s->s + i, s->len - i, old->s, old->len) : NULL;
        if (!hit) {
            st = jbuf_put(rt, &b, s->s + i, s->len - i);
            break;
        }
        size_t k = (size_t)(hit - s->s);
        st = jbuf_put(rt, &b, s->s + i, k - i);
        if (!st) st = jbuf_put(rt, &b, new_->s, new_->len);
        i = k + old->len;
        done++;
    }
    return buf_to_str(rt, &b, st, out);
}

mlxr_status jstr_replace(jrt *rt, const jstr *s, const jstr *old, const jstr *new_, int64_t count,
                         jv *out) {
    return do_replace(rt, s, old, new_, count, out);
}

mlxr_status jstr_html_escape(jrt *rt, jbuf *b, const char *s, size_t n) {
    mlxr_status st = MLXR_OK;
    for (size_t i = 0; i < n && !st; i++) {
        const char *r = NULL;
        switch (s[i]) {
        case '&':
            r = "&amp;";
            break;
        case '<':
            r = "&lt;";
            break;
        case '>':
            r = "&gt;";
            break;
        case '"':
            r = "&#34;";
            break;
        case '\'':
            r = "&#39;";
            break;
        }
        st = r ? jbuf_put(rt, b, r, strlen(r)) : jbuf_putc(rt, b, s[i]);
    }
    return st;
}

static mlxr_status do_escape(jrt *rt, const jstr *s, jv *out) {
    jbuf b = {0};
    mlxr_status st = MLXR_OK;
    if (s->safe) { /* Markup is already escaped */
        jv v = {JV_STR, {0}};
        v.u.s = (jstr *)s;
        *out = jv_retain(v);
        return MLXR_OK;
    }
    for (size_t i = 0; i < s->len && !st; i++) {
        const char *r = NULL;
        switch (s->s[i]) {
        case '&':
            r = "&amp;";
            break;
        case '<':
            r = "&lt;";
            break;
        case '>':
            r = "&gt;";
            break;
        case '"':
            r = "&#34;";
            break;
        case '\'':
            r = "&#39;";
            break;
        }
        st = r ? jbuf_put(rt, &b, r, strlen(r)) : jbuf_putc(rt, &b, s->s[i]);
    }
    return buf_to_str(rt, &b, st, out);
}

static mlxr_status do_join(jrt *rt, jv in, const jargs *a, jv *out) {
    const jv *sepv = arg(a, 0, "d");
    const jv *attribute = arg(a, 1, "attribute");
    jv items;
    TRY(jiter_list(rt, in, &items));
    jbuf b = {0};
    mlxr_status st = MLXR_OK;
    for (size_t i = 0; i < items.u.l->n && !st; i++) {
        if (i && sepv) st = jv_to_str(rt, &b, *sepv);
        if (st) break;
        if (attribute) {
            jv v;
            st = attr_path(rt, items.u.l->v[i], *attribute, &v);
            if (!st) st = jv_to_str(rt, &b, v);
            jv_release(rt, v);
        } else {
            st = jv_to_str(rt, &b, items.u.l->v[i]);
        }
    }
    jv_release(rt, items);
    return buf_to_str(rt, &b, st, out);
}

/* ---- numbers ------------------------------------------------------------------------------ */

static mlxr_status do_round(jrt *rt, jv in, const jargs *a, jv *out) {
    const jv *pv = arg(a, 0, "precision");
    const jv *mv = arg(a, 1, "method");
    int64_t prec = pv && pv->t == JV_INT ? pv->u.i : 0;
    const char *method = mv && mv->t == JV_STR ? mv->u.s->s : "common";
    if (!jv_is_num(in))
        return jfail(rt, MLXR_ERR_INVALID, "type %s doesn't define __round__ method",
                     jv_type_name(in));
    if (prec < -20 || prec > 20) return jfail(rt, MLXR_ERR_RANGE, "round precision out of range");
    double x = jv_num(in), scale = pow(10.0, (double)prec);
    if (!strcmp(method, "common")) {
        if (in.t != JV_FLOAT) { /* round(int, n) stays an int */
            *out = jv_int(in.t == JV_INT ? in.u.i : in.u.b);
            return MLXR_OK;
        }
        if (prec >= 0) {
            /* Python rounds the exact binary value half-to-even at `prec` decimals; printf's
             * correctly rounded %.*f does the same */
            char tmp[400];
            snprintf(tmp, sizeof tmp, "%.*f", (int)prec, x);
            *out = jv_float(strtod(tmp, NULL));
        } else {
            *out = jv_float(nearbyint(x * scale) / scale);
        }
        return MLXR_OK;
    }
    if (!strcmp(method, "ceil"))
        *out = jv_float(ceil(x * scale) / scale);
    else if (!strcmp(method, "floor"))
        *out = jv_float(floor(x * scale) / scale);
    else
        return jfail(rt, MLXR_ERR_INVALID, "method must be common, ceil or floor");
    return MLXR_OK;
}

static mlxr_status do_int(jrt *rt, jv in, const jargs *a, jv *out) {
    const jv *d = arg(a, 0, "default");
    jv dflt = d ? *d : jv_int(0);
    if (in.t == JV_INT || in.t == JV_BOOL) {
        *out = jv_int(in.t == JV_INT ? in.u.i : in.u.b);
        return MLXR_OK;
    }
    if (in.t == JV_FLOAT) {
        if (isfinite(in.u.f) && fabs(in.u.f) < 9.2e18) {
            *out = jv_int((int64_t)in.u.f);
            return MLXR_OK;
        }
    } else if (in.t == JV_STR) {
        size_t s, e;
        jstr_strip(in.u.s->s, in.u.s->len, NULL, 0, 3, &s, &e);
        char buf[64];
        if (e - s > 0 && e - s < sizeof buf) {
            memcpy(buf, in.u.s->s + s, e - s);
            buf[e - s] = '\0';
            char *end;
            long long v = strtoll(buf, &end, 10);
            if (!*end) {
                *out = jv_int(v);
                return MLXR_OK;
            }
            double fv = strtod(buf, &end);
            if (!*end && isfinite(fv) && fabs(fv) < 9.2e18) {
                *out = jv_int((int64_t)fv);
                return MLXR_OK;
            }
        }
    }
    *out = jv_retain(dflt);
    return MLXR_OK;
}

static mlxr_status do_float(jrt *rt, jv in, const jargs *a, jv *out) {
    const jv *d = arg(a, 0, "default");
    if (jv_is_num(in)) {
        *out = jv_float(jv_num(in));
        return MLXR_OK;
    }
    if (in.t == JV_STR) {
        size_t s, e;
        jstr_strip(in.u.s->s, in.u.s->len, NULL, 0, 3, &s, &e);
        char buf[128];
        if (e - s > 0 && e - s < sizeof buf) {
            memcpy(buf, in.u.s->s + s, e - s);
            buf[e - s] = '\0';
            char *end;
            double v = strtod(buf, &end);
            if (!*end) {
                *out = jv_float(v);
                return MLXR_OK;
            }
        }
    }
    *out = d ? jv_retain(*d) : jv_float(0.0);
    return MLXR_OK;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static mlxr_status do_tojson(jrt *rt, jv in, const jargs *a, jv *out) {
    const jv *ind = arg(a, 1, "indent");
    const jv *seps = arg(a, 2, "separators");
    const jv *sk = arg(a, 3, "sort_keys");
    const jv *ea = arg(a, 0, "ensure_ascii");
    int indent = -1;
    const char *indent_str = NULL;
    if (ind && (ind->t == JV_INT || ind->t == JV_BOOL)) {
        int64_t w = ind->t == JV_INT ? ind->u.i : ind->u.b;
        indent = w < 0 ? 0 : w > 32 ? 32 : (int)w;
    } else if (ind && ind->t == JV_STR) {
        indent_str = ind->u.s->s;
    }
    const char *item_sep = NULL, *key_sep = NULL;
    if (seps && seps->t == JV_LIST && seps->u.l->n == 2 && seps->u.l->v[0].t == JV_STR &&
        seps->u.l->v[1].t == JV_STR) {
        item_sep = seps->u.l->v[0].u.s->s;
        key_sep = seps->u.l->v[1].u.s->s;
    }
    jbuf b = {0};
    mlxr_status st = jjson_dump(rt, &b, in, indent, indent_str, item_sep, key_sep,
                                sk && jv_truthy(*sk), ea && jv_truthy(*ea));
    return buf_to_str(rt, &b, st, out);
}

static mlxr_status case_filter(jrt *rt, jv in, int which, jv *out) {
    jv tmp;
    const jstr *s;
    TRY(as_str(rt, in, &tmp, &s));
    jbuf b = {0};
    mlxr_status st = which == 0   ? jstr_upper(rt, &b, s->s, s->len)
                     : which == 1 ? jstr_lower(rt, &b, s->s, s->len)
                     : which == 2 ? jstr_title(rt, &b, s->s, s->len)
                                  : jstr_capitalize(rt, &b, s->s, s->len);
    jv_release(rt, tmp);
    return buf_to_str(rt, &b, st, out);
}

static mlxr_status first_last(jrt *rt, jv in, bool last, jv *out) {
    /* jinja2: next(iter(value)) / next(iter(reversed(value))) */
    if (last && ((in.t == JV_LIST && in.u.l->lazy) ||
                 (in.t != JV_LIST && in.t != JV_STR && in.t != JV_DICT && in.t != JV_UNDEF)))
        return jfail(rt, MLXR_ERR_INVALID, "'%s' object is not reversible", jv_type_name(in));
    jv items;
    TRY(jiter_list(rt, in, &items));
    if (items.u.l->n == 0) {
        jv_release(rt, items);
        return jv_undef_msg(rt, out, "No %s item, sequence was empty.", last ? "last" : "first");
    }
    *out = jv_retain(items.u.l->v[last ? items.u.l->n - 1 : 0]);
    jv_release(rt, items);
    return MLXR_OK;
}

static mlxr_status do_items(jrt *rt, jv in, jv *out) {
    if (in.t == JV_UNDEF) return jv_list(rt, 0, out);
    if (in.t != JV_DICT)
        return jfail(rt, MLXR_ERR_INVALID, "Can only get item pairs from a mapping.");
    TRY(jv_list(rt, in.u.d->n, out));
    for (size_t i = 0; i < in.u.d->n; i++) {
        jv pair;
        TRY(jv_list(rt, 2, &pair));
        pair.u.l->tuple = true;
        pair.u.l->v[0] = jv_retain(in.u.d->k[i]);
        pair.u.l->v[1] = jv_retain(in.u.d->v[i]);
        pair.u.l->n = 2;
        out->u.l->v[out->u.l->n++] = pair;
    }
    return MLXR_OK;
}

static mlxr_status do_batch(jrt *rt, jv in, const jargs *a, jv *out) {
    const jv *cv = arg(a, 0, "linecount");
    const jv *fill = arg(a, 1, "fill_with");
    if (!cv || cv->t != JV_INT || cv->u.i <= 0)
        return jfail(rt, MLXR_ERR_INVALID, "batch expects a positive line count");
    jv items;
    TRY(jiter_list(rt, in, &items));
    mlxr_status st = jv_list(rt, 0, out);
    size_t k = (size_t)cv->u.i;
    for (size_t i = 0; i < items.u.l->n && !st; i += k) {
        jv row;
        st = jv_list(rt, 0, &row);
        for (size_t j = i; j < i + k && !st; j++) {
            if (j < items.u.l->n)
                st = jlist_push(rt, row.u.l, jv_retain(items.u.l->v[j]));
            else if (fill)
                st = jlist_push(rt, row.u.l, jv_retain(*fill));
        }
        if (!st) st = jlist_push(rt, out->u.l, row);
    }
    jv_release(rt, items);
    return st;
}

static mlxr_status do_sum(jrt *rt, jv in, const jargs *a, jv *out) {
    const jv *attribute = arg(a, 0, "attribute");
    const jv *start = arg(a, 1, "start");
    jv items;
    TRY(jiter_list(rt, in, &items));
    jv acc = start ? jv_retain(*start) : jv_int(0);
    mlxr_status st = MLXR_OK;
    for (size_t i = 0; i < items.u.l->n && !st; i++) {
        jv v;
        if (attribute)
            st = attr_path(rt, items.u.l->v[i], *attribute, &v);
        else
            v = jv_retain(items.u.l->v[i]);
        if (st) break;
        if (!jv_is_num(v) || !jv_is_num(acc)) {
            st = jfail(rt, MLXR_ERR_INVALID, "unsupported operand type(s) for +: '%s' and '%s'",
                       jv_type_name(acc), jv_type_name(v));
        } else if (acc.t != JV_FLOAT && v.t != JV_FLOAT) {
            int64_t r, x = acc.t == JV_INT ? acc.u.i : acc.u.b, y = v.t == JV_INT ? v.u.i : v.u.b;
            if (__builtin_add_overflow(x, y, &r))
                st = jfail(rt, MLXR_ERR_RANGE, "integer overflow");
            acc = jv_int(r);
        } else {
            acc = jv_float(jv_num(acc) + jv_num(v));
        }
        jv_release(rt, v);
    }
    jv_release(rt, items);
    if (st) {
        jv_release(rt, acc);
        return st;
    }
    *out = acc;
    return MLXR_OK;
}

static mlxr_status do_minmax(jrt *rt, jv in, const jargs *a, bool max, jv *out) {
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    const jv *attribute = arg(a, 1, "attribute");
    jv items;
    TRY(jiter_list(rt, in, &items));
    mlxr_status st = MLXR_OK;
    jv best = jv_undef(), best_key = jv_undef();
    for (size_t i = 0; i < items.u.l->n && !st; i++) {
        jv k;
        st = sort_key(rt, items.u.l->v[i], attribute, cs, &k);
        if (st) break;
        int c = 1;
        if (i) st = jv_cmp(rt, k, best_key, &c);
        if (!st && (i == 0 || (max ? c > 0 : c < 0))) {
            jv_release(rt, best_key);
            best_key = k;
            best = items.u.l->v[i];
        } else {
            jv_release(rt, k);
        }
    }
    jv_release(rt, best_key);
    if (!st && items.u.l->n == 0)
        st = jv_undef_msg(rt, out, "No aggregated item, sequence was empty.");
    else if (!st)
        *out = jv_retain(best);
    jv_release(rt, items);
    return st;
}

static mlxr_status do_dictsort(jrt *rt, jv in, const jargs *a, jv *out) {
    if (in.t != JV_DICT)
        return jfail(rt, MLXR_ERR_INVALID, "You can only sort by either \"key\" or \"value\"");
    const jv *by = arg(a, 1, "by");
    bool by_value = by && by->t == JV_STR && !strcmp(by->u.s->s, "value");
    jv pairs, idx, sargs[3];
    const char *names[3] = {"reverse", "case_sensitive", "attribute"};
    TRY(do_items(rt, in, &pairs));
    sargs[0] = jv_bool(arg_bool(a, 2, "reverse", false));
    sargs[1] = jv_bool(arg_bool(a, 0, "case_sensitive", false));
    sargs[2] = jv_int(by_value ? 1 : 0);
    jargs sa = {NULL, 0, sargs, names, 3};
    mlxr_status st = do_sort(rt, pairs, &sa, &idx);
    jv_release(rt, pairs);
    if (!st) *out = idx;
    return st;
}

static bool in_list(const char *const *names, const char *name) {
    for (; *names; names++)
        if (!strcmp(*names, name)) return true;
    return false;
}

bool jfilter_is_jinja(const char *name) {
    static const char *const F[] = {
        "abs",    "attr",       "batch",       "capitalize", "center",   "count",
        "d",      "default",    "dictsort",    "e",          "escape",   "filesizeformat",
        "first",  "float",      "forceescape", "format",     "groupby",  "indent",
        "int",    "items",      "join",        "last",       "length",   "list",
        "lower",  "map",        "max",         "min",        "pprint",   "random",
        "reject", "rejectattr", "replace",     "reverse",    "round",    "safe",
        "select", "selectattr", "slice",       "sort",       "string",   "striptags",
        "sum",    "title",      "tojson",      "trim",       "truncate", "unique",
        "upper",  "urlencode",  "urlize",      "wordcount",  "wordwrap", "xmlattr",
        NULL};
    return in_list(F, name);
}

bool jtest_is_jinja(const char *name) {
    static const char *const T[] = {
        "boolean", "callable", "defined",  "divisibleby", "eq",    "equalto", "escaped",
        "even",    "false",    "filter",   "float",       "ge",    "gt",      "greaterthan",
        "in",      "integer",  "iterable", "le",          "lower", "lt",      "lessthan",
        "mapping", "ne",       "none",     "number",      "odd",   "sameas",  "sequence",
        "string",  "test",     "true",     "undefined",   "upper", "==",      "!=",
        ">",       ">=",       "<",        "<=",          NULL};
    return in_list(T, name);
}

mlxr_status jfilter_apply(jrt *rt, jframe *f, const char *name, jv in, const jargs *a, jv *out) {
    *out = jv_undef();
    TRY(jstep(rt));
    if (!strcmp(name, "tojson")) return do_tojson(rt, in, a, out);
    if (!strcmp(name, "safe")) { /* Markup: `+` with a plain str escapes the str */
        if (in.t == JV_STR && in.u.s->safe) {
            *out = jv_retain(in);
            return MLXR_OK;
        }
        jv tmp;
        TRY(jv_stringify(rt, in, &tmp));
        mlxr_status st = jv_str(rt, tmp.u.s->s, tmp.u.s->len, out);
        jv_release(rt, tmp);
        if (!st) out->u.s->safe = true;
        return st;
    }
    if (!strcmp(name, "string")) return jv_stringify(rt, in, out);
    if (!strcmp(name, "trim")) {
        jv tmp;
        const jstr *s;
        TRY(as_str(rt, in, &tmp, &s));
        const jv *chars = arg(a, 0, "chars");
        size_t b, e;
        bool cs = chars && chars->t == JV_STR;
        jstr_strip(s->s, s->len, cs ? chars->u.s->s : NULL, cs ? chars->u.s->len : 0, 3, &b, &e);
        mlxr_status st = jv_str(rt, s->s + b, e - b, out);
        jv_release(rt, tmp);
        return st;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        int64_t n = 0;
        TRY(length_of(rt, in, &n));
        *out = jv_int(n);
        return MLXR_OK;
    }
    if (!strcmp(name, "upper")) return case_filter(rt, in, 0, out);
    if (!strcmp(name, "lower")) return case_filter(rt, in, 1, out);
    if (!strcmp(name, "title")) return case_filter(rt, in, 2, out);
    if (!strcmp(name, "capitalize")) return case_filter(rt, in, 3, out);
    if (!strcmp(name, "join")) return do_join(rt, in, a, out);
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        const jv *d = arg(a, 0, "default_value");
        bool boolean = arg_bool(a, 1, "boolean", false);
        bool use = in.t == JV_UNDEF || (boolean && !jv_truthy(in));
        if (!use)
            *out = jv_retain(in);
        else if (d)
            *out = jv_retain(*d);
        else
            return jv_str(rt, "", 0, out);
        return MLXR_OK;
    }
    if (!strcmp(name, "first")) return first_last(rt, in, false, out);
    if (!strcmp(name, "last")) return first_last(rt, in, true, out);
    if (!strcmp(name, "list")) {
        jv items;
        TRY(jiter_list(rt, in, &items));
        if (in.t != JV_LIST) {
            *out = items;
            return MLXR_OK;
        }
        jv_release(rt, items);
        TRY(jv_list(rt, in.u.l->n, out)); /* a fresh list, as list() builds */
        for (size_t i = 0; i < in.u.l->n; i++)
            out->u.l->v[out->u.l->n++] = jv_retain(in.u.l->v[i]);
        return MLXR_OK;
    }
    if ((!strcmp(name, "int") || !strcmp(name, "float")) && in.t == JV_UNDEF)
        return undef_fail(rt, in); /* int(Undefined) raises */
    if (!strcmp(name, "int")) return do_int(rt, in, a, out);
    if (!strcmp(name, "float")) return do_float(rt, in, a, out);
    if (!strcmp(name, "abs")) {
        if (in.t == JV_INT) {
            if (in.u.i == INT64_MIN) return jfail(rt, MLXR_ERR_RANGE, "integer overflow");
            *out = jv_int(in.u.i < 0 ? -in.u.i : in.u.i);
        } else if (in.t == JV_BOOL)
            *out = jv_int(in.u.b);
        else if (in.t == JV_FLOAT)
            *out = jv_float(fabs(in.u.f));
        else
            return jfail(rt, MLXR_ERR_INVALID, "bad operand type for abs(): '%s'",
                         jv_type_name(in));
        return MLXR_OK;
    }
    if (!strcmp(name, "replace")) {
        const jv *o = arg(a, 0, "old"), *n = arg(a, 1, "new"), *c = arg(a, 2, "count");
        if (!o || !n) return jfail(rt, MLXR_ERR_INVALID, "replace expects old and new");
        jv t0, t1, t2;
        const jstr *s, *os, *ns;
        TRY(as_str(rt, in, &t0, &s));
        mlxr_status st = as_str(rt, *o, &t1, &os);
        if (st) {
            jv_release(rt, t0);
            return st;
        }
        st = as_str(rt, *n, &t2, &ns);
        if (!st) {
            st = do_replace(rt, s, os, ns, c && c->t == JV_INT ? c->u.i : -1, out);
            jv_release(rt, t2);
        }
        jv_release(rt, t0);
        jv_release(rt, t1);
        return st;
    }
    if (!strcmp(name, "round")) return do_round(rt, in, a, out);
    /* these return generators in jinja2 */
    mlxr_status gst = MLXR_ERR_NOT_FOUND;
    if (!strcmp(name, "map"))
        gst = do_map(rt, f, in, a, out);
    else if (!strcmp(name, "select"))
        gst = do_select(rt, f, in, a, false, true, out);
    else if (!strcmp(name, "reject"))
        gst = do_select(rt, f, in, a, false, false, out);
    else if (!strcmp(name, "selectattr"))
        gst = do_select(rt, f, in, a, true, true, out);
    else if (!strcmp(name, "rejectattr"))
        gst = do_select(rt, f, in, a, true, false, out);
    else if (!strcmp(name, "unique"))
        gst = do_unique(rt, in, a, out);
    else if (!strcmp(name, "batch"))
        gst = do_batch(rt, in, a, out);
    else if (!strcmp(name, "items"))
        gst = do_items(rt, in, out);
    if (gst != MLXR_ERR_NOT_FOUND) {
        if (!gst) jlist_mark(*out, "generator", true);
        return gst;
    }
    if (!strcmp(name, "sort")) return do_sort(rt, in, a, out);
    if (!strcmp(name, "reverse")) {
        if (in.t == JV_STR) {
            jbuf b = {0};
            mlxr_status st = MLXR_OK;
            for (size_t i = in.u.s->len; i > 0 && !st;) { /* one code point at a time */
                size_t j = i - 1;
                while (j > 0 && ((unsigned char)in.u.s->s[j] & 0xc0) == 0x80 && i - j < 4)
                    j--;
                st = jbuf_put(rt, &b, in.u.s->s + j, i - j);
                i = j;
            }
            return buf_to_str(rt, &b, st, out);
        }
        if (in.t != JV_LIST && in.t != JV_DICT && in.t != JV_UNDEF)
            return jfail(rt, MLXR_ERR_INVALID, "argument must be iterable");
        jv items;
        TRY(jiter_list(rt, in, &items));
        mlxr_status st = jv_list(rt, items.u.l->n, out);
        for (size_t i = items.u.l->n; i > 0 && !st; i--)
            out->u.l->v[out->u.l->n++] = jv_retain(items.u.l->v[i - 1]);
        if (!st && in.t == JV_LIST && !in.u.l->lazy) jlist_mark(*out, "list_reverseiterator", true);
        jv_release(rt, items);
        return st;
    }
    if (!strcmp(name, "indent")) return do_indent(rt, in, a, out);
    if (!strcmp(name, "e") || !strcmp(name, "escape")) {
        jv tmp;
        const jstr *s;
        TRY(as_str(rt, in, &tmp, &s));
        mlxr_status st = do_escape(rt, s, out);
        jv_release(rt, tmp);
        return st;
    }
    if (!strcmp(name, "sum")) return do_sum(rt, in, a, out);
    if (!strcmp(name, "min") || !strcmp(name, "max"))
        return do_minmax(rt, in, a, name[1] == 'a', out);
    if (!strcmp(name, "dictsort")) return do_dictsort(rt, in, a, out);
    if (!strcmp(name, "attr")) {
        const jv *n = arg(a, 0, "name");
        if (!n || n->t != JV_STR) return jfail(rt, MLXR_ERR_INVALID, "attr expects a name");
        if (in.t == JV_DICT && in.u.d->kind == JDICT_NAMESPACE) {
            jv *v = jdict_get(in.u.d, *n);
            if (v) {
                *out = jv_retain(*v);
                return MLXR_OK;
            }
        }
        return jv_undef_msg(rt, out, "'%s object' has no attribute '%s'", jv_type_name(in),
                            n->u.s->s);
    }
    if (!strcmp(name, "format")) {
        jv tmp;
        const jstr *s;
        if (a->n_kw)
            return jfail(rt, MLXR_ERR_UNSUPPORTED,
                         "format with keyword arguments is not supported");
        TRY(as_str(rt, in, &tmp, &s));
        mlxr_status st = jstr_percent_format(rt, s, a->pos, a->n_pos, out);
        jv_release(rt, tmp);
        return st;
    }
    if (jfilter_is_jinja(name))
        return jfail(rt, MLXR_ERR_UNSUPPORTED, "the jinja2 filter '%s' is not supported by mlxr",
                     name);
    return jfail(rt, MLXR_ERR_INVALID, "No filter named '%s'.", name);
}
