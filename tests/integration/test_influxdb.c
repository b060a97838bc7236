/* SPDX-License-Identifier: Apache-2.0 */
/* The influxdb output end to end: the built daemon with the sim input writes
 * to a real InfluxDB 1.6 (one throwaway server per test) and, in the same
 * run, to a file output; the test then queries the server and checks that
 * every point of the file arrived exactly once with its timestamp, tags,
 * field types and values. Behaviour the Debian 1.6 server cannot show (the v2
 * API, which 1.6 lacks; 401, 413 and 429 responses) is checked against a
 * small scripted HTTP responder in this file. */
#include "harness.h"
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The test's InfluxDB, started by the tests that need one (the others talk
 * to a scripted responder) and always destroyed by the suite's .fini. */
static gdt_server srv;

static void suite_fini(void)
{
    gdt_influx_destroy(&srv);
    gdt_teardown();
}

/* One suite: Criterion 2.4.1 leaks a few bytes per worker under ASan when
 * parallel tests come from two suites. */
TestSuite(influxdb, .init = gdt_setup, .fini = suite_fini, .timeout = 170);

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- talking to InfluxDB ------------------------------------------------- */

struct mem {
    char *p;
    size_t n;
};

static size_t mem_write(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct mem *m = ctx;
    size_t n = size * nmemb;
    m->p = realloc(m->p, m->n + n + 1);
    memcpy(m->p + m->n, data, n);
    m->n += n;
    m->p[m->n] = '\0';
    return n;
}

/* One request to the test server; the response body, malloc'd. */
static char *http(const char *path_and_query, const char *post_body, long *status)
{
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    char url[4096];
    snprintf(url, sizeof(url), "%s%s", gdt_influx_url(&srv), path_and_query);
    struct mem m = {.p = calloc(1, 1)};
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/csv");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (post_body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_body);
    CURLcode cc = curl_easy_perform(c);
    cr_assert_eq(cc, CURLE_OK, "%s: %s", url, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return m.p;
}

static char *escape(const char *s)
{
    CURL *c = curl_easy_init();
    char *e = curl_easy_escape(c, s, 0);
    char *r = strdup(e);
    curl_free(e);
    curl_easy_cleanup(c);
    return r;
}

/* A query, answered as CSV (epoch=ns). */
static char *influx_query(const char *db, const char *q)
{
    char *eq = escape(q), path[4096];
    snprintf(path, sizeof(path), "/query?db=%s&epoch=ns&q=%s", db, eq);
    free(eq);
    long st;
    char *r = http(path, NULL, &st);
    cr_assert_eq(st, 200, "%s: HTTP %ld: %s", q, st, r);
    cr_assert_null(strstr(r, "\"error\""), "%s: %s", q, r);
    return r;
}

static void influx_exec(const char *q)
{
    char *eq = escape(q), body[4096];
    snprintf(body, sizeof(body), "q=%s", eq);
    free(eq);
    long st;
    free(http("/query", body, &st));
    cr_assert_eq(st, 200, "%s: HTTP %ld", q, st);
}

static void influx_write_lines(const char *db, const char *lines)
{
    char path[256];
    snprintf(path, sizeof(path), "/write?db=%s", db);
    long st;
    char *r = http(path, lines, &st);
    cr_assert_eq(st, 204, "write: HTTP %ld: %s", st, r);
    free(r);
}

/* ---- CSV tables and line protocol ---------------------------------------- */

/* A CSV answer: the first table's header and rows, each cell a string. */
struct table {
    char *text;
    char **cols;
    size_t ncols;
    char ***rows;
    size_t nrows;
};

static size_t split(char *s, char sep, char **out, size_t max)
{
    size_t n = 0;
    for (;;) {
        char *e = strchr(s, sep);
        if (n < max)
            out[n++] = s;
        if (!e)
            return n;
        *e = '\0';
        s = e + 1;
    }
}

static struct table table_parse(char *csv)
{
    struct table t = {.text = csv};
    char *save = NULL;
    char *line = strtok_r(csv, "\n", &save);
    if (!line)
        return t;
    t.cols = calloc(64, sizeof(char *));
    t.ncols = split(line, ',', t.cols, 64);
    size_t cap = 1024;
    t.rows = malloc(cap * sizeof(*t.rows));
    while ((line = strtok_r(NULL, "\n", &save)) && line[0] != '\r') {
        if (strncmp(line, "name,tags,", 10) == 0)
            break; /* the next statement's table */
        if (t.nrows == cap)
            t.rows = realloc(t.rows, (cap *= 2) * sizeof(*t.rows));
        char **cells = calloc(t.ncols, sizeof(char *));
        size_t n = split(line, ',', cells, t.ncols);
        for (; n < t.ncols; n++)
            cells[n] = "";
        t.rows[t.nrows++] = cells;
    }
    return t;
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->nrows; i++)
        free(t->rows[i]);
    free(t->rows);
    free(t->cols);
    free(t->text);
}

static int col_of(const struct table *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i], name) == 0)
            return (int)i;
    return -1;
}

/* One point as text: "device=..,site=..", the time, and "k=v" fields. */
struct lp_point {
    char key[160]; /* tags + " " + time: sorts and matches points */
    char *fields[16];
    size_t nfields;
};

static int cmp_point(const void *a, const void *b)
{
    return strcmp(((const struct lp_point *)a)->key, ((const struct lp_point *)b)->key);
}

/* The points of a sim line-protocol file (measurement "chamber"), except
 * lines containing @skip (NULL: none). *@text keeps the strings. */
static struct lp_point *file_points(const char *path, const char *skip, size_t *n, char **text)
{
    *text = gdt_read_file(path);
    size_t cap = 1024;
    struct lp_point *v = malloc(cap * sizeof(*v));
    *n = 0;
    char *save = NULL;
    for (char *line = strtok_r(*text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (skip && strstr(line, skip))
            continue;
        char *parts[3];
        cr_assert_eq(split(line, ' ', parts, 3), 3, "unexpected line: %s", line);
        cr_assert_eq(strncmp(parts[0], "chamber,", 8), 0, "%s", parts[0]);
        if (*n == cap)
            v = realloc(v, (cap *= 2) * sizeof(*v));
        struct lp_point *p = &v[(*n)++];
        snprintf(p->key, sizeof(p->key), "%s %s", parts[0] + 8, parts[2]);
        p->nfields = split(parts[1], ',', p->fields, 16);
    }
    qsort(v, *n, sizeof(*v), cmp_point);
    return v;
}

/* The type InfluxDB gives a line-protocol field value. */
static const char *lp_type(const char *value)
{
    size_t n = strlen(value);
    if (value[0] == '"')
        return "string";
    if (value[n - 1] == 'i')
        return "integer";
    if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0)
        return "boolean";
    return "float";
}

static struct lp_point *sort_ctx;

static int cmp_row(const void *a, const void *b)
{
    return strcmp(sort_ctx[*(const size_t *)a].key, sort_ctx[*(const size_t *)b].key);
}

/* Check that the points of measurement "chamber" in @db with a device tag
 * matching @devices (a regex) are exactly @want (sorted): same series, times,
 * field types and values, none missing, none extra. */
static void assert_db_holds(const char *db, const char *devices, struct lp_point *want,
                            size_t nwant)
{
    char q[512];
    snprintf(q, sizeof(q), "SELECT * FROM chamber WHERE device =~ /%s/", devices);
    struct table t = table_parse(influx_query(db, q));
    int ctime = col_of(&t, "time"), cdev = col_of(&t, "device"), csite = col_of(&t, "site");
    cr_assert(ctime >= 0 && cdev >= 0 && csite >= 0, "columns missing in the answer to %s", q);
    cr_assert_eq(t.nrows, nwant, "%s holds %zu points, the file %zu", db, t.nrows, nwant);

    /* Each row as a key like the file's, and its number of fields. */
    struct lp_point *got = calloc(t.nrows ? t.nrows : 1, sizeof(*got));
    for (size_t i = 0; i < t.nrows; i++) {
        char **r = t.rows[i];
        snprintf(got[i].key, sizeof(got[i].key), "device=%s,site=%s %s", r[cdev], r[csite],
                 r[ctime]);
        for (size_t c = 2; c < t.ncols; c++) /* after "name" and "tags" */
            got[i].nfields += (int)c != ctime && (int)c != cdev && (int)c != csite && r[c][0];
    }
    /* Sort the rows like the file's points, keeping the row of each. */
    size_t *order = malloc((t.nrows ? t.nrows : 1) * sizeof(*order));
    for (size_t i = 0; i < t.nrows; i++)
        order[i] = i;
    sort_ctx = got;
    qsort(order, t.nrows, sizeof(*order), cmp_row);
    for (size_t i = 0; i < nwant; i++) {
        struct lp_point *g = &got[order[i]];
        char **row = t.rows[order[i]];
        cr_assert_str_eq(g->key, want[i].key, "point %zu: the server has '%s', the file '%s'", i,
                         g->key, want[i].key);
        cr_assert_eq(g->nfields, want[i].nfields, "%s: %zu fields stored, %zu written", g->key,
                     g->nfields, want[i].nfields);
        for (size_t f = 0; f < want[i].nfields; f++) {
            char kv[256];
            snprintf(kv, sizeof(kv), "%s", want[i].fields[f]);
            char *eq = strchr(kv, '=');
            *eq = '\0';
            int c = col_of(&t, kv);
            cr_assert_geq(c, 0, "%s: field %s missing", g->key, kv);
            const char *stored = row[c], *written = eq + 1;
            if (written[0] == '"')
                cr_assert(strlen(stored) + 2 == strlen(written) &&
                              strncmp(stored, written + 1, strlen(stored)) == 0,
                          "%s: %s is %s, written %s", g->key, kv, stored, written);
            else
                cr_assert_eq(strtod(stored, NULL), strtod(written, NULL),
                             "%s: %s is %s, written %s", g->key, kv, stored, written);
        }
    }
    free(order);
    free(got);
    table_free(&t);

    /* Field types, as the server records them. */
    struct table ft = table_parse(influx_query(db, "SHOW FIELD KEYS FROM chamber"));
    int ck = col_of(&ft, "fieldKey"), ct = col_of(&ft, "fieldType");
    for (size_t i = 0; i < nwant; i++)
        for (size_t f = 0; f < want[i].nfields; f++) {
            char key[128];
            snprintf(key, sizeof(key), "%.*s", (int)strcspn(want[i].fields[f], "="),
                     want[i].fields[f]);
            const char *type = lp_type(strchr(want[i].fields[f], '=') + 1);
            bool found = false;
            for (size_t r = 0; r < ft.nrows && !found; r++)
                found = strcmp(ft.rows[r][ck], key) == 0 && strcmp(ft.rows[r][ct], type) == 0;
            cr_assert(found, "field %s is not stored as %s", key, type);
        }
    table_free(&ft);

    /* Per series and in total, counted by the server. */
    snprintf(q, sizeof(q),
             "SELECT count(humidity_pct) FROM chamber WHERE device =~ /%s/ GROUP BY device",
             devices);
    struct table ct2 = table_parse(influx_query(db, q));
    int ccount = col_of(&ct2, "count"), ctags = col_of(&ct2, "tags");
    size_t total = 0;
    for (size_t r = 0; r < ct2.nrows; r++) {
        char dev[64], prefix[80];
        /* tags column: device=chamber-N */
        snprintf(dev, sizeof(dev), "%s", ct2.rows[r][ctags] + strlen("device="));
        snprintf(prefix, sizeof(prefix), "device=%s,", dev);
        size_t in_file = 0;
        for (size_t i = 0; i < nwant; i++)
            in_file += strncmp(want[i].key, prefix, strlen(prefix)) == 0;
        size_t stored = strtoul(ct2.rows[r][ccount], NULL, 10);
        cr_assert_eq(stored, in_file, "series %s: %zu points stored, %zu in the file", dev, stored,
                     in_file);
        total += stored;
    }
    cr_assert_eq(total, nwant, "%zu points stored, %zu in the file", total, nwant);
    table_free(&ct2);
}

/* ---- the daemon ---------------------------------------------------------- */

/* sim -> file "copy.lp" and influxdb "db" (with @influx_opts). The sim input
 * emits @points points of 4 chambers, 20 per 50 ms collect, then exits. */
static void write_conf(const char *url, const char *influx_opts, int points, double fault_rate)
{
    char conf[4096];
    snprintf(conf, sizeof(conf),
             "global = { log_level = \"info\"; shutdown_timeout = \"30s\"; };\n"
             "inputs = ( { plugin = \"sim\"; name = \"fleet\"; interval = \"50ms\"; chambers = 4;\n"
             "             points_per_collect = 20; seed = 42; stop_after = %d; exit_when_done = "
             "true;\n"
             "             fault_rate = %.3f; tags = { site = \"lab-a\"; }; } );\n"
             "outputs = ( { plugin = \"file\"; name = \"copy\"; path = \"%s\"; "
             "flush_interval = \"100ms\"; },\n"
             "            { plugin = \"influxdb\"; name = \"db\"; url = \"%s\";\n"
             "              batch_points = 200; flush_interval = \"100ms\"; retry_initial = "
             "\"50ms\";\n"
             "              retry_max = \"1s\"; %s } );\n",
             points, fault_rate, gdt_path("copy.lp"), url, influx_opts);
    gdt_write_file(gdt_path("gatherd.conf"), conf);
}

/* Run the daemon until it exits by itself; its log, malloc'd. */
static char *run_to_end(int timeout_s)
{
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    int code = gdt_wait_exit(pid, timeout_s);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "gatherd exited with %d:\n%s", code, log);
    return log;
}

/* Wait until the daemon's log contains @what. */
static char *wait_for_log(const char *what, int timeout_s)
{
    for (int i = 0; i < timeout_s * 20; i++) {
        char *log = gdt_read_file(gdt_path("daemon.err"));
        if (strstr(log, what))
            return log;
        free(log);
        gdt_msleep(50);
    }
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_fail("'%s' never logged:\n%s", what, log);
    return log;
}

/* The whole file arrived in @db exactly once; the counters agree. */
static void assert_run_delivered(const char *log, const char *db, size_t points)
{
    size_t n;
    char *text;
    struct lp_point *want = file_points(gdt_path("copy.lp"), NULL, &n, &text);
    cr_assert_eq(n, points, "the file output holds %zu points, sim emitted %zu", n, points);
    gdt_counters c = gdt_counters_of(log, "output:influxdb/db");
    cr_assert_eq(c.dropped, 0, "dropped %llu:\n%s", c.dropped, log);
    cr_assert_eq(c.delivered, points, "delivered %llu of %zu", c.delivered, points);
    assert_db_holds(db, "^chamber-", want, n);
    free(want);
    free(text);
}

static unsigned long http_write_requests(void)
{
    struct table t = table_parse(influx_query("_internal", "SHOW STATS FOR 'httpd'"));
    int c = col_of(&t, "writeReq");
    cr_assert(c >= 0 && t.nrows == 1);
    unsigned long n = strtoul(t.rows[0][c], NULL, 10);
    table_free(&t);
    return n;
}

/* ---- against InfluxDB 1.6 ------------------------------------------------ */

Test(influxdb, v1_every_point_arrives_once_with_its_time_tags_types_and_values)
{
    gdt_influx_start(&srv);
    write_conf(gdt_influx_url(&srv), "database = \"gatherd\";", 2000, 0.05);
    char *log = run_to_end(60);
    assert_run_delivered(log, "gatherd", 2000);
    free(log);
}

Test(influxdb, v1_gzip_bodies_arrive_the_same)
{
    gdt_influx_start(&srv);
    write_conf(gdt_influx_url(&srv), "database = \"gatherd\"; gzip = true; gzip_level = 6;", 2000,
               0.05);
    char *log = run_to_end(60);
    assert_run_delivered(log, "gatherd", 2000);
    free(log);
}

Test(influxdb, v1_max_body_bytes_splits_batches_on_line_boundaries)
{
    gdt_influx_start(&srv);
    unsigned long before = http_write_requests();
    /* About 20 lines per request instead of 200. */
    write_conf(gdt_influx_url(&srv), "database = \"gatherd\"; max_body_bytes = 2048;", 2000, 0.05);
    char *log = run_to_end(60);
    assert_run_delivered(log, "gatherd", 2000);
    unsigned long requests = http_write_requests() - before;
    cr_assert_geq(requests, 2000 / 20, "%lu write requests for 2000 points of ~100 bytes",
                  requests);
    free(log);
}

Test(influxdb, server_stopped_for_20s_loses_nothing)
{
    gdt_influx_start(&srv);
    /* 400 points/s for about 25 s: the server is away for 20 s of it. */
    write_conf(gdt_influx_url(&srv), "database = \"gatherd\";", 10000, 0.0);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    gdt_msleep(2500);
    gdt_influx_stop(&srv);
    gdt_msleep(20000);
    gdt_influx_start(&srv);
    int code = gdt_wait_exit(pid, 90);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "gatherd exited with %d:\n%s", code, log);
    cr_assert(strstr(log, "influxdb: POST to"), "the outage was noticed:\n%s", log);
    gdt_counters c = gdt_counters_of(log, "output:influxdb/db");
    cr_assert_gt(c.retries, 0, "no retry during a 20 s outage");
    assert_run_delivered(log, "gatherd", 10000);
    free(log);
}

Test(influxdb, field_type_conflicts_drop_only_the_conflicting_points)
{
    gdt_influx_start(&srv);
    /* "fault" becomes an integer field in the shards the run writes to; the
     * sim's faulty points carry fault="sensor_timeout" (a string). */
    int64_t now = (int64_t)time(NULL) * 1000000000LL;
    char seed[256];
    snprintf(seed, sizeof(seed),
             "chamber,device=seed,site=x fault=1i %lld\n"
             "chamber,device=seed,site=x fault=2i %lld\n",
             (long long)now, (long long)(now + 120 * 1000000000LL));
    influx_write_lines("gatherd", seed);

    write_conf(gdt_influx_url(&srv), "database = \"gatherd\";", 2000, 0.1);
    char *log = run_to_end(60);
    size_t n, nall;
    char *text, *text_all;
    struct lp_point *good = file_points(gdt_path("copy.lp"), "fault=", &n, &text);
    free(file_points(gdt_path("copy.lp"), NULL, &nall, &text_all));
    free(text_all);
    cr_assert_eq(nall, 2000);
    size_t bad = nall - n;
    cr_assert_gt(bad, 50, "the sim emitted only %zu faulty points", bad);

    gdt_counters c = gdt_counters_of(log, "output:influxdb/db");
    cr_assert_eq(c.rejected, bad, "%llu points rejected, %zu conflict:\n%s", c.rejected, bad, log);
    cr_assert_eq(c.dropped, bad);
    cr_assert_eq(c.delivered, n);
    cr_assert(strstr(log, "field type conflict"), "the server's reason is logged:\n%s", log);
    assert_db_holds("gatherd", "^chamber-", good, n);
    free(good);
    free(text);
    free(log);
}

Test(influxdb, missing_database_is_a_clear_error_and_loses_nothing)
{
    gdt_influx_start(&srv);
    write_conf(gdt_influx_url(&srv), "database = \"nosuch\";", 1200, 0.0);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    free(wait_for_log("database \"nosuch\" not found (HTTP 404: database not found", 20));
    influx_exec("CREATE DATABASE nosuch");
    int code = gdt_wait_exit(pid, 60);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "gatherd exited with %d:\n%s", code, log);
    cr_assert(strstr(log, "retrying, nothing is dropped"), "%s", log);
    assert_run_delivered(log, "nosuch", 1200);
    free(log);
}

Test(influxdb, v2_against_a_server_that_has_the_v2_write_api)
{
    gdt_influx_start(&srv);
    long st;
    free(http("/api/v2/write?org=x&bucket=gatherd&precision=ns", "chamber,device=probe v=1 1\n",
              &st));
    if (st == 404) {
        /* Criterion runs no .fini after a skip: clean up first. */
        gdt_influx_destroy(&srv);
        gdt_teardown();
        cr_skip_test("this InfluxDB (Debian's 1.6) has no /api/v2/write (1.8 and 2.x have): the "
                     "v2 requests are checked against a scripted responder "
                     "(v2_posts_to_api_v2_write_with_org_bucket_and_token)");
    }
    /* InfluxDB 1.8's compatibility endpoint: bucket "db" (or "db/rp"), any
     * org, a token "user:password" (auth is off here). */
    write_conf(gdt_influx_url(&srv),
               "api = \"v2\"; org = \"any\"; bucket = \"gatherd\"; token = \"user:password\";",
               2000, 0.05);
    char *log = run_to_end(60);
    assert_run_delivered(log, "gatherd", 2000);
    free(log);
}

/* ---- against a scripted HTTP responder ----------------------------------- */

struct req {
    char line[1024]; /* "POST /write?... HTTP/1.1" */
    char *headers;
    char *body;
    size_t body_len;
    int64_t t_ms;
    int status;
};

struct fake;
/* Decide the response to request @i: return the status; may fill @hdrs
 * (extra header lines, each ending in \r\n) and @body. */
typedef int (*policy_fn)(struct fake *f, size_t i, const struct req *r, char *hdrs, char *body);

struct fake {
    int lfd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    policy_fn policy;
    int param;
    pthread_mutex_t lock;
    struct req *reqs;
    size_t n, cap;
    char url[64];
};

/* Read exactly one request from @fd into @r; false on EOF or stop. */
static bool read_request(struct fake *f, int fd, struct req *r)
{
    size_t cap = 8192, have = 0;
    char *buf = malloc(cap);
    char *end = NULL;
    size_t body_len = 0, head_len = 0;
    for (;;) {
        if (!end) {
            buf[have] = '\0';
            end = strstr(buf, "\r\n\r\n");
            if (end) {
                head_len = (size_t)(end - buf) + 4;
                char *cl = strcasestr(buf, "\r\nContent-Length:");
                body_len = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            }
        }
        if (end && have >= head_len + body_len)
            break;
        if (have + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, 100);
        if (atomic_load(&f->stop)) {
            free(buf);
            return false;
        }
        if (pr <= 0)
            continue;
        ssize_t got = read(fd, buf + have, cap - have - 1);
        if (got <= 0) {
            free(buf);
            return false;
        }
        have += (size_t)got;
    }
    memset(r, 0, sizeof(*r));
    size_t ll = strcspn(buf, "\r");
    snprintf(r->line, sizeof(r->line), "%.*s", (int)ll, buf);
    r->headers = strndup(buf, head_len);
    r->body = malloc(body_len + 1);
    memcpy(r->body, buf + head_len, body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    r->t_ms = mono_ms();
    free(buf);
    return true;
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        struct req r;
        while (read_request(f, fd, &r)) {
            char hdrs[512] = "", body[512] = "";
            pthread_mutex_lock(&f->lock);
            size_t i = f->n;
            pthread_mutex_unlock(&f->lock);
            r.status = f->policy(f, i, &r, hdrs, body);
            pthread_mutex_lock(&f->lock);
            if (f->n == f->cap)
                f->reqs = realloc(f->reqs, (f->cap = f->cap ? f->cap * 2 : 64) * sizeof(r));
            f->reqs[f->n++] = r;
            pthread_mutex_unlock(&f->lock);
            char resp[2048];
            int n = snprintf(resp, sizeof(resp),
                             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%s"
                             "Content-Length: %zu\r\n\r\n%s",
                             r.status, hdrs, strlen(body), body);
            if (write(fd, resp, (size_t)n) != n)
                break;
        }
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f, policy_fn policy, int param)
{
    memset(f, 0, sizeof(*f));
    f->policy = policy;
    f->param = param;
    pthread_mutex_init(&f->lock, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(f->lfd, 8), 0);
    cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->port);
    cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

/* Stop answering; the requests stay readable until fake_free(). */
static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

static void fake_free(struct fake *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->reqs[i].headers);
        free(f->reqs[i].body);
    }
    free(f->reqs);
    pthread_mutex_destroy(&f->lock);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of every request answered 2xx are exactly the lines of the
 * file output that do not contain @skip (NULL: none), each once. */
static void assert_accepted_once(struct fake *f, const char *skip)
{
    char *text = gdt_read_file(gdt_path("copy.lp"));
    size_t nwant = 0, ngot = 0, cap = 4096;
    char **want = malloc(cap * sizeof(char *)), **got = malloc(cap * sizeof(char *));
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cr_assert_lt(nwant, cap);
        if (!skip || !strstr(l, skip))
            want[nwant++] = l;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (f->reqs[i].status / 100 != 2)
            continue;
        for (char *l = strtok_r(f->reqs[i].body, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            cr_assert_lt(ngot, cap);
            got[ngot++] = l;
        }
    }
    cr_assert_eq(ngot, nwant, "%zu lines accepted, %zu written to the file", ngot, nwant);
    qsort(want, nwant, sizeof(char *), cmp_str);
    qsort(got, ngot, sizeof(char *), cmp_str);
    for (size_t i = 0; i < nwant; i++)
        cr_assert_str_eq(got[i], want[i]);
    free(want);
    free(got);
    free(text);
}

static int always_204(struct fake *f, size_t i, const struct req *r, char *hdrs, char *body)
{
    (void)f, (void)i, (void)r, (void)hdrs, (void)body;
    return 204;
}

Test(influxdb, v2_posts_to_api_v2_write_with_org_bucket_and_token)
{
    struct fake f;
    fake_start(&f, always_204, 0);
    write_conf(f.url,
               "api = \"v2\"; org = \"acme lab\"; bucket = \"chambers\"; token = "
               "\"s3cr3t-t0ken-42\"; precision = \"us\"; gzip = true;",
               400, 0.0);
    char *log = run_to_end(60);
    fake_stop(&f);
    cr_assert_geq(f.n, 2);
    for (size_t i = 0; i < f.n; i++) {
        const struct req *r = &f.reqs[i];
        cr_assert_str_eq(r->line, "POST /api/v2/write?org=acme%20lab&bucket=chambers&precision=us "
                                  "HTTP/1.1");
        cr_assert(strstr(r->headers, "\r\nAuthorization: Token s3cr3t-t0ken-42\r\n"), "%s",
                  r->headers);
        cr_assert(strstr(r->headers, "\r\nContent-Encoding: gzip\r\n"), "%s", r->headers);
        cr_assert(strstr(r->headers, "\r\nContent-Type: text/plain; charset=utf-8\r\n"), "%s",
                  r->headers);
        cr_assert(strstr(r->headers, "\r\nUser-Agent: gatherd/"), "%s", r->headers);
        cr_assert_null(strcasestr(r->headers, "Expect:"), "%s", r->headers);
        cr_assert(r->body_len > 18 && (unsigned char)r->body[0] == 0x1f &&
                      (unsigned char)r->body[1] == 0x8b,
                  "the body is gzip");
    }
    gdt_counters c = gdt_counters_of(log, "output:influxdb/db");
    cr_assert_eq(c.delivered, 400);
    cr_assert_null(strstr(log, "s3cr3t-t0ken-42"), "the token leaked into the log:\n%s", log);
    fake_free(&f);
    free(log);
}

Test(influxdb, v1_sends_database_rp_precision_and_basic_auth)
{
    struct fake f;
    fake_start(&f, always_204, 0);
    write_conf(f.url,
               "database = \"gatherd\"; retention_policy = \"one week\"; precision = \"us\";\n"
               "username = \"writer\"; password = \"pa55word\";",
               400, 0.0);
    char *log = run_to_end(60);
    fake_stop(&f);
    cr_assert_geq(f.n, 2);
    /* base64("writer:pa55word") */
    for (size_t i = 0; i < f.n; i++) {
        const struct req *r = &f.reqs[i];
        cr_assert_str_eq(r->line, "POST /write?db=gatherd&rp=one%20week&precision=u HTTP/1.1");
        cr_assert(strstr(r->headers, "\r\nAuthorization: Basic d3JpdGVyOnBhNTV3b3Jk\r\n"), "%s",
                  r->headers);
        /* Microseconds: 16 digits after the last space of each line. */
        const char *nl = strchr(r->body, '\n');
        const char *sp = memrchr(r->body, ' ', (size_t)(nl - r->body));
        cr_assert_eq(nl - sp - 1, 16, "%.*s", (int)(nl - r->body), r->body);
    }
    gdt_counters c = gdt_counters_of(log, "output:influxdb/db");
    cr_assert_eq(c.delivered, 400);
    cr_assert_null(strstr(log, "pa55word"), "%s", log);
    fake_free(&f);
    free(log);
}

/* 401 for the first @param requests. */
static int auth_fails(struct fake *f, size_t i, const struct req *r, char *hdrs, char *body)
{
    (void)r, (void)hdrs;
    if (i >= (size_t)f->param)
        return 204;
    strcpy(body, "{\"error\":\"authorization failed\"}");
    return 401;
}

Test(influxdb, credentials_refused_are_logged_and_retried_without_loss)
{
    struct fake f;
    fake_start(&f, auth_fails, 3);
    write_conf(f.url, "database = \"gatherd\"; username = \"writer\"; password = \"wrong-one\";",
               400, 0.0);
    char *log = run_to_end(60);
    fake_stop(&f);
    cr_assert(strstr(log, "refused the credentials (HTTP 401: authorization failed); check "
                          "username and password"),
              "%s", log);
    gdt_counters c = gdt_counters_of(log, "output:influxdb/db");
    cr_assert_eq(c.dropped, 0);
    cr_assert_eq(c.delivered, 400);
    cr_assert_geq(c.retries, 3);
    assert_accepted_once(&f, NULL);
    fake_free(&f);
    free(log);
}

/* 429 with Retry-After: @param s, then 503, then 204. */
static int busy_first(struct fake *f, size_t i, const struct req *r, char *hdrs, char *body)
{
    (void)r;
    if (i == 0) {
        sprintf(hdrs, "Retry-After: %d\r\n", f->param);
        strcpy(body, "{\"error\":\"too many requests\"}");
        return 429;
    }
    if (i == 1) {
        strcpy(body, "{\"error\":\"engine: cache-max-memory-size exceeded\"}");
        return 503;
    }
    return 204;
}

Test(influxdb, busy_server_is_retried_after_its_retry_after)
{
    struct fake f;
    fake_start(&f, busy_first, 2);
    write_conf(f.url, "database = \"gatherd\";", 400, 0.0);
    char *log = run_to_end(60);
    fake_stop(&f);
    cr_assert_geq(f.n, 3);
    cr_assert_eq(f.reqs[0].status, 429);
    int64_t gap = f.reqs[1].t_ms - f.reqs[0].t_ms;
    cr_assert_geq(gap, 1900, "the next request came %lld ms after Retry-After: 2", (long long)gap);
    cr_assert(strstr(log, "(HTTP 429: too many requests); retrying after 2 s (Retry-After)"), "%s",
              log);
    cr_assert(strstr(log, "(HTTP 503: engine: cache-max-memory-size exceeded); retrying"), "%s",
              log);
    gdt_counters c = gdt_counters_of(log, "output:influxdb/db");
    cr_assert_eq(c.dropped, 0);
    cr_assert_eq(c.delivered, 400);
    assert_accepted_once(&f, NULL);
    fake_free(&f);
    free(log);
}

/* 413 for bodies larger than @param bytes. */
static int small_bodies_only(struct fake *f, size_t i, const struct req *r, char *hdrs, char *body)
{
    (void)i, (void)hdrs;
    if (r->body_len <= (size_t)f->param)
        return 204;
    strcpy(body, "{\"error\":\"Request Entity Too Large\"}");
    return 413;
}

Test(influxdb, request_entity_too_large_is_split_and_resent)
{
    struct fake f;
    fake_start(&f, small_bodies_only, 3000);
    write_conf(f.url, "database = \"gatherd\";", 1000, 0.0);
    char *log = run_to_end(60);
    fake_stop(&f);
    cr_assert(strstr(log, "(HTTP 413: Request Entity Too Large); sending at most"), "%s", log);
    gdt_counters c = gdt_counters_of(log, "output:influxdb/db");
    cr_assert_eq(c.dropped, 0, "%s", log);
    cr_assert_eq(c.delivered, 1000);
    assert_accepted_once(&f, NULL);
    fake_free(&f);
    free(log);
}

/* Like InfluxDB 1.x with lines it cannot parse: 400 "partial write: unable
 * to parse" (with a useless dropped=0) for any body holding a line of
 * chamber-2; this responder writes nothing of such a request. */
static int chamber_2_unparsable(struct fake *f, size_t i, const struct req *r, char *hdrs,
                                char *body)
{
    (void)f, (void)i, (void)hdrs;
    if (!strstr(r->body, "device=chamber-2,"))
        return 204;
    strcpy(body, "{\"error\":\"partial write: unable to parse 'chamber,device=chamber-2': "
                 "invalid field format dropped=0\"}");
    return 400;
}

Test(influxdb, unparsable_points_are_isolated_and_only_they_are_dropped)
{
    struct fake f;
    fake_start(&f, chamber_2_unparsable, 0);
    write_conf(f.url, "database = \"gatherd\";", 800, 0.0);
    char *log = run_to_end(60);
    fake_stop(&f);
    char *text = gdt_read_file(gdt_path("copy.lp"));
    size_t bad = 0;
    for (const char *p = text; (p = strstr(p, "device=chamber-2,")); p++)
        bad++;
    free(text);
    cr_assert_eq(bad, 200, "a quarter of the points are chamber-2's");
    gdt_counters c = gdt_counters_of(log, "output:influxdb/db");
    cr_assert_eq(c.rejected, bad, "%llu rejected, %zu unparsable:\n%s", c.rejected, bad, log);
    cr_assert_eq(c.delivered, 800 - bad);
    cr_assert(strstr(log, "point rejected (HTTP 400: partial write: unable to parse"), "%s", log);
    assert_accepted_once(&f, "device=chamber-2,");
    fake_free(&f);
    free(log);
}

Test(influxdb, v2_without_token_refuses_to_start)
{
    write_conf("http://127.0.0.1:9", "api = \"v2\"; org = \"acme\"; bucket = \"b\";", 10, 0.0);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    int code = gdt_wait_exit(pid, 30);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_neq(code, 0, "%s", log);
    cr_assert(strstr(log, "api = \"v2\" needs org, bucket and token (missing: token)"), "%s", log);
    free(log);
}
