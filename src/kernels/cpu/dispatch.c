/*
 * dispatch.c - CPU feature detection and the kernel dispatch table (see kernels.h).
 *
 * Compiled without ISA flags, so it runs on any x86-64 (and builds elsewhere, where only the
 * reference kernels exist). An ISA level is reported only when the CPU has every instruction
 * subset the level's files are compiled for AND the OS saves the matching register state
 * (XCR0), since AVX code faults or corrupts state otherwise:
 *   AVX2:   CPUID.1:ECX  OSXSAVE(27) AVX(28) FMA(12) F16C(29); CPUID.7.0:EBX AVX2(5);
 *           XCR0 SSE(1) and AVX(2).
 *   AVX512: the above plus CPUID.7.0:EBX F(16) DQ(17) BW(30) VL(31);
 *           XCR0 opmask(5), ZMM_Hi256(6), Hi16_ZMM(7).
 *   AVX512_VNNI: the above plus CPUID.7.0:ECX AVX512_VNNI(11) (no new register state).
 *   AVX512_BF16: the above plus CPUID.7.1:EAX AVX512_BF16(5) (sub-leaf 1 exists when
 *           CPUID.7.0:EAX >= 1). Every CPU with it has VNNI too (Cooper Lake, Sapphire Rapids
 *           and later, Zen 4 and later), so the levels stay a simple order.
 * The table is filled on request, never cached in a global: one process can hold several tables
 * (tests build one per ISA level).
 */
#include "kernels/kernels.h"
#include "kernels/quantize.h"
#include "kernels/ref/repack_k.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define MLXR_X86 1
#include <cpuid.h>
#else
#define MLXR_X86 0
#endif

#if MLXR_X86
/* XCR0, the OS-enabled state components. Only valid when CPUID reports OSXSAVE. Inline asm, so
 * this file needs no -mxsave. */
static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}
#endif

mlxr_isa mlxr_cpu_isa(void) {
#if MLXR_X86
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return MLXR_ISA_SCALAR;
    const unsigned int need1 = (1u << 12) | (1u << 27) | (1u << 28) | (1u << 29);
    if ((ecx & need1) != need1) return MLXR_ISA_SCALAR;
    const uint64_t xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return MLXR_ISA_SCALAR;
    /* returns 0 when leaf 7 is beyond the CPU's maximum leaf */
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return MLXR_ISA_SCALAR;
    if (!(ebx & (1u << 5))) return MLXR_ISA_SCALAR;
    const unsigned int need7 = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
    if ((ebx & need7) != need7) return MLXR_ISA_AVX2;
    if ((xcr0 & 0xe6) != 0xe6) return MLXR_ISA_AVX2;
    if (!(ecx & (1u << 11))) return MLXR_ISA_AVX512;
    const unsigned int max_sub = eax; /* CPUID.7.0:EAX, the last sub-leaf of leaf 7 */
    if (max_sub < 1 || !__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx))
        return MLXR_ISA_AVX512_VNNI;
    if (!(eax & (1u << 5))) return MLXR_ISA_AVX512_VNNI;
    return MLXR_ISA_AVX512_BF16;
#else
    return MLXR_ISA_SCALAR;
#endif
}

const char *mlxr_isa_name(mlxr_isa isa) {
    switch (isa) {
    case MLXR_ISA_SCALAR:
        return "scalar";
    case MLXR_ISA_AVX2:
        return "avx2";
    case MLXR_ISA_AVX512:
        return "avx512";
    case MLXR_ISA_AVX512_VNNI:
        return "avx512-vnni";
    case MLXR_ISA_AVX512_BF16:
        return "avx512-vnni-bf16";
    }
    return "unknown";
}

static void set_type(mlxr_kernels *k, mlxr_dtype t, mlxr_vec_dot_fn dot, mlxr_dtype dot_type,
                     mlxr_from_float_fn from, mlxr_to_float_fn to) {
    k->type[t].vec_dot = dot;
    k->type[t].vec_dot_type = dot_type;
    k->type[t].from_float = from;
    k->type[t].to_float = to;
}

void mlxr_kernels_init(mlxr_kernels *k, mlxr_isa isa) {
    memset(k, 0, sizeof(*k));
    const mlxr_isa cpu = mlxr_cpu_isa();
    mlxr_isa level = isa < cpu ? isa : cpu;
    if (level < MLXR_ISA_SCALAR) level = MLXR_ISA_SCALAR;
    k->isa = level;

    set_type(k, MLXR_DTYPE_F32, mlxr_vec_dot_f32_ref, MLXR_DTYPE_F32, mlxr_from_float_f32_ref,
             mlxr_to_float_f32_ref);
    set_type(k, MLXR_DTYPE_F16, mlxr_vec_dot_f16_ref, MLXR_DTYPE_F16, mlxr_from_float_f16_ref,
             mlxr_to_float_f16_ref);
    set_type(k, MLXR_DTYPE_BF16, mlxr_vec_dot_bf16_ref, MLXR_DTYPE_BF16, mlxr_from_float_bf16_ref,
             mlxr_to_float_bf16_ref);
    set_type(k, MLXR_DTYPE_Q8_0, mlxr_vec_dot_q8_0_ref, MLXR_DTYPE_Q8_0, mlxr_quantize_q8_0_ref,
             mlxr_dequantize_q8_0_ref);
    set_type(k, MLXR_DTYPE_Q4_0, mlxr_vec_dot_q4_0_ref, MLXR_DTYPE_Q8_0, mlxr_quantize_q4_0_ref,
             mlxr_dequantize_q4_0_ref);
    /* activation-only types: encoders for the vec_dot_types, decoders for tests and tools */
    set_type(k, MLXR_DTYPE_Q8_1, NULL, MLXR_DTYPE_Q8_1, mlxr_quantize_q8_1_ref,
             mlxr_dequantize_q8_1_ref);
    set_type(k, MLXR_DTYPE_Q8_K, NULL, MLXR_DTYPE_Q8_K, mlxr_quantize_q8_k_ref,
             mlxr_dequantize_q8_k_ref);
    /* weight types: their encoders (from_float) are the weight quantizers of kernels/quantize.h */
    set_type(k, MLXR_DTYPE_Q4_1, mlxr_vec_dot_q4_1_ref, MLXR_DTYPE_Q8_1, mlxr_quantize_q4_1_ref,
             mlxr_dequantize_q4_1_ref);
    set_type(k, MLXR_DTYPE_Q5_0, mlxr_vec_dot_q5_0_ref, MLXR_DTYPE_Q8_0, mlxr_quantize_q5_0_ref,
             mlxr_dequantize_q5_0_ref);
    set_type(k, MLXR_DTYPE_Q5_1, mlxr_vec_dot_q5_1_ref, MLXR_DTYPE_Q8_1, mlxr_quantize_q5_1_ref,
             mlxr_dequantize_q5_1_ref);
    set_type(k, MLXR_DTYPE_Q2_K, mlxr_vec_dot_q2_k_ref, MLXR_DTYPE_Q8_K, mlxr_quantize_q2_k_ref,
             mlxr_dequantize_q2_k_ref);
    set_type(k, MLXR_DTYPE_Q3_K, mlxr_vec_dot_q3_k_ref, MLXR_DTYPE_Q8_K, mlxr_quantize_q3_k_ref,
             mlxr_dequantize_q3_k_ref);
    set_type(k, MLXR_DTYPE_Q4_K, mlxr_vec_dot_q4_k_ref, MLXR_DTYPE_Q8_K, mlxr_quantize_q4_k_ref,
             mlxr_dequantize_q4_k_ref);
    set_type(k, MLXR_DTYPE_Q5_K, mlxr_vec_dot_q5_k_ref, MLXR_DTYPE_Q8_K, mlxr_quantize_q5_k_ref,
             mlxr_dequantize_q5_k_ref);
    set_type(k, MLXR_DTYPE_Q6_K, mlxr_vec_dot_q6_k_ref, MLXR_DTYPE_Q8_K, mlxr_quantize_q6_k_ref,
             mlxr_dequantize_q6_k_ref);
    set_type(k, MLXR_DTYPE_IQ4_NL, mlxr_vec_dot_iq4_nl_ref, MLXR_DTYPE_Q8_0, mlxr_quantize_iq4_nl_ref,
             mlxr_dequantize_iq4_nl_ref);
    set_type(k, MLXR_DTYPE_IQ4_XS, mlxr_vec_dot_iq4_xs_ref, MLXR_DTYPE_Q8_K, mlxr_quantize_iq4_xs_ref,
             mlxr_dequantize_iq4_xs_ref);
    k->type[MLXR_DTYPE_Q4_K].gemm = mlxr_gemm_q4_k_ref;
    k->type[MLXR_DTYPE_Q6_K].gemm = mlxr_gemm_q6_k_ref;
    k->type[MLXR_DTYPE_Q8_0].gemm = mlxr_gemm_q8_0_ref;
    k->type[MLXR_DTYPE_Q4_0].gemm = mlxr_gemm_q4_0_ref;
    k->type[MLXR_DTYPE_F16].gemm = mlxr_gemm_f16_ref;
    /* The interleaved layouts are made whatever the level; the scalar level multiplies the plain
     * rows (its reference products over the interleaved ones are for tests). */
    k->type[MLXR_DTYPE_Q4_0].repack = mlxr_repack_q4_0x8;
    k->type[MLXR_DTYPE_Q8_0].repack = mlxr_repack_q8_0x8;
    mlxr_kernels_init_mlx(k); /* the internal MLX affine types, every level (ref/mlx_types.c) */

#if MLXR_X86
    mlxr_type_kernels *t = k->type;
    if (level >= MLXR_ISA_AVX2) {
        t[MLXR_DTYPE_F32].vec_dot = mlxr_vec_dot_f32_avx2;
        t[MLXR_DTYPE_F16].vec_dot = mlxr_vec_dot_f16_avx2;
        t[MLXR_DTYPE_F16].vec_dot4 = mlxr_vec_dot4_f16_avx2;
        t[MLXR_DTYPE_F16].vec_dot4n = mlxr_vec_dot4n_f16_avx2;
        t[MLXR_DTYPE_F16].from_float = mlxr_from_float_f16_avx2;
        t[MLXR_DTYPE_F16].to_float = mlxr_to_float_f16_avx2;
        t[MLXR_DTYPE_BF16].vec_dot = mlxr_vec_dot_bf16_avx2;
        t[MLXR_DTYPE_Q8_0].vec_dot = mlxr_vec_dot_q8_0_avx2;
        t[MLXR_DTYPE_Q8_0].from_float = mlxr_quantize_q8_0_avx2;
        t[MLXR_DTYPE_Q4_0].vec_dot = mlxr_vec_dot_q4_0_avx2;
        t[MLXR_DTYPE_Q8_1].from_float = mlxr_quantize_q8_1_avx2;
        t[MLXR_DTYPE_Q8_K].from_float = mlxr_quantize_q8_k_avx2;
        t[MLXR_DTYPE_Q4_1].vec_dot = mlxr_vec_dot_q4_1_avx2;
        t[MLXR_DTYPE_Q5_0].vec_dot = mlxr_vec_dot_q5_0_avx2;
        t[MLXR_DTYPE_Q5_1].vec_dot = mlxr_vec_dot_q5_1_avx2;
        t[MLXR_DTYPE_Q2_K].vec_dot = mlxr_vec_dot_q2_k_avx2;
        t[MLXR_DTYPE_Q3_K].vec_dot = mlxr_vec_dot_q3_k_avx2;
        t[MLXR_DTYPE_Q4_K].vec_dot = mlxr_vec_dot_q4_k_avx2;
        t[MLXR_DTYPE_Q5_K].vec_dot = mlxr_vec_dot_q5_k_avx2;
        t[MLXR_DTYPE_Q6_K].vec_dot = mlxr_vec_dot_q6_k_avx2;
        t[MLXR_DTYPE_IQ4_NL].vec_dot = mlxr_vec_dot_iq4_nl_avx2;
        t[MLXR_DTYPE_IQ4_XS].vec_dot = mlxr_vec_dot_iq4_xs_avx2;
        t[MLXR_DTYPE_Q4_K].gemm = mlxr_gemm_q4_k_avx2;
        t[MLXR_DTYPE_Q5_K].gemm = mlxr_gemm_q5_k_avx2;
        t[MLXR_DTYPE_Q6_K].gemm = mlxr_gemm_q6_k_avx2;
        /* Q4_K and Q6_K weights interleaved at load (ref/repack_k.h): prompt and decode */
        t[MLXR_DTYPE_Q4_K].repack = mlxr_repack_q4_kx8;
        t[MLXR_DTYPE_Q4_K].gemm_packed = mlxr_gemm_q4_kx8_avx2;
        t[MLXR_DTYPE_Q6_K].repack = mlxr_repack_q6_kx8;
        t[MLXR_DTYPE_Q6_K].gemm_packed = mlxr_gemm_q6_kx8_avx2;
        /* AVX-512 machines keep these too: the 256-bit tiles run well there */
        t[MLXR_DTYPE_Q8_0].gemm = mlxr_gemm_q8_0_avx2;
        t[MLXR_DTYPE_Q4_0].gemm = mlxr_gemm_q4_0_avx2;
        t[MLXR_DTYPE_F16].gemm = mlxr_gemm_f16_avx2;
        t[MLXR_DTYPE_Q4_0].gemm_packed = mlxr_gemm_q4_0x8_avx2;
        t[MLXR_DTYPE_Q8_0].gemm_packed = mlxr_gemm_q8_0x8_avx2;
    }
    if (level >= MLXR_ISA_AVX512) {
        t[MLXR_DTYPE_F32].vec_dot = mlxr_vec_dot_f32_avx512;
        t[MLXR_DTYPE_F16].vec_dot = mlxr_vec_dot_f16_avx512;
        t[MLXR_DTYPE_BF16].vec_dot = mlxr_vec_dot_bf16_avx512;
        t[MLXR_DTYPE_Q8_0].vec_dot = mlxr_vec_dot_q8_0_avx512;
        t[MLXR_DTYPE_Q8_0].from_float = mlxr_quantize_q8_0_avx512;
        t[MLXR_DTYPE_Q4_0].vec_dot = mlxr_vec_dot_q4_0_avx512;
        t[MLXR_DTYPE_Q4_K].vec_dot = mlxr_vec_dot_q4_k_avx512;
        t[MLXR_DTYPE_Q5_K].vec_dot = mlxr_vec_dot_q5_k_avx512;
        t[MLXR_DTYPE_Q6_K].vec_dot = mlxr_vec_dot_q6_k_avx512;
    }
    if (level >= MLXR_ISA_AVX512_VNNI) {
        t[MLXR_DTYPE_Q8_0].vec_dot = mlxr_vec_dot_q8_0_avx512vnni;
        t[MLXR_DTYPE_Q4_0].vec_dot = mlxr_vec_dot_q4_0_avx512vnni;
        t[MLXR_DTYPE_Q4_K].vec_dot = mlxr_vec_dot_q4_k_avx512vnni;
        t[MLXR_DTYPE_Q5_K].vec_dot = mlxr_vec_dot_q5_k_avx512vnni;
        t[MLXR_DTYPE_Q6_K].vec_dot = mlxr_vec_dot_q6_k_avx512vnni;
        t[MLXR_DTYPE_Q4_0].gemm_packed = mlxr_gemm_q4_0x8_avx512vnni;
        t[MLXR_DTYPE_Q8_0].gemm_packed = mlxr_gemm_q8_0x8_avx512vnni;
    }
    if (level >= MLXR_ISA_AVX512_BF16) t[MLXR_DTYPE_BF16].vec_dot = mlxr_vec_dot_bf16_avx512bf16;
#endif
}
