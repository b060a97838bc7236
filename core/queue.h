/* SPDX-License-Identifier: Apache-2.0 */
/*
 * queue.h - the bounded queue in front of every output instance.
 *
 * Producers (collect workers, the main thread) push frozen batches; the
 * output's writer thread takes them, merged up to batch_points. Bounds are
 * points and bytes of the batches waiting (not the one in flight). A batch
 * always fits an empty queue, so one oversized batch is never dropped for
 * its size alone. When full:
 *   block        the producer waits until its deadline, then the batch is
 *                dropped and counted ("queue_full"); the scheduler checks
 *                gd__queue_is_full() first and skips collects instead;
 *   drop_oldest  the oldest waiting batches are dropped and counted
 *                ("drop_oldest") until the new one fits;
 *   spool        the batch goes to the disk spool (see spool.h) and waits
 *                there, in order with the batches in memory; with
 *                spool_always every batch does. A spooling queue is never
 *                full; a full spool drops its oldest segment (counted
 *                "spool_full").
 * Every point pushed is counted as received; every point leaves through
 * gd__queue_done() (delivered or dropped by the writer) or a counted drop.
 */
#ifndef GATHERD_CORE_QUEUE_H
#define GATHERD_CORE_QUEUE_H

#include "counters.h"
#include "spool.h"
#include <gatherd/gatherd.h>
#include <pthread.h>

enum gd__overflow {
    GD__OVF_BLOCK = 0,
    GD__OVF_DROP_OLDEST = 1,
    GD__OVF_SPOOL = 2,
};

struct gd__qent {
    gd_batch *b; /* NULL: the batch is on disk, at rec */
    size_t points;
    size_t bytes; /* memory held (0 on disk) */
    int64_t t_ns; /* monotonic time of the push */
    gd__spool_rec rec;
};

/* What a take handed out from the spool: acknowledged by gd__queue_done(). */
typedef struct gd__qticket {
    gd__spool_rec *recs;
    size_t n;
    size_t points; /* of those records */
} gd__qticket;

typedef struct gd__queue {
    pthread_mutex_t lock;
    pthread_cond_t cond_data;
    pthread_cond_t cond_space;
    struct gd__qent *ring;
    size_t cap, head, count;
    size_t points, bytes, inflight; /* points and bytes: in memory */
    size_t mem_count;               /* entries in memory (the rest are on disk) */
    size_t disk_points;             /* points on disk, waiting */
    size_t max_points, max_bytes;
    int overflow;
    bool closed;
    gd__spool *spool; /* overflow = spool */
    bool spool_always;
    size_t stranded; /* points left on disk for the next start */
    /* A spool whose directory was busy (the instance this one replaces
     * after a reload is still draining): attached by take() once free. */
    char *pending_dir;
    gd__spool_opts pending_opts;
    bool pending_always;
    gd__counters *cnt;
    const gd_instance *inst; /* for log lines */
} gd__queue;

/* gd__queue_init() - an empty queue; @cnt receives the counts. */
int gd__queue_init(gd__queue *q, size_t max_points, size_t max_bytes, int overflow,
                   gd__counters *cnt, const gd_instance *inst);

/* gd__queue_attach_spool() - make @q spool to @dir (overflow = spool):
 * batches that do not fit in memory, or every batch with @always, are
 * written to disk and read back in order. Unacknowledged records found on
 * disk are queued first (counted as received). */
int gd__queue_attach_spool(gd__queue *q, const char *dir, const gd__spool_opts *o, bool always);

/* gd__queue_destroy() - drop (and count as "shutdown") what is left in
 * memory (a spooling queue writes it to disk instead), then free. Accepts
 * NULL. */
void gd__queue_destroy(gd__queue *q);

/* gd__queue_push() - enqueue @b (the queue takes its own reference). With
 * `block`, waits for room until @deadline_ns (monotonic; 0: no wait).
 * Returns 0, GD_EQUEUEFULL (dropped and counted) or GD_ESHUTDOWN (closed;
 * dropped and counted as "shutdown"). */
int gd__queue_push(gd__queue *q, gd_batch *b, int64_t deadline_ns);

/* gd__queue_is_full() - true when a `block` queue has no room left. */
bool gd__queue_is_full(gd__queue *q);

/* gd__queue_take() - wait for the next write: returns 0 and a batch (a new
 * reference; merged from several pushes when they are small) once
 * @batch_points are waiting, the oldest waited @flush_ns, or the queue is
 * closed; GD_ESHUTDOWN once closed and empty. The points taken count as in
 * flight until gd__queue_done(). *@ticket (NULL unless some came from the
 * spool) goes back with them. */
int gd__queue_take(gd__queue *q, size_t batch_points, int64_t flush_ns, gd_batch **out,
                   gd__qticket **ticket);

/* gd__queue_done() - the writer finished with @points in-flight points, of
 * which @unaccounted were neither delivered nor counted as dropped (a write
 * cut off by the shutdown deadline). With none, the spool records of
 * @ticket are acknowledged. Otherwise they stay on disk for the next start,
 * up to @unaccounted of them count as still queued, and the rest of
 * @unaccounted as dropped "shutdown". Frees @ticket. */
void gd__queue_done(gd__queue *q, size_t points, gd__qticket *ticket, size_t unaccounted);

/* gd__queue_close() - refuse further pushes and wake every waiter. */
void gd__queue_close(gd__queue *q);

/* gd__queue_drop_waiting() - drop and count (as @reason) every batch waiting
 * in memory; a spooling queue writes them to disk instead, where they wait
 * for the next start. */
void gd__queue_drop_waiting(gd__queue *q, const char *reason);

/* gd__queue_queued() - points waiting (in memory and spooled) plus points in
 * flight. */
size_t gd__queue_queued(gd__queue *q);

/* gd__mono_ns() - monotonic clock in ns. */
int64_t gd__mono_ns(void);

#endif
