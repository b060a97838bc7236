/* SPDX-License-Identifier: Apache-2.0 */
/* lpparse.c - the line-protocol parser (gd_lp_parse), straight into a batch.
 *
 * One pass over the input with a cursor. Tokens without escapes go to the
 * batch builders as (pointer, length) into the input; tokens with escapes
 * are unescaped into a scratch buffer first. A line that fails half-way is
 * removed again with gd_batch_drop_last(). */
#include <gatherd/lineproto.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Longest number text converted on the stack; longer ones use the scratch. */
#define NUM_STACK_BYTES 64

enum tok {
    TOK_MEASUREMENT, /* stops at ',' ' ' and control characters */
    TOK_KEY,         /* tag keys, field keys: also at '=' */
    TOK_TAGVAL,      /* tag values: as keys, but control characters allowed */
    TOK_STRING,      /* string field values: stops at '"' only */
};

struct lp {
    const char *s;
    size_t len;
    size_t pos;
    gd_buf scratch;
    const char *reason; /* set with err_at */
    size_t err_pos;
    size_t line_start; /* where the current line starts, before any spaces */
};

/* A token: either a span of the input or of the scratch buffer (by offset,
 * since the scratch may move while it grows). */
struct span {
    size_t off;
    size_t len;
    bool in_scratch;
};

static inline bool is_ctl(unsigned char c)
{
    return c < 32 || c == 0x7f;
}

static inline bool tok_char(enum tok t, unsigned char c)
{
    switch (t) {
    case TOK_MEASUREMENT:
        return c != ',' && c != ' ' && !is_ctl(c);
    case TOK_KEY:
        return c != ',' && c != '=' && c != ' ' && !is_ctl(c);
    case TOK_TAGVAL:
        return c != ',' && c != '=' && c != ' ' && c != '\r' && c != '\n';
    case TOK_STRING:
        return c != '"';
    }
    return false;
}

/* The character a backslash sequence "\c" stands for, or 0 when the
 * backslash is literal. */
static inline char tok_unescape(enum tok t, unsigned char c)
{
    switch (t) {
    case TOK_MEASUREMENT:
        return c == ',' || c == ' ' ? (char)c : 0;
    case TOK_KEY:
    case TOK_TAGVAL:
        return c == ',' || c == '=' || c == ' ' ? (char)c : 0;
    case TOK_STRING:
        return c == '\\' || c == '"' ? (char)c : 0;
    }
    return 0;
}

static int err_at(struct lp *lp, size_t pos, const char *reason)
{
    lp->err_pos = pos;
    lp->reason = reason;
    return GD_EPARSE;
}

static inline const char *span_ptr(const struct lp *lp, const struct span *sp)
{
    return sp->in_scratch ? lp->scratch.data + sp->off : lp->s + sp->off;
}

/* Strict UTF-8: no overlongs, surrogates or code points past U+10FFFF. */
static bool utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (n - i <= need)
            return false;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= need; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
        i += need + 1;
    }
    return true;
}

/* Take the longest token of kind @t at the cursor, unescaping. A backslash
 * is part of any token; followed by an escapable character it stands for
 * that character, otherwise it stays and the next character is judged on
 * its own. */
static int take(struct lp *lp, enum tok t, struct span *out)
{
    const char *s = lp->s;
    size_t start = lp->pos, i = start, seg = start;
    bool escaped = false;
    unsigned char high = 0;
    size_t soff = lp->scratch.len;

    while (i < lp->len) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\\') {
            if (!tok_char(t, c))
                break;
            high |= c;
            i++;
            continue;
        }
        if (i + 1 >= lp->len) {
            i++; /* a backslash ending the input stays */
            break;
        }
        char r = tok_unescape(t, (unsigned char)s[i + 1]);
        if (!r) {
            i++;
            continue;
        }
        if (gd_buf_append(&lp->scratch, s + seg, i - seg) < 0 ||
            gd_buf_append(&lp->scratch, &r, 1) < 0)
            return GD_ENOMEM;
        escaped = true;
        i += 2;
        seg = i;
    }
    lp->pos = i;
    if (escaped) {
        if (gd_buf_append(&lp->scratch, s + seg, i - seg) < 0)
            return GD_ENOMEM;
        *out = (struct span){.off = soff, .len = lp->scratch.len - soff, .in_scratch = true};
    } else {
        *out = (struct span){.off = start, .len = i - start, .in_scratch = false};
    }
    if ((high & 0x80) && !utf8_valid((const unsigned char *)span_ptr(lp, out), out->len))
        return err_at(lp, start, "invalid UTF-8");
    return 0;
}

static inline int peek(const struct lp *lp)
{
    return lp->pos < lp->len ? (unsigned char)lp->s[lp->pos] : -1;
}

static inline void skip_spaces(struct lp *lp)
{
    while (lp->pos < lp->len && lp->s[lp->pos] == ' ')
        lp->pos++;
}

/* Consume a line end ("\n", "\r\n", or "\r" ending the input) or the end of
 * the input. */
static bool take_eol(struct lp *lp)
{
    int c = peek(lp);
    if (c < 0)
        return true;
    if (c == '\n') {
        lp->pos++;
        return true;
    }
    if (c == '\r') {
        if (lp->pos + 1 == lp->len) {
            lp->pos++;
            return true;
        }
        if (lp->s[lp->pos + 1] == '\n') {
            lp->pos += 2;
            return true;
        }
    }
    return false;
}

/* Skip blank lines and comment lines. A comment with a control character in
 * it is not skipped: the cursor goes back to its line's start, where the
 * measurement parser reports it. */
static void skip_blank(struct lp *lp)
{
    for (;;) {
        size_t line_start = lp->pos;
        lp->line_start = line_start;
        skip_spaces(lp);
        int c = peek(lp);
        if (c == '#') {
            while (lp->pos < lp->len) {
                unsigned char k = (unsigned char)lp->s[lp->pos];
                if (is_ctl(k))
                    break;
                lp->pos++;
            }
            if (!take_eol(lp)) {
                lp->pos = line_start;
                return;
            }
        } else if (c == '\n') {
            lp->pos++;
        } else if (c == '\r') {
            if (!take_eol(lp))
                return;
        } else {
            return;
        }
    }
}

/* ---- numbers ------------------------------------------------------------ */

static inline bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_xdigit(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Underscores may only separate digits, or follow a "0x" prefix (Go's
 * rule for number literals). */
static bool underscores_ok(const char *s, size_t n, bool hex)
{
    char saw = '^'; /* '^' start, '0' digit or prefix, '_' underscore, '!' other */
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    if (hex) {
        i += 2;
        saw = '0';
    }
    for (; i < n; i++) {
        int c = (unsigned char)s[i];
        if (hex ? is_xdigit(c) : is_digit(c)) {
            saw = '0';
        } else if (c == '_') {
            if (saw != '0')
                return false;
            saw = '_';
        } else {
            if (saw == '_')
                return false;
            saw = '!';
        }
    }
    return saw != '_';
}

/* Go's float syntax: [sign] decimal digits with an optional point and
 * exponent, or 0x hex digits with an optional point and a mandatory p
 * exponent; underscores between digits. True when @s is well-formed;
 * *@has_us tells whether underscores must go before conversion. */
static bool float_syntax(const char *s, size_t n, bool *has_us)
{
    size_t i = 0, digits = 0;
    bool point = false, us = false, hex = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    if (n - i >= 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        hex = true;
        i += 2;
    }
    for (; i < n; i++) {
        int c = (unsigned char)s[i];
        if (hex ? is_xdigit(c) : is_digit(c))
            digits++;
        else if (c == '_')
            us = true;
        else if (c == '.' && !point)
            point = true;
        else
            break;
    }
    if (!digits)
        return false;
    if (i < n && (hex ? (s[i] == 'p' || s[i] == 'P') : (s[i] == 'e' || s[i] == 'E'))) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t ed = 0;
        for (; i < n; i++) {
            if (is_digit((unsigned char)s[i]))
                ed++;
            else if (s[i] == '_')
                us = true;
            else
                break;
        }
        if (!ed)
            return false;
    } else if (hex) {
        return false; /* a hex mantissa needs a p exponent */
    }
    if (i != n || (us && !underscores_ok(s, n, hex)))
        return false;
    *has_us = us;
    return true;
}

/* Convert @s (well-formed) with strtod on a NUL-terminated copy. */
static int to_double(struct lp *lp, const char *s, size_t n, bool strip_us, double *out)
{
    char stack[NUM_STACK_BYTES];
    char *buf = stack;
    size_t soff = lp->scratch.len;
    if (n >= sizeof(stack)) {
        if (gd_buf_reserve(&lp->scratch, n + 1) < 0)
            return GD_ENOMEM;
        buf = lp->scratch.data + soff;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!strip_us || s[i] != '_')
            buf[k++] = s[i];
    buf[k] = '\0';
    errno = 0;
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + k)
        return GD_EINVAL;
    if (errno == ERANGE && (v > 1.0 || v < -1.0))
        return GD_ERANGE; /* overflow; underflow to 0 or a subnormal is fine */
    *out = v;
    return 0;
}

/* Decimal integer, optional leading '-' (when @is_signed). */
static int to_int(const char *s, size_t n, bool is_signed, int64_t *i_out, uint64_t *u_out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) {
        if (!is_signed && s[i] == '-')
            return GD_EINVAL;
        neg = s[i] == '-';
        i++;
    }
    if (i == n)
        return GD_EINVAL;
    uint64_t v = 0;
    bool over = false;
    for (; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return GD_EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            over = true;
        else
            v = v * 10 + d;
    }
    if (over)
        return GD_ERANGE;
    if (!is_signed) {
        *u_out = v;
        return 0;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return GD_ERANGE;
        *i_out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return GD_ERANGE;
        *i_out = (int64_t)v;
    }
    return 0;
}

static bool parse_bool(const char *s, size_t n, bool *out)
{
    static const char *const yes[] = {"t", "T", "true", "True", "TRUE"};
    static const char *const no[] = {"f", "F", "false", "False", "FALSE"};
    for (size_t i = 0; i < 5; i++) {
        if (strlen(yes[i]) == n && memcmp(s, yes[i], n) == 0) {
            *out = true;
            return true;
        }
        if (strlen(no[i]) == n && memcmp(s, no[i], n) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static const int64_t prec_ns[] = {1, 1000, 1000000, 1000000000};

/* ---- one line ------------------------------------------------------------ */

/* Tag commas: a comma after the measurement or a tag value must be
 * followed by a tag key. */
static int tag_comma(struct lp *lp)
{
    if (peek(lp) != ',')
        return 0;
    lp->pos++;
    int c = peek(lp);
    if (c < 0)
        return err_at(lp, lp->pos, "expected tag key after comma, found end of input");
    if (c == ' ' || c == '\r' || c == '\n')
        return err_at(lp, lp->pos, "expected tag key after comma, found white space");
    return 0;
}

/* Tags up to the fields. A repeated key is reported once every tag has
 * parsed (a syntax error further on is reported first). */
static int parse_tags(struct lp *lp, gd_point *p)
{
    size_t dup_pos = SIZE_MAX;
    for (;;) {
        int c = peek(lp);
        if (c == ' ') {
            skip_spaces(lp);
            break;
        }
        size_t kpos = lp->pos;
        struct span k, v;
        lp->scratch.len = 0;
        int rc = take(lp, TOK_KEY, &k);
        if (rc < 0)
            return rc;
        c = peek(lp);
        if (k.len == 0 || c != '=') {
            if (c < 0)
                return err_at(lp, kpos,
                              k.len ? "expected '=' after tag key, found end of input"
                                    : "expected tag key or fields, found end of input");
            return err_at(lp, kpos,
                          k.len ? "expected '=' after tag key" : "expected tag key or fields");
        }
        lp->pos++;
        size_t vpos = lp->pos;
        rc = take(lp, TOK_TAGVAL, &v);
        if (rc < 0)
            return rc;
        if (v.len == 0)
            return err_at(lp, vpos, "expected tag value after '='");
        const char *kp = span_ptr(lp, &k), *vp = span_ptr(lp, &v);
        size_t nt;
        const gd_tag *tags = gd_point_tags(p, &nt);
        for (size_t i = 0; i < nt && dup_pos == SIZE_MAX; i++)
            if (tags[i].key_len == k.len && memcmp(tags[i].key, kp, k.len) == 0)
                dup_pos = kpos;
        rc = gd_point_tag_n(p, kp, k.len, vp, v.len);
        if (rc < 0)
            return rc;
        if (lp->pos == lp->len)
            break; /* the fields parser reports the missing fields */
        rc = tag_comma(lp);
        if (rc < 0)
            return rc;
    }
    return dup_pos == SIZE_MAX ? 0 : err_at(lp, dup_pos, "duplicate tag key");
}

/* One field; *@more is set when a comma follows. */
static int parse_field(struct lp *lp, gd_point *p, bool *more)
{
    size_t kpos = lp->pos;
    struct span k;
    lp->scratch.len = 0;
    int rc = take(lp, TOK_KEY, &k);
    if (rc < 0)
        return rc;
    if (k.len == 0)
        return err_at(lp, kpos,
                      peek(lp) < 0 ? "expected field key, found end of input"
                                   : "invalid character at start of field key");
    if (peek(lp) < 0)
        return err_at(lp, lp->pos, "expected '=' after field key, found end of input");
    if (peek(lp) != '=')
        return err_at(lp, lp->pos, "expected '=' after field key");
    lp->pos++;
    size_t vpos = lp->pos;
    int c = peek(lp);
    if (c < 0)
        return err_at(lp, vpos, "expected field value, found end of input");

    gd_field f = {.key_len = (uint32_t)k.len};
    if (c == '"') {
        lp->pos++;
        struct span sv;
        rc = take(lp, TOK_STRING, &sv);
        if (rc < 0)
            return rc;
        if (peek(lp) != '"')
            return err_at(lp, vpos, "missing closing quote of string value");
        lp->pos++;
        f.type = GD_STR;
        f.v.str.ptr = span_ptr(lp, &sv);
        f.v.str.len = sv.len;
    } else if (c == 't' || c == 'T' || c == 'f' || c == 'F' || c == '-' || c == '.' ||
               is_digit(c)) {
        while (lp->pos < lp->len) {
            char d = lp->s[lp->pos];
            if (d == ',' || d == ' ' || d == '\r' || d == '\n')
                break;
            lp->pos++;
        }
        const char *v = lp->s + vpos;
        size_t n = lp->pos - vpos;
        if (c == 't' || c == 'T' || c == 'f' || c == 'F') {
            f.type = GD_BOOL;
            if (!parse_bool(v, n, &f.v.b))
                return err_at(lp, vpos, "invalid boolean value");
        } else if (v[n - 1] == 'i' || v[n - 1] == 'u') {
            bool is_signed = v[n - 1] == 'i';
            f.type = is_signed ? GD_I64 : GD_U64;
            /* no '+' here: the value cannot start with one */
            rc = to_int(v, n - 1, is_signed, &f.v.i64, &f.v.u64);
            if (rc == GD_ERANGE)
                return err_at(lp, vpos, "integer value out of range");
            if (rc < 0)
                return err_at(lp, vpos,
                              is_signed ? "invalid integer value"
                                        : "invalid unsigned integer value");
        } else {
            bool strip = false;
            f.type = GD_F64;
            if (!float_syntax(v, n, &strip))
                return err_at(lp, vpos, "invalid float value");
            rc = to_double(lp, v, n, strip, &f.v.f64);
            if (rc == GD_ENOMEM)
                return rc;
            if (rc < 0)
                return err_at(lp, vpos, "float value out of range");
        }
    } else {
        return err_at(lp, vpos, "field value of unknown type");
    }
    f.key = span_ptr(lp, &k); /* after the string value: the scratch may have moved */
    rc = gd_point_field(p, &f);
    if (rc < 0)
        return rc;

    c = peek(lp);
    *more = c == ',';
    if (*more)
        lp->pos++;
    else if (c >= 0 && c != ' ' && c != '\r' && c != '\n')
        return err_at(lp, lp->pos, "unexpected character after field value");
    return 0;
}

/* After the fields: optional spaces, then a line end or a timestamp. */
static int parse_time(struct lp *lp, gd_point *p, gd_precision prec, int64_t default_ns)
{
    skip_spaces(lp);
    if (!take_eol(lp)) {
        size_t tpos = lp->pos;
        while (lp->pos < lp->len && (is_digit(lp->s[lp->pos]) || lp->s[lp->pos] == '-'))
            lp->pos++;
        size_t n = lp->pos - tpos;
        int c = peek(lp);
        if (c >= 0 && c != ' ' && c != '\r' && c != '\n')
            return err_at(lp, tpos, "invalid timestamp");
        skip_spaces(lp);
        if (!take_eol(lp))
            return err_at(lp, lp->pos, "unexpected text after timestamp");
        if (n) {
            int64_t ts;
            int rc = to_int(lp->s + tpos, n, true, &ts, NULL);
            if (rc < 0)
                return err_at(lp, tpos,
                              rc == GD_ERANGE ? "timestamp out of range" : "invalid timestamp");
            int64_t m = prec_ns[prec];
            if (ts > INT64_MAX / m || ts < INT64_MIN / m)
                return err_at(lp, tpos, "timestamp out of range");
            return gd_point_set_time(p, ts * m);
        }
    }
    int64_t m = prec_ns[prec];
    int64_t t = default_ns / m * m;
    if (t > default_ns)
        t -= m; /* floor for times before 1970 */
    return gd_point_set_time(p, t);
}

static int parse_line(struct lp *lp, gd_batch *b, gd_precision prec, int64_t default_ns)
{
    size_t mpos = lp->pos;
    struct span m;
    lp->scratch.len = 0;
    int rc = take(lp, TOK_MEASUREMENT, &m);
    if (rc < 0)
        return rc;
    if (m.len == 0) /* reported at the line's start, leading spaces included */
        return err_at(lp, peek(lp) < 0 ? mpos : lp->line_start,
                      peek(lp) < 0 ? "no measurement name"
                                   : "invalid character at start of measurement");
    const char *mp = span_ptr(lp, &m);
    if (mp[0] == '#')
        return err_at(lp, mpos, "invalid character in comment line");
    rc = tag_comma(lp);
    if (rc < 0)
        return rc;
    gd_point *p = gd_batch_add_n(b, mp, m.len, 0);
    if (!p)
        return gd_batch_is_frozen(b) ? GD_EFROZEN : GD_ENOMEM;
    rc = parse_tags(lp, p);
    bool more = rc == 0;
    while (rc == 0 && more)
        rc = parse_field(lp, p, &more);
    if (rc == 0)
        rc = parse_time(lp, p, prec, default_ns);
    if (rc < 0)
        gd_batch_drop_last(b);
    return rc;
}

int gd_lp_parse(gd_batch *b, const char *text, size_t len, gd_precision prec, int64_t default_ns,
                size_t *added, gd_lp_error *err)
{
    if (added)
        *added = 0;
    if (!b || (!text && len) || (unsigned)prec > GD_PREC_S)
        return GD_EINVAL;
    if (gd_batch_is_frozen(b))
        return GD_EFROZEN;
    struct lp lp = {.s = text, .len = len};
    size_t before = gd_batch_len(b);
    int rc = 0;
    for (;;) {
        skip_blank(&lp);
        if (lp.pos >= lp.len)
            break;
        rc = parse_line(&lp, b, prec, default_ns);
        if (rc < 0)
            break;
    }
    gd_buf_free(&lp.scratch);
    if (added)
        *added = gd_batch_len(b) - before;
    if (rc == GD_EPARSE && err) {
        size_t line = 1, col_start = 0;
        for (size_t i = 0; i < lp.err_pos && i < len; i++) {
            if (text[i] == '\n') {
                line++;
                col_start = i + 1;
            }
        }
        *err = (gd_lp_error){.line = line,
                             .column = lp.err_pos - col_start + 1,
                             .offset = lp.err_pos,
                             .reason = lp.reason};
    }
    return rc;
}
