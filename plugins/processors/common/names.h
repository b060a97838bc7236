/* SPDX-License-Identifier: Apache-2.0 */
/*
 * names.h - a bounded cache from a name (field key, measurement) to a 64-bit
 * value computed once per distinct name, typically a bit set of the glob
 * patterns that match it. Lookups hash the bytes and compare lengths first;
 * only inserting a new name allocates. When full, names_put() stores nothing
 * and callers compute the value again: correct, only slower.
 */
#ifndef GATHERD_NAMES_H
#define GATHERD_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NAMES_SLOTS 1024 /* power of two; at most 3/4 used */

struct names_slot {
    char *name;
    uint32_t len;
    uint32_t hash;
    uint64_t val;
};

typedef struct names {
    struct names_slot *slots;
    size_t used;
} names;

/* A set of first bytes: the bytes a name must start with to possibly match
 * one of a list of globs. A name starting elsewhere needs no lookup. */
typedef struct names_first {
    uint64_t bits[4];
} names_first;

/* names_first_add() - allow what glob @pattern can start with. */
void names_first_add(names_first *f, const char *pattern);

/* names_first_has() - can a name starting with @c match? */
static inline bool names_first_has(const names_first *f, unsigned char c)
{
    return (f->bits[c >> 6] >> (c & 63)) & 1;
}

/* names_init() - an empty cache. Returns 0 or GD_ENOMEM. */
int names_init(names *c);
/* names_free() - release the cache. Accepts a zeroed one. */
void names_free(names *c);
/* names_hash() - the hash names_get()/names_put() take. */
uint32_t names_hash(const char *s, size_t len);
/* names_get() - true and *val when @s is cached. */
bool names_get(const names *c, const char *s, size_t len, uint32_t h, uint64_t *val);
/* names_put() - remember @val for @s (copied); silently skipped when full. */
void names_put(names *c, const char *s, size_t len, uint32_t h, uint64_t val);

#endif
