/* SPDX-License-Identifier: Apache-2.0 */
/* The http_listen input end to end: the built daemon listens on a free
 * port and writes what it receives to a file; requests are sent with
 * libcurl (raw sockets for pipelining, slow clients and connection
 * limits) and the file's lines are compared exactly. Covers the InfluxDB
 * v1 and v2 write APIs, gzip and chunked bodies, keep-alive, /ingest JSON,
 * malformed lines (400 with line and column, partial_writes both ways),
 * body and header limits, token and JWT auth, rate limits, backpressure
 * (503 without silent loss) and TLS. */
#include "harness.h"
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static pid_t daemon_pid;
static int port;
static bool use_tls;

static void suite_fini(void)
{
    if (daemon_pid > 0)
        gdt_wait_exit(daemon_pid, 0);
    gdt_teardown();
}

TestSuite(http_listen, .init = gdt_setup, .fini = suite_fini, .timeout = 120);

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- HTTP client ------------------------------------------------------- */

struct resp {
    long status;
    char body[4096];
    size_t body_len;
    char headers[4096];
    size_t headers_len;
    long local_port;
};

static size_t collect(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct {
        char *buf;
        size_t *len;
        size_t cap;
    } *c = ctx;
    size_t n = size * nmemb;
    size_t room = c->cap - 1 - *c->len;
    size_t k = n < room ? n : room;
    memcpy(c->buf + *c->len, data, k);
    *c->len += k;
    c->buf[*c->len] = '\0';
    return n;
}

struct chunked {
    const char *p;
    size_t left;
    size_t piece;
};

static size_t read_piece(char *buf, size_t size, size_t nmemb, void *ctx)
{
    struct chunked *ch = ctx;
    size_t n = size * nmemb;
    if (n > ch->piece)
        n = ch->piece;
    if (n > ch->left)
        n = ch->left;
    memcpy(buf, ch->p, n);
    ch->p += n;
    ch->left -= n;
    return n;
}

static CURL *shared_handle; /* keep-alive test */

/* Send @method @path (with query) and @body (@len bytes; chunked in
 * pieces of @piece bytes when @piece) with the extra @headers
 * (NULL-terminated). */
static struct resp request_ex(CURL *c, const char *method, const char *path, const char *body,
                              size_t len, const char *const *headers, size_t piece)
{
    struct resp r = {0};
    bool own = c == NULL;
    if (own)
        c = curl_easy_init();
    cr_assert_not_null(c);
    char url[512];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", use_tls ? "https" : "http", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    struct curl_slist *hl = NULL;
    bool expect = false;
    for (size_t i = 0; headers && headers[i]; i++) {
        hl = curl_slist_append(hl, headers[i]);
        expect = expect || strncmp(headers[i], "Expect:", 7) == 0;
    }
    struct chunked ch = {body, len, piece};
    if (body && piece) {
        hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_piece);
        curl_easy_setopt(c, CURLOPT_READDATA, &ch);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    if (!expect)
        hl = curl_slist_append(hl, "Expect:"); /* no 100-continue unless asked for */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    struct {
        char *buf;
        size_t *len;
        size_t cap;
    } bc = {r.body, &r.body_len, sizeof(r.body)},
      hc = {r.headers, &r.headers_len, sizeof(r.headers)};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bc);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hc);
    CURLcode cc = curl_easy_perform(c);
    cr_assert_eq(cc, CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(c, CURLINFO_LOCAL_PORT, &r.local_port);
    curl_slist_free_all(hl);
    if (own)
        curl_easy_cleanup(c);
    else
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    return r;
}

static struct resp post(const char *path, const char *body, const char *const *headers)
{
    return request_ex(NULL, "POST", path, body, strlen(body), headers, 0);
}

static struct resp get(const char *path)
{
    return request_ex(NULL, "GET", path, NULL, 0, NULL, 0);
}

/* ---- daemon ------------------------------------------------------------ */

static const char *file_output = "outputs = ( { plugin = \"file\"; name = \"main\"; path = \"%s\"; "
                                 "flush_interval = \"50ms\"; } );\n";

/* Start the daemon with an http_listen input given @opts and @outputs
 * (NULL: the file output to points.lp); wait until it answers /ping. */
/* Extra settings for the global group of the next start_with(). */
static const char *global_extra = "";

static void start_with(const char *opts, const char *outputs)
{
    port = gdt_free_port();
    char out[512], *text = NULL;
    snprintf(out, sizeof(out), file_output, gdt_path("points.lp"));
    cr_assert_geq(asprintf(&text,
                           "global = { interval = 1; shutdown_timeout = \"3s\"; "
                           "log_level = \"info\"; %s };\n"
                           "inputs = ( { plugin = \"http_listen\"; name = \"h\"; port = %d; %s } "
                           ");\n%s",
                           global_extra, port, opts, outputs ? outputs : out),
                  0);
    const char *conf = gdt_path("gatherd.conf");
    gdt_write_file(conf, text);
    free(text);
    daemon_pid = gdt_spawn(conf);
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d/ping", use_tls ? "https" : "http", port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 2L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    long code = 0;
    for (int i = 0; i < 100 && code != 204; i++) {
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        else
            gdt_msleep(50);
    }
    curl_easy_cleanup(c);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 204, "the daemon never answered /ping; log:\n%s", log);
    free(log);
}

static void start(const char *opts)
{
    start_with(opts, NULL);
}

/* Stop the daemon with SIGTERM; its log (malloc'd) after a clean exit. */
static char *stop_daemon(void)
{
    kill(daemon_pid, SIGTERM);
    int code = gdt_wait_exit(daemon_pid, 30);
    daemon_pid = 0;
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "exit code %d; log:\n%s", code, log);
    return log;
}

/* The value of "dropped{@reason}=" in the counter line of the input. */
static unsigned long long dropped_for(const char *log, const char *reason)
{
    char key[96];
    snprintf(key, sizeof(key), "dropped{%s}=", reason);
    const char *line = strstr(log, "[input:http_listen/h] received=");
    cr_assert_not_null(line, "no counters for the input:\n%s", log);
    const char *eol = strchr(line, '\n');
    const char *k = strstr(line, key);
    return k && (!eol || k < eol) ? strtoull(k + strlen(key), NULL, 10) : 0;
}

/* Stop the daemon and return the points file (malloc'd); *@log (optional)
 * receives the log. */
static char *stop_and_read(char **log)
{
    char *l = stop_daemon();
    char *pts = gdt_read_file(gdt_path("points.lp"));
    if (log)
        *log = l;
    else
        free(l);
    return pts;
}

/* ---- raw sockets ------------------------------------------------------- */

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
    return fd;
}

/* Read from @fd until @n occurrences of @needle, EOF or @timeout_ms. */
static size_t raw_read(int fd, char *buf, size_t cap, const char *needle, int n, int timeout_ms,
                       bool *eof)
{
    size_t len = 0;
    int64_t t0 = mono_ms();
    *eof = false;
    buf[0] = '\0';
    while (mono_ms() - t0 < timeout_ms) {
        int seen = 0;
        for (const char *p = buf; (p = strstr(p, needle)); p++)
            seen++;
        if (seen >= n)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t k = recv(fd, buf + len, cap - 1 - len, 0);
        if (k <= 0) {
            *eof = true;
            break;
        }
        len += (size_t)k;
        buf[len] = '\0';
    }
    return len;
}

/* ---- line protocol and JSON -------------------------------------------- */

Test(http_listen, v1_write_with_precisions_and_db_tag)
{
    start("");
    struct resp r = post("/write?db=lab&precision=s", "m,dev=a v=1 1700000000\n", NULL);
    cr_assert_eq(r.status, 204, "%s", r.body);
    r = post("/write?db=lab&precision=ms", "m,dev=b v=2 1700000000001\n", NULL);
    cr_assert_eq(r.status, 204);
    r = post("/write?db=lab&precision=u", "m,dev=c v=3 1700000000000002\n", NULL);
    cr_assert_eq(r.status, 204);
    r = post("/write?db=lab&precision=n", "m,dev=d v=4 1700000000000000003\n", NULL);
    cr_assert_eq(r.status, 204);
    r = post("/write?db=lab&precision=m", "m,dev=e v=5 28333333\n", NULL);
    cr_assert_eq(r.status, 204);
    r = post("/write?db=lab&precision=h", "m,dev=f v=6 472222\n", NULL);
    cr_assert_eq(r.status, 204);
    /* The line's own db tag wins; no db parameter: no tag. */
    r = post("/write?db=lab", "m,db=own,dev=g v=7i 1700000000000000007\n", NULL);
    cr_assert_eq(r.status, 204);
    r = post("/write", "m,dev=h v=\"x y\" 1700000000000000008\n", NULL);
    cr_assert_eq(r.status, 204);
    r = post("/write?precision=weeks", "m v=1 1\n", NULL);
    cr_assert_eq(r.status, 400);
    cr_assert_not_null(strstr(r.body, "precision"), "%s", r.body);
    char *pts = stop_and_read(NULL);
    cr_assert_str_eq(pts, "m,db=lab,dev=a v=1 1700000000000000000\n"
                          "m,db=lab,dev=b v=2 1700000000001000000\n"
                          "m,db=lab,dev=c v=3 1700000000000002000\n"
                          "m,db=lab,dev=d v=4 1700000000000000003\n"
                          "m,db=lab,dev=e v=5 1699999980000000000\n"
                          "m,db=lab,dev=f v=6 1699999200000000000\n"
                          "m,db=own,dev=g v=7i 1700000000000000007\n"
                          "m,dev=h v=\"x y\" 1700000000000000008\n");
    free(pts);
}

Test(http_listen, v2_write_with_bucket_org_and_db_tag_off)
{
    start("org_tag = \"org\"; db_tag = \"\";");
    const char *h[] = {"Authorization: Token ignored-without-auth", NULL};
    struct resp r = post("/api/v2/write?org=acme&bucket=plant%2F1&precision=ms",
                         "m,dev=a v=1 1700000000001\nm,dev=b v=2 1700000000002\n", h);
    cr_assert_eq(r.status, 204, "%s", r.body);
    r = post("/write?db=ignored&precision=s", "m,dev=c v=3 1700000000\n", NULL);
    cr_assert_eq(r.status, 204);
    r = post("/api/v2/write?bucket=b&precision=m", "m v=1 1\n", NULL);
    cr_assert_eq(r.status, 400, "v2 has no minute precision");
    char *pts = stop_and_read(NULL);
    cr_assert_str_eq(pts, "m,bucket=plant/1,dev=a,org=acme v=1 1700000000001000000\n"
                          "m,bucket=plant/1,dev=b,org=acme v=2 1700000000002000000\n"
                          "m,dev=c v=3 1700000000000000000\n");
    free(pts);
}

/* gzip @text into a malloc'd buffer; *@n its length. */
static char *gzip_text(const char *text, size_t len, size_t *n)
{
    z_stream z = {0};
    cr_assert_eq(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, len) + 64;
    char *out = malloc(cap);
    z.next_in = (Bytef *)text;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *n = z.total_out;
    deflateEnd(&z);
    return out;
}

Test(http_listen, gzip_bodies_and_zip_bomb)
{
    start("max_body_bytes = 4096;");
    const char *text = "m,dev=a v=1 1700000000000000001\nm,dev=b v=2 1700000000000000002\n";
    size_t n;
    char *gz = gzip_text(text, strlen(text), &n);
    const char *h[] = {"Content-Encoding: gzip", NULL};
    struct resp r = request_ex(NULL, "POST", "/write", gz, n, h, 0);
    cr_assert_eq(r.status, 204, "%s", r.body);
    free(gz);

    /* 1 MiB of lines squeezed into a few KiB: refused once inflated past 4096. */
    size_t big = 1 << 20;
    char *bomb = malloc(big + 1);
    for (size_t i = 0; i < big; i += 8)
        memcpy(bomb + i, "m v=1 1\n", 8);
    gz = gzip_text(bomb, big, &n);
    cr_assert_lt(n, 4096);
    r = request_ex(NULL, "POST", "/write", gz, n, h, 0);
    cr_assert_eq(r.status, 413, "%s", r.body);
    free(gz);
    free(bomb);

    r = request_ex(NULL, "POST", "/write", "not gzip at all", 15, h, 0);
    cr_assert_eq(r.status, 400);
    const char *br[] = {"Content-Encoding: br", NULL};
    r = request_ex(NULL, "POST", "/write", "m v=1 1\n", 8, br, 0);
    cr_assert_eq(r.status, 415);
    char *log = NULL;
    char *pts = stop_and_read(&log);
    cr_assert_str_eq(pts, text);
    cr_assert_eq(dropped_for(log, "too_large"), 1);
    free(pts);
    free(log);
}

Test(http_listen, chunked_body_and_keep_alive)
{
    start("");
    const char *text = "m,dev=a v=1 1700000000000000001\nm,dev=b v=2 1700000000000000002\n"
                       "m,dev=c v=3 1700000000000000003\n";
    struct resp r = request_ex(NULL, "POST", "/write", text, strlen(text), NULL, 7);
    cr_assert_eq(r.status, 204, "%s", r.body);

    /* Several requests on one connection. */
    shared_handle = curl_easy_init();
    long first_port = -1;
    for (int i = 0; i < 5; i++) {
        char line[64];
        snprintf(line, sizeof(line), "k v=%d 170000000000000000%d\n", i, i);
        r = request_ex(shared_handle, "POST", "/write", line, strlen(line), NULL, 0);
        cr_assert_eq(r.status, 204);
        if (i == 0)
            first_port = r.local_port;
        cr_assert_eq(r.local_port, first_port, "request %d used another connection", i);
        long connects = -1;
        curl_easy_getinfo(shared_handle, CURLINFO_NUM_CONNECTS, &connects);
        cr_assert_eq(connects, i == 0 ? 1 : 0);
    }
    curl_easy_cleanup(shared_handle);

    /* Expect: 100-continue is answered at once (curl would wait a second). */
    char big[4096] = "";
    for (int i = 0; i < 100; i++)
        strcat(big, "e v=1 1700000000000000009\n");
    const char *h[] = {"Expect: 100-continue", NULL};
    int64_t t0 = mono_ms();
    r = request_ex(NULL, "POST", "/write", big, strlen(big), h, 0);
    cr_assert_eq(r.status, 204);
    cr_assert_lt(mono_ms() - t0, 900);
    cr_assert_not_null(strstr(r.headers, "HTTP/1.1 100 Continue"), "%s", r.headers);
    char *pts = stop_and_read(NULL);
    char *e = strstr(pts, "e v=1");
    cr_assert_not_null(e);
    cr_assert_eq(strlen(e), 100 * strlen("e v=1 1700000000000000009\n"));
    *e = '\0';
    cr_assert_str_eq(pts, "m,dev=a v=1 1700000000000000001\nm,dev=b v=2 1700000000000000002\n"
                          "m,dev=c v=3 1700000000000000003\n"
                          "k v=0 1700000000000000000\nk v=1 1700000000000000001\n"
                          "k v=2 1700000000000000002\nk v=3 1700000000000000003\n"
                          "k v=4 1700000000000000004\n");
    free(pts);
}

Test(http_listen, pipelined_requests_are_answered_in_order)
{
    start("");
    int fd = raw_connect();
    const char req[] = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /write HTTP/1.1\r\nHost: x\r\nContent-Length: 26\r\n\r\n"
                       "p v=1 1700000000000000001\n"
                       "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /write HTTP/1.1\r\nHost: x\r\nContent-Length: 26\r\n\r\n"
                       "p v=2 1700000000000000002\n";
    cr_assert_eq(send(fd, req, sizeof(req) - 1, 0), (ssize_t)(sizeof(req) - 1));
    char buf[8192];
    bool eof;
    raw_read(fd, buf, sizeof(buf), "HTTP/1.1 ", 4, 5000, &eof);
    const char *a = strstr(buf, "HTTP/1.1 204");
    const char *b = a ? strstr(a + 1, "HTTP/1.1 204") : NULL;
    const char *c = b ? strstr(b + 1, "HTTP/1.1 404") : NULL;
    const char *d = c ? strstr(c + 1, "HTTP/1.1 204") : NULL;
    cr_assert(a && b && c && d, "responses out of order or missing:\n%s", buf);
    cr_assert_not(eof, "the connection stays open");
    close(fd);

    /* An upgrade request is answered once, then the connection closes;
     * so does one with Connection: close, ignoring what follows it. */
    const char *closing[] = {
        "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        fd = raw_connect();
        cr_assert_gt(send(fd, closing[i], strlen(closing[i]), 0), 0);
        raw_read(fd, buf, sizeof(buf), "HTTP/1.1 ", 2, 3000, &eof);
        cr_assert(eof, "case %zu: the connection was not closed", i);
        cr_assert_not_null(strstr(buf, "HTTP/1.1 204"), "%s", buf);
        cr_assert_null(strstr(strstr(buf, "HTTP/1.1 204") + 1, "HTTP/1.1 "), "case %zu: %s", i,
                       buf);
        close(fd);
    }
    char *pts = stop_and_read(NULL);
    cr_assert_str_eq(pts, "p v=1 1700000000000000001\np v=2 1700000000000000002\n");
    free(pts);
}

Test(http_listen, ingest_json_ping_health_and_unknown_paths)
{
    start("json = { measurement = \"chamber\"; measurement_key = \"type\"; "
          "tag_keys = [\"device\", \"site\"]; field_keys = [\"temp\", \"rh\"]; time_key = \"ts\"; "
          "time_format = \"unix_ms\"; };");
    struct resp r = post("/ingest",
                         "{\"device\":\"c1\",\"site\":\"lab\",\"temp\":21.5,\"rh\":40,\"x\":1,"
                         "\"ts\":1700000000001}",
                         NULL);
    cr_assert_eq(r.status, 204, "%s", r.body);
    r = post("/ingest",
             "[{\"type\":\"oven\",\"device\":\"o1\",\"temp\":180,\"ts\":1700000000002},"
             "{\"device\":\"c2\",\"rh\":55.5,\"ts\":1700000000003}]",
             NULL);
    cr_assert_eq(r.status, 204, "%s", r.body);
    r = post("/ingest", "[{\"device\":\"c3\",\"temp\":1,\"ts\":1700000000004},{\"x\":2}]", NULL);
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(r.body, "{\"code\":\"invalid\",\"message\":\"item 2: no fields\"}\n");
    r = post("/ingest", "{\"temp\": 1,\n \"rh\": tru}", NULL);
    cr_assert_eq(r.status, 400);
    cr_assert_not_null(strstr(r.body, "line 2, column"), "%s", r.body);

    r = get("/ping");
    cr_assert_eq(r.status, 204);
    r = request_ex(NULL, "HEAD", "/ping", NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 204);
    r = get("/health");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "{\"status\":\"pass\"}\n");
    r = get("/nope");
    cr_assert_eq(r.status, 404);
    r = get("/write");
    cr_assert_eq(r.status, 405);
    char *log = NULL;
    char *pts = stop_and_read(&log);
    cr_assert_str_eq(pts, "chamber,device=c1,site=lab temp=21.5,rh=40 1700000000001000000\n"
                          "oven,device=o1 temp=180 1700000000002000000\n"
                          "chamber,device=c2 rh=55.5 1700000000003000000\n");
    cr_assert_eq(dropped_for(log, "parse_error"), 3);
    free(pts);
    free(log);
}

/* ---- errors and limits -------------------------------------------------- */

static const char *bad_body = "m v=1 1700000000000000001\n"
                              "m v=2 1700000000000000002\n"
                              "m,t=x v=1.2.3 1700000000000000003\n"
                              "m v=4 1700000000000000004\n";

Test(http_listen, malformed_line_rejects_the_whole_body)
{
    start("");
    struct resp r = post("/write", bad_body, NULL);
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(
        r.body, "{\"code\":\"invalid\",\"message\":\"line 3, column 9: invalid float value\"}\n");
    r = post("/write", "m v=9 1700000000000000009\n", NULL);
    cr_assert_eq(r.status, 204);
    char *log = NULL;
    char *pts = stop_and_read(&log);
    cr_assert_str_eq(pts, "m v=9 1700000000000000009\n");
    cr_assert_eq(dropped_for(log, "parse_error"), 4);
    cr_assert_not_null(strstr(log, "from 127.0.0.1:"), "the client is logged");
    free(pts);
    free(log);
}

Test(http_listen, partial_writes_keep_the_lines_before_the_bad_one)
{
    start("partial_writes = true;");
    struct resp r = post("/write", bad_body, NULL);
    cr_assert_eq(r.status, 400);
    cr_assert_not_null(strstr(r.body, "line 3, column 9: invalid float value"), "%s", r.body);
    char *log = NULL;
    char *pts = stop_and_read(&log);
    cr_assert_str_eq(pts, "m v=1 1700000000000000001\nm v=2 1700000000000000002\n");
    cr_assert_eq(dropped_for(log, "parse_error"), 2);
    free(pts);
    free(log);
}

Test(http_listen, oversized_body_is_413_and_headers_431)
{
    start("max_body_bytes = 100; max_header_bytes = 512;");
    char body[256];
    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    struct resp r = post("/write", body, NULL);
    cr_assert_eq(r.status, 413, "%s", r.body);
    /* Chunked: the limit applies while reading. */
    r = request_ex(NULL, "POST", "/write", body, strlen(body), NULL, 50);
    cr_assert_eq(r.status, 413);
    char hdr[700];
    snprintf(hdr, sizeof(hdr), "X-Big: %0600d", 0);
    const char *h[] = {hdr, NULL};
    r = post("/write", "m v=1 1\n", h);
    cr_assert_eq(r.status, 431);
    r = post("/write", "m v=1 1700000000000000001\n", NULL);
    cr_assert_eq(r.status, 204);
    char *log = NULL;
    char *pts = stop_and_read(&log);
    cr_assert_str_eq(pts, "m v=1 1700000000000000001\n");
    cr_assert_eq(dropped_for(log, "too_large"), 2);
    free(pts);
    free(log);
}

Test(http_listen, slowloris_client_is_cut_off)
{
    start("header_timeout = \"1s\";");
    int fd = raw_connect();
    int64_t t0 = mono_ms();
    const char *start_line = "POST /write HTTP/1.1\r\nHost: x\r\n";
    cr_assert_gt(send(fd, start_line, strlen(start_line), 0), 0);
    bool cut = false;
    char buf[2048];
    size_t len = 0;
    bool served_meanwhile = false;
    while (mono_ms() - t0 < 6000 && !cut) {
        gdt_msleep(100);
        if (!served_meanwhile && mono_ms() - t0 >= 500) {
            /* while the slow client trickles, others are served */
            cr_assert_eq(post("/write", "m v=7 1700000000000000007\n", NULL).status, 204);
            served_meanwhile = true;
        }
        ssize_t k = send(fd, "X", 1, MSG_NOSIGNAL);
        if (k < 0)
            cut = true;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        while (!cut && poll(&pfd, 1, 0) > 0) {
            ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
            if (n <= 0)
                cut = true;
            else
                len += (size_t)n;
        }
    }
    buf[len] = '\0';
    int64_t took = mono_ms() - t0;
    close(fd);
    cr_assert(cut, "the slow client was never cut off");
    cr_assert_geq(took, 900);
    cr_assert_leq(took, 3000, "cut after %lld ms", (long long)took);
    cr_assert_not_null(strstr(buf, "HTTP/1.1 408"), "%s", buf);
    /* Others are still served. */
    cr_assert(served_meanwhile);
    cr_assert_eq(get("/ping").status, 204);
    char *log = NULL;
    char *pts = stop_and_read(&log);
    cr_assert_eq(dropped_for(log, "timeout"), 1);
    cr_assert_str_eq(pts, "m v=7 1700000000000000007\n");
    free(pts);
    free(log);
}

Test(http_listen, a_thousand_concurrent_connections_are_all_served)
{
    enum { N = 1000 };
    start("max_connections = 2000;");
    static int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = raw_connect();
    /* every connection open at once, then each sends one write */
    for (int i = 0; i < N; i++) {
        char body[64], req[256];
        int bl = snprintf(body, sizeof(body), "m,c=%d v=%di %lld\n", i, i,
                          1700000000000000000LL + i);
        int rl = snprintf(req, sizeof(req),
                          "POST /write HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", bl,
                          body);
        cr_assert_eq(send(fds[i], req, (size_t)rl, MSG_NOSIGNAL), rl, "connection %d", i);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        char buf[512];
        bool eof;
        raw_read(fds[i], buf, sizeof(buf), "\r\n\r\n", 1, 10000, &eof);
        ok += strstr(buf, "HTTP/1.1 204") != NULL;
        close(fds[i]);
    }
    cr_assert_eq(ok, N, "%d of %d connections got 204", ok, N);
    char *pts = stop_and_read(NULL);
    size_t lines = 0;
    for (const char *p = pts; (p = strchr(p, '\n')); p++)
        lines++;
    cr_assert_eq(lines, N);
    for (int i = 0; i < N; i += 99) {
        char want[64];
        snprintf(want, sizeof(want), "m,c=%d v=%di %lld\n", i, i, 1700000000000000000LL + i);
        cr_assert(strstr(pts, want), "missing %s", want);
    }
    free(pts);
}

Test(http_listen, connections_beyond_the_limit_get_503)
{
    start("max_connections = 2;");
    int a = raw_connect(), b = raw_connect();
    gdt_msleep(200);
    int c = raw_connect();
    char buf[1024];
    bool eof;
    raw_read(c, buf, sizeof(buf), "\r\n\r\n", 1, 3000, &eof);
    cr_assert_not_null(strstr(buf, "HTTP/1.1 503"), "%s", buf);
    close(c);
    close(a);
    close(b);
    gdt_msleep(200);
    cr_assert_eq(get("/ping").status, 204, "slots are free again");
    char *log = NULL;
    free(stop_and_read(&log));
    cr_assert_eq(dropped_for(log, "too_many_connections"), 1);
    free(log);
}

/* ---- authentication ---------------------------------------------------- */

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = strlen(out);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = al[(v >> 18) & 63];
        out[o++] = al[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = al[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = al[v & 63];
    }
    out[o] = '\0';
}

/* "Authorization: Bearer <HS256 token of @payload signed with @key>". */
static const char *bearer_jwt(const char *payload, const char *key)
{
    static char hdr[2048];
    char tok[1500] = "";
    const char *h = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    b64url((const unsigned char *)h, strlen(h), tok);
    strcat(tok, ".");
    b64url((const unsigned char *)payload, strlen(payload), tok);
    unsigned char mac[32];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)tok, strlen(tok), mac, &ml);
    strcat(tok, ".");
    b64url(mac, ml, tok);
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tok);
    return hdr;
}

#define SECRET "s3cret-s3cret-s3cret-s3cret-0123"

Test(http_listen, jwt_auth_and_claims_override_body_tags)
{
    setenv("GDT_JWT_SECRET", SECRET, 1);
    start("auth = \"jwt\"; jwt_secret = \"${GDT_JWT_SECRET}\"; "
          "jwt_claim_tags = { sub = \"device\"; site = \"site\"; };");
    const char *line = "m,device=spoofed,room=r1 v=1 1700000000000000001\n";
    struct resp r = post("/write", line, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_not_null(strstr(r.headers, "WWW-Authenticate: Bearer"), "%s", r.headers);

    const char *bad[] = {
        bearer_jwt("{\"sub\":\"c17\",\"site\":\"lab\"}", "wrong-secret-wrong-secret"), NULL};
    r = post("/write", line, bad);
    cr_assert_eq(r.status, 401);
    cr_assert_not_null(strstr(r.body, "bad signature"), "%s", r.body);

    char exp[128];
    snprintf(exp, sizeof(exp), "{\"sub\":\"c17\",\"site\":\"lab\",\"exp\":%lld}",
             (long long)time(NULL) - 3600);
    const char *expired[] = {bearer_jwt(exp, SECRET), NULL};
    r = post("/write", line, expired);
    cr_assert_eq(r.status, 401);
    cr_assert_not_null(strstr(r.body, "expired"), "%s", r.body);

    const char *nosite[] = {bearer_jwt("{\"sub\":\"c17\"}", SECRET), NULL};
    r = post("/write", line, nosite);
    cr_assert_eq(r.status, 403, "%s", r.body);

    snprintf(exp, sizeof(exp), "{\"sub\":\"c17\",\"site\":\"lab\",\"exp\":%lld}",
             (long long)time(NULL) + 3600);
    const char *good[] = {bearer_jwt(exp, SECRET), NULL};
    r = post("/write", line, good);
    cr_assert_eq(r.status, 204, "%s", r.body);
    /* v2 spelling and /ingest. */
    char tokhdr[2048];
    snprintf(tokhdr, sizeof(tokhdr), "Authorization: Token %s",
             good[0] + strlen("Authorization: Bearer "));
    const char *v2[] = {tokhdr, NULL};
    r = post("/api/v2/write?bucket=b", "m,device=x v=2 1700000000000000002\n", v2);
    cr_assert_eq(r.status, 204, "%s", r.body);
    char *log = NULL;
    char *pts = stop_and_read(&log);
    cr_assert_str_eq(pts, "m,device=c17,room=r1,site=lab v=1 1700000000000000001\n"
                          "m,bucket=b,device=c17,site=lab v=2 1700000000000000002\n");
    cr_assert_eq(dropped_for(log, "unauthorized"), 3);
    cr_assert_eq(dropped_for(log, "forbidden"), 1);
    cr_assert_null(strstr(log, SECRET), "the secret is never logged");
    free(pts);
    free(log);
}

Test(http_listen, token_file_auth)
{
    gdt_write_file(gdt_path("tokens"), "# node tokens\ntok-alpha-0001 node-a\n\ntok-beta-0002\n");
    char opts[512];
    snprintf(opts, sizeof(opts), "auth = \"token\"; tokens_file = \"%s\"; token_tag = \"node\";",
             gdt_path("tokens"));
    start(opts);
    const char *none[] = {NULL};
    cr_assert_eq(post("/write", "m v=0 1700000000000000000\n", none).status, 401);
    const char *wrong[] = {"Authorization: Bearer tok-alpha-0002", NULL};
    cr_assert_eq(post("/write", "m v=0 1700000000000000000\n", wrong).status, 401);
    const char *bearer[] = {"Authorization: Bearer tok-alpha-0001", NULL};
    cr_assert_eq(post("/write", "m,node=forged v=1 1700000000000000001\n", bearer).status, 204);
    const char *token[] = {"Authorization: Token tok-beta-0002", NULL};
    cr_assert_eq(post("/api/v2/write", "m v=2 1700000000000000002\n", token).status, 204);
    /* v1: the password of basic auth or the p parameter. */
    const char *basic[] = {"Authorization: Basic dXNlcjp0b2stYWxwaGEtMDAwMQ==", NULL};
    cr_assert_eq(post("/write", "m v=3 1700000000000000003\n", basic).status, 204);
    cr_assert_eq(post("/write?u=x&p=tok-beta-0002", "m v=4 1700000000000000004\n", NULL).status,
                 204);
    char *pts = stop_and_read(NULL);
    cr_assert_str_eq(pts, "m,node=node-a v=1 1700000000000000001\n"
                          "m,node=token-2 v=2 1700000000000000002\n"
                          "m,node=node-a v=3 1700000000000000003\n"
                          "m,node=token-2 v=4 1700000000000000004\n");
    free(pts);
}

Test(http_listen, rate_limit_answers_429_with_retry_after)
{
    start("rate_limit = 0.5; rate_burst = 2; rate_limit_unit = \"requests\";");
    cr_assert_eq(post("/write", "m v=1 1700000000000000001\n", NULL).status, 204);
    cr_assert_eq(post("/write", "m v=2 1700000000000000002\n", NULL).status, 204);
    struct resp r = post("/write", "m v=3 1700000000000000003\nm v=4 1700000000000000004\n", NULL);
    cr_assert_eq(r.status, 429);
    cr_assert_not_null(strstr(r.headers, "Retry-After: 2"), "%s", r.headers);
    char *log = NULL;
    char *pts = stop_and_read(&log);
    cr_assert_str_eq(pts, "m v=1 1700000000000000001\nm v=2 1700000000000000002\n");
    cr_assert_eq(dropped_for(log, "rate_limited"), 2);
    free(pts);
    free(log);
}

Test(http_listen, rate_limit_in_points)
{
    start("rate_limit = 0.1; rate_burst = 3;");
    cr_assert_eq(post("/write", "m v=1 1\nm v=2 2\n", NULL).status, 204);
    cr_assert_eq(post("/write", "m v=3 3\nm v=4 4\n", NULL).status, 429);
    char *log = NULL;
    free(stop_and_read(&log));
    cr_assert_eq(dropped_for(log, "rate_limited"), 2);
    free(log);
}

/* ---- backpressure ------------------------------------------------------ */

Test(http_listen, backpressure_answers_503_without_silent_loss)
{
    int dead = gdt_free_port();
    char outputs[1024];
    snprintf(outputs, sizeof(outputs),
             "outputs = ( { plugin = \"influxdb\"; name = \"down\"; url = "
             "\"http://127.0.0.1:%d\"; database = \"x\"; batch_points = 5; "
             "flush_interval = \"10ms\"; retry_initial = \"50ms\"; retry_max = \"100ms\"; "
             "queue = { max_points = 10; overflow = \"block\"; }; } );\n",
             dead);
    start_with("", outputs);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 40 && refused < 3; i++) {
        char body[512] = "";
        for (int k = 0; k < 5; k++) {
            char line[64];
            snprintf(line, sizeof(line), "m,i=%d v=%d 17000000000000000%02d\n", i, k, k);
            strcat(body, line);
        }
        struct resp r = post("/write", body, NULL);
        cr_assert(r.status == 204 || r.status == 503, "status %ld: %s", r.status, r.body);
        if (r.status == 204) {
            accepted++;
        } else {
            refused++;
            cr_assert_not_null(strstr(r.headers, "Retry-After:"));
            cr_assert_not_null(strstr(r.body, "backpressure"), "%s", r.body);
        }
        gdt_msleep(30);
    }
    cr_assert_geq(refused, 3, "the full queue never pushed back");
    cr_assert_eq(get("/health").status, 503);
    char *log = stop_daemon();
    gdt_counters in = gdt_counters_of(log, "input:http_listen/h");
    gdt_counters out = gdt_counters_of(log, "output:influxdb/down"); /* checks the balance */
    cr_assert_eq(in.received, (unsigned long long)accepted * 5,
                 "every acknowledged point "
                 "reached the pipeline");
    cr_assert_eq(out.received, in.received);
    cr_assert_eq(dropped_for(log, "backpressure"), (unsigned long long)refused * 5);
    free(log);
}

/* ---- TLS and configuration errors -------------------------------------- */

Test(http_listen, tls)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 "
             "-subj /CN=localhost >/dev/null 2>&1",
             gdt_path("key.pem"), gdt_path("cert.pem"));
    if (system(cmd) != 0)
        cr_skip_test("openssl cannot make a test certificate");
    char opts[512];
    snprintf(opts, sizeof(opts), "tls_cert_file = \"%s\"; tls_key_file = \"%s\";",
             gdt_path("cert.pem"), gdt_path("key.pem"));
    use_tls = true;
    start(opts);
    shared_handle = curl_easy_init();
    struct resp r = request_ex(shared_handle, "POST", "/write?db=t", "m v=1 1700000000000000001\n",
                               26, NULL, 0);
    cr_assert_eq(r.status, 204, "%s", r.body);
    const char *text = "m v=2 1700000000000000002\n";
    size_t n;
    char *gz = gzip_text(text, strlen(text), &n);
    const char *h[] = {"Content-Encoding: gzip", NULL};
    r = request_ex(shared_handle, "POST", "/write", gz, n, h, 0);
    cr_assert_eq(r.status, 204, "%s", r.body);
    free(gz);
    long connects = -1;
    curl_easy_getinfo(shared_handle, CURLINFO_NUM_CONNECTS, &connects);
    cr_assert_eq(connects, 0, "kept alive over TLS");
    curl_easy_cleanup(shared_handle);
    use_tls = false;
    /* Plain HTTP to the TLS port is refused. */
    int fd = raw_connect();
    const char req[] = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";
    send(fd, req, sizeof(req) - 1, 0);
    char buf[512];
    bool eof;
    raw_read(fd, buf, sizeof(buf), "HTTP/1.1 204", 1, 3000, &eof);
    cr_assert_null(strstr(buf, "HTTP/1.1 204"));
    close(fd);
    char *pts = stop_and_read(NULL);
    cr_assert_str_eq(pts, "m,db=t v=1 1700000000000000001\nm v=2 1700000000000000002\n");
    free(pts);
}

Test(http_listen, ack_spooled_and_bad_auth_config_fail_init)
{
    const char *cases[][2] = {
        {"ack = \"spooled\";", "ack = spooled needs every output to spool durably"},
        {"auth = \"jwt\";", "auth = \"jwt\" needs jwt_secret or jwt_secret_file"},
        {"auth = \"jwt\"; jwt_secret = \"short\";", "use at least 16"},
        {"auth = \"token\";", "auth = \"token\" needs tokens_file"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = NULL;
        cr_assert_geq(asprintf(&text,
                               "inputs = ( { plugin = \"http_listen\"; name = \"h\"; port = %d; "
                               "%s } );\noutputs = ( { plugin = \"null\"; name = \"n\"; } );\n",
                               gdt_free_port(), cases[i][0]),
                      0);
        gdt_write_file(gdt_path("bad.conf"), text);
        free(text);
        pid_t pid = gdt_spawn(gdt_path("bad.conf"));
        int code = gdt_wait_exit(pid, 10);
        char *log = gdt_read_file(gdt_path("daemon.err"));
        cr_assert_neq(code, 0, "case %zu started; log:\n%s", i, log);
        cr_assert_not_null(strstr(log, cases[i][1]), "case %zu; log:\n%s", i, log);
        free(log);
    }
}

Test(http_listen, ack_spooled_answers_once_the_points_are_on_disk)
{
    char outputs[1024], global[256];
    snprintf(outputs, sizeof(outputs),
             "outputs = ( { plugin = \"file\"; name = \"f\"; path = \"%s\";\n"
             "              queue = { overflow = \"spool\"; spool_always = true;\n"
             "                        spool_sync = \"batch\"; }; } );\n",
             gdt_path("points.lp"));
    snprintf(global, sizeof(global), "spool_dir = \"%s\";", gdt_path("spool"));
    global_extra = global;
    start_with("ack = \"spooled\";", outputs);
    global_extra = "";
    cr_assert_eq(post("/write", "m v=1 1700000000000000001\nm v=2 1700000000000000002\n", NULL)
                     .status,
                 204);
    /* kill -9 right after the answer: the points are on disk regardless */
    kill(daemon_pid, SIGKILL);
    gdt_wait_exit(daemon_pid, 10);
    daemon_pid = 0;
    char conf[1024];
    snprintf(conf, sizeof(conf),
             "global = { spool_dir = \"%s\"; shutdown_timeout = \"5s\"; };\n"
             "inputs = ( { plugin = \"gen\"; name = \"g\"; interval = 0; total = 1;\n"
             "             exit_when_done = true; } );\n"
             "outputs = ( { plugin = \"file\"; name = \"f\"; path = \"%s\";\n"
             "              queue = { overflow = \"spool\"; spool_always = true;\n"
             "                        spool_sync = \"batch\"; }; } );\n",
             gdt_path("spool"), gdt_path("points.lp"));
    gdt_write_file(gdt_path("replay.conf"), conf);
    pid_t pid = gdt_spawn(gdt_path("replay.conf"));
    cr_assert_eq(gdt_wait_exit(pid, 30), 0);
    char *pts = gdt_read_file(gdt_path("points.lp"));
    cr_assert(strstr(pts, "m v=1 1700000000000000001\nm v=2 1700000000000000002\n"), "%s", pts);
    free(pts);
}

Test(http_listen, body_timeout_cuts_a_stalled_body)
{
    start("body_timeout = \"1s\";");
    int fd = raw_connect();
    const char req[] = "POST /write HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nm v=1 ";
    int64_t t0 = mono_ms();
    cr_assert_gt(send(fd, req, sizeof(req) - 1, 0), 0);
    char buf[1024];
    bool eof;
    raw_read(fd, buf, sizeof(buf), "\r\n\r\n", 1, 5000, &eof);
    int64_t took = mono_ms() - t0;
    cr_assert_not_null(strstr(buf, "HTTP/1.1 408"), "%s", buf);
    cr_assert_geq(took, 900);
    cr_assert_leq(took, 3000);
    raw_read(fd, buf, sizeof(buf), "never", 1, 3000, &eof);
    cr_assert(eof, "closed after the 408");
    close(fd);
    char *log = NULL;
    free(stop_and_read(&log));
    cr_assert_eq(dropped_for(log, "timeout"), 1);
    cr_assert_not_null(strstr(log, "body read timeout"), "%s", log);
    free(log);
}

Test(http_listen, jwt_secret_from_a_file)
{
    gdt_write_file(gdt_path("jwt.key"), SECRET "\n");
    char opts[512];
    snprintf(opts, sizeof(opts), "auth = \"jwt\"; jwt_secret_file = \"%s\";", gdt_path("jwt.key"));
    start(opts);
    const char *good[] = {bearer_jwt("{\"sub\":\"n1\"}", SECRET), NULL};
    cr_assert_eq(post("/write", "m v=1 1700000000000000001\n", good).status, 204);
    const char *bad[] = {bearer_jwt("{\"sub\":\"n1\"}", SECRET "\n"), NULL};
    cr_assert_eq(post("/write", "m v=2 1700000000000000002\n", bad).status, 401);
    char *pts = stop_and_read(NULL);
    cr_assert_str_eq(pts, "m v=1 1700000000000000001\n");
    free(pts);
}
