/*
 * jinja_exec.c - statements (output, if, for, set, block set, macro definitions, call blocks,
 * filter blocks, break/continue) and the render entry point that lexes, parses and executes a
 * template within its limits.
 */
#include "template/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRY(x)                                                                                     \
    do {                                                                                           \
        mlxr_status st_ = (x);                                                                     \
        if (st_) return st_;                                                                       \
    } while (0)

/* ---- statements --------------------------------------------------------------------------- */

/* Materialize an iterable as a list of items (new reference). */
mlxr_status jiter_list(jrt *rt, jv v, jv *out) {
    switch (v.t) {
    case JV_LIST:
        *out = jv_retain(v);
        return MLXR_OK;
    case JV_UNDEF:
        return jv_list(rt, 0, out);
    case JV_DICT:
        if (v.u.d->kind != JDICT_PLAIN) break;
        TRY(jv_list(rt, v.u.d->n, out));
        for (size_t i = 0; i < v.u.d->n; i++)
            out->u.l->v[out->u.l->n++] = jv_retain(v.u.d->k[i]);
        return MLXR_OK;
    case JV_STR: {
        const jstr *s = v.u.s;
        TRY(jv_list(rt, 0, out));
        for (size_t i = 0; i < s->len;) {
            size_t w;
            jutf8_decode(s->s + i, s->len - i, &w);
            jv c;
            TRY(jv_str(rt, s->s + i, w, &c));
            TRY(jlist_push(rt, out->u.l, c));
            i += w;
        }
        return MLXR_OK;
    }
    default:
        break;
    }
    return jfail(rt, MLXR_ERR_INVALID, "'%s' object is not iterable", jv_type_name(v));
}

static mlxr_status assign(jrt *rt, jframe *f, const jnode *target, jv val) {
    if (target->kind == JN_NAME) return jframe_set(rt, f, target->val, jv_retain(val));
    if (target->kind == JN_GETATTR) { /* ns.attr */
        jv *ns = jframe_lookup(f, target->a->val.u.s);
        if (!ns || ns->t != JV_DICT || ns->u.d->kind != JDICT_NAMESPACE)
            return jfail(rt, MLXR_ERR_INVALID, "cannot assign attribute on non-namespace object");
        jv key = jv_retain(target->val);
        return jdict_set(rt, ns->u.d, key, jv_retain(val));
    }
    /* tuple unpacking */
    jv items;
    TRY(jiter_list(rt, val, &items));
    mlxr_status st = MLXR_OK;
    if (items.u.l->n != target->n_kids)
        st = jfail(rt, MLXR_ERR_INVALID,
                   items.u.l->n > target->n_kids ? "too many values to unpack (expected %zu)"
                                                 : "not enough values to unpack (expected %zu)",
                   target->n_kids);
    for (size_t i = 0; i < target->n_kids && !st; i++)
        st = assign(rt, f, target->kids[i], items.u.l->v[i]);
    jv_release(rt, items);
    return st;
}

static mlxr_status loop_dict(jrt *rt, jlist *items, size_t i, jv *out) {
    TRY(jv_dict(rt, JDICT_LOOP, out));
    out->u.d->loop_items = items;
    items->rc += items->rc > 0;
    out->u.d->loop_i = i;
    return MLXR_OK;
}

static mlxr_status exec_for(jrt *rt, jframe *f, const jnode *n) {
    if (n->op) return jfail(rt, MLXR_ERR_UNSUPPORTED, "recursive for loops are not supported");
    jv seq, all;
    TRY(jeval(rt, f, n->b, &seq));
    mlxr_status st = jiter_list(rt, seq, &all);
    jv_release(rt, seq);
    if (st) return st;
    jv items = all;
    if (n->c) { /* {% for x in xs if cond %}: filter first, so loop.length counts the kept ones */
        st = jv_list(rt, 0, &items);
        for (size_t i = 0; i < all.u.l->n && !st; i++) {
            st = jstep(rt);
            if (st) break;
            jframe *g = NULL;
            st = jframe_new(rt, f, &g);
            if (st) break;
            st = assign(rt, g, n->a, all.u.l->v[i]);
            jv c = jv_undef();
            if (!st) st = jeval(rt, g, n->c, &c);
            if (!st && jv_truthy(c)) st = jlist_push(rt, items.u.l, jv_retain(all.u.l->v[i]));
            jv_release(rt, c);
            jframe_exit(rt, g);
        }
        jv_release(rt, all);
        if (st) {
            jv_release(rt, items);
            return st;
        }
    }
    jlist *l = items.u.l;
    jv loop_name;
    st = jv_strz(rt, "loop", &loop_name);
    jframe *g = NULL;
    if (!st && l->n) st = jframe_new(rt, f, &g);
    for (size_t i = 0; i < l->n && !st; i++) {
        st = jstep(rt); /* an empty body still costs a step per iteration */
        if (!st && i) st = jframe_renew(rt, &g);
        if (st) break;
        jv loop;
        st = loop_dict(rt, l, i, &loop);
        if (!st) st = jframe_set(rt, g, loop_name, loop);
        if (!st) st = assign(rt, g, n->a, l->v[i]);
        if (!st) st = jexec_body(rt, g, n->kids, n->n_kids);
        if (rt->loop_ctl == 1) {
            rt->loop_ctl = 0;
            break;
        }
        rt->loop_ctl = 0;
    }
    if (g) jframe_exit(rt, g);
    jv_release(rt, loop_name);
    bool empty = l->n == 0;
    jv_release(rt, items);
    if (!st && empty && n->n_kids2) { /* the else block has its own scope too */
        jframe *e = NULL;
        st = jframe_new(rt, f, &e);
        if (!st) st = jexec_body(rt, e, n->kids2, n->n_kids2);
        if (e) jframe_exit(rt, e);
    }
    return st;
}

/* Render a body into a fresh string (block set, filter block, caller). */
static mlxr_status capture(jrt *rt, jframe *f, jnode *const *kids, size_t nk, jv *out) {
    jbuf buf = {0}, *saved = rt->out;
    rt->out = &buf;
    mlxr_status st = jexec_body(rt, f, kids, nk);
    rt->out = saved;
    if (!st) st = jv_str(rt, buf.p ? buf.p : "", buf.n, out);
    jbuf_free(rt, &buf);
    return st;
}

static mlxr_status exec_stmt(jrt *rt, jframe *f, const jnode *n) {
    jv v = jv_undef(), w = jv_undef();
    mlxr_status st = MLXR_OK;
    switch (n->kind) {
    case JN_TEXT:
        return jbuf_put(rt, rt->out, n->val.u.s->s, n->val.u.s->len);
    case JN_OUTPUT:
        TRY(jeval(rt, f, n->a, &v));
        st = jv_to_str(rt, rt->out, v);
        break;
    case JN_IF:
        TRY(jeval(rt, f, n->a, &v));
        st = jv_truthy(v) ? jexec_body(rt, f, n->kids, n->n_kids)
                          : jexec_body(rt, f, n->kids2, n->n_kids2);
        break;
    case JN_FOR:
        return exec_for(rt, f, n);
    case JN_SET:
        TRY(jeval(rt, f, n->b, &v));
        st = assign(rt, f, n->a, v);
        break;
    case JN_SETBLOCK:
        TRY(capture(rt, f, n->kids, n->n_kids, &v));
        st = jfilter_chain(rt, f, n->b, v, &w);
        if (!st) st = assign(rt, f, n->a, w);
        break;
    case JN_FILTERBLOCK:
        TRY(capture(rt, f, n->kids, n->n_kids, &v));
        st = jfilter_chain(rt, f, n->a, v, &w);
        if (!st) st = jv_to_str(rt, rt->out, w);
        break;
    case JN_MACRO:
        /* a macro sees the scope it was defined in (a loop's `loop`, the loop variable): keep
         * that scope alive for the rest of the render */
        TRY(jv_func(rt, JFN_MACRO, 0, n->val.u.s->s, &v));
        v.u.fn->macro = n;
        v.u.fn->closure = f;
        for (jframe *g = f; g && g != rt->globals; g = g->parent)
            g->captured = true;
        st = jframe_set(rt, f, n->val, v);
        v = jv_undef();
        break;
    case JN_CALLBLOCK: {
        /* caller() renders this block's body in the frame it was written in */
        TRY(jv_func(rt, JFN_CALLER, 0, "caller", &w));
        w.u.fn->macro = n;
        w.u.fn->closure = f;
        for (jframe *g = f; g; g = g->parent)
            g->captured = true;
        const jnode *call = n->a;
        st = jeval(rt, f, call->a, &v);
        jv store[JMAX_ARGS + 1];
        const char *names[JMAX_ARGS + 1];
        jargs a;
        if (!st) st = jargs_eval(rt, f, call, &a, store, names);
        if (!st) {
            a.kw_val[a.n_kw] = jv_retain(w);
            a.kw_name[a.n_kw++] = "caller";
            jv r;
            st = jcall(rt, f, v, &a, &r);
            jargs_free(rt, &a);
            if (!st) st = jv_to_str(rt, rt->out, r);
            jv_release(rt, r);
        }
        break;
    }
    case JN_BREAK:
        rt->loop_ctl = 1;
        return MLXR_OK;
    case JN_CONTINUE:
        rt->loop_ctl = 2;
        return MLXR_OK;
    case JN_BODY:
        return jexec_body(rt, f, n->kids, n->n_kids);
    default:
        return jfail(rt, MLXR_ERR_INTERNAL, "not a statement node (%d)", (int)n->kind);
    }
    jv_release(rt, v);
    jv_release(rt, w);
    return st;
}

mlxr_status jexec_body(jrt *rt, jframe *f, jnode *const *kids, size_t n) {
    for (size_t i = 0; i < n && !rt->loop_ctl; i++) {
        TRY(jstep(rt));
        if (++rt->depth > rt->lim.max_depth) {
            rt->depth--;
            return jfail(rt, MLXR_ERR_RANGE, "template evaluation nested deeper than %d",
                         rt->lim.max_depth);
        }
        mlxr_status st = exec_stmt(rt, f, kids[i]);
        rt->depth--;
        if (st) return st;
    }
    return MLXR_OK;
}

mlxr_status mlxr_jinja_exec(jrt *rt, const jnode *root, jv vars) {
    jframe *g = NULL;
    TRY(jframe_new(rt, NULL, &g));
    mlxr_status st = MLXR_OK;
    if (vars.t == JV_DICT)
        for (size_t i = 0; i < vars.u.d->n && !st; i++)
            st = jdict_set(rt, g->vars, jv_retain(vars.u.d->k[i]), jv_retain(vars.u.d->v[i]));
    rt->globals = g;
    if (!st) st = jexec_body(rt, g, root->kids, root->n_kids);
    rt->globals = NULL;
    jframe_exit(rt, g);
    while (rt->dead) {
        jframe *d = rt->dead;
        rt->dead = d->next_dead;
        jv dv = {JV_DICT, {0}};
        dv.u.d = d->vars;
        jv_release(rt, dv);
        jmem_free(rt, d, sizeof *d);
    }
    return st;
}

/* ---- entry -------------------------------------------------------------------------------- */

void mlxr_jinja_default_limits(jlimits *l) {
    l->max_output = (size_t)16 << 20;
    l->max_steps = 2000000;
    l->max_depth = 600;
    l->max_call_depth = 64;
    l->max_mem = (size_t)256 << 20;
    l->max_source = (size_t)1 << 20;
}

mlxr_status mlxr_jinja_render(const char *tmpl, size_t tmpl_len, const char *vars_json,
                              size_t vars_len, const jlimits *lim, char **out, size_t *out_len,
                              mlxr_err *err) {
    mlxr_err local;
    memset(&local, 0, sizeof local);
    jrt rtv;
    memset(&rtv, 0, sizeof rtv);
    jrt *rt = &rtv;
    if (lim)
        rt->lim = *lim;
    else
        mlxr_jinja_default_limits(&rt->lim);
    rt->err = err ? err : &local;
    rt->err->code = MLXR_OK;
    rt->err->msg[0] = '\0';
    *out = NULL;
    if (out_len) *out_len = 0;
    const char *now = getenv("MLXR_TEMPLATE_NOW");
    if (now && *now) {
        rt->now = strtoll(now, NULL, 10);
        rt->now_utc = true;
    } else {
        rt->now = (int64_t)time(NULL);
    }
    jarena arena = {0};
    jtok *toks = NULL;
    size_t n_toks = 0;
    jnode *root = NULL;
    jv vars = jv_undef();
    jbuf buf = {0};
    rt->out = &buf;
    mlxr_status st = mlxr_jinja_lex(rt, &arena, tmpl, tmpl_len, &toks, &n_toks);
    if (!st) st = mlxr_jinja_parse(rt, &arena, toks, n_toks, &root);
    if (!st && vars_json && vars_len) {
        st = jjson_parse(rt, vars_json, vars_len, &vars);
        if (!st && vars.t != JV_DICT)
            st = jfail(rt, MLXR_ERR_INVALID, "template variables must be a JSON object");
    }
    if (!st) st = mlxr_jinja_exec(rt, root, vars);
    jv_release(rt, vars);
    jarena_free(rt, &arena);
    if (!st) {
        char *p = malloc(buf.n + 1);
        if (!p)
            st = jfail(rt, MLXR_ERR_NOMEM, "out of memory");
        else {
            if (buf.n) memcpy(p, buf.p, buf.n);
            p[buf.n] = '\0';
            *out = p;
            if (out_len) *out_len = buf.n;
        }
    }
    jbuf_free(rt, &buf);
    if (st && rt->err->code == MLXR_OK) jfail(rt, st, "template rendering failed");
    return st;
}
