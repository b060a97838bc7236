/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_copy.c - the COPY text encoding of values (see pg_copy.h).
 *
 * Rows are built straight into the buffer: each function reserves the worst
 * case for its value once, then writes bytes without further checks.
 */
#include "pg_copy.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define SECS_PER_DAY    86400
#define US_PER_SEC      1000000
#define NS_PER_US       1000
#define INT_MAX_CHARS   21 /* "-9223372036854775808" */
#define COPY_ESC_FACTOR 2  /* one byte becomes at most two: "\\n" */
#define JSON_ESC_FACTOR 7  /* a control byte: \u00XX, its backslash doubled */

/* What a byte needs in COPY text: 0 nothing, else the letter after the
 * backslash; NUL cannot be written. */
static const char copy_esc[256] = {['\\'] = '\\', ['\t'] = 't', ['\n'] = 'n', ['\r'] = 'r'};

char *pgc_put_escaped(char *d, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && *p && !copy_esc[*p])
            p++;
        memcpy(d, run, (size_t)(p - run));
        d += p - run;
        if (p == end)
            break;
        if (!*p)
            return NULL;
        *d++ = '\\';
        *d++ = copy_esc[*p++];
    }
    return d;
}

/* Make room for @extra bytes and the NUL; returns the write position.
 * SIZE_MAX (an overflowed size) fails. */
static char *room(gd_buf *out, size_t extra)
{
    if (extra == SIZE_MAX || gd_buf_reserve(out, extra) < 0)
        return NULL;
    return out->data + out->len;
}

static void commit(gd_buf *out, char *end)
{
    out->len = (size_t)(end - out->data);
    out->data[out->len] = '\0';
}

size_t pgc_escaped_max(size_t len)
{
    return len > (SIZE_MAX / 2 - 64) / COPY_ESC_FACTOR ? SIZE_MAX : len * COPY_ESC_FACTOR;
}

int pgc_escape(gd_buf *out, const char *s, size_t len)
{
    char *d = room(out, pgc_escaped_max(len));
    if (!d)
        return GD_ENOMEM;
    char *end = pgc_put_escaped(d, s, len);
    if (!end)
        return GD_EINVAL;
    commit(out, end);
    return 0;
}

/* ---- time -------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t pgc_time_us(int64_t ns)
{
    return floor_div(ns, NS_PER_US);
}

static char *put2(char *d, unsigned v)
{
    d[0] = (char)('0' + v / 10);
    d[1] = (char)('0' + v % 10);
    return d + 2;
}

/* "YYYY-MM-DD HH:MM:SS" of @sec since the epoch, UTC (proleptic Gregorian;
 * Howard Hinnant's civil_from_days). */
static void format_second(char *d, int64_t sec)
{
    int64_t days = floor_div(sec, SECS_PER_DAY);
    int64_t sod = sec - days * SECS_PER_DAY;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    unsigned day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    unsigned mon = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    y += mon <= 2;
    /* int64 nanoseconds span the years 1677 to 2262: always four digits. */
    d = put2(d, (unsigned)(y / 100));
    d = put2(d, (unsigned)(y % 100));
    *d++ = '-';
    d = put2(d, mon);
    *d++ = '-';
    d = put2(d, day);
    *d++ = ' ';
    d = put2(d, (unsigned)(sod / 3600));
    *d++ = ':';
    d = put2(d, (unsigned)(sod / 60 % 60));
    *d++ = ':';
    put2(d, (unsigned)(sod % 60));
}

char *pgc_put_time(char *d, int64_t ns, struct pgc_time_cache *cache)
{
    int64_t us = pgc_time_us(ns);
    int64_t sec = floor_div(us, US_PER_SEC);
    unsigned frac = (unsigned)(us - sec * US_PER_SEC);
    if (!cache->valid || cache->sec != sec) {
        format_second(cache->text, sec);
        cache->sec = sec;
        cache->valid = true;
    }
    memcpy(d, cache->text, 19);
    d += 19;
    *d++ = '.';
    d = put2(d, frac / 10000);
    d = put2(d, frac / 100 % 100);
    d = put2(d, frac % 100);
    memcpy(d, "+00", 3);
    return d + 3;
}

int pgc_time(gd_buf *out, int64_t ns, struct pgc_time_cache *cache)
{
    char *d = room(out, PGC_TIME_MAX);
    if (!d)
        return GD_ENOMEM;
    commit(out, pgc_put_time(d, ns, cache));
    return 0;
}

/* ---- values ------------------------------------------------------------ */

static char *put_u64(char *d, uint64_t v)
{
    char tmp[INT_MAX_CHARS];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *d++ = tmp[--n];
    return d;
}

static char *put_i64(char *d, int64_t v)
{
    if (v >= 0)
        return put_u64(d, (uint64_t)v);
    *d++ = '-';
    return put_u64(d, (uint64_t)0 - (uint64_t)v);
}

size_t pgc_field_max(const gd_field *f)
{
    return f->type == GD_STR ? pgc_escaped_max(f->v.str.len) : PGC_NUMBER_MAX;
}

char *pgc_put_field(char *d, const gd_field *f, bool bool_as_number)
{
    switch (f->type) {
    case GD_F64:
        return d + gd_fmt_double(d, f->v.f64);
    case GD_I64:
        return put_i64(d, f->v.i64);
    case GD_U64:
        return put_u64(d, f->v.u64);
    case GD_BOOL:
        *d++ = bool_as_number ? (f->v.b ? '1' : '0') : (f->v.b ? 't' : 'f');
        return d;
    case GD_STR:
        return bool_as_number ? NULL : pgc_put_escaped(d, f->v.str.ptr, f->v.str.len);
    default:
        return NULL;
    }
}

int pgc_field(gd_buf *out, const gd_field *f)
{
    char *d = room(out, pgc_field_max(f));
    if (!d)
        return GD_ENOMEM;
    char *end = pgc_put_field(d, f, false);
    if (!end)
        return GD_EINVAL;
    commit(out, end);
    return 0;
}

int pgc_field_number(gd_buf *out, const gd_field *f)
{
    if (f->type == GD_STR)
        return GD_ETYPE;
    char *d = room(out, PGC_NUMBER_MAX);
    if (!d)
        return GD_ENOMEM;
    commit(out, pgc_put_field(d, f, true));
    return 0;
}

/* ---- tags as JSON ------------------------------------------------------ */

/* A JSON string; with @copy, COPY escaping on top: '"' -> \" -> \\",
 * '\' -> \\ -> \\\\, control bytes -> \u00XX (or \n, \t ...) with the
 * backslash doubled. Returns the end, or NULL on a NUL byte. */
static char *put_json_string(char *d, const char *s, size_t len, bool copy)
{
    static const char hex[] = "0123456789abcdef";
    *d++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *d++ = (char)c;
            continue;
        }
        if (c == 0)
            return NULL;
        *d++ = '\\';
        if (copy)
            *d++ = '\\';
        switch (c) {
        case '"':
            *d++ = '"';
            break;
        case '\\':
            *d++ = '\\';
            if (copy)
                *d++ = '\\';
            break;
        case '\n':
            *d++ = 'n';
            break;
        case '\t':
            *d++ = 't';
            break;
        case '\r':
            *d++ = 'r';
            break;
        default:
            memcpy(d, "u00", 3);
            d[3] = hex[c >> 4];
            d[4] = hex[c & 15];
            d += 5;
        }
    }
    *d++ = '"';
    return d;
}

/* Room for the tags as JSON (SIZE_MAX: too large). */
static size_t json_max(const gd_tag *tags, size_t n)
{
    size_t need = 2;
    for (size_t i = 0; i < n; i++) {
        size_t len = (size_t)tags[i].key_len + tags[i].value_len;
        if (len > (SIZE_MAX / 2 - need) / JSON_ESC_FACTOR)
            return SIZE_MAX;
        need += len * JSON_ESC_FACTOR + 6; /* quotes, colon, comma */
    }
    return need;
}

static char *put_json_tags(char *d, const gd_tag *tags, size_t n, bool copy)
{
    *d++ = '{';
    for (size_t i = 0; d && i < n; i++) {
        if (i)
            *d++ = ',';
        d = put_json_string(d, tags[i].key, tags[i].key_len, copy);
        if (!d)
            return NULL;
        *d++ = ':';
        d = put_json_string(d, tags[i].value, tags[i].value_len, copy);
    }
    if (d)
        *d++ = '}';
    return d;
}

int pgc_tags_json(gd_buf *out, const gd_tag *tags, size_t n)
{
    char *d = room(out, json_max(tags, n));
    if (!d)
        return GD_ENOMEM;
    char *end = put_json_tags(d, tags, n, true);
    if (!end)
        return GD_EINVAL;
    commit(out, end);
    return 0;
}

/* ---- binary ------------------------------------------------------------ */

#define PG_EPOCH_US     946684800000000LL /* 2000-01-01 in Unix microseconds */
#define NUMERIC_NBASE   10000
#define NUMERIC_MAX_DIG 5 /* base-10000 digits of a uint64 */
#define JSONB_VERSION   1
#define PG_VALUE_MAX    0x3fffffff /* 1 GB - 1: the largest value PostgreSQL stores */

static char *put_be16(char *d, uint16_t v)
{
    d[0] = (char)(v >> 8);
    d[1] = (char)v;
    return d + 2;
}

static char *put_be32(char *d, uint32_t v)
{
    d[0] = (char)(v >> 24);
    d[1] = (char)(v >> 16);
    d[2] = (char)(v >> 8);
    d[3] = (char)v;
    return d + 4;
}

static char *put_be64(char *d, uint64_t v)
{
    d = put_be32(d, (uint32_t)(v >> 32));
    return put_be32(d, (uint32_t)v);
}

char *pgb_header(char *d)
{
    memcpy(d, "PGCOPY\n\377\r\n\0", 11);
    d = put_be32(d + 11, 0); /* flags */
    return put_be32(d, 0);   /* header extension length */
}

char *pgb_trailer(char *d)
{
    return put_be16(d, 0xffff);
}

char *pgb_row(char *d, unsigned ncols)
{
    return put_be16(d, (uint16_t)ncols);
}

char *pgb_null(char *d)
{
    return put_be32(d, 0xffffffffu);
}

char *pgb_time(char *d, int64_t ns)
{
    d = put_be32(d, 8);
    return put_be64(d, (uint64_t)(pgc_time_us(ns) - PG_EPOCH_US));
}

size_t pgb_bytes_max(size_t len)
{
    return len > PG_VALUE_MAX ? SIZE_MAX : len + 4;
}

char *pgb_bytes(char *d, const char *s, size_t len)
{
    d = put_be32(d, (uint32_t)len);
    memcpy(d, s, len);
    return d + len;
}

static char *put_f64(char *d, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    d = put_be32(d, 8);
    return put_be64(d, bits);
}

/* numeric: ndigits, weight, sign, dscale, then base-10000 digits. */
static char *put_numeric_u64(char *d, uint64_t v)
{
    uint16_t dig[NUMERIC_MAX_DIG];
    int n = 0;
    for (; v; v /= NUMERIC_NBASE)
        dig[n++] = (uint16_t)(v % NUMERIC_NBASE);
    d = put_be32(d, (uint32_t)(8 + 2 * n));
    d = put_be16(d, (uint16_t)n);
    d = put_be16(d, (uint16_t)(n ? n - 1 : 0));
    d = put_be16(d, 0); /* positive */
    d = put_be16(d, 0); /* no decimals */
    while (n)
        d = put_be16(d, dig[--n]);
    return d;
}

size_t pgb_field_max(const gd_field *f)
{
    return f->type == GD_STR ? pgb_bytes_max(f->v.str.len) : PGB_NUMBER_LEN;
}

char *pgb_field(char *d, const gd_field *f)
{
    switch (f->type) {
    case GD_F64:
        return put_f64(d, f->v.f64);
    case GD_I64:
        d = put_be32(d, 8);
        return put_be64(d, (uint64_t)f->v.i64);
    case GD_U64:
        return put_numeric_u64(d, f->v.u64);
    case GD_BOOL:
        d = put_be32(d, 1);
        *d++ = f->v.b ? 1 : 0;
        return d;
    case GD_STR:
        return pgb_bytes(d, f->v.str.ptr, f->v.str.len);
    default:
        return NULL;
    }
}

char *pgb_float8(char *d, const gd_field *f)
{
    switch (f->type) {
    case GD_F64:
        return put_f64(d, f->v.f64);
    case GD_I64:
        return put_f64(d, (double)f->v.i64);
    case GD_U64:
        return put_f64(d, (double)f->v.u64);
    case GD_BOOL:
        return put_f64(d, f->v.b ? 1.0 : 0.0);
    default:
        return NULL;
    }
}

size_t pgb_tags_jsonb_max(const gd_tag *tags, size_t n)
{
    size_t max = json_max(tags, n);
    return max > PG_VALUE_MAX ? SIZE_MAX : max + 5;
}

char *pgb_tags_jsonb(char *d, const gd_tag *tags, size_t n)
{
    char *len = d;
    d[4] = JSONB_VERSION;
    char *end = put_json_tags(d + 5, tags, n, false);
    if (!end)
        return NULL;
    put_be32(len, (uint32_t)(end - len - 4));
    return end;
}

/* ---- names ------------------------------------------------------------- */

/* Length of the UTF-8 sequence at @s (at most @len bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

bool pgc_valid_name(const char *s, size_t len, const char **why)
{
    if (len == 0) {
        *why = "empty name";
        return false;
    }
    if (len > PGC_NAME_MAX) {
        *why = "name longer than 63 bytes (PostgreSQL would truncate it)";
        return false;
    }
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            *why = "control character or NUL in a name";
            return false;
        }
        size_t n = utf8_seq(p + i, len - i);
        if (!n) {
            *why = "name is not valid UTF-8";
            return false;
        }
        i += n;
    }
    return true;
}
