/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_map.h - a small open-addressing map from byte strings to indexes, for
 * the table and column caches. Keys are not copied: they must stay valid
 * (and unchanged) while they are in the map.
 */
#ifndef GATHERD_PG_MAP_H
#define GATHERD_PG_MAP_H

#include <stddef.h>
#include <stdint.h>

struct pgm_slot {
    const char *key; /* NULL: empty */
    uint32_t len;
    uint32_t hash;
    uint32_t value;
};

struct pgm {
    struct pgm_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
};

/* pgm_hash() - the hash of a key (FNV-1a). */
uint32_t pgm_hash(const char *key, size_t len);

/* pgm_get() - the value of @key, or -1. */
int64_t pgm_get(const struct pgm *m, const char *key, size_t len, uint32_t hash);

/* pgm_put() - map @key to @value (replacing an existing value). 0 or
 * GD_ENOMEM. */
int pgm_put(struct pgm *m, const char *key, size_t len, uint32_t hash, uint32_t value);

/* pgm_clear() - forget every key, keeping the memory. */
void pgm_clear(struct pgm *m);

/* pgm_free() - release the memory. Accepts NULL. */
void pgm_free(struct pgm *m);

#endif
