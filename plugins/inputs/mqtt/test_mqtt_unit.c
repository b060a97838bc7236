/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the mqtt input's payload and topic mapping: JSON payloads
 * to points (mq_json.c) and topic_tags patterns (mq_topic.c), checked as
 * exact line protocol. */
#include "mq_json.h"
#include "mq_topic.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define NOW 1700000000000000000LL

/* The batch as line protocol (static buffer). */
static const char *lp(const gd_batch *b)
{
    static char out[4096];
    gd_buf buf = {0};
    cr_assert_eq(gd_lp_encode_batch(&buf, b, GD_PREC_NS, NULL), 0);
    snprintf(out, sizeof(out), "%s", buf.data ? buf.data : "");
    gd_buf_free(&buf);
    return out;
}

static const struct mq_json_map plain = {.measurement = "m", .time_format = MQ_TIME_UNIX};

static gd_batch *map(const char *json, const struct mq_json_map *m, int want_rc,
                     struct mq_json_result *r)
{
    gd_batch *b = gd_batch_new(8);
    int rc = mq_json_map(b, json, strlen(json), m, NOW, r);
    cr_assert_eq(rc, want_rc, "%s: rc %d (%s)", json, rc, r->why);
    return b;
}

Test(mq_json, numbers_and_booleans_become_fields_nested_flattened)
{
    struct mq_json_result r;
    gd_batch *b = map("{\"t\": 21, \"ok\": true, \"s\": \"x\", \"n\": null,"
                      " \"env\": {\"rh\": 45.5, \"v\": [1, 2]}}",
                      &plain, 0, &r);
    cr_assert_str_eq(lp(b), "m t=21,ok=true,env_rh=45.5,env_v_0=1,env_v_1=2 1700000000000000000\n");
    cr_assert_eq(r.added, 1);
    cr_assert_eq(r.bad, 0);
    gd_batch_unref(b);
}

Test(mq_json, tag_keys_field_keys_and_measurement_key)
{
    char *tags[] = {"site", "n", "on"};
    char *fields[] = {"state", "t"};
    struct mq_json_map m = {.measurement = "dflt",
                            .measurement_key = "kind",
                            .tag_keys = tags,
                            .n_tag_keys = 3,
                            .field_keys = fields,
                            .n_field_keys = 2};
    struct mq_json_result r;
    gd_batch *b = map("[{\"kind\": \"env\", \"site\": \"lab a\", \"n\": 7, \"on\": false,"
                      " \"state\": \"run\", \"t\": 1.5, \"other\": 3},"
                      " {\"kind\": 5, \"t\": 2}]",
                      &m, 0, &r);
    cr_assert_str_eq(lp(b),
                     "env,n=7,on=false,site=lab\\ a state=\"run\",t=1.5 1700000000000000000\n"
                     "dflt t=2 1700000000000000000\n");
    gd_batch_unref(b);
}

Test(mq_json, time_formats)
{
    static const struct {
        int format;
        const char *value;
        long long ns;
    } cases[] = {
        {MQ_TIME_UNIX, "1714557600", 1714557600000000000LL},
        {MQ_TIME_UNIX, "1714557600.25", 1714557600250000000LL},
        {MQ_TIME_UNIX, "\"1714557600\"", 1714557600000000000LL},
        {MQ_TIME_UNIX, "\"1714557600.123456789\"", 1714557600123456789LL},
        {MQ_TIME_UNIX_MS, "1714557600250", 1714557600250000000LL},
        {MQ_TIME_UNIX_MS, "\"1714557600250.5\"", 1714557600250500000LL},
        {MQ_TIME_UNIX_US, "1714557600250001", 1714557600250001000LL},
        {MQ_TIME_UNIX_NS, "1714557600250000001", 1714557600250000001LL},
        {MQ_TIME_RFC3339, "\"2024-05-01T12:00:00.25+02:00\"", 1714557600250000000LL},
        {MQ_TIME_RFC3339, "\"2024-05-01 10:00:00Z\"", 1714557600000000000LL},
        {MQ_TIME_RFC3339, "\"2024-02-29T00:00:00.123456789123Z\"", 1709164800123456789LL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mq_json_map m = {
            .measurement = "m", .time_key = "ts", .time_format = cases[i].format};
        char json[128], want[128];
        snprintf(json, sizeof(json), "{\"v\": 1, \"ts\": %s}", cases[i].value);
        snprintf(want, sizeof(want), "m v=1 %lld\n", cases[i].ns);
        struct mq_json_result r;
        gd_batch *b = map(json, &m, 0, &r);
        cr_assert_str_eq(lp(b), want, "case %zu", i);
        gd_batch_unref(b);
    }
}

Test(mq_json, bad_objects_are_dropped_the_others_kept)
{
    struct mq_json_map m = {.measurement = "m", .time_key = "ts", .time_format = MQ_TIME_RFC3339};
    struct mq_json_result r;
    gd_batch *b = map("[{\"v\": 1}, 7, {\"v\": 2, \"ts\": \"2023-02-29T00:00:00Z\"},"
                      " {\"s\": \"only a string\"}, {\"v\": 3}]",
                      &m, 0, &r);
    cr_assert_str_eq(lp(b), "m v=1 1700000000000000000\nm v=3 1700000000000000000\n");
    cr_assert_eq(r.added, 2);
    cr_assert_eq(r.bad, 3);
    cr_assert_str_eq(r.why, "item 2: not an object");
    gd_batch_unref(b);
}

Test(mq_json, not_json_says_where)
{
    struct mq_json_result r;
    gd_batch *b = map("{\"v\": 1,\n \"w\": }", &plain, GD_EPARSE, &r);
    cr_assert_eq(gd_batch_len(b), 0);
    cr_assert_not_null(strstr(r.why, "line 2 column"), "%s", r.why);
    gd_batch_unref(b);
    b = map("42", &plain, GD_EPARSE, &r);
    cr_assert_str_eq(r.why, "neither an object nor an array of objects");
    gd_batch_unref(b);
}

Test(mq_json, rfc3339_refuses_malformed_dates)
{
    static const char *bad[] = {
        "2024-05-01T12:00:00",   "2024-13-01T00:00:00Z",     "2024-04-31T00:00:00Z",
        "2023-02-29T00:00:00Z",  "2024-05-01T24:00:00Z",     "2024-05-01T12:00:00.Z",
        "2024-05-01T12:00:00+2", "2024-05-01T12:00:00Zjunk", "9999-05-01T12:00:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ns;
        cr_assert_lt(gd_time_parse_rfc3339(bad[i], &ns), 0, "%s", bad[i]);
    }
}

/* ---- topic patterns ---------------------------------------------------- */

static const char *tagged(const char *pattern, const char *topic)
{
    struct mq_pattern p = {0};
    const char *why = NULL;
    cr_assert_eq(mq_pattern_compile(&p, pattern, &why), 0, "%s: %s", pattern, why);
    gd_batch *b = gd_batch_new(2);
    gd_point *pt = gd_batch_add(b, "m", 1);
    gd_point_i64(pt, "v", 1);
    mq_pattern_apply(&p, topic, b, 0);
    const char *out = lp(b);
    gd_batch_unref(b);
    mq_pattern_free(&p);
    return out;
}

Test(mq_topic, levels_become_tags)
{
    cr_assert_str_eq(tagged("chambers/{device}/telemetry", "chambers/c17/telemetry"),
                     "m,device=c17 v=1i 1\n");
    cr_assert_str_eq(tagged("site/{site}/+/{sensor}/#", "site/lab-a/gw2/t1/raw/x"),
                     "m,sensor=t1,site=lab-a v=1i 1\n");
    cr_assert_str_eq(tagged("+/{b}/#", "a/b"), "m,b=b v=1i 1\n");
}

Test(mq_topic, a_topic_that_does_not_match_gets_no_tags)
{
    cr_assert_str_eq(tagged("chambers/{device}/telemetry", "chambers/c17/status"), "m v=1i 1\n");
    cr_assert_str_eq(tagged("chambers/{device}/telemetry", "chambers/c17"), "m v=1i 1\n");
    cr_assert_str_eq(tagged("chambers/{device}", "chambers/c17/x"), "m v=1i 1\n");
    /* An empty level gives no tag (tags cannot be empty). */
    cr_assert_str_eq(tagged("a/{x}/b", "a//b"), "m v=1i 1\n");
}

Test(mq_topic, malformed_patterns_are_refused)
{
    static const char *bad[] = {"a/#/b", "a/{}/b", "a/x{y}/b", "a/b+/c", "a/#x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mq_pattern p = {0};
        const char *why = NULL;
        cr_assert_eq(mq_pattern_compile(&p, bad[i], &why), GD_ECONFIG, "%s", bad[i]);
        cr_assert_not_null(why);
        mq_pattern_free(&p);
    }
}
