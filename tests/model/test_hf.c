/*
 * test_hf.c - Hugging Face and MLX-format model directories (src/model/hf*.c):
 *  A. pydoc-7M's hf/ copy (config.json + model.safetensors + tokenizer.model), loaded as a
 *     directory and as a .safetensors path, against llama.cpp's references for pydoc-7M-f16
 *     (testdata/reference, an independent implementation on the GGUF): prompt ids, the greedy
 *     text byte for byte, teacher-forced top-5 logits within the reference README's 0.02 (its
 *     norms are the GGUF's rounded to F16; transformers on hf/ is within 0.009 of llama.cpp), the
 *     last prompt position's top-20. The tokenizer built from tokenizer.model gives the GGUF
 *     tokenizer's ids on the 46 tokenizer test inputs, the prompts and passages of pydoc text, and
 *     the same piece for every id.
 * *  B. MLX-format copies made by mlxr_hf_write_mlx (8-bit group 64, 4-bit group 64 in shards,
 *     4-bit group 32, 4-bit group 128 with BF16 scales): the weights load in their native MLX
 *     types (kernels/mlx_affine.h) with exactly the files' bytes per row, and decode bit for bit
 *     to mlxr_mlx_affine_dequant_ref of the files' tensors (scalar kernel table); the packing
 *     agrees bit for bit with tests/model/mlx_dequant.py (mlx's dequantization in plain Python);
 *     a copy with misaligned data gives the same logits bit for bit; and the logits stay near the
 *     F16 model's: over the teacher-forced steps of the 4 reference cases we measure max |dlogit|
 *     at the reference's top-5 ids and top-1 agreement with the F16 model (the products quantize
 *     activations to int8 blocks, so 8-bit sits where llama.cpp's Q8_0 does, not at F16).
 *  C. Hostile directories: truncated or lying safetensors, wrong or unsupported config.json
 *     values, missing tensors, bad tokenizer.model, bad shard index, inconsistent MLX tensors:
 *     each load fails with a status and a message naming what is wrong.
 */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/safetensors.h"
#include "kernels/kernels.h"
#include "kernels/mlx_affine.h"
#include "model/hf.h"
#include "model/model.h"
#include "mlxr.h"
#include "util/fp16.h"

#include "hf_test_util.h"

static const char *const CASES[] = {"dict_maps", "list_type", "open_file", "py311"};
#define N_CASES 4

/* ---- small helpers ---------------------------------------------------------------------------- */

static bool write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static int32_t *json_ids(json_t *arr, size_t *n) {
    *n = json_array_size(arr);
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

typedef struct ref_case {
    json_t *root;
    int32_t *prompt, *gen;
    size_t np, ng;
    char *ref;       /* the .ref file */
    const char *text; /* its generated text */
    size_t text_len;
    long n_ref;
} ref_case;

static bool load_case(const char *name, ref_case *rc) {
    memset(rc, 0, sizeof *rc);
    char rel[256], *path;
    snprintf(rel, sizeof rel, "reference/pydoc-7M-f16__%s.json", name);
    path = test_data_path(rel);
    rc->root = json_load_file(path, 0, NULL);
    free(path);
    snprintf(rel, sizeof rel, "reference/pydoc-7M-f16__%s.ref", name);
    path = test_data_path(rel);
    size_t len = 0;
    rc->ref = test_read_file(path, &len);
    free(path);
    CHECK(rc->root && rc->ref, "cannot read reference case %s", name);
    if (!rc->root || !rc->ref) return false;
    rc->prompt = json_ids(json_object_get(rc->root, "prompt_ids"), &rc->np);
    rc->gen = json_ids(json_object_get(rc->root, "generated_ids"), &rc->ng);
    const char *p = rc->ref;
    for (int k = 0; k < 3; k++) p = strchr(p, '\n') + 1;
    rc->n_ref = strtol(strchr(strchr(rc->ref, '\n') + 1, '\n') + 1, NULL, 10);
    rc->text = p;
    rc->text_len = len - (size_t)(p - rc->ref);
    return true;
}

static void free_case(ref_case *rc) {
    json_decref(rc->root);
    free(rc->prompt);
    free(rc->gen);
    free(rc->ref);
}

/* Teacher forcing: prompt + generated ids (but the last) in one batch; returns the logits of
 * positions np - 1 .. np + ng - 2 ([ng][n_vocab], malloc'ed), or NULL. */
static float *teacher_forced(mlxr_model *m, const ref_case *rc, int isa, const char *cs) {
    size_t n = rc->np + rc->ng - 1;
    int32_t *ids = malloc(n * sizeof *ids), *pos = malloc(n * sizeof *pos);
    int32_t *seq = calloc(n, sizeof *seq);
    int8_t *want = malloc(n);
    for (size_t i = 0; i < n; i++) {
        ids[i] = i < rc->np ? rc->prompt[i] : rc->gen[i - rc->np];
        pos[i] = (int32_t)i;
        want[i] = i + 1 >= rc->np;
    }
    mlxr_context_opts co = mlxr_context_default_opts();
    co.n_ctx = 512;
    co.n_batch = (int32_t)n;
    co.n_threads = 2;
    co.isa_max = isa;
    mlxr_context *c = NULL;
    mlxr_err err = {0};
    float *out = NULL;
    CHECK(mlxr_context_new(m, &co, &c, &err) == MLXR_OK, "%s: context: %s", cs, err.msg);
    mlxr_batch b = {(int32_t)n, ids, pos, seq, want};
    if (c && mlxr_decode(c, &b, &err) == MLXR_OK) {
        const int V = mlxr_model_get_info(m)->n_vocab;
        out = malloc(rc->ng * (size_t)V * sizeof *out);
        for (size_t i = 0; i < rc->ng; i++)
            memcpy(out + i * (size_t)V, mlxr_get_logits(c, (int32_t)(rc->np - 1 + i)),
                   (size_t)V * sizeof *out);
    } else {
        CHECK(false, "%s: decode: %s", cs, err.msg);
    }
    mlxr_context_free(c);
    free(ids);
    free(pos);
    free(seq);
    free(want);
    return out;
}

/* Greedy decoding token by token; returns the number of leading ids equal to the reference's and
 * checks the text when `exact`. */
static size_t greedy(mlxr_model *m, const ref_case *rc, bool exact, const char *cs) {
    const char *prompt = json_string_value(json_object_get(rc->root, "prompt"));
    int32_t ids[1024];
    size_t np = 0;
    mlxr_err err = {0};
    CHECK(mlxr_tokenize(m, prompt, strlen(prompt), true, false, ids, 1024, &np, &err) == MLXR_OK,
          "%s: tokenize: %s", cs, err.msg);
    CHECK(np == rc->np && !memcmp(ids, rc->prompt, np * sizeof *ids), "%s: prompt ids differ", cs);
    mlxr_context_opts co = mlxr_context_default_opts();
    co.n_ctx = 512;
    co.n_threads = 2;
    mlxr_context *c = NULL;
    CHECK(mlxr_context_new(m, &co, &c, &err) == MLXR_OK, "%s: context: %s", cs, err.msg);
    int32_t pos[1024], seq[1024] = {0};
    for (size_t i = 0; i < np; i++) pos[i] = (int32_t)i;
    mlxr_batch b = {(int32_t)np, ids, pos, seq, NULL};
    CHECK(c && mlxr_decode(c, &b, &err) == MLXR_OK, "%s: prompt decode: %s", cs, err.msg);
    char *text = malloc((size_t)rc->n_ref * 64 + 1);
    size_t tl = 0, same = 0;
    bool diverged = false;
    const int V = mlxr_model_get_info(m)->n_vocab;
    for (long i = 0; c && i < rc->n_ref; i++) {
        int32_t tok = argmax(mlxr_get_logits(c, i == 0 ? (int32_t)np - 1 : 0), V);
        if (tok != rc->gen[i]) diverged = true;
        if (!diverged) same++;
        size_t len = 0;
        CHECK(mlxr_token_to_piece(m, tok, text + tl, 64, &len, &err) == MLXR_OK, "%s: piece", cs);
        tl += len;
        int32_t p = (int32_t)(np + (size_t)i), s0 = 0;
        mlxr_batch one = {1, &tok, &p, &s0, NULL};
        CHECK(mlxr_decode(c, &one, &err) == MLXR_OK, "%s: decode: %s", cs, err.msg);
    }
    if (exact)
        CHECK(tl == rc->text_len && !memcmp(text, rc->text, tl),
              "%s: greedy text differs from the reference (%zu vs %zu bytes, %zu ids agree)", cs,
              tl, rc->text_len, same);
    free(text);
    mlxr_context_free(c);
    return same;
}

/* The logits of `lg` at [id, logit] pairs within bound; returns the largest |d|. */
static double cmp_top(const float *lg, json_t *top, double bound, const char *cs, int step) {
    double worst = 0;
    for (size_t k = 0; k < json_array_size(top); k++) {
        json_t *pair = json_array_get(top, k);
        int id = (int)json_integer_value(json_array_get(pair, 0));
        double ref = json_number_value(json_array_get(pair, 1));
        double d = fabs((double)lg[id] - ref);
        if (d > worst) worst = d;
        CHECK(d <= bound, "%s step %d id %d: logit %.5f vs reference %.5f", cs, step, id,
              (double)lg[id], ref);
    }
    return worst;
}

static mlxr_model *load(const char *path) {
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_model_load(path, NULL, &m, &err) == MLXR_OK, "load %s: %s", path, err.msg);
    return m;
}

/* ---- A: the F16 safetensors copy against llama.cpp's references ------------------------------- */

/* The F16 copy's teacher-forced logits of every case (part A), the base of part B's distances. */
static float *f16_logits[N_CASES];

/* n_cases: the first n of CASES; keep: store the logits in f16_logits. */
static void check_reference(mlxr_model *m, const char *what, int isa, bool with_greedy,
                            int n_cases, bool keep) {
    for (int k = 0; k < n_cases; k++) {
        ref_case rc;
        if (!load_case(CASES[k], &rc)) continue;
        char cs[128];
        snprintf(cs, sizeof cs, "%s %s", what, CASES[k]);
        if (with_greedy) greedy(m, &rc, true, cs);
        float *lg = teacher_forced(m, &rc, isa, cs);
        const int V = mlxr_model_get_info(m)->n_vocab;
        json_t *steps = json_object_get(rc.root, "steps");
        double worst = 0;
        for (size_t i = 0; lg && i < json_array_size(steps) && i < rc.ng; i++) {
            json_t *st = json_array_get(steps, i);
            const float *l = lg + i * (size_t)V;
            double w = cmp_top(l, json_object_get(st, "top"), 0.02, cs, (int)i);
            if (w > worst) worst = w;
            if (json_number_value(json_object_get(st, "margin")) > 0.04)
                CHECK(argmax(l, V) == json_integer_value(json_object_get(st, "id")),
                      "%s step %zu: top-1 differs", cs, i);
        }
        if (lg)
            cmp_top(lg, json_object_get(json_object_get(rc.root, "last_prompt_logits"), "top"),
                    0.02, cs, -1);
        fprintf(stderr, "  %-28s isa %d: teacher-forced max |dlogit| %.4f over %zu steps\n", cs,
                isa, worst, json_array_size(steps));
        if (keep) f16_logits[k] = lg;
        else free(lg);
        free_case(&rc);
    }
}

/* Inputs for the tokenizer comparison: the 46 test inputs, the prompts, pydoc passages. */
static void check_tokenizer(const char *hf_dir) {
    mlxr_model *g = NULL, *h = NULL;
    hf_vocab_pair(hf_dir, "hf", &g, &h);
    if (!g || !h) goto done;
    int n_diff = 0;
    int n_texts = hf_compare_texts(g, h, false, &n_diff);
    static int32_t b[4096];
    for (int k = 0; k < N_CASES; k++) {
        ref_case rc;
        if (!load_case(CASES[k], &rc)) continue;
        const char *p = json_string_value(json_object_get(rc.root, "prompt"));
        size_t nb = 0;
        mlxr_tokenize(h, p, strlen(p), true, false, b, 4096, &nb, NULL);
        n_diff += nb != rc.np || memcmp(b, rc.prompt, nb * sizeof *b) != 0;
        n_texts++;
        free_case(&rc);
    }
    /* fixed expectations from testdata/README.md (llama.cpp on the GGUF) */
    static const int32_t want[] = {1, 579, 1138, 13};
    size_t nb = 0;
    mlxr_tokenize(h, "import os\n", 10, true, false, b, 4096, &nb, NULL);
    CHECK(nb == 4 && !memcmp(b, want, sizeof want), "'import os\\n' tokenizes differently");
    CHECK(n_diff == 0 && n_texts > 100, "tokenizer.model vs GGUF: %d of %d texts differ", n_diff,
          n_texts);
    fprintf(stderr, "  tokenizer.model vs GGUF tokenizer: %d texts, %d differ\n", n_texts, n_diff);
done:
    mlxr_model_free(g);
    mlxr_model_free(h);
}

/* ---- B: MLX-format copies --------------------------------------------------------------------- */

/* Row r of the loaded weight w decoded to floats. */
static void weight_row(const mlxr_kernels *k, const mlxr_weight *w, int64_t r, float *out) {
    k->type[w->type].to_float((const uint8_t *)w->data + (size_t)r * w->row_bytes, out, w->ne0);
}

/* The MLX triple of `prefix` in dir (any shard). */
static bool mlx_matrix(const char *dir, const char *prefix, mlxr_st **keep, mlxr_mlx_matrix *mm,
                       int bits, int gs) {
    char path[4096];
    const mlxr_st_tensor *t[3] = {NULL, NULL, NULL};
    static const char *const part[3] = {"weight", "scales", "biases"};
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strstr(e->d_name, ".safetensors") || strstr(e->d_name, ".json")) continue;
        join(path, sizeof path, dir, e->d_name);
        mlxr_st *st = NULL;
        if (mlxr_st_open(path, &st, NULL) != MLXR_OK) continue;
        char name[256];
        snprintf(name, sizeof name, "%s.weight", prefix);
        if (!mlxr_st_find(st, name)) {
            mlxr_st_close(st);
            continue;
        }
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "%s.%s", prefix, part[i]);
            t[i] = mlxr_st_find(st, name);
        }
        *keep = st;
        break;
    }
    if (d) closedir(d);
    if (!t[0] || !t[1] || !t[2]) return false;
    mm->bits = bits;
    mm->group_size = gs;
    mm->scale_type = t[1]->dtype == MLXR_ST_BF16 ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16;
    mm->rows = t[0]->shape[0];
    mm->cols = t[0]->shape[1] * 32 / bits;
    mm->w = t[0]->data;
    mm->scales = t[1]->data;
    mm->biases = t[2]->data;
    return true;
}

/* Loaded weights against the files' dequantization; q/k rows are permuted (hf.h). */
static void check_mlx_weights(const mlxr_model *m, const char *dir, int bits, int gs) {
    mlxr_kernels k;
    mlxr_kernels_init(&k, MLXR_ISA_SCALAR);
    const struct {
        const char *prefix;
        const mlxr_weight *w;
        int heads;
    } ws[] = {
        {"model.embed_tokens", &m->tok_embd, 0},
        {"lm_head", &m->output, 0},
        {"model.layers.0.self_attn.q_proj", &m->layers[0].wq, m->info.n_head},
        {"model.layers.3.self_attn.k_proj", &m->layers[3].wk, m->info.n_head_kv},
        {"model.layers.5.mlp.down_proj", &m->layers[5].w_down, 0},
    };
    for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) {
        mlxr_st *st = NULL;
        mlxr_mlx_matrix mm;
        bool ok = mlx_matrix(dir, ws[i].prefix, &st, &mm, bits, gs);
        CHECK(ok, "%s: no MLX tensors in %s", ws[i].prefix, dir);
        if (!ok) continue;
        const mlxr_weight *w = ws[i].w;
        /* the native type of the file's bits, group size and scale type, no conversion */
        CHECK(w->type == mlxr_mlx_dtype(bits, gs, mm.scale_type) &&
                  w->row_bytes * (size_t)w->ne1 ==
                      (size_t)mm.rows * (size_t)(mm.cols * bits / 8 + mm.cols / gs * 4),
              "%s loaded as %s (%zu bytes a row)", ws[i].prefix, mlxr_dtype_name(w->type),
              w->row_bytes);
        CHECK(w->ne0 == mm.cols && w->ne1 == mm.rows, "%s shape", ws[i].prefix);
        float *a = malloc((size_t)mm.cols * sizeof *a), *b = malloc((size_t)mm.cols * sizeof *b);
        int64_t bad = 0;
        for (int64_t r = 0; r < mm.rows && w->ne0 == mm.cols; r++) {
            int64_t src = r;
            if (ws[i].heads) {
                int64_t D = mm.rows / ws[i].heads, j = r % D;
                src = r / D * D + (j % 2) * (D / 2) + j / 2;
            }
            mlxr_mlx_row row = mlxr_mlx_matrix_row(&mm, src);
            mlxr_mlx_affine_dequant_ref(&row, a);
            weight_row(&k, w, r, b);
            for (int64_t c = 0; c < mm.cols; c++) {
                bad += memcmp(&a[c], &b[c], 4) != 0;
            }
        }
        CHECK(bad == 0, "%s (%d-bit, group %d): %lld loaded values differ from the files' "
              "dequantization", ws[i].prefix, bits, gs, (long long)bad);
        free(a);
        free(b);
        mlxr_st_close(st);
    }
}

/* The files' packing against the Python rendering of mlx's dequantization. */
static void check_mlx_python(const char *dir, int bits, int gs) {
    const char *prefixes[] = {"model.layers.1.mlp.up_proj", "model.layers.4.self_attn.v_proj"};
    for (int i = 0; i < 2; i++) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "python3 '%s/tests/model/mlx_dequant.py' '%s' '%s' 3",
                 MLXR_SOURCE_DIR, dir, prefixes[i]);
        FILE *p = popen(cmd, "r");
        CHECK(p != NULL, "cannot run %s", cmd);
        if (!p) continue;
        mlxr_st *st = NULL;
        mlxr_mlx_matrix mm;
        bool ok = mlx_matrix(dir, prefixes[i], &st, &mm, bits, gs);
        float *a = malloc((size_t)mm.cols * sizeof *a);
        int64_t n = 0, bad = 0;
        for (int64_t r = 0; ok && r < 3; r++) {
            mlxr_mlx_row row = mlxr_mlx_matrix_row(&mm, r);
            mlxr_mlx_affine_dequant_ref(&row, a);
            for (int64_t c = 0; c < mm.cols; c++) {
                unsigned int u;
                if (fscanf(p, "%8x", &u) != 1) {
                    bad++;
                    break;
                }
                uint32_t mine;
                memcpy(&mine, &a[c], 4);
                bad += mine != u;
                n++;
            }
        }
        int rc = pclose(p);
        CHECK(ok && rc == 0 && bad == 0 && n == 3 * mm.cols,
              "%s (%d-bit, group %d): python dequantization differs in %lld of %lld values "
              "(exit %d)", prefixes[i], bits, gs, (long long)bad, (long long)n, rc);
        free(a);
        mlxr_st_close(st);
    }
}

static void distance(mlxr_model *m, double *worst_out, double *top1, size_t *steps_out);
static void write_safetensors_ex(const char *hf_dir, const char *dir, void (*edit)(json_t *hdr),
                                 size_t misalign, bool to_bf16);

/* The MLX copy in dir (one model.safetensors) with its data shifted by 2 bytes: the loader reads
 * the words and halves through an aligned temporary copy; the logits must not change by a bit. */
static void check_mlx_misaligned(mlxr_model *m, const char *dir) {
    char mis[4200];
    snprintf(mis, sizeof mis, "%s-misaligned", dir);
    const char *const no_st[] = {"model.safetensors", NULL};
    make_dir(dir, mis, no_st);
    write_safetensors_ex(dir, mis, NULL, 2, false);
    mlxr_model *mm = load(mis);
    ref_case rc;
    if (mm && load_case(CASES[0], &rc)) {
        float *a = teacher_forced(m, &rc, 0, "mlx aligned"), *b = teacher_forced(mm, &rc, 0, mis);
        CHECK(mm->layers[1].w_up.type == m->layers[1].w_up.type && a && b &&
                  !memcmp(a, b, rc.ng * (size_t)m->info.n_vocab * sizeof *a),
              "misaligned MLX copy: logits differ from the aligned copy's");
        free(a);
        free(b);
        free_case(&rc);
    }
    mlxr_model_free(mm);
    rm_tree(mis);
}

typedef struct mlx_variant {
    const char *src; /* "" for hf/, else a subfolder of tmp holding the source copy */
    int bits, gs;
    size_t shard_bytes;
    double max_dlogit; /* bound on |dlogit| vs the F16 model at the reference's top-5 ids */
    double min_top1;   /* fraction of teacher-forced steps whose top-1 equals the F16 model's */
} mlx_variant;

static void check_mlx(const char *hf_dir, const char *tmp, const mlx_variant *v) {
    char dir[4096], src[4096];
    snprintf(dir, sizeof dir, "%s/mlx-%db-g%d%s", tmp, v->bits, v->gs, v->src);
    snprintf(src, sizeof src, "%s%s%s", *v->src ? tmp : hf_dir, *v->src ? "/" : "", v->src);
    mlxr_err err = {0};
    mlxr_status st = mlxr_hf_write_mlx(src, dir, v->bits, v->gs, v->shard_bytes, &err);
    CHECK(st == MLXR_OK, "write %s: %s", dir, err.msg);
    if (st != MLXR_OK) return;
    if (v->shard_bytes) {
        char idx[4200];
        join(idx, sizeof idx, dir, "model.safetensors.index.json");
        CHECK(access(idx, R_OK) == 0, "%s: no shard index", dir);
    }
    mlxr_model *m = load(dir);
    if (!m) return;
    check_mlx_weights(m, dir, v->bits, v->gs);
    check_mlx_python(dir, v->bits, v->gs);
    if (v->bits == 4 && v->gs == 32) check_mlx_misaligned(m, dir);
    double worst, top1;
    size_t steps;
    distance(m, &worst, &top1, &steps);
    fprintf(stderr,
            "  mlx %d-bit group %3d%s%s: vs F16 over %zu teacher-forced steps: max |dlogit| %.3f "
            "(bound %.2f), top-1 agreement %.3f (bound %.2f)\n",
            v->bits, v->gs, v->shard_bytes ? " (sharded)" : "", *v->src ? " from bf16/" : "",
            steps, worst, v->max_dlogit, top1, v->min_top1);
    if (v->bits == 8) { /* informative: how far 8-bit follows the reference's greedy ids */
        ref_case rc;
        if (load_case("dict_maps", &rc)) {
            size_t same = greedy(m, &rc, false, "mlx 8-bit dict_maps");
            fprintf(stderr, "  mlx 8-bit dict_maps: %zu of %ld greedy ids equal the reference's\n",
                    same, rc.n_ref);
            free_case(&rc);
        }
    }
    CHECK(worst <= v->max_dlogit, "%d-bit g%d: max |dlogit| %.3f > %.3f", v->bits, v->gs, worst,
          v->max_dlogit);
    CHECK(top1 >= v->min_top1, "%d-bit g%d: top-1 agreement %.3f < %.3f", v->bits, v->gs, top1,
          v->min_top1);
    mlxr_model_free(m);
}

/* For scale: llama.cpp's own quantizations of the same model (llama-quantize from the F16 GGUF)
 * measured the same way against the F16 copy. */
static void gguf_context(void) {
    const char *files[] = {"models/pydoc-7M/pydoc-7M-q8_0.gguf",
                           "models/pydoc-7M/pydoc-7M-q4_0.gguf"};
    for (int i = 0; i < 2; i++) {
        char *p = test_data_path(files[i]);
        mlxr_model *m = load(p);
        double worst, top1;
        size_t steps;
        if (m) {
            distance(m, &worst, &top1, &steps);
            fprintf(stderr, "  (for scale) %s vs the F16 copy: max |dlogit| %.3f, top-1 agreement "
                    "%.3f\n", files[i], worst, top1);
        }
        mlxr_model_free(m);
        free(p);
    }
}

/* m against the F16 copy over the teacher-forced steps of the 4 reference cases: the largest
 * |dlogit| at the reference's top-5 ids and the fraction of equal top-1 ids. */
static void distance(mlxr_model *m, double *worst_out, double *top1, size_t *steps_out) {
    const int V = m->info.n_vocab;
    double worst = 0;
    size_t steps = 0, agree = 0;
    for (int k = 0; k < N_CASES; k++) {
        ref_case rc;
        if (!load_case(CASES[k], &rc)) continue;
        char cs[160];
        snprintf(cs, sizeof cs, "%s %s", m->name, CASES[k]);
        float *a = teacher_forced(m, &rc, 0, cs), *b = f16_logits[k];
        json_t *js = json_object_get(rc.root, "steps");
        for (size_t i = 0; a && b && i < rc.ng; i++) {
            const float *la = a + i * (size_t)V, *lb = b + i * (size_t)V;
            json_t *top = json_object_get(json_array_get(js, i), "top");
            for (size_t t = 0; t < json_array_size(top); t++) {
                int id = (int)json_integer_value(json_array_get(json_array_get(top, t), 0));
                double d = fabs((double)la[id] - lb[id]);
                if (d > worst) worst = d;
            }
            agree += argmax(la, V) == argmax(lb, V);
            steps++;
        }
        free(a);
        free_case(&rc);
    }
    *worst_out = worst;
    *top1 = steps ? (double)agree / (double)steps : 0;
    *steps_out = steps;
}

/* ---- C: hostile inputs ------------------------------------------------------------------------ */

static void expect_fail(const char *dir, mlxr_status want, const char *needle, const char *what) {
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    mlxr_status st = mlxr_model_load(dir, NULL, &m, &err);
    CHECK(st == want && m == NULL && strstr(err.msg, needle),
          "%s: status %d (want %d), message '%s' (want '%s')", what, st, want, err.msg, needle);
    if (st == want) fprintf(stderr, "  %-34s -> %s\n", what, err.msg);
    mlxr_model_free(m);
}

/* config.json of hf/ with key set to the JSON text `value` (NULL: removed). */
static void write_config(const char *hf_dir, const char *dir, const char *key, const char *value) {
    char p[4096];
    join(p, sizeof p, hf_dir, "config.json");
    json_t *cfg = json_load_file(p, 0, NULL);
    if (value) json_object_set_new(cfg, key, json_loads(value, JSON_DECODE_ANY, NULL));
    else json_object_del(cfg, key);
    join(p, sizeof p, dir, "config.json");
    json_dump_file(cfg, p, JSON_INDENT(2));
    json_decref(cfg);
}

/* model.safetensors of hf/ with its header edited by `edit` (may be NULL), `misalign` extra
 * header bytes (shifting all data by that much), and, with to_bf16, every F16 tensor as BF16. */
static void write_safetensors_ex(const char *hf_dir, const char *dir, void (*edit)(json_t *hdr),
                                 size_t misalign, bool to_bf16) {
    char p[4096];
    join(p, sizeof p, hf_dir, "model.safetensors");
    size_t len = 0;
    char *data = test_read_file(p, &len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | (uint8_t)data[i];
    json_t *hdr = json_loadb(data + 8, (size_t)n, 0, NULL);
    if (edit) edit(hdr);
    if (to_bf16) {
        const char *key;
        json_t *v;
        json_object_foreach(hdr, key, v) {
            if (strcmp(key, "__metadata__") != 0) json_object_set_new(v, "dtype", json_string("BF16"));
        }
        uint8_t *d = (uint8_t *)data + 8 + n;
        for (size_t i = 0; i + 1 < len - 8 - (size_t)n; i += 2) {
            uint16_t h = (uint16_t)(d[i] | d[i + 1] << 8);
            uint16_t b = mlxr_fp32_to_bf16(mlxr_fp16_to_fp32(h));
            d[i] = (uint8_t)b;
            d[i + 1] = (uint8_t)(b >> 8);
        }
    }
    char *text = json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    size_t hl = strlen(text), padded = (hl + 7) / 8 * 8 + misalign;
    size_t total = 8 + padded + (len - 8 - (size_t)n);
    char *out = malloc(total);
    for (int i = 0; i < 8; i++) out[i] = (char)((uint64_t)padded >> (8 * i));
    memcpy(out + 8, text, hl);
    memset(out + 8 + hl, ' ', padded - hl);
    memcpy(out + 8 + padded, data + 8 + n, len - 8 - (size_t)n);
    join(p, sizeof p, dir, "model.safetensors");
    CHECK(write_file(p, out, total), "cannot write %s", p);
    free(out);
    free(text);
    free(data);
}

static void write_safetensors(const char *hf_dir, const char *dir, void (*edit)(json_t *hdr)) {
    write_safetensors_ex(hf_dir, dir, edit, 0, false);
}

static void edit_offsets(json_t *h) { /* one tensor claims bytes beyond the buffer */
    json_t *e = json_object_get(h, "model.norm.weight");
    json_object_set_new(e, "data_offsets", json_pack("[I,I]", (json_int_t)1 << 40,
                                                     ((json_int_t)1 << 40) + 512));
}
static void edit_shape(json_t *h) { /* same byte count, transposed shape */
    json_object_set_new(json_object_get(h, "model.layers.2.mlp.down_proj.weight"), "shape",
                        json_pack("[i,i]", 768, 256));
}
static void edit_dtype(json_t *h) { /* same size, an integer type for a norm */
    json_object_set_new(json_object_get(h, "model.layers.1.input_layernorm.weight"), "dtype",
                        json_string("I16"));
}
static void edit_missing(json_t *h) {
    json_object_del(h, "model.layers.5.mlp.up_proj.weight");
}
static void edit_overlap(json_t *h) { /* two tensors share bytes */
    json_t *a = json_object_get(h, "model.layers.0.self_attn.k_proj.weight");
    json_t *b = json_object_get(h, "model.layers.0.self_attn.v_proj.weight");
    json_object_set(b, "data_offsets", json_object_get(a, "data_offsets"));
}

static void check_hostile(const char *hf_dir, const char *tmp) {
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s/bad", tmp);
    const char *const no_st[] = {"model.safetensors", NULL};
    const char *const no_cfg[] = {"config.json", NULL};
    const char *const no_tok[] = {"tokenizer.model", NULL};

    /* safetensors */
    make_dir(hf_dir, dir, no_st);
    {
        char src[4096];
        join(src, sizeof src, hf_dir, "model.safetensors");
        size_t len = 0;
        char *data = test_read_file(src, &len);
        join(p, sizeof p, dir, "model.safetensors");
        write_file(p, data, len / 2);
        expect_fail(dir, MLXR_ERR_FORMAT, "outside", "truncated safetensors");
        write_file(p, data, 5);
        expect_fail(dir, MLXR_ERR_FORMAT, "shorter than", "5-byte safetensors");
        memcpy(data, "\xff\xff\xff\xff\xff\xff\xff\x7f", 8);
        write_file(p, data, len);
        expect_fail(dir, MLXR_ERR_FORMAT, "does not fit", "huge header length");
        free(data);
    }
    write_safetensors(hf_dir, dir, edit_offsets);
    expect_fail(dir, MLXR_ERR_FORMAT, "model.norm.weight", "offsets beyond the data");
    write_safetensors(hf_dir, dir, edit_shape);
    expect_fail(dir, MLXR_ERR_FORMAT, "model.layers.2.mlp.down_proj.weight", "transposed shape");
    write_safetensors(hf_dir, dir, edit_dtype);
    expect_fail(dir, MLXR_ERR_FORMAT, "model.layers.1.input_layernorm.weight", "integer norm");
    write_safetensors(hf_dir, dir, edit_missing);
    expect_fail(dir, MLXR_ERR_FORMAT, "model.layers.5.mlp.up_proj.weight", "missing tensor");
    write_safetensors(hf_dir, dir, edit_overlap);
    expect_fail(dir, MLXR_ERR_FORMAT, "overlap", "overlapping tensors");
    join(p, sizeof p, dir, "model.safetensors");
    unlink(p);
    expect_fail(dir, MLXR_ERR_IO, "model.safetensors", "no safetensors");

    /* config.json */
    make_dir(hf_dir, dir, no_cfg);
    const struct {
        const char *key, *value;
        mlxr_status st;
        const char *needle;
    } cfgs[] = {
        {"vocab_size", "8192", MLXR_ERR_FORMAT, "model.embed_tokens.weight"},
        {"hidden_size", NULL, MLXR_ERR_FORMAT, "'hidden_size' is missing"},
        {"hidden_size", "\"256\"", MLXR_ERR_FORMAT, "not an integer"},
        {"num_attention_heads", "3", MLXR_ERR_FORMAT, "not a multiple"},
        {"num_key_value_heads", "4", MLXR_ERR_FORMAT, "k_proj"},
        {"intermediate_size", "1024", MLXR_ERR_FORMAT, "gate_proj"},
        {"num_hidden_layers", "7", MLXR_ERR_FORMAT, "model.layers.6"},
        {"num_hidden_layers", "100000000", MLXR_ERR_FORMAT, "out of range"},
        {"vocab_size", "100", MLXR_ERR_FORMAT, "vocab_size 100"},
        {"vocab_size", "16000000", MLXR_ERR_FORMAT, "far beyond"},
        {"head_dim", "32", MLXR_ERR_UNSUPPORTED, "head_dim"},
        {"rms_norm_eps", "-1", MLXR_ERR_FORMAT, "rms_norm_eps"},
        {"rope_parameters", "{\"rope_type\": \"llama3\", \"factor\": 8.0}", MLXR_ERR_UNSUPPORTED,
         "llama3"},
        {"model_type", "\"qwen2\"", MLXR_ERR_UNSUPPORTED, "Qwen2"},
        {"model_type", "\"gpt2\"", MLXR_ERR_UNSUPPORTED, "gpt2"},
        {"attention_bias", "true", MLXR_ERR_UNSUPPORTED, "biases"},
        {"quantization", "[4]", MLXR_ERR_FORMAT, "quantization"},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        write_config(hf_dir, dir, cfgs[i].key, cfgs[i].value);
        char what[128];
        snprintf(what, sizeof what, "config %s = %s", cfgs[i].key,
                 cfgs[i].value ? cfgs[i].value : "(none)");
        expect_fail(dir, cfgs[i].st, cfgs[i].needle, what);
    }
    join(p, sizeof p, dir, "config.json");
    write_file(p, "{\"hidden_size\": ", 16);
    expect_fail(dir, MLXR_ERR_FORMAT, "config.json", "truncated config.json");
    unlink(p);
    expect_fail(dir, MLXR_ERR_IO, "config.json", "no config.json");

    /* tokenizer.model */
    make_dir(hf_dir, dir, no_tok);
    {
        char src[4096];
        join(src, sizeof src, hf_dir, "tokenizer.model");
        size_t len = 0;
        char *data = test_read_file(src, &len);
        join(p, sizeof p, dir, "tokenizer.model");
        write_file(p, data, len - 3);
        expect_fail(dir, MLXR_ERR_FORMAT, "tokenizer.model", "truncated tokenizer.model");
        write_file(p, "\x0a\xff\xff\xff\xff\x0f", 6);
        expect_fail(dir, MLXR_ERR_FORMAT, "tokenizer.model", "huge protobuf length");
        free(data);
        unlink(p);
        /* without tokenizer.model the tokenizer.json is used (tests/model/test_hf_tokjson.c);
         * with neither there is no tokenizer */
        join(p, sizeof p, dir, "tokenizer.json");
        unlink(p);
        expect_fail(dir, MLXR_ERR_IO, "tokenizer.model", "no tokenizer.model or tokenizer.json");
    }

    /* shard index naming a file outside the directory */
    make_dir(hf_dir, dir, no_st);
    join(p, sizeof p, dir, "model.safetensors.index.json");
    const char *idx = "{\"weight_map\": {\"lm_head.weight\": \"../model.safetensors\"}}";
    write_file(p, idx, strlen(idx));
    expect_fail(dir, MLXR_ERR_FORMAT, "not a plain file name", "index with ../");
    rm_tree(dir);
}

/* MLX-specific: an MLX copy whose config disagrees with its tensors. */
static void check_hostile_mlx(const char *tmp) {
    char src[4096], dir[4096], p[4200], a[4200], b[4200];
    snprintf(src, sizeof src, "%s/mlx-8b-g64", tmp);
    snprintf(dir, sizeof dir, "%s/bad-mlx", tmp);
    const char *const files[] = {"model.safetensors", "tokenizer.model", "tokenizer_config.json"};
    const struct {
        const char *quant;
        mlxr_status st;
        const char *needle;
    } qs[] = {
        {"{\"group_size\": 64, \"bits\": 4}", MLXR_ERR_FORMAT, "expected U32"},
        {"{\"group_size\": 32, \"bits\": 8}", MLXR_ERR_FORMAT, ".scales"},
        {"{\"group_size\": 64, \"bits\": 3}", MLXR_ERR_UNSUPPORTED, "3 bits"},
        {"{\"group_size\": 48, \"bits\": 8}", MLXR_ERR_UNSUPPORTED, "group size 48"},
        {"{\"bits\": 8}", MLXR_ERR_FORMAT, "bits/group_size"},
        {"null", MLXR_ERR_FORMAT, "no quantization"},
        {"{\"group_size\": 32, \"bits\": 4, \"mode\": \"mxfp4\"}", MLXR_ERR_UNSUPPORTED, "mxfp4"},
    };
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        rm_tree(dir);
        mkdir(dir, 0777);
        for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
            join(a, sizeof a, src, files[k]);
            join(b, sizeof b, dir, files[k]);
            CHECK(symlink(a, b) == 0, "symlink %s", b);
        }
        join(p, sizeof p, src, "config.json");
        json_t *cfg = json_load_file(p, 0, NULL);
        json_object_set_new(cfg, "quantization", json_loads(qs[i].quant, JSON_DECODE_ANY, NULL));
        json_object_del(cfg, "quantization_config");
        join(p, sizeof p, dir, "config.json");
        json_dump_file(cfg, p, 0);
        json_decref(cfg);
        char what[128];
        snprintf(what, sizeof what, "mlx quantization %s", qs[i].quant);
        expect_fail(dir, qs[i].st, qs[i].needle, what);
    }
    rm_tree(dir);
}

/* Other layouts of the same F16 weights: data misaligned by 2 bytes (copied at load: the logits
 * must not change by a bit), a BF16 copy (used in place; the weights' BF16 rounding moves the
 * logits, measured), tied embeddings (the classifier is then the embedding). The BF16 copy stays
 * in tmp/bf16 for part B. */
static void check_variants(const char *hf_dir, const char *tmp) {
    char dir[4096];
    const char *const no_st[] = {"model.safetensors", NULL};
    snprintf(dir, sizeof dir, "%s/misaligned", tmp);
    make_dir(hf_dir, dir, no_st);
    write_safetensors_ex(hf_dir, dir, NULL, 2, false);
    mlxr_model *m = load(dir);
    ref_case rc;
    if (m && load_case(CASES[0], &rc)) {
        CHECK(m->layers[0].wq.type == MLXR_DTYPE_F16 && (uintptr_t)m->layers[0].wv.data % 4 == 0,
              "misaligned copy: weights not realigned");
        float *lg = teacher_forced(m, &rc, 0, "misaligned");
        CHECK(lg && !memcmp(lg, f16_logits[0], rc.ng * (size_t)m->info.n_vocab * sizeof *lg),
              "misaligned copy: logits differ from the aligned copy's");
        free(lg);
        free_case(&rc);
    }
    mlxr_model_free(m);
    rm_tree(dir);

    snprintf(dir, sizeof dir, "%s/bf16", tmp);
    make_dir(hf_dir, dir, no_st);
    write_safetensors_ex(hf_dir, dir, NULL, 0, true);
    m = load(dir);
    if (m) {
        CHECK(m->layers[2].w_up.type == MLXR_DTYPE_BF16 && m->tok_embd.type == MLXR_DTYPE_BF16,
              "bf16 copy: weights not BF16");
        double worst, top1;
        size_t steps;
        distance(m, &worst, &top1, &steps);
        fprintf(stderr, "  bf16 copy vs F16 over %zu steps: max |dlogit| %.3f, top-1 agreement "
                "%.3f\n", steps, worst, top1);
        CHECK(worst < 0.2 && top1 > 0.97, "bf16 copy: too far from F16 (%.3f, %.3f)", worst, top1);
    }
    mlxr_model_free(m);

    snprintf(dir, sizeof dir, "%s/tied", tmp);
    const char *const no_cfg[] = {"config.json", NULL};
    make_dir(hf_dir, dir, no_cfg);
    write_config(hf_dir, dir, "tie_word_embeddings", "true");
    m = load(dir);
    CHECK(m && m->output.data == m->tok_embd.data, "tied embeddings: output is not the embedding");
    mlxr_model_free(m);
    rm_tree(dir);
}

/* tokenizer_config.json's added tokens, chat template and flags, generation_config.json's EOS
 * list, on a vocabulary-only load (config vocab_size 4100: 4 ids past the 4096 pieces). */
static void check_tokenizer_config(const char *hf_dir, const char *tmp) {
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s/added", tmp);
    const char *const skip[] = {"config.json", "tokenizer_config.json", NULL};
    make_dir(hf_dir, dir, skip);
    write_config(hf_dir, dir, "vocab_size", "4100");
    const char *tc =
        "{\"add_bos_token\": true, \"add_eos_token\": true, \"model_max_length\": "
        "1000000000000000019884624838656, \"chat_template\": \"{{ bos_token }}{% for m in "
        "messages %}[{{ m.role }}]{{ m.content }}{% endfor %}\", \"added_tokens_decoder\": {"
        "\"4096\": {\"content\": \"<|im_start|>\", \"special\": true}, "
        "\"4097\": {\"content\": \"<tool>\", \"special\": false}, "
        "\"0\": {\"content\": \"<unk>\", \"special\": true}, "
        "\"9999\": {\"content\": \"<ignored>\", \"special\": true}}}";
    join(p, sizeof p, dir, "tokenizer_config.json");
    write_file(p, tc, strlen(tc));
    const char *gc = "{\"bos_token_id\": 1, \"eos_token_id\": [2, 4096]}";
    join(p, sizeof p, dir, "generation_config.json");
    write_file(p, gc, strlen(gc));
    mlxr_load_opts vo = {0};
    vo.vocab_only = true;
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_model_load(dir, &vo, &m, &err) == MLXR_OK, "added tokens: %s", err.msg);
    if (!m) return;
    CHECK(mlxr_model_get_info(m)->n_vocab == 4100, "added tokens: n_vocab %d",
          mlxr_model_get_info(m)->n_vocab);
    int32_t ids[64];
    size_t n = 0;
    mlxr_tokenize(m, "<|im_start|>hi", 14, false, true, ids, 64, &n, NULL);
    CHECK(n >= 1 && ids[0] == 4096, "'<|im_start|>' with parse_special: first id %d", n ? ids[0] : -1);
    mlxr_tokenize(m, "<|im_start|>hi", 14, false, false, ids, 64, &n, NULL);
    CHECK(n >= 1 && ids[0] != 4096, "'<|im_start|>' without parse_special matched the control token");
    mlxr_tokenize(m, "a<tool>b", 8, true, false, ids, 64, &n, NULL);
    bool tool = false;
    for (size_t i = 0; i < n; i++) tool |= ids[i] == 4097;
    CHECK(tool && ids[0] == 1 && ids[n - 1] == 2, "user-defined '<tool>' / BOS / EOS (add_eos_token)");
    CHECK(mlxr_token_is_eog(m, 2) && mlxr_token_is_eog(m, 4096), "EOS 2 and 4096 should end generation");
    size_t len = 0;
    char piece[64];
    CHECK(mlxr_token_to_piece(m, 4097, piece, sizeof piece, &len, NULL) == MLXR_OK && len == 6 &&
              !memcmp(piece, "<tool>", 6),
          "piece of 4097");
    char *out = NULL;
    size_t out_len = 0;
    const char *msgs = "[{\"role\": \"user\", \"content\": \"hi\"}]";
    CHECK(mlxr_chat_apply_template(m, msgs, strlen(msgs), false, &out, &out_len, &err) == MLXR_OK &&
              out && !strcmp(out, "<s>[user]hi"),
          "chat template from tokenizer_config.json: '%s' (%s)", out ? out : "", err.msg);
    mlxr_free(out);
    mlxr_model_free(m);
    rm_tree(dir);
}

int main(void) {
    char *hf_dir = test_data_path("models/pydoc-7M/hf");
    char tmpl[] = "/tmp/mlxr-test-hf-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    CHECK(tmp != NULL, "mkdtemp: %s", strerror(errno));
    if (!tmp) return test_finish("model_hf");
    char cfg[4200];
    join(cfg, sizeof cfg, hf_dir, "config.json");
    /* without the Hugging Face copy nothing below means anything (part B compares with part A's
     * logits): one failure instead of a cascade */
    CHECK(access(cfg, R_OK) == 0, "missing test data %s", cfg);
    if (access(cfg, R_OK) != 0) {
        rm_tree(tmp);
        free(hf_dir);
        return test_finish("model_hf");
    }

    /* A */
    mlxr_model *f16 = load(hf_dir);
    if (f16) {
        CHECK(f16->gguf == NULL && f16->tok_embd.type == MLXR_DTYPE_F16 &&
                  f16->layers[0].wv.type == MLXR_DTYPE_F16,
              "hf/ should load as F16 matrices");
        check_reference(f16, "hf", 0, true, N_CASES, true);
        check_reference(f16, "hf scalar", 1, false, 1, false); /* the scalar kernels too */
    }
    char st_path[4200];
    join(st_path, sizeof st_path, hf_dir, "model.safetensors");
    mlxr_model *f16b = load(st_path);
    if (f16b) {
        ref_case rc;
        if (load_case("dict_maps", &rc)) {
            greedy(f16b, &rc, true, "hf/model.safetensors dict_maps");
            free_case(&rc);
        }
    }
    mlxr_model_free(f16b);
    check_tokenizer(hf_dir);
    check_tokenizer_config(hf_dir, tmp);

    /* B: bounds set from measured values with room (see the printed numbers) */
    if (f16 && f16_logits[N_CASES - 1]) {
        const mlx_variant vs[] = {
            /* 8-bit: int8 activation blocks as llama.cpp's Q8_0 (its pydoc-7M-q8_0: 0.17, 0.984) */
            {"", 8, 64, 0, 0.35, 0.97},
            {"", 4, 64, 1500000, 3.0, 0.75},
            {"", 4, 32, 0, 3.0, 0.75},
            {"bf16", 4, 128, 0, 3.5, 0.70}, /* BF16 source: BF16 scales and biases */
        };
        check_variants(hf_dir, tmp);
        for (size_t i = 0; i < sizeof vs / sizeof *vs; i++) check_mlx(hf_dir, tmp, &vs[i]);
        gguf_context();
    }
    mlxr_model_free(f16);
    for (int k = 0; k < N_CASES; k++) free(f16_logits[k]);

    /* C */
    check_hostile(hf_dir, tmp);
    check_hostile_mlx(tmp);

    rm_tree(tmp);
    free(hf_dir);
    return test_finish("model_hf");
}
