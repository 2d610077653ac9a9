/*
 * json_constraint.c - the incremental JSON recognizer of json_constraint.h: a pushdown automaton
 * over bytes. The stack holds one bit per open container (object or array); `mode` is where in
 * the grammar the next byte lands. A number has no closing byte, so the byte after it is handed
 * on to the state that follows the value (end_value then step again).
 */
#include "sched/json_constraint.h"

#include <string.h>

enum {
    M_TOP,       /* before the top-level value */
    M_VALUE,     /* a value is expected (after ':' or ',' in an array) */
    M_ARR_FIRST, /* after '[': a value or ']' */
    M_OBJ_FIRST, /* after '{': a key or '}' */
    M_OBJ_KEY,   /* after ',' in an object: a key */
    M_COLON,     /* after a key */
    M_AFTER,     /* after a value inside a container: ',' or the closing bracket */
    M_DONE,      /* the top-level value is closed: whitespace only */
    M_STR,       /* inside a string */
    M_STR_UTF8,  /* inside a multi-byte character of a string */
    M_ESC,       /* after a backslash */
    M_HEX,       /* in \uXXXX, n digits read */
    M_LOW_BS,    /* after a high surrogate escape: '\' of the low one */
    M_LOW_U,     /* ... its 'u' */
    M_LIT,       /* inside true / false / null */
    M_N_MINUS,   /* after '-' */
    M_N_ZERO,    /* integer part "0" */
    M_N_INT,     /* integer part digits (n of them) */
    M_N_DOT,     /* after '.' */
    M_N_FRAC,    /* fraction digits */
    M_N_E,       /* after 'e' / 'E' */
    M_N_ESIGN,   /* after the exponent's sign */
    M_N_EXP,     /* exponent digits (n of them) */
};

static bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static bool top_is_object(const mlxr_jsonc *s) {
    const int d = s->depth - 1;
    return (s->stack[d >> 3] >> (d & 7)) & 1;
}

void mlxr_jsonc_init(mlxr_jsonc *s, bool object_only) {
    memset(s, 0, sizeof *s);
    s->mode = M_TOP;
    s->object_only = object_only;
}

/* A value just ended: back in its container, or done at the top. */
static void end_value(mlxr_jsonc *s) { s->mode = s->depth > 0 ? M_AFTER : M_DONE; }

static bool push(mlxr_jsonc *s, bool object) {
    if (s->depth >= MLXR_JSONC_MAX_DEPTH) return false;
    const int d = s->depth++;
    if (object) s->stack[d >> 3] |= (uint8_t)(1u << (d & 7));
    else s->stack[d >> 3] &= (uint8_t)~(1u << (d & 7));
    s->mode = object ? M_OBJ_FIRST : M_ARR_FIRST;
    return true;
}

static bool pop(mlxr_jsonc *s, unsigned char c) {
    if (s->depth == 0 || top_is_object(s) != (c == '}')) return false;
    s->depth--;
    end_value(s);
    return true;
}

/* The first byte of a value. */
static bool start_value(mlxr_jsonc *s, unsigned char c) {
    s->n = 0;
    switch (c) {
    case '{': return push(s, true);
    case '[': return push(s, false);
    case '"': s->key = false; s->mode = M_STR; return true;
    case 't': s->lit = "rue"; s->mode = M_LIT; return true;
    case 'f': s->lit = "alse"; s->mode = M_LIT; return true;
    case 'n': s->lit = "ull"; s->mode = M_LIT; return true;
    case '-': s->mode = M_N_MINUS; return true;
    case '0': s->mode = M_N_ZERO; return true;
    default:
        if (c < '1' || c > '9') return false;
        s->mode = M_N_INT;
        s->n = 1;
        return true;
    }
}

/* The start of a multi-byte UTF-8 character: how many bytes follow and the range of the next
 * (RFC 3629's table: no overlongs, no surrogates, nothing above U+10FFFF). */
static bool utf8_lead(mlxr_jsonc *s, unsigned char c) {
    s->utf8_lo = 0x80;
    s->utf8_hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) s->utf8_left = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        s->utf8_left = 2;
        if (c == 0xE0) s->utf8_lo = 0xA0;
        if (c == 0xED) s->utf8_hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        s->utf8_left = 3;
        if (c == 0xF0) s->utf8_lo = 0x90;
        if (c == 0xF4) s->utf8_hi = 0x8F;
    } else return false;
    s->mode = M_STR_UTF8;
    return true;
}

static int hex_val(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A complete \uXXXX escape. */
static bool end_hex(mlxr_jsonc *s) {
    const unsigned u = s->unit;
    if (s->want_low) {
        s->want_low = false;
        if (u < 0xDC00 || u > 0xDFFF) return false;
    } else if (u >= 0xDC00 && u <= 0xDFFF) {
        return false; /* a low surrogate alone */
    } else if (u >= 0xD800 && u <= 0xDBFF) {
        s->want_low = true;
        s->mode = M_LOW_BS;
        return true;
    } else if (u == 0) {
        return false;
    }
    s->mode = M_STR;
    return true;
}

static bool step_string(mlxr_jsonc *s, unsigned char c) {
    switch (s->mode) {
    case M_STR:
        if (c == '"') {
            if (s->key) s->mode = M_COLON;
            else end_value(s);
            s->ws = 0;
            return true;
        }
        if (c == '\\') {
            s->mode = M_ESC;
            return true;
        }
        if (c < 0x20) return false;
        return c < 0x80 ? true : utf8_lead(s, c);
    case M_STR_UTF8:
        if (c < s->utf8_lo || c > s->utf8_hi) return false;
        s->utf8_lo = 0x80;
        s->utf8_hi = 0xBF;
        if (--s->utf8_left == 0) s->mode = M_STR;
        return true;
    case M_ESC:
        if (c == 'u') {
            s->mode = M_HEX;
            s->n = 0;
            s->unit = 0;
            return true;
        }
        if (!strchr("\"\\/bfnrt", c) || c == 0) return false;
        s->mode = M_STR;
        return true;
    case M_HEX: {
        const int v = hex_val(c);
        if (v < 0) return false;
        s->unit = (uint16_t)(s->unit << 4 | (unsigned)v);
        if (++s->n < 4) return true;
        return end_hex(s);
    }
    case M_LOW_BS:
        if (c != '\\') return false;
        s->mode = M_LOW_U;
        return true;
    default: /* M_LOW_U */
        if (c != 'u') return false;
        s->mode = M_HEX;
        s->n = 0;
        s->unit = 0;
        return true;
    }
}

/* A number byte; *handled false when the number ended before c (c then goes to the next state). */
static bool step_number(mlxr_jsonc *s, unsigned char c, bool *handled) {
    *handled = true;
    switch (s->mode) {
    case M_N_MINUS:
        if (c == '0') s->mode = M_N_ZERO;
        else if (c >= '1' && c <= '9') {
            s->mode = M_N_INT;
            s->n = 1;
        } else return false;
        return true;
    case M_N_ZERO:
    case M_N_INT:
        if (is_digit(c) && s->mode == M_N_INT) {
            return ++s->n <= 16;
        }
        if (is_digit(c)) return false; /* no leading zeros */
        if (c == '.') s->mode = M_N_DOT;
        else if (c == 'e' || c == 'E') s->mode = M_N_E;
        else break;
        return true;
    case M_N_DOT:
        if (!is_digit(c)) return false;
        s->mode = M_N_FRAC;
        return true;
    case M_N_FRAC:
        if (is_digit(c)) return true;
        if (c != 'e' && c != 'E') break;
        s->mode = M_N_E;
        return true;
    case M_N_E:
        if (c == '+' || c == '-') {
            s->mode = M_N_ESIGN;
            return true;
        }
        /* fall through */
    case M_N_ESIGN:
        if (!is_digit(c)) return false;
        s->mode = M_N_EXP;
        s->n = 1;
        return true;
    default: /* M_N_EXP */
        if (is_digit(c)) return ++s->n <= 2;
        break;
    }
    *handled = false;
    end_value(s);
    return true;
}

/* Whitespace outside strings, counted against MLXR_JSONC_MAX_WS. */
static bool step_ws(mlxr_jsonc *s) { return ++s->ws <= MLXR_JSONC_MAX_WS; }

static bool step(mlxr_jsonc *s, unsigned char c) {
    if (s->mode >= M_STR && s->mode <= M_LOW_U) return step_string(s, c);
    if (s->mode == M_LIT) {
        if ((unsigned char)*s->lit != c) return false;
        if (!*++s->lit) end_value(s);
        s->ws = 0;
        return true;
    }
    if (s->mode >= M_N_MINUS) {
        bool handled;
        if (!step_number(s, c, &handled)) return false;
        if (handled) {
            s->ws = 0;
            return true;
        }
    }
    if (is_ws(c)) return step_ws(s);
    s->ws = 0;
    switch (s->mode) {
    case M_TOP:
        if (s->object_only && c != '{') return false;
        return start_value(s, c);
    case M_VALUE: return start_value(s, c);
    case M_ARR_FIRST: return c == ']' ? pop(s, c) : start_value(s, c);
    case M_OBJ_FIRST:
        if (c == '}') return pop(s, c);
        /* fall through */
    case M_OBJ_KEY:
        if (c != '"') return false;
        s->key = true;
        s->mode = M_STR;
        return true;
    case M_COLON:
        if (c != ':') return false;
        s->mode = M_VALUE;
        return true;
    case M_AFTER:
        if (c == ',') {
            s->mode = top_is_object(s) ? M_OBJ_KEY : M_VALUE;
            return true;
        }
        return (c == '}' || c == ']') && pop(s, c);
    default: /* M_DONE */
        return false;
    }
}

bool mlxr_jsonc_feed(mlxr_jsonc *s, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!step(s, (unsigned char)bytes[i])) return false;
    return true;
}

bool mlxr_jsonc_complete(const mlxr_jsonc *s) {
    if (s->mode == M_DONE) return true;
    /* a top-level number may end where the text ends */
    return s->depth == 0 && (s->mode == M_N_ZERO || s->mode == M_N_INT || s->mode == M_N_FRAC ||
                             s->mode == M_N_EXP);
}

bool mlxr_jsonc_closed(const mlxr_jsonc *s) { return s->mode == M_DONE; }
