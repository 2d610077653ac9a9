/*
 * test_templates.c - every chat template in the shared test data, rendered for every conversation
 * in tests/template/conversations/, must equal Python jinja2's output byte for byte
 * (tests/template/expected/<template>.<conversation>.txt, made by scripts/gen_template_refs.py);
 * where jinja2 raised (.err), mlxr must fail with the same message.
 */
#include "test.h"

#include "mlxr.h"

#include <dirent.h>
#include <jansson.h>

#define NOW "1735732800" /* as scripts/gen_template_refs.py */

static char *src_path(const char *rel) {
    size_t n = strlen(MLXR_SOURCE_DIR) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", MLXR_SOURCE_DIR, rel);
    return p;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir ending with suffix (suffix removed). */
static char **list_dir(const char *dir, const char *suffix, size_t *n) {
    DIR *d = opendir(dir);
    char **names = NULL;
    *n = 0;
    if (!d) return NULL;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= sl || strcmp(e->d_name + l - sl, suffix)) continue;
        names = realloc(names, (*n + 1) * sizeof *names);
        names[*n] = strndup(e->d_name, l - sl);
        (*n)++;
    }
    closedir(d);
    qsort(names, *n, sizeof *names, cmp_str);
    return names;
}

static void report_diff(const char *what, const char *want, size_t wn, const char *got, size_t gn) {
    size_t i = 0;
    while (i < wn && i < gn && want[i] == got[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "  %s: first difference at byte %zu (want %zu bytes, got %zu)\n", what, i, wn,
            gn);
    fprintf(stderr, "  want: ...%.*s...\n",
            (int)((wn > from ? wn - from : 0) > 120 ? 120 : (wn > from ? wn - from : 0)),
            want + from);
    fprintf(stderr, "  got:  ...%.*s...\n",
            (int)((gn > from ? gn - from : 0) > 120 ? 120 : (gn > from ? gn - from : 0)),
            got + from);
}

int main(void) {
    setenv("MLXR_TEMPLATE_NOW", NOW, 1);
    char *tdir = test_data_path("templates");
    char *cdir = src_path("tests/template/conversations");
    char *edir = src_path("tests/template/expected");
    char *tokp = src_path("tests/template/tokens.json");
    json_error_t je;
    json_t *tokens = json_load_file(tokp, 0, &je);
    CHECK(tokens != NULL, "cannot read %s", tokp);
    size_t nt, nc;
    char **tnames = list_dir(tdir, ".jinja", &nt);
    char **cnames = list_dir(cdir, ".json", &nc);
    CHECK(nt >= 17, "expected the 17 templates in %s, found %zu", tdir, nt);
    CHECK(nc >= 5, "expected conversations in %s, found %zu", cdir, nc);
    int n_out = 0, n_err = 0;
    for (size_t i = 0; i < nt && tokens; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.jinja", tdir, tnames[i]);
        size_t tlen;
        char *tmpl = test_read_file(path, &tlen);
        CHECK(tmpl != NULL, "cannot read %s", path);
        if (!tmpl) continue;
        for (size_t c = 0; c < nc; c++) {
            snprintf(path, sizeof path, "%s/%s.json", cdir, cnames[c]);
            json_t *conv = json_load_file(path, 0, &je);
            CHECK(conv != NULL, "bad conversation %s: %s", path, je.text);
            if (!conv) continue;
            json_t *vars = json_deep_copy(json_object_get(tokens, tnames[i]));
            if (!vars) vars = json_object();
            json_object_update(vars, conv);
            char *vj = json_dumps(vars, JSON_COMPACT);
            json_decref(vars);
            json_decref(conv);
            char *out = NULL;
            size_t on = 0;
            mlxr_err err = {0};
            mlxr_status st = mlxr_template_render(tmpl, tlen, vj, strlen(vj), &out, &on, &err);
            free(vj);
            size_t wn;
            snprintf(path, sizeof path, "%s/%s.%s.txt", edir, tnames[i], cnames[c]);
            char *want = test_read_file(path, &wn);
            if (want) {
                n_out++;
                bool same = st == MLXR_OK && on == wn && memcmp(out, want, wn) == 0;
                CHECK(same, "%s x %s: %s", tnames[i], cnames[c],
                      st ? err.msg : "output differs from jinja2");
                if (!same && st == MLXR_OK) report_diff("text", want, wn, out, on);
            } else {
                snprintf(path, sizeof path, "%s/%s.%s.err", edir, tnames[i], cnames[c]);
                want = test_read_file(path, &wn);
                CHECK(want != NULL, "no expected file for %s x %s", tnames[i], cnames[c]);
                if (want) {
                    n_err++;
                    CHECK(st != MLXR_OK, "%s x %s: jinja2 raised '%s' but mlxr rendered", tnames[i],
                          cnames[c], want);
                    if (st != MLXR_OK)
                        CHECK(!strcmp(err.msg, want), "%s x %s: message '%s', jinja2 '%s'",
                              tnames[i], cnames[c], err.msg, want);
                }
            }
            free(want);
            mlxr_free(out);
        }
        free(tmpl);
    }
    fprintf(stderr, "%d renderings compared, %d raising cases\n", n_out, n_err);
    for (size_t i = 0; i < nt; i++)
        free(tnames[i]);
    for (size_t i = 0; i < nc; i++)
        free(cnames[i]);
    free(tnames);
    free(cnames);
    json_decref(tokens);
    free(tdir);
    free(cdir);
    free(edir);
    free(tokp);
    return test_finish("template_templates");
}
