/*
 * test_gguf.c - the GGUF reader against the shared test models (facts from the test data README),
 * hand-built files covering every value type, nested arrays, version 2 and alignments, and
 * hostile files: truncations at every section boundary and at random lengths, absurd counts,
 * bad offsets, types, dimensions and alignments, duplicates, bad magic and versions.
 *
 * Hostile inputs are always opened from a malloc'ed copy of exactly their length, so that
 * AddressSanitizer reports any read past the end.
 */
#include "format/dtype.h"
#include "format/gguf.h"
#include "test.h"
#include "util/err.h"

/* ---- a small GGUF writer ------------------------------------------------------------------- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_le(buf *b, uint64_t v, int bytes) {
    uint8_t t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    put(b, t, (size_t)bytes);
}

static void put_u8(buf *b, uint8_t v) {
    put_le(b, v, 1);
}
static void put_u32(buf *b, uint32_t v) {
    put_le(b, v, 4);
}
static void put_u64(buf *b, uint64_t v) {
    put_le(b, v, 8);
}

static void put_f32(buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}

static void put_f64(buf *b, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    put_u64(b, u);
}

static void put_strn(buf *b, const char *s, size_t n) {
    put_u64(b, n);
    put(b, s, n);
}

static void put_str(buf *b, const char *s) {
    put_strn(b, s, strlen(s));
}

static void put_header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}

static void put_key(buf *b, const char *key, mlxr_gguf_type type) {
    put_str(b, key);
    put_u32(b, type);
}

static void put_arr_head(buf *b, mlxr_gguf_type elem, uint64_t n) {
    put_u32(b, elem);
    put_u64(b, n);
}

/* A tensor info with n_dims dimensions ne[0..n_dims). */
static void put_tinfo(buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                      uint64_t offset) {
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        put_u64(b, ne[d]);
    put_u32(b, type);
    put_u64(b, offset);
}

static void put_zeros(buf *b, size_t n) {
    static const uint8_t z[256];
    for (; n > sizeof z; n -= sizeof z)
        put(b, z, sizeof z);
    put(b, z, n);
}

static void put_pad(buf *b, size_t align) {
    put_zeros(b, (align - b->n % align) % align);
}

/* The common tail of the hostile cases: the info of a tensor "t" with the given dims, type and
 * offset, padding to 32, then `data` zero bytes of tensor data. */
static void put_one_tensor(buf *b, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                           uint64_t offset, size_t data) {
    put_tinfo(b, "t", n_dims, ne, type, offset);
    put_pad(b, 32);
    put_zeros(b, data);
}

/* ---- opening helpers ----------------------------------------------------------------------- */

/* Open a private copy of exactly n bytes; on success *copy must be freed after close. */
static mlxr_status open_exact(const void *p, size_t n, void **copy, mlxr_gguf **g, mlxr_err *err) {
    *copy = malloc(n ? n : 1);
    if (n) memcpy(*copy, p, n);
    mlxr_err_clear(err);
    mlxr_status st = mlxr_gguf_open_mem(n ? *copy : NULL, n, g, err);
    if (st != MLXR_OK) {
        free(*copy);
        *copy = NULL;
    }
    return st;
}

static void close_exact(mlxr_gguf *g, void *copy) {
    mlxr_gguf_close(g);
    free(copy);
}

/* [p, p + n) lies inside [base, base + size). */
static bool in_file(const void *base, size_t size, const void *p, uint64_t n) {
    const uint8_t *b = base, *q = p;
    return q >= b && q <= b + size && n <= (uint64_t)(b + size - q);
}

static uint64_t g_sink; /* the walkers read every byte handed out, so ASan checks each one */

static bool walk_array(const mlxr_gguf_value *a, const void *base, size_t size, int depth) {
    if (depth > 8 || !in_file(base, size, a->v.arr.data, a->v.arr.nbytes)) return false;
    for (uint64_t i = 0; i < a->v.arr.n; i++) {
        if (a->v.arr.type == MLXR_GGUF_STRING) {
            mlxr_gguf_str s = mlxr_gguf_arr_str(a, i);
            if (!in_file(a->v.arr.data, a->v.arr.nbytes, s.data, s.len)) return false;
            for (uint64_t j = 0; j < s.len; j++)
                g_sink += (uint8_t)s.data[j];
        } else if (a->v.arr.type == MLXR_GGUF_ARRAY) {
            mlxr_gguf_value k = mlxr_gguf_arr_nested(a, i);
            if (k.type != MLXR_GGUF_ARRAY || !walk_array(&k, base, size, depth + 1)) return false;
        } else if (a->v.arr.type == MLXR_GGUF_FLOAT32) {
            g_sink += (uint64_t)(mlxr_gguf_arr_f32(a, i) == 0.0f);
        } else if (a->v.arr.type == MLXR_GGUF_INT32) {
            g_sink += (uint64_t)mlxr_gguf_arr_i32(a, i);
        }
    }
    for (uint64_t j = 0; j < a->v.arr.nbytes; j++)
        g_sink += a->v.arr.data[j];
    return true;
}

/* Check every kv and tensor of an open file whose bytes start at `base`. */
static void check_structure(const char *what, const mlxr_gguf *g, const void *base) {
    size_t size = mlxr_gguf_file_size(g);
    uint32_t align = mlxr_gguf_alignment(g);
    uint64_t doff = mlxr_gguf_data_offset(g);
    CHECK(align && (align & (align - 1)) == 0, "%s: alignment %u", what, align);
    CHECK(doff % align == 0, "%s: data offset %" PRIu64, what, doff);
    int bad_kv = 0, bad_t = 0;
    for (int64_t i = 0; i < mlxr_gguf_n_kv(g); i++) {
        const mlxr_gguf_kv *kv = mlxr_gguf_kv_at(g, i);
        char key[70000];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.data);
        bool ok =
            in_file(base, size, kv->key.data, kv->key.len) && mlxr_gguf_find(g, key) == &kv->value;
        if (kv->value.type == MLXR_GGUF_STRING)
            ok = ok && in_file(base, size, kv->value.v.str.data, kv->value.v.str.len);
        if (kv->value.type == MLXR_GGUF_ARRAY) ok = ok && walk_array(&kv->value, base, size, 1);
        bad_kv += !ok;
    }
    for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
        const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
        char name[300];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        size_t want = mlxr_dtype_row_size(t->type, t->ne[0]);
        bool ok = true;
        for (int k = 1; k < 4; k++)
            ok = ok && !__builtin_mul_overflow(want, (size_t)t->ne[k], &want);
        const uint8_t *d = t->data, *b0 = base;
        /* absolute alignment holds when the buffer itself is aligned (an mmap is) */
        bool base_aligned = (uintptr_t)base % align == 0;
        ok = ok && mlxr_gguf_find_tensor(g, name) == t && t->nbytes == want &&
             in_file(base, size, t->data, t->nbytes) && d == b0 + doff + t->offset &&
             t->offset % align == 0 && (!base_aligned || (uintptr_t)d % align == 0);
        if (ok && t->nbytes) g_sink += d[0] + d[t->nbytes - 1];
        bad_t += !ok;
    }
    CHECK(bad_kv == 0, "%s: %d bad key/value pairs", what, bad_kv);
    CHECK(bad_t == 0, "%s: %d bad tensors", what, bad_t);
    CHECK(mlxr_gguf_kv_at(g, -1) == NULL && mlxr_gguf_kv_at(g, mlxr_gguf_n_kv(g)) == NULL, "%s",
          what);
    CHECK(mlxr_gguf_tensor_at(g, -1) == NULL &&
              mlxr_gguf_tensor_at(g, mlxr_gguf_n_tensors(g)) == NULL,
          "%s", what);
    CHECK(mlxr_gguf_find(g, "no.such.key") == NULL, "%s", what);
    CHECK(mlxr_gguf_find_tensor(g, "no.such.tensor") == NULL, "%s", what);
}

static bool str_is(mlxr_gguf_str s, const char *want) {
    return s.len == strlen(want) && memcmp(s.data, want, s.len) == 0;
}

static uint32_t get_u32_or(const mlxr_gguf *g, const char *key, uint32_t dflt) {
    uint32_t v = dflt;
    mlxr_err err;
    if (mlxr_gguf_get_u32(g, key, &v, &err) != MLXR_OK) return dflt;
    return v;
}

static mlxr_dtype tensor_type(const mlxr_gguf *g, const char *name) {
    const mlxr_gguf_tensor *t = mlxr_gguf_find_tensor(g, name);
    return t ? t->type : (mlxr_dtype)-1;
}

/* ---- the real files ------------------------------------------------------------------------ */

/* Open a test file both ways (mmap and a read buffer) and check its structure; returns the
 * buffer-backed reader (free *bytes after closing it), or NULL. */
static mlxr_gguf *open_real(const char *rel, char **bytes) {
    char *path = test_data_path(rel);
    mlxr_err err;
    mlxr_gguf *g = NULL, *m = NULL;
    size_t len = 0;
    mlxr_err_clear(&err);
    *bytes = test_read_file(path, &len);
    CHECK(*bytes != NULL, "cannot read %s", path);
    mlxr_status st = mlxr_gguf_open(path, &m, &err);
    CHECK(st == MLXR_OK, "%s: %s", rel, err.msg);
    if (st == MLXR_OK) {
        /* the first key's bytes follow the 24-byte header and its 8-byte length */
        const mlxr_gguf_kv *kv0 = mlxr_gguf_kv_at(m, 0);
        if (kv0) check_structure(rel, m, kv0->key.data - 32);
        CHECK(mlxr_gguf_file_size(m) == len, "%s: size %zu", rel, mlxr_gguf_file_size(m));
        mlxr_gguf_close(m);
    }
    if (*bytes && mlxr_gguf_open_mem(*bytes, len, &g, &err) == MLXR_OK) {
        check_structure(rel, g, *bytes);
    } else {
        CHECK(0, "%s: %s", rel, err.msg);
        free(*bytes);
        *bytes = NULL;
    }
    free(path);
    return g;
}

static void test_pydoc_f16(void) {
    char *bytes;
    mlxr_gguf *g = open_real("models/pydoc-7M/pydoc-7M-f16.gguf", &bytes);
    if (!g) return;
    mlxr_err err;
    mlxr_gguf_str s;
    CHECK(mlxr_gguf_version(g) == 3, "version %u", mlxr_gguf_version(g));
    CHECK(mlxr_gguf_n_kv(g) == 22, "n_kv %" PRId64, mlxr_gguf_n_kv(g));
    CHECK(mlxr_gguf_n_tensors(g) == 57, "n_tensors %" PRId64, mlxr_gguf_n_tensors(g));
    CHECK(mlxr_gguf_alignment(g) == 32, "alignment");
    CHECK(mlxr_gguf_data_offset(g) == 94464, "data offset %" PRIu64, mlxr_gguf_data_offset(g));
    CHECK(mlxr_gguf_get_str(g, "general.name", &s, &err) == MLXR_OK && str_is(s, "pydoc-7M"),
          "general.name");
    CHECK(mlxr_gguf_get_str(g, "tokenizer.ggml.model", &s, &err) == MLXR_OK && str_is(s, "llama"),
          "tokenizer model");
    CHECK(mlxr_gguf_get_str(g, "tokenizer.ggml.pre", &s, &err) == MLXR_OK && str_is(s, "default"),
          "pre");
    CHECK(get_u32_or(g, "llama.embedding_length", 0) == 256, "n_embd");
    CHECK(get_u32_or(g, "llama.block_count", 0) == 6, "n_layer");
    CHECK(get_u32_or(g, "llama.attention.head_count", 0) == 4, "n_head");
    CHECK(get_u32_or(g, "llama.attention.head_count_kv", 0) == 2, "n_head_kv");
    CHECK(get_u32_or(g, "llama.feed_forward_length", 0) == 768, "n_ff");
    CHECK(get_u32_or(g, "llama.context_length", 0) == 512, "n_ctx");
    CHECK(get_u32_or(g, "llama.rope.dimension_count", 0) == 64, "n_rot");
    CHECK(get_u32_or(g, "general.file_type", 99) == 1, "file type");
    CHECK(get_u32_or(g, "tokenizer.ggml.bos_token_id", 9) == 1, "bos");
    CHECK(get_u32_or(g, "tokenizer.ggml.eos_token_id", 9) == 2, "eos");
    CHECK(mlxr_gguf_find(g, "tokenizer.ggml.add_space_prefix") == NULL, "no add_space_prefix");
    float eps = 0, base = 0;
    CHECK(mlxr_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps, &err) == MLXR_OK &&
              eps == 1e-5f,
          "eps %g", eps);
    CHECK(mlxr_gguf_get_f32(g, "llama.rope.freq_base", &base, &err) == MLXR_OK && base == 1e4f,
          "rope base %g", base);
    bool add_bos = false, add_eos = true;
    CHECK(mlxr_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, &err) == MLXR_OK &&
              add_bos,
          "add_bos");
    CHECK(mlxr_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &add_eos, &err) == MLXR_OK &&
              !add_eos,
          "add_eos");

    const mlxr_gguf_value *tok = NULL, *scores = NULL, *types = NULL;
    CHECK(mlxr_gguf_get_arr(g, "tokenizer.ggml.tokens", MLXR_GGUF_STRING, &tok, &err) == MLXR_OK,
          "%s", err.msg);
    CHECK(mlxr_gguf_get_arr(g, "tokenizer.ggml.scores", MLXR_GGUF_FLOAT32, &scores, &err) ==
              MLXR_OK,
          "%s", err.msg);
    CHECK(mlxr_gguf_get_arr(g, "tokenizer.ggml.token_type", MLXR_GGUF_INT32, &types, &err) ==
              MLXR_OK,
          "%s", err.msg);
    if (tok && scores && types) {
        CHECK(tok->v.arr.n == 4096 && scores->v.arr.n == 4096 && types->v.arr.n == 4096,
              "vocab %" PRIu64, tok->v.arr.n);
        CHECK(str_is(mlxr_gguf_arr_str(tok, 0), "<unk>"), "token 0");
        CHECK(str_is(mlxr_gguf_arr_str(tok, 1), "<s>"), "token 1");
        CHECK(str_is(mlxr_gguf_arr_str(tok, 2), "</s>"), "token 2");
        CHECK(str_is(mlxr_gguf_arr_str(tok, 13), "<0x0A>"), "token 13");
        CHECK(str_is(mlxr_gguf_arr_str(tok, 258), "<0xFF>"), "token 258");
        CHECK(str_is(mlxr_gguf_arr_str(tok, 3894), "\xe2\x96\x81"), "token 3894");
        CHECK(str_is(mlxr_gguf_arr_str(tok, 259), "\xe2\x96\x81\xe2\x96\x81"), "token 259");
        int bad_score = 0, bad_type = 0;
        for (int i = 0; i < 4096; i++) {
            int want = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
            bad_type += mlxr_gguf_arr_i32(types, (uint64_t)i) != want;
            if (i >= 259) bad_score += mlxr_gguf_arr_f32(scores, (uint64_t)i) != (float)(259 - i);
        }
        CHECK(bad_score == 0, "%d scores differ from -(i - 259)", bad_score);
        CHECK(bad_type == 0, "%d token types differ", bad_type);
    }
    const mlxr_gguf_tensor *e = mlxr_gguf_find_tensor(g, "token_embd.weight");
    CHECK(e && e->type == MLXR_DTYPE_F16 && e->n_dims == 2 && e->ne[0] == 256 && e->ne[1] == 4096 &&
              e->ne[2] == 1 && e->ne[3] == 1 && e->nbytes == 256 * 4096 * 2 && e->offset == 0,
          "token_embd.weight");
    CHECK(tensor_type(g, "output.weight") == MLXR_DTYPE_F16, "output");
    CHECK(tensor_type(g, "output_norm.weight") == MLXR_DTYPE_F32, "output_norm");
    CHECK(tensor_type(g, "blk.5.ffn_norm.weight") == MLXR_DTYPE_F32, "ffn_norm");
    mlxr_gguf_close(g);
    free(bytes);
}

/* Tensor types of a llama-layout file: per-block types for V and FFN-down, shared for others. */
typedef struct type_case {
    const char *file;
    int n_layer, n_kv;
    uint32_t file_type;
    mlxr_dtype embd, qko, gate_up, output;
    mlxr_dtype v[6], down[6];
} type_case;

#define F16 MLXR_DTYPE_F16
#define Q80 MLXR_DTYPE_Q8_0
#define Q40 MLXR_DTYPE_Q4_0
#define Q4K MLXR_DTYPE_Q4_K
#define Q6K MLXR_DTYPE_Q6_K

static const type_case TYPE_CASES[] = {
    {"models/pydoc-7M/pydoc-7M-f16.gguf",
     6,
     22,
     1,
     F16,
     F16,
     F16,
     F16,
     {F16, F16, F16, F16, F16, F16},
     {F16, F16, F16, F16, F16, F16}},
    {"models/pydoc-7M/pydoc-7M-q8_0.gguf",
     6,
     23,
     7,
     Q80,
     Q80,
     Q80,
     Q80,
     {Q80, Q80, Q80, Q80, Q80, Q80},
     {Q80, Q80, Q80, Q80, Q80, Q80}},
    {"models/pydoc-7M/pydoc-7M-q4_0.gguf",
     6,
     23,
     2,
     Q40,
     Q40,
     Q40,
     Q6K,
     {Q40, Q40, Q40, Q40, Q40, Q40},
     {Q40, Q40, Q40, Q40, Q40, Q40}},
    {"models/pydoc-7M/pydoc-7M-q4_k_m.gguf",
     6,
     23,
     15,
     Q4K,
     Q4K,
     Q4K,
     Q6K,
     {Q4K, Q4K, Q6K, Q4K, Q4K, Q6K},
     {Q4K, Q4K, Q6K, Q4K, Q4K, Q6K}},
    {"models/toy-f16.gguf",
     4,
     24,
     1,
     F16,
     F16,
     F16,
     F16,
     {F16, F16, F16, F16},
     {F16, F16, F16, F16}},
    {"models/toy-q8_0.gguf",
     4,
     24,
     7,
     Q80,
     Q80,
     Q80,
     Q80,
     {Q80, Q80, Q80, Q80},
     {Q80, Q80, Q80, Q80}},
    {"models/toy-q4_0.gguf",
     4,
     24,
     2,
     Q40,
     Q40,
     Q40,
     Q6K,
     {Q40, Q40, Q40, Q40},
     {Q40, Q40, Q40, Q40}},
    {"models/toy-q4_k_m.gguf",
     4,
     24,
     15,
     Q4K,
     Q4K,
     Q4K,
     Q6K,
     {Q4K, Q4K, Q6K, Q6K},
     {Q4K, Q4K, Q6K, Q6K}},
    {"models/toy-q6_k.gguf",
     4,
     24,
     18,
     Q6K,
     Q6K,
     Q6K,
     Q6K,
     {Q6K, Q6K, Q6K, Q6K},
     {Q6K, Q6K, Q6K, Q6K}},
};

static void check_type(const mlxr_gguf *g, const char *file, int blk, const char *what,
                       mlxr_dtype want) {
    char name[64];
    if (blk >= 0)
        snprintf(name, sizeof name, "blk.%d.%s.weight", blk, what);
    else
        snprintf(name, sizeof name, "%s.weight", what);
    mlxr_dtype got = tensor_type(g, name);
    CHECK(got == want, "%s: %s is %s, expected %s", file, name, mlxr_dtype_name(got),
          mlxr_dtype_name(want));
}

static void test_tensor_types(void) {
    for (size_t c = 0; c < sizeof TYPE_CASES / sizeof TYPE_CASES[0]; c++) {
        const type_case *tc = &TYPE_CASES[c];
        char *bytes;
        mlxr_gguf *g = open_real(tc->file, &bytes);
        if (!g) continue;
        CHECK(mlxr_gguf_version(g) == 3, "%s", tc->file);
        CHECK(mlxr_gguf_n_kv(g) == tc->n_kv, "%s: n_kv %" PRId64, tc->file, mlxr_gguf_n_kv(g));
        CHECK(mlxr_gguf_n_tensors(g) == 3 + 9 * tc->n_layer, "%s: n_tensors %" PRId64, tc->file,
              mlxr_gguf_n_tensors(g));
        CHECK(get_u32_or(g, "general.file_type", 99) == tc->file_type, "%s: file type", tc->file);
        check_type(g, tc->file, -1, "token_embd", tc->embd);
        check_type(g, tc->file, -1, "output", tc->output);
        check_type(g, tc->file, -1, "output_norm", MLXR_DTYPE_F32);
        for (int b = 0; b < tc->n_layer; b++) {
            check_type(g, tc->file, b, "attn_q", tc->qko);
            check_type(g, tc->file, b, "attn_k", tc->qko);
            check_type(g, tc->file, b, "attn_output", tc->qko);
            check_type(g, tc->file, b, "attn_v", tc->v[b]);
            check_type(g, tc->file, b, "ffn_gate", tc->gate_up);
            check_type(g, tc->file, b, "ffn_up", tc->gate_up);
            check_type(g, tc->file, b, "ffn_down", tc->down[b]);
            check_type(g, tc->file, b, "attn_norm", MLXR_DTYPE_F32);
            check_type(g, tc->file, b, "ffn_norm", MLXR_DTYPE_F32);
        }
        mlxr_gguf_close(g);
        free(bytes);
    }
}

static void test_small_models(void) {
    char *bytes;
    mlxr_gguf_str s;
    mlxr_err err;
    const mlxr_gguf_value *tok;
    mlxr_gguf *g = open_real("models/stories260K.gguf", &bytes);
    if (g) {
        CHECK(mlxr_gguf_n_tensors(g) == 47 && mlxr_gguf_n_kv(g) == 23, "stories260K counts");
        CHECK(mlxr_gguf_find_tensor(g, "output.weight") == NULL, "stories260K has no output");
        int not_f32 = 0;
        for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++)
            not_f32 += mlxr_gguf_tensor_at(g, i)->type != MLXR_DTYPE_F32;
        CHECK(not_f32 == 0, "stories260K: %d tensors not F32", not_f32);
        CHECK(mlxr_gguf_get_str(g, "general.name", &s, &err) == MLXR_OK && str_is(s, "stories260K"),
              "name");
        CHECK(get_u32_or(g, "llama.embedding_length", 0) == 64 &&
                  get_u32_or(g, "llama.block_count", 0) == 5 &&
                  get_u32_or(g, "llama.feed_forward_length", 0) == 172 &&
                  get_u32_or(g, "llama.attention.head_count", 0) == 8 &&
                  get_u32_or(g, "llama.attention.head_count_kv", 0) == 4 &&
                  get_u32_or(g, "general.file_type", 9) == 0,
              "stories260K hyperparameters");
        CHECK(mlxr_gguf_get_arr(g, "tokenizer.ggml.tokens", MLXR_GGUF_STRING, &tok, &err) ==
                      MLXR_OK &&
                  tok->v.arr.n == 512,
              "stories260K vocab");
        mlxr_gguf_close(g);
        free(bytes);
    }
    g = open_real("models/llama-2-tiny-random.gguf", &bytes);
    if (g) {
        CHECK(mlxr_gguf_n_tensors(g) == 12, "tiny-random tensors %" PRId64, mlxr_gguf_n_tensors(g));
        CHECK(tensor_type(g, "output.weight") == MLXR_DTYPE_F16, "tiny-random output");
        CHECK(tensor_type(g, "blk.0.attn_norm.weight") == MLXR_DTYPE_F32, "tiny-random norm");
        CHECK(get_u32_or(g, "llama.embedding_length", 0) == 8 &&
                  get_u32_or(g, "llama.rope.dimension_count", 0) == 4 &&
                  get_u32_or(g, "llama.context_length", 0) == 4096,
              "tiny-random hyperparameters");
        CHECK(mlxr_gguf_get_arr(g, "tokenizer.ggml.tokens", MLXR_GGUF_STRING, &tok, &err) ==
                      MLXR_OK &&
                  tok->v.arr.n == 32000 && str_is(mlxr_gguf_arr_str(tok, 1), "<s>"),
              "tiny-random vocab");
        mlxr_gguf_close(g);
        free(bytes);
    }
}

static void test_vocab_files(void) {
    static const struct {
        const char *name, *model;
        uint64_t n_vocab;
    } V[] = {
        {"llama-spm", "llama", 32000},     {"phi-3", "llama", 32064}, {"gpt-2", "gpt2", 50257},
        {"deepseek-coder", "gpt2", 32256}, {"falcon", "gpt2", 65024}, {"bert-bge", "bert", 30522},
    };
    for (size_t i = 0; i < sizeof V / sizeof V[0]; i++) {
        char rel[128], *bytes;
        snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf", V[i].name);
        mlxr_gguf *g = open_real(rel, &bytes);
        if (!g) continue;
        mlxr_gguf_str s;
        mlxr_err err;
        const mlxr_gguf_value *tok;
        CHECK(mlxr_gguf_version(g) == 3 && mlxr_gguf_n_tensors(g) == 0, "%s", rel);
        CHECK(mlxr_gguf_get_str(g, "tokenizer.ggml.model", &s, &err) == MLXR_OK &&
                  str_is(s, V[i].model),
              "%s: model", rel);
        CHECK(mlxr_gguf_get_arr(g, "tokenizer.ggml.tokens", MLXR_GGUF_STRING, &tok, &err) ==
                      MLXR_OK &&
                  tok->v.arr.n == V[i].n_vocab,
              "%s: vocab size", rel);
        mlxr_gguf_close(g);
        free(bytes);
    }
    mlxr_gguf *g;
    mlxr_err err;
    CHECK(mlxr_gguf_open("/nonexistent/x.gguf", &g, &err) == MLXR_ERR_IO && g == NULL &&
              strstr(err.msg, "x.gguf"),
          "missing file: %s", err.msg);
    char *path = test_data_path("models/llama-2-tiny-random.Modelfile");
    CHECK(mlxr_gguf_open(path, &g, &err) == MLXR_ERR_FORMAT && g == NULL &&
              strstr(err.msg, "Modelfile") && strstr(err.msg, "not a GGUF file"),
          "not GGUF: %s", err.msg);
    free(path);
    CHECK(mlxr_gguf_open_mem(NULL, 5, &g, &err) == MLXR_ERR_INVALID && g == NULL, "NULL data");
}

/* ---- hand-built files ---------------------------------------------------------------------- */

/* Every value type, nested arrays, two tensors. */
static void build_all_types(buf *b, uint32_t version) {
    put_header(b, version, 2, 24);
    put_key(b, "u8", MLXR_GGUF_UINT8), put_u8(b, 200);
    put_key(b, "i8", MLXR_GGUF_INT8), put_u8(b, (uint8_t)-100);
    put_key(b, "u16", MLXR_GGUF_UINT16), put_le(b, 60000, 2);
    put_key(b, "i16", MLXR_GGUF_INT16), put_le(b, (uint16_t)-30000, 2);
    put_key(b, "u32", MLXR_GGUF_UINT32), put_u32(b, 4000000000u);
    put_key(b, "i32", MLXR_GGUF_INT32), put_u32(b, (uint32_t)-2000000000);
    put_key(b, "f32", MLXR_GGUF_FLOAT32), put_f32(b, 1.5f);
    put_key(b, "bool", MLXR_GGUF_BOOL), put_u8(b, 1);
    put_key(b, "str", MLXR_GGUF_STRING), put_strn(b, "hello\0world\xff", 12);
    put_key(b, "u64", MLXR_GGUF_UINT64), put_u64(b, 1ull << 40);
    put_key(b, "i64", MLXR_GGUF_INT64), put_u64(b, (uint64_t) - (1ll << 40));
    put_key(b, "f64", MLXR_GGUF_FLOAT64), put_f64(b, 3.25);
    put_key(b, "f64.big", MLXR_GGUF_FLOAT64), put_f64(b, 1e300);
    put_key(b, "u32.small", MLXR_GGUF_UINT32), put_u32(b, 7);
    put_key(b, "a.u8", MLXR_GGUF_ARRAY), put_arr_head(b, MLXR_GGUF_UINT8, 3);
    put_u8(b, 1), put_u8(b, 2), put_u8(b, 3);
    put_key(b, "a.i32", MLXR_GGUF_ARRAY), put_arr_head(b, MLXR_GGUF_INT32, 2);
    put_u32(b, (uint32_t)-1), put_u32(b, 7);
    put_key(b, "a.f32", MLXR_GGUF_ARRAY), put_arr_head(b, MLXR_GGUF_FLOAT32, 2);
    put_f32(b, 0.5f), put_f32(b, -2.0f);
    put_key(b, "a.bool", MLXR_GGUF_ARRAY), put_arr_head(b, MLXR_GGUF_BOOL, 2);
    put_u8(b, 0), put_u8(b, 1);
    put_key(b, "a.str", MLXR_GGUF_ARRAY), put_arr_head(b, MLXR_GGUF_STRING, 3);
    put_str(b, "a"), put_str(b, ""), put_str(b, "ccc");
    put_key(b, "a.empty", MLXR_GGUF_ARRAY), put_arr_head(b, MLXR_GGUF_STRING, 0);
    /* [["x", "yy"], [], ["zzz"]] */
    put_key(b, "a.a.str", MLXR_GGUF_ARRAY), put_arr_head(b, MLXR_GGUF_ARRAY, 3);
    put_arr_head(b, MLXR_GGUF_STRING, 2), put_str(b, "x"), put_str(b, "yy");
    put_arr_head(b, MLXR_GGUF_STRING, 0);
    put_arr_head(b, MLXR_GGUF_STRING, 1), put_str(b, "zzz");
    /* [[1, 2, 3], [4]] */
    put_key(b, "a.a.i32", MLXR_GGUF_ARRAY), put_arr_head(b, MLXR_GGUF_ARRAY, 2);
    put_arr_head(b, MLXR_GGUF_INT32, 3), put_u32(b, 1), put_u32(b, 2), put_u32(b, 3);
    put_arr_head(b, MLXR_GGUF_INT32, 1), put_u32(b, 4);
    /* [[[ "deep" ]], [[], [ "er" ]]] */
    put_key(b, "a.a.a", MLXR_GGUF_ARRAY), put_arr_head(b, MLXR_GGUF_ARRAY, 2);
    put_arr_head(b, MLXR_GGUF_ARRAY, 1), put_arr_head(b, MLXR_GGUF_STRING, 1), put_str(b, "deep");
    put_arr_head(b, MLXR_GGUF_ARRAY, 2), put_arr_head(b, MLXR_GGUF_STRING, 0);
    put_arr_head(b, MLXR_GGUF_STRING, 1), put_str(b, "er");
    put_key(b, "a.u64", MLXR_GGUF_ARRAY), put_arr_head(b, MLXR_GGUF_UINT64, 1), put_u64(b, 5);
    put_tinfo(b, "w", 2, (const uint64_t[]){32, 2}, MLXR_DTYPE_Q8_0, 0);
    put_tinfo(b, "v", 1, (const uint64_t[]){3}, MLXR_DTYPE_F32, 96);
    put_pad(b, 32);
    put_zeros(b, 96 + 12);
}

static void check_getters(const mlxr_gguf *g) {
    mlxr_err err;
    uint32_t u;
    int32_t i;
    float f;
    bool bo;
    mlxr_gguf_str s;
    const mlxr_gguf_value *a;
    CHECK(mlxr_gguf_get_u32(g, "u8", &u, &err) == MLXR_OK && u == 200, "u8");
    CHECK(mlxr_gguf_get_u32(g, "u16", &u, &err) == MLXR_OK && u == 60000, "u16");
    CHECK(mlxr_gguf_get_u32(g, "u32", &u, &err) == MLXR_OK && u == 4000000000u, "u32");
    CHECK(mlxr_gguf_get_u32(g, "u64", &u, &err) == MLXR_ERR_RANGE && strstr(err.msg, "'u64'"),
          "u64 -> u32: %s", err.msg);
    CHECK(mlxr_gguf_get_u32(g, "i8", &u, &err) == MLXR_ERR_RANGE, "negative -> u32");
    CHECK(mlxr_gguf_get_u32(g, "str", &u, &err) == MLXR_ERR_FORMAT && strstr(err.msg, "'str'"),
          "string -> u32: %s", err.msg);
    CHECK(mlxr_gguf_get_u32(g, "missing.key", &u, &err) == MLXR_ERR_NOT_FOUND &&
              strstr(err.msg, "missing.key"),
          "missing: %s", err.msg);
    CHECK(mlxr_gguf_get_i32(g, "i8", &i, &err) == MLXR_OK && i == -100, "i8");
    CHECK(mlxr_gguf_get_i32(g, "i16", &i, &err) == MLXR_OK && i == -30000, "i16");
    CHECK(mlxr_gguf_get_i32(g, "i32", &i, &err) == MLXR_OK && i == -2000000000, "i32");
    CHECK(mlxr_gguf_get_i32(g, "u32.small", &i, &err) == MLXR_OK && i == 7, "u32 -> i32");
    CHECK(mlxr_gguf_get_i32(g, "u32", &i, &err) == MLXR_ERR_RANGE, "u32 -> i32 range");
    CHECK(mlxr_gguf_get_i32(g, "i64", &i, &err) == MLXR_ERR_RANGE && strstr(err.msg, "'i64'"),
          "i64 -> i32: %s", err.msg);
    CHECK(mlxr_gguf_get_i32(g, "f32", &i, &err) == MLXR_ERR_FORMAT, "float -> i32");
    CHECK(mlxr_gguf_get_f32(g, "f32", &f, &err) == MLXR_OK && f == 1.5f, "f32");
    CHECK(mlxr_gguf_get_f32(g, "f64", &f, &err) == MLXR_OK && f == 3.25f, "f64");
    CHECK(mlxr_gguf_get_f32(g, "f64.big", &f, &err) == MLXR_ERR_RANGE, "f64 out of float range");
    CHECK(mlxr_gguf_get_f32(g, "u8", &f, &err) == MLXR_ERR_FORMAT, "int -> f32");
    CHECK(mlxr_gguf_get_bool(g, "bool", &bo, &err) == MLXR_OK && bo, "bool");
    CHECK(mlxr_gguf_get_bool(g, "u8", &bo, &err) == MLXR_ERR_FORMAT, "u8 -> bool");
    CHECK(mlxr_gguf_get_str(g, "str", &s, &err) == MLXR_OK && s.len == 12 &&
              memcmp(s.data, "hello\0world\xff", 12) == 0,
          "string with NUL");
    CHECK(mlxr_gguf_get_str(g, "a.str", &s, &err) == MLXR_ERR_FORMAT, "array -> string");
    CHECK(mlxr_gguf_get_arr(g, "a.str", MLXR_GGUF_INT32, &a, &err) == MLXR_ERR_FORMAT &&
              strstr(err.msg, "a.str"),
          "array elem type: %s", err.msg);
    CHECK(mlxr_gguf_get_arr(g, "u8", MLXR_GGUF_UINT8, &a, &err) == MLXR_ERR_FORMAT, "scalar");
    CHECK(mlxr_gguf_get_arr(g, "nope", MLXR_GGUF_UINT8, &a, &err) == MLXR_ERR_NOT_FOUND, "nope");
    const mlxr_gguf_value *v = mlxr_gguf_find(g, "i64");
    CHECK(v && v->type == MLXR_GGUF_INT64 && v->v.i64 == -(1ll << 40), "i64 value");
    v = mlxr_gguf_find(g, "u64");
    CHECK(v && v->type == MLXR_GGUF_UINT64 && v->v.u64 == 1ull << 40, "u64 value");
    v = mlxr_gguf_find(g, "i16");
    CHECK(v && v->type == MLXR_GGUF_INT16 && v->v.i64 == -30000, "i16 value");
}

static void check_arrays(const mlxr_gguf *g) {
    mlxr_err err;
    const mlxr_gguf_value *a;
    CHECK(mlxr_gguf_get_arr(g, "a.u8", MLXR_GGUF_UINT8, &a, &err) == MLXR_OK && a->v.arr.n == 3 &&
              a->v.arr.nbytes == 3 && a->v.arr.data[2] == 3 && a->v.arr.offsets == NULL,
          "a.u8");
    CHECK(mlxr_gguf_get_arr(g, "a.i32", MLXR_GGUF_INT32, &a, &err) == MLXR_OK &&
              mlxr_gguf_arr_i32(a, 0) == -1 && mlxr_gguf_arr_i32(a, 1) == 7,
          "a.i32");
    CHECK(mlxr_gguf_get_arr(g, "a.f32", MLXR_GGUF_FLOAT32, &a, &err) == MLXR_OK &&
              mlxr_gguf_arr_f32(a, 0) == 0.5f && mlxr_gguf_arr_f32(a, 1) == -2.0f,
          "a.f32");
    CHECK(mlxr_gguf_get_arr(g, "a.bool", MLXR_GGUF_BOOL, &a, &err) == MLXR_OK && a->v.arr.n == 2,
          "a.bool");
    CHECK(mlxr_gguf_get_arr(g, "a.str", MLXR_GGUF_STRING, &a, &err) == MLXR_OK && a->v.arr.n == 3 &&
              str_is(mlxr_gguf_arr_str(a, 0), "a") && str_is(mlxr_gguf_arr_str(a, 1), "") &&
              str_is(mlxr_gguf_arr_str(a, 2), "ccc") && a->v.arr.nbytes == 3 * 8 + 4,
          "a.str");
    CHECK(mlxr_gguf_get_arr(g, "a.empty", MLXR_GGUF_STRING, &a, &err) == MLXR_OK && a->v.arr.n == 0,
          "a.empty");
    if (mlxr_gguf_get_arr(g, "a.a.str", MLXR_GGUF_ARRAY, &a, &err) == MLXR_OK && a->v.arr.n == 3) {
        mlxr_gguf_value x = mlxr_gguf_arr_nested(a, 0), y = mlxr_gguf_arr_nested(a, 1),
                        z = mlxr_gguf_arr_nested(a, 2);
        CHECK(x.type == MLXR_GGUF_ARRAY && x.v.arr.type == MLXR_GGUF_STRING && x.v.arr.n == 2 &&
                  str_is(mlxr_gguf_arr_str(&x, 0), "x") && str_is(mlxr_gguf_arr_str(&x, 1), "yy"),
              "a.a.str[0]");
        CHECK(y.v.arr.type == MLXR_GGUF_STRING && y.v.arr.n == 0, "a.a.str[1]");
        CHECK(z.v.arr.n == 1 && str_is(mlxr_gguf_arr_str(&z, 0), "zzz"), "a.a.str[2]");
    } else {
        CHECK(0, "a.a.str: %s", err.msg);
    }
    if (mlxr_gguf_get_arr(g, "a.a.i32", MLXR_GGUF_ARRAY, &a, &err) == MLXR_OK && a->v.arr.n == 2) {
        mlxr_gguf_value x = mlxr_gguf_arr_nested(a, 0), y = mlxr_gguf_arr_nested(a, 1);
        CHECK(x.v.arr.type == MLXR_GGUF_INT32 && x.v.arr.n == 3 && mlxr_gguf_arr_i32(&x, 2) == 3,
              "a.a.i32[0]");
        CHECK(y.v.arr.n == 1 && mlxr_gguf_arr_i32(&y, 0) == 4, "a.a.i32[1]");
    } else {
        CHECK(0, "a.a.i32: %s", err.msg);
    }
    if (mlxr_gguf_get_arr(g, "a.a.a", MLXR_GGUF_ARRAY, &a, &err) == MLXR_OK && a->v.arr.n == 2) {
        mlxr_gguf_value x = mlxr_gguf_arr_nested(a, 0), y = mlxr_gguf_arr_nested(a, 1);
        mlxr_gguf_value x0 = mlxr_gguf_arr_nested(&x, 0), y1 = mlxr_gguf_arr_nested(&y, 1);
        CHECK(x.v.arr.n == 1 && str_is(mlxr_gguf_arr_str(&x0, 0), "deep"), "a.a.a[0][0][0]");
        CHECK(y.v.arr.n == 2 && y1.v.arr.n == 1 && str_is(mlxr_gguf_arr_str(&y1, 0), "er"),
              "a.a.a[1][1][0]");
    } else {
        CHECK(0, "a.a.a: %s", err.msg);
    }
}

static void test_all_types(void) {
    for (uint32_t version = 2; version <= 3; version++) {
        buf b = {0};
        build_all_types(&b, version);
        void *copy;
        mlxr_gguf *g;
        mlxr_err err;
        if (open_exact(b.p, b.n, &copy, &g, &err) != MLXR_OK) {
            CHECK(0, "all types v%u: %s", version, err.msg);
            free(b.p);
            continue;
        }
        CHECK(mlxr_gguf_version(g) == version, "version");
        CHECK(mlxr_gguf_n_kv(g) == 24 && mlxr_gguf_n_tensors(g) == 2, "counts");
        check_structure("all types", g, copy);
        check_getters(g);
        check_arrays(g);
        const mlxr_gguf_tensor *w = mlxr_gguf_find_tensor(g, "w"),
                               *v = mlxr_gguf_find_tensor(g, "v");
        CHECK(w && w->nbytes == 68 && w->n_dims == 2 && w->ne[1] == 2 && w->ne[2] == 1, "w");
        CHECK(v && v->nbytes == 12 && v->offset == 96 && v->type == MLXR_DTYPE_F32, "v");
        close_exact(g, copy);
        free(b.p);
    }
    for (int t = 0; t < MLXR_GGUF_TYPE_COUNT; t++)
        CHECK(strcmp(mlxr_gguf_type_name((mlxr_gguf_type)t), "?") != 0, "type name %d", t);
    CHECK(strcmp(mlxr_gguf_type_name(MLXR_GGUF_ARRAY), "array") == 0, "array name");
    CHECK(strcmp(mlxr_gguf_type_name((mlxr_gguf_type)99), "?") == 0, "unknown type name");
}

/* general.alignment variants: tensors of odd sizes placed on each alignment. */
static void test_alignment(void) {
    static const uint32_t ALIGNS[] = {0 /* no key: 32 */, 1, 2, 8, 32, 64, 256, 4096};
    for (size_t k = 0; k < sizeof ALIGNS / sizeof ALIGNS[0]; k++) {
        uint32_t al = ALIGNS[k], eff = al ? al : 32;
        uint64_t off1 = (12 + eff - 1) / eff * eff;
        buf b = {0};
        put_header(&b, 3, 2, al ? 2 : 1);
        put_key(&b, "general.name", MLXR_GGUF_STRING), put_str(&b, "aligned");
        if (al) put_key(&b, "general.alignment", MLXR_GGUF_UINT32), put_u32(&b, al);
        put_tinfo(&b, "a", 1, (const uint64_t[]){3}, MLXR_DTYPE_F32, 0);
        put_tinfo(&b, "b", 3, (const uint64_t[]){5, 1, 1}, MLXR_DTYPE_I8, off1);
        size_t header_end = b.n;
        put_pad(&b, eff);
        size_t doff = b.n;
        put_zeros(&b, (size_t)off1 + 5);
        void *copy;
        mlxr_gguf *g;
        mlxr_err err;
        if (open_exact(b.p, b.n, &copy, &g, &err) != MLXR_OK) {
            CHECK(0, "alignment %u: %s", al, err.msg);
        } else {
            CHECK(mlxr_gguf_alignment(g) == eff, "alignment %u", mlxr_gguf_alignment(g));
            CHECK(mlxr_gguf_data_offset(g) == doff && doff >= header_end && doff % eff == 0,
                  "data offset %" PRIu64 " for alignment %u", mlxr_gguf_data_offset(g), al);
            const mlxr_gguf_tensor *t = mlxr_gguf_find_tensor(g, "b");
            CHECK(t && t->data == (uint8_t *)copy + doff + off1 && t->nbytes == 5, "tensor b");
            close_exact(g, copy);
        }
        free(b.p);
    }
}

/* Smaller valid corner cases: empty file body, empty tensors, no trailing padding, depth 8. */
static void test_corners(void) {
    void *copy;
    mlxr_gguf *g;
    mlxr_err err;
    buf b = {0};
    put_header(&b, 3, 0, 0);
    CHECK(open_exact(b.p, b.n, &copy, &g, &err) == MLXR_OK && mlxr_gguf_n_kv(g) == 0 &&
              mlxr_gguf_find(g, "x") == NULL && mlxr_gguf_find_tensor(g, "x") == NULL,
          "empty: %s", err.msg);
    if (copy) close_exact(g, copy);
    /* a vocab-only file ends right after its metadata, before the padding */
    put_key(&b, "k", MLXR_GGUF_UINT8), put_u8(&b, 1);
    b.p[16] = 1;
    CHECK(open_exact(b.p, b.n, &copy, &g, &err) == MLXR_OK, "no padding: %s", err.msg);
    if (copy) close_exact(g, copy);
    /* a tensor with a zero dimension has no bytes */
    b.n = 0;
    put_header(&b, 3, 1, 0);
    put_one_tensor(&b, 2, (const uint64_t[]){0, 7}, MLXR_DTYPE_F32, 0, 0);
    CHECK(open_exact(b.p, b.n, &copy, &g, &err) == MLXR_OK &&
              mlxr_gguf_tensor_at(g, 0)->nbytes == 0,
          "empty tensor: %s", err.msg);
    if (copy) close_exact(g, copy);
    /* arrays nested 8 deep are fine, 9 are not */
    for (int depth = 8; depth <= 9; depth++) {
        b.n = 0;
        put_header(&b, 3, 0, 1);
        put_key(&b, "deep", MLXR_GGUF_ARRAY);
        for (int d = 1; d < depth; d++)
            put_arr_head(&b, MLXR_GGUF_ARRAY, 1);
        put_arr_head(&b, MLXR_GGUF_UINT8, 1), put_u8(&b, 42);
        mlxr_status st = open_exact(b.p, b.n, &copy, &g, &err);
        if (depth == 8) {
            CHECK(st == MLXR_OK, "depth 8: %s", err.msg);
            if (st == MLXR_OK) {
                mlxr_gguf_value v = *mlxr_gguf_find(g, "deep");
                for (int d = 1; d < depth; d++)
                    v = mlxr_gguf_arr_nested(&v, 0);
                CHECK(v.v.arr.type == MLXR_GGUF_UINT8 && v.v.arr.data[0] == 42, "depth 8 leaf");
                close_exact(g, copy);
            }
        } else {
            CHECK(st == MLXR_ERR_FORMAT && strstr(err.msg, "deep"), "depth 9: %s", err.msg);
        }
    }
    free(b.p);
}

/* ---- hostile files ------------------------------------------------------------------------- */

/* The bytes must fail to open, with a message containing `needle` (if non-NULL). */
static void expect_fail(const char *what, const buf *b, const char *needle) {
    void *copy;
    mlxr_gguf *g = NULL;
    mlxr_err err;
    mlxr_status st = open_exact(b->p, b->n, &copy, &g, &err);
    CHECK(st != MLXR_OK && g == NULL && err.msg[0] != '\0', "%s: opened (status %d)", what, st);
    if (st == MLXR_OK) close_exact(g, copy);
    if (getenv("MLXR_TEST_VERBOSE")) fprintf(stderr, "%-28s -> %s\n", what, err.msg);
    if (st != MLXR_OK && needle)
        CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg,
              needle);
}

static void test_bad_headers(void) {
    buf b = {0};
    expect_fail("empty file", &b, "GGUF");
    put(&b, "GGU", 3);
    expect_fail("3 bytes", &b, "GGUF");
    b.n = 0;
    put_header(&b, 3, 0, 0);
    memcpy(b.p, "GGUG", 4);
    expect_fail("bad magic", &b, "not a GGUF file");
    static const struct {
        uint32_t v;
        const char *needle;
    } VERSIONS[] = {{0, "version 0"},
                    {1, "version 1"},
                    {4, "version 4"},
                    {0x03000000, "big-endian"},
                    {0xffffffffu, "4294967295"}};
    for (size_t i = 0; i < sizeof VERSIONS / sizeof VERSIONS[0]; i++) {
        b.n = 0;
        put_header(&b, VERSIONS[i].v, 0, 0);
        expect_fail("version", &b, VERSIONS[i].needle);
    }
    for (size_t n = 4; n < 24; n++) {
        b.n = 0;
        put_header(&b, 3, 0, 0);
        b.n = n;
        expect_fail("short header", &b, "truncated");
    }
    static const uint64_t HUGE[] = {1ull << 60, UINT64_MAX, 1ull << 32, 3};
    for (size_t i = 0; i < sizeof HUGE / sizeof HUGE[0]; i++) {
        b.n = 0;
        put_header(&b, 3, 0, HUGE[i]);
        put_key(&b, "k", MLXR_GGUF_UINT8), put_u8(&b, 1);
        expect_fail("huge n_kv", &b, "n_kv");
        b.n = 0;
        put_header(&b, 3, HUGE[i], 0);
        put_one_tensor(&b, 1, (const uint64_t[]){1}, MLXR_DTYPE_F32, 0, 4);
        expect_fail("huge n_tensors", &b, "n_tensors");
    }
    free(b.p);
}

/* One kv (key `key`, written by the caller after this) then a valid tensor. */
static void kv_file(buf *b, const char *key, mlxr_gguf_type type) {
    b->n = 0;
    put_header(b, 3, 0, 1);
    put_key(b, key, type);
}

static void test_bad_kvs(void) {
    buf b = {0};
    kv_file(&b, "k", MLXR_GGUF_STRING), put_u64(&b, 1ull << 60), put(&b, "abc", 3);
    expect_fail("huge string", &b, "'k'");
    kv_file(&b, "k", MLXR_GGUF_STRING), put_u64(&b, UINT64_MAX);
    expect_fail("string length -1", &b, "'k'");
    b.n = 0;
    put_header(&b, 3, 0, 1), put_u64(&b, 1ull << 60), put(&b, "keykeykey", 9);
    expect_fail("huge key length", &b, "key");
    b.n = 0;
    put_header(&b, 3, 0, 1), put_u64(&b, 0), put_u32(&b, MLXR_GGUF_UINT8), put_le(&b, 0, 2);
    expect_fail("empty key", &b, "empty key");
    b.n = 0;
    put_header(&b, 3, 0, 1), put_strn(&b, "a\0b", 3), put_u32(&b, MLXR_GGUF_UINT8), put_u8(&b, 0);
    expect_fail("NUL in key", &b, "NUL");
    b.n = 0;
    put_header(&b, 3, 0, 1), put_u64(&b, 70000), put_zeros(&b, 70000);
    put_u32(&b, MLXR_GGUF_UINT8), put_u8(&b, 0);
    expect_fail("key too long", &b, "limit");
    static const uint32_t BAD_TYPES[] = {13, 255, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < sizeof BAD_TYPES / sizeof BAD_TYPES[0]; i++) {
        kv_file(&b, "odd.type", (mlxr_gguf_type)BAD_TYPES[i]), put_u64(&b, 0);
        expect_fail("unknown value type", &b, "odd.type");
        kv_file(&b, "odd.elem", MLXR_GGUF_ARRAY), put_arr_head(&b, BAD_TYPES[i], 0);
        expect_fail("unknown element type", &b, "odd.elem");
    }
    kv_file(&b, "flag", MLXR_GGUF_BOOL), put_u8(&b, 2);
    expect_fail("bool 2", &b, "flag");
    kv_file(&b, "flags", MLXR_GGUF_ARRAY), put_arr_head(&b, MLXR_GGUF_BOOL, 3);
    put_u8(&b, 1), put_u8(&b, 0), put_u8(&b, 7);
    expect_fail("bool element 7", &b, "flags");
    static const mlxr_gguf_type ELEMS[] = {MLXR_GGUF_UINT8, MLXR_GGUF_FLOAT64, MLXR_GGUF_STRING,
                                           MLXR_GGUF_ARRAY, MLXR_GGUF_BOOL};
    static const uint64_t COUNTS[] = {1ull << 60, UINT64_MAX, 1ull << 61, 100};
    for (size_t e = 0; e < sizeof ELEMS / sizeof ELEMS[0]; e++) {
        for (size_t c = 0; c < sizeof COUNTS / sizeof COUNTS[0]; c++) {
            kv_file(&b, "big.array", MLXR_GGUF_ARRAY), put_arr_head(&b, ELEMS[e], COUNTS[c]);
            put_zeros(&b, 64);
            expect_fail("huge array", &b, "big.array");
            /* the same count one level down */
            kv_file(&b, "big.inner", MLXR_GGUF_ARRAY), put_arr_head(&b, MLXR_GGUF_ARRAY, 2);
            put_arr_head(&b, MLXR_GGUF_UINT8, 0), put_arr_head(&b, ELEMS[e], COUNTS[c]);
            put_zeros(&b, 64);
            expect_fail("huge inner array", &b, "big.inner");
        }
    }
    b.n = 0;
    put_header(&b, 3, 0, 3);
    put_key(&b, "a", MLXR_GGUF_UINT8), put_u8(&b, 1);
    put_key(&b, "dup.key", MLXR_GGUF_UINT8), put_u8(&b, 1);
    put_key(&b, "dup.key", MLXR_GGUF_STRING), put_str(&b, "x");
    expect_fail("duplicate key", &b, "duplicate key 'dup.key'");
    free(b.p);
}

/* A file with general.alignment of `type` holding the bytes the caller writes next. */
static void align_file(buf *b, mlxr_gguf_type type) {
    b->n = 0;
    put_header(b, 3, 1, 1);
    put_key(b, "general.alignment", type);
}

static void test_bad_alignment(void) {
    buf b = {0};
    static const uint32_t BAD[] = {0, 3, 33, 48, 0x80000001u, 0xffffffffu};
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        align_file(&b, MLXR_GGUF_UINT32), put_u32(&b, BAD[i]);
        put_one_tensor(&b, 1, (const uint64_t[]){8}, MLXR_DTYPE_F32, 0, 32);
        expect_fail("bad alignment", &b, "general.alignment");
    }
    align_file(&b, MLXR_GGUF_UINT64), put_u64(&b, 32);
    put_one_tensor(&b, 1, (const uint64_t[]){8}, MLXR_DTYPE_F32, 0, 32);
    expect_fail("alignment as u64", &b, "uint32");
    align_file(&b, MLXR_GGUF_INT32), put_u32(&b, 32);
    put_one_tensor(&b, 1, (const uint64_t[]){8}, MLXR_DTYPE_F32, 0, 32);
    expect_fail("alignment as i32", &b, "uint32");
    align_file(&b, MLXR_GGUF_STRING), put_str(&b, "32");
    put_one_tensor(&b, 1, (const uint64_t[]){8}, MLXR_DTYPE_F32, 0, 32);
    expect_fail("alignment as string", &b, "general.alignment");
    /* a tensor offset that is not a multiple of the alignment */
    align_file(&b, MLXR_GGUF_UINT32), put_u32(&b, 64);
    put_one_tensor(&b, 1, (const uint64_t[]){8}, MLXR_DTYPE_F32, 32, 128);
    expect_fail("misaligned for 64", &b, "alignment 64");
    free(b.p);
}

/* One tensor named "t" with the given info; `data` bytes follow the padding. */
static void tensor_file(buf *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset,
                        size_t data) {
    b->n = 0;
    put_header(b, 3, 1, 0);
    put_one_tensor(b, n_dims, ne, type, offset, data);
}

static void test_bad_tensors(void) {
    buf b = {0};
    uint64_t ne4[4] = {4, 1, 1, 1};
    tensor_file(&b, 1, ne4, MLXR_DTYPE_F32, 0, 16);
    void *copy;
    mlxr_gguf *g;
    mlxr_err err;
    CHECK(open_exact(b.p, b.n, &copy, &g, &err) == MLXR_OK, "base tensor file: %s", err.msg);
    if (copy) close_exact(g, copy);
    tensor_file(&b, 0, ne4, MLXR_DTYPE_F32, 0, 16);
    expect_fail("n_dims 0", &b, "n_dims is 0");
    tensor_file(&b, 5, (const uint64_t[]){4, 1, 1, 1, 1}, MLXR_DTYPE_F32, 0, 16);
    expect_fail("n_dims 5", &b, "n_dims is 5");
    b.n = 0, put_header(&b, 3, 1, 0), put_str(&b, "t"), put_u32(&b, 0xffffffffu);
    put_zeros(&b, 64);
    expect_fail("n_dims -1", &b, "'t'");
    tensor_file(&b, 2, (const uint64_t[]){1ull << 32, 1ull << 32}, MLXR_DTYPE_F32, 0, 16);
    expect_fail("ne product overflow", &b, "overflows int64");
    tensor_file(&b, 4, (const uint64_t[]){2, 1ull << 31, 1ull << 31, 2}, MLXR_DTYPE_F32, 0, 16);
    expect_fail("ne product overflow 4d", &b, "overflows");
    tensor_file(&b, 1, (const uint64_t[]){1ull << 63}, MLXR_DTYPE_F32, 0, 16);
    expect_fail("negative ne", &b, "negative");
    tensor_file(&b, 2, (const uint64_t[]){4, UINT64_MAX}, MLXR_DTYPE_F32, 0, 16);
    expect_fail("ne -1", &b, "ne[1]");
    tensor_file(&b, 1, (const uint64_t[]){1ull << 62}, MLXR_DTYPE_F32, 0, 16);
    expect_fail("byte size overflow", &b, "'t'");
    tensor_file(&b, 2, (const uint64_t[]){1ull << 40, 1ull << 20}, MLXR_DTYPE_F32, 0, 16);
    expect_fail("byte size huge", &b, "'t'");
    tensor_file(&b, 1, (const uint64_t[]){31}, MLXR_DTYPE_Q4_0, 0, 32);
    expect_fail("ne0 not a block multiple", &b, "block size");
    static const uint32_t BAD_TYPES[] = {4, 5, 31, 39, 1000, 0xffffffffu};
    for (size_t i = 0; i < sizeof BAD_TYPES / sizeof BAD_TYPES[0]; i++) {
        b.n = 0;
        put_header(&b, 3, 2, 0);
        put_tinfo(&b, "ok", 1, ne4, MLXR_DTYPE_F32, 0);
        put_tinfo(&b, "blk.3.attn_q.weight", 1, ne4, BAD_TYPES[i], 32);
        put_pad(&b, 32), put_zeros(&b, 64);
        char needle[64];
        snprintf(needle, sizeof needle, "type %u", BAD_TYPES[i]);
        expect_fail("unknown tensor type", &b, needle);
        expect_fail("unknown tensor type", &b, "blk.3.attn_q.weight");
    }
    tensor_file(&b, 1, ne4, MLXR_DTYPE_F32, 4, 64);
    expect_fail("misaligned offset", &b, "not a multiple of the alignment 32");
    tensor_file(&b, 1, ne4, MLXR_DTYPE_F32, 0, 15);
    expect_fail("data one byte short", &b, "extends past end of file");
    tensor_file(&b, 1, ne4, MLXR_DTYPE_F32, 32, 32);
    expect_fail("data past end", &b, "tensor 't' extends past end of file (offset 96 + size 16");
    tensor_file(&b, 1, ne4, MLXR_DTYPE_F32, 64, 32);
    expect_fail("offset past end", &b, "starts past end of file");
    tensor_file(&b, 1, ne4, MLXR_DTYPE_F32, UINT64_MAX - 31, 32);
    expect_fail("offset near 2^64", &b, "starts past end");
    tensor_file(&b, 1, ne4, MLXR_DTYPE_F32, 1ull << 63, 32);
    expect_fail("offset 2^63", &b, "starts past end");
    /* the padding itself is missing: the data section would start past the end */
    b.n = 0;
    put_header(&b, 3, 1, 0);
    put_tinfo(&b, "t", 1, (const uint64_t[]){0}, MLXR_DTYPE_F32, 0);
    expect_fail("no room for the padding", &b, "past the end");
    /* names */
    b.n = 0;
    put_header(&b, 3, 3, 0);
    put_tinfo(&b, "a", 1, ne4, MLXR_DTYPE_F32, 0);
    put_tinfo(&b, "blk.0.dup", 1, ne4, MLXR_DTYPE_F32, 32);
    put_tinfo(&b, "blk.0.dup", 1, ne4, MLXR_DTYPE_F32, 64);
    put_pad(&b, 32), put_zeros(&b, 96);
    expect_fail("duplicate tensor", &b, "duplicate tensor name 'blk.0.dup'");
    char longname[300];
    memset(longname, 'x', 256), longname[256] = '\0';
    b.n = 0, put_header(&b, 3, 1, 0);
    put_tinfo(&b, longname, 1, ne4, MLXR_DTYPE_F32, 0), put_pad(&b, 32), put_zeros(&b, 16);
    expect_fail("long tensor name", &b, "limit");
    b.n = 0, put_header(&b, 3, 1, 0);
    put_tinfo(&b, "", 1, ne4, MLXR_DTYPE_F32, 0), put_pad(&b, 32), put_zeros(&b, 16);
    expect_fail("empty tensor name", &b, "empty");
    b.n = 0, put_header(&b, 3, 1, 0), put_u64(&b, 1ull << 60), put_zeros(&b, 64);
    expect_fail("huge tensor name length", &b, "tensor name");
    free(b.p);
}

/* ---- truncations and mutations of a real file ---------------------------------------------- */

typedef struct cuts {
    size_t *at;
    size_t n, cap;
} cuts;

static void cut_add(cuts *c, size_t at) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->at = realloc(c->at, c->cap * sizeof *c->at);
        if (!c->at) exit(1);
    }
    c->at[c->n++] = at;
}

/* Section boundaries of a value: its start, each element's start and length end, its end. */
static void value_cuts(cuts *c, const uint8_t *base, const mlxr_gguf_value *v, const uint8_t *at) {
    cut_add(c, (size_t)(at - base));
    if (v->type == MLXR_GGUF_STRING) cut_add(c, (size_t)(at - base) + 8);
    if (v->type != MLXR_GGUF_ARRAY) return;
    cut_add(c, (size_t)(at - base) + 4); /* after the element type */
    cut_add(c, (size_t)(v->v.arr.data - base));
    for (uint64_t i = 0; v->v.arr.offsets && i < v->v.arr.n; i++) {
        if (i == 16 && v->v.arr.n > 600) i = v->v.arr.n - 16; /* big vocabularies: both ends */
        const uint8_t *e = v->v.arr.data + v->v.arr.offsets[i];
        if (v->v.arr.type == MLXR_GGUF_ARRAY) {
            mlxr_gguf_value k = mlxr_gguf_arr_nested(v, i);
            value_cuts(c, base, &k, e);
        } else {
            cut_add(c, (size_t)(e - base));
            cut_add(c, (size_t)(e - base) + 8);
        }
    }
    cut_add(c, (size_t)(v->v.arr.data - base + v->v.arr.nbytes));
}

/* Every section boundary of an open file whose bytes start at base; returns the smallest
 * length that still opens (the end of the last tensor's data, or of the tensor infos). */
static size_t collect_cuts(cuts *c, const mlxr_gguf *g, const uint8_t *base) {
    for (size_t i = 0; i <= 32; i++)
        cut_add(c, i);
    for (int64_t i = 0; i < mlxr_gguf_n_kv(g); i++) {
        const mlxr_gguf_kv *kv = mlxr_gguf_kv_at(g, i);
        size_t k = (size_t)((const uint8_t *)kv->key.data - base);
        cut_add(c, k - 8), cut_add(c, k), cut_add(c, k + (size_t)kv->key.len);
        value_cuts(c, base, &kv->value, base + k + kv->key.len + 4);
    }
    size_t infos_end = 0, data_end = 0;
    for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
        const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
        size_t p = (size_t)((const uint8_t *)t->name.data - base) + (size_t)t->name.len;
        cut_add(c, p - t->name.len - 8), cut_add(c, p - t->name.len), cut_add(c, p);
        for (uint32_t d = 0; d <= t->n_dims; d++)
            cut_add(c, p + 4 + 8 * d); /* after n_dims, after each ne */
        infos_end = p + 4 + 8 * t->n_dims + 12;
        cut_add(c, infos_end - 8), cut_add(c, infos_end); /* after type, after offset */
        size_t d0 = (size_t)((const uint8_t *)t->data - base);
        cut_add(c, d0), cut_add(c, d0 + t->nbytes / 2), cut_add(c, d0 + t->nbytes);
        if (d0 + t->nbytes > data_end) data_end = d0 + t->nbytes;
    }
    if (mlxr_gguf_n_tensors(g) == 0) return mlxr_gguf_file_size(g);
    cut_add(c, (infos_end + mlxr_gguf_data_offset(g)) / 2); /* inside the padding */
    cut_add(c, mlxr_gguf_data_offset(g));
    return data_end;
}

/* Open the first `len` bytes (an exact-size copy): must fail iff len < min_ok. */
static int try_prefix(const uint8_t *file, size_t len, size_t min_ok) {
    void *copy;
    mlxr_gguf *g;
    mlxr_err err;
    mlxr_status st = open_exact(file, len, &copy, &g, &err);
    if (st == MLXR_OK) close_exact(g, copy);
    bool want_ok = len >= min_ok;
    if ((st == MLXR_OK) != want_ok || (st != MLXR_OK && !err.msg[0])) {
        fprintf(stderr, "prefix %zu (min %zu): status %d '%s'\n", len, min_ok, st, err.msg);
        return 1;
    }
    return 0;
}

static void test_truncations(const char *rel, size_t n_random, uint64_t *rng) {
    char *bytes;
    mlxr_gguf *g = open_real(rel, &bytes);
    if (!g) return;
    const uint8_t *file = (const uint8_t *)bytes;
    size_t size = mlxr_gguf_file_size(g);
    cuts c = {0};
    size_t min_ok = collect_cuts(&c, g, file);
    mlxr_gguf_close(g);
    int bad = 0, tried = 0;
    for (size_t i = 0; i < c.n; i++) {
        for (int d = -1; d <= 1; d++) {
            size_t len = c.at[i] + (size_t)d;
            if (c.at[i] == 0 && d < 0) continue;
            if (len >= size) continue;
            bad += try_prefix(file, len, min_ok), tried++;
        }
    }
    for (size_t i = 0; i < n_random; i++) {
        bad += try_prefix(file, test_rng_u64(rng) % size, min_ok), tried++;
    }
    CHECK(bad == 0, "%s: %d of %d truncations misbehaved", rel, bad, tried);
    CHECK(tried > 100, "%s: only %d truncations", rel, tried);
    free(c.at);
    free(bytes);
}

/* Random byte changes in the metadata of a real file: each must open or fail cleanly. The file
 * sits in an exact-size buffer that is changed in place and restored after each try. */
static void test_mutations(const char *rel, int n, uint64_t *rng) {
    size_t size;
    char *path = test_data_path(rel);
    char *bytes = test_read_file(path, &size);
    free(path);
    CHECK(bytes != NULL, "read %s", rel);
    if (!bytes) return;
    uint8_t *file = malloc(size);
    memcpy(file, bytes, size);
    free(bytes);
    size_t header = size < 20000 ? size : 20000; /* stories260K's infos end at 14373 */
    int opened = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        mlxr_gguf *g;
        mlxr_err err;
        uint8_t saved[8];
        size_t at[8];
        int k = 1 + (int)(test_rng_u64(rng) % 8);
        for (int j = 0; j < k; j++) {
            at[j] = test_rng_u64(rng) % header;
            saved[j] = file[at[j]];
            uint64_t r = test_rng_u64(rng);
            file[at[j]] = r & 1 ? (uint8_t)(r >> 8) : r & 2 ? 0xff : 0x00;
        }
        mlxr_err_clear(&err);
        if (mlxr_gguf_open_mem(file, size, &g, &err) == MLXR_OK) {
            check_structure("mutated", g, file);
            mlxr_gguf_close(g);
            opened++;
        } else {
            bad += err.msg[0] == '\0';
        }
        for (int j = k - 1; j >= 0; j--)
            file[at[j]] = saved[j];
    }
    CHECK(bad == 0, "%s: %d failures without a message", rel, bad);
    fprintf(stderr, "%s: %d of %d mutants opened\n", rel, opened, n);
    free(file);
}

int main(void) {
    uint64_t rng = test_seed();
    test_pydoc_f16();
    test_tensor_types();
    test_small_models();
    test_vocab_files();
    test_all_types();
    test_alignment();
    test_corners();
    test_bad_headers();
    test_bad_kvs();
    test_bad_alignment();
    test_bad_tensors();
    test_truncations("models/stories260K.gguf", 300, &rng);
    test_truncations("models/toy-q4_k_m.gguf", 50, &rng);
    test_truncations("tokenizer/ggml-vocab-bert-bge.gguf", 0, &rng);
    test_mutations("models/stories260K.gguf", 3000, &rng);
    return test_finish("gguf");
}
