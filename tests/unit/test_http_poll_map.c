/* SPDX-License-Identifier: Apache-2.0 */
/* test_http_poll_map.c - the http_poll input's JSON -> points mapping:
 * RFC 6901 pointers, field types and conversions, scale/offset, tags,
 * timestamps in every format, arrays of readings, and what is dropped or
 * skipped (and counted) when the document does not fit. Points are checked
 * as exact line protocol. */
#include "../../plugins/inputs/http_poll/hp_map.h"
#include <criterion/criterion.h>
#include <gatherd/lineproto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_NS 1700000000000000000LL

static hp_map m;

static void map_fini(void)
{
    hp_map_free(&m);
}

TestSuite(http_poll_map, .fini = map_fini);

static void map_new(const char *measurement)
{
    cr_assert_eq(hp_map_init(&m, measurement), 0);
}

static void field_full(const char *name, const char *ptr, int type, double scale, double offset,
                       bool required, bool root)
{
    struct hp_field_cfg f = {.name = (char *)name,
                             .pointer = (char *)ptr,
                             .type = type,
                             .scale = scale,
                             .offset = offset,
                             .required = required,
                             .root = root};
    int rc = hp_map_add_field(&m, &f);
    cr_assert_eq(rc, 0, "field %s: %s", name, m.err);
}

static void field(const char *name, const char *ptr, int type)
{
    field_full(name, ptr, type, 1.0, 0.0, false, false);
}

static void required(const char *name, const char *ptr, int type)
{
    field_full(name, ptr, type, 1.0, 0.0, true, false);
}

static void tagp(const char *name, const char *ptr, bool root)
{
    struct hp_tag_cfg t = {.name = (char *)name, .pointer = (char *)ptr, .root = root};
    cr_assert_eq(hp_map_add_tag_pointer(&m, &t), 0, "tag %s: %s", name, m.err);
}

/* Apply the map to @json; the points as line protocol (static buffer). */
static const char *apply(const char *json, struct hp_stats *st, int want_rc)
{
    static char text[8192];
    json_error_t je;
    json_t *doc = json_loads(json, JSON_DECODE_ANY, &je);
    cr_assert_not_null(doc, "test JSON: %s", je.text);
    gd_batch *b = gd_batch_new(4);
    int rc = hp_map_apply(&m, doc, POLL_NS, b, st);
    cr_assert_eq(rc, want_rc, "hp_map_apply: %d (%s)", rc, st->first);
    gd_buf out = {0};
    size_t skipped = 0;
    cr_assert_eq(gd_lp_encode_batch(&out, b, GD_PREC_NS, &skipped), 0);
    cr_assert_eq(skipped, 0);
    snprintf(text, sizeof(text), "%s", out.data ? out.data : "");
    gd_buf_free(&out);
    gd_batch_unref(b);
    json_decref(doc);
    return text;
}

static size_t ndropped(const struct hp_stats *st)
{
    size_t n = 0;
    for (int r = 0; r < HP_NDROP; r++)
        n += st->dropped[r];
    return n;
}

/* ---- pointers ----------------------------------------------------------- */

Test(http_poll_map, pointer_tokens_are_unescaped_tilde_one_then_tilde_zero)
{
    struct hp_ptr p;
    cr_assert_eq(hp_ptr_parse(&p, "/a~1b/m~0n/~01", NULL), 0);
    cr_assert_eq(p.n, 3);
    cr_assert_str_eq(p.tok[0].s, "a/b");
    cr_assert_str_eq(p.tok[1].s, "m~n");
    cr_assert_str_eq(p.tok[2].s, "~1", "~01 is '~' then '1', not '/'");
    hp_ptr_free(&p);

    cr_assert_eq(hp_ptr_parse(&p, "", NULL), 0);
    cr_assert_eq(p.n, 0, "\"\" is the whole document");
    hp_ptr_free(&p);
    cr_assert_eq(hp_ptr_parse(&p, "/", NULL), 0);
    cr_assert_eq(p.n, 1);
    cr_assert_eq(p.tok[0].len, 0, "\"/\" is the member with the empty name");
    hp_ptr_free(&p);
}

Test(http_poll_map, malformed_pointers_are_refused_with_a_reason)
{
    const char *bad[] = {"a", "sensors/0", "/~2", "/x~", "/~"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct hp_ptr p;
        const char *why = NULL;
        cr_assert_eq(hp_ptr_parse(&p, bad[i], &why), GD_EINVAL, "%s", bad[i]);
        cr_assert_not_null(why);
        hp_ptr_free(&p);
    }
}

Test(http_poll_map, pointer_walks_objects_and_arrays_and_misses_cleanly)
{
    json_t *doc = json_loads("{\"sensors\":[{\"value\":1},{\"value\":2}],"
                             "\"a/b\":{\"m~n\":3},\"\":{\"x\":4},\"7\":5}",
                             0, NULL);
    cr_assert_not_null(doc);
    struct {
        const char *ptr;
        long want; /* -1: missing */
    } cases[] = {
        {"/sensors/1/value", 2},    {"/a~1b/m~0n", 3},  {"//x", 4},         {"/7", 5},
        {"/sensors/01/value", -1},  {"/sensors/-", -1}, {"/sensors/2", -1}, {"/sensors/x", -1},
        {"/sensors/0/value/v", -1}, {"/nope", -1},      {"/a~1b/m~1n", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hp_ptr p;
        cr_assert_eq(hp_ptr_parse(&p, cases[i].ptr, NULL), 0);
        json_t *v = hp_ptr_get(&p, doc);
        if (cases[i].want < 0)
            cr_assert_null(v, "%s should be missing", cases[i].ptr);
        else
            cr_assert(v && json_integer_value(v) == cases[i].want, "%s", cases[i].ptr);
        hp_ptr_free(&p);
    }
    json_decref(doc);
}

/* ---- fields ------------------------------------------------------------- */

Test(http_poll_map, nested_fields_of_every_type_make_one_exact_point)
{
    map_new("chamber");
    cr_assert_eq(hp_map_add_tag(&m, "device", "c1"), 0);
    cr_assert_eq(hp_map_add_tag(&m, "site", "lab a"), 0);
    field("temp_c", "/sensors/0/value", HP_FLOAT);
    field("rh", "/sensors/1/value", HP_FLOAT);
    field("door_open", "/state/door", HP_BOOL);
    field("mode", "/state/mode", HP_STRING);
    field("cycles", "/counters/cycles", HP_INT);
    field("bytes", "/counters/bytes", HP_UINT);
    struct hp_stats st;
    const char *got = apply("{\"sensors\":[{\"value\":21.5},{\"value\":40}],"
                            "\"state\":{\"door\":false,\"mode\":\"run \\\"A\\\"\"},"
                            "\"counters\":{\"cycles\":-12,\"bytes\":9007199254740993}}",
                            &st, 0);
    cr_assert_str_eq(got, "chamber,device=c1,site=lab\\ a temp_c=21.5,rh=40,door_open=false,"
                          "mode=\"run \\\"A\\\"\",cycles=-12i,bytes=9007199254740993u "
                          "1700000000000000000\n");
    cr_assert_eq(st.points, 1);
    cr_assert_eq(ndropped(&st), 0);
    cr_assert_str_eq(st.first, "", "nothing to report");
}

Test(http_poll_map, scale_and_offset_apply_to_numbers)
{
    map_new("m");
    field_full("temp_c", "/raw", HP_FLOAT, 0.1, -40.0, false, false);
    field_full("tenths", "/t", HP_INT, 10.0, 0.0, false, false);
    field_full("pct", "/ratio", HP_UINT, 100.0, 0.0, false, false);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"raw\":615,\"t\":21.47,\"ratio\":0.255}", &st, 0),
                     "m temp_c=21.5,tenths=215i,pct=26u 1700000000000000000\n",
                     "int results of scale/offset are rounded to the nearest");
}

Test(http_poll_map, numeric_strings_convert_to_numbers)
{
    map_new("m");
    field("f", "/f", HP_FLOAT);
    field("i", "/i", HP_INT);
    field("u", "/u", HP_UINT);
    field("b", "/b", HP_BOOL);
    field("b2", "/b2", HP_BOOL);
    struct hp_stats st;
    cr_assert_str_eq(
        apply("{\"f\":\"21.25\",\"i\":\"-7\",\"u\":\"18446744073709551615\",\"b\":\"true\","
              "\"b2\":0}",
              &st, 0),
        "m f=21.25,i=-7i,u=18446744073709551615u,b=true,b2=false 1700000000000000000\n");
}

Test(http_poll_map, numbers_and_bools_become_string_fields_as_json_text)
{
    map_new("m");
    field("a", "/a", HP_STRING);
    field("b", "/b", HP_STRING);
    field("c", "/c", HP_STRING);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"a\":42,\"b\":0.1,\"c\":true}", &st, 0),
                     "m a=\"42\",b=\"0.1\",c=\"true\" 1700000000000000000\n");
}

Test(http_poll_map, wrong_type_of_an_optional_field_skips_only_that_field)
{
    map_new("m");
    field("temp", "/temp", HP_FLOAT);
    field("n", "/n", HP_INT);
    field("on", "/on", HP_BOOL);
    field("s", "/s", HP_STRING);
    field("u", "/u", HP_UINT);
    field("ok", "/ok", HP_FLOAT);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"temp\":\"warm\",\"n\":2.5,\"on\":\"yes\",\"s\":{\"x\":1},"
                           "\"u\":-1,\"ok\":1.5}",
                           &st, 0),
                     "m ok=1.5 1700000000000000000\n");
    cr_assert_eq(st.skipped, 5);
    cr_assert_eq(ndropped(&st), 0);
    cr_assert(strstr(st.first, "field temp (float): a string at /temp not a number"), "%s",
              st.first);
}

Test(http_poll_map, wrong_type_of_a_required_field_drops_the_point)
{
    map_new("m");
    required("temp", "/temp", HP_FLOAT);
    field("rh", "/rh", HP_FLOAT);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"temp\":[1],\"rh\":40}", &st, 0), "");
    cr_assert_eq(st.points, 0);
    cr_assert_eq(st.dropped[HP_DROP_WRONG_TYPE], 1);
    cr_assert_str_eq(hp_drop_names[HP_DROP_WRONG_TYPE], "wrong_type");
    cr_assert(strstr(st.first, "required field temp (float): an array at /temp"), "%s", st.first);
}

Test(http_poll_map, missing_optional_field_is_skipped_silently)
{
    map_new("m");
    field("temp", "/temp", HP_FLOAT);
    field("rh", "/humidity/value", HP_FLOAT);
    field("co2", "/co2", HP_FLOAT);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"temp\":20,\"co2\":null}", &st, 0), "m temp=20 1700000000000000000\n",
                     "null counts as missing");
    cr_assert_eq(st.skipped, 0);
    cr_assert_str_eq(st.first, "");
}

Test(http_poll_map, missing_or_null_required_field_drops_the_point_and_names_it)
{
    map_new("m");
    required("temp", "/sensors/0/value", HP_FLOAT);
    field("rh", "/rh", HP_FLOAT);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"sensors\":[],\"rh\":40}", &st, 0), "");
    cr_assert_eq(st.dropped[HP_DROP_MISSING_FIELD], 1);
    cr_assert_str_eq(hp_drop_names[HP_DROP_MISSING_FIELD], "missing_field");
    cr_assert(strstr(st.first, "required field temp: /sensors/0/value is missing"), "%s", st.first);
    cr_assert_str_eq(apply("{\"sensors\":[{\"value\":null}],\"rh\":40}", &st, 0), "");
    cr_assert(strstr(st.first, "is null"), "%s", st.first);
}

Test(http_poll_map, values_beyond_a_type_are_refused_not_wrapped)
{
    map_new("m");
    field_full("f", "/f", HP_FLOAT, 10.0, 0.0, false, false);
    field("i", "/i", HP_INT);
    field("u", "/u", HP_UINT);
    field_full("is", "/is", HP_INT, 1000.0, 0.0, false, false);
    field("s", "/s", HP_INT);
    field("ok", "/ok", HP_INT);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"f\":1e308,\"i\":1e19,\"u\":-0.5,\"is\":9223372036854775807,"
                           "\"s\":\"99999999999999999999\",\"ok\":-9223372036854775808}",
                           &st, 0),
                     "m ok=-9223372036854775808i 1700000000000000000\n");
    cr_assert_eq(st.skipped, 5, "%s", st.first);
    cr_assert(strstr(st.first, "field f (float): a real at /f out of range"), "%s", st.first);
}

Test(http_poll_map, a_point_without_any_field_value_is_dropped)
{
    map_new("m");
    field("temp", "/temp", HP_FLOAT);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"other\":1}", &st, 0), "");
    cr_assert_eq(st.dropped[HP_DROP_NO_FIELDS], 1);
}

Test(http_poll_map, a_later_field_of_the_same_name_replaces_the_earlier)
{
    map_new("m");
    field("temp", "/a", HP_FLOAT);
    field("rh", "/b", HP_FLOAT);
    field("temp", "/c", HP_INT);
    cr_assert_eq(m.nfields, 2);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"a\":1.5,\"b\":2,\"c\":3}", &st, 0),
                     "m temp=3i,rh=2 1700000000000000000\n");
}

Test(http_poll_map, bad_field_configs_are_refused_with_a_message)
{
    map_new("m");
    struct hp_field_cfg f = {.name = "x", .pointer = "x", .type = HP_FLOAT, .scale = 1};
    cr_assert_eq(hp_map_add_field(&m, &f), GD_EINVAL);
    cr_assert(strstr(m.err, "field x: pointer \"x\""), "%s", m.err);
    struct hp_field_cfg g = {.name = "on", .pointer = "/on", .type = HP_BOOL, .scale = 2};
    cr_assert_eq(hp_map_add_field(&m, &g), GD_EINVAL);
    cr_assert(strstr(m.err, "scale and offset need a numeric type"), "%s", m.err);
    cr_assert_eq(m.nfields, 0);
}

/* ---- tags --------------------------------------------------------------- */

Test(http_poll_map, tags_come_from_pointers_as_text_and_bad_ones_are_skipped)
{
    map_new("m");
    cr_assert_eq(hp_map_add_tag(&m, "site", "lab"), 0);
    tagp("serial", "/info/serial", false);
    tagp("slot", "/info/slot", false);
    tagp("gain", "/info/gain", false);
    tagp("primary", "/info/primary", false);
    tagp("nested", "/info", false);
    tagp("absent", "/nope", false);
    tagp("empty", "/info/empty", false);
    field("v", "/v", HP_FLOAT);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"info\":{\"serial\":\"SN 7\",\"slot\":3,\"gain\":1.25,"
                           "\"primary\":true,\"empty\":\"\"},\"v\":1}",
                           &st, 0),
                     "m,gain=1.25,primary=true,serial=SN\\ 7,site=lab,slot=3 v=1 "
                     "1700000000000000000\n");
    cr_assert_eq(st.skipped, 2, "the object and the empty string");
}

/* ---- timestamps --------------------------------------------------------- */

static int64_t t_of(const char *json, int format)
{
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(v, "%s", json);
    int64_t ns = 0;
    int rc = hp_time_parse(v, format, &ns);
    json_decref(v);
    cr_assert_eq(rc, 0, "%s as %s: %d", json, hp_time_format_names[format], rc);
    return ns;
}

static int t_err(const char *json, int format)
{
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(v, "%s", json);
    int64_t ns = 0;
    int rc = hp_time_parse(v, format, &ns);
    json_decref(v);
    return rc;
}

Test(http_poll_map, unix_timestamps_in_each_unit)
{
    cr_assert_eq(t_of("1700000000", HP_TIME_UNIX_S), 1700000000000000000LL);
    cr_assert_eq(t_of("1700000000.25", HP_TIME_UNIX_S), 1700000000250000000LL);
    cr_assert_eq(t_of("\"1700000000.123456789\"", HP_TIME_UNIX_S), 1700000000123456789LL,
                 "a string keeps every digit");
    cr_assert_eq(t_of("1700000000123", HP_TIME_UNIX_MS), 1700000000123000000LL);
    cr_assert_eq(t_of("\"1700000000123.5\"", HP_TIME_UNIX_MS), 1700000000123500000LL);
    cr_assert_eq(t_of("1700000000123456", HP_TIME_UNIX_US), 1700000000123456000LL);
    cr_assert_eq(t_of("1700000000123456789", HP_TIME_UNIX_NS), 1700000000123456789LL);
    cr_assert_eq(t_of("-1", HP_TIME_UNIX_S), -1000000000LL);
    cr_assert_eq(t_err("true", HP_TIME_UNIX_S), GD_ETYPE);
    cr_assert_eq(t_err("\"12:00\"", HP_TIME_UNIX_S), GD_EINVAL);
    cr_assert_eq(t_err("\"\"", HP_TIME_UNIX_MS), GD_EINVAL);
    cr_assert_eq(t_err("99999999999", HP_TIME_UNIX_S), GD_ERANGE, "year 5138 is beyond int64 ns");
}

Test(http_poll_map, auto_timestamps_pick_the_unit_by_magnitude)
{
    cr_assert_eq(t_of("1700000000", HP_TIME_AUTO), 1700000000000000000LL);
    cr_assert_eq(t_of("1700000000.5", HP_TIME_AUTO), 1700000000500000000LL);
    cr_assert_eq(t_of("1700000000123", HP_TIME_AUTO), 1700000000123000000LL);
    cr_assert_eq(t_of("1700000000123456", HP_TIME_AUTO), 1700000000123456000LL);
    cr_assert_eq(t_of("1700000000123456789", HP_TIME_AUTO), 1700000000123456789LL);
    cr_assert_eq(t_of("\"1700000000123\"", HP_TIME_AUTO), 1700000000123000000LL);
    cr_assert_eq(t_of("\"2023-11-14T22:13:20Z\"", HP_TIME_AUTO), 1700000000000000000LL);
}

Test(http_poll_map, rfc3339_with_fractions_and_offsets)
{
    cr_assert_eq(t_of("\"2023-11-14T22:13:20Z\"", HP_TIME_RFC3339), 1700000000000000000LL);
    cr_assert_eq(t_of("\"2023-11-14t22:13:20.5z\"", HP_TIME_RFC3339), 1700000000500000000LL);
    cr_assert_eq(t_of("\"2023-11-14 22:13:20.123456789Z\"", HP_TIME_RFC3339),
                 1700000000123456789LL);
    cr_assert_eq(t_of("\"2023-11-14T22:13:20.1234567891234Z\"", HP_TIME_RFC3339),
                 1700000000123456789LL, "digits past ns are truncated");
    cr_assert_eq(t_of("\"2023-11-15T00:13:20+02:00\"", HP_TIME_RFC3339), 1700000000000000000LL);
    cr_assert_eq(t_of("\"2023-11-14T16:43:20.000-05:30\"", HP_TIME_RFC3339), 1700000000000000000LL);
    cr_assert_eq(t_of("\"1970-01-01T00:00:00Z\"", HP_TIME_RFC3339), 0);
    cr_assert_eq(t_of("\"1969-12-31T23:59:59Z\"", HP_TIME_RFC3339), -1000000000LL);
    cr_assert_eq(t_of("\"2024-02-29T00:00:00Z\"", HP_TIME_RFC3339), 1709164800000000000LL,
                 "leap day");
    cr_assert_eq(t_of("\"2000-03-01T00:00:00Z\"", HP_TIME_RFC3339), 951868800000000000LL);
}

Test(http_poll_map, invalid_rfc3339_is_refused)
{
    const char *bad[] = {
        "\"2023-02-29T00:00:00Z\"", "\"2023-13-01T00:00:00Z\"",  "\"2023-11-14T24:00:00Z\"",
        "\"2023-11-14T22:13:20\"",  "\"2023-11-14T22:13:20.Z\"", "\"2023-11-14T22:13:20+0200\"",
        "\"2023-11-14X22:13:20Z\"", "\"2023-11-14T22:13:20Zx\"", "\"23-11-14T22:13:20Z\"",
        "\"2023-11-00T22:13:20Z\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(t_err(bad[i], HP_TIME_RFC3339), GD_EINVAL, "%s", bad[i]);
    cr_assert_eq(t_err("\"2300-01-01T00:00:00Z\"", HP_TIME_RFC3339), GD_ERANGE);
    cr_assert_eq(t_err("1700000000", HP_TIME_RFC3339), GD_ETYPE);
}

Test(http_poll_map, time_pointer_sets_the_timestamp_and_a_bad_one_drops_the_point)
{
    map_new("m");
    field("v", "/v", HP_FLOAT);
    cr_assert_eq(hp_map_set_time(&m, "/ts", HP_TIME_UNIX_MS, false), 0);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"v\":1,\"ts\":1600000000123}", &st, 0),
                     "m v=1 1600000000123000000\n");
    cr_assert_str_eq(apply("{\"v\":1}", &st, 0), "");
    cr_assert_eq(st.dropped[HP_DROP_BAD_TIME], 1);
    cr_assert(strstr(st.first, "time_pointer /ts is missing"), "%s", st.first);
    cr_assert_str_eq(apply("{\"v\":1,\"ts\":\"soon\"}", &st, 0), "");
    cr_assert_eq(st.dropped[HP_DROP_BAD_TIME], 1);
    cr_assert_str_eq(hp_drop_names[HP_DROP_BAD_TIME], "bad_time");
}

/* ---- arrays of readings ------------------------------------------------- */

static const char *readings_doc =
    "{\"serial\":\"X1\",\"ts\":\"2023-11-14T22:13:20Z\",\"readings\":["
    "{\"ch\":1,\"t\":21.5,\"at\":1700000001},"
    "{\"ch\":2,\"t\":\"n/a\",\"at\":1700000002},"
    "{\"ch\":3,\"t\":23,\"at\":1700000003},"
    "{\"ch\":4,\"at\":1700000004}]}";

Test(http_poll_map, readings_array_emits_one_point_per_item)
{
    map_new("r");
    cr_assert_eq(hp_map_set_points(&m, "/readings"), 0);
    cr_assert_eq(hp_map_set_time(&m, "/at", HP_TIME_UNIX_S, false), 0);
    tagp("serial", "/serial", true);
    tagp("channel", "/ch", false);
    required("temp", "/t", HP_FLOAT);
    struct hp_stats st;
    cr_assert_str_eq(apply(readings_doc, &st, 0),
                     "r,channel=1,serial=X1 temp=21.5 1700000001000000000\n"
                     "r,channel=3,serial=X1 temp=23 1700000003000000000\n");
    cr_assert_eq(st.points, 2);
    cr_assert_eq(st.dropped[HP_DROP_WRONG_TYPE], 1);
    cr_assert_eq(st.dropped[HP_DROP_MISSING_FIELD], 1);
    cr_assert(strstr(st.first, "reading 1: required field temp"), "%s", st.first);
}

Test(http_poll_map, readings_can_take_fields_and_time_from_the_document_root)
{
    map_new("r");
    cr_assert_eq(hp_map_set_points(&m, "/readings"), 0);
    cr_assert_eq(hp_map_set_time(&m, "/ts", HP_TIME_RFC3339, true), 0);
    field("at", "/at", HP_INT);
    field_full("serial", "/serial", HP_STRING, 1, 0, false, true);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"serial\":\"X1\",\"ts\":\"2023-11-14T22:13:20Z\",\"readings\":["
                           "{\"at\":1},{\"at\":2}]}",
                           &st, 0),
                     "r at=1i,serial=\"X1\" 1700000000000000000\n"
                     "r at=2i,serial=\"X1\" 1700000000000000000\n");
}

Test(http_poll_map, readings_of_scalars_use_the_empty_pointer)
{
    map_new("r");
    cr_assert_eq(hp_map_set_points(&m, "/v"), 0);
    field("v", "", HP_FLOAT);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"v\":[1.5,2.5]}", &st, 0),
                     "r v=1.5 1700000000000000000\nr v=2.5 1700000000000000000\n");
    cr_assert_str_eq(apply("{\"v\":[]}", &st, 0), "", "an empty array is no points");
    cr_assert_eq(ndropped(&st), 0);
}

Test(http_poll_map, a_missing_or_non_array_readings_pointer_fails_the_document)
{
    map_new("r");
    cr_assert_eq(hp_map_set_points(&m, "/readings"), 0);
    field("v", "/v", HP_FLOAT);
    struct hp_stats st;
    cr_assert_str_eq(apply("{\"data\":[]}", &st, GD_ENOENT), "");
    cr_assert(strstr(st.first, "points /readings is missing"), "%s", st.first);
    cr_assert_str_eq(apply("{\"readings\":{\"v\":1}}", &st, GD_ETYPE), "");
    cr_assert(strstr(st.first, "is an object, not an array"), "%s", st.first);
}
