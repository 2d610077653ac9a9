/*
 * jinja_str.c - Python str semantics on UTF-8 bytes: code points, whitespace (str.isspace),
 * strip, and case mapping.
 *
 * Case mapping covers ASCII, Latin-1, Latin Extended-A/B pairs, Greek, Cyrillic, Armenian and
 * fullwidth Latin with Python's results, plus the one-to-many 'ß' -> 'SS'; other scripts have
 * no case and pass through unchanged. Invalid UTF-8 bytes decode as U+FFFD of width 1 for
 * counting but are copied through unchanged.
 */
#include "template/template.h"

#include <string.h>

uint32_t jutf8_decode(const char *s, size_t n, size_t *w) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) {
        *w = 0;
        return 0;
    }
    unsigned c = u[0];
    if (c < 0x80) {
        *w = 1;
        return c;
    }
    int len = c >= 0xf0 && c < 0xf8 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (c >= 0xf8) len = 0;
    if (len == 0 || (size_t)len > n) {
        *w = 1;
        return 0xfffd;
    }
    uint32_t cp = c & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xc0) != 0x80) {
            *w = 1;
            return 0xfffd;
        }
        cp = (cp << 6) | (u[i] & 0x3f);
    }
    *w = (size_t)len;
    return cp;
}

size_t jutf8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t jstr_n_cp(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t w;
        jutf8_decode(s + i, n - i, &w);
        i += w;
        k++;
    }
    return k;
}

size_t jstr_cp_offset(const char *s, size_t n, size_t cp) {
    size_t i = 0;
    while (cp > 0 && i < n) {
        size_t w;
        jutf8_decode(s + i, n - i, &w);
        i += w;
        cp--;
    }
    return i;
}

static bool cp_space(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

bool jstr_is_space_at(const char *s, size_t n, size_t i, size_t *w) {
    uint32_t c = jutf8_decode(s + i, n - i, w);
    return cp_space(c);
}

/* Is the code point ending just before byte i whitespace? *w = its width. */
bool jstr_is_space_before(const char *s, size_t i, size_t *w) {
    if (i == 0) return false;
    size_t j = i - 1;
    while (j > 0 && i - j < 4 && ((unsigned char)s[j] & 0xc0) == 0x80)
        j--;
    size_t ww;
    uint32_t c = jutf8_decode(s + j, i - j, &ww);
    if (j + ww != i) { /* not a clean sequence: treat the last byte alone */
        *w = 1;
        return cp_space((unsigned char)s[i - 1]);
    }
    *w = ww;
    return cp_space(c);
}

void jstr_strip(const char *s, size_t n, const char *chars, size_t nchars, int which, size_t *start,
                size_t *end) {
    size_t a = 0, b = n, w;
    if (!chars) {
        if (which & 1)
            while (a < b && jstr_is_space_at(s, b, a, &w))
                a += w;
        if (which & 2)
            while (b > a && jstr_is_space_before(s, b, &w))
                b -= w;
    } else {
        /* strip any code point that occurs in chars */
        if (which & 1)
            while (a < b) {
                uint32_t c = jutf8_decode(s + a, b - a, &w);
                char enc[4];
                size_t k = jutf8_encode(c, enc);
                bool hit = false;
                for (size_t i = 0; i + k <= nchars && !hit; i++)
                    hit = !memcmp(chars + i, enc, k);
                if (!hit) break;
                a += w;
            }
        if (which & 2)
            while (b > a) {
                size_t j = b - 1;
                while (j > a && ((unsigned char)s[j] & 0xc0) == 0x80 && b - j < 4)
                    j--;
                size_t k = b - j;
                bool hit = false;
                for (size_t i = 0; i + k <= nchars && !hit; i++)
                    hit = !memcmp(chars + i, s + j, k);
                if (!hit) break;
                b = j;
            }
    }
    *start = a;
    *end = b;
}

/* Upper/lower of one code point; 0 when unchanged. */
static uint32_t cp_upper(uint32_t c) {
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c < 0x80) return 0;
    if (c == 0xb5) return 0x39c;
    if ((c >= 0xe0 && c <= 0xfe && c != 0xf7)) return c - 32;
    if (c == 0xff) return 0x178;
    if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 &&
        c != 0x17f) {
        bool odd_low = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e);
        if (odd_low) return (c & 1) ? 0 : c - 1;
        return (c & 1) ? c - 1 : 0;
    }
    if (c == 0x131) return 'I';
    if (c == 0x17f) return 'S';
    if (c >= 0x3b1 && c <= 0x3c9 && c != 0x3c2) return c - 32;
    if (c == 0x3c2) return 0x3a3;
    if (c == 0x3ac) return 0x386;
    if (c >= 0x3ad && c <= 0x3af) return c - 37;
    if (c == 0x3cc) return 0x38c;
    if (c == 0x3cd || c == 0x3ce) return c - 63;
    if (c >= 0x430 && c <= 0x44f) return c - 32;
    if (c >= 0x450 && c <= 0x45f) return c - 80;
    if (c >= 0x460 && c <= 0x4ff && (c & 1) && !(c >= 0x482 && c <= 0x489)) return c - 1;
    if (c >= 0x561 && c <= 0x586) return c - 48;
    if (c >= 0xff41 && c <= 0xff5a) return c - 32;
    return 0;
}

static uint32_t cp_lower(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0x80) return 0;
    if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 32;
    if (c == 0x178) return 0xff;
    if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 &&
        c != 0x17f && c != 0x178) {
        bool odd_low = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e);
        if (odd_low) return (c & 1) ? c + 1 : 0;
        return (c & 1) ? 0 : c + 1;
    }
    if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
    if (c == 0x386) return 0x3ac;
    if (c >= 0x388 && c <= 0x38a) return c + 37;
    if (c == 0x38c) return 0x3cc;
    if (c == 0x38e || c == 0x38f) return c + 63;
    if (c >= 0x410 && c <= 0x42f) return c + 32;
    if (c >= 0x400 && c <= 0x40f) return c + 80;
    if (c >= 0x460 && c <= 0x4ff && !(c & 1) && !(c >= 0x482 && c <= 0x489)) return c + 1;
    if (c >= 0x531 && c <= 0x556) return c + 48;
    if (c >= 0xff21 && c <= 0xff3a) return c + 32;
    return 0;
}

static bool cp_cased(uint32_t c) {
    return cp_upper(c) || cp_lower(c) || c == 0xdf;
}

/* mode: 0 lower, 1 upper */
static mlxr_status put_case(jrt *rt, jbuf *b, const char *s, size_t w, uint32_t c, int mode) {
    if (mode == 1 && c == 0xdf) return jbuf_put(rt, b, "SS", 2);
    uint32_t m = mode ? cp_upper(c) : cp_lower(c);
    if (!m) return jbuf_put(rt, b, s, w);
    char enc[4];
    return jbuf_put(rt, b, enc, jutf8_encode(m, enc));
}

static mlxr_status map_case(jrt *rt, jbuf *b, const char *s, size_t n, int mode) {
    for (size_t i = 0; i < n;) {
        size_t w;
        uint32_t c = jutf8_decode(s + i, n - i, &w);
        mlxr_status st = put_case(rt, b, s + i, w, c, mode);
        if (st) return st;
        i += w;
    }
    return MLXR_OK;
}

mlxr_status jstr_upper(jrt *rt, jbuf *b, const char *s, size_t n) {
    return map_case(rt, b, s, n, 1);
}

mlxr_status jstr_lower(jrt *rt, jbuf *b, const char *s, size_t n) {
    return map_case(rt, b, s, n, 0);
}

mlxr_status jstr_capitalize(jrt *rt, jbuf *b, const char *s, size_t n) {
    if (n == 0) return MLXR_OK;
    size_t w;
    uint32_t c = jutf8_decode(s, n, &w);
    mlxr_status st = put_case(rt, b, s, w, c, 1);
    return st ? st : map_case(rt, b, s + w, n - w, 0);
}

/* Python str.title(): a cased char after an uncased one is upper-cased, others lower-cased. */
mlxr_status jstr_pytitle(jrt *rt, jbuf *b, const char *s, size_t n) {
    bool prev_cased = false;
    for (size_t i = 0; i < n;) {
        size_t w;
        uint32_t c = jutf8_decode(s + i, n - i, &w);
        mlxr_status st = put_case(rt, b, s + i, w, c, prev_cased ? 0 : 1);
        if (st) return st;
        prev_cased = cp_cased(c);
        i += w;
    }
    return MLXR_OK;
}

/* jinja2's do_title: split on runs of [-\s({[<], and capitalize each piece (first char upper,
 * the rest lower). */
mlxr_status jstr_title(jrt *rt, jbuf *b, const char *s, size_t n) {
    bool start = true;
    for (size_t i = 0; i < n;) {
        size_t w;
        uint32_t c = jutf8_decode(s + i, n - i, &w);
        bool sep = cp_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
        mlxr_status st = sep ? jbuf_put(rt, b, s + i, w) : put_case(rt, b, s + i, w, c, start);
        if (st) return st;
        start = sep;
        i += w;
    }
    return MLXR_OK;
}
