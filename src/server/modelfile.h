/*
 * modelfile.h - Ollama Modelfiles for POST /api/create: parsing (the text form and the newer
 * structured JSON fields), storage in the catalog (as JSON text), rendering for /api/show, and
 * applying the stored settings to a request as its defaults.
 *
 * Commands (case-insensitive, one per line; '#' starts a comment line): FROM x, PARAMETER name
 * value (repeatable; `stop` accumulates), SYSTEM, TEMPLATE, LICENSE (repeatable, joined), MESSAGE
 * role content (role system | user | assistant). A value is the rest of the line, a "quoted"
 * string (\" and \\ escapes) or a """triple-quoted""" string that may span lines. Anything else
 * (ADAPTER, an unknown command or parameter, a bad number, a NUL) is an MLXR_ERR_INVALID error
 * with a message naming the line.
 *
 * TEMPLATE is stored and shown, never rendered: it is a Go template, and mlxr renders chat
 * prompts with the model's own Jinja template (tokenizer.chat_template).
 */
#ifndef MLXR_SERVER_MODELFILE_H
#define MLXR_SERVER_MODELFILE_H

#include "mlxr.h"
#include "server/request.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Which parameters a Modelfile sets (mlxr_modelfile.set). */
enum {
    MLXR_MF_TEMPERATURE = 1u << 0,
    MLXR_MF_TOP_K = 1u << 1,
    MLXR_MF_TOP_P = 1u << 2,
    MLXR_MF_MIN_P = 1u << 3,
    MLXR_MF_SEED = 1u << 4,
    MLXR_MF_NUM_PREDICT = 1u << 5,
    MLXR_MF_NUM_CTX = 1u << 6,
    MLXR_MF_REPEAT_PENALTY = 1u << 7,
    MLXR_MF_REPEAT_LAST_N = 1u << 8,
    MLXR_MF_PRESENCE_PENALTY = 1u << 9,
    MLXR_MF_FREQUENCY_PENALTY = 1u << 10,
};

#define MLXR_MF_MAX_STOPS 16
#define MLXR_MF_MAX_MESSAGES 256

typedef struct mlxr_modelfile {
    char *from;                     /* FROM, or NULL */
    char *system, *tmpl, *license;  /* NULL when absent */
    size_t license_len, license_cap; /* LICENSE pieces append (amortized growth) */
    uint32_t set;                   /* MLXR_MF_* */
    float temperature, top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty;
    int32_t top_k, repeat_last_n, num_predict, num_ctx;
    int64_t seed;
    char *stops[MLXR_MF_MAX_STOPS];
    size_t n_stops;
    mlxr_chat_msg *msgs;            /* MESSAGE lines, in order */
    size_t n_msgs;
} mlxr_modelfile;

void mlxr_modelfile_free(mlxr_modelfile *mf);

/* Parse the text of a Modelfile (len bytes, NULs refused) into *mf (zeroed first). */
mlxr_status mlxr_modelfile_parse(const char *text, size_t len, mlxr_modelfile *mf, mlxr_err *err);

/* One PARAMETER: name and its value as text (validated, range-checked). */
mlxr_status mlxr_modelfile_set_param(mlxr_modelfile *mf, const char *name, const char *value,
                                     mlxr_err *err);

/* The structured fields of a create request or of a stored entry, over what *mf holds already:
 * from, system, template, license (string or array of strings), parameters {name: number |
 * string | [values]}, messages [{role, content}]. Given fields replace the ones held (given
 * parameters one by one; stop and messages as a whole), so a base model's stored settings can
 * be read first and a new Modelfile's laid over them. Unknown members are ignored. */
mlxr_status mlxr_modelfile_from_json(json_t *o, mlxr_modelfile *mf, mlxr_err *err);

/* Everything but FROM as a JSON object text for the catalog (malloc'ed); NULL when there is
 * nothing to store (or out of memory: *oom set). */
char *mlxr_modelfile_to_json(const mlxr_modelfile *mf, bool *oom);

/* Ollama's /api/show "parameters" text: one "name value" line per parameter (malloc'ed). */
char *mlxr_modelfile_params_text(const mlxr_modelfile *mf);

/* The Modelfile text for /api/show: FROM `from`, then every stored setting (malloc'ed). */
char *mlxr_modelfile_render(const mlxr_modelfile *mf, const char *from);

/* Owned storage of a request rewritten by mlxr_modelfile_apply. */
typedef struct mlxr_modelfile_applied {
    mlxr_chat_msg *msgs;
    const char **stops;
} mlxr_modelfile_applied;

/* A copy of *in with the Modelfile's settings as defaults: parameters the request did not set
 * (in->opts_set, seed_set, max_tokens_set, num_ctx, n_stops), SYSTEM when the request has no
 * system prompt, MESSAGEs before the request's messages (an Ollama generate request with a
 * template becomes a chat of system, messages, prompt). *out shares in's strings; free only
 * `keep` (mlxr_modelfile_applied_free). False: out of memory. */
bool mlxr_modelfile_apply(const mlxr_modelfile *mf, const mlxr_api_req *in, bool has_template,
                          mlxr_api_req *out, mlxr_modelfile_applied *keep);
void mlxr_modelfile_applied_free(mlxr_modelfile_applied *keep);

#endif
