/*
 * ops.h - float kernels of the transformer block (RMSNorm, RoPE, softmax, SwiGLU, adds).
 *
 * Each is the plain reference (`_ref`, src/kernels/ref/ops.c) whose arithmetic mirrors
 * llama.cpp's CPU ops (double accumulators where GGML uses ggml_float), so outputs agree with
 * llama.cpp references to float rounding. Kernels take pointers and sizes only.
 */
#ifndef MLXR_KERNELS_OPS_H
#define MLXR_KERNELS_OPS_H

#include <stdint.h>

/* y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], n elements; y may alias x. */
void mlxr_rmsnorm_f32_ref(const float *x, const float *w, float *y, int64_t n, float eps);

/*
 * Rotate adjacent pairs (x[2i], x[2i+1]) of the first n_rot dimensions of each of n_head heads
 * (head_dim floats each, contiguous) by angle pos * freq_base^(-2i/n_rot) ("normal" RoPE, as
 * llama.cpp's LLAMA_ROPE_TYPE_NORM; Su et al. 2021). Dimensions past n_rot are unchanged.
 * `cs` is scratch of n_rot floats (cos/sin cache, shared by all heads).
 */
void mlxr_rope_f32_ref(float *x, int64_t n_head, int64_t head_dim, int64_t n_rot, int32_t pos,
                       float freq_base, float *cs);

/* In place: x = softmax(x * scale) over n elements. */
void mlxr_softmax_f32_ref(float *x, int64_t n, float scale);

/* In place: g[i] = silu(g[i]) * u[i] (SwiGLU; Shazeer 2020). */
void mlxr_swiglu_f32_ref(float *g, const float *u, int64_t n);

/* y[i] += x[i]. */
void mlxr_add_f32_ref(float *y, const float *x, int64_t n);

#endif
