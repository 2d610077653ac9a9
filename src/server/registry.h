/*
 * registry.h - the catalog of installed models: a data directory with content-addressed model
 * files and an SQLite database (WAL) describing them.
 *
 * Layout of HOME (--home, $MLXR_HOME, else $XDG_DATA_HOME/mlxr, else ~/.local/share/mlxr):
 *   HOME/catalog.db                  the catalog (table `models`, one row per name:tag)
 *   HOME/models/blobs/sha256-<hex>   model files, named by their SHA-256, read-only
 *   HOME/models/tmp/                 imports and downloads in progress (removed at every
 *                                    open, except files another process holds a flock on)
 *   HOME/lock                        flock()ed while importing, removing or cleaning up
 *
 * Atomicity of an import: the file is copied (or hard-linked) into tmp/, verified (GGUF header
 * parses; SHA-256 computed from the bytes), fsync'ed, renamed into blobs/, and only then the row
 * is inserted in one transaction. A crash before the rename leaves a temp file, one after it an
 * unreferenced blob; mlxr_registry_open removes both, so a catalog row always names a complete,
 * verified file and no half model is ever visible.
 *
 * Schema changes: columns added later (modelfile) are added by mlxr_registry_open to a catalog
 * made by an older version (ALTER TABLE ... ADD COLUMN; their rows read as NULL).
 *
 * Names: NAME[:TAG], NAME of 1..100 characters from [A-Za-z0-9._-/] not starting with '.',
 * '-' or '/', TAG of 1..60 from [A-Za-z0-9._-]; the tag defaults to "latest".
 * Thread safety: one mlxr_registry per thread, or serialize calls (the daemon holds a mutex).
 */
#ifndef MLXR_SERVER_REGISTRY_H
#define MLXR_SERVER_REGISTRY_H

#include "mlxr.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mlxr_registry mlxr_registry;

typedef struct mlxr_model_entry {
    char name[104], tag[64]; /* canonical name:tag is "name:tag" */
    char *path;              /* absolute path of the blob */
    char format[16];         /* "gguf" */
    char arch[64];
    int64_t n_params;
    char quant[16];          /* the dominant weight type, e.g. "Q8_0" */
    int64_t size;            /* bytes */
    char sha256[65];
    int32_t n_ctx;           /* training context length, 0 if unknown */
    char *chat_template;     /* tokenizer.chat_template or NULL */
    char *modelfile;         /* the Modelfile settings of /api/create (system, template, license,
                                parameters, messages) as a JSON object text (modelfile.h), or NULL */
    int64_t created, last_used; /* unix seconds; last_used 0 = never */
} mlxr_model_entry;

/* Free the strings of an entry (not the entry itself). */
void mlxr_model_entry_clear(mlxr_model_entry *e);

/* The default home directory (static storage); NULL if HOME is unset too. */
const char *mlxr_registry_default_home(void);

/* Open (creating if needed) the registry at `home`; removes stray temp files and blobs no row
 * names. *out owned by the caller: mlxr_registry_close. */
mlxr_status mlxr_registry_open(const char *home, mlxr_registry **out, mlxr_err *err);
void mlxr_registry_close(mlxr_registry *r);
const char *mlxr_registry_home(const mlxr_registry *r);

/* Split and validate NAME[:TAG] into name (cap >= 104) and tag (cap >= 64). */
mlxr_status mlxr_registry_parse_name(const char *s, char *name, char *tag, mlxr_err *err);

/* Import the GGUF file at `src` as name_tag (replacing an existing row of that name). `out`
 * (may be NULL) receives the new entry. */
mlxr_status mlxr_registry_import(mlxr_registry *r, const char *src, const char *name_tag,
                                 mlxr_model_entry *out, mlxr_err *err);
/* The same, storing `modelfile` (JSON text or NULL) in the new row's one transaction. */
mlxr_status mlxr_registry_import_with(mlxr_registry *r, const char *src, const char *name_tag,
                                      const char *modelfile, mlxr_model_entry *out,
                                      mlxr_err *err);
/* Look up name_tag; MLXR_ERR_NOT_FOUND if absent. */
mlxr_status mlxr_registry_find(mlxr_registry *r, const char *name_tag, mlxr_model_entry *out,
                               mlxr_err *err);
/* Every entry, ordered by name and tag; *out malloc'ed array (free each with
 * mlxr_model_entry_clear, then free()). */
mlxr_status mlxr_registry_list(mlxr_registry *r, mlxr_model_entry **out, size_t *n,
                               mlxr_err *err);
/* Remove a row, and its blob when no other row names it. */
mlxr_status mlxr_registry_remove(mlxr_registry *r, const char *name_tag, mlxr_err *err);
/* Record a use now (best effort). */
void mlxr_registry_touch(mlxr_registry *r, const char *name_tag);

/* Read a GGUF file's catalog fields (arch, params, quant, n_ctx, template) without loading
 * weights; path/size/sha256 are left to the caller. */
mlxr_status mlxr_registry_describe(const char *path, mlxr_model_entry *out, mlxr_err *err);

#endif
