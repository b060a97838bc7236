/* SPDX-License-Identifier: Apache-2.0 */
/* threshold: limits, hysteresis edges, minimum duration, transitions and the
 * alert points, through the core's config and loader code. */
#include "proc_harness.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(threshold, .fini = gdp_unload);

#define S 1000000000LL

#define RULE                                                                                       \
    "rules = ({ fields = [\"temp_c\"]; warning_high = 30.0; critical_high = 35.0; "                \
    "warning_low = 5.0; critical_low = 0.0; hysteresis = 1.0; });"
#define LOAD(opts) gdp_load("processors = ({ plugin = \"threshold\"; name = \"th\"; " opts " });")

static gd_batch *temp(const char *dev, double v, int64_t ts)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = gd_batch_add(b, "m", ts);
    if (dev)
        gd_point_tag(p, "device", dev);
    gd_point_f64(p, "temp_c", v);
    return b;
}

/* The text of the point alone, and of the point followed by its alert. */
static char buf[512];
static const char *quiet(double v, int64_t ts)
{
    snprintf(buf, sizeof(buf), "m,device=a temp_c=%g %lld\n", v, (long long)ts);
    return buf;
}
static const char *alert(double v, int64_t ts, const char *state, double limit, const char *prev,
                         const char *side)
{
    snprintf(buf, sizeof(buf),
             "m,device=a temp_c=%g %lld\n"
             "alert,device=a,field=temp_c,state=%s value=%g,limit=%g,previous=\"%s\",side=\"%s\" "
             "%lld\n",
             v, (long long)ts, state, v, limit, prev, side, (long long)ts);
    return buf;
}

#define STEP(v, ts, want)                                                                          \
    do {                                                                                           \
        const char *got_ = gdp_process("th", temp("a", (v), (ts)));                                \
        cr_assert_str_eq(got_, (want), "at %g", (double)(v));                                      \
    } while (0)

Test(threshold, exactly_at_the_limit_enters_the_state)
{
    LOAD(RULE);
    STEP(29.9, 1, quiet(29.9, 1));
    cr_assert_eq(gdp_last_rc(), GD_PASS, "no change: the batch passes untouched");
    STEP(30, 2, alert(30, 2, "warning", 30, "ok", "high"));
    cr_assert_eq(gdp_last_rc(), 0);
    STEP(30, 3, quiet(30, 3));
}

Test(threshold, hysteresis_band_holds_the_state_until_crossed_back)
{
    LOAD(RULE);
    STEP(30.5, 1, alert(30.5, 1, "warning", 30, "ok", "high"));
    STEP(29.5, 2, quiet(29.5, 2)); /* inside the band */
    STEP(29, 3, quiet(29, 3));     /* exactly limit - hysteresis: still inside */
    STEP(28.9, 4, alert(28.9, 4, "ok", 30, "warning", "high"));
    STEP(29.5, 5, quiet(29.5, 5)); /* entering takes the limit itself */
}

Test(threshold, warning_critical_warning_ok)
{
    LOAD(RULE);
    STEP(30, 1, alert(30, 1, "warning", 30, "ok", "high"));
    STEP(35, 2, alert(35, 2, "critical", 35, "warning", "high"));
    STEP(34.5, 3, quiet(34.5, 3));
    STEP(34, 4, quiet(34, 4));
    STEP(33.9, 5, alert(33.9, 5, "warning", 35, "critical", "high"));
    STEP(29.5, 6, quiet(29.5, 6));
    STEP(28.5, 7, alert(28.5, 7, "ok", 30, "warning", "high"));
}

Test(threshold, critical_straight_to_ok_and_the_low_side)
{
    LOAD(RULE);
    STEP(40, 1, alert(40, 1, "critical", 35, "ok", "high"));
    STEP(20, 2, alert(20, 2, "ok", 35, "critical", "high"));
    STEP(5, 3, alert(5, 3, "warning", 5, "ok", "low"));
    STEP(5.9, 4, quiet(5.9, 4));
    STEP(0, 5, alert(0, 5, "critical", 0, "warning", "low"));
    STEP(1, 6, quiet(1, 6));
    STEP(1.5, 7, alert(1.5, 7, "warning", 0, "critical", "low"));
    STEP(6.5, 8, alert(6.5, 8, "ok", 5, "warning", "low"));
}

Test(threshold, a_jump_across_sides)
{
    LOAD(RULE);
    STEP(36, 1, alert(36, 1, "critical", 35, "ok", "high"));
    STEP(-1, 2, alert(-1, 2, "critical", 0, "critical", "low"));
}

Test(threshold, minimum_duration_by_point_time)
{
    LOAD("rules = ({ fields = [\"temp_c\"]; warning_high = 30.0; for = \"30s\"; });");
    STEP(31, 0, quiet(31, 0));
    STEP(32, 20 * S, quiet(32, 20 * S));
    STEP(31, 30 * S, alert(31, 30 * S, "warning", 30, "ok", "high"));
    /* a dip shorter than `for` changes nothing */
    STEP(20, 40 * S, quiet(20, 40 * S));
    STEP(31, 50 * S, quiet(31, 50 * S));
    STEP(20, 60 * S, quiet(20, 60 * S));
    STEP(20, 89 * S, quiet(20, 89 * S));
    STEP(20, 90 * S, alert(20, 90 * S, "ok", 30, "warning", "high"));
}

Test(threshold, tag_state_tags_checked_points_only)
{
    LOAD(RULE "tag_state = \"state\";");
    gd_batch *b = gd_batch_new(3);
    gd_point *p = gd_batch_add(b, "m", 1);
    gd_point_tag(p, "device", "a");
    gd_point_f64(p, "temp_c", 20);
    p = gd_batch_add(b, "m", 2);
    gd_point_tag(p, "device", "a");
    gd_point_f64(p, "temp_c", 36);
    gd_point_f64(gd_batch_add(b, "other", 3), "x", 99);
    cr_assert_str_eq(gdp_process("th", b),
                     "m,device=a,state=ok temp_c=20 1\n"
                     "m,device=a,state=critical temp_c=36 2\n"
                     "alert,device=a,field=temp_c,state=critical value=36,limit=35,"
                     "previous=\"ok\",side=\"high\" 2\n"
                     "other x=99 3\n");
    cr_assert_eq(gdp_last_rc(), 0);
}

Test(threshold, alerts_follow_their_point_in_batch_order)
{
    LOAD("rules = ({ fields = [\"t*\"]; warning_high = 10.0; }, "
         "{ fields = [\"h*\"]; critical_low = 20.0; });");
    gd_batch *b = gd_batch_new(3);
    gd_point *p = gd_batch_add(b, "m", 1);
    gd_point_f64(p, "t", 5);
    gd_point_f64(p, "h", 50);
    p = gd_batch_add(b, "m", 2);
    gd_point_f64(p, "t", 11);
    gd_point_i64(p, "h", 20);
    gd_point_str(p, "s", "x");
    p = gd_batch_add(b, "m", 3);
    gd_point_f64(p, "t", 12);
    cr_assert_str_eq(
        gdp_process("th", b),
        "m t=5,h=50 1\n"
        "m t=11,h=20i,s=\"x\" 2\n"
        "alert,field=t,state=warning value=11,limit=10,previous=\"ok\",side=\"high\" 2\n"
        "alert,field=h,state=critical value=20,limit=20,previous=\"ok\",side=\"low\" 2\n"
        "m t=12 3\n");
}

Test(threshold, series_are_independent_and_options_rename)
{
    LOAD(RULE "alert_measurement = \"alarm\"; device_tag = \"dev\";");
    gd_batch *b = gd_batch_new(2);
    gd_point *p = gd_batch_add(b, "m", 1);
    gd_point_tag(p, "dev", "x");
    gd_point_f64(p, "temp_c", 31);
    p = gd_batch_add(b, "m", 2);
    gd_point_tag(p, "dev", "y");
    gd_point_f64(p, "temp_c", 29);
    cr_assert_str_eq(gdp_process("th", b),
                     "m,dev=x temp_c=31 1\n"
                     "alarm,device=x,field=temp_c,state=warning value=31,limit=30,"
                     "previous=\"ok\",side=\"high\" 1\n"
                     "m,dev=y temp_c=29 2\n");
}

Test(threshold, max_series_forgets_the_least_recent_state)
{
    LOAD(RULE "max_series = 1;");
    STEP(31, 1, alert(31, 1, "warning", 30, "ok", "high"));
    cr_assert_str_eq(gdp_process("th", temp("b", 20, 2)), "m,device=b temp_c=20 2\n");
    /* a was evicted: it starts from ok again */
    STEP(31, 3, alert(31, 3, "warning", 30, "ok", "high"));
    cr_assert_eq(gdp_dropped("th", NULL), 0);
}

static void refused(const char *rules, const char *why)
{
    char conf[512];
    snprintf(conf, sizeof(conf), "processors = ({ plugin = \"threshold\"; name = \"th\"; %s });",
             rules);
    char *e = gdp_load_error(conf);
    cr_assert_not_null(e, "accepted: %s", rules);
    cr_assert(strstr(e, why), "%s: %s", rules, e);
    free(e);
}

Test(threshold, inconsistent_rules_are_refused)
{
    refused("", "rules");
    refused("rules = ({ fields = [\"t\"]; });", "init failed");
    refused("rules = ({ warning_high = 1.0; });", "fields");
    refused("rules = ({ fields = [\"t\"]; warning_high = 5.0; critical_high = 4.0; });",
            "init failed");
    refused("rules = ({ fields = [\"t\"]; warning_low = 5.0; critical_low = 6.0; });",
            "init failed");
    refused("rules = ({ fields = [\"t\"]; warning_low = 5.0; warning_high = 5.0; });",
            "init failed");
    refused("rules = ({ fields = [\"t\"]; warning_high = 5.0; hysteresis = -1.0; });",
            "hysteresis");
}

Test(threshold, minimum_duration_with_extreme_timestamps)
{
    LOAD("rules = ({ fields = [\"temp_c\"]; warning_high = 30.0; for = \"30s\"; });");
    STEP(31, INT64_MIN, quiet(31, INT64_MIN));
    STEP(31, INT64_MAX, alert(31, INT64_MAX, "warning", 30, "ok", "high"));
}
