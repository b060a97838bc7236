/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h - loading the configuration tree: the main file, then every
 * *.conf of the include directory in lexical (byte) order.
 *
 * The main file may hold `global`, `inputs`, `processors`, `outputs`; an
 * included file may hold `inputs`, `processors`, `outputs` only. Lists are
 * appended in file order. Each list item is a group with at least
 * `plugin = "name"`; `name` defaults to the plugin name. Two instances of one
 * kind with the same name are an error naming both places. The include
 * directory is `global.include_dir` (relative to the main file's folder) or,
 * when unset, "conf.d" next to the main file (a missing default directory is
 * fine, a missing explicit one is an error).
 *
 * Option values are not interpreted here: see options.h.
 */
#ifndef GATHERD_CORE_CONFIG_H
#define GATHERD_CORE_CONFIG_H

#include "errs.h"
#include <gatherd/plugin.h>
#include <libconfig.h>

typedef struct gd__conf_inst {
    int kind;            /* GD_KIND_* */
    const char *plugin;  /* value of `plugin` (points into the tree) */
    const char *name;    /* value of `name`, or the plugin name */
    const char *file;    /* file the group is in */
    int line;            /* line of the group */
    config_setting_t *setting; /* the group, owned by the tree */
} gd__conf_inst;

typedef struct gd__conf {
    char *main_path;       /* NULL for the embedded default */
    config_t *trees;       /* one parsed tree per file, kept alive */
    size_t ntrees;
    config_setting_t *global; /* `global` group of the main file, or NULL */
    gd__conf_inst *inst[4];   /* indexed by GD_KIND_* (1..3) */
    size_t ninst[4];
    char **files;          /* every file read, in order (for -t) */
    size_t nfiles;
} gd__conf;

/*
 * gd__conf_load() - parse the main file @path (or, when @path is NULL, the
 * in-memory @text named @text_name) and the include directory. Syntax errors
 * read "FILE:LINE: syntax error: libconfig's message"; structural ones
 * "FILE:LINE: inputs[2]: missing 'plugin'", "FILE:LINE: unknown top-level
 * setting 'outptus'", "FILE:LINE: 'global' is only allowed in the main file",
 * "FILE:LINE: output 'x' is defined twice (first at FILE:LINE)". Returns 0 or
 * GD_ECONFIG with @errs filled. Call gd__conf_free() either way.
 */
int gd__conf_load(gd__conf *c, const char *path, const char *text, const char *text_name,
                  gd__errs *errs);

/* gd__conf_free() - release the trees and lists. Accepts a zeroed struct. */
void gd__conf_free(gd__conf *c);

/* gd__conf_kind_name() - "input", "processor", "output". */
const char *gd__conf_kind_name(int kind);

#endif
