/* SPDX-License-Identifier: Apache-2.0 */
/*
 * influxdb.c - write batches to InfluxDB as line protocol over HTTP: the v1
 * API (POST /write?db=&rp=&precision=, basic auth) or the v2 API (POST
 * /api/v2/write?org=&bucket=&precision=, Authorization: Token).
 *
 * One libcurl easy handle per writer, reused for every request (keep-alive).
 * A batch is encoded once with the SDK encoder and sent in one or more
 * requests of at most max_body_bytes (split on line boundaries), optionally
 * gzip-compressed.
 *
 * Responses:
 *   2xx                       delivered.
 *   400/422 about points      InfluxDB 1.x writes the good points of a partial
 *   (partial write, parse     write but does not say which lines failed: the
 *   error, type conflict)     request is bisected (halves re-sent; re-writing
 *                             an identical point overwrites it, so nothing is
 *                             duplicated) until the bad points are isolated;
 *                             only those are reported as rejects.
 *   413                       the body is halved and resent; later requests
 *                             use the smaller size.
 *   401/403, 404, other 4xx   a clear error naming the server's message; retry
 *                             (a configuration problem never loses data).
 *   429, 5xx                  retry; Retry-After is honoured (no request
 *                             before it), on top of the core's backoff.
 *   timeouts, refused         retry.
 * A batch cut short by a retryable failure resumes at the first request not
 * yet acknowledged when the core retries it.
 */
#define ZLIB_CONST
#include <gatherd/gatherd.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define NS_PER_MS 1000000LL
#define NS_PER_S  1000000000LL
/* Response bytes kept for the log (the rest is read and discarded). */
#define RESPONSE_KEEP_BYTES 4096
/* Longest server message quoted in a log line. */
#define MESSAGE_MAX_BYTES 512
/* Longest part of a rejected line quoted in a log line. */
#define LOG_LINE_MAX_BYTES 200
/* Longest Retry-After honoured. */
#define RETRY_AFTER_MAX_S 300
/* Longest wait for Retry-After inside one write(); a longer one makes the
 * write report a retry without sending, and the core backs off. */
#define RETRY_AFTER_SLEEP_MAX_NS (1000 * NS_PER_MS)
/* A 413 never makes requests smaller than this. */
#define MIN_BODY_BYTES 1024

enum api { API_V1 = 0, API_V2 = 1 };

struct influx_cfg {
    char *url;
    int api; /* enum api */
    char *database;
    char *retention_policy;
    char *username;
    char *password;
    char *org;
    char *bucket;
    char *token;
    int precision; /* gd_precision */
    bool gzip;
    int64_t gzip_level;
    int64_t max_body_bytes;
    double timeout;
    char *tls_ca_file;
    char *tls_cert_file;
    char *tls_key_file;
    bool tls_verify;
    char *user_agent;
};

static const char *const api_choices[] = {"v1", "v2", NULL};
static const char *const precision_choices[] = {"ns", "us", "ms", "s", NULL};
/* The precision query parameter: InfluxDB 1.x reads "n" and "u" (and would
 * take "us" as nanoseconds); the v2 API reads "ns" and "us". */
static const char *const v1_precision[] = {"n", "u", "ms", "s"};
static const char *const v2_precision[] = {"ns", "us", "ms", "s"};

#define OFF(f) offsetof(struct influx_cfg, f)
static const struct gd_option influx_options[] = {
    GD_OPT_STRING("url", NULL, GD_OF_REQUIRED, OFF(url),
                  "InfluxDB base URL, e.g. \"http://127.0.0.1:8086\" (https:// for TLS)"),
    GD_OPT_ENUM("api", "v1", api_choices, 0, OFF(api),
                "write API: v1 (/write, database) or v2 (/api/v2/write, org and bucket)"),
    GD_OPT_STRING("database", NULL, 0, OFF(database), "v1: database to write to (required)"),
    GD_OPT_STRING("retention_policy", NULL, 0, OFF(retention_policy),
                  "v1: retention policy (default: the database's default)"),
    GD_OPT_STRING("username", NULL, 0, OFF(username), "v1: user (basic auth)"),
    GD_OPT_STRING("password", NULL, GD_OF_SENSITIVE, OFF(password), "v1: password"),
    GD_OPT_STRING("org", NULL, 0, OFF(org), "v2: organization (required)"),
    GD_OPT_STRING("bucket", NULL, 0, OFF(bucket), "v2: bucket (required)"),
    GD_OPT_STRING("token", NULL, GD_OF_SENSITIVE, OFF(token), "v2: API token (required)"),
    GD_OPT_ENUM("precision", "ns", precision_choices, 0, OFF(precision),
                "timestamp precision sent to the server"),
    GD_OPT_BOOL("gzip", "false", 0, OFF(gzip), "compress request bodies (Content-Encoding: gzip)"),
    GD_OPT_INT("gzip_level", "1", 1, 9, 0, OFF(gzip_level), "zlib level: 1 fastest, 9 smallest"),
    GD_OPT_INT("max_body_bytes", "5242880", MIN_BODY_BYTES, 1073741824, 0, OFF(max_body_bytes),
               "largest request body before compression; a larger batch is split on line "
               "boundaries"),
    GD_OPT_DURATION("timeout", "10s", 0.1, 3600, 0, OFF(timeout),
                    "whole-request timeout (connect, send, response)"),
    GD_OPT_STRING("tls_ca_file", NULL, 0, OFF(tls_ca_file),
                  "PEM CA bundle to verify the server (default: the system's)"),
    GD_OPT_STRING("tls_cert_file", NULL, 0, OFF(tls_cert_file), "PEM client certificate"),
    GD_OPT_STRING("tls_key_file", NULL, 0, OFF(tls_key_file),
                  "PEM private key of the client certificate"),
    GD_OPT_BOOL("tls_verify", "true", 0, OFF(tls_verify),
                "verify the server's certificate and host name"),
    GD_OPT_STRING("user_agent", NULL, 0, OFF(user_agent),
                  "User-Agent header (default: gatherd/VERSION)"),
    GD_OPT_END,
};
#undef OFF

/* What one request came to. */
enum outcome {
    OUT_OK,        /* 2xx */
    OUT_POINTS,    /* 400/422 naming bad points: find and reject them */
    OUT_TOO_LARGE, /* 413: send smaller bodies */
    OUT_RETRY,     /* anything else: retry the rest later */
};

struct influx {
    gd_instance *inst;
    const struct influx_cfg *cfg;
    CURL *curl;
    struct curl_slist *headers;
    char *write_url;
    char *shown_url; /* the url without user:password@, for logs */
    char *user_agent;
    char errbuf[CURL_ERROR_SIZE];

    /* The last response. */
    long status;
    char resp[RESPONSE_KEEP_BYTES + 1];
    size_t resp_len;
    char msg[MESSAGE_MAX_BYTES];
    int64_t not_before_ns; /* monotonic: Retry-After */

    /* The batch being written. */
    gd_buf body;              /* encoded lines */
    gd_index_set enc_rejects; /* points the encoder refused */
    gd_index_set rejects;     /* everything reported to done() */
    size_t *bad;              /* start offsets of lines InfluxDB rejected */
    size_t nbad, bad_cap;
    char first_msg[MESSAGE_MAX_BYTES]; /* the server's reason for the first */
    size_t requests;                   /* requests spent on this batch */
    size_t limit;                      /* max_body_bytes, lowered by a 413 */
    gd_batch *pending;                 /* referenced: batch cut short by a retry */
    size_t resume_off;                 /* body bytes of it acknowledged */

    bool z_ready;
    z_stream z;
    unsigned char *zbuf;
    size_t zcap;
};

/* libcurl's global state: curl_global_init() and curl_global_cleanup() are
 * counted and thread-safe since libcurl 7.84 (Debian 12 has 7.88), so each
 * instance calls them once. */

/* ---- helpers ----------------------------------------------------------- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / NS_PER_S), .tv_nsec = (long)(ns % NS_PER_S)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static bool is_set(const char *s)
{
    return s && s[0];
}

static size_t on_response(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct influx *s = ctx;
    size_t n = size * nmemb, room = RESPONSE_KEEP_BYTES - s->resp_len;
    size_t keep = n < room ? n : room;
    memcpy(s->resp + s->resp_len, data, keep);
    s->resp_len += keep;
    s->resp[s->resp_len] = '\0';
    return n;
}

/* The server's message in s->msg: the "error" (v1) or "message" (v2) member
 * of a JSON body, else the body itself, on one line. */
static const char *server_message(struct influx *s)
{
    static const char *const keys[] = {"\"error\":\"", "\"message\":\""};
    const char *src = NULL;
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]) && !src; k++) {
        const char *p = strstr(s->resp, keys[k]);
        if (p)
            src = p + strlen(keys[k]);
    }
    size_t n = 0;
    if (src) {
        for (; *src && *src != '"' && n + 1 < sizeof(s->msg); src++) {
            if (*src == '\\' && src[1])
                src++;
            s->msg[n++] = *src;
        }
    } else {
        for (src = s->resp; *src && n + 1 < sizeof(s->msg); src++)
            s->msg[n++] = (unsigned char)*src < ' ' ? ' ' : *src;
        while (n && s->msg[n - 1] == ' ')
            n--;
    }
    s->msg[n] = '\0';
    if (n == 0)
        snprintf(s->msg, sizeof(s->msg), "(no message)");
    return s->msg;
}

/* 400 and 422 about the points themselves (as opposed to the request). */
static bool names_bad_points(const char *msg)
{
    static const char *const marks[] = {"partial write",       "unable to parse",
                                        "field type conflict", "beyond retention policy",
                                        "max-values-per-tag",  "invalid field format"};
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
        if (strstr(msg, marks[i]))
            return true;
    return false;
}

/* "... dropped=N" of a 1.x partial write: how many points of the request
 * were refused; 0 when unknown. */
static uint64_t dropped_count(const char *msg)
{
    const char *p = strstr(msg, "dropped=");
    return p ? strtoull(p + strlen("dropped="), NULL, 10) : 0;
}

static size_t count_lines(const struct influx *s, size_t a, size_t b)
{
    size_t n = 0;
    for (const char *p = s->body.data + a, *end = s->body.data + b; p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    return n;
}

/* End of the request body that starts at @off: at most s->limit bytes, on
 * a line boundary; a line longer than the limit goes alone. */
static size_t chunk_end(const struct influx *s, size_t off)
{
    size_t len = s->body.len;
    if (len - off <= s->limit)
        return len;
    const char *p = s->body.data;
    const char *nl = memrchr(p + off, '\n', s->limit);
    if (nl)
        return (size_t)(nl - p) + 1;
    nl = memchr(p + off + s->limit, '\n', len - off - s->limit);
    return nl ? (size_t)(nl - p) + 1 : len;
}

/* A line boundary strictly inside [a, b), near its middle; 0 when [a, b)
 * is a single line. */
static size_t split_point(const struct influx *s, size_t a, size_t b)
{
    const char *p = s->body.data;
    size_t mid = a + (b - a) / 2;
    const char *nl = memchr(p + mid, '\n', b - 1 - mid);
    if (nl)
        return (size_t)(nl - p) + 1;
    nl = memrchr(p + a, '\n', mid - a);
    return nl ? (size_t)(nl - p) + 1 : 0;
}

static int add_bad(struct influx *s, size_t off)
{
    if (s->nbad == s->bad_cap) {
        size_t cap = s->bad_cap ? s->bad_cap * 2 : 64;
        size_t *v = realloc(s->bad, cap * sizeof(*v));
        if (!v)
            return GD_ENOMEM;
        s->bad = v;
        s->bad_cap = cap;
    }
    s->bad[s->nbad++] = off;
    return 0;
}

/* Reject every line of [a, b). */
static int reject_lines(struct influx *s, size_t a, size_t b)
{
    for (const char *p = s->body.data + a, *end = s->body.data + b; p < end;) {
        int rc = add_bad(s, (size_t)(p - s->body.data));
        if (rc < 0)
            return rc;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    if (!s->first_msg[0])
        snprintf(s->first_msg, sizeof(s->first_msg), "%s", s->msg);
    return 0;
}

/* s->rejects = the encoder's rejects and the batch indexes of the lines in
 * s->bad (ascending offsets), sorted and unique. */
static int collect_rejects(struct influx *s)
{
    const gd_index_set *enc = &s->enc_rejects;
    const char *p = s->body.data;
    size_t e = 0, off = 0;
    uint32_t pt = 0; /* batch index of the line at off */
    int rc = 0;

    s->rejects.n = 0;
    while (rc == 0 && e < enc->n && enc->idx[e] == pt) {
        rc = gd_index_set_add(&s->rejects, pt++);
        e++;
    }
    for (size_t k = 0; rc == 0 && k < s->nbad; k++) {
        while (rc == 0 && off < s->bad[k]) {
            const char *nl = memchr(p + off, '\n', s->body.len - off);
            off = nl ? (size_t)(nl - p) + 1 : s->body.len;
            pt++;
            while (rc == 0 && e < enc->n && enc->idx[e] == pt) {
                rc = gd_index_set_add(&s->rejects, pt++);
                e++;
            }
        }
        if (rc == 0)
            rc = gd_index_set_add(&s->rejects, pt);
    }
    while (rc == 0 && e < enc->n)
        rc = gd_index_set_add(&s->rejects, enc->idx[e++]);
    return rc;
}

/* ---- one request ------------------------------------------------------- */

static int gzip_into(struct influx *s, const char *data, size_t len, const char **out,
                     size_t *out_len)
{
    if (len > UINT_MAX || deflateReset(&s->z) != Z_OK)
        return GD_ERANGE;
    uLong bound = deflateBound(&s->z, (uLong)len);
    if (bound > UINT_MAX)
        return GD_ERANGE;
    if (bound > s->zcap) {
        unsigned char *z = realloc(s->zbuf, bound);
        if (!z)
            return GD_ENOMEM;
        s->zbuf = z;
        s->zcap = bound;
    }
    s->z.next_in = (const Bytef *)data;
    s->z.avail_in = (uInt)len;
    s->z.next_out = s->zbuf;
    s->z.avail_out = (uInt)bound;
    if (deflate(&s->z, Z_FINISH) != Z_STREAM_END)
        return GD_EIO;
    *out = (const char *)s->zbuf;
    *out_len = (size_t)s->z.total_out;
    return 0;
}

/* Classify a response that is not 2xx, 413 or about points, and log it. */
static enum outcome refused(struct influx *s)
{
    const struct influx_cfg *c = s->cfg;
    const char *msg = server_message(s);
    long st = s->status;

    if (st == 401 || st == 403) {
        const char *fix = c->api == API_V2 ? "check token (and its write permission on the bucket)"
                          : is_set(c->username)
                              ? "check username and password (and the user's WRITE privilege)"
                              : "the server requires authentication: set username and password";
        gd_log_ratelimited(s->inst, GD_ERROR,
                           "influxdb: %s refused the credentials (HTTP %ld: %s); %s; retrying, "
                           "nothing is dropped",
                           s->shown_url, st, msg, fix);
    } else if (st == 404) {
        if (c->api == API_V2)
            gd_log_ratelimited(s->inst, GD_ERROR,
                               "influxdb: %s: org \"%s\" / bucket \"%s\" not found (HTTP 404: %s); "
                               "create it or fix org/bucket (or url); retrying, nothing is dropped",
                               s->shown_url, c->org, c->bucket, msg);
        else
            gd_log_ratelimited(s->inst, GD_ERROR,
                               "influxdb: %s: database \"%s\" not found (HTTP 404: %s); create it "
                               "(CREATE DATABASE \"%s\") or fix database (or url); retrying, "
                               "nothing is dropped",
                               s->shown_url, c->database, msg, c->database);
    } else if (st == 429 || st >= 500) {
        curl_off_t after = 0;
        if (curl_easy_getinfo(s->curl, CURLINFO_RETRY_AFTER, &after) != CURLE_OK || after < 0)
            after = 0;
        if (after > RETRY_AFTER_MAX_S)
            after = RETRY_AFTER_MAX_S;
        if (after > 0)
            s->not_before_ns = mono_ns() + (int64_t)after * NS_PER_S;
        char when[64] = "";
        if (after > 0)
            snprintf(when, sizeof(when), " after %lld s (Retry-After)", (long long)after);
        gd_log_ratelimited(s->inst, GD_WARN,
                           "influxdb: %s is busy or failing (HTTP %ld: %s); retrying%s",
                           s->shown_url, st, msg, when);
    } else {
        gd_log_ratelimited(s->inst, GD_ERROR,
                           "influxdb: %s refused the request (HTTP %ld: %s); retrying, nothing "
                           "is dropped",
                           s->shown_url, st, msg);
    }
    return OUT_RETRY;
}

/* POST body bytes [a, b). */
static enum outcome post(struct influx *s, size_t a, size_t b)
{
    const char *data = s->body.data + a;
    size_t len = b - a;
    if (s->cfg->gzip) {
        int rc = gzip_into(s, data, len, &data, &len);
        if (rc < 0) {
            gd_log_ratelimited(s->inst, GD_WARN, "influxdb: cannot compress %zu bytes: %s", b - a,
                               gd_strerror(rc));
            return OUT_RETRY;
        }
    }
    s->requests++;
    s->resp_len = 0;
    s->resp[0] = '\0';
    s->errbuf[0] = '\0';
    s->status = 0;
    CURLcode cc = curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, data);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    if (cc == CURLE_OK)
        cc = curl_easy_perform(s->curl);
    if (cc == CURLE_OK)
        cc = curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
    if (cc != CURLE_OK) {
        gd_log_ratelimited(s->inst, GD_WARN, "influxdb: POST to %s failed: %s; retrying",
                           s->shown_url, s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc));
        return OUT_RETRY;
    }
    if (s->status >= 200 && s->status < 300)
        return OUT_OK;
    if (s->status == 413)
        return OUT_TOO_LARGE;
    if ((s->status == 400 || s->status == 422) && names_bad_points(server_message(s)))
        return OUT_POINTS;
    return refused(s);
}

static int send_range(struct influx *s, size_t a, size_t b);

/* How many points of the last request InfluxDB says it refused, when the
 * count is exact: a partial write's "dropped=N" counts type conflicts and
 * limits, not lines that failed to parse. -1: unknown. */
static long long exact_dropped(const struct influx *s, size_t nlines)
{
    uint64_t d = dropped_count(s->msg);
    if (d == 0 || d > nlines || strstr(s->msg, "unable to parse"))
        return -1;
    return (long long)d;
}

/* Lines [a, b) were sent and InfluxDB refused some of them, writing the
 * others. Find the refused ones (s->bad): re-send halves, re-writing the
 * good points (identical points overwrite, nothing is duplicated).
 * @dropped: how many of [a, b) were refused when exactly known, else -1.
 * With it, a half need not be sent when the other half's count tells:
 * field types only ever get defined, so a point refused (or written) in the
 * whole request is refused (or written) again in its half, and the half
 * not sent was written but for @dropped minus the other half's refusals. */
static int isolate(struct influx *s, size_t a, size_t b, long long dropped)
{
    size_t n = count_lines(s, a, b);
    if (dropped == 0)
        return OUT_OK;
    size_t mid = split_point(s, a, b);
    if (!mid || dropped == (long long)n) {
        if (n == 1)
            gd_log_ratelimited(
                s->inst, GD_WARN, "influxdb: point rejected (HTTP %ld: %s): %.*s", s->status,
                s->msg, (int)(b - a - 1 < LOG_LINE_MAX_BYTES ? b - a - 1 : LOG_LINE_MAX_BYTES),
                s->body.data + a);
        else
            gd_log_ratelimited(s->inst, GD_WARN,
                               "influxdb: all %zu points of a request rejected (HTTP %ld: %s)", n,
                               s->status, s->msg);
        return reject_lines(s, a, b);
    }
    size_t before = s->nbad;
    int rc = send_range(s, a, mid);
    if (rc != OUT_OK)
        return rc;
    long long rest = dropped < 0 ? -1 : dropped - (long long)(s->nbad - before);
    if (rest >= 0 && rest <= (long long)count_lines(s, mid, b))
        return isolate(s, mid, b, rest);
    return send_range(s, mid, b);
}

/* Send body bytes [a, b) (whole lines): split on 413, and find the points
 * InfluxDB refuses (s->bad). Returns OUT_OK when every line is written or
 * rejected, OUT_RETRY when the rest must wait for a retry, or GD_ENOMEM. */
static int send_range(struct influx *s, size_t a, size_t b)
{
    enum outcome o = post(s, a, b);
    if (o == OUT_OK || o == OUT_RETRY)
        return o;
    if (o == OUT_POINTS)
        return isolate(s, a, b, exact_dropped(s, count_lines(s, a, b)));

    server_message(s);
    size_t mid = split_point(s, a, b);
    if (!mid) {
        gd_log_ratelimited(s->inst, GD_WARN,
                           "influxdb: a point of %zu bytes is larger than %s accepts (HTTP 413: "
                           "%s); dropped",
                           b - a, s->shown_url, s->msg);
        return reject_lines(s, a, b);
    }
    size_t half = (b - a) / 2 > MIN_BODY_BYTES ? (b - a) / 2 : MIN_BODY_BYTES;
    if (half < s->limit) {
        s->limit = half;
        gd_log_ratelimited(s->inst, GD_WARN,
                           "influxdb: %s refused a body of %zu bytes (HTTP 413: %s); sending at "
                           "most %zu bytes per request from now on (lower max_body_bytes)",
                           s->shown_url, b - a, s->msg, s->limit);
    }
    int rc = send_range(s, a, mid);
    return rc == OUT_OK ? send_range(s, mid, b) : rc;
}

/* ---- callbacks --------------------------------------------------------- */

static void forget_pending(struct influx *s)
{
    gd_batch_unref(s->pending);
    s->pending = NULL;
    s->resume_off = 0;
}

/* Honour a Retry-After: true when a request may be sent now. */
static bool may_send(struct influx *s)
{
    int64_t wait = s->not_before_ns - mono_ns();
    if (wait <= 0)
        return true;
    sleep_ns(wait < RETRY_AFTER_SLEEP_MAX_NS ? wait : RETRY_AFTER_SLEEP_MAX_NS);
    return wait <= RETRY_AFTER_SLEEP_MAX_NS;
}

static int influx_write(void *state, gd_batch *b, gd_done_fn done, void *token)
{
    struct influx *s = state;

    if (!may_send(s)) {
        done(token, GD_RETRY, NULL);
        return 0;
    }
    if (b != s->pending) {
        forget_pending(s);
        const char *why = NULL;
        gd_buf_reset(&s->body);
        int rc = gd_encode_batch(&s->body, b, GD_FORMAT_LINE, (gd_precision)s->cfg->precision,
                                 &s->enc_rejects, &why);
        if (rc < 0)
            return rc; /* done() not called: the core retries */
        if (s->enc_rejects.n)
            gd_log_ratelimited(s->inst, GD_WARN,
                               "influxdb: %zu points cannot be encoded, the first (#%u): %s",
                               s->enc_rejects.n, s->enc_rejects.idx[0], why);
    }
    s->nbad = 0;
    s->requests = 0;
    s->first_msg[0] = '\0';

    int rc = OUT_OK;
    size_t off = s->resume_off;
    while (off < s->body.len && rc == OUT_OK) {
        size_t end = chunk_end(s, off);
        rc = send_range(s, off, end);
        if (rc == OUT_OK)
            off = end;
    }
    if (rc < 0)
        return rc; /* out of memory: the core retries the batch */

    const gd_rejects *rej = NULL;
    gd_rejects r = {.idx = s->enc_rejects.idx, .n = s->enc_rejects.n};
    if (s->nbad) {
        int err = collect_rejects(s);
        if (err < 0)
            return err;
        r.idx = s->rejects.idx;
        r.n = s->rejects.n;
        gd_log_ratelimited(s->inst, GD_WARN,
                           "influxdb: %zu of %zu points rejected by the server (%zu requests to "
                           "find them), the first: %s",
                           s->nbad, gd_batch_len(b), s->requests, s->first_msg);
    }
    if (r.n)
        rej = &r;

    if (off == s->body.len) {
        forget_pending(s);
        done(token, GD_DELIVERED, rej);
        return 0;
    }
    /* Resume there when the core retries this batch; with rejects it
     * retries a new batch without them instead, encoded afresh. */
    if (rej) {
        forget_pending(s);
    } else {
        if (s->pending != b)
            s->pending = gd_batch_ref(b);
        s->resume_off = off;
    }
    done(token, GD_RETRY, rej);
    return 0;
}

static void influx_destroy(void *state)
{
    struct influx *s = state;
    if (!s)
        return;
    if (s->curl) {
        curl_easy_cleanup(s->curl);
        curl_global_cleanup();
    }
    curl_slist_free_all(s->headers);
    if (s->z_ready)
        deflateEnd(&s->z);
    forget_pending(s);
    free(s->zbuf);
    free(s->write_url);
    free(s->shown_url);
    free(s->user_agent);
    free(s->bad);
    gd_buf_free(&s->body);
    gd_index_set_free(&s->enc_rejects);
    gd_index_set_free(&s->rejects);
    free(s);
}

/* ---- set-up ------------------------------------------------------------ */

/* Checks the option table cannot express. */
static int check_config(gd_instance *inst, const struct influx_cfg *c)
{
    const char *u = c->url;
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) {
        gd_log(inst, GD_ERROR, "influxdb: url \"%s\" must start with http:// or https://", u);
        return GD_ECONFIG;
    }
    const char *host = strstr(u, "://") + 3;
    if (!host[0] || host[0] == '/') {
        gd_log(inst, GD_ERROR, "influxdb: url \"%s\" has no host", u);
        return GD_ECONFIG;
    }
    if (c->api == API_V1) {
        if (!is_set(c->database)) {
            gd_log(inst, GD_ERROR, "influxdb: api = \"v1\" needs database = \"NAME\"");
            return GD_ECONFIG;
        }
        if (is_set(c->username) != is_set(c->password)) {
            gd_log(inst, GD_ERROR, "influxdb: set both username and password, or neither");
            return GD_ECONFIG;
        }
        if (c->org || c->bucket || c->token)
            gd_log(inst, GD_WARN, "influxdb: org, bucket and token are ignored with api = \"v1\"");
    } else {
        if (!is_set(c->org) || !is_set(c->bucket) || !is_set(c->token)) {
            gd_log(inst, GD_ERROR,
                   "influxdb: api = \"v2\" needs org, bucket and token (missing: "
                   "%s%s%s)",
                   is_set(c->org) ? "" : "org ", is_set(c->bucket) ? "" : "bucket ",
                   is_set(c->token) ? "" : "token");
            return GD_ECONFIG;
        }
        if (c->database || c->retention_policy || c->username || c->password)
            gd_log(inst, GD_WARN,
                   "influxdb: database, retention_policy, username and password "
                   "are ignored with api = \"v2\"");
    }
    const char *files[] = {c->tls_ca_file, c->tls_cert_file, c->tls_key_file};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (files[i] && access(files[i], R_OK) < 0) {
            gd_log(inst, GD_ERROR, "influxdb: cannot read %s", files[i]);
            return GD_ECONFIG;
        }
    if (c->tls_key_file && !c->tls_cert_file) {
        gd_log(inst, GD_ERROR, "influxdb: tls_key_file needs tls_cert_file");
        return GD_ECONFIG;
    }
    return 0;
}

/* The url without a trailing slash and without user:password@. */
static int make_urls(struct influx *s)
{
    const struct influx_cfg *c = s->cfg;
    size_t n = strlen(c->url);
    while (n && c->url[n - 1] == '/')
        n--;
    const char *host = strstr(c->url, "://") + 3;
    const char *slash = strchr(host, '/');
    const char *at = memchr(host, '@', (size_t)((slash ? slash : c->url + n) - host));
    gd_buf shown = {0}, w = {0};
    int rc = gd_buf_append(&shown, c->url, (size_t)(host - c->url));
    if (rc == 0)
        rc = gd_buf_append(&shown, at ? at + 1 : host, (size_t)(c->url + n - (at ? at + 1 : host)));

    const char *k1 = c->api == API_V1 ? "/write?db=" : "/api/v2/write?org=";
    const char *v1 = c->api == API_V1 ? c->database : c->org;
    char *e1 = curl_easy_escape(s->curl, v1, 0);
    char *e2 = c->api == API_V2              ? curl_easy_escape(s->curl, c->bucket, 0)
               : is_set(c->retention_policy) ? curl_easy_escape(s->curl, c->retention_policy, 0)
                                             : NULL;
    if (!e1 || (!e2 && (c->api == API_V2 || is_set(c->retention_policy))))
        rc = GD_ENOMEM;
    if (rc == 0)
        rc = gd_buf_append(&w, c->url, n);
    if (rc == 0)
        rc = gd_buf_printf(&w, "%s%s", k1, e1);
    if (rc == 0 && e2)
        rc = gd_buf_printf(&w, "%s%s", c->api == API_V2 ? "&bucket=" : "&rp=", e2);
    if (rc == 0)
        rc = gd_buf_printf(&w, "&precision=%s",
                           (c->api == API_V2 ? v2_precision : v1_precision)[c->precision]);
    curl_free(e1);
    curl_free(e2);
    if (rc < 0) {
        gd_buf_free(&shown);
        gd_buf_free(&w);
        return rc;
    }
    s->shown_url = shown.data;
    s->write_url = w.data;
    return 0;
}

static int make_headers(struct influx *s)
{
    const struct influx_cfg *c = s->cfg;
    struct curl_slist *h = NULL, *t;
    /* No "Expect: 100-continue" round trip before large bodies. */
    const char *fixed[] = {"Content-Type: text/plain; charset=utf-8",
                           "Expect:", c->gzip ? "Content-Encoding: gzip" : NULL};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (!fixed[i])
            continue;
        if (!(t = curl_slist_append(h, fixed[i])))
            goto out_free;
        h = t;
    }
    if (c->api == API_V2) {
        gd_buf auth = {0};
        int rc = gd_buf_printf(&auth, "Authorization: Token %s", c->token);
        t = rc == 0 ? curl_slist_append(h, auth.data) : NULL;
        gd_buf_free(&auth);
        if (!t)
            goto out_free;
        h = t;
    }
    s->headers = h;
    return 0;

out_free:
    curl_slist_free_all(h);
    return GD_ENOMEM;
}

static int setup_curl(struct influx *s)
{
    const struct influx_cfg *c = s->cfg;
    CURL *k = s->curl;
    long timeout_ms = (long)(c->timeout * 1000);
    CURLcode cc = CURLE_OK;

    /* Each setopt reports an unknown or unsupported option; stop at the
     * first one refused. */
#define SET(opt, val) (cc == CURLE_OK ? (cc = curl_easy_setopt(k, opt, val)) : cc)
    SET(CURLOPT_URL, s->write_url);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_HTTPHEADER, s->headers);
    SET(CURLOPT_USERAGENT, s->user_agent);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_ERRORBUFFER, s->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_response);
    SET(CURLOPT_WRITEDATA, s);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->api == API_V1 && is_set(c->username)) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SET(CURLOPT_USERNAME, c->username);
        SET(CURLOPT_PASSWORD, c->password);
    }
    if (cc != CURLE_OK) {
        gd_log(s->inst, GD_ERROR, "influxdb: libcurl: %s", curl_easy_strerror(cc));
        return GD_ENOTSUP;
    }
    if (c->tls_ca_file)
        SET(CURLOPT_CAINFO, c->tls_ca_file);
    if (c->tls_cert_file)
        SET(CURLOPT_SSLCERT, c->tls_cert_file);
    if (c->tls_key_file)
        SET(CURLOPT_SSLKEY, c->tls_key_file);
    SET(CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L);
    SET(CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L);
#undef SET
    if (cc != CURLE_OK) {
        gd_log(s->inst, GD_ERROR, "influxdb: libcurl refuses the TLS options: %s",
               curl_easy_strerror(cc));
        return GD_ENOTSUP;
    }
    return 0;
}

static int influx_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct influx_cfg *cfg = cfgp;
    int rc = check_config(inst, cfg);
    if (rc < 0)
        return rc;

    struct influx *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    s->limit = (size_t)cfg->max_body_bytes;
    rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : GD_ENOMEM;
    if (rc < 0) {
        gd_log(inst, GD_ERROR, "influxdb: libcurl cannot initialise");
        goto out_destroy;
    }
    s->curl = curl_easy_init();
    if (!s->curl) {
        curl_global_cleanup();
        rc = GD_ENOMEM;
        goto out_destroy;
    }
    gd_buf ua = {0};
    rc = cfg->user_agent ? gd_buf_puts(&ua, cfg->user_agent)
                         : gd_buf_printf(&ua, "gatherd/%s", gd_version());
    s->user_agent = ua.data;
    if (rc == 0)
        rc = make_urls(s);
    if (rc == 0)
        rc = make_headers(s);
    if (rc == 0 && cfg->gzip) {
        if (deflateInit2(&s->z, (int)cfg->gzip_level, Z_DEFLATED, MAX_WBITS + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            rc = GD_ENOMEM;
        s->z_ready = rc == 0;
    }
    if (rc == 0)
        rc = setup_curl(s);
    if (rc < 0)
        goto out_destroy;
    if (!cfg->tls_verify && strncmp(cfg->url, "https://", 8) == 0)
        gd_log(inst, GD_WARN,
               "influxdb: tls_verify = false: the server's certificate is not "
               "checked");
    gd_log(inst, GD_DEBUG, "influxdb: writing to %s", s->shown_url);
    *state = s;
    return 0;

out_destroy:
    influx_destroy(s);
    return rc;
}

static const struct gd_output_ops influx_ops = {
    .struct_size = sizeof(struct gd_output_ops),
    .init = influx_init,
    .destroy = influx_destroy,
    .write = influx_write,
};

static const struct gd_plugin influx_plugin = {
    GD_PLUGIN_ABI,
    .name = "influxdb",
    .version = "0.1.0",
    .kind = GD_KIND_OUTPUT,
    .flags = GD_PLUGIN_PARALLEL,
    .summary = "write points to InfluxDB (v1 or v2 write API) over HTTP",
    .options = influx_options,
    .config_size = sizeof(struct influx_cfg),
    .ops = &influx_ops,
};

GD_PLUGIN_ENTRY
{
    return &influx_plugin;
}
