/* SPDX-License-Identifier: Apache-2.0 */
#include "pipeline.h"
#include <fnmatch.h>
#include <stdlib.h>

bool gd__match(const gd_strlist *match, const char *src_name, const char *m)
{
    if (match->n == 0)
        return true;
    for (size_t i = 0; i < match->n; i++)
        if ((src_name && fnmatch(match->v[i], src_name, 0) == 0) ||
            (m && fnmatch(match->v[i], m, 0) == 0))
            return true;
    return false;
}

static bool match_source(const gd_strlist *match, const char *src_name)
{
    if (match->n == 0)
        return true;
    for (size_t i = 0; i < match->n; i++)
        if (fnmatch(match->v[i], src_name, 0) == 0)
            return true;
    return false;
}

enum sel { SEL_NONE, SEL_ALL, SEL_SOME };

/* Which points of @b does @match select? @mask (len entries) is filled for SEL_SOME. */
static enum sel select_points(const gd_strlist *match, const char *src_name, const gd_batch *b,
                              bool *mask)
{
    size_t len = gd_batch_len(b), hits = 0;
    if (match_source(match, src_name))
        return SEL_ALL;
    for (size_t i = 0; i < len; i++) {
        mask[i] = gd__match(match, NULL, gd_point_measurement(gd_batch_point(b, i), NULL));
        hits += mask[i];
    }
    return hits == 0 ? SEL_NONE : hits == len ? SEL_ALL : SEL_SOME;
}

/* A frozen copy of the points of @b whose mask entry equals @want. */
static gd_batch *subset(const gd_batch *b, const bool *mask, bool want)
{
    size_t len = gd_batch_len(b);
    gd_batch *out = gd_batch_new(len);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (mask[i] == want && !gd_batch_copy_point(out, gd_batch_point(b, i))) {
            gd_batch_unref(out);
            return NULL;
        }
    gd_batch_freeze(out);
    return out;
}

/* Append copies of every point of @src to @dst (not frozen). */
static int append_all(gd_batch *dst, const gd_batch *src)
{
    for (size_t i = 0; i < gd_batch_len(src); i++)
        if (!gd_batch_copy_point(dst, gd_batch_point(src, i)))
            return GD_ENOMEM;
    return 0;
}

/* Run one processor over @in (borrowed). Returns a new reference. */
static gd_batch *run_processor(gd__inst *pr, gd_batch *in)
{
    size_t len = gd_batch_len(in);
    gd_batch *out = gd_batch_new(len);
    if (!out) {
        atomic_fetch_add(&pr->cnt.errors, 1); /* out of memory: pass on unprocessed */
        return gd_batch_ref(in);
    }
    atomic_fetch_add(&pr->cnt.received, len);
    pthread_mutex_lock(&pr->proc_lock);
    int rc = pr->lib->ops.processor.process(pr->state, in, out);
    pthread_mutex_unlock(&pr->proc_lock);
    if (rc == GD_PASS || rc < 0) {
        if (rc < 0) {
            atomic_fetch_add(&pr->cnt.errors, 1);
            gd_log_ratelimited(&pr->head, GD_WARN, "process failed (%s): points passed on as they were",
                               gd_strerror(rc));
        }
        gd_batch_unref(out);
        atomic_fetch_add(&pr->cnt.delivered, len);
        return gd_batch_ref(in);
    }
    gd_batch_freeze(out);
    size_t olen = gd_batch_len(out);
    atomic_fetch_add(&pr->cnt.delivered, olen);
    if (olen < len)
        gd__count_drop(&pr->cnt, "filtered", len - olen);
    return out;
}

/* Apply processors from @from on; returns the final batch (new reference). */
static gd_batch *run_processors(const gd__pipeline *p, const char *src_name, size_t from,
                                gd_batch *b, bool **maskp, size_t *cap)
{
    gd_batch *cur = gd_batch_ref(b);
    for (size_t i = from; i < p->nprocs && gd_batch_len(cur); i++) {
        gd__inst *pr = p->procs[i];
        if (gd_batch_len(cur) > *cap) { /* an earlier processor added points */
            bool *nm = realloc(*maskp, gd_batch_len(cur) * sizeof(*nm));
            if (!nm)
                continue; /* out of memory: this processor is skipped */
            *maskp = nm;
            *cap = gd_batch_len(cur);
        }
        bool *mask = *maskp;
        enum sel s = select_points(&pr->common.match, src_name, cur, mask);
        gd_batch *next = NULL;
        if (s == SEL_NONE)
            continue;
        if (s == SEL_ALL) {
            next = run_processor(pr, cur);
        } else {
            gd_batch *sel = subset(cur, mask, true), *rest = subset(cur, mask, false);
            gd_batch *done = sel ? run_processor(pr, sel) : NULL;
            next = gd_batch_new(gd_batch_len(cur));
            if (!done || !rest || !next || append_all(next, done) < 0 ||
                append_all(next, rest) < 0) {
                gd_batch_unref(next);
                next = gd_batch_ref(cur); /* out of memory: pass on unprocessed */
            }
            gd_batch_freeze(next);
            gd_batch_unref(sel);
            gd_batch_unref(rest);
            gd_batch_unref(done);
        }
        gd_batch_unref(cur);
        cur = next;
    }
    return cur;
}

int gd__pipeline_submit(const gd__pipeline *p, gd__inst *src, size_t from, gd_batch *b,
                        int64_t block_deadline_ns)
{
    const char *src_name = src->head.name;
    size_t len0 = gd_batch_len(b);
    int rc = 0;

    gd_batch_freeze(b);
    if (len0 == 0) {
        gd_batch_unref(b);
        return 0;
    }
    bool *mask = malloc(len0 * sizeof(*mask));
    bool *routed = NULL;
    if (!mask) {
        gd__count_drop(&src->cnt, "out_of_memory", len0);
        gd_batch_unref(b);
        return GD_ENOMEM;
    }
    size_t cap = len0;
    gd_batch *cur = run_processors(p, src_name, from, b, &mask, &cap);
    gd_batch_unref(b);
    size_t len = gd_batch_len(cur);
    if (len > cap) {
        bool *nm = realloc(mask, len * sizeof(*mask));
        if (!nm) {
            gd__count_drop(&src->cnt, "out_of_memory", len);
            free(mask);
            gd_batch_unref(cur);
            return GD_ENOMEM;
        }
        mask = nm;
    }
    if (p->sink) {
        p->sink(p->sink_ctx, cur);
        free(mask);
        gd_batch_unref(cur);
        return 0;
    }
    bool all_routed = false;
    for (size_t i = 0; i < p->nouts && len; i++) {
        gd__inst *o = p->outs[i];
        enum sel s = select_points(&o->common.match, src_name, cur, mask);
        int prc = 0;
        if (s == SEL_NONE)
            continue;
        if (s == SEL_ALL) {
            all_routed = true;
            prc = gd__queue_push(&o->out.q, cur, block_deadline_ns);
        } else {
            if (!routed)
                routed = calloc(len, sizeof(*routed));
            for (size_t j = 0; routed && j < len; j++)
                routed[j] = routed[j] || mask[j];
            gd_batch *sel = subset(cur, mask, true);
            if (sel) {
                prc = gd__queue_push(&o->out.q, sel, block_deadline_ns);
            } else {
                size_t nsel = 0;
                for (size_t j = 0; j < len; j++)
                    nsel += mask[j];
                atomic_fetch_add(&o->cnt.received, nsel);
                gd__count_drop(&o->cnt, "out_of_memory", nsel);
            }
            gd_batch_unref(sel);
        }
        if (prc < 0)
            rc = prc;
    }
    if (!all_routed && len) {
        size_t unrouted = 0;
        for (size_t j = 0; j < len; j++)
            unrouted += !(routed && routed[j]);
        if (unrouted) {
            gd__count_drop(&src->cnt, "unrouted", unrouted);
            gd_log_ratelimited(&src->head, GD_WARN, "%zu points matched no output", unrouted);
        }
    }
    free(routed);
    free(mask);
    gd_batch_unref(cur);
    return rc;
}

bool gd__pipeline_blocked(const gd__pipeline *p, const gd__inst *src)
{
    (void)src; /* globs may select by measurement, unknown before collecting: any full queue counts */
    for (size_t i = 0; i < p->nouts; i++) {
        gd__inst *o = p->outs[i];
        if (gd__queue_is_full(&o->out.q))
            return true;
    }
    return false;
}

long gd__pipeline_index(const gd__pipeline *p, const gd__inst *proc)
{
    for (size_t i = 0; i < p->nprocs; i++)
        if (p->procs[i] == proc)
            return (long)i;
    return -1;
}
