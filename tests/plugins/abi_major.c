/* SPDX-License-Identifier: Apache-2.0 */
/* abi_major - claims a future ABI major: the loader must refuse it. */
#include <gatherd/gatherd.h>

static int collect(void *state, gd_batch *out)
{
    (void)state;
    (void)out;
    return 0;
}

static const struct gd_input_ops ops = {.struct_size = sizeof(ops), .collect = collect};

static const struct gd_plugin plugin = {
    .abi_major = GD_ABI_MAJOR + 1,
    .abi_minor = 0,
    .struct_size = sizeof(struct gd_plugin),
    .name = "abi_major",
    .version = "1.0.0",
    .kind = GD_KIND_INPUT,
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
