/* SPDX-License-Identifier: Apache-2.0 */
/* test_lineproto.c - gd_buf, line-protocol and JSON encoding, gd_fmt_double. */
#include <criterion/criterion.h>
#include <float.h>
#include <inttypes.h>
#include <gatherd/lineproto.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CORPUS_FILE       "line-protocol-corpus.json"
#define MISMATCH_LIST_MAX 4096
#define RANDOM_DOUBLES    200000

/* ---- helpers ----------------------------------------------------------- */

/* Encode @p and return the line (owned by the caller). */
static char *lp(const gd_point *p, gd_precision prec)
{
    gd_buf out = {0};
    const char *why = NULL;
    int rc = gd_lp_encode_point(&out, p, prec, &why);
    cr_assert_eq(rc, 0, "encode failed: %s", why ? why : "?");
    return out.data;
}

static void assert_lp(const gd_point *p, gd_precision prec, const char *want)
{
    char *got = lp(p, prec);
    cr_assert_str_eq(got, want);
    free(got);
}

/* The encoder refuses @p and leaves the buffer as it was. */
static void assert_lp_refused(const gd_point *p)
{
    gd_buf out = {0};
    cr_assert_eq(gd_buf_puts(&out, "before\n"), 0);
    const char *why = NULL;
    cr_assert_eq(gd_lp_encode_point(&out, p, GD_PREC_NS, &why), GD_EINVAL);
    cr_assert_not_null(why, "a reason is given");
    cr_assert_eq(out.len, 7);
    cr_assert_str_eq(out.data, "before\n");
    gd_buf_free(&out);
}

static gd_point *point(gd_batch *b, const char *m)
{
    gd_point *p = gd_batch_add(b, m, 0);
    cr_assert_not_null(p);
    return p;
}

/* ---- corpus ------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)n + 1);
            if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
                buf[n] = '\0';
                *len = (size_t)n;
            } else {
                free(buf);
                buf = NULL;
            }
        }
    }
    fclose(f);
    return buf;
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* Index just past the JSON string starting at s[i] == '"'. */
static size_t skip_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\')
            i++;
    return i + 1;
}

/* Index just past the JSON value starting at s[i]. */
static size_t skip_value(const char *s, size_t i, size_t n)
{
    int depth = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            i = skip_string(s, i, n);
        } else if (c == '{' || c == '[') {
            depth++;
            i++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i;
            depth--;
            i++;
        } else if (c == ',' && depth == 0) {
            return i;
        } else {
            i++;
        }
        if (depth == 0 && (c == '"' || c == '}' || c == ']'))
            return i;
    }
    return i;
}

/*
 * Parse only the top-level member @name of the JSON object in @text. The
 * corpus's decode section holds integers above INT64_MAX, which jansson
 * refuses, so the whole file cannot be loaded at once.
 */
static json_t *load_member(const char *text, size_t n, const char *name)
{
    size_t i = skip_ws(text, 0, n);
    if (i >= n || text[i] != '{')
        return NULL;
    i++;
    size_t nlen = strlen(name);
    for (;;) {
        i = skip_ws(text, i, n);
        if (i >= n || text[i] != '"')
            return NULL;
        size_t key = i + 1;
        i = skip_string(text, i, n);
        size_t klen = i - 1 - key;
        i = skip_ws(text, i, n);
        if (i >= n || text[i] != ':')
            return NULL;
        size_t start = skip_ws(text, i + 1, n);
        size_t end = skip_value(text, start, n);
        if (klen == nlen && memcmp(text + key, name, nlen) == 0) {
            json_error_t err;
            json_t *v = json_loadb(text + start, end - start, JSON_ALLOW_NUL, &err);
            cr_assert_not_null(v, "corpus member %s: %s (line %d)", name, err.text, err.line);
            return v;
        }
        i = skip_ws(text, end, n);
        if (i >= n || text[i] != ',')
            return NULL;
        i++;
    }
}

static int b64_val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decode base64 (padding optional) into a new buffer. */
static char *b64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    cr_assert_not_null(out);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        int v = b64_val((unsigned char)s[i]);
        cr_assert_geq(v, 0, "bad base64 in corpus: %s", s);
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
}

/* Bytes of a corpus string, plain or {"binary": base64}. The result is
 * malloc'd. */
static char *corpus_bytes(json_t *v, size_t *len)
{
    if (json_is_string(v)) {
        *len = json_string_length(v);
        char *s = malloc(*len + 1);
        cr_assert_not_null(s);
        memcpy(s, json_string_value(v), *len + 1);
        return s;
    }
    json_t *bin = json_object_get(v, "binary");
    cr_assert(json_is_string(bin), "corpus string is neither text nor binary");
    return b64_decode(json_string_value(bin), len);
}

static int corpus_precision(const char *s, gd_precision *prec)
{
    static const struct {
        const char *name;
        gd_precision prec;
    } map[] = {{"1ns", GD_PREC_NS},
               {"1µs", GD_PREC_US},
               {"1us", GD_PREC_US},
               {"1ms", GD_PREC_MS},
               {"1s", GD_PREC_S}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(s, map[i].name) == 0) {
            *prec = map[i].prec;
            return 0;
        }
    }
    return -1;
}

static int corpus_field(gd_point *p, json_t *jf)
{
    size_t klen;
    char *key = corpus_bytes(json_object_get(jf, "key"), &klen);
    json_t *jv = json_object_get(jf, "value");
    gd_field f = {.key = key, .key_len = (uint32_t)klen};
    char *str = NULL;
    json_t *x;
    int rc;
    if ((x = json_object_get(jv, "float"))) {
        f.type = GD_F64;
        f.v.f64 = json_number_value(x);
    } else if ((x = json_object_get(jv, "int"))) {
        cr_assert(json_is_integer(x));
        f.type = GD_I64;
        f.v.i64 = json_integer_value(x);
    } else if ((x = json_object_get(jv, "uint"))) {
        cr_assert(json_is_integer(x));
        f.type = GD_U64;
        f.v.u64 = (uint64_t)json_integer_value(x);
    } else if ((x = json_object_get(jv, "bool"))) {
        f.type = GD_BOOL;
        f.v.b = json_is_true(x);
    } else if ((x = json_object_get(jv, "string"))) {
        f.type = GD_STR;
        str = corpus_bytes(x, &f.v.str.len);
        f.v.str.ptr = str;
    } else {
        cr_assert_fail("corpus field of unknown type");
    }
    rc = gd_point_field(p, &f);
    free(str);
    free(key);
    return rc;
}

/* Build the corpus point @jp in @b and encode it; 0 and the line, or an
 * error from a builder or the encoder. */
static int corpus_encode(gd_batch *b, json_t *jp, gd_precision prec, gd_buf *out)
{
    size_t nlen;
    char *name = corpus_bytes(json_object_get(jp, "name"), &nlen);
    gd_point *p = gd_batch_add_n(b, name, nlen, json_integer_value(json_object_get(jp, "time")));
    free(name);
    if (!p)
        return GD_EINVAL;
    size_t i;
    json_t *jt;
    json_array_foreach(json_object_get(jp, "tags"), i, jt)
    {
        size_t klen, vlen;
        char *k = corpus_bytes(json_object_get(jt, "key"), &klen);
        char *v = corpus_bytes(json_object_get(jt, "value"), &vlen);
        int rc = gd_point_tag_n(p, k, klen, v, vlen);
        free(k);
        free(v);
        if (rc < 0)
            return rc;
    }
    json_t *jf;
    json_array_foreach(json_object_get(jp, "fields"), i, jf)
    {
        int rc = corpus_field(p, jf);
        if (rc < 0)
            return rc;
    }
    return gd_lp_encode_point(out, p, prec, NULL);
}

static void note_mismatch(char *list, const char *key)
{
    size_t used = strlen(list);
    if (used + strlen(key) + 2 < MISMATCH_LIST_MAX)
        snprintf(list + used, MISMATCH_LIST_MAX - used, "%s%s", used ? " " : "", key);
}

Test(lineproto_corpus, every_encode_case_matches_the_reference)
{
    const char *dir = getenv("GATHERD_TEST_DATA");
    cr_assert_not_null(dir, "GATHERD_TEST_DATA is not set (meson test sets it to tests/data)");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, CORPUS_FILE);
    size_t len;
    char *text = read_file(path, &len);
    cr_assert_not_null(text, "cannot read the corpus at %s", path);
    json_t *cases = load_member(text, len, "encode");
    free(text);
    cr_assert(json_is_object(cases), "no \"encode\" object in %s", path);

    size_t total = 0, passed = 0, results = 0, errors = 0;
    char mismatches[MISMATCH_LIST_MAX] = "";
    const char *key;
    json_t *c;
    json_object_foreach(cases, key, c)
    {
        total++;
        json_t *in = json_object_get(c, "input");
        json_t *want = json_object_get(c, "output");
        gd_precision prec;
        if (corpus_precision(json_string_value(json_object_get(in, "precision")), &prec) < 0) {
            note_mismatch(mismatches, key);
            continue;
        }
        gd_batch *b = gd_batch_new(1);
        gd_buf out = {0};
        int rc = corpus_encode(b, json_object_get(in, "point"), prec, &out);
        bool ok;
        if (json_object_get(want, "error")) {
            ok = rc < 0 && out.len == 0;
            errors += ok;
        } else {
            size_t wlen;
            char *w = corpus_bytes(json_object_get(want, "result"), &wlen);
            ok = rc == 0 && out.len == wlen + 1 && memcmp(out.data, w, wlen) == 0 &&
                 out.data[wlen] == '\n';
            if (!ok)
                cr_log_warn("corpus %s: want [%s] got [%.*s] (rc %d)", key, w,
                            out.len ? (int)out.len - 1 : 0, out.data ? out.data : "", rc);
            free(w);
            results += ok;
        }
        if (ok)
            passed++;
        else
            note_mismatch(mismatches, key);
        gd_buf_free(&out);
        gd_batch_unref(b);
    }
    json_decref(cases);
    /* On stderr, so the figure lands in meson's test log. */
    fprintf(stderr,
            "line-protocol corpus, encode: %zu of %zu cases pass (%zu results, %zu errors)\n",
            passed, total, results, errors);
    cr_assert_gt(total, 0, "the corpus has no encode cases");
    cr_assert_eq(passed, total, "%zu corpus case(s) mismatch: %s", total - passed, mismatches);
}

/* The decode section holds "uint": 18446744073709551615, above jansson's
 * int64: quote those numbers so the section loads; compare as strings. */
static char *quote_big_uints(const char *text, size_t len, size_t *out_len)
{
    static const char big[] = "\"uint\": 18446744073709551615";
    char *out = malloc(len * 2 + 1);
    cr_assert_not_null(out);
    size_t o = 0, blen = strlen(big);
    for (size_t i = 0; i < len;) {
        if (len - i >= blen && memcmp(text + i, big, blen) == 0) {
            o += (size_t)sprintf(out + o, "\"uint\": \"18446744073709551615\"");
            i += blen;
        } else {
            out[o++] = text[i++];
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

static bool bytes_eq(json_t *want, const char *got, size_t got_len)
{
    size_t wlen;
    char *w = corpus_bytes(want, &wlen);
    bool eq = wlen == got_len && memcmp(w, got, wlen) == 0;
    free(w);
    return eq;
}

static bool field_eq(json_t *jf, const gd_field *f)
{
    if (!bytes_eq(json_object_get(jf, "key"), f->key, f->key_len))
        return false;
    json_t *jv = json_object_get(jf, "value"), *x;
    if ((x = json_object_get(jv, "float")))
        return f->type == GD_F64 && f->v.f64 == json_number_value(x);
    if ((x = json_object_get(jv, "int")))
        return f->type == GD_I64 && f->v.i64 == json_integer_value(x);
    if ((x = json_object_get(jv, "uint"))) {
        uint64_t u = json_is_string(x) ? strtoull(json_string_value(x), NULL, 10)
                                       : (uint64_t)json_integer_value(x);
        return f->type == GD_U64 && f->v.u64 == u;
    }
    if ((x = json_object_get(jv, "bool")))
        return f->type == GD_BOOL && f->v.b == json_is_true(x);
    if ((x = json_object_get(jv, "string")))
        return f->type == GD_STR && bytes_eq(x, f->v.str.ptr, f->v.str.len);
    return false;
}

static bool point_eq(json_t *jp, const gd_point *p)
{
    size_t mlen, nt, nf;
    const char *m = gd_point_measurement(p, &mlen);
    const gd_tag *tags = gd_point_tags(p, &nt);
    const gd_field *fields = gd_point_fields(p, &nf);
    json_t *jt = json_object_get(jp, "tags"), *jf = json_object_get(jp, "fields");
    if (!bytes_eq(json_object_get(jp, "name"), m, mlen) ||
        json_integer_value(json_object_get(jp, "time")) != gd_point_time(p) ||
        json_array_size(jt) != nt || json_array_size(jf) != nf)
        return false;
    for (size_t i = 0; i < nt; i++) {
        json_t *t = json_array_get(jt, i);
        if (!bytes_eq(json_object_get(t, "key"), tags[i].key, tags[i].key_len) ||
            !bytes_eq(json_object_get(t, "value"), tags[i].value, tags[i].value_len))
            return false;
    }
    for (size_t i = 0; i < nf; i++)
        if (!field_eq(json_array_get(jf, i), &fields[i]))
            return false;
    return true;
}

/* "... at line 1:18: ..." in the reference's error text, when it has one. */
static bool error_position(const char *msg, size_t *line, size_t *col)
{
    const char *at = msg ? strstr(msg, "at line ") : NULL;
    return at && sscanf(at, "at line %zu:%zu", line, col) == 2;
}

Test(lineproto_corpus, every_decode_case_matches_the_reference)
{
    const char *dir = getenv("GATHERD_TEST_DATA");
    cr_assert_not_null(dir, "GATHERD_TEST_DATA is not set (meson test sets it to tests/data)");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, CORPUS_FILE);
    size_t len, qlen;
    char *text = read_file(path, &len);
    cr_assert_not_null(text, "cannot read the corpus at %s", path);
    char *quoted = quote_big_uints(text, len, &qlen);
    free(text);
    json_t *cases = load_member(quoted, qlen, "decode");
    free(quoted);
    cr_assert(json_is_object(cases), "no \"decode\" object in %s", path);

    size_t total = 0, passed = 0, results = 0, errors = 0, positions = 0;
    char mismatches[MISMATCH_LIST_MAX] = "";
    const char *key;
    json_t *c;
    json_object_foreach(cases, key, c)
    {
        total++;
        json_t *in = json_object_get(c, "input");
        json_t *want = json_object_get(c, "output");
        gd_precision prec;
        cr_assert_eq(corpus_precision(json_string_value(json_object_get(in, "precision")), &prec),
                     0, "corpus %s: unknown precision", key);
        size_t tlen;
        char *t = corpus_bytes(json_object_get(in, "text"), &tlen);
        gd_batch *b = gd_batch_new(4);
        gd_lp_error err = {0};
        size_t added = 0;
        int rc = gd_lp_parse(b, t, tlen, prec,
                             json_integer_value(json_object_get(in, "defaultTime")), &added, &err);
        bool ok;
        json_t *werr = json_object_get(want, "error");
        if (werr) {
            size_t line, col;
            ok = rc == GD_EPARSE && err.reason;
            if (ok && error_position(json_string_value(werr), &line, &col)) {
                ok = err.line == line && err.column == col;
                positions += ok;
            }
            if (!ok)
                cr_log_warn("corpus %s: want error [%s], got rc %d at %zu:%zu (%s)", key,
                            json_string_value(werr), rc, err.line, err.column,
                            err.reason ? err.reason : "-");
            errors += ok;
        } else {
            json_t *res = json_object_get(want, "result");
            ok = rc == 0 && gd_batch_len(b) == json_array_size(res) && added == gd_batch_len(b);
            for (size_t i = 0; ok && i < gd_batch_len(b); i++)
                ok = point_eq(json_array_get(res, i), gd_batch_point(b, i));
            if (!ok)
                cr_log_warn("corpus %s: want %zu point(s), got rc %d, %zu point(s)%s%s", key,
                            json_array_size(res), rc, gd_batch_len(b),
                            rc == GD_EPARSE ? ": " : "", rc == GD_EPARSE ? err.reason : "");
            results += ok;
        }
        if (ok)
            passed++;
        else
            note_mismatch(mismatches, key);
        free(t);
        gd_batch_unref(b);
    }
    json_decref(cases);
    fprintf(stderr,
            "line-protocol corpus, decode: %zu of %zu cases pass (%zu results, %zu errors, "
            "%zu error positions checked)\n",
            passed, total, results, errors, positions);
    cr_assert_gt(total, 0, "the corpus has no decode cases");
    cr_assert_eq(passed, total, "%zu corpus case(s) mismatch: %s", total - passed, mismatches);
}

/* ---- escaping ---------------------------------------------------------- */

Test(lineproto, measurement_escapes_comma_and_space_only)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "a,b c=d\\e");
    gd_point_i64(p, "v", 1);
    assert_lp(p, GD_PREC_NS, "a\\,b\\ c=d\\e v=1i 0\n");
    gd_batch_unref(b);
}

Test(lineproto, tag_keys_and_values_escape_comma_equals_and_space)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "m");
    gd_point_tag(p, "k,=  ", "v,= x");
    gd_point_i64(p, "v", 1);
    assert_lp(p, GD_PREC_NS, "m,k\\,\\=\\ \\ =v\\,\\=\\ x v=1i 0\n");
    gd_batch_unref(b);
}

Test(lineproto, field_keys_escape_comma_equals_and_space)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "m");
    gd_point_bool(p, "a b,c=d", true);
    assert_lp(p, GD_PREC_NS, "m a\\ b\\,c\\=d=true 0\n");
    gd_batch_unref(b);
}

Test(lineproto, backslashes_in_names_are_literal)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "m\\x");
    gd_point_tag(p, "k\\", "\\,v");
    gd_point_i64(p, "\\f", 1);
    /* "k\" ends in a backslash: refused (it would escape the '='). */
    assert_lp_refused(p);
    gd_batch_unref(b);

    b = gd_batch_new(1);
    p = point(b, "m\\x");
    gd_point_tag(p, "k\\y", "\\,v");
    gd_point_i64(p, "\\f", 1);
    assert_lp(p, GD_PREC_NS, "m\\x,k\\y=\\\\,v \\f=1i 0\n");
    gd_batch_unref(b);
}

Test(lineproto, string_values_escape_quote_and_backslash_and_keep_newlines)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "m");
    gd_point_str(p, "s", "say \"hi\" \\ then\nnext, a=b");
    assert_lp(p, GD_PREC_NS, "m s=\"say \\\"hi\\\" \\\\ then\nnext, a=b\" 0\n");
    gd_batch_unref(b);
}

Test(lineproto, empty_string_value_is_two_quotes)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "m");
    gd_point_str(p, "s", "");
    assert_lp(p, GD_PREC_NS, "m s=\"\" 0\n");
    gd_batch_unref(b);
}

/* ---- refusals ---------------------------------------------------------- */

Test(lineproto, newline_in_measurement_is_refused)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "cpu\nload");
    gd_point_i64(p, "v", 1);
    assert_lp_refused(p);
    p = point(b, "cpu\r");
    gd_point_i64(p, "v", 1);
    assert_lp_refused(p);
    gd_batch_unref(b);
}

Test(lineproto, newline_in_tag_key_or_value_is_refused)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "m");
    gd_point_tag(p, "k\n", "v");
    gd_point_i64(p, "v", 1);
    assert_lp_refused(p);
    p = point(b, "m");
    gd_point_tag(p, "k", "v\r\n");
    gd_point_i64(p, "v", 1);
    assert_lp_refused(p);
    gd_batch_unref(b);
}

Test(lineproto, control_characters_in_field_keys_are_refused)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "m");
    gd_point_i64(p, "a\nb", 1);
    assert_lp_refused(p);
    p = point(b, "m");
    gd_point_i64(p, "tab\tkey", 1);
    assert_lp_refused(p);
    gd_batch_unref(b);
}

Test(lineproto, point_without_fields_is_refused)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "m");
    gd_point_tag(p, "k", "v");
    assert_lp_refused(p);
    gd_batch_unref(b);
}

Test(lineproto, invalid_precision_is_refused)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "m");
    gd_point_i64(p, "v", 1);
    gd_buf out = {0};
    const char *why = NULL;
    cr_assert_eq(gd_lp_encode_point(&out, p, (gd_precision)7, &why), GD_EINVAL);
    cr_assert_not_null(why);
    cr_assert_eq(out.len, 0);
    gd_buf_free(&out);
    gd_batch_unref(b);
}

/* ---- values and time --------------------------------------------------- */

Test(lineproto, integers_unsigned_and_bools_have_their_suffixes)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "m");
    gd_point_i64(p, "min", INT64_MIN);
    gd_point_i64(p, "max", INT64_MAX);
    gd_point_i64(p, "zero", 0);
    gd_point_u64(p, "umax", UINT64_MAX);
    gd_point_u64(p, "u", 7);
    gd_point_bool(p, "t", true);
    gd_point_bool(p, "f", false);
    assert_lp(p, GD_PREC_NS,
              "m min=-9223372036854775808i,max=9223372036854775807i,zero=0i,"
              "umax=18446744073709551615u,u=7u,t=true,f=false 0\n");
    gd_batch_unref(b);
}

Test(lineproto, floats_use_the_shortest_go_style_text)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = point(b, "m");
    gd_point_f64(p, "a", 1.0);
    gd_point_f64(p, "b", 0.1);
    gd_point_f64(p, "c", 6632243.0);
    gd_point_f64(p, "d", -0.64);
    gd_point_f64(p, "e", 1e-7);
    assert_lp(p, GD_PREC_NS, "m a=1,b=0.1,c=6.632243e+06,d=-0.64,e=1e-07 0\n");
    gd_batch_unref(b);
}

static void assert_time(int64_t ts, gd_precision prec, const char *want)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = gd_batch_add(b, "m", ts);
    gd_point_i64(p, "v", 1);
    char line[64];
    snprintf(line, sizeof(line), "m v=1i %s\n", want);
    assert_lp(p, prec, line);
    gd_batch_unref(b);
}

Test(lineproto, precision_divides_the_nanosecond_time)
{
    assert_time(1700000000123456789LL, GD_PREC_NS, "1700000000123456789");
    assert_time(1700000000123456789LL, GD_PREC_US, "1700000000123456");
    assert_time(1700000000123456789LL, GD_PREC_MS, "1700000000123");
    assert_time(1700000000123456789LL, GD_PREC_S, "1700000000");
}

Test(lineproto, precision_truncates_negative_times_toward_zero)
{
    /* Go's integer division, as the reference encoder does. */
    assert_time(-1500, GD_PREC_US, "-1");
    assert_time(-999999999, GD_PREC_S, "0");
    assert_time(INT64_MIN, GD_PREC_NS, "-9223372036854775808");
    assert_time(INT64_MIN, GD_PREC_S, "-9223372036");
}

/* ---- batches and buffers ----------------------------------------------- */

Test(lineproto, encode_batch_skips_and_counts_bad_points)
{
    gd_batch *b = gd_batch_new(4);
    gd_point_i64(gd_batch_add(b, "ok1", 1), "v", 1);
    gd_batch_add(b, "nofields", 2);
    gd_point_i64(gd_batch_add(b, "bad\nname", 3), "v", 1);
    gd_point_i64(gd_batch_add(b, "ok2", 4), "v", 2);
    gd_batch_freeze(b);
    gd_buf out = {0};
    size_t skipped = 99;
    cr_assert_eq(gd_lp_encode_batch(&out, b, GD_PREC_NS, &skipped), 0);
    cr_assert_eq(skipped, 2);
    cr_assert_str_eq(out.data, "ok1 v=1i 1\nok2 v=2i 4\n");
    gd_buf_free(&out);
    gd_batch_unref(b);
}

Test(lineproto, encoding_appends_to_what_the_buffer_holds)
{
    gd_batch *b = gd_batch_new(1);
    gd_point_i64(gd_batch_add(b, "m", 1), "v", 1);
    gd_buf out = {0};
    gd_buf_puts(&out, "# header\n");
    cr_assert_eq(gd_lp_encode_point(&out, gd_batch_point(b, 0), GD_PREC_NS, NULL), 0);
    cr_assert_str_eq(out.data, "# header\nm v=1i 1\n");
    cr_assert_eq(out.len, strlen(out.data));
    gd_buf_free(&out);
    gd_batch_unref(b);
}

Test(buf, grows_and_stays_nul_terminated)
{
    gd_buf b = {0};
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(gd_buf_append(&b, "abc", 3), 0);
    cr_assert_eq(b.len, 3000);
    cr_assert_geq(b.cap, b.len + 1);
    cr_assert_eq(b.data[b.len], '\0');
    cr_assert_eq(strncmp(b.data + 2997, "abc", 4), 0);
    gd_buf_free(&b);
}

Test(buf, printf_appends_formatted_text)
{
    gd_buf b = {0};
    cr_assert_eq(gd_buf_puts(&b, "x="), 0);
    cr_assert_eq(gd_buf_printf(&b, "%d-%s", 42, "y"), 0);
    char big[300];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(gd_buf_printf(&b, "%s", big), 0);
    cr_assert_eq(b.len, 6 + 299);
    cr_assert_eq(strncmp(b.data, "x=42-yzz", 8), 0);
    cr_assert_eq(b.data[b.len], '\0');
    gd_buf_free(&b);
}

Test(buf, reset_keeps_memory_and_free_zeroes)
{
    gd_buf b = {0};
    gd_buf_puts(&b, "hello");
    size_t cap = b.cap;
    gd_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, cap);
    cr_assert_str_eq(b.data, "");
    gd_buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
    gd_buf_free(&b);
    gd_buf_free(NULL);
}

/* ---- JSON -------------------------------------------------------------- */

Test(json, encodes_a_point_exactly)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = gd_batch_add(b, "m", 123);
    gd_point_tag(p, "k", "v");
    gd_point_f64(p, "f", 1.5);
    gd_point_i64(p, "i", 42);
    gd_point_bool(p, "b", true);
    gd_point_str(p, "s", "x");
    gd_buf out = {0};
    cr_assert_eq(gd_json_encode_point(&out, p), 0);
    cr_assert_str_eq(out.data, "{\"measurement\":\"m\",\"tags\":{\"k\":\"v\"},"
                               "\"fields\":{\"f\":1.5,\"i\":42,\"b\":true,\"s\":\"x\"},"
                               "\"time\":123}\n");
    gd_buf_free(&out);
    gd_batch_unref(b);
}

Test(json, prints_u64_unsigned_and_empty_tags_as_an_object)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = gd_batch_add(b, "m", -5);
    gd_point_u64(p, "u", UINT64_MAX);
    gd_point_i64(p, "i", INT64_MIN);
    gd_point_f64(p, "big", 1e21);
    gd_point_bool(p, "n", false);
    gd_buf out = {0};
    cr_assert_eq(gd_json_encode_point(&out, p), 0);
    cr_assert_str_eq(out.data, "{\"measurement\":\"m\",\"tags\":{},\"fields\":{"
                               "\"u\":18446744073709551615,\"i\":-9223372036854775808,"
                               "\"big\":1e+21,\"n\":false},\"time\":-5}\n");
    gd_buf_free(&out);
    gd_batch_unref(b);
}

Test(json, escapes_strings_per_rfc_8259)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = gd_batch_add(b, "q\"b\\", 0);
    gd_point_tag(p, "t\tab", "nl\n");
    gd_point_str_n(p, "s", "\x01\x1f\b\f\r/\x7f\xc3\xa9\xff", 10);
    gd_buf out = {0};
    cr_assert_eq(gd_json_encode_point(&out, p), 0);
    cr_assert_str_eq(out.data, "{\"measurement\":\"q\\\"b\\\\\",\"tags\":{\"t\\tab\":\"nl\\n\"},"
                               "\"fields\":{\"s\":\"\\u0001\\u001f\\b\\f\\r/\x7f\xc3\xa9\\ufffd\"},"
                               "\"time\":0}\n");
    /* And jansson agrees it is JSON. */
    json_error_t err;
    json_t *v = json_loads(out.data, 0, &err);
    cr_assert_not_null(v, "not JSON: %s", err.text);
    cr_assert_str_eq(json_string_value(json_object_get(v, "measurement")), "q\"b\\");
    json_decref(v);
    gd_buf_free(&out);
    gd_batch_unref(b);
}

/* ---- gd_fmt_double ----------------------------------------------------- */

static void assert_fmt(double v, const char *want)
{
    char buf[32];
    size_t n = gd_fmt_double(buf, v);
    cr_assert_str_eq(buf, want, "gd_fmt_double(%.17g)", v);
    cr_assert_eq(n, strlen(want));
    cr_assert(strtod(buf, NULL) == v || (v == 0 && strtod(buf, NULL) == 0));
    cr_assert_eq(signbit(strtod(buf, NULL)), signbit(v));
}

Test(fmt_double, matches_go_shortest_g_formatting)
{
    /* strconv.FormatFloat(v, 'g', -1, 64), which wrote the corpus. */
    assert_fmt(0.0, "0");
    assert_fmt(-0.0, "-0");
    assert_fmt(1.0, "1");
    assert_fmt(42.0, "42");
    assert_fmt(0.1, "0.1");
    assert_fmt(-0.64, "-0.64");
    assert_fmt(12.123, "12.123");
    assert_fmt(0.0001, "0.0001");
    assert_fmt(0.00001, "1e-05");
    assert_fmt(1e-7, "1e-07");
    assert_fmt(100000.0, "100000");
    assert_fmt(999999.0, "999999");
    assert_fmt(1e6, "1e+06");
    assert_fmt(6632243.0, "6.632243e+06");
    assert_fmt(123456789.123, "1.23456789123e+08");
    assert_fmt(1e21, "1e+21");
    assert_fmt(1e100, "1e+100");
    assert_fmt(0.3, "0.3");
    assert_fmt(0.1 + 0.2, "0.30000000000000004");
    assert_fmt(1.0 / 3.0, "0.3333333333333333");
    assert_fmt(2.0 / 3.0, "0.6666666666666666");
    assert_fmt(DBL_MAX, "1.7976931348623157e+308");
    assert_fmt(-DBL_MAX, "-1.7976931348623157e+308");
    assert_fmt(DBL_MIN, "2.2250738585072014e-308");
    assert_fmt(5e-324, "5e-324");
    assert_fmt(1e-323, "1e-323");
    assert_fmt(9007199254740993.0, "9.007199254740992e+15");
    assert_fmt(1152921504606846976.0, "1.152921504606847e+18");
    assert_fmt(5e-5, "5e-05");
    assert_fmt(123456.5, "123456.5");
}

/* Fewest significant digits that round-trip @v, by brute force: for each
 * length, the nearest decimal and its two neighbours (at a power of two the
 * nearest one can fall outside the narrower half of the interval). */
static int min_digits(double v)
{
    char buf[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof(buf), "%.*e", p - 1, fabs(v));
        uint64_t m = 0;
        const char *s = buf;
        for (; *s != 'e'; s++)
            if (*s >= '0' && *s <= '9')
                m = m * 10 + (uint64_t)(*s - '0');
        int e = atoi(s + 1) - (p - 1);
        for (int d = -1; d <= 1; d++) {
            snprintf(buf, sizeof(buf), "%" PRIu64 "e%d", m + (uint64_t)d, e);
            if (strtod(buf, NULL) == fabs(v))
                return p;
        }
    }
    return 17;
}

/* Significant digits of a rendering: the mantissa's digits without
 * leading or trailing zeros ("0.0012" and "1200" both have 2). */
static int significant_digits(const char *s)
{
    char dig[40];
    size_t n = 0;
    for (; *s && *s != 'e' && n < sizeof(dig); s++)
        if (*s >= '0' && *s <= '9' && (n > 0 || *s != '0'))
            dig[n++] = *s;
    while (n > 0 && dig[n - 1] == '0')
        n--;
    return (int)n;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    /* splitmix64: reproducible without libc's rand(). */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 10^e and 2^e without libm (the test does not link it). */
static double pow10i(int e)
{
    double r = 1.0;
    for (int i = 0; i < (e < 0 ? -e : e); i++)
        r = e < 0 ? r / 10.0 : r * 10.0;
    return r;
}

static double pow2i(int e)
{
    uint64_t bits = e >= -1022 ? (uint64_t)(e + 1023) << 52 : UINT64_C(1) << (e + 1074);
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

static void check_round_trip(double v)
{
    char buf[32];
    size_t n = gd_fmt_double(buf, v);
    cr_assert_lt(n, sizeof(buf));
    cr_assert_eq(strlen(buf), n);
    double back = strtod(buf, NULL);
    cr_assert(back == v, "%s does not read back as %.17g", buf, v);
    if (v == 0)
        return;
    cr_assert_eq(significant_digits(buf), min_digits(v), "%s is not the shortest for %.17g", buf,
                 v);
}

Test(fmt_double, round_trips_listed_values_with_the_fewest_digits)
{
    const double values[] = {0.1,
                             1e21,
                             1e-7,
                             123456789.123,
                             DBL_MAX,
                             5e-324,
                             DBL_MIN,
                             1e15,
                             1e16,
                             1e22,
                             1e23,
                             4.35,
                             0.015,
                             299792458.0,
                             1e-5,
                             9.999e14,
                             999999999999999.0,
                             0.09999999999999999,
                             1.5e300,
                             2.2250738585072009e-308,
                             4503599627370496.5,
                             8.41e21};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        check_round_trip(values[i]);
        check_round_trip(-values[i]);
    }
    char buf[32];
    gd_fmt_double(buf, -0.0);
    cr_assert_str_eq(buf, "-0");
}

Test(fmt_double, round_trips_random_doubles_with_the_fewest_digits)
{
    for (int i = 0; i < RANDOM_DOUBLES; i++) {
        uint64_t bits = rng();
        double v;
        switch (i % 4) {
        case 0: /* any finite bit pattern */
            memcpy(&v, &bits, sizeof(v));
            if (!isfinite(v))
                continue;
            break;
        case 1: /* decimal-looking metric values */
            v = (double)(int64_t)(bits % 2000000001) / 1000.0 - 1e6;
            break;
        case 2: /* few digits, wide exponents */
            v = (double)(bits % 100000) * pow10i((int)((bits >> 20) % 60) - 30);
            break;
        default: /* powers of two, where the rounding interval is lopsided */
            v = pow2i((int)((bits >> 8) % 2098) - 1074);
            break;
        }
        check_round_trip(v);
    }
}

Test(encode_batch, bad_points_are_listed_and_leave_nothing_behind)
{
    gd_batch *b = gd_batch_new(3);
    gd_point_i64(gd_batch_add(b, "m", 1), "v", 1);
    gd_batch_add(b, "m", 2); /* no field: not representable */
    gd_point_i64(gd_batch_add(b, "m", 3), "v", 3);
    gd_buf out = {0};
    gd_index_set rej = {0};
    const char *why = NULL;
    cr_assert_eq(gd_encode_batch(&out, b, GD_FORMAT_LINE, GD_PREC_NS, &rej, &why), 0);
    cr_assert_str_eq(out.data, "m v=1i 1\nm v=3i 3\n");
    cr_assert_eq(rej.n, 1);
    cr_assert_eq(rej.idx[0], 1);
    cr_assert_not_null(why);
    gd_buf_reset(&out);
    cr_assert_eq(gd_encode_batch(&out, b, GD_FORMAT_JSON, GD_PREC_NS, &rej, &why), 0);
    cr_assert_eq(rej.n, 1, "the set is replaced, not appended to");
    cr_assert(strstr(out.data, "\"fields\":{\"v\":3}"), "%s", out.data);
    gd_index_set_free(&rej);
    gd_buf_free(&out);
    gd_batch_unref(b);
}

/* ---- parsing ------------------------------------------------------------ */

static char *parse_to_lp(const char *text, gd_precision prec, int64_t def, int *rc,
                         gd_lp_error *err)
{
    gd_batch *b = gd_batch_new(4);
    *rc = gd_lp_parse(b, text, strlen(text), prec, def, NULL, err);
    gd_buf out = {0};
    cr_assert_eq(gd_lp_encode_batch(&out, b, GD_PREC_NS, NULL), 0);
    char *s = strdup(out.data ? out.data : "");
    gd_buf_free(&out);
    gd_batch_unref(b);
    return s;
}

Test(lpparse, first_bad_line_stops_parsing_and_keeps_the_lines_before)
{
    gd_lp_error err = {0};
    int rc;
    char *s = parse_to_lp("a v=1i 10\nb,t=x v=2 20\nc,t=y v=3,w=1.2.3 30\nd v=4 40\n", GD_PREC_NS,
                          0, &rc, &err);
    cr_assert_eq(rc, GD_EPARSE);
    cr_assert_str_eq(s, "a v=1i 10\nb,t=x v=2 20\n", "the half-parsed line left something: %s", s);
    cr_assert_eq(err.line, 3);
    cr_assert_eq(err.column, 13, "column %zu", err.column);
    cr_assert_eq(err.offset, strlen("a v=1i 10\nb,t=x v=2 20\n") + 12);
    cr_assert_str_eq(err.reason, "invalid float value");
    free(s);
}

Test(lpparse, added_counts_points_of_this_call_only)
{
    gd_batch *b = gd_batch_new(4);
    gd_point_i64(gd_batch_add(b, "pre", 1), "v", 1);
    size_t added = 99;
    const char *text = "m v=1 5\nm v=2 6\nm v";
    cr_assert_eq(gd_lp_parse(b, text, strlen(text), GD_PREC_NS, 0, &added, NULL), GD_EPARSE);
    cr_assert_eq(added, 2);
    cr_assert_eq(gd_batch_len(b), 3);
    gd_batch_freeze(b);
    cr_assert_eq(gd_lp_parse(b, "m v=1", 5, GD_PREC_NS, 0, &added, NULL), GD_EFROZEN);
    cr_assert_eq(added, 0);
    gd_batch_unref(b);
}

Test(lpparse, precision_scales_timestamps_and_floors_the_default_time)
{
    gd_lp_error err;
    int rc;
    char *s = parse_to_lp("m v=1 1700000000\nm v=2\n", GD_PREC_S, -1500000001, &rc, &err);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(s, "m v=1 1700000000000000000\nm v=2 -2000000000\n");
    free(s);
    s = parse_to_lp("m v=1 9223372036854776", GD_PREC_MS, 0, &rc, &err);
    cr_assert_eq(rc, GD_EPARSE);
    cr_assert_str_eq(err.reason, "timestamp out of range");
    free(s);
}

Test(lpparse, types_escapes_comments_and_crlf)
{
    gd_lp_error err;
    int rc;
    char *s = parse_to_lp("# a comment\r\n\r\n  we\\ ird\\,m,t\\ k=v\\=1 s=\"q\\\"b\\\\s\\n\",i=-9i,"
                          "u=18446744073709551615u,b=TRUE,f=0x1p-2,g=1_000.5 7\r\n",
                          GD_PREC_NS, 0, &rc, &err);
    cr_assert_eq(rc, 0, "%s at %zu:%zu", err.reason, err.line, err.column);
    cr_assert_str_eq(s, "we\\ ird\\,m,t\\ k=v\\=1 s=\"q\\\"b\\\\s\\\\n\",i=-9i,"
                        "u=18446744073709551615u,b=true,f=0.25,g=1000.5 7\n",
                     "%s", s);
    free(s);
}

Test(lpparse, refuses_what_sinks_cannot_store)
{
    static const char *const bad[] = {
        "m",            "m v",           "m v=",          "m,t= v=1",    "m,t=a,t=b v=1",
        "m v=-inf",     "m v=1e999",     "m v=9223372036854775808i", "m v=-1u",
        "m v=tru",      "m v=\"open",    "m v=1 12x",     "m v=1 1 2",   ",m v=1",
        "m\x01 v=1",    "m v\x02=1",     "m,\xff=1 v=1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gd_batch *b = gd_batch_new(1);
        gd_lp_error err = {0};
        int rc = gd_lp_parse(b, bad[i], strlen(bad[i]), GD_PREC_NS, 0, NULL, &err);
        cr_expect_eq(rc, GD_EPARSE, "accepted: %s", bad[i]);
        cr_expect_eq(gd_batch_len(b), 0, "left a point: %s", bad[i]);
        cr_expect(err.reason && err.line == 1 && err.column >= 1, "no position: %s", bad[i]);
        gd_batch_unref(b);
    }
}

Test(lpparse, what_the_encoder_writes_parses_back_the_same)
{
    gd_batch *b = gd_batch_new(4);
    gd_point *p = gd_batch_add(b, "cham ber,x", 1700000000123456789);
    gd_point_tag(p, "site", "lab a=1");
    gd_point_f64(p, "temp", -12.345678901234567);
    gd_point_str(p, "note", "say \"hi\" \\ bye\nnext");
    gd_point_u64(p, "n", UINT64_MAX);
    gd_buf once = {0}, twice = {0};
    cr_assert_eq(gd_lp_encode_batch(&once, b, GD_PREC_NS, NULL), 0);
    gd_batch *c = gd_batch_new(4);
    cr_assert_eq(gd_lp_parse(c, once.data, once.len, GD_PREC_NS, 0, NULL, NULL), 0);
    cr_assert_eq(gd_lp_encode_batch(&twice, c, GD_PREC_NS, NULL), 0);
    cr_assert_str_eq(twice.data, once.data);
    gd_buf_free(&once);
    gd_buf_free(&twice);
    gd_batch_unref(b);
    gd_batch_unref(c);
}
