/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mq_json.c - JSON payloads to points (see mq_json.h).
 */
#include "mq_json.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1000000000LL
/* Deepest nesting flattened into field names; deeper values are ignored. */
#define MAX_DEPTH 8
/* Longest flattened key ("a_b_0_c"). */
#define MAX_KEY_BYTES 256

const char *const mq_time_format_names[] = {"unix",    "unix_ms", "unix_us",
                                            "unix_ns", "rfc3339", NULL};

static bool listed(char *const *v, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], key) == 0)
            return true;
    return false;
}

/* ---- time ------------------------------------------------------------- */


/* A decimal string "123", "-1.5", "1714557600.123456789" in @unit ns per
 * unit to ns, exactly: the integer and fraction digits are read apart. */
static int decimal_to_ns(const char *s, int64_t unit, int64_t *ns)
{
    bool neg = *s == '-';
    if (neg || *s == '+')
        s++;
    if (!isdigit((unsigned char)*s))
        return GD_EPARSE;
    int64_t whole = 0, frac = 0, scale = unit;
    for (; isdigit((unsigned char)*s); s++) {
        if (whole > (INT64_MAX - 9) / 10)
            return GD_EPARSE;
        whole = whole * 10 + (*s - '0');
    }
    if (*s == '.') {
        s++;
        for (; isdigit((unsigned char)*s); s++) {
            if (scale >= 10) {
                scale /= 10;
                frac += (*s - '0') * scale;
            }
        }
    }
    if (*s || whole > INT64_MAX / unit - 1)
        return GD_EPARSE;
    int64_t v = whole * unit + frac;
    *ns = neg ? -v : v;
    return 0;
}

/* A number (or a numeric string) in @unit ns per unit to ns. */
static int unix_to_ns(json_t *v, int64_t unit, int64_t *ns)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i > INT64_MAX / unit || i < INT64_MIN / unit)
            return GD_EPARSE;
        *ns = (int64_t)i * unit;
        return 0;
    }
    if (json_is_string(v))
        return decimal_to_ns(json_string_value(v), unit, ns);
    if (!json_is_real(v))
        return GD_EPARSE;
    /* Whole units and the fraction apart, so the fraction keeps the
     * precision a double has for it. */
    double x = json_real_value(v), whole = floor(x);
    if (!isfinite(x) || whole >= 9.2e18 / (double)unit || whole <= -9.2e18 / (double)unit)
        return GD_EPARSE;
    *ns = (int64_t)whole * unit + (int64_t)llround((x - whole) * (double)unit);
    return 0;
}

static int parse_time(json_t *v, int format, int64_t *ns)
{
    switch (format) {
    case MQ_TIME_UNIX:
        return unix_to_ns(v, NS_PER_S, ns);
    case MQ_TIME_UNIX_MS:
        return unix_to_ns(v, 1000000, ns);
    case MQ_TIME_UNIX_US:
        return unix_to_ns(v, 1000, ns);
    case MQ_TIME_UNIX_NS:
        return unix_to_ns(v, 1, ns);
    default:
        return json_is_string(v) ? (gd_time_parse_rfc3339(json_string_value(v), ns) < 0 ? GD_EPARSE : 0) : GD_EPARSE;
    }
}

/* ---- objects ---------------------------------------------------------- */

/* The scalar leaves of an object, with flattened names. */
struct leaf {
    char key[MAX_KEY_BYTES];
    json_t *v;
};

struct leaves {
    struct leaf *v;
    size_t n, cap;
};

static int leaves_add(struct leaves *l, const char *key, json_t *v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct leaf *nv = realloc(l->v, cap * sizeof(*nv));
        if (!nv)
            return GD_ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    snprintf(l->v[l->n].key, sizeof(l->v[l->n].key), "%s", key);
    l->v[l->n].v = v;
    l->n++;
    return 0;
}

static int flatten(struct leaves *l, const char *prefix, json_t *v, int depth)
{
    char key[MAX_KEY_BYTES];
    if (json_is_object(v)) {
        if (depth >= MAX_DEPTH)
            return 0;
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c)
        {
            int n = prefix[0] ? snprintf(key, sizeof(key), "%s_%s", prefix, k)
                              : snprintf(key, sizeof(key), "%s", k);
            if (n < 0 || (size_t)n >= sizeof(key))
                continue;
            int rc = flatten(l, key, c, depth + 1);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    if (json_is_array(v)) {
        if (depth >= MAX_DEPTH)
            return 0;
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
        {
            int n = snprintf(key, sizeof(key), "%s_%zu", prefix, i);
            if (n < 0 || (size_t)n >= sizeof(key))
                continue;
            int rc = flatten(l, key, c, depth + 1);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    return leaves_add(l, prefix, v);
}

/* Tags take strings as they are, numbers and booleans as their JSON text. */
static int add_tag(gd_point *p, const char *key, json_t *v)
{
    char buf[64];
    if (json_is_string(v))
        return json_string_length(v) ? gd_point_tag_n(p, key, strlen(key), json_string_value(v),
                                                      json_string_length(v))
                                     : 0;
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return gd_point_tag(p, key, buf);
    }
    if (json_is_real(v)) {
        gd_fmt_double(buf, json_real_value(v));
        return gd_point_tag(p, key, buf);
    }
    if (json_is_boolean(v))
        return gd_point_tag(p, key, json_is_true(v) ? "true" : "false");
    return 0;
}

/* Numbers become float fields (as Telegraf's json format does), booleans
 * boolean fields, strings string fields when @strings. Returns 1 when a
 * field was added, 0 when @v is not of a field type, or an error. */
static int add_field(gd_point *p, const char *key, json_t *v, bool strings)
{
    int rc;
    if (json_is_number(v)) {
        rc = gd_point_f64(p, key, json_number_value(v));
    } else if (json_is_boolean(v)) {
        rc = gd_point_bool(p, key, json_is_true(v));
    } else if (strings && json_is_string(v)) {
        rc = gd_point_str_n(p, key, json_string_value(v), json_string_length(v));
    } else {
        return 0;
    }
    return rc < 0 ? rc : 1;
}

static void note(struct mq_json_result *r, size_t item, const char *what)
{
    r->bad++;
    if (!r->why[0])
        snprintf(r->why, sizeof(r->why), "item %zu: %s", item, what);
}

static int map_object(gd_batch *b, json_t *o, size_t item, const struct mq_json_map *m,
                      int64_t now_ns, struct leaves *l, struct mq_json_result *r)
{
    if (!json_is_object(o)) {
        note(r, item, "not an object");
        return 0;
    }
    const char *meas = m->measurement;
    if (m->measurement_key) {
        json_t *mv = json_object_get(o, m->measurement_key);
        if (json_is_string(mv) && json_string_length(mv))
            meas = json_string_value(mv);
    }
    int64_t ts = now_ns;
    if (m->time_key) {
        json_t *tv = json_object_get(o, m->time_key);
        if (tv && parse_time(tv, m->time_format, &ts) < 0) {
            char what[128];
            snprintf(what, sizeof(what), "unreadable timestamp in \"%s\" (time_format %s)",
                     m->time_key, mq_time_format_names[m->time_format]);
            note(r, item, what);
            return 0;
        }
    }
    l->n = 0;
    int rc = flatten(l, "", o, 0);
    if (rc < 0)
        return rc;

    gd_point *p = gd_batch_add(b, meas, ts);
    if (!p)
        return GD_ENOMEM;
    size_t nfields = 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *k = l->v[i].key;
        json_t *v = l->v[i].v;
        if (listed(m->tag_keys, m->n_tag_keys, k)) {
            rc = add_tag(p, k, v);
        } else if ((m->time_key && strcmp(k, m->time_key) == 0) ||
                   (m->measurement_key && strcmp(k, m->measurement_key) == 0)) {
            rc = 0;
        } else if (m->n_field_keys) {
            rc = listed(m->field_keys, m->n_field_keys, k) ? add_field(p, k, v, true) : 0;
        } else {
            rc = add_field(p, k, v, false);
        }
        if (rc == GD_ENOMEM) {
            gd_batch_drop_last(b);
            return rc;
        }
        if (rc > 0)
            nfields++;
    }
    if (nfields == 0) {
        gd_batch_drop_last(b);
        note(r, item, "no fields");
        return 0;
    }
    r->added++;
    return 0;
}

int mq_json_map(gd_batch *b, const char *text, size_t len, const struct mq_json_map *m,
                int64_t now_ns, struct mq_json_result *r)
{
    memset(r, 0, sizeof(*r));
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (!doc) {
        snprintf(r->why, sizeof(r->why), "line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return GD_EPARSE;
    }
    struct leaves l = {0};
    int rc = 0;
    if (json_is_array(doc)) {
        size_t i;
        json_t *o;
        json_array_foreach(doc, i, o)
        {
            rc = map_object(b, o, i + 1, m, now_ns, &l, r);
            if (rc < 0)
                break;
        }
    } else if (json_is_object(doc)) {
        rc = map_object(b, doc, 1, m, now_ns, &l, r);
    } else {
        snprintf(r->why, sizeof(r->why), "neither an object nor an array of objects");
        rc = GD_EPARSE;
    }
    free(l.v);
    json_decref(doc);
    return rc;
}
