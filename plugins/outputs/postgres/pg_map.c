/* SPDX-License-Identifier: Apache-2.0 */
/* pg_map.c - string -> index map with linear probing (see pg_map.h). */
#include "pg_map.h"
#include <gatherd/common.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SLOTS 16

uint32_t pgm_hash(const char *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h;
}

static struct pgm_slot *find(const struct pgm *m, const char *key, size_t len, uint32_t hash)
{
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        struct pgm_slot *s = &m->slots[i];
        if (!s->key || (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

int64_t pgm_get(const struct pgm *m, const char *key, size_t len, uint32_t hash)
{
    if (!m->n)
        return -1;
    const struct pgm_slot *s = find(m, key, len, hash);
    return s->key ? (int64_t)s->value : -1;
}

static int grow(struct pgm *m)
{
    size_t cap = m->cap ? m->cap * 2 : MIN_SLOTS;
    struct pgm_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = calloc(cap, sizeof(*m->slots));
    if (!m->slots) {
        m->slots = old;
        return GD_ENOMEM;
    }
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            *find(m, old[i].key, old[i].len, old[i].hash) = old[i];
    free(old);
    return 0;
}

int pgm_put(struct pgm *m, const char *key, size_t len, uint32_t hash, uint32_t value)
{
    if ((m->n + 1) * 2 > m->cap && grow(m) < 0)
        return GD_ENOMEM;
    struct pgm_slot *s = find(m, key, len, hash);
    if (!s->key) {
        s->key = key;
        s->len = (uint32_t)len;
        s->hash = hash;
        m->n++;
    }
    s->value = value;
    return 0;
}

void pgm_clear(struct pgm *m)
{
    if (m->slots)
        memset(m->slots, 0, m->cap * sizeof(*m->slots));
    m->n = 0;
}

void pgm_free(struct pgm *m)
{
    if (!m)
        return;
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}
