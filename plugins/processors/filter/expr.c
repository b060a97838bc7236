/* SPDX-License-Identifier: Apache-2.0 */
/*
 * expr.c - a recursive-descent compiler of filter expressions into a node
 * array (children by index), and its evaluator. Literals are decoded and
 * regexes compiled here, once; evaluation only reads the point.
 */
#include "expr.h"
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64 /* nesting of parentheses and not */

enum node_kind { N_OR, N_AND, N_NOT, N_CMP, N_RE, N_EXISTS };
enum cmp_op { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE, C_RE, C_NRE };
enum ref_kind { R_ANY, R_TAG, R_FIELD, R_MEAS };
enum lit_type { L_NUM, L_STR, L_BOOL };

struct node {
    uint8_t kind, op, ref, lit;
    uint32_t a, b; /* children of OR, AND (a, b) and NOT (a) */
    const char *name;
    size_t name_len;
    double num;
    int64_t inum;
    bool is_int, boolean;
    char *str;
    size_t str_len;
    regex_t *re;
};

struct expr {
    struct node *n;
    size_t len, cap;
    uint32_t root;
    char *names; /* copies of the identifiers, NUL-separated */
};

/* ---- lexer ------------------------------------------------------------- */

enum tok_kind { T_END, T_NAME, T_STR, T_NUM, T_LP, T_RP, T_AND, T_OR, T_NOT, T_OP, T_BAD };

struct tok {
    int kind;
    int op; /* T_OP: enum cmp_op */
    const char *s;
    size_t len;
    size_t col; /* 1-based */
};

struct parser {
    const char *src;
    const char *pos;
    struct tok t;
    expr *e;
    char *err;
    int depth;
    int rc;
};

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool word_is(const struct tok *t, const char *w)
{
    return t->kind == T_NAME && t->len == strlen(w) && memcmp(t->s, w, t->len) == 0;
}

static void next(struct parser *p)
{
    const char *c = p->pos;
    while (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r')
        c++;
    struct tok t = {.kind = T_BAD, .s = c, .len = 1, .col = (size_t)(c - p->src) + 1};
    static const struct {
        const char *text;
        int kind, op;
    } puncts[] = {
        {"&&", T_AND, 0},   {"||", T_OR, 0},    {"==", T_OP, C_EQ}, {"!=", T_OP, C_NE},
        {"<=", T_OP, C_LE}, {">=", T_OP, C_GE}, {"=~", T_OP, C_RE}, {"!~", T_OP, C_NRE},
        {"<", T_OP, C_LT},  {">", T_OP, C_GT},  {"!", T_NOT, 0},    {"(", T_LP, 0},
        {")", T_RP, 0},
    };
    if (*c == '\0') {
        t.kind = T_END;
        t.len = 0;
        goto done;
    }
    for (size_t i = 0; i < sizeof(puncts) / sizeof(puncts[0]); i++) {
        size_t l = strlen(puncts[i].text);
        if (strncmp(c, puncts[i].text, l) == 0) {
            t.kind = puncts[i].kind;
            t.op = puncts[i].op;
            t.len = l;
            goto done;
        }
    }
    if (name_start(*c)) {
        const char *e = c + 1;
        while (name_char(*e))
            e++;
        t.kind = T_NAME;
        t.len = (size_t)(e - c);
        if (word_is(&t, "and"))
            t.kind = T_AND;
        else if (word_is(&t, "or"))
            t.kind = T_OR;
        else if (word_is(&t, "not"))
            t.kind = T_NOT;
    } else if (*c == '"') {
        const char *e = c + 1;
        while (*e && *e != '"')
            e += (e[0] == '\\' && e[1]) ? 2 : 1;
        if (*e == '"') {
            t.kind = T_STR;
            t.len = (size_t)(e + 1 - c);
        } else {
            t.len = 0; /* unterminated: reported by the parser */
        }
    } else if ((*c >= '0' && *c <= '9') || ((*c == '-' || *c == '+' || *c == '.') && c[1])) {
        char *e;
        strtod(c, &e);
        if (e != c) {
            t.kind = T_NUM;
            t.len = (size_t)(e - c);
        }
    }
done:
    p->t = t;
    p->pos = c + t.len;
}

/* ---- parser ------------------------------------------------------------ */

static int fail(struct parser *p, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, size_t col, const char *fmt, ...)
{
    if (p->rc < 0)
        return p->rc; /* keep the first error */
    int n = snprintf(p->err, EXPR_ERR_LEN, "column %zu: ", col);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, EXPR_ERR_LEN - (size_t)n, fmt, ap);
    va_end(ap);
    p->rc = GD_ECONFIG;
    return p->rc;
}

/* A printable description of the token in hand. */
static const char *tok_desc(const struct tok *t, char *buf, size_t cap)
{
    if (t->kind == T_END)
        return "the end";
    snprintf(buf, cap, "'%.*s'", (int)(t->len > 20 ? 20 : t->len ? t->len : 1), t->s);
    return buf;
}

/* Append a node; returns its index or -1 out of memory. */
static long add_node(struct parser *p, const struct node *n)
{
    expr *e = p->e;
    if (e->len == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        struct node *nn = realloc(e->n, cap * sizeof(*nn));
        if (!nn) {
            p->rc = GD_ENOMEM;
            return -1;
        }
        e->n = nn;
        e->cap = cap;
    }
    e->n[e->len] = *n;
    return (long)e->len++;
}

static long parse_or(struct parser *p);

/* The identifier in hand as a reference: measurement, tag.x, field.x or x. */
static int parse_ref(struct parser *p, struct node *n)
{
    const struct tok *t = &p->t;
    n->ref = R_ANY;
    n->name = t->s;
    n->name_len = t->len;
    if (word_is(t, "measurement")) {
        n->ref = R_MEAS;
    } else if (t->len > 4 && memcmp(t->s, "tag.", 4) == 0) {
        n->ref = R_TAG;
        n->name += 4;
        n->name_len -= 4;
    } else if (t->len > 6 && memcmp(t->s, "field.", 6) == 0) {
        n->ref = R_FIELD;
        n->name += 6;
        n->name_len -= 6;
    }
    return 0;
}

/* Decode the string literal in hand (escapes \" \\ \n \t) into n->str. */
static int decode_string(struct parser *p, struct node *n)
{
    const struct tok *t = &p->t;
    char *s = malloc(t->len);
    if (!s)
        return p->rc = GD_ENOMEM;
    size_t o = 0;
    for (size_t i = 1; i + 1 < t->len; i++) {
        char c = t->s[i];
        if (c == '\\') {
            c = t->s[++i];
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
        }
        s[o++] = c;
    }
    s[o] = '\0';
    n->str = s;
    n->str_len = o;
    return 0;
}

static long parse_compare(struct parser *p)
{
    struct node n = {.kind = N_CMP};
    char buf[32];
    struct tok name = p->t;
    parse_ref(p, &n);
    next(p);
    if (p->t.kind != T_OP)
        return fail(p, p->t.col, "expected a comparison operator after '%.*s', found %s",
                    (int)name.len, name.s, tok_desc(&p->t, buf, sizeof(buf)));
    struct tok op = p->t;
    n.op = (uint8_t)op.op;
    next(p);
    const struct tok *v = &p->t;
    if (v->kind == T_BAD && *v->s == '"')
        return fail(p, v->col, "unterminated string");
    if (v->kind == T_STR) {
        n.lit = L_STR;
        if (decode_string(p, &n) < 0)
            return -1;
    } else if (v->kind == T_NUM) {
        n.lit = L_NUM;
        n.num = strtod(v->s, NULL);
        char *e;
        errno = 0;
        long long i = strtoll(v->s, &e, 10);
        n.is_int = errno == 0 && (size_t)(e - v->s) == v->len;
        n.inum = i;
    } else if (word_is(v, "true") || word_is(v, "false")) {
        n.lit = L_BOOL;
        n.boolean = word_is(v, "true");
    } else {
        return fail(p, v->col, "expected a value after '%.*s'", (int)op.len, op.s);
    }
    if ((n.op == C_RE || n.op == C_NRE)) {
        if (n.lit != L_STR) {
            free(n.str);
            return fail(p, v->col, "'%.*s' needs a string (a regex)", (int)op.len, op.s);
        }
        n.kind = N_RE;
        n.re = malloc(sizeof(*n.re));
        if (!n.re) {
            free(n.str);
            return p->rc = GD_ENOMEM;
        }
        int rc = regcomp(n.re, n.str, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[80];
            regerror(rc, n.re, msg, sizeof(msg));
            free(n.re);
            free(n.str);
            return fail(p, v->col, "invalid regex: %s", msg);
        }
    } else if (n.lit == L_BOOL && n.op != C_EQ && n.op != C_NE) {
        return fail(p, op.col, "'%.*s' cannot order booleans", (int)op.len, op.s);
    }
    next(p);
    long idx = add_node(p, &n);
    if (idx < 0) {
        if (n.re) {
            regfree(n.re);
            free(n.re);
        }
        free(n.str);
    }
    return idx;
}

static long parse_primary(struct parser *p)
{
    char buf[32];
    struct tok t = p->t;
    if (t.kind == T_LP) {
        if (++p->depth > MAX_DEPTH)
            return fail(p, t.col, "nested too deeply");
        next(p);
        long a = parse_or(p);
        if (a < 0)
            return a;
        if (p->t.kind != T_RP)
            return fail(p, p->t.col, "expected ')' to close '(' at column %zu, found %s", t.col,
                        tok_desc(&p->t, buf, sizeof(buf)));
        p->depth--;
        next(p);
        return a;
    }
    if (word_is(&t, "exists")) {
        next(p);
        if (p->t.kind != T_LP)
            return fail(p, p->t.col, "expected '(' after exists");
        next(p);
        if (p->t.kind != T_NAME)
            return fail(p, p->t.col, "expected a name inside exists()");
        struct node n = {.kind = N_EXISTS};
        parse_ref(p, &n);
        next(p);
        if (p->t.kind != T_RP)
            return fail(p, p->t.col, "expected ')' after the name in exists()");
        next(p);
        return add_node(p, &n);
    }
    if (t.kind == T_NAME)
        return parse_compare(p);
    if (t.kind == T_BAD && *t.s == '"')
        return fail(p, t.col, "unterminated string");
    return fail(p, t.col, "expected a name, 'not', 'exists(' or '(', found %s",
                tok_desc(&t, buf, sizeof(buf)));
}

static long parse_unary(struct parser *p)
{
    if (p->t.kind != T_NOT)
        return parse_primary(p);
    size_t col = p->t.col;
    if (++p->depth > MAX_DEPTH)
        return fail(p, col, "nested too deeply");
    next(p);
    long a = parse_unary(p);
    p->depth--;
    if (a < 0)
        return a;
    struct node n = {.kind = N_NOT, .a = (uint32_t)a};
    return add_node(p, &n);
}

static long parse_and(struct parser *p)
{
    long a = parse_unary(p);
    while (a >= 0 && p->t.kind == T_AND) {
        next(p);
        long b = parse_unary(p);
        if (b < 0)
            return b;
        struct node n = {.kind = N_AND, .a = (uint32_t)a, .b = (uint32_t)b};
        a = add_node(p, &n);
    }
    return a;
}

static long parse_or(struct parser *p)
{
    long a = parse_and(p);
    while (a >= 0 && p->t.kind == T_OR) {
        next(p);
        long b = parse_and(p);
        if (b < 0)
            return b;
        struct node n = {.kind = N_OR, .a = (uint32_t)a, .b = (uint32_t)b};
        a = add_node(p, &n);
    }
    return a;
}

void expr_free(expr *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->len; i++) {
        if (e->n[i].re) {
            regfree(e->n[i].re);
            free(e->n[i].re);
        }
        free(e->n[i].str);
    }
    free(e->n);
    free(e->names);
    free(e);
}

int expr_compile(const char *src, expr **out, char *err)
{
    expr *e = calloc(1, sizeof(*e));
    if (!e)
        return GD_ENOMEM;
    /* Identifiers point into a private copy of the source. */
    size_t len = strlen(src);
    if (!(e->names = malloc(len + 1))) {
        free(e);
        return GD_ENOMEM;
    }
    memcpy(e->names, src, len + 1);
    struct parser p = {.src = e->names, .pos = e->names, .e = e, .err = err};
    err[0] = '\0';
    next(&p);
    long root = parse_or(&p);
    if (root >= 0 && p.t.kind != T_END) {
        char buf[32];
        fail(&p, p.t.col, "unexpected %s after a complete expression",
             tok_desc(&p.t, buf, sizeof(buf)));
    }
    if (root < 0 || p.rc < 0) {
        int rc = p.rc < 0 ? p.rc : GD_ENOMEM;
        expr_free(e);
        return rc;
    }
    e->root = (uint32_t)root;
    *out = e;
    return 0;
}

/* ---- evaluation -------------------------------------------------------- */

enum val_kind { V_MISSING, V_STR, V_F64, V_I64, V_U64, V_BOOL };

struct val {
    int kind;
    const char *s; /* NUL-terminated in the batch */
    size_t len;
    double d;
    int64_t i;
    uint64_t u;
    bool b;
};

/* Equal bytes; names are short, so no memcmp call. */
static inline bool same(const char *a, const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

static bool tag_value(const gd_point *p, const struct node *n, struct val *v)
{
    size_t nt;
    const gd_tag *t = gd_point_tags(p, &nt);
    for (size_t i = 0; i < nt; i++)
        if (t[i].key_len == n->name_len && same(t[i].key, n->name, n->name_len)) {
            *v = (struct val){.kind = V_STR, .s = t[i].value, .len = t[i].value_len};
            return true;
        }
    return false;
}

static bool field_value(const gd_point *p, const struct node *n, struct val *v)
{
    size_t nf;
    const gd_field *f = gd_point_fields(p, &nf);
    for (size_t i = 0; i < nf; i++) {
        if (f[i].key_len != n->name_len || !same(f[i].key, n->name, n->name_len))
            continue;
        switch (f[i].type) {
        case GD_STR:
            *v = (struct val){.kind = V_STR, .s = f[i].v.str.ptr, .len = f[i].v.str.len};
            break;
        case GD_F64:
            *v = (struct val){.kind = V_F64, .d = f[i].v.f64};
            break;
        case GD_I64:
            *v = (struct val){.kind = V_I64, .i = f[i].v.i64};
            break;
        case GD_U64:
            *v = (struct val){.kind = V_U64, .u = f[i].v.u64};
            break;
        default:
            *v = (struct val){.kind = V_BOOL, .b = f[i].v.b};
            break;
        }
        return true;
    }
    return false;
}

/* Resolve the node's reference: measurement, or a tag before a field. */
static bool resolve(const gd_point *p, const struct node *n, struct val *v)
{
    switch (n->ref) {
    case R_MEAS:
        v->kind = V_STR;
        v->s = gd_point_measurement(p, &v->len);
        return true;
    case R_TAG:
        return tag_value(p, n, v);
    case R_FIELD:
        return field_value(p, n, v);
    default:
        return tag_value(p, n, v) || field_value(p, n, v);
    }
}

static bool ordered(int op, int c)
{
    switch (op) {
    case C_EQ:
        return c == 0;
    case C_NE:
        return c != 0;
    case C_LT:
        return c < 0;
    case C_LE:
        return c <= 0;
    case C_GT:
        return c > 0;
    default:
        return c >= 0;
    }
}

static int cmp_d(double a, double b)
{
    return a < b ? -1 : a > b ? 1 : 0;
}

static bool compare(const struct node *n, const struct val *v)
{
    if (n->lit == L_BOOL)
        return v->kind == V_BOOL && ((v->b == n->boolean) == (n->op == C_EQ));
    if (n->lit == L_STR) {
        if (v->kind != V_STR)
            return false;
        size_t l = v->len < n->str_len ? v->len : n->str_len;
        int c = memcmp(v->s, n->str, l);
        if (c == 0)
            c = v->len < n->str_len ? -1 : v->len > n->str_len ? 1 : 0;
        return ordered(n->op, c);
    }
    switch (v->kind) {
    case V_I64:
        if (n->is_int)
            return ordered(n->op, v->i < n->inum ? -1 : v->i > n->inum ? 1 : 0);
        return ordered(n->op, cmp_d((double)v->i, n->num));
    case V_U64:
        if (n->is_int && v->u <= INT64_MAX)
            return ordered(n->op, (int64_t)v->u < n->inum ? -1 : (int64_t)v->u > n->inum ? 1 : 0);
        return ordered(n->op, cmp_d((double)v->u, n->num));
    case V_F64:
        return ordered(n->op, cmp_d(v->d, n->num));
    case V_STR: {
        /* a string (a tag) against a number: compared as a number if it is one */
        char *e;
        double d = strtod(v->s, &e);
        if (e == v->s || *e != '\0' || isnan(d))
            return false;
        return ordered(n->op, cmp_d(d, n->num));
    }
    default:
        return false;
    }
}

static bool eval(const expr *e, uint32_t i, const gd_point *p)
{
    const struct node *n = &e->n[i];
    struct val v;
    switch (n->kind) {
    case N_OR:
        return eval(e, n->a, p) || eval(e, n->b, p);
    case N_AND:
        return eval(e, n->a, p) && eval(e, n->b, p);
    case N_NOT:
        return !eval(e, n->a, p);
    case N_EXISTS:
        return resolve(p, n, &v);
    case N_RE:
        if (!resolve(p, n, &v) || v.kind != V_STR)
            return false;
        return (regexec(n->re, v.s, 0, NULL, 0) == 0) == (n->op == C_RE);
    default:
        return resolve(p, n, &v) && compare(n, &v);
    }
}

bool expr_match(const expr *e, const gd_point *p)
{
    return eval(e, e->root, p);
}
