/*
 * quantize.c - `mlxr quantize IN.gguf OUT.gguf TYPE [-t N]`: write a copy of a model with its
 * weights converted to one of llama-quantize's presets (library: mlxr_model_quantize). Prints a
 * line per converted tensor to stderr and a summary (sizes before and after) to stdout.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mlxr quantize IN.gguf OUT.gguf TYPE [-t THREADS]\n"
               "  TYPE is one of:");
    for (int32_t i = 0; mlxr_quantize_preset_at(i); i++)
        fprintf(f, " %s", mlxr_quantize_preset_at(i));
    fprintf(f, "\n  (Q3_K, Q4_K and Q5_K mean Q3_K_M, Q4_K_M and Q5_K_M, as in llama-quantize)\n");
}

static void progress(int64_t i, int64_t n, const char *name, mlxr_dtype from, mlxr_dtype to,
                     void *user) {
    (void)user;
    fprintf(stderr, "[%3lld/%3lld] %-32s %s -> %s\n", (long long)i + 1, (long long)n, name,
            mlxr_dtype_name(from), mlxr_dtype_name(to));
}

static double file_mib(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size / (1024.0 * 1024.0) : 0.0;
}

int cli_quantize(int argc, char **argv) {
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0;
    long T = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 1, 1024, &T)) return 1;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') return cli_error("unknown option '%s' for quantize", a);
        if (n_pos == 3) return cli_error("quantize takes IN.gguf OUT.gguf TYPE; extra '%s'", a);
        pos[n_pos++] = a;
    }
    if (n_pos < 3)
        return cli_error("quantize needs IN.gguf OUT.gguf TYPE (see 'mlxr quantize --help')");
    if (mlxr_quantize_preset_ftype(pos[2]) < 0)
        return cli_error("unknown quantization type '%s' (see 'mlxr quantize --help')", pos[2]);
    mlxr_quantize_opts o = mlxr_quantize_default_opts();
    o.preset = pos[2];
    o.n_threads = (int32_t)T;
    o.progress = progress;
    mlxr_err err = {0};
    const double t0 = cli_now_s();
    const mlxr_status st = mlxr_model_quantize(pos[0], pos[1], &o, &err);
    if (st != MLXR_OK)
        return cli_error("quantize failed: %s", err.msg[0] ? err.msg : mlxr_status_str(st));
    printf("quantized %s (%.2f MiB) to %s (%.2f MiB) as %s in %.2f s\n", pos[0], file_mib(pos[0]),
           pos[1], file_mib(pos[1]), pos[2], cli_now_s() - t0);
    return 0;
}
