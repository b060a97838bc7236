/* SPDX-License-Identifier: Apache-2.0 */
/* deadband: report by exception, per series and field, through the core's
 * config and loader code. */
#include "proc_harness.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(deadband, .fini = gdp_unload);

#define S 1000000000LL

/* One point of device @dev with field temp_c. */
static gd_batch *temp(const char *dev, double v, int64_t ts)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = gd_batch_add(b, "m", ts);
    gd_point_tag(p, "device", dev);
    gd_point_f64(p, "temp_c", v);
    return b;
}

#define LOAD(opts) gdp_load("processors = ({ plugin = \"deadband\"; name = \"db\"; " opts " });")

Test(deadband, abs_band_passes_only_moves_beyond_it)
{
    LOAD("abs = 0.5;");
    cr_assert_str_eq(gdp_process("db", temp("a", 20.0, 1)), "m,device=a temp_c=20 1\n");
    cr_assert_str_eq(gdp_process("db", temp("a", 20.4, 2)), "");
    cr_assert_str_eq(gdp_process("db", temp("a", 20.5, 3)), ""); /* exactly the band: not more */
    cr_assert_str_eq(gdp_process("db", temp("a", 19.4, 4)), "m,device=a temp_c=19.4 4\n");
    /* the band is around the last passed value (19.4), not the last seen */
    cr_assert_str_eq(gdp_process("db", temp("a", 19.8, 5)), "");
    cr_assert_str_eq(gdp_process("db", temp("a", 19.95, 6)), "m,device=a temp_c=19.95 6\n");
    cr_assert_eq(gdp_dropped("db", "filtered"), 3);
}

Test(deadband, series_are_independent)
{
    LOAD("abs = 1.0;");
    cr_assert_str_eq(gdp_process("db", temp("a", 10, 1)), "m,device=a temp_c=10 1\n");
    cr_assert_str_eq(gdp_process("db", temp("b", 10.5, 2)), "m,device=b temp_c=10.5 2\n");
    cr_assert_str_eq(gdp_process("db", temp("a", 10.5, 3)), "");
    cr_assert_str_eq(gdp_process("db", temp("b", 12, 4)), "m,device=b temp_c=12 4\n");
}

Test(deadband, rel_band_is_a_fraction_of_the_last_passed_value)
{
    LOAD("rel = 0.1;");
    cr_assert_str_eq(gdp_process("db", temp("a", 100, 1)), "m,device=a temp_c=100 1\n");
    cr_assert_str_eq(gdp_process("db", temp("a", 109, 2)), "");
    cr_assert_str_eq(gdp_process("db", temp("a", 91, 3)), "");
    cr_assert_str_eq(gdp_process("db", temp("a", 111, 4)), "m,device=a temp_c=111 4\n");
    /* now 10 % of 111 */
    cr_assert_str_eq(gdp_process("db", temp("a", 122, 5)), "");
    cr_assert_str_eq(gdp_process("db", temp("a", 122.2, 6)), "m,device=a temp_c=122.2 6\n");
}

Test(deadband, abs_or_rel_whichever_is_exceeded)
{
    LOAD("abs = 5.0; rel = 0.01;");
    cr_assert_str_eq(gdp_process("db", temp("a", 100, 1)), "m,device=a temp_c=100 1\n");
    cr_assert_str_eq(gdp_process("db", temp("a", 101, 2)), "");
    cr_assert_str_eq(gdp_process("db", temp("a", 101.5, 3)), "m,device=a temp_c=101.5 3\n");
}

Test(deadband, no_band_passes_every_change)
{
    LOAD("");
    cr_assert_str_eq(gdp_process("db", temp("a", 1, 1)), "m,device=a temp_c=1 1\n");
    cr_assert_str_eq(gdp_process("db", temp("a", 1, 2)), "");
    cr_assert_str_eq(gdp_process("db", temp("a", 1.001, 3)), "m,device=a temp_c=1.001 3\n");
}

Test(deadband, heartbeat_passes_an_unchanged_value_by_point_time)
{
    LOAD("abs = 1.0; heartbeat = \"10s\";");
    cr_assert_str_eq(gdp_process("db", temp("a", 5, 0)), "m,device=a temp_c=5 0\n");
    cr_assert_str_eq(gdp_process("db", temp("a", 5, 9 * S)), "");
    cr_assert_str_eq(gdp_process("db", temp("a", 5.5, 10 * S)),
                     "m,device=a temp_c=5.5 10000000000\n");
    /* the heartbeat counts from the last pass */
    cr_assert_str_eq(gdp_process("db", temp("a", 5, 19 * S)), "");
    cr_assert_str_eq(gdp_process("db", temp("a", 5, 20 * S)), "m,device=a temp_c=5 20000000000\n");
}

Test(deadband, fields_are_judged_one_by_one_and_unselected_fields_pass)
{
    LOAD("abs = 1.0; fields = [\"temp_*\", \"hum*\"];");
    gd_batch *b = gd_batch_new(2);
    gd_point *p = gd_batch_add(b, "m", 1);
    gd_point_f64(p, "temp_c", 20);
    gd_point_f64(p, "hum_pct", 40);
    gd_point_i64(p, "rssi", -60);
    cr_assert_str_eq(gdp_process("db", b), "m temp_c=20,hum_pct=40,rssi=-60i 1\n");
    b = gd_batch_new(2);
    p = gd_batch_add(b, "m", 2);
    gd_point_f64(p, "temp_c", 20.5);
    gd_point_f64(p, "hum_pct", 42);
    gd_point_i64(p, "rssi", -60);
    cr_assert_str_eq(gdp_process("db", b), "m hum_pct=42,rssi=-60i 2\n");
    b = gd_batch_new(2);
    p = gd_batch_add(b, "m", 3);
    gd_point_f64(p, "temp_c", 20.5);
    gd_point_f64(p, "hum_pct", 42);
    cr_assert_str_eq(gdp_process("db", b), "");
    cr_assert_eq(gdp_dropped("db", "filtered"), 1);
}

Test(deadband, integers_are_numbers)
{
    LOAD("abs = 2.0;");
    gd_batch *b = gd_batch_new(3);
    gd_point_i64(gd_batch_add(b, "m", 1), "n", 10);
    gd_point_i64(gd_batch_add(b, "m", 2), "n", 12);
    gd_point_u64(gd_batch_add(b, "m", 3), "n", 13);
    cr_assert_str_eq(gdp_process("db", b), "m n=10i 1\nm n=13u 3\n");
}

Test(deadband, strings_and_booleans_pass_on_change)
{
    LOAD("abs = 100.0;");
    gd_batch *b = gd_batch_new(6);
    gd_point_str(gd_batch_add(b, "m", 1), "status", "run");
    gd_point_str(gd_batch_add(b, "m", 2), "status", "run");
    gd_point_str(gd_batch_add(b, "m", 3), "status", "stop");
    gd_point_bool(gd_batch_add(b, "d", 4), "open", true);
    gd_point_bool(gd_batch_add(b, "d", 5), "open", true);
    gd_point_bool(gd_batch_add(b, "d", 6), "open", false);
    cr_assert_str_eq(gdp_process("db", b),
                     "m status=\"run\" 1\nm status=\"stop\" 3\nd open=true 4\nd open=false 6\n");
}

Test(deadband, a_type_change_passes)
{
    LOAD("abs = 100.0;");
    gd_batch *b = gd_batch_new(3);
    gd_point_f64(gd_batch_add(b, "m", 1), "v", 1);
    gd_point_str(gd_batch_add(b, "m", 2), "v", "1");
    gd_point_f64(gd_batch_add(b, "m", 3), "v", 1);
    cr_assert_str_eq(gdp_process("db", b), "m v=1 1\nm v=\"1\" 2\nm v=1 3\n");
}

Test(deadband, lru_eviction_at_max_series_forgets_the_least_recent)
{
    LOAD("abs = 10.0; max_series = 2;");
    cr_assert_str_eq(gdp_process("db", temp("a", 1, 1)), "m,device=a temp_c=1 1\n");
    cr_assert_str_eq(gdp_process("db", temp("b", 1, 2)), "m,device=b temp_c=1 2\n");
    cr_assert_str_eq(gdp_process("db", temp("a", 2, 3)), ""); /* a is now the most recent */
    cr_assert_str_eq(gdp_process("db", temp("c", 1, 4)), "m,device=c temp_c=1 4\n"); /* evicts b */
    cr_assert_str_eq(gdp_process("db", temp("a", 2, 5)), ""); /* a still known */
    cr_assert_str_eq(gdp_process("db", temp("b", 1, 6)), "m,device=b temp_c=1 6\n"); /* forgotten */
    /* b's return evicted c (a was used at 5) */
    cr_assert_str_eq(gdp_process("db", temp("a", 2, 7)), "");
    cr_assert_str_eq(gdp_process("db", temp("c", 1, 8)), "m,device=c temp_c=1 8\n");
    cr_assert_eq(gdp_dropped("db", "filtered"), 3);
    cr_assert_eq(gdp_dropped("db", NULL), 3, "evictions are not point drops");
}

Test(deadband, mixed_batch_keeps_order)
{
    LOAD("abs = 1.0;");
    gd_batch *b = gd_batch_new(4);
    const double v[] = {1, 1.5, 3, 3.2};
    for (int i = 0; i < 4; i++) {
        gd_point *p = gd_batch_add(b, "m", i);
        gd_point_tag(p, "device", "a");
        gd_point_f64(p, "temp_c", v[i]);
    }
    cr_assert_str_eq(gdp_process("db", b), "m,device=a temp_c=1 0\nm,device=a temp_c=3 2\n");
}

Test(deadband, bad_options_are_refused)
{
    char *e =
        gdp_load_error("processors = ({ plugin = \"deadband\"; name = \"db\"; abs = -1.0; });");
    cr_assert_not_null(e);
    cr_assert(strstr(e, "abs"), "%s", e);
    free(e);
    e = gdp_load_error("processors = ({ plugin = \"deadband\"; name = \"db\"; max_series = 0; });");
    cr_assert_not_null(e);
    cr_assert(strstr(e, "max_series"), "%s", e);
    free(e);
}

Test(deadband, many_series_grow_the_table_and_the_bound_keeps_the_most_recent)
{
    LOAD("abs = 1.0; max_series = 100;");
    char dev[16];
    for (int i = 0; i < 300; i++) {
        snprintf(dev, sizeof(dev), "d%d", i);
        char want[64];
        snprintf(want, sizeof(want), "m,device=%s temp_c=5 %d\n", dev, i);
        cr_assert_str_eq(gdp_process("db", temp(dev, 5, i)), want);
    }
    for (int i = 299; i >= 200; i--) {
        snprintf(dev, sizeof(dev), "d%d", i);
        cr_assert_str_eq(gdp_process("db", temp(dev, 5, 1000 + i)), "", "%s forgotten", dev);
    }
    cr_assert_str_eq(gdp_process("db", temp("d199", 5, 2000)), "m,device=d199 temp_c=5 2000\n");
}

Test(deadband, heartbeat_survives_extreme_timestamps)
{
    LOAD("abs = 1.0; heartbeat = \"1s\";");
    cr_assert_str_eq(gdp_process("db", temp("a", 1, INT64_MAX)),
                     "m,device=a temp_c=1 9223372036854775807\n");
    cr_assert_str_eq(gdp_process("db", temp("a", 1, INT64_MIN)), "",
                     "time went back: no heartbeat");
    cr_assert_str_eq(gdp_process("db", temp("a", 5, INT64_MIN)),
                     "m,device=a temp_c=5 -9223372036854775808\n");
    cr_assert_str_eq(gdp_process("db", temp("a", 5, INT64_MAX)),
                     "m,device=a temp_c=5 9223372036854775807\n");
}
