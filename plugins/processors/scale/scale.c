/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scale.c - linear scaling and unit conversion of numeric fields.
 *
 * Each rule selects fields by glob (and optionally measurements by glob) and
 * maps a value v to round(convert(v * factor + offset)); units are parsed
 * at init into the constants of one linear step.
 * A field uses the first rule that selects it. Which rules select a name is
 * cached per distinct field key and measurement (a 64-bit set, so at most
 * 64 rules), and the previous point's answer is reused while the key at a
 * position stays the same, so the per-point work is a short compare per
 * field. A scaled point is derived from the input point (its strings are
 * referenced, not copied) and its fields changed in place. A batch in
 * which no field is selected is passed on untouched (GD_PASS).
 */
#include "names.h"
#include <gatherd/gatherd.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_RULES    64  /* rule sets are uint64_t bit sets */
#define MAX_ROUND    15  /* decimals; beyond this a double has no more digits */
#define NAME_MAX_LEN 256 /* longest renamed field key */

struct rule_cfg {
    gd_strlist fields;
    gd_strlist measurements;
    char *convert;
    double factor;
    double offset;
    int64_t round;
    bool to_float;
    char *rename;
    char *strip_suffix;
    char *add_suffix;
};

struct scale_cfg {
    gd_list rules; /* struct rule_cfg */
};

/* A rule compiled: x = v * factor + offset, then, with a conversion,
 * x = (x + pre) * num / den + post, then rounding. */
struct rule {
    const struct rule_cfg *cfg;
    bool convert;
    double pre, num, den, post;
    double p10; /* 10^round, 0: no rounding */
    size_t strip_len, add_len, rename_len;
};

/* A field key copied into the output batch of the call in hand. */
struct key_memo {
    const char *key;
    uint32_t len;
};

/* What was found for the field at one position of the previous point: the
 * points of a batch mostly share a schema, so the next point's field there
 * usually has the same key (compared, not hashed). Reset per batch. */
struct pos_memo {
    const char *key; /* in the input batch; NULL: nothing known */
    uint32_t len;
    int nrule; /* the rule nkey was made for */
    uint64_t set;
    const char *nkey; /* new key, valid in the output batch; NULL: not made */
    uint32_t nlen;
};

struct scale {
    gd_instance *inst;
    struct rule *rules;
    size_t nrules;
    uint64_t all_meas; /* rules without a measurement filter */
    uint64_t every;    /* all rules */
    names fields, meas;
    names_first first; /* what a selected field name can start with */
    int *pick;         /* per field of the point in hand: rule index or -1 */
    size_t pick_cap;
    struct key_memo *memo; /* per rule: the new key made last in this batch */
    struct pos_memo *pos;  /* per field position, pick_cap of them */
};

/* ---- units ------------------------------------------------------------- */

enum dim { DIM_TEMP, DIM_PRESSURE, DIM_RATIO };

/* base = (v + pre) * num / den; bases: degrees Celsius, pascal, ppm. Kept as
 * a ratio so that conversions such as C->F multiply by 9 and divide by 5,
 * exactly as written by hand, instead of by a rounded 1.8000000000000003. */
struct unit {
    const char *name;
    enum dim dim;
    double pre, num, den;
};

static const struct unit units[] = {
    {"C", DIM_TEMP, 0, 1, 1},
    {"F", DIM_TEMP, -32, 5, 9},
    {"K", DIM_TEMP, -273.15, 1, 1},
    {"Pa", DIM_PRESSURE, 0, 1, 1},
    {"hPa", DIM_PRESSURE, 0, 100, 1},
    {"kPa", DIM_PRESSURE, 0, 1000, 1},
    {"mbar", DIM_PRESSURE, 0, 100, 1},
    {"bar", DIM_PRESSURE, 0, 100000, 1},
    {"psi", DIM_PRESSURE, 0, 6894.757293168361, 1},
    {"ppm", DIM_RATIO, 0, 1, 1},
    {"ppb", DIM_RATIO, 0, 1, 1000},
    {"percent", DIM_RATIO, 0, 10000, 1},
    {"%", DIM_RATIO, 0, 10000, 1},
};

static const struct unit *unit_find(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strlen(units[i].name) == len && strncasecmp(units[i].name, s, len) == 0)
            return &units[i];
    return NULL;
}

static size_t trim(const char **s, size_t len)
{
    while (len && (**s == ' ' || **s == '\t')) {
        (*s)++;
        len--;
    }
    while (len && ((*s)[len - 1] == ' ' || (*s)[len - 1] == '\t'))
        len--;
    return len;
}

/* Parse "A->B" into @r: to = (from + pre) * num / den + post. */
static int parse_convert(gd_instance *inst, size_t i, const char *spec, struct rule *r)
{
    const char *arrow = strstr(spec, "->");
    const char *a = spec, *b = arrow ? arrow + 2 : NULL;
    if (!arrow) {
        gd_log(inst, GD_ERROR, "rules[%zu]: convert: \"%s\" is not of the form \"FROM->TO\"", i,
               spec);
        return GD_ECONFIG;
    }
    size_t alen = trim(&a, (size_t)(arrow - spec)), blen = trim(&b, strlen(b));
    const struct unit *from = unit_find(a, alen), *to = unit_find(b, blen);
    if (!from || !to) {
        gd_log(inst, GD_ERROR,
               "rules[%zu]: convert: unknown unit \"%.*s\" (known: C F K Pa hPa kPa mbar bar psi "
               "ppm ppb percent)",
               i, from ? (int)blen : (int)alen, from ? b : a);
        return GD_ECONFIG;
    }
    if (from->dim != to->dim) {
        gd_log(inst, GD_ERROR, "rules[%zu]: convert: cannot convert %s to %s", i, from->name,
               to->name);
        return GD_ECONFIG;
    }
    r->convert = true;
    r->pre = from->pre;
    r->num = from->num * to->den;
    r->den = from->den * to->num;
    r->post = -to->pre;
    return 0;
}

/* ---- matching ---------------------------------------------------------- */

static bool glob_any(const gd_strlist *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (fnmatch(l->v[i], name, 0) == 0)
            return true;
    return false;
}

/* The rules whose `fields` select field @key. */
static uint64_t field_rules(struct scale *s, const char *key, size_t len)
{
    uint32_t h = names_hash(key, len);
    uint64_t set = 0;
    if (names_get(&s->fields, key, len, h, &set))
        return set;
    for (size_t r = 0; r < s->nrules; r++)
        if (glob_any(&s->rules[r].cfg->fields, key))
            set |= UINT64_C(1) << r;
    names_put(&s->fields, key, len, h, set);
    return set;
}

/* The rules that apply to measurement @m. */
static uint64_t meas_rules(struct scale *s, const char *m, size_t len)
{
    if (s->all_meas == s->every)
        return s->every; /* no rule filters measurements */
    uint32_t h = names_hash(m, len);
    uint64_t set = 0;
    if (names_get(&s->meas, m, len, h, &set))
        return set;
    set = s->all_meas;
    for (size_t r = 0; r < s->nrules; r++)
        if (s->rules[r].cfg->measurements.n && glob_any(&s->rules[r].cfg->measurements, m))
            set |= UINT64_C(1) << r;
    names_put(&s->meas, m, len, h, set);
    return set;
}

/* ---- processing -------------------------------------------------------- */

static bool is_numeric(uint32_t type)
{
    return type == GD_F64 || type == GD_I64 || type == GD_U64;
}

/* Pick a rule for each field of @p into s->pick; false when none applies. */
static bool pick_rules(struct scale *s, const gd_point *p)
{
    size_t nf;
    const gd_field *f = gd_point_fields(p, &nf);
    if (nf > s->pick_cap) {
        int *np = realloc(s->pick, nf * sizeof(*np));
        if (np)
            s->pick = np;
        struct pos_memo *pm = np ? realloc(s->pos, nf * sizeof(*pm)) : NULL;
        if (!pm) {
            gd_log_ratelimited(s->inst, GD_WARN, "out of memory: a point passed unscaled");
            return false;
        }
        memset(pm + s->pick_cap, 0, (nf - s->pick_cap) * sizeof(*pm));
        s->pos = pm;
        s->pick_cap = nf;
    }
    bool any = false;
    uint64_t mset = 0;
    bool mset_known = false;
    for (size_t k = 0; k < nf; k++) {
        s->pick[k] = -1;
        if (!is_numeric(f[k].type) || !names_first_has(&s->first, (unsigned char)f[k].key[0]))
            continue;
        struct pos_memo *c = &s->pos[k];
        if (!c->key || c->len != f[k].key_len ||
            (c->key != f[k].key && memcmp(c->key, f[k].key, c->len) != 0)) {
            c->key = f[k].key;
            c->len = f[k].key_len;
            c->nkey = NULL;
            c->set = field_rules(s, f[k].key, f[k].key_len);
        }
        uint64_t set = c->set;
        if (!set)
            continue;
        if (!mset_known) {
            size_t mlen;
            const char *m = gd_point_measurement(p, &mlen);
            mset = meas_rules(s, m, mlen);
            mset_known = true;
        }
        set &= mset;
        if (set) {
            s->pick[k] = __builtin_ctzll(set);
            any = true;
        }
    }
    return any;
}

/* The key of a field scaled by @r: @f's own key, or a copy in @out (the
 * last one made is reused while the points of a batch repeat the name). */
static const char *new_key(struct scale *s, gd_batch *out, const struct rule *r, const gd_field *f,
                           uint32_t *klen)
{
    const struct rule_cfg *c = r->cfg;
    char buf[NAME_MAX_LEN];
    const char *key = buf;
    size_t len = f->key_len;
    if (c->rename) {
        key = c->rename;
        len = r->rename_len;
    } else if (!r->strip_len && !r->add_len) {
        *klen = f->key_len;
        return f->key;
    } else {
        if (r->strip_len && len > r->strip_len &&
            memcmp(f->key + len - r->strip_len, c->strip_suffix, r->strip_len) == 0)
            len -= r->strip_len;
        if (len + r->add_len >= NAME_MAX_LEN) {
            *klen = f->key_len; /* too long to rename: keep the name */
            return f->key;
        }
        memcpy(buf, f->key, len);
        memcpy(buf + len, c->add_suffix ? c->add_suffix : "", r->add_len);
        len += r->add_len;
    }
    struct key_memo *m = &s->memo[r - s->rules];
    if (!m->key || m->len != len || memcmp(m->key, key, len) != 0) {
        const char *d = gd_batch_strdup(out, key, len);
        if (!d)
            return NULL;
        m->key = d;
        m->len = (uint32_t)len;
    }
    *klen = m->len;
    return m->key;
}

/* Scale field @f of @p (a point derived from the one in hand) in place; on
 * a value out of range the field is kept as it was. */
static int scale_field(struct scale *s, gd_batch *out, struct pos_memo *c, int rule, gd_field *f)
{
    const struct rule *r = &s->rules[rule];
    double v = f->type == GD_F64   ? f->v.f64
               : f->type == GD_I64 ? (double)f->v.i64
                                   : (double)f->v.u64;
    double x = v * r->cfg->factor + r->cfg->offset;
    if (r->convert)
        x = r->den == 1 ? (x + r->pre) * r->num + r->post
                        : (x + r->pre) * r->num / r->den + r->post;
    if (r->p10 != 0)
        x = round(x * r->p10) / r->p10;
    uint32_t type = f->type;
    union {
        double f64;
        int64_t i64;
        uint64_t u64;
    } nv = {.u64 = f->v.u64};
    if (f->type == GD_F64 || r->cfg->to_float) {
        type = GD_F64;
        nv.f64 = x;
    } else if (f->type == GD_I64 && x >= -0x1p63 && x < 0x1p63) {
        nv.i64 = llround(x);
    } else if (f->type == GD_U64 && x >= 0 && x < 0x1p64) {
        nv.u64 = (uint64_t)round(x);
    } else {
        type = 0;
    }
    if (!type || !isfinite(x)) {
        gd_log_ratelimited(s->inst, GD_WARN,
                           "field %s: scaled value %g out of range: kept as it was", f->key, x);
        return 0;
    }
    if (!c->nkey || c->nrule != rule) {
        if (!(c->nkey = new_key(s, out, r, f, &c->nlen)))
            return GD_ENOMEM;
        c->nrule = rule;
    }
    f->key = c->nkey;
    f->key_len = c->nlen;
    f->type = type;
    f->v.u64 = nv.u64;
    return 0;
}

/* Append @src to @out with its selected fields scaled. */
static int scale_point(struct scale *s, gd_batch *out, const gd_point *src)
{
    gd_point *p = gd_batch_derive_point(out, src);
    if (!p)
        return GD_ENOMEM;
    size_t nf;
    gd_point_fields(src, &nf);
    for (size_t k = 0; k < nf; k++) {
        if (s->pick[k] < 0)
            continue;
        int rc = scale_field(s, out, &s->pos[k], s->pick[k], gd_point_field_mut(p, k));
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int scale_process(void *state, const gd_batch *in, gd_batch *out)
{
    struct scale *s = state;
    size_t n = gd_batch_len(in);
    size_t copied = 0;                                /* points before this index are in @out */
    memset(s->memo, 0, s->nrules * sizeof(*s->memo)); /* keys of the last @out */
    if (s->pos)
        memset(s->pos, 0, s->pick_cap * sizeof(*s->pos)); /* keys of the last @in */
    for (size_t i = 0; i < n; i++) {
        const gd_point *src = gd_batch_point(in, i);
        if (!pick_rules(s, src))
            continue;
        for (; copied < i; copied++)
            if (!gd_batch_derive_point(out, gd_batch_point(in, copied)))
                return GD_ENOMEM;
        int rc = scale_point(s, out, src);
        if (rc < 0)
            return rc;
        copied = i + 1;
    }
    if (copied == 0)
        return GD_PASS;
    for (; copied < n; copied++)
        if (!gd_batch_derive_point(out, gd_batch_point(in, copied)))
            return GD_ENOMEM;
    return 0;
}

/* ---- lifecycle --------------------------------------------------------- */

static int compile_rule(gd_instance *inst, size_t i, const struct rule_cfg *c, struct rule *r)
{
    r->cfg = c;
    if (c->fields.n == 0) {
        gd_log(inst, GD_ERROR, "rules[%zu]: fields: at least one pattern is required", i);
        return GD_ECONFIG;
    }
    if (c->rename && (strlen(c->rename) == 0 || c->strip_suffix || c->add_suffix)) {
        gd_log(inst, GD_ERROR,
               "rules[%zu]: rename: must be non-empty and excludes strip_suffix/add_suffix", i);
        return GD_ECONFIG;
    }
    if (c->convert && parse_convert(inst, i, c->convert, r) < 0)
        return GD_ECONFIG;
    if (!isfinite(c->factor) || !isfinite(c->offset)) {
        gd_log(inst, GD_ERROR, "rules[%zu]: factor and offset must be finite", i);
        return GD_ECONFIG;
    }
    r->p10 = c->round >= 0 ? pow(10, (double)c->round) : 0;
    r->rename_len = c->rename ? strlen(c->rename) : 0;
    r->strip_len = c->strip_suffix ? strlen(c->strip_suffix) : 0;
    r->add_len = c->add_suffix ? strlen(c->add_suffix) : 0;
    return 0;
}

static void scale_destroy(void *state)
{
    struct scale *s = state;
    if (!s)
        return;
    names_free(&s->fields);
    names_free(&s->meas);
    free(s->rules);
    free(s->pick);
    free(s->memo);
    free(s->pos);
    free(s);
}

static int scale_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct scale_cfg *c = cfgp;
    const struct rule_cfg *rc = c->rules.items;
    if (c->rules.n == 0 || c->rules.n > MAX_RULES) {
        gd_log(inst, GD_ERROR, "rules: between 1 and %d rules are required", MAX_RULES);
        return GD_ECONFIG;
    }
    struct scale *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->nrules = c->rules.n;
    s->every = c->rules.n == MAX_RULES ? UINT64_MAX : (UINT64_C(1) << c->rules.n) - 1;
    int err = GD_ENOMEM;
    if (!(s->rules = calloc(c->rules.n, sizeof(*s->rules))) ||
        !(s->memo = calloc(c->rules.n, sizeof(*s->memo))))
        goto out_free;
    for (size_t i = 0; i < c->rules.n; i++) {
        if ((err = compile_rule(inst, i, &rc[i], &s->rules[i])) < 0)
            goto out_free;
        for (size_t g = 0; g < rc[i].fields.n; g++)
            names_first_add(&s->first, rc[i].fields.v[g]);
        if (rc[i].measurements.n == 0)
            s->all_meas |= UINT64_C(1) << i;
    }
    if ((err = names_init(&s->fields)) < 0 || (err = names_init(&s->meas)) < 0)
        goto out_free;
    *state = s;
    return 0;
out_free:
    scale_destroy(s);
    return err;
}

static const struct gd_option rule_options[] = {
    GD_OPT_STRLIST("fields", GD_OF_REQUIRED, offsetof(struct rule_cfg, fields),
                   "Field names (globs) the rule scales"),
    GD_OPT_STRLIST("measurements", 0, offsetof(struct rule_cfg, measurements),
                   "Only points of these measurements (globs); empty: all"),
    GD_OPT_STRING("convert", NULL, 0, offsetof(struct rule_cfg, convert),
                  "Unit conversion \"FROM->TO\", applied after factor and offset"),
    GD_OPT_DOUBLE("factor", "1", 0, 0, 0, offsetof(struct rule_cfg, factor), "Multiplier"),
    GD_OPT_DOUBLE("offset", "0", 0, 0, 0, offsetof(struct rule_cfg, offset),
                  "Added after the multiplication"),
    GD_OPT_INT("round", "-1", -1, MAX_ROUND, 0, offsetof(struct rule_cfg, round),
               "Round to this many decimals; -1: no rounding"),
    GD_OPT_BOOL("to_float", "false", 0, offsetof(struct rule_cfg, to_float),
                "Write integer fields back as floats"),
    GD_OPT_STRING("rename", NULL, 0, offsetof(struct rule_cfg, rename),
                  "New name of every field the rule scales"),
    GD_OPT_STRING("strip_suffix", NULL, 0, offsetof(struct rule_cfg, strip_suffix),
                  "Suffix removed from the field name when present"),
    GD_OPT_STRING("add_suffix", NULL, 0, offsetof(struct rule_cfg, add_suffix),
                  "Suffix appended to the field name"),
    GD_OPT_END,
};

static const struct gd_option options[] = {
    GD_OPT_LIST("rules", rule_options, struct rule_cfg, GD_OF_REQUIRED,
                offsetof(struct scale_cfg, rules), "Scaling rules; a field uses the first match"),
    GD_OPT_END,
};

static const struct gd_processor_ops ops = {
    .struct_size = sizeof(struct gd_processor_ops),
    .init = scale_init,
    .destroy = scale_destroy,
    .process = scale_process,
};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "scale",
    .version = "1.0.0",
    .kind = GD_KIND_PROCESSOR,
    .summary = "scale numeric fields and convert units",
    .options = options,
    .config_size = sizeof(struct scale_cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
