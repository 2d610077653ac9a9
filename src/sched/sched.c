/*
 * sched.c - one step of continuous batching, run by the engine thread:
 *   1. requests cancelled since the last step are finished (their blocks and slot freed);
 *   2. a batch is planned within n_batch tokens: first the next token of every running request
 *      in decode, then prompt chunks of running requests still in prefill, then waiting requests
 *      are admitted first come, first served while a sequence slot is free and the pool holds
 *      their whole prompt (after sharing what the prefix cache has);
 *   3. when a running request needs a block the pool does not have, the newest running request is
 *      preempted: its blocks are freed and it waits again, to be recomputed from its prompt plus
 *      the tokens it already produced;
 *   4. the batch runs; each request whose last entry had logits samples its next token, which is
 *      delivered or ends it (EOG, stop id, max tokens, full context, callback said stop).
 * Prefill and decode are one mechanism: a request's tokens (prompt + generated) beyond its cached
 * length are fed in order; logits are kept only for the entry that reaches the last token.
 * With opts.n_lookup, a request in decode also feeds a prompt-lookup draft after its last token
 * (logits for every entry); its sampler then runs on each entry in order while the picks confirm
 * the draft, and the cache is cut back to what was confirmed (see speculative.c for why the
 * output is that of plain decoding). JSON mode and log-probabilities work per position, so they
 * keep working with drafts (constrain.c).
 */
#include "sched/sched.h"

#include "kv/kv.h"
#include "model/model.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double mlxr_sched_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int32_t kv_len(const mlxr_engine *e, const mlxr_req *r) {
    return r->slot >= 0 ? e->c->kv.seq_len[r->slot] : 0;
}

/* Give back the request's slot and blocks. */
static void release_slot(mlxr_engine *e, mlxr_req *r) {
    if (r->slot < 0) return;
    mlxr_kv_clear(e->c, r->slot);
    e->slot_free[e->n_slot_free++] = r->slot;
    r->slot = -1;
}

/* Finish a request: free its slot, call on_done, unlink it, free it. */
static void finish(mlxr_engine *e, mlxr_req *r, mlxr_finish why, mlxr_status st, const char *msg) {
    release_slot(e, r);
    const double now = mlxr_sched_now();
    r->st.finish = why;
    r->st.status = st;
    if (msg) snprintf(r->st.msg, sizeof r->st.msg, "%s", msg);
    r->st.total_s = now - r->t_submit;
    if (r->t_first_sched > 0) r->st.queue_s = r->t_first_sched - r->t_submit;
    if (r->t_first_tok > 0) r->st.ttft_s = r->t_first_tok - r->t_submit;
    if (r->st.n_gen > 1 && now > r->t_first_tok)
        r->st.gen_tok_per_s = (r->st.n_gen - 1) / (now - r->t_first_tok);
    if (r->on_done) r->on_done(r->user, r->id, &r->st);
    pthread_mutex_lock(&e->mu);
    if (r->prev)
        r->prev->next = r->next;
    else
        e->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        e->tail = r->prev;
    e->stats.n_done++;
    e->stats.n_tokens_prefilled += (uint64_t)r->st.n_prefilled;
    e->stats.n_tokens_cached += (uint64_t)r->st.n_cached;
    e->stats.n_tokens_generated += (uint64_t)r->st.n_gen;
    pthread_mutex_unlock(&e->mu);
    mlxr_sampler_free(r->smp);
    free(r->toks);
    free(r->stop);
    free(r);
}

static void preempt(mlxr_engine *e, mlxr_req *r) {
    release_slot(e, r);
    r->state = REQ_WAITING;
    r->planned = true; /* nothing more for it this step */
    r->n_step = 0;
    r->n_draft = 0;
    r->st.n_preempted++;
    e->n_preempt++;
}

/* Make room for `need` more blocks beyond those already promised (`reserved`) by preempting
 * running requests newer than r, newest first. Returns false if r itself must yield (it is the
 * newest left), after preempting it. */
static bool make_room(mlxr_engine *e, mlxr_req *r, int32_t need, int32_t reserved) {
    while (need > mlxr_kv_available(&e->c->kv) - reserved) {
        mlxr_req *victim = r;
        for (int32_t i = e->n_act - 1; i >= 0; i--) {
            mlxr_req *v = e->act[i];
            if (v == r) break; /* only requests that arrived after r */
            if (v && v->state == REQ_RUNNING && !v->planned) {
                victim = v;
                break;
            }
        }
        preempt(e, victim);
        if (victim == r) return false;
    }
    return true;
}

/* Append n tokens of r (from its cached length; past its last token, its draft) to the batch. */
static void add_tokens(mlxr_engine *e, mlxr_req *r, int32_t n) {
    const int32_t p0 = kv_len(e, r);
    for (int32_t i = 0; i < n; i++) {
        const int32_t k = e->b_n++, p = p0 + i;
        e->b_tok[k] = p < r->n_toks ? r->toks[p] : r->draft[p - r->n_toks];
        e->b_pos[k] = p;
        e->b_seq[k] = r->slot;
        e->b_logits[k] = p >= r->n_toks - 1;
        if (p == r->n_toks - 1) r->k_logits = k;
    }
    if (r->n_toks - p0 > 1 || r->st.n_gen == 0) r->st.n_prefilled += n;
    r->n_step = n;
    r->planned = true;
}

/* Plan a running request's share of the batch: its decode token or a prompt chunk. */
static void plan_running(mlxr_engine *e, mlxr_req *r, int32_t *budget, int32_t *reserved) {
    const int32_t len = kv_len(e, r);
    int32_t n = r->n_toks - len;
    if (n > *budget) n = *budget;
    if (n <= 0) return;
    r->n_draft = 0;
    if (n == 1 && e->o.n_lookup > 0) {
        int32_t k = e->o.n_lookup;
        if (k > *budget - 1) k = *budget - 1;
        if (k > e->n_ctx - r->n_toks) k = e->n_ctx - r->n_toks;
        if (k > 0) r->n_draft = mlxr_spec_lookup(r->toks, r->n_toks, 1, 3, k, r->draft);
        /* a draft never costs another request its blocks */
        if (mlxr_kv_blocks_needed(&e->c->kv, r->slot, len + 1 + r->n_draft) >
            mlxr_kv_available(&e->c->kv) - *reserved)
            r->n_draft = 0;
        n += r->n_draft;
    }
    const int32_t need = mlxr_kv_blocks_needed(&e->c->kv, r->slot, len + n);
    if (!make_room(e, r, need, *reserved)) return;
    r->st.n_drafted += r->n_draft;
    *reserved += need;
    *budget -= n;
    add_tokens(e, r, n);
}

/* True when r's prompt shares full blocks, beyond the `cached` positions it found in the prefix
 * cache, with a running request that has not computed them yet: r then waits a step or more for
 * them to be cached instead of computing them a second time (requests with a common system
 * prompt arriving together). */
static bool wait_for_prefix(const mlxr_engine *e, const mlxr_req *r, int32_t cached) {
    const int32_t limit = (r->n_toks - 1) / MLXR_KV_BLOCK * MLXR_KV_BLOCK;
    for (int32_t j = 0; j < e->n_act; j++) {
        const mlxr_req *a = e->act[j];
        if (!a || a == r || a->state != REQ_RUNNING) continue;
        const int32_t len = kv_len(e, a);
        if (len >= limit) continue;
        int32_t common = 0;
        const int32_t n = a->n_toks < limit ? a->n_toks : limit;
        while (common < n && a->toks[common] == r->toks[common])
            common++;
        common = common / MLXR_KV_BLOCK * MLXR_KV_BLOCK;
        if (common > cached && len < common) return true;
    }
    return false;
}

/* Admit waiting requests in arrival order while slots, budget and blocks allow. */
static void admit(mlxr_engine *e, int32_t *budget, int32_t *reserved) {
    mlxr_kv_pool *kv = &e->c->kv;
    for (int32_t i = 0; i < e->n_act && (*budget) > 0; i++) {
        mlxr_req *r = e->act[i];
        if (!r || r->state != REQ_WAITING || r->planned) continue;
        if (e->n_slot_free == 0) return;
        r->slot = e->slot_free[--e->n_slot_free];
        int32_t cached = 0;
        if (!e->o.no_prefix_cache) {
            cached = mlxr_kv_prefix_attach(kv, r->slot, r->toks, r->n_toks);
            if (wait_for_prefix(e, r, cached)) {
                release_slot(e, r);
                continue;
            }
        }
        const int32_t total = mlxr_kv_blocks_needed(kv, r->slot, r->n_toks);
        if (total > mlxr_kv_available(kv) - *reserved) {
            release_slot(e, r);
            return; /* first come, first served: no one overtakes it */
        }
        if (r->t_first_sched == 0) r->t_first_sched = mlxr_sched_now();
        r->st.n_cached += cached;
        r->state = REQ_RUNNING;
        r->n_draft = 0;
        int32_t n = r->n_toks - cached;
        if (n > *budget) n = *budget;
        *reserved += mlxr_kv_blocks_needed(kv, r->slot, cached + n);
        *budget -= n;
        add_tokens(e, r, n);
    }
}

/* Deliver r's next token (sampled from `logits`) or end the request; false when r ended (and
 * was freed). */
static bool deliver(mlxr_engine *e, mlxr_req *r, int32_t tok, const float *logits) {
    const double now = mlxr_sched_now();
    if (r->t_first_tok == 0) r->t_first_tok = now;
    r->st.n_gen++;
    mlxr_finish why = MLXR_FINISH_LENGTH;
    bool end = false;
    if (!r->ignore_eog && mlxr_token_is_eog(e->m, tok)) {
        why = MLXR_FINISH_EOG;
        end = true;
    }
    for (int32_t i = 0; i < r->n_stop && !end; i++)
        if (r->stop[i] == tok) {
            why = MLXR_FINISH_STOP;
            end = true;
        }
    if (!end) {
        r->toks[r->n_toks++] = tok;
        bool go = true;
        if (r->on_token_info) {
            mlxr_token_info info;
            int32_t top_ids[20];
            float top_lp[20];
            mlxr_sched_token_info(r, logits, e->n_vocab, tok, &info, top_ids, top_lp);
            go = r->on_token_info(r->user, r->id, &info);
        } else if (r->on_token) {
            go = r->on_token(r->user, r->id, tok);
        }
        if (!go) {
            why = MLXR_FINISH_CANCELLED;
            end = true;
        }
    }
    /* JSON mode: the object just closed; nothing but EOG may follow */
    if (!end && r->json_mode && mlxr_jsonc_closed(&r->json)) {
        why = MLXR_FINISH_EOG;
        end = true;
    }
    /* the token just appended must fit at position n_toks - 1 for the next step */
    if (!end && ((r->max_tokens > 0 && r->st.n_gen >= r->max_tokens) || r->n_toks > e->n_ctx))
        end = true;
    if (end) finish(e, r, why, MLXR_OK, NULL);
    return !end;
}

/* r's step reached its last token: sample from its logits (and, with a draft, on through the
 * draft while the picks confirm it), deliver, and cut the cache back to the confirmed tokens. */
static void next_tokens(mlxr_engine *e, mlxr_req *r) {
    const int32_t m = r->n_draft, keep0 = r->n_toks; /* the cache holds keep0 + m positions */
    int32_t a = 0;
    r->n_draft = 0;
    for (int32_t i = 0; i <= m; i++) {
        const float *logits = mlxr_get_logits(e->c, r->k_logits + i);
        mlxr_err perr = {0};
        const int32_t tok = mlxr_sched_pick(e, r, logits, &perr);
        if (tok < 0) {
            finish(e, r, MLXR_FINISH_ERROR, perr.code != MLXR_OK ? perr.code : MLXR_ERR_INTERNAL,
                   perr.msg);
            return;
        }
        mlxr_sampler_accept(r->smp, tok);
        const bool confirmed = i < m && tok == r->draft[i];
        r->st.n_accepted += confirmed;
        if (!deliver(e, r, tok, logits)) return;
        if (!confirmed) break;
        a++;
    }
    if (m == 0) return;
    mlxr_err err = {0};
    mlxr_status st = mlxr_kv_truncate(e->c, r->slot, keep0 + a, &err);
    if (st != MLXR_OK) finish(e, r, MLXR_FINISH_ERROR, st, err.msg);
}

void mlxr_sched_step(mlxr_engine *e, bool stopping) {
    /* 1. cancellations */
    for (int32_t i = 0; i < e->n_act; i++) {
        mlxr_req *r = e->act[i];
        r->planned = false;
        r->n_step = 0;
        if (stopping || atomic_load(&r->cancel)) {
            finish(e, r, MLXR_FINISH_CANCELLED, MLXR_OK, NULL);
            e->act[i] = NULL;
        }
    }
    /* 2-3. plan: decodes, then prefill chunks, then admissions */
    int32_t budget = e->n_batch, reserved = 0;
    e->b_n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int32_t i = 0; i < e->n_act && budget > 0; i++) {
            mlxr_req *r = e->act[i];
            if (!r || r->state != REQ_RUNNING || r->planned) continue;
            const bool decode = r->n_toks - kv_len(e, r) == 1;
            if (decode == (pass == 0)) plan_running(e, r, &budget, &reserved);
        }
    admit(e, &budget, &reserved);
    if (e->b_n == 0) {
        /* nothing could run: only possible when the oldest waiting request cannot fit the pool
         * even alone (admission always succeeds on an empty pool otherwise) */
        for (int32_t i = 0; i < e->n_act; i++) {
            mlxr_req *r = e->act[i];
            if (!r || r->state != REQ_WAITING) continue;
            bool alone = true;
            for (int32_t j = 0; j < e->n_act; j++)
                if (e->act[j] && e->act[j]->state == REQ_RUNNING) alone = false;
            if (alone) {
                char msg[128];
                snprintf(msg, sizeof msg,
                         "the KV pool (%d blocks of %d positions) cannot hold "
                         "%d tokens",
                         e->c->kv.n_block, MLXR_KV_BLOCK, r->n_toks);
                e->act[i] = NULL;
                finish(e, r, MLXR_FINISH_ERROR, MLXR_ERR_NOMEM, msg);
            }
            break;
        }
        return;
    }
    /* 4. run and sample */
    mlxr_batch b = {e->b_n, e->b_tok, e->b_pos, e->b_seq, e->b_logits};
    mlxr_err err = {0};
    mlxr_status st = mlxr_decode(e->c, &b, &err);
    e->n_steps++;
    for (int32_t i = 0; i < e->n_act; i++) {
        mlxr_req *r = e->act[i];
        if (!r || r->n_step == 0) continue;
        if (st != MLXR_OK) {
            e->act[i] = NULL;
            finish(e, r, MLXR_FINISH_ERROR, st, err.msg);
            continue;
        }
        if (kv_len(e, r) >= r->n_toks) {
            e->act[i] = NULL; /* next_tokens may free r */
            next_tokens(e, r);
        }
    }
}
