/*
 * test_quant_vectors.c - decoding of the shared reference vectors in <testdata>/quant/ (see its
 * README.md): for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, F16
 * and BF16 (every type of the folder this engine reads; the IQ1/IQ2/IQ3/TQ files are not read
 * yet), TYPE.blocks holds raw GGUF blocks and TYPE.f32 the
 * values llama.cpp's gguf-py reference dequantizer computed from them (little-endian float32).
 *
 * The reference to_float of every type, and the to_float of the dispatch table at every ISA
 * level this CPU has, must reproduce TYPE.f32 bit for bit. The blocks are random bytes with
 * small valid scales, so every nibble and byte value (Q8_0's -128 included) and, for F16/BF16,
 * arbitrary bit patterns are covered. As a consistency check, F16 and BF16 from_float must encode
 * the decoded values back to the original bits (NaN payloads aside, which from_float quietens).
 */
#include <math.h>

#include "kernels/kernels.h"
#include "test.h"
#include "util/fp16.h"

typedef struct vec_type {
    mlxr_dtype t;
    const char *name;
    int block_n;
    size_t block_bytes;
    mlxr_to_float_fn ref;
} vec_type;

static const vec_type TYPES[] = {
    {MLXR_DTYPE_Q4_0, "Q4_0", MLXR_QK4_0, sizeof(mlxr_block_q4_0), mlxr_dequantize_q4_0_ref},
    {MLXR_DTYPE_Q4_1, "Q4_1", MLXR_QK4_1, sizeof(mlxr_block_q4_1), mlxr_dequantize_q4_1_ref},
    {MLXR_DTYPE_Q5_0, "Q5_0", MLXR_QK5_0, sizeof(mlxr_block_q5_0), mlxr_dequantize_q5_0_ref},
    {MLXR_DTYPE_Q5_1, "Q5_1", MLXR_QK5_1, sizeof(mlxr_block_q5_1), mlxr_dequantize_q5_1_ref},
    {MLXR_DTYPE_Q8_0, "Q8_0", MLXR_QK8_0, sizeof(mlxr_block_q8_0), mlxr_dequantize_q8_0_ref},
    {MLXR_DTYPE_Q2_K, "Q2_K", MLXR_QK_K, sizeof(mlxr_block_q2_k), mlxr_dequantize_q2_k_ref},
    {MLXR_DTYPE_Q3_K, "Q3_K", MLXR_QK_K, sizeof(mlxr_block_q3_k), mlxr_dequantize_q3_k_ref},
    {MLXR_DTYPE_Q4_K, "Q4_K", MLXR_QK_K, sizeof(mlxr_block_q4_k), mlxr_dequantize_q4_k_ref},
    {MLXR_DTYPE_Q5_K, "Q5_K", MLXR_QK_K, sizeof(mlxr_block_q5_k), mlxr_dequantize_q5_k_ref},
    {MLXR_DTYPE_Q6_K, "Q6_K", MLXR_QK_K, sizeof(mlxr_block_q6_k), mlxr_dequantize_q6_k_ref},
    {MLXR_DTYPE_IQ4_NL, "IQ4_NL", MLXR_QK4_NL, sizeof(mlxr_block_iq4_nl),
     mlxr_dequantize_iq4_nl_ref},
    {MLXR_DTYPE_IQ4_XS, "IQ4_XS", MLXR_QK_K, sizeof(mlxr_block_iq4_xs), mlxr_dequantize_iq4_xs_ref},
    {MLXR_DTYPE_F16, "F16", 1, 2, mlxr_to_float_f16_ref},
    {MLXR_DTYPE_BF16, "BF16", 1, 2, mlxr_to_float_bf16_ref},
};

static char *read_data(const char *rel, size_t *len) {
    char *path = test_data_path(rel);
    char *data = path ? test_read_file(path, len) : NULL;
    CHECK(data != NULL, "cannot read %s", path ? path : rel);
    free(path);
    return data;
}

/* Compare a decoded row with the expected one bit for bit; print the first mismatches. */
static void check_decoded(const char *label, const vec_type *vt, const float *got,
                          const float *want, int64_t n) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t g = mlxr_f32_bits(got[i]), w = mlxr_f32_bits(want[i]);
        if (g == w) continue;
        if (++bad <= 5) {
            fprintf(stderr,
                    "  %s %s [%" PRId64 "] (block %" PRId64 "): got %.9g (%08x) want %.9g "
                    "(%08x)\n",
                    label, vt->name, i, i / vt->block_n, (double)got[i], g, (double)want[i], w);
        }
    }
    CHECK(bad == 0, "%s %s: %d of %" PRId64 " values differ from the reference vectors", label,
          vt->name, bad, n);
}

static void check_type(const vec_type *vt) {
    char rel[64];
    size_t nb = 0, nf = 0;
    snprintf(rel, sizeof(rel), "quant/%s.blocks", vt->name);
    char *blocks = read_data(rel, &nb);
    snprintf(rel, sizeof(rel), "quant/%s.f32", vt->name);
    char *f32 = read_data(rel, &nf);
    if (!blocks || !f32) goto done;

    const int64_t n = (int64_t)(nf / sizeof(float));
    const int ok_size = nf % sizeof(float) == 0 && n % vt->block_n == 0 &&
                        (size_t)(n / vt->block_n) * vt->block_bytes == nb && n > 0;
    CHECK(ok_size, "%s: %zu block bytes do not match %zu float bytes", vt->name, nb, nf);
    if (!ok_size) goto done;

    /* copies in exactly-sized, suitably aligned buffers (ASan sees any overread) */
    void *in = malloc(nb);
    float *want = malloc(nf), *got = malloc(nf);
    if (!in || !want || !got) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memcpy(in, blocks, nb);
    memcpy(want, f32, nf);

    memset(got, 0xAB, nf);
    vt->ref(in, got, n);
    check_decoded("ref", vt, got, want, n);

    for (int isa = MLXR_ISA_SCALAR; isa <= (int)mlxr_cpu_isa(); isa++) {
        mlxr_kernels k;
        mlxr_kernels_init(&k, (mlxr_isa)isa);
        memset(got, 0xAB, nf);
        k.type[vt->t].to_float(in, got, n);
        check_decoded(mlxr_isa_name(k.isa), vt, got, want, n);

        if (vt->block_n == 1) {
            uint16_t *enc = malloc(nb);
            if (!enc) exit(2);
            k.type[vt->t].from_float(want, enc, n);
            const uint16_t *orig = in;
            int bad = 0;
            for (int64_t i = 0; i < n; i++) {
                if (isnan(want[i])) continue;
                if (enc[i] != orig[i] && ++bad <= 5) {
                    fprintf(stderr, "  %s %s from_float [%" PRId64 "]: %04x, want %04x\n",
                            mlxr_isa_name(k.isa), vt->name, i, enc[i], orig[i]);
                }
            }
            CHECK(bad == 0, "%s %s: decoded values do not encode back (%d)", mlxr_isa_name(k.isa),
                  vt->name, bad);
            free(enc);
        }
    }
    free(in);
    free(want);
    free(got);
done:
    free(blocks);
    free(f32);
}

int main(void) {
    for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++)
        check_type(&TYPES[i]);
    return test_finish("kernels_quant_vectors");
}
