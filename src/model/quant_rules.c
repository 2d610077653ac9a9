/*
 * quant_rules.c - which type each tensor gets under a quantization preset: llama.cpp's
 * llama_tensor_get_type (src/llama-quant.cpp) for Llama-type models (no experts, not Falcon) and
 * no importance matrix.
 *
 *   output.weight (or token_embd.weight when the classifier is tied): Q6_K, except Q8_0 stays
 *     Q8_0 and a row that is not a multiple of the base block gives Q8_0.
 *   attn_v.weight, counted i of n: Q2_K -> Q3_K (Q4_K if n_head/n_head_kv >= 4); Q3_K_M -> Q5_K
 *     for i < 2 else Q4_K; Q3_K_L -> Q5_K; IQ4_NL/IQ4_XS -> Q5_K when n_gqa >= 4; Q4_K_M/Q5_K_M ->
 *     Q6_K where use_more_bits(i, n); Q4_K_S -> Q5_K for i < 4; on a 70B, Q3_K/Q4_K -> Q5_K.
 *   ffn_down, layer i of n: Q2_K -> Q3_K; Q3_K_M -> Q5_K for i < n/16 else Q4_K; Q3_K_L -> Q5_K;
 *     Q4_K_M -> Q6_K where use_more_bits; IQ4_NL/IQ4_XS -> Q5_K for i < n/8; Q5_K_M -> Q6_K where
 *     use_more_bits; Q4_K_S -> Q5_K for i < n/8.
 *   attn_output.weight: Q2_K -> Q3_K, Q3_K_M -> Q4_K, Q3_K_L -> Q5_K.
 *   attn_qkv.weight: Q3_K_M/L -> Q4_K, Q4_K_M -> Q5_K, Q5_K_M -> Q6_K.
 *   use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2: the first and last eighth
 *     of the layers and every third one between.
 * Then, when ne0 is not a multiple of the chosen type's block: Q2_K/Q3_K/IQ4_XS -> IQ4_NL,
 * Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 if that does not fit either; other types
 * cannot fall back (llama.cpp stops with "Unsupported tensor size").
 * The F32/F16/BF16 presets convert every converted tensor to that type, with no mixing.
 */
#include "model/quantize.h"

#include <string.h>

#include "format/dtype.h"

typedef struct preset {
    const char *name;
    int32_t ftype;
    mlxr_dtype base;
} preset;

static const preset PRESETS[] = {
    {"F32", MLXR_FTYPE_ALL_F32, MLXR_DTYPE_F32},
    {"F16", MLXR_FTYPE_F16, MLXR_DTYPE_F16},
    {"BF16", MLXR_FTYPE_BF16, MLXR_DTYPE_BF16},
    {"Q8_0", MLXR_FTYPE_Q8_0, MLXR_DTYPE_Q8_0},
    {"Q4_0", MLXR_FTYPE_Q4_0, MLXR_DTYPE_Q4_0},
    {"Q4_1", MLXR_FTYPE_Q4_1, MLXR_DTYPE_Q4_1},
    {"Q5_0", MLXR_FTYPE_Q5_0, MLXR_DTYPE_Q5_0},
    {"Q5_1", MLXR_FTYPE_Q5_1, MLXR_DTYPE_Q5_1},
    {"Q2_K", MLXR_FTYPE_Q2_K, MLXR_DTYPE_Q2_K},
    {"Q3_K_S", MLXR_FTYPE_Q3_K_S, MLXR_DTYPE_Q3_K},
    {"Q3_K_M", MLXR_FTYPE_Q3_K_M, MLXR_DTYPE_Q3_K},
    {"Q3_K_L", MLXR_FTYPE_Q3_K_L, MLXR_DTYPE_Q3_K},
    {"Q4_K_S", MLXR_FTYPE_Q4_K_S, MLXR_DTYPE_Q4_K},
    {"Q4_K_M", MLXR_FTYPE_Q4_K_M, MLXR_DTYPE_Q4_K},
    {"Q5_K_S", MLXR_FTYPE_Q5_K_S, MLXR_DTYPE_Q5_K},
    {"Q5_K_M", MLXR_FTYPE_Q5_K_M, MLXR_DTYPE_Q5_K},
    {"Q6_K", MLXR_FTYPE_Q6_K, MLXR_DTYPE_Q6_K},
    {"IQ4_NL", MLXR_FTYPE_IQ4_NL, MLXR_DTYPE_IQ4_NL},
    {"IQ4_XS", MLXR_FTYPE_IQ4_XS, MLXR_DTYPE_IQ4_XS},
};
#define N_PRESETS ((int32_t)(sizeof PRESETS / sizeof PRESETS[0]))

static const preset *find_ftype(int32_t ftype) {
    for (int32_t i = 0; i < N_PRESETS; i++)
        if (PRESETS[i].ftype == ftype) return &PRESETS[i];
    return NULL;
}

mlxr_dtype mlxr_qpreset_base_type(int32_t ftype) {
    const preset *p = find_ftype(ftype);
    return p ? p->base : MLXR_DTYPE_COUNT;
}

const char *mlxr_qpreset_name(int32_t ftype) {
    const preset *p = find_ftype(ftype);
    return p ? p->name : NULL;
}

static bool same_ci(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char ca = *a >= 'a' && *a <= 'z' ? (char)(*a - 32) : *a;
        if (ca != *b) return false;
    }
    return *a == *b;
}

int32_t mlxr_quantize_preset_ftype(const char *name) {
    if (!name) return -1;
    for (int32_t i = 0; i < N_PRESETS; i++)
        if (same_ci(name, PRESETS[i].name)) return PRESETS[i].ftype;
    /* llama-quantize's aliases */
    if (same_ci(name, "Q3_K")) return MLXR_FTYPE_Q3_K_M;
    if (same_ci(name, "Q4_K")) return MLXR_FTYPE_Q4_K_M;
    if (same_ci(name, "Q5_K")) return MLXR_FTYPE_Q5_K_M;
    return -1;
}

const char *mlxr_quantize_preset_at(int32_t i) {
    return i >= 0 && i < N_PRESETS ? PRESETS[i].name : NULL;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

bool mlxr_qrules_converts(const char *name, uint32_t n_dims) {
    if (!ends_with(name, "weight") || n_dims < 2) return false;
    static const char *const KEEP[] = {"_norm.weight", "ffn_gate_inp.weight", "altup",
                                       "laurel",       "ssm_conv1d.weight",   "attn_rel_b.weight"};
    for (size_t i = 0; i < sizeof KEEP / sizeof KEEP[0]; i++)
        if (strstr(name, KEEP[i])) return false;
    return strcmp(name, "position_embd.weight") != 0 && strcmp(name, "token_types.weight") != 0;
}

static bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static mlxr_dtype pick_attn_v(mlxr_qrules *r) {
    const int32_t f = r->ftype;
    mlxr_dtype t = r->base;
    const int i = r->i_attention_wv++;
    if (f == MLXR_FTYPE_Q2_K)
        t = r->n_gqa >= 4 ? MLXR_DTYPE_Q4_K : MLXR_DTYPE_Q3_K;
    else if (f == MLXR_FTYPE_Q3_K_M)
        t = i < 2 ? MLXR_DTYPE_Q5_K : MLXR_DTYPE_Q4_K;
    else if (f == MLXR_FTYPE_Q3_K_L)
        t = MLXR_DTYPE_Q5_K;
    else if ((f == MLXR_FTYPE_IQ4_NL || f == MLXR_FTYPE_IQ4_XS) && r->n_gqa >= 4)
        t = MLXR_DTYPE_Q5_K;
    else if ((f == MLXR_FTYPE_Q4_K_M || f == MLXR_FTYPE_Q5_K_M) &&
             use_more_bits(i, r->n_attention_wv))
        t = MLXR_DTYPE_Q6_K;
    else if (f == MLXR_FTYPE_Q4_K_S && i < 4)
        t = MLXR_DTYPE_Q5_K;
    /* 70B: 8 query heads share each V head, so V is small and worth more bits */
    if (r->is_70b && (t == MLXR_DTYPE_Q3_K || t == MLXR_DTYPE_Q4_K)) t = MLXR_DTYPE_Q5_K;
    return t;
}

static mlxr_dtype pick_ffn_down(mlxr_qrules *r) {
    const int32_t f = r->ftype;
    const int i = r->i_ffn_down++, n = r->n_layer;
    if (f == MLXR_FTYPE_Q2_K) return MLXR_DTYPE_Q3_K;
    if (f == MLXR_FTYPE_Q3_K_M) return i < n / 16 ? MLXR_DTYPE_Q5_K : MLXR_DTYPE_Q4_K;
    if (f == MLXR_FTYPE_Q3_K_L) return MLXR_DTYPE_Q5_K;
    if (f == MLXR_FTYPE_Q4_K_M) return use_more_bits(i, n) ? MLXR_DTYPE_Q6_K : r->base;
    if (i < n / 8 && (f == MLXR_FTYPE_IQ4_NL || f == MLXR_FTYPE_IQ4_XS)) return MLXR_DTYPE_Q5_K;
    if (f == MLXR_FTYPE_Q5_K_M && use_more_bits(i, n)) return MLXR_DTYPE_Q6_K;
    if (f == MLXR_FTYPE_Q4_K_S && i < n / 8) return MLXR_DTYPE_Q5_K;
    return r->base;
}

static int64_t block_of(mlxr_dtype t) {
    const mlxr_dtype_traits *tr = mlxr_dtype_get(t);
    return tr ? tr->blck_size : 1;
}

mlxr_dtype mlxr_qrules_pick(mlxr_qrules *r, const char *name, int64_t ne0, bool *fallback) {
    *fallback = false;
    mlxr_dtype t = r->base;
    if (r->base == MLXR_DTYPE_F32 || r->base == MLXR_DTYPE_F16 || r->base == MLXR_DTYPE_BF16)
        return t; /* llama.cpp applies no mixing rules to the float presets */
    const int32_t f = r->ftype;
    if (!strcmp(name, "output.weight") || (!r->has_output && !strcmp(name, "token_embd.weight"))) {
        if (ne0 % block_of(t) != 0)
            t = MLXR_DTYPE_Q8_0;
        else if (t != MLXR_DTYPE_Q8_0)
            t = MLXR_DTYPE_Q6_K;
    } else if (!strcmp(name, "token_embd.weight")) {
        /* the base type, for every preset written here */
    } else if (strstr(name, "attn_v.weight")) {
        t = pick_attn_v(r);
    } else if (strstr(name, "ffn_down")) {
        t = pick_ffn_down(r);
    } else if (strstr(name, "attn_output.weight")) {
        if (f == MLXR_FTYPE_Q2_K)
            t = MLXR_DTYPE_Q3_K;
        else if (f == MLXR_FTYPE_Q3_K_M)
            t = MLXR_DTYPE_Q4_K;
        else if (f == MLXR_FTYPE_Q3_K_L)
            t = MLXR_DTYPE_Q5_K;
    } else if (strstr(name, "attn_qkv.weight")) {
        if (f == MLXR_FTYPE_Q3_K_M || f == MLXR_FTYPE_Q3_K_L)
            t = MLXR_DTYPE_Q4_K;
        else if (f == MLXR_FTYPE_Q4_K_M)
            t = MLXR_DTYPE_Q5_K;
        else if (f == MLXR_FTYPE_Q5_K_M)
            t = MLXR_DTYPE_Q6_K;
    }
    if (ne0 % block_of(t) == 0) return t;
    *fallback = true;
    r->n_fallback++;
    switch (t) {
    case MLXR_DTYPE_Q2_K:
    case MLXR_DTYPE_Q3_K:
    case MLXR_DTYPE_IQ4_XS:
        t = MLXR_DTYPE_IQ4_NL;
        break;
    case MLXR_DTYPE_Q4_K:
        t = MLXR_DTYPE_Q5_0;
        break;
    case MLXR_DTYPE_Q5_K:
        t = MLXR_DTYPE_Q5_1;
        break;
    case MLXR_DTYPE_Q6_K:
        t = MLXR_DTYPE_Q8_0;
        break;
    default:
        return MLXR_DTYPE_COUNT;
    }
    return ne0 % block_of(t) == 0 ? t : MLXR_DTYPE_F16;
}
