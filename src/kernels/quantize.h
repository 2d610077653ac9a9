/*
 * quantize.h - weight quantizers: float rows -> GGUF blocks of every type `mlxr quantize` writes.
 *
 * These are the encoders for model files, not for activations. They follow llama.cpp's reference
 * quantizers without an importance matrix (ggml-quants.c, quantize_row_*_ref and, for IQ4_NL and
 * IQ4_XS, quantize_iq4_nl/quantize_iq4_xs with the x^2 weighting), so a file we write has the same
 * bytes as llama-quantize's for the same F16/F32 source (tests/kernels/test_quantize.c and
 * tests/cli/test_quantize_cli.sh check that on pydoc-7M). Block layouts: kernels/blocks.h and
 * kernels/kernels.h.
 *
 * Every function encodes n floats (n a multiple of the type's block size: 32, or 256 for the
 * K-quants and IQ4_XS) into n / block_size blocks at y. Inputs should be finite; non-finite input
 * gives unspecified bytes but never undefined behaviour. Thread-safe (no shared state).
 */
#ifndef MLXR_KERNELS_QUANTIZE_H
#define MLXR_KERNELS_QUANTIZE_H

#include <stdint.h>

#include "kernels/kernels.h"
#include "mlxr.h"

void mlxr_quantize_q4_1_ref(const float *x, void *y, int64_t n);
void mlxr_quantize_q5_0_ref(const float *x, void *y, int64_t n);
void mlxr_quantize_q5_1_ref(const float *x, void *y, int64_t n);
/* Q8_0 as llama.cpp writes weights (quantize_row_q8_0_ref: d = amax/127, q = roundf(x / d),
 * halves away from zero). mlxr_quantize_q8_0_ref in types.c is the activation encoder, which
 * rounds halves to even; the two differ only on exact ties. */
void mlxr_quantize_q8_0_weight_ref(const float *x, void *y, int64_t n);
void mlxr_quantize_q2_k_ref(const float *x, void *y, int64_t n);
void mlxr_quantize_q3_k_ref(const float *x, void *y, int64_t n);
void mlxr_quantize_q4_k_ref(const float *x, void *y, int64_t n);
void mlxr_quantize_q5_k_ref(const float *x, void *y, int64_t n);
void mlxr_quantize_q6_k_ref(const float *x, void *y, int64_t n);
void mlxr_quantize_iq4_nl_ref(const float *x, void *y, int64_t n);
void mlxr_quantize_iq4_xs_ref(const float *x, void *y, int64_t n);

/*
 * The weight encoder of type t: the functions above, Q4_0 from types.c, and the float types
 * (F32, F16, BF16 conversions). NULL for a type this module cannot write.
 */
mlxr_from_float_fn mlxr_quantize_fn(mlxr_dtype t);

/*
 * Encode n floats of x into type t at y. Returns MLXR_ERR_UNSUPPORTED for a type without an
 * encoder and MLXR_ERR_INVALID when n is negative or not a multiple of the type's block size;
 * y is untouched then.
 */
mlxr_status mlxr_quantize_row(mlxr_dtype t, const float *x, void *y, int64_t n);

#endif
