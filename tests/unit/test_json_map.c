/* SPDX-License-Identifier: Apache-2.0 */
/* test_json_map.c - the http_listen input's /ingest mapping: JSON objects
 * and arrays to exact points (encoded as line protocol), measurement from a
 * key, tags, listed or automatic fields, every time format, and the errors
 * (with the item or the JSON line and column) that stop a document. */
#include "../../plugins/inputs/http_listen/json_map.h"
#include <criterion/criterion.h>
#include <gatherd/lineproto.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000123456789LL

TestSuite(json_map);

static char *tags_dev_site[] = {"device", "site"};
static char *fields_temp_rh[] = {"temp", "rh"};

/* Map @json with @m; the points as line protocol (malloc'd); *@rc the result. */
static char *run(const struct jm_map *m, const char *json, int *rc, struct jm_error *err,
                 size_t *added)
{
    gd_batch *b = gd_batch_new(4);
    struct jm_error e = {0};
    size_t n = 0;
    *rc = jm_map_json(b, json, strlen(json), m, NOW, &n, NULL, err ? err : &e);
    if (added)
        *added = n;
    cr_assert_eq(n, gd_batch_len(b));
    gd_buf out = {0};
    cr_assert_eq(gd_lp_encode_batch(&out, b, GD_PREC_NS, NULL), 0);
    gd_batch_unref(b);
    char *s = strdup(out.data ? out.data : "");
    gd_buf_free(&out);
    return s;
}

Test(json_map, object_with_listed_keys)
{
    struct jm_map m = {.measurement = "chamber",
                       .tag_keys = tags_dev_site,
                       .n_tag_keys = 2,
                       .field_keys = fields_temp_rh,
                       .n_field_keys = 2,
                       .time_key = "ts",
                       .time_format = JM_TIME_UNIX_MS};
    int rc;
    char *lp = run(&m,
                   "{\"device\":\"c17\",\"site\":\"lab a\",\"temp\":21.5,\"rh\":45,"
                   "\"other\":3,\"ts\":1714557600250}",
                   &rc, NULL, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(lp, "chamber,device=c17,site=lab\\ a temp=21.5,rh=45 1714557600250000000\n");
    free(lp);
}

Test(json_map, array_with_measurement_key_and_all_numeric_fields)
{
    struct jm_map m = {.measurement = "json",
                       .measurement_key = "type",
                       .tag_keys = tags_dev_site,
                       .n_tag_keys = 2,
                       .time_key = "ts",
                       .time_format = JM_TIME_UNIX};
    int rc;
    size_t added;
    char *lp = run(&m,
                   "[{\"type\":\"chamber\",\"device\":\"c1\",\"temp\":20,\"door\":true,"
                   "\"note\":\"skipped\",\"nested\":{\"a\":1},\"gone\":null,\"ts\":1700000000.5},"
                   " {\"device\":7,\"v\":-1.25e-3}]",
                   &rc, NULL, &added);
    cr_assert_eq(rc, 0);
    cr_assert_eq(added, 2);
    cr_assert_str_eq(lp, "chamber,device=c1 temp=20,door=true 1700000000500000000\n"
                         "json,device=7 v=-0.00125 1700000000123456789\n");
    free(lp);
}

Test(json_map, listed_string_and_bool_fields)
{
    static char *fields[] = {"state", "ok", "temp", "absent"};
    struct jm_map m = {.measurement = "m", .field_keys = fields, .n_field_keys = 4};
    int rc;
    char *lp = run(&m, "{\"state\":\"run \\\"A\\\"\",\"ok\":false,\"temp\":1e2}", &rc, NULL, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(lp, "m state=\"run \\\"A\\\"\",ok=false,temp=100 1700000000123456789\n");
    free(lp);
}

Test(json_map, time_formats)
{
    struct jm_map m = {.measurement = "m", .time_key = "t"};
    struct {
        int fmt;
        const char *json;
        const char *want;
    } cases[] = {
        {JM_TIME_UNIX_MS, "{\"v\":1,\"t\":1700000000001}", "m v=1 1700000000001000000\n"},
        {JM_TIME_UNIX, "{\"v\":1,\"t\":1700000000}", "m v=1 1700000000000000000\n"},
        {JM_TIME_UNIX_US, "{\"v\":1,\"t\":1700000000000002}", "m v=1 1700000000000002000\n"},
        {JM_TIME_UNIX_NS, "{\"v\":1,\"t\":1700000000000000003}", "m v=1 1700000000000000003\n"},
        {JM_TIME_RFC3339, "{\"v\":1,\"t\":\"2023-11-14T22:13:20.25Z\"}",
         "m v=1 1700000000250000000\n"},
        {JM_TIME_RFC3339, "{\"v\":1,\"t\":\"2023-11-15T00:13:20+02:00\"}",
         "m v=1 1700000000000000000\n"},
        {JM_TIME_UNIX, "{\"v\":1}", "m v=1 1700000000123456789\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        m.time_format = cases[i].fmt;
        int rc;
        char *lp = run(&m, cases[i].json, &rc, NULL, NULL);
        cr_assert_eq(rc, 0, "case %zu", i);
        cr_assert_str_eq(lp, cases[i].want, "case %zu", i);
        free(lp);
    }
}

Test(json_map, bad_time_stops_at_its_item_and_keeps_earlier_points)
{
    struct jm_map m = {.measurement = "m", .time_key = "t", .time_format = JM_TIME_RFC3339};
    int rc;
    struct jm_error err = {0};
    size_t added;
    char *lp = run(&m,
                   "[{\"v\":1,\"t\":\"2023-11-14T22:13:20Z\"},{\"v\":2,\"t\":\"yesterday\"},"
                   "{\"v\":3}]",
                   &rc, &err, &added);
    cr_assert_eq(rc, GD_EPARSE);
    cr_assert_eq(added, 1);
    cr_assert_eq(err.item, 2);
    cr_assert_str_eq(err.text, "item 2: \"t\": not an RFC 3339 timestamp");
    cr_assert_str_eq(lp, "m v=1 1700000000000000000\n");
    free(lp);
}

Test(json_map, errors_name_the_item_or_the_json_position)
{
    struct jm_map m = {.measurement = "m", .field_keys = fields_temp_rh, .n_field_keys = 2};
    int rc;
    struct jm_error err = {0};
    char *lp = run(&m, "{\"temp\": 1,\n \"rh\": tru}", &rc, &err, NULL);
    cr_assert_eq(rc, GD_EPARSE);
    cr_assert_eq(err.line, 2);
    cr_assert_gt(err.column, 0);
    cr_assert_str_eq(lp, "");
    free(lp);

    lp = run(&m, "[{\"temp\":1},{\"other\":2}]", &rc, &err, NULL);
    cr_assert_eq(rc, GD_EPARSE);
    cr_assert_str_eq(err.text, "item 2: no fields");
    cr_assert_str_eq(lp, "m temp=1 1700000000123456789\n");
    free(lp);

    lp = run(&m, "[{\"temp\":[1]}]", &rc, &err, NULL);
    cr_assert_eq(rc, GD_EPARSE);
    cr_assert_str_eq(err.text, "item 1: field \"temp\": objects and arrays cannot be fields");
    free(lp);

    lp = run(&m, "[1]", &rc, &err, NULL);
    cr_assert_eq(rc, GD_EPARSE);
    cr_assert_str_eq(err.text, "item 1: not a JSON object");
    free(lp);

    struct jm_map mk = {.measurement = "m", .measurement_key = "type"};
    lp = run(&mk, "{\"type\":5,\"v\":1}", &rc, &err, NULL);
    cr_assert_eq(rc, GD_EPARSE);
    cr_assert_str_eq(err.text, "item 1: \"type\": measurement must be a non-empty string");
    free(lp);

    struct jm_map mt = {.measurement = "m", .tag_keys = tags_dev_site, .n_tag_keys = 2};
    lp = run(&mt, "{\"device\":{\"a\":1},\"v\":1}", &rc, &err, NULL);
    cr_assert_eq(rc, GD_EPARSE);
    cr_assert_str_eq(err.text, "item 1: tag \"device\": not a non-empty scalar");
    cr_assert_str_eq(lp, "");
    free(lp);
}

Test(json_map, rfc3339_parser)
{
    int64_t ns;
    cr_assert_eq(gd_time_parse_rfc3339("1970-01-01T00:00:00Z", &ns), 0);
    cr_assert_eq(ns, 0);
    cr_assert_eq(gd_time_parse_rfc3339("2000-02-29T12:00:00.123456789123-00:30", &ns), 0);
    cr_assert_eq(ns, 951827400123456789LL);
    cr_assert_lt(gd_time_parse_rfc3339("2000-02-29T12:00:00", &ns), 0, "zone required");
    cr_assert_lt(gd_time_parse_rfc3339("2000-13-01T00:00:00Z", &ns), 0);
    cr_assert_lt(gd_time_parse_rfc3339("2000-01-01T00:00:00Zjunk", &ns), 0);
    cr_assert_lt(gd_time_parse_rfc3339("2000-01-01T00:00:00.Z", &ns), 0);
}
