/*
 * fuzz_embed_json.c - libFuzzer harness for the embedding endpoints' body parser
 * (src/server/embed_request.c) and its base64 encoder. No sockets, no model.
 *
 * Input: byte 0 picks the endpoint (mod 3: /v1/embeddings, /api/embed, /api/embeddings); the
 * remaining bytes are the body. A parsed request must be consistent (every input a text or a
 * non-empty id list, never both); a refused one must carry a 400 with a message. Texts are also
 * base64-encoded and checked for length and alphabet.
 * The server sources are compiled into the harness because the fuzz build links only libmlxr.
 */
#include "../src/server/embed_request.c"
#include "../src/server/request.c"

#include <stdint.h>

static void check_base64(const char *s, size_t n) {
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *out = malloc(cap);
    if (!out) return;
    mlxr_embed_base64((const uint8_t *)s, n, out);
    if (strlen(out) != cap - 1) __builtin_trap();
    for (size_t i = 0; out[i]; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", out[i]))
            __builtin_trap();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    mlxr_embed_kind kind = (mlxr_embed_kind)(data[0] % 3);
    mlxr_embed_req q;
    mlxr_api_error e;
    if (mlxr_embed_parse(kind, (const char *)data + 1, size - 1, &q, &e)) {
        if (kind == MLXR_EMBED_OPENAI && q.n_in == 0) __builtin_trap();
        for (size_t i = 0; i < q.n_in; i++) {
            const mlxr_embed_input *in = &q.in[i];
            if (!in->text == !in->ids) __builtin_trap();
            if (in->ids && in->n_ids == 0) __builtin_trap();
            if (in->text) {
                if (strlen(in->text) != in->len) __builtin_trap();
                check_base64(in->text, in->len);
            }
        }
        mlxr_embed_req_free(&q);
    } else if (e.status != 400 && e.status != 500) {
        __builtin_trap();
    } else if (!e.message[0]) {
        __builtin_trap();
    }
    return 0;
}
