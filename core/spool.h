/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spool.h - an output's disk spool: batches in append-only segment files.
 *
 * Layout under DIR (global.spool_dir/<output name>/):
 *   00000000000000000001.seg   "GDSPOOL1", then records:
 *                              u32 payload length, u32 CRC32C of (points +
 *                              payload), u32 points, payload (a serialized
 *                              batch, see gd__batch_serialize)
 *   00000000000000000001.ack   u64: how many records from the segment's
 *                              start are acknowledged (a contiguous prefix)
 * A segment is sealed at SPOOL_SEGMENT_BYTES and deleted with its .ack once
 * every record in it is acknowledged. Opening a spool scans every segment in
 * order, truncates a torn or corrupt tail at the last good record (counted
 * as dropped "spool_corrupt") and reports each unacknowledged record, so
 * the queue replays them before new data.
 *
 * Not thread-safe: the queue calls it under its own lock.
 */
#ifndef GATHERD_CORE_SPOOL_H
#define GATHERD_CORE_SPOOL_H

#include "counters.h"
#include <gatherd/gatherd.h>

enum gd__spool_sync {
    GD__SYNC_BATCH = 0,    /* fdatasync after every record */
    GD__SYNC_INTERVAL = 1, /* at most every sync_interval */
    GD__SYNC_NONE = 2,     /* leave it to the kernel */
};

typedef struct gd__spool_opts {
    int sync;                 /* gd__spool_sync */
    int64_t sync_interval_ns; /* GD__SYNC_INTERVAL */
    uint64_t max_bytes;       /* 0: unlimited */
    uint64_t segment_bytes;   /* 0: SPOOL_SEGMENT_BYTES */
} gd__spool_opts;

/* Where one record lives. */
typedef struct gd__spool_rec {
    uint64_t seg;
    uint32_t idx; /* record index within the segment */
    uint32_t points;
    uint64_t off;
    uint32_t len; /* payload bytes */
} gd__spool_rec;

typedef struct gd__spool gd__spool;

/* gd__spool_open() - open (creating) the spool in @dir and call @found for
 * every unacknowledged record, oldest first. Damage is repaired, logged and
 * counted in @cnt. GD_EAGAIN: another spool object holds @dir (a reload's
 * old instance still draining). */
int gd__spool_open(const char *dir, const gd__spool_opts *o, gd_instance *inst, gd__counters *cnt,
                   void (*found)(void *ctx, const gd__spool_rec *r), void *ctx, gd__spool **out);

/* gd__spool_append() - write @b as one record (synced as configured) and
 * fill *@rec. When the spool would pass max_bytes, or the disk is full,
 * the oldest segments are evicted first: @evicted(ctx, seg) is called for
 * each, and the caller drops and counts their waiting records. Returns 0,
 * GD_ESPOOLFULL (nothing older left to evict; the batch was not written)
 * or GD_EIO. */
int gd__spool_append(gd__spool *s, const gd_batch *b, gd__spool_rec *rec,
                     void (*evicted)(void *ctx, uint64_t seg), void *ctx);

/* gd__spool_read() - the batch of record @r (a new, frozen batch). */
int gd__spool_read(gd__spool *s, const gd__spool_rec *r, gd_batch **out);

/* gd__spool_ack() - record @r is done with (delivered or counted dropped).
 * Acks of evicted segments are ignored. */
void gd__spool_ack(gd__spool *s, const gd__spool_rec *r);

/* gd__spool_sync() - flush what GD__SYNC_INTERVAL has pending. */
void gd__spool_sync(gd__spool *s);

/* gd__spool_bytes() - bytes of all segment files. */
uint64_t gd__spool_bytes(const gd__spool *s);

/* gd__spool_close() - sync and close. Accepts NULL. */
void gd__spool_close(gd__spool *s);

/* gd__batch_serialize() - append @b to @out in the spool's record format. */
int gd__batch_serialize(const gd_batch *b, gd_buf *out);
/* gd__batch_deserialize() - a new frozen batch from @len bytes; GD_EPARSE
 * when they are not a well-formed serialized batch. */
int gd__batch_deserialize(const void *data, size_t len, gd_batch **out);

/* gd__crc32c() - CRC-32C (Castagnoli) of @len bytes, continuing @crc. */
uint32_t gd__crc32c(uint32_t crc, const void *data, size_t len);

#endif
