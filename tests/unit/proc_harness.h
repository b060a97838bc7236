/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proc_harness.h - unit tests of processor plugins through the core's own
 * config, option and loader code: configuration text in, exact points out.
 *
 *     gdp_load("processors = ({ plugin = \"scale\"; name = \"s\"; ... });");
 *     gd_batch *b = gd_batch_new(4);
 *     gd_point_f64(gd_batch_add(b, "m", 1000), "temp_c", 20.0);
 *     cr_assert_str_eq(gdp_process("s", b), "m temp_f=68 1000\n");
 *
 * Output is line protocol with ns timestamps, one line per point, in order.
 * Points a processor hands to gd_emit() (timers, late windows) and timers
 * it starts are captured by a test host instead of a running daemon.
 */
#ifndef GATHERD_TESTS_PROC_HARNESS_H
#define GATHERD_TESTS_PROC_HARNESS_H

#include <gatherd/gatherd.h>
#include <stdint.h>

/* gdp_load() - build and init every instance of @conf (text of a main
 * config file; a minimal `global` is not needed). Asserts success. The
 * harness frees everything at the next gdp_load() / gdp_unload(). */
void gdp_load(const char *conf);

/* gdp_load_error() - build @conf expecting failure: returns the printed
 * error text (FILE:LINE: instance: option: reason), or NULL when the config
 * was accepted. Also catches an init() failure (its log goes to stderr;
 * the returned text is then "init failed: <GD error>"). malloc'd. */
char *gdp_load_error(const char *conf);

/* gdp_process() - run instance @name's process() on @in (consumed: frozen
 * and unreffed) exactly as the core does, and return the resulting points
 * as line protocol (static buffer, valid until the next call). GD_PASS or
 * an error returns the input's text; gdp_last_rc() tells which. */
const char *gdp_process(const char *name, gd_batch *in);
int gdp_last_rc(void);

/* gdp_flush() - run flush() (if the plugin has one); its points as text. */
const char *gdp_flush(const char *name);

/* gdp_emitted() - the points the instance handed to gd_emit() since the
 * last call, as text (then forgotten). */
const char *gdp_emitted(const char *name);

/* gdp_fire_timers() - call every live timer's callback of instance @name
 * once (as if due), in start order. Returns how many fired. */
int gdp_fire_timers(const char *name);

/* gdp_dropped() - points instance @name counted as dropped for @reason
 * (NULL: all reasons), through gd_count_drop() or the core's "filtered". */
uint64_t gdp_dropped(const char *name, const char *reason);
/* gdp_errors() - errors counted (gd_count_error() and failed process()). */
uint64_t gdp_errors(const char *name);

/* gdp_state() - the plugin state of instance @name (for white-box tests). */
void *gdp_state(const char *name);

/* gdp_lp() - @b as line protocol text (malloc'd). */
char *gdp_lp(const gd_batch *b);

void gdp_unload(void);

#endif
