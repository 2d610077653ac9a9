/*
 * hf_test_util.h - what the Hugging Face loader tests (test_hf.c, test_hf_tokjson.c) share:
 * scratch directories of symlinks to pydoc-7M's hf/ files, and the comparison of a vocabulary
 * loaded from such a directory with the GGUF model's (pydoc-7M-f16.gguf, llama.cpp's reference
 * tokenizer for that vocabulary). Include after test.h.
 */
#ifndef MLXR_TEST_HF_UTIL_H
#define MLXR_TEST_HF_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mlxr.h"

static void rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_tree(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void join(char *buf, size_t cap, const char *a, const char *b) {
    if (snprintf(buf, cap, "%s/%s", a, b) >= (int)cap) buf[0] = '\0';
}

/* A scratch model directory: symlinks to hf/'s files except those in skip (NULL-terminated;
 * may be NULL) — the files a case rewrites or leaves out. */
static void make_dir(const char *hf_dir, const char *dir, const char *const *skip) {
    rm_tree(dir);
    mkdir(dir, 0777);
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.model",
                           "tokenizer_config.json", "tokenizer.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        bool s = false;
        for (int k = 0; skip && skip[k]; k++) s |= !strcmp(skip[k], files[i]);
        if (s) continue;
        char a[4096], b[4096];
        join(a, sizeof a, hf_dir, files[i]);
        join(b, sizeof b, dir, files[i]);
        CHECK(symlink(a, b) == 0, "symlink %s: %s", b, strerror(errno));
    }
}

/* The inputs of a .inp file (split on the separator); returns the count, fills starts/lens. */
#define MAX_INPUTS 64
static int split_inputs(const char *s, size_t len, const char **start, size_t *lens) {
    const char *sep = "\n__ggml_vocab_test__\n";
    int n = 0;
    for (size_t off = 0; s && off < len && n < MAX_INPUTS;) {
        const char *e = strstr(s + off, sep);
        if (!e) break;
        start[n] = s + off;
        lens[n++] = (size_t)(e - (s + off));
        off = (size_t)(e - s) + strlen(sep);
    }
    return n;
}

/*
 * Load the vocabularies of pydoc-7M-f16.gguf (*g) and of the directory `dir` (*h), vocab only,
 * and check they agree on size, BOS/EOS, and every token's piece and end-of-generation flag.
 * Both NULL-checked by the caller (a failed load is a failed check here).
 */
static void hf_vocab_pair(const char *dir, const char *what, mlxr_model **g, mlxr_model **h) {
    mlxr_load_opts vo = {0};
    vo.vocab_only = true;
    mlxr_err err = {0};
    *g = *h = NULL;
    char *gp = test_data_path("models/pydoc-7M/pydoc-7M-f16.gguf");
    CHECK(mlxr_model_load(gp, &vo, g, &err) == MLXR_OK, "gguf vocab: %s", err.msg);
    CHECK(mlxr_model_load(dir, &vo, h, &err) == MLXR_OK, "%s vocab: %s", what, err.msg);
    free(gp);
    if (!*g || !*h) return;
    const mlxr_model_info *gi = mlxr_model_get_info(*g), *hi = mlxr_model_get_info(*h);
    CHECK(gi->n_vocab == hi->n_vocab && gi->bos_id == hi->bos_id && gi->eos_id == hi->eos_id,
          "vocab size / BOS / EOS differ: %d %d %d vs %d %d %d", gi->n_vocab, gi->bos_id,
          gi->eos_id, hi->n_vocab, hi->bos_id, hi->eos_id);
    int piece_diff = 0;
    for (int32_t id = 0; id < gi->n_vocab && id < hi->n_vocab; id++) {
        char a[256], b[256];
        size_t la = 0, lb = 0;
        mlxr_token_to_piece(*g, id, a, sizeof a, &la, NULL);
        mlxr_token_to_piece(*h, id, b, sizeof b, &lb, NULL);
        piece_diff += la != lb || memcmp(a, b, la) != 0;
        piece_diff += mlxr_token_is_eog(*g, id) != mlxr_token_is_eog(*h, id);
    }
    CHECK(piece_diff == 0, "%d token pieces / end flags differ", piece_diff);
}

/*
 * Tokenize with g and h (with BOS) the 46 tokenizer test inputs of the llama-spm vocabulary,
 * then tests/data/pydoc_passage.txt in slices of 300 and of 97 bytes (cut anywhere, even inside
 * a character) and whole. alternate_special: every second text with parse_special. Returns the
 * texts compared; *n_diff counts those whose status or ids differ (the first few are printed).
 */
static int hf_compare_texts(mlxr_model *g, mlxr_model *h, bool alternate_special, int *n_diff) {
    char *ip = test_data_path("tokenizer/ggml-vocab-llama-spm.gguf.inp");
    size_t il = 0, pl = 0;
    char *inp = test_read_file(ip, &il);
    free(ip);
    char pp[4096];
    snprintf(pp, sizeof pp, "%s/tests/data/pydoc_passage.txt", MLXR_SOURCE_DIR);
    char *passage = test_read_file(pp, &pl);
    CHECK(inp && passage, "cannot read the tokenizer inputs");
    const char *start[MAX_INPUTS];
    size_t lens[MAX_INPUTS];
    int n_in = split_inputs(inp, il, start, lens);
    int n_texts = 0;
    static int32_t a[8192], b[8192];
    for (int pass = 0; pass < 4; pass++) {
        size_t off = 0;
        for (int k = 0; pass ? passage && off < pl : k < n_in; k++) {
            const char *s;
            size_t n;
            if (!pass) {
                s = start[k], n = lens[k];
            } else {
                size_t cut = pass == 1 ? 300 : pass == 2 ? 97 : pl;
                s = passage + off, n = pl - off < cut ? pl - off : cut;
                off += n;
            }
            size_t na = 0, nb = 0;
            bool ps = alternate_special && k % 2 == 1;
            mlxr_status s1 = mlxr_tokenize(g, s, n, true, ps, a, 8192, &na, NULL);
            mlxr_status s2 = mlxr_tokenize(h, s, n, true, ps, b, 8192, &nb, NULL);
            bool same = s1 == s2 && na == nb && (s1 != MLXR_OK || !memcmp(a, b, na * sizeof *a));
            if (!same && (*n_diff)++ < 5)
                fprintf(stderr, "  tokenizer mismatch on text %d (%zu bytes)\n", n_texts, n);
            n_texts++;
        }
    }
    free(inp);
    free(passage);
    return n_texts;
}

#endif
