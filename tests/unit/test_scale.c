/* SPDX-License-Identifier: Apache-2.0 */
/* The scale processor: factor and offset, unit conversions, rounding,
 * integer handling, field globs, renames, and the untouched fast path. */
#include "proc_harness.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(scale, .fini = gdp_unload);

/* A frozen-to-be batch from line protocol text. */
static gd_batch *lp(const char *text)
{
    gd_batch *b = gd_batch_new(8);
    cr_assert_eq(gd_lp_parse(b, text, strlen(text), GD_PREC_NS, 0, NULL, NULL), 0, "%s", text);
    return b;
}

static void load_rules(const char *name, const char *rules)
{
    char conf[2048];
    snprintf(conf, sizeof(conf),
             "processors = ({ plugin = \"scale\"; name = \"%s\"; rules = %s; });", name, rules);
    gdp_load(conf);
}

/* Run @name on @text, then feed the result to @back: a round trip. */
static char *round_trip(const char *conf, const char *text)
{
    gdp_load(conf);
    char *mid = strdup(gdp_process("there", lp(text)));
    char *res = strdup(gdp_process("back", lp(mid)));
    free(mid);
    return res;
}

Test(scale, celsius_to_fahrenheit_with_suffix_rename)
{
    load_rules("s",
               "({ fields = [\"temp_*\"]; convert = \"C->F\"; round = 2; strip_suffix = \"_c\"; "
               "add_suffix = \"_f\"; })");
    cr_assert_str_eq(gdp_process("s", lp("m,device=d1 temp_c=21.5,hum=40 1000\n")),
                     "m,device=d1 temp_f=70.7,hum=40 1000\n");
    cr_assert_eq(gdp_last_rc(), 0);
    cr_assert_eq(gdp_dropped("s", NULL), 0);
}

Test(scale, celsius_fahrenheit_round_trip)
{
    char *r = round_trip(
        "processors = ({ plugin = \"scale\"; name = \"there\"; rules = ({ fields = \"t\"; convert "
        "= \"C->F\"; }); }, { plugin = \"scale\"; name = \"back\"; rules = ({ fields = \"t\"; "
        "convert = \"F->C\"; round = 9; }); });",
        "m t=37 1\nm t=-40 2\nm t=0.5 3\nm t=-273.15 4\n");
    cr_assert_str_eq(r, "m t=37 1\nm t=-40 2\nm t=0.5 3\nm t=-273.15 4\n");
    free(r);
}

Test(scale, kelvin)
{
    load_rules("k", "({ fields = \"t\"; convert = \"C -> K\"; round = 2; })");
    cr_assert_str_eq(gdp_process("k", lp("m t=0 1\nm t=25 2\n")), "m t=273.15 1\nm t=298.15 2\n");
    load_rules("k", "({ fields = \"t\"; convert = \"K->F\"; round = 2; })");
    cr_assert_str_eq(gdp_process("k", lp("m t=273.15 1\n")), "m t=32 1\n");
}

Test(scale, pascal_psi_round_trip_within_rounding)
{
    load_rules("p", "({ fields = \"p\"; convert = \"Pa->psi\"; round = 3; })");
    cr_assert_str_eq(gdp_process("p", lp("m p=101325 1\n")), "m p=14.696 1\n");
    char *r = round_trip(
        "processors = ({ plugin = \"scale\"; name = \"there\"; rules = ({ fields = \"p\"; convert "
        "= \"Pa->psi\"; }); }, { plugin = \"scale\"; name = \"back\"; rules = ({ fields = \"p\"; "
        "convert = \"psi->Pa\"; round = 6; }); });",
        "m p=101325 1\nm p=1 2\n");
    cr_assert_str_eq(r, "m p=101325 1\nm p=1 2\n");
    free(r);
}

Test(scale, pressure_units)
{
    load_rules("p", "({ fields = \"a\"; convert = \"hPa->bar\"; round = 6; }, { fields = \"b\"; "
                    "convert = \"bar->kPa\"; }, { fields = \"c\"; convert = \"mbar->Pa\"; })");
    cr_assert_str_eq(gdp_process("p", lp("m a=1013.25,b=2,c=5 1\n")),
                     "m a=1.01325,b=200,c=500 1\n");
}

Test(scale, ppm_percent_round_trip)
{
    load_rules("r", "({ fields = \"co2\"; convert = \"ppm->percent\"; })");
    cr_assert_str_eq(gdp_process("r", lp("m co2=4150 1\n")), "m co2=0.415 1\n");
    char *r = round_trip(
        "processors = ({ plugin = \"scale\"; name = \"there\"; rules = ({ fields = \"x\"; convert "
        "= \"percent->ppm\"; }); }, { plugin = \"scale\"; name = \"back\"; rules = ({ fields = "
        "\"x\"; convert = \"ppm->%\"; round = 9; }); });",
        "m x=0.04 1\nm x=21 2\n");
    cr_assert_str_eq(r, "m x=0.04 1\nm x=21 2\n");
    free(r);
}

Test(scale, factor_then_offset_keeps_integers_integer)
{
    load_rules("raw", "({ fields = \"raw\"; factor = 0.1; offset = -40; })");
    cr_assert_str_eq(gdp_process("raw", lp("m raw=500i,x=1i 1\nm raw=-7i 2\n")),
                     "m raw=10i,x=1i 1\nm raw=-41i 2\n");
}

Test(scale, unsigned_integers_stay_unsigned)
{
    load_rules("u", "({ fields = \"n\"; factor = 2; })");
    cr_assert_str_eq(gdp_process("u", lp("m n=21u 1\n")), "m n=42u 1\n");
}

Test(scale, to_float_with_rounding)
{
    load_rules("f", "({ fields = \"raw\"; factor = 0.1; round = 1; to_float = true; })");
    cr_assert_str_eq(gdp_process("f", lp("m raw=333i 1\nm raw=7u 2\n")),
                     "m raw=33.3 1\nm raw=0.7 2\n");
}

Test(scale, to_float_alone_converts_integers)
{
    load_rules("f", "({ fields = \"*\"; to_float = true; })");
    cr_assert_str_eq(gdp_process("f", lp("m a=3i,b=2.5,c=\"s\",d=true 1\n")),
                     "m a=3,b=2.5,c=\"s\",d=true 1\n");
}

Test(scale, rounding_half_away_from_zero)
{
    load_rules("r", "({ fields = \"v\"; round = 0; }, { fields = \"w\"; round = 3; })");
    cr_assert_str_eq(gdp_process("r", lp("m v=2.5,w=1.23449 1\nm v=-2.5,w=-0.0005 2\n")),
                     "m v=3,w=1.234 1\nm v=-3,w=-0.001 2\n");
}

Test(scale, first_matching_rule_wins_and_globs_select)
{
    load_rules("g", "({ fields = [\"temp_?\", \"x*\"]; factor = 10; }, { fields = \"t*\"; "
                    "factor = 100; })");
    cr_assert_str_eq(gdp_process("g", lp("m temp_a=1,temp_ab=1,xyz=2,other=3 1\n")),
                     "m temp_a=10,temp_ab=100,xyz=20,other=3 1\n");
}

Test(scale, literal_rename)
{
    load_rules("n", "({ fields = \"tc\"; convert = \"C->F\"; rename = \"temperature_f\"; })");
    cr_assert_str_eq(gdp_process("n", lp("m tc=100,tc2=1 1\n")), "m temperature_f=212,tc2=1 1\n");
}

Test(scale, measurement_filter_per_rule)
{
    load_rules("m", "({ fields = \"v\"; measurements = [\"chamber*\"]; factor = 2; })");
    cr_assert_str_eq(gdp_process("m", lp("chamber1 v=1 1\nroom v=1 2\nchamber2,a=b v=3 3\n")),
                     "chamber1 v=2 1\nroom v=1 2\nchamber2,a=b v=6 3\n");
    cr_assert_eq(gdp_last_rc(), 0);
    cr_assert_str_eq(gdp_process("m", lp("room v=1 2\n")), "room v=1 2\n");
    cr_assert_eq(gdp_last_rc(), GD_PASS);
}

Test(scale, strings_and_booleans_are_left_alone)
{
    load_rules("s", "({ fields = \"*\"; factor = 3; })");
    cr_assert_str_eq(gdp_process("s", lp("m a=\"x\",b=false 1\n")), "m a=\"x\",b=false 1\n");
    cr_assert_eq(gdp_last_rc(), GD_PASS);
}

Test(scale, pass_when_nothing_matches)
{
    load_rules("p", "({ fields = \"nothing_*\"; factor = 3; })");
    cr_assert_str_eq(gdp_process("p", lp("m,t=1 a=1,b=2i 1\nn c=3 2\n")),
                     "m,t=1 a=1,b=2i 1\nn c=3 2\n");
    cr_assert_eq(gdp_last_rc(), GD_PASS);
}

Test(scale, unmatched_points_keep_their_place)
{
    load_rules("o", "({ fields = \"v\"; factor = 2; })");
    cr_assert_str_eq(gdp_process("o", lp("m a=1 1\nm v=1 2\nm b=1 3\nm v=2 4\n")),
                     "m a=1 1\nm v=2 2\nm b=1 3\nm v=4 4\n");
    cr_assert_eq(gdp_dropped("o", NULL), 0);
}

Test(scale, out_of_range_keeps_the_value)
{
    load_rules("o", "({ fields = \"v\"; factor = 1e300; })");
    cr_assert_str_eq(gdp_process("o", lp("m v=1e300,w=1 1\n")), "m v=1e+300,w=1 1\n");
    load_rules("o", "({ fields = \"v\"; factor = 1e30; })");
    cr_assert_str_eq(gdp_process("o", lp("m v=10i 1\n")), "m v=10i 1\n");
}

Test(scale, readme_example)
{
    load_rules("units",
               "({ fields = [\"temp_*\"]; convert = \"C->F\"; round = 2; strip_suffix = "
               "\"_c\"; add_suffix = \"_f\"; }, { fields = \"raw\"; factor = 0.1; offset = "
               "-40; to_float = true; }, { fields = \"pressure_hpa\"; measurements = "
               "[\"chamber\"]; convert = \"hPa->psi\"; round = 3; rename = "
               "\"pressure_psi\"; })");
    cr_assert_str_eq(
        gdp_process("units", lp("chamber temp_c=21.5,raw=500i,pressure_hpa=1013.25 1\n")),
        "chamber temp_f=70.7,raw=10,pressure_psi=14.696 1\n");
}

static void expect_init_error(const char *rules)
{
    char conf[1024];
    snprintf(conf, sizeof(conf),
             "processors = ({ plugin = \"scale\"; name = \"e\"; rules = %s; });", rules);
    char *e = gdp_load_error(conf);
    cr_assert_not_null(e, "accepted: %s", rules);
    free(e);
}

Test(scale, config_errors)
{
    expect_init_error("({ fields = \"t\"; convert = \"C->Pa\"; })");
    expect_init_error("({ fields = \"t\"; convert = \"C->Z\"; })");
    expect_init_error("({ fields = \"t\"; convert = \"CF\"; })");
    expect_init_error("({ fields = \"t\"; round = 16; })");
    expect_init_error("({ fields = \"t\"; rename = \"x\"; add_suffix = \"_f\"; })");
    expect_init_error("()");
    char *e = gdp_load_error(
        "processors = ({ plugin = \"scale\"; name = \"e\"; rules = ({ factor = 2; }); });");
    cr_assert_not_null(e);
    cr_assert(strstr(e, "fields"), "%s", e);
    free(e);
}
