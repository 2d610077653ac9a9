/*
 * pull_stream.c - POST /api/pull of an http(s) URL: a worker thread downloads (fetch.c) and
 * imports (registry.c), and the connection relays its progress as NDJSON (see pull_stream.h).
 *
 * One pull_job is shared by the connection and its worker. The worker appends status lines to
 * the job's buffer and leaves progress in a single pending slot that later progress overwrites,
 * so a slow reader gets the latest numbers, not a backlog. The connection (the handler, then
 * the content reader) owns the job: it sets `cancel` when the client leaves or the server
 * stops, joins the worker, and frees the job. The worker never touches the connection.
 */
#include "server/pull_stream.h"

#include "server/fetch.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 100           /* how long the connection sleeps before checking its client */
#define PROGRESS_NS 100000000 /* progress lines at most every 100 ms ... */
#define PROGRESS_PERMILLE 10  /* ... or each 1 % of the file */

typedef struct pull_job {
    mlxr_server *srv;
    char *url;
    char name[160];
    char part[4096]; /* the download, in HOME/models/tmp (swept at the next start) */
    bool insecure;
    pthread_t thread;
    atomic_bool cancel; /* set by the connection; read by the worker's callbacks */
    pthread_mutex_t mu;
    pthread_cond_t cv;              /* signalled when buf, the progress slot or `finished` change */
    char *buf;                      /* (mu) NDJSON bytes not yet handed to the socket */
    size_t len, off, cap;           /* (mu) */
    bool began;                     /* (mu) the body began (on_start ran) */
    bool started;                   /* (mu) began, or the job finished */
    bool finished;                  /* (mu) the worker is done; st / err hold its outcome */
    bool ended;                     /* (mu) the closing line (error) has been queued */
    bool prog_pending;              /* (mu) a progress line to send */
    uint64_t prog_done, prog_total; /* (mu) */
    char label[160];                /* (mu) "pulling <digest prefix | file name>" */
    char digest[72];                /* (mu) "sha256:<hex>" or "" when no digest was announced */
    mlxr_status st;                 /* (mu) */
    mlxr_err err;                   /* (mu) */
    int64_t last_ns;                /* worker only: when the last progress line was queued */
    uint64_t last_done;             /* worker only: its byte count */
} pull_job;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Queue one NDJSON line (mu held; takes j). Out of memory drops the line. */
static void append_line(pull_job *p, json_t *j) {
    char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!t) return;
    size_t n = strlen(t);
    if (p->len + n + 1 > p->cap) {
        size_t nc = (p->len + n + 1) * 2 + 256;
        char *b = realloc(p->buf, nc);
        if (!b) {
            free(t);
            return;
        }
        p->buf = b;
        p->cap = nc;
    }
    memcpy(p->buf + p->len, t, n);
    p->buf[p->len + n] = '\n';
    p->len += n + 1;
    free(t);
}

/* Move the pending progress into the buffer (mu held). */
static void flush_progress(pull_job *p) {
    if (!p->prog_pending) return;
    p->prog_pending = false;
    json_t *j = json_pack("{s:s}", "status", p->label);
    if (j && p->digest[0]) json_object_set_new(j, "digest", json_string(p->digest));
    if (j && p->prog_total)
        json_object_set_new(j, "total", json_integer((json_int_t)p->prog_total));
    if (j) json_object_set_new(j, "completed", json_integer((json_int_t)p->prog_done));
    append_line(p, j);
}

static void push_status(pull_job *p, const char *status) {
    pthread_mutex_lock(&p->mu);
    flush_progress(p);
    append_line(p, json_pack("{s:s}", "status", status));
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static bool keep_going(const pull_job *p) {
    return !atomic_load(&p->cancel) && !atomic_load(&p->srv->stopping);
}

/* ---- the worker ---------------------------------------------------------------------------- */

static bool on_start(void *user, const mlxr_fetch_info *info) {
    pull_job *p = user;
    pthread_mutex_lock(&p->mu);
    if (info->sha256[0]) {
        snprintf(p->label, sizeof p->label, "pulling %.12s", info->sha256);
        snprintf(p->digest, sizeof p->digest, "sha256:%s", info->sha256);
    } else {
        snprintf(p->label, sizeof p->label, "pulling %s",
                 info->file_name[0] ? info->file_name : "model");
    }
    p->prog_total = info->total;
    p->prog_done = 0;
    p->prog_pending = true;
    p->began = p->started = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    p->last_ns = now_ns();
    return keep_going(p);
}

static bool on_progress(void *user, uint64_t done, uint64_t total) {
    pull_job *p = user;
    if (!keep_going(p)) return false;
    if (done == p->last_done) return true; /* a tick while nothing moves */
    int64_t t = now_ns();
    bool step = total && (done - p->last_done) * 1000 >= total * PROGRESS_PERMILLE;
    if (!step && t - p->last_ns < PROGRESS_NS && !(total && done == total)) return true;
    p->last_ns = t;
    p->last_done = done;
    pthread_mutex_lock(&p->mu);
    p->prog_done = done;
    p->prog_total = total;
    p->prog_pending = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return true;
}

static mlxr_status import(pull_job *p, mlxr_err *err) {
    mlxr_server *s = p->srv;
    pthread_mutex_lock(&s->reg_mu);
    mlxr_status st = s->reg ? mlxr_registry_import(s->reg, p->part, p->name, NULL, err)
                            : MLXR_FAIL(err, MLXR_ERR_INVALID, "the server has no registry");
    pthread_mutex_unlock(&s->reg_mu);
    return st;
}

static void *worker(void *arg) {
    pull_job *p = arg;
    mlxr_err err = {0};
    mlxr_fetch_opts o = {.insecure = p->insecure,
                         .gguf_only = true,
                         .start = on_start,
                         .progress = on_progress,
                         .user = p};
    mlxr_status st = mlxr_fetch_url(p->url, p->part, &o, NULL, &err);
    if (st == MLXR_OK && !keep_going(p))
        st = MLXR_FAIL(&err, MLXR_ERR_CANCELLED, "download of %s cancelled", p->url);
    if (st == MLXR_OK) {
        push_status(p, "verifying sha256 digest"); /* fetch compared an announced digest */
        st = import(p, &err);                      /* checks the GGUF, hashes, writes the row */
    }
    unlink(p->part); /* the registry holds its own link to the bytes */
    if (st == MLXR_OK) {
        push_status(p, "writing manifest");
        push_status(p, "success");
    }
    pthread_mutex_lock(&p->mu);
    p->st = st;
    p->err = err;
    p->finished = p->started = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- the connection ------------------------------------------------------------------------ */

static void job_free(pull_job *p) {
    atomic_store(&p->cancel, true);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->buf);
    free(p->url);
    free(p);
}

/* Wait (mu held on entry and exit) up to WAIT_MS for a change. */
static void wait_a_while(pull_job *p) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += WAIT_MS * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&p->cv, &p->mu, &t);
}

/* Block the handler until the body began (or, with `all`, the job finished); a client that
 * leaves or a stopping server cancels meanwhile. */
static void wait_for(pull_job *p, mlxr_http_req *r, bool all) {
    pthread_mutex_lock(&p->mu);
    while (!(all ? p->finished : p->started)) {
        wait_a_while(p);
        pthread_mutex_unlock(&p->mu);
        if (mlxr_http_client_gone(r->conn) || atomic_load(&r->srv->stopping))
            atomic_store(&p->cancel, true);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
}

/* Hand out queued bytes, waiting up to WAIT_MS for some; 0 when there are none yet. */
static ssize_t job_read(pull_job *p, char *out, size_t max) {
    pthread_mutex_lock(&p->mu);
    for (int round = 0;; round++) {
        flush_progress(p);
        if (p->off < p->len) {
            size_t n = p->len - p->off < max ? p->len - p->off : max;
            memcpy(out, p->buf + p->off, n);
            p->off += n;
            if (p->off == p->len) p->off = p->len = 0;
            pthread_mutex_unlock(&p->mu);
            return (ssize_t)n;
        }
        if (p->finished && !p->ended) {
            p->ended = true;
            if (p->st != MLXR_OK)
                append_line(p, json_pack("{s:s}", "error",
                                         p->err.msg[0] ? p->err.msg : mlxr_status_str(p->st)));
            continue;
        }
        if (p->ended) {
            pthread_mutex_unlock(&p->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (round > 0) break;
        wait_a_while(p);
    }
    pthread_mutex_unlock(&p->mu);
    return 0; /* nothing new for WAIT_MS */
}

/* The stream's state, for the content reader (the connection is needed to notice a client
 * that hangs up while nothing is sent). */
typedef struct pull_stream {
    pull_job *job;
    struct MHD_Connection *conn;
    mlxr_server *srv;
} pull_stream;

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max) {
    pull_stream *ps = cls;
    (void)pos;
    ssize_t n = job_read(ps->job, out, max);
    if (n != 0) return n;
    if (mlxr_http_client_gone(ps->conn)) {
        atomic_store(&ps->job->cancel, true);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (atomic_load(&ps->srv->stopping)) atomic_store(&ps->job->cancel, true);
    return 0; /* thread-per-connection mode: MHD calls again */
}

static void stream_free(void *cls) {
    pull_stream *ps = cls;
    job_free(ps->job); /* cancels a download still running, waits for the worker */
    free(ps);
}

/* The HTTP status of a failed pull. */
static int fail_status(mlxr_status st) {
    switch (st) {
    case MLXR_ERR_INVALID:
        return 400;
    case MLXR_ERR_NOT_FOUND:
        return 404;
    case MLXR_ERR_NOMEM:
    case MLXR_ERR_INTERNAL:
        return 500;
    case MLXR_ERR_CANCELLED:
        return 503; /* the server is stopping, or the client left */
    default:
        return 502; /* the far server's answer or file was not usable */
    }
}

static enum MHD_Result answer_done(mlxr_http_req *r, pull_job *p) {
    int status = p->st == MLXR_OK ? 200 : fail_status(p->st);
    enum MHD_Result ret =
        p->st == MLXR_OK
            ? mlxr_http_json(r, 200, json_pack("{s:s}", "status", "success"))
            : mlxr_http_errorf(r, status, status >= 500 ? "server_error" : "invalid_request_error",
                               NULL, "%s", p->err.msg[0] ? p->err.msg : mlxr_status_str(p->st));
    job_free(p);
    return ret;
}

static pull_job *job_new(mlxr_http_req *r, const char *url, const char *name, bool insecure) {
    pull_job *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (!(p->url = strdup(url))) {
        free(p);
        return NULL;
    }
    p->srv = r->srv;
    p->insecure = insecure;
    snprintf(p->name, sizeof p->name, "%s", name);
    atomic_init(&p->cancel, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return p;
}

static void job_discard(pull_job *p) { /* one whose thread never started */
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->buf);
    free(p->url);
    free(p);
}

enum MHD_Result mlxr_pull_url(mlxr_http_req *r, const char *url, const char *name, bool stream,
                              bool insecure) {
    pull_job *p = job_new(r, url, name, insecure);
    if (!p) return mlxr_http_errorf(r, 500, "server_error", NULL, "out of memory");
    pthread_mutex_lock(&r->srv->reg_mu);
    const char *home = r->srv->reg ? mlxr_registry_home(r->srv->reg) : NULL;
    if (home)
        snprintf(p->part, sizeof p->part, "%s/models/tmp/pull-%ld-%p.part", home, (long)getpid(),
                 (void *)p);
    pthread_mutex_unlock(&r->srv->reg_mu);
    if (!home) {
        job_discard(p);
        return mlxr_http_errorf(r, 400, "invalid_request_error", NULL,
                                "the server has no registry");
    }
    append_line(p, json_pack("{s:s}", "status", "pulling manifest"));
    int e = pthread_create(&p->thread, NULL, worker, p);
    if (e != 0) {
        job_discard(p);
        return mlxr_http_errorf(r, 500, "server_error", NULL, "cannot start a thread: %s",
                                strerror(e));
    }
    wait_for(p, r, !stream);
    pthread_mutex_lock(&p->mu);
    bool failed = p->finished && p->st != MLXR_OK && !p->began;
    pthread_mutex_unlock(&p->mu);
    if (!stream || failed) return answer_done(r, p);
    pull_stream *ps = malloc(sizeof *ps);
    if (ps) *ps = (pull_stream){.job = p, .conn = r->conn, .srv = r->srv};
    struct MHD_Response *resp = ps ? MHD_create_response_from_callback(
                                         MHD_SIZE_UNKNOWN, 4096, stream_reader, ps, stream_free)
                                   : NULL;
    if (!resp) {
        free(ps);
        job_free(p);
        return MHD_NO;
    }
    return mlxr_http_queue_stream(r, resp, "application/x-ndjson");
}
