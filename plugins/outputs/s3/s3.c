/* SPDX-License-Identifier: Apache-2.0 */
/*
 * s3.c - archive points as objects in an S3 bucket (AWS or any S3-compatible
 * store), signed by libcurl (CURLOPT_AWS_SIGV4).
 *
 * Flow:
 *   write()  (writer thread)  every point goes to the open object of its
 *            partition (the key template rendered without time and seq),
 *            encoded (ndjson, line protocol, csv) and compressed (gzip, zstd,
 *            none) into a spool file, flushed to the file at the end of every
 *            write() so the file always holds every acknowledged point. The
 *            batch is then reported delivered: from here on the spool file
 *            carries it. An object whose file reaches object_bytes is sealed.
 *   uploader (own thread)     seals objects older than object_interval (so
 *            an idle output still uploads), uploads sealed objects in order
 *            (single PUT, or multipart above multipart_bytes), deletes each
 *            file once S3 answered 200 with an ETag, retries failures with
 *            backoff, and adopts files other instances of the same name left
 *            behind (a restart, a crash, a reload).
 *   flush()  seals every open object and waits (flush_timeout at most) until
 *            the uploader sent them all or tried each once without success.
 *
 * Spool files: SPOOL/NAME.open while written, NAME.ready once sealed; each
 * starts with a header "GDS3 1 COMPRESSION\nKEY\n" and then the object's
 * bytes. A process holds an flock() on every file it owns, so a second
 * instance (reload) or a rescan never takes a file in use. A .open file left
 * by a crash is repaired (decompressed as far as it goes, cut after its last
 * complete line, compressed again) before upload. A file is born as the
 * dot file .NAME.new (scans skip it) and renamed once locked and headed.
 *
 * Payload hashes (x-amz-content-sha256): the SHA-256 of every
 * multipart_bytes part is computed as the file is written and kept in an
 * xattr of the sealed file, so an upload never makes a hashing pass; an
 * adopted file without them is hashed at upload.
 *
 * Backpressure: while the spool holds more than spool_max_bytes, write()
 * reports GD_RETRY and the core's queue holds the points.
 */
#define ZLIB_CONST
#include "s3_sign.h"
#include <gatherd/gatherd.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define NS_PER_MS 1000000LL
#define NS_PER_S  1000000000LL
/* How often the spool directory is scanned for files left by others. */
#define SCAN_INTERVAL_NS (2 * NS_PER_S)
/* Longest tick of the uploader (object_interval checks). */
#define TICK_MAX_NS NS_PER_S
/* Upload retry backoff. */
#define BACKOFF_INITIAL_NS (500 * NS_PER_MS)
#define BACKOFF_MAX_NS     (30 * NS_PER_S)
/* Response bytes kept (error XML, multipart answers). */
#define RESPONSE_KEEP_BYTES 16384
/* Compressor output chunk. */
#define OUT_CHUNK_BYTES (256 * 1024)
/* Extended attribute of a sealed spool file: "PART_BYTES HASH1 HASH2 ...",
 * the part hashes, so an upload after a restart need not hash again. */
#define HASH_XATTR     "user.gatherd.s3.sha256"
#define HASH_XATTR_MAX 3900 /* ext4 keeps attributes in one block */
/* libcurl's upload buffer: fewer, larger sends of a body. */
#define UPLOAD_BUFFER_BYTES (1024 * 1024)
/* Age after which an unnamed spool file left by a crash is removed. */
#define STILLBORN_AGE_S 60
/* Spool file header magic. */
#define SPOOL_MAGIC "GDS3 1 "
#define DIR_MODE    0755
#define FILE_MODE   0640

enum fmt { FMT_NDJSON = 0, FMT_LINE = 1, FMT_CSV = 2 };
enum comp { COMP_GZIP = 0, COMP_ZSTD = 1, COMP_NONE = 2 };

static const char *const format_choices[] = {"ndjson", "line", "csv", NULL};
static const char *const comp_choices[] = {"gzip", "zstd", "none", NULL};
static const char *const format_ext[] = {".ndjson", ".lp", ".csv"};
static const char *const comp_ext[] = {".gz", ".zst", ""};
static const char *const format_type[] = {"application/x-ndjson", "text/plain; charset=utf-8",
                                          "text/csv"};
static const char *const comp_type[] = {"application/gzip", "application/zstd", NULL};

struct s3_cfg {
    char *bucket;
    char *region;
    char *endpoint;
    bool path_style;
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
    char *key;
    int format;      /* enum fmt */
    int compression; /* enum comp */
    int64_t compression_level;
    int64_t object_bytes;
    double object_interval;
    int64_t multipart_bytes;
    char *spool_dir;
    int64_t spool_max_bytes;
    double timeout;
    double flush_timeout;
    char *missing_tag;
    char *storage_class;
    char *tls_ca_file;
    bool tls_verify;
};

#define OFF(f) offsetof(struct s3_cfg, f)
static const struct gd_option s3_options[] = {
    GD_OPT_STRING("bucket", NULL, GD_OF_REQUIRED, OFF(bucket), "bucket to write to"),
    GD_OPT_STRING("region", "us-east-1", 0, OFF(region), "region the requests are signed for"),
    GD_OPT_STRING("endpoint", NULL, 0, OFF(endpoint),
                  "S3-compatible endpoint \"http(s)://host[:port]\" (default: "
                  "https://s3.REGION.amazonaws.com)"),
    GD_OPT_BOOL("path_style", "false", 0, OFF(path_style),
                "address the bucket as endpoint/bucket/key instead of bucket.endpoint/key"),
    GD_OPT_STRING("access_key_id", NULL, GD_OF_SENSITIVE, OFF(access_key_id),
                  "access key id (default: $AWS_ACCESS_KEY_ID)"),
    GD_OPT_STRING("secret_access_key", NULL, GD_OF_SENSITIVE, OFF(secret_access_key),
                  "secret access key (default: $AWS_SECRET_ACCESS_KEY)"),
    GD_OPT_STRING("session_token", NULL, GD_OF_SENSITIVE, OFF(session_token),
                  "session token of temporary credentials (default: $AWS_SESSION_TOKEN)"),
    GD_OPT_STRING("key", "{measurement}/%Y/%m/%d/%H/{seq}{ext}", 0, OFF(key),
                  "object key template: strftime fields (UTC, the object's first point), "
                  "{measurement}, {TAG}, {seq} (required), {ext}, {instance}"),
    GD_OPT_ENUM("format", "ndjson", format_choices, 0, OFF(format),
                "object content: JSON lines, line protocol or CSV"),
    GD_OPT_ENUM("compression", "gzip", comp_choices, 0, OFF(compression), "object compression"),
    GD_OPT_INT("compression_level", "0", 0, 22, 0, OFF(compression_level),
               "gzip 1..9, zstd 1..22; 0: the library's default"),
    GD_OPT_INT("object_bytes", "8388608", 1024, 5e12, 0, OFF(object_bytes),
               "upload an object once its (compressed) size reaches this"),
    GD_OPT_DURATION("object_interval", "5m", 0.1, 86400, 0, OFF(object_interval),
                    "upload an object at the latest this long after it was started"),
    GD_OPT_INT("multipart_bytes", "16777216", 1024, 5368709120.0, 0, OFF(multipart_bytes),
               "objects larger than this go up as a multipart upload in parts of this size "
               "(AWS: at least 5 MiB)"),
    GD_OPT_STRING("spool_dir", NULL, 0, OFF(spool_dir),
                  "objects are built here, in a subdirectory named after the instance "
                  "(default: global.spool_dir/<instance>/objects)"),
    GD_OPT_INT("spool_max_bytes", "1073741824", 1024, 1e15, 0, OFF(spool_max_bytes),
               "above this many spooled bytes write() reports a retry (backpressure)"),
    GD_OPT_DURATION("timeout", "60s", 0.1, 3600, 0, OFF(timeout), "whole-request timeout"),
    GD_OPT_DURATION("flush_timeout", "10s", 0, 3600, 0, OFF(flush_timeout),
                    "longest wait for uploads at shutdown or reload; the rest stays spooled"),
    GD_OPT_STRING("missing_tag", "_", 0, OFF(missing_tag),
                  "what {TAG} renders as when a point lacks the tag"),
    GD_OPT_STRING("storage_class", NULL, 0, OFF(storage_class),
                  "x-amz-storage-class of new objects, e.g. \"STANDARD_IA\""),
    GD_OPT_STRING("tls_ca_file", NULL, 0, OFF(tls_ca_file),
                  "PEM CA bundle to verify the endpoint (default: the system's)"),
    GD_OPT_BOOL("tls_verify", "true", 0, OFF(tls_verify),
                "verify the endpoint's certificate and host name"),
    GD_OPT_END,
};
#undef OFF

/* ---- key template ------------------------------------------------------- */

enum seg_kind { SEG_TEXT, SEG_MEASUREMENT, SEG_TAG, SEG_SEQ, SEG_EXT, SEG_INSTANCE };

struct seg {
    int kind;   /* enum seg_kind */
    char *text; /* SEG_TEXT: strftime format; SEG_TAG: the tag key */
};

/* ---- objects ------------------------------------------------------------ */

struct enc {
    int comp; /* enum comp */
    bool z_ready;
    z_stream z;
    ZSTD_CCtx *zc;
};

struct obj {
    struct obj *hnext; /* open objects: hash chain */
    struct obj *next;  /* sealed objects: upload list */
    char *pkey;        /* partition key (open objects) */
    size_t pkey_len;
    uint64_t hash;
    char *key;  /* S3 key */
    char *path; /* spool file */
    int fd;     /* flock()ed while we own it */
    int comp;   /* enum comp of the file */
    uint64_t hdr_len;
    uint64_t bytes;    /* object bytes in the file (after the header) */
    uint64_t points;   /* 0 for adopted files (unknown) */
    int64_t opened_ns; /* monotonic */
    gd_buf text;       /* this write's encoded points, not yet compressed */
    bool touched;
    struct enc enc;
    /* SHA-256 of each multipart_bytes part, computed while the file is
     * written, so uploads need not hash (adopted files: hashed at upload). */
    bool hashed;
    struct s3_sha256 ph; /* the part being written */
    uint64_t part_fill;
    uint64_t part_bytes;
    char (*parts)[S3_SHA256_HEX + 1];
    size_t nparts, parts_cap;
};

struct s3 {
    gd_instance *inst;
    const struct s3_cfg *cfg;
    struct s3_target target;
    char *access_key, *secret_key, *token; /* resolved credentials */
    char *dir;                             /* the instance's spool directory */
    struct seg *segs;
    size_t nsegs;
    bool csv_shape; /* csv: partitions also split by tag and field keys */
    char seq_prefix[48];
    atomic_uint_fast64_t seq;
    const char *content_type;
    char *content_type_buf;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t wake;  /* the uploader: work to do */
    pthread_cond_t idle;  /* flush(): the upload list changed */
    bool lock_ready;
    struct obj **table; /* open objects by partition key */
    size_t table_size;
    size_t nopen;
    struct obj *head, *tail; /* sealed, in upload order */
    size_t nready;
    uint64_t spooled_bytes; /* open and sealed object bytes */
    bool draining;          /* flush() waits: no backoff */
    bool drain_gave_up;     /* every object failed once during the drain */
    size_t drain_failures;
    bool stop;
    bool thread_started;
    pthread_t thread;

    /* writer thread only */
    gd_buf scratch;
    gd_index_set rejects;
    struct obj **touched;
    size_t ntouched, touched_cap;
    unsigned char *out; /* compressor output */

    /* uploader thread only */
    CURL *curl;
    struct s3_request req;
    char errbuf[CURL_ERROR_SIZE];
    long status;
    char resp[RESPONSE_KEEP_BYTES + 1];
    size_t resp_len;
    char etag[256];
    unsigned char *ubuf; /* the object, read when mapping it fails */
    size_t ucap;
    unsigned failures; /* consecutive, for the backoff */
    int64_t retry_at;
    uint64_t uploaded_objects, uploaded_bytes;
    atomic_bool aborting;
};

/* libcurl's global state: curl_global_init() and curl_global_cleanup() are
 * counted and thread-safe since libcurl 7.84 (Debian 12 has 7.88), so each
 * instance calls them once. */

/* ---- helpers ------------------------------------------------------------ */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void abs_deadline(struct timespec *ts, int64_t mono_due)
{
    /* The condition variables use CLOCK_MONOTONIC. */
    ts->tv_sec = (time_t)(mono_due / NS_PER_S);
    ts->tv_nsec = (long)(mono_due % NS_PER_S);
}

static bool is_set(const char *s)
{
    return s && s[0];
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_at(int fd, void *data, size_t len, uint64_t off)
{
    char *p = data;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : GD_EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* A rendered value: '/' and control characters become '_' so a value never
 * adds a level to the key or breaks the spool header. */
static int put_clean(gd_buf *out, const char *s, size_t n)
{
    size_t start = out->len;
    int rc = gd_buf_append(out, s, n);
    if (rc < 0)
        return rc;
    for (size_t i = start; i < out->len; i++)
        if (out->data[i] == '/' || (unsigned char)out->data[i] < 0x20 || out->data[i] == 0x7f)
            out->data[i] = '_';
    return 0;
}

/* ---- template ----------------------------------------------------------- */

static void free_segs(struct s3 *s)
{
    for (size_t i = 0; i < s->nsegs; i++)
        free(s->segs[i].text);
    free(s->segs);
    s->segs = NULL;
    s->nsegs = 0;
}

static int add_seg(struct s3 *s, int kind, const char *text, size_t len)
{
    struct seg *v = realloc(s->segs, (s->nsegs + 1) * sizeof(*v));
    if (!v)
        return GD_ENOMEM;
    s->segs = v;
    char *t = text ? strndup(text, len) : NULL;
    if (text && !t)
        return GD_ENOMEM;
    v[s->nsegs++] = (struct seg){.kind = kind, .text = t};
    return 0;
}

static int parse_template(struct s3 *s, const char *tpl)
{
    bool has_seq = false;
    const char *p = tpl;
    while (*p) {
        const char *open = strchr(p, '{');
        if (!open)
            return add_seg(s, SEG_TEXT, p, strlen(p)) < 0 ? GD_ENOMEM : has_seq ? 0 : GD_EINVAL;
        if (open > p && add_seg(s, SEG_TEXT, p, (size_t)(open - p)) < 0)
            return GD_ENOMEM;
        const char *close = strchr(open, '}');
        if (!close || close == open + 1) {
            gd_log(s->inst, GD_ERROR, "s3: key \"%s\": unterminated or empty {} placeholder", tpl);
            return GD_ECONFIG;
        }
        const char *name = open + 1;
        size_t n = (size_t)(close - name);
        int kind = SEG_TAG;
        if (n == 11 && memcmp(name, "measurement", n) == 0)
            kind = SEG_MEASUREMENT;
        else if (n == 3 && memcmp(name, "seq", n) == 0)
            kind = SEG_SEQ;
        else if (n == 3 && memcmp(name, "ext", n) == 0)
            kind = SEG_EXT;
        else if (n == 8 && memcmp(name, "instance", n) == 0)
            kind = SEG_INSTANCE;
        has_seq |= kind == SEG_SEQ;
        if (add_seg(s, kind, kind == SEG_TAG ? name : NULL, n) < 0)
            return GD_ENOMEM;
        p = close + 1;
    }
    return has_seq ? 0 : GD_EINVAL;
}

/* The partition key of @p into s->scratch: the measurement and tag values
 * the template uses (and for csv the tag and field keys). */
static int partition_key(struct s3 *s, const gd_point *p)
{
    gd_buf *b = &s->scratch;
    gd_buf_reset(b);
    int rc = gd_buf_reserve(b, 1); /* an empty key still has data */
    for (size_t i = 0; i < s->nsegs && rc == 0; i++) {
        const struct seg *g = &s->segs[i];
        if (g->kind == SEG_MEASUREMENT) {
            size_t n;
            const char *m = gd_point_measurement(p, &n);
            rc = gd_buf_append(b, m, n);
        } else if (g->kind == SEG_TAG) {
            const char *v = gd_point_tag_get(p, g->text);
            rc = v ? gd_buf_puts(b, v) : gd_buf_append(b, "\0", 1);
        } else {
            continue;
        }
        if (rc == 0)
            rc = gd_buf_append(b, "\x1f", 1);
    }
    if (s->csv_shape && rc == 0) {
        size_t nt, nf;
        const gd_tag *t = gd_point_tags(p, &nt);
        const gd_field *f = gd_point_fields(p, &nf);
        for (size_t i = 0; i < nt && rc == 0; i++) {
            rc = gd_buf_append(b, t[i].key, t[i].key_len);
            if (rc == 0)
                rc = gd_buf_append(b, "\x1e", 1);
        }
        if (rc == 0)
            rc = gd_buf_append(b, "\x1d", 1);
        for (size_t i = 0; i < nf && rc == 0; i++) {
            rc = gd_buf_append(b, f[i].key, f[i].key_len);
            if (rc == 0)
                rc = gd_buf_append(b, "\x1e", 1);
        }
    }
    return rc;
}

/* The object key of a new object whose first point is @p. */
static int render_key(struct s3 *s, const gd_point *p, const char *seq, gd_buf *out)
{
    int64_t ns = gd_point_time(p);
    time_t sec = (time_t)(ns / NS_PER_S - (ns % NS_PER_S < 0));
    struct tm tm;
    if (!gmtime_r(&sec, &tm))
        memset(&tm, 0, sizeof(tm));
    int rc = 0;
    for (size_t i = 0; i < s->nsegs && rc == 0; i++) {
        const struct seg *g = &s->segs[i];
        switch (g->kind) {
        case SEG_TEXT: {
            size_t room = strlen(g->text) * 8 + 64;
            rc = gd_buf_reserve(out, room);
            if (rc == 0) {
                size_t n = strftime(out->data + out->len, room, g->text, &tm);
                out->len += n;
                out->data[out->len] = '\0';
            }
            break;
        }
        case SEG_MEASUREMENT: {
            size_t n;
            const char *m = gd_point_measurement(p, &n);
            rc = put_clean(out, m, n);
            break;
        }
        case SEG_TAG: {
            const char *v = gd_point_tag_get(p, g->text);
            rc = put_clean(out, v ? v : s->cfg->missing_tag, strlen(v ? v : s->cfg->missing_tag));
            break;
        }
        case SEG_SEQ:
            rc = gd_buf_puts(out, seq);
            break;
        case SEG_EXT:
            rc = gd_buf_printf(out, "%s%s", format_ext[s->cfg->format],
                               comp_ext[s->cfg->compression]);
            break;
        case SEG_INSTANCE: {
            const char *n = gd_instance_name(s->inst);
            rc = put_clean(out, n, strlen(n));
            break;
        }
        }
    }
    if (rc == 0 && (out->len == 0 || out->data[0] == '/'))
        rc = GD_EINVAL;
    return rc;
}

/* ---- csv ---------------------------------------------------------------- */

static int csv_value(gd_buf *out, const char *v, size_t n)
{
    bool quote = false;
    for (size_t i = 0; i < n && !quote; i++)
        quote = v[i] == ',' || v[i] == '"' || v[i] == '\n' || v[i] == '\r';
    if (!quote)
        return gd_buf_append(out, v, n);
    int rc = gd_buf_append(out, "\"", 1);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = gd_buf_append(out, v[i] == '"' ? "\"\"" : &v[i], v[i] == '"' ? 2 : 1);
    return rc == 0 ? gd_buf_append(out, "\"", 1) : rc;
}

/* The header row: time,measurement,TAG KEYS...,FIELD KEYS... */
static int csv_header(gd_buf *out, const gd_point *p)
{
    size_t nt, nf;
    const gd_tag *t = gd_point_tags(p, &nt);
    const gd_field *f = gd_point_fields(p, &nf);
    int rc = gd_buf_puts(out, "time,measurement");
    for (size_t i = 0; i < nt && rc == 0; i++) {
        rc = gd_buf_append(out, ",", 1);
        if (rc == 0)
            rc = csv_value(out, t[i].key, t[i].key_len);
    }
    for (size_t i = 0; i < nf && rc == 0; i++) {
        rc = gd_buf_append(out, ",", 1);
        if (rc == 0)
            rc = csv_value(out, f[i].key, f[i].key_len);
    }
    return rc == 0 ? gd_buf_append(out, "\n", 1) : rc;
}

static int csv_row(gd_buf *out, const gd_point *p)
{
    size_t nt, nf, mlen;
    const gd_tag *t = gd_point_tags(p, &nt);
    const gd_field *f = gd_point_fields(p, &nf);
    const char *m = gd_point_measurement(p, &mlen);
    if (nf == 0)
        return GD_EINVAL;
    int rc = gd_buf_printf(out, "%" PRId64 ",", gd_point_time(p));
    if (rc == 0)
        rc = csv_value(out, m, mlen);
    for (size_t i = 0; i < nt && rc == 0; i++) {
        rc = gd_buf_append(out, ",", 1);
        if (rc == 0)
            rc = csv_value(out, t[i].value, t[i].value_len);
    }
    for (size_t i = 0; i < nf && rc == 0; i++) {
        char num[40];
        rc = gd_buf_append(out, ",", 1);
        if (rc < 0)
            break;
        switch (f[i].type) {
        case GD_F64:
            rc = gd_buf_append(out, num, gd_fmt_double(num, f[i].v.f64));
            break;
        case GD_I64:
            rc = gd_buf_printf(out, "%" PRId64, f[i].v.i64);
            break;
        case GD_U64:
            rc = gd_buf_printf(out, "%" PRIu64, f[i].v.u64);
            break;
        case GD_BOOL:
            rc = gd_buf_puts(out, f[i].v.b ? "true" : "false");
            break;
        case GD_STR:
            rc = csv_value(out, f[i].v.str.ptr, f[i].v.str.len);
            break;
        default:
            rc = GD_EINVAL;
            break;
        }
    }
    return rc == 0 ? gd_buf_append(out, "\n", 1) : rc;
}

/* Encode @p into @out; on error @out is as it was. */
static int encode_point(struct s3 *s, gd_buf *out, const gd_point *p)
{
    size_t len = out->len;
    int rc;
    switch (s->cfg->format) {
    case FMT_LINE:
        rc = gd_lp_encode_point(out, p, GD_PREC_NS, NULL);
        break;
    case FMT_CSV:
        rc = csv_row(out, p);
        break;
    default:
        rc = gd_json_encode_point(out, p);
        break;
    }
    if (rc < 0 && out->data) {
        out->len = len;
        out->data[len] = '\0';
    }
    return rc;
}

/* ---- compression into a spool file -------------------------------------- */

static int enc_init(struct enc *e, int comp, int level)
{
    e->comp = comp;
    if (comp == COMP_GZIP) {
        if (deflateInit2(&e->z, level ? level : Z_DEFAULT_COMPRESSION, Z_DEFLATED, MAX_WBITS + 16,
                         8, Z_DEFAULT_STRATEGY) != Z_OK)
            return GD_ENOMEM;
        e->z_ready = true;
    } else if (comp == COMP_ZSTD) {
        e->zc = ZSTD_createCCtx();
        if (!e->zc)
            return GD_ENOMEM;
        if (level && ZSTD_isError(ZSTD_CCtx_setParameter(e->zc, ZSTD_c_compressionLevel, level)))
            return GD_EINVAL;
    }
    return 0;
}

static void enc_fini(struct enc *e)
{
    if (e->z_ready)
        deflateEnd(&e->z);
    e->z_ready = false;
    ZSTD_freeCCtx(e->zc);
    e->zc = NULL;
}

/* Room for one more part hash. */
static int part_slot(struct obj *o)
{
    if (o->nparts < o->parts_cap)
        return 0;
    size_t cap = o->parts_cap ? o->parts_cap * 2 : 4;
    char(*v)[S3_SHA256_HEX + 1] = realloc(o->parts, cap * sizeof(*v));
    if (!v)
        return GD_ENOMEM;
    o->parts = v;
    o->parts_cap = cap;
    return 0;
}

static int part_done(struct obj *o)
{
    if (part_slot(o) < 0)
        return GD_ENOMEM;
    static const char hex[] = "0123456789abcdef";
    uint8_t d[S3_SHA256_BYTES];
    s3_sha256_final(&o->ph, d);
    char *h = o->parts[o->nparts++];
    for (int i = 0; i < S3_SHA256_BYTES; i++) {
        h[2 * i] = hex[d[i] >> 4];
        h[2 * i + 1] = hex[d[i] & 15];
    }
    h[S3_SHA256_HEX] = '\0';
    s3_sha256_init(&o->ph);
    o->part_fill = 0;
    return 0;
}

/* Append @n bytes of object data to @o's file, hashing them by part. */
static int obj_out(struct obj *o, const void *data, size_t n)
{
    int rc = write_all(o->fd, data, n);
    if (rc < 0)
        return rc;
    o->bytes += n;
    for (const char *p = data; n && o->hashed && rc == 0;) {
        size_t k = o->part_bytes - o->part_fill < n ? (size_t)(o->part_bytes - o->part_fill) : n;
        s3_sha256_update(&o->ph, p, k);
        o->part_fill += k;
        p += k;
        n -= k;
        if (o->part_fill == o->part_bytes)
            rc = part_done(o);
    }
    return rc;
}

/* Compress @len bytes into @o's file (flush: everything so far becomes
 * decodable; finish: the stream ends). @out is OUT_CHUNK_BYTES of scratch. */
static int enc_write(struct obj *o, unsigned char *out, const char *data, size_t len, bool finish)
{
    struct enc *e = &o->enc;
    int rc = 0;
    if (e->comp == COMP_NONE)
        return obj_out(o, data, len);
    if (e->comp == COMP_GZIP) {
        size_t left = len;
        e->z.next_in = (const Bytef *)data;
        e->z.avail_in = 0;
        for (;;) {
            if (e->z.avail_in == 0 && left) {
                uInt chunk = left > UINT_MAX ? UINT_MAX : (uInt)left;
                e->z.avail_in = chunk;
                left -= chunk;
            }
            e->z.next_out = out;
            e->z.avail_out = OUT_CHUNK_BYTES;
            int zr = deflate(&e->z, left ? Z_NO_FLUSH : finish ? Z_FINISH : Z_SYNC_FLUSH);
            if (zr == Z_STREAM_ERROR)
                return GD_EIO;
            size_t n = OUT_CHUNK_BYTES - e->z.avail_out;
            if (n && (rc = obj_out(o, out, n)) < 0)
                return rc;
            if (!left && e->z.avail_in == 0 && e->z.avail_out != 0 &&
                (!finish || zr == Z_STREAM_END))
                return 0;
        }
    }
    ZSTD_inBuffer in = {data, len, 0};
    ZSTD_EndDirective mode = finish ? ZSTD_e_end : ZSTD_e_flush;
    for (;;) {
        ZSTD_outBuffer ob = {out, OUT_CHUNK_BYTES, 0};
        size_t left = ZSTD_compressStream2(e->zc, &ob, &in, mode);
        if (ZSTD_isError(left))
            return GD_EIO;
        if (ob.pos && (rc = obj_out(o, out, ob.pos)) < 0)
            return rc;
        if (left == 0 && in.pos == in.size)
            return 0;
    }
}

/* ---- object files ------------------------------------------------------- */

static void obj_free(struct obj *o)
{
    if (!o)
        return;
    if (o->fd >= 0)
        close(o->fd); /* releases the flock */
    enc_fini(&o->enc);
    gd_buf_free(&o->text);
    free(o->parts);
    free(o->pkey);
    free(o->key);
    free(o->path);
    free(o);
}

/* A new, locked spool file "DIR/SEQ.open" with the header for @key. */
static int obj_create(struct s3 *s, const char *key, int comp, unsigned long long n,
                      struct obj **out)
{
    struct obj *o = calloc(1, sizeof(*o));
    if (!o)
        return GD_ENOMEM;
    o->fd = -1;
    o->comp = comp;
    o->opened_ns = mono_ns();
    /* Made as a dot file (scans skip those), locked, given its header, and
     * only then named .open: a scan never sees a file without a header. */
    gd_buf path = {0}, tmp = {0}, hdr = {0};
    int rc = gd_buf_printf(&path, "%s/%s-%06llu.open", s->dir, s->seq_prefix, n);
    if (rc == 0)
        rc = gd_buf_printf(&tmp, "%s/.%s-%06llu.new", s->dir, s->seq_prefix, n);
    if (rc == 0)
        rc = gd_buf_printf(&hdr, SPOOL_MAGIC "%s\n%s\n", comp_choices[comp], key);
    o->path = path.data;
    o->key = key ? strdup(key) : NULL;
    if (rc == 0 && !o->key)
        rc = GD_ENOMEM;
    if (rc == 0)
        rc = enc_init(&o->enc, comp, (int)s->cfg->compression_level);
    if (rc < 0)
        goto out_free;
    o->fd = open(tmp.data, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, FILE_MODE);
    if (o->fd < 0 || flock(o->fd, LOCK_EX | LOCK_NB) < 0) {
        rc = -errno;
        gd_log_ratelimited(s->inst, GD_ERROR, "s3: cannot create spool file %s: %s", tmp.data,
                           strerror(errno));
        goto out_unlink;
    }
    rc = write_all(o->fd, hdr.data, hdr.len);
    if (rc == 0 && rename(tmp.data, o->path) < 0)
        rc = -errno;
    if (rc < 0) {
        gd_log_ratelimited(s->inst, GD_ERROR, "s3: cannot write spool file %s: %s", tmp.data,
                           strerror(-rc));
        goto out_unlink;
    }
    o->hdr_len = hdr.len;
    o->hashed = true;
    o->part_bytes = (uint64_t)s->cfg->multipart_bytes;
    s3_sha256_init(&o->ph);
    gd_buf_free(&hdr);
    gd_buf_free(&tmp);
    *out = o;
    return 0;

out_unlink:
    if (o->fd >= 0)
        unlink(tmp.data);
out_free:
    gd_buf_free(&hdr);
    gd_buf_free(&tmp);
    obj_free(o);
    return rc;
}

/* Compress and append the object's pending text. */
static int obj_flush_text(struct s3 *s, struct obj *o, bool finish)
{
    uint64_t before = o->bytes;
    int rc = enc_write(o, s->out, o->text.data ? o->text.data : "", o->text.len, finish);
    if (rc == 0 && finish && o->hashed && (o->part_fill || o->nparts == 0))
        rc = part_done(o);
    gd_buf_reset(&o->text);
    s->spooled_bytes += o->bytes - before;
    if (rc < 0)
        gd_log_ratelimited(s->inst, GD_ERROR, "s3: cannot write spool file %s: %s", o->path,
                           gd_strerror(rc));
    return rc;
}

/* Keep the part hashes with the file (best effort: without them an upload
 * after a restart hashes the file). */
static void save_hashes(const struct obj *o)
{
    if (!o->hashed)
        return;
    gd_buf v = {0};
    int rc = gd_buf_printf(&v, "%" PRIu64, o->part_bytes);
    for (size_t i = 0; i < o->nparts && rc == 0; i++)
        rc = gd_buf_printf(&v, " %s", o->parts[i]);
    if (rc == 0 && v.len <= HASH_XATTR_MAX)
        (void)fsetxattr(o->fd, HASH_XATTR, v.data, v.len, 0);
    gd_buf_free(&v);
}

/* The part hashes saved by save_hashes(), if any. */
static void load_hashes(struct obj *o)
{
    char v[HASH_XATTR_MAX + 1];
    ssize_t n = fgetxattr(o->fd, HASH_XATTR, v, sizeof(v) - 1);
    if (n <= 0)
        return;
    v[n] = '\0';
    char *p = v, *end;
    unsigned long long part = strtoull(p, &end, 10);
    if (end == p || part == 0)
        return;
    o->part_bytes = part;
    for (p = end; *p == ' ';) {
        p++;
        size_t len = strspn(p, "0123456789abcdef");
        if (len != S3_SHA256_HEX || part_slot(o) < 0) {
            o->nparts = 0;
            return;
        }
        memcpy(o->parts[o->nparts], p, S3_SHA256_HEX);
        o->parts[o->nparts++][S3_SHA256_HEX] = '\0';
        p += len;
    }
    o->hashed = *p == '\0' && o->nparts > 0;
}

/* Seal @o (already out of the open table): end the stream, make it durable,
 * rename it .ready and queue it for upload. Lock held. */
static void obj_seal(struct s3 *s, struct obj *o)
{
    int rc = obj_flush_text(s, o, true);
    enc_fini(&o->enc);
    if (rc == 0)
        save_hashes(o);
    if (rc == 0 && fdatasync(o->fd) < 0)
        rc = -errno;
    if (rc < 0) {
        /* Leave the file .open and unlocked: the next scan repairs it. */
        s->spooled_bytes -= o->hdr_len + o->bytes;
        obj_free(o);
        return;
    }
    if (o->points == 0 && o->bytes) {
        /* Nothing but a csv header: no object. */
        unlink(o->path);
        s->spooled_bytes -= o->hdr_len + o->bytes;
        obj_free(o);
        return;
    }
    size_t n = strlen(o->path);
    char *ready = malloc(n + 2);
    if (ready) {
        memcpy(ready, o->path, n - 5);
        memcpy(ready + n - 5, ".ready", 7);
        if (rename(o->path, ready) == 0) {
            free(o->path);
            o->path = ready;
        } else {
            free(ready);
        }
    }
    o->next = NULL;
    if (s->tail)
        s->tail->next = o;
    else
        s->head = o;
    s->tail = o;
    s->nready++;
    pthread_cond_signal(&s->wake);
}

/* ---- the open-object table ---------------------------------------------- */

static struct obj *table_find(struct s3 *s, const char *k, size_t n, uint64_t h)
{
    for (struct obj *o = s->table[h % s->table_size]; o; o = o->hnext)
        if (o->hash == h && o->pkey_len == n && memcmp(o->pkey, k, n) == 0)
            return o;
    return NULL;
}

static void table_remove(struct s3 *s, struct obj *o)
{
    struct obj **pp = &s->table[o->hash % s->table_size];
    while (*pp && *pp != o)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = o->hnext;
    o->hnext = NULL;
    s->nopen--;
}

static int table_grow(struct s3 *s)
{
    size_t size = s->table_size * 2;
    struct obj **t = calloc(size, sizeof(*t));
    if (!t)
        return GD_ENOMEM;
    for (size_t i = 0; i < s->table_size; i++)
        for (struct obj *o = s->table[i], *next; o; o = next) {
            next = o->hnext;
            o->hnext = t[o->hash % size];
            t[o->hash % size] = o;
        }
    free(s->table);
    s->table = t;
    s->table_size = size;
    return 0;
}

/* Seal every open object (@all) or those older than object_interval. */
static void seal_open(struct s3 *s, bool all)
{
    int64_t limit = mono_ns() - (int64_t)(s->cfg->object_interval * NS_PER_S);
    for (size_t i = 0; i < s->table_size; i++)
        for (struct obj *o = s->table[i], *next; o; o = next) {
            next = o->hnext;
            if (all || o->opened_ns <= limit) {
                table_remove(s, o);
                obj_seal(s, o);
            }
        }
}

/* The open object of @p's partition (s->scratch holds its key), created
 * when there is none. */
static int partition_obj(struct s3 *s, const gd_point *p, struct obj **out)
{
    uint64_t h = hash_bytes(s->scratch.data, s->scratch.len);
    struct obj *o = table_find(s, s->scratch.data, s->scratch.len, h);
    if (o) {
        *out = o;
        return 0;
    }
    if (s->nopen >= s->table_size && table_grow(s) < 0)
        return GD_ENOMEM;
    unsigned long long n = (unsigned long long)atomic_fetch_add(&s->seq, 1) + 1;
    char seq[96];
    snprintf(seq, sizeof(seq), "%s-%06llu", s->seq_prefix, n);
    gd_buf key = {0};
    int rc = render_key(s, p, seq, &key);
    if (rc == GD_EINVAL)
        gd_log_ratelimited(s->inst, GD_ERROR,
                           "s3: key template renders an empty key or one "
                           "starting with '/'");
    if (rc == 0)
        rc = obj_create(s, key.data, s->cfg->compression, n, &o);
    gd_buf_free(&key);
    if (rc < 0)
        return rc;
    o->pkey = malloc(s->scratch.len + 1);
    if (!o->pkey) {
        unlink(o->path);
        obj_free(o);
        return GD_ENOMEM;
    }
    memcpy(o->pkey, s->scratch.data, s->scratch.len + 1);
    o->pkey_len = s->scratch.len;
    o->hash = h;
    o->hnext = s->table[h % s->table_size];
    s->table[h % s->table_size] = o;
    s->nopen++;
    s->spooled_bytes += o->hdr_len;
    o->bytes = 0;
    if (s->cfg->format == FMT_CSV && (rc = csv_header(&o->text, p)) < 0)
        return rc;
    gd_log(s->inst, GD_DEBUG, "s3: new object %s (%s)", o->key, o->path);
    *out = o;
    return 0;
}

/* A write to @o's file failed: drop it from the table and leave its file
 * (.open, unlocked) for the next scan to repair and upload. */
static void abandon(struct s3 *s, struct obj *o)
{
    table_remove(s, o);
    s->spooled_bytes -= o->bytes + o->hdr_len;
    if (ftruncate(o->fd, (off_t)(o->hdr_len + o->bytes)) < 0)
        gd_log_ratelimited(s->inst, GD_WARN, "s3: cannot truncate %s: %s", o->path,
                           strerror(errno));
    obj_free(o);
}

/* ---- write / flush ------------------------------------------------------ */

static int touch(struct s3 *s, struct obj *o)
{
    if (o->touched)
        return 0;
    if (s->ntouched == s->touched_cap) {
        size_t cap = s->touched_cap ? s->touched_cap * 2 : 16;
        struct obj **v = realloc(s->touched, cap * sizeof(*v));
        if (!v)
            return GD_ENOMEM;
        s->touched = v;
        s->touched_cap = cap;
    }
    s->touched[s->ntouched++] = o;
    o->touched = true;
    return 0;
}

static int s3_write(void *state, gd_batch *b, gd_done_fn done, void *token)
{
    struct s3 *s = state;
    size_t n = gd_batch_len(b);
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    if (s->spooled_bytes > (uint64_t)s->cfg->spool_max_bytes) {
        uint64_t spooled = s->spooled_bytes;
        size_t waiting = s->nready;
        pthread_mutex_unlock(&s->lock);
        gd_log_ratelimited(s->inst, GD_WARN,
                           "s3: spool full (%" PRIu64 " bytes, %zu objects waiting for upload to "
                           "%s); holding points back",
                           spooled, waiting, s->target.bucket);
        done(token, GD_RETRY, NULL);
        return 0;
    }
    s->rejects.n = 0;
    s->ntouched = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const gd_point *p = gd_batch_point(b, i);
        struct obj *o = NULL;
        rc = partition_key(s, p);
        if (rc == 0)
            rc = partition_obj(s, p, &o);
        if (rc == 0)
            rc = touch(s, o);
        if (rc < 0)
            break;
        if (encode_point(s, &o->text, p) < 0) {
            rc = gd_index_set_add(&s->rejects, (uint32_t)i);
            continue;
        }
        o->points++;
    }
    /* Compress this write's points into their files. */
    for (size_t i = 0; i < s->ntouched; i++) {
        struct obj *o = s->touched[i];
        o->touched = false;
        if (rc < 0) {
            gd_buf_reset(&o->text);
            continue;
        }
        if (obj_flush_text(s, o, false) < 0) {
            abandon(s, o);
            rc = GD_EIO;
        } else if (o->bytes >= (uint64_t)s->cfg->object_bytes) {
            table_remove(s, o);
            obj_seal(s, o);
        }
    }
    seal_open(s, false);
    pthread_mutex_unlock(&s->lock);

    if (rc < 0) {
        /* Some points may be in files already: a retry duplicates them
         * (at least once) rather than losing any. */
        done(token, GD_RETRY, NULL);
        return 0;
    }
    if (s->rejects.n)
        gd_log_ratelimited(s->inst, GD_WARN, "s3: %zu points cannot be encoded as %s", s->rejects.n,
                           format_choices[s->cfg->format]);
    gd_rejects r = {.idx = s->rejects.idx, .n = s->rejects.n};
    done(token, GD_DELIVERED, r.n ? &r : NULL);
    return 0;
}

static void scan_spool(struct s3 *s);

static int s3_flush(void *state)
{
    struct s3 *s = state;
    scan_spool(s);
    pthread_mutex_lock(&s->lock);
    seal_open(s, true);
    s->draining = true;
    s->drain_gave_up = false;
    s->drain_failures = 0;
    pthread_cond_signal(&s->wake);
    int64_t deadline = mono_ns() + (int64_t)(s->cfg->flush_timeout * NS_PER_S);
    while (s->head && !s->drain_gave_up && mono_ns() < deadline) {
        struct timespec ts;
        abs_deadline(&ts, deadline);
        pthread_cond_timedwait(&s->idle, &s->lock, &ts);
    }
    s->draining = false;
    size_t left = s->nready;
    uint64_t bytes = s->spooled_bytes;
    pthread_mutex_unlock(&s->lock);
    if (left)
        gd_log(s->inst, GD_WARN,
               "s3: %zu objects (%" PRIu64 " bytes) not uploaded yet stay in %s; they are sent "
               "when an instance named \"%s\" runs again",
               left, bytes, s->dir, gd_instance_name(s->inst));
    return 0;
}

/* ---- HTTP --------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct s3 *s = ctx;
    size_t n = size * nmemb, room = RESPONSE_KEEP_BYTES - s->resp_len;
    size_t keep = n < room ? n : room;
    memcpy(s->resp + s->resp_len, data, keep);
    s->resp_len += keep;
    s->resp[s->resp_len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct s3 *s = ctx;
    size_t n = size * nmemb;
    if (n > 5 && strncasecmp(data, "etag:", 5) == 0) {
        const char *v = data + 5;
        size_t len = n - 5;
        while (len && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len >= sizeof(s->etag))
            len = sizeof(s->etag) - 1;
        memcpy(s->etag, v, len);
        s->etag[len] = '\0';
    }
    return n;
}

static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct s3 *s = ctx;
    (void)dt, (void)dn, (void)ut, (void)un;
    return atomic_load(&s->aborting) ? 1 : 0;
}

/* The text of the first <@tag> element of the response into @out. */
static const char *xml_text(const struct s3 *s, const char *tag, char *out, size_t size)
{
    char open[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    const char *p = strstr(s->resp, open);
    out[0] = '\0';
    if (!p)
        return out;
    p += strlen(open);
    const char *e = strchr(p, '<');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

enum outcome { OUT_OK, OUT_FAIL };

/* One request; @what names it in log lines ("PUT", "UploadPart 3"). */
static int request(struct s3 *s, const char *method, const char *what, const char *key,
                   const char *query, const void *body, size_t len, const char *sha256,
                   const char *ctype, bool need_etag, bool new_object)
{
    struct s3_request *r = &s->req;
    int rc = s3_request_build(r, &s->target, key, query, body, len, sha256, ctype);
    if (rc == 0 && s->cfg->storage_class && new_object) {
        gd_buf h = {0};
        rc = gd_buf_printf(&h, "x-amz-storage-class: %s", s->cfg->storage_class);
        struct curl_slist *t = rc == 0 ? curl_slist_append(r->headers, h.data) : NULL;
        gd_buf_free(&h);
        if (t)
            r->headers = t;
        else
            rc = GD_ENOMEM;
    }
    if (rc == 0)
        rc = s3_request_apply(r, s->curl, method, body, len);
    if (rc < 0) {
        gd_log_ratelimited(s->inst, GD_ERROR, "s3: cannot prepare %s %s: %s", what, key,
                           gd_strerror(rc));
        return OUT_FAIL;
    }
    s->resp_len = 0;
    s->resp[0] = '\0';
    s->etag[0] = '\0';
    s->errbuf[0] = '\0';
    s->status = 0;
    CURLcode cc = curl_easy_perform(s->curl);
    if (cc != CURLE_OK) {
        gd_log_ratelimited(s->inst, GD_WARN, "s3: %s %s (key \"%s\") failed: %s; retrying", what,
                           r->shown, key, s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc));
        return OUT_FAIL;
    }
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status >= 200 && s->status < 300 && (!need_etag || (s->status == 200 && s->etag[0])))
        return OUT_OK;
    char code[128], msg[512];
    xml_text(s, "Code", code, sizeof(code));
    xml_text(s, "Message", msg, sizeof(msg));
    if (s->status == 200) {
        gd_log_ratelimited(s->inst, GD_WARN,
                           "s3: %s %s (key \"%s\"): HTTP 200 without an ETag; retrying", what,
                           r->shown, key);
    } else if (s->status == 401 || s->status == 403) {
        gd_log_ratelimited(s->inst, GD_ERROR,
                           "s3: %s %s (key \"%s\") refused: HTTP %ld %s: %s - check "
                           "access_key_id, secret_access_key, session_token (or AWS_ACCESS_KEY_ID, "
                           "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), region and the bucket "
                           "policy; the object stays spooled and is retried",
                           what, r->shown, key, s->status, code[0] ? code : "-",
                           msg[0] ? msg : "(no message)");
    } else {
        gd_log_ratelimited(s->inst, s->status >= 500 ? GD_WARN : GD_ERROR,
                           "s3: %s %s (key \"%s\"): HTTP %ld %s: %s; retrying", what, r->shown, key,
                           s->status, code[0] ? code : "-", msg[0] ? msg : "(no message)");
    }
    return OUT_FAIL;
}

static int ensure_ubuf(struct s3 *s, size_t n)
{
    if (n <= s->ucap)
        return 0;
    unsigned char *p = realloc(s->ubuf, n ? n : 1);
    if (!p)
        return GD_ENOMEM;
    s->ubuf = p;
    s->ucap = n;
    return 0;
}

static const char *object_type(const struct s3 *s, int comp)
{
    return comp_type[comp] ? comp_type[comp] : s->content_type;
}

/* The SHA-256 of part @i (0-based) when it was computed while writing; NULL:
 * hash the payload now. */
static const char *part_hash(const struct s3 *s, const struct obj *o, size_t i)
{
    uint64_t part = (uint64_t)s->cfg->multipart_bytes;
    size_t want = o->bytes <= part ? 1 : (size_t)((o->bytes + part - 1) / part);
    if (!o->hashed || o->part_bytes != part || o->nparts != want || i >= o->nparts)
        return NULL;
    return o->parts[i];
}

static int upload_single(struct s3 *s, struct obj *o, const unsigned char *data)
{
    return request(s, "PUT", "PUT", o->key, NULL, data, o->bytes, part_hash(s, o, 0),
                   object_type(s, o->comp), true, true);
}

static int upload_multipart(struct s3 *s, struct obj *o, const unsigned char *data)
{
    size_t part = (size_t)s->cfg->multipart_bytes;
    char upload_id[1024];
    if (request(s, "POST", "CreateMultipartUpload", o->key, "uploads=", NULL, 0, NULL,
                object_type(s, o->comp), false, true) != OUT_OK)
        return OUT_FAIL;
    xml_text(s, "UploadId", upload_id, sizeof(upload_id));
    if (!upload_id[0]) {
        gd_log_ratelimited(s->inst, GD_WARN,
                           "s3: CreateMultipartUpload %s answered without an UploadId; retrying",
                           o->key);
        return OUT_FAIL;
    }
    gd_buf id = {0}, q = {0}, done_xml = {0};
    int rc = s3_uri_encode(&id, upload_id, strlen(upload_id), false);
    int out = rc == 0 ? OUT_OK : OUT_FAIL;
    if (rc == 0)
        rc = gd_buf_puts(&done_xml, "<CompleteMultipartUpload>");
    unsigned nparts = 0;
    for (uint64_t off = 0; rc == 0 && out == OUT_OK && off < o->bytes; off += part) {
        size_t n = o->bytes - off < part ? (size_t)(o->bytes - off) : part;
        nparts++;
        char what[64];
        snprintf(what, sizeof(what), "UploadPart %u", nparts);
        gd_buf_reset(&q);
        rc = gd_buf_printf(&q, "partNumber=%u&uploadId=%s", nparts, id.data);
        if (rc == 0)
            out = request(s, "PUT", what, o->key, q.data, data + off, n,
                          part_hash(s, o, nparts - 1), NULL, true, false);
        if (rc == 0 && out == OUT_OK)
            rc = gd_buf_printf(&done_xml, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>",
                               nparts, s->etag);
    }
    if (rc == 0 && out == OUT_OK)
        rc = gd_buf_puts(&done_xml, "</CompleteMultipartUpload>");
    gd_buf_reset(&q);
    if (rc == 0)
        rc = gd_buf_printf(&q, "uploadId=%s", id.data);
    if (rc == 0 && out == OUT_OK) {
        out = request(s, "POST", "CompleteMultipartUpload", o->key, q.data, done_xml.data,
                      done_xml.len, NULL, "application/xml", false, false);
        /* S3 may answer 200 and report an error in the body. */
        if (out == OUT_OK &&
            (!strstr(s->resp, "<CompleteMultipartUploadResult") || !strstr(s->resp, "<ETag>"))) {
            char code[128], msg[512];
            gd_log_ratelimited(
                s->inst, GD_WARN, "s3: CompleteMultipartUpload %s failed: %s: %s; retrying", o->key,
                xml_text(s, "Code", code, sizeof(code)), xml_text(s, "Message", msg, sizeof(msg)));
            out = OUT_FAIL;
        }
    }
    if (rc < 0 || out != OUT_OK) {
        /* Abort, so the store frees the parts; a failure here is logged by
         * request() (the bucket's lifecycle rules can expire the parts). */
        gd_buf_reset(&q);
        if (id.data && gd_buf_printf(&q, "uploadId=%s", id.data) == 0)
            request(s, "DELETE", "AbortMultipartUpload", o->key, q.data, NULL, 0, NULL, NULL, false,
                    false);
        out = OUT_FAIL;
    }
    gd_buf_free(&id);
    gd_buf_free(&q);
    gd_buf_free(&done_xml);
    return rc < 0 ? OUT_FAIL : out;
}

static int upload(struct s3 *s, struct obj *o)
{
    int64_t t0 = mono_ns();
    /* The file mapped (no copy; read into memory if mapping fails). */
    size_t map_len = (size_t)(o->hdr_len + o->bytes);
    unsigned char *map = mmap(NULL, map_len, PROT_READ, MAP_SHARED, o->fd, 0);
    const unsigned char *data;
    if (map != MAP_FAILED) {
        (void)madvise(map, map_len, MADV_SEQUENTIAL);
        data = map + o->hdr_len;
    } else if (ensure_ubuf(s, o->bytes) == 0 &&
               read_at(o->fd, s->ubuf, o->bytes, o->hdr_len) == 0) {
        data = s->ubuf;
    } else {
        gd_log_ratelimited(s->inst, GD_ERROR, "s3: cannot read spool file %s", o->path);
        return OUT_FAIL;
    }
    int out = o->bytes > (uint64_t)s->cfg->multipart_bytes ? upload_multipart(s, o, data)
                                                           : upload_single(s, o, data);
    if (map != MAP_FAILED)
        munmap(map, map_len);
    if (out == OUT_OK)
        gd_log(s->inst, GD_DEBUG, "s3: uploaded %s (%" PRIu64 " bytes in %.1f ms)", o->key,
               o->bytes, (double)(mono_ns() - t0) / NS_PER_MS);
    return out;
}

/* ---- spool scan: files left by a crash, a restart or a reload ------------ */

/* Decompress as much of @in as decodes (a stream cut short by a crash
 * included) into @out. */
static int decompress_partial(int comp, const unsigned char *in, size_t len, gd_buf *out)
{
    if (comp == COMP_NONE)
        return gd_buf_append(out, in, len);
    unsigned char chunk[64 * 1024];
    if (comp == COMP_GZIP) {
        z_stream z = {0};
        if (inflateInit2(&z, MAX_WBITS + 16) != Z_OK)
            return GD_ENOMEM;
        z.next_in = in;
        z.avail_in = len > UINT_MAX ? UINT_MAX : (uInt)len;
        int zr = Z_OK, rc = 0;
        while (zr == Z_OK && rc == 0) {
            z.next_out = chunk;
            z.avail_out = sizeof(chunk);
            zr = inflate(&z, Z_NO_FLUSH);
            rc = gd_buf_append(out, chunk, sizeof(chunk) - z.avail_out);
            if (zr == Z_OK && z.avail_out != 0 && z.avail_in == 0)
                break;
        }
        inflateEnd(&z);
        return rc;
    }
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        return GD_ENOMEM;
    ZSTD_inBuffer ib = {in, len, 0};
    int rc = 0;
    for (;;) {
        ZSTD_outBuffer ob = {chunk, sizeof(chunk), 0};
        size_t r = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(r))
            break;
        if ((rc = gd_buf_append(out, chunk, ob.pos)) < 0)
            break;
        if (ob.pos < ob.size && ib.pos == ib.size)
            break;
    }
    ZSTD_freeDCtx(d);
    return rc;
}

/* Read the header of a spool file: its compression, key and length. */
static int read_header(int fd, int *comp, char **key, uint64_t *hdr_len)
{
    char buf[4096 + 64];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return GD_EIO;
    buf[n] = '\0';
    if (strncmp(buf, SPOOL_MAGIC, strlen(SPOOL_MAGIC)) != 0)
        return GD_EPROTO;
    char *c = buf + strlen(SPOOL_MAGIC);
    char *nl = strchr(c, '\n');
    if (!nl)
        return GD_EPROTO;
    *nl = '\0';
    int k;
    for (k = 0; comp_choices[k] && strcmp(comp_choices[k], c) != 0; k++)
        ;
    if (!comp_choices[k])
        return GD_EPROTO;
    char *kp = nl + 1, *kn = strchr(kp, '\n');
    if (!kn || kn == kp)
        return GD_EPROTO;
    *kn = '\0';
    *key = strdup(kp);
    if (!*key)
        return GD_ENOMEM;
    *comp = k;
    *hdr_len = (uint64_t)(kn + 1 - buf);
    return 0;
}

/* A .open file nobody holds: its complete lines into a new sealed object
 * (queued); the old file is removed. */
static int repair(struct s3 *s, int fd, const char *path, int comp, const char *key,
                  uint64_t hdr_len)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    uint64_t len = (uint64_t)st.st_size > hdr_len ? (uint64_t)st.st_size - hdr_len : 0;
    gd_buf text = {0};
    /* Own buffers: the writer (flush) and the uploader both scan. */
    unsigned char *raw = malloc(len ? len : 1);
    int rc = raw ? 0 : GD_ENOMEM;
    if (rc == 0 && len)
        rc = read_at(fd, raw, len, hdr_len);
    if (rc == 0)
        rc = decompress_partial(comp, raw, len, &text);
    free(raw);
    if (rc < 0)
        goto out_free;
    const char *nl = text.len ? memrchr(text.data, '\n', text.len) : NULL;
    size_t keep = nl ? (size_t)(nl - text.data) + 1 : 0;
    if (keep < text.len)
        gd_log(s->inst, GD_WARN, "s3: %s: %zu bytes of an incomplete last line dropped", path,
               text.len - keep);
    if (keep == 0) {
        unlink(path);
        goto out_free;
    }
    struct obj *o = NULL;
    rc = obj_create(s, key, comp, (unsigned long long)atomic_fetch_add(&s->seq, 1) + 1, &o);
    if (rc < 0)
        goto out_free;
    rc = gd_buf_append(&o->text, text.data, keep);
    o->points = 1; /* not empty; the exact count is not needed */
    pthread_mutex_lock(&s->lock);
    s->spooled_bytes += o->hdr_len;
    if (rc == 0)
        obj_seal(s, o);
    else
        obj_free(o);
    pthread_mutex_unlock(&s->lock);
    if (rc == 0) {
        unlink(path);
        gd_log(s->inst, GD_INFO, "s3: recovered %s (key %s) left by an earlier run", path, key);
    }
out_free:
    gd_buf_free(&text);
    return rc;
}

/* Take one file of the spool directory if nobody holds it. */
static void adopt(struct s3 *s, const char *name)
{
    size_t n = strlen(name);
    bool is_open = n > 5 && strcmp(name + n - 5, ".open") == 0;
    bool is_ready = n > 6 && strcmp(name + n - 6, ".ready") == 0;
    if (!is_open && !is_ready)
        return;
    gd_buf path = {0};
    if (gd_buf_printf(&path, "%s/%s", s->dir, name) < 0)
        return;
    int fd = open(path.data, O_RDWR | O_CLOEXEC);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (fd >= 0)
            close(fd);
        gd_buf_free(&path);
        return; /* gone, or in use by an instance */
    }
    struct stat st;
    int comp = 0;
    char *key = NULL;
    uint64_t hdr_len = 0;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && st.st_nlink == 0)
        rc = GD_ENOENT; /* removed after an upload while we opened it */
    if (rc == 0)
        rc = read_header(fd, &comp, &key, &hdr_len);
    if (rc == GD_EPROTO) {
        gd_log_ratelimited(s->inst, GD_WARN,
                           "s3: %s is not a spool file of this plugin; moved "
                           "aside (.bad)",
                           path.data);
        gd_buf bad = {0};
        if (gd_buf_printf(&bad, "%s.bad", path.data) == 0)
            rename(path.data, bad.data);
        gd_buf_free(&bad);
    }
    if (rc == 0 && is_open) {
        rc = repair(s, fd, path.data, comp, key, hdr_len);
        close(fd);
        fd = -1;
    } else if (rc == 0) {
        struct obj *o = calloc(1, sizeof(*o));
        if (o) {
            o->fd = fd;
            o->comp = comp;
            o->key = key;
            o->path = path.data;
            o->hdr_len = hdr_len;
            o->bytes = (uint64_t)st.st_size > hdr_len ? (uint64_t)st.st_size - hdr_len : 0;
            o->points = 1;
            load_hashes(o);
            key = NULL;
            path = (gd_buf){0};
            fd = -1;
            pthread_mutex_lock(&s->lock);
            s->spooled_bytes += o->hdr_len + o->bytes;
            o->next = NULL;
            if (s->tail)
                s->tail->next = o;
            else
                s->head = o;
            s->tail = o;
            s->nready++;
            pthread_cond_signal(&s->wake);
            pthread_mutex_unlock(&s->lock);
            gd_log(s->inst, GD_INFO, "s3: uploading %s (key %s) left by an earlier run", name,
                   o->key);
        }
    }
    if (fd >= 0)
        close(fd);
    free(key);
    gd_buf_free(&path);
}

/* A file a crash left between creation and its first name: it holds a
 * header at most (no points); removed when nobody holds it. */
static void forget_stillborn(struct s3 *s, const char *name)
{
    gd_buf path = {0};
    if (gd_buf_printf(&path, "%s/%s", s->dir, name) < 0)
        return;
    /* Only old ones: a new file is unlocked for an instant after creation. */
    struct stat st;
    int fd = open(path.data, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_mtime < time(NULL) - STILLBORN_AGE_S &&
        flock(fd, LOCK_EX | LOCK_NB) == 0)
        unlink(path.data);
    if (fd >= 0)
        close(fd);
    gd_buf_free(&path);
}

static void scan_spool(struct s3 *s)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.')
            adopt(s, e->d_name);
        else if (strlen(e->d_name) > 4 && strcmp(e->d_name + strlen(e->d_name) - 4, ".new") == 0)
            forget_stillborn(s, e->d_name);
    }
    closedir(d);
}

/* ---- the uploader thread ------------------------------------------------- */

static int64_t backoff_ns(unsigned failures)
{
    int64_t w = BACKOFF_INITIAL_NS;
    for (unsigned i = 1; i < failures && w < BACKOFF_MAX_NS; i++)
        w *= 2;
    return w < BACKOFF_MAX_NS ? w : BACKOFF_MAX_NS;
}

static void *uploader_main(void *arg)
{
    struct s3 *s = arg;
    int64_t tick = (int64_t)(s->cfg->object_interval * NS_PER_S / 4);
    if (tick > TICK_MAX_NS)
        tick = TICK_MAX_NS;
    int64_t next_tick = mono_ns() + tick, next_scan = mono_ns() + SCAN_INTERVAL_NS;

    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        int64_t now = mono_ns();
        if (now >= next_tick) {
            seal_open(s, false);
            next_tick = now + tick;
        }
        if (now >= next_scan) {
            pthread_mutex_unlock(&s->lock);
            scan_spool(s);
            pthread_mutex_lock(&s->lock);
            next_scan = mono_ns() + SCAN_INTERVAL_NS;
            continue;
        }
        bool hurry = s->draining && !s->drain_gave_up; /* flush() waits: no backoff */
        if (s->head && (hurry || now >= s->retry_at)) {
            struct obj *o = s->head;
            pthread_mutex_unlock(&s->lock);
            int out = upload(s, o);
            pthread_mutex_lock(&s->lock);
            if (out == OUT_OK) {
                s->head = o->next;
                if (!s->head)
                    s->tail = NULL;
                s->nready--;
                s->spooled_bytes -= o->hdr_len + o->bytes;
                s->uploaded_objects++;
                s->uploaded_bytes += o->bytes;
                unlink(o->path);
                obj_free(o);
                s->failures = 0;
                s->retry_at = 0;
                s->drain_failures = 0;
            } else {
                s->failures++;
                s->retry_at = mono_ns() + backoff_ns(s->failures);
                if (s->draining && ++s->drain_failures >= s->nready)
                    s->drain_gave_up = true;
                else if (s->nready > 1) {
                    /* Let the others through: this one goes last. */
                    s->head = o->next;
                    o->next = NULL;
                    s->tail->next = o;
                    s->tail = o;
                }
            }
            pthread_cond_broadcast(&s->idle);
            continue;
        }
        int64_t due = next_tick < next_scan ? next_tick : next_scan;
        if (s->head && s->retry_at < due)
            due = s->retry_at;
        struct timespec ts;
        abs_deadline(&ts, due);
        pthread_cond_timedwait(&s->wake, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- set-up ------------------------------------------------------------- */

static void s3_destroy(void *state)
{
    struct s3 *s = state;
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        atomic_store(&s->aborting, true);
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
    }
    if (s->table && s->out) {
        /* Open objects end their streams and stay spooled for next time. */
        seal_open(s, true);
    }
    free(s->table);
    size_t left = 0;
    for (struct obj *o = s->head, *next; o; o = next) {
        next = o->next;
        left++;
        obj_free(o);
    }
    if (s->uploaded_objects || left)
        gd_log(s->inst, GD_INFO,
               "s3: uploaded %" PRIu64 " objects (%" PRIu64 " bytes); %zu left in %s",
               s->uploaded_objects, s->uploaded_bytes, left, s->dir ? s->dir : "-");
    if (s->curl) {
        curl_easy_cleanup(s->curl);
        curl_global_cleanup();
    }
    s3_request_free(&s->req);
    if (s->lock_ready) {
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->wake);
        pthread_cond_destroy(&s->idle);
    }
    free_segs(s);
    free(s->access_key);
    free(s->secret_key);
    free(s->token);
    free(s->dir);
    free(s->content_type_buf);
    free(s->touched);
    free(s->out);
    free(s->ubuf);
    gd_buf_free(&s->scratch);
    gd_index_set_free(&s->rejects);
    free(s);
}

static int mkdirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return GD_ENOMEM;
    int rc = 0;
    for (char *q = p + 1; rc == 0; q++) {
        if (*q != '/' && *q != '\0')
            continue;
        char c = *q;
        *q = '\0';
        if (mkdir(p, DIR_MODE) < 0 && errno != EEXIST)
            rc = -errno;
        *q = c;
        if (!c)
            break;
    }
    free(p);
    return rc;
}

/* Credentials: the options, else the standard AWS variables. */
static int resolve_credentials(struct s3 *s)
{
    const struct s3_cfg *c = s->cfg;
    const char *ak = is_set(c->access_key_id) ? c->access_key_id : getenv("AWS_ACCESS_KEY_ID");
    const char *sk =
        is_set(c->secret_access_key) ? c->secret_access_key : getenv("AWS_SECRET_ACCESS_KEY");
    /* The variables' token only goes with the variables' keys. */
    const char *tk = is_set(c->session_token)   ? c->session_token
                     : is_set(c->access_key_id) ? NULL
                                                : getenv("AWS_SESSION_TOKEN");
    if (!is_set(ak) || !is_set(sk)) {
        gd_log(s->inst, GD_ERROR,
               "s3: no credentials: set access_key_id and secret_access_key, or "
               "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment");
        return GD_ECONFIG;
    }
    s->access_key = strdup(ak);
    s->secret_key = strdup(sk);
    s->token = is_set(tk) ? strdup(tk) : NULL;
    if (!s->access_key || !s->secret_key || (is_set(tk) && !s->token))
        return GD_ENOMEM;
    /* Secrets from the environment are redacted like sensitive options. */
    gd_log_redact(s->secret_key);
    if (s->token)
        gd_log_redact(s->token);
    return 0;
}

static int check_config(struct s3 *s)
{
    const struct s3_cfg *c = s->cfg;
    if (c->endpoint && strncmp(c->endpoint, "http://", 7) != 0 &&
        strncmp(c->endpoint, "https://", 8) != 0) {
        gd_log(s->inst, GD_ERROR, "s3: endpoint \"%s\" must start with http:// or https://",
               c->endpoint);
        return GD_ECONFIG;
    }
    if (c->endpoint) {
        const char *host = strstr(c->endpoint, "://") + 3;
        const char *slash = strchr(host, '/');
        if (!host[0] || host[0] == '/' || (slash && slash[1])) {
            gd_log(s->inst, GD_ERROR, "s3: endpoint \"%s\" must be scheme://host[:port]",
                   c->endpoint);
            return GD_ECONFIG;
        }
    }
    if (!c->path_style && strchr(c->bucket, '.') && c->endpoint &&
        strncmp(c->endpoint, "https://", 8) == 0)
        gd_log(s->inst, GD_WARN,
               "s3: bucket \"%s\" has dots: virtual-hosted TLS names may not match the "
               "certificate; consider path_style = true",
               c->bucket);
    if (c->tls_ca_file && access(c->tls_ca_file, R_OK) < 0) {
        gd_log(s->inst, GD_ERROR, "s3: cannot read %s", c->tls_ca_file);
        return GD_ECONFIG;
    }
    if (c->compression == COMP_GZIP && c->compression_level > 9) {
        gd_log(s->inst, GD_ERROR, "s3: gzip compression_level must be 1..9 (0: default)");
        return GD_ECONFIG;
    }
    int rc = parse_template(s, c->key);
    if (rc == GD_EINVAL) {
        gd_log(s->inst, GD_ERROR,
               "s3: key \"%s\" needs {seq}, so objects of different runs never overwrite "
               "each other",
               c->key);
        return GD_ECONFIG;
    }
    if (rc == 0 && c->key[0] == '/') {
        gd_log(s->inst, GD_ERROR, "s3: key \"%s\" must not start with '/'", c->key);
        return GD_ECONFIG;
    }
    return rc;
}

static int setup_curl(struct s3 *s)
{
    const struct s3_cfg *c = s->cfg;
    CURL *k = s->curl;
    long timeout_ms = (long)(c->timeout * 1000);
    CURLcode cc = CURLE_OK;
    gd_buf ua = {0};
    if (gd_buf_printf(&ua, "gatherd/%s", gd_version()) < 0)
        return GD_ENOMEM;
#define SET(opt, val) (cc == CURLE_OK ? (cc = curl_easy_setopt(k, opt, val)) : cc)
    SET(CURLOPT_USERAGENT, ua.data); /* libcurl copies strings */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_ERRORBUFFER, s->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, s);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, s);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, s);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_UPLOAD_BUFFERSIZE, (long)UPLOAD_BUFFER_BYTES);
    SET(CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L);
    SET(CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L);
    if (c->tls_ca_file)
        SET(CURLOPT_CAINFO, c->tls_ca_file);
#undef SET
    gd_buf_free(&ua);
    if (cc != CURLE_OK) {
        gd_log(s->inst, GD_ERROR, "s3: libcurl: %s", curl_easy_strerror(cc));
        return GD_ENOTSUP;
    }
    return 0;
}

static int setup_spool(struct s3 *s)
{
    gd_buf dir = {0};
    const char *name = gd_instance_name(s->inst), *base = gd_instance_spool_dir(s->inst);
    int rc;
    if (s->cfg->spool_dir) {
        rc = gd_buf_printf(&dir, "%s/", s->cfg->spool_dir);
        if (rc == 0)
            rc = put_clean(&dir, name, strlen(name));
    } else if (base) {
        /* beside the core's queue spool of this output, if it has one */
        rc = gd_buf_printf(&dir, "%s/objects", base);
    } else {
        gd_log(s->inst, GD_ERROR, "s3: no spool directory: set spool_dir");
        return GD_ECONFIG;
    }
    s->dir = dir.data;
    if (rc < 0)
        return rc;
    rc = mkdirs(s->dir);
    if (rc < 0 || access(s->dir, W_OK) < 0) {
        gd_log(s->inst, GD_ERROR, "s3: cannot use spool directory %s: %s", s->dir,
               strerror(rc < 0 ? -rc : errno));
        return GD_ECONFIG;
    }
    /* {seq}: start time and a random part, so objects of different runs
     * (and instances) never share a key; a counter within the run. */
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
        rnd = (uint32_t)mono_ns() ^ (uint32_t)getpid();
    snprintf(s->seq_prefix, sizeof(s->seq_prefix), "%lld-%06x", (long long)(gd_now_ns() / NS_PER_S),
             rnd & 0xffffff);
    return 0;
}

static int s3_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct s3_cfg *cfg = cfgp;
    struct s3 *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    s->csv_shape = cfg->format == FMT_CSV;
    int rc = check_config(s);
    if (rc == 0)
        rc = resolve_credentials(s);
    if (rc < 0)
        goto out_destroy;
    s->target = (struct s3_target){
        .endpoint = cfg->endpoint,
        .region = cfg->region,
        .bucket = cfg->bucket,
        .path_style = cfg->path_style,
        .access_key = s->access_key,
        .secret_key = s->secret_key,
        .session_token = s->token,
    };
    if (cfg->compression == COMP_NONE)
        s->content_type = format_type[cfg->format];

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, &ca);
    pthread_cond_init(&s->idle, &ca);
    pthread_condattr_destroy(&ca);
    s->lock_ready = true;

    s->table_size = 16;
    s->table = calloc(s->table_size, sizeof(*s->table));
    s->out = malloc(OUT_CHUNK_BYTES);
    if (!s->table || !s->out) {
        rc = GD_ENOMEM;
        goto out_destroy;
    }
    rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : GD_ENOMEM;
    if (rc < 0)
        goto out_destroy;
    s->curl = curl_easy_init();
    if (!s->curl) {
        curl_global_cleanup();
        rc = GD_ENOMEM;
        goto out_destroy;
    }
    rc = setup_curl(s);
    if (rc == 0)
        rc = setup_spool(s);
    if (rc < 0)
        goto out_destroy;
    /* Leftovers of an earlier run go first. */
    scan_spool(s);
    struct s3_request shown = {0};
    if (s3_request_build(&shown, &s->target, NULL, NULL, NULL, 0, NULL, NULL) == 0)
        gd_log(inst, GD_DEBUG, "s3: writing to %s, spool %s", shown.shown, s->dir);
    s3_request_free(&shown);
    if (pthread_create(&s->thread, NULL, uploader_main, s) != 0) {
        rc = GD_ENOMEM;
        goto out_destroy;
    }
    s->thread_started = true;
    *state = s;
    return 0;

out_destroy:
    s3_destroy(s);
    return rc;
}

static const struct gd_output_ops s3_ops = {
    .struct_size = sizeof(struct gd_output_ops),
    .init = s3_init,
    .destroy = s3_destroy,
    .write = s3_write,
    .flush = s3_flush,
};

static const struct gd_plugin s3_plugin = {
    GD_PLUGIN_ABI,
    .name = "s3",
    .version = "0.1.0",
    .kind = GD_KIND_OUTPUT,
    .summary = "archive points as compressed objects (ndjson, line protocol, csv) in S3",
    .options = s3_options,
    .config_size = sizeof(struct s3_cfg),
    .ops = &s3_ops,
};

GD_PLUGIN_ENTRY
{
    return &s3_plugin;
}
