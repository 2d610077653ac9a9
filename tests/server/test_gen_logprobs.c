/*
 * test_gen_logprobs.c - log-probabilities through the generation layer (gen_engine.c) with the
 * bundled pydoc-7M model: entries come out only once their token's text has been read (pulled a
 * few bytes at a time, the bytes of the entries released so far are always a prefix of the text
 * read so far); all of them cover the text exactly when nothing is cut; with a stop string the
 * entries wholly inside the cut are dropped and the rest cover the text (the last one may run
 * past it); character offsets count UTF-8 characters; greedy's token is the top one.
 */
#include "test.h"

#include "server/gen.h"

#include <math.h>

typedef struct pulled {
    char text[8192];
    size_t len;
    mlxr_gen_logprob lp[512];
    size_t n_lp;
    bool prefix_ok; /* entries' bytes were a prefix of the text at every read */
} pulled;

/* The piece bytes of entries [0, n) into buf; returns their length. */
static size_t pieces(const mlxr_model *m, const mlxr_gen_logprob *lp, size_t n, char *buf,
                     size_t cap) {
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        if (mlxr_token_to_piece(m, lp[i].token, buf + at, cap - at, &k, NULL) != MLXR_OK) return 0;
        at += k;
    }
    return at;
}

static void pull(const mlxr_model *m, mlxr_gen *g, size_t chunk, pulled *p) {
    memset(p, 0, sizeof *p);
    p->prefix_ok = true;
    bool done = false;
    static char bytes[16384];
    while (!done && p->len + chunk < sizeof p->text) {
        p->len += mlxr_gen_read(g, 50, p->text + p->len, chunk, &done);
        p->n_lp += mlxr_gen_read_logprobs(g, p->lp + p->n_lp, 512 - p->n_lp);
        const size_t nb = pieces(m, p->lp, p->n_lp, bytes, sizeof bytes);
        if (!done && (nb > p->len || memcmp(bytes, p->text, nb) != 0)) p->prefix_ok = false;
    }
    p->n_lp += mlxr_gen_read_logprobs(g, p->lp + p->n_lp, 512 - p->n_lp);
}

int main(void) {
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    if (mlxr_model_load(MLXR_SOURCE_DIR "/models/pydoc-7M-q8_0.gguf", NULL, &m, &err) != MLXR_OK) {
        fprintf(stderr, "cannot load the bundled model: %s\n", err.msg);
        return 1;
    }
    mlxr_gen_engine_opts o;
    memset(&o, 0, sizeof o);
    o.n_threads = 2;
    mlxr_gen_engine *e = NULL;
    CHECK(mlxr_gen_engine_new(m, &o, &e, &err) == MLXR_OK, "engine: %s", err.msg);
    if (!e) return test_finish("server_gen_logprobs");
    const mlxr_model *model = mlxr_gen_engine_model(e);
    int32_t ids[64];
    size_t n_ids = 0;
    const char *prompt = "A dictionary maps";
    CHECK(mlxr_tokenize(model, prompt, strlen(prompt), true, false, ids, 64, &n_ids, &err) ==
              MLXR_OK, "tokenize");

    mlxr_gen_params p = mlxr_gen_default_params();
    p.temperature = 0;
    p.max_tokens = 40;
    p.logprobs = true;
    p.top_logprobs = 3;
    mlxr_gen *g = NULL;
    bool full = false;
    CHECK(mlxr_gen_submit(e, ids, n_ids, &p, &g, &full, &err) == MLXR_OK, "submit: %s", err.msg);
    static pulled a, b;
    static char bytes[16384];
    if (g) pull(model, g, 3, &a);
    mlxr_gen_release(g);
    size_t nb = pieces(model, a.lp, a.n_lp, bytes, sizeof bytes);
    CHECK(a.n_lp == 40 && nb == a.len && !memcmp(bytes, a.text, nb), "40 entries covering the text "
          "(%zu entries, %zu of %zu bytes)", a.n_lp, nb, a.len);
    CHECK(a.prefix_ok, "an entry came out before its text");
    size_t chars = 0, off = 0;
    for (size_t i = 0; i < a.n_lp; i++) {
        const mlxr_gen_logprob *lp = &a.lp[i];
        CHECK(lp->n_top == 3 && lp->top_id[0] == lp->token && lp->top_lp[0] == lp->logprob &&
                  lp->logprob <= 0 && lp->top_lp[1] <= lp->top_lp[0] &&
                  lp->top_lp[2] <= lp->top_lp[1], "entry %zu: greedy token not the top one", i);
        CHECK(lp->char_start == chars && lp->text_start == off, "entry %zu: offsets %zu/%zu, "
              "want %zu/%zu", i, lp->char_start, lp->text_start, chars, off);
        for (; off < lp->text_end; off++) chars += ((unsigned char)a.text[off] & 0xC0) != 0x80;
    }

    /* a stop string cut inside the text: entries up to the cut, the last may run past it */
    char stop[8];
    snprintf(stop, sizeof stop, "%.4s", a.text + a.len / 2);
    const char *stops[1] = {stop};
    p.stop = stops;
    p.n_stop = 1;
    CHECK(mlxr_gen_submit(e, ids, n_ids, &p, &g, &full, &err) == MLXR_OK, "submit: %s", err.msg);
    if (g) pull(model, g, 2, &b);
    CHECK(mlxr_gen_finish_reason(g) == MLXR_GEN_STOP, "stop string '%s' ends it", stop);
    mlxr_gen_release(g);
    const size_t cut = (size_t)(strstr(a.text, stop) - a.text);
    nb = pieces(model, b.lp, b.n_lp, bytes, sizeof bytes);
    CHECK(b.len == cut && nb >= cut && !memcmp(bytes, b.text, cut) && b.n_lp > 0 &&
              b.lp[b.n_lp - 1].text_start < cut, "stop: text %zu of %zu bytes, entries %zu bytes",
          b.len, cut, nb);
    bool same = b.n_lp <= a.n_lp;
    for (size_t i = 0; same && i < b.n_lp; i++)
        same = b.lp[i].token == a.lp[i].token && b.lp[i].logprob == a.lp[i].logprob &&
               b.lp[i].text_start == a.lp[i].text_start;
    CHECK(same, "the same entries as without the stop string");
    mlxr_gen_engine_free(e);
    return test_finish("server_gen_logprobs");
}
