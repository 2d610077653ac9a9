/*
 * test_vectors.c - every tokenizer family against its independent reference: the Hugging Face
 * test vectors in the shared test data (tokenizer/ggml-vocab-NAME.gguf.inp/.out, made with
 * transformers' tokenizer.encode(text, add_special_tokens=False), which llama.cpp passes too)
 * for llama-spm, phi-3, gpt-2, deepseek-coder, falcon and bert-bge; then round trips
 * (decode(encode(x)) == x for the lossless vocabularies, on the vector inputs and on random valid
 * UTF-8), streaming decode equal to one-shot decode for every split point, special tokens
 * that are never matched without parse_special, and concurrent calls on one vocabulary.
 */
#include "format/gguf.h"
#include "test.h"
#include "tokenizer/detok.h"
#include "tokenizer/vocab.h"
#include "tokenizer/vocab_impl.h"
#include "tokenizer/tok_util.h"

#include <pthread.h>

static void print_escaped(const char *s, size_t n) {
    fputc('"', stderr);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputs("\"\n", stderr);
}

static ids parse_line(const char *line, size_t len) {
    ids r = {malloc((len + 1) * sizeof(int32_t)), 0};
    for (size_t i = 0; i < len;) {
        while (i < len && line[i] == ' ')
            i++;
        if (i >= len) break;
        r.a[r.n++] = (int32_t)strtol(line + i, NULL, 10);
        while (i < len && line[i] != ' ')
            i++;
    }
    return r;
}

/* Decoded text of ids (special = false), malloc'ed; length in *len. */
static char *decode(const mlxr_vocab *v, const int32_t *a, size_t n, size_t *len) {
    mlxr_err err = {0};
    size_t need = 0;
    mlxr_status st = mlxr_vocab_detokenize(v, a, n, false, NULL, 0, &need, &err);
    CHECK(st == MLXR_OK || st == MLXR_ERR_RANGE, "detokenize size: %s", err.msg);
    char *out = malloc(need + 1);
    st = mlxr_vocab_detokenize(v, a, n, false, out, need, len, &err);
    CHECK(st == MLXR_OK && *len == need, "detokenize: %s", err.msg);
    out[*len] = '\0';
    return out;
}

/* Feeding ids one at a time gives the one-shot text, and every chunk ends on a UTF-8 boundary. */
static void check_stream(const mlxr_vocab *v, const int32_t *a, size_t n, const char *want,
                         size_t want_len) {
    mlxr_detok_stream *s = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_vocab_detok_stream_new(v, false, &s, &err) == MLXR_OK, "stream new");
    if (!s) return;
    char *got = malloc(want_len + 64);
    size_t used = 0;
    bool bad_cut = false;
    for (size_t i = 0; i < n && used <= want_len; i++) {
        char buf[256];
        size_t k = 0;
        mlxr_status st = mlxr_vocab_detok_stream_push(s, a[i], buf, sizeof buf, &k, &err);
        CHECK(st == MLXR_OK, "push: %s", err.msg);
        if (st) break;
        /* a chunk never ends inside a character (valid UTF-8 input) */
        if (k && ((unsigned char)buf[k - 1] & 0xC0) == 0xC0) bad_cut = true;
        if (used + k <= want_len + 64) memcpy(got + used, buf, k);
        used += k;
    }
    char buf[16];
    size_t k = 0;
    CHECK(mlxr_vocab_detok_stream_flush(s, buf, sizeof buf, &k, &err) == MLXR_OK, "flush");
    if (used + k <= want_len + 64) memcpy(got + used, buf, k);
    used += k;
    CHECK(used == want_len && memcmp(got, want, want_len) == 0, "stream != one-shot decode");
    CHECK(!bad_cut, "a chunk ended on a lead byte");
    free(got);
    mlxr_vocab_detok_stream_free(s);
}

/* Lossless: everything but WordPiece (lower-cases) and invalid UTF-8. */
static bool lossless(const mlxr_vocab *v) {
    return v->kind != MLXR_VOCAB_WPM;
}

static void test_vectors(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf.inp", name);
    char *pin = test_data_path(rel);
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf.out", name);
    char *pout = test_data_path(rel);
    size_t nin = 0, nout = 0;
    char *inp = test_read_file(pin, &nin), *out = test_read_file(pout, &nout);
    mlxr_vocab *v = tok_load_vocab(name);
    CHECK(inp && out && v, "%s: vector files and vocabulary load", name);
    if (!inp || !out || !v) goto done;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof sep - 1;
    size_t ip = 0, op = 0;
    int cases = 0, fails = 0;
    while (ip < nin) {
        const char *end = memmem(inp + ip, nin - ip, sep, sep_len);
        if (!end) break;
        size_t len = (size_t)(end - (inp + ip));
        const char *nl = memchr(out + op, '\n', nout - op);
        if (!nl) {
            CHECK(false, "%s: .out has fewer lines than .inp", name);
            break;
        }
        ids want = parse_line(out + op, (size_t)(nl - (out + op)));
        ids got = tok_ids(v, inp + ip, len, false, false);
        bool ok = got.n == want.n && (!got.n || !memcmp(got.a, want.a, got.n * sizeof *got.a));
        cases++;
        if (!ok) {
            fails++;
            fprintf(stderr, "%s case %d: ", name, cases - 1);
            print_escaped(inp + ip, len);
            fprintf(stderr, "  want:");
            for (size_t i = 0; i < want.n; i++)
                fprintf(stderr, " %d", want.a[i]);
            fprintf(stderr, "\n  got: ");
            for (size_t i = 0; i < got.n; i++)
                fprintf(stderr, " %d", got.a[i]);
            fputc('\n', stderr);
        }
        size_t dl = 0;
        char *d = decode(v, got.a, got.n, &dl);
        if (lossless(v))
            CHECK(dl == len && !memcmp(d, inp + ip, len), "%s case %d: decode(encode(x)) != x",
                  name, cases - 1);
        check_stream(v, got.a, got.n, d, dl);
        free(d);
        free(want.a);
        free(got.a);
        ip += len + sep_len;
        op = (size_t)(nl - out) + 1;
    }
    CHECK(cases == 46 && fails == 0, "%s: %d of %d vectors differ", name, fails, cases);
    fprintf(stderr, "%s: %d vectors, %d differ\n", name, cases, fails);
done:
    mlxr_vocab_free(v);
    free(inp);
    free(out);
    free(pin);
    free(pout);
}

/* ---- round trips on random valid UTF-8 ----------------------------------------------------------
 */

/* A random code point from a mix of scripts, spaces, digits and punctuation. */
static uint32_t random_cp(uint64_t *rng) {
    static const uint32_t ranges[][2] = {
        {0x20, 0x7E},       {0x20, 0x20},       {0x0A, 0x0A},
        {0x09, 0x09},       {0xA0, 0x17F},      {0x391, 0x3C9},
        {0x410, 0x44F},     {0x5D0, 0x5EA},     {0x627, 0x64A},
        {0x900, 0x97F},     {0x3040, 0x30FF},   {0x4E00, 0x9FFF},
        {0xAC00, 0xD7A3},   {0x1F300, 0x1F64F}, {0x2000, 0x206F},
        {0x10000, 0x3FFFF}, /* falcon has no token for lead bytes F1-F4 */
    };
    uint64_t r = test_rng_u64(rng);
    size_t k = (size_t)(r % (sizeof ranges / sizeof ranges[0]));
    uint32_t lo = ranges[k][0], hi = ranges[k][1];
    uint32_t cp = lo + (uint32_t)((r >> 8) % (hi - lo + 1));
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
    return cp;
}

static void test_random_round_trips(const char *name, uint64_t seed) {
    mlxr_vocab *v = tok_load_vocab(name);
    CHECK(v != NULL, "load %s", name);
    if (!v) return;
    uint64_t rng = seed | 1;
    int bad = 0;
    for (int iter = 0; iter < 200; iter++) {
        char text[1024];
        size_t n = 0, want = (size_t)(test_rng_u64(&rng) % 200);
        while (n + 4 < sizeof text && want--)
            n += mlxr_utf8_encode(random_cp(&rng), text + n);
        ids t = tok_ids(v, text, n, false, false);
        size_t dl = 0;
        char *d = decode(v, t.a, t.n, &dl);
        if (lossless(v) && (dl != n || memcmp(d, text, n))) {
            if (bad++ < 3) {
                fprintf(stderr, "%s: round trip differs for ", name);
                print_escaped(text, n);
            }
        }
        check_stream(v, t.a, t.n, d, dl);
        free(d);
        free(t.a);
    }
    CHECK(bad == 0, "%s: %d random texts did not round-trip", name, bad);
    mlxr_vocab_free(v);
}

/* ---- special tokens -----------------------------------------------------------------------------
 */

static void test_specials(void) {
    /* gpt-2: <|endoftext|> (50256) is CONTROL: split out only with parse_special */
    mlxr_vocab *v = tok_load_vocab("gpt-2");
    if (v) {
        const char *s = "a<|endoftext|>b";
        ids plain = tok_ids(v, s, strlen(s), false, false);
        ids parsed = tok_ids(v, s, strlen(s), false, true);
        bool has = false;
        for (size_t i = 0; i < plain.n; i++)
            has |= plain.a[i] == 50256;
        CHECK(!has && plain.n > 3, "no control token without parse_special");
        CHECK(parsed.n == 3 && parsed.a[1] == 50256, "control token with parse_special (%zu)",
              parsed.n);
        free(plain.a);
        free(parsed.a);
        /* add_special: gpt-2 adds no BOS (llama.cpp's BPE default) */
        ids h = tok_ids(v, "Hello", 5, true, false);
        CHECK(h.n == 1 && h.a[0] == 15496, "gpt-2 Hello = 15496, no BOS");
        free(h.a);
        mlxr_vocab_free(v);
    }
    /* deepseek-coder: add_bos_token true -> BOS 32013 with add_special */
    v = tok_load_vocab("deepseek-coder");
    if (v) {
        ids h = tok_ids(v, "Hello", 5, true, false);
        CHECK(h.n >= 2 && h.a[0] == 32013, "deepseek-coder BOS");
        free(h.a);
        mlxr_vocab_free(v);
    }
    /* bert-bge: add_special wraps in [CLS] 101 ... [SEP] 102 */
    v = tok_load_vocab("bert-bge");
    if (v) {
        ids h = tok_ids(v, "Hello world", 11, true, false);
        CHECK(h.n == 4 && h.a[0] == 101 && h.a[1] == 7592 && h.a[2] == 2088 && h.a[3] == 102,
              "bert CLS/SEP");
        free(h.a);
        const char *s = "[CLS] hi [SEP]";
        ids plain = tok_ids(v, s, strlen(s), false, false);
        ids parsed = tok_ids(v, s, strlen(s), false, true);
        CHECK(plain.n > 0 && plain.a[0] != 101, "bert: [CLS] in text is not special by default");
        CHECK(parsed.n >= 3 && parsed.a[0] == 101 && parsed.a[parsed.n - 1] == 102,
              "bert: [CLS] with parse_special");
        free(plain.a);
        free(parsed.a);
        mlxr_vocab_free(v);
    }
}

/* ---- threads: one read-only vocabulary, many callers -------------------------------------------
 */

typedef struct thread_job {
    const mlxr_vocab *v;
    const char *text;
    size_t len;
    ids want;
    int bad;
} thread_job;

static void *thread_main(void *p) {
    thread_job *j = p;
    for (int r = 0; r < 20; r++) {
        int32_t out[4096];
        size_t n = 0;
        mlxr_status st =
            mlxr_vocab_tokenize(j->v, j->text, j->len, true, false, out, 4096, &n, NULL);
        if (st || n != j->want.n || memcmp(out, j->want.a, n * sizeof *out)) j->bad++;
    }
    return NULL;
}

static void test_threads(void) {
    const char *text = "Hello, y'all! How are you \xf0\x9f\x98\x81 ?\xe6\x88\x91\xe6\x83\xb3 "
                       "F\xc3\xbchrer 3333 ------=======\n\n  x";
    const char *names[] = {"gpt-2", "bert-bge", "llama-spm", "deepseek-coder"};
    for (size_t k = 0; k < 4; k++) {
        mlxr_vocab *v = tok_load_vocab(names[k]);
        if (!v) continue;
        thread_job jobs[4];
        pthread_t th[4];
        ids want = tok_ids(v, text, strlen(text), true, false);
        for (int i = 0; i < 4; i++) {
            jobs[i] = (thread_job){v, text, strlen(text), want, 0};
            pthread_create(&th[i], NULL, thread_main, &jobs[i]);
        }
        int bad = 0;
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            bad += jobs[i].bad;
        }
        CHECK(bad == 0, "%s: %d concurrent calls differ", names[k], bad);
        free(want.a);
        mlxr_vocab_free(v);
    }
}

int main(void) {
    uint64_t seed = test_seed();
    const char *names[] = {"llama-spm", "phi-3", "gpt-2", "deepseek-coder", "falcon", "bert-bge"};
    for (size_t i = 0; i < 6; i++)
        test_vectors(names[i]);
    for (size_t i = 0; i < 6; i++)
        test_random_round_trips(names[i], seed + i);
    test_specials();
    test_threads();
    return test_finish("tokenizer_vectors");
}
