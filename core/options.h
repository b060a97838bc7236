/* SPDX-License-Identifier: Apache-2.0 */
/*
 * options.h - option tables (struct gd_option) applied to libconfig groups.
 *
 * One table drives validation, defaults, filling of the plugin's config
 * struct, freeing it, the --describe text and the canonical form used to
 * tell whether an instance changed across a reload. Nothing else parses
 * configuration values.
 */
#ifndef GATHERD_CORE_OPTIONS_H
#define GATHERD_CORE_OPTIONS_H

#include "errs.h"
#include <gatherd/gatherd.h>
#include <libconfig.h>
#include <stdio.h>

/* A table and the struct it fills. Several sets may share one config group
 * (the core's common instance options plus the plugin's own). */
struct gd__optset {
    const struct gd_option *opts;
    void *dst;
};

/*
 * gd__opts_fill() - fill every set's @dst (zeroed by the caller) from the
 * libconfig @group: defaults first, then the values present. String values
 * (strings, list items, kv values) are expanded with gd__expand() first.
 * Every problem is added to @errs as "FILE:LINE: CTX: option 'NAME': REASON"
 * (CTX e.g. "input 'chamber-7' (plugin modbus)"); REASON is one of:
 *   unknown option (no table knows the key; "did you mean 'port'?" when a
 *   table name is within edit distance 2), expected TYPE but got TYPE, value
 *   N out of range [MIN, MAX], invalid duration "x", must be one of "a", "b",
 *   missing required value, environment variable X is not set, cannot read
 *   file X: REASON.
 * @group may be NULL (every option takes its default). Returns 0, or
 * GD_ECONFIG when at least one error was added (what could be filled is
 * filled; call gd__opts_free() either way).
 */
int gd__opts_fill(const struct gd__optset *sets, size_t nsets, const config_setting_t *group,
                  const char *ctx, gd__errs *errs);

/* gd__opts_free() - free what gd__opts_fill() allocated in @dst (strings,
 * lists, nested items). Leaves @dst zeroed. Accepts a NULL @dst. */
void gd__opts_free(const struct gd_option *opts, void *dst);

/* gd__opts_canon() - append a canonical text of the filled @dst to @out
 * (every option name=value, in table order; sensitive values included, since
 * the text never leaves the process). Equal texts mean equal configs. */
int gd__opts_canon(const struct gd_option *opts, const void *dst, gd_buf *out);

/* gd__opts_print() - write the filled values, one "name = value" per line,
 * indented by @indent spaces; sensitive values print as "***". */
void gd__opts_print(const struct gd_option *opts, const void *dst, FILE *f, int indent);

/* gd__opts_redact() - register every non-empty sensitive string value with
 * gd_log_redact() so it never appears in a log line. */
void gd__opts_redact(const struct gd_option *opts, const void *dst);

/* gd__opts_describe() - the option table as text (name, type, default,
 * range or choices, required, sensitive, help), like gst-inspect. */
void gd__opts_describe(const struct gd_option *opts, FILE *f, int indent);

/* gd__opts_check_table() - sanity-check a plugin's table (names unique and
 * non-empty, known types, defaults that parse and respect their bounds,
 * ENUM with choices, LIST/GROUP with sub tables). Adds errors naming
 * @plugin; returns 0 or GD_ECONFIG. The loader refuses a bad table. */
int gd__opts_check_table(const struct gd_option *opts, const char *plugin, gd__errs *errs);

/* gd__duration_parse() - "250ms", "5s", "1.5m", "2h", "1d" or a plain number
 * of seconds -> seconds. Returns 0 or GD_EINVAL. */
int gd__duration_parse(const char *s, double *seconds);

/*
 * gd__expand() - expand secrets references in @in into a new malloc'd string:
 *   "${NAME}"        the environment variable NAME (error if unset);
 *   "${NAME:-def}"   NAME, or "def" when unset or empty;
 *   "$${"            a literal "${";
 *   "@file:/path"    (whole value) the file's content, one trailing newline
 *                    stripped.
 * On error returns NULL and sets *@why to a malloc'd reason.
 */
char *gd__expand(const char *in, char **why);

#endif
