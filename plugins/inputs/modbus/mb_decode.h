/* SPDX-License-Identifier: Apache-2.0 */
/**
 * mb_decode.h - Modbus register decoding: formats, word and byte orders,
 * scale and offset. Pure functions, no I/O; shared by the modbus input and
 * gatherd-modbus-probe.
 *
 * Registers are the 16-bit values libmodbus returns: the first byte on the
 * wire is the high byte. A value of n registers is n*2 wire bytes w[0..];
 * its canonical big-endian bytes are A (most significant) B C D (E F G H).
 *
 *   order  32-bit wire  64-bit wire       registers       bytes in a register
 *   ABCD   A B C D      A B C D E F G H   high word first  high byte first
 *   CDAB   C D A B      G H E F C D A B   low word first   high byte first
 *   BADC   B A D C      B A D C F E H G   high word first  swapped
 *   DCBA   D C B A      H G F E D C B A   low word first   swapped
 *
 * 16-bit formats only use the byte order (ABCD = CDAB = AB, BADC = DCBA =
 * BA); strings read registers first to last and use the byte order.
 */
#ifndef GATHERD_MB_DECODE_H
#define GATHERD_MB_DECODE_H

#include <gatherd/common.h>

enum mb_kind { MB_COIL, MB_DISCRETE, MB_HOLDING, MB_INPUT, MB_NKINDS };

enum mb_format {
    MB_BIT,
    MB_INT16,
    MB_UINT16,
    MB_INT32,
    MB_UINT32,
    MB_INT64,
    MB_UINT64,
    MB_FLOAT32,
    MB_FLOAT64,
    MB_STRING,
    MB_NFORMATS
};

enum mb_order { MB_ABCD, MB_DCBA, MB_BADC, MB_CDAB, MB_NORDERS };

/* What a field is emitted as. MB_AS_AUTO: bool for bits, string for
 * strings, double for numbers. */
enum mb_as { MB_AS_AUTO, MB_AS_DOUBLE, MB_AS_INT, MB_AS_UINT, MB_AS_BOOL, MB_NAS };

/* NULL-terminated names, indexed by the enums (option table choices). */
extern const char *const mb_kind_names[];
extern const char *const mb_format_names[];
extern const char *const mb_order_names[];
extern const char *const mb_as_names[];

/* How to turn registers (or one bit) into a value. */
struct mb_spec {
    enum mb_format format;
    enum mb_order order;
    enum mb_as as;
    unsigned bit;    /* MB_BIT on a register: bit 0..15 (0 = least significant) */
    unsigned length; /* MB_STRING: registers */
    double scale;    /* value * scale + offset, numbers only */
    double offset;
};

enum mb_vtype { MB_V_DOUBLE, MB_V_INT, MB_V_UINT, MB_V_BOOL, MB_V_STRING };

/* A decoded value. Strings point into the caller's buffer. */
struct mb_value {
    enum mb_vtype type;
    union {
        double f;
        int64_t i;
        uint64_t u;
        bool b;
        struct {
            const char *ptr;
            size_t len;
        } s;
    } v;
};

/** mb_kind_is_bit() - true for coils and discrete inputs. */
bool mb_kind_is_bit(enum mb_kind kind);

/** mb_format_regs() - registers a value of @format takes (@length for
 * strings, 1 for bits and 16-bit formats). */
unsigned mb_format_regs(enum mb_format format, unsigned length);

/** mb_gather() - the canonical big-endian integer of @nregs (1, 2 or 4)
 * registers read in @order. */
uint64_t mb_gather(const uint16_t *regs, unsigned nregs, enum mb_order order);

/** mb_string() - the text of @nregs registers in @order's byte order into
 * @buf (2 * @nregs + 1 bytes): ends at the first NUL, trailing spaces are
 * trimmed, bytes outside printable ASCII become '?' (so the text is always
 * valid UTF-8). Returns the length. */
size_t mb_string(const uint16_t *regs, unsigned nregs, enum mb_order order, char *buf);

/** mb_decode_regs() - decode @spec from @regs (mb_format_regs() of them)
 * into @out; strings are written to @strbuf (2 * length + 1 bytes).
 * Returns 0, GD_ERANGE when the scaled value is not finite or does not fit
 * the integer type asked for, GD_EINVAL for a spec that cannot apply. */
int mb_decode_regs(const struct mb_spec *spec, const uint16_t *regs, char *strbuf,
                   struct mb_value *out);

/** mb_decode_bit() - decode a coil or discrete input @bit into @out (bool,
 * or 0/1 scaled when @spec asks for a number). */
int mb_decode_bit(const struct mb_spec *spec, bool bit, struct mb_value *out);

#endif
