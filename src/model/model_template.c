/*
 * model_template.c - chat templates at the model level: the template a GGUF ships in
 * `tokenizer.chat_template` (or the ChatML default), the BOS/EOS token texts it is rendered
 * with, and the glue from a messages JSON to the template's variables.
 *
 * The default for models without a template is ChatML, the fallback llama.cpp and Ollama use.
 * The GGUF-level functions work without a loaded model (the CLI's `mlxr template -m` reads any
 * GGUF, whatever its architecture).
 */
#include "model/hf.h"
#include "model/model.h"
#include "template/template.h"
#include "util/err.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char CHATML[] =
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const char *mlxr_template_default(void) {
    return CHATML;
}

mlxr_status mlxr_template_render(const char *tmpl, size_t tmpl_len, const char *vars_json,
                                 size_t vars_len, char **out, size_t *out_len, mlxr_err *err) {
    if (!tmpl || !out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "template and out are required");
    return mlxr_jinja_render(tmpl, tmpl_len, vars_json, vars_len, NULL, out, out_len, err);
}

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

mlxr_status mlxr_template_from_gguf(const mlxr_gguf *g, char **tmpl, mlxr_err *err) {
    mlxr_gguf_str s;
    *tmpl = NULL;
    mlxr_status st = mlxr_gguf_get_str(g, "tokenizer.chat_template", &s, NULL);
    if (st != MLXR_OK)
        return MLXR_FAIL(err, MLXR_ERR_NOT_FOUND, "the model has no tokenizer.chat_template");
    *tmpl = dup_n(s.data, s.len);
    return *tmpl ? MLXR_OK : MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
}

mlxr_status mlxr_template_token_text(const mlxr_gguf *g, const char *id_key, char **out,
                                     mlxr_err *err) {
    uint32_t id;
    *out = NULL;
    if (mlxr_gguf_get_u32(g, id_key, &id, NULL) != MLXR_OK) return MLXR_OK; /* no such token */
    const mlxr_gguf_value *arr;
    if (mlxr_gguf_get_arr(g, "tokenizer.ggml.tokens", MLXR_GGUF_STRING, &arr, NULL) != MLXR_OK ||
        id >= arr->v.arr.n)
        return MLXR_OK;
    mlxr_gguf_str s = mlxr_gguf_arr_str(arr, id);
    *out = dup_n(s.data, s.len);
    return *out ? MLXR_OK : MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
}

mlxr_status mlxr_template_apply(const char *tmpl, const char *bos, const char *eos,
                                const char *messages_json, size_t len, bool add_generation_prompt,
                                char **out, size_t *out_len, mlxr_err *err) {
    if (!messages_json || !out)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "messages and out are required");
    json_error_t je;
    json_t *in = json_loadb(messages_json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!in)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "bad messages JSON at line %d, column %d: %s",
                         je.line, je.column, je.text);
    json_t *vars = NULL;
    if (json_is_array(in)) {
        vars = json_object();
        if (vars) json_object_set(vars, "messages", in);
    } else if (json_is_object(in)) {
        vars = json_incref(in);
    }
    json_decref(in);
    if (!vars) return MLXR_FAIL(err, MLXR_ERR_INVALID, "messages must be a JSON array or object");
    /* the object's own values win over the model's */
    if (bos && !json_object_get(vars, "bos_token"))
        json_object_set_new(vars, "bos_token", json_string(bos));
    if (eos && !json_object_get(vars, "eos_token"))
        json_object_set_new(vars, "eos_token", json_string(eos));
    if (add_generation_prompt || !json_object_get(vars, "add_generation_prompt"))
        json_object_set_new(vars, "add_generation_prompt", json_boolean(add_generation_prompt));
    char *text = json_dumps(vars, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t tlen = text ? strlen(text) : 0;
    json_decref(vars);
    if (!text) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    const char *t = tmpl ? tmpl : CHATML;
    mlxr_status st = mlxr_jinja_render(t, strlen(t), text, tlen, NULL, out, out_len, err);
    free(text);
    return st;
}

mlxr_status mlxr_model_chat_template(const mlxr_model *m, char **out, mlxr_err *err) {
    if (!m || !out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "model and out are required");
    if (m->hf) return mlxr_hf_chat_template(m->hf, out, err); /* HF directory (model/hf.h) */
    return mlxr_template_from_gguf(m->gguf, out, err);
}

static char *vocab_text(const mlxr_vocab *v, int32_t id) {
    if (!v || id < 0 || id >= mlxr_vocab_n_tokens(v)) return NULL;
    const char *s = mlxr_vocab_token_text(v, id);
    return s ? dup_n(s, strlen(s)) : NULL;
}

mlxr_status mlxr_chat_apply_template(const mlxr_model *m, const char *messages_json, size_t len,
                                     bool add_generation_prompt, char **out, size_t *out_len,
                                     mlxr_err *err) {
    if (!m || !out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "model and out are required");
    char *tmpl = NULL;
    mlxr_status st = m->hf ? mlxr_hf_chat_template(m->hf, &tmpl, NULL)
                           : mlxr_template_from_gguf(m->gguf, &tmpl, NULL);
    if (st != MLXR_OK && st != MLXR_ERR_NOT_FOUND)
        return MLXR_FAIL(err, st, "cannot read the template");
    char *bos = vocab_text(m->vocab, mlxr_vocab_bos(m->vocab));
    char *eos = vocab_text(m->vocab, mlxr_vocab_eos(m->vocab));
    st = mlxr_template_apply(tmpl, bos ? bos : "", eos ? eos : "", messages_json, len,
                             add_generation_prompt, out, out_len, err);
    free(tmpl);
    free(bos);
    free(eos);
    return st;
}
