/*
 * run.c - `mlxr run`: tokenize a prompt, run it through the model, and print the continuation
 * as tokens arrive; a timing line goes to stderr. With --draft MODEL or --lookup it decodes
 * speculatively (mlxr_spec_generate): same text, fewer target passes; the acceptance rate goes to
 * stderr too.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void run_usage(void) {
    printf("usage: mlxr run [-m] [MODEL] -p PROMPT [options]\n"
           "       mlxr run [-m] [MODEL] [-i] [--system TEXT] [options]   (chat)\n"
           "  -m, --model PATH|NAME   GGUF model, or an installed NAME[:TAG] (default: the\n"
           "                          bundled pydoc-7M)\n"
           "  --home DIR              registry of installed models (default: $MLXR_HOME)\n"
           "  -p, --prompt TEXT       prompt text\n"
           "  -i, --interactive       chat, one message per line of stdin (the default without\n"
           "                          -p on a terminal; /? lists the chat commands)\n"
           "  --system TEXT           chat: the system message\n"
           "  -n, --n-predict N       tokens to generate (default 128)\n"
           "  -t, --threads N         threads (default: number of CPUs)\n"
           "  -ngl, --gpu-layers N    run the model on CUDA device 0 (any N != 0: whole model;\n"
           "                          needs a build with CUDA and a GPU)\n"
           "  -c, --ctx-size N        context size (default: the model's, at most 4096)\n"
           "  --temp T                temperature; 0 = greedy (default 0.8)\n"
           "  --top-k K               (default 40; 0 = off)\n"
           "  --top-p P               (default 0.95; 1 = off)\n"
           "  --min-p P               (default 0.05; 0 = off)\n"
           "  --repeat-penalty R      (default 1.0 = off)\n"
           "  --repeat-last-n N       tokens the penalty looks at (default 64)\n"
           "  -s, --seed S            random seed (default: random; printed to stderr)\n"
           "  --kv-type T             KV cache type: f16 (default), f32 or q8_0 (also -ctk T\n"
           "                          -ctv T, as llama.cpp; both must be the same)\n"
           "  --kv-f32                same as --kv-type f32\n"
           "  --draft MODEL           speculative decoding with a smaller draft model (same vocabulary)\n"
           "  --lookup                speculative decoding by prompt lookup (n-grams of the text so far)\n"
           "  --batch-invariant       logits independent of how the prompt is batched (as the\n"
           "                          daemon's default), at some cost in prompt speed\n"
           "  --n-draft K             tokens proposed per step (default 5)\n");
}

typedef struct run_opts {
    const char *model, *prompt, *draft;
    const char *system, *home; /* chat's --system; the registry for model names */
    bool interactive;          /* -i, or no -p on a terminal: chat.c */
    bool batch_invariant;      /* mlxr_context_opts.batch_invariant */
    long n_predict, threads, n_ctx, n_draft;
    long n_gpu_layers; /* -ngl: 0 = CPU */
    bool seed_set, lookup;
    cli_kv kv;
    mlxr_sampler_opts so;
} run_opts;

static int parse(int argc, char **argv, run_opts *o) {
    o->model = NULL;
    o->prompt = NULL;
    o->n_predict = 128;
    o->threads = 0;
    o->n_gpu_layers = 0;
    o->n_ctx = 0;
    memset(&o->kv, 0, sizeof o->kv);
    o->draft = NULL;
    o->lookup = false;
    o->system = o->home = NULL;
    o->interactive = o->batch_invariant = false;
    o->n_draft = 5;
    o->seed_set = false;
    o->so = mlxr_sampler_default_opts();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long l;
        double d;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            run_usage();
            return -1;
        }
        if (!strcmp(a, "--kv-f32")) {
            o->kv.k = o->kv.v = MLXR_KV_F32;
            o->kv.k_set = o->kv.v_set = true;
            continue;
        }
        if (!strcmp(a, "--lookup")) {
            o->lookup = true;
            continue;
        }
        if (!strcmp(a, "--batch-invariant")) {
            o->batch_invariant = true;
            continue;
        }
        if (!strcmp(a, "-i") || !strcmp(a, "--interactive")) {
            o->interactive = true;
            continue;
        }
        if (a[0] != '-') { /* mlxr run NAME */
            if (o->model)
                return cli_error("unexpected argument '%s' (the model is '%s')", a, o->model);
            o->model = a;
            continue;
        }
        if (!(v = cli_value(argc, argv, &i))) return 1;
        const int kv = cli_kv_flag(a, v, &o->kv);
        if (kv < 0) return 1;
        if (kv > 0) continue;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) o->prompt = v;
        else if (!strcmp(a, "--draft")) o->draft = v;
        else if (!strcmp(a, "--system")) o->system = v;
        else if (!strcmp(a, "--home")) o->home = v;
        else if (!strcmp(a, "--n-draft")) {
            if (!cli_int(a, v, 1, 63, &o->n_draft)) return 1;
        }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!cli_int(a, v, 0, 1 << 30, &o->n_predict)) return 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_int(a, v, 1, 1024, &o->threads)) return 1;
        } else if (!strcmp(a, "-ngl") || !strcmp(a, "--gpu-layers")) {
            if (!cli_int(a, v, -1, 1 << 20, &o->n_gpu_layers)) return 1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!cli_int(a, v, 1, 1 << 20, &o->n_ctx)) return 1;
        } else if (!strcmp(a, "--temp")) {
            if (!cli_float(a, v, 0, 1e6, &d)) return 1;
            o->so.temp = (float)d;
        } else if (!strcmp(a, "--top-k")) {
            if (!cli_int(a, v, 0, 1 << 30, &l)) return 1;
            o->so.top_k = (int32_t)l;
        } else if (!strcmp(a, "--top-p")) {
            if (!cli_float(a, v, 0, 1, &d)) return 1;
            o->so.top_p = (float)d;
        } else if (!strcmp(a, "--min-p")) {
            if (!cli_float(a, v, 0, 1, &d)) return 1;
            o->so.min_p = (float)d;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!cli_float(a, v, 1e-3, 1e3, &d)) return 1;
            o->so.repeat_penalty = (float)d;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!cli_int(a, v, 0, 1 << 20, &l)) return 1;
            o->so.repeat_last_n = (int32_t)l;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            char *end;
            unsigned long long s = strtoull(v, &end, 10);
            if (end == v || *end || v[0] == '-') return cli_error("%s expects a non-negative integer", a);
            o->so.seed = s;
            o->seed_set = true;
        } else {
            return cli_error("unknown option '%s' for run (try 'mlxr run --help')", a);
        }
    }
    if (o->prompt && o->interactive) return cli_error("-i chats with the lines of stdin: no -p");
    if (!o->prompt && !o->interactive && isatty(STDIN_FILENO) != 1)
        return cli_error("run needs a prompt: -p TEXT (or -i to chat with the lines of stdin)");
    o->interactive = !o->prompt;
    if (o->interactive && (o->draft || o->lookup))
        return cli_error("--draft and --lookup are for one-shot runs (-p), not chat");
    if (o->draft && o->lookup) return cli_error("--draft and --lookup exclude each other");
    mlxr_kv_type kv_type;
    if (!cli_kv_type(&o->kv, &kv_type)) return 1; /* checked before the model loads */
    if (o->threads == 0)
        o->threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    if (!o->seed_set) o->so.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return 0;
}

/* Decode `n` tokens starting at position `pos0` of sequence 0, in chunks of n_batch. */
static int generate(mlxr_model *m, mlxr_context *c, mlxr_sampler *s, const run_opts *o,
                    const int32_t *ids, int32_t n_prompt, int32_t n_ctx) {
    mlxr_err err = {0};
    const int32_t n_batch = 512;
    double t0 = cli_now_s();
    int32_t last = 0;
    if (cli_decode(c, ids, n_prompt, 0, n_batch, &last, &err) != MLXR_OK)
        return cli_error("prompt failed: %s", err.msg);
    double t1 = cli_now_s();
    for (int32_t i = 0; i < n_prompt; i++) mlxr_sampler_accept(s, ids[i]);
    int32_t n_gen = 0, pos = n_prompt;
    char piece[256];
    while (n_gen < o->n_predict) {
        int32_t tok = mlxr_sampler_sample(s, mlxr_get_logits(c, last));
        n_gen++;
        if (mlxr_token_is_eog(m, tok)) break;
        size_t len;
        if (mlxr_token_to_piece(m, tok, piece, sizeof piece, &len, &err) == MLXR_OK) {
            fwrite(piece, 1, len, stdout);
            fflush(stdout);
        }
        mlxr_sampler_accept(s, tok);
        if (n_gen == o->n_predict) break;
        if (pos >= n_ctx) {
            fprintf(stderr, "\nmlxr: context of %d tokens is full; stopping\n", n_ctx);
            break;
        }
        if (cli_decode(c, &tok, 1, pos++, 1, &last, &err) != MLXR_OK)
            return cli_error("decode failed: %s", err.msg);
    }
    double t2 = cli_now_s();
    fprintf(stderr, "\nmlxr: prompt %d tokens in %.3f s (%.1f tok/s) | generated %d tokens in %.3f s "
                    "(%.1f tok/s) | %s, %d threads, seed %llu\n",
            n_prompt, t1 - t0, n_prompt / (t1 - t0), n_gen, t2 - t1,
            n_gen > 0 ? n_gen / (t2 - t1) : 0.0, mlxr_context_isa(c),
            (int)o->threads, (unsigned long long)o->so.seed);
    return 0;
}

static bool print_token(void *user, uint64_t id, int32_t tok) {
    (void)id;
    char piece[256];
    size_t len;
    if (mlxr_token_to_piece(user, tok, piece, sizeof piece, &len, NULL) == MLXR_OK) {
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
    }
    return true;
}

/* --draft / --lookup: speculative decoding of the whole generation. */
static int generate_spec(mlxr_model *m, mlxr_context *c, mlxr_context *dc, mlxr_sampler *s,
                         const run_opts *o, const int32_t *ids, int32_t n_prompt) {
    mlxr_err err = {0};
    mlxr_spec_opts so = mlxr_spec_default_opts();
    so.n_draft = (int32_t)o->n_draft;
    mlxr_spec_stats st;
    double t0 = cli_now_s();
    if (mlxr_spec_generate(c, dc, &so, s, ids, n_prompt, (int32_t)o->n_predict, print_token, m,
                           &st, &err) != MLXR_OK)
        return cli_error("speculative decoding failed: %s", err.msg);
    double t = cli_now_s() - t0;
    fprintf(stderr, "\nmlxr: %s: %d tokens in %.3f s including the prompt (%.1f tok/s) | %d target "
                    "passes, %d of %d drafted tokens accepted (%.0f%%) | seed %llu\n",
            dc ? "draft model" : "prompt lookup", st.n_gen, t, st.n_gen / t, st.n_passes,
            st.n_accepted, st.n_drafted, st.n_drafted ? 100.0 * st.n_accepted / st.n_drafted : 0.0,
            (unsigned long long)o->so.seed);
    return 0;
}

int cli_run(int argc, char **argv) {
    run_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    char *path = cli_model_path(o.model, o.home);
    mlxr_model *m = path ? cli_load_model_gpu(path, false, o.n_gpu_layers != 0) : NULL;
    free(path);
    if (!m) return 1;
    if (o.interactive) {
        cli_chat_opts chat = {o.n_predict, o.threads, o.n_ctx, o.n_gpu_layers, MLXR_KV_F16, o.so,
                              o.system, o.batch_invariant};
        rc = cli_kv_type(&o.kv, &chat.kv_type) ? cli_chat(m, &chat) : 1;
        mlxr_model_free(m);
        return rc;
    }
    const mlxr_model_info *info = mlxr_model_get_info(m);
    mlxr_err err = {0};
    size_t len = strlen(o.prompt), n_ids = 0;
    int32_t *ids = cli_tokenize_text(m, o.prompt, len, true, &n_ids);
    mlxr_context *c = NULL, *dc = NULL;
    mlxr_model *dm = NULL;
    mlxr_sampler *s = NULL;
    rc = 1;
    if (!ids) goto done;
    if (n_ids == 0) {
        cli_error("the prompt is empty and the model adds no BOS token");
        goto done;
    }
    int32_t n_ctx = o.n_ctx ? (int32_t)o.n_ctx : info->n_ctx_train;
    if (!o.n_ctx && n_ctx > 4096) n_ctx = 4096;
    if ((int64_t)n_ids > n_ctx) {
        cli_error("the prompt has %zu tokens, more than the context size %d", n_ids, n_ctx);
        goto done;
    }
    mlxr_context_opts co = mlxr_context_default_opts();
    co.n_ctx = n_ctx;
    co.n_threads = (int32_t)o.threads;
    co.n_gpu_layers = (int32_t)o.n_gpu_layers;
    co.batch_invariant = o.batch_invariant;
    if (!cli_kv_type(&o.kv, &co.kv_type)) goto done;
    if (mlxr_context_new(m, &co, &c, &err) != MLXR_OK ||
        mlxr_sampler_new(&o.so, info->n_vocab, &s, &err) != MLXR_OK) {
        cli_error("%s", err.msg);
        goto done;
    }
    if (o.draft) {
        if (!(dm = cli_load_model_gpu(o.draft, false, o.n_gpu_layers != 0))) goto done;
        if (mlxr_context_new(dm, &co, &dc, &err) != MLXR_OK) {
            cli_error("draft: %s", err.msg);
            goto done;
        }
    }
    if (o.draft || o.lookup)
        rc = generate_spec(m, c, dc, s, &o, ids, (int32_t)n_ids);
    else
        rc = generate(m, c, s, &o, ids, (int32_t)n_ids, n_ctx);
done:
    mlxr_context_free(dc);
    mlxr_model_free(dm);
    mlxr_sampler_free(s);
    mlxr_context_free(c);
    free(ids);
    mlxr_model_free(m);
    return rc;
}
