/* SPDX-License-Identifier: Apache-2.0 */
/*
 * filter.c - keep or drop points by an expression over the measurement, tags
 * and fields, and keep or drop fields by name.
 *
 * The expression is compiled at init (expr.c); evaluation allocates nothing.
 * Whether a field name survives fields_keep / fields_drop is computed once
 * per distinct name and cached. Dropped points, including points left with
 * no field, are counted by the core as "filtered". A batch that comes out
 * unchanged is passed on untouched (GD_PASS).
 */
#include "expr.h"
#include "names.h"
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

enum mode { MODE_KEEP, MODE_DROP };
static const char *const mode_names[] = {"keep", "drop", NULL};

struct filter_cfg {
    char *expr;
    int mode;
    gd_strlist fields_keep;
    gd_strlist fields_drop;
};

struct filter {
    gd_instance *inst;
    const struct filter_cfg *cfg;
    expr *e;
    bool by_field;                      /* fields_keep or fields_drop set */
    names fields;                       /* field key -> 1 keep, 0 drop */
    names_first keep_first, drop_first; /* what names in the lists start with */
};

static bool glob_any(const gd_strlist *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (fnmatch(l->v[i], name, 0) == 0)
            return true;
    return false;
}

static bool field_kept(struct filter *f, const gd_field *fl)
{
    unsigned char c0 = (unsigned char)fl->key[0];
    if (f->cfg->fields_keep.n == 0 ? !names_first_has(&f->drop_first, c0)
                                   : !names_first_has(&f->keep_first, c0))
        return f->cfg->fields_keep.n == 0; /* no pattern can match: no lookup */
    uint32_t h = names_hash(fl->key, fl->key_len);
    uint64_t v;
    if (names_get(&f->fields, fl->key, fl->key_len, h, &v))
        return v != 0;
    const struct filter_cfg *c = f->cfg;
    bool keep = (c->fields_keep.n == 0 || glob_any(&c->fields_keep, fl->key)) &&
                !glob_any(&c->fields_drop, fl->key);
    names_put(&f->fields, fl->key, fl->key_len, h, keep);
    return keep;
}

/* How many fields of @p survive the field lists. */
static size_t fields_kept(struct filter *f, const gd_point *p, size_t *total)
{
    size_t nf, kept = 0;
    const gd_field *fl = gd_point_fields(p, &nf);
    for (size_t k = 0; k < nf; k++)
        kept += field_kept(f, &fl[k]);
    *total = nf;
    return kept;
}

/* Append @src to @out with only the fields that survive. */
static int copy_fields(struct filter *f, gd_batch *out, const gd_point *src)
{
    gd_point *p = gd_batch_derive_point(out, src);
    if (!p)
        return GD_ENOMEM;
    size_t nf;
    const gd_field *fl = gd_point_fields(src, &nf);
    size_t j = 0; /* the kept fields moved to the front, the rest cut off the end */
    for (size_t k = 0; k < nf; k++)
        if (field_kept(f, &fl[k]) && j++ != k)
            *gd_point_field_mut(p, j - 1) = fl[k];
    for (size_t k = nf; k-- > j;)
        gd_point_remove_field(p, k);
    return 0;
}

static int filter_process(void *state, const gd_batch *in, gd_batch *out)
{
    struct filter *f = state;
    size_t n = gd_batch_len(in);
    size_t copied = 0;    /* points before this index are settled in @out */
    bool changed = false; /* @out differs from @in */
    for (size_t i = 0; i < n; i++) {
        const gd_point *src = gd_batch_point(in, i);
        bool keep = true;
        if (f->e)
            keep = expr_match(f->e, src) == (f->cfg->mode == MODE_KEEP);
        size_t total = 0, kept = 0;
        if (keep && f->by_field) {
            kept = fields_kept(f, src, &total);
            keep = kept > 0;
        }
        if (keep && kept == total)
            continue; /* unchanged: copied lazily */
        for (; copied < i; copied++)
            if (!gd_batch_derive_point(out, gd_batch_point(in, copied)))
                return GD_ENOMEM;
        if (keep) {
            int rc = copy_fields(f, out, src);
            if (rc < 0)
                return rc;
        }
        copied = i + 1;
        changed = true;
    }
    if (!changed)
        return GD_PASS;
    for (; copied < n; copied++)
        if (!gd_batch_derive_point(out, gd_batch_point(in, copied)))
            return GD_ENOMEM;
    return 0;
}

static void filter_destroy(void *state)
{
    struct filter *f = state;
    if (!f)
        return;
    expr_free(f->e);
    names_free(&f->fields);
    free(f);
}

static int filter_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct filter_cfg *c = cfgp;
    if (!c->expr && c->fields_keep.n == 0 && c->fields_drop.n == 0) {
        gd_log(inst, GD_ERROR, "set expr, fields_keep or fields_drop");
        return GD_ECONFIG;
    }
    struct filter *f = calloc(1, sizeof(*f));
    if (!f)
        return GD_ENOMEM;
    f->inst = inst;
    f->cfg = c;
    f->by_field = c->fields_keep.n || c->fields_drop.n;
    for (size_t i = 0; i < c->fields_keep.n; i++)
        names_first_add(&f->keep_first, c->fields_keep.v[i]);
    for (size_t i = 0; i < c->fields_drop.n; i++)
        names_first_add(&f->drop_first, c->fields_drop.v[i]);
    int rc = names_init(&f->fields);
    if (rc < 0)
        goto out_free;
    if (c->expr) {
        char err[EXPR_ERR_LEN];
        if ((rc = expr_compile(c->expr, &f->e, err)) < 0) {
            if (rc == GD_ECONFIG)
                gd_log(inst, GD_ERROR, "expr: %s", err);
            goto out_free;
        }
    }
    *state = f;
    return 0;
out_free:
    filter_destroy(f);
    return rc;
}

static const struct gd_option options[] = {
    GD_OPT_STRING("expr", NULL, 0, offsetof(struct filter_cfg, expr),
                  "Expression selecting points (see README.md)"),
    GD_OPT_ENUM("mode", "keep", mode_names, 0, offsetof(struct filter_cfg, mode),
                "keep: pass only matching points; drop: drop matching points"),
    GD_OPT_STRLIST("fields_keep", 0, offsetof(struct filter_cfg, fields_keep),
                   "Keep only these fields (globs); empty: all"),
    GD_OPT_STRLIST("fields_drop", 0, offsetof(struct filter_cfg, fields_drop),
                   "Drop these fields (globs)"),
    GD_OPT_END,
};

static const struct gd_processor_ops ops = {
    .struct_size = sizeof(struct gd_processor_ops),
    .init = filter_init,
    .destroy = filter_destroy,
    .process = filter_process,
};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "filter",
    .version = "1.0.0",
    .kind = GD_KIND_PROCESSOR,
    .summary = "keep or drop points by expression, and fields by name",
    .options = options,
    .config_size = sizeof(struct filter_cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
