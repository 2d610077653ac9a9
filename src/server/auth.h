/*
 * auth.h - API keys: a request must carry "Authorization: Bearer KEY" for one of the configured
 * keys (--api-key, repeatable, or MLXR_API_KEY with keys separated by commas). No keys
 * configured: everything is open. The daemon exempts GET /health (and CORS preflights).
 *
 * Keys are compared in constant time with respect to their contents: every configured key is
 * compared, and each comparison touches max(len) bytes, so timing does not reveal how long a
 * matching prefix was or which key matched.
 */
#ifndef MLXR_SERVER_AUTH_H
#define MLXR_SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct mlxr_auth {
    char **keys;
    size_t n_keys;
} mlxr_auth;

/* Add one key (copied). Empty keys are ignored. Returns false when out of memory. */
bool mlxr_auth_add(mlxr_auth *a, const char *key);
/* Add every comma-separated key of `list` (e.g. $MLXR_API_KEY). */
bool mlxr_auth_add_list(mlxr_auth *a, const char *list);
void mlxr_auth_free(mlxr_auth *a);

/* Constant-time equality of two byte strings (time depends only on the lengths). */
bool mlxr_auth_equal(const char *a, size_t a_len, const char *b, size_t b_len);

/* Whether an Authorization header value (may be NULL) grants access. */
bool mlxr_auth_check(const mlxr_auth *a, const char *authorization);

#endif
