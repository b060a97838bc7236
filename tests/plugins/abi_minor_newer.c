/* SPDX-License-Identifier: Apache-2.0 */
/* abi_minor_newer - claims a newer ABI minor: the loader must refuse it. */
#include <gatherd/gatherd.h>

static int collect(void *state, gd_batch *out)
{
    (void)state;
    (void)out;
    return 0;
}

static const struct gd_input_ops ops = {.struct_size = sizeof(ops), .collect = collect};

static const struct gd_plugin plugin = {
    .abi_major = GD_ABI_MAJOR,
    .abi_minor = GD_ABI_MINOR + 1,
    .struct_size = sizeof(struct gd_plugin),
    .name = "abi_minor_newer",
    .version = "1.0.0",
    .kind = GD_KIND_INPUT,
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
