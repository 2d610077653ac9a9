/*
 * stopmatch.h - text that leaves a generation: whole UTF-8 characters only, and stop strings
 * cut out before they are shown.
 *
 * Tokens arrive as byte pieces. A piece may end inside a UTF-8 character (byte-fallback tokens),
 * and a stop string may be split across several pieces ("\n\nUs" + "er:"). The matcher keeps
 * back the shortest tail that could still grow into a stop string and emits everything before
 * it, so a stop string never reaches the client, even in a stream. When a stop string is found
 * everything from its first byte on is dropped and the matcher reports "stopped".
 *
 * Invariants: emitted text is the exact prefix of the full text up to (not including) the
 * earliest occurrence of any stop string; the concatenation of every emitted delta equals
 * what a non-streaming caller sees. Stop strings must be non-empty.
 */
#ifndef MLXR_SERVER_STOPMATCH_H
#define MLXR_SERVER_STOPMATCH_H

#include "mlxr.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct mlxr_stopmatch {
    char **stops;     /* owned copies */
    size_t *stop_len;
    size_t n_stop;
    char *pend;       /* bytes received but not yet emitted: incomplete UTF-8 + held-back tail */
    size_t pend_len, pend_cap;
    bool stopped;     /* a stop string was found; further input is ignored */
} mlxr_stopmatch;

/* Copy `n` stop strings (borrowed for the call). Empty strings are rejected (MLXR_ERR_INVALID).
 * On failure *m is left empty (safe to free). */
mlxr_status mlxr_stopmatch_init(mlxr_stopmatch *m, const char *const *stops, size_t n,
                                mlxr_err *err);
void mlxr_stopmatch_free(mlxr_stopmatch *m);

/*
 * Feed `len` bytes of generated text. The bytes that are now safe to show are written to
 * `out` (capacity `cap`, which must be at least pend_len + len; mlxr_stopmatch_need() says how
 * much) and their count to *n_out. Returns true once a stop string was found (then the caller
 * ends the generation with finish reason "stop").
 */
bool mlxr_stopmatch_feed(mlxr_stopmatch *m, const char *text, size_t len, char *out, size_t cap,
                         size_t *n_out);
/* Bytes `out` must hold for a feed of `len` bytes (or a flush with len 0). */
size_t mlxr_stopmatch_need(const mlxr_stopmatch *m, size_t len);
/* End of generation without a stop: emit whatever is held back (raw bytes; an incomplete
 * UTF-8 tail stays as it is, mlxr_utf8_sanitize turns it into U+FFFD). Writes as feed does. */
void mlxr_stopmatch_flush(mlxr_stopmatch *m, char *out, size_t cap, size_t *n_out);

/* Number of leading bytes of s[0..len) that end on a UTF-8 character boundary: a trailing,
 * possibly incomplete multi-byte sequence (at most 3 bytes) is excluded. */
size_t mlxr_utf8_complete_len(const char *s, size_t len);
/* True if s[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool mlxr_utf8_valid(const char *s, size_t len);

/* Copy of s[0..len) with every byte that does not start a valid UTF-8 sequence replaced by
 * U+FFFD, NUL-terminated; malloc'ed (free()), *out_len set; NULL when out of memory. The result
 * of sanitizing a text equals the concatenation of sanitizing the deltas the matcher emits. */
char *mlxr_utf8_sanitize(const char *s, size_t len, size_t *out_len);

#endif
