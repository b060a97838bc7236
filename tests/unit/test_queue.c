/* SPDX-License-Identifier: Apache-2.0 */
/* Output queues and the writer thread: bounds, overflow policies, batching,
 * retry and the accounting invariant. */
#include "output.h"
#include "queue.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static gd__qticket *tk; /* memory-only queues hand out none */

static gd_batch *make_batch(size_t n, int64_t first)
{
    gd_batch *b = gd_batch_new(n);
    for (size_t i = 0; i < n; i++) {
        gd_point *p = gd_batch_add(b, "m", (int64_t)i + 1);
        gd_point_i64(p, "seq", first + (int64_t)i);
    }
    gd_batch_freeze(b);
    return b;
}

static uint64_t queued(gd__queue *q)
{
    return gd__queue_queued(q);
}

static void assert_invariant(gd__counters *c, gd__queue *q)
{
    uint64_t rx = atomic_load(&c->received), dl = atomic_load(&c->delivered);
    uint64_t dr = gd__dropped(c, NULL);
    cr_assert_eq(rx, dl + dr + queued(q), "received %lu != delivered %lu + dropped %lu + queued %lu",
                 (unsigned long)rx, (unsigned long)dl, (unsigned long)dr,
                 (unsigned long)queued(q));
}

Test(queue, push_counts_received_and_queued)
{
    gd__counters c = {0};
    gd__queue q;
    cr_assert_eq(gd__queue_init(&q, 100, 0, GD__OVF_BLOCK, &c, NULL), 0);
    gd_batch *b = make_batch(10, 0);
    cr_assert_eq(gd__queue_push(&q, b, 0), 0);
    gd_batch_unref(b);
    cr_assert_eq(atomic_load(&c.received), 10);
    cr_assert_eq(queued(&q), 10);
    assert_invariant(&c, &q);
    gd__queue_destroy(&q);
    cr_assert_eq(gd__dropped(&c, "shutdown"), 10);
}

Test(queue, block_policy_refuses_when_full_and_counts_the_drop)
{
    gd__counters c = {0};
    gd__queue q;
    gd__queue_init(&q, 15, 0, GD__OVF_BLOCK, &c, NULL);
    gd_batch *a = make_batch(10, 0), *b = make_batch(10, 10);
    cr_assert_eq(gd__queue_push(&q, a, 0), 0);
    cr_assert(gd__queue_is_full(&q) == false, "10 of 15 is not full");
    cr_assert_eq(gd__queue_push(&q, b, gd__mono_ns() + 20000000), GD_EQUEUEFULL);
    cr_assert_eq(gd__dropped(&c, "queue_full"), 10);
    cr_assert_eq(queued(&q), 10);
    assert_invariant(&c, &q);
    gd_batch_unref(a);
    gd_batch_unref(b);
    gd__queue_destroy(&q);
}

Test(queue, block_policy_reports_full_at_the_bound)
{
    gd__counters c = {0};
    gd__queue q;
    gd__queue_init(&q, 10, 0, GD__OVF_BLOCK, &c, NULL);
    gd_batch *a = make_batch(10, 0);
    gd__queue_push(&q, a, 0);
    cr_assert(gd__queue_is_full(&q));
    gd_batch_unref(a);
    gd__queue_destroy(&q);
}

Test(queue, drop_oldest_counts_every_dropped_point)
{
    gd__counters c = {0};
    gd__queue q;
    gd__queue_init(&q, 25, 0, GD__OVF_DROP_OLDEST, &c, NULL);
    for (int i = 0; i < 5; i++) {
        gd_batch *b = make_batch(10, i * 10);
        cr_assert_eq(gd__queue_push(&q, b, 0), 0);
        gd_batch_unref(b);
    }
    /* 50 pushed, room for 20 (two batches of 10 within 25): 30 dropped. */
    cr_assert_eq(gd__dropped(&c, "drop_oldest"), 30);
    cr_assert_eq(queued(&q), 20);
    assert_invariant(&c, &q);
    /* The survivors are the newest: seq 30.. */
    gd_batch *out;
    cr_assert_eq(gd__queue_take(&q, 100, 0, &out, &tk), 0);
    const gd_field *f = gd_point_field_get(gd_batch_point(out, 0), "seq");
    cr_assert_eq(f->v.i64, 30);
    gd__queue_done(&q, gd_batch_len(out), tk, 0);
    gd_batch_unref(out);
    gd__queue_destroy(&q);
}

Test(queue, byte_bound_applies)
{
    gd__counters c = {0};
    gd__queue q;
    gd_batch *b = make_batch(10, 0);
    size_t bytes = gd_batch_bytes(b);
    gd__queue_init(&q, 1000000, bytes + bytes / 2, GD__OVF_DROP_OLDEST, &c, NULL);
    gd__queue_push(&q, b, 0);
    gd__queue_push(&q, b, 0);
    cr_assert_eq(gd__dropped(&c, "drop_oldest"), 10);
    cr_assert_eq(queued(&q), 10);
    gd_batch_unref(b);
    gd__queue_destroy(&q);
}

Test(queue, an_oversized_batch_fits_an_empty_queue)
{
    gd__counters c = {0};
    gd__queue q;
    gd__queue_init(&q, 5, 0, GD__OVF_BLOCK, &c, NULL);
    gd_batch *b = make_batch(50, 0);
    cr_assert_eq(gd__queue_push(&q, b, 0), 0);
    cr_assert_eq(queued(&q), 50);
    gd_batch_unref(b);
    gd__queue_destroy(&q);
}

Test(queue, take_merges_small_pushes_up_to_batch_points)
{
    gd__counters c = {0};
    gd__queue q;
    gd__queue_init(&q, 1000, 0, GD__OVF_BLOCK, &c, NULL);
    for (int i = 0; i < 6; i++) {
        gd_batch *b = make_batch(10, i * 10);
        gd__queue_push(&q, b, 0);
        gd_batch_unref(b);
    }
    gd_batch *out;
    cr_assert_eq(gd__queue_take(&q, 25, 1000000000LL, &out, &tk), 0);
    cr_assert_eq(gd_batch_len(out), 20, "whole pushes up to 25 points: 20");
    for (size_t i = 0; i < 20; i++)
        cr_assert_eq(gd_point_field_get(gd_batch_point(out, i), "seq")->v.i64, (int64_t)i);
    cr_assert_eq(queued(&q), 60, "taken points stay queued while in flight");
    gd__queue_done(&q, 20, tk, 0);
    cr_assert_eq(queued(&q), 40);
    gd_batch_unref(out);
    gd__queue_destroy(&q);
}

Test(queue, take_waits_for_flush_interval_on_a_partial_batch)
{
    gd__counters c = {0};
    gd__queue q;
    gd__queue_init(&q, 1000, 0, GD__OVF_BLOCK, &c, NULL);
    gd_batch *b = make_batch(3, 0);
    gd__queue_push(&q, b, 0);
    gd_batch_unref(b);
    int64_t t0 = gd__mono_ns();
    gd_batch *out;
    cr_assert_eq(gd__queue_take(&q, 100, 200000000LL, &out, &tk), 0);
    int64_t waited = gd__mono_ns() - t0;
    cr_assert_geq(waited, 150000000LL, "a partial batch waits for flush_interval (%ld ns)",
                  (long)waited);
    cr_assert_eq(gd_batch_len(out), 3);
    gd__queue_done(&q, 3, tk, 0);
    gd_batch_unref(out);
    gd__queue_destroy(&q);
}

Test(queue, closed_queue_refuses_pushes_and_take_ends)
{
    gd__counters c = {0};
    gd__queue q;
    gd__queue_init(&q, 1000, 0, GD__OVF_BLOCK, &c, NULL);
    gd__queue_close(&q);
    gd_batch *b = make_batch(4, 0), *out = NULL;
    cr_assert_eq(gd__queue_push(&q, b, 0), GD_ESHUTDOWN);
    cr_assert_eq(gd__dropped(&c, "shutdown"), 4);
    cr_assert_eq(gd__queue_take(&q, 10, 0, &out, &tk), GD_ESHUTDOWN);
    gd_batch_unref(b);
    gd__queue_destroy(&q);
}

/* ---- the writer thread, with an in-test output ---------------------- */

struct fake_out {
    pthread_mutex_t lock;
    int fail_first;     /* this many writes return GD_RETRY */
    int reject_every;   /* DELIVERED with every Nth point rejected */
    int write_error;    /* write() itself returns an error this many times */
    int writes;
    int64_t seen[10000];
    size_t nseen;
};

static int fake_write(void *state, gd_batch *b, gd_done_fn done, void *token)
{
    struct fake_out *f = state;
    pthread_mutex_lock(&f->lock);
    f->writes++;
    if (f->write_error > 0) {
        f->write_error--;
        pthread_mutex_unlock(&f->lock);
        return GD_ECONN;
    }
    if (f->fail_first > 0) {
        f->fail_first--;
        pthread_mutex_unlock(&f->lock);
        done(token, GD_RETRY, NULL);
        return 0;
    }
    uint32_t rej[1000];
    size_t nrej = 0;
    for (size_t i = 0; i < gd_batch_len(b); i++) {
        if (f->reject_every && i % (size_t)f->reject_every == 0) {
            rej[nrej++] = (uint32_t)i;
            continue;
        }
        f->seen[f->nseen++] = gd_point_field_get(gd_batch_point(b, i), "seq")->v.i64;
    }
    pthread_mutex_unlock(&f->lock);
    gd_rejects r = {.idx = rej, .n = nrej};
    done(token, GD_DELIVERED, nrej ? &r : NULL);
    return 0;
}

static const struct gd_output_ops fake_ops = {.struct_size = sizeof(fake_ops), .write = fake_write};

static void run_writer(struct fake_out *f, gd__counters *c, int64_t max_retries, int batches,
                       int per_batch)
{
    gd__output o;
    gd__output_params p = {.batch_points = 100, .flush_ns = 1000000, .max_retries = max_retries,
                           .retry_initial_ns = 1000000, .retry_max_ns = 4000000};
    pthread_mutex_init(&f->lock, NULL);
    void *states[1] = {f};
    cr_assert_eq(gd__output_init(&o, NULL, &fake_ops, states, 1, c, &p, 100000, 0, GD__OVF_BLOCK),
                 0);
    cr_assert_eq(gd__output_start(&o), 0);
    for (int i = 0; i < batches; i++) {
        gd_batch *b = make_batch((size_t)per_batch, i * per_batch);
        gd__queue_push(&o.q, b, gd__mono_ns() + 1000000000LL);
        gd_batch_unref(b);
    }
    gd__output_begin_stop(&o, gd__mono_ns() + 5000000000LL);
    gd__output_join(&o);
    assert_invariant(c, &o.q);
    cr_assert_eq(queued(&o.q), 0);
    gd__output_fini(&o);
}

Test(writer, delivers_every_point_in_order)
{
    static struct fake_out f;
    gd__counters c = {0};
    run_writer(&f, &c, -1, 20, 50);
    cr_assert_eq(atomic_load(&c.delivered), 1000);
    cr_assert_eq(f.nseen, 1000);
    for (size_t i = 0; i < f.nseen; i++)
        cr_assert_eq(f.seen[i], (int64_t)i);
}

Test(writer, retries_until_the_output_recovers)
{
    static struct fake_out f = {.fail_first = 5, .write_error = 2};
    gd__counters c = {0};
    run_writer(&f, &c, -1, 3, 10);
    cr_assert_eq(atomic_load(&c.delivered), 30);
    cr_assert_eq(atomic_load(&c.retries), 7);
    cr_assert_eq(gd__dropped(&c, NULL), 0);
}

Test(writer, max_retries_drops_and_counts)
{
    static struct fake_out f = {.fail_first = 1000};
    gd__counters c = {0};
    run_writer(&f, &c, 2, 1, 10);
    cr_assert_eq(atomic_load(&c.delivered), 0);
    cr_assert_eq(gd__dropped(&c, "retry_exhausted"), 10);
    cr_assert_eq(f.writes, 3, "one try and two retries");
}

Test(writer, rejected_points_are_counted_and_the_rest_delivered)
{
    static struct fake_out f = {.reject_every = 5};
    gd__counters c = {0};
    run_writer(&f, &c, -1, 1, 20);
    cr_assert_eq(gd__dropped(&c, "rejected"), 4);
    cr_assert_eq(atomic_load(&c.delivered), 16);
}

Test(backoff, full_jitter_stays_within_the_exponential_cap)
{
    uint64_t rng = 42;
    for (unsigned attempt = 0; attempt < 20; attempt++) {
        int64_t cap = 100;
        for (unsigned i = 0; i < attempt && cap < 5000; i++)
            cap = cap * 2 > 5000 ? 5000 : cap * 2;
        for (int k = 0; k < 200; k++) {
            int64_t d = gd__backoff_ns(&rng, 100, 5000, attempt);
            cr_assert(d >= 0 && d <= cap, "attempt %u: %ld not in [0, %ld]", attempt, (long)d,
                      (long)cap);
        }
    }
}

Test(writer, several_writers_share_one_queue_and_deliver_everything_once)
{
    static struct fake_out f;
    gd__counters c = {0};
    gd__output o;
    gd__output_params p = {.batch_points = 50, .flush_ns = 1000000, .max_retries = -1,
                           .retry_initial_ns = 1000000, .retry_max_ns = 4000000};
    void *states[3] = {&f, &f, &f};
    pthread_mutex_init(&f.lock, NULL);
    cr_assert_eq(gd__output_init(&o, NULL, &fake_ops, states, 3, &c, &p, 100000, 0, GD__OVF_BLOCK),
                 0);
    cr_assert_eq(o.nwriters, 3);
    cr_assert_eq(gd__output_start(&o), 0);
    for (int i = 0; i < 40; i++) {
        gd_batch *b = make_batch(50, i * 50);
        gd__queue_push(&o.q, b, gd__mono_ns() + 1000000000LL);
        gd_batch_unref(b);
    }
    gd__output_begin_stop(&o, gd__mono_ns() + 5000000000LL);
    gd__output_join(&o);
    assert_invariant(&c, &o.q);
    cr_assert_eq(atomic_load(&c.delivered), 2000);
    cr_assert_eq(f.nseen, 2000);
    static bool seen[2000];
    for (size_t i = 0; i < f.nseen; i++) {
        cr_assert(f.seen[i] >= 0 && f.seen[i] < 2000);
        cr_assert_not(seen[f.seen[i]], "seq %ld written twice", (long)f.seen[i]);
        seen[f.seen[i]] = true;
    }
    gd__output_fini(&o);
}
