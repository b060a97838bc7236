/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_map.c - JSON objects to points (see json_map.h).
 */
#include "json_map.h"
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NS_PER_S 1000000000LL

const char *const jm_time_format_names[] = {"unix_ms", "unix",    "unix_us",
                                            "unix_ns", "rfc3339", NULL};

static int fail(struct jm_error *err, size_t item, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct jm_error *err, size_t item, const char *fmt, ...)
{
    if (err) {
        err->item = item;
        err->line = err->column = 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof(err->text), fmt, ap);
        va_end(ap);
    }
    return GD_EPARSE;
}

static bool listed(char *const *v, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], key) == 0)
            return true;
    return false;
}

/* The timestamp of @v in @fmt; 0 or GD_EPARSE with *@why set. */
static int read_time(const json_t *v, int fmt, int64_t *ns, const char **why)
{
    if (fmt == JM_TIME_RFC3339) {
        if (!json_is_string(v) || gd_time_parse_rfc3339(json_string_value(v), ns) < 0) {
            *why = "not an RFC 3339 timestamp";
            return GD_EPARSE;
        }
        return 0;
    }
    if (!json_is_number(v)) {
        *why = "not a number";
        return GD_EPARSE;
    }
    static const double scale[] = {[JM_TIME_UNIX_MS] = 1e6,
                                   [JM_TIME_UNIX] = 1e9,
                                   [JM_TIME_UNIX_US] = 1e3,
                                   [JM_TIME_UNIX_NS] = 1};
    static const int64_t iscale[] = {[JM_TIME_UNIX_MS] = 1000000,
                                     [JM_TIME_UNIX] = NS_PER_S,
                                     [JM_TIME_UNIX_US] = 1000,
                                     [JM_TIME_UNIX_NS] = 1};
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i > INT64_MAX / iscale[fmt] || i < INT64_MIN / iscale[fmt]) {
            *why = "out of range";
            return GD_EPARSE;
        }
        *ns = (int64_t)i * iscale[fmt];
        return 0;
    }
    double d = json_real_value(v) * scale[fmt];
    if (!isfinite(d) || d >= 9.2e18 || d <= -9.2e18) {
        *why = "out of range";
        return GD_EPARSE;
    }
    *ns = (int64_t)(d < 0 ? d - 0.5 : d + 0.5); /* rounded, without libm */
    return 0;
}

/* The text of a scalar tag value in @buf; NULL for other types. */
static const char *tag_text(const json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, cap, "%.17g", json_real_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    return NULL;
}

/* Add the field @key = @v; 1 when added, 0 when skipped (null, or a type
 * not taken when @listed is false), GD_EPARSE with *@why otherwise. */
static int add_field(gd_point *p, const char *key, const json_t *v, bool listed_key,
                     const char **why)
{
    int rc;
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        rc = gd_point_f64(p, key, (double)json_integer_value(v));
        break;
    case JSON_REAL:
        rc = gd_point_f64(p, key, json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        rc = gd_point_bool(p, key, json_is_true(v));
        break;
    case JSON_STRING:
        if (!listed_key)
            return 0;
        rc = gd_point_str_n(p, key, json_string_value(v), json_string_length(v));
        break;
    case JSON_NULL:
        return 0;
    default:
        if (!listed_key)
            return 0;
        *why = "objects and arrays cannot be fields";
        return GD_EPARSE;
    }
    if (rc < 0) {
        *why = rc == GD_ENOMEM ? "out of memory" : "invalid field value";
        return rc == GD_ENOMEM ? rc : GD_EPARSE;
    }
    return 1;
}

/* Append the point of object @o (the @item-th). */
static int map_object(gd_batch *b, const json_t *o, size_t item, const struct jm_map *m,
                      int64_t now_ns, struct jm_error *err)
{
    if (!json_is_object(o))
        return fail(err, item, "item %zu: not a JSON object", item);
    const char *meas = m->measurement;
    if (m->measurement_key && *m->measurement_key) {
        const json_t *mv = json_object_get(o, m->measurement_key);
        if (mv && (!json_is_string(mv) || !json_string_length(mv)))
            return fail(err, item, "item %zu: \"%s\": measurement must be a non-empty string", item,
                        m->measurement_key);
        if (mv)
            meas = json_string_value(mv);
    }
    if (!meas || !*meas)
        return fail(err, item, "item %zu: no measurement", item);
    int64_t ts = now_ns;
    const char *why = NULL;
    if (m->time_key && *m->time_key) {
        const json_t *tv = json_object_get(o, m->time_key);
        if (tv && !json_is_null(tv) && read_time(tv, m->time_format, &ts, &why) < 0)
            return fail(err, item, "item %zu: \"%s\": %s", item, m->time_key, why);
    }
    gd_point *p = gd_batch_add(b, meas, ts);
    if (!p)
        return fail(err, item, "item %zu: invalid measurement", item);
    char buf[64];
    for (size_t i = 0; i < m->n_tag_keys; i++) {
        const json_t *tv = json_object_get(o, m->tag_keys[i]);
        if (!tv || json_is_null(tv))
            continue;
        const char *t = tag_text(tv, buf, sizeof(buf));
        if (!t || gd_point_tag(p, m->tag_keys[i], t) < 0) {
            gd_batch_drop_last(b);
            return fail(err, item, "item %zu: tag \"%s\": not a non-empty scalar", item,
                        m->tag_keys[i]);
        }
    }
    size_t nf = 0;
    int rc = 0;
    if (m->n_field_keys) {
        for (size_t i = 0; i < m->n_field_keys && rc >= 0; i++) {
            const json_t *fv = json_object_get(o, m->field_keys[i]);
            if (!fv)
                continue;
            rc = add_field(p, m->field_keys[i], fv, true, &why);
            if (rc < 0)
                rc = fail(err, item, "item %zu: field \"%s\": %s", item, m->field_keys[i], why);
            else
                nf += (size_t)rc;
        }
    } else {
        const char *key;
        json_t *fv;
        json_object_foreach((json_t *)o, key, fv)
        {
            if (listed(m->tag_keys, m->n_tag_keys, key) ||
                (m->measurement_key && strcmp(key, m->measurement_key) == 0) ||
                (m->time_key && strcmp(key, m->time_key) == 0))
                continue;
            rc = add_field(p, key, fv, false, &why);
            if (rc < 0) {
                rc = fail(err, item, "item %zu: field \"%s\": %s", item, key, why);
                break;
            }
            nf += (size_t)rc;
        }
    }
    if (rc >= 0 && nf == 0)
        rc = fail(err, item, "item %zu: no fields", item);
    if (rc < 0) {
        gd_batch_drop_last(b);
        return rc;
    }
    return 0;
}

int jm_map_json(gd_batch *b, const char *text, size_t len, const struct jm_map *map, int64_t now_ns,
                size_t *added, size_t *total, struct jm_error *err)
{
    size_t n0 = gd_batch_len(b);
    if (added)
        *added = 0;
    if (total)
        *total = 0;
    json_error_t je;
    /* Object keys keep document order (jansson >= 2.8), so fields do too. */
    json_t *doc = json_loadb(text, len, 0, &je);
    if (!doc) {
        if (total)
            *total = 1;
        int rc = fail(err, 1, "%s", je.text);
        if (err) {
            err->line = (size_t)(je.line > 0 ? je.line : 1);
            err->column = (size_t)(je.column > 0 ? je.column : 1);
        }
        return rc;
    }
    int rc = 0;
    if (json_is_array(doc)) {
        size_t n = json_array_size(doc);
        if (total)
            *total = n;
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = map_object(b, json_array_get(doc, i), i + 1, map, now_ns, err);
    } else {
        if (total)
            *total = 1;
        rc = map_object(b, doc, 1, map, now_ns, err);
    }
    json_decref(doc);
    if (added)
        *added = gd_batch_len(b) - n0;
    return rc;
}
