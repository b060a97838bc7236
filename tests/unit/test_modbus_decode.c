/* SPDX-License-Identifier: Apache-2.0 */
/* test_modbus_decode.c - the modbus input's register decoding (every format
 * in every word/byte order, scale, offset, types), its request coalescing
 * plan (gap bridging, protocol limits) and its endpoint URLs. */
#include "../../plugins/inputs/modbus/mb_decode.h"
#include "../../plugins/inputs/modbus/mb_plan.h"
#include "../../plugins/inputs/modbus/mb_url.h"
#include <criterion/criterion.h>
#include <string.h>

/* Registers as a device sends them: wire byte i is canonical big-endian
 * byte perm[order][i] (ABCD, DCBA, BADC, CDAB), written out by hand. */
static const int perm32[4][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 0, 3, 2}, {2, 3, 0, 1}};
static const int perm64[4][8] = {{0, 1, 2, 3, 4, 5, 6, 7},
                                 {7, 6, 5, 4, 3, 2, 1, 0},
                                 {1, 0, 3, 2, 5, 4, 7, 6},
                                 {6, 7, 4, 5, 2, 3, 0, 1}};
static const int perm16[4][2] = {{0, 1}, {1, 0}, {1, 0}, {0, 1}};

static void encode(uint64_t canon, int nbytes, int order, uint16_t *regs)
{
    uint8_t be[8], wire[8];
    for (int i = 0; i < nbytes; i++)
        be[i] = (uint8_t)(canon >> (8 * (nbytes - 1 - i)));
    for (int i = 0; i < nbytes; i++)
        wire[i] = be[nbytes == 2   ? perm16[order][i]
                     : nbytes == 4 ? perm32[order][i]
                                   : perm64[order][i]];
    for (int i = 0; i < nbytes / 2; i++)
        regs[i] = (uint16_t)(wire[2 * i] << 8 | wire[2 * i + 1]);
}

static struct mb_value decode(enum mb_format fmt, int order, enum mb_as as, const uint16_t *regs)
{
    struct mb_spec spec = {.format = fmt, .order = (enum mb_order)order, .as = as, .scale = 1};
    struct mb_value v;
    char buf[64];
    cr_assert_eq(mb_decode_regs(&spec, regs, buf, &v), 0, "%s %s", mb_format_names[fmt],
                 mb_order_names[order]);
    return v;
}

Test(decode, wire_layout_of_each_order_matches_the_documented_table)
{
    /* 0xAB54A98CEB1F0AD2 = 12345678901234567890 */
    static const uint16_t want[4][4] = {{0xAB54, 0xA98C, 0xEB1F, 0x0AD2},
                                        {0xD20A, 0x1FEB, 0x8CA9, 0x54AB},
                                        {0x54AB, 0x8CA9, 0x1FEB, 0xD20A},
                                        {0x0AD2, 0xEB1F, 0xA98C, 0xAB54}};
    for (int o = 0; o < 4; o++) {
        uint16_t regs[4];
        encode(0xAB54A98CEB1F0AD2ull, 8, o, regs);
        cr_assert_arr_eq(regs, want[o], sizeof(regs), "%s", mb_order_names[o]);
        cr_expect_eq(mb_gather(want[o], 4, (enum mb_order)o), 0xAB54A98CEB1F0AD2ull, "%s",
                     mb_order_names[o]);
    }
    const uint16_t cdab32[2] = {0xE979, 0x42F6}; /* 123.456f = 0x42F6E979 */
    cr_expect_eq(mb_gather(cdab32, 2, MB_CDAB), 0x42F6E979u);
    const uint16_t badc32[2] = {0xF642, 0x79E9};
    cr_expect_eq(mb_gather(badc32, 2, MB_BADC), 0x42F6E979u);
}

Test(decode, every_integer_format_in_every_order_is_exact)
{
    for (int o = 0; o < 4; o++) {
        uint16_t r[4];
        encode((uint16_t)(int16_t)-12345, 2, o, r);
        cr_expect_eq(decode(MB_INT16, o, MB_AS_INT, r).v.i, -12345);
        cr_expect_eq(decode(MB_INT16, o, MB_AS_AUTO, r).v.f, -12345.0);
        encode(54321, 2, o, r);
        cr_expect_eq(decode(MB_UINT16, o, MB_AS_UINT, r).v.u, 54321u);
        cr_expect_eq(decode(MB_UINT16, o, MB_AS_AUTO, r).v.f, 54321.0);
        encode((uint32_t)(int32_t)-123456789, 4, o, r);
        cr_expect_eq(decode(MB_INT32, o, MB_AS_INT, r).v.i, -123456789);
        cr_expect_eq(decode(MB_INT32, o, MB_AS_DOUBLE, r).v.f, -123456789.0);
        encode(3456789012u, 4, o, r);
        cr_expect_eq(decode(MB_UINT32, o, MB_AS_UINT, r).v.u, 3456789012u);
        cr_expect_eq(decode(MB_UINT32, o, MB_AS_INT, r).v.i, 3456789012);
        encode((uint64_t)-1234567890123456789LL, 8, o, r);
        cr_expect_eq(decode(MB_INT64, o, MB_AS_INT, r).v.i, -1234567890123456789LL);
        cr_expect_eq(decode(MB_INT64, o, MB_AS_AUTO, r).v.f, (double)-1234567890123456789LL);
        encode(12345678901234567890ull, 8, o, r);
        cr_expect_eq(decode(MB_UINT64, o, MB_AS_UINT, r).v.u, 12345678901234567890ull);
        cr_expect_eq(decode(MB_UINT64, o, MB_AS_AUTO, r).v.f, (double)12345678901234567890ull);
    }
}

Test(decode, every_float_format_in_every_order_is_exact)
{
    float f32 = 123.456f;
    double f64 = -98765.4321;
    uint32_t b32;
    uint64_t b64;
    memcpy(&b32, &f32, 4);
    memcpy(&b64, &f64, 8);
    cr_assert_eq(b64, 0xC0F81CD6E9E1B08Aull);
    for (int o = 0; o < 4; o++) {
        uint16_t r[4];
        encode(b32, 4, o, r);
        struct mb_value v = decode(MB_FLOAT32, o, MB_AS_AUTO, r);
        cr_expect_eq(v.type, MB_V_DOUBLE);
        cr_expect_eq(v.v.f, (double)123.456f, "%s: %.17g", mb_order_names[o], v.v.f);
        encode(b64, 8, o, r);
        cr_expect_eq(decode(MB_FLOAT64, o, MB_AS_AUTO, r).v.f, -98765.4321);
    }
}

Test(decode, sixteen_bit_formats_use_only_the_byte_order)
{
    const uint16_t r[1] = {0x1234};
    cr_expect_eq(decode(MB_UINT16, MB_ABCD, MB_AS_UINT, r).v.u, 0x1234u);
    cr_expect_eq(decode(MB_UINT16, MB_CDAB, MB_AS_UINT, r).v.u, 0x1234u);
    cr_expect_eq(decode(MB_UINT16, MB_BADC, MB_AS_UINT, r).v.u, 0x3412u);
    cr_expect_eq(decode(MB_UINT16, MB_DCBA, MB_AS_UINT, r).v.u, 0x3412u);
}

Test(decode, scale_and_offset_give_a_double)
{
    const uint16_t r[1] = {215};
    struct mb_spec spec = {.format = MB_INT16, .as = MB_AS_AUTO, .scale = 0.1, .offset = -1.5};
    struct mb_value v;
    cr_assert_eq(mb_decode_regs(&spec, r, NULL, &v), 0);
    cr_expect_eq(v.type, MB_V_DOUBLE);
    cr_expect_eq(v.v.f, 215 * 0.1 - 1.5);
}

Test(decode, scaled_integer_types_round_and_check_range)
{
    const uint16_t r[1] = {215};
    struct mb_spec spec = {.format = MB_UINT16, .as = MB_AS_INT, .scale = 0.1};
    struct mb_value v;
    cr_assert_eq(mb_decode_regs(&spec, r, NULL, &v), 0);
    cr_expect_eq(v.type, MB_V_INT);
    cr_expect_eq(v.v.i, 22); /* 21.5 rounds to even */
    spec.as = MB_AS_UINT;
    spec.offset = -100;
    cr_expect_eq(mb_decode_regs(&spec, r, NULL, &v), GD_ERANGE);
    const uint16_t big[4] = {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF};
    struct mb_spec s64 = {.format = MB_UINT64, .as = MB_AS_INT, .scale = 1};
    cr_expect_eq(mb_decode_regs(&s64, big, NULL, &v), GD_ERANGE);
    s64.format = MB_INT64; /* -1 */
    s64.as = MB_AS_UINT;
    cr_expect_eq(mb_decode_regs(&s64, big, NULL, &v), GD_ERANGE);
    s64.as = MB_AS_INT;
    cr_assert_eq(mb_decode_regs(&s64, big, NULL, &v), 0);
    cr_expect_eq(v.v.i, -1);
}

Test(decode, nan_and_infinity_are_refused)
{
    const uint16_t nan32[2] = {0x7FC0, 0x0000};
    const uint16_t inf32[2] = {0x7F80, 0x0000};
    struct mb_spec spec = {.format = MB_FLOAT32, .as = MB_AS_AUTO, .scale = 1};
    struct mb_value v;
    cr_expect_eq(mb_decode_regs(&spec, nan32, NULL, &v), GD_ERANGE);
    cr_expect_eq(mb_decode_regs(&spec, inf32, NULL, &v), GD_ERANGE);
    spec.as = MB_AS_INT;
    cr_expect_eq(mb_decode_regs(&spec, inf32, NULL, &v), GD_ERANGE);
}

Test(decode, bits_of_a_register_and_coils)
{
    const uint16_t r[1] = {0x8005};
    struct mb_spec spec = {.format = MB_BIT, .as = MB_AS_AUTO, .scale = 1};
    struct mb_value v;
    for (unsigned b = 0; b < 16; b++) {
        spec.bit = b;
        cr_assert_eq(mb_decode_regs(&spec, r, NULL, &v), 0);
        cr_expect_eq(v.type, MB_V_BOOL);
        cr_expect_eq(v.v.b, b == 0 || b == 2 || b == 15, "bit %u", b);
    }
    spec.bit = 16;
    cr_expect_eq(mb_decode_regs(&spec, r, NULL, &v), GD_EINVAL);
    spec.bit = 0;
    cr_assert_eq(mb_decode_bit(&spec, true, &v), 0);
    cr_expect(v.type == MB_V_BOOL && v.v.b);
    spec.as = MB_AS_DOUBLE;
    spec.scale = 100;
    cr_assert_eq(mb_decode_bit(&spec, true, &v), 0);
    cr_expect(v.type == MB_V_DOUBLE && v.v.f == 100.0);
    spec.format = MB_UINT16;
    cr_expect_eq(mb_decode_bit(&spec, true, &v), GD_EINVAL);
}

Test(decode, strings_in_both_byte_orders)
{
    const uint16_t ab[4] = {('C' << 8) | 'H', ('-' << 8) | '7', (' ' << 8) | ' ', 0};
    const uint16_t ba[4] = {('H' << 8) | 'C', ('7' << 8) | '-', (' ' << 8) | ' ', 0};
    char buf[9];
    cr_expect_eq(mb_string(ab, 4, MB_ABCD, buf), 4);
    cr_expect_str_eq(buf, "CH-7");
    cr_expect_eq(mb_string(ba, 4, MB_BADC, buf), 4);
    cr_expect_str_eq(buf, "CH-7");
    cr_expect_eq(mb_string(ba, 4, MB_DCBA, buf), 4, "DCBA strings swap bytes like BADC");
    const uint16_t ctl[2] = {('A' << 8) | 0x07, 0xC3A9};
    mb_string(ctl, 2, MB_ABCD, buf);
    cr_expect_str_eq(buf, "A???", "only printable ASCII passes");
    struct mb_spec spec = {.format = MB_STRING, .length = 4, .as = MB_AS_AUTO, .scale = 1};
    struct mb_value v;
    cr_assert_eq(mb_decode_regs(&spec, ab, buf, &v), 0);
    cr_expect_eq(v.type, MB_V_STRING);
    cr_expect_eq(v.v.s.len, 4);
    spec.as = MB_AS_INT;
    cr_expect_eq(mb_decode_regs(&spec, ab, buf, &v), GD_EINVAL);
}

Test(decode, register_counts_per_format)
{
    cr_expect_eq(mb_format_regs(MB_BIT, 0), 1);
    cr_expect_eq(mb_format_regs(MB_INT16, 0), 1);
    cr_expect_eq(mb_format_regs(MB_FLOAT32, 0), 2);
    cr_expect_eq(mb_format_regs(MB_UINT64, 0), 4);
    cr_expect_eq(mb_format_regs(MB_STRING, 10), 10);
}

/* ---- plan --------------------------------------------------------------- */

static const struct mb_limits lim8 = {.max_gap = 8, .max_regs = 125, .max_bits = 2000};

static void describe_is(const struct mb_plan *p, const char *want)
{
    char buf[512];
    mb_plan_describe(p, buf, sizeof(buf));
    cr_expect_str_eq(buf, want);
}

Test(plan, neighbours_merge_and_gaps_up_to_max_gap_are_bridged)
{
    const struct mb_item it[] = {
        {MB_HOLDING, 0, 2},  {MB_HOLDING, 2, 1}, /* adjacent */
        {MB_HOLDING, 11, 2},                     /* gap of 8: bridged */
        {MB_HOLDING, 22, 1},                     /* gap of 9: new read */
        {MB_INPUT, 0, 1},    {MB_COIL, 5, 1},    {MB_COIL, 0, 1},
    };
    struct mb_plan p;
    size_t bad;
    cr_assert_eq(mb_plan_build(it, 7, &lim8, &p, &bad), 0);
    cr_expect_eq(p.nreq, 4);
    describe_is(&p, "coil 0+6, holding 0+13, holding 22+1, input 0+1");
    cr_expect_eq(p.item_req[0], 1);
    cr_expect_eq(p.item_req[2], 1);
    cr_expect_eq(p.item_req[3], 2);
    cr_expect_eq(p.item_req[5], 0);
    cr_expect_eq(p.item_req[6], 0);
    mb_plan_free(&p);
}

Test(plan, max_gap_zero_merges_only_touching_items)
{
    const struct mb_item it[] = {{MB_HOLDING, 0, 1}, {MB_HOLDING, 1, 1}, {MB_HOLDING, 3, 1}};
    struct mb_limits lim = lim8;
    lim.max_gap = 0;
    struct mb_plan p;
    size_t bad;
    cr_assert_eq(mb_plan_build(it, 3, &lim, &p, &bad), 0);
    describe_is(&p, "holding 0+2, holding 3+1");
    mb_plan_free(&p);
}

Test(plan, reads_stop_at_the_protocol_limits)
{
    struct mb_item it[200];
    for (int i = 0; i < 200; i++)
        it[i] = (struct mb_item){MB_HOLDING, (unsigned)i, 1};
    struct mb_plan p;
    size_t bad;
    cr_assert_eq(mb_plan_build(it, 200, &lim8, &p, &bad), 0);
    describe_is(&p, "holding 0+125, holding 125+75");
    mb_plan_free(&p);

    struct mb_item bits[2] = {{MB_DISCRETE, 0, 1}, {MB_DISCRETE, 2000, 1}};
    struct mb_limits lim = lim8;
    lim.max_gap = 2000;
    cr_assert_eq(mb_plan_build(bits, 2, &lim, &p, &bad), 0);
    describe_is(&p, "discrete 0+1, discrete 2000+1"); /* 2001 bits would be too many */
    mb_plan_free(&p);
    bits[1].address = 1999;
    cr_assert_eq(mb_plan_build(bits, 2, &lim, &p, &bad), 0);
    describe_is(&p, "discrete 0+2000");
    mb_plan_free(&p);
}

Test(plan, a_float_is_never_split_across_reads)
{
    const struct mb_item it[] = {{MB_HOLDING, 0, 1}, {MB_HOLDING, 123, 4}};
    struct mb_plan p;
    size_t bad;
    cr_assert_eq(
        mb_plan_build(it, 2, &(struct mb_limits){.max_gap = 200, .max_regs = 125, .max_bits = 2000},
                      &p, &bad),
        0);
    describe_is(&p, "holding 0+1, holding 123+4");
    mb_plan_free(&p);
}

Test(plan, lower_device_limits_are_honoured)
{
    const struct mb_item it[] = {{MB_INPUT, 0, 4}, {MB_INPUT, 4, 4}, {MB_INPUT, 8, 4}};
    struct mb_plan p;
    size_t bad;
    cr_assert_eq(mb_plan_build(it, 3,
                               &(struct mb_limits){.max_gap = 0, .max_regs = 8, .max_bits = 8}, &p,
                               &bad),
                 0);
    describe_is(&p, "input 0+8, input 8+4");
    mb_plan_free(&p);
}

Test(plan, overlapping_items_share_a_read)
{
    const struct mb_item it[] = {{MB_HOLDING, 10, 1}, {MB_HOLDING, 10, 2}, {MB_HOLDING, 11, 1}};
    struct mb_plan p;
    size_t bad;
    cr_assert_eq(mb_plan_build(it, 3, &lim8, &p, &bad), 0);
    describe_is(&p, "holding 10+2");
    mb_plan_free(&p);
}

Test(plan, items_too_large_or_past_the_address_space_are_refused)
{
    struct mb_plan p;
    size_t bad = 99;
    const struct mb_item big[] = {{MB_HOLDING, 0, 1}, {MB_HOLDING, 0, 126}};
    cr_expect_eq(mb_plan_build(big, 2, &lim8, &p, &bad), GD_ERANGE);
    cr_expect_eq(bad, 1);
    const struct mb_item past[] = {{MB_HOLDING, 65534, 4}};
    cr_expect_eq(mb_plan_build(past, 1, &lim8, &p, &bad), GD_ERANGE);
    const struct mb_item empty[] = {{MB_HOLDING, 0, 0}};
    cr_expect_eq(mb_plan_build(empty, 1, &lim8, &p, &bad), GD_EINVAL);
    struct mb_limits zero = {0};
    cr_expect_eq(mb_plan_build(past, 1, &zero, &p, &bad), GD_EINVAL);
    cr_expect_eq(p.nreq, 0);
}

Test(plan, describe_truncates_safely)
{
    const struct mb_item it[] = {{MB_HOLDING, 0, 1}, {MB_INPUT, 100, 6}};
    struct mb_plan p;
    size_t bad;
    cr_assert_eq(mb_plan_build(it, 2, &lim8, &p, &bad), 0);
    char buf[8];
    size_t need = mb_plan_describe(&p, buf, sizeof(buf));
    cr_expect_eq(need, strlen("holding 0+1, input 100+6"));
    cr_expect_str_eq(buf, "holding");
    mb_plan_free(&p);
}

/* ---- urls --------------------------------------------------------------- */

Test(url, tcp_rtu_and_errors)
{
    struct mb_url u;
    const char *why = NULL;
    cr_assert_eq(mb_url_parse("tcp://10.0.0.7", &u, &why), 0);
    cr_expect(!u.rtu);
    cr_expect_str_eq(u.host, "10.0.0.7");
    cr_expect_str_eq(u.port, "502");
    cr_assert_eq(mb_url_parse("tcp://[::1]:1502", &u, &why), 0);
    cr_expect_str_eq(u.host, "::1");
    cr_expect_str_eq(u.port, "1502");
    cr_assert_eq(mb_url_parse("rtu:///dev/ttyUSB0", &u, &why), 0);
    cr_expect(u.rtu);
    cr_expect_str_eq(u.path, "/dev/ttyUSB0");
    cr_expect_eq(mb_url_parse("tcp://host:0", &u, &why), GD_EINVAL);
    cr_expect_eq(mb_url_parse("tcp://host:99999", &u, &why), GD_EINVAL);
    cr_expect_eq(mb_url_parse("tcp://:502", &u, &why), GD_EINVAL);
    cr_expect_eq(mb_url_parse("rtu://ttyUSB0", &u, &why), GD_EINVAL);
    cr_expect_eq(mb_url_parse("udp://host", &u, &why), GD_EINVAL);
    cr_expect(why && *why);
}
