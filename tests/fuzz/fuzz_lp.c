/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for gd_lp_parse(): any input must parse or fail cleanly
 * (no crash, no sanitizer report), a failure must leave only the points of
 * the lines before it, and whatever parsed must encode and parse back to
 * the same text. The first byte picks the precision. */
#include <gatherd/lineproto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    gd_precision prec = (gd_precision)(data[0] & 3);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    gd_batch *b = gd_batch_new(8);
    gd_lp_error err = {0};
    size_t added = 0;
    int rc = gd_lp_parse(b, text, len, prec, 1700000000123456789, &added, &err);
    if (rc != 0 && rc != GD_EPARSE)
        abort();
    if (added != gd_batch_len(b))
        abort();
    if (rc == GD_EPARSE && (!err.reason || err.line == 0 || err.column == 0 || err.offset > len))
        abort();

    gd_buf once = {0}, twice = {0};
    size_t skipped = 0;
    if (gd_lp_encode_batch(&once, b, GD_PREC_NS, &skipped) < 0)
        abort();
    gd_batch *c = gd_batch_new(8);
    if (once.len && gd_lp_parse(c, once.data, once.len, GD_PREC_NS, 0, NULL, &err) != 0) {
        fprintf(stderr, "re-parse failed at %zu:%zu (%s): %s\n", err.line, err.column, err.reason,
                once.data);
        abort();
    }
    if (gd_lp_encode_batch(&twice, c, GD_PREC_NS, NULL) < 0 || once.len != twice.len ||
        (once.len && memcmp(once.data, twice.data, once.len) != 0)) {
        fprintf(stderr, "round trip differs:\n%s---\n%s", once.data ? once.data : "",
                twice.data ? twice.data : "");
        abort();
    }
    gd_buf_free(&once);
    gd_buf_free(&twice);
    gd_batch_unref(b);
    gd_batch_unref(c);
    return 0;
}
