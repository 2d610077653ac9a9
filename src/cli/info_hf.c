/*
 * info_hf.c - `mlxr info` for a Hugging Face / MLX model directory (or one .safetensors file of
 * one): the configuration as the loader read it (architecture, sizes, quantization, tokenizer)
 * and the tensor table of every shard, as stored (before any conversion at load), then the native
 * types that MLX triples load as.
 */
#include "cli.h"
#include "model/hf_impl.h"
#include "tokenizer/vocab_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *vocab_kind(const mlxr_vocab *v) {
    switch (v->kind) {
    case MLXR_VOCAB_SPM: return "SentencePiece BPE";
    case MLXR_VOCAB_BPE: return "byte-level BPE";
    case MLXR_VOCAB_WPM: return "WordPiece";
    }
    return "?";
}

int cli_info_hf(const char *path) {
    mlxr_load_opts o = {0};
    o.vocab_only = true; /* config and tokenizer; the shards are opened below, not bound */
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    if (mlxr_model_load(path, &o, &m, &err) != MLXR_OK)
        return cli_error("cannot read '%s': %s", path, err.msg);
    mlxr_hf *hf = m->hf;
    const mlxr_model_info *h = mlxr_model_get_info(m);
    char tm[4200];
    struct stat sb;
    const bool spm_file = mlxr_hf_join(hf, "tokenizer.model", tm, sizeof tm) && stat(tm, &sb) == 0;
    printf("directory: %s\nformat: %s\nname: %s\narchitecture: %s\n", hf->dir,
           hf->quant ? "MLX (quantized safetensors)" : "Hugging Face safetensors", m->name,
           h->arch ? h->arch : "?");
    printf("vocabulary: %d\ncontext (training): %d\nembedding: %d\nblocks: %d\nheads: %d (KV heads "
           "%d, head dimension %d)\nFFN: %d\nRoPE base: %g\nRMS eps: %g\ntied embeddings: %s\n",
           h->n_vocab, h->n_ctx_train, h->n_embd, h->n_layer, h->n_head, h->n_head_kv,
           h->head_dim, h->n_ff, (double)h->rope_freq_base, (double)h->rms_eps,
           hf->tie_embeddings ? "yes" : "no");
    char *q = hf->quant ? json_dumps(hf->quant, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    printf("quantization: %s\n", q ? q : "none");
    free(q);
    printf("tokenizer: %s from %s, %d tokens, BOS %d, EOS %d, add BOS %s\n", vocab_kind(m->vocab),
           spm_file ? "tokenizer.model" : "tokenizer.json", mlxr_vocab_n_tokens(m->vocab),
           mlxr_vocab_bos(m->vocab), mlxr_vocab_eos(m->vocab),
           mlxr_vocab_add_bos(m->vocab) ? "yes" : "no");
    printf("chat template: %s\n", hf->chat_template ? "yes" : "no");

    /* the tensors: the named file, or the directory's shards */
    mlxr_status st;
    if (stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        hf->shard = calloc(1, sizeof *hf->shard);
        st = hf->shard ? mlxr_st_open(path, &hf->shard[0], &err) : MLXR_ERR_NOMEM;
        if (st == MLXR_OK) hf->n_shard = 1;
    } else {
        st = mlxr_hf_open_shards(hf, &err);
    }
    if (st != MLXR_OK) {
        mlxr_model_free(m);
        return cli_error("cannot read the tensors of '%s': %s", path, err.msg);
    }
    int64_t total = 0;
    for (int s = 0; s < hf->n_shard; s++) total += mlxr_st_n_tensors(hf->shard[s]);
    printf("\ntensors (%" PRId64 " in %d file%s):\n  %-5s %-48s %-5s %-20s %12s %5s\n", total,
           hf->n_shard, hf->n_shard == 1 ? "" : "s", "#", "name", "type", "shape", "bytes",
           "shard");
    int64_t k = 0;
    for (int s = 0; s < hf->n_shard; s++) {
        for (int64_t i = 0; i < mlxr_st_n_tensors(hf->shard[s]); i++, k++) {
            const mlxr_st_tensor *t = mlxr_st_tensor_at(hf->shard[s], i);
            char shape[96];
            int n = snprintf(shape, sizeof shape, "[");
            for (int d = 0; d < t->n_dims && n < (int)sizeof shape; d++)
                n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRId64, d ? ", " : "",
                              t->shape[d]);
            if (n < (int)sizeof shape) snprintf(shape + n, sizeof shape - (size_t)n, "]");
            printf("  %-5" PRId64 " %-48s %-5s %-20s %12zu %5d\n", k, t->name,
                   mlxr_st_dtype_name(t->dtype), shape, t->nbytes, s);
        }
    }
    /* MLX triples load as native types (kernels/mlx_affine.h): how many matrices of each */
    int64_t n_mlx[MLXR_DTYPE_MLX_COUNT] = {0};
    for (int s = 0; s < hf->n_shard; s++)
        for (int64_t i = 0; i < mlxr_st_n_tensors(hf->shard[s]); i++) {
            const char *name = mlxr_st_tensor_at(hf->shard[s], i)->name;
            const size_t len = strlen(name), sl = strlen(".scales");
            char prefix[160];
            if (len <= sl || len - sl >= sizeof prefix || strcmp(name + len - sl, ".scales"))
                continue;
            snprintf(prefix, sizeof prefix, "%.*s", (int)(len - sl), name);
            const int t = (int)mlxr_hf_mlx_type(hf, prefix) - MLXR_DTYPE_MLX_FIRST;
            if (t >= 0 && t < MLXR_DTYPE_MLX_COUNT) n_mlx[t]++;
        }
    for (int t = 0, first = 1; t < MLXR_DTYPE_MLX_COUNT; t++)
        if (n_mlx[t]) {
            printf("%s%s: %" PRId64 " matrices\n", first ? "\nloaded as (native MLX types):\n  "
                                                            : "  ",
                   mlxr_dtype_name((mlxr_dtype)(MLXR_DTYPE_MLX_FIRST + t)), n_mlx[t]);
            first = 0;
        }
    mlxr_model_free(m);
    return 0;
}
