/* SPDX-License-Identifier: Apache-2.0 */
/* The modbus input end to end: the built daemon polls the Modbus TCP test
 * server (tests/servers/modbus_server.c, which holds known values in every
 * format and word/byte order and counts the requests it serves); the test
 * checks the exact values, the number of requests the coalescing plan
 * issues, exceptions, timeouts, device_status points and reconnection. */
#include "harness.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <modbus.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define SCRIPT "modbus.sh"

static gdt_server srv;

static void suite_fini(void)
{
    gdt_srv_destroy(&srv, SCRIPT);
    gdt_teardown();
}

TestSuite(modbus, .init = gdt_setup, .fini = suite_fini, .timeout = 120);

/* Start the server with DIR/modbus.conf = @conf (may be NULL) and @addresses
 * loopback addresses. */
static void start_server(const char *conf, int addresses)
{
    gdt_srv_prepare(&srv, "modbus");
    char path[256], n[16];
    if (conf) {
        snprintf(path, sizeof(path), "%s/modbus.conf", srv.dir);
        gdt_write_file(path, conf);
    }
    snprintf(path, sizeof(path), "%s/addresses", srv.dir);
    snprintf(n, sizeof(n), "%d\n", addresses);
    gdt_write_file(path, n);
    gdt_srv_start(&srv, SCRIPT, "starting the Modbus test server");
}

/* An input register of the test server's bookkeeping (9000: requests,
 * 9100 + unit: requests of that unit). */
static unsigned long server_counter(int address, int nregs)
{
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", srv.port);
    cr_assert_not_null(ctx);
    cr_assert_eq(modbus_connect(ctx), 0, "connect: %s", modbus_strerror(errno));
    uint16_t r[2] = {0};
    cr_assert_eq(modbus_read_input_registers(ctx, address, nregs, r), nregs);
    modbus_close(ctx);
    modbus_free(ctx);
    return nregs == 2 ? (unsigned long)r[0] << 16 | r[1] : r[0];
}

/* "tcp://127.0.0.N:PORT" */
static const char *url_of(int n)
{
    static char buf[4][64];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, 64, "tcp://127.0.0.%d:%d", n, srv.port);
    return p;
}

/* The line of @out for measurement @meas (followed by ',') whose tags
 * include device=@dev; NULL if none. Returns a malloc'd copy. */
static char *line_of(const char *out, const char *meas, const char *dev)
{
    char want[128];
    snprintf(want, sizeof(want), "device=%s", dev);
    size_t mlen = strlen(meas);
    for (const char *p = out; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char *line = strndup(p, len);
        char *space = strchr(line, ' ');
        if (space && strncmp(line, meas, mlen) == 0 && line[mlen] == ',') {
            char *tags = strndup(line + mlen, (size_t)(space - line) - mlen);
            bool match = false;
            char *save = NULL;
            for (char *t = strtok_r(tags, ",", &save); t; t = strtok_r(NULL, ",", &save))
                match = match || strcmp(t, want) == 0;
            free(tags);
            if (match)
                return line;
        }
        free(line);
        p += len + (eol ? 1 : 0);
    }
    return NULL;
}

/* The text of field @key in a line-protocol @line (after the tag set). */
static char *field_of(const char *line, const char *key)
{
    const char *p = strchr(line, ' ');
    cr_assert_not_null(p);
    char want[128];
    snprintf(want, sizeof(want), "%s=", key);
    size_t wl = strlen(want);
    for (p++; *p;) {
        if (strncmp(p, want, wl) == 0 && (p[-1] == ' ' || p[-1] == ',')) {
            p += wl;
            size_t n = 0;
            if (*p == '"') {
                n = 1;
                while (p[n] && p[n] != '"')
                    n++;
                n++;
            } else {
                while (p[n] && p[n] != ',' && p[n] != ' ')
                    n++;
            }
            return strndup(p, n);
        }
        p++;
    }
    return NULL;
}

static void expect_field(const char *line, const char *key, const char *want)
{
    char *v = field_of(line, key);
    cr_expect_not_null(v, "field %s missing in: %s", key, line);
    if (v)
        cr_expect_str_eq(v, want, "field %s", key);
    free(v);
}

static void expect_double(const char *line, const char *key, double want)
{
    char *v = field_of(line, key);
    cr_expect_not_null(v, "field %s missing in: %s", key, line);
    if (!v)
        return;
    char *end = NULL;
    double got = strtod(v, &end);
    cr_expect(*end == '\0' && got == want, "field %s: %s, expected %.17g", key, v, want);
    free(v);
}

static void write_conf(const char *body)
{
    char text[65536];
    snprintf(text, sizeof(text),
             "global = { interval = 1.0; log_level = \"debug\"; shutdown_timeout = 2.0; };\n%s",
             body);
    gdt_write_file(gdt_path("gatherd.conf"), text);
}

static char *run_once(int *code)
{
    char args[512];
    snprintf(args, sizeof(args), "--once -c %s", gdt_path("gatherd.conf"));
    *code = gdt_run(args);
    return gdt_read_file(gdt_path("out.txt"));
}

/* ---- values ------------------------------------------------------------- */

static const char *const orders[] = {"ABCD", "DCBA", "BADC", "CDAB"};

Test(modbus, every_format_in_every_order_decodes_to_the_exact_value)
{
    start_server(NULL, 1);
    char regs[16384] = "";
    size_t n = 0;
#define ADD(...) n += (size_t)snprintf(regs + n, sizeof(regs) - n, __VA_ARGS__)
    ADD("{ field = \"u16_AB\"; address = 0; format = \"uint16\"; type = \"uint\"; },\n");
    ADD("{ field = \"u16_BA\"; address = 1; format = \"uint16\"; order = \"BADC\"; },\n");
    ADD("{ field = \"i16_AB\"; address = 2; format = \"int16\"; type = \"int\"; },\n");
    ADD("{ field = \"i16_BA\"; address = 3; format = \"int16\"; order = \"DCBA\"; },\n");
    for (int o = 0; o < 4; o++) {
        const char *ord = orders[o];
        ADD("{ field = \"i32_%s\"; address = %d; format = \"int32\"; order = \"%s\"; type = "
            "\"int\"; },\n",
            ord, 10 + 2 * o, ord);
        ADD("{ field = \"u32_%s\"; address = %d; format = \"uint32\"; order = \"%s\"; },\n", ord,
            20 + 2 * o, ord);
        ADD("{ field = \"f32_%s\"; address = %d; format = \"float32\"; order = \"%s\"; },\n", ord,
            30 + 2 * o, ord);
        ADD("{ field = \"i64_%s\"; address = %d; format = \"int64\"; order = \"%s\"; type = "
            "\"int\"; },\n",
            ord, 40 + 4 * o, ord);
        ADD("{ field = \"i64d_%s\"; kind = \"input\"; address = %d; format = \"int64\"; "
            "order = \"%s\"; },\n",
            ord, 40 + 4 * o, ord);
        ADD("{ field = \"u64_%s\"; address = %d; format = \"uint64\"; order = \"%s\"; type = "
            "\"uint\"; },\n",
            ord, 60 + 4 * o, ord);
        ADD("{ field = \"f64_%s\"; address = %d; format = \"float64\"; order = \"%s\"; },\n", ord,
            80 + 4 * o, ord);
    }
    ADD("{ field = \"name_AB\"; address = 100; format = \"string\"; length = 8; },\n");
    ADD("{ field = \"name_BA\"; address = 108; format = \"string\"; length = 8; order = "
        "\"BADC\"; },\n");
    ADD("{ field = \"alarm0\"; address = 120; format = \"bit\"; bit = 0; },\n");
    ADD("{ field = \"alarm1\"; address = 120; format = \"bit\"; bit = 1; },\n");
    ADD("{ field = \"alarm15\"; address = 120; format = \"bit\"; bit = 15; },\n");
    ADD("{ field = \"temp_c\"; kind = \"input\"; address = 121; scale = 0.1; offset = -1.5; "
        "},\n");
    ADD("{ field = \"coil3\"; kind = \"coil\"; address = 3; },\n");
    ADD("{ field = \"coil4\"; kind = \"coil\"; address = 4; type = \"int\"; },\n");
    ADD("{ field = \"di7\"; kind = \"discrete\"; address = 7; }\n");
#undef ADD
    char body[20000];
    snprintf(body, sizeof(body),
             "inputs = ( { plugin = \"modbus\"; name = \"mb\";\n"
             "  profiles = ( { name = \"all\"; measurement = \"chamber\"; registers = (\n%s); } "
             ");\n"
             "  devices = ( { name = \"c1\"; url = \"%s\"; unit_id = 7; profile = \"all\"; } );\n"
             "} );\n",
             regs, url_of(1));
    write_conf(body);
    int code;
    char *out = run_once(&code);
    cr_expect_eq(code, 0, "%s", gdt_read_file(gdt_path("err.txt")));
    char *l = line_of(out, "chamber", "c1");
    cr_assert_not_null(l, "no chamber point: %s", out);
    expect_field(l, "u16_AB", "54321u");
    expect_double(l, "u16_BA", 54321);
    expect_field(l, "i16_AB", "-12345i");
    expect_double(l, "i16_BA", -12345);
    for (int o = 0; o < 4; o++) {
        char k[32];
#define KEY(fmt) (snprintf(k, sizeof(k), fmt "_%s", orders[o]), k)
        expect_field(l, KEY("i32"), "-123456789i");
        expect_double(l, KEY("u32"), 3456789012.0);
        expect_double(l, KEY("f32"), (double)123.456f);
        expect_field(l, KEY("i64"), "-1234567890123456789i");
        expect_double(l, KEY("i64d"), (double)-1234567890123456789LL);
        expect_field(l, KEY("u64"), "12345678901234567890u");
        expect_double(l, KEY("f64"), -98765.4321);
#undef KEY
    }
    expect_field(l, "name_AB", "\"CH-2000 rev.B\"");
    expect_field(l, "name_BA", "\"CH-2000 rev.B\"");
    expect_field(l, "alarm0", "true");
    expect_field(l, "alarm1", "false");
    expect_field(l, "alarm15", "true");
    expect_double(l, "temp_c", 215 * 0.1 - 1.5);
    expect_field(l, "coil3", "true");
    expect_field(l, "coil4", "0i");
    expect_field(l, "di7", "true");
    free(l);
    l = line_of(out, "device_status", "c1");
    cr_assert_not_null(l, "no device_status: %s", out);
    expect_field(l, "status", "\"ok\"");
    expect_field(l, "unit_id", "7i");
    expect_field(l, "consecutive_failures", "0i");
    free(l);
    free(out);
}

/* ---- coalescing ------------------------------------------------------------ */

/* Registers in 3 ranges (holding 0-4 and 10-14 bridged by max_gap 8,
 * holding 40-47, input 121) plus 2 coils 8 apart: 4 requests; with
 * max_gap 0: 6. */
static const char *const profile_3ranges =
    "profiles = ( { name = \"p\"; registers = (\n"
    "  { field = \"a\"; address = 0; }, { field = \"b\"; address = 1; },\n"
    "  { field = \"c\"; address = 2; format = \"int32\"; }, { field = \"d\"; address = 4; "
    "format = \"int16\"; },\n"
    "  { field = \"e\"; address = 10; format = \"float32\"; }, { field = \"f\"; address = 12; "
    "format = \"uint32\"; },\n"
    "  { field = \"g\"; address = 14; }, { field = \"h\"; address = 40; format = \"int64\"; },\n"
    "  { field = \"i\"; address = 44; format = \"int64\"; },\n"
    "  { field = \"t\"; kind = \"input\"; address = 121; scale = 0.1; },\n"
    "  { field = \"k0\"; kind = \"coil\"; address = 0; }, { field = \"k1\"; kind = \"coil\"; "
    "address = 9; }\n"
    "); } );\n";

static unsigned long requests_of_once(int max_gap, int devices)
{
    char devs[8192] = "";
    size_t n = 0;
    for (int i = 0; i < devices; i++)
        n += (size_t)snprintf(devs + n, sizeof(devs) - n,
                              "%s{ name = \"d%d\"; url = \"%s\"; unit_id = %d; profile = \"p\"; "
                              "}\n",
                              i ? "," : "", i, url_of(1), 10 + i);
    char body[16384];
    snprintf(body, sizeof(body),
             "inputs = ( { plugin = \"modbus\"; max_gap = %d;\n%s devices = ( %s ); } );\n",
             max_gap, profile_3ranges, devs);
    write_conf(body);
    unsigned long before = server_counter(9000, 2);
    int code;
    char *out = run_once(&code);
    cr_expect_eq(code, 0, "%s", gdt_read_file(gdt_path("err.txt")));
    for (int i = 0; i < devices; i++) {
        char dev[16];
        snprintf(dev, sizeof(dev), "d%d", i);
        char *l = line_of(out, "modbus", dev);
        cr_expect_not_null(l, "no point of %s", dev);
        free(l);
    }
    free(out);
    return server_counter(9000, 2) - before;
}

Test(modbus, coalescing_issues_the_planned_number_of_requests)
{
    start_server(NULL, 1);
    cr_expect_eq(requests_of_once(8, 1), 4);
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_expect(strstr(err, "p: 12 fields in 4 requests: coil 0+10, holding 0+15, holding 40+8, "
                          "input 121+1"),
              "plan not logged: %s", err);
    free(err);
    cr_expect_eq(requests_of_once(0, 1), 6);
    cr_expect_eq(requests_of_once(8, 3), 12, "one plan per profile, each device reads it once");
    cr_expect_eq(server_counter(9100 + 12, 1), 4, "unit 12 was read by the last run only");
}

/* ---- exceptions and timeouts ---------------------------------------------- */

Test(modbus, exceptions_name_device_unit_address_and_are_counted)
{
    start_server("exception holding 500 509 6\n", 1);
    write_conf("inputs = ( { plugin = \"modbus\"; max_gap = 0;\n"
               "  profiles = ( { name = \"p\"; registers = (\n"
               "    { field = \"ok\"; kind = \"input\"; address = 121; },\n"
               "    { field = \"busy\"; address = 500; format = \"float32\"; },\n"
               "    { field = \"nothere\"; address = 9999; format = \"uint32\"; } ); } );\n"
               "  devices = ( { name = \"dev-busy\"; url = \"URL\"; unit_id = 5; profile = \"p\"; "
               "} );\n} );\n");
    char *conf = gdt_read_file(gdt_path("gatherd.conf"));
    char *u = strstr(conf, "URL");
    char fixed[8192];
    snprintf(fixed, sizeof(fixed), "%.*s%s%s", (int)(u - conf), conf, url_of(1), u + 3);
    gdt_write_file(gdt_path("gatherd.conf"), fixed);
    free(conf);
    int code;
    char *out = run_once(&code);
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_expect_eq(code, 1, "a failed poll is an error of the collect");
    char *l = line_of(out, "modbus", "dev-busy");
    cr_assert_not_null(l, "the good read still gives its field: %s", out);
    expect_field(l, "ok", "215");
    cr_expect_null(field_of(l, "busy"));
    free(l);
    l = line_of(out, "device_status", "dev-busy");
    cr_assert_not_null(l);
    expect_field(l, "status", "\"exception\"");
    expect_field(l, "exception_code", "6i");
    expect_field(l, "error", "\"server device busy\"");
    expect_field(l, "consecutive_failures", "1i");
    expect_field(l, "failures", "1i");
    free(l);
    char want[256];
    snprintf(want, sizeof(want),
             "device dev-busy (unit 5, %s): read holding 500+2: exception 6 (server device busy)",
             url_of(1));
    cr_expect(strstr(err, want), "missing '%s' in: %s", want, err);
    snprintf(want, sizeof(want),
             "device dev-busy (unit 5, %s): read holding 9999+2: exception 2 (illegal data "
             "address)",
             url_of(1));
    cr_expect(strstr(err, want), "missing '%s' in: %s", want, err);
    free(out);
    free(err);
}

/* Count device_status lines of @dev with status @status in @out. */
static int count_status(const char *out, const char *dev, const char *status)
{
    char want[160];
    snprintf(want, sizeof(want), "device=%s status=\"%s\"", dev, status);
    int n = 0;
    for (const char *p = out; (p = strstr(p, want)); p++)
        n++;
    return n;
}

/* The largest value of numeric field @key over device_status lines of @dev. */
static double max_field(const char *out, const char *dev, const char *key)
{
    double max = -1;
    char want[128];
    snprintf(want, sizeof(want), "device_status,device=%s ", dev);
    for (const char *p = out; (p = strstr(p, want)); p++) {
        const char *eol = strchr(p, '\n');
        char *line = strndup(p, eol ? (size_t)(eol - p) : strlen(p));
        char *v = field_of(line, key);
        if (v && atof(v) > max)
            max = atof(v);
        free(v);
        free(line);
    }
    return max;
}

static pid_t spawn_with_file_output(const char *inputs)
{
    char body[16384];
    snprintf(body, sizeof(body), "%soutputs = ( { plugin = \"file\"; path = \"%s\"; } );\n", inputs,
             gdt_path("points.lp"));
    write_conf(body);
    return gdt_spawn(gdt_path("gatherd.conf"));
}

static void stop_daemon(pid_t pid)
{
    kill(pid, SIGTERM);
    int code = gdt_wait_exit(pid, 20);
    if (code != 0) {
        char *err = gdt_read_file(gdt_path("daemon.err"));
        cr_expect_fail("gatherd exited with %d: %s", code, err);
        free(err);
    }
}

Test(modbus, a_slow_device_times_out_without_delaying_the_others)
{
    start_server("delay 9 2000\n", 4);
    char inputs[4096];
    snprintf(inputs, sizeof(inputs),
             "inputs = ( { plugin = \"modbus\"; interval = 0.5; spread = false;\n"
             "  profiles = ( { name = \"p\"; registers = ( { field = \"t\"; kind = \"input\"; "
             "address = 121; } ); } );\n"
             "  devices = (\n"
             "    { name = \"slow\"; url = \"%s\"; unit_id = 9; profile = \"p\"; "
             "response_timeout = \"300ms\"; retries = 1; },\n"
             "    { name = \"f1\"; url = \"%s\"; unit_id = 1; profile = \"p\"; },\n"
             "    { name = \"f2\"; url = \"%s\"; unit_id = 2; profile = \"p\"; },\n"
             "    { name = \"f3\"; url = \"%s\"; unit_id = 3; profile = \"p\"; } );\n"
             "} );\n",
             url_of(1), url_of(2), url_of(3), url_of(4));
    pid_t pid = spawn_with_file_output(inputs);
    gdt_msleep(3200);
    stop_daemon(pid);
    char *out = gdt_read_file(gdt_path("points.lp"));
    char *err = gdt_read_file(gdt_path("daemon.err"));
    cr_expect_geq(count_status(out, "slow", "timeout"), 1, "%s", out);
    cr_expect_eq(count_status(out, "slow", "ok"), 0);
    for (int i = 1; i <= 3; i++) {
        char dev[8];
        snprintf(dev, sizeof(dev), "f%d", i);
        cr_expect_geq(count_status(out, dev, "ok"), 6, "%s polled every 0.5 s: %s", dev, out);
        /* The slow device needs 600 ms a poll: the others must not wait for it. */
        cr_expect_lt(max_field(out, dev, "lateness_ms"), 250.0, "%s started late", dev);
        cr_expect_lt(max_field(out, dev, "response_time_ms"), 250.0, "%s answered late", dev);
    }
    cr_expect_geq(max_field(out, "slow", "response_time_ms"), 590.0, "two attempts of 300 ms each");
    cr_expect_geq(max_field(out, "slow", "consecutive_failures"), 2.0);
    cr_expect_geq(max_field(out, "slow", "skipped"), 1.0, "the dead device backs off");
    char want[256];
    snprintf(want, sizeof(want), "device slow (unit 9, %s): read input 121+1: timeout", url_of(1));
    cr_expect(strstr(err, want), "missing '%s' in: %s", want, err);
    cr_expect(!strstr(err, "overrun"), "the instance never overran: %s", err);
    gdt_counters c = gdt_counters_of(err, "input:modbus/modbus");
    cr_expect_geq(c.errors, 2);
    free(out);
    free(err);
}

/* ---- reconnect ---------------------------------------------------------- */

Test(modbus, a_server_restart_is_survived)
{
    start_server(NULL, 1);
    char inputs[2048];
    snprintf(inputs, sizeof(inputs),
             "inputs = ( { plugin = \"modbus\"; interval = 0.25;\n"
             "  devices = ( { name = \"r\"; url = \"%s\"; response_timeout = \"200ms\";\n"
             "                registers = ( { field = \"t\"; kind = \"input\"; address = 121; "
             "scale = 0.1; } ); } );\n"
             "} );\n",
             url_of(1));
    pid_t pid = spawn_with_file_output(inputs);
    gdt_msleep(1000);
    gdt_srv_stop(&srv, SCRIPT);
    gdt_msleep(800);
    gdt_srv_start(&srv, SCRIPT, "restarting the Modbus test server");
    gdt_msleep(3000);
    stop_daemon(pid);
    char *out = gdt_read_file(gdt_path("points.lp"));
    const char *down = strstr(out, "status=\"connection_error\"");
    cr_assert_not_null(down, "the restart was noticed: %s", out);
    const char *before = strstr(out, "status=\"ok\"");
    cr_expect(before && before < down, "polls went well before the restart");
    cr_expect_not_null(strstr(down, "status=\"ok\""), "polls went well again after it: %s", out);
    cr_expect_not_null(strstr(down, "modbus,device=r t=21.5"), "values again after it");
    cr_expect_geq(server_counter(9002, 2), 1, "the daemon connected to the new server");
    free(out);
}

/* ---- configuration ------------------------------------------------------- */

Test(modbus, a_profile_from_an_included_file_is_shared_by_a_fleet)
{
    start_server(NULL, 1);
    gdt_write_file(gdt_path("chamber.profile"),
                   "{ name = \"cc\"; measurement = \"chamber\"; tags = { model = \"cc-2000\"; };\n"
                   "  registers = ( { field = \"temp_c\"; kind = \"input\"; address = 121; scale "
                   "= 0.1; } ); }\n");
    char body[4096];
    snprintf(body, sizeof(body),
             "inputs = ( { plugin = \"modbus\";\n"
             "  profiles = (\n@include \"chamber.profile\"\n  );\n"
             "  devices = ( { name = \"c1\"; url = \"%s\"; unit_id = 1; profile = \"cc\"; tags = "
             "{ room = \"a\"; }; },\n"
             "              { name = \"c2\"; url = \"%s\"; unit_id = 2; profile = \"cc\"; } );\n"
             "} );\n",
             url_of(1), url_of(1));
    write_conf(body);
    int code;
    char *out = run_once(&code);
    cr_expect_eq(code, 0);
    cr_expect_not_null(strstr(out, "chamber,device=c1,model=cc-2000,room=a temp_c=21.5 "), "%s",
                       out);
    cr_expect_not_null(strstr(out, "chamber,device=c2,model=cc-2000 temp_c=21.5 "), "%s", out);
    free(out);
}

Test(modbus, configuration_mistakes_are_explained)
{
    write_conf("inputs = ( { plugin = \"modbus\";\n"
               "  devices = ( { name = \"c1\"; url = \"tcp://127.0.0.1:1\"; profile = \"nope\"; "
               "} ); } );\n");
    int code;
    free(run_once(&code));
    cr_expect_neq(code, 0);
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_expect(strstr(err, "device 'c1': no profile named 'nope'"), "%s", err);
    free(err);

    write_conf("inputs = ( { plugin = \"modbus\";\n"
               "  devices = ( { name = \"c1\"; url = \"tcp://127.0.0.1:1\"; registers = (\n"
               "    { field = \"x\"; kind = \"coil\"; address = 1; format = \"float32\"; } ); } "
               "); } );\n");
    free(run_once(&code));
    cr_expect_neq(code, 0);
    err = gdt_read_file(gdt_path("err.txt"));
    cr_expect(strstr(err, "register 'x' at coil 1: coils and discrete inputs have format bit"),
              "%s", err);
    free(err);

    write_conf("inputs = ( { plugin = \"modbus\";\n"
               "  devices = ( { name = \"c1\"; url = \"udp://x\"; registers = (\n"
               "    { field = \"x\"; address = 1; orderr = \"ABCD\"; } ); } ); } );\n");
    char args[512];
    snprintf(args, sizeof(args), "-t -c %s", gdt_path("gatherd.conf"));
    cr_expect_neq(gdt_run(args), 0, "a typo in a register is caught by -t");
}

Test(modbus, gatherd_t_shows_the_request_plan_and_catches_unknown_profiles)
{
    const char *conf =
        "inputs = ( { plugin = \"modbus\"; name = \"chambers\";\n"
        "  profiles = ( { name = \"p\"; registers = (\n"
        "    { field = \"a\"; kind = \"holding\"; address = 0; format = \"int16\"; },\n"
        "    { field = \"b\"; kind = \"holding\"; address = 5; format = \"float32\"; },\n"
        "    { field = \"c\"; kind = \"holding\"; address = 200; format = \"uint16\"; } ); } );\n"
        "  devices = ( { name = \"c1\"; url = \"tcp://127.0.0.1:1\"; profile = \"%s\"; } ); } );\n";
    char text[1024], args[512];
    snprintf(args, sizeof(args), "-t -c %s", gdt_path("gatherd.conf"));
    snprintf(text, sizeof(text), conf, "p");
    write_conf(text);
    cr_assert_eq(gdt_run(args), 0);
    char *err = gdt_read_file(gdt_path("err.txt"));
    cr_assert(strstr(err, "3 fields in 2 requests: holding 0+7, holding 200+1"), "%s", err);
    free(err);
    snprintf(text, sizeof(text), conf, "nope");
    write_conf(text);
    cr_assert_neq(gdt_run(args), 0);
    err = gdt_read_file(gdt_path("err.txt"));
    cr_assert(strstr(err, "no profile named 'nope'"), "%s", err);
    free(err);
}

Test(modbus, the_fleet_example_polls_fifty_chambers)
{
    start_server(NULL, 1);
    char *ex = gdt_read_file(GATHERD_SERVERS "/../../conf.d/modbus-fleet.conf.example");
    cr_assert(strstr(ex, "profiles"), "example not found");
    /* Point every chamber at the test server. */
    char *conf = malloc(strlen(ex) * 2 + 1024), *w = conf;
    w += sprintf(w, "global = { interval = 10.0; };\n");
    for (const char *p = ex; *p;) {
        const char *u = strstr(p, "tcp://10.20.0.");
        if (!u) {
            w += sprintf(w, "%s", p);
            break;
        }
        w += sprintf(w, "%.*s%s", (int)(u - p), p, url_of(1));
        p = strchr(u, '"');
    }
    gdt_write_file(gdt_path("gatherd.conf"), conf);
    free(conf);
    free(ex);
    int code;
    char *out = run_once(&code);
    cr_expect_eq(code, 0);
    for (int i = 1; i <= 50; i++) {
        char dev[16];
        snprintf(dev, sizeof(dev), "ch-%02d", i);
        char *l = line_of(out, "chamber", dev);
        cr_expect_not_null(l, "no point of %s", dev);
        if (l)
            expect_field(l, "alarm_high_temp", "true");
        free(l);
        l = line_of(out, "device_status", dev);
        cr_expect(l && strstr(l, "status=\"ok\""), "%s: %s", dev, l ? l : "no status");
        free(l);
    }
    free(out);
}

Test(modbus, a_late_answer_never_passes_for_another_device_on_the_link)
{
    start_server("delay 9 450\n", 1);
    char inputs[2048];
    snprintf(inputs, sizeof(inputs),
             "inputs = ( { plugin = \"modbus\"; interval = 0.5; spread = false;\n"
             "  profiles = ( { name = \"p\"; registers = ( { field = \"t\"; kind = \"input\"; "
             "address = 121; } ); } );\n"
             "  devices = (\n"
             "    { name = \"late\"; url = \"%s\"; unit_id = 9; profile = \"p\"; "
             "response_timeout = \"200ms\"; retries = 1; },\n"
             "    { name = \"mate\"; url = \"%s\"; unit_id = 1; profile = \"p\"; } );\n"
             "} );\n",
             url_of(1), url_of(1));
    pid_t pid = spawn_with_file_output(inputs);
    gdt_msleep(2600);
    stop_daemon(pid);
    char *out = gdt_read_file(gdt_path("points.lp"));
    cr_expect_geq(count_status(out, "late", "timeout"), 1, "%s", out);
    cr_expect_geq(count_status(out, "mate", "ok"), 4, "%s", out);
    cr_expect_eq(count_status(out, "mate", "protocol_error"), 0, "%s", out);
    cr_expect_eq(count_status(out, "late", "protocol_error"), 0, "%s", out);
    cr_expect_eq(count_status(out, "late", "ok"), 0, "%s", out);
    free(out);
}

/* ---- RTU ------------------------------------------------------------------- */

Test(modbus, a_dead_slave_on_an_rtu_bus_backs_off_alone)
{
    start_server("dead 2\n", 1);
    char path[256];
    snprintf(path, sizeof(path), "%s/rtu_path", srv.dir);
    char *tty = gdt_read_file(path);
    tty[strcspn(tty, "\n")] = '\0';
    cr_assert(tty[0] == '/', "no pseudo-terminal: %s", tty);
    char inputs[4096];
    snprintf(inputs, sizeof(inputs),
             "inputs = ( { plugin = \"modbus\"; interval = 0.5; spread = false;\n"
             "  profiles = ( { name = \"p\"; registers = (\n"
             "    { field = \"t\"; kind = \"input\"; address = 121; scale = 0.1; },\n"
             "    { field = \"u32\"; address = 26; format = \"uint32\"; order = \"CDAB\"; type = "
             "\"uint\"; },\n"
             "    { field = \"k3\"; kind = \"coil\"; address = 3; } ); } );\n"
             "  devices = (\n"
             "    { name = \"alive\"; url = \"rtu://%s\"; unit_id = 1; baud = 19200; parity = "
             "\"even\"; frame_delay = \"5ms\"; profile = \"p\"; response_timeout = \"150ms\"; "
             "retries = 0; },\n"
             "    { name = \"dead\"; url = \"rtu://%s\"; unit_id = 2; baud = 19200; parity = "
             "\"even\"; frame_delay = \"5ms\"; profile = \"p\"; response_timeout = \"150ms\"; "
             "retries = 0; } );\n"
             "} );\n",
             tty, tty);
    free(tty);
    pid_t pid = spawn_with_file_output(inputs);
    gdt_msleep(4200);
    stop_daemon(pid);
    char *out = gdt_read_file(gdt_path("points.lp"));
    int alive_ok = count_status(out, "alive", "ok");
    int dead_polls = count_status(out, "dead", "timeout");
    cr_expect_geq(alive_ok, 7, "the live slave is polled every 0.5 s: %s", out);
    cr_expect_eq(count_status(out, "alive", "timeout"), 0);
    cr_expect_geq(dead_polls, 2, "%s", out);
    cr_expect_leq(dead_polls, 4, "the dead slave backs off (0.5 s, 1 s, 2 s ...): %s", out);
    cr_expect_not_null(strstr(out, "modbus,device=alive t=21.5,u32=3456789012u,k3=true "), "%s",
                       out);
    cr_expect_lt(max_field(out, "alive", "lateness_ms"), 200.0,
                 "at most one timeout of the dead slave before it");
    cr_expect_leq(server_counter(9100 + 2, 1), (unsigned long)dead_polls,
                  "one request per attempt (the poll stops at the first timeout)");
    free(out);
}

/* ---- gatherd-modbus-probe ---------------------------------------------- */

Test(modbus, the_probe_prints_every_format_in_every_order)
{
    start_server(NULL, 1);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "\"$(dirname %s)/../plugins/inputs/modbus/gatherd-modbus-probe\" -u 4 -a 30 -n 8 "
             "%s >%s 2>&1",
             GATHERD_BIN, url_of(1), gdt_path("probe.txt"));
    int st = system(cmd);
    char *out = gdt_read_file(gdt_path("probe.txt"));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", out);
    cr_expect(strstr(out, "unit 4, holding 30+8"), "%s", out);
    cr_expect(strstr(out, "     30  0x42f6"), "raw registers: %s", out);
    /* float32 123.456 sits at 30 (ABCD), 32 (DCBA), 34 (BADC), 36 (CDAB):
     * each start shows it in the matching column. */
    const char *const rows[] = {"     30  float32 ", "     32  float32 ", "     34  float32 ",
                                "     36  float32 "};
    for (int o = 0; o < 4; o++) {
        const char *row = strstr(out, rows[o]);
        cr_assert_not_null(row, "%s", out);
        char *line = strndup(row, strcspn(row, "\n"));
        char *col = line + strlen(rows[o]);
        double v[4];
        cr_assert_eq(sscanf(col, "%lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3]), 4, "%s", line);
        cr_expect(v[o] > 123.4559 && v[o] < 123.4561, "%s: %s", orders[o], line);
        free(line);
    }
    free(out);
}
