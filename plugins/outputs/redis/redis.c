/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis.c - write points to Redis with hiredis, in any combination of three
 * modes per instance:
 *   publish  PUBLISH channel payload (JSON or line protocol) per point;
 *   stream   XADD key MAXLEN ~ N * ts <ns> [tag value ...] field value ... ;
 *   latest   HSET key ts <ns> field value ... [+ PEXPIRE key ttl]: the last
 *            reading of each series, for dashboards.
 *
 * One blocking connection per writer. A batch is one pipeline: every command
 * is encoded (RESP, into one reused buffer) and handed to hiredis at once,
 * then every reply is read and checked. A point whose key cannot be filled
 * (missing tag) or whose command gets an error reply about the command
 * (WRONGTYPE, NOPERM ...) is a reject; the rest of the batch is delivered.
 *
 * A connection lost (or a reply timed out, or an error reply about the
 * server's state such as LOADING or OOM) halfway through a batch: the
 * commands whose replies were read are done; the batch is reported for a
 * retry, and when the core retries it the pipeline resumes at the first
 * command without a reply. Commands sent but unanswered may have run, so
 * they may run twice (at-least-once: a duplicate stream entry or message).
 */
#include "rd_template.h"
#include "rd_tls.h"
#include <gatherd/gatherd.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* Longest text of a key, payload or reply quoted in a log line. */
#define LOG_TEXT_MAX_BYTES 200
/* Room for one formatted number (gd_fmt_double needs 32). */
#define NUM_BYTES 32

enum mode { MODE_PUBLISH = 0, MODE_STREAM = 1, MODE_LATEST = 2, MODE_EXPIRE = 3, NSTEPS = 4 };
enum format { FORMAT_JSON = 0, FORMAT_LINE = 1 };

struct rd_cfg {
    char *host;
    int64_t port;
    char *socket;
    char *username;
    char *password;
    int64_t db;
    bool tls;
    char *tls_ca_file;
    char *tls_cert_file;
    char *tls_key_file;
    char *tls_server_name;
    double connect_timeout;
    double command_timeout;
    gd_strlist modes;
    char *channel;
    int format; /* enum format */
    char *stream_key;
    int64_t stream_maxlen;
    bool stream_tags;
    char *latest_key;
    double latest_ttl;
};

static const char *const format_choices[] = {"json", "line", NULL};

#define OFF(f) offsetof(struct rd_cfg, f)
static const struct gd_option rd_options[] = {
    GD_OPT_STRING("host", "127.0.0.1", 0, OFF(host), "Redis server host name or address"),
    GD_OPT_INT("port", "6379", 1, 65535, 0, OFF(port), "Redis server TCP port"),
    GD_OPT_STRING("socket", NULL, 0, OFF(socket),
                  "unix socket path; when set, host and port are not used"),
    GD_OPT_STRING("username", NULL, 0, OFF(username),
                  "ACL user (Redis 6+); unset: AUTH with the password only"),
    GD_OPT_STRING("password", NULL, GD_OF_SENSITIVE, OFF(password),
                  "password (AUTH); unset: no AUTH"),
    GD_OPT_INT("db", "0", 0, 1000000, 0, OFF(db), "database number (SELECT)"),
    GD_OPT_BOOL("tls", "false", 0, OFF(tls), "connect with TLS (needs a build with hiredis_ssl)"),
    GD_OPT_STRING("tls_ca_file", NULL, 0, OFF(tls_ca_file),
                  "PEM CA bundle to verify the server with"),
    GD_OPT_STRING("tls_cert_file", NULL, 0, OFF(tls_cert_file), "PEM client certificate"),
    GD_OPT_STRING("tls_key_file", NULL, 0, OFF(tls_key_file),
                  "PEM private key of the client certificate"),
    GD_OPT_STRING("tls_server_name", NULL, 0, OFF(tls_server_name),
                  "server name sent with SNI (default: none)"),
    GD_OPT_DURATION("connect_timeout", "5s", 0.01, 3600, 0, OFF(connect_timeout),
                    "timeout of connecting (and AUTH, SELECT)"),
    GD_OPT_DURATION("command_timeout", "10s", 0.01, 3600, 0, OFF(command_timeout),
                    "timeout of sending a batch's pipeline and of each reply"),
    GD_OPT_STRLIST("modes", GD_OF_REQUIRED, OFF(modes),
                   "what to do with each point: any of \"publish\", \"stream\", \"latest\""),
    GD_OPT_STRING("channel", "gatherd:{measurement}:{device}", 0, OFF(channel),
                  "publish: channel template"),
    GD_OPT_ENUM("format", "json", format_choices, 0, OFF(format),
                "publish: payload format, JSON or line protocol"),
    GD_OPT_STRING("stream_key", "gatherd:{measurement}", 0, OFF(stream_key),
                  "stream: key template of the stream"),
    GD_OPT_INT("stream_maxlen", "1000000", 0, 1e15, 0, OFF(stream_maxlen),
               "stream: MAXLEN ~ N trimming; 0: no trimming"),
    GD_OPT_BOOL("stream_tags", "true", 0, OFF(stream_tags),
                "stream: add the point's tags to each entry"),
    GD_OPT_STRING("latest_key", "gatherd:latest:{measurement}:{device}", 0, OFF(latest_key),
                  "latest: key template of the hash of each series"),
    GD_OPT_DURATION("latest_ttl", "0", 0, 1e9, 0, OFF(latest_ttl),
                    "latest: expire each hash this long after its last update; 0: never"),
    GD_OPT_END,
};
#undef OFF

static const char *const step_names[NSTEPS] = {"PUBLISH", "XADD", "HSET", "PEXPIRE"};

struct rd {
    gd_instance *inst;
    const struct rd_cfg *cfg;
    char where[300]; /* "127.0.0.1:6379" or the socket, for logs */
    bool step_on[NSTEPS];
    rd_template *tpl[NSTEPS]; /* channel, stream key, latest key (expire: latest's) */
    rd_tls *tls;
    redisContext *c;
    char maxlen[24];
    char ttl_ms[24];

    /* Scratch, kept between batches. */
    gd_buf key[NSTEPS]; /* the filled templates of the point being built */
    gd_buf payload;
    gd_buf out;          /* the pipeline of the batch, in RESP */
    int out_err;         /* the first failure appending to it */
    uint32_t *cmd_point; /* per command of the pipeline: its point ... */
    uint8_t *cmd_step;   /* ... and step */
    size_t cmd_cap;
    gd_index_set rej; /* rejects of the batch, over all its attempts */

    /* A batch cut short by a lost connection: resume at this command. */
    gd_batch *pending;
    uint32_t resume_point;
    uint8_t resume_step;
};

/* ---- connection -------------------------------------------------------- */

static struct timeval to_timeval(double s)
{
    struct timeval tv = {.tv_sec = (time_t)s};
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

static void disconnect(struct rd *s)
{
    if (s->c)
        redisFree(s->c);
    s->c = NULL;
}

/* Run one set-up command; an error reply is copied into @why. */
static int setup_command(struct rd *s, int argc, const char **argv, char *why, size_t why_len)
{
    redisReply *r = redisCommandArgv(s->c, argc, argv, NULL);
    if (!r) {
        snprintf(why, why_len, "%s", s->c->errstr[0] ? s->c->errstr : "connection lost");
        return GD_ECONN;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, why_len, "%.*s", (int)r->len, r->str);
        rc = GD_EPERM;
    }
    freeReplyObject(r);
    return rc;
}

/* Connect, start TLS, AUTH and SELECT. Returns 0; GD_ECONN when the server
 * cannot be reached (logged rate-limited); GD_EPERM when it refuses the
 * credentials or the database (logged as an error); GD_ENOMEM. */
static int connect_server(struct rd *s)
{
    const struct rd_cfg *cfg = s->cfg;
    struct timeval ctv = to_timeval(cfg->connect_timeout);
    char why[512] = "";
    int rc = 0;

    disconnect(s);
    s->c = cfg->socket ? redisConnectUnixWithTimeout(cfg->socket, ctv)
                       : redisConnectWithTimeout(cfg->host, (int)cfg->port, ctv);
    if (!s->c)
        return GD_ENOMEM;
    if (s->c->err) {
        gd_log_ratelimited(s->inst, GD_WARN, "redis: cannot connect to %s: %s", s->where,
                           s->c->errstr);
        disconnect(s);
        return GD_ECONN;
    }
    if (s->tls && (rc = rd_tls_attach(s->tls, s->c, why, sizeof(why))) < 0) {
        gd_log_ratelimited(s->inst, GD_WARN, "redis: %s: %s", s->where, why);
        disconnect(s);
        return rc;
    }
    if (cfg->socket == NULL)
        redisEnableKeepAlive(s->c);
    /* AUTH and SELECT under the connect timeout, then the command timeout. */
    redisSetTimeout(s->c, ctv);
    if (cfg->password) {
        const char *auth[] = {"AUTH", cfg->username, cfg->password};
        if (cfg->username)
            rc = setup_command(s, 3, auth, why, sizeof(why));
        else
            rc = setup_command(s, 2, (const char *[]){"AUTH", cfg->password}, why, sizeof(why));
        if (rc == GD_EPERM) {
            gd_log_ratelimited(s->inst, GD_ERROR,
                               "redis: %s refused the credentials%s%s%s: %s; check username and "
                               "password",
                               s->where, cfg->username ? " of user \"" : "",
                               cfg->username ? cfg->username : "", cfg->username ? "\"" : "", why);
            goto out_disconnect;
        }
    }
    if (rc == 0 && cfg->db) {
        char db[24];
        snprintf(db, sizeof(db), "%" PRId64, cfg->db);
        rc = setup_command(s, 2, (const char *[]){"SELECT", db}, why, sizeof(why));
        if (rc == GD_EPERM) {
            gd_log_ratelimited(s->inst, GD_ERROR, "redis: %s refused SELECT %s: %s", s->where, db,
                               why);
            goto out_disconnect;
        }
    }
    if (rc < 0) {
        gd_log_ratelimited(s->inst, GD_WARN, "redis: %s: %s", s->where, why);
        goto out_disconnect;
    }
    redisSetTimeout(s->c, to_timeval(cfg->command_timeout));
    gd_log(s->inst, GD_DEBUG, "redis: connected to %s", s->where);
    return 0;

out_disconnect:
    disconnect(s);
    return rc;
}

/* ---- building the pipeline --------------------------------------------- */

static int note_command(struct rd *s, size_t ncmd, uint32_t point, uint8_t step)
{
    if (ncmd == s->cmd_cap) {
        size_t cap = s->cmd_cap ? s->cmd_cap * 2 : 1024;
        uint32_t *p = realloc(s->cmd_point, cap * sizeof(*p));
        if (!p)
            return GD_ENOMEM;
        s->cmd_point = p;
        uint8_t *st = realloc(s->cmd_step, cap * sizeof(*st));
        if (!st)
            return GD_ENOMEM;
        s->cmd_step = st;
        s->cmd_cap = cap;
    }
    s->cmd_point[ncmd] = point;
    s->cmd_step[ncmd] = step;
    return 0;
}

/* Decimal text of @v at @dst (room for 20 digits); returns the length. */
static size_t fmt_u64(char *dst, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}

static size_t fmt_i64(char *dst, int64_t v)
{
    if (v >= 0)
        return fmt_u64(dst, (uint64_t)v);
    dst[0] = '-';
    return 1 + fmt_u64(dst + 1, (uint64_t)0 - (uint64_t)v);
}

/* The RESP writers below append to s->out; the first failure (out of
 * memory) sticks in s->out_err and makes the rest do nothing. */

/* Append a RESP header: "*N\r\n" (@mark '*') or "$N\r\n" (@mark '$'). */
static void resp_header(struct rd *s, char mark, size_t n)
{
    gd_buf *o = &s->out;
    if (s->out_err || (s->out_err = gd_buf_reserve(o, 24)) < 0)
        return;
    char *d = o->data + o->len;
    d[0] = mark;
    size_t k = 1 + fmt_u64(d + 1, n);
    d[k++] = '\r';
    d[k++] = '\n';
    o->len += k;
    o->data[o->len] = '\0';
}

/* Append one argument (a RESP bulk string): "$LEN\r\nDATA\r\n". */
static void resp_arg(struct rd *s, const char *p, size_t len)
{
    gd_buf *o = &s->out;
    if (s->out_err || (s->out_err = gd_buf_reserve(o, len + 26)) < 0)
        return;
    char *d = o->data + o->len;
    d[0] = '$';
    size_t k = 1 + fmt_u64(d + 1, len);
    d[k++] = '\r';
    d[k++] = '\n';
    memcpy(d + k, p, len);
    k += len;
    d[k++] = '\r';
    d[k++] = '\n';
    o->len += k;
    o->data[o->len] = '\0';
}

static void resp_str(struct rd *s, const char *str)
{
    resp_arg(s, str, strlen(str));
}

/* Append field @f's value as an argument. */
static void resp_value(struct rd *s, const gd_field *f)
{
    char num[NUM_BYTES];
    size_t n = 0;
    switch (f->type) {
    case GD_F64:
        n = gd_fmt_double(num, f->v.f64);
        break;
    case GD_I64:
        n = fmt_i64(num, f->v.i64);
        break;
    case GD_U64:
        n = fmt_u64(num, f->v.u64);
        break;
    case GD_BOOL:
        resp_str(s, f->v.b ? "true" : "false");
        return;
    default: /* GD_STR */
        resp_arg(s, f->v.str.ptr, f->v.str.len);
        return;
    }
    resp_arg(s, num, n);
}

/* Fill every template the point needs into s->key[]. Returns 0, GD_ENOENT
 * (a tag is missing: logged, the point is a reject) or GD_ENOMEM. */
static int fill_keys(struct rd *s, const gd_point *p, uint32_t i)
{
    for (int m = MODE_PUBLISH; m <= MODE_LATEST; m++) {
        if (!s->step_on[m])
            continue;
        gd_buf_reset(&s->key[m]);
        const char *missing = NULL;
        int rc = rd_template_expand(s->tpl[m], p, &s->key[m], &missing);
        if (rc == GD_ENOENT) {
            gd_log_ratelimited(s->inst, GD_WARN,
                               "redis: point #%u (%s) has no tag \"%s\" for the %s template "
                               "\"%s\"; rejected",
                               i, gd_point_measurement(p, NULL), missing,
                               m == MODE_PUBLISH  ? "channel"
                               : m == MODE_STREAM ? "stream_key"
                                                  : "latest_key",
                               rd_template_text(s->tpl[m]));
            return rc;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Append the command of @step for point @p to s->out, in RESP (the bytes
 * redisAppendCommandArgv() would produce, without its allocation per
 * command). */
static int append_step(struct rd *s, const gd_point *p, int step)
{
    size_t ntags = 0, nfields = 0;
    const gd_tag *tags = gd_point_tags(p, &ntags);
    const gd_field *fields = gd_point_fields(p, &nfields);
    gd_buf *o = &s->out;
    char ts[NUM_BYTES];
    size_t tslen = fmt_i64(ts, gd_point_time(p));
    size_t mark = o->len;
    int rc = 0;

    s->out_err = 0;
    switch (step) {
    case MODE_PUBLISH:
        gd_buf_reset(&s->payload);
        rc = s->cfg->format == FORMAT_JSON ? gd_json_encode_point(&s->payload, p)
                                           : gd_lp_encode_point(&s->payload, p, GD_PREC_NS, NULL);
        if (rc < 0)
            return rc;
        resp_header(s, '*', 3);
        resp_arg(s, "PUBLISH", 7);
        resp_arg(s, s->key[MODE_PUBLISH].data, s->key[MODE_PUBLISH].len);
        resp_arg(s, s->payload.data, s->payload.len - 1); /* without the "\n" */
        break;
    case MODE_STREAM: {
        bool trim = s->cfg->stream_maxlen > 0;
        size_t nt = s->cfg->stream_tags ? ntags : 0;
        resp_header(s, '*', 2 + (trim ? 3 : 0) + 1 + 2 + 2 * (nt + nfields));
        resp_arg(s, "XADD", 4);
        resp_arg(s, s->key[MODE_STREAM].data, s->key[MODE_STREAM].len);
        if (trim) {
            resp_arg(s, "MAXLEN", 6);
            resp_arg(s, "~", 1);
            resp_str(s, s->maxlen);
        }
        resp_arg(s, "*", 1);
        resp_arg(s, "ts", 2);
        resp_arg(s, ts, tslen);
        for (size_t t = 0; t < nt; t++) {
            resp_arg(s, tags[t].key, tags[t].key_len);
            resp_arg(s, tags[t].value, tags[t].value_len);
        }
        for (size_t f = 0; f < nfields; f++) {
            resp_arg(s, fields[f].key, fields[f].key_len);
            resp_value(s, &fields[f]);
        }
        break;
    }
    case MODE_LATEST:
        resp_header(s, '*', 4 + 2 * nfields);
        resp_arg(s, "HSET", 4);
        resp_arg(s, s->key[MODE_LATEST].data, s->key[MODE_LATEST].len);
        resp_arg(s, "ts", 2);
        resp_arg(s, ts, tslen);
        for (size_t f = 0; f < nfields; f++) {
            resp_arg(s, fields[f].key, fields[f].key_len);
            resp_value(s, &fields[f]);
        }
        break;
    default: /* MODE_EXPIRE */
        resp_header(s, '*', 3);
        resp_arg(s, "PEXPIRE", 7);
        resp_arg(s, s->key[MODE_LATEST].data, s->key[MODE_LATEST].len);
        resp_str(s, s->ttl_ms);
        break;
    }
    if (s->out_err < 0) {
        o->len = mark; /* out of memory: nothing of the command stays */
        return s->out_err;
    }
    return 0;
}

/* Append the commands of every point from the resume position; *@ncmd
 * receives their count. Points that cannot be written are added to s->rej. */
static int build_pipeline(struct rd *s, const gd_batch *b, size_t *ncmd)
{
    size_t n = gd_batch_len(b), k = 0;
    gd_buf_reset(&s->out);
    for (uint32_t i = s->resume_point; i < n; i++) {
        const gd_point *p = gd_batch_point(b, i);
        int rc = fill_keys(s, p, i);
        if (rc == GD_ENOENT) {
            if ((rc = gd_index_set_add(&s->rej, i)) < 0)
                return rc;
            continue;
        }
        if (rc < 0)
            return rc;
        for (int step = 0; step < NSTEPS; step++) {
            if (!s->step_on[step] || (i == s->resume_point && step < s->resume_step))
                continue;
            rc = append_step(s, p, step);
            if (rc == GD_EINVAL) { /* the payload cannot be encoded */
                gd_log_ratelimited(s->inst, GD_WARN,
                                   "redis: point #%u (%s) cannot be encoded; rejected", i,
                                   gd_point_measurement(p, NULL));
                if ((rc = gd_index_set_add(&s->rej, i)) < 0)
                    return rc;
                break;
            }
            if (rc < 0 || (rc = note_command(s, k, i, (uint8_t)step)) < 0)
                return rc;
            k++;
        }
    }
    *ncmd = k;
    /* The whole pipeline in one piece: hiredis copies it to its output
     * buffer and sends it with the first redisGetReply(). */
    if (k && redisAppendFormattedCommand(s->c, s->out.data, s->out.len) != REDIS_OK)
        return GD_ENOMEM;
    return 0;
}

/* An error reply to command @k: reject its point, naming the key. */
static int reply_error(struct rd *s, const gd_batch *b, size_t k, const redisReply *r)
{
    uint32_t i = s->cmd_point[k];
    int step = s->cmd_step[k];
    const gd_point *p = gd_batch_point(b, i);
    int tpl = step == MODE_EXPIRE ? MODE_LATEST : step;
    gd_buf key = {0};
    const char *missing = NULL;
    int rc = rd_template_expand(s->tpl[tpl], p, &key, &missing);
    gd_log_ratelimited(s->inst, GD_WARN, "redis: %s %s \"%.*s\" failed for point #%u: %.*s",
                       step_names[step], step == MODE_PUBLISH ? "to channel" : "of key",
                       LOG_TEXT_MAX_BYTES, rc == 0 && key.data ? key.data : "?", i,
                       LOG_TEXT_MAX_BYTES, r->str ? r->str : "");
    gd_buf_free(&key);
    if (s->rej.n && s->rej.idx[s->rej.n - 1] == i)
        return 0;
    return gd_index_set_add(&s->rej, i);
}

/* Error replies about the server's state rather than the command: the
 * batch is retried from that command instead of rejecting the point. */
static bool is_transient_error(const redisReply *r)
{
    static const char *const codes[] = {"LOADING ",  "BUSY ",       "TRYAGAIN ",    "MASTERDOWN ",
                                        "READONLY ", "NOREPLICAS ", "CLUSTERDOWN ", "MISCONF ",
                                        "OOM ",      "NOAUTH "};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (r->str && strncmp(r->str, codes[i], strlen(codes[i])) == 0)
            return true;
    return false;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sort s->rej and remove repeats. */
static void normalize_rejects(struct rd *s)
{
    if (s->rej.n < 2)
        return;
    qsort(s->rej.idx, s->rej.n, sizeof(*s->rej.idx), cmp_u32);
    size_t w = 1;
    for (size_t r = 1; r < s->rej.n; r++)
        if (s->rej.idx[r] != s->rej.idx[w - 1])
            s->rej.idx[w++] = s->rej.idx[r];
    s->rej.n = w;
}

static void forget_pending(struct rd *s)
{
    gd_batch_unref(s->pending);
    s->pending = NULL;
    s->resume_point = 0;
    s->resume_step = 0;
    s->rej.n = 0;
}

/* ---- callbacks --------------------------------------------------------- */

static int rd_write(void *state, gd_batch *b, gd_done_fn done, void *token)
{
    struct rd *s = state;

    if (b != s->pending)
        forget_pending(s);
    if (!s->c && connect_server(s) < 0) {
        done(token, GD_RETRY, NULL);
        return 0;
    }

    size_t ncmd = 0;
    int rc = build_pipeline(s, b, &ncmd);
    if (rc < 0) {
        /* Out of memory: nothing was handed to hiredis. */
        forget_pending(s);
        return rc; /* done() not called: the core retries */
    }

    for (size_t k = 0; k < ncmd; k++) {
        redisReply *r = NULL;
        bool ok = redisGetReply(s->c, (void **)&r) == REDIS_OK && r;
        if (ok && r->type == REDIS_REPLY_ERROR && is_transient_error(r)) {
            gd_log_ratelimited(s->inst, GD_WARN,
                               "redis: %s cannot take writes now (%.*s); retrying the batch from "
                               "command %zu of %zu",
                               s->where, LOG_TEXT_MAX_BYTES, r->str, k + 1, ncmd);
            ok = false;
        } else if (!ok) {
            gd_log_ratelimited(s->inst, GD_WARN,
                               "redis: connection to %s lost after %zu of %zu commands of a "
                               "batch (%s); retrying the rest",
                               s->where, k, ncmd, s->c->errstr[0] ? s->c->errstr : "no reply");
        }
        if (!ok) {
            /* The replies still due are dropped with the connection; the
             * commands from k on are sent again. */
            if (r)
                freeReplyObject(r);
            disconnect(s);
            if (s->pending != b)
                s->pending = gd_batch_ref(b);
            s->resume_point = s->cmd_point[k];
            s->resume_step = s->cmd_step[k];
            done(token, GD_RETRY, NULL);
            return 0;
        }
        if (r->type == REDIS_REPLY_ERROR)
            rc = reply_error(s, b, k, r);
        freeReplyObject(r);
        if (rc < 0) {
            /* Out of memory: drain the replies on a new connection. */
            disconnect(s);
            forget_pending(s);
            return rc;
        }
    }

    normalize_rejects(s);
    gd_rejects rej = {.idx = s->rej.idx, .n = s->rej.n};
    done(token, GD_DELIVERED, rej.n ? &rej : NULL);
    forget_pending(s);
    return 0;
}

static void rd_destroy(void *state)
{
    struct rd *s = state;
    if (!s)
        return;
    disconnect(s);
    forget_pending(s);
    rd_tls_free(s->tls);
    for (int m = 0; m < NSTEPS; m++) {
        rd_template_free(s->tpl[m]);
        gd_buf_free(&s->key[m]);
    }
    gd_buf_free(&s->payload);
    gd_buf_free(&s->out);
    free(s->cmd_point);
    free(s->cmd_step);
    gd_index_set_free(&s->rej);
    free(s);
}

/* ---- set-up ------------------------------------------------------------ */

static int parse_modes(struct rd *s)
{
    static const char *const names[] = {"publish", "stream", "latest"};
    const gd_strlist *l = &s->cfg->modes;
    for (size_t i = 0; i < l->n; i++) {
        bool known = false;
        for (int m = 0; m < 3; m++)
            if (strcmp(l->v[i], names[m]) == 0) {
                s->step_on[m] = true;
                known = true;
            }
        if (!known) {
            gd_log(s->inst, GD_ERROR,
                   "redis: unknown mode \"%s\" in modes (expected \"publish\", \"stream\" or "
                   "\"latest\")",
                   l->v[i]);
            return GD_ECONFIG;
        }
    }
    if (l->n == 0) {
        gd_log(s->inst, GD_ERROR,
               "redis: modes is empty; set one or more of \"publish\", \"stream\", \"latest\"");
        return GD_ECONFIG;
    }
    s->step_on[MODE_EXPIRE] = s->step_on[MODE_LATEST] && s->cfg->latest_ttl > 0;
    return 0;
}

static int parse_templates(struct rd *s)
{
    const char *const text[] = {s->cfg->channel, s->cfg->stream_key, s->cfg->latest_key};
    const char *const opt[] = {"channel", "stream_key", "latest_key"};
    for (int m = 0; m < 3; m++) {
        if (!s->step_on[m])
            continue;
        const char *why = NULL;
        int rc = rd_template_parse(text[m], &s->tpl[m], &why);
        if (rc == GD_EINVAL) {
            gd_log(s->inst, GD_ERROR, "redis: %s = \"%s\": %s", opt[m], text[m], why);
            return GD_ECONFIG;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int setup_tls(struct rd *s)
{
    const struct rd_cfg *c = s->cfg;
    if (!c->tls) {
        if (c->tls_ca_file || c->tls_cert_file || c->tls_key_file || c->tls_server_name)
            gd_log(s->inst, GD_WARN, "redis: tls_* options are ignored without tls = true");
        return 0;
    }
    if (c->tls_key_file && !c->tls_cert_file) {
        gd_log(s->inst, GD_ERROR, "redis: tls_key_file needs tls_cert_file");
        return GD_ECONFIG;
    }
    struct rd_tls_opts o = {.ca_file = c->tls_ca_file,
                            .cert_file = c->tls_cert_file,
                            .key_file = c->tls_key_file ? c->tls_key_file : c->tls_cert_file,
                            .server_name = c->tls_server_name};
    char why[512] = "";
    int rc = rd_tls_new(&o, &s->tls, why, sizeof(why));
    if (rc < 0)
        gd_log(s->inst, GD_ERROR, "redis: tls = true: %s", why);
    return rc;
}

static int rd_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct rd_cfg *cfg = cfgp;
    struct rd *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    if (cfg->socket)
        snprintf(s->where, sizeof(s->where), "unix:%s", cfg->socket);
    else
        snprintf(s->where, sizeof(s->where), "%s:%" PRId64, cfg->host, cfg->port);
    snprintf(s->maxlen, sizeof(s->maxlen), "%" PRId64, cfg->stream_maxlen);
    long long ttl_ms = (long long)(cfg->latest_ttl * 1000 + 0.5);
    snprintf(s->ttl_ms, sizeof(s->ttl_ms), "%lld", ttl_ms > 0 ? ttl_ms : 1);

    int rc = parse_modes(s);
    if (rc == 0)
        rc = parse_templates(s);
    if (rc == 0 && cfg->username && !cfg->password) {
        gd_log(inst, GD_ERROR, "redis: username needs password");
        rc = GD_ECONFIG;
    }
    if (rc == 0)
        rc = setup_tls(s);
    if (rc < 0)
        goto out_destroy;

    /* Connect now so that refused credentials stop the start with a clear
     * error; a server not reachable yet is retried at the first write. */
    rc = connect_server(s);
    if (rc == GD_EPERM)
        goto out_destroy;
    if (rc == GD_ENOMEM)
        goto out_destroy;
    if (rc < 0)
        gd_log(inst, GD_WARN, "redis: %s not reachable yet; connecting again at the first write",
               s->where);
    *state = s;
    return 0;

out_destroy:
    rd_destroy(s);
    return rc;
}

static const struct gd_output_ops rd_ops = {
    .struct_size = sizeof(struct gd_output_ops),
    .init = rd_init,
    .destroy = rd_destroy,
    .write = rd_write,
};

static const struct gd_plugin rd_plugin = {
    GD_PLUGIN_ABI,
    .name = "redis",
    .version = "0.1.0",
    .kind = GD_KIND_OUTPUT,
    .flags = GD_PLUGIN_PARALLEL,
    .summary = "publish points, append them to streams and cache the latest per series in Redis",
    .options = rd_options,
    .config_size = sizeof(struct rd_cfg),
    .ops = &rd_ops,
};

GD_PLUGIN_ENTRY
{
    return &rd_plugin;
}
