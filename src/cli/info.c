/*
 * info.c - `mlxr info`: a GGUF file's header, every metadata key with its value (long arrays
 * abbreviated) and the tensor table; for a Hugging Face / MLX directory or .safetensors file,
 * info_hf.c prints its configuration and tensors instead.
 */
#include "cli.h"
#include "format/gguf.h"
#include "model/hf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Print a string value, escaping control bytes, at most `max` bytes. */
static void print_str(mlxr_gguf_str s, size_t max) {
    putchar('"');
    for (uint64_t i = 0; i < s.len && i < max; i++) {
        unsigned char ch = (unsigned char)s.data[i];
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch == '\n') printf("\\n");
        else if (ch < 0x20 || ch == 0x7f) printf("\\x%02x", ch);
        else putchar(ch);
    }
    if (s.len > max) printf("...");
    putchar('"');
}

static void print_scalar(const mlxr_gguf_value *v) {
    switch (v->type) {
    case MLXR_GGUF_UINT8: case MLXR_GGUF_UINT16: case MLXR_GGUF_UINT32: case MLXR_GGUF_UINT64:
        printf("%" PRIu64, v->v.u64);
        break;
    case MLXR_GGUF_INT8: case MLXR_GGUF_INT16: case MLXR_GGUF_INT32: case MLXR_GGUF_INT64:
        printf("%" PRId64, v->v.i64);
        break;
    case MLXR_GGUF_FLOAT32: case MLXR_GGUF_FLOAT64:
        printf("%g", v->v.f64);
        break;
    case MLXR_GGUF_BOOL:
        printf("%s", v->v.b ? "true" : "false");
        break;
    case MLXR_GGUF_STRING:
        print_str(v->v.str, 200);
        break;
    default:
        printf("?");
    }
}

static void print_array(const mlxr_gguf_value *v) {
    const uint64_t show = 8;
    printf("[%s x %" PRIu64 "] [", mlxr_gguf_type_name(v->v.arr.type), v->v.arr.n);
    for (uint64_t i = 0; i < v->v.arr.n && i < show; i++) {
        if (i) printf(", ");
        if (v->v.arr.type == MLXR_GGUF_STRING) {
            print_str(mlxr_gguf_arr_str(v, i), 40);
        } else if (v->v.arr.type == MLXR_GGUF_ARRAY) {
            mlxr_gguf_value inner = mlxr_gguf_arr_nested(v, i);
            print_array(&inner);
        } else if (v->v.arr.type == MLXR_GGUF_FLOAT32) {
            printf("%g", (double)mlxr_gguf_arr_f32(v, i));
        } else if (v->v.arr.type == MLXR_GGUF_INT32) {
            printf("%d", mlxr_gguf_arr_i32(v, i));
        } else {
            printf("...");
            break;
        }
    }
    if (v->v.arr.n > show) printf(", ...");
    printf("]");
}

int cli_info(int argc, char **argv) {
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(model = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: mlxr info [-m MODEL]\n");
            return 0;
        } else {
            return cli_error("unknown option '%s' for info", argv[i]);
        }
    }
    if (!model) model = cli_default_model();
    if (mlxr_hf_is_path(model)) return cli_info_hf(model);
    mlxr_gguf *g = NULL;
    mlxr_err err = {0};
    if (mlxr_gguf_open(model, &g, &err) != MLXR_OK)
        return cli_error("cannot read '%s': %s", model, err.msg);
    printf("file: %s\nGGUF version: %u\nfile size: %zu bytes\nalignment: %u\ndata offset: %" PRIu64
           "\n\nmetadata (%" PRId64 " keys):\n",
           model, mlxr_gguf_version(g), mlxr_gguf_file_size(g), mlxr_gguf_alignment(g),
           mlxr_gguf_data_offset(g), mlxr_gguf_n_kv(g));
    for (int64_t i = 0; i < mlxr_gguf_n_kv(g); i++) {
        const mlxr_gguf_kv *kv = mlxr_gguf_kv_at(g, i);
        printf("  %.*s = ", (int)kv->key.len, kv->key.data);
        if (kv->value.type == MLXR_GGUF_ARRAY) print_array(&kv->value);
        else print_scalar(&kv->value);
        printf("\n");
    }
    printf("\ntensors (%" PRId64 "):\n  %-4s %-32s %-8s %-24s %12s %12s\n", mlxr_gguf_n_tensors(g),
           "#", "name", "type", "shape", "offset", "bytes");
    for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
        const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
        char shape[64];
        int n = snprintf(shape, sizeof shape, "[%" PRId64, t->ne[0]);
        for (uint32_t d = 1; d < t->n_dims && n < (int)sizeof shape; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, ", %" PRId64, t->ne[d]);
        if (n < (int)sizeof shape) snprintf(shape + n, sizeof shape - (size_t)n, "]");
        printf("  %-4" PRId64 " %-32.*s %-8s %-24s %12" PRIu64 " %12zu\n", i, (int)t->name.len,
               t->name.data, mlxr_dtype_name(t->type), shape, t->offset, t->nbytes);
    }
    mlxr_gguf_close(g);
    return 0;
}
