/* SPDX-License-Identifier: Apache-2.0 */
/**
 * gatherd/batch.h - the data model: points in arena-backed batches.
 *
 * A point is influx-shaped: a measurement, tags (string key/value pairs kept
 * sorted by key), typed fields (kept in insertion order) and a timestamp in
 * nanoseconds since the epoch. Points live in a batch: every string and array
 * is carved from the batch's arena, so building a point costs no malloc per
 * value, and one gd_batch_unref() frees everything.
 *
 * Lifecycle: gd_batch_new() -> gd_batch_add() + gd_point_*() builders ->
 * hand over (gd_emit(), or return it from collect/process) -> the batch is
 * frozen: builders refuse with GD_EFROZEN, and any number of holders share it
 * through gd_batch_ref()/gd_batch_unref(). Reference counting is atomic; a
 * frozen batch may be read from any thread. A batch under construction
 * belongs to one thread.
 *
 *     gd_batch *b = gd_batch_new(64);
 *     gd_point *p = gd_batch_add(b, "chamber", gd_now_ns());
 *     gd_point_tag(p, "device", "c17");
 *     gd_point_f64(p, "temp_c", 21.5);
 */
#ifndef GATHERD_BATCH_H
#define GATHERD_BATCH_H

#include <gatherd/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gd_batch gd_batch;
typedef struct gd_point gd_point;

/** Field value types. The numeric values are ABI. */
typedef enum gd_ftype {
    GD_F64 = 1,  /* double */
    GD_I64 = 2,  /* int64_t, line protocol "42i" */
    GD_U64 = 3,  /* uint64_t, line protocol "42u" */
    GD_BOOL = 4, /* bool */
    GD_STR = 5,  /* string (length-counted, also NUL-terminated) */
} gd_ftype;

/** A tag as stored in a batch (read-only view; ABI, layout pinned). */
typedef struct gd_tag {
    const char *key;
    const char *value;
    uint32_t key_len;
    uint32_t value_len;
} gd_tag;

/** A field as stored in a batch (read-only view; ABI, layout pinned). */
typedef struct gd_field {
    const char *key;
    uint32_t key_len;
    uint32_t type; /* gd_ftype */
    union {
        double f64;
        int64_t i64;
        uint64_t u64;
        bool b;
        struct {
            const char *ptr;
            size_t len;
        } str;
    } v;
} gd_field;

_Static_assert(sizeof(gd_tag) == 24, "ABI: gd_tag");
_Static_assert(offsetof(gd_field, type) == 12, "ABI: gd_field.type");
_Static_assert(offsetof(gd_field, v) == 16, "ABI: gd_field.v");
_Static_assert(sizeof(gd_field) == 32, "ABI: gd_field");

/* ---- building ---------------------------------------------------------- */

/** gd_batch_new() - an empty batch with room for about @hint points.
 * Returns NULL only when out of memory. The caller holds one reference. */
GD_EXPORT gd_batch *gd_batch_new(size_t hint);

/** gd_batch_add() - append a point with @measurement (copied) and @ts_ns.
 * Returns NULL on an empty measurement, a frozen batch or out of memory.
 * The returned handle stays valid for the life of the batch. */
GD_EXPORT gd_point *gd_batch_add(gd_batch *b, const char *measurement, int64_t ts_ns);

/** gd_batch_add_n() - gd_batch_add() with a length-counted measurement. */
GD_EXPORT gd_point *gd_batch_add_n(gd_batch *b, const char *measurement, size_t len, int64_t ts_ns);

/** gd_point_tag() - set tag @key to @value (both copied). Tags stay sorted by
 * key; setting an existing key replaces its value. Empty keys or values are
 * refused with GD_EINVAL (line protocol cannot carry them). */
GD_EXPORT int gd_point_tag(gd_point *p, const char *key, const char *value);

/** gd_point_tag_n() - gd_point_tag() with length-counted strings. */
GD_EXPORT int gd_point_tag_n(gd_point *p, const char *key, size_t klen, const char *value,
                             size_t vlen);

/** gd_point_f64() - add a double field. NaN and infinities are refused
 * (GD_ERANGE): line protocol and most sinks cannot store them. */
GD_EXPORT int gd_point_f64(gd_point *p, const char *key, double v);
/** gd_point_i64() - add a signed integer field. */
GD_EXPORT int gd_point_i64(gd_point *p, const char *key, int64_t v);
/** gd_point_u64() - add an unsigned integer field. */
GD_EXPORT int gd_point_u64(gd_point *p, const char *key, uint64_t v);
/** gd_point_bool() - add a boolean field. */
GD_EXPORT int gd_point_bool(gd_point *p, const char *key, bool v);
/** gd_point_str() - add a string field (copied, NUL-terminated). */
GD_EXPORT int gd_point_str(gd_point *p, const char *key, const char *v);
/** gd_point_str_n() - add a length-counted string field (copied). */
GD_EXPORT int gd_point_str_n(gd_point *p, const char *key, const char *v, size_t len);
/** gd_point_field() - add a copy of @f (key and string value copied).
 * Field keys are not deduplicated; a point with no field is invalid. */
GD_EXPORT int gd_point_field(gd_point *p, const gd_field *f);

/** gd_batch_drop_last() - remove the point added last (with its tags and
 * fields) from a batch under construction: for a point found invalid
 * half-way through building it. Handles to it become invalid; arena memory
 * is reclaimed with the batch. Returns GD_ENOENT on an empty batch,
 * GD_EFROZEN on a frozen one. */
GD_EXPORT int gd_batch_drop_last(gd_batch *b);

/** gd_point_set_time() - change the timestamp of a point being built. */
GD_EXPORT int gd_point_set_time(gd_point *p, int64_t ts_ns);

/** gd_batch_copy_point() - append a deep copy of @src (from any batch) to @b.
 * Returns the copy, or NULL on a frozen batch or out of memory. */
GD_EXPORT gd_point *gd_batch_copy_point(gd_batch *b, const gd_point *src);

/** gd_batch_derive_point() - append to @b a point equal to @src (from any
 * batch) without copying its strings: the measurement, tag and field keys,
 * tag values and string values of the new point reference those of @src's
 * batch, and @b holds one reference on that batch until @b is freed (one
 * per source batch in a run of derived points). The tag and field entries
 * are copied, so the builders, gd_point_field_mut() and the remove
 * functions may change the new point as any other. For processors that
 * change a few values of a point: far cheaper than gd_batch_copy_point().
 * @src's batch must not itself hold @b (no cycles: derive only from batches
 * that came in, e.g. the input of process). Returns the point, or NULL on a
 * frozen @b or out of memory. */
GD_EXPORT gd_point *gd_batch_derive_point(gd_batch *b, const gd_point *src);

/** gd_point_field_mut() - field @i (in insertion order) of a point being
 * built, to change in place; NULL when out of range or the batch is frozen.
 * The pointer is valid until the next builder call on the batch. The
 * caller keeps the field valid as the builders would: a non-empty key and
 * string values that live as long as the batch (its own arena through
 * gd_batch_strdup(), or the strings the point was derived from), the
 * matching union member for the type, finite doubles. */
GD_EXPORT gd_field *gd_point_field_mut(gd_point *p, size_t i);

/** gd_point_remove_tag() - remove tag @i (sorted order) of a point being
 * built. Returns GD_ENOENT when out of range, GD_EFROZEN on a frozen batch. */
GD_EXPORT int gd_point_remove_tag(gd_point *p, size_t i);

/** gd_point_remove_field() - remove field @i (insertion order; later fields
 * move up) of a point being built. A point left without fields is invalid:
 * add one or drop it. Returns GD_ENOENT when out of range, GD_EFROZEN on a
 * frozen batch. */
GD_EXPORT int gd_point_remove_field(gd_point *p, size_t i);

/** gd_batch_strdup() - copy @len bytes of @s into the batch arena (NUL added).
 * For plugins that build strings the builders then reference. */
GD_EXPORT const char *gd_batch_strdup(gd_batch *b, const char *s, size_t len);

/** gd_batch_freeze() - make the batch immutable. Idempotent. The core freezes
 * every batch it receives; plugins rarely need this. */
GD_EXPORT void gd_batch_freeze(gd_batch *b);

/** gd_batch_is_frozen() - true once frozen. */
GD_EXPORT bool gd_batch_is_frozen(const gd_batch *b);

/* ---- ownership --------------------------------------------------------- */

/** gd_batch_ref() - take one more reference. Returns @b. */
GD_EXPORT gd_batch *gd_batch_ref(gd_batch *b);

/** gd_batch_unref() - drop one reference; the last one frees the batch and
 * every point in it. Accepts NULL. */
GD_EXPORT void gd_batch_unref(gd_batch *b);

/** gd_batch_refcount() - the current reference count (for tests). */
GD_EXPORT int gd_batch_refcount(const gd_batch *b);

/* ---- reading ----------------------------------------------------------- */

/** gd_batch_len() - number of points. */
GD_EXPORT size_t gd_batch_len(const gd_batch *b);

/** gd_batch_bytes() - approximate memory held by the batch (arena and
 * indexes, and the batches its derived points reference), the figure queue
 * byte limits count. */
GD_EXPORT size_t gd_batch_bytes(const gd_batch *b);

/** gd_batch_point() - the point at index @i (NULL when out of range). */
GD_EXPORT const gd_point *gd_batch_point(const gd_batch *b, size_t i);

/** gd_point_measurement() - the measurement (NUL-terminated); @len optional. */
GD_EXPORT const char *gd_point_measurement(const gd_point *p, size_t *len);

/** gd_point_time() - the timestamp in ns since the epoch. */
GD_EXPORT int64_t gd_point_time(const gd_point *p);

/** gd_point_tags() - the tags, sorted by key; *@n receives their count. */
GD_EXPORT const gd_tag *gd_point_tags(const gd_point *p, size_t *n);

/** gd_point_fields() - the fields in insertion order; *@n their count. */
GD_EXPORT const gd_field *gd_point_fields(const gd_point *p, size_t *n);

/** gd_point_tag_get() - the value of tag @key, or NULL. */
GD_EXPORT const char *gd_point_tag_get(const gd_point *p, const char *key);

/** gd_point_field_get() - the field named @key, or NULL. */
GD_EXPORT const gd_field *gd_point_field_get(const gd_point *p, const char *key);

#ifdef __cplusplus
}
#endif
#endif
