/*
 * test_request.c - request validation: each malformed body gets a 400 naming the parameter at
 * fault, each valid one parses to the expected fields; the built-in chat layout is exact.
 */
#include "test.h"

#include "server/request.h"

typedef struct bad_case {
    mlxr_api_kind kind;
    const char *body, *param; /* param: expected e.param ("" = none) */
} bad_case;

static const bad_case bad[] = {
    {MLXR_API_COMPLETION, "", ""},
    {MLXR_API_COMPLETION, "{", ""},
    {MLXR_API_COMPLETION, "[1,2]", ""},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\"} x", ""},
    {MLXR_API_COMPLETION, "{}", "prompt"},
    {MLXR_API_COMPLETION, "{\"prompt\":5}", "prompt"},
    {MLXR_API_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\\u0000b\"}", ""}, /* jansson refuses NUL */
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"n\":2}", "n"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"temperature\":\"hot\"}", "temperature"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"temperature\":3}", "temperature"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"top_p\":1.5}", "top_p"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":0}", "max_tokens"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":1.5}", "max_tokens"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":\"9\"}", "max_tokens"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"\"]}", "stop"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\"]}", "stop"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"stop\":7}", "stop"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"stream\":1}", "stream"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"seed\":\"x\"}", "seed"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"presence_penalty\":5}", "presence_penalty"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"model\":[]}", "model"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"stream_options\":3}", "stream_options"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":true}", "logprobs"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":6}", "logprobs"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":[1]}", "logit_bias"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"x\":1}}", "logit_bias"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"-1\":1}}", "logit_bias"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\" 1\":1}}", "logit_bias"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"99999999999\":1}}", "logit_bias"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"5\":101}}", "logit_bias"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"5\":\"1\"}}", "logit_bias"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"response_format\":\"json\"}", "response_format"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"response_format\":{\"type\":\"xml\"}}",
     "response_format"},
    {MLXR_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":1}",
     "logprobs"},
    {MLXR_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}",
     "top_logprobs"},
    {MLXR_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,"
     "\"top_logprobs\":21}", "top_logprobs"},
    {MLXR_API_OLLAMA_GENERATE, "{\"prompt\":\"a\",\"format\":\"yaml\"}", "format"},
    {MLXR_API_OLLAMA_GENERATE, "{\"prompt\":\"a\",\"format\":[]}", "format"},
    {MLXR_API_OLLAMA_GENERATE, "{\"prompt\":\"a\",\"logprobs\":1}", "logprobs"},
    {MLXR_API_OLLAMA_CHAT, "{\"messages\":[],\"top_logprobs\":21}", "top_logprobs"},
    {MLXR_API_OLLAMA_GENERATE, "{\"prompt\":\"a\",\"options\":{\"frequency_penalty\":3}}",
     "frequency_penalty"},
    {MLXR_API_COMPLETION, "{\"prompt\":\"a\",\"prompt\":\"b\"}", ""},
    {MLXR_API_CHAT, "{}", "messages"},
    {MLXR_API_CHAT, "{\"messages\":[]}", "messages"},
    {MLXR_API_CHAT, "{\"messages\":{}}", "messages"},
    {MLXR_API_CHAT, "{\"messages\":[1]}", "messages[0]"},
    {MLXR_API_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role"},
    {MLXR_API_CHAT, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages[0].role"},
    {MLXR_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content"},
    {MLXR_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
     "messages[0].content"},
    {MLXR_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":-1}",
     "max_completion_tokens"},
    {MLXR_API_OLLAMA_GENERATE, "{\"prompt\":\"a\",\"options\":[]}", "options"},
    {MLXR_API_OLLAMA_GENERATE, "{\"prompt\":\"a\",\"options\":{\"num_predict\":0}}", "num_predict"},
    {MLXR_API_OLLAMA_GENERATE, "{\"prompt\":\"a\",\"options\":{\"num_ctx\":0}}", "num_ctx"},
    {MLXR_API_OLLAMA_GENERATE, "{\"prompt\":\"a\",\"options\":{\"top_k\":-1}}", "top_k"},
    {MLXR_API_OLLAMA_GENERATE, "{\"prompt\":\"a\",\"options\":{\"stop\":{}}}", "stop"},
    {MLXR_API_OLLAMA_GENERATE, "{\"prompt\":\"a\",\"images\":[\"AAAA\"]}", "images"},
    {MLXR_API_OLLAMA_GENERATE, "{\"prompt\":\"a\",\"raw\":\"yes\"}", "raw"},
    {MLXR_API_OLLAMA_CHAT, "{\"messages\":\"hi\"}", "messages"},
};

static void test_bad(void) {
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mlxr_api_req r;
        mlxr_api_error e;
        memset(&e, 0, sizeof e);
        bool ok = mlxr_api_parse(bad[i].kind, bad[i].body, strlen(bad[i].body), &r, &e);
        CHECK(!ok, "case %zu (%s) accepted", i, bad[i].body);
        CHECK(e.status == 400 && !strcmp(e.type, "invalid_request_error"), "case %zu: status %d",
              i, e.status);
        CHECK(!strcmp(e.param, bad[i].param), "case %zu: param '%s', want '%s' (%s)", i, e.param,
              bad[i].param, e.message);
        CHECK(e.message[0], "case %zu: no message", i);
        CHECK(r.model == NULL && r.prompt == NULL && r.msgs == NULL && r.stops == NULL &&
                  r.bias == NULL,
              "case %zu: fields left allocated", i);
    }
}

static void test_good(void) {
    mlxr_api_req r;
    mlxr_api_error e;
    const char *b = "{\"model\":\"m:1\",\"prompt\":[\"hi\"],\"max_tokens\":5,\"temperature\":0,"
                    "\"top_p\":0.5,\"seed\":-1,\"stop\":\"\\n\",\"stream\":true,"
                    "\"stream_options\":{\"include_usage\":true},\"n\":1,\"unknown\":{}}";
    CHECK(mlxr_api_parse(MLXR_API_COMPLETION, b, strlen(b), &r, &e), "%s", e.message);
    CHECK(!strcmp(r.model, "m:1") && !strcmp(r.prompt, "hi"), "strings");
    CHECK(r.params.max_tokens == 5 && r.max_tokens_set && r.params.temperature == 0 &&
              r.params.top_p == 0.5f, "numbers");
    CHECK(r.seed_set && r.params.seed == UINT64_MAX, "seed -1 wraps");
    CHECK(r.n_stops == 1 && !strcmp(r.stops[0], "\n") && r.params.n_stop == 1, "stop");
    CHECK(r.stream && r.include_usage, "stream flags");
    mlxr_api_req_free(&r);

    b = "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"assistant\",\"content\":null}],\"max_completion_tokens\":7}";
    CHECK(mlxr_api_parse(MLXR_API_CHAT, b, strlen(b), &r, &e), "%s", e.message);
    CHECK(r.n_msgs == 3 && !strcmp(r.msgs[1].content, "ab") && !strcmp(r.msgs[2].content, ""),
          "messages");
    CHECK(r.params.max_tokens == 7 && !r.stream, "max_completion_tokens, stream off");
    mlxr_api_req_free(&r);

    b = "{\"model\":\"x\",\"prompt\":\"p\",\"system\":\"s\",\"options\":{\"num_predict\":-1,"
        "\"temperature\":0.2,\"top_k\":3,\"seed\":42,\"stop\":[\"a\",\"b\"],\"num_ctx\":64}}";
    CHECK(mlxr_api_parse(MLXR_API_OLLAMA_GENERATE, b, strlen(b), &r, &e), "%s", e.message);
    CHECK(r.stream, "Ollama streams by default");
    CHECK(!r.max_tokens_set && r.params.top_k == 3 && r.params.seed == 42 && r.num_ctx == 64 &&
              r.n_stops == 2 && !strcmp(r.system, "s"), "options");
    mlxr_api_req_free(&r);

    /* sampling extras: penalties, logit bias, logprobs, JSON mode */
    b = "{\"prompt\":\"p\",\"presence_penalty\":0.5,\"frequency_penalty\":-1,"
        "\"logit_bias\":{\"12\":-100,\"0\":2.5},\"logprobs\":3,"
        "\"response_format\":{\"type\":\"json_object\"}}";
    CHECK(mlxr_api_parse(MLXR_API_COMPLETION, b, strlen(b), &r, &e), "%s", e.message);
    CHECK(r.params.presence_penalty == 0.5f && r.params.frequency_penalty == -1, "penalties");
    CHECK(r.n_bias == 2 && r.params.logit_bias == r.bias && r.params.n_logit_bias == 2 &&
              r.bias[0].token == 12 && r.bias[0].bias == -100 && r.bias[1].token == 0 &&
              r.bias[1].bias == 2.5f, "logit_bias");
    CHECK(r.params.logprobs && r.params.top_logprobs == 3 && r.params.json_mode, "logprobs, json");
    mlxr_api_req_free(&r);
    b = "{\"prompt\":\"p\",\"logprobs\":0,\"response_format\":{\"type\":\"text\"}}";
    CHECK(mlxr_api_parse(MLXR_API_COMPLETION, b, strlen(b), &r, &e), "%s", e.message);
    CHECK(r.params.logprobs && r.params.top_logprobs == 0 && !r.params.json_mode, "logprobs 0");
    mlxr_api_req_free(&r);
    b = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,"
        "\"top_logprobs\":20,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}}";
    CHECK(mlxr_api_parse(MLXR_API_CHAT, b, strlen(b), &r, &e), "%s", e.message);
    CHECK(r.params.logprobs && r.params.top_logprobs == 20 && r.params.json_mode, "chat logprobs");
    mlxr_api_req_free(&r);
    b = "{\"prompt\":\"p\",\"format\":\"json\",\"options\":{\"presence_penalty\":1}}";
    CHECK(mlxr_api_parse(MLXR_API_OLLAMA_GENERATE, b, strlen(b), &r, &e), "%s", e.message);
    CHECK(r.params.json_mode && r.params.presence_penalty == 1 && !r.params.logprobs,
          "Ollama format json");
    mlxr_api_req_free(&r);
    b = "{\"prompt\":\"p\",\"top_logprobs\":4}";
    CHECK(mlxr_api_parse(MLXR_API_OLLAMA_GENERATE, b, strlen(b), &r, &e), "%s", e.message);
    CHECK(r.params.logprobs && r.params.top_logprobs == 4, "Ollama top_logprobs");
    mlxr_api_req_free(&r);
    b = "{\"messages\":[],\"format\":{\"type\":\"object\"}}";
    CHECK(mlxr_api_parse(MLXR_API_OLLAMA_CHAT, b, strlen(b), &r, &e) && r.params.json_mode,
          "Ollama format schema");
    mlxr_api_req_free(&r);
    b = "{\"prompt\":\"p\",\"format\":\"\"}";
    CHECK(mlxr_api_parse(MLXR_API_OLLAMA_GENERATE, b, strlen(b), &r, &e) && !r.params.json_mode,
          "Ollama format empty");
    mlxr_api_req_free(&r);

    b = "{\"messages\":[],\"stream\":false}";
    CHECK(mlxr_api_parse(MLXR_API_OLLAMA_CHAT, b, strlen(b), &r, &e), "empty Ollama chat = load");
    CHECK(r.n_msgs == 0 && !r.stream, "load request");
    mlxr_api_req_free(&r);

    mlxr_api_tokenize t;
    b = "{\"content\":\"a\\u00e9\",\"add_special\":false}";
    CHECK(mlxr_api_parse_tokenize(b, strlen(b), &t, &e) && t.content_len == 3 && !t.add_special,
          "tokenize");
    mlxr_api_tokenize_free(&t);
    CHECK(!mlxr_api_parse_tokenize("{}", 2, &t, &e) && !strcmp(e.param, "content"), "no content");
    mlxr_api_detokenize d;
    b = "{\"tokens\":[1,2,3]}";
    CHECK(mlxr_api_parse_detokenize(b, strlen(b), &d, &e) && d.n_tokens == 3 && d.tokens[2] == 3,
          "detokenize");
    mlxr_api_detokenize_free(&d);
    b = "{\"tokens\":[1,-2]}";
    CHECK(!mlxr_api_parse_detokenize(b, strlen(b), &d, &e), "negative token");
    char *model = NULL;
    b = "{\"name\":\"llama3\"}";
    CHECK(mlxr_api_parse_model_only(b, strlen(b), &model, &e) && model && !strcmp(model, "llama3"),
          "Ollama's old 'name'");
    free(model);
}

/* tools are kept as a JSON array for the chat template; other types are refused */
static void test_tools(void) {
    mlxr_api_req r;
    mlxr_api_error e;
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                       "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}";
    CHECK(mlxr_api_parse(MLXR_API_CHAT, body, strlen(body), &r, &e), "tools: %s", e.message);
    CHECK(r.tools_json && !strcmp(r.tools_json, "[{\"type\":\"function\",\"function\":{\"name\":"
                                                "\"f\"}}]"),
          "tools json: %s", r.tools_json ? r.tools_json : "(null)");
    mlxr_api_req_free(&r);
    body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":{}}";
    CHECK(!mlxr_api_parse(MLXR_API_CHAT, body, strlen(body), &r, &e) && e.status == 400 &&
              !strcmp(e.param, "tools"), "tools must be an array");
}

/* Ollama keep_alive durations (Go duration syntax subset), in whole seconds rounded up */
static void test_duration(void) {
    static const struct { const char *s; int64_t want; } ok[] = {
        {"5m", 300}, {"1h30m", 5400}, {"10s", 10}, {"500ms", 1}, {"0", 0}, {"-1", -1},
        {"-5m", -1}, {"300", 300}, {"1.5h", 5400}, {"0s", 0},
        /* huge values clamp to 1e12 s instead of overflowing the conversion (fuzzer find) */
        {"100000000000000000000000000000", 1000000000000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int64_t v = -99;
        CHECK(mlxr_api_parse_duration(ok[i].s, &v) && v == ok[i].want, "duration '%s' -> %lld",
              ok[i].s, (long long)v);
    }
    static const char *const not_dur[] = {"", "m", "5x", "5m-3s", "soon", "5 m",
                                          "inf", "nan", "4e33333", "4e33333h", "1s-infh", "1snanm"};
    for (size_t i = 0; i < sizeof not_dur / sizeof *not_dur; i++) {
        int64_t v = 0;
        CHECK(!mlxr_api_parse_duration(not_dur[i], &v), "'%s' is not a duration", not_dur[i]);
    }
}

int main(void) {
    test_bad();
    test_good();
    test_tools();
    test_duration();
    return test_finish("server_request");
}
