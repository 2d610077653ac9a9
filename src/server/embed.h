/*
 * embed.h - the embedding endpoints: OpenAI POST /v1/embeddings, Ollama POST /api/embed and the
 * legacy POST /api/embeddings (embed.c).
 *
 * Every endpoint pools the same way: the last token's final hidden state (MLXR_POOLING_LAST),
 * which is what llama.cpp gives for a Llama model without pooling metadata (the reference in
 * tests/data/embed). Texts are tokenized with BOS as the model asks. /v1/embeddings and /api/embed
 * return unit-length (L2-normalized) vectors, as llama.cpp's server and Ollama do;
 * /api/embeddings returns the raw vector, as Ollama's legacy endpoint does.
 *
 * The body parser is separate from the handlers (no sockets, no model) so it can be unit-tested
 * and fuzzed like request.c.
 */
#ifndef MLXR_SERVER_EMBED_H
#define MLXR_SERVER_EMBED_H

#include "server/http.h"
#include "server/request.h"

typedef enum mlxr_embed_kind {
    MLXR_EMBED_OPENAI,        /* POST /v1/embeddings */
    MLXR_EMBED_OLLAMA,        /* POST /api/embed */
    MLXR_EMBED_OLLAMA_LEGACY, /* POST /api/embeddings */
} mlxr_embed_kind;

/* One input: a text (ids == NULL) or token ids given by the client (text == NULL). */
typedef struct mlxr_embed_input {
    char *text;
    size_t len;
    int32_t *ids;
    size_t n_ids;
} mlxr_embed_input;

/* A validated embedding request; everything owned (mlxr_embed_req_free). */
typedef struct mlxr_embed_req {
    mlxr_embed_kind kind;
    char *model;          /* NULL: the server's default model */
    mlxr_embed_input *in; /* n_in inputs; Ollama allows none (the model is only loaded) */
    size_t n_in;
    bool base64;          /* OpenAI encoding_format "base64" (little-endian float32 bytes) */
    bool truncate;        /* Ollama: cut inputs to the context (default); false: 400 */
    int32_t num_ctx;      /* Ollama options.num_ctx; 0 = unset */
    int64_t keep_alive_s; /* Ollama keep_alive; -2 = unset */
} mlxr_embed_req;

/*
 * Parse and validate a body. OpenAI: {"input": string | [string] | [int] | [[int]] (non-empty, at
 * most 2048 inputs, no empty string or array), "model"?, "encoding_format"?: "float" | "base64",
 * "dimensions": refused (400), "user"?}. Ollama /api/embed: {"model"?, "input"?: string | [string],
 * "truncate"?: bool, "options"?: {"num_ctx"?: int, ...}, "keep_alive"?}; /api/embeddings:
 * {"model"?, "prompt"?: string, "options"?, "keep_alive"?}. Token ids are range-checked later,
 * against the model. False with *e set (400) on a bad body; *out is then empty.
 */
bool mlxr_embed_parse(mlxr_embed_kind kind, const char *body, size_t len, mlxr_embed_req *out,
                      mlxr_api_error *e);
void mlxr_embed_req_free(mlxr_embed_req *r);

/* Base64 (RFC 4648, padded) of n bytes into out (4 * ((n + 2) / 3) + 1 bytes, NUL-terminated). */
void mlxr_embed_base64(const uint8_t *in, size_t n, char *out);

enum MHD_Result mlxr_embed_openai(mlxr_http_req *r);
enum MHD_Result mlxr_embed_ollama(mlxr_http_req *r);
enum MHD_Result mlxr_embed_ollama_legacy(mlxr_http_req *r);

#endif
