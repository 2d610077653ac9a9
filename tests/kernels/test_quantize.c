/*
 * test_quantize.c - the weight quantizers (kernels/quantize.h) and the per-tensor type rules
 * (model/quantize.h).
 *
 * 1. Against llama.cpp (independent reference): every weight tensor of the shared pydoc-7M F16
 *    model, quantized with our encoder of the type llama-quantize chose, must give exactly the
 *    bytes of the pydoc-7M Q8_0, Q4_0 and Q4_K_M files that llama-quantize wrote (types Q8_0,
 *    Q4_0, Q4_K, Q6_K). The same files' per-tensor types (and the toy models') must be what our
 *    rules pick from the tensor names.
 * 2. Accuracy, for every type, on fresh random rows (seed printed; MLXR_SEED reproduces):
 *    normal, uniform, normal with 1 % outliers (x20), tiny (1e-3 scale), all zeros, constant.
 *    Rows are quantized and decoded with the scalar to_float of the dispatch table (a type whose
 *    decoder is not registered is skipped with a note), and the relative RMS error
 *    rms(x - dq(q(x))) / rms(x) must stay below the type's bound (table BOUNDS below, with why).
 *    All-zero rows must decode to exact zeros.
 * 3. The decoded values lie on the type's grid: within each sub-block (the unit that has its own
 *    scale) there are at most 2^bits distinct values, and for IQ4_NL each value is d times an
 *    entry of the non-linear table.
 * 4. Idempotence where the algorithm guarantees it (the 32-block types Q8_0, Q4_0, Q4_1, Q5_0,
 *    Q5_1: the block's extreme values are exactly on the grid, so the same scale is found again):
 *    quantizing the decoded values gives the same decoded values.
 */
#include <math.h>

#include "format/dtype.h"
#include "format/gguf.h"
#include "kernels/kernels.h"
#include "kernels/quantize.h"
#include "model/quantize.h"
#include "test.h"
#include "util/fp16.h"

/*
 * Bounds on the relative RMS error of normal and uniform rows (outlier rows: 2.5 times the bound,
 * since blocks holding a x20 outlier get a ~10x coarser step; tiny rows: +0.5 %, for the f16
 * scales that become subnormal; constant rows: 0.2 %, the f16 rounding of the scale). Why these
 * sizes: a uniform quantizer with step s has RMS error s / sqrt(12). Q8_0 on 32 normal values has
 * s = amax / 127 with amax about 2.2 sigma, hence 0.50 %; the 4-bit absmax types have s = amax / 8
 * (about 8 %), the 5-bit ones half that, Q4_1/Q5_1 slightly better (range max - min over 15/31
 * steps). The K-quants fit scale and min per 16/32-value sub-block by search, a little better than
 * their 32-block cousins; Q2_K (4 levels) and Q3_K (8 levels) are coarse by design; IQ4's
 * non-linear grid beats the 4-bit linear types. Each bound is the measured error (n = 4096, in the
 * comment) plus about 25 % for other seeds.
 */
typedef struct qtype {
    mlxr_dtype t;
    const char *name;
    int block;    /* elements per block */
    int sub;      /* elements per sub-block with its own scale */
    int levels;   /* distinct values a sub-block can hold */
    double bound; /* relative RMS error bound */
    bool idempotent;
} qtype;

static const qtype TYPES[] = {
    {MLXR_DTYPE_Q8_0, "Q8_0", 32, 32, 255, 0.0065, true},     /* measured 0.53 % */
    {MLXR_DTYPE_Q4_0, "Q4_0", 32, 32, 16, 0.11, true},        /* 8.7 % */
    {MLXR_DTYPE_Q4_1, "Q4_1", 32, 32, 16, 0.10, true},        /* 7.9 % */
    {MLXR_DTYPE_Q5_0, "Q5_0", 32, 32, 32, 0.053, true},       /* 4.2 % */
    {MLXR_DTYPE_Q5_1, "Q5_1", 32, 32, 32, 0.048, true},       /* 3.8 % */
    {MLXR_DTYPE_Q2_K, "Q2_K", 256, 16, 4, 0.36, false},       /* 29 % */
    {MLXR_DTYPE_Q3_K, "Q3_K", 256, 16, 8, 0.185, false},      /* 14.8 % */
    {MLXR_DTYPE_Q4_K, "Q4_K", 256, 32, 16, 0.09, false},      /* 7.2 % */
    {MLXR_DTYPE_Q5_K, "Q5_K", 256, 32, 32, 0.046, false},     /* 3.7 % */
    {MLXR_DTYPE_Q6_K, "Q6_K", 256, 16, 64, 0.022, false},     /* 1.8 % */
    {MLXR_DTYPE_IQ4_NL, "IQ4_NL", 32, 32, 16, 0.095, false},  /* 7.6 % */
    {MLXR_DTYPE_IQ4_XS, "IQ4_XS", 256, 32, 16, 0.095, false}, /* 7.7 % */
};
#define N_TYPES (int)(sizeof TYPES / sizeof TYPES[0])

enum { DIST_NORMAL, DIST_UNIFORM, DIST_OUTLIERS, DIST_TINY, DIST_ZERO, DIST_CONST, N_DIST };
static const char *const DIST_NAME[N_DIST] = {"normal", "uniform", "outliers",
                                              "tiny",   "zeros",   "constant"};

static uint64_t rng;

static float normal(void) {
    const double u1 = test_rng_f32(&rng, 1e-7f, 1.0f), u2 = test_rng_f32(&rng, 0.0f, 1.0f);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void fill(float *x, int64_t n, int dist) {
    for (int64_t i = 0; i < n; i++) {
        switch (dist) {
        case DIST_NORMAL:
            x[i] = normal();
            break;
        case DIST_UNIFORM:
            x[i] = test_rng_f32(&rng, -1.0f, 1.0f);
            break;
        case DIST_OUTLIERS:
            x[i] = normal() * (test_rng_u64(&rng) % 100 == 0 ? 20.0f : 1.0f);
            break;
        case DIST_TINY:
            x[i] = 1e-3f * normal();
            break;
        case DIST_ZERO:
            x[i] = 0.0f;
            break;
        default:
            x[i] = 0.37f;
            break;
        }
    }
}

static double rel_rms(const float *x, const float *y, int64_t n) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        s += (double)x[i] * x[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e / (double)n);
}

/* Distinct values per sub-block must not exceed the type's levels. */
static void check_grid(const qtype *q, const void *bytes, const float *y, int64_t n) {
    int worst = 0;
    for (int64_t s = 0; s < n; s += q->sub) {
        float seen[256];
        int k = 0;
        for (int j = 0; j < q->sub; j++) {
            int dup = 0;
            for (int i = 0; i < k && !dup; i++)
                dup = seen[i] == y[s + j];
            if (!dup && k < 256) seen[k++] = y[s + j];
        }
        if (k > worst) worst = k;
    }
    CHECK(worst <= q->levels, "%s: a sub-block of %d decodes to %d distinct values (max %d)",
          q->name, q->sub, worst, q->levels);
    if (q->t != MLXR_DTYPE_IQ4_NL) return;
    const mlxr_block_iq4_nl *b = bytes;
    int off = 0;
    for (int64_t i = 0; i < n && !off; i++) {
        const float d = mlxr_fp16_to_fp32(b[i / 32].d);
        int hit = 0;
        for (int v = 0; v < 16; v++)
            hit |= y[i] == d * (float)mlxr_kvalues_iq4nl[v];
        off = !hit;
    }
    CHECK(!off, "IQ4_NL: a decoded value is not d * kvalues[k]");
}

static void check_type(const qtype *q, const mlxr_kernels *k) {
    const mlxr_to_float_fn dec = k->type[q->t].to_float;
    if (!dec) {
        fprintf(stderr, "note: %s has no decoder registered yet; accuracy not tested\n", q->name);
        return;
    }
    const int64_t n = 4096;
    const size_t nbytes = mlxr_dtype_row_size(q->t, n);
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *y2 = malloc(n * sizeof *y2);
    void *b = malloc(nbytes), *b2 = malloc(nbytes);
    if (!x || !y || !y2 || !b || !b2) exit(2);
    for (int dist = 0; dist < N_DIST; dist++) {
        fill(x, n, dist);
        CHECK(mlxr_quantize_row(q->t, x, b, n) == MLXR_OK, "%s: quantize_row failed", q->name);
        dec(b, y, n);
        const double e = rel_rms(x, y, n);
        fprintf(stderr, "  %-7s %-9s rel. RMS error %.4f%%\n", q->name, DIST_NAME[dist], 100 * e);
        if (dist == DIST_ZERO) {
            CHECK(e == 0.0, "%s: zeros decode to non-zero (rms %g)", q->name, e);
            continue;
        }
        /* constant rows sit on the grid up to the f16 rounding of the scale (and a min) */
        const double bound = dist == DIST_CONST      ? 0.002
                             : dist == DIST_OUTLIERS ? 2.5 * q->bound
                             : dist == DIST_TINY     ? q->bound + 0.005
                                                     : q->bound;
        CHECK(e < bound, "%s %s: relative RMS error %.4f%% >= %.4f%%", q->name, DIST_NAME[dist],
              100 * e, 100 * bound);
        check_grid(q, b, y, n);
        if (!q->idempotent) continue;
        mlxr_quantize_row(q->t, y, b2, n);
        dec(b2, y2, n);
        int64_t diff = 0;
        for (int64_t i = 0; i < n; i++)
            diff += y[i] != y2[i];
        CHECK(diff == 0, "%s %s: re-quantizing decoded values changed %lld of them", q->name,
              DIST_NAME[dist], (long long)diff);
    }
    /* a bad length or a type without an encoder is refused */
    CHECK(mlxr_quantize_row(q->t, x, b, q->block + 1) == MLXR_ERR_INVALID, "%s: bad n", q->name);
    free(x);
    free(y);
    free(y2);
    free(b);
    free(b2);
}

/* ---- llama-quantize's files -------------------------------------------------------------------
 */

static char *tensor_name(const mlxr_gguf_tensor *t, char *buf, size_t cap) {
    snprintf(buf, cap, "%.*s", (int)t->name.len, t->name.data);
    return buf;
}

/* Quantize every tensor of src (F16/F32) to the type it has in ref; compare bytes. */
static void check_bytes_against(const char *src_rel, const char *ref_rel) {
    char *sp = test_data_path(src_rel), *rp = test_data_path(ref_rel);
    mlxr_gguf *src = NULL, *ref = NULL;
    mlxr_err err = {0};
    if (mlxr_gguf_open(sp, &src, &err) != MLXR_OK || mlxr_gguf_open(rp, &ref, &err) != MLXR_OK) {
        CHECK(0, "cannot open %s / %s: %s", sp, rp, err.msg);
        goto done;
    }
    int n_quant = 0;
    for (int64_t i = 0; i < mlxr_gguf_n_tensors(ref); i++) {
        const mlxr_gguf_tensor *rt = mlxr_gguf_tensor_at(ref, i);
        char name[256];
        const mlxr_gguf_tensor *st = mlxr_gguf_find_tensor(src, tensor_name(rt, name, sizeof name));
        CHECK(st != NULL, "%s: tensor %s missing from the source", ref_rel, name);
        if (!st || rt->type == st->type) continue;
        const int64_t n = rt->ne[0] * rt->ne[1] * rt->ne[2] * rt->ne[3];
        float *f = malloc((size_t)n * sizeof *f);
        uint8_t *q = malloc(rt->nbytes);
        if (!f || !q) exit(2);
        if (st->type == MLXR_DTYPE_F16)
            mlxr_to_float_f16_ref(st->data, f, n);
        else
            mlxr_to_float_f32_ref(st->data, f, n);
        CHECK(mlxr_quantize_row(rt->type, f, q, n) == MLXR_OK, "%s: %s", ref_rel, name);
        size_t diff = 0;
        for (size_t j = 0; j < rt->nbytes; j++)
            diff += q[j] != ((const uint8_t *)rt->data)[j];
        CHECK(diff == 0, "%s: %s (%s): %zu of %zu bytes differ from llama-quantize's", ref_rel,
              name, mlxr_dtype_name(rt->type), diff, rt->nbytes);
        n_quant++;
        free(f);
        free(q);
    }
    fprintf(stderr, "  %s: %d quantized tensors compared byte for byte\n", ref_rel, n_quant);
done:
    mlxr_gguf_close(src);
    mlxr_gguf_close(ref);
    free(sp);
    free(rp);
}

/* The per-tensor types our rules pick for ref's file type equal those in ref. */
static void check_rules_against(const char *ref_rel) {
    char *rp = test_data_path(ref_rel);
    mlxr_gguf *g = NULL;
    mlxr_err err = {0};
    uint32_t ftype = 0;
    int32_t n_layer = 0, n_head = 0, n_head_kv = 0;
    if (mlxr_gguf_open(rp, &g, &err) != MLXR_OK ||
        mlxr_gguf_get_u32(g, "general.file_type", &ftype, &err) != MLXR_OK ||
        mlxr_gguf_get_i32(g, "llama.block_count", &n_layer, &err) != MLXR_OK ||
        mlxr_gguf_get_i32(g, "llama.attention.head_count", &n_head, &err) != MLXR_OK ||
        mlxr_gguf_get_i32(g, "llama.attention.head_count_kv", &n_head_kv, &err) != MLXR_OK) {
        CHECK(0, "%s: %s", rp, err.msg);
        goto done;
    }
    mlxr_qrules r = {.ftype = (int32_t)ftype,
                     .base = mlxr_qpreset_base_type((int32_t)ftype),
                     .n_layer = n_layer,
                     .n_gqa = n_head / n_head_kv};
    char name[256];
    for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
        const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
        tensor_name(t, name, sizeof name);
        if (strstr(name, "attn_v.weight")) r.n_attention_wv++;
        if (!strcmp(name, "output.weight")) r.has_output = true;
    }
    int bad = 0;
    for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) { /* the files are in llama.cpp's order */
        const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
        tensor_name(t, name, sizeof name);
        bool fb;
        const mlxr_dtype want = mlxr_qrules_converts(name, t->n_dims)
                                    ? mlxr_qrules_pick(&r, name, t->ne[0], &fb)
                                    : MLXR_DTYPE_F32;
        if (want != t->type && ++bad <= 5)
            fprintf(stderr, "  %s: %s is %s, our rules say %s\n", ref_rel, name,
                    mlxr_dtype_name(t->type), mlxr_dtype_name(want));
    }
    CHECK(bad == 0, "%s: %d tensor types differ from llama-quantize's", ref_rel, bad);
done:
    mlxr_gguf_close(g);
    free(rp);
}

/* Rules on shapes no shared file has: a 32-layer Llama (7B-like) and a fallback. */
static void check_rules_synthetic(void) {
    mlxr_qrules r = {.ftype = MLXR_FTYPE_Q4_K_M,
                     .base = MLXR_DTYPE_Q4_K,
                     .n_layer = 32,
                     .n_gqa = 1,
                     .has_output = true,
                     .n_attention_wv = 32};
    /* use_more_bits(i, 32): 0-3, 28-31 and 6, 9, ..., 27 -> 16 layers at Q6_K */
    int n_q6 = 0;
    bool fb;
    for (int i = 0; i < 32; i++) {
        const mlxr_dtype t = mlxr_qrules_pick(&r, "blk.N.attn_v.weight", 4096, &fb);
        const bool more = i < 4 || i >= 28 || (i - 4) % 3 == 2;
        CHECK(t == (more ? MLXR_DTYPE_Q6_K : MLXR_DTYPE_Q4_K), "attn_v %d of 32: %s", i,
              mlxr_dtype_name(t));
        n_q6 += t == MLXR_DTYPE_Q6_K;
    }
    CHECK(n_q6 == 16, "Q4_K_M on 32 layers: %d attn_v at Q6_K, want 16", n_q6);
    /* rows of 64 (stories260K) cannot hold 256-blocks: Q4_K -> Q5_0, Q6_K output -> Q8_0 */
    CHECK(mlxr_qrules_pick(&r, "blk.0.attn_q.weight", 64, &fb) == MLXR_DTYPE_Q5_0 && fb, "fb Q4_K");
    CHECK(mlxr_qrules_pick(&r, "output.weight", 64, &fb) == MLXR_DTYPE_Q8_0, "fb output");
    r.ftype = MLXR_FTYPE_Q3_K_S;
    r.base = MLXR_DTYPE_Q3_K;
    CHECK(mlxr_qrules_pick(&r, "blk.0.attn_q.weight", 64, &fb) == MLXR_DTYPE_IQ4_NL, "fb Q3_K");
    r.ftype = MLXR_FTYPE_Q4_0;
    r.base = MLXR_DTYPE_Q4_0;
    CHECK(mlxr_qrules_pick(&r, "blk.0.attn_q.weight", 48, &fb) == MLXR_DTYPE_COUNT, "no fallback");
    CHECK(!mlxr_qrules_converts("blk.0.attn_norm.weight", 1), "norm kept");
    CHECK(!mlxr_qrules_converts("blk.0.ffn_gate_inp.weight", 2), "router kept");
    CHECK(mlxr_qrules_converts("token_embd.weight", 2), "embeddings converted");
    CHECK(mlxr_quantize_preset_ftype("q4_k_m") == 15 && mlxr_quantize_preset_ftype("Q4_K") == 15 &&
              mlxr_quantize_preset_ftype("IQ4_XS") == 30 && mlxr_quantize_preset_ftype("Q9") == -1,
          "preset names");
}

int main(void) {
    rng = test_seed();
    mlxr_kernels k;
    mlxr_kernels_init(&k, MLXR_ISA_SCALAR);
    fprintf(stderr, "accuracy on random rows:\n");
    for (int i = 0; i < N_TYPES; i++)
        check_type(&TYPES[i], &k);
    CHECK(mlxr_quantize_row(MLXR_DTYPE_IQ2_XXS, NULL, NULL, 256) == MLXR_ERR_UNSUPPORTED,
          "IQ2_XXS has no encoder");

    fprintf(stderr, "bytes and types against llama-quantize:\n");
    check_bytes_against("models/pydoc-7M/pydoc-7M-f16.gguf", "models/pydoc-7M/pydoc-7M-q8_0.gguf");
    check_bytes_against("models/pydoc-7M/pydoc-7M-f16.gguf", "models/pydoc-7M/pydoc-7M-q4_0.gguf");
    check_bytes_against("models/pydoc-7M/pydoc-7M-f16.gguf",
                        "models/pydoc-7M/pydoc-7M-q4_k_m.gguf");
    static const char *const RULE_FILES[] = {"models/pydoc-7M/pydoc-7M-q8_0.gguf",
                                             "models/pydoc-7M/pydoc-7M-q4_0.gguf",
                                             "models/pydoc-7M/pydoc-7M-q4_k_m.gguf",
                                             "models/toy-q8_0.gguf",
                                             "models/toy-q4_0.gguf",
                                             "models/toy-q4_k_m.gguf",
                                             "models/toy-q6_k.gguf",
                                             "models/toy-f16.gguf"};
    for (size_t i = 0; i < sizeof RULE_FILES / sizeof RULE_FILES[0]; i++)
        check_rules_against(RULE_FILES[i]);
    check_rules_synthetic();
    return test_finish("test_quantize");
}
