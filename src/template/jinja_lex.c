/*
 * jinja_lex.c - the template lexer, with jinja2's whitespace control built in.
 *
 * Layout of a template: text, then tags: {{ expr }}, {% statement %}, {# comment #}, and
 * {% raw %}...{% endraw %}. A tag opener may carry '-' (strip all whitespace before it) or '+'
 * (keep it); a closer may carry '-' (strip all whitespace after it) or '+' (no trim_blocks).
 *
 * As jinja2's lexer with trim_blocks and lstrip_blocks (lexer.py, Lexer.tokeniter):
 *  - newlines (\r\n, \r, \n) become \n and one trailing newline of the source is dropped;
 *  - '%}' and '#}' swallow one following '\n' (trim_blocks); '-%}', '-#}', '-}}' swallow all
 *    whitespace that follows;
 *  - before '{%' and '{#' (not '{{') without a sign, spaces and tabs between the start of the line
 *    and the tag are removed (lstrip_blocks) when the tag is the first thing on its line; "start
 *    of line" for the text right after a tag means that tag's match ended with '\n';
 *  - inside a tag, the closer only counts while no (, [ or { is open.
 * Checks: unterminated tags, comments, raw blocks and strings; unbalanced brackets; bad numbers;
 * characters that start no token. Errors give line and column (1-based).
 */
#include "template/template.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct jchunk {
    struct jchunk *next;
    size_t size, used;
    char data[];
};

void *jarena_alloc(jrt *rt, jarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    struct jchunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > 65536 ? n : 65536;
        c = jmem_alloc(rt, sizeof *c + size);
        if (!c) return NULL;
        c->next = a->head;
        c->size = size;
        c->used = 0;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->used_total += n;
    return p;
}

void jarena_free(jrt *rt, jarena *a) {
    struct jchunk *c = a->head;
    while (c) {
        struct jchunk *next = c->next;
        jmem_free(rt, c, sizeof *c + c->size);
        c = next;
    }
    a->head = NULL;
    a->used_total = 0;
}

typedef struct lexer {
    jrt *rt;
    jarena *a;
    const char *s; /* normalized source */
    size_t n;
    jtok *toks;
    size_t n_toks, cap;
    size_t lc_pos; /* line/column cursor */
    uint32_t lc_line, lc_col;
} lexer;

static void linecol(lexer *L, size_t pos, uint32_t *line, uint32_t *col) {
    if (pos < L->lc_pos) {
        L->lc_pos = 0;
        L->lc_line = 1;
        L->lc_col = 1;
    }
    for (; L->lc_pos < pos && L->lc_pos < L->n; L->lc_pos++) {
        if (L->s[L->lc_pos] == '\n') {
            L->lc_line++;
            L->lc_col = 1;
        } else if (((unsigned char)L->s[L->lc_pos] & 0xc0) != 0x80) {
            L->lc_col++;
        }
    }
    *line = L->lc_line;
    *col = L->lc_col;
}

static mlxr_status lex_fail(lexer *L, size_t pos, const char *what) {
    uint32_t line, col;
    linecol(L, pos, &line, &col);
    return jfail(L->rt, MLXR_ERR_FORMAT, "template syntax error at line %u, column %u: %s", line,
                 col, what);
}

static mlxr_status emit(lexer *L, jtok_type t, size_t pos, const char *s, size_t n, jtok **out) {
    if (L->n_toks == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        jtok *nt = jarena_alloc(L->rt, L->a, cap * sizeof *nt);
        if (!nt) return L->rt->err->code;
        if (L->n_toks) memcpy(nt, L->toks, L->n_toks * sizeof *nt);
        L->toks = nt;
        L->cap = cap;
    }
    jtok *t0 = &L->toks[L->n_toks++];
    memset(t0, 0, sizeof *t0);
    t0->t = t;
    linecol(L, pos, &t0->line, &t0->col);
    t0->s = s;
    t0->n = n;
    if (out) *out = t0;
    return MLXR_OK;
}

/* Python's re \s on str: Unicode whitespace. Returns width or 0. */
static size_t ws_at(lexer *L, size_t i) {
    size_t w;
    return i < L->n && jstr_is_space_at(L->s, L->n, i, &w) ? w : 0;
}

static size_t skip_ws(lexer *L, size_t i) {
    size_t w;
    while ((w = ws_at(L, i)))
        i += w;
    return i;
}

/* Emit text [a, b) after whitespace control for a following tag with strip sign `sign`;
 * `lstrip` says whether lstrip_blocks applies to this tag kind. */
static mlxr_status emit_text(lexer *L, size_t a, size_t b, char sign, bool lstrip,
                             bool line_starting) {
    if (sign == '-') {
        size_t w;
        while (b > a && jstr_is_space_before(L->s, b, &w))
            b -= w;
    } else if (sign != '+' && lstrip) {
        size_t l_pos = b;
        while (l_pos > a && L->s[l_pos - 1] != '\n')
            l_pos--;
        if (l_pos > a || line_starting) {
            bool all_ws = l_pos < b;
            for (size_t i = l_pos; i < b && all_ws;) {
                size_t w = ws_at(L, i);
                if (!w) all_ws = false;
                i += w;
            }
            if (all_ws) b = l_pos;
        }
    }
    if (b > a) return emit(L, JT_TEXT, a, L->s + a, b - a, NULL);
    return MLXR_OK;
}

/* After a closer at `i` ('%}' or '#}' just consumed, sign '-', '+' or 0): the end of the
 * match, applying the closer's whitespace rule. */
static size_t after_close(lexer *L, size_t i, char sign, bool trim_newline) {
    if (sign == '-') return skip_ws(L, i);
    if (sign != '+' && trim_newline && i < L->n && L->s[i] == '\n') return i + 1;
    return i;
}

static bool starts(lexer *L, size_t i, const char *lit) {
    size_t k = strlen(lit);
    return i + k <= L->n && !memcmp(L->s + i, lit, k);
}

static bool is_name_start(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_name_char(unsigned char c) {
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* `{%[-+]?\s*KEYWORD\s*` at i: returns the index after it, or 0. */
static size_t match_kw_tag(lexer *L, size_t i, const char *kw, char *sign) {
    if (!starts(L, i, "{%")) return 0;
    i += 2;
    *sign = 0;
    if (i < L->n && (L->s[i] == '-' || L->s[i] == '+')) *sign = L->s[i++];
    i = skip_ws(L, i);
    size_t k = strlen(kw);
    if (!starts(L, i, kw) || (i + k < L->n && is_name_char((unsigned char)L->s[i + k]))) return 0;
    return skip_ws(L, i + k);
}

/* Decode a string literal body [a, b) with Python unicode-escape rules into the arena. */
static mlxr_status decode_string(lexer *L, size_t a, size_t b, jtok *t) {
    char *o = jarena_alloc(L->rt, L->a, b - a + 1);
    if (!o) return L->rt->err->code;
    size_t k = 0;
    for (size_t i = a; i < b;) {
        char c = L->s[i];
        if (c != '\\' || i + 1 >= b) {
            o[k++] = c;
            i++;
            continue;
        }
        char e = L->s[i + 1];
        const char *simple = strchr("\\'\"abfnrtv\n", e);
        if (e && simple) {
            static const char map[] = "\\'\"\a\b\f\n\r\t\v";
            if (e != '\n') o[k++] = map[simple - "\\'\"abfnrtv\n"];
            i += 2;
            continue;
        }
        uint32_t cp = 0;
        int nd = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (nd) {
            if (i + 2 + (size_t)nd > b) return lex_fail(L, i, "truncated \\x/\\u escape in string");
            for (int j = 0; j < nd; j++) {
                char h = L->s[i + 2 + (size_t)j];
                int v = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (v < 0) return lex_fail(L, i, "bad hex digit in string escape");
                cp = cp * 16 + (uint32_t)v;
            }
            if (cp > 0x10ffff) return lex_fail(L, i, "escape out of Unicode range");
            k += jutf8_encode(cp, o + k);
            i += 2 + (size_t)nd;
            continue;
        }
        if (e >= '0' && e <= '7') {
            size_t j = i + 1;
            while (j < b && j < i + 4 && L->s[j] >= '0' && L->s[j] <= '7')
                cp = cp * 8 + (uint32_t)(L->s[j++] - '0');
            k += jutf8_encode(cp, o + k);
            i = j;
            continue;
        }
        o[k++] = c; /* unknown escape: Python keeps the backslash */
        i++;
    }
    o[k] = '\0';
    t->s = o;
    t->n = k;
    return MLXR_OK;
}

static mlxr_status lex_number(lexer *L, size_t i, size_t *end) {
    /* float: digits ( (.digits)? e[+-]?digits | .digits ); else integer (0b/0o/0x/decimal) */
    const char *s = L->s;
    size_t j = i;
    while (j < L->n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
        j++;
    size_t k = j;
    bool is_float = false;
    if (k + 1 < L->n && s[k] == '.' && s[k + 1] >= '0' && s[k + 1] <= '9') {
        k++;
        while (k < L->n && ((s[k] >= '0' && s[k] <= '9') || s[k] == '_'))
            k++;
        is_float = true;
    }
    if (k < L->n && (s[k] == 'e' || s[k] == 'E')) {
        size_t m = k + 1;
        if (m < L->n && (s[m] == '+' || s[m] == '-')) m++;
        if (m < L->n && s[m] >= '0' && s[m] <= '9') {
            while (m < L->n && ((s[m] >= '0' && s[m] <= '9') || s[m] == '_'))
                m++;
            k = m;
            is_float = true;
        }
    }
    char buf[128];
    size_t nb = 0;
    int base = 10;
    size_t from = i, to = is_float ? k : j;
    if (!is_float && s[i] == '0' && i + 1 < L->n && strchr("bBoOxX", s[i + 1]) && s[i + 1]) {
        char p = (char)(s[i + 1] | 0x20);
        base = p == 'b' ? 2 : p == 'o' ? 8 : 16;
        from = i + 2;
        to = from;
        while (to < L->n && (is_name_char((unsigned char)s[to])))
            to++;
    }
    for (size_t m = from; m < to; m++) {
        if (s[m] == '_') continue;
        if (nb + 1 >= sizeof buf) return lex_fail(L, i, "number literal too long");
        buf[nb++] = s[m];
    }
    buf[nb] = '\0';
    jtok *t;
    mlxr_status st = emit(L, is_float ? JT_FLOAT : JT_INT, i, s + i, to - i, &t);
    if (st) return st;
    char *e;
    errno = 0;
    if (is_float) {
        t->f = strtod(buf, &e);
    } else {
        long long v = strtoll(buf, &e, base);
        if (errno == ERANGE) return lex_fail(L, i, "integer literal too large");
        t->i = v;
    }
    if (*e || nb == 0) return lex_fail(L, i, "malformed number");
    *end = to;
    return MLXR_OK;
}

static const char *const OPS[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                  "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                  "=",  ".",  ":",  "|",  ",",  ";",  "<", ">"};

/* Lex the inside of a {{ }} or {% %} tag starting at i; *end = index after the closer. */
static mlxr_status lex_tag(lexer *L, size_t i, bool block, size_t *end, bool *line_starting) {
    char stack[256];
    int depth = 0;
    for (;;) {
        i = skip_ws(L, i);
        if (i >= L->n)
            return lex_fail(
                L, i, block ? "missing end of block tag '%}'" : "missing end of variable tag '}}'");
        if (depth == 0) {
            const char *closer = block ? "%}" : "}}";
            char sign = 0;
            size_t c = i;
            if ((L->s[c] == '-' || L->s[c] == '+') && starts(L, c + 1, closer)) sign = L->s[c++];
            if (starts(L, c, closer) && !(sign == '+' && !block)) {
                emit(L, block ? JT_BLOCK_END : JT_VAR_END, i, NULL, 0, NULL);
                size_t e = after_close(L, c + 2, sign, block);
                *line_starting = e > 0 && L->s[e - 1] == '\n';
                *end = e;
                return L->rt->err && L->rt->err->code ? L->rt->err->code : MLXR_OK;
            }
        }
        unsigned char ch = (unsigned char)L->s[i];
        mlxr_status st;
        if (ch >= '0' && ch <= '9') {
            st = lex_number(L, i, &i);
            if (st) return st;
        } else if (is_name_start(ch)) {
            size_t j = i;
            while (j < L->n && is_name_char((unsigned char)L->s[j]))
                j++;
            st = emit(L, JT_NAME, i, L->s + i, j - i, NULL);
            if (st) return st;
            i = j;
        } else if (ch == '\'' || ch == '"') {
            size_t j = i + 1;
            while (j < L->n && L->s[j] != (char)ch)
                j += L->s[j] == '\\' ? 2 : 1;
            if (j >= L->n) return lex_fail(L, i, "unterminated string literal");
            jtok *t;
            st = emit(L, JT_STRING, i, NULL, 0, &t);
            if (!st) st = decode_string(L, i + 1, j, t);
            if (st) return st;
            i = j + 1;
        } else {
            size_t k = 0;
            for (; k < sizeof OPS / sizeof *OPS; k++)
                if (starts(L, i, OPS[k])) break;
            if (k == sizeof OPS / sizeof *OPS) return lex_fail(L, i, "unexpected character");
            const char *op = OPS[k];
            if (op[0] == '(' || op[0] == '[' || op[0] == '{') {
                if (depth == (int)sizeof stack) return lex_fail(L, i, "brackets nested too deeply");
                stack[depth++] = op[0] == '(' ? ')' : op[0] == '[' ? ']' : '}';
            } else if (op[0] == ')' || op[0] == ']' || op[0] == '}') {
                if (depth == 0) return lex_fail(L, i, "unexpected closing bracket");
                if (stack[--depth] != op[0]) return lex_fail(L, i, "mismatched closing bracket");
            }
            st = emit(L, JT_OP, i, op, strlen(op), NULL);
            if (st) return st;
            i += strlen(op);
        }
    }
}

/* Normalize newlines and drop one trailing newline (keep_trailing_newline=False). */
static char *normalize(jrt *rt, jarena *a, const char *src, size_t n, size_t *out_n) {
    char *o = jarena_alloc(rt, a, n + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            o[k++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n') i++;
        } else {
            o[k++] = src[i];
        }
    }
    if (k && o[k - 1] == '\n') k--;
    o[k] = '\0';
    *out_n = k;
    return o;
}

mlxr_status mlxr_jinja_lex(jrt *rt, jarena *a, const char *src, size_t n, jtok **toks,
                           size_t *n_toks) {
    if (n > rt->lim.max_source)
        return jfail(rt, MLXR_ERR_RANGE, "template of %zu bytes exceeds the limit of %zu", n,
                     rt->lim.max_source);
    lexer L = {rt, a, NULL, 0, NULL, 0, 0, 0, 1, 1};
    L.s = normalize(rt, a, src, n, &L.n);
    if (!L.s) return rt->err->code;
    size_t pos = 0;
    bool line_starting = true;
    mlxr_status st = MLXR_OK;
    while (pos < L.n && !st) {
        const char *p = L.s + pos;
        size_t t = pos;
        for (;;) { /* find the next "{{", "{%" or "{#" */
            const char *q = memchr(L.s + t, '{', L.n - t);
            if (!q) {
                t = L.n;
                break;
            }
            t = (size_t)(q - L.s);
            if (t + 1 < L.n && (q[1] == '{' || q[1] == '%' || q[1] == '#')) break;
            t++;
        }
        (void)p;
        if (t >= L.n) {
            st = emit(&L, JT_TEXT, pos, L.s + pos, L.n - pos, NULL);
            break;
        }
        char kind = L.s[t + 1];
        char sign = t + 2 < L.n && (L.s[t + 2] == '-' || L.s[t + 2] == '+') ? L.s[t + 2] : 0;
        char rsign;
        size_t raw_in = kind == '%' ? match_kw_tag(&L, t, "raw", &rsign) : 0;
        size_t raw_body = 0;
        if (raw_in) { /* raw begin must close right here: (-%}\s*|%}) */
            if (starts(&L, raw_in, "-%}"))
                raw_body = skip_ws(&L, raw_in + 3);
            else if (starts(&L, raw_in, "%}"))
                raw_body = raw_in + 2;
        }
        st = emit_text(&L, pos, t, sign, kind != '{', line_starting);
        if (st) break;
        if (raw_body) {
            /* find {%[-+]?\s*endraw\s*(+%}|-%}\s*|%}\n?) */
            size_t j = raw_body, body_end = 0, after = 0;
            char esign = 0;
            for (; j + 1 < L.n; j++) {
                size_t k = match_kw_tag(&L, j, "endraw", &esign);
                if (!k) continue;
                char csign = 0;
                if (L.s[k] == '-' || L.s[k] == '+') csign = L.s[k++];
                if (!starts(&L, k, "%}")) continue;
                body_end = j;
                after = after_close(&L, k + 2, csign, true);
                break;
            }
            if (!after) return lex_fail(&L, t, "missing end of raw directive");
            bool ls = raw_body > 0 && L.s[raw_body - 1] == '\n';
            st = emit_text(&L, raw_body, body_end, esign, true, ls);
            line_starting = after > 0 && L.s[after - 1] == '\n';
            pos = after;
            continue;
        }
        size_t in = t + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            /* first "#}" ends the comment; a '-' or '+' right before it is its sign */
            const char *q = NULL;
            for (size_t j = in; j + 1 < L.n; j++)
                if (L.s[j] == '#' && L.s[j + 1] == '}') {
                    q = L.s + j;
                    break;
                }
            if (!q) return lex_fail(&L, t, "missing end of comment tag");
            size_t c = (size_t)(q - L.s);
            char csign = c > in && (L.s[c - 1] == '-' || L.s[c - 1] == '+') ? L.s[c - 1] : 0;
            size_t e = after_close(&L, c + 2, csign, true);
            line_starting = e > 0 && L.s[e - 1] == '\n';
            pos = e;
            continue;
        }
        st = emit(&L, kind == '%' ? JT_BLOCK_BEGIN : JT_VAR_BEGIN, t, NULL, 0, NULL);
        if (!st) st = lex_tag(&L, in, kind == '%', &pos, &line_starting);
    }
    if (!st) st = emit(&L, JT_EOF, L.n, NULL, 0, NULL);
    if (st) return st;
    *toks = L.toks;
    *n_toks = L.n_toks;
    return MLXR_OK;
}
