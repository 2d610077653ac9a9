/*
 * fuzz_http_json.c - libFuzzer harness for the daemon's request layer: the JSON body parsers and
 * validators of every endpoint (src/server/request.c; tools kept as JSON must parse back), and the
 * stop-string / UTF-8 matcher fed with the parsed prompt (src/server/stopmatch.c). No sockets.
 *
 * Input: byte 0 picks the parser (mod 7: completions, chat, Ollama generate, Ollama chat,
 * tokenize, detokenize, model-only); the remaining bytes are the request body.
 * The server sources are compiled into the harness because the fuzz build links only libmlxr.
 */
#include "../src/server/request.c"
#include "../src/server/stopmatch.c"

#include <stdint.h>

/* Push text through a matcher in pieces of 1..5 bytes; the output must be a prefix of it. */
static void run_matcher(const mlxr_api_req *r, const char *text) {
    mlxr_stopmatch m;
    if (mlxr_stopmatch_init(&m, r->params.stop, r->params.n_stop, NULL) != MLXR_OK) return;
    size_t len = strlen(text), at = 0, emitted = 0;
    char *out = malloc(len + 16);
    bool stopped = false;
    while (out && at < len && !stopped) {
        size_t k = 1 + at % 5, n = 0;
        if (k > len - at) k = len - at;
        stopped = mlxr_stopmatch_feed(&m, text + at, k, out, len + 16, &n);
        if (memcmp(out, text + emitted, n) != 0) __builtin_trap();
        emitted += n;
        at += k;
    }
    if (out && !stopped) {
        size_t n = 0;
        mlxr_stopmatch_flush(&m, out, len + 16, &n);
        if (emitted + n != len) __builtin_trap(); /* without a stop every byte comes out */
    }
    size_t sl = 0;
    char *clean = mlxr_utf8_sanitize(text, len, &sl);
    if (clean && !mlxr_utf8_valid(clean, sl)) __builtin_trap();
    free(clean);
    free(out);
    mlxr_stopmatch_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int which = data[0] % 7;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    mlxr_api_error e;
    if (which < 4) {
        mlxr_api_req r;
        if (mlxr_api_parse((mlxr_api_kind)which, body, len, &r, &e)) {
            if (r.tools_json) { /* kept for the chat template: must be a JSON array again */
                json_t *t = json_loads(r.tools_json, 0, NULL);
                if (!json_is_array(t)) __builtin_trap();
                json_decref(t);
            }
            if (r.prompt) run_matcher(&r, r.prompt);
            for (size_t i = 0; i < r.n_msgs; i++) run_matcher(&r, r.msgs[i].content);
            mlxr_api_req_free(&r);
        } else if (e.status < 400 || e.status > 599 || !e.message[0]) {
            __builtin_trap(); /* a refusal always carries a status and a message */
        }
    } else if (which == 4) {
        mlxr_api_tokenize t;
        if (mlxr_api_parse_tokenize(body, len, &t, &e)) mlxr_api_tokenize_free(&t);
    } else if (which == 5) {
        mlxr_api_detokenize t;
        if (mlxr_api_parse_detokenize(body, len, &t, &e)) mlxr_api_detokenize_free(&t);
    } else {
        char *model = NULL;
        mlxr_api_parse_model_only(body, len, &model, &e);
        free(model);
    }
    return 0;
}
