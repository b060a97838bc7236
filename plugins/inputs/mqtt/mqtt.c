/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mqtt.c - subscribe to MQTT topics and turn the messages into points
 * (event-driven input, libmosquitto).
 *
 * The client runs on the core's event loop: its socket is watched with
 * gd_fd_watch() and driven with mosquitto_loop_read/_write, a 100 ms timer
 * runs mosquitto_loop_misc (keepalive) and the connect timeout, and the
 * blocking part of connecting (name resolution; for MQTT 5 the whole
 * connect) runs on a worker with gd_work_queue(). libmosquitto is put in "threaded" mode,
 * so a packet it queues (PUBACK, PUBREC, PINGREQ) is only written when we
 * call mosquitto_loop_write(): every readable event reads a burst of
 * messages into one batch, hands it to the core with gd_emit(), and only
 * then writes the acknowledgements. A message is acknowledged after the
 * core has it, never before.
 *
 * While an output this input feeds is full (gd_backpressure()), the socket
 * is not read: nothing more is acknowledged, the broker keeps the messages
 * (QoS 1/2) and TCP flow control slows it down.
 */
#include "mq_json.h"
#include "mq_topic.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gatherd/gatherd.h>
#include <math.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* How often keepalive, the connect timeout and backpressure are checked. */
#define TICK_MS 100
/* Packets read per readable event at most (the loop stays fair). */
#define READ_BUDGET 4096

enum mq_format { MQ_FMT_LINE = 0, MQ_FMT_JSON, MQ_FMT_VALUE };
static const char *const format_names[] = {"line", "json", "value", NULL};
static const char *const precision_names[] = {"ns", "us", "ms", "s", NULL};
static const gd_precision precisions[] = {GD_PREC_NS, GD_PREC_US, GD_PREC_MS, GD_PREC_S};
enum mq_vtype { MQ_V_FLOAT = 0, MQ_V_INT, MQ_V_BOOL, MQ_V_STRING };
static const char *const vtype_names[] = {"float", "int", "bool", "string", NULL};
enum mq_proto { MQ_P_311 = 0, MQ_P_5 };
static const char *const proto_names[] = {"3.1.1", "5", NULL};

struct mq_topic_cfg {
    char *topic;
    int64_t qos;
    char *topic_tags;
    char *measurement;
};

struct mq_cfg {
    char *url;
    char *client_id;
    char *username;
    char *password;
    char *tls_ca_file;
    char *tls_ca_path;
    char *tls_cert_file;
    char *tls_key_file;
    bool tls_verify;
    int protocol;
    double keepalive;
    bool clean_session;
    double session_expiry;
    double connect_timeout;
    double reconnect_min;
    double reconnect_max;
    gd_list topics;
    int format;
    int precision;
    char *measurement;
    char *measurement_key;
    gd_strlist tag_keys;
    gd_strlist field_keys;
    char *time_key;
    int time_format;
    char *value_field;
    int value_type;
    char *topic_tags;
    char *topic_tag;
    int64_t max_payload_bytes;
    int64_t max_batch_points;
};

#define TO(f) offsetof(struct mq_topic_cfg, f)
static const struct gd_option topic_options[] = {
    GD_OPT_STRING("topic", NULL, GD_OF_REQUIRED, TO(topic), "topic filter (+ and # wildcards)"),
    GD_OPT_INT("qos", "1", 0, 2, 0, TO(qos), "subscription QoS: 0, 1 or 2"),
    GD_OPT_STRING("topic_tags", NULL, 0, TO(topic_tags),
                  "pattern for messages of this subscription (overrides the instance's)"),
    GD_OPT_STRING("measurement", NULL, 0, TO(measurement),
                  "measurement for messages of this subscription (json, value)"),
    GD_OPT_END,
};

#define CO(f) offsetof(struct mq_cfg, f)
static const struct gd_option mq_options[] = {
    GD_OPT_STRING("url", "mqtt://127.0.0.1:1883", 0, CO(url),
                  "broker: mqtt://host[:1883] or mqtts://host[:8883] (TLS)"),
    GD_OPT_STRING("client_id", NULL, 0, CO(client_id),
                  "client identifier; default gatherd-HOSTNAME-INSTANCE"),
    GD_OPT_STRING("username", NULL, 0, CO(username), "user name"),
    GD_OPT_STRING("password", NULL, GD_OF_SENSITIVE, CO(password), "password"),
    GD_OPT_STRING("tls_ca_file", NULL, 0, CO(tls_ca_file),
                  "PEM CA bundle to verify the broker (mqtts; default: the system's)"),
    GD_OPT_STRING("tls_ca_path", NULL, 0, CO(tls_ca_path), "directory of PEM CA certificates"),
    GD_OPT_STRING("tls_cert_file", NULL, 0, CO(tls_cert_file), "PEM client certificate"),
    GD_OPT_STRING("tls_key_file", NULL, 0, CO(tls_key_file), "PEM key of the client certificate"),
    GD_OPT_BOOL("tls_verify", "true", 0, CO(tls_verify),
                "verify the broker's certificate and host name"),
    GD_OPT_ENUM("protocol", "3.1.1", proto_names, 0, CO(protocol), "MQTT version: 3.1.1 or 5"),
    GD_OPT_DURATION("keepalive", "60s", 5, 65535, 0, CO(keepalive), "MQTT keepalive interval"),
    GD_OPT_BOOL("clean_session", "false", 0, CO(clean_session),
                "start a new session at each connect (false: the broker keeps the "
                "subscriptions and queues QoS 1/2 messages while we are away)"),
    GD_OPT_DURATION("session_expiry", "86400", 0, 4294967295.0, 0, CO(session_expiry),
                    "MQTT 5, clean_session = false: how long the broker keeps the session"),
    GD_OPT_DURATION("connect_timeout", "10s", 0.1, 3600, 0, CO(connect_timeout),
                    "give up a connect without CONNACK after this long"),
    GD_OPT_DURATION("reconnect_min", "1s", 0.01, 3600, 0, CO(reconnect_min),
                    "first reconnect delay; doubles after each failure"),
    GD_OPT_DURATION("reconnect_max", "30s", 0.01, 86400, 0, CO(reconnect_max),
                    "longest reconnect delay"),
    GD_OPT_LIST("topics", topic_options, struct mq_topic_cfg, GD_OF_REQUIRED, CO(topics),
                "subscriptions: ( { topic = \"a/+/b\"; qos = 1; }, ... )"),
    GD_OPT_ENUM("format", "line", format_names, 0, CO(format),
                "payload format: line (protocol), json, value"),
    GD_OPT_ENUM("precision", "ns", precision_names, 0, CO(precision),
                "line: unit of the timestamps in the payload"),
    GD_OPT_STRING("measurement", "mqtt", 0, CO(measurement), "json, value: measurement name"),
    GD_OPT_STRING("measurement_key", NULL, 0, CO(measurement_key),
                  "json: key whose string value names the measurement"),
    GD_OPT_STRLIST("tag_keys", 0, CO(tag_keys), "json: keys that become tags"),
    GD_OPT_STRLIST("field_keys", 0, CO(field_keys),
                   "json: keys that become fields (default: every number and boolean)"),
    GD_OPT_STRING("time_key", NULL, 0, CO(time_key),
                  "json: key holding the timestamp (default: receive time)"),
    GD_OPT_ENUM("time_format", "unix", mq_time_format_names, 0, CO(time_format),
                "json: unix, unix_ms, unix_us, unix_ns or rfc3339"),
    GD_OPT_STRING("value_field", "value", 0, CO(value_field), "value: field name"),
    GD_OPT_ENUM("value_type", "float", vtype_names, 0, CO(value_type),
                "value: float, int, bool or string"),
    GD_OPT_STRING("topic_tags", NULL, 0, CO(topic_tags),
                  "topic levels to tags: \"chambers/{device}/telemetry\" (+ skips a level)"),
    GD_OPT_STRING("topic_tag", NULL, 0, CO(topic_tag), "add the full topic as this tag"),
    GD_OPT_INT("max_payload_bytes", "1048576", 1, 268435455, 0, CO(max_payload_bytes),
               "larger payloads are dropped and counted"),
    GD_OPT_INT("max_batch_points", "5000", 1, 10000000, 0, CO(max_batch_points),
               "emit a batch once it holds this many points"),
    GD_OPT_END,
};

struct sub {
    const struct mq_topic_cfg *cfg;
    struct mq_pattern pat; /* n == 0: use the instance's */
    int mid;
};

enum conn_state {
    ST_IDLE = 0,     /* not connected, reconnect timer pending (or stopped) */
    ST_CONNECTING,   /* connect running on a worker */
    ST_WAIT_CONNACK, /* socket up, CONNECT sent */
    ST_CONNECTED,
};

struct mq {
    gd_instance *inst;
    const struct mq_cfg *cfg;
    struct mosquitto *mosq;
    char *client_id;
    char *host;
    int port;
    bool tls;
    char *url_safe; /* for log lines */
    struct sub *subs;
    size_t nsubs;
    struct mq_pattern pat;
    struct mq_json_map jmap;
    mosquitto_property *connect_props;

    enum conn_state state;
    bool running; /* between start() and stop() */
    bool paused;  /* not reading: backpressure */
    bool ever_connected;
    int fd;
    gd_watch *watch;
    int watch_events;
    gd_timer *tick;
    gd_timer *retry;
    double backoff_s;
    int64_t connack_deadline_ns;
    int connect_rc;  /* result of the worker's connect */
    int connect_err; /* its errno */

    gd_batch *pending; /* messages read, not yet emitted */
    bool emitted;      /* flush_pending() handed a batch over */
};

/* ---- helpers ------------------------------------------------------------ */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* mqtt://host[:port], mqtts://host[:port], tcp:// and ssl:// too; [v6]. */
static int parse_url(struct mq *s, const char *url)
{
    static const struct {
        const char *scheme;
        bool tls;
    } schemes[] = {{"mqtt://", false}, {"tcp://", false}, {"mqtts://", true}, {"ssl://", true}};
    const char *rest = NULL;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !rest; i++)
        if (strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme)) == 0) {
            rest = url + strlen(schemes[i].scheme);
            s->tls = schemes[i].tls;
        }
    if (!rest || !*rest)
        return GD_ECONFIG;
    const char *host = rest, *hend;
    if (*host == '[') {
        hend = strchr(host, ']');
        if (!hend)
            return GD_ECONFIG;
        host++;
        rest = hend + 1;
    } else {
        hend = host + strcspn(host, ":/");
        rest = hend;
    }
    if (hend == host)
        return GD_ECONFIG;
    s->port = s->tls ? 8883 : 1883;
    if (*rest == ':') {
        char *end;
        long p = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || p < 1 || p > 65535)
            return GD_ECONFIG;
        s->port = (int)p;
        rest = end;
    }
    if (*rest == '/')
        rest++;
    if (*rest)
        return GD_ECONFIG;
    s->host = strndup(host, (size_t)(hend - host));
    return s->host ? 0 : GD_ENOMEM;
}

/* ---- payloads ----------------------------------------------------------- */

static const struct mq_pattern *pattern_for(const struct mq *s, const char *topic,
                                            const char **measurement)
{
    *measurement = s->cfg->measurement;
    for (size_t i = 0; i < s->nsubs; i++) {
        bool match = false;
        mosquitto_topic_matches_sub(s->subs[i].cfg->topic, topic, &match);
        if (!match)
            continue;
        if (s->subs[i].cfg->measurement)
            *measurement = s->subs[i].cfg->measurement;
        return s->subs[i].pat.n ? &s->subs[i].pat : &s->pat;
    }
    return &s->pat;
}

static void drop_parse_error(struct mq *s, const char *topic, size_t n, const char *fmt_why)
{
    gd_count_drop(s->inst, "parse_error", n);
    gd_log_ratelimited(s->inst, GD_WARN, "mqtt: topic %s: malformed payload dropped: %s", topic,
                       fmt_why);
}

/* Line protocol: a bad line is skipped (and counted), the lines around it
 * are kept, as InfluxDB does with a partly bad write. */
static void parse_line(struct mq *s, const char *topic, const char *text, size_t len, int64_t now)
{
    size_t line_base = 0;
    while (len) {
        gd_lp_error err = {0};
        int rc = gd_lp_parse(s->pending, text, len, precisions[s->cfg->precision], now, NULL, &err);
        if (rc == 0)
            return;
        if (rc != GD_EPARSE) {
            gd_count_drop(s->inst, "out_of_memory", 1);
            return;
        }
        char why[192];
        snprintf(why, sizeof(why), "line %zu column %zu: %s", line_base + err.line, err.column,
                 err.reason ? err.reason : "malformed");
        drop_parse_error(s, topic, 1, why);
        const char *nl =
            err.offset < len ? memchr(text + err.offset, '\n', len - err.offset) : NULL;
        if (!nl)
            return;
        line_base += err.line;
        len -= (size_t)(nl + 1 - text);
        text = nl + 1;
    }
}

static void parse_json(struct mq *s, const char *topic, const char *text, size_t len,
                       const char *measurement, int64_t now)
{
    struct mq_json_result r;
    struct mq_json_map m = s->jmap;
    m.measurement = measurement;
    int rc = mq_json_map(s->pending, text, len, &m, now, &r);
    if (rc == GD_ENOMEM) {
        gd_count_drop(s->inst, "out_of_memory", 1);
        return;
    }
    if (rc == GD_EPARSE) {
        drop_parse_error(s, topic, 1, r.why);
        return;
    }
    if (r.bad)
        drop_parse_error(s, topic, r.bad, r.why);
}

static void parse_value(struct mq *s, const char *topic, const char *text, size_t len,
                        const char *measurement, int64_t now)
{
    while (len && isspace((unsigned char)*text)) {
        text++;
        len--;
    }
    while (len && isspace((unsigned char)text[len - 1]))
        len--;
    char buf[128];
    if (s->cfg->value_type != MQ_V_STRING) {
        if (!len || len >= sizeof(buf)) {
            drop_parse_error(s, topic, 1, len ? "value too long" : "empty payload");
            return;
        }
        memcpy(buf, text, len);
        buf[len] = '\0';
    }
    gd_point *p = gd_batch_add(s->pending, measurement, now);
    if (!p) {
        gd_count_drop(s->inst, "out_of_memory", 1);
        return;
    }
    const char *key = s->cfg->value_field;
    char *end = NULL;
    int rc = GD_EPARSE;
    const char *why = "not a number";
    switch (s->cfg->value_type) {
    case MQ_V_FLOAT: {
        double v = strtod(buf, &end);
        if (!*end)
            rc = gd_point_f64(p, key, v);
        why = rc == GD_ERANGE ? "not a finite number" : "not a number";
        break;
    }
    case MQ_V_INT: {
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (!*end && errno == 0)
            rc = gd_point_i64(p, key, v);
        why = "not an integer";
        break;
    }
    case MQ_V_BOOL:
        why = "not a boolean (true, false, 1, 0, on, off)";
        if (!strcasecmp(buf, "true") || !strcmp(buf, "1") || !strcasecmp(buf, "on"))
            rc = gd_point_bool(p, key, true);
        else if (!strcasecmp(buf, "false") || !strcmp(buf, "0") || !strcasecmp(buf, "off"))
            rc = gd_point_bool(p, key, false);
        break;
    default:
        rc = gd_point_str_n(p, key, text, len);
        break;
    }
    if (rc < 0) {
        gd_batch_drop_last(s->pending);
        if (rc == GD_ENOMEM)
            gd_count_drop(s->inst, "out_of_memory", 1);
        else
            drop_parse_error(s, topic, 1, why);
    }
}

static void flush_pending(struct mq *s)
{
    if (!s->pending || gd_batch_len(s->pending) == 0)
        return;
    gd_batch *b = s->pending;
    s->pending = NULL;
    s->emitted = true;
    int rc = gd_emit(s->inst, b);
    if (rc < 0 && rc != GD_ESHUTDOWN)
        gd_log_ratelimited(s->inst, GD_WARN, "mqtt: emit: %s", gd_strerror(rc));
}

static void on_message(struct mosquitto *mosq, void *ctx, const struct mosquitto_message *msg)
{
    (void)mosq;
    struct mq *s = ctx;
    if (msg->payloadlen > s->cfg->max_payload_bytes) {
        gd_count_drop(s->inst, "payload_too_large", 1);
        gd_log_ratelimited(s->inst, GD_WARN,
                           "mqtt: topic %s: payload of %d bytes dropped (max_payload_bytes %lld)",
                           msg->topic, msg->payloadlen, (long long)s->cfg->max_payload_bytes);
        return;
    }
    if (!s->pending && !(s->pending = gd_batch_new(64))) {
        gd_count_drop(s->inst, "out_of_memory", 1);
        return;
    }
    const char *text = msg->payload ? msg->payload : "";
    size_t len = (size_t)msg->payloadlen;
    int64_t now = gd_now_ns();
    size_t from = gd_batch_len(s->pending);
    const char *measurement;
    const struct mq_pattern *pat = pattern_for(s, msg->topic, &measurement);
    switch (s->cfg->format) {
    case MQ_FMT_LINE:
        parse_line(s, msg->topic, text, len, now);
        break;
    case MQ_FMT_JSON:
        parse_json(s, msg->topic, text, len, measurement, now);
        break;
    default:
        parse_value(s, msg->topic, text, len, measurement, now);
        break;
    }
    if (pat->n)
        mq_pattern_apply(pat, msg->topic, s->pending, from);
    if (s->cfg->topic_tag)
        for (size_t k = from; k < gd_batch_len(s->pending); k++)
            gd_point_tag((gd_point *)gd_batch_point(s->pending, k), s->cfg->topic_tag, msg->topic);
    /* Emitting here is still before the acknowledgements are written. */
    if (gd_batch_len(s->pending) >= (size_t)s->cfg->max_batch_points)
        flush_pending(s);
}

/* ---- connection ------------------------------------------------------- */

static void on_connect(struct mosquitto *mosq, void *ctx, int rc, int flags)
{
    struct mq *s = ctx;
    if (rc != 0) {
        gd_count_error(s->inst);
        gd_log_ratelimited(s->inst, GD_ERROR, "mqtt: %s refused the connection: %s%s", s->url_safe,
                           s->cfg->protocol == MQ_P_5 ? mosquitto_reason_string(rc)
                                                      : mosquitto_connack_string(rc),
                           s->cfg->username ? " (check username and password)" : "");
        return;
    }
    s->state = ST_CONNECTED;
    s->backoff_s = 0;
    gd_log(s->inst, GD_INFO, "mqtt: connected to %s as %s (session present: %s)", s->url_safe,
           s->client_id, (flags & 1) ? "yes" : "no");
    s->ever_connected = true;
    for (size_t i = 0; i < s->nsubs; i++) {
        int src = mosquitto_subscribe(mosq, &s->subs[i].mid, s->subs[i].cfg->topic,
                                      (int)s->subs[i].cfg->qos);
        if (src != MOSQ_ERR_SUCCESS)
            gd_log(s->inst, GD_ERROR, "mqtt: subscribe %s: %s", s->subs[i].cfg->topic,
                   mosquitto_strerror(src));
    }
}

static void on_subscribe(struct mosquitto *mosq, void *ctx, int mid, int n, const int *granted)
{
    (void)mosq;
    struct mq *s = ctx;
    for (size_t i = 0; i < s->nsubs; i++) {
        if (s->subs[i].mid != mid)
            continue;
        if (n < 1 || granted[0] >= 0x80) {
            gd_count_error(s->inst);
            gd_log(s->inst, GD_ERROR, "mqtt: the broker refused the subscription to %s",
                   s->subs[i].cfg->topic);
        } else if (granted[0] < s->subs[i].cfg->qos) {
            gd_log(s->inst, GD_WARN, "mqtt: subscription to %s granted with QoS %d, not %d",
                   s->subs[i].cfg->topic, granted[0], (int)s->subs[i].cfg->qos);
        } else {
            gd_log(s->inst, GD_DEBUG, "mqtt: subscribed to %s (QoS %d)", s->subs[i].cfg->topic,
                   granted[0]);
        }
    }
}

static void on_disconnect(struct mosquitto *mosq, void *ctx, int rc)
{
    (void)mosq;
    struct mq *s = ctx;
    if (rc != 0 && s->running && s->state == ST_CONNECTED)
        gd_log_ratelimited(s->inst, GD_WARN, "mqtt: connection to %s lost: %s", s->url_safe,
                           mosquitto_strerror(rc));
}

static void start_connect(struct mq *s);
static void service(struct mq *s, int revents);

/* Close an open connection politely: in threaded mode mosquitto_disconnect()
 * only queues the DISCONNECT (after any acknowledgements still queued);
 * writing it out closes the socket. The socket is non-blocking: if the
 * write cannot finish, the next connect (or destroy) closes it. */
static void close_conn(struct mq *s)
{
    if (mosquitto_socket(s->mosq) < 0)
        return;
    mosquitto_disconnect(s->mosq);
    for (int i = 0; i < 8 && mosquitto_socket(s->mosq) >= 0 && mosquitto_want_write(s->mosq); i++)
        if (mosquitto_loop_write(s->mosq, 1) != MOSQ_ERR_SUCCESS)
            break;
}

static void retry_fire(void *ctx)
{
    struct mq *s = ctx;
    s->retry = NULL;
    if (s->running && s->state == ST_IDLE)
        start_connect(s);
}

/* The connection is gone (or never came up): close it and try again after
 * an exponential backoff. */
static void connection_lost(struct mq *s)
{
    flush_pending(s);
    gd_fd_unwatch(s->watch);
    s->watch = NULL;
    s->watch_events = 0;
    s->fd = -1;
    s->paused = false;
    close_conn(s);
    s->state = ST_IDLE;
    if (!s->running)
        return;
    double min = s->cfg->reconnect_min, max = s->cfg->reconnect_max;
    s->backoff_s = s->backoff_s <= 0 ? min : fmin(s->backoff_s * 2, max);
    if (s->backoff_s > max)
        s->backoff_s = max;
    gd_log(s->inst, GD_DEBUG, "mqtt: reconnecting in %.2f s", s->backoff_s);
    int rc =
        gd_timer_start(s->inst, (uint64_t)(s->backoff_s * 1000), 0, retry_fire, s, NULL, &s->retry);
    if (rc < 0)
        gd_log(s->inst, GD_ERROR, "mqtt: cannot arm the reconnect timer: %s", gd_strerror(rc));
}

static void watch_cb(void *ctx, int fd, int revents)
{
    (void)fd;
    service(ctx, revents);
}

static void connect_work(void *ctx)
{
    struct mq *s = ctx;
    errno = 0;
    /* MQTT 3.1.1: resolve here, connect without blocking (connect_timeout
     * then bounds the TCP and TLS handshakes too). MQTT 5 needs the CONNECT
     * properties, which libmosquitto 2.0 takes only in a blocking connect. */
    if (s->cfg->protocol == MQ_P_5)
        s->connect_rc = mosquitto_connect_bind_v5(s->mosq, s->host, s->port, (int)s->cfg->keepalive,
                                                  NULL, s->connect_props);
    else
        s->connect_rc =
            mosquitto_connect_bind_async(s->mosq, s->host, s->port, (int)s->cfg->keepalive, NULL);
    s->connect_err = errno;
}

static void connect_after(void *ctx, int status)
{
    struct mq *s = ctx;
    s->state = ST_IDLE;
    if (status < 0 || !s->running) {
        close_conn(s);
        return;
    }
    if (s->connect_rc != MOSQ_ERR_SUCCESS) {
        gd_count_error(s->inst);
        gd_log_ratelimited(s->inst, s->ever_connected ? GD_WARN : GD_ERROR,
                           "mqtt: cannot connect to %s: %s", s->url_safe,
                           s->connect_rc == MOSQ_ERR_ERRNO ? strerror(s->connect_err)
                                                           : mosquitto_strerror(s->connect_rc));
        connection_lost(s);
        return;
    }
    s->fd = mosquitto_socket(s->mosq);
    int fl = fcntl(s->fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(s->fd, F_SETFL, fl | O_NONBLOCK);
    s->state = ST_WAIT_CONNACK;
    s->connack_deadline_ns = mono_ns() + (int64_t)(s->cfg->connect_timeout * 1e9);
    int rc = gd_fd_watch(s->inst, s->fd, GD_READABLE | GD_WRITABLE, watch_cb, s, NULL, &s->watch);
    if (rc < 0) {
        gd_log(s->inst, GD_ERROR, "mqtt: cannot watch the socket: %s", gd_strerror(rc));
        connection_lost(s);
        return;
    }
    s->watch_events = GD_READABLE | GD_WRITABLE;
    service(s, GD_WRITABLE); /* send the CONNECT */
}

static void start_connect(struct mq *s)
{
    s->state = ST_CONNECTING;
    int rc = gd_work_queue(s->inst, connect_work, connect_after, s, NULL);
    if (rc < 0) {
        s->state = ST_IDLE;
        gd_log(s->inst, GD_ERROR, "mqtt: cannot queue the connect: %s", gd_strerror(rc));
        connection_lost(s);
    }
}

/* Bytes waiting on the socket, so a burst is read into one batch. TLS
 * records buffered in the library are drained by mosquitto_loop_read. */
static bool more_to_read(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/* Stop reading the socket while an output queue is full: nothing more is
 * acknowledged, the broker keeps the messages. tick() resumes. */
static void pause_reading(struct mq *s)
{
    s->paused = true;
    gd_log_ratelimited(s->inst, GD_INFO, "mqtt: an output is full: not reading from %s",
                       s->url_safe);
}

/* Drive the client: read a burst, emit it, then write (acknowledgements
 * included), and keep the watch in step with what the client wants. */
static void service(struct mq *s, int revents)
{
    if (s->state != ST_WAIT_CONNACK && s->state != ST_CONNECTED)
        return;
    int rc = MOSQ_ERR_SUCCESS;
    if (!s->paused && s->state == ST_CONNECTED && gd_backpressure(s->inst))
        pause_reading(s);
    if ((revents & GD_READABLE) && !s->paused) {
        for (int i = 0; i < READ_BUDGET && rc == MOSQ_ERR_SUCCESS; i++) {
            s->emitted = false;
            rc = mosquitto_loop_read(s->mosq, 1);
            if (mosquitto_socket(s->mosq) != s->fd || !more_to_read(s->fd))
                break;
            /* A batch went out mid-burst (max_batch_points): stop reading
             * if it filled a queue. */
            if (s->emitted && gd_backpressure(s->inst)) {
                pause_reading(s);
                break;
            }
        }
    }
    flush_pending(s);
    if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(s->mosq) == s->fd &&
        mosquitto_want_write(s->mosq))
        rc = mosquitto_loop_write(s->mosq, 1);
    if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(s->mosq) != s->fd) {
        if (s->state == ST_WAIT_CONNACK && rc != MOSQ_ERR_CONN_REFUSED) {
            gd_count_error(s->inst);
            gd_log_ratelimited(s->inst, s->ever_connected ? GD_WARN : GD_ERROR,
                               "mqtt: cannot connect to %s: %s", s->url_safe,
                               mosquitto_strerror(rc ? rc : MOSQ_ERR_CONN_LOST));
        }
        connection_lost(s);
        return;
    }
    int want = (s->paused ? 0 : GD_READABLE) | (mosquitto_want_write(s->mosq) ? GD_WRITABLE : 0);
    if (want != s->watch_events && gd_fd_watch_update(s->watch, want) == 0)
        s->watch_events = want;
}

static void tick(void *ctx)
{
    struct mq *s = ctx;
    if (s->state == ST_WAIT_CONNACK && mono_ns() > s->connack_deadline_ns) {
        gd_count_error(s->inst);
        gd_log_ratelimited(s->inst, GD_WARN, "mqtt: no CONNACK from %s within %g s", s->url_safe,
                           s->cfg->connect_timeout);
        connection_lost(s);
        return;
    }
    if (s->state != ST_WAIT_CONNACK && s->state != ST_CONNECTED)
        return;
    if (s->paused && !gd_backpressure(s->inst)) {
        s->paused = false;
        gd_log_ratelimited(s->inst, GD_INFO, "mqtt: outputs drained: reading from %s again",
                           s->url_safe);
        service(s, GD_READABLE);
        if (s->state != ST_CONNECTED)
            return;
    }
    mosquitto_loop_misc(s->mosq);
    service(s, 0);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void mq_destroy(void *state)
{
    struct mq *s = state;
    if (!s)
        return;
    gd_batch_unref(s->pending);
    if (s->mosq)
        mosquitto_destroy(s->mosq);
    mosquitto_lib_cleanup();
    for (size_t i = 0; i < s->nsubs; i++)
        mq_pattern_free(&s->subs[i].pat);
    free(s->subs);
    mq_pattern_free(&s->pat);
    mosquitto_property_free_all(&s->connect_props);
    free(s->client_id);
    free(s->host);
    free(s->url_safe);
    free(s);
}

static int setup_tls(struct mq *s)
{
    const struct mq_cfg *c = s->cfg;
    int rc = MOSQ_ERR_SUCCESS;
    /* libmosquitto 2.0 wants a CA file or path for mosquitto_tls_set();
     * without one, the system's store turns TLS on by itself. */
    if (!c->tls_ca_file && !c->tls_ca_path)
        rc = mosquitto_int_option(s->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
    else
        rc = mosquitto_tls_set(s->mosq, c->tls_ca_file, c->tls_ca_path, c->tls_cert_file,
                               c->tls_key_file, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        gd_log(s->inst, GD_ERROR, "mqtt: TLS setup (CA %s, cert %s, key %s): %s",
               c->tls_ca_file   ? c->tls_ca_file
               : c->tls_ca_path ? c->tls_ca_path
                                : "system",
               c->tls_cert_file ? c->tls_cert_file : "none",
               c->tls_key_file ? c->tls_key_file : "none", mosquitto_strerror(rc));
        return GD_ECONFIG;
    }
    if (!c->tls_verify) {
        gd_log(s->inst, GD_WARN, "mqtt: tls_verify = false: the broker is not authenticated");
        mosquitto_tls_insecure_set(s->mosq, true);
        mosquitto_tls_opts_set(s->mosq, 0, NULL, NULL);
    }
    return 0;
}

static int check_config(struct mq *s)
{
    const struct mq_cfg *c = s->cfg;
    const char *why = NULL;
    if (parse_url(s, c->url) < 0) {
        /* A URL with user info may hold a password: not logged. */
        gd_log(s->inst, GD_ERROR,
               "mqtt: url %s: expected mqtt://host[:port] or mqtts://host[:port] "
               "(credentials go in username and password)",
               strchr(c->url, '@') ? "(not shown)" : c->url);
        return GD_ECONFIG;
    }
    if (c->password && !c->username) {
        gd_log(s->inst, GD_ERROR, "mqtt: password without username");
        return GD_ECONFIG;
    }
    if ((c->tls_cert_file != NULL) != (c->tls_key_file != NULL)) {
        gd_log(s->inst, GD_ERROR, "mqtt: set both tls_cert_file and tls_key_file, or neither");
        return GD_ECONFIG;
    }
    if (c->tls_cert_file && !c->tls_ca_file && !c->tls_ca_path) {
        gd_log(s->inst, GD_ERROR,
               "mqtt: a client certificate needs tls_ca_file or tls_ca_path "
               "(the CA that signed the broker's certificate)");
        return GD_ECONFIG;
    }
    if (c->reconnect_max < c->reconnect_min) {
        gd_log(s->inst, GD_ERROR, "mqtt: reconnect_max is below reconnect_min");
        return GD_ECONFIG;
    }
    if (c->topics.n == 0) {
        gd_log(s->inst, GD_ERROR, "mqtt: topics: at least one subscription is needed");
        return GD_ECONFIG;
    }
    if (!c->measurement || !c->measurement[0] || !c->value_field || !c->value_field[0]) {
        gd_log(s->inst, GD_ERROR, "mqtt: measurement and value_field must not be empty");
        return GD_ECONFIG;
    }
    if (c->topic_tags && mq_pattern_compile(&s->pat, c->topic_tags, &why) < 0) {
        gd_log(s->inst, GD_ERROR, "mqtt: topic_tags \"%s\": %s", c->topic_tags,
               why ? why : "out of memory");
        return GD_ECONFIG;
    }
    s->subs = calloc(c->topics.n, sizeof(*s->subs));
    if (!s->subs)
        return GD_ENOMEM;
    s->nsubs = c->topics.n;
    const struct mq_topic_cfg *t = c->topics.items;
    for (size_t i = 0; i < c->topics.n; i++) {
        s->subs[i].cfg = &t[i];
        if (mosquitto_sub_topic_check(t[i].topic) != MOSQ_ERR_SUCCESS) {
            gd_log(s->inst, GD_ERROR, "mqtt: topics: \"%s\" is not a valid topic filter",
                   t[i].topic);
            return GD_ECONFIG;
        }
        if (t[i].topic_tags && mq_pattern_compile(&s->subs[i].pat, t[i].topic_tags, &why) < 0) {
            gd_log(s->inst, GD_ERROR, "mqtt: topics: %s: topic_tags \"%s\": %s", t[i].topic,
                   t[i].topic_tags, why ? why : "out of memory");
            return GD_ECONFIG;
        }
        if (t[i].measurement && !t[i].measurement[0]) {
            gd_log(s->inst, GD_ERROR, "mqtt: topics: %s: empty measurement", t[i].topic);
            return GD_ECONFIG;
        }
    }
    return 0;
}

static int mq_init(gd_instance *inst, void *cfg, void **state)
{
    struct mq *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    mosquitto_lib_init();
    s->inst = inst;
    s->cfg = cfg;
    s->fd = -1;
    const struct mq_cfg *c = cfg;
    int rc = check_config(s);
    if (rc < 0)
        goto out_destroy;
    s->jmap = (struct mq_json_map){
        .measurement = c->measurement,
        .measurement_key = c->measurement_key,
        .tag_keys = c->tag_keys.v,
        .n_tag_keys = c->tag_keys.n,
        .field_keys = c->field_keys.v,
        .n_field_keys = c->field_keys.n,
        .time_key = c->time_key,
        .time_format = c->time_format,
    };
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    gd_buf id = {0};
    if (c->client_id)
        rc = gd_buf_puts(&id, c->client_id);
    else
        rc = gd_buf_printf(&id, "gatherd-%s-%s", host, gd_instance_name(inst));
    if (rc < 0)
        goto out_destroy;
    s->client_id = id.data;
    gd_buf u = {0};
    if (gd_buf_printf(&u, "%s://%s:%d", s->tls ? "mqtts" : "mqtt", s->host, s->port) < 0) {
        rc = GD_ENOMEM;
        goto out_destroy;
    }
    s->url_safe = u.data;

    s->mosq = mosquitto_new(s->client_id, c->clean_session, s);
    if (!s->mosq) {
        rc = errno == EINVAL ? GD_ECONFIG : GD_ENOMEM;
        gd_log(inst, GD_ERROR, "mqtt: cannot create the client: %s", strerror(errno));
        goto out_destroy;
    }
    /* Queued packets (acknowledgements) are written only by our
     * mosquitto_loop_write(), after the batch is handed over. */
    mosquitto_threaded_set(s->mosq, true);
    if (c->protocol == MQ_P_5) {
        mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
        if (!c->clean_session &&
            mosquitto_property_add_int32(&s->connect_props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                         (uint32_t)c->session_expiry) != MOSQ_ERR_SUCCESS) {
            rc = GD_ENOMEM;
            goto out_destroy;
        }
    } else {
        mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    }
    if (c->username && mosquitto_username_pw_set(s->mosq, c->username, c->password) != 0) {
        rc = GD_ENOMEM;
        goto out_destroy;
    }
    if ((s->tls || c->tls_ca_file || c->tls_ca_path) && (rc = setup_tls(s)) < 0)
        goto out_destroy;
    mosquitto_connect_with_flags_callback_set(s->mosq, on_connect);
    mosquitto_disconnect_callback_set(s->mosq, on_disconnect);
    mosquitto_subscribe_callback_set(s->mosq, on_subscribe);
    mosquitto_message_callback_set(s->mosq, on_message);
    *state = s;
    return 0;

out_destroy:
    mq_destroy(s);
    return rc;
}

static int mq_start(void *state)
{
    struct mq *s = state;
    s->running = true;
    int rc = gd_timer_start(s->inst, TICK_MS, TICK_MS, tick, s, NULL, &s->tick);
    if (rc < 0) {
        s->running = false;
        return rc;
    }
    start_connect(s);
    return 0;
}

static void mq_stop(void *state)
{
    struct mq *s = state;
    s->running = false;
    gd_timer_stop(s->tick);
    s->tick = NULL;
    gd_timer_stop(s->retry);
    s->retry = NULL;
    flush_pending(s);
    if (s->state == ST_CONNECTED || s->state == ST_WAIT_CONNACK) {
        /* Acknowledge what was emitted, then say goodbye. */
        close_conn(s);
        gd_fd_unwatch(s->watch);
        s->watch = NULL;
        s->state = ST_IDLE;
    }
    /* ST_CONNECTING: connect_after() sees !running and closes. */
}

static const struct gd_input_ops mq_ops = {
    .struct_size = sizeof(struct gd_input_ops),
    .init = mq_init,
    .destroy = mq_destroy,
    .start = mq_start,
    .stop = mq_stop,
};

static const struct gd_plugin mq_plugin = {
    GD_PLUGIN_ABI,
    .name = "mqtt",
    .version = "1.0.0",
    .kind = GD_KIND_INPUT,
    .summary = "subscribe to MQTT topics (line protocol, JSON or plain values)",
    .options = mq_options,
    .config_size = sizeof(struct mq_cfg),
    .ops = &mq_ops,
};

GD_PLUGIN_ENTRY
{
    return &mq_plugin;
}
