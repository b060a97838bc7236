/* SPDX-License-Identifier: Apache-2.0 */
/*
 * example_input.c - a complete polled input to copy: "loadavg" reads the
 * system load averages from /proc/loadavg on every collect.
 *
 *     loadavg,host=web-1 load1=0.52,load5=0.58,load15=0.59,procs_running=1i,procs_total=234i 1700000000000000000
 *
 * Build (see the Makefile next to this file):
 *     cc -shared -fPIC -Wall -Wextra -o loadavg.so example_input.c $(pkg-config --cflags --libs gatherd)
 * The file must be named after the plugin (.name below): loadavg.so.
 *
 * Configure:
 *     inputs = ( { plugin = "loadavg"; interval = "10s"; normalize = true;
 *                  tags = { site = "lab-a"; }; } );
 *
 * To make your own plugin: rename the file, change .name, the config struct,
 * the option table and collect(). The rest is the same for every polled input.
 */
#define _POSIX_C_SOURCE 200809L /* gethostname(), sysconf() under -std=c11 */
#include <gatherd/gatherd.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* /proc/loadavg is one short line: "0.52 0.58 0.59 1/234 5678". */
#define MAX_LINE_BYTES 256
#define HOST_NAME_BYTES 256

/* ---- configuration --------------------------------------------------------
 * The core parses and validates every option against the table below and
 * fills this struct (zeroed first, defaults applied) before init(). The core
 * owns the struct and its strings: read them, never free them. Each option
 * type fills one C type: BOOL bool, INT int64_t, DOUBLE double, DURATION
 * double (seconds), STRING char * (NULL when unset), ENUM int.
 */
struct loadavg_cfg {
    char *path;
    char *measurement;
    bool host_tag;
    bool normalize;
    bool procs;
};

/* Names must not repeat the core's common input options (plugin, name,
 * interval, align, jitter, tags): `gatherd --describe loadavg` lists both. */
static const struct gd_option loadavg_options[] = {
    GD_OPT_STRING("path", "/proc/loadavg", 0, offsetof(struct loadavg_cfg, path),
                  "file to read, in /proc/loadavg format"),
    GD_OPT_STRING("measurement", "loadavg", 0, offsetof(struct loadavg_cfg, measurement),
                  "measurement name of every point"),
    GD_OPT_BOOL("host_tag", "true", 0, offsetof(struct loadavg_cfg, host_tag),
                "add the tag host = this machine's host name"),
    GD_OPT_BOOL("normalize", "false", 0, offsetof(struct loadavg_cfg, normalize),
                "divide the load averages by the number of online CPUs"),
    GD_OPT_BOOL("procs", "true", 0, offsetof(struct loadavg_cfg, procs),
                "add the integer fields procs_running and procs_total"),
    GD_OPT_END,
};

/* ---- state ------------------------------------------------------------------
 * Built by init() on the main thread, used by collect() on a worker thread.
 * The core never runs two collects of one instance at once, so collect()
 * may change the state without a lock.
 */
struct loadavg {
    gd_instance *inst; /* for logging and counting */
    const struct loadavg_cfg *cfg;
    char host[HOST_NAME_BYTES];
    double ncpu; /* divisor when normalize is set, else 1 */
};

struct reading {
    double load[3];
    int64_t running;
    int64_t total;
};

static void loadavg_destroy(void *state)
{
    free(state); /* free(NULL) is fine: destroy accepts what init left */
}

static int loadavg_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct loadavg_cfg *cfg = cfgp;

    /* Checks the table cannot express. Log why, then return an error code:
     * the daemon then refuses to start (or a reload keeps the old config). */
    if (!cfg->measurement[0] || strpbrk(cfg->measurement, "\r\n")) {
        gd_log(inst, GD_ERROR, "loadavg: measurement must be a non-empty single line");
        return GD_ECONFIG;
    }
    struct loadavg *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    s->ncpu = 1.0;
    if (cfg->normalize) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->ncpu = n > 0 ? (double)n : 1.0;
    }
    if (cfg->host_tag && gethostname(s->host, sizeof(s->host) - 1) < 0) {
        gd_log(inst, GD_WARN, "loadavg: cannot read the host name (%s); no host tag",
               strerror(errno));
        s->host[0] = '\0';
    }
    gd_log(inst, GD_DEBUG, "loadavg: reading %s", cfg->path);
    *state = s;
    return 0;
}

/* Parses "0.52 0.58 0.59 1/234 5678". Returns 0 or GD_EPROTO. */
static int parse_line(const char *line, struct reading *r)
{
    long long running, total;
    if (sscanf(line, "%lf %lf %lf %lld/%lld", &r->load[0], &r->load[1], &r->load[2], &running,
               &total) != 5)
        return GD_EPROTO;
    r->running = running;
    r->total = total;
    return 0;
}

/* Reads the first line of @path into @buf. Returns 0, or GD_EIO with the
 * reason in *@why. */
static int read_line(const char *path, char *buf, size_t len, const char **why)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        *why = strerror(errno);
        return GD_EIO;
    }
    int rc = 0;
    if (!fgets(buf, (int)len, f)) {
        *why = ferror(f) ? strerror(errno) : "empty file";
        rc = GD_EIO;
    }
    fclose(f);
    return rc;
}

/* ---- collect -------------------------------------------------------------------
 * Runs on a worker thread every interval; may block. Add points to @out,
 * which the core owns: do not keep it, free it or emit it. The core adds the
 * configured `tags`, runs the processors and queues the points for the
 * outputs. Return 0, or a negative GD_E* code: the error is counted and
 * logged (rate-limited) by the core, and points already added are still
 * forwarded.
 */
static int loadavg_collect(void *state, gd_batch *out)
{
    struct loadavg *s = state;
    char line[MAX_LINE_BYTES];
    const char *why = NULL;
    struct reading r;

    /* Read and parse first, build the point after: a point left without
     * fields would be rejected by the outputs. */
    int rc = read_line(s->cfg->path, line, sizeof(line), &why);
    if (rc < 0) {
        gd_log_ratelimited(s->inst, GD_WARN, "loadavg: cannot read %s: %s", s->cfg->path, why);
        return rc;
    }
    rc = parse_line(line, &r);
    if (rc < 0) {
        gd_log_ratelimited(s->inst, GD_WARN, "loadavg: %s: unexpected content", s->cfg->path);
        return rc;
    }

    gd_point *p = gd_batch_add(out, s->cfg->measurement, gd_now_ns());
    if (!p)
        return GD_ENOMEM;
    if (s->host[0])
        rc = gd_point_tag(p, "host", s->host);
    if (rc == 0)
        rc = gd_point_f64(p, "load1", r.load[0] / s->ncpu);
    if (rc == 0)
        rc = gd_point_f64(p, "load5", r.load[1] / s->ncpu);
    if (rc == 0)
        rc = gd_point_f64(p, "load15", r.load[2] / s->ncpu);
    if (rc == 0 && s->cfg->procs)
        rc = gd_point_i64(p, "procs_running", r.running);
    if (rc == 0 && s->cfg->procs)
        rc = gd_point_i64(p, "procs_total", r.total);
    return rc;
}

/* ---- descriptor --------------------------------------------------------------
 * Designated initialisers only; struct_size lets a newer core read an older
 * plugin. A polled input sets collect; an event-driven one sets start and
 * stop instead and hands batches over with gd_emit().
 */
static const struct gd_input_ops loadavg_ops = {
    .struct_size = sizeof(struct gd_input_ops),
    .init = loadavg_init,
    .destroy = loadavg_destroy,
    .collect = loadavg_collect,
};

static const struct gd_plugin loadavg_plugin = {
    GD_PLUGIN_ABI,
    .name = "loadavg", /* the file must be loadavg.so */
    .version = "1.0.0",
    .kind = GD_KIND_INPUT,
    .summary = "system load averages from /proc/loadavg",
    .options = loadavg_options,
    .config_size = sizeof(struct loadavg_cfg),
    .ops = &loadavg_ops,
};

/* The one exported symbol. */
GD_PLUGIN_ENTRY
{
    return &loadavg_plugin;
}
