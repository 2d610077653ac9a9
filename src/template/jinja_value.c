/*
 * jinja_value.c - template values: counted memory, refcounted strings/lists/ordered dicts, and
 * Python semantics for truthiness, equality, ordering, str() and repr().
 *
 * Invariants: every heap object has rc >= 1 or rc == -1 (immortal); every byte allocated through
 * jmem_* is counted in rt->mem and an allocation that would pass rt->lim.max_mem fails with
 * MLXR_ERR_RANGE. Dicts keep insertion order (Python 3.7+ semantics) with linear lookup: templates
 * build small dicts, and the memory limit bounds the worst case.
 */
#include "template/template.h"

#include "util/err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mlxr_status jfail(jrt *rt, mlxr_status code, const char *fmt, ...) {
    if (rt->err && rt->err->code == MLXR_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rt->err->msg, sizeof rt->err->msg, fmt, ap);
        va_end(ap);
        rt->err->code = code;
        rt->err->file = __FILE__;
        rt->err->line = __LINE__;
    }
    return code;
}

/* ---- memory ------------------------------------------------------------------------------- */

void *jmem_alloc(jrt *rt, size_t n) {
    if (n > rt->lim.max_mem || rt->mem > rt->lim.max_mem - n) {
        jfail(rt, MLXR_ERR_RANGE, "template values exceed the memory limit of %zu bytes",
              rt->lim.max_mem);
        return NULL;
    }
    void *p = malloc(n ? n : 1);
    if (!p) {
        jfail(rt, MLXR_ERR_NOMEM, "out of memory rendering the template");
        return NULL;
    }
    rt->mem += n;
    return p;
}

void *jmem_realloc(jrt *rt, void *p, size_t old, size_t n) {
    if (n > old && (n - old > rt->lim.max_mem || rt->mem > rt->lim.max_mem - (n - old))) {
        jfail(rt, MLXR_ERR_RANGE, "template values exceed the memory limit of %zu bytes",
              rt->lim.max_mem);
        return NULL;
    }
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        jfail(rt, MLXR_ERR_NOMEM, "out of memory rendering the template");
        return NULL;
    }
    rt->mem = rt->mem - old + n;
    return q;
}

void jmem_free(jrt *rt, void *p, size_t n) {
    if (!p) return;
    free(p);
    rt->mem -= n;
}

mlxr_status jbuf_put(jrt *rt, jbuf *b, const char *s, size_t n) {
    if (n == 0) return MLXR_OK;
    if (b == rt->out && (n > rt->lim.max_output || b->n > rt->lim.max_output - n))
        return jfail(rt, MLXR_ERR_RANGE, "template output exceeds the limit of %zu bytes",
                     rt->lim.max_output);
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n + 1) {
            if (cap > SIZE_MAX / 2) return jfail(rt, MLXR_ERR_RANGE, "string too long");
            cap *= 2;
        }
        char *p = jmem_realloc(rt, b->p, b->cap, cap);
        if (!p) return rt->err ? rt->err->code : MLXR_ERR_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return MLXR_OK;
}

mlxr_status jbuf_putc(jrt *rt, jbuf *b, char c) {
    return jbuf_put(rt, b, &c, 1);
}

void jbuf_free(jrt *rt, jbuf *b) {
    jmem_free(rt, b->p, b->cap);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- constructors ------------------------------------------------------------------------- */

static mlxr_status status_of(jrt *rt) {
    return rt->err && rt->err->code != MLXR_OK ? rt->err->code : MLXR_ERR_NOMEM;
}

mlxr_status jv_str(jrt *rt, const char *s, size_t n, jv *out) {
    *out = jv_undef();
    if (n > SIZE_MAX - sizeof(jstr) - 1) return jfail(rt, MLXR_ERR_RANGE, "string too long");
    jstr *p = jmem_alloc(rt, sizeof(jstr) + n + 1);
    if (!p) return status_of(rt);
    p->rc = 1;
    p->safe = false;
    p->len = n;
    if (n) memcpy(p->s, s, n);
    p->s[n] = '\0';
    out->t = JV_STR;
    out->u.s = p;
    return MLXR_OK;
}

mlxr_status jv_strz(jrt *rt, const char *s, jv *out) {
    return jv_str(rt, s, strlen(s), out);
}

mlxr_status jv_undef_msg(jrt *rt, jv *out, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (k < 0) k = 0;
    if ((size_t)k >= sizeof msg) k = sizeof msg - 1;
    mlxr_status st = jv_str(rt, msg, (size_t)k, out);
    if (st) return st;
    out->t = JV_UNDEF; /* the string rides along as the message */
    return MLXR_OK;
}

mlxr_status jv_list(jrt *rt, size_t cap, jv *out) {
    *out = jv_undef();
    jlist *l = jmem_alloc(rt, sizeof *l);
    if (!l) return status_of(rt);
    l->rc = 1;
    l->tuple = false;
    l->iter_type = NULL;
    l->lazy = false;
    l->n = 0;
    l->cap = 0;
    l->v = NULL;
    if (cap) {
        if (cap > rt->lim.max_mem / sizeof(jv)) {
            jmem_free(rt, l, sizeof *l);
            return jfail(rt, MLXR_ERR_RANGE, "list of %zu items exceeds the memory limit", cap);
        }
        l->v = jmem_alloc(rt, cap * sizeof(jv));
        if (!l->v) {
            jmem_free(rt, l, sizeof *l);
            return status_of(rt);
        }
        l->cap = cap;
    }
    out->t = JV_LIST;
    out->u.l = l;
    return MLXR_OK;
}

mlxr_status jv_dict(jrt *rt, jdict_kind kind, jv *out) {
    *out = jv_undef();
    jdict *d = jmem_alloc(rt, sizeof *d);
    if (!d) return status_of(rt);
    memset(d, 0, sizeof *d);
    d->rc = 1;
    d->kind = kind;
    out->t = JV_DICT;
    out->u.d = d;
    return MLXR_OK;
}

mlxr_status jv_func(jrt *rt, jfunc_kind kind, int id, const char *name, jv *out) {
    *out = jv_undef();
    jfunc *fn = jmem_alloc(rt, sizeof *fn);
    if (!fn) return status_of(rt);
    memset(fn, 0, sizeof *fn);
    fn->rc = 1;
    fn->kind = kind;
    fn->id = id;
    fn->name = name;
    fn->self = jv_undef();
    out->t = JV_FUNC;
    out->u.fn = fn;
    return MLXR_OK;
}

mlxr_status jlist_push(jrt *rt, jlist *l, jv item) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        if (cap > rt->lim.max_mem / sizeof(jv)) {
            jv_release(rt, item);
            return jfail(rt, MLXR_ERR_RANGE, "template values exceed the memory limit of %zu bytes",
                         rt->lim.max_mem);
        }
        jv *v = jmem_realloc(rt, l->v, l->cap * sizeof(jv), cap * sizeof(jv));
        if (!v) {
            jv_release(rt, item);
            return status_of(rt);
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = item;
    return MLXR_OK;
}

jv *jdict_get(const jdict *d, jv key) {
    for (size_t i = 0; i < d->n; i++)
        if (jv_eq(d->k[i], key)) return &d->v[i];
    return NULL;
}

jv *jdict_getz(const jdict *d, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s->len == n && !memcmp(d->k[i].u.s->s, key, n))
            return &d->v[i];
    return NULL;
}

mlxr_status jdict_set(jrt *rt, jdict *d, jv key, jv val) {
    jv *old = jdict_get(d, key);
    if (old) {
        jv_release(rt, *old);
        *old = val;
        jv_release(rt, key);
        return MLXR_OK;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        jv *k = cap > rt->lim.max_mem / sizeof(jv)
                    ? NULL
                    : jmem_realloc(rt, d->k, d->cap * sizeof(jv), cap * sizeof(jv));
        if (!k) goto fail;
        d->k = k;
        jv *v = jmem_realloc(rt, d->v, d->cap * sizeof(jv), cap * sizeof(jv));
        if (!v) {
            /* keep d->k's size consistent with d->cap: shrink back */
            jv *k2 = jmem_realloc(rt, d->k, cap * sizeof(jv), (d->cap ? d->cap : 1) * sizeof(jv));
            if (k2) d->k = k2;
            goto fail;
        }
        d->v = v;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n] = val;
    d->n++;
    return MLXR_OK;
fail:
    jv_release(rt, key);
    jv_release(rt, val);
    if (rt->err && rt->err->code == MLXR_OK)
        return jfail(rt, MLXR_ERR_RANGE, "template values exceed the memory limit");
    return status_of(rt);
}

mlxr_status jdict_setz(jrt *rt, jdict *d, const char *key, jv val) {
    jv k;
    mlxr_status st = jv_strz(rt, key, &k);
    if (st) {
        jv_release(rt, val);
        return st;
    }
    return jdict_set(rt, d, k, val);
}

/* ---- reference counting ------------------------------------------------------------------- */

jv jv_retain(jv v) {
    switch (v.t) {
    case JV_UNDEF:
    case JV_STR:
        if (v.u.s && v.u.s->rc > 0) v.u.s->rc++;
        break;
    case JV_LIST:
        if (v.u.l->rc > 0) v.u.l->rc++;
        break;
    case JV_DICT:
        if (v.u.d->rc > 0) v.u.d->rc++;
        break;
    case JV_FUNC:
        if (v.u.fn->rc > 0) v.u.fn->rc++;
        break;
    default:
        break;
    }
    return v;
}

/* Free a container whose count reached zero, queueing children that reach zero too: values can
 * nest arbitrarily deep ({% set ns.x = [ns.x] %} in a loop), so release must not recurse. */
typedef struct release_stack {
    jv small[64];
    jv *v;
    size_t n, cap;
} release_stack;

static void drop(jrt *rt, release_stack *s, jv v);

static void free_container(jrt *rt, release_stack *s, jv v) {
    if (v.t == JV_LIST) {
        jlist *l = v.u.l;
        for (size_t i = 0; i < l->n; i++)
            drop(rt, s, l->v[i]);
        jmem_free(rt, l->v, l->cap * sizeof(jv));
        jmem_free(rt, l, sizeof *l);
    } else if (v.t == JV_DICT) {
        jdict *d = v.u.d;
        for (size_t i = 0; i < d->n; i++) {
            drop(rt, s, d->k[i]);
            drop(rt, s, d->v[i]);
        }
        if (d->loop_items) {
            jv items = {JV_LIST, {0}};
            items.u.l = d->loop_items;
            drop(rt, s, items);
        }
        jmem_free(rt, d->k, d->cap * sizeof(jv));
        jmem_free(rt, d->v, d->cap * sizeof(jv));
        jmem_free(rt, d, sizeof *d);
    } else if (v.t == JV_FUNC) {
        drop(rt, s, v.u.fn->self);
        jmem_free(rt, v.u.fn, sizeof *v.u.fn);
    }
}

/* Decrement; a string is freed at once, a container whose count reaches zero is queued. */
static void drop(jrt *rt, release_stack *s, jv v) {
    int32_t *rc = NULL;
    switch (v.t) {
    case JV_UNDEF:
    case JV_STR:
        if (v.u.s && v.u.s->rc > 0 && --v.u.s->rc == 0)
            jmem_free(rt, v.u.s, sizeof(jstr) + v.u.s->len + 1);
        return;
    case JV_LIST:
        rc = &v.u.l->rc;
        break;
    case JV_DICT:
        rc = &v.u.d->rc;
        break;
    case JV_FUNC:
        rc = &v.u.fn->rc;
        break;
    default:
        return;
    }
    if (*rc <= 0 || --*rc > 0) return;
    if (s->n == s->cap) {
        size_t cap = s->cap * 2;
        jv *nv = malloc(cap * sizeof *nv);
        if (!nv) { /* no room to queue: free it right here (recursion, bounded by memory) */
            free_container(rt, s, v);
            return;
        }
        memcpy(nv, s->v, s->n * sizeof *nv);
        if (s->v != s->small) free(s->v);
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
}

void jv_release(jrt *rt, jv v) {
    release_stack s;
    s.v = s.small;
    s.n = 0;
    s.cap = sizeof s.small / sizeof *s.small;
    drop(rt, &s, v);
    while (s.n)
        free_container(rt, &s, s.v[--s.n]);
    if (s.v != s.small) free(s.v);
}

/* ---- Python semantics --------------------------------------------------------------------- */

bool jloop_attr(const jdict *d, const char *name, jv *out) {
    int64_t n = d->loop_items ? (int64_t)d->loop_items->n : 0, k = (int64_t)d->loop_i;
    if (!strcmp(name, "index"))
        *out = jv_int(k + 1);
    else if (!strcmp(name, "index0"))
        *out = jv_int(k);
    else if (!strcmp(name, "revindex"))
        *out = jv_int(n - k);
    else if (!strcmp(name, "revindex0"))
        *out = jv_int(n - k - 1);
    else if (!strcmp(name, "first"))
        *out = jv_bool(k == 0);
    else if (!strcmp(name, "last"))
        *out = jv_bool(k == n - 1);
    else if (!strcmp(name, "length"))
        *out = jv_int(n);
    else if (!strcmp(name, "depth"))
        *out = jv_int(1);
    else if (!strcmp(name, "depth0"))
        *out = jv_int(0);
    else if (!strcmp(name, "previtem") && k > 0)
        *out = jv_retain(d->loop_items->v[k - 1]);
    else if (!strcmp(name, "nextitem") && k + 1 < n)
        *out = jv_retain(d->loop_items->v[k + 1]);
    else
        return false;
    return true;
}

bool jv_truthy(jv v) {
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE:
        return false;
    case JV_BOOL:
        return v.u.b;
    case JV_INT:
        return v.u.i != 0;
    case JV_FLOAT:
        return v.u.f != 0.0;
    case JV_STR:
        return v.u.s->len != 0;
    case JV_LIST:
        return v.u.l->n != 0 || v.u.l->lazy;
    case JV_DICT:
        return v.u.d->kind != JDICT_PLAIN || v.u.d->n != 0;
    case JV_FUNC:
        return true;
    }
    return false;
}

bool jv_is_num(jv v) {
    return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT;
}

double jv_num(jv v) {
    if (v.t == JV_BOOL) return v.u.b;
    if (v.t == JV_INT) return (double)v.u.i;
    if (v.t == JV_FLOAT) return v.u.f;
    return 0;
}

/* int-like (bool or int) as int64 */
static bool intlike(jv v, int64_t *i) {
    if (v.t == JV_BOOL)
        *i = v.u.b;
    else if (v.t == JV_INT)
        *i = v.u.i;
    else
        return false;
    return true;
}

#define EQ_DEPTH 512 /* Python raises RecursionError near 1000; deeper values compare unequal */

static bool eq_depth(jv a, jv b, int depth);

bool jv_eq(jv a, jv b) {
    return eq_depth(a, b, 0);
}

static bool eq_depth(jv a, jv b, int depth) {
    if (jv_is_num(a) && jv_is_num(b)) {
        int64_t x, y;
        if (intlike(a, &x) && intlike(b, &y)) return x == y;
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE:
        return true;
    case JV_STR:
        return a.u.s->len == b.u.s->len && !memcmp(a.u.s->s, b.u.s->s, a.u.s->len);
    case JV_LIST:
        if (a.u.l == b.u.l) return true; /* identity first, as Python's list compare */
        if (depth > EQ_DEPTH) return false;
        if (a.u.l->iter_type || b.u.l->iter_type) return a.u.l == b.u.l;
        if (a.u.l->tuple != b.u.l->tuple || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!eq_depth(a.u.l->v[i], b.u.l->v[i], depth + 1)) return false;
        return true;
    case JV_DICT:
        if (a.u.d == b.u.d) return true;
        if (depth > EQ_DEPTH) return false;
        if (a.u.d->kind != JDICT_PLAIN || b.u.d->kind != JDICT_PLAIN) return false;
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jdict_get(b.u.d, a.u.d->k[i]);
            if (!o || !eq_depth(a.u.d->v[i], *o, depth + 1)) return false;
        }
        return true;
    case JV_FUNC:
        return a.u.fn == b.u.fn;
    default:
        return false;
    }
}

const char *jv_type_name(jv v) {
    switch (v.t) {
    case JV_UNDEF:
        return "Undefined";
    case JV_NONE:
        return "NoneType";
    case JV_BOOL:
        return "bool";
    case JV_INT:
        return "int";
    case JV_FLOAT:
        return "float";
    case JV_STR:
        return "str";
    case JV_LIST:
        return v.u.l->iter_type ? v.u.l->iter_type : v.u.l->tuple ? "tuple" : "list";
    case JV_DICT:
        return v.u.d->kind == JDICT_NAMESPACE ? "Namespace"
               : v.u.d->kind == JDICT_LOOP    ? "LoopContext"
                                              : "dict";
    case JV_FUNC:
        return "function";
    }
    return "object";
}

static mlxr_status cmp_depth(jrt *rt, jv a, jv b, int *cmp, int depth);

mlxr_status jv_cmp(jrt *rt, jv a, jv b, int *cmp) {
    return cmp_depth(rt, a, b, cmp, 0);
}

static mlxr_status cmp_depth(jrt *rt, jv a, jv b, int *cmp, int depth) {
    if (depth > EQ_DEPTH)
        return jfail(rt, MLXR_ERR_RANGE, "maximum recursion depth exceeded in comparison");
    if (jv_is_num(a) && jv_is_num(b)) {
        int64_t x, y;
        if (intlike(a, &x) && intlike(b, &y))
            *cmp = (x > y) - (x < y);
        else {
            double p = jv_num(a), q = jv_num(b);
            *cmp = (p > q) - (p < q); /* NaN compares as equal here; Python returns False both */
        }
        return MLXR_OK;
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        /* UTF-8 byte order equals code point order */
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int c = memcmp(a.u.s->s, b.u.s->s, n);
        *cmp = c ? (c > 0 ? 1 : -1) : (a.u.s->len > b.u.s->len) - (a.u.s->len < b.u.s->len);
        return MLXR_OK;
    }
    if (a.t == JV_LIST && b.t == JV_LIST && a.u.l->tuple == b.u.l->tuple) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_eq(a.u.l->v[i], b.u.l->v[i])) continue;
            return cmp_depth(rt, a.u.l->v[i], b.u.l->v[i], cmp, depth + 1);
        }
        *cmp = (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
        return MLXR_OK;
    }
    if (a.t == JV_UNDEF || b.t == JV_UNDEF) {
        jv u = a.t == JV_UNDEF ? a : b;
        return jfail(rt, MLXR_ERR_INVALID, "%s", u.u.s ? u.u.s->s : "value is undefined");
    }
    return jfail(rt, MLXR_ERR_INVALID, "'<' not supported between instances of '%s' and '%s'",
                 jv_type_name(a), jv_type_name(b));
}

mlxr_status jv_int_arg(jrt *rt, jv v, const char *what, int64_t *out) {
    if (v.t == JV_INT)
        *out = v.u.i;
    else if (v.t == JV_BOOL)
        *out = v.u.b;
    else
        return jfail(rt, MLXR_ERR_INVALID, "'%s' object cannot be interpreted as an integer (%s)",
                     jv_type_name(v), what);
    return MLXR_OK;
}

/* ---- printing ----------------------------------------------------------------------------- */

void jv_float_repr(double f, char *buf, size_t cap) {
    if (isnan(f)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(buf, cap, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        snprintf(buf, cap, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    /* shortest %.{p}e that round-trips, then lay the digits out as Python's repr does */
    char e[40];
    for (int p = 0; p < 17; p++) {
        snprintf(e, sizeof e, "%.*e", p, f);
        if (strtod(e, NULL) == f) break;
    }
    char digits[24];
    size_t nd = 0;
    const char *q = e;
    bool neg = false;
    if (*q == '-') {
        neg = true;
        q++;
    }
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9' && nd < sizeof digits - 1) digits[nd++] = *q;
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--; /* drop trailing zeros */
    digits[nd] = '\0';
    int decpt = exp10 + 1; /* digits d1 d2 ... with the point after decpt digits */
    char *o = buf;
    size_t left = cap;
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        int k_ = snprintf(o, left, __VA_ARGS__);                                                   \
        if (k_ < 0 || (size_t)k_ >= left) return;                                                  \
        o += k_;                                                                                   \
        left -= (size_t)k_;                                                                        \
    } while (0)
    if (neg) EMIT("-");
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            EMIT("0.");
            for (int i = 0; i < -decpt; i++)
                EMIT("0");
            EMIT("%s", digits);
        } else if ((size_t)decpt >= nd) {
            EMIT("%s", digits);
            for (size_t i = nd; i < (size_t)decpt; i++)
                EMIT("0");
            EMIT(".0");
        } else {
            EMIT("%.*s.%s", decpt, digits, digits + decpt);
        }
    } else {
        EMIT("%c", digits[0]);
        if (nd > 1) EMIT(".%s", digits + 1);
        int x = decpt - 1;
        EMIT("e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    }
#undef EMIT
}

/* Python str.isprintable for repr: controls, separators and other non-printables escape. */
static bool cp_printable(uint32_t c) {
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) return false;
    if (c == 0xad || c == 0x2028 || c == 0x2029 || (c >= 0x200b && c <= 0x200f)) return false;
    if ((c >= 0x2060 && c <= 0x2064) || c == 0xfeff || (c >= 0xd800 && c <= 0xdfff)) return false;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x202f || c == 0x205f || c == 0x3000)
        return false; /* Zs other than ASCII space are not printable */
    if (c == 0xa0) return false;
    if (c >= 0xe000 && c <= 0xf8ff) return false; /* private use */
    return true;
}

static mlxr_status repr_str(jrt *rt, jbuf *b, const char *s, size_t n) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    mlxr_status st = jbuf_putc(rt, b, q);
    for (size_t i = 0; i < n && !st;) {
        size_t w;
        uint32_t c = jutf8_decode(s + i, n - i, &w);
        char tmp[16];
        if (c == (uint32_t)q || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            st = jbuf_put(rt, b, tmp, 2);
        } else if (c == '\n')
            st = jbuf_put(rt, b, "\\n", 2);
        else if (c == '\r')
            st = jbuf_put(rt, b, "\\r", 2);
        else if (c == '\t')
            st = jbuf_put(rt, b, "\\t", 2);
        else if (!cp_printable(c)) {
            int k = c < 0x100     ? snprintf(tmp, sizeof tmp, "\\x%02x", c)
                    : c < 0x10000 ? snprintf(tmp, sizeof tmp, "\\u%04x", c)
                                  : snprintf(tmp, sizeof tmp, "\\U%08x", c);
            st = jbuf_put(rt, b, tmp, (size_t)k);
        } else
            st = jbuf_put(rt, b, s + i, w);
        i += w;
    }
    return st ? st : jbuf_putc(rt, b, q);
}

static mlxr_status put_num(jrt *rt, jbuf *b, jv v) {
    char tmp[48];
    if (v.t == JV_INT)
        snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
    else
        jv_float_repr(v.u.f, tmp, sizeof tmp);
    return jbuf_put(rt, b, tmp, strlen(tmp));
}

static mlxr_status put_s(jrt *rt, jbuf *b, const char *s) {
    return jbuf_put(rt, b, s, strlen(s));
}

mlxr_status jv_repr(jrt *rt, jbuf *b, jv v) {
    mlxr_status st = jstep(rt);
    if (st) return st;
    if (++rt->depth > rt->lim.max_depth) {
        rt->depth--;
        return jfail(rt, MLXR_ERR_RANGE, "value nesting exceeds depth %d", rt->lim.max_depth);
    }
    switch (v.t) {
    case JV_STR:
        st = repr_str(rt, b, v.u.s->s, v.u.s->len);
        break;
    case JV_LIST: {
        jlist *l = v.u.l;
        if (l->iter_type) { /* Python prints "<generator object ... at 0x...>" */
            char tmp[80];
            snprintf(tmp, sizeof tmp, "<%s object>", l->iter_type);
            st = put_s(rt, b, tmp);
            break;
        }
        st = jbuf_putc(rt, b, l->tuple ? '(' : '[');
        for (size_t i = 0; i < l->n && !st; i++) {
            if (i) st = put_s(rt, b, ", ");
            if (!st) st = jv_repr(rt, b, l->v[i]);
        }
        if (!st && l->tuple && l->n == 1) st = jbuf_putc(rt, b, ',');
        if (!st) st = jbuf_putc(rt, b, l->tuple ? ')' : ']');
        break;
    }
    case JV_DICT: {
        jdict *d = v.u.d;
        if (d->kind == JDICT_NAMESPACE)
            st = put_s(rt, b, "<Namespace ");
        else if (d->kind == JDICT_LOOP) {
            char tmp[64];
            snprintf(tmp, sizeof tmp, "<LoopContext %zu/%zu>", d->loop_i + 1,
                     d->loop_items ? d->loop_items->n : 0);
            st = put_s(rt, b, tmp);
            break;
        }
        st = st ? st : jbuf_putc(rt, b, '{');
        for (size_t i = 0; i < d->n && !st; i++) {
            if (i) st = put_s(rt, b, ", ");
            if (!st) st = jv_repr(rt, b, d->k[i]);
            if (!st) st = put_s(rt, b, ": ");
            if (!st) st = jv_repr(rt, b, d->v[i]);
        }
        if (!st) st = jbuf_putc(rt, b, '}');
        if (!st && d->kind == JDICT_NAMESPACE) st = jbuf_putc(rt, b, '>');
        break;
    }
    default:
        st = jv_to_str(rt, b, v);
        break;
    }
    rt->depth--;
    return st;
}

mlxr_status jv_to_str(jrt *rt, jbuf *b, jv v) {
    switch (v.t) {
    case JV_UNDEF:
        return MLXR_OK;
    case JV_NONE:
        return put_s(rt, b, "None");
    case JV_BOOL:
        return put_s(rt, b, v.u.b ? "True" : "False");
    case JV_INT:
    case JV_FLOAT:
        return put_num(rt, b, v);
    case JV_STR:
        return jbuf_put(rt, b, v.u.s->s, v.u.s->len);
    case JV_LIST:
    case JV_DICT:
        return jv_repr(rt, b, v);
    case JV_FUNC: {
        char tmp[160];
        snprintf(tmp, sizeof tmp, "<function %s>", v.u.fn->name ? v.u.fn->name : "?");
        return put_s(rt, b, tmp);
    }
    }
    return MLXR_OK;
}

mlxr_status jv_stringify(jrt *rt, jv v, jv *out) {
    if (v.t == JV_STR) {
        *out = jv_retain(v);
        return MLXR_OK;
    }
    jbuf b = {0};
    mlxr_status st = jv_to_str(rt, &b, v);
    if (!st) st = jv_str(rt, b.p ? b.p : "", b.n, out);
    jbuf_free(rt, &b);
    return st;
}
