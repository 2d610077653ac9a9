/*
 * template.c - `mlxr template`: render a chat template for a conversation and print exactly the
 * prompt text (no newline added).
 *
 *   mlxr template [-m MODEL] [--template FILE.jinja] --messages FILE.json [--add-generation-prompt]
 *
 * FILE.json is an array of messages or an object whose keys become the template's variables
 * (messages, tools, add_generation_prompt, bos_token, eos_token, date_string, ...). The template
 * is --template's file, else the model's tokenizer.chat_template, else the ChatML default. With
 * -m, the model's BOS/EOS token texts are bos_token/eos_token unless FILE.json sets them; the GGUF
 * is read directly, so any architecture works. When the template raises, its message is printed
 * as the error and the exit status is 1.
 */
#include "cli.h"

#include "format/gguf.h"
#include "template/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error("cannot open '%s'", path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            char *nb = cap > ((size_t)1 << 30) ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    bool bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        cli_error("cannot read '%s'", path);
        return NULL;
    }
    *len = n;
    return buf;
}

/* NUL-terminated copy of a file. */
static char *read_text(const char *path) {
    size_t n;
    char *b = read_file(path, &n);
    if (!b) return NULL;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, b, n);
        s[n] = '\0';
    }
    free(b);
    return s;
}

int cli_template(int argc, char **argv) {
    const char *model = NULL, *tmpl_path = NULL, *msg_path = NULL;
    bool gen = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "--template")) {
            if (!(tmpl_path = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "--messages")) {
            if (!(msg_path = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "--add-generation-prompt")) {
            gen = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mlxr template [-m MODEL] [--template FILE.jinja] --messages FILE.json "
                   "[--add-generation-prompt]\n"
                   "Prints the chat prompt the template renders for the messages (an array of\n"
                   "messages, or an object of template variables). Without -m and --template the\n"
                   "ChatML default template is used.\n");
            return 0;
        } else {
            return cli_error("unknown option '%s' for template", a);
        }
    }
    if (!msg_path) return cli_error("template needs --messages FILE.json");
    char *tmpl = NULL, *bos = NULL, *eos = NULL, *out = NULL;
    size_t mlen = 0, olen = 0;
    char *msgs = read_file(msg_path, &mlen);
    int rc = 1;
    mlxr_err err = {0};
    if (!msgs) goto done;
    if (tmpl_path && !(tmpl = read_text(tmpl_path))) goto done;
    if (model) {
        mlxr_gguf *g = NULL;
        mlxr_status st = mlxr_gguf_open(model, &g, &err);
        if (st != MLXR_OK) {
            cli_error("cannot open model '%s': %s", model, err.msg);
            goto done;
        }
        if (!tmpl) {
            st = mlxr_template_from_gguf(g, &tmpl, &err);
            if (st == MLXR_ERR_NOT_FOUND) st = MLXR_OK; /* the default applies */
        }
        if (st == MLXR_OK)
            st = mlxr_template_token_text(g, "tokenizer.ggml.bos_token_id", &bos, &err);
        if (st == MLXR_OK)
            st = mlxr_template_token_text(g, "tokenizer.ggml.eos_token_id", &eos, &err);
        mlxr_gguf_close(g);
        if (st != MLXR_OK) {
            cli_error("cannot read the template of '%s': %s", model, err.msg);
            goto done;
        }
    }
    mlxr_status st = mlxr_template_apply(tmpl, bos, eos, msgs, mlen, gen, &out, &olen, &err);
    if (st != MLXR_OK) {
        cli_error("%s", err.msg[0] ? err.msg : mlxr_status_str(st));
        goto done;
    }
    rc =
        fwrite(out, 1, olen, stdout) == olen && fflush(stdout) == 0 ? 0 : cli_error("cannot write");
done:
    mlxr_free(out);
    free(msgs);
    free(tmpl);
    free(bos);
    free(eos);
    return rc;
}
