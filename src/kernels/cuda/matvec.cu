/*
 * matvec.cu - weight upload and matrix products (see matvec.h).
 *
 * Product kernel shape: a block of NW warps owns R consecutive weight rows and C consecutive
 * tokens; its 32*NW threads stride over the row length 16 bytes of weights at a time, so each
 * weight load is one coalesced 512-byte warp access and serves C tokens (the per-block split of
 * the row length, rather than one warp per row, keeps enough loads in flight to fill HBM with
 * only ne1/R blocks). Partial sums are reduced in the warp, then across warps in shared memory.
 * Decode (T = 1) uses R = 2, C = 1; batches of 2..8 use R = 4, C = 8, reading each weight tile
 * once per 8 tokens; larger batches go to the tensor-core kernel further down. Rows and tokens
 * past the end are clamped for the loads and skipped on the store.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_err.h"
#include "kernels/cuda/matvec.h"

#include <stdlib.h>
#include <string.h>

extern "C" {
#include "util/err.h"
}

#define QK 32

/* ---- per-type inner loops: accumulate acc[r][c] over this thread's share of the row -------- */

struct mm_q8_0 {
    const int8_t *wq;
    const __half *wd;
    const int8_t *xq;
    const float *xd;
    int ne0;

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

    template <int R, int C>
    __device__ __forceinline__ void run(float (&acc)[R][C], const int (&rr)[R], const int (&tt)[C],
                                        int tid, int nth) const {
        const int nb = ne0 / QK;
        const int m = 0x0F0F0F0F;
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
                /* sum(x) for the -8 offset of every nibble */
                int sx = __dp4a(lo.x, 0x01010101, 0);
                sx = __dp4a(lo.y, 0x01010101, sx);
                sx = __dp4a(lo.z, 0x01010101, sx);
                sx = __dp4a(lo.w, 0x01010101, sx);
                sx = __dp4a(hi.x, 0x01010101, sx);
                sx = __dp4a(hi.y, 0x01010101, sx);
                sx = __dp4a(hi.z, 0x01010101, sx);
                sx = __dp4a(hi.w, 0x01010101, sx);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    int s = __dp4a(w[r].x & m, lo.x, 0);
                    s = __dp4a(w[r].y & m, lo.y, s);
                    s = __dp4a(w[r].z & m, lo.z, s);
                    s = __dp4a(w[r].w & m, lo.w, s);
                    s = __dp4a((w[r].x >> 4) & m, hi.x, s);
                    s = __dp4a((w[r].y >> 4) & m, hi.y, s);
                    s = __dp4a((w[r].z >> 4) & m, hi.z, s);
                    s = __dp4a((w[r].w >> 4) & m, hi.w, s);
                    acc[r][c] += (float)(s - 8 * sx) * (dw[r] * dx);
                }
            }
        }
    }
};

struct mm_f16 {
    const __half *w;
    const __half *x;
    int ne0;

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

template <int R, int C, int NW, class K>
__global__ void __launch_bounds__(NW * 32) mm_kernel(K k, float *__restrict__ y, int64_t ldy, int ne1, int T) {
    __shared__ float red[NW][R * C];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int row0 = blockIdx.x * R, t0 = blockIdx.y * C;
    int rr[R], tt[C];
#pragma unroll
    for (int r = 0; r < R; r++) rr[r] = min(row0 + r, ne1 - 1);
#pragma unroll
    for (int c = 0; c < C; c++) tt[c] = min(t0 + c, T - 1);
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
    for (int i = threadIdx.x; i < R * C; i += NW * 32) {
        const int r = i / C, c = i % C;
        if (row0 + r >= ne1 || t0 + c >= T) continue;
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; w++) s += red[w][i];
        y[(int64_t)(t0 + c) * ldy + row0 + r] = s;
    }
}

template <class K>
static cudaError_t launch_mm(const K &k, float *y, int64_t ldy, int ne1, int T, cudaStream_t st) {
    if (T == 1) {
        const dim3 grid((unsigned)((ne1 + 1) / 2), 1);
        mm_kernel<2, 1, 4, K><<<grid, 128, 0, st>>>(k, y, ldy, ne1, T);
    } else {
        const dim3 grid((unsigned)((ne1 + 3) / 4), (unsigned)((T + 7) / 8));
        mm_kernel<4, 8, 4, K><<<grid, 128, 0, st>>>(k, y, ldy, ne1, T);
    }
    return cudaGetLastError();
}

/* ---- batches of more than 8 tokens: tensor cores (mma.sync, sm_80+) ------------------------
 *
 * A block of 4 warps computes 64 weight rows x NT*8 tokens; warp w owns rows 16w..16w+15 and all
 * NT n8 tiles of tokens. Q8_0/Q4_0: per 32-element block one m16n8k32 s8 x s8 -> s32 product per
 * tile (Q4_0 nibbles are widened to s8 in registers with __vsub4), then, exactly like the
 * reference, the block's integer sum times (d_w * d_x) is added in f32. F16: m16n8k16 with f32
 * accumulation. Fragments are read straight from global memory (L1-cached: all warps share the
 * token rows); rows and tokens past the end are clamped for loads and skipped on stores.
 */
__device__ __forceinline__ void mma_s8(int (&c)[4], int a0, int a1, int a2, int a3, int b0, int b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};\n"
                 : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(0), "r"(0), "r"(0), "r"(0));
}

__device__ __forceinline__ void mma_f16(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                        unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ int ld32(const void *p) {
    return __ldg(reinterpret_cast<const int *>(p));
}

#define MMQ_ROWS 64
#define MMQ_STAGES 2 /* 3 measured slower for pp512 on H100 (more registers, fewer blocks) */

/* One k step's fragments: A (weights) of this warp's 16 rows, B (activations) of NT n8 tiles,
 * and for the quantized types the block scales of both. Loaded MMQ_STAGES - 1 steps ahead of
 * their use (software pipelining), so load latency hides behind the products of earlier steps. */
template <int NT> struct mmq_frag {
    int a[4];
    int b[NT][2];
    float dw[2];
    float dx[NT][2];
};

template <int TYPE, int NT>
__device__ __forceinline__ void mmq_load(mmq_frag<NT> &f, int k, const void *__restrict__ wq,
                                         const __half *__restrict__ wd, const void *__restrict__ xa,
                                         const float *__restrict__ xd, int ne0, int r0, int r1, const int (&tb)[NT],
                                         const int (&tc0)[NT], const int (&tc1)[NT], int tig) {
    if (TYPE == MLXR_DTYPE_F16) { /* k: element offset, step 16 */
        const __half *w = (const __half *)wq, *x = (const __half *)xa;
        f.a[0] = ld32(w + (int64_t)r0 * ne0 + k + tig * 2);
        f.a[1] = ld32(w + (int64_t)r1 * ne0 + k + tig * 2);
        f.a[2] = ld32(w + (int64_t)r0 * ne0 + k + 8 + tig * 2);
        f.a[3] = ld32(w + (int64_t)r1 * ne0 + k + 8 + tig * 2);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const __half *xb = x + (int64_t)tb[nt] * ne0 + k + tig * 2;
            f.b[nt][0] = ld32(xb);
            f.b[nt][1] = ld32(xb + 8);
        }
        return;
    }
    const int nb = ne0 / QK; /* k: block index, step 1 */
    if (TYPE == MLXR_DTYPE_Q8_0) {
        const int8_t *w0 = (const int8_t *)wq + (int64_t)r0 * ne0 + k * QK + tig * 4;
        const int8_t *w1 = (const int8_t *)wq + (int64_t)r1 * ne0 + k * QK + tig * 4;
        f.a[0] = ld32(w0);
        f.a[2] = ld32(w0 + 16);
        f.a[1] = ld32(w1);
        f.a[3] = ld32(w1 + 16);
    } else { /* byte j of a block: low nibble = element j, high nibble = element j + 16; widened
                to s8 in the compute step */
        f.a[0] = ld32((const uint8_t *)wq + (int64_t)r0 * (ne0 / 2) + k * 16 + tig * 4);
        f.a[1] = ld32((const uint8_t *)wq + (int64_t)r1 * (ne0 / 2) + k * 16 + tig * 4);
    }
    f.dw[0] = __half2float(wd[(int64_t)r0 * nb + k]);
    f.dw[1] = __half2float(wd[(int64_t)r1 * nb + k]);
    const int8_t *x = (const int8_t *)xa;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int8_t *xb = x + (int64_t)tb[nt] * ne0 + k * QK + tig * 4;
        f.b[nt][0] = ld32(xb);
        f.b[nt][1] = ld32(xb + 16);
        f.dx[nt][0] = __ldg(xd + (int64_t)tc0[nt] * nb + k);
        f.dx[nt][1] = __ldg(xd + (int64_t)tc1[nt] * nb + k);
    }
}

template <int TYPE, int NT>
__device__ __forceinline__ void mmq_compute(float (&acc)[NT][4], const mmq_frag<NT> &f) {
    if (TYPE == MLXR_DTYPE_F16) {
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
            mma_f16(acc[nt], f.a[0], f.a[1], f.a[2], f.a[3], f.b[nt][0], f.b[nt][1]);
        return;
    }
    int a0 = f.a[0], a1 = f.a[1], a2 = f.a[2], a3 = f.a[3];
    if (TYPE == MLXR_DTYPE_Q4_0) {
        const unsigned v0 = (unsigned)f.a[0], v1 = (unsigned)f.a[1];
        a0 = (int)__vsub4(v0 & 0x0F0F0F0Fu, 0x08080808u);
        a2 = (int)__vsub4((v0 >> 4) & 0x0F0F0F0Fu, 0x08080808u);
        a1 = (int)__vsub4(v1 & 0x0F0F0F0Fu, 0x08080808u);
        a3 = (int)__vsub4((v1 >> 4) & 0x0F0F0F0Fu, 0x08080808u);
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        int c[4];
        mma_s8(c, a0, a1, a2, a3, f.b[nt][0], f.b[nt][1]);
        acc[nt][0] += (float)c[0] * (f.dw[0] * f.dx[nt][0]);
        acc[nt][1] += (float)c[1] * (f.dw[0] * f.dx[nt][1]);
        acc[nt][2] += (float)c[2] * (f.dw[1] * f.dx[nt][0]);
        acc[nt][3] += (float)c[3] * (f.dw[1] * f.dx[nt][1]);
    }
}

template <int TYPE, int NT> /* TYPE: MLXR_DTYPE_Q8_0, _Q4_0 or _F16; NT n8 token tiles per block */
__global__ void __launch_bounds__(128)
    mmq_kernel(const void *__restrict__ wq, const __half *__restrict__ wd, const void *__restrict__ xa,
               const float *__restrict__ xd, float *__restrict__ y, int64_t ldy, int ne0, int ne1, int T) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gid = lane >> 2, tig = lane & 3;
    const int rb = blockIdx.x * MMQ_ROWS + warp * 16, t0 = blockIdx.y * (NT * 8);
    const int r0 = min(rb + gid, ne1 - 1), r1 = min(rb + gid + 8, ne1 - 1);
    int tb[NT], tc0[NT], tc1[NT]; /* token of the B column; tokens of the two C columns */
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        tb[nt] = min(t0 + nt * 8 + gid, T - 1);
        tc0[nt] = min(t0 + nt * 8 + tig * 2, T - 1);
        tc1[nt] = min(t0 + nt * 8 + tig * 2 + 1, T - 1);
    }
    float acc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[nt][e] = 0.0f;
    /* a ring of MMQ_STAGES fragment sets: step k is loaded MMQ_STAGES - 1 steps before its use */
    const int step = TYPE == MLXR_DTYPE_F16 ? 16 : 1, kend = TYPE == MLXR_DTYPE_F16 ? ne0 : ne0 / QK;
    mmq_frag<NT> f[MMQ_STAGES];
#pragma unroll
    for (int s = 0; s < MMQ_STAGES - 1; s++)
        if (s * step < kend) mmq_load<TYPE, NT>(f[s], s * step, wq, wd, xa, xd, ne0, r0, r1, tb, tc0, tc1, tig);
    for (int k = 0; k < kend; k += MMQ_STAGES * step) {
#pragma unroll
        for (int s = 0; s < MMQ_STAGES; s++) {
            const int kk = k + s * step, kl = kk + (MMQ_STAGES - 1) * step;
            if (kl < kend)
                mmq_load<TYPE, NT>(f[(s + MMQ_STAGES - 1) % MMQ_STAGES], kl, wq, wd, xa, xd, ne0, r0, r1, tb, tc0,
                                   tc1, tig);
            if (kk < kend) mmq_compute<TYPE, NT>(acc, f[s]);
        }
    }
    const int rr0 = rb + gid, rr1 = rb + gid + 8;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int ta = t0 + nt * 8 + tig * 2, tb2 = ta + 1;
        if (rr0 < ne1 && ta < T) y[(int64_t)ta * ldy + rr0] = acc[nt][0];
        if (rr0 < ne1 && tb2 < T) y[(int64_t)tb2 * ldy + rr0] = acc[nt][1];
        if (rr1 < ne1 && ta < T) y[(int64_t)ta * ldy + rr1] = acc[nt][2];
        if (rr1 < ne1 && tb2 < T) y[(int64_t)tb2 * ldy + rr1] = acc[nt][3];
    }
}

template <int NT>
static void launch_mmq_nt(const mlxr_cuda_mat *w, const void *xq, const float *xd, int32_t T, float *y, int64_t ldy,
                          cudaStream_t st) {
    const dim3 grid((unsigned)((w->ne1 + MMQ_ROWS - 1) / MMQ_ROWS), (unsigned)((T + NT * 8 - 1) / (NT * 8)));
    const int ne0 = (int)w->ne0, ne1 = (int)w->ne1;
    if (w->type == MLXR_DTYPE_Q8_0)
        mmq_kernel<MLXR_DTYPE_Q8_0, NT><<<grid, 128, 0, st>>>(w->q, (const __half *)w->d, xq, xd, y, ldy, ne0, ne1, T);
    else if (w->type == MLXR_DTYPE_Q4_0)
        mmq_kernel<MLXR_DTYPE_Q4_0, NT><<<grid, 128, 0, st>>>(w->q, (const __half *)w->d, xq, xd, y, ldy, ne0, ne1, T);
    else
        mmq_kernel<MLXR_DTYPE_F16, NT><<<grid, 128, 0, st>>>(w->q, NULL, xq, NULL, y, ldy, ne0, ne1, T);
}

/* 64 tokens per block for long batches (more weight reuse: measured best for pp512), 32 below
 * 256 tokens (twice the blocks, to fill the device). */
static cudaError_t launch_mmq(const mlxr_cuda_mat *w, const void *xq, const float *xd, int32_t T, float *y,
                              int64_t ldy, cudaStream_t st) {
    if (T >= 256)
        launch_mmq_nt<8>(w, xq, xd, T, y, ldy, st);
    else
        launch_mmq_nt<4>(w, xq, xd, T, y, ldy, st);
    return cudaGetLastError();
}

/* Batches above this many tokens take the tensor-core kernel (types Q8_0, Q4_0, F16). */
#define MMQ_MIN_T 8

extern "C" cudaError_t mlxr_matmul_cuda(const mlxr_cuda_mat *w, const void *xq, const float *xd,
                                        int32_t T, float *y, int64_t ldy, cudaStream_t st) {
    if (T <= 0 || w->ne1 <= 0) return cudaSuccess;
    if (ldy < w->ne1) return cudaErrorInvalidValue;
    if (T > 65535 * 8 || w->ne1 > INT32_MAX / 2 || w->ne0 * w->ne1 > ((int64_t)1 << 40))
        return cudaErrorInvalidValue;
    const int ne0 = (int)w->ne0, ne1 = (int)w->ne1;
    if (T > MMQ_MIN_T && (w->type == MLXR_DTYPE_Q8_0 || w->type == MLXR_DTYPE_Q4_0 ||
                          (w->type == MLXR_DTYPE_F16 && ne0 % 16 == 0)))
        return launch_mmq(w, xq, xd, T, y, ldy, st);
    switch (w->type) {
    case MLXR_DTYPE_Q8_0:
        return launch_mm(mm_q8_0{(const int8_t *)w->q, (const __half *)w->d, (const int8_t *)xq, xd, ne0},
                         y, ldy, ne1, T, st);
    case MLXR_DTYPE_Q4_0:
        return launch_mm(mm_q4_0{(const uint8_t *)w->q, (const __half *)w->d, (const int8_t *)xq, xd, ne0},
                         y, ldy, ne1, T, st);
    case MLXR_DTYPE_F16:
        return launch_mm(mm_f16{(const __half *)w->q, (const __half *)xq, ne0}, y, ldy, ne1, T, st);
    case MLXR_DTYPE_F32:
        return launch_mm(mm_f32{(const float *)w->q, (const float *)xq, ne0}, y, ldy, ne1, T, st);
    default: return cudaErrorInvalidValue;
    }
}

/* ---- activation encoding ------------------------------------------------------------------ */

/* One warp per 32-value block. */
__global__ void quantize_q8_0_kernel(const float *__restrict__ x, int64_t n_blocks,
                                     int8_t *__restrict__ q, float *__restrict__ d) {
    const int lane = threadIdx.x & 31;
    const int64_t b = blockIdx.x * (int64_t)(blockDim.x / 32) + (threadIdx.x >> 5);
    if (b >= n_blocks) return;
    const mlxr_cuda_out o = {MLXR_DTYPE_Q8_0, NULL, q, d};
    put_block32(o, 32, b, 0, lane, x[b * QK + lane], true);
}

__global__ void to_f16_kernel(const float *__restrict__ x, int64_t n, __half *__restrict__ y) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = __float2half_rn(x[i]);
}

extern "C" cudaError_t mlxr_encode_cuda(mlxr_dtype vt, const float *x, int64_t n, int32_t T,
                                        void *xq, float *xd, cudaStream_t st) {
    if (T <= 0 || n <= 0) return cudaSuccess;
    const int64_t total = n * T;
    if (vt == MLXR_DTYPE_Q8_0) {
        if (n % QK) return cudaErrorInvalidValue;
        const int64_t nb = total / QK;
        quantize_q8_0_kernel<<<(unsigned)((nb + 7) / 8), 256, 0, st>>>(x, nb, (int8_t *)xq, xd);
    } else if (vt == MLXR_DTYPE_F16) {
        int64_t blocks = (total + 255) / 256;
        if (blocks > 65535) blocks = 65535;
        to_f16_kernel<<<(unsigned)blocks, 256, 0, st>>>(x, total, (__half *)xq);
    } else if (vt != MLXR_DTYPE_F32) {
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

/* ---- upload ---------------------------------------------------------------------------------- */

extern "C" bool mlxr_cuda_mat_supported(mlxr_dtype type, int64_t ne0) {
    switch (type) {
    case MLXR_DTYPE_Q8_0:
    case MLXR_DTYPE_Q4_0: return ne0 > 0 && ne0 % QK == 0;
    case MLXR_DTYPE_F16: return ne0 > 0 && ne0 % 8 == 0;
    case MLXR_DTYPE_F32: return ne0 > 0 && ne0 % 4 == 0;
    default: return false;
    }
}

extern "C" mlxr_dtype mlxr_cuda_vec_dot_type(mlxr_dtype type) {
    return type == MLXR_DTYPE_Q8_0 || type == MLXR_DTYPE_Q4_0 ? MLXR_DTYPE_Q8_0 : type;
}

/* Bytes per row of the quant array and of the scale array. */
static void row_parts(mlxr_dtype type, int64_t ne0, size_t *qb, size_t *db) {
    *db = 0;
    switch (type) {
    case MLXR_DTYPE_Q8_0: *qb = (size_t)ne0; *db = (size_t)(ne0 / QK) * 2; break;
    case MLXR_DTYPE_Q4_0: *qb = (size_t)ne0 / 2; *db = (size_t)(ne0 / QK) * 2; break;
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
    m->q = NULL;
    m->d = NULL;
}

/* Split `nr` GGUF rows into quant rows (q) and scale rows (d). */
static void split_rows(mlxr_dtype type, const uint8_t *src, size_t row_bytes, int64_t ne0, int64_t nr,
                       uint8_t *q, uint16_t *d) {
    const int64_t nb = ne0 / QK;
    const size_t bsz = type == MLXR_DTYPE_Q8_0 ? 34 : 18, qsz = bsz - 2;
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *s = src + (size_t)r * row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            memcpy(&d[r * nb + b], s + (size_t)b * bsz, 2);
            memcpy(q + ((size_t)r * (size_t)nb + (size_t)b) * qsz, s + (size_t)b * bsz + 2, qsz);
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
    uint16_t *sd = (uint16_t *)malloc((size_t)chunk * db + 1);
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
