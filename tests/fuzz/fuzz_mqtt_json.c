/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the mqtt input's JSON payload mapping (Telegraf
 * style: flattening, tag and field keys, time formats): any payload maps or
 * is refused cleanly, and every point it makes encodes as line protocol. */
#include "mq_json.h"
#include <gatherd/lineproto.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *tags[] = {"device", "site"};
    static char *fields[] = {"temp", "note"};
    struct mq_json_map m = {
        .measurement = "m",
        .measurement_key = "type",
        .tag_keys = tags,
        .n_tag_keys = 2,
        .field_keys = size && (data[0] & 1) ? fields : NULL,
        .n_field_keys = size && (data[0] & 1) ? 2 : 0,
        .time_key = "ts",
        .time_format = size ? data[0] % 5 : 0,
    };
    gd_batch *b = gd_batch_new(8);
    struct mq_json_result r;
    int rc = mq_json_map(b, (const char *)data, size, &m, 1700000000000000000, &r);
    if (rc != 0 && rc != GD_EPARSE && rc != GD_ENOMEM)
        abort();
    gd_buf out = {0};
    if (gd_lp_encode_batch(&out, b, GD_PREC_NS, NULL) < 0)
        abort();
    gd_buf_free(&out);
    gd_batch_unref(b);
    return 0;
}
