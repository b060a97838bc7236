/* SPDX-License-Identifier: Apache-2.0 */
#include "queue.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INITIAL_RING 64

int64_t gd__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void abs_deadline(struct timespec *ts, int64_t mono_ns)
{
    ts->tv_sec = mono_ns / 1000000000LL;
    ts->tv_nsec = mono_ns % 1000000000LL;
}

int gd__queue_init(gd__queue *q, size_t max_points, size_t max_bytes, int overflow,
                   gd__counters *cnt, const gd_instance *inst)
{
    pthread_condattr_t ca;
    memset(q, 0, sizeof(*q));
    q->ring = calloc(INITIAL_RING, sizeof(*q->ring));
    if (!q->ring)
        return GD_ENOMEM;
    q->cap = INITIAL_RING;
    q->max_points = max_points ? max_points : SIZE_MAX;
    q->max_bytes = max_bytes ? max_bytes : SIZE_MAX;
    q->overflow = overflow;
    q->cnt = cnt;
    q->inst = inst;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond_data, &ca);
    pthread_cond_init(&q->cond_space, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

static struct gd__qent *ent_at(gd__queue *q, size_t i)
{
    return &q->ring[(q->head + i) % q->cap];
}

static struct gd__qent pop_head(gd__queue *q)
{
    struct gd__qent e = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    q->points -= e.points;
    q->bytes -= e.bytes;
    return e;
}

static int grow(gd__queue *q)
{
    size_t ncap = q->cap * 2;
    struct gd__qent *nr = calloc(ncap, sizeof(*nr));
    if (!nr)
        return GD_ENOMEM;
    for (size_t i = 0; i < q->count; i++)
        nr[i] = *ent_at(q, i);
    free(q->ring);
    q->ring = nr;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

static bool fits(const gd__queue *q, size_t points, size_t bytes)
{
    if (q->count == 0)
        return true;
    return q->points + points <= q->max_points && q->bytes + bytes <= q->max_bytes;
}

void gd__queue_drop_waiting(gd__queue *q, const char *reason)
{
    pthread_mutex_lock(&q->lock);
    while (q->count) {
        struct gd__qent e = pop_head(q);
        gd__count_drop(q->cnt, reason, e.points);
        gd_batch_unref(e.b);
    }
    pthread_cond_broadcast(&q->cond_space);
    pthread_mutex_unlock(&q->lock);
}

void gd__queue_destroy(gd__queue *q)
{
    if (!q || !q->ring)
        return;
    gd__queue_drop_waiting(q, "shutdown");
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond_data);
    pthread_cond_destroy(&q->cond_space);
    free(q->ring);
    q->ring = NULL;
}

int gd__queue_push(gd__queue *q, gd_batch *b, int64_t deadline_ns)
{
    size_t points = gd_batch_len(b), bytes = gd_batch_bytes(b);
    int rc = 0;

    if (points == 0)
        return 0;
    atomic_fetch_add(&q->cnt->received, points);
    pthread_mutex_lock(&q->lock);
    if (q->overflow == GD__OVF_DROP_OLDEST) {
        size_t dropped = 0;
        while (!q->closed && !fits(q, points, bytes)) {
            struct gd__qent e = pop_head(q);
            dropped += e.points;
            gd_batch_unref(e.b);
        }
        if (dropped) {
            gd__count_drop(q->cnt, "drop_oldest", dropped);
            gd_log_ratelimited(q->inst, GD_WARN, "queue full: dropped the %zu oldest points",
                               dropped);
        }
    } else {
        struct timespec ts;
        abs_deadline(&ts, deadline_ns);
        while (!q->closed && !fits(q, points, bytes) && gd__mono_ns() < deadline_ns)
            if (pthread_cond_timedwait(&q->cond_space, &q->lock, &ts) == ETIMEDOUT)
                break;
    }
    if (q->closed) {
        gd__count_drop(q->cnt, "shutdown", points);
        rc = GD_ESHUTDOWN;
    } else if (!fits(q, points, bytes) || (q->count == q->cap && grow(q) < 0)) {
        gd__count_drop(q->cnt, "queue_full", points);
        gd_log_ratelimited(q->inst, GD_WARN, "queue full (%zu points, %zu bytes): dropped %zu points",
                           q->points, q->bytes, points);
        rc = GD_EQUEUEFULL;
    } else {
        struct gd__qent *e = &q->ring[(q->head + q->count) % q->cap];
        e->b = gd_batch_ref(b);
        e->points = points;
        e->bytes = bytes;
        e->t_ns = gd__mono_ns();
        q->count++;
        q->points += points;
        q->bytes += bytes;
        pthread_cond_signal(&q->cond_data);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

bool gd__queue_is_full(gd__queue *q)
{
    pthread_mutex_lock(&q->lock);
    bool full = q->overflow == GD__OVF_BLOCK && q->count > 0 &&
                (q->points >= q->max_points || q->bytes >= q->max_bytes);
    pthread_mutex_unlock(&q->lock);
    return full;
}

/* Merge the taken entries into one new batch (copying points). */
static gd_batch *merge(struct gd__qent *ents, size_t n, size_t points)
{
    gd_batch *out = gd_batch_new(points);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t len = gd_batch_len(ents[i].b);
        for (size_t j = 0; j < len; j++) {
            if (!gd_batch_copy_point(out, gd_batch_point(ents[i].b, j))) {
                gd_batch_unref(out);
                return NULL;
            }
        }
    }
    gd_batch_freeze(out);
    return out;
}

int gd__queue_take(gd__queue *q, size_t batch_points, int64_t flush_ns, gd_batch **out)
{
    struct gd__qent *taken = NULL;
    size_t ntaken = 0, points = 0;

    *out = NULL;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        if (q->count == 0) {
            if (q->closed) {
                pthread_mutex_unlock(&q->lock);
                return GD_ESHUTDOWN;
            }
            pthread_cond_wait(&q->cond_data, &q->lock);
            continue;
        }
        int64_t due = ent_at(q, 0)->t_ns + flush_ns;
        if (q->points >= batch_points || q->closed || gd__mono_ns() >= due)
            break;
        struct timespec ts;
        abs_deadline(&ts, due);
        pthread_cond_timedwait(&q->cond_data, &q->lock, &ts);
    }
    /* Take whole pushes up to batch_points (at least one). */
    size_t n = 0, sum = 0;
    while (n < q->count && (n == 0 || sum + ent_at(q, n)->points <= batch_points)) {
        sum += ent_at(q, n)->points;
        n++;
    }
    taken = malloc(n * sizeof(*taken));
    if (!taken) {
        pthread_mutex_unlock(&q->lock);
        return GD_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        taken[ntaken++] = pop_head(q);
    points = sum;
    q->inflight += points;
    pthread_cond_broadcast(&q->cond_space);
    pthread_mutex_unlock(&q->lock);

    if (ntaken == 1) {
        *out = taken[0].b;
    } else {
        *out = merge(taken, ntaken, points);
        for (size_t i = 0; i < ntaken; i++)
            gd_batch_unref(taken[i].b);
    }
    free(taken);
    if (!*out) {
        gd__count_drop(q->cnt, "out_of_memory", points);
        gd__queue_done(q, points);
        return GD_ENOMEM;
    }
    return 0;
}

void gd__queue_done(gd__queue *q, size_t points)
{
    pthread_mutex_lock(&q->lock);
    q->inflight -= points;
    pthread_mutex_unlock(&q->lock);
}

void gd__queue_close(gd__queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->cond_data);
    pthread_cond_broadcast(&q->cond_space);
    pthread_mutex_unlock(&q->lock);
}

size_t gd__queue_queued(gd__queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->points + q->inflight;
    pthread_mutex_unlock(&q->lock);
    return n;
}
