/* SPDX-License-Identifier: Apache-2.0 */
/*
 * series.h - per-series state of a processor: a hash table keyed by
 * measurement + tags (kept sorted in a batch, so the key is canonical), with
 * a least-recently-used list and a bound on the number of entries.
 *
 * A point's key is hashed straight from its measurement and tags (eight
 * bytes at a time, nothing copied) and compared part by part with the key
 * stored in the entry; the key is copied once, when its series first
 * appears. Lookups are memory-bound when there are many series, so a
 * lookahead (series_ahead) hashes the points a little ahead and prefetches
 * their buckets and entries.
 *
 *     series_ahead la;
 *     series_ahead_start(&la, &t, batch);
 *     for (i = 0; i < len; i++) {
 *         uint64_t h = series_ahead_next(&la, i);
 *         struct my_entry *e = (struct my_entry *)series_get(&t, p, h, &created);
 */
#ifndef GATHERD_PROC_SERIES_H
#define GATHERD_PROC_SERIES_H

#include <gatherd/gatherd.h>
#include <string.h>

/* The head of an entry: embed it as the first member of the entry struct. */
typedef struct series {
    struct series *hnext;         /* bucket chain */
    struct series *newer, *older; /* LRU list */
    uint64_t hash;
    uint64_t moved; /* table tick when last moved to the front */
    char *key;      /* length-prefixed measurement, tag keys and values; stored
                       right after the embedding struct */
    size_t key_len;
} series;

typedef struct series_table {
    series **buckets;
    size_t nbuckets; /* power of two */
    size_t n;
    size_t max;        /* entries kept at most; the least recently used goes */
    size_t entry_size; /* sizeof the embedding struct */
    series *newest, *oldest;
    uint64_t tick; /* moves to the front so far */
} series_table;

#define SERIES_AHEAD 4 /* ring of hashes ahead (a power of two, > 3) */

/* A lookahead over the points of one batch. */
typedef struct series_ahead {
    const series_table *t;
    const gd_batch *b;
    size_t len;
    uint64_t h[SERIES_AHEAD];
} series_ahead;

/* series_same() - equality of @n bytes, inlined for the short names and keys
 * compared on every point: whole words, the tail by an overlapping load. */
static inline bool series_same(const char *a, const char *b, size_t n)
{
    uint64_t x, y;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y)
                return false;
        }
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        uint32_t p, q, r, t;
        memcpy(&p, a, 4);
        memcpy(&q, b, 4);
        memcpy(&r, a + n - 4, 4);
        memcpy(&t, b + n - 4, 4);
        return p == q && r == t;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* series_table_init() - an empty table of entries of @entry_size bytes
 * (zeroed when created), at most @max of them. */
int series_table_init(series_table *t, size_t entry_size, size_t max);

/* series_table_free() - free the table and every entry (the caller has
 * released what its entries own first). Accepts a zeroed table. */
void series_table_free(series_table *t);

/* series_hash() - the hash of @p's series. */
uint64_t series_hash(const gd_point *p);

/* series_ahead_start() - begin a lookahead over @b. */
void series_ahead_start(series_ahead *la, const series_table *t, const gd_batch *b);

/* series_ahead_next() - the hash of point @i (call for i = 0, 1, 2, ... in
 * order); hashes point i+3 and fetches its bucket, fetches the entry of
 * point i+2, so both are in cache by the time they are used. */
uint64_t series_ahead_next(series_ahead *la, size_t i);

/* series_get() - the entry of @p's series (hash @h), made the most recently
 * used (an entry moved to the front within the last max/4 moves keeps its
 * place: it is far from the eviction end, and hits stay cheap). A new entry
 * is zeroed and *@created set; the caller evicts with series_unlink() when
 * the table holds more than max. Returns NULL when out of memory. */
series *series_get(series_table *t, const gd_point *p, uint64_t h, bool *created);

/* series_unlink() - take @s out of the table (the caller frees it with
 * series_free() after releasing what it owns). */
void series_unlink(series_table *t, series *s);

/* series_free() - free an unlinked entry (its key with it). */
void series_free(series *s);

/* series_add_point() - append a point with @s's measurement (or @measurement
 * when not NULL) and tags to @b. */
gd_point *series_add_point(const series *s, gd_batch *b, const char *measurement, int64_t ts);

#endif
