/* SPDX-License-Identifier: Apache-2.0 */
/* End to end: the built gatherd binary with real configs, signals and
 * files. Checks that points arrive, that reload keeps them flowing, and that
 * nothing is lost across SIGHUP and SIGTERM. */
#include "harness.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


TestSuite(daemon, .init = gdt_setup, .fini = gdt_teardown, .timeout = 120);

/* Sequence numbers "v=<n>i" of every line in @path, in file order. */
static long *read_seqs(const char *path, size_t *n)
{
    char *text = gdt_read_file(path);
    size_t cap = 1024;
    long *v = malloc(cap * sizeof(*v));
    *n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *p = strstr(line, " v=");
        cr_assert_not_null(p, "unexpected line: %s", line);
        if (*n == cap)
            v = realloc(v, (cap *= 2) * sizeof(*v));
        v[(*n)++] = strtol(p + 3, NULL, 10);
    }
    free(text);
    return v;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Check the sorted seqs are exactly lo..hi with no gap and no duplicate. */
static void assert_contiguous(long *v, size_t n, long lo, const char *what)
{
    qsort(v, n, sizeof(*v), cmp_long);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(v[i], lo + (long)i, "%s: expected seq %ld at %zu, found %ld (lost or duplicated)",
                     what, lo + (long)i, i, v[i]);
}

/* The output's counters balance with nothing dropped or left queued; with
 * @expect_delivered >= 0, exactly that many points were delivered. */
static void assert_output_accounting(const char *log, const char *who, long expect_delivered)
{
    gdt_counters c = gdt_counters_of(log, who);
    cr_assert_eq(c.dropped, 0, "%s dropped %llu points", who, c.dropped);
    cr_assert_eq(c.queued, 0);
    if (expect_delivered >= 0)
        cr_assert_eq((long)c.delivered, expect_delivered, "%s delivered %llu, file has %ld", who,
                     c.delivered, expect_delivered);
}

static const char *conf_v1 =
    "global = { interval = 0.05; shutdown_timeout = \"5s\"; log_level = \"info\"; };\n"
    "inputs = ( { plugin = \"good_input\"; name = \"seq\"; interval = \"20ms\"; count = 7; } );\n"
    "outputs = ( { plugin = \"file\"; name = \"main\"; path = \"%s\"; batch_points = 50;\n"
    "              flush_interval = \"50ms\"; } );\n";

static const char *conf_v2 =
    "global = { interval = 0.05; shutdown_timeout = \"5s\"; log_level = \"info\"; };\n"
    "inputs = ( { plugin = \"good_input\"; name = \"seq\"; interval = \"20ms\"; count = 7; } );\n"
    "outputs = ( { plugin = \"file\"; name = \"main\"; path = \"%s\"; batch_points = 13;\n"
    "              flush_interval = \"30ms\"; },\n"
    "            { plugin = \"file\"; name = \"second\"; path = \"%s\"; } );\n";

Test(daemon, writes_points_survives_reload_and_loses_nothing_on_sigterm)
{
    char conf[2048];
    const char *cpath = gdt_path("gatherd.conf");
    snprintf(conf, sizeof(conf), conf_v1, gdt_path("main.lp"));
    gdt_write_file(cpath, conf);
    pid_t pid = gdt_spawn(cpath);
    gdt_msleep(600);
    size_t n1;
    free(read_seqs(gdt_path("main.lp"), &n1));
    cr_assert_gt(n1, 20, "points arrive in the file before the reload (%zu)", n1);

    /* Change the main output (drained and restarted) and add a second one;
     * a burst of SIGHUPs is coalesced. */
    snprintf(conf, sizeof(conf), conf_v2, gdt_path("main.lp"), gdt_path("second.lp"));
    gdt_write_file(cpath, conf);
    for (int i = 0; i < 5; i++)
        kill(pid, SIGHUP);
    gdt_msleep(700);
    kill(pid, SIGHUP); /* unchanged config: everything kept */
    gdt_msleep(300);
    kill(pid, SIGTERM);
    int code = gdt_wait_exit(pid, 30);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "exit code %d; log:\n%s", code, log);
    cr_assert(strstr(log, "reloaded: 1 instances kept, 2 started, 1 stopped"),
              "first reload swaps the main output, adds one: %s", log);
    cr_assert(strstr(log, "reloaded: 3 instances kept, 0 started, 0 stopped"),
              "second reload keeps everything: %s", log);

    size_t n, n2;
    long *seqs = read_seqs(gdt_path("main.lp"), &n);
    cr_assert_gt(n, n1);
    assert_contiguous(seqs, n, 0, "main.lp");
    long last = seqs[n - 1];
    long *s2 = read_seqs(gdt_path("second.lp"), &n2);
    cr_assert_gt(n2, 10, "the added output received points");
    assert_contiguous(s2, n2, s2[0], "second.lp");
    cr_assert_eq(s2[n2 - 1], last, "both outputs end with the last point collected");
    assert_output_accounting(log, "output:file/second", (long)n2);
    free(seqs);
    free(s2);
    free(log);
}

Test(daemon, invalid_config_on_reload_keeps_the_running_one)
{
    char conf[2048];
    const char *cpath = gdt_path("gatherd.conf");
    snprintf(conf, sizeof(conf), conf_v1, gdt_path("main.lp"));
    gdt_write_file(cpath, conf);
    pid_t pid = gdt_spawn(cpath);
    gdt_msleep(300);
    gdt_write_file(cpath, "inputs = ( { plugin = \"good_input\"; count = \"many\"; } );\n");
    kill(pid, SIGHUP);
    gdt_msleep(400);
    size_t before;
    free(read_seqs(gdt_path("main.lp"), &before));
    gdt_msleep(300);
    size_t after;
    free(read_seqs(gdt_path("main.lp"), &after));
    cr_assert_gt(after, before, "still collecting after a bad reload");
    kill(pid, SIGTERM);
    cr_assert_eq(gdt_wait_exit(pid, 30), 0);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert(strstr(log, "option 'count': expected integer"), "%s", log);
    cr_assert(strstr(log, "still running the previous one"), "%s", log);
    size_t n;
    long *seqs = read_seqs(gdt_path("main.lp"), &n);
    assert_contiguous(seqs, n, 0, "main.lp");
    assert_output_accounting(log, "output:file/main", (long)n);
    free(seqs);
    free(log);
}

Test(daemon, check_mode_reports_errors_with_file_and_line)
{
    const char *cpath = gdt_path("bad.conf");
    gdt_write_file(cpath, "global = { interval = 5.0; };\n"
                      "inputs = (\n"
                      "  { plugin = \"good_input\";\n"
                      "    cuont = 3; }\n"
                      ");\n");
    cr_assert_eq(gdt_run("-t -c /nonexistent/gatherd.conf"), 1, "a missing file is an error");
    char args[512];
    snprintf(args, sizeof(args), "-t -c %s", cpath);
    cr_assert_eq(gdt_run(args), 1);
    char *err = gdt_read_file(gdt_path("err.txt"));
    char expect[512];
    snprintf(expect, sizeof(expect), "%s:4: input 'good_input' (plugin good_input): option 'cuont': unknown option",
             cpath);
    cr_assert(strstr(err, expect), "expected '%s' in:\n%s", expect, err);
    cr_assert(strstr(err, "did you mean 'count'"), "%s", err);
    free(err);
}

Test(daemon, check_mode_summarises_a_valid_config_and_hides_secrets)
{
    const char *cpath = gdt_path("ok.conf");
    gdt_write_file(cpath, "inputs = ( { plugin = \"good_input\"; name = \"a\"; secret = \"hunter2hunter2\"; } );\n"
                      "outputs = ( { plugin = \"null\"; } );\n");
    char args[512];
    snprintf(args, sizeof(args), "-t -c %s", cpath);
    cr_assert_eq(gdt_run(args), 0);
    char *out = gdt_read_file(gdt_path("out.txt"));
    cr_assert(strstr(out, "configuration OK: 1 inputs, 0 processors, 1 outputs"), "%s", out);
    cr_assert(strstr(out, "plugin=good_input"), "%s", out);
    cr_assert_null(strstr(out, "hunter2"), "a secret leaked: %s", out);
    free(out);
}

Test(daemon, once_prints_line_protocol_and_writes_no_output)
{
    const char *cpath = gdt_path("once.conf");
    char conf[1024];
    snprintf(conf, sizeof(conf),
             "inputs = ( { plugin = \"good_input\"; name = \"a\"; count = 3;\n"
             "             tags = { site = \"lab-a\"; }; },\n"
             "           { plugin = \"sim\"; name = \"b\"; chambers = 2; } );\n"
             "outputs = ( { plugin = \"file\"; path = \"%s\"; } );\n",
             gdt_path("never.lp"));
    gdt_write_file(cpath, conf);
    char args[512];
    snprintf(args, sizeof(args), "--once --input a -c %s", cpath);
    cr_assert_eq(gdt_run(args), 0);
    char *out = gdt_read_file(gdt_path("out.txt"));
    cr_assert(strstr(out, "t,site=lab-a,src=good v=0i "), "%s", out);
    cr_assert(strstr(out, "t,site=lab-a,src=good v=2i "), "%s", out);
    cr_assert_null(strstr(out, "chamber"), "only the named input runs: %s", out);
    struct stat st;
    cr_assert_neq(stat(gdt_path("never.lp"), &st), 0, "--once writes to no output");
    free(out);
}

Test(daemon, describe_and_list_plugins)
{
    cr_assert_eq(gdt_run("--describe good_input"), 0);
    char *out = gdt_read_file(gdt_path("out.txt"));
    cr_assert(strstr(out, "count"), "%s", out);
    cr_assert(strstr(out, "Points per collect"), "%s", out);
    cr_assert(strstr(out, "interval"), "common options are listed: %s", out);
    free(out);
    cr_assert_eq(gdt_run("--list-plugins"), 0);
    out = gdt_read_file(gdt_path("out.txt"));
    cr_assert(strstr(out, "sim"), "%s", out);
    cr_assert(strstr(out, "file"), "%s", out);
    free(out);
    cr_assert_eq(gdt_run("--describe nosuch"), 1);
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_assert(strstr(err, "plugin 'nosuch' not found"), "%s", err);
    free(err);
}

/* Sequence numbers of the lines tagged src=@src. */
static long *seqs_of(const char *path, const char *src, size_t *n)
{
    char *text = gdt_read_file(path);
    char tag[64];
    snprintf(tag, sizeof(tag), "src=%s ", src);
    long *v = malloc(sizeof(*v) * 100000);
    *n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, tag) && *n < 100000)
            v[(*n)++] = strtol(strstr(line, " v=") + 3, NULL, 10);
    free(text);
    return v;
}

Test(daemon, event_driven_input_uses_timers_fd_watches_threads_and_work)
{
    char conf[1024];
    const char *cpath = gdt_path("event.conf");
    snprintf(conf, sizeof(conf),
             "global = { shutdown_timeout = \"5s\"; };\n"
             "inputs = ( { plugin = \"event_input\"; name = \"ev\"; period = \"10ms\"; } );\n"
             "outputs = ( { plugin = \"file\"; name = \"out\"; path = \"%s\";\n"
             "              flush_interval = \"20ms\"; } );\n",
             gdt_path("event.lp"));
    gdt_write_file(cpath, conf);
    pid_t pid = gdt_spawn(cpath);
    gdt_msleep(800);
    kill(pid, SIGTERM);
    int code = gdt_wait_exit(pid, 30);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    static const char *const srcs[] = {"timer", "fd", "thread", "loop", "work"};
    for (size_t i = 0; i < 5; i++) {
        size_t n;
        long *v = seqs_of(gdt_path("event.lp"), srcs[i], &n);
        cr_assert_geq(n, 1, "no point from %s", srcs[i]);
        if (strcmp(srcs[i], "work") != 0)
            cr_assert_gt(n, 10, "%s: %zu points", srcs[i], n);
        assert_contiguous(v, n, 0, srcs[i]);
        free(v);
    }
    size_t total = 0;
    for (size_t i = 0; i < 5; i++) {
        size_t n;
        free(seqs_of(gdt_path("event.lp"), srcs[i], &n));
        total += n;
    }
    assert_output_accounting(log, "output:file/out", (long)total);
    cr_assert_eq(gdt_counters_of(log, "input:event_input/ev").received, total,
                 "an event-driven input counts what it emits");
    free(log);
}

Test(daemon, names_stay_unique_after_expansion)
{
    const char *cpath = gdt_path("dup.conf");
    gdt_write_file(cpath, "inputs = ( { plugin = \"good_input\"; },\n"
                      "           { plugin = \"good_input\"; name = \"${GD_NO_SUCH_VAR:-good_input}\"; } );\n");
    char args[512];
    snprintf(args, sizeof(args), "-t -c %s", cpath);
    cr_assert_eq(gdt_run(args), 1);
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_assert(strstr(err, "input 'good_input' is defined twice (first at"), "%s", err);
    free(err);
}

Test(daemon, a_bad_config_fails_before_going_to_the_background)
{
    const char *cpath = gdt_path("bad.conf");
    gdt_write_file(cpath, "inputs = ( { plugin = \"good_input\"; count = -5; } );\n");
    char args[512];
    snprintf(args, sizeof(args), "-c %s -P %s", cpath, gdt_path("pid"));
    cr_assert_eq(gdt_run(args), 1, "the parent reports the error");
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_assert(strstr(err, "option 'count': value -5 out of range"), "%s", err);
    free(err);
    struct stat st;
    cr_assert_neq(stat(gdt_path("pid"), &st), 0, "no daemon was started");
}

Test(daemon, a_failing_start_stops_the_daemon_with_status_1)
{
    const char *cpath = gdt_path("fail.conf");
    gdt_write_file(cpath, "inputs = ( { plugin = \"event_input\"; fail_start = true; } );\n"
                      "outputs = ( { plugin = \"null\"; } );\n");
    pid_t pid = gdt_spawn(cpath);
    int code = gdt_wait_exit(pid, 20);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 1, "exit %d:\n%s", code, log);
    cr_assert(strstr(log, "start failed"), "%s", log);
    free(log);
}

Test(daemon, a_hung_collect_does_not_hold_shutdown_past_its_timeout)
{
    const char *cpath = gdt_path("hung.conf");
    gdt_write_file(cpath, "global = { shutdown_timeout = \"1s\"; };\n"
                      "inputs = ( { plugin = \"good_input\"; name = \"slow\"; sleep = \"60s\"; interval = \"100ms\"; } );\n"
                      "outputs = ( { plugin = \"null\"; } );\n");
    pid_t pid = gdt_spawn(cpath);
    gdt_msleep(400);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kill(pid, SIGTERM);
    int code = gdt_wait_exit(pid, 20);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    cr_assert_lt(took, 5.0, "shutdown took %.1f s", took);
    cr_assert(strstr(log, "collect still running after shutdown_timeout"), "%s", log);
    cr_assert(strstr(log, "collect overrun"), "the blocked collect overran its interval: %s", log);
    free(log);
}

Test(daemon, writers_need_a_plugin_that_supports_them)
{
    const char *cpath = gdt_path("writers.conf");
    gdt_write_file(cpath, "inputs = ( { plugin = \"good_input\"; } );\n"
                          "outputs = ( { plugin = \"null\"; writers = 4; } );\n");
    char args[512];
    snprintf(args, sizeof(args), "-t -c %s", cpath);
    cr_assert_eq(gdt_run(args), 1);
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_assert(strstr(err, "option 'writers': the plugin supports one writer only"), "%s", err);
    free(err);
}
