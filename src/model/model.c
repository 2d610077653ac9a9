/*
 * model.c - loading a Llama-family model from GGUF: hyperparameters from `llama.*` metadata,
 * weight views by llama.cpp's tensor names, and the tokenizer. Every shape and type is checked
 * against the hyperparameters before a single weight is used, so a hostile file fails here with
 * a message naming the tensor, never later inside a kernel.
 */
#include "model/model.h"
#include "format/dtype.h"
#include "model/hf.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hugemem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound on any one dimension we accept (guards sizes computed from them). */
#define DIM_MAX (1 << 24)

static mlxr_status get_dim(const mlxr_gguf *g, const char *arch, const char *suffix, int32_t *out,
                           bool required, int32_t def, mlxr_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    mlxr_status st = mlxr_gguf_get_i32(g, key, out, err);
    if (st == MLXR_ERR_NOT_FOUND && !required) {
        *out = def;
        return MLXR_OK;
    }
    if (st != MLXR_OK) return st;
    if (*out <= 0 || *out > DIM_MAX)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "%s = %d is out of range 1..%d", key, *out, DIM_MAX);
    return MLXR_OK;
}

static mlxr_status get_float(const mlxr_gguf *g, const char *arch, const char *suffix, float *out,
                             float def, mlxr_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    mlxr_status st = mlxr_gguf_get_f32(g, key, out, err);
    if (st == MLXR_ERR_NOT_FOUND) {
        *out = def;
        return MLXR_OK;
    }
    return st;
}

static mlxr_status read_hparams(mlxr_model *m, mlxr_err *err) {
    const mlxr_gguf *g = m->gguf;
    mlxr_model_info *h = &m->info;
    mlxr_gguf_str s;
    mlxr_status st = mlxr_gguf_get_str(g, "general.architecture", &s, err);
    if (st != MLXR_OK) return st;
    if (s.len != 5 || memcmp(s.data, "llama", 5) != 0)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (only 'llama')",
                         (int)(s.len > 64 ? 64 : s.len), s.data);
    snprintf(m->arch, sizeof m->arch, "llama");
    if (mlxr_gguf_get_str(g, "general.name", &s, NULL) == MLXR_OK)
        snprintf(m->name, sizeof m->name, "%.*s", (int)(s.len > 120 ? 120 : s.len), s.data);
    h->arch = m->arch;
    h->name = m->name;
    const char *a = m->arch;
    if ((st = get_dim(g, a, "embedding_length", &h->n_embd, true, 0, err)) ||
        (st = get_dim(g, a, "block_count", &h->n_layer, true, 0, err)) ||
        (st = get_dim(g, a, "feed_forward_length", &h->n_ff, true, 0, err)) ||
        (st = get_dim(g, a, "attention.head_count", &h->n_head, true, 0, err)) ||
        (st = get_dim(g, a, "attention.head_count_kv", &h->n_head_kv, false, h->n_head, err)) ||
        (st = get_dim(g, a, "context_length", &h->n_ctx_train, false, 2048, err)))
        return st;
    if (h->n_embd % h->n_head != 0)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "embedding_length %d is not a multiple of head_count %d",
                         h->n_embd, h->n_head);
    if (h->n_head % h->n_head_kv != 0)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "head_count %d is not a multiple of head_count_kv %d",
                         h->n_head, h->n_head_kv);
    if ((st = get_dim(g, a, "attention.key_length", &h->head_dim, false, h->n_embd / h->n_head, err)))
        return st;
    if (h->head_dim != h->n_embd / h->n_head)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "key_length %d differs from embedding/heads %d",
                         h->head_dim, h->n_embd / h->n_head);
    if ((st = get_dim(g, a, "rope.dimension_count", &h->n_rot, false, h->head_dim, err))) return st;
    if (h->n_rot > h->head_dim || h->n_rot % 2 != 0)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "rope.dimension_count %d must be even and <= %d",
                         h->n_rot, h->head_dim);
    if ((st = get_float(g, a, "rope.freq_base", &h->rope_freq_base, 10000.0f, err)) ||
        (st = get_float(g, a, "attention.layer_norm_rms_epsilon", &h->rms_eps, 1e-5f, err)))
        return st;
    if (!(h->rope_freq_base > 0.0f) || !(h->rms_eps >= 0.0f) || !(h->rms_eps < 1.0f))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "rope.freq_base %g or rms epsilon %g out of range",
                         (double)h->rope_freq_base, (double)h->rms_eps);
    return MLXR_OK;
}

/* Bind tensor `name` with shape [ne0, ne1] (ne1 = 1 for vectors). f32_only: norms. */
static mlxr_status bind(mlxr_model *m, mlxr_weight *w, const char *name, int64_t ne0, int64_t ne1,
                        bool f32_only, bool optional, mlxr_err *err) {
    const mlxr_gguf_tensor *t = mlxr_gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (optional) return MLXR_ERR_NOT_FOUND;
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tensor '%s' is missing", name);
    }
    int64_t t1 = 1;
    for (uint32_t d = 1; d < t->n_dims; d++) t1 *= t->ne[d];
    if (t->ne[0] != ne0 || t1 != ne1)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", name,
                         (long long)t->ne[0], (long long)t1, (long long)ne0, (long long)ne1);
    if (f32_only && t->type != MLXR_DTYPE_F32)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "tensor '%s' has type %s, expected F32", name,
                         mlxr_dtype_name(t->type));
    if ((uintptr_t)t->data % 4 != 0)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "tensor '%s' data is not 4-byte aligned", name);
    snprintf(w->name, sizeof w->name, "%s", name);
    w->data = t->data;
    w->type = t->type;
    w->ne0 = ne0;
    w->ne1 = ne1;
    w->row_bytes = mlxr_dtype_row_size(t->type, ne0);
    return MLXR_OK;
}

/* "blk.<il>.<suffix>" in buf; bind() copies it into the weight. */
static const char *layer_name(char (*buf)[48], int il, const char *suffix) {
    snprintf(*buf, sizeof *buf, "blk.%d.%s", il, suffix);
    return *buf;
}

mlxr_status mlxr_model_load_weights(mlxr_model *m, mlxr_err *err) {
    mlxr_model_info *h = &m->info;
    mlxr_status st = read_hparams(m, err);
    if (st != MLXR_OK) return st;
    h->n_vocab = mlxr_vocab_n_tokens(m->vocab);
    const int64_t E = h->n_embd, V = h->n_vocab, F = h->n_ff;
    const int64_t KV = (int64_t)h->n_head_kv * h->head_dim;
    if ((st = bind(m, &m->tok_embd, "token_embd.weight", E, V, false, false, err)) ||
        (st = bind(m, &m->output_norm, "output_norm.weight", E, 1, true, false, err)))
        return st;
    st = bind(m, &m->output, "output.weight", E, V, false, true, err);
    if (st == MLXR_ERR_NOT_FOUND) {
        m->output = m->tok_embd; /* tied classifier */
    } else if (st != MLXR_OK) {
        return st;
    }
    m->layers = calloc((size_t)h->n_layer, sizeof *m->layers);
    if (!m->layers) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for %d layers", h->n_layer);
    for (int il = 0; il < h->n_layer; il++) {
        mlxr_layer *L = &m->layers[il];
        char b[48];
        if ((st = bind(m, &L->attn_norm, layer_name(&b, il, "attn_norm.weight"), E, 1, true, false, err)) ||
            (st = bind(m, &L->wq, layer_name(&b, il, "attn_q.weight"), E, E, false, false, err)) ||
            (st = bind(m, &L->wk, layer_name(&b, il, "attn_k.weight"), E, KV, false, false, err)) ||
            (st = bind(m, &L->wv, layer_name(&b, il, "attn_v.weight"), E, KV, false, false, err)) ||
            (st = bind(m, &L->wo, layer_name(&b, il, "attn_output.weight"), E, E, false, false, err)) ||
            (st = bind(m, &L->ffn_norm, layer_name(&b, il, "ffn_norm.weight"), E, 1, true, false, err)) ||
            (st = bind(m, &L->w_gate, layer_name(&b, il, "ffn_gate.weight"), E, F, false, false, err)) ||
            (st = bind(m, &L->w_up, layer_name(&b, il, "ffn_up.weight"), E, F, false, false, err)) ||
            (st = bind(m, &L->w_down, layer_name(&b, il, "ffn_down.weight"), F, E, false, false, err)))
            return st;
    }
    int64_t n = mlxr_gguf_n_tensors(m->gguf);
    h->n_params = 0;
    h->n_bytes = 0;
    for (int64_t i = 0; i < n; i++) {
        const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(m->gguf, i);
        int64_t ne = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) ne *= t->ne[d];
        h->n_params += ne;
        h->n_bytes += t->nbytes;
    }
    return MLXR_OK;
}

static mlxr_status need_dot(const mlxr_kernels *k, const mlxr_weight *w, mlxr_err *err) {
    if (k->type[w->type].vec_dot) return MLXR_OK;
    return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                     "tensor '%s' has type %s, which this build cannot multiply yet", w->name,
                     mlxr_dtype_name(w->type));
}

/* Every matrix needs a dot product for its type, the embedding a decoder for its rows. */
static mlxr_status check_types(const mlxr_model *m, mlxr_err *err) {
    mlxr_kernels k;
    mlxr_kernels_init(&k, MLXR_ISA_SCALAR);
    mlxr_status st = need_dot(&k, &m->output, err);
    if (st != MLXR_OK) return st;
    if (!k.type[m->tok_embd.type].to_float)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "tensor 'token_embd.weight' has type %s, which this build cannot read yet",
                         mlxr_dtype_name(m->tok_embd.type));
    for (int il = 0; il < m->info.n_layer; il++) {
        const mlxr_layer *L = &m->layers[il];
        const mlxr_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof *ws; i++)
            if ((st = need_dot(&k, ws[i], err)) != MLXR_OK) return st;
    }
    return MLXR_OK;
}

/*
 * Every matrix the CPU forward pass streams gets its own copy on huge pages (util/hugemem.h:
 * about 15 % more read bandwidth than the file map's 4 KiB pages on a VM): the interleaved
 * layout (kernels.h: Q4_0x8, Q8_0x8, Q4_Kx8, ...) when this CPU has a product over it, then
 * prompt and decoding read only that (llama.c); otherwise the plain bytes, and `data` points to
 * them. With drop_plain (the weights are views of the read-only file map), the file pages are
 * given back (the map pages back in on use: a scalar-ISA context reading a packed type, the token
 * embeddings of a tied output, the CUDA backend's upload). A copy that cannot be allocated is
 * simply not made: the file map still works. Costs one pass over the weights at load.
 */
static void pack_weight(const mlxr_kernels *k, mlxr_weight *w, bool drop_plain) {
    const mlxr_type_kernels *tk = &k->type[w->type];
    if (w->packed || w->copy || w->ne1 < MLXR_PACK_ROWS) return;
    const size_t bytes = (size_t)w->ne1 * w->row_bytes; /* the tensor's size, checked by gguf.c */
    void *p = mlxr_huge_alloc(bytes);
    if (!p) return;
    if (tk->repack && tk->gemm_packed) {
        tk->repack(w->data, p, w->row_bytes, w->ne0, w->ne1);
        w->packed = p;
    } else {
        memcpy(p, w->data, bytes);
        w->copy = p;
    }
    if (drop_plain) mlxr_file_drop_pages(w->data, bytes);
    if (w->copy) w->data = w->copy;
}

static void pack_weights(mlxr_model *m, bool drop_plain) {
    mlxr_kernels k;
    mlxr_kernels_init(&k, mlxr_cpu_isa());
    for (int il = 0; il < m->info.n_layer; il++) {
        mlxr_layer *L = &m->layers[il];
        mlxr_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) pack_weight(&k, ws[i], drop_plain);
    }
    pack_weight(&k, &m->output, drop_plain);
}

static void unmap_packed(mlxr_weight *w) {
    const size_t bytes = (size_t)w->ne1 * w->row_bytes;
    mlxr_huge_free(w->packed, bytes);
    mlxr_huge_free(w->copy, bytes);
    w->packed = w->copy = NULL;
}

static void free_packed(mlxr_model *m) {
    for (int il = 0; m->layers && il < m->info.n_layer; il++) {
        mlxr_layer *L = &m->layers[il];
        mlxr_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) unmap_packed(ws[i]);
    }
    unmap_packed(&m->output);
}

mlxr_status mlxr_model_load(const char *path, const mlxr_load_opts *opts, mlxr_model **out,
                            mlxr_err *err) {
    if (!path || !out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "model path and out must be set");
    *out = NULL;
    mlxr_model *m = calloc(1, sizeof *m);
    if (!m) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for model");
    if (opts) {
        m->log = opts->log;
        m->log_user = opts->log_user;
        m->vocab_only = opts->vocab_only;
    }
    mlxr_status st;
    if (mlxr_hf_is_path(path)) { /* a Hugging Face / MLX directory: model/hf.h does it all */
        if ((st = mlxr_hf_load(m, path, err)) != MLXR_OK) goto fail;
        *out = m;
        return MLXR_OK;
    }
    st = mlxr_gguf_open(path, &m->gguf, err);
    if (st != MLXR_OK) goto fail;
    if ((st = mlxr_vocab_load_gguf(m->gguf, &m->vocab, err)) != MLXR_OK) goto fail;
    m->info.n_vocab = mlxr_vocab_n_tokens(m->vocab);
    if (!m->vocab_only) {
        if ((st = mlxr_model_load_weights(m, err)) != MLXR_OK) goto fail;
        if ((st = check_types(m, err)) != MLXR_OK) goto fail;
        if (!(opts && opts->for_gpu)) pack_weights(m, true);
    }
    m->info.bos_id = mlxr_vocab_bos(m->vocab);
    m->info.eos_id = mlxr_vocab_eos(m->vocab);
    *out = m;
    return MLXR_OK;
fail:
    mlxr_model_free(m);
    return st;
}

void mlxr_model_free(mlxr_model *m) {
    if (!m) return;
    free_packed(m);
    free(m->layers);
    mlxr_vocab_free(m->vocab);
    mlxr_gguf_close(m->gguf);
    mlxr_hf_free(m->hf);
    free(m);
}

const mlxr_model_info *mlxr_model_get_info(const mlxr_model *m) {
    return &m->info;
}

mlxr_status mlxr_tokenize(const mlxr_model *m, const char *text, size_t len, bool add_bos,
                          bool parse_special, int32_t *ids, size_t cap, size_t *n_out,
                          mlxr_err *err) {
    if (!m || (!text && len) || !n_out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "null argument");
    return mlxr_vocab_tokenize(m->vocab, text ? text : "", len, add_bos, parse_special, ids, cap,
                               n_out, err);
}

mlxr_status mlxr_token_to_piece(const mlxr_model *m, int32_t id, char *buf, size_t cap,
                                size_t *n_out, mlxr_err *err) {
    if (!m || !n_out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "null argument");
    return mlxr_vocab_token_to_piece(m->vocab, id, false, buf, cap, n_out, err);
}

bool mlxr_token_is_eog(const mlxr_model *m, int32_t id) {
    return mlxr_vocab_is_eog(m->vocab, id);
}
