/* SPDX-License-Identifier: Apache-2.0 */
#include "output.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How often a writer waiting for done() checks whether shutdown's deadline
 * passed. */
#define DONE_POLL_NS 100000000LL

/* One write's completion, shared by the writer and the plugin's done(). */
struct done_tok {
    atomic_int refs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
    uint32_t *rej;
    size_t nrej;
    gd_instance *inst;
    gd_batch *b; /* the written batch stays alive until done(), even if the writer gave up */
};

static void tok_release(struct done_tok *t)
{
    if (atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    free(t->rej);
    gd_batch_unref(t->b);
    free(t);
}

static void on_done(void *token, int status, const gd_rejects *rejects)
{
    struct done_tok *t = token;
    pthread_mutex_lock(&t->lock);
    if (t->done) {
        pthread_mutex_unlock(&t->lock);
        gd_log(t->inst, GD_ERROR, "plugin bug: done() called twice for one write");
        return;
    }
    if (rejects && rejects->n && rejects->idx) {
        t->rej = malloc(rejects->n * sizeof(*t->rej));
        if (t->rej) {
            memcpy(t->rej, rejects->idx, rejects->n * sizeof(*t->rej));
            t->nrej = rejects->n;
        }
    }
    t->status = status;
    t->done = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    tok_release(t);
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int64_t gd__backoff_ns(uint64_t *rng, int64_t initial_ns, int64_t max_ns, unsigned attempt)
{
    int64_t cap = initial_ns;
    for (unsigned i = 0; i < attempt && cap < max_ns; i++)
        cap = cap > max_ns / 2 ? max_ns : cap * 2;
    if (cap > max_ns)
        cap = max_ns;
    if (cap <= 0)
        return 0;
    return (int64_t)(next_rand(rng) % (uint64_t)(cap + 1));
}

int gd__output_init(gd__output *o, gd_instance *inst, const struct gd_output_ops *ops,
                    void *const *states, size_t nstates, gd__counters *cnt,
                    const gd__output_params *p, size_t max_points, size_t max_bytes,
                    int overflow)
{
    pthread_condattr_t ca;
    memset(o, 0, sizeof(*o));
    o->w = calloc(nstates ? nstates : 1, sizeof(*o->w));
    if (!o->w)
        return GD_ENOMEM;
    int rc = gd__queue_init(&o->q, max_points, max_bytes, overflow, cnt, inst);
    if (rc < 0) {
        free(o->w);
        o->w = NULL;
        return rc;
    }
    o->p = *p;
    if (o->p.batch_points == 0)
        o->p.batch_points = 1;
    o->ops = ops;
    o->nwriters = nstates ? nstates : 1;
    for (size_t i = 0; i < o->nwriters; i++) {
        o->w[i].o = o;
        o->w[i].state = nstates ? states[i] : NULL;
        o->w[i].rng = (uint64_t)gd_now_ns() ^ (uintptr_t)&o->w[i];
    }
    o->inst = inst;
    o->cnt = cnt;
    pthread_mutex_init(&o->wait_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->wait_cond, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

static bool past_deadline(gd__output *o)
{
    return atomic_load(&o->stopping) && gd__mono_ns() >= atomic_load(&o->deadline_ns);
}

/* Sleep @ns, waking early when stopping is requested. */
static void backoff_sleep(gd__output *o, int64_t ns)
{
    int64_t until = gd__mono_ns() + ns;
    if (atomic_load(&o->stopping) && atomic_load(&o->deadline_ns) < until)
        until = atomic_load(&o->deadline_ns);
    struct timespec ts = {.tv_sec = until / 1000000000LL, .tv_nsec = until % 1000000000LL};
    pthread_mutex_lock(&o->wait_lock);
    while (gd__mono_ns() < until) {
        if (pthread_cond_timedwait(&o->wait_cond, &o->wait_lock, &ts) == ETIMEDOUT)
            break;
        if (atomic_load(&o->stopping) && atomic_load(&o->deadline_ns) < until)
            break;
    }
    pthread_mutex_unlock(&o->wait_lock);
}

/* Call write() and wait for done(). Returns the status; *@tok_out keeps the
 * token (for its rejects) and must be released. GD_RETRY when write()
 * failed; -1 when shutdown's deadline passed while waiting. */
static int write_once(gd__writer *w, gd_batch *b, struct done_tok **tok_out)
{
    gd__output *o = w->o;
    struct done_tok *t = calloc(1, sizeof(*t));
    *tok_out = NULL;
    if (!t)
        return GD_RETRY;
    atomic_init(&t->refs, 2);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    t->inst = o->inst;
    t->b = gd_batch_ref(b);

    atomic_fetch_add(&o->cnt->runs, 1);
    int rc = o->ops->write(w->state, b, on_done, t);
    if (rc < 0) {
        gd_log_ratelimited(o->inst, GD_WARN, "write failed: %s", gd_strerror(rc));
        tok_release(t); /* the plugin's reference: done() will never come */
        tok_release(t);
        return GD_RETRY;
    }
    pthread_mutex_lock(&t->lock);
    while (!t->done) {
        if (past_deadline(o)) {
            pthread_mutex_unlock(&t->lock);
            gd_log(o->inst, GD_ERROR, "shutdown deadline passed while a write was in flight");
            tok_release(t);
            return -1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += DONE_POLL_NS;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->cond, &t->lock, &ts);
    }
    pthread_mutex_unlock(&t->lock);
    *tok_out = t;
    return t->status;
}

/* A copy of @b without the points listed in @rej (sorted or not). */
static gd_batch *without(gd_batch *b, const uint32_t *rej, size_t nrej)
{
    size_t len = gd_batch_len(b);
    bool *skip = calloc(len ? len : 1, sizeof(*skip));
    gd_batch *out = skip ? gd_batch_new(len) : NULL;
    if (!out) {
        free(skip);
        return NULL;
    }
    for (size_t i = 0; i < nrej; i++)
        if (rej[i] < len)
            skip[rej[i]] = true;
    for (size_t i = 0; i < len; i++)
        if (!skip[i] && !gd_batch_copy_point(out, gd_batch_point(b, i))) {
            gd_batch_unref(out);
            out = NULL;
            break;
        }
    free(skip);
    if (out)
        gd_batch_freeze(out);
    return out;
}

static size_t count_valid(const uint32_t *rej, size_t nrej, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < nrej; i++)
        n += rej[i] < len && (i == 0 || rej[i] != rej[i - 1]);
    return n;
}

/* Deliver one taken batch; every point ends delivered, counted dropped, or
 * (cut off by the shutdown deadline) handed back to the queue, which keeps
 * the spooled ones on disk and counts the rest as dropped "shutdown". */
static void deliver(gd__writer *w, gd_batch *b, gd__qticket *ticket)
{
    gd__output *o = w->o;
    const size_t total = gd_batch_len(b);
    int64_t first_try = gd__mono_ns();
    unsigned attempt = 0;
    size_t unaccounted = 0;
    gd_batch *cur = gd_batch_ref(b);

    for (;;) {
        size_t len = gd_batch_len(cur);
        struct done_tok *t = NULL;
        int st = write_once(w, cur, &t);
        size_t nrej = t ? count_valid(t->rej, t->nrej, len) : 0;

        if (st == -1) {
            unaccounted = len;
            break;
        }
        if (nrej) {
            gd__count_drop(o->cnt, "rejected", nrej);
            gd_log_ratelimited(o->inst, GD_WARN, "%zu of %zu points rejected by the output",
                               nrej, len);
        }
        if (st == GD_DELIVERED) {
            atomic_fetch_add(&o->cnt->delivered, len - nrej);
            atomic_store(&o->cnt->last_ok_ns, gd_now_ns());
        } else if (st == GD_REJECT) {
            gd__count_drop(o->cnt, "rejected", len - nrej);
            gd_log_ratelimited(o->inst, GD_WARN, "output rejected a batch of %zu points",
                               len - nrej);
        }
        if (st != GD_RETRY) {
            if (t)
                tok_release(t);
            break;
        }
        /* Retry what was not rejected. */
        atomic_fetch_add(&o->cnt->retries, 1);
        atomic_fetch_add(&o->cnt->errors, 1);
        if (nrej) {
            gd_batch *rest = without(cur, t->rej, t->nrej);
            if (!rest) {
                gd__count_drop(o->cnt, "out_of_memory", len - nrej);
                tok_release(t);
                break;
            }
            gd_batch_unref(cur);
            cur = rest;
        }
        if (t)
            tok_release(t);
        len = gd_batch_len(cur);
        if (len == 0)
            break;
        attempt++;
        int64_t age = gd__mono_ns() - first_try;
        if ((o->p.max_retries >= 0 && attempt > (uint64_t)o->p.max_retries) ||
            (o->p.max_retry_age_ns > 0 && age >= o->p.max_retry_age_ns)) {
            gd__count_drop(o->cnt, "retry_exhausted", len);
            gd_log_ratelimited(o->inst, GD_ERROR,
                               "dropped %zu points after %u attempts over %.1f s", len, attempt,
                               (double)age / 1e9);
            break;
        }
        if (past_deadline(o)) {
            unaccounted = len;
            gd_log(o->inst, GD_ERROR, "shutdown deadline: %zu points still retrying %s", len,
                   ticket ? "stay in the spool" : "are dropped");
            break;
        }
        int64_t wait = gd__backoff_ns(&w->rng, o->p.retry_initial_ns, o->p.retry_max_ns,
                                      attempt - 1);
        gd_log_ratelimited(o->inst, GD_WARN, "write of %zu points failed; retry %u in %.3f s",
                           len, attempt, (double)wait / 1e9);
        backoff_sleep(o, wait);
    }
    gd_batch_unref(cur);
    gd__queue_done(&o->q, total, ticket, unaccounted);
}

static void *writer_main(void *arg)
{
    gd__writer *w = arg;
    gd__output *o = w->o;
    gd_batch *b;
    gd__qticket *t;
    int rc;

    while ((rc = gd__queue_take(&o->q, o->p.batch_points, o->p.flush_ns, &b, &t)) !=
           GD_ESHUTDOWN) {
        if (rc < 0)
            continue;
        if (past_deadline(o)) {
            gd__queue_done(&o->q, gd_batch_len(b), t, gd_batch_len(b));
            gd_batch_unref(b);
            gd__queue_drop_waiting(&o->q, "shutdown");
            continue;
        }
        deliver(w, b, t);
        gd_batch_unref(b);
    }
    if (o->ops->flush) {
        rc = o->ops->flush(w->state);
        if (rc < 0)
            gd_log(o->inst, GD_ERROR, "flush failed: %s", gd_strerror(rc));
    }
    return NULL;
}

int gd__output_start(gd__output *o)
{
    for (size_t i = 0; i < o->nwriters; i++) {
        int rc = pthread_create(&o->w[i].thread, NULL, writer_main, &o->w[i]);
        if (rc != 0)
            return -rc; /* gd__output_join() joins the ones started */
        o->w[i].started = true;
        o->running = true;
    }
    return 0;
}

void gd__output_begin_stop(gd__output *o, int64_t deadline_ns)
{
    atomic_store(&o->deadline_ns, deadline_ns);
    atomic_store(&o->stopping, true);
    gd__queue_close(&o->q);
    pthread_mutex_lock(&o->wait_lock);
    pthread_cond_broadcast(&o->wait_cond);
    pthread_mutex_unlock(&o->wait_lock);
}

void gd__output_join(gd__output *o)
{
    for (size_t i = 0; i < o->nwriters; i++) {
        if (o->w[i].started)
            pthread_join(o->w[i].thread, NULL);
        o->w[i].started = false;
    }
    o->running = false;
}

void gd__output_fini(gd__output *o)
{
    if (!o)
        return;
    gd__queue_destroy(&o->q);
    free(o->w);
    o->w = NULL;
    pthread_mutex_destroy(&o->wait_lock);
    pthread_cond_destroy(&o->wait_cond);
}
