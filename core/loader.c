/* SPDX-License-Identifier: Apache-2.0 */
#include "loader.h"
#include "instance.h"
#include "options.h"
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef GD_PLUGIN_DIR
#define GD_PLUGIN_DIR "/usr/lib/gatherd/plugins"
#endif

/* The smallest descriptor the core accepts: through the ops pointer. */
#define MIN_PLUGIN_STRUCT_SIZE (offsetof(struct gd_plugin, ops) + sizeof(void *))

typedef const struct gd_plugin *(*entry_fn)(void);

static int fail(char **why, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **why, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (why && vasprintf(why, fmt, ap) < 0)
        *why = NULL;
    va_end(ap);
    return rc;
}

const char *gd__kind_name(int kind)
{
    switch (kind) {
    case GD_KIND_INPUT: return "input";
    case GD_KIND_PROCESSOR: return "processor";
    case GD_KIND_OUTPUT: return "output";
    default: return "?";
    }
}

static int add_dir(gd__loader *l, const char *dir)
{
    if (!dir || !*dir)
        return 0;
    char **nd = realloc(l->dirs, (l->ndirs + 1) * sizeof(*nd));
    if (!nd)
        return GD_ENOMEM;
    l->dirs = nd;
    l->dirs[l->ndirs] = strdup(dir);
    if (!l->dirs[l->ndirs])
        return GD_ENOMEM;
    l->ndirs++;
    return 0;
}

int gd__loader_init(gd__loader *l, const char *plugin_dir)
{
    memset(l, 0, sizeof(*l));
    const char *env = getenv("GATHERD_PLUGIN_PATH");
    if (env) {
        char *copy = strdup(env), *save = NULL;
        if (!copy)
            return GD_ENOMEM;
        for (char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save))
            add_dir(l, tok);
        free(copy);
    }
    add_dir(l, plugin_dir);
    return add_dir(l, GD_PLUGIN_DIR);
}

/* Copy @n bytes of the plugin's ops into the full-size zeroed union. */
static int copy_ops(gd__plugin_lib *lib, char **why)
{
    const void *ops = lib->desc.ops;
    size_t full;
    switch (lib->desc.kind) {
    case GD_KIND_INPUT: full = sizeof(lib->ops.input); break;
    case GD_KIND_PROCESSOR: full = sizeof(lib->ops.processor); break;
    case GD_KIND_OUTPUT: full = sizeof(lib->ops.output); break;
    default:
        return fail(why, GD_EABI, "%s: unknown plugin kind %u", lib->desc.name, lib->desc.kind);
    }
    if (!ops)
        return fail(why, GD_EABI, "%s: descriptor has no ops", lib->desc.name);
    uint32_t size = *(const uint32_t *)ops;
    /* Every ops struct has at least size, reserved, init and destroy. */
    if (size < 24)
        return fail(why, GD_EABI, "%s: ops struct_size %u is too small", lib->desc.name, size);
    memcpy(&lib->ops, ops, size < full ? size : full);

    switch (lib->desc.kind) {
    case GD_KIND_INPUT:
        if (!lib->ops.input.collect && !(lib->ops.input.start && lib->ops.input.stop))
            return fail(why, GD_EABI, "%s: an input needs collect(), or start() and stop()",
                        lib->desc.name);
        break;
    case GD_KIND_PROCESSOR:
        if (!lib->ops.processor.process)
            return fail(why, GD_EABI, "%s: a processor needs process()", lib->desc.name);
        break;
    default:
        if (!lib->ops.output.write)
            return fail(why, GD_EABI, "%s: an output needs write()", lib->desc.name);
    }
    return 0;
}

/* The first option of @opts that the core's common table for @kind also
 * declares: one setting cannot fill both. */
static const char *clashing_option(const struct gd_option *opts, int kind)
{
    for (const struct gd_option *o = opts; o->name; o++)
        for (const struct gd_option *c = gd__common_options(kind); c->name; c++)
            if (strcmp(o->name, c->name) == 0)
                return o->name;
    return NULL;
}

void gd__plugin_lib_close(gd__plugin_lib *lib)
{
    if (!lib)
        return;
    if (lib->dl)
        dlclose(lib->dl);
    free(lib->path);
    free(lib);
}

int gd__loader_open(const char *path, const char *expect_name, gd__plugin_lib **out, char **why)
{
    struct stat st;
    int rc;

    *out = NULL;
    if (stat(path, &st) < 0)
        return fail(why, GD_ENOENT, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail(why, GD_EINVAL, "%s: not a regular file", path);
    if (st.st_mode & S_IWOTH)
        return fail(why, GD_EPERM, "%s: refusing a world-writable plugin (chmod o-w)", path);

    gd__plugin_lib *lib = calloc(1, sizeof(*lib));
    if (!lib)
        return GD_ENOMEM;
    lib->path = strdup(path);
    lib->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib->dl) {
        rc = fail(why, GD_EIO, "%s: cannot load: %s", path, dlerror());
        goto out_close;
    }
    entry_fn entry;
    *(void **)&entry = dlsym(lib->dl, GD_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        rc = fail(why, GD_ENOSYM, "%s: not a gatherd plugin (no %s symbol)", path,
                  GD_PLUGIN_ENTRY_SYMBOL);
        goto out_close;
    }
    const struct gd_plugin *d = entry();
    if (!d) {
        rc = fail(why, GD_EABI, "%s: %s() returned NULL", path, GD_PLUGIN_ENTRY_SYMBOL);
        goto out_close;
    }
    const char *label = expect_name ? expect_name : path;
    if (d->abi_major != GD_ABI_MAJOR || d->abi_minor > GD_ABI_MINOR) {
        rc = fail(why, GD_EABI, "%s: built for ABI %u.%u, gatherd provides %d.%d", label,
                  d->abi_major, d->abi_minor, GD_ABI_MAJOR, GD_ABI_MINOR);
        goto out_close;
    }
    if (d->struct_size < MIN_PLUGIN_STRUCT_SIZE) {
        rc = fail(why, GD_EABI, "%s: descriptor struct_size %u is too small", label,
                  d->struct_size);
        goto out_close;
    }
    memcpy(&lib->desc, d, d->struct_size < sizeof(lib->desc) ? d->struct_size : sizeof(lib->desc));
    if (!lib->desc.name || !*lib->desc.name) {
        rc = fail(why, GD_EABI, "%s: descriptor has no name", label);
        goto out_close;
    }
    if (expect_name && strcmp(expect_name, lib->desc.name) != 0) {
        rc = fail(why, GD_EABI, "%s: file declares plugin '%s', expected '%s'", path,
                  lib->desc.name, expect_name);
        goto out_close;
    }
    if (!lib->desc.version)
        lib->desc.version = "?";
    if (!lib->desc.summary)
        lib->desc.summary = "";
    rc = copy_ops(lib, why);
    if (rc < 0)
        goto out_close;
    if (lib->desc.options) {
        gd__errs errs = {0};
        const char *clash = clashing_option(lib->desc.options, (int)lib->desc.kind);
        if (clash) {
            rc = fail(why, GD_EABI, "%s: option '%s' is a common %s option the core handles",
                      lib->desc.name, clash, gd__kind_name((int)lib->desc.kind));
            goto out_close;
        }
        if (gd__opts_check_table(lib->desc.options, lib->desc.name, &errs) < 0) {
            rc = fail(why, GD_EABI, "%s: bad option table: %s", lib->desc.name,
                      errs.n ? errs.msgs[0] : "?");
            gd__errs_free(&errs);
            goto out_close;
        }
    }
    *out = lib;
    return 0;

out_close:
    gd__plugin_lib_close(lib);
    return rc;
}

static gd__plugin_lib *find_loaded(const gd__loader *l, const char *name)
{
    for (size_t i = 0; i < l->nlibs; i++)
        if (strcmp(l->libs[i]->desc.name, name) == 0)
            return l->libs[i];
    return NULL;
}

static int remember(gd__loader *l, gd__plugin_lib *lib)
{
    gd__plugin_lib **nl = realloc(l->libs, (l->nlibs + 1) * sizeof(*nl));
    if (!nl)
        return GD_ENOMEM;
    l->libs = nl;
    l->libs[l->nlibs++] = lib;
    return 0;
}

static bool valid_name(const char *name)
{
    if (!*name)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

int gd__loader_get(gd__loader *l, const char *name, const gd__plugin_lib **out, char **why)
{
    gd__plugin_lib *lib = find_loaded(l, name);
    if (lib) {
        *out = lib;
        return 0;
    }
    if (!valid_name(name))
        return fail(why, GD_EINVAL, "invalid plugin name '%s'", name);
    for (size_t i = 0; i < l->ndirs; i++) {
        char *path = NULL;
        if (asprintf(&path, "%s/%s.so", l->dirs[i], name) < 0)
            return GD_ENOMEM;
        if (access(path, F_OK) != 0) {
            free(path);
            continue;
        }
        int rc = gd__loader_open(path, name, &lib, why);
        free(path);
        if (rc < 0)
            return rc;
        rc = remember(l, lib);
        if (rc < 0) {
            gd__plugin_lib_close(lib);
            return rc;
        }
        *out = lib;
        return 0;
    }
    gd_buf searched = {0};
    for (size_t i = 0; i < l->ndirs; i++)
        gd_buf_printf(&searched, "%s%s", i ? ":" : "", l->dirs[i]);
    int rc = fail(why, GD_ENOENT, "plugin '%s' not found (searched %s)", name,
                  searched.data ? searched.data : "nothing");
    gd_buf_free(&searched);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int gd__loader_scan(gd__loader *l, gd__errs *errs)
{
    for (size_t i = 0; i < l->ndirs; i++) {
        DIR *d = opendir(l->dirs[i]);
        if (!d)
            continue;
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            size_t len = strlen(de->d_name);
            if (len <= 3 || strcmp(de->d_name + len - 3, ".so") != 0)
                continue;
            char **nn = realloc(names, (n + 1) * sizeof(*nn));
            if (!nn)
                break;
            names = nn;
            names[n++] = strndup(de->d_name, len - 3);
        }
        closedir(d);
        qsort(names, n, sizeof(*names), cmp_str);
        for (size_t j = 0; j < n; j++) {
            if (!names[j] || find_loaded(l, names[j])) {
                free(names[j]);
                continue;
            }
            char *path = NULL, *why = NULL;
            gd__plugin_lib *lib = NULL;
            if (asprintf(&path, "%s/%s.so", l->dirs[i], names[j]) >= 0) {
                if (gd__loader_open(path, names[j], &lib, &why) < 0)
                    gd__errs_add(errs, "%s", why ? why : path);
                else if (remember(l, lib) < 0)
                    gd__plugin_lib_close(lib);
            }
            free(why);
            free(path);
            free(names[j]);
        }
        free(names);
    }
    return errs->n ? GD_EABI : 0;
}

void gd__loader_free(gd__loader *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nlibs; i++)
        gd__plugin_lib_close(l->libs[i]);
    free(l->libs);
    for (size_t i = 0; i < l->ndirs; i++)
        free(l->dirs[i]);
    free(l->dirs);
    memset(l, 0, sizeof(*l));
}
