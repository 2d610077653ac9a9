/*
 * matvec.cu - weight upload and matrix products (see matvec.h).
 *
 * Product kernel shape: a block of NW warps owns R consecutive weight rows and C consecutive
 * tokens; its 32*NW threads stride over the row length 16 bytes of weights at a time, so each
 * weight load is one coalesced 512-byte warp access and serves C tokens (the per-block split of
 * the row length, rather than one warp per row, keeps enough loads in flight to fill HBM with
 * only ne1/R blocks). Partial sums are reduced in the warp, then across warps in shared memory.
 * Decode (T = 1) uses R = decode_rows() (2, 4 or 8), C = 1; batches of 2..8 use R = 4, C = 8, reading each weight tile
 * once per 8 tokens; larger batches go to the tensor-core GEMM (gemm.cu) when it takes the
 * shape. Rows and tokens past the end are clamped for the loads and skipped on the store.
 * Every product is launched with programmatic dependent launch (common.cuh): its blocks prefetch
 * their weight rows into L2 before waiting for the previous kernel.
 * Per-type inner loops: Q8_0, Q4_0, the K-quants and the MLX affine types against Q8_0 activations
 * (exact integer block sums), F16 and F32 in f32.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_err.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/kquants.cuh"
#include "kernels/cuda/matvec.h"
#include "kernels/cuda/mlx.cuh"

#include <cooperative_groups.h>
#include <stdlib.h>
#include <string.h>

namespace cg = cooperative_groups;

extern "C" {
#include "util/err.h"
}

#define QK 32

/* ---- per-type inner loops: accumulate acc[r][c] over this thread's share of the row -------- */
/* (pre: prefetch the rows' weight bytes into L2, one 128-byte line per thread at a time, before
 * pdl_wait: weights are constant, so they may stream in while the previous kernel finishes) */

/* Exact integer sums by __dp4a, shared by the decode products: the dot of 16 byte pairs, the sum
 * of 16 signed bytes, and the dot of 32 packed 4-bit codes (low nibbles against x[0..15], high
 * nibbles against x[16..31], the Q4_0 / MLX 4-bit byte order) with 32 activation bytes. */
__device__ __forceinline__ int dot16(const int4 w, const int4 x) {
    int s = __dp4a(w.x, x.x, 0);
    s = __dp4a(w.y, x.y, s);
    s = __dp4a(w.z, x.z, s);
    return __dp4a(w.w, x.w, s);
}

__device__ __forceinline__ int sum16(const int4 x) {
    return dot16(make_int4(0x01010101, 0x01010101, 0x01010101, 0x01010101), x);
}

__device__ __forceinline__ int dot_nib32(const int4 w, const int4 lo, const int4 hi) {
    const int m = 0x0F0F0F0F;
    return dot16(make_int4(w.x & m, w.y & m, w.z & m, w.w & m), lo) +
           dot16(make_int4((w.x >> 4) & m, (w.y >> 4) & m, (w.z >> 4) & m, (w.w >> 4) & m), hi);
}

struct mm_q8_0 {
    const int8_t *wq;
    const __half *wd;
    const int8_t *xq;
    const float *xd;
    int ne0;

    template <int R>
    __device__ __forceinline__ void pre(const int (&rr)[R], int tid, int nth) const {
#pragma unroll
        for (int r = 0; r < R; r++) {
            prefetch_span(wq + (int64_t)rr[r] * ne0, ne0, tid, nth);
            prefetch_span(wd + (int64_t)rr[r] * (ne0 / QK), (ne0 / QK) * 2, tid, nth);
        }
    }

    template <int R, int C>
    __device__ __forceinline__ void run(float (&acc)[R][C], const int (&rr)[R], const int (&tt)[C],
                                        int tid, int nth) const {
        const int nb = ne0 / QK;
        for (int e = tid * 16; e < ne0; e += nth * 16) {
            const int b = e / QK;
            int4 w[R];
            float dw[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                w[r] = __ldg(reinterpret_cast<const int4 *>(wq + (int64_t)rr[r] * ne0 + e));
                dw[r] = __half2float(wd[(int64_t)rr[r] * nb + b]);
            }
#pragma unroll
            for (int c = 0; c < C; c++) {
                const int4 x = __ldg(reinterpret_cast<const int4 *>(xq + (int64_t)tt[c] * ne0 + e));
                const float dx = xd[(int64_t)tt[c] * nb + b];
#pragma unroll
                for (int r = 0; r < R; r++) {
                    int s = __dp4a(w[r].x, x.x, 0);
                    s = __dp4a(w[r].y, x.y, s);
                    s = __dp4a(w[r].z, x.z, s);
                    s = __dp4a(w[r].w, x.w, s);
                    acc[r][c] += (float)s * (dw[r] * dx);
                }
            }
        }
    }
};

struct mm_q4_0 {
    const uint8_t *wq;
    const __half *wd;
    const int8_t *xq;
    const float *xd;
    int ne0;

    template <int R>
    __device__ __forceinline__ void pre(const int (&rr)[R], int tid, int nth) const {
#pragma unroll
        for (int r = 0; r < R; r++) {
            prefetch_span(wq + (int64_t)rr[r] * (ne0 / 2), ne0 / 2, tid, nth);
            prefetch_span(wd + (int64_t)rr[r] * (ne0 / QK), (ne0 / QK) * 2, tid, nth);
        }
    }

    template <int R, int C>
    __device__ __forceinline__ void run(float (&acc)[R][C], const int (&rr)[R], const int (&tt)[C],
                                        int tid, int nth) const {
        const int nb = ne0 / QK;
        for (int b = tid; b < nb; b += nth) {
            int4 w[R];
            float dw[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                w[r] = __ldg(reinterpret_cast<const int4 *>(wq + (int64_t)rr[r] * (ne0 / 2) + b * 16));
                dw[r] = __half2float(wd[(int64_t)rr[r] * nb + b]);
            }
#pragma unroll
            for (int c = 0; c < C; c++) {
                const int8_t *xb = xq + (int64_t)tt[c] * ne0 + b * QK;
                const int4 lo = __ldg(reinterpret_cast<const int4 *>(xb));      /* x[0..15] */
                const int4 hi = __ldg(reinterpret_cast<const int4 *>(xb + 16)); /* x[16..31] */
                const float dx = xd[(int64_t)tt[c] * nb + b];
                const int sx = sum16(lo) + sum16(hi); /* for the -8 offset of every nibble */
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const int s = dot_nib32(w[r], lo, hi);
                    acc[r][c] += (float)(s - 8 * sx) * (dw[r] * dx);
                }
            }
        }
    }
};

/*
 * MLX affine weights (mlx.cuh) . Q8_0 activations. Per 32-weight piece k of group g, with the
 * exact integer sums dot = sum q_i a_i and sx = sum a_i (__dp4a):
 *   sum_i (s q_i + b) (dx a_i) = dx (s dot + b sx)
 * 4 bits: a thread takes one piece (16 code bytes, Q4_0's nibble order: & 0x0F gives weights
 * 0..15, >> 4 weights 16..31). 8 bits: a thread takes 16 codes (half a piece); the codes are
 * unsigned and __dp4a has no unsigned x signed form, so it runs on q - 128 (the code byte with
 * its top bit flipped, a signed byte) and adds 128 sx back: exact.
 * aux: log2(group size) | bf16 << 8 (mlx_aux).
 */
template <int BITS> struct mm_mlx {
    const uint8_t *wq;
    const unsigned *wd; /* one scale|bias word per group */
    const int8_t *xq;
    const float *xd;
    int ne0, aux;

    template <int R>
    __device__ __forceinline__ void pre(const int (&rr)[R], int tid, int nth) const {
        const int lg = aux & 0xFF;
#pragma unroll
        for (int r = 0; r < R; r++) {
            prefetch_span(wq + (int64_t)rr[r] * (ne0 / 8 * BITS), ne0 / 8 * BITS, tid, nth);
            prefetch_span(wd + (int64_t)rr[r] * (ne0 >> lg), (ne0 >> lg) * 4, tid, nth);
        }
    }

    template <int R, int C>
    __device__ __forceinline__ void run(float (&acc)[R][C], const int (&rr)[R], const int (&tt)[C],
                                        int tid, int nth) const {
        const int lg = aux & 0xFF, ng = ne0 >> lg, nb = ne0 / QK;
        const bool bf16 = (aux >> 8) & 1;
        const int rowb = ne0 / 8 * BITS; /* code bytes per row */
        /* a step: 32 weights (4 bits) or 16 (8 bits) = 16 code bytes */
        constexpr int STEP = BITS == 4 ? 32 : 16;
        for (int e = tid * STEP; e < ne0; e += nth * STEP) {
            const int b = e / QK, g = e >> lg;
            int4 w[R];
            float sc[R], bi[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                w[r] = __ldg(reinterpret_cast<const int4 *>(wq + (int64_t)rr[r] * rowb + e / 8 * BITS));
                mlx_sb(__ldg(wd + (int64_t)rr[r] * ng + g), bf16, sc[r], bi[r]);
            }
#pragma unroll
            for (int c = 0; c < C; c++) {
                const int8_t *xe = xq + (int64_t)tt[c] * ne0 + e;
                const float dx = xd[(int64_t)tt[c] * nb + b];
                if constexpr (BITS == 4) {
                    const int4 lo = __ldg(reinterpret_cast<const int4 *>(xe));      /* x[0..15] */
                    const int4 hi = __ldg(reinterpret_cast<const int4 *>(xe + 16)); /* x[16..31] */
                    const int sx = sum16(lo) + sum16(hi);
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        const int s = dot_nib32(w[r], lo, hi);
                        acc[r][c] += dx * (sc[r] * (float)s + bi[r] * (float)sx);
                    }
                } else {
                    const int4 x = __ldg(reinterpret_cast<const int4 *>(xe)); /* x[0..15] of the half */
                    const int sx = sum16(x);
                    const int f = (int)0x80808080u; /* q ^ 0x80 = q - 128 as a signed byte */
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        const int s =
                            dot16(make_int4(w[r].x ^ f, w[r].y ^ f, w[r].z ^ f, w[r].w ^ f), x) + 128 * sx;
                        acc[r][c] += dx * (sc[r] * (float)s + bi[r] * (float)sx);
                    }
                }
            }
        }
    }
};

/*
 * K-quants . Q8_0 activations (32-value blocks, as llama.cpp's CUDA products take q8_1 for every
 * type): a thread takes 16 quant bytes of one super-block (a "piece": 16 values of each of two
 * sub-blocks, or of two 16-groups for Q6_K), forms the exact integer sums of each half with
 * __dp4a, weights them with the integer sub-block scales, and adds each half's integer sum times
 * d_w times the scale d_x of the activation block it falls in (the min term likewise with
 * dmin_w). Q8_0 rather than the CPU engine's Q8_K (one scale per 256 values) because the
 * producers of a decode step (attention, the residual products with the next RMSNorm, SwiGLU)
 * write whole 32-value blocks directly, so K-quant models take the same fused path as Q4_0.
 */
template <int TYPE>
struct mm_k {
    const uint8_t *wq;
    const uint8_t *wm;
    const int8_t *xq;
    const float *xd;
    int ne0;

    template <int R>
    __device__ __forceinline__ void pre(const int (&rr)[R], int tid, int nth) const {
        const int nb = ne0 / MLXR_CUDA_QK_K, QB = kq_qbytes(TYPE), MB = kq_mbytes(TYPE);
#pragma unroll
        for (int r = 0; r < R; r++) {
            prefetch_span(wq + (int64_t)rr[r] * nb * QB, (int64_t)nb * QB, tid, nth);
            prefetch_span(wm + (int64_t)rr[r] * nb * MB, (int64_t)nb * MB, tid, nth);
        }
    }

    template <int R, int C>
    __device__ __forceinline__ void run(float (&acc)[R][C], const int (&rr)[R], const int (&tt)[C],
                                        int tid, int nth) const {
        const int nb = ne0 / MLXR_CUDA_QK_K, QB = kq_qbytes(TYPE), MB = kq_mbytes(TYPE);
        const int m4 = 0x0F0F0F0F;
        for (int p = tid; p < nb * 8; p += nth) {
            const int b = p >> 3, i = p & 7;
            /* lo/hi: the piece's two 16-value halves; xo: their offsets in the super-block */
            int4 lo[R], hi[R];
            int sl[R], sh[R], ml[R], mh[R];
            float dw[R], dm[R];
            int xo_lo, xo_hi; /* 16-value halves; each lies in one 32-value activation block */
            if (TYPE == MLXR_DTYPE_Q6_K) {
                const int half = i >> 2, kk = (i >> 1) & 1, hh = i & 1;
                xo_lo = 128 * half + 32 * kk + 16 * hh;
                xo_hi = xo_lo + 64;
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const uint8_t *blk = wq + ((int64_t)rr[r] * nb + b) * QB;
                    const uint8_t *hd = wm + ((int64_t)rr[r] * nb + b) * MB;
                    const int4 ql = __ldg(reinterpret_cast<const int4 *>(blk + 64 * half + 32 * kk + 16 * hh));
                    const int4 qh = __ldg(reinterpret_cast<const int4 *>(blk + 128 + 32 * half + 16 * hh));
                    const int s1 = 2 * kk, s2 = 2 * kk + 4;
                    lo[r] = make_int4((ql.x & m4) | (((qh.x >> s1) & 0x03030303) << 4),
                                      (ql.y & m4) | (((qh.y >> s1) & 0x03030303) << 4),
                                      (ql.z & m4) | (((qh.z >> s1) & 0x03030303) << 4),
                                      (ql.w & m4) | (((qh.w >> s1) & 0x03030303) << 4));
                    hi[r] = make_int4(((ql.x >> 4) & m4) | (((qh.x >> s2) & 0x03030303) << 4),
                                      ((ql.y >> 4) & m4) | (((qh.y >> s2) & 0x03030303) << 4),
                                      ((ql.z >> 4) & m4) | (((qh.z >> s2) & 0x03030303) << 4),
                                      ((ql.w >> 4) & m4) | (((qh.w >> s2) & 0x03030303) << 4));
                    sl[r] = (int8_t)__ldg(hd + 8 * half + 2 * kk + hh);
                    sh[r] = (int8_t)__ldg(hd + 8 * half + 2 * kk + hh + 4);
                    dw[r] = __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short *>(hd + 16))));
                    ml[r] = mh[r] = 0;
                    dm[r] = 0.0f;
                }
            } else {
                const int chunk = i >> 1, hh = i & 1;
                xo_lo = 64 * chunk + 16 * hh;
                xo_hi = xo_lo + 32;
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const uint8_t *blk = wq + ((int64_t)rr[r] * nb + b) * QB;
                    const kq_head h = kq_head_of(__ldg(reinterpret_cast<const uint4 *>(wm + ((int64_t)rr[r] * nb + b) * MB)));
                    const int4 qs = __ldg(reinterpret_cast<const int4 *>(blk + (QB - 128) + 32 * chunk + 16 * hh));
                    lo[r] = make_int4(qs.x & m4, qs.y & m4, qs.z & m4, qs.w & m4);
                    hi[r] = make_int4((qs.x >> 4) & m4, (qs.y >> 4) & m4, (qs.z >> 4) & m4, (qs.w >> 4) & m4);
                    if (TYPE == MLXR_DTYPE_Q5_K) {
                        const int4 qh = __ldg(reinterpret_cast<const int4 *>(blk + 16 * hh));
                        const int s1 = 2 * chunk, s2 = 2 * chunk + 1;
                        lo[r].x |= ((qh.x >> s1) & 0x01010101) << 4;
                        lo[r].y |= ((qh.y >> s1) & 0x01010101) << 4;
                        lo[r].z |= ((qh.z >> s1) & 0x01010101) << 4;
                        lo[r].w |= ((qh.w >> s1) & 0x01010101) << 4;
                        hi[r].x |= ((qh.x >> s2) & 0x01010101) << 4;
                        hi[r].y |= ((qh.y >> s2) & 0x01010101) << 4;
                        hi[r].z |= ((qh.z >> s2) & 0x01010101) << 4;
                        hi[r].w |= ((qh.w >> s2) & 0x01010101) << 4;
                    }
                    kq_scale_min(h.s0, h.s1, h.s2, 2 * chunk, sl[r], ml[r]);
                    kq_scale_min(h.s0, h.s1, h.s2, 2 * chunk + 1, sh[r], mh[r]);
                    dw[r] = h.d;
                    dm[r] = h.dmin;
                }
            }
#pragma unroll
            for (int c = 0; c < C; c++) {
                const int64_t x0 = (int64_t)tt[c] * ne0 + (int64_t)b * MLXR_CUDA_QK_K;
                const int4 xl = __ldg(reinterpret_cast<const int4 *>(xq + x0 + xo_lo));
                const int4 xh = __ldg(reinterpret_cast<const int4 *>(xq + x0 + xo_hi));
                const float dxl = __ldg(xd + (x0 + xo_lo) / QK), dxh = __ldg(xd + (x0 + xo_hi) / QK);
                const int sxl = sum16(xl), sxh = sum16(xh);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    if (TYPE == MLXR_DTYPE_Q6_K) {
                        const int il = sl[r] * (dot16(lo[r], xl) - 32 * sxl), ih = sh[r] * (dot16(hi[r], xh) - 32 * sxh);
                        acc[r][c] += dw[r] * (dxl * (float)il + dxh * (float)ih);
                    } else {
                        const int il = sl[r] * dot16(lo[r], xl), ih = sh[r] * dot16(hi[r], xh);
                        acc[r][c] += dw[r] * (dxl * (float)il + dxh * (float)ih) -
                                     dm[r] * (dxl * (float)(ml[r] * sxl) + dxh * (float)(mh[r] * sxh));
                    }
                }
            }
        }
    }
};

struct mm_f16 {
    const __half *w;
    const __half *x;
    int ne0;

    /* No L2 prefetch for F16: its rows are long enough (2 bytes a weight) that the plain 16-byte
     * loads keep the memory system busy, and the extra prefetch requests cost bandwidth (H100,
     * session 4: the 7B decode products 85 % of copy bandwidth with it, 96 % in session 2
     * without). */
    template <int R>
    __device__ __forceinline__ void pre(const int (&rr)[R], int tid, int nth) const {
        (void)rr;
        (void)tid;
        (void)nth;
    }

    template <int R, int C>
    __device__ __forceinline__ void run(float (&acc)[R][C], const int (&rr)[R], const int (&tt)[C],
                                        int tid, int nth) const {
        for (int e = tid * 8; e < ne0; e += nth * 8) {
            uint4 wv[R];
#pragma unroll
            for (int r = 0; r < R; r++)
                wv[r] = __ldg(reinterpret_cast<const uint4 *>(w + (int64_t)rr[r] * ne0 + e));
#pragma unroll
            for (int c = 0; c < C; c++) {
                const uint4 xv = __ldg(reinterpret_cast<const uint4 *>(x + (int64_t)tt[c] * ne0 + e));
                const __half2 *xh = reinterpret_cast<const __half2 *>(&xv);
                float2 xf[4];
#pragma unroll
                for (int k = 0; k < 4; k++) xf[k] = __half22float2(xh[k]);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const __half2 *wh = reinterpret_cast<const __half2 *>(&wv[r]);
                    float s = 0.0f;
#pragma unroll
                    for (int k = 0; k < 4; k++) {
                        const float2 wf = __half22float2(wh[k]);
                        s += wf.x * xf[k].x;
                        s += wf.y * xf[k].y;
                    }
                    acc[r][c] += s;
                }
            }
        }
    }
};

struct mm_f32 {
    const float *w;
    const float *x;
    int ne0;

    template <int R>
    __device__ __forceinline__ void pre(const int (&rr)[R], int tid, int nth) const {
#pragma unroll
        for (int r = 0; r < R; r++) prefetch_span(w + (int64_t)rr[r] * ne0, (int64_t)ne0 * 4, tid, nth);
    }

    template <int R, int C>
    __device__ __forceinline__ void run(float (&acc)[R][C], const int (&rr)[R], const int (&tt)[C],
                                        int tid, int nth) const {
        for (int e = tid * 4; e < ne0; e += nth * 4) {
            float4 wv[R];
#pragma unroll
            for (int r = 0; r < R; r++)
                wv[r] = __ldg(reinterpret_cast<const float4 *>(w + (int64_t)rr[r] * ne0 + e));
#pragma unroll
            for (int c = 0; c < C; c++) {
                const float4 xv = __ldg(reinterpret_cast<const float4 *>(x + (int64_t)tt[c] * ne0 + e));
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[r][c] += wv[r].x * xv.x + wv[r].y * xv.y + wv[r].z * xv.z + wv[r].w * xv.w;
            }
        }
    }
};

/* What a product does with its row sums: store them (EPI_STORE), or (EPI_SWIGLU, decode only) treat
 * the matrix as gate rows [0, n) then up rows [n, 2n) and store silu(gate) * up as `out` says. */
enum { EPI_STORE = 0, EPI_SWIGLU = 1, EPI_RESID = 2 /* mm_resid_kernel */ };

struct mm_epi {
    mlxr_cuda_out out;
    unsigned *cnt;     /* EPI_SWIGLU with Q8_0 output: arrivals per 32-output group */
    int n;             /* EPI_SWIGLU: gate rows (= up rows) */
    float *x;          /* EPI_RESID: residual row, norm weight, partial sums out */
    const float *g;
    float *ss_out;
};

/*
 * EPI_SWIGLU: block b computes gate rows j0..j0+H-1 (j0 = b H, H = R/2) and the matching up rows,
 * so it holds both halves of its H outputs; the sums are the same as EPI_STORE's, and silu(g) * u
 * is act.cu's expression, so the result is bit-identical to the product followed by
 * mlxr_swiglu_cuda. A Q8_0 output needs whole 32-value groups, which span several blocks: each
 * block stores its f32 outputs in out.y, and the last block of a group to arrive (threadfence +
 * atomic counter, the counter reset by that block for the next launch) encodes the group from
 * out.y with common.cuh's put_block32.
 */
template <int R, int C, int NW, int EPI, class K>
__global__ void __launch_bounds__(NW * 32)
    mm_kernel(K k, float *__restrict__ y, int64_t ldy, int ne1, int T, mm_epi ep) {
    static_assert(EPI != EPI_SWIGLU || (C == 1 && R % 2 == 0), "SwiGLU epilogue: one token, gate+up row pairs");
    __shared__ float red[NW][R * C];
    __shared__ bool last;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int row0 = blockIdx.x * R, t0 = blockIdx.y * C;
    constexpr int H = R / 2;
    int rr[R], tt[C];
    if (EPI == EPI_SWIGLU) {
#pragma unroll
        for (int r = 0; r < H; r++) {
            rr[r] = blockIdx.x * H + r;
            rr[r + H] = ep.n + blockIdx.x * H + r;
        }
    } else {
#pragma unroll
        for (int r = 0; r < R; r++) rr[r] = min(row0 + r, ne1 - 1);
    }
#pragma unroll
    for (int c = 0; c < C; c++) tt[c] = min(t0 + c, T - 1);
    pdl_launch_dependents();
    k.template pre<R>(rr, threadIdx.x, NW * 32);
    pdl_wait();
    float acc[R][C];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int c = 0; c < C; c++) acc[r][c] = 0.0f;
    k.template run<R, C>(acc, rr, tt, threadIdx.x, NW * 32);
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int c = 0; c < C; c++) {
            const float v = warp_sum(acc[r][c]);
            if (lane == 0) red[warp][r * C + c] = v;
        }
    __syncthreads();
    if (EPI == EPI_STORE) {
        for (int i = threadIdx.x; i < R * C; i += NW * 32) {
            const int r = i / C, c = i % C;
            if (row0 + r >= ne1 || t0 + c >= T) continue;
            float s = 0.0f;
#pragma unroll
            for (int w = 0; w < NW; w++) s += red[w][i];
            y[(int64_t)(t0 + c) * ldy + row0 + r] = s;
        }
        return;
    }
    const int j0 = blockIdx.x * H;
    const mlxr_dtype ot = ep.out.type;
    if (threadIdx.x < H) {
        const int i = threadIdx.x;
        float g = 0.0f, u = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; w++) {
            g += red[w][i];
            u += red[w][i + H];
        }
        const float h = g / (1.0f + expf(-g)) * u;
        if (ot == MLXR_DTYPE_F16)
            ((__half *)ep.out.q)[j0 + i] = __float2half_rn(h);
        else
            ep.out.y[j0 + i] = h;
    }
    if (ot != MLXR_DTYPE_Q8_0) return;
    const int grp = j0 / QK;
    __threadfence(); /* this block's outputs are visible device-wide before it counts itself in */
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&ep.cnt[grp], 1u) == (unsigned)(QK / H - 1);
    __syncthreads();
    if (!last || warp != 0) return;
    __threadfence();
    put_block32(ep.out, ep.n, 0, grp, lane, __ldcg(ep.out.y + grp * 32 + lane), true);
    if (lane == 0) ep.cnt[grp] = 0;
}

/*
 * mlxr_matmul_resid_cuda: a cluster of 8 blocks owns rows 32c..32c+31, each block 4 of them with
 * the same inner loops and thread layout as a decode product (R = 4: its block strides the row
 * length). Each block writes its 4 sums into the first block's shared memory (distributed shared
 * memory); after one cluster barrier, warp 0 of the first block holds the group, lane j row
 * 32c + j, and does the residual add, the group's sum of squares and its 32 encoded outputs. So
 * no block waits on an atomic or a fence, and the grid has as many small blocks as a plain
 * product (one warp per row or one block per group measured 4-20 % slower on an H100: too few
 * loads in flight).
 */
#define RESID_R 4
#define RESID_CLUSTER (32 / RESID_R)
template <class K>
__global__ void __launch_bounds__(128)
    mm_resid_kernel(K k, float *__restrict__ x, const float *__restrict__ g, float *__restrict__ ss,
                    mlxr_cuda_out out, int ne1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 /* clusters; launched only there (resid_supported) */
    constexpr int NW = 4, R = RESID_R;
    __shared__ float red[NW][R];
    __shared__ float sums[32]; /* the cluster's first block: the group's 32 sums */
    cg::cluster_group cluster = cg::this_cluster();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const unsigned rank = cluster.block_rank();
    int rr[R];
    const int tt[1] = {0};
#pragma unroll
    for (int r = 0; r < R; r++) rr[r] = blockIdx.x * R + r;
    /* distributed shared memory may be touched only once every block of the cluster has started:
     * arrive now, wait just before the first remote write (by then that is long true) */
    asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
    pdl_launch_dependents();
    k.template pre<R>(rr, threadIdx.x, NW * 32);
    pdl_wait();
    float acc[R][1];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r][0] = 0.0f;
    k.template run<R, 1>(acc, rr, tt, threadIdx.x, NW * 32);
#pragma unroll
    for (int r = 0; r < R; r++) {
        const float v = warp_sum(acc[r][0]);
        if (lane == 0) red[warp][r] = v;
    }
    asm volatile("barrier.cluster.wait.aligned;\n" ::: "memory");
    __syncthreads();
    if (threadIdx.x < R) { /* into the first block's shared memory (distributed shared memory) */
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; w++) s += red[w][threadIdx.x];
        cluster.map_shared_rank(sums, 0)[rank * R + threadIdx.x] = s;
    }
    cluster.sync(); /* the writes are visible to the first block; then the others may exit */
    if (rank != 0 || warp != 0) return;
    const int grp = blockIdx.x / RESID_CLUSTER, r = grp * 32 + lane;
    const float v = x[r] + sums[lane];
    x[r] = v;
    const float p = warp_sum(v * v);
    if (lane == 0) ss[grp] = p;
    put_block32(out, ne1, 0, grp, lane, v * g[r], true);
#endif
}

/* Weight rows per block of a decode (T = 1) product. The matvec table of bench_cuda.c on an H100
 * (7B shapes, PDL on) gave 2 rows the best sum for every type (Q4_0: 2 rows 85 % of the copy
 * bandwidth, 4 rows 82 %, 8 rows 61 %; Q8_0 92/79/81 %; F16 85/80/61 %; Q4_K 76/71/59 %; Q6_K
 * 84/79/71 %), and the 7B Q4_0 model agreed (tg128 4 rows = 2 rows, 8 rows 14 % slower). */
static int g_rows_override;

static int decode_rows(mlxr_dtype t) {
    if (g_rows_override) return g_rows_override;
    static const int env = [] {
        const char *e = getenv("MLXR_CUDA_MV_ROWS");
        const int v = e ? atoi(e) : 0;
        return v == 2 || v == 4 || v == 8 ? v : 0;
    }();
    (void)t; /* one shape for all types for now; the argument keeps the per-type hook */
    return env ? env : 2;
}

extern "C" void mlxr_matvec_rows_cuda(int rows) {
    g_rows_override = rows == 2 || rows == 4 || rows == 8 ? rows : 0;
}

template <int EPI, class K>
static cudaError_t launch_mm(const K &k, mlxr_dtype type, float *y, int64_t ldy, int ne1, int T, const mm_epi &ep,
                             cudaStream_t st) {
    if constexpr (EPI == EPI_RESID) {
        (void)type, (void)y, (void)ldy, (void)T;
        return mlxr_launch_pdl_cluster(mm_resid_kernel<K>, dim3((unsigned)(ne1 / RESID_R)), dim3(128), 0, st,
                                       RESID_CLUSTER, k, ep.x, ep.g, ep.ss_out, ep.out, ne1);
    } else {
        if (T == 1) {
            const int R = decode_rows(type);
            const dim3 grid((unsigned)(EPI == EPI_SWIGLU ? ep.n / (R / 2) : (ne1 + R - 1) / R), 1);
            switch (R) {
            case 8: return mlxr_launch_pdl(mm_kernel<8, 1, 4, EPI, K>, grid, dim3(128), 0, st, k, y, ldy, ne1, T, ep);
            case 4: return mlxr_launch_pdl(mm_kernel<4, 1, 4, EPI, K>, grid, dim3(128), 0, st, k, y, ldy, ne1, T, ep);
            default: return mlxr_launch_pdl(mm_kernel<2, 1, 4, EPI, K>, grid, dim3(128), 0, st, k, y, ldy, ne1, T, ep);
            }
        }
        if constexpr (EPI == EPI_STORE) {
            const dim3 grid((unsigned)((ne1 + 3) / 4), (unsigned)((T + 7) / 8));
            return mlxr_launch_pdl(mm_kernel<4, 8, 4, EPI_STORE, K>, grid, dim3(128), 0, st, k, y, ldy, ne1, T, ep);
        }
        return cudaErrorInvalidValue;
    }
}

/* Run launch_mm<EPI> with the inner loop of w's type. */
template <int EPI>
static cudaError_t dispatch_mm(const mlxr_cuda_mat *w, const void *xq, const float *xd, int32_t T, float *y,
                               int64_t ldy, const mm_epi &ep, cudaStream_t st) {
    const int ne0 = (int)w->ne0, ne1 = (int)w->ne1;
    const uint8_t *wm = (const uint8_t *)w->d;
    const int8_t *x8 = (const int8_t *)xq;
    switch (w->type) {
    case MLXR_DTYPE_Q8_0:
        return launch_mm<EPI>(mm_q8_0{(const int8_t *)w->q, (const __half *)w->d, x8, xd, ne0}, w->type, y, ldy, ne1,
                              T, ep, st);
    case MLXR_DTYPE_Q4_0:
        return launch_mm<EPI>(mm_q4_0{(const uint8_t *)w->q, (const __half *)w->d, x8, xd, ne0}, w->type, y, ldy, ne1,
                              T, ep, st);
    case MLXR_DTYPE_Q4_K:
        return launch_mm<EPI>(mm_k<MLXR_DTYPE_Q4_K>{(const uint8_t *)w->q, wm, x8, xd, ne0}, w->type, y, ldy, ne1, T,
                              ep, st);
    case MLXR_DTYPE_Q5_K:
        return launch_mm<EPI>(mm_k<MLXR_DTYPE_Q5_K>{(const uint8_t *)w->q, wm, x8, xd, ne0}, w->type, y, ldy, ne1, T,
                              ep, st);
    case MLXR_DTYPE_Q6_K:
        return launch_mm<EPI>(mm_k<MLXR_DTYPE_Q6_K>{(const uint8_t *)w->q, wm, x8, xd, ne0}, w->type, y, ldy, ne1, T,
                              ep, st);
    case MLXR_DTYPE_F16:
        return launch_mm<EPI>(mm_f16{(const __half *)w->q, (const __half *)xq, ne0}, w->type, y, ldy, ne1, T, ep, st);
    case MLXR_DTYPE_F32:
        return launch_mm<EPI>(mm_f32{(const float *)w->q, (const float *)xq, ne0}, w->type, y, ldy, ne1, T, ep, st);
    default: {
        mlx_par p;
        if (!mlx_par_of(w->type, &p)) return cudaErrorInvalidValue;
        const unsigned *wd = (const unsigned *)w->d;
        if (p.bits == 4)
            return launch_mm<EPI>(mm_mlx<4>{(const uint8_t *)w->q, wd, x8, xd, ne0, mlx_aux(p)}, w->type, y, ldy,
                                  ne1, T, ep, st);
        return launch_mm<EPI>(mm_mlx<8>{(const uint8_t *)w->q, wd, x8, xd, ne0, mlx_aux(p)}, w->type, y, ldy, ne1,
                              T, ep, st);
    }
    }
}

/* Batches above this many tokens take the tiled GEMM (gemm.cu) for the shapes it takes (all but
 * F32 weights and F16 rows that are not a multiple of 32: those stay on CUDA cores). Why 32: on
 * an H100 (7B Q4_0, session 4) a GEMM call costs about the same from T = 9 to T = 128 (200-300 us
 * for a 4096-wide layer matrix: its blocks are latency-bound, and below 128 tokens there are too
 * few of them), while the CUDA-core product costs about 2.2x its T = 1 time per 8 tokens; so
 * batched decoding of up to 32 sequences stays on CUDA cores (8-token tiles), or for Q4_0/Q8_0
 * weights from 9 to 64 sequences goes to the int8 tensor-core product (mmq.cu), which mlxr_matmul_cuda
 * and mlxr_cuda_act_enc check first. */
#define GEMM_MIN_T MLXR_CUDA_GEMM_MIN_T

extern "C" mlxr_cuda_enc mlxr_cuda_act_enc(const mlxr_cuda_mat *w, int32_t T) {
    if (mlxr_mmq_supported_cuda(w->type, w->ne0, T)) return MLXR_CUDA_ENC_Q8_0;
    if (T > GEMM_MIN_T && mlxr_gemm_supported_cuda(w->type, w->ne0))
        return w->type == MLXR_DTYPE_F16 ? MLXR_CUDA_ENC_F16 : MLXR_CUDA_ENC_F16_Q8_0;
    switch (w->type) {
    case MLXR_DTYPE_Q8_0:
    case MLXR_DTYPE_Q4_0:
    case MLXR_DTYPE_Q4_K:
    case MLXR_DTYPE_Q5_K:
    case MLXR_DTYPE_Q6_K: return MLXR_CUDA_ENC_Q8_0;
    case MLXR_DTYPE_F16: return MLXR_CUDA_ENC_F16;
    default: return mlx_is_type(w->type) ? MLXR_CUDA_ENC_Q8_0 : MLXR_CUDA_ENC_F32;
    }
}

extern "C" mlxr_dtype mlxr_cuda_enc_direct(mlxr_cuda_enc e) {
    return e == MLXR_CUDA_ENC_F16 ? MLXR_DTYPE_F16 : e == MLXR_CUDA_ENC_Q8_0 ? MLXR_DTYPE_Q8_0 : MLXR_DTYPE_F32;
}

extern "C" cudaError_t mlxr_matmul_cuda(const mlxr_cuda_mat *w, const void *xq, const float *xd,
                                        int32_t T, float *y, int64_t ldy, cudaStream_t st) {
    if (T <= 0 || w->ne1 <= 0) return cudaSuccess;
    if (ldy < w->ne1) return cudaErrorInvalidValue;
    if (T > 65535 * 8 || w->ne1 > INT32_MAX / 2 || w->ne0 * w->ne1 > ((int64_t)1 << 40))
        return cudaErrorInvalidValue;
    if (!mlxr_cuda_mat_supported(w->type, w->ne0)) return cudaErrorInvalidValue;
    if (mlxr_mmq_supported_cuda(w->type, w->ne0, T)) return mlxr_mmq_cuda(w, xq, xd, T, y, ldy, st);
    if (T > GEMM_MIN_T && mlxr_gemm_supported_cuda(w->type, w->ne0))
        return mlxr_gemm_cuda(w, xq, T, y, ldy, st);
    return dispatch_mm<EPI_STORE>(w, xq, xd, T, y, ldy, mm_epi{}, st);
}

extern "C" bool mlxr_matmul_swiglu_supported_cuda(const mlxr_cuda_mat *w, int32_t T, mlxr_dtype out_type) {
    if (T != 1 || !w->cnt || w->ne1 % 2 || w->ne1 > INT32_MAX / 2 || !mlxr_cuda_mat_supported(w->type, w->ne0))
        return false;
    const int64_t n = w->ne1 / 2;
    switch (out_type) {
    case MLXR_DTYPE_Q8_0: return n % 32 == 0;
    case MLXR_DTYPE_F16:
    case MLXR_DTYPE_F32: return n % 8 == 0; /* whole blocks of up to 8 rows (4 outputs) */
    default: return false;
    }
}

extern "C" cudaError_t mlxr_matmul_swiglu_cuda(const mlxr_cuda_mat *w, const void *xq, const float *xd,
                                               const mlxr_cuda_out *out, cudaStream_t st) {
    if (!mlxr_matmul_swiglu_supported_cuda(w, 1, out->type)) return cudaErrorInvalidValue;
    mm_epi ep = {};
    ep.out = *out;
    ep.cnt = w->cnt;
    ep.n = (int)(w->ne1 / 2);
    return dispatch_mm<EPI_SWIGLU>(w, xq, xd, 1, out->y, w->ne1, ep, st);
}

extern "C" bool mlxr_matmul_resid_supported_cuda(const mlxr_cuda_mat *w, mlxr_dtype out_type) {
    return mlxr_cuda_sm90() && w->ne1 > 0 && w->ne1 % 32 == 0 && w->ne1 <= 32 * MLXR_CUDA_RMS_PARTS &&
           mlxr_cuda_mat_supported(w->type, w->ne0) &&
           (out_type == MLXR_DTYPE_Q8_0 || out_type == MLXR_DTYPE_F16 || out_type == MLXR_DTYPE_F32);
}

extern "C" cudaError_t mlxr_matmul_resid_cuda(const mlxr_cuda_mat *w, const void *xq, const float *xd, float *x,
                                              const float *g, float *ss, const mlxr_cuda_out *out, cudaStream_t st) {
    if (!mlxr_matmul_resid_supported_cuda(w, out->type)) return cudaErrorInvalidValue;
    mm_epi ep = {};
    ep.out = *out;
    ep.x = x;
    ep.g = g;
    ep.ss_out = ss;
    return dispatch_mm<EPI_RESID>(w, xq, xd, 1, NULL, w->ne1, ep, st);
}

/* ---- upload ---------------------------------------------------------------------------------- */

extern "C" bool mlxr_cuda_mat_supported(mlxr_dtype type, int64_t ne0) {
    switch (type) {
    case MLXR_DTYPE_Q8_0:
    case MLXR_DTYPE_Q4_0: return ne0 > 0 && ne0 % QK == 0;
    case MLXR_DTYPE_Q4_K:
    case MLXR_DTYPE_Q5_K:
    case MLXR_DTYPE_Q6_K: return ne0 > 0 && ne0 % MLXR_CUDA_QK_K == 0;
    case MLXR_DTYPE_F16: return ne0 > 0 && ne0 % 8 == 0;
    case MLXR_DTYPE_F32: return ne0 > 0 && ne0 % 4 == 0;
    default: {
        mlx_par p; /* whole groups (of 32, 64 or 128: whole Q8_0 activation blocks too) */
        return mlx_par_of(type, &p) && ne0 > 0 && ne0 % p.gs == 0;
    }
    }
}

/* Where a quantized block's parts go: GGUF block of `bsz` bytes holding `qk` values; bytes
 * [q_off, q_off + q_len) to the quant array, [m_off, m_off + m_len) to the header/scale array. */
typedef struct block_split {
    int qk, bsz, q_off, q_len, m_off, m_len;
} block_split;

static bool split_of(mlxr_dtype type, block_split *s) {
    switch (type) {
    case MLXR_DTYPE_Q8_0: *s = (block_split){QK, 34, 2, 32, 0, 2}; return true;
    case MLXR_DTYPE_Q4_0: *s = (block_split){QK, 18, 2, 16, 0, 2}; return true;
    case MLXR_DTYPE_Q4_K: *s = (block_split){256, 144, 16, 128, 0, 16}; return true; /* d dmin sc | qs */
    case MLXR_DTYPE_Q5_K: *s = (block_split){256, 176, 16, 160, 0, 16}; return true; /* d dmin sc | qh qs */
    case MLXR_DTYPE_Q6_K: *s = (block_split){256, 210, 0, 192, 192, 18}; return true; /* ql qh | sc d */
    default: {
        mlx_par p; /* scale bias | codes */
        if (!mlx_par_of(type, &p)) return false;
        const int qb = p.gs * p.bits / 8;
        *s = (block_split){p.gs, 4 + qb, 4, qb, 0, 4};
        return true;
    }
    }
}

/* Bytes per row of the quant array and of the scale array. */
static void row_parts(mlxr_dtype type, int64_t ne0, size_t *qb, size_t *db) {
    *db = 0;
    block_split bs;
    if (split_of(type, &bs)) {
        *qb = (size_t)(ne0 / bs.qk) * (size_t)bs.q_len;
        *db = (size_t)(ne0 / bs.qk) * (size_t)bs.m_len;
        return;
    }
    switch (type) {
    case MLXR_DTYPE_F16: *qb = (size_t)ne0 * 2; break;
    default: *qb = (size_t)ne0 * 4; break;
    }
}

extern "C" size_t mlxr_cuda_mat_bytes(const mlxr_cuda_mat *m) {
    size_t qb, db;
    row_parts(m->type, m->ne0, &qb, &db);
    return (qb + db) * (size_t)m->ne1;
}

extern "C" void mlxr_cuda_mat_free(mlxr_cuda_mat *m) {
    if (!m) return;
    cudaFree(m->q);
    cudaFree(m->d);
    cudaFree(m->cnt);
    m->q = NULL;
    m->d = NULL;
    m->cnt = NULL;
}

/* Split `nr` GGUF rows into quant rows (q) and scale rows (d). */
static void split_rows(mlxr_dtype type, const uint8_t *src, size_t row_bytes, int64_t ne0, int64_t nr,
                       uint8_t *q, uint8_t *d) {
    block_split bs = {1, 0, 0, 0, 0, 0};
    if (!split_of(type, &bs)) return;
    const int64_t nb = ne0 / bs.qk;
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *s = src + (size_t)r * row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            const size_t i = (size_t)r * (size_t)nb + (size_t)b;
            memcpy(d + i * (size_t)bs.m_len, s + (size_t)b * bs.bsz + bs.m_off, (size_t)bs.m_len);
            memcpy(q + i * (size_t)bs.q_len, s + (size_t)b * bs.bsz + bs.q_off, (size_t)bs.q_len);
        }
    }
}

extern "C" mlxr_status mlxr_cuda_mat_alloc(mlxr_cuda_mat *m, mlxr_dtype type, int64_t ne0, int64_t ne1,
                                           mlxr_err *err) {
    memset(m, 0, sizeof *m);
    if (!mlxr_cuda_mat_supported(type, ne0) || ne1 <= 0)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "CUDA backend: no device matrix kernel for type %d with %lld x %lld elements",
                         (int)type, (long long)ne1, (long long)ne0);
    m->type = type;
    m->ne0 = ne0;
    m->ne1 = ne1;
    size_t qb, db;
    row_parts(type, ne0, &qb, &db);
    mlxr_status st = mlxr_cuda_status(cudaMalloc(&m->q, qb * (size_t)ne1), err, "cudaMalloc(weights)",
                                      __FILE__, __LINE__);
    if (st == MLXR_OK && db)
        st = mlxr_cuda_status(cudaMalloc((void **)&m->d, db * (size_t)ne1), err,
                              "cudaMalloc(weight scales)", __FILE__, __LINE__);
    /* group counters of the fused SwiGLU product (32 outputs = 64 rows per group at least) */
    const size_t cnt_bytes = ((size_t)ne1 / 64 + 1) * sizeof(unsigned);
    if (st == MLXR_OK)
        st = mlxr_cuda_status(cudaMalloc((void **)&m->cnt, cnt_bytes), err, "cudaMalloc(counters)", __FILE__,
                              __LINE__);
    if (st == MLXR_OK)
        st = mlxr_cuda_status(cudaMemset(m->cnt, 0, cnt_bytes), err, "cudaMemset(counters)", __FILE__, __LINE__);
    if (st != MLXR_OK) mlxr_cuda_mat_free(m);
    return st;
}

extern "C" mlxr_status mlxr_cuda_mat_set_rows(mlxr_cuda_mat *m, int64_t r0, const void *data, int64_t nr,
                                              size_t row_bytes, mlxr_err *err) {
    if (r0 < 0 || nr < 0 || r0 + nr > m->ne1)
        return MLXR_FAIL(err, MLXR_ERR_INTERNAL, "rows %lld..%lld outside a matrix of %lld rows",
                         (long long)r0, (long long)(r0 + nr), (long long)m->ne1);
    size_t qb, db;
    row_parts(m->type, m->ne0, &qb, &db);
    if (!db) /* plain rows: one copy, strided if the file pads rows */
        return mlxr_cuda_status(cudaMemcpy2D((uint8_t *)m->q + (size_t)r0 * qb, qb, data, row_bytes, qb,
                                             (size_t)nr, cudaMemcpyHostToDevice),
                                err, "cudaMemcpy2D(weights)", __FILE__, __LINE__);
    /* quantized: split through a staging buffer of at most ~32 MiB of rows */
    int64_t chunk = (int64_t)((32u << 20) / (qb + db));
    if (chunk < 1) chunk = 1;
    if (chunk > nr) chunk = nr;
    uint8_t *sq = (uint8_t *)malloc((size_t)chunk * qb + 1);
    uint8_t *sd = (uint8_t *)malloc((size_t)chunk * db + 1);
    mlxr_status st = MLXR_OK;
    if (!sq || !sd) st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for the upload buffer");
    for (int64_t r = 0; st == MLXR_OK && r < nr; r += chunk) {
        const int64_t n = r + chunk < nr ? chunk : nr - r;
        split_rows(m->type, (const uint8_t *)data + (size_t)r * row_bytes, row_bytes, m->ne0, n, sq, sd);
        st = mlxr_cuda_status(cudaMemcpy((uint8_t *)m->q + (size_t)(r0 + r) * qb, sq, (size_t)n * qb,
                                         cudaMemcpyHostToDevice),
                              err, "cudaMemcpy(weights)", __FILE__, __LINE__);
        if (st == MLXR_OK)
            st = mlxr_cuda_status(cudaMemcpy((uint8_t *)m->d + (size_t)(r0 + r) * db, sd, (size_t)n * db,
                                             cudaMemcpyHostToDevice),
                                  err, "cudaMemcpy(weight scales)", __FILE__, __LINE__);
    }
    free(sq);
    free(sd);
    return st;
}

extern "C" mlxr_status mlxr_cuda_mat_upload(mlxr_cuda_mat *m, mlxr_dtype type, const void *data,
                                            int64_t ne0, int64_t ne1, size_t row_bytes, mlxr_err *err) {
    mlxr_status st = mlxr_cuda_mat_alloc(m, type, ne0, ne1, err);
    if (st == MLXR_OK) st = mlxr_cuda_mat_set_rows(m, 0, data, ne1, row_bytes, err);
    if (st != MLXR_OK) mlxr_cuda_mat_free(m);
    return st;
}
