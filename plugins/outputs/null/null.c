/* SPDX-License-Identifier: Apache-2.0 */
/*
 * null.c - discard every batch, reporting it delivered at once. The sink of
 * the pipeline benchmark (`sim -> null`): it measures everything but output.
 */
#include <gatherd/gatherd.h>
#include <inttypes.h>
#include <stdlib.h>

/* No options of its own; the config struct is empty (config_size 0). */
static const struct gd_option null_options[] = {
    GD_OPT_END,
};

struct null_out {
    gd_instance *inst;
    uint64_t points; /* written by the writer thread only */
    uint64_t batches;
};

static int null_write(void *state, gd_batch *b, gd_done_fn done, void *token)
{
    struct null_out *s = state;
    s->points += gd_batch_len(b);
    s->batches++;
    done(token, GD_DELIVERED, NULL);
    return 0;
}

static void null_destroy(void *state)
{
    struct null_out *s = state;
    if (!s)
        return;
    gd_log(s->inst, GD_DEBUG, "null: %" PRIu64 " points in %" PRIu64 " batches", s->points,
           s->batches);
    free(s);
}

static int null_init(gd_instance *inst, void *cfg, void **state)
{
    (void)cfg;
    struct null_out *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    *state = s;
    return 0;
}

static const struct gd_output_ops null_ops = {
    .struct_size = sizeof(struct gd_output_ops),
    .init = null_init,
    .destroy = null_destroy,
    .write = null_write,
    .flush = NULL,
};

static const struct gd_plugin null_plugin = {
    GD_PLUGIN_ABI,
    .name = "null",
    .version = "0.1.0",
    .kind = GD_KIND_OUTPUT,
    .summary = "discard every point (benchmark sink)",
    .options = null_options,
    .config_size = 0,
    .ops = &null_ops,
};

GD_PLUGIN_ENTRY
{
    return &null_plugin;
}
