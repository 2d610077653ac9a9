/*
 * speculative.c - speculative decoding of one sequence (Leviathan et al. 2023, "Fast Inference
 * from Transformers via Speculative Decoding"; prompt lookup: Saxena 2023).
 *
 * Each round: the last emitted token `tok` is not yet in the target's cache. A draft proposes
 * d[0..k) (a small model's greedy continuation, or the tokens that followed the latest earlier
 * occurrence of the last n-gram), and the target runs [tok, d0 .. d(k-1)] in one batch with
 * logits for every entry. Then, in order, the target's sampler picks token t_i from entry i; if
 * t_i == d_i it is emitted and the next entry's logits (which assumed d_i) are valid, else t_i is
 * emitted as the next round's `tok` and the rest is discarded. The target's cache is cut back
 * to the accepted entries (mlxr_kv_truncate), the draft's to what it has in common.
 *
 * The sampler is called exactly once per emitted token, with the logits plain decoding would
 * give it for the same history, so the output (and the random stream, when sampling) is that of
 * plain decoding; this "sample then compare" acceptance keeps the target's distribution for any
 * sampler, at a lower acceptance rate than the probability-ratio rule when sampling. Verify
 * batches run batch-invariant (one dot product per output, as a one-token step computes it), so
 * each entry's logits are bitwise those of plain one-token decoding, and the text is identical.
 */
#include "model/model.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

mlxr_spec_opts mlxr_spec_default_opts(void) {
    mlxr_spec_opts o = {5, 3, 1};
    return o;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

int32_t mlxr_spec_lookup(const int32_t *hist, int32_t n, int32_t ngram_min, int32_t ngram_max,
                         int32_t k, int32_t *out) {
    for (int32_t g = ngram_max; g >= ngram_min; g--) {
        if (g > n - 1) continue;
        const int32_t *suf = hist + n - g;
        for (int32_t i = n - g - 1; i >= 0; i--) {
            if (memcmp(hist + i, suf, (size_t)g * sizeof *hist)) continue;
            int32_t m = 0;
            while (m < k && i + g + m < n) {
                out[m] = hist[i + g + m];
                m++;
            }
            return m;
        }
    }
    return 0;
}

/* Decode tokens[0..n) of sequence 0 at positions pos0.. in batches of the context's n_batch,
 * logits for the last entry only; *last is that entry's index in the final batch. */
static mlxr_status feed(mlxr_context *c, const int32_t *tokens, int32_t n, int32_t pos0,
                        int32_t *pos_buf, int32_t *seq_buf, int32_t *last, mlxr_err *err) {
    for (int32_t i = 0; i < n; i += c->n_batch) {
        const int32_t m = n - i < c->n_batch ? n - i : c->n_batch;
        for (int32_t j = 0; j < m; j++)
            pos_buf[j] = pos0 + i + j, seq_buf[j] = 0;
        mlxr_batch b = {m, tokens + i, pos_buf, seq_buf, NULL};
        mlxr_status st = mlxr_decode(c, &b, err);
        if (st != MLXR_OK) return st;
        *last = m - 1;
    }
    return MLXR_OK;
}

typedef struct spec_run {
    mlxr_context *t, *d;
    const mlxr_spec_opts *o;
    mlxr_sampler *s;
    int32_t *hist; /* [n_ctx + 1] prompt and emitted tokens */
    int32_t n_hist, n_draft_kv, max_tokens;
    int32_t *pos, *seq, *bt; /* [n_batch] batch scratch */
    int8_t *want;
    int32_t dr[64]; /* the draft's proposal */
    mlxr_engine_token_fn on_token;
    void *user;
    mlxr_spec_stats st;
} spec_run;

/* Emit a token; true when generation ends here. */
static bool emit(spec_run *r, int32_t tok) {
    if (mlxr_token_is_eog(r->t->m, tok)) return true;
    r->hist[r->n_hist++] = tok;
    r->st.n_gen++;
    if (r->on_token && !r->on_token(r->user, 0, tok)) return true;
    /* the token must fit at position n_hist - 1 to be fed next round */
    return (r->max_tokens > 0 && r->st.n_gen >= r->max_tokens) || r->n_hist >= r->t->n_ctx;
}

/* Propose up to k tokens after hist into r->d; returns how many. */
static mlxr_status propose(spec_run *r, int32_t k, int32_t *n_out, mlxr_err *err) {
    *n_out = 0;
    if (!r->d) {
        *n_out = mlxr_spec_lookup(r->hist, r->n_hist, r->o->ngram_min, r->o->ngram_max, k, r->dr);
        return MLXR_OK;
    }
    if (r->n_hist + k > r->d->n_ctx) k = r->d->n_ctx - r->n_hist;
    if (k <= 0) return MLXR_OK;
    int32_t last = 0;
    mlxr_status st = feed(r->d, r->hist + r->n_draft_kv, r->n_hist - r->n_draft_kv, r->n_draft_kv,
                          r->pos, r->seq, &last, err);
    if (st != MLXR_OK) return st;
    const int32_t V = r->d->m->info.n_vocab;
    r->dr[0] = argmax(mlxr_get_logits(r->d, last), V);
    r->n_draft_kv = r->n_hist;
    for (int32_t i = 1; i < k; i++) {
        st = feed(r->d, &r->dr[i - 1], 1, r->n_draft_kv, r->pos, r->seq, &last, err);
        if (st != MLXR_OK) return st;
        r->n_draft_kv++;
        r->dr[i] = argmax(mlxr_get_logits(r->d, last), V);
    }
    *n_out = k;
    return MLXR_OK;
}

/* One round after `*tok` was emitted: verify a draft, emit what is accepted; *tok receives the
 * target's own next token. *done when generation ended. */
static mlxr_status round_(spec_run *r, int32_t *tok, bool *done, mlxr_err *err) {
    int32_t k = r->o->n_draft;
    if (k > r->t->n_ctx - r->n_hist) k = r->t->n_ctx - r->n_hist;
    if (k < 0) k = 0;
    mlxr_status st = propose(r, k, &k, err);
    if (st != MLXR_OK) return st;
    const int32_t n0 = r->n_hist; /* *tok sits at position n0 - 1 */
    r->bt[0] = *tok;
    for (int32_t i = 0; i <= k; i++) {
        if (i > 0) r->bt[i] = r->dr[i - 1];
        r->pos[i] = n0 - 1 + i;
        r->seq[i] = 0;
        r->want[i] = 1;
    }
    mlxr_batch b = {k + 1, r->bt, r->pos, r->seq, r->want};
    const bool inv = r->t->batch_invariant;
    r->t->batch_invariant = true;
    st = mlxr_decode(r->t, &b, err);
    r->t->batch_invariant = inv;
    if (st != MLXR_OK) return st;
    r->st.n_passes++;
    r->st.n_drafted += k;
    int32_t a = 0;
    for (int32_t i = 0; i <= k; i++) {
        const int32_t t = mlxr_sampler_sample(r->s, mlxr_get_logits(r->t, i));
        mlxr_sampler_accept(r->s, t);
        if (i < k && t == r->dr[i]) {
            a++;
            if (emit(r, t)) {
                *done = true;
                break;
            }
            continue;
        }
        *tok = t;
        break;
    }
    r->st.n_accepted += a;
    st = mlxr_kv_truncate(r->t, 0, n0 + a, err);
    if (st == MLXR_OK && r->d && r->n_draft_kv > n0 + a) {
        st = mlxr_kv_truncate(r->d, 0, n0 + a, err);
        r->n_draft_kv = n0 + a;
    }
    return st;
}

mlxr_status mlxr_spec_generate(mlxr_context *target, mlxr_context *draft,
                               const mlxr_spec_opts *opts, mlxr_sampler *s, const int32_t *prompt,
                               int32_t n_prompt, int32_t max_tokens, mlxr_engine_token_fn on_token,
                               void *user, mlxr_spec_stats *stats, mlxr_err *err) {
    const mlxr_spec_opts o = opts ? *opts : mlxr_spec_default_opts();
    if (!target || !s || !prompt || n_prompt <= 0 || max_tokens < 0)
        return MLXR_FAIL(err, MLXR_ERR_INVALID,
                         "speculative decoding needs a target, a sampler "
                         "and a prompt");
    if (o.n_draft < 1 || o.n_draft > 63 || o.n_draft >= target->n_batch || o.ngram_min < 1 ||
        o.ngram_max < o.ngram_min)
        return MLXR_FAIL(err, MLXR_ERR_INVALID,
                         "bad speculative options: n_draft %d (1..63, below "
                         "n_batch %d), n-gram %d..%d",
                         o.n_draft, target->n_batch, o.ngram_min, o.ngram_max);
    if (draft && draft->m->info.n_vocab != target->m->info.n_vocab)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "draft vocabulary of %d tokens, target has %d",
                         draft->m->info.n_vocab, target->m->info.n_vocab);
    if (n_prompt > target->n_ctx || (draft && n_prompt > draft->n_ctx))
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "prompt of %d tokens exceeds the context", n_prompt);
    spec_run r;
    memset(&r, 0, sizeof r);
    r.t = target;
    r.d = draft;
    r.o = &o;
    r.s = s;
    r.max_tokens = max_tokens;
    r.on_token = on_token;
    r.user = user;
    const int32_t nb =
        target->n_batch > (draft ? draft->n_batch : 0) ? target->n_batch : draft->n_batch;
    r.hist = malloc(((size_t)target->n_ctx + 1) * sizeof *r.hist);
    r.pos = malloc((size_t)nb * sizeof *r.pos);
    r.seq = malloc((size_t)nb * sizeof *r.seq);
    r.bt = malloc((size_t)nb * sizeof *r.bt);
    r.want = malloc((size_t)nb);
    mlxr_status st = MLXR_OK;
    if (!r.hist || !r.pos || !r.seq || !r.bt || !r.want) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for speculative decoding");
        goto done;
    }
    mlxr_kv_clear(target, 0);
    if (draft) mlxr_kv_clear(draft, 0);
    memcpy(r.hist, prompt, (size_t)n_prompt * sizeof *prompt);
    r.n_hist = n_prompt;
    int32_t last = 0;
    st = feed(target, prompt, n_prompt, 0, r.pos, r.seq, &last, err);
    if (st != MLXR_OK) goto done;
    for (int32_t i = 0; i < n_prompt; i++)
        mlxr_sampler_accept(s, prompt[i]);
    int32_t tok = mlxr_sampler_sample(s, mlxr_get_logits(target, last));
    mlxr_sampler_accept(s, tok);
    bool fin = max_tokens == 0;
    while (!fin && !emit(&r, tok)) {
        st = round_(&r, &tok, &fin, err);
        if (st != MLXR_OK) break;
    }
done:
    if (stats) *stats = r.st;
    free(r.hist);
    free(r.pos);
    free(r.seq);
    free(r.bt);
    free(r.want);
    return st;
}
