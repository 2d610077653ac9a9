/*
 * membw.c - memory read bandwidth of this machine, the roofline for weight-bound generation.
 *
 *   mlxr-membw [THREADS] [MIB] [PASSES]     defaults: 2 threads, 1024 MiB, 5 passes
 *
 * Each thread sums its own slice of a buffer much larger than the caches with vector loads
 * (256-bit where the CPU has AVX2, as the matrix-vector kernels read weights); one pass reads the
 * whole buffer once. Two buffers take turns, pass by pass: one on 4 KiB pages (what a file map
 * of a model gets, as llama.cpp reads weights) and one on transparent huge pages (where mlxr
 * copies the weights it streams, util/hugemem.h; on a VM the huge pages read faster). Prints one
 * JSON line:
 * {"threads", "mib", "best_gb_s", "median_gb_s", "best_4k_gb_s", "best_huge_gb_s"}
 * (GB = 1e9 bytes); best and median are over both buffers' passes, so the roofline is the
 * faster of the two. Each buffer is written first so every page is backed by memory, not the
 * shared zero page.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "util/hugemem.h"

typedef struct slice {
    const uint64_t *p;
    size_t n;          /* uint64 words */
    uint64_t sum;      /* kept so the loads cannot be optimised away */
    pthread_barrier_t *bar;
} slice;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#if defined(__x86_64__)
#include <immintrin.h>
/* The same sum with 256-bit loads, as the AVX2 kernels read weights: on the 2-vCPU EPYC VM it
 * read a few per cent more than the compiler's 128-bit loop, and a roofline must not sit below
 * what a kernel can reach. */
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t t[4];
    _mm256_storeu_si256((__m256i *)t, a);
    uint64_t s = t[0] + t[1] + t[2] + t[3];
    for (; i < n; i++)
        s += p[i];
    return s;
}
#endif

static void *read_slice(void *arg) {
    slice *s = arg;
    pthread_barrier_wait(s->bar);
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        s->sum = sum_avx2(s->p, s->n);
        return NULL;
    }
#endif
    /* four independent accumulators: the loop is load-bound, not add-latency-bound;
     * gcc -O3 vectorises it */
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= s->n; i += 4) {
        a += s->p[i];
        b += s->p[i + 1];
        c += s->p[i + 2];
        d += s->p[i + 3];
    }
    for (; i < s->n; i++)
        a += s->p[i];
    s->sum = a + b + c + d;
    return NULL;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    int nth = argc > 1 ? atoi(argv[1]) : 2;
    long mib = argc > 2 ? atol(argv[2]) : 1024;
    int passes = argc > 3 ? atoi(argv[3]) : 5;
    if (nth < 1 || nth > 256 || mib < 16 || passes < 1 || passes > 100) {
        fprintf(stderr, "usage: %s [THREADS 1..256] [MIB >= 16] [PASSES 1..100]\n", argv[0]);
        return 2;
    }
    size_t bytes = (size_t)mib << 20, words = bytes / sizeof(uint64_t);
    uint64_t *bufs[2];
    bufs[1] = mlxr_huge_alloc(bytes);
    bufs[0] = mlxr_huge_alloc(bytes);
    if (!bufs[0] || !bufs[1]) {
        fprintf(stderr, "membw: cannot allocate 2 x %ld MiB\n", mib);
        return 1;
    }
#ifdef MADV_NOHUGEPAGE
    (void)madvise(bufs[0], bytes, MADV_NOHUGEPAGE); /* before the first touch: 4 KiB pages */
#endif
    for (int b = 0; b < 2; b++)
        for (size_t i = 0; i < words; i++)
            bufs[b][i] = i * 0x9e3779b97f4a7c15ull;

    double *gbs = malloc((size_t)passes * 2 * sizeof *gbs);
    slice *sl = calloc((size_t)nth, sizeof *sl);
    pthread_t *th = calloc((size_t)nth, sizeof *th);
    if (!gbs || !sl || !th) return 1;
    uint64_t check = 0;
    double best[2] = {0, 0};
    for (int p = 0; p < 2 * passes; p++) {
        const uint64_t *buf = bufs[p & 1];
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)nth + 1);
        size_t per = words / (size_t)nth;
        for (int t = 0; t < nth; t++) {
            sl[t].p = buf + (size_t)t * per;
            sl[t].n = t == nth - 1 ? words - (size_t)t * per : per;
            sl[t].bar = &bar;
            pthread_create(&th[t], NULL, read_slice, &sl[t]);
        }
        pthread_barrier_wait(&bar); /* all threads created: start the clock */
        double t0 = now_s();
        for (int t = 0; t < nth; t++) {
            pthread_join(th[t], NULL);
            check += sl[t].sum;
        }
        gbs[p] = (double)bytes / (now_s() - t0) / 1e9;
        if (gbs[p] > best[p & 1]) best[p & 1] = gbs[p];
        pthread_barrier_destroy(&bar);
    }
    qsort(gbs, (size_t)passes * 2, sizeof *gbs, cmp_double);
    printf("{\"threads\": %d, \"mib\": %ld, \"best_gb_s\": %.2f, \"median_gb_s\": %.2f, "
           "\"best_4k_gb_s\": %.2f, \"best_huge_gb_s\": %.2f, \"check\": %llu}\n",
           nth, mib, gbs[2 * passes - 1], gbs[passes], best[0], best[1],
           (unsigned long long)(check & 0xff));
    free(th);
    free(sl);
    free(gbs);
    mlxr_huge_free(bufs[0], bytes);
    mlxr_huge_free(bufs[1], bytes);
    return 0;
}
