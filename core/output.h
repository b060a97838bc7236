/* SPDX-License-Identifier: Apache-2.0 */
/*
 * output.h - the writer thread of one output instance.
 *
 * The writer takes batches from the instance's queue (batch_points or
 * flush_interval, whichever first), calls the plugin's write(), waits for
 * done(), and acts on the status: delivered (rejected points counted),
 * reject (all counted), retry (exponential backoff with full jitter, for
 * ever unless max_retries or max_retry_age says otherwise; then counted as
 * "retry_exhausted"). Stopping closes the queue and drains it until the
 * deadline; what is left then is dropped and counted as "shutdown".
 * An output may have several writers (`writers = N`), each with its own
 * plugin state, taking batches from the one queue in parallel.
 */
#ifndef GATHERD_CORE_OUTPUT_H
#define GATHERD_CORE_OUTPUT_H

#include "queue.h"
#include <stdatomic.h>

typedef struct gd__output_params {
    size_t batch_points;
    int64_t flush_ns;
    int64_t max_retries; /* -1: unlimited */
    int64_t max_retry_age_ns; /* 0: unlimited */
    int64_t retry_initial_ns;
    int64_t retry_max_ns;
} gd__output_params;

struct gd__output;

/* One writer thread with its own plugin state (from its own init()). */
typedef struct gd__writer {
    struct gd__output *o;
    void *state;
    pthread_t thread;
    bool started;
    uint64_t rng;
} gd__writer;

typedef struct gd__output {
    gd__queue q;
    gd__output_params p;
    const struct gd_output_ops *ops;
    gd__writer *w;
    size_t nwriters;
    gd_instance *inst;
    gd__counters *cnt;
    bool running;
    atomic_bool stopping;
    atomic_int_fast64_t deadline_ns; /* monotonic; valid once stopping */
    pthread_mutex_t wait_lock;
    pthread_cond_t wait_cond;
} gd__output;

/* gd__output_init() - set up the queue and parameters (no thread yet): one
 * writer per state in @states[0..@nstates) (they share the queue). */
int gd__output_init(gd__output *o, gd_instance *inst, const struct gd_output_ops *ops,
                    void *const *states, size_t nstates, gd__counters *cnt,
                    const gd__output_params *p, size_t max_points, size_t max_bytes,
                    int overflow);
/* gd__output_start() - start the writer threads. */
int gd__output_start(gd__output *o);
/* gd__output_begin_stop() - close the queue; the writer drains it until
 * @deadline_ns (monotonic), then drops the rest. Returns at once. */
void gd__output_begin_stop(gd__output *o, int64_t deadline_ns);
/* gd__output_join() - wait for the writer (after begin_stop). */
void gd__output_join(gd__output *o);
/* gd__output_fini() - free the queue (after join). Accepts NULL. */
void gd__output_fini(gd__output *o);

/* gd__backoff_ns() - full-jitter backoff for retry @attempt (0-based):
 * uniform in [0, min(max, initial * 2^attempt)]. */
int64_t gd__backoff_ns(uint64_t *rng, int64_t initial_ns, int64_t max_ns, unsigned attempt);

#endif
