/* SPDX-License-Identifier: Apache-2.0 */
/* aggregate: epoch-aligned windows per series, every function on known data,
 * grace and late points, the wall-clock timer, flush and eviction. */
#include "proc_harness.h"
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(aggregate, .fini = gdp_unload);

#define S  1000000000LL
#define MS 1000000LL

#define LOAD(opts) gdp_load("processors = ({ plugin = \"aggregate\"; name = \"ag\"; " opts " });")

/* Points of device a with field v, at @ts[i] (ns) with @v[i]. */
static gd_batch *series_a(const int64_t *ts, const double *v, size_t n)
{
    gd_batch *b = gd_batch_new(n);
    for (size_t i = 0; i < n; i++) {
        gd_point *p = gd_batch_add(b, "m", ts[i]);
        gd_point_tag(p, "device", "a");
        gd_point_f64(p, "v", v[i]);
    }
    return b;
}

static gd_batch *one(const char *dev, double v, int64_t ts)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = gd_batch_add(b, "m", ts);
    gd_point_tag(p, "device", dev);
    gd_point_f64(p, "v", v);
    return b;
}

Test(aggregate, every_function_on_known_data_at_the_window_start)
{
    LOAD("period = \"10s\"; drop_original = true; functions = [\"min\", \"max\", \"mean\", "
         "\"sum\", \"count\", \"first\", \"last\", \"stddev\", \"p25\", \"p50\", \"p90\"];");
    const int64_t ts[] = {1 * S, 4 * S, 9 * S, 10 * S - 1};
    const double v[] = {1, 3, 5, 7};
    cr_assert_str_eq(gdp_process("ag", series_a(ts, v, 4)), "");
    cr_assert_eq(gdp_last_rc(), 0);
    /* a point at the window end closes it (grace 0); the summary carries the
     * window start as its time */
    cr_assert_str_eq(gdp_process("ag", one("a", 100, 10 * S)),
                     "m,device=a v_min=1,v_max=7,v_mean=4,v_sum=16,v_count=4i,v_first=1,v_last=7,"
                     "v_stddev=2.581988897471611,v_p25=1,v_p50=3,v_p90=7 0\n");
    /* one value: stddev 0, every percentile that value */
    cr_assert_str_eq(gdp_flush("ag"),
                     "m,device=a v_min=100,v_max=100,v_mean=100,v_sum=100,v_count=1i,v_first=100,"
                     "v_last=100,v_stddev=0,v_p25=100,v_p50=100,v_p90=100 10000000000\n");
    cr_assert_str_eq(gdp_flush("ag"), "", "a flushed window is gone");
}

Test(aggregate, first_and_last_follow_point_time_not_arrival)
{
    LOAD("period = \"10s\"; drop_original = true; functions = [\"first\", \"last\"];");
    const int64_t ts[] = {4 * S, 1 * S, 9 * S, 8 * S};
    const double v[] = {3, 1, 7, 5};
    cr_assert_str_eq(gdp_process("ag", series_a(ts, v, 4)), "");
    cr_assert_str_eq(gdp_flush("ag"), "m,device=a v_first=1,v_last=7 0\n");
}

Test(aggregate, default_functions_and_originals_kept)
{
    LOAD("period = \"1s\";");
    const int64_t ts[] = {100 * MS, 600 * MS};
    const double v[] = {2, 4};
    cr_assert_str_eq(gdp_process("ag", series_a(ts, v, 2)),
                     "m,device=a v=2 100000000\nm,device=a v=4 600000000\n");
    cr_assert_eq(gdp_last_rc(), GD_PASS, "nothing closed: the batch passes untouched");
    /* the closing point's batch carries the summary before the point */
    const int64_t ts2[] = {900 * MS, 1200 * MS, 1300 * MS};
    const double v2[] = {6, 8, 10};
    cr_assert_str_eq(gdp_process("ag", series_a(ts2, v2, 3)),
                     "m,device=a v=6 900000000\n"
                     "m,device=a v_mean=4,v_min=2,v_max=6,v_count=3i 0\n"
                     "m,device=a v=8 1200000000\nm,device=a v=10 1300000000\n");
    cr_assert_eq(gdp_last_rc(), 0);
    cr_assert_str_eq(gdp_flush("ag"),
                     "m,device=a v_mean=9,v_min=8,v_max=10,v_count=2i 1000000000\n");
}

Test(aggregate, grace_accepts_late_points_and_counts_later_ones)
{
    LOAD("period = \"10s\"; grace = \"5s\"; functions = [\"count\", \"sum\"];");
    cr_assert_str_eq(gdp_process("ag", one("a", 1, 1 * S)), "m,device=a v=1 1000000000\n");
    cr_assert_str_eq(gdp_process("ag", one("a", 2, 12 * S)), "m,device=a v=2 12000000000\n");
    /* window [0,10) is open until 15 s: a point of it still counts */
    cr_assert_str_eq(gdp_process("ag", one("a", 3, 8 * S)), "m,device=a v=3 8000000000\n");
    cr_assert_str_eq(gdp_process("ag", one("a", 4, 15 * S)),
                     "m,device=a v_count=2i,v_sum=4 0\nm,device=a v=4 15000000000\n");
    /* too late: counted, passed on, not aggregated */
    cr_assert_str_eq(gdp_process("ag", one("a", 5, 9 * S)), "m,device=a v=5 9000000000\n");
    cr_assert_eq(gdp_dropped("ag", "late"), 1);
    cr_assert_str_eq(gdp_flush("ag"), "m,device=a v_count=2i,v_sum=6 10000000000\n");
}

Test(aggregate, late_points_are_dropped_with_drop_original)
{
    LOAD("period = \"10s\"; drop_original = true; functions = [\"count\"];");
    cr_assert_str_eq(gdp_process("ag", one("a", 1, 1 * S)), "");
    cr_assert_str_eq(gdp_process("ag", one("a", 1, 11 * S)), "m,device=a v_count=1i 0\n");
    cr_assert_str_eq(gdp_process("ag", one("a", 1, 2 * S)), "");
    cr_assert_eq(gdp_dropped("ag", "late"), 1);
    cr_assert_str_eq(gdp_flush("ag"), "m,device=a v_count=1i 10000000000\n");
}

Test(aggregate, windows_are_per_series_and_aligned_to_the_epoch)
{
    LOAD("period = \"1m\"; drop_original = true; functions = [\"count\"];");
    gd_batch *b = gd_batch_new(4);
    const char *dev[] = {"a", "b", "a", "b"};
    const int64_t ts[] = {61 * S, 119 * S, 119 * S, 121 * S};
    for (int i = 0; i < 4; i++) {
        gd_point *p = gd_batch_add(b, "m", ts[i]);
        gd_point_tag(p, "device", dev[i]);
        gd_point_f64(p, "v", i);
    }
    /* b's point at 121 s closes b's window [60,120) only */
    cr_assert_str_eq(gdp_process("ag", b), "m,device=b v_count=1i 60000000000\n");
    cr_assert_str_eq(gdp_flush("ag"),
                     "m,device=a v_count=2i 60000000000\nm,device=b v_count=1i 120000000000\n");
}

Test(aggregate, negative_timestamps_floor_to_the_window_below)
{
    LOAD("period = \"10s\"; drop_original = true; functions = [\"count\"];");
    cr_assert_str_eq(gdp_process("ag", one("a", 1, -1)), "");
    cr_assert_str_eq(gdp_flush("ag"), "m,device=a v_count=1i -10000000000\n");
}

Test(aggregate, fields_glob_numeric_types_and_measurement)
{
    LOAD("period = \"10s\"; drop_original = true; functions = [\"sum\", \"mean\"]; "
         "fields = [\"t*\", \"n\"]; measurement = \"m_10s\";");
    gd_batch *b = gd_batch_new(2);
    for (int i = 0; i < 2; i++) {
        gd_point *p = gd_batch_add(b, "m", i);
        gd_point_tag(p, "device", "a");
        gd_point_tag(p, "site", "x");
        gd_point_f64(p, "temp", 20 + i);
        gd_point_f64(p, "hum", 50);
        gd_point_i64(p, "n", 3);
        gd_point_str(p, "txt", "skip");
    }
    cr_assert_str_eq(gdp_process("ag", b), "");
    cr_assert_str_eq(gdp_flush("ag"),
                     "m_10s,device=a,site=x temp_sum=41,temp_mean=20.5,n_sum=6,n_mean=3 0\n");
}

Test(aggregate, a_field_appearing_in_an_open_window_joins_it)
{
    LOAD("period = \"10s\"; drop_original = true; functions = [\"sum\"];");
    gd_batch *b = gd_batch_new(8);
    for (int i = 0; i < 6; i++) {
        gd_point *p = gd_batch_add(b, "m", i);
        gd_point_f64(p, "v", 1);
        if (i >= 2) /* the series' slots grow past their first capacity (4) */
            gd_point_f64(p, "w", 2);
        if (i >= 3) {
            gd_point_f64(p, "x", 3);
            gd_point_f64(p, "y", 4);
            gd_point_f64(p, "z", 5);
        }
    }
    cr_assert_str_eq(gdp_process("ag", b), "");
    cr_assert_str_eq(gdp_flush("ag"), "m v_sum=6,w_sum=8,x_sum=9,y_sum=12,z_sum=15 0\n");
}

Test(aggregate, drop_original_keeps_points_with_nothing_to_aggregate)
{
    LOAD("period = \"10s\"; drop_original = true; fields = [\"v\"]; functions = [\"count\"];");
    gd_batch *b = gd_batch_new(3);
    gd_point_f64(gd_batch_add(b, "m", 1), "v", 1);
    gd_point_str(gd_batch_add(b, "m", 2), "s", "x");
    gd_point_f64(gd_batch_add(b, "m", 3), "other", 2);
    cr_assert_str_eq(gdp_process("ag", b), "m s=\"x\" 2\nm other=2 3\n");
    cr_assert_str_eq(gdp_flush("ag"), "m v_count=1i 0\n");
}

Test(aggregate, a_point_without_numeric_fields_is_not_aggregated)
{
    LOAD("period = \"10s\";");
    gd_batch *b = gd_batch_new(1);
    gd_point_str(gd_batch_add(b, "m", 1), "s", "x");
    cr_assert_str_eq(gdp_process("ag", b), "m s=\"x\" 1\n");
    cr_assert_str_eq(gdp_flush("ag"), "");
}

Test(aggregate, timer_closes_windows_past_end_and_grace_by_wall_clock)
{
    LOAD("period = \"10s\"; grace = \"1s\"; drop_original = true; functions = [\"count\"];");
    int64_t now = gd_now_ns();
    gd_batch *b = one("old", 1, 5 * S);
    gd_point *p = gd_batch_add(b, "m", now);
    gd_point_tag(p, "device", "now");
    gd_point_f64(p, "v", 2);
    cr_assert_str_eq(gdp_process("ag", b), "");
    cr_assert_eq(gdp_fire_timers("ag"), 1);
    cr_assert_str_eq(gdp_emitted("ag"), "m,device=old v_count=1i 0\n");
    cr_assert_eq(gdp_fire_timers("ag"), 1);
    cr_assert_str_eq(gdp_emitted("ag"), "", "the current window stays open");
    char want[128];
    snprintf(want, sizeof(want), "m,device=now v_count=1i %lld\n",
             (long long)(now / (10 * S) * (10 * S)));
    cr_assert_str_eq(gdp_flush("ag"), want);
}

Test(aggregate, max_series_emits_the_evicted_series_early)
{
    LOAD("period = \"10s\"; functions = [\"count\"]; max_series = 1;");
    gd_batch *b = gd_batch_new(2);
    gd_point *p = gd_batch_add(b, "m", 1);
    gd_point_tag(p, "device", "a");
    gd_point_f64(p, "v", 1);
    p = gd_batch_add(b, "m", 2);
    gd_point_tag(p, "device", "b");
    gd_point_f64(p, "v", 1);
    cr_assert_str_eq(gdp_process("ag", b),
                     "m,device=a v=1 1\nm,device=a v_count=1i 0\nm,device=b v=1 2\n");
    cr_assert_str_eq(gdp_flush("ag"), "m,device=b v_count=1i 0\n");
}

/* The value of field @key in line @lp. */
static double field_value(const char *lp, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "%s=", key);
    const char *p = strstr(lp, pat);
    cr_assert_not_null(p, "%s not in %s", key, lp);
    return strtod(p + strlen(pat), NULL);
}

Test(aggregate, percentiles_of_many_values_stay_within_the_accuracy)
{
    LOAD("period = \"1h\"; drop_original = true; accuracy = 0.01; "
         "functions = [\"p1\", \"p50\", \"p99\", \"p100\", \"count\"];");
    gd_batch *b = gd_batch_new(1000);
    for (int i = 1; i <= 1000; i++) {
        gd_point *p = gd_batch_add(b, "m", i);
        /* shuffled order: 1..1000 by a stride coprime to 1000 */
        gd_point_f64(p, "v", (double)((i * 379) % 1000 + 1));
    }
    cr_assert_str_eq(gdp_process("ag", b), "");
    const char *out = gdp_flush("ag");
    const double q[] = {1, 50, 99, 100}, exact[] = {10, 500, 990, 1000};
    for (int k = 0; k < 4; k++) {
        char key[16];
        snprintf(key, sizeof(key), "v_p%g", q[k]);
        double got = field_value(out, key);
        cr_assert(fabs(got - exact[k]) <= 0.01 * exact[k], "%s = %g, want %g +- 1%%", key, got,
                  exact[k]);
    }
    cr_assert(strstr(out, "v_count=1000i"), "%s", out);
}

Test(aggregate, negative_and_zero_values_in_the_sketch)
{
    LOAD("period = \"1h\"; drop_original = true; functions = [\"p10\", \"p50\", \"p90\"];");
    gd_batch *b = gd_batch_new(200);
    for (int i = 0; i < 200; i++) /* -100 .. 99 */
        gd_point_f64(gd_batch_add(b, "m", i), "v", (double)(i - 100));
    cr_assert_str_eq(gdp_process("ag", b), "");
    const char *out = gdp_flush("ag");
    /* nearest rank: p10 -> 20th value -81, p50 -> 100th value -1, p90 -> 180th value 79 */
    cr_assert(fabs(field_value(out, "v_p10") + 81) <= 0.81, "%s", out);
    cr_assert(fabs(field_value(out, "v_p50") + 1) <= 0.01, "%s", out);
    cr_assert(fabs(field_value(out, "v_p90") - 79) <= 0.79, "%s", out);
}

Test(aggregate, bad_functions_are_refused)
{
    const char *bad[] = {"median", "p0", "p101", "px", "p", "max\", \"max"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char conf[256];
        snprintf(conf, sizeof(conf),
                 "processors = ({ plugin = \"aggregate\"; name = \"ag\"; functions = [\"%s\"]; });",
                 bad[i]);
        char *e = gdp_load_error(conf);
        cr_assert_not_null(e, "%s accepted", bad[i]);
        free(e);
    }
    char *e =
        gdp_load_error("processors = ({ plugin = \"aggregate\"; name = \"ag\"; period = 0; });");
    cr_assert_not_null(e);
    cr_assert(strstr(e, "period"), "%s", e);
    free(e);
}

Test(aggregate, extreme_timestamps_neither_crash_nor_overflow)
{
    LOAD("period = \"7s\"; grace = \"1h\"; drop_original = true; functions = [\"count\"];");
    gd_batch *b = gd_batch_new(4);
    gd_point_f64(gd_batch_add(b, "m", INT64_MAX), "v", 1);
    gd_point_f64(gd_batch_add(b, "m", INT64_MAX - 1), "v", 1);
    gd_point_f64(gd_batch_add(b, "m", INT64_MIN), "v", 1);
    gd_point_f64(gd_batch_add(b, "m", INT64_MIN + 7000000000LL), "v", 1);
    gdp_process("ag", b);
    const char *out = gdp_flush("ag");
    cr_assert(strstr(out, "v_count=2i 9223372032000000000\n"), "%s", out);
}
