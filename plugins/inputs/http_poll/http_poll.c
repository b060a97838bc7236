/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_poll.c - poll devices' JSON status endpoints over HTTP(S) and map the
 * responses to points (hp_map.c).
 *
 * One libcurl multi handle per instance drives the requests of every device
 * due in a collect, at most max_concurrency at once; collect() returns when
 * each has answered or timed out. Every device keeps its easy handle, and
 * the multi handle's connection pool keeps connections open between polls
 * (keep-alive).
 *
 * Points reach the core through gd_emit(): those of devices that answered
 * while others are still pending are emitted after EARLY_EMIT_NS, so a slow
 * device holds back only its own points.
 */
#include "hp_map.h"
#include <curl/curl.h>
#include <gatherd/gatherd.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S  1000000000LL
#define NS_PER_MS 1000000LL
/* Points of answered devices wait at most this long for the others. */
#define EARLY_EMIT_NS (200 * NS_PER_MS)
/* Longest single wait in curl_multi_poll() (curl's own timers cut it). */
#define POLL_WAIT_MS 1000
/* A response buffer larger than this is freed before the next poll. */
#define KEEP_BODY_BYTES (256 * 1024)
/* Bytes of a response body quoted in a log line. */
#define LOG_BODY_BYTES 120

enum method { M_GET = 0, M_POST, M_PUT };
static const char *const method_choices[] = {"GET", "POST", "PUT", NULL};

/* The mapping options, shared by devices and profiles. */
struct hp_mapping_cfg {
    char *measurement;
    gd_kvlist tags;
    gd_list fields;       /* struct hp_field_cfg */
    gd_list tag_pointers; /* struct hp_tag_cfg */
    char *points;
    char *time_pointer;
    int time_format; /* enum hp_time_format */
    bool time_root;
};

struct hp_profile_cfg {
    char *name;
    struct hp_mapping_cfg map;
};

struct hp_device_cfg {
    char *name;
    char *url;
    int method; /* enum method */
    gd_kvlist headers;
    char *body;
    char *username;
    char *password;
    char *bearer_token;
    double timeout;
    double interval;
    char *tls_ca_file;
    char *tls_cert_file;
    char *tls_key_file;
    bool tls_verify;
    char *profile;
    struct hp_mapping_cfg map;
};

struct hp_cfg {
    gd_list devices;  /* struct hp_device_cfg */
    gd_list profiles; /* struct hp_profile_cfg */
    int64_t max_concurrency;
    int64_t max_response_bytes;
    char *measurement;
    char *device_tag;
    char *user_agent;
};

#define FO(f) offsetof(struct hp_field_cfg, f)
static const struct gd_option field_options[] = {
    GD_OPT_STRING("name", NULL, GD_OF_REQUIRED, FO(name), "field key"),
    GD_OPT_STRING("pointer", NULL, GD_OF_REQUIRED, FO(pointer),
                  "RFC 6901 JSON pointer to the value, e.g. \"/sensors/0/value\""),
    GD_OPT_ENUM("type", "float", hp_type_names, 0, FO(type), "field type"),
    GD_OPT_DOUBLE("scale", "1", 0, 0, 0, FO(scale), "numeric types: value * scale + offset"),
    GD_OPT_DOUBLE("offset", "0", 0, 0, 0, FO(offset), "numeric types: added after scale"),
    GD_OPT_BOOL("required", "false", 0, FO(required),
                "missing or of a wrong type: drop the point (otherwise skip the field)"),
    GD_OPT_BOOL("root", "false", 0, FO(root),
                "with points: the pointer is into the whole document, not the item"),
    GD_OPT_END,
};
#undef FO

#define TO(f) offsetof(struct hp_tag_cfg, f)
static const struct gd_option tag_pointer_options[] = {
    GD_OPT_STRING("name", NULL, GD_OF_REQUIRED, TO(name), "tag key"),
    GD_OPT_STRING("pointer", NULL, GD_OF_REQUIRED, TO(pointer), "RFC 6901 JSON pointer"),
    GD_OPT_BOOL("root", "false", 0, TO(root),
                "with points: the pointer is into the whole document, not the item"),
    GD_OPT_END,
};
#undef TO

/* The mapping options of struct @T (a device or a profile). */
#define MAPPING_OPTIONS(T)                                                                         \
    GD_OPT_STRING("measurement", NULL, 0, offsetof(T, map.measurement),                            \
                  "measurement name (default: the instance's measurement)"),                       \
        GD_OPT_KV("tags", 0, offsetof(T, map.tags), "static tags of every point"),                 \
        GD_OPT_LIST("fields", field_options, struct hp_field_cfg, 0, offsetof(T, map.fields),      \
                    "fields: ( { name; pointer; type; scale; offset; required; root } )"),         \
        GD_OPT_LIST("tag_pointers", tag_pointer_options, struct hp_tag_cfg, 0,                     \
                    offsetof(T, map.tag_pointers), "tags read from the document"),                 \
        GD_OPT_STRING("points", NULL, 0, offsetof(T, map.points),                                  \
                      "pointer to an array of readings: one point per item"),                      \
        GD_OPT_STRING("time_pointer", NULL, 0, offsetof(T, map.time_pointer),                      \
                      "pointer to the timestamp (default: the poll time)"),                        \
        GD_OPT_ENUM("time_format", "auto", hp_time_format_names, 0, offsetof(T, map.time_format),  \
                    "format of the timestamp at time_pointer"),                                    \
        GD_OPT_BOOL("time_root", "false", 0, offsetof(T, map.time_root),                           \
                    "with points: time_pointer is into the whole document")

static const struct gd_option profile_options[] = {
    GD_OPT_STRING("name", NULL, GD_OF_REQUIRED, offsetof(struct hp_profile_cfg, name),
                  "profile name, referred to by a device's profile option"),
    MAPPING_OPTIONS(struct hp_profile_cfg),
    GD_OPT_END,
};

#define DO(f) offsetof(struct hp_device_cfg, f)
static const struct gd_option device_options[] = {
    GD_OPT_STRING("name", NULL, GD_OF_REQUIRED, DO(name), "device name (tag and log lines)"),
    GD_OPT_STRING("url", NULL, GD_OF_REQUIRED, DO(url), "http:// or https:// URL to poll"),
    GD_OPT_ENUM("method", "GET", method_choices, 0, DO(method), "HTTP method"),
    GD_OPT_KV("headers", GD_OF_SENSITIVE, DO(headers), "extra request headers (redacted in logs)"),
    GD_OPT_STRING("body", NULL, 0, DO(body), "request body (POST, PUT)"),
    GD_OPT_STRING("username", NULL, 0, DO(username), "basic auth user"),
    GD_OPT_STRING("password", NULL, GD_OF_SENSITIVE, DO(password), "basic auth password"),
    GD_OPT_STRING("bearer_token", NULL, GD_OF_SENSITIVE, DO(bearer_token),
                  "sent as Authorization: Bearer TOKEN"),
    GD_OPT_DURATION("timeout", "5s", 0.01, 3600, 0, DO(timeout),
                    "whole-request timeout (connect, send, response)"),
    GD_OPT_DURATION("interval", "0", 0, 86400, 0, DO(interval),
                    "poll this device every interval (0: every collect of the instance)"),
    GD_OPT_STRING("tls_ca_file", NULL, 0, DO(tls_ca_file), "PEM CA bundle (default: the system's)"),
    GD_OPT_STRING("tls_cert_file", NULL, 0, DO(tls_cert_file), "PEM client certificate"),
    GD_OPT_STRING("tls_key_file", NULL, 0, DO(tls_key_file), "PEM key of the client certificate"),
    GD_OPT_BOOL("tls_verify", "true", 0, DO(tls_verify),
                "verify the server's certificate and host name"),
    GD_OPT_STRING("profile", NULL, 0, DO(profile), "use the mapping of this profile"),
    MAPPING_OPTIONS(struct hp_device_cfg),
    GD_OPT_END,
};
#undef DO

#define CO(f) offsetof(struct hp_cfg, f)
static const struct gd_option hp_options[] = {
    GD_OPT_LIST("devices", device_options, struct hp_device_cfg, GD_OF_REQUIRED, CO(devices),
                "the devices to poll"),
    GD_OPT_LIST("profiles", profile_options, struct hp_profile_cfg, 0, CO(profiles),
                "named mappings shared by devices"),
    GD_OPT_INT("max_concurrency", "16", 1, 10000, 0, CO(max_concurrency),
               "requests in flight at once"),
    GD_OPT_INT("max_response_bytes", "1048576", 64, 1073741824, 0, CO(max_response_bytes),
               "larger responses are aborted and counted as errors"),
    GD_OPT_STRING("measurement", "http", 0, CO(measurement), "default measurement name"),
    GD_OPT_STRING("device_tag", "device", 0, CO(device_tag),
                  "tag carrying the device name (\"\": none)"),
    GD_OPT_STRING("user_agent", NULL, 0, CO(user_agent),
                  "User-Agent header (default: gatherd/VERSION)"),
    GD_OPT_END,
};
#undef CO

struct hp;

struct device {
    struct hp *s;
    const struct hp_device_cfg *cfg;
    CURL *easy;
    struct curl_slist *headers;
    char *shown_url; /* without user:password@ */
    hp_map map;
    gd_buf body;
    bool too_large;
    bool added; /* in the multi handle */
    int64_t every_ns;
    int64_t next_due_ns;
    unsigned failures; /* consecutive failed polls */
    char errbuf[CURL_ERROR_SIZE];
};

struct hp {
    gd_instance *inst;
    const struct hp_cfg *cfg;
    CURLM *multi;
    struct device *dev;
    size_t ndev;
    size_t *due; /* device indexes due in this collect */
    char *user_agent;
    bool curl_ready;
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

static bool is_set(const char *s)
{
    return s && s[0];
}

static bool is_line_safe(const char *s)
{
    return !strpbrk(s, "\r\n");
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct device *d = ctx;
    size_t n = size * nmemb;
    if (d->body.len + n > (size_t)d->s->cfg->max_response_bytes) {
        d->too_large = true;
        return 0; /* aborts the transfer */
    }
    return gd_buf_append(&d->body, data, n) == 0 ? n : 0;
}

/* ---- one poll ---------------------------------------------------------- */

/* Count a failed poll of @d; each call site logs it with its own format,
 * so each kind of failure has its own rate limit. */
static void failed(struct device *d)
{
    d->failures++;
    gd_count_error(d->s->inst);
}

/* The start of the response body on one line, for a log line. */
static const char *body_excerpt(struct device *d, char *buf, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < d->body.len && k + 4 < n && i < LOG_BODY_BYTES; i++) {
        unsigned char c = (unsigned char)d->body.data[i];
        buf[k++] = c < ' ' || c == 0x7f ? ' ' : (char)c;
    }
    if (d->body.len > LOG_BODY_BYTES && k + 4 < n) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return k ? buf : "(empty body)";
}

/* Map a 2xx response of @d into *@acc (made when first needed). */
static void take_response(struct device *d, gd_batch **acc)
{
    struct hp *s = d->s;
    json_error_t je;
    char ex[LOG_BODY_BYTES + 8];
    json_t *doc = json_loadb(d->body.data ? d->body.data : "", d->body.len, JSON_DECODE_ANY, &je);
    if (!doc) {
        failed(d);
        gd_log_ratelimited(s->inst, GD_WARN,
                           "http_poll: device %s (%s): response is not JSON (line %d column %d: "
                           "%s): %s",
                           d->cfg->name, d->shown_url, je.line, je.column, je.text,
                           body_excerpt(d, ex, sizeof(ex)));
        return;
    }
    if (!*acc && !(*acc = gd_batch_new(16))) {
        json_decref(doc);
        failed(d);
        gd_log_ratelimited(s->inst, GD_ERROR, "http_poll: device %s (%s): out of memory",
                           d->cfg->name, d->shown_url);
        return;
    }
    struct hp_stats st;
    int rc = hp_map_apply(&d->map, doc, gd_now_ns(), *acc, &st);
    json_decref(doc);
    for (int r = 0; r < HP_NDROP; r++)
        if (st.dropped[r])
            gd_count_drop(s->inst, hp_drop_names[r], st.dropped[r]);
    if (rc < 0) {
        failed(d);
        gd_log_ratelimited(s->inst, GD_WARN, "http_poll: device %s (%s): no points: %s",
                           d->cfg->name, d->shown_url,
                           rc == GD_ENOMEM ? "out of memory" : st.first);
        return;
    }
    if (st.first[0])
        gd_log_ratelimited(s->inst, GD_WARN, "http_poll: device %s (%s) data: %s", d->cfg->name,
                           d->shown_url, st.first);
    if (d->failures)
        gd_log(s->inst, GD_INFO, "http_poll: device %s (%s) answers again after %u failed polls",
               d->cfg->name, d->shown_url, d->failures);
    d->failures = 0;
}

/* A transfer of @d ended with @res. */
static void finish(struct device *d, CURLcode res, gd_batch **acc)
{
    long status = 0;
    char ex[LOG_BODY_BYTES + 8];
    gd_instance *inst = d->s->inst;
    const char *name = d->cfg->name, *u = d->shown_url;
    if (res != CURLE_OK) {
        failed(d);
        if (d->too_large)
            gd_log_ratelimited(inst, GD_WARN,
                               "http_poll: device %s (%s): response larger than "
                               "max_response_bytes (%" PRId64 "); aborted",
                               name, u, d->s->cfg->max_response_bytes);
        else if (res == CURLE_OPERATION_TIMEDOUT)
            gd_log_ratelimited(inst, GD_WARN, "http_poll: device %s (%s): timed out after %g s",
                               name, u, d->cfg->timeout);
        else
            gd_log_ratelimited(inst, GD_WARN, "http_poll: device %s (%s): %s", name, u,
                               d->errbuf[0] ? d->errbuf : curl_easy_strerror(res));
        return;
    }
    curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        failed(d);
        gd_log_ratelimited(inst, GD_WARN, "http_poll: device %s (%s): HTTP %ld: %s", name, u,
                           status, body_excerpt(d, ex, sizeof(ex)));
        return;
    }
    take_response(d, acc);
}

static bool is_due(const struct device *d, int64_t now, int64_t slack)
{
    return d->every_ns <= 0 || d->next_due_ns == 0 || now + slack >= d->next_due_ns;
}

/* Next due time on the device's own grid, strictly after this collect. */
static void schedule_next(struct device *d, int64_t now, int64_t slack)
{
    if (d->every_ns <= 0)
        return;
    if (d->next_due_ns == 0)
        d->next_due_ns = now;
    while (d->next_due_ns <= now + slack)
        d->next_due_ns += d->every_ns;
}

static int start_request(struct device *d)
{
    if (d->body.cap > KEEP_BODY_BYTES)
        gd_buf_free(&d->body); /* one large answer does not pin its memory */
    gd_buf_reset(&d->body);
    d->too_large = false;
    d->errbuf[0] = '\0';
    CURLMcode mc = curl_multi_add_handle(d->s->multi, d->easy);
    if (mc != CURLM_OK) {
        failed(d);
        gd_log_ratelimited(d->s->inst, GD_ERROR,
                           "http_poll: device %s (%s): cannot start the request: %s", d->cfg->name,
                           d->shown_url, curl_multi_strerror(mc));
        return GD_EIO;
    }
    d->added = true;
    return 0;
}

static void emit(struct hp *s, gd_batch **acc)
{
    if (!*acc)
        return;
    if (gd_batch_len(*acc))
        gd_emit(s->inst, *acc); /* consumes; a full queue is counted by the core */
    else
        gd_batch_unref(*acc);
    *acc = NULL;
}

static int hp_collect(void *state, gd_batch *out)
{
    struct hp *s = state;
    (void)out; /* points go through gd_emit(), see the top of the file */
    int64_t start = mono_ns();
    int64_t slack = (int64_t)(gd_instance_interval(s->inst) * NS_PER_S) / 2;
    size_t ndue = 0, next = 0, inflight = 0;
    for (size_t i = 0; i < s->ndev; i++) {
        if (is_due(&s->dev[i], start, slack)) {
            schedule_next(&s->dev[i], start, slack);
            s->due[ndue++] = i;
        }
    }

    gd_batch *acc = NULL;
    int64_t emit_at = start + EARLY_EMIT_NS;
    size_t limit = (size_t)s->cfg->max_concurrency;
    while (next < ndue || inflight > 0) {
        while (inflight < limit && next < ndue)
            if (start_request(&s->dev[s->due[next++]]) == 0)
                inflight++;
        int running = 0;
        CURLMcode mc = curl_multi_perform(s->multi, &running);
        if (mc != CURLM_OK) {
            gd_log_ratelimited(s->inst, GD_ERROR, "http_poll: curl_multi_perform: %s",
                               curl_multi_strerror(mc));
            gd_count_error(s->inst);
            break;
        }
        bool done_any = false;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(s->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct device *d = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&d);
            CURLcode res = msg->data.result;
            curl_multi_remove_handle(s->multi, msg->easy_handle);
            d->added = false;
            inflight--;
            done_any = true;
            finish(d, res, &acc);
        }
        /* Others still pending: hand over what is there, at most every
         * EARLY_EMIT_NS, so one slow device does not hold it back. */
        bool waiting = inflight > 0 || next < ndue;
        int64_t now = mono_ns();
        if (waiting && acc && now >= emit_at) {
            emit(s, &acc);
            emit_at = now + EARLY_EMIT_NS;
        }
        if (inflight > 0 && !(done_any && next < ndue))
            curl_multi_poll(s->multi, NULL, 0, POLL_WAIT_MS, NULL);
    }
    /* After a multi failure: take back what is still attached. */
    for (size_t i = 0; i < s->ndev; i++) {
        if (s->dev[i].added) {
            curl_multi_remove_handle(s->multi, s->dev[i].easy);
            s->dev[i].added = false;
        }
    }
    emit(s, &acc);
    return 0;
}

/* ---- set-up ------------------------------------------------------------ */

static void hp_destroy(void *state)
{
    struct hp *s = state;
    if (!s)
        return;
    for (size_t i = 0; i < s->ndev; i++) {
        struct device *d = &s->dev[i];
        if (d->easy) {
            if (d->added)
                curl_multi_remove_handle(s->multi, d->easy);
            curl_easy_cleanup(d->easy);
        }
        curl_slist_free_all(d->headers);
        free(d->shown_url);
        hp_map_free(&d->map);
        gd_buf_free(&d->body);
    }
    if (s->multi)
        curl_multi_cleanup(s->multi);
    if (s->curl_ready)
        curl_global_cleanup();
    free(s->dev);
    free(s->due);
    free(s->user_agent);
    free(s);
}

static const struct hp_profile_cfg *find_profile(const struct hp_cfg *c, const char *name)
{
    const struct hp_profile_cfg *p = c->profiles.items;
    for (size_t i = 0; i < c->profiles.n; i++)
        if (strcmp(p[i].name, name) == 0)
            return &p[i];
    return NULL;
}

/* Checks of one device the option table cannot express. */
static int check_device(gd_instance *inst, const struct hp_cfg *c, const struct hp_device_cfg *d)
{
    const char *u = d->url;
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) {
        gd_log(inst, GD_ERROR,
               "http_poll: device %s: url \"%s\" must start with http:// or "
               "https://",
               d->name, u);
        return GD_ECONFIG;
    }
    if (!is_set(d->name) || !is_line_safe(d->name)) {
        gd_log(inst, GD_ERROR, "http_poll: a device name must be a non-empty single line");
        return GD_ECONFIG;
    }
    if (is_set(d->username) != is_set(d->password)) {
        gd_log(inst, GD_ERROR, "http_poll: device %s: set both username and password, or neither",
               d->name);
        return GD_ECONFIG;
    }
    if (is_set(d->username) && is_set(d->bearer_token)) {
        gd_log(inst, GD_ERROR,
               "http_poll: device %s: basic auth (username) and bearer_token "
               "exclude each other",
               d->name);
        return GD_ECONFIG;
    }
    for (size_t i = 0; i < d->headers.n; i++) {
        const gd_kv *h = &d->headers.v[i];
        if (!is_line_safe(h->key) || !is_line_safe(h->value) || strchr(h->key, ':')) {
            gd_log(inst, GD_ERROR,
                   "http_poll: device %s: header \"%s\" must be one line "
                   "(and its name without ':')",
                   d->name, h->key);
            return GD_ECONFIG;
        }
    }
    if (d->bearer_token && !is_line_safe(d->bearer_token)) {
        gd_log(inst, GD_ERROR, "http_poll: device %s: bearer_token must be one line", d->name);
        return GD_ECONFIG;
    }
    if (d->body && d->method == M_GET) {
        gd_log(inst, GD_ERROR, "http_poll: device %s: a body needs method = \"POST\" or \"PUT\"",
               d->name);
        return GD_ECONFIG;
    }
    const char *files[] = {d->tls_ca_file, d->tls_cert_file, d->tls_key_file};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i] && access(files[i], R_OK) < 0) {
            gd_log(inst, GD_ERROR, "http_poll: device %s: cannot read %s", d->name, files[i]);
            return GD_ECONFIG;
        }
    }
    if (d->tls_key_file && !d->tls_cert_file) {
        gd_log(inst, GD_ERROR, "http_poll: device %s: tls_key_file needs tls_cert_file", d->name);
        return GD_ECONFIG;
    }
    if (d->profile && !find_profile(c, d->profile)) {
        gd_log(inst, GD_ERROR, "http_poll: device %s: no profile named \"%s\"", d->name,
               d->profile);
        return GD_ECONFIG;
    }
    return 0;
}

static int check_config(gd_instance *inst, const struct hp_cfg *c)
{
    const struct hp_device_cfg *dv = c->devices.items;
    const struct hp_profile_cfg *pv = c->profiles.items;
    if (c->devices.n == 0) {
        gd_log(inst, GD_ERROR, "http_poll: devices is empty: nothing to poll");
        return GD_ECONFIG;
    }
    for (size_t i = 0; i < c->profiles.n; i++) {
        for (size_t k = 0; k < i; k++) {
            if (strcmp(pv[i].name, pv[k].name) == 0) {
                gd_log(inst, GD_ERROR, "http_poll: two profiles named \"%s\"", pv[i].name);
                return GD_ECONFIG;
            }
        }
    }
    for (size_t i = 0; i < c->devices.n; i++) {
        int rc = check_device(inst, c, &dv[i]);
        if (rc < 0)
            return rc;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(dv[i].name, dv[k].name) == 0) {
                gd_log(inst, GD_ERROR, "http_poll: two devices named \"%s\"", dv[i].name);
                return GD_ECONFIG;
            }
        }
    }
    if (c->device_tag && !is_line_safe(c->device_tag)) {
        gd_log(inst, GD_ERROR, "http_poll: device_tag must be a single line");
        return GD_ECONFIG;
    }
    return 0;
}

/* Add the fields and tags of @mc to @m. */
static int add_mapping(hp_map *m, const struct hp_mapping_cfg *mc)
{
    const struct hp_field_cfg *f = mc->fields.items;
    const struct hp_tag_cfg *t = mc->tag_pointers.items;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < mc->tags.n; i++)
        rc = hp_map_add_tag(m, mc->tags.v[i].key, mc->tags.v[i].value);
    for (size_t i = 0; rc == 0 && i < mc->fields.n; i++)
        rc = hp_map_add_field(m, &f[i]);
    for (size_t i = 0; rc == 0 && i < mc->tag_pointers.n; i++)
        rc = hp_map_add_tag_pointer(m, &t[i]);
    return rc;
}

/* The device's map: the instance defaults, then its profile, then its own
 * options (a field of the same name replaces the profile's). */
static int build_map(struct hp *s, struct device *d)
{
    const struct hp_device_cfg *dc = d->cfg;
    const struct hp_mapping_cfg *own = &dc->map;
    const struct hp_profile_cfg *pf = dc->profile ? find_profile(s->cfg, dc->profile) : NULL;
    const struct hp_mapping_cfg *pm = pf ? &pf->map : NULL;
    const char *meas = own->measurement        ? own->measurement
                       : pm && pm->measurement ? pm->measurement
                                               : s->cfg->measurement;
    if (!is_set(meas) || !is_line_safe(meas)) {
        gd_log(s->inst, GD_ERROR,
               "http_poll: device %s: measurement must be a non-empty single "
               "line",
               dc->name);
        return GD_ECONFIG;
    }
    hp_map *m = &d->map;
    int rc = hp_map_init(m, meas);
    if (rc == 0 && is_set(s->cfg->device_tag))
        rc = hp_map_add_tag(m, s->cfg->device_tag, dc->name);
    if (rc == 0 && pm)
        rc = add_mapping(m, pm);
    if (rc == 0)
        rc = add_mapping(m, own);
    const char *points = own->points ? own->points : pm ? pm->points : NULL;
    if (rc == 0 && points)
        rc = hp_map_set_points(m, points);
    const struct hp_mapping_cfg *tm = own->time_pointer ? own : pm && pm->time_pointer ? pm : NULL;
    if (rc == 0 && tm)
        rc = hp_map_set_time(m, tm->time_pointer, tm->time_format, tm->time_root);
    if (rc == GD_EINVAL) {
        gd_log(s->inst, GD_ERROR, "http_poll: device %s: %s", dc->name, m->err);
        return GD_ECONFIG;
    }
    if (rc == 0 && m->nfields == 0) {
        gd_log(s->inst, GD_ERROR, "http_poll: device %s has no fields (set fields or a profile)",
               dc->name);
        return GD_ECONFIG;
    }
    return rc;
}

static int append_header(struct curl_slist **h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int append_header(struct curl_slist **h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0)
        return GD_ENOMEM;
    struct curl_slist *t = curl_slist_append(*h, text);
    free(text);
    if (!t)
        return GD_ENOMEM;
    *h = t;
    return 0;
}

static bool has_header(const struct hp_device_cfg *dc, const char *name)
{
    for (size_t i = 0; i < dc->headers.n; i++)
        if (strcasecmp(dc->headers.v[i].key, name) == 0)
            return true;
    return false;
}

static int make_headers(struct device *d)
{
    const struct hp_device_cfg *dc = d->cfg;
    struct curl_slist *h = NULL;
    int rc = 0;
    /* No "Expect: 100-continue" round trip before a body. */
    rc = append_header(&h, "Expect:");
    if (rc == 0 && !has_header(dc, "Accept"))
        rc = append_header(&h, "Accept: application/json");
    if (rc == 0 && dc->body && !has_header(dc, "Content-Type"))
        rc = append_header(&h, "Content-Type: application/json");
    if (rc == 0 && is_set(dc->bearer_token))
        rc = append_header(&h, "Authorization: Bearer %s", dc->bearer_token);
    for (size_t i = 0; rc == 0 && i < dc->headers.n; i++)
        rc = append_header(&h, "%s: %s", dc->headers.v[i].key, dc->headers.v[i].value);
    if (rc < 0) {
        curl_slist_free_all(h);
        return rc;
    }
    d->headers = h;
    return 0;
}

/* The url without user:password@, for logs. */
static int make_shown_url(struct device *d)
{
    const char *u = d->cfg->url;
    const char *host = strstr(u, "://") + 3;
    size_t hostlen = strcspn(host, "/?#");
    const char *at = memchr(host, '@', hostlen);
    gd_buf b = {0};
    int rc = gd_buf_append(&b, u, (size_t)(host - u));
    if (rc == 0)
        rc = gd_buf_puts(&b, at ? at + 1 : host);
    if (rc < 0) {
        gd_buf_free(&b);
        return rc;
    }
    d->shown_url = b.data;
    return 0;
}

static int setup_easy(struct hp *s, struct device *d)
{
    const struct hp_device_cfg *dc = d->cfg;
    CURL *k = d->easy;
    long timeout_ms = (long)(dc->timeout * 1000);
    CURLcode cc = CURLE_OK;

#define SET(opt, val) (cc == CURLE_OK ? (cc = curl_easy_setopt(k, opt, val)) : cc)
    SET(CURLOPT_URL, dc->url);
    SET(CURLOPT_PRIVATE, (void *)d);
    SET(CURLOPT_HTTPHEADER, d->headers);
    SET(CURLOPT_USERAGENT, s->user_agent);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_ERRORBUFFER, d->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)d);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    if (dc->method == M_POST || dc->method == M_PUT) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDS, dc->body ? dc->body : "");
        SET(CURLOPT_POSTFIELDSIZE, (long)(dc->body ? strlen(dc->body) : 0));
        if (dc->method == M_PUT)
            SET(CURLOPT_CUSTOMREQUEST, "PUT");
    } else {
        SET(CURLOPT_HTTPGET, 1L);
    }
    if (is_set(dc->username)) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SET(CURLOPT_USERNAME, dc->username);
        SET(CURLOPT_PASSWORD, dc->password);
    }
    if (dc->tls_ca_file)
        SET(CURLOPT_CAINFO, dc->tls_ca_file);
    if (dc->tls_cert_file)
        SET(CURLOPT_SSLCERT, dc->tls_cert_file);
    if (dc->tls_key_file)
        SET(CURLOPT_SSLKEY, dc->tls_key_file);
    SET(CURLOPT_SSL_VERIFYPEER, dc->tls_verify ? 1L : 0L);
    SET(CURLOPT_SSL_VERIFYHOST, dc->tls_verify ? 2L : 0L);
#undef SET
    if (cc != CURLE_OK) {
        gd_log(s->inst, GD_ERROR, "http_poll: device %s: libcurl refuses an option: %s", dc->name,
               curl_easy_strerror(cc));
        return GD_ENOTSUP;
    }
    return 0;
}

static int setup_device(struct hp *s, struct device *d, const struct hp_device_cfg *dc,
                        double inst_interval)
{
    d->s = s;
    d->cfg = dc;
    d->every_ns = (int64_t)(dc->interval * NS_PER_S);
    int rc = build_map(s, d);
    if (rc == 0)
        rc = make_shown_url(d);
    if (rc == 0)
        rc = make_headers(d);
    if (rc == 0 && !(d->easy = curl_easy_init()))
        rc = GD_ENOMEM;
    if (rc == 0)
        rc = setup_easy(s, d);
    if (rc < 0)
        return rc;
    if (dc->interval > 0 && inst_interval > 0 && dc->interval < inst_interval)
        gd_log(s->inst, GD_WARN,
               "http_poll: device %s: interval %g s is shorter than the instance's %g s; "
               "it is polled at every collect",
               dc->name, dc->interval, inst_interval);
    if (inst_interval > 0 && dc->timeout >= inst_interval)
        gd_log(s->inst, GD_WARN,
               "http_poll: device %s: timeout %g s is not shorter than the interval %g s: a "
               "device that does not answer makes collects overrun",
               dc->name, dc->timeout, inst_interval);
    if (!dc->tls_verify && strncmp(dc->url, "https://", 8) == 0)
        gd_log(s->inst, GD_WARN,
               "http_poll: device %s: tls_verify = false: its certificate is not checked",
               dc->name);
    return 0;
}

static int hp_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct hp_cfg *cfg = cfgp;
    int rc = check_config(inst, cfg);
    if (rc < 0)
        return rc;

    struct hp *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : GD_ENOMEM;
    if (rc < 0) {
        gd_log(inst, GD_ERROR, "http_poll: libcurl cannot initialise");
        goto out_destroy;
    }
    s->curl_ready = true;
    s->multi = curl_multi_init();
    s->ndev = cfg->devices.n;
    s->dev = calloc(s->ndev, sizeof(*s->dev));
    s->due = calloc(s->ndev, sizeof(*s->due));
    gd_buf ua = {0};
    rc = cfg->user_agent ? gd_buf_puts(&ua, cfg->user_agent)
                         : gd_buf_printf(&ua, "gatherd/%s", gd_version());
    s->user_agent = ua.data;
    if (!s->multi || !s->dev || !s->due || rc < 0) {
        rc = GD_ENOMEM;
        goto out_destroy;
    }
    /* Room in the pool for a connection per device. */
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)s->ndev);

    double inst_interval = gd_instance_interval(inst);
    const struct hp_device_cfg *dv = cfg->devices.items;
    for (size_t i = 0; i < s->ndev; i++) {
        rc = setup_device(s, &s->dev[i], &dv[i], inst_interval);
        if (rc < 0)
            goto out_destroy;
    }
    gd_log(inst, GD_DEBUG, "http_poll: %zu devices, at most %" PRId64 " requests at once", s->ndev,
           cfg->max_concurrency);
    *state = s;
    return 0;

out_destroy:
    hp_destroy(s);
    return rc;
}

/* ---- descriptor -------------------------------------------------------- */

static const struct gd_input_ops hp_ops = {
    .struct_size = sizeof(struct gd_input_ops),
    .init = hp_init,
    .destroy = hp_destroy,
    .collect = hp_collect,
};

static const struct gd_plugin hp_plugin = {
    GD_PLUGIN_ABI,
    .name = "http_poll",
    .version = "0.1.0",
    .kind = GD_KIND_INPUT,
    .summary = "poll JSON endpoints over HTTP(S) and map them to points with JSON pointers",
    .options = hp_options,
    .config_size = sizeof(struct hp_cfg),
    .ops = &hp_ops,
};

GD_PLUGIN_ENTRY
{
    return &hp_plugin;
}
