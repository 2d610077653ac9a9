/*
 * mmq.cu - Q4_0 / Q8_0 weights times Q8_0 activations on int8 tensor cores, for batched decoding
 * (2..MLXR_CUDA_MMQ_MAX_T tokens; see matvec.h).
 *
 * Why. The CUDA-core batch product (matvec.cu, 4 rows x 8 tokens per block) loads 32 activation
 * bytes per weight block and token and runs __dp4a per row and token: at 8-32 tokens it is bound
 * by those loads and integer ops (an H100 7B Q4_0 step of 8 sequences took 2.6x the single-token
 * step, of 32 sequences 9x), while the weights, the bytes that matter, are read once either way.
 * mma.sync m16n8k32 (s8 x s8 -> s32) does a 16-row x 8-token x 32-value block in one instruction.
 *
 * Shape. A block of MMQ_WARPS warps owns 16 weight rows and all T tokens (NT tiles of 8); its
 * warps split the row length into contiguous runs of "quads" (4 blocks of 32 values). Per quad,
 * lane (g = lane / 4, t = lane % 4) loads block t of rows g and g + 8 with 16-byte loads (32
 * for Q8_0), and a 4-lane transpose by shuffles leaves in each lane word t (and t + 4) of every
 * block of the quad: exactly its A fragment (rows g, g + 8; values 4t..4t+3 and 16+4t..16+4t+3).
 * Q4_0's byte j holds value j (low nibble) and j + 16 (high nibble), so word t of a Q4_0 block
 * is both halves of the fragment; the nibbles become q - 8 as signed bytes. The B fragment
 * (token g of the tile, the same values) is two 4-byte loads of the activation row.
 *
 * Numerics: each block's integer dot is exact (s32), then acc += (d_w * d_x) * (float)dot per
 * block, as the reference vec_dot does, but in block order per warp and summed over the warps
 * at the end, so the f32 result differs from the CPU reference by rounding order only.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_err.h"
#include "kernels/cuda/matvec.h"

#include <stdlib.h>
#include <string.h>

#define QK 32
#define MMQ_WARPS 8
#define MMQ_ROWS 16

__device__ __forceinline__ unsigned word_of(const int4 v, int i) {
    return (unsigned)(i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w);
}

/* Lane t of each 4-lane group holds words 0..3 of block t in v; returns in o[i] word t of block
 * i. Round s: send word (t - s) & 3, receive from lane (t + s) & 3, whose word that is: word t of
 * block (t + s) & 3. */
__device__ __forceinline__ void quad_transpose(const int4 v, int lane, unsigned (&o)[4]) {
    const int t = lane & 3;
    unsigned r[4];
#pragma unroll
    for (int s = 0; s < 4; s++) {
        const unsigned send = word_of(v, (t - s) & 3);
        r[s] = s == 0 ? send : __shfl_sync(0xffffffffu, send, (lane & ~3) | ((t + s) & 3));
    }
    const int4 rv = make_int4((int)r[0], (int)r[1], (int)r[2], (int)r[3]);
#pragma unroll
    for (int i = 0; i < 4; i++) o[i] = word_of(rv, (i - t) & 3);
}

/* Four Q4_0 codes (one byte each, 0..15) as signed bytes q - 8: with each byte's top bit set the
 * subtraction borrows within the byte only; then the top bit is flipped back. */
__device__ __forceinline__ unsigned q4_minus8(unsigned nib) {
    return ((nib | 0x80808080u) - 0x08080808u) ^ 0x80808080u;
}

/* (float)c for |c| < 2^22 (a block's dot: |c| <= 32 * 128 * 128 = 2^19) with two full-rate
 * operations instead of the slower I2F: 1.5 * 2^23 + c is exact in f32, then subtracted exactly. */
__device__ __forceinline__ float i2f(int c) {
    return __int_as_float(c + 0x4B400000) - 12582912.0f;
}

/* c (16 x 8, s32) = a (16 x 32, s8, row) . b (32 x 8, s8, col). */
__device__ __forceinline__ void mma_s8(int (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};\n"
                 : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0), "r"(0), "r"(0), "r"(0));
#else
    c[0] = c[1] = c[2] = c[3] = 0;
    (void)a, (void)b0, (void)b1;
#endif
}

/* Shared memory of one warp: its activation tiles, double-buffered, [2][8 NT tokens][MMQ_XS]
 * bytes (128 per quad, padded so that the B-fragment reads of the 8 tokens hit distinct banks),
 * then their scales [2][8 NT][4] floats. */
#define MMQ_XS 144
__host__ __device__ constexpr int mmq_warp_smem(int NT) {
    return 2 * 8 * NT * MMQ_XS + 2 * 8 * NT * 4 * 4;
}

/* Q4_0 (Q8 = false) or Q8_0 (Q8 = true) weights, NT tiles of 8 tokens. */
template <bool Q8, int NT>
__global__ void __launch_bounds__(MMQ_WARPS * 32, 2)
    mmq_kernel(const uint8_t *__restrict__ wq, const __half *__restrict__ wd, int ne0, int ne1,
               const int8_t *__restrict__ xq, const float *__restrict__ xd, int T, float *__restrict__ y,
               int64_t ldy) {
    constexpr int BQ = Q8 ? 32 : 16; /* quant bytes per block and row */
    constexpr int TP = 8 * NT;       /* staged token rows (tokens past T repeat the last one) */
    extern __shared__ __align__(16) unsigned char mmq_sm[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    unsigned char *xs = mmq_sm + warp * mmq_warp_smem(NT);
    float *ds = reinterpret_cast<float *>(xs + 2 * TP * MMQ_XS);
    { /* block row y takes tokens [TP y, TP y + TP) */
        const int t0 = blockIdx.y * TP;
        xq += (int64_t)t0 * ne0;
        xd += (int64_t)t0 * (ne0 / QK);
        y += (int64_t)t0 * ldy;
        T = min(T - t0, TP);
    }
    const int m0 = blockIdx.x * MMQ_ROWS;
    const int nb = ne0 / QK, nq = (nb + 3) / 4;
    const int ra = min(m0 + g, ne1 - 1), rb = min(m0 + g + 8, ne1 - 1);
    const uint8_t *wa = wq + (int64_t)ra * nb * BQ, *wb = wq + (int64_t)rb * nb * BQ;
    const __half *da = wd + (int64_t)ra * nb, *db = wd + (int64_t)rb * nb;
    const int per = (nq + MMQ_WARPS - 1) / MMQ_WARPS, q0 = warp * per, q1 = min(nq, q0 + per);
    pdl_launch_dependents();
    /* the warp's weight bytes of both rows into L2 while the previous kernel finishes */
    if (q0 < q1) {
        const int64_t o0 = (int64_t)q0 * 4 * BQ, o1 = min((int64_t)q1 * 4, (int64_t)nb) * BQ;
        prefetch_span(wa + o0, o1 - o0, t, 4);
        prefetch_span(wb + o0, o1 - o0, t, 4);
    }
    pdl_wait();
    /* quad q's activations (TP rows x 128 bytes) and their scales into buffer `buf`, one
     * committed cp.async group (past the row end: zeros, never read) */
    auto stage = [&](int q, int buf) {
        unsigned char *xb = xs + buf * TP * MMQ_XS;
        float *db_ = ds + buf * TP * 4;
        for (int c = lane; c < TP * 8; c += 32) {
            const int tk = c >> 3, off = q * 128 + (c & 7) * 16;
            const bool in = off < ne0;
            const int8_t *src = xq + (int64_t)min(tk, T - 1) * ne0 + (in ? off : 0);
            cp_async16(xb + tk * MMQ_XS + (c & 7) * 16, src, in ? 16 : 0);
        }
        for (int c = lane; c < TP * 4; c += 32) {
            const int tk = c >> 2, b = 4 * q + (c & 3);
            const bool in = b < nb;
            cp_async4(db_ + c, xd + (int64_t)min(tk, T - 1) * nb + (in ? b : 0), in ? 4 : 0);
        }
        cp_async_commit();
    };
    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[j][e] = 0.0f;
    if (q0 < q1) stage(q0, 0);
    int buf = 0;
    /* U quads of weights per round, all their loads issued before the first is used: with only a
     * few quads per warp, one memory round trip per quad would leave HBM idle. The activations of
     * quad q + 1 are being copied while quad q is computed. */
    constexpr int U = Q8 || NT > 1 ? 2 : 4, H = Q8 ? 2 : 1;
    for (int q = q0; q < q1; q += U) {
        int4 va[U][H], vb[U][H];
        unsigned ha[U][2], hb[U][2]; /* the 4 blocks' f16 scales of each row, two per word */
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int kb = 4 * (q + u) + t; /* the block this lane loads */
            const bool in = q + u < q1 && kb < nb;
#pragma unroll
            for (int h = 0; h < H; h++) {
                const int4 z = make_int4(0, 0, 0, 0);
                va[u][h] = in ? __ldg(reinterpret_cast<const int4 *>(wa + (int64_t)kb * BQ) + h) : z;
                vb[u][h] = in ? __ldg(reinterpret_cast<const int4 *>(wb + (int64_t)kb * BQ) + h) : z;
            }
            unsigned short sa[4], sb[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int b = min(4 * (q + u) + i, nb - 1);
                sa[i] = __half_as_ushort(da[b]);
                sb[i] = __half_as_ushort(db[b]);
            }
            ha[u][0] = sa[0] | (unsigned)sa[1] << 16;
            ha[u][1] = sa[2] | (unsigned)sa[3] << 16;
            hb[u][0] = sb[0] | (unsigned)sb[1] << 16;
            hb[u][1] = sb[2] | (unsigned)sb[3] << 16;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int qq = q + u;
            if (qq >= q1) break; /* warp-uniform */
            __syncwarp(); /* every lane is done with the other buffer (quad qq - 1) */
            if (qq + 1 < q1)
                stage(qq + 1, buf ^ 1);
            else
                cp_async_commit(); /* an empty group: the wait below counts the same way */
            cp_async_wait_1();     /* this lane's copies of quad qq have landed */
            __syncwarp();          /* and every lane's */
            const unsigned char *xb = xs + buf * TP * MMQ_XS;
            const float *dsb = ds + buf * TP * 4;
            unsigned fa[H][4], fb[H][4]; /* [low/high values][block i]: word t (t + 4) of block i */
#pragma unroll
            for (int h = 0; h < H; h++) {
                quad_transpose(va[u][h], lane, fa[h]);
                quad_transpose(vb[u][h], lane, fb[h]);
            }
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int b = 4 * qq + i;
                if (b >= nb) break; /* warp-uniform */
                unsigned a[4];
                if (Q8) {
                    a[0] = fa[0][i];
                    a[1] = fb[0][i];
                    a[2] = fa[H - 1][i];
                    a[3] = fb[H - 1][i];
                } else {
                    a[0] = q4_minus8(fa[0][i] & 0x0F0F0F0Fu);
                    a[1] = q4_minus8(fb[0][i] & 0x0F0F0F0Fu);
                    a[2] = q4_minus8((fa[0][i] >> 4) & 0x0F0F0F0Fu);
                    a[3] = q4_minus8((fb[0][i] >> 4) & 0x0F0F0F0Fu);
                }
                const int sh = 16 * (i & 1);
                const float dwa = __half2float(__ushort_as_half((unsigned short)(ha[u][i >> 1] >> sh)));
                const float dwb = __half2float(__ushort_as_half((unsigned short)(hb[u][i >> 1] >> sh)));
#pragma unroll
                for (int j = 0; j < NT; j++) {
                    const unsigned char *xr = xb + (8 * j + g) * MMQ_XS + i * QK + 4 * t;
                    const unsigned b0 = *reinterpret_cast<const unsigned *>(xr);
                    const unsigned b1 = *reinterpret_cast<const unsigned *>(xr + 16);
                    int c[4];
                    mma_s8(c, a, b0, b1);
                    const float d0 = dsb[(8 * j + 2 * t) * 4 + i], d1 = dsb[(8 * j + 2 * t + 1) * 4 + i];
                    acc[j][0] += (dwa * d0) * i2f(c[0]);
                    acc[j][1] += (dwa * d1) * i2f(c[1]);
                    acc[j][2] += (dwb * d0) * i2f(c[2]);
                    acc[j][3] += (dwb * d1) * i2f(c[3]);
                }
            }
            buf ^= 1;
        }
    }
    cp_async_wait_all();
    __syncthreads(); /* the staging buffers become the reduction scratch */
    float *red = reinterpret_cast<float *>(mmq_sm); /* [MMQ_WARPS][NT][4][32] */
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) red[((warp * NT + j) * 4 + e) * 32 + lane] = acc[j][e];
    __syncthreads();
    /* output (row, token) of fragment element e of lane l in tile j: row g(l) (+ 8 for e >= 2),
     * token 8j + 2 t(l) + (e & 1); summed over the warps in warp order */
    for (int i = threadIdx.x; i < NT * 4 * 32; i += MMQ_WARPS * 32) {
        const int l = i & 31, e = (i >> 5) & 3, j = i >> 7;
        const int row = m0 + (l >> 2) + (e >= 2 ? 8 : 0), tok = 8 * j + 2 * (l & 3) + (e & 1);
        if (row >= ne1 || tok >= T) continue;
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < MMQ_WARPS; w++) s += red[((w * NT + j) * 4 + e) * 32 + l];
        y[(int64_t)tok * ldy + row] = s;
    }
}

static bool mmq_probe(void) {
    const char *e = getenv("MLXR_CUDA_MMQ");
    return mlxr_cuda_sm80() && !(e && !strcmp(e, "0"));
}

extern "C" bool mlxr_mmq_supported_cuda(mlxr_dtype type, int64_t ne0, int32_t T) {
    static const bool on = mmq_probe(); /* decided once per process */
    return on && (type == MLXR_DTYPE_Q4_0 || type == MLXR_DTYPE_Q8_0) && ne0 > 0 && ne0 % QK == 0 &&
           T >= MLXR_CUDA_MMQ_MIN_T && T <= MLXR_CUDA_MMQ_MAX_T;
}

template <bool Q8, int NT>
static cudaError_t launch_nt(dim3 grid, const uint8_t *q, const __half *d, int ne0, int ne1, const int8_t *xq,
                             const float *xd, int T, float *y, int64_t ldy, cudaStream_t st) {
    const size_t smem = (size_t)MMQ_WARPS * mmq_warp_smem(NT);
    static const cudaError_t attr = /* once per kernel: above 48 KiB needs the opt-in */
        cudaFuncSetAttribute(mmq_kernel<Q8, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (attr != cudaSuccess) return attr;
    return mlxr_launch_pdl(mmq_kernel<Q8, NT>, grid, dim3(MMQ_WARPS * 32), smem, st, q, d, ne0, ne1, xq, xd, T, y,
                           ldy);
}

template <bool Q8>
static cudaError_t launch_mmq(const mlxr_cuda_mat *w, const int8_t *xq, const float *xd, int32_t T, float *y,
                              int64_t ldy, cudaStream_t st) {
    /* up to 4 token tiles per block; more tokens: more block rows, each reading the weights */
    const int nt = (T + 7) / 8 < 4 ? (T + 7) / 8 : 4;
    const dim3 grid((unsigned)((w->ne1 + MMQ_ROWS - 1) / MMQ_ROWS), (unsigned)((T + 8 * nt - 1) / (8 * nt)));
    const uint8_t *q = (const uint8_t *)w->q;
    const __half *d = (const __half *)w->d;
    const int ne0 = (int)w->ne0, ne1 = (int)w->ne1;
    switch (nt) {
    case 1: return launch_nt<Q8, 1>(grid, q, d, ne0, ne1, xq, xd, (int)T, y, ldy, st);
    case 2: return launch_nt<Q8, 2>(grid, q, d, ne0, ne1, xq, xd, (int)T, y, ldy, st);
    case 3: return launch_nt<Q8, 3>(grid, q, d, ne0, ne1, xq, xd, (int)T, y, ldy, st);
    default: return launch_nt<Q8, 4>(grid, q, d, ne0, ne1, xq, xd, (int)T, y, ldy, st);
    }
}

extern "C" cudaError_t mlxr_mmq_cuda(const mlxr_cuda_mat *w, const void *xq, const float *xd, int32_t T, float *y,
                                     int64_t ldy, cudaStream_t st) {
    if (!mlxr_mmq_supported_cuda(w->type, w->ne0, T) || w->ne1 <= 0 || w->ne1 > INT32_MAX - MMQ_ROWS ||
        ldy < w->ne1 || w->ne0 > INT32_MAX / MLXR_CUDA_MMQ_MAX_T)
        return cudaErrorInvalidValue;
    if (w->type == MLXR_DTYPE_Q8_0) return launch_mmq<true>(w, (const int8_t *)xq, xd, T, y, ldy, st);
    return launch_mmq<false>(w, (const int8_t *)xq, xd, T, y, ldy, st);
}
