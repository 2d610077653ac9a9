/*
 * request.h - parsing and validating the JSON bodies of the generation endpoints (OpenAI
 * completions / chat completions, Ollama generate / chat) and the small native ones.
 *
 * This layer knows no sockets and no models: bytes in, a validated mlxr_api_req or an API error
 * (HTTP status, OpenAI error type, offending parameter, message) out. That keeps it fuzzable
 * (fuzz/fuzz_http_json.c) and unit-testable. Checks: the body is one JSON object; every known
 * field has the right type and range; strings hold no NUL; n == 1; at most 4 stop strings for
 * OpenAI (16 for Ollama), none empty; messages is a non-empty array of {role, content} with a
 * known role and string (or text-part array) content; tools, if given, an array (kept as JSON for
 * the chat template); logit_bias an object of at most 1024 decimal token ids to numbers in
 * -100..100; logprobs a bool for chat (top_logprobs 0..20, only with it) and an integer 0..5
 * for completions; response_format {"type": "text" | "json_object" | "json_schema"}; Ollama's
 * format "json", "" or a JSON-schema object (the schema is not enforced: any JSON object is
 * allowed); Ollama's logprobs bool and top_logprobs 0..20. Unknown fields are ignored, as
 * OpenAI does.
 */
#ifndef MLXR_SERVER_REQUEST_H
#define MLXR_SERVER_REQUEST_H

#include "server/gen.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mlxr_api_kind {
    MLXR_API_COMPLETION,      /* POST /v1/completions */
    MLXR_API_CHAT,            /* POST /v1/chat/completions */
    MLXR_API_OLLAMA_GENERATE, /* POST /api/generate */
    MLXR_API_OLLAMA_CHAT,     /* POST /api/chat */
} mlxr_api_kind;

typedef struct mlxr_chat_msg {
    char *role;
    char *content;
} mlxr_chat_msg;

/* Bits of mlxr_api_req.opts_set (set by the request parser). */
enum {
    MLXR_OPT_TEMPERATURE = 1u << 0,
    MLXR_OPT_TOP_P = 1u << 1,
    MLXR_OPT_MIN_P = 1u << 2,
    MLXR_OPT_PRESENCE_PENALTY = 1u << 3,
    MLXR_OPT_FREQUENCY_PENALTY = 1u << 4,
    MLXR_OPT_REPEAT_PENALTY = 1u << 5,
    MLXR_OPT_TOP_K = 1u << 6,
    MLXR_OPT_REPEAT_LAST_N = 1u << 7,
    MLXR_OPT_NUM_PREDICT = 1u << 8, /* Ollama's options.num_predict, -1 and -2 included */
};

/* A validated generation request; every string is owned (mlxr_api_req_free). */
typedef struct mlxr_api_req {
    mlxr_api_kind kind;
    char *model;            /* NULL: the server's default model */
    char *prompt;           /* completion / generate; NULL for chat */
    char *system;           /* Ollama generate's system prompt, or NULL */
    bool raw;               /* Ollama generate: no template */
    mlxr_chat_msg *msgs;    /* chat */
    size_t n_msgs;
    char *tools_json;       /* chat: the request's "tools" array as compact JSON, or NULL */
    bool stream;
    bool include_usage;     /* OpenAI stream_options.include_usage */
    bool seed_set;
    uint32_t opts_set;      /* sampling fields the request gave: MLXR_OPT_* bits (so that a
                               model's Modelfile PARAMETERs apply only to the others) */
    bool max_tokens_set;    /* else: 16 for completions, the rest of the context otherwise */
    int32_t num_ctx;        /* Ollama options.num_ctx; 0 = unset */
    int64_t keep_alive_s;   /* Ollama keep_alive in seconds; -1 = forever; -2 = unset */
    char **stops;
    size_t n_stops;
    mlxr_logit_bias *bias;  /* OpenAI logit_bias (token ids not yet checked against a vocabulary) */
    size_t n_bias;
    mlxr_gen_params params; /* params.stop points at `stops`, params.logit_bias at `bias`;
                               params.logprobs / top_logprobs / json_mode as the request asks */
} mlxr_api_req;

/* An API error: HTTP status, OpenAI error type and code, the parameter at fault (or ""). */
typedef struct mlxr_api_error {
    int status;
    const char *type; /* "invalid_request_error", "authentication_error", "server_error", ... */
    char code[48];    /* "" or e.g. "model_not_found", "context_length_exceeded" */
    char param[64];
    char message[384];
} mlxr_api_error;

/* Fill an error (status, type, code, param may be NULL). Returns false, for `return` chains. */
bool mlxr_api_error_set(mlxr_api_error *e, int status, const char *type, const char *code,
                        const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Parse the body of a generation request. On failure returns false with *e set (status 400, or
 * 413 never: the size limit is the HTTP layer's) and *out empty. */
bool mlxr_api_parse(mlxr_api_kind kind, const char *body, size_t len, mlxr_api_req *out,
                    mlxr_api_error *e);
void mlxr_api_req_free(mlxr_api_req *r);

/* Ollama durations: "5m", "1h30m", "10s", "500ms", "-1", or plain seconds. *out_s: seconds
 * (rounded up), -1 for a negative one (forever). False if malformed. */
bool mlxr_api_parse_duration(const char *s, int64_t *out_s);

/* POST /tokenize {"model"?, "content": string, "add_special"?: bool, "parse_special"?: bool}. */
typedef struct mlxr_api_tokenize {
    char *model, *content;
    size_t content_len;
    bool add_special, parse_special;
} mlxr_api_tokenize;
bool mlxr_api_parse_tokenize(const char *body, size_t len, mlxr_api_tokenize *out,
                             mlxr_api_error *e);
void mlxr_api_tokenize_free(mlxr_api_tokenize *t);

/* POST /detokenize {"model"?, "tokens": [int, ...]}. */
typedef struct mlxr_api_detokenize {
    char *model;
    int32_t *tokens;
    size_t n_tokens;
} mlxr_api_detokenize;
bool mlxr_api_parse_detokenize(const char *body, size_t len, mlxr_api_detokenize *out,
                               mlxr_api_error *e);
void mlxr_api_detokenize_free(mlxr_api_detokenize *t);

/* A body holding just a model name: {"model": s} or Ollama's older {"name": s}. *model is
 * malloc'ed (free()) or NULL when absent. */
bool mlxr_api_parse_model_only(const char *body, size_t len, char **model, mlxr_api_error *e);

#endif
