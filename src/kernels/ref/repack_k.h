/*
 * repack_k.h - the interleaved ("x8") layouts of Q4_K and Q6_K weights (the Q4_0x8 / Q8_0x8 idea
 * of kernels.h applied to 256-value super-blocks): made once at model load by mlxr_repack_*,
 * multiplied by the type's gemm_packed (cpu/repack_k_avx2.c), defined by ref/repack_k.c.
 *
 * Q4_Kx8 { f16 d[8]; f16 dmin[8]; u8 sm_lo[64]; u8 sm_hi[32]; u8 qs[1024]; } = super-block i of
 * rows 8g..8g+7 (1152 bytes, 8 plain blocks). With sc[r][s], mn[r][s] the 6-bit scale and min of
 * sub-block s (32 values) of row r, and u[r][e] the nibble of element e, scales and mins are
 * stored in two orders, ts for scales and tm for mins:
 *   ts(s, r) = 32(s/4) + 16(r/4) + 4(s%4) + r%4   (a sub-block's 8 scales: rows 0-3 in the low
 *                                                  16 bytes of a 32-byte vector, 4-7 in the high)
 *   tm(s, r) = 16(s/2) + 2r + s%2                 (sub-blocks 2k, 2k+1 of row r side by side)
 *   sm_lo[ts(s, r)] low nibble = sc[r][s] & 15,   sm_lo[tm(s, r)] high nibble = mn[r][s] & 15
 *   with hs[ts(s, r)] = sc[r][s] >> 4, hm[tm(s, r)] = mn[r][s] >> 4 (2 bits each), for t < 32:
 *   sm_hi[t] = hs[t] | hm[t] << 2 | hs[t + 32] << 4 | hm[t + 32] << 6
 *   qs[128s + 32j + 4r + b] = u[r][32s + 8j + b] | u[r][32s + 8j + 4 + b] << 4   (j, b < 4)
 * so that one AND of a 32-byte row of qs gives 4 elements of all 8 rows (row r in 32-bit lane r),
 * one shift + AND the next 4, and the scales and mins decode with a few byte ops into vectors
 * the product uses directly (cpu/repack_k_avx2.c). Same bytes per row as the plain layout; rows
 * grouped from the matrix's first row; the nr % 8 rows of a last partial group stay plain.
 *
 * Q6_Kx8 { u8 q[1536]; i8 sc[128]; f16 d[8]; } = super-block i of rows 8g..8g+7 (1680 bytes, 8
 * plain blocks). With u[r][e] = q + 32 in [0, 63] the unsigned 6-bit quant of element e of row
 * r and sc[r][h] the scale of group h (16 values), three bytes hold four values: the first three
 * whole in their low 6 bits, the fourth's 2-bit pieces in their top bits:
 *   q[96h + 32t + 4r + b] = u[r][16h + 4t + b] | ((u[r][16h + 12 + b] >> 2t) & 3) << 6
 *                                                                        (h < 16; t < 3; b < 4)
 *   sc[16k + 2r + e] = sc[r][2k + e]                                     (k < 8, e < 2)
 * so a group's 16 values of the 8 rows (row r in 32-bit lane r) come from three 32-byte rows with
 * one AND each for the first 12 and 8 byte ops for the last 4, and a pair of groups' scales
 * widens to int16 pairs (lane 2r + e) in one vpmovsxbw, usable both for the 32-offset term
 * against the bsums and, one vpshufb away, as the per-row multiplier of the group's sums.
 */
#ifndef MLXR_KERNELS_REF_REPACK_K_H
#define MLXR_KERNELS_REF_REPACK_K_H

#include "kernels/kernels.h"

typedef struct mlxr_block_q4_kx8 {
    uint16_t d[8];
    uint16_t dmin[8];
    uint8_t sm_lo[64];
    uint8_t sm_hi[32];
    uint8_t qs[8 * MLXR_QK_K / 2];
} mlxr_block_q4_kx8;

_Static_assert(sizeof(mlxr_block_q4_kx8) == 8 * sizeof(mlxr_block_q4_k), "Q4_Kx8 is 8 blocks");

typedef struct mlxr_block_q6_kx8 {
    uint8_t q[8 * MLXR_QK_K * 3 / 4];
    int8_t sc[8 * MLXR_QK_K / 16];
    uint16_t d[8];
} mlxr_block_q6_kx8;

_Static_assert(sizeof(mlxr_block_q6_kx8) == 8 * sizeof(mlxr_block_q6_k), "Q6_Kx8 is 8 blocks");

void mlxr_repack_q4_kx8(const void *src, void *dst, size_t row_bytes, int64_t n, int64_t nr);
/* Per (row, column) exactly the arithmetic of mlxr_vec_dot_q4_k_ref on the plain rows. */
void mlxr_gemm_q4_kx8_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                          const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_q4_kx8_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *y, size_t ldy);

void mlxr_repack_q6_kx8(const void *src, void *dst, size_t row_bytes, int64_t n, int64_t nr);
/* Per (row, column) exactly the arithmetic of mlxr_vec_dot_q6_k_ref on the plain rows. */
void mlxr_gemm_q6_kx8_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                          const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_q6_kx8_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *y, size_t ldy);

#endif
