/* SPDX-License-Identifier: Apache-2.0 */
/* good_input - a minimal polled input for loader and pipeline tests:
 * each collect adds `count` points "t,src=good v=<seq>i" with rising seq. */
#include <gatherd/gatherd.h>
#include <stdlib.h>
#include <time.h>

struct cfg {
    int64_t count;
    char *secret;
    double sleep; /* seconds each collect blocks, like a slow device */
};

struct state {
    struct cfg *cfg;
    int64_t seq;
};

static int init(gd_instance *inst, void *cfg, void **state)
{
    struct state *s = calloc(1, sizeof(*s));
    (void)inst;
    if (!s)
        return GD_ENOMEM;
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
    if (s->cfg->sleep > 0) {
        struct timespec ts = {.tv_sec = (time_t)s->cfg->sleep,
                              .tv_nsec = (long)((s->cfg->sleep - (double)(time_t)s->cfg->sleep) * 1e9)};
        nanosleep(&ts, NULL);
    }
    for (int64_t i = 0; i < s->cfg->count; i++) {
        gd_point *p = gd_batch_add(out, "t", gd_now_ns());
        gd_point_tag(p, "src", "good");
        gd_point_i64(p, "v", s->seq++);
    }
    return 0;
}

static const struct gd_option options[] = {
    GD_OPT_INT("count", "1", 0, 1000000, 0, offsetof(struct cfg, count), "Points per collect"),
    GD_OPT_STRING("secret", NULL, GD_OF_SENSITIVE, offsetof(struct cfg, secret), "A secret"),
    GD_OPT_DURATION("sleep", "0", 0, 3600, 0, offsetof(struct cfg, sleep), "Block each collect"),
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
    .name = "good_input",
    .version = "1.0.0",
    .kind = GD_KIND_INPUT,
    .summary = "test input",
    .options = options,
    .config_size = sizeof(struct cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
