/*
 * detokenize.c - `mlxr detokenize`: token ids (arguments, or whitespace-separated on stdin) ->
 * the text, written exactly (no newline added). --special also prints control tokens (<s>).
 * A word that is not an integer, or an id outside the vocabulary, is an error.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct id_list {
    int32_t *a;
    size_t n, cap;
} id_list;

/* Parse one decimal id; prints the error and returns false if it is not one. */
static bool add_id(id_list *l, const char *word) {
    char *end;
    errno = 0;
    long long v = strtoll(word, &end, 10);
    if (errno || end == word || *end || v < INT32_MIN || v > INT32_MAX) {
        cli_error("detokenize: '%s' is not a token id", word);
        return false;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        int32_t *a = realloc(l->a, cap * sizeof *a);
        if (!a) {
            cli_error("out of memory");
            return false;
        }
        l->a = a;
        l->cap = cap;
    }
    l->a[l->n++] = (int32_t)v;
    return true;
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Every whitespace-separated word of text[0, len) as an id. */
static bool parse_ids(char *text, size_t len, id_list *l) {
    if (memchr(text, '\0', len)) {
        cli_error("detokenize: NUL byte in the input");
        return false;
    }
    char word[32];
    for (size_t i = 0; i < len;) {
        while (i < len && is_space(text[i]))
            i++;
        size_t j = i;
        while (j < len && !is_space(text[j]))
            j++;
        if (j == i) break;
        size_t n = j - i < sizeof word - 1 ? j - i : sizeof word - 1; /* longer: not an id */
        memcpy(word, text + i, n);
        word[n] = '\0';
        if (j - i >= sizeof word - 1) {
            cli_error("detokenize: '%.20s...' is not a token id", word);
            return false;
        }
        if (!add_id(l, word)) return false;
        i = j;
    }
    return true;
}

int cli_detokenize(int argc, char **argv) {
    const char *model = NULL;
    bool special = false;
    id_list ids = {0};
    int rc = 1;
    bool from_args = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--special")) {
            special = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_value(argc, argv, &i))) goto done;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mlxr detokenize [-m MODEL] [--special] [ID ...]   (ids from stdin if "
                   "none)\n");
            rc = 0;
            goto done;
        } else if (a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')) {
            cli_error("unknown option '%s' for detokenize", a);
            goto done;
        } else {
            from_args = true;
            if (!add_id(&ids, a)) goto done;
        }
    }
    if (!from_args) {
        size_t len;
        char *text = cli_read_stdin(&len);
        if (!text) goto done;
        bool ok = parse_ids(text, len, &ids);
        free(text);
        if (!ok) goto done;
    }
    mlxr_model *m = cli_load_model(model ? model : cli_default_model(), true);
    if (!m) goto done;
    mlxr_err err = {0};
    size_t need = 0;
    mlxr_status st = mlxr_detokenize(m, ids.a, ids.n, special, NULL, 0, &need, &err);
    char *out = NULL;
    if (st == MLXR_OK || st == MLXR_ERR_RANGE) {
        out = malloc(need ? need : 1);
        st = out ? mlxr_detokenize(m, ids.a, ids.n, special, out, need, &need, &err)
                 : MLXR_ERR_NOMEM;
    }
    if (st == MLXR_OK) {
        rc = fwrite(out, 1, need, stdout) == need && fflush(stdout) == 0
                 ? 0
                 : cli_error("cannot write the text");
    } else {
        cli_error("cannot detokenize: %s", err.msg[0] ? err.msg : mlxr_status_str(st));
    }
    free(out);
    mlxr_model_free(m);
done:
    free(ids.a);
    return rc;
}
