/*
 * test_fp16.c - the scalar half and bfloat16 conversions: every half converts to a float and
 * back unchanged; float -> half rounds to nearest even, checked against a reference computed by
 * a different method (nearest of the two neighbouring halves, via exact double arithmetic).
 */
#include "test.h"

#include <math.h>

#include "util/fp16.h"

/* Round to the nearest half by searching the ordered half values (independent of the bit tricks). */
static uint16_t slow_fp16(float f) {
    if (isnan(f)) return 0x7e00;
    double x = fabs((double)f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (x >= 65520.0) return sign | 0x7c00; /* 65504 + half an ulp (16) rounds to inf */
    uint16_t lo = 0, hi = 0x7bff;
    while (lo < hi) { /* largest half <= x */
        uint16_t mid = (uint16_t)((lo + hi + 1) / 2);
        if ((double)mlxr_fp16_to_fp32(mid) <= x) lo = mid;
        else hi = mid - 1;
    }
    double a = mlxr_fp16_to_fp32(lo), b = mlxr_fp16_to_fp32((uint16_t)(lo + 1));
    uint16_t r = lo;
    if (x - a > b - x || (x - a == b - x && (lo & 1))) r = (uint16_t)(lo + 1);
    return sign | r;
}

int main(void) {
    uint64_t rng = test_seed();
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mlxr_fp16_to_fp32((uint16_t)h);
        if (isnan(f)) continue;
        bad += mlxr_fp32_to_fp16(f) != h;
    }
    CHECK(bad == 0, "half -> float -> half changed %d values", bad);
    CHECK(mlxr_fp16_to_fp32(0x3c00) == 1.0f && mlxr_fp16_to_fp32(0xc000) == -2.0f, "1 and -2");
    CHECK(mlxr_fp16_to_fp32(0x0001) == ldexpf(1, -24), "smallest subnormal");
    CHECK(isinf(mlxr_fp16_to_fp32(0x7c00)) && isnan(mlxr_fp16_to_fp32(0x7e00)), "inf and nan");
    CHECK(isnan(mlxr_fp16_to_fp32(mlxr_fp32_to_fp16(NAN))), "nan stays nan");
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        /* random magnitudes across the whole half range, subnormals and overflow included */
        float f = ldexpf(test_rng_f32(&rng, 1, 2), (int)(test_rng_u64(&rng) % 44) - 28);
        if (test_rng_u64(&rng) & 1) f = -f;
        uint16_t got = mlxr_fp32_to_fp16(f), want = slow_fp16(f);
        if (got != want && bad++ < 5) fprintf(stderr, "fp16(%a): %04x, want %04x\n", f, got, want);
    }
    /* exact ties between two halves round to even */
    for (uint16_t h = 0x0400; h < 0x7bff; h += 97) {
        double mid = ((double)mlxr_fp16_to_fp32(h) + mlxr_fp16_to_fp32((uint16_t)(h + 1))) / 2;
        uint16_t want = (h & 1) ? (uint16_t)(h + 1) : h;
        bad += mlxr_fp32_to_fp16((float)mid) != want;
    }
    CHECK(bad == 0, "float -> half rounding: %d mismatches", bad);
    bad = 0;
    for (int i = 0; i < 100000; i++) {
        float f = test_rng_f32(&rng, -1e6f, 1e6f);
        uint16_t b = mlxr_fp32_to_bf16(f);
        float back = mlxr_bf16_to_fp32(b);
        /* nearest: error at most half a bf16 ulp (8 bits of mantissa) */
        bad += fabsf(back - f) > ldexpf(fabsf(f), -8);
        bad += mlxr_fp32_to_bf16(back) != b;
    }
    CHECK(bad == 0, "bf16 rounding: %d mismatches", bad);
    return test_finish("util_fp16");
}
