/*
 * chat.c - `mlxr run` as an interactive chat, as `ollama run` and llama.cpp's conversation mode:
 * `mlxr run -m MODEL` with a terminal on stdin and no -p, or -i (then stdin may be a pipe: one
 * user message per line, or several lines between """ marks). Commands: /bye, /clear,
 * /set parameter NAME VALUE, /set system TEXT, /help (/?); EOF ends the chat; Ctrl-C stops the
 * reply being generated, twice at the prompt exits.
 *
 * Each turn renders the whole conversation with the model's chat template (ChatML when it has
 * none) through mlxr_chat_apply_template and tokenizes it with parse_special, exactly as the
 * daemon does, so a turn's tokens are those a one-shot run of the rendered text sees (a message
 * holding control-token text such as "</s>" is kept as text by the daemon's segmented
 * tokenization instead, see tokenize_segmented). The KV cache of sequence 0 is kept between
 * turns together with the tokens it holds: only the tokens after the longest common prefix of
 * the cache and the new prompt are run (mlxr_kv_truncate drops the rest), which for most
 * templates is just the new user turn, and for a template that re-renders earlier turns
 * differently (or a reply that re-tokenizes differently) starts from the first differing token.
 * Replies stream through the streaming detokenizer; a reply ends at an end-of-generation token, at
 * num_predict tokens, at a full context, or (models without a template only, as in the daemon) at
 * ChatML's end markers written as text.
 *
 * Invariant: kv[0..n_kv) are exactly the tokens sequence 0 of the context holds.
 */
#include "cli.h"

#include "server/stopmatch.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set by SIGINT: a signal handler can only talk through a flag (checked once per token). */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct chat {
    mlxr_model *m;
    mlxr_context *c;
    mlxr_sampler_opts so;
    long n_predict; /* tokens per reply; < 0: until EOG or a full context */
    int32_t n_ctx, n_vocab;
    json_t *msgs; /* the conversation: [{"role", "content"}...] */
    char *system; /* system message (owned) or NULL */
    int32_t *kv;  /* [n_kv] the tokens sequence 0's KV cache holds */
    size_t n_kv, cap_kv;
    bool has_template, tty;
} chat;

static void chat_help(void) {
    printf("Available commands:\n"
           "  /set parameter NAME VALUE  temperature, top_k, top_p, min_p, repeat_penalty, seed,\n"
           "                             num_predict (-1: until the model ends its turn)\n"
           "  /set system TEXT           replace the system message (clears the conversation)\n"
           "  /clear                     forget the conversation (the system message stays)\n"
           "  /bye                       exit (also Ctrl-D)\n"
           "  /?, /help                  this help\n"
           "Begin a message with \"\"\" to write it over several lines, up to a line ending "
           "with \"\"\".\n"
           "Ctrl-C stops a reply; Ctrl-C twice at the prompt exits.\n");
}

/* Tokenize; malloc'ed ids or NULL with the error printed. */
static int32_t *tok(const mlxr_model *m, const char *s, size_t len, bool bos, bool special,
                    size_t *n) {
    size_t cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    mlxr_err err = {0};
    mlxr_status st =
        ids ? mlxr_tokenize(m, s, len, bos, special, ids, cap, n, &err) : MLXR_ERR_NOMEM;
    if (st == MLXR_ERR_RANGE) {
        int32_t *p = realloc(ids, (*n ? *n : 1) * sizeof *ids);
        st = p ? mlxr_tokenize(m, s, len, bos, special, p, *n, n, &err) : MLXR_ERR_NOMEM;
        ids = p ? p : ids;
    }
    if (st != MLXR_OK) {
        cli_error("cannot tokenize: %s", err.msg[0] ? err.msg : mlxr_status_str(st));
        free(ids);
        return NULL;
    }
    return ids;
}

/* True when `s` holds control-token text (it tokenizes differently with parse_special): the
 * rendered prompt is tokenized with parse_special, which would turn it into a control token. */
static bool has_special_text(const mlxr_model *m, const char *s) {
    size_t na = 0, nb = 0, len = strlen(s);
    int32_t *a = tok(m, s, len, false, true, &na),
            *b = a ? tok(m, s, len, false, false, &nb) : NULL;
    bool has = !b || na != nb || memcmp(a, b, na * sizeof *a) != 0;
    free(a);
    free(b);
    return has;
}

/* Start over: no messages but the system message, an empty KV cache. */
static bool chat_reset(chat *ch) {
    json_decref(ch->msgs);
    ch->msgs = json_array();
    if (!ch->msgs) return false;
    if (ch->system && json_array_append_new(ch->msgs, json_pack("{s:s,s:s}", "role", "system",
                                                                "content", ch->system)) != 0)
        return false;
    mlxr_kv_clear(ch->c, 0);
    ch->n_kv = 0;
    return true;
}

/* Render `msgs` with the model's template and a generation prompt; false with the error printed. */
static bool render(chat *ch, json_t *msgs, char **text, size_t *len) {
    char *vars = json_dumps(msgs, JSON_COMPACT);
    mlxr_err err = {0};
    mlxr_status st =
        vars ? mlxr_chat_apply_template(ch->m, vars, strlen(vars), true, text, len, &err)
             : MLXR_ERR_NOMEM;
    free(vars);
    if (st != MLXR_OK) cli_error("chat template: %s", err.msg[0] ? err.msg : mlxr_status_str(st));
    return st == MLXR_OK;
}

/* Append the tokens of s[0..len) to *ids (n, cap). */
static bool ids_add(chat *ch, int32_t **ids, size_t *n, size_t *cap, const char *s, size_t len,
                    bool special) {
    size_t k = 0;
    if (len == 0) return true;
    int32_t *t = tok(ch->m, s, len, false, special, &k);
    if (!t) return false;
    if (*n + k > *cap) {
        size_t nc = (*n + k) * 2 + 16;
        int32_t *p = realloc(*ids, nc * sizeof *p);
        if (!p) {
            free(t);
            return !cli_error("out of memory");
        }
        *ids = p;
        *cap = nc;
    }
    memcpy(*ids + *n, t, k * sizeof *t);
    *n += k;
    free(t);
    return true;
}

/*
 * A conversation whose contents hold control-token text, tokenized as the daemon does it
 * (src/server/models.c): the template is rendered again with each content replaced by a unique
 * marker; where the contents put back in place of the markers give exactly `text`, the template's
 * text between them is tokenized with parse_special and each content without it, so what a user
 * typed stays text. A template that changes a content (trims, splits it) cannot be segmented:
 * NULL with an error, and the message is not sent.
 */
static int32_t *tokenize_segmented(chat *ch, const char *text, size_t text_len, size_t *n) {
    size_t nm = json_array_size(ch->msgs), at = 0, ti = 0, cap = 0;
    char(*markers)[48] = calloc(nm ? nm : 1, sizeof *markers), *mk = NULL;
    json_t *copy = json_deep_copy(ch->msgs);
    int32_t *ids = NULL;
    bool ok = markers && copy;
    /* private-use characters around a per-call nonce: no template trims them, no text holds them */
    unsigned long long nonce =
        (unsigned long long)time(NULL) * 0x9e3779b97f4a7c15ull ^ (unsigned)getpid();
    for (size_t i = 0; ok && i < nm; i++) {
        snprintf(markers[i], sizeof markers[i], "\xee\x80\x80mlxr%016llx.%zu\xee\x80\x81", nonce,
                 i);
        ok = json_object_set_new(json_array_get(copy, i), "content", json_string(markers[i])) == 0;
    }
    size_t mk_len = 0;
    bool mismatch = false; /* the renderings do not line up */
    if (!ok) cli_error("out of memory");
    ok = ok && render(ch, copy, &mk, &mk_len);
    *n = 0;
    while (ok) {
        const char *best = NULL; /* the next marker in mk */
        size_t bi = 0;
        for (size_t i = 0; i < nm; i++) {
            const char *p = strstr(mk + at, markers[i]);
            if (p && (!best || p < best)) best = p, bi = i;
        }
        size_t seg = best ? (size_t)(best - (mk + at)) : strlen(mk + at);
        if (ti + seg > text_len || memcmp(text + ti, mk + at, seg) != 0) mismatch = true;
        if (mismatch || !(ok = ids_add(ch, &ids, n, &cap, mk + at, seg, true))) break;
        at += seg;
        ti += seg;
        if (!best) break;
        const char *c = json_string_value(json_object_get(json_array_get(ch->msgs, bi), "content"));
        size_t cl = c ? strlen(c) : 0;
        if (ti + cl > text_len || memcmp(text + ti, c, cl) != 0) mismatch = true;
        if (mismatch || !(ok = ids_add(ch, &ids, n, &cap, c, cl, false))) break;
        at += strlen(markers[bi]);
        ti += cl;
    }
    if (ok && ti != text_len) mismatch = true;
    ok = ok && !mismatch;
    if (mismatch)
        cli_error("the conversation holds control-token text (such as a chat template marker) and "
                  "this model's template does not pass message contents through unchanged, so it "
                  "cannot be kept as plain text; not sent");
    mlxr_free(mk);
    json_decref(copy);
    free(markers);
    if (!ok) {
        free(ids);
        return NULL;
    }
    return ids ? ids : calloc(1, sizeof *ids);
}

/* The token ids of the conversation rendered with a generation prompt, as the daemon makes
 * them: the template's text tokenized with parse_special (segmented when a content holds
 * control-token text), BOS in front if the model wants one and the template did not write it.
 * NULL with the error printed. */
static int32_t *chat_prompt(chat *ch, size_t *n) {
    char *text = NULL;
    size_t text_len = 0, nb = 0;
    if (!render(ch, ch->msgs, &text, &text_len)) return NULL;
    bool special = false;
    for (size_t i = 0; i < json_array_size(ch->msgs) && !special; i++) {
        const char *c = json_string_value(json_object_get(json_array_get(ch->msgs, i), "content"));
        special = c && has_special_text(ch->m, c);
    }
    int32_t *ids = special ? tokenize_segmented(ch, text, text_len, n)
                           : tok(ch->m, text, text_len, false, true, n);
    int32_t *bos = ids ? tok(ch->m, "", 0, true, false, &nb) : NULL;
    mlxr_free(text);
    if (ids && nb == 1 && (*n == 0 || ids[0] != bos[0])) {
        int32_t *p = realloc(ids, (*n + 1) * sizeof *p);
        if (p) {
            memmove(p + 1, p, *n * sizeof *p);
            p[0] = bos[0];
            (*n)++;
        } else {
            free(ids);
            cli_error("out of memory");
        }
        ids = p;
    }
    free(bos);
    return ids;
}

static bool kv_push(chat *ch, int32_t t) {
    if (ch->n_kv == ch->cap_kv) {
        size_t nc = ch->cap_kv * 2 + 256;
        int32_t *p = realloc(ch->kv, nc * sizeof *p);
        if (!p) return false;
        ch->kv = p;
        ch->cap_kv = nc;
    }
    ch->kv[ch->n_kv++] = t;
    return true;
}

/* Bring the KV cache to hold ids[0..n): keep the common prefix, run the rest (at least the last
 * token, whose logits are needed). *last: the logits' batch index; *reused: the prefix kept. */
static bool chat_prefill(chat *ch, const int32_t *ids, size_t n, int32_t *last, size_t *reused) {
    size_t p = 0;
    while (p < n && p < ch->n_kv && ids[p] == ch->kv[p])
        p++;
    if (p == n) p = n - 1;
    *reused = p;
    mlxr_err err = {0};
    if (p < ch->n_kv) {
        if (mlxr_kv_truncate(ch->c, 0, (int32_t)p, &err) != MLXR_OK) {
            cli_error("%s", err.msg);
            return false;
        }
        ch->n_kv = p;
    }
    if (cli_decode(ch->c, ids + p, (int32_t)(n - p), (int32_t)p, 512, last, &err) != MLXR_OK) {
        /* earlier batches may have gone in: cut back to what is known */
        cli_error("prompt failed: %s", err.msg);
        mlxr_kv_truncate(ch->c, 0, (int32_t)p, NULL);
        return false;
    }
    for (size_t i = p; i < n; i++)
        if (!kv_push(ch, ids[i])) {
            mlxr_kv_truncate(ch->c, 0, (int32_t)p, NULL);
            ch->n_kv = p;
            cli_error("out of memory");
            return false;
        }
    return true;
}

/* Growable byte buffer. */
typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static bool buf_add(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = (b->n + n + 1) * 2;
        char *p = realloc(b->p, nc);
        if (!p) return false;
        b->p = p;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

/* Text of generated bytes through the stop matcher to stdout and the reply. True once a stop
 * string was found. */
static bool emit(mlxr_stopmatch *sm, const char *s, size_t n, buf *tmp, buf *reply) {
    size_t need = mlxr_stopmatch_need(sm, n), out = 0;
    if (need > tmp->cap) {
        char *p = realloc(tmp->p, need);
        if (!p) return true; /* out of memory: end the reply rather than lose text silently */
        tmp->p = p;
        tmp->cap = need;
    }
    bool stop = n ? mlxr_stopmatch_feed(sm, s, n, tmp->p, tmp->cap, &out)
                  : (mlxr_stopmatch_flush(sm, tmp->p, tmp->cap, &out), false);
    fwrite(tmp->p, 1, out, stdout);
    fflush(stdout);
    buf_add(reply, tmp->p, out);
    return stop;
}

/* One detokenizer push with a buffer that grows as the stream asks. */
static void detok(mlxr_detok_stream *ds, int32_t t, bool flush, buf *piece) {
    size_t n = 0;
    mlxr_status st;
    piece->n = 0;
    for (;;) {
        st = flush ? mlxr_detok_stream_flush(ds, piece->p, piece->cap, &n, NULL)
                   : mlxr_detok_stream_push(ds, t, piece->p, piece->cap, &n, NULL);
        if (st != MLXR_ERR_RANGE) break;
        char *p = realloc(piece->p, n);
        if (!p) return;
        piece->p = p;
        piece->cap = n;
    }
    if (st == MLXR_OK) piece->n = n;
}

/* Generate and stream one reply after the prompt ids[0..n) (already in the cache); the reply's
 * text (stop strings cut) goes to *reply, the number of tokens sampled to *n_gen. */
static bool chat_generate(chat *ch, const int32_t *ids, size_t n, int32_t last, buf *reply,
                          long *n_gen) {
    static const char *const chatml_stops[] = {"<|im_end|>", "<|im_start|>"};
    mlxr_sampler *s = NULL;
    mlxr_detok_stream *ds = NULL;
    mlxr_stopmatch sm;
    mlxr_err err = {0};
    buf piece = {malloc(256), 0, 256}, tmp = {0};
    bool ok = piece.p && mlxr_sampler_new(&ch->so, ch->n_vocab, &s, &err) == MLXR_OK &&
              mlxr_detok_stream_new(ch->m, false, &ds, &err) == MLXR_OK &&
              mlxr_stopmatch_init(&sm, chatml_stops, ch->has_template ? 0 : 2, &err) == MLXR_OK;
    if (!ok) {
        cli_error("%s", err.msg[0] ? err.msg : "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        mlxr_sampler_accept(s, ids[i]);
    bool stopped = false;
    int32_t pos = (int32_t)n;
    for (*n_gen = 0; !stopped && (ch->n_predict < 0 || *n_gen < ch->n_predict);) {
        if (interrupted) break;
        int32_t t = mlxr_sampler_sample(s, mlxr_get_logits(ch->c, last));
        ++*n_gen;
        if (mlxr_token_is_eog(ch->m, t)) break;
        mlxr_sampler_accept(s, t);
        detok(ds, t, false, &piece);
        if ((stopped = emit(&sm, piece.p, piece.n, &tmp, reply))) break;
        if (*n_gen == ch->n_predict) break; /* no need to run the last token */
        if (pos >= ch->n_ctx) {
            fprintf(stderr,
                    "\nmlxr: the context of %d tokens is full: reply cut (/clear starts "
                    "over)\n",
                    ch->n_ctx);
            break;
        }
        if (cli_decode(ch->c, &t, 1, pos, 1, &last, &err) != MLXR_OK) {
            cli_error("decode failed: %s", err.msg);
            break;
        }
        pos++;
        if (!kv_push(ch, t)) {
            mlxr_kv_truncate(ch->c, 0, (int32_t)ch->n_kv, NULL);
            break;
        }
    }
    if (!stopped) {
        detok(ds, 0, true, &piece);
        if (!emit(&sm, piece.p, piece.n, &tmp, reply)) emit(&sm, NULL, 0, &tmp, reply);
    }
    mlxr_stopmatch_free(&sm);
done:
    mlxr_detok_stream_free(ds);
    mlxr_sampler_free(s);
    free(piece.p);
    free(tmp.p);
    return ok;
}

/* Append a message; false (printed) when the text cannot be a JSON string (invalid UTF-8). */
static bool add_msg(chat *ch, const char *role, const char *text, size_t len) {
    json_t *t = json_stringn(text, len);
    if (!t) {
        cli_error("the message is not valid UTF-8");
        return false;
    }
    return json_array_append_new(ch->msgs, json_pack("{s:s,s:o}", "role", role, "content", t)) == 0;
}

/* One user message: render, run what the cache lacks, stream the reply, remember it. */
static void chat_turn(chat *ch, const char *line) {
    if (!add_msg(ch, "user", line, strlen(line))) return;
    size_t n = 0;
    int32_t *ids = chat_prompt(ch, &n), last = 0;
    size_t reused = 0;
    long n_gen = 0;
    double t0 = cli_now_s(), t1 = t0;
    if (ids && n >= (size_t)ch->n_ctx) {
        cli_error("the conversation with this message has %zu tokens, more than the context of "
                  "%d; message not sent (/clear starts over)",
                  n, ch->n_ctx);
    } else if (ids && n > 0 && chat_prefill(ch, ids, n, &last, &reused)) {
        buf reply = {0};
        t1 = cli_now_s();
        if (chat_generate(ch, ids, n, last, &reply, &n_gen)) {
            fputs(ch->tty ? "\n\n" : "\n", stdout);
            fflush(stdout);
            double t2 = cli_now_s();
            if (!ch->tty) /* as run's timing line; a terminal chat stays uncluttered */
                fprintf(stderr,
                        "mlxr: prompt %zu tokens (%zu from the cache) in %.3f s | "
                        "generated %ld tokens in %.3f s (%.1f tok/s)\n",
                        n, reused, t1 - t0, n_gen, t2 - t1, n_gen > 0 ? n_gen / (t2 - t1) : 0.0);
            size_t sl = 0;
            char *clean = mlxr_utf8_sanitize(reply.p ? reply.p : "", reply.n, &sl);
            if (clean && add_msg(ch, "assistant", clean, sl)) {
                free(clean);
                free(reply.p);
                free(ids);
                return;
            }
            free(clean);
        }
        free(reply.p);
    }
    free(ids);
    json_array_remove(ch->msgs, json_array_size(ch->msgs) - 1); /* the turn did not happen */
}

/* /set parameter NAME VALUE: Ollama's names. */
static void set_param(chat *ch, const char *name, const char *value) {
    double d;
    long l;
    mlxr_sampler_opts *so = &ch->so;
    if (!strcmp(name, "temperature")) {
        if (!cli_float(name, value, 0, 1e6, &d)) return;
        so->temp = (float)d;
    } else if (!strcmp(name, "top_k")) {
        if (!cli_int(name, value, 0, 1 << 30, &l)) return;
        so->top_k = (int32_t)l;
    } else if (!strcmp(name, "top_p")) {
        if (!cli_float(name, value, 0, 1, &d)) return;
        so->top_p = (float)d;
    } else if (!strcmp(name, "min_p")) {
        if (!cli_float(name, value, 0, 1, &d)) return;
        so->min_p = (float)d;
    } else if (!strcmp(name, "repeat_penalty")) {
        if (!cli_float(name, value, 1e-3, 1e3, &d)) return;
        so->repeat_penalty = (float)d;
    } else if (!strcmp(name, "seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(value, &end, 10);
        if (errno || end == value || *end || value[0] == '-') {
            cli_error("seed expects a non-negative integer, got '%s'", value);
            return;
        }
        so->seed = s;
    } else if (!strcmp(name, "num_predict")) {
        if (!cli_int(name, value, -1, 1 << 30, &l)) return;
        ch->n_predict = l;
    } else {
        cli_error("unknown parameter '%s' (temperature, top_k, top_p, min_p, repeat_penalty, "
                  "seed, num_predict)",
                  name);
        return;
    }
    printf("Set parameter '%s' to '%s'\n", name, value);
}

/* A line starting with '/'. False for /bye. */
static bool chat_command(chat *ch, char *line) {
    char *cmd = strtok(line, " \t"), *rest = strtok(NULL, "");
    while (rest && (*rest == ' ' || *rest == '\t'))
        rest++;
    if (!strcmp(cmd, "/bye") || !strcmp(cmd, "/exit")) return false;
    if (!strcmp(cmd, "/?") || !strcmp(cmd, "/help")) {
        chat_help();
    } else if (!strcmp(cmd, "/clear")) {
        if (chat_reset(ch)) printf("Cleared session context\n");
    } else if (!strcmp(cmd, "/set") && rest && !strncmp(rest, "system ", 7)) {
        free(ch->system);
        ch->system = strdup(rest + 7);
        if (ch->system && chat_reset(ch)) printf("Set system message.\n");
    } else if (!strcmp(cmd, "/set") && rest && !strncmp(rest, "parameter", 9)) {
        char *name = strtok(rest + 9, " \t"), *value = strtok(NULL, " \t");
        if (!name || !value)
            cli_error("usage: /set parameter NAME VALUE");
        else
            set_param(ch, name, value);
    } else {
        printf("Unknown command '%s'. Type /? for help\n", cmd);
    }
    fflush(stdout);
    return true;
}

/* Read lines until /bye or EOF. Ctrl-C at the prompt: a hint, a second one in a row exits.
 * As in Ollama, a message that starts with """ goes on over lines until one ending with """. */
static void chat_loop(chat *ch) {
    char *line = NULL;
    size_t cap = 0, n_lines = 0; /* lines of a """ message so far */
    buf msg = {0};
    bool multi = false;
    int n_int = 0;
    for (;;) {
        if (ch->tty) {
            fputs(multi ? "... " : ">>> ", stdout);
            fflush(stdout);
        }
        interrupted = 0;
        errno = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0 && errno == EINTR && interrupted) {
            clearerr(stdin);
            multi = false; /* Ctrl-C drops a message being typed */
            if (++n_int >= 2) {
                putchar('\n');
                break;
            }
            printf("\nUse Ctrl + d or /bye to exit.\n");
            continue;
        }
        if (n < 0) {
            if (ch->tty) putchar('\n');
            break;
        }
        n_int = 0;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (strlen(line) != (size_t)n) {
            cli_error("the message contains a NUL byte; not sent");
            multi = false;
            continue;
        }
        char *text = line;
        if (!multi && !strncmp(line, "\"\"\"", 3)) {
            multi = true;
            msg.n = n_lines = 0;
            text += 3;
            n -= 3;
            if (n == 0) continue; /* the opening line holds no text */
        }
        if (multi) {
            bool last = n >= 3 && !strcmp(text + n - 3, "\"\"\"");
            if (last) n -= 3;
            if ((n_lines++ > 0 && !buf_add(&msg, "\n", 1)) || !buf_add(&msg, text, (size_t)n)) {
                cli_error("out of memory");
                multi = false;
                continue;
            }
            if (!last) continue;
            multi = false;
            if (msg.n > 0) chat_turn(ch, msg.p);
            continue;
        }
        if (n == 0) continue;
        if (line[0] == '/') {
            if (!chat_command(ch, line)) break;
            continue;
        }
        chat_turn(ch, line);
    }
    free(msg.p);
    free(line);
}

int cli_chat(mlxr_model *m, const cli_chat_opts *o) {
    const mlxr_model_info *info = mlxr_model_get_info(m);
    chat ch = {.m = m,
               .so = o->so,
               .n_predict = o->n_predict,
               .n_vocab = info->n_vocab,
               .tty = isatty(STDIN_FILENO) == 1};
    ch.n_ctx = o->n_ctx ? (int32_t)o->n_ctx : info->n_ctx_train;
    if (!o->n_ctx && ch.n_ctx > 4096) ch.n_ctx = 4096;
    char *tmpl = NULL;
    ch.has_template = mlxr_model_chat_template(m, &tmpl, NULL) == MLXR_OK;
    mlxr_free(tmpl);
    mlxr_context_opts co = mlxr_context_default_opts();
    co.n_ctx = ch.n_ctx;
    co.n_threads = (int32_t)o->threads;
    co.n_gpu_layers = (int32_t)o->n_gpu_layers;
    co.kv_type = o->kv_type;
    co.batch_invariant = o->batch_invariant;
    mlxr_err err = {0};
    int rc = 1;
    if (mlxr_context_new(m, &co, &ch.c, &err) != MLXR_OK) {
        cli_error("%s", err.msg);
        return 1;
    }
    if (o->system && !(ch.system = strdup(o->system))) goto done;
    if (!chat_reset(&ch)) {
        cli_error("out of memory");
        goto done;
    }
    /* no SA_RESTART: Ctrl-C must interrupt a getline() waiting at the prompt */
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    if (ch.tty)
        fprintf(stderr,
                "mlxr: chatting with %s (context %d tokens). /? for help, /bye or "
                "Ctrl-D to exit.\n",
                info->name[0] ? info->name : "the model", ch.n_ctx);
    chat_loop(&ch);
    sigaction(SIGINT, &old, NULL);
    rc = 0;
done:
    json_decref(ch.msgs);
    free(ch.system);
    free(ch.kv);
    mlxr_context_free(ch.c);
    return rc;
}
