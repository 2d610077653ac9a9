/*
 * test_embed_request.c - the embedding endpoints' body parser (src/server/embed.c) and base64
 * encoder: accepted shapes give the right inputs, every malformed body a 400 naming the
 * parameter, and base64 matches RFC 4648's test vectors (section 10).
 */
#include "test.h"

#include "server/embed.h"

static bool parse(mlxr_embed_kind k, const char *body, mlxr_embed_req *q, mlxr_api_error *e) {
    return mlxr_embed_parse(k, body, strlen(body), q, e);
}

static void accepted(void) {
    mlxr_embed_req q;
    mlxr_api_error e;
    CHECK(parse(MLXR_EMBED_OPENAI, "{\"input\":\"hello\",\"model\":\"m\"}", &q, &e) &&
              q.n_in == 1 && q.in[0].text && !strcmp(q.in[0].text, "hello") && q.in[0].len == 5 &&
              !strcmp(q.model, "m") && !q.base64,
          "one text: %s", e.message);
    mlxr_embed_req_free(&q);
    CHECK(parse(MLXR_EMBED_OPENAI,
                "{\"input\":[\"a\",\"b\\u00e9\"],\"encoding_format\":\"base64\"}", &q, &e) &&
              q.n_in == 2 && !strcmp(q.in[1].text, "b\xc3\xa9") && q.base64 && !q.model,
          "two texts: %s", e.message);
    mlxr_embed_req_free(&q);
    CHECK(parse(MLXR_EMBED_OPENAI, "{\"input\":[1,2,3]}", &q, &e) && q.n_in == 1 && !q.in[0].text &&
              q.in[0].n_ids == 3 && q.in[0].ids[2] == 3,
          "token ids: %s", e.message);
    mlxr_embed_req_free(&q);
    CHECK(
        parse(MLXR_EMBED_OPENAI, "{\"input\":[[1],[4,5]],\"encoding_format\":\"float\"}", &q, &e) &&
            q.n_in == 2 && q.in[1].n_ids == 2 && q.in[1].ids[0] == 4,
        "arrays of token ids: %s", e.message);
    mlxr_embed_req_free(&q);
    CHECK(parse(MLXR_EMBED_OLLAMA,
                "{\"model\":\"m\",\"input\":[\"a\",\"\"],\"truncate\":false,"
                "\"options\":{\"num_ctx\":64,\"temperature\":1},\"keep_alive\":\"1m\"}",
                &q, &e) &&
              q.n_in == 2 && q.in[1].len == 0 && !q.truncate && q.num_ctx == 64 &&
              q.keep_alive_s == 60,
          "ollama embed: %s", e.message);
    mlxr_embed_req_free(&q);
    CHECK(parse(MLXR_EMBED_OLLAMA, "{\"input\":\"\"}", &q, &e) && q.n_in == 0 && q.truncate &&
              q.keep_alive_s == -2,
          "ollama embed of nothing: %s", e.message);
    mlxr_embed_req_free(&q);
    CHECK(parse(MLXR_EMBED_OLLAMA, "{}", &q, &e) && q.n_in == 0, "ollama: no input");
    mlxr_embed_req_free(&q);
    CHECK(parse(MLXR_EMBED_OLLAMA_LEGACY, "{\"prompt\":\"p\",\"keep_alive\":-1}", &q, &e) &&
              q.n_in == 1 && !strcmp(q.in[0].text, "p") && q.keep_alive_s == -1,
          "legacy: %s", e.message);
    mlxr_embed_req_free(&q);
}

static void refused(void) {
    static const struct {
        mlxr_embed_kind k;
        const char *body, *param;
    } bad[] = {
        {MLXR_EMBED_OPENAI, "{}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":null}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":\"\"}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":[]}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":[[]]}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":[\"a\",\"\"]}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":[\"a\",[1]]}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":[[1],\"a\"]}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":[1,\"a\"]}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":[1,-1]}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":[1,1.5]}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":[4294967296]}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":{}}", "input"},
        {MLXR_EMBED_OPENAI, "{\"input\":\"a\\u0000b\"}", ""}, /* jansson refuses NUL */
        {MLXR_EMBED_OPENAI, "{\"input\":\"a\",\"dimensions\":8}", "dimensions"},
        {MLXR_EMBED_OPENAI, "{\"input\":\"a\",\"encoding_format\":\"int8\"}", "encoding_format"},
        {MLXR_EMBED_OPENAI, "{\"input\":\"a\",\"model\":1}", "model"},
        {MLXR_EMBED_OPENAI, "[\"a\"]", ""},
        {MLXR_EMBED_OPENAI, "{\"input\":\"a\",\"input\":\"b\"}", ""},
        {MLXR_EMBED_OPENAI, "", ""},
        {MLXR_EMBED_OLLAMA, "{\"input\":5}", "input"},
        {MLXR_EMBED_OLLAMA, "{\"input\":[1]}", "input"},
        {MLXR_EMBED_OLLAMA, "{\"input\":\"a\",\"truncate\":1}", "truncate"},
        {MLXR_EMBED_OLLAMA, "{\"input\":\"a\",\"options\":[]}", "options"},
        {MLXR_EMBED_OLLAMA, "{\"input\":\"a\",\"options\":{\"num_ctx\":0}}", "options"},
        {MLXR_EMBED_OLLAMA, "{\"input\":\"a\",\"keep_alive\":\"soon\"}", "keep_alive"},
        {MLXR_EMBED_OLLAMA, "{\"input\":\"a\",\"keep_alive\":true}", "keep_alive"},
        {MLXR_EMBED_OLLAMA_LEGACY, "{\"prompt\":[\"a\"]}", "prompt"},
        {MLXR_EMBED_OLLAMA_LEGACY, "{\"prompt\":1}", "prompt"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mlxr_embed_req q;
        mlxr_api_error e = {0};
        bool ok = parse(bad[i].k, bad[i].body, &q, &e);
        CHECK(!ok && e.status == 400 && !strcmp(e.param, bad[i].param) && e.message[0] &&
                  q.n_in == 0 && !q.in && !q.model,
              "%s: accepted or wrong error (status %d, param '%s': %s)", bad[i].body, e.status,
              e.param, e.message);
    }
    /* more than 2048 inputs */
    size_t cap = 2049 * 4 + 32;
    char *big = malloc(cap);
    size_t n = (size_t)snprintf(big, cap, "{\"input\":[");
    for (int i = 0; i < 2049; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s[1]", i ? "," : "");
    snprintf(big + n, cap - n, "]}");
    mlxr_embed_req q;
    mlxr_api_error e = {0};
    CHECK(!parse(MLXR_EMBED_OPENAI, big, &q, &e) && strstr(e.message, "2048"), "2049 inputs: %s",
          e.message);
    free(big);
}

static void base64(void) {
    static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char buf[16];
        mlxr_embed_base64((const uint8_t *)in[i], strlen(in[i]), buf);
        CHECK(!strcmp(buf, out[i]), "base64(\"%s\") = \"%s\", want \"%s\"", in[i], buf, out[i]);
    }
    const uint8_t hi[3] = {0xff, 0xfe, 0xfd};
    char buf[8];
    mlxr_embed_base64(hi, 3, buf);
    CHECK(!strcmp(buf, "//79"), "base64 of high bytes: %s", buf);
}

int main(void) {
    accepted();
    refused();
    base64();
    return test_finish("server_embed_request");
}
