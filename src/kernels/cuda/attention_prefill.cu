/*
 * attention_prefill.cu - causal attention of a prefill batch on tensor cores (flash attention:
 * see attention.h, mlxr_attention_prefill_cuda).
 *
 * One block of 4 warps per (64 queries, query head); warp w owns queries 16w..16w+15. The
 * queries' f16-rounded vectors stay in registers as mma A fragments. Key tiles of 64 positions,
 * from 0 to the largest position in the block, are copied (K and V, f16) to shared memory; per
 * tile each warp computes S = Q K^T (mma.sync m16n8k16, f32 sums), scales and masks it (key
 * position > query position: -inf), updates the running row max m and sum l (online softmax,
 * expf), and adds P V with P = exp(S - m) (the A fragments are the S accumulators' registers,
 * re-packed) and V fragments from ldmatrix.trans. At the end O / l is stored as f32 or f16.
 *
 * Numerics as the split kernel (attention.cu): the same f16 Q and K, f32 scores, and f32
 * probabilities: P goes through the tensor cores as two f16 parts (hi + lo, 2^-22 relative), so
 * the result equals the exact softmax to f32 rounding. (Rounding P to f16 once, as the CPU
 * engine does, moved the logits of the small quantized reference models by up to 0.09 against
 * the validated split kernel: those models amplify any rounding change.)
 */
#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kv_page.cuh"

#define FA_Q 64 /* queries per block */
#define FA_K 64 /* key positions per tile */

__device__ __forceinline__ void fa_ldsm(unsigned (&r)[4], const __half *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

__device__ __forceinline__ void fa_ldsm_t(unsigned (&r)[4], const __half *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

__device__ __forceinline__ void fa_mma(float (&c)[4], unsigned a0, unsigned a1, unsigned a2,
                                       unsigned a3, unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ unsigned fa_pack(float a, float b) {
    const __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<const unsigned *>(&h);
}

/* a, b as f16 pairs hi + lo with hi = f16(x), lo = f16(x - hi): x to about 2^-22 relative, so the
 * tensor-core P.V keeps f32 probabilities (two products instead of one). */
__device__ __forceinline__ void fa_split(float a, float b, unsigned &hi, unsigned &lo) {
    const __half2 h = __floats2half2_rn(a, b);
    const float2 hf = __half22float2(h);
    hi = *reinterpret_cast<const unsigned *>(&h);
    lo = fa_pack(a - hf.x, b - hf.y);
}

template <int D>
__global__ void __launch_bounds__(128)
    fa_kernel(const __half *__restrict__ kc, const __half *__restrict__ vc, const int32_t *__restrict__ table,
              int32_t max_blocks, int32_t kv_dim, int32_t n_head, int32_t G, const float *__restrict__ q, int64_t q_ld,
              const int32_t *__restrict__ pos, const int32_t *__restrict__ seq, int32_t T,
              const mlxr_cuda_out out) {
    constexpr int LD = D + 8; /* shared row stride in halves: conflict-free ldmatrix rows */
    __shared__ __align__(16) __half sK[FA_K * LD];
    __shared__ __align__(16) __half sV[FA_K * LD];
    const int h = blockIdx.y, t0 = blockIdx.x * FA_Q;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gid = lane >> 2, tig = lane & 3;
    const int ra = t0 + warp * 16 + gid, rb = ra + 8; /* this thread's two query rows */
    const int qa = min(ra, T - 1), qb = min(rb, T - 1);
    const int pa = pos[qa], pb = pos[qb];
    int pmax = max(pos[min(t0 + lane, T - 1)], pos[min(t0 + 32 + lane, T - 1)]);
    for (int o = 16; o > 0; o >>= 1)
        pmax = max(pmax, __shfl_xor_sync(0xffffffffu, pmax, o));

    /* Q as A fragments (f16, round to nearest even) */
    unsigned qf[D / 16][4];
    const float *qra = q + (int64_t)qa * q_ld + (int64_t)h * D,
                *qrb = q + (int64_t)qb * q_ld + (int64_t)h * D;
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
        const int c = ks * 16 + tig * 2;
        const float2 a0 = *reinterpret_cast<const float2 *>(qra + c),
                     a1 = *reinterpret_cast<const float2 *>(qrb + c);
        const float2 a2 = *reinterpret_cast<const float2 *>(qra + c + 8);
        const float2 a3 = *reinterpret_cast<const float2 *>(qrb + c + 8);
        qf[ks][0] = fa_pack(a0.x, a0.y);
        qf[ks][1] = fa_pack(a1.x, a1.y);
        qf[ks][2] = fa_pack(a2.x, a2.y);
        qf[ks][3] = fa_pack(a3.x, a3.y);
    }

    float o[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            o[i][e] = 0.0f;
    float ma = -INFINITY, mb = -INFINITY, la = 0.0f, lb = 0.0f;
    const float scale = 1.0f / sqrtf((float)D);
    const int64_t base = (int64_t)(h / G) * D; /* + pool row offsets */
    const int32_t sq = seq[t0];
    const int n_tiles = pmax / FA_K + 1;

    for (int kt = 0; kt < n_tiles; kt++) {
        const int p0 = kt * FA_K;
        /* K and V tiles: FA_K rows of D halves, 16 bytes per copy; rows past pmax are zeros */
#pragma unroll
        for (int i = tid; i < FA_K * D / 8; i += 128) {
            const int row = i / (D / 8), col = (i % (D / 8)) * 8, p = p0 + row;
            const int64_t src = base + kv_off(table, max_blocks, kv_dim, sq, min(p, pmax)) + col;
            cp_async16(sK + row * LD + col, kc + src, p <= pmax ? 16 : 0);
            cp_async16(sV + row * LD + col, vc + src, p <= pmax ? 16 : 0);
        }
        cp_async_commit();
        cp_async_wait_all();
        __syncthreads();

        /* S = Q K^T for this warp's 16 queries x 64 keys */
        float s[FA_K / 8][4];
#pragma unroll
        for (int i = 0; i < FA_K / 8; i++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[i][e] = 0.0f;
#pragma unroll
        for (int np = 0; np < FA_K / 16; np++)
#pragma unroll
            for (int ks = 0; ks < D / 16; ks++) {
                unsigned r[4];
                fa_ldsm(r, sK + (np * 16 + (lane & 7) + (lane >> 4) * 8) * LD + ks * 16 +
                               ((lane >> 3) & 1) * 8);
                fa_mma(s[2 * np], qf[ks][0], qf[ks][1], qf[ks][2], qf[ks][3], r[0], r[1]);
                fa_mma(s[2 * np + 1], qf[ks][0], qf[ks][1], qf[ks][2], qf[ks][3], r[2], r[3]);
            }

        /* scale, mask, online softmax (row a: elements 0, 1; row b: 2, 3) */
        float mxa = -INFINITY, mxb = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < FA_K / 8; nt++) {
            const int kp = p0 + nt * 8 + tig * 2;
            s[nt][0] = kp <= pa ? s[nt][0] * scale : -INFINITY;
            s[nt][1] = kp + 1 <= pa ? s[nt][1] * scale : -INFINITY;
            s[nt][2] = kp <= pb ? s[nt][2] * scale : -INFINITY;
            s[nt][3] = kp + 1 <= pb ? s[nt][3] * scale : -INFINITY;
            mxa = fmaxf(mxa, fmaxf(s[nt][0], s[nt][1]));
            mxb = fmaxf(mxb, fmaxf(s[nt][2], s[nt][3]));
        }
#pragma unroll
        for (int off = 1; off <= 2; off <<= 1) {
            mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, off));
            mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, off));
        }
        const float na = fmaxf(ma, mxa), nb = fmaxf(mb, mxb); /* finite: key 0 <= every position */
        const float ca = expf(ma - na), cb = expf(mb - nb);
        ma = na;
        mb = nb;
        la *= ca;
        lb *= cb;
#pragma unroll
        for (int i = 0; i < D / 8; i++) {
            o[i][0] *= ca;
            o[i][1] *= ca;
            o[i][2] *= cb;
            o[i][3] *= cb;
        }
#pragma unroll
        for (int nt = 0; nt < FA_K / 8; nt++) {
            s[nt][0] = expf(s[nt][0] - na);
            s[nt][1] = expf(s[nt][1] - na);
            s[nt][2] = expf(s[nt][2] - nb);
            s[nt][3] = expf(s[nt][3] - nb);
            la += s[nt][0] + s[nt][1];
            lb += s[nt][2] + s[nt][3];
        }

        /* O += P V: P's A fragments are the S tiles 2j, 2j+1 re-packed, as hi + lo f16 pairs */
#pragma unroll
        for (int j = 0; j < FA_K / 16; j++) {
            unsigned hi[4], lo[4];
            fa_split(s[2 * j][0], s[2 * j][1], hi[0], lo[0]);
            fa_split(s[2 * j][2], s[2 * j][3], hi[1], lo[1]);
            fa_split(s[2 * j + 1][0], s[2 * j + 1][1], hi[2], lo[2]);
            fa_split(s[2 * j + 1][2], s[2 * j + 1][3], hi[3], lo[3]);
#pragma unroll
            for (int dp = 0; dp < D / 16; dp++) {
                unsigned r[4];
                fa_ldsm_t(r, sV + (j * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 +
                                 (lane >> 4) * 8);
                fa_mma(o[2 * dp], hi[0], hi[1], hi[2], hi[3], r[0], r[1]);
                fa_mma(o[2 * dp], lo[0], lo[1], lo[2], lo[3], r[0], r[1]);
                fa_mma(o[2 * dp + 1], hi[0], hi[1], hi[2], hi[3], r[2], r[3]);
                fa_mma(o[2 * dp + 1], lo[0], lo[1], lo[2], lo[3], r[2], r[3]);
            }
        }
        __syncthreads(); /* the next tile overwrites sK / sV */
    }

#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        la += __shfl_xor_sync(0xffffffffu, la, off);
        lb += __shfl_xor_sync(0xffffffffu, lb, off);
    }
    const int64_t width = (int64_t)n_head * D;
#pragma unroll
    for (int nt = 0; nt < D / 8; nt++) {
        const int64_t col = (int64_t)h * D + nt * 8 + tig * 2;
        const float v[4] = {o[nt][0] / la, o[nt][1] / la, o[nt][2] / lb, o[nt][3] / lb};
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int r = e < 2 ? ra : rb;
            if (r >= T) continue;
            const int64_t i = (int64_t)r * width + col + (e & 1);
            if (out.type == MLXR_DTYPE_F16)
                ((__half *)out.q)[i] = __float2half_rn(v[e]);
            else
                out.y[i] = v[e];
        }
    }
}

extern "C" bool mlxr_attention_prefill_supported_cuda(const mlxr_cuda_att_shape *sh,
                                                      mlxr_dtype out_type) {
    return (sh->head_dim == 64 || sh->head_dim == 128) && sh->n_head_kv > 0 &&
           sh->n_head % sh->n_head_kv == 0 &&
           (out_type == MLXR_DTYPE_F32 || out_type == MLXR_DTYPE_F16);
}

extern "C" cudaError_t mlxr_attention_prefill_cuda(const mlxr_cuda_kv *kv,
                                                   const mlxr_cuda_att_shape *sh, const float *q,
                                                   int64_t q_ld, const int32_t *pos,
                                                   const int32_t *seq, int32_t T,
                                                   const mlxr_cuda_out *out, cudaStream_t st) {
    if (T <= 0) return cudaSuccess;
    if (!mlxr_attention_prefill_supported_cuda(sh, out->type) || q_ld % 2 || sh->n_head > 65535)
        return cudaErrorInvalidValue;
    const dim3 grid((unsigned)((T + FA_Q - 1) / FA_Q), (unsigned)sh->n_head);
    const int G = sh->n_head / sh->n_head_kv;
    if (sh->head_dim == 128)
        fa_kernel<128><<<grid, 128, 0, st>>>((const __half *)kv->k, (const __half *)kv->v,
                                             kv->table, kv->max_blocks, kv->kv_dim, sh->n_head, G, q, q_ld,
                                             pos, seq, T, *out);
    else
        fa_kernel<64><<<grid, 128, 0, st>>>((const __half *)kv->k, (const __half *)kv->v,
                                            kv->table, kv->max_blocks, kv->kv_dim, sh->n_head, G, q, q_ld, pos,
                                            seq, T, *out);
    return cudaGetLastError();
}
