/*
 * jinja_methods.c - Python methods callable on template values: str (strip, split, startswith,
 * replace, find, format, join, ...), dict (get, items, keys, values, copy), list (index, count)
 * and loop.cycle. Mutating methods (list.append, dict.update, ...) are listed so that lookups
 * report them as unsafe, as jinja2's ImmutableSandboxedEnvironment does. String positions are
 * code points, as in Python.
 */
#include "template/template.h"

#include <stdio.h>
#include <string.h>

#define TRY(x)                                                                                     \
    do {                                                                                           \
        mlxr_status st_ = (x);                                                                     \
        if (st_) return st_;                                                                       \
    } while (0)

mlxr_status jstr_splitlines(jrt *rt, const char *s, size_t n, jv *out);
mlxr_status jstr_replace(jrt *rt, const jstr *s, const jstr *old, const jstr *new_, int64_t count,
                         jv *out);

enum {
    S_STRIP,
    S_LSTRIP,
    S_RSTRIP,
    S_SPLIT,
    S_RSPLIT,
    S_STARTSWITH,
    S_ENDSWITH,
    S_REPLACE,
    S_UPPER,
    S_LOWER,
    S_TITLE,
    S_CAPITALIZE,
    S_FIND,
    S_RFIND,
    S_INDEX,
    S_COUNT,
    S_FORMAT,
    S_JOIN,
    S_SPLITLINES,
    S_ISDIGIT,
    S_ISALPHA,
    S_ISALNUM,
    S_ISSPACE,
    S_ISUPPER,
    S_ISLOWER,
    S_N
};
static const char *const STR_M[S_N] = {
    "strip",   "lstrip",  "rstrip",  "split",  "rsplit",     "startswith", "endswith",
    "replace", "upper",   "lower",   "title",  "capitalize", "find",       "rfind",
    "index",   "count",   "format",  "join",   "splitlines", "isdigit",    "isalpha",
    "isalnum", "isspace", "isupper", "islower"};

enum { D_GET = 100, D_ITEMS, D_KEYS, D_VALUES, D_COPY };
static const char *const DICT_M[] = {"get", "items", "keys", "values", "copy"};
static const char *const DICT_UNSAFE[] = {"pop", "popitem", "update", "clear", "setdefault"};

enum { L_INDEX = 200, L_COUNT };
static const char *const LIST_M[] = {"index", "count"};
static const char *const LIST_UNSAFE[] = {"append", "extend",  "insert", "pop",
                                          "remove", "reverse", "sort",   "clear"};
enum { LOOP_CYCLE = 300 };

static int find_name(const char *const *tab, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(tab[i], name)) return (int)i;
    return -1;
}

#define COUNT(t) (sizeof(t) / sizeof *(t))

int jmethod_lookup(jv self, const char *name) {
    int k;
    switch (self.t) {
    case JV_STR:
        return find_name(STR_M, S_N, name);
    case JV_DICT:
        if (self.u.d->kind == JDICT_LOOP) return strcmp(name, "cycle") ? -1 : LOOP_CYCLE;
        if (self.u.d->kind != JDICT_PLAIN) return -1;
        if ((k = find_name(DICT_M, COUNT(DICT_M), name)) >= 0) return D_GET + k;
        if ((k = find_name(DICT_UNSAFE, COUNT(DICT_UNSAFE), name)) >= 0) return JMETHOD_UNSAFE + k;
        return -1;
    case JV_LIST:
        if ((k = find_name(LIST_M, COUNT(LIST_M), name)) >= 0) return L_INDEX + k;
        if ((k = find_name(LIST_UNSAFE, COUNT(LIST_UNSAFE), name)) >= 0) return JMETHOD_UNSAFE + k;
        return -1;
    default:
        return -1;
    }
}

static const jv *parg(const jargs *a, size_t i) {
    return i < a->n_pos ? &a->pos[i] : NULL;
}

static const jv *kwarg(const jargs *a, size_t i, const char *name) {
    if (i < a->n_pos) return &a->pos[i];
    for (size_t k = 0; k < a->n_kw; k++)
        if (!strcmp(a->kw_name[k], name)) return &a->kw_val[k];
    return NULL;
}

static mlxr_status need_str(jrt *rt, const jv *v, const char *what) {
    if (!v || v->t != JV_STR)
        return jfail(rt, MLXR_ERR_INVALID, "%s must be str, not %s", what,
                     v ? jv_type_name(*v) : "nothing");
    return MLXR_OK;
}

static mlxr_status buf_done(jrt *rt, jbuf *b, mlxr_status st, jv *out) {
    if (!st) st = jv_str(rt, b->p ? b->p : "", b->n, out);
    jbuf_free(rt, b);
    return st;
}

static mlxr_status push_str(jrt *rt, jlist *l, const char *s, size_t n) {
    jv v;
    TRY(jv_str(rt, s, n, &v));
    return jlist_push(rt, l, v);
}

static mlxr_status str_split(jrt *rt, const jstr *s, const jargs *a, bool right, jv *out) {
    const jv *sepv = kwarg(a, 0, "sep");
    const jv *mv = kwarg(a, 1, "maxsplit");
    int64_t maxsplit = mv && mv->t == JV_INT ? mv->u.i : -1;
    TRY(jv_list(rt, 0, out));
    jlist *l = out->u.l;
    const char *p = s->s;
    size_t n = s->len;
    if (!sepv || sepv->t == JV_NONE) { /* runs of whitespace; ends ignored */
        size_t i = 0, w;
        if (right && maxsplit >= 0) { /* rsplit(None, k): collect from the right */
            size_t e = n;
            jv tmp;
            TRY(jv_list(rt, 0, &tmp));
            int64_t done = 0;
            mlxr_status st = MLXR_OK;
            while (!st) {
                while (e > 0 && jstr_is_space_before(p, e, &w))
                    e -= w;
                if (e == 0) break;
                size_t b = e;
                if (done == maxsplit) {
                    st = push_str(rt, tmp.u.l, p, e);
                    break;
                }
                while (b > 0 && !jstr_is_space_before(p, b, &w))
                    b -= w;
                st = push_str(rt, tmp.u.l, p + b, e - b);
                done++;
                e = b;
            }
            for (size_t k = tmp.u.l->n; k > 0 && !st; k--)
                st = jlist_push(rt, l, jv_retain(tmp.u.l->v[k - 1]));
            jv_release(rt, tmp);
            return st;
        }
        int64_t done = 0;
        for (;;) {
            while (i < n && jstr_is_space_at(p, n, i, &w))
                i += w;
            if (i >= n) break;
            if (maxsplit >= 0 && done == maxsplit) {
                TRY(push_str(rt, l, p + i, n - i));
                break;
            }
            size_t b = i;
            while (i < n && !jstr_is_space_at(p, n, i, &w))
                i += w;
            TRY(push_str(rt, l, p + b, i - b));
            done++;
        }
        return MLXR_OK;
    }
    TRY(need_str(rt, sepv, "separator"));
    const jstr *sep = sepv->u.s;
    if (sep->len == 0) return jfail(rt, MLXR_ERR_INVALID, "empty separator");
    if (right) {
        /* split from the right, then reverse */
        jv tmp;
        TRY(jv_list(rt, 0, &tmp));
        size_t e = n;
        int64_t done = 0;
        mlxr_status st = MLXR_OK;
        for (;;) {
            const char *hit = NULL;
            if (maxsplit < 0 || done < maxsplit)
                for (size_t k = e; k >= sep->len; k--)
                    if (!memcmp(p + k - sep->len, sep->s, sep->len)) {
                        hit = p + k - sep->len;
                        break;
                    }
            if (!hit) {
                st = push_str(rt, tmp.u.l, p, e);
                break;
            }
            size_t b = (size_t)(hit - p);
            st = push_str(rt, tmp.u.l, p + b + sep->len, e - b - sep->len);
            if (st) break;
            e = b;
            done++;
        }
        for (size_t k = tmp.u.l->n; k > 0 && !st; k--)
            st = jlist_push(rt, l, jv_retain(tmp.u.l->v[k - 1]));
        jv_release(rt, tmp);
        return st;
    }
    size_t i = 0;
    int64_t done = 0;
    for (;;) {
        const char *hit =
            maxsplit < 0 || done < maxsplit ? memmem(p + i, n - i, sep->s, sep->len) : NULL;
        if (!hit) {
            TRY(push_str(rt, l, p + i, n - i));
            break;
        }
        size_t k = (size_t)(hit - p);
        TRY(push_str(rt, l, p + i, k - i));
        i = k + sep->len;
        done++;
        TRY(jstep(rt));
    }
    return MLXR_OK;
}

static bool affix(const jstr *s, const jstr *x, bool end) {
    if (x->len > s->len) return false;
    return !memcmp(end ? s->s + s->len - x->len : s->s, x->s, x->len);
}

static mlxr_status str_affix(jrt *rt, const jstr *s, const jargs *a, bool end, jv *out) {
    const jv *x = parg(a, 0);
    if (x && x->t == JV_LIST && x->u.l->tuple) {
        bool hit = false;
        for (size_t i = 0; i < x->u.l->n && !hit; i++) {
            TRY(need_str(rt, &x->u.l->v[i], "tuple item"));
            hit = affix(s, x->u.l->v[i].u.s, end);
        }
        *out = jv_bool(hit);
        return MLXR_OK;
    }
    TRY(need_str(rt, x, end ? "endswith first arg" : "startswith first arg"));
    *out = jv_bool(affix(s, x->u.s, end));
    return MLXR_OK;
}

static mlxr_status str_find(jrt *rt, const jstr *s, const jargs *a, int which, jv *out) {
    const jv *x = parg(a, 0);
    TRY(need_str(rt, x, "substring"));
    const jstr *sub = x->u.s;
    if (which == S_COUNT) {
        int64_t c = 0;
        if (sub->len == 0)
            c = (int64_t)jstr_n_cp(s->s, s->len) + 1;
        else
            for (size_t i = 0; i + sub->len <= s->len;) {
                const char *h = memmem(s->s + i, s->len - i, sub->s, sub->len);
                if (!h) break;
                c++;
                i = (size_t)(h - s->s) + sub->len;
            }
        *out = jv_int(c);
        return MLXR_OK;
    }
    int64_t pos = -1;
    if (which == S_RFIND) {
        for (size_t k = s->len + 1; k-- > 0;)
            if (k + sub->len <= s->len && !memcmp(s->s + k, sub->s, sub->len)) {
                pos = (int64_t)jstr_n_cp(s->s, k);
                break;
            }
    } else {
        const char *h = sub->len ? memmem(s->s, s->len, sub->s, sub->len) : s->s;
        if (h) pos = (int64_t)jstr_n_cp(s->s, (size_t)(h - s->s));
    }
    if (pos < 0 && which == S_INDEX) return jfail(rt, MLXR_ERR_INVALID, "substring not found");
    *out = jv_int(pos);
    return MLXR_OK;
}

/* str.format with positional {} / {0} and named {name} fields (no format specs). */
static mlxr_status str_format(jrt *rt, const jstr *s, const jargs *a, jv *out) {
    jbuf b = {0};
    mlxr_status st = MLXR_OK;
    size_t auto_idx = 0;
    for (size_t i = 0; i < s->len && !st;) {
        char c = s->s[i];
        if ((c == '{' || c == '}') && i + 1 < s->len && s->s[i + 1] == c) {
            st = jbuf_putc(rt, &b, c);
            i += 2;
            continue;
        }
        if (c == '}') {
            st = jfail(rt, MLXR_ERR_INVALID, "Single '}' encountered in format string");
            break;
        }
        if (c != '{') {
            st = jbuf_putc(rt, &b, c);
            i++;
            continue;
        }
        const char *close = memchr(s->s + i, '}', s->len - i);
        if (!close) {
            st = jfail(rt, MLXR_ERR_INVALID, "Single '{' encountered in format string");
            break;
        }
        const char *f = s->s + i + 1;
        size_t fl = (size_t)(close - f);
        const jv *v = NULL;
        if (memchr(f, ':', fl) || memchr(f, '!', fl) || memchr(f, '.', fl) || memchr(f, '[', fl)) {
            st = jfail(rt, MLXR_ERR_UNSUPPORTED, "format specs in str.format are not supported");
            break;
        }
        if (fl == 0)
            v = parg(a, auto_idx++);
        else if (f[0] >= '0' && f[0] <= '9') {
            size_t idx = 0;
            for (size_t k = 0; k < fl && f[k] >= '0' && f[k] <= '9'; k++)
                idx = idx * 10 + (size_t)(f[k] - '0');
            v = parg(a, idx);
        } else {
            for (size_t k = 0; k < a->n_kw; k++)
                if (strlen(a->kw_name[k]) == fl && !memcmp(a->kw_name[k], f, fl)) v = &a->kw_val[k];
        }
        if (!v) {
            st = jfail(rt, MLXR_ERR_INVALID, "Replacement index %.*s out of range", (int)fl, f);
            break;
        }
        st = jv_to_str(rt, &b, *v);
        i = (size_t)(close - s->s) + 1;
    }
    return buf_done(rt, &b, st, out);
}

static mlxr_status str_join(jrt *rt, const jstr *s, const jargs *a, jv *out) {
    const jv *x = parg(a, 0);
    if (!x) return jfail(rt, MLXR_ERR_INVALID, "join() takes exactly one argument");
    jv items;
    TRY(jiter_list(rt, *x, &items));
    jbuf b = {0};
    mlxr_status st = MLXR_OK;
    for (size_t i = 0; i < items.u.l->n && !st; i++) {
        jv it = items.u.l->v[i];
        if (it.t != JV_STR) {
            st = jfail(rt, MLXR_ERR_INVALID, "sequence item %zu: expected str instance, %s found",
                       i, jv_type_name(it));
            break;
        }
        if (i) st = jbuf_put(rt, &b, s->s, s->len);
        if (!st) st = jbuf_put(rt, &b, it.u.s->s, it.u.s->len);
    }
    jv_release(rt, items);
    return buf_done(rt, &b, st, out);
}

static bool str_class(const jstr *s, int which) {
    if (s->len == 0) return false;
    bool any_cased = false;
    for (size_t i = 0; i < s->len;) {
        size_t w;
        uint32_t c = jutf8_decode(s->s + i, s->len - i, &w);
        bool digit = c >= '0' && c <= '9';
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0xc0;
        bool up = (c >= 'A' && c <= 'Z'), lo = (c >= 'a' && c <= 'z');
        switch (which) {
        case S_ISDIGIT:
            if (!digit) return false;
            break;
        case S_ISALPHA:
            if (!alpha) return false;
            break;
        case S_ISALNUM:
            if (!alpha && !digit) return false;
            break;
        case S_ISSPACE:
            if (!jstr_is_space_at(s->s, s->len, i, &w)) return false;
            break;
        case S_ISUPPER:
            if (lo) return false;
            any_cased |= up;
            break;
        case S_ISLOWER:
            if (up) return false;
            any_cased |= lo;
            break;
        }
        i += w;
    }
    return (which == S_ISUPPER || which == S_ISLOWER) ? any_cased : true;
}

static mlxr_status str_method(jrt *rt, int id, const jstr *s, const jargs *a, jv *out) {
    jbuf b = {0};
    switch (id) {
    case S_STRIP:
    case S_LSTRIP:
    case S_RSTRIP: {
        const jv *c = parg(a, 0);
        bool has = c && c->t == JV_STR;
        if (c && !has && c->t != JV_NONE) TRY(need_str(rt, c, "strip arg"));
        size_t x, y;
        jstr_strip(s->s, s->len, has ? c->u.s->s : NULL, has ? c->u.s->len : 0,
                   id == S_STRIP    ? 3
                   : id == S_LSTRIP ? 1
                                    : 2,
                   &x, &y);
        return jv_str(rt, s->s + x, y - x, out);
    }
    case S_SPLIT:
        return str_split(rt, s, a, false, out);
    case S_RSPLIT:
        return str_split(rt, s, a, true, out);
    case S_STARTSWITH:
        return str_affix(rt, s, a, false, out);
    case S_ENDSWITH:
        return str_affix(rt, s, a, true, out);
    case S_REPLACE: {
        const jv *o = parg(a, 0), *n = parg(a, 1), *c = kwarg(a, 2, "count");
        TRY(need_str(rt, o, "replace() argument 1"));
        TRY(need_str(rt, n, "replace() argument 2"));
        return jstr_replace(rt, s, o->u.s, n->u.s, c && c->t == JV_INT ? c->u.i : -1, out);
    }
    case S_UPPER:
        return buf_done(rt, &b, jstr_upper(rt, &b, s->s, s->len), out);
    case S_LOWER:
        return buf_done(rt, &b, jstr_lower(rt, &b, s->s, s->len), out);
    case S_TITLE:
        return buf_done(rt, &b, jstr_pytitle(rt, &b, s->s, s->len), out);
    case S_CAPITALIZE:
        return buf_done(rt, &b, jstr_capitalize(rt, &b, s->s, s->len), out);
    case S_FIND:
    case S_RFIND:
    case S_INDEX:
    case S_COUNT:
        return str_find(rt, s, a, id, out);
    case S_FORMAT:
        return str_format(rt, s, a, out);
    case S_JOIN:
        return str_join(rt, s, a, out);
    case S_SPLITLINES:
        return jstr_splitlines(rt, s->s, s->len, out);
    default:
        *out = jv_bool(str_class(s, id));
        return MLXR_OK;
    }
}

static mlxr_status dict_method(jrt *rt, int id, jdict *d, const jargs *a, jv *out) {
    switch (id) {
    case D_GET: {
        const jv *k = kwarg(a, 0, "key"), *dflt = kwarg(a, 1, "default");
        if (!k) return jfail(rt, MLXR_ERR_INVALID, "get expected at least 1 argument, got 0");
        jv *v = jdict_get(d, *k);
        *out = v ? jv_retain(*v) : dflt ? jv_retain(*dflt) : jv_none();
        return MLXR_OK;
    }
    case D_ITEMS:
    case D_KEYS:
    case D_VALUES:
        TRY(jv_list(rt, d->n, out));
        for (size_t i = 0; i < d->n; i++) {
            jv item;
            if (id == D_ITEMS) {
                TRY(jv_list(rt, 2, &item));
                item.u.l->tuple = true;
                item.u.l->v[0] = jv_retain(d->k[i]);
                item.u.l->v[1] = jv_retain(d->v[i]);
                item.u.l->n = 2;
            } else {
                item = jv_retain(id == D_KEYS ? d->k[i] : d->v[i]);
            }
            out->u.l->v[out->u.l->n++] = item;
        }
        jlist_mark(*out,
                   id == D_ITEMS  ? "dict_items"
                   : id == D_KEYS ? "dict_keys"
                                  : "dict_values",
                   false);
        return MLXR_OK;
    case D_COPY:
        TRY(jv_dict(rt, JDICT_PLAIN, out));
        for (size_t i = 0; i < d->n; i++)
            TRY(jdict_set(rt, out->u.d, jv_retain(d->k[i]), jv_retain(d->v[i])));
        return MLXR_OK;
    }
    return jfail(rt, MLXR_ERR_INTERNAL, "bad dict method");
}

mlxr_status jmethod_call(jrt *rt, const jfunc *fn, const jargs *a, jv *out) {
    jv self = fn->self;
    TRY(jstep(rt));
    if (fn->id == LOOP_CYCLE) {
        if (a->n_pos == 0) return jfail(rt, MLXR_ERR_INVALID, "no items for cycling given");
        int64_t k = (int64_t)self.u.d->loop_i;
        *out = jv_retain(a->pos[(size_t)k % a->n_pos]);
        return MLXR_OK;
    }
    if (self.t == JV_STR && fn->id < S_N) return str_method(rt, fn->id, self.u.s, a, out);
    if (self.t == JV_DICT && fn->id >= D_GET && fn->id < L_INDEX)
        return dict_method(rt, fn->id, self.u.d, a, out);
    if (self.t == JV_LIST && (fn->id == L_INDEX || fn->id == L_COUNT)) {
        const jv *x = parg(a, 0);
        if (!x) return jfail(rt, MLXR_ERR_INVALID, "expected 1 argument");
        int64_t c = 0;
        for (size_t i = 0; i < self.u.l->n; i++)
            if (jv_eq(self.u.l->v[i], *x)) {
                if (fn->id == L_INDEX) {
                    *out = jv_int((int64_t)i);
                    return MLXR_OK;
                }
                c++;
            }
        if (fn->id == L_INDEX) return jfail(rt, MLXR_ERR_INVALID, "value is not in list");
        *out = jv_int(c);
        return MLXR_OK;
    }
    return jfail(rt, MLXR_ERR_INTERNAL, "bad method");
}
