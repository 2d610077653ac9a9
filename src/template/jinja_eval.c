/*
 * jinja_eval.c - expressions: names, literals, attribute/item lookup, slicing, operators with
 * Python semantics (int/float arithmetic with overflow checks, str/list concatenation and
 * repetition bounded by the memory limit, Markup escaping on +), comparisons, filters and tests.
 *
 * Attribute and item lookup follow jinja2's sandbox (SandboxedEnvironment.getattr/getitem):
 * `x.name` tries Python attributes (methods) first, then items; `x[k]` the other way round;
 * mutating methods (list.append, dict.update, ...) are unsafe in the immutable sandbox and fail
 * when called, with jinja2's message. Every expression counts one step and one level of depth.
 */
#include "template/template.h"

#include "util/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRY(x)                                                                                     \
    do {                                                                                           \
        mlxr_status st_ = (x);                                                                     \
        if (st_) return st_;                                                                       \
    } while (0)

/* ---- lookups ------------------------------------------------------------------------------ */

static const char *obj_repr(jv v, char *buf, size_t cap) {
    if (v.t == JV_NONE) return "None";
    snprintf(buf, cap, "%s object", jv_type_name(v));
    return buf;
}

static mlxr_status undefined_attr(jrt *rt, jv obj, jv name, jv *out) {
    char b[64];
    if (name.t == JV_STR)
        return jv_undef_msg(rt, out, "'%s' has no attribute '%s'", obj_repr(obj, b, sizeof b),
                            name.u.s->s);
    jbuf r = {0};
    mlxr_status st = jv_repr(rt, &r, name);
    if (!st)
        st = jv_undef_msg(rt, out, "%s has no element %s", obj_repr(obj, b, sizeof b),
                          r.p ? r.p : "");
    jbuf_free(rt, &r);
    return st;
}

/* Python attribute of obj named `name`: a bound method, or *found = false. Mutating methods
 * are unsafe in the immutable sandbox: jinja2 hands back an undefined that fails when called. */
static mlxr_status py_attr(jrt *rt, jv obj, const char *name, bool *found, jv *out) {
    *found = false;
    int id = jmethod_lookup(obj, name);
    if (id < 0) return MLXR_OK;
    *found = true;
    if (id >= JMETHOD_UNSAFE)
        return jv_undef_msg(rt, out, "access to attribute '%s' of '%s' object is unsafe.", name,
                            jv_type_name(obj));
    TRY(jv_func(rt, JFN_METHOD, id, name, out));
    out->u.fn->self = jv_retain(obj);
    return MLXR_OK;
}

/* obj[key] with Python semantics; *found = false when the item does not exist. */
static mlxr_status py_item(jrt *rt, jv obj, jv key, bool *found, jv *out) {
    *found = false;
    if (obj.t == JV_DICT && obj.u.d->kind == JDICT_LOOP) {
        *found = key.t == JV_STR && jloop_attr(obj.u.d, key.u.s->s, out);
        return MLXR_OK;
    }
    if (obj.t == JV_DICT) {
        jv *v = jdict_get(obj.u.d, key);
        if (v) {
            *found = true;
            *out = jv_retain(*v);
        }
        return MLXR_OK;
    }
    bool indexable =
        obj.t == JV_STR ||
        (obj.t == JV_LIST && (!obj.u.l->iter_type || !strcmp(obj.u.l->iter_type, "range")));
    if (indexable && (key.t == JV_INT || key.t == JV_BOOL)) {
        int64_t i = key.t == JV_INT ? key.u.i : key.u.b;
        if (obj.t == JV_LIST) {
            int64_t n = (int64_t)obj.u.l->n;
            if (i < 0) i += n;
            if (i < 0 || i >= n) return MLXR_OK;
            *found = true;
            *out = jv_retain(obj.u.l->v[i]);
            return MLXR_OK;
        }
        const jstr *s = obj.u.s;
        int64_t n = (int64_t)jstr_n_cp(s->s, s->len);
        if (i < 0) i += n;
        if (i < 0 || i >= n) return MLXR_OK;
        size_t a = jstr_cp_offset(s->s, s->len, (size_t)i), w;
        jutf8_decode(s->s + a, s->len - a, &w);
        *found = true;
        return jv_str(rt, s->s + a, w, out);
    }
    return MLXR_OK;
}

/* jinja2 sandbox getattr: Python attribute first, then item. */
static mlxr_status get_attr(jrt *rt, jv obj, jv name, jv *out) {
    if (obj.t == JV_UNDEF)
        return jfail(rt, MLXR_ERR_INVALID, "%s", obj.u.s ? obj.u.s->s : "value is undefined");
    bool found;
    TRY(py_attr(rt, obj, name.u.s->s, &found, out));
    if (found) return MLXR_OK;
    TRY(py_item(rt, obj, name, &found, out));
    if (found) return MLXR_OK;
    return undefined_attr(rt, obj, name, out);
}

/* jinja2 sandbox getitem: item first, then (for string keys) attribute. */
static mlxr_status get_item(jrt *rt, jv obj, jv key, jv *out) {
    if (obj.t == JV_UNDEF)
        return jfail(rt, MLXR_ERR_INVALID, "%s", obj.u.s ? obj.u.s->s : "value is undefined");
    bool found;
    TRY(py_item(rt, obj, key, &found, out));
    if (found) return MLXR_OK;
    if (key.t == JV_STR) {
        TRY(py_attr(rt, obj, key.u.s->s, &found, out));
        if (found) return MLXR_OK;
    }
    return undefined_attr(rt, obj, key, out);
}

/* ---- slicing ------------------------------------------------------------------------------ */

static mlxr_status slice_index(jrt *rt, jv v, int64_t *out, bool *given) {
    *given = v.t != JV_NONE && v.t != JV_UNDEF;
    if (!*given) return MLXR_OK;
    return jv_int_arg(rt, v, "slice index", out);
}

/* Python slice indices for a sequence of length n (PySlice_AdjustIndices). */
static void adjust(int64_t n, int64_t step, bool has_a, int64_t a, bool has_b, int64_t b,
                   int64_t *start, int64_t *stop) {
    if (!has_a)
        a = step < 0 ? n - 1 : 0;
    else if (a < 0)
        a = a + n < 0 ? (step < 0 ? -1 : 0) : a + n;
    else if (a >= n)
        a = step < 0 ? n - 1 : n;
    if (!has_b)
        b = step < 0 ? -1 : n;
    else if (b < 0)
        b = b + n < 0 ? (step < 0 ? -1 : 0) : b + n;
    else if (b >= n)
        b = step < 0 ? n - 1 : n;
    *start = a;
    *stop = b;
}

static mlxr_status do_slice(jrt *rt, jv obj, jv va, jv vb, jv vc, jv *out) {
    int64_t a = 0, b = 0, c = 1;
    bool ha, hb, hc;
    TRY(slice_index(rt, va, &a, &ha));
    TRY(slice_index(rt, vb, &b, &hb));
    TRY(slice_index(rt, vc, &c, &hc));
    if (c == 0) return jfail(rt, MLXR_ERR_INVALID, "slice step cannot be zero");
    if (obj.t == JV_LIST) {
        int64_t n = (int64_t)obj.u.l->n, s, e;
        adjust(n, c, ha, a, hb, b, &s, &e);
        TRY(jv_list(rt, 0, out));
        out->u.l->tuple = obj.u.l->tuple;
        for (int64_t i = s; c > 0 ? i < e : i > e; i += c)
            TRY(jlist_push(rt, out->u.l, jv_retain(obj.u.l->v[i])));
        return MLXR_OK;
    }
    if (obj.t == JV_STR) {
        const jstr *str = obj.u.s;
        int64_t n = (int64_t)jstr_n_cp(str->s, str->len), s, e;
        adjust(n, c, ha, a, hb, b, &s, &e);
        if (c == 1) {
            if (e <= s) return jv_str(rt, "", 0, out);
            size_t p = jstr_cp_offset(str->s, str->len, (size_t)s);
            size_t q = jstr_cp_offset(str->s, str->len, (size_t)e);
            return jv_str(rt, str->s + p, q - p, out);
        }
        jbuf buf = {0};
        mlxr_status st = MLXR_OK;
        for (int64_t i = s; (c > 0 ? i < e : i > e) && !st; i += c) {
            size_t p = jstr_cp_offset(str->s, str->len, (size_t)i), w;
            jutf8_decode(str->s + p, str->len - p, &w);
            st = jbuf_put(rt, &buf, str->s + p, w);
            if (!st) st = jstep(rt);
        }
        if (!st) st = jv_str(rt, buf.p ? buf.p : "", buf.n, out);
        jbuf_free(rt, &buf);
        return st;
    }
    if (obj.t == JV_UNDEF)
        return jfail(rt, MLXR_ERR_INVALID, "%s", obj.u.s ? obj.u.s->s : "value is undefined");
    if (obj.t == JV_DICT && obj.u.d->kind == JDICT_PLAIN)
        return jfail(rt, MLXR_ERR_INVALID, "unhashable type: 'slice'");
    return undefined_attr(rt, obj, jv_none(), out);
}

/* ---- operators ---------------------------------------------------------------------------- */

static mlxr_status undef_fail(jrt *rt, jv a, jv b) {
    jv u = a.t == JV_UNDEF ? a : b;
    return jfail(rt, MLXR_ERR_INVALID, "%s", u.u.s ? u.u.s->s : "value is undefined");
}

static const char *OPSYM[] = {"+", "-", "*", "/", "//", "%", "**", "~"};

static mlxr_status type_fail(jrt *rt, int op, jv a, jv b) {
    if (a.t == JV_UNDEF || b.t == JV_UNDEF) return undef_fail(rt, a, b);
    if (op == JOP_ADD && a.t == JV_STR)
        return jfail(rt, MLXR_ERR_INVALID, "can only concatenate str (not \"%s\") to str",
                     jv_type_name(b));
    if (op == JOP_ADD && a.t == JV_LIST && !a.u.l->tuple)
        return jfail(rt, MLXR_ERR_INVALID, "can only concatenate list (not \"%s\") to list",
                     jv_type_name(b));
    return jfail(rt, MLXR_ERR_INVALID, "unsupported operand type(s) for %s: '%s' and '%s'",
                 op == JOP_POW ? "** or pow()" : OPSYM[op], jv_type_name(a), jv_type_name(b));
}

static mlxr_status repeat(jrt *rt, jv seq, int64_t k, jv *out) {
    if (k < 0) k = 0;
    if (seq.t == JV_STR) {
        size_t n = seq.u.s->len, total;
        if (!mlxr_mul_ok(n, (size_t)k, &total) || total > rt->lim.max_mem)
            return jfail(rt, MLXR_ERR_RANGE,
                         "string repetition of %zu x %lld bytes exceeds the "
                         "memory limit",
                         n, (long long)k);
        TRY(jv_str(rt, "", 0, out));
        jv_release(rt, *out);
        jstr *s = jmem_alloc(rt, sizeof(jstr) + total + 1);
        if (!s) return rt->err->code;
        s->rc = 1;
        s->safe = false;
        s->len = total;
        for (int64_t i = 0; i < k; i++)
            memcpy(s->s + (size_t)i * n, seq.u.s->s, n);
        s->s[total] = '\0';
        out->t = JV_STR;
        out->u.s = s;
        return MLXR_OK;
    }
    size_t n = seq.u.l->n, total;
    if (!mlxr_mul_ok(n, (size_t)k, &total) || total > rt->lim.max_mem / sizeof(jv))
        return jfail(rt, MLXR_ERR_RANGE, "list repetition exceeds the memory limit");
    TRY(jv_list(rt, total, out));
    out->u.l->tuple = seq.u.l->tuple;
    for (int64_t i = 0; i < k; i++)
        for (size_t j = 0; j < n; j++)
            out->u.l->v[out->u.l->n++] = jv_retain(seq.u.l->v[j]);
    return MLXR_OK;
}

static mlxr_status int_result(jrt *rt, bool overflow, int64_t r, jv *out) {
    if (overflow) return jfail(rt, MLXR_ERR_RANGE, "integer overflow in template arithmetic");
    *out = jv_int(r);
    return MLXR_OK;
}

mlxr_status jarith(jrt *rt, int op, jv a, jv b, jv *out) {
    int64_t x, y, r;
    bool ints = (a.t == JV_INT || a.t == JV_BOOL) && (b.t == JV_INT || b.t == JV_BOOL);
    if (ints) {
        x = a.t == JV_INT ? a.u.i : a.u.b;
        y = b.t == JV_INT ? b.u.i : b.u.b;
        switch (op) {
        case JOP_ADD: {
            bool of = __builtin_add_overflow(x, y, &r);
            return int_result(rt, of, r, out);
        }
        case JOP_SUB: {
            bool of = __builtin_sub_overflow(x, y, &r);
            return int_result(rt, of, r, out);
        }
        case JOP_MUL: {
            bool of = __builtin_mul_overflow(x, y, &r);
            return int_result(rt, of, r, out);
        }
        case JOP_FLOORDIV:
        case JOP_MOD:
            if (y == 0) return jfail(rt, MLXR_ERR_INVALID, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) return int_result(rt, true, 0, out);
            r = op == JOP_FLOORDIV ? x / y : x % y;
            if (op == JOP_FLOORDIV && (x % y != 0) && ((x < 0) != (y < 0))) r--;
            if (op == JOP_MOD && r != 0 && ((r < 0) != (y < 0))) r += y;
            *out = jv_int(r);
            return MLXR_OK;
        case JOP_POW:
            if (y >= 0) {
                r = 1;
                bool of = false;
                for (int64_t i = 0; i < y && !of; i++) {
                    of = __builtin_mul_overflow(r, x, &r);
                    if (x == 0 || x == 1 || (x == -1 && i > 1)) {
                        r = x == 0 ? 0 : x == 1 ? 1 : (y % 2 ? -1 : 1);
                        break;
                    }
                }
                return int_result(rt, of, r, out);
            }
            break;
        default:
            break;
        }
    }
    if (jv_is_num(a) && jv_is_num(b)) {
        double p = jv_num(a), q = jv_num(b);
        switch (op) {
        case JOP_ADD:
            *out = jv_float(p + q);
            return MLXR_OK;
        case JOP_SUB:
            *out = jv_float(p - q);
            return MLXR_OK;
        case JOP_MUL:
            *out = jv_float(p * q);
            return MLXR_OK;
        case JOP_DIV:
            if (q == 0) return jfail(rt, MLXR_ERR_INVALID, "division by zero");
            *out = jv_float(p / q);
            return MLXR_OK;
        case JOP_FLOORDIV:
            if (q == 0) return jfail(rt, MLXR_ERR_INVALID, "float floor division by zero");
            *out = jv_float(floor(p / q));
            return MLXR_OK;
        case JOP_MOD: {
            if (q == 0) return jfail(rt, MLXR_ERR_INVALID, "float modulo");
            double m = fmod(p, q);
            if (m != 0 && ((m < 0) != (q < 0))) m += q;
            if (m == 0) m = copysign(0.0, q); /* Python: a zero result takes the divisor's sign */
            *out = jv_float(m);
            return MLXR_OK;
        }
        case JOP_POW:
            if (p == 0 && q < 0)
                return jfail(rt, MLXR_ERR_INVALID, "0.0 cannot be raised to a negative power");
            *out = jv_float(pow(p, q));
            return MLXR_OK;
        default:
            break;
        }
    }
    if (op == JOP_ADD && a.t == JV_STR && b.t == JV_STR) {
        size_t n;
        if (!mlxr_add_ok(a.u.s->len, b.u.s->len, &n))
            return jfail(rt, MLXR_ERR_RANGE, "string too long");
        /* Markup + str (either order) escapes the plain side and stays Markup */
        bool safe = a.u.s->safe || b.u.s->safe;
        jbuf buf = {0};
        mlxr_status st = safe && !a.u.s->safe ? jstr_html_escape(rt, &buf, a.u.s->s, a.u.s->len)
                                              : jbuf_put(rt, &buf, a.u.s->s, a.u.s->len);
        if (!st)
            st = safe && !b.u.s->safe ? jstr_html_escape(rt, &buf, b.u.s->s, b.u.s->len)
                                      : jbuf_put(rt, &buf, b.u.s->s, b.u.s->len);
        if (!st) st = jv_str(rt, buf.p ? buf.p : "", buf.n, out);
        if (!st) out->u.s->safe = safe;
        jbuf_free(rt, &buf);
        return st;
    }
    if (op == JOP_ADD && a.t == JV_LIST && b.t == JV_LIST && a.u.l->tuple == b.u.l->tuple) {
        TRY(jv_list(rt, a.u.l->n + b.u.l->n, out));
        out->u.l->tuple = a.u.l->tuple;
        for (size_t i = 0; i < a.u.l->n; i++)
            out->u.l->v[out->u.l->n++] = jv_retain(a.u.l->v[i]);
        for (size_t i = 0; i < b.u.l->n; i++)
            out->u.l->v[out->u.l->n++] = jv_retain(b.u.l->v[i]);
        return MLXR_OK;
    }
    if (op == JOP_MOD && a.t == JV_STR) { /* printf-style formatting */
        if (b.t == JV_LIST && b.u.l->tuple)
            return jstr_percent_format(rt, a.u.s, b.u.l->v, b.u.l->n, out);
        return jstr_percent_format(rt, a.u.s, &b, 1, out);
    }
    if (op == JOP_MUL) {
        if ((a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))
            return repeat(rt, a, b.t == JV_INT ? b.u.i : b.u.b, out);
        if ((b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
            return repeat(rt, b, a.t == JV_INT ? a.u.i : a.u.b, out);
    }
    return type_fail(rt, op, a, b);
}

/* needle in haystack */
static mlxr_status contains(jrt *rt, jv hay, jv needle, bool *out) {
    *out = false;
    switch (hay.t) {
    case JV_STR:
        if (needle.t != JV_STR)
            return jfail(rt, MLXR_ERR_INVALID,
                         "'in <string>' requires string as left operand, not %s",
                         jv_type_name(needle));
        *out = needle.u.s->len == 0 ||
               memmem(hay.u.s->s, hay.u.s->len, needle.u.s->s, needle.u.s->len) != NULL;
        return MLXR_OK;
    case JV_LIST:
        for (size_t i = 0; i < hay.u.l->n && !*out; i++)
            *out = jv_eq(hay.u.l->v[i], needle);
        return MLXR_OK;
    case JV_DICT:
        if (needle.t == JV_DICT || (needle.t == JV_LIST && !needle.u.l->tuple))
            return jfail(rt, MLXR_ERR_INVALID, "unhashable type: '%s'", jv_type_name(needle));
        *out = jdict_get(hay.u.d, needle) != NULL;
        return MLXR_OK;
    case JV_UNDEF:
        return MLXR_OK;
    default:
        return jfail(rt, MLXR_ERR_INVALID, "argument of type '%s' is not iterable",
                     jv_type_name(hay));
    }
}

static mlxr_status compare(jrt *rt, int op, jv a, jv b, bool *out) {
    int c;
    switch (op) {
    case JOP_EQ:
        *out = jv_eq(a, b);
        return MLXR_OK;
    case JOP_NE:
        *out = !jv_eq(a, b);
        return MLXR_OK;
    case JOP_IN:
        return contains(rt, b, a, out);
    case JOP_NOTIN:
        TRY(contains(rt, b, a, out));
        *out = !*out;
        return MLXR_OK;
    default:
        TRY(jv_cmp(rt, a, b, &c));
        if (jv_is_num(a) && jv_is_num(b) && (isnan(jv_num(a)) || isnan(jv_num(b)))) {
            *out = false;
            return MLXR_OK;
        }
        *out = op == JOP_LT ? c < 0 : op == JOP_LE ? c <= 0 : op == JOP_GT ? c > 0 : c >= 0;
        return MLXR_OK;
    }
}

mlxr_status jtest_compare(jrt *rt, int op, jv a, jv b, bool *out) {
    return compare(rt, op, a, b, out);
}

/* ---- expressions -------------------------------------------------------------------------- */

/* Evaluate call-style args (positional + JN_KWARG) into a jargs; release with jargs_free. */
static mlxr_status eval_args(jrt *rt, jframe *f, jnode *const *kids, size_t n, jargs *a, jv *store,
                             const char **names) {
    a->pos = store;
    a->n_pos = 0;
    a->n_kw = 0;
    size_t npos = 0;
    for (size_t i = 0; i < n; i++)
        npos += kids[i]->kind != JN_KWARG;
    a->kw_val = store + npos;
    a->kw_name = names;
    for (size_t i = 0; i < n; i++) {
        const jnode *k = kids[i];
        if (k->kind == JN_KWARG) {
            TRY(jeval(rt, f, k->a, &a->kw_val[a->n_kw]));
            a->kw_name[a->n_kw++] = k->val.u.s->s;
        } else {
            TRY(jeval(rt, f, k, &a->pos[a->n_pos]));
            a->n_pos++;
        }
    }
    return MLXR_OK;
}

void jargs_free(jrt *rt, jargs *a) {
    for (size_t i = 0; i < a->n_pos; i++)
        jv_release(rt, a->pos[i]);
    for (size_t i = 0; i < a->n_kw; i++)
        jv_release(rt, a->kw_val[i]);
    a->n_pos = a->n_kw = 0;
}

mlxr_status jargs_eval(jrt *rt, jframe *f, const jnode *n, jargs *a, jv *store,
                       const char **names) {
    if (n->n_kids > JMAX_ARGS)
        return jfail(rt, MLXR_ERR_RANGE, "more than %d call arguments", JMAX_ARGS);
    mlxr_status st = eval_args(rt, f, n->kids, n->n_kids, a, store, names);
    if (st) jargs_free(rt, a);
    return st;
}

static mlxr_status eval_filter(jrt *rt, jframe *f, const jnode *n, jv in, jv *out) {
    jv store[JMAX_ARGS];
    const char *names[JMAX_ARGS];
    jargs a;
    TRY(jargs_eval(rt, f, n, &a, store, names));
    mlxr_status st = jfilter_apply(rt, f, n->val.u.s->s, in, &a, out);
    jargs_free(rt, &a);
    return st;
}

/* Apply a chain of filters whose innermost input is NULL (filter blocks, block set). */
mlxr_status jfilter_chain(jrt *rt, jframe *f, const jnode *n, jv in, jv *out) {
    if (!n) {
        *out = jv_retain(in);
        return MLXR_OK;
    }
    if (++rt->depth > rt->lim.max_depth) {
        rt->depth--;
        return jfail(rt, MLXR_ERR_RANGE, "template evaluation nested deeper than %d",
                     rt->lim.max_depth);
    }
    jv inner;
    mlxr_status st = jfilter_chain(rt, f, n->a, in, &inner);
    if (!st) {
        st = eval_filter(rt, f, n, inner, out);
        jv_release(rt, inner);
    }
    rt->depth--;
    return st;
}

static mlxr_status eval_name(jrt *rt, jframe *f, const jnode *n, jv *out) {
    jv *v = jframe_lookup(f, n->val.u.s);
    if (v) {
        *out = jv_retain(*v);
        return MLXR_OK;
    }
    int id = jbuiltin_id(n->val.u.s->s);
    if (id >= 0) return jv_func(rt, JFN_BUILTIN, id, jbuiltin_name(id), out);
    return jv_undef_msg(rt, out, "'%s' is undefined", n->val.u.s->s);
}

static mlxr_status eval_seq(jrt *rt, jframe *f, const jnode *n, jv *out) {
    if (n->kind == JN_DICT) {
        TRY(jv_dict(rt, JDICT_PLAIN, out));
        for (size_t i = 0; i + 1 < n->n_kids; i += 2) {
            jv k, v;
            TRY(jeval(rt, f, n->kids[i], &k));
            mlxr_status st = jeval(rt, f, n->kids[i + 1], &v);
            if (st) {
                jv_release(rt, k);
                return st;
            }
            if (k.t == JV_LIST && !k.u.l->tuple) {
                jv_release(rt, k);
                jv_release(rt, v);
                return jfail(rt, MLXR_ERR_INVALID, "unhashable type: 'list'");
            }
            if (k.t == JV_DICT || k.t == JV_UNDEF) {
                jv_release(rt, k);
                jv_release(rt, v);
                return jfail(rt, MLXR_ERR_INVALID, "unhashable dict key");
            }
            TRY(jdict_set(rt, out->u.d, k, v));
        }
        return MLXR_OK;
    }
    TRY(jv_list(rt, n->n_kids, out));
    out->u.l->tuple = n->kind == JN_TUPLE;
    for (size_t i = 0; i < n->n_kids; i++) {
        TRY(jeval(rt, f, n->kids[i], &out->u.l->v[out->u.l->n]));
        out->u.l->n++;
    }
    return MLXR_OK;
}

static mlxr_status eval_compare(jrt *rt, jframe *f, const jnode *n, jv *out) {
    jv left;
    TRY(jeval(rt, f, n->a, &left));
    bool ok = true;
    mlxr_status st = MLXR_OK;
    for (size_t i = 0; i < n->n_kids && ok && !st; i++) {
        jv right;
        st = jeval(rt, f, n->kids[i]->a, &right);
        if (st) break;
        st = compare(rt, n->kids[i]->op, left, right, &ok);
        jv_release(rt, left);
        left = right;
    }
    jv_release(rt, left);
    if (!st) *out = jv_bool(ok);
    return st;
}

static mlxr_status eval_call(jrt *rt, jframe *f, const jnode *n, jv *out) {
    jv fn;
    TRY(jeval(rt, f, n->a, &fn));
    jv store[JMAX_ARGS];
    const char *names[JMAX_ARGS];
    jargs a;
    mlxr_status st = jargs_eval(rt, f, n, &a, store, names);
    if (!st) {
        st = jcall(rt, f, fn, &a, out);
        jargs_free(rt, &a);
    }
    jv_release(rt, fn);
    return st;
}

static mlxr_status eval_binop(jrt *rt, jframe *f, const jnode *n, jv *out) {
    jv a, b;
    TRY(jeval(rt, f, n->a, &a));
    mlxr_status st = jeval(rt, f, n->b, &b);
    if (st) {
        jv_release(rt, a);
        return st;
    }
    if (n->op == JOP_CONCAT) {
        jbuf buf = {0};
        st = jv_to_str(rt, &buf, a);
        if (!st) st = jv_to_str(rt, &buf, b);
        if (!st) st = jv_str(rt, buf.p ? buf.p : "", buf.n, out);
        jbuf_free(rt, &buf);
    } else {
        st = jarith(rt, n->op, a, b, out);
    }
    jv_release(rt, a);
    jv_release(rt, b);
    return st;
}

static mlxr_status eval_inner(jrt *rt, jframe *f, const jnode *n, jv *out) {
    jv a = jv_undef(), b = jv_undef();
    mlxr_status st = MLXR_OK;
    switch (n->kind) {
    case JN_LIT:
        *out = jv_retain(n->val);
        return MLXR_OK;
    case JN_NAME:
        return eval_name(rt, f, n, out);
    case JN_LIST:
    case JN_TUPLE:
    case JN_DICT:
        return eval_seq(rt, f, n, out);
    case JN_GETATTR:
        TRY(jeval(rt, f, n->a, &a));
        st = get_attr(rt, a, n->val, out);
        break;
    case JN_GETITEM:
        TRY(jeval(rt, f, n->a, &a));
        st = jeval(rt, f, n->b, &b);
        if (!st) st = get_item(rt, a, b, out);
        break;
    case JN_SLICE: {
        jv c = jv_none(), d = jv_none(), e = jv_none();
        TRY(jeval(rt, f, n->a, &a));
        if (n->b) st = jeval(rt, f, n->b, &c);
        if (!st && n->c) st = jeval(rt, f, n->c, &d);
        if (!st && n->d) st = jeval(rt, f, n->d, &e);
        if (!st) st = do_slice(rt, a, c, d, e, out);
        jv_release(rt, c);
        jv_release(rt, d);
        jv_release(rt, e);
        break;
    }
    case JN_CALL:
        return eval_call(rt, f, n, out);
    case JN_FILTER:
        TRY(jeval(rt, f, n->a, &a));
        st = eval_filter(rt, f, n, a, out);
        break;
    case JN_TEST: {
        TRY(jeval(rt, f, n->a, &a));
        jv store[JMAX_ARGS];
        const char *names[JMAX_ARGS];
        jargs args;
        st = jargs_eval(rt, f, n, &args, store, names);
        bool r = false;
        if (!st) {
            st = jtest_apply(rt, f, n->val.u.s->s, a, &args, &r);
            jargs_free(rt, &args);
        }
        if (!st) *out = jv_bool(n->op ? !r : r);
        break;
    }
    case JN_NEG:
    case JN_POS:
        TRY(jeval(rt, f, n->a, &a));
        if (a.t == JV_INT || a.t == JV_BOOL) {
            int64_t i = a.t == JV_INT ? a.u.i : a.u.b;
            if (n->kind == JN_NEG && i == INT64_MIN)
                st = int_result(rt, true, 0, out);
            else
                *out = jv_int(n->kind == JN_NEG ? -i : i);
        } else if (a.t == JV_FLOAT) {
            *out = jv_float(n->kind == JN_NEG ? -a.u.f : a.u.f);
        } else if (a.t == JV_UNDEF) {
            st = undef_fail(rt, a, a);
        } else {
            st = jfail(rt, MLXR_ERR_INVALID, "bad operand type for unary %s: '%s'",
                       n->kind == JN_NEG ? "-" : "+", jv_type_name(a));
        }
        break;
    case JN_NOT:
        TRY(jeval(rt, f, n->a, &a));
        *out = jv_bool(!jv_truthy(a));
        break;
    case JN_AND:
    case JN_OR:
        TRY(jeval(rt, f, n->a, &a));
        if (jv_truthy(a) == (n->kind == JN_OR)) {
            *out = a;
            return MLXR_OK;
        }
        jv_release(rt, a);
        return jeval(rt, f, n->b, out);
    case JN_BINOP:
        return eval_binop(rt, f, n, out);
    case JN_COMPARE:
        return eval_compare(rt, f, n, out);
    case JN_COND:
        TRY(jeval(rt, f, n->a, &a));
        if (jv_truthy(a))
            st = jeval(rt, f, n->b, out);
        else if (n->c)
            st = jeval(rt, f, n->c, out);
        else
            st = jv_undef_msg(rt, out,
                              "the inline if-expression evaluated to false and no else "
                              "section was defined.");
        break;
    default:
        return jfail(rt, MLXR_ERR_INTERNAL, "not an expression node (%d)", (int)n->kind);
    }
    jv_release(rt, a);
    jv_release(rt, b);
    return st;
}

mlxr_status jeval(jrt *rt, jframe *f, const jnode *n, jv *out) {
    *out = jv_undef();
    TRY(jstep(rt));
    if (++rt->depth > rt->lim.max_depth) {
        rt->depth--;
        return jfail(rt, MLXR_ERR_RANGE, "template evaluation nested deeper than %d",
                     rt->lim.max_depth);
    }
    mlxr_status st = eval_inner(rt, f, n, out);
    rt->depth--;
    if (st) {
        jv_release(rt, *out);
        *out = jv_undef();
    }
    return st;
}
