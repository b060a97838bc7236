/* SPDX-License-Identifier: Apache-2.0 */
/* bad_table - an option whose default violates its own bounds. */
#include <gatherd/gatherd.h>

struct cfg {
    int64_t port;
};

static int collect(void *state, gd_batch *out)
{
    (void)state;
    (void)out;
    return 0;
}

static const struct gd_option options[] = {
    GD_OPT_INT("port", "70000", 1, 65535, 0, offsetof(struct cfg, port), "TCP port"),
    GD_OPT_END,
};

static const struct gd_input_ops ops = {.struct_size = sizeof(ops), .collect = collect};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "bad_table",
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
