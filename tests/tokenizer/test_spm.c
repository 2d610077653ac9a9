/*
 * test_spm.c - the SentencePiece tokenizer (src/tokenizer/vocab.c, spm.c) against independent
 * references: llama.cpp's tokenizer test vectors (made with Hugging Face tokenizers), the
 * documented examples of the test data README, and llama.cpp's prompt ids and generated pieces
 * in the reference JSON files; then a naive O(n^2) encoder on random text, hand-built
 * vocabularies for the merge rules, and hostile input (random bytes, huge inputs, tiny buffers,
 * malformed metadata).
 */
#include "format/gguf.h"
#include "test.h"
#include "tokenizer/tok_util.h"
#include "tokenizer/vocab.h"
#include "tokenizer/vocab_impl.h"

#include <dirent.h>
#include <jansson.h>
#include <time.h>

/* ---- helpers --------------------------------------------------------------------------------- */

static ids tok_str(const mlxr_vocab *v, const char *s, bool add_special, bool parse_special) {
    return tok_ids(v, s, strlen(s), add_special, parse_special);
}

static bool ids_equal(ids a, const int32_t *b, size_t n) {
    return a.n == n && (n == 0 || memcmp(a.a, b, n * sizeof *b) == 0);
}

static void print_ids(const char *label, const int32_t *a, size_t n) {
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", a[i]);
    fputc('\n', stderr);
}

/* Concatenated pieces (special = false); malloc'ed, NUL-terminated, length in *len. */
static char *detokenize(const mlxr_vocab *v, const int32_t *a, size_t n, size_t *len) {
    size_t cap = 64, used = 0, n_bad = 0;
    char *out = malloc(cap);
    for (size_t i = 0; i < n && out; i++) {
        size_t k = 0;
        mlxr_status st =
            mlxr_vocab_token_to_piece(v, a[i], false, out + used, cap - used - 1, &k, NULL);
        if (st == MLXR_ERR_RANGE) {
            while (cap - used - 1 < k)
                cap *= 2;
            out = realloc(out, cap);
            st = mlxr_vocab_token_to_piece(v, a[i], false, out + used, cap - used - 1, &k, NULL);
        }
        n_bad += st != MLXR_OK;
        used += st == MLXR_OK ? k : 0;
    }
    CHECK(n_bad == 0, "token_to_piece failed for %zu of %zu ids", n_bad, n);
    if (out) out[used] = '\0';
    *len = used;
    return out;
}

/* Replace every U+2581 in d[0, *n) by a space, in place. */
static void unescape_all(char *d, size_t *n) {
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        if (i + 3 <= *n && memcmp(d + i, "\xe2\x96\x81", 3) == 0) {
            d[k++] = ' ';
            i += 2;
        } else {
            d[k++] = d[i];
        }
    }
    *n = k;
}

/*
 * decode(encode(x)) == x, dropping the one space the dummy prefix added. With `loose`, escaped
 * spaces left as raw bytes are turned back first: in invalid UTF-8 a stray lead byte can
 * swallow part of a following U+2581, whose bytes then come out as byte tokens (llama.cpp does
 * the same), so only valid UTF-8 round-trips exactly. `s` must not contain U+2581 itself.
 */
static bool round_trips(const mlxr_vocab *v, const char *s, size_t len, bool loose) {
    ids t = tok_ids(v, s, len, false, false);
    size_t n;
    char *d = detokenize(v, t.a, t.n, &n);
    if (loose) unescape_all(d, &n);
    const char *p = d;
    if (len && v->add_space_prefix && n && d[0] == ' ') p++, n--;
    bool ok = n == len && memcmp(p, s, len) == 0;
    free(d);
    free(t.a);
    return ok;
}

static void check_ids(const mlxr_vocab *v, const char *s, bool add_special, bool parse_special,
                      const int32_t *want, size_t n_want) {
    ids t = tok_str(v, s, add_special, parse_special);
    bool ok = ids_equal(t, want, n_want);
    CHECK(ok, "tokenize \"%s\" (add_special %d, parse_special %d)", s, add_special, parse_special);
    if (!ok) {
        print_ids("expected", want, n_want);
        print_ids("got", t.a, t.n);
    }
    free(t.a);
}
#define CHECK_IDS(v, s, add, parse, ...)                                                           \
    do {                                                                                           \
        const int32_t want_[] = {__VA_ARGS__};                                                     \
        check_ids(v, s, add, parse, want_, sizeof want_ / sizeof want_[0]);                        \
    } while (0)

/* ---- llama.cpp's test vectors ---------------------------------------------------------------- */

#define SEP "\n__ggml_vocab_test__\n"

static void print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
}

/* Parse one .out line (" 1 2 3") into ids. */
static ids parse_line(const char *line, size_t len) {
    ids r = {malloc((len / 2 + 1) * sizeof(int32_t)), 0};
    const char *p = line, *end = line + len;
    while (p < end) {
        char *q;
        long x = strtol(p, &q, 10);
        if (q == p) break;
        r.a[r.n++] = (int32_t)x;
        p = q;
    }
    return r;
}

static void test_vectors(const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf", name);
    mlxr_vocab *v = tok_load_rel(rel);
    CHECK(v != NULL, "load %s", rel);
    if (!v) return;
    size_t in_len, out_len;
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf.inp", name);
    char *path = test_data_path(rel), *inp = test_read_file(path, &in_len);
    free(path);
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf.out", name);
    path = test_data_path(rel);
    char *out = test_read_file(path, &out_len);
    free(path);
    CHECK(inp && out, "read %s vectors", name);
    int n_case = 0, n_ok = 0, n_rt = 0;
    const char *p = inp, *o = out;
    const char *in_end = inp ? inp + in_len : NULL, *out_end = out ? out + out_len : NULL;
    while (inp && out && p < in_end && o < out_end) {
        const char *sep = memmem(p, (size_t)(in_end - p), SEP, strlen(SEP));
        const char *nl = memchr(o, '\n', (size_t)(out_end - o));
        if (!sep || !nl) break;
        size_t n = (size_t)(sep - p);
        ids want = parse_line(o, (size_t)(nl - o));
        ids got = tok_ids(v, p, n, false, false);
        n_case++;
        if (ids_equal(got, want.a, want.n)) {
            n_ok++;
        } else {
            fprintf(stderr, "%s case %d mismatch, input \"", name, n_case);
            print_escaped(p, n);
            fprintf(stderr, "\"\n");
            print_ids("expected", want.a, want.n);
            print_ids("got", got.a, got.n);
        }
        bool rt = round_trips(v, p, n, false);
        n_rt += rt;
        if (!rt) {
            fprintf(stderr, "%s case %d does not round-trip: \"", name, n_case);
            print_escaped(p, n);
            fprintf(stderr, "\"\n");
        }
        free(want.a);
        free(got.a);
        p = sep + strlen(SEP);
        o = nl + 1;
    }
    CHECK(n_case == 46, "%s: %d cases read, expected 46", name, n_case);
    CHECK(n_ok == n_case, "%s: %d of %d vectors match", name, n_ok, n_case);
    CHECK(n_rt == n_case, "%s: %d of %d inputs round-trip", name, n_rt, n_case);
    fprintf(stderr, "%s: %d/%d vectors match, %d round-trip\n", name, n_ok, n_case, n_rt);
    free(inp);
    free(out);
    mlxr_vocab_free(v);
}

/* ---- documented examples --------------------------------------------------------------------- */

static void test_examples(void) {
    mlxr_vocab *v = tok_load_rel("tokenizer/ggml-vocab-llama-spm.gguf");
    CHECK(v != NULL, "load llama-spm");
    if (v) {
        CHECK_IDS(v, "Hello world", false, false, 15043, 3186);
        CHECK_IDS(v, " Hello world", false, false, 29871, 15043, 3186);
        CHECK_IDS(v, " ", false, false, 259);
        CHECK_IDS(v, "\t", false, false, 29871, 12);
        CHECK_IDS(v, "Hello world", true, false, 1, 15043, 3186);
        CHECK(mlxr_vocab_bos(v) == 1 && mlxr_vocab_eos(v) == 2, "bos/eos");
        CHECK(mlxr_vocab_add_bos(v) && !mlxr_vocab_add_eos(v), "add_bos/add_eos");
        CHECK(mlxr_vocab_n_tokens(v) == 32000, "n_tokens");
        CHECK(strcmp(mlxr_vocab_token_text(v, 15043), "\xe2\x96\x81Hello") == 0, "text");
        CHECK(mlxr_vocab_token_type(v, 13) == MLXR_TOKEN_BYTE, "type of <0x0A>");
        CHECK(mlxr_vocab_is_eog(v, 2) && !mlxr_vocab_is_eog(v, 1), "eog");
        /* parse_special: after <s> the text fragment gets the dummy prefix again */
        CHECK_IDS(v, "<s>Hello", false, true, 1, 15043);
        CHECK_IDS(v, "Hello</s>", true, true, 1, 15043, 2);
        ids t = tok_str(v, "<s>Hello", false, false);
        bool has_bos = false;
        for (size_t i = 0; i < t.n; i++)
            has_bos |= t.a[i] == 1;
        CHECK(t.n > 2 && !has_bos, "<s> as plain text must not give BOS");
        free(t.a);
        CHECK(round_trips(v, "<s>Hello", 8, false), "<s> as text round-trips");
        CHECK_IDS(v, "", true, false, 1);
        ids e = tok_str(v, "", false, false);
        CHECK(e.n == 0, "empty input, no tokens");
        free(e.a);
        mlxr_vocab_free(v);
    }

    v = tok_load_rel("models/stories260K.gguf");
    CHECK(v != NULL, "load stories260K");
    if (v) CHECK_IDS(v, "Once upon a time", true, false, 1, 403, 407, 261, 378);
    mlxr_vocab_free(v);

    v = tok_load_rel("models/pydoc-7M/pydoc-7M-f16.gguf");
    CHECK(v != NULL, "load pydoc-7M");
    if (v) {
        CHECK_IDS(v, "In Python 3.11, the", true, false, 1, 728, 436, 3894, 3949, 3912, 3936, 3936,
                  3917, 269);
        CHECK_IDS(v, "import os\n", true, false, 1, 579, 1138, 13);
        /* README: " leading space" -> 1 259 275 2329 2687 with the file's normalizer */
        CHECK_IDS(v, " leading space", true, false, 1, 259, 275, 2329, 2687);
    }
    mlxr_vocab_free(v);
}

/* Phi-3: "</s>" is USER_DEFINED (matched even without parse_special) and, as in llama.cpp for
 * models named Phi-3, swallows the whitespace after it; "<|end|>" is CONTROL. */
static void test_phi3_specials(void) {
    mlxr_vocab *v = tok_load_rel("tokenizer/ggml-vocab-phi-3.gguf");
    CHECK(v != NULL, "load phi-3");
    if (!v) return;
    CHECK_IDS(v, "Hello</s> world", false, false, 15043, 2, 3186);
    CHECK_IDS(v, "Hello<|end|>\nworld", false, true, 15043, 32007, 3186);
    ids t = tok_str(v, "<|end|>", false, false);
    CHECK(t.n > 1, "<|end|> without parse_special is text (%zu ids)", t.n);
    free(t.a);
    CHECK(mlxr_vocab_is_eog(v, 32007) && mlxr_vocab_is_eog(v, 32000), "phi-3 eog");
    CHECK(mlxr_vocab_eos(v) == 32000, "phi-3 eos");
    mlxr_vocab_free(v);
}

/* ---- reference JSON files -------------------------------------------------------------------- */

static size_t unhex(const char *h, char *out) {
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned x = 0;
        sscanf(h + 2 * i, "%2x", &x);
        out[i] = (char)x;
    }
    return n;
}

static ids json_ids(const json_t *arr) {
    ids r = {malloc((json_array_size(arr) + 1) * sizeof(int32_t)), json_array_size(arr)};
    for (size_t i = 0; i < r.n; i++)
        r.a[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return r;
}

static int check_reference(const char *file) {
    char rel[512];
    snprintf(rel, sizeof rel, "reference/%s", file);
    char *path = test_data_path(rel);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    free(path);
    CHECK(j != NULL, "parse %s: %s", file, jerr.text);
    if (!j) return 0;
    const char *model = json_string_value(json_object_get(j, "model_path"));
    const char *prompt = json_string_value(json_object_get(j, "prompt"));
    const char *hex = json_string_value(json_object_get(j, "text_hex"));
    mlxr_vocab *v = model ? tok_load_rel(model) : NULL;
    CHECK(v && prompt && hex, "%s: model, prompt, text_hex", file);
    if (v && prompt && hex) {
        ids want = json_ids(json_object_get(j, "prompt_ids"));
        ids got = tok_str(v, prompt, true, false);
        CHECK(ids_equal(got, want.a, want.n), "%s: prompt ids", file);
        if (!ids_equal(got, want.a, want.n)) {
            print_ids("expected", want.a, want.n);
            print_ids("got", got.a, got.n);
        }
        ids gen = json_ids(json_object_get(j, "generated_ids"));
        char *text = malloc(strlen(hex) / 2 + 1);
        size_t n_text = unhex(hex, text), n_dec;
        char *dec = detokenize(v, gen.a, gen.n, &n_dec);
        CHECK(n_dec == n_text && memcmp(dec, text, n_text) == 0, "%s: generated text", file);
        free(dec);
        free(text);
        free(gen.a);
        free(got.a);
        free(want.a);
    }
    mlxr_vocab_free(v);
    json_decref(j);
    return 1;
}

static void test_references(void) {
    char *dir = test_data_path("reference");
    DIR *d = opendir(dir);
    free(dir);
    CHECK(d != NULL, "open reference/");
    if (!d) return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        /* every model of the kit uses tokenizer.ggml.model "llama" */
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) n += check_reference(e->d_name);
    }
    closedir(d);
    CHECK(n >= 44, "%d reference cases checked", n);
    fprintf(stderr, "reference: %d cases checked\n", n);
}

/* ---- hand-built vocabularies ----------------------------------------------------------------- */

/* <unk> <s> </s>, the 256 byte tokens, then `extra` pieces with their scores. */
static mlxr_vocab *toy_vocab(const char *const *extra, const float *scores, int n_extra) {
    static char bytes[256][7];
    const char *texts[300];
    float sc[300];
    int32_t ty[300];
    int32_t n = 0;
    texts[n] = "<unk>", ty[n] = MLXR_TOKEN_UNKNOWN, sc[n++] = 0;
    texts[n] = "<s>", ty[n] = MLXR_TOKEN_CONTROL, sc[n++] = 0;
    texts[n] = "</s>", ty[n] = MLXR_TOKEN_CONTROL, sc[n++] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        texts[n] = bytes[b], ty[n] = MLXR_TOKEN_BYTE, sc[n++] = 0;
    }
    for (int i = 0; i < n_extra && n < 300; i++) {
        texts[n] = extra[i], ty[n] = MLXR_TOKEN_NORMAL, sc[n++] = scores[i];
    }
    mlxr_vocab_spec s = mlxr_vocab_spec_default(n);
    s.texts = texts;
    s.scores = sc;
    s.types = ty;
    mlxr_vocab *v = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_vocab_new(&s, &v, &err) == MLXR_OK, "toy vocab: %s", err.msg);
    return v;
}

#define B 259 /* first id after the byte tokens */

static void test_merge_rules(void) {
    /* ids B+0.. : "▁" "a" "b" "c" "ab" "bc" */
    const char *p[] = {"\xe2\x96\x81", "a", "b", "c", "ab", "bc"};
    float equal[] = {0, 0, 0, 0, -1, -1};
    mlxr_vocab *v = toy_vocab(p, equal, 6);
    if (!v) return;
    /* equal scores: the leftmost pair merges first */
    CHECK_IDS(v, "abc", false, false, B + 0, B + 4, B + 3);
    mlxr_vocab_free(v);

    float right_wins[] = {0, 0, 0, 0, -2, -1};
    v = toy_vocab(p, right_wins, 6);
    if (!v) return;
    CHECK_IDS(v, "abc", false, false, B + 0, B + 1, B + 5);
    /* no piece: byte fallback, "é" = c3 a9 -> <0xC3> <0xA9> */
    CHECK_IDS(v, "\xc3\xa9", false, false, B + 0, 3 + 0xc3, 3 + 0xa9);
    /* a truncated lead byte at the end is one symbol of what is left */
    CHECK_IDS(v, "a\xe2", false, false, B + 0, B + 1, 3 + 0xe2);
    CHECK(round_trips(v, "ab c\xff\x80 ", 7, true), "toy round trip");
    mlxr_vocab_free(v);

    /* a merge must only happen where the pair is still adjacent and unchanged:
     * "aaa" with "aa" -> "aa" + "a" (the second pair is stale after the first merge) */
    const char *q[] = {"a", "aa", "aaa"};
    float qs[] = {0, -1, -2};
    v = toy_vocab(q, qs, 3);
    if (!v) return;
    CHECK_IDS(v, "aaaa", false, false, 3 + 0xe2, 3 + 0x96, 3 + 0x81, B + 1, B + 1);
    /* "aaaaa": a|a merges twice, then the new pair "aa"+"a" is still valid and gives "aaa" */
    CHECK_IDS(v, "aaaaa", false, false, 3 + 0xe2, 3 + 0x96, 3 + 0x81, B + 1, B + 2);
    mlxr_vocab_free(v);
}

static void test_vocab_building(void) {
    /* duplicate texts: the last id wins; an empty text becomes "[EMPTY_i]" */
    const char *t[] = {"<unk>", "<s>", "</s>", "x", "x", ""};
    mlxr_vocab_spec s = mlxr_vocab_spec_default(6);
    s.texts = t;
    s.add_space_prefix = false;
    mlxr_vocab *v = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_vocab_new(&s, &v, &err) == MLXR_OK, "build: %s", err.msg);
    if (v) {
        CHECK(mlxr_vocab_find(v, "x", 1) == 4, "last duplicate wins");
        CHECK(strcmp(mlxr_vocab_token_text(v, 5), "[EMPTY_5]") == 0, "empty renamed");
        /* 'y' has no piece, no byte token: UNK */
        CHECK_IDS(v, "xy", false, false, 4, 0);
        mlxr_vocab_free(v);
    }
    /* no UNK either: an error, never a crash */
    s.unk = -1;
    CHECK(mlxr_vocab_new(&s, &v, &err) == MLXR_OK, "build without unk");
    if (v) {
        size_t n = 0;
        CHECK(mlxr_vocab_tokenize(v, "y", 1, false, false, NULL, 0, &n, &err) == MLXR_ERR_NOT_FOUND,
              "missing byte and unk");
        mlxr_vocab_free(v);
    }
    s = mlxr_vocab_spec_default(6);
    s.texts = t;
    s.bos = 6;
    CHECK(mlxr_vocab_new(&s, &v, &err) == MLXR_ERR_RANGE && !v, "bos out of range");
    s = mlxr_vocab_spec_default(0);
    CHECK(mlxr_vocab_new(&s, &v, &err) == MLXR_ERR_RANGE, "zero tokens");
}

/* ---- malformed GGUF metadata ----------------------------------------------------------------- */

/* A tiny GGUF v3 writer: only the key/value section, no tensors. */
typedef struct gbuf {
    uint8_t a[4096];
    size_t n;
} gbuf;

static void put(gbuf *b, const void *p, size_t n) {
    memcpy(b->a + b->n, p, n);
    b->n += n;
}
static void put_u32(gbuf *b, uint32_t x) {
    put(b, &x, 4);
}
static void put_u64(gbuf *b, uint64_t x) {
    put(b, &x, 8);
}
static void put_str(gbuf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

/* Tokens "<unk>" "<s>" "</s>" "a"; n_scores scores; model name; bos id (or none if < 0). */
static mlxr_status load_synthetic(const char *model, int n_scores, int64_t bos) {
    gbuf *b = calloc(1, sizeof *b);
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, 0);
    put_u64(b, 3 + (bos >= 0));
    put_str(b, "tokenizer.ggml.model");
    put_u32(b, MLXR_GGUF_STRING);
    put_str(b, model);
    put_str(b, "tokenizer.ggml.tokens");
    put_u32(b, MLXR_GGUF_ARRAY);
    put_u32(b, MLXR_GGUF_STRING);
    put_u64(b, 4);
    const char *toks[] = {"<unk>", "<s>", "</s>", "a"};
    for (int i = 0; i < 4; i++)
        put_str(b, toks[i]);
    put_str(b, "tokenizer.ggml.scores");
    put_u32(b, MLXR_GGUF_ARRAY);
    put_u32(b, MLXR_GGUF_FLOAT32);
    put_u64(b, (uint64_t)n_scores);
    for (int i = 0; i < n_scores; i++) {
        float f = (float)-i;
        put(b, &f, 4);
    }
    if (bos >= 0) {
        put_str(b, "tokenizer.ggml.bos_token_id");
        put_u32(b, MLXR_GGUF_UINT32);
        put_u32(b, (uint32_t)bos);
    }
    mlxr_gguf *g = NULL;
    mlxr_vocab *v = NULL;
    mlxr_err err = {0};
    mlxr_status st = mlxr_gguf_open_mem(b->a, b->n, &g, &err);
    if (st == MLXR_OK) st = mlxr_vocab_load_gguf(g, &v, &err);
    if (st == MLXR_ERR_UNSUPPORTED) CHECK(strstr(err.msg, model) != NULL, "names the model");
    /* no "▁" piece and no byte tokens: the dummy prefix falls back to three UNKs */
    if (v) CHECK_IDS(v, "a", true, false, 1, 0, 0, 0, 3);
    mlxr_vocab_free(v);
    mlxr_gguf_close(g);
    free(b);
    return st;
}

static void test_bad_metadata(void) {
    CHECK(load_synthetic("llama", 4, 1) == MLXR_OK, "well-formed synthetic vocab");
    CHECK(load_synthetic("llama", 3, -1) == MLXR_ERR_FORMAT, "scores length mismatch");
    CHECK(load_synthetic("llama", 4, 4) == MLXR_ERR_FORMAT, "bos id out of range");
    CHECK(load_synthetic("t5", 4, -1) == MLXR_ERR_UNSUPPORTED, "unsupported model");
    /* gpt2 needs tokenizer.ggml.merges (llama.cpp: "cannot find tokenizer merges") */
    CHECK(load_synthetic("gpt2", 4, -1) == MLXR_ERR_FORMAT, "gpt2 model without merges");
    mlxr_vocab *v = tok_load_rel("tokenizer/ggml-vocab-gpt-2.gguf");
    CHECK(v != NULL, "gpt-2 vocab loads");
    mlxr_vocab_free(v);
}

/* ---- hostile input --------------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/*
 * A slow, obvious SentencePiece encoder for cross-checking spm.c (no special tokens): merge the
 * adjacent pair with the best score (leftmost on ties) until no pair is a token, then emit
 * pieces or byte tokens. O(n^2), so only for short inputs.
 */
static ids naive_spm(const mlxr_vocab *v, const char *s, size_t len) {
    if (len == 0) return (ids){malloc(sizeof(int32_t)), 0}; /* no dummy prefix on nothing */
    char *e = malloc(3 * len + 4);
    size_t n = 0;
    if (v->add_space_prefix) memcpy(e, "\xe2\x96\x81", 3), n = 3;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ')
            memcpy(e + n, "\xe2\x96\x81", 3), n += 3;
        else
            e[n++] = s[i];
    }
    size_t *off = malloc((n + 1) * sizeof *off), k = 0; /* symbol i is e[off[i], off[i+1]) */
    for (size_t p = 0; p < n; k++) {
        off[k] = p;
        size_t l = mlxr_utf8_len(e[p]);
        p += l < n - p ? l : n - p;
    }
    off[k] = n;
    for (;;) {
        size_t best = k;
        float best_score = 0;
        for (size_t i = 0; i + 1 < k; i++) {
            int32_t id = mlxr_vocab_find(v, e + off[i], off[i + 2] - off[i]);
            if (id >= 0 && (best == k || v->score[id] > best_score)) {
                best = i;
                best_score = v->score[id];
            }
        }
        if (best == k) break;
        memmove(off + best + 1, off + best + 2, (k - best - 1) * sizeof *off);
        k--;
    }
    ids r = {malloc((n + 1) * sizeof(int32_t)), 0};
    for (size_t i = 0; i < k; i++) {
        int32_t id = mlxr_vocab_find(v, e + off[i], off[i + 1] - off[i]);
        if (id >= 0) {
            r.a[r.n++] = id;
            continue;
        }
        for (size_t j = off[i]; j < off[i + 1]; j++) {
            int32_t b = v->byte_id[(uint8_t)e[j]];
            r.a[r.n++] = b >= 0 ? b : v->unk;
        }
    }
    free(off);
    free(e);
    return r;
}

/* Random word salad (from the tokenizer vectors' alphabet) and random bytes: spm.c and the
 * naive encoder must agree. */
static void test_against_naive(const char *rel, uint64_t seed) {
    mlxr_vocab *v = tok_load_rel(rel);
    CHECK(v != NULL, "load %s", rel);
    if (!v) return;
    static const char *const words[] = {
        "the",
        " ",
        "  ",
        "\t",
        "\n",
        "Hello",
        "world",
        "3",
        "33",
        "\xc3\xbc",
        "\xf0\x9f\xa6\x99",
        "ing",
        "a",
        "aa",
        "def",
        "(",
        ")",
        "\xe6\x88\x91",
        "\xff",
        "\x80",
        "\xe2",
        ".",
        "...",
        "__",
    };
    uint64_t rng = seed ^ 0x9e3779b97f4a7c15ull;
    char buf[256];
    int n_same = 0, n_cases = 200;
    for (int it = 0; it < n_cases; it++) {
        size_t len = 0;
        bool bytes = it % 4 == 3;
        while (len < sizeof buf - 8) {
            uint64_t r = test_rng_u64(&rng);
            if (r % 16 == 0) break;
            if (bytes) {
                buf[len++] = (char)(r >> 8);
                continue;
            }
            const char *w = words[(r >> 8) % (sizeof words / sizeof words[0])];
            memcpy(buf + len, w, strlen(w));
            len += strlen(w);
        }
        ids a = tok_ids(v, buf, len, false, false), b = naive_spm(v, buf, len);
        bool same = ids_equal(a, b.a, b.n);
        n_same += same;
        if (!same) {
            fprintf(stderr, "%s: differs from the naive encoder on \"", rel);
            print_escaped(buf, len);
            fprintf(stderr, "\"\n");
            print_ids("naive", b.a, b.n);
            print_ids("spm.c", a.a, a.n);
        }
        free(a.a);
        free(b.a);
    }
    CHECK(n_same == n_cases, "%s: %d of %d agree with the naive encoder", rel, n_same, n_cases);
    mlxr_vocab_free(v);
}

static void test_random_bytes(const mlxr_vocab *v, uint64_t seed) {
    uint64_t rng = seed;
    char buf[512];
    int n_ok = 0, n_tried = 0;
    for (int it = 0; it < 300; it++) {
        size_t len = (size_t)(test_rng_u64(&rng) % sizeof buf);
        int mode = (int)(test_rng_u64(&rng) % 3);
        for (size_t i = 0; i < len; i++) {
            uint64_t r = test_rng_u64(&rng);
            /* mode 0: any byte; 1: mostly 0xFF / NUL / continuation bytes; 2: ASCII + spaces */
            buf[i] = mode == 0   ? (char)r
                     : mode == 1 ? (char)("\xff\x00\x80\xbf\xe2\xf0 "[r % 7])
                                 : (char)(" \tab<s>\n"[r % 8]);
        }
        if (memmem(buf, len, "\xe2\x96\x81", 3)) continue; /* a literal U+2581 decodes as ' ' */
        n_tried++;
        n_ok += round_trips(v, buf, len, true);
        ids t = tok_ids(v, buf, len, true, true); /* parse_special on hostile text: no crash */
        free(t.a);
    }
    CHECK(n_ok == n_tried, "%d of %d random inputs round-trip", n_ok, n_tried);
}

/* Tokenize one long input in a single call (its time is printed, not asserted: speed belongs
 * to bench/), then check that it decodes back. */
static void long_case(const mlxr_vocab *v, const char *s, size_t len, bool parse_special,
                      const char *label) {
    size_t cap = 3 * len + 3, n = 0; /* every id covers at least one escaped byte */
    int32_t *a = malloc(cap * sizeof *a);
    mlxr_err err = {0};
    double t0 = now_s();
    mlxr_status st = mlxr_vocab_tokenize(v, s, len, false, parse_special, a, cap, &n, &err);
    double dt = now_s() - t0;
    fprintf(stderr, "%s: %zu ids in %.3f s\n", label, n, dt);
    CHECK(st == MLXR_OK && n > 0, "%s: %s", label, err.msg);
    size_t n_dec;
    char *d = detokenize(v, a, st == MLXR_OK ? n : 0, &n_dec);
    /* with parse_special the <s> tokens print nothing; otherwise drop the dummy-prefix space */
    bool ok = parse_special ? n_dec == 0 : n_dec == len + 1 && memcmp(d + 1, s, len) == 0;
    CHECK(ok, "%s: decodes back", label);
    free(d);
    free(a);
}

static void test_long_inputs(const mlxr_vocab *v) {
    size_t big = 1 << 20;
    char *s = malloc(big);
    memset(s, 'a', big);
    long_case(v, s, big, false, "1 MiB of 'a'");
    memset(s, ' ', 100000);
    long_case(v, s, 100000, false, "100k spaces");
    for (size_t i = 0; i < big; i++)
        s[i] = "Hello, world! Tokenizers cut text.\n"[i % 36];
    long_case(v, s, big, false, "1 MiB of prose");
    for (size_t i = 0; i + 3 <= big; i += 3)
        memcpy(s + i, "<s>", 3);
    long_case(v, s, big - big % 3, true, "1 MiB of <s> (parse_special)");
    free(s);
}

static void test_buffers(const mlxr_vocab *v) {
    int32_t out[2] = {-7, -7};
    size_t n = 0;
    mlxr_err err = {0};
    mlxr_status st = mlxr_vocab_tokenize(v, "Hello world", 11, true, false, out, 2, &n, &err);
    CHECK(st == MLXR_ERR_RANGE && n == 3, "small cap: status %d, need %zu", st, n);
    CHECK(out[0] == 1 && out[1] == 15043, "the ids that fit are written");
    st = mlxr_vocab_tokenize(v, "", 0, false, false, NULL, 0, &n, &err);
    CHECK(st == MLXR_OK && n == 0, "empty input, no buffer");
    st = mlxr_vocab_tokenize(v, NULL, 5, false, false, out, 2, &n, &err);
    CHECK(st == MLXR_ERR_INVALID, "NULL text");

    char piece[8];
    CHECK(mlxr_vocab_token_to_piece(v, -1, false, piece, 8, &n, &err) == MLXR_ERR_INVALID, "id -1");
    CHECK(mlxr_vocab_token_to_piece(v, 32000, false, piece, 8, &n, &err) == MLXR_ERR_INVALID,
          "id n_tokens");
    st = mlxr_vocab_token_to_piece(v, 15043, false, piece, 3, &n, &err);
    CHECK(st == MLXR_ERR_RANGE && n == 6, "piece cap: status %d, need %zu", st, n);
    st = mlxr_vocab_token_to_piece(v, 15043, false, piece, 8, &n, &err);
    CHECK(st == MLXR_OK && n == 6 && memcmp(piece, " Hello", 6) == 0, "piece of 15043");
    st = mlxr_vocab_token_to_piece(v, 13, false, piece, 8, &n, &err);
    CHECK(st == MLXR_OK && n == 1 && piece[0] == '\n', "byte piece");
    st = mlxr_vocab_token_to_piece(v, 1, false, piece, 8, &n, &err);
    CHECK(st == MLXR_OK && n == 0, "control piece, special = false");
    st = mlxr_vocab_token_to_piece(v, 1, true, piece, 8, &n, &err);
    CHECK(st == MLXR_OK && n == 3 && memcmp(piece, "<s>", 3) == 0, "control piece, special");
    st = mlxr_vocab_token_to_piece(v, 0, false, piece, 8, &n, &err);
    CHECK(st == MLXR_OK && n == 0, "unknown piece, special = false");
    CHECK(mlxr_vocab_token_text(v, 32000) == NULL, "text of an invalid id");
}

int main(void) {
    uint64_t seed = test_seed();
    test_vectors("llama-spm");
    test_vectors("phi-3");
    test_examples();
    test_phi3_specials();
    test_references();
    test_merge_rules();
    test_vocab_building();
    test_bad_metadata();
    test_against_naive("tokenizer/ggml-vocab-llama-spm.gguf", seed);
    test_against_naive("models/pydoc-7M/pydoc-7M-f16.gguf", seed + 1);
    mlxr_vocab *v = tok_load_rel("tokenizer/ggml-vocab-llama-spm.gguf");
    CHECK(v != NULL, "load llama-spm");
    if (v) {
        test_random_bytes(v, seed);
        test_long_inputs(v);
        test_buffers(v);
    }
    mlxr_vocab_free(v);
    return test_finish("tokenizer_spm");
}
