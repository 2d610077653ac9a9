/*
 * test_modelfile.c - Ollama Modelfile parsing (src/server/modelfile.c): every command, quoting
 * forms, comments, CRLF; hostile inputs (unterminated quotes, huge values, bad numbers, NULs,
 * unknown commands and parameters, random bytes) refused with an error, never a crash; the
 * catalog JSON and the rendered Modelfile read back to the same settings; request defaults
 * (request options win, SYSTEM only without a system prompt, MESSAGEs first).
 */
#include "test.h"

#include "server/modelfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mlxr_status parse(const char *text, mlxr_modelfile *mf, mlxr_err *err) {
    return mlxr_modelfile_parse(text, strlen(text), mf, err);
}

static void test_good(void) {
    const char *text =
        "# a comment\n"
        "FROM ./model.gguf\r\n"
        "parameter temperature 0.25\n"
        "PARAMETER top_k 20\n"
        "PARAMETER stop <|im_end|>\n"
        "PARAMETER stop \"say \\\"hi\\\"\"\n"
        "PARAMETER num_predict 8\n"
        "PARAMETER seed -7\n"
        "PARAMETER num_ctx 512\n"
        "  # an indented comment\n"
        "SYSTEM \"\"\"\n"
        "You are terse.\n"
        "  Really.\n"
        "\"\"\"\n"
        "TEMPLATE \"\"\"{{ .System }} {{ .Prompt }}\"\"\"\n"
        "LICENSE MIT\n"
        "LICENSE \"\"\"second\n"
        "part\"\"\"\n"
        "MESSAGE user Is it?\n"
        "MESSAGE assistant \"\"\"Yes.\"\"\"\n";
    mlxr_modelfile mf;
    mlxr_err err = {0};
    mlxr_status st = parse(text, &mf, &err);
    CHECK(st == MLXR_OK, "parse: %s", err.msg);
    if (st != MLXR_OK) return;
    CHECK(mf.from && !strcmp(mf.from, "./model.gguf"), "from '%s'", mf.from ? mf.from : "");
    CHECK(mf.set & MLXR_MF_TEMPERATURE && mf.temperature == 0.25f, "temperature %g", mf.temperature);
    CHECK(mf.set & MLXR_MF_TOP_K && mf.top_k == 20, "top_k %d", mf.top_k);
    CHECK(mf.set & MLXR_MF_NUM_PREDICT && mf.num_predict == 8, "num_predict");
    CHECK(mf.set & MLXR_MF_SEED && mf.seed == -7, "seed");
    CHECK(mf.set & MLXR_MF_NUM_CTX && mf.num_ctx == 512, "num_ctx");
    CHECK(!(mf.set & MLXR_MF_TOP_P), "top_p not set");
    CHECK(mf.n_stops == 2 && !strcmp(mf.stops[0], "<|im_end|>") &&
              !strcmp(mf.stops[1], "say \"hi\""), "stops");
    CHECK(mf.system && !strcmp(mf.system, "You are terse.\n  Really."), "system '%s'",
          mf.system ? mf.system : "");
    CHECK(mf.tmpl && !strcmp(mf.tmpl, "{{ .System }} {{ .Prompt }}"), "template");
    CHECK(mf.license && !strcmp(mf.license, "MIT\n\nsecond\npart"), "license '%s'",
          mf.license ? mf.license : "");
    CHECK(mf.n_msgs == 2 && !strcmp(mf.msgs[0].role, "user") &&
              !strcmp(mf.msgs[0].content, "Is it?") && !strcmp(mf.msgs[1].content, "Yes."),
          "messages");

    /* catalog JSON round trip */
    bool oom = false;
    char *js = mlxr_modelfile_to_json(&mf, &oom);
    CHECK(js && !oom, "to_json");
    json_t *o = js ? json_loads(js, 0, NULL) : NULL;
    mlxr_modelfile back = {0};
    CHECK(o && mlxr_modelfile_from_json(o, &back, &err) == MLXR_OK, "from_json: %s", err.msg);
    bool oom2 = false;
    char *js2 = mlxr_modelfile_to_json(&back, &oom2);
    CHECK(js && js2 && !strcmp(js, js2), "json round trip:\n%s\n%s", js ? js : "", js2 ? js2 : "");
    json_decref(o);
    free(js2);
    mlxr_modelfile_free(&back);

    /* the rendered Modelfile parses back to the same settings */
    char *text2 = mlxr_modelfile_render(&mf, "/blobs/x");
    CHECK(text2 != NULL, "render");
    mlxr_modelfile re;
    st = text2 ? parse(text2, &re, &err) : MLXR_ERR_NOMEM;
    CHECK(st == MLXR_OK, "reparse: %s\n%s", err.msg, text2 ? text2 : "");
    if (st == MLXR_OK) {
        CHECK(re.from && !strcmp(re.from, "/blobs/x"), "rendered FROM");
        js2 = mlxr_modelfile_to_json(&re, &oom2);
        CHECK(js && js2 && !strcmp(js, js2), "render round trip:\n%s\n%s\n%s", text2,
              js ? js : "", js2 ? js2 : "");
        free(js2);
        mlxr_modelfile_free(&re);
    }
    free(text2);

    /* Ollama's show "parameters": name padded to 30, a space, strings as Go quotes them */
    char *pt = mlxr_modelfile_params_text(&mf);
    CHECK(pt && strstr(pt, "temperature                    0.25\n") &&
              strstr(pt, "stop                           \"say \\\"hi\\\"\"") &&
              strstr(pt, "seed                           -7"), "params text:\n%s", pt ? pt : "");
    CHECK(pt && pt[strlen(pt) - 1] != '\n', "no final newline");
    free(pt);
    free(js);
    mlxr_modelfile_free(&mf);

    /* single-line SYSTEM, no trailing newline, empty file */
    st = parse("FROM m\nSYSTEM You are a pirate.", &mf, &err);
    CHECK(st == MLXR_OK && mf.system && !strcmp(mf.system, "You are a pirate."), "one-line system");
    mlxr_modelfile_free(&mf);
    st = parse("", &mf, &err);
    CHECK(st == MLXR_OK && !mf.from, "empty modelfile parses (FROM is checked by create)");
    mlxr_modelfile_free(&mf);
    /* a stop with a newline keeps it through render and reparse */
    st = parse("FROM m\nPARAMETER stop \"\"\"\nUser:\"\"\"\n", &mf, &err);
    CHECK(st == MLXR_OK && mf.n_stops == 1 && !strcmp(mf.stops[0], "\nUser:"), "newline stop");
    text2 = st == MLXR_OK ? mlxr_modelfile_render(&mf, "m") : NULL;
    mlxr_modelfile_free(&mf);
    st = text2 ? parse(text2, &mf, &err) : MLXR_ERR_NOMEM;
    CHECK(st == MLXR_OK && mf.n_stops == 1 && !strcmp(mf.stops[0], "\nUser:"),
          "newline stop round trip: %s", text2 ? text2 : "");
    free(text2);
    mlxr_modelfile_free(&mf);
}

static void test_structured(void) {
    json_t *o = json_loads("{\"from\":\"base\",\"system\":\"S\",\"template\":\"T\","
                           "\"license\":[\"a\",\"b\"],\"parameters\":{\"temperature\":0,"
                           "\"num_predict\":8.0,\"stop\":[\"x\",\"y\"],\"top_p\":\"0.5\"},"
                           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 0, NULL);
    mlxr_modelfile mf = {0};
    mlxr_err err = {0};
    CHECK(o && mlxr_modelfile_from_json(o, &mf, &err) == MLXR_OK, "structured: %s", err.msg);
    CHECK(mf.from && !strcmp(mf.from, "base") && mf.system && !strcmp(mf.system, "S") &&
              mf.tmpl && !strcmp(mf.tmpl, "T") && mf.license && !strcmp(mf.license, "a\n\nb"),
          "strings");
    CHECK((mf.set & MLXR_MF_TEMPERATURE) && mf.temperature == 0 && mf.num_predict == 8 &&
              mf.top_p == 0.5f && mf.n_stops == 2 && mf.n_msgs == 1, "parameters");
    json_decref(o);
    /* a later layer replaces stops and messages, keeps other parameters */
    o = json_loads("{\"parameters\":{\"stop\":\"z\",\"top_k\":3},\"messages\":[]}", 0, NULL);
    CHECK(o && mlxr_modelfile_from_json(o, &mf, &err) == MLXR_OK, "layer: %s", err.msg);
    CHECK(mf.n_stops == 1 && !strcmp(mf.stops[0], "z") && mf.n_msgs == 0 && mf.top_k == 3 &&
              mf.num_predict == 8, "layered");
    json_decref(o);
    mlxr_modelfile_free(&mf);

    static const char *const bad[] = {
        "{\"parameters\":{\"temperature\":\"hot\"}}",
        "{\"parameters\":{\"temperature\":true}}",
        "{\"parameters\":{\"temperature\":99}}",
        "{\"parameters\":{\"mirostat\":1}}",
        "{\"parameters\":[1]}",
        "{\"parameters\":{\"stop\":[[\"x\"]]}}",
        "{\"parameters\":{\"stop\":\"\"}}",
        "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
        "{\"messages\":[{\"role\":\"user\"}]}",
        "{\"messages\":{}}",
        "{\"system\":5}",
        "{\"license\":5}",
        "{\"license\":[5]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o = json_loads(bad[i], 0, NULL);
        memset(&mf, 0, sizeof mf);
        err.msg[0] = '\0';
        CHECK(o && mlxr_modelfile_from_json(o, &mf, &err) == MLXR_ERR_INVALID && err.msg[0],
              "bad structured %s accepted", bad[i]);
        mlxr_modelfile_free(&mf);
        json_decref(o);
    }
}

static void test_bad(void) {
    static const char *const bad[] = {
        "FROM m\nSYSTEM \"\"\"never closed\n",
        "FROM m\nSYSTEM \"\"\"\"\"",
        "FROM m\nPARAMETER stop \"open\n",
        "FROM m\nSYSTEM \"\"\"x\"\"\" trailing\n",
        "FROM m\nPARAMETER temperature hot\n",
        "FROM m\nPARAMETER temperature 0.5x\n",
        "FROM m\nPARAMETER temperature nan\n",
        "FROM m\nPARAMETER temperature 1e999\n",
        "FROM m\nPARAMETER temperature 3\n",
        "FROM m\nPARAMETER top_k 1.5\n",
        "FROM m\nPARAMETER top_k 99999999999999999999999\n",
        "FROM m\nPARAMETER seed 99999999999999999999999\n",
        "FROM m\nPARAMETER num_predict 0\n",
        "FROM m\nPARAMETER num_ctx -1\n",
        "FROM m\nPARAMETER top_k\n",
        "FROM m\nPARAMETER\n",
        "FROM m\nPARAMETER num_gpu 99\n",
        "FROM m\nMESSAGE tool hi\n",
        "FROM m\nMESSAGE\n",
        "FROM m\nADAPTER ./lora.gguf\n",
        "FROM m\nQUANTIZE q4\n",
        "FROM m\nTHISISAVERYLONGCOMMANDNAME x\n",
        "FROM\n",
        "FROM m\n\"quoted\"\n",
    };
    mlxr_modelfile mf;
    mlxr_err err;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err.msg[0] = '\0';
        mlxr_status st = parse(bad[i], &mf, &err);
        CHECK(st == MLXR_ERR_INVALID && err.msg[0], "bad modelfile %zu accepted: %s", i, bad[i]);
        CHECK(!mf.from && !mf.system && !mf.n_stops, "bad modelfile %zu left settings", i);
    }
    CHECK(parse("FROM m\nPARAMETER num_gpu 99\n", &mf, &err) == MLXR_ERR_INVALID &&
              strstr(err.msg, "line 2") && strstr(err.msg, "num_gpu"), "message: %s", err.msg);
    /* NUL inside */
    static const char nul[] = "FROM m\nSYSTEM a\0b\n";
    CHECK(mlxr_modelfile_parse(nul, sizeof nul - 1, &mf, &err) == MLXR_ERR_INVALID, "NUL");
    /* too many stops */
    char many[2048] = "FROM m\n";
    for (int i = 0; i < MLXR_MF_MAX_STOPS + 1; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "PARAMETER stop s%d\n", i);
    CHECK(parse(many, &mf, &err) == MLXR_ERR_INVALID, "17 stops accepted");
    /* a value over the limit (2 MiB SYSTEM) */
    size_t big = (2u << 20) + 64;
    char *huge = malloc(big + 1);
    if (huge) {
        memcpy(huge, "FROM m\nSYSTEM ", 14);
        memset(huge + 14, 'a', big - 14);
        huge[big] = '\0';
        CHECK(parse(huge, &mf, &err) == MLXR_ERR_INVALID, "huge value accepted");
        memcpy(huge + 14, "\"\"\"", 3);
        CHECK(parse(huge, &mf, &err) == MLXR_ERR_INVALID, "huge unterminated value accepted");
        free(huge);
    }
}

/* Random bytes and random mutations of a good file: an error or a result, never a crash (ASan
 * checks the memory); whatever parses renders and reparses. */
static void test_random(void) {
    uint64_t s = test_seed();
    static const char *const pieces[] = {"FROM ", "PARAMETER ", "stop ", "temperature ", "SYSTEM ",
                                         "TEMPLATE ", "MESSAGE ", "user ", "\"\"\"", "\"", "\\",
                                         "\n", "#", " ", "0.5", "-1", "x", "\r", "LICENSE "};
    for (int it = 0; it < 3000; it++) {
        char buf[512];
        size_t n = 0;
        int k = (int)(test_rng_u64(&s) % 24);
        for (int i = 0; i < k && n < 400; i++) {
            const char *p = pieces[test_rng_u64(&s) % (sizeof pieces / sizeof *pieces)];
            size_t l = strlen(p);
            memcpy(buf + n, p, l);
            n += l;
        }
        if (it % 3 == 0 && n) buf[test_rng_u64(&s) % n] = (char)(test_rng_u64(&s) & 0xff);
        buf[n] = '\0';
        mlxr_modelfile mf;
        mlxr_err err;
        if (mlxr_modelfile_parse(buf, n, &mf, &err) != MLXR_OK) continue;
        char *r = mlxr_modelfile_render(&mf, "m");
        CHECK(r != NULL, "render");
        mlxr_modelfile_free(&mf);
        if (r && mlxr_modelfile_parse(r, strlen(r), &mf, &err) == MLXR_OK) mlxr_modelfile_free(&mf);
        free(r);
    }
}

static void test_apply(void) {
    mlxr_modelfile mf;
    mlxr_err err = {0};
    CHECK(parse("FROM m\nPARAMETER temperature 0\nPARAMETER num_predict 8\nPARAMETER stop END\n"
                "PARAMETER top_k 5\nSYSTEM be brief\nMESSAGE user q\nMESSAGE assistant a\n",
                &mf, &err) == MLXR_OK, "parse: %s", err.msg);
    mlxr_api_req in;
    mlxr_api_error e;
    const char *body = "{\"model\":\"x\",\"prompt\":\"hi\",\"options\":{\"top_k\":9}}";
    CHECK(mlxr_api_parse(MLXR_API_OLLAMA_GENERATE, body, strlen(body), &in, &e), "req");
    mlxr_api_req out;
    mlxr_modelfile_applied keep;
    CHECK(mlxr_modelfile_apply(&mf, &in, false, &out, &keep), "apply");
    CHECK(out.params.temperature == 0 && out.params.max_tokens == 8 && out.max_tokens_set &&
              out.params.top_k == 9 && out.n_stops == 1 && !strcmp(out.stops[0], "END") &&
              out.system && !strcmp(out.system, "be brief") && out.kind == MLXR_API_OLLAMA_GENERATE,
          "generate defaults");
    mlxr_modelfile_applied_free(&keep);
    /* with a template: system, messages, prompt as a chat */
    CHECK(mlxr_modelfile_apply(&mf, &in, true, &out, &keep), "apply");
    CHECK(out.kind == MLXR_API_OLLAMA_CHAT && out.n_msgs == 4 &&
              !strcmp(out.msgs[0].role, "system") && !strcmp(out.msgs[1].content, "q") &&
              !strcmp(out.msgs[3].role, "user") && !strcmp(out.msgs[3].content, "hi"),
          "generate with messages");
    mlxr_modelfile_applied_free(&keep);
    mlxr_api_req_free(&in);
    /* the request's system and options win */
    body = "{\"model\":\"x\",\"prompt\":\"hi\",\"system\":\"mine\",\"options\":{\"temperature\":1,"
           "\"num_predict\":3,\"stop\":[\"S\"]}}";
    CHECK(mlxr_api_parse(MLXR_API_OLLAMA_GENERATE, body, strlen(body), &in, &e), "req");
    CHECK(mlxr_modelfile_apply(&mf, &in, false, &out, &keep), "apply");
    CHECK(out.params.temperature == 1 && out.params.max_tokens == 3 && out.n_stops == 1 &&
              !strcmp(out.stops[0], "S") && !strcmp(out.system, "mine") && out.params.top_k == 5,
          "request wins");
    mlxr_modelfile_applied_free(&keep);
    mlxr_api_req_free(&in);
    /* num_predict -1 (until the context ends) given by the request wins too */
    body = "{\"model\":\"x\",\"prompt\":\"hi\",\"options\":{\"num_predict\":-1}}";
    CHECK(mlxr_api_parse(MLXR_API_OLLAMA_GENERATE, body, strlen(body), &in, &e), "req");
    CHECK(mlxr_modelfile_apply(&mf, &in, false, &out, &keep), "apply");
    CHECK(!out.max_tokens_set, "num_predict -1 overridden by the Modelfile");
    mlxr_modelfile_applied_free(&keep);
    mlxr_api_req_free(&in);
    /* chat: SYSTEM only without a system message; MESSAGEs first */
    body = "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"u\"}]}";
    CHECK(mlxr_api_parse(MLXR_API_OLLAMA_CHAT, body, strlen(body), &in, &e), "req");
    CHECK(mlxr_modelfile_apply(&mf, &in, true, &out, &keep), "apply");
    CHECK(out.n_msgs == 4 && !strcmp(out.msgs[0].content, "be brief") &&
              !strcmp(out.msgs[3].content, "u"), "chat prepend");
    mlxr_modelfile_applied_free(&keep);
    mlxr_api_req_free(&in);
    body = "{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"own\"},"
           "{\"role\":\"user\",\"content\":\"u\"}]}";
    CHECK(mlxr_api_parse(MLXR_API_CHAT, body, strlen(body), &in, &e), "req");
    CHECK(mlxr_modelfile_apply(&mf, &in, true, &out, &keep), "apply");
    CHECK(out.n_msgs == 4 && !strcmp(out.msgs[0].content, "q") &&
              !strcmp(out.msgs[2].content, "own"), "chat keeps its system");
    mlxr_modelfile_applied_free(&keep);
    mlxr_api_req_free(&in);
    mlxr_modelfile_free(&mf);
}

int main(void) {
    test_good();
    test_structured();
    test_bad();
    test_random();
    test_apply();
    return test_finish("server_modelfile");
}
