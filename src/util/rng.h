/*
 * rng.h - the project's pseudo-random generator: xoshiro256** (Blackman and Vigna), seeded
 * through splitmix64, so that one 64-bit seed reproduces a stream exactly on every machine.
 */
#ifndef MLXR_UTIL_RNG_H
#define MLXR_UTIL_RNG_H

#include <stdint.h>

typedef struct mlxr_rng {
    uint64_t s[4];
} mlxr_rng;

static inline uint64_t mlxr_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void mlxr_rng_seed(mlxr_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = mlxr_splitmix64(&seed);
}

static inline uint64_t mlxr_rng_rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t mlxr_rng_next(mlxr_rng *r) {
    uint64_t *s = r->s;
    const uint64_t result = mlxr_rng_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = mlxr_rng_rotl(s[3], 45);
    return result;
}

#endif
