/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_copy.h - PostgreSQL COPY text format: the pieces of a row.
 *
 * COPY ... FROM STDIN (FORMAT text): columns separated by a tab, rows ended
 * by a newline, NULL written as \N, and in every value a backslash, tab,
 * newline and carriage return escaped as \\, \t, \n, \r. Nothing else needs
 * escaping. A NUL byte cannot be carried by PostgreSQL text at all: values
 * holding one are refused (GD_EINVAL) so the caller can reject the point.
 *
 * Every function appends to a gd_buf and, on error, leaves it as it was.
 */
#ifndef GATHERD_PG_COPY_H
#define GATHERD_PG_COPY_H

#include <gatherd/gatherd.h>

/* "YYYY-MM-DD HH:MM:SS" of the last second formatted: batches are ordered
 * in time, so most rows reuse it. Zero-initialise. */
struct pgc_time_cache {
    int64_t sec;
    bool valid;
    char text[20];
};

/* ---- raw writers: the caller reserved room (the _MAX figures) ---- */

/* Bytes pgc_put_time() writes at most. */
#define PGC_TIME_MAX 29
/* Bytes pgc_put_field() writes at most for a number or a bool. */
#define PGC_NUMBER_MAX 32

/* pgc_escaped_max() - room for @len bytes escaped (SIZE_MAX: too large). */
size_t pgc_escaped_max(size_t len);

/* pgc_field_max() - room for the value of @f (SIZE_MAX: too large). */
size_t pgc_field_max(const gd_field *f);

/* pgc_put_escaped() - write @len bytes of @s escaped at @d; returns the
 * end, or NULL when @s holds a NUL byte. */
char *pgc_put_escaped(char *d, const char *s, size_t len);

/* pgc_put_time() - write the timestamptz text of @ns at @d (see pgc_time()). */
char *pgc_put_time(char *d, int64_t ns, struct pgc_time_cache *cache);

/* pgc_put_field() - write the value of @f at @d (see pgc_field(); with
 * @bool_as_number, as pgc_field_number()). NULL on a NUL byte in a string;
 * a string with @bool_as_number is a caller error (NULL). */
char *pgc_put_field(char *d, const gd_field *f, bool bool_as_number);

/* ---- appending to a gd_buf ---- */

/* pgc_escape() - append @len bytes of @s with COPY text escaping.
 * GD_EINVAL when @s holds a NUL byte, GD_ENOMEM. */
int pgc_escape(gd_buf *out, const char *s, size_t len);

/* pgc_time() - append the timestamptz text of @ns (nanoseconds since the
 * epoch) in UTC: "2026-01-01 12:00:00.123456+00". PostgreSQL keeps
 * microseconds: the time is rounded down to the microsecond (floor, also
 * before 1970), never up, so a reading never moves later. */
int pgc_time(gd_buf *out, int64_t ns, struct pgc_time_cache *cache);

/* pgc_time_us() - the microseconds stored for @ns (floor(ns / 1000)). */
int64_t pgc_time_us(int64_t ns);

/* pgc_field() - append the value of @f for a typed column: a float in its
 * shortest round-tripping text, an integer in decimal, a bool as "t"/"f",
 * a string escaped. */
int pgc_field(gd_buf *out, const gd_field *f);

/* pgc_field_number() - append @f as a double precision value (narrow
 * layout's `value`): floats and integers as above, bools as 1 / 0.
 * GD_ETYPE for a string field. */
int pgc_field_number(gd_buf *out, const gd_field *f);

/* pgc_tags_json() - append the tags as a JSON object for a jsonb column,
 * {"key":"value",...} (RFC 8259 escaping, then COPY escaping). An empty
 * tag set is {}. GD_EINVAL when a key or value holds a NUL byte (jsonb
 * refuses \u0000). */
int pgc_tags_json(gd_buf *out, const gd_tag *tags, size_t n);

/* ---- binary format ------------------------------------------------------
 *
 * COPY ... FROM STDIN (FORMAT binary): a header, then per row an int16
 * column count and per column an int32 length (-1: NULL) and the value in
 * the type's binary form, then an int16 -1. Values go to columns of exactly
 * these types: timestamptz (int64 microseconds since 2000-01-01), float8
 * and int8 (big-endian), numeric (base-10000 digits), bool (one byte), text
 * or varchar (the bytes), jsonb (version 1 and the JSON text). The server
 * converts nothing, so the caller checks the column types first.
 */

#define PGB_HEADER_LEN  19
#define PGB_TRAILER_LEN 2
#define PGB_ROW_LEN     2 /* the column count */
#define PGB_NULL_LEN    4
#define PGB_TIME_LEN    12 /* length and int64 */
#define PGB_NUMBER_LEN  22 /* numeric of a uint64: length, 4 int16, 5 digits */

char *pgb_header(char *d);
char *pgb_trailer(char *d);
char *pgb_row(char *d, unsigned ncols);
char *pgb_null(char *d);
char *pgb_time(char *d, int64_t ns);

/* pgb_bytes_max() - room for a text value of @len bytes (SIZE_MAX: more
 * than a PostgreSQL value can hold). */
size_t pgb_bytes_max(size_t len);
char *pgb_bytes(char *d, const char *s, size_t len);

/* pgb_field_max() / pgb_field() - a field as its own type: float8, int8,
 * numeric (uint64), bool or text. */
size_t pgb_field_max(const gd_field *f);
char *pgb_field(char *d, const gd_field *f);

/* pgb_float8() - a numeric field as float8 (narrow `value`): integers
 * rounded to the nearest double, bools 1 / 0. Not for strings. */
char *pgb_float8(char *d, const gd_field *f);

/* pgb_tags_jsonb_max() / pgb_tags_jsonb() - the tags as a jsonb value.
 * pgb_tags_jsonb() returns NULL when a tag holds a NUL byte. */
size_t pgb_tags_jsonb_max(const gd_tag *tags, size_t n);
char *pgb_tags_jsonb(char *d, const gd_tag *tags, size_t n);

/* ---- names ---- */

/* pgc_valid_name() - true when @s (@len bytes) can name a PostgreSQL table
 * or column as it is: 1 to 63 bytes (longer names would be truncated by the
 * server, so two long names could meet in one column), valid UTF-8, no NUL
 * and no control characters. *@why names the reason otherwise. */
bool pgc_valid_name(const char *s, size_t len, const char **why);

/* Longest identifier PostgreSQL keeps (NAMEDATALEN - 1). */
#define PGC_NAME_MAX 63

#endif
