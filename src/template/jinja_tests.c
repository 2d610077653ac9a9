/*
 * jinja_tests.c - jinja2's builtin tests (tests.py) for `x is name(args)` and select/reject:
 * defined, none, string, number, integer, float, boolean, true, false, mapping, sequence,
 * iterable, callable, even, odd, divisibleby, sameas, lower, upper and the comparisons
 * (equalto/eq/==, ne/!=, lt/<, gt/>, le/<=, ge/>=, in). Python's type notions apply: a bool is a
 * number, a str is a sequence, a dict is iterable.
 */
#include "template/template.h"

#include <math.h>
#include <string.h>

#define TRY(x)                                                                                     \
    do {                                                                                           \
        mlxr_status st_ = (x);                                                                     \
        if (st_) return st_;                                                                       \
    } while (0)

/* Argument `pos` (0-based, after the tested value) or keyword `name`; NULL if absent. */
static const jv *arg(const jargs *a, size_t pos, const char *name) {
    if (pos < a->n_pos) return &a->pos[pos];
    for (size_t i = 0; i < a->n_kw; i++)
        if (name && !strcmp(a->kw_name[i], name)) return &a->kw_val[i];
    return NULL;
}

/* ---- tests -------------------------------------------------------------------------------- */

static int cmp_op(const char *name) {
    static const struct {
        const char *name;
        int op;
    } T[] = {{"equalto", JOP_EQ}, {"eq", JOP_EQ},          {"==", JOP_EQ},       {"ne", JOP_NE},
             {"!=", JOP_NE},      {"lt", JOP_LT},          {"lessthan", JOP_LT}, {"<", JOP_LT},
             {"gt", JOP_GT},      {"greaterthan", JOP_GT}, {">", JOP_GT},        {"le", JOP_LE},
             {"<=", JOP_LE},      {"ge", JOP_GE},          {">=", JOP_GE},       {"in", JOP_IN}};
    for (size_t i = 0; i < sizeof T / sizeof *T; i++)
        if (!strcmp(T[i].name, name)) return T[i].op;
    return -1;
}

static bool all_cased(const jstr *s, bool upper, jrt *rt) {
    jbuf b = {0};
    bool any = false, ok = true;
    if ((upper ? jstr_lower(rt, &b, s->s, s->len) : jstr_upper(rt, &b, s->s, s->len)) != MLXR_OK) {
        jbuf_free(rt, &b);
        return false;
    }
    /* cased chars change under the opposite mapping; the string is upper (lower) when at least
     * one char is cased and mapping to upper (lower) leaves it equal */
    any = b.n != s->len || (b.n && memcmp(b.p, s->s, s->len) != 0);
    jbuf_free(rt, &b);
    jbuf c = {0};
    if ((upper ? jstr_upper(rt, &c, s->s, s->len) : jstr_lower(rt, &c, s->s, s->len)) != MLXR_OK)
        ok = false;
    else
        ok = c.n == s->len && (!c.n || !memcmp(c.p, s->s, s->len));
    jbuf_free(rt, &c);
    return any && ok;
}

mlxr_status jtest_apply(jrt *rt, jframe *f, const char *name, jv in, const jargs *a, bool *out) {
    (void)f;
    TRY(jstep(rt));
    const jv *x = arg(a, 0, NULL);
    if (!strcmp(name, "defined"))
        *out = in.t != JV_UNDEF;
    else if (!strcmp(name, "undefined"))
        *out = in.t == JV_UNDEF;
    else if (!strcmp(name, "none"))
        *out = in.t == JV_NONE;
    else if (!strcmp(name, "string"))
        *out = in.t == JV_STR;
    else if (!strcmp(name, "number"))
        *out = jv_is_num(in);
    else if (!strcmp(name, "integer"))
        *out = in.t == JV_INT;
    else if (!strcmp(name, "float"))
        *out = in.t == JV_FLOAT;
    else if (!strcmp(name, "boolean"))
        *out = in.t == JV_BOOL;
    else if (!strcmp(name, "true"))
        *out = in.t == JV_BOOL && in.u.b;
    else if (!strcmp(name, "false"))
        *out = in.t == JV_BOOL && !in.u.b;
    else if (!strcmp(name, "mapping"))
        *out = in.t == JV_DICT && in.u.d->kind == JDICT_PLAIN;
    else if (!strcmp(name, "sequence")) /* Undefined has __len__ and __getitem__ */
        *out = in.t == JV_STR || in.t == JV_LIST || in.t == JV_UNDEF ||
               (in.t == JV_DICT && in.u.d->kind == JDICT_PLAIN);
    else if (!strcmp(name, "iterable"))
        *out = in.t == JV_STR || in.t == JV_LIST || in.t == JV_UNDEF ||
               (in.t == JV_DICT && in.u.d->kind == JDICT_PLAIN);
    else if (!strcmp(name, "callable"))
        *out = in.t == JV_FUNC;
    else if (!strcmp(name, "even") || !strcmp(name, "odd")) {
        int64_t v;
        if (in.t == JV_INT || in.t == JV_BOOL)
            v = in.t == JV_INT ? in.u.i : in.u.b;
        else if (in.t == JV_FLOAT && in.u.f == floor(in.u.f) && fabs(in.u.f) < 9e18)
            v = (int64_t)in.u.f;
        else if (in.t == JV_FLOAT) {
            *out = false;
            return MLXR_OK;
        } else
            return jfail(rt, MLXR_ERR_INVALID, "unsupported operand type(s) for %%: '%s' and 'int'",
                         jv_type_name(in));
        *out = (v % 2 == 0) == (name[0] == 'e');
    } else if (!strcmp(name, "divisibleby")) { /* value % num == 0, with Python's errors */
        if (!x) return jfail(rt, MLXR_ERR_INVALID, "divisibleby expects an argument");
        jv r;
        TRY(jarith(rt, JOP_MOD, in, *x, &r));
        *out = jv_eq(r, jv_int(0));
        jv_release(rt, r);
    } else if (!strcmp(name, "sameas")) {
        if (!x) return jfail(rt, MLXR_ERR_INVALID, "sameas expects an argument");
        if (in.t != x->t)
            *out = false;
        else if (in.t == JV_LIST)
            *out = in.u.l == x->u.l;
        else if (in.t == JV_DICT)
            *out = in.u.d == x->u.d;
        else if (in.t == JV_STR)
            *out = in.u.s == x->u.s || jv_eq(in, *x);
        else
            *out = jv_eq(in, *x);
    } else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        *out = in.t == JV_STR && all_cased(in.u.s, name[0] == 'u', rt);
    } else if (cmp_op(name) >= 0) {
        if (!x) return jfail(rt, MLXR_ERR_INVALID, "test '%s' expects an argument", name);
        return jtest_compare(rt, cmp_op(name), in, *x, out);
    } else {
        if (jtest_is_jinja(name))
            return jfail(rt, MLXR_ERR_UNSUPPORTED, "the jinja2 test '%s' is not supported by mlxr",
                         name);
        return jfail(rt, MLXR_ERR_INVALID, "No test named '%s'.", name);
    }
    return MLXR_OK;
}
