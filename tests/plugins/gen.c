/* SPDX-License-Identifier: Apache-2.0 */
/* gen - a test input emitting sequence-numbered points at a set rate, so
 * fault tests can tell exactly which points arrived:
 *     gen,run=<run> seq=<n>i,v=<n*0.5> <time>
 * Each collect adds `batch` points and, with `rate`, sleeps so that the
 * points leave at about `rate` per second (run it with interval = 0).
 * After `total` points (0: never) it stops adding; with `exit_when_done` it
 * then asks the daemon to shut down. */
#include <gatherd/gatherd.h>
#include <stdlib.h>
#include <time.h>

struct cfg {
    char *run;
    int64_t batch;
    double rate;
    int64_t total;
    bool exit_when_done;
};

struct state {
    gd_instance *inst;
    struct cfg *cfg;
    int64_t seq;
    int64_t start_ns; /* monotonic, first collect */
    bool done;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int init(gd_instance *inst, void *cfg, void **state)
{
    struct state *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    *state = s;
    return 0;
}

static void destroy(void *state)
{
    free(state);
}

static int collect(void *state, gd_batch *out)
{
    struct state *s = state;
    const struct cfg *c = s->cfg;
    if (s->done)
        return 0;
    if (!s->start_ns)
        s->start_ns = mono_ns();
    int64_t n = c->batch;
    if (c->total > 0 && s->seq + n > c->total)
        n = c->total - s->seq;
    if (c->rate > 0) {
        /* when the last point of this batch is due */
        int64_t due = s->start_ns + (int64_t)((double)(s->seq + n) / c->rate * 1e9);
        int64_t now = mono_ns();
        if (due > now) {
            struct timespec ts = {.tv_sec = (due - now) / 1000000000LL,
                                  .tv_nsec = (due - now) % 1000000000LL};
            nanosleep(&ts, NULL);
        }
    }
    int64_t t = gd_now_ns();
    for (int64_t i = 0; i < n; i++, s->seq++) {
        gd_point *p = gd_batch_add(out, "gen", t + i);
        gd_point_tag(p, "run", c->run);
        gd_point_i64(p, "seq", s->seq);
        gd_point_f64(p, "v", (double)s->seq * 0.5);
    }
    if (c->total > 0 && s->seq >= c->total) {
        s->done = true;
        gd_log(s->inst, GD_INFO, "gen: all %lld points generated", (long long)s->seq);
        if (c->exit_when_done)
            gd_shutdown_request(s->inst, "gen finished");
    }
    return 0;
}

static const struct gd_option options[] = {
    GD_OPT_STRING("run", "1", 0, offsetof(struct cfg, run), "Value of the run tag"),
    GD_OPT_INT("batch", "100", 1, 1000000, 0, offsetof(struct cfg, batch), "Points per collect"),
    GD_OPT_DOUBLE("rate", "0", 0, 1e9, 0, offsetof(struct cfg, rate),
                  "Points per second (0: as fast as possible)"),
    GD_OPT_INT("total", "0", 0, 1e12, 0, offsetof(struct cfg, total),
               "Stop after this many points (0: never)"),
    GD_OPT_BOOL("exit_when_done", "false", 0, offsetof(struct cfg, exit_when_done),
                "Shut the daemon down after the last point"),
    GD_OPT_END,
};

static const struct gd_input_ops ops = {
    .struct_size = sizeof(struct gd_input_ops),
    .init = init,
    .destroy = destroy,
    .collect = collect,
};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "gen",
    .version = "1.0.0",
    .kind = GD_KIND_INPUT,
    .summary = "test input: sequence-numbered points at a set rate",
    .options = options,
    .config_size = sizeof(struct cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
