/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the spool's record decoder (gd__batch_deserialize):
 * what it reads back from a damaged disk must be refused cleanly or be a
 * batch that serializes to the same bytes it came from. */
#include "spool.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gd_batch *b = NULL;
    int rc = gd__batch_deserialize(data, size, &b);
    if (rc != 0) {
        if (rc != GD_EPARSE && rc != GD_ENOMEM)
            abort();
        return 0;
    }
    gd_buf out = {0};
    if (gd__batch_serialize(b, &out) != 0)
        abort();
    /* Tags are kept sorted and deduplicated, so compare a second round. */
    gd_batch *c = NULL;
    if (gd__batch_deserialize(out.data, out.len, &c) != 0)
        abort();
    gd_buf again = {0};
    if (gd__batch_serialize(c, &again) != 0 || again.len != out.len ||
        memcmp(again.data, out.data, out.len) != 0)
        abort();
    gd_buf_free(&out);
    gd_buf_free(&again);
    gd_batch_unref(b);
    gd_batch_unref(c);
    return 0;
}
