/*
 * gen_simple.c - the first implementation of gen.h: one worker thread per model serves a bounded
 * FIFO queue one request at a time with mlxr_decode + mlxr_sampler on sequence 0 of one context.
 *
 * Threads: HTTP threads call submit/read/cancel; the worker owns the context and the sampler.
 * Locks: engine->mu guards the queue, `stop` and every mlxr_gen field marked (mu); the cancel
 * flag is atomic so the worker can poll it without the lock. Text is appended by the worker to
 * gen->out under mu and pulled by the connection, so the worker never waits for a client.
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
    uint64_t id;
    atomic_int refs;
    atomic_bool cancel;
    int32_t *prompt;
    size_t n_prompt;
    mlxr_gen_params p;  /* stop strings live in `stops` */
    mlxr_stopmatch stops;
    char *out;          /* (mu) text produced so far */
    size_t out_len, out_cap, read_off;
    mlxr_gen_finish finish; /* (mu) */
    mlxr_gen_stats stats;   /* (mu) */
    char errmsg[256];       /* (mu) */
    mlxr_gen *next;         /* (mu) queue link */
};

struct mlxr_gen_engine {
    mlxr_model *model;
    mlxr_context *ctx;
    int32_t n_ctx, n_batch, n_vocab, max_queue;
    mlxr_metrics *metrics;
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on: queue push, text appended, finish, stop */
    mlxr_gen *head, *tail; /* (mu) FIFO */
    int32_t n_queued, n_running; /* (mu) */
    mlxr_gen *running;           /* (mu) */
    bool stop;                   /* (mu) */
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
    free(g->prompt);
    free(g->out);
    free(g);
}

uint64_t mlxr_gen_id(const mlxr_gen *g) { return g->id; }

void mlxr_gen_cancel(mlxr_gen *g) {
    atomic_store(&g->cancel, true);
    pthread_mutex_lock(&g->engine->mu);
    pthread_cond_broadcast(&g->engine->cv);
    pthread_mutex_unlock(&g->engine->mu);
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
    mlxr_gen_engine *e = g->engine;
    pthread_mutex_lock(&e->mu);
    if (timeout_ms > 0 && g->read_off == g->out_len && g->finish == MLXR_GEN_RUNNING) {
        struct timespec dl = deadline_ms(timeout_ms);
        pthread_cond_timedwait(&e->cv, &e->mu, &dl);
    }
    size_t n = g->out_len - g->read_off;
    if (n > cap) n = cap;
    if (n) memcpy(buf, g->out + g->read_off, n);
    g->read_off += n;
    *done = g->finish != MLXR_GEN_RUNNING && g->read_off == g->out_len;
    pthread_mutex_unlock(&e->mu);
    return n;
}

bool mlxr_gen_wait(mlxr_gen *g, int timeout_ms) {
    mlxr_gen_engine *e = g->engine;
    pthread_mutex_lock(&e->mu);
    struct timespec dl = deadline_ms(timeout_ms < 0 ? 0 : timeout_ms);
    while (g->finish == MLXR_GEN_RUNNING) {
        if (timeout_ms < 0) pthread_cond_wait(&e->cv, &e->mu);
        else if (pthread_cond_timedwait(&e->cv, &e->mu, &dl) != 0) break;
    }
    bool fin = g->finish != MLXR_GEN_RUNNING;
    pthread_mutex_unlock(&e->mu);
    return fin;
}

mlxr_gen_finish mlxr_gen_finish_reason(mlxr_gen *g) {
    pthread_mutex_lock(&g->engine->mu);
    mlxr_gen_finish f = g->finish;
    pthread_mutex_unlock(&g->engine->mu);
    return f;
}

void mlxr_gen_get_stats(mlxr_gen *g, mlxr_gen_stats *out) {
    pthread_mutex_lock(&g->engine->mu);
    *out = g->stats;
    pthread_mutex_unlock(&g->engine->mu);
}

void mlxr_gen_error(mlxr_gen *g, char *buf, size_t cap) {
    pthread_mutex_lock(&g->engine->mu);
    snprintf(buf, cap, "%s", g->errmsg);
    pthread_mutex_unlock(&g->engine->mu);
}

/* ---- the worker ---------------------------------------------------------------------------- */

/* Append text for the reader (mu held by the caller). */
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

static void finish(mlxr_gen *g, mlxr_gen_finish f, const char *msg) {
    mlxr_gen_engine *e = g->engine;
    char tail[64];
    pthread_mutex_lock(&e->mu);
    /* emit what the matcher held back: a partial stop string at an end-of-generation token or
     * at the length limit is text (after a stop string was hit, flush gives nothing) */
    size_t n = 0, need = mlxr_stopmatch_need(&g->stops, 0);
    char *buf = need > sizeof tail ? malloc(need) : tail;
    if (buf) {
        mlxr_stopmatch_flush(&g->stops, buf, need, &n);
        out_append(g, buf, n);
        if (buf != tail) free(buf);
    }
    g->finish = f;
    if (msg) snprintf(g->errmsg, sizeof g->errmsg, "%s", msg);
    g->stats.t_end = mlxr_gen_now_ns();
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* Pass one token's bytes through the UTF-8 and stop-string matcher; true if a stop was hit. */
static bool emit_piece(mlxr_gen *g, const char *piece, size_t len) {
    mlxr_gen_engine *e = g->engine;
    char small[512];
    size_t need = mlxr_stopmatch_need(&g->stops, len), n = 0;
    char *buf = need > sizeof small ? malloc(need) : small;
    if (!buf) return false;
    pthread_mutex_lock(&e->mu);
    bool stopped = mlxr_stopmatch_feed(&g->stops, piece, len, buf, need, &n);
    out_append(g, buf, n);
    if (n) pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (buf != small) free(buf);
    return stopped;
}

/* OpenAI presence/frequency penalties on a copy of the logits: counts[t] is how often t was
 * generated, distinct[0..n_distinct) the tokens generated at least once. */
static const float *penalize(const mlxr_gen *g, const float *logits, float *scratch,
                             const int32_t *counts, const int32_t *distinct, int32_t n_distinct,
                             int32_t n_vocab) {
    if ((g->p.presence_penalty == 0 && g->p.frequency_penalty == 0) || n_distinct == 0)
        return logits;
    memcpy(scratch, logits, (size_t)n_vocab * sizeof *scratch);
    for (int32_t i = 0; i < n_distinct; i++) {
        int32_t t = distinct[i];
        scratch[t] -= g->p.presence_penalty + g->p.frequency_penalty * (float)counts[t];
    }
    return scratch;
}

/* Decode the prompt in batches, checking the cancel flag between them. */
static mlxr_status eval_prompt(mlxr_gen_engine *e, mlxr_gen *g, int32_t *last, mlxr_err *err) {
    int32_t n = (int32_t)g->n_prompt, nb = e->n_batch;
    int32_t *pos = malloc((size_t)nb * sizeof *pos), *seq = calloc((size_t)nb, sizeof *seq);
    mlxr_status st = (!pos || !seq) ? MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory") : MLXR_OK;
    for (int32_t i = 0; i < n && st == MLXR_OK; i += nb) {
        if (atomic_load(&g->cancel)) {
            st = MLXR_ERR_CANCELLED;
            break;
        }
        int32_t k = n - i < nb ? n - i : nb;
        for (int32_t j = 0; j < k; j++) pos[j] = i + j;
        mlxr_batch b = {k, g->prompt + i, pos, seq, NULL};
        st = mlxr_decode(e->ctx, &b, err);
        *last = k - 1;
    }
    free(pos);
    free(seq);
    return st;
}

static void run_one(mlxr_gen_engine *e, mlxr_gen *g) {
    mlxr_err err = {0};
    mlxr_sampler *s = NULL;
    int32_t *gen = NULL, *counts = NULL;
    float *scratch = NULL;
    mlxr_kv_clear(e->ctx, 0);
    mlxr_sampler_opts so = mlxr_sampler_default_opts();
    so.temp = g->p.temperature;
    so.top_k = g->p.top_k;
    so.top_p = g->p.top_p;
    so.min_p = g->p.min_p;
    so.repeat_penalty = g->p.repeat_penalty;
    so.repeat_last_n = g->p.repeat_last_n;
    so.seed = g->p.seed;
    int32_t max_gen = g->p.max_tokens;
    gen = malloc((size_t)(max_gen > 0 ? max_gen : 1) * sizeof *gen);
    scratch = malloc((size_t)e->n_vocab * sizeof *scratch);
    counts = calloc((size_t)e->n_vocab, sizeof *counts);
    if (!gen || !scratch || !counts || mlxr_sampler_new(&so, e->n_vocab, &s, &err) != MLXR_OK) {
        finish(g, MLXR_GEN_ERROR, err.msg[0] ? err.msg : "out of memory");
        goto done;
    }
    int32_t last = 0, n_distinct = 0;
    mlxr_status st = eval_prompt(e, g, &last, &err);
    if (st != MLXR_OK) {
        finish(g, st == MLXR_ERR_CANCELLED ? MLXR_GEN_CANCELLED : MLXR_GEN_ERROR, err.msg);
        goto done;
    }
    for (size_t i = 0; i < g->n_prompt; i++) mlxr_sampler_accept(s, g->prompt[i]);
    pthread_mutex_lock(&e->mu);
    g->stats.n_prompt = (int32_t)g->n_prompt;
    pthread_mutex_unlock(&e->mu);
    if (e->metrics) mlxr_metrics_tokens(e->metrics, (int64_t)g->n_prompt, 0);
    int32_t pos = (int32_t)g->n_prompt, n_gen = 0;
    int64_t t_prev = 0;
    mlxr_gen_finish why = MLXR_GEN_LENGTH;
    for (;;) {
        if (atomic_load(&g->cancel)) {
            why = MLXR_GEN_CANCELLED;
            break;
        }
        const float *logits = mlxr_get_logits(e->ctx, last);
        int32_t tok = mlxr_sampler_sample(
            s, penalize(g, logits, scratch, counts, gen, n_distinct, e->n_vocab));
        int64_t now = mlxr_gen_now_ns();
        pthread_mutex_lock(&e->mu);
        if (!g->stats.t_first) g->stats.t_first = now;
        pthread_mutex_unlock(&e->mu);
        if (e->metrics) {
            if (!t_prev) mlxr_metrics_ttft(e->metrics, (double)(now - g->stats.t_submit) * 1e-9);
            else mlxr_metrics_token_latency(e->metrics, (double)(now - t_prev) * 1e-9);
        }
        t_prev = now;
        if (mlxr_token_is_eog(e->model, tok)) {
            why = MLXR_GEN_STOP;
            break;
        }
        n_gen++;
        if (counts[tok]++ == 0) gen[n_distinct++] = tok; /* gen[] lists distinct tokens */
        pthread_mutex_lock(&e->mu);
        g->stats.n_gen = n_gen;
        pthread_mutex_unlock(&e->mu);
        if (e->metrics) mlxr_metrics_tokens(e->metrics, 0, 1);
        char piece[256];
        size_t len = 0;
        if (mlxr_token_to_piece(e->model, tok, piece, sizeof piece, &len, &err) == MLXR_OK &&
            emit_piece(g, piece, len)) {
            why = MLXR_GEN_STOP;
            break;
        }
        mlxr_sampler_accept(s, tok);
        if (n_gen >= max_gen || pos >= e->n_ctx) break; /* MLXR_GEN_LENGTH */
        int32_t seq0 = 0;
        mlxr_batch b = {1, &tok, &pos, &seq0, NULL};
        if (mlxr_decode(e->ctx, &b, &err) != MLXR_OK) {
            why = MLXR_GEN_ERROR;
            break;
        }
        last = 0;
        pos++;
    }
    finish(g, why, why == MLXR_GEN_ERROR ? err.msg : NULL);
done:
    mlxr_sampler_free(s);
    free(gen);
    free(counts);
    free(scratch);
}

static void *worker_main(void *arg) {
    mlxr_gen_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->head && !e->stop) pthread_cond_wait(&e->cv, &e->mu);
        if (e->stop) {
            pthread_mutex_unlock(&e->mu);
            return NULL;
        }
        mlxr_gen *g = e->head;
        e->head = g->next;
        if (!e->head) e->tail = NULL;
        e->n_queued--;
        e->n_running++;
        e->running = g;
        g->stats.t_start = mlxr_gen_now_ns();
        pthread_mutex_unlock(&e->mu);
        if (e->metrics) {
            mlxr_metrics_queue_add(e->metrics, -1);
            mlxr_metrics_running_add(e->metrics, 1);
        }
        if (atomic_load(&g->cancel)) finish(g, MLXR_GEN_CANCELLED, NULL);
        else run_one(e, g);
        pthread_mutex_lock(&e->mu);
        e->n_running--;
        e->running = NULL;
        pthread_mutex_unlock(&e->mu);
        if (e->metrics) mlxr_metrics_running_add(e->metrics, -1);
        mlxr_gen_release(g); /* the engine's reference */
    }
}

/* ---- engine ------------------------------------------------------------------------------- */

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
    if (!(opts && opts->n_ctx > 0) && e->n_ctx > 4096) e->n_ctx = 4096;
    e->n_batch = 512;
    e->n_vocab = info->n_vocab;
    e->max_queue = opts && opts->max_queue > 0 ? opts->max_queue : 16;
    e->metrics = opts ? opts->metrics : NULL;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    mlxr_context_opts co = mlxr_context_default_opts();
    co.n_ctx = e->n_ctx;
    co.n_batch = e->n_batch;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    co.n_threads = opts && opts->n_threads > 0 ? opts->n_threads : (ncpu > 0 ? (int32_t)ncpu : 1);
    mlxr_status st = mlxr_context_new(model, &co, &e->ctx, err);
    if (st != MLXR_OK) goto fail;
    if (pthread_create(&e->worker, NULL, worker_main, e) != 0) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "cannot start the generation thread");
        goto fail;
    }
    e->worker_started = true;
    *out = e;
    return MLXR_OK;
fail:
    mlxr_gen_engine_free(e);
    return st;
}

void mlxr_gen_engine_free(mlxr_gen_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    if (e->running) atomic_store(&e->running->cancel, true);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->worker_started) pthread_join(e->worker, NULL);
    /* whatever is still queued ends as cancelled */
    for (mlxr_gen *g = e->head, *next; g; g = next) {
        next = g->next;
        finish(g, MLXR_GEN_CANCELLED, NULL);
        if (e->metrics) mlxr_metrics_queue_add(e->metrics, -1);
        mlxr_gen_release(g);
    }
    mlxr_context_free(e->ctx);
    mlxr_model_free(e->model);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

const mlxr_model *mlxr_gen_engine_model(const mlxr_gen_engine *e) { return e->model; }
int32_t mlxr_gen_engine_n_ctx(const mlxr_gen_engine *e) { return e->n_ctx; }

void mlxr_gen_engine_load(mlxr_gen_engine *e, int32_t *n_queued, int32_t *n_running) {
    pthread_mutex_lock(&e->mu);
    *n_queued = e->n_queued;
    *n_running = e->n_running;
    pthread_mutex_unlock(&e->mu);
}

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
    mlxr_gen *g = calloc(1, sizeof *g);
    if (!g) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    g->engine = e;
    g->id = atomic_fetch_add(&next_gen_id, 1);
    atomic_init(&g->refs, 2); /* the caller's and the engine's */
    atomic_init(&g->cancel, false);
    g->p = *p;
    g->p.stop = NULL;
    g->p.n_stop = 0;
    mlxr_status st = mlxr_stopmatch_init(&g->stops, p->stop, p->n_stop, err);
    g->prompt = malloc(n_prompt * sizeof *g->prompt);
    if (st == MLXR_OK && !g->prompt) st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    if (st != MLXR_OK) {
        atomic_store(&g->refs, 1);
        mlxr_gen_release(g);
        return st;
    }
    memcpy(g->prompt, prompt, n_prompt * sizeof *g->prompt);
    g->n_prompt = n_prompt;
    g->stats.t_submit = mlxr_gen_now_ns();
    pthread_mutex_lock(&e->mu);
    if (e->n_queued >= e->max_queue || e->stop) {
        pthread_mutex_unlock(&e->mu);
        atomic_store(&g->refs, 1);
        mlxr_gen_release(g);
        if (queue_full) *queue_full = true;
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "the queue for this model is full (%d waiting)",
                         e->max_queue);
    }
    if (e->tail) e->tail->next = g;
    else e->head = g;
    e->tail = g;
    e->n_queued++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->metrics) mlxr_metrics_queue_add(e->metrics, 1);
    *out = g;
    return MLXR_OK;
}
