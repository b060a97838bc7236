/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loader.h - finding, opening and checking plugin shared objects.
 *
 * A plugin NAME is the file NAME.so in the first directory of the search
 * path that has it: the entries of $GATHERD_PLUGIN_PATH (colon separated),
 * then global.plugin_dir, then the compiled-in GD_PLUGIN_DIR. The loader
 * refuses a world-writable file, a missing entry symbol, a different ABI
 * major or a newer ABI minor, a descriptor naming another plugin, a bad
 * option table and ops that lack their required callbacks; every refusal
 * says which and why. Libraries stay loaded until gd__loader_free().
 */
#ifndef GATHERD_CORE_LOADER_H
#define GATHERD_CORE_LOADER_H

#include "errs.h"
#include <gatherd/plugin.h>

/* A loaded plugin. The descriptor and ops are copied into full-size, zeroed
 * structs, so fields a plugin built for an older minor lacks read as zero. */
typedef struct gd__plugin_lib {
    char *path;
    void *dl;
    struct gd_plugin desc;
    union {
        struct gd_input_ops input;
        struct gd_processor_ops processor;
        struct gd_output_ops output;
    } ops;
} gd__plugin_lib;

typedef struct gd__loader {
    char **dirs;
    size_t ndirs;
    gd__plugin_lib **libs;
    size_t nlibs;
} gd__loader;

/* gd__loader_init() - set up the search path (see above). @plugin_dir may be NULL. */
int gd__loader_init(gd__loader *l, const char *plugin_dir);

/* gd__loader_get() - the plugin @name, loading it on first use. On failure
 * returns a negative code and sets *@why (malloc'd message). */
int gd__loader_get(gd__loader *l, const char *name, const gd__plugin_lib **out, char **why);

/* gd__loader_open() - open and check one file; @expect_name may be NULL. */
int gd__loader_open(const char *path, const char *expect_name, gd__plugin_lib **out, char **why);

/* gd__loader_scan() - load every *.so of the search path (the first of a
 * name wins; later duplicates and broken files are reported in @errs). */
int gd__loader_scan(gd__loader *l, gd__errs *errs);

/* gd__loader_free() - close every library. Accepts a zeroed struct. */
void gd__loader_free(gd__loader *l);

/* gd__plugin_lib_close() - close one library from gd__loader_open(). */
void gd__plugin_lib_close(gd__plugin_lib *lib);

/* gd__kind_name() - "input", "processor", "output" ("?" otherwise). */
const char *gd__kind_name(int kind);

#endif
