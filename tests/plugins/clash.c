/* SPDX-License-Identifier: Apache-2.0 */
/* clash - declares an option the core handles for every input: refused. */
#include <gatherd/gatherd.h>

struct cfg {
    double interval;
};

static int collect(void *state, gd_batch *out)
{
    (void)state;
    (void)out;
    return 0;
}

static const struct gd_option options[] = {
    GD_OPT_DURATION("interval", "1s", 0, 60, 0, offsetof(struct cfg, interval), "Clashes"),
    GD_OPT_END,
};

static const struct gd_input_ops ops = {.struct_size = sizeof(ops), .collect = collect};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "clash",
    .version = "1.0.0",
    .kind = GD_KIND_INPUT,
    .options = options,
    .config_size = sizeof(struct cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
