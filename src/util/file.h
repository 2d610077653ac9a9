/*
 * file.h - read-only memory maps of whole files. The map owns its fd-less view; weights of a
 * model are borrowed pointers into it, valid until mlxr_file_unmap.
 */
#ifndef MLXR_UTIL_FILE_H
#define MLXR_UTIL_FILE_H

#include "mlxr.h"

typedef struct mlxr_mmap {
    const void *data; /* NULL for an empty file */
    size_t size;
} mlxr_mmap;

/* Map `path` read-only. Errors: MLXR_ERR_IO naming the path and errno text. */
mlxr_status mlxr_file_map(const char *path, mlxr_mmap *out, mlxr_err *err);
/* Unmap; a zeroed map does nothing. */
void mlxr_file_unmap(mlxr_mmap *m);
/* Give back the pages wholly inside [p, p + n) of a read-only file map (MADV_DONTNEED) once the
 * process holds its own copy of those bytes: the map stays valid and they page back in from the
 * file if read again. */
void mlxr_file_drop_pages(const void *p, size_t n);

#endif
