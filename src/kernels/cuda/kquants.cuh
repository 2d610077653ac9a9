/*
 * kquants.cuh - device helpers for the K-quant weight types Q4_K, Q5_K, Q6_K in the split device
 * layout of matvec.h (quant bytes and block headers in two arrays). Shared by the products
 * (matvec.cu), the tiled GEMM (gemm.cu) and the embedding lookup (embed.cu).
 *
 * Value layouts (ggml's, as src/kernels/ref/quants.c spells them out):
 *   Q4_K/Q5_K: 8 sub-blocks of 32 values with 6-bit scale sc and min m packed in 12 bytes;
 *     value j = d * sc[j/32] * q - dmin * m[j/32]; q is nibble (j%64 >= 32) of qs[32 (j/64) +
 * j%32], Q5_K adds bit (j/32) of qh[j%32] as bit 4. Q6_K: 16 groups of 16 values with int8 scales;
 * value j = d * sc[j/16] * (q - 32); within half h = j/128 (r = j%128, k = r/32, l = r%32), q's low
 * nibble is nibble (k/2) of ql[64h + 32(k%2) + l] and its bits 4..5 are bits 2k..2k+1 of qh[32h +
 * l]. Dequantized values use exactly the reference's float operations (one rounding per multiply or
 * subtract: __fmul_rn/__fsub_rn keep nvcc from contracting them into an FMA), so the embedding
 * lookup is bit-identical to the reference.
 */
#ifndef MLXR_KERNELS_CUDA_KQUANTS_CUH
#define MLXR_KERNELS_CUDA_KQUANTS_CUH

#include <cuda_fp16.h>
#include <stdint.h>

#include "mlxr.h"

#define MLXR_CUDA_QK_K 256

/* Bytes of one super-block's quants and header in the device layout. */
__host__ __device__ constexpr int kq_qbytes(int type) {
    return type == MLXR_DTYPE_Q4_K ? 128 : type == MLXR_DTYPE_Q5_K ? 160 : 192;
}
__host__ __device__ constexpr int kq_mbytes(int type) {
    return type == MLXR_DTYPE_Q6_K ? 18 : 16;
}

__device__ __forceinline__ unsigned kq_byte(unsigned w, int i) {
    return (w >> (8 * i)) & 0xFFu;
}

/* Scale and min of sub-block j (0..7) from the 12 scale bytes held as three words s0, s1, s2
 * (bytes 0-3, 4-7, 8-11): the reference's k4_scale_min. */
__device__ __forceinline__ void kq_scale_min(unsigned s0, unsigned s1, unsigned s2, int j, int &sc,
                                             int &m) {
    if (j < 4) {
        sc = (int)(kq_byte(s0, j) & 63);
        m = (int)(kq_byte(s1, j) & 63);
    } else {
        const int i = j - 4;
        sc = (int)((kq_byte(s2, i) & 0x0F) | ((kq_byte(s0, i) >> 6) << 4));
        m = (int)((kq_byte(s2, i) >> 4) | ((kq_byte(s1, i) >> 6) << 4));
    }
}

/* The 16-byte Q4_K/Q5_K header as (d, dmin) floats and the scale words. */
struct kq_head {
    float d, dmin;
    unsigned s0, s1, s2;
};

__device__ __forceinline__ kq_head kq_head_of(uint4 h) {
    kq_head r;
    r.d = __half2float(__ushort_as_half((unsigned short)(h.x & 0xFFFFu)));
    r.dmin = __half2float(__ushort_as_half((unsigned short)(h.x >> 16)));
    r.s0 = h.y;
    r.s1 = h.z;
    r.s2 = h.w;
    return r;
}

/* Q4_K/Q5_K value: d1 * q - m1 with d1 = d * sc, m1 = dmin * m (the reference's order). */
__device__ __forceinline__ float kq_val45(float d1, float m1, int q) {
    return __fsub_rn(__fmul_rn(d1, (float)q), m1);
}

/* Q6_K value: d * sc * (q - 32), left to right. */
__device__ __forceinline__ float kq_val6(float d, int sc, int q) {
    return __fmul_rn(__fmul_rn(d, (float)sc), (float)(q - 32));
}

/* The 6-bit q (0..63) of element j of a Q6_K block (its 192 quant bytes, device layout). */
__device__ __forceinline__ int kq_q6(const uint8_t *blk, int j) {
    const int h = j / 128, r = j % 128, k = r / 32, l = r % 32;
    const unsigned ql = blk[64 * h + 32 * (k % 2) + l];
    const unsigned qh = blk[128 + 32 * h + l];
    return (int)(((k < 2 ? ql : ql >> 4) & 0x0F) | (((qh >> (2 * k)) & 3) << 4));
}

#endif
