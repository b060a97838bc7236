/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rd_template.c - key and channel templates, compiled once into literal and
 * placeholder parts, so filling one costs no parsing per point.
 */
#include "rd_template.h"
#include <stdlib.h>
#include <string.h>

enum part_kind { PART_TEXT, PART_MEASUREMENT, PART_TAG };

struct part {
    enum part_kind kind;
    size_t off, len; /* PART_TEXT: bytes of lit; PART_TAG: the name in names */
};

struct rd_template {
    char *text;  /* the source */
    char *lit;   /* literal text, braces unescaped */
    char *names; /* tag names, each NUL-terminated */
    struct part *parts;
    size_t nparts;
};

static int add_part(rd_template *t, enum part_kind kind, size_t off, size_t len)
{
    /* Adjacent literal text merges into one part. */
    if (kind == PART_TEXT && t->nparts && t->parts[t->nparts - 1].kind == PART_TEXT) {
        t->parts[t->nparts - 1].len += len;
        return 0;
    }
    struct part *v = realloc(t->parts, (t->nparts + 1) * sizeof(*v));
    if (!v)
        return GD_ENOMEM;
    t->parts = v;
    t->parts[t->nparts++] = (struct part){.kind = kind, .off = off, .len = len};
    return 0;
}

int rd_template_parse(const char *text, rd_template **out, const char **why)
{
    size_t n = strlen(text);
    rd_template *t = calloc(1, sizeof(*t));
    if (!t)
        return GD_ENOMEM;
    t->text = strdup(text);
    t->lit = malloc(n + 1);
    t->names = malloc(n + 1);
    int rc = t->text && t->lit && t->names ? 0 : GD_ENOMEM;
    size_t nlit = 0, nnames = 0;
    *why = NULL;
    for (size_t i = 0; rc == 0 && i < n;) {
        char c = text[i];
        if ((c == '{' || c == '}') && text[i + 1] == c) {
            t->lit[nlit] = c;
            rc = add_part(t, PART_TEXT, nlit++, 1);
            i += 2;
        } else if (c == '}') {
            *why = "unmatched '}' (write '}}' for a literal brace)";
            rc = GD_EINVAL;
        } else if (c == '{') {
            const char *end = strchr(text + i + 1, '}');
            if (!end) {
                *why = "unterminated '{'";
                rc = GD_EINVAL;
                break;
            }
            const char *name = text + i + 1;
            size_t len = (size_t)(end - name);
            bool tag_prefix = len > 4 && strncmp(name, "tag:", 4) == 0;
            if (tag_prefix) {
                name += 4;
                len -= 4;
            }
            if (len == 0 || memchr(name, '{', len)) {
                *why = "empty or malformed placeholder (expected {measurement} or {TAG})";
                rc = GD_EINVAL;
                break;
            }
            if (!tag_prefix && len == 11 && strncmp(name, "measurement", 11) == 0) {
                rc = add_part(t, PART_MEASUREMENT, 0, 0);
            } else {
                memcpy(t->names + nnames, name, len);
                t->names[nnames + len] = '\0';
                rc = add_part(t, PART_TAG, nnames, len);
                nnames += len + 1;
            }
            i = (size_t)(end - text) + 1;
        } else {
            t->lit[nlit] = c;
            rc = add_part(t, PART_TEXT, nlit++, 1);
            i++;
        }
    }
    if (rc == 0 && n == 0) {
        *why = "empty template";
        rc = GD_EINVAL;
    }
    if (rc < 0) {
        rd_template_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int rd_template_expand(const rd_template *t, const gd_point *p, gd_buf *out, const char **missing)
{
    size_t mark = out->len;
    for (size_t i = 0; i < t->nparts; i++) {
        const struct part *pt = &t->parts[i];
        const char *s = NULL;
        size_t len = 0;
        if (pt->kind == PART_TEXT) {
            s = t->lit + pt->off;
            len = pt->len;
        } else if (pt->kind == PART_MEASUREMENT) {
            s = gd_point_measurement(p, &len);
        } else {
            s = gd_point_tag_get(p, t->names + pt->off);
            if (!s) {
                *missing = t->names + pt->off;
                out->len = mark;
                if (out->data)
                    out->data[mark] = '\0';
                return GD_ENOENT;
            }
            len = strlen(s);
        }
        if (gd_buf_append(out, s, len) < 0) {
            out->len = mark;
            return GD_ENOMEM;
        }
    }
    return 0;
}

const char *rd_template_text(const rd_template *t)
{
    return t->text;
}

void rd_template_free(rd_template *t)
{
    if (!t)
        return;
    free(t->text);
    free(t->lit);
    free(t->names);
    free(t->parts);
    free(t);
}
