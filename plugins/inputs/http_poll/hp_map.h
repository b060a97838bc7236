/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hp_map.h - the JSON -> points mapping of the http_poll input: RFC 6901
 * JSON pointers, typed fields with scale and offset, tags from the config or
 * the document, timestamps from the document (unix s/ms/us/ns, RFC 3339) or
 * the poll time, and arrays of readings (one point per item).
 *
 * Knows nothing of HTTP: a map is built once from the configuration
 * (hp_map_init() + hp_map_add_*()), then applied to every parsed response
 * with hp_map_apply(). A map belongs to one thread at a time.
 */
#ifndef GATHERD_HP_MAP_H
#define GATHERD_HP_MAP_H

#include <gatherd/gatherd.h>
#include <jansson.h>

/* Field types; the order is the `type` option's choices (hp_type_names). */
enum hp_type { HP_FLOAT = 0, HP_INT, HP_UINT, HP_BOOL, HP_STRING };
extern const char *const hp_type_names[];

/* Timestamp formats; the order is the `time_format` option's choices. */
enum hp_time_format {
    HP_TIME_AUTO = 0, /* number: magnitude picks s/ms/us/ns; string: number or RFC 3339 */
    HP_TIME_UNIX_S,
    HP_TIME_UNIX_MS,
    HP_TIME_UNIX_US,
    HP_TIME_UNIX_NS,
    HP_TIME_RFC3339,
};
extern const char *const hp_time_format_names[];

/* Why a point was dropped; the names are the drop reasons counted. */
enum hp_drop {
    HP_DROP_MISSING_FIELD = 0, /* a required field is missing (or null) */
    HP_DROP_WRONG_TYPE,        /* a required field has a value of the wrong type */
    HP_DROP_BAD_TIME,          /* the timestamp is missing or unreadable */
    HP_DROP_NO_FIELDS,         /* no field of the point has a value */
    HP_NDROP,
};
extern const char *const hp_drop_names[HP_NDROP];

/* One field as configured (an item of a `fields` list). */
struct hp_field_cfg {
    char *name;    /* field key */
    char *pointer; /* RFC 6901 pointer to the value */
    int type;      /* enum hp_type */
    double scale;  /* numeric types: value * scale + offset */
    double offset;
    bool required; /* missing or wrong: drop the point (else skip the field) */
    bool root;     /* with an array of readings: pointer into the document, not the item */
};

/* One tag read from the document (an item of a `tag_pointers` list). */
struct hp_tag_cfg {
    char *name;
    char *pointer;
    bool root;
};

/* A compiled JSON pointer: its reference tokens, unescaped. */
struct hp_tok {
    char *s;
    size_t len;
    bool is_index; /* digits without a leading zero: usable as an array index */
    size_t index;
};

struct hp_ptr {
    struct hp_tok *tok;
    size_t n;
    char *text; /* the pointer as configured, for messages */
};

struct hp_field {
    struct hp_field_cfg cfg; /* strings owned by the map */
    struct hp_ptr ptr;
};

struct hp_tagp {
    char *name;
    struct hp_ptr ptr;
    bool root;
};

/* A resolved field value of the point being built. */
struct hp_value {
    bool set;
    int type; /* enum hp_type */
    union {
        double f64;
        int64_t i64;
        uint64_t u64;
        bool b;
    } v;
    const char *str; /* HP_STRING: into the document or @buf */
    size_t str_len;
    char buf[32]; /* a number or bool written as a string */
};

/* A map: everything needed to turn one document into points. */
typedef struct hp_map {
    char *measurement;
    gd_kv *tags; /* static tags */
    size_t ntags;
    struct hp_field *fields;
    size_t nfields;
    struct hp_tagp *tagps;
    size_t ntagps;
    bool has_points;
    struct hp_ptr points; /* the array of readings */
    bool has_time;
    struct hp_ptr time;
    int time_format; /* enum hp_time_format */
    bool time_root;
    struct hp_value *vals; /* scratch, one per field */
    char err[256];         /* why the last hp_map_* call failed */
} hp_map;

/* What one hp_map_apply() came to. */
struct hp_stats {
    size_t points;            /* points added */
    size_t dropped[HP_NDROP]; /* points dropped, by reason */
    size_t skipped;           /* optional fields or tags skipped for a wrong type */
    char first[256];          /* the first problem, for the log ("" when none) */
};

/* hp_ptr_parse() - compile RFC 6901 pointer @text ("" is the whole
 * document; otherwise it starts with '/'; "~0" is '~' and "~1" is '/').
 * Returns 0, GD_EINVAL (malformed; *@why says why) or GD_ENOMEM. */
int hp_ptr_parse(struct hp_ptr *p, const char *text, const char **why);
/* hp_ptr_free() - release a compiled pointer. Accepts a zeroed one. */
void hp_ptr_free(struct hp_ptr *p);
/* hp_ptr_get() - the value @p refers to in @root (borrowed), or NULL. */
json_t *hp_ptr_get(const struct hp_ptr *p, json_t *root);

/* hp_map_init() - an empty map for @measurement (copied). Returns 0 or
 * GD_ENOMEM. Release with hp_map_free() either way. */
int hp_map_init(hp_map *m, const char *measurement);
/* hp_map_free() - release everything. Accepts a zeroed map. */
void hp_map_free(hp_map *m);

/* hp_map_add_tag() - a static tag; a later one with the same key wins. */
int hp_map_add_tag(hp_map *m, const char *key, const char *value);
/* hp_map_add_field() - a field; one with the name of an earlier field
 * replaces it (a device refining its profile). GD_EINVAL with m->err set on
 * a bad pointer, an empty name, or scale/offset on a bool or string. */
int hp_map_add_field(hp_map *m, const struct hp_field_cfg *f);
/* hp_map_add_tag_pointer() - a tag read from the document. */
int hp_map_add_tag_pointer(hp_map *m, const struct hp_tag_cfg *t);
/* hp_map_set_points() - read an array of readings at @pointer: one point
 * per item, field and tag pointers relative to the item. */
int hp_map_set_points(hp_map *m, const char *pointer);
/* hp_map_set_time() - take the timestamp from @pointer in @format (with
 * readings: relative to the item unless @root); otherwise the poll time. */
int hp_map_set_time(hp_map *m, const char *pointer, int format, bool root);

/* hp_map_apply() - add the points @doc maps to onto @out; @poll_ns is the
 * timestamp when the map has no time pointer. Fills *@st. Returns 0 (even
 * when points were dropped: see @st), GD_ENOENT or GD_ETYPE when the array of
 * readings is missing or not an array (st->first says so), or GD_ENOMEM. */
int hp_map_apply(hp_map *m, json_t *doc, int64_t poll_ns, gd_batch *out, struct hp_stats *st);

/* hp_time_parse() - a JSON timestamp in @format to ns since the epoch.
 * Returns 0, GD_ETYPE (not a number or string), GD_EINVAL (unreadable) or
 * GD_ERANGE (outside 1677..2262). */
int hp_time_parse(json_t *v, int format, int64_t *ns);

#endif
