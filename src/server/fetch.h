/*
 * fetch.h - download one http(s) URL to a file, for `mlxr pull URL` and POST /api/pull.
 *
 * The only network access mlxr makes, and only when a user asks for it. Built on libcurl:
 * http and https only (also across redirects, at most 10), TLS verified with the system's CA
 * store, HTTP errors (>= 400) are failures, a transfer that moves less than 1 byte/s for 60 s is
 * abandoned. The destination is created exclusively (an existing file is never overwritten) and
 * fsync'ed; on any failure it is removed, so a caller that renames it afterwards never sees a
 * partial download.
 */
#ifndef MLXR_SERVER_FETCH_H
#define MLXR_SERVER_FETCH_H

#include "mlxr.h"

#include <stdbool.h>
#include <stdint.h>

/* Progress: bytes received so far and the total (0 while unknown). Return false to cancel. */
typedef bool (*mlxr_fetch_progress_fn)(void *user, uint64_t done, uint64_t total);

/* True for "http://..." and "https://..." (the schemes mlxr_fetch_url accepts). */
bool mlxr_fetch_is_url(const char *s);

/* Download url into the new file dest. Errors: MLXR_ERR_INVALID (not an http(s) URL),
 * MLXR_ERR_IO (network, HTTP status, disk; the message says which), MLXR_ERR_CANCELLED. */
mlxr_status mlxr_fetch_url(const char *url, const char *dest, mlxr_fetch_progress_fn progress,
                           void *user, mlxr_err *err);

#endif
