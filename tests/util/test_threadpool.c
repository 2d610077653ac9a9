/*
 * test_threadpool.c - every thread index runs exactly once per job, jobs do not overlap, and
 * many small jobs in a row (the decode pattern) all complete.
 */
#include "test.h"

#include <stdatomic.h>

#include "util/threadpool.h"

typedef struct job {
    atomic_int hits[64];
    atomic_long sum;
    int nth_seen;
} job;

static void work(void *arg, int ith, int nth) {
    job *j = arg;
    atomic_fetch_add(&j->hits[ith], 1);
    long s = 0;
    for (long i = ith; i < 100000; i += nth) s += i;
    atomic_fetch_add(&j->sum, s);
    j->nth_seen = nth;
}

int main(void) {
    const int counts[] = {1, 2, 3, 8};
    for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
        mlxr_tp *tp = NULL;
        mlxr_err err = {0};
        CHECK(mlxr_tp_new(counts[c], &tp, &err) == MLXR_OK, "tp_new(%d): %s", counts[c], err.msg);
        if (!tp) continue;
        int bad = 0;
        for (int rep = 0; rep < 300; rep++) {
            job j;
            memset(&j, 0, sizeof j);
            mlxr_tp_run(tp, work, &j);
            for (int i = 0; i < counts[c]; i++) bad += atomic_load(&j.hits[i]) != 1;
            bad += atomic_load(&j.sum) != 4999950000L;
            bad += j.nth_seen != counts[c];
        }
        CHECK(bad == 0, "%d threads: %d bad jobs out of 300", counts[c], bad);
        mlxr_tp_free(tp);
    }
    mlxr_tp *tp = NULL;
    CHECK(mlxr_tp_new(0, &tp, NULL) == MLXR_ERR_INVALID && tp == NULL, "0 threads rejected");
    mlxr_tp_free(NULL);
    CHECK(mlxr_cpu_count() >= 1, "cpu count");
    return test_finish("util_threadpool");
}
