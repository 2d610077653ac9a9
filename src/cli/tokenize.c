/*
 * tokenize.c - `mlxr tokenize`: all of stdin as one text -> token ids, decimal, space-separated,
 * on one line.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_tokenize(int argc, char **argv) {
    const char *model = NULL;
    bool bos = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-bos")) {
            bos = false;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mlxr tokenize [-m MODEL] [--no-bos] < text\n");
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
    int32_t *ids = cli_tokenize_text(m, text, len, bos, &n);
    int rc = 1;
    if (ids) {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        rc = 0;
    }
    free(ids);
    free(text);
    mlxr_model_free(m);
    return rc;
}
