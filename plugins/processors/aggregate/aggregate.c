/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aggregate.c - per-series windows of `period` seconds, aligned to the epoch
 * by point time (start = floor(ts / period) * period), summarised into one
 * point per window: min, max, mean, sum, count, first, last, stddev and
 * percentiles of every selected numeric field.
 *
 * A window closes when a point of its series arrives at or after its end +
 * grace, or when the wall clock passes end + grace (a timer, for series that
 * went quiet), or at flush. A point whose window is already closed is late:
 * counted ("late") and left out of the statistics (and still passed on when
 * originals are kept).
 *
 * process() and the timer share the state under one mutex. Windows are
 * recycled through a free list, so the steady state allocates nothing per
 * point.
 */
#include "fieldslots.h"
#include "series.h"
#include "sketch.h"
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S    1e9
#define TICK_MIN_MS 50 /* the close timer's period: period / 10, within these */
#define TICK_MAX_MS 1000

struct agg_cfg {
    double period;
    double grace;
    gd_strlist functions;
    gd_strlist fields;
    bool drop_original;
    char *measurement;
    double accuracy;
    int64_t max_series;
};

enum fn_kind { FN_MIN, FN_MAX, FN_MEAN, FN_SUM, FN_COUNT, FN_FIRST, FN_LAST, FN_STDDEV, FN_PCT };

struct func {
    enum fn_kind kind;
    double q; /* FN_PCT: 0 < q <= 1 */
    const char *name;
};

static const char *const fn_names[] = {
    [FN_MIN] = "min",     [FN_MAX] = "max",     [FN_MEAN] = "mean", [FN_SUM] = "sum",
    [FN_COUNT] = "count", [FN_FIRST] = "first", [FN_LAST] = "last", [FN_STDDEV] = "stddev",
};

/* The running statistics of one field in one window. */
struct acc {
    uint64_t n;
    double sum;
    double shift, s1, s2; /* sums of (v - shift) and its square: the variance
                             without a division per value, and stable (shift
                             is the window's first value, close to the mean) */
    double min, max, first, last;
    int64_t first_ts, last_ts;
    struct sketch *sk; /* only when a percentile is asked for */
};

struct win {
    struct win *next; /* the series' open windows, by start; or the free list */
    int64_t start;
    size_t cap;
    struct acc acc[]; /* indexed like the series' slots */
};

/* One field name seen in a series, with its output field names. */
struct slot {
    struct field_slot fs; /* first */
    bool selected;
    char **out; /* "<name>_<function>", one per function */
};

struct entry {
    series head;
    struct field_slots slots; /* of struct slot */
    struct win *wins;
    int64_t closed_until; /* end of the latest window closed */
    bool has_closed;
};

static inline struct slot *slot_at(const struct entry *e, size_t k)
{
    return field_slots_at(&e->slots, sizeof(struct slot), k);
}

struct agg;

/* The timer's context: outlives the state until the timer is released. */
struct tick {
    struct agg *a;
};

struct agg {
    gd_instance *inst;
    const struct agg_cfg *cfg;
    pthread_mutex_t mu;
    int64_t period_ns, grace_ns;
    struct func *fn;
    size_t nfn;
    bool want_sketch;
    struct sk_map map;
    series_table t;
    struct win *free_wins;
    gd_timer *timer;
    struct tick *tick;
    uint64_t evicted, late;
};

/* ---- windows ------------------------------------------------------------ */

static void win_release(struct win *w)
{
    for (size_t k = 0; k < w->cap; k++) {
        if (w->acc[k].sk) {
            sk_release(w->acc[k].sk);
            free(w->acc[k].sk);
        }
    }
    free(w);
}

static void win_recycle(struct agg *a, struct win *w)
{
    for (size_t k = 0; k < w->cap; k++) {
        w->acc[k].n = 0;
        if (w->acc[k].sk)
            sk_reset(w->acc[k].sk);
    }
    w->next = a->free_wins;
    a->free_wins = w;
}

static struct win *win_new(struct agg *a, int64_t start, size_t cap)
{
    struct win *w = a->free_wins;
    if (w && w->cap >= cap) {
        a->free_wins = w->next;
    } else {
        w = calloc(1, sizeof(*w) + cap * sizeof(w->acc[0]));
        if (!w)
            return NULL;
        w->cap = cap;
    }
    w->next = NULL;
    w->start = start;
    return w;
}

/* The accumulator of slot @k in *@wp, growing the window (one of @e's) to
 * the series' slot capacity when the series gained a field. */
static struct acc *acc_of(struct agg *a, struct entry *e, struct win **wp, size_t k)
{
    struct win *w = *wp;
    if (k >= w->cap) {
        struct win **pp = &e->wins;
        while (*pp != w)
            pp = &(*pp)->next;
        struct win *n = realloc(w, sizeof(*w) + e->slots.cap * sizeof(w->acc[0]));
        if (!n)
            return NULL;
        memset(&n->acc[n->cap], 0, (e->slots.cap - n->cap) * sizeof(n->acc[0]));
        n->cap = e->slots.cap;
        *pp = *wp = w = n;
    }
    struct acc *c = &w->acc[k];
    if (a->want_sketch && !c->sk && !(c->sk = calloc(1, sizeof(*c->sk))))
        return NULL;
    return c;
}

static void acc_add(struct agg *a, struct acc *c, double v, int64_t ts)
{
    if (c->n == 0) {
        c->sum = c->s1 = c->s2 = 0;
        c->shift = v;
        c->min = c->max = c->first = c->last = v;
        c->first_ts = c->last_ts = ts;
    }
    c->n++;
    c->sum += v;
    double d = v - c->shift;
    c->s1 += d;
    c->s2 += d * d;
    if (v < c->min)
        c->min = v;
    if (v > c->max)
        c->max = v;
    if (ts < c->first_ts) {
        c->first = v;
        c->first_ts = ts;
    }
    if (ts >= c->last_ts) {
        c->last = v;
        c->last_ts = ts;
    }
    if (c->sk && sk_add(c->sk, &a->map, v) < 0)
        gd_log_ratelimited(a->inst, GD_WARN, "out of memory: a percentile lost a value");
}

static double fn_value(struct agg *a, const struct func *f, struct acc *c)
{
    switch (f->kind) {
    case FN_MIN:
        return c->min;
    case FN_MAX:
        return c->max;
    case FN_MEAN:
        return c->sum / (double)c->n;
    case FN_SUM:
        return c->sum;
    case FN_FIRST:
        return c->first;
    case FN_LAST:
        return c->last;
    case FN_STDDEV:
        if (c->n < 2)
            return 0;
        double var = (c->s2 - c->s1 * c->s1 / (double)c->n) / (double)(c->n - 1);
        return var > 0 ? sqrt(var) : 0;
    case FN_PCT: {
        double v = sk_quantile(c->sk, &a->map, f->q);
        return v < c->min ? c->min : v > c->max ? c->max : v;
    }
    case FN_COUNT:
        break;
    }
    return (double)c->n;
}

/* Add the summary point of @w to @b. */
static void win_emit(struct agg *a, const struct entry *e, struct win *w, gd_batch *b)
{
    gd_point *p = series_add_point(&e->head, b, a->cfg->measurement, w->start);
    if (!p)
        return;
    size_t added = 0;
    for (size_t k = 0; k < w->cap && k < e->slots.n; k++) {
        struct acc *c = &w->acc[k];
        if (c->n == 0)
            continue;
        for (size_t i = 0; i < a->nfn; i++) {
            const char *key = slot_at(e, k)->out[i];
            int rc = a->fn[i].kind == FN_COUNT ? gd_point_i64(p, key, (int64_t)c->n)
                                               : gd_point_f64(p, key, fn_value(a, &a->fn[i], c));
            added += rc == 0;
        }
    }
    if (added == 0)
        gd_batch_drop_last(b);
}

/* When the window starting at @start closes: its end + grace, saturated
 * (timestamps are any int64). */
static int64_t due_of(const struct agg *a, int64_t start)
{
    int64_t due;
    if (__builtin_add_overflow(start, a->period_ns + a->grace_ns, &due))
        return INT64_MAX;
    return due;
}

/* Close the windows of @e that end (with grace) at or before @now: emit
 * them to @b and recycle them. Returns how many closed. */
static size_t close_due(struct agg *a, struct entry *e, int64_t now, gd_batch *b)
{
    size_t n = 0;
    while (e->wins && due_of(a, e->wins->start) <= now) {
        struct win *w = e->wins;
        e->wins = w->next;
        win_emit(a, e, w, b);
        int64_t end = due_of(a, w->start) - a->grace_ns;
        if (!e->has_closed || end > e->closed_until)
            e->closed_until = end;
        e->has_closed = true;
        win_recycle(a, w);
        n++;
    }
    return n;
}

static size_t close_all(struct agg *a, struct entry *e, gd_batch *b)
{
    return close_due(a, e, INT64_MAX, b);
}

/* ---- series ------------------------------------------------------------- */

static void entry_release(struct agg *a, struct entry *e)
{
    for (size_t k = 0; k < e->slots.n; k++) {
        for (size_t i = 0; i < a->nfn; i++)
            free(slot_at(e, k)->out[i]);
        free(slot_at(e, k)->out);
    }
    field_slots_free(&e->slots, sizeof(struct slot));
    while (e->wins) {
        struct win *w = e->wins;
        e->wins = w->next;
        win_release(w);
    }
}

static bool selected(const struct agg_cfg *c, const char *name)
{
    if (c->fields.n == 0)
        return true;
    for (size_t i = 0; i < c->fields.n; i++)
        if (fnmatch(c->fields.v[i], name, 0) == 0)
            return true;
    return false;
}

/* The output field names "<name>_<function>" of field @f (NULL when out of
 * memory). */
static char **out_names(struct agg *a, const gd_field *f)
{
    char **out = calloc(a->nfn, sizeof(*out));
    for (size_t i = 0; out && i < a->nfn; i++) {
        if (asprintf(&out[i], "%.*s_%s", (int)f->key_len, f->key, a->fn[i].name) < 0) {
            out[i] = NULL;
            while (i--)
                free(out[i]);
            free(out);
            out = NULL;
        }
    }
    return out;
}

/* The index of the slot of field @f (the @pos-th of its point), or -1. */
static long slot_of(struct agg *a, struct entry *e, const gd_field *f, size_t pos)
{
    long i = field_slots_find(&e->slots, sizeof(struct slot), f->key, f->key_len, pos);
    if (i >= 0)
        return i;
    char **out = out_names(a, f);
    struct slot *s = out ? field_slots_add(&e->slots, sizeof(*s), f->key, f->key_len) : NULL;
    if (!s) {
        for (size_t k = 0; out && k < a->nfn; k++)
            free(out[k]);
        free(out);
        return -1;
    }
    s->out = out;
    s->selected = selected(a->cfg, s->fs.name);
    return (long)e->slots.n - 1;
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

static int64_t floor_div(int64_t x, int64_t d)
{
    int64_t q = x / d;
    return (x % d != 0 && (x < 0) != (d < 0)) ? q - 1 : q;
}

/* The open window of @e starting at @start, created in order if missing. */
static struct win *window_of(struct agg *a, struct entry *e, int64_t start)
{
    struct win **pp = &e->wins;
    while (*pp && (*pp)->start < start)
        pp = &(*pp)->next;
    if (*pp && (*pp)->start == start)
        return *pp;
    struct win *w = win_new(a, start, e->slots.cap);
    if (!w)
        return NULL;
    w->next = *pp;
    *pp = w;
    return w;
}

/* Add the selected numeric fields of @p to its window; false when @p has
 * none. */
static bool add_point(struct agg *a, struct entry *e, const gd_point *p, int64_t start)
{
    size_t nf;
    const gd_field *f = gd_point_fields(p, &nf);
    int64_t ts = gd_point_time(p);
    struct win *w = NULL;
    bool added = false;
    for (size_t k = 0; k < nf; k++) {
        if (!is_numeric(f[k].type))
            continue;
        long s = slot_of(a, e, &f[k], k);
        if (s < 0 || !slot_at(e, (size_t)s)->selected)
            continue;
        if (!w && !(w = window_of(a, e, start)))
            return added;
        struct acc *c = acc_of(a, e, &w, (size_t)s);
        if (c)
            acc_add(a, c, as_double(&f[k]), ts);
        added = true;
    }
    return added;
}

/* ---- processing ----------------------------------------------------------- */

/* Originals are copied to @out once something else has to go there too. */
struct copier {
    const gd_batch *in;
    gd_batch *out;
    size_t next; /* first original not yet in out */
    bool on;
    bool keep; /* !drop_original */
};

static void copy_upto(struct copier *c, size_t end)
{
    if (!c->keep)
        return;
    c->on = true;
    for (; c->next < end; c->next++)
        gd_batch_derive_point(c->out, gd_batch_point(c->in, c->next));
}

static void evict_oldest(struct agg *a, struct copier *c, size_t i)
{
    struct entry *old = (struct entry *)a->t.oldest;
    copy_upto(c, i);
    close_all(a, old, c->out);
    series_unlink(&a->t, &old->head);
    entry_release(a, old);
    series_free(&old->head);
    a->evicted++;
    gd_log_ratelimited(a->inst, GD_INFO,
                       "max_series (%zu) reached: %llu series evicted so far (least recently "
                       "used; their open windows were emitted early)",
                       a->t.max, (unsigned long long)a->evicted);
}

static int agg_process(void *state, const gd_batch *in, gd_batch *out)
{
    struct agg *a = state;
    struct copier c = {.in = in, .out = out, .keep = !a->cfg->drop_original};
    size_t len = gd_batch_len(in);
    uint64_t late = 0;

    series_ahead la;
    pthread_mutex_lock(&a->mu);
    series_ahead_start(&la, &a->t, in);
    for (size_t i = 0; i < len; i++) {
        const gd_point *p = gd_batch_point(in, i);
        int64_t ts = gd_point_time(p);
        bool created;
        struct entry *e = (struct entry *)series_get(&a->t, p, series_ahead_next(&la, i), &created);
        if (!e)
            continue; /* out of memory: passed on, not aggregated */
        if (created && a->t.n > a->t.max)
            evict_oldest(a, &c, i);
        if (e->wins && due_of(a, e->wins->start) <= ts) {
            copy_upto(&c, i);
            close_due(a, e, ts, out);
        }
        int64_t start;
        if (__builtin_mul_overflow(floor_div(ts, a->period_ns), a->period_ns, &start)) {
            if (!c.keep) /* its window would start before INT64_MIN: passed on only */
                gd_batch_derive_point(out, p);
            continue;
        }
        if (e->has_closed && start < e->closed_until)
            late++;
        else if (!add_point(a, e, p, start) && !c.keep)
            gd_batch_derive_point(out, p); /* nothing to aggregate: not an original to drop */
    }
    if (c.on)
        copy_upto(&c, len);
    a->late += late;
    uint64_t late_total = a->late;
    pthread_mutex_unlock(&a->mu);

    if (late) {
        gd_count_drop(a->inst, "late", late);
        gd_log_ratelimited(a->inst, GD_WARN,
                           "%llu points arrived after their window closed (period + grace); "
                           "left out of the aggregates (%llu in total)",
                           (unsigned long long)late, (unsigned long long)late_total);
    }
    return c.keep && !c.on ? GD_PASS : 0;
}

static int agg_flush(void *state, gd_batch *out)
{
    struct agg *a = state;
    pthread_mutex_lock(&a->mu);
    for (series *s = a->t.oldest; s; s = s->newer)
        close_all(a, (struct entry *)s, out);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

/* Close, by the wall clock, the windows of series that went quiet. */
static void on_tick(void *ctx)
{
    struct tick *t = ctx;
    struct agg *a = t->a;
    if (!a)
        return;
    int64_t now = gd_now_ns();
    gd_batch *b = NULL;
    pthread_mutex_lock(&a->mu);
    for (series *s = a->t.oldest; s; s = s->newer) {
        struct entry *e = (struct entry *)s;
        if (!e->wins || due_of(a, e->wins->start) > now)
            continue;
        if (!b && !(b = gd_batch_new(64)))
            break;
        close_due(a, e, now, b);
    }
    pthread_mutex_unlock(&a->mu);
    if (b && gd_batch_len(b))
        gd_emit(a->inst, b);
    else
        gd_batch_unref(b);
}

/* The timer is released: by gd_timer_stop() in destroy, or by the core
 * closing every timer at shutdown (before destroy). */
static void tick_free(void *ctx)
{
    struct tick *t = ctx;
    if (t->a) {
        t->a->tick = NULL;
        t->a->timer = NULL;
    }
    free(t);
}

/* ---- lifecycle -------------------------------------------------------------- */

static int parse_function(struct agg *a, const char *s, struct func *f)
{
    f->name = s;
    for (size_t k = 0; k < sizeof(fn_names) / sizeof(fn_names[0]); k++) {
        if (strcmp(s, fn_names[k]) == 0) {
            f->kind = (enum fn_kind)k;
            return 0;
        }
    }
    if (s[0] == 'p' && s[1]) {
        char *end;
        errno = 0;
        double pct = strtod(s + 1, &end);
        if (errno == 0 && *end == '\0' && s[1] >= '0' && s[1] <= '9' && pct > 0 && pct <= 100) {
            f->kind = FN_PCT;
            f->q = pct / 100.0;
            a->want_sketch = true;
            return 0;
        }
    }
    gd_log(a->inst, GD_ERROR,
           "functions: unknown function \"%s\" (use min, max, mean, sum, count, first, last, "
           "stddev or a percentile such as p50, p99.9)",
           s);
    return GD_ECONFIG;
}

static void agg_destroy(void *state)
{
    struct agg *a = state;
    if (!a)
        return;
    if (a->tick) {
        a->tick->a = NULL;
        gd_timer_stop(a->timer);
    }
    for (series *s = a->t.newest; s; s = s->older)
        entry_release(a, (struct entry *)s);
    series_table_free(&a->t);
    while (a->free_wins) {
        struct win *w = a->free_wins;
        a->free_wins = w->next;
        win_release(w);
    }
    pthread_mutex_destroy(&a->mu);
    free(a->fn);
    free(a);
}

static const char *const default_functions[] = {"mean", "min", "max", "count"};

static int agg_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct agg_cfg *c = cfgp;
    struct agg *a = calloc(1, sizeof(*a));
    if (!a)
        return GD_ENOMEM;
    a->inst = inst;
    a->cfg = c;
    pthread_mutex_init(&a->mu, NULL);
    a->period_ns = llround(c->period * NS_PER_S);
    a->grace_ns = llround(c->grace * NS_PER_S);
    sk_map_init(&a->map, c->accuracy);
    int rc = GD_ENOMEM;
    size_t nfn = c->functions.n ? c->functions.n : sizeof(default_functions) / sizeof(char *);
    if (!(a->fn = calloc(nfn, sizeof(*a->fn))))
        goto out_destroy;
    for (size_t i = 0; i < nfn; i++) {
        const char *name = c->functions.n ? c->functions.v[i] : default_functions[i];
        if ((rc = parse_function(a, name, &a->fn[i])) < 0)
            goto out_destroy;
        for (size_t k = 0; k < i; k++)
            if (strcmp(a->fn[k].name, name) == 0) {
                gd_log(inst, GD_ERROR, "functions: \"%s\" is listed twice", name);
                rc = GD_ECONFIG;
                goto out_destroy;
            }
    }
    a->nfn = nfn;
    if ((rc = series_table_init(&a->t, sizeof(struct entry), (size_t)c->max_series)) < 0)
        goto out_destroy;
    if (!(a->tick = calloc(1, sizeof(*a->tick)))) {
        rc = GD_ENOMEM;
        goto out_destroy;
    }
    a->tick->a = a;
    double tick_ms = c->period * 1000 / 10;
    tick_ms = tick_ms < TICK_MIN_MS ? TICK_MIN_MS : tick_ms > TICK_MAX_MS ? TICK_MAX_MS : tick_ms;
    rc = gd_timer_start(inst, (uint64_t)tick_ms, (uint64_t)tick_ms, on_tick, a->tick, tick_free,
                        &a->timer);
    if (rc < 0) {
        free(a->tick);
        a->tick = NULL;
        gd_log(inst, GD_ERROR, "cannot start the window timer: %s", gd_strerror(rc));
        goto out_destroy;
    }
    *state = a;
    return 0;
out_destroy:
    agg_destroy(a);
    return rc;
}

static const struct gd_option options[] = {
    GD_OPT_DURATION("period", "60s", 0.001, 31622400, 0, offsetof(struct agg_cfg, period),
                    "Window length; windows are aligned to the epoch by point time"),
    GD_OPT_DURATION("grace", "0", 0, 31622400, 0, offsetof(struct agg_cfg, grace),
                    "How long after its end a window still accepts late points"),
    GD_OPT_STRLIST("functions", 0, offsetof(struct agg_cfg, functions),
                   "min, max, mean, sum, count, first, last, stddev, pNN (default: mean, min, "
                   "max, count)"),
    GD_OPT_STRLIST("fields", 0, offsetof(struct agg_cfg, fields),
                   "Globs of the numeric fields to aggregate (default: every numeric field)"),
    GD_OPT_BOOL("drop_original", "false", 0, offsetof(struct agg_cfg, drop_original),
                "Drop the points aggregated instead of passing them on"),
    GD_OPT_STRING("measurement", NULL, 0, offsetof(struct agg_cfg, measurement),
                  "Measurement of the summary points (default: that of the series)"),
    GD_OPT_DOUBLE("accuracy", "0.01", 0.0001, 0.5, 0, offsetof(struct agg_cfg, accuracy),
                  "Relative accuracy of percentiles over more than 64 values"),
    GD_OPT_INT("max_series", "100000", 1, 100000000, 0, offsetof(struct agg_cfg, max_series),
               "Series with open windows at most; the least recently seen is emitted early"),
    GD_OPT_END,
};

static const struct gd_processor_ops ops = {
    .struct_size = sizeof(struct gd_processor_ops),
    .init = agg_init,
    .destroy = agg_destroy,
    .process = agg_process,
    .flush = agg_flush,
};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "aggregate",
    .version = "1.0.0",
    .kind = GD_KIND_PROCESSOR,
    .summary = "Summarise each series over fixed windows (min, max, mean, percentiles, ...)",
    .options = options,
    .config_size = sizeof(struct agg_cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
