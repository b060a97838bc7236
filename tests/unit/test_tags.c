/* SPDX-License-Identifier: Apache-2.0 */
/* The tags processor: every operation, their order, regex captures, field
 * and tag moves, and the untouched fast path. */
#include "proc_harness.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(tags, .fini = gdp_unload);

static gd_batch *lp(const char *text)
{
    gd_batch *b = gd_batch_new(8);
    cr_assert_eq(gd_lp_parse(b, text, strlen(text), GD_PREC_NS, 0, NULL, NULL), 0, "%s", text);
    return b;
}

static void load_ops(const char *ops)
{
    char conf[2048];
    snprintf(conf, sizeof(conf), "processors = ({ plugin = \"tags\"; name = \"t\"; ops = %s; });",
             ops);
    gdp_load(conf);
}

/* Run the loaded instance on @in and check the output and the return code. */
static void expect(const char *in, const char *out, int rc)
{
    cr_assert_str_eq(gdp_process("t", lp(in)), out);
    cr_assert_eq(gdp_last_rc(), rc, "rc %d", gdp_last_rc());
}

Test(tags, set_adds_or_replaces)
{
    load_ops("({ op = \"set\"; tag = \"site\"; value = \"lab-a\"; })");
    expect("m v=1 1\nm,site=old v=2 2\n", "m,site=lab-a v=1 1\nm,site=lab-a v=2 2\n", 0);
    expect("m,site=lab-a v=1 1\n", "m,site=lab-a v=1 1\n", GD_PASS);
}

Test(tags, add_only_when_missing)
{
    load_ops("({ op = \"add\"; tag = \"site\"; value = \"lab-a\"; })");
    expect("m,site=old v=2 2\n", "m,site=old v=2 2\n", GD_PASS);
    expect("m,a=1,z=2 v=1 1\n", "m,a=1,site=lab-a,z=2 v=1 1\n", 0);
}

Test(tags, remove_by_name_and_glob)
{
    load_ops("({ op = \"remove\"; tags = [\"tmp_*\", \"host\"]; })");
    expect("m,host=h,hostname=x,tmp_a=1,tmp_b=2 v=1 1\n", "m,hostname=x v=1 1\n", 0);
    expect("m,keep=1 v=1 1\n", "m,keep=1 v=1 1\n", GD_PASS);
}

Test(tags, rename_replaces_an_existing_target)
{
    load_ops("({ op = \"rename\"; from = \"dev\"; to = \"device\"; })");
    expect("m,dev=d1 v=1 1\nm,dev=d2,device=old v=1 2\nm,x=y v=1 3\n",
           "m,device=d1 v=1 1\nm,device=d2 v=1 2\nm,x=y v=1 3\n", 0);
}

Test(tags, field_to_tag_moves_every_type)
{
    load_ops("({ op = \"field_to_tag\"; field = \"a\"; }, { op = \"field_to_tag\"; field = \"b\"; "
             "tag = \"bt\"; }, { op = \"field_to_tag\"; field = \"c\"; }, { op = \"field_to_tag\"; "
             "field = \"d\"; }, { op = \"field_to_tag\"; field = \"e\"; })");
    expect("m a=\"serial 7\",b=2.5,c=-3i,d=4u,e=true,v=1 1\n",
           "m,a=serial\\ 7,bt=2.5,c=-3,d=4,e=true v=1 1\n", 0);
}

Test(tags, field_to_tag_keep_copies)
{
    load_ops("({ op = \"field_to_tag\"; field = \"sn\"; tag = \"serial\"; keep = true; })");
    expect("m sn=12i,v=1 1\n", "m,serial=12 sn=12i,v=1 1\n", 0);
}

Test(tags, moving_the_last_field_drops_the_point)
{
    load_ops("({ op = \"field_to_tag\"; field = \"sn\"; })");
    expect("m sn=\"x\" 1\nm sn=\"y\",v=1 2\n", "m,sn=y v=1 2\n", 0);
    cr_assert_eq(gdp_dropped("t", "filtered"), 1);
}

Test(tags, tag_to_field_with_types)
{
    load_ops(
        "({ op = \"tag_to_field\"; tag = \"a\"; type = \"int\"; }, { op = \"tag_to_field\"; "
        "tag = \"b\"; field = \"bf\"; type = \"float\"; }, { op = \"tag_to_field\"; tag = "
        "\"c\"; type = \"uint\"; }, { op = \"tag_to_field\"; tag = \"d\"; type = \"bool\"; }, { "
        "op = \"tag_to_field\"; tag = \"e\"; keep = true; })");
    expect("m,a=-5,b=1.5,c=7,d=true,e=txt v=1 1\n",
           "m,e=txt v=1,a=-5i,bf=1.5,c=7u,d=true,e=\"txt\" 1\n", 0);
}

Test(tags, tag_to_field_leaves_unparsable_values)
{
    load_ops("({ op = \"tag_to_field\"; tag = \"slot\"; type = \"int\"; })");
    expect("m,slot=3x v=1 1\n", "m,slot=3x v=1 1\n", GD_PASS);
    load_ops("({ op = \"tag_to_field\"; tag = \"n\"; type = \"uint\"; })");
    expect("m,n=-1 v=1 1\n", "m,n=-1 v=1 1\n", GD_PASS);
}

Test(tags, tag_to_field_replaces_a_field_of_that_name)
{
    load_ops("({ op = \"tag_to_field\"; tag = \"v\"; type = \"float\"; })");
    expect("m,v=2 v=1,w=3 1\n", "m v=2,w=3 1\n", 0);
}

Test(tags, field_and_tag_round_trip)
{
    load_ops("({ op = \"field_to_tag\"; field = \"n\"; }, { op = \"tag_to_field\"; tag = \"n\"; "
             "type = \"int\"; })");
    expect("m n=42i,v=1 1\n", "m v=1,n=42i 1\n", 0);
}

Test(tags, regex_capture_from_a_tag)
{
    load_ops("({ op = \"regex\"; from = \"device\"; pattern = \"^([a-z]+)-([0-9]+)$\"; tag = "
             "\"family\"; value = \"$1/$2 ($0) $$\"; })");
    expect("m,device=ch-17 v=1 1\nm,device=XX v=1 2\nm v=1 3\n",
           "m,device=ch-17,family=ch/17\\ (ch-17)\\ $ v=1 1\nm,device=XX v=1 2\nm v=1 3\n", 0);
}

Test(tags, regex_default_value_is_the_first_group)
{
    load_ops(
        "({ op = \"regex\"; from = \"host\"; pattern = \"\\\\.([a-z]+)\\\\.\"; tag = \"dc\"; })");
    expect("m,host=a.fra.example v=1 1\n", "m,dc=fra,host=a.fra.example v=1 1\n", 0);
}

Test(tags, regex_capture_from_the_measurement)
{
    load_ops("({ op = \"regex\"; source = \"measurement\"; pattern = \"^chamber_(.+)$\"; tag = "
             "\"room\"; })");
    expect("chamber_b12 v=1 1\nother v=1 2\n", "chamber_b12,room=b12 v=1 1\nother v=1 2\n", 0);
    expect("other v=1 2\n", "other v=1 2\n", GD_PASS);
}

Test(tags, regex_with_an_empty_capture_changes_nothing)
{
    load_ops("({ op = \"regex\"; from = \"a\"; pattern = \"^x(y*)\"; tag = \"b\"; })");
    expect("m,a=x v=1 1\n", "m,a=x v=1 1\n", GD_PASS);
}

Test(tags, rename_the_measurement)
{
    load_ops("({ op = \"measurement\"; from = \"chamber*\"; value = \"env\"; })");
    expect("chamber1 v=1 1\nroom v=1 2\n", "env v=1 1\nroom v=1 2\n", 0);
    load_ops("({ op = \"measurement\"; pattern = \"^(.*)_raw$\"; value = \"$1\"; })");
    expect("temp_raw v=1 1\ntemp v=1 2\n", "temp v=1 1\ntemp v=1 2\n", 0);
    load_ops("({ op = \"measurement\"; value = \"all\"; })");
    expect("a v=1 1\nall v=1 2\n", "all v=1 1\nall v=1 2\n", 0);
}

Test(tags, operations_apply_in_order)
{
    load_ops("({ op = \"rename\"; from = \"dev\"; to = \"device\"; }, { op = \"regex\"; from = "
             "\"device\"; pattern = \"^([a-z]+)\"; tag = \"kind\"; }, { op = \"remove\"; tags = "
             "\"device\"; }, { op = \"measurement\"; value = \"$1\"; pattern = \"(.*)\"; })");
    expect("m,dev=pump3 v=1 1\n", "m,kind=pump v=1 1\n", 0);
    load_ops("({ op = \"remove\"; tags = \"device\"; }, { op = \"regex\"; from = \"device\"; "
             "pattern = \"^([a-z]+)\"; tag = \"kind\"; })");
    expect("m,device=pump3 v=1 1\n", "m v=1 1\n", 0);
}

Test(tags, unchanged_points_keep_their_place)
{
    load_ops("({ op = \"rename\"; from = \"a\"; to = \"b\"; })");
    expect("m v=1 1\nm,a=1 v=2 2\nm v=3 3\n", "m v=1 1\nm,b=1 v=2 2\nm v=3 3\n", 0);
    cr_assert_eq(gdp_dropped("t", NULL), 0);
}

Test(tags, readme_example)
{
    load_ops("({ op = \"rename\"; from = \"dev\"; to = \"device\"; }, { op = \"regex\"; from = "
             "\"device\"; pattern = \"^([a-z]+)-([0-9]+)$\"; tag = \"family\"; }, { op = \"add\"; "
             "tag = \"site\"; value = \"lab-a\"; }, { op = \"remove\"; tags = [\"tmp_*\"]; }, { op "
             "= \"field_to_tag\"; field = \"serial\"; }, { op = \"tag_to_field\"; tag = \"slot\"; "
             "type = \"int\"; }, { op = \"measurement\"; pattern = \"^(.*)_raw$\"; value = "
             "\"$1\"; })");
    expect("chamber_raw,dev=ch-17,slot=3,tmp_x=1 serial=\"A7\",temp=21.5 1\n",
           "chamber,device=ch-17,family=ch,serial=A7,site=lab-a temp=21.5,slot=3i 1\n", 0);
}

static void expect_init_error(const char *ops, const char *needle)
{
    char conf[1024];
    snprintf(conf, sizeof(conf), "processors = ({ plugin = \"tags\"; name = \"e\"; ops = %s; });",
             ops);
    char *e = gdp_load_error(conf);
    cr_assert_not_null(e, "accepted: %s", ops);
    cr_assert(strstr(e, needle), "%s", e);
    free(e);
}

Test(tags, config_errors)
{
    expect_init_error("({ op = \"set\"; tag = \"a\"; })", "init failed");
    expect_init_error("({ op = \"rename\"; from = \"a\"; })", "init failed");
    expect_init_error("({ op = \"regex\"; from = \"a\"; pattern = \"(\"; tag = \"b\"; })",
                      "init failed");
    expect_init_error("({ op = \"regex\"; pattern = \"x\"; tag = \"b\"; })", "init failed");
    expect_init_error("({ op = \"remove\"; })", "init failed");
    expect_init_error("({ op = \"explode\"; })", "op");
    expect_init_error("({ op = \"tag_to_field\"; tag = \"a\"; type = \"complex\"; })", "type");
}
