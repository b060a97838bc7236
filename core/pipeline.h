/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pipeline.h - routing batches from a source through processors to outputs.
 *
 * A pipeline is an immutable snapshot (processors in config order, outputs)
 * that the runtime swaps on reload. `match` globs select by the source input's
 * name or by a point's measurement; an empty match takes everything. A
 * processor sees the matching points; the others bypass it. Points that no
 * output takes are counted at the source as dropped ("unrouted").
 */
#ifndef GATHERD_CORE_PIPELINE_H
#define GATHERD_CORE_PIPELINE_H

#include "instance.h"

typedef struct gd__pipeline {
    gd__inst **procs;
    size_t nprocs;
    gd__inst **outs;
    size_t nouts;
    /* --once: final batches go here instead of the outputs */
    void (*sink)(void *ctx, gd_batch *b);
    void *sink_ctx;
} gd__pipeline;

/* gd__pipeline_submit() - route @b (consumed; frozen here) from @src, starting
 * at processor index @from (0 for inputs; a processor's index + 1 for what it
 * emits). @block_deadline_ns bounds a wait on a full `block` queue (0: no
 * wait). Returns 0 or GD_EQUEUEFULL / GD_ESHUTDOWN when some points were
 * dropped (counted). */
int gd__pipeline_submit(const gd__pipeline *p, gd__inst *src, size_t from, gd_batch *b,
                        int64_t block_deadline_ns);

/* gd__pipeline_blocked() - true when an output that takes @src's points
 * uses the `block` policy and its queue is full (globs may select by
 * measurement, which is unknown before collecting, so any full `block` queue
 * counts). */
bool gd__pipeline_blocked(const gd__pipeline *p, const gd__inst *src);

/* gd__pipeline_index() - position of processor @proc, or -1. */
long gd__pipeline_index(const gd__pipeline *p, const gd__inst *proc);

/* gd__match() - does @pattern list select the point (source @src_name,
 * measurement @m)? An empty list selects everything. */
bool gd__match(const gd_strlist *match, const char *src_name, const char *m);

#endif
