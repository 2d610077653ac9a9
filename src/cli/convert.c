/*
 * convert.c - `mlxr convert --mlx-bits B [--group-size G] [--shard-mib N] IN_DIR OUT_DIR`: write
 * an MLX-format copy (what mlx-lm's `convert -q` writes) of a Hugging Face model directory with
 * F16/BF16 weights (library: mlxr_hf_write_mlx in model/hf.h). The copy loads with
 * `mlxr run -m OUT_DIR`.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "model/hf.h"

static void usage(FILE *f) {
    fprintf(f, "usage: mlxr convert --mlx-bits 4|8 [--group-size 32|64|128] [--shard-mib N] "
               "IN_DIR OUT_DIR\n"
               "  quantizes the embedding and every linear layer of the Hugging Face model in\n"
               "  IN_DIR with MLX's affine rule (default group size 64) into OUT_DIR; with\n"
               "  --shard-mib, tensors go to shards of about N MiB with an index file\n");
}

int cli_convert(int argc, char **argv) {
    const char *pos[2] = {NULL, NULL};
    int n_pos = 0;
    long bits = 0, gs = 64, shard_mib = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--mlx-bits")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 4, 8, &bits)) return 1;
            continue;
        }
        if (!strcmp(a, "--group-size")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 32, 128, &gs)) return 1;
            continue;
        }
        if (!strcmp(a, "--shard-mib")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 1, 1 << 20, &shard_mib))
                return 1;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') return cli_error("unknown option '%s' for convert", a);
        if (n_pos == 2) return cli_error("convert takes IN_DIR OUT_DIR; extra '%s'", a);
        pos[n_pos++] = a;
    }
    if (n_pos < 2 || bits == 0)
        return cli_error("convert needs --mlx-bits B IN_DIR OUT_DIR (see 'mlxr convert --help')");
    mlxr_err err = {0};
    const double t0 = cli_now_s();
    mlxr_status st = mlxr_hf_write_mlx(pos[0], pos[1], (int)bits, (int)gs,
                                       (size_t)shard_mib << 20, &err);
    if (st != MLXR_OK)
        return cli_error("convert failed: %s", err.msg[0] ? err.msg : mlxr_status_str(st));
    printf("wrote %s: MLX %ld-bit, group size %ld, in %.2f s\n", pos[1], bits, gs,
           cli_now_s() - t0);
    return 0;
}
