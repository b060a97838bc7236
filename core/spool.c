/* SPDX-License-Identifier: Apache-2.0 */
/* spool.c - see spool.h. */
#include "spool.h"
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_MAGIC "GDSPOOL1"
#define SPOOL_MAGIC_BYTES 8
#define SPOOL_SEGMENT_BYTES (8u << 20)
#define REC_HEADER_BYTES 12
/* A record larger than this is corruption, not data. */
#define MAX_RECORD_BYTES (1u << 30)

struct seg {
    uint64_t id;
    int fd;
    int ack_fd;
    uint64_t size;
    uint32_t nrecs;
    uint32_t acked; /* contiguous prefix of acknowledged records */
    uint8_t *bits;  /* acknowledged records past the prefix */
    size_t nbits;
    bool sealed;
};

struct gd__spool {
    char *dir;
    int dir_fd;
    int lock_fd; /* flock()ed: one spool object per directory */
    gd__spool_opts o;
    gd_instance *inst;
    gd__counters *cnt;
    struct seg *segs; /* oldest first */
    size_t nsegs, cap;
    uint64_t next_id;
    uint64_t bytes;
    int64_t last_sync_ns;
    bool dirty;
    gd_buf rec;
};

/* ---- CRC-32C ------------------------------------------------------------ */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t gd__crc32c(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- serialization ------------------------------------------------------ */

static int put(gd_buf *o, const void *p, size_t n)
{
    return gd_buf_append(o, p, n);
}

static int put_u32(gd_buf *o, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return put(o, b, 4);
}

static int put_u64(gd_buf *o, uint64_t v)
{
    int rc = put_u32(o, (uint32_t)v);
    return rc < 0 ? rc : put_u32(o, (uint32_t)(v >> 32));
}

static int put_str(gd_buf *o, const char *s, size_t n)
{
    int rc = put_u32(o, (uint32_t)n);
    return rc < 0 ? rc : put(o, s, n);
}

int gd__batch_serialize(const gd_batch *b, gd_buf *out)
{
    size_t n = gd_batch_len(b);
    int rc = put_u32(out, (uint32_t)n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const gd_point *p = gd_batch_point(b, i);
        size_t mlen, nt, nf;
        const char *m = gd_point_measurement(p, &mlen);
        const gd_tag *t = gd_point_tags(p, &nt);
        const gd_field *f = gd_point_fields(p, &nf);
        rc = put_str(out, m, mlen);
        rc = rc < 0 ? rc : put_u64(out, (uint64_t)gd_point_time(p));
        rc = rc < 0 ? rc : put_u32(out, (uint32_t)nt);
        for (size_t k = 0; rc == 0 && k < nt; k++) {
            rc = put_str(out, t[k].key, t[k].key_len);
            rc = rc < 0 ? rc : put_str(out, t[k].value, t[k].value_len);
        }
        rc = rc < 0 ? rc : put_u32(out, (uint32_t)nf);
        for (size_t k = 0; rc == 0 && k < nf; k++) {
            uint8_t type = (uint8_t)f[k].type;
            rc = put_str(out, f[k].key, f[k].key_len);
            rc = rc < 0 ? rc : put(out, &type, 1);
            if (rc < 0)
                break;
            switch (f[k].type) {
            case GD_F64: {
                uint64_t u;
                memcpy(&u, &f[k].v.f64, sizeof(u));
                rc = put_u64(out, u);
                break;
            }
            case GD_I64: rc = put_u64(out, (uint64_t)f[k].v.i64); break;
            case GD_U64: rc = put_u64(out, f[k].v.u64); break;
            case GD_BOOL: {
                uint8_t v = f[k].v.b;
                rc = put(out, &v, 1);
                break;
            }
            default: rc = put_str(out, f[k].v.str.ptr, f[k].v.str.len); break;
            }
        }
    }
    return rc;
}

struct rd {
    const uint8_t *p;
    size_t left;
    bool bad;
};

static uint32_t get_u32(struct rd *r)
{
    if (r->left < 4) {
        r->bad = true;
        return 0;
    }
    uint32_t v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                 (uint32_t)r->p[3] << 24;
    r->p += 4;
    r->left -= 4;
    return v;
}

static uint64_t get_u64(struct rd *r)
{
    uint64_t lo = get_u32(r);
    return lo | (uint64_t)get_u32(r) << 32;
}

static const char *get_str(struct rd *r, size_t *n)
{
    *n = get_u32(r);
    if (r->bad || *n > r->left) {
        r->bad = true;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += *n;
    r->left -= *n;
    return s;
}

static uint8_t get_u8(struct rd *r)
{
    if (r->left < 1) {
        r->bad = true;
        return 0;
    }
    r->left--;
    return *r->p++;
}

int gd__batch_deserialize(const void *data, size_t len, gd_batch **out)
{
    struct rd r = {.p = data, .left = len};
    uint32_t n = get_u32(&r);
    gd_batch *b = gd_batch_new(n < 100000 ? n : 100000);
    if (!b)
        return GD_ENOMEM;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0 && !r.bad; i++) {
        size_t mlen;
        const char *m = get_str(&r, &mlen);
        int64_t ts = (int64_t)get_u64(&r);
        gd_point *p = r.bad ? NULL : gd_batch_add_n(b, m, mlen, ts);
        if (!p) {
            rc = GD_EPARSE;
            break;
        }
        uint32_t nt = get_u32(&r);
        for (uint32_t k = 0; k < nt && rc == 0 && !r.bad; k++) {
            size_t kl, vl;
            const char *key = get_str(&r, &kl);
            const char *val = get_str(&r, &vl);
            if (!r.bad)
                rc = gd_point_tag_n(p, key, kl, val, vl);
        }
        uint32_t nf = get_u32(&r);
        for (uint32_t k = 0; k < nf && rc == 0 && !r.bad; k++) {
            size_t kl;
            gd_field f = {0};
            f.key = get_str(&r, &kl);
            f.key_len = (uint32_t)kl;
            f.type = get_u8(&r);
            switch (f.type) {
            case GD_F64: {
                uint64_t u = get_u64(&r);
                memcpy(&f.v.f64, &u, sizeof(u));
                break;
            }
            case GD_I64: f.v.i64 = (int64_t)get_u64(&r); break;
            case GD_U64: f.v.u64 = get_u64(&r); break;
            case GD_BOOL: f.v.b = get_u8(&r) != 0; break;
            case GD_STR: f.v.str.ptr = get_str(&r, &f.v.str.len); break;
            default: r.bad = true; break;
            }
            if (!r.bad)
                rc = gd_point_field(p, &f);
        }
    }
    if (rc == 0 && (r.bad || r.left))
        rc = GD_EPARSE;
    if (rc < 0) {
        gd_batch_unref(b);
        return rc == GD_ENOMEM ? rc : GD_EPARSE;
    }
    gd_batch_freeze(b);
    *out = b;
    return 0;
}

/* ---- segments ------------------------------------------------------------ */

static void seg_path(const gd__spool *s, uint64_t id, const char *ext, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%020" PRIu64 ".%s", s->dir, id, ext);
}

/* The index of segment @id in s->segs, or -1 (evicted or deleted). */
static long seg_index(const gd__spool *s, uint64_t id)
{
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i].id == id)
            return (long)i;
    return -1;
}

static void seg_remove(gd__spool *s, size_t i)
{
    struct seg *g = &s->segs[i];
    char path[4096];
    if (g->fd >= 0)
        close(g->fd);
    if (g->ack_fd >= 0)
        close(g->ack_fd);
    seg_path(s, g->id, "seg", path, sizeof(path));
    unlink(path);
    seg_path(s, g->id, "ack", path, sizeof(path));
    unlink(path);
    s->bytes -= g->size;
    free(g->bits);
    memmove(g, g + 1, (s->nsegs - i - 1) * sizeof(*g));
    s->nsegs--;
}

static int seg_push(gd__spool *s, const struct seg *g)
{
    if (s->nsegs == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 8;
        struct seg *n = realloc(s->segs, ncap * sizeof(*n));
        if (!n)
            return GD_ENOMEM;
        s->segs = n;
        s->cap = ncap;
    }
    s->segs[s->nsegs++] = *g;
    return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int seg_create(gd__spool *s)
{
    char path[4096];
    struct seg g = {.id = s->next_id++, .fd = -1, .ack_fd = -1};
    seg_path(s, g.id, "seg", path, sizeof(path));
    g.fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (g.fd < 0)
        return -errno;
    int rc = write_all(g.fd, SPOOL_MAGIC, SPOOL_MAGIC_BYTES);
    if (rc == 0 && seg_push(s, &g) < 0)
        rc = GD_ENOMEM;
    if (rc < 0) {
        close(g.fd);
        unlink(path);
        return rc;
    }
    s->segs[s->nsegs - 1].size = SPOOL_MAGIC_BYTES;
    s->bytes += SPOOL_MAGIC_BYTES;
    if (s->o.sync == GD__SYNC_BATCH && s->dir_fd >= 0)
        fsync(s->dir_fd);
    return 0;
}

static void seg_write_ack(gd__spool *s, struct seg *g)
{
    if (g->ack_fd < 0) {
        char path[4096];
        seg_path(s, g->id, "ack", path, sizeof(path));
        g->ack_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (g->ack_fd < 0)
            return; /* the records replay after a restart: duplicates, not loss */
    }
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)g->acked >> (8 * i));
    if (pwrite(g->ack_fd, b, sizeof(b), 0) == (ssize_t)sizeof(b) && s->o.sync == GD__SYNC_BATCH)
        fdatasync(g->ack_fd);
    s->dirty = true;
}

/* ---- open and replay ----------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint32_t read_ack(gd__spool *s, uint64_t id)
{
    char path[4096];
    uint8_t b[8];
    seg_path(s, id, "ack", path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, b, sizeof(b), 0);
    close(fd);
    if (n != (ssize_t)sizeof(b))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* Scan one segment: report its unacknowledged records, truncate damage. */
static void scan_segment(gd__spool *s, uint64_t id,
                         void (*found)(void *ctx, const gd__spool_rec *r), void *ctx)
{
    char path[4096];
    seg_path(s, id, "seg", path, sizeof(path));
    struct seg g = {.id = id, .fd = -1, .ack_fd = -1, .sealed = true};
    g.fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    char magic[SPOOL_MAGIC_BYTES];
    if (g.fd < 0 || fstat(g.fd, &st) < 0 ||
        pread(g.fd, magic, sizeof(magic), 0) != (ssize_t)sizeof(magic) ||
        memcmp(magic, SPOOL_MAGIC, SPOOL_MAGIC_BYTES) != 0) {
        gd_log(s->inst, GD_WARN, "spool: %s is not a spool segment (or torn at creation): removed",
               path);
        if (g.fd >= 0)
            close(g.fd);
        unlink(path);
        seg_path(s, id, "ack", path, sizeof(path));
        unlink(path);
        return;
    }
    uint32_t acked = read_ack(s, id);
    uint64_t off = SPOOL_MAGIC_BYTES, size = (uint64_t)st.st_size;
    gd_buf buf = {0};
    uint64_t bad_points = 0;
    bool damaged = false;
    while (off < size) {
        uint8_t h[REC_HEADER_BYTES];
        if (size - off < REC_HEADER_BYTES || pread(g.fd, h, sizeof(h), (off_t)off) != sizeof(h)) {
            damaged = true;
            break;
        }
        struct rd r = {.p = h, .left = sizeof(h)};
        uint32_t len = get_u32(&r), crc = get_u32(&r), points = get_u32(&r);
        if (len > MAX_RECORD_BYTES || len > size - off - REC_HEADER_BYTES) {
            damaged = true;
            bad_points += len > MAX_RECORD_BYTES ? 0 : points;
            break;
        }
        gd_buf_reset(&buf);
        if (gd_buf_reserve(&buf, len) < 0 ||
            pread(g.fd, buf.data, len, (off_t)(off + REC_HEADER_BYTES)) != (ssize_t)len) {
            damaged = true;
            break;
        }
        uint8_t pb[4];
        memcpy(pb, h + 8, 4);
        if (gd__crc32c(gd__crc32c(0, pb, 4), buf.data, len) != crc) {
            damaged = true;
            bad_points += points;
            break;
        }
        if (g.nrecs >= acked)
            found(ctx, &(gd__spool_rec){.seg = id, .idx = g.nrecs, .points = points, .off = off,
                                        .len = len});
        g.nrecs++;
        off += REC_HEADER_BYTES + len;
    }
    gd_buf_free(&buf);
    if (damaged) {
        /* Count what the truncation loses past the bad record, as far as
         * the record headers still frame it. */
        uint64_t at = off;
        uint8_t h[REC_HEADER_BYTES];
        bool first = true;
        while (size - at >= REC_HEADER_BYTES &&
               pread(g.fd, h, sizeof(h), (off_t)at) == (ssize_t)sizeof(h)) {
            struct rd r = {.p = h, .left = sizeof(h)};
            uint32_t len = get_u32(&r);
            (void)get_u32(&r);
            uint32_t points = get_u32(&r);
            if (len > MAX_RECORD_BYTES || len > size - at - REC_HEADER_BYTES)
                break;
            if (!first)
                bad_points += points;
            first = false;
            at += REC_HEADER_BYTES + len;
        }
        gd_log(s->inst, GD_ERROR,
               "spool: %s: torn or corrupt record at byte %" PRIu64 ": truncated there "
               "(%" PRIu64 " bytes, %" PRIu64 " points lost)",
               path, off, size - off, bad_points);
        if (ftruncate(g.fd, (off_t)off) == 0)
            size = off;
        atomic_fetch_add(&s->cnt->received, bad_points);
        gd__count_drop(s->cnt, "spool_corrupt", bad_points);
    }
    g.size = size;
    g.acked = acked > g.nrecs ? g.nrecs : acked;
    s->bytes += g.size;
    if (seg_push(s, &g) < 0) {
        close(g.fd);
        return;
    }
    if (g.acked == g.nrecs)
        seg_remove(s, s->nsegs - 1); /* everything in it was delivered */
}

int gd__spool_open(const char *dir, const gd__spool_opts *o, gd_instance *inst, gd__counters *cnt,
                   void (*found)(void *ctx, const gd__spool_rec *r), void *ctx, gd__spool **out)
{
    gd__spool *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->o = *o;
    if (!s->o.segment_bytes)
        s->o.segment_bytes = SPOOL_SEGMENT_BYTES;
    s->inst = inst;
    s->cnt = cnt;
    s->dir = strdup(dir);
    s->dir_fd = -1;
    s->lock_fd = -1;
    s->next_id = 1;
    s->last_sync_ns = gd__mono_ns();
    if (!s->dir) {
        free(s);
        return GD_ENOMEM;
    }
    /* mkdir -p */
    for (char *p = s->dir + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(s->dir, 0700);
            *p = '/';
        }
    }
    if (mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
        int err = errno;
        gd_log(inst, GD_ERROR, "spool: cannot create %s: %s", s->dir, strerror(err));
        gd__spool_close(s);
        return GD_EIO;
    }
    char lock_path[4096];
    snprintf(lock_path, sizeof(lock_path), "%s/lock", s->dir);
    s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd >= 0 && flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        gd__spool_close(s);
        if (err == EWOULDBLOCK)
            return GD_EAGAIN;
        return GD_EIO;
    }
    s->dir_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = opendir(s->dir);
    if (!d || s->dir_fd < 0) {
        gd_log(inst, GD_ERROR, "spool: cannot open %s: %s", s->dir, strerror(errno));
        if (d)
            closedir(d);
        gd__spool_close(s);
        return GD_EIO;
    }
    uint64_t *ids = NULL;
    size_t nids = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t id;
        char ext[8];
        if (sscanf(e->d_name, "%20" SCNu64 ".%7s", &id, ext) != 2 || strcmp(ext, "seg") != 0 ||
            strlen(e->d_name) != 24)
            continue;
        if (nids == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *n = realloc(ids, cap * sizeof(*n));
            if (!n)
                break;
            ids = n;
        }
        ids[nids++] = id;
    }
    closedir(d);
    if (nids)
        qsort(ids, nids, sizeof(*ids), cmp_u64);
    for (size_t i = 0; i < nids; i++) {
        scan_segment(s, ids[i], found, ctx);
        if (ids[i] >= s->next_id)
            s->next_id = ids[i] + 1;
    }
    free(ids);
    *out = s;
    return 0;
}

/* ---- appending ----------------------------------------------------------- */

/* Evict the oldest segment; false when there is none but an empty current. */
static bool evict_oldest(gd__spool *s, void (*evicted)(void *ctx, uint64_t seg), void *ctx)
{
    if (s->nsegs == 0)
        return false;
    struct seg *g = &s->segs[0];
    if (!g->sealed && g->nrecs == 0)
        return false;
    uint64_t id = g->id;
    gd_log(s->inst, GD_ERROR,
           "spool: full (%" PRIu64 " bytes): dropping its oldest segment %" PRIu64
           " (%u records)",
           s->bytes, id, g->nrecs - g->acked);
    seg_remove(s, 0);
    if (evicted)
        evicted(ctx, id);
    return true;
}

int gd__spool_append(gd__spool *s, const gd_batch *b, gd__spool_rec *rec,
                     void (*evicted)(void *ctx, uint64_t seg), void *ctx)
{
    gd_buf_reset(&s->rec);
    uint8_t zero[REC_HEADER_BYTES] = {0};
    int rc = put(&s->rec, zero, sizeof(zero));
    rc = rc < 0 ? rc : gd__batch_serialize(b, &s->rec);
    if (rc < 0)
        return rc;
    uint32_t len = (uint32_t)(s->rec.len - REC_HEADER_BYTES), points = (uint32_t)gd_batch_len(b);
    uint8_t *h = (uint8_t *)s->rec.data;
    for (int i = 0; i < 4; i++)
        h[8 + i] = (uint8_t)(points >> (8 * i));
    uint32_t crc = gd__crc32c(gd__crc32c(0, h + 8, 4), h + REC_HEADER_BYTES, len);
    for (int i = 0; i < 4; i++) {
        h[i] = (uint8_t)(len >> (8 * i));
        h[4 + i] = (uint8_t)(crc >> (8 * i));
    }
    uint64_t need = s->rec.len;
    if (s->o.max_bytes && need + SPOOL_MAGIC_BYTES > s->o.max_bytes)
        return GD_ESPOOLFULL;

    for (;;) {
        struct seg *cur = s->nsegs ? &s->segs[s->nsegs - 1] : NULL;
        if (cur && !cur->sealed && cur->nrecs && cur->size + need > s->o.segment_bytes) {
            cur->sealed = true;
            if (cur->acked == cur->nrecs)
                seg_remove(s, s->nsegs - 1);
            cur = NULL;
        }
        if (cur && cur->sealed)
            cur = NULL;
        uint64_t extra = need + (cur ? 0 : SPOOL_MAGIC_BYTES);
        if (s->o.max_bytes && s->bytes + extra > s->o.max_bytes) {
            if (cur && s->nsegs == 1) {
                cur->sealed = true; /* the only segment: seal it so it can go */
                continue;
            }
            if (!evict_oldest(s, evicted, ctx))
                return GD_ESPOOLFULL;
            continue;
        }
        if (!cur) {
            rc = seg_create(s);
            if (rc == -ENOSPC && evict_oldest(s, evicted, ctx))
                continue;
            if (rc < 0) {
                gd_log_ratelimited(s->inst, GD_ERROR, "spool: cannot create a segment in %s: %s",
                                   s->dir, strerror(-rc));
                return rc == -ENOSPC ? GD_ESPOOLFULL : GD_EIO;
            }
            cur = &s->segs[s->nsegs - 1];
        }
        rc = write_all(cur->fd, s->rec.data, s->rec.len);
        if (rc < 0) {
            if (ftruncate(cur->fd, (off_t)cur->size) < 0 || lseek(cur->fd, 0, SEEK_END) < 0)
                cur->sealed = true; /* cannot repair in place: start a new segment */
            if (rc == -ENOSPC) {
                cur->sealed = true;
                if (evict_oldest(s, evicted, ctx))
                    continue;
                gd_log_ratelimited(s->inst, GD_ERROR, "spool: disk full in %s", s->dir);
                return GD_ESPOOLFULL;
            }
            gd_log_ratelimited(s->inst, GD_ERROR, "spool: write to %s failed: %s", s->dir,
                               strerror(-rc));
            return GD_EIO;
        }
        *rec = (gd__spool_rec){.seg = cur->id, .idx = cur->nrecs, .points = points,
                               .off = cur->size, .len = len};
        cur->nrecs++;
        cur->size += need;
        s->bytes += need;
        if (s->o.sync == GD__SYNC_BATCH) {
            fdatasync(cur->fd);
        } else {
            s->dirty = true;
            if (s->o.sync == GD__SYNC_INTERVAL &&
                gd__mono_ns() - s->last_sync_ns >= s->o.sync_interval_ns)
                gd__spool_sync(s);
        }
        return 0;
    }
}

int gd__spool_read(gd__spool *s, const gd__spool_rec *r, gd_batch **out)
{
    long i = seg_index(s, r->seg);
    if (i < 0)
        return GD_ENOENT;
    struct seg *g = &s->segs[i];
    gd_buf buf = {0};
    int rc = gd_buf_reserve(&buf, r->len);
    if (rc < 0)
        return rc;
    if (pread(g->fd, buf.data, r->len, (off_t)(r->off + REC_HEADER_BYTES)) != (ssize_t)r->len) {
        gd_buf_free(&buf);
        return GD_EIO;
    }
    rc = gd__batch_deserialize(buf.data, r->len, out);
    gd_buf_free(&buf);
    return rc;
}

void gd__spool_ack(gd__spool *s, const gd__spool_rec *r)
{
    long i = seg_index(s, r->seg);
    if (i < 0)
        return;
    struct seg *g = &s->segs[i];
    if (r->idx < g->acked)
        return;
    size_t bit = r->idx - g->acked;
    if (bit >= g->nbits * 8) {
        size_t nb = (bit / 8 + 1) * 2;
        uint8_t *n = realloc(g->bits, nb);
        if (!n)
            return; /* replayed after a restart: a duplicate, not a loss */
        memset(n + g->nbits, 0, nb - g->nbits);
        g->bits = n;
        g->nbits = nb;
    }
    g->bits[bit / 8] |= (uint8_t)(1u << (bit % 8));
    /* Advance the prefix over every acknowledged record. */
    size_t adv = 0;
    while (adv < g->nbits * 8 && (g->bits[adv / 8] >> (adv % 8) & 1))
        adv++;
    if (!adv)
        return;
    g->acked += (uint32_t)adv;
    size_t shift_bytes = adv / 8, shift_bits = adv % 8;
    for (size_t k = 0; k < g->nbits; k++) {
        uint8_t lo = k + shift_bytes < g->nbits ? g->bits[k + shift_bytes] : 0;
        uint8_t hi = k + shift_bytes + 1 < g->nbits ? g->bits[k + shift_bytes + 1] : 0;
        g->bits[k] = shift_bits ? (uint8_t)(lo >> shift_bits | hi << (8 - shift_bits)) : lo;
    }
    if (g->sealed && g->acked >= g->nrecs)
        seg_remove(s, (size_t)i);
    else
        seg_write_ack(s, g);
}

void gd__spool_sync(gd__spool *s)
{
    if (!s || !s->dirty)
        return;
    for (size_t i = 0; i < s->nsegs; i++) {
        if (!s->segs[i].sealed || i + 1 == s->nsegs)
            fdatasync(s->segs[i].fd);
        if (s->segs[i].ack_fd >= 0)
            fdatasync(s->segs[i].ack_fd);
    }
    s->dirty = false;
    s->last_sync_ns = gd__mono_ns();
}

uint64_t gd__spool_bytes(const gd__spool *s)
{
    return s ? s->bytes : 0;
}

void gd__spool_close(gd__spool *s)
{
    if (!s)
        return;
    if (s->o.sync != GD__SYNC_NONE)
        gd__spool_sync(s);
    for (size_t i = 0; i < s->nsegs; i++) {
        if (s->segs[i].fd >= 0)
            close(s->segs[i].fd);
        if (s->segs[i].ack_fd >= 0)
            close(s->segs[i].ack_fd);
        free(s->segs[i].bits);
    }
    if (s->dir_fd >= 0)
        close(s->dir_fd);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s->segs);
    free(s->dir);
    gd_buf_free(&s->rec);
    free(s);
}
