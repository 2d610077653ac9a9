/*
 * mlx_types.c - the native MLX affine weight types (layout in kernels/mlx_affine.h, numbers in
 * format/dtype.h): their numbering, the load-time conversion of one MLX row into blocks, the
 * reference dequantization and dot product of every (bits, group size, scale type), the MLX_A8
 * activation encoder, and their entries in the kernel table.
 *
 * The reference dot is, operation for operation, mlxr_mlx_affine_dot_q8_ref on the source
 * arrays (the same float sums in the same order), and the reference dequantization that of
 * mlxr_mlx_affine_dequant_ref: the tests check both bit for bit.
 */
#include "kernels/mlx_affine.h"

#include <string.h>

#include "util/fp16.h"

/* ---- numbering ------------------------------------------------------------------------------ */

static int group_index(int group_size) {
    return group_size == 32 ? 0 : group_size == 64 ? 1 : group_size == 128 ? 2 : -1;
}

mlxr_dtype mlxr_mlx_dtype(int bits, int group_size, mlxr_mlx_scale_type scale_type) {
    const int g = group_index(group_size);
    if ((bits != 4 && bits != 8) || g < 0 ||
        (scale_type != MLXR_MLX_SCALE_F16 && scale_type != MLXR_MLX_SCALE_BF16))
        return MLXR_DTYPE_COUNT;
    return (mlxr_dtype)(MLXR_DTYPE_MLX_FIRST + 2 * (3 * (bits == 8) + g) +
                        (scale_type == MLXR_MLX_SCALE_BF16));
}

bool mlxr_mlx_dtype_params(mlxr_dtype t, int *bits, int *group_size,
                           mlxr_mlx_scale_type *scale_type) {
    const int i = (int)t - MLXR_DTYPE_MLX_FIRST;
    if (i < 0 || i >= MLXR_DTYPE_MLX_COUNT) return false;
    if (bits) *bits = i / 6 ? 8 : 4;
    if (group_size) *group_size = 32 << (i / 2 % 3);
    if (scale_type) *scale_type = i % 2 ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16;
    return true;
}

/* ---- the layout ---------------------------------------------------------------------------- */

static inline float half_val(int bf16, uint16_t h) {
    return bf16 ? mlxr_bf16_to_fp32(h) : mlxr_fp16_to_fp32(h);
}

/* Scale and bias of the block at b (2-byte fields, any alignment). */
static inline void block_sb(const uint8_t *b, int bf16, float *s, float *bias) {
    uint16_t u[2];
    memcpy(u, b, 4);
    *s = half_val(bf16, u[0]);
    *bias = half_val(bf16, u[1]);
}

/* Code i (< group size) of a block's code bytes qs. */
static inline int block_code(const uint8_t *qs, int bits, int i) {
    if (bits == 8) return qs[i];
    const uint8_t byte = qs[16 * (i / 32) + i % 16];
    return i % 32 < 16 ? byte & 0xF : byte >> 4;
}

void mlxr_mlx_row_to_blocks(const mlxr_mlx_row *row, void *dst) {
    const int gs = row->group_size, bits = row->bits, per = 32 / bits;
    const size_t qbytes = (size_t)gs * (size_t)bits / 8;
    uint8_t *out = dst;
    for (int64_t g = 0; g < row->n / gs; g++, out += 4 + qbytes) {
        uint16_t sb[2];
        memcpy(&sb[0], &row->scales[g], 2);
        memcpy(&sb[1], &row->biases[g], 2);
        memcpy(out, sb, 4);
        uint8_t *qs = out + 4;
        memset(qs, 0, qbytes);
        for (int i = 0; i < gs; i++) {
            const int64_t e = g * gs + i;
            uint32_t word;
            memcpy(&word, &row->w[e / per], 4);
            const unsigned q = (word >> ((e % per) * bits)) & ((1u << bits) - 1);
            if (bits == 8)
                qs[i] = (uint8_t)q;
            else
                qs[16 * (i / 32) + i % 16] |= (uint8_t)(i % 32 < 16 ? q : q << 4);
        }
    }
}

/* ---- reference kernels, one body per (bits, group size, scale type) -------------------------- */

static inline void dequant(const void *x, float *y, int64_t n, int bits, int gs, int bf16) {
    const uint8_t *b = x;
    for (int64_t g = 0; g < n / gs; g++, b += 4 + gs * bits / 8) {
        float s, bias;
        block_sb(b, bf16, &s, &bias);
        for (int i = 0; i < gs; i++)
            y[g * gs + i] = s * (float)block_code(b + 4, bits, i) + bias;
    }
}

/* mlxr_mlx_affine_dot_q8_ref's sums: per group, q.a and the activation sums per 32-block scaled
 * by the block's d, then s * qx + b * sx into the total. */
static inline float dot(const void *x, const mlxr_mlx_q8 *a, int64_t n, int bits, int gs,
                        int bf16) {
    const uint8_t *b = x;
    float total = 0.0f;
    for (int64_t g = 0; g < n / gs; g++, b += 4 + gs * bits / 8) {
        float s, bias;
        block_sb(b, bf16, &s, &bias);
        float qx = 0.0f, sx = 0.0f;
        for (int k = 0; k < gs / MLXR_MLX_QK; k++, a++) {
            int32_t isum = 0;
            for (int i = 0; i < MLXR_MLX_QK; i++)
                isum += block_code(b + 4, bits, k * MLXR_MLX_QK + i) * a->qs[i];
            qx += a->d * (float)isum;
            sx += a->d * (float)a->sum;
        }
        total += s * qx + bias * sx;
    }
    return total;
}

#define MLX_REF(bits, gs, bf16, sfx)                                                               \
    static void dequant_##sfx(const void *x, float *y, int64_t n) {                                \
        dequant(x, y, n, bits, gs, bf16);                                                          \
    }                                                                                              \
    static void vec_dot_##sfx(int64_t n, float *s, const void *x, const void *y) {                 \
        *s = dot(x, y, n, bits, gs, bf16);                                                         \
    }
MLX_REF(4, 32, 0, q4_g32)
MLX_REF(4, 32, 1, q4_g32_bf16)
MLX_REF(4, 64, 0, q4_g64)
MLX_REF(4, 64, 1, q4_g64_bf16)
MLX_REF(4, 128, 0, q4_g128)
MLX_REF(4, 128, 1, q4_g128_bf16)
MLX_REF(8, 32, 0, q8_g32)
MLX_REF(8, 32, 1, q8_g32_bf16)
MLX_REF(8, 64, 0, q8_g64)
MLX_REF(8, 64, 1, q8_g64_bf16)
MLX_REF(8, 128, 0, q8_g128)
MLX_REF(8, 128, 1, q8_g128_bf16)
#undef MLX_REF

/* In type order (format/dtype.h). */
static const struct {
    mlxr_vec_dot_fn vec_dot;
    mlxr_to_float_fn to_float;
} REF[MLXR_DTYPE_MLX_COUNT] = {
    {vec_dot_q4_g32, dequant_q4_g32},   {vec_dot_q4_g32_bf16, dequant_q4_g32_bf16},
    {vec_dot_q4_g64, dequant_q4_g64},   {vec_dot_q4_g64_bf16, dequant_q4_g64_bf16},
    {vec_dot_q4_g128, dequant_q4_g128}, {vec_dot_q4_g128_bf16, dequant_q4_g128_bf16},
    {vec_dot_q8_g32, dequant_q8_g32},   {vec_dot_q8_g32_bf16, dequant_q8_g32_bf16},
    {vec_dot_q8_g64, dequant_q8_g64},   {vec_dot_q8_g64_bf16, dequant_q8_g64_bf16},
    {vec_dot_q8_g128, dequant_q8_g128}, {vec_dot_q8_g128_bf16, dequant_q8_g128_bf16},
};

/* ---- MLX_A8 activation rows ------------------------------------------------------------------ */

static void a8_encode_ref(const float *x, void *y, int64_t n) {
    mlxr_mlx_q8_quantize_ref(x, y, n);
}

static void a8_decode_ref(const void *x, float *y, int64_t n) {
    const mlxr_mlx_q8 *b = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = b[i / MLXR_MLX_QK].d * (float)b[i / MLXR_MLX_QK].qs[i % MLXR_MLX_QK];
}

void mlxr_kernels_init_mlx(mlxr_kernels *k) {
    _Static_assert(sizeof(mlxr_mlx_q8) == 40, "MLX_A8 blocks are 40 bytes (format/dtype.c)");
    mlxr_type_kernels *a8 = &k->type[MLXR_DTYPE_MLX_A8];
    a8->vec_dot_type = MLXR_DTYPE_MLX_A8;
    a8->from_float = a8_encode_ref;
    a8->to_float = a8_decode_ref;
    for (int i = 0; i < MLXR_DTYPE_MLX_COUNT; i++) {
        mlxr_type_kernels *t = &k->type[MLXR_DTYPE_MLX_FIRST + i];
        t->vec_dot = REF[i].vec_dot;
        t->to_float = REF[i].to_float;
        t->vec_dot_type = MLXR_DTYPE_MLX_A8;
        /* no from_float: these types are only made from MLX files (mlxr_mlx_row_to_blocks) */
    }
#if defined(__x86_64__) || defined(__i386__)
    if (k->isa >= MLXR_ISA_AVX2) mlxr_mlx_types_avx2(k->type);
#endif
}
