/*
 * jinja_call.c - scopes and calls: frames (variable scopes), the global functions (range,
 * namespace, dict, raise_exception, strftime_now) and macro calls.
 *
 * Scoping follows jinja2: the render variables and top-level {% set %}s live in the globals frame;
 * every for-loop iteration gets a fresh scope (assignments inside do not survive the iteration,
 * as jinja2 behaves); a macro call gets a frame whose parent is the scope the macro was defined in.
 * Frames captured by a {% call %} block's `caller` stay allocated until the end of the render
 * (rt->dead), so a caller that escapes its block never sees freed memory.
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

/* ---- frames ------------------------------------------------------------------------------- */

mlxr_status jframe_new(jrt *rt, jframe *parent, jframe **out) {
    jframe *f = jmem_alloc(rt, sizeof *f);
    if (!f) return rt->err->code;
    jv d;
    mlxr_status st = jv_dict(rt, JDICT_PLAIN, &d);
    if (st) {
        jmem_free(rt, f, sizeof *f);
        return st;
    }
    f->parent = parent;
    f->vars = d.u.d;
    f->captured = false;
    f->next_dead = NULL;
    *out = f;
    return MLXR_OK;
}

void jframe_exit(jrt *rt, jframe *f) {
    jv d = {JV_DICT, {0}};
    d.u.d = f->vars;
    if (f->captured) {
        /* keep the frame (a caller may still point at it) but drop its values now */
        jv empty;
        if (jv_dict(rt, JDICT_PLAIN, &empty) == MLXR_OK) {
            jv_release(rt, d);
            f->vars = empty.u.d;
        }
        f->next_dead = rt->dead;
        rt->dead = f;
        return;
    }
    jv_release(rt, d);
    jmem_free(rt, f, sizeof *f);
}

/* A fresh scope for the next loop iteration: reuse f unless a caller captured it. */
mlxr_status jframe_renew(jrt *rt, jframe **f) {
    if ((*f)->captured) {
        jframe *parent = (*f)->parent;
        jframe_exit(rt, *f);
        *f = NULL;
        return jframe_new(rt, parent, f);
    }
    jdict *d = (*f)->vars;
    for (size_t i = 0; i < d->n; i++) {
        jv_release(rt, d->k[i]);
        jv_release(rt, d->v[i]);
    }
    d->n = 0;
    return MLXR_OK;
}

jv *jframe_lookup(jframe *f, const jstr *name) {
    for (; f; f = f->parent) {
        jv *v = jdict_getz(f->vars, name->s);
        if (v) return v;
    }
    return NULL;
}

mlxr_status jframe_set(jrt *rt, jframe *f, jv name, jv val) {
    return jdict_set(rt, f->vars, jv_retain(name), val);
}

/* ---- builtins ----------------------------------------------------------------------------- */

enum { B_RANGE, B_NAMESPACE, B_DICT, B_RAISE, B_STRFTIME };
static const char *const BUILTINS[] = {"range", "namespace", "dict", "raise_exception",
                                       "strftime_now"};

int jbuiltin_id(const char *name) {
    for (int i = 0; i < (int)(sizeof BUILTINS / sizeof *BUILTINS); i++)
        if (!strcmp(BUILTINS[i], name)) return i;
    return -1;
}

const char *jbuiltin_name(int id) {
    return BUILTINS[id];
}

static mlxr_status call_range(jrt *rt, const jargs *a, jv *out) {
    int64_t r[3] = {0, 0, 1};
    if (a->n_pos < 1 || a->n_pos > 3 || a->n_kw)
        return jfail(rt, MLXR_ERR_INVALID, "range expected 1 to 3 integer arguments");
    for (size_t i = 0; i < a->n_pos; i++)
        TRY(jv_int_arg(rt, a->pos[i], "range", &r[i + (a->n_pos == 1)]));
    if (r[2] == 0) return jfail(rt, MLXR_ERR_INVALID, "range() arg 3 must not be zero");
    /* len(range) as Python computes it, in wide arithmetic so hostile bounds cannot overflow */
    __int128 span = r[2] > 0 ? (__int128)r[1] - r[0] : (__int128)r[0] - r[1];
    __int128 step = r[2] > 0 ? r[2] : -(__int128)r[2];
    __int128 len = span <= 0 ? 0 : (span + step - 1) / step;
    if (len > 100000)
        return jfail(rt, MLXR_ERR_RANGE,
                     "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    TRY(jv_list(rt, (size_t)len, out));
    for (int64_t k = 0; k < (int64_t)len; k++)
        out->u.l->v[out->u.l->n++] = jv_int(r[0] + k * r[2]);
    jlist_mark(*out, "range", false);
    return MLXR_OK;
}

static mlxr_status call_kwdict(jrt *rt, const jargs *a, jdict_kind kind, jv *out) {
    TRY(jv_dict(rt, kind, out));
    if (a->n_pos > 1) return jfail(rt, MLXR_ERR_INVALID, "expected at most 1 positional argument");
    if (a->n_pos == 1) {
        jv src = a->pos[0];
        if (src.t != JV_DICT) return jfail(rt, MLXR_ERR_INVALID, "expected a mapping argument");
        for (size_t i = 0; i < src.u.d->n; i++)
            TRY(jdict_set(rt, out->u.d, jv_retain(src.u.d->k[i]), jv_retain(src.u.d->v[i])));
    }
    for (size_t i = 0; i < a->n_kw; i++) {
        jv k;
        TRY(jv_strz(rt, a->kw_name[i], &k));
        TRY(jdict_set(rt, out->u.d, k, jv_retain(a->kw_val[i])));
    }
    return MLXR_OK;
}

static mlxr_status call_strftime(jrt *rt, const jargs *a, jv *out) {
    if (a->n_pos != 1 || a->pos[0].t != JV_STR)
        return jfail(rt, MLXR_ERR_INVALID, "strftime_now expects one format string");
    time_t t = (time_t)rt->now;
    struct tm tm;
    if (rt->now_utc)
        gmtime_r(&t, &tm);
    else
        localtime_r(&t, &tm);
    char buf[512];
    const char *fmt = a->pos[0].u.s->s;
    size_t n = fmt[0] ? strftime(buf, sizeof buf, fmt, &tm) : 0;
    if (n == 0 && fmt[0]) return jfail(rt, MLXR_ERR_RANGE, "strftime_now result too long");
    return jv_str(rt, buf, n, out);
}

static mlxr_status call_builtin(jrt *rt, const jfunc *fn, const jargs *a, jv *out) {
    switch (fn->id) {
    case B_RANGE:
        return call_range(rt, a, out);
    case B_NAMESPACE:
        return call_kwdict(rt, a, JDICT_NAMESPACE, out);
    case B_DICT:
        return call_kwdict(rt, a, JDICT_PLAIN, out);
    case B_RAISE: {
        jbuf b = {0};
        mlxr_status st = a->n_pos ? jv_to_str(rt, &b, a->pos[0]) : MLXR_OK;
        if (!st) {
            /* the template's own message, verbatim */
            snprintf(rt->err->msg, sizeof rt->err->msg, "%s", b.p ? b.p : "");
            rt->err->code = MLXR_ERR_INVALID;
            rt->err->file = __FILE__;
            rt->err->line = __LINE__;
            st = MLXR_ERR_INVALID;
        }
        jbuf_free(rt, &b);
        return st;
    }
    case B_STRFTIME:
        return call_strftime(rt, a, out);
    }
    return jfail(rt, MLXR_ERR_INTERNAL, "unknown builtin");
}

/* ---- macros ------------------------------------------------------------------------------- */

static mlxr_status call_macro(jrt *rt, const jfunc *fn, const jargs *a, jv caller, jv *out) {
    const jnode *m = fn->macro;
    if (rt->call_depth >= rt->lim.max_call_depth)
        return jfail(rt, MLXR_ERR_RANGE, "macro calls nested deeper than %d",
                     rt->lim.max_call_depth);
    jframe *parent = fn->closure ? fn->closure : rt->globals;
    jframe *f = NULL;
    TRY(jframe_new(rt, parent, &f));
    mlxr_status st = MLXR_OK;
    jv varargs = jv_undef(), kwargs = jv_undef();
    size_t np = m->n_kids2;
    st = jv_list(rt, 0, &varargs);
    if (!st) {
        varargs.u.l->tuple = true;
        st = jv_dict(rt, JDICT_PLAIN, &kwargs);
    }
    for (size_t i = 0; i < np && !st; i++) {
        const jnode *p = m->kids2[i];
        jv v = jv_undef();
        bool have = false;
        if (i < a->n_pos) {
            v = jv_retain(a->pos[i]);
            have = true;
        }
        for (size_t k = 0; k < a->n_kw && !have; k++)
            if (!strcmp(a->kw_name[k], p->val.u.s->s)) {
                v = jv_retain(a->kw_val[k]);
                have = true;
            }
        if (!have && p->a)
            st = jeval(rt, f, p->a, &v);
        else if (!have)
            st = jv_undef_msg(rt, &v, "parameter '%s' was not provided", p->val.u.s->s);
        if (!st) st = jframe_set(rt, f, p->val, v);
    }
    for (size_t i = np; i < a->n_pos && !st; i++)
        st = jlist_push(rt, varargs.u.l, jv_retain(a->pos[i]));
    for (size_t k = 0; k < a->n_kw && !st; k++) {
        bool is_param = false;
        for (size_t i = 0; i < np; i++)
            is_param |= !strcmp(a->kw_name[k], m->kids2[i]->val.u.s->s);
        if (!is_param) {
            if (!strcmp(a->kw_name[k], "caller")) continue;
            jv key;
            st = jv_strz(rt, a->kw_name[k], &key);
            if (!st) st = jdict_set(rt, kwargs.u.d, key, jv_retain(a->kw_val[k]));
        }
    }
    jv name;
    if (!st) st = jv_strz(rt, "varargs", &name);
    if (!st) {
        st = jframe_set(rt, f, name, varargs);
        varargs = jv_undef();
        jv_release(rt, name);
    }
    if (!st) st = jv_strz(rt, "kwargs", &name);
    if (!st) {
        st = jframe_set(rt, f, name, kwargs);
        kwargs = jv_undef();
        jv_release(rt, name);
    }
    if (!st && caller.t == JV_FUNC) {
        st = jv_strz(rt, "caller", &name);
        if (!st) {
            st = jframe_set(rt, f, name, jv_retain(caller));
            jv_release(rt, name);
        }
    }
    jbuf buf = {0}, *saved = rt->out;
    if (!st) {
        rt->call_depth++;
        rt->out = &buf;
        st = jexec_body(rt, f, m->kids, m->n_kids);
        rt->out = saved;
        rt->call_depth--;
        rt->loop_ctl = 0;
    }
    if (!st) st = jv_str(rt, buf.p ? buf.p : "", buf.n, out);
    jbuf_free(rt, &buf);
    jv_release(rt, varargs);
    jv_release(rt, kwargs);
    jframe_exit(rt, f);
    return st;
}

mlxr_status jcall(jrt *rt, jframe *f, jv fn, const jargs *args, jv *out) {
    *out = jv_undef();
    if (fn.t == JV_UNDEF)
        return jfail(rt, MLXR_ERR_INVALID, "%s", fn.u.s ? fn.u.s->s : "'undefined' is undefined");
    if (fn.t != JV_FUNC)
        return jfail(rt, MLXR_ERR_INVALID, "'%s' object is not callable", jv_type_name(fn));
    const jfunc *p = fn.u.fn;
    switch (p->kind) {
    case JFN_MACRO:
    case JFN_CALLER: {
        jv caller = jv_undef();
        for (size_t k = 0; k < args->n_kw; k++)
            if (!strcmp(args->kw_name[k], "caller")) caller = args->kw_val[k];
        return call_macro(rt, p, args, caller, out);
    }
    case JFN_BUILTIN:
        return call_builtin(rt, p, args, out);
    case JFN_METHOD:
        return jmethod_call(rt, p, args, out);
    }
    return jfail(rt, MLXR_ERR_INTERNAL, "bad function kind");
}
