/*
 * fp16.h - IEEE half and bfloat16 <-> float conversion, scalar and exact (round to nearest even).
 * These are the reference conversions; SIMD paths (F16C) must agree with them bit for bit.
 */
#ifndef MLXR_UTIL_FP16_H
#define MLXR_UTIL_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t mlxr_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float mlxr_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float mlxr_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return mlxr_bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    if (exp == 31) return mlxr_bits_f32(sign | 0x7f800000u | (man << 13));
    return mlxr_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

static inline uint16_t mlxr_fp32_to_fp16(float f) {
    uint32_t x = mlxr_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((absx >> 13) & 0x3ff)); /* NaN */
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to inf */
    if (absx < 0x38800000u) {
        /* subnormal or zero in half: round absx * 2^24 to nearest even integer */
        if (absx < 0x33000000u) return (uint16_t)sign; /* < 2^-25: rounds to 0 */
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = absx - 0x38000000u; /* rebias exponent 127 -> 15 */
    uint32_t low = r & 0x1fff;
    r >>= 13;
    if (low > 0x1000 || (low == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

static inline float mlxr_bf16_to_fp32(uint16_t h) {
    return mlxr_bits_f32((uint32_t)h << 16);
}

static inline uint16_t mlxr_fp32_to_bf16(float f) {
    uint32_t x = mlxr_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#endif
