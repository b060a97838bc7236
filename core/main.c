/* SPDX-License-Identifier: Apache-2.0 */
/* main.c - the gatherd command line. */
#include "options.h"
#include "runtime.h"
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef GD_SYSCONF_DIR
#define GD_SYSCONF_DIR "/etc/gatherd"
#endif

#define DEFAULT_CONFIG GD_SYSCONF_DIR "/gatherd.conf"

/* Batches of thousands of points allocate and free megabytes many times a
 * second. With glibc's defaults those go to fresh mmap()s or get trimmed and
 * faulted in again, which cost as much CPU as building the points; keeping
 * up to this much freed memory around makes the reuse cheap. */
#define MALLOC_MMAP_THRESHOLD_BYTES (16 * 1024 * 1024)
#define MALLOC_TRIM_THRESHOLD_BYTES (64 * 1024 * 1024)

enum {
    OPT_VERSION = 256,
    OPT_LIST,
    OPT_DESCRIBE,
    OPT_ONCE,
    OPT_INPUT,
    OPT_PRINT_DEFAULT,
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gatherd [options]\n"
            "  -c, --config FILE       main configuration file (default " DEFAULT_CONFIG
            ";\n"
            "                          the embedded default when absent)\n"
            "  -f, --foreground        stay in the foreground\n"
            "  -P, --pidfile FILE      write the daemon's pid to FILE\n"
            "  -t, --test              validate the configuration and exit (0 ok, 1 invalid)\n"
            "      --once              collect once from each polled input, print line\n"
            "                          protocol on stdout after the processors, write nothing\n"
            "      --input NAME        with --once: only this input\n"
            "      --list-plugins      list the plugins found on the search path\n"
            "      --describe PLUGIN   print a plugin's options\n"
            "      --print-default-config  print the embedded default configuration\n"
            "      --version           print the version\n"
            "  -h, --help              this text\n"
            "Plugins are searched in $GATHERD_PLUGIN_PATH, global.plugin_dir, then %s.\n",
            GD_PLUGIN_DIR);
}

static int list_plugins(void)
{
    gd__loader l;
    gd__errs errs = {0};
    gd__loader_init(&l, NULL);
    gd__loader_scan(&l, &errs);
    for (size_t i = 0; i < l.nlibs; i++) {
        const struct gd_plugin *d = &l.libs[i]->desc;
        printf("%-10s %-16s %-8s %s\n", gd__kind_name((int)d->kind), d->name, d->version,
               d->summary);
    }
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "warning: %s\n", errs.msgs[i]);
    gd__errs_free(&errs);
    gd__loader_free(&l);
    return 0;
}

static int describe(const char *name)
{
    gd__loader l;
    const gd__plugin_lib *lib;
    char *why = NULL;
    gd__loader_init(&l, NULL);
    if (gd__loader_get(&l, name, &lib, &why) < 0) {
        fprintf(stderr, "%s\n", why ? why : "cannot load plugin");
        free(why);
        gd__loader_free(&l);
        return 1;
    }
    const struct gd_plugin *d = &lib->desc;
    printf("%s %s (%s plugin, ABI %u.%u)\n  %s\n  file: %s\n\n", d->name, d->version,
           gd__kind_name((int)d->kind), d->abi_major, d->abi_minor, d->summary, lib->path);
    if ((int)d->kind == GD_KIND_INPUT)
        printf("  %s\n\n", lib->ops.input.collect ? "polled: collect() runs every interval"
                                                   : "event-driven: emits as data arrives");
    printf("Plugin options:\n");
    if (d->options && d->options[0].name)
        gd__opts_describe(d->options, stdout, 2);
    else
        printf("  (none)\n");
    printf("\nOptions of every %s (handled by the core):\n", gd__kind_name((int)d->kind));
    gd__opts_describe(gd__common_options((int)d->kind), stdout, 2);
    gd__loader_free(&l);
    return 0;
}

static int daemonize(const char *pidfile)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -errno;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    (void)pidfile;
    return 0;
}

static int write_pidfile(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "%ld\n", (long)getpid());
    return fclose(f) == 0 ? 0 : -errno;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"pidfile", required_argument, NULL, 'P'},
        {"test", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"list-plugins", no_argument, NULL, OPT_LIST},
        {"describe", required_argument, NULL, OPT_DESCRIBE},
        {"once", no_argument, NULL, OPT_ONCE},
        {"input", required_argument, NULL, OPT_INPUT},
        {"print-default-config", no_argument, NULL, OPT_PRINT_DEFAULT},
        {0},
    };
    const char *config = NULL, *pidfile = NULL, *input = NULL;
    bool foreground = false, test = false, once = false;
    int c;

    mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES);
    mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES);
    while ((c = getopt_long(argc, argv, "c:fP:th", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'f': foreground = true; break;
        case 'P': pidfile = optarg; break;
        case 't': test = true; break;
        case 'h': usage(stdout); return 0;
        case OPT_VERSION:
            printf("gatherd %s (plugin ABI %d.%d)\n", gd_version(), GD_ABI_MAJOR, GD_ABI_MINOR);
            return 0;
        case OPT_LIST: return list_plugins();
        case OPT_DESCRIBE: return describe(optarg);
        case OPT_ONCE: once = true; break;
        case OPT_INPUT: input = optarg; break;
        case OPT_PRINT_DEFAULT: fputs(gd__default_config(), stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gatherd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (input && !once) {
        fprintf(stderr, "gatherd: --input needs --once\n");
        return 2;
    }
    if (!config && access(DEFAULT_CONFIG, F_OK) == 0)
        config = DEFAULT_CONFIG;

    gd__rt *rt = gd__rt_new(config);
    if (!rt) {
        fprintf(stderr, "gatherd: out of memory\n");
        return 1;
    }
    int code;
    if (test) {
        code = gd__rt_check(rt, stdout, stderr);
    } else if (once) {
        code = gd__rt_once(rt, input, stdout);
    } else {
        if (!config)
            gd_log(NULL, GD_INFO, "no %s: using the embedded default configuration "
                                  "(gatherd --print-default-config shows it)",
                   DEFAULT_CONFIG);
        /* Validate before leaving the terminal, so a bad file fails here. */
        if (!foreground) {
            FILE *devnull = fopen("/dev/null", "w");
            int rc = gd__rt_check(rt, devnull ? devnull : stdout, stderr);
            if (devnull)
                fclose(devnull);
            if (rc != 0) {
                gd__rt_free(rt);
                return rc;
            }
        }
        if (!foreground && daemonize(pidfile) < 0) {
            fprintf(stderr, "gatherd: cannot daemonize: %s\n", strerror(errno));
            gd__rt_free(rt);
            return 1;
        }
        if (pidfile && write_pidfile(pidfile) < 0)
            gd_log(NULL, GD_WARN, "cannot write pid file %s: %s", pidfile, strerror(errno));
        code = gd__rt_run(rt);
        if (pidfile)
            unlink(pidfile);
    }
    gd__rt_free(rt);
    return code;
}
