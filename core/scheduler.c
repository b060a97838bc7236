/* SPDX-License-Identifier: Apache-2.0 */
#include "scheduler.h"
#include <math.h>
#include <string.h>

/* When a continuous job cannot run (outputs full), look again after this. */
#define BLOCKED_RETRY_MS 5

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t gd__sched_first_delay_ms(double interval_s, bool align, double jitter_s,
                                  int64_t now_wall_ns, uint64_t rand)
{
    uint64_t delay = 0;
    uint64_t interval_ms = (uint64_t)llround(interval_s * 1000.0);
    if (align && interval_ms > 0) {
        uint64_t now_ms = (uint64_t)(now_wall_ns / 1000000LL);
        uint64_t rem = now_ms % interval_ms;
        delay = rem ? interval_ms - rem : 0;
    }
    uint64_t jitter_ms = (uint64_t)llround(jitter_s * 1000.0);
    if (jitter_ms)
        delay += rand % (jitter_ms + 1);
    return delay;
}

static void on_timer(uv_timer_t *t);

static void maybe_stopped(gd__sched_job *j)
{
    if (j->stopping && j->timer_closed && !atomic_load(&j->running) && j->stopped)
        j->stopped(j);
}

static void arm(gd__sched_job *j, uint64_t delay_ms)
{
    if (!j->stopping)
        uv_timer_start(&j->timer, on_timer, delay_ms, 0);
}

/* Arm for the next due time on the grid, skipping due times already past. */
static void arm_next(gd__sched_job *j)
{
    uint64_t interval_ms = (uint64_t)llround(j->interval_s * 1000.0);
    uint64_t now = uv_now(j->loop);
    if (interval_ms == 0)
        interval_ms = 1;
    j->next_due_ms += interval_ms;
    if (j->next_due_ms <= now)
        j->next_due_ms += ((now - j->next_due_ms) / interval_ms + 1) * interval_ms;
    arm(j, j->next_due_ms - now);
}

static void work_cb(uv_work_t *w)
{
    gd__sched_job *j = w->data;
    j->run(j);
}

static void after_work_cb(uv_work_t *w, int status)
{
    gd__sched_job *j = w->data;
    (void)status;
    atomic_store(&j->running, false);
    if (j->interval_s <= 0)
        arm(j, 0);
    maybe_stopped(j);
}

static void on_timer(uv_timer_t *t)
{
    gd__sched_job *j = t->data;
    bool continuous = j->interval_s <= 0;

    if (j->stopping)
        return;
    if (atomic_load(&j->running)) {
        atomic_fetch_add(&j->cnt->overruns, 1);
        if (!j->in_burst)
            gd_log(j->inst, GD_WARN,
                   "collect overrun: still running after its %.3f s interval (logged once per "
                   "burst)",
                   j->interval_s);
        j->in_burst = true;
        arm_next(j);
        return;
    }
    j->in_burst = false;
    if (j->can_run && !j->can_run(j)) {
        if (continuous) {
            /* Nothing is due in continuous mode: wait for room, skip nothing. */
            arm(j, BLOCKED_RETRY_MS);
            return;
        }
        atomic_fetch_add(&j->cnt->skipped, 1);
        gd_log_ratelimited(j->inst, GD_WARN, "collect skipped: outputs are full (block policy)");
        arm_next(j);
        return;
    }
    atomic_store(&j->running, true);
    atomic_fetch_add(&j->cnt->runs, 1);
    j->work.data = j;
    if (uv_queue_work(j->loop, &j->work, work_cb, after_work_cb) != 0) {
        atomic_store(&j->running, false);
        gd_log(j->inst, GD_ERROR, "cannot queue collect");
    }
    if (!continuous)
        arm_next(j);
}

int gd__sched_start(uv_loop_t *loop, gd__sched_job *j)
{
    j->loop = loop;
    atomic_store(&j->running, false);
    j->in_burst = false;
    j->stopping = false;
    j->timer_closed = false;
    j->rng = (uint64_t)gd_now_ns() ^ (uintptr_t)j;
    int rc = uv_timer_init(loop, &j->timer);
    if (rc < 0)
        return rc;
    j->timer.data = j;
    uint64_t delay = gd__sched_first_delay_ms(j->interval_s, j->align, j->jitter_s, gd_now_ns(),
                                              splitmix(&j->rng));
    j->next_due_ms = uv_now(loop) + delay;
    arm(j, delay);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    gd__sched_job *j = h->data;
    j->timer_closed = true;
    maybe_stopped(j);
}

void gd__sched_stop(gd__sched_job *j)
{
    if (j->stopping)
        return;
    j->stopping = true;
    uv_timer_stop(&j->timer);
    uv_close((uv_handle_t *)&j->timer, on_timer_closed);
}
