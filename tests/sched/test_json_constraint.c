/*
 * test_json_constraint.c - the incremental JSON recognizer against jansson's parser (the
 * independent reference), every text fed one byte at a time:
 *  - hand-written valid texts: every prefix is accepted and the whole is complete;
 *  - hand-written invalid texts: never accepted as complete (and, for most, refused at a byte);
 *  - random valid documents (random trees serialized with random whitespace) and random
 *    mutations of them, plus random strings over a JSON-ish alphabet: whenever the recognizer
 *    calls a text complete, jansson parses it; whenever jansson parses it (and the text stays
 *    within the recognizer's documented limits), the recognizer calls it complete.
 * Both modes: top-level object only, and any value (jansson with JSON_DECODE_ANY).
 */
#include "test.h"

#include <jansson.h>

#include "sched/json_constraint.h"

/* Feed s byte by byte; *rejected_at: index of the refused byte or -1. */
static bool recognize(const char *s, size_t n, bool object_only, long *rejected_at) {
    mlxr_jsonc st;
    mlxr_jsonc_init(&st, object_only);
    *rejected_at = -1;
    for (size_t i = 0; i < n; i++)
        if (!mlxr_jsonc_feed(&st, s + i, 1)) {
            *rejected_at = (long)i;
            return false;
        }
    return mlxr_jsonc_complete(&st);
}

static bool jansson_ok(const char *s, size_t n, bool object_only) {
    json_error_t e;
    json_t *j = json_loadb(s, n, object_only ? 0 : JSON_DECODE_ANY, &e);
    const bool ok = j && (!object_only || json_is_object(j));
    json_decref(j);
    return ok;
}

/* Whether jansson may accept what the recognizer refuses by its documented limits: long integer
 * parts or exponents, long whitespace runs, deep nesting, \u0000. Deliberately loose. */
static bool beyond_limits(const char *s, size_t n) {
    size_t digits = 0, ws = 0;
    int depth = 0, max_depth = 0;
    for (size_t i = 0; i < n; i++) {
        const char c = s[i];
        digits = c >= '0' && c <= '9' ? digits + 1 : 0;
        ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' ? ws + 1 : 0;
        if (digits > 16 || ws > MLXR_JSONC_MAX_WS) return true;
        if (c == 'e' || c == 'E') { /* an exponent of 3 or more digits */
            size_t k = i + 1;
            if (k < n && (s[k] == '+' || s[k] == '-')) k++;
            size_t d = 0;
            while (k + d < n && s[k + d] >= '0' && s[k + d] <= '9') d++;
            if (d > 2) return true;
        }
        if (c == '[' || c == '{') depth++;
        if (c == ']' || c == '}') depth--;
        if (depth > max_depth) max_depth = depth;
        if (i + 6 <= n && !memcmp(s + i, "\\u0000", 6)) return true;
    }
    return max_depth > MLXR_JSONC_MAX_DEPTH;
}

static int n_compared, n_valid;

static void compare(const char *s, size_t n, bool object_only) {
    long at;
    const bool mine = recognize(s, n, object_only, &at), ref = jansson_ok(s, n, object_only);
    n_compared++;
    n_valid += ref;
    if (mine) CHECK(ref, "recognizer accepts, jansson refuses: [%.*s]", (int)n, s);
    else if (ref && !beyond_limits(s, n))
        CHECK(false, "jansson accepts, recognizer refuses at %ld: [%.*s]", at, (int)n, s);
}

static const char *const valid_texts[] = {
    "{}", " {} ", "\n\t{\r}\n", "{\"a\":1}", "{\"a\" : [1, 2.5, -3e10, 0, -0.0, 1E+2, 1e-2]}",
    "{\"\":\"\"}", "{\"k\":{\"n\":{\"m\":[[],[{}],null,true,false]}}}",
    "{\"s\":\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"}",
    "{\"utf8\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"}", "{\"a\":1,\"a\":2}",
    "{\"n\":1234567890123456}", "{\"x\":9.99e99}", "{\"t\":[ true , false , null ]}",
};

static const char *const valid_any[] = {"1", "-0", "0.5", "\"s\"", "[]", "[1,[2,[3]]]", "true",
                                        " null ", "12e34", "\"\\u12aB\""};

static const char *const invalid_texts[] = {
    "", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}", "{\"a\":01}", "{\"a\":1.}",
    "{\"a\":.5}", "{\"a\":+1}", "{\"a\":1e}", "{\"a\":tru}", "{\"a\":nul}", "{\"a\":True}",
    "{'a':1}", "{\"a\":1}}", "{\"a\":1} x", "{\"a\":[1,2}", "{\"a\":\"\\x\"}",
    "{\"a\":\"\\uD800\"}", "{\"a\":\"\\uDC00\"}", "{\"a\":\"\\uD800\\u0041\"}",
    "{\"a\":\"tab\there\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}",
    "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\x80\"}", "{a:1}",
    "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":-}", "{\"a\":1 2}", "[1]", "\"s\"", "1",
    "{\"a\":12345678901234567}", "{\"a\":1e100}", "{\"a\":\"\\u0000\"}", "{\"a\" 1}",
};

/* ---- random documents ----------------------------------------------------------------------- */

typedef struct buf {
    char s[4096];
    size_t n;
} buf;

static void put(buf *b, const char *s) {
    size_t l = strlen(s);
    if (b->n + l < sizeof b->s) {
        memcpy(b->s + b->n, s, l);
        b->n += l;
    }
}

static void put_ws(buf *b, uint64_t *rng) {
    static const char *const ws[] = {"", "", "", " ", "\n", "  ", "\t", "\r\n"};
    put(b, ws[test_rng_u64(rng) % 8]);
}

static void put_value(buf *b, uint64_t *rng, int depth) {
    static const char *const scalars[] = {
        "0", "-1", "17", "3.25", "-0.5e3", "1E-7", "true", "false", "null", "\"\"", "\"abc\"",
        "\"a\\nb\"", "\"\\u00FF\\uD834\\uDD1E\"", "\"\xc3\xa9\xe2\x82\xac\"", "9007199254740993",
    };
    const uint64_t k = test_rng_u64(rng) % (depth > 4 ? 3 : 5);
    if (k < 3) {
        put(b, scalars[test_rng_u64(rng) % (sizeof scalars / sizeof *scalars)]);
        return;
    }
    const bool obj = k == 3;
    put(b, obj ? "{" : "[");
    const int n = (int)(test_rng_u64(rng) % 4);
    for (int i = 0; i < n; i++) {
        if (i) put(b, ",");
        put_ws(b, rng);
        if (obj) {
            put(b, i % 2 ? "\"key\"" : "\"k\\u0041\"");
            put_ws(b, rng);
            put(b, ":");
            put_ws(b, rng);
        }
        put_value(b, rng, depth + 1);
        put_ws(b, rng);
    }
    put(b, obj ? "}" : "]");
}

static void random_documents(uint64_t *rng) {
    for (int trial = 0; trial < 3000; trial++) {
        buf b = {.n = 0};
        put_ws(&b, rng);
        if (trial % 2 == 0) { /* an object at the top, for object-only mode */
            put(&b, "{\"root\":");
            put_value(&b, rng, 1);
            put(&b, "}");
        } else {
            put_value(&b, rng, 0);
        }
        put_ws(&b, rng);
        long at;
        if (trial % 2 == 0)
            CHECK(recognize(b.s, b.n, true, &at), "valid document refused at %ld: [%.*s]", at,
                  (int)b.n, b.s);
        compare(b.s, b.n, false);
        compare(b.s, b.n, true);
        /* mutations: delete, insert or replace one byte */
        static const char alphabet[] = "{}[]:,\"\\0123456789.eE+-tfnulrsa \n\xc3\xa9\xff";
        for (int m = 0; m < 6 && b.n > 0; m++) {
            buf c = b;
            const size_t i = test_rng_u64(rng) % c.n;
            const char x = alphabet[test_rng_u64(rng) % (sizeof alphabet - 1)];
            switch (m % 3) {
            case 0: memmove(c.s + i, c.s + i + 1, c.n - i - 1); c.n--; break;
            case 1:
                if (c.n + 1 >= sizeof c.s) break;
                memmove(c.s + i + 1, c.s + i, c.n - i);
                c.s[i] = x;
                c.n++;
                break;
            default: c.s[i] = x; break;
            }
            compare(c.s, c.n, false);
            compare(c.s, c.n, true);
        }
    }
    /* random strings over JSON pieces */
    static const char *const pieces[] = {"{", "}", "[", "]", ":", ",", "\"", "\"a\"", "1", "-",
                                         "0", ".", "e", "true", "null", " ", "\\", "u", "x",
                                         "\\u00", "D800", "\\n", "\xc3", "\xa9"};
    for (int trial = 0; trial < 20000; trial++) {
        buf b = {.n = 0};
        const int n = 1 + (int)(test_rng_u64(rng) % 12);
        if (trial % 2) put(&b, "{");
        for (int i = 0; i < n; i++)
            put(&b, pieces[test_rng_u64(rng) % (sizeof pieces / sizeof *pieces)]);
        compare(b.s, b.n, false);
        compare(b.s, b.n, true);
    }
}

int main(void) {
    uint64_t rng = test_seed();
    long at;
    for (size_t i = 0; i < sizeof valid_texts / sizeof *valid_texts; i++) {
        const char *s = valid_texts[i];
        CHECK(jansson_ok(s, strlen(s), true), "reference refuses valid text %zu: %s", i, s);
        CHECK(recognize(s, strlen(s), true, &at), "valid text %zu refused at %ld: %s", i, at, s);
        CHECK(recognize(s, strlen(s), false, &at), "valid text %zu refused (any) at %ld", i, at);
        /* a proper prefix of an object is never complete, and never refused */
        for (size_t k = 0; k + 1 < strlen(s); k++) {
            mlxr_jsonc st;
            mlxr_jsonc_init(&st, true);
            const bool fed = mlxr_jsonc_feed(&st, s, k);
            const bool trailing_ws_only = strspn(s + k, " \t\r\n") == strlen(s + k);
            CHECK(fed && (trailing_ws_only || !mlxr_jsonc_closed(&st)),
                  "prefix %zu of text %zu: fed %d closed %d", k, i, fed, mlxr_jsonc_closed(&st));
        }
    }
    for (size_t i = 0; i < sizeof valid_any / sizeof *valid_any; i++) {
        const char *s = valid_any[i];
        CHECK(jansson_ok(s, strlen(s), false), "reference refuses %s", s);
        CHECK(recognize(s, strlen(s), false, &at), "any-value text %s refused at %ld", s, at);
        CHECK(!recognize(s, strlen(s), true, &at), "object-only accepts %s", s);
    }
    for (size_t i = 0; i < sizeof invalid_texts / sizeof *invalid_texts; i++) {
        const char *s = invalid_texts[i];
        CHECK(!recognize(s, strlen(s), true, &at), "invalid text %zu accepted: %s", i, s);
        compare(s, strlen(s), true);
        compare(s, strlen(s), false);
    }
    /* refused at the first impossible byte */
    CHECK(!recognize("{\"a\":tru}", 9, true, &at) && at == 8, "tru} refused at %ld", at);
    CHECK(!recognize("  x", 3, true, &at) && at == 2, "x at the top refused at %ld", at);
    CHECK(!recognize("{\"a\":1}}", 8, true, &at) && at == 7, "second } refused at %ld", at);
    /* depth and whitespace limits */
    char deep[2 * MLXR_JSONC_MAX_DEPTH + 8];
    size_t n = 0;
    for (int i = 0; i <= MLXR_JSONC_MAX_DEPTH; i++) deep[n++] = '[';
    CHECK(!recognize(deep, n, false, &at) && at == MLXR_JSONC_MAX_DEPTH, "depth limit at %ld", at);
    char spaces[MLXR_JSONC_MAX_WS + 4];
    memset(spaces, ' ', sizeof spaces);
    CHECK(!recognize(spaces, sizeof spaces, true, &at) && at == MLXR_JSONC_MAX_WS,
          "whitespace limit at %ld", at);
    /* completeness of a top-level number: complete, but not closed */
    mlxr_jsonc st;
    mlxr_jsonc_init(&st, false);
    CHECK(mlxr_jsonc_feed(&st, "12", 2) && mlxr_jsonc_complete(&st) && !mlxr_jsonc_closed(&st),
          "top-level 12");
    random_documents(&rng);
    fprintf(stderr, "compared %d texts with jansson (%d valid)\n", n_compared, n_valid);
    CHECK(n_valid > 3000, "enough valid texts compared (%d)", n_valid);
    return test_finish("sched_json_constraint");
}
