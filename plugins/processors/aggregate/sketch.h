/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sketch.h - a bounded quantile sketch with relative error: values are kept
 * exactly while there are few of them, then counted in logarithmic buckets
 * (the DDSketch mapping): bucket i of magnitudes holds (g^(i-1), g^i] with
 * g = (1+a)/(1-a), and answers with 2 g^i / (g+1), within a relative error a
 * of every value in the bucket. Each sign has at most SKETCH_MAX_BUCKETS
 * buckets; beyond, the smallest magnitudes are merged (their quantiles lose
 * the guarantee, as documented).
 */
#ifndef GATHERD_AGG_SKETCH_H
#define GATHERD_AGG_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#define SKETCH_EXACT       64   /* values kept exactly before bucketing */
#define SKETCH_MAX_BUCKETS 2048 /* per sign */

struct sk_store {
    int32_t lo; /* index of c[0] */
    uint32_t n; /* buckets in use: lo .. lo+n-1 */
    uint32_t cap;
    uint64_t *c;
};

struct sketch {
    uint64_t count;
    uint32_t nexact;
    double exact[SKETCH_EXACT];
    uint64_t zeros;
    struct sk_store pos, neg; /* magnitudes of positive and negative values */
};

/* The bucket mapping, shared by every sketch of an instance. */
struct sk_map {
    double gamma;
    double inv_log_gamma;
};

void sk_map_init(struct sk_map *m, double rel_accuracy);
void sk_reset(struct sketch *s);
void sk_release(struct sketch *s);
int sk_add(struct sketch *s, const struct sk_map *m, double v);
/* sk_quantile() - the nearest-rank q-quantile (0 < q <= 1) of the values
 * added: exact while at most SKETCH_EXACT values were added. Reorders the
 * exact values. */
double sk_quantile(struct sketch *s, const struct sk_map *m, double q);

#endif
