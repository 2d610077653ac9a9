/*
 * fetch.c - http(s) download with libcurl (see fetch.h for the contract).
 *
 * The header callback sees every response of the redirect chain, one line at a time: it resets
 * its Content-Length at each status line and remembers an announced digest (X-Linked-Etag).
 * The body callback checks the limit, the GGUF magic and feeds SHA-256 before writing, so a
 * refused body stops after its first block. libcurl 7.88's CURLOPT_MAXFILESIZE only looks at
 * Content-Length, hence our own byte count.
 */
#include "server/fetch.h"

#include "server/sha256.h"
#include "util/err.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

/* curl_global_init is not thread-safe: run it exactly once, whoever calls first. */
static void curl_init(void) {
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

bool mlxr_fetch_is_url(const char *s) {
    return s && (!strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8));
}

void mlxr_fetch_file_name(const char *url, char *buf, size_t cap) {
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "?#");
    const char *slash = NULL;
    for (const char *q = p; q < p + n; q++)
        if (*q == '/') slash = q;
    const char *base = slash ? slash + 1 : p + n; /* no path: no name */
    snprintf(buf, cap, "%.*s", (int)(p + n - base), base);
}

/* A 64-digit hex string (optionally in quotes) into lowercase hex; false if it is not one. */
static bool parse_hex64(const char *s, size_t len, char out[65]) {
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    while (len && isspace((unsigned char)*s))
        s++, len--;
    if (len == 66 && s[0] == '"' && s[65] == '"') s++, len -= 2;
    if (len != 64) return false;
    for (size_t i = 0; i < 64; i++) {
        if (!isxdigit((unsigned char)s[i])) return false;
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[64] = '\0';
    return true;
}

typedef struct sink {
    int fd;
    const mlxr_fetch_opts *o;
    uint64_t limit;       /* bytes allowed */
    uint64_t free_bytes;  /* free space of dest's file system at the start */
    uint64_t done;        /* bytes stored */
    mlxr_fetch_info info; /* total = the current response's Content-Length */
    bool started;
    unsigned char magic[4]; /* the first bytes, for the GGUF check */
    mlxr_sha256 sha;
    /* why the transfer was stopped from a callback (first reason wins) */
    mlxr_status why;
    char why_msg[256];
} sink;

static size_t stop(sink *s, mlxr_status why, const char *msg) {
    if (s->why == MLXR_OK) {
        s->why = why;
        snprintf(s->why_msg, sizeof s->why_msg, "%s", msg);
    }
    return 0; /* a short count makes curl stop with CURLE_WRITE_ERROR */
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
    sink *s = arg;
    size_t len = size * n;
    if (len >= 5 && !strncasecmp(p, "HTTP/", 5)) {
        s->info.total = 0; /* a new response of the chain: its own Content-Length */
    } else if (len > 15 && !strncasecmp(p, "Content-Length:", 15)) {
        char num[32];
        snprintf(num, sizeof num, "%.*s", (int)(len - 15 < 31 ? len - 15 : 31), p + 15);
        char *end;
        errno = 0;
        unsigned long long v = strtoull(num, &end, 10);
        if (!errno && end != num) s->info.total = v;
    } else if (len > 14 && !strncasecmp(p, "X-Linked-Etag:", 14) && !s->info.sha256[0]) {
        char hex[65];
        if (parse_hex64(p + 14, len - 14, hex)) memcpy(s->info.sha256, hex, 65);
    }
    return len;
}

/* The body begins: check the announced size against the limit and the free space. */
static bool begin(sink *s) {
    s->started = true;
    char msg[256];
    if (s->info.total > s->limit) {
        snprintf(msg, sizeof msg, "the file is %" PRIu64 " bytes, over the limit of %" PRIu64,
                 s->info.total, s->limit);
        stop(s, MLXR_ERR_RANGE, msg);
        return false;
    }
    if (s->info.total > s->free_bytes) {
        snprintf(msg, sizeof msg,
                 "the file is %" PRIu64 " bytes, but only %" PRIu64 " bytes are free on the disk",
                 s->info.total, s->free_bytes);
        stop(s, MLXR_ERR_RANGE, msg);
        return false;
    }
    if (s->o->start && !s->o->start(s->o->user, &s->info)) {
        stop(s, MLXR_ERR_CANCELLED, "cancelled");
        return false;
    }
    return true;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg) {
    sink *s = arg;
    size_t len = size * n; /* curl guarantees size * n does not overflow */
    /* the magic first, so that a wrong file fails before the start callback when it can */
    for (size_t i = 0; i < len && s->done + i < 4; i++)
        s->magic[s->done + i] = (unsigned char)p[i];
    if (s->o->gguf_only && s->done + len >= 4 && s->done < 4 && memcmp(s->magic, "GGUF", 4) != 0)
        return stop(s, MLXR_ERR_FORMAT, "not a GGUF file (it does not start with \"GGUF\")");
    if (!s->started && !begin(s)) return 0;
    if (len > s->limit - s->done) {
        char msg[128];
        snprintf(msg, sizeof msg, "the download passed the limit of %" PRIu64 " bytes", s->limit);
        return stop(s, MLXR_ERR_RANGE, msg);
    }
    mlxr_sha256_update(&s->sha, p, len);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(s->fd, p + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return stop(s, MLXR_ERR_IO, strerror(errno));
        }
        off += (size_t)w;
    }
    s->done += len;
    if (s->o->progress && !s->o->progress(s->o->user, s->done, s->info.total))
        return stop(s, MLXR_ERR_CANCELLED, "cancelled");
    return len;
}

/* Called by libcurl about once a second even when no data moves: the cancel check. */
static int on_tick(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    sink *s = arg;
    if (s->o->progress && !s->o->progress(s->o->user, s->done, s->info.total)) {
        stop(s, MLXR_ERR_CANCELLED, "cancelled");
        return 1; /* non-zero aborts the transfer */
    }
    return 0;
}

/* Free bytes on the file system holding path's directory (UINT64_MAX when unknown). */
static uint64_t free_space(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    struct statvfs v;
    if (statvfs(dir, &v) != 0) return UINT64_MAX;
    return (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
}

static void setup(CURL *c, const char *url, sink *s, char *curl_msg) {
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mlxr");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_msg);
    if (s->o->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_tick);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
}

/* Run the transfer and turn its outcome into a status. */
static mlxr_status transfer(CURL *c, const char *url, sink *s, mlxr_err *err) {
    char curl_msg[CURL_ERROR_SIZE] = "";
    setup(c, url, s, curl_msg);
    CURLcode rc = curl_easy_perform(c);
    if (s->why != MLXR_OK) {
        if (s->why == MLXR_ERR_IO)
            return MLXR_FAIL(err, MLXR_ERR_IO, "download of %s: writing to disk: %s", url,
                             s->why_msg);
        if (s->why == MLXR_ERR_CANCELLED)
            return MLXR_FAIL(err, MLXR_ERR_CANCELLED, "download of %s cancelled", url);
        return MLXR_FAIL(err, s->why, "download of %s: %s", url, s->why_msg);
    }
    if (rc == CURLE_HTTP_RETURNED_ERROR) {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        return MLXR_FAIL(err, MLXR_ERR_IO, "download of %s failed: HTTP %ld", url, code);
    }
    if (rc != CURLE_OK)
        return MLXR_FAIL(err, MLXR_ERR_IO, "download of %s failed: %s", url,
                         curl_msg[0] ? curl_msg : curl_easy_strerror(rc));
    if (!s->started && !begin(s)) /* an empty body: the start callback still runs once */
        return MLXR_FAIL(err, s->why, "download of %s: %s", url, s->why_msg);
    if (s->o->gguf_only && (s->done < 4 || memcmp(s->magic, "GGUF", 4) != 0))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "download of %s: not a GGUF file (%" PRIu64 " bytes)", url, s->done);
    return MLXR_OK;
}

mlxr_status mlxr_fetch_url(const char *url, const char *dest, const mlxr_fetch_opts *o,
                           char sha256[65], mlxr_err *err) {
    static const mlxr_fetch_opts defaults = {0};
    if (!o) o = &defaults;
    if (!mlxr_fetch_is_url(url))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "'%s' is not an http:// or https:// URL",
                         url ? url : "(null)");
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return MLXR_FAIL(err, MLXR_ERR_IO, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    sink s = {.o = o,
              .limit = o->max_bytes ? o->max_bytes : MLXR_FETCH_MAX_BYTES_DEFAULT,
              .free_bytes = free_space(dest)};
    mlxr_sha256_init(&s.sha);
    mlxr_fetch_file_name(url, s.info.file_name, sizeof s.info.file_name);
    const char *frag = strchr(url, '#');
    if (frag && !strncasecmp(frag, "#sha256=", 8) &&
        !parse_hex64(frag + 8, strlen(frag + 8), s.info.sha256))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "'%s': #sha256= needs 64 hex digits", url);
    if ((s.fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
        return MLXR_FAIL(err, MLXR_ERR_IO, "cannot create %s: %s", dest, strerror(errno));
    /* the registry's clean-up of tmp/ skips files locked like this (see registry.c sweep);
     * one it removed in the instant before the lock shows as a different inode */
    struct stat fs, ds;
    mlxr_status st = MLXR_OK;
    if (flock(s.fd, LOCK_EX | LOCK_NB) != 0 || fstat(s.fd, &fs) != 0 || stat(dest, &ds) != 0 ||
        fs.st_ino != ds.st_ino || fs.st_dev != ds.st_dev)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot lock %s (removed meanwhile?)", dest);
    CURL *c = st == MLXR_OK ? curl_easy_init() : NULL;
    if (st == MLXR_OK)
        st = c ? transfer(c, url, &s, err)
               : MLXR_FAIL(err, MLXR_ERR_NOMEM, "libcurl: cannot create a transfer");
    if (c) curl_easy_cleanup(c);
    char hex[65];
    mlxr_sha256_hex(&s.sha, hex);
    if (st == MLXR_OK && s.info.sha256[0] && strcmp(hex, s.info.sha256) != 0)
        st = MLXR_FAIL(err, MLXR_ERR_FORMAT, "download of %s: sha256 %s, expected %s", url, hex,
                       s.info.sha256);
    if (st == MLXR_OK && fsync(s.fd) != 0)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "fsync %s: %s", dest, strerror(errno));
    if (close(s.fd) != 0 && st == MLXR_OK)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "close %s: %s", dest, strerror(errno));
    if (st != MLXR_OK)
        unlink(dest);
    else if (sha256)
        memcpy(sha256, hex, 65);
    return st;
}
