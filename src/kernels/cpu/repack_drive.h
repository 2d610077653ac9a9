/*
 * repack_drive.h - what the x86 products over the 8-row interleaved layouts share (repack_avx2.c:
 * Q4_0x8/Q8_0x8, repack_k_avx2.c: Q4_Kx8/Q6_Kx8, repack_vnni_avx512.c: Q4_0x8/Q8_0x8 with VNNI):
 * the 4-byte activation broadcast, the weight prefetch, parking accumulators in y between K
 * chunks, and the driver that walks K chunks, activation tiles and groups of 8 weight rows.
 *
 * Each of those files keeps its own per-tile activation data (an `xinfo` filled once per K chunk
 * and tile by the type's fill function) and its micro-kernels; the functions here are static and
 * compiled with the including file's ISA flags (AVX2 or AVX-512), so nothing here dispatches.
 *
 * Why chunks and the park/resume: an output is one FMA chain over its blocks in order, whatever
 * the chunking or the tile it falls in (a float stored to y and loaded back is exact), so the
 * products are batch invariant; with several tiles a chunk of a 64-row band stays in L2 while the
 * tiles pass over it, and with one tile (decoding) chunks are as long as possible, so each group's
 * rows stream from memory in one sequential run (what the hardware prefetchers follow).
 */
#ifndef MLXR_KERNELS_CPU_REPACK_DRIVE_H
#define MLXR_KERNELS_CPU_REPACK_DRIVE_H

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

#define RP_CT 4 /* activation rows per micro-kernel */

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Prefetch the weight bytes PF_BYTES ahead of block b (bytes long): measured +25-35 % on one
 * thread streaming Q4_0x8 rows from DRAM (AVX2 EPYC) and ~12 instead of ~9 GB/s for Q4_Kx8, where
 * the hardware prefetchers alone fall behind; in cache the few extra loads cost next to nothing
 * (1152 and 4096 bytes ahead measured about the same as 2048). */
#define PF_BYTES 2048

static ALWAYS_INLINE void prefetch_block(const void *b, size_t bytes) {
    const char *p = (const char *)b + PF_BYTES;
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(p + o, _MM_HINT_T0);
}

/* acc[c] lane r = y[c * ldy + r] when continuing a row past a chunk (exact), else 0. */
static ALWAYS_INLINE void load_acc(const int C, __m256 *acc, const float *y, size_t ldy, bool cont) {
    for (int c = 0; c < C; c++)
        acc[c] = cont ? _mm256_loadu_ps(y + (size_t)c * ldy) : _mm256_setzero_ps();
}

static ALWAYS_INLINE void store_acc(const int C, const __m256 *acc, float *y, size_t ldy) {
    for (int c = 0; c < C; c++)
        _mm256_storeu_ps(y + (size_t)c * ldy, acc[c]);
}

/* The type's activation data of a tile: fill(xi, C, x, xs, i0, kb) for blocks i0..i0+kb of C
 * activation rows (xs bytes apart). */
typedef void (*rp_fill_fn)(void *xi, int C, const uint8_t *x, size_t xs, int64_t i0, int64_t kb);
/* One group of 8 rows (blocks wb[0..kb)) against C activation rows (their block 0 at x + c*xs). */
typedef void (*rp_group_fn)(const void *wb, const uint8_t *x, size_t xs, int64_t kb, const void *xi,
                            float *y, size_t ldy, bool cont);
/* Two groups at once, the second one's blocks w8 bytes after the first's (8 plain rows). */
typedef void (*rp_pair_fn)(const void *wb, size_t w8, const uint8_t *x, size_t xs, int64_t kb,
                           const void *xi, float *y, size_t ldy, bool cont);

/* The micro-kernel BODY(C, blocks, ...) of block type BLOCK at a fixed C, as an rp_group_fn (with
 * the function attribute ATTR, e.g. a target("...") the including file needs, or nothing). */
#define RP_GROUP_VARIANT(ATTR, NAME, BODY, BLOCK, XINFO, C)                                        \
    ATTR static void NAME(const void *wb, const uint8_t *x, size_t xs, int64_t kb, const void *xi, \
                          float *y, size_t ldy, bool cont) {                                       \
        BODY(C, (const BLOCK *)wb, x, xs, kb, (const XINFO *)xi, y, ldy, cont);                    \
    }

#define RP_PAIR_VARIANT(ATTR, NAME, BODY, BLOCK, XINFO, C)                                         \
    ATTR static void NAME(const void *wb, size_t w8, const uint8_t *x, size_t xs, int64_t kb,      \
                          const void *xi, float *y, size_t ldy, bool cont) {                       \
        BODY(C, (const BLOCK *)wb, (const BLOCK *)((const uint8_t *)wb + w8), x, xs, kb,           \
             (const XINFO *)xi, y, ldy, cont);                                                     \
    }

/* What the driver needs of a type. */
typedef struct rp_type {
    rp_group_fn fns[RP_CT + 1];  /* by C = 1..RP_CT */
    rp_pair_fn pairs[RP_CT + 1]; /* two groups at once, or all NULL */
    rp_fill_fn fill;
    int64_t block_n;             /* elements per block */
    size_t wblock;               /* bytes per 8-row block */
    size_t xblock;               /* bytes per activation block */
    int64_t kb, kb_one;          /* blocks per K chunk: several tiles / a single tile */
    mlxr_vec_dot_fn dot;         /* for the plain rows of a last partial group */
} rp_type;

/* y[j][r] (row j at y + j * ldy) = row r of the packed weights (w, rows ws bytes apart in plain
 * terms) . activation row j (x, xs bytes apart), for r < nr, j < nc; xi: the type's activation
 * data of one tile (kb_one blocks). */
static void rp_gemm(const rp_type *pt, void *xi, int64_t n, int64_t nr, int64_t nc, const void *w,
                    size_t ws, const void *x, size_t xs, float *y, size_t ldy) {
    const uint8_t *W = w, *X = x;
    const int64_t nb = n / pt->block_n, nr8 = nr - nr % MLXR_PACK_ROWS;
    const int64_t kb_max = nc <= RP_CT ? pt->kb_one : pt->kb;
    for (int64_t i0 = 0; i0 < nb; i0 += kb_max) {
        const int64_t kb = nb - i0 < kb_max ? nb - i0 : kb_max;
        for (int64_t j0 = 0; j0 < nc; j0 += RP_CT) {
            const int C = nc - j0 < RP_CT ? (int)(nc - j0) : RP_CT;
            const uint8_t *xj = X + (size_t)j0 * xs, *xk = xj + (size_t)i0 * pt->xblock;
            pt->fill(xi, C, xj, xs, i0, kb);
            int64_t r = 0;
            if (pt->pairs[C])
                for (; r + 2 * MLXR_PACK_ROWS <= nr8; r += 2 * MLXR_PACK_ROWS)
                    pt->pairs[C](W + (size_t)r * ws + (size_t)i0 * pt->wblock, (size_t)MLXR_PACK_ROWS * ws, xk,
                                 xs, kb, xi, y + (size_t)j0 * ldy + (size_t)r, ldy, i0 > 0);
            for (; r < nr8; r += MLXR_PACK_ROWS)
                pt->fns[C](W + (size_t)r * ws + (size_t)i0 * pt->wblock, xk, xs, kb, xi,
                           y + (size_t)j0 * ldy + (size_t)r, ldy, i0 > 0);
        }
    }
    for (int64_t j = 0; j < nc; j++)
        for (int64_t r = nr8; r < nr; r++)
            pt->dot(n, &y[(size_t)j * ldy + (size_t)r], W + (size_t)r * ws, X + (size_t)j * xs);
}

#endif
