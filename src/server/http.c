/*
 * http.c - libmicrohttpd wiring: listening sockets (TCP and a 0600 Unix socket), body
 * collection with a size limit, API-key and CORS checks, the route table, responders, and the
 * access log.
 *
 * MHD runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION), so a handler may wait for
 * its generation and a stream's content reader may block briefly (100 ms) waiting for tokens;
 * the model threads never wait for a connection. The access handler contract: the first call
 * for a request allocates our per-request state (*con_cls); calls with *upload_data_size > 0
 * deliver body bytes; the last call (size 0) dispatches. NOTIFY_COMPLETED logs and frees.
 */
#include "server/http.h"
#include "server/embed.h"

#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef struct conn_state {
    mlxr_http_req req;
    char *body;
    size_t len, cap;
    bool too_large, answered;
    int64_t t0;
    char method[16];
    char url[256];
} conn_state;

/* ---- responders ---------------------------------------------------------------------------- */

void mlxr_http_add_cors(mlxr_http_req *r, struct MHD_Response *resp) {
    const mlxr_server *s = r->srv;
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    if (!origin || s->o.n_cors == 0) return;
    for (size_t i = 0; i < s->o.n_cors; i++)
        if (!strcmp(s->o.cors[i], "*") || !strcmp(s->o.cors[i], origin)) {
            MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
            MHD_add_response_header(resp, "Vary", "Origin");
            return;
        }
}

static enum MHD_Result queue(mlxr_http_req *r, int status, struct MHD_Response *resp) {
    if (!resp) return MHD_NO;
    mlxr_http_add_cors(r, resp);
    if (status == 429 || status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result mlxr_http_text(mlxr_http_req *r, int status, const char *ctype, const char *data,
                               size_t len) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (resp) MHD_add_response_header(resp, "Content-Type", ctype);
    return queue(r, status, resp);
}

enum MHD_Result mlxr_http_json(mlxr_http_req *r, int status, json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}";
        return mlxr_http_text(r, 500, "application/json", oom, sizeof oom - 1);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!resp) free(s);
    else MHD_add_response_header(resp, "Content-Type", "application/json");
    return queue(r, status, resp);
}

enum MHD_Result mlxr_http_error(mlxr_http_req *r, const mlxr_api_error *e) {
    json_t *j;
    if (r->ollama) {
        j = json_pack("{s:s}", "error", e->message);
    } else {
        j = json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", e->message, "type", e->type,
                      "param", e->param[0] ? json_string(e->param) : json_null(), "code",
                      e->code[0] ? json_string(e->code) : json_null());
    }
    return mlxr_http_json(r, e->status, j);
}

enum MHD_Result mlxr_http_errorf(mlxr_http_req *r, int status, const char *type, const char *code,
                                 const char *fmt, ...) {
    mlxr_api_error e;
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mlxr_api_error_set(&e, status, type, code, NULL, "%s", msg);
    return mlxr_http_error(r, &e);
}

bool mlxr_http_client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {ci->connect_fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* ---- routing ------------------------------------------------------------------------------- */

typedef enum MHD_Result (*handler_fn)(mlxr_http_req *r);

typedef struct route {
    const char *method, *path; /* a path ending in '*' matches that prefix; '{}' one segment */
    handler_fn fn;
    const char *label;
} route;

static const route routes[] = {
    {"GET", "/health", mlxr_native_health, "/health"},
    {"GET", "/", mlxr_native_root, "/"},
    {"HEAD", "/", mlxr_native_root, "/"},
    {"GET", "/metrics", mlxr_native_metrics, "/metrics"},
    {"GET", "/v1/models", mlxr_openai_models, "/v1/models"},
    {"GET", "/v1/models/{}", mlxr_openai_model, "/v1/models/{id}"},
    {"POST", "/v1/completions", mlxr_openai_completions, "/v1/completions"},
    {"POST", "/v1/chat/completions", mlxr_openai_chat, "/v1/chat/completions"},
    {"POST", "/v1/embeddings", mlxr_embed_openai, "/v1/embeddings"},
    {"GET", "/v1/requests", mlxr_native_requests, "/v1/requests"},
    {"POST", "/v1/requests/{}/cancel", mlxr_native_cancel, "/v1/requests/{id}/cancel"},
    {"POST", "/tokenize", mlxr_native_tokenize, "/tokenize"},
    {"POST", "/detokenize", mlxr_native_detokenize, "/detokenize"},
    {"POST", "/apply-template", mlxr_native_apply_template, "/apply-template"},
    {"GET", "/api/version", mlxr_ollama_version, "/api/version"},
    {"GET", "/api/tags", mlxr_ollama_tags, "/api/tags"},
    {"POST", "/api/show", mlxr_ollama_show, "/api/show"},
    {"GET", "/api/ps", mlxr_ollama_ps, "/api/ps"},
    {"POST", "/api/generate", mlxr_ollama_generate, "/api/generate"},
    {"POST", "/api/chat", mlxr_ollama_chat, "/api/chat"},
    {"POST", "/api/copy", mlxr_ollama_copy, "/api/copy"},
    {"DELETE", "/api/delete", mlxr_ollama_delete, "/api/delete"},
    {"POST", "/api/pull", mlxr_ollama_pull, "/api/pull"},
    {"POST", "/api/create", mlxr_ollama_create, "/api/create"},
    {"POST", "/api/embed", mlxr_embed_ollama, "/api/embed"},
    {"POST", "/api/embeddings", mlxr_embed_ollama_legacy, "/api/embeddings"},
};

/* Match a route path against a URL; "{}" captures one non-empty segment into *arg. */
static bool path_match(const char *pat, const char *url, const char **arg) {
    const char *brace = strstr(pat, "{}");
    if (!brace) return !strcmp(pat, url);
    size_t pre = (size_t)(brace - pat);
    if (strncmp(pat, url, pre) != 0) return false;
    const char *seg = url + pre, *end = strchr(seg, '/');
    size_t seg_len = end ? (size_t)(end - seg) : strlen(seg);
    if (seg_len == 0 || strcmp(brace + 2, seg + seg_len) != 0) return false;
    *arg = seg;
    return true;
}

static enum MHD_Result dispatch(conn_state *cs) {
    mlxr_http_req *r = &cs->req;
    mlxr_server *s = r->srv;
    r->ollama = !strncmp(r->url, "/api/", 5);
    r->route = "other";
    /* CORS preflight: answered before authentication, as browsers send no credentials */
    if (!strcmp(r->method, "OPTIONS")) {
        r->route = "OPTIONS";
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        if (resp) {
            MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
            MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                    "Authorization, Content-Type");
            MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
        }
        return queue(r, 204, resp);
    }
    const route *hit = NULL;
    bool path_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        const char *arg = NULL;
        if (!path_match(routes[i].path, r->url, &arg)) continue;
        path_known = true;
        if (!strcmp(routes[i].method, r->method)) {
            hit = &routes[i];
            r->path_arg = arg;
            break;
        }
    }
    if (hit) r->route = hit->label;
    if (!(hit && hit->fn == mlxr_native_health) &&
        !mlxr_auth_check(&s->auth, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                               "Authorization")))
        return mlxr_http_errorf(r, 401, "authentication_error", "invalid_api_key",
                                "Invalid or missing API key: send 'Authorization: Bearer KEY'");
    if (!hit && path_known)
        return mlxr_http_errorf(r, 405, "invalid_request_error", "method_not_allowed",
                                "%s is not allowed on %s", r->method, r->url);
    if (!hit)
        return mlxr_http_errorf(r, 404, "invalid_request_error", "not_found",
                                "no such endpoint: %s %s", r->method, r->url);
    if (cs->too_large)
        return mlxr_http_errorf(r, 413, "invalid_request_error", "request_too_large",
                                "the request body is larger than the limit of %zu bytes",
                                s->o.max_body);
    return hit->fn(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    mlxr_server *s = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs))) return MHD_NO;
        cs->t0 = mlxr_gen_now_ns();
        snprintf(cs->method, sizeof cs->method, "%s", method);
        snprintf(cs->url, sizeof cs->url, "%s", url);
        /* the URL is percent-decoded: keep control bytes out of the one-line access log */
        for (char *p = cs->url; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
        cs->req.srv = s;
        cs->req.conn = c;
        cs->req.method = cs->method;
        cs->req.url = cs->url;
        *con_cls = cs;
        /* refuse a declared oversize body before reading it */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
            /* answer at once: MHD then skips the body and closes the connection */
            cs->too_large = true;
            cs->answered = true;
            cs->req.body = "";
            return dispatch(cs);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cs->too_large || cs->len + n > s->o.max_body) {
            cs->too_large = true; /* keep reading (discarding) so the answer can be sent */
            return MHD_YES;
        }
        if (cs->len + n + 1 > cs->cap) {
            size_t nc = (cs->len + n + 1) * 2;
            if (nc > s->o.max_body + 1) nc = s->o.max_body + 1;
            char *p = realloc(cs->body, nc);
            if (!p) return MHD_NO;
            cs->body = p;
            cs->cap = nc;
        }
        memcpy(cs->body + cs->len, upload_data, n);
        cs->len += n;
        return MHD_YES;
    }
    if (cs->answered) return MHD_YES;
    cs->answered = true;
    cs->req.body = cs->body ? cs->body : "";
    if (cs->body) cs->body[cs->len] = '\0';
    cs->req.body_len = cs->len;
    return dispatch(cs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    mlxr_server *s = cls;
    conn_state *cs = *con_cls;
    if (!cs) return;
    *con_cls = NULL;
    int status = cs->req.status ? cs->req.status : 499;
    mlxr_metrics_request(s->metrics, cs->req.route ? cs->req.route : "other", status);
    if (!s->o.quiet) {
        time_t now = time(NULL);
        struct tm tm;
        char ts[32];
        gmtime_r(&now, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(stderr, "%s %s %s %d %.1fms%s\n", ts, cs->method, cs->url, status,
                (double)(mlxr_gen_now_ns() - cs->t0) * 1e-6,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
    }
    free(cs->body);
    free(cs);
}

/* ---- listening ----------------------------------------------------------------------------- */

static int unix_listen(const char *path, mlxr_err *err) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        MLXR_FAIL(err, MLXR_ERR_RANGE, "socket path too long: %s", path);
        return -1;
    }
    strcpy(a.sun_path, path);
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode)) {
            MLXR_FAIL(err, MLXR_ERR_INVALID, "%s exists and is not a socket", path);
            return -1;
        }
        unlink(path); /* a stale socket from an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        MLXR_FAIL(err, MLXR_ERR_IO, "socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177); /* the socket file is created 0600: only our user may connect */
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    umask(old);
    if (rc != 0 || chmod(path, 0600) != 0 || listen(fd, 64) != 0) {
        MLXR_FAIL(err, MLXR_ERR_IO, "cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

mlxr_status mlxr_http_listen(mlxr_server *s, mlxr_err *err) {
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | MHD_USE_POLL;
    if (s->o.port >= 0) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->o.port)};
        const char *host = s->o.host ? s->o.host : "127.0.0.1";
        if (!strcmp(host, "localhost")) host = "127.0.0.1";
        if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "--host expects an IPv4 address, got '%s'", host);
        s->tcp = MHD_start_daemon(
            flags, (uint16_t)s->o.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &a,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
            s->o.conn_timeout_s, MHD_OPTION_CONNECTION_LIMIT, s->o.max_conns,
            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
        if (!s->tcp)
            return MLXR_FAIL(err, MLXR_ERR_IO, "cannot listen on %s:%d (in use?)", host, s->o.port);
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->tcp, MHD_DAEMON_INFO_BIND_PORT);
        s->port = di ? di->port : s->o.port;
    }
    if (s->o.socket_path) {
        s->unix_fd = unix_listen(s->o.socket_path, err);
        if (s->unix_fd < 0) return err ? err->code : MLXR_ERR_IO;
        s->unix_d = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, s->unix_fd,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
            s->o.conn_timeout_s, MHD_OPTION_CONNECTION_LIMIT, s->o.max_conns, MHD_OPTION_END);
        if (!s->unix_d)
            return MLXR_FAIL(err, MLXR_ERR_IO, "cannot serve on %s", s->o.socket_path);
    }
    return MLXR_OK;
}

void mlxr_http_stop(mlxr_server *s) {
    if (s->tcp) MHD_stop_daemon(s->tcp);
    if (s->unix_d) MHD_stop_daemon(s->unix_d); /* closes the listening fd */
    else if (s->unix_fd > 0) close(s->unix_fd);
    if (s->o.socket_path && (s->unix_d || s->unix_fd > 0)) unlink(s->o.socket_path);
    s->tcp = s->unix_d = NULL;
    s->unix_fd = -1;
}
