/*
 * template.h - internal API of the Jinja2 interpreter that renders chat templates.
 *
 * The interpreter covers the subset of Jinja2 that chat templates in the wild use, with the
 * semantics of Python jinja2 as Hugging Face transformers configures it:
 * ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, loopcontrols), a tojson
 * filter equal to json.dumps(ensure_ascii=False, ...), and the globals raise_exception and
 * strftime_now. Values follow Python: str() printing, truthiness, int vs float, code-point strings.
 *
 * Pipeline: jinja_lex.c turns the source into tokens (whitespace control applied there, as
 * jinja2's lexer does), jinja_parse.c builds an AST in an arena, jinja_eval.c walks it.
 *
 * Every render is bounded (jlimits): output bytes, evaluation steps, call/eval depth, bytes of
 * live values. Crossing a bound fails with MLXR_ERR_RANGE and a message naming the limit.
 * Nothing here aborts on input; all failures are statuses with a message in the jrt.
 */
#ifndef MLXR_TEMPLATE_TEMPLATE_H
#define MLXR_TEMPLATE_TEMPLATE_H

#include "mlxr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- values ------------------------------------------------------------------------------ */

typedef enum jv_type {
    JV_UNDEF, /* jinja2 Undefined: prints "", falsy; u.s is a message for errors, or NULL */
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* list or tuple (jlist.tuple) */
    JV_DICT, /* ordered dict; also namespace() objects and the loop variable (jdict.kind) */
    JV_FUNC, /* macro, builtin global, or bound method */
} jv_type;

typedef struct jstr jstr;
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;

typedef struct jv {
    jv_type t;
    union {
        bool b;
        int64_t i;
        double f;
        jstr *s;
        jlist *l;
        jdict *d;
        jfunc *fn;
    } u;
} jv;

/* Heap objects start with a reference count; -1 marks an immortal object (literals in the AST
 * arena, static strings), which retain/release leave alone. */
struct jstr {
    int32_t rc;
    bool safe; /* produced by |safe (Markup); only affects nothing but is kept for fidelity */
    size_t len;
    char s[]; /* UTF-8 bytes, NUL-terminated beyond len */
};

struct jlist {
    int32_t rc;
    bool tuple;
    /* NULL for a list or tuple. Otherwise the Python type the items stand for: jinja2 filters
     * return lazy iterators ("generator", "list_reverseiterator"), dict methods return views
     * ("dict_items", ...), range() a "range". The items are materialized, but the type decides
     * what Python would do: no len() for iterators, json.dumps fails, an iterator is truthy. */
    const char *iter_type;
    bool lazy; /* an iterator (generator, reverse iterator): no len(), always truthy */
    size_t n, cap;
    jv *v;
};

typedef enum jdict_kind { JDICT_PLAIN, JDICT_NAMESPACE, JDICT_LOOP } jdict_kind;

struct jdict {
    int32_t rc;
    jdict_kind kind;
    size_t n, cap;
    jv *k, *v;         /* insertion order */
    jlist *loop_items; /* JDICT_LOOP: the items looped over (retained); attributes such as
                          loop.index are computed from it and loop_i on lookup */
    size_t loop_i;
};

/* loop.<name> of a JDICT_LOOP dict; false when there is no such attribute (or it is undefined,
 * as previtem on the first iteration). */
bool jloop_attr(const jdict *d, const char *name, jv *out);

typedef struct jnode jnode;
typedef struct jframe jframe;

typedef enum jfunc_kind { JFN_MACRO, JFN_BUILTIN, JFN_METHOD, JFN_CALLER } jfunc_kind;

struct jfunc {
    int32_t rc;
    jfunc_kind kind;
    const jnode *macro; /* JFN_MACRO / JFN_CALLER: the definition */
    jframe *closure;    /* JFN_CALLER: the frame the call block was written in (borrowed) */
    int id;             /* builtin or method id */
    jv self;            /* JFN_METHOD: the object the method is bound to */
    const char *name;
};

/* ---- limits and the render state --------------------------------------------------------- */

typedef struct jlimits {
    size_t max_output;  /* bytes of rendered text */
    uint64_t max_steps; /* statements + expressions evaluated */
    int max_depth;      /* nested evaluation (AST depth x macro calls) */
    int max_call_depth; /* nested macro calls */
    size_t max_mem;     /* bytes of live values and AST */
    size_t max_source;  /* template source bytes */
} jlimits;

void mlxr_jinja_default_limits(jlimits *l);

/* Growable byte buffer that counts against the output limit when used for output. */
typedef struct jbuf {
    char *p;
    size_t n, cap;
} jbuf;

typedef struct jrt {
    jlimits lim;
    mlxr_err *err;
    size_t mem; /* bytes currently allocated through jmem_* */
    uint64_t steps;
    int depth, call_depth;
    jbuf *out;       /* where output goes now (block set / macro bodies redirect it) */
    jframe *globals; /* render variables and top-level assignments */
    int64_t now;     /* strftime_now time (Unix seconds) */
    bool now_utc;    /* MLXR_TEMPLATE_NOW given: format in UTC */
    int loop_ctl;    /* 0, or 1 = break, 2 = continue pending */
    const char *src; /* the template, for messages */
    jframe *dead;    /* frames captured by a caller that already exited (freed at the end) */
} jrt;

/* ---- memory ------------------------------------------------------------------------------- */

void *jmem_alloc(jrt *rt, size_t n); /* NULL + error set when over limit / OOM */
void *jmem_realloc(jrt *rt, void *p, size_t old, size_t n);
void jmem_free(jrt *rt, void *p, size_t n);

mlxr_status jbuf_put(jrt *rt, jbuf *b, const char *s, size_t n); /* append, growing */
mlxr_status jbuf_putc(jrt *rt, jbuf *b, char c);
void jbuf_free(jrt *rt, jbuf *b);

/* ---- value helpers (jinja_value.c) ------------------------------------------------------- */

static inline jv jv_undef(void) {
    jv v = {JV_UNDEF, {0}};
    return v;
}
static inline jv jv_none(void) {
    jv v = {JV_NONE, {0}};
    return v;
}
static inline jv jv_bool(bool b) {
    jv v = {JV_BOOL, {0}};
    v.u.b = b;
    return v;
}
static inline jv jv_int(int64_t i) {
    jv v = {JV_INT, {0}};
    v.u.i = i;
    return v;
}
static inline jv jv_float(double f) {
    jv v = {JV_FLOAT, {0}};
    v.u.f = f;
    return v;
}

jv jv_retain(jv v);
void jv_release(jrt *rt, jv v);

/* New string (copy of n bytes). On failure returns JV_UNDEF with rt->err set: check with
 * jv_failed(rt). */
mlxr_status jv_str(jrt *rt, const char *s, size_t n, jv *out);
mlxr_status jv_strz(jrt *rt, const char *s, jv *out);
/* Undefined with an error message used if it is later misused ("'x' is undefined"). */
mlxr_status jv_undef_msg(jrt *rt, jv *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
mlxr_status jv_list(jrt *rt, size_t cap, jv *out);
mlxr_status jv_dict(jrt *rt, jdict_kind kind, jv *out);
mlxr_status jv_func(jrt *rt, jfunc_kind kind, int id, const char *name, jv *out);

/* Mark a list as standing for another Python iterable type (see jlist.iter_type). */
static inline void jlist_mark(jv v, const char *type, bool lazy) {
    if (v.t == JV_LIST) {
        v.u.l->iter_type = type;
        v.u.l->lazy = lazy;
    }
}

/* Takes ownership of `item` (released on failure too). */
mlxr_status jlist_push(jrt *rt, jlist *l, jv item);
/* Takes ownership of key and val. Replaces an existing key's value. */
mlxr_status jdict_set(jrt *rt, jdict *d, jv key, jv val);
mlxr_status jdict_setz(jrt *rt, jdict *d, const char *key, jv val);
/* Borrowed value for `key`, or NULL. */
jv *jdict_get(const jdict *d, jv key);
jv *jdict_getz(const jdict *d, const char *key);

bool jv_truthy(jv v);
/* An int (or bool) argument as int64; Python's TypeError message otherwise (`what` names it). */
mlxr_status jv_int_arg(jrt *rt, jv v, const char *what, int64_t *out);
bool jv_is_num(jv v); /* bool, int or float (Python's numbers.Number) */
double jv_num(jv v);
bool jv_eq(jv a, jv b);
/* Python ordering; MLXR_ERR_INVALID if the types do not compare. *cmp <0, 0, >0. */
mlxr_status jv_cmp(jrt *rt, jv a, jv b, int *cmp);
const char *jv_type_name(jv v); /* Python type name: 'str', 'int', 'dict object' ... */

/* Python str(v) / repr(v) appended to b. */
mlxr_status jv_to_str(jrt *rt, jbuf *b, jv v);
mlxr_status jv_repr(jrt *rt, jbuf *b, jv v);
/* Python str(v) as a new string value. */
mlxr_status jv_stringify(jrt *rt, jv v, jv *out);
/* Python repr of a float (shortest round-trip digits) into buf (>= 32 bytes). */
void jv_float_repr(double f, char *buf, size_t cap);

/* ---- UTF-8 / Python string semantics (jinja_str.c) --------------------------------------- */

size_t jstr_n_cp(const char *s, size_t n);                 /* code points */
size_t jstr_cp_offset(const char *s, size_t n, size_t cp); /* byte offset of code point cp */
bool jstr_is_space_at(const char *s, size_t n, size_t i, size_t *w); /* Python isspace */
bool jstr_is_space_before(const char *s, size_t i, size_t *w);
/* Case maps (full Unicode for common scripts) appended to b. */
mlxr_status jstr_upper(jrt *rt, jbuf *b, const char *s, size_t n);
mlxr_status jstr_lower(jrt *rt, jbuf *b, const char *s, size_t n);
mlxr_status jstr_title(jrt *rt, jbuf *b, const char *s, size_t n); /* jinja's |title */
mlxr_status jstr_capitalize(jrt *rt, jbuf *b, const char *s, size_t n);
mlxr_status jstr_pytitle(jrt *rt, jbuf *b, const char *s, size_t n); /* str.title() */
/* Python str.strip family: which = 1 left, 2 right, 3 both; chars NULL = whitespace. */
void jstr_strip(const char *s, size_t n, const char *chars, size_t nchars, int which, size_t *start,
                size_t *end);
/* Python `fmt % args` (printf-style; jinja_format.c). */
mlxr_status jstr_percent_format(jrt *rt, const jstr *fmt, const jv *args, size_t n_args, jv *out);
/* HTML-escape (& < > " ') as markupsafe does, appended to b. */
mlxr_status jstr_html_escape(jrt *rt, jbuf *b, const char *s, size_t n);
uint32_t jutf8_decode(const char *s, size_t n, size_t *w);
size_t jutf8_encode(uint32_t cp, char *out);

/* ---- JSON (jinja_json.c) ----------------------------------------------------------------- */

/* Parse JSON text into a value (objects keep key order). */
mlxr_status jjson_parse(jrt *rt, const char *s, size_t n, jv *out);
/* json.dumps(v, ensure_ascii, indent, separators, sort_keys). indent < 0: None;
 * item_sep/key_sep NULL: Python's defaults for the indent. */
mlxr_status jjson_dump(jrt *rt, jbuf *b, jv v, int indent, const char *indent_str,
                       const char *item_sep, const char *key_sep, bool sort_keys,
                       bool ensure_ascii);

/* ---- lexer + parser ---------------------------------------------------------------------- */

typedef enum jtok_type {
    JT_EOF,
    JT_TEXT,
    JT_VAR_BEGIN,
    JT_VAR_END,
    JT_BLOCK_BEGIN,
    JT_BLOCK_END,
    JT_NAME,
    JT_STRING,
    JT_INT,
    JT_FLOAT,
    JT_OP,
} jtok_type;

typedef struct jtok {
    jtok_type t;
    uint32_t line, col;
    const char *s; /* TEXT/NAME/STRING: bytes (arena), OP: the operator text */
    size_t n;
    int64_t i;
    double f;
} jtok;

/* Arena: chunks freed together. Counts against rt->mem. */
typedef struct jarena {
    struct jchunk *head;
    size_t used_total;
} jarena;

void *jarena_alloc(jrt *rt, jarena *a, size_t n);
void jarena_free(jrt *rt, jarena *a);

/* Tokenize the whole template. *toks lives in the arena. Errors name line and column. */
mlxr_status mlxr_jinja_lex(jrt *rt, jarena *a, const char *src, size_t n, jtok **toks,
                           size_t *n_toks);

typedef enum jnode_kind {
    /* expressions */
    JN_LIT,
    JN_NAME,
    JN_LIST,
    JN_TUPLE,
    JN_DICT,
    JN_GETATTR,
    JN_GETITEM,
    JN_SLICE,
    JN_CALL,
    JN_KWARG,
    JN_FILTER,
    JN_TEST,
    JN_NEG,
    JN_POS,
    JN_NOT,
    JN_BINOP,
    JN_AND,
    JN_OR,
    JN_COMPARE,
    JN_CMPOP,
    JN_COND,
    /* statements */
    JN_TEXT,
    JN_OUTPUT,
    JN_IF,
    JN_FOR,
    JN_SET,
    JN_SETBLOCK,
    JN_MACRO,
    JN_CALLBLOCK,
    JN_FILTERBLOCK,
    JN_BREAK,
    JN_CONTINUE,
    JN_BODY,
} jnode_kind;

typedef enum jop {
    JOP_ADD,
    JOP_SUB,
    JOP_MUL,
    JOP_DIV,
    JOP_FLOORDIV,
    JOP_MOD,
    JOP_POW,
    JOP_CONCAT,
    JOP_EQ,
    JOP_NE,
    JOP_LT,
    JOP_LE,
    JOP_GT,
    JOP_GE,
    JOP_IN,
    JOP_NOTIN,
} jop;

struct jnode {
    jnode_kind kind;
    int op; /* jop, or a flag (negated test, recursive for) */
    uint32_t line, col;
    jv val;               /* literal value, or name / attribute / filter / test name */
    jnode *a, *b, *c, *d; /* children, by kind (see jinja_parse.c) */
    jnode **kids;         /* list items, args, body statements ... */
    size_t n_kids;
    jnode **kids2; /* else body, macro defaults ... */
    size_t n_kids2;
};

/* Parse tokens into a JN_BODY root. */
mlxr_status mlxr_jinja_parse(jrt *rt, jarena *a, const jtok *toks, size_t n_toks, jnode **root);

/* ---- evaluation (jinja_eval.c) ------------------------------------------------------------ */

/* Render `root` with `vars` (a dict; borrowed) into rt->out. */
mlxr_status mlxr_jinja_exec(jrt *rt, const jnode *root, jv vars);

/* Evaluate an expression node (new reference in *out). */
mlxr_status jeval(jrt *rt, jframe *f, const jnode *n, jv *out);

/* A variable scope: a dict of names and a parent scope (jinja_call.c). */
struct jframe {
    jframe *parent;
    jdict *vars;
    bool captured;     /* referenced by a caller closure: kept until the end of the render */
    jframe *next_dead; /* in rt->dead */
};

mlxr_status jframe_new(jrt *rt, jframe *parent, jframe **out);
void jframe_exit(jrt *rt, jframe *f);
/* A fresh scope for the next loop iteration: f is cleared, or replaced if a caller captured it. */
mlxr_status jframe_renew(jrt *rt, jframe **f);
/* The variable `name` in f or its parents (borrowed), or NULL. */
jv *jframe_lookup(jframe *f, const jstr *name);
/* Bind name (retained) to val (taken) in f. */
mlxr_status jframe_set(jrt *rt, jframe *f, jv name, jv val);
/* Look up a global function ("range", ...) by name; -1 if none. */
int jbuiltin_id(const char *name);
const char *jbuiltin_name(int id);
/* Execute statements (jinja_exec.c). */
mlxr_status jexec_body(jrt *rt, jframe *f, jnode *const *kids, size_t n);

/* Call a callable with positional args and keyword args (all borrowed). */
typedef struct jargs {
    jv *pos;
    size_t n_pos;
    jv *kw_val;
    const char **kw_name;
    size_t n_kw;
} jargs;

mlxr_status jcall(jrt *rt, jframe *f, jv fn, const jargs *args, jv *out);

/* Evaluate the call arguments of node n (positional + JN_KWARG kids) into a, using store/names
 * (JMAX_ARGS + 1 entries each: one spare for an added keyword). Release with jargs_free. */
#define JMAX_ARGS 32
mlxr_status jargs_eval(jrt *rt, jframe *f, const jnode *n, jargs *a, jv *store, const char **names);
void jargs_free(jrt *rt, jargs *a);
/* Apply a chain of JN_FILTER nodes whose innermost input is NULL to `in` (filter blocks). */
mlxr_status jfilter_chain(jrt *rt, jframe *f, const jnode *n, jv in, jv *out);

/* Filters and tests (jinja_filters.c). `f` is the calling frame (map/select call filters). */
mlxr_status jfilter_apply(jrt *rt, jframe *f, const char *name, jv in, const jargs *args, jv *out);
mlxr_status jtest_apply(jrt *rt, jframe *f, const char *name, jv in, const jargs *args, bool *out);
/* Is `name` one of jinja2's builtin filters / tests (or transformers' tojson)? Unknown names fail
 * when reached with jinja2's message ("No filter named 'x'."), known ones that mlxr lacks with
 * MLXR_ERR_UNSUPPORTED. */
bool jfilter_is_jinja(const char *name);
bool jtest_is_jinja(const char *name);
/* Methods of str/dict/list values (and loop.cycle): jv_func JFN_METHOD with self. Returns the
 * method id, -1 when there is no such method, or an id >= JMETHOD_UNSAFE for a mutating
 * method that the immutable sandbox refuses. */
#define JMETHOD_UNSAFE 1000
int jmethod_lookup(jv self, const char *name);
mlxr_status jmethod_call(jrt *rt, const jfunc *fn, const jargs *args, jv *out);

/* Items of an iterable as a list (new reference): list/tuple as is, dict keys, string code
 * points, undefined as empty. Other types fail with Python's message. */
mlxr_status jiter_list(jrt *rt, jv v, jv *out);
/* An arithmetic operator (JOP_ADD .. JOP_POW) with Python semantics. */
mlxr_status jarith(jrt *rt, int op, jv a, jv b, jv *out);
/* A comparison operator (JOP_EQ .. JOP_NOTIN) with Python semantics. */
mlxr_status jtest_compare(jrt *rt, int op, jv a, jv b, bool *out);

/* Fail with a message; returns code. Used by all of src/template. */
mlxr_status jfail(jrt *rt, mlxr_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One evaluation step against the step limit. */
static inline mlxr_status jstep(jrt *rt) {
    if (++rt->steps > rt->lim.max_steps)
        return jfail(rt, MLXR_ERR_RANGE, "template evaluation exceeded %llu steps",
                     (unsigned long long)rt->lim.max_steps);
    return MLXR_OK;
}

/* Render a whole template: parse + exec, output as malloc'ed bytes (NUL-terminated). */
mlxr_status mlxr_jinja_render(const char *tmpl, size_t tmpl_len, const char *vars_json,
                              size_t vars_len, const jlimits *lim, char **out, size_t *out_len,
                              mlxr_err *err);

/* ---- model-level glue (src/model/model_template.c) ---------------------------------------- */

#include "format/gguf.h"

/* The GGUF's tokenizer.chat_template as a malloc'ed string; MLXR_ERR_NOT_FOUND if absent. */
mlxr_status mlxr_template_from_gguf(const mlxr_gguf *g, char **tmpl, mlxr_err *err);
/* The text of the token whose id is stored under id_key (e.g. "tokenizer.ggml.bos_token_id"),
 * malloc'ed; *out = NULL when the GGUF has no such token. */
mlxr_status mlxr_template_token_text(const mlxr_gguf *g, const char *id_key, char **out,
                                     mlxr_err *err);
/* Render tmpl (NULL: the ChatML default) for a messages array or variables object, adding
 * bos_token/eos_token (unless set) and add_generation_prompt. */
mlxr_status mlxr_template_apply(const char *tmpl, const char *bos, const char *eos,
                                const char *messages_json, size_t len, bool add_generation_prompt,
                                char **out, size_t *out_len, mlxr_err *err);

#endif
