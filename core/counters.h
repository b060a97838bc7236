/* SPDX-License-Identifier: Apache-2.0 */
/*
 * counters.h - per-instance counters, updated from any thread.
 *
 * For every output the core keeps
 *     received == delivered + dropped (all reasons) + queued
 * where queued counts points waiting in the queue plus points in flight.
 * Inputs count points collected, errors, overruns and skipped collects;
 * processors count points in and out.
 */
#ifndef GATHERD_CORE_COUNTERS_H
#define GATHERD_CORE_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#define GD__MAX_DROP_REASONS 12

struct gd__drop_slot {
    _Atomic(const char *) reason; /* static string, set once */
    atomic_uint_fast64_t n;
};

typedef struct gd__counters {
    atomic_uint_fast64_t received;  /* points in (outputs: offered to the queue) */
    atomic_uint_fast64_t delivered; /* outputs: written; inputs/processors: points out */
    atomic_uint_fast64_t retries;
    atomic_uint_fast64_t errors;
    atomic_uint_fast64_t overruns; /* inputs: ticks that found the last collect running */
    atomic_uint_fast64_t skipped;  /* inputs: collects skipped because outputs were full */
    atomic_uint_fast64_t runs;     /* inputs: collects run; outputs: writes attempted */
    atomic_int_fast64_t last_ok_ns;
    struct gd__drop_slot drops[GD__MAX_DROP_REASONS];
} gd__counters;

/* gd__count_drop() - add @n points dropped for @reason (a static string;
 * reasons beyond the table's size are counted as "other"). */
void gd__count_drop(gd__counters *c, const char *reason, uint64_t n);
/* gd__dropped() - points dropped for @reason (NULL: all reasons). */
uint64_t gd__dropped(const gd__counters *c, const char *reason);
/* gd__counters_print() - "received=.. delivered=.. dropped{reason}=.." on one line. */
void gd__counters_print(const gd__counters *c, FILE *f);

#endif
