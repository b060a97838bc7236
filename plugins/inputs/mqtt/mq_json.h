/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mq_json.h - the JSON payload mapping of the mqtt input, in the manner of
 * Telegraf's json format: one object or an array of objects, one point per
 * object; the measurement from the configuration or a key, tags from listed
 * keys, fields from listed keys (default: every number and boolean, nested
 * objects and arrays flattened with "_"), the timestamp from a key.
 *
 * Knows nothing of MQTT: mq_json_map() turns one payload into points.
 */
#ifndef GATHERD_MQTT_JSON_H
#define GATHERD_MQTT_JSON_H

#include <gatherd/gatherd.h>

/* Timestamp formats; the order is the `time_format` option's choices. */
enum mq_time_format {
    MQ_TIME_UNIX = 0, /* seconds, fractions kept */
    MQ_TIME_UNIX_MS,
    MQ_TIME_UNIX_US,
    MQ_TIME_UNIX_NS,
    MQ_TIME_RFC3339,
};
extern const char *const mq_time_format_names[];

/* The mapping. Strings and lists are borrowed from the configuration. */
struct mq_json_map {
    const char *measurement;     /* used when measurement_key is unset or absent */
    const char *measurement_key; /* key whose string value names the measurement */
    char *const *tag_keys;
    size_t n_tag_keys;
    char *const *field_keys; /* none: every number and boolean */
    size_t n_field_keys;
    const char *time_key; /* unset or absent: the receive time */
    int time_format;      /* enum mq_time_format */
};

/* What one payload came to. */
struct mq_json_result {
    size_t added;  /* points appended */
    size_t bad;    /* objects dropped (not an object, bad time, no field) */
    char why[192]; /* the first problem ("" when none) */
};

/* mq_json_map() - parse @len bytes of JSON and append one point per object
 * to @b; objects without a usable timestamp get @now_ns. Fills *@r.
 * Returns 0 (objects may still have been dropped: r->bad), GD_EPARSE when
 * the payload is not JSON or neither an object nor an array (r->why says
 * where), or GD_ENOMEM. */
int mq_json_map(gd_batch *b, const char *text, size_t len, const struct mq_json_map *m,
                int64_t now_ns, struct mq_json_result *r);


#endif
