/*
 * matvec.h - weight matrices on the device and their products with activation rows.
 *
 * Device layout. A matrix keeps its GGUF element type and its exact bytes (no dequantized copy),
 * but quantized blocks are split into two arrays on upload, so that every row of quants starts
 * 16-byte aligned and a thread reads 16 bytes at a time:
 *   Q8_0: q = int8 [ne1][ne0]            d = f16 [ne1][ne0/32]   (block b: q[32b..32b+31], d[b])
 *   Q4_0: q = uint8 [ne1][ne0/2]         d = f16 [ne1][ne0/32]   (block b: the 16 GGUF qs bytes)
 *   Q4_K: q = [ne1][nb][128] (qs)                  d = [ne1][nb][16]: d, dmin, scales[12]
 *   Q5_K: q = [ne1][nb][160] (qh[32], qs[128])     d = [ne1][nb][16]: d, dmin, scales[12]
 *   Q6_K: q = [ne1][nb][192] (ql[128], qh[64])     d = [ne1][nb][18]: scales[16], d
 *   F16:  q = f16 [ne1][ne0]             F32: q = f32 [ne1][ne0]  (d unused)
 *   MLX_Q<b>_G<g>[_BF16] (MLX affine, kernels/mlx_affine.h; mlx.cuh):
 *         q = uint8 [ne1][ne0*b/8]: each group's code bytes as the host block holds them
 *         d = [ne1][ne0/g][4]: the group's scale then bias, f16 (bf16 for _BF16), unchanged
 * (nb = ne0/256 super-blocks; for K-quants `d` holds bytes, the per-block header fields in GGUF
 * order.) The two arrays together are exactly the tensor's GGUF size (for the MLX types: the
 * host rows' size, mlxr_dtype_row_size).
 *
 * Activations. As on the CPU (kernels.h), an activation row is first encoded for the weight type
 * (mlxr_cuda_act_enc says how; the product expects exactly that encoding):
 *   - decode and batches of up to 32 rows (CUDA cores, GEMM_MIN_T in matvec.cu; Q4_0/Q8_0 batches
 *     of 9..64 rows on int8 tensor cores, mmq.cu, same encoding): quantized weights take Q8_0
 *     activations (byte-identical to mlxr_quantize_q8_0_ref; int8 [T][n] + f32 scales [T][n/32]
 *     holding the f16 scale's value). Q8_0/Q4_0 weights run __dp4a integer dot products per half
 *     block, times the two scales; K-quant weights exact integer sums per 16 values, times the
 *     integer sub-block scales, d_w and the activation block's scale (the CPU engine takes Q8_K
 *     for them, so the two differ by that quantization); MLX affine weights per 32 values
 *     dx * (s * sum q a + b * sum a) with both sums exact integers (the CPU engine's MLX_A8
 *     arithmetic, but with Q8_0's f16-rounded dx, so not bit-identical to the CPU engine); F16
 *     weights take F16 activations, F32 weights the F32 rows. All sums are f32.
 *   - batches of more than 32 rows (64 for Q4_0/Q8_0; prefill) on tensor cores (gemm.cu): the weight tile is
 *     dequantized to F16 in shared memory and the activations are F16 holding the values the
 *     integer path multiplies: f16(d * q) of the Q8_0 quantization for quantized weights (MLX
 *     weights become f16(s * q + b)), f16(x) for F16 weights. So prefill differs from the integer
 *     path only by the f16 rounding of each weight and activation value (relative 2^-11), not by a
 *     different quantization.
 *
 * Shapes: ne0 a multiple of 32 for Q8_0/Q4_0, of 256 for K-quants, of the group size (32, 64 or
 * 128) for the MLX types, of 8 for F16, of 4 for F32.
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

/* Batches of more than this many rows take the tensor-core GEMM (see matvec.cu for why 32). */
#define MLXR_CUDA_GEMM_MIN_T 32

typedef struct mlxr_cuda_mat {
    mlxr_dtype type; /* F32, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K or an MLX affine type */
    int64_t ne0, ne1;
    void *q;         /* device: quants or values, see above */
    uint16_t *d;     /* device: f16 block scales (Q8_0/Q4_0), block headers (K-quants), group
                        scale|bias pairs (MLX), else NULL */
    unsigned *cnt;   /* device: ne1 / 64 + 1 zeroed counters for mlxr_matmul_swiglu_cuda (NULL: a
                        matrix not made by mlxr_cuda_mat_alloc/upload, which that refuses) */
} mlxr_cuda_mat;

/* True when matrices of this type and row length can live on the device. */
bool mlxr_cuda_mat_supported(mlxr_dtype type, int64_t ne0);

/* How activation rows are held for a product (see "Activations" above). */
typedef enum mlxr_cuda_enc {
    MLXR_CUDA_ENC_F32 = 0,  /* the f32 rows themselves */
    MLXR_CUDA_ENC_F16,      /* f16 [T][n], round to nearest even */
    MLXR_CUDA_ENC_Q8_0,     /* int8 [T][n] + f32 [T][n/32] */
    MLXR_CUDA_ENC_F16_Q8_0, /* f16 [T][n]: f16(d * q) of the Q8_0 encoding */
} mlxr_cuda_enc;

/* The encoding mlxr_matmul_cuda expects for T rows times w. */
mlxr_cuda_enc mlxr_cuda_act_enc(const mlxr_cuda_mat *w, int32_t T);

/* The mlxr_cuda_out type an op can write directly for encoding e (F16, Q8_0), else F32 (the op
 * writes f32 rows and mlxr_encode_cuda encodes them). */
mlxr_dtype mlxr_cuda_enc_direct(mlxr_cuda_enc e);

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
 * Encode T rows of n floats (x, device, row stride n) as `e` says into xq (int8 or f16 [T][n]) and
 * xd (f32 scales, Q8_0 only). F32: nothing to do (pass x itself to the product). n must be a
 * multiple of 32 for the Q8_0 kinds, else cudaErrorInvalidValue.
 */
cudaError_t mlxr_encode_cuda(mlxr_cuda_enc e, const float *x, int64_t n, int32_t T, void *xq,
                             float *xd, cudaStream_t st);

/* y[t][r] (row t at y + t * ldy, ldy >= ne1) = row r of w . encoded activation row t (xq/xd as
 * mlxr_encode_cuda left them with mlxr_cuda_act_enc(w, T), or the f32 rows for F32 weights), for
 * t < T, r < ne1. */
cudaError_t mlxr_matmul_cuda(const mlxr_cuda_mat *w, const void *xq, const float *xd, int32_t T,
                             float *y, int64_t ldy, cudaStream_t st);

/*
 * The FFN's gate|up product with SwiGLU fused, for one token (decode): w holds the gate rows
 * [0, n) then the up rows [n, 2n) (n = ne1 / 2), x one activation row as for mlxr_matmul_cuda;
 * out row (n values) = silu(gate . x) * (up . x), bit-identical to mlxr_matmul_cuda into a [2n]
 * row followed by mlxr_swiglu_cuda, stored as out says: F32 (y), F16 (q) or Q8_0 (q, d; y
 * receives the f32 values too and must hold n floats). One launch instead of two (and no [2n]
 * row through memory). Not reentrant per matrix: two launches with the same w must not overlap
 * (w->cnt holds the per-group arrival counts; stream order guarantees it). The backend uses it
 * only with MLXR_CUDA_FUSED_SWIGLU=1: it measured slower than the pair (cuda_err.h).
 * mlxr_matmul_swiglu_supported_cuda: T == 1, a matrix from mlxr_cuda_mat_alloc/upload with an even
 * row count, and n a multiple of 32 (Q8_0) or 8 (F16, F32); else the launch returns
 * cudaErrorInvalidValue.
 */
bool mlxr_matmul_swiglu_supported_cuda(const mlxr_cuda_mat *w, int32_t T, mlxr_dtype out_type);
cudaError_t mlxr_matmul_swiglu_cuda(const mlxr_cuda_mat *w, const void *xq, const float *xd,
                                    const mlxr_cuda_out *out, cudaStream_t st);

/*
 * RMSNorm split across the ops around it, for one token (decode), so that the step has no
 * separate norm launch (one block that waits for and is waited on by whole products: about
 * 6.7 us per norm on an H100, 13 % of a 7B Q4_0 step). The norm's scale 1/rms is one number per
 * token and every op after the next product is linear in it or applies it first:
 *   rmsnorm(x) * g . W  =  (1/rms) * ((x * g) . W)
 * so the product runs on x * g unscaled (its quantization needs only whole 32-value groups, not
 * the rms), and the op that reads the product's output (RoPE + KV store for Q|K|V, SwiGLU for
 * gate|up) multiplies by the scale first.
 *
 * mlxr_matmul_resid_cuda (the product before the norm: Wo, Wdown): y = w . x as
 * mlxr_matmul_cuda computes it, then for each row r: x[r] += y[r] (the residual, in place),
 * ss[r / 32] = the sum of x[r]^2 over the 32 rows of its group (f32, in a fixed order), and
 * x[r] * g[r] goes to out (Q8_0, F16 or F32, one row of ne1 values, out.q/out.d as for
 * mlxr_cuda_out). A group's 32 rows are one cluster of blocks, so no block waits on another
 * through memory. Needs an sm_90 device (clusters), ne1 % 32 == 0 and ne1 <= 32 * MLXR_CUDA_RMS_PARTS; out must not alias
 * the input xq/xd.
 */
#define MLXR_CUDA_RMS_PARTS 256
bool mlxr_matmul_resid_supported_cuda(const mlxr_cuda_mat *w, mlxr_dtype out_type);
cudaError_t mlxr_matmul_resid_cuda(const mlxr_cuda_mat *w, const void *xq, const float *xd, float *x,
                                   const float *g, float *ss, const mlxr_cuda_out *out, cudaStream_t st);

/* The deferred RMSNorm scale of one row of n values: 1 / sqrtf((float)(sum / n) + eps), sum the
 * double sum, in a fixed order, of the n / 32 partial sums at ss (mlxr_matmul_resid_cuda). Ops
 * that take one apply it to their inputs; NULL: none. */
typedef struct mlxr_cuda_rms {
    const float *ss;
    int64_t n;
    float eps;
} mlxr_cuda_rms;

/*
 * Batches of MLXR_CUDA_MMQ_MIN_T..MLXR_CUDA_MMQ_MAX_T tokens times Q4_0 or Q8_0 weights on int8
 * tensor cores (mmq.cu; sm_80+), with the Q8_0 activations of the CUDA-core path and the same
 * result up to f32 rounding order: mlxr_matmul_cuda (and mlxr_cuda_act_enc) take it for those
 * shapes unless MLXR_CUDA_MMQ is "0" (a switch for comparing timings). Below 9 tokens the
 * CUDA-core product is as fast; above 64, the f16 GEMM. mlxr_mmq_cuda's arguments are
 * mlxr_matmul_cuda's.
 */
#define MLXR_CUDA_MMQ_MIN_T 9
#define MLXR_CUDA_MMQ_MAX_T 64
bool mlxr_mmq_supported_cuda(mlxr_dtype type, int64_t ne0, int32_t T);
cudaError_t mlxr_mmq_cuda(const mlxr_cuda_mat *w, const void *xq, const float *xd, int32_t T, float *y,
                          int64_t ldy, cudaStream_t st);

/* For benchmarks: weight rows per block of decode products (2, 4 or 8; 0 = the per-type default,
 * or MLXR_CUDA_MV_ROWS from the environment). Not thread-safe; set before launching. */
void mlxr_matvec_rows_cuda(int rows);

/* x [T][ne0] f32 = dequantized rows tok[t] (device array) of w: the embedding lookup. */
cudaError_t mlxr_embed_cuda(const mlxr_cuda_mat *w, const int32_t *tok, int32_t T, float *x,
                            cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
