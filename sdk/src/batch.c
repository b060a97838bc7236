/* SPDX-License-Identifier: Apache-2.0 */
/*
 * batch.c - the data model: points in arena-backed, reference-counted batches.
 *
 * Strings and point structs are carved from a chain of arena chunks (the
 * first one lives in the same allocation as the batch), so building a point
 * costs no malloc per value and handles stay valid for the batch's life.
 * The tags and fields of all points live in two batch-level arrays; a point
 * records an offset and a count into each. A point that is not the last one
 * extended has its range moved to the end before it grows (the old range
 * stays behind as garbage until the batch is freed), so any point can be
 * extended at any time. A derived point references the strings of another
 * batch, which the batch then holds (a reference in `held`) until it is
 * freed.
 */
#include <gatherd/batch.h>
#include <math.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_MAX_BYTES   (64 * 1024)           /* arena chunks grow geometrically up to this */
#define CHUNK_MIN_BYTES   (4 * 1024)            /* smallest first chunk */
#define BIG_ALLOC_BYTES   (CHUNK_MAX_BYTES / 4) /* larger requests get a chunk of their own */
#define EST_POINT_BYTES   128        /* arena bytes per point assumed when sizing the first chunk */
#define MIN_INDEX_ENTRIES 16         /* first capacity of the index arrays */
#define MAX_HINT          (1u << 24) /* hints are clamped to this for sizing */
#define MAX_RANGE_INDEX   UINT32_MAX /* tag/field offsets and counts are 32-bit */

/* A malloc'd arena chunk; its data follows the header. */
struct chunk {
    struct chunk *next;
    size_t size;
};

_Static_assert(sizeof(struct chunk) % alignof(max_align_t) == 0, "chunk data alignment");

struct gd_point {
    gd_batch *batch;
    const char *name;
    int64_t ts;
    uint32_t name_len;
    uint32_t tag_off;
    uint32_t ntags;
    uint32_t field_off;
    uint32_t nfields;
};

struct gd_batch {
    alignas(max_align_t) atomic_int refs; /* the first chunk follows the struct */
    atomic_bool frozen;
    /* Free space of the current chunk, and where that chunk's data starts. */
    char *cur;
    char *end;
    char *cur_start;
    size_t arena_used;    /* bytes used in chunks other than the current one */
    size_t next_chunk;    /* size of the next regular chunk */
    struct chunk *chunks; /* every malloc'd chunk (the inline one is not listed) */
    size_t hint;

    gd_point **points;
    size_t npoints;
    size_t cap_points;

    gd_tag *tags;
    size_t ntags;
    size_t cap_tags;

    gd_field *fields;
    size_t nfields;
    size_t cap_fields;

    /* Batches whose strings derived points reference (one reference each). */
    gd_batch **held;
    size_t nheld;
    size_t cap_held;
};

_Static_assert(sizeof(struct gd_batch) % alignof(max_align_t) == 0, "inline chunk alignment");

/* ---- arena ------------------------------------------------------------- */

static struct chunk *chunk_new(gd_batch *b, size_t size)
{
    if (size > SIZE_MAX - sizeof(struct chunk))
        return NULL;
    struct chunk *c = malloc(sizeof(*c) + size);
    if (!c)
        return NULL;
    c->size = size;
    c->next = b->chunks;
    b->chunks = c;
    return c;
}

static void *arena_alloc_slow(gd_batch *b, size_t size, size_t align)
{
    if (size > SIZE_MAX - align)
        return NULL;
    size_t need = size + align - 1;
    if (need > BIG_ALLOC_BYTES) {
        /* A chunk of its own: the current chunk keeps its free space. */
        struct chunk *c = chunk_new(b, need);
        if (!c)
            return NULL;
        b->arena_used += need;
        uintptr_t p = (uintptr_t)(c + 1);
        return (void *)((p + (align - 1)) & ~(uintptr_t)(align - 1));
    }
    size_t csize = b->next_chunk;
    if (csize < need)
        csize = CHUNK_MAX_BYTES;
    struct chunk *c = chunk_new(b, csize);
    if (!c)
        return NULL;
    b->arena_used += (size_t)(b->cur - b->cur_start);
    b->cur_start = b->cur = (char *)(c + 1);
    b->end = b->cur + csize;
    b->next_chunk = b->next_chunk < CHUNK_MAX_BYTES / 2 ? b->next_chunk * 2 : CHUNK_MAX_BYTES;
    /* The fresh chunk is max-aligned and large enough: no padding needed. */
    void *ret = b->cur;
    b->cur += size;
    return ret;
}

static inline void *arena_alloc(gd_batch *b, size_t size, size_t align)
{
    size_t pad = (size_t)(-(uintptr_t)b->cur) & (align - 1);
    size_t avail = (size_t)(b->end - b->cur);
    if (size > avail || pad > avail - size)
        return arena_alloc_slow(b, size, align);
    char *p = b->cur + pad;
    b->cur = p + size;
    return p;
}

/* Copy @len bytes and a NUL into the arena. */
static inline char *arena_strdup(gd_batch *b, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *d = arena_alloc(b, len + 1, 1);
    if (!d)
        return NULL;
    if (len)
        memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static size_t arena_bytes_used(const gd_batch *b)
{
    return b->arena_used + (size_t)(b->cur - b->cur_start);
}

/* ---- growable arrays --------------------------------------------------- */

/* Make room for @need elements of @elem bytes in *@arr (capacity *@cap). */
static int array_reserve(void **arr, size_t *cap, size_t need, size_t elem, size_t initial)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : initial;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return GD_ENOMEM;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem)
        return GD_ENOMEM;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return GD_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static size_t initial_entries(const gd_batch *b, size_t per_point)
{
    size_t n = b->hint * per_point;
    return n < MIN_INDEX_ENTRIES ? MIN_INDEX_ENTRIES : n;
}

/* Room for @extra more tags, keeping offsets within 32 bits. */
static int tags_reserve(gd_batch *b, size_t extra)
{
    if (extra > MAX_RANGE_INDEX - b->ntags)
        return GD_ENOMEM;
    return array_reserve((void **)&b->tags, &b->cap_tags, b->ntags + extra, sizeof(*b->tags),
                         initial_entries(b, 2));
}

static int fields_reserve(gd_batch *b, size_t extra)
{
    if (extra > MAX_RANGE_INDEX - b->nfields)
        return GD_ENOMEM;
    /* Eight per point: growing the array copies all of it, while capacity
     * never touched costs no memory. */
    return array_reserve((void **)&b->fields, &b->cap_fields, b->nfields + extra,
                         sizeof(*b->fields), initial_entries(b, 8));
}

/* Make @p's tag range the last one in b->tags, with room for one more. */
static int tags_make_tail(gd_batch *b, gd_point *p)
{
    bool at_end = (size_t)p->tag_off + p->ntags == b->ntags;
    int rc = tags_reserve(b, at_end ? 1 : (size_t)p->ntags + 1);
    if (rc < 0)
        return rc;
    if (!at_end) {
        memcpy(b->tags + b->ntags, b->tags + p->tag_off, p->ntags * sizeof(*b->tags));
        p->tag_off = (uint32_t)b->ntags;
        b->ntags += p->ntags;
    }
    return 0;
}

static int fields_make_tail(gd_batch *b, gd_point *p)
{
    bool at_end = (size_t)p->field_off + p->nfields == b->nfields;
    int rc = fields_reserve(b, at_end ? 1 : (size_t)p->nfields + 1);
    if (rc < 0)
        return rc;
    if (!at_end) {
        memcpy(b->fields + b->nfields, b->fields + p->field_off, p->nfields * sizeof(*b->fields));
        p->field_off = (uint32_t)b->nfields;
        b->nfields += p->nfields;
    }
    return 0;
}

/* A point's ranges (NULL when empty: the arrays may not exist yet). */
static inline gd_tag *point_tags(const gd_point *p)
{
    return p->ntags ? p->batch->tags + p->tag_off : NULL;
}

static inline gd_field *point_fields(const gd_point *p)
{
    return p->nfields ? p->batch->fields + p->field_off : NULL;
}

static inline bool is_frozen(const gd_batch *b)
{
    return atomic_load_explicit(&b->frozen, memory_order_relaxed);
}

/* ---- lifecycle --------------------------------------------------------- */

gd_batch *gd_batch_new(size_t hint)
{
    if (hint > MAX_HINT)
        hint = MAX_HINT;
    size_t first = hint * EST_POINT_BYTES;
    if (first < CHUNK_MIN_BYTES)
        first = CHUNK_MIN_BYTES;
    if (first > CHUNK_MAX_BYTES)
        first = CHUNK_MAX_BYTES;

    gd_batch *b = malloc(sizeof(*b) + first);
    if (!b)
        return NULL;
    memset(b, 0, sizeof(*b));
    atomic_init(&b->refs, 1);
    atomic_init(&b->frozen, false);
    b->cur_start = b->cur = (char *)(b + 1);
    b->end = b->cur + first;
    b->next_chunk = first * 2 < CHUNK_MAX_BYTES ? first * 2 : CHUNK_MAX_BYTES;
    b->hint = hint;
    if (hint &&
        array_reserve((void **)&b->points, &b->cap_points, hint, sizeof(*b->points), hint) < 0)
        goto out_free_batch;
    return b;

out_free_batch:
    free(b);
    return NULL;
}

static void batch_free(gd_batch *b)
{
    struct chunk *c = b->chunks;
    while (c) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
    free(b->points);
    free(b->tags);
    free(b->fields);
    for (size_t i = 0; i < b->nheld; i++)
        gd_batch_unref(b->held[i]);
    free(b->held);
    free(b);
}

gd_batch *gd_batch_ref(gd_batch *b)
{
    if (b)
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void gd_batch_unref(gd_batch *b)
{
    if (!b)
        return;
    /* acq_rel: every other holder's reads happen-before the free (a
     * release decrement plus an acquire fence is equivalent, but invisible
     * to ThreadSanitizer, which the project uses to check the core). */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    batch_free(b);
}

int gd_batch_refcount(const gd_batch *b)
{
    if (!b)
        return 0;
    return atomic_load_explicit(&((gd_batch *)b)->refs, memory_order_relaxed);
}

void gd_batch_freeze(gd_batch *b)
{
    if (b)
        atomic_store_explicit(&b->frozen, true, memory_order_relaxed);
}

bool gd_batch_is_frozen(const gd_batch *b)
{
    return b && is_frozen(b);
}

/* ---- building ---------------------------------------------------------- */

/* Append a point whose measurement @name (already in @b's arena) is not
 * copied. With @copy, @name is copied next to the point struct instead. */
static gd_point *point_new(gd_batch *b, const char *name, size_t len, bool copy, int64_t ts)
{
    if (b->npoints == b->cap_points &&
        array_reserve((void **)&b->points, &b->cap_points, b->npoints + 1, sizeof(*b->points),
                      MIN_INDEX_ENTRIES) < 0)
        return NULL;
    size_t size = sizeof(gd_point);
    if (copy) {
        if (len > SIZE_MAX - size - 1)
            return NULL;
        size += len + 1;
    }
    gd_point *p = arena_alloc(b, size, alignof(gd_point));
    if (!p)
        return NULL;
    if (copy) {
        char *d = (char *)(p + 1);
        memcpy(d, name, len);
        d[len] = '\0';
        name = d;
    }
    p->batch = b;
    p->name = name;
    p->name_len = (uint32_t)len;
    p->ts = ts;
    p->tag_off = (uint32_t)b->ntags;
    p->ntags = 0;
    p->field_off = (uint32_t)b->nfields;
    p->nfields = 0;
    b->points[b->npoints++] = p;
    return p;
}

gd_point *gd_batch_add_n(gd_batch *b, const char *measurement, size_t len, int64_t ts_ns)
{
    if (!b || !measurement || len == 0 || len > UINT32_MAX || is_frozen(b))
        return NULL;
    return point_new(b, measurement, len, true, ts_ns);
}

int gd_batch_drop_last(gd_batch *b)
{
    if (!b)
        return GD_EINVAL;
    if (is_frozen(b))
        return GD_EFROZEN;
    if (b->npoints == 0)
        return GD_ENOENT;
    /* Its tags and fields are reclaimed when they are the arrays' tails (the
     * usual case); otherwise they stay unused until the batch is freed. */
    gd_point *p = b->points[--b->npoints];
    if ((size_t)p->tag_off + p->ntags == b->ntags)
        b->ntags = p->tag_off;
    if ((size_t)p->field_off + p->nfields == b->nfields)
        b->nfields = p->field_off;
    return 0;
}

gd_point *gd_batch_add(gd_batch *b, const char *measurement, int64_t ts_ns)
{
    if (!measurement)
        return NULL;
    return gd_batch_add_n(b, measurement, strlen(measurement), ts_ns);
}

static inline int keycmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return (alen > blen) - (alen < blen);
}

/* Index of the first tag of @t[0..n) whose key is not less than @key. */
static size_t tag_lower_bound(const gd_tag *t, size_t n, const char *key, size_t klen)
{
    /* Tags usually arrive in order: check the end first. */
    if (n == 0 || keycmp(t[n - 1].key, t[n - 1].key_len, key, klen) < 0)
        return n;
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keycmp(t[mid].key, t[mid].key_len, key, klen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int gd_point_tag_n(gd_point *p, const char *key, size_t klen, const char *value, size_t vlen)
{
    if (!p || !key || !value)
        return GD_EINVAL;
    gd_batch *b = p->batch;
    if (is_frozen(b))
        return GD_EFROZEN;
    if (klen == 0 || vlen == 0 || klen > UINT32_MAX || vlen > UINT32_MAX)
        return GD_EINVAL;

    size_t pos = tag_lower_bound(point_tags(p), p->ntags, key, klen);
    if (pos < p->ntags) {
        gd_tag *t = &b->tags[p->tag_off + pos];
        if (t->key_len == klen && memcmp(t->key, key, klen) == 0) {
            char *v = arena_strdup(b, value, vlen);
            if (!v)
                return GD_ENOMEM;
            t->value = v;
            t->value_len = (uint32_t)vlen;
            return 0;
        }
    }

    /* Key and value in one arena allocation. */
    if (klen + vlen > SIZE_MAX - 2)
        return GD_ENOMEM;
    char *k = arena_alloc(b, klen + vlen + 2, 1);
    if (!k)
        return GD_ENOMEM;
    memcpy(k, key, klen);
    k[klen] = '\0';
    char *v = k + klen + 1;
    memcpy(v, value, vlen);
    v[vlen] = '\0';

    int rc = tags_make_tail(b, p);
    if (rc < 0)
        return rc;
    gd_tag *t = b->tags + p->tag_off;
    if (pos < p->ntags)
        memmove(t + pos + 1, t + pos, (p->ntags - pos) * sizeof(*t));
    t[pos].key = k;
    t[pos].value = v;
    t[pos].key_len = (uint32_t)klen;
    t[pos].value_len = (uint32_t)vlen;
    p->ntags++;
    b->ntags++;
    return 0;
}

int gd_point_tag(gd_point *p, const char *key, const char *value)
{
    if (!key || !value)
        return GD_EINVAL;
    return gd_point_tag_n(p, key, strlen(key), value, strlen(value));
}

/* Append a field slot with a copy of @key to @p; the caller sets the value. */
static inline int field_append(gd_point *p, const char *key, size_t klen, gd_field **out)
{
    gd_batch *b = p->batch;
    if (is_frozen(b))
        return GD_EFROZEN;
    if (klen == 0 || klen > UINT32_MAX)
        return GD_EINVAL;
    char *k = arena_strdup(b, key, klen);
    if (!k)
        return GD_ENOMEM;
    if ((size_t)p->field_off + p->nfields != b->nfields || b->nfields == b->cap_fields) {
        int rc = fields_make_tail(b, p);
        if (rc < 0)
            return rc;
    }
    gd_field *f = &b->fields[b->nfields++];
    p->nfields++;
    f->key = k;
    f->key_len = (uint32_t)klen;
    *out = f;
    return 0;
}

/* Append a field of @type named @key; the caller sets its value. */
static inline int scalar_field(gd_point *p, const char *key, uint32_t type, gd_field **f)
{
    if (!p || !key)
        return GD_EINVAL;
    int rc = field_append(p, key, strlen(key), f);
    if (rc < 0)
        return rc;
    (*f)->type = type;
    (*f)->v.u64 = 0; /* no stray bytes in the union */
    return 0;
}

int gd_point_f64(gd_point *p, const char *key, double v)
{
    gd_field *f;
    if (p && key && !isfinite(v))
        return GD_ERANGE;
    int rc = scalar_field(p, key, GD_F64, &f);
    if (rc == 0)
        f->v.f64 = v;
    return rc;
}

int gd_point_i64(gd_point *p, const char *key, int64_t v)
{
    gd_field *f;
    int rc = scalar_field(p, key, GD_I64, &f);
    if (rc == 0)
        f->v.i64 = v;
    return rc;
}

int gd_point_u64(gd_point *p, const char *key, uint64_t v)
{
    gd_field *f;
    int rc = scalar_field(p, key, GD_U64, &f);
    if (rc == 0)
        f->v.u64 = v;
    return rc;
}

int gd_point_bool(gd_point *p, const char *key, bool v)
{
    gd_field *f;
    int rc = scalar_field(p, key, GD_BOOL, &f);
    if (rc == 0)
        f->v.b = v;
    return rc;
}

/* String field with the value copied into the arena before the slot is
 * taken, so a failure leaves the point unchanged. */
static int str_field(gd_point *p, const char *key, size_t klen, const char *v, size_t len)
{
    if (is_frozen(p->batch))
        return GD_EFROZEN;
    if (!v && len)
        return GD_EINVAL;
    char *s = arena_strdup(p->batch, v, len);
    if (!s)
        return GD_ENOMEM;
    gd_field *f;
    int rc = field_append(p, key, klen, &f);
    if (rc < 0)
        return rc;
    f->type = GD_STR;
    f->v.str.ptr = s;
    f->v.str.len = len;
    return 0;
}

int gd_point_str_n(gd_point *p, const char *key, const char *v, size_t len)
{
    if (!p || !key)
        return GD_EINVAL;
    return str_field(p, key, strlen(key), v, len);
}

int gd_point_str(gd_point *p, const char *key, const char *v)
{
    if (!v)
        return GD_EINVAL;
    return gd_point_str_n(p, key, v, strlen(v));
}

int gd_point_field(gd_point *p, const gd_field *f)
{
    if (!p || !f || !f->key)
        return GD_EINVAL;
    gd_field *d;
    int rc;
    switch (f->type) {
    case GD_STR:
        return str_field(p, f->key, f->key_len, f->v.str.ptr, f->v.str.len);
    case GD_F64:
        if (!isfinite(f->v.f64))
            return GD_ERANGE;
        /* fall through */
    case GD_I64:
    case GD_U64:
    case GD_BOOL:
        rc = field_append(p, f->key, f->key_len, &d);
        if (rc < 0)
            return rc;
        d->type = f->type;
        d->v = f->v;
        if (f->type == GD_BOOL) {
            d->v.u64 = 0; /* no stray bytes in the union */
            d->v.b = f->v.b;
        }
        return 0;
    default:
        return GD_ETYPE;
    }
}

int gd_point_set_time(gd_point *p, int64_t ts_ns)
{
    if (!p)
        return GD_EINVAL;
    if (is_frozen(p->batch))
        return GD_EFROZEN;
    p->ts = ts_ns;
    return 0;
}

const char *gd_batch_strdup(gd_batch *b, const char *s, size_t len)
{
    if (!b || (!s && len) || is_frozen(b))
        return NULL;
    return arena_strdup(b, s, len);
}

/* Arena copy of @s unless it already lives in @b (strings there are
 * immutable and live as long as the batch). */
static const char *copy_str(gd_batch *b, bool same, const char *s, size_t len)
{
    return same ? s : arena_strdup(b, s, len);
}

gd_point *gd_batch_copy_point(gd_batch *b, const gd_point *src)
{
    if (!b || !src || is_frozen(b))
        return NULL;
    bool same = src->batch == b;

    /* Fill the new tag and field slots past the ends of the arrays and
     * commit them only once the point exists: a failure leaves @b as it
     * was (but for arena bytes). Reserve first: @src may live in @b. */
    if (tags_reserve(b, src->ntags) < 0 || fields_reserve(b, src->nfields) < 0)
        return NULL;
    const gd_tag *st = point_tags(src);
    gd_tag *dt = b->tags ? b->tags + b->ntags : NULL;
    for (uint32_t i = 0; i < src->ntags; i++) {
        dt[i] = st[i];
        dt[i].key = copy_str(b, same, st[i].key, st[i].key_len);
        dt[i].value = copy_str(b, same, st[i].value, st[i].value_len);
        if (!dt[i].key || !dt[i].value)
            return NULL;
    }
    const gd_field *sf = point_fields(src);
    gd_field *df = b->fields ? b->fields + b->nfields : NULL;
    for (uint32_t i = 0; i < src->nfields; i++) {
        df[i] = sf[i];
        df[i].key = copy_str(b, same, sf[i].key, sf[i].key_len);
        if (!df[i].key)
            return NULL;
        if (sf[i].type == GD_STR) {
            df[i].v.str.ptr = copy_str(b, same, sf[i].v.str.ptr, sf[i].v.str.len);
            if (!df[i].v.str.ptr)
                return NULL;
        }
    }

    gd_point *p = same ? point_new(b, src->name, src->name_len, false, src->ts)
                       : point_new(b, src->name, src->name_len, true, src->ts);
    if (!p)
        return NULL;
    p->ntags = src->ntags;
    p->nfields = src->nfields;
    b->ntags += src->ntags;
    b->nfields += src->nfields;
    return p;
}

/* Make @b hold one reference on @src (none for itself; a source already
 * held last is not taken again: derived points usually come in runs). */
static int batch_hold(gd_batch *b, gd_batch *src)
{
    if (src == b || (b->nheld && b->held[b->nheld - 1] == src))
        return 0;
    int rc = array_reserve((void **)&b->held, &b->cap_held, b->nheld + 1, sizeof(*b->held), 4);
    if (rc < 0)
        return rc;
    b->held[b->nheld++] = gd_batch_ref(src);
    return 0;
}

gd_point *gd_batch_derive_point(gd_batch *b, const gd_point *src)
{
    if (!b || !src || is_frozen(b))
        return NULL;
    /* As in gd_batch_copy_point(): fill the slots past the ends and commit
     * them once the point exists; reserve first, @src may live in @b. */
    if (tags_reserve(b, src->ntags) < 0 || fields_reserve(b, src->nfields) < 0 ||
        batch_hold(b, src->batch) < 0)
        return NULL;
    /* A few entries each: plain loops beat a memcpy call. */
    const gd_tag *st = point_tags(src);
    gd_tag *dt = b->tags ? b->tags + b->ntags : NULL;
    for (uint32_t i = 0; i < src->ntags; i++)
        dt[i] = st[i];
    const gd_field *sf = point_fields(src);
    gd_field *df = b->fields ? b->fields + b->nfields : NULL;
    for (uint32_t i = 0; i < src->nfields; i++)
        df[i] = sf[i];
    gd_point *p = point_new(b, src->name, src->name_len, false, src->ts);
    if (!p)
        return NULL;
    p->ntags = src->ntags;
    p->nfields = src->nfields;
    b->ntags += src->ntags;
    b->nfields += src->nfields;
    return p;
}

gd_field *gd_point_field_mut(gd_point *p, size_t i)
{
    if (!p || i >= p->nfields || is_frozen(p->batch))
        return NULL;
    return &p->batch->fields[p->field_off + i];
}

int gd_point_remove_tag(gd_point *p, size_t i)
{
    if (!p)
        return GD_EINVAL;
    gd_batch *b = p->batch;
    if (is_frozen(b))
        return GD_EFROZEN;
    if (i >= p->ntags)
        return GD_ENOENT;
    bool at_end = (size_t)p->tag_off + p->ntags == b->ntags;
    gd_tag *t = b->tags + p->tag_off;
    memmove(t + i, t + i + 1, (p->ntags - i - 1) * sizeof(*t));
    p->ntags--;
    if (at_end)
        b->ntags--;
    return 0;
}

int gd_point_remove_field(gd_point *p, size_t i)
{
    if (!p)
        return GD_EINVAL;
    gd_batch *b = p->batch;
    if (is_frozen(b))
        return GD_EFROZEN;
    if (i >= p->nfields)
        return GD_ENOENT;
    bool at_end = (size_t)p->field_off + p->nfields == b->nfields;
    gd_field *f = b->fields + p->field_off;
    memmove(f + i, f + i + 1, (p->nfields - i - 1) * sizeof(*f));
    p->nfields--;
    if (at_end)
        b->nfields--;
    return 0;
}

/* ---- reading ----------------------------------------------------------- */

size_t gd_batch_len(const gd_batch *b)
{
    return b ? b->npoints : 0;
}

size_t gd_batch_bytes(const gd_batch *b)
{
    if (!b)
        return 0;
    size_t n = sizeof(*b) + arena_bytes_used(b) + b->npoints * sizeof(*b->points) +
               b->ntags * sizeof(*b->tags) + b->nfields * sizeof(*b->fields);
    for (size_t i = 0; i < b->nheld; i++) /* kept alive for derived points */
        n += gd_batch_bytes(b->held[i]);
    return n;
}

const gd_point *gd_batch_point(const gd_batch *b, size_t i)
{
    if (!b || i >= b->npoints)
        return NULL;
    return b->points[i];
}

const char *gd_point_measurement(const gd_point *p, size_t *len)
{
    if (!p) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = p->name_len;
    return p->name;
}

int64_t gd_point_time(const gd_point *p)
{
    return p ? p->ts : 0;
}

const gd_tag *gd_point_tags(const gd_point *p, size_t *n)
{
    if (n)
        *n = p ? p->ntags : 0;
    return p ? point_tags(p) : NULL;
}

const gd_field *gd_point_fields(const gd_point *p, size_t *n)
{
    if (n)
        *n = p ? p->nfields : 0;
    return p ? point_fields(p) : NULL;
}

const char *gd_point_tag_get(const gd_point *p, const char *key)
{
    if (!p || !key)
        return NULL;
    size_t klen = strlen(key);
    const gd_tag *t = point_tags(p);
    size_t pos = tag_lower_bound(t, p->ntags, key, klen);
    if (pos < p->ntags && t[pos].key_len == klen && memcmp(t[pos].key, key, klen) == 0)
        return t[pos].value;
    return NULL;
}

const gd_field *gd_point_field_get(const gd_point *p, const char *key)
{
    if (!p || !key)
        return NULL;
    size_t klen = strlen(key);
    const gd_field *f = point_fields(p);
    for (uint32_t i = 0; i < p->nfields; i++)
        if (f[i].key_len == klen && memcmp(f[i].key, key, klen) == 0)
            return &f[i];
    return NULL;
}
