/*
 * hf.h - loading Hugging Face Llama-family checkpoints and MLX-format ones (mlx-lm's layout),
 * and writing MLX-format copies for tests and tools.
 *
 * A model directory holds:
 *   config.json                    hyperparameters (transformers' LlamaConfig / MistralConfig);
 *                                  MLX models add "quantization": {"group_size": G, "bits": B}
 *                                  (and per-layer overrides keyed by the layer's path)
 *   model.safetensors              the tensors, or several shards listed by
 *   model.safetensors.index.json   {"weight_map": {tensor name: shard file name}}
 *   tokenizer.model                the SentencePiece model (protobuf; BPE models only)
 *   tokenizer.json                 used when there is no tokenizer.model (hf_tokjson.c: BPE,
 *                                  SentencePiece-style or byte-level)
 *   tokenizer_config.json          add_bos_token / add_eos_token, added_tokens_decoder,
 *                                  chat_template (all optional; or chat_template.jinja)
 *   generation_config.json         bos/eos_token_id when config.json has none; a second EOS
 *                                  id there (or in config.json's list) also ends generation
 * Tensors use transformers' names (model.embed_tokens, model.layers.N.self_attn.q_proj, ...,
 * lm_head). An MLX-quantized linear layer P stores P.weight (U32 [out, in * bits / 32]), P.scales
 * and P.biases (F16 or BF16 [out, in / G]); see kernels/mlx_affine.h for the packing.
 *
 * Layout differences from GGUF that the loader undoes:
 *  - transformers rotates Q/K by halves (rotate_half); llama.cpp's `llama` RoPE rotates adjacent
 *    pairs, and GGUF files carry Q/K rows permuted for it (convert_hf_to_gguf.py). The loader
 *    applies the same permutation to q_proj/k_proj rows: GGUF row h*D + 2i + k = HF row
 *    h*D + k*D/2 + i (head h, head dimension D, k in {0, 1}).
 *  - RMSNorm gains are converted to F32 (the forward pass reads them as F32).
 *  - Mistral's sliding_window, when below max_position_embeddings, becomes the training context
 *    (full attention equals windowed attention up to the window).
 * F32/F16/BF16 matrices are used in place from the mapping when their rows are 4-byte aligned.
 * MLX 4- and 8-bit matrices keep their quantization: they are copied once into the native MLX
 * types (MLX_Q<bits>_G<group>[_BF16], layout in kernels/mlx_affine.h: each group's scale and bias
 * beside its codes, the file's f16/bf16 values and codes unchanged), the same number of bytes as
 * the file's three arrays; the embedding rows are dequantized one at a time as tokens need them.
 */
#ifndef MLXR_MODEL_HF_H
#define MLXR_MODEL_HF_H

#include <stdbool.h>

#include "mlxr.h"

typedef struct mlxr_hf mlxr_hf; /* what an HF-loaded model owns: shards, buffers, template */

/* True when path names a directory or a file ending in ".safetensors" (then its directory is the
 * model directory). */
bool mlxr_hf_is_path(const char *path);

/* Load config, tokenizer and (unless m->vocab_only) weights into m, whose log/vocab_only fields
 * are set. On success m->hf owns everything allocated; on failure the caller frees m with
 * mlxr_model_free (m->hf may be partially filled). Errors: MLXR_ERR_IO, _FORMAT (the message
 * names the file, key or tensor), _UNSUPPORTED, _NOMEM. */
mlxr_status mlxr_hf_load(mlxr_model *m, const char *path, mlxr_err *err);
/* Free what mlxr_hf_load allocated; NULL does nothing. */
void mlxr_hf_free(mlxr_hf *hf);
/* tokenizer_config.json's chat_template (malloc'ed copy), or MLXR_ERR_NOT_FOUND. */
mlxr_status mlxr_hf_chat_template(const mlxr_hf *hf, char **out, mlxr_err *err);

/*
 * Write an MLX-format copy of the HF model directory in_dir (F16 or BF16 weights) to out_dir
 * (created if missing): every linear layer and the embedding quantized with mx.quantize's affine
 * rule (mlxr_mlx_affine_quantize, scales/biases in the weight's dtype) at `bits` (4 or 8) and
 * `group_size` (32, 64, 128); other tensors copied; config.json gains "quantization" and
 * "quantization_config"; tokenizer files copied. shard_bytes > 0 splits the tensors into shards of
 * about that size with a model.safetensors.index.json, as mlx-lm does for large models.
 */
mlxr_status mlxr_hf_write_mlx(const char *in_dir, const char *out_dir, int bits, int group_size,
                              size_t shard_bytes, mlxr_err *err);

#endif
