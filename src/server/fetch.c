/*
 * fetch.c - http(s) download with libcurl (see fetch.h for the contract).
 */
#include "server/fetch.h"

#include "util/err.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
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

typedef struct sink {
    int fd;
    int write_errno; /* errno of a failed write, else 0 */
    mlxr_fetch_progress_fn progress;
    void *user;
    bool cancelled;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *arg) {
    sink *s = arg;
    size_t len = size * n, off = 0; /* curl guarantees size * n does not overflow */
    while (off < len) {
        ssize_t w = write(s->fd, p + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            s->write_errno = errno;
            return 0; /* a short count makes curl stop with CURLE_WRITE_ERROR */
        }
        off += (size_t)w;
    }
    return len;
}

static int on_progress(void *arg, curl_off_t total, curl_off_t done, curl_off_t ut, curl_off_t un) {
    (void)ut;
    (void)un;
    sink *s = arg;
    if (s->progress && !s->progress(s->user, done > 0 ? (uint64_t)done : 0,
                                    total > 0 ? (uint64_t)total : 0)) {
        s->cancelled = true;
        return 1; /* non-zero aborts the transfer */
    }
    return 0;
}

mlxr_status mlxr_fetch_url(const char *url, const char *dest, mlxr_fetch_progress_fn progress,
                           void *user, mlxr_err *err) {
    if (!mlxr_fetch_is_url(url))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "'%s' is not an http:// or https:// URL",
                         url ? url : "(null)");
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return MLXR_FAIL(err, MLXR_ERR_IO, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    sink s = {.fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600),
              .progress = progress,
              .user = user};
    if (s.fd < 0)
        return MLXR_FAIL(err, MLXR_ERR_IO, "cannot create %s: %s", dest, strerror(errno));
    CURL *c = curl_easy_init();
    mlxr_status st = MLXR_OK;
    if (!c) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "libcurl: cannot create a transfer");
        goto done;
    }
    char curl_msg[CURL_ERROR_SIZE] = "";
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
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (s.cancelled)
            st = MLXR_FAIL(err, MLXR_ERR_CANCELLED, "download of %s cancelled", url);
        else if (s.write_errno)
            st = MLXR_FAIL(err, MLXR_ERR_IO, "writing %s: %s", dest, strerror(s.write_errno));
        else if (rc == CURLE_HTTP_RETURNED_ERROR)
            st = MLXR_FAIL(err, MLXR_ERR_IO, "download of %s failed: HTTP %ld", url, code);
        else
            st = MLXR_FAIL(err, MLXR_ERR_IO, "download of %s failed: %s", url,
                           curl_msg[0] ? curl_msg : curl_easy_strerror(rc));
    }
    curl_easy_cleanup(c);
    if (st == MLXR_OK && fsync(s.fd) != 0)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "fsync %s: %s", dest, strerror(errno));
done:
    if (close(s.fd) != 0 && st == MLXR_OK)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "close %s: %s", dest, strerror(errno));
    if (st != MLXR_OK) unlink(dest);
    return st;
}
