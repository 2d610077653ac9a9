/*
 * threadpool.h - a fixed pool of worker threads that run one parallel job at a time.
 *
 * mlxr_tp_run(pool, fn, arg) calls fn(arg, ith, nth) once for every ith in [0, nth) - the caller
 * runs ith = 0 itself - and returns when all have finished. Jobs split their work by ith/nth
 * (rows ith, ith + nth, ...), so kernels need no locks. Workers spin briefly between jobs (decode
 * issues hundreds of small jobs per token) and then sleep on a condition variable.
 */
#ifndef MLXR_UTIL_THREADPOOL_H
#define MLXR_UTIL_THREADPOOL_H

#include "mlxr.h"

typedef struct mlxr_tp mlxr_tp;
typedef void (*mlxr_tp_fn)(void *arg, int ith, int nth);

/* Create a pool running jobs on n_threads threads in all (n_threads - 1 workers). */
mlxr_status mlxr_tp_new(int n_threads, mlxr_tp **out, mlxr_err *err);
void mlxr_tp_free(mlxr_tp *tp);
int mlxr_tp_n_threads(const mlxr_tp *tp);
/* Run fn on every thread and wait. Not reentrant: one caller thread at a time. */
void mlxr_tp_run(mlxr_tp *tp, mlxr_tp_fn fn, void *arg);

/* Number of online CPUs (at least 1). */
int mlxr_cpu_count(void);

#endif
