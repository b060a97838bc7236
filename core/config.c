/* SPDX-License-Identifier: Apache-2.0 */
/* config.c - the configuration tree: the main file (or embedded text), then
 * every *.conf of the include directory in byte order; instance lists are
 * collected and checked for structure. Option values are left to options.c. */
#include "config.h"
#include "options.h"
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_INCLUDE_DIR "conf.d"
#define CONF_SUFFIX         ".conf"
#define NO_FILE_NAME        "<config>"

static const struct {
    const char *key;
    int kind;
} instance_lists[] = {
    {"inputs", GD_KIND_INPUT},
    {"processors", GD_KIND_PROCESSOR},
    {"outputs", GD_KIND_OUTPUT},
};

#define NLISTS (sizeof(instance_lists) / sizeof(instance_lists[0]))

const char *gd__conf_kind_name(int kind)
{
    switch (kind) {
    case GD_KIND_INPUT:
        return "input";
    case GD_KIND_PROCESSOR:
        return "processor";
    case GD_KIND_OUTPUT:
        return "output";
    }
    return "unknown";
}

static const char *src_file(const config_setting_t *s)
{
    const char *f = s ? config_setting_source_file(s) : NULL;
    return f ? f : NO_FILE_NAME;
}

static unsigned src_line(const config_setting_t *s)
{
    return s ? (unsigned)config_setting_source_line(s) : 0;
}

static const char *type_name(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a float";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    }
    return "nothing";
}

static int add_file(gd__conf *c, const char *name)
{
    char *copy = strdup(name);
    char **nv = copy ? realloc(c->files, (c->nfiles + 1) * sizeof(*nv)) : NULL;
    if (!nv) {
        free(copy);
        return GD_ENOMEM;
    }
    c->files = nv;
    c->files[c->nfiles++] = copy;
    return 0;
}

/* libconfig names no file for config_read_string(); give every setting the
 * text's name so messages read "NAME:LINE: ...". @name outlives the tree. */
static void name_settings(config_setting_t *s, const char *name)
{
    if (!s->file)
        s->file = name;
    if (config_setting_is_aggregate(s))
        for (int i = 0; i < config_setting_length(s); i++)
            name_settings(config_setting_get_elem(s, (unsigned)i), name);
}

/* Parses one file (or @text when @path is NULL) into @cfg, already
 * config_init()ed. Returns true on success; reports a syntax error. */
static bool parse_tree(config_t *cfg, const char *path, const char *text, const char *name,
                       const char *include_dir, gd__errs *errs)
{
    if (include_dir)
        config_set_include_dir(cfg, include_dir);
    errno = 0;
    int ok = path ? config_read_file(cfg, path) : config_read_string(cfg, text);
    int err = errno;
    if (ok) {
        if (!path)
            name_settings(config_root_setting(cfg), name);
        return true;
    }
    if (config_error_type(cfg) == CONFIG_ERR_FILE_IO) {
        gd__errs_add(errs, "%s: cannot read: %s", name, err ? strerror(err) : "i/o error");
        return false;
    }
    const char *efile = config_error_file(cfg);
    gd__errs_add(errs, "%s:%d: syntax error: %s", efile ? efile : name, config_error_line(cfg),
                 config_error_text(cfg) ? config_error_text(cfg) : "?");
    return false;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static char *join_path(const char *dir, const char *name)
{
    char *out = NULL;
    if (asprintf(&out, "%s/%s", dir, name) < 0)
        return NULL;
    return out;
}

/* The include directory the main tree asks for. Sets *@dir (malloc'd, NULL
 * for none) and *@explicit_dir. Returns false after reporting an error. */
static bool include_dir_of(config_t *main_cfg, const char *main_dir, char **dir, bool *explicit_dir,
                           const config_setting_t **where, gd__errs *errs)
{
    *dir = NULL;
    *explicit_dir = false;
    *where = NULL;
    config_setting_t *g = config_lookup(main_cfg, "global");
    config_setting_t *d =
        g && config_setting_is_group(g) ? config_setting_get_member(g, "include_dir") : NULL;
    if (!d) {
        if (main_dir && !(*dir = join_path(main_dir, DEFAULT_INCLUDE_DIR))) {
            gd__errs_add(errs, "out of memory");
            return false;
        }
        return true;
    }
    *explicit_dir = true;
    *where = d;
    if (config_setting_type(d) != CONFIG_TYPE_STRING) {
        gd__errs_add(errs, "%s:%u: global.include_dir: expected a string but got %s", src_file(d),
                     src_line(d), type_name(d));
        return false;
    }
    char *why = NULL;
    char *val = gd__expand(config_setting_get_string(d), &why);
    if (!val) {
        gd__errs_add(errs, "%s:%u: global.include_dir: %s", src_file(d), src_line(d),
                     why ? why : "out of memory");
        free(why);
        return false;
    }
    if (!*val) {
        gd__errs_add(errs, "%s:%u: global.include_dir: must not be empty", src_file(d),
                     src_line(d));
        free(val);
        return false;
    }
    if (val[0] == '/') {
        *dir = val;
        return true;
    }
    if (!main_dir) {
        gd__errs_add(errs,
                     "%s:%u: global.include_dir: must be an absolute path in embedded "
                     "configuration",
                     src_file(d), src_line(d));
        free(val);
        return false;
    }
    *dir = join_path(main_dir, val);
    free(val);
    if (!*dir) {
        gd__errs_add(errs, "out of memory");
        return false;
    }
    return true;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_conf_name(const char *n)
{
    size_t len = strlen(n), slen = strlen(CONF_SUFFIX);
    /* Like the shell's *.conf: hidden files (editor leftovers) do not match. */
    return n[0] != '.' && len > slen && strcmp(n + len - slen, CONF_SUFFIX) == 0;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Lists the regular *.conf files of @dir as full paths sorted by name (byte
 * order). A missing @dir is fine unless @explicit_dir. */
static bool list_includes(const char *dir, bool explicit_dir, const config_setting_t *where,
                          const char *main_name, char ***out, size_t *nout, gd__errs *errs)
{
    *out = NULL;
    *nout = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT && !explicit_dir)
            return true;
        if (where)
            gd__errs_add(errs, "%s:%u: global.include_dir: cannot open '%s': %s", src_file(where),
                         src_line(where), dir, strerror(errno));
        else
            gd__errs_add(errs, "%s: cannot open include directory '%s': %s", main_name, dir,
                         strerror(errno));
        return false;
    }
    char **names = NULL;
    size_t n = 0;
    bool ok = true;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_conf_name(de->d_name))
            continue;
        char *full = join_path(dir, de->d_name);
        struct stat st;
        if (!full) {
            ok = false;
            gd__errs_add(errs, "out of memory");
            break;
        }
        if (stat(full, &st) != 0) {
            gd__errs_add(errs, "%s: cannot read: %s", full, strerror(errno));
            ok = false;
            free(full);
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            free(full);
            continue;
        }
        char **nv = realloc(names, (n + 1) * sizeof(*nv));
        if (!nv) {
            free(full);
            ok = false;
            gd__errs_add(errs, "out of memory");
            break;
        }
        names = nv;
        names[n++] = full;
    }
    closedir(d);
    if (!ok) {
        free_names(names, n);
        return false;
    }
    /* Full paths share the directory prefix, so this sorts by file name. */
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_names);
    *out = names;
    *nout = n;
    return true;
}

static const gd__conf_inst *find_inst(const gd__conf *c, int kind, const char *name)
{
    for (size_t i = 0; i < c->ninst[kind]; i++)
        if (strcmp(c->inst[kind][i].name, name) == 0)
            return &c->inst[kind][i];
    return NULL;
}

/* A string member of an instance group: NULL after reporting when invalid,
 * *@missing set when absent. */
static const char *inst_string(const config_setting_t *e, const char *key, const char *where,
                               bool *missing, gd__errs *errs)
{
    config_setting_t *m = config_setting_get_member(e, key);
    *missing = !m;
    if (!m)
        return NULL;
    if (config_setting_type(m) != CONFIG_TYPE_STRING) {
        gd__errs_add(errs, "%s:%u: %s: '%s' must be a string, not %s", src_file(m), src_line(m),
                     where, key, type_name(m));
        return NULL;
    }
    const char *s = config_setting_get_string(m);
    if (!*s) {
        gd__errs_add(errs, "%s:%u: %s: '%s' must not be empty", src_file(m), src_line(m), where,
                     key);
        return NULL;
    }
    return s;
}

static void add_instances(gd__conf *c, int kind, const config_setting_t *list, gd__errs *errs)
{
    const char *key = config_setting_name(list);
    int t = config_setting_type(list);
    /* An empty array `[]` is fine; a non-empty one holds scalars, which the
     * items check below reports. */
    if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) {
        gd__errs_add(errs, "%s:%u: %s: expected a list ( ... ) of groups but got %s",
                     src_file(list), src_line(list), key, type_name(list));
        return;
    }
    for (int i = 0; i < config_setting_length(list); i++) {
        config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        char where[64];
        snprintf(where, sizeof(where), "%s[%d]", key, i);
        if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
            gd__errs_add(errs, "%s:%u: %s: expected a group { plugin = \"...\"; ... } but got %s",
                         src_file(e), src_line(e), where, type_name(e));
            continue;
        }
        bool missing;
        const char *plugin = inst_string(e, "plugin", where, &missing, errs);
        if (missing)
            gd__errs_add(errs, "%s:%u: %s: missing 'plugin'", src_file(e), src_line(e), where);
        if (!plugin)
            continue;
        const char *name = inst_string(e, "name", where, &missing, errs);
        if (missing)
            name = plugin;
        if (!name)
            continue;
        const gd__conf_inst *first = find_inst(c, kind, name);
        if (first) {
            gd__errs_add(errs, "%s:%u: %s '%s' is defined twice (first at %s:%d)", src_file(e),
                         src_line(e), gd__conf_kind_name(kind), name, first->file, first->line);
            continue;
        }
        gd__conf_inst *nv = realloc(c->inst[kind], (c->ninst[kind] + 1) * sizeof(*nv));
        if (!nv) {
            gd__errs_add(errs, "out of memory");
            return;
        }
        c->inst[kind] = nv;
        c->inst[kind][c->ninst[kind]++] = (gd__conf_inst){
            .kind = kind,
            .plugin = plugin,
            .name = name,
            .file = src_file(e),
            .line = (int)src_line(e),
            .setting = e,
        };
    }
}

/* Checks the top level of one tree and collects its instances. */
static void walk_tree(gd__conf *c, config_t *cfg, bool is_main, gd__errs *errs)
{
    config_setting_t *root = config_root_setting(cfg);
    for (int i = 0; root && i < config_setting_length(root); i++) {
        config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(m);
        if (!name)
            continue;
        if (strcmp(name, "global") == 0) {
            if (!is_main)
                gd__errs_add(errs, "%s:%u: 'global' is only allowed in the main file", src_file(m),
                             src_line(m));
            else if (config_setting_type(m) != CONFIG_TYPE_GROUP)
                gd__errs_add(errs, "%s:%u: global: expected a group { ... } but got %s",
                             src_file(m), src_line(m), type_name(m));
            else
                c->global = m;
            continue;
        }
        size_t k;
        for (k = 0; k < NLISTS; k++)
            if (strcmp(name, instance_lists[k].key) == 0)
                break;
        if (k < NLISTS) {
            add_instances(c, instance_lists[k].kind, m, errs);
            continue;
        }
        gd__errs_add(errs,
                     "%s:%u: unknown top-level setting '%s' (expected %sinputs, processors or "
                     "outputs)",
                     src_file(m), src_line(m), name, is_main ? "global, " : "");
    }
}

int gd__conf_load(gd__conf *c, const char *path, const char *text, const char *text_name,
                  gd__errs *errs)
{
    gd__errs scratch = {0};
    if (!errs)
        errs = &scratch; /* still fail on errors the caller did not ask to see */
    memset(c, 0, sizeof(*c));
    size_t nerr_before = errs->n;
    char *main_dir = NULL, *inc_dir = NULL;
    char **includes = NULL;
    size_t nincludes = 0;
    bool explicit_dir;
    const config_setting_t *where;
    config_t first;

    if (!path && !text) {
        gd__errs_add(errs, "no configuration file or text given");
        return GD_ECONFIG;
    }
    const char *main_name = path ? path : (text_name ? text_name : NO_FILE_NAME);
    if ((path && !(c->main_path = strdup(path))) || (path && !(main_dir = dir_of(path))) ||
        add_file(c, main_name) < 0) {
        gd__errs_add(errs, "out of memory");
        goto out;
    }
    /* c->files[0] outlives the trees, so settings of embedded text may
     * point at it. */
    main_name = c->files[0];

    /* The include directory is named inside the main file, but the trees
     * must not move once parsed (settings point back at their config_t):
     * read the main file once to find the files, then into its final slot. */
    config_init(&first);
    if (!parse_tree(&first, path, text, main_name, main_dir, errs)) {
        config_destroy(&first);
        goto out;
    }
    bool ok = include_dir_of(&first, main_dir, &inc_dir, &explicit_dir, &where, errs) &&
              (!inc_dir ||
               list_includes(inc_dir, explicit_dir, where, main_name, &includes, &nincludes, errs));
    config_destroy(&first);
    if (!ok)
        goto out;

    c->trees = calloc(1 + nincludes, sizeof(*c->trees));
    if (!c->trees) {
        gd__errs_add(errs, "out of memory");
        goto out;
    }
    config_init(&c->trees[0]);
    c->ntrees = 1;
    if (!parse_tree(&c->trees[0], path, text, main_name, main_dir, errs))
        goto out;
    walk_tree(c, &c->trees[0], true, errs);

    for (size_t i = 0; i < nincludes; i++) {
        if (add_file(c, includes[i]) < 0) {
            gd__errs_add(errs, "out of memory");
            break;
        }
        config_t *cfg = &c->trees[c->ntrees++];
        config_init(cfg);
        /* @include inside a drop-in is relative to the main file's folder too. */
        if (parse_tree(cfg, c->files[c->nfiles - 1], NULL, c->files[c->nfiles - 1], main_dir, errs))
            walk_tree(c, cfg, false, errs);
    }

out:
    free_names(includes, nincludes);
    free(inc_dir);
    free(main_dir);
    int rc = errs->n > nerr_before ? GD_ECONFIG : 0;
    gd__errs_free(&scratch);
    return rc;
}

void gd__conf_free(gd__conf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->ntrees; i++)
        config_destroy(&c->trees[i]);
    free(c->trees);
    for (size_t k = 0; k < sizeof(c->inst) / sizeof(c->inst[0]); k++)
        free(c->inst[k]);
    for (size_t i = 0; i < c->nfiles; i++)
        free(c->files[i]);
    free(c->files);
    free(c->main_path);
    memset(c, 0, sizeof(*c));
}
