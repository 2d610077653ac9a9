/*
 * test_stopmatch.c - the stop-string matcher and UTF-8 helpers against a naive reference: the
 * streamed output (pieces split at random points, multi-byte characters included) must equal the
 * full text cut at the earliest occurrence of any stop string, no delta may show a stop string
 * or a partial character, and sanitizing deltas equals sanitizing the whole.
 */
#include "test.h"

#include "server/stopmatch.h"

/* Reference: the text up to the earliest occurrence of any stop (or all of it). */
static size_t ref_cut(const char *text, size_t len, const char *const *stops, size_t n, bool *hit) {
    size_t best = len;
    *hit = false;
    for (size_t i = 0; i < n; i++) {
        const char *p = memmem(text, len, stops[i], strlen(stops[i]));
        if (p && (size_t)(p - text) < best) {
            best = (size_t)(p - text);
            *hit = true;
        }
    }
    return best;
}

/* Feed text in random pieces; collect emitted bytes; check each delta. */
static size_t stream(const char *text, size_t len, const char *const *stops, size_t n_stops,
                     uint64_t *rng, char *out, bool *stopped, bool *delta_ok) {
    mlxr_stopmatch m;
    mlxr_err err = {0};
    CHECK(mlxr_stopmatch_init(&m, stops, n_stops, &err) == MLXR_OK, "init: %s", err.msg);
    size_t at = 0, n_out = 0;
    *stopped = false;
    *delta_ok = true;
    char *buf = malloc(len + 64);
    while (at < len && !*stopped) {
        size_t k = 1 + test_rng_u64(rng) % 7;
        if (k > len - at) k = len - at;
        size_t got = 0;
        CHECK(mlxr_stopmatch_need(&m, k) <= len + 64, "need too large");
        *stopped = mlxr_stopmatch_feed(&m, text + at, k, buf, len + 64, &got);
        at += k;
        if (!mlxr_utf8_valid(buf, got)) *delta_ok = false;
        memcpy(out + n_out, buf, got);
        n_out += got;
    }
    if (!*stopped) {
        size_t got = 0;
        mlxr_stopmatch_flush(&m, buf, len + 64, &got);
        memcpy(out + n_out, buf, got);
        n_out += got;
    }
    free(buf);
    mlxr_stopmatch_free(&m);
    return n_out;
}

static void test_random(uint64_t *rng) {
    /* an alphabet with ASCII, 2-, 3- and 4-byte characters so cuts land inside characters */
    static const char *const alpha[] = {"a", "b", "\n", " ", "é", "€", "😀", "<", "|", ">"};
    static const char *const stop_pool[] = {"ab", "\n\n", "a b", "€😀", "<|", "<|>", "bb a",
                                            "é", "||", "ba€"};
    for (int iter = 0; iter < 3000; iter++) {
        char text[512];
        size_t len = 0, n_chars = test_rng_u64(rng) % 60;
        for (size_t i = 0; i < n_chars; i++) {
            const char *c = alpha[test_rng_u64(rng) % 10];
            memcpy(text + len, c, strlen(c));
            len += strlen(c);
        }
        const char *stops[4];
        size_t n_stops = test_rng_u64(rng) % 4;
        for (size_t i = 0; i < n_stops; i++) stops[i] = stop_pool[test_rng_u64(rng) % 10];
        char out[600];
        bool stopped, delta_ok, hit;
        size_t n = stream(text, len, stops, n_stops, rng, out, &stopped, &delta_ok);
        size_t want = ref_cut(text, len, stops, n_stops, &hit);
        CHECK(n == want && !memcmp(out, text, want), "iter %d: got %zu bytes, want %zu", iter, n, want);
        CHECK(stopped == hit, "iter %d: stopped %d, reference %d", iter, stopped, hit);
        CHECK(delta_ok, "iter %d: a delta split a UTF-8 character", iter);
    }
}

static void test_fixed(void) {
    const char *stops[] = {"\n\nUser:"};
    mlxr_stopmatch m;
    CHECK(mlxr_stopmatch_init(&m, stops, 1, NULL) == MLXR_OK, "init");
    char buf[64];
    size_t n;
    CHECK(!mlxr_stopmatch_feed(&m, "Hello\n", 6, buf, sizeof buf, &n) && n == 5, "held newline: %zu", n);
    CHECK(!mlxr_stopmatch_feed(&m, "\nUs", 3, buf, sizeof buf, &n) && n == 0, "held 'Us': %zu", n);
    CHECK(mlxr_stopmatch_feed(&m, "er: x", 5, buf, sizeof buf, &n) && n == 0, "stop across pieces");
    CHECK(mlxr_stopmatch_feed(&m, "more", 4, buf, sizeof buf, &n) && n == 0, "stays stopped");
    mlxr_stopmatch_free(&m);
    /* a false start is released once it cannot become the stop string */
    CHECK(mlxr_stopmatch_init(&m, stops, 1, NULL) == MLXR_OK, "init");
    CHECK(!mlxr_stopmatch_feed(&m, "a\n\nU", 4, buf, sizeof buf, &n) && n == 1, "held: %zu", n);
    CHECK(!mlxr_stopmatch_feed(&m, "x", 1, buf, sizeof buf, &n) && n == 4 && !memcmp(buf, "\n\nUx", 4),
          "released: %zu", n);
    mlxr_stopmatch_free(&m);
    const char *empty[] = {""};
    mlxr_err err = {0};
    CHECK(mlxr_stopmatch_init(&m, empty, 1, &err) == MLXR_ERR_INVALID, "empty stop rejected");
    /* no stops: only incomplete UTF-8 is held */
    CHECK(mlxr_stopmatch_init(&m, NULL, 0, NULL) == MLXR_OK, "init");
    CHECK(!mlxr_stopmatch_feed(&m, "x\xE2\x82", 3, buf, sizeof buf, &n) && n == 1, "partial euro held");
    CHECK(!mlxr_stopmatch_feed(&m, "\xAC", 1, buf, sizeof buf, &n) && n == 3, "euro completed");
    CHECK(!mlxr_stopmatch_feed(&m, "\xF0\x9F", 2, buf, sizeof buf, &n) && n == 0, "held");
    mlxr_stopmatch_flush(&m, buf, sizeof buf, &n);
    CHECK(n == 2, "flush emits the incomplete tail raw: %zu", n);
    mlxr_stopmatch_free(&m);
}

static void test_utf8(void) {
    CHECK(mlxr_utf8_complete_len("ab", 2) == 2, "ascii");
    CHECK(mlxr_utf8_complete_len("a\xC3", 2) == 1, "2-byte lead held");
    CHECK(mlxr_utf8_complete_len("a\xF0\x9F\x98", 4) == 1, "4-byte partial held");
    CHECK(mlxr_utf8_complete_len("a\xF0\x9F\x98\x80", 5) == 5, "4-byte complete");
    CHECK(mlxr_utf8_complete_len("a\xFF", 2) == 2, "invalid byte passes");
    CHECK(mlxr_utf8_complete_len("\xE2\x41", 2) == 2, "broken sequence passes");
    CHECK(mlxr_utf8_valid("\xE2\x82\xAC", 3), "euro valid");
    CHECK(!mlxr_utf8_valid("\xED\xA0\x80", 3), "surrogate invalid");
    CHECK(!mlxr_utf8_valid("\xC0\xAF", 2), "overlong invalid");
    CHECK(!mlxr_utf8_valid("\xF4\x90\x80\x80", 4), "> U+10FFFF invalid");
    size_t n;
    char *s = mlxr_utf8_sanitize("a\xFF" "b\xE2\x82", 5, &n);
    CHECK(s && n == 1 + 3 + 1 + 3 + 3 && !memcmp(s, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD", n),
          "sanitize: %zu", n);
    free(s);
}

int main(void) {
    uint64_t rng = test_seed();
    test_fixed();
    test_utf8();
    test_random(&rng);
    return test_finish("server_stopmatch");
}
