/*
 * matvec.h - weight matrices on the device and their products with activation rows.
 *
 * Device layout. A matrix keeps its GGUF element type and its exact bytes (no dequantized copy),
 * but quantized blocks are split into two arrays on upload, so that every row of quants starts
 * 16-byte aligned and a thread reads 16 bytes at a time:
 *   Q8_0: q = int8 [ne1][ne0]            d = f16 [ne1][ne0/32]   (block b: q[32b..32b+31], d[b])
 *   Q4_0: q = uint8 [ne1][ne0/2]         d = f16 [ne1][ne0/32]   (block b: the 16 GGUF qs bytes)
 *   F16:  q = f16 [ne1][ne0]             F32: q = f32 [ne1][ne0]  (d unused)
 * The two arrays together are exactly the tensor's GGUF size.
 *
 * Activations. As on the CPU (kernels.h), the activation row is first encoded in the weight
 * type's vec_dot_type, on the device: Q8_0 and Q4_0 weights take Q8_0 activations (quantized
 * with the reference's rounding, byte-identical to mlxr_quantize_q8_0_ref; stored split as int8
 * [T][n] + f32 scales [T][n/32] holding the f16 scale's value) and run __dp4a integer dot
 * products per half block, times the two scales; F16 weights take F16 activations (rounded to
 * nearest even), products in f32; F32 weights take the F32 rows as they are. All sums are f32.
 * Kernels: one token (decode) and batches of up to 8 run on CUDA cores (__dp4a / FMA) with
 * 16-byte weight loads and several rows per block; larger batches of Q8_0/Q4_0/F16 run on tensor
 * cores (mma.sync m16n8k32 s8 / m16n8k16 f16, sm_80+), with the same per-block integer sums.
 *
 * Shapes: ne0 a multiple of 32 for Q8_0/Q4_0, of 8 for F16, of 4 for F32.
 */
#ifndef MLXR_KERNELS_CUDA_MATVEC_H
#define MLXR_KERNELS_CUDA_MATVEC_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "mlxr.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlxr_cuda_mat {
    mlxr_dtype type; /* F32, F16, Q8_0 or Q4_0 */
    int64_t ne0, ne1;
    void *q;         /* device: quants or values, see above */
    uint16_t *d;     /* device: f16 block scales (Q8_0/Q4_0), else NULL */
} mlxr_cuda_mat;

/* True when matrices of this type and row length can live on the device. */
bool mlxr_cuda_mat_supported(mlxr_dtype type, int64_t ne0);

/* The activation encoding a weight type takes (F32 -> F32, F16 -> F16, Q8_0/Q4_0 -> Q8_0). */
mlxr_dtype mlxr_cuda_vec_dot_type(mlxr_dtype type);

/*
 * Where an op puts its f32 result rows: as f32 in `y`, or directly encoded for the next matrix
 * product (type Q8_0: q int8 [R][n] + d f32 [R][n/32]; F16: q as f16 [R][n]), which saves the
 * separate encode launch and the round trip of the f32 rows through memory.
 */
typedef struct mlxr_cuda_out {
    mlxr_dtype type; /* F32, F16 or Q8_0 */
    float *y;
    void *q;
    float *d;
} mlxr_cuda_out;

/* Allocate an uninitialized ne1 x ne0 matrix of `type` (errors as mlxr_cuda_mat_upload). */
mlxr_status mlxr_cuda_mat_alloc(mlxr_cuda_mat *m, mlxr_dtype type, int64_t ne0, int64_t ne1, mlxr_err *err);
/* Copy nr GGUF rows (row_bytes apart at `data`, host) into rows r0.. of m, splitting blocks. Lets
 * several tensors of one type and row length share one matrix (Q/K/V, gate/up). */
mlxr_status mlxr_cuda_mat_set_rows(mlxr_cuda_mat *m, int64_t r0, const void *data, int64_t nr,
                                   size_t row_bytes, mlxr_err *err);

/*
 * Allocate `m` on the device and copy ne1 GGUF rows (row_bytes apart at `data`, host memory) into
 * it, splitting blocks as above through a bounded host staging buffer. On failure nothing stays
 * allocated. Errors: MLXR_ERR_UNSUPPORTED (type/shape), MLXR_ERR_NOMEM, MLXR_ERR_CUDA.
 */
mlxr_status mlxr_cuda_mat_upload(mlxr_cuda_mat *m, mlxr_dtype type, const void *data, int64_t ne0,
                                 int64_t ne1, size_t row_bytes, mlxr_err *err);
void mlxr_cuda_mat_free(mlxr_cuda_mat *m);
/* Device bytes of the matrix (= its GGUF bytes). */
size_t mlxr_cuda_mat_bytes(const mlxr_cuda_mat *m);

/*
 * Encode T rows of n floats (x, device, row stride n) in `vt`: Q8_0 into xq int8 [T][n] and xd f32
 * [T][n/32]; F16 into xq as f16 [T][n]; F32: nothing to do (pass x itself to the product).
 */
cudaError_t mlxr_encode_cuda(mlxr_dtype vt, const float *x, int64_t n, int32_t T, void *xq,
                             float *xd, cudaStream_t st);

/* y[t][r] (row t at y + t * ldy, ldy >= ne1) = row r of w . encoded activation row t (xq/xd as
 * mlxr_encode_cuda left them, or the f32 rows for F32 weights), for t < T, r < ne1. */
cudaError_t mlxr_matmul_cuda(const mlxr_cuda_mat *w, const void *xq, const float *xd, int32_t T,
                             float *y, int64_t ldy, cudaStream_t st);

/* x [T][ne0] f32 = dequantized rows tok[t] (device array) of w: the embedding lookup. */
cudaError_t mlxr_embed_cuda(const mlxr_cuda_mat *w, const int32_t *tok, int32_t T, float *x,
                            cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
