/*
 * json_constraint.h - an incremental recognizer of JSON text (RFC 8259), fed bytes in order, for
 * JSON-constrained generation: after every byte it knows whether the text so far is a prefix of
 * some valid JSON text, and whether it is a complete one.
 *
 * What it accepts is strict JSON that common parsers (jansson, Python's json, JavaScript's
 * JSON.parse) all read, with limits that keep a generating model from running away:
 *  - the top-level value is an object (object_only, as llama.cpp's json grammar and Ollama's
 *    format "json") or any value; whitespace (space, tab, LF, CR) before and after it;
 *  - strings: valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF), no raw
 *    control characters, the escapes \" \\ \/ \b \f \n \r \t \uXXXX, where a high surrogate
 *    escape must be followed by a low one, a lone low surrogate is refused, and \u0000 is refused
 *    (jansson refuses NUL in keys and, by default, in strings);
 *  - numbers: an integer part of at most 16 digits and an exponent of at most 2 digits (so every
 *    number fits a 64-bit integer or a finite double; llama.cpp's grammar limits digits too);
 *  - at most MLXR_JSONC_MAX_DEPTH nested containers and at most MLXR_JSONC_MAX_WS whitespace
 *    bytes in a row.
 * The state is a small plain struct: copy it to try bytes without committing them.
 */
#ifndef MLXR_SCHED_JSON_CONSTRAINT_H
#define MLXR_SCHED_JSON_CONSTRAINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MLXR_JSONC_MAX_DEPTH 128
#define MLXR_JSONC_MAX_WS 40

typedef struct mlxr_jsonc {
    uint8_t stack[MLXR_JSONC_MAX_DEPTH / 8]; /* bit d: container at depth d+1 is an object */
    uint8_t depth;     /* open containers */
    uint8_t mode;      /* lexical state (json_constraint.c) */
    uint8_t n;         /* digits / hex digits / literal bytes so far, by state */
    uint8_t utf8_left; /* continuation bytes still expected in a string */
    uint8_t utf8_lo, utf8_hi; /* range of the next continuation byte */
    uint8_t ws;        /* whitespace bytes in a row */
    bool key;          /* the string being read is an object key */
    bool object_only;  /* the top-level value must be an object */
    bool want_low;     /* a \u high surrogate was read: a low one must follow */
    uint16_t unit;     /* the \u code unit being read */
    const char *lit;   /* rest of the literal true/false/null being read */
} mlxr_jsonc;

/* Start before the first byte. */
void mlxr_jsonc_init(mlxr_jsonc *s, bool object_only);

/* Feed n bytes. Returns false if some byte cannot continue any valid JSON text (the state is
 * then unusable: feed a copy to test bytes). */
bool mlxr_jsonc_feed(mlxr_jsonc *s, const char *bytes, size_t n);

/* True if the text fed so far is one complete JSON text (trailing whitespace allowed). For a
 * top-level number ("12") this is true while more digits could still follow. */
bool mlxr_jsonc_complete(const mlxr_jsonc *s);

/* True once nothing but whitespace can follow (the top-level object or array is closed). */
bool mlxr_jsonc_closed(const mlxr_jsonc *s);

#endif
