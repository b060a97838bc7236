/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fieldslots.h - per-field state of one series: an array of slots, each
 * beginning with a struct field_slot (the field's name, kept inline when
 * short so a lookup touches no other cache line), found by name with the
 * field's position in the point as the first guess.
 *
 *     struct my_slot { struct field_slot fs; double last; };
 *     long i = field_slots_find(&e->slots, sizeof(struct my_slot), f->key, f->key_len, k);
 *     struct my_slot *s = i >= 0 ? field_slots_at(&e->slots, sizeof(*s), i)
 *                                : field_slots_add(&e->slots, sizeof(*s), f->key, f->key_len);
 */
#ifndef GATHERD_PROC_FIELDSLOTS_H
#define GATHERD_PROC_FIELDSLOTS_H

#include "series.h"
#include <stddef.h>
#include <stdint.h>

#define FIELD_SLOT_SNAME 24 /* field names shorter than this live in the slot */

struct field_slot {
    char *name; /* sname when it fits */
    char sname[FIELD_SLOT_SNAME];
    uint32_t name_len;
};

/* Slots of @size bytes each (the caller's struct, a struct field_slot first). */
struct field_slots {
    char *v;
    size_t n, cap;
};

static inline void *field_slots_at(const struct field_slots *s, size_t size, size_t i)
{
    return s->v + i * size;
}

static inline bool field_slot_is(const struct field_slot *fs, const char *key, uint32_t len)
{
    return fs->name_len == len && series_same(fs->name, key, len);
}

/* field_slots_find() - index of the slot named @key (@len bytes), tried at
 * @pos first (fields usually keep their order); -1 when there is none. */
static inline long field_slots_find(const struct field_slots *s, size_t size, const char *key,
                                    uint32_t len, size_t pos)
{
    if (pos < s->n && field_slot_is(field_slots_at(s, size, pos), key, len))
        return (long)pos;
    for (size_t i = 0; i < s->n; i++)
        if (field_slot_is(field_slots_at(s, size, i), key, len))
            return (long)i;
    return -1;
}

/* field_slots_add() - append a zeroed slot named @key; NULL when out of
 * memory. Pointers to other slots may move; indexes stay. */
void *field_slots_add(struct field_slots *s, size_t size, const char *key, uint32_t len);

/* field_slots_free() - free the names and the array (the caller frees what
 * its slots own first). Accepts an empty set. */
void field_slots_free(struct field_slots *s, size_t size);

#endif
