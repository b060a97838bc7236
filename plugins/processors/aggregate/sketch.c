/* SPDX-License-Identifier: Apache-2.0 */
/* sketch.c - the quantile sketch (see sketch.h). */
#include "sketch.h"
#include <gatherd/common.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void sk_map_init(struct sk_map *m, double a)
{
    m->gamma = (1 + a) / (1 - a);
    m->inv_log_gamma = 1.0 / log(m->gamma);
}

void sk_reset(struct sketch *s)
{
    s->count = 0;
    s->nexact = 0;
    s->zeros = 0;
    s->pos.n = 0;
    s->neg.n = 0;
}

void sk_release(struct sketch *s)
{
    free(s->pos.c);
    free(s->neg.c);
    s->pos.c = s->neg.c = NULL;
    s->pos.cap = s->neg.cap = 0;
    sk_reset(s);
}

static int32_t index_of(const struct sk_map *m, double mag)
{
    double i = ceil(log(mag) * m->inv_log_gamma);
    if (i < INT32_MIN / 2)
        return INT32_MIN / 2;
    if (i > INT32_MAX / 2)
        return INT32_MAX / 2;
    return (int32_t)i;
}

static int store_reserve(struct sk_store *st, uint32_t n)
{
    if (n <= st->cap)
        return 0;
    uint32_t cap = st->cap ? st->cap : 16;
    while (cap < n)
        cap *= 2;
    uint64_t *c = realloc(st->c, cap * sizeof(*c));
    if (!c)
        return GD_ENOMEM;
    st->c = c;
    st->cap = cap;
    return 0;
}

static int store_add(struct sk_store *st, int32_t i)
{
    if (st->n == 0) {
        if (store_reserve(st, 1) < 0)
            return GD_ENOMEM;
        st->lo = i;
        st->n = 1;
        st->c[0] = 1;
        return 0;
    }
    int32_t hi = st->lo + (int32_t)st->n - 1;
    if (i > hi) {
        int64_t want = (int64_t)i - st->lo + 1;
        if (want > SKETCH_MAX_BUCKETS) {
            /* merge the smallest magnitudes into the lowest bucket kept */
            uint32_t shift = (uint32_t)(want - SKETCH_MAX_BUCKETS);
            if (shift >= st->n) {
                uint64_t total = 0;
                for (uint32_t k = 0; k < st->n; k++)
                    total += st->c[k];
                st->lo = i - SKETCH_MAX_BUCKETS + 1;
                st->n = SKETCH_MAX_BUCKETS;
                if (store_reserve(st, st->n) < 0)
                    return GD_ENOMEM;
                memset(st->c, 0, st->n * sizeof(*st->c));
                st->c[0] = total;
            } else {
                for (uint32_t k = 1; k <= shift; k++)
                    st->c[shift] += st->c[k - 1];
                memmove(st->c, st->c + shift, (st->n - shift) * sizeof(*st->c));
                st->n -= shift;
                st->lo += (int32_t)shift;
            }
            want = (int64_t)i - st->lo + 1;
        }
        if (store_reserve(st, (uint32_t)want) < 0)
            return GD_ENOMEM;
        memset(st->c + st->n, 0, ((uint32_t)want - st->n) * sizeof(*st->c));
        st->n = (uint32_t)want;
    } else if (i < st->lo) {
        int64_t grow = (int64_t)st->lo - i;
        if ((int64_t)st->n + grow > SKETCH_MAX_BUCKETS) {
            st->c[0]++; /* below the range kept: merged into its lowest bucket */
            return 0;
        }
        if (store_reserve(st, st->n + (uint32_t)grow) < 0)
            return GD_ENOMEM;
        memmove(st->c + grow, st->c, st->n * sizeof(*st->c));
        memset(st->c, 0, (size_t)grow * sizeof(*st->c));
        st->n += (uint32_t)grow;
        st->lo = i;
    }
    st->c[i - st->lo]++;
    return 0;
}

static int bucket(struct sketch *s, const struct sk_map *m, double v)
{
    if (v > 0)
        return store_add(&s->pos, index_of(m, v));
    if (v < 0)
        return store_add(&s->neg, index_of(m, -v));
    s->zeros++;
    return 0;
}

int sk_add(struct sketch *s, const struct sk_map *m, double v)
{
    s->count++;
    if (s->count <= SKETCH_EXACT) {
        s->exact[s->nexact++] = v;
        return 0;
    }
    if (s->nexact) {
        for (uint32_t k = 0; k < s->nexact; k++)
            if (bucket(s, m, s->exact[k]) < 0)
                return GD_ENOMEM;
        s->nexact = 0;
    }
    return bucket(s, m, v);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double value_of(const struct sk_map *m, int32_t i)
{
    return 2.0 * pow(m->gamma, i) / (m->gamma + 1.0);
}

double sk_quantile(struct sketch *s, const struct sk_map *m, double q)
{
    if (s->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)s->count);
    if (rank < 1)
        rank = 1;
    if (rank > s->count)
        rank = s->count;
    if (s->nexact == s->count) {
        qsort(s->exact, s->nexact, sizeof(double), cmp_double);
        return s->exact[rank - 1];
    }
    uint64_t seen = 0;
    for (uint32_t k = s->neg.n; k-- > 0;) { /* most negative first */
        seen += s->neg.c[k];
        if (seen >= rank)
            return -value_of(m, s->neg.lo + (int32_t)k);
    }
    seen += s->zeros;
    if (seen >= rank)
        return 0;
    for (uint32_t k = 0; k < s->pos.n; k++) {
        seen += s->pos.c[k];
        if (seen >= rank)
            return value_of(m, s->pos.lo + (int32_t)k);
    }
    return value_of(m, s->pos.lo + (int32_t)s->pos.n - 1);
}
