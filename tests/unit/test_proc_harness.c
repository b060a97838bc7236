/* SPDX-License-Identifier: Apache-2.0 */
/* The processor test harness itself, on the test_proc plugin: what it
 * reports is what process() produced, and config errors come back as text. */
#include "proc_harness.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

TestSuite(proc_harness, .fini = gdp_unload);

static gd_batch *points(void)
{
    gd_batch *b = gd_batch_new(4);
    gd_point_i64(gd_batch_add(b, "m", 1000), "v", 3);
    gd_point *p = gd_batch_add(b, "m", 2000);
    gd_point_tag(p, "drop", "yes");
    gd_point_i64(p, "v", 4);
    return b;
}

Test(proc_harness, process_output_and_drop_count)
{
    gdp_load("processors = ({ plugin = \"test_proc\"; name = \"x3\"; factor = 3; });");
    cr_assert_str_eq(gdp_process("x3", points()), "m v=9i 1000\n");
    cr_assert_eq(gdp_last_rc(), 0);
    cr_assert_eq(gdp_dropped("x3", "filtered"), 1);
    cr_assert_str_eq(gdp_flush("x3"), "");
    cr_assert_str_eq(gdp_emitted("x3"), "");
}

Test(proc_harness, pass_returns_input)
{
    gdp_load("processors = ({ plugin = \"test_proc\"; name = \"id\"; factor = 1; });");
    cr_assert_str_eq(gdp_process("id", points()), "m v=3i 1000\nm,drop=yes v=4i 2000\n");
    cr_assert_eq(gdp_last_rc(), GD_PASS);
}

Test(proc_harness, config_error_text)
{
    char *e = gdp_load_error("processors = ({ plugin = \"test_proc\"; name = \"p\"; factor = 5000; });");
    cr_assert_not_null(e);
    cr_assert(strstr(e, "factor"), "%s", e);
    free(e);
}
