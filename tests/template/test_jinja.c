/*
 * test_jinja.c - the template language piece by piece. Each case of tests/template/jinja_cases.json
 * (template, variables, and Python jinja2's output or exception message, made by
 * scripts/gen_template_refs.py) must render to exactly jinja2's output; where jinja2 raised,
 * mlxr must fail with the same message. Then syntax errors (line and
 * column in the message) and hostile templates (every bound fails fast with MLXR_ERR_RANGE).
 */
#include "test.h"

#include "mlxr.h"

#include <jansson.h>

#define NOW "1735732800" /* as scripts/gen_template_refs.py */

static mlxr_status render(const char *t, const char *vars, char **out, mlxr_err *err) {
    size_t n;
    *out = NULL;
    return mlxr_template_render(t, strlen(t), vars, vars ? strlen(vars) : 0, out, &n, err);
}

static void check_cases(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/template/jinja_cases.json", MLXR_SOURCE_DIR);
    json_error_t je;
    json_t *cases = json_load_file(path, 0, &je);
    CHECK(cases && json_is_array(cases), "cannot read %s: %s", path, je.text);
    if (!cases) return;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *t = json_string_value(json_object_get(c, "template"));
        char *vars = json_dumps(json_object_get(c, "vars"), JSON_COMPACT);
        json_t *want = json_object_get(c, "out");
        json_t *want_err = json_object_get(c, "err");
        char *out;
        mlxr_err err = {0};
        mlxr_status st = render(t, vars, &out, &err);
        if (want) {
            const char *w = json_string_value(want);
            CHECK(st == MLXR_OK && !strcmp(out, w), "case %zu %s\n  want: [%s]\n  got:  [%s]", i, t,
                  w, st ? err.msg : out);
        } else {
            const char *w = json_string_value(want_err);
            CHECK(st != MLXR_OK, "case %zu %s: jinja2 raised '%s', mlxr rendered [%s]", i, t, w,
                  out ? out : "");
            if (st != MLXR_OK)
                CHECK(!strcmp(err.msg, w), "case %zu: message '%s', want '%s'", i, err.msg, w);
        }
        mlxr_free(out);
        free(vars);
    }
    json_decref(cases);
}

/* tests/template/random_cases.json: random expressions and statement/whitespace structures,
 * rendered by jinja2 with one set of variables (a differential test). */
static void check_random_cases(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/template/random_cases.json", MLXR_SOURCE_DIR);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    CHECK(root != NULL, "cannot read %s: %s", path, je.text);
    if (!root) return;
    char *vars = json_dumps(json_object_get(root, "vars"), JSON_COMPACT);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(root, "cases"), i, c) {
        const char *t = json_string_value(json_object_get(c, "template"));
        json_t *want = json_object_get(c, "out"), *want_err = json_object_get(c, "err");
        char *out;
        mlxr_err err = {0};
        mlxr_status st = render(t, vars, &out, &err);
        bool good;
        const char *w;
        if (want) {
            w = json_string_value(want);
            good = st == MLXR_OK && !strcmp(out, w);
        } else if (want_err) {
            w = json_string_value(want_err);
            good = st != MLXR_OK && !strcmp(err.msg, w);
        } else {
            w = json_string_value(json_object_get(c, "syntax_error"));
            good = st == MLXR_ERR_FORMAT;
        }
        CHECK(good, "random case %zu: %s\n  want: [%s]\n  got:  [%s]", i, t, w, st ? err.msg : out);
        mlxr_free(out);
    }
    free(vars);
    json_decref(root);
}

static void check_syntax_errors(void) {
    static const struct {
        const char *t, *where;
    } C[] = {
        {"abc\n{% if x %}\nno end", "line 3"},
        {"{{ 1 + }}", "line 1, column 8"},
        {"ok\n  {% endfor %}", "line 2, column 6"},
        {"{{ 'unterminated }}", "line 1, column 4"},
        {"{% for x in y %}{% break %}{% endfor %}{% break %}", "line 1, column 43"},
        {"{# open comment", "line 1, column 1"},
        {"{{ (1 }}", "line 1"},
        {"{% frobnicate %}", "unknown tag"},
        {"{{ x | }}", "line 1"},
    };
    for (size_t i = 0; i < sizeof C / sizeof *C; i++) {
        char *out;
        mlxr_err err = {0};
        mlxr_status st = render(C[i].t, NULL, &out, &err);
        CHECK(st == MLXR_ERR_FORMAT, "syntax error case %zu: status %d (%s)", i, st, err.msg);
        CHECK(strstr(err.msg, C[i].where) != NULL, "syntax error case %zu: '%s' lacks '%s'", i,
              err.msg, C[i].where);
        mlxr_free(out);
    }
}

static void check_hostile(void) {
    /* each must fail with MLXR_ERR_RANGE (a bound) quickly; none may crash or hang */
    static const char *const H[] = {
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        ("{% macro f() %}{{ caller() }}{% endmacro %}{% macro g() %}{% call f() %}{{ g() }}"
         "{% endcall %}{% endmacro %}{{ g() }}"),
        "{{ 'x' * 1000000000 }}",
        "{{ 'x' * 100000000 * 100 }}",
        "{% set s = 'abcdefgh' * 100000 %}{% for i in range(100) %}{{ s }}{% endfor %}",
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% "
        "endfor %}",
        "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% "
        "endfor %}",
        "{{ [1] * 10**12 }}",
        "{{ 2 ** 100 }}",
        "{{ 9223372036854775807 + 1 }}",
    };
    for (size_t i = 0; i < sizeof H / sizeof *H; i++) {
        char *out;
        mlxr_err err = {0};
        mlxr_status st = render(H[i], NULL, &out, &err);
        CHECK(st == MLXR_ERR_RANGE, "hostile case %zu: status %d (%s)", i, st, err.msg);
        CHECK(err.msg[0] != '\0', "hostile case %zu: no message", i);
        mlxr_free(out);
    }
    /* deep nesting: parentheses, brackets, if-blocks, filters */
    size_t n = 20000;
    char *deep = malloc(4 * n + 16);
    for (int kind = 0; kind < 4; kind++) {
        size_t k = 0;
        if (kind == 0) {
            k += (size_t)sprintf(deep + k, "{{ ");
            for (size_t i = 0; i < n; i++)
                deep[k++] = '(';
            deep[k++] = '1';
            for (size_t i = 0; i < n; i++)
                deep[k++] = ')';
            k += (size_t)sprintf(deep + k, " }}");
        } else if (kind == 1) {
            for (size_t i = 0; i < n / 8; i++)
                k += (size_t)sprintf(deep + k, "{%%if 1%%}");
        } else if (kind == 2) {
            k += (size_t)sprintf(deep + k, "{{ 1");
            for (size_t i = 0; i < n / 4; i++)
                k += (size_t)sprintf(deep + k, "|abs");
            k += (size_t)sprintf(deep + k, " }}");
        } else {
            k += (size_t)sprintf(deep + k, "{{ ");
            for (size_t i = 0; i < n; i++)
                deep[k++] = '-';
            k += (size_t)sprintf(deep + k, "1 }}");
        }
        deep[k] = '\0';
        char *out;
        mlxr_err err = {0};
        mlxr_status st = render(deep, NULL, &out, &err);
        CHECK(st != MLXR_OK && err.msg[0], "deep nesting kind %d: status %d", kind, st);
        mlxr_free(out);
    }
    free(deep);
    /* values nested 100000 deep: compared, sorted, printed and freed without recursion trouble */
    {
        const char *t = "{% set ns = namespace(x=1, y=1) %}{% for i in range(100000) %}"
                        "{% set ns.x = [ns.x] %}{% set ns.y = [ns.y] %}{% endfor %}"
                        "{{ ns.x == ns.x }}{{ ns.x == ns.y }}{{ ns.x|length }}";
        char *o;
        mlxr_err e = {0};
        CHECK(render(t, NULL, &o, &e) == MLXR_OK && !strcmp(o, "TrueFalse1"), "deep values: %s",
              o ? o : e.msg);
        mlxr_free(o);
        t = "{% set ns = namespace(x=1) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}"
            "{% endfor %}{{ ns.x }}";
        CHECK(render(t, NULL, &o, &e) == MLXR_ERR_RANGE, "printing deep values: %s", e.msg);
        mlxr_free(o);
    }
    /* a long filter-block chain */
    {
        size_t k = 0, nf = 50000;
        char *t = malloc(nf * 4 + 64);
        k += (size_t)sprintf(t, "{%% filter upper");
        for (size_t i = 0; i < nf; i++)
            k += (size_t)sprintf(t + k, "|e");
        sprintf(t + k, " %%}x{%% endfilter %%}");
        char *o;
        mlxr_err e = {0};
        CHECK(render(t, NULL, &o, &e) == MLXR_ERR_RANGE, "long filter chain: %s", e.msg);
        mlxr_free(o);
        free(t);
    }
    /* a huge literal list is bounded by the template size limit */
    size_t big = (size_t)2 << 20;
    char *lit = malloc(big + 16);
    memcpy(lit, "{{ [", 4);
    for (size_t i = 4; i < big; i += 2)
        memcpy(lit + i, "1,", 2);
    memcpy(lit + big, "1] }}", 6);
    char *out;
    mlxr_err err = {0};
    CHECK(render(lit, NULL, &out, &err) == MLXR_ERR_RANGE, "2 MiB template: %s", err.msg);
    mlxr_free(out);
    free(lit);
}

static void check_api(void) {
    char *out;
    size_t n;
    mlxr_err err = {0};
    /* NUL bytes in strings survive */
    const char *t = "{{ a }}|{{ a|length }}";
    const char vars[] = "{\"a\": \"x\\u0000y\"}";
    CHECK(mlxr_template_render(t, strlen(t), vars, sizeof vars - 1, &out, &n, &err) == MLXR_OK,
          "%s", err.msg);
    CHECK(n == 5 && !memcmp(out, "x\0y|3", 5), "NUL in a string: %zu bytes", n);
    mlxr_free(out);
    CHECK(mlxr_template_render(t, strlen(t), "[1]", 3, &out, &n, &err) == MLXR_ERR_INVALID,
          "vars must be an object");
    CHECK(mlxr_template_render(t, strlen(t), "{bad", 4, &out, &n, &err) == MLXR_ERR_FORMAT,
          "bad JSON");
    /* the default template is ChatML */
    const char *d = mlxr_template_default();
    const char *msgs = "{\"add_generation_prompt\": true, \"messages\": [{\"role\": \"user\", "
                       "\"content\": \"hi\"}]}";
    CHECK(mlxr_template_render(d, strlen(d), msgs, strlen(msgs), &out, &n, &err) == MLXR_OK, "%s",
          err.msg);
    CHECK(!strcmp(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"), "ChatML: %s",
          out);
    mlxr_free(out);
}

int main(void) {
    setenv("MLXR_TEMPLATE_NOW", NOW, 1);
    check_cases();
    check_random_cases();
    check_syntax_errors();
    check_hostile();
    check_api();
    return test_finish("template_jinja");
}
