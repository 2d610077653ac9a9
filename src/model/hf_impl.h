/*
 * hf_impl.h - internals shared by the Hugging Face / MLX loader's files (hf_load.c: directory,
 * config and orchestration; hf_weights.c: tensors; hf_spm.c: tokenizer.model; hf_tokjson.c:
 * tokenizer.json).
 */
#ifndef MLXR_MODEL_HF_IMPL_H
#define MLXR_MODEL_HF_IMPL_H

#include <jansson.h>
#include <stddef.h>

#include "format/safetensors.h"
#include "model/hf.h"
#include "model/model.h"

/* Most safetensors shards accepted (a 405B checkpoint has 191). */
#define HF_MAX_SHARDS 1024

struct mlxr_hf {
    char dir[4096];      /* the model directory, no trailing slash */
    mlxr_st **shard;     /* [n_shard] open safetensors files */
    int n_shard;
    void **owned;        /* [n_owned] buffers made at load (converted or repacked weights) */
    size_t n_owned, cap_owned;
    json_t *quant;       /* config.json "quantization" object (owned reference), or NULL */
    char *chat_template; /* tokenizer_config.json's, or NULL */
    int32_t cfg_bos, cfg_eos; /* config.json (else generation_config.json) bos/eos_token_id, or -1 */
    int32_t cfg_eot;          /* a second end-of-generation id from those files' EOS lists, or -1 */
    bool tie_embeddings;
};

/* "<dir>/<name>" into buf (cap bytes); false when it does not fit. */
bool mlxr_hf_join(const mlxr_hf *h, const char *name, char *buf, size_t cap);

/* Open model.safetensors, or the shards that model.safetensors.index.json lists. */
mlxr_status mlxr_hf_open_shards(mlxr_hf *h, mlxr_err *err);
/* Tensor `name` from whichever shard holds it, or NULL. */
const mlxr_st_tensor *mlxr_hf_find(const mlxr_hf *h, const char *name);
/* The native MLX type (kernels/mlx_affine.h) that layer `prefix` (P of P.weight / P.scales)
 * loads as, from config.json's quantization and the scales' dtype; MLXR_DTYPE_COUNT when the layer
 * is not a supported MLX triple. */
mlxr_dtype mlxr_hf_mlx_type(const mlxr_hf *h, const char *prefix);
/* Bind every weight of m (hyperparameters in m->info already checked). */
mlxr_status mlxr_hf_bind_weights(mlxr_model *m, mlxr_hf *h, mlxr_err *err);

/* Build m->vocab from <dir>/tokenizer.model (+ tokenizer_config.json flags); n_vocab is the
 * embedding's row count (the vocabulary is padded with unused tokens up to it). */
mlxr_status mlxr_hf_load_vocab(mlxr_model *m, mlxr_hf *h, int32_t n_vocab, mlxr_err *err);

/* How to build a vocabulary from a tokenizer.model (mlxr_hf_spm_vocab). */
typedef struct mlxr_hf_spm_opts {
    int32_t n_vocab;          /* tokens (>= the pieces: padded with [PADn]); 0 = the pieces */
    int32_t bos, eos;         /* ids from config.json, or -1 for the model's own */
    int32_t eot;              /* another end-of-generation id, or -1 */
    int add_bos, add_eos;     /* tokenizer_config.json's flags: 1, 0, or -1 for the default */
    const json_t *added;      /* tokenizer_config.json's added_tokens_decoder, or NULL */
    const char *name;         /* the model's name (llama.cpp's per-model token rules), or NULL */
} mlxr_hf_spm_opts;

/* A vocabulary from the bytes of a SentencePiece tokenizer.model (untrusted; see hf_spm.c).
 * Errors: MLXR_ERR_FORMAT, _UNSUPPORTED (not a BPE model), _NOMEM. */
mlxr_status mlxr_hf_spm_vocab(const void *data, size_t size, const mlxr_hf_spm_opts *o,
                              mlxr_vocab **out, mlxr_err *err);

/* hf_tokjson.c: the vocabulary from a parsed tokenizer.json (tc: tokenizer_config.json or NULL,
 * for bos_token/eos_token; o->added is not used: tokenizer.json lists its own added tokens).
 * Errors: MLXR_ERR_FORMAT, _UNSUPPORTED (Unigram, unknown pre-tokenizer), _NOMEM. */
mlxr_status mlxr_hf_tokjson_vocab(const json_t *tj, const json_t *tc, const mlxr_hf_spm_opts *o,
                                  mlxr_vocab **out, mlxr_err *err);
/* m->vocab from tokenizer.model when the directory has one (mlxr_hf_load_vocab), else from
 * tokenizer.json. */
mlxr_status mlxr_hf_load_tokenizer(mlxr_model *m, mlxr_hf *h, int32_t n_vocab, mlxr_err *err);

/* Keep p (malloc'ed) until mlxr_hf_free; frees p and fails when out of memory. */
mlxr_status mlxr_hf_own(mlxr_hf *h, void *p, mlxr_err *err);

/* Read a whole JSON file <dir>/<name>: *out NULL (and MLXR_OK) when the file does not exist and
 * !required. */
mlxr_status mlxr_hf_read_json(const mlxr_hf *h, const char *name, bool required, json_t **out,
                              mlxr_err *err);

#endif
