/* SPDX-License-Identifier: Apache-2.0 */
/* The disk spool behind `overflow = "spool"`: record format, replay after a
 * restart in order, acknowledgement and segment deletion, repair of torn
 * and corrupt tails, the size bound, and the accounting invariant. */
#include "queue.h"
#include "spool.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static gd__counters cnt;

static void setup(void)
{
    strcpy(dir, "/tmp/gd-spool-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    memset(&cnt, 0, sizeof(cnt));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(spool, .init = setup, .fini = teardown);

static gd_batch *seq_batch(int64_t first, size_t n)
{
    gd_batch *b = gd_batch_new(n);
    for (size_t i = 0; i < n; i++) {
        gd_point *p = gd_batch_add(b, "m", 1000 + first + (int64_t)i);
        gd_point_tag(p, "dev", "c1");
        gd_point_i64(p, "seq", first + (int64_t)i);
    }
    gd_batch_freeze(b);
    return b;
}

static const gd__spool_opts sync_batch = {.sync = GD__SYNC_BATCH};

/* A queue on the spool in dir/out (memory bound @max_points). */
static void open_queue(gd__queue *q, size_t max_points, bool always, const gd__spool_opts *o)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/out", dir);
    cr_assert_eq(gd__queue_init(q, max_points, 0, GD__OVF_SPOOL, &cnt, NULL), 0);
    cr_assert_eq(gd__queue_attach_spool(q, path, o ? o : &sync_batch, always), 0);
}

static void push_seq(gd__queue *q, int64_t first, size_t n)
{
    gd_batch *b = seq_batch(first, n);
    cr_assert_eq(gd__queue_push(q, b, 0), 0);
    gd_batch_unref(b);
}

/* Take everything waiting, check the seq values run on from *@next, ack. */
static size_t drain(gd__queue *q, int64_t *next)
{
    size_t total = 0;
    while (gd__queue_queued(q) > 0) {
        gd_batch *b;
        gd__qticket *t;
        cr_assert_eq(gd__queue_take(q, 1000, 0, &b, &t), 0);
        for (size_t i = 0; i < gd_batch_len(b); i++) {
            const gd_field *f = gd_point_field_get(gd_batch_point(b, i), "seq");
            cr_assert_eq(f->v.i64, *next, "seq %ld where %ld was due", (long)f->v.i64,
                         (long)*next);
            (*next)++;
        }
        total += gd_batch_len(b);
        atomic_fetch_add(&cnt.delivered, gd_batch_len(b));
        gd__queue_done(q, gd_batch_len(b), t, 0);
        gd_batch_unref(b);
    }
    return total;
}

static size_t count_files(const char *ext)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/out", dir);
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ext) != NULL;
    if (d)
        closedir(d);
    return n;
}

static void assert_invariant(gd__queue *q)
{
    uint64_t rx = atomic_load(&cnt.received), dl = atomic_load(&cnt.delivered);
    uint64_t dr = gd__dropped(&cnt, NULL), qd = gd__queue_queued(q);
    cr_assert_eq(rx, dl + dr + qd, "received %lu != delivered %lu + dropped %lu + queued %lu",
                 (unsigned long)rx, (unsigned long)dl, (unsigned long)dr, (unsigned long)qd);
}

Test(spool, batches_round_trip_through_the_record_format)
{
    gd_batch *b = gd_batch_new(2);
    gd_point *p = gd_batch_add(b, "chamber x", -5);
    gd_point_tag(p, "site", "lab,a");
    gd_point_f64(p, "t", -0.1);
    gd_point_i64(p, "i", INT64_MIN);
    gd_point_u64(p, "u", UINT64_MAX);
    gd_point_bool(p, "ok", true);
    gd_point_str_n(p, "s", "a\0b\n", 4);
    gd_point_i64(gd_batch_add(b, "m2", 7), "v", 1);
    gd_buf buf = {0};
    cr_assert_eq(gd__batch_serialize(b, &buf), 0);
    gd_batch *c = NULL;
    cr_assert_eq(gd__batch_deserialize(buf.data, buf.len, &c), 0);
    gd_buf x = {0}, y = {0};
    gd_json_encode_point(&x, gd_batch_point(b, 0));
    gd_json_encode_point(&y, gd_batch_point(c, 0));
    cr_assert_str_eq(x.data, y.data);
    cr_assert_eq(gd_batch_len(c), 2);
    for (size_t cut = 0; cut < buf.len; cut += 7) {
        gd_batch *d = NULL;
        cr_assert_eq(gd__batch_deserialize(buf.data, cut, &d), GD_EPARSE, "cut at %zu", cut);
    }
    gd_buf_free(&buf);
    gd_buf_free(&x);
    gd_buf_free(&y);
    gd_batch_unref(b);
    gd_batch_unref(c);
}

Test(spool, what_does_not_fit_in_memory_goes_to_disk_and_comes_back_in_order)
{
    gd__queue q;
    open_queue(&q, 25, false, NULL);
    for (int64_t i = 0; i < 20; i++)
        push_seq(&q, i * 10, 10); /* 2 batches in memory, 18 on disk */
    cr_assert_eq(q.disk_points, 180);
    cr_assert_eq(count_files(".seg"), 1);
    cr_assert_not(gd__queue_is_full(&q), "a spooling queue never makes producers wait");
    int64_t next = 0;
    cr_assert_eq(drain(&q, &next), 200);
    assert_invariant(&q);
    gd__queue_destroy(&q);
    cr_assert_eq(count_files(".seg"), 1, "the open segment stays until sealed");
}

Test(spool, a_restart_replays_what_was_not_acknowledged_and_nothing_else)
{
    gd__queue q;
    open_queue(&q, 1000, true, NULL);
    for (int64_t i = 0; i < 10; i++)
        push_seq(&q, i * 5, 5);
    /* deliver the first two batches, then "crash" (no destroy: memory lost) */
    int64_t next = 0;
    for (int k = 0; k < 2; k++) {
        gd_batch *b;
        gd__qticket *t;
        cr_assert_eq(gd__queue_take(&q, 5, 0, &b, &t), 0);
        next += (int64_t)gd_batch_len(b);
        gd__queue_done(&q, gd_batch_len(b), t, 0);
        gd_batch_unref(b);
    }
    gd__spool_close(q.spool); /* what the kernel does for a killed process */
    q.spool = NULL;
    free(q.ring);
    q.ring = NULL;

    gd__queue r;
    memset(&cnt, 0, sizeof(cnt));
    open_queue(&r, 1000, true, NULL);
    cr_assert_eq(atomic_load(&cnt.received), 40, "replayed %lu",
                 (unsigned long)atomic_load(&cnt.received));
    cr_assert_eq(drain(&r, &next), 40);
    assert_invariant(&r);
    gd__queue_destroy(&r);

    gd__queue s;
    memset(&cnt, 0, sizeof(cnt));
    open_queue(&s, 1000, true, NULL);
    cr_assert_eq(gd__queue_queued(&s), 0, "acknowledged records came back");
    gd__queue_destroy(&s);
}

/* Only the contiguous prefix of acknowledged records is persisted: a record
 * acknowledged while an older one is still in flight comes back after a
 * crash too (at least once: nothing lost, a bounded duplicate). */
Test(spool, out_of_order_acks_lose_nothing_at_a_crash)
{
    gd__queue q;
    open_queue(&q, 1000, true, NULL);
    push_seq(&q, 0, 3);
    push_seq(&q, 3, 3);
    push_seq(&q, 6, 3);
    push_seq(&q, 9, 3);
    gd_batch *a, *b;
    gd__qticket *ta, *tb;
    cr_assert_eq(gd__queue_take(&q, 3, 0, &a, &ta), 0);
    cr_assert_eq(gd__queue_take(&q, 3, 0, &b, &tb), 0);
    gd__queue_done(&q, 3, tb, 0); /* the second write finished first */
    gd__queue_done(&q, 3, ta, 0); /* then the first: the prefix covers both */
    gd_batch_unref(a);
    gd_batch_unref(b);
    cr_assert_eq(gd__queue_take(&q, 3, 0, &a, &ta), 0);
    cr_assert_eq(gd__queue_take(&q, 3, 0, &b, &tb), 0);
    gd__queue_done(&q, 3, tb, 0); /* the fourth finished; crash with the third in flight */
    gd__spool_close(q.spool);
    q.spool = NULL;
    free(q.ring);
    free(ta->recs);
    free(ta);
    gd_batch_unref(a);
    gd_batch_unref(b);

    gd__queue r;
    memset(&cnt, 0, sizeof(cnt));
    open_queue(&r, 1000, true, NULL);
    int64_t next = 6;
    cr_assert_eq(drain(&r, &next), 6, "the third and fourth batch, not the first two");
    gd__queue_destroy(&r);
}

static char *segment_path(void)
{
    static char path[512];
    char d[128];
    snprintf(d, sizeof(d), "%s/out", dir);
    DIR *dd = opendir(d);
    struct dirent *e;
    path[0] = '\0';
    while (dd && (e = readdir(dd)))
        if (strstr(e->d_name, ".seg"))
            snprintf(path, sizeof(path), "%s/%s", d, e->d_name);
    if (dd)
        closedir(dd);
    return path;
}

static void leave_spool_with(size_t batches)
{
    gd__queue q;
    open_queue(&q, 1000, true, NULL);
    for (size_t i = 0; i < batches; i++)
        push_seq(&q, (int64_t)i * 4, 4);
    gd__spool_close(q.spool);
    q.spool = NULL;
    free(q.ring);
}

Test(spool, a_torn_tail_is_truncated_at_the_last_good_record)
{
    leave_spool_with(5);
    char *seg = segment_path();
    struct stat st;
    cr_assert_eq(stat(seg, &st), 0);
    cr_assert_eq(truncate(seg, st.st_size - 3), 0); /* the last write half done */

    gd__queue q;
    memset(&cnt, 0, sizeof(cnt));
    open_queue(&q, 1000, true, NULL);
    int64_t next = 0;
    cr_assert_eq(drain(&q, &next), 16);
    cr_assert_eq(gd__dropped(&cnt, "spool_corrupt"), 4);
    assert_invariant(&q);
    gd__queue_destroy(&q);
}

Test(spool, a_corrupt_record_ends_the_segment_there_and_is_counted)
{
    leave_spool_with(5);
    char *seg = segment_path();
    struct stat st;
    cr_assert_eq(stat(seg, &st), 0);
    int fd = open(seg, O_RDWR);
    cr_assert_geq(fd, 0);
    /* flip a byte inside the third record's payload */
    off_t rec = (st.st_size - 8) / 5;
    char c;
    cr_assert_eq(pread(fd, &c, 1, 8 + 2 * rec + 20), 1);
    c ^= 0x55;
    cr_assert_eq(pwrite(fd, &c, 1, 8 + 2 * rec + 20), 1);
    close(fd);

    gd__queue q;
    memset(&cnt, 0, sizeof(cnt));
    open_queue(&q, 1000, true, NULL);
    cr_assert_eq(stat(seg, &st), 0);
    cr_assert_eq(st.st_size, 8 + 2 * rec, "truncated at the damaged record");
    int64_t next = 0;
    cr_assert_eq(drain(&q, &next), 8, "the two records before the damage");
    cr_assert_eq(gd__dropped(&cnt, "spool_corrupt"), 12, "the damaged record and the two after it");
    cr_assert_eq(stat(seg, &st), -1, "a delivered segment is deleted");
    gd__queue_destroy(&q);
}

Test(spool, past_max_bytes_the_oldest_segments_are_dropped_and_counted)
{
    gd__spool_opts o = {.sync = GD__SYNC_NONE, .max_bytes = 64 * 1024, .segment_bytes = 8192};
    gd__queue q;
    open_queue(&q, 1, true, &o);
    for (int64_t i = 0; i < 400; i++)
        push_seq(&q, i * 10, 10);
    cr_assert_gt(gd__dropped(&cnt, "spool_full"), 0);
    cr_assert_lt(gd__spool_bytes(q.spool), 64 * 1024 + 1);
    assert_invariant(&q);
    /* what is left is the newest data, still in order */
    gd_batch *b;
    gd__qticket *t;
    cr_assert_eq(gd__queue_take(&q, 10, 0, &b, &t), 0);
    int64_t first = gd_point_field_get(gd_batch_point(b, 0), "seq")->v.i64;
    cr_assert_gt(first, 0);
    atomic_fetch_add(&cnt.delivered, gd_batch_len(b));
    gd__queue_done(&q, gd_batch_len(b), t, 0);
    gd_batch_unref(b);
    int64_t next = first + 10;
    drain(&q, &next);
    cr_assert_eq(next, 4000);
    assert_invariant(&q);
    gd__queue_destroy(&q);
}

Test(spool, a_killed_process_loses_nothing_it_pushed_with_spool_always)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        gd__queue q;
        open_queue(&q, 1000, true, NULL);
        for (int64_t i = 0; i < 50; i++)
            push_seq(&q, i * 2, 2);
        _exit(0); /* no close, no destroy */
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    gd__queue q;
    open_queue(&q, 1000, true, NULL);
    int64_t next = 0;
    cr_assert_eq(drain(&q, &next), 100);
    gd__queue_destroy(&q);
}

Test(spool, shutdown_keeps_memory_batches_on_disk_for_the_next_start)
{
    gd__queue q;
    open_queue(&q, 1000, false, NULL);
    push_seq(&q, 0, 5);
    push_seq(&q, 5, 5);
    cr_assert_eq(q.disk_points, 0, "room in memory: nothing on disk yet");
    gd__queue_close(&q);
    gd__queue_drop_waiting(&q, "shutdown");
    cr_assert_eq(gd__dropped(&cnt, NULL), 0);
    cr_assert_eq(gd__queue_queued(&q), 10, "counted as still queued");
    assert_invariant(&q);
    gd__queue_destroy(&q);

    gd__queue r;
    memset(&cnt, 0, sizeof(cnt));
    open_queue(&r, 1000, false, NULL);
    int64_t next = 0;
    cr_assert_eq(drain(&r, &next), 10);
    gd__queue_destroy(&r);
}

Test(spool, a_busy_directory_is_attached_once_the_holder_lets_go)
{
    gd__queue old;
    open_queue(&old, 1000, true, NULL);
    push_seq(&old, 0, 3);
    gd__queue q;
    open_queue(&q, 1000, true, NULL);
    cr_assert_null(q.spool, "two spools on one directory");
    cr_assert_not_null(q.pending_dir);
    push_seq(&q, 100, 2); /* waits in memory meanwhile */
    gd__queue_close(&old);
    gd__queue_drop_waiting(&old, "shutdown");
    gd__queue_destroy(&old);
    gd_batch *b;
    gd__qticket *t;
    size_t got = 0;
    while (got < 5) {
        cr_assert_eq(gd__queue_take(&q, 100, 0, &b, &t), 0);
        got += gd_batch_len(b);
        gd__queue_done(&q, gd_batch_len(b), t, 0);
        gd_batch_unref(b);
    }
    cr_assert_not_null(q.spool);
    cr_assert_eq(got, 5, "the old instance's batches arrive too");
    gd__queue_destroy(&q);
}
