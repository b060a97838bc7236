/* SPDX-License-Identifier: Apache-2.0 */
/* test_options.c - option tables applied to libconfig groups: every type,
 * defaults, every error class with its file:line, expansion, lists and
 * groups, canonical text, printing, redaction, --describe, table checks. */
#include "options.h"
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the table under test ------------------------------------------------ */

struct reg {
    char *field;
    int64_t address;
    int kind;
    double scale;
};

struct queue {
    int64_t max_points;
    int overflow;
    double flush;
};

struct cfg {
    bool enabled;
    int64_t port;
    double ratio;
    double timeout;
    char *host;
    char *password;
    int overflow;
    gd_strlist match;
    gd_kvlist tags;
    gd_list registers;
    struct queue queue;
    char *greeting;
};

static const char *const kinds[] = {"holding", "input", "coil", NULL};
static const char *const overflows[] = {"block", "drop_oldest", "spool", NULL};

#define R(f) offsetof(struct reg, f)
#define Q(f) offsetof(struct queue, f)
#define C(f) offsetof(struct cfg, f)

static const struct gd_option reg_opts[] = {
    GD_OPT_STRING("field", NULL, GD_OF_REQUIRED, R(field), "Field name of the reading"),
    GD_OPT_INT("address", NULL, 0, 65535, GD_OF_REQUIRED, R(address), "Register address"),
    GD_OPT_ENUM("kind", "holding", kinds, 0, R(kind), "Register table"),
    GD_OPT_DOUBLE("scale", "1.0", 0, 0, 0, R(scale), "Multiplier applied to the raw value"),
    GD_OPT_END,
};

static const struct gd_option queue_opts[] = {
    GD_OPT_INT("max_points", "100000", 1, 1e9, 0, Q(max_points), "Queue capacity in points"),
    GD_OPT_ENUM("overflow", "block", overflows, 0, Q(overflow),
                "What to do when the queue is full"),
    GD_OPT_DURATION("flush", "250ms", 0, 0, 0, Q(flush), "Flush interval"),
    GD_OPT_END,
};

static const struct gd_option opts[] = {
    GD_OPT_BOOL("enabled", "true", 0, C(enabled), "Whether to poll the device"),
    GD_OPT_INT("port", "502", 1, 65535, 0, C(port), "TCP port"),
    GD_OPT_DOUBLE("ratio", "0.5", 0, 1, 0, C(ratio), "A ratio"),
    GD_OPT_DURATION("timeout", "5s", 0.001, 3600, 0, C(timeout), "Request timeout"),
    GD_OPT_STRING("host", NULL, GD_OF_REQUIRED, C(host), "Device host name"),
    GD_OPT_STRING("password", NULL, GD_OF_SENSITIVE, C(password), "Device password"),
    GD_OPT_ENUM("overflow", "block", overflows, 0, C(overflow), "Overflow policy"),
    GD_OPT_STRLIST("match", 0, C(match), "Input names to take"),
    GD_OPT_KV("tags", 0, C(tags), "Tags added to every point"),
    GD_OPT_LIST("registers", reg_opts, struct reg, 0, C(registers), "Register map"),
    GD_OPT_GROUP("queue", queue_opts, 0, C(queue), "Queue settings"),
    GD_OPT_STRING("greeting", "hello", 0, C(greeting), "A greeting"),
    GD_OPT_END,
};

/* ---- fixture: a temp dir, one parsed file, the filled struct ---------------- */

static char dir[64];
static char path[PATH_MAX];
static config_t tree;
static bool tree_ok;
static struct cfg c;
static gd__errs errs;
#include "errs_assert.h"

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void)
{
    strcpy(dir, "/tmp/gd-opts-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/test.conf", dir);
    memset(&c, 0, sizeof(c));
    memset(&errs, 0, sizeof(errs));
    config_init(&tree);
    tree_ok = true;
}

static void teardown(void)
{
    gd__opts_free(opts, &c);
    gd__errs_free(&errs);
    config_destroy(&tree);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(options, .init = setup, .fini = teardown);

static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "cannot write %s", p);
    fputs(text, f);
    fclose(f);
}

/* Parses "inst = {\n BODY \n};" from a real file (so settings know their
 * file): the body's first line is line 2. */
static const config_setting_t *load_inst(const char *body)
{
    char *text = NULL;
    cr_assert(asprintf(&text, "inst = {\n%s\n};\n", body) > 0);
    write_file(path, text);
    free(text);
    cr_assert(config_read_file(&tree, path), "parse: %s:%d: %s", path, config_error_line(&tree),
              config_error_text(&tree));
    return config_lookup(&tree, "inst");
}

static int fill(const char *body)
{
    const config_setting_t *g = load_inst(body);
    struct gd__optset set = {opts, &c};
    return gd__opts_fill(&set, 1, g, "test", &errs);
}

/* ---- every type ------------------------------------------------------------ */

Test(options, fills_every_type_from_config)
{
    int rc = fill("enabled = false;\n"
                  "port = 1502;\n"
                  "ratio = 0.25;\n"
                  "timeout = \"250ms\";\n"
                  "host = \"10.0.0.7\";\n"
                  "password = \"s3cret\";\n"
                  "overflow = \"spool\";\n"
                  "match = [\"chamber-*\", \"meter-*\"];\n"
                  "tags = { site = \"lab-a\"; rack = 3; gain = 1.5; live = true; };\n"
                  "registers = ( { field = \"temp_c\"; address = 100; kind = \"input\"; "
                  "scale = 0.1; } );\n"
                  "queue = { max_points = 5000; overflow = \"drop_oldest\"; flush = 2; };\n"
                  "greeting = \"hi\";");
    assert_no_errs(rc);
    cr_expect_eq(c.enabled, false);
    cr_expect_eq(c.port, 1502);
    cr_expect_eq(c.ratio, 0.25);
    cr_expect_eq(c.timeout, 0.25);
    cr_expect_str_eq(c.host, "10.0.0.7");
    cr_expect_str_eq(c.password, "s3cret");
    cr_expect_eq(c.overflow, 2);
    cr_assert_eq(c.match.n, 2);
    cr_expect_str_eq(c.match.v[0], "chamber-*");
    cr_expect_str_eq(c.match.v[1], "meter-*");
    cr_assert_eq(c.tags.n, 4);
    cr_expect_str_eq(c.tags.v[0].key, "site");
    cr_expect_str_eq(c.tags.v[0].value, "lab-a");
    cr_expect_str_eq(c.tags.v[1].key, "rack");
    cr_expect_str_eq(c.tags.v[1].value, "3");
    cr_expect_str_eq(c.tags.v[2].value, "1.5");
    cr_expect_str_eq(c.tags.v[3].value, "true");
    cr_assert_eq(c.registers.n, 1);
    struct reg *r = c.registers.items;
    cr_expect_str_eq(r[0].field, "temp_c");
    cr_expect_eq(r[0].address, 100);
    cr_expect_eq(r[0].kind, 1);
    cr_expect_eq(r[0].scale, 0.1);
    cr_expect_eq(c.queue.max_points, 5000);
    cr_expect_eq(c.queue.overflow, 1);
    cr_expect_eq(c.queue.flush, 2.0);
    cr_expect_str_eq(c.greeting, "hi");
}

Test(options, defaults_apply_to_absent_options)
{
    assert_no_errs(fill("host = \"h\";"));
    cr_expect_eq(c.enabled, true);
    cr_expect_eq(c.port, 502);
    cr_expect_eq(c.ratio, 0.5);
    cr_expect_eq(c.timeout, 5.0);
    cr_expect_null(c.password);
    cr_expect_eq(c.overflow, 0);
    cr_expect_eq(c.match.n, 0);
    cr_expect_eq(c.tags.n, 0);
    cr_expect_eq(c.registers.n, 0);
    cr_expect_str_eq(c.greeting, "hello");
}

Test(options, missing_group_gets_sub_table_defaults)
{
    assert_no_errs(fill("host = \"h\";"));
    cr_expect_eq(c.queue.max_points, 100000);
    cr_expect_eq(c.queue.overflow, 0);
    cr_expect_eq(c.queue.flush, 0.25);
}

Test(options, null_group_takes_defaults_but_reports_required)
{
    struct gd__optset set = {opts, &c};
    int rc = gd__opts_fill(&set, 1, NULL, "test", &errs);
    cr_expect_eq(rc, GD_ECONFIG);
    cr_expect_eq(errs.n, 1);
    assert_err("test: option 'host': missing required value");
    cr_expect_eq(c.port, 502);
    cr_expect_str_eq(c.greeting, "hello");
}

Test(options, list_items_get_their_defaults)
{
    assert_no_errs(fill("host = \"h\";\n"
                        "registers = ( { field = \"a\"; address = 1; },\n"
                        "              { field = \"b\"; address = 2; kind = \"coil\"; } );"));
    cr_assert_eq(c.registers.n, 2);
    struct reg *r = c.registers.items;
    cr_expect_eq(r[0].kind, 0);
    cr_expect_eq(r[0].scale, 1.0);
    cr_expect_str_eq(r[1].field, "b");
    cr_expect_eq(r[1].kind, 2);
}

Test(options, int_accepts_int64_literal)
{
    static const struct gd_option big[] = {
        GD_OPT_INT("port", NULL, 0, 0, 0, C(port), "no bounds"),
        GD_OPT_END,
    };
    const config_setting_t *g = load_inst("port = 5000000000L;");
    struct gd__optset set = {big, &c};
    assert_no_errs(gd__opts_fill(&set, 1, g, "test", &errs));
    cr_expect_eq(c.port, 5000000000LL);
}

Test(options, double_accepts_an_integer)
{
    assert_no_errs(fill("host = \"h\"; ratio = 1;"));
    cr_expect_eq(c.ratio, 1.0);
}

Test(options, duration_accepts_plain_seconds)
{
    assert_no_errs(fill("host = \"h\"; timeout = 1.5;"));
    cr_expect_eq(c.timeout, 1.5);
}

Test(options, strlist_accepts_a_single_string)
{
    assert_no_errs(fill("host = \"h\"; match = \"only-*\";"));
    cr_assert_eq(c.match.n, 1);
    cr_expect_str_eq(c.match.v[0], "only-*");
}

Test(options, strlist_accepts_a_list_and_an_empty_array)
{
    assert_no_errs(fill("host = \"h\"; match = ( \"a\", \"b\", \"c\" );"));
    cr_expect_eq(c.match.n, 3);
    gd__opts_free(opts, &c);
    config_destroy(&tree);
    config_init(&tree);
    assert_no_errs(fill("host = \"h\"; match = [];"));
    cr_expect_eq(c.match.n, 0);
}

Test(options, several_sets_share_one_group)
{
    struct common {
        double interval;
    } common = {0};
    static const struct gd_option common_opts[] = {
        GD_OPT_DURATION("interval", "10s", 0, 0, 0, offsetof(struct common, interval), "Every"),
        GD_OPT_END,
    };
    const config_setting_t *g = load_inst("interval = \"2s\";\nhost = \"h\";");
    struct gd__optset sets[] = {{common_opts, &common}, {opts, &c}};
    assert_no_errs(gd__opts_fill(sets, 2, g, "test", &errs));
    cr_expect_eq(common.interval, 2.0);
    cr_expect_str_eq(c.host, "h");
}

/* ---- durations -------------------------------------------------------------- */

Test(options, duration_parse_accepts_every_unit)
{
    static const struct {
        const char *in;
        double want;
    } cases[] = {
        {"250ms", 0.25},  {"5s", 5},      {"1.5m", 90}, {"2h", 7200},       {"1d", 86400},
        {"100us", 1e-4},  {"10ns", 1e-8}, {"3", 3},     {"0.5", 0.5},       {"1h30m", 5400},
        {"1h 30m", 5400}, {" 5 s ", 5},   {"5 sec", 5}, {"2 minutes", 120}, {"1 day", 86400},
        {".5s", 0.5},     {"0", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double d = -1;
        cr_expect_eq(gd__duration_parse(cases[i].in, &d), 0, "\"%s\" refused", cases[i].in);
        cr_expect_float_eq(d, cases[i].want, 1e-12, "\"%s\" -> %g", cases[i].in, d);
    }
}

Test(options, duration_parse_refuses_garbage)
{
    static const char *const bad[] = {"",     "s",   "5x",   "-5s", "inf",  "nan",   "5 3s",
                                      "1m30", "5ss", "1e3s", ".",   "5,5s", "0x10s", NULL};
    for (int i = 0; bad[i]; i++) {
        double d = 42;
        cr_expect_eq(gd__duration_parse(bad[i], &d), GD_EINVAL, "\"%s\" accepted", bad[i]);
        cr_expect_eq(d, 42);
    }
    cr_expect_eq(gd__duration_parse(NULL, &(double){0}), GD_EINVAL);
}

/* ---- error classes ------------------------------------------------------------ */

Test(options, unknown_option_suggests_a_close_name)
{
    cr_expect_eq(fill("prot = 503;\nhost = \"h\";"), GD_ECONFIG);
    assert_err("%s:2: test: option 'prot': unknown option (did you mean 'port'?)", path);
    cr_expect_eq(errs.n, 1);
}

Test(options, unknown_option_far_from_every_name_has_no_suggestion)
{
    cr_expect_eq(fill("host = \"h\";\nbananas = 1;"), GD_ECONFIG);
    assert_err("%s:3: test: option 'bananas': unknown option", path);
    cr_expect(!gd__errs_contains(&errs, "did you mean"));
}

Test(options, unknown_option_inside_a_group_names_the_group)
{
    cr_expect_eq(fill("host = \"h\";\nqueue = {\n  max_point = 5;\n};"), GD_ECONFIG);
    assert_err("%s:4: test queue: option 'max_point': unknown option (did you mean "
               "'max_points'?)",
               path);
}

Test(options, int_refuses_a_float)
{
    cr_expect_eq(fill("port = 502.5;\nhost = \"h\";"), GD_ECONFIG);
    assert_err("%s:2: test: option 'port': expected integer but got float", path);
}

Test(options, string_refuses_an_integer)
{
    cr_expect_eq(fill("host = 42;"), GD_ECONFIG);
    assert_err("%s:2: test: option 'host': expected string but got integer", path);
}

Test(options, bool_refuses_a_string)
{
    cr_expect_eq(fill("host = \"h\";\nenabled = \"yes\";"), GD_ECONFIG);
    assert_err("%s:3: test: option 'enabled': expected boolean but got string", path);
}

Test(options, int_out_of_range_names_the_bounds)
{
    cr_expect_eq(fill("host = \"h\";\nport = 70000;"), GD_ECONFIG);
    assert_err("%s:3: test: option 'port': value 70000 out of range [1, 65535]", path);
}

Test(options, double_out_of_range_names_the_bounds)
{
    cr_expect_eq(fill("host = \"h\";\nratio = 1.5;"), GD_ECONFIG);
    assert_err("%s:3: test: option 'ratio': value 1.5 out of range [0, 1]", path);
}

Test(options, duration_out_of_range_names_the_bounds)
{
    cr_expect_eq(fill("host = \"h\";\ntimeout = \"2h\";"), GD_ECONFIG);
    assert_err("%s:3: test: option 'timeout': value \"2h\" out of range [0.001, 3600] seconds",
               path);
}

Test(options, bad_duration_quotes_the_text)
{
    cr_expect_eq(fill("host = \"h\";\ntimeout = \"5 parsecs\";"), GD_ECONFIG);
    assert_err("%s:3: test: option 'timeout': invalid duration \"5 parsecs\"", path);
}

Test(options, negative_duration_number_is_refused)
{
    cr_expect_eq(fill("host = \"h\";\ntimeout = -1;"), GD_ECONFIG);
    assert_err("%s:3: test: option 'timeout': invalid duration -1", path);
}

Test(options, bad_enum_lists_the_choices)
{
    cr_expect_eq(fill("host = \"h\";\noverflow = \"drop\";"), GD_ECONFIG);
    assert_err("%s:3: test: option 'overflow': \"drop\" must be one of \"block\", "
               "\"drop_oldest\", \"spool\"",
               path);
}

Test(options, missing_required_points_at_the_group)
{
    cr_expect_eq(fill("port = 1;"), GD_ECONFIG);
    assert_err("%s:1: test: option 'host': missing required value", path);
}

Test(options, strlist_item_of_wrong_type_is_named_by_index)
{
    cr_expect_eq(fill("host = \"h\";\nmatch = ( \"a\", 7 );"), GD_ECONFIG);
    assert_err("%s:3: test: option 'match[1]': expected string but got integer", path);
}

Test(options, kv_refuses_a_nested_group)
{
    cr_expect_eq(fill("host = \"h\";\ntags = { site = \"a\";\n  deep = { x = 1; }; };"),
                 GD_ECONFIG);
    assert_err("%s:4: test: option 'tags.deep': expected a string, number or boolean but got "
               "group",
               path);
}

Test(options, kv_refuses_a_scalar)
{
    cr_expect_eq(fill("host = \"h\";\ntags = \"site=a\";"), GD_ECONFIG);
    assert_err("%s:3: test: option 'tags': expected group but got string", path);
}

Test(options, list_item_errors_name_the_item)
{
    cr_expect_eq(fill("host = \"h\";\n"
                      "registers = (\n"
                      "  { field = \"a\"; address = 1; },\n"
                      "  { field = \"b\";\n"
                      "    address = 70000; }\n"
                      ");"),
                 GD_ECONFIG);
    assert_err("%s:6: test registers[1]: option 'address': value 70000 out of range [0, 65535]",
               path);
    cr_expect_eq(errs.n, 1);
    /* What could be filled is filled. */
    cr_assert_eq(c.registers.n, 2);
    cr_expect_str_eq(((struct reg *)c.registers.items)[1].field, "b");
}

Test(options, list_item_missing_required_points_at_the_item)
{
    cr_expect_eq(fill("host = \"h\";\nregisters = (\n  { field = \"a\"; }\n);"), GD_ECONFIG);
    assert_err("%s:4: test registers[0]: option 'address': missing required value", path);
}

Test(options, list_item_that_is_not_a_group_is_refused)
{
    cr_expect_eq(fill("host = \"h\";\nregisters = ( { field = \"a\"; address = 1; }, 5 );"),
                 GD_ECONFIG);
    assert_err("%s:3: test: option 'registers[1]': expected group but got integer", path);
}

Test(options, list_refuses_a_single_group)
{
    cr_expect_eq(fill("host = \"h\";\nregisters = { field = \"a\"; address = 1; };"), GD_ECONFIG);
    assert_err("%s:3: test: option 'registers': expected list but got group", path);
}

Test(options, group_refuses_a_scalar_and_keeps_sub_defaults)
{
    cr_expect_eq(fill("host = \"h\";\nqueue = 5;"), GD_ECONFIG);
    assert_err("%s:3: test: option 'queue': expected group but got integer", path);
    cr_expect_eq(c.queue.max_points, 100000);
}

Test(options, bad_value_keeps_the_default)
{
    cr_expect_eq(fill("host = \"h\";\nport = \"x\";"), GD_ECONFIG);
    cr_expect_eq(c.port, 502);
}

Test(options, every_error_is_reported_not_just_the_first)
{
    cr_expect_eq(fill("port = 0;\n"
                      "ratio = \"x\";\n"
                      "timeout = \"soon\";\n"
                      "overflow = \"never\";\n"
                      "colour = 1;"),
                 GD_ECONFIG);
    cr_expect_eq(errs.n, 6, "got %zu errors", errs.n); /* 5 above + missing host */
    assert_err("%s:2: test: option 'port'", path);
    assert_err("%s:3: test: option 'ratio'", path);
    assert_err("%s:4: test: option 'timeout'", path);
    assert_err("%s:5: test: option 'overflow'", path);
    assert_err("%s:6: test: option 'colour': unknown option", path);
    assert_err("%s:1: test: option 'host': missing required value", path);
}

Test(options, fill_survives_odd_arguments)
{
    cr_expect_eq(gd__opts_fill(NULL, 0, NULL, "x", &errs), 0);
    struct gd__optset none = {NULL, &c};
    cr_expect_eq(gd__opts_fill(&none, 1, NULL, "x", &errs), 0);
    struct gd__optset nodst = {opts, NULL};
    cr_expect_eq(gd__opts_fill(&nodst, 1, NULL, "x", NULL), 0);
    /* A scalar where a group is expected, and no error list. */
    const config_setting_t *g = load_inst("host = \"h\";");
    struct gd__optset set = {opts, &c};
    cr_expect_eq(gd__opts_fill(&set, 1, config_setting_get_member(g, "host"), NULL, NULL),
                 GD_ECONFIG);
    gd__opts_free(opts, &c);
    cr_expect_eq(gd__opts_fill(&set, 1, config_setting_get_member(g, "host"), NULL, &errs),
                 GD_ECONFIG);
    assert_err("option 'host': expected group but got string");
}

/* ---- expansion ------------------------------------------------------------------ */

Test(options, string_expands_an_environment_variable)
{
    setenv("GD_TEST_HOST", "10.1.2.3", 1);
    assert_no_errs(fill("host = \"tcp://${GD_TEST_HOST}:502\";"));
    cr_expect_str_eq(c.host, "tcp://10.1.2.3:502");
}

Test(options, unset_environment_variable_is_an_error)
{
    unsetenv("GD_TEST_UNSET");
    cr_expect_eq(fill("host = \"h\";\npassword = \"${GD_TEST_UNSET}\";"), GD_ECONFIG);
    assert_err("%s:3: test: option 'password': environment variable GD_TEST_UNSET is not set",
               path);
}

Test(options, default_after_colon_dash_is_used_when_unset_or_empty)
{
    unsetenv("GD_TEST_UNSET");
    setenv("GD_TEST_EMPTY", "", 1);
    assert_no_errs(fill("host = \"${GD_TEST_UNSET:-localhost}\";\n"
                        "greeting = \"[${GD_TEST_EMPTY:-dflt}]\";"));
    cr_expect_str_eq(c.host, "localhost");
    cr_expect_str_eq(c.greeting, "[dflt]");
}

Test(options, default_after_colon_dash_is_ignored_when_set)
{
    setenv("GD_TEST_HOST", "real", 1);
    assert_no_errs(fill("host = \"${GD_TEST_HOST:-fallback}\";"));
    cr_expect_str_eq(c.host, "real");
}

Test(options, double_dollar_brace_is_a_literal)
{
    assert_no_errs(fill("host = \"h\"; greeting = \"cost: $${PRICE} and $5\";"));
    cr_expect_str_eq(c.greeting, "cost: ${PRICE} and $5");
}

Test(options, list_items_and_kv_values_are_expanded)
{
    setenv("GD_TEST_SITE", "lab-b", 1);
    assert_no_errs(fill("host = \"h\";\nmatch = [\"${GD_TEST_SITE}-*\"];\n"
                        "tags = { site = \"${GD_TEST_SITE}\"; };"));
    cr_expect_str_eq(c.match.v[0], "lab-b-*");
    cr_expect_str_eq(c.tags.v[0].value, "lab-b");
}

Test(options, file_reference_reads_the_file_and_strips_one_newline)
{
    char secret[PATH_MAX + 16];
    snprintf(secret, sizeof(secret), "%s/pw", dir);
    write_file(secret, "hunter2\n\n");
    char body[PATH_MAX + 64];
    snprintf(body, sizeof(body), "host = \"h\";\npassword = \"@file:%s\";", secret);
    assert_no_errs(fill(body));
    cr_expect_str_eq(c.password, "hunter2\n");
}

Test(options, file_reference_path_may_use_a_variable)
{
    char secret[PATH_MAX + 16];
    snprintf(secret, sizeof(secret), "%s/pw", dir);
    write_file(secret, "s3cret\n");
    setenv("GD_TEST_CREDS", dir, 1);
    assert_no_errs(fill("host = \"h\";\npassword = \"@file:${GD_TEST_CREDS}/pw\";"));
    cr_expect_str_eq(c.password, "s3cret");
}

Test(options, unreadable_file_reference_is_an_error)
{
    char body[PATH_MAX + 64];
    snprintf(body, sizeof(body), "host = \"h\";\npassword = \"@file:%s/missing\";", dir);
    cr_expect_eq(fill(body), GD_ECONFIG);
    assert_err("%s:3: test: option 'password': cannot read file %s/missing: No such file or "
               "directory",
               path, dir);
}

Test(options, file_prefix_only_counts_for_the_whole_value)
{
    assert_no_errs(fill("host = \"h\"; greeting = \"see @file:/nowhere\";"));
    cr_expect_str_eq(c.greeting, "see @file:/nowhere");
}

Test(options, expand_refuses_malformed_references)
{
    char *why = NULL;
    cr_expect_null(gd__expand("a ${UNTERMINATED", &why));
    cr_expect(why && strstr(why, "unterminated"), "why: %s", why ? why : "(null)");
    free(why);
    why = NULL;
    cr_expect_null(gd__expand("${}", &why));
    cr_expect(why && strstr(why, "invalid variable reference"), "why: %s", why ? why : "(null)");
    free(why);
    why = NULL;
    cr_expect_null(gd__expand("${A-b}", &why));
    free(why);
    char *plain = gd__expand("no refs, $ alone, $$ too", NULL);
    cr_expect_str_eq(plain, "no refs, $ alone, $$ too");
    free(plain);
    char *empty = gd__expand("", NULL);
    cr_expect_str_eq(empty, "");
    free(empty);
}

/* ---- canonical text, free, print, redact ----------------------------------------- */

static const char *const full_body = "host = \"h\";\npassword = \"pw1234\";\n"
                                     "match = [\"a\"];\ntags = { site = \"x\"; };\n"
                                     "registers = ( { field = \"f\"; address = 3; } );\n"
                                     "queue = { overflow = \"spool\"; };";

static char *canon_of(const char *body)
{
    config_destroy(&tree);
    config_init(&tree);
    memset(&errs, 0, sizeof(errs));
    struct cfg local = {0};
    const config_setting_t *g = load_inst(body);
    struct gd__optset set = {opts, &local};
    cr_assert_eq(gd__opts_fill(&set, 1, g, "test", &errs), 0);
    gd_buf b = {0};
    cr_assert_eq(gd__opts_canon(opts, &local, &b), 0);
    gd__opts_free(opts, &local);
    return b.data;
}

Test(options, canon_is_equal_for_equal_configs)
{
    char *a = canon_of(full_body);
    /* Same values, written differently. */
    char *b = canon_of("queue = { overflow = \"spool\"; max_points = 100000; };\n"
                       "registers = ( { address = 3; field = \"f\"; kind = \"holding\"; } );\n"
                       "tags = { site = \"x\"; }; match = \"a\";\n"
                       "password = \"pw1234\"; host = \"h\"; port = 502;");
    cr_expect_str_eq(a, b);
    free(a);
    free(b);
}

Test(options, canon_differs_when_a_value_changes)
{
    char *a = canon_of(full_body);
    char *b = canon_of("host = \"h\";\npassword = \"pw1234\";\n"
                       "match = [\"a\"];\ntags = { site = \"x\"; };\n"
                       "registers = ( { field = \"f\"; address = 4; } );\n"
                       "queue = { overflow = \"spool\"; };");
    char *p = canon_of("host = \"h\";\npassword = \"pw12345\";\n"
                       "match = [\"a\"];\ntags = { site = \"x\"; };\n"
                       "registers = ( { field = \"f\"; address = 3; } );\n"
                       "queue = { overflow = \"spool\"; };");
    cr_expect_str_neq(a, b);
    cr_expect_str_neq(a, p, "a sensitive value change must show");
    free(a);
    free(b);
    free(p);
}

Test(options, canon_covers_every_option_with_quoting)
{
    assert_no_errs(fill("host = \"a\\\"b\";"));
    gd_buf b = {0};
    cr_assert_eq(gd__opts_canon(opts, &c, &b), 0);
    cr_expect_str_eq(b.data, "enabled=true;port=502;ratio=0.5;timeout=5;host=\"a\\\"b\";"
                             "password=null;overflow=\"block\";match=[];tags={};registers=[];"
                             "queue={max_points=100000;overflow=\"block\";flush=0.25;};"
                             "greeting=\"hello\";");
    gd_buf_free(&b);
}

Test(options, free_releases_everything_and_zeroes)
{
    assert_no_errs(fill(full_body));
    gd__opts_free(opts, &c);
    struct cfg zero;
    memset(&zero, 0, sizeof(zero));
    cr_expect_eq(memcmp(&c, &zero, sizeof(c)), 0);
    gd__opts_free(opts, NULL);
    gd__opts_free(NULL, &c);
}

static char *capture(void (*fn)(FILE *f))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    fn(f);
    fclose(f);
    return text;
}

static void print_c(FILE *f)
{
    gd__opts_print(opts, &c, f, 2);
}

Test(options, print_shows_values_and_hides_secrets)
{
    assert_no_errs(fill(full_body));
    char *out = capture(print_c);
    cr_expect(strstr(out, "  host = \"h\"\n"), "%s", out);
    cr_expect(strstr(out, "  port = 502\n"), "%s", out);
    cr_expect(strstr(out, "  password = ***\n"), "%s", out);
    cr_expect(!strstr(out, "pw1234"), "%s", out);
    cr_expect(strstr(out, "  timeout = 5\n"), "%s", out);
    cr_expect(strstr(out, "  overflow = \"block\"\n"), "%s", out);
    cr_expect(strstr(out, "  match = [\"a\"]\n"), "%s", out);
    cr_expect(strstr(out, "  tags = { site = \"x\"; }\n"), "%s", out);
    cr_expect(strstr(out, "      {\n          field = \"f\"\n"), "%s", out);
    cr_expect(strstr(out, "  queue = {\n      max_points = 100000\n"), "%s", out);
    free(out);
}

Test(options, redact_registers_sensitive_values_with_the_log, .init = cr_redirect_stderr)
{
    static const struct gd_option nested[] = {
        GD_OPT_STRING("token", NULL, GD_OF_SENSITIVE, R(field), "API token"),
        GD_OPT_END,
    };
    static const struct gd_option t[] = {
        GD_OPT_STRING("host", NULL, 0, C(host), "Host"),
        GD_OPT_STRING("password", NULL, GD_OF_SENSITIVE, C(password), "Password"),
        GD_OPT_LIST("registers", nested, struct reg, 0, C(registers), "Items"),
        GD_OPT_END,
    };
    const config_setting_t *g = load_inst("host = \"visible-host\"; password = \"topsecret\";\n"
                                          "registers = ( { token = \"innertoken\"; } );");
    struct gd__optset set = {t, &c};
    assert_no_errs(gd__opts_fill(&set, 1, g, "test", &errs));
    gd__opts_redact(t, &c);
    gd_log(NULL, GD_ERROR, "connect %s with %s and %s", c.host, c.password,
           ((struct reg *)c.registers.items)[0].field);
    fflush(stderr);
    gd__opts_free(t, &c);
    gd_log_redact_clear();

    FILE *err = cr_get_redirected_stderr();
    char line[1024] = "";
    char *got = fgets(line, sizeof(line), err);
    cr_assert_not_null(got);
    cr_expect(strstr(line, "visible-host"), "%s", line);
    cr_expect(!strstr(line, "topsecret"), "%s", line);
    cr_expect(!strstr(line, "innertoken"), "%s", line);
    cr_expect(strstr(line, "***"), "%s", line);
}

static void describe_opts(FILE *f)
{
    gd__opts_describe(opts, f, 2);
}

Test(options, describe_shows_names_types_defaults_and_help)
{
    char *out = capture(describe_opts);
    cr_expect(strstr(out, "  port: int, default 502, range [1, 65535]\n      TCP port\n"), "%s",
              out);
    cr_expect(strstr(out, "  host: string [required]\n      Device host name\n"), "%s", out);
    cr_expect(strstr(out, "  password: string [sensitive]\n"), "%s", out);
    cr_expect(strstr(out, "  timeout: duration, default 5s, range [0.001, 3600] seconds\n"), "%s",
              out);
    cr_expect(strstr(out, "  overflow: enum, default \"block\", one of \"block\", "
                          "\"drop_oldest\", \"spool\"\n"),
              "%s", out);
    cr_expect(strstr(out, "  match: list of strings\n"), "%s", out);
    cr_expect(strstr(out, "  tags: table of strings\n"), "%s", out);
    cr_expect(strstr(out, "  registers: list of groups\n      Register map\n"
                          "      field: string [required]\n          Field name of the reading\n"),
              "%s", out);
    cr_expect(strstr(out, "  queue: group\n      Queue settings\n      max_points: int"), "%s",
              out);
    cr_expect(strstr(out, "  greeting: string, default \"hello\"\n"), "%s", out);
    free(out);
}

/* ---- table checks ---------------------------------------------------------------- */

Test(options, check_table_accepts_a_good_table)
{
    cr_expect_eq(gd__opts_check_table(opts, "modbus", &errs), 0);
    cr_expect_eq(errs.n, 0, "%s", errs.n ? errs.msgs[0] : "");
    cr_expect_eq(gd__opts_check_table(NULL, "empty", &errs), 0);
}

Test(options, check_table_catches_a_bad_default)
{
    static const struct gd_option t[] = {
        GD_OPT_INT("port", "abc", 0, 0, 0, C(port), "Port"),
        GD_OPT_INT("unit", "300", 1, 247, 0, C(port), "Unit"),
        GD_OPT_DURATION("timeout", "soon", 0, 0, 0, C(timeout), "Timeout"),
        GD_OPT_ENUM("overflow", "drop", overflows, 0, C(overflow), "Overflow"),
        GD_OPT_END,
    };
    cr_expect_eq(gd__opts_check_table(t, "modbus", &errs), GD_ECONFIG);
    assert_err("plugin 'modbus': option 'port': invalid default \"abc\": expected integer but got "
               "string");
    assert_err("plugin 'modbus': option 'unit': invalid default \"300\": value 300 out of range "
               "[1, 247]");
    assert_err("plugin 'modbus': option 'timeout': invalid default \"soon\": invalid duration");
    assert_err("plugin 'modbus': option 'overflow': invalid default \"drop\": \"drop\" must be one "
               "of");
}

Test(options, check_table_catches_duplicate_names)
{
    static const struct gd_option sub[] = {
        GD_OPT_STRING("field", NULL, 0, R(field), "a"),
        GD_OPT_STRING("field", NULL, 0, R(field), "b"),
        GD_OPT_END,
    };
    static const struct gd_option t[] = {
        GD_OPT_INT("port", "1", 0, 0, 0, C(port), "Port"),
        GD_OPT_INT("port", "2", 0, 0, 0, C(port), "Port again"),
        GD_OPT_LIST("registers", sub, struct reg, 0, C(registers), "Registers"),
        GD_OPT_END,
    };
    cr_expect_eq(gd__opts_check_table(t, "modbus", &errs), GD_ECONFIG);
    assert_err("plugin 'modbus': option 'port': defined twice in the table");
    assert_err("plugin 'modbus': option 'registers.field': defined twice in the table");
    cr_expect_eq(errs.n, 2);
}

Test(options, check_table_catches_structural_mistakes)
{
    static const struct gd_option t[] = {
        GD_OPT_ENUM("mode", NULL, NULL, 0, C(overflow), "no choices"),
        GD_OPT_LIST("items", NULL, struct reg, 0, C(registers), "no sub table"),
        GD_OPT_GROUP("queue", NULL, 0, C(queue), "no sub table"),
        GD_OPT_STRING("host", "x", GD_OF_REQUIRED, C(host), "required with a default"),
        GD_OPT_INT("bounds", NULL, 10, 1, 0, C(port), "min > max"),
        GD_OPT_STRING("bad name", NULL, 0, C(host), "space"),
        GD__OPT("weird", 99, 0, NULL, 0, 0, NULL, 0, "unknown type", NULL, 0),
        GD_OPT_STRING("", NULL, 0, C(host), "empty name"),
        GD_OPT_END,
    };
    cr_expect_eq(gd__opts_check_table(t, "p", &errs), GD_ECONFIG);
    assert_err("option 'mode': enum without choices");
    assert_err("option 'items': list of groups without a sub table");
    assert_err("option 'queue': group without a sub table");
    assert_err("option 'host': is required but has a default");
    assert_err("option 'bounds': min is greater than max");
    assert_err("option 'bad name': not a valid setting name");
    assert_err("option 'weird': unknown type 99");
    assert_err("option '#7': empty name");
}

Test(options, check_table_does_not_read_the_environment)
{
    static const struct gd_option t[] = {
        GD_OPT_STRING("host", "${GD_TEST_NEVER_SET}", 0, C(host), "Host"),
        GD_OPT_END,
    };
    unsetenv("GD_TEST_NEVER_SET");
    cr_expect_eq(gd__opts_check_table(t, "p", &errs), 0);
}
