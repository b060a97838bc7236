/* SPDX-License-Identifier: Apache-2.0 */
/* series.c - the per-series table (see series.h). */
#include "series.h"
#include <stdlib.h>
#include <string.h>

#define MIN_BUCKETS 64
#define HASH_SEED   0x9e3779b97f4a7c15ULL
#define HASH_MUL    0xff51afd7ed558ccdULL

static inline uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= HASH_MUL;
    h ^= h >> 33;
    return h;
}

/* Fold one part (a name or value) into @h: its length, then eight bytes at
 * a time with one multiply each, short tails by overlapping loads. Mixed
 * well once at the end (series_hash). */
static inline uint64_t hash_part(uint64_t h, const char *s, size_t n)
{
    uint64_t w;
    h = (h ^ n) * HASH_MUL;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&w, s + i, 8);
            h = (h ^ w) * HASH_MUL;
            h ^= h >> 29;
        }
        memcpy(&w, s + n - 8, 8);
    } else if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        w = (uint64_t)hi << 32 | lo;
    } else {
        w = 0;
        for (size_t i = 0; i < n; i++)
            w = w << 8 | (unsigned char)s[i];
    }
    h = (h ^ w) * HASH_MUL;
    return h ^ (h >> 29);
}

uint64_t series_hash(const gd_point *p)
{
    size_t mlen, ntags;
    const char *m = gd_point_measurement(p, &mlen);
    const gd_tag *tags = gd_point_tags(p, &ntags);
    uint64_t h = hash_part(HASH_SEED, m, mlen);
    for (size_t i = 0; i < ntags; i++) {
        h = hash_part(h, tags[i].key, tags[i].key_len);
        h = hash_part(h, tags[i].value, tags[i].value_len);
    }
    return mix(h);
}

static void prefetch_bucket(const series_table *t, uint64_t h)
{
    __builtin_prefetch(&t->buckets[h & (t->nbuckets - 1)]);
}

static void prefetch_entry(const series_table *t, uint64_t h)
{
    const series *s = t->buckets[h & (t->nbuckets - 1)];
    if (s) {
        __builtin_prefetch(s);
        __builtin_prefetch((const char *)s + 64);
    }
}

void series_ahead_start(series_ahead *la, const series_table *t, const gd_batch *b)
{
    la->t = t;
    la->b = b;
    la->len = gd_batch_len(b);
    for (size_t i = 0; i < 3 && i < la->len; i++) {
        la->h[i] = series_hash(gd_batch_point(b, i));
        prefetch_bucket(t, la->h[i]);
    }
    if (la->len > 1)
        prefetch_entry(t, la->h[1]);
}

uint64_t series_ahead_next(series_ahead *la, size_t i)
{
    /* two stages, a point apart: the bucket, then the entry it names */
    if (i + 3 < la->len) {
        uint64_t h = series_hash(gd_batch_point(la->b, i + 3));
        la->h[(i + 3) & (SERIES_AHEAD - 1)] = h;
        prefetch_bucket(la->t, h);
    }
    if (i + 2 < la->len)
        prefetch_entry(la->t, la->h[(i + 2) & (SERIES_AHEAD - 1)]);
    return la->h[i & (SERIES_AHEAD - 1)];
}

int series_table_init(series_table *t, size_t entry_size, size_t max)
{
    memset(t, 0, sizeof(*t));
    t->buckets = calloc(MIN_BUCKETS, sizeof(*t->buckets));
    if (!t->buckets)
        return GD_ENOMEM;
    t->nbuckets = MIN_BUCKETS;
    t->entry_size = entry_size;
    t->max = max;
    return 0;
}

void series_table_free(series_table *t)
{
    series *s = t->newest;
    while (s) {
        series *next = s->older;
        series_free(s);
        s = next;
    }
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}

/* Compare one length-prefixed part of a stored key at *@off with @s. */
static inline bool part_is(const char *k, size_t *off, const char *s, uint32_t n)
{
    uint32_t len;
    memcpy(&len, k + *off, sizeof(len));
    if (len != n || !series_same(k + *off + sizeof(len), s, n))
        return false;
    *off += sizeof(len) + n;
    return true;
}

static bool key_is(const series *s, const gd_point *p)
{
    size_t mlen, ntags, off = 0;
    const char *m = gd_point_measurement(p, &mlen);
    const gd_tag *tags = gd_point_tags(p, &ntags);
    if (!part_is(s->key, &off, m, (uint32_t)mlen))
        return false;
    for (size_t i = 0; i < ntags; i++) {
        if (off >= s->key_len || !part_is(s->key, &off, tags[i].key, tags[i].key_len) ||
            !part_is(s->key, &off, tags[i].value, tags[i].value_len))
            return false;
    }
    return off == s->key_len;
}

/* Append a length-prefixed part. */
static char *kput(char *k, const char *s, uint32_t n)
{
    memcpy(k, &n, sizeof(n));
    memcpy(k + sizeof(n), s, n);
    return k + sizeof(n) + n;
}

/* A new entry with @p's key right after it (one cache line less per
 * lookup than a separate allocation). */
static series *entry_new(const series_table *t, const gd_point *p)
{
    size_t mlen, ntags;
    const char *m = gd_point_measurement(p, &mlen);
    const gd_tag *tags = gd_point_tags(p, &ntags);
    size_t klen = sizeof(uint32_t) * (1 + 2 * ntags) + mlen;
    for (size_t i = 0; i < ntags; i++)
        klen += tags[i].key_len + tags[i].value_len;
    series *s = calloc(1, t->entry_size + klen);
    if (!s)
        return NULL;
    s->key = (char *)s + t->entry_size;
    s->key_len = klen;
    char *k = kput(s->key, m, (uint32_t)mlen);
    for (size_t i = 0; i < ntags; i++) {
        k = kput(k, tags[i].key, tags[i].key_len);
        k = kput(k, tags[i].value, tags[i].value_len);
    }
    return s;
}

static void lru_remove(series_table *t, series *s)
{
    if (s->newer)
        s->newer->older = s->older;
    else
        t->newest = s->older;
    if (s->older)
        s->older->newer = s->newer;
    else
        t->oldest = s->newer;
    s->newer = s->older = NULL;
}

static void lru_push(series_table *t, series *s)
{
    s->newer = NULL;
    s->older = t->newest;
    if (t->newest)
        t->newest->newer = s;
    else
        t->oldest = s;
    t->newest = s;
}

static void grow(series_table *t)
{
    size_t nb = t->nbuckets * 2;
    series **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        series *s = t->buckets[i];
        while (s) {
            series *next = s->hnext;
            s->hnext = b[s->hash & (nb - 1)];
            b[s->hash & (nb - 1)] = s;
            s = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

series *series_get(series_table *t, const gd_point *p, uint64_t h, bool *created)
{
    *created = false;
    series **slot = &t->buckets[h & (t->nbuckets - 1)];
    for (series *s = *slot; s; s = s->hnext) {
        if (s->hash == h && key_is(s, p)) {
            if (t->newest != s && t->tick - s->moved > t->max / 4) {
                lru_remove(t, s);
                lru_push(t, s);
                s->moved = ++t->tick;
            }
            return s;
        }
    }
    series *s = entry_new(t, p);
    if (!s)
        return NULL;
    s->hash = h;
    s->hnext = *slot;
    *slot = s;
    lru_push(t, s);
    s->moved = ++t->tick;
    t->n++;
    *created = true;
    if (t->n > t->nbuckets)
        grow(t);
    return s;
}

void series_unlink(series_table *t, series *s)
{
    series **pp = &t->buckets[s->hash & (t->nbuckets - 1)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = s->hnext;
    lru_remove(t, s);
    t->n--;
}

void series_free(series *s)
{
    free(s);
}

/* Walk the length-prefixed parts of a key. */
static const char *part(const char *k, size_t *off, uint32_t *len)
{
    memcpy(len, k + *off, sizeof(*len));
    const char *p = k + *off + sizeof(*len);
    *off += sizeof(*len) + *len;
    return p;
}

gd_point *series_add_point(const series *s, gd_batch *b, const char *measurement, int64_t ts)
{
    size_t off = 0;
    uint32_t n;
    const char *m = part(s->key, &off, &n);
    gd_point *p = measurement ? gd_batch_add(b, measurement, ts) : gd_batch_add_n(b, m, n, ts);
    while (p && off < s->key_len) {
        uint32_t kn, vn;
        const char *k = part(s->key, &off, &kn);
        const char *v = part(s->key, &off, &vn);
        gd_point_tag_n(p, k, kn, v, vn);
    }
    return p;
}
