/*
 * gen_llama.c - mlxr-gen-llama: write a Llama-architecture GGUF with random weights, for
 * benchmarks (speed only: the model's output is gibberish by design).
 *
 *   mlxr-gen-llama -o FILE --type f16|q8_0|q4_0 [--preset 1b|3b|7b|8b|tiny] [--seed N]
 *                  [--threads N]
 *                  [--n-embd N] [--n-layer N] [--n-head N] [--n-head-kv N] [--n-ff N]
 *                  [--n-vocab N] [--n-ctx N]
 *
 * Presets (explicit flags override single fields):
 *   1b    n_embd 2048, n_layer 16, n_head 32, n_head_kv 8 (head_dim 64), n_ff 8192,
 *         n_vocab 32000, n_ctx 2048: Llama-3.2-1B's blocks with a Llama-2/TinyLlama-size
 *         vocabulary and an untied output matrix; 1,104,218,112 parameters (16 blocks of
 *         60.8 M, embedding and output 65.5 M each). Files: f16 2.21 GB, q8_0 1.17 GB,
 *         q4_0 0.62 GB.
 *   3b    n_embd 3072, n_layer 28, n_head 24, n_head_kv 8 (head_dim 128), n_ff 8192,
 *         n_vocab 128256, n_ctx 4096: Llama-3.2-3B's shapes (context cut to 4096), with an
 *         untied output (the real model ties it, 3.21 B); 3,606,752,256 parameters. Files: f16
 *         7.21 GB, q8_0 3.83 GB, q4_0 2.03 GB.
 *   7b    n_embd 4096, n_layer 32, n_head 32, n_head_kv 32 (head_dim 128, no GQA), n_ff 11008,
 *         n_vocab 32000, n_ctx 4096: Llama-2-7B; 6,738,415,616 parameters, as the real model.
 *         Files: f16 13.48 GB, q8_0 7.16 GB, q4_0 3.79 GB.
 *   8b    n_embd 4096, n_layer 32, n_head 32, n_head_kv 8 (head_dim 128), n_ff 14336,
 *         n_vocab 128256, n_ctx 8192: Llama-3-8B / 3.1-8B (context cut to 8192);
 *         8,030,261,248 parameters, as the real model. Files: f16 16.06 GB, q8_0 8.53 GB,
 *         q4_0 4.52 GB.
 *   tiny  n_embd 256, n_layer 4, n_head 8, n_head_kv 4, n_ff 768, n_vocab 4096, n_ctx 512
 *         (the shapes of the test data's toy models; 5.2 M parameters), for quick runs.
 * The big presets only fix shapes; writing them takes the disk space above and minutes of CPU.
 *
 * File: GGUF v3 in llama.cpp's names and layouts. Metadata: general.architecture "llama",
 * general.name, general.file_type (1 F16, 7 Q8_0, 2 Q4_0), llama.* hyperparameters (rope base
 * 10000, RMS eps 1e-5, rope dimension = head_dim), and a synthetic SentencePiece vocabulary
 * (tokenizer.ggml.model "llama"): 0 <unk> (type 2), 1 <s> and 2 </s> (type 3), 3..258
 * <0x00>..<0xFF> (type 6), then normal pieces (type 1): "▁", then "▁a", "a", "▁b", "b", ...,
 * "▁z", "z", "▁aa", "aa", ... (all distinct); scores 0 for ids 0..258 and -(i - 259) for piece i,
 * as SentencePiece exports them; BOS 1, EOS 2, UNK 0, add_bos_token true, add_eos_token false.
 * Tensors, in this order: token_embd.weight [n_embd, n_vocab], per block N: blk.N.attn_norm
 * [n_embd] F32, attn_q [n_embd, n_embd], attn_k and attn_v [n_embd, n_head_kv * head_dim],
 * attn_output [n_embd, n_embd], ffn_norm [n_embd] F32, ffn_gate and ffn_up [n_embd, n_ff],
 * ffn_down [n_ff, n_embd]; output_norm.weight [n_embd] F32, output.weight [n_embd, n_vocab]
 * (ne[0] first). Every matrix, token_embd and output included, has the chosen type (llama.cpp's
 * own q4_0 files keep output.weight in Q6_K; this one does not, so every matrix uses one kernel).
 *
 * Weights ~ N(0, 0.02) (Box-Muller over xoshiro256**), norm gains 1.0. Each row's generator is
 * seeded from (seed, tensor index, row), so the bytes do not depend on the thread count or on
 * how the writer chunks the rows. Rows are generated, encoded with the reference kernels
 * (mlxr_from_float_f16_ref, mlxr_quantize_q8_0_ref, mlxr_quantize_q4_0_ref) and streamed to the
 * file a few MiB at a time, so memory stays small whatever the model size. The written file is
 * then opened with the GGUF reader and checked against the expected tensor count and size.
 */
#include "format/dtype.h"
#include "format/gguf.h"
#include "format/gguf_write.h"
#include "kernels/kernels.h"
#include "util/err.h"
#include "util/rng.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_SPECIAL 3 /* <unk> <s> </s> */
#define N_BYTE 256
#define FIRST_PIECE (N_SPECIAL + N_BYTE) /* 259 */
#define WEIGHT_STD 0.02f
#define MAX_THREADS 64

/* ---- hyperparameters ------------------------------------------------------------------------- */

typedef struct hparams {
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
} hparams;

static const hparams PRESET_1B = {2048, 16, 32, 8, 8192, 32000, 2048};
static const hparams PRESET_3B = {3072, 28, 24, 8, 8192, 128256, 4096};
static const hparams PRESET_7B = {4096, 32, 32, 32, 11008, 32000, 4096};
static const hparams PRESET_8B = {4096, 32, 32, 8, 14336, 128256, 8192};
static const hparams PRESET_TINY = {256, 4, 8, 4, 768, 4096, 512};

typedef struct wtype {
    const char *name; /* as given to --type */
    mlxr_dtype dtype;
    uint32_t file_type; /* general.file_type (llama_ftype) */
    mlxr_from_float_fn encode;
} wtype;

static const wtype WTYPES[] = {
    {"f16", MLXR_DTYPE_F16, 1, mlxr_from_float_f16_ref},
    {"q8_0", MLXR_DTYPE_Q8_0, 7, mlxr_quantize_q8_0_ref},
    {"q4_0", MLXR_DTYPE_Q4_0, 2, mlxr_quantize_q4_0_ref},
};

/* ---- random numbers ---------------------------------------------------------------------------
 */

typedef mlxr_rng rng;

/* One stream per (seed, tensor, row), so rows can be generated in any order on any thread. */
static void rng_seed(rng *r, uint64_t seed, uint64_t stream, uint64_t row) {
    mlxr_rng_seed(r, seed ^ (stream * 0xd1b54a32d192ed03ull) ^ (row * 0x8cb92ba72f3d8dd7ull));
}

/* Uniform in (0, 1]: never 0, so log() below is finite. */
static double rng_unit(rng *r) {
    return ((double)(mlxr_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

/* n values ~ N(0, std^2) by the Box-Muller transform, two per pair of uniforms. */
static void fill_normal(rng *r, float *x, int64_t n, float std) {
    const double two_pi = 6.283185307179586;
    for (int64_t i = 0; i < n; i += 2) {
        double rad = sqrt(-2.0 * log(rng_unit(r))), ang = two_pi * rng_unit(r);
        x[i] = (float)(rad * cos(ang)) * std;
        if (i + 1 < n) x[i + 1] = (float)(rad * sin(ang)) * std;
    }
}

/* ---- tensor data ------------------------------------------------------------------------------
 */

/* How one tensor's rows are made: random N(0, std) or all ones, encoded in `type`. */
typedef struct tensor_gen {
    uint64_t seed, stream; /* stream: the tensor's index in the file */
    int64_t ne0;
    bool ones;
    const wtype *type; /* NULL: F32 */
    size_t row_size;
    int n_threads;
} tensor_gen;

/* One thread's share of a fill call: rows [row0 + ith, ...) stepping by nth. */
typedef struct fill_job {
    const tensor_gen *g;
    uint8_t *dst;
    int64_t row0, n_rows;
    int ith, nth;
    float *tmp; /* [ne0] */
} fill_job;

static void *fill_worker(void *arg) {
    fill_job *j = arg;
    const tensor_gen *g = j->g;
    for (int64_t r = j->ith; r < j->n_rows; r += j->nth) {
        uint8_t *out = j->dst + (size_t)r * g->row_size;
        float *x = g->type ? j->tmp : (float *)(void *)out;
        if (g->ones) {
            for (int64_t i = 0; i < g->ne0; i++)
                x[i] = 1.0f;
        } else {
            rng rg;
            rng_seed(&rg, g->seed, g->stream, (uint64_t)(j->row0 + r));
            fill_normal(&rg, x, g->ne0, WEIGHT_STD);
        }
        if (g->type) g->type->encode(x, out, g->ne0);
    }
    return NULL;
}

/* mlxr_gguf_fill_fn: rows split over up to n_threads threads (the calling one included). */
static mlxr_status fill_tensor(void *user, void *dst, int64_t row0, int64_t n_rows, mlxr_err *err) {
    const tensor_gen *g = user;
    int nth = g->n_threads;
    if (nth > n_rows) nth = (int)n_rows;
    if (nth < 1) nth = 1;
    fill_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    float *tmp = g->type ? malloc((size_t)nth * (size_t)g->ne0 * sizeof(float)) : NULL;
    if (g->type && !tmp) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for a row buffer");
    int started = 1;
    for (int t = 0; t < nth; t++)
        jobs[t] = (fill_job){g, dst, row0, n_rows, t, nth, tmp ? tmp + (size_t)t * g->ne0 : NULL};
    for (int t = 1; t < nth; t++) {
        if (pthread_create(&tid[t], NULL, fill_worker, &jobs[t]) != 0) break;
        started++;
    }
    /* threads that failed to start: their rows are done here */
    for (int t = started; t < nth; t++)
        fill_worker(&jobs[t]);
    fill_worker(&jobs[0]);
    for (int t = 1; t < started; t++)
        pthread_join(tid[t], NULL);
    free(tmp);
    return MLXR_OK;
}

/* ---- the vocabulary ---------------------------------------------------------------------------
 */

/* Piece i >= FIRST_PIECE: "▁", then "▁a", "a", "▁b", "b", ... in bijective base 26. */
static void piece_text(int64_t i, char *out, size_t cap) {
    int64_t k = i - FIRST_PIECE;
    if (k == 0) {
        snprintf(out, cap, "\xe2\x96\x81");
        return;
    }
    int64_t j = (k - 1) / 2;
    bool space = (k - 1) % 2 == 0;
    char word[16];
    int n = 0;
    for (int64_t v = j + 1; v > 0 && n < (int)sizeof word; v = (v - 1) / 26)
        word[n++] = (char)('a' + (v - 1) % 26);
    size_t o = 0;
    if (space) o += (size_t)snprintf(out, cap, "\xe2\x96\x81");
    while (n > 0 && o + 1 < cap)
        out[o++] = word[--n]; /* most significant letter first */
    out[o] = 0;
}

/* tokenizer.ggml.* for n_vocab tokens. */
static mlxr_status add_vocab(mlxr_gguf_writer *w, int64_t n_vocab, mlxr_err *err) {
    mlxr_status st = MLXR_ERR_NOMEM;
    size_t n = (size_t)n_vocab;
    char **tok = calloc(n, sizeof *tok);
    float *score = calloc(n, sizeof *score);
    int32_t *type = calloc(n, sizeof *type);
    if (!tok || !score || !type) {
        MLXR_FAIL(err, st, "out of memory for a %zu-token vocabulary", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        char buf[32];
        if (i == 0)
            snprintf(buf, sizeof buf, "<unk>");
        else if (i == 1)
            snprintf(buf, sizeof buf, "<s>");
        else if (i == 2)
            snprintf(buf, sizeof buf, "</s>");
        else if (i < FIRST_PIECE)
            snprintf(buf, sizeof buf, "<0x%02X>", (unsigned)(i - N_SPECIAL));
        else
            piece_text((int64_t)i, buf, sizeof buf);
        type[i] = i == 0 ? 2 : i < N_SPECIAL ? 3 : i < FIRST_PIECE ? 6 : 1;
        score[i] = i < FIRST_PIECE ? 0.0f : -(float)(i - FIRST_PIECE);
        if (!(tok[i] = strdup(buf))) {
            MLXR_FAIL(err, st, "out of memory for the vocabulary");
            goto done;
        }
    }
    if ((st = mlxr_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama", err)) ||
        (st = mlxr_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, n,
                                           err)) ||
        (st = mlxr_gguf_writer_add_arr_f32(w, "tokenizer.ggml.scores", score, n, err)) ||
        (st = mlxr_gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", type, n, err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1, err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2, err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0, err)) ||
        (st = mlxr_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true, err)) ||
        (st = mlxr_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", false, err)))
        goto done;
    st = MLXR_OK;
done:
    if (tok)
        for (size_t i = 0; i < n; i++)
            free(tok[i]);
    free(tok);
    free(score);
    free(type);
    return st;
}

/* ---- the model --------------------------------------------------------------------------------
 */

static mlxr_status add_hparams(mlxr_gguf_writer *w, const hparams *hp, const wtype *wt,
                               uint64_t seed, mlxr_err *err) {
    char name[128];
    snprintf(name, sizeof name, "mlxr-gen-llama %" PRId64 "x%" PRId64 " %s seed %" PRIu64,
             hp->n_layer, hp->n_embd, wt->name, seed);
    uint32_t head_dim = (uint32_t)(hp->n_embd / hp->n_head);
    mlxr_status st;
    if ((st = mlxr_gguf_writer_add_str(w, "general.architecture", "llama", err)) ||
        (st = mlxr_gguf_writer_add_str(w, "general.name", name, err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "general.file_type", wt->file_type, err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "llama.context_length", (uint32_t)hp->n_ctx, err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "llama.embedding_length", (uint32_t)hp->n_embd, err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "llama.block_count", (uint32_t)hp->n_layer, err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "llama.feed_forward_length", (uint32_t)hp->n_ff, err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "llama.attention.head_count", (uint32_t)hp->n_head,
                                       err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "llama.attention.head_count_kv", (uint32_t)hp->n_head_kv,
                                       err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "llama.rope.dimension_count", head_dim, err)) ||
        (st = mlxr_gguf_writer_add_f32(w, "llama.rope.freq_base", 10000.0f, err)) ||
        (st = mlxr_gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, err)) ||
        (st = mlxr_gguf_writer_add_u32(w, "llama.vocab_size", (uint32_t)hp->n_vocab, err)))
        return st;
    return add_vocab(w, hp->n_vocab, err);
}

/* Tensor specs live in an array owned by main, so the fill callbacks' user pointers stay valid
 * until the file is written. */
typedef struct model_tensors {
    tensor_gen *gen; /* [n] */
    size_t n, cap;
    int64_t n_params;
} model_tensors;

static mlxr_status add_one(mlxr_gguf_writer *w, model_tensors *mt, const char *name, int64_t ne0,
                           int64_t ne1, const wtype *wt, const tensor_gen *proto, mlxr_err *err) {
    if (mt->n == mt->cap) return MLXR_FAIL(err, MLXR_ERR_INTERNAL, "tensor table full");
    tensor_gen *g = &mt->gen[mt->n];
    *g = *proto;
    g->stream = mt->n;
    g->ne0 = ne0;
    g->ones = ne1 == 0; /* 1-D tensors are the RMSNorm gains */
    g->type = g->ones ? NULL : wt;
    mlxr_dtype dt = g->ones ? MLXR_DTYPE_F32 : wt->dtype;
    g->row_size = mlxr_dtype_row_size(dt, ne0);
    int64_t ne[2] = {ne0, ne1};
    mlxr_status st =
        mlxr_gguf_writer_add_tensor_fn(w, name, g->ones ? 1 : 2, ne, dt, fill_tensor, g, err);
    if (st != MLXR_OK) return st;
    mt->n++;
    mt->n_params += ne0 * (ne1 ? ne1 : 1);
    return MLXR_OK;
}

static mlxr_status add_tensors(mlxr_gguf_writer *w, const hparams *hp, const wtype *wt,
                               model_tensors *mt, const tensor_gen *proto, mlxr_err *err) {
    const int64_t n_embd = hp->n_embd, n_kv = hp->n_head_kv * (hp->n_embd / hp->n_head);
    mlxr_status st = add_one(w, mt, "token_embd.weight", n_embd, hp->n_vocab, wt, proto, err);
    for (int64_t l = 0; l < hp->n_layer && st == MLXR_OK; l++) {
        static const char *const names[] = {"attn_norm", "attn_q",      "attn_k",
                                            "attn_v",    "attn_output", "ffn_norm",
                                            "ffn_gate",  "ffn_up",      "ffn_down"};
        const int64_t shape[][2] = {{n_embd, 0},        {n_embd, n_embd},   {n_embd, n_kv},
                                    {n_embd, n_kv},     {n_embd, n_embd},   {n_embd, 0},
                                    {n_embd, hp->n_ff}, {n_embd, hp->n_ff}, {hp->n_ff, n_embd}};
        for (int i = 0; i < 9 && st == MLXR_OK; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%" PRId64 ".%s.weight", l, names[i]);
            st = add_one(w, mt, name, shape[i][0], shape[i][1], wt, proto, err);
        }
    }
    if (st == MLXR_OK) st = add_one(w, mt, "output_norm.weight", n_embd, 0, wt, proto, err);
    if (st == MLXR_OK) st = add_one(w, mt, "output.weight", n_embd, hp->n_vocab, wt, proto, err);
    return st;
}

/* Reopen the written file and check what the reader sees. */
static mlxr_status verify(const char *path, const hparams *hp, size_t n_tensors, uint64_t size,
                          mlxr_err *err) {
    mlxr_gguf *g = NULL;
    mlxr_status st = mlxr_gguf_open(path, &g, err);
    if (st != MLXR_OK) return st;
    uint32_t n_vocab = 0;
    const mlxr_gguf_tensor *out = mlxr_gguf_find_tensor(g, "output.weight");
    if (mlxr_gguf_n_tensors(g) != (int64_t)n_tensors || mlxr_gguf_file_size(g) != size || !out ||
        out->ne[1] != hp->n_vocab ||
        mlxr_gguf_get_u32(g, "llama.vocab_size", &n_vocab, err) != MLXR_OK ||
        n_vocab != (uint32_t)hp->n_vocab)
        st = MLXR_FAIL(err, MLXR_ERR_FORMAT, "'%s' read back differently than written", path);
    mlxr_gguf_close(g);
    return st;
}

/* ---- command line -----------------------------------------------------------------------------
 */

static void usage(FILE *f) {
    fprintf(f, "usage: mlxr-gen-llama -o FILE --type f16|q8_0|q4_0 [--preset 1b|3b|7b|8b|tiny]\n"
               "                      [--seed N] [--threads N] [--n-embd N] [--n-layer N] [--n-head N]\n"
               "                      [--n-head-kv N] [--n-ff N] [--n-vocab N] [--n-ctx N]\n"
               "Writes a Llama GGUF with random N(0, 0.02) weights for benchmarks.\n"
               "Presets: 1b (default; 2048/16 layers/32 heads/8 KV heads/8192/32000/2048,\n"
               "1.10 B parameters), 3b (Llama-3.2-3B shapes, untied output: 3.61 B), 7b\n"
               "(Llama-2-7B: 6.74 B), 8b (Llama-3-8B: 8.03 B), tiny (256/4/8/4/768/4096/512).\n");
}

static bool parse_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr,
                "mlxr-gen-llama: %s expects an integer in [%" PRId64 ", %" PRId64 "], got '%s'\n",
                flag, lo, hi, s ? s : "");
        return false;
    }
    *out = v;
    return true;
}

/* Shape rules the model code relies on; prints what is wrong. */
static bool check_hparams(const hparams *hp) {
    const char *why = NULL;
    if (hp->n_embd % hp->n_head)
        why = "n_embd must be a multiple of n_head";
    else if (hp->n_head % hp->n_head_kv)
        why = "n_head must be a multiple of n_head_kv";
    else if (hp->n_embd % 32 || hp->n_ff % 32)
        why = "n_embd and n_ff must be multiples of 32";
    else if ((hp->n_embd / hp->n_head) % 2)
        why = "head_dim must be even (RoPE pairs)";
    if (why) fprintf(stderr, "mlxr-gen-llama: %s\n", why);
    return why == NULL;
}

int main(int argc, char **argv) {
    hparams hp = PRESET_1B;
    const char *path = NULL, *type_name = NULL;
    int64_t seed = 1, threads = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t over[7]; /* explicit overrides, -1 = none */
    static const char *const over_flag[7] = {"--n-embd", "--n-layer", "--n-head", "--n-head-kv",
                                             "--n-ff",   "--n-vocab", "--n-ctx"};
    for (int i = 0; i < 7; i++)
        over[i] = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        const char *v = ++i < argc ? argv[i] : NULL; /* every other flag takes a value */
        bool ok = v != NULL;
        if (!v) {
            fprintf(stderr, "mlxr-gen-llama: %s needs a value\n", a);
        } else if (!strcmp(a, "-o")) {
            path = v;
        } else if (!strcmp(a, "--type")) {
            type_name = v;
        } else if (!strcmp(a, "--preset")) {
            if (!strcmp(v, "1b"))
                hp = PRESET_1B;
            else if (!strcmp(v, "3b"))
                hp = PRESET_3B;
            else if (!strcmp(v, "7b"))
                hp = PRESET_7B;
            else if (!strcmp(v, "8b"))
                hp = PRESET_8B;
            else if (!strcmp(v, "tiny"))
                hp = PRESET_TINY;
            else
                ok = false;
            if (!ok) fprintf(stderr, "mlxr-gen-llama: unknown preset '%s'\n", v);
        } else if (!strcmp(a, "--seed")) {
            ok = parse_int(a, v, 0, INT64_MAX, &seed);
        } else if (!strcmp(a, "--threads")) {
            ok = parse_int(a, v, 1, MAX_THREADS, &threads);
        } else {
            int k = 0;
            while (k < 7 && strcmp(a, over_flag[k]))
                k++;
            if (k < 7)
                ok = parse_int(a, v, 1, k == 5 ? INT32_MAX : 1 << 20, &over[k]);
            else
                ok = false;
            if (k == 7) fprintf(stderr, "mlxr-gen-llama: unknown argument '%s'\n", a);
        }
        if (!ok) {
            usage(stderr);
            return 2;
        }
    }
    int64_t *field[7] = {&hp.n_embd, &hp.n_layer, &hp.n_head, &hp.n_head_kv,
                         &hp.n_ff,   &hp.n_vocab, &hp.n_ctx};
    for (int k = 0; k < 7; k++)
        if (over[k] > 0) *field[k] = over[k];
    const wtype *wt = NULL;
    for (size_t i = 0; type_name && i < sizeof WTYPES / sizeof WTYPES[0]; i++)
        if (!strcmp(type_name, WTYPES[i].name)) wt = &WTYPES[i];
    if (!path || !wt) {
        fprintf(stderr, "mlxr-gen-llama: %s\n",
                !path ? "-o FILE is required" : "--type must be f16, q8_0 or q4_0");
        usage(stderr);
        return 2;
    }
    if (hp.n_vocab < FIRST_PIECE + 1) {
        fprintf(stderr, "mlxr-gen-llama: --n-vocab must be at least %d\n", FIRST_PIECE + 1);
        return 2;
    }
    if (!check_hparams(&hp)) return 2;

    mlxr_err err = {0};
    mlxr_status st;
    size_t cap = 3 + 9 * (size_t)hp.n_layer;
    model_tensors mt = {.gen = calloc(cap, sizeof(tensor_gen)), .cap = cap};
    mlxr_gguf_writer *w = mlxr_gguf_writer_new();
    tensor_gen proto = {.seed = (uint64_t)seed, .n_threads = (int)threads};
    uint64_t size = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!w || !mt.gen) {
        st = MLXR_FAIL(&err, MLXR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = add_hparams(w, &hp, wt, (uint64_t)seed, &err)) ||
        (st = add_tensors(w, &hp, wt, &mt, &proto, &err)) ||
        (st = mlxr_gguf_writer_file_size(w, &size, &err)))
        goto done;
    fprintf(stderr,
            "mlxr-gen-llama: %s: n_embd %" PRId64 ", n_layer %" PRId64 ", n_head %" PRId64
            ", n_head_kv %" PRId64 ", n_ff %" PRId64 ", n_vocab %" PRId64 ", n_ctx %" PRId64
            ", %s, %" PRId64 " parameters, %" PRIu64 " bytes\n",
            path, hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv, hp.n_ff, hp.n_vocab, hp.n_ctx,
            wt->name, mt.n_params, size);
    if ((st = mlxr_gguf_writer_write_file(w, path, &err)) ||
        (st = verify(path, &hp, mt.n, size, &err)))
        goto done;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "mlxr-gen-llama: wrote %zu tensors, %.2f GB in %.1f s\n", mt.n, size / 1e9,
            (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
done:
    if (st != MLXR_OK) fprintf(stderr, "mlxr-gen-llama: %s: %s\n", mlxr_status_str(st), err.msg);
    mlxr_gguf_writer_free(w);
    free(mt.gen);
    return st == MLXR_OK ? 0 : 1;
}
