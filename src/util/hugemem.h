/*
 * hugemem.h - anonymous memory for weights that the CPU streams once per token, on transparent
 * huge pages where the kernel allows them (THP "always" or "madvise").
 *
 * Why: decoding reads every weight once per token, so it runs at the machine's memory bandwidth.
 * With 4 KiB pages every 4 KiB of a stream is a TLB miss; in a virtual machine each miss is a
 * two-level page walk. On the 2-vCPU EPYC VM of bench/RESULTS.md, reading 1 GiB with 2 threads
 * gave 16-18 GB/s on 4 KiB pages and 19-22 GB/s on 2 MiB pages, interleaved runs.
 */
#ifndef MLXR_UTIL_HUGEMEM_H
#define MLXR_UTIL_HUGEMEM_H

#include <stddef.h>

/* `bytes` of zero-filled, 2 MiB-aligned, read-write memory, or NULL. Huge pages are a request,
 * never a requirement: without them this is ordinary anonymous memory. Free with mlxr_huge_free. */
void *mlxr_huge_alloc(size_t bytes);
/* Release memory from mlxr_huge_alloc (same `bytes`); NULL does nothing. */
void mlxr_huge_free(void *p, size_t bytes);

#endif
