/* SPDX-License-Identifier: Apache-2.0 */
/* names.c - see names.h. Open addressing with linear probing. */
#include "names.h"
#include <gatherd/common.h>
#include <stdlib.h>
#include <string.h>

#define MIX_1 0x9e3779b97f4a7c15ull
#define MIX_2 0xff51afd7ed558ccdull

int names_init(names *c)
{
    c->used = 0;
    c->slots = calloc(NAMES_SLOTS, sizeof(*c->slots));
    return c->slots ? 0 : GD_ENOMEM;
}

void names_free(names *c)
{
    if (!c->slots)
        return;
    for (size_t i = 0; i < NAMES_SLOTS; i++)
        free(c->slots[i].name);
    free(c->slots);
    c->slots = NULL;
}

/* Hashes the length and the first and last 8 bytes: O(1) per name, and
 * field names of one schema rarely share both ends and the length. */
uint32_t names_hash(const char *s, size_t len)
{
    uint64_t a = 0, b = 0;
    if (len >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + len - 8, 8);
    } else {
        for (size_t i = 0; i < len; i++) /* short: no memcpy call */
            a = a << 8 | (unsigned char)s[i];
    }
    uint64_t h = (a ^ (b * MIX_1) ^ (uint64_t)len) * MIX_2;
    return (uint32_t)(h >> 32);
}

bool names_get(const names *c, const char *s, size_t len, uint32_t h, uint64_t *val)
{
    for (size_t i = h & (NAMES_SLOTS - 1);; i = (i + 1) & (NAMES_SLOTS - 1)) {
        const struct names_slot *e = &c->slots[i];
        if (!e->name)
            return false;
        if (e->hash == h && e->len == len && memcmp(e->name, s, len) == 0) {
            *val = e->val;
            return true;
        }
    }
}

void names_put(names *c, const char *s, size_t len, uint32_t h, uint64_t val)
{
    if (c->used >= NAMES_SLOTS / 4 * 3 || len > UINT32_MAX)
        return;
    size_t i = h & (NAMES_SLOTS - 1);
    while (c->slots[i].name)
        i = (i + 1) & (NAMES_SLOTS - 1);
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, s, len);
    copy[len] = '\0';
    c->slots[i] = (struct names_slot){.name = copy, .len = (uint32_t)len, .hash = h, .val = val};
    c->used++;
}

void names_first_add(names_first *f, const char *pattern)
{
    unsigned char c = (unsigned char)pattern[0];
    if (c == '*' || c == '?' || c == '[' || c == '\\' || c == '\0') {
        memset(f->bits, 0xff, sizeof(f->bits)); /* any first byte */
        return;
    }
    f->bits[c >> 6] |= UINT64_C(1) << (c & 63);
}
