/*
 * blocks.h - bit-exact GGUF/GGML block layouts of the quantized types beyond Q8_0/Q4_0 (those two
 * live in kernels.h). One definition shared by the reference kernels, the SIMD kernels and the
 * quantizer. Every struct is packed by construction (only uint8/int8/uint16 members after a
 * 2-byte-aligned f16), and the static asserts pin each size to GGML's.
 *
 * Super-block types (K-quants, IQ4_XS) hold QK_K = 256 values; the others 32.
 * Scales marked f16 are IEEE half floats stored as uint16 (decode with util/fp16.h).
 *
 *   Q4_1  { f16 d, m; u8 qs[16]; }             x = d * q + m, q = nibble (low nibbles: 0..15, high: 16..31)
 *   Q5_0  { f16 d; u8 qh[4]; u8 qs[16]; }      x = d * (q - 16), q = nibble | (bit j of qh) << 4
 *   Q5_1  { f16 d, m; u8 qh[4]; u8 qs[16]; }   x = d * q + m
 *   Q8_1  { f16 d, s; i8 qs[32]; }             s = d * sum(qs) (activation type for Q4_1/Q5_1)
 *   Q2_K  { u8 scales[16]; u8 qs[64]; f16 d, dmin; }
 *   Q3_K  { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d; }
 *   Q4_K  { f16 d, dmin; u8 scales[12]; u8 qs[128]; }
 *   Q5_K  { f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }
 *   Q6_K  { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }
 *   Q8_K  { f32 d; i8 qs[256]; i16 bsums[16]; } (activation type for the K-quants and IQ4_XS)
 *   IQ4_NL { f16 d; u8 qs[16]; }               x = d * kvalues_iq4nl[nibble]
 *   IQ4_XS { f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]; }
 * The element order inside each block follows ggml-quants.c dequantize_row_* exactly; see the
 * reference dequantizers for the precise bit positions.
 */
#ifndef MLXR_KERNELS_BLOCKS_H
#define MLXR_KERNELS_BLOCKS_H

#include <stdint.h>

#define MLXR_QK4_1 32
#define MLXR_QK5_0 32
#define MLXR_QK5_1 32
#define MLXR_QK8_1 32
#define MLXR_QK4_NL 32
#define MLXR_QK_K 256
#define MLXR_K_SCALE_SIZE 12

typedef struct mlxr_block_q4_1 {
    uint16_t d, m;
    uint8_t qs[MLXR_QK4_1 / 2];
} mlxr_block_q4_1;

typedef struct mlxr_block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[MLXR_QK5_0 / 2];
} mlxr_block_q5_0;

typedef struct mlxr_block_q5_1 {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[MLXR_QK5_1 / 2];
} mlxr_block_q5_1;

typedef struct mlxr_block_q8_1 {
    uint16_t d, s;
    int8_t qs[MLXR_QK8_1];
} mlxr_block_q8_1;

typedef struct mlxr_block_q2_k {
    uint8_t scales[MLXR_QK_K / 16]; /* low 4 bits: scale, high 4 bits: min */
    uint8_t qs[MLXR_QK_K / 4];
    uint16_t d, dmin;
} mlxr_block_q2_k;

typedef struct mlxr_block_q3_k {
    uint8_t hmask[MLXR_QK_K / 8];
    uint8_t qs[MLXR_QK_K / 4];
    uint8_t scales[12]; /* 16 6-bit scales */
    uint16_t d;
} mlxr_block_q3_k;

typedef struct mlxr_block_q4_k {
    uint16_t d, dmin;
    uint8_t scales[MLXR_K_SCALE_SIZE]; /* 8 6-bit scales and 8 6-bit mins */
    uint8_t qs[MLXR_QK_K / 2];
} mlxr_block_q4_k;

typedef struct mlxr_block_q5_k {
    uint16_t d, dmin;
    uint8_t scales[MLXR_K_SCALE_SIZE];
    uint8_t qh[MLXR_QK_K / 8];
    uint8_t qs[MLXR_QK_K / 2];
} mlxr_block_q5_k;

typedef struct mlxr_block_q6_k {
    uint8_t ql[MLXR_QK_K / 2];
    uint8_t qh[MLXR_QK_K / 4];
    int8_t scales[MLXR_QK_K / 16];
    uint16_t d;
} mlxr_block_q6_k;

typedef struct mlxr_block_q8_k {
    float d;
    int8_t qs[MLXR_QK_K];
    int16_t bsums[MLXR_QK_K / 16]; /* sums of each group of 16 qs */
} mlxr_block_q8_k;

typedef struct mlxr_block_iq4_nl {
    uint16_t d;
    uint8_t qs[MLXR_QK4_NL / 2];
} mlxr_block_iq4_nl;

typedef struct mlxr_block_iq4_xs {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[MLXR_QK_K / 64];
    uint8_t qs[MLXR_QK_K / 2];
} mlxr_block_iq4_xs;

_Static_assert(sizeof(mlxr_block_q4_1) == 20, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(mlxr_block_q5_0) == 22, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(mlxr_block_q5_1) == 24, "Q5_1 block is 24 bytes");
_Static_assert(sizeof(mlxr_block_q8_1) == 36, "Q8_1 block is 36 bytes");
_Static_assert(sizeof(mlxr_block_q2_k) == 84, "Q2_K block is 84 bytes");
_Static_assert(sizeof(mlxr_block_q3_k) == 110, "Q3_K block is 110 bytes");
_Static_assert(sizeof(mlxr_block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(mlxr_block_q5_k) == 176, "Q5_K block is 176 bytes");
_Static_assert(sizeof(mlxr_block_q6_k) == 210, "Q6_K block is 210 bytes");
_Static_assert(sizeof(mlxr_block_q8_k) == 292, "Q8_K block is 292 bytes");
_Static_assert(sizeof(mlxr_block_iq4_nl) == 18, "IQ4_NL block is 18 bytes");
_Static_assert(sizeof(mlxr_block_iq4_xs) == 136, "IQ4_XS block is 136 bytes");

/* The 16 non-linear levels of IQ4_NL / IQ4_XS (ggml's kvalues_iq4nl). */
static const int8_t mlxr_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                              1,    13,   25,  38,  53,  69,  89,  113};

#endif
