/* SPDX-License-Identifier: Apache-2.0 */
/* options.c - option tables applied to libconfig groups: typed setters,
 * defaults, validation, freeing, canonical text, -t printing, --describe
 * text and table checks. Every value goes through one setter per type. */
#include "options.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH            16 /* nesting of sub tables (guards recursive tables) */
#define SUGGEST_MAX_DISTANCE 2
#define MAX_NAME_FOR_SUGGEST 64
#define NO_FILE_NAME         "<config>"

/* ---- shared helpers ----------------------------------------------------- */

static void *field_of(void *dst, const struct gd_option *o)
{
    return (char *)dst + o->offset;
}

static const void *cfield_of(const void *dst, const struct gd_option *o)
{
    return (const char *)dst + o->offset;
}

static bool has_bounds(const struct gd_option *o)
{
    return o->min < o->max &&
           (o->type == GD_OT_INT || o->type == GD_OT_DOUBLE || o->type == GD_OT_DURATION);
}

static bool type_known(uint32_t t)
{
    return t >= GD_OT_BOOL && t <= GD_OT_GROUP;
}

#define PLAIN_INTEGER_LIMIT 1e15 /* integral values below this print without exponent */

/* Shortest text that reads back to the same double ("3600", "0.1", "1e-09"). */
static void fmt_double(char *buf, size_t len, double d)
{
    if (d == floor(d) && fabs(d) < PLAIN_INTEGER_LIMIT) {
        snprintf(buf, len, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

static const char *type_label(uint32_t t)
{
    switch (t) {
    case GD_OT_BOOL:
        return "bool";
    case GD_OT_INT:
        return "int";
    case GD_OT_DOUBLE:
        return "double";
    case GD_OT_DURATION:
        return "duration";
    case GD_OT_STRING:
        return "string";
    case GD_OT_ENUM:
        return "enum";
    case GD_OT_STRLIST:
        return "list of strings";
    case GD_OT_KV:
        return "table of strings";
    case GD_OT_LIST:
        return "list of groups";
    case GD_OT_GROUP:
        return "group";
    }
    return "unknown";
}

/* What a config value of option type @t must look like, for messages. */
static const char *expected_label(uint32_t t)
{
    switch (t) {
    case GD_OT_BOOL:
        return "boolean";
    case GD_OT_INT:
        return "integer";
    case GD_OT_DOUBLE:
        return "number";
    case GD_OT_DURATION:
        return "duration (seconds or a string such as \"5s\")";
    case GD_OT_STRING:
    case GD_OT_ENUM:
        return "string";
    case GD_OT_STRLIST:
        return "string or list of strings";
    case GD_OT_KV:
    case GD_OT_GROUP:
        return "group";
    case GD_OT_LIST:
        return "list";
    }
    return "?";
}

static const char *setting_label(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "integer";
    case CONFIG_TYPE_FLOAT:
        return "float";
    case CONFIG_TYPE_STRING:
        return "string";
    case CONFIG_TYPE_BOOL:
        return "boolean";
    case CONFIG_TYPE_GROUP:
        return "group";
    case CONFIG_TYPE_ARRAY:
        return "array";
    case CONFIG_TYPE_LIST:
        return "list";
    }
    return "nothing";
}

/* ---- error reporting ------------------------------------------------------ */

struct fill {
    gd__errs *errs;
    size_t nerr;
    bool expand; /* false when checking a table: no environment or file lookups */
};

/* Where a value came from, for messages. */
struct site {
    const config_setting_t *at; /* the offending setting, or the group; NULL: no location */
    const char *ctx;            /* "input 'x' (plugin modbus)"; may be NULL */
    const char *name;           /* option name as shown ("registers[1]", "tags.site") */
    const char *dflt;           /* the table's default text when that is what failed */
};

static void report(struct fill *f, const struct site *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct fill *f, const struct site *s, const char *fmt, ...)
{
    f->nerr++;
    if (!f->errs)
        return;
    char *reason = NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc = vasprintf(&reason, fmt, ap);
    va_end(ap);
    if (rc < 0)
        reason = NULL;

    char *loc = NULL;
    if (s->at) {
        const char *file = config_setting_source_file(s->at);
        if (asprintf(&loc, "%s:%u: ", file ? file : NO_FILE_NAME,
                     (unsigned)config_setting_source_line(s->at)) < 0)
            loc = NULL;
    }
    gd__errs_add(f->errs, "%s%s%soption '%s': %s%s%s%s", loc ? loc : "", s->ctx ? s->ctx : "",
                 s->ctx ? ": " : "", s->name ? s->name : "?", s->dflt ? "invalid default \"" : "",
                 s->dflt ? s->dflt : "", s->dflt ? "\": " : "", reason ? reason : "out of memory");
    free(loc);
    free(reason);
}

static void report_type(struct fill *f, const struct site *s, uint32_t want,
                        const config_setting_t *v)
{
    report(f, s, "expected %s but got %s", expected_label(want), setting_label(v));
}

/* Expands a string value; NULL after reporting the reason. */
static char *expand_value(struct fill *f, const struct site *s, const char *in)
{
    if (!f->expand)
        return strdup(in);
    char *why = NULL;
    char *out = gd__expand(in, &why);
    if (!out)
        report(f, s, "%s", why ? why : "out of memory");
    free(why);
    return out;
}

static bool check_bounds(struct fill *f, const struct site *s, const struct gd_option *o, double v,
                         const char *shown)
{
    if (!has_bounds(o) || (v >= o->min && v <= o->max))
        return true;
    char lo[32], hi[32];
    fmt_double(lo, sizeof(lo), o->min);
    fmt_double(hi, sizeof(hi), o->max);
    report(f, s, "value %s out of range [%s, %s]%s", shown, lo, hi,
           o->type == GD_OT_DURATION ? " seconds" : "");
    return false;
}

/* ---- freeing ------------------------------------------------------------- */

static void free_strlist(gd_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void free_kvlist(gd_kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].key);
        free(l->v[i].value);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void free_table(const struct gd_option *opts, void *dst, int depth);

static void free_list(const struct gd_option *o, gd_list *l, int depth)
{
    for (size_t i = 0; l->items && i < l->n && o->item_size; i++)
        free_table(o->sub, (char *)l->items + i * o->item_size, depth + 1);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* Frees and zeroes the field of one option. */
static void free_field(const struct gd_option *o, void *field, int depth)
{
    switch (o->type) {
    case GD_OT_BOOL:
        *(bool *)field = false;
        break;
    case GD_OT_INT:
        *(int64_t *)field = 0;
        break;
    case GD_OT_DOUBLE:
    case GD_OT_DURATION:
        *(double *)field = 0;
        break;
    case GD_OT_STRING:
        free(*(char **)field);
        *(char **)field = NULL;
        break;
    case GD_OT_ENUM:
        *(int *)field = 0;
        break;
    case GD_OT_STRLIST:
        free_strlist(field);
        break;
    case GD_OT_KV:
        free_kvlist(field);
        break;
    case GD_OT_LIST:
        free_list(o, field, depth);
        break;
    case GD_OT_GROUP:
        free_table(o->sub, field, depth + 1);
        break;
    }
}

static void free_table(const struct gd_option *opts, void *dst, int depth)
{
    if (!opts || !dst || depth > MAX_DEPTH)
        return;
    for (const struct gd_option *o = opts; o->name; o++)
        free_field(o, field_of(dst, o), depth);
}

void gd__opts_free(const struct gd_option *opts, void *dst)
{
    free_table(opts, dst, 0);
}

/* ---- setters ------------------------------------------------------------- */

static int fill_table(struct fill *f, const struct gd__optset *sets, size_t nsets,
                      const config_setting_t *group, const char *ctx, int depth);

static char *sub_ctx(const char *ctx, const char *name, long idx)
{
    char *out = NULL;
    int rc;
    if (idx >= 0)
        rc = asprintf(&out, "%s%s%s[%ld]", ctx ? ctx : "", ctx ? " " : "", name, idx);
    else
        rc = asprintf(&out, "%s%s%s", ctx ? ctx : "", ctx ? " " : "", name);
    return rc < 0 ? NULL : out;
}

static bool set_bool(struct fill *f, const struct site *s, const config_setting_t *v, bool *out)
{
    if (config_setting_type(v) != CONFIG_TYPE_BOOL) {
        report_type(f, s, GD_OT_BOOL, v);
        return false;
    }
    *out = config_setting_get_bool(v) != 0;
    return true;
}

static bool set_int(struct fill *f, const struct site *s, const struct gd_option *o,
                    const config_setting_t *v, int64_t *out)
{
    int t = config_setting_type(v);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
        report_type(f, s, GD_OT_INT, v);
        return false;
    }
    long long n = config_setting_get_int64(v);
    char shown[32];
    snprintf(shown, sizeof(shown), "%lld", n);
    if (!check_bounds(f, s, o, (double)n, shown))
        return false;
    *out = (int64_t)n;
    return true;
}

static bool number_of(const config_setting_t *v, double *out)
{
    switch (config_setting_type(v)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        *out = (double)config_setting_get_int64(v);
        return true;
    case CONFIG_TYPE_FLOAT:
        *out = config_setting_get_float(v);
        return true;
    }
    return false;
}

static bool set_double(struct fill *f, const struct site *s, const struct gd_option *o,
                       const config_setting_t *v, double *out)
{
    double d;
    if (!number_of(v, &d)) {
        report_type(f, s, GD_OT_DOUBLE, v);
        return false;
    }
    char shown[32];
    fmt_double(shown, sizeof(shown), d);
    if (!isfinite(d)) {
        report(f, s, "value %s is not a finite number", shown);
        return false;
    }
    if (!check_bounds(f, s, o, d, shown))
        return false;
    *out = d;
    return true;
}

static bool set_duration(struct fill *f, const struct site *s, const struct gd_option *o,
                         const config_setting_t *v, double *out)
{
    double d;
    char shown[64];
    if (config_setting_type(v) == CONFIG_TYPE_STRING) {
        char *txt = expand_value(f, s, config_setting_get_string(v));
        if (!txt)
            return false;
        int rc = gd__duration_parse(txt, &d);
        if (rc < 0)
            report(f, s,
                   "invalid duration \"%s\" (use a number of seconds or e.g. \"250ms\", "
                   "\"5s\", \"1.5m\", \"2h\", \"1d\")",
                   txt);
        snprintf(shown, sizeof(shown), "\"%s\"", txt);
        free(txt);
        if (rc < 0)
            return false;
    } else if (number_of(v, &d)) {
        fmt_double(shown, sizeof(shown), d);
        if (!isfinite(d) || d < 0) {
            report(f, s, "invalid duration %s (must be a non-negative number of seconds)", shown);
            return false;
        }
    } else {
        report_type(f, s, GD_OT_DURATION, v);
        return false;
    }
    if (!check_bounds(f, s, o, d, shown))
        return false;
    *out = d;
    return true;
}

static bool set_string(struct fill *f, const struct site *s, const config_setting_t *v, char **out)
{
    if (config_setting_type(v) != CONFIG_TYPE_STRING) {
        report_type(f, s, GD_OT_STRING, v);
        return false;
    }
    char *val = expand_value(f, s, config_setting_get_string(v));
    if (!val)
        return false;
    free(*out);
    *out = val;
    return true;
}

static bool set_enum(struct fill *f, const struct site *s, const struct gd_option *o,
                     const config_setting_t *v, int *out)
{
    if (config_setting_type(v) != CONFIG_TYPE_STRING) {
        report_type(f, s, GD_OT_ENUM, v);
        return false;
    }
    char *val = expand_value(f, s, config_setting_get_string(v));
    if (!val)
        return false;
    for (int i = 0; o->choices && o->choices[i]; i++) {
        if (strcmp(o->choices[i], val) == 0) {
            *out = i;
            free(val);
            return true;
        }
    }
    gd_buf list = {0};
    for (int i = 0; o->choices && o->choices[i]; i++)
        gd_buf_printf(&list, "%s\"%s\"", i ? ", " : "", o->choices[i]);
    report(f, s, "\"%s\" must be one of %s", val, list.data ? list.data : "(no choices)");
    gd_buf_free(&list);
    free(val);
    return false;
}

static bool set_strlist(struct fill *f, const struct site *s, const config_setting_t *v,
                        gd_strlist *out)
{
    gd_strlist l = {0};
    int t = config_setting_type(v);
    if (t == CONFIG_TYPE_STRING) {
        l.v = calloc(1, sizeof(*l.v));
        if (!l.v) {
            report(f, s, "out of memory");
            return false;
        }
        l.v[0] = expand_value(f, s, config_setting_get_string(v));
        if (!l.v[0]) {
            free(l.v);
            return false;
        }
        l.n = 1;
    } else if (t == CONFIG_TYPE_ARRAY || t == CONFIG_TYPE_LIST) {
        size_t n = (size_t)config_setting_length(v);
        bool ok = true;
        l.v = n ? calloc(n, sizeof(*l.v)) : NULL;
        if (n && !l.v) {
            report(f, s, "out of memory");
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(v, (unsigned)i);
            char name[256];
            snprintf(name, sizeof(name), "%s[%zu]", s->name, i);
            struct site es = {e, s->ctx, name, s->dflt};
            if (config_setting_type(e) != CONFIG_TYPE_STRING) {
                report_type(f, &es, GD_OT_STRING, e);
                ok = false;
                continue;
            }
            char *item = expand_value(f, &es, config_setting_get_string(e));
            if (!item) {
                ok = false;
                continue;
            }
            l.v[l.n++] = item;
        }
        if (!ok) {
            free_strlist(&l);
            return false;
        }
    } else {
        report_type(f, s, GD_OT_STRLIST, v);
        return false;
    }
    free_strlist(out);
    *out = l;
    return true;
}

/* A scalar rendered as text for a KV value. */
static char *kv_text(struct fill *f, const struct site *s, const config_setting_t *e)
{
    char buf[64];
    switch (config_setting_type(e)) {
    case CONFIG_TYPE_STRING:
        return expand_value(f, s, config_setting_get_string(e));
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        snprintf(buf, sizeof(buf), "%lld", config_setting_get_int64(e));
        return strdup(buf);
    case CONFIG_TYPE_FLOAT:
        fmt_double(buf, sizeof(buf), config_setting_get_float(e));
        return strdup(buf);
    case CONFIG_TYPE_BOOL:
        return strdup(config_setting_get_bool(e) ? "true" : "false");
    }
    report(f, s, "expected a string, number or boolean but got %s", setting_label(e));
    return NULL;
}

static bool set_kv(struct fill *f, const struct site *s, const config_setting_t *v, gd_kvlist *out)
{
    if (config_setting_type(v) != CONFIG_TYPE_GROUP) {
        report_type(f, s, GD_OT_KV, v);
        return false;
    }
    gd_kvlist l = {0};
    size_t n = (size_t)config_setting_length(v);
    bool ok = true;
    l.v = n ? calloc(n, sizeof(*l.v)) : NULL;
    if (n && !l.v) {
        report(f, s, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(v, (unsigned)i);
        const char *key = config_setting_name(e);
        char name[256];
        snprintf(name, sizeof(name), "%s.%s", s->name, key ? key : "?");
        struct site es = {e, s->ctx, name, s->dflt};
        char *val = kv_text(f, &es, e);
        char *k = key ? strdup(key) : NULL;
        if (!val || !k) {
            if (val && !k)
                report(f, &es, "out of memory");
            free(val);
            free(k);
            ok = false;
            continue;
        }
        l.v[l.n].key = k;
        l.v[l.n].value = val;
        l.n++;
    }
    if (!ok) {
        free_kvlist(&l);
        return false;
    }
    free_kvlist(out);
    *out = l;
    return true;
}

static bool set_list(struct fill *f, const struct site *s, const struct gd_option *o,
                     const config_setting_t *v, gd_list *out, int depth)
{
    int t = config_setting_type(v);
    if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) {
        report_type(f, s, GD_OT_LIST, v);
        return false;
    }
    if (!o->sub || !o->item_size) {
        report(f, s, "the plugin's table has no item layout for this list");
        return false;
    }
    size_t n = (size_t)config_setting_length(v);
    gd_list l = {0};
    if (n) {
        if (o->item_size > SIZE_MAX / n || !(l.items = calloc(n, o->item_size))) {
            report(f, s, "out of memory");
            return false;
        }
    }
    l.n = n;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(v, (unsigned)i);
        char name[256];
        snprintf(name, sizeof(name), "%s[%zu]", s->name, i);
        struct site es = {e, s->ctx, name, s->dflt};
        void *item = (char *)l.items + i * o->item_size;
        const config_setting_t *g = e;
        if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
            report_type(f, &es, GD_OT_GROUP, e);
            ok = false;
            g = NULL; /* still give the item its defaults */
        }
        char *ictx = sub_ctx(s->ctx, s->name, (long)i);
        struct gd__optset set = {o->sub, item};
        if (fill_table(f, &set, 1, g, ictx ? ictx : s->ctx, depth + 1) < 0)
            ok = false;
        free(ictx);
    }
    /* Items that failed are kept: they are consistent and freeable. */
    free_list(o, out, depth);
    *out = l;
    return ok;
}

/* Sets one (non-GROUP) option from @v. The field is unchanged on failure,
 * except for LIST, which keeps what could be filled. */
static bool set_value(struct fill *f, const struct site *s, const struct gd_option *o,
                      const config_setting_t *v, void *field, int depth)
{
    switch (o->type) {
    case GD_OT_BOOL:
        return set_bool(f, s, v, field);
    case GD_OT_INT:
        return set_int(f, s, o, v, field);
    case GD_OT_DOUBLE:
        return set_double(f, s, o, v, field);
    case GD_OT_DURATION:
        return set_duration(f, s, o, v, field);
    case GD_OT_STRING:
        return set_string(f, s, v, field);
    case GD_OT_ENUM:
        return set_enum(f, s, o, v, field);
    case GD_OT_STRLIST:
        return set_strlist(f, s, v, field);
    case GD_OT_KV:
        return set_kv(f, s, v, field);
    case GD_OT_LIST:
        return set_list(f, s, o, v, field, depth);
    }
    report(f, s, "the plugin's table has an unknown option type %u", (unsigned)o->type);
    return false;
}

/* Parses the default text through the same setter as a config value. String
 * and enum defaults are the raw value; others are config text ("502",
 * "true", ["a", "b"]), and a duration may also be "5s". */
static bool set_default(struct fill *f, const struct site *s, const struct gd_option *o,
                        void *field, int depth)
{
    config_t tmp;
    config_init(&tmp);
    const config_setting_t *v = NULL;
    bool raw = o->type == GD_OT_STRING || o->type == GD_OT_ENUM;
    if (!raw) {
        char *text = NULL;
        if (asprintf(&text, "v = %s;", o->def) >= 0 && config_read_string(&tmp, text))
            v = config_lookup(&tmp, "v");
        free(text);
    }
    if (!v) {
        /* Not config text ("5s", "block", a bare word): take it as a string. */
        config_destroy(&tmp);
        config_init(&tmp);
        config_setting_t *sv =
            config_setting_add(config_root_setting(&tmp), "v", CONFIG_TYPE_STRING);
        if (sv && config_setting_set_string(sv, o->def))
            v = sv;
    }
    struct site ds = *s;
    ds.dflt = o->def;
    bool ok;
    if (v) {
        ok = set_value(f, &ds, o, v, field, depth);
    } else {
        report(f, &ds, "out of memory");
        ok = false;
    }
    config_destroy(&tmp);
    return ok;
}

static int fold(char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Optimal string alignment distance (a transposition counts 1), ASCII case
 * folded. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAX_NAME_FOR_SUGGEST || lb > MAX_NAME_FOR_SUGGEST)
        return SIZE_MAX;
    unsigned char d[MAX_NAME_FOR_SUGGEST + 1][MAX_NAME_FOR_SUGGEST + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned char)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned char)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            unsigned best = d[i - 1][j] + 1u;
            if (d[i][j - 1] + 1u < best)
                best = d[i][j - 1] + 1u;
            unsigned subst = d[i - 1][j - 1] + (fold(a[i - 1]) == fold(b[j - 1]) ? 0u : 1u);
            if (subst < best)
                best = subst;
            if (i > 1 && j > 1 && fold(a[i - 1]) == fold(b[j - 2]) &&
                fold(a[i - 2]) == fold(b[j - 1]) && d[i - 2][j - 2] + 1u < best)
                best = d[i - 2][j - 2] + 1u;
            d[i][j] = (unsigned char)best;
        }
    }
    return d[la][lb];
}

static const struct gd_option *find_opt(const struct gd__optset *sets, size_t nsets,
                                        const char *name)
{
    for (size_t i = 0; i < nsets; i++)
        for (const struct gd_option *o = sets[i].opts; o && o->name; o++)
            if (strcmp(o->name, name) == 0)
                return o;
    return NULL;
}

static const char *suggest(const struct gd__optset *sets, size_t nsets, const char *name)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    size_t limit = strlen(name) / 2;
    if (limit > SUGGEST_MAX_DISTANCE)
        limit = SUGGEST_MAX_DISTANCE;
    for (size_t i = 0; i < nsets; i++) {
        for (const struct gd_option *o = sets[i].opts; o && o->name; o++) {
            size_t d = edit_distance(name, o->name);
            if (d <= limit && d < best_d) {
                best = o->name;
                best_d = d;
            }
        }
    }
    return best;
}

static void fill_group_opt(struct fill *f, const struct site *s, const struct gd_option *o,
                           const config_setting_t *v, void *field, int depth)
{
    if (v && config_setting_type(v) != CONFIG_TYPE_GROUP) {
        report_type(f, s, GD_OT_GROUP, v);
        v = NULL; /* fill the defaults anyway */
    }
    if (!o->sub) {
        report(f, s, "the plugin's table has no sub table for this group");
        return;
    }
    char *gctx = sub_ctx(s->ctx, o->name, -1);
    struct gd__optset set = {o->sub, field};
    fill_table(f, &set, 1, v, gctx ? gctx : s->ctx, depth + 1);
    free(gctx);
}

static int fill_table(struct fill *f, const struct gd__optset *sets, size_t nsets,
                      const config_setting_t *group, const char *ctx, int depth)
{
    size_t before = f->nerr;
    if (depth > MAX_DEPTH) {
        struct site s = {group, ctx, "?", NULL};
        report(f, &s, "options nested too deeply");
        return GD_ECONFIG;
    }
    if (group && config_setting_type(group) != CONFIG_TYPE_GROUP) {
        struct site s = {group, ctx, config_setting_name(group), NULL};
        report(f, &s, "expected group but got %s", setting_label(group));
        group = NULL;
    }
    for (size_t i = 0; sets && i < nsets; i++) {
        if (!sets[i].dst)
            continue;
        for (const struct gd_option *o = sets[i].opts; o && o->name; o++) {
            void *field = field_of(sets[i].dst, o);
            const config_setting_t *v = group ? config_setting_get_member(group, o->name) : NULL;
            struct site s = {v ? v : group, ctx, o->name, NULL};
            if (o->type == GD_OT_GROUP) {
                fill_group_opt(f, &s, o, v, field, depth);
                continue;
            }
            if (o->def) {
                struct site ds = {group, ctx, o->name, NULL};
                set_default(f, &ds, o, field, depth);
            }
            if (v)
                set_value(f, &s, o, v, field, depth);
            else if (o->flags & GD_OF_REQUIRED)
                report(f, &s, "missing required value");
        }
    }
    for (int i = 0; group && i < config_setting_length(group); i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(m);
        if (!name || find_opt(sets, nsets, name))
            continue;
        struct site s = {m, ctx, name, NULL};
        const char *hint = suggest(sets, nsets, name);
        if (hint)
            report(f, &s, "unknown option (did you mean '%s'?)", hint);
        else
            report(f, &s, "unknown option");
    }
    return f->nerr > before ? GD_ECONFIG : 0;
}

int gd__opts_fill(const struct gd__optset *sets, size_t nsets, const config_setting_t *group,
                  const char *ctx, gd__errs *errs)
{
    struct fill f = {errs, 0, true};
    return fill_table(&f, sets, nsets, group, ctx, 0);
}

/* ---- durations ------------------------------------------------------------ */

static const struct {
    const char *unit;
    double seconds;
} duration_units[] = {
    {"ns", 1e-9},   {"us", 1e-6},    {"\xc2\xb5s", 1e-6}, {"ms", 1e-3},    {"s", 1},
    {"sec", 1},     {"secs", 1},     {"second", 1},       {"seconds", 1},  {"m", 60},
    {"min", 60},    {"mins", 60},    {"minute", 60},      {"minutes", 60}, {"h", 3600},
    {"hour", 3600}, {"hours", 3600}, {"d", 86400},        {"day", 86400},  {"days", 86400},
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

int gd__duration_parse(const char *s, double *seconds)
{
    if (!s || !seconds)
        return GD_EINVAL;
    const char *p = s;
    double total = 0;
    int parts = 0;
    bool unitless = false;
    for (;;) {
        while (is_space(*p))
            p++;
        if (!*p)
            break;
        if (unitless)
            return GD_EINVAL; /* "5 3s": a bare number only stands alone */
        /* The number: digits with an optional fraction; no sign, no exponent,
         * no "inf" or "nan" (which strtod would take). */
        const char *start = p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p == '.')
            p++;
        while (*p >= '0' && *p <= '9')
            p++;
        size_t len = (size_t)(p - start);
        char num[64];
        if (len == 0 || (len == 1 && *start == '.') || len >= sizeof(num))
            return GD_EINVAL;
        memcpy(num, start, len);
        num[len] = '\0';
        double v = strtod(num, NULL);

        while (is_space(*p))
            p++;
        const char *u = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (unsigned char)*p >= 0x80)
            p++;
        size_t ulen = (size_t)(p - u);
        if (ulen == 0) {
            if (parts > 0)
                return GD_EINVAL; /* "1m30" */
            unitless = true;
            total += v;
        } else {
            size_t k, nunits = sizeof(duration_units) / sizeof(duration_units[0]);
            for (k = 0; k < nunits; k++)
                if (strlen(duration_units[k].unit) == ulen &&
                    memcmp(duration_units[k].unit, u, ulen) == 0)
                    break;
            if (k == nunits)
                return GD_EINVAL;
            total += v * duration_units[k].seconds;
        }
        parts++;
    }
    if (parts == 0 || !isfinite(total))
        return GD_EINVAL;
    *seconds = total;
    return 0;
}

/* ---- canonical text -------------------------------------------------------- */

struct out {
    gd_buf *buf; /* canon */
    FILE *f;     /* print */
    int rc;
};

static void out_puts(struct out *o, const char *s)
{
    if (o->f) {
        fputs(s, o->f);
    } else if (o->rc == 0 && gd_buf_puts(o->buf, s) < 0) {
        o->rc = GD_ENOMEM;
    }
}

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_printf(struct out *o, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (rc < 0) {
        o->rc = GD_ENOMEM;
        return;
    }
    out_puts(o, s);
    free(s);
}

static void out_quoted(struct out *o, const char *s)
{
    if (!s) {
        out_puts(o, "null");
        return;
    }
    out_puts(o, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            out_printf(o, "\\%c", *p);
        else if (*p == '\n')
            out_puts(o, "\\n");
        else if (*p == '\t')
            out_puts(o, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            out_printf(o, "\\x%02x", *p);
        else
            out_printf(o, "%c", *p);
    }
    out_puts(o, "\"");
}

static const char *enum_name(const struct gd_option *o, int idx)
{
    for (int i = 0; o->choices && o->choices[i]; i++)
        if (i == idx)
            return o->choices[i];
    return NULL;
}

static void canon_table(struct out *out, const struct gd_option *opts, const void *dst, int depth);

static void canon_value(struct out *out, const struct gd_option *o, const void *field, int depth)
{
    switch (o->type) {
    case GD_OT_BOOL:
        out_puts(out, *(const bool *)field ? "true" : "false");
        break;
    case GD_OT_INT:
        out_printf(out, "%" PRId64, *(const int64_t *)field);
        break;
    case GD_OT_DOUBLE:
    case GD_OT_DURATION:
        out_printf(out, "%.17g", *(const double *)field);
        break;
    case GD_OT_STRING:
        out_quoted(out, *(char *const *)field);
        break;
    case GD_OT_ENUM: {
        int idx = *(const int *)field;
        const char *name = enum_name(o, idx);
        if (name)
            out_quoted(out, name);
        else
            out_printf(out, "%d", idx);
        break;
    }
    case GD_OT_STRLIST: {
        const gd_strlist *l = field;
        out_puts(out, "[");
        for (size_t i = 0; i < l->n; i++) {
            out_puts(out, i ? "," : "");
            out_quoted(out, l->v[i]);
        }
        out_puts(out, "]");
        break;
    }
    case GD_OT_KV: {
        const gd_kvlist *l = field;
        out_puts(out, "{");
        for (size_t i = 0; i < l->n; i++) {
            out_quoted(out, l->v[i].key);
            out_puts(out, "=");
            out_quoted(out, l->v[i].value);
            out_puts(out, ";");
        }
        out_puts(out, "}");
        break;
    }
    case GD_OT_LIST: {
        const gd_list *l = field;
        out_puts(out, "[");
        for (size_t i = 0; l->items && o->item_size && i < l->n; i++) {
            out_puts(out, i ? ",{" : "{");
            canon_table(out, o->sub, (const char *)l->items + i * o->item_size, depth + 1);
            out_puts(out, "}");
        }
        out_puts(out, "]");
        break;
    }
    case GD_OT_GROUP:
        out_puts(out, "{");
        canon_table(out, o->sub, field, depth + 1);
        out_puts(out, "}");
        break;
    default:
        out_puts(out, "?");
    }
}

static void canon_table(struct out *out, const struct gd_option *opts, const void *dst, int depth)
{
    if (!opts || !dst || depth > MAX_DEPTH)
        return;
    for (const struct gd_option *o = opts; o->name; o++) {
        out_printf(out, "%s=", o->name);
        canon_value(out, o, cfield_of(dst, o), depth);
        out_puts(out, ";");
    }
}

int gd__opts_canon(const struct gd_option *opts, const void *dst, gd_buf *out)
{
    if (!out)
        return GD_EINVAL;
    struct out o = {out, NULL, 0};
    canon_table(&o, opts, dst, 0);
    return o.rc;
}

/* ---- -t printing ------------------------------------------------------------ */

static void print_table(FILE *f, const struct gd_option *opts, const void *dst, int indent,
                        int depth);

static bool is_empty_value(const struct gd_option *o, const void *field)
{
    switch (o->type) {
    case GD_OT_STRING:
        return !*(char *const *)field;
    case GD_OT_STRLIST:
        return ((const gd_strlist *)field)->n == 0;
    case GD_OT_KV:
        return ((const gd_kvlist *)field)->n == 0;
    case GD_OT_LIST:
        return ((const gd_list *)field)->n == 0;
    }
    return false;
}

static void print_value(FILE *f, const struct gd_option *o, const void *field, int indent,
                        int depth)
{
    struct out out = {NULL, f, 0};
    char num[32];
    switch (o->type) {
    case GD_OT_DOUBLE:
    case GD_OT_DURATION:
        fmt_double(num, sizeof(num), *(const double *)field);
        fputs(num, f);
        break;
    case GD_OT_STRING:
        if (*(char *const *)field)
            out_quoted(&out, *(char *const *)field);
        else
            fputs("(unset)", f);
        break;
    case GD_OT_STRLIST: {
        const gd_strlist *l = field;
        fputs("[", f);
        for (size_t i = 0; i < l->n; i++) {
            fputs(i ? ", " : "", f);
            out_quoted(&out, l->v[i]);
        }
        fputs("]", f);
        break;
    }
    case GD_OT_KV: {
        const gd_kvlist *l = field;
        fputs("{", f);
        for (size_t i = 0; i < l->n; i++) {
            fprintf(f, " %s = ", l->v[i].key);
            out_quoted(&out, l->v[i].value);
            fputs(";", f);
        }
        fputs(l->n ? " }" : "}", f);
        break;
    }
    case GD_OT_LIST: {
        const gd_list *l = field;
        if (!l->n || !l->items || !o->item_size) {
            fputs("()", f);
            break;
        }
        fputs("(\n", f);
        for (size_t i = 0; i < l->n; i++) {
            fprintf(f, "%*s{\n", indent + 4, "");
            print_table(f, o->sub, (const char *)l->items + i * o->item_size, indent + 8,
                        depth + 1);
            fprintf(f, "%*s}%s\n", indent + 4, "", i + 1 < l->n ? "," : "");
        }
        fprintf(f, "%*s)", indent, "");
        break;
    }
    case GD_OT_GROUP:
        fputs("{\n", f);
        print_table(f, o->sub, field, indent + 4, depth + 1);
        fprintf(f, "%*s}", indent, "");
        break;
    default:
        canon_value(&out, o, field, depth);
    }
}

static void print_table(FILE *f, const struct gd_option *opts, const void *dst, int indent,
                        int depth)
{
    if (!opts || !dst || depth > MAX_DEPTH)
        return;
    for (const struct gd_option *o = opts; o->name; o++) {
        const void *field = cfield_of(dst, o);
        fprintf(f, "%*s%s = ", indent, "", o->name);
        if ((o->flags & GD_OF_SENSITIVE) && !is_empty_value(o, field))
            fputs("***", f);
        else
            print_value(f, o, field, indent, depth);
        fputs("\n", f);
    }
}

void gd__opts_print(const struct gd_option *opts, const void *dst, FILE *f, int indent)
{
    if (!f)
        return;
    print_table(f, opts, dst, indent < 0 ? 0 : indent, 0);
}

/* ---- redaction ------------------------------------------------------------- */

static void redact_table(const struct gd_option *opts, const void *dst, bool all, int depth);

static void redact_value(const struct gd_option *o, const void *field, bool all, int depth)
{
    switch (o->type) {
    case GD_OT_STRING:
        if (all && *(char *const *)field && **(char *const *)field)
            gd_log_redact(*(char *const *)field);
        break;
    case GD_OT_STRLIST: {
        const gd_strlist *l = field;
        for (size_t i = 0; all && i < l->n; i++)
            if (l->v[i] && *l->v[i])
                gd_log_redact(l->v[i]);
        break;
    }
    case GD_OT_KV: {
        const gd_kvlist *l = field;
        for (size_t i = 0; all && i < l->n; i++)
            if (l->v[i].value && *l->v[i].value)
                gd_log_redact(l->v[i].value);
        break;
    }
    case GD_OT_LIST: {
        const gd_list *l = field;
        for (size_t i = 0; l->items && o->item_size && i < l->n; i++)
            redact_table(o->sub, (const char *)l->items + i * o->item_size, all, depth + 1);
        break;
    }
    case GD_OT_GROUP:
        redact_table(o->sub, field, all, depth + 1);
        break;
    }
}

/* @all: inside a sensitive list or group, every string is a secret. */
static void redact_table(const struct gd_option *opts, const void *dst, bool all, int depth)
{
    if (!opts || !dst || depth > MAX_DEPTH)
        return;
    for (const struct gd_option *o = opts; o->name; o++)
        redact_value(o, cfield_of(dst, o), all || (o->flags & GD_OF_SENSITIVE), depth);
}

void gd__opts_redact(const struct gd_option *opts, const void *dst)
{
    redact_table(opts, dst, false, 0);
}

/* ---- --describe -------------------------------------------------------------- */

static void describe_table(const struct gd_option *opts, FILE *f, int indent, int depth)
{
    if (!opts || depth > MAX_DEPTH)
        return;
    for (const struct gd_option *o = opts; o->name; o++) {
        fprintf(f, "%*s%s: %s", indent, "", o->name, type_label(o->type));
        if (o->def) {
            if (o->type == GD_OT_STRING || o->type == GD_OT_ENUM)
                fprintf(f, ", default \"%s\"", o->def);
            else
                fprintf(f, ", default %s", o->def);
        }
        if (has_bounds(o)) {
            char lo[32], hi[32];
            fmt_double(lo, sizeof(lo), o->min);
            fmt_double(hi, sizeof(hi), o->max);
            fprintf(f, ", range [%s, %s]%s", lo, hi, o->type == GD_OT_DURATION ? " seconds" : "");
        }
        if (o->type == GD_OT_ENUM && o->choices) {
            fputs(", one of", f);
            for (int i = 0; o->choices[i]; i++)
                fprintf(f, "%s \"%s\"", i ? "," : "", o->choices[i]);
        }
        if (o->flags & GD_OF_REQUIRED)
            fputs(" [required]", f);
        if (o->flags & GD_OF_SENSITIVE)
            fputs(" [sensitive]", f);
        fputs("\n", f);
        if (o->help && *o->help)
            fprintf(f, "%*s%s\n", indent + 4, "", o->help);
        if ((o->type == GD_OT_LIST || o->type == GD_OT_GROUP) && o->sub)
            describe_table(o->sub, f, indent + 4, depth + 1);
    }
}

void gd__opts_describe(const struct gd_option *opts, FILE *f, int indent)
{
    if (!f)
        return;
    describe_table(opts, f, indent < 0 ? 0 : indent, 0);
}

/* ---- table checks -------------------------------------------------------------- */

struct check {
    struct fill fill;
    const char *ctx; /* "plugin 'modbus'" */
};

static void check_err(struct check *c, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check_err(struct check *c, const char *name, const char *fmt, ...)
{
    char *reason = NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc = vasprintf(&reason, fmt, ap);
    va_end(ap);
    struct site s = {NULL, c->ctx, name, NULL};
    report(&c->fill, &s, "%s", rc < 0 ? "out of memory" : reason);
    free(reason);
}

static bool valid_name(const char *n)
{
    /* libconfig setting names: [A-Za-z*][-A-Za-z0-9_*]* */
    if (!((n[0] >= 'A' && n[0] <= 'Z') || (n[0] >= 'a' && n[0] <= 'z') || n[0] == '*'))
        return false;
    for (const char *p = n + 1; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '*'))
            return false;
    return true;
}

static size_t storage_align(uint32_t t)
{
    switch (t) {
    case GD_OT_BOOL:
        return _Alignof(bool);
    case GD_OT_INT:
        return _Alignof(int64_t);
    case GD_OT_DOUBLE:
    case GD_OT_DURATION:
        return _Alignof(double);
    case GD_OT_STRING:
        return _Alignof(char *);
    case GD_OT_ENUM:
        return _Alignof(int);
    case GD_OT_STRLIST:
        return _Alignof(gd_strlist);
    case GD_OT_KV:
        return _Alignof(gd_kvlist);
    case GD_OT_LIST:
        return _Alignof(gd_list);
    }
    return 1;
}

static void check_option(struct check *c, const struct gd_option *o, const char *name, int depth);

static void check_table(struct check *c, const struct gd_option *opts, const char *prefix,
                        int depth)
{
    if (depth > MAX_DEPTH) {
        check_err(c, prefix ? prefix : "?", "sub tables nested too deeply (a recursive table?)");
        return;
    }
    size_t idx = 0;
    for (const struct gd_option *o = opts; o->name; o++, idx++) {
        char name[256];
        snprintf(name, sizeof(name), "%s%s%s", prefix ? prefix : "", prefix ? "." : "", o->name);
        if (!*o->name) {
            snprintf(name, sizeof(name), "%s%s#%zu", prefix ? prefix : "", prefix ? "." : "", idx);
            check_err(c, name, "empty name");
            continue;
        }
        if (!valid_name(o->name))
            check_err(c, name, "not a valid setting name (letters, digits, '-' and '_')");
        for (const struct gd_option *p = opts; p < o; p++)
            if (strcmp(p->name, o->name) == 0) {
                check_err(c, name, "defined twice in the table");
                break;
            }
        check_option(c, o, name, depth);
    }
}

static void check_default(struct check *c, const struct gd_option *o, const char *name, int depth)
{
    union {
        bool b;
        int64_t i;
        double d;
        char *s;
        int e;
        gd_strlist sl;
        gd_kvlist kv;
        gd_list l;
    } scratch;
    memset(&scratch, 0, sizeof(scratch));
    struct site s = {NULL, c->ctx, name, NULL};
    set_default(&c->fill, &s, o, &scratch, depth);
    free_field(o, &scratch, depth);
}

static void check_option(struct check *c, const struct gd_option *o, const char *name, int depth)
{
    if (!type_known(o->type)) {
        check_err(c, name, "unknown type %u", (unsigned)o->type);
        return;
    }
    if (o->flags & ~(uint32_t)(GD_OF_REQUIRED | GD_OF_SENSITIVE))
        check_err(c, name, "unknown flags 0x%x", (unsigned)o->flags);
    if ((o->flags & GD_OF_REQUIRED) && o->def)
        check_err(c, name, "is required but has a default");
    if (o->type != GD_OT_GROUP && o->offset % storage_align(o->type) != 0)
        check_err(c, name, "offset %zu is not aligned for a %s", o->offset, type_label(o->type));
    if ((o->type == GD_OT_INT || o->type == GD_OT_DOUBLE || o->type == GD_OT_DURATION) &&
        o->min > o->max)
        check_err(c, name, "min is greater than max");
    if (o->type == GD_OT_ENUM) {
        if (!o->choices || !o->choices[0]) {
            check_err(c, name, "enum without choices");
            return;
        }
        for (int i = 0; o->choices[i]; i++)
            for (int j = 0; j < i; j++)
                if (strcmp(o->choices[i], o->choices[j]) == 0)
                    check_err(c, name, "choice \"%s\" listed twice", o->choices[i]);
    }
    if (o->type == GD_OT_LIST || o->type == GD_OT_GROUP) {
        if (o->def)
            check_err(c, name, "a %s cannot have a default", type_label(o->type));
        if (!o->sub) {
            check_err(c, name, "%s without a sub table", type_label(o->type));
            return;
        }
        if (o->type == GD_OT_LIST && !o->item_size)
            check_err(c, name, "list without an item size");
        check_table(c, o->sub, name, depth + 1);
        return;
    }
    if (o->def)
        check_default(c, o, name, depth);
}

int gd__opts_check_table(const struct gd_option *opts, const char *plugin, gd__errs *errs)
{
    char *ctx = NULL;
    if (asprintf(&ctx, "plugin '%s'", plugin ? plugin : "?") < 0)
        ctx = NULL;
    struct check c = {{errs, 0, false}, ctx ? ctx : "plugin"};
    if (opts)
        check_table(&c, opts, NULL, 0);
    free(ctx);
    return c.fill.nerr ? GD_ECONFIG : 0;
}
