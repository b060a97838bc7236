/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the JSON-to-points mappings: the http_listen
 * input's /ingest (jm_map_json) and the http_poll input's JSON pointers
 * (hp_map_apply) over any document. Both must map or refuse cleanly, and
 * every point they produce must encode as line protocol. */
#include "hp_map.h"
#include "json_map.h"
#include <gatherd/lineproto.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_encodes(const gd_batch *b)
{
    gd_buf out = {0};
    size_t skipped = 0;
    if (gd_lp_encode_batch(&out, b, GD_PREC_NS, &skipped) < 0)
        abort();
    gd_buf_free(&out);
}

static hp_map *poll_map(void)
{
    static hp_map m;
    static bool made;
    if (made)
        return &m;
    made = true;
    if (hp_map_init(&m, "dev") < 0)
        abort();
    struct hp_field_cfg f1 = {.name = "t", .pointer = "/s/0/v", .type = HP_FLOAT, .scale = 0.1};
    struct hp_field_cfg f2 = {.name = "n", .pointer = "/n", .type = HP_INT, .scale = 1};
    struct hp_field_cfg f3 = {.name = "ok", .pointer = "/a~1b", .type = HP_BOOL, .scale = 1};
    struct hp_field_cfg f4 = {.name = "txt", .pointer = "/x", .type = HP_STRING, .scale = 1,
                              .required = true};
    struct hp_tag_cfg t1 = {.name = "id", .pointer = "/id"};
    if (hp_map_add_field(&m, &f1) < 0 || hp_map_add_field(&m, &f2) < 0 ||
        hp_map_add_field(&m, &f3) < 0 || hp_map_add_field(&m, &f4) < 0 ||
        hp_map_add_tag_pointer(&m, &t1) < 0 || hp_map_set_points(&m, "/r") < 0 ||
        hp_map_set_time(&m, "/ts", HP_TIME_AUTO, false) < 0)
        abort();
    return &m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *const tags[] = {"device", "site"};
    static char *const fields[] = {"temp", "note"};
    struct jm_map jm = {.measurement = "m", .measurement_key = "type", .tag_keys = tags,
                        .n_tag_keys = 2, .field_keys = data[0] & 1 ? fields : NULL,
                        .n_field_keys = data[0] & 1 ? 2 : 0, .time_key = "ts",
                        .time_format = size ? data[0] % 5 : 0};
    gd_batch *b = gd_batch_new(8);
    size_t added = 0, total = 0;
    struct jm_error err;
    int rc = jm_map_json(b, (const char *)data, size, &jm, 1700000000000000000, &added, &total,
                         &err);
    if ((rc != 0 && rc != GD_EPARSE && rc != GD_ENOMEM) || added != gd_batch_len(b))
        abort();
    check_encodes(b);
    gd_batch_unref(b);

    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (doc) {
        gd_batch *c = gd_batch_new(8);
        struct hp_stats st;
        hp_map_apply(poll_map(), doc, 1700000000000000000, c, &st);
        if (st.points != gd_batch_len(c))
            abort();
        check_encodes(c);
        gd_batch_unref(c);
        json_decref(doc);
    }
    return 0;
}
