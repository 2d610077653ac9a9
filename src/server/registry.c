/*
 * registry.c - model catalog: SQLite rows + content-addressed blobs (see registry.h for the
 * layout and the atomicity argument).
 */
#include "server/registry.h"

#include "format/dtype.h"
#include "format/gguf.h"
#include "server/sha256.h"
#include "util/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct mlxr_registry {
    char *home;
    sqlite3 *db;
};

#define COLS "name, tag, path, format, arch, n_params, quant, size, sha256, n_ctx, " \
             "chat_template, created, last_used, modelfile"

static const char *schema =
    "CREATE TABLE IF NOT EXISTS models ("
    " name TEXT NOT NULL, tag TEXT NOT NULL,"
    " path TEXT NOT NULL,"           /* relative to HOME */
    " format TEXT NOT NULL, arch TEXT NOT NULL, n_params INTEGER NOT NULL,"
    " quant TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " n_ctx INTEGER NOT NULL, chat_template TEXT,"
    " created INTEGER NOT NULL, last_used INTEGER NOT NULL DEFAULT 0,"
    " modelfile TEXT,"                /* JSON (modelfile.h); added in a later version */
    " PRIMARY KEY (name, tag));";

/* A catalog made before the modelfile column: add it (rows read as NULL: no settings). */
static bool has_modelfile_column(sqlite3 *db) {
    sqlite3_stmt *st = NULL;
    bool has = sqlite3_prepare_v2(db, "SELECT modelfile FROM models LIMIT 0", -1, &st, NULL) ==
               SQLITE_OK;
    sqlite3_finalize(st);
    return has;
}

static int migrate(sqlite3 *db, char **msg) {
    if (has_modelfile_column(db)) return SQLITE_OK;
    int rc = sqlite3_exec(db, "ALTER TABLE models ADD COLUMN modelfile TEXT", NULL, NULL, msg);
    /* another process opening the same catalog may have added it first */
    if (rc != SQLITE_OK && has_modelfile_column(db)) {
        sqlite3_free(*msg);
        *msg = NULL;
        rc = SQLITE_OK;
    }
    return rc;
}

void mlxr_model_entry_clear(mlxr_model_entry *e) {
    if (!e) return;
    free(e->path);
    free(e->chat_template);
    free(e->modelfile);
    memset(e, 0, sizeof *e);
}

const char *mlxr_registry_default_home(void) {
    static char buf[PATH_MAX];
    const char *env = getenv("MLXR_HOME");
    if (env && *env) return env;
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && *xdg) {
        snprintf(buf, sizeof buf, "%s/mlxr", xdg);
        return buf;
    }
    const char *home = getenv("HOME");
    if (!home || !*home) return NULL;
    snprintf(buf, sizeof buf, "%s/.local/share/mlxr", home);
    return buf;
}

/* mkdir -p for one path (mode 0700 for directories we create). */
static mlxr_status mkdirs(const char *path, mlxr_err *err) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "path too long: %s", path);
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return MLXR_FAIL(err, MLXR_ERR_IO, "cannot create directory %s: %s", tmp,
                                 strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    return MLXR_OK;
}

static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Take the home's lock (blocking, or not: then returns -1 when someone else holds it). */
static int lock_home(const mlxr_registry *r, bool block) {
    char *p = path_join(r->home, "lock");
    int fd = p ? open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
    free(p);
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | (block ? 0 : LOCK_NB)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void unlock_home(int fd) {
    if (fd >= 0) close(fd); /* closing releases the flock */
}

static bool blob_referenced(mlxr_registry *r, const char *rel) {
    sqlite3_stmt *st;
    bool found = true; /* on error, keep the file */
    if (sqlite3_prepare_v2(r->db, "SELECT 1 FROM models WHERE path = ?", -1, &st, NULL) != SQLITE_OK)
        return true;
    sqlite3_bind_text(st, 1, rel, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) found = false;
    sqlite3_finalize(st);
    return found;
}

/* Remove files in `dir` (relative to home); blobs only when no row names them. */
static void sweep(mlxr_registry *r, const char *dir, bool only_unreferenced) {
    char *abs = path_join(r->home, dir);
    DIR *d = abs ? opendir(abs) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char rel[PATH_MAX];
        snprintf(rel, sizeof rel, "%s/%s", dir, de->d_name);
        if (only_unreferenced && blob_referenced(r, rel)) continue;
        char *p = path_join(r->home, rel);
        /* a download in progress (fetch.c) holds a flock on its file: leave it alone */
        int fd = p ? open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -1;
        if (p && (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) == 0)) unlink(p);
        if (fd >= 0) close(fd);
        free(p);
    }
    if (d) closedir(d);
    free(abs);
}

mlxr_status mlxr_registry_open(const char *home, mlxr_registry **out, mlxr_err *err) {
    *out = NULL;
    if (!home || !*home) return MLXR_FAIL(err, MLXR_ERR_INVALID, "no home directory (set --home or MLXR_HOME)");
    mlxr_registry *r = calloc(1, sizeof *r);
    if (!r || !(r->home = strdup(home))) {
        free(r);
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    }
    char *blobs = path_join(home, "models/blobs"), *tmp = path_join(home, "models/tmp");
    char *db = path_join(home, "catalog.db");
    mlxr_status st = !blobs || !tmp || !db ? MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory") : MLXR_OK;
    if (st == MLXR_OK) st = mkdirs(blobs, err);
    if (st == MLXR_OK) st = mkdirs(tmp, err);
    if (st == MLXR_OK && sqlite3_open_v2(db, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                                      SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot open catalog %s: %s", db,
                       r->db ? sqlite3_errmsg(r->db) : "out of memory");
    char *msg = NULL;
    if (st == MLXR_OK) {
        sqlite3_busy_timeout(r->db, 10000);
        if (sqlite3_exec(r->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                         &msg) != SQLITE_OK ||
            sqlite3_exec(r->db, schema, NULL, NULL, &msg) != SQLITE_OK ||
            migrate(r->db, &msg) != SQLITE_OK)
            st = MLXR_FAIL(err, MLXR_ERR_IO, "catalog %s: %s", db, msg ? msg : "error");
        sqlite3_free(msg);
    }
    free(blobs);
    free(tmp);
    free(db);
    if (st != MLXR_OK) {
        mlxr_registry_close(r);
        return st;
    }
    /* clean up after interrupted imports, unless one is running right now */
    int lk = lock_home(r, false);
    if (lk >= 0) {
        sweep(r, "models/tmp", false);
        sweep(r, "models/blobs", true);
        unlock_home(lk);
    }
    *out = r;
    return MLXR_OK;
}

void mlxr_registry_close(mlxr_registry *r) {
    if (!r) return;
    if (r->db) sqlite3_close(r->db);
    free(r->home);
    free(r);
}

const char *mlxr_registry_home(const mlxr_registry *r) { return r->home; }

static bool name_char(char c, bool tag) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-' || (!tag && c == '/');
}

mlxr_status mlxr_registry_parse_name(const char *s, char *name, char *tag, mlxr_err *err) {
    const char *colon = strrchr(s, ':');
    size_t nl = colon ? (size_t)(colon - s) : strlen(s);
    const char *t = colon ? colon + 1 : "latest";
    size_t tl = strlen(t);
    if (nl == 0 || nl > 100 || s[0] == '.' || s[0] == '-' || s[0] == '/')
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "invalid model name '%s': 1..100 characters of "
                         "A-Z a-z 0-9 . _ - /, not starting with . - or /", s);
    if (tl == 0 || tl > 60)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "invalid tag in '%s': 1..60 characters", s);
    for (size_t i = 0; i < nl; i++)
        if (!name_char(s[i], false) || (s[i] == '.' && i + 1 < nl && s[i + 1] == '.'))
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "invalid character in model name '%s'", s);
    for (size_t i = 0; i < tl; i++)
        if (!name_char(t[i], true))
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "invalid character in the tag of '%s'", s);
    memcpy(name, s, nl);
    name[nl] = '\0';
    memcpy(tag, t, tl + 1);
    return MLXR_OK;
}

mlxr_status mlxr_registry_describe(const char *path, mlxr_model_entry *out, mlxr_err *err) {
    mlxr_gguf *g = NULL;
    mlxr_status st = mlxr_gguf_open(path, &g, err);
    if (st != MLXR_OK) return st;
    mlxr_gguf_str s;
    snprintf(out->format, sizeof out->format, "gguf");
    if (mlxr_gguf_get_str(g, "general.architecture", &s, NULL) == MLXR_OK)
        snprintf(out->arch, sizeof out->arch, "%.*s", (int)(s.len < 63 ? s.len : 63), s.data);
    else snprintf(out->arch, sizeof out->arch, "unknown");
    char key[128];
    uint32_t u = 0;
    snprintf(key, sizeof key, "%s.context_length", out->arch);
    if (mlxr_gguf_get_u32(g, key, &u, NULL) == MLXR_OK && u <= INT32_MAX) out->n_ctx = (int32_t)u;
    if (mlxr_gguf_get_str(g, "tokenizer.chat_template", &s, NULL) == MLXR_OK &&
        (out->chat_template = malloc(s.len + 1))) {
        memcpy(out->chat_template, s.data, s.len);
        out->chat_template[s.len] = '\0';
    }
    /* parameters: all tensor elements; quantization: the type holding most bytes of matrices */
    uint64_t by_type[MLXR_DTYPE_COUNT] = {0};
    out->n_params = 0;
    for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
        const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
        int64_t ne = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) ne *= t->ne[d];
        out->n_params += ne;
        if (t->n_dims >= 2 && (int)t->type >= 0 && t->type < MLXR_DTYPE_COUNT)
            by_type[t->type] += t->nbytes;
    }
    int best = -1;
    for (int t = 0; t < MLXR_DTYPE_COUNT; t++)
        if (by_type[t] && (best < 0 || by_type[t] > by_type[best])) best = t;
    const char *qn = best >= 0 ? mlxr_dtype_name((mlxr_dtype)best) : NULL;
    snprintf(out->quant, sizeof out->quant, "%s", qn ? qn : "unknown");
    out->size = (int64_t)mlxr_gguf_file_size(g);
    mlxr_gguf_close(g);
    return MLXR_OK;
}

/* Hash a file (and fsync it when `sync`). */
static mlxr_status hash_file(const char *path, bool sync, char hex[65], mlxr_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return MLXR_FAIL(err, MLXR_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    mlxr_sha256 h;
    mlxr_sha256_init(&h);
    static _Thread_local char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) mlxr_sha256_update(&h, buf, (size_t)n);
    if (n == 0 && sync) fsync(fd);
    close(fd);
    if (n < 0) return MLXR_FAIL(err, MLXR_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    mlxr_sha256_hex(&h, hex);
    return MLXR_OK;
}

/* Copy src to a new file dst (O_EXCL), fsync'ed. */
static mlxr_status copy_file(const char *src, const char *dst, mlxr_err *err) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return MLXR_FAIL(err, MLXR_ERR_IO, "cannot open %s: %s", src, strerror(errno));
    int o = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (o < 0) {
        close(in);
        return MLXR_FAIL(err, MLXR_ERR_IO, "cannot create %s: %s", dst, strerror(errno));
    }
    static _Thread_local char buf[1 << 16];
    ssize_t n;
    mlxr_status st = MLXR_OK;
    while (st == MLXR_OK && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0) {
            st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot read %s: %s", src, strerror(errno));
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(o, buf + off, (size_t)(n - off));
            if (w < 0) {
                st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot write %s: %s", dst, strerror(errno));
                break;
            }
            off += w;
        }
    }
    if (st == MLXR_OK && fsync(o) != 0)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot sync %s: %s", dst, strerror(errno));
    close(in);
    close(o);
    return st;
}

static void fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static mlxr_status insert_row(mlxr_registry *r, const mlxr_model_entry *e, const char *rel,
                              mlxr_err *err) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(r->db, "INSERT OR REPLACE INTO models (" COLS ") VALUES "
                                "(?,?,?,?,?,?,?,?,?,?,?,?,0,?)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, e->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, e->tag, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, rel, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, e->format, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, e->arch, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, e->n_params);
        sqlite3_bind_text(st, 7, e->quant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, e->size);
        sqlite3_bind_text(st, 9, e->sha256, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 10, e->n_ctx);
        if (e->chat_template) sqlite3_bind_text(st, 11, e->chat_template, -1, SQLITE_STATIC);
        else sqlite3_bind_null(st, 11);
        sqlite3_bind_int64(st, 12, e->created);
        if (e->modelfile) sqlite3_bind_text(st, 13, e->modelfile, -1, SQLITE_STATIC);
        else sqlite3_bind_null(st, 13);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) rc = sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        mlxr_status s = MLXR_FAIL(err, MLXR_ERR_IO, "catalog insert failed: %s", sqlite3_errmsg(r->db));
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        return s;
    }
    return MLXR_OK;
}

mlxr_status mlxr_registry_import(mlxr_registry *r, const char *src, const char *name_tag,
                                 mlxr_model_entry *out, mlxr_err *err) {
    return mlxr_registry_import_with(r, src, name_tag, NULL, out, err);
}

mlxr_status mlxr_registry_import_with(mlxr_registry *r, const char *src, const char *name_tag,
                                      const char *modelfile, mlxr_model_entry *out,
                                      mlxr_err *err) {
    mlxr_model_entry e = {0};
    mlxr_status st = mlxr_registry_parse_name(name_tag, e.name, e.tag, err);
    if (st != MLXR_OK) return st;
    struct stat sb;
    if (stat(src, &sb) != 0) return MLXR_FAIL(err, MLXR_ERR_IO, "cannot open %s: %s", src, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return MLXR_FAIL(err, MLXR_ERR_INVALID, "%s is not a regular file", src);
    int lk = lock_home(r, true);
    if (lk < 0) return MLXR_FAIL(err, MLXR_ERR_IO, "cannot lock %s/lock", r->home);
    char tmp_rel[128], blob_rel[128];
    snprintf(tmp_rel, sizeof tmp_rel, "models/tmp/import-%ld-%ld", (long)getpid(), (long)time(NULL));
    char *tmp = path_join(r->home, tmp_rel), *blob = NULL;
    if (!tmp || (modelfile && !(e.modelfile = strdup(modelfile)))) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
        goto done;
    }
    unlink(tmp);
    /* a hard link shares the bytes when src is on the same file system; else copy */
    bool linked = link(src, tmp) == 0;
    if (!linked && (st = copy_file(src, tmp, err)) != MLXR_OK) goto done;
    if ((st = mlxr_registry_describe(tmp, &e, err)) != MLXR_OK) goto done;
    if ((st = hash_file(tmp, linked, e.sha256, err)) != MLXR_OK) goto done;
    snprintf(blob_rel, sizeof blob_rel, "models/blobs/sha256-%s", e.sha256);
    if (!(blob = path_join(r->home, blob_rel))) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (rename(tmp, blob) != 0) {
        st = MLXR_FAIL(err, MLXR_ERR_IO, "cannot rename into %s: %s", blob, strerror(errno));
        goto done;
    }
    char *blobs_dir = path_join(r->home, "models/blobs");
    if (blobs_dir) fsync_dir(blobs_dir);
    free(blobs_dir);
    mlxr_model_entry old = {0};
    bool had_old = mlxr_registry_find(r, name_tag, &old, NULL) == MLXR_OK;
    e.created = (int64_t)time(NULL);
    if ((st = insert_row(r, &e, blob_rel, err)) != MLXR_OK) {
        if (!blob_referenced(r, blob_rel)) unlink(blob);
        mlxr_model_entry_clear(&old);
        goto done;
    }
    /* a replaced row may have left its old blob unreferenced */
    if (had_old && strcmp(old.sha256, e.sha256) != 0) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/blobs/sha256-%s", old.sha256);
        if (!blob_referenced(r, rel)) unlink(old.path);
    }
    mlxr_model_entry_clear(&old);
    e.path = blob;
    blob = NULL;
    if (out) {
        *out = e;
        memset(&e, 0, sizeof e);
    }
done:
    if (tmp) unlink(tmp); /* no-op after the rename */
    free(tmp);
    free(blob);
    mlxr_model_entry_clear(&e);
    unlock_home(lk);
    return st;
}

static void row_to_entry(mlxr_registry *r, sqlite3_stmt *st, mlxr_model_entry *e) {
    memset(e, 0, sizeof *e);
#define TXT(i) (sqlite3_column_text(st, i) ? (const char *)sqlite3_column_text(st, i) : "")
    snprintf(e->name, sizeof e->name, "%s", TXT(0));
    snprintf(e->tag, sizeof e->tag, "%s", TXT(1));
    e->path = path_join(r->home, TXT(2));
    snprintf(e->format, sizeof e->format, "%s", TXT(3));
    snprintf(e->arch, sizeof e->arch, "%s", TXT(4));
    e->n_params = sqlite3_column_int64(st, 5);
    snprintf(e->quant, sizeof e->quant, "%s", TXT(6));
    e->size = sqlite3_column_int64(st, 7);
    snprintf(e->sha256, sizeof e->sha256, "%s", TXT(8));
    e->n_ctx = sqlite3_column_int(st, 9);
    if (sqlite3_column_text(st, 10)) e->chat_template = strdup(TXT(10));
    e->created = sqlite3_column_int64(st, 11);
    e->last_used = sqlite3_column_int64(st, 12);
    if (sqlite3_column_text(st, 13)) e->modelfile = strdup(TXT(13));
#undef TXT
}

mlxr_status mlxr_registry_find(mlxr_registry *r, const char *name_tag, mlxr_model_entry *out,
                               mlxr_err *err) {
    char name[104], tag[64];
    mlxr_status s = mlxr_registry_parse_name(name_tag, name, tag, err);
    if (s != MLXR_OK) return MLXR_ERR_NOT_FOUND == s ? s : MLXR_FAIL(err, MLXR_ERR_NOT_FOUND,
                                                                     "model '%s' not found", name_tag);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT " COLS " FROM models WHERE name = ? AND tag = ?", -1,
                           &st, NULL) != SQLITE_OK)
        return MLXR_FAIL(err, MLXR_ERR_IO, "catalog: %s", sqlite3_errmsg(r->db));
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, tag, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) row_to_entry(r, st, out);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) return MLXR_OK;
    if (rc == SQLITE_DONE) return MLXR_FAIL(err, MLXR_ERR_NOT_FOUND, "model '%s:%s' not found", name, tag);
    return MLXR_FAIL(err, MLXR_ERR_IO, "catalog: %s", sqlite3_errmsg(r->db));
}

mlxr_status mlxr_registry_list(mlxr_registry *r, mlxr_model_entry **out, size_t *n,
                               mlxr_err *err) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT " COLS " FROM models ORDER BY name, tag", -1, &st,
                           NULL) != SQLITE_OK)
        return MLXR_FAIL(err, MLXR_ERR_IO, "catalog: %s", sqlite3_errmsg(r->db));
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            mlxr_model_entry *p = realloc(*out, cap * sizeof *p);
            if (!p) break;
            *out = p;
        }
        row_to_entry(r, st, &(*out)[(*n)++]);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; i < *n; i++) mlxr_model_entry_clear(&(*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
        return MLXR_FAIL(err, MLXR_ERR_IO, "catalog listing failed: %s", sqlite3_errmsg(r->db));
    }
    return MLXR_OK;
}

mlxr_status mlxr_registry_remove(mlxr_registry *r, const char *name_tag, mlxr_err *err) {
    mlxr_model_entry e;
    mlxr_status s = mlxr_registry_find(r, name_tag, &e, err);
    if (s != MLXR_OK) return s;
    int lk = lock_home(r, true);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(r->db, "DELETE FROM models WHERE name = ? AND tag = ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, e.name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, e.tag, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_OK) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/blobs/sha256-%s", e.sha256);
        if (!blob_referenced(r, rel)) unlink(e.path);
    } else {
        s = MLXR_FAIL(err, MLXR_ERR_IO, "catalog delete failed: %s", sqlite3_errmsg(r->db));
    }
    unlock_home(lk);
    mlxr_model_entry_clear(&e);
    return s;
}

void mlxr_registry_touch(mlxr_registry *r, const char *name_tag) {
    char name[104], tag[64];
    if (mlxr_registry_parse_name(name_tag, name, tag, NULL) != MLXR_OK) return;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "UPDATE models SET last_used = ? WHERE name = ? AND tag = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, tag, -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
}
