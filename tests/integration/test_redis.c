/* SPDX-License-Identifier: Apache-2.0 */
/* The redis output end to end: the built daemon with the sim input writes to
 * a real redis-server (one throwaway server per test, tests/servers/redis.sh)
 * and, in the same run, to a file output; the test then reads Redis with
 * hiredis (a subscriber, XRANGE, HGETALL) and checks it against the file. */
#include "harness.h"
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static gdt_server srv;

static void suite_fini(void)
{
    gdt_srv_destroy(&srv, "redis.sh");
    gdt_teardown();
}

TestSuite(redis, .init = gdt_setup, .fini = suite_fini, .timeout = 60);

static void start_server(const char *redis_conf)
{
    if (redis_conf) {
        gdt_srv_prepare(&srv, "redis");
        char path[256];
        snprintf(path, sizeof(path), "%s/redis.conf", srv.dir);
        gdt_write_file(path, redis_conf);
    }
    gdt_srv_start(&srv, "redis.sh", "starting redis-server");
}

/* A client of the test server, authenticated as @user/@pass when set. */
static redisContext *client(const char *user, const char *pass)
{
    redisContext *c = redisConnect("127.0.0.1", srv.port);
    cr_assert(c && !c->err, "connect to redis: %s", c ? c->errstr : "?");
    if (pass) {
        redisReply *r =
            user ? redisCommand(c, "AUTH %s %s", user, pass) : redisCommand(c, "AUTH %s", pass);
        cr_assert(r && r->type != REDIS_REPLY_ERROR, "AUTH: %s", r ? r->str : c->errstr);
        freeReplyObject(r);
    }
    return c;
}

static redisReply *cmd(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(c, fmt, arg);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "%s %s: %s", fmt, arg ? arg : "",
              r ? r->str : c->errstr);
    return r;
}

static long long cmd_int(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = cmd(c, fmt, arg);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s %s", fmt, arg ? arg : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* ---- the daemon ---------------------------------------------------------- */

/* sim (4 chambers, @per_collect points per 50 ms collect, @points in all,
 * then exit) -> file "copy" in @file_format and redis "r" with @redis_opts.
 * @extra: more outputs or inputs text (NULL: none). */
static void write_conf(int points, int per_collect, const char *file_format, const char *redis_opts)
{
    char conf[4096];
    snprintf(conf, sizeof(conf),
             "global = { log_level = \"info\"; shutdown_timeout = \"20s\"; };\n"
             "inputs = ( { plugin = \"sim\"; name = \"fleet\"; interval = \"50ms\"; chambers = 4;\n"
             "             points_per_collect = %d; seed = 42; stop_after = %d;\n"
             "             exit_when_done = true; } );\n"
             "outputs = ( { plugin = \"file\"; name = \"copy\"; path = \"%s\"; format = \"%s\";\n"
             "              flush_interval = \"100ms\"; },\n"
             "            { plugin = \"redis\"; name = \"r\"; port = %d; batch_points = 50;\n"
             "              flush_interval = \"100ms\"; retry_initial = \"50ms\"; retry_max = "
             "\"500ms\";\n"
             "              %s } );\n",
             per_collect, points, gdt_path("copy.txt"), file_format, srv.port, redis_opts);
    gdt_write_file(gdt_path("gatherd.conf"), conf);
}

static char *run_to_end(int timeout_s, int want_code)
{
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    int code = gdt_wait_exit(pid, timeout_s);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    if (want_code == 0)
        cr_assert_eq(code, 0, "gatherd exited with %d:\n%s", code, log);
    else
        cr_assert_neq(code, 0, "gatherd should have failed:\n%s", log);
    return log;
}

/* The lines of the file output, in order. */
struct lines {
    char *text;
    char **v;
    size_t n;
};

static struct lines file_lines(void)
{
    struct lines l = {.text = gdt_read_file(gdt_path("copy.txt"))};
    size_t cap = 256;
    l.v = malloc(cap * sizeof(*l.v));
    char *save = NULL;
    for (char *s = strtok_r(l.text, "\n", &save); s; s = strtok_r(NULL, "\n", &save)) {
        if (l.n == cap)
            l.v = realloc(l.v, (cap *= 2) * sizeof(*l.v));
        l.v[l.n++] = s;
    }
    return l;
}

static void lines_free(struct lines *l)
{
    free(l->v);
    free(l->text);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "chamber-N" of a point of the sim as line protocol or JSON, into @dev. */
static void point_device(const char *text, char *dev, size_t len)
{
    const char *d = strstr(text, "device=");
    size_t skip = strlen("device=");
    if (!d) {
        d = strstr(text, "\"device\":\"");
        skip = strlen("\"device\":\"");
    }
    cr_assert_not_null(d, "%s", text);
    d += skip;
    snprintf(dev, len, "%.*s", (int)strcspn(d, ", \""), d);
}

/* ---- (1) publish ----------------------------------------------------------- */

struct sub {
    redisContext *c;
    pthread_t thread;
    pthread_mutex_t lock;
    char **channel, **payload;
    size_t n, cap;
};

static void *sub_main(void *arg)
{
    struct sub *s = arg;
    redisReply *r;
    while (redisGetReply(s->c, (void **)&r) == REDIS_OK && r) {
        /* pmessage, pattern, channel, payload */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
            strcmp(r->element[0]->str, "pmessage") == 0) {
            pthread_mutex_lock(&s->lock);
            if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 256;
                s->channel = realloc(s->channel, s->cap * sizeof(char *));
                s->payload = realloc(s->payload, s->cap * sizeof(char *));
            }
            s->channel[s->n] = strdup(r->element[2]->str);
            s->payload[s->n] = strndup(r->element[3]->str, (size_t)r->element[3]->len);
            s->n++;
            pthread_mutex_unlock(&s->lock);
        }
        freeReplyObject(r);
    }
    return NULL;
}

/* Subscribed (PSUBSCRIBE gatherd:*) before this returns. */
static void sub_start(struct sub *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->c = client(NULL, NULL);
    redisReply *r = redisCommand(s->c, "PSUBSCRIBE gatherd:*");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "PSUBSCRIBE");
    freeReplyObject(r);
    cr_assert_eq(pthread_create(&s->thread, NULL, sub_main, s), 0);
}

/* Wait up to 5 s for @want messages, then stop. */
static void sub_stop(struct sub *s, size_t want)
{
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&s->lock);
        size_t n = s->n;
        pthread_mutex_unlock(&s->lock);
        if (n >= want)
            break;
        gdt_msleep(50);
    }
    gdt_msleep(100); /* anything beyond @want would show up too */
    shutdown(s->c->fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    redisFree(s->c);
}

static void sub_free(struct sub *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->channel[i]);
        free(s->payload[i]);
    }
    free(s->channel);
    free(s->payload);
    pthread_mutex_destroy(&s->lock);
}

/* A subscriber connected before the run receives exactly the points of the
 * file output (same text: both use the SDK's encoders), each on the channel
 * of its measurement and device. */
static void check_publish(const char *format)
{
    start_server(NULL);
    struct sub s;
    sub_start(&s);
    char opts[256];
    snprintf(opts, sizeof(opts), "modes = [\"publish\"]; format = \"%s\";", format);
    write_conf(400, 20, format, opts);
    char *log = run_to_end(30, 0);
    sub_stop(&s, 400);

    struct lines l = file_lines();
    cr_assert_eq(l.n, 400, "the file holds %zu points", l.n);
    cr_assert_eq(s.n, l.n, "%zu messages received, %zu points in the file", s.n, l.n);
    for (size_t i = 0; i < s.n; i++) {
        char dev[64], want[128];
        point_device(s.payload[i], dev, sizeof(dev));
        snprintf(want, sizeof(want), "gatherd:chamber:%s", dev);
        cr_assert_str_eq(s.channel[i], want, "message %zu: %s", i, s.payload[i]);
    }
    qsort(s.payload, s.n, sizeof(char *), cmp_str);
    qsort(l.v, l.n, sizeof(char *), cmp_str);
    for (size_t i = 0; i < l.n; i++)
        cr_assert_str_eq(s.payload[i], l.v[i]);
    gdt_counters c = gdt_counters_of(log, "output:redis/r");
    cr_assert_eq(c.delivered, 400);
    cr_assert_eq(c.dropped, 0);
    lines_free(&l);
    sub_free(&s);
    free(log);
}

Test(redis, subscriber_receives_every_point_as_json)
{
    check_publish("json");
}

Test(redis, subscriber_receives_every_point_as_line_protocol)
{
    check_publish("line");
}

/* ---- (2) stream ------------------------------------------------------------ */

/* An XRANGE entry as the sim's line protocol: chamber,device=D f=v,... ts. */
static void entry_as_lp(const redisReply *e, char *out, size_t len)
{
    const redisReply *kv = e->element[1];
    const char *ts = NULL, *dev = NULL;
    char fields[512] = "";
    size_t fl = 0;
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const char *k = kv->element[i]->str, *v = kv->element[i + 1]->str;
        if (strcmp(k, "ts") == 0)
            ts = v;
        else if (strcmp(k, "device") == 0)
            dev = v;
        else
            fl +=
                (size_t)snprintf(fields + fl, sizeof(fields) - fl, "%s%s=%s", fl ? "," : "", k, v);
    }
    cr_assert(ts && dev, "entry %s lacks ts or device", e->element[0]->str);
    snprintf(out, len, "chamber,device=%s %s %s", dev, fields, ts);
}

Test(redis, xrange_returns_every_point_in_order)
{
    start_server(NULL);
    write_conf(1000, 40, "line", "modes = [\"stream\"]; db = 3; stream_maxlen = 100000;");
    char *log = run_to_end(30, 0);
    struct lines l = file_lines();
    cr_assert_eq(l.n, 1000);

    redisContext *c = client(NULL, NULL);
    freeReplyObject(cmd(c, "SELECT %s", "3"));
    redisReply *r = cmd(c, "XRANGE %s - +", "gatherd:chamber");
    cr_assert_eq(r->elements, l.n, "%zu stream entries, %zu points in the file", r->elements, l.n);
    for (size_t i = 0; i < l.n; i++) {
        char got[640];
        entry_as_lp(r->element[i], got, sizeof(got));
        cr_assert_str_eq(got, l.v[i], "entry %zu", i);
    }
    freeReplyObject(r);
    /* db = 3: nothing in db 0. */
    freeReplyObject(cmd(c, "SELECT %s", "0"));
    cr_assert_eq(cmd_int(c, "EXISTS %s", "gatherd:chamber"), 0);
    gdt_counters k = gdt_counters_of(log, "output:redis/r");
    cr_assert_eq(k.delivered, 1000);
    redisFree(c);
    lines_free(&l);
    free(log);
}

/* ---- (3) latest ------------------------------------------------------------ */

Test(redis, hgetall_holds_the_last_value_of_each_series_and_ttl_when_set)
{
    start_server(NULL);
    /* Over the unix socket, two outputs: with and without a TTL. */
    char opts[1024];
    snprintf(opts, sizeof(opts),
             "socket = \"%s/redis.sock\"; modes = [\"latest\"]; latest_key = "
             "\"ttl:{measurement}:{device}\"; latest_ttl = \"1h\"; },\n"
             "{ plugin = \"redis\"; name = \"r2\"; port = %d; modes = \"latest\";"
             " latest_key = \"keep:{device}\";",
             srv.dir, srv.port);
    write_conf(400, 20, "line", opts);
    char *log = run_to_end(30, 0);
    struct lines l = file_lines();
    cr_assert_eq(l.n, 400);

    redisContext *c = client(NULL, NULL);
    for (int d = 0; d < 4; d++) {
        char dev[32], key[64];
        snprintf(dev, sizeof(dev), "device=chamber-%d ", d);
        const char *last = NULL;
        for (size_t i = 0; i < l.n; i++)
            if (strstr(l.v[i], dev))
                last = l.v[i];
        cr_assert_not_null(last);
        for (int k = 0; k < 2; k++) {
            snprintf(key, sizeof(key), k == 0 ? "ttl:chamber:chamber-%d" : "keep:chamber-%d", d);
            redisReply *r = cmd(c, "HGETALL %s", key);
            char fields[512] = "";
            const char *ts = NULL;
            size_t fl = 0;
            for (size_t i = 0; i + 1 < r->elements; i += 2) {
                const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
                if (strcmp(f, "ts") == 0)
                    ts = v;
                else
                    fl += (size_t)snprintf(fields + fl, sizeof(fields) - fl, "%s%s=%s",
                                           fl ? "," : "", f, v);
            }
            cr_assert_not_null(ts, "%s has no ts", key);
            char got[640];
            snprintf(got, sizeof(got), "chamber,device=chamber-%d %s %s", d, fields, ts);
            cr_assert_str_eq(got, last, "%s", key);
            freeReplyObject(r);
            long long ttl = cmd_int(c, "TTL %s", key);
            if (k == 0)
                cr_assert(ttl > 3000 && ttl <= 3600, "TTL of %s is %lld", key, ttl);
            else
                cr_assert_eq(ttl, -1, "TTL of %s is %lld", key, ttl);
        }
    }
    cr_assert_eq(gdt_counters_of(log, "output:redis/r").delivered, 400);
    cr_assert_eq(gdt_counters_of(log, "output:redis/r2").delivered, 400);
    redisFree(c);
    lines_free(&l);
    free(log);
}

/* ---- (4) restart ----------------------------------------------------------- */

/* The server stops (by pid) and starts again mid-run; AOF keeps what it
 * acknowledged. Every point reaches the stream; a pipeline cut by the stop
 * may have run in part before it, so at most one batch is duplicated. */
Test(redis, server_restart_mid_run_loses_nothing)
{
    start_server("appendonly yes\nappendfsync always\n");
    write_conf(3000, 30, "line", "modes = [\"stream\"]; stream_tags = false;");
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    gdt_msleep(1200);
    gdt_srv_stop(&srv, "redis.sh");
    gdt_msleep(1000);
    gdt_srv_start(&srv, "redis.sh", "restarting redis-server");
    int code = gdt_wait_exit(pid, 40);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "gatherd exited with %d:\n%s", code, log);
    gdt_counters k = gdt_counters_of(log, "output:redis/r");
    cr_assert_gt(k.retries, 0, "the stop caused no retry:\n%s", log);
    cr_assert_eq(k.dropped, 0, "%s", log);
    cr_assert_eq(k.delivered, 3000);

    struct lines l = file_lines();
    cr_assert_eq(l.n, 3000);
    redisContext *c = client(NULL, NULL);
    redisReply *r = cmd(c, "XRANGE %s - +", "gatherd:chamber");
    size_t n = r->elements;
    cr_assert_geq(n, l.n, "%zu entries for %zu points: points lost", n, l.n);
    cr_assert_leq(n - l.n, 50, "%zu duplicates, more than one batch", n - l.n);
    /* Every point's timestamp (unique per point) is there. */
    char **ts = malloc(n * sizeof(char *)), **want = malloc(l.n * sizeof(char *));
    for (size_t i = 0; i < n; i++)
        ts[i] = r->element[i]->element[1]->element[1]->str;
    for (size_t i = 0; i < l.n; i++)
        want[i] = strrchr(l.v[i], ' ') + 1;
    qsort(ts, n, sizeof(char *), cmp_str);
    qsort(want, l.n, sizeof(char *), cmp_str);
    size_t j = 0;
    for (size_t i = 0; i < l.n; i++) {
        while (j < n && strcmp(ts[j], want[i]) < 0)
            j++;
        cr_assert(j < n && strcmp(ts[j], want[i]) == 0, "point at %s missing", want[i]);
    }
    free(ts);
    free(want);
    freeReplyObject(r);
    redisFree(c);
    lines_free(&l);
    free(log);
}

/* An error reply about the server's state (OOM: maxmemory reached) is not
 * the point's fault: the batch waits and is retried, nothing is rejected. */
Test(redis, server_out_of_memory_is_retried_not_rejected)
{
    start_server(NULL);
    redisContext *c = client(NULL, NULL);
    freeReplyObject(cmd(c, "CONFIG SET maxmemory %s", "1"));
    write_conf(400, 20, "line", "modes = [\"stream\", \"latest\"];");
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    char *log = NULL;
    for (int i = 0; i < 100; i++) {
        free(log);
        log = gdt_read_file(gdt_path("daemon.err"));
        if (strstr(log, "cannot take writes now (OOM"))
            break;
        gdt_msleep(50);
    }
    cr_assert(strstr(log, "cannot take writes now (OOM command not allowed"), "%s", log);
    free(log);
    freeReplyObject(cmd(c, "CONFIG SET maxmemory %s", "0"));
    int code = gdt_wait_exit(pid, 30);
    log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "%s", log);
    gdt_counters k = gdt_counters_of(log, "output:redis/r");
    cr_assert_eq(k.dropped, 0, "%s", log);
    cr_assert_eq(k.delivered, 400);
    cr_assert_gt(k.retries, 0);
    cr_assert_eq(cmd_int(c, "XLEN %s", "gatherd:chamber"), 400);
    redisFree(c);
    free(log);
}

/* ---- (5) AUTH ---------------------------------------------------------------- */

Test(redis, acl_user_and_password_work_and_a_wrong_password_is_refused_clearly)
{
    start_server("user writer on >w-pass-1 ~gatherd:* &* +@all\nrequirepass legacy-pass\n");
    write_conf(200, 20, "line",
               "modes = [\"stream\"]; username = \"writer\"; password = \"w-pass-1\";");
    char *log = run_to_end(30, 0);
    cr_assert_eq(gdt_counters_of(log, "output:redis/r").delivered, 200);
    cr_assert_null(strstr(log, "w-pass-1"), "the password leaked:\n%s", log);
    free(log);

    /* requirepass: the default user, password only. */
    write_conf(200, 20, "line", "modes = [\"stream\"]; password = \"legacy-pass\";");
    log = run_to_end(30, 0);
    cr_assert_eq(gdt_counters_of(log, "output:redis/r").delivered, 200);
    free(log);
    redisContext *c = client("writer", "w-pass-1");
    cr_assert_eq(cmd_int(c, "XLEN %s", "gatherd:chamber"), 400);
    redisFree(c);

    write_conf(200, 20, "line",
               "modes = [\"stream\"]; username = \"writer\"; password = \"not-the-pass\";");
    log = run_to_end(30, 1);
    cr_assert(strstr(log, "redis: 127.0.0.1:"), "%s", log);
    cr_assert(strstr(log, "refused the credentials of user \"writer\": WRONGPASS"), "%s", log);
    cr_assert(strstr(log, "check username and password"), "%s", log);
    cr_assert_null(strstr(log, "not-the-pass"), "the password leaked:\n%s", log);
    free(log);
}

/* ---- (6) rejects ------------------------------------------------------------- */

/* Points of an input without tag "site" cannot fill the key template: they
 * are rejected and counted, the rest is written. */
Test(redis, missing_tag_rejects_those_points_and_keeps_the_rest)
{
    start_server(NULL);
    char conf[2048];
    snprintf(conf, sizeof(conf),
             "global = { log_level = \"info\"; shutdown_timeout = \"20s\"; };\n"
             "inputs = ( { plugin = \"sim\"; name = \"tagged\"; interval = \"50ms\"; chambers = 2;"
             " points_per_collect = 10; seed = 1; stop_after = 200; exit_when_done = true;"
             " tags = { site = \"lab-a\"; }; },\n"
             "           { plugin = \"sim\"; name = \"bare\"; interval = \"50ms\"; chambers = 2;"
             " device_prefix = \"bare-\"; points_per_collect = 10; seed = 2; stop_after = 120; } "
             ");\n"
             "outputs = ( { plugin = \"redis\"; name = \"r\"; port = %d; batch_points = 50;\n"
             "              flush_interval = \"100ms\"; modes = [\"stream\", \"latest\"];\n"
             "              stream_key = \"s:{site}\"; latest_key = \"l:{site}:{device}\"; } );\n",
             srv.port);
    gdt_write_file(gdt_path("gatherd.conf"), conf);
    /* The bare input (120 points at the same pace) is done before the
     * tagged one (200) asks for the shutdown. */
    char *log = run_to_end(30, 0);
    gdt_counters k = gdt_counters_of(log, "output:redis/r");
    cr_assert_eq(k.rejected, 120, "%llu rejected:\n%s", k.rejected, log);
    cr_assert_eq(k.delivered, 200);
    cr_assert(strstr(log, "has no tag \"site\" for the stream_key template \"s:{site}\"; "
                          "rejected"),
              "%s", log);
    redisContext *c = client(NULL, NULL);
    cr_assert_eq(cmd_int(c, "XLEN %s", "s:lab-a"), 200);
    cr_assert_eq(cmd_int(c, "EXISTS %s", "l:lab-a:chamber-0"), 1);
    cr_assert_eq(cmd_int(c, "DBSIZE%s", ""), 3, "only the tagged points' keys exist");
    redisFree(c);
    free(log);
}

/* A command answered with an error (WRONGTYPE: the key holds a string)
 * rejects its point, with a log line naming the key; the rest is written. */
Test(redis, error_reply_rejects_the_point_and_names_the_key)
{
    start_server(NULL);
    redisContext *c = client(NULL, NULL);
    freeReplyObject(cmd(c, "SET gatherd:latest:chamber:chamber-1 %s", "not-a-hash"));
    write_conf(400, 20, "line", "modes = [\"latest\"];");
    char *log = run_to_end(30, 0);
    gdt_counters k = gdt_counters_of(log, "output:redis/r");
    cr_assert_eq(k.rejected, 100, "%llu rejected:\n%s", k.rejected, log);
    cr_assert_eq(k.delivered, 300);
    cr_assert(strstr(log, "redis: HSET of key \"gatherd:latest:chamber:chamber-1\" failed for "
                          "point #"),
              "%s", log);
    cr_assert(strstr(log, "WRONGTYPE"), "%s", log);
    cr_assert_eq(cmd_int(c, "EXISTS %s", "gatherd:latest:chamber:chamber-2"), 1);
    redisFree(c);
    free(log);
}

Test(redis, tls_without_hiredis_ssl_or_bad_template_refuses_to_start)
{
    start_server(NULL);
    write_conf(10, 10, "line", "modes = [\"stream\"]; stream_key = \"s:{device\";");
    char *log = run_to_end(30, 1);
    cr_assert(strstr(log, "redis: stream_key = \"s:{device\": unterminated '{'"), "%s", log);
    free(log);
    write_conf(10, 10, "line", "modes = [\"publish\", \"queue\"];");
    log = run_to_end(30, 1);
    cr_assert(strstr(log, "redis: unknown mode \"queue\""), "%s", log);
    free(log);
    /* A build with hiredis_ssl gets past set-up and fails the handshake
     * against this plain server instead (max_retries = 0: then it exits). */
    write_conf(10, 10, "line", "modes = [\"stream\"]; tls = true; max_retries = 0;");
    gdt_wait_exit(gdt_spawn(gdt_path("gatherd.conf")), 30);
    log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert(strstr(log, "it was built without hiredis_ssl") ||
                  strstr(log, "TLS handshake failed"),
              "%s", log);
    free(log);
}
