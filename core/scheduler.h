/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scheduler.h - periodic jobs on the libuv loop, run on the worker pool.
 *
 * A job fires every interval (due times are kept on a fixed grid from the
 * start, so there is no drift), optionally aligned to wall-clock multiples
 * of the interval, after a random start jitter. Interval 0 means continuous:
 * the next run starts as soon as the last one finished. A job never runs
 * twice at once: a tick that finds the previous run still going is counted
 * as an overrun (logged once per burst of overruns). A tick for which
 * can_run() says no (outputs full under `block`) is counted as skipped; a
 * continuous job just waits for room.
 */
#ifndef GATHERD_CORE_SCHEDULER_H
#define GATHERD_CORE_SCHEDULER_H

#include "counters.h"
#include <gatherd/gatherd.h>
#include <stdatomic.h>
#include <uv.h>

typedef struct gd__sched_job gd__sched_job;

struct gd__sched_job {
    /* set by the owner before gd__sched_start() */
    double interval_s; /* 0: continuous */
    bool align;
    double jitter_s;
    void (*run)(gd__sched_job *j);       /* worker thread */
    bool (*can_run)(gd__sched_job *j);   /* main thread; NULL: always */
    void (*stopped)(gd__sched_job *j);   /* main thread: after stop, nothing in flight */
    void *ctx;
    const gd_instance *inst; /* for log lines */
    gd__counters *cnt;       /* runs, overruns, skipped */
    /* private */
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_work_t work;
    atomic_bool running;
    bool in_burst;
    bool stopping;
    bool timer_closed;
    uint64_t next_due_ms; /* on uv_now()'s clock */
    uint64_t rng;
};

/* gd__sched_start() - start firing on @loop (main thread). */
int gd__sched_start(uv_loop_t *loop, gd__sched_job *j);

/* gd__sched_stop() - stop firing; j->stopped() runs once the timer is closed
 * and no run is in flight. Main thread. */
void gd__sched_stop(gd__sched_job *j);

/* gd__sched_first_delay_ms() - delay of the first run: the jitter plus, when
 * aligned, the time to the next wall-clock multiple of the interval. */
uint64_t gd__sched_first_delay_ms(double interval_s, bool align, double jitter_s,
                                  int64_t now_wall_ns, uint64_t rand);

#endif
