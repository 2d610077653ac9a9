/*
 * test_kv_q8.c - attention over a paged Q8_0 KV cache (kernels/kv_q8.h):
 *  1. the V-sum kernel of every ISA level this CPU has against mlxr_kv_q8_pv_ref on the same
 *     bytes: |fast - ref| <= (n + 2) * FLT_EPSILON * sum_p |w_p * v_p[d]|, the rounding bound of
 *     two n-term sums in the same order (the FMA rounds once where the reference rounds twice);
 *     a lost or doubled term is orders of magnitude larger;
 *  2. the fast path (mlxr_attn_q8 with each level's kernels) against mlxr_attn_q8_ref on random
 *     paged caches: head sizes 32..128, odd lengths, several blocks in a shuffled pool, GQA (the
 *     query heads of one KV head read the same rows), 1 to 32 queries per task:
 *     |fast - ref| <= 1e-5 with |v| <= 1 (measured up to 5e-7: the scores differ by float
 *     reordering of the per-block sums only);
 *  3. one query's result does not depend on where its blocks lie in the pool (bitwise), the
 *     property batch invariance relies on;
 *  4. the reference against float attention on the unquantized Q, K, V: within 0.05 with
 *     |v| <= 1 (measured up to 0.02; Q8_0 rounds each value to 1/254 of its block's largest
 *     magnitude, and the softmax of scores up to ~10 amplifies the Q.K rounding).
 * Inputs are fresh random numbers from test_seed() (MLXR_SEED reproduces a run).
 */
#include <float.h>
#include <math.h>

#include "kernels/kv_q8.h"
#include "test.h"
#include "util/fp16.h"

#define BLOCK 32

static uint64_t rng;
static double g_fast, g_float; /* largest differences seen, printed at the end */

/* ---- 1. V sums ------------------------------------------------------------------------------ */

static void test_pv(mlxr_isa isa) {
    const int64_t hds[] = {32, 64, 96, 128, 256};
    const int64_t ns[] = {1, 2, 7, 32, 33, 100};
    const mlxr_kv_q8_pv_fn pv = mlxr_kv_q8_pv_select(isa);
    for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++) {
            const int64_t hd = hds[a], n = ns[b];
            const size_t vs = (size_t)hd / 32 * sizeof(mlxr_block_q8_0) + 34 * (b % 2); /* padded */
            uint8_t *v = malloc((size_t)n * vs);
            float *x = malloc((size_t)hd * sizeof *x), *w = malloc((size_t)n * sizeof *w);
            float *o_ref = malloc((size_t)hd * sizeof *o_ref), *o = malloc((size_t)hd * sizeof *o);
            float *mag = calloc((size_t)hd, sizeof *mag);
            for (int64_t p = 0; p < n; p++) {
                const float amp = test_rng_f32(&rng, 0.01f, 10.0f);
                for (int64_t d = 0; d < hd; d++)
                    x[d] = test_rng_f32(&rng, -amp, amp);
                mlxr_quantize_q8_0_ref(x, v + (size_t)p * vs, hd);
                w[p] = test_rng_f32(&rng, 0.0f, 1.0f);
                float dq[256];
                mlxr_dequantize_q8_0_ref(v + (size_t)p * vs, dq, hd);
                for (int64_t d = 0; d < hd; d++)
                    mag[d] += fabsf(w[p] * dq[d]);
            }
            for (int64_t d = 0; d < hd; d++)
                o_ref[d] = o[d] = test_rng_f32(&rng, -1.0f, 1.0f);
            for (int64_t d = 0; d < hd; d++)
                mag[d] += fabsf(o[d]);
            mlxr_kv_q8_pv_ref(hd, n, v, vs, w, o_ref);
            pv(hd, n, v, vs, w, o);
            int bad = 0;
            for (int64_t d = 0; d < hd; d++) {
                const double tol = (double)(n + 2) * FLT_EPSILON * mag[d] + 1e-30;
                if (fabs((double)o[d] - o_ref[d]) > tol && bad++ < 3)
                    fprintf(stderr, "  %s pv hd %lld n %lld d %lld: %.9g vs ref %.9g\n",
                            mlxr_isa_name(isa), (long long)hd, (long long)n, (long long)d, o[d],
                            o_ref[d]);
            }
            CHECK(bad == 0, "%s pv hd %lld n %lld: %d outputs off", mlxr_isa_name(isa),
                  (long long)hd, (long long)n, bad);
            free(v), free(x), free(w), free(o_ref), free(o), free(mag);
        }
}

/* ---- 2-4. the whole path ------------------------------------------------------------------- */

typedef struct cache {
    int32_t hd, n_head, n_head_kv, n_block, n_pos;
    size_t row_bytes;
    uint8_t *k, *v; /* [n_block * BLOCK][row_bytes], all KV heads */
    float *kf, *vf; /* [n_pos][kv_dim] the unquantized values, by sequence position */
    int32_t *table; /* [blocks of the sequence] */
} cache;

/* A cache of n_pos positions in a pool of spare + ceil(n_pos/32) blocks, in a shuffled order
 * that keeps some neighbours together (runs) and splits others. */
static void cache_make(cache *c, int32_t hd, int32_t n_head_kv, int32_t n_pos, int32_t spare) {
    c->hd = hd, c->n_head_kv = n_head_kv, c->n_pos = n_pos;
    const int32_t kv_dim = hd * n_head_kv, nb = (n_pos + BLOCK - 1) / BLOCK;
    c->n_block = nb + spare;
    c->row_bytes = (size_t)kv_dim / 32 * sizeof(mlxr_block_q8_0);
    const size_t pool = (size_t)c->n_block * BLOCK * c->row_bytes;
    c->k = calloc(pool, 1), c->v = calloc(pool, 1);
    c->kf = malloc((size_t)n_pos * kv_dim * sizeof(float));
    c->vf = malloc((size_t)n_pos * kv_dim * sizeof(float));
    c->table = malloc((size_t)nb * sizeof *c->table);
    int32_t *perm = malloc((size_t)c->n_block * sizeof *perm);
    for (int32_t i = 0; i < c->n_block; i++)
        perm[i] = i;
    for (int32_t i = c->n_block - 1; i > 0; i--) { /* shuffle, but keep about half the pairs */
        if (test_rng_u64(&rng) % 2) continue;
        const int32_t j = (int32_t)(test_rng_u64(&rng) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    memcpy(c->table, perm, (size_t)nb * sizeof *perm);
    free(perm);
    for (int32_t p = 0; p < n_pos; p++) {
        const size_t row = (size_t)c->table[p / BLOCK] * BLOCK + (size_t)(p % BLOCK);
        float *kr = c->kf + (size_t)p * kv_dim, *vr = c->vf + (size_t)p * kv_dim;
        for (int32_t d = 0; d < kv_dim; d++) {
            kr[d] = test_rng_f32(&rng, -2.0f, 2.0f);
            vr[d] = test_rng_f32(&rng, -1.0f, 1.0f);
        }
        mlxr_quantize_q8_0_ref(kr, c->k + row * c->row_bytes, kv_dim);
        mlxr_quantize_q8_0_ref(vr, c->v + row * c->row_bytes, kv_dim);
    }
}

static void cache_free(cache *c) {
    free(c->k), free(c->v), free(c->kf), free(c->vf), free(c->table);
}

static mlxr_attn_q8_args args(const cache *c, int32_t kvh, int32_t nq, int32_t pos0, const float *q,
                              size_t ldq, float *out, size_t ldo) {
    const size_t off = (size_t)kvh * (size_t)c->hd / 32 * sizeof(mlxr_block_q8_0);
    mlxr_attn_q8_args a = {c->hd,
                           nq,
                           pos0,
                           q,
                           ldq,
                           c->k + off,
                           c->v + off,
                           c->row_bytes,
                           c->table,
                           BLOCK,
                           1.0f / sqrtf((float)c->hd),
                           out,
                           ldo};
    return a;
}

/* Float attention of one query on the unquantized cache (double sums). */
static void attn_float(const cache *c, int32_t kvh, const float *q, int32_t n, float *out) {
    const int32_t kv_dim = c->hd * c->n_head_kv;
    double *s = malloc((size_t)n * sizeof *s), mx = -INFINITY, sum = 0;
    for (int32_t p = 0; p < n; p++) {
        double d = 0;
        for (int32_t i = 0; i < c->hd; i++)
            d += (double)q[i] * c->kf[(size_t)p * kv_dim + (size_t)kvh * c->hd + i];
        s[p] = d / sqrt((double)c->hd);
        if (s[p] > mx) mx = s[p];
    }
    for (int32_t p = 0; p < n; p++)
        sum += s[p] = exp(s[p] - mx);
    for (int32_t i = 0; i < c->hd; i++) {
        double o = 0;
        for (int32_t p = 0; p < n; p++)
            o += s[p] / sum * c->vf[(size_t)p * kv_dim + (size_t)kvh * c->hd + i];
        out[i] = (float)o;
    }
    free(s);
}

static void test_attn(const mlxr_kernels *kt, int32_t hd, int32_t n_pos, int32_t nq) {
    const int32_t n_head_kv = 2, group = 3, n_head = n_head_kv * group, E = n_head * hd;
    cache c;
    cache_make(&c, hd, n_head_kv, n_pos, 3);
    const int32_t pos0 = n_pos - nq;
    float *q = malloc((size_t)nq * E * sizeof *q);
    float *o_ref = malloc((size_t)nq * E * sizeof *o_ref), *o = malloc((size_t)nq * E * sizeof *o);
    for (int32_t i = 0; i < nq * E; i++)
        q[i] = test_rng_f32(&rng, -3.0f, 3.0f);
    void *scratch = malloc(mlxr_attn_q8_scratch(nq, n_pos, hd));
    const mlxr_attn_q8_kernels k = {kt->type[MLXR_DTYPE_Q8_0].from_float,
                                    kt->type[MLXR_DTYPE_Q8_0].gemm, mlxr_kv_q8_pv_select(kt->isa)};
    for (int32_t head = 0; head < n_head; head++) {
        const int32_t kvh = head / group;
        mlxr_attn_q8_args a = args(&c, kvh, nq, pos0, q + (size_t)head * hd, (size_t)E,
                                   o_ref + (size_t)head * hd, (size_t)E);
        mlxr_attn_q8_ref(&a, scratch);
        a.out = o + (size_t)head * hd;
        mlxr_attn_q8(&k, &a, scratch);
    }
    int bad = 0;
    double worst = 0, worst_f = 0;
    for (int32_t i = 0; i < nq * E; i++) {
        const double d = fabs((double)o[i] - o_ref[i]);
        if (d > worst) worst = d;
        if (!(d <= 1e-5) && bad++ < 3)
            fprintf(stderr, "  %s hd %d n %d nq %d out %d: %.9g vs ref %.9g\n",
                    mlxr_isa_name(kt->isa), hd, n_pos, nq, i, o[i], o_ref[i]);
    }
    if (worst > g_fast) g_fast = worst;
    CHECK(bad == 0, "%s attention hd %d n %d nq %d: %d outputs off (worst %.3g)",
          mlxr_isa_name(kt->isa), hd, n_pos, nq, bad, worst);

    /* 3: the last query alone, its blocks moved to consecutive pool blocks: bitwise the same */
    {
        const int32_t nb = (n_pos + BLOCK - 1) / BLOCK, head = n_head - 1, kvh = head / group;
        const size_t blk = (size_t)BLOCK * c.row_bytes;
        uint8_t *k2 = malloc((size_t)nb * blk), *v2 = malloc((size_t)nb * blk);
        int32_t *t2 = malloc((size_t)nb * sizeof *t2);
        for (int32_t b = 0; b < nb; b++) {
            memcpy(k2 + (size_t)b * blk, c.k + (size_t)c.table[b] * blk, blk);
            memcpy(v2 + (size_t)b * blk, c.v + (size_t)c.table[b] * blk, blk);
            t2[b] = b;
        }
        const float *ql = q + (size_t)(nq - 1) * E + (size_t)head * hd;
        float a1[256], a2[256];
        mlxr_attn_q8_args a = args(&c, kvh, 1, n_pos - 1, ql, 0, a1, 0);
        mlxr_attn_q8(&k, &a, scratch);
        const size_t off = (size_t)kvh * (size_t)hd / 32 * sizeof(mlxr_block_q8_0);
        a.k = k2 + off, a.v = v2 + off, a.table = t2, a.out = a2;
        mlxr_attn_q8(&k, &a, scratch);
        CHECK(!memcmp(a1, a2, (size_t)hd * sizeof *a1),
              "%s hd %d n %d: one query's result depends on the pool layout",
              mlxr_isa_name(kt->isa), hd, n_pos);
        free(k2), free(v2), free(t2);
    }

    /* 4: the reference against float math, on every query of every head */
    for (int32_t j = 0; j < nq; j++)
        for (int32_t head = 0; head < n_head; head++) {
            float f[256];
            attn_float(&c, head / group, q + (size_t)j * E + (size_t)head * hd, pos0 + j + 1, f);
            for (int32_t i = 0; i < hd; i++) {
                const double d = fabs((double)f[i] - o_ref[(size_t)j * E + (size_t)head * hd + i]);
                if (d > worst_f) worst_f = d;
            }
        }
    if (worst_f > g_float) g_float = worst_f;
    CHECK(worst_f <= 0.05, "hd %d n %d nq %d: reference vs float attention %.4f > 0.05", hd, n_pos,
          nq, worst_f);
    free(q), free(o_ref), free(o), free(scratch);
    cache_free(&c);
}

int main(void) {
    rng = test_seed();
    const int32_t hds[] = {32, 64, 128};
    const int32_t lens[] = {1, 5, 31, 33, 97, 200};
    const int32_t nqs[] = {1, 5, 32};
    for (int isa = MLXR_ISA_SCALAR; isa <= (int)mlxr_cpu_isa(); isa++) {
        mlxr_kernels kt;
        mlxr_kernels_init(&kt, (mlxr_isa)isa);
        test_pv(kt.isa);
        for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
            for (size_t b = 0; b < sizeof lens / sizeof *lens; b++)
                for (size_t c = 0; c < sizeof nqs / sizeof *nqs; c++)
                    if (nqs[c] <= lens[b]) test_attn(&kt, hds[a], lens[b], nqs[c]);
    }
    fprintf(stderr, "largest |fast - ref| %.3g (bound 1e-5), |ref - float| %.4f (bound 0.05)\n",
            g_fast, g_float);
    return test_finish("kernels_kv_q8");
}
