/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harness.h - what integration tests share: a temp dir per test, running the
 * built daemon, and real servers (PostgreSQL, InfluxDB) on loopback, on free
 * ports, in temp dirs, stopped by pid.
 *
 * A server that cannot start fails the test when CI=true is set; elsewhere
 * the test is skipped with a message saying what is missing.
 */
#ifndef GATHERD_TESTS_HARNESS_H
#define GATHERD_TESTS_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

/* The per-test temp dir, made by gdt_setup(). */
extern char gdt_dir[64];

/* gdt_setup() - make gdt_dir and put the test plugins on the plugin path
 * (use as a TestSuite .init). gdt_teardown() removes the dir (.fini). */
void gdt_setup(void);
void gdt_teardown(void);

/* gdt_path() - "gdt_dir/NAME" (one of 8 rotating static buffers). */
const char *gdt_path(const char *name);

void gdt_write_file(const char *path, const char *text);
/* gdt_read_file() - the whole file, malloc'd ("" when missing). */
char *gdt_read_file(const char *path);
void gdt_msleep(int ms);

/* gdt_run() - run `gatherd ARGS` with stdout to out.txt and stderr to
 * err.txt in gdt_dir; returns the exit status (-1 if killed). */
int gdt_run(const char *args);
/* gdt_spawn() - start `gatherd -f -c CONF` in the background, stdout and
 * stderr to daemon.out / daemon.err in gdt_dir. */
pid_t gdt_spawn(const char *conf);
/* gdt_wait_exit() - wait up to @timeout_s for @pid; its exit status, or
 * 128+signal, or -1 after killing it on timeout. */
int gdt_wait_exit(pid_t pid, int timeout_s);

/* gdt_daemon_log() - daemon.err of the last gdt_spawn() (malloc'd); asserts
 * it holds no AddressSanitizer, LeakSanitizer or UBSan report. */
char *gdt_daemon_log(void);

/* The counters an instance logs at shutdown:
 * "[output:file/main] received=.. delivered=.. dropped=.. retries=.. errors=.. ... queued=..". */
typedef struct gdt_counters {
    unsigned long long received, delivered, dropped, retries, errors, queued;
    unsigned long long rejected, shutdown; /* dropped{rejected}, dropped{shutdown} */
} gdt_counters;

/* gdt_counters_of() - parse the counter line of @who ("output:file/main",
 * "input:sim/chambers") in @log; asserts the line exists and, for outputs,
 * that received == delivered + dropped + queued. */
gdt_counters gdt_counters_of(const char *log, const char *who);

/* ---- servers ------------------------------------------------------------ */

typedef struct gdt_server {
    char dir[128];
    int port;     /* the client port */
    int rpc_port; /* InfluxDB's RPC port */
    bool running;
} gdt_server;

/* gdt_free_port() - a TCP port on 127.0.0.1 nobody listens on right now. */
int gdt_free_port(void);

/* gdt_srv_start() - start a server with tests/servers/SCRIPT, which follows
 * one convention:  SCRIPT start DIR PORT RPC_PORT  (prints nothing needed;
 * exit 0 once the server answers), SCRIPT stop DIR (data kept),
 * SCRIPT destroy DIR (stop if running, remove DIR). The first call makes a
 * fresh temp dir /tmp/gd-KIND-XXXXXX and picks two free ports; later calls
 * start the same server again (same dir, same ports). A test may write
 * files into s->dir before the first start by calling gdt_srv_prepare().
 * Fails the test (CI=true) or skips it when the script fails. */
void gdt_srv_start(gdt_server *s, const char *script, const char *what);
/* gdt_srv_prepare() - make s->dir and pick the ports without starting. */
void gdt_srv_prepare(gdt_server *s, const char *kind);
void gdt_srv_stop(gdt_server *s, const char *script);
/* gdt_srv_destroy() - stop and remove everything; accepts a never-started s. */
void gdt_srv_destroy(gdt_server *s, const char *script);

/* gdt_pg_start() - the first call makes a cluster (initdb) in a fresh temp
 * dir on a free port, with a database "gatherd" and user "postgres" (trust
 * auth); later calls start the same cluster again. Fails or skips the test
 * when the server cannot start (see above). */
void gdt_pg_start(gdt_server *s);
/* gdt_pg_stop() - fast shutdown; the data stays for a later start. */
void gdt_pg_stop(gdt_server *s);
/* gdt_pg_destroy() - stop and remove everything. Accepts a never-started s. */
void gdt_pg_destroy(gdt_server *s);
/* gdt_pg_conninfo() - "host=127.0.0.1 port=N user=postgres dbname=gatherd". */
const char *gdt_pg_conninfo(const gdt_server *s);

/* The same for InfluxDB 1.x, with a database "gatherd". */
void gdt_influx_start(gdt_server *s);
void gdt_influx_stop(gdt_server *s);
void gdt_influx_destroy(gdt_server *s);
/* gdt_influx_url() - "http://127.0.0.1:N". */
const char *gdt_influx_url(const gdt_server *s);

#endif
