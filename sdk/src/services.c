/* SPDX-License-Identifier: Apache-2.0 */
/* services.c - plugin services dispatched to the daemon through host.h. */
#include "host.h"
#include <stdatomic.h>
#include <string.h>

static _Atomic(const struct gd_core_host *) host;

void gd_core_attach(const struct gd_core_host *h)
{
    atomic_store(&host, h);
}

static const struct gd_core_host *get_host(void)
{
    return atomic_load(&host);
}

void gd_instance_init_head(gd_instance *inst, const char *name, const char *plugin,
                           const char *kind)
{
    inst->name = name;
    inst->plugin = plugin;
    inst->kind = kind;
    memset(inst->rl, 0, sizeof(inst->rl));
    pthread_mutex_init(&inst->rl_lock, NULL);
}

void gd_instance_fini_head(gd_instance *inst)
{
    if (!inst)
        return;
    pthread_mutex_destroy(&inst->rl_lock);
}

const char *gd_instance_name(const gd_instance *inst)
{
    return inst ? inst->name : "gatherd";
}

const char *gd_instance_plugin(const gd_instance *inst)
{
    return inst ? inst->plugin : "";
}

double gd_instance_interval(const gd_instance *inst)
{
    return inst ? inst->interval : 0;
}

int gd_emit(gd_instance *inst, gd_batch *b)
{
    const struct gd_core_host *h = get_host();
    if (!h || !inst) {
        gd_batch_unref(b);
        return GD_ESHUTDOWN;
    }
    return h->emit(inst, b);
}

void gd_count_drop(gd_instance *inst, const char *reason, uint64_t n)
{
    const struct gd_core_host *h = get_host();
    if (h && inst && n)
        h->count_drop(inst, reason, n);
}

void gd_count_error(gd_instance *inst)
{
    const struct gd_core_host *h = get_host();
    if (h && inst)
        h->count_error(inst);
}

int gd_timer_start(gd_instance *inst, uint64_t first_ms, uint64_t repeat_ms, void (*cb)(void *ctx),
                   void *ctx, gd_free_fn ctx_free, gd_timer **out)
{
    const struct gd_core_host *h = get_host();
    if (!h || !inst || !cb)
        return h ? GD_EINVAL : GD_ENOTSUP;
    return h->timer_start(inst, first_ms, repeat_ms, cb, ctx, ctx_free, out);
}

void gd_timer_stop(gd_timer *t)
{
    const struct gd_core_host *h = get_host();
    if (h && t)
        h->timer_stop(t);
}

int gd_fd_watch(gd_instance *inst, int fd, int events, void (*cb)(void *ctx, int fd, int revents),
                void *ctx, gd_free_fn ctx_free, gd_watch **out)
{
    const struct gd_core_host *h = get_host();
    if (!h || !inst || !cb || fd < 0 || !out)
        return h ? GD_EINVAL : GD_ENOTSUP;
    return h->fd_watch(inst, fd, events, cb, ctx, ctx_free, out);
}

int gd_fd_watch_update(gd_watch *w, int events)
{
    const struct gd_core_host *h = get_host();
    if (!h || !w)
        return GD_EINVAL;
    return h->fd_watch_update(w, events);
}

void gd_fd_unwatch(gd_watch *w)
{
    const struct gd_core_host *h = get_host();
    if (h && w)
        h->fd_unwatch(w);
}

int gd_work_queue(gd_instance *inst, void (*work)(void *ctx), void (*after)(void *ctx, int status),
                  void *ctx, gd_free_fn ctx_free)
{
    const struct gd_core_host *h = get_host();
    if (!h || !inst || !work)
        return h ? GD_EINVAL : GD_ENOTSUP;
    return h->work_queue(inst, work, after, ctx, ctx_free);
}

int gd_call_on_loop(gd_instance *inst, void (*cb)(void *ctx), void *ctx, gd_free_fn ctx_free)
{
    const struct gd_core_host *h = get_host();
    if (!h || !inst || !cb)
        return h ? GD_EINVAL : GD_ENOTSUP;
    return h->call_on_loop(inst, cb, ctx, ctx_free);
}

bool gd_backpressure(gd_instance *inst)
{
    const struct gd_core_host *h = get_host();
    return h && inst && h->backpressure && h->backpressure(inst);
}

const char *gd_instance_spool_dir(const gd_instance *inst)
{
    const struct gd_core_host *h = get_host();
    return h && inst && h->spool_dir ? h->spool_dir(inst) : NULL;
}

bool gd_emit_durable(gd_instance *inst)
{
    const struct gd_core_host *h = get_host();
    return h && inst && h->emit_durable && h->emit_durable(inst);
}

void gd_shutdown_request(gd_instance *inst, const char *reason)
{
    const struct gd_core_host *h = get_host();
    if (h)
        h->shutdown_request(inst, reason);
}
