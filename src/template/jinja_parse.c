/*
 * jinja_parse.c - recursive-descent parser from tokens to the AST, following jinja2's parser.py
 * grammar and precedence:
 *
 *   tuple     := expr (',' expr)*            (a bare tuple where jinja2 allows one)
 *   expr      := or ('if' or ('else' expr)?)*  (the inline if; not in if/for headers)
 *   or        := and ('or' and)*        and := not ('and' not)*     not := 'not' not | compare
 *   compare   := math1 (('=='|'!='|'<'|'<='|'>'|'>='|'in'|'not' 'in') math1)*
 *   math1     := concat (('+'|'-') concat)*   concat := math2 ('~' math2)*
 *   math2     := pow (('*'|'/'|'//'|'%') pow)*  pow := unary ('**' unary)*
 *   unary     := ('-'|'+') unary | primary postfix* ('|' filter | 'is' test | call)*
 *
 * Statements: if/elif/else, for (targets, inline 'if' filter, else, recursive), set (name,
 * tuple, namespace attribute, block set with filters), macro, call, filter, break/continue,
 * generation, raw (in the lexer). Node fields per kind are listed in template.h's jnode.
 * Nesting is bounded (PARSE_DEPTH) so hostile input cannot exhaust the C stack.
 */
#include "template/template.h"

#include <stdio.h>
#include <string.h>

#define PARSE_DEPTH 200

typedef struct parser {
    jrt *rt;
    jarena *a;
    const jtok *t;
    size_t n, i;
    int depth;
    int loop_depth;
} parser;

static const jtok *cur(parser *P) {
    return &P->t[P->i < P->n ? P->i : P->n - 1];
}

static const jtok *peek(parser *P, size_t k) {
    return &P->t[P->i + k < P->n ? P->i + k : P->n - 1];
}

static mlxr_status pfail(parser *P, const jtok *t, const char *fmt, const char *arg) {
    char what[200];
    snprintf(what, sizeof what, fmt, arg ? arg : "");
    return jfail(P->rt, MLXR_ERR_FORMAT, "template syntax error at line %u, column %u: %s", t->line,
                 t->col, what);
}

static bool is_op(const jtok *t, const char *op) {
    return t->t == JT_OP && t->n == strlen(op) && !memcmp(t->s, op, t->n);
}

static bool is_name(const jtok *t, const char *name) {
    return t->t == JT_NAME && t->n == strlen(name) && !memcmp(t->s, name, t->n);
}

static bool skip_op(parser *P, const char *op) {
    if (!is_op(cur(P), op)) return false;
    P->i++;
    return true;
}

static bool skip_name(parser *P, const char *name) {
    if (!is_name(cur(P), name)) return false;
    P->i++;
    return true;
}

static const char *tok_desc(const jtok *t, char *buf, size_t cap) {
    switch (t->t) {
    case JT_EOF:
        return "end of template";
    case JT_VAR_END:
        return "end of print statement";
    case JT_BLOCK_END:
        return "end of statement block";
    case JT_VAR_BEGIN:
        return "begin of print statement";
    case JT_BLOCK_BEGIN:
        return "begin of statement block";
    case JT_STRING:
        return "string";
    case JT_TEXT:
        return "template data";
    default:
        snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
        return buf;
    }
}

static mlxr_status expect_op(parser *P, const char *op) {
    if (skip_op(P, op)) return MLXR_OK;
    char b[64], want[16];
    snprintf(want, sizeof want, "'%s'", op);
    char msg[160];
    snprintf(msg, sizeof msg, "expected %s, got %s", want, tok_desc(cur(P), b, sizeof b));
    return pfail(P, cur(P), "%s", msg);
}

static mlxr_status expect_type(parser *P, jtok_type t, const char *what) {
    if (cur(P)->t == t) {
        P->i++;
        return MLXR_OK;
    }
    char b[64], msg[160];
    snprintf(msg, sizeof msg, "expected %s, got %s", what, tok_desc(cur(P), b, sizeof b));
    return pfail(P, cur(P), "%s", msg);
}

static jnode *node(parser *P, jnode_kind k, const jtok *at) {
    jnode *n = jarena_alloc(P->rt, P->a, sizeof *n);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->kind = k;
    n->line = at->line;
    n->col = at->col;
    n->val = jv_undef();
    return n;
}

/* An immortal string in the arena. */
static bool arena_str(parser *P, const char *s, size_t len, jv *out) {
    jstr *p = jarena_alloc(P->rt, P->a, sizeof(jstr) + len + 1);
    if (!p) return false;
    p->rc = -1;
    p->safe = false;
    p->len = len;
    if (len) memcpy(p->s, s, len);
    p->s[len] = '\0';
    out->t = JV_STR;
    out->u.s = p;
    return true;
}

/* Growable node list, copied into the arena when done. */
typedef struct nlist {
    jnode **v;
    size_t n, cap;
} nlist;

static mlxr_status nl_push(parser *P, nlist *l, jnode *x) {
    if (!x) return P->rt->err->code;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        jnode **v = jarena_alloc(P->rt, P->a, cap * sizeof *v);
        if (!v) return P->rt->err->code;
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return MLXR_OK;
}

static mlxr_status parse_expr(parser *P, bool with_cond, jnode **out);
static mlxr_status parse_tuple(parser *P, bool with_cond, bool explicit_parens,
                               const char *extra_end, jnode **out);
static mlxr_status parse_unary(parser *P, bool with_filter, jnode **out);
static mlxr_status parse_or(parser *P, jnode **out);

#define TRY(x)                                                                                     \
    do {                                                                                           \
        mlxr_status st_ = (x);                                                                     \
        if (st_) return st_;                                                                       \
    } while (0)
#define NEW(var, kind, at)                                                                         \
    do {                                                                                           \
        (var) = node(P, (kind), (at));                                                             \
        if (!(var)) return P->rt->err->code;                                                       \
    } while (0)

static mlxr_status enter(parser *P) {
    if (++P->depth > PARSE_DEPTH)
        return pfail(P, cur(P), "template nested deeper than %s levels", "200");
    return MLXR_OK;
}

/* ---- expressions -------------------------------------------------------------------------- */

/* Call arguments after '(' up to and including ')': positional nodes and JN_KWARG nodes. */
static mlxr_status parse_args(parser *P, jnode *call) {
    nlist args = {0};
    bool first = true;
    while (!is_op(cur(P), ")")) {
        if (!first) {
            TRY(expect_op(P, ","));
            if (is_op(cur(P), ")")) break;
        }
        first = false;
        if (is_op(cur(P), "*") || is_op(cur(P), "**"))
            return pfail(P, cur(P), "*args and **kwargs in calls are not supported%s", "");
        jnode *x;
        if (cur(P)->t == JT_NAME && is_op(peek(P, 1), "=")) {
            NEW(x, JN_KWARG, cur(P));
            if (!arena_str(P, cur(P)->s, cur(P)->n, &x->val)) return P->rt->err->code;
            P->i += 2;
            TRY(parse_expr(P, true, &x->a));
        } else {
            TRY(parse_expr(P, true, &x));
        }
        TRY(nl_push(P, &args, x));
    }
    TRY(expect_op(P, ")"));
    call->kids = args.v;
    call->n_kids = args.n;
    return MLXR_OK;
}

static mlxr_status parse_subscript(parser *P, jnode *obj, jnode **out) {
    const jtok *at = cur(P);
    if (skip_op(P, ".")) {
        const jtok *t = cur(P);
        jnode *n;
        if (t->t == JT_NAME) {
            NEW(n, JN_GETATTR, t);
            if (!arena_str(P, t->s, t->n, &n->val)) return P->rt->err->code;
        } else if (t->t == JT_INT) {
            NEW(n, JN_GETITEM, t);
            NEW(n->b, JN_LIT, t);
            n->b->val = jv_int(t->i);
        } else {
            return pfail(P, t, "expected name or number after '.'%s", "");
        }
        P->i++;
        n->a = obj;
        *out = n;
        return MLXR_OK;
    }
    /* '[' : index or slice */
    P->i++;
    jnode *parts[3] = {NULL, NULL, NULL};
    int k = 0;
    bool slice = false;
    for (;;) {
        if (is_op(cur(P), "]")) break;
        if (is_op(cur(P), ":")) {
            slice = true;
            if (++k > 2) return pfail(P, cur(P), "too many ':' in slice%s", "");
            P->i++;
            continue;
        }
        if (parts[k]) return pfail(P, cur(P), "expected ']' or ':'%s", "");
        TRY(parse_expr(P, true, &parts[k]));
        if (!slice && is_op(cur(P), ",")) { /* x[a, b] indexes with a tuple */
            jnode *tup;
            NEW(tup, JN_TUPLE, at);
            nlist items = {0};
            TRY(nl_push(P, &items, parts[0]));
            while (skip_op(P, ",")) {
                if (is_op(cur(P), "]")) break;
                jnode *x;
                TRY(parse_expr(P, true, &x));
                TRY(nl_push(P, &items, x));
            }
            tup->kids = items.v;
            tup->n_kids = items.n;
            parts[0] = tup;
        }
    }
    TRY(expect_op(P, "]"));
    jnode *n;
    if (slice) {
        NEW(n, JN_SLICE, at);
        n->b = parts[0];
        n->c = parts[1];
        n->d = parts[2];
    } else {
        if (!parts[0]) return pfail(P, at, "expected an index%s", "");
        NEW(n, JN_GETITEM, at);
        n->b = parts[0];
    }
    n->a = obj;
    *out = n;
    return MLXR_OK;
}

static mlxr_status parse_postfix(parser *P, jnode **io) {
    for (;;) {
        if (is_op(cur(P), ".") || is_op(cur(P), "[")) {
            TRY(parse_subscript(P, *io, io));
        } else if (is_op(cur(P), "(")) {
            jnode *c;
            NEW(c, JN_CALL, cur(P));
            P->i++;
            c->a = *io;
            TRY(parse_args(P, c));
            *io = c;
        } else {
            return MLXR_OK;
        }
    }
}

/* A dotted filter/test name into n->val. */
static mlxr_status parse_dotted_name(parser *P, jnode *n) {
    const jtok *t = cur(P);
    if (t->t != JT_NAME) return pfail(P, t, "expected a filter or test name%s", "");
    char buf[128];
    size_t k = 0;
    for (;;) {
        t = cur(P);
        if (t->t != JT_NAME || k + t->n + 1 >= sizeof buf)
            return pfail(P, t, "bad filter or test name%s", "");
        memcpy(buf + k, t->s, t->n);
        k += t->n;
        P->i++;
        if (!(is_op(cur(P), ".") && peek(P, 1)->t == JT_NAME)) break;
        buf[k++] = '.';
        P->i++;
    }
    return arena_str(P, buf, k, &n->val) ? MLXR_OK : P->rt->err->code;
}

static mlxr_status parse_filter(parser *P, jnode *in, bool start_inline, jnode **out) {
    while (start_inline || is_op(cur(P), "|")) {
        if (!start_inline) P->i++;
        start_inline = false;
        jnode *f;
        NEW(f, JN_FILTER, cur(P));
        TRY(parse_dotted_name(P, f));
        if (skip_op(P, "(")) TRY(parse_args(P, f));
        f->a = in;
        in = f;
    }
    *out = in;
    return MLXR_OK;
}

static mlxr_status parse_test(parser *P, jnode *in, jnode **out) {
    const jtok *at = cur(P);
    P->i++; /* 'is' */
    jnode *t;
    NEW(t, JN_TEST, at);
    if (skip_name(P, "not")) t->op = 1;
    TRY(parse_dotted_name(P, t));
    const jtok *c = cur(P);
    if (skip_op(P, "(")) {
        TRY(parse_args(P, t));
    } else if ((c->t == JT_NAME || c->t == JT_STRING || c->t == JT_INT || c->t == JT_FLOAT ||
                is_op(c, "(") || is_op(c, "[") || is_op(c, "{")) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) return pfail(P, c, "You cannot chain multiple tests with is%s", "");
        jnode *arg;
        TRY(parse_unary(P, false, &arg)); /* primary + postfix */
        t->kids = jarena_alloc(P->rt, P->a, sizeof(jnode *));
        if (!t->kids) return P->rt->err->code;
        t->kids[0] = arg;
        t->n_kids = 1;
    }
    t->a = in;
    *out = t;
    return MLXR_OK;
}

static mlxr_status parse_primary(parser *P, jnode **out) {
    const jtok *t = cur(P);
    jnode *n;
    if (t->t == JT_NAME) {
        NEW(n, JN_LIT, t);
        if (is_name(t, "true") || is_name(t, "True"))
            n->val = jv_bool(true);
        else if (is_name(t, "false") || is_name(t, "False"))
            n->val = jv_bool(false);
        else if (is_name(t, "none") || is_name(t, "None"))
            n->val = jv_none();
        else {
            n->kind = JN_NAME;
            if (!arena_str(P, t->s, t->n, &n->val)) return P->rt->err->code;
        }
        P->i++;
    } else if (t->t == JT_STRING) {
        /* adjacent string literals concatenate */
        size_t len = 0, j = P->i;
        for (; j < P->n && P->t[j].t == JT_STRING; j++)
            len += P->t[j].n;
        NEW(n, JN_LIT, t);
        jstr *s = jarena_alloc(P->rt, P->a, sizeof(jstr) + len + 1);
        if (!s) return P->rt->err->code;
        s->rc = -1;
        s->safe = false;
        s->len = 0;
        for (; P->i < j; P->i++) {
            memcpy(s->s + s->len, P->t[P->i].s, P->t[P->i].n);
            s->len += P->t[P->i].n;
        }
        s->s[s->len] = '\0';
        n->val.t = JV_STR;
        n->val.u.s = s;
    } else if (t->t == JT_INT || t->t == JT_FLOAT) {
        NEW(n, JN_LIT, t);
        n->val = t->t == JT_INT ? jv_int(t->i) : jv_float(t->f);
        P->i++;
    } else if (is_op(t, "(")) {
        P->i++;
        TRY(parse_tuple(P, true, true, NULL, &n));
        TRY(expect_op(P, ")"));
    } else if (is_op(t, "[") || is_op(t, "{")) {
        bool dict = is_op(t, "{");
        const char *close = dict ? "}" : "]";
        NEW(n, dict ? JN_DICT : JN_LIST, t);
        P->i++;
        nlist items = {0};
        while (!is_op(cur(P), close)) {
            if (items.n) {
                TRY(expect_op(P, ","));
                if (is_op(cur(P), close)) break;
            }
            jnode *x;
            TRY(parse_expr(P, true, &x));
            TRY(nl_push(P, &items, x));
            if (dict) {
                TRY(expect_op(P, ":"));
                TRY(parse_expr(P, true, &x));
                TRY(nl_push(P, &items, x));
            }
        }
        TRY(expect_op(P, close));
        n->kids = items.v;
        n->n_kids = items.n;
    } else {
        char b[64];
        return pfail(P, t, "unexpected %s", tok_desc(t, b, sizeof b));
    }
    *out = n;
    return MLXR_OK;
}

static mlxr_status parse_unary(parser *P, bool with_filter, jnode **out) {
    TRY(enter(P));
    const jtok *t = cur(P);
    jnode *n;
    if (is_op(t, "-") || is_op(t, "+")) {
        P->i++;
        NEW(n, is_op(t, "-") ? JN_NEG : JN_POS, t);
        TRY(parse_unary(P, false, &n->a));
    } else {
        TRY(parse_primary(P, &n));
    }
    TRY(parse_postfix(P, &n));
    while (with_filter) {
        if (is_op(cur(P), "|"))
            TRY(parse_filter(P, n, false, &n));
        else if (is_name(cur(P), "is"))
            TRY(parse_test(P, n, &n));
        else if (is_op(cur(P), "("))
            TRY(parse_postfix(P, &n));
        else
            break;
    }
    P->depth--;
    *out = n;
    return MLXR_OK;
}

static mlxr_status binop(parser *P, const jtok *at, int op, jnode *a, jnode *b, jnode **out) {
    jnode *n;
    NEW(n, JN_BINOP, at);
    n->op = op;
    n->a = a;
    n->b = b;
    *out = n;
    return MLXR_OK;
}

static mlxr_status parse_pow(parser *P, jnode **out) {
    TRY(parse_unary(P, true, out));
    while (is_op(cur(P), "**")) {
        const jtok *at = cur(P);
        P->i++;
        jnode *r;
        TRY(parse_unary(P, true, &r));
        TRY(binop(P, at, JOP_POW, *out, r, out));
    }
    return MLXR_OK;
}

static mlxr_status parse_math2(parser *P, jnode **out) {
    TRY(parse_pow(P, out));
    for (;;) {
        const jtok *at = cur(P);
        int op = is_op(at, "*")    ? JOP_MUL
                 : is_op(at, "/")  ? JOP_DIV
                 : is_op(at, "//") ? JOP_FLOORDIV
                 : is_op(at, "%")  ? JOP_MOD
                                   : -1;
        if (op < 0) return MLXR_OK;
        P->i++;
        jnode *r;
        TRY(parse_pow(P, &r));
        TRY(binop(P, at, op, *out, r, out));
    }
}

static mlxr_status parse_concat(parser *P, jnode **out) {
    TRY(parse_math2(P, out));
    while (is_op(cur(P), "~")) {
        const jtok *at = cur(P);
        P->i++;
        jnode *r;
        TRY(parse_math2(P, &r));
        TRY(binop(P, at, JOP_CONCAT, *out, r, out));
    }
    return MLXR_OK;
}

static mlxr_status parse_math1(parser *P, jnode **out) {
    TRY(parse_concat(P, out));
    for (;;) {
        const jtok *at = cur(P);
        int op = is_op(at, "+") ? JOP_ADD : is_op(at, "-") ? JOP_SUB : -1;
        if (op < 0) return MLXR_OK;
        P->i++;
        jnode *r;
        TRY(parse_concat(P, &r));
        TRY(binop(P, at, op, *out, r, out));
    }
}

static mlxr_status parse_compare(parser *P, jnode **out) {
    jnode *first;
    TRY(parse_math1(P, &first));
    nlist ops = {0};
    for (;;) {
        const jtok *t = cur(P);
        int op = is_op(t, "==")     ? JOP_EQ
                 : is_op(t, "!=")   ? JOP_NE
                 : is_op(t, "<")    ? JOP_LT
                 : is_op(t, "<=")   ? JOP_LE
                 : is_op(t, ">")    ? JOP_GT
                 : is_op(t, ">=")   ? JOP_GE
                 : is_name(t, "in") ? JOP_IN
                                    : -1;
        if (op >= 0)
            P->i++;
        else if (is_name(t, "not") && is_name(peek(P, 1), "in")) {
            op = JOP_NOTIN;
            P->i += 2;
        } else
            break;
        jnode *c;
        NEW(c, JN_CMPOP, t);
        c->op = op;
        TRY(parse_math1(P, &c->a));
        TRY(nl_push(P, &ops, c));
    }
    if (!ops.n) {
        *out = first;
        return MLXR_OK;
    }
    jnode *n;
    NEW(n, JN_COMPARE, P->t + P->i - 1);
    n->a = first;
    n->kids = ops.v;
    n->n_kids = ops.n;
    *out = n;
    return MLXR_OK;
}

static mlxr_status parse_not(parser *P, jnode **out) {
    if (is_name(cur(P), "not")) {
        TRY(enter(P));
        jnode *n;
        NEW(n, JN_NOT, cur(P));
        P->i++;
        TRY(parse_not(P, &n->a));
        P->depth--;
        *out = n;
        return MLXR_OK;
    }
    return parse_compare(P, out);
}

static mlxr_status parse_and(parser *P, jnode **out) {
    TRY(parse_not(P, out));
    while (is_name(cur(P), "and")) {
        jnode *n;
        NEW(n, JN_AND, cur(P));
        P->i++;
        n->a = *out;
        TRY(parse_not(P, &n->b));
        *out = n;
    }
    return MLXR_OK;
}

static mlxr_status parse_or(parser *P, jnode **out) {
    TRY(parse_and(P, out));
    while (is_name(cur(P), "or")) {
        jnode *n;
        NEW(n, JN_OR, cur(P));
        P->i++;
        n->a = *out;
        TRY(parse_and(P, &n->b));
        *out = n;
    }
    return MLXR_OK;
}

static mlxr_status parse_expr(parser *P, bool with_cond, jnode **out) {
    TRY(enter(P));
    TRY(parse_or(P, out));
    while (with_cond && is_name(cur(P), "if")) {
        jnode *n;
        NEW(n, JN_COND, cur(P));
        P->i++;
        n->b = *out;
        TRY(parse_or(P, &n->a));
        if (skip_name(P, "else")) TRY(parse_expr(P, true, &n->c));
        *out = n;
    }
    P->depth--;
    return MLXR_OK;
}

static bool tuple_end(parser *P, const char *extra_end) {
    const jtok *t = cur(P);
    return t->t == JT_VAR_END || t->t == JT_BLOCK_END || t->t == JT_EOF || is_op(t, ")") ||
           (extra_end && is_name(t, extra_end));
}

static mlxr_status parse_tuple(parser *P, bool with_cond, bool explicit_parens,
                               const char *extra_end, jnode **out) {
    const jtok *at = cur(P);
    nlist items = {0};
    bool is_tuple = false;
    for (;;) {
        if (items.n) TRY(expect_op(P, ","));
        if (tuple_end(P, extra_end)) break;
        jnode *x;
        TRY(parse_expr(P, with_cond, &x));
        TRY(nl_push(P, &items, x));
        if (is_op(cur(P), ","))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (items.n) {
            *out = items.v[0];
            return MLXR_OK;
        }
        if (!explicit_parens) {
            char b[64];
            return pfail(P, cur(P), "expected an expression, got %s",
                         tok_desc(cur(P), b, sizeof b));
        }
    }
    jnode *n;
    NEW(n, JN_TUPLE, at);
    n->kids = items.v;
    n->n_kids = items.n;
    *out = n;
    return MLXR_OK;
}

/* ---- statements --------------------------------------------------------------------------- */

static mlxr_status parse_body(parser *P, const char *const *ends, nlist *body);

static mlxr_status expect_end(parser *P) {
    return expect_type(P, JT_BLOCK_END, "end of statement block");
}

/* Parse a body up to one of `ends`; leaves the end keyword consumed, returns its index. */
static mlxr_status body_until(parser *P, const char *const *ends, jnode ***kids, size_t *n,
                              int *which) {
    nlist body = {0};
    TRY(parse_body(P, ends, &body));
    *kids = body.v;
    *n = body.n;
    for (int k = 0; ends[k]; k++)
        if (is_name(cur(P), ends[k])) {
            *which = k;
            P->i++;
            return MLXR_OK;
        }
    return jfail(P->rt, MLXR_ERR_INTERNAL, "parser lost its end tag");
}

/* Assignment target: name, ns.attr (with_ns), or names separated by commas. */
static mlxr_status parse_target(parser *P, bool with_ns, const char *extra_end, jnode **out) {
    const jtok *t = cur(P);
    if (t->t != JT_NAME) return pfail(P, t, "expected a name to assign to%s", "");
    if (with_ns && is_op(peek(P, 1), ".") && peek(P, 2)->t == JT_NAME) {
        jnode *n;
        NEW(n, JN_GETATTR, t);
        NEW(n->a, JN_NAME, t);
        if (!arena_str(P, t->s, t->n, &n->a->val)) return P->rt->err->code;
        if (!arena_str(P, peek(P, 2)->s, peek(P, 2)->n, &n->val)) return P->rt->err->code;
        P->i += 3;
        *out = n;
        return MLXR_OK;
    }
    nlist names = {0};
    bool paren = skip_op(P, "(");
    for (;;) {
        t = cur(P);
        if (t->t != JT_NAME || is_name(t, "true") || is_name(t, "false") || is_name(t, "none"))
            return pfail(P, t, "can't assign to this target%s", "");
        jnode *n;
        NEW(n, JN_NAME, t);
        if (!arena_str(P, t->s, t->n, &n->val)) return P->rt->err->code;
        P->i++;
        TRY(nl_push(P, &names, n));
        if (!skip_op(P, ",")) break;
        if ((extra_end && is_name(cur(P), extra_end)) || is_op(cur(P), ")")) break;
    }
    if (paren) TRY(expect_op(P, ")"));
    if (names.n == 1 && !paren) {
        *out = names.v[0];
        return MLXR_OK;
    }
    jnode *tup;
    NEW(tup, JN_TUPLE, names.v[0] ? cur(P) : cur(P));
    tup->kids = names.v;
    tup->n_kids = names.n;
    *out = tup;
    return MLXR_OK;
}

static mlxr_status parse_if(parser *P, jnode **out) {
    jnode *n;
    NEW(n, JN_IF, cur(P));
    P->i++;
    TRY(parse_tuple(P, false, false, NULL, &n->a));
    TRY(expect_end(P));
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    int which;
    TRY(body_until(P, ends, &n->kids, &n->n_kids, &which));
    if (which == 0) { /* elif: an if nested in the else branch */
        P->i--;
        jnode *e;
        TRY(parse_if(P, &e));
        n->kids2 = jarena_alloc(P->rt, P->a, sizeof(jnode *));
        if (!n->kids2) return P->rt->err->code;
        n->kids2[0] = e;
        n->n_kids2 = 1;
        *out = n;
        return MLXR_OK; /* the nested if consumed endif */
    }
    if (which == 1) {
        static const char *const ends2[] = {"endif", NULL};
        TRY(expect_end(P));
        TRY(body_until(P, ends2, &n->kids2, &n->n_kids2, &which));
    }
    TRY(expect_end(P));
    *out = n;
    return MLXR_OK;
}

static mlxr_status parse_for(parser *P, jnode **out) {
    jnode *n;
    NEW(n, JN_FOR, cur(P));
    P->i++;
    TRY(parse_target(P, false, "in", &n->a));
    if (!skip_name(P, "in")) return pfail(P, cur(P), "expected 'in' in for loop%s", "");
    TRY(parse_tuple(P, false, false, "recursive", &n->b));
    if (skip_name(P, "if")) TRY(parse_expr(P, true, &n->c));
    if (skip_name(P, "recursive")) n->op = 1;
    TRY(expect_end(P));
    static const char *const ends[] = {"endfor", "else", NULL};
    int which;
    P->loop_depth++;
    TRY(body_until(P, ends, &n->kids, &n->n_kids, &which));
    P->loop_depth--;
    if (which == 1) {
        static const char *const ends2[] = {"endfor", NULL};
        TRY(expect_end(P));
        TRY(body_until(P, ends2, &n->kids2, &n->n_kids2, &which));
    }
    TRY(expect_end(P));
    *out = n;
    return MLXR_OK;
}

static mlxr_status parse_set(parser *P, jnode **out) {
    const jtok *at = cur(P);
    P->i++;
    jnode *target;
    TRY(parse_target(P, true, NULL, &target));
    jnode *n;
    if (skip_op(P, "=")) {
        NEW(n, JN_SET, at);
        n->a = target;
        TRY(parse_tuple(P, true, false, NULL, &n->b));
        TRY(expect_end(P));
    } else {
        NEW(n, JN_SETBLOCK, at);
        n->a = target;
        if (is_op(cur(P), "|")) TRY(parse_filter(P, NULL, false, &n->b));
        TRY(expect_end(P));
        static const char *const ends[] = {"endset", NULL};
        int which;
        TRY(body_until(P, ends, &n->kids, &n->n_kids, &which));
        TRY(expect_end(P));
    }
    *out = n;
    return MLXR_OK;
}

/* '(' name ['=' default], ... ')' into params (JN_NAME nodes, a = default). */
static mlxr_status parse_params(parser *P, jnode ***params, size_t *n_params) {
    nlist ps = {0};
    TRY(expect_op(P, "("));
    while (!is_op(cur(P), ")")) {
        if (ps.n) TRY(expect_op(P, ","));
        const jtok *t = cur(P);
        if (t->t != JT_NAME) return pfail(P, t, "expected a parameter name%s", "");
        jnode *p;
        NEW(p, JN_NAME, t);
        if (!arena_str(P, t->s, t->n, &p->val)) return P->rt->err->code;
        P->i++;
        if (skip_op(P, "=")) TRY(parse_expr(P, true, &p->a));
        TRY(nl_push(P, &ps, p));
    }
    P->i++;
    *params = ps.v;
    *n_params = ps.n;
    return MLXR_OK;
}

static mlxr_status parse_macro(parser *P, jnode **out) {
    jnode *n;
    NEW(n, JN_MACRO, cur(P));
    P->i++;
    const jtok *t = cur(P);
    if (t->t != JT_NAME) return pfail(P, t, "expected a macro name%s", "");
    if (!arena_str(P, t->s, t->n, &n->val)) return P->rt->err->code;
    P->i++;
    TRY(parse_params(P, &n->kids2, &n->n_kids2));
    TRY(expect_end(P));
    static const char *const ends[] = {"endmacro", NULL};
    int which, saved = P->loop_depth;
    P->loop_depth = 0;
    TRY(body_until(P, ends, &n->kids, &n->n_kids, &which));
    P->loop_depth = saved;
    if (cur(P)->t == JT_NAME) P->i++; /* {% endmacro name %} */
    TRY(expect_end(P));
    *out = n;
    return MLXR_OK;
}

static mlxr_status parse_callblock(parser *P, jnode **out) {
    jnode *n;
    NEW(n, JN_CALLBLOCK, cur(P));
    P->i++;
    if (is_op(cur(P), "(")) TRY(parse_params(P, &n->kids2, &n->n_kids2));
    TRY(parse_expr(P, true, &n->a));
    if (n->a->kind != JN_CALL) return pfail(P, cur(P), "expected a call after 'call'%s", "");
    TRY(expect_end(P));
    static const char *const ends[] = {"endcall", NULL};
    int which, saved = P->loop_depth;
    P->loop_depth = 0;
    TRY(body_until(P, ends, &n->kids, &n->n_kids, &which));
    P->loop_depth = saved;
    TRY(expect_end(P));
    *out = n;
    return MLXR_OK;
}

static mlxr_status parse_statement(parser *P, jnode **out) {
    const jtok *t = cur(P);
    if (t->t != JT_NAME) return pfail(P, t, "tag name expected%s", "");
    TRY(enter(P));
    mlxr_status st = MLXR_OK;
    if (is_name(t, "if"))
        st = parse_if(P, out);
    else if (is_name(t, "for"))
        st = parse_for(P, out);
    else if (is_name(t, "set"))
        st = parse_set(P, out);
    else if (is_name(t, "macro"))
        st = parse_macro(P, out);
    else if (is_name(t, "call"))
        st = parse_callblock(P, out);
    else if (is_name(t, "filter")) {
        jnode *n;
        NEW(n, JN_FILTERBLOCK, t);
        P->i++;
        TRY(parse_filter(P, NULL, true, &n->a));
        TRY(expect_end(P));
        static const char *const ends[] = {"endfilter", NULL};
        int which;
        TRY(body_until(P, ends, &n->kids, &n->n_kids, &which));
        st = expect_end(P);
        *out = n;
    } else if (is_name(t, "generation")) {
        jnode *n;
        NEW(n, JN_BODY, t);
        P->i++;
        TRY(expect_end(P));
        static const char *const ends[] = {"endgeneration", NULL};
        int which;
        TRY(body_until(P, ends, &n->kids, &n->n_kids, &which));
        st = expect_end(P);
        *out = n;
    } else if (is_name(t, "break") || is_name(t, "continue")) {
        if (P->loop_depth == 0) {
            char w[32];
            snprintf(w, sizeof w, "'%.*s'", (int)t->n, t->s);
            return pfail(P, t, "%s outside of a loop", w);
        }
        jnode *n;
        NEW(n, is_name(t, "break") ? JN_BREAK : JN_CONTINUE, t);
        P->i++;
        st = expect_end(P);
        *out = n;
    } else {
        char w[80];
        snprintf(w, sizeof w, "'%.*s'", (int)(t->n > 60 ? 60 : t->n), t->s);
        return pfail(P, t, "Encountered unknown tag %s.", w);
    }
    P->depth--;
    return st;
}

/* Statements until EOF (ends == NULL) or a block whose first name is in ends (not consumed). */
static mlxr_status parse_body(parser *P, const char *const *ends, nlist *body) {
    for (;;) {
        const jtok *t = cur(P);
        jnode *n = NULL;
        if (t->t == JT_EOF) {
            if (!ends) return MLXR_OK;
            char msg[96];
            snprintf(msg, sizeof msg, "unexpected end of template, expected '%s'", ends[0]);
            return pfail(P, t, "%s", msg);
        } else if (t->t == JT_TEXT) {
            NEW(n, JN_TEXT, t);
            if (!arena_str(P, t->s, t->n, &n->val)) return P->rt->err->code;
            P->i++;
        } else if (t->t == JT_VAR_BEGIN) {
            NEW(n, JN_OUTPUT, t);
            P->i++;
            TRY(parse_tuple(P, true, false, NULL, &n->a));
            TRY(expect_type(P, JT_VAR_END, "end of print statement"));
        } else if (t->t == JT_BLOCK_BEGIN) {
            const jtok *kw = peek(P, 1);
            if (ends)
                for (int k = 0; ends[k]; k++)
                    if (is_name(kw, ends[k])) {
                        P->i++;
                        return MLXR_OK;
                    }
            P->i++;
            TRY(parse_statement(P, &n));
        } else {
            char b[64];
            return pfail(P, t, "unexpected %s", tok_desc(t, b, sizeof b));
        }
        TRY(nl_push(P, body, n));
    }
}

mlxr_status mlxr_jinja_parse(jrt *rt, jarena *a, const jtok *toks, size_t n_toks, jnode **root) {
    parser P = {rt, a, toks, n_toks, 0, 0, 0};
    nlist body = {0};
    TRY(parse_body(&P, NULL, &body));
    jnode *r = node(&P, JN_BODY, toks);
    if (!r) return rt->err->code;
    r->kids = body.v;
    r->n_kids = body.n;
    *root = r;
    return MLXR_OK;
}
