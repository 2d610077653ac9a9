/*
 * repack.c - the interleaved ("x8") weight layouts of Q4_0 and Q8_0 (kernels.h): the repacking
 * done once at model load, and the scalar definition of the products over them.
 *
 * Why: a prompt's matrix product reads every weight block once per activation row. In the plain
 * layout a SIMD kernel multiplies one row's block at a time and must reduce each 8-lane result to
 * one float. Interleaving 8 rows' blocks lets one 4-byte activation broadcast feed all 8 rows, the
 * 8 row sums land in the 8 lanes of one register, and the 8 rows' scales convert in one vcvtph2ps
 * (cpu/repack_avx2.c). Bytes per row are unchanged, so the repacked copy replaces the plain one
 * for every CPU product, single-token decoding included.
 *
 * The reference products unpack each element through the layout's definition and then do exactly
 * what mlxr_vec_dot_q4_0_ref / _q8_0_ref do (exact integer block sums, float accumulation of
 * sum * (d_w * d_x) in block order), so they equal those bit for bit; the tests hold them to that,
 * which checks the repacking and the layout's definition together.
 */
#include "kernels/kernels.h"

#include <string.h>

#include "util/fp16.h"

/* Byte 32j + 4r + k of a Q4_0x8 block from row r's plain block: elements 8j+k and 8j+4+k, which
 * are low nibbles of qs[8j + k], qs[8j + 4 + k] for j < 2 and high nibbles of qs[8(j-2) + k],
 * qs[8(j-2) + 4 + k] for j >= 2. */
static uint8_t q4_0x8_byte(const mlxr_block_q4_0 *b, int j, int k) {
    const int a = 8 * (j & 1) + k, sh = j < 2 ? 0 : 4;
    return (uint8_t)(((b->qs[a] >> sh) & 0x0F) | ((b->qs[a + 4] >> sh) & 0x0F) << 4);
}

void mlxr_repack_q4_0x8(const void *src, void *dst, size_t row_bytes, int64_t n, int64_t nr) {
    const int64_t nb = n / MLXR_QK4_0, ng = nr / MLXR_PACK_ROWS;
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *gs = s + (size_t)g * MLXR_PACK_ROWS * row_bytes;
        mlxr_block_q4_0x8 *out = (mlxr_block_q4_0x8 *)(d + (size_t)g * MLXR_PACK_ROWS * row_bytes);
        for (int64_t i = 0; i < nb; i++) {
            for (int r = 0; r < MLXR_PACK_ROWS; r++) {
                const mlxr_block_q4_0 *b =
                    (const mlxr_block_q4_0 *)(gs + (size_t)r * row_bytes) + i;
                out[i].d[r] = b->d;
                for (int j = 0; j < 4; j++)
                    for (int k = 0; k < 4; k++)
                        out[i].qs[32 * j + 4 * r + k] = q4_0x8_byte(b, j, k);
            }
        }
    }
    /* a last partial group stays plain */
    const size_t done = (size_t)ng * MLXR_PACK_ROWS * row_bytes;
    memcpy(d + done, s + done, (size_t)(nr - ng * MLXR_PACK_ROWS) * row_bytes);
}

void mlxr_repack_q8_0x8(const void *src, void *dst, size_t row_bytes, int64_t n, int64_t nr) {
    const int64_t nb = n / MLXR_QK8_0, ng = nr / MLXR_PACK_ROWS;
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *gs = s + (size_t)g * MLXR_PACK_ROWS * row_bytes;
        mlxr_block_q8_0x8 *out = (mlxr_block_q8_0x8 *)(d + (size_t)g * MLXR_PACK_ROWS * row_bytes);
        for (int64_t i = 0; i < nb; i++) {
            for (int r = 0; r < MLXR_PACK_ROWS; r++) {
                const mlxr_block_q8_0 *b =
                    (const mlxr_block_q8_0 *)(gs + (size_t)r * row_bytes) + i;
                out[i].d[r] = b->d;
                for (int k = 0; k < 8; k++)
                    memcpy(&out[i].qs[32 * k + 4 * r], &b->qs[4 * k], 4);
            }
        }
    }
    const size_t done = (size_t)ng * MLXR_PACK_ROWS * row_bytes;
    memcpy(d + done, s + done, (size_t)(nr - ng * MLXR_PACK_ROWS) * row_bytes);
}

/* Signed value of element e of row r (0..7) in a Q4_0x8 / Q8_0x8 block, by the layout's
 * definition (kernels.h). */
static int32_t q4_0x8_value(const mlxr_block_q4_0x8 *b, int r, int e) {
    const int j = e / 8, k = e % 8;
    const uint8_t byte = b->qs[32 * j + 4 * r + (k & 3)];
    return (int32_t)(k < 4 ? byte & 0x0F : byte >> 4) - 8;
}

static int32_t q8_0x8_value(const mlxr_block_q8_0x8 *b, int r, int e) {
    return b->qs[32 * (e / 4) + 4 * r + e % 4];
}

void mlxr_gemm_q4_0x8_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                          const void *x, size_t x_stride, float *y, size_t ldy) {
    const int64_t nb = n / MLXR_QK4_0, nr8 = nr - nr % MLXR_PACK_ROWS;
    for (int64_t j = 0; j < nc; j++) {
        const mlxr_block_q8_0 *xb =
            (const mlxr_block_q8_0 *)((const uint8_t *)x + (size_t)j * x_stride);
        for (int64_t row = 0; row < nr8; row++) {
            const mlxr_block_q4_0x8 *wb =
                (const mlxr_block_q4_0x8 *)((const uint8_t *)w + (size_t)(row / MLXR_PACK_ROWS) *
                                                                     MLXR_PACK_ROWS * w_stride);
            const int r = (int)(row % MLXR_PACK_ROWS);
            float sum = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                int32_t sumi = 0;
                for (int e = 0; e < MLXR_QK4_0; e++)
                    sumi += q4_0x8_value(&wb[i], r, e) * (int32_t)xb[i].qs[e];
                sum += (float)sumi * (mlxr_fp16_to_fp32(wb[i].d[r]) * mlxr_fp16_to_fp32(xb[i].d));
            }
            y[(size_t)j * ldy + (size_t)row] = sum;
        }
    }
    /* the plain rows of a last partial group */
    mlxr_gemm_by_dots_ref(mlxr_vec_dot_q4_0_ref, n, nr - nr8, nc,
                          (const uint8_t *)w + (size_t)nr8 * w_stride, w_stride, x, x_stride,
                          y + nr8, ldy);
}

void mlxr_gemm_q8_0x8_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                          const void *x, size_t x_stride, float *y, size_t ldy) {
    const int64_t nb = n / MLXR_QK8_0, nr8 = nr - nr % MLXR_PACK_ROWS;
    for (int64_t j = 0; j < nc; j++) {
        const mlxr_block_q8_0 *xb =
            (const mlxr_block_q8_0 *)((const uint8_t *)x + (size_t)j * x_stride);
        for (int64_t row = 0; row < nr8; row++) {
            const mlxr_block_q8_0x8 *wb =
                (const mlxr_block_q8_0x8 *)((const uint8_t *)w + (size_t)(row / MLXR_PACK_ROWS) *
                                                                     MLXR_PACK_ROWS * w_stride);
            const int r = (int)(row % MLXR_PACK_ROWS);
            float sum = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                int32_t sumi = 0;
                for (int e = 0; e < MLXR_QK8_0; e++)
                    sumi += q8_0x8_value(&wb[i], r, e) * (int32_t)xb[i].qs[e];
                sum += (float)sumi * (mlxr_fp16_to_fp32(wb[i].d[r]) * mlxr_fp16_to_fp32(xb[i].d));
            }
            y[(size_t)j * ldy + (size_t)row] = sum;
        }
    }
    mlxr_gemm_by_dots_ref(mlxr_vec_dot_q8_0_ref, n, nr - nr8, nc,
                          (const uint8_t *)w + (size_t)nr8 * w_stride, w_stride, x, x_stride,
                          y + nr8, ldy);
}
