/*
 * engine.c - the public engine API: a context driven by one thread, a request list shared with
 * callers under one mutex, and a condition variable to wake the thread. Scheduling itself is in
 * sched.c. The thread sleeps while there is no request; each loop takes a snapshot of the list
 * (arrival order), runs one step without the lock (callbacks run there), and publishes stats.
 */
#include "sched/sched.h"

#include "kv/kv.h"
#include "model/model.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

mlxr_engine_opts mlxr_engine_default_opts(void) {
    mlxr_engine_opts o;
    memset(&o, 0, sizeof o);
    o.ctx = mlxr_context_default_opts();
    o.ctx.n_ctx = 2048;
    o.ctx.n_seq_max = 16;
    return o;
}

/* Copy the list into e->act; false on allocation failure (the step is then skipped). */
static bool snapshot(mlxr_engine *e) {
    int32_t n = 0;
    for (mlxr_req *r = e->head; r; r = r->next)
        n++;
    if (n > e->cap_act) {
        mlxr_req **a = realloc(e->act, (size_t)n * 2 * sizeof *a);
        if (!a) return false;
        e->act = a;
        e->cap_act = n * 2;
    }
    e->n_act = 0;
    for (mlxr_req *r = e->head; r; r = r->next)
        e->act[e->n_act++] = r;
    return true;
}

static void publish_stats(mlxr_engine *e) {
    int32_t run = 0, wait = 0;
    for (mlxr_req *r = e->head; r; r = r->next) {
        /* state is the engine thread's, and this is the engine thread */
        if (r->state == REQ_RUNNING)
            run++;
        else
            wait++;
    }
    e->stats.n_running = run;
    e->stats.n_waiting = wait;
    e->stats.n_steps = e->n_steps;
    e->stats.n_preempt = e->n_preempt;
    mlxr_kv_get_stats(e->c, &e->stats.kv);
}

static void *engine_main(void *arg) {
    mlxr_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && !e->head) {
            pthread_cond_broadcast(&e->idle);
            pthread_cond_wait(&e->wake, &e->mu);
        }
        if (e->stop && !e->head) break;
        const bool stopping = e->stop, ok = snapshot(e);
        pthread_mutex_unlock(&e->mu);
        if (ok) mlxr_sched_step(e, stopping);
        pthread_mutex_lock(&e->mu);
        publish_stats(e);
    }
    pthread_cond_broadcast(&e->idle);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

mlxr_status mlxr_engine_new(mlxr_model *m, const mlxr_engine_opts *opts, mlxr_engine **out,
                            mlxr_err *err) {
    if (!m || !out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "model and out must be set");
    *out = NULL;
    mlxr_engine *e = calloc(1, sizeof *e);
    if (!e) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for an engine");
    e->o = opts ? *opts : mlxr_engine_default_opts();
    if (e->o.ctx.n_seq_max == 0) e->o.ctx.n_seq_max = 16;
    if (e->o.n_lookup < 0 || e->o.n_lookup > 16) {
        const int32_t bad = e->o.n_lookup;
        free(e);
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "n_lookup %d out of range 0..16", bad);
    }
    e->m = m;
    e->next_id = 1;
    mlxr_status st = mlxr_context_new(m, &e->o.ctx, &e->c, err);
    if (st != MLXR_OK) {
        free(e);
        return st;
    }
    e->n_ctx = e->c->n_ctx;
    e->n_seq = e->c->n_seq;
    e->n_batch = e->c->n_batch;
    e->n_vocab = m->info.n_vocab;
    const size_t B = (size_t)e->n_batch;
    e->slot_free = malloc((size_t)e->n_seq * sizeof *e->slot_free);
    e->b_tok = malloc(B * sizeof *e->b_tok);
    e->b_pos = malloc(B * sizeof *e->b_pos);
    e->b_seq = malloc(B * sizeof *e->b_seq);
    e->b_logits = malloc(B);
    if (!e->slot_free || !e->b_tok || !e->b_pos || !e->b_seq || !e->b_logits) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for the engine's batch of %d",
                       e->n_batch);
        goto fail;
    }
    for (int32_t i = 0; i < e->n_seq; i++)
        e->slot_free[i] = e->n_seq - 1 - i;
    e->n_slot_free = e->n_seq;
    mlxr_kv_get_stats(e->c, &e->stats.kv);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->idle, NULL);
    if (pthread_create(&e->th, NULL, engine_main, e) != 0) {
        pthread_cond_destroy(&e->idle);
        pthread_cond_destroy(&e->wake);
        pthread_mutex_destroy(&e->mu);
        st = MLXR_FAIL(err, MLXR_ERR_INTERNAL, "cannot start the engine thread");
        goto fail;
    }
    *out = e;
    return MLXR_OK;
fail:
    free(e->slot_free);
    free(e->b_tok);
    free(e->b_pos);
    free(e->b_seq);
    free(e->b_logits);
    mlxr_context_free(e->c);
    free(e);
    return st;
}

void mlxr_engine_free(mlxr_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->th, NULL);
    pthread_cond_destroy(&e->idle);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->mu);
    free(e->act);
    free(e->slot_free);
    free(e->b_tok);
    free(e->b_pos);
    free(e->b_seq);
    free(e->b_logits);
    free(e->piece_off);
    free(e->piece_bytes);
    free(e->piece_ok);
    free(e->masked);
    mlxr_context_free(e->c);
    free(e);
}

static mlxr_status check_request(const mlxr_engine *e, const mlxr_request *r, mlxr_err *err) {
    if (!r || !r->prompt || r->n_prompt <= 0)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "a request needs a prompt of at least one token");
    if (r->n_prompt > e->n_ctx)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "prompt of %d tokens exceeds the context of %d",
                         r->n_prompt, e->n_ctx);
    if (mlxr_kv_blocks_for(r->n_prompt) > e->c->kv.n_block)
        return MLXR_FAIL(err, MLXR_ERR_RANGE,
                         "prompt of %d tokens needs %d KV blocks; the pool has %d", r->n_prompt,
                         mlxr_kv_blocks_for(r->n_prompt), e->c->kv.n_block);
    if (r->max_tokens < 0 || r->n_stop < 0 || (r->n_stop > 0 && !r->stop_ids))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "negative max_tokens or bad stop ids");
    if (r->n_top_logprobs < 0 || r->n_top_logprobs > 20 || r->n_top_logprobs > e->n_vocab)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "n_top_logprobs %d out of range 0..20",
                         r->n_top_logprobs);
    for (int32_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->n_vocab)
            return MLXR_FAIL(err, MLXR_ERR_RANGE, "prompt token %d at %d out of range 0..%d",
                             r->prompt[i], i, e->n_vocab - 1);
    return MLXR_OK;
}

mlxr_status mlxr_engine_submit(mlxr_engine *e, const mlxr_request *req, uint64_t *id,
                               mlxr_err *err) {
    if (!e || !id) return MLXR_FAIL(err, MLXR_ERR_INVALID, "engine and id must be set");
    *id = 0;
    mlxr_status st = check_request(e, req, err);
    if (st != MLXR_OK) return st;
    mlxr_req *r = calloc(1, sizeof *r);
    if (!r) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for a request");
    /* room for the prompt and every token that can follow within n_ctx (+1: the last one
     * sampled is stored before the length check ends the request) */
    r->cap = e->n_ctx + 1;
    r->toks = malloc((size_t)r->cap * sizeof *r->toks);
    r->stop = malloc(((size_t)req->n_stop + 1) * sizeof *r->stop);
    if (!r->toks || !r->stop) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for a request of %d tokens", r->cap);
        goto fail;
    }
    st = mlxr_sampler_new(&req->sampler, e->n_vocab, &r->smp, err);
    if (st != MLXR_OK) goto fail;
    memcpy(r->toks, req->prompt, (size_t)req->n_prompt * sizeof *r->toks);
    for (int32_t i = 0; i < req->n_prompt; i++)
        mlxr_sampler_accept(r->smp, req->prompt[i]);
    if (req->n_stop > 0) memcpy(r->stop, req->stop_ids, (size_t)req->n_stop * sizeof *r->stop);
    r->n_toks = r->n_prompt = req->n_prompt;
    r->n_stop = req->n_stop;
    r->max_tokens = req->max_tokens;
    r->ignore_eog = req->ignore_eog;
    r->on_token = req->on_token;
    r->on_done = req->on_done;
    r->on_token_info = req->on_token_info;
    r->user = req->user;
    r->logprobs = req->logprobs;
    r->n_top = req->logprobs ? req->n_top_logprobs : 0;
    r->json_mode = req->json_mode;
    mlxr_jsonc_init(&r->json, true);
    r->slot = -1;
    r->state = REQ_WAITING;
    r->st.n_prompt = req->n_prompt;
    r->t_submit = mlxr_sched_now();
    atomic_init(&r->cancel, false);
    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        pthread_mutex_unlock(&e->mu);
        st = MLXR_FAIL(err, MLXR_ERR_INVALID, "the engine is shutting down");
        goto fail;
    }
    r->id = e->next_id++;
    r->prev = e->tail;
    if (e->tail)
        e->tail->next = r;
    else
        e->head = r;
    e->tail = r;
    *id = r->id;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    return MLXR_OK;
fail:
    mlxr_sampler_free(r->smp);
    free(r->toks);
    free(r->stop);
    free(r);
    return st;
}

mlxr_status mlxr_engine_cancel(mlxr_engine *e, uint64_t id) {
    if (!e) return MLXR_ERR_INVALID;
    mlxr_status st = MLXR_ERR_NOT_FOUND;
    pthread_mutex_lock(&e->mu);
    for (mlxr_req *r = e->head; r; r = r->next)
        if (r->id == id) {
            atomic_store(&r->cancel, true);
            st = MLXR_OK;
            break;
        }
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    return st;
}

void mlxr_engine_get_stats(mlxr_engine *e, mlxr_engine_stats *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->mu);
}

void mlxr_engine_wait_idle(mlxr_engine *e) {
    pthread_mutex_lock(&e->mu);
    while (e->head)
        pthread_cond_wait(&e->idle, &e->mu);
    pthread_mutex_unlock(&e->mu);
}
