/*
 * threadpool.c - see threadpool.h. One job at a time: the caller publishes (fn, arg) and bumps
 * `gen`; each worker that sees a new generation runs its share and increments `done`.
 */
#include "util/threadpool.h"
#include "util/err.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spins before a worker goes to sleep; ~50 us on a modern core. */
#define SPIN_ITERS 20000

struct mlxr_tp {
    int nth;
    pthread_t *threads; /* [nth - 1] */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mlxr_tp_fn fn;      /* the current job; written before gen is bumped */
    void *arg;
    atomic_uint gen;    /* job generation; lock: none (atomic), sleepers re-check under mu */
    atomic_int done;    /* workers finished with the current generation */
    atomic_bool quit;
    int n_started;
};

typedef struct worker_arg {
    mlxr_tp *tp;
    int ith;
} worker_arg;

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    mlxr_tp *tp = wa.tp;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&tp->gen, memory_order_acquire)) == seen &&
               !atomic_load(&tp->quit)) {
            if (++spins < SPIN_ITERS) {
                /* yield now and then so an oversubscribed core still runs the caller */
                if (spins % 1000 == 0) sched_yield();
                else CPU_RELAX();
                continue;
            }
            pthread_mutex_lock(&tp->mu);
            while (atomic_load(&tp->gen) == seen && !atomic_load(&tp->quit))
                pthread_cond_wait(&tp->cv, &tp->mu);
            pthread_mutex_unlock(&tp->mu);
        }
        if (atomic_load(&tp->quit)) return NULL;
        seen = g;
        tp->fn(tp->arg, wa.ith, tp->nth);
        atomic_fetch_add_explicit(&tp->done, 1, memory_order_release);
    }
}

int mlxr_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

mlxr_status mlxr_tp_new(int n_threads, mlxr_tp **out, mlxr_err *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "thread count %d out of range 1..1024", n_threads);
    mlxr_tp *tp = calloc(1, sizeof *tp);
    if (!tp) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for thread pool");
    tp->nth = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    atomic_init(&tp->gen, 0);
    atomic_init(&tp->done, 0);
    atomic_init(&tp->quit, false);
    if (n_threads > 1) {
        tp->threads = calloc((size_t)n_threads - 1, sizeof *tp->threads);
        if (!tp->threads) goto nomem;
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa) goto nomem;
            wa->tp = tp;
            wa->ith = i;
            if (pthread_create(&tp->threads[i - 1], NULL, worker_main, wa) != 0) {
                free(wa);
                mlxr_tp_free(tp);
                return MLXR_FAIL(err, MLXR_ERR_NOMEM, "cannot start worker thread %d", i);
            }
            tp->n_started++;
        }
    }
    *out = tp;
    return MLXR_OK;
nomem:
    mlxr_tp_free(tp);
    return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for thread pool");
}

void mlxr_tp_free(mlxr_tp *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->quit, true);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 0; i < tp->n_started; i++) pthread_join(tp->threads[i], NULL);
    free(tp->threads);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->cv);
    free(tp);
}

int mlxr_tp_n_threads(const mlxr_tp *tp) {
    return tp->nth;
}

void mlxr_tp_run(mlxr_tp *tp, mlxr_tp_fn fn, void *arg) {
    if (tp->nth == 1) {
        fn(arg, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->arg = arg;
    atomic_store_explicit(&tp->done, 0, memory_order_relaxed);
    /* Bump under the mutex so a worker about to sleep cannot miss the wake-up. */
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add_explicit(&tp->gen, 1, memory_order_release);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    fn(arg, 0, tp->nth);
    /* Spin, then yield: if the machine is oversubscribed a worker may be off-CPU, and spinning
     * for a whole time slice would stall every job. */
    for (int spins = 0; atomic_load_explicit(&tp->done, memory_order_acquire) < tp->nth - 1;) {
        if (++spins < 2000) CPU_RELAX();
        else sched_yield();
    }
}
