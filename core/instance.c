/* SPDX-License-Identifier: Apache-2.0 */
#include "instance.h"
#include "options.h"
#include <stdlib.h>
#include <string.h>

#define G(field) offsetof(struct gd__global, field)
#define C(field) offsetof(struct gd__common, field)
#define Q(field) offsetof(struct gd__queue_opts, field)

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const overflows[] = {"block", "drop_oldest", "spool", NULL};
static const char *const spool_syncs[] = {"batch", "interval", "none", NULL};

const struct gd_option gd__global_options[] = {
    GD_OPT_DURATION("interval", "10s", 0.001, 86400, 0, G(interval),
                    "Default collect interval of polled inputs"),
    GD_OPT_INT("workers", "4", 1, 128, 0, G(workers),
               "Worker threads for blocking collects (read at start-up)"),
    GD_OPT_STRING("plugin_dir", NULL, 0, G(plugin_dir),
                  "Directory searched for plugins after $GATHERD_PLUGIN_PATH"),
    GD_OPT_STRING("include_dir", NULL, 0, G(include_dir),
                  "Drop-in directory (default: conf.d next to the main file)"),
    GD_OPT_STRING("spool_dir", "/var/lib/gatherd/spool", 0, G(spool_dir),
                  "Directory for disk spooling"),
    GD_OPT_DURATION("shutdown_timeout", "10s", 0, 3600, 0, G(shutdown_timeout),
                    "How long queues may take to drain on shutdown or reload"),
    GD_OPT_ENUM("log_level", "info", log_levels, 0, G(log_level), "Log threshold"),
    GD_OPT_ENUM("log_format", "text", log_formats, 0, G(log_format),
                "Log line format on stderr"),
    GD_OPT_END,
};

#define COMMON_NAME                                                                                \
    GD_OPT_STRING("plugin", NULL, GD_OF_REQUIRED, C(plugin), "Plugin to load"),                    \
        GD_OPT_STRING("name", NULL, 0, C(name), "Instance name (default: the plugin name)")

const struct gd_option gd__input_options[] = {
    COMMON_NAME,
    GD_OPT_DURATION("interval", NULL, 0, 86400, 0, C(interval),
                    "Collect interval (default: global.interval; 0: continuous)"),
    GD_OPT_BOOL("align", "false", 0, C(align),
                "Run at wall-clock multiples of the interval"),
    GD_OPT_DURATION("jitter", "0", 0, 3600, 0, C(jitter),
                    "Random delay of the first collect, up to this"),
    GD_OPT_KV("tags", 0, C(tags), "Tags added to every point of this input"),
    GD_OPT_END,
};

const struct gd_option gd__processor_options[] = {
    COMMON_NAME,
    GD_OPT_STRLIST("match", 0, C(match),
                   "Globs on input name or measurement (default: everything)"),
    GD_OPT_END,
};

static const struct gd_option queue_options[] = {
    GD_OPT_INT("max_points", "100000", 1, 1e12, 0, Q(max_points), "Queue bound in points"),
    GD_OPT_INT("max_bytes", "67108864", 1024, 1e15, 0, Q(max_bytes), "Queue bound in bytes"),
    GD_OPT_ENUM("overflow", "block", overflows, 0, Q(overflow),
                "When full: block (backpressure), drop_oldest, or spool (to disk under "
                "global.spool_dir/<output name>, replayed after a restart)"),
    GD_OPT_BOOL("spool_always", "false", 0, Q(spool_always),
                "spool: write every batch to disk, not only what does not fit in memory"),
    GD_OPT_ENUM("spool_sync", "batch", spool_syncs, 0, Q(spool_sync),
                "spool: fdatasync after every batch, every spool_sync_interval, or never"),
    GD_OPT_DURATION("spool_sync_interval", "1s", 0.001, 3600, 0, Q(spool_sync_interval),
                    "spool: sync period with spool_sync = interval"),
    GD_OPT_INT("spool_max_bytes", "1073741824", 65536, 1e15, 0, Q(spool_max_bytes),
               "spool: disk bound; past it the oldest segments are dropped and counted"),
    GD_OPT_END,
};

const struct gd_option gd__output_options[] = {
    COMMON_NAME,
    GD_OPT_STRLIST("match", 0, C(match),
                   "Globs on input name or measurement (default: everything)"),
    GD_OPT_INT("batch_points", "1000", 1, 10000000, 0, C(batch_points),
               "Points per write (target)"),
    GD_OPT_INT("writers", "1", 1, 64, 0, C(writers),
               "Parallel writer threads, each with its own connection (outputs that "
               "support it)"),
    GD_OPT_DURATION("flush_interval", "1s", 0, 3600, 0, C(flush_interval),
                    "Longest wait before a partial batch is written"),
    GD_OPT_INT("max_retries", "-1", -1, 1e9, 0, C(max_retries),
               "Retries of one batch before it is dropped (-1: unlimited)"),
    GD_OPT_DURATION("max_retry_age", "0", 0, 1e9, 0, C(max_retry_age),
                    "Drop a batch still failing after this long (0: never)"),
    GD_OPT_DURATION("retry_initial", "100ms", 0.001, 3600, 0, C(retry_initial),
                    "First retry backoff ceiling"),
    GD_OPT_DURATION("retry_max", "30s", 0.001, 86400, 0, C(retry_max),
                    "Largest retry backoff"),
    GD_OPT_GROUP("queue", queue_options, 0, C(queue), "Queue bounds and overflow policy"),
    GD_OPT_END,
};

const struct gd_option *gd__common_options(int kind)
{
    switch (kind) {
    case GD_KIND_INPUT: return gd__input_options;
    case GD_KIND_PROCESSOR: return gd__processor_options;
    default: return gd__output_options;
    }
}

gd__inst *gd__inst_build(struct gd__rt *rt, gd__loader *l, const gd__conf_inst *ci,
                         const struct gd__global *g, gd__errs *errs)
{
    const gd__plugin_lib *lib = NULL;
    char *why = NULL;
    const char *kind = gd__kind_name(ci->kind);
    size_t nerr = errs->n;

    if (gd__loader_get(l, ci->plugin, &lib, &why) < 0) {
        gd__errs_add(errs, "%s:%d: %s '%s': %s", ci->file, ci->line, kind, ci->name,
                     why ? why : "cannot load plugin");
        free(why);
        return NULL;
    }
    if ((int)lib->desc.kind != ci->kind) {
        gd__errs_add(errs, "%s:%d: %s '%s': plugin '%s' is an %s plugin, not an %s", ci->file,
                     ci->line, kind, ci->name, ci->plugin, gd__kind_name((int)lib->desc.kind),
                     kind);
        return NULL;
    }
    gd__inst *in = calloc(1, sizeof(*in));
    if (!in)
        return NULL;
    in->kind = ci->kind;
    in->lib = lib;
    in->rt = rt;
    pthread_mutex_init(&in->proc_lock, NULL);
    if (asprintf(&in->where, "%s:%d", ci->file, ci->line) < 0)
        in->where = NULL;
    if (g && g->spool_dir && asprintf(&in->spool_dir, "%s/%s", g->spool_dir, ci->name) < 0)
        in->spool_dir = NULL;
    in->cfg = calloc(1, lib->desc.config_size ? lib->desc.config_size : 1);

    char *ctx = NULL;
    if (asprintf(&ctx, "%s '%s' (plugin %s)", kind, ci->name, ci->plugin) < 0)
        ctx = NULL;
    struct gd__optset sets[2] = {
        {.opts = gd__common_options(ci->kind), .dst = &in->common},
        {.opts = lib->desc.options, .dst = in->cfg},
    };
    static const struct gd_option no_options[] = {GD_OPT_END};
    if (!sets[1].opts)
        sets[1].opts = no_options;
    gd__opts_fill(sets, 2, ci->setting, ctx ? ctx : kind, errs);
    free(ctx);

    if (in->common.plugin && strcmp(in->common.plugin, ci->plugin) != 0)
        gd__errs_add(errs, "%s:%d: %s '%s': option 'plugin': must be a literal plugin name",
                     ci->file, ci->line, kind, ci->name);
    if (in->kind == GD_KIND_OUTPUT && in->common.writers > 1 &&
        !(lib->desc.flags & GD_PLUGIN_PARALLEL))
        gd__errs_add(errs, "%s:%d: %s '%s' (plugin %s): option 'writers': the plugin supports "
                     "one writer only", ci->file, ci->line, kind, ci->name, ci->plugin);
    if (!in->common.name)
        in->common.name = strdup(ci->plugin);
    if (in->kind == GD_KIND_INPUT && !config_setting_get_member(ci->setting, "interval"))
        in->common.interval = g->interval;
    gd_instance_init_head(&in->head, in->common.name, lib->desc.name, kind);
    if (in->kind == GD_KIND_INPUT && lib->ops.input.collect)
        in->head.interval = in->common.interval;

    gd__opts_canon(gd__common_options(in->kind), &in->common, &in->canon);
    gd_buf_puts(&in->canon, "|");
    gd__opts_canon(sets[1].opts, in->cfg, &in->canon);

    if (errs->n > nerr) {
        gd__inst_free(in);
        return NULL;
    }
    return in;
}

int gd__inst_init(gd__inst *in)
{
    const gd__plugin_lib *lib = in->lib;
    gd_init_fn init = NULL;
    int rc = 0;

    gd__opts_redact(lib->desc.options, in->cfg);
    switch (in->kind) {
    case GD_KIND_INPUT: init = lib->ops.input.init; break;
    case GD_KIND_PROCESSOR: init = lib->ops.processor.init; break;
    default: init = lib->ops.output.init; break;
    }
    size_t n = in->kind == GD_KIND_OUTPUT ? (size_t)in->common.writers : 1;
    in->states = calloc(n, sizeof(*in->states));
    if (!in->states)
        return GD_ENOMEM;
    for (; in->nstates < n; in->nstates++) {
        if (init)
            rc = init(&in->head, in->cfg, &in->states[in->nstates]);
        if (rc < 0) {
            gd_log(&in->head, GD_ERROR, "init failed: %s", gd_strerror(rc));
            break;
        }
    }
    in->inited = in->nstates > 0; /* destroy() what was made */
    in->state = in->states[0];
    if (rc < 0)
        return rc;
    if (in->kind == GD_KIND_OUTPUT) {
        const struct gd__common *c = &in->common;
        gd__output_params p = {
            .batch_points = (size_t)c->batch_points,
            .flush_ns = (int64_t)(c->flush_interval * 1e9),
            .max_retries = c->max_retries,
            .max_retry_age_ns = (int64_t)(c->max_retry_age * 1e9),
            .retry_initial_ns = (int64_t)(c->retry_initial * 1e9),
            .retry_max_ns = (int64_t)(c->retry_max * 1e9),
        };
        rc = gd__output_init(&in->out, &in->head, &lib->ops.output, in->states, in->nstates,
                             &in->cnt, &p,
                             (size_t)c->queue.max_points, (size_t)c->queue.max_bytes,
                             c->queue.overflow);
        if (rc < 0)
            return rc;
        in->out_inited = true;
        if (c->queue.overflow == GD__OVF_SPOOL) {
            gd__spool_opts so = {
                .sync = c->queue.spool_sync,
                .sync_interval_ns = (int64_t)(c->queue.spool_sync_interval * 1e9),
                .max_bytes = (uint64_t)c->queue.spool_max_bytes,
            };
            rc = in->spool_dir ? gd__queue_attach_spool(&in->out.q, in->spool_dir, &so,
                                                        c->queue.spool_always)
                               : GD_ENOMEM;
            if (rc < 0) {
                gd_log(&in->head, GD_ERROR, "cannot open the spool %s: %s",
                       in->spool_dir ? in->spool_dir : "", gd_strerror(rc));
                return rc;
            }
        }
    }
    return 0;
}

void gd__inst_free(gd__inst *in)
{
    if (!in)
        return;
    if (in->out_inited) {
        gd__output_fini(&in->out);
        in->out_inited = false;
    }
    if (in->inited) {
        gd_destroy_fn destroy;
        switch (in->kind) {
        case GD_KIND_INPUT: destroy = in->lib->ops.input.destroy; break;
        case GD_KIND_PROCESSOR: destroy = in->lib->ops.processor.destroy; break;
        default: destroy = in->lib->ops.output.destroy; break;
        }
        for (size_t i = 0; destroy && i < in->nstates; i++)
            destroy(in->states[i]);
    }
    free(in->states);
    if (in->lib->desc.options)
        gd__opts_free(in->lib->desc.options, in->cfg);
    free(in->cfg);
    gd__opts_free(gd__common_options(in->kind), &in->common);
    gd_instance_fini_head(&in->head);
    pthread_mutex_destroy(&in->proc_lock);
    gd_buf_free(&in->canon);
    free(in->where);
    free(in->spool_dir);
    free(in);
}

void gd__inst_summary(const gd__inst *in, FILE *f)
{
    const struct gd__common *c = &in->common;
    fprintf(f, "%-9s %-20s plugin=%s", gd__kind_name(in->kind), c->name, in->lib->desc.name);
    if (in->kind == GD_KIND_INPUT) {
        if (in->lib->ops.input.collect)
            fprintf(f, " interval=%gs%s", c->interval, c->align ? " aligned" : "");
        else
            fprintf(f, " event-driven");
        if (c->tags.n)
            fprintf(f, " tags=%zu", c->tags.n);
    }
    if (in->kind != GD_KIND_INPUT && c->match.n) {
        fprintf(f, " match=");
        for (size_t i = 0; i < c->match.n; i++)
            fprintf(f, "%s%s", i ? "," : "", c->match.v[i]);
    }
    if (in->kind == GD_KIND_OUTPUT)
        fprintf(f, " batch_points=%lld writers=%lld flush_interval=%gs queue=%lld/%s",
                (long long)c->batch_points, (long long)c->writers, c->flush_interval,
                (long long)c->queue.max_points,
                c->queue.overflow == GD__OVF_DROP_OLDEST ? "drop_oldest" : "block");
    fprintf(f, "  (%s)\n", in->where ? in->where : "?");
}
