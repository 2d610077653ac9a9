/*
 * attention.cu - KV store and flash-decoding attention (see attention.h).
 *
 * Split kernel, one 128-thread block per (kv head, query) and group of splits (block y takes the
 * splits y, y + gridDim.y, ... that hold positions up to the query's), per split:
 *   1. the split's K and V rows (through the block table) go to shared memory by 16-byte
 *      cp.async copies issued together, so the block waits for memory once; meanwhile the
 *      group's G query vectors, rounded through f16, go to shared memory too;
 *   2. one thread per position reads its K row and scores GC query heads at a time from
 *      registers (GC = 4, 2 or 1, whichever divides G), so one K read serves them;
 *   3. warp g (and g + 4, ...) takes query head g: max, exp, sum over the split;
 *   4. threads own 8 columns (one 16-byte V read) of a share of the positions and accumulate
 *      GC query heads at once; the shares are summed through shared memory.
 * Both kernels are launched with programmatic dependent launch (common.cuh): they wait for the
 * kernel before them (pdl_wait) before touching anything it may have written.
 */
#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kv_page.cuh"

#include <stdlib.h>

#define SPLIT MLXR_CUDA_ATT_SPLIT
#define ATT_THREADS 128

__global__ void kv_store_kernel(__half *__restrict__ kc, __half *__restrict__ vc, const int32_t *__restrict__ table,
                                int32_t max_blocks, int32_t kv_dim, const float *__restrict__ k,
                                const float *__restrict__ v, int64_t ld, const int32_t *__restrict__ pos,
                                const int32_t *__restrict__ seq) {
    const int t = blockIdx.x;
    const int64_t off = kv_off(table, max_blocks, kv_dim, seq[t], pos[t]);
    for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
        kc[off + i] = __float2half_rn(k[(int64_t)t * ld + i]);
        vc[off + i] = __float2half_rn(v[(int64_t)t * ld + i]);
    }
}

extern "C" cudaError_t mlxr_kv_store_cuda(const mlxr_cuda_kv *kv, const float *k, const float *v, int64_t ld,
                                          const int32_t *pos, const int32_t *seq, int32_t T,
                                          cudaStream_t st) {
    if (T <= 0) return cudaSuccess;
    kv_store_kernel<<<T, 256, 0, st>>>((__half *)kv->k, (__half *)kv->v, kv->table, kv->max_blocks, kv->kv_dim,
                                       k, v, ld, pos, seq);
    return cudaGetLastError();
}

/* Query heads scored / accumulated together in registers: the largest of 4, 2, 1 dividing G. */
static int group_chunk(int G) {
    return G % 4 == 0 ? 4 : G % 2 == 0 ? 2 : 1;
}

/* Floats before the staged K/V tiles: qs [G][D], sc [G][SPLIT], ml [G][2], red [phases][GC][D],
 * rounded up to 16 bytes. */
__host__ __device__ static inline int kv_tile_at(int G, int D) {
    const int GC = G % 4 == 0 ? 4 : G % 2 == 0 ? 2 : 1, nph = ATT_THREADS / (D / 8);
    return (G * D + G * SPLIT + 2 * G + nph * GC * D + 3) / 4 * 4;
}

/* The f16 K and V tiles: SPLIT rows of D halves each, rows padded by 8 halves (16 bytes) so that
 * the 16-byte row reads of 8 consecutive threads fall in distinct banks. */
#define KV_LD(D) ((D) + 8)

static size_t smem_bytes(int G, int D) {
    return (size_t)kv_tile_at(G, D) * sizeof(float) + 2 * (size_t)SPLIT * KV_LD(D) * sizeof(__half);
}

extern "C" size_t mlxr_attention_smem_cuda(const mlxr_cuda_att_shape *sh) {
    return smem_bytes(sh->n_head / sh->n_head_kv, sh->head_dim);
}

__device__ __forceinline__ void h8_to_f(const uint4 &u, float (&f)[8]) {
    const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
    for (int e = 0; e < 4; e++) {
        const float2 t = __half22float2(h[e]);
        f[2 * e] = t.x;
        f[2 * e + 1] = t.y;
    }
}

template <int GC>
__global__ void __launch_bounds__(ATT_THREADS)
    att_split_kernel(const __half *__restrict__ kc, const __half *__restrict__ vc,
                     const int32_t *__restrict__ table, int32_t max_blocks, int32_t kv_dim, int32_t n_head, int32_t G, int32_t D, int32_t n_split,
                     const float *__restrict__ q, int64_t q_ld, const int32_t *__restrict__ pos,
                     const int32_t *__restrict__ seq, float *__restrict__ part_o,
                     float *__restrict__ part_ml) {
    extern __shared__ __align__(16) float sm[];
    const int c8n = D / 8, nph = ATT_THREADS / c8n, LDH = KV_LD(D);
    float *qs = sm;                 /* [G][D] */
    float *sc = qs + G * D;         /* [G][SPLIT] scores, then probabilities */
    float *ml = sc + G * SPLIT;     /* [G][2] max, sum */
    float *red = ml + 2 * G;        /* [nph][GC][D] */
    __half *ks = reinterpret_cast<__half *>(sm + kv_tile_at(G, D)); /* [SPLIT][LDH] */
    __half *vs = ks + SPLIT * LDH;                                   /* [SPLIT][LDH] */
    pdl_launch_dependents();
    pdl_wait(); /* the cache rows, q and the split scratch belong to earlier kernels */
    const int h = blockIdx.x, t = blockIdx.z;
    const int L = pos[t] + 1;
    /* block y takes splits y, y + gridDim.y, ... up to the query's position (the combine reads no
     * split past it), so the grid stays small when the context is much longer than the query's
     * position: empty splits cost no block */
    for (int s = blockIdx.y; s * SPLIT < L; s += gridDim.y) {
        const int p0 = s * SPLIT;
        const int np = min(SPLIT, L - p0);
        const int64_t po = ((int64_t)t * n_head + (int64_t)h * G) * n_split + s; /* head g: + g*n_split */
        /* Stage the split's K and V rows with one round of asynchronous copies (one memory latency
         * for both, instead of one per phase), while q goes to shared memory. */
        const __half *kb = kc + (int64_t)h * D, *vb = vc + (int64_t)h * D; /* + pool row offsets */
        const int32_t sq = seq[t];
        for (int i = threadIdx.x; i < np * c8n; i += blockDim.x) {
            const int j = i / c8n, c = i % c8n;
            const int64_t off = kv_off(table, max_blocks, kv_dim, sq, p0 + j) + c * 8;
            cp_async16(ks + j * LDH + c * 8, kb + off, 16);
            cp_async16(vs + j * LDH + c * 8, vb + off, 16);
        }
        cp_async_commit();
        for (int i = threadIdx.x; i < G * D; i += blockDim.x)
            qs[i] = __half2float(__float2half_rn(q[(int64_t)t * q_ld + (int64_t)h * G * D + i]));
        cp_async_wait_all();
        __syncthreads();

        const float scale = 1.0f / sqrtf((float)D);
        for (int j = threadIdx.x; j < np; j += blockDim.x) {
            const __half *kr = ks + j * LDH;
            for (int g0 = 0; g0 < G; g0 += GC) {
                float acc[GC];
    #pragma unroll
                for (int g = 0; g < GC; g++) acc[g] = 0.0f;
    #pragma unroll 16
                for (int d = 0; d < D; d += 8) {
                    float kf[8];
                    h8_to_f(*reinterpret_cast<const uint4 *>(kr + d), kf);
    #pragma unroll
                    for (int g = 0; g < GC; g++) {
                        const float *qg = qs + (g0 + g) * D + d;
    #pragma unroll
                        for (int e = 0; e < 8; e++) acc[g] += kf[e] * qg[e];
                    }
                }
    #pragma unroll
                for (int g = 0; g < GC; g++) sc[(g0 + g) * SPLIT + j] = acc[g] * scale;
            }
        }
        __syncthreads();

        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        for (int g = warp; g < G; g += ATT_THREADS / 32) {
            float *row = sc + g * SPLIT;
            float m = -INFINITY;
            for (int j = lane; j < np; j += 32) m = fmaxf(m, row[j]);
            m = warp_max(m);
            float l = 0.0f;
            for (int j = lane; j < np; j += 32) {
                const float e = expf(row[j] - m);
                row[j] = e;
                l += e;
            }
            l = warp_sum(l);
            if (lane == 0) {
                ml[2 * g] = m;
                ml[2 * g + 1] = l;
            }
        }
        __syncthreads();

        /* P.V: thread (phase ph, column block c) sums positions ph, ph + nph, ... */
        const int c = threadIdx.x % c8n, ph = threadIdx.x / c8n;
        for (int g0 = 0; g0 < G; g0 += GC) {
            float acc[GC][8];
    #pragma unroll
            for (int g = 0; g < GC; g++)
    #pragma unroll
                for (int e = 0; e < 8; e++) acc[g][e] = 0.0f;
            if (ph < nph)
    #pragma unroll 8
                for (int j = ph; j < np; j += nph) {
                    float vf[8];
                    h8_to_f(*reinterpret_cast<const uint4 *>(vs + j * LDH + c * 8), vf);
    #pragma unroll
                    for (int g = 0; g < GC; g++) {
                        const float p = sc[(g0 + g) * SPLIT + j];
    #pragma unroll
                        for (int e = 0; e < 8; e++) acc[g][e] += p * vf[e];
                    }
                }
            if (ph < nph)
    #pragma unroll
                for (int g = 0; g < GC; g++)
    #pragma unroll
                    for (int e = 0; e < 8; e++) red[((int64_t)ph * GC + g) * D + c * 8 + e] = acc[g][e];
            __syncthreads();
            for (int i = threadIdx.x; i < GC * D; i += blockDim.x) {
                float sum = 0.0f;
                for (int k = 0; k < nph; k++) sum += red[(int64_t)k * GC * D + i];
                const int g = g0 + i / D, d = i % D;
                part_o[(po + (int64_t)g * n_split) * D + d] = sum;
            }
            __syncthreads(); /* red is reused by the next chunk */
        }
        for (int g = threadIdx.x; g < G; g += blockDim.x) {
            part_ml[2 * (po + (int64_t)g * n_split)] = ml[2 * g];
            part_ml[2 * (po + (int64_t)g * n_split) + 1] = ml[2 * g + 1];
        }
        __syncthreads(); /* ml and the tiles are rewritten by the next split */
    }
}

/* One block per (query head, query): log-sum-exp combination of the splits. Warp-sized runs of
 * 32 consecutive columns are stored (or encoded) together, which is one Q8_0 block when
 * head_dim % 32 == 0. */
__global__ void att_combine_kernel(int32_t n_head, int32_t D, int32_t n_split,
                                   const float *__restrict__ part_o, const float *__restrict__ part_ml,
                                   const int32_t *__restrict__ pos, const mlxr_cuda_out out) {
    pdl_launch_dependents();
    pdl_wait(); /* the splits of the kernel before */
    const int hq = blockIdx.x, t = blockIdx.y, lane = threadIdx.x & 31;
    const int64_t base = ((int64_t)t * n_head + hq) * n_split;
    /* splits past the query's position hold nothing (the split kernel writes none): skip them */
    n_split = min(n_split, pos[t] / SPLIT + 1);
    float M = -INFINITY;
    for (int s = 0; s < n_split; s++) M = fmaxf(M, part_ml[2 * (base + s)]);
    float den = 0.0f;
    for (int s = 0; s < n_split; s++) {
        const float m = part_ml[2 * (base + s)];
        if (m != -INFINITY) den += expf(m - M) * part_ml[2 * (base + s) + 1];
    }
    const int64_t width = (int64_t)n_head * D;
    for (int d0 = threadIdx.x - lane; d0 < D; d0 += blockDim.x) { /* warp-uniform loop */
        const int d = d0 + lane;
        float num = 0.0f;
        if (d < D)
            for (int s = 0; s < n_split; s++) {
                const float m = part_ml[2 * (base + s)];
                if (m != -INFINITY) num += expf(m - M) * part_o[(base + s) * D + d];
            }
        const int64_t col = (int64_t)hq * D + d0; /* first column of this warp's run */
        if (out.type == MLXR_DTYPE_Q8_0)
            put_block32(out, width, t, col / 32, lane, num / den, true);
        else if (d < D && out.type == MLXR_DTYPE_F16)
            ((__half *)out.q)[t * width + col + lane] = __float2half_rn(num / den);
        else if (d < D)
            out.y[t * width + col + lane] = num / den;
    }
}

/* Blocks per (kv head, query) of the split kernel: each takes every ATT_BLOCKS-th split, so a
 * context of n_ctx positions launches min(n_split, ATT_BLOCKS) of them, not n_split blocks of
 * which all past the query's position would only start and exit. 16 blocks cover 1024 positions
 * in one pass. MLXR_CUDA_ATT_BLOCKS overrides it (A/B timings). */
#define ATT_BLOCKS 16
static int split_blocks(void) {
    static const int n = [] {
        const char *e = getenv("MLXR_CUDA_ATT_BLOCKS");
        const int v = e ? atoi(e) : 0;
        return v > 0 ? v : ATT_BLOCKS;
    }();
    return n;
}

template <int GC>
static cudaError_t launch_split(const mlxr_cuda_kv *kv, const mlxr_cuda_att_shape *sh, int G, const float *q,
                                int64_t q_ld, const int32_t *pos, const int32_t *seq, int32_t T, float *part_o,
                                float *part_ml, cudaStream_t st) {
    const size_t smem = smem_bytes(G, sh->head_dim);
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(att_split_kernel<GC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return e;
    }
    const dim3 grid((unsigned)sh->n_head_kv, (unsigned)min(sh->n_split, split_blocks()), (unsigned)T);
    return mlxr_launch_pdl(att_split_kernel<GC>, grid, dim3(ATT_THREADS), smem, st, (const __half *)kv->k,
                           (const __half *)kv->v, kv->table, kv->max_blocks, kv->kv_dim, sh->n_head, (int32_t)G,
                           sh->head_dim, sh->n_split, q, q_ld, pos, seq, part_o, part_ml);
}

extern "C" cudaError_t mlxr_attention_cuda(const mlxr_cuda_kv *kv, const mlxr_cuda_att_shape *sh,
                                           const float *q, int64_t q_ld, const int32_t *pos, const int32_t *seq,
                                           int32_t T, float *part_o, float *part_ml, const mlxr_cuda_out *out,
                                           cudaStream_t st) {
    if (T <= 0) return cudaSuccess;
    if (out->type == MLXR_DTYPE_Q8_0 && sh->head_dim % 32) return cudaErrorInvalidValue;
    if (sh->n_head_kv <= 0 || sh->n_head % sh->n_head_kv || sh->head_dim % 8 || sh->head_dim <= 0 ||
        sh->head_dim > 8 * ATT_THREADS || sh->n_split <= 0 || T > 65535 || sh->n_split > 65535)
        return cudaErrorInvalidValue;
    const int G = sh->n_head / sh->n_head_kv;
    cudaError_t e;
    switch (group_chunk(G)) {
    case 4: e = launch_split<4>(kv, sh, G, q, q_ld, pos, seq, T, part_o, part_ml, st); break;
    case 2: e = launch_split<2>(kv, sh, G, q, q_ld, pos, seq, T, part_o, part_ml, st); break;
    default: e = launch_split<1>(kv, sh, G, q, q_ld, pos, seq, T, part_o, part_ml, st); break;
    }
    if (e != cudaSuccess) return e;
    const dim3 g2((unsigned)sh->n_head, (unsigned)T);
    return mlxr_launch_pdl(att_combine_kernel, g2, dim3(128), 0, st, sh->n_head, sh->head_dim, sh->n_split,
                           (const float *)part_o, (const float *)part_ml, pos, *out);
}
