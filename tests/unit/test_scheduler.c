/* SPDX-License-Identifier: Apache-2.0 */
/* The scheduler: intervals, no overlapping runs, overrun and skip counts,
 * alignment and jitter. */
#include "scheduler.h"
#include <criterion/criterion.h>
#include <time.h>
#include <unistd.h>

struct probe {
    atomic_int active;
    atomic_int max_active;
    atomic_int runs;
    useconds_t sleep_us;
    bool allow;
    bool stopped;
    int64_t first_ns;
};

static void probe_run(gd__sched_job *j)
{
    struct probe *p = j->ctx;
    int now = atomic_fetch_add(&p->active, 1) + 1;
    int prev = atomic_load(&p->max_active);
    while (now > prev && !atomic_compare_exchange_weak(&p->max_active, &prev, now))
        ;
    if (atomic_fetch_add(&p->runs, 1) == 0)
        p->first_ns = gd_now_ns();
    usleep(p->sleep_us);
    atomic_fetch_sub(&p->active, 1);
}

static bool probe_can_run(gd__sched_job *j)
{
    return ((struct probe *)j->ctx)->allow;
}

static void probe_stopped(gd__sched_job *j)
{
    ((struct probe *)j->ctx)->stopped = true;
}

static void stop_cb(uv_timer_t *t)
{
    gd__sched_stop(t->data);
    uv_close((uv_handle_t *)t, NULL);
}

/* Run @j on a fresh loop for @ms, then stop it and run the loop dry. */
static void run_for(gd__sched_job *j, uint64_t ms)
{
    uv_loop_t loop;
    uv_timer_t stopper;
    uv_loop_init(&loop);
    cr_assert_eq(gd__sched_start(&loop, j), 0);
    uv_timer_init(&loop, &stopper);
    stopper.data = j;
    uv_timer_start(&stopper, stop_cb, ms, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
}

Test(scheduler, runs_once_per_interval)
{
    static struct probe p = {.sleep_us = 0, .allow = true};
    gd__counters c = {0};
    gd__sched_job j = {.interval_s = 0.05, .run = probe_run, .can_run = probe_can_run,
                       .stopped = probe_stopped, .ctx = &p, .cnt = &c};
    run_for(&j, 525);
    /* Ticks at 0, 50, ..., 500 ms: 11 runs, give or take scheduling noise. */
    /* Timers may fire late on a loaded machine, never early or twice. */
    cr_assert(p.runs >= 6 && p.runs <= 12, "runs=%d", (int)p.runs);
    cr_assert_eq(atomic_load(&c.overruns), 0);
    cr_assert(p.stopped, "stopped() called once nothing is in flight");
}

Test(scheduler, never_runs_one_job_twice_at_once_and_counts_overruns)
{
    static struct probe p = {.sleep_us = 120000, .allow = true};
    gd__counters c = {0};
    gd__sched_job j = {.interval_s = 0.05, .run = probe_run, .can_run = probe_can_run,
                       .stopped = probe_stopped, .ctx = &p, .cnt = &c};
    run_for(&j, 600);
    cr_assert_eq(p.max_active, 1, "overlapping collects");
    cr_assert_geq(atomic_load(&c.overruns), 2, "overruns=%lu",
                  (unsigned long)atomic_load(&c.overruns));
    cr_assert(p.runs >= 2 && p.runs <= 6, "runs=%d", (int)p.runs);
    cr_assert(p.stopped);
}

Test(scheduler, skips_and_counts_when_outputs_are_full)
{
    static struct probe p = {.allow = false};
    gd__counters c = {0};
    gd__sched_job j = {.interval_s = 0.02, .run = probe_run, .can_run = probe_can_run,
                       .stopped = probe_stopped, .ctx = &p, .cnt = &c};
    run_for(&j, 210);
    cr_assert_eq(p.runs, 0);
    cr_assert_geq(atomic_load(&c.skipped), 5);
}

Test(scheduler, continuous_mode_runs_back_to_back)
{
    static struct probe p = {.sleep_us = 1000, .allow = true};
    gd__counters c = {0};
    gd__sched_job j = {.interval_s = 0, .run = probe_run, .can_run = probe_can_run,
                       .stopped = probe_stopped, .ctx = &p, .cnt = &c};
    run_for(&j, 200);
    /* 1 ms runs for 200 ms: back to back gives ~100 (at least 8 under valgrind) */
    cr_assert_geq(p.runs, 8, "runs=%d", (int)p.runs);
    cr_assert_eq(p.max_active, 1);
    cr_assert_eq(atomic_load(&c.overruns), 0);
}

Test(scheduler, aligned_first_run_waits_for_the_next_multiple)
{
    /* 12:00:07.300 with a 10 s interval: next multiple is 12:00:10, 2.7 s away. */
    int64_t now = (int64_t)1700000007300LL * 1000000LL;
    cr_assert_eq(gd__sched_first_delay_ms(10.0, true, 0, now, 0), 2700);
    cr_assert_eq(gd__sched_first_delay_ms(10.0, false, 0, now, 0), 0);
    int64_t exact = (int64_t)1700000010000LL * 1000000LL;
    cr_assert_eq(gd__sched_first_delay_ms(10.0, true, 0, exact, 0), 0);
}

Test(scheduler, jitter_delays_the_first_run_within_bounds)
{
    for (uint64_t r = 0; r < 1000; r += 7) {
        uint64_t d = gd__sched_first_delay_ms(5.0, false, 2.0, 0, r * 2654435761u);
        cr_assert_leq(d, 2000);
    }
    cr_assert_eq(gd__sched_first_delay_ms(5.0, false, 2.0, 0, 2001), 0);
    cr_assert_eq(gd__sched_first_delay_ms(5.0, false, 2.0, 0, 2000), 2000);
}
