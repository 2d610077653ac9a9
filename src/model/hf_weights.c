/*
 * hf_weights.c - the tensors of a Hugging Face / MLX checkpoint bound to the model's weights
 * (layout and conversions in hf.h). Every tensor's dtype and shape is checked against config.json
 * before its data is read; a missing or malformed tensor fails with its name.
 */
#include "model/hf_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/dtype.h"
#include "kernels/mlx_affine.h"
#include "util/err.h"
#include "util/file.h"
#include "util/fp16.h"

/* Largest quantization group accepted from config.json (before the kernels' own check). */
#define DIM_MAX_GROUP (1 << 20)

/* ---- shards ---------------------------------------------------------------------------------- */

static mlxr_status add_shard(mlxr_hf *h, const char *file, mlxr_err *err) {
    if (!*file || strchr(file, '/') || !strcmp(file, ".") || !strcmp(file, ".."))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "model.safetensors.index.json: shard name '%.200s' is not a plain file "
                         "name",
                         file);
    if (h->n_shard >= HF_MAX_SHARDS)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "model.safetensors.index.json: more than %d shards",
                         HF_MAX_SHARDS);
    char path[4200];
    if (!mlxr_hf_join(h, file, path, sizeof path))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "model path too long");
    mlxr_status st = mlxr_st_open(path, &h->shard[h->n_shard], err);
    if (st == MLXR_OK) h->n_shard++;
    return st;
}

mlxr_status mlxr_hf_open_shards(mlxr_hf *h, mlxr_err *err) {
    json_t *idx = NULL;
    mlxr_status st = mlxr_hf_read_json(h, "model.safetensors.index.json", false, &idx, err);
    if (st != MLXR_OK) return st;
    if (!idx) {
        h->shard = calloc(1, sizeof *h->shard);
        if (!h->shard) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
        return add_shard(h, "model.safetensors", err);
    }
    const json_t *map = json_object_get(idx, "weight_map");
    if (!json_is_object(map)) {
        json_decref(idx);
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "model.safetensors.index.json: 'weight_map' is not an object");
    }
    size_t n = json_object_size(map);
    h->shard = calloc(n < HF_MAX_SHARDS ? n + 1 : HF_MAX_SHARDS + 1, sizeof *h->shard);
    const char **names = calloc(n + 1, sizeof *names);
    if (!h->shard || !names) {
        free(names);
        json_decref(idx);
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    }
    /* each distinct file once, in first-mention order */
    size_t n_names = 0;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)map, key, v) {
        const char *file = json_string_value(v);
        if (!file) {
            st = MLXR_FAIL(err, MLXR_ERR_FORMAT,
                           "model.safetensors.index.json: shard of '%.200s' is not a string", key);
            break;
        }
        size_t k = 0;
        while (k < n_names && strcmp(names[k], file) != 0) k++;
        if (k < n_names) continue;
        names[n_names++] = file;
        if ((st = add_shard(h, file, err)) != MLXR_OK) break;
    }
    free(names);
    json_decref(idx);
    return st;
}

const mlxr_st_tensor *mlxr_hf_find(const mlxr_hf *h, const char *name) {
    for (int i = 0; i < h->n_shard; i++) {
        const mlxr_st_tensor *t = mlxr_st_find(h->shard[i], name);
        if (t) return t;
    }
    return NULL;
}

/* ---- element conversions --------------------------------------------------------------------- */

static bool is_float(mlxr_st_dtype t) {
    return t == MLXR_ST_F32 || t == MLXR_ST_F16 || t == MLXR_ST_BF16;
}

/* Element i of a float tensor's data (unaligned-safe). */
static float load_float(mlxr_st_dtype t, const uint8_t *p, size_t i) {
    if (t == MLXR_ST_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t u;
    memcpy(&u, p + 2 * i, 2);
    return t == MLXR_ST_BF16 ? mlxr_bf16_to_fp32(u) : mlxr_fp16_to_fp32(u);
}

static mlxr_dtype weight_dtype(mlxr_st_dtype t) {
    return t == MLXR_ST_F32 ? MLXR_DTYPE_F32 : t == MLXR_ST_F16 ? MLXR_DTYPE_F16 : MLXR_DTYPE_BF16;
}

/* ---- one weight ------------------------------------------------------------------------------ */

/* What to bind: the tensor prefix (without ".weight"), the expected [rows][cols] and, for q_proj
 * and k_proj, the head count whose rows get the RoPE permutation (0: none). */
typedef struct want {
    const char *prefix;
    int64_t rows, cols;
    int perm_heads;
} want;

/* Source row of output row r: the rotate-half -> interleaved-pairs permutation (hf.h). */
static int64_t src_row(const want *w, int64_t r) {
    if (!w->perm_heads) return r;
    const int64_t D = w->rows / w->perm_heads, head = r / D, j = r % D;
    return head * D + (j % 2) * (D / 2) + j / 2;
}

static void set_weight(mlxr_weight *out, const char *name, const void *data, mlxr_dtype type,
                       int64_t ne0, int64_t ne1) {
    /* for messages only: a long name keeps its first 47 bytes */
    size_t k = strlen(name) < sizeof out->name ? strlen(name) : sizeof out->name - 1;
    memcpy(out->name, name, k);
    out->name[k] = '\0';
    out->data = data;
    out->type = type;
    out->ne0 = ne0;
    out->ne1 = ne1;
    out->row_bytes = mlxr_dtype_row_size(type, ne0);
}

static mlxr_status shape_error(const char *name, const mlxr_st_tensor *t, int64_t r, int64_t c,
                               const char *what, mlxr_err *err) {
    char got[96] = "[";
    for (int d = 0; d < t->n_dims && strlen(got) < 70; d++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                 (long long)t->shape[d]);
    strcat(got, "]");
    return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tensor '%s' is %s %s, expected %s [%lld, %lld]", name,
                     mlxr_st_dtype_name(t->dtype), got, what, (long long)r, (long long)c);
}

static bool is_2d(const mlxr_st_tensor *t, int64_t r, int64_t c) {
    return t->n_dims == 2 && t->shape[0] == r && t->shape[1] == c;
}

/* A float matrix: in place when aligned and unpermuted, else copied with its rows permuted. */
static mlxr_status bind_float(mlxr_hf *h, const want *w, const char *name, const mlxr_st_tensor *t,
                              mlxr_weight *out, mlxr_err *err) {
    if (!is_float(t->dtype) || !is_2d(t, w->rows, w->cols))
        return shape_error(name, t, w->rows, w->cols, "F32/F16/BF16", err);
    const size_t es = mlxr_st_dtype_size(t->dtype), row = (size_t)w->cols * es;
    const mlxr_dtype type = weight_dtype(t->dtype);
    if (!w->perm_heads && (uintptr_t)t->data % 4 == 0 && row % 4 == 0) {
        set_weight(out, name, t->data, type, w->cols, w->rows);
        return MLXR_OK;
    }
    uint8_t *buf = malloc(t->nbytes ? t->nbytes : 1);
    mlxr_status st = mlxr_hf_own(h, buf, err);
    if (st != MLXR_OK) return st;
    for (int64_t r = 0; r < w->rows; r++)
        memcpy(buf + (size_t)r * row, (const uint8_t *)t->data + (size_t)src_row(w, r) * row, row);
    if (row % 4 != 0 && type != MLXR_DTYPE_F32) {
        /* rows of an odd number of 16-bit elements: the kernels want 4-byte rows; widen */
        float *f = malloc((size_t)w->rows * (size_t)w->cols * sizeof *f);
        if ((st = mlxr_hf_own(h, f, err)) != MLXR_OK) return st;
        for (size_t i = 0; i < (size_t)w->rows * (size_t)w->cols; i++)
            f[i] = load_float(t->dtype, buf, i);
        set_weight(out, name, f, MLXR_DTYPE_F32, w->cols, w->rows);
        return MLXR_OK;
    }
    set_weight(out, name, buf, type, w->cols, w->rows);
    return MLXR_OK;
}

/* The (bits, group size) of layer `prefix` from config.json's quantization object: a per-layer
 * entry (an object, or false for a layer left in float) overrides the top-level pair. */
static mlxr_status quant_params(const mlxr_hf *h, const char *prefix, int *bits, int *gs,
                                mlxr_err *err) {
    const json_t *q = h->quant, *o = q ? json_object_get(q, prefix) : NULL;
    if (json_is_object(o)) q = o;
    if (!q)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "tensor '%s.scales' is present but config.json has no quantization",
                         prefix);
    const char *mode = json_string_value(json_object_get(q, "mode"));
    if (mode && strcmp(mode, "affine") != 0)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "config.json: quantization mode '%.40s' of '%s' is not supported (only "
                         "affine)",
                         mode, prefix);
    const json_t *b = json_object_get(q, "bits"), *g = json_object_get(q, "group_size");
    if (!json_is_integer(b) || !json_is_integer(g))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "config.json: quantization of '%s' lacks integer bits/group_size", prefix);
    json_int_t bi = json_integer_value(b), gi = json_integer_value(g);
    if (bi < 1 || bi > 32 || gi < 1 || gi > DIM_MAX_GROUP)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "config.json: quantization of '%s': bits %lld / group_size %lld out of "
                         "range",
                         prefix, (long long)bi, (long long)gi);
    *bits = (int)bi;
    *gs = (int)gi;
    return MLXR_OK;
}

mlxr_dtype mlxr_hf_mlx_type(const mlxr_hf *h, const char *prefix) {
    char sname[160];
    snprintf(sname, sizeof sname, "%s.scales", prefix);
    const mlxr_st_tensor *ts = mlxr_hf_find(h, sname);
    int bits = 0, gs = 0;
    mlxr_err e = {0};
    if (!ts || (ts->dtype != MLXR_ST_F16 && ts->dtype != MLXR_ST_BF16) ||
        quant_params(h, prefix, &bits, &gs, &e) != MLXR_OK)
        return MLXR_DTYPE_COUNT;
    return mlxr_mlx_dtype(bits, gs,
                          ts->dtype == MLXR_ST_F16 ? MLXR_MLX_SCALE_F16 : MLXR_MLX_SCALE_BF16);
}

/*
 * An MLX triple in its native type (kernels/mlx_affine.h: one block per group, scale, bias and
 * codes together, scales kept in the file's f16 or bf16), rows permuted as q/k need: the same
 * bytes as the three arrays, so the model holds MLX's own bits per weight. The copy is made once
 * at load (the products want each group's scale next to its codes); the file map's pages are not
 * touched again.
 */
static mlxr_status bind_mlx(mlxr_hf *h, const want *w, const char *name, const mlxr_st_tensor *t,
                            const mlxr_st_tensor *ts, mlxr_weight *out, mlxr_err *err) {
    int bits = 0, gs = 0;
    mlxr_status st = quant_params(h, w->prefix, &bits, &gs, err);
    if (st != MLXR_OK) return st;
    char sname[160], bname[160];
    snprintf(sname, sizeof sname, "%s.scales", w->prefix);
    snprintf(bname, sizeof bname, "%s.biases", w->prefix);
    const mlxr_st_tensor *tb = mlxr_hf_find(h, bname);
    if (!tb) return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tensor '%s' is missing", bname);
    mlxr_err e2 = {0};
    if (mlxr_mlx_affine_check(bits, gs, w->cols, MLXR_MLX_SCALE_F16, &e2) != MLXR_OK)
        return MLXR_FAIL(err, e2.code, "tensor '%s': %s", name, e2.msg);
    const int64_t words = w->cols * bits / 32, groups = w->cols / gs;
    if (t->dtype != MLXR_ST_U32 || !is_2d(t, w->rows, words))
        return shape_error(name, t, w->rows, words, "U32", err);
    if ((ts->dtype != MLXR_ST_F16 && ts->dtype != MLXR_ST_BF16) || !is_2d(ts, w->rows, groups))
        return shape_error(sname, ts, w->rows, groups, "F16/BF16", err);
    if (tb->dtype != ts->dtype || !is_2d(tb, w->rows, groups))
        return shape_error(bname, tb, w->rows, groups, mlxr_st_dtype_name(ts->dtype), err);
    const mlxr_mlx_scale_type sct =
        ts->dtype == MLXR_ST_F16 ? MLXR_MLX_SCALE_F16 : MLXR_MLX_SCALE_BF16;
    const mlxr_dtype type = mlxr_mlx_dtype(bits, gs, sct);
    const size_t row_bytes = mlxr_dtype_row_size(type, w->cols);
    uint8_t *q = malloc((size_t)w->rows * row_bytes);
    if ((st = mlxr_hf_own(h, q, err)) != MLXR_OK) return st;
    /* mlxr_mlx_row holds typed pointers: words or halves that the file does not align (its
     * header length decides) go through a temporary aligned copy */
    const void *p[3] = {t->data, ts->data, tb->data};
    const mlxr_st_tensor *src[3] = {t, ts, tb};
    void *tmp[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        if ((uintptr_t)src[i]->data % (i ? 2 : 4) == 0) continue;
        if (!(tmp[i] = malloc(src[i]->nbytes))) {
            for (int k = 0; k < i; k++) free(tmp[k]);
            return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for '%s'", name);
        }
        memcpy(tmp[i], src[i]->data, src[i]->nbytes);
        p[i] = tmp[i];
    }
    const mlxr_mlx_matrix mm = {bits, gs, sct, w->rows, w->cols, p[0], p[1], p[2]};
    for (int64_t r = 0; r < w->rows; r++) {
        const mlxr_mlx_row row = mlxr_mlx_matrix_row(&mm, src_row(w, r));
        mlxr_mlx_row_to_blocks(&row, q + (size_t)r * row_bytes);
    }
    for (int i = 0; i < 3; i++) {
        free(tmp[i]);
        mlxr_file_drop_pages(src[i]->data, src[i]->nbytes);
    }
    set_weight(out, name, q, type, w->cols, w->rows);
    return MLXR_OK;
}

static mlxr_status bind_matrix(mlxr_hf *h, const want *w, mlxr_weight *out, mlxr_err *err) {
    char name[160], sname[160];
    snprintf(name, sizeof name, "%s.weight", w->prefix);
    snprintf(sname, sizeof sname, "%s.scales", w->prefix);
    const mlxr_st_tensor *t = mlxr_hf_find(h, name);
    if (!t) return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tensor '%s' is missing", name);
    const mlxr_st_tensor *ts = mlxr_hf_find(h, sname);
    return ts ? bind_mlx(h, w, name, t, ts, out, err) : bind_float(h, w, name, t, out, err);
}

/* An RMSNorm gain [n] of any float type, converted to F32. */
static mlxr_status bind_norm(mlxr_hf *h, const char *name, int64_t n, mlxr_weight *out,
                             mlxr_err *err) {
    const mlxr_st_tensor *t = mlxr_hf_find(h, name);
    if (!t) return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tensor '%s' is missing", name);
    if (!is_float(t->dtype) || t->n_dims != 1 || t->shape[0] != n)
        return shape_error(name, t, 1, n, "F32/F16/BF16 vector of", err);
    float *f = malloc((size_t)n * sizeof *f);
    mlxr_status st = mlxr_hf_own(h, f, err);
    if (st != MLXR_OK) return st;
    for (int64_t i = 0; i < n; i++) f[i] = load_float(t->dtype, t->data, (size_t)i);
    set_weight(out, name, f, MLXR_DTYPE_F32, n, 1);
    return MLXR_OK;
}

mlxr_status mlxr_hf_bind_weights(mlxr_model *m, mlxr_hf *h, mlxr_err *err) {
    const mlxr_model_info *hp = &m->info;
    const int64_t E = hp->n_embd, V = hp->n_vocab, F = hp->n_ff;
    const int64_t KV = (int64_t)hp->n_head_kv * hp->head_dim;
    mlxr_status st;
    const want emb = {"model.embed_tokens", V, E, 0};
    if ((st = bind_matrix(h, &emb, &m->tok_embd, err)) ||
        (st = bind_norm(h, "model.norm.weight", E, &m->output_norm, err)))
        return st;
    if (h->tie_embeddings) {
        m->output = m->tok_embd;
    } else {
        const want head = {"lm_head", V, E, 0};
        if ((st = bind_matrix(h, &head, &m->output, err))) return st;
    }
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for %d layers", hp->n_layer);
    for (int il = 0; il < hp->n_layer; il++) {
        mlxr_layer *L = &m->layers[il];
        char p[9][96], n1[96], n2[96];
        static const char *const sfx[] = {"self_attn.q_proj", "self_attn.k_proj",
                                          "self_attn.v_proj", "self_attn.o_proj",
                                          "mlp.gate_proj",    "mlp.up_proj",
                                          "mlp.down_proj"};
        for (int k = 0; k < 7; k++) snprintf(p[k], sizeof p[k], "model.layers.%d.%s", il, sfx[k]);
        snprintf(n1, sizeof n1, "model.layers.%d.input_layernorm.weight", il);
        snprintf(n2, sizeof n2, "model.layers.%d.post_attention_layernorm.weight", il);
        const want ws[7] = {
            {p[0], E, E, hp->n_head}, {p[1], KV, E, hp->n_head_kv}, {p[2], KV, E, 0},
            {p[3], E, E, 0},          {p[4], F, E, 0},              {p[5], F, E, 0},
            {p[6], E, F, 0},
        };
        mlxr_weight *dst[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        if ((st = bind_norm(h, n1, E, &L->attn_norm, err)) ||
            (st = bind_norm(h, n2, E, &L->ffn_norm, err)))
            return st;
        for (int k = 0; k < 7; k++)
            if ((st = bind_matrix(h, &ws[k], dst[k], err))) return st;
    }
    m->info.n_params = 0;
    m->info.n_bytes = 0;
    for (int i = 0; i < h->n_shard; i++)
        for (int64_t k = 0; k < mlxr_st_n_tensors(h->shard[i]); k++)
            m->info.n_bytes += mlxr_st_tensor_at(h->shard[i], k)->nbytes;
    int64_t per_layer = 2 * E + E * E * 2 + 2 * KV * E + 3 * E * F;
    m->info.n_params = (int64_t)hp->n_layer * per_layer + E + V * E * (h->tie_embeddings ? 1 : 2);
    return MLXR_OK;
}
