/* SPDX-License-Identifier: Apache-2.0 */
/*
 * instance.h - a configured plugin instance as the core holds it, and the
 * core's own option tables (global settings and the options every input,
 * processor or output has besides its plugin's).
 */
#ifndef GATHERD_CORE_INSTANCE_H
#define GATHERD_CORE_INSTANCE_H

#include "config.h"
#include "counters.h"
#include "host.h"
#include "loader.h"
#include "output.h"
#include "scheduler.h"

struct gd__global {
    double interval;
    int64_t workers;
    char *plugin_dir;
    char *include_dir;
    char *spool_dir;
    double shutdown_timeout;
    int log_level;
    int log_format;
};

struct gd__queue_opts {
    int64_t max_points;
    int64_t max_bytes;
    int overflow;
    bool spool_always;
    int spool_sync;
    double spool_sync_interval;
    int64_t spool_max_bytes;
};

struct gd__common {
    char *plugin;
    char *name;
    /* inputs */
    double interval;
    bool align;
    double jitter;
    gd_kvlist tags;
    /* processors and outputs */
    gd_strlist match;
    /* outputs */
    int64_t batch_points;
    int64_t writers;
    double flush_interval;
    int64_t max_retries;
    double max_retry_age;
    double retry_initial;
    double retry_max;
    struct gd__queue_opts queue;
};

extern const struct gd_option gd__global_options[];
extern const struct gd_option gd__input_options[];
extern const struct gd_option gd__processor_options[];
extern const struct gd_option gd__output_options[];

/* gd__common_options() - the core's table for instances of @kind. */
const struct gd_option *gd__common_options(int kind);

typedef struct gd__inst gd__inst;
struct gd__rt;

struct gd__inst {
    struct gd_instance head; /* first: plugins see a gd_instance * */
    int kind;
    const gd__plugin_lib *lib;
    char *where; /* "FILE:LINE" of the config group */
    char *spool_dir; /* outputs with overflow = spool: global.spool_dir/<name> */
    struct gd__common common;
    void *cfg; /* the plugin's config struct */
    void *state;    /* the (first) plugin state */
    void **states;  /* outputs: one state per writer (states[0] == state) */
    size_t nstates;
    bool inited;
    gd_buf canon; /* canonical config: equal text = unchanged on reload */
    gd__counters cnt;
    struct gd__rt *rt;
    /* inputs */
    gd__sched_job job;
    bool scheduled;
    bool started;      /* event-driven start() succeeded */
    atomic_bool stopped; /* no more emits accepted */
    bool job_stopped;
    bool retired; /* removed by a reload: freed once its job stopped */
    atomic_size_t last_batch_len; /* sizes the next collect's batch */
    unsigned pending_work;        /* gd_work_queue() items not finished (main thread) */
    /* processors: one process() at a time */
    pthread_mutex_t proc_lock;
    /* outputs */
    gd__output out;
    bool out_inited;
};

/* gd__inst_build() - a new instance from its config group: plugin loaded,
 * every option validated and filled, canonical text made. Not initialised.
 * Errors go to @errs; returns NULL when there were any. */
gd__inst *gd__inst_build(struct gd__rt *rt, gd__loader *l, const gd__conf_inst *ci,
                         const struct gd__global *g, gd__errs *errs);

/* gd__inst_init() - call the plugin's init(); outputs get their queue. */
int gd__inst_init(gd__inst *in);

/* gd__inst_free() - destroy() (if initialised), free config and memory. */
void gd__inst_free(gd__inst *in);

/* gd__inst_summary() - one line for `gatherd -t`. */
void gd__inst_summary(const gd__inst *in, FILE *f);

#endif
