/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fault tests: the built daemon under the faults a collector meets in the
 * field, each bounded in time and each checked by the accounting invariant
 * and by the set of sequence numbers that arrived. The `gen` test input
 * emits points "gen,run=R seq=Ni,v=.." at a set rate; the `fault` test
 * output fails, delays or rejects on command and appends what it delivered
 * to a file.
 *
 *  - kill -9 in the middle of a run with the spool, then a restart;
 *  - the spool on a small filesystem that fills up;
 *  - SIGHUP with a changed configuration every 2 s under load;
 *  - PostgreSQL stopped for 60 s at 20,000 points/s;
 *  - InfluxDB unreachable for 30 s.
 */
#include "harness.h"
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static gdt_server pg, influx;
static char mounted[128];

static void faults_fini(void)
{
    if (mounted[0]) {
        umount(mounted);
        mounted[0] = '\0';
    }
    gdt_pg_destroy(&pg);
    gdt_influx_destroy(&influx);
    gdt_teardown();
}

TestSuite(faults, .init = gdt_setup, .fini = faults_fini, .timeout = 240);

/* ---- sequence sets ------------------------------------------------------- */

struct seqs {
    unsigned char *seen; /* count per seq, saturating */
    size_t cap;
    size_t lines, distinct, dups;
    long long max;
};

static void seqs_add(struct seqs *s, long long seq)
{
    cr_assert_geq(seq, 0);
    if ((size_t)seq >= s->cap) {
        size_t ncap = s->cap ? s->cap : 1 << 16;
        while (ncap <= (size_t)seq)
            ncap *= 2;
        s->seen = realloc(s->seen, ncap);
        cr_assert_not_null(s->seen);
        memset(s->seen + s->cap, 0, ncap - s->cap);
        s->cap = ncap;
    }
    s->lines++;
    if (s->seen[seq]++ == 0)
        s->distinct++;
    else
        s->dups++;
    if (s->seen[seq] == 0)
        s->seen[seq] = 255;
    if (seq > s->max)
        s->max = seq;
}

/* The seq values of run @run in the line-protocol file @path. */
static struct seqs seqs_of_file(const char *path, const char *run)
{
    struct seqs s = {.max = -1};
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "gen,run=%s seq=", run);
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, prefix, strlen(prefix)) == 0)
            seqs_add(&s, atoll(line + strlen(prefix)));
    }
    if (f)
        fclose(f);
    return s;
}

/* Every seq of @sub is in @super. */
static void assert_subset(const struct seqs *sub, const struct seqs *super, const char *what)
{
    size_t missing = 0;
    long long first = -1;
    for (long long i = 0; i <= sub->max; i++) {
        if (sub->seen[i] && ((size_t)i >= super->cap || !super->seen[i])) {
            if (first < 0)
                first = i;
            missing++;
        }
    }
    cr_assert_eq(missing, 0, "%s: %zu points missing (first seq %lld)", what, missing, first);
}

/* Exactly 0..n-1, every one at least once. */
static void assert_complete(const struct seqs *s, size_t n, const char *what)
{
    cr_assert_eq(s->distinct, n, "%s: %zu distinct seqs, %zu expected", what, s->distinct, n);
    cr_assert_eq(s->max, (long long)n - 1, "%s: highest seq %lld", what, s->max);
}

static void seqs_free(struct seqs *s)
{
    free(s->seen);
    memset(s, 0, sizeof(*s));
}

static void write_conf(const char *text)
{
    gdt_write_file(gdt_path("gatherd.conf"), text);
}

/* ---- kill -9 with the spool ---------------------------------------------- */

Test(faults, kill_9_with_the_spool_loses_nothing_that_was_handed_over)
{
    /* The target comes first, so every batch the reference holds was pushed
     * (durably: spool_always, fdatasync per batch) to the target before. */
    char conf[4096];
    snprintf(conf, sizeof(conf),
             "global = { spool_dir = \"%s\"; log_level = \"info\"; shutdown_timeout = \"30s\"; };\n"
             "inputs = ( { plugin = \"gen\"; name = \"gen\"; interval = 0; run = \"%%s\";\n"
             "             batch = 200; rate = 20000.0; %%s } );\n"
             "outputs = ( { plugin = \"fault\"; name = \"target\"; path = \"%s\";\n"
             "              control = \"%s\"; batch_points = 1000; flush_interval = \"20ms\";\n"
             "              retry_initial = \"10ms\"; retry_max = \"100ms\";\n"
             "              queue = { overflow = \"spool\"; spool_always = true;\n"
             "                        spool_sync = \"batch\"; }; },\n"
             "            { plugin = \"fault\"; name = \"ref\"; path = \"%s\";\n"
             "              batch_points = 1000; flush_interval = \"20ms\";\n"
             "              queue = { overflow = \"spool\"; spool_always = true;\n"
             "                        spool_sync = \"batch\"; }; } );\n",
             gdt_path("spool"), gdt_path("target.lp"), gdt_path("control"),
             gdt_path("ref.lp"));
    char run1[4096], run2[4096];
    snprintf(run1, sizeof(run1), conf, "1", "");
    snprintf(run2, sizeof(run2), conf, "2", "total = 200; exit_when_done = true;");

    /* Run 1: the target fails every write, so what it gets sits in its
     * spool; killed after 3 s. */
    gdt_write_file(gdt_path("control"), "fail\n");
    write_conf(run1);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    gdt_msleep(3000);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(gdt_wait_exit(pid, 10), 128 + SIGKILL);
    struct seqs before = seqs_of_file(gdt_path("target.lp"), "1");
    cr_assert_eq(before.lines, 0, "the target delivered while failing");

    /* Run 2: the target works; the spools replay, then a short run ends. */
    gdt_write_file(gdt_path("control"), "ok\n");
    write_conf(run2);
    pid = gdt_spawn(gdt_path("gatherd.conf"));
    int code = gdt_wait_exit(pid, 120);
    char *log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    cr_assert(strstr(log, "replaying"), "nothing replayed:\n%s", log);
    gdt_counters t = gdt_counters_of(log, "output:fault/target");
    gdt_counters r = gdt_counters_of(log, "output:fault/ref");
    cr_assert_eq(t.dropped, 0, "%s", log);
    cr_assert_eq(r.dropped, 0, "%s", log);
    cr_assert_eq(t.queued + r.queued, 0, "spool left behind:\n%s", log);

    struct seqs ref = seqs_of_file(gdt_path("ref.lp"), "1");
    struct seqs got = seqs_of_file(gdt_path("target.lp"), "1");
    cr_assert_gt(ref.distinct, 20000, "only %zu points before the kill", ref.distinct);
    assert_complete(&ref, ref.distinct, "reference");
    assert_subset(&ref, &got, "target after the restart");
    struct seqs tail = seqs_of_file(gdt_path("target.lp"), "2");
    assert_complete(&tail, 200, "second run");
    fprintf(stderr, "kill -9: %zu points handed over before the kill, %zu arrived (%zu duplicates)\n",
            ref.distinct, got.distinct, got.dups);
    seqs_free(&ref);
    seqs_free(&got);
    seqs_free(&tail);
    seqs_free(&before);
    free(log);
}

/* ---- a small filesystem fills up ----------------------------------------- */

Test(faults, a_full_spool_filesystem_drops_the_oldest_and_keeps_running)
{
    snprintf(mounted, sizeof(mounted), "%s", gdt_path("spool"));
    cr_assert_eq(mkdir(mounted, 0700), 0);
    if (mount("tmpfs", mounted, "tmpfs", 0, "size=3m") != 0) {
        mounted[0] = '\0';
        const char *ci = getenv("CI");
        if (ci && strcmp(ci, "true") == 0)
            cr_assert_fail("cannot mount a 3 MiB tmpfs (needs root): %m");
        cr_skip_test("cannot mount a 3 MiB tmpfs (needs root); skipping");
    }
    char conf[4096];
    snprintf(conf, sizeof(conf),
             "global = { spool_dir = \"%s\"; log_level = \"info\"; shutdown_timeout = \"2s\"; };\n"
             "inputs = ( { plugin = \"gen\"; name = \"gen\"; interval = 0; batch = 1000;\n"
             "             rate = 200000.0; } );\n"
             "outputs = ( { plugin = \"fault\"; name = \"target\"; path = \"%s\";\n"
             "              control = \"%s\"; retry_max = \"200ms\";\n"
             "              queue = { overflow = \"spool\"; spool_always = true;\n"
             "                        spool_sync = \"none\"; }; } );\n",
             mounted, gdt_path("target.lp"), gdt_path("control"));
    gdt_write_file(gdt_path("control"), "fail\n");
    write_conf(conf);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    gdt_msleep(5000);
    cr_assert_eq(kill(pid, 0), 0, "gatherd died on a full disk:\n%s", gdt_daemon_log());
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int code = gdt_wait_exit(pid, 30);
    char *log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    gdt_counters t = gdt_counters_of(log, "output:fault/target");
    cr_assert_gt(t.received, 100000, "the disk filled with %llu points", t.received);
    cr_assert(strstr(log, "dropped{spool_full}="), "no spool_full count:\n%.4000s", log);
    cr_assert(strstr(log, "spool: full") || strstr(log, "disk full"),
              "no log line about the full spool:\n%.4000s", log);
    cr_assert_gt(t.queued, 0, "what fits stays spooled");
    free(log);
}

/* ---- SIGHUP under load ---------------------------------------------------- */

Test(faults, sighup_with_a_changed_config_every_2_s_loses_nothing)
{
    const long long total = 80000; /* 8 s at 10,000 points/s */
    char conf[2][4096];
    for (int i = 0; i < 2; i++)
        snprintf(conf[i], sizeof(conf[i]),
                 "global = { log_level = \"info\"; shutdown_timeout = \"30s\"; };\n"
                 "inputs = ( { plugin = \"gen\"; name = \"gen\"; interval = 0; batch = 100;\n"
                 "             rate = 10000.0; total = %lld; exit_when_done = true; } );\n"
                 "outputs = ( { plugin = \"fault\"; name = \"sink\"; path = \"%s\";\n"
                 "              batch_points = %d; flush_interval = \"%s\"; } );\n",
                 total, gdt_path("sink.lp"), i ? 700 : 300, i ? "30ms" : "10ms");
    write_conf(conf[0]);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    int reloads = 0;
    for (int k = 1; k <= 4; k++) {
        gdt_msleep(2000);
        if (kill(pid, 0) != 0)
            break;
        write_conf(conf[k % 2]);
        cr_assert_eq(kill(pid, SIGHUP), 0);
        reloads++;
    }
    int code = gdt_wait_exit(pid, 60);
    char *log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    cr_assert_geq(reloads, 3);
    cr_assert(strstr(log, "SIGHUP"), "no reload logged:\n%s", log);
    struct seqs got = seqs_of_file(gdt_path("sink.lp"), "1");
    assert_complete(&got, (size_t)total, "sink");
    cr_assert_eq(got.dups, 0, "%zu duplicates", got.dups);
    fprintf(stderr, "sighup: %d reloads, %zu points, none lost\n", reloads, got.distinct);
    seqs_free(&got);
    free(log);
}

/* ---- PostgreSQL down for 60 s --------------------------------------------- */

static long long pg_num(PGconn *c, const char *q)
{
    PGresult *r = PQexec(c, q);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", q, PQerrorMessage(c));
    long long v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

Test(faults, postgres_stopped_for_60_s_at_20000_points_per_s_loses_nothing)
{
    gdt_pg_start(&pg);
    char conf[4096];
    snprintf(conf, sizeof(conf),
             "global = { log_level = \"info\"; shutdown_timeout = \"60s\"; };\n"
             "inputs = ( { plugin = \"gen\"; name = \"gen\"; interval = 0; batch = 500;\n"
             "             rate = 20000.0; } );\n"
             "outputs = ( { plugin = \"postgres\"; name = \"pg\"; conninfo = \"%s\";\n"
             "              batch_points = 5000; flush_interval = \"100ms\"; retry_max = \"2s\";\n"
             "              queue = { max_points = 2000000; }; },\n"
             "            { plugin = \"fault\"; name = \"ref\"; path = \"%s\"; } );\n",
             gdt_pg_conninfo(&pg), gdt_path("ref.lp"));
    write_conf(conf);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    gdt_msleep(4000);
    gdt_pg_stop(&pg);
    sleep(60);
    gdt_pg_start(&pg);
    gdt_msleep(4000);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int code = gdt_wait_exit(pid, 90);
    char *log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    gdt_counters c = gdt_counters_of(log, "output:postgres/pg");
    cr_assert_eq(c.dropped, 0, "%s", log);
    cr_assert_gt(c.retries, 0, "the outage caused no retry");

    struct seqs ref = seqs_of_file(gdt_path("ref.lp"), "1");
    cr_assert_gt(ref.distinct, 1000000, "only %zu points generated", ref.distinct);
    PGconn *db = PQconnectdb(gdt_pg_conninfo(&pg));
    cr_assert_eq(PQstatus(db), CONNECTION_OK);
    long long rows = pg_num(db, "SELECT count(*) FROM gen WHERE run = '1'");
    long long distinct = pg_num(db, "SELECT count(DISTINCT seq) FROM gen WHERE run = '1'");
    long long max = pg_num(db, "SELECT max(seq) FROM gen WHERE run = '1'");
    PQfinish(db);
    cr_assert_eq(distinct, (long long)ref.distinct, "rows for %lld of %zu points", distinct,
                 ref.distinct);
    cr_assert_eq(max, ref.max);
    cr_assert_leq(rows - distinct, 5000, "%lld duplicates: more than one batch", rows - distinct);
    fprintf(stderr, "postgres outage: %zu points, %lld rows, %lld duplicates, %llu retries\n",
            ref.distinct, rows, rows - distinct, c.retries);
    seqs_free(&ref);
    free(log);
}

/* ---- InfluxDB unreachable for 30 s ----------------------------------------- */

struct mem {
    char *p;
    size_t n;
};

static size_t collect_body(char *d, size_t sz, size_t nm, void *ud)
{
    struct mem *m = ud;
    m->p = realloc(m->p, m->n + sz * nm + 1);
    memcpy(m->p + m->n, d, sz * nm);
    m->n += sz * nm;
    m->p[m->n] = '\0';
    return sz * nm;
}

static long long influx_count(const char *q)
{
    CURL *c = curl_easy_init();
    char *esc = curl_easy_escape(c, q, 0), url[1024];
    snprintf(url, sizeof(url), "%s/query?db=gatherd&q=%s", gdt_influx_url(&influx), esc);
    curl_free(esc);
    struct mem m = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    /* {"results":[{"statement_id":0,"series":[{..."values":[["1970-...",N]]}]}]} */
    char *v = m.p ? strstr(m.p, "\"values\":[[") : NULL;
    cr_assert_not_null(v, "query answer: %s", m.p ? m.p : "");
    char *comma = strchr(v, ',');
    long long n = comma ? atoll(comma + 1) : -1;
    free(m.p);
    return n;
}

Test(faults, influxdb_unreachable_for_30_s_loses_nothing)
{
    gdt_influx_start(&influx);
    char conf[4096];
    snprintf(conf, sizeof(conf),
             "global = { log_level = \"info\"; shutdown_timeout = \"60s\"; };\n"
             "inputs = ( { plugin = \"gen\"; name = \"gen\"; interval = 0; batch = 100;\n"
             "             rate = 5000.0; } );\n"
             "outputs = ( { plugin = \"influxdb\"; name = \"tsdb\"; url = \"%s\";\n"
             "              database = \"gatherd\"; batch_points = 5000; retry_max = \"2s\";\n"
             "              queue = { max_points = 1000000; }; },\n"
             "            { plugin = \"fault\"; name = \"ref\"; path = \"%s\"; } );\n",
             gdt_influx_url(&influx), gdt_path("ref.lp"));
    write_conf(conf);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    gdt_msleep(3000);
    gdt_influx_stop(&influx);
    sleep(30);
    gdt_influx_start(&influx);
    gdt_msleep(3000);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int code = gdt_wait_exit(pid, 90);
    char *log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    gdt_counters c = gdt_counters_of(log, "output:influxdb/tsdb");
    cr_assert_eq(c.dropped, 0, "%s", log);
    cr_assert_gt(c.retries, 0, "the outage caused no retry");
    struct seqs ref = seqs_of_file(gdt_path("ref.lp"), "1");
    cr_assert_gt(ref.distinct, 100000, "only %zu points generated", ref.distinct);
    long long n = influx_count("SELECT count(seq) FROM gen WHERE run = '1'");
    cr_assert_eq(n, (long long)ref.distinct, "InfluxDB holds %lld of %zu points", n, ref.distinct);
    fprintf(stderr, "influxdb outage: %zu points, all stored, %llu retries\n", ref.distinct,
            c.retries);
    seqs_free(&ref);
    free(log);
}
