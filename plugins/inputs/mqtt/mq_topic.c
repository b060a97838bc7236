/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mq_topic.c - topic_tags patterns (see mq_topic.h).
 */
#include "mq_topic.h"

#include <stdlib.h>
#include <string.h>

void mq_pattern_free(struct mq_pattern *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].tag);
        free(p->v[i].literal);
    }
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

/* Compile "chambers/{device}/+/#". Returns 0 or GD_ECONFIG with *@why. */
int mq_pattern_compile(struct mq_pattern *p, const char *text, const char **why)
{
    size_t n = 1;
    for (const char *c = text; *c; c++)
        n += *c == '/';
    if (n > MQ_MAX_LEVELS) {
        *why = "too many levels";
        return GD_ECONFIG;
    }
    p->v = calloc(n, sizeof(*p->v));
    if (!p->v)
        return GD_ENOMEM;
    p->n = n;
    const char *s = text;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(s, "/");
        struct mq_level *l = &p->v[i];
        if (len == 1 && s[0] == '#') {
            if (i != n - 1) {
                *why = "# must be the last level";
                return GD_ECONFIG;
            }
            l->rest = true;
        } else if (len == 1 && s[0] == '+') {
            /* any level, no tag */
        } else if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
            if (len == 2) {
                *why = "empty tag name in {}";
                return GD_ECONFIG;
            }
            l->tag = strndup(s + 1, len - 2);
            if (!l->tag)
                return GD_ENOMEM;
        } else {
            if (memchr(s, '{', len) || memchr(s, '}', len) || memchr(s, '+', len) ||
                memchr(s, '#', len)) {
                *why = "a level is a literal, +, # or {tag}";
                return GD_ECONFIG;
            }
            l->literal = strndup(s, len);
            if (!l->literal)
                return GD_ENOMEM;
        }
        s += len + (s[len] == '/');
    }
    return 0;
}

/* Tag points [from, len) with the levels @pat picks out of @topic, when
 * the whole pattern matches it. */
void mq_pattern_apply(const struct mq_pattern *pat, const char *topic, gd_batch *b, size_t from)
{
    const char *lv[MQ_MAX_LEVELS];
    size_t ll[MQ_MAX_LEVELS];
    size_t n = 0;
    const char *s = topic;
    for (;;) {
        if (n == MQ_MAX_LEVELS)
            return;
        size_t len = strcspn(s, "/");
        lv[n] = s;
        ll[n++] = len;
        if (!s[len])
            break;
        s += len + 1;
    }
    bool rest = pat->n && pat->v[pat->n - 1].rest;
    if (rest ? n < pat->n - 1 : n != pat->n)
        return;
    for (size_t i = 0; i < pat->n && !pat->v[i].rest; i++) {
        const char *lit = pat->v[i].literal;
        if (lit && (strlen(lit) != ll[i] || memcmp(lit, lv[i], ll[i]) != 0))
            return;
    }
    /* Points of a batch under construction are mutable; gd_batch_point()
     * only hands out read-only views. */
    for (size_t k = from; k < gd_batch_len(b); k++) {
        gd_point *p = (gd_point *)gd_batch_point(b, k);
        for (size_t i = 0; i < pat->n && !pat->v[i].rest; i++)
            if (pat->v[i].tag && ll[i])
                gd_point_tag_n(p, pat->v[i].tag, strlen(pat->v[i].tag), lv[i], ll[i]);
    }
}
