/* SPDX-License-Identifier: Apache-2.0 */
/* The mqtt input end to end: a real mosquitto broker (one throwaway broker
 * per test, tests/servers/mosquitto.sh), a libmosquitto publisher in the
 * test, the built daemon with the mqtt input writing to a file output. The
 * file is compared with what was published. */
#include "harness.h"
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static gdt_server srv;

static void suite_fini(void)
{
    gdt_srv_destroy(&srv, "mosquitto.sh");
    gdt_teardown();
}

TestSuite(mqtt, .init = gdt_setup, .fini = suite_fini, .timeout = 60);

static void broker_start(void)
{
    gdt_srv_start(&srv, "mosquitto.sh", "starting mosquitto");
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- publisher ---------------------------------------------------------- */

static atomic_int acked;
/* The publisher's TLS files (client certificate, key and CA), when set. */
static char pub_tls_dir[160];

static void on_publish(struct mosquitto *m, void *ctx, int mid)
{
    (void)m;
    (void)ctx;
    (void)mid;
    atomic_fetch_add(&acked, 1);
}

/* A connected publisher (as @user/@pass when set), its network thread
 * running. */
static struct mosquitto *pub_open(const char *user, const char *pass)
{
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(NULL, true, NULL);
    cr_assert_not_null(m);
    if (user)
        mosquitto_username_pw_set(m, user, pass);
    mosquitto_publish_callback_set(m, on_publish);
    if (pub_tls_dir[0]) {
        char ca[256], crt[256], key[256];
        snprintf(ca, sizeof(ca), "%s/ca.crt", pub_tls_dir);
        snprintf(crt, sizeof(crt), "%s/client.crt", pub_tls_dir);
        snprintf(key, sizeof(key), "%s/client.key", pub_tls_dir);
        cr_assert_eq(mosquitto_tls_set(m, ca, NULL, crt, key, NULL), MOSQ_ERR_SUCCESS);
    }
    int rc = mosquitto_connect(m, pub_tls_dir[0] ? "localhost" : "127.0.0.1", srv.port, 30);
    cr_assert_eq(rc, MOSQ_ERR_SUCCESS, "publisher connect: %s", mosquitto_strerror(rc));
    cr_assert_eq(mosquitto_loop_start(m), MOSQ_ERR_SUCCESS);
    atomic_store(&acked, 0);
    return m;
}

static void pub(struct mosquitto *m, const char *topic, const char *payload, int qos)
{
    int rc = mosquitto_publish(m, NULL, topic, (int)strlen(payload), payload, qos, false);
    cr_assert_eq(rc, MOSQ_ERR_SUCCESS, "publish: %s", mosquitto_strerror(rc));
}

/* Wait until the broker acknowledged @n QoS 1 publishes, then disconnect. */
static void pub_close(struct mosquitto *m, int n)
{
    int64_t until = mono_ms() + 10000;
    while (atomic_load(&acked) < n && mono_ms() < until)
        gdt_msleep(10);
    cr_assert_geq(atomic_load(&acked), n, "broker acknowledged %d of %d publishes",
                  atomic_load(&acked), n);
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
}

/* ---- daemon ------------------------------------------------------------- */

static void write_conf(const char *mqtt_opts)
{
    char conf[4096];
    snprintf(conf, sizeof(conf),
             "global = { log_level = \"debug\"; shutdown_timeout = \"10s\"; };\n"
             "inputs = ( { plugin = \"mqtt\"; name = \"fleet\"; url = \"mqtt://127.0.0.1:%d\";\n"
             "             reconnect_min = \"100ms\"; reconnect_max = \"500ms\";\n"
             "             %s } );\n"
             "outputs = ( { plugin = \"file\"; name = \"copy\"; path = \"%s\";\n"
             "              flush_interval = \"50ms\"; } );\n",
             srv.port, mqtt_opts, gdt_path("out.lp"));
    gdt_write_file(gdt_path("gatherd.conf"), conf);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Wait until the daemon's log holds @needle @n times. */
static void wait_log(const char *needle, int n, int timeout_ms)
{
    int64_t until = mono_ms() + timeout_ms;
    int got = 0;
    for (;;) {
        char *log = gdt_read_file(gdt_path("daemon.err"));
        got = count_of(log, needle);
        free(log);
        if (got >= n || mono_ms() > until)
            break;
        gdt_msleep(20);
    }
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_geq(got, n, "\"%s\" logged %d times, want %d:\n%s", needle, got, n, log);
    free(log);
}

/* Wait until the output file has at least @n lines; return its text. */
static char *wait_lines(int n, int timeout_ms)
{
    int64_t until = mono_ms() + timeout_ms;
    for (;;) {
        char *text = gdt_read_file(gdt_path("out.lp"));
        if (count_of(text, "\n") >= n || mono_ms() > until)
            return text;
        free(text);
        gdt_msleep(20);
    }
}

static pid_t spawn_connected(void)
{
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    wait_log("mqtt: subscribed to", 1, 10000);
    return pid;
}

static char *stop_daemon(pid_t pid)
{
    kill(pid, SIGTERM);
    int st = gdt_wait_exit(pid, 20);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(st, 0, "exit status %d:\n%s", st, log);
    return log;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Split @text into sorted lines (modifies it). */
static size_t sorted_lines(char *text, char **v, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n < max;
         l = strtok_r(NULL, "\n", &save))
        v[n++] = l;
    qsort(v, n, sizeof(*v), cmp_str);
    return n;
}

/* The file holds exactly @want (lines, any order). */
static void assert_same_lines(char *got_text, char *want_text)
{
    static char *got[4096], *want[4096];
    size_t ng = sorted_lines(got_text, got, 4096), nw = sorted_lines(want_text, want, 4096);
    cr_assert_eq(ng, nw, "file has %zu lines, %zu published", ng, nw);
    for (size_t i = 0; i < nw; i++)
        cr_assert_str_eq(got[i], want[i], "line %zu", i);
}

/* ---- tests -------------------------------------------------------------- */

Test(mqtt, line_protocol_at_qos1_arrives_exactly)
{
    broker_start();
    write_conf("topics = ( { topic = \"chambers/+/telemetry\"; qos = 1; } );");
    pid_t pid = spawn_connected();

    enum { MSGS = 300 };
    size_t cap = MSGS * 160;
    char *want = calloc(1, cap);
    size_t wl = 0;
    struct mosquitto *m = pub_open(NULL, NULL);
    for (int i = 0; i < MSGS; i++) {
        char topic[64], payload[256];
        snprintf(topic, sizeof(topic), "chambers/c%d/telemetry", i % 7);
        /* Every third message carries two lines. */
        int n = snprintf(payload, sizeof(payload),
                         "chamber,device=c%d temp_c=%d.25,door=false,cycles=%di %lld\n", i % 7,
                         20 + i % 5, i, 1700000000000000000LL + i * 1000LL);
        if (i % 3 == 0)
            snprintf(payload + n, sizeof(payload) - (size_t)n,
                     "chamber,device=c%d rh_pct=45.5,mode=\"run \\\"x\\\"\" %lld\n", i % 7,
                     1700000000000000500LL + i * 1000LL);
        pub(m, topic, payload, 1);
        wl += (size_t)snprintf(want + wl, cap - wl, "%s", payload);
    }
    pub_close(m, MSGS);
    int lines = count_of(want, "\n");
    char *got = wait_lines(lines, 15000);
    char *log = stop_daemon(pid);
    assert_same_lines(got, want);
    gdt_counters c = gdt_counters_of(log, "output:file/copy");
    cr_assert_eq(c.delivered, (unsigned long long)lines);
    cr_assert_null(strstr(log, "parse_error"), "%s", log);
    free(got);
    free(want);
    free(log);
}

Test(mqtt, json_payloads_with_topic_tags)
{
    broker_start();
    write_conf("topics = ( { topic = \"chambers/+/telemetry\"; qos = 1; } );\n"
               "format = \"json\"; measurement = \"chamber\";\n"
               "topic_tags = \"chambers/{device}/telemetry\"; topic_tag = \"topic\";\n"
               "tag_keys = [ \"site\" ]; time_key = \"ts\"; time_format = \"unix_ms\";");
    pid_t pid = spawn_connected();
    struct mosquitto *m = pub_open(NULL, NULL);
    pub(m, "chambers/c7/telemetry",
        "{\"site\": \"lab-a\", \"temp_c\": 21.5, \"door\": false, \"fw\": \"2.1\","
        " \"ts\": 1714557600250, \"env\": {\"rh\": 45}}",
        1);
    pub(m, "chambers/c8/telemetry",
        "[{\"temp_c\": 19, \"ts\": 1714557601000}, {\"temp_c\": 19.5, \"ts\": 1714557602000}]", 1);
    pub_close(m, 2);
    char *got = wait_lines(3, 10000);
    char *log = stop_daemon(pid);
    char *want =
        strdup("chamber,device=c7,site=lab-a,topic=chambers/c7/telemetry temp_c=21.5,door=false,"
               "env_rh=45 1714557600250000000\n"
               "chamber,device=c8,topic=chambers/c8/telemetry temp_c=19 1714557601000000000\n"
               "chamber,device=c8,topic=chambers/c8/telemetry temp_c=19.5 1714557602000000000\n");
    assert_same_lines(got, want);
    free(want);
    free(got);
    free(log);
}

Test(mqtt, malformed_messages_are_counted_and_good_ones_follow)
{
    broker_start();
    write_conf("topics = ( { topic = \"lab/#\"; qos = 1; } ); max_payload_bytes = 200;");
    pid_t pid = spawn_connected();
    struct mosquitto *m = pub_open(NULL, NULL);
    pub(m, "lab/a", "m v=1 1000000000\n", 1);
    pub(m, "lab/a", "this is not line protocol", 1);
    /* A bad line between good ones: only the bad line is dropped. */
    pub(m, "lab/b", "m v=2 2000000000\nm v=oops 3000000000\nm v=4 4000000000\n", 1);
    char big[400];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pub(m, "lab/c", big, 1);
    pub(m, "lab/a", "m v=5 5000000000\n", 1);
    pub_close(m, 5);
    char *got = wait_lines(4, 10000);
    char *log = stop_daemon(pid);
    char *want = strdup("m v=1 1000000000\nm v=2 2000000000\nm v=4 4000000000\n"
                        "m v=5 5000000000\n");
    assert_same_lines(got, want);
    cr_assert_not_null(strstr(log, "dropped{parse_error}=2"), "%s", log);
    cr_assert_not_null(strstr(log, "dropped{payload_too_large}=1"), "%s", log);
    cr_assert_not_null(strstr(log, "topic lab/a: malformed payload dropped: line 1 column"), "%s",
                       log);
    cr_assert_not_null(strstr(log, "topic lab/b: malformed payload dropped: line 2 column"), "%s",
                       log);
    free(want);
    free(got);
    free(log);
}

Test(mqtt, value_payloads_per_topic_measurement)
{
    broker_start();
    write_conf("topics = ( { topic = \"meters/+/power\"; measurement = \"power\"; },\n"
               "           { topic = \"meters/+/energy\"; measurement = \"energy\"; } );\n"
               "format = \"value\"; value_type = \"int\"; value_field = \"w\";\n"
               "topic_tags = \"meters/{meter}/+\";");
    pid_t pid = spawn_connected();
    struct mosquitto *m = pub_open(NULL, NULL);
    pub(m, "meters/m1/power", " 1500\n", 1);
    pub(m, "meters/m2/energy", "42", 1);
    pub(m, "meters/m2/energy", "4.5", 1); /* not an int */
    pub(m, "meters/m3/power", "7", 1);
    pub_close(m, 4);
    char *got = wait_lines(3, 10000);
    char *log = stop_daemon(pid);
    cr_assert_eq(count_of(got, "\n"), 3, "%s", got);
    cr_assert_not_null(strstr(got, "power,meter=m1 w=1500i "), "%s", got);
    cr_assert_not_null(strstr(got, "energy,meter=m2 w=42i "), "%s", got);
    cr_assert_not_null(strstr(got, "power,meter=m3 w=7i "), "%s", got);
    cr_assert_not_null(strstr(log, "dropped{parse_error}=1"), "%s", log);
    free(got);
    free(log);
}

static void make_password_file(void)
{
    gdt_srv_prepare(&srv, "mosquitto");
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "mosquitto_passwd -b -c %s/passwd gatherd s3cret-pw >/dev/null 2>&1",
             srv.dir);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "mosquitto_passwd failed");
    snprintf(cmd, sizeof(cmd), "mosquitto_passwd -b %s/passwd sensor sensor-pw >/dev/null 2>&1",
             srv.dir);
    cr_assert_eq(system(cmd), 0);
}

Test(mqtt, username_and_password)
{
    make_password_file();
    broker_start();
    write_conf("topics = ( { topic = \"secure/#\"; qos = 1; } );\n"
               "username = \"gatherd\"; password = \"s3cret-pw\";");
    pid_t pid = spawn_connected();
    struct mosquitto *m = pub_open("sensor", "sensor-pw");
    pub(m, "secure/x", "s v=1 1000000000", 1);
    pub_close(m, 1);
    char *got = wait_lines(1, 10000);
    char *log = stop_daemon(pid);
    cr_assert_str_eq(got, "s v=1 1000000000\n");
    cr_assert_null(strstr(log, "s3cret-pw"), "the password was logged:\n%s", log);
    free(got);
    free(log);
}

Test(mqtt, wrong_password_is_a_clear_error)
{
    make_password_file();
    broker_start();
    write_conf("topics = ( { topic = \"secure/#\"; qos = 1; } );\n"
               "username = \"gatherd\"; password = \"wrong-password\";");
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    wait_log("refused the connection: Connection Refused: not authorised", 1, 10000);
    char *log = stop_daemon(pid);
    cr_assert_not_null(strstr(log, "(check username and password)"), "%s", log);
    cr_assert_null(strstr(log, "wrong-password"), "the password was logged:\n%s", log);
    cr_assert_null(strstr(log, "mqtt: connected"), "%s", log);
    free(log);
}

Test(mqtt, reconnects_after_broker_restart)
{
    broker_start();
    write_conf("topics = ( { topic = \"r/#\"; qos = 1; } );");
    pid_t pid = spawn_connected();
    struct mosquitto *m = pub_open(NULL, NULL);
    pub(m, "r/1", "r v=1 1000000000", 1);
    pub_close(m, 1);
    free(wait_lines(1, 10000));

    gdt_srv_stop(&srv, "mosquitto.sh");
    wait_log("mqtt: connection to", 1, 10000); /* "... lost" */
    gdt_msleep(300);
    broker_start(); /* same port, fresh broker (no persistence) */
    wait_log("mqtt: subscribed to", 2, 15000);

    m = pub_open(NULL, NULL);
    pub(m, "r/2", "r v=2 2000000000", 1);
    pub(m, "r/3", "r v=3 3000000000", 1);
    pub_close(m, 2);
    char *got = wait_lines(3, 10000);
    char *log = stop_daemon(pid);
    char *want = strdup("r v=1 1000000000\nr v=2 2000000000\nr v=3 3000000000\n");
    assert_same_lines(got, want);
    cr_assert_geq(count_of(log, "mqtt: connected to"), 2, "%s", log);
    free(want);
    free(got);
    free(log);
}

Test(mqtt, persistent_session_delivers_messages_published_while_stopped)
{
    broker_start();
    write_conf("topics = ( { topic = \"p/#\"; qos = 1; } );\n"
               "client_id = \"gatherd-test-persistent\"; clean_session = false;");
    pid_t pid = spawn_connected();
    char *log = stop_daemon(pid); /* the broker keeps the session */
    free(log);

    enum { MSGS = 50 };
    struct mosquitto *m = pub_open(NULL, NULL);
    char want[MSGS * 40];
    size_t wl = 0;
    for (int i = 0; i < MSGS; i++) {
        char payload[64];
        snprintf(payload, sizeof(payload), "p v=%di %lld\n", i, 1000000000LL * (i + 1));
        pub(m, "p/x", payload, 1);
        wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "%s", payload);
    }
    pub_close(m, MSGS);

    pid = gdt_spawn(gdt_path("gatherd.conf"));
    char *got = wait_lines(MSGS, 15000);
    log = stop_daemon(pid);
    cr_assert_not_null(strstr(log, "session present: yes"), "%s", log);
    assert_same_lines(got, want);
    free(got);
    free(log);
}

Test(mqtt, json_measurement_key_field_keys_and_rfc3339)
{
    broker_start();
    write_conf("topics = ( { topic = \"gw/#\"; qos = 1; } );\n"
               "format = \"json\"; measurement_key = \"kind\";\n"
               "field_keys = [ \"temp_c\", \"state\" ]; tag_keys = [ \"sensor\" ];\n"
               "time_key = \"at\"; time_format = \"rfc3339\";");
    pid_t pid = spawn_connected();
    struct mosquitto *m = pub_open(NULL, NULL);
    pub(m, "gw/1",
        "{\"kind\": \"env\", \"sensor\": 7, \"temp_c\": 21.5, \"state\": \"ok\", \"rh\": 40,"
        " \"at\": \"2024-05-01T12:00:00.25+02:00\"}",
        1);
    /* No measurement_key: the default measurement. A bad time: dropped. */
    pub(m, "gw/2",
        "[{\"temp_c\": 1, \"at\": \"2024-05-01T10:00:00Z\"},"
        " {\"temp_c\": 2, \"at\": \"yesterday\"}, {\"rh\": 3}]",
        1);
    pub(m, "gw/3", "{\"temp_c\": ", 1);
    pub_close(m, 3);
    char *got = wait_lines(2, 10000);
    char *log = stop_daemon(pid);
    char *want = strdup("env,sensor=7 temp_c=21.5,state=\"ok\" 1714557600250000000\n"
                        "mqtt temp_c=1 1714557600000000000\n");
    assert_same_lines(got, want);
    /* "yesterday", the object without a listed field, the cut-off document. */
    cr_assert_not_null(strstr(log, "dropped{parse_error}=3"), "%s", log);
    cr_assert_not_null(strstr(log, "unreadable timestamp in \"at\""), "%s", log);
    free(want);
    free(got);
    free(log);
}

Test(mqtt, mqtt5_persistent_session)
{
    broker_start();
    write_conf("topics = ( { topic = \"p5/#\"; qos = 1; } ); protocol = \"5\";\n"
               "client_id = \"gatherd-test-v5\"; clean_session = false; session_expiry = \"1h\";");
    pid_t pid = spawn_connected();
    free(stop_daemon(pid));
    struct mosquitto *m = pub_open(NULL, NULL);
    pub(m, "p5/a", "v5 x=1i 1000000000\n", 1);
    pub(m, "p5/b", "v5 x=2i 2000000000\n", 1);
    pub_close(m, 2);
    pid = gdt_spawn(gdt_path("gatherd.conf"));
    char *got = wait_lines(2, 10000);
    char *log = stop_daemon(pid);
    cr_assert_not_null(strstr(log, "session present: yes"), "%s", log);
    char *want = strdup("v5 x=1i 1000000000\nv5 x=2i 2000000000\n");
    assert_same_lines(got, want);
    free(want);
    free(got);
    free(log);
}

/* A full `block` queue stops the reading: the broker keeps what was not
 * acknowledged and delivers it to the next run. Nothing is lost. */
Test(mqtt, backpressure_leaves_messages_with_the_broker)
{
    broker_start();
    int dead = gdt_free_port();
    char conf[4096];
    snprintf(
        conf, sizeof(conf),
        "global = { log_level = \"debug\"; shutdown_timeout = \"1s\"; };\n"
        "inputs = ( { plugin = \"mqtt\"; name = \"fleet\"; url = \"mqtt://127.0.0.1:%d\";\n"
        "             topics = ( { topic = \"bp/#\"; qos = 1; } ); max_batch_points = 1;\n"
        "             client_id = \"gatherd-test-bp\"; clean_session = false; } );\n"
        "outputs = ( { plugin = \"file\"; name = \"copy\"; path = \"%s\";\n"
        "              flush_interval = \"50ms\"; },\n"
        "            { plugin = \"influxdb\"; name = \"down\"; url = \"http://127.0.0.1:%d\";\n"
        "              database = \"x\"; batch_points = 1; flush_interval = \"10ms\";\n"
        "              retry_initial = \"1s\"; retry_max = \"1s\";\n"
        "              queue = { max_points = 5; overflow = \"block\"; }; } );\n",
        srv.port, gdt_path("out.lp"), dead);
    gdt_write_file(gdt_path("gatherd.conf"), conf);
    pid_t pid = spawn_connected();

    enum { MSGS = 60 };
    struct mosquitto *m = pub_open(NULL, NULL);
    for (int i = 0; i < MSGS; i++) {
        char payload[64];
        snprintf(payload, sizeof(payload), "bp v=%di %lld", i, 1000000000LL * (i + 1));
        pub(m, "bp/x", payload, 1);
    }
    pub_close(m, MSGS);
    wait_log("mqtt: an output is full: not reading", 1, 10000);
    gdt_msleep(500);
    char *log = stop_daemon(pid);
    gdt_counters in = gdt_counters_of(log, "input:mqtt/fleet");
    cr_assert_geq(in.received, 5, "the queue never filled:\n%s", log);
    cr_assert_lt(in.received, MSGS, "the input read everything despite the full queue:\n%s", log);
    cr_assert_null(strstr(log, "queue_full"), "points were dropped at a full queue:\n%s", log);
    free(log);

    /* The next run, without the dead output, gets the rest from the broker. */
    write_conf("topics = ( { topic = \"bp/#\"; qos = 1; } );\n"
               "client_id = \"gatherd-test-bp\"; clean_session = false;");
    pid = gdt_spawn(gdt_path("gatherd.conf"));
    char *got = wait_lines(MSGS, 10000);
    log = stop_daemon(pid);
    for (int i = 0; i < MSGS; i++) {
        char line[64];
        snprintf(line, sizeof(line), "bp v=%di %lld\n", i, 1000000000LL * (i + 1));
        cr_assert_not_null(strstr(got, line), "lost: %s(file:\n%s)", line, got);
    }
    free(got);
    free(log);
}

/* A CA, a server certificate for localhost and a client certificate, in
 * the broker's dir: the broker then speaks TLS and wants client certs. */
static void make_tls_files(void)
{
    gdt_srv_prepare(&srv, "mosquitto");
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "set -e; cd %s; k='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';\n"
             "openssl req -x509 $k -keyout ca.key -out ca.crt -days 2 -subj /CN=gatherd-test-ca\n"
             "openssl req $k -keyout server.key -out server.csr -subj /CN=localhost\n"
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' >san.ext\n"
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
             " -out server.crt -days 2 -extfile san.ext\n"
             "openssl req $k -keyout client.key -out client.csr -subj /CN=gatherd\n"
             "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
             " -out client.crt -days 2\n",
             srv.dir);
    FILE *sh = popen("sh >/dev/null 2>&1", "w");
    cr_assert_not_null(sh);
    fputs(cmd, sh);
    cr_assert_eq(pclose(sh), 0, "openssl failed");
    snprintf(pub_tls_dir, sizeof(pub_tls_dir), "%s", srv.dir);
}

Test(mqtt, mutual_tls)
{
    make_tls_files();
    broker_start();
    char opts[1024];
    snprintf(opts, sizeof(opts),
             "topics = ( { topic = \"tls/#\"; qos = 1; } );\n"
             "tls_ca_file = \"%s/ca.crt\"; tls_cert_file = \"%s/client.crt\";\n"
             "tls_key_file = \"%s/client.key\";",
             srv.dir, srv.dir, srv.dir);
    write_conf(opts);
    /* write_conf() says mqtt://127.0.0.1: TLS comes from tls_ca_file; the
     * certificate names localhost and 127.0.0.1. */
    pid_t pid = spawn_connected();
    struct mosquitto *m = pub_open(NULL, NULL);
    pub(m, "tls/a", "t v=1 1000000000", 1);
    pub_close(m, 1);
    char *got = wait_lines(1, 10000);
    char *log = stop_daemon(pid);
    cr_assert_str_eq(got, "t v=1 1000000000\n", "%s", log);
    free(got);
    free(log);
}

Test(mqtt, untrusted_broker_certificate_is_refused)
{
    make_tls_files();
    broker_start();
    char conf[2048];
    /* mqtts:// without tls_ca_file: the system's CAs, which do not know
     * the test CA. */
    snprintf(conf, sizeof(conf),
             "global = { log_level = \"debug\"; };\n"
             "inputs = ( { plugin = \"mqtt\"; name = \"fleet\"; url = \"mqtts://localhost:%d\";\n"
             "             reconnect_min = \"100ms\"; reconnect_max = \"500ms\";\n"
             "             topics = ( { topic = \"tls/#\"; } ); } );\n"
             "outputs = ( { plugin = \"file\"; name = \"copy\"; path = \"%s\"; } );\n",
             srv.port, gdt_path("out.lp"));
    gdt_write_file(gdt_path("gatherd.conf"), conf);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    wait_log("mqtt: cannot connect to mqtts://localhost", 1, 10000);
    char *log = stop_daemon(pid);
    cr_assert_null(strstr(log, "mqtt: connected"), "%s", log);
    free(log);
}

/* A broker address whose TCP connect hangs (a listener with a full accept
 * queue drops SYNs): connect_timeout gives up, the input retries, and a
 * shutdown is not held up. */
Test(mqtt, connect_timeout_bounds_a_hanging_connect)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(l, 0), 0);
    socklen_t alen = sizeof(a);
    getsockname(l, (struct sockaddr *)&a, &alen);
    int fill[3];
    for (int i = 0; i < 3; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    char conf[2048];
    snprintf(conf, sizeof(conf),
             "global = { log_level = \"debug\"; };\n"
             "inputs = ( { plugin = \"mqtt\"; name = \"fleet\"; url = \"mqtt://127.0.0.1:%d\";\n"
             "             connect_timeout = \"300ms\"; reconnect_min = \"100ms\";\n"
             "             reconnect_max = \"100ms\"; topics = ( { topic = \"x\"; } ); } );\n"
             "outputs = ( { plugin = \"file\"; name = \"copy\"; path = \"%s\"; } );\n",
             ntohs(a.sin_port), gdt_path("out.lp"));
    gdt_write_file(gdt_path("gatherd.conf"), conf);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    wait_log("mqtt: no CONNACK from", 2, 10000);
    int64_t t0 = mono_ms();
    char *log = stop_daemon(pid);
    cr_assert_lt(mono_ms() - t0, 3000, "shutdown took %lld ms", (long long)(mono_ms() - t0));
    gdt_counters c = gdt_counters_of(log, "input:mqtt/fleet");
    cr_assert_geq(c.errors, 2, "%s", log);
    free(log);
    for (int i = 0; i < 3; i++)
        close(fill[i]);
    close(l);
}
