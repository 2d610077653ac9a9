/*
 * sse.c - streamed responses: a content-reader callback pulls text from a generation, has the
 * endpoint's formatter turn it into SSE records (OpenAI) or NDJSON lines (Ollama), and hands the
 * bytes to libmicrohttpd as the socket accepts them (chunked transfer encoding).
 *
 * The reader waits at most 100 ms for new text, then checks whether the client hung up (its
 * generation is cancelled then) or the server is stopping. When the stream is freed, for
 * whatever reason, the generation is cancelled if still running and leaves the active table.
 */
#include "server/http.h"

#include "server/stopmatch.h"

#include <stdlib.h>
#include <string.h>

json_t *mlxr_json_text(const char *s, size_t len) {
    if (mlxr_utf8_valid(s, len)) return json_stringn_nocheck(s, len);
    size_t n = 0;
    char *clean = mlxr_utf8_sanitize(s, len, &n);
    json_t *j = clean ? json_stringn_nocheck(clean, n) : NULL;
    free(clean);
    return j;
}

void mlxr_stream_append(mlxr_stream *s, const char *data, size_t len) {
    if (len == 0) return;
    if (s->len + len > s->cap) {
        size_t nc = (s->len + len) * 2 + 1024;
        char *p = realloc(s->buf, nc);
        if (!p) return; /* out of memory: drop this record rather than corrupt the stream */
        s->buf = p;
        s->cap = nc;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
}

void mlxr_stream_sse(mlxr_stream *s, json_t *j) {
    char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!t) return;
    mlxr_stream_append(s, "data: ", 6);
    mlxr_stream_append(s, t, strlen(t));
    mlxr_stream_append(s, "\n\n", 2);
    free(t);
}

void mlxr_stream_ndjson(mlxr_stream *s, json_t *j) {
    char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!t) return;
    mlxr_stream_append(s, t, strlen(t));
    mlxr_stream_append(s, "\n", 1);
    free(t);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    mlxr_stream *s = cls;
    (void)pos;
    for (;;) {
        if (s->off < s->len) {
            size_t n = s->len - s->off < max ? s->len - s->off : max;
            memcpy(buf, s->buf + s->off, n);
            s->off += n;
            if (s->off == s->len) s->off = s->len = 0;
            return (ssize_t)n;
        }
        if (s->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        char text[4096];
        bool done = false;
        size_t n = mlxr_gen_read(s->g, 100, text, sizeof text, &done);
        if (n > 0 || done) {
            if (n > 0) s->fmt(s, text, n, false);
            if (done) {
                s->fmt(s, NULL, 0, true);
                s->ended = true;
            }
            continue;
        }
        if (mlxr_http_client_gone(s->conn) || atomic_load(&s->srv->stopping)) {
            mlxr_gen_cancel(s->g);
            if (mlxr_http_client_gone(s->conn)) return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        /* nothing yet: returning 0 makes MHD call again (thread-per-connection mode) */
        return 0;
    }
}

static void reader_free(void *cls) {
    mlxr_stream *s = cls;
    mlxr_gen_cancel(s->g); /* no-op when finished; stops work for a client that left */
    mlxr_server_retire(s->srv, s->g);
    mlxr_gen_release(s->g);
    free(s->buf);
    free(s);
}

enum MHD_Result mlxr_http_stream(mlxr_http_req *r, mlxr_gen *g, const char *ctype,
                                 mlxr_stream_fmt fmt, const mlxr_stream *init) {
    mlxr_stream *s = malloc(sizeof *s);
    if (!s) {
        mlxr_gen_cancel(g);
        mlxr_server_retire(r->srv, g);
        mlxr_gen_release(g);
        return mlxr_http_errorf(r, 500, "server_error", NULL, "out of memory");
    }
    *s = *init;
    s->srv = r->srv;
    s->g = g;
    s->conn = r->conn;
    s->fmt = fmt;
    s->buf = NULL;
    s->len = s->cap = s->off = 0;
    s->ended = false;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, s, reader_free);
    if (!resp) {
        reader_free(s);
        return MHD_NO;
    }
    return mlxr_http_queue_stream(r, resp, ctype);
}

enum MHD_Result mlxr_http_queue_stream(mlxr_http_req *r, struct MHD_Response *resp,
                                       const char *ctype) {
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    mlxr_http_add_cors(r, resp);
    /* a stream may be silent for long (a big prompt on a CPU, a slow download): the idle timeout
     * must not cut it; a client that leaves is noticed by the reader instead */
    MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)0);
    r->status = 200;
    enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

char *mlxr_http_collect(mlxr_http_req *r, mlxr_gen *g, size_t *len) {
    while (!mlxr_gen_wait(g, 100))
        if (mlxr_http_client_gone(r->conn) || atomic_load(&r->srv->stopping)) mlxr_gen_cancel(g);
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    bool done = false;
    while (out && !done) {
        if (cap - n < 1024) {
            char *p = realloc(out, cap * 2);
            if (!p) break;
            out = p;
            cap *= 2;
        }
        n += mlxr_gen_read(g, 0, out + n, cap - n - 1, &done);
    }
    if (out) out[n] = '\0';
    *len = n;
    return out;
}
