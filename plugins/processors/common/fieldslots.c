/* SPDX-License-Identifier: Apache-2.0 */
/* fieldslots.c - see fieldslots.h. */
#include "fieldslots.h"

#include <stdlib.h>
#include <string.h>

void *field_slots_add(struct field_slots *s, size_t size, const char *key, uint32_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        char *v = realloc(s->v, cap * size);
        if (!v)
            return NULL;
        s->v = v;
        s->cap = cap;
        for (size_t i = 0; i < s->n; i++) { /* short names moved with their slot */
            struct field_slot *fs = field_slots_at(s, size, i);
            if (fs->name_len < FIELD_SLOT_SNAME)
                fs->name = fs->sname;
        }
    }
    struct field_slot *fs = field_slots_at(s, size, s->n);
    memset(fs, 0, size);
    fs->name = len < FIELD_SLOT_SNAME ? memcpy(fs->sname, key, len) : strndup(key, len);
    if (!fs->name)
        return NULL;
    fs->name_len = len;
    s->n++;
    return fs;
}

void field_slots_free(struct field_slots *s, size_t size)
{
    for (size_t i = 0; i < s->n; i++) {
        struct field_slot *fs = field_slots_at(s, size, i);
        if (fs->name != fs->sname)
            free(fs->name);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}
