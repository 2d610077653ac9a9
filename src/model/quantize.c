/*
 * quantize.c - mlxr_model_quantize: read a GGUF, convert its weights to a preset's types (chosen by
 * quant_rules.c), and write a new GGUF atomically.
 *
 * Flow: open and map the source; plan every tensor (keep it, or convert it to a type; a quantized
 * source that would change type is refused, as llama-quantize does without --allow-requantize);
 * copy all metadata in order, with general.file_type and general.quantization_version set; hand
 * the tensors to the GGUF writer in file order, kept ones as views into the source map and
 * converted ones through a fill callback that decodes source rows to float and encodes them with
 * the weight quantizers (kernels/quantize.h), rows split over a thread pool. The writer streams
 * a few MiB at a time, so memory stays small whatever the model size.
 *
 * Atomicity: the file is written as OUT.tmp, fsync'ed, renamed over OUT and the directory synced;
 * on any failure OUT.tmp is removed and OUT is untouched.
 */
#include "model/quantize.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/dtype.h"
#include "format/gguf.h"
#include "format/gguf_write.h"
#include "kernels/kernels.h"
#include "kernels/quantize.h"
#include "util/err.h"
#include "util/threadpool.h"

#define QUANT_VERSION 2 /* GGML_QNT_VERSION: the block layouts of the current K-quants */

/* One tensor of the output: a view of the source, converted or not. */
typedef struct qtensor {
    const mlxr_gguf_tensor *src;
    char name[256];
    mlxr_dtype type;  /* output type */
    bool convert;     /* false: copy the source bytes */
    int64_t index;    /* position in the file, for progress */
    struct qjob *job; /* shared conversion state (back pointer for the fill callback) */
} qtensor;

/* Conversion state shared by all fill calls. */
typedef struct qjob {
    mlxr_tp *tp;
    float *scratch; /* [n_threads][max_ne0] */
    int64_t max_ne0;
    int64_t n_tensors;
    const mlxr_quantize_opts *opts;
    /* the current chunk, read by the worker threads */
    const qtensor *cur;
    void *dst;
    int64_t row0, n_rows;
} qjob;

mlxr_quantize_opts mlxr_quantize_default_opts(void) {
    mlxr_quantize_opts o = {NULL, MLXR_FTYPE_Q8_0, 0, NULL, NULL};
    return o;
}

/* ---- conversion --------------------------------------------------------------------------------
 */

static void decode_row(mlxr_dtype t, const void *src, float *dst, int64_t n) {
    if (t == MLXR_DTYPE_F16)
        mlxr_to_float_f16_ref(src, dst, n);
    else if (t == MLXR_DTYPE_BF16)
        mlxr_to_float_bf16_ref(src, dst, n);
    else
        mlxr_to_float_f32_ref(src, dst, n);
}

/* Worker: rows ith, ith + nth, ... of the current chunk. */
static void convert_rows(void *arg, int ith, int nth) {
    qjob *j = arg;
    const qtensor *t = j->cur;
    const int64_t ne0 = t->src->ne[0];
    const size_t in_row = mlxr_dtype_row_size(t->src->type, ne0);
    const size_t out_row = mlxr_dtype_row_size(t->type, ne0);
    const mlxr_from_float_fn enc = mlxr_quantize_fn(t->type);
    float *buf = j->scratch + (size_t)ith * (size_t)j->max_ne0;
    for (int64_t r = ith; r < j->n_rows; r += nth) {
        const uint8_t *in = (const uint8_t *)t->src->data + (size_t)(j->row0 + r) * in_row;
        decode_row(t->src->type, in, buf, ne0);
        enc(buf, (uint8_t *)j->dst + (size_t)r * out_row, ne0);
    }
}

static mlxr_status fill_tensor(void *user, void *dst, int64_t row0, int64_t n_rows, mlxr_err *err) {
    qtensor *t = user;
    qjob *j = t->job;
    if (row0 == 0 && j->opts->progress)
        j->opts->progress(t->index, j->n_tensors, t->name, t->src->type, t->type,
                          j->opts->progress_user);
    j->cur = t;
    j->dst = dst;
    j->row0 = row0;
    j->n_rows = n_rows;
    mlxr_tp_run(j->tp, convert_rows, j);
    return MLXR_OK;
}

/* ---- planning ----------------------------------------------------------------------------------
 */

static int32_t get_i32_or(const mlxr_gguf *g, const char *key, int32_t def) {
    int32_t v;
    return mlxr_gguf_get_i32(g, key, &v, NULL) == MLXR_OK ? v : def;
}

/* The hyperparameters the rules need: layers, GQA ratio, whether the classifier is separate. */
static void init_rules(const mlxr_gguf *g, int32_t ftype, mlxr_qrules *r) {
    memset(r, 0, sizeof *r);
    r->ftype = ftype;
    r->base = mlxr_qpreset_base_type(ftype);
    char arch[64] = "llama", key[128];
    mlxr_gguf_str s;
    if (mlxr_gguf_get_str(g, "general.architecture", &s, NULL) == MLXR_OK && s.len < sizeof arch)
        snprintf(arch, sizeof arch, "%.*s", (int)s.len, s.data);
    int32_t n_ffn_down = 0;
    for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
        const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        if (strstr(name, "attn_v.weight") || strstr(name, "attn_qkv.weight")) r->n_attention_wv++;
        if (strstr(name, "ffn_down")) n_ffn_down++;
        if (!strcmp(name, "output.weight")) r->has_output = true;
    }
    snprintf(key, sizeof key, "%s.block_count", arch);
    r->n_layer = get_i32_or(g, key, n_ffn_down);
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    const int32_t n_head = get_i32_or(g, key, 1);
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    const int32_t n_head_kv = get_i32_or(g, key, n_head);
    r->n_gqa = n_head_kv > 0 && n_head % n_head_kv == 0 ? n_head / n_head_kv : 1;
    r->is_70b = !strcmp(arch, "llama") && r->n_layer == 80;
}

static bool is_float_type(mlxr_dtype t) {
    return t == MLXR_DTYPE_F32 || t == MLXR_DTYPE_F16 || t == MLXR_DTYPE_BF16;
}

/* The layer of "blk.N.*" names, -1 for others. */
static long layer_of(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    char *end;
    const long l = strtol(name + 4, &end, 10);
    return end != name + 4 && *end == '.' ? l : -1;
}

/* llama.cpp's tensor order (llama_model_loader's weight_name_comparer): by layer (tensors outside
 * the blocks first), then by name. llama-quantize writes in this order, and its attn_v/ffn_down
 * counters follow it. */
static int cmp_tensor(const void *a, const void *b) {
    const qtensor *x = a, *y = b;
    const long lx = layer_of(x->name), ly = layer_of(y->name);
    if (lx != ly) return lx < ly ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Order the tensors as llama.cpp does and decide every tensor's output type. */
static mlxr_status plan_tensors(const mlxr_gguf *g, mlxr_qrules *r, qtensor *ts, qjob *job,
                                mlxr_err *err) {
    const int64_t n = mlxr_gguf_n_tensors(g);
    for (int64_t i = 0; i < n; i++) {
        ts[i].src = mlxr_gguf_tensor_at(g, i);
        snprintf(ts[i].name, sizeof ts[i].name, "%.*s", (int)ts[i].src->name.len,
                 ts[i].src->name.data);
    }
    qsort(ts, (size_t)n, sizeof *ts, cmp_tensor);
    for (int64_t i = 0; i < n; i++) {
        qtensor *t = &ts[i];
        t->index = i;
        t->job = job;
        t->type = t->src->type;
        if (!mlxr_qrules_converts(t->name, t->src->n_dims)) continue;
        bool fallback;
        const mlxr_dtype want = mlxr_qrules_pick(r, t->name, t->src->ne[0], &fallback);
        if (want == MLXR_DTYPE_COUNT)
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                             "tensor '%s': rows of %" PRId64 " elements do not fit %s blocks of %d "
                             "and that type has no fallback",
                             t->name, t->src->ne[0], mlxr_qpreset_name(r->ftype),
                             mlxr_dtype_get(r->base)->blck_size);
        if (want == t->src->type) continue; /* already the wanted type: copy */
        if (!is_float_type(t->src->type))
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                             "tensor '%s' is already quantized (%s); requantizing to %s loses "
                             "quality and is not supported: quantize from an F32, F16 or BF16 file",
                             t->name, mlxr_dtype_name(t->src->type), mlxr_dtype_name(want));
        if (!mlxr_quantize_fn(want))
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "tensor '%s': no encoder for type %s",
                             t->name, mlxr_dtype_name(want));
        t->type = want;
        t->convert = true;
        if (t->src->ne[0] > job->max_ne0) job->max_ne0 = t->src->ne[0];
    }
    return MLXR_OK;
}

/* ---- metadata ----------------------------------------------------------------------------------
 */

/* An array of strings: NUL-terminated copies for the writer (GGUF strings may hold any byte; a
 * NUL inside one cannot be passed on and is refused). */
static mlxr_status copy_str_array(mlxr_gguf_writer *w, const char *key, const mlxr_gguf_value *v,
                                  mlxr_err *err) {
    const uint64_t n = v->v.arr.n;
    char **s = calloc(n ? n : 1, sizeof *s);
    mlxr_status st =
        s ? MLXR_OK : MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory copying '%s'", key);
    for (uint64_t i = 0; i < n && st == MLXR_OK; i++) {
        const mlxr_gguf_str e = mlxr_gguf_arr_str(v, i);
        if (memchr(e.data, 0, e.len))
            st = MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                           "metadata '%s': element %" PRIu64 " contains a NUL byte", key, i);
        else if (!(s[i] = malloc(e.len + 1)))
            st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory copying '%s'", key);
        else {
            memcpy(s[i], e.data, e.len);
            s[i][e.len] = '\0';
        }
    }
    if (st == MLXR_OK) st = mlxr_gguf_writer_add_arr_str(w, key, (const char *const *)s, n, err);
    for (uint64_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
    return st;
}

static mlxr_status copy_kv(mlxr_gguf_writer *w, const char *key, const mlxr_gguf_value *v,
                           mlxr_err *err) {
    switch (v->type) {
    case MLXR_GGUF_UINT8:
        return mlxr_gguf_writer_add_u8(w, key, (uint8_t)v->v.u64, err);
    case MLXR_GGUF_INT8:
        return mlxr_gguf_writer_add_i8(w, key, (int8_t)v->v.i64, err);
    case MLXR_GGUF_UINT16:
        return mlxr_gguf_writer_add_u16(w, key, (uint16_t)v->v.u64, err);
    case MLXR_GGUF_INT16:
        return mlxr_gguf_writer_add_i16(w, key, (int16_t)v->v.i64, err);
    case MLXR_GGUF_UINT32:
        return mlxr_gguf_writer_add_u32(w, key, (uint32_t)v->v.u64, err);
    case MLXR_GGUF_INT32:
        return mlxr_gguf_writer_add_i32(w, key, (int32_t)v->v.i64, err);
    case MLXR_GGUF_UINT64:
        return mlxr_gguf_writer_add_u64(w, key, v->v.u64, err);
    case MLXR_GGUF_INT64:
        return mlxr_gguf_writer_add_i64(w, key, v->v.i64, err);
    case MLXR_GGUF_FLOAT32:
        return mlxr_gguf_writer_add_f32(w, key, (float)v->v.f64, err);
    case MLXR_GGUF_FLOAT64:
        return mlxr_gguf_writer_add_f64(w, key, v->v.f64, err);
    case MLXR_GGUF_BOOL:
        return mlxr_gguf_writer_add_bool(w, key, v->v.b, err);
    case MLXR_GGUF_STRING:
        return mlxr_gguf_writer_add_str_n(w, key, v->v.str.data, (size_t)v->v.str.len, err);
    case MLXR_GGUF_ARRAY:
        if (v->v.arr.type == MLXR_GGUF_STRING) return copy_str_array(w, key, v, err);
        if (mlxr_gguf_scalar_size(v->v.arr.type) == 0)
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                             "metadata '%s': nested arrays cannot be copied", key);
        if (v->v.arr.type == MLXR_GGUF_BOOL) { /* the writer reads C bools: normalise the bytes */
            bool *b = malloc(v->v.arr.n ? (size_t)v->v.arr.n : 1);
            if (!b) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory copying '%s'", key);
            for (uint64_t i = 0; i < v->v.arr.n; i++)
                b[i] = v->v.arr.data[i] != 0;
            mlxr_status st = mlxr_gguf_writer_add_arr(w, key, MLXR_GGUF_BOOL, b, v->v.arr.n, err);
            free(b);
            return st;
        }
        /* fixed-size little-endian elements, as the host stores them; copied to aligned memory */
        {
            const size_t nb = (size_t)v->v.arr.nbytes;
            void *p = malloc(nb ? nb : 1);
            if (!p) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory copying '%s'", key);
            memcpy(p, v->v.arr.data, nb);
            mlxr_status st = mlxr_gguf_writer_add_arr(w, key, v->v.arr.type, p, v->v.arr.n, err);
            free(p);
            return st;
        }
    default:
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "metadata '%s': unknown value type %d", key,
                         (int)v->type);
    }
}

/* All metadata in file order, then general.quantization_version and general.file_type at the end
 * (llama.cpp's gguf_set_* moves a key it replaces to the end, so llama-quantize's files end so). */
static mlxr_status copy_metadata(const mlxr_gguf *g, mlxr_gguf_writer *w, int32_t ftype,
                                 mlxr_err *err) {
    mlxr_status st = MLXR_OK;
    for (int64_t i = 0; i < mlxr_gguf_n_kv(g) && st == MLXR_OK; i++) {
        const mlxr_gguf_kv *kv = mlxr_gguf_kv_at(g, i);
        char key[65536];
        if (kv->key.len >= sizeof key)
            return MLXR_FAIL(err, MLXR_ERR_FORMAT, "metadata key %" PRId64 " too long", i);
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.data);
        if (strcmp(key, "general.file_type") != 0 &&
            strcmp(key, "general.quantization_version") != 0)
            st = copy_kv(w, key, &kv->value, err);
    }
    if (st == MLXR_OK)
        st = mlxr_gguf_writer_add_u32(w, "general.quantization_version", QUANT_VERSION, err);
    if (st == MLXR_OK) st = mlxr_gguf_writer_add_u32(w, "general.file_type", (uint32_t)ftype, err);
    return st;
}

/* ---- writing -----------------------------------------------------------------------------------
 */

/* fsync a file or directory by path. */
static mlxr_status sync_path(const char *path, bool dir, mlxr_err *err) {
    const int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0)
        return MLXR_FAIL(err, MLXR_ERR_IO, "cannot open '%s' to sync it: %s", path,
                         strerror(errno));
    const int rc = fsync(fd);
    const int e = errno;
    close(fd);
    if (rc != 0 && !(dir && (e == EINVAL || e == EBADF))) /* some filesystems cannot sync dirs */
        return MLXR_FAIL(err, MLXR_ERR_IO, "fsync of '%s' failed: %s", path, strerror(e));
    return MLXR_OK;
}

/* Write to tmp, sync, rename to out, sync the directory. */
static mlxr_status write_atomic(const mlxr_gguf_writer *w, const char *out, mlxr_err *err) {
    const size_t n = strlen(out);
    char *tmp = malloc(n + 5), *dir = malloc(n + 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, n + 5, "%s.tmp", out);
    mlxr_status st = mlxr_gguf_writer_write_file(w, tmp, err); /* removes tmp on failure */
    if (st == MLXR_OK) st = sync_path(tmp, false, err);
    if (st == MLXR_OK && rename(tmp, out) != 0)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, out,
                       strerror(errno));
    if (st != MLXR_OK) {
        remove(tmp);
    } else {
        const char *slash = strrchr(out, '/');
        if (slash)
            snprintf(dir, n + 2, "%.*s", (int)(slash - out) + (slash == out), out);
        else
            snprintf(dir, n + 2, ".");
        st = sync_path(dir, true, err);
    }
    free(tmp);
    free(dir);
    return st;
}

static mlxr_status add_tensors(mlxr_gguf_writer *w, qtensor *ts, int64_t n, mlxr_err *err) {
    for (int64_t i = 0; i < n; i++) {
        const qtensor *t = &ts[i];
        const mlxr_status st =
            t->convert ? mlxr_gguf_writer_add_tensor_fn(w, t->name, t->src->n_dims, t->src->ne,
                                                        t->type, fill_tensor, &ts[i], err)
                       : mlxr_gguf_writer_add_tensor(w, t->name, t->src->n_dims, t->src->ne,
                                                     t->type, t->src->data, err);
        if (st != MLXR_OK) return st;
    }
    return MLXR_OK;
}

mlxr_status mlxr_model_quantize(const char *in_path, const char *out_path,
                                const mlxr_quantize_opts *opts, mlxr_err *err) {
    const mlxr_quantize_opts def = mlxr_quantize_default_opts();
    if (!opts) opts = &def;
    if (!in_path || !out_path) return MLXR_FAIL(err, MLXR_ERR_INVALID, "NULL path");
    const int32_t ftype = opts->preset ? mlxr_quantize_preset_ftype(opts->preset) : opts->ftype;
    if (mlxr_qpreset_base_type(ftype) == MLXR_DTYPE_COUNT) {
        if (opts->preset)
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "unknown quantization type '%s'", opts->preset);
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "unsupported file type %d", (int)ftype);
    }
    mlxr_gguf *g = NULL;
    mlxr_gguf_writer *w = NULL;
    qtensor *ts = NULL;
    qjob job = {0};
    job.opts = opts;
    mlxr_status st = mlxr_gguf_open(in_path, &g, err);
    if (st != MLXR_OK) goto done;
    job.n_tensors = mlxr_gguf_n_tensors(g);
    ts = calloc(job.n_tensors ? (size_t)job.n_tensors : 1, sizeof *ts);
    w = mlxr_gguf_writer_new();
    if (!ts || !w) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
        goto done;
    }
    mlxr_qrules rules;
    init_rules(g, ftype, &rules);
    st = plan_tensors(g, &rules, ts, &job, err);
    if (st != MLXR_OK) goto done;
    const int nt = opts->n_threads > 0 ? opts->n_threads : mlxr_cpu_count();
    st = mlxr_tp_new(nt, &job.tp, err);
    if (st != MLXR_OK) goto done;
    job.scratch = malloc((size_t)nt * (size_t)(job.max_ne0 ? job.max_ne0 : 1) * sizeof(float));
    if (!job.scratch) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for %d rows of %" PRId64 " floats", nt,
                       job.max_ne0);
        goto done;
    }
    st = copy_metadata(g, w, ftype, err);
    if (st == MLXR_OK) st = add_tensors(w, ts, job.n_tensors, err);
    if (st == MLXR_OK) st = write_atomic(w, out_path, err);
done:
    free(job.scratch);
    mlxr_tp_free(job.tp);
    mlxr_gguf_writer_free(w);
    free(ts);
    mlxr_gguf_close(g);
    return st;
}
