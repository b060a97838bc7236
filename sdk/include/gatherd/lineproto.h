/* SPDX-License-Identifier: Apache-2.0 */
/**
 * gatherd/lineproto.h - growable byte buffer, InfluxDB line-protocol and
 * JSON-lines encoding shared by every plugin.
 *
 * Line protocol escaping (InfluxDB 1.x/2.x):
 *   measurement:          comma, space (and a backslash before them) escaped;
 *   tag keys/values,
 *   field keys:           comma, equals sign, space escaped;
 *   string field values:  double quote and backslash escaped, in quotes.
 * Floats use the shortest text that reads back to the same double; integers
 * get an "i" suffix, unsigned integers "u". Newlines in names or values
 * cannot be represented and are refused with GD_EINVAL.
 */
#ifndef GATHERD_LINEPROTO_H
#define GATHERD_LINEPROTO_H

#include <gatherd/batch.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A growable byte buffer. Zero-initialise it (`gd_buf b = {0};`), append,
 * and release with gd_buf_free(). @data is NUL-terminated when non-NULL. */
typedef struct gd_buf {
    char *data;
    size_t len;
    size_t cap;
} gd_buf;

/** gd_buf_reserve() - make room for @extra more bytes (+1 for the NUL). */
GD_EXPORT int gd_buf_reserve(gd_buf *b, size_t extra);
/** gd_buf_append() - append @len bytes. */
GD_EXPORT int gd_buf_append(gd_buf *b, const void *data, size_t len);
/** gd_buf_puts() - append a NUL-terminated string. */
GD_EXPORT int gd_buf_puts(gd_buf *b, const char *s);
/** gd_buf_printf() - append printf-formatted text. */
GD_EXPORT int gd_buf_printf(gd_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** gd_buf_reset() - empty the buffer, keeping its memory. */
GD_EXPORT void gd_buf_reset(gd_buf *b);
/** gd_buf_free() - release the memory. Accepts NULL. */
GD_EXPORT void gd_buf_free(gd_buf *b);

/** Timestamp precision for encoding: the point's ns time is divided. */
typedef enum gd_precision {
    GD_PREC_NS = 0,
    GD_PREC_US = 1,
    GD_PREC_MS = 2,
    GD_PREC_S = 3,
} gd_precision;

/** gd_lp_encode_point() - append one point as a line (with "\n") to @out.
 * On error nothing is appended and GD_EINVAL names the reason through
 * *@why (a static string; may be NULL): an empty name, key or tag value, a
 * newline in a name, a point without fields, a non-finite float. */
GD_EXPORT int gd_lp_encode_point(gd_buf *out, const gd_point *p, gd_precision prec,
                                 const char **why);

/** gd_lp_encode_batch() - append every point of @b. Points that cannot be
 * encoded are skipped; *@skipped (optional) receives their count. */
GD_EXPORT int gd_lp_encode_batch(gd_buf *out, const gd_batch *b, gd_precision prec,
                                 size_t *skipped);

/** A growable set of point indexes, e.g. the points of a batch an output
 * could not write. Zero-initialise; release with gd_index_set_free(). Hand
 * it to done() as `gd_rejects r = {.idx = s.idx, .n = s.n};`. */
typedef struct gd_index_set {
    uint32_t *idx;
    size_t n;
    size_t cap;
} gd_index_set;

/** gd_index_set_add() - append @i. */
GD_EXPORT int gd_index_set_add(gd_index_set *s, uint32_t i);
/** gd_index_set_free() - release the memory. Accepts NULL. */
GD_EXPORT void gd_index_set_free(gd_index_set *s);

/** Text formats of gd_encode_batch(). */
typedef enum gd_format {
    GD_FORMAT_LINE = 0, /* InfluxDB line protocol */
    GD_FORMAT_JSON = 1, /* JSON lines, see gd_json_encode_point() */
} gd_format;

/** gd_encode_batch() - append every point of @b to @out in @fmt (@prec
 * applies to line protocol). Points that cannot be encoded leave nothing
 * behind; their indexes replace the content of @rejects and *@why (optional)
 * receives the reason of the first. Returns 0, or GD_ENOMEM with @out as it
 * was. The usual body of an output that writes text. */
GD_EXPORT int gd_encode_batch(gd_buf *out, const gd_batch *b, gd_format fmt, gd_precision prec,
                              gd_index_set *rejects, const char **why);

/* ---- parsing ---------------------------------------------------------- */

/** Where and why line protocol failed to parse. */
typedef struct gd_lp_error {
    size_t line;        /* 1-based line of the first error */
    size_t column;      /* 1-based column, in bytes, within that line */
    size_t offset;      /* byte offset of the error in the input */
    const char *reason; /* static text, e.g. "expected '=' after tag key" */
} gd_lp_error;

/** gd_lp_parse() - parse @len bytes of InfluxDB line protocol into @b.
 *
 * The syntax is InfluxDB's, as the public line-protocol corpus's reference
 * decoder reads it (the unit tests run all 4,951 decode cases, error
 * positions included): a measurement, optional tags, one or more fields,
 * an optional integer timestamp. Escapes: `\,` `\ ` (measurement), `\,`
 * `\=` `\ ` (tag keys and values, field keys), `\"` `\\` (string values);
 * a backslash before any other character stays as it is. Control
 * characters are refused in measurements and keys (tag values and strings
 * may hold them). Floats in Go syntax (hex floats and `_` digit separators
 * included; NaN and infinities refused), `12i` integers, `12u` unsigned,
 * t/T/true/True/TRUE and f/F/false/False/FALSE booleans; "\n" or "\r\n"
 * line ends; blank lines and `#` comment lines skipped; UTF-8 checked;
 * duplicate tag keys refused (a repeated field key is kept twice).
 *
 * Timestamps are read in @prec units and stored in ns; a line without one
 * gets @default_ns truncated to @prec. Strings are copied into the batch's
 * arena once, with no allocation per line beyond it.
 *
 * Parsing stops at the first malformed line: the points of the lines
 * before it stay in @b (the caller keeps or discards them), nothing of the
 * bad line does, and *@err (optional) says where and why. *@added
 * (optional) receives the number of points appended either way.
 * Returns 0, GD_EPARSE, GD_EFROZEN or GD_ENOMEM. */
GD_EXPORT int gd_lp_parse(gd_batch *b, const char *text, size_t len, gd_precision prec,
                          int64_t default_ns, size_t *added, gd_lp_error *err);

/** gd_json_encode_point() - append one point as a JSON object and "\n":
 * {"measurement":"m","tags":{...},"fields":{...},"time":ns}. Integers are
 * JSON numbers, strings are escaped (RFC 8259), floats use the shortest
 * round-tripping text. A point without fields is refused (GD_EINVAL); on any
 * error nothing is appended. */
GD_EXPORT int gd_json_encode_point(gd_buf *out, const gd_point *p);

/** gd_fmt_double() - write the shortest text that parses back to @v into
 * @dst (at least 32 bytes). Returns the length. @v must be finite. */
GD_EXPORT size_t gd_fmt_double(char *dst, double v);

#ifdef __cplusplus
}
#endif
#endif
