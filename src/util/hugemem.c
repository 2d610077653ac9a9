/*
 * hugemem.c - anonymous weight memory on transparent huge pages (hugemem.h).
 */
#define _DEFAULT_SOURCE
#include "util/hugemem.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_SZ ((size_t)2 << 20)

void *mlxr_huge_alloc(size_t bytes) {
    if (bytes == 0 || bytes > SIZE_MAX - HUGE_SZ) return NULL;
    /* over-allocate by one huge page, then trim both ends so the region starts on a 2 MiB
     * boundary: only aligned 2 MiB ranges can be backed by huge pages */
    const size_t span = bytes + HUGE_SZ;
    uint8_t *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));
    const size_t head = (size_t)(p - raw);
    if (head) munmap(raw, head);
    const long pg = sysconf(_SC_PAGESIZE);
    const size_t page = pg > 0 ? (size_t)pg : 4096;
    const size_t used = (bytes + page - 1) / page * page;
    if (span - head > used) munmap(p + used, span - head - used);
#ifdef MADV_HUGEPAGE
    (void)madvise(p, used, MADV_HUGEPAGE); /* EINVAL without THP support: plain pages then */
#endif
    return p;
}

void mlxr_huge_free(void *p, size_t bytes) {
    if (p && bytes) munmap(p, bytes);
}
