/*
 * gen_engine.c - gen.h on the continuous-batching engine (mlxr_engine): every request of every
 * client of one model shares one engine, which batches their prompts and next tokens together.
 *
 * Threads: HTTP threads call submit / read / cancel; the engine thread calls on_token / on_done.
 * Those callbacks only turn a token into text (mlxr_detok_stream + the stop-string matcher) and
 * append it to the generation's buffer under the generation's lock, so a slow client never
 * stalls the batch: the connection pulls the text with mlxr_gen_read at its own pace.
 *
 * Cancellation: mlxr_gen_cancel sets a flag (seen by on_token, which then returns false) and
 * calls mlxr_engine_cancel, which frees the sequence's KV blocks at the engine's next step even
 * while the prompt is still being prefilled. A stop string is a cancellation seen from the
 * engine, but finishes as MLXR_GEN_STOP.
 *
 * Queue bound: the engine itself queues without limit; here at most n_seq_max running plus
 * max_queue waiting requests are accepted, the rest is refused (the daemon answers 429).
 */
#include "server/gen.h"

#include "server/stopmatch.h"
#include "util/err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct mlxr_gen {
    mlxr_gen_engine *engine;
    uint64_t id;        /* ours (process-unique) */
    uint64_t eid;       /* (mu) the engine's request id; 0 until submit returned */
    atomic_int refs;
    atomic_bool cancel;
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* text appended or finished */
    mlxr_stopmatch stops;   /* engine thread only */
    mlxr_detok_stream *detok; /* engine thread only */
    bool stop_hit;          /* engine thread only: a stop string ended it */
    bool logprobs;          /* record mlxr_gen_logprob entries */
    bool lp_open;           /* engine thread only: the last entry awaits its text's end */
    size_t det_off, det_chars; /* engine thread only: bytes / characters decoded so far */
    mlxr_gen_logprob *lps;  /* (mu) [n_lps] entries, in token order */
    size_t n_lps, cap_lps, n_taken; /* (mu) n_taken: handed to the reader */
    int64_t t_prev;         /* engine thread only: time of the previous token */
    char *out;              /* (mu) text produced so far */
    size_t out_len, out_cap, read_off;
    mlxr_gen_finish finish; /* (mu) */
    mlxr_gen_stats stats;   /* (mu) */
    char errmsg[256];       /* (mu) */
};

struct mlxr_gen_engine {
    mlxr_model *model;
    mlxr_engine *eng;
    int32_t n_ctx, n_vocab, n_seq_max, max_queue;
    mlxr_metrics *metrics;
    pthread_mutex_t mu;
    int32_t n_pending; /* (mu) accepted and not finished */
};

static atomic_uint_fast64_t next_gen_id = 1;

int64_t mlxr_gen_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- generation handles ------------------------------------------------------------------ */

void mlxr_gen_retain(mlxr_gen *g) { atomic_fetch_add(&g->refs, 1); }

void mlxr_gen_release(mlxr_gen *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    mlxr_stopmatch_free(&g->stops);
    mlxr_detok_stream_free(g->detok);
    free(g->lps);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g->out);
    free(g);
}

uint64_t mlxr_gen_id(const mlxr_gen *g) { return g->id; }

const mlxr_model *mlxr_gen_model(const mlxr_gen *g) { return g->engine->model; }

size_t mlxr_gen_read_logprobs(mlxr_gen *g, mlxr_gen_logprob *out, size_t cap) {
    size_t n = 0;
    pthread_mutex_lock(&g->mu);
    const bool done = g->finish != MLXR_GEN_RUNNING && g->read_off == g->out_len;
    while (n < cap && g->n_taken < g->n_lps) {
        const mlxr_gen_logprob *lp = &g->lps[g->n_taken];
        const bool released = lp->text_end <= g->read_off;
        if (!released && !(done && lp->text_start < g->out_len)) {
            if (done) g->n_taken = g->n_lps; /* the rest fell in a cut stop string */
            break;
        }
        out[n++] = *lp;
        g->n_taken++;
    }
    pthread_mutex_unlock(&g->mu);
    return n;
}

void mlxr_gen_cancel(mlxr_gen *g) {
    atomic_store(&g->cancel, true);
    pthread_mutex_lock(&g->mu);
    uint64_t eid = g->finish == MLXR_GEN_RUNNING ? g->eid : 0;
    pthread_mutex_unlock(&g->mu);
    /* eid 0: submit has not returned yet; it cancels itself when it sees the flag */
    if (eid) mlxr_engine_cancel(g->engine->eng, eid);
}

/* Absolute CLOCK_REALTIME deadline timeout_ms from now (condvars use the realtime clock). */
static struct timespec deadline_ms(int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

size_t mlxr_gen_read(mlxr_gen *g, int timeout_ms, char *buf, size_t cap, bool *done) {
    pthread_mutex_lock(&g->mu);
    if (timeout_ms > 0 && g->read_off == g->out_len && g->finish == MLXR_GEN_RUNNING) {
        struct timespec dl = deadline_ms(timeout_ms);
        pthread_cond_timedwait(&g->cv, &g->mu, &dl);
    }
    size_t n = g->out_len - g->read_off;
    if (n > cap) n = cap;
    if (n) memcpy(buf, g->out + g->read_off, n);
    g->read_off += n;
    *done = g->finish != MLXR_GEN_RUNNING && g->read_off == g->out_len;
    pthread_mutex_unlock(&g->mu);
    return n;
}

bool mlxr_gen_wait(mlxr_gen *g, int timeout_ms) {
    pthread_mutex_lock(&g->mu);
    struct timespec dl = deadline_ms(timeout_ms < 0 ? 0 : timeout_ms);
    while (g->finish == MLXR_GEN_RUNNING) {
        if (timeout_ms < 0) pthread_cond_wait(&g->cv, &g->mu);
        else if (pthread_cond_timedwait(&g->cv, &g->mu, &dl) != 0) break;
    }
    bool fin = g->finish != MLXR_GEN_RUNNING;
    pthread_mutex_unlock(&g->mu);
    return fin;
}

mlxr_gen_finish mlxr_gen_finish_reason(mlxr_gen *g) {
    pthread_mutex_lock(&g->mu);
    mlxr_gen_finish f = g->finish;
    pthread_mutex_unlock(&g->mu);
    return f;
}

void mlxr_gen_get_stats(mlxr_gen *g, mlxr_gen_stats *out) {
    pthread_mutex_lock(&g->mu);
    *out = g->stats;
    pthread_mutex_unlock(&g->mu);
}

void mlxr_gen_error(mlxr_gen *g, char *buf, size_t cap) {
    pthread_mutex_lock(&g->mu);
    snprintf(buf, cap, "%s", g->errmsg);
    pthread_mutex_unlock(&g->mu);
}

/* ---- engine callbacks (engine thread) ----------------------------------------------------- */

/* Append text for the reader (g->mu held). */
static void out_append(mlxr_gen *g, const char *s, size_t n) {
    if (n == 0) return;
    if (g->out_len + n > g->out_cap) {
        size_t nc = (g->out_len + n) * 2 + 256;
        char *p = realloc(g->out, nc);
        if (!p) return; /* out of memory: the text is truncated, never corrupted */
        g->out = p;
        g->out_cap = nc;
    }
    memcpy(g->out + g->out_len, s, n);
    g->out_len += n;
}

/* Pass decoded bytes through the stop-string matcher to the reader; true if a stop was hit. */
static bool emit_text(mlxr_gen *g, const char *text, size_t len) {
    char small[512];
    size_t need = mlxr_stopmatch_need(&g->stops, len), n = 0;
    char *buf = need > sizeof small ? malloc(need) : small;
    if (!buf) return false;
    bool stopped = mlxr_stopmatch_feed(&g->stops, text, len, buf, need, &n);
    pthread_mutex_lock(&g->mu);
    out_append(g, buf, n);
    if (n) pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (buf != small) free(buf);
    return stopped;
}

/* Run one detok-stream call with a growing buffer: push (id >= 0) or flush (id < 0). The text
 * goes to the matcher when `emit` (counted in det_off / det_chars), else is dropped (priming).
 * true if a stop string was hit. */
static bool detok_step(mlxr_gen *g, int32_t id, bool emit) {
    char small[256], *buf = small;
    size_t cap = sizeof small, n = 0;
    mlxr_err err = {0};
    for (;;) {
        mlxr_status st = id >= 0 ? mlxr_detok_stream_push(g->detok, id, buf, cap, &n, &err)
                                 : mlxr_detok_stream_flush(g->detok, buf, cap, &n, &err);
        if (st == MLXR_ERR_RANGE && buf == small) { /* nothing consumed: retry with room */
            char *big = malloc(n);
            if (!big) { /* out of memory: this token's text is lost, never corrupted */
                n = 0;
                break;
            }
            buf = big;
            cap = n;
            continue;
        }
        if (st != MLXR_OK) n = 0;
        break;
    }
    if (emit) {
        g->det_off += n;
        for (size_t i = 0; i < n; i++) g->det_chars += ((unsigned char)buf[i] & 0xC0) != 0x80;
    }
    if (g->lp_open) { /* the token's span ends here: set before its text becomes readable, so
                       * the reader releases both together */
        pthread_mutex_lock(&g->mu);
        g->lps[g->n_lps - 1].text_end = g->det_off;
        pthread_mutex_unlock(&g->mu);
        g->lp_open = false;
    }
    bool stopped = emit && n ? emit_text(g, buf, n) : false;
    if (buf != small) free(buf);
    return stopped;
}

/* Record a token's log-probabilities, its text span starting at det_off (engine thread); false
 * when out of memory (the token then goes without). */
static bool add_logprob(mlxr_gen *g, const mlxr_token_info *info) {
    pthread_mutex_lock(&g->mu);
    if (g->n_lps == g->cap_lps) {
        size_t nc = g->cap_lps ? g->cap_lps * 2 : 64;
        mlxr_gen_logprob *p = realloc(g->lps, nc * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&g->mu);
            return false;
        }
        g->lps = p;
        g->cap_lps = nc;
    }
    mlxr_gen_logprob *lp = &g->lps[g->n_lps++];
    memset(lp, 0, sizeof *lp);
    lp->token = info->token;
    lp->logprob = info->logprob;
    lp->n_top = info->n_top < 20 ? info->n_top : 20;
    for (int32_t k = 0; k < lp->n_top; k++) {
        lp->top_id[k] = info->top_ids[k];
        lp->top_lp[k] = info->top_logprobs[k];
    }
    lp->text_start = g->det_off;
    lp->text_end = SIZE_MAX; /* not released before on_token has decoded its text */
    lp->char_start = g->det_chars;
    pthread_mutex_unlock(&g->mu);
    return true;
}

static bool on_token(void *user, uint64_t eid, const mlxr_token_info *info) {
    (void)eid;
    mlxr_gen *g = user;
    const int32_t tok = info->token;
    if (atomic_load(&g->cancel) || g->stop_hit) return false;
    mlxr_gen_engine *e = g->engine;
    int64_t now = mlxr_gen_now_ns();
    pthread_mutex_lock(&g->mu);
    bool first = g->stats.t_first == 0;
    if (first) {
        g->stats.t_first = now;
        /* the engine reports the exact start (end of queueing) only at the end (on_done); till
         * then the first token marks the request as running (GET /v1/requests) */
        g->stats.t_start = now;
    }
    g->stats.n_gen++;
    int64_t t_submit = g->stats.t_submit;
    pthread_mutex_unlock(&g->mu);
    if (e->metrics) {
        if (first) mlxr_metrics_ttft(e->metrics, (double)(now - t_submit) * 1e-9);
        else mlxr_metrics_token_latency(e->metrics, (double)(now - g->t_prev) * 1e-9);
        mlxr_metrics_tokens(e->metrics, 0, 1);
    }
    g->t_prev = now;
    g->lp_open = g->logprobs && add_logprob(g, info);
    if (detok_step(g, tok, true)) {
        g->stop_hit = true;
        return false; /* the engine cancels the sequence; on_done reports MLXR_GEN_STOP */
    }
    return true;
}

static void on_done(void *user, uint64_t eid, const mlxr_request_stats *rs) {
    (void)eid;
    mlxr_gen *g = user;
    mlxr_gen_engine *e = g->engine;
    mlxr_gen_finish f;
    switch (rs->finish) {
    case MLXR_FINISH_LENGTH: f = MLXR_GEN_LENGTH; break;
    case MLXR_FINISH_EOG:
    case MLXR_FINISH_STOP: f = MLXR_GEN_STOP; break;
    case MLXR_FINISH_ERROR: f = MLXR_GEN_ERROR; break;
    default: f = MLXR_GEN_CANCELLED; break;
    }
    if (g->stop_hit) f = MLXR_GEN_STOP;
    /* what the decoder and the matcher held back is text at an end-of-generation token or the
     * length limit (after a stop string the matcher gives nothing) */
    if (f == MLXR_GEN_STOP || f == MLXR_GEN_LENGTH) {
        if (!g->stop_hit) g->stop_hit = detok_step(g, -1, true);
        char tail[64];
        size_t n = 0, need = mlxr_stopmatch_need(&g->stops, 0);
        char *buf = need > sizeof tail ? malloc(need) : tail;
        if (buf) {
            mlxr_stopmatch_flush(&g->stops, buf, need, &n);
            pthread_mutex_lock(&g->mu);
            out_append(g, buf, n);
            pthread_mutex_unlock(&g->mu);
            if (buf != tail) free(buf);
        }
    }
    if (e->metrics) mlxr_metrics_tokens(e->metrics, rs->n_prompt, 0);
    pthread_mutex_lock(&g->mu);
    g->finish = f;
    if (f == MLXR_GEN_ERROR) snprintf(g->errmsg, sizeof g->errmsg, "%s", rs->msg);
    g->stats.n_prompt = rs->n_prompt;
    g->stats.t_start = g->stats.t_submit + (int64_t)(rs->queue_s * 1e9);
    g->stats.t_end = mlxr_gen_now_ns();
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_lock(&e->mu);
    e->n_pending--;
    pthread_mutex_unlock(&e->mu);
    mlxr_gen_release(g); /* the engine's reference */
}

/* ---- engine ------------------------------------------------------------------------------- */

/* Positions per sequence the default KV pool holds (see mlxr_gen_engine_new). */
#define DEFAULT_POOL_CTX 4096

mlxr_status mlxr_gen_engine_new(mlxr_model *model, const mlxr_gen_engine_opts *opts,
                                mlxr_gen_engine **out, mlxr_err *err) {
    *out = NULL;
    mlxr_gen_engine *e = calloc(1, sizeof *e);
    if (!e) {
        mlxr_model_free(model);
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    }
    e->model = model;
    const mlxr_model_info *info = mlxr_model_get_info(model);
    e->n_ctx = opts && opts->n_ctx > 0 ? opts->n_ctx : info->n_ctx_train;
    e->n_vocab = info->n_vocab;
    e->n_seq_max = opts && opts->n_seq_max > 0 ? opts->n_seq_max : 16;
    e->max_queue = opts && opts->max_queue > 0 ? opts->max_queue : 16;
    e->metrics = opts ? opts->metrics : NULL;
    pthread_mutex_init(&e->mu, NULL);
    mlxr_engine_opts eo = mlxr_engine_default_opts();
    eo.ctx.n_ctx = e->n_ctx;
    eo.ctx.n_seq_max = e->n_seq_max;
    eo.ctx.n_batch = 512;
    /* a request's output must not depend on what else is batched with it (same seed, same
     * text, whatever the load): one dot product per output instead of tiles */
    eo.ctx.n_gpu_layers = opts ? opts->n_gpu_layers : 0;
    eo.ctx.batch_invariant = !(opts && opts->no_batch_invariant) && eo.ctx.n_gpu_layers == 0;
    eo.ctx.kv_mem_bytes = opts ? opts->kv_mem_bytes : 0;
    eo.ctx.kv_type = opts ? opts->kv_type : MLXR_KV_F16;
    if (eo.ctx.kv_mem_bytes == 0 && e->n_ctx > DEFAULT_POOL_CTX) {
        /* Every request may grow to the model's full trained context, but the pool is sized
         * for n_seq_max x DEFAULT_POOL_CTX positions, not n_seq_max x n_ctx (128k-context
         * models would reserve tens of GB): pages are taken as sequences grow, and when they
         * run out the engine preempts the newest sequence. */
        int64_t elt_x32 = eo.ctx.kv_type == MLXR_KV_F32    ? 128 /* bytes per 32 values */
                          : eo.ctx.kv_type == MLXR_KV_Q8_0 ? 34
                                                           : 64;
        int64_t pos_bytes =
            (int64_t)info->n_layer * 2 * info->n_head_kv * info->head_dim * elt_x32 / 32;
        eo.ctx.kv_mem_bytes = pos_bytes * e->n_seq_max * DEFAULT_POOL_CTX;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    eo.ctx.n_threads = opts && opts->n_threads > 0 ? opts->n_threads : (ncpu > 0 ? (int32_t)ncpu : 1);
    mlxr_status st = mlxr_engine_new(model, &eo, &e->eng, err);
    if (st != MLXR_OK) {
        pthread_mutex_destroy(&e->mu);
        mlxr_model_free(model);
        free(e);
        return st;
    }
    *out = e;
    return MLXR_OK;
}

void mlxr_gen_engine_free(mlxr_gen_engine *e) {
    if (!e) return;
    mlxr_engine_free(e->eng); /* cancels what is left; every on_done runs */
    mlxr_model_free(e->model);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

const mlxr_model *mlxr_gen_engine_model(const mlxr_gen_engine *e) { return e->model; }
int32_t mlxr_gen_engine_n_ctx(const mlxr_gen_engine *e) { return e->n_ctx; }

void mlxr_gen_engine_load(mlxr_gen_engine *e, int32_t *n_queued, int32_t *n_running) {
    pthread_mutex_lock(&e->mu);
    int32_t n = e->n_pending;
    pthread_mutex_unlock(&e->mu);
    /* the engine admits first come first served while slots are free; KV pressure can keep
     * some waiting with a free slot, which the engine's own counts (mlxr_gen_engine_stats) show */
    *n_running = n < e->n_seq_max ? n : e->n_seq_max;
    *n_queued = n - *n_running;
}

void mlxr_gen_engine_stats(mlxr_gen_engine *e, mlxr_engine_stats *out) {
    mlxr_engine_get_stats(e->eng, out);
}

int32_t mlxr_gen_engine_n_seq_max(const mlxr_gen_engine *e) { return e->n_seq_max; }

mlxr_status mlxr_gen_submit(mlxr_gen_engine *e, const int32_t *prompt, size_t n_prompt,
                            const mlxr_gen_params *p, mlxr_gen **out, bool *queue_full,
                            mlxr_err *err) {
    *out = NULL;
    if (queue_full) *queue_full = false;
    if (n_prompt == 0) return MLXR_FAIL(err, MLXR_ERR_INVALID, "the prompt has no tokens");
    if (n_prompt >= (size_t)e->n_ctx)
        return MLXR_FAIL(err, MLXR_ERR_RANGE,
                         "the prompt has %zu tokens; this model's context holds %d, and at least "
                         "one more is needed to generate", n_prompt, e->n_ctx);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= e->n_vocab)
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "token id %d at %zu is outside 0..%d",
                             prompt[i], i, e->n_vocab - 1);
    if (p->max_tokens < 1) return MLXR_FAIL(err, MLXR_ERR_INVALID, "max_tokens must be >= 1");
    if (p->n_logit_bias > 100000)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "at most 100000 logit biases");
    mlxr_gen *g = calloc(1, sizeof *g);
    if (!g) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    g->engine = e;
    g->logprobs = p->logprobs;
    g->id = atomic_fetch_add(&next_gen_id, 1);
    atomic_init(&g->refs, 1);
    atomic_init(&g->cancel, false);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    mlxr_status st = mlxr_stopmatch_init(&g->stops, p->stop, p->n_stop, err);
    if (st == MLXR_OK) st = mlxr_detok_stream_new(e->model, false, &g->detok, err);
    if (st != MLXR_OK) {
        mlxr_gen_release(g);
        return st;
    }
    /* Prime the decoder with the prompt's last tokens (output dropped): a SentencePiece stream
     * drops the leading space of its first text token, which is right at the start of a text
     * but wrong for a continuation ("Hello" + " world"). */
    for (size_t i = n_prompt > 8 ? n_prompt - 8 : 0; i < n_prompt; i++) detok_step(g, prompt[i], false);
    pthread_mutex_lock(&e->mu);
    if (e->n_pending >= e->n_seq_max + e->max_queue) {
        pthread_mutex_unlock(&e->mu);
        mlxr_gen_release(g);
        if (queue_full) *queue_full = true;
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "the queue for this model is full (%d running, %d "
                         "waiting)", e->n_seq_max, e->max_queue);
    }
    e->n_pending++;
    pthread_mutex_unlock(&e->mu);

    mlxr_request r = {0};
    r.prompt = prompt;
    r.n_prompt = (int32_t)n_prompt;
    r.sampler = mlxr_sampler_default_opts();
    r.sampler.temp = p->temperature;
    r.sampler.top_k = p->top_k;
    r.sampler.top_p = p->top_p;
    r.sampler.min_p = p->min_p;
    r.sampler.repeat_penalty = p->repeat_penalty;
    r.sampler.repeat_last_n = p->repeat_last_n;
    r.sampler.seed = p->seed;
    r.sampler.presence_penalty = p->presence_penalty;
    r.sampler.frequency_penalty = p->frequency_penalty;
    r.sampler.logit_bias = p->logit_bias;
    r.sampler.n_logit_bias = (int32_t)p->n_logit_bias;
    r.logprobs = p->logprobs;
    r.n_top_logprobs = p->logprobs ? p->top_logprobs : 0;
    r.json_mode = p->json_mode;
    r.max_tokens = p->max_tokens;
    r.on_token_info = on_token;
    r.on_done = on_done;
    r.user = g;
    g->stats.t_submit = mlxr_gen_now_ns();
    atomic_store(&g->refs, 2); /* the caller's and the engine's (dropped in on_done) */
    uint64_t eid = 0;
    st = mlxr_engine_submit(e->eng, &r, &eid, err);
    if (st != MLXR_OK) { /* no callback will run */
        pthread_mutex_lock(&e->mu);
        e->n_pending--;
        pthread_mutex_unlock(&e->mu);
        atomic_store(&g->refs, 1);
        mlxr_gen_release(g);
        return st;
    }
    pthread_mutex_lock(&g->mu);
    g->eid = eid;
    pthread_mutex_unlock(&g->mu);
    if (atomic_load(&g->cancel)) mlxr_engine_cancel(e->eng, eid); /* cancelled meanwhile */
    *out = g;
    return MLXR_OK;
}
