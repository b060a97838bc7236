/* SPDX-License-Identifier: Apache-2.0 */
#include "harness.h"
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef GATHERD_BIN
#error GATHERD_BIN must name the built daemon
#endif
#ifndef GATHERD_SERVERS
#error GATHERD_SERVERS must name tests/servers
#endif

char gdt_dir[64];

void gdt_setup(void)
{
    strcpy(gdt_dir, "/tmp/gd-test-XXXXXX");
    cr_assert_not_null(mkdtemp(gdt_dir));
    const char *dev = getenv("GATHERD_PLUGIN_PATH"), *tp = getenv("GATHERD_TEST_PLUGINS");
    cr_assert(dev && tp, "run through meson test (plugin paths unset)");
    if (!strstr(dev, tp)) {
        char path[2048];
        snprintf(path, sizeof(path), "%s:%s", dev, tp);
        setenv("GATHERD_PLUGIN_PATH", path, 1);
    }
}

void gdt_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", gdt_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", gdt_dir);
}

const char *gdt_path(const char *name)
{
    static char buf[8][256];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, 256, "%s/%s", gdt_dir, name);
    return p;
}

void gdt_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

char *gdt_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc(1, (size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        s[0] = 0;
    fclose(f);
    return s;
}

void gdt_msleep(int ms)
{
    usleep((useconds_t)ms * 1000);
}

int gdt_run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s %s >%s 2>%s", GATHERD_BIN, args, gdt_path("out.txt"),
             gdt_path("err.txt"));
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

pid_t gdt_spawn(const char *conf)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (!freopen(gdt_path("daemon.out"), "w", stdout) ||
            !freopen(gdt_path("daemon.err"), "w", stderr))
            _exit(126);
        execl(GATHERD_BIN, GATHERD_BIN, "-f", "-c", conf, (char *)NULL);
        _exit(127);
    }
    return pid;
}

int gdt_wait_exit(pid_t pid, int timeout_s)
{
    for (int i = 0; i < timeout_s * 100; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* The value of "@key=N" in [@p, @eol), or 0. */
static unsigned long long field_in_line(const char *p, const char *eol, const char *key)
{
    const char *k = strstr(p, key);
    if (!k || (eol && k > eol))
        return 0;
    return strtoull(k + strlen(key), NULL, 10);
}

char *gdt_daemon_log(void)
{
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert(!strstr(log, "AddressSanitizer") && !strstr(log, "LeakSanitizer") &&
                  !strstr(log, "runtime error:"),
              "sanitizer report:\n%s", log);
    return log;
}

gdt_counters gdt_counters_of(const char *log, const char *who)
{
    gdt_counters c = {0};
    char tag[160];
    snprintf(tag, sizeof(tag), "[%s] received=", who);
    const char *p = strstr(log, tag);
    cr_assert_not_null(p, "no counters logged for %s:\n%s", who, log);
    p = strstr(p, "received=");
    cr_assert_eq(sscanf(p, "received=%llu delivered=%llu dropped=%llu retries=%llu errors=%llu",
                        &c.received, &c.delivered, &c.dropped, &c.retries, &c.errors),
                 5, "unreadable counters: %s", p);
    const char *eol = strchr(p, '\n');
    c.queued = field_in_line(p, eol, " queued=");
    c.rejected = field_in_line(p, eol, "dropped{rejected}=");
    c.shutdown = field_in_line(p, eol, "dropped{shutdown}=");
    if (strncmp(who, "output:", 7) == 0)
        cr_assert_eq(c.received, c.delivered + c.dropped + c.queued,
                     "%s: received %llu != delivered %llu + dropped %llu + queued %llu", who,
                     c.received, c.delivered, c.dropped, c.queued);
    return c;
}

/* ---- servers ------------------------------------------------------------ */

int gdt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Run a server script; on failure fail the test in CI, else skip it. */
static void script(const char *what, const char *destroy_dir, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Criterion runs no .fini after a skip or a failed assertion in .init, so a
 * server that failed is destroyed here first (@destroy_dir: its script). */
static void script(const char *what, const char *destroy_dir, const char *fmt, ...)
{
    char args[1024], cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "%s/%s >/dev/null", GATHERD_SERVERS, args);
    int st = system(cmd);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return;
    if (destroy_dir) {
        char d[1024];
        snprintf(d, sizeof(d), "%s/%s >/dev/null 2>&1", GATHERD_SERVERS, destroy_dir);
        if (system(d) != 0)
            fprintf(stderr, "cleanup failed: %s\n", d);
        gdt_teardown();
    }
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0)
        cr_assert_fail("%s failed (CI=true: a missing server is an error): %s", what, cmd);
    cr_skip_test("%s failed; skipping (set CI=true to make this an error): %s", what, cmd);
}

static void server_dir(gdt_server *s, const char *kind)
{
    if (s->dir[0])
        return;
    snprintf(s->dir, sizeof(s->dir), "/tmp/gd-%s-XXXXXX", kind);
    cr_assert_not_null(mkdtemp(s->dir));
    s->port = gdt_free_port();
    s->rpc_port = gdt_free_port();
}

void gdt_srv_prepare(gdt_server *s, const char *kind) { server_dir(s, kind); }

void gdt_srv_start(gdt_server *s, const char *script_name, const char *what)
{
    char kind[32];
    snprintf(kind, sizeof(kind), "%.*s", (int)strcspn(script_name, "."), script_name);
    server_dir(s, kind);
    char destroy[256];
    snprintf(destroy, sizeof(destroy), "%s destroy %s", script_name, s->dir);
    script(what, destroy, "%s start %s %d %d", script_name, s->dir, s->port, s->rpc_port);
    s->running = true;
}

void gdt_srv_stop(gdt_server *s, const char *script_name)
{
    if (s->running)
        script("stopping a server", NULL, "%s stop %s", script_name, s->dir);
    s->running = false;
}

void gdt_srv_destroy(gdt_server *s, const char *script_name)
{
    if (s->dir[0]) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "%s/%s destroy %s >/dev/null 2>&1", GATHERD_SERVERS,
                 script_name, s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot destroy %s\n", s->dir);
    }
    memset(s, 0, sizeof(*s));
}

void gdt_pg_start(gdt_server *s) { gdt_srv_start(s, "pg.sh", "starting PostgreSQL"); }
void gdt_pg_stop(gdt_server *s) { gdt_srv_stop(s, "pg.sh"); }
void gdt_pg_destroy(gdt_server *s) { gdt_srv_destroy(s, "pg.sh"); }

const char *gdt_pg_conninfo(const gdt_server *s)
{
    static char buf[128];
    snprintf(buf, sizeof(buf), "host=127.0.0.1 port=%d user=postgres dbname=gatherd", s->port);
    return buf;
}

void gdt_influx_start(gdt_server *s) { gdt_srv_start(s, "influxdb.sh", "starting InfluxDB"); }
void gdt_influx_stop(gdt_server *s) { gdt_srv_stop(s, "influxdb.sh"); }
void gdt_influx_destroy(gdt_server *s) { gdt_srv_destroy(s, "influxdb.sh"); }

const char *gdt_influx_url(const gdt_server *s)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "http://127.0.0.1:%d", s->port);
    return buf;
}
