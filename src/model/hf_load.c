/*
 * hf_load.c - loading a Hugging Face / MLX model directory (layout in hf.h): the path, config.json
 * (every hyperparameter checked before a tensor is touched), tokenizer_config.json, and the order
 * of the steps. Tensors are bound in hf_weights.c, the tokenizer built in hf_spm.c (tokenizer.model)
 * or hf_tokjson.c (tokenizer.json, when there is no tokenizer.model).
 */
#include "model/hf_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/err.h"

/* Upper bound on any one dimension (as model.c: guards sizes computed from them). */
#define DIM_MAX (1 << 24)

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

bool mlxr_hf_is_path(const char *path) {
    struct stat sb;
    if (!path) return false;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return true;
    return ends_with(path, ".safetensors");
}

bool mlxr_hf_join(const mlxr_hf *h, const char *name, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s/%s", h->dir, name);
    return n > 0 && (size_t)n < cap;
}

mlxr_status mlxr_hf_own(mlxr_hf *h, void *p, mlxr_err *err) {
    if (!p) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for a converted weight");
    if (h->n_owned == h->cap_owned) {
        size_t cap = h->cap_owned ? h->cap_owned * 2 : 64;
        void **o = realloc(h->owned, cap * sizeof *o);
        if (!o) {
            free(p);
            return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for a converted weight");
        }
        h->owned = o;
        h->cap_owned = cap;
    }
    h->owned[h->n_owned++] = p;
    return MLXR_OK;
}

mlxr_status mlxr_hf_read_json(const mlxr_hf *h, const char *name, bool required, json_t **out,
                              mlxr_err *err) {
    /* tokenizer_config.json holds integers beyond 64 bits (model_max_length = 1e30) and is only
     * read for strings and booleans: its numbers are decoded as reals */
    const size_t flags = JSON_REJECT_DUPLICATES |
                         (strcmp(name, "tokenizer_config.json") ? 0 : JSON_DECODE_INT_AS_REAL);
    *out = NULL;
    char path[4200];
    if (!mlxr_hf_join(h, name, path, sizeof path))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "model path too long");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (!required && errno == ENOENT) return MLXR_OK;
        return MLXR_FAIL(err, MLXR_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    json_error_t je;
    *out = json_load_file(path, flags, &je);
    if (!*out)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "%s: %s (line %d col %d)", path, je.text, je.line,
                         je.column);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "%s is not a JSON object", path);
    }
    return MLXR_OK;
}

/* ---- config.json --------------------------------------------------------------------------- */

static mlxr_status cfg_dim(const json_t *cfg, const char *key, bool required, int32_t def,
                           int32_t *out, mlxr_err *err) {
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        if (required) return MLXR_FAIL(err, MLXR_ERR_FORMAT, "config.json: '%s' is missing", key);
        *out = def;
        return MLXR_OK;
    }
    if (!json_is_integer(v))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "config.json: '%s' is not an integer", key);
    json_int_t i = json_integer_value(v);
    if (i <= 0 || i > DIM_MAX)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "config.json: '%s' = %lld is out of range 1..%d",
                         key, (long long)i, DIM_MAX);
    *out = (int32_t)i;
    return MLXR_OK;
}

static mlxr_status cfg_float(const json_t *cfg, const char *key, float def, float *out,
                             mlxr_err *err) {
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return MLXR_OK;
    }
    if (!json_is_number(v))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "config.json: '%s' is not a number", key);
    *out = (float)json_number_value(v);
    return MLXR_OK;
}

/* A token id: an integer, the first of an array (Llama 3 lists several EOS ids), or -1. */
static int32_t cfg_token(const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    if (json_is_array(v)) v = json_array_get(v, 0);
    if (!json_is_integer(v)) return -1;
    json_int_t i = json_integer_value(v);
    return i >= 0 && i <= INT32_MAX ? (int32_t)i : -1;
}

static bool cfg_true(const json_t *cfg, const char *key) {
    return json_is_true(json_object_get(cfg, key));
}

/* The architecture: transformers' model_type, or the class named in "architectures". */
static mlxr_status check_arch(const json_t *cfg, mlxr_err *err) {
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    const char *cls = json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0));
    if (mt && (!strcmp(mt, "llama") || !strcmp(mt, "mistral"))) return MLXR_OK;
    if (!mt && cls && (!strcmp(cls, "LlamaForCausalLM") || !strcmp(cls, "MistralForCausalLM")))
        return MLXR_OK;
    if ((mt && !strcmp(mt, "qwen2")) || (cls && !strcmp(cls, "Qwen2ForCausalLM")))
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "config.json: Qwen2 models are not supported (their q/k/v projections "
                         "have biases, which the Llama forward pass does not apply)");
    return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                     "config.json: model_type '%s' / architecture '%s' is not supported (only "
                     "llama and mistral)",
                     mt ? mt : "(none)", cls ? cls : "(none)");
}

/* RoPE base and scaling: transformers 5 nests them in "rope_parameters", older files keep a
 * top-level rope_theta and "rope_scaling". Only plain RoPE is implemented. */
static mlxr_status read_rope(const json_t *cfg, mlxr_model_info *h, mlxr_err *err) {
    const json_t *rp = json_object_get(cfg, "rope_parameters");
    const json_t *src = json_is_object(rp) ? rp : cfg;
    mlxr_status st = cfg_float(src, "rope_theta", 10000.0f, &h->rope_freq_base, err);
    if (st != MLXR_OK) return st;
    if (src != cfg && !json_object_get(rp, "rope_theta") &&
        (st = cfg_float(cfg, "rope_theta", 10000.0f, &h->rope_freq_base, err)) != MLXR_OK)
        return st;
    const json_t *sc = json_is_object(rp) ? rp : json_object_get(cfg, "rope_scaling");
    if (sc && !json_is_null(sc)) {
        if (!json_is_object(sc))
            return MLXR_FAIL(err, MLXR_ERR_FORMAT, "config.json: rope_scaling is not an object");
        const char *type = json_string_value(json_object_get(sc, "rope_type"));
        if (!type) type = json_string_value(json_object_get(sc, "type"));
        if (type && strcmp(type, "default") != 0)
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                             "config.json: RoPE scaling '%s' is not supported (only plain RoPE)",
                             type);
    }
    if (!(h->rope_freq_base > 0.0f))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "config.json: rope_theta %g is out of range",
                         (double)h->rope_freq_base);
    return MLXR_OK;
}

static mlxr_status read_config(mlxr_model *m, mlxr_hf *hf, const json_t *cfg, mlxr_err *err) {
    mlxr_model_info *h = &m->info;
    mlxr_status st = check_arch(cfg, err);
    if (st != MLXR_OK) return st;
    if ((st = cfg_dim(cfg, "hidden_size", true, 0, &h->n_embd, err)) ||
        (st = cfg_dim(cfg, "num_hidden_layers", true, 0, &h->n_layer, err)) ||
        (st = cfg_dim(cfg, "num_attention_heads", true, 0, &h->n_head, err)) ||
        (st = cfg_dim(cfg, "intermediate_size", true, 0, &h->n_ff, err)) ||
        (st = cfg_dim(cfg, "vocab_size", true, 0, &h->n_vocab, err)) ||
        (st = cfg_dim(cfg, "num_key_value_heads", false, h->n_head, &h->n_head_kv, err)) ||
        (st = cfg_dim(cfg, "max_position_embeddings", false, 2048, &h->n_ctx_train, err)))
        return st;
    if (h->n_embd % h->n_head != 0)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "config.json: hidden_size %d is not a multiple of num_attention_heads %d",
                         h->n_embd, h->n_head);
    if (h->n_head % h->n_head_kv != 0)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "config.json: num_attention_heads %d is not a multiple of "
                         "num_key_value_heads %d",
                         h->n_head, h->n_head_kv);
    if ((st = cfg_dim(cfg, "head_dim", false, h->n_embd / h->n_head, &h->head_dim, err)))
        return st;
    if (h->head_dim != h->n_embd / h->n_head)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "config.json: head_dim %d differs from hidden_size / heads = %d",
                         h->head_dim, h->n_embd / h->n_head);
    if (h->head_dim % 2 != 0)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "config.json: head_dim %d is odd", h->head_dim);
    h->n_rot = h->head_dim;
    if ((st = cfg_float(cfg, "rms_norm_eps", 1e-6f, &h->rms_eps, err))) return st;
    if (!(h->rms_eps >= 0.0f) || !(h->rms_eps < 1.0f))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "config.json: rms_norm_eps %g is out of range",
                         (double)h->rms_eps);
    if ((st = read_rope(cfg, h, err))) return st;
    if (cfg_true(cfg, "attention_bias") || cfg_true(cfg, "mlp_bias"))
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "config.json: attention or MLP biases are not supported");
    const char *act = json_string_value(json_object_get(cfg, "hidden_act"));
    if (act && strcmp(act, "silu") != 0)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "config.json: hidden_act '%s' is not supported (only silu)", act);
    /* Mistral 7B v0.1 attends over a sliding window; full attention equals it up to the window,
     * so the default context stops there */
    const json_t *sw = json_object_get(cfg, "sliding_window");
    if (json_is_integer(sw) && json_integer_value(sw) > 0 &&
        json_integer_value(sw) < h->n_ctx_train)
        h->n_ctx_train = (int32_t)json_integer_value(sw);
    hf->tie_embeddings = cfg_true(cfg, "tie_word_embeddings");
    hf->cfg_bos = cfg_token(cfg, "bos_token_id");
    hf->cfg_eos = cfg_token(cfg, "eos_token_id");
    hf->cfg_eot = -1;
    const json_t *eos = json_object_get(cfg, "eos_token_id");
    for (size_t i = 1; i < json_array_size(eos) && hf->cfg_eot < 0; i++) {
        json_int_t id = json_integer_value(json_array_get(eos, i));
        if (json_is_integer(json_array_get(eos, i)) && id >= 0 && id <= INT32_MAX && id != hf->cfg_eos)
            hf->cfg_eot = (int32_t)id;
    }
    json_t *q = json_object_get(cfg, "quantization");
    if (!q) q = json_object_get(cfg, "quantization_config");
    if (q && !json_is_null(q)) {
        if (!json_is_object(q))
            return MLXR_FAIL(err, MLXR_ERR_FORMAT, "config.json: quantization is not an object");
        hf->quant = json_incref(q);
    }
    snprintf(m->arch, sizeof m->arch, "llama");
    h->arch = m->arch;
    h->name = m->name;
    return MLXR_OK;
}

/* chat_template.jinja (where transformers >= 4.43 saves the template), when present. */
static mlxr_status read_template_file(mlxr_hf *hf, mlxr_err *err) {
    char path[4200];
    if (!mlxr_hf_join(hf, "chat_template.jinja", path, sizeof path)) return MLXR_OK;
    FILE *f = fopen(path, "rb");
    if (!f) return MLXR_OK;
    enum { MAX = 1 << 20 };
    char *buf = malloc(MAX + 1);
    size_t n = buf ? fread(buf, 1, MAX + 1, f) : 0;
    fclose(f);
    if (!buf) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    if (n > MAX) {
        free(buf);
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "%s is larger than %d bytes", path, MAX);
    }
    buf[n] = '\0';
    hf->chat_template = buf;
    return MLXR_OK;
}

/* tokenizer_config.json: only the chat template here (flags, added tokens: hf_spm.c). */
static mlxr_status read_template(mlxr_hf *hf, mlxr_err *err) {
    json_t *tc = NULL;
    mlxr_status st = mlxr_hf_read_json(hf, "tokenizer_config.json", false, &tc, err);
    if (st != MLXR_OK) return st;
    if (!tc) return read_template_file(hf, err);
    const json_t *t = json_object_get(tc, "chat_template");
    /* a list of named templates: take "default" */
    if (json_is_array(t)) {
        size_t i;
        const json_t *e, *pick = NULL;
        json_array_foreach(t, i, e) {
            const char *name = json_string_value(json_object_get(e, "name"));
            if (name && !strcmp(name, "default")) pick = json_object_get(e, "template");
        }
        t = pick;
    }
    if (json_is_string(t)) {
        hf->chat_template = strdup(json_string_value(t));
        if (!hf->chat_template) st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    }
    json_decref(tc);
    return st == MLXR_OK && !hf->chat_template ? read_template_file(hf, err) : st;
}

/* generation_config.json: BOS/EOS where config.json has none, and a second end-of-generation id
 * (chat models list e.g. [</s>, <|end|>]). */
static mlxr_status read_generation(mlxr_hf *hf, mlxr_err *err) {
    json_t *gc = NULL;
    mlxr_status st = mlxr_hf_read_json(hf, "generation_config.json", false, &gc, err);
    if (st != MLXR_OK || !gc) return st;
    if (hf->cfg_bos < 0) hf->cfg_bos = cfg_token(gc, "bos_token_id");
    if (hf->cfg_eos < 0) hf->cfg_eos = cfg_token(gc, "eos_token_id");
    const json_t *e = json_object_get(gc, "eos_token_id");
    size_t i;
    const json_t *v;
    json_array_foreach(e, i, v) {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id >= 0 && id <= INT32_MAX && id != hf->cfg_eos && hf->cfg_eot < 0)
            hf->cfg_eot = (int32_t)id;
    }
    json_decref(gc);
    return MLXR_OK;
}

static mlxr_status set_dir(mlxr_hf *hf, const char *path, mlxr_err *err) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return MLXR_FAIL(err, MLXR_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t n = strlen(path);
    if (n >= sizeof hf->dir) return MLXR_FAIL(err, MLXR_ERR_INVALID, "model path too long");
    memcpy(hf->dir, path, n + 1);
    if (!S_ISDIR(sb.st_mode)) {
        char *slash = strrchr(hf->dir, '/');
        if (slash == hf->dir) slash[1] = '\0';
        else if (slash) *slash = '\0';
        else snprintf(hf->dir, sizeof hf->dir, ".");
    }
    for (size_t k = strlen(hf->dir); k > 1 && hf->dir[k - 1] == '/'; k--) hf->dir[k - 1] = '\0';
    return MLXR_OK;
}

/* The model's name: the directory's last component. */
static void set_name(mlxr_model *m, const mlxr_hf *hf) {
    const char *s = strrchr(hf->dir, '/');
    snprintf(m->name, sizeof m->name, "%.120s", s ? s + 1 : hf->dir);
}

mlxr_status mlxr_hf_load(mlxr_model *m, const char *path, mlxr_err *err) {
    mlxr_hf *hf = calloc(1, sizeof *hf);
    if (!hf) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for model");
    m->hf = hf;
    json_t *cfg = NULL;
    mlxr_status st = set_dir(hf, path, err);
    if (st == MLXR_OK) st = mlxr_hf_read_json(hf, "config.json", true, &cfg, err);
    if (st == MLXR_OK) st = read_config(m, hf, cfg, err);
    json_decref(cfg);
    if (st != MLXR_OK) return st;
    set_name(m, hf);
    if ((st = read_template(hf, err)) != MLXR_OK) return st;
    if ((st = read_generation(hf, err)) != MLXR_OK) return st;
    if ((st = mlxr_hf_load_tokenizer(m, hf, m->info.n_vocab, err)) != MLXR_OK) return st;
    m->info.bos_id = mlxr_vocab_bos(m->vocab);
    m->info.eos_id = mlxr_vocab_eos(m->vocab);
    if (m->vocab_only) return MLXR_OK;
    /* a .safetensors path names the one file to read; a directory its standard names */
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        hf->shard = calloc(1, sizeof *hf->shard);
        if (!hf->shard) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
        if ((st = mlxr_st_open(path, &hf->shard[0], err)) != MLXR_OK) return st;
        hf->n_shard = 1;
    } else if ((st = mlxr_hf_open_shards(hf, err)) != MLXR_OK) {
        return st;
    }
    return mlxr_hf_bind_weights(m, hf, err);
}

void mlxr_hf_free(mlxr_hf *hf) {
    if (!hf) return;
    for (int i = 0; i < hf->n_shard; i++) mlxr_st_close(hf->shard[i]);
    free(hf->shard);
    for (size_t i = 0; i < hf->n_owned; i++) free(hf->owned[i]);
    free(hf->owned);
    json_decref(hf->quant);
    free(hf->chat_template);
    free(hf);
}

mlxr_status mlxr_hf_chat_template(const mlxr_hf *hf, char **out, mlxr_err *err) {
    *out = NULL;
    if (!hf || !hf->chat_template)
        return MLXR_FAIL(err, MLXR_ERR_NOT_FOUND, "the model has no chat_template");
    *out = strdup(hf->chat_template);
    return *out ? MLXR_OK : MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
}
