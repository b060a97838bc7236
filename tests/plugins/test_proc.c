/* SPDX-License-Identifier: Apache-2.0 */
/* test_proc - a processor for pipeline tests: multiplies the integer field
 * "v" by `factor`, drops points tagged drop=yes, and passes batches through
 * untouched (GD_PASS) when factor is 1. */
#include <gatherd/gatherd.h>
#include <stdlib.h>
#include <string.h>

struct cfg {
    int64_t factor;
};

static int init(gd_instance *inst, void *cfg, void **state)
{
    (void)inst;
    *state = cfg;
    return 0;
}

static int process(void *state, const gd_batch *in, gd_batch *out)
{
    const struct cfg *c = state;
    if (c->factor == 1)
        return GD_PASS;
    for (size_t i = 0; i < gd_batch_len(in); i++) {
        const gd_point *src = gd_batch_point(in, i);
        const char *drop = gd_point_tag_get(src, "drop");
        if (drop && strcmp(drop, "yes") == 0)
            continue;
        gd_point *p = gd_batch_add(out, gd_point_measurement(src, NULL), gd_point_time(src));
        size_t n;
        const gd_tag *tags = gd_point_tags(src, &n);
        for (size_t t = 0; t < n; t++)
            gd_point_tag(p, tags[t].key, tags[t].value);
        const gd_field *f = gd_point_fields(src, &n);
        for (size_t k = 0; k < n; k++) {
            if (strcmp(f[k].key, "v") == 0 && f[k].type == GD_I64)
                gd_point_i64(p, "v", f[k].v.i64 * c->factor);
            else
                gd_point_field(p, &f[k]);
        }
    }
    return 0;
}

static const struct gd_option options[] = {
    GD_OPT_INT("factor", "2", -1000, 1000, 0, offsetof(struct cfg, factor), "Multiplier of v"),
    GD_OPT_END,
};

static const struct gd_processor_ops ops = {
    .struct_size = sizeof(struct gd_processor_ops),
    .init = init,
    .process = process,
};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "test_proc",
    .version = "1.0.0",
    .kind = GD_KIND_PROCESSOR,
    .summary = "test processor",
    .options = options,
    .config_size = sizeof(struct cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
