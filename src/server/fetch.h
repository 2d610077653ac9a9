/*
 * fetch.h - download one http(s) URL to a file, for `mlxr pull URL` and POST /api/pull.
 *
 * The only network access mlxr makes, and only when a user asks for it. Built on libcurl:
 * http and https only (also across redirects, at most 10), TLS verified with the system's CA
 * store (unless `insecure`), HTTP errors (>= 400) are failures, a transfer that moves less than
 * 1 byte/s for 60 s is abandoned. The body streams to disk, never to memory, bounded by a byte
 * limit and the free space of the destination's file system (a Content-Length above either is
 * refused before any byte is stored; a body without one is cut off at the limit). The SHA-256 of
 * the bytes is computed as they arrive; when an expected digest is known (a "#sha256=HEX" URL
 * fragment, or Hugging Face's X-Linked-Etag header on any response of the redirect chain) a
 * mismatch is a failure. With `gguf_only`, a body that does not start with the GGUF magic is
 * abandoned at its first block.
 *
 * The destination is created exclusively (an existing file is never overwritten), flock()ed
 * while it is written (the registry's clean-up of its tmp folder spares it) and fsync'ed; on any
 * failure it is removed, so a caller that renames it afterwards never sees a partial download.
 */
#ifndef MLXR_SERVER_FETCH_H
#define MLXR_SERVER_FETCH_H

#include "mlxr.h"

#include <stdbool.h>
#include <stdint.h>

/* Default byte limit of one download (1 TiB; the free disk space usually binds first). */
#define MLXR_FETCH_MAX_BYTES_DEFAULT ((uint64_t)1 << 40)

/* What is known when the body starts. */
typedef struct mlxr_fetch_info {
    uint64_t total;      /* Content-Length of the final response; 0 when not sent */
    char sha256[65];     /* expected digest (lowercase hex), or "" when none was announced */
    char file_name[128]; /* last path segment of the URL as given (no query), or "" */
} mlxr_fetch_info;

/* Called once before the first body byte is stored. Return false to cancel. */
typedef bool (*mlxr_fetch_start_fn)(void *user, const mlxr_fetch_info *info);
/* Progress: bytes stored so far and the total (0 while unknown). Called after every block of
 * data and about once a second while the transfer waits, so it is also the place to cancel:
 * return false. */
typedef bool (*mlxr_fetch_progress_fn)(void *user, uint64_t done, uint64_t total);

typedef struct mlxr_fetch_opts {
    uint64_t max_bytes;              /* 0: MLXR_FETCH_MAX_BYTES_DEFAULT */
    bool insecure;                   /* https without certificate / host name checks */
    bool gguf_only;                  /* refuse a body that does not start with "GGUF" */
    mlxr_fetch_start_fn start;       /* may be NULL */
    mlxr_fetch_progress_fn progress; /* may be NULL */
    void *user;                      /* passed to both callbacks */
} mlxr_fetch_opts;

/* True for "http://..." and "https://..." (the schemes mlxr_fetch_url accepts). */
bool mlxr_fetch_is_url(const char *s);

/* The last path segment of an URL without query or fragment ("" when there is none). */
void mlxr_fetch_file_name(const char *url, char *buf, size_t cap);

/* Download url into the new file dest. o may be NULL (defaults); sha256 (may be NULL) receives
 * the digest of the stored bytes. The callbacks run on the calling thread. Errors:
 * MLXR_ERR_INVALID (not an http(s) URL), MLXR_ERR_IO (network, HTTP status, disk; the message
 * says which), MLXR_ERR_RANGE (larger than the limit or the free space), MLXR_ERR_FORMAT (not a
 * GGUF file, digest mismatch), MLXR_ERR_CANCELLED (a callback said stop). */
mlxr_status mlxr_fetch_url(const char *url, const char *dest, const mlxr_fetch_opts *o,
                           char sha256[65], mlxr_err *err);

#endif
