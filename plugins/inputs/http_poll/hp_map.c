/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hp_map.c - JSON documents to points: pointers, types, timestamps.
 *
 * A point is resolved completely (timestamp, every field) before it is
 * added to the batch, so a point that must be dropped leaves nothing behind.
 */
#include "hp_map.h"
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S  1000000000LL
#define NS_PER_MS 1000000LL
#define NS_PER_US 1000LL
/* "auto" timestamps: numbers below these are seconds, ms, us (else ns). */
#define AUTO_S_BELOW  1e11
#define AUTO_MS_BELOW 1e14
#define AUTO_US_BELOW 1e17

const char *const hp_type_names[] = {"float", "int", "uint", "bool", "string", NULL};
const char *const hp_time_format_names[] = {"auto",    "unix_s",  "unix_ms", "unix_us",
                                            "unix_ns", "rfc3339", NULL};
const char *const hp_drop_names[HP_NDROP] = {"missing_field", "wrong_type", "bad_time",
                                             "no_fields"};

/* ---- JSON pointers ------------------------------------------------------ */

void hp_ptr_free(struct hp_ptr *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->tok[i].s);
    free(p->tok);
    free(p->text);
    memset(p, 0, sizeof(*p));
}

/* Unescape one reference token [@s, @e) into @t. */
static int parse_token(struct hp_tok *t, const char *s, const char *e, const char **why)
{
    t->s = malloc((size_t)(e - s) + 1);
    if (!t->s)
        return GD_ENOMEM;
    size_t n = 0;
    for (const char *c = s; c < e; c++) {
        if (*c != '~') {
            t->s[n++] = *c;
            continue;
        }
        if (c + 1 == e || (c[1] != '0' && c[1] != '1')) {
            *why = "'~' must be followed by 0 or 1 (\"~0\" is '~', \"~1\" is '/')";
            return GD_EINVAL;
        }
        t->s[n++] = c[1] == '0' ? '~' : '/';
        c++;
    }
    t->s[n] = '\0';
    t->len = n;
    t->is_index = n > 0 && n <= 18 && (n == 1 || t->s[0] != '0');
    for (size_t i = 0; i < n && t->is_index; i++)
        t->is_index = t->s[i] >= '0' && t->s[i] <= '9';
    t->index = t->is_index ? (size_t)strtoull(t->s, NULL, 10) : 0;
    return 0;
}

int hp_ptr_parse(struct hp_ptr *p, const char *text, const char **why)
{
    static const char *dummy;
    if (!why)
        why = &dummy;
    memset(p, 0, sizeof(*p));
    if (!text) {
        *why = "no pointer";
        return GD_EINVAL;
    }
    if (text[0] && text[0] != '/') {
        *why = "a JSON pointer is \"\" or starts with '/'";
        return GD_EINVAL;
    }
    size_t n = 0;
    for (const char *c = text; *c; c++)
        n += *c == '/';
    p->text = strdup(text);
    p->tok = n ? calloc(n, sizeof(*p->tok)) : NULL;
    if (!p->text || (n && !p->tok)) {
        hp_ptr_free(p);
        return GD_ENOMEM;
    }
    const char *s = text;
    while (*s) {
        const char *start = s + 1;
        const char *end = strchr(start, '/');
        if (!end)
            end = start + strlen(start);
        int rc = parse_token(&p->tok[p->n++], start, end, why);
        if (rc < 0) {
            hp_ptr_free(p);
            return rc;
        }
        s = end;
    }
    return 0;
}

json_t *hp_ptr_get(const struct hp_ptr *p, json_t *root)
{
    json_t *v = root;
    for (size_t i = 0; v && i < p->n; i++) {
        const struct hp_tok *t = &p->tok[i];
        if (json_is_object(v))
            v = json_object_getn(v, t->s, t->len);
        else if (json_is_array(v) && t->is_index)
            v = json_array_get(v, t->index);
        else
            v = NULL; /* "-", a non-number index, or a scalar */
    }
    return v;
}

/* ---- building a map ----------------------------------------------------- */

int hp_map_init(hp_map *m, const char *measurement)
{
    memset(m, 0, sizeof(*m));
    m->measurement = strdup(measurement ? measurement : "");
    return m->measurement ? 0 : GD_ENOMEM;
}

void hp_map_free(hp_map *m)
{
    if (!m)
        return;
    free(m->measurement);
    for (size_t i = 0; i < m->ntags; i++) {
        free(m->tags[i].key);
        free(m->tags[i].value);
    }
    free(m->tags);
    for (size_t i = 0; i < m->nfields; i++) {
        free(m->fields[i].cfg.name);
        free(m->fields[i].cfg.pointer);
        hp_ptr_free(&m->fields[i].ptr);
    }
    free(m->fields);
    for (size_t i = 0; i < m->ntagps; i++) {
        free(m->tagps[i].name);
        hp_ptr_free(&m->tagps[i].ptr);
    }
    free(m->tagps);
    hp_ptr_free(&m->points);
    hp_ptr_free(&m->time);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

static int grow(void **v, size_t n, size_t size)
{
    void *nv = realloc(*v, (n + 1) * size);
    if (!nv)
        return GD_ENOMEM;
    *v = nv;
    return 0;
}

static int compile(hp_map *m, struct hp_ptr *p, const char *text, const char *what)
{
    const char *why = NULL;
    int rc = hp_ptr_parse(p, text, &why);
    if (rc == GD_EINVAL)
        snprintf(m->err, sizeof(m->err), "%s: pointer \"%s\": %s", what, text ? text : "", why);
    return rc;
}

int hp_map_add_tag(hp_map *m, const char *key, const char *value)
{
    for (size_t i = 0; i < m->ntags; i++) {
        if (strcmp(m->tags[i].key, key) == 0) {
            char *v = strdup(value);
            if (!v)
                return GD_ENOMEM;
            free(m->tags[i].value);
            m->tags[i].value = v;
            return 0;
        }
    }
    if (grow((void **)&m->tags, m->ntags, sizeof(*m->tags)) < 0)
        return GD_ENOMEM;
    gd_kv *t = &m->tags[m->ntags];
    t->key = strdup(key);
    t->value = strdup(value);
    if (!t->key || !t->value) {
        free(t->key);
        free(t->value);
        return GD_ENOMEM;
    }
    m->ntags++;
    return 0;
}

int hp_map_add_field(hp_map *m, const struct hp_field_cfg *f)
{
    if (!f->name || !f->name[0]) {
        snprintf(m->err, sizeof(m->err), "a field needs a name");
        return GD_EINVAL;
    }
    if ((f->type == HP_BOOL || f->type == HP_STRING) && (f->scale != 1.0 || f->offset != 0.0)) {
        snprintf(m->err, sizeof(m->err), "field %s: scale and offset need a numeric type, not %s",
                 f->name, hp_type_names[f->type]);
        return GD_EINVAL;
    }
    if (f->type < HP_FLOAT || f->type > HP_STRING) {
        snprintf(m->err, sizeof(m->err), "field %s: unknown type %d", f->name, f->type);
        return GD_EINVAL;
    }
    struct hp_field nf = {.cfg = *f};
    char what[128];
    snprintf(what, sizeof(what), "field %s", f->name);
    int rc = compile(m, &nf.ptr, f->pointer, what);
    if (rc < 0)
        return rc;
    nf.cfg.name = strdup(f->name);
    nf.cfg.pointer = strdup(f->pointer);
    if (!nf.cfg.name || !nf.cfg.pointer)
        goto out_free;

    for (size_t i = 0; i < m->nfields; i++) {
        if (strcmp(m->fields[i].cfg.name, f->name) == 0) {
            free(m->fields[i].cfg.name);
            free(m->fields[i].cfg.pointer);
            hp_ptr_free(&m->fields[i].ptr);
            m->fields[i] = nf;
            return 0;
        }
    }
    if (grow((void **)&m->fields, m->nfields, sizeof(*m->fields)) < 0 ||
        grow((void **)&m->vals, m->nfields, sizeof(*m->vals)) < 0)
        goto out_free;
    m->fields[m->nfields++] = nf;
    return 0;

out_free:
    free(nf.cfg.name);
    free(nf.cfg.pointer);
    hp_ptr_free(&nf.ptr);
    return GD_ENOMEM;
}

int hp_map_add_tag_pointer(hp_map *m, const struct hp_tag_cfg *t)
{
    if (!t->name || !t->name[0]) {
        snprintf(m->err, sizeof(m->err), "a tag pointer needs a name");
        return GD_EINVAL;
    }
    struct hp_tagp nt = {.root = t->root};
    char what[128];
    snprintf(what, sizeof(what), "tag %s", t->name);
    int rc = compile(m, &nt.ptr, t->pointer, what);
    if (rc < 0)
        return rc;
    nt.name = strdup(t->name);
    if (!nt.name || grow((void **)&m->tagps, m->ntagps, sizeof(*m->tagps)) < 0) {
        free(nt.name);
        hp_ptr_free(&nt.ptr);
        return GD_ENOMEM;
    }
    m->tagps[m->ntagps++] = nt;
    return 0;
}

int hp_map_set_points(hp_map *m, const char *pointer)
{
    hp_ptr_free(&m->points);
    m->has_points = false;
    int rc = compile(m, &m->points, pointer, "points");
    m->has_points = rc == 0;
    return rc;
}

int hp_map_set_time(hp_map *m, const char *pointer, int format, bool root)
{
    hp_ptr_free(&m->time);
    m->has_time = false;
    if (format < HP_TIME_AUTO || format > HP_TIME_RFC3339) {
        snprintf(m->err, sizeof(m->err), "unknown time format %d", format);
        return GD_EINVAL;
    }
    int rc = compile(m, &m->time, pointer, "time_pointer");
    m->has_time = rc == 0;
    m->time_format = format;
    m->time_root = root;
    return rc;
}

/* ---- timestamps --------------------------------------------------------- */

static bool mul_add(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    int64_t p;
    return !__builtin_mul_overflow(a, b, &p) && !__builtin_add_overflow(p, c, out);
}

/* A decimal number "[-]123[.456]" in units of @unit ns, exactly. Returns 0,
 * GD_EINVAL or GD_ERANGE. */
static int decimal_ns(const char *s, int64_t unit, int64_t *ns)
{
    bool neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (!(*s >= '0' && *s <= '9'))
        return GD_EINVAL;
    int64_t ip = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        if (!mul_add(ip, 10, *s - '0', &ip))
            return GD_ERANGE;
    int64_t fp = 0, scale = 1; /* fraction = fp / scale, scale <= 1e18 */
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return GD_EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (scale < 1000000000000000000LL) {
                fp = fp * 10 + (*s - '0');
                scale *= 10;
            }
        }
    }
    if (*s)
        return GD_EINVAL;
    /* fp * unit / scale without overflow: unit <= 1e9 and fp < scale. */
    int64_t frac_ns = scale > unit ? fp / (scale / unit) : fp * (unit / scale);
    int64_t v;
    if (!mul_add(ip, unit, frac_ns, &v))
        return GD_ERANGE;
    *ns = neg ? -v : v;
    return 0;
}

/* trunc() and round() (half away from zero) without libm, which the unit
 * test does not link. Values beyond 2^52 are integral already. */
static double trunc_d(double d)
{
    return fabs(d) < 0x1p52 ? (double)(int64_t)d : d;
}

static double round_d(double d)
{
    double t = trunc_d(d), f = d - t;
    return f >= 0.5 ? t + 1 : f <= -0.5 ? t - 1 : t;
}

static int64_t unit_of(int format, double magnitude)
{
    switch (format) {
    case HP_TIME_UNIX_S:
        return NS_PER_S;
    case HP_TIME_UNIX_MS:
        return NS_PER_MS;
    case HP_TIME_UNIX_US:
        return NS_PER_US;
    case HP_TIME_UNIX_NS:
        return 1;
    }
    magnitude = fabs(magnitude);
    return magnitude < AUTO_S_BELOW    ? NS_PER_S
           : magnitude < AUTO_MS_BELOW ? NS_PER_MS
           : magnitude < AUTO_US_BELOW ? NS_PER_US
                                       : 1;
}

static int real_ns(double v, int64_t unit, int64_t *ns)
{
    if (!isfinite(v))
        return GD_ERANGE;
    double ip = trunc_d(v);
    if (fabs(ip) >= (double)(INT64_MAX / unit))
        return GD_ERANGE;
    int64_t whole = (int64_t)ip * unit;
    int64_t frac = (int64_t)round_d((v - ip) * (double)unit);
    return __builtin_add_overflow(whole, frac, ns) ? GD_ERANGE : 0;
}

int hp_time_parse(json_t *v, int format, int64_t *ns)
{
    if (json_is_integer(v)) {
        if (format == HP_TIME_RFC3339)
            return GD_ETYPE;
        json_int_t i = json_integer_value(v);
        return mul_add(i, unit_of(format, (double)i), 0, ns) ? 0 : GD_ERANGE;
    }
    if (json_is_real(v)) {
        if (format == HP_TIME_RFC3339)
            return GD_ETYPE;
        double d = json_real_value(v);
        return real_ns(d, unit_of(format, d), ns);
    }
    if (!json_is_string(v))
        return GD_ETYPE;
    const char *s = json_string_value(v);
    if (format == HP_TIME_RFC3339)
        return gd_time_parse_rfc3339(s, ns);
    if (format == HP_TIME_AUTO && strlen(s) >= 20 && s[4] == '-')
        return gd_time_parse_rfc3339(s, ns);
    return decimal_ns(s, unit_of(format, strtod(s, NULL)), ns);
}

/* ---- values ------------------------------------------------------------- */

/* The shortest text that reads back as @d. */
static void fmt_double(char *buf, size_t n, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* A whole string as a finite double. */
static bool str_double(const char *s, double *out)
{
    if (!*s || isspace((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end || errno || !isfinite(d))
        return false;
    *out = d;
    return true;
}

/* A number (or numeric string) as a double. */
static bool num_of(json_t *j, double *out)
{
    if (json_is_number(j)) {
        *out = json_number_value(j);
        return true;
    }
    return json_is_string(j) && str_double(json_string_value(j), out);
}

/* Resolve one field. Returns 0 (val->set), GD_ENOENT (missing or null),
 * GD_ETYPE or GD_ERANGE, with *@why set for the last two. */
static int resolve(const struct hp_field *f, json_t *j, struct hp_value *val, const char **why)
{
    const struct hp_field_cfg *c = &f->cfg;
    bool plain = c->scale == 1.0 && c->offset == 0.0;
    double d;
    val->set = false;
    val->type = c->type;
    if (!j || json_is_null(j))
        return GD_ENOENT;

    switch (c->type) {
    case HP_FLOAT:
        if (!num_of(j, &d)) {
            *why = "not a number";
            return GD_ETYPE;
        }
        val->v.f64 = d * c->scale + c->offset;
        if (!isfinite(val->v.f64)) {
            *why = "out of range";
            return GD_ERANGE;
        }
        break;
    case HP_INT:
    case HP_UINT:
        if (json_is_integer(j) && plain) {
            json_int_t i = json_integer_value(j);
            if (c->type == HP_UINT && i < 0) {
                *why = "negative, not a uint";
                return GD_ERANGE;
            }
            if (c->type == HP_INT)
                val->v.i64 = i;
            else
                val->v.u64 = (uint64_t)i;
            break;
        }
        if (json_is_string(j) && plain) {
            const char *s = json_string_value(j);
            char *end;
            errno = 0;
            if (c->type == HP_INT) {
                long long ll = strtoll(s, &end, 10);
                if (*s && !*end && !errno && !isspace((unsigned char)*s)) {
                    val->v.i64 = ll;
                    break;
                }
            } else if (*s >= '0' && *s <= '9') {
                unsigned long long ull = strtoull(s, &end, 10);
                if (!*end && !errno) {
                    val->v.u64 = ull;
                    break;
                }
            }
        }
        if (!num_of(j, &d)) {
            *why = c->type == HP_INT ? "not an integer" : "not an unsigned integer";
            return GD_ETYPE;
        }
        d = d * c->scale + c->offset;
        if (plain && d != trunc_d(d)) {
            *why = "has a fraction (set scale to convert)";
            return GD_ETYPE;
        }
        d = round_d(d);
        if (c->type == HP_INT ? !(d >= -0x1p63 && d < 0x1p63) : !(d >= 0 && d < 0x1p64)) {
            *why = "out of range";
            return GD_ERANGE;
        }
        if (c->type == HP_INT)
            val->v.i64 = (int64_t)d;
        else
            val->v.u64 = (uint64_t)d;
        break;
    case HP_BOOL:
        if (json_is_boolean(j)) {
            val->v.b = json_is_true(j);
        } else if (json_is_number(j)) {
            val->v.b = json_number_value(j) != 0;
        } else if (json_is_string(j) && (strcmp(json_string_value(j), "true") == 0 ||
                                         strcmp(json_string_value(j), "false") == 0)) {
            val->v.b = json_string_value(j)[0] == 't';
        } else {
            *why = "not a bool";
            return GD_ETYPE;
        }
        break;
    case HP_STRING:
        if (json_is_string(j)) {
            val->str = json_string_value(j);
            val->str_len = json_string_length(j);
            break;
        }
        if (json_is_integer(j))
            snprintf(val->buf, sizeof(val->buf), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        else if (json_is_real(j))
            fmt_double(val->buf, sizeof(val->buf), json_real_value(j));
        else if (json_is_boolean(j))
            snprintf(val->buf, sizeof(val->buf), "%s", json_is_true(j) ? "true" : "false");
        else {
            *why = "an object or array, not a string";
            return GD_ETYPE;
        }
        val->str = val->buf;
        val->str_len = strlen(val->buf);
        break;
    }
    val->set = true;
    return 0;
}

/* ---- applying a map ----------------------------------------------------- */

static void note(struct hp_stats *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct hp_stats *st, const char *fmt, ...)
{
    if (st->first[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->first, sizeof(st->first), fmt, ap);
    va_end(ap);
}

static const char *json_kind(json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a bool";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Tag value text of @j in @buf; NULL when it cannot be a tag. */
static const char *tag_text(json_t *j, char *buf, size_t n)
{
    if (json_is_string(j))
        return json_string_value(j);
    if (json_is_integer(j))
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
    else if (json_is_real(j))
        fmt_double(buf, n, json_real_value(j));
    else if (json_is_boolean(j))
        snprintf(buf, n, "%s", json_is_true(j) ? "true" : "false");
    else
        return NULL;
    return buf;
}

static int add_value(gd_point *p, const char *key, const struct hp_value *v)
{
    switch (v->type) {
    case HP_FLOAT:
        return gd_point_f64(p, key, v->v.f64);
    case HP_INT:
        return gd_point_i64(p, key, v->v.i64);
    case HP_UINT:
        return gd_point_u64(p, key, v->v.u64);
    case HP_BOOL:
        return gd_point_bool(p, key, v->v.b);
    default:
        return gd_point_str_n(p, key, v->str, v->str_len);
    }
}

/* The point of one item (@item == @doc without readings); @idx names the
 * item in messages (-1: none). */
static int map_item(hp_map *m, json_t *doc, json_t *item, long idx, int64_t poll_ns, gd_batch *out,
                    struct hp_stats *st)
{
    char where[32] = "";
    if (idx >= 0)
        snprintf(where, sizeof(where), "reading %ld: ", idx);

    int64_t ts = poll_ns;
    if (m->has_time) {
        json_t *tj = hp_ptr_get(&m->time, m->time_root ? doc : item);
        int rc = tj ? hp_time_parse(tj, m->time_format, &ts) : GD_ENOENT;
        if (rc < 0) {
            st->dropped[HP_DROP_BAD_TIME]++;
            if (!tj)
                note(st, "%stime_pointer %s is missing; point dropped", where, m->time.text);
            else
                note(st, "%stime_pointer %s: %s %s (%s); point dropped", where, m->time.text,
                     json_kind(tj), rc == GD_ETYPE ? "cannot be a timestamp" : "is unreadable",
                     hp_time_format_names[m->time_format]);
            return 0;
        }
    }

    size_t nset = 0;
    for (size_t i = 0; i < m->nfields; i++) {
        const struct hp_field *f = &m->fields[i];
        json_t *j = hp_ptr_get(&f->ptr, f->cfg.root ? doc : item);
        const char *why = "";
        int rc = resolve(f, j, &m->vals[i], &why);
        if (rc == 0) {
            nset++;
            continue;
        }
        if (rc == GD_ENOENT && !f->cfg.required)
            continue;
        if (rc == GD_ENOENT) {
            st->dropped[HP_DROP_MISSING_FIELD]++;
            note(st, "%srequired field %s: %s is %s; point dropped", where, f->cfg.name,
                 f->ptr.text, j ? "null" : "missing");
            return 0;
        }
        if (f->cfg.required) {
            st->dropped[HP_DROP_WRONG_TYPE]++;
            note(st, "%srequired field %s (%s): %s at %s %s; point dropped", where, f->cfg.name,
                 hp_type_names[f->cfg.type], json_kind(j), f->ptr.text, why);
            return 0;
        }
        st->skipped++;
        note(st, "%sfield %s (%s): %s at %s %s; field skipped", where, f->cfg.name,
             hp_type_names[f->cfg.type], json_kind(j), f->ptr.text, why);
    }
    if (nset == 0) {
        st->dropped[HP_DROP_NO_FIELDS]++;
        note(st, "%sno field has a value; point dropped", where);
        return 0;
    }

    gd_point *p = gd_batch_add(out, m->measurement, ts);
    if (!p)
        return GD_ENOMEM;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < m->ntags; i++)
        rc = gd_point_tag(p, m->tags[i].key, m->tags[i].value);
    for (size_t i = 0; rc == 0 && i < m->ntagps; i++) {
        const struct hp_tagp *t = &m->tagps[i];
        json_t *j = hp_ptr_get(&t->ptr, t->root ? doc : item);
        char buf[32];
        const char *text = j && !json_is_null(j) ? tag_text(j, buf, sizeof(buf)) : NULL;
        if (text && text[0] && !strpbrk(text, "\r\n")) {
            rc = gd_point_tag(p, t->name, text);
        } else if (j && !json_is_null(j)) {
            st->skipped++;
            note(st, "%stag %s: %s at %s cannot be a tag value; tag skipped", where, t->name,
                 json_kind(j), t->ptr.text);
        }
    }
    for (size_t i = 0; rc == 0 && i < m->nfields; i++)
        if (m->vals[i].set)
            rc = add_value(p, m->fields[i].cfg.name, &m->vals[i]);
    if (rc < 0)
        return rc; /* out of memory: the batch's arena cannot grow */
    st->points++;
    return 0;
}

int hp_map_apply(hp_map *m, json_t *doc, int64_t poll_ns, gd_batch *out, struct hp_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!m->has_points)
        return map_item(m, doc, doc, -1, poll_ns, out, st);

    json_t *arr = hp_ptr_get(&m->points, doc);
    if (!arr) {
        note(st, "points %s is missing", m->points.text);
        return GD_ENOENT;
    }
    if (!json_is_array(arr)) {
        note(st, "points %s is %s, not an array", m->points.text, json_kind(arr));
        return GD_ETYPE;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        int rc = map_item(m, doc, json_array_get(arr, i), (long)i, poll_ns, out, st);
        if (rc < 0)
            return rc;
    }
    return 0;
}
