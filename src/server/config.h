/*
 * config.h - the daemon's configuration file: `key = value` lines, '#' starts a comment, keys
 * are the long flags of `mlxr serve` without the dashes (host, port, socket, home, model,
 * threads, ctx-size, max-queue, max-body, timeout, max-connections, api-key, cors, quiet).
 * Repeatable keys (api-key, cors) may appear several times. Values may be "double-quoted".
 * Flags given on the command line override the file (repeatable ones are added to it).
 *
 * Example (HOME/mlxr.conf, or --config PATH):
 *     # listen on all interfaces, port 8080
 *     host = 0.0.0.0
 *     port = 8080
 *     api-key = "sk-local-1"
 *     cors = http://localhost:3000
 */
#ifndef MLXR_SERVER_CONFIG_H
#define MLXR_SERVER_CONFIG_H

#include "mlxr.h"

#include <stddef.h>

typedef struct mlxr_config_kv {
    char *key, *value;
    int line;
} mlxr_config_kv;

/* Read a config file. A missing file is MLXR_ERR_IO; a malformed line MLXR_ERR_FORMAT naming
 * the line. *out: mlxr_config_free. */
mlxr_status mlxr_config_read(const char *path, mlxr_config_kv **out, size_t *n, mlxr_err *err);
void mlxr_config_free(mlxr_config_kv *kv, size_t n);

#endif
