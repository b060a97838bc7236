/* SPDX-License-Identifier: Apache-2.0 */
/* proc_harness.c - see proc_harness.h. */
#include "proc_harness.h"
#include "runtime.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static gd__loader loader;
static gd__cfgset set;
static bool loaded;
static char conf_path[64];
static int last_rc;
static gd_buf text;

/* ---- a test host: captured emits and manual timers --------------------- */

#define MAX_EMITS 256
#define MAX_TIMERS 32

static struct {
    gd_instance *inst;
    gd_batch *b;
} emits[MAX_EMITS];
static size_t nemits;

struct gd_timer {
    gd_instance *inst;
    void (*cb)(void *ctx);
    void *ctx;
    gd_free_fn ctx_free;
    bool live;
};
static struct gd_timer timers[MAX_TIMERS];

static int host_emit(gd_instance *inst, gd_batch *b)
{
    gd_batch_freeze(b);
    if (nemits == MAX_EMITS) {
        gd_batch_unref(b);
        cr_assert_fail("test host: too many gd_emit() calls");
    }
    emits[nemits].inst = inst;
    emits[nemits++].b = b;
    return 0;
}

static void host_count_drop(gd_instance *inst, const char *reason, uint64_t n)
{
    gd__count_drop(&((gd__inst *)inst)->cnt, reason, n);
}

static void host_count_error(gd_instance *inst)
{
    atomic_fetch_add(&((gd__inst *)inst)->cnt.errors, 1);
}

static int host_timer_start(gd_instance *inst, uint64_t first_ms, uint64_t repeat_ms,
                            void (*cb)(void *ctx), void *ctx, gd_free_fn ctx_free, gd_timer **out)
{
    (void)first_ms;
    (void)repeat_ms;
    for (size_t i = 0; i < MAX_TIMERS; i++) {
        if (!timers[i].live) {
            timers[i] = (struct gd_timer){inst, cb, ctx, ctx_free, true};
            if (out)
                *out = &timers[i];
            return 0;
        }
    }
    return GD_ENOMEM;
}

static void host_timer_stop(gd_timer *t)
{
    if (!t || !t->live)
        return;
    t->live = false;
    if (t->ctx_free)
        t->ctx_free(t->ctx);
}

static int host_call_on_loop(gd_instance *inst, void (*cb)(void *ctx), void *ctx,
                             gd_free_fn ctx_free)
{
    (void)inst;
    cb(ctx);
    if (ctx_free)
        ctx_free(ctx);
    return 0;
}

static const struct gd_core_host test_host = {
    .struct_size = sizeof(struct gd_core_host),
    .emit = host_emit,
    .count_drop = host_count_drop,
    .count_error = host_count_error,
    .timer_start = host_timer_start,
    .timer_stop = host_timer_stop,
    .call_on_loop = host_call_on_loop,
};

/* ---- loading ------------------------------------------------------------ */

static int build(const char *conf, gd__errs *errs)
{
    gdp_unload();
    strcpy(conf_path, "/tmp/gd-proc-XXXXXX");
    int fd = mkstemp(conf_path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, conf, strlen(conf)), (ssize_t)strlen(conf));
    close(fd);
    const char *tp = getenv("GATHERD_TEST_PLUGINS"), *dev = getenv("GATHERD_PLUGIN_PATH");
    cr_assert(tp && dev, "run through meson test (plugin paths unset)");
    if (!strstr(dev, tp)) {
        char path[2048];
        snprintf(path, sizeof(path), "%s:%s", tp, dev);
        setenv("GATHERD_PLUGIN_PATH", path, 1);
    }
    gd_core_attach(&test_host);
    memset(&loader, 0, sizeof(loader));
    memset(&set, 0, sizeof(set));
    int rc = gd__cfgset_build(NULL, &loader, conf_path, &set, errs);
    loaded = true;
    return rc;
}

void gdp_load(const char *conf)
{
    gd__errs errs = {0};
    int rc = build(conf, &errs);
    if (rc < 0)
        gd__errs_print(&errs, stderr);
    gd__errs_free(&errs);
    cr_assert_eq(rc, 0, "config rejected (see stderr)");
    for (size_t i = 0; i < set.n; i++)
        cr_assert_eq(gd__inst_init(set.v[i]), 0, "init of %s failed", set.v[i]->head.name);
}

char *gdp_load_error(const char *conf)
{
    gd__errs errs = {0};
    int rc = build(conf, &errs);
    char *out = NULL;
    size_t len = 0;
    if (rc < 0) {
        FILE *f = open_memstream(&out, &len);
        gd__errs_print(&errs, f);
        fclose(f);
    }
    gd__errs_free(&errs);
    if (rc < 0)
        return out;
    for (size_t i = 0; i < set.n; i++) {
        int irc = gd__inst_init(set.v[i]);
        if (irc < 0) {
            char *s = NULL;
            if (asprintf(&s, "init failed: %s", gd_strerror(irc)) < 0)
                s = NULL;
            return s;
        }
    }
    return NULL;
}

void gdp_unload(void)
{
    for (size_t i = 0; i < MAX_TIMERS; i++)
        host_timer_stop(&timers[i]);
    for (size_t i = 0; i < nemits; i++)
        gd_batch_unref(emits[i].b);
    nemits = 0;
    if (loaded) {
        gd__cfgset_free(&set);
        gd__loader_free(&loader);
        unlink(conf_path);
        loaded = false;
    }
    gd_buf_free(&text);
    memset(&text, 0, sizeof(text));
}

static gd__inst *inst(const char *name)
{
    for (size_t i = 0; i < set.n; i++)
        if (strcmp(set.v[i]->head.name, name) == 0)
            return set.v[i];
    cr_assert_fail("no instance named %s", name);
    return NULL;
}

void *gdp_state(const char *name)
{
    return inst(name)->state;
}

/* ---- running ------------------------------------------------------------ */

char *gdp_lp(const gd_batch *b)
{
    gd_buf buf = {0};
    size_t skipped = 0;
    cr_assert_eq(gd_lp_encode_batch(&buf, b, GD_PREC_NS, &skipped), 0);
    cr_assert_eq(skipped, 0, "a point the processor produced cannot be encoded");
    char *s = strndup(buf.len ? buf.data : "", buf.len);
    gd_buf_free(&buf);
    return s;
}

static const char *as_text(const gd_batch *b)
{
    char *s = gdp_lp(b);
    gd_buf_reset(&text);
    gd_buf_append(&text, s, strlen(s));
    gd_buf_append(&text, "", 1);
    free(s);
    return text.data;
}

const char *gdp_process(const char *name, gd_batch *in)
{
    gd__inst *pr = inst(name);
    gd_batch_freeze(in);
    size_t len = gd_batch_len(in);
    gd_batch *out = gd_batch_new(len);
    cr_assert_not_null(out);
    atomic_fetch_add(&pr->cnt.received, len);
    last_rc = pr->lib->ops.processor.process(pr->state, in, out);
    const char *res;
    if (last_rc == GD_PASS || last_rc < 0) {
        if (last_rc < 0)
            atomic_fetch_add(&pr->cnt.errors, 1);
        res = as_text(in);
    } else {
        gd_batch_freeze(out);
        if (gd_batch_len(out) < len)
            gd__count_drop(&pr->cnt, "filtered", len - gd_batch_len(out));
        res = as_text(out);
    }
    gd_batch_unref(out);
    gd_batch_unref(in);
    return res;
}

int gdp_last_rc(void)
{
    return last_rc;
}

const char *gdp_flush(const char *name)
{
    gd__inst *pr = inst(name);
    gd_batch *out = gd_batch_new(16);
    cr_assert_not_null(out);
    if (pr->lib->ops.processor.flush)
        cr_assert_geq(pr->lib->ops.processor.flush(pr->state, out), 0);
    gd_batch_freeze(out);
    const char *res = as_text(out);
    gd_batch_unref(out);
    return res;
}

const char *gdp_emitted(const char *name)
{
    gd__inst *pr = inst(name);
    gd_buf_reset(&text);
    size_t keep = 0;
    for (size_t i = 0; i < nemits; i++) {
        if (emits[i].inst != &pr->head) {
            emits[keep++] = emits[i];
            continue;
        }
        char *s = gdp_lp(emits[i].b);
        gd_buf_append(&text, s, strlen(s));
        free(s);
        gd_batch_unref(emits[i].b);
    }
    nemits = keep;
    gd_buf_append(&text, "", 1);
    return text.data;
}

int gdp_fire_timers(const char *name)
{
    gd__inst *pr = inst(name);
    int n = 0;
    for (size_t i = 0; i < MAX_TIMERS; i++) {
        if (timers[i].live && timers[i].inst == &pr->head) {
            timers[i].cb(timers[i].ctx);
            n++;
        }
    }
    return n;
}

uint64_t gdp_dropped(const char *name, const char *reason)
{
    return gd__dropped(&inst(name)->cnt, reason);
}

uint64_t gdp_errors(const char *name)
{
    return atomic_load(&inst(name)->cnt.errors);
}
