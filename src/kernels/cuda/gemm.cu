/*
 * gemm.cu - the prefill matrix product on tensor cores (see gemm.h).
 *
 * Tiling. A block of 8 warps computes BM weight rows x 128 tokens (BM = 128, or 64 when that
 * fills the device better), stepping through the row length 64 values at a time. Per step:
 *   - weights: each of 2 * BM threads reads 32 values of one row with 16-byte loads (the raw
 *     quants and the block header), keeps them in registers while the tensor cores work on the
 *     previous step, then dequantizes them to f16 into the shared-memory tile [BM][64];
 *   - activations (f16 rows) go straight to the shared tile [128][64] with cp.async;
 *   - each warp owns a (BM/2) x 32 sub-tile: ldmatrix fragments, mma.sync m16n8k16 f16 x f16 ->
 *     f32 accumulators.
 * Both tiles are double-buffered, so step k+1's global reads overlap step k's products; one
 * __syncthreads per step. Shared rows are 72 halves (144 bytes) apart: ldmatrix row addresses
 * and the 16-byte tile stores then fall in distinct banks.
 * Edges: rows and tokens past the end are clamped for loads and skipped on stores; a row length
 * that is an odd multiple of 32 gets a zero second half in its last step.
 *
 * Numerics: each weight is the reference dequantization's f32 value rounded once to f16; the
 * activations are f16 (matvec.h "Activations"); sums in f32 in tensor-core order.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/kquants.cuh"
#include "kernels/cuda/mlx.cuh"

#define GB_N 128         /* tokens per block */
#define GB_K 64          /* row values per step */
#define GB_LD (GB_K + 8) /* shared row stride in halves */
#define GB_THREADS 256

/* ---- PTX wrappers ---------------------------------------------------------------------------- */

__device__ __forceinline__ void ldsm_x4(unsigned (&r)[4], const __half *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

__device__ __forceinline__ void gm_mma(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                       unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* 8 floats -> 8 f16 (round to nearest even) in one 16-byte word. */
__device__ __forceinline__ uint4 pack8(const float *f) {
    uint4 r;
    unsigned *u = reinterpret_cast<unsigned *>(&r);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const __half2 h = __floats2half2_rn(f[2 * i], f[2 * i + 1]);
        u[i] = *reinterpret_cast<const unsigned *>(&h);
    }
    return r;
}

/* ---- weight loaders: 32 values of row `row` from value k (a multiple of 32) -------------------
 * load() issues the global reads into registers; store() dequantizes them into 32 f16 at dst.
 */

struct wl_f16 {
    uint4 v[4];
    __device__ __forceinline__ void load(const uint8_t *q, const uint8_t *, int ne0, int row,
                                         int k) {
        const uint4 *p = reinterpret_cast<const uint4 *>(q + ((int64_t)row * ne0 + k) * 2);
#pragma unroll
        for (int i = 0; i < 4; i++)
            v[i] = __ldg(p + i);
    }
    __device__ __forceinline__ void store(__half *dst) const {
#pragma unroll
        for (int i = 0; i < 4; i++)
            reinterpret_cast<uint4 *>(dst)[i] = v[i];
    }
};

struct wl_q8_0 {
    int4 v[2];
    float d;
    __device__ __forceinline__ void load(const uint8_t *q, const uint8_t *m, int ne0, int row,
                                         int k) {
        const int4 *p = reinterpret_cast<const int4 *>(q + (int64_t)row * ne0 + k);
        v[0] = __ldg(p);
        v[1] = __ldg(p + 1);
        d = __half2float(
            __ldg(reinterpret_cast<const __half *>(m) + (int64_t)row * (ne0 / 32) + k / 32));
    }
    __device__ __forceinline__ void store(__half *dst) const {
        const int8_t *b = reinterpret_cast<const int8_t *>(v);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float f[8];
#pragma unroll
            for (int j = 0; j < 8; j++)
                f[j] = __fmul_rn(d, (float)b[8 * i + j]);
            reinterpret_cast<uint4 *>(dst)[i] = pack8(f);
        }
    }
};

struct wl_q4_0 {
    int4 v;
    float d;
    __device__ __forceinline__ void load(const uint8_t *q, const uint8_t *m, int ne0, int row,
                                         int k) {
        v = __ldg(reinterpret_cast<const int4 *>(q + (int64_t)row * (ne0 / 2) + (k / 32) * 16));
        d = __half2float(
            __ldg(reinterpret_cast<const __half *>(m) + (int64_t)row * (ne0 / 32) + k / 32));
    }
    __device__ __forceinline__ void store(__half *dst) const {
        const uint8_t *b = reinterpret_cast<const uint8_t *>(&v);
#pragma unroll
        for (int i = 0; i < 4; i++) { /* values 8i..8i+7: low nibbles of bytes 0-15, then high */
            float f[8];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int e = 8 * i + j;
                const int nib = e < 16 ? (b[e] & 0x0F) : (b[e - 16] >> 4);
                f[j] = __fmul_rn((float)(nib - 8), d);
            }
            reinterpret_cast<uint4 *>(dst)[i] = pack8(f);
        }
    }
};

/* Q4_K / Q5_K: sub-block g = (k % 256) / 32 of super-block k / 256. */
template <int TYPE> struct wl_q45k {
    int4 qs[2], qh[2];
    uint4 h;
    int g;
    __device__ __forceinline__ void load(const uint8_t *q, const uint8_t *m, int ne0, int row,
                                         int k) {
        const int nb = ne0 / MLXR_CUDA_QK_K, b = k / MLXR_CUDA_QK_K;
        g = (k % MLXR_CUDA_QK_K) / 32;
        const uint8_t *blk = q + ((int64_t)row * nb + b) * kq_qbytes(TYPE);
        const int4 *p =
            reinterpret_cast<const int4 *>(blk + (kq_qbytes(TYPE) - 128) + 32 * (g / 2));
        qs[0] = __ldg(p);
        qs[1] = __ldg(p + 1);
        if (TYPE == MLXR_DTYPE_Q5_K) {
            qh[0] = __ldg(reinterpret_cast<const int4 *>(blk));
            qh[1] = __ldg(reinterpret_cast<const int4 *>(blk) + 1);
        }
        h = __ldg(reinterpret_cast<const uint4 *>(m + ((int64_t)row * nb + b) * kq_mbytes(TYPE)));
    }
    __device__ __forceinline__ void store(__half *dst) const {
        const kq_head hd = kq_head_of(h);
        int sc, mn;
        kq_scale_min(hd.s0, hd.s1, hd.s2, g, sc, mn);
        const float d1 = __fmul_rn(hd.d, (float)sc), m1 = __fmul_rn(hd.dmin, (float)mn);
        const int shift = (g & 1) * 4;
        const uint8_t *bs = reinterpret_cast<const uint8_t *>(qs),
                      *bh = reinterpret_cast<const uint8_t *>(qh);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float f[8];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int e = 8 * i + j;
                int qv = (bs[e] >> shift) & 0x0F;
                if (TYPE == MLXR_DTYPE_Q5_K) qv |= ((bh[e] >> g) & 1) << 4;
                f[j] = kq_val45(d1, m1, qv);
            }
            reinterpret_cast<uint4 *>(dst)[i] = pack8(f);
        }
    }
};

/* Q6_K: values 32g..32g+31 of a super-block (g = (k % 256) / 32): half g/4, k-index g%4. */
struct wl_q6k {
    int4 ql[2], qh[2];
    int sc0, sc1;
    float d;
    int g;
    __device__ __forceinline__ void load(const uint8_t *q, const uint8_t *m, int ne0, int row,
                                         int k) {
        const int nb = ne0 / MLXR_CUDA_QK_K, b = k / MLXR_CUDA_QK_K;
        g = (k % MLXR_CUDA_QK_K) / 32;
        const int half = g / 4, kk = g % 4;
        const uint8_t *blk = q + ((int64_t)row * nb + b) * kq_qbytes(MLXR_DTYPE_Q6_K);
        const int4 *pl = reinterpret_cast<const int4 *>(blk + 64 * half + 32 * (kk % 2));
        const int4 *ph = reinterpret_cast<const int4 *>(blk + 128 + 32 * half);
        ql[0] = __ldg(pl);
        ql[1] = __ldg(pl + 1);
        qh[0] = __ldg(ph);
        qh[1] = __ldg(ph + 1);
        const uint8_t *hd = m + ((int64_t)row * nb + b) * kq_mbytes(MLXR_DTYPE_Q6_K);
        sc0 = (int8_t)__ldg(hd + 2 * g);
        sc1 = (int8_t)__ldg(hd + 2 * g + 1);
        d = __half2float(
            __ushort_as_half(__ldg(reinterpret_cast<const unsigned short *>(hd + 16))));
    }
    __device__ __forceinline__ void store(__half *dst) const {
        const int kk = g % 4, lshift = kk < 2 ? 0 : 4, hshift = 2 * kk;
        const uint8_t *bl = reinterpret_cast<const uint8_t *>(ql),
                      *bh = reinterpret_cast<const uint8_t *>(qh);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float f[8];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int e = 8 * i + j;
                const int qv = ((bl[e] >> lshift) & 0x0F) | (((bh[e] >> hshift) & 3) << 4);
                f[j] = kq_val6(d, e < 16 ? sc0 : sc1, qv);
            }
            reinterpret_cast<uint4 *>(dst)[i] = pack8(f);
        }
    }
};

/* MLX affine (mlx.cuh): values k..k+31 are one 32-weight piece of group k / gs; the type's group
 * size and scale encoding come from the kernel's aux argument (wl_setup). */
template <int BITS> struct wl_mlx {
    int4 v[BITS / 4]; /* 16 (4 bits) or 32 (8 bits) code bytes */
    unsigned hw;      /* scale | bias << 16 */
    int lg;
    bool bf16;
    __device__ __forceinline__ void setup(int aux) {
        lg = aux & 0xFF;
        bf16 = (aux >> 8) & 1;
    }
    __device__ __forceinline__ void load(const uint8_t *q, const uint8_t *m, int ne0, int row,
                                         int k) {
        const int4 *p =
            reinterpret_cast<const int4 *>(q + (int64_t)row * (ne0 / 8 * BITS) + k / 8 * BITS);
#pragma unroll
        for (int i = 0; i < BITS / 4; i++)
            v[i] = __ldg(p + i);
        hw = __ldg(reinterpret_cast<const unsigned *>(m) + (int64_t)row * (ne0 >> lg) + (k >> lg));
    }
    __device__ __forceinline__ void store(__half *dst) const {
        float s, b;
        mlx_sb(hw, bf16, s, b);
        const uint8_t *c = reinterpret_cast<const uint8_t *>(v);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float f[8];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int e = 8 * i + j;
                const int qv = BITS == 8 ? c[e] : e < 16 ? (c[e] & 0x0F) : (c[e - 16] >> 4);
                f[j] = mlx_val(s, b, qv);
            }
            reinterpret_cast<uint4 *>(dst)[i] = pack8(f);
        }
    }
};

/* Per-launch parameters of a loader (only wl_mlx has any). */
template <class WL> __device__ __forceinline__ void wl_setup(WL &, int) {}
template <int BITS> __device__ __forceinline__ void wl_setup(wl_mlx<BITS> &wl, int aux) {
    wl.setup(aux);
}

/* ---- the kernel --------------------------------------------------------------------------------
 */

template <class WL, int BM>
__global__ void __launch_bounds__(GB_THREADS, 2)
    gemm_kernel(const uint8_t *__restrict__ q, const uint8_t *__restrict__ m,
                const __half *__restrict__ x, float *__restrict__ y, int64_t ldy, int ne0, int ne1,
                int T, int aux) {
    extern __shared__ __align__(16) unsigned char gsm[];
    __half *sA = reinterpret_cast<__half *>(gsm); /* [2][BM][GB_LD] */
    __half *sB = sA + 2 * BM * GB_LD;             /* [2][GB_N][GB_LD] */
    constexpr int MT = BM / 32;                   /* m16 tiles per warp: warp rows BM/2 */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 2, wn = warp & 3;
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * GB_N;
    const bool a_on = tid < BM * 2;
    const int a_row = tid >> 1, a_half = tid & 1, a_grow = min(m0 + a_row, ne1 - 1);
    const int nk = (ne0 + GB_K - 1) / GB_K;
    WL wl;
    wl_setup(wl, aux);

    float acc[MT][4][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                acc[i][j][e] = 0.0f;

    auto load_a = [&](int kt) {
        const int k = kt * GB_K + a_half * 32;
        if (a_on && k < ne0) wl.load(q, m, ne0, a_grow, k);
    };
    auto store_a = [&](int kt, int buf) {
        if (!a_on) return;
        const int k = kt * GB_K + a_half * 32;
        __half *dst = sA + (buf * BM + a_row) * GB_LD + a_half * 32;
        if (k < ne0) {
            wl.store(dst);
        } else {
#pragma unroll
            for (int i = 0; i < 4; i++)
                reinterpret_cast<uint4 *>(dst)[i] = make_uint4(0, 0, 0, 0);
        }
    };
    auto load_b = [&](int kt, int buf) {
#pragma unroll
        for (int i = 0; i < (GB_N * GB_K / 8) / GB_THREADS; i++) {
            const int c = tid + i * GB_THREADS, row = c >> 3, col = c & 7;
            const int tok = min(n0 + row, T - 1), k = kt * GB_K + col * 8;
            const __half *src = x + (int64_t)tok * ne0 + (k < ne0 ? k : 0);
            cp_async16(sB + (buf * GB_N + row) * GB_LD + col * 8, src, k < ne0 ? 16 : 0);
        }
    };
    auto compute = [&](int buf) {
        const __half *a = sA + buf * BM * GB_LD, *b = sB + buf * GB_N * GB_LD;
#pragma unroll
        for (int kk = 0; kk < GB_K; kk += 16) {
            unsigned af[MT][4], bf[4][2];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                ldsm_x4(af[mt],
                        a + (wm * (BM / 2) + mt * 16 + (lane & 15)) * GB_LD + kk + (lane >> 4) * 8);
#pragma unroll
            for (int np = 0; np < 2; np++) {
                unsigned r[4];
                ldsm_x4(r, b + (wn * 32 + np * 16 + (lane & 7) + (lane >> 4) * 8) * GB_LD + kk +
                               ((lane >> 3) & 1) * 8);
                bf[2 * np][0] = r[0];
                bf[2 * np][1] = r[1];
                bf[2 * np + 1][0] = r[2];
                bf[2 * np + 1][1] = r[3];
            }
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
                    gm_mma(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
        }
    };

    load_a(0);
    load_b(0, 0);
    cp_async_commit();
    store_a(0, 0);
    cp_async_wait_all();
    __syncthreads();
    for (int kt = 0; kt < nk; kt++) {
        const int cur = kt & 1;
        const bool more = kt + 1 < nk;
        if (more) {
            load_a(kt + 1);
            load_b(kt + 1, cur ^ 1);
            cp_async_commit();
        }
        compute(cur);
        if (more) store_a(kt + 1, cur ^ 1);
        cp_async_wait_all();
        __syncthreads();
    }

    const int gid = lane >> 2, tig = lane & 3;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
            const int r0 = m0 + wm * (BM / 2) + mt * 16 + gid, r1 = r0 + 8;
            const int t = n0 + wn * 32 + nt * 8 + tig * 2;
            if (r0 < ne1) {
                if (t < T) y[(int64_t)t * ldy + r0] = acc[mt][nt][0];
                if (t + 1 < T) y[(int64_t)(t + 1) * ldy + r0] = acc[mt][nt][1];
            }
            if (r1 < ne1) {
                if (t < T) y[(int64_t)t * ldy + r1] = acc[mt][nt][2];
                if (t + 1 < T) y[(int64_t)(t + 1) * ldy + r1] = acc[mt][nt][3];
            }
        }
}

template <class WL, int BM>
static cudaError_t launch_bm(const mlxr_cuda_mat *w, const void *x, int32_t T, float *y,
                             int64_t ldy, cudaStream_t st) {
    mlx_par p;
    const int aux = mlx_par_of(w->type, &p) ? mlx_aux(p) : 0;
    const size_t smem = (size_t)(2 * BM + 2 * GB_N) * GB_LD * sizeof(__half);
    cudaError_t e = cudaFuncSetAttribute(gemm_kernel<WL, BM>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    const dim3 grid((unsigned)((w->ne1 + BM - 1) / BM), (unsigned)((T + GB_N - 1) / GB_N));
    gemm_kernel<WL, BM><<<grid, GB_THREADS, smem, st>>>((const uint8_t *)w->q,
                                                        (const uint8_t *)w->d, (const __half *)x, y,
                                                        ldy, (int)w->ne0, (int)w->ne1, T, aux);
    return cudaGetLastError();
}

/* BM = 128 unless 64-row tiles take fewer waves of (2 blocks x SMs); 64-row tiles do ~1.2x the
 * shared-memory traffic per product, hence the weight. */
template <class WL>
static cudaError_t launch(const mlxr_cuda_mat *w, const void *x, int32_t T, float *y, int64_t ldy,
                          int bm, cudaStream_t st) {
    if (bm == 64) return launch_bm<WL, 64>(w, x, T, y, ldy, st);
    if (bm == 128) return launch_bm<WL, 128>(w, x, T, y, ldy, st);
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        sms = 132;
    const int64_t nt = (T + GB_N - 1) / GB_N, slots = 2 * (int64_t)sms;
    const int64_t w128 = ((w->ne1 + 127) / 128 * nt + slots - 1) / slots;
    const int64_t w64 = ((w->ne1 + 63) / 64 * nt + slots - 1) / slots;
    if (10 * w128 * 2 <= 12 * w64) return launch_bm<WL, 128>(w, x, T, y, ldy, st);
    return launch_bm<WL, 64>(w, x, T, y, ldy, st);
}

extern "C" bool mlxr_gemm_supported_cuda(mlxr_dtype type, int64_t ne0) {
    switch (type) {
    case MLXR_DTYPE_F16:
    case MLXR_DTYPE_Q8_0:
    case MLXR_DTYPE_Q4_0:
        return ne0 > 0 && ne0 % 32 == 0;
    case MLXR_DTYPE_Q4_K:
    case MLXR_DTYPE_Q5_K:
    case MLXR_DTYPE_Q6_K:
        return ne0 > 0 && ne0 % MLXR_CUDA_QK_K == 0;
    default: {
        mlx_par p; /* whole groups: a 32-value step never spans two */
        return mlx_par_of(type, &p) && ne0 > 0 && ne0 % p.gs == 0;
    }
    }
}

extern "C" cudaError_t mlxr_gemm_cuda(const mlxr_cuda_mat *w, const void *x, int32_t T, float *y,
                                      int64_t ldy, cudaStream_t st) {
    return mlxr_gemm_tile_cuda(w, x, T, y, ldy, 0, st);
}

extern "C" cudaError_t mlxr_gemm_tile_cuda(const mlxr_cuda_mat *w, const void *x, int32_t T,
                                           float *y, int64_t ldy, int bm, cudaStream_t st) {
    if (T <= 0 || w->ne1 <= 0) return cudaSuccess;
    if (!mlxr_gemm_supported_cuda(w->type, w->ne0) || ldy < w->ne1 || w->ne0 > INT32_MAX / 2 ||
        w->ne1 > INT32_MAX / 2 || (T + GB_N - 1) / GB_N > 65535)
        return cudaErrorInvalidValue;
    switch (w->type) {
    case MLXR_DTYPE_F16:
        return launch<wl_f16>(w, x, T, y, ldy, bm, st);
    case MLXR_DTYPE_Q8_0:
        return launch<wl_q8_0>(w, x, T, y, ldy, bm, st);
    case MLXR_DTYPE_Q4_0:
        return launch<wl_q4_0>(w, x, T, y, ldy, bm, st);
    case MLXR_DTYPE_Q4_K:
        return launch<wl_q45k<MLXR_DTYPE_Q4_K>>(w, x, T, y, ldy, bm, st);
    case MLXR_DTYPE_Q5_K:
        return launch<wl_q45k<MLXR_DTYPE_Q5_K>>(w, x, T, y, ldy, bm, st);
    case MLXR_DTYPE_Q6_K:
        return launch<wl_q6k>(w, x, T, y, ldy, bm, st);
    default: {
        mlx_par p;
        if (!mlx_par_of(w->type, &p)) return cudaErrorInvalidValue;
        return p.bits == 4 ? launch<wl_mlx<4>>(w, x, T, y, ldy, bm, st)
                           : launch<wl_mlx<8>>(w, x, T, y, ldy, bm, st);
    }
    }
}
