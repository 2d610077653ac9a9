/*
 * sched.h - internal types of the engine (engine.c: thread, queue, public API) and its scheduler
 * (sched.c: one step = plan a batch, run it, sample, deliver).
 *
 * Locking: fields marked [mu] are guarded by mlxr_engine.mu; fields marked [thread] belong to the
 * engine thread alone (no lock); `cancel` is atomic.
 */
#ifndef MLXR_SCHED_SCHED_H
#define MLXR_SCHED_SCHED_H

#include "mlxr.h"
#include "sched/json_constraint.h"

#include <pthread.h>
#include <stdatomic.h>

typedef enum req_state { REQ_WAITING = 0, REQ_RUNNING } req_state;

typedef struct mlxr_req {
    uint64_t id;
    struct mlxr_req *prev, *next; /* [mu] the engine's list, in arrival order */
    atomic_bool cancel;

    /* [thread] after submit */
    int32_t *toks; /* [cap] prompt, then generated tokens */
    int32_t n_toks, cap;
    int32_t n_prompt;
    int32_t *stop; /* [n_stop] */
    int32_t n_stop;
    int32_t max_tokens;
    bool ignore_eog;
    mlxr_sampler *smp;
    mlxr_engine_token_fn on_token;
    mlxr_engine_done_fn on_done;
    mlxr_engine_token_info_fn on_token_info;
    void *user;
    bool logprobs;
    int32_t n_top;     /* top log-probabilities wanted (with logprobs) */
    bool json_mode;
    mlxr_jsonc json;   /* the output so far (json_mode) */
    req_state state;
    int32_t slot;      /* context sequence while running, else -1 */
    int32_t n_step;    /* tokens in this step's batch */
    int32_t k_logits;  /* batch entry with its logits, when the step reaches its last token */
    int32_t draft[16]; /* prompt-lookup proposal fed after the last token this step */
    int32_t n_draft;
    bool planned; /* has a place in this step's batch (or was preempted in planning) */
    double t_submit, t_first_sched, t_first_tok;
    mlxr_request_stats st;
} mlxr_req;

struct mlxr_engine {
    mlxr_model *m;   /* borrowed */
    mlxr_context *c; /* [thread] */
    mlxr_engine_opts o;
    int32_t n_ctx, n_seq, n_batch, n_vocab;

    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* work arrived, a cancel, or stop */
    pthread_cond_t idle;     /* the list became empty */
    mlxr_req *head, *tail;   /* [mu] every unfinished request, arrival order */
    bool stop;               /* [mu] */
    uint64_t next_id;        /* [mu] */
    mlxr_engine_stats stats; /* [mu] as of the last step */

    /* [thread] scheduling scratch */
    mlxr_req **act; /* [cap_act] snapshot of the list for one step */
    int32_t n_act, cap_act;
    int32_t *slot_free; /* [n_seq] stack of free sequence slots */
    int32_t n_slot_free;
    int32_t *b_tok, *b_pos, *b_seq; /* [n_batch] the step's batch */
    int8_t *b_logits;
    int32_t b_n;
    uint64_t n_steps, n_preempt;
    /* [thread] JSON mode: every token's piece bytes (built at the first JSON request) and the
     * masked copy of a row of logits */
    uint32_t *piece_off; /* [n_vocab + 1] into piece_bytes; NULL until built */
    char *piece_bytes;
    bool *piece_ok;      /* [n_vocab] scratch: token may continue the JSON */
    float *masked;       /* [n_vocab] */
};

/* Monotonic seconds. */
double mlxr_sched_now(void);

/* r's next token from one row of logits (constrain.c): the sampler's pick, redrawn from a masked
 * row in JSON mode when the pick cannot continue the JSON (the recognizer then takes the token's
 * bytes). -1 with *err set when no token can continue or memory runs out. */
int32_t mlxr_sched_pick(mlxr_engine *e, mlxr_req *r, const float *logits, mlxr_err *err);

/* Fill *info for token tok: its log-probability and the r->n_top best (into top_ids/top_lp, 20
 * entries each) when r asked for logprobs. False on bad arguments. */
bool mlxr_sched_token_info(mlxr_req *r, const float *logits, int32_t n_vocab, int32_t tok,
                           mlxr_token_info *info, int32_t *top_ids, float *top_lp);

/* One scheduling step over e->act (engine thread). `stopping` cancels everything. */
void mlxr_sched_step(mlxr_engine *e, bool stopping);

#endif
