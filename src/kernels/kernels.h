/*
 * kernels.h - CPU kernels: one signature per op, variants by suffix (_ref, _avx2, _avx512,
 * _avx512vnni, _avx512bf16), and a dispatch table filled once per context from the CPU's features.
 *
 * Kernels do not allocate, log or know about models. `_ref` variants (src/kernels/ref/) are the
 * definition of correct: plain loops, compiled without fast-math.
 *
 * Block layouts (bit-exact with GGUF / GGML):
 *   Q8_0: { f16 d; int8 qs[32]; }              x[i] = d * qs[i]
 *   Q4_0: { f16 d; uint8 qs[16]; }             x[i] = d * ((qs[i] & 0xF) - 8),
 *                                              x[i+16] = d * ((qs[i] >> 4) - 8)
 * The other quantized types' layouts are in blocks.h.
 * Matrix-vector products convert the activation row to the weight type's `vec_dot_type` first, as
 * llama.cpp does, so results match it closely; the dot product then runs on the two encoded rows:
 *   F32 -> F32, F16 -> F16, BF16 -> BF16, Q8_0/Q4_0/Q5_0/IQ4_NL -> Q8_0, Q4_1/Q5_1 -> Q8_1,
 *   Q2_K..Q6_K/IQ4_XS -> Q8_K, the internal MLX affine types (format/dtype.h) -> MLX_A8.
 */
#ifndef MLXR_KERNELS_H
#define MLXR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "format/dtype.h"
#include "kernels/blocks.h"
#include "mlxr.h"

#define MLXR_QK8_0 32
#define MLXR_QK4_0 32

typedef struct mlxr_block_q8_0 {
    uint16_t d; /* f16 scale */
    int8_t qs[MLXR_QK8_0];
} mlxr_block_q8_0;

typedef struct mlxr_block_q4_0 {
    uint16_t d; /* f16 scale */
    uint8_t qs[MLXR_QK4_0 / 2];
} mlxr_block_q4_0;

/* ISA levels, each including the ones below it. */
typedef enum mlxr_isa {
    MLXR_ISA_SCALAR = 1,
    MLXR_ISA_AVX2 = 2,        /* AVX2 + FMA + F16C */
    MLXR_ISA_AVX512 = 3,      /* AVX-512 F/BW/DQ/VL */
    MLXR_ISA_AVX512_VNNI = 4, /* + AVX512_VNNI (vpdpbusd: u8 x s8 dot products into int32) */
    MLXR_ISA_AVX512_BF16 = 5, /* + AVX512_BF16 (vdpbf16ps); every such CPU has VNNI as well */
} mlxr_isa;
#define MLXR_ISA_MAX MLXR_ISA_AVX512_BF16

/* Best ISA this CPU and build support. */
mlxr_isa mlxr_cpu_isa(void);
const char *mlxr_isa_name(mlxr_isa isa);

/* s = dot(x, y) over n elements; x is a weight row of some type, y an activation row in that
 * type's vec_dot_type. n is a multiple of the block size. */
typedef void (*mlxr_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);
/* s[i] = dot(row i of w, y) for i < 4, the rows w_stride bytes apart: one activation row against
 * four weight rows at once, the decode product of a type without an interleaved layout. */
typedef void (*mlxr_vec_dot4_fn)(int64_t n, float *s, const void *w, size_t w_stride,
                                 const void *y);
/* vec_dot4 for nc activation rows (y_stride bytes apart): s[c * lds + i] is bitwise what vec_dot4
 * gives for row i and activation row c, but each weight row is read and converted once for all
 * of them (the query heads of one KV head in grouped-query attention). */
typedef void (*mlxr_vec_dot4n_fn)(int64_t n, int64_t nc, float *s, size_t lds, const void *w,
                                  size_t w_stride, const void *y, size_t y_stride);
/* Encode n floats into a row of some type (quantize / convert). n multiple of block size. */
typedef void (*mlxr_from_float_fn)(const float *x, void *y, int64_t n);
/* Decode a row of n elements to floats (dequantize / convert). */
typedef void (*mlxr_to_float_fn)(const void *x, float *y, int64_t n);

/*
 * Tiled product for batches: y[j * ldy + i] = dot(w row i, x row j) for i < nr, j < nc, each row
 * n elements; w rows are w_stride bytes apart, x rows (in vec_dot_type) x_stride bytes apart.
 * Equal to nr * nc calls of vec_dot up to float reordering; a tile of weight rows is reused for
 * several activation rows, which is what makes prompt processing faster than one dot at a time.
 */
typedef void (*mlxr_gemm_fn)(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                             const void *x, size_t x_stride, float *y, size_t ldy);

/*
 * Interleaved ("x8") weight layouts, made at model load by a type's `repack` (ref/repack.c):
 * the blocks of 8 consecutive rows side by side, so that one activation load feeds 8 rows and the
 * 8 row results come out as the 8 float lanes of one register. Same bytes per row as the plain
 * layout, so row r of a repacked matrix starts at the same offset r * row_bytes when r is a
 * multiple of 8. Rows are grouped from the matrix's first row; the nr % 8 rows of a last partial
 * group stay in the plain layout at their plain offsets.
 *   Q4_0x8 { f16 d[8]; u8 qs[128]; }   block i of rows 8g..8g+7 (144 bytes). With u[r][e] the
 *       nibble (0..15) of element e of row r: qs[32j + 4r + b] = u[r][8j+b] | u[r][8j+4+b] << 4
 *       (j < 4, b < 4): one AND gives elements 8j..8j+3 of all 8 rows, one shift + AND 8j+4..8j+7.
 *   Q8_0x8 { f16 d[8]; i8 qs[256]; }   qs[32k + 4r + b] = q[r][4k+b] (k < 8) (272 bytes).
 * d[r] is row r's scale of that block.
 */
typedef struct mlxr_block_q4_0x8 {
    uint16_t d[8];
    uint8_t qs[8 * MLXR_QK4_0 / 2];
} mlxr_block_q4_0x8;

typedef struct mlxr_block_q8_0x8 {
    uint16_t d[8];
    int8_t qs[8 * MLXR_QK8_0];
} mlxr_block_q8_0x8;

_Static_assert(sizeof(mlxr_block_q4_0x8) == 8 * sizeof(mlxr_block_q4_0), "Q4_0x8 is 8 blocks");
_Static_assert(sizeof(mlxr_block_q8_0x8) == 8 * sizeof(mlxr_block_q8_0), "Q8_0x8 is 8 blocks");

/* Rows per interleaved group. */
#define MLXR_PACK_ROWS 8

/* Repack nr plain rows of n elements (row_bytes each, contiguous) from src into dst (the same
 * number of bytes, not overlapping) in the type's interleaved layout. */
typedef void (*mlxr_repack_fn)(const void *src, void *dst, size_t row_bytes, int64_t n,
                               int64_t nr);

typedef struct mlxr_type_kernels {
    mlxr_vec_dot_fn vec_dot;       /* NULL: type not supported for matmul */
    mlxr_gemm_fn gemm;             /* NULL: the matmul loops over vec_dot */
    mlxr_repack_fn repack;         /* plain -> interleaved layout; NULL: the type has none */
    /* Product over the interleaved layout, mlxr_gemm_fn's meaning with w at the first row of a
     * group (w_stride: plain bytes per row; a partial group only at the matrix's end). Each
     * output is computed the same way whatever nr, nc and the other columns are (batch
     * invariant), so it serves single-token decoding too. NULL: use the plain layout. */
    mlxr_gemm_fn gemm_packed;
    /* Four rows against one activation row, each output computed the same way whatever row it
     * is paired with (so batch invariant too): the decode product over the plain layout where it
     * streams memory faster than vec_dot row by row. NULL: vec_dot row by row. */
    mlxr_vec_dot4_fn vec_dot4;
    mlxr_vec_dot4n_fn vec_dot4n; /* set where vec_dot4 is */
    mlxr_dtype vec_dot_type;       /* encoding of the activation row */
    mlxr_from_float_fn from_float; /* encode floats into this type (NULL if none) */
    mlxr_to_float_fn to_float;     /* decode this type (NULL if none) */
} mlxr_type_kernels;

/* y[i] = dot(row i of w, x) for i < nr, rows ws bytes apart: with tk's four-row product where it
 * has one (rows in fours from the first, the rest by vec_dot), else vec_dot row by row. A row's
 * kernel depends only on its place from w and on nr, so callers that start at the same rows get
 * bitwise the same sums. */
static inline void mlxr_dot_rows(const mlxr_type_kernels *tk, int64_t n, int64_t nr, const void *w,
                                 size_t ws, const void *x, float *y) {
    const uint8_t *W = (const uint8_t *)w;
    int64_t i = 0;
    if (tk->vec_dot4)
        for (; i + 4 <= nr; i += 4)
            tk->vec_dot4(n, &y[i], W + (size_t)i * ws, ws, x);
    for (; i < nr; i++)
        tk->vec_dot(n, &y[i], W + (size_t)i * ws, x);
}

/* mlxr_dot_rows for nc activation rows (xs bytes apart) at once, for a tk with vec_dot4n: y[c *
 * ldy + i] is bitwise mlxr_dot_rows' y[i] for activation row c, each group of four weight rows
 * read once for all the columns. */
static inline void mlxr_dot_rows_n(const mlxr_type_kernels *tk, int64_t n, int64_t nr, int64_t nc,
                                   const void *w, size_t ws, const void *x, size_t xs, float *y,
                                   size_t ldy) {
    const uint8_t *W = (const uint8_t *)w;
    int64_t i = 0;
    for (; i + 4 <= nr; i += 4)
        tk->vec_dot4n(n, nc, &y[i], ldy, W + (size_t)i * ws, ws, x, xs);
    for (; i < nr; i++)
        for (int64_t c = 0; c < nc; c++)
            tk->vec_dot(n, &y[(size_t)c * ldy + (size_t)i], W + (size_t)i * ws,
                        (const uint8_t *)x + (size_t)c * xs);
}

typedef struct mlxr_kernels {
    mlxr_isa isa;
    mlxr_type_kernels type[MLXR_DTYPE_TABLE_SIZE]; /* GGUF and internal types (format/dtype.h) */
} mlxr_kernels;

/* Fill `k` with the best variants up to `isa` (clamped to what the CPU has). */
void mlxr_kernels_init(mlxr_kernels *k, mlxr_isa isa);
/* The MLX affine types' entries (src/kernels/ref/mlx_types.c) for level k->isa; called by
 * mlxr_kernels_init. */
void mlxr_kernels_init_mlx(mlxr_kernels *k);

/* ---- reference variants (src/kernels/ref/) ------------------------------------------------ */

void mlxr_vec_dot_f32_ref(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_f16_ref(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_bf16_ref(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q8_0_ref(int64_t n, float *s, const void *x, const void *y); /* q8_0 . q8_0 */
void mlxr_vec_dot_q4_0_ref(int64_t n, float *s, const void *x, const void *y); /* q4_0 . q8_0 */
/* The definition of every tiled product: y[j * ldy + i] = dot(w row i, x row j), one call each. */
void mlxr_gemm_by_dots_ref(mlxr_vec_dot_fn dot, int64_t n, int64_t nr, int64_t nc, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_q8_0_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_q4_0_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_f16_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t ldy);

void mlxr_from_float_f32_ref(const float *x, void *y, int64_t n);
void mlxr_from_float_f16_ref(const float *x, void *y, int64_t n);
void mlxr_from_float_bf16_ref(const float *x, void *y, int64_t n);
void mlxr_quantize_q8_0_ref(const float *x, void *y, int64_t n);
void mlxr_quantize_q4_0_ref(const float *x, void *y, int64_t n);

void mlxr_to_float_f32_ref(const void *x, float *y, int64_t n);
void mlxr_to_float_f16_ref(const void *x, float *y, int64_t n);
void mlxr_to_float_bf16_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_q8_0_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_q4_0_ref(const void *x, float *y, int64_t n);

/* ---- interleaved layouts (src/kernels/ref/repack.c, cpu/repack_avx2.c) -------------------- */

void mlxr_repack_q4_0x8(const void *src, void *dst, size_t row_bytes, int64_t n, int64_t nr);
void mlxr_repack_q8_0x8(const void *src, void *dst, size_t row_bytes, int64_t n, int64_t nr);
/* The definition of the packed products: per (row, column) exactly the arithmetic of
 * mlxr_vec_dot_q4_0_ref / _q8_0_ref on the plain rows, so equal to them bit for bit. */
void mlxr_gemm_q4_0x8_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                          const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_q8_0x8_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                          const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_q4_0x8_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_q8_0x8_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *y, size_t ldy);

/* ---- reference variants of the other quantized types (src/kernels/ref/quants.c) ---------- */

void mlxr_quantize_q8_1_ref(const float *x, void *y, int64_t n); /* activations for Q4_1/Q5_1 */
void mlxr_quantize_q8_k_ref(const float *x, void *y, int64_t n); /* activations for K / IQ4_XS */
void mlxr_dequantize_q8_1_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_q8_k_ref(const void *x, float *y, int64_t n);

void mlxr_dequantize_q4_1_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_q5_0_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_q5_1_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_q2_k_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_q3_k_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_q4_k_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_q5_k_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_q6_k_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_iq4_nl_ref(const void *x, float *y, int64_t n);
void mlxr_dequantize_iq4_xs_ref(const void *x, float *y, int64_t n);

void mlxr_vec_dot_q4_1_ref(int64_t n, float *s, const void *x, const void *y);   /* . q8_1 */
void mlxr_vec_dot_q5_0_ref(int64_t n, float *s, const void *x, const void *y);   /* . q8_0 */
void mlxr_vec_dot_q5_1_ref(int64_t n, float *s, const void *x, const void *y);   /* . q8_1 */
void mlxr_vec_dot_q2_k_ref(int64_t n, float *s, const void *x, const void *y);   /* . q8_k */
void mlxr_vec_dot_q3_k_ref(int64_t n, float *s, const void *x, const void *y);   /* . q8_k */
void mlxr_vec_dot_q4_k_ref(int64_t n, float *s, const void *x, const void *y);   /* . q8_k */
void mlxr_vec_dot_q5_k_ref(int64_t n, float *s, const void *x, const void *y);   /* . q8_k */
void mlxr_vec_dot_q6_k_ref(int64_t n, float *s, const void *x, const void *y);   /* . q8_k */
void mlxr_vec_dot_iq4_nl_ref(int64_t n, float *s, const void *x, const void *y); /* . q8_0 */
void mlxr_vec_dot_iq4_xs_ref(int64_t n, float *s, const void *x, const void *y); /* . q8_k */
void mlxr_gemm_q4_k_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_q6_k_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t ldy);

/* ---- AVX2 (src/kernels/cpu/types_avx2.c) and AVX-512 (types_avx512.c) variants ------------ */

void mlxr_vec_dot_f32_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_f16_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot4_f16_avx2(int64_t n, float *s, const void *w, size_t w_stride, const void *y);
void mlxr_vec_dot4n_f16_avx2(int64_t n, int64_t nc, float *s, size_t lds, const void *w,
                             size_t w_stride, const void *y, size_t y_stride);
void mlxr_vec_dot_bf16_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q8_0_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q4_0_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_from_float_f16_avx2(const float *x, void *y, int64_t n);
void mlxr_quantize_q8_0_avx2(const float *x, void *y, int64_t n);
void mlxr_to_float_f16_avx2(const void *x, float *y, int64_t n);
void mlxr_gemm_q8_0_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_f16_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_q4_0_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t ldy);

/* src/kernels/cpu/quants_avx2.c */
void mlxr_quantize_q8_1_avx2(const float *x, void *y, int64_t n);
void mlxr_quantize_q8_k_avx2(const float *x, void *y, int64_t n);
void mlxr_vec_dot_q4_1_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q5_0_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q5_1_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q2_k_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q3_k_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q4_k_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q5_k_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q6_k_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_iq4_nl_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_iq4_xs_avx2(int64_t n, float *s, const void *x, const void *y);
void mlxr_gemm_q4_k_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_q5_k_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t ldy);
void mlxr_gemm_q6_k_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t ldy);

void mlxr_vec_dot_f32_avx512(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_f16_avx512(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_bf16_avx512(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q8_0_avx512(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q4_0_avx512(int64_t n, float *s, const void *x, const void *y);
void mlxr_quantize_q8_0_avx512(const float *x, void *y, int64_t n);
/* src/kernels/cpu/quants_avx512.c */
void mlxr_vec_dot_q4_k_avx512(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q5_k_avx512(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q6_k_avx512(int64_t n, float *s, const void *x, const void *y);

/* AVX512_VNNI (src/kernels/cpu/vnni_avx512.c) and AVX512_BF16 (bf16_avx512.c) variants */
void mlxr_vec_dot_q8_0_avx512vnni(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q4_0_avx512vnni(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q4_k_avx512vnni(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q5_k_avx512vnni(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_q6_k_avx512vnni(int64_t n, float *s, const void *x, const void *y);
void mlxr_vec_dot_bf16_avx512bf16(int64_t n, float *s, const void *x, const void *y);
/* src/kernels/cpu/repack_vnni_avx512.c */
void mlxr_gemm_q4_0x8_avx512vnni(int64_t n, int64_t nr, int64_t nc, const void *w,
                                 size_t w_stride, const void *x, size_t x_stride, float *y,
                                 size_t ldy);
void mlxr_gemm_q8_0x8_avx512vnni(int64_t n, int64_t nr, int64_t nc, const void *w,
                                 size_t w_stride, const void *x, size_t x_stride, float *y,
                                 size_t ldy);

#endif
