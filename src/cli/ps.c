/*
 * ps.c - `mlxr ps` and `mlxr stop NAME`: the models a running `mlxr serve` has loaded, and
 * unloading one, as `ollama ps` / `ollama stop` do, through the daemon's Ollama API:
 * GET /api/ps lists them; POST /api/generate {"model": NAME, "keep_alive": 0} with no prompt
 * unloads one. The daemon is found at --host URL, else $MLXR_HOST (as OLLAMA_HOST: "HOST",
 * "HOST:PORT" or "http://HOST:PORT"), else http://127.0.0.1:11434 (the daemon's default port);
 * --socket PATH talks over the daemon's Unix socket instead. HTTP through libcurl.
 */
#include "cli.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PS_DEFAULT_PORT 11434 /* mlxr serve's (and Ollama's) default */

typedef struct daemon_conn {
    char base[1024];  /* "http://host:port", no trailing slash */
    const char *sock; /* Unix socket path or NULL */
} daemon_conn;

typedef struct body {
    char *p;
    size_t n;
} body;

static size_t on_data(char *d, size_t size, size_t nmemb, void *user) {
    body *b = user;
    size_t n = size * nmemb;
    if (b->n + n > ((size_t)64 << 20)) return 0; /* a sane answer is small */
    char *p = realloc(b->p, b->n + n + 1);
    if (!p) return 0;
    memcpy(p + b->n, d, n);
    b->p = p;
    b->n += n;
    p[b->n] = '\0';
    return n;
}

/* Parse --host/--socket and up to one positional argument. 0 ok, -1 help shown, else status. */
static int conn_args(int argc, char **argv, daemon_conn *c, const char **pos, const char *usage) {
    const char *host = getenv("MLXR_HOST");
    c->sock = NULL;
    *pos = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s", usage);
            return -1;
        }
        if (!strcmp(a, "--host")) {
            if (!(host = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "--socket")) {
            if (!(c->sock = cli_value(argc, argv, &i))) return 1;
        } else if (a[0] == '-' && a[1]) {
            return cli_error("unknown option '%s' (try '%s --help')", a, argv[0]);
        } else if (!*pos) {
            *pos = a;
        } else {
            return cli_error("unexpected argument '%s'", a);
        }
    }
    if (c->sock || !host || !*host) host = "127.0.0.1";
    const char *scheme = strstr(host, "://") ? "" : "http://";
    const char *hp = strstr(host, "://") ? strstr(host, "://") + 3 : host;
    size_t hl = strlen(host);
    while (hl > 0 && host[hl - 1] == '/')
        hl--;
    /* a port unless one is given ("[::1]:8080", "host:8080") */
    const char *close = strrchr(hp, ']'), *colon = strrchr(close ? close : hp, ':');
    if (colon)
        snprintf(c->base, sizeof c->base, "%s%.*s", scheme, (int)hl, host);
    else
        snprintf(c->base, sizeof c->base, "%s%.*s:%d", scheme, (int)hl, host, PS_DEFAULT_PORT);
    return 0;
}

/* One request; the answer's JSON, or NULL with the error printed. */
static json_t *call(const daemon_conn *c, const char *method, const char *path, const char *req) {
    char url[1200], msg[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, "%s%s", c->base, path);
    CURL *h = curl_easy_init();
    if (!h) {
        cli_error("cannot start libcurl");
        return NULL;
    }
    body b = {0};
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 600L); /* loading a big model to unload it */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, msg);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mlxr");
    if (c->sock) curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->sock);
    if (req) {
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
    }
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    const char *api_key = getenv("MLXR_API_KEY");
    char auth[600];
    struct curl_slist *h2 = NULL;
    if (api_key && *api_key) { /* a daemon started with --api-key */
        snprintf(auth, sizeof auth, "Authorization: Bearer %.*s", (int)strcspn(api_key, ","),
                 api_key); /* the daemon takes a comma-separated list: use the first */
        h2 = curl_slist_append(hdr, auth);
        if (h2) hdr = h2;
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    }
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    json_t *j = NULL;
    if (rc != CURLE_OK) {
        cli_error("cannot reach the mlxr daemon at %s: %s (is `mlxr serve` running? set "
                  "MLXR_HOST or --host, or --socket PATH)",
                  c->sock ? c->sock : c->base, msg[0] ? msg : curl_easy_strerror(rc));
    } else if (!(j = json_loads(b.p ? b.p : "", 0, NULL))) {
        cli_error("%s %s: HTTP %ld, not JSON", method, path, status);
    } else if (status != 200) {
        json_t *e = json_object_get(j, "error");
        const char *m = json_is_string(e) ? json_string_value(e)
                        : json_is_string(json_object_get(e, "message"))
                            ? json_string_value(json_object_get(e, "message"))
                            : "";
        cli_error("%s %s: HTTP %ld %s", method, path, status, m);
        json_decref(j);
        j = NULL;
    }
    free(b.p);
    return j;
}

/* "YYYY-MM-DDTHH:MM:SS[.frac]Z" as Unix seconds; -1 if unparsable. */
static long long parse_time(const char *s) {
    struct tm tm = {0};
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long long)timegm(&tm);
}

/* Ollama's UNTIL column: "Forever", "Stopping...", "4 minutes from now". */
static void until(const char *expires, char *out, size_t cap) {
    long long t = parse_time(expires), d = t - (long long)time(NULL);
    if (t < 0)
        snprintf(out, cap, "-");
    else if (t >= 29000000000LL || d > 100LL * 365 * 86400)
        snprintf(out, cap, "Forever");
    else if (d <= 0)
        snprintf(out, cap, "Stopping...");
    else if (d < 120)
        snprintf(out, cap, "%lld seconds from now", d);
    else if (d < 7200)
        snprintf(out, cap, "%lld minutes from now", d / 60);
    else if (d < 172800)
        snprintf(out, cap, "%lld hours from now", d / 3600);
    else
        snprintf(out, cap, "%lld days from now", d / 86400);
}

static void human_size(json_int_t n, char *buf, size_t cap) {
    if (n >= (json_int_t)1 << 30)
        snprintf(buf, cap, "%.1f GB", (double)n / (1 << 30));
    else if (n >= 1 << 20)
        snprintf(buf, cap, "%.1f MB", (double)n / (1 << 20));
    else
        snprintf(buf, cap, "%.1f KB", (double)n / 1024);
}

/* The context a model was loaded with: /api/ps's context_length, else its /api/show
 * <arch>.context_length capped at 4096 as the daemon caps it without --ctx-size; 0 if unknown. */
static long long context_of(const daemon_conn *c, json_t *m, const char *name) {
    json_t *cl = json_object_get(m, "context_length");
    if (json_is_integer(cl)) return json_integer_value(cl);
    json_t *q = json_pack("{s:s}", "model", name);
    char *req = q ? json_dumps(q, JSON_COMPACT) : NULL;
    json_decref(q);
    json_t *show = req ? call(c, "POST", "/api/show", req) : NULL;
    free(req);
    long long n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(show, "model_info"), key, v) {
        size_t kl = strlen(key);
        if (kl > 15 && !strcmp(key + kl - 15, ".context_length") && json_is_integer(v))
            n = json_integer_value(v);
    }
    json_decref(show);
    return n > 4096 ? 4096 : n; /* a daemon started with --ctx-size N uses N: not visible here */
}

static json_t *ps_models(const daemon_conn *c, json_t **root) {
    *root = call(c, "GET", "/api/ps", NULL);
    json_t *arr = json_object_get(*root, "models");
    if (*root && !json_is_array(arr)) {
        cli_error("GET /api/ps: no 'models' array in the answer");
        json_decref(*root);
        *root = NULL;
    }
    return *root ? arr : NULL;
}

int cli_ps(int argc, char **argv) {
    daemon_conn c;
    const char *pos;
    int rc = conn_args(argc, argv, &c, &pos,
                       "usage: mlxr ps [--host URL] [--socket PATH]\n"
                       "  the models the running daemon has loaded (MLXR_HOST, default "
                       "http://127.0.0.1:11434)\n");
    if (rc) return rc < 0 ? 0 : rc;
    if (pos) return cli_error("unexpected argument '%s'", pos);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_t *root, *arr = ps_models(&c, &root);
    if (arr) {
        printf("%-40s %-14s %-10s %-10s %-9s %s\n", "NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT",
               "UNTIL");
        size_t i;
        json_t *m;
        json_array_foreach(arr, i, m) {
            const char *name = json_string_value(json_object_get(m, "name"));
            const char *dig = json_string_value(json_object_get(m, "digest"));
            json_t *vram = json_object_get(m, "size_vram");
            json_int_t size = json_integer_value(json_object_get(m, "size"));
            char sz[32], ctx[24] = "-", when[48];
            human_size(size, sz, sizeof sz);
            long long n_ctx = name ? context_of(&c, m, name) : 0;
            if (n_ctx > 0) snprintf(ctx, sizeof ctx, "%lld", n_ctx);
            until(json_string_value(json_object_get(m, "expires_at")), when, sizeof when);
            bool gpu = json_is_integer(vram) && json_integer_value(vram) > 0;
            printf("%-40s %-14.12s %-10s %-10s %-9s %s\n", name ? name : "?", dig ? dig : "", sz,
                   gpu ? "100% GPU" : "100% CPU", ctx, when);
        }
    }
    json_decref(root);
    curl_global_cleanup();
    return arr ? 0 : 1;
}

int cli_stop(int argc, char **argv) {
    daemon_conn c;
    const char *name;
    int rc = conn_args(argc, argv, &c, &name,
                       "usage: mlxr stop NAME[:TAG] [--host URL] [--socket PATH]\n"
                       "  unload a model from the running daemon\n");
    if (rc) return rc < 0 ? 0 : rc;
    if (!name) return cli_error("stop needs a model name (see mlxr ps)");
    char key[300];
    snprintf(key, sizeof key, strchr(name, ':') ? "%s" : "%s:latest", name);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* only a loaded model: /api/generate would load one that is not, to unload it again */
    json_t *root, *arr = ps_models(&c, &root), *m;
    bool loaded = false;
    size_t i;
    json_array_foreach(arr, i, m) {
        const char *n = json_string_value(json_object_get(m, "name"));
        loaded |= n && (!strcmp(n, key) || !strcmp(n, name));
    }
    json_decref(root);
    rc = 1;
    if (arr && !loaded) {
        cli_error("model '%s' is not loaded (see mlxr ps)", key);
    } else if (arr) {
        json_t *q = json_pack("{s:s,s:i}", "model", key, "keep_alive", 0);
        char *req = q ? json_dumps(q, JSON_COMPACT) : NULL;
        json_decref(q);
        json_t *res = req ? call(&c, "POST", "/api/generate", req) : NULL;
        free(req);
        rc = res ? 0 : 1;
        json_decref(res);
    }
    curl_global_cleanup();
    return rc;
}
