/*
 * common.cuh - device helpers shared by the kernels (CUDA only, not for C callers): warp and
 * block reductions, and the launch shape conventions.
 *
 * No kernel here uses fast-math intrinsics: expf/cosf/sinf/sqrtf and divisions are the IEEE-
 * accurate versions, so results stay close to the scalar references in src/kernels/ref/.
 */
#ifndef MLXR_KERNELS_CUDA_COMMON_CUH
#define MLXR_KERNELS_CUDA_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/cuda/cuda_err.h"
#include "kernels/cuda/matvec.h"

#define MLXR_WARP 32

/*
 * Programmatic dependent launch (sm_90+; issue 7's decode step). A kernel launched by
 * mlxr_launch_pdl may start while the kernel before it on the stream is still running: it must
 * call pdl_wait() before it reads anything an earlier kernel wrote or writes anything an earlier
 * kernel reads (only constant data such as weights may be touched before). pdl_wait() returns once
 * the previous kernel has completed and its memory is visible; since that kernel in turn waited
 * for its own predecessor, every earlier kernel is complete too (kernels launched without PDL wait
 * for the whole previous kernel as usual). pdl_launch_dependents() lets the next kernel start
 * launching (its blocks then sit in pdl_wait() on free SM slots, having prefetched their weights)
 * once every block of this one has called it or exited. Both are no-ops below sm_90 and without a
 * PDL launch. Every kernel of src/kernels/cuda/ that mlxr_launch_pdl launches calls pdl_wait() on
 * every path, before its first dependent access.
 */
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* Prefetch the 128-byte line holding p into L2 (weights, before pdl_wait). */
__device__ __forceinline__ void prefetch_l2(const void *p) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

/* Prefetch bytes [0, bytes) at p into L2, thread tid of nth taking every nth 128-byte line. */
__device__ __forceinline__ void prefetch_span(const void *p, int64_t bytes, int tid, int nth) {
    for (int64_t o = (int64_t)tid * 128; o < bytes; o += (int64_t)nth * 128) prefetch_l2((const char *)p + o);
}

/* Launch kernel<<<grid, block, smem, st>>>(args...) with programmatic stream serialization when
 * mlxr_cuda_pdl_enabled() (the kernel must follow the pdl_wait rule above), in thread block
 * clusters of `cluster` blocks along x when it is above 1 (sm_90). */
template <typename... KArgs, typename... Args>
static inline cudaError_t mlxr_launch_pdl_cluster(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                                  cudaStream_t st, unsigned cluster, Args &&...args) {
    cudaLaunchAttribute attr[2];
    unsigned n = 0;
    if (mlxr_cuda_pdl_enabled()) {
        attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[n++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster > 1) {
        attr[n].id = cudaLaunchAttributeClusterDimension;
        attr[n].val.clusterDim.x = cluster;
        attr[n].val.clusterDim.y = 1;
        attr[n++].val.clusterDim.z = 1;
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cfg.attrs = attr;
    cfg.numAttrs = n;
    return cudaLaunchKernelEx(&cfg, kernel, static_cast<Args &&>(args)...);
}

template <typename... KArgs, typename... Args>
static inline cudaError_t mlxr_launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                          cudaStream_t st, Args &&...args) {
    return mlxr_launch_pdl_cluster(kernel, grid, block, smem, st, 1, static_cast<Args &&>(args)...);
}

/* ---- asynchronous copies global -> shared (sm_80+) -------------------------------------------- */

__device__ __forceinline__ unsigned smem_addr(const void *p) {
    return (unsigned)__cvta_generic_to_shared(p);
}

/* 16 bytes (4: cp_async4), asynchronously; src_bytes 0 writes zeros (src must still be a valid
 * address). */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(src_bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async4(void *dst, const void *src, int src_bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(src_bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

__device__ __forceinline__ void cp_async_wait_all() {
    asm volatile("cp.async.wait_all;\n" ::: "memory");
}

/* Wait until at most one committed group (the newest) of this thread is still in flight. */
__device__ __forceinline__ void cp_async_wait_1() {
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
 * `sh` is shared scratch of 32 doubles. */
__device__ __forceinline__ double block_sum_d(double v, double *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads(); /* sh may still be read from a previous call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double t = lane < nw ? sh[lane] : 0.0;
    return warp_sum_d(t);
}

__device__ __forceinline__ float block_max(float v, float *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float t = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(t);
}

/* mlxr_cuda_rms's scale, computed by one whole warp (every lane gets it): the same float
 * wherever it is computed. A null rms gives 1. */
__device__ __forceinline__ float rms_scale_warp(const mlxr_cuda_rms *rms, int lane) {
    if (!rms->ss) return 1.0f;
    double d = 0.0;
    for (int64_t i = lane; i < rms->n / 32; i += 32) d += (double)__ldcg(rms->ss + i);
    d = warp_sum_d(d);
    return 1.0f / sqrtf((float)(d / (double)rms->n) + rms->eps);
}

/* The reference's round_sat_i8: round half to even, saturate; out-of-range and NaN give -128. */
__device__ __forceinline__ int8_t round_sat_i8(float v) {
    if (!(v > -2147483648.0f && v < 2147483648.0f)) return -128;
    const float r = rintf(v);
    if (r > 127.0f) return 127;
    if (r < -128.0f) return -128;
    return (int8_t)r;
}

/*
 * The whole warp holds block b (elements 32b..32b+31) of row t of an n-wide result, lane j the
 * element 32b + j (valid: j inside the row; invalid lanes hold 0). Store it as `o` says; Q8_0
 * quantization is the reference's (mlxr_quantize_q8_0_ref), byte for byte, and needs n % 32 == 0.
 */
__device__ __forceinline__ void put_block32(const mlxr_cuda_out &o, int64_t n, int64_t t, int64_t b,
                                            int lane, float v, bool valid) {
    const int64_t i = t * n + b * 32 + lane;
    if (o.type == MLXR_DTYPE_Q8_0) {
        const float amax = warp_max(fabsf(v));
        const float dv = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        ((int8_t *)o.q)[i] = round_sat_i8(v * id);
        if (lane == 0) o.d[t * (n / 32) + b] = __half2float(__float2half_rn(dv));
    } else if (valid) {
        if (o.type == MLXR_DTYPE_F16)
            ((__half *)o.q)[i] = __float2half_rn(v);
        else
            o.y[i] = v;
    }
}

/* Whether put_block32 can store n-wide rows as o says (F32, F16, or Q8_0 of whole blocks): the
 * argument check of the ops that store through it. */
static inline bool put_block32_ok(const mlxr_cuda_out &o, int64_t n) {
    return o.type == MLXR_DTYPE_F32 || o.type == MLXR_DTYPE_F16 || (o.type == MLXR_DTYPE_Q8_0 && n % 32 == 0);
}

#endif
