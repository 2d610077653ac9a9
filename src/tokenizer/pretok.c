/*
 * pretok.c - the pre-tokenizers of byte-level BPE vocabularies: `tokenizer.ggml.pre` names a
 * list of regexes that cut text into pre-tokens before any merge, exactly as llama.cpp
 * (llama-vocab.cpp, llm_tokenizer_bpe; unicode.cpp, unicode_regex_split) does.
 *
 * How llama.cpp applies a list: the first regex runs over the whole text; every match AND every
 * gap between matches becomes a piece; the next regex runs inside each piece on its own (so `$`
 * and `(?!\S)` see the piece's end), and so on. We do the same with PCRE2 (8-bit, UTF + UCP,
 * JIT-compiled once per vocabulary, the interpreter if JIT is unavailable). llama.cpp runs the
 * gpt-2 and llama3 regexes through hand-written matchers and the others through std::regex on a
 * text whose non-ASCII characters are collapsed to one byte per Unicode category; both agree
 * with a backtracking engine on the real text, with three adjustments made here:
 *   - `\s` is llama.cpp's whitespace (the Unicode White_Space set), written out as a class,
 *     because PCRE2 10.42's UCP `\s` also takes U+180E;
 *   - `$` matches only at the very end (PCRE2_DOLLAR_ENDONLY), like ECMAScript;
 *   - the caller hands in valid UTF-8 (bpe.c replaces bad bytes with U+FFFD first, as
 *     llama.cpp's unicode_cpts_from_utf8 does), so matching skips PCRE2's UTF check.
 * Known difference: llama.cpp's collapsed `\p{S}` misses '~', so regexes that use `\p{S}`
 * (deepseek-v3 and relatives, not offered here) would treat '~' differently.
 *
 * Unicode properties come from PCRE2's tables (Unicode 14 in 10.42); llama.cpp carries its own
 * (Unicode 15): characters assigned or re-categorised in between may split differently.
 */
#include "tokenizer/vocab_impl.h"

#include "util/err.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REGEX 8

/* ---- llama.cpp's regex lists (llm_tokenizer_bpe), by pre-tokenizer ----------------------------
 */

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"   \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"        \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_UPPER_LOWER "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+"
#define RE_LOWER_UPPER "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*"
#define RE_TEKKEN                                                                                  \
    RE_UPPER_LOWER "|" RE_LOWER_UPPER "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|"     \
                   "\\s+(?!\\S)|\\s+"
#define RE_GPT4O                                                                                   \
    RE_UPPER_LOWER RE_CONTRACTIONS "?|" RE_LOWER_UPPER RE_CONTRACTIONS                             \
                                   "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|"  \
                                   "\\s+(?!\\S)|\\s+"
#define RE_PORO " ?[^(\\s|.,!?…。，、।۔،)]+"
#define RE_CJK "[一-龥ࠀ-一가-퟿]+"

/* llama.cpp's per-pre-tokenizer settings */
enum {
    PRE_IGNORE_MERGES = 1, /* a pre-token that is a token is taken whole (llama3, tekken) */
    PRE_ADD_BOS = 2,       /* add_bos defaults to true */
    PRE_NO_BOS = 4,        /* no BOS token by default (chatglm) */
};

typedef struct pre_def {
    const char *names[12]; /* tokenizer.ggml.pre values, NULL-terminated */
    const char *re[MAX_REGEX];
    unsigned flags;
} pre_def;

static const pre_def pre_defs[] = {
    /* llama.cpp's fallback for an absent pre, and "default" */
    {{"default"}, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, 0},
    {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
      "jina-v5-nano"},
     {RE_LLAMA3},
     PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {{"dbrx", "smaug-bpe"}, {RE_LLAMA3}, 0},
    {{"chatglm-bpe", "glm4"}, {RE_LLAMA3}, PRE_NO_BOS},
    /* deepseek-llm's letter class is the cased letters (Lu, Ll, Lt) of its Unicode version,
     * written with escapes: as literal characters, an editor's NFC would turn U+1F7D into
     * U+03CE and break the ranges */
    {{"deepseek-llm"},
     {"[\r\n]",
      "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
      "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
      "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-"
      "\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
      "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-"
      "\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
      "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
      "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}"
      "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-"
      "\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"
      "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
      "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"
      "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-"
      "\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
      "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
      "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
      "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
      "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", RE_CJK, "\\p{N}+"},
     0},
    {{"deepseek-coder"}, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}, 0},
    {{"falcon"}, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, 0},
    {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
     {"\\p{N}", RE_GPT2},
     0},
    {{"gpt-2", "phi-2", "mpt", "olmo", "jais", "jina-es", "jina-de", "gigachat", "jina-v2-es",
      "jina-v2-de", "jina-v1-en"},
     {RE_GPT2},
     0},
    {{"jina-v2-code", "roberta-bpe", "exaone4", "trillion", "granite-docling", "a.x-4.0", "mellum",
      "modern-bert"},
     {RE_GPT2},
     0},
    {{"qwen2", "stablelm2", "deepseek-r1-qwen", "megrez", "hunyuan", "kormo"}, {RE_QWEN2}, 0},
    {{"poro-chat", "bloom", "gpt3-finnish"}, {RE_PORO}, 0},
    {{"viking"}, {RE_PORO, "\\p{N}"}, 0},
    {{"tekken"}, {RE_TEKKEN}, PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {{"chameleon"},
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2},
     PRE_ADD_BOS},
    {{"seed-coder"},
     {RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|"
                      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     0},
    {{"qwen35"},
     {RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "
                      "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     0},
    {{"grok-2", "solar-open", "f2llmv2"}, {RE_QWEN2}, 0},
    {{"ufakzeka"},
     {"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
      "\\s+(?!\\S)|\\s+"},
     0},
    {{"minicpm5"},
     {"\\p{N}{1,3}",
      RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     PRE_IGNORE_MERGES},
    {{"exaone-moe"},
     {RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| "
                      "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     0},
    {{"jais-2"},
     {RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                      "\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|"
                      "\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|"
                      "\\s{1,2}(?!\\S)|\\s{1}"},
     0},
    {{"granite-embed-multi-97m"},
     {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))"
      "+" RE_CONTRACTIONS "?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+((?=[\\p{L}\\p{M}])"
                          "([^A-Z]))*" RE_CONTRACTIONS
      "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     PRE_IGNORE_MERGES},
    {{"gpt-4o", "llama4", "kanana2", "talkie"}, {RE_GPT4O}, 0},
    {{"bailingmoe", "bailingmoe2", "llada-moe"},
     {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     0},
};

static const pre_def *find_def(const char *name, size_t len) {
    if (!name || len == 0) return &pre_defs[0]; /* absent or empty: llama.cpp's "default" */
    for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0]; i++) {
        for (size_t k = 0; k < 12 && pre_defs[i].names[k]; k++) {
            const char *n = pre_defs[i].names[k];
            if (strlen(n) == len && memcmp(n, name, len) == 0) return &pre_defs[i];
        }
    }
    return NULL;
}

static mlxr_status unknown_pre(const char *name, size_t len, mlxr_err *err) {
    int n = len > 64 ? 64 : (int)len;
    return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                     "unknown pre-tokenizer type: tokenizer.ggml.pre = '%.*s' is not supported", n,
                     name);
}

mlxr_status mlxr_pretok_defaults(const char *name, size_t name_len, mlxr_vocab_spec *s,
                                 mlxr_err *err) {
    const pre_def *d = find_def(name, name_len);
    if (!d) return unknown_pre(name, name_len, err);
    if (d->flags & PRE_ADD_BOS) s->add_bos = true;
    if (d->flags & PRE_NO_BOS) s->bos = -1;
    return MLXR_OK;
}

/* ---- compiling ------------------------------------------------------------------------------- */

struct mlxr_pretok {
    size_t n;
    pcre2_code *code[MAX_REGEX];
};

/* llama.cpp's whitespace: the Unicode White_Space property, as the members of a class. */
#define WS_MEMBERS                                                                                 \
    "\\t-\\r "                                                                                     \
    "\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

/* The regex with every `\s` replaced by WS_MEMBERS (in a class) or [WS_MEMBERS] (outside) and
 * every `\S` outside a class by [^WS_MEMBERS]. malloc'ed; NULL when out of memory. */
static char *rewrite_ws(const char *re) {
    size_t n = strlen(re), ws = strlen(WS_MEMBERS);
    char *out = malloc(n * (ws + 4) + 1), *q = out; /* each 2-byte escape grows by < ws + 4 */
    if (!out) return NULL;
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            char e = re[++i];
            if (e == 's' || (e == 'S' && !in_class)) {
                if (!in_class) *q++ = '[';
                if (e == 'S') *q++ = '^';
                memcpy(q, WS_MEMBERS, ws), q += ws;
                if (!in_class) *q++ = ']';
            } else {
                *q++ = '\\', *q++ = e;
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            *q++ = c;
            if (i + 1 < n && re[i + 1] == '^') *q++ = re[++i];
            if (i + 1 < n && re[i + 1] == ']') *q++ = re[++i]; /* a leading ']' is literal */
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        *q++ = c;
    }
    *q = '\0';
    return out;
}

void mlxr_pretok_free(mlxr_pretok *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++)
        pcre2_code_free(p->code[i]);
    free(p);
}

mlxr_status mlxr_pretok_new(const char *name, size_t name_len, mlxr_pretok **out,
                            bool *ignore_merges, mlxr_err *err) {
    *out = NULL;
    const pre_def *d = find_def(name, name_len);
    if (!d) return unknown_pre(name, name_len, err);
    mlxr_pretok *p = calloc(1, sizeof *p);
    if (!p) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "pre-tokenizer: no memory");
    for (size_t i = 0; i < MAX_REGEX && d->re[i]; i++) {
        char *re = rewrite_ws(d->re[i]);
        if (!re) {
            mlxr_pretok_free(p);
            return MLXR_FAIL(err, MLXR_ERR_NOMEM, "pre-tokenizer: no memory");
        }
        int code;
        PCRE2_SIZE at;
        uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_AUTO_CAPTURE | PCRE2_DOLLAR_ENDONLY;
        p->code[i] = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, opts, &code, &at, NULL);
        free(re);
        if (!p->code[i]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof msg);
            mlxr_pretok_free(p);
            return MLXR_FAIL(err, MLXR_ERR_INTERNAL, "pre-tokenizer regex %zu: %s at offset %zu", i,
                             (const char *)msg, (size_t)at);
        }
        p->n = i + 1;
        /* JIT is an optimisation: where it is unavailable the interpreter gives the same result */
        (void)pcre2_jit_compile(p->code[i], PCRE2_JIT_COMPLETE);
    }
    if (ignore_merges) *ignore_merges = d->flags & PRE_IGNORE_MERGES;
    *out = p;
    return MLXR_OK;
}

size_t mlxr_pretok_count(const mlxr_pretok *p) {
    return p ? p->n : 0;
}

/* ---- splitting ------------------------------------------------------------------------------- */

typedef struct span_list {
    mlxr_span *a;
    size_t n, cap;
} span_list;

static bool span_push(span_list *l, size_t off, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        mlxr_span *a = realloc(l->a, cap * sizeof *a);
        if (!a) return false;
        l->a = a;
        l->cap = cap;
    }
    l->a[l->n++] = (mlxr_span){off, len};
    return true;
}

/* Matches of `code` inside piece [off, off + len) of text, and the gaps between them, onto out. */
static mlxr_status split_piece(const pcre2_code *code, const char *text, size_t off, size_t len,
                               pcre2_match_data *md, pcre2_match_context *mc, span_list *out,
                               mlxr_err *err) {
    PCRE2_SPTR s = (PCRE2_SPTR)(text + off);
    size_t start = 0, last = 0;
    while (start < len) {
        int rc = pcre2_match(code, s, len, start, PCRE2_NO_UTF_CHECK, md, mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return MLXR_FAIL(err, MLXR_ERR_RANGE,
                             "pre-tokenizer: regex gave up on a %zu-byte piece: %s", len,
                             (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* an empty match cuts nothing: move on by one character */
            start = ms + mlxr_utf8_len((char)s[ms]);
            continue;
        }
        if ((ms > last && !span_push(out, off + last, ms - last)) ||
            !span_push(out, off + ms, me - ms))
            return MLXR_FAIL(err, MLXR_ERR_NOMEM, "pre-tokenizer: no memory");
        last = start = me;
    }
    if (last < len && !span_push(out, off + last, len - last))
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "pre-tokenizer: no memory");
    return MLXR_OK;
}

mlxr_status mlxr_pretok_split(const mlxr_pretok *p, const char *text, size_t len, mlxr_span **spans,
                              size_t *n, mlxr_err *err) {
    *spans = NULL;
    *n = 0;
    span_list cur = {0}, next = {0};
    mlxr_status st = MLXR_OK;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    /* a JIT stack per call (the default 32 KiB is too small for long runs of one class) */
    pcre2_jit_stack *js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!md || !mc || !js || (len && !span_push(&cur, 0, len))) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "pre-tokenizer: no memory");
        goto done;
    }
    pcre2_jit_stack_assign(mc, NULL, js);
    for (size_t r = 0; r < p->n; r++) {
        next.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            st = split_piece(p->code[r], text, cur.a[i].off, cur.a[i].len, md, mc, &next, err);
            if (st) goto done;
        }
        span_list t = cur;
        cur = next;
        next = t;
    }
    *spans = cur.a;
    *n = cur.n;
    cur.a = NULL;
done:
    free(cur.a);
    free(next.a);
    pcre2_jit_stack_free(js);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    return st;
}
