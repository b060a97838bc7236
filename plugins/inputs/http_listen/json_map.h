/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_map.h - map JSON documents (one object, or an array of objects) to
 * points: which keys give the measurement, the tags, the fields and the
 * timestamp is configuration.
 */
#ifndef GATHERD_HTTP_LISTEN_JSON_MAP_H
#define GATHERD_HTTP_LISTEN_JSON_MAP_H

#include <gatherd/batch.h>

/** How the value at time_key is read. The order matches jm_time_format_names. */
enum jm_time_format {
    JM_TIME_UNIX_MS = 0, /* integer or fractional milliseconds since the epoch */
    JM_TIME_UNIX = 1,    /* seconds (fractions kept to the nanosecond) */
    JM_TIME_UNIX_US = 2, /* microseconds */
    JM_TIME_UNIX_NS = 3, /* nanoseconds (integer) */
    JM_TIME_RFC3339 = 4, /* "2024-05-01T12:00:00.25Z", offsets allowed */
};

/** NULL-terminated names of enum jm_time_format, for an option table. */
extern const char *const jm_time_format_names[];

/** The mapping. Lists are borrowed. */
struct jm_map {
    const char *measurement;     /* used when measurement_key is unset or absent */
    const char *measurement_key; /* key whose string value names the measurement */
    char *const *tag_keys;       /* keys copied as tags (strings, numbers, booleans) */
    size_t n_tag_keys;
    char *const *field_keys; /* keys copied as fields; none: every numeric or boolean key */
    size_t n_field_keys;
    const char *time_key; /* key holding the timestamp; unset or absent: @now_ns */
    int time_format;      /* enum jm_time_format */
};

/** Where and why mapping failed. */
struct jm_error {
    size_t item; /* 1-based index of the object in the array (1 for a lone object) */
    size_t line; /* JSON syntax errors: 1-based line and column; 0 otherwise */
    size_t column;
    char text[160];
};

/** jm_map_json() - parse @len bytes of JSON and append one point per object
 * to @b. Numbers become float fields, booleans boolean fields, strings
 * (only when listed in field_keys) string fields; null values are skipped.
 * Stops at the first object that cannot be mapped: points of the objects
 * before it stay in @b, and *@err says why. *@added receives the number of
 * points appended, *@total (optional) the number of objects in the document.
 * Returns 0, GD_EPARSE or GD_ENOMEM. */
int jm_map_json(gd_batch *b, const char *text, size_t len, const struct jm_map *map, int64_t now_ns,
                size_t *added, size_t *total, struct jm_error *err);


#endif
