/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime.h - the running daemon: configuration sets, the libuv loop,
 * signals, reload, shutdown and the services plugins call.
 *
 * Lifecycle: gd__rt_run() loads and validates the configuration, initialises
 * outputs, processors and inputs (refusing to start if any fails), starts the
 * writers, schedulers and event-driven inputs, and runs the loop until
 * SIGTERM/SIGINT or gd_shutdown_request(): then inputs stop, processors
 * flush, and every queue drains within global.shutdown_timeout.
 * SIGHUP reloads: see gd__rt_reload().
 */
#ifndef GATHERD_CORE_RUNTIME_H
#define GATHERD_CORE_RUNTIME_H

#include "pipeline.h"
#include <stdio.h>

/* A validated configuration: global settings and built instances (outputs,
 * processors, inputs, each in config order). */
typedef struct gd__cfgset {
    struct gd__global g;
    gd__inst **v;
    size_t n;
    char **files;
    size_t nfiles;
} gd__cfgset;

typedef struct gd__rt gd__rt;

/* gd__cfgset_build() - load @path (NULL: the embedded default) and build
 * every instance. Returns 0 or GD_ECONFIG with every problem in @errs. */
int gd__cfgset_build(gd__rt *rt, gd__loader *l, const char *path, gd__cfgset *set,
                     gd__errs *errs);
/* gd__cfgset_free() - free the instances still in @set and the settings. */
void gd__cfgset_free(gd__cfgset *set);

/* gd__rt_new() - a runtime for @path (NULL: the embedded default). */
gd__rt *gd__rt_new(const char *path);
/* gd__rt_free() - accepts NULL. */
void gd__rt_free(gd__rt *rt);

/* gd__rt_run() - run until shutdown. Returns the process exit code. */
int gd__rt_run(gd__rt *rt);

/* gd__rt_check() - `gatherd -t`: validate, print a summary line per
 * instance to @out and the errors to @err. Returns the exit code. */
int gd__rt_check(gd__rt *rt, FILE *out, FILE *err);

/* gd__rt_once() - `gatherd --once`: collect once from every polled input
 * (or only @input), pass the points through the processors, print them as
 * line protocol on @out. Returns the exit code. */
int gd__rt_once(gd__rt *rt, const char *input, FILE *out);

/* gd__rt_reload() - load the configuration again; keep running unchanged
 * instances untouched, drain and stop removed or changed ones, start new or
 * changed ones. An invalid configuration changes nothing. Main thread. */
int gd__rt_reload(gd__rt *rt);

/* gd__rt_request_shutdown() - thread-safe and async-signal-unsafe: ask for
 * a graceful stop. */
void gd__rt_request_shutdown(gd__rt *rt);

/* The embedded default configuration text. */
const char *gd__default_config(void);

#endif
