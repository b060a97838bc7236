/* SPDX-License-Identifier: Apache-2.0 */
/* The plugin loader: search path, ABI checks and clear refusals. */
#include "loader.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *plugdir(void)
{
    const char *d = getenv("GATHERD_TEST_PLUGINS");
    cr_assert_not_null(d, "GATHERD_TEST_PLUGINS is not set (run through meson test)");
    return d;
}

static char *path_of(const char *name)
{
    char *p = NULL;
    cr_assert_geq(asprintf(&p, "%s/%s.so", plugdir(), name), 0);
    return p;
}

static void expect_refusal(const char *name, int code, const char *needle)
{
    gd__plugin_lib *lib = NULL;
    char *why = NULL, *path = path_of(name);
    int rc = gd__loader_open(path, name, &lib, &why);
    cr_assert_eq(rc, code, "%s: rc=%d (%s)", name, rc, why ? why : "");
    cr_assert_null(lib);
    cr_assert_not_null(why);
    cr_assert(strstr(why, needle), "'%s' does not mention '%s'", why, needle);
    free(why);
    free(path);
}

Test(loader, opens_a_good_plugin_and_reads_its_descriptor)
{
    gd__plugin_lib *lib = NULL;
    char *why = NULL, *path = path_of("good_input");
    cr_assert_eq(gd__loader_open(path, "good_input", &lib, &why), 0, "%s", why ? why : "");
    cr_assert_str_eq(lib->desc.name, "good_input");
    cr_assert_eq(lib->desc.kind, GD_KIND_INPUT);
    cr_assert_not_null(lib->ops.input.collect);
    cr_assert_null(lib->ops.input.start);
    gd__plugin_lib_close(lib);
    free(path);
}

Test(loader, refuses_another_abi_major_naming_both_versions)
{
    char expect[64];
    snprintf(expect, sizeof(expect), "built for ABI %d.0, gatherd provides %d.%d",
             GD_ABI_MAJOR + 1, GD_ABI_MAJOR, GD_ABI_MINOR);
    expect_refusal("abi_major", GD_EABI, expect);
}

Test(loader, refuses_a_newer_abi_minor)
{
    expect_refusal("abi_minor_newer", GD_EABI, "gatherd provides");
}

Test(loader, refuses_a_library_without_the_entry_symbol)
{
    expect_refusal("no_entry", GD_ENOSYM, "no gd_plugin_entry symbol");
}

Test(loader, refuses_a_plugin_with_a_bad_option_table)
{
    expect_refusal("bad_table", GD_EABI, "bad option table");
}

Test(loader, refuses_a_world_writable_file)
{
    char dir[] = "/tmp/gd-loader-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *src = path_of("good_input"), *dst = NULL;
    cr_assert_geq(asprintf(&dst, "%s/good_input.so", dir), 0);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, dst);
    cr_assert_eq(system(cmd), 0);
    chmod(dst, 0666);
    gd__plugin_lib *lib = NULL;
    char *why = NULL;
    cr_assert_eq(gd__loader_open(dst, "good_input", &lib, &why), GD_EPERM);
    cr_assert(strstr(why, "world-writable"), "%s", why);
    free(why);
    unlink(dst);
    rmdir(dir);
    free(src);
    free(dst);
}

Test(loader, refuses_a_file_declaring_another_name)
{
    gd__plugin_lib *lib = NULL;
    char *why = NULL, *path = path_of("good_input");
    cr_assert_eq(gd__loader_open(path, "modbus", &lib, &why), GD_EABI);
    cr_assert(strstr(why, "declares plugin 'good_input', expected 'modbus'"), "%s", why);
    free(why);
    free(path);
}

Test(loader, finds_plugins_on_the_search_path_and_names_a_missing_one)
{
    gd__loader l;
    const gd__plugin_lib *lib = NULL;
    char *why = NULL;
    setenv("GATHERD_PLUGIN_PATH", plugdir(), 1);
    gd__loader_init(&l, NULL);
    cr_assert_eq(gd__loader_get(&l, "good_input", &lib, &why), 0, "%s", why ? why : "");
    const gd__plugin_lib *again = NULL;
    gd__loader_get(&l, "good_input", &again, &why);
    cr_assert_eq(lib, again, "loaded once");
    cr_assert_eq(gd__loader_get(&l, "nosuchplugin", &lib, &why), GD_ENOENT);
    cr_assert(strstr(why, "plugin 'nosuchplugin' not found (searched"), "%s", why);
    cr_assert(strstr(why, plugdir()), "%s", why);
    free(why);
    gd__loader_free(&l);
}

Test(loader, scan_reports_broken_files_and_keeps_good_ones)
{
    gd__loader l;
    gd__errs errs = {0};
    setenv("GATHERD_PLUGIN_PATH", plugdir(), 1);
    gd__loader_init(&l, NULL);
    gd__loader_scan(&l, &errs);
    bool good = false;
    for (size_t i = 0; i < l.nlibs; i++)
        good = good || strcmp(l.libs[i]->desc.name, "good_input") == 0;
    cr_assert(good);
    cr_assert(gd__errs_contains(&errs, "abi_major"));
    cr_assert(gd__errs_contains(&errs, "no_entry"));
    gd__errs_free(&errs);
    gd__loader_free(&l);
}

Test(loader, refuses_an_option_the_core_handles_for_every_instance)
{
    expect_refusal("clash", GD_EABI, "option 'interval' is a common input option");
}
