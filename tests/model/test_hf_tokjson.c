/*
 * test_hf_tokjson.c - Hugging Face directories whose tokenizer is only tokenizer.json
 * (src/model/hf_tokjson.c):
 *  A. pydoc-7M's hf/ without tokenizer.model (SentencePiece-style BPE in tokenizer.json): the
 *     same ids as the GGUF tokenizer on the 46 tokenizer test inputs, pydoc passages and the
 *     reference prompts, the same piece for every id, and llama.cpp's reference continuation
 *     (testdata/reference, greedy on the GGUF) token for token and byte for byte; the same file
 *     rewritten in the Metaspace form (no normalizer, Metaspace prepend_scheme "first") that
 *     newer transformers conversions use gives the GGUF's ids too.
 *  B. Byte-level BPE: tokenizer.json files built here from the GGUF vocabularies of
 *     testdata/tokenizer (tokens, merges, token types) with the pre_tokenizer that Hugging Face
 *     publishes for that model; the ids must equal the .out vectors (transformers' own output,
 *     an independent reference). Then the gpt-2 vocabulary with each other published
 *     pre-tokenizer (Llama 3, Qwen 2, SmolLM/StarCoder, Mistral-Nemo, GPT-4o) must tokenize as
 *     the pretok.c family it maps to. Added tokens get llama.cpp's converter's types (special or
 *     special-looking: CONTROL; else USER_DEFINED with U+2581 written as a space).
 *  C. Hostile tokenizer.json: each fails with a status and a message naming the problem.
 */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/gguf.h"
#include "model/hf_impl.h"
#include "model/model.h"
#include "mlxr.h"
#include "tokenizer/vocab_impl.h"

#include "hf_test_util.h"

/* ---- A: pydoc-7M with tokenizer.json only ------------------------------------------------------ */

static void check_pydoc_greedy(mlxr_model *m) {
    char *jp = test_data_path("reference/pydoc-7M-f16__dict_maps.json");
    char *rp = test_data_path("reference/pydoc-7M-f16__dict_maps.ref");
    json_t *root = json_load_file(jp, 0, NULL);
    size_t rl = 0;
    char *ref = test_read_file(rp, &rl);
    free(jp);
    free(rp);
    CHECK(root && ref, "cannot read the dict_maps reference");
    if (!root || !ref) goto done;
    /* .ref: model path, prompt, number of tokens, then the generated text */
    const char *text = ref;
    for (int k = 0; k < 3; k++) text = strchr(text, '\n') + 1;
    long n_ref = strtol(strchr(strchr(ref, '\n') + 1, '\n') + 1, NULL, 10);
    size_t text_len = rl - (size_t)(text - ref);
    const char *prompt = json_string_value(json_object_get(root, "prompt"));
    json_t *pids = json_object_get(root, "prompt_ids"), *gids = json_object_get(root, "generated_ids");
    int32_t ids[1024];
    size_t np = 0;
    mlxr_err err = {0};
    CHECK(mlxr_tokenize(m, prompt, strlen(prompt), true, false, ids, 1024, &np, &err) == MLXR_OK,
          "tokenize: %s", err.msg);
    bool same = np == json_array_size(pids);
    for (size_t i = 0; same && i < np; i++)
        same = ids[i] == json_integer_value(json_array_get(pids, i));
    CHECK(same, "prompt ids differ from the reference's");
    mlxr_context_opts co = mlxr_context_default_opts();
    co.n_ctx = 512;
    co.n_threads = 2;
    mlxr_context *c = NULL;
    CHECK(mlxr_context_new(m, &co, &c, &err) == MLXR_OK, "context: %s", err.msg);
    int32_t pos[1024], seq[1024] = {0};
    for (size_t i = 0; i < np; i++) pos[i] = (int32_t)i;
    mlxr_batch b = {(int32_t)np, ids, pos, seq, NULL};
    CHECK(c && mlxr_decode(c, &b, &err) == MLXR_OK, "prompt decode: %s", err.msg);
    const int V = mlxr_model_get_info(m)->n_vocab;
    char *out = malloc((size_t)n_ref * 64 + 1);
    size_t tl = 0, agree = 0;
    bool diverged = false;
    for (long i = 0; c && i < n_ref; i++) {
        const float *lg = mlxr_get_logits(c, i == 0 ? (int32_t)np - 1 : 0);
        int32_t tok = 0;
        for (int k = 1; k < V; k++)
            if (lg[k] > lg[tok]) tok = k;
        if (tok != json_integer_value(json_array_get(gids, (size_t)i))) diverged = true;
        if (!diverged) agree++;
        size_t len = 0;
        mlxr_token_to_piece(m, tok, out + tl, 64, &len, NULL);
        tl += len;
        int32_t p = (int32_t)(np + (size_t)i), s0 = 0;
        mlxr_batch one = {1, &tok, &p, &s0, NULL};
        CHECK(mlxr_decode(c, &one, &err) == MLXR_OK, "decode: %s", err.msg);
    }
    CHECK(agree == (size_t)n_ref && tl == text_len && !memcmp(out, text, tl),
          "greedy continuation differs from the reference (%zu of %ld ids agree)", agree, n_ref);
    fprintf(stderr, "  tokenizer.json model: greedy dict_maps %zu of %ld ids as the reference\n",
            agree, n_ref);
    free(out);
    mlxr_context_free(c);
done:
    json_decref(root);
    free(ref);
}

static void check_pydoc(const char *hf_dir, const char *tmp) {
    char dir[4096];
    join(dir, sizeof dir, tmp, "pydoc-tokjson");
    make_dir(hf_dir, dir, (const char *const[]){"tokenizer.model", NULL});
    mlxr_err err = {0};
    mlxr_model *g = NULL, *h = NULL;
    hf_vocab_pair(dir, "tokenizer.json", &g, &h);
    if (!g || !h) goto done;
    /* each text with BOS and with special-token parsing both ways */
    int n_diff = 0;
    int n_texts = hf_compare_texts(g, h, true, &n_diff);
    char *ip = test_data_path("tokenizer/ggml-vocab-llama-spm.gguf.inp");
    size_t il = 0;
    char *inp = test_read_file(ip, &il);
    free(ip);
    const char *start[MAX_INPUTS];
    size_t lens[MAX_INPUTS];
    int n_in = split_inputs(inp, il, start, lens);
    static int32_t a[8192], b[8192];
    static const int32_t want1[] = {1, 579, 1138, 13};
    static const int32_t want2[] = {1, 728, 436, 3894, 3949, 3912, 3936, 3936, 3917, 269};
    size_t nb = 0;
    mlxr_tokenize(h, "import os\n", 10, true, false, b, 8192, &nb, NULL);
    CHECK(nb == 4 && !memcmp(b, want1, sizeof want1), "'import os\\n' tokenizes differently");
    mlxr_tokenize(h, "In Python 3.11, the", 19, true, false, b, 8192, &nb, NULL);
    CHECK(nb == 10 && !memcmp(b, want2, sizeof want2), "'In Python 3.11, the' differs");
    CHECK(n_diff == 0 && n_texts > 100, "tokenizer.json vs GGUF: %d of %d texts differ", n_diff,
          n_texts);
    fprintf(stderr, "  pydoc tokenizer.json vs GGUF tokenizer: %d texts, %d differ\n", n_texts,
            n_diff);

    /* the same vocabulary written the way transformers writes newer SentencePiece conversions
     * (no normalizer, a Metaspace pre-tokenizer with prepend_scheme "first") */
    char tp[4200];
    join(tp, sizeof tp, hf_dir, "tokenizer.json");
    json_t *tj = json_load_file(tp, JSON_REJECT_DUPLICATES, NULL);
    CHECK(tj != NULL, "cannot read %s", tp);
    if (tj) {
        json_object_set_new(tj, "normalizer", json_null());
        json_object_set_new(tj, "pre_tokenizer",
                            json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement",
                                      "\xe2\x96\x81", "prepend_scheme", "first", "split", 0));
        mlxr_hf_spm_opts o = {4096, -1, -1, -1, -1, -1, NULL, NULL};
        mlxr_vocab *mv = NULL;
        CHECK(mlxr_hf_tokjson_vocab(tj, NULL, &o, &mv, &err) == MLXR_OK, "Metaspace: %s",
              err.msg);
        int md = 0;
        for (int k = 0; mv && k < n_in; k++) {
            size_t na = 0, nm = 0;
            mlxr_tokenize(g, start[k], lens[k], true, false, a, 8192, &na, NULL);
            mlxr_vocab_tokenize(mv, start[k], lens[k], true, false, b, 8192, &nm, NULL);
            md += na != nm || memcmp(a, b, na * sizeof *a) != 0;
        }
        CHECK(mv && md == 0, "Metaspace form: %d of %d inputs differ from the GGUF", md, n_in);
        fprintf(stderr, "  pydoc as Metaspace tokenizer.json vs GGUF: %d inputs, %d differ\n",
                n_in, md);
        mlxr_vocab_free(mv);
        json_decref(tj);
    }
    free(inp);

    /* the whole model from that directory: llama.cpp's continuation */
    mlxr_model *m = NULL;
    CHECK(mlxr_model_load(dir, NULL, &m, &err) == MLXR_OK, "load %s: %s", dir, err.msg);
    if (m) check_pydoc_greedy(m);
    mlxr_model_free(m);
done:
    mlxr_model_free(g);
    mlxr_model_free(h);
}

/* ---- B: byte-level BPE tokenizer.json from the GGUF vocabularies ------------------------------ */

/* Pre-tokenizers as Hugging Face publishes them in each model's tokenizer.json. */
static const char *const PRE_GPT2 =
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}";
static const char *const PRE_DEEPSEEK_CODER =
    "{\"type\":\"Sequence\",\"pretokenizers\":["
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[\\r\\n]\"},\"behavior\":\"Isolated\","
    "\"invert\":false},"
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s?\\\\p{L}+\"},\"behavior\":\"Isolated\","
    "\"invert\":false},"
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s?\\\\p{P}+\"},\"behavior\":\"Isolated\","
    "\"invert\":false},"
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[一-龥ࠀ-一가-퟿]+\"},"
    "\"behavior\":\"Isolated\",\"invert\":false},"
    "{\"type\":\"Digits\",\"individual_digits\":true},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}"
    "]}";
static const char *const PRE_FALCON =
    "{\"type\":\"Sequence\",\"pretokenizers\":["
    "{\"type\":\"Punctuation\",\"behavior\":\"Contiguous\"},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},"
    "{\"type\":\"Digits\",\"individual_digits\":false},"
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[0-9][0-9][0-9]\"},\"behavior\":\"Isolated\","
    "\"invert\":false}]}";
#define SPLIT_THEN_BYTELEVEL(re)                                                                   \
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" re  \
    "\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\"" \
    ":false,\"trim_offsets\":true,\"use_regex\":false}]}"
static const char *const PRE_LLAMA3 = SPLIT_THEN_BYTELEVEL(
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+");
static const char *const PRE_QWEN2 = SPLIT_THEN_BYTELEVEL(
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+");
static const char *const PRE_TEKKEN = SPLIT_THEN_BYTELEVEL(
    "[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?[\\\\p{Lu}\\\\p{Lt}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]*[\\\\p{Ll}\\\\p{Lm}"
    "\\\\p{Lo}\\\\p{M}]+|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?[\\\\p{Lu}\\\\p{Lt}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]+"
    "[\\\\p{Ll}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]*|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n/]*|"
    "\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+");
static const char *const PRE_GPT4O = SPLIT_THEN_BYTELEVEL(
    "[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?[\\\\p{Lu}\\\\p{Lt}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]*[\\\\p{Ll}\\\\p{Lm}"
    "\\\\p{Lo}\\\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?[\\\\p{Lu}"
    "\\\\p{Lt}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]+[\\\\p{Ll}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]*(?i:'s|'t|'re|'ve|"
    "'m|'ll|'d)?|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n/]*|\\\\s*[\\\\r\\\\n]+|"
    "\\\\s+(?!\\\\S)|\\\\s+");
static const char *const PRE_SMOLLM =
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}"
    "]}";

/* A GGUF vocabulary's arrays (pointing into the open file). */
typedef struct gvocab {
    mlxr_gguf *g;
    int32_t n, n_merges;
    const char **texts, **merges;
    size_t *lens, *merge_lens;
    int32_t *types;
} gvocab;

static bool gvocab_open(const char *name, gvocab *gv) {
    memset(gv, 0, sizeof *gv);
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf", name);
    char *path = test_data_path(rel);
    mlxr_err err = {0};
    const mlxr_gguf_value *toks = NULL, *types = NULL, *merges = NULL;
    bool ok = mlxr_gguf_open(path, &gv->g, &err) == MLXR_OK &&
              mlxr_gguf_get_arr(gv->g, "tokenizer.ggml.tokens", MLXR_GGUF_STRING, &toks, &err) ==
                  MLXR_OK &&
              mlxr_gguf_get_arr(gv->g, "tokenizer.ggml.token_type", MLXR_GGUF_INT32, &types,
                                &err) == MLXR_OK &&
              mlxr_gguf_get_arr(gv->g, "tokenizer.ggml.merges", MLXR_GGUF_STRING, &merges,
                                &err) == MLXR_OK;
    CHECK(ok, "%s: %s", path, err.msg);
    free(path);
    if (!ok) return false;
    gv->n = (int32_t)toks->v.arr.n;
    gv->n_merges = (int32_t)merges->v.arr.n;
    gv->texts = malloc((size_t)gv->n * sizeof *gv->texts);
    gv->lens = malloc((size_t)gv->n * sizeof *gv->lens);
    gv->types = malloc((size_t)gv->n * sizeof *gv->types);
    gv->merges = malloc((size_t)gv->n_merges * sizeof *gv->merges);
    gv->merge_lens = malloc((size_t)gv->n_merges * sizeof *gv->merge_lens);
    for (int32_t i = 0; i < gv->n; i++) {
        mlxr_gguf_str s = mlxr_gguf_arr_str(toks, (uint64_t)i);
        gv->texts[i] = s.data, gv->lens[i] = (size_t)s.len;
        gv->types[i] = mlxr_gguf_arr_i32(types, (uint64_t)i);
    }
    for (int32_t i = 0; i < gv->n_merges; i++) {
        mlxr_gguf_str s = mlxr_gguf_arr_str(merges, (uint64_t)i);
        gv->merges[i] = s.data, gv->merge_lens[i] = (size_t)s.len;
    }
    return true;
}

static void gvocab_close(gvocab *gv) {
    mlxr_gguf_close(gv->g);
    free(gv->texts);
    free(gv->lens);
    free(gv->types);
    free(gv->merges);
    free(gv->merge_lens);
}

/* tokenizer.json for gv with pre-tokenizer `pre` (JSON text). pair_form: merges as [a, b]. */
static json_t *make_tokjson(const gvocab *gv, const char *pre, bool pair_form) {
    json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
    for (int32_t i = 0; i < gv->n; i++) {
        /* a text listed twice keeps its first id in model.vocab (the other is a hole) */
        if (!json_object_getn(vocab, gv->texts[i], gv->lens[i]))
            json_object_setn_new(vocab, gv->texts[i], gv->lens[i], json_integer(i));
        if (gv->types[i] == MLXR_TOKEN_CONTROL || gv->types[i] == MLXR_TOKEN_USER_DEFINED) {
            json_t *t = json_object();
            json_object_set_new(t, "id", json_integer(i));
            json_object_set_new(t, "content", json_stringn(gv->texts[i], gv->lens[i]));
            json_object_set_new(t, "special", json_boolean(gv->types[i] == MLXR_TOKEN_CONTROL));
            json_object_set_new(t, "normalized", json_false());
            json_array_append_new(added, t);
        }
    }
    for (int32_t i = 0; i < gv->n_merges; i++) {
        const char *s = gv->merges[i];
        const char *sp = memchr(s + 1, ' ', gv->merge_lens[i] - 1);
        if (pair_form && sp) {
            json_t *p = json_array();
            json_array_append_new(p, json_stringn(s, (size_t)(sp - s)));
            json_array_append_new(p, json_stringn(sp + 1, gv->merge_lens[i] - (size_t)(sp - s) - 1));
            json_array_append_new(merges, p);
        } else {
            json_array_append_new(merges, json_stringn(s, gv->merge_lens[i]));
        }
    }
    json_t *model = json_object();
    json_object_set_new(model, "type", json_string("BPE"));
    json_object_set_new(model, "vocab", vocab);
    json_object_set_new(model, "merges", merges);
    json_object_set_new(model, "byte_fallback", json_false());
    json_t *root = json_object();
    json_object_set_new(root, "version", json_string("1.0"));
    json_object_set_new(root, "added_tokens", added);
    json_object_set_new(root, "normalizer", json_null());
    json_error_t je;
    json_t *p = json_loads(pre, 0, &je);
    CHECK(p != NULL, "pre_tokenizer JSON: %s", je.text);
    json_object_set_new(root, "pre_tokenizer", p ? p : json_null());
    json_object_set_new(root, "decoder", json_pack("{s:s}", "type", "ByteLevel"));
    json_object_set_new(root, "model", model);
    return root;
}

static mlxr_vocab *tokjson_vocab(const json_t *tj, mlxr_err *err) {
    mlxr_hf_spm_opts o = {0, -1, -1, -1, -1, -1, NULL, NULL};
    mlxr_vocab *v = NULL;
    mlxr_hf_tokjson_vocab(tj, NULL, &o, &v, err);
    return v;
}

/* The .out vectors of NAME with a tokenizer.json made from its GGUF vocabulary. */
static void check_vectors(const char *name, const char *pre, bool pair_form) {
    gvocab gv;
    if (!gvocab_open(name, &gv)) return;
    json_t *tj = make_tokjson(&gv, pre, pair_form);
    mlxr_err err = {0};
    mlxr_vocab *v = tokjson_vocab(tj, &err);
    CHECK(v != NULL, "%s tokenizer.json: %s", name, err.msg);
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf.inp", name);
    char *ip = test_data_path(rel);
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf.out", name);
    char *op = test_data_path(rel);
    size_t il = 0, ol = 0;
    char *inp = test_read_file(ip, &il), *outs = test_read_file(op, &ol);
    free(ip);
    free(op);
    const char *start[MAX_INPUTS];
    size_t lens[MAX_INPUTS];
    int n_in = split_inputs(inp, il, start, lens), n_bad = 0;
    const char *line = outs;
    for (int k = 0; v && line && k < n_in; k++) {
        int32_t want[512], got[4096];
        size_t nw = 0, ng = 0;
        const char *eol = strchr(line, '\n');
        for (const char *p = line; p < eol && nw < 512;) {
            char *e;
            long id = strtol(p, &e, 10);
            if (e == p) break;
            want[nw++] = (int32_t)id;
            p = e;
        }
        mlxr_status st = mlxr_vocab_tokenize(v, start[k], lens[k], false, false, got, 4096, &ng,
                                             &err);
        bool ok = st == MLXR_OK && ng == nw && !memcmp(got, want, nw * sizeof *got);
        if (!ok && n_bad++ < 3)
            fprintf(stderr, "  %s input %d: %zu ids, want %zu\n", name, k, ng, nw);
        line = eol ? eol + 1 : NULL;
    }
    CHECK(v && n_in == 46 && n_bad == 0, "%s tokenizer.json (%s merges): %d of %d vectors differ",
          name, pair_form ? "pair" : "string", n_bad, n_in);
    fprintf(stderr, "  %-15s tokenizer.json (%s merges): %d vectors, %d differ\n", name,
            pair_form ? "pair" : "string", n_in, n_bad);
    free(inp);
    free(outs);
    mlxr_vocab_free(v);
    json_decref(tj);
    gvocab_close(&gv);
}

/* The gpt-2 vocabulary with published pre-tokenizer `pre` tokenizes as the vocabulary built
 * straight from the arrays with pretok.c's family `family`. */
static void check_family(const char *pre, const char *family, const char *inp, size_t il) {
    gvocab gv;
    if (!gvocab_open("gpt-2", &gv)) return;
    json_t *tj = make_tokjson(&gv, pre, false);
    mlxr_err err = {0};
    mlxr_vocab *v = tokjson_vocab(tj, &err), *ref = NULL;
    CHECK(v != NULL, "gpt-2 + %s pre-tokenizer: %s", family, err.msg);
    mlxr_vocab_spec s = mlxr_vocab_spec_kind(MLXR_VOCAB_BPE, gv.n);
    s.texts = gv.texts, s.lens = gv.lens, s.types = gv.types;
    s.n_merges = gv.n_merges, s.merges = gv.merges, s.merge_lens = gv.merge_lens;
    s.pre = family, s.pre_len = strlen(family);
    CHECK(mlxr_pretok_defaults(family, strlen(family), &s, &err) == MLXR_OK &&
              mlxr_vocab_new(&s, &ref, &err) == MLXR_OK,
          "direct %s vocabulary: %s", family, err.msg);
    const char *start[MAX_INPUTS];
    size_t lens[MAX_INPUTS];
    int n_in = split_inputs(inp, il, start, lens), n_bad = 0;
    for (int k = 0; v && ref && k < n_in; k++) {
        int32_t a[4096], b[4096];
        size_t na = 0, nb = 0;
        mlxr_vocab_tokenize(v, start[k], lens[k], false, false, a, 4096, &na, NULL);
        mlxr_vocab_tokenize(ref, start[k], lens[k], false, false, b, 4096, &nb, NULL);
        n_bad += na != nb || memcmp(a, b, na * sizeof *a) != 0;
    }
    CHECK(v && ref && n_bad == 0 && v->ignore_merges == ref->ignore_merges &&
              v->add_bos == ref->add_bos,
          "gpt-2 vocab + HF %s pre-tokenizer: %d of %d inputs differ from pretok.c's family",
          family, n_bad, n_in);
    fprintf(stderr, "  gpt-2 vocab + HF %-10s pre-tokenizer: %d inputs, %d differ\n", family,
            n_in, n_bad);
    mlxr_vocab_free(v);
    mlxr_vocab_free(ref);
    json_decref(tj);
    gvocab_close(&gv);
}

/* Added tokens of a byte-level vocabulary typed as llama.cpp's converter types them. */
static void check_added_types(void) {
    gvocab gv;
    if (!gvocab_open("gpt-2", &gv)) return;
    json_t *tj = make_tokjson(&gv, PRE_GPT2, false);
    json_t *added = json_object_get(tj, "added_tokens");
    const char *texts[] = {"my\xe2\x96\x81tok", "<|x|>", "<unused7>", "<mask>", "plain"};
    for (int i = 0; i < 5; i++)
        json_array_append_new(added, json_pack("{s:i, s:s, s:b}", "id", gv.n + i, "content",
                                               texts[i], "special", 0));
    mlxr_err err = {0};
    mlxr_vocab *v = tokjson_vocab(tj, &err);
    CHECK(v != NULL, "added types: %s", err.msg);
    if (v) {
        const int want[] = {MLXR_TOKEN_USER_DEFINED, MLXR_TOKEN_CONTROL, MLXR_TOKEN_CONTROL,
                            MLXR_TOKEN_CONTROL, MLXR_TOKEN_USER_DEFINED};
        for (int i = 0; i < 5; i++)
            CHECK(mlxr_vocab_token_type(v, gv.n + i) == (mlxr_token_type)want[i],
                  "added '%s': type %d, want %d", texts[i], mlxr_vocab_token_type(v, gv.n + i),
                  want[i]);
        CHECK(!strcmp(mlxr_vocab_token_text(v, gv.n), "my tok"), "user-defined text '%s'",
              mlxr_vocab_token_text(v, gv.n));
        int32_t ids[16];
        size_t n = 0;
        mlxr_vocab_tokenize(v, "hi my tok", 9, false, false, ids, 16, &n, NULL);
        CHECK(n == 3 && ids[2] == gv.n, "'hi my tok' should end in the user-defined token");
    }
    mlxr_vocab_free(v);
    json_decref(tj);
    gvocab_close(&gv);
}

/* ---- C: hostile tokenizer.json ---------------------------------------------------------------- */

#define NORM_AND_PRE                                                                               \
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":"     \
    "\"\\u2581\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"  \
    "\"pre_tokenizer\":null"
/* A small SentencePiece-style tokenizer.json; `edit` replaces the first `from` with `to`. */
static const char *const SMALL =
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":"
    "true}]," NORM_AND_PRE ",\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\","
    "\"byte_fallback\":true,\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"\\u2581\":3,\"a\":4,"
    "\"b\":5,\"\\u2581a\":6,\"ab\":7,\"\\u2581ab\":8},\"merges\":[\"\\u2581 a\",\"a b\",[\"\\u2581a\","
    "\"b\"]]}}";

static void expect_json(const char *from, const char *to, int32_t n_vocab, mlxr_status want,
                        const char *needle, const char *what) {
    char buf[4096];
    const char *p = from ? strstr(SMALL, from) : NULL;
    CHECK(!from || p, "%s: '%s' not in the base JSON", what, from);
    if (from && !p) return;
    if (from)
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - SMALL), SMALL, to, p + strlen(from));
    else
        snprintf(buf, sizeof buf, "%s", SMALL);
    json_error_t je;
    json_t *tj = json_loads(buf, JSON_REJECT_DUPLICATES, &je);
    CHECK(tj != NULL, "%s: test JSON does not parse: %s", what, je.text);
    mlxr_hf_spm_opts o = {n_vocab, -1, -1, -1, -1, -1, NULL, NULL};
    mlxr_vocab *v = NULL;
    mlxr_err err = {0};
    mlxr_status st = mlxr_hf_tokjson_vocab(tj, NULL, &o, &v, &err);
    if (want == MLXR_OK) {
        CHECK(st == MLXR_OK && v, "%s: %s", what, err.msg);
        if (v) { /* " ab a" -> ▁ab ▁a with the dummy prefix; BOS first */
            int32_t ids[16];
            size_t n = 0;
            mlxr_vocab_tokenize(v, "ab a", 4, true, false, ids, 16, &n, NULL);
            CHECK(n == 3 && ids[0] == 1 && ids[1] == 8 && ids[2] == 6, "%s: 'ab a' -> %zu ids",
                  what, n);
        }
    } else {
        CHECK(st == want && v == NULL && strstr(err.msg, needle),
              "%s: status %d (want %d), message '%s' (want '%s')", what, st, want, err.msg,
              needle);
        if (st == want) fprintf(stderr, "  %-30s -> %s\n", what, err.msg);
    }
    mlxr_vocab_free(v);
    json_decref(tj);
}

static void check_hostile(const char *hf_dir, const char *tmp) {
    expect_json(NULL, NULL, 0, MLXR_OK, "", "small valid");
    expect_json(NULL, NULL, 12, MLXR_OK, "", "small padded to 12");
    expect_json("\"model\":{", "\"modelx\":{", 0, MLXR_ERR_FORMAT, "'model' is missing",
                "no model");
    expect_json("\"type\":\"BPE\"", "\"type\":\"Unigram\"", 0, MLXR_ERR_UNSUPPORTED, "Unigram",
                "unigram");
    expect_json("\"type\":\"BPE\"", "\"type\":7", 0, MLXR_ERR_FORMAT, "model.type", "type int");
    expect_json("\"a\":4", "\"a\":\"4\"", 0, MLXR_ERR_FORMAT, "is not an id", "id string");
    expect_json("\"a\":4", "\"a\":-4", 0, MLXR_ERR_FORMAT, "is not an id", "id negative");
    expect_json("\"a\":4", "\"a\":1000000000000", 0, MLXR_ERR_FORMAT, "is not an id", "huge id");
    expect_json("\"a\":4", "\"a\":40", 9, MLXR_ERR_FORMAT, "beyond config.json's vocab_size",
                "id past vocab_size");
    expect_json("\"a\":4", "\"a\":4000000", 0, MLXR_ERR_FORMAT, "far beyond", "sparse ids");
    expect_json("\"a\":4", "\"a\":5", 0, MLXR_ERR_FORMAT, "is given to both", "duplicate id");
    expect_json("\"a b\"", "\"a c\"", 0, MLXR_ERR_FORMAT, "not in model.vocab", "unknown merge");
    expect_json("\"a b\"", "\"b b\"", 0, MLXR_ERR_FORMAT, "not in model.vocab",
                "merge result unknown");
    expect_json("\"a b\"", "\"ab\"", 0, MLXR_ERR_FORMAT, "not two tokens", "merge one side");
    expect_json("\"a b\"", "\"a b b\"", 0, MLXR_ERR_FORMAT, "not two tokens", "merge 3 sides");
    expect_json("\"a b\"", "17", 0, MLXR_ERR_FORMAT, "is neither", "merge number");
    expect_json("[\"\\u2581a\",\"b\"]", "[\"\\u2581a\"]", 0, MLXR_ERR_FORMAT, "is neither",
                "merge pair of 1");
    expect_json("\"merges\":[", "\"merges\":\"no\",\"m\":[", 0, MLXR_ERR_FORMAT, "must be", "merges obj");
    expect_json("\"added_tokens\":[", "\"added_tokens\":\"no\",\"a\":[", 0, MLXR_ERR_FORMAT,
                "added_tokens is not an array", "added not array");
    expect_json("{\"id\":0,", "{\"idx\":0,", 0, MLXR_ERR_FORMAT, "added_tokens[0] is not",
                "added without id");
    expect_json("{\"id\":1,", "{\"id\":0,", 0, MLXR_ERR_FORMAT, "listed twice", "added twice");
    expect_json("\"content\":\"<s>\"", "\"content\":\"\"", 0, MLXR_ERR_FORMAT, "empty",
                "added empty");
    expect_json("\"byte_fallback\":true", "\"byte_fallback\":\"yes\"", 0, MLXR_ERR_FORMAT,
                "byte_fallback", "byte_fallback string");
    expect_json("{\"type\":\"Prepend\"", "{\"type\":\"NFKC\"", 0, MLXR_ERR_UNSUPPORTED,
                "normalizer 'NFKC'", "NFKC normalizer");
    expect_json("\"pre_tokenizer\":null", "\"pre_tokenizer\":7", 0, MLXR_ERR_FORMAT,
                "pre_tokenizer", "pre_tokenizer number");
    expect_json(NORM_AND_PRE,
                "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                "\"pattern\":{\"Regex\":\"\\\\p{L}+|x\"},\"behavior\":\"Isolated\"},{\"type\":"
                "\"ByteLevel\",\"use_regex\":false}]}",
                0, MLXR_ERR_UNSUPPORTED, "\\p{L}+|x", "unknown regex");
    expect_json(NORM_AND_PRE,
                "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                "\"pattern\":{\"Regex\":\"x\"},\"behavior\":\"Removed\"},{\"type\":"
                "\"ByteLevel\",\"use_regex\":false}]}",
                0, MLXR_ERR_UNSUPPORTED, "behavior 'Removed'", "Split behavior Removed");
    expect_json(NORM_AND_PRE,
                "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true}",
                0, MLXR_ERR_UNSUPPORTED, "add_prefix_space", "ByteLevel add_prefix_space");
    expect_json(NORM_AND_PRE,
                "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
                "{\"type\":\"Metaspace\"},{\"type\":\"ByteLevel\"}]}",
                0, MLXR_ERR_UNSUPPORTED, "Metaspace", "ByteLevel after Metaspace");
    expect_json("\"pre_tokenizer\":null", "\"pre_tokenizer\":{\"type\":\"Whitespace\"}", 0,
                MLXR_ERR_UNSUPPORTED, "Whitespace", "Whitespace pre_tokenizer");
    expect_json("\"pre_tokenizer\":null",
                "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":7}", 0,
                MLXR_ERR_UNSUPPORTED, "pre_tokenizer", "Sequence not array");

    /* through the directory loader: not JSON, duplicate keys, neither file */
    char dir[4096], p[4200];
    join(dir, sizeof dir, tmp, "hostile-tokjson");
    const struct {
        const char *text, *needle;
        mlxr_status want;
    } files[] = {
        {"{\"model\": ", "tokenizer.json", MLXR_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]}}", "duplicate",
         MLXR_ERR_FORMAT},
        {"[1, 2]", "not a JSON object", MLXR_ERR_FORMAT},
        {NULL, "neither tokenizer.model nor tokenizer.json", MLXR_ERR_IO},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        make_dir(hf_dir, dir, (const char *const[]){"tokenizer.model", "tokenizer.json", NULL});
        join(p, sizeof p, dir, "tokenizer.json");
        if (files[i].text) {
            FILE *f = fopen(p, "wb");
            if (f) {
                fputs(files[i].text, f);
                fclose(f);
            }
        }
        mlxr_model *m = NULL;
        mlxr_err err = {0};
        mlxr_status st = mlxr_model_load(dir, NULL, &m, &err);
        CHECK(st == files[i].want && !m && strstr(err.msg, files[i].needle),
              "hostile file %zu: status %d, message '%s' (want '%s')", i, st, err.msg,
              files[i].needle);
        if (st == files[i].want) fprintf(stderr, "  hostile file %zu -> %s\n", i, err.msg);
        mlxr_model_free(m);
    }
    rm_tree(dir);
}

int main(void) {
    char *hf_dir = test_data_path("models/pydoc-7M/hf");
    char tmpl[] = "/tmp/mlxr-test-tokjson-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    CHECK(tmp != NULL, "mkdtemp: %s", strerror(errno));
    if (!tmp) return test_finish("model_hf_tokjson");

    check_pydoc(hf_dir, tmp);

    check_vectors("gpt-2", PRE_GPT2, false);
    check_vectors("gpt-2", PRE_GPT2, true);
    check_vectors("deepseek-coder", PRE_DEEPSEEK_CODER, false);
    check_vectors("falcon", PRE_FALCON, true);
    char *ip = test_data_path("tokenizer/ggml-vocab-gpt-2.gguf.inp");
    size_t il = 0;
    char *inp = test_read_file(ip, &il);
    free(ip);
    if (inp) {
        check_family(PRE_LLAMA3, "llama-bpe", inp, il);
        check_family(PRE_QWEN2, "qwen2", inp, il);
        check_family(PRE_SMOLLM, "starcoder", inp, il);
        check_family(PRE_TEKKEN, "tekken", inp, il);
        check_family(PRE_GPT4O, "gpt-4o", inp, il);
    }
    free(inp);

    check_added_types();
    check_hostile(hf_dir, tmp);
    rm_tree(tmp);
    free(hf_dir);
    return test_finish("model_hf_tokjson");
}
