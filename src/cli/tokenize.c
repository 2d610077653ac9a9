/*
 * tokenize.c - `mlxr tokenize`: all of stdin as one text -> token ids, decimal, space-separated,
 * on one line. Works for every vocabulary kind (SentencePiece, byte-level BPE, WordPiece).
 * --no-bos: add no BOS/EOS ([CLS]/[SEP] for WordPiece); --parse-special: control tokens written
 * in the text (<s>, <|eot_id|>) become their ids instead of plain text.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ids of text (malloc'ed, *n set), or NULL with the error printed. */
static int32_t *tokenize(const mlxr_model *m, const char *text, size_t len, bool bos, bool special,
                         size_t *n) {
    mlxr_err err = {0};
    *n = 0;
    mlxr_status st = mlxr_tokenize(m, text, len, bos, special, NULL, 0, n, &err);
    int32_t *ids = NULL;
    if (st == MLXR_OK || st == MLXR_ERR_RANGE) {
        ids = malloc((*n ? *n : 1) * sizeof *ids);
        st = ids ? mlxr_tokenize(m, text, len, bos, special, ids, *n, n, &err) : MLXR_ERR_NOMEM;
    }
    if (st != MLXR_OK) {
        cli_error("cannot tokenize: %s", err.msg[0] ? err.msg : mlxr_status_str(st));
        free(ids);
        return NULL;
    }
    return ids;
}

int cli_tokenize(int argc, char **argv) {
    const char *model = NULL;
    bool bos = true, special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-bos")) {
            bos = false;
        } else if (!strcmp(a, "--parse-special")) {
            special = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mlxr tokenize [-m MODEL] [--no-bos] [--parse-special] < text\n");
            return 0;
        } else {
            return cli_error("unknown option '%s' for tokenize", a);
        }
    }
    size_t len;
    char *text = cli_read_stdin(&len);
    if (!text) return 1;
    mlxr_model *m = cli_load_model(model ? model : cli_default_model(), true);
    if (!m) {
        free(text);
        return 1;
    }
    size_t n = 0;
    int32_t *ids = tokenize(m, text, len, bos, special, &n);
    int rc = 1;
    if (ids) {
        for (size_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        rc = 0;
    }
    free(ids);
    free(text);
    mlxr_model_free(m);
    return rc;
}
