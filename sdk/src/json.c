/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json.c - one point as a JSON-lines object:
 *   {"measurement":"m","tags":{"k":"v"},"fields":{"f":1.5},"time":ns}
 *
 * Strings are escaped per RFC 8259: '"' and '\' with a backslash, control
 * characters as \b \f \n \r \t or \u00XX. Bytes that are not valid UTF-8 are
 * written as \ufffd, so the output is always valid JSON. Floats use
 * gd_fmt_double(), whose every output is a JSON number ("1e+21", "-0").
 */
#include "digits.h"
#include <gatherd/lineproto.h>
#include <math.h>
#include <string.h>

#define JSON_ESC_MAX   6  /* "\u00XX" or "\ufffd": most output bytes per input byte */
#define NUM_MAX_CHARS  32 /* any number this file writes */
#define JSON_FIXED_MAX 64 /* the punctuation and names around the values */

static const char hex_digits[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence at @s (n > 0, s[0] >= 0x80), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong forms */
        else if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

static char *put_json_string(char *d, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    *d++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *d++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = utf8_seq(s + i, n - i);
            if (len) {
                memcpy(d, s + i, len);
                d += len;
                i += len;
            } else {
                memcpy(d, "\\ufffd", 6);
                d += 6;
                i++;
            }
            continue;
        }
        *d++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *d++ = (char)c;
            break;
        case '\b':
            *d++ = 'b';
            break;
        case '\f':
            *d++ = 'f';
            break;
        case '\n':
            *d++ = 'n';
            break;
        case '\r':
            *d++ = 'r';
            break;
        case '\t':
            *d++ = 't';
            break;
        default:
            memcpy(d, "u00", 3);
            d[3] = hex_digits[c >> 4];
            d[4] = hex_digits[c & 0xf];
            d += 5;
            break;
        }
        i++;
    }
    *d++ = '"';
    return d;
}

static char *put_lit(char *d, const char *s)
{
    size_t n = strlen(s);
    memcpy(d, s, n);
    return d + n;
}

/* *@acc += @fixed + JSON_ESC_MAX * @len, false on overflow. */
static bool grow_bound(size_t *acc, size_t fixed, size_t len)
{
    size_t esc;
    return !__builtin_mul_overflow(len, JSON_ESC_MAX, &esc) &&
           !__builtin_add_overflow(*acc, fixed, acc) && !__builtin_add_overflow(*acc, esc, acc);
}

int gd_json_encode_point(gd_buf *out, const gd_point *p)
{
    if (!out || !p)
        return GD_EINVAL;
    size_t mlen, ntags, nfields;
    const char *m = gd_point_measurement(p, &mlen);
    const gd_tag *tags = gd_point_tags(p, &ntags);
    const gd_field *fields = gd_point_fields(p, &nfields);
    if (nfields == 0)
        return GD_EINVAL; /* a point without fields is invalid in every format */

    /* Worst case first, then write straight into the buffer. */
    size_t need = 0;
    if (!grow_bound(&need, JSON_FIXED_MAX + NUM_MAX_CHARS, mlen))
        return GD_ENOMEM;
    for (size_t i = 0; i < ntags; i++)
        if (!grow_bound(&need, 6, (size_t)tags[i].key_len + tags[i].value_len))
            return GD_ENOMEM;
    for (size_t i = 0; i < nfields; i++) {
        size_t vlen = fields[i].type == GD_STR ? fields[i].v.str.len : 0;
        if (!grow_bound(&need, 4 + NUM_MAX_CHARS, fields[i].key_len) || !grow_bound(&need, 0, vlen))
            return GD_ENOMEM;
        if (fields[i].type == GD_F64 && !isfinite(fields[i].v.f64))
            return GD_EINVAL; /* not a JSON number; builders refuse these */
        if (fields[i].type < GD_F64 || fields[i].type > GD_STR)
            return GD_EINVAL;
    }
    int rc = gd_buf_reserve(out, need);
    if (rc < 0)
        return rc;

    char *d = out->data + out->len;
    d = put_lit(d, "{\"measurement\":");
    d = put_json_string(d, m, mlen);
    d = put_lit(d, ",\"tags\":{");
    for (size_t i = 0; i < ntags; i++) {
        if (i)
            *d++ = ',';
        d = put_json_string(d, tags[i].key, tags[i].key_len);
        *d++ = ':';
        d = put_json_string(d, tags[i].value, tags[i].value_len);
    }
    d = put_lit(d, "},\"fields\":{");
    for (size_t i = 0; i < nfields; i++) {
        const gd_field *f = &fields[i];
        if (i)
            *d++ = ',';
        d = put_json_string(d, f->key, f->key_len);
        *d++ = ':';
        switch (f->type) {
        case GD_F64:
            d += gd_fmt_double(d, f->v.f64);
            break;
        case GD_I64:
            d = put_i64(d, f->v.i64);
            break;
        case GD_U64:
            d = put_u64(d, f->v.u64);
            break;
        case GD_BOOL:
            d = put_lit(d, f->v.b ? "true" : "false");
            break;
        default: /* GD_STR; other types were refused above */
            d = put_json_string(d, f->v.str.ptr, f->v.str.len);
            break;
        }
    }
    d = put_lit(d, "},\"time\":");
    d = put_i64(d, gd_point_time(p));
    d = put_lit(d, "}\n");
    *d = '\0';
    out->len = (size_t)(d - out->data);
    return 0;
}
