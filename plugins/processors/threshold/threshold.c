/* SPDX-License-Identifier: Apache-2.0 */
/*
 * threshold.c - limit checks with hysteresis and a minimum duration.
 *
 * Every rule names fields (globs) and up to four limits. Each (series,
 * field) has a state: ok, or warning / critical on the low or high side. A
 * value at or beyond a limit enters its state; leaving it needs the value
 * back inside the limit by more than `hysteresis`. A new state is taken once
 * it held for `for` seconds of point time. On every change an alert point is
 * added to the output after the point that caused it; passing points can be
 * tagged with their state.
 *
 * No timers: state changes are driven by points only, so process() needs no
 * lock (the core never runs two of them at once). Per-series state is
 * bounded by max_series (least recently used forgotten).
 */
#include "fieldslots.h"
#include "series.h"
#include <fnmatch.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S   1e9
#define NO_LIMIT   "1e308" /* an unset limit; values never reach it */
#define UNSET      1e307   /* any limit beyond this magnitude is unset */

struct rule_cfg {
    gd_strlist fields;
    double warn_high, crit_high, warn_low, crit_low;
    double hysteresis;
    double duration;
};

struct th_cfg {
    gd_list rules; /* struct rule_cfg */
    char *alert_measurement;
    char *device_tag;
    char *tag_state;
    int64_t max_series;
};

enum level { L_OK, L_WARN, L_CRIT };
enum side { S_NONE, S_HIGH, S_LOW };

struct state {
    uint8_t level; /* enum level */
    uint8_t side;  /* enum side; S_NONE when ok */
};

static const char *const level_names[] = {"ok", "warning", "critical"};
static const char *const side_names[] = {"", "high", "low"};

struct slot {
    struct field_slot fs; /* first */
    long rule; /* index of the first rule whose globs match, -1: none */
    struct state cur, pending;
    bool has_pending;
    int64_t pending_since;
};

struct entry {
    series head;
    struct field_slots slots; /* of struct slot */
};

/* An alert due for the point in hand. */
struct pend {
    size_t slot;
    struct state prev;
    double v;
};

struct th {
    gd_instance *inst;
    const struct th_cfg *cfg;
    const struct rule_cfg *rules;
    int64_t *for_ns; /* per rule */
    series_table t;
    uint64_t evicted;
    struct pend *pend; /* alerts of the point in hand */
    size_t pend_cap;
};

static bool limit_set(double limit)
{
    return fabs(limit) < UNSET;
}

/* The level of @v against the high (or low) limits of @r. */
static enum level high_level(const struct rule_cfg *r, double v)
{
    if (limit_set(r->crit_high) && v >= r->crit_high)
        return L_CRIT;
    if (limit_set(r->warn_high) && v >= r->warn_high)
        return L_WARN;
    return L_OK;
}

static enum level low_level(const struct rule_cfg *r, double v)
{
    if (limit_set(r->crit_low) && v <= r->crit_low)
        return L_CRIT;
    if (limit_set(r->warn_low) && v <= r->warn_low)
        return L_WARN;
    return L_OK;
}

/* The state @v calls for, given the current state @cur: entering a level
 * takes reaching its limit, leaving it takes going back past the limit by
 * more than the hysteresis. */
static struct state classify(const struct rule_cfg *r, struct state cur, double v)
{
    enum level hi = high_level(r, v), lo = low_level(r, v);
    if (cur.side == S_HIGH) {
        enum level held = high_level(r, v + r->hysteresis);
        if (held > cur.level)
            held = (enum level)cur.level;
        if (held > hi)
            hi = held;
    } else if (cur.side == S_LOW) {
        enum level held = low_level(r, v - r->hysteresis);
        if (held > cur.level)
            held = (enum level)cur.level;
        if (held > lo)
            lo = held;
    }
    if (hi != L_OK)
        return (struct state){.level = hi, .side = S_HIGH};
    if (lo != L_OK)
        return (struct state){.level = lo, .side = S_LOW};
    return (struct state){.level = L_OK, .side = S_NONE};
}

static bool same(struct state a, struct state b)
{
    return a.level == b.level && a.side == b.side;
}

/* The limit an alert reports: that of the new state when it is worse or on
 * another side, else that of the state left. */
static double limit_of(const struct rule_cfg *r, struct state from, struct state to)
{
    struct state s =
        (to.level != L_OK && (to.side != from.side || to.level > from.level)) ? to : from;
    if (s.side == S_HIGH)
        return s.level == L_CRIT ? r->crit_high : r->warn_high;
    return s.level == L_CRIT ? r->crit_low : r->warn_low;
}

static void entry_release(struct entry *e)
{
    field_slots_free(&e->slots, sizeof(struct slot));
}

static long rule_for(const struct th *t, const char *name)
{
    for (size_t i = 0; i < t->cfg->rules.n; i++) {
        const gd_strlist *g = &t->rules[i].fields;
        for (size_t k = 0; k < g->n; k++)
            if (fnmatch(g->v[k], name, 0) == 0)
                return (long)i;
    }
    return -1;
}

static struct slot *slot_of(struct th *t, struct entry *e, const gd_field *f, size_t pos)
{
    long i = field_slots_find(&e->slots, sizeof(struct slot), f->key, f->key_len, pos);
    if (i >= 0)
        return field_slots_at(&e->slots, sizeof(struct slot), (size_t)i);
    struct slot *s = field_slots_add(&e->slots, sizeof(struct slot), f->key, f->key_len);
    if (s)
        s->rule = rule_for(t, s->fs.name);
    return s;
}

static bool numeric(const gd_field *f, double *v)
{
    switch (f->type) {
    case GD_F64:
        *v = f->v.f64;
        return true;
    case GD_I64:
        *v = (double)f->v.i64;
        return true;
    case GD_U64:
        *v = (double)f->v.u64;
        return true;
    }
    return false;
}

/* @now - @then, saturated (timestamps are any int64). */
static int64_t elapsed(int64_t now, int64_t then)
{
    int64_t d;
    if (__builtin_sub_overflow(now, then, &d))
        return now < then ? INT64_MIN : INT64_MAX;
    return d;
}

/* Step the state of one field; true when it changed (*@prev the old one). */
static bool step(const struct th *t, struct slot *s, double v, int64_t ts, struct state *prev)
{
    const struct rule_cfg *r = &t->rules[s->rule];
    struct state want = classify(r, s->cur, v);
    if (same(want, s->cur)) {
        s->has_pending = false;
        return false;
    }
    if (!s->has_pending || !same(want, s->pending)) {
        s->pending = want;
        s->pending_since = ts;
        s->has_pending = true;
    }
    if (elapsed(ts, s->pending_since) < t->for_ns[s->rule])
        return false;
    *prev = s->cur;
    s->cur = want;
    s->has_pending = false;
    return true;
}

static void add_alert(struct th *t, gd_batch *out, const gd_point *p, const char *field,
                      const struct rule_cfg *r, struct state from, struct state to, double v)
{
    gd_point *a = gd_batch_add(out, t->cfg->alert_measurement, gd_point_time(p));
    if (!a)
        return;
    const char *dev = gd_point_tag_get(p, t->cfg->device_tag);
    if (dev)
        gd_point_tag(a, "device", dev);
    gd_point_tag(a, "field", field);
    gd_point_tag(a, "state", level_names[to.level]);
    gd_point_f64(a, "value", v);
    gd_point_f64(a, "limit", limit_of(r, from, to));
    gd_point_str(a, "previous", level_names[from.level]);
    gd_point_str(a, "side", side_names[to.level != L_OK ? to.side : from.side]);
}

/* Copy @p to @out, tagged with @worst when tag_state is set. */
static void pass_point(const struct th *t, gd_batch *out, const gd_point *p, int worst)
{
    gd_point *c = gd_batch_derive_point(out, p);
    if (c && t->cfg->tag_state && worst >= 0)
        gd_point_tag(c, t->cfg->tag_state, level_names[worst]);
}

static void evict_oldest(struct th *t)
{
    series *old = t->t.oldest;
    series_unlink(&t->t, old);
    entry_release((struct entry *)old);
    series_free(old);
    t->evicted++;
    gd_log_ratelimited(t->inst, GD_INFO,
                       "max_series (%zu) reached: %llu series evicted so far (least recently "
                       "used); they start again from ok",
                       t->t.max, (unsigned long long)t->evicted);
}

/* Make room for @n pending alerts. */
static int grow_pend(struct th *t, size_t n)
{
    if (n <= t->pend_cap)
        return 0;
    size_t cap = t->pend_cap ? t->pend_cap * 2 : 8;
    struct pend *p = realloc(t->pend, cap * sizeof(*p));
    if (!p)
        return GD_ENOMEM;
    t->pend = p;
    t->pend_cap = cap;
    return 0;
}

static int th_process(void *state, const gd_batch *in, gd_batch *out)
{
    struct th *t = state;
    size_t len = gd_batch_len(in);
    size_t copied = 0; /* originals [0, copied) are in out */
    bool building = t->cfg->tag_state != NULL;
    series_ahead la;
    series_ahead_start(&la, &t->t, in);
    for (size_t i = 0; i < len; i++) {
        const gd_point *p = gd_batch_point(in, i);
        uint64_t h = series_ahead_next(&la, i);
        size_t nf, npend = 0;
        const gd_field *f = gd_point_fields(p, &nf);
        int64_t ts = gd_point_time(p);
        struct entry *e = NULL;
        int worst = -1;
        for (size_t k = 0; k < nf; k++) {
            double v;
            if (!numeric(&f[k], &v))
                continue;
            if (!e) {
                bool created;
                if (!(e = (struct entry *)series_get(&t->t, p, h, &created)))
                    break;
                if (created && t->t.n > t->t.max)
                    evict_oldest(t);
            }
            struct slot *s = slot_of(t, e, &f[k], k);
            if (!s || s->rule < 0)
                continue;
            struct state prev;
            if (step(t, s, v, ts, &prev) && grow_pend(t, npend + 1) == 0)
                t->pend[npend++] =
                    (struct pend){.slot = (size_t)(s - (struct slot *)e->slots.v), .prev = prev, .v = v};
            if ((int)s->cur.level > worst)
                worst = s->cur.level;
        }
        if (npend && !building) {
            for (; copied < i; copied++)
                gd_batch_derive_point(out, gd_batch_point(in, copied));
            building = true;
        }
        if (!building)
            continue;
        pass_point(t, out, p, worst);
        for (size_t k = 0; k < npend; k++) {
            const struct slot *s = field_slots_at(&e->slots, sizeof(*s), t->pend[k].slot);
            add_alert(t, out, p, s->fs.name, &t->rules[s->rule], t->pend[k].prev, s->cur,
                      t->pend[k].v);
        }
        copied = i + 1;
    }
    return building ? 0 : GD_PASS;
}

static void th_destroy(void *state)
{
    struct th *t = state;
    if (!t)
        return;
    for (series *s = t->t.newest; s; s = s->older)
        entry_release((struct entry *)s);
    series_table_free(&t->t);
    free(t->for_ns);
    free(t->pend);
    free(t);
}

static int check_rule(gd_instance *inst, size_t i, const struct rule_cfg *r)
{
    const char *why = NULL;
    if (r->fields.n == 0)
        why = "fields is required";
    else if (!limit_set(r->warn_high) && !limit_set(r->crit_high) && !limit_set(r->warn_low) &&
             !limit_set(r->crit_low))
        why = "set at least one of warning_high, critical_high, warning_low, critical_low";
    else if (limit_set(r->warn_high) && limit_set(r->crit_high) && r->warn_high > r->crit_high)
        why = "warning_high is above critical_high";
    else if (limit_set(r->warn_low) && limit_set(r->crit_low) && r->warn_low < r->crit_low)
        why = "warning_low is below critical_low";
    else if (fmin(r->warn_high, r->crit_high) <= fmax(r->warn_low, r->crit_low))
        why = "a high limit is at or below a low limit";
    if (!why)
        return 0;
    gd_log(inst, GD_ERROR, "rules[%zu]: %s", i, why);
    return GD_ECONFIG;
}

static int th_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct th_cfg *c = cfgp;
    const struct rule_cfg *rules = c->rules.items;
    if (c->rules.n == 0) {
        gd_log(inst, GD_ERROR, "rules: at least one rule is required");
        return GD_ECONFIG;
    }
    for (size_t i = 0; i < c->rules.n; i++)
        if (check_rule(inst, i, &rules[i]) < 0)
            return GD_ECONFIG;
    struct th *t = calloc(1, sizeof(*t));
    if (!t)
        return GD_ENOMEM;
    t->inst = inst;
    t->cfg = c;
    t->rules = rules;
    int rc = GD_ENOMEM;
    if (!(t->for_ns = calloc(c->rules.n, sizeof(*t->for_ns))))
        goto out_free;
    for (size_t i = 0; i < c->rules.n; i++)
        t->for_ns[i] = llround(rules[i].duration * NS_PER_S);
    if ((rc = series_table_init(&t->t, sizeof(struct entry), (size_t)c->max_series)) < 0)
        goto out_free;
    *state = t;
    return 0;
out_free:
    free(t->for_ns);
    free(t);
    return rc;
}

static const struct gd_option rule_options[] = {
    GD_OPT_STRLIST("fields", GD_OF_REQUIRED, offsetof(struct rule_cfg, fields),
                   "Globs of the numeric fields this rule checks"),
    GD_OPT_DOUBLE("warning_high", NO_LIMIT, 0, 0, 0, offsetof(struct rule_cfg, warn_high),
                  "Warning at or above this value (default: none)"),
    GD_OPT_DOUBLE("critical_high", NO_LIMIT, 0, 0, 0, offsetof(struct rule_cfg, crit_high),
                  "Critical at or above this value (default: none)"),
    GD_OPT_DOUBLE("warning_low", "-" NO_LIMIT, 0, 0, 0, offsetof(struct rule_cfg, warn_low),
                  "Warning at or below this value (default: none)"),
    GD_OPT_DOUBLE("critical_low", "-" NO_LIMIT, 0, 0, 0, offsetof(struct rule_cfg, crit_low),
                  "Critical at or below this value (default: none)"),
    GD_OPT_DOUBLE("hysteresis", "0", 0, 1e300, 0, offsetof(struct rule_cfg, hysteresis),
                  "How far back inside a limit a value must go to leave its state"),
    GD_OPT_DURATION("for", "0", 0, 0, 0, offsetof(struct rule_cfg, duration),
                    "How long (point time) a new state must hold before it is taken"),
    GD_OPT_END,
};

static const struct gd_option options[] = {
    GD_OPT_LIST("rules", rule_options, struct rule_cfg, GD_OF_REQUIRED,
                offsetof(struct th_cfg, rules), "Limit rules; a field uses the first that matches"),
    GD_OPT_STRING("alert_measurement", "alert", 0, offsetof(struct th_cfg, alert_measurement),
                  "Measurement of the alert points"),
    GD_OPT_STRING("device_tag", "device", 0, offsetof(struct th_cfg, device_tag),
                  "Tag of the checked point copied to the alert's `device` tag"),
    GD_OPT_STRING("tag_state", NULL, 0, offsetof(struct th_cfg, tag_state),
                  "When set, tag every checked point with its worst state under this key"),
    GD_OPT_INT("max_series", "100000", 1, 100000000, 0, offsetof(struct th_cfg, max_series),
               "Series whose state is kept at most; the least recently seen is forgotten"),
    GD_OPT_END,
};

static const struct gd_processor_ops ops = {
    .struct_size = sizeof(struct gd_processor_ops),
    .init = th_init,
    .destroy = th_destroy,
    .process = th_process,
};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "threshold",
    .version = "1.0.0",
    .kind = GD_KIND_PROCESSOR,
    .summary = "Alert on limits with hysteresis and a minimum duration",
    .options = options,
    .config_size = sizeof(struct th_cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
