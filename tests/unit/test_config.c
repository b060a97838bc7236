/* SPDX-License-Identifier: Apache-2.0 */
/* test_config.c - loading the configuration tree: main file then conf.d in
 * byte order, include_dir, embedded text, and every structural error with
 * its file:line. */
#include "config.h"
#include <gatherd/gatherd.h>
#include <criterion/criterion.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static gd__conf conf;
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
    strcpy(dir, "/tmp/gd-conf-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    memset(&conf, 0, sizeof(conf));
    memset(&errs, 0, sizeof(errs));
}

static void teardown(void)
{
    gd__conf_free(&conf);
    gd__errs_free(&errs);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config, .init = setup, .fini = teardown);

/* tmp(): a path under the test's temp dir (static buffers, four in turn). */
static const char *tmp(const char *rel)
{
    static char bufs[4][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, PATH_MAX, "%s/%s", dir, rel);
    return b;
}

/* Writes @text to @rel under the temp dir, creating one level of folder. */
static void put(const char *rel, const char *text)
{
    const char *slash = strchr(rel, '/');
    if (slash) {
        char sub[PATH_MAX];
        snprintf(sub, sizeof(sub), "%s/%.*s", dir, (int)(slash - rel), rel);
        mkdir(sub, 0755);
    }
    FILE *f = fopen(tmp(rel), "w");
    cr_assert_not_null(f, "cannot write %s", rel);
    fputs(text, f);
    fclose(f);
}

static int load(const char *rel)
{
    return gd__conf_load(&conf, tmp(rel), NULL, NULL, &errs);
}

/* Every message, one per line, for assertion output (static: an assertion
 * failure leaves the test without running cleanup). */

/* meson test sets GATHERD_TEST_DATA; otherwise look next to this source file
 * (__FILE__ is relative to the build folder), then under the working folder. */
static const char *data_dir(void)
{
    static char fallback[PATH_MAX];
    const char *d = getenv("GATHERD_TEST_DATA");
    if (d)
        return d;
    const char *slash = strrchr(__FILE__, '/');
    snprintf(fallback, sizeof(fallback), "%.*s/../data", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".");
    return access(fallback, F_OK) == 0 ? fallback : "tests/data";
}

static const char *merge_main(void)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/config/merge/gatherd.conf", data_dir());
    return path;
}

/* ---- loading and merging ----------------------------------------------------- */

Test(config, loads_global_and_instances_of_the_main_file)
{
    put("gatherd.conf", "global = { interval = 5.0; };\n"
                        "inputs = ( { plugin = \"sim\"; name = \"s1\"; },\n"
                        "           { plugin = \"sim\"; name = \"s2\"; } );\n"
                        "processors = ( { plugin = \"scale\"; } );\n"
                        "outputs = ( { plugin = \"stdout\"; } );\n");
    assert_no_errs(load("gatherd.conf"));
    cr_assert_not_null(conf.global);
    double interval = 0;
    cr_expect(config_setting_lookup_float(conf.global, "interval", &interval));
    cr_expect_eq(interval, 5.0);
    cr_assert_eq(conf.ninst[GD_KIND_INPUT], 2);
    cr_expect_str_eq(conf.inst[GD_KIND_INPUT][0].name, "s1");
    cr_expect_str_eq(conf.inst[GD_KIND_INPUT][1].name, "s2");
    cr_expect_eq(conf.inst[GD_KIND_INPUT][1].line, 3);
    cr_expect_str_eq(conf.inst[GD_KIND_INPUT][1].file, tmp("gatherd.conf"));
    cr_expect_eq(conf.inst[GD_KIND_INPUT][1].kind, GD_KIND_INPUT);
    cr_assert_eq(conf.ninst[GD_KIND_PROCESSOR], 1);
    cr_assert_eq(conf.ninst[GD_KIND_OUTPUT], 1);
    cr_expect_str_eq(conf.main_path, tmp("gatherd.conf"));
}

Test(config, name_defaults_to_the_plugin_name)
{
    put("gatherd.conf", "outputs = ( { plugin = \"stdout\"; } );\n");
    assert_no_errs(load("gatherd.conf"));
    cr_assert_eq(conf.ninst[GD_KIND_OUTPUT], 1);
    cr_expect_str_eq(conf.inst[GD_KIND_OUTPUT][0].plugin, "stdout");
    cr_expect_str_eq(conf.inst[GD_KIND_OUTPUT][0].name, "stdout");
}

Test(config, instance_settings_stay_valid_after_loading)
{
    put("gatherd.conf", "inputs = ( { plugin = \"sim\"; points = 7; } );\n");
    put("conf.d/a.conf", "inputs = ( { plugin = \"modbus\"; unit_id = 3; } );\n");
    assert_no_errs(load("gatherd.conf"));
    cr_assert_eq(conf.ninst[GD_KIND_INPUT], 2);
    int v = 0;
    cr_expect(config_setting_lookup_int(conf.inst[GD_KIND_INPUT][0].setting, "points", &v));
    cr_expect_eq(v, 7);
    cr_expect(config_setting_lookup_int(conf.inst[GD_KIND_INPUT][1].setting, "unit_id", &v));
    cr_expect_eq(v, 3);
    cr_expect_str_eq(config_setting_source_file(conf.inst[GD_KIND_INPUT][1].setting),
                     tmp("conf.d/a.conf"));
}

Test(config, merges_main_then_conf_d_in_byte_order)
{
    const char *path = merge_main();
    assert_no_errs(gd__conf_load(&conf, path, NULL, NULL, &errs));
    cr_assert_eq(conf.ninst[GD_KIND_INPUT], 3);
    cr_expect_str_eq(conf.inst[GD_KIND_INPUT][0].name, "main-sim");
    cr_expect_str_eq(conf.inst[GD_KIND_INPUT][1].name, "a-sim");    /* 10-a.conf */
    cr_expect_str_eq(conf.inst[GD_KIND_INPUT][2].name, "b-modbus"); /* 9-b.conf */
    cr_assert_eq(conf.ninst[GD_KIND_OUTPUT], 2);
    cr_expect_str_eq(conf.inst[GD_KIND_OUTPUT][0].name, "stdout");
    cr_expect_str_eq(conf.inst[GD_KIND_OUTPUT][1].name, "b-file");
    cr_assert_eq(conf.ninst[GD_KIND_PROCESSOR], 1);
    cr_expect_str_eq(conf.inst[GD_KIND_PROCESSOR][0].name, "a-scale");
}

Test(config, files_lists_every_file_read_in_order)
{
    const char *path = merge_main();
    assert_no_errs(gd__conf_load(&conf, path, NULL, NULL, &errs));
    cr_assert_eq(conf.nfiles, 3); /* README and .hidden.conf are not read */
    cr_expect_str_eq(conf.files[0], path);
    cr_expect(strstr(conf.files[1], "/conf.d/10-a.conf"), "%s", conf.files[1]);
    cr_expect(strstr(conf.files[2], "/conf.d/9-b.conf"), "%s", conf.files[2]);
    cr_expect_eq(conf.ntrees, 3);
}

Test(config, skips_hidden_non_conf_files_and_folders)
{
    put("gatherd.conf", "");
    put("conf.d/.swap.conf", "broken (");
    put("conf.d/notes.txt", "broken (");
    put("conf.d/a.conf.bak", "broken (");
    mkdir(tmp("conf.d/folder.conf"), 0755);
    put("conf.d/ok.conf", "inputs = ( { plugin = \"sim\"; } );\n");
    assert_no_errs(load("gatherd.conf"));
    cr_expect_eq(conf.nfiles, 2);
    cr_expect_eq(conf.ninst[GD_KIND_INPUT], 1);
}

Test(config, missing_default_conf_d_is_fine)
{
    put("gatherd.conf", "inputs = ( { plugin = \"sim\"; } );\n");
    assert_no_errs(load("gatherd.conf"));
    cr_expect_eq(conf.nfiles, 1);
}

Test(config, include_dir_is_relative_to_the_main_file)
{
    put("gatherd.conf", "global = { include_dir = \"drop\"; };\n");
    put("conf.d/ignored.conf", "inputs = ( { plugin = \"sim\"; name = \"wrong\"; } );\n");
    put("drop/x.conf", "inputs = ( { plugin = \"sim\"; name = \"right\"; } );\n");
    /* Loaded from another working directory: the folder still resolves. */
    assert_no_errs(load("gatherd.conf"));
    cr_assert_eq(conf.ninst[GD_KIND_INPUT], 1);
    cr_expect_str_eq(conf.inst[GD_KIND_INPUT][0].name, "right");
}

Test(config, include_dir_may_be_absolute)
{
    put("etc/gatherd.conf", "");
    char text[PATH_MAX + 64];
    snprintf(text, sizeof(text), "global = { include_dir = \"%s\"; };\n", tmp("elsewhere"));
    put("etc/gatherd.conf", text);
    put("elsewhere/x.conf", "outputs = ( { plugin = \"file\"; } );\n");
    assert_no_errs(load("etc/gatherd.conf"));
    cr_expect_eq(conf.ninst[GD_KIND_OUTPUT], 1);
}

Test(config, missing_explicit_include_dir_is_an_error)
{
    put("gatherd.conf", "global = {\n  include_dir = \"nope\";\n};\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:2: global.include_dir: cannot open '%s': No such file or directory",
               tmp("gatherd.conf"), tmp("nope"));
}

Test(config, include_dir_must_be_a_string)
{
    put("gatherd.conf", "global = {\n  include_dir = 5;\n};\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:2: global.include_dir: expected a string but got an integer",
               tmp("gatherd.conf"));
}

Test(config, at_include_is_relative_to_the_main_file)
{
    put("gatherd.conf", "@include \"parts/outputs.inc\"\n");
    put("parts/outputs.inc", "outputs = ( { plugin = \"stdout\"; } );\n");
    assert_no_errs(load("gatherd.conf"));
    cr_expect_eq(conf.ninst[GD_KIND_OUTPUT], 1);
}

/* ---- errors -------------------------------------------------------------------- */

Test(config, missing_main_file_is_an_error)
{
    cr_expect_eq(load("absent.conf"), GD_ECONFIG);
    assert_err("%s: cannot read: No such file or directory", tmp("absent.conf"));
}

Test(config, syntax_error_names_file_and_line)
{
    put("gatherd.conf", "global = { interval = 5.0; };\ninputs = ( { plugin = ; } );\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:2: syntax error: ", tmp("gatherd.conf"));
}

Test(config, syntax_error_in_conf_d_names_that_file_and_others_still_load)
{
    put("gatherd.conf", "inputs = ( { plugin = \"sim\"; } );\n");
    put("conf.d/10-bad.conf", "\n\noutputs = ( { plugin = \"x\" } \n");
    put("conf.d/20-good.conf", "outputs = ( { plugin = \"stdout\"; } );\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:", tmp("conf.d/10-bad.conf"));
    assert_err("syntax error: ");
    cr_expect_eq(conf.ninst[GD_KIND_OUTPUT], 1);
}

Test(config, duplicate_instance_name_names_both_places)
{
    put("gatherd.conf", "outputs = (\n  { plugin = \"postgres\"; name = \"main\"; }\n);\n");
    put("conf.d/20-more.conf",
        "# another\noutputs = (\n  { plugin = \"influxdb\";\n    name = \"main\"; }\n);\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:3: output 'main' is defined twice (first at %s:2)", tmp("conf.d/20-more.conf"),
               tmp("gatherd.conf"));
}

Test(config, duplicate_default_name_is_an_error)
{
    put("gatherd.conf", "inputs = ( { plugin = \"sim\"; },\n  { plugin = \"sim\"; } );\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:2: input 'sim' is defined twice (first at %s:1)", tmp("gatherd.conf"),
               tmp("gatherd.conf"));
}

Test(config, same_name_in_different_kinds_is_fine)
{
    put("gatherd.conf", "inputs = ( { plugin = \"redis\"; name = \"r\"; } );\n"
                        "outputs = ( { plugin = \"redis\"; name = \"r\"; } );\n");
    assert_no_errs(load("gatherd.conf"));
}

Test(config, unknown_top_level_setting_is_an_error)
{
    put("gatherd.conf", "inputs = ();\noutptus = ( { plugin = \"stdout\"; } );\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:2: unknown top-level setting 'outptus'", tmp("gatherd.conf"));
}

Test(config, global_in_conf_d_is_rejected)
{
    put("gatherd.conf", "global = { interval = 1.0; };\n");
    put("conf.d/x.conf", "\nglobal = { interval = 2.0; };\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:2: 'global' is only allowed in the main file", tmp("conf.d/x.conf"));
}

Test(config, global_must_be_a_group)
{
    put("gatherd.conf", "global = 5;\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:1: global: expected a group { ... } but got an integer", tmp("gatherd.conf"));
}

Test(config, missing_plugin_key_names_the_item)
{
    put("gatherd.conf", "inputs = (\n  { plugin = \"sim\"; },\n  { name = \"orphan\"; }\n);\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:3: inputs[1]: missing 'plugin'", tmp("gatherd.conf"));
    cr_expect_eq(conf.ninst[GD_KIND_INPUT], 1);
}

Test(config, plugin_and_name_must_be_non_empty_strings)
{
    put("gatherd.conf",
        "inputs = (\n  { plugin = 5; },\n  { plugin = \"sim\"; name = \"\"; }\n);\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:2: inputs[0]: 'plugin' must be a string, not an integer", tmp("gatherd.conf"));
    assert_err("%s:3: inputs[1]: 'name' must not be empty", tmp("gatherd.conf"));
}

Test(config, a_single_group_instead_of_a_list_is_an_error)
{
    put("gatherd.conf", "outputs = { plugin = \"stdout\"; };\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:1: outputs: expected a list ( ... ) of groups but got a group",
               tmp("gatherd.conf"));
}

Test(config, a_list_item_that_is_not_a_group_is_an_error)
{
    put("gatherd.conf", "outputs = ( \"stdout\" );\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    assert_err("%s:1: outputs[0]: expected a group", tmp("gatherd.conf"));
}

Test(config, empty_lists_and_arrays_are_fine)
{
    put("gatherd.conf", "inputs = ();\noutputs = [];\n");
    assert_no_errs(load("gatherd.conf"));
    cr_expect_eq(conf.ninst[GD_KIND_INPUT], 0);
}

Test(config, every_error_is_reported)
{
    put("gatherd.conf", "inputs = ( { name = \"x\"; } );\nbogus = 1;\n");
    put("conf.d/a.conf", "global = {};\n");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    cr_expect_eq(errs.n, 3);
}

/* ---- embedded text ------------------------------------------------------------------ */

Test(config, embedded_text_loads_under_its_name)
{
    const char *text = "global = { interval = 10.0; };\n"
                       "inputs = ( { plugin = \"internal\"; } );\n"
                       "outputs = ( { plugin = \"stdout\"; } );\n";
    assert_no_errs(gd__conf_load(&conf, NULL, text, "<embedded default>", &errs));
    cr_expect_null(conf.main_path);
    cr_assert_not_null(conf.global);
    cr_assert_eq(conf.ninst[GD_KIND_INPUT], 1);
    cr_expect_str_eq(conf.inst[GD_KIND_INPUT][0].file, "<embedded default>");
    cr_expect_eq(conf.inst[GD_KIND_INPUT][0].line, 2);
    cr_expect_str_eq(config_setting_source_file(conf.global), "<embedded default>");
    cr_assert_eq(conf.nfiles, 1);
    cr_expect_str_eq(conf.files[0], "<embedded default>");
}

Test(config, embedded_text_errors_use_its_name)
{
    const char *text = "inputs = ( { plugin = \"a\"; },\n{ plugin = \"a\"; } );\n";
    cr_expect_eq(gd__conf_load(&conf, NULL, text, "<builtin>", &errs), GD_ECONFIG);
    assert_err("<builtin>:2: input 'a' is defined twice (first at <builtin>:1)");
}

Test(config, embedded_syntax_error_uses_its_name)
{
    cr_expect_eq(gd__conf_load(&conf, NULL, "a = 1;\nb = ;\n", "<builtin>", &errs), GD_ECONFIG);
    assert_err("<builtin>:2: syntax error: ");
}

Test(config, embedded_text_has_no_default_include_dir)
{
    char cwd[PATH_MAX];
    cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
    put("conf.d/x.conf", "inputs = ( { plugin = \"sim\"; } );\n");
    cr_assert_eq(chdir(dir), 0);
    int rc = gd__conf_load(&conf, NULL, "", "<builtin>", &errs);
    cr_assert_eq(chdir(cwd), 0);
    assert_no_errs(rc);
    cr_expect_eq(conf.ninst[GD_KIND_INPUT], 0);
}

Test(config, embedded_text_honours_an_absolute_include_dir)
{
    put("drop/x.conf", "inputs = ( { plugin = \"sim\"; } );\n");
    char text[PATH_MAX + 64];
    snprintf(text, sizeof(text), "global = { include_dir = \"%s\"; };\n", tmp("drop"));
    assert_no_errs(gd__conf_load(&conf, NULL, text, "<builtin>", &errs));
    cr_expect_eq(conf.ninst[GD_KIND_INPUT], 1);
    cr_expect_eq(conf.nfiles, 2);
}

Test(config, embedded_text_refuses_a_relative_include_dir)
{
    cr_expect_eq(
        gd__conf_load(&conf, NULL, "global = { include_dir = \"drop\"; };\n", "<builtin>", &errs),
        GD_ECONFIG);
    assert_err("<builtin>:1: global.include_dir: must be an absolute path");
}

/* ---- odds and ends --------------------------------------------------------------------- */

Test(config, kind_names)
{
    cr_expect_str_eq(gd__conf_kind_name(GD_KIND_INPUT), "input");
    cr_expect_str_eq(gd__conf_kind_name(GD_KIND_PROCESSOR), "processor");
    cr_expect_str_eq(gd__conf_kind_name(GD_KIND_OUTPUT), "output");
    cr_expect_str_eq(gd__conf_kind_name(0), "unknown");
}

Test(config, free_accepts_a_zeroed_struct_and_null)
{
    gd__conf z = {0};
    gd__conf_free(&z);
    gd__conf_free(NULL);
}

Test(config, free_after_a_failed_load_is_safe)
{
    put("gatherd.conf", "inputs = (");
    cr_expect_eq(load("gatherd.conf"), GD_ECONFIG);
    gd__conf_free(&conf);
    gd__conf_free(&conf);
}
