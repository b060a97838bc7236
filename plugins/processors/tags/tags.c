/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tags.c - an ordered list of operations on tags, fields and the measurement
 * of each point: set, add, remove, rename tags; move or copy a field into a
 * tag and a tag into a typed field; set a tag from a regex capture of a tag
 * or the measurement; rename the measurement.
 *
 * Each point is loaded into a work copy (pointers into the input batch, no
 * string copies), the operations run on it in order, and only a point that
 * changed is rebuilt in the output batch: derived from the input point
 * (gd_batch_derive_point(), no string copies) with the changed tags replaced
 * when only tags changed, built again otherwise. Other points are derived
 * unchanged. A batch in which no point changed
 * is passed on untouched (GD_PASS). Strings an operation makes (regex
 * expansions, formatted field values) go straight into the output arena.
 * Regexes are compiled at init.
 */
#include <gatherd/gatherd.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_GROUPS  10 /* $0 .. $9 */
#define NUM_BUF_LEN 32 /* a formatted number */

enum op_kind {
    OP_SET,
    OP_ADD,
    OP_REMOVE,
    OP_RENAME,
    OP_FIELD_TO_TAG,
    OP_TAG_TO_FIELD,
    OP_REGEX,
    OP_MEASUREMENT
};
static const char *const op_names[] = {
    "set", "add", "remove", "rename", "field_to_tag", "tag_to_field", "regex", "measurement", NULL};

enum ftype_choice { T_STRING, T_FLOAT, T_INT, T_UINT, T_BOOL };
static const char *const type_names[] = {"string", "float", "int", "uint", "bool", NULL};

enum source { SRC_TAG, SRC_MEASUREMENT };
static const char *const source_names[] = {"tag", "measurement", NULL};

struct op_cfg {
    int op;
    char *tag;
    char *value;
    gd_strlist tags;
    char *from;
    char *to;
    char *field;
    int type;
    bool keep;
    char *pattern;
    int source;
};

struct tags_cfg {
    gd_list ops; /* struct op_cfg */
};

struct op {
    int kind; /* enum op_kind, next to the op: one load less per point */
    const struct op_cfg *c;
    const char *tag; /* the tag the op writes or reads (defaults applied) */
    const char *field;
    size_t tag_len, field_len, from_len, to_len, value_len;
    bool has_re;
    regex_t re;
};

struct wtag {
    const char *k, *v;
    uint32_t kl, vl;
    bool dead;
};

struct wfield {
    gd_field f;
    bool dead;
};

struct tagsp {
    gd_instance *inst;
    struct op *ops;
    size_t nops;
    /* the work copy of the point in hand */
    const char *m;
    size_t mlen;
    const char *m0;      /* the point's own measurement */
    const gd_tag *t0;    /* the point's own tags ... */
    size_t nt0;          /* ... and their count: the first nt0 of t */
    bool fields_touched; /* an operation changed or removed a field */
    const gd_field *f0;  /* the point's own fields, copied to f on demand */
    size_t nf0;
    bool f_loaded;
    struct wtag *t;
    size_t nt, tcap;
    struct wfield *f;
    size_t nf, fcap;
    char *xbuf; /* regex expansion */
    size_t xcap;
};

/* ---- the work copy ----------------------------------------------------- */

static int work_load(struct tagsp *s, const gd_point *p)
{
    size_t nt, nf;
    const gd_tag *t = gd_point_tags(p, &nt);
    const gd_field *f = gd_point_fields(p, &nf);
    size_t tneed = nt + s->nops, fneed = nf + s->nops; /* each op adds at most one */
    if (tneed > s->tcap) {
        struct wtag *n = realloc(s->t, tneed * sizeof(*n));
        if (!n)
            return GD_ENOMEM;
        s->t = n;
        s->tcap = tneed;
    }
    if (fneed > s->fcap) {
        struct wfield *n = realloc(s->f, fneed * sizeof(*n));
        if (!n)
            return GD_ENOMEM;
        s->f = n;
        s->fcap = fneed;
    }
    s->m = gd_point_measurement(p, &s->mlen);
    for (size_t i = 0; i < nt; i++)
        s->t[i] = (struct wtag){t[i].key, t[i].value, t[i].key_len, t[i].value_len, false};
    s->nt = nt;
    s->nf = nf;
    s->f0 = f;
    s->nf0 = nf;
    s->f_loaded = false;
    s->m0 = s->m;
    s->t0 = t;
    s->nt0 = nt;
    s->fields_touched = false;
    return 0;
}

static struct wtag *tag_find(struct tagsp *s, const char *k, size_t kl)
{
    for (size_t i = 0; i < s->nt; i++)
        if (!s->t[i].dead && s->t[i].kl == kl && memcmp(s->t[i].k, k, kl) == 0)
            return &s->t[i];
    return NULL;
}

/* The work copy of the fields, made when an operation first needs it: most
 * operations only touch tags. */
static void work_fields(struct tagsp *s)
{
    if (s->f_loaded)
        return;
    for (size_t i = 0; i < s->nf0; i++)
        s->f[i] = (struct wfield){s->f0[i], false};
    s->f_loaded = true;
}

static struct wfield *field_find(struct tagsp *s, const char *k, size_t kl)
{
    work_fields(s);
    for (size_t i = 0; i < s->nf; i++)
        if (!s->f[i].dead && s->f[i].f.key_len == kl && memcmp(s->f[i].f.key, k, kl) == 0)
            return &s->f[i];
    return NULL;
}

/* Set tag @k to @v; true when that changed the point. */
static bool tag_set(struct tagsp *s, const char *k, size_t kl, const char *v, size_t vl)
{
    if (vl == 0 || vl > UINT32_MAX)
        return false; /* line protocol cannot carry an empty tag value */
    struct wtag *t = tag_find(s, k, kl);
    if (t) {
        if (t->vl == vl && memcmp(t->v, v, vl) == 0)
            return false;
        t->v = v;
        t->vl = (uint32_t)vl;
        return true;
    }
    s->t[s->nt++] = (struct wtag){k, v, (uint32_t)kl, (uint32_t)vl, false};
    return true;
}

/* ---- operations -------------------------------------------------------- */

static bool is_glob(const char *p)
{
    return strpbrk(p, "*?[") != NULL;
}

static bool op_remove(struct tagsp *s, const struct op *o)
{
    bool changed = false;
    for (size_t i = 0; i < s->nt; i++) {
        struct wtag *t = &s->t[i];
        if (t->dead)
            continue;
        for (size_t g = 0; g < o->c->tags.n; g++) {
            const char *pat = o->c->tags.v[g];
            /* work keys are NUL-terminated: batch and config strings */
            if (is_glob(pat) ? fnmatch(pat, t->k, 0) == 0 : strcmp(pat, t->k) == 0) {
                t->dead = true;
                changed = true;
                break;
            }
        }
    }
    return changed;
}

static bool op_rename(struct tagsp *s, const struct op *o)
{
    struct wtag *t = tag_find(s, o->c->from, o->from_len);
    if (!t)
        return false;
    struct wtag *old = tag_find(s, o->c->to, o->to_len);
    if (old == t)
        return false;
    if (old)
        old->dead = true;
    t->k = o->c->to;
    t->kl = (uint32_t)o->to_len;
    return true;
}

/* The text of @f in the output arena; NULL when it has none. */
static const char *field_text(gd_batch *out, const gd_field *f, size_t *len)
{
    char buf[NUM_BUF_LEN];
    int n;
    switch (f->type) {
    case GD_STR:
        *len = f->v.str.len;
        return f->v.str.ptr;
    case GD_F64:
        n = (int)gd_fmt_double(buf, f->v.f64);
        break;
    case GD_I64:
        n = snprintf(buf, sizeof(buf), "%" PRId64, f->v.i64);
        break;
    case GD_U64:
        n = snprintf(buf, sizeof(buf), "%" PRIu64, f->v.u64);
        break;
    case GD_BOOL:
        n = snprintf(buf, sizeof(buf), "%s", f->v.b ? "true" : "false");
        break;
    default:
        return NULL;
    }
    *len = (size_t)n;
    return gd_batch_strdup(out, buf, (size_t)n);
}

static bool op_field_to_tag(struct tagsp *s, const struct op *o, gd_batch *out)
{
    struct wfield *f = field_find(s, o->field, o->field_len);
    if (!f)
        return false;
    size_t len = 0;
    const char *v = field_text(out, &f->f, &len);
    if (!v || len == 0)
        return false;
    bool changed = tag_set(s, o->tag, o->tag_len, v, len);
    if (!o->c->keep) {
        f->dead = true;
        s->fields_touched = true;
        changed = true;
    }
    return changed;
}

/* Parse @t as the op's field type into @f; false when it does not parse. */
static bool parse_value(const struct op *o, const struct wtag *t, gd_field *f)
{
    char *end = NULL;
    errno = 0;
    switch (o->c->type) {
    case T_STRING:
        f->type = GD_STR;
        f->v.str.ptr = t->v;
        f->v.str.len = t->vl;
        return true;
    case T_FLOAT:
        f->type = GD_F64;
        f->v.f64 = strtod(t->v, &end);
        break;
    case T_INT:
        f->type = GD_I64;
        f->v.i64 = strtoll(t->v, &end, 10);
        break;
    case T_UINT:
        f->type = GD_U64;
        f->v.u64 = strtoull(t->v, &end, 10);
        if (t->v[0] == '-')
            return false;
        break;
    default:
        f->type = GD_BOOL;
        f->v.u64 = 0;
        if (strcasecmp(t->v, "true") == 0 || strcmp(t->v, "1") == 0)
            f->v.b = true;
        else if (strcasecmp(t->v, "false") == 0 || strcmp(t->v, "0") == 0)
            f->v.b = false;
        else
            return false;
        return true;
    }
    return errno == 0 && end != t->v && *end == '\0';
}

static bool op_tag_to_field(struct tagsp *s, const struct op *o)
{
    struct wtag *t = tag_find(s, o->tag, o->tag_len);
    if (!t)
        return false;
    gd_field nf = {.key = o->field, .key_len = (uint32_t)o->field_len};
    if (!parse_value(o, t, &nf)) {
        gd_log_ratelimited(s->inst, GD_WARN, "tag %s: \"%s\" is not a %s: not converted", o->tag,
                           t->v, type_names[o->c->type]);
        return false;
    }
    struct wfield *f = field_find(s, o->field, o->field_len);
    if (!f)
        f = &s->f[s->nf++];
    *f = (struct wfield){nf, false};
    s->fields_touched = true;
    if (!o->c->keep)
        t->dead = true;
    return true;
}

/* Expand the op's value template with the captures of @subject into the
 * output arena. NULL when out of memory or empty. */
static const char *expand(struct tagsp *s, const struct op *o, const char *subject,
                          const regmatch_t *g, gd_batch *out, size_t *len)
{
    const char *tpl = o->c->value ? o->c->value : "$1";
    size_t need = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t n = 0;
        for (const char *c = tpl; *c; c++) {
            const char *piece = c;
            size_t plen = 1;
            if (c[0] == '$' && c[1] >= '0' && c[1] <= '9') {
                const regmatch_t *m = &g[c[1] - '0'];
                piece = subject + (m->rm_so < 0 ? 0 : m->rm_so);
                plen = m->rm_so < 0 ? 0 : (size_t)(m->rm_eo - m->rm_so);
                c++;
            } else if (c[0] == '$' && c[1] == '$') {
                c++;
            }
            if (pass == 1)
                memcpy(s->xbuf + n, piece, plen);
            n += plen;
        }
        if (pass == 0) {
            need = n;
            if (need == 0)
                return NULL;
            if (need > s->xcap) {
                char *nb = realloc(s->xbuf, need);
                if (!nb)
                    return NULL;
                s->xbuf = nb;
                s->xcap = need;
            }
        }
    }
    *len = need;
    return gd_batch_strdup(out, s->xbuf, need);
}

static bool op_regex(struct tagsp *s, const struct op *o, gd_batch *out)
{
    const char *subject = s->m;
    if (o->c->source == SRC_TAG) {
        struct wtag *t = tag_find(s, o->c->from, o->from_len);
        if (!t)
            return false;
        subject = t->v;
    }
    regmatch_t g[MAX_GROUPS];
    if (regexec(&o->re, subject, MAX_GROUPS, g, 0) != 0)
        return false;
    size_t len = 0;
    const char *v = expand(s, o, subject, g, out, &len);
    return v && tag_set(s, o->tag, o->tag_len, v, len);
}

static bool op_measurement(struct tagsp *s, const struct op *o, gd_batch *out)
{
    const char *v = o->c->value;
    size_t len = o->value_len;
    if (o->has_re) {
        regmatch_t g[MAX_GROUPS];
        if (regexec(&o->re, s->m, MAX_GROUPS, g, 0) != 0)
            return false;
        if (!(v = expand(s, o, s->m, g, out, &len)))
            return false;
    } else if (o->c->from && fnmatch(o->c->from, s->m, 0) != 0) {
        return false;
    }
    if (len == s->mlen && memcmp(v, s->m, len) == 0)
        return false;
    s->m = v;
    s->mlen = len;
    return true;
}

static bool apply(struct tagsp *s, const struct op *o, gd_batch *out)
{
    switch (o->kind) {
    case OP_SET:
        return tag_set(s, o->tag, o->tag_len, o->c->value, o->value_len);
    case OP_ADD:
        return !tag_find(s, o->tag, o->tag_len) &&
               tag_set(s, o->tag, o->tag_len, o->c->value, o->value_len);
    case OP_REMOVE:
        return op_remove(s, o);
    case OP_RENAME:
        return op_rename(s, o);
    case OP_FIELD_TO_TAG:
        return op_field_to_tag(s, o, out);
    case OP_TAG_TO_FIELD:
        return op_tag_to_field(s, o);
    case OP_REGEX:
        return op_regex(s, o, out);
    default:
        return op_measurement(s, o, out);
    }
}

/* Build the work copy as a point of @out; a point left without fields is
 * not added (the core counts it as filtered). */
static int work_emit(struct tagsp *s, gd_batch *out, int64_t ts)
{
    work_fields(s);
    size_t live = 0;
    for (size_t i = 0; i < s->nf; i++)
        live += !s->f[i].dead;
    if (live == 0)
        return 0;
    gd_point *p = gd_batch_add_n(out, s->m, s->mlen, ts);
    if (!p)
        return GD_ENOMEM;
    for (size_t i = 0; i < s->nt; i++) {
        const struct wtag *t = &s->t[i];
        int rc = t->dead ? 0 : gd_point_tag_n(p, t->k, t->kl, t->v, t->vl);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < s->nf; i++) {
        int rc = s->f[i].dead ? 0 : gd_point_field(p, &s->f[i].f);
        if (rc < 0) {
            gd_log_ratelimited(s->inst, GD_WARN, "field %s refused (%s): left out", s->f[i].f.key,
                               gd_strerror(rc));
            if (rc == GD_ENOMEM)
                return rc;
        }
    }
    return 0;
}

/* Whether work tag @i is source tag @i as it came in. */
static bool tag_kept(const struct tagsp *s, size_t i)
{
    const struct wtag *t = &s->t[i];
    return i < s->nt0 && !t->dead && t->k == s->t0[i].key && t->v == s->t0[i].value;
}

/* The work copy of @src as a point of @out when only its tags changed:
 * derived from @src (no string copies), the tags that changed removed and
 * added again. Live work tags have distinct keys (operations replace a tag
 * of the same key), so the order of the additions does not matter. */
static int work_emit_tags(struct tagsp *s, gd_batch *out, const gd_point *src)
{
    gd_point *p = gd_batch_derive_point(out, src);
    if (!p)
        return GD_ENOMEM;
    for (size_t i = s->nt0; i-- > 0;)
        if (!tag_kept(s, i))
            gd_point_remove_tag(p, i);
    for (size_t i = 0; i < s->nt; i++) {
        const struct wtag *t = &s->t[i];
        int rc = t->dead || tag_kept(s, i) ? 0 : gd_point_tag_n(p, t->k, t->kl, t->v, t->vl);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int tags_process(void *state, const gd_batch *in, gd_batch *out)
{
    struct tagsp *s = state;
    size_t n = gd_batch_len(in);
    size_t copied = 0; /* points before this index are in @out */
    for (size_t i = 0; i < n; i++) {
        const gd_point *src = gd_batch_point(in, i);
        int rc = work_load(s, src);
        if (rc < 0)
            return rc;
        bool changed = false;
        for (size_t k = 0; k < s->nops; k++)
            changed |= apply(s, &s->ops[k], out);
        if (!changed)
            continue;
        for (; copied < i; copied++)
            if (!gd_batch_derive_point(out, gd_batch_point(in, copied)))
                return GD_ENOMEM;
        rc = s->fields_touched || s->m != s->m0 ? work_emit(s, out, gd_point_time(src))
                                                : work_emit_tags(s, out, src);
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

static size_t len_of(const char *s)
{
    return s ? strlen(s) : 0;
}

/* Check the options op @i needs and compile its regex. */
static int compile_op(gd_instance *inst, size_t i, const struct op_cfg *c, struct op *o)
{
    const char *name = op_names[c->op];
    const char *why = NULL;
    o->c = c;
    o->kind = c->op;
    o->tag = c->tag;
    o->field = c->field;
    switch (c->op) {
    case OP_SET:
    case OP_ADD:
        if (!c->tag || !c->tag[0] || !c->value || !c->value[0])
            why = "needs a non-empty tag and value";
        break;
    case OP_REMOVE:
        if (c->tags.n == 0)
            why = "needs tags (names or globs)";
        break;
    case OP_RENAME:
        if (!c->from || !c->from[0] || !c->to || !c->to[0])
            why = "needs from and to (tag names)";
        break;
    case OP_FIELD_TO_TAG:
        if (!o->tag)
            o->tag = c->field;
        if (!c->field || !c->field[0] || !o->tag[0])
            why = "needs field (and optionally tag)";
        break;
    case OP_TAG_TO_FIELD:
        if (!o->field)
            o->field = c->tag;
        if (!c->tag || !c->tag[0] || !o->field[0])
            why = "needs tag (and optionally field and type)";
        break;
    case OP_REGEX:
        if (!c->pattern || !c->tag || !c->tag[0])
            why = "needs pattern and tag (the tag to set)";
        else if (c->source == SRC_TAG && (!c->from || !c->from[0]))
            why = "needs from (the tag to match) unless source = \"measurement\"";
        break;
    default:
        if (!c->value || !c->value[0])
            why = "needs value (the new measurement name)";
        break;
    }
    if (why) {
        gd_log(inst, GD_ERROR, "ops[%zu]: %s %s", i, name, why);
        return GD_ECONFIG;
    }
    o->tag_len = len_of(o->tag);
    o->field_len = len_of(o->field);
    o->from_len = len_of(c->from);
    o->to_len = len_of(c->to);
    o->value_len = len_of(c->value);
    if (c->pattern && (c->op == OP_REGEX || c->op == OP_MEASUREMENT)) {
        int rc = regcomp(&o->re, c->pattern, REG_EXTENDED);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &o->re, msg, sizeof(msg));
            gd_log(inst, GD_ERROR, "ops[%zu]: pattern \"%s\": %s", i, c->pattern, msg);
            return GD_ECONFIG;
        }
        o->has_re = true;
    }
    return 0;
}

static void tags_destroy(void *state)
{
    struct tagsp *s = state;
    if (!s)
        return;
    for (size_t i = 0; i < s->nops; i++)
        if (s->ops[i].has_re)
            regfree(&s->ops[i].re);
    free(s->ops);
    free(s->t);
    free(s->f);
    free(s->xbuf);
    free(s);
}

static int tags_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct tags_cfg *c = cfgp;
    const struct op_cfg *oc = c->ops.items;
    if (c->ops.n == 0) {
        gd_log(inst, GD_ERROR, "ops: at least one operation is required");
        return GD_ECONFIG;
    }
    struct tagsp *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    if (!(s->ops = calloc(c->ops.n, sizeof(*s->ops)))) {
        free(s);
        return GD_ENOMEM;
    }
    for (size_t i = 0; i < c->ops.n; i++) {
        int rc = compile_op(inst, i, &oc[i], &s->ops[i]);
        s->nops = i + 1; /* destroy frees what compiled */
        if (rc < 0) {
            tags_destroy(s);
            return rc;
        }
    }
    *state = s;
    return 0;
}

static const struct gd_option op_options[] = {
    GD_OPT_ENUM("op", NULL, op_names, GD_OF_REQUIRED, offsetof(struct op_cfg, op),
                "Operation: set add remove rename field_to_tag tag_to_field regex measurement"),
    GD_OPT_STRING("tag", NULL, 0, offsetof(struct op_cfg, tag),
                  "Tag the operation writes or reads"),
    GD_OPT_STRING("value", NULL, 0, offsetof(struct op_cfg, value),
                  "Tag value (set, add), template with $0-$9 (regex, measurement), new "
                  "measurement name"),
    GD_OPT_STRLIST("tags", 0, offsetof(struct op_cfg, tags), "Tags to remove (names or globs)"),
    GD_OPT_STRING("from", NULL, 0, offsetof(struct op_cfg, from),
                  "rename: old tag; regex: tag matched; measurement: glob of measurements"),
    GD_OPT_STRING("to", NULL, 0, offsetof(struct op_cfg, to), "rename: new tag name"),
    GD_OPT_STRING("field", NULL, 0, offsetof(struct op_cfg, field),
                  "field_to_tag: source field; tag_to_field: field written"),
    GD_OPT_ENUM("type", "string", type_names, 0, offsetof(struct op_cfg, type),
                "tag_to_field: field type string float int uint bool"),
    GD_OPT_BOOL("keep", "false", 0, offsetof(struct op_cfg, keep),
                "field_to_tag, tag_to_field: copy instead of move"),
    GD_OPT_STRING("pattern", NULL, 0, offsetof(struct op_cfg, pattern),
                  "POSIX extended regex (regex, measurement)"),
    GD_OPT_ENUM("source", "tag", source_names, 0, offsetof(struct op_cfg, source),
                "regex: match the tag named by from, or the measurement"),
    GD_OPT_END,
};

static const struct gd_option options[] = {
    GD_OPT_LIST("ops", op_options, struct op_cfg, GD_OF_REQUIRED, offsetof(struct tags_cfg, ops),
                "Operations, applied in order to every point"),
    GD_OPT_END,
};

static const struct gd_processor_ops ops = {
    .struct_size = sizeof(struct gd_processor_ops),
    .init = tags_init,
    .destroy = tags_destroy,
    .process = tags_process,
};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "tags",
    .version = "1.0.0",
    .kind = GD_KIND_PROCESSOR,
    .summary = "set, remove, rename and derive tags; move fields to tags and back",
    .options = options,
    .config_size = sizeof(struct tags_cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
