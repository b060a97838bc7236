/* SPDX-License-Identifier: Apache-2.0 */
/*
 * host.h - the seam between libgatherd and the daemon (not installed).
 *
 * Plugins link libgatherd, and so does the daemon. The services a plugin
 * calls (gd_emit, timers, fd watches...) are implemented by the daemon, which
 * attaches its table here at start-up; libgatherd dispatches through it. A
 * gd_instance is allocated by the daemon; its public part (this struct) is
 * what libgatherd reads for names and log rate limits.
 */
#ifndef GATHERD_SDK_HOST_H
#define GATHERD_SDK_HOST_H

#include <gatherd/gatherd.h>
#include <pthread.h>

#define GD__RL_SLOTS 8

struct gd__ratelimit {
    const char *fmt; /* call site identity */
    int64_t window_start_ns;
    uint32_t count;
    uint32_t suppressed;
};

/* The public head of every instance; the daemon's object embeds it first. */
struct gd_instance {
    const char *name;
    const char *plugin;
    const char *kind; /* "input", "processor", "output" */
    double interval;  /* seconds; polled inputs */
    pthread_mutex_t rl_lock;
    struct gd__ratelimit rl[GD__RL_SLOTS];
};

struct gd_core_host {
    uint32_t struct_size;
    int (*emit)(gd_instance *inst, gd_batch *b);
    void (*count_drop)(gd_instance *inst, const char *reason, uint64_t n);
    void (*count_error)(gd_instance *inst);
    int (*timer_start)(gd_instance *inst, uint64_t first_ms, uint64_t repeat_ms,
                       void (*cb)(void *ctx), void *ctx, gd_free_fn ctx_free, gd_timer **out);
    void (*timer_stop)(gd_timer *t);
    int (*fd_watch)(gd_instance *inst, int fd, int events,
                    void (*cb)(void *ctx, int fd, int revents), void *ctx, gd_free_fn ctx_free,
                    gd_watch **out);
    int (*fd_watch_update)(gd_watch *w, int events);
    void (*fd_unwatch)(gd_watch *w);
    int (*work_queue)(gd_instance *inst, void (*work)(void *ctx),
                      void (*after)(void *ctx, int status), void *ctx, gd_free_fn ctx_free);
    int (*call_on_loop)(gd_instance *inst, void (*cb)(void *ctx), void *ctx, gd_free_fn ctx_free);
    void (*shutdown_request)(gd_instance *inst, const char *reason);
    bool (*backpressure)(gd_instance *inst);
    bool (*emit_durable)(gd_instance *inst);
    const char *(*spool_dir)(const gd_instance *inst);
};

/* gd_core_attach() - install the daemon's service table (NULL detaches).
 * Exported for the daemon only; not part of the plugin API. */
GD_EXPORT void gd_core_attach(const struct gd_core_host *host);

/* gd_instance_init_head() - initialise the public head of an instance. */
GD_EXPORT void gd_instance_init_head(gd_instance *inst, const char *name, const char *plugin,
                                     const char *kind);
/* gd_instance_fini_head() - release what gd_instance_init_head() set up. */
GD_EXPORT void gd_instance_fini_head(gd_instance *inst);

#endif
