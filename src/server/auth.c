/*
 * auth.c - bearer API keys with constant-time comparison (see auth.h).
 */
#include "server/auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool mlxr_auth_add(mlxr_auth *a, const char *key) {
    if (!key || !*key) return true;
    char **k = realloc(a->keys, (a->n_keys + 1) * sizeof *k);
    if (!k) return false;
    a->keys = k;
    if (!(k[a->n_keys] = strdup(key))) return false;
    a->n_keys++;
    return true;
}

bool mlxr_auth_add_list(mlxr_auth *a, const char *list) {
    if (!list) return true;
    char *copy = strdup(list), *save = NULL;
    if (!copy) return false;
    bool ok = true;
    for (char *t = strtok_r(copy, ",", &save); t && ok; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        size_t n = strlen(t);
        while (n && t[n - 1] == ' ') t[--n] = '\0';
        ok = mlxr_auth_add(a, t);
    }
    free(copy);
    return ok;
}

void mlxr_auth_free(mlxr_auth *a) {
    for (size_t i = 0; i < a->n_keys; i++) free(a->keys[i]);
    free(a->keys);
    a->keys = NULL;
    a->n_keys = 0;
}

bool mlxr_auth_equal(const char *a, size_t a_len, const char *b, size_t b_len) {
    size_t n = a_len > b_len ? a_len : b_len;
    volatile unsigned char diff = (unsigned char)(a_len != b_len);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < a_len ? (unsigned char)a[i] : 0;
        unsigned char y = i < b_len ? (unsigned char)b[i] : 0;
        diff |= x ^ y;
    }
    return diff == 0;
}

bool mlxr_auth_check(const mlxr_auth *a, const char *authorization) {
    if (a->n_keys == 0) return true;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) return false;
    const char *tok = authorization + 7;
    while (*tok == ' ') tok++;
    size_t len = strlen(tok);
    while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t')) len--;
    bool ok = false;
    for (size_t i = 0; i < a->n_keys; i++) /* no early exit: compare against every key */
        ok |= mlxr_auth_equal(tok, len, a->keys[i], strlen(a->keys[i]));
    return ok;
}
