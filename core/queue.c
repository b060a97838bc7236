/* SPDX-License-Identifier: Apache-2.0 */
#include "queue.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INITIAL_RING 64
/* How often a queue waiting for its busy spool directory tries again. */
#define SPOOL_ATTACH_RETRY_NS 100000000LL

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

static void account_out(gd__queue *q, const struct gd__qent *e)
{
    if (e->b) {
        q->mem_count--;
        q->points -= e->points;
        q->bytes -= e->bytes;
    } else {
        q->disk_points -= e->points;
    }
}

static struct gd__qent pop_head(gd__queue *q)
{
    struct gd__qent e = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    account_out(q, &e);
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

/* Room in memory (one batch always fits an empty memory queue). */
static bool fits(const gd__queue *q, size_t points, size_t bytes)
{
    if (q->mem_count == 0)
        return true;
    return q->points + points <= q->max_points && q->bytes + bytes <= q->max_bytes;
}

static void on_evicted(void *ctx, uint64_t seg);

/* Append an entry at the tail (the caller checked for room). */
static int append_ent(gd__queue *q, const struct gd__qent *e)
{
    if (q->count == q->cap && grow(q) < 0)
        return GD_ENOMEM;
    q->ring[(q->head + q->count) % q->cap] = *e;
    q->count++;
    if (e->b) {
        q->mem_count++;
        q->points += e->points;
        q->bytes += e->bytes;
    } else {
        q->disk_points += e->points;
    }
    return 0;
}

void gd__queue_drop_waiting(gd__queue *q, const char *reason)
{
    pthread_mutex_lock(&q->lock);
    while (q->count) {
        struct gd__qent e = pop_head(q);
        if (q->spool) {
            /* Kept for the next start: on disk already, or written there now. */
            gd__spool_rec rec;
            if (!e.b || gd__spool_append(q->spool, e.b, &rec, on_evicted, q) == 0) {
                q->stranded += e.points;
                gd_batch_unref(e.b);
                continue;
            }
        }
        gd__count_drop(q->cnt, reason, e.points);
        gd_batch_unref(e.b);
    }
    if (q->spool)
        gd__spool_sync(q->spool);
    pthread_cond_broadcast(&q->cond_space);
    pthread_mutex_unlock(&q->lock);
}

void gd__queue_destroy(gd__queue *q)
{
    if (!q || !q->ring)
        return;
    gd__queue_drop_waiting(q, "shutdown");
    gd__spool_close(q->spool);
    q->spool = NULL;
    free(q->pending_dir);
    q->pending_dir = NULL;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond_data);
    pthread_cond_destroy(&q->cond_space);
    free(q->ring);
    q->ring = NULL;
}

/* Spool-mode push (lock held): to disk when memory is full or always; a
 * batch the spool cannot take stays in memory if it fits there. */
static int push_spooling(gd__queue *q, gd_batch *b, size_t points, size_t bytes)
{
    struct gd__qent e = {.points = points, .t_ns = gd__mono_ns()};
    bool to_disk = q->spool_always || !fits(q, points, bytes);
    if (to_disk) {
        int rc = gd__spool_append(q->spool, b, &e.rec, on_evicted, q);
        if (rc < 0 && !fits(q, points, bytes)) {
            gd__count_drop(q->cnt, "spool_full", points);
            gd_log_ratelimited(q->inst, GD_ERROR,
                               "spool cannot take a batch (%s) and memory is full: dropped %zu "
                               "points",
                               gd_strerror(rc), points);
            return GD_EQUEUEFULL;
        }
        to_disk = rc == 0;
    }
    if (!to_disk) {
        e.b = gd_batch_ref(b);
        e.bytes = bytes;
    }
    if (append_ent(q, &e) < 0) {
        gd_batch_unref(e.b);
        gd__count_drop(q->cnt, "out_of_memory", points);
        return GD_ENOMEM;
    }
    pthread_cond_signal(&q->cond_data);
    return 0;
}

/* The spool dropped segment @seg to make room: its waiting records go too. */
static void on_evicted(void *ctx, uint64_t seg)
{
    gd__queue *q = ctx;
    size_t keep = 0, dropped = 0, n = q->count;
    struct gd__qent *tmp = malloc((n ? n : 1) * sizeof(*tmp));
    if (!tmp)
        return; /* their reads fail later and are counted there */
    for (size_t i = 0; i < n; i++) {
        struct gd__qent *e = ent_at(q, i);
        if (!e->b && e->rec.seg == seg) {
            dropped += e->points;
            q->disk_points -= e->points;
        } else {
            tmp[keep++] = *e;
        }
    }
    for (size_t i = 0; i < keep; i++)
        q->ring[i] = tmp[i];
    q->head = 0;
    q->count = keep;
    free(tmp);
    if (dropped) {
        gd__count_drop(q->cnt, "spool_full", dropped);
        gd_log(q->inst, GD_ERROR, "spool full: dropped %zu of the oldest spooled points", dropped);
    }
}

static void on_found(void *ctx, const gd__spool_rec *r)
{
    gd__queue *q = ctx;
    struct gd__qent e = {.points = r->points, .rec = *r};
    if (append_ent(q, &e) < 0) {
        gd__count_drop(q->cnt, "out_of_memory", r->points);
        return;
    }
    atomic_fetch_add(&q->cnt->received, r->points);
}

/* Open the spool (lock held). */
static int attach_locked(gd__queue *q, const char *dir, const gd__spool_opts *o, bool always)
{
    size_t before = q->disk_points;
    int rc = gd__spool_open(dir, o, (gd_instance *)q->inst, q->cnt, on_found, q, &q->spool);
    if (rc < 0)
        return rc;
    q->spool_always = always;
    if (q->disk_points > before)
        gd_log(q->inst, GD_INFO, "spool %s: replaying %zu points left from before", dir,
               q->disk_points - before);
    if (q->disk_points > before)
        pthread_cond_signal(&q->cond_data);
    return 0;
}

int gd__queue_attach_spool(gd__queue *q, const char *dir, const gd__spool_opts *o, bool always)
{
    pthread_mutex_lock(&q->lock);
    int rc = attach_locked(q, dir, o, always);
    if (rc == GD_EAGAIN) {
        /* Batches wait in memory (as with `block`) until the old one is done. */
        q->pending_dir = strdup(dir);
        q->pending_opts = *o;
        q->pending_always = always;
        rc = q->pending_dir ? 0 : GD_ENOMEM;
        gd_log(q->inst, GD_INFO, "spool %s is busy (the instance this one replaces is "
               "draining): attaching it when free", dir);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Retry a pending attach (lock held). */
static void retry_attach(gd__queue *q)
{
    if (!q->pending_dir || attach_locked(q, q->pending_dir, &q->pending_opts,
                                         q->pending_always) == GD_EAGAIN)
        return;
    free(q->pending_dir);
    q->pending_dir = NULL;
}

int gd__queue_push(gd__queue *q, gd_batch *b, int64_t deadline_ns)
{
    size_t points = gd_batch_len(b), bytes = gd_batch_bytes(b);
    int rc = 0;

    if (points == 0)
        return 0;
    atomic_fetch_add(&q->cnt->received, points);
    pthread_mutex_lock(&q->lock);
    if (q->spool) {
        rc = push_spooling(q, b, points, bytes);
        pthread_mutex_unlock(&q->lock);
        return rc;
    }
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
        struct gd__qent e = {.b = gd_batch_ref(b), .points = points, .bytes = bytes,
                             .t_ns = gd__mono_ns()};
        append_ent(q, &e); /* room was made above */
        pthread_cond_signal(&q->cond_data);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

bool gd__queue_is_full(gd__queue *q)
{
    pthread_mutex_lock(&q->lock);
    bool blocks = q->overflow == GD__OVF_BLOCK || (q->overflow == GD__OVF_SPOOL && !q->spool);
    bool full = blocks && q->mem_count > 0 &&
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

/* Read the spooled entries of @ents back into memory (lock held). A record
 * that cannot be read is counted dropped and acknowledged. */
static size_t load_from_disk(gd__queue *q, struct gd__qent *ents, size_t n, gd__qticket *t)
{
    size_t lost = 0;
    for (size_t i = 0; i < n; i++) {
        if (ents[i].b)
            continue;
        int rc = gd__spool_read(q->spool, &ents[i].rec, &ents[i].b);
        if (rc < 0) {
            gd_log_ratelimited(q->inst, GD_ERROR, "spool: cannot read back %u points: %s",
                               ents[i].rec.points, gd_strerror(rc));
            gd__count_drop(q->cnt, "spool_corrupt", ents[i].points);
            lost += ents[i].points;
            gd__spool_ack(q->spool, &ents[i].rec);
            ents[i].b = NULL;
            ents[i].points = 0;
            continue;
        }
        t->recs[t->n++] = ents[i].rec;
        t->points += ents[i].points;
    }
    return lost;
}

int gd__queue_take(gd__queue *q, size_t batch_points, int64_t flush_ns, gd_batch **out,
                   gd__qticket **ticket)
{
    struct gd__qent *taken = NULL;
    size_t ntaken = 0, points = 0;
    gd__qticket *t = NULL;

    *out = NULL;
    *ticket = NULL;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        if (q->pending_dir)
            retry_attach(q);
        if (q->count == 0) {
            if (q->closed) {
                pthread_mutex_unlock(&q->lock);
                return GD_ESHUTDOWN;
            }
            if (q->pending_dir) {
                struct timespec ts;
                abs_deadline(&ts, gd__mono_ns() + SPOOL_ATTACH_RETRY_NS);
                pthread_cond_timedwait(&q->cond_data, &q->lock, &ts);
            } else {
                pthread_cond_wait(&q->cond_data, &q->lock);
            }
            continue;
        }
        int64_t due = ent_at(q, 0)->t_ns + flush_ns;
        if (q->points + q->disk_points >= batch_points || q->closed || gd__mono_ns() >= due)
            break;
        struct timespec ts;
        abs_deadline(&ts, due);
        pthread_cond_timedwait(&q->cond_data, &q->lock, &ts);
    }
    /* Take whole pushes up to batch_points (at least one). */
    size_t n = 0, sum = 0, ondisk = 0;
    while (n < q->count && (n == 0 || sum + ent_at(q, n)->points <= batch_points)) {
        sum += ent_at(q, n)->points;
        ondisk += !ent_at(q, n)->b;
        n++;
    }
    taken = malloc(n * sizeof(*taken));
    if (ondisk) {
        t = calloc(1, sizeof(*t));
        if (t)
            t->recs = malloc(ondisk * sizeof(*t->recs));
    }
    if (!taken || (ondisk && (!t || !t->recs))) {
        free(taken);
        if (t)
            free(t->recs);
        free(t);
        pthread_mutex_unlock(&q->lock);
        return GD_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        taken[ntaken++] = pop_head(q);
    size_t lost = ondisk ? load_from_disk(q, taken, ntaken, t) : 0;
    points = sum - lost;
    q->inflight += points;
    pthread_cond_broadcast(&q->cond_space);
    pthread_mutex_unlock(&q->lock);

    /* Entries that could not be read back are gone (b == NULL). */
    size_t k = 0;
    for (size_t i = 0; i < ntaken; i++)
        if (taken[i].b)
            taken[k++] = taken[i];
    ntaken = k;
    if (ntaken == 0) {
        *ticket = t;
        gd__queue_done(q, 0, t, 0);
        *ticket = NULL;
        free(taken);
        return GD_EAGAIN;
    }
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
        gd__queue_done(q, points, t, 0);
        return GD_ENOMEM;
    }
    *ticket = t;
    return 0;
}

void gd__queue_done(gd__queue *q, size_t points, gd__qticket *ticket, size_t unaccounted)
{
    pthread_mutex_lock(&q->lock);
    q->inflight -= points;
    if (ticket && !unaccounted) {
        for (size_t i = 0; i < ticket->n; i++)
            gd__spool_ack(q->spool, &ticket->recs[i]);
    } else if (unaccounted) {
        size_t kept = ticket ? (ticket->points < unaccounted ? ticket->points : unaccounted) : 0;
        q->stranded += kept;
        if (unaccounted > kept)
            gd__count_drop(q->cnt, "shutdown", unaccounted - kept);
    }
    pthread_mutex_unlock(&q->lock);
    if (ticket)
        free(ticket->recs);
    free(ticket);
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
    size_t n = q->points + q->disk_points + q->inflight + q->stranded;
    pthread_mutex_unlock(&q->lock);
    return n;
}
