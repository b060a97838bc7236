/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the modbus input's register decoding: any register
 * contents under any spec (format, word/byte order, type, bit, string
 * length, scale, offset) decode to a value or a clean error, and every
 * decoded value is something a point can hold. */
#include "mb_decode.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8 + 16)
        return 0;
    struct mb_spec spec = {
        .format = (enum mb_format)(data[0] % MB_NFORMATS),
        .order = (enum mb_order)(data[1] % MB_NORDERS),
        .as = (enum mb_as)(data[2] % MB_NAS),
        .bit = data[3] % 16,
        .length = 1 + data[4] % 32,
    };
    memcpy(&spec.scale, data + 8, sizeof(double));
    memcpy(&spec.offset, data + 16, sizeof(double));
    if (!isfinite(spec.scale))
        spec.scale = 1;
    if (!isfinite(spec.offset))
        spec.offset = 0;
    uint16_t regs[32] = {0};
    size_t avail = size - 24;
    memcpy(regs, data + 24, avail < sizeof(regs) ? avail : sizeof(regs));
    char strbuf[2 * 32 + 1];
    struct mb_value v;
    int rc = mb_decode_regs(&spec, regs, strbuf, &v);
    if (rc == 0) {
        if (v.type == MB_V_DOUBLE && !isfinite(v.v.f))
            abort();
        if (v.type == MB_V_STRING && (v.v.s.len > 2 * spec.length || strlen(v.v.s.ptr) != v.v.s.len))
            abort();
    } else if (rc != GD_ERANGE && rc != GD_EINVAL) {
        abort();
    }
    rc = mb_decode_bit(&spec, data[5] & 1, &v);
    if (rc == 0 && v.type == MB_V_DOUBLE && !isfinite(v.v.f))
        abort();
    return 0;
}
