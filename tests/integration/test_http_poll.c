/* SPDX-License-Identifier: Apache-2.0 */
/* The http_poll input end to end: the built daemon polls a scripted JSON
 * HTTP server (tests/servers/httpjson.py: fixed documents, 500s, slow
 * answers, auth checks, request counting) and the points it writes are
 * compared exactly; errors must be counted and logged with the device and
 * its URL; a slow device must not hold up the others; connections are kept
 * alive; devices are polled at their own intervals, at most
 * max_concurrency at once. */
#include "harness.h"
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SERVER "httpjson.sh"

static gdt_server srv, tls_srv;
/* The daemon a test started, killed by the .fini when an assertion
 * failed before the test stopped it. */
static pid_t daemon_pid;

static void suite_fini(void)
{
    if (daemon_pid > 0)
        gdt_wait_exit(daemon_pid, 0);
    gdt_srv_destroy(&srv, SERVER);
    gdt_srv_destroy(&tls_srv, SERVER);
    gdt_teardown();
}

/* One suite: Criterion leaks a few bytes per worker under ASan with two. */
TestSuite(http_poll, .init = gdt_setup, .fini = suite_fini, .timeout = 120);

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void server_start(void)
{
    gdt_srv_start(&srv, SERVER, "starting the JSON HTTP server (python3)");
}

/* Serve @json at /@name. */
static void doc(const char *name, const char *json)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/docs/%s", srv.dir, name);
    gdt_write_file(path, json);
}

/* "http://127.0.0.1:PORT/@rest" (one of 16 rotating buffers). */
static const char *url(const char *rest)
{
    static char buf[16][256];
    static int i;
    char *p = buf[i++ % 16];
    snprintf(p, 256, "http://127.0.0.1:%d/%s", srv.port, rest);
    return p;
}

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

/* What the server saw: its /_stats document. */
static json_t *server_stats(void)
{
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    struct mem m = {.p = calloc(1, 1)};
    curl_easy_setopt(c, CURLOPT_URL, url("_stats"));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode cc = curl_easy_perform(c);
    cr_assert_eq(cc, CURLE_OK, "stats: %s", curl_easy_strerror(cc));
    curl_easy_cleanup(c);
    json_error_t je;
    json_t *j = json_loads(m.p, 0, &je);
    cr_assert_not_null(j, "stats: %s: %s", je.text, m.p);
    free(m.p);
    return j;
}

/* The number at /paths/@path/@what in the stats (0 when never asked). */
static long long path_stat(json_t *st, const char *path, const char *what)
{
    json_t *p = json_object_get(json_object_get(st, "paths"), path);
    return p ? json_integer_value(json_object_get(p, what)) : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of @text sorted, joined with "\n" (malloc'd). */
static char *sorted_lines(const char *text)
{
    char *copy = strdup(text), *save = NULL, *v[256];
    size_t n = 0, len = 0;
    for (char *l = strtok_r(copy, "\n", &save); l && n < 256; l = strtok_r(NULL, "\n", &save)) {
        v[n++] = l;
        len += strlen(l) + 1;
    }
    qsort(v, n, sizeof(*v), cmp_str);
    char *out = calloc(1, len + 1);
    for (size_t i = 0; i < n; i++) {
        strcat(out, v[i]);
        strcat(out, "\n");
    }
    free(copy);
    return out;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        n++;
    return n;
}

/* Wait until @path holds at least @n lines; the ms waited, or -1. */
static long wait_lines(const char *path, size_t n, long timeout_ms)
{
    int64_t t0 = mono_ms();
    while (mono_ms() - t0 < timeout_ms) {
        char *t = gdt_read_file(path);
        size_t k = count_lines(t);
        free(t);
        if (k >= n)
            return (long)(mono_ms() - t0);
        gdt_msleep(10);
    }
    return -1;
}

/* Wait until the daemon's log contains @needle; the ms waited, or -1. */
static long wait_log(const char *needle, long timeout_ms)
{
    int64_t t0 = mono_ms();
    while (mono_ms() - t0 < timeout_ms) {
        char *t = gdt_read_file(gdt_path("daemon.err"));
        bool found = strstr(t, needle) != NULL;
        free(t);
        if (found)
            return (long)(mono_ms() - t0);
        gdt_msleep(10);
    }
    return -1;
}

/* Stop the daemon with SIGTERM; its log (malloc'd) after a clean exit. */
static char *stop_daemon(pid_t pid)
{
    kill(pid, SIGTERM);
    int code = gdt_wait_exit(pid, 30);
    daemon_pid = 0;
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "exit code %d; log:\n%s", code, log);
    return log;
}

/* The value of " dropped{@reason}=" in the counter line of @who. */
static unsigned long long dropped_for(const char *log, const char *who, const char *reason)
{
    char tag[160], key[96];
    snprintf(tag, sizeof(tag), "[%s] received=", who);
    snprintf(key, sizeof(key), "dropped{%s}=", reason);
    const char *line = strstr(log, tag);
    cr_assert_not_null(line, "no counters for %s", who);
    const char *eol = strchr(line, '\n');
    const char *k = strstr(line, key);
    return k && (!eol || k < eol) ? strtoull(k + strlen(key), NULL, 10) : 0;
}

static const char *global_conf =
    "global = { interval = 0.2; shutdown_timeout = \"5s\"; log_level = \"info\"; };\n";

static const char *file_output = "outputs = ( { plugin = \"file\"; name = \"main\"; path = \"%s\"; "
                                 "flush_interval = \"50ms\"; } );\n";

/* Write gatherd.conf: the globals, @inputs, a file output to points.lp. */
static const char *write_conf(const char *inputs)
{
    char out[512], *text = NULL;
    snprintf(out, sizeof(out), file_output, gdt_path("points.lp"));
    cr_assert_geq(asprintf(&text, "%s%s\n%s", global_conf, inputs, out), 0);
    const char *path = gdt_path("gatherd.conf");
    gdt_write_file(path, text);
    free(text);
    return path;
}

/* ---- mapping ------------------------------------------------------------ */

/* A chamber controller's status endpoint and a data logger's readings. */
static const char *chamber_doc =
    "{\"device\":{\"serial\":\"CH-0042\",\"fw\":\"2.1.0\"},"
    "\"time\":\"2024-05-01T12:00:00.250+02:00\","
    "\"sensors\":[{\"id\":\"t1\",\"value\":215},{\"id\":\"rh\",\"value\":\"45.5\"}],"
    "\"state\":{\"door\":false,\"mode\":\"run\",\"cycles\":1234},"
    "\"a/b\":{\"m~n\":7}}";

static const char *logger_doc = "{\"site\":\"lab-a\",\"readings\":["
                                "{\"ch\":1,\"t\":21.5,\"ts\":1714557600000},"
                                "{\"ch\":2,\"t\":22.25,\"ts\":1714557601000},"
                                "{\"ch\":3,\"t\":null,\"ts\":1714557602000}]}";

Test(http_poll, once_maps_nested_objects_arrays_and_types_exactly)
{
    server_start();
    doc("chamber.json", chamber_doc);
    doc("logger.json", logger_doc);
    char inputs[4096];
    snprintf(inputs, sizeof(inputs),
             "inputs = ( { plugin = \"http_poll\"; name = \"lab\"; devices = (\n"
             "  { name = \"c1\"; url = \"%s\"; tags = { room = \"b12\"; };\n"
             "    time_pointer = \"/time\"; time_format = \"rfc3339\";\n"
             "    tag_pointers = ( { name = \"serial\"; pointer = \"/device/serial\"; } );\n"
             "    fields = ( { name = \"temp_c\"; pointer = \"/sensors/0/value\"; scale = 0.1; "
             "required = true; },\n"
             "      { name = \"rh\"; pointer = \"/sensors/1/value\"; },\n"
             "      { name = \"door\"; pointer = \"/state/door\"; type = \"bool\"; },\n"
             "      { name = \"mode\"; pointer = \"/state/mode\"; type = \"string\"; },\n"
             "      { name = \"cycles\"; pointer = \"/state/cycles\"; type = \"int\"; },\n"
             "      { name = \"esc\"; pointer = \"/a~1b/m~0n\"; type = \"int\"; },\n"
             "      { name = \"absent\"; pointer = \"/state/absent\"; } ); },\n"
             "  { name = \"r1\"; url = \"%s\"; measurement = \"logger\"; points = \"/readings\";\n"
             "    time_pointer = \"/ts\"; time_format = \"unix_ms\";\n"
             "    tag_pointers = ( { name = \"channel\"; pointer = \"/ch\"; },\n"
             "                     { name = \"site\"; pointer = \"/site\"; root = true; } );\n"
             "    fields = ( { name = \"t\"; pointer = \"/t\"; } ); } ); } );\n",
             url("chamber.json"), url("logger.json"));
    char args[512];
    snprintf(args, sizeof(args), "--once -c %s", write_conf(inputs));
    int rc = gdt_run(args);
    char *out = gdt_read_file(gdt_path("out.txt"));
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_assert_eq(rc, 0, "exit %d; log:\n%s", rc, err);
    char *got = sorted_lines(out);
    cr_assert_str_eq(got, "http,device=c1,room=b12,serial=CH-0042 temp_c=21.5,rh=45.5,door=false,"
                          "mode=\"run\",cycles=1234i,esc=7i 1714557600250000000\n"
                          "logger,channel=1,device=r1,site=lab-a t=21.5 1714557600000000000\n"
                          "logger,channel=2,device=r1,site=lab-a t=22.25 1714557601000000000\n");
    cr_assert(strstr(err, "3 points from 1 inputs"), "%s", err);
    free(got);
    free(out);
    free(err);
}

Test(http_poll, devices_share_a_profile_and_refine_it)
{
    server_start();
    doc("a.json", "{\"t\":20.5,\"rh\":40,\"extra\":\"x\"}");
    doc("b.json", "{\"t\":21.5,\"rh\":41,\"extra\":\"y\"}");
    char inputs[4096];
    snprintf(inputs, sizeof(inputs),
             "inputs = ( { plugin = \"http_poll\"; name = \"lab\"; device_tag = \"chamber\";\n"
             "  profiles = ( { name = \"ctrl\"; measurement = \"climate\";\n"
             "    fields = ( { name = \"temp_c\"; pointer = \"/t\"; },\n"
             "               { name = \"rh\"; pointer = \"/rh\"; type = \"int\"; } ); } );\n"
             "  devices = ( { name = \"a\"; url = \"%s\"; profile = \"ctrl\"; },\n"
             "    { name = \"b\"; url = \"%s\"; profile = \"ctrl\"; measurement = \"climate_v2\";\n"
             "      fields = ( { name = \"rh\"; pointer = \"/rh\"; scale = 0.5; },\n"
             "                 { name = \"extra\"; pointer = \"/extra\"; type = \"string\"; } ); } "
             "); } );\n",
             url("a.json"), url("b.json"));
    char args[512];
    snprintf(args, sizeof(args), "--once -c %s", write_conf(inputs));
    int rc = gdt_run(args);
    char *out = gdt_read_file(gdt_path("out.txt"));
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_assert_eq(rc, 0, "exit %d; log:\n%s", rc, err);
    char *got = sorted_lines(out);
    /* Poll-time timestamps: compare everything before them. */
    char *a = strstr(got, "climate,chamber=a temp_c=20.5,rh=40i ");
    char *b = strstr(got, "climate_v2,chamber=b temp_c=21.5,rh=20.5,extra=\"y\" ");
    cr_assert(a && b, "got:\n%s", got);
    cr_assert_eq(count_lines(got), 2);
    free(got);
    free(out);
    free(err);
}

/* ---- requests ------------------------------------------------------------ */

Test(http_poll, sends_method_body_headers_and_basic_or_bearer_auth)
{
    server_start();
    const char *d = "{\"v\":1}";
    doc("basic.json", d);
    doc("bearer.json", d);
    doc("wrong.json", d);
    char inputs[4096];
    snprintf(inputs, sizeof(inputs),
             "inputs = ( { plugin = \"http_poll\"; name = \"lab\"; devices = (\n"
             "  { name = \"b\"; url = \"%s\"; method = \"POST\"; body = \"{\\\"q\\\":1}\";\n"
             "    headers = { X-Api-Key = \"k-123456\"; }; username = \"ops\";\n"
             "    password = \"s3cret-pw\"; fields = ( { name = \"v\"; pointer = \"/v\"; } ); },\n"
             "  { name = \"t\"; url = \"%s\"; bearer_token = \"tok-abcdef\";\n"
             "    fields = ( { name = \"v\"; pointer = \"/v\"; } ); },\n"
             "  { name = \"w\"; url = \"%s\"; bearer_token = \"tok-wrong-one\";\n"
             "    fields = ( { name = \"v\"; pointer = \"/v\"; } ); } ); } );\n",
             url("basic.json?auth=basic:ops:s3cret-pw"), url("bearer.json?auth=bearer:tok-abcdef"),
             url("wrong.json?auth=bearer:tok-abcdef"));
    char args[512];
    snprintf(args, sizeof(args), "--once -c %s", write_conf(inputs));
    int rc = gdt_run(args);
    char *out = gdt_read_file(gdt_path("out.txt"));
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_assert_eq(rc, 1, "an error makes --once fail; exit %d; log:\n%s", rc, err);
    cr_assert_eq(count_lines(out), 2, "%s", out);
    cr_assert(strstr(out, "http,device=b v=1 ") && strstr(out, "http,device=t v=1 "), "%s", out);
    char want[512];
    /* The URL holds device t's token, which the core redacts everywhere. */
    snprintf(want, sizeof(want), "device w (%s): HTTP 401", url("wrong.json?auth=bearer:***"));
    cr_assert(strstr(err, want), "log names device and URL:\n%s", err);
    cr_assert_null(strstr(err, "tok-wrong-one"), "the token is not logged");

    json_t *st = server_stats();
    json_t *b = json_object_get(json_object_get(st, "paths"), "/basic.json");
    cr_assert_not_null(b);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(b, "methods"), 0)), "POST");
    cr_assert_str_eq(json_string_value(json_object_get(b, "body")), "{\"q\":1}");
    json_t *h = json_object_get(b, "headers");
    cr_assert_str_eq(json_string_value(json_object_get(h, "X-Api-Key")), "k-123456");
    cr_assert_str_eq(json_string_value(json_object_get(h, "Content-Type")), "application/json");
    cr_assert_str_eq(json_string_value(json_object_get(h, "Accept")), "application/json");
    json_decref(st);
    free(out);
    free(err);
}

/* ---- errors ------------------------------------------------------------- */

Test(http_poll, errors_are_counted_and_logged_with_device_and_url)
{
    server_start();
    doc("ok.json", "{\"t\":20.5,\"s\":\"abc\"}");
    doc("bad.json", "<html>not json</html>");
    char big[8192];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    doc("big.json", big);
    char inputs[4096];
    snprintf(
        inputs, sizeof(inputs),
        "inputs = ( { plugin = \"http_poll\"; name = \"lab\"; interval = \"30s\";\n"
        "  max_response_bytes = 4096; devices = (\n"
        "  { name = \"good\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
        "  { name = \"e500\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
        "  { name = \"e404\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
        "  { name = \"html\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
        "  { name = \"huge\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
        "  { name = \"miss\"; url = \"%s\"; fields = (\n"
        "      { name = \"t\"; pointer = \"/t\"; },\n"
        "      { name = \"p\"; pointer = \"/pressure\"; required = true; } ); },\n"
        "  { name = \"wrong\"; url = \"%s\"; fields = (\n"
        "      { name = \"t\"; pointer = \"/t\"; },\n"
        "      { name = \"s\"; pointer = \"/s\"; required = true; } ); } ); } );\n",
        url("ok.json"), url("ok.json?status=500"), url("nothing.json"), url("bad.json"),
        url("big.json"), url("ok.json?m"), url("ok.json?w"));
    pid_t pid = daemon_pid = gdt_spawn(write_conf(inputs));
    long waited = wait_lines(gdt_path("points.lp"), 1, 20000);
    cr_assert_geq(waited, 0, "the good device's point arrives");
    cr_assert_geq(wait_log("device wrong", 5000), 0, "the dropped point is logged");
    char *log = stop_daemon(pid);

    char *points = gdt_read_file(gdt_path("points.lp"));
    cr_assert_eq(count_lines(points), 1, "%s", points);
    cr_assert(strncmp(points, "http,device=good t=20.5 ", 24) == 0, "%s", points);
    gdt_counters c = gdt_counters_of(log, "input:http_poll/lab");
    cr_assert_eq(c.errors, 4, "500, 404, not JSON, too large; log:\n%s", log);
    cr_assert_eq(c.dropped, 2, "%s", log);
    cr_assert_eq(dropped_for(log, "input:http_poll/lab", "missing_field"), 1, "%s", log);
    cr_assert_eq(dropped_for(log, "input:http_poll/lab", "wrong_type"), 1, "%s", log);

    const char *want[] = {
        "device e500 (%s): HTTP 500",
        "device e404 (%s): HTTP 404",
        "device html (%s): response is not JSON",
        "device huge (%s): response larger than max_response_bytes (4096); aborted",
        "device miss (%s) data: required field p: /pressure is missing; point dropped",
        "device wrong (%s) data: required field s (float): a string at /s not a number",
    };
    const char *urls[] = {url("ok.json?status=500"), url("nothing.json"), url("bad.json"),
                          url("big.json"),           url("ok.json?m"),    url("ok.json?w")};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char line[512];
        snprintf(line, sizeof(line), want[i], urls[i]);
        cr_assert(strstr(log, line), "log lacks '%s':\n%s", line, log);
    }
    free(points);
    free(log);
}

Test(http_poll, slow_device_does_not_delay_the_others_beyond_its_timeout)
{
    server_start();
    doc("fast.json", "{\"t\":1}");
    char inputs[4096];
    snprintf(
        inputs, sizeof(inputs),
        "inputs = ( { plugin = \"http_poll\"; name = \"lab\"; interval = \"30s\"; devices = (\n"
        "  { name = \"slow\"; url = \"%s\"; timeout = \"2s\"; fields = ( { name = \"t\"; "
        "pointer = \"/t\"; } ); },\n"
        "  { name = \"f1\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
        "  { name = \"f2\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
        "  { name = \"f3\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); } "
        "); } );\n",
        url("fast.json?delay=20"), url("fast.json?a"), url("fast.json?b"), url("fast.json?c"));
    int64_t t0 = mono_ms();
    pid_t pid = daemon_pid = gdt_spawn(write_conf(inputs));
    long fast = wait_lines(gdt_path("points.lp"), 3, 10000);
    cr_assert_geq(fast, 0, "the fast devices' points arrive");
    cr_assert_lt(fast, 1500, "the fast devices' points waited for the slow one (%ld ms)", fast);
    char want[256];
    snprintf(want, sizeof(want), "device slow (%s): timed out after 2 s",
             url("fast.json?delay=20"));
    cr_assert_geq(wait_log(want, 10000), 0, "the timeout is logged");
    long slow = (long)(mono_ms() - t0);
    cr_assert_geq(slow, 2000, "the slow device had its whole timeout (%ld ms)", slow);
    cr_assert_lt(slow, 6000, "and no more (%ld ms)", slow);
    char *log = stop_daemon(pid);
    gdt_counters c = gdt_counters_of(log, "input:http_poll/lab");
    cr_assert_eq(c.errors, 1, "%s", log);
    cr_assert_eq(c.received, 3, "%s", log);
    char *points = gdt_read_file(gdt_path("points.lp"));
    cr_assert_eq(count_lines(points), 3, "%s", points);
    free(points);
    free(log);
}

Test(http_poll, at_most_max_concurrency_requests_are_in_flight)
{
    server_start();
    doc("d.json", "{\"t\":1}");
    char inputs[4096];
    snprintf(
        inputs, sizeof(inputs),
        "inputs = ( { plugin = \"http_poll\"; name = \"lab\"; max_concurrency = 2; devices = (\n"
        "  { name = \"a\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
        "  { name = \"b\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
        "  { name = \"c\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
        "  { name = \"d\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
        "  { name = \"e\"; url = \"%s\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); } "
        "); } );\n",
        url("d.json?delay=0.3&a"), url("d.json?delay=0.3&b"), url("d.json?delay=0.3&c"),
        url("d.json?delay=0.3&d"), url("d.json?delay=0.3&e"));
    char args[512];
    snprintf(args, sizeof(args), "--once -c %s", write_conf(inputs));
    int64_t t0 = mono_ms();
    int rc = gdt_run(args);
    long took = (long)(mono_ms() - t0);
    char *out = gdt_read_file(gdt_path("out.txt"));
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_assert_eq(rc, 0, "exit %d; log:\n%s", rc, err);
    cr_assert_eq(count_lines(out), 5, "%s", out);
    cr_assert_geq(took, 900, "5 requests of 0.3 s, 2 at a time, take 3 rounds (%ld ms)", took);
    json_t *st = server_stats();
    cr_assert_eq(json_integer_value(json_object_get(st, "max_inflight")), 2);
    json_decref(st);
    free(out);
    free(err);
}

Test(http_poll, keeps_connections_alive_and_polls_each_device_at_its_interval)
{
    server_start();
    doc("every.json", "{\"t\":1}");
    doc("second.json", "{\"t\":2}");
    char inputs[4096];
    snprintf(inputs, sizeof(inputs),
             "inputs = ( { plugin = \"http_poll\"; name = \"lab\"; interval = \"200ms\"; devices = "
             "(\n"
             "  { name = \"every\"; url = \"%s\"; timeout = \"150ms\";\n"
             "    fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
             "  { name = \"second\"; url = \"%s\"; timeout = \"150ms\"; interval = \"1s\";\n"
             "    fields = ( { name = \"t\"; pointer = \"/t\"; } ); } ); } );\n",
             url("every.json"), url("second.json"));
    pid_t pid = daemon_pid = gdt_spawn(write_conf(inputs));
    cr_assert_geq(wait_lines(gdt_path("points.lp"), 2, 10000), 0);
    gdt_msleep(2100);
    char *log = stop_daemon(pid);
    json_t *st = server_stats();
    long long every = path_stat(st, "/every.json", "requests");
    long long second = path_stat(st, "/second.json", "requests");
    cr_assert_geq(every, 8, "polled every 200 ms for over 2 s: %lld", every);
    cr_assert(second >= 2 && second <= 4, "polled every 1 s for about 2 s: %lld", second);
    /* libcurl's pool serves any handle of the multi handle going to the
     * same host: two devices polled together need two connections. */
    long long conns = json_integer_value(json_object_get(st, "connections"));
    cr_assert(conns >= 1 && conns <= 2, "%lld requests over %lld connections: kept alive",
              every + second, conns);
    gdt_counters c = gdt_counters_of(log, "input:http_poll/lab");
    cr_assert_eq(c.errors, 0, "%s", log);
    cr_assert_eq(c.received, (unsigned long long)(every + second), "%s", log);
    json_decref(st);
    free(log);
}

Test(http_poll, bad_configuration_is_refused_with_the_device_named)
{
    const char *cases[][2] = {
        {"{ name = \"x\"; url = \"ftp://h/x\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); }",
         "device x: url \"ftp://h/x\" must start with http:// or https://"},
        {"{ name = \"x\"; url = \"http://h/\"; fields = ( { name = \"t\"; pointer = \"t\"; } ); }",
         "device x: field t: pointer \"t\""},
        {"{ name = \"x\"; url = \"http://h/\"; profile = \"nope\"; }",
         "device x: no profile named \"nope\""},
        {"{ name = \"x\"; url = \"http://h/\"; }", "device x has no fields"},
        {"{ name = \"x\"; url = \"http://h/\"; body = \"{}\"; fields = ( { name = \"t\"; "
         "pointer = \"/t\"; } ); }",
         "device x: a body needs method"},
        {"{ name = \"x\"; url = \"http://h/\"; headers = { X-A = \"a\\nb\"; }; fields = ( { "
         "name = \"t\"; pointer = \"/t\"; } ); }",
         "device x: header \"X-A\" must be one line"},
        {"{ name = \"x\"; url = \"http://h/\"; username = \"u\"; fields = ( { name = \"t\"; "
         "pointer = \"/t\"; } ); }",
         "device x: set both username and password"},
        {"{ name = \"x\"; url = \"http://h/\"; username = \"u\"; password = \"pw-1234\"; "
         "bearer_token = \"tok-5678\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); }",
         "device x: basic auth (username) and bearer_token exclude each other"},
        {"{ name = \"x\"; url = \"http://h/\"; fields = ( { name = \"t\"; pointer = \"/t\"; } ); "
         "}, { name = \"x\"; url = \"http://h/\"; fields = ( { name = \"t\"; pointer = "
         "\"/t\"; } ); }",
         "two devices named \"x\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char inputs[2048];
        snprintf(inputs, sizeof(inputs),
                 "inputs = ( { plugin = \"http_poll\"; name = \"lab\"; devices = ( %s ); } );\n",
                 cases[i][0]);
        char args[512];
        snprintf(args, sizeof(args), "--once -c %s", write_conf(inputs));
        int rc = gdt_run(args);
        char *err = gdt_read_file(gdt_path("err.txt"));
        cr_assert_neq(rc, 0, "case %zu accepted", i);
        cr_assert(strstr(err, cases[i][1]), "case %zu: want '%s' in:\n%s", i, cases[i][1], err);
        free(err);
    }
}

/* ---- TLS ---------------------------------------------------------------- */

/* A CA, a server certificate for 127.0.0.1 and a client certificate, all
 * signed by the CA, in @dir/tls (the server then requires client certs). */
static void make_certs(const char *dir)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "set -e; mkdir -p '%s/tls'; cd '%s/tls';"
             "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1; };"
             "key ca.key; key server.key; key client.key;"
             "openssl req -x509 -new -key ca.key -subj /CN=gd-test-ca -days 2 -out ca.pem;"
             "printf 'subjectAltName=IP:127.0.0.1\\n' >server.ext;"
             "openssl req -new -key server.key -subj /CN=127.0.0.1 -out server.csr;"
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
             "-extfile server.ext -out server.pem;"
             "openssl req -new -key client.key -subj /CN=gatherd -out client.csr;"
             "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
             "-out client.pem;"
             "cp ca.pem client-ca.pem",
             dir, dir);
    char quiet[4200];
    snprintf(quiet, sizeof(quiet), "(%s) >/dev/null 2>&1", cmd);
    cr_assert_eq(system(quiet), 0, "openssl failed: %s", cmd);
}

Test(http_poll, tls_verifies_the_server_by_default_and_sends_a_client_certificate)
{
    gdt_srv_prepare(&tls_srv, "httpjson");
    make_certs(tls_srv.dir);
    char path[512];
    snprintf(path, sizeof(path), "%s/docs", tls_srv.dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/docs/s.json", tls_srv.dir);
    gdt_write_file(path, "{\"t\":1}");
    gdt_srv_start(&tls_srv, SERVER, "starting the JSON HTTPS server (python3)");

    char u[128], tls[256], inputs[4096];
    snprintf(u, sizeof(u), "https://127.0.0.1:%d/s.json", tls_srv.port);
    snprintf(tls, sizeof(tls), "%s/tls", tls_srv.dir);
    snprintf(inputs, sizeof(inputs),
             "inputs = ( { plugin = \"http_poll\"; name = \"lab\"; devices = (\n"
             "  { name = \"ok\"; url = \"%s\"; tls_ca_file = \"%s/ca.pem\";\n"
             "    tls_cert_file = \"%s/client.pem\"; tls_key_file = \"%s/client.key\";\n"
             "    fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
             "  { name = \"noca\"; url = \"%s\";\n"
             "    tls_cert_file = \"%s/client.pem\"; tls_key_file = \"%s/client.key\";\n"
             "    fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
             "  { name = \"nocert\"; url = \"%s\"; tls_ca_file = \"%s/ca.pem\";\n"
             "    fields = ( { name = \"t\"; pointer = \"/t\"; } ); },\n"
             "  { name = \"insecure\"; url = \"%s\"; tls_verify = false;\n"
             "    tls_cert_file = \"%s/client.pem\"; tls_key_file = \"%s/client.key\";\n"
             "    fields = ( { name = \"t\"; pointer = \"/t\"; } ); } ); } );\n",
             u, tls, tls, tls, u, tls, tls, u, tls, u, tls, tls);
    char args[512];
    snprintf(args, sizeof(args), "--once -c %s", write_conf(inputs));
    int rc = gdt_run(args);
    char *out = gdt_read_file(gdt_path("out.txt"));
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_assert_eq(rc, 1, "two devices fail; exit %d; log:\n%s", rc, err);
    char *got = sorted_lines(out);
    cr_assert_eq(count_lines(got), 2, "%s", got);
    cr_assert(strstr(got, "http,device=insecure t=1 ") && strstr(got, "http,device=ok t=1 "), "%s",
              got);
    char want[256];
    snprintf(want, sizeof(want), "device noca (%s): SSL certificate problem", u);
    cr_assert(strstr(err, want), "verification is on by default:\n%s", err);
    snprintf(want, sizeof(want), "device nocert (%s): ", u);
    cr_assert(strstr(err, want), "the server refuses a client without a certificate:\n%s", err);
    cr_assert(strstr(err, "device insecure: tls_verify = false"), "%s", err);
    free(got);
    free(out);
    free(err);
}
