/*
 * hf_write.c - an MLX-format copy of a Hugging Face model directory (mlxr_hf_write_mlx in hf.h):
 * what mlx-lm's `convert -q` writes, so that tests and users get MLX data without downloading.
 *
 * Quantized: the embedding, lm_head and every *_proj.weight whose row length is a multiple of the
 * group size (mlx-lm's default predicate: linear and embedding layers), each as P.weight (U32
 * [rows, cols * bits / 32], 32/bits codes per word, first code in the low bits), P.scales and
 * P.biases ([rows, cols / group_size], the source's dtype), by mlxr_mlx_affine_quantize (the
 * rule of mx.quantize, mode "affine"). Everything else is copied unchanged. Safetensors files are
 * written with their header padded by spaces to a multiple of 8 bytes, tensors in a plan made up
 * front (sizes are known before any data is computed), one quantized layer in memory at a time.
 */
#include "model/hf_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/mlx_affine.h"
#include "util/err.h"
#include "util/fp16.h"

/* One output tensor: a copy of src, or part (0 weight, 1 scales, 2 biases) of src quantized. */
typedef struct out_tensor {
    char name[200];
    const mlxr_st_tensor *src;
    int part;          /* -1: copy */
    const char *dtype; /* safetensors dtype name */
    int64_t shape[2];
    int n_dims;
    size_t nbytes;
    int shard;
} out_tensor;

typedef struct plan {
    out_tensor *t;
    size_t n, cap;
} plan;

static bool suffix(const char *s, const char *x) {
    size_t n = strlen(s), k = strlen(x);
    return n >= k && !strcmp(s + n - k, x);
}

/* mlx-lm's choice of what to quantize (see the file comment). */
static bool quantizable(const mlxr_st_tensor *t, int gs) {
    if (t->n_dims != 2 || (t->dtype != MLXR_ST_F16 && t->dtype != MLXR_ST_BF16)) return false;
    if (t->shape[1] % gs != 0) return false;
    return suffix(t->name, "_proj.weight") || !strcmp(t->name, "model.embed_tokens.weight") ||
           !strcmp(t->name, "lm_head.weight");
}

static mlxr_status plan_add(plan *p, out_tensor t, mlxr_err *err) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        out_tensor *nt = realloc(p->t, cap * sizeof *nt);
        if (!nt) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
        p->t = nt;
        p->cap = cap;
    }
    p->t[p->n++] = t;
    return MLXR_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const mlxr_st_tensor *const *)a)->name,
                  (*(const mlxr_st_tensor *const *)b)->name);
}

static mlxr_status make_plan(const mlxr_hf *in, int bits, int gs, plan *p, mlxr_err *err) {
    size_t n = 0;
    for (int i = 0; i < in->n_shard; i++) n += (size_t)mlxr_st_n_tensors(in->shard[i]);
    const mlxr_st_tensor **all = calloc(n + 1, sizeof *all);
    if (!all) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (int i = 0; i < in->n_shard; i++)
        for (int64_t j = 0; j < mlxr_st_n_tensors(in->shard[i]); j++)
            all[k++] = mlxr_st_tensor_at(in->shard[i], j);
    qsort(all, n, sizeof *all, by_name);
    mlxr_status st = MLXR_OK;
    for (size_t i = 0; i < n && st == MLXR_OK; i++) {
        const mlxr_st_tensor *t = all[i];
        if (suffix(t->name, ".scales")) { /* its triples would be copied under a new config */
            st = MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                           "'%s' is already MLX-quantized (tensor '%s'); convert needs a "
                           "directory of F16/BF16 weights",
                           in->dir, t->name);
            break;
        }
        out_tensor o = {.src = t, .part = -1, .dtype = mlxr_st_dtype_name(t->dtype),
                        .n_dims = t->n_dims, .nbytes = t->nbytes};
        if (!quantizable(t, gs)) {
            if (t->n_dims > 2) {
                st = MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "tensor '%s' has %d dims", t->name,
                               t->n_dims);
                break;
            }
            snprintf(o.name, sizeof o.name, "%s", t->name);
            for (int d = 0; d < t->n_dims; d++) o.shape[d] = t->shape[d];
            st = plan_add(p, o, err);
            continue;
        }
        const size_t stem = strlen(t->name) - strlen(".weight");
        const int64_t rows = t->shape[0], cols = t->shape[1];
        static const char *const part_name[3] = {"weight", "scales", "biases"};
        for (int part = 0; part < 3 && st == MLXR_OK; part++) {
            snprintf(o.name, sizeof o.name, "%.*s.%s", (int)stem, t->name, part_name[part]);
            o.part = part;
            o.n_dims = 2;
            o.shape[0] = rows;
            o.shape[1] = part == 0 ? cols * bits / 32 : cols / gs;
            o.dtype = part == 0 ? "U32" : mlxr_st_dtype_name(t->dtype);
            o.nbytes = (size_t)rows * (size_t)o.shape[1] * (part == 0 ? 4 : 2);
            st = plan_add(p, o, err);
        }
    }
    free(all);
    return st;
}

/* Quantize src (F16/BF16 [rows, cols]) into w, scales, biases. */
static mlxr_status quantize(const mlxr_st_tensor *t, int bits, int gs, uint32_t *w,
                            uint16_t *scales, uint16_t *biases, mlxr_err *err) {
    const int64_t rows = t->shape[0], cols = t->shape[1];
    const bool bf = t->dtype == MLXR_ST_BF16;
    float *row = malloc((size_t)cols * sizeof *row);
    if (!row) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    mlxr_status st = MLXR_OK;
    for (int64_t r = 0; r < rows && st == MLXR_OK; r++) {
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r * (size_t)cols * 2;
        for (int64_t i = 0; i < cols; i++) {
            uint16_t u;
            memcpy(&u, src + 2 * i, 2);
            row[i] = bf ? mlxr_bf16_to_fp32(u) : mlxr_fp16_to_fp32(u);
        }
        st = mlxr_mlx_affine_quantize(row, cols, bits, gs,
                                      bf ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16,
                                      w + r * (cols * bits / 32), scales + r * (cols / gs),
                                      biases + r * (cols / gs), err);
    }
    free(row);
    return st;
}

static mlxr_status write_all(FILE *f, const void *p, size_t n, const char *path, mlxr_err *err) {
    if (n && fwrite(p, 1, n, f) != n)
        return MLXR_FAIL(err, MLXR_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return MLXR_OK;
}

/* Write the tensors of shard `shard` (in plan order) to path. */
static mlxr_status write_shard(const plan *p, int shard, int bits, int gs, const char *path,
                               mlxr_err *err) {
    json_t *hdr = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("mlx"));
    json_object_set_new(hdr, "__metadata__", meta);
    size_t off = 0;
    for (size_t i = 0; i < p->n; i++) {
        const out_tensor *o = &p->t[i];
        if (o->shard != shard) continue;
        json_t *shape = json_array();
        for (int d = 0; d < o->n_dims; d++) json_array_append_new(shape, json_integer(o->shape[d]));
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", o->dtype, "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + o->nbytes));
        json_object_set_new(hdr, o->name, e);
        off += o->nbytes;
    }
    char *text = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(hdr);
    if (!text) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    size_t hl = strlen(text), padded = (hl + 8 + 7) / 8 * 8 - 8;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(text);
        return MLXR_FAIL(err, MLXR_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    mlxr_status st = write_all(f, len8, 8, path, err);
    if (st == MLXR_OK) st = write_all(f, text, hl, path, err);
    for (size_t i = hl; i < padded && st == MLXR_OK; i++) st = write_all(f, " ", 1, path, err);
    free(text);
    /* data: a quantized layer's three parts are consecutive in the plan */
    void *q[3] = {NULL, NULL, NULL};
    for (size_t i = 0; i < p->n && st == MLXR_OK; i++) {
        const out_tensor *o = &p->t[i];
        if (o->shard != shard) continue;
        if (o->part < 0) {
            st = write_all(f, o->src->data, o->nbytes, path, err);
            continue;
        }
        if (o->part == 0) {
            const int64_t rows = o->src->shape[0], cols = o->src->shape[1];
            q[0] = malloc((size_t)rows * (size_t)(cols * bits / 32) * 4 + 1);
            q[1] = malloc((size_t)rows * (size_t)(cols / gs) * 2 + 1);
            q[2] = malloc((size_t)rows * (size_t)(cols / gs) * 2 + 1);
            if (!q[0] || !q[1] || !q[2]) st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
            else st = quantize(o->src, bits, gs, q[0], q[1], q[2], err);
        }
        if (st == MLXR_OK) st = write_all(f, q[o->part], o->nbytes, path, err);
        if (o->part == 2 || st != MLXR_OK) {
            for (int k = 0; k < 3; k++) free(q[k]), q[k] = NULL;
        }
    }
    for (int k = 0; k < 3; k++) free(q[k]);
    if (fclose(f) != 0 && st == MLXR_OK)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return st;
}

static mlxr_status copy_file(const mlxr_hf *in, const char *out_dir, const char *name,
                             mlxr_err *err) {
    char src[4200], dst[4200];
    if (!mlxr_hf_join(in, name, src, sizeof src) ||
        snprintf(dst, sizeof dst, "%s/%s", out_dir, name) >= (int)sizeof dst)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "path too long");
    FILE *a = fopen(src, "rb");
    if (!a) return MLXR_OK; /* optional files */
    FILE *b = fopen(dst, "wb");
    if (!b) {
        fclose(a);
        return MLXR_FAIL(err, MLXR_ERR_IO, "cannot create %s: %s", dst, strerror(errno));
    }
    char buf[65536];
    size_t n;
    mlxr_status st = MLXR_OK;
    while (st == MLXR_OK && (n = fread(buf, 1, sizeof buf, a)) > 0) st = write_all(b, buf, n, dst, err);
    fclose(a);
    if (fclose(b) != 0 && st == MLXR_OK)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot write %s", dst);
    return st;
}

static mlxr_status write_config(const mlxr_hf *in, const char *out_dir, int bits, int gs,
                                mlxr_err *err) {
    json_t *cfg = NULL;
    mlxr_status st = mlxr_hf_read_json(in, "config.json", true, &cfg, err);
    if (st != MLXR_OK) return st;
    json_object_set_new(cfg, "quantization", json_pack("{s:i, s:i}", "group_size", gs, "bits", bits));
    json_object_set_new(cfg, "quantization_config",
                        json_pack("{s:i, s:i}", "group_size", gs, "bits", bits));
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    if (json_dump_file(cfg, path, JSON_INDENT(4)) != 0)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot write %s", path);
    json_decref(cfg);
    return st;
}

/* Assign shards of about shard_bytes (a quantized layer's parts stay together), write them and,
 * with more than one, the index. */
static mlxr_status write_tensors(plan *p, const char *out_dir, int bits, int gs,
                                 size_t shard_bytes, mlxr_err *err) {
    int n_shard = 1;
    size_t used = 0, total = 0;
    for (size_t i = 0; i < p->n; i++) {
        size_t layer = p->t[i].nbytes;
        if (p->t[i].part == 0) layer += p->t[i + 1].nbytes + p->t[i + 2].nbytes;
        if (shard_bytes && p->t[i].part <= 0 && used > 0 && used + layer > shard_bytes) {
            n_shard++;
            used = 0;
        }
        p->t[i].shard = n_shard - 1;
        used += p->t[i].nbytes;
        total += p->t[i].nbytes;
    }
    char path[4200], file[64];
    mlxr_status st = MLXR_OK;
    json_t *map = json_object();
    for (int s = 0; s < n_shard && st == MLXR_OK; s++) {
        if (n_shard == 1) snprintf(file, sizeof file, "model.safetensors");
        else snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, n_shard);
        snprintf(path, sizeof path, "%s/%s", out_dir, file);
        st = write_shard(p, s, bits, gs, path, err);
        for (size_t i = 0; i < p->n; i++)
            if (p->t[i].shard == s) json_object_set_new(map, p->t[i].name, json_string(file));
    }
    if (st == MLXR_OK && n_shard > 1) {
        json_t *idx = json_pack("{s:{s:I}, s:O}", "metadata", "total_size", (json_int_t)total,
                                "weight_map", map);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", out_dir);
        if (!idx || json_dump_file(idx, path, JSON_INDENT(4) | JSON_SORT_KEYS) != 0)
            st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot write %s", path);
        json_decref(idx);
    }
    json_decref(map);
    return st;
}

mlxr_status mlxr_hf_write_mlx(const char *in_dir, const char *out_dir, int bits, int group_size,
                              size_t shard_bytes, mlxr_err *err) {
    if (!in_dir || !out_dir) return MLXR_FAIL(err, MLXR_ERR_INVALID, "NULL directory");
    mlxr_status st = mlxr_mlx_affine_check(bits, group_size, group_size, MLXR_MLX_SCALE_F16, err);
    if (st != MLXR_OK) return st;
    mlxr_hf *in = calloc(1, sizeof *in);
    if (!in) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    plan p = {0};
    if (snprintf(in->dir, sizeof in->dir, "%s", in_dir) >= (int)sizeof in->dir) {
        st = MLXR_FAIL(err, MLXR_ERR_INVALID, "path too long");
        goto done;
    }
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot create %s: %s", out_dir, strerror(errno));
        goto done;
    }
    /* writing over the mapped input would corrupt it mid-read */
    struct stat a, b;
    if (stat(in_dir, &a) == 0 && stat(out_dir, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
        st = MLXR_FAIL(err, MLXR_ERR_INVALID, "the output directory is the input directory");
        goto done;
    }
    if ((st = mlxr_hf_open_shards(in, err)) != MLXR_OK) goto done;
    if ((st = make_plan(in, bits, group_size, &p, err)) != MLXR_OK) goto done;
    if ((st = write_tensors(&p, out_dir, bits, group_size, shard_bytes, err)) != MLXR_OK) goto done;
    if ((st = write_config(in, out_dir, bits, group_size, err)) != MLXR_OK) goto done;
    static const char *const extra[] = {"tokenizer.model", "tokenizer.json",
                                        "tokenizer_config.json", "generation_config.json",
                                        "special_tokens_map.json"};
    for (size_t i = 0; i < sizeof extra / sizeof *extra && st == MLXR_OK; i++)
        st = copy_file(in, out_dir, extra[i], err);
done:
    free(p.t);
    mlxr_hf_free(in);
    return st;
}
