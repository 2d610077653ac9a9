/*
 * repack_k.c - the interleaved Q4_Kx8 and Q6_Kx8 layouts (repack_k.h): the repacking done once at
 * model load, and the scalar definition of the products over them.
 *
 * Why: the plain Q4_K / Q6_K dot products spend much of their time on per-row work: each
 * sub-block's int16 pair sums are widened with their own scale (a vpmaddwd per 32 products), the
 * scales are decoded per row, and every row ends in a horizontal reduction. With 8 rows side by
 * side, one 4-byte activation broadcast feeds 8 rows, a Q4_K sub-block (32 values) accumulates
 * in int16 lanes (8 pair sums of at most 15 * 127 * 2: 30480, exact) before one vpmaddwd applies
 * the 8 rows' scales, the 8 row sums land in the 8 float lanes, and the scales are stored
 * pre-sorted so decoding them is a handful of byte ops per 8 rows. Measured on one AVX2 core
 * (cache-resident weights, 32 activation rows): about 1.9x the plain 1x4 tiles for Q4_K and 1.3x
 * for Q6_K; single-token decoding from DRAM 1.2-1.3x (cpu/repack_k_avx2.c).
 *
 * The reference products unpack each value through the layout's definition and then do exactly
 * what mlxr_vec_dot_q4_k_ref / _q6_k_ref do (exact integer sums per super-block, the same float
 * expression per super-block in block order), so they equal them bit for bit; the tests hold
 * them to that, which checks the repacking and the layouts' definitions together.
 */
#include "kernels/ref/repack_k.h"

#include <string.h>

#include "util/fp16.h"

/* Scale and min of sub-block s (0..7) of a plain Q4_K header (ref/quants.c's k4_scale_min). */
static void plain_scale_min(const uint8_t *q, int s, int *sc, int *mn) {
    if (s < 4) {
        *sc = q[s] & 63;
        *mn = q[s + 4] & 63;
    } else {
        *sc = (q[s + 4] & 0x0F) | ((q[s - 4] >> 6) << 4);
        *mn = (q[s + 4] >> 4) | ((q[s] >> 6) << 4);
    }
}

/* Where the layout keeps the scale and the min of sub-block s of row r (repack_k.h). */
static int t_scale(int s, int r) {
    return 32 * (s / 4) + 16 * (r / 4) + 4 * (s % 4) + r % 4;
}

static int t_min(int s, int r) {
    return 16 * (s / 2) + 2 * r + s % 2;
}

void mlxr_repack_q4_kx8(const void *src, void *dst, size_t row_bytes, int64_t n, int64_t nr) {
    const int64_t nb = n / MLXR_QK_K, ng = nr / MLXR_PACK_ROWS;
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *gs = s + (size_t)g * MLXR_PACK_ROWS * row_bytes;
        mlxr_block_q4_kx8 *out = (mlxr_block_q4_kx8 *)(d + (size_t)g * MLXR_PACK_ROWS * row_bytes);
        for (int64_t i = 0; i < nb; i++) {
            mlxr_block_q4_kx8 *o = &out[i];
            uint8_t hs[64], hm[64];
            memset(o->sm_lo, 0, sizeof o->sm_lo); /* filled a nibble at a time */
            for (int r = 0; r < MLXR_PACK_ROWS; r++) {
                const mlxr_block_q4_k *b =
                    (const mlxr_block_q4_k *)(gs + (size_t)r * row_bytes) + i;
                o->d[r] = b->d;
                o->dmin[r] = b->dmin;
                for (int sb = 0; sb < 8; sb++) {
                    int sc, mn;
                    plain_scale_min(b->scales, sb, &sc, &mn);
                    const int ts = t_scale(sb, r), tm = t_min(sb, r);
                    o->sm_lo[ts] = (uint8_t)((o->sm_lo[ts] & 0xF0) | (sc & 15));
                    o->sm_lo[tm] = (uint8_t)((o->sm_lo[tm] & 0x0F) | (mn & 15) << 4);
                    hs[ts] = (uint8_t)(sc >> 4);
                    hm[tm] = (uint8_t)(mn >> 4);
                }
                uint8_t u[MLXR_QK_K];       /* the row's nibbles in element order */
                for (int c = 0; c < 4; c++) /* 64-value chunks: low nibbles, then high */
                    for (int l = 0; l < 32; l++) {
                        u[64 * c + l] = b->qs[32 * c + l] & 0x0F;
                        u[64 * c + 32 + l] = b->qs[32 * c + l] >> 4;
                    }
                for (int e8 = 0; e8 < MLXR_QK_K; e8 += 8) /* e8 = 32s + 8j: qs row 4 * e8 */
                    for (int k = 0; k < 4; k++)
                        o->qs[4 * e8 + 4 * r + k] = (uint8_t)(u[e8 + k] | u[e8 + 4 + k] << 4);
            }
            for (int t = 0; t < 32; t++)
                o->sm_hi[t] = (uint8_t)(hs[t] | hm[t] << 2 | hs[t + 32] << 4 | hm[t + 32] << 6);
        }
    }
    /* a last partial group stays plain */
    const size_t done = (size_t)ng * MLXR_PACK_ROWS * row_bytes;
    memcpy(d + done, s + done, (size_t)(nr - ng * MLXR_PACK_ROWS) * row_bytes);
}

/* Scale and min of sub-block s of row r, and the nibble of element e of row r, by the layout's
 * definition (repack_k.h). */
static void packed_scale_min(const mlxr_block_q4_kx8 *b, int r, int s, int *sc, int *mn) {
    const int ts = t_scale(s, r), tm = t_min(s, r);
    const int hs = (b->sm_hi[ts % 32] >> (ts < 32 ? 0 : 4)) & 3;
    const int hm = (b->sm_hi[tm % 32] >> (tm < 32 ? 2 : 6)) & 3;
    *sc = (b->sm_lo[ts] & 15) | hs << 4;
    *mn = (b->sm_lo[tm] >> 4) | hm << 4;
}

static int packed_nibble(const mlxr_block_q4_kx8 *b, int r, int e) {
    const int s = e / 32, j = (e % 32) / 8, k = e % 8;
    const uint8_t byte = b->qs[128 * s + 32 * j + 4 * r + (k & 3)];
    return k < 4 ? byte & 0x0F : byte >> 4;
}

void mlxr_gemm_q4_kx8_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                          const void *x, size_t x_stride, float *y, size_t ldy) {
    const int64_t nb = n / MLXR_QK_K, nr8 = nr - nr % MLXR_PACK_ROWS;
    for (int64_t j = 0; j < nc; j++) {
        const mlxr_block_q8_k *xb =
            (const mlxr_block_q8_k *)((const uint8_t *)x + (size_t)j * x_stride);
        for (int64_t row = 0; row < nr8; row++) {
            const mlxr_block_q4_kx8 *wb =
                (const mlxr_block_q4_kx8 *)((const uint8_t *)w + (size_t)(row / MLXR_PACK_ROWS) *
                                                                     MLXR_PACK_ROWS * w_stride);
            const int r = (int)(row % MLXR_PACK_ROWS);
            float sum = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                int32_t isum = 0, summs = 0;
                for (int s = 0; s < 8; s++) {
                    int sc, mn;
                    packed_scale_min(&wb[i], r, s, &sc, &mn);
                    int32_t s32 = 0;
                    for (int l = 0; l < 32; l++)
                        s32 += packed_nibble(&wb[i], r, 32 * s + l) * xb[i].qs[32 * s + l];
                    isum += sc * s32;
                    summs += mn * (xb[i].bsums[2 * s] + xb[i].bsums[2 * s + 1]);
                }
                const float d = mlxr_fp16_to_fp32(wb[i].d[r]) * xb[i].d,
                            dmin = mlxr_fp16_to_fp32(wb[i].dmin[r]) * xb[i].d;
                sum += d * (float)isum - dmin * (float)summs;
            }
            y[(size_t)j * ldy + (size_t)row] = sum;
        }
    }
    /* the plain rows of a last partial group */
    mlxr_gemm_by_dots_ref(mlxr_vec_dot_q4_k_ref, n, nr - nr8, nc,
                          (const uint8_t *)w + (size_t)nr8 * w_stride, w_stride, x, x_stride,
                          y + nr8, ldy);
}

/* ---- Q6_Kx8 ------------------------------------------------------------------------------- */

void mlxr_repack_q6_kx8(const void *src, void *dst, size_t row_bytes, int64_t n, int64_t nr) {
    const int64_t nb = n / MLXR_QK_K, ng = nr / MLXR_PACK_ROWS;
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *gs = s + (size_t)g * MLXR_PACK_ROWS * row_bytes;
        mlxr_block_q6_kx8 *out = (mlxr_block_q6_kx8 *)(d + (size_t)g * MLXR_PACK_ROWS * row_bytes);
        for (int64_t i = 0; i < nb; i++) {
            mlxr_block_q6_kx8 *o = &out[i];
            for (int r = 0; r < MLXR_PACK_ROWS; r++) {
                const mlxr_block_q6_k *b =
                    (const mlxr_block_q6_k *)(gs + (size_t)r * row_bytes) + i;
                o->d[r] = b->d;
                for (int grp = 0; grp < 16; grp++)
                    o->sc[16 * (grp / 2) + 2 * r + grp % 2] = b->scales[grp];
                uint8_t u[MLXR_QK_K];       /* the row's unsigned quants in element order */
                for (int h = 0; h < 2; h++) /* ref/quants.c's q6_k_value + 32, a half at a time */
                    for (int l = 0; l < 32; l++) {
                        const uint8_t l0 = b->ql[64 * h + l], l1 = b->ql[64 * h + 32 + l];
                        const uint8_t hb = b->qh[32 * h + l];
                        u[128 * h + l] = (uint8_t)((l0 & 15) | (hb & 3) << 4);
                        u[128 * h + 32 + l] = (uint8_t)((l1 & 15) | ((hb >> 2) & 3) << 4);
                        u[128 * h + 64 + l] = (uint8_t)((l0 >> 4) | ((hb >> 4) & 3) << 4);
                        u[128 * h + 96 + l] = (uint8_t)((l1 >> 4) | (hb >> 6) << 4);
                    }
                for (int h = 0; h < 16; h++)
                    for (int t = 0; t < 3; t++)
                        for (int k = 0; k < 4; k++)
                            o->q[96 * h + 32 * t + 4 * r + k] =
                                (uint8_t)(u[16 * h + 4 * t + k] |
                                          ((u[16 * h + 12 + k] >> (2 * t)) & 3) << 6);
            }
        }
    }
    const size_t done = (size_t)ng * MLXR_PACK_ROWS * row_bytes;
    memcpy(d + done, s + done, (size_t)(nr - ng * MLXR_PACK_ROWS) * row_bytes);
}

/* Signed value (q - 32) of element e of row r of a Q6_Kx8 block, by the layout's definition. */
static int packed_q6(const mlxr_block_q6_kx8 *b, int r, int e) {
    const int h = e / 16, t = (e % 16) / 4, k = e % 4;
    const uint8_t *q = b->q + 96 * h + 4 * r + k;
    if (t < 3) return (q[32 * t] & 63) - 32;
    return ((q[0] >> 6) | (q[32] >> 6) << 2 | (q[64] >> 6) << 4) - 32;
}

void mlxr_gemm_q6_kx8_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                          const void *x, size_t x_stride, float *y, size_t ldy) {
    const int64_t nb = n / MLXR_QK_K, nr8 = nr - nr % MLXR_PACK_ROWS;
    for (int64_t j = 0; j < nc; j++) {
        const mlxr_block_q8_k *xb =
            (const mlxr_block_q8_k *)((const uint8_t *)x + (size_t)j * x_stride);
        for (int64_t row = 0; row < nr8; row++) {
            const mlxr_block_q6_kx8 *wb =
                (const mlxr_block_q6_kx8 *)((const uint8_t *)w + (size_t)(row / MLXR_PACK_ROWS) *
                                                                     MLXR_PACK_ROWS * w_stride);
            const int r = (int)(row % MLXR_PACK_ROWS);
            float sum = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                int32_t isum = 0;
                for (int g = 0; g < 16; g++) {
                    int32_t s16 = 0;
                    for (int l = 0; l < 16; l++)
                        s16 += packed_q6(&wb[i], r, g * 16 + l) * xb[i].qs[g * 16 + l];
                    isum += wb[i].sc[16 * (g / 2) + 2 * r + g % 2] * s16;
                }
                sum += (mlxr_fp16_to_fp32(wb[i].d[r]) * xb[i].d) * (float)isum;
            }
            y[(size_t)j * ldy + (size_t)row] = sum;
        }
    }
    mlxr_gemm_by_dots_ref(mlxr_vec_dot_q6_k_ref, n, nr - nr8, nc,
                          (const uint8_t *)w + (size_t)nr8 * w_stride, w_stride, x, x_stride,
                          y + nr8, ldy);
}
