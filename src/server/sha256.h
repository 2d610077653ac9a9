/*
 * sha256.h - SHA-256 (FIPS 180-4), for verifying and naming imported model files.
 */
#ifndef MLXR_SERVER_SHA256_H
#define MLXR_SERVER_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct mlxr_sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t block[64];
    size_t n_block;
} mlxr_sha256;

void mlxr_sha256_init(mlxr_sha256 *s);
void mlxr_sha256_update(mlxr_sha256 *s, const void *data, size_t len);
/* Finish and write the digest as 64 lowercase hex digits + NUL. */
void mlxr_sha256_hex(mlxr_sha256 *s, char hex[65]);

#endif
