/*
 * file.c - mmap of whole files (POSIX).
 */
#define _POSIX_C_SOURCE 200809L
#include "util/file.h"
#include "util/err.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

mlxr_status mlxr_file_map(const char *path, mlxr_mmap *out, mlxr_err *err) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return MLXR_FAIL(err, MLXR_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return MLXR_FAIL(err, MLXR_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return MLXR_FAIL(err, MLXR_ERR_IO, "'%s' is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return MLXR_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return MLXR_FAIL(err, MLXR_ERR_IO, "cannot mmap '%s': %s", path, strerror(e));
    out->data = p;
    out->size = (size_t)st.st_size;
    return MLXR_OK;
}

void mlxr_file_unmap(mlxr_mmap *m) {
    if (m && m->data) munmap((void *)m->data, m->size);
    if (m) {
        m->data = NULL;
        m->size = 0;
    }
}

void mlxr_file_drop_pages(const void *p, size_t n) {
    const long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    const uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
    const uintptr_t e = ((uintptr_t)p + n) / (uintptr_t)pg * (uintptr_t)pg;
    if (e > a) (void)madvise((void *)a, e - a, MADV_DONTNEED);
}
