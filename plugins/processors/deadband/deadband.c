/* SPDX-License-Identifier: Apache-2.0 */
/*
 * deadband.c - report by exception: a field passes only when it moved out of
 * a band around the value last passed for its series, or when the heartbeat
 * is due. A point left with no field is dropped (the core counts it as
 * "filtered").
 *
 * State is one entry per series (measurement + tags) holding the last passed
 * value of each field, bounded by max_series with least-recently-used
 * eviction. The per-point path allocates nothing once a series' fields are
 * known: the key goes to a reused scratch buffer, field slots are found by
 * position first.
 */
#include "fieldslots.h"
#include "series.h"
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S   1e9

struct db_cfg {
    gd_strlist fields;
    double abs;
    double rel;
    double heartbeat;
    int64_t max_series;
};

/* The last passed value of one field of a series. */
struct slot {
    struct field_slot fs; /* first */
    bool selected; /* matches `fields` */
    bool has;      /* a value has passed */
    uint32_t type; /* gd_ftype of the value last passed */
    double num;
    char *str; /* GD_STR */
    size_t str_len;
    bool b;
    int64_t ts; /* when it passed */
};

struct entry {
    series head;
    struct field_slots slots; /* of struct slot */
};

struct db {
    gd_instance *inst;
    const struct db_cfg *cfg;
    int64_t heartbeat_ns;
    series_table t;
    uint64_t evicted;
    bool *keep; /* per field of the point in hand */
    size_t keep_cap;
};

static void entry_release(struct entry *e)
{
    for (size_t i = 0; i < e->slots.n; i++)
        free(((struct slot *)field_slots_at(&e->slots, sizeof(struct slot), i))->str);
    field_slots_free(&e->slots, sizeof(struct slot));
}

static bool selected(const struct db_cfg *c, const char *name)
{
    if (c->fields.n == 0)
        return true;
    for (size_t i = 0; i < c->fields.n; i++)
        if (fnmatch(c->fields.v[i], name, 0) == 0)
            return true;
    return false;
}

/* The slot of field @f, the @pos-th of its point; created on first sight. */
static struct slot *slot_of(struct db *d, struct entry *e, const gd_field *f, size_t pos)
{
    long i = field_slots_find(&e->slots, sizeof(struct slot), f->key, f->key_len, pos);
    if (i >= 0)
        return field_slots_at(&e->slots, sizeof(struct slot), (size_t)i);
    struct slot *s = field_slots_add(&e->slots, sizeof(struct slot), f->key, f->key_len);
    if (s)
        s->selected = selected(d->cfg, s->fs.name);
    return s;
}

static bool is_numeric(uint32_t type)
{
    return type == GD_F64 || type == GD_I64 || type == GD_U64;
}

static double as_double(const gd_field *f)
{
    switch (f->type) {
    case GD_I64:
        return (double)f->v.i64;
    case GD_U64:
        return (double)f->v.u64;
    default:
        return f->v.f64;
    }
}

/* Did the value move out of the band around the last passed one? */
static bool moved(const struct db_cfg *c, double last, double v)
{
    double d = fabs(v - last);
    if (c->abs <= 0 && c->rel <= 0)
        return d != 0;
    return (c->abs > 0 && d > c->abs) || (c->rel > 0 && d > c->rel * fabs(last));
}

static bool changed(const struct slot *s, const gd_field *f)
{
    if (f->type == GD_STR)
        return s->str_len != f->v.str.len || memcmp(s->str, f->v.str.ptr, f->v.str.len) != 0;
    return s->b != f->v.b;
}

/* @now - @then, saturated (timestamps are any int64). */
static int64_t elapsed(int64_t now, int64_t then)
{
    int64_t d;
    if (__builtin_sub_overflow(now, then, &d))
        return now < then ? INT64_MIN : INT64_MAX;
    return d;
}

/* Decide whether @f passes, and remember it when it does. */
static bool pass_field(struct db *d, struct slot *s, const gd_field *f, int64_t ts)
{
    if (!s->selected)
        return true;
    bool numeric = is_numeric(f->type);
    bool pass = !s->has || is_numeric(s->type) != numeric || (!numeric && s->type != f->type) ||
                (d->heartbeat_ns > 0 && elapsed(ts, s->ts) >= d->heartbeat_ns);
    if (!pass)
        pass = numeric ? moved(d->cfg, s->num, as_double(f)) : changed(s, f);
    if (!pass)
        return false;
    if (f->type == GD_STR) {
        if (!s->str || s->str_len != f->v.str.len) {
            char *n = realloc(s->str, f->v.str.len + 1);
            if (!n)
                return true; /* passes; compared against a stale value next time */
            s->str = n;
        }
        memcpy(s->str, f->v.str.ptr, f->v.str.len);
        s->str_len = f->v.str.len;
    } else if (f->type == GD_BOOL) {
        s->b = f->v.b;
    } else {
        s->num = as_double(f);
    }
    s->type = f->type;
    s->has = true;
    s->ts = ts;
    return true;
}

static void evict_oldest(struct db *d)
{
    series *old = d->t.oldest;
    series_unlink(&d->t, old);
    entry_release((struct entry *)old);
    series_free(old);
    d->evicted++;
    gd_log_ratelimited(d->inst, GD_INFO,
                       "max_series (%zu) reached: %llu series evicted so far (least recently "
                       "used); their next value passes",
                       d->t.max, (unsigned long long)d->evicted);
}

static struct entry *entry_of(struct db *d, const gd_point *p, uint64_t h)
{
    bool created;
    series *s = series_get(&d->t, p, h, &created);
    if (created && d->t.n > d->t.max)
        evict_oldest(d);
    return (struct entry *)s;
}

static int grow_keep(struct db *d, size_t n)
{
    if (n <= d->keep_cap)
        return 0;
    bool *k = realloc(d->keep, n * sizeof(*k));
    if (!k)
        return GD_ENOMEM;
    d->keep = k;
    d->keep_cap = n;
    return 0;
}

static int db_process(void *state, const gd_batch *in, gd_batch *out)
{
    struct db *d = state;
    size_t len = gd_batch_len(in);
    series_ahead la;
    series_ahead_start(&la, &d->t, in);
    for (size_t i = 0; i < len; i++) {
        const gd_point *p = gd_batch_point(in, i);
        int64_t ts = gd_point_time(p);
        size_t nf;
        const gd_field *f = gd_point_fields(p, &nf);
        struct entry *e = entry_of(d, p, series_ahead_next(&la, i));
        if (!e || grow_keep(d, nf) < 0) {
            gd_batch_derive_point(out, p); /* out of memory: let it through */
            continue;
        }
        size_t kept = 0;
        for (size_t k = 0; k < nf; k++) {
            struct slot *s = slot_of(d, e, &f[k], k);
            d->keep[k] = !s || pass_field(d, s, &f[k], ts);
            kept += d->keep[k];
        }
        if (kept == nf) {
            gd_batch_derive_point(out, p);
            continue;
        }
        if (kept == 0)
            continue;
        /* the kept fields moved to the front, the rest cut off the end */
        gd_point *np = gd_batch_derive_point(out, p);
        size_t j = 0;
        for (size_t k = 0; np && k < nf; k++)
            if (d->keep[k] && j++ != k)
                *gd_point_field_mut(np, j - 1) = f[k];
        for (size_t k = nf; np && k-- > j;)
            gd_point_remove_field(np, k);
    }
    return 0;
}

static void db_destroy(void *state)
{
    struct db *d = state;
    if (!d)
        return;
    if (d->evicted)
        gd_log(d->inst, GD_INFO, "%llu series evicted in total (max_series %zu)",
               (unsigned long long)d->evicted, d->t.max);
    for (series *s = d->t.newest; s; s = s->older)
        entry_release((struct entry *)s);
    series_table_free(&d->t);
    free(d->keep);
    free(d);
}

static int db_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct db_cfg *c = cfgp;
    struct db *d = calloc(1, sizeof(*d));
    if (!d)
        return GD_ENOMEM;
    d->inst = inst;
    d->cfg = c;
    d->heartbeat_ns = (int64_t)llround(c->heartbeat * NS_PER_S);
    int rc = series_table_init(&d->t, sizeof(struct entry), (size_t)c->max_series);
    if (rc < 0) {
        free(d);
        return rc;
    }
    *state = d;
    return 0;
}

static const struct gd_option options[] = {
    GD_OPT_STRLIST("fields", 0, offsetof(struct db_cfg, fields),
                   "Globs of the fields under the deadband; other fields always pass "
                   "(default: every field)"),
    GD_OPT_DOUBLE("abs", "0", 0, 1e300, 0, offsetof(struct db_cfg, abs),
                  "Absolute band: a numeric value passes when it moved by more than this"),
    GD_OPT_DOUBLE("rel", "0", 0, 1e300, 0, offsetof(struct db_cfg, rel),
                  "Relative band, a fraction of the last passed value (0.01 = 1 %)"),
    GD_OPT_DURATION("heartbeat", "0", 0, 0, 0, offsetof(struct db_cfg, heartbeat),
                    "Pass a field anyway when this long (point time) passed since it last "
                    "passed; 0: off"),
    GD_OPT_INT("max_series", "100000", 1, 100000000, 0, offsetof(struct db_cfg, max_series),
               "Series remembered at most; the least recently seen is forgotten"),
    GD_OPT_END,
};

static const struct gd_processor_ops ops = {
    .struct_size = sizeof(struct gd_processor_ops),
    .init = db_init,
    .destroy = db_destroy,
    .process = db_process,
};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "deadband",
    .version = "1.0.0",
    .kind = GD_KIND_PROCESSOR,
    .summary = "Report by exception: pass a field only when it moved out of a band",
    .options = options,
    .config_size = sizeof(struct db_cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
