/* SPDX-License-Identifier: Apache-2.0 */
/* The s3 output end to end: the built daemon with the sim input writes to a
 * real S3-compatible server (npm s3rver, one throwaway server per test) and,
 * in the same run, to a file output. The test then lists the bucket, GETs
 * and decompresses every object and checks that its points are exactly the
 * file's: none missing, none duplicated. Also: multipart uploads, a wrong
 * access key (403, clear error, nothing lost after a SIGHUP with the right
 * one), and objects left in the spool by a failed or killed run uploaded by
 * the next start. */
#include "harness.h"
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <gatherd/lineproto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define SCRIPT       "s3rver.sh"
#define BUCKET       "gatherd"
#define KEY_ID       "S3RVER"
#define SECRET       "S3RVER"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static gdt_server srv;

static void suite_fini(void)
{
    gdt_srv_destroy(&srv, SCRIPT);
    gdt_teardown();
}

TestSuite(s3, .init = gdt_setup, .fini = suite_fini, .timeout = 120);

static void start_server(void)
{
    gdt_srv_start(&srv, SCRIPT, "starting s3rver (tests/servers/s3rver-install.sh installs it)");
}

static const char *endpoint(void)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "http://127.0.0.1:%d", srv.port);
    return buf;
}

/* ---- talking to the server ---------------------------------------------- */

struct mem {
    char *p;
    size_t n;
};

static size_t mem_write(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct mem *m = ctx;
    size_t n = size * nmemb;
    m->p = realloc(m->p, m->n + n + 1);
    memcpy(m->p + m->n, data, n);
    m->n += n;
    m->p[m->n] = '\0';
    return n;
}

/* A signed GET of bucket path @path_query; the body (malloc'd, *@len), and
 * the ETag into @etag (optional). Asserts HTTP 200. */
static char *s3_get(const char *path_query, size_t *len, char *etag, size_t etag_size)
{
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    char url[2048];
    snprintf(url, sizeof(url), "%s/%s%s", endpoint(), BUCKET, path_query);
    struct mem body = {.p = calloc(1, 1)}, hdrs = {.p = calloc(1, 1)};
    struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: " EMPTY_SHA256);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(c, CURLOPT_USERPWD, KEY_ID ":" SECRET);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode cc = curl_easy_perform(c);
    cr_assert_eq(cc, CURLE_OK, "GET %s: %s", url, curl_easy_strerror(cc));
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    cr_assert_eq(status, 200, "GET %s: HTTP %ld: %s", url, status, body.p);
    if (etag) {
        const char *e = strcasestr(hdrs.p, "\netag:");
        cr_assert_not_null(e, "no ETag for %s", url);
        e += 6;
        while (*e == ' ')
            e++;
        snprintf(etag, etag_size, "%.*s", (int)strcspn(e, "\r\n"), e);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(hdrs.p);
    if (len)
        *len = body.n;
    return body.p;
}

/* Every key in the bucket (ListObjectsV2, following continuation tokens);
 * returns the count, keys into *@out (malloc'd strings). */
static size_t list_keys(char ***out)
{
    char **keys = NULL;
    size_t n = 0;
    char token[1024] = "";
    for (;;) {
        char q[1400];
        if (token[0]) {
            char *esc = curl_easy_escape(NULL, token, 0);
            snprintf(q, sizeof(q), "?continuation-token=%s&list-type=2", esc);
            curl_free(esc);
        } else {
            snprintf(q, sizeof(q), "?list-type=2");
        }
        char *xml = s3_get(q, NULL, NULL, 0);
        for (const char *p = xml; (p = strstr(p, "<Key>"));) {
            p += 5;
            const char *e = strstr(p, "</Key>");
            cr_assert_not_null(e);
            keys = realloc(keys, (n + 1) * sizeof(*keys));
            keys[n++] = strndup(p, (size_t)(e - p));
            p = e;
        }
        const char *t = strstr(xml, "<NextContinuationToken>");
        bool more = strstr(xml, "<IsTruncated>true</IsTruncated>") && t;
        if (more) {
            t += strlen("<NextContinuationToken>");
            snprintf(token, sizeof(token), "%.*s", (int)strcspn(t, "<"), t);
        }
        free(xml);
        if (!more)
            break;
    }
    *out = keys;
    return n;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The object's bytes decompressed by its extension (.gz, .zst, else raw). */
static char *decompress(const char *key, const char *data, size_t len, size_t *out_len)
{
    struct mem m = {.p = calloc(1, 1)};
    if (ends_with(key, ".gz")) {
        z_stream z = {0};
        cr_assert_eq(inflateInit2(&z, MAX_WBITS + 16), Z_OK);
        z.next_in = (Bytef *)data;
        z.avail_in = (uInt)len;
        char buf[65536];
        int zr;
        do {
            z.next_out = (Bytef *)buf;
            z.avail_out = sizeof(buf);
            zr = inflate(&z, Z_NO_FLUSH);
            cr_assert(zr == Z_OK || zr == Z_STREAM_END, "%s: not valid gzip (%d)", key, zr);
            mem_write(buf, 1, sizeof(buf) - z.avail_out, &m);
        } while (zr != Z_STREAM_END);
        cr_assert_eq(z.avail_in, 0, "%s: bytes after the gzip stream", key);
        inflateEnd(&z);
    } else if (ends_with(key, ".zst")) {
        ZSTD_DCtx *d = ZSTD_createDCtx();
        ZSTD_inBuffer in = {data, len, 0};
        char buf[65536];
        size_t r = 1;
        while (in.pos < in.size) {
            ZSTD_outBuffer ob = {buf, sizeof(buf), 0};
            r = ZSTD_decompressStream(d, &ob, &in);
            cr_assert(!ZSTD_isError(r), "%s: not valid zstd: %s", key, ZSTD_getErrorName(r));
            mem_write(buf, 1, ob.pos, &m);
        }
        cr_assert_eq(r, 0, "%s: zstd frame not complete", key);
        ZSTD_freeDCtx(d);
    } else {
        mem_write((char *)data, 1, len, &m);
    }
    *out_len = m.n;
    return m.p;
}

/* ---- comparing lines ------------------------------------------------------ */

struct lines {
    char **v;
    size_t n;
};

static void lines_add_text(struct lines *l, const char *text, bool skip_first)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (skip_first)
            skip_first = false;
        else if (n) {
            l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
            l->v[l->n++] = strndup(p, n);
        }
        p += n + (nl ? 1 : 0);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (struct lines){0};
}

/* @got (from S3) equals @want (from the file) as multisets. */
static void assert_same_lines(struct lines *got, struct lines *want)
{
    qsort(got->v, got->n, sizeof(char *), cmp_str);
    qsort(want->v, want->n, sizeof(char *), cmp_str);
    for (size_t i = 1; i < got->n; i++)
        cr_assert_str_neq(got->v[i], got->v[i - 1], "duplicated in S3: %s", got->v[i]);
    size_t i = 0, j = 0;
    while (i < got->n && j < want->n) {
        int c = strcmp(got->v[i], want->v[j]);
        cr_assert(c >= 0, "in S3 but not in the file: %s", got->v[i]);
        cr_assert(c <= 0, "in the file but not in S3: %s", want->v[j]);
        i++, j++;
    }
    cr_assert_eq(got->n, want->n, "S3 has %zu points, the file %zu", got->n, want->n);
}

/* CSV (header "time,measurement,TAGS...,FIELDS..." and rows) turned into
 * line protocol, for sim's float-only points. */
static void csv_to_lp(const char *text, size_t ntags, struct lines *out)
{
    char *copy = strdup(text);
    char *save = NULL;
    char *header = strtok_r(copy, "\n", &save);
    cr_assert_not_null(header);
    char *cols[32] = {0};
    size_t ncols = 0;
    for (char *h = strtok(strdup(header), ","); h && ncols < 32; h = strtok(NULL, ","))
        cols[ncols++] = h;
    cr_assert_str_eq(cols[0], "time");
    cr_assert_str_eq(cols[1], "measurement");
    for (char *row; (row = strtok_r(NULL, "\n", &save));) {
        char *vals[32] = {0}, *vs = NULL;
        size_t nv = 0;
        for (char *v = strtok_r(row, ",", &vs); v && nv < 32; v = strtok_r(NULL, ",", &vs))
            vals[nv++] = v;
        cr_assert_eq(nv, ncols, "row with %zu of %zu columns", nv, ncols);
        gd_buf line = {0};
        for (size_t k = 0; k < ncols; k++)
            if (!vals[k])
                vals[k] = ""; /* unreachable after the column check; keeps printf honest */
        gd_buf_puts(&line, vals[1]);
        for (size_t k = 2; k < 2 + ntags; k++)
            gd_buf_printf(&line, ",%s=%s", cols[k], vals[k]);
        for (size_t k = 2 + ntags; k < ncols; k++)
            gd_buf_printf(&line, "%c%s=%s", k == 2 + ntags ? ' ' : ',', cols[k], vals[k]);
        gd_buf_printf(&line, " %s", vals[0]);
        out->v = realloc(out->v, (out->n + 1) * sizeof(*out->v));
        out->v[out->n++] = line.data;
    }
    free(cols[0]);
    free(copy);
}

enum content { AS_LINES, AS_CSV };

/* Every object of the bucket, decompressed, as lines (CSV converted); the
 * keys into @keys when not NULL. */
static void fetch_all(struct lines *got, enum content how, size_t csv_tags, struct lines *keys)
{
    char **k = NULL;
    size_t n = list_keys(&k);
    for (size_t i = 0; i < n; i++) {
        size_t len, dlen;
        char path[1200];
        snprintf(path, sizeof(path), "/%s", k[i]);
        char *raw = s3_get(path, &len, NULL, 0);
        char *text = decompress(k[i], raw, len, &dlen);
        cr_assert_eq(strlen(text), dlen, "%s: NUL byte in the content", k[i]);
        if (how == AS_CSV)
            csv_to_lp(text, csv_tags, got);
        else
            lines_add_text(got, text, false);
        free(text);
        free(raw);
        if (keys) {
            keys->v = realloc(keys->v, (keys->n + 1) * sizeof(char *));
            keys->v[keys->n++] = k[i];
        } else {
            free(k[i]);
        }
    }
    free(k);
}

static void file_lines(const char *name, struct lines *l)
{
    char *text = gdt_read_file(gdt_path(name));
    lines_add_text(l, text, false);
    free(text);
}

/* ---- running the daemon ---------------------------------------------------- */

/* The configuration: a finite sim input, the s3 output with @s3_opts, a
 * file output in @file_format. */
static void write_conf(const char *sim_opts, const char *s3_opts, const char *file_format)
{
    char conf[4096];
    snprintf(conf, sizeof(conf),
             "global: { shutdown_timeout = 20.0; spool_dir = \"%s\"; };\n"
             "inputs = ( { plugin = \"sim\"; name = \"sim\"; %s } );\n"
             "outputs = ( { plugin = \"s3\"; name = \"arch\"; bucket = \"" BUCKET "\";\n"
             "              endpoint = \"%s\"; path_style = true;\n"
             "              flush_timeout = 3.0; %s },\n"
             "            { plugin = \"file\"; name = \"copy\"; path = \"%s\"; format = \"%s\";\n"
             "              flush_interval = 0.0; } );\n",
             gdt_path("spool"), sim_opts, endpoint(), s3_opts, gdt_path("copy.txt"), file_format);
    gdt_write_file(gdt_path("gatherd.conf"), conf);
}

/* Run to the end; the log (malloc'd). */
static char *run(int timeout_s)
{
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    int code = gdt_wait_exit(pid, timeout_s);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "gatherd exited with %d:\n%s", code, log);
    return log;
}

static size_t spool_files(void)
{
    char cmd[512];
    /* global.spool_dir/arch/objects by default, spool_dir/arch when set */
    snprintf(cmd, sizeof(cmd),
             "ls %s/arch %s/arch/objects 2>/dev/null | grep -c -E '\\.(open|ready)$'",
             gdt_path("spool"), gdt_path("spool"));
    FILE *f = popen(cmd, "r");
    size_t n = 0;
    if (f) {
        if (fscanf(f, "%zu", &n) != 1)
            n = 0;
        pclose(f);
    }
    return n;
}

#define SIM_FINITE(n)                                                                              \
    "interval = 0; chambers = 8; points_per_collect = 500; stop_after = " #n                       \
    "; exit_when_done = true; seed = 7;"

/* ---- tests ------------------------------------------------------------------- */

Test(s3, gzip_ndjson_objects_hold_every_point_once)
{
    start_server();
    write_conf(SIM_FINITE(20000) " fault_rate = 0.05;",
               "access_key_id = \"" KEY_ID "\"; secret_access_key = \"" SECRET "\";"
               "format = \"ndjson\"; compression = \"gzip\"; object_bytes = 20000;"
               "key = \"{measurement}/%Y/%m/%d/%H/{device}-{seq}{ext}\";",
               "json");
    char *log = run(60);
    gdt_counters c = gdt_counters_of(log, "output:s3/arch");
    cr_assert_eq(c.delivered, 20000);
    cr_assert_eq(c.dropped, 0);

    struct lines got = {0}, want = {0}, keys = {0};
    fetch_all(&got, AS_LINES, 0, &keys);
    file_lines("copy.txt", &want);
    cr_assert_eq(want.n, 20000);
    assert_same_lines(&got, &want);
    cr_assert_gt(keys.n, 8, "object_bytes splits the 8 devices' data into more objects");
    /* Keys: the template, UTC time of the first point, one device each. */
    char year[8];
    time_t now = time(NULL);
    strftime(year, sizeof(year), "%Y", gmtime(&now));
    for (size_t i = 0; i < keys.n; i++) {
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "chamber/%s/", year);
        cr_assert(strncmp(keys.v[i], prefix, strlen(prefix)) == 0, "key %s", keys.v[i]);
        cr_assert(ends_with(keys.v[i], ".ndjson.gz"), "key %s", keys.v[i]);
        /* ".../chamber-N-SEQ.ndjson.gz": the device is up to the second '-'. */
        const char *base = strrchr(keys.v[i], '/') + 1;
        const char *dash = strchr(base, '-');
        cr_assert(strncmp(base, "chamber-", 8) == 0 && dash && strchr(dash + 1, '-'), "key %s",
                  keys.v[i]);
        char want_tag[64];
        snprintf(want_tag, sizeof(want_tag), "\"device\":\"%.*s\"",
                 (int)(strchr(dash + 1, '-') - base), base);
        size_t len, dlen;
        char path[1200];
        snprintf(path, sizeof(path), "/%s", keys.v[i]);
        char *raw = s3_get(path, &len, NULL, 0);
        char *text = decompress(keys.v[i], raw, len, &dlen);
        struct lines one = {0};
        lines_add_text(&one, text, false);
        for (size_t k = 0; k < one.n; k++)
            cr_assert_not_null(strstr(one.v[k], want_tag), "%s holds %s", keys.v[i], one.v[k]);
        lines_free(&one);
        free(text);
        free(raw);
    }
    cr_assert_eq(spool_files(), 0, "the spool is empty after the uploads");
    lines_free(&got);
    lines_free(&want);
    lines_free(&keys);
    free(log);
}

Test(s3, zstd_line_protocol_objects_hold_every_point_once)
{
    start_server();
    write_conf(SIM_FINITE(16000),
               "access_key_id = \"" KEY_ID "\"; secret_access_key = \"" SECRET "\";"
               "format = \"line\"; compression = \"zstd\"; object_bytes = 30000;",
               "line");
    char *log = run(60);
    struct lines got = {0}, want = {0}, keys = {0};
    fetch_all(&got, AS_LINES, 0, &keys);
    file_lines("copy.txt", &want);
    cr_assert_eq(want.n, 16000);
    assert_same_lines(&got, &want);
    for (size_t i = 0; i < keys.n; i++)
        cr_assert(ends_with(keys.v[i], ".lp.zst"), "key %s", keys.v[i]);
    lines_free(&got);
    lines_free(&want);
    lines_free(&keys);
    free(log);
}

Test(s3, uncompressed_csv_objects_hold_every_point_once)
{
    start_server();
    write_conf(SIM_FINITE(8000),
               "access_key_id = \"" KEY_ID "\"; secret_access_key = \"" SECRET "\";"
               "format = \"csv\"; compression = \"none\"; key = \"csv/{seq}{ext}\";",
               "line");
    char *log = run(60);
    struct lines got = {0}, want = {0}, keys = {0};
    fetch_all(&got, AS_CSV, 1, &keys);
    file_lines("copy.txt", &want);
    cr_assert_eq(want.n, 8000);
    assert_same_lines(&got, &want);
    for (size_t i = 0; i < keys.n; i++)
        cr_assert(ends_with(keys.v[i], ".csv"), "key %s", keys.v[i]);
    lines_free(&got);
    lines_free(&want);
    lines_free(&keys);
    free(log);
}

Test(s3, large_objects_go_up_in_parts_and_arrive_whole)
{
    start_server();
    write_conf(SIM_FINITE(40000),
               "access_key_id = \"" KEY_ID "\"; secret_access_key = \"" SECRET "\";"
               "format = \"line\"; compression = \"none\"; object_bytes = 1000000;"
               "multipart_bytes = 100000; key = \"mp/{seq}{ext}\";",
               "line");
    char *log = run(60);
    struct lines got = {0}, want = {0}, keys = {0};
    fetch_all(&got, AS_LINES, 0, &keys);
    file_lines("copy.txt", &want);
    assert_same_lines(&got, &want);
    /* The server's request log shows the multipart calls for every object
     * larger than multipart_bytes. */
    char logpath[256];
    snprintf(logpath, sizeof(logpath), "%s/s3rver.log", srv.dir);
    char *srvlog = gdt_read_file(logpath);
    size_t multipart = 0;
    for (size_t i = 0; i < keys.n; i++) {
        char path[1200], etag[256], needle[1200];
        size_t len;
        snprintf(path, sizeof(path), "/%s", keys.v[i]);
        free(s3_get(path, &len, etag, sizeof(etag)));
        cr_assert(etag[0] == '"', "%s has an ETag", keys.v[i]);
        if (len <= 100000)
            continue;
        const char *base = strrchr(keys.v[i], '/') + 1;
        snprintf(needle, sizeof(needle), "%s?uploads=", base);
        cr_assert_not_null(strstr(srvlog, needle), "no CreateMultipartUpload for %s", base);
        snprintf(needle, sizeof(needle), "%s?partNumber=2&uploadId=", base);
        cr_assert_not_null(strstr(srvlog, needle), "no part 2 of %s (%zu bytes)", base, len);
        multipart++;
    }
    free(srvlog);
    cr_assert_gt(multipart, 0, "some object was larger than multipart_bytes");
    lines_free(&got);
    lines_free(&want);
    lines_free(&keys);
    free(log);
}

/* Wait until @needle appears in the daemon's log (at most @ms). */
static bool log_has(const char *needle, int ms)
{
    for (int waited = 0; waited <= ms; waited += 100) {
        char *log = gdt_read_file(gdt_path("daemon.err"));
        bool found = strstr(log, needle) != NULL;
        free(log);
        if (found)
            return true;
        gdt_msleep(100);
    }
    return false;
}

Test(s3, credentials_come_from_the_aws_variables)
{
    start_server();
    setenv("AWS_ACCESS_KEY_ID", KEY_ID, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLE", 1);
    write_conf(SIM_FINITE(4000), "key = \"env/{seq}{ext}\";", "json");
    char *log = run(60);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    struct lines got = {0}, want = {0};
    fetch_all(&got, AS_LINES, 0, NULL);
    file_lines("copy.txt", &want);
    cr_assert_eq(want.n, 4000);
    assert_same_lines(&got, &want);
    lines_free(&got);
    lines_free(&want);
    free(log);
}

Test(s3, missing_credentials_stop_the_start_with_a_reason)
{
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    char conf[1024];
    snprintf(conf, sizeof(conf),
             "inputs = ( { plugin = \"sim\"; name = \"sim\"; } );\n"
             "outputs = ( { plugin = \"s3\"; name = \"arch\"; bucket = \"b\";"
             " spool_dir = \"%s\"; } );\n",
             gdt_path("spool"));
    gdt_write_file(gdt_path("gatherd.conf"), conf);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    int code = gdt_wait_exit(pid, 20);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_neq(code, 0, "started without credentials:\n%s", log);
    cr_assert_not_null(strstr(log, "AWS_ACCESS_KEY_ID"), "%s", log);
    free(log);
}

Test(s3, an_object_goes_up_after_object_interval_while_running)
{
    start_server();
    write_conf("interval = 0.1; chambers = 4; points_per_collect = 20;",
               "access_key_id = \"" KEY_ID "\"; secret_access_key = \"" SECRET "\";"
               "object_interval = 1.0; key = \"tick/{seq}{ext}\";",
               "json");
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    size_t n = 0;
    for (int waited = 0; waited < 6000 && n == 0; waited += 200) {
        gdt_msleep(200);
        char **k = NULL;
        n = list_keys(&k);
        for (size_t i = 0; i < n; i++)
            free(k[i]);
        free(k);
    }
    cr_assert_gt(n, 0, "no object uploaded within 6 s with object_interval = 1 s");
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int code = gdt_wait_exit(pid, 30);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    struct lines got = {0}, want = {0};
    fetch_all(&got, AS_LINES, 0, NULL);
    file_lines("copy.txt", &want);
    assert_same_lines(&got, &want);
    lines_free(&got);
    lines_free(&want);
    free(log);
}

Test(s3, wrong_key_is_a_clear_error_and_a_reload_delivers_everything)
{
    start_server();
    const char *sim = "interval = 0.1; chambers = 4; points_per_collect = 50; stop_after = 3000;"
                      " exit_when_done = true; seed = 3;";
    write_conf(sim,
               "access_key_id = \"WRONGKEY\"; secret_access_key = \"" SECRET "\";"
               "object_interval = 0.5; key = \"hup/{seq}{ext}\";",
               "json");
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    bool refused = log_has("HTTP 403 InvalidAccessKeyId", 5000);
    char *log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert(refused, "no 403 in the log:\n%s", log);
    /* The error names the endpoint and the key. */
    char where[128];
    snprintf(where, sizeof(where), "PUT %s/" BUCKET "/hup/", endpoint());
    cr_assert_not_null(strstr(log, where), "endpoint not named:\n%s", log);
    cr_assert_not_null(strstr(log, "(key \"hup/"), "key not named:\n%s", log);
    cr_assert_not_null(strstr(log, "access_key_id"), "no hint:\n%s", log);
    free(log);
    char **k = NULL;
    cr_assert_eq(list_keys(&k), 0, "nothing uploaded with a wrong key");
    free(k);

    write_conf(sim,
               "access_key_id = \"" KEY_ID "\"; secret_access_key = \"" SECRET "\";"
               "object_interval = 0.5; key = \"hup/{seq}{ext}\";",
               "json");
    cr_assert_eq(kill(pid, SIGHUP), 0);
    int code = gdt_wait_exit(pid, 60);
    log = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    struct lines got = {0}, want = {0};
    fetch_all(&got, AS_LINES, 0, NULL);
    file_lines("copy.txt", &want);
    cr_assert_eq(want.n, 3000);
    assert_same_lines(&got, &want);
    cr_assert_eq(spool_files(), 0);
    lines_free(&got);
    lines_free(&want);
    free(log);
}

Test(s3, objects_left_by_a_failed_run_go_up_at_the_next_start)
{
    start_server();
    /* Run 1: nobody listens at the endpoint; everything stays spooled. */
    int dead = gdt_free_port();
    char conf_opts[512];
    snprintf(conf_opts, sizeof(conf_opts),
             "access_key_id = \"" KEY_ID "\"; secret_access_key = \"" SECRET "\";"
             "object_bytes = 20000; key = \"left/{seq}{ext}\"; endpoint = \"http://127.0.0.1:%d\";",
             dead);
    char conf[4096];
    snprintf(conf, sizeof(conf),
             "global: { shutdown_timeout = 20.0; spool_dir = \"%s\"; };\n"
             "inputs = ( { plugin = \"sim\"; name = \"sim\"; " SIM_FINITE(
                 6000) " } );\n"
                       "outputs = ( { plugin = \"s3\"; name = \"arch\"; bucket = \"" BUCKET "\";\n"
                       "              path_style = true; flush_timeout = 1.0;\n"
                       "              format = \"line\"; %s },\n"
                       "            { plugin = \"file\"; name = \"copy\"; path = \"%s\"; } );\n",
             gdt_path("spool"), conf_opts, gdt_path("copy.txt"));
    gdt_write_file(gdt_path("gatherd.conf"), conf);
    char *log = run(60);
    cr_assert_gt(spool_files(), 1, "objects stay spooled:\n%s", log);
    free(log);

    /* Run 2: the right endpoint; more points, and the leftovers first. */
    write_conf(SIM_FINITE(4000),
               "access_key_id = \"" KEY_ID "\"; secret_access_key = \"" SECRET "\";"
               "format = \"line\"; key = \"left/{seq}{ext}\";",
               "line");
    log = run(60);
    cr_assert_not_null(strstr(log, "left by an earlier run"), "%s", log);
    struct lines got = {0}, want = {0};
    fetch_all(&got, AS_LINES, 0, NULL);
    file_lines("copy.txt", &want);
    cr_assert_eq(want.n, 10000, "the file holds both runs");
    assert_same_lines(&got, &want);
    cr_assert_eq(spool_files(), 0);
    lines_free(&got);
    lines_free(&want);
    free(log);
}

Test(s3, an_object_cut_short_by_kill_9_is_repaired_and_uploaded)
{
    start_server();
    /* Run 1: objects never fill up or age; kill -9 while they are open. */
    write_conf("interval = 0.05; chambers = 4; points_per_collect = 100;",
               "access_key_id = \"" KEY_ID "\"; secret_access_key = \"" SECRET "\";"
               "format = \"ndjson\"; compression = \"gzip\"; object_interval = 3600.0;"
               "key = \"killed/{seq}{ext}\";",
               "json");
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    gdt_msleep(1500);
    kill(pid, SIGKILL);
    gdt_wait_exit(pid, 10);
    cr_assert_gt(spool_files(), 0, "an open object is left in the spool");
    struct lines first = {0};
    file_lines("copy.txt", &first);
    cr_assert_gt(first.n, 0);
    char **k = NULL;
    cr_assert_eq(list_keys(&k), 0, "nothing was uploaded before the kill");
    free(k);

    /* Run 2: a finite run; the repaired object is uploaded too. */
    write_conf(SIM_FINITE(2000),
               "access_key_id = \"" KEY_ID "\"; secret_access_key = \"" SECRET "\";"
               "format = \"ndjson\"; compression = \"gzip\"; key = \"killed/{seq}{ext}\";",
               "json");
    char *log = run(60);
    cr_assert_not_null(strstr(log, "recovered"), "%s", log);
    struct lines got = {0}, want = {0};
    fetch_all(&got, AS_LINES, 0, NULL);
    file_lines("copy.txt", &want);
    /* Points the s3 output had not taken from its queue died with the
     * process: S3 holds a subset of the file, without duplicates, with
     * every point of run 2 and some of run 1. */
    qsort(got.v, got.n, sizeof(char *), cmp_str);
    qsort(want.v, want.n, sizeof(char *), cmp_str);
    for (size_t i = 1; i < got.n; i++)
        cr_assert_str_neq(got.v[i], got.v[i - 1], "duplicated: %s", got.v[i]);
    size_t j = 0;
    for (size_t i = 0; i < got.n; i++) {
        while (j < want.n && strcmp(want.v[j], got.v[i]) < 0)
            j++;
        cr_assert(j < want.n && strcmp(want.v[j], got.v[i]) == 0, "not in the file: %s", got.v[i]);
    }
    cr_assert_gt(got.n, 2000, "some points of the killed run were recovered (%zu)", got.n);
    cr_assert_eq(spool_files(), 0);
    lines_free(&first);
    lines_free(&got);
    lines_free(&want);
    free(log);
}
