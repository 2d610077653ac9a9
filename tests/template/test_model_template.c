/*
 * test_model_template.c - chat templates at the model level: a GGUF's tokenizer.chat_template
 * (ggml-vocab-phi-3.gguf ships one) rendered with the model's BOS/EOS texts, and the ChatML
 * default for a model without one (stories260K), each equal to Python jinja2's rendering
 * (tests/template/expected_cli, made by scripts/gen_template_refs.py).
 */
#include "test.h"

#include "mlxr.h"

static char *src_file(const char *rel, size_t *n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", MLXR_SOURCE_DIR, rel);
    char *p = test_read_file(path, n);
    CHECK(p != NULL, "cannot read %s", path);
    return p;
}

static void check_apply(mlxr_model *m, const char *conv, bool gen, const char *expected) {
    size_t cn, wn, on = 0;
    char *c = src_file(conv, &cn), *want = src_file(expected, &wn), *out = NULL;
    mlxr_err err = {0};
    if (c && want) {
        mlxr_status st = mlxr_chat_apply_template(m, c, cn, gen, &out, &on, &err);
        CHECK(st == MLXR_OK, "%s: %s", conv, err.msg);
        CHECK(st == MLXR_OK && on == wn && !memcmp(out, want, wn), "%s: differs from %s:\n[%.*s]",
              conv, expected, (int)on, out ? out : "");
    }
    mlxr_free(out);
    free(c);
    free(want);
}

static mlxr_model *load(const char *rel) {
    char *path = test_data_path(rel);
    mlxr_load_opts o = {NULL, NULL, true, false};
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_model_load(path, &o, &m, &err) == MLXR_OK, "load %s: %s", path, err.msg);
    free(path);
    return m;
}

int main(void) {
    mlxr_err err = {0};
    char *t = NULL;
    mlxr_model *phi = load("tokenizer/ggml-vocab-phi-3.gguf");
    if (phi) {
        CHECK(mlxr_model_chat_template(phi, &t, &err) == MLXR_OK && t && strstr(t, "<|user|>"),
              "phi-3 template: %s", err.msg);
        mlxr_free(t);
        check_apply(phi, "tests/template/conversations/simple.json", true,
                    "tests/template/expected_cli/ggml-vocab-phi-3.simple.txt");
        check_apply(phi, "tests/template/conversations/no_gen.json", false,
                    "tests/template/expected_cli/ggml-vocab-phi-3.no_gen.txt");
        mlxr_model_free(phi);
    }
    mlxr_model *st = load("models/stories260K.gguf");
    if (st) {
        t = NULL;
        CHECK(mlxr_model_chat_template(st, &t, &err) == MLXR_ERR_NOT_FOUND && !t,
              "stories260K has no template");
        check_apply(st, "tests/template/conversations/simple.json", true,
                    "tests/template/expected_cli/stories260K.simple.txt");
        check_apply(st, "tests/template/conversations/unicode.json", true,
                    "tests/template/expected_cli/stories260K.unicode.txt");
        char *out = NULL;
        size_t n;
        const char *arr = "[{\"role\": \"user\", \"content\": \"hi\"}]";
        CHECK(mlxr_chat_apply_template(st, arr, strlen(arr), true, &out, &n, &err) == MLXR_OK &&
                  !strcmp(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
              "messages array: %s", out ? out : err.msg);
        mlxr_free(out);
        out = NULL;
        CHECK(mlxr_chat_apply_template(st, "42", 2, true, &out, &n, &err) == MLXR_ERR_INVALID &&
                  !out,
              "a number is no conversation");
        mlxr_model_free(st);
    }
    return test_finish("template_model_template");
}
