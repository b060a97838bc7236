/* SPDX-License-Identifier: Apache-2.0 */
/* Routing: processors in order, `match` on input name or measurement, output
 * selection, pass-through, and counting of filtered and unrouted points. */
#include "runtime.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static gd__loader loader;
static gd__cfgset set;
static gd__pipeline pipe_;
static char conf_path[64];

/* Build every instance of @text, initialise them (outputs get queues, no
 * writer threads) and assemble the pipeline. */
static void build(const char *text)
{
    strcpy(conf_path, "/tmp/gd-pipe-XXXXXX");
    int fd = mkstemp(conf_path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    const char *tp = getenv("GATHERD_TEST_PLUGINS"), *dev = getenv("GATHERD_PLUGIN_PATH");
    cr_assert(tp && dev, "run through meson test (plugin paths unset)");
    char path[2048];
    snprintf(path, sizeof(path), "%s:%s", tp, dev);
    setenv("GATHERD_PLUGIN_PATH", path, 1);
    memset(&loader, 0, sizeof(loader));
    gd__errs errs = {0};
    int rc = gd__cfgset_build(NULL, &loader, conf_path, &set, &errs);
    if (rc < 0)
        gd__errs_print(&errs, stderr);
    cr_assert_eq(rc, 0);
    gd__errs_free(&errs);
    memset(&pipe_, 0, sizeof(pipe_));
    pipe_.procs = calloc(set.n, sizeof(*pipe_.procs));
    pipe_.outs = calloc(set.n, sizeof(*pipe_.outs));
    for (size_t i = 0; i < set.n; i++) {
        cr_assert_eq(gd__inst_init(set.v[i]), 0);
        if (set.v[i]->kind == GD_KIND_PROCESSOR)
            pipe_.procs[pipe_.nprocs++] = set.v[i];
        else if (set.v[i]->kind == GD_KIND_OUTPUT)
            pipe_.outs[pipe_.nouts++] = set.v[i];
    }
}

static void teardown(void)
{
    gd__cfgset_free(&set);
    gd__loader_free(&loader);
    free(pipe_.procs);
    free(pipe_.outs);
    unlink(conf_path);
}

TestSuite(pipeline, .fini = teardown);

static gd__inst *inst(const char *name)
{
    for (size_t i = 0; i < set.n; i++)
        if (strcmp(set.v[i]->head.name, name) == 0)
            return set.v[i];
    cr_assert_fail("no instance %s", name);
    return NULL;
}

static gd_point *add(gd_batch *b, const char *m, int64_t v, const char *drop)
{
    gd_point *p = gd_batch_add(b, m, 1000 + v);
    if (drop)
        gd_point_tag(p, "drop", drop);
    gd_point_i64(p, "v", v);
    return p;
}

/* Every "v" reaching output @name, in order. */
static size_t drain(const char *name, int64_t *vals, size_t cap)
{
    gd__inst *o = inst(name);
    size_t n = 0;
    while (gd__queue_queued(&o->out.q) > 0) {
        gd_batch *b;
        gd__queue_close(&o->out.q);
        gd__qticket *t;
        if (gd__queue_take(&o->out.q, 100000, 0, &b, &t) < 0)
            break;
        for (size_t i = 0; i < gd_batch_len(b) && n < cap; i++)
            vals[n++] = gd_point_field_get(gd_batch_point(b, i), "v")->v.i64;
        gd__queue_done(&o->out.q, gd_batch_len(b), t, 0);
        gd_batch_unref(b);
    }
    return n;
}

static const char *two_procs =
    "inputs = ( { plugin = \"good_input\"; name = \"lab\"; },\n"
    "           { plugin = \"good_input\"; name = \"field\"; } );\n"
    "processors = ( { plugin = \"test_proc\"; name = \"x2\"; factor = 2; match = [\"lab\"]; },\n"
    "               { plugin = \"test_proc\"; name = \"x10\"; factor = 10; match = [\"hot\"]; } );\n"
    "outputs = ( { plugin = \"null\"; name = \"all\"; } );\n";

Test(pipeline, processors_apply_in_order_to_matching_input)
{
    build(two_procs);
    gd_batch *b = gd_batch_new(4);
    add(b, "cold", 1, NULL);
    add(b, "hot", 2, NULL);
    cr_assert_eq(gd__pipeline_submit(&pipe_, inst("lab"), 0, b, 0), 0);
    int64_t v[8];
    cr_assert_eq(drain("all", v, 8), 2);
    /* x2 takes the whole batch (input name), x10 only measurement "hot". */
    int64_t cold = v[0] == 2 ? v[0] : v[1], hot = v[0] == 2 ? v[1] : v[0];
    cr_assert_eq(cold, 2);
    cr_assert_eq(hot, 40);
}

Test(pipeline, non_matching_points_bypass_a_processor)
{
    build(two_procs);
    gd_batch *b = gd_batch_new(4);
    add(b, "cold", 1, NULL);
    add(b, "hot", 2, NULL);
    add(b, "cold", 3, NULL);
    gd__pipeline_submit(&pipe_, inst("field"), 0, b, 0);
    int64_t v[8];
    size_t n = drain("all", v, 8);
    cr_assert_eq(n, 3);
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    cr_assert_eq(sum, 1 + 20 + 3, "only 'hot' went through x10; x2 matches input lab only");
    cr_assert_eq(atomic_load(&inst("x10")->cnt.received), 1);
    cr_assert_eq(atomic_load(&inst("x2")->cnt.received), 0);
}

Test(pipeline, dropped_points_are_counted_as_filtered)
{
    build(two_procs);
    gd_batch *b = gd_batch_new(4);
    add(b, "m", 1, "yes");
    add(b, "m", 2, "no");
    gd__pipeline_submit(&pipe_, inst("lab"), 0, b, 0);
    int64_t v[4];
    cr_assert_eq(drain("all", v, 4), 1);
    cr_assert_eq(v[0], 4);
    cr_assert_eq(gd__dropped(&inst("x2")->cnt, "filtered"), 1);
}

Test(pipeline, pass_forwards_the_batch_untouched)
{
    build("inputs = ( { plugin = \"good_input\"; name = \"a\"; } );\n"
          "processors = ( { plugin = \"test_proc\"; name = \"same\"; factor = 1; } );\n"
          "outputs = ( { plugin = \"null\"; name = \"all\"; } );\n");
    gd_batch *b = gd_batch_new(2);
    add(b, "m", 7, NULL);
    gd_batch_ref(b);
    gd__pipeline_submit(&pipe_, inst("a"), 0, b, 0);
    gd__inst *o = inst("all");
    gd_batch *got;
    gd__queue_close(&o->out.q);
    gd__qticket *t;
    cr_assert_eq(gd__queue_take(&o->out.q, 100, 0, &got, &t), 0);
    cr_assert_eq(got, b, "the very same batch, no copy");
    gd__queue_done(&o->out.q, 1, t, 0);
    gd_batch_unref(got);
    gd_batch_unref(b);
    cr_assert_eq(atomic_load(&inst("same")->cnt.delivered), 1);
}

Test(pipeline, outputs_take_only_what_they_match_and_the_rest_is_counted_unrouted)
{
    build("inputs = ( { plugin = \"good_input\"; name = \"a\"; } );\n"
          "outputs = ( { plugin = \"null\"; name = \"temps\"; match = [\"temp*\"]; },\n"
          "            { plugin = \"null\"; name = \"from_b\"; match = [\"b\"]; } );\n");
    gd_batch *b = gd_batch_new(4);
    add(b, "temperature", 1, NULL);
    add(b, "humidity", 2, NULL);
    add(b, "temp_c", 3, NULL);
    gd__pipeline_submit(&pipe_, inst("a"), 0, b, 0);
    int64_t v[4];
    cr_assert_eq(drain("temps", v, 4), 2);
    cr_assert_eq(v[0], 1);
    cr_assert_eq(v[1], 3);
    cr_assert_eq(drain("from_b", v, 4), 0);
    cr_assert_eq(gd__dropped(&inst("a")->cnt, "unrouted"), 1);
    cr_assert_eq(atomic_load(&inst("temps")->cnt.received), 2);
}

Test(match, globs_select_by_source_or_measurement)
{
    char *pats[] = {"chamber-*", "temp?"};
    gd_strlist m = {.v = pats, .n = 2};
    gd_strlist none = {0};
    cr_assert(gd__match(&m, "chamber-7", "x"));
    cr_assert(gd__match(&m, "other", "temp1"));
    cr_assert_not(gd__match(&m, "other", "temp10"));
    cr_assert(gd__match(&none, "anything", "at-all"));
}
