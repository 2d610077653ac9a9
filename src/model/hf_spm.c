/*
 * hf_spm.c - the vocabulary of a Hugging Face model from its SentencePiece tokenizer.model, fed to
 * the same tokenizer code as GGUF's `llama` vocabularies (tokenizer/vocab.h), the way llama.cpp's
 * convert_hf_to_gguf.py maps it: every piece with its score and type (the type numbers are the
 * same), BOS/EOS/UNK from the trainer spec (config.json's ids win), add_bos_token/add_eos_token
 * from tokenizer_config.json (LlamaTokenizer's defaults: true/false), the dummy-prefix flag from
 * the normalizer spec, and unused [PADn] tokens up to the embedding's row count.
 *
 * tokenizer.model is a protobuf ModelProto. The fields read (all others skipped):
 *   ModelProto      1: repeated SentencePiece pieces   2: TrainerSpec   3: NormalizerSpec
 *   SentencePiece   1: string piece   2: float score   3: enum type (1 normal, 2 unknown,
 *                   3 control, 4 user-defined, 5 unused, 6 byte; default 1)
 *   TrainerSpec     3: enum model_type (1 unigram, 2 bpe, 3 word, 4 char; default 1)
 *                   40/41/42: int32 unk_id / bos_id / eos_id (defaults 0 / 1 / 2; -1 = none)
 *   NormalizerSpec  3: bool add_dummy_prefix (default true)
 * Wire format: each field is a varint key (number << 3 | wire type) and a value: type 0 varint,
 * 1 eight bytes, 2 varint length + bytes, 5 four bytes (little-endian). Everything is untrusted:
 * every length is checked against what is left.
 */
#include "model/hf_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/vocab_impl.h"
#include "util/err.h"
#include "util/file.h"

typedef struct pb {
    const uint8_t *p, *end;
} pb;

typedef struct pb_field {
    uint32_t num;
    int wt;
    uint64_t v;        /* varint / fixed value */
    const uint8_t *s;  /* wire type 2: the bytes */
    size_t len;
} pb_field;

static bool pb_varint(pb *b, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return false;
        uint8_t c = *b->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* Next field; false at the end (*bad set when the bytes are malformed). */
static bool pb_next(pb *b, pb_field *f, bool *bad) {
    *bad = false;
    if (b->p >= b->end) return false;
    uint64_t key;
    if (!pb_varint(b, &key) || key >> 3 == 0 || key >> 3 > UINT32_MAX) goto fail;
    f->num = (uint32_t)(key >> 3);
    f->wt = (int)(key & 7);
    f->s = NULL;
    f->len = 0;
    f->v = 0;
    switch (f->wt) {
    case 0:
        if (!pb_varint(b, &f->v)) goto fail;
        return true;
    case 1:
    case 5: {
        size_t n = f->wt == 1 ? 8 : 4;
        if ((size_t)(b->end - b->p) < n) goto fail;
        for (size_t i = 0; i < n; i++) f->v |= (uint64_t)b->p[i] << (8 * i);
        b->p += n;
        return true;
    }
    case 2: {
        uint64_t n;
        if (!pb_varint(b, &n) || n > (uint64_t)(b->end - b->p)) goto fail;
        f->s = b->p;
        f->len = (size_t)n;
        b->p += n;
        return true;
    }
    default:
        goto fail;
    }
fail:
    *bad = true;
    return false;
}

/* An int32 field written as a (sign-extended) varint. */
static int32_t pb_i32(const pb_field *f) {
    return (int32_t)(uint32_t)f->v;
}

typedef struct spm_model {
    int32_t n;             /* pieces */
    const char **text;     /* [n] into the file */
    size_t *len;
    float *score;
    int32_t *type;
    int model_type;
    int32_t unk, bos, eos;
    bool add_dummy_prefix;
} spm_model;

static mlxr_status parse_piece(const pb_field *outer, spm_model *s, int32_t i, mlxr_err *err) {
    pb b = {outer->s, outer->s + outer->len};
    pb_field f;
    bool bad;
    s->text[i] = "";
    s->len[i] = 0;
    s->score[i] = 0.0f;
    s->type[i] = MLXR_TOKEN_NORMAL;
    while (pb_next(&b, &f, &bad)) {
        if (f.num == 1 && f.wt == 2) {
            if (f.len > 1024)
                return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                                 "tokenizer.model: piece %d is %zu bytes long", i, f.len);
            s->text[i] = (const char *)f.s;
            s->len[i] = f.len;
        } else if (f.num == 2 && f.wt == 5) {
            uint32_t u = (uint32_t)f.v;
            memcpy(&s->score[i], &u, 4);
        } else if (f.num == 3 && f.wt == 0) {
            s->type[i] = f.v >= 1 && f.v <= 6 ? (int32_t)f.v : MLXR_TOKEN_NORMAL;
        }
    }
    if (bad) return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tokenizer.model: piece %d is malformed", i);
    return MLXR_OK;
}

static mlxr_status parse_spec(const pb_field *outer, spm_model *s, mlxr_err *err) {
    pb b = {outer->s, outer->s + outer->len};
    pb_field f;
    bool bad;
    while (pb_next(&b, &f, &bad)) {
        if (f.wt != 0) continue;
        if (outer->num == 2) {
            if (f.num == 3) s->model_type = (int)f.v;
            if (f.num == 40) s->unk = pb_i32(&f);
            if (f.num == 41) s->bos = pb_i32(&f);
            if (f.num == 42) s->eos = pb_i32(&f);
        } else if (f.num == 3) {
            s->add_dummy_prefix = f.v != 0;
        }
    }
    if (bad)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tokenizer.model: %s spec is malformed",
                         outer->num == 2 ? "trainer" : "normalizer");
    return MLXR_OK;
}

static mlxr_status parse_model(const uint8_t *data, size_t size, spm_model *s, mlxr_err *err) {
    s->model_type = 1;
    s->unk = 0, s->bos = 1, s->eos = 2;
    s->add_dummy_prefix = true;
    /* count the pieces first, then fill */
    pb b = {data, data + size};
    pb_field f;
    bool bad;
    size_t n = 0;
    while (pb_next(&b, &f, &bad))
        if (f.num == 1 && f.wt == 2) n++;
    if (bad) return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tokenizer.model: malformed protobuf");
    if (n == 0 || n > (1u << 24))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tokenizer.model: %zu pieces", n);
    s->text = calloc(n, sizeof *s->text);
    s->len = calloc(n, sizeof *s->len);
    s->score = calloc(n, sizeof *s->score);
    s->type = calloc(n, sizeof *s->type);
    if (!s->text || !s->len || !s->score || !s->type)
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for %zu pieces", n);
    b.p = data;
    mlxr_status st = MLXR_OK;
    while (st == MLXR_OK && pb_next(&b, &f, &bad)) {
        if (f.num == 1 && f.wt == 2) st = parse_piece(&f, s, s->n++, err);
        else if ((f.num == 2 || f.num == 3) && f.wt == 2) st = parse_spec(&f, s, err);
    }
    return st;
}

static void spm_free(spm_model *s) {
    free(s->text);
    free(s->len);
    free(s->score);
    free(s->type);
}

static int32_t id_or_none(int32_t id, int32_t n) {
    return id >= 0 && id < n ? id : -1;
}

/*
 * tokenizer_config.json's added_tokens_decoder ({"id": {"content": text, "special": bool}}) over
 * the pieces, as convert_hf_to_gguf.py applies it: the token's text becomes `content`, its type
 * CONTROL when special, else USER_DEFINED, its score -1000. Ids past the embedding are ignored
 * (as there); the SentencePiece UNKNOWN and BYTE pieces keep their types when the text agrees.
 * Texts point into the JSON, which outlives the vocabulary's construction.
 */
static mlxr_status apply_added(const json_t *added, int32_t n_pieces, int32_t n,
                               const char **texts, size_t *lens, float *scores, int32_t *types,
                               mlxr_err *err) {
    if (!added) return MLXR_OK;
    if (!json_is_object(added))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "tokenizer_config.json: added_tokens_decoder is not an object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)added, key, v) {
        char *end = NULL;
        long id = strtol(key, &end, 10);
        const char *text = json_string_value(json_object_get(v, "content"));
        if (!*key || *end || id < 0 || !text || strlen(text) > 1024)
            return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                             "tokenizer_config.json: added token '%.40s' is not {\"content\": "
                             "text of at most 1024 bytes} under a decimal id",
                             key);
        if (id >= n) continue;
        const size_t len = strlen(text);
        const bool same = lens[id] == len && !memcmp(texts[id], text, len);
        if (id < n_pieces && same &&
            (types[id] == MLXR_TOKEN_UNKNOWN || types[id] == MLXR_TOKEN_BYTE))
            continue;
        texts[id] = text;
        lens[id] = len;
        scores[id] = -1000.0f;
        types[id] = json_is_true(json_object_get(v, "special")) ? MLXR_TOKEN_CONTROL
                                                                : MLXR_TOKEN_USER_DEFINED;
    }
    return MLXR_OK;
}

mlxr_status mlxr_hf_spm_vocab(const void *data, size_t size, const mlxr_hf_spm_opts *o,
                              mlxr_vocab **out, mlxr_err *err) {
    *out = NULL;
    int32_t n_vocab = o->n_vocab;
    spm_model s = {0};
    char **pad = NULL;
    const char **texts = NULL;
    size_t *lens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    mlxr_status st = parse_model(data, size, &s, err);
    if (st != MLXR_OK) goto done;
    if (n_vocab == 0) n_vocab = s.n;
    if (s.model_type != 2) {
        st = MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                       "tokenizer.model: SentencePiece model type %d is not supported (only BPE, "
                       "type 2)",
                       s.model_type);
        goto done;
    }
    if (s.n > n_vocab) {
        st = MLXR_FAIL(err, MLXR_ERR_FORMAT,
                       "tokenizer.model has %d pieces, more than config.json's vocab_size %d", s.n,
                       n_vocab);
        goto done;
    }
    /* a checkpoint pads its embedding by a few rows (to a multiple of 64, say); a vocab_size far
     * beyond the pieces is an error, not millions of [PADn] tokens */
    if ((int64_t)n_vocab - s.n > (s.n > 1024 ? s.n : 1024)) {
        st = MLXR_FAIL(err, MLXR_ERR_FORMAT,
                       "config.json's vocab_size %d is far beyond tokenizer.model's %d pieces",
                       n_vocab, s.n);
        goto done;
    }
    /* pad up to the embedding's rows as convert_hf_to_gguf.py does ([PADn], unused) */
    const int32_t n = n_vocab;
    if (n > (1 << 24)) {
        st = MLXR_FAIL(err, MLXR_ERR_FORMAT, "vocabulary of %d tokens is too large", n);
        goto done;
    }
    texts = calloc((size_t)n, sizeof *texts);
    lens = calloc((size_t)n, sizeof *lens);
    scores = calloc((size_t)n, sizeof *scores);
    types = calloc((size_t)n, sizeof *types);
    pad = calloc((size_t)(n - s.n) + 1, sizeof *pad);
    if (!texts || !lens || !scores || !types || !pad) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for %d tokens", n);
        goto done;
    }
    for (int32_t i = 0; i < n; i++) {
        if (i < s.n) {
            texts[i] = s.text[i], lens[i] = s.len[i], scores[i] = s.score[i], types[i] = s.type[i];
            continue;
        }
        char buf[32];
        int k = snprintf(buf, sizeof buf, "[PAD%d]", i);
        pad[i - s.n] = strdup(buf);
        if (!pad[i - s.n]) {
            st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
            goto done;
        }
        texts[i] = pad[i - s.n], lens[i] = (size_t)k, scores[i] = -1000.0f;
        types[i] = MLXR_TOKEN_UNUSED;
    }
    if ((st = apply_added(o->added, s.n, n, texts, lens, scores, types, err)) != MLXR_OK) goto done;
    mlxr_vocab_spec spec = mlxr_vocab_spec_default(n);
    spec.texts = texts;
    spec.lens = lens;
    spec.scores = scores;
    spec.types = types;
    spec.unk = id_or_none(s.unk, n);
    spec.bos = id_or_none(o->bos >= 0 ? o->bos : s.bos, n);
    spec.eos = id_or_none(o->eos >= 0 ? o->eos : s.eos, n);
    spec.eot = id_or_none(o->eot, n);
    spec.add_bos = o->add_bos >= 0 ? o->add_bos == 1 : spec.bos >= 0;
    spec.add_eos = o->add_eos == 1;
    spec.add_space_prefix = s.add_dummy_prefix;
    spec.name = o->name;
    if (spec.add_bos && spec.bos < 0) spec.add_bos = false;
    if (spec.add_eos && spec.eos < 0) spec.add_eos = false;
    st = mlxr_vocab_new(&spec, out, err);
done:
    for (int32_t i = 0; pad && i < n_vocab - s.n; i++) free(pad[i]);
    free(pad);
    free(texts);
    free(lens);
    free(scores);
    free(types);
    spm_free(&s);
    return st;
}

/* tokenizer_config.json's add_bos_token / add_eos_token (-1 when absent) and added tokens; *tc
 * keeps the JSON alive for o->added (the caller frees it). */
static mlxr_status read_flags(const mlxr_hf *h, mlxr_hf_spm_opts *o, json_t **tc, mlxr_err *err) {
    o->add_bos = o->add_eos = -1;
    o->added = NULL;
    mlxr_status st = mlxr_hf_read_json(h, "tokenizer_config.json", false, tc, err);
    if (st != MLXR_OK || !*tc) return st;
    const json_t *b = json_object_get(*tc, "add_bos_token"), *e = json_object_get(*tc, "add_eos_token");
    if (json_is_boolean(b)) o->add_bos = json_is_true(b);
    if (json_is_boolean(e)) o->add_eos = json_is_true(e);
    o->added = json_object_get(*tc, "added_tokens_decoder");
    return MLXR_OK;
}

mlxr_status mlxr_hf_load_vocab(mlxr_model *m, mlxr_hf *h, int32_t n_vocab, mlxr_err *err) {
    char path[4200];
    if (!mlxr_hf_join(h, "tokenizer.model", path, sizeof path))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "model path too long");
    mlxr_hf_spm_opts o = {n_vocab, h->cfg_bos, h->cfg_eos, h->cfg_eot, -1, -1, NULL, m->name};
    json_t *tc = NULL;
    mlxr_status st = read_flags(h, &o, &tc, err);
    if (st != MLXR_OK) return st;
    mlxr_mmap map = {0};
    st = mlxr_file_map(path, &map, err);
    if (st != MLXR_OK) json_decref(tc);
    if (st == MLXR_ERR_IO) {
        char why[MLXR_ERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", err ? err->msg : "");
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "tokenizer.model cannot be read: %s", why);
    }
    if (st != MLXR_OK) return st;
    st = mlxr_hf_spm_vocab(map.data, map.size, &o, &m->vocab, err);
    json_decref(tc);
    mlxr_file_unmap(&map);
    return st;
}
