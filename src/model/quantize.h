/*
 * quantize.h - internals of mlxr_model_quantize: the presets and llama.cpp's rules that pick each
 * tensor's type (src/model/quant_rules.c), kept apart from the file I/O (quantize.c) so tests can
 * check the choices on their own.
 *
 * The rules are those of llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) for Llama-type
 * models without experts and without an importance matrix; see quant_rules.c.
 */
#ifndef MLXR_MODEL_QUANTIZE_H
#define MLXR_MODEL_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "mlxr.h"

/* llama.cpp's LLAMA_FTYPE values of the presets we write. */
enum {
    MLXR_FTYPE_ALL_F32 = 0,
    MLXR_FTYPE_F16 = 1,
    MLXR_FTYPE_Q4_0 = 2,
    MLXR_FTYPE_Q4_1 = 3,
    MLXR_FTYPE_Q8_0 = 7,
    MLXR_FTYPE_Q5_0 = 8,
    MLXR_FTYPE_Q5_1 = 9,
    MLXR_FTYPE_Q2_K = 10,
    MLXR_FTYPE_Q3_K_S = 11,
    MLXR_FTYPE_Q3_K_M = 12,
    MLXR_FTYPE_Q3_K_L = 13,
    MLXR_FTYPE_Q4_K_S = 14,
    MLXR_FTYPE_Q4_K_M = 15,
    MLXR_FTYPE_Q5_K_S = 16,
    MLXR_FTYPE_Q5_K_M = 17,
    MLXR_FTYPE_Q6_K = 18,
    MLXR_FTYPE_IQ4_NL = 25,
    MLXR_FTYPE_IQ4_XS = 30,
    MLXR_FTYPE_BF16 = 32,
};

/* The base tensor type of a preset (e.g. Q4_K for Q4_K_M), or MLXR_DTYPE_COUNT if unknown. */
mlxr_dtype mlxr_qpreset_base_type(int32_t ftype);
/* The preset's name ("Q4_K_M"), or NULL. */
const char *mlxr_qpreset_name(int32_t ftype);

/* State of the type choice over one model's tensors, in file order (llama.cpp counts attn_v and
 * ffn_down tensors as it meets them and uses the count as the layer index). */
typedef struct mlxr_qrules {
    int32_t ftype;
    mlxr_dtype base;
    int32_t n_layer;        /* {arch}.block_count (or the number of ffn_down tensors) */
    int32_t n_gqa;          /* n_head / n_head_kv (1 if unknown) */
    bool is_70b;            /* llama.cpp's LLM_TYPE_70B: a Llama with 80 layers */
    bool has_output;        /* an output.weight exists (else token_embd is the classifier) */
    int32_t n_attention_wv; /* number of attn_v / attn_qkv tensors */
    int32_t i_attention_wv, i_ffn_down; /* counters */
    int32_t n_fallback; /* tensors whose rows did not fit the chosen type's blocks */
} mlxr_qrules;

/* Whether a tensor is converted at all (llama.cpp: names ending in "weight", at least 2
 * dimensions, no norms, no positional/token-type embeddings or small special matrices). */
bool mlxr_qrules_converts(const char *name, uint32_t n_dims);

/*
 * The type for tensor `name` with rows of ne0 elements (call once per converted tensor, in file
 * order). Returns MLXR_DTYPE_COUNT when no type fits the row length (a 32-block preset on a row
 * that is not a multiple of 32); *fallback is set when the choice was replaced for that reason.
 */
mlxr_dtype mlxr_qrules_pick(mlxr_qrules *r, const char *name, int64_t ne0, bool *fallback);

#endif
