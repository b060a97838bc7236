/* SPDX-License-Identifier: Apache-2.0 */
/* mb_decode.c - register decoding (see mb_decode.h for the orders). */
#include "mb_decode.h"
#include <math.h>
#include <string.h>

const char *const mb_kind_names[] = {"coil", "discrete", "holding", "input", NULL};
const char *const mb_format_names[] = {"bit",    "int16",   "uint16",  "int32",  "uint32", "int64",
                                       "uint64", "float32", "float64", "string", NULL};
const char *const mb_order_names[] = {"ABCD", "DCBA", "BADC", "CDAB", NULL};
const char *const mb_as_names[] = {"auto", "double", "int", "uint", "bool", NULL};

/* 2^63 and 2^64 as doubles: the first values that no longer fit. */
#define TWO63 9223372036854775808.0
#define TWO64 18446744073709551616.0

bool mb_kind_is_bit(enum mb_kind kind)
{
    return kind == MB_COIL || kind == MB_DISCRETE;
}

unsigned mb_format_regs(enum mb_format format, unsigned length)
{
    switch (format) {
    case MB_INT32:
    case MB_UINT32:
    case MB_FLOAT32:
        return 2;
    case MB_INT64:
    case MB_UINT64:
    case MB_FLOAT64:
        return 4;
    case MB_STRING:
        return length;
    default:
        return 1;
    }
}

static bool low_word_first(enum mb_order o)
{
    return o == MB_CDAB || o == MB_DCBA;
}

static bool bytes_swapped(enum mb_order o)
{
    return o == MB_BADC || o == MB_DCBA;
}

static uint16_t swap16(uint16_t r)
{
    return (uint16_t)((r >> 8) | (r << 8));
}

uint64_t mb_gather(const uint16_t *regs, unsigned nregs, enum mb_order order)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < nregs; i++) {
        uint16_t r = regs[low_word_first(order) ? nregs - 1 - i : i];
        v = (v << 16) | (bytes_swapped(order) ? swap16(r) : r);
    }
    return v;
}

size_t mb_string(const uint16_t *regs, unsigned nregs, enum mb_order order, char *buf)
{
    size_t n = 0;
    for (unsigned i = 0; i < nregs; i++) {
        uint16_t r = bytes_swapped(order) ? swap16(regs[i]) : regs[i];
        buf[n++] = (char)(r >> 8);
        buf[n++] = (char)(r & 0xff);
    }
    buf[n] = '\0';
    n = strlen(buf);
    while (n > 0 && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
            buf[i] = '?';
    return n;
}

/* The raw value of a numeric format, as the widest type that holds it. */
struct raw {
    enum { R_INT, R_UINT, R_DOUBLE } t;
    int64_t i;
    uint64_t u;
    double d;
};

static struct raw raw_of(const struct mb_spec *spec, const uint16_t *regs)
{
    struct raw r = {0};
    uint64_t g = mb_gather(regs, mb_format_regs(spec->format, spec->length), spec->order);
    switch (spec->format) {
    case MB_BIT:
        r.t = R_UINT;
        r.u = (regs[0] >> spec->bit) & 1u;
        break;
    case MB_INT16:
        r.t = R_INT;
        r.i = (int16_t)(uint16_t)g;
        break;
    case MB_INT32:
        r.t = R_INT;
        r.i = (int32_t)(uint32_t)g;
        break;
    case MB_INT64:
        r.t = R_INT;
        r.i = (int64_t)g;
        break;
    case MB_FLOAT32: {
        uint32_t b = (uint32_t)g;
        float f;
        memcpy(&f, &b, sizeof(f));
        r.t = R_DOUBLE;
        r.d = f;
        break;
    }
    case MB_FLOAT64:
        r.t = R_DOUBLE;
        memcpy(&r.d, &g, sizeof(r.d));
        break;
    default: /* uint16, uint32, uint64 */
        r.t = R_UINT;
        r.u = g;
        break;
    }
    return r;
}

static double raw_double(const struct raw *r)
{
    return r->t == R_INT ? (double)r->i : r->t == R_UINT ? (double)r->u : r->d;
}

static bool raw_is_zero(const struct raw *r)
{
    return r->t == R_INT ? r->i == 0 : r->t == R_UINT ? r->u == 0 : r->d == 0.0;
}

static bool unscaled(const struct mb_spec *spec)
{
    return spec->scale == 1.0 && spec->offset == 0.0;
}

static int to_int(const struct mb_spec *spec, const struct raw *r, struct mb_value *out)
{
    out->type = MB_V_INT;
    if (unscaled(spec) && r->t == R_INT) {
        out->v.i = r->i;
        return 0;
    }
    if (unscaled(spec) && r->t == R_UINT) {
        if (r->u > (uint64_t)INT64_MAX)
            return GD_ERANGE;
        out->v.i = (int64_t)r->u;
        return 0;
    }
    double d = nearbyint(raw_double(r) * spec->scale + spec->offset);
    if (!(d >= -TWO63 && d < TWO63))
        return GD_ERANGE;
    out->v.i = (int64_t)d;
    return 0;
}

static int to_uint(const struct mb_spec *spec, const struct raw *r, struct mb_value *out)
{
    out->type = MB_V_UINT;
    if (unscaled(spec) && r->t == R_UINT) {
        out->v.u = r->u;
        return 0;
    }
    if (unscaled(spec) && r->t == R_INT) {
        if (r->i < 0)
            return GD_ERANGE;
        out->v.u = (uint64_t)r->i;
        return 0;
    }
    double d = nearbyint(raw_double(r) * spec->scale + spec->offset);
    if (!(d >= 0 && d < TWO64))
        return GD_ERANGE;
    out->v.u = (uint64_t)d;
    return 0;
}

static int finish(const struct mb_spec *spec, const struct raw *r, enum mb_as as,
                  struct mb_value *out)
{
    switch (as) {
    case MB_AS_INT:
        return to_int(spec, r, out);
    case MB_AS_UINT:
        return to_uint(spec, r, out);
    case MB_AS_BOOL:
        out->type = MB_V_BOOL;
        out->v.b = !raw_is_zero(r);
        return 0;
    default: {
        double d = raw_double(r) * spec->scale + spec->offset;
        if (!isfinite(d))
            return GD_ERANGE;
        out->type = MB_V_DOUBLE;
        out->v.f = d;
        return 0;
    }
    }
}

int mb_decode_regs(const struct mb_spec *spec, const uint16_t *regs, char *strbuf,
                   struct mb_value *out)
{
    if (spec->format >= MB_NFORMATS || spec->order >= MB_NORDERS || spec->as >= MB_NAS)
        return GD_EINVAL;
    if (spec->format == MB_STRING) {
        if (spec->as != MB_AS_AUTO || spec->length == 0)
            return GD_EINVAL;
        out->type = MB_V_STRING;
        out->v.s.len = mb_string(regs, spec->length, spec->order, strbuf);
        out->v.s.ptr = strbuf;
        return 0;
    }
    if (spec->format == MB_BIT && spec->bit > 15)
        return GD_EINVAL;
    struct raw r = raw_of(spec, regs);
    enum mb_as as = spec->as;
    if (as == MB_AS_AUTO)
        as = spec->format == MB_BIT ? MB_AS_BOOL : MB_AS_DOUBLE;
    return finish(spec, &r, as, out);
}

int mb_decode_bit(const struct mb_spec *spec, bool bit, struct mb_value *out)
{
    if (spec->format != MB_BIT || spec->as >= MB_NAS)
        return GD_EINVAL;
    struct raw r = {.t = R_UINT, .u = bit ? 1u : 0u};
    return finish(spec, &r, spec->as == MB_AS_AUTO ? MB_AS_BOOL : spec->as, out);
}
