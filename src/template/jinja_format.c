/*
 * jinja_format.c - Python's printf-style string formatting: `fmt % args` and jinja2's
 * `fmt|format(args)`. Conversions: s (str), r/a (repr), d/i/u (int), f/F, e/E, g/G (float),
 * x/X/o (int in base 16/8), c (char), % (literal); flags '-', '0', '+', ' ', '#'; width and
 * precision as numbers or '*'. Mapping keys (%(name)s) are not supported. Errors carry Python's
 * messages ("not enough arguments for format string", ...).
 */
#include "template/template.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define TRY(x)                                                                                     \
    do {                                                                                           \
        mlxr_status st_ = (x);                                                                     \
        if (st_) return st_;                                                                       \
    } while (0)

/* Pad `s` (n bytes, cps code points) to width: left-justified with '-', else right. */
static mlxr_status pad(jrt *rt, jbuf *b, const char *s, size_t n, size_t cps, int64_t width,
                       bool left) {
    size_t fill = width > 0 && (size_t)width > cps ? (size_t)width - cps : 0;
    if (fill > rt->lim.max_output) return jfail(rt, MLXR_ERR_RANGE, "format width too large");
    for (size_t i = 0; i < fill && !left; i++)
        TRY(jbuf_putc(rt, b, ' '));
    TRY(jbuf_put(rt, b, s, n));
    for (size_t i = 0; i < fill && left; i++)
        TRY(jbuf_putc(rt, b, ' '));
    return MLXR_OK;
}

static mlxr_status next_arg(jrt *rt, const jv *args, size_t n, size_t *k, jv *out) {
    if (*k >= n) return jfail(rt, MLXR_ERR_INVALID, "not enough arguments for format string");
    *out = args[(*k)++];
    return MLXR_OK;
}

static mlxr_status number_conv(jrt *rt, jbuf *b, char conv, const char *flags, int64_t width,
                               int64_t prec, jv v) {
    if (!jv_is_num(v))
        return jfail(rt, MLXR_ERR_INVALID, "%%%c format: a real number is required, not %s", conv,
                     jv_type_name(v));
    char spec[32], tmp[512];
    int k = 0;
    spec[k++] = '%';
    for (const char *f = flags; *f && k < 8; f++)
        spec[k++] = *f;
    if (width > 200 || prec > 200) return jfail(rt, MLXR_ERR_RANGE, "format width too large");
    if (width >= 0) k += snprintf(spec + k, sizeof spec - (size_t)k, "%d", (int)width);
    if (prec >= 0) k += snprintf(spec + k, sizeof spec - (size_t)k, ".%d", (int)prec);
    int n;
    if (strchr("diuxXoc", conv)) {
        double d = jv_num(v);
        if (v.t == JV_FLOAT && (!isfinite(d) || fabs(d) >= 9.2e18))
            return jfail(rt, MLXR_ERR_RANGE, "integer out of range in format");
        long long i = v.t == JV_FLOAT ? (long long)d : (long long)(v.t == JV_INT ? v.u.i : v.u.b);
        if (conv == 'c') {
            char enc[4];
            if (i < 0 || i > 0x10ffff) return jfail(rt, MLXR_ERR_RANGE, "%%c arg not in range");
            size_t w = jutf8_encode((uint32_t)i, enc);
            return pad(rt, b, enc, w, 1, width, strchr(flags, '-') != NULL);
        }
        spec[k++] = 'l';
        spec[k++] = 'l';
        spec[k++] = conv == 'u' || conv == 'i' ? 'd' : conv;
        spec[k] = '\0';
        n = snprintf(tmp, sizeof tmp, spec, i);
    } else {
        spec[k++] = conv;
        spec[k] = '\0';
        n = snprintf(tmp, sizeof tmp, spec, jv_num(v));
    }
    if (n < 0 || (size_t)n >= sizeof tmp)
        return jfail(rt, MLXR_ERR_RANGE, "formatted number too long");
    return jbuf_put(rt, b, tmp, (size_t)n);
}

mlxr_status jstr_percent_format(jrt *rt, const jstr *fmt, const jv *args, size_t n_args, jv *out) {
    jbuf b = {0};
    mlxr_status st = MLXR_OK;
    size_t k = 0;
    const char *s = fmt->s;
    size_t n = fmt->len;
    for (size_t i = 0; i < n && !st;) {
        const char *pct = memchr(s + i, '%', n - i);
        size_t stop = pct ? (size_t)(pct - s) : n;
        st = jbuf_put(rt, &b, s + i, stop - i);
        if (st || !pct) break;
        i = stop + 1;
        char flags[8];
        size_t nf = 0;
        while (i < n && strchr("-+ #0", s[i]) && s[i]) {
            if (nf < sizeof flags - 1) flags[nf++] = s[i];
            i++;
        }
        flags[nf] = '\0';
        int64_t width = -1, prec = -1;
        jv a;
        if (i < n && s[i] == '*') {
            i++;
            if ((st = next_arg(rt, args, n_args, &k, &a)) ||
                (st = jv_int_arg(rt, a, "* width", &width)))
                break;
        } else
            while (i < n && s[i] >= '0' && s[i] <= '9' && width < 100000)
                width = (width < 0 ? 0 : width * 10) + (s[i++] - '0');
        if (i < n && s[i] == '.') {
            i++;
            prec = 0;
            if (i < n && s[i] == '*') {
                i++;
                if ((st = next_arg(rt, args, n_args, &k, &a)) ||
                    (st = jv_int_arg(rt, a, "* precision", &prec)))
                    break;
            } else
                while (i < n && s[i] >= '0' && s[i] <= '9' && prec < 100000)
                    prec = prec * 10 + (s[i++] - '0');
        }
        while (i < n && (s[i] == 'l' || s[i] == 'h' || s[i] == 'L'))
            i++;
        if (i >= n) {
            st = jfail(rt, MLXR_ERR_INVALID, "incomplete format");
            break;
        }
        char conv = s[i++];
        if (conv == '%') {
            st = jbuf_putc(rt, &b, '%');
            continue;
        }
        if (conv == '(') {
            st = jfail(rt, MLXR_ERR_UNSUPPORTED, "%%(name) format keys are not supported");
            break;
        }
        if ((st = next_arg(rt, args, n_args, &k, &a))) break;
        bool left = strchr(flags, '-') != NULL;
        if (conv == 's' || conv == 'r' || conv == 'a') {
            jbuf t = {0};
            st = conv == 's' ? jv_to_str(rt, &t, a) : jv_repr(rt, &t, a);
            size_t len = t.n, cps;
            if (!st && prec >= 0) len = jstr_cp_offset(t.p, t.n, (size_t)prec);
            cps = t.p ? jstr_n_cp(t.p, len) : 0;
            if (!st) st = pad(rt, &b, t.p ? t.p : "", len, cps, width, left);
            jbuf_free(rt, &t);
        } else if (strchr("diuxXocfFeEgG", conv)) {
            st = number_conv(rt, &b, conv, flags, width, prec, a);
        } else {
            st = jfail(rt, MLXR_ERR_INVALID, "unsupported format character '%c'", conv);
        }
    }
    /* Python treats a lone argument with __getitem__ (dict, list, Undefined) as a %(key) mapping,
     * which may go unused */
    bool mapping = n_args == 1 && (args[0].t == JV_DICT || args[0].t == JV_UNDEF ||
                                   (args[0].t == JV_LIST && !args[0].u.l->tuple));
    if (!st && k < n_args && !mapping)
        st = jfail(rt, MLXR_ERR_INVALID, "not all arguments converted during string formatting");
    if (!st) st = jv_str(rt, b.p ? b.p : "", b.n, out);
    jbuf_free(rt, &b);
    return st;
}
