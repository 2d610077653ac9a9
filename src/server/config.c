/*
 * config.c - reads the `key = value` configuration file described in config.h.
 */
#include "server/config.h"

#include "util/err.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

mlxr_status mlxr_config_read(const char *path, mlxr_config_kv **out, size_t *n, mlxr_err *err) {
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return MLXR_FAIL(err, MLXR_ERR_IO, "cannot open config %s: %s", path, strerror(errno));
    char line[4096];
    int lineno = 0;
    mlxr_status st = MLXR_OK;
    while (st == MLXR_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            st = MLXR_FAIL(err, MLXR_ERR_FORMAT, "%s:%d: line longer than %zu bytes", path, lineno,
                           sizeof line - 2);
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            st = MLXR_FAIL(err, MLXR_ERR_FORMAT, "%s:%d: expected 'key = value'", path, lineno);
            break;
        }
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
            v[vl - 1] = '\0';
            v++;
        } else {
            char *hash = strstr(v, " #"); /* a trailing comment after an unquoted value */
            if (hash) v = trim((*hash = '\0', v));
        }
        if (!*k) {
            st = MLXR_FAIL(err, MLXR_ERR_FORMAT, "%s:%d: empty key", path, lineno);
            break;
        }
        mlxr_config_kv *p = realloc(*out, (*n + 1) * sizeof *p);
        if (!p) {
            st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
            break;
        }
        *out = p;
        p[*n].key = strdup(k);
        p[*n].value = strdup(v);
        p[*n].line = lineno;
        (*n)++;
        if (!p[*n - 1].key || !p[*n - 1].value) st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    }
    fclose(f);
    if (st != MLXR_OK) {
        mlxr_config_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return st;
}

void mlxr_config_free(mlxr_config_kv *kv, size_t n) {
    for (size_t i = 0; kv && i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}
