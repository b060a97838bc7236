/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The postgres output against a real PostgreSQL 15 (one throwaway server
 * per test). Each run writes the same points to PostgreSQL and to a file
 * output; the file's line protocol, parsed here, is loaded into a scratch
 * table with plain parameterised INSERTs (not the plugin's COPY encoder),
 * and `EXCEPT ALL` both ways proves that every point arrived exactly once
 * with its timestamp (microseconds), tags, values and types.
 */
#include "harness.h"
#include <criterion/criterion.h>
#include <gatherd/gatherd.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The plugin's COPY encoder, for the round-trip test of every value type. */
#include "../../plugins/outputs/postgres/pg_copy.c"

static gdt_server srv;

static void pg_fini(void)
{
    gdt_pg_destroy(&srv); /* always, also after a failed assertion */
    gdt_teardown();
}

TestSuite(postgres, .init = gdt_setup, .fini = pg_fini, .timeout = 150);

/* ---- database helpers ---------------------------------------------------- */

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *db_open(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

static PGconn *db(void)
{
    return db_open(gdt_pg_conninfo(&srv));
}

static void sql(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sql(PGconn *c, const char *fmt, ...)
{
    char q[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(c, q);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", q,
              PQresultErrorMessage(r));
    PQclear(r);
}

/* The first column of the first row as a number. */
static long long sql_num(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long sql_num(PGconn *c, const char *fmt, ...)
{
    char q[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(c, q);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", q, PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1, "%s: %d rows", q, PQntuples(r));
    long long v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static char *ident(PGconn *c, const char *name)
{
    char *q = PQescapeIdentifier(c, name, strlen(name));
    cr_assert_not_null(q);
    return q;
}

/* ---- line protocol as the file output writes it -------------------------- */

#define MAX_KV 16

struct lp_point {
    char *meas;
    int nt, nf;
    char *tk[MAX_KV], *tv[MAX_KV];
    char *fk[MAX_KV], *fv[MAX_KV]; /* value text: number without suffix, or the string */
    char ft[MAX_KV];               /* 'f' float, 'i' int, 'u' uint, 'b' bool, 's' string */
    long long ns;
};

struct lp_file {
    struct lp_point *p;
    size_t n;
};

/* Read up to an unescaped byte of @stops; a backslash escapes the bytes of
 * @esc only (the SDK writes other backslashes as they are). */
static char *lp_token(char **cur, const char *stops, const char *esc)
{
    char *s = *cur, *out = malloc(strlen(s) + 1), *o = out;
    while (*s && !strchr(stops, *s)) {
        if (*s == '\\' && s[1] && strchr(esc, s[1]))
            s++;
        *o++ = *s++;
    }
    *o = '\0';
    *cur = s;
    return out;
}

static void lp_parse_line(char *line, struct lp_point *p)
{
    memset(p, 0, sizeof(*p));
    char *s = line;
    p->meas = lp_token(&s, ", ", ", ");
    while (*s == ',') {
        s++;
        cr_assert_lt(p->nt, MAX_KV);
        p->tk[p->nt] = lp_token(&s, "=", ",= ");
        cr_assert_eq(*s, '=', "bad tag in: %s", line);
        s++;
        p->tv[p->nt++] = lp_token(&s, ", ", ",= ");
    }
    cr_assert_eq(*s, ' ', "bad line: %s", line);
    do {
        s++;
        cr_assert_lt(p->nf, MAX_KV);
        int k = p->nf++;
        p->fk[k] = lp_token(&s, "=", ",= ");
        cr_assert_eq(*s, '=', "bad field in: %s", line);
        s++;
        if (*s == '"') {
            s++;
            p->fv[k] = lp_token(&s, "\"", "\"\\");
            cr_assert_eq(*s, '"');
            s++;
            p->ft[k] = 's';
            continue;
        }
        char *v = lp_token(&s, ", ", "");
        size_t len = strlen(v);
        if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0 || strcmp(v, "t") == 0 ||
            strcmp(v, "f") == 0) {
            p->ft[k] = 'b';
        } else if (len && (v[len - 1] == 'i' || v[len - 1] == 'u')) {
            p->ft[k] = v[len - 1];
            v[len - 1] = '\0';
        } else {
            p->ft[k] = 'f';
        }
        p->fv[k] = v;
    } while (*s == ',');
    cr_assert_eq(*s, ' ', "no timestamp: %s", line);
    p->ns = atoll(s + 1);
}

static struct lp_file lp_read(const char *path)
{
    struct lp_file f = {0};
    char *text = gdt_read_file(path);
    size_t cap = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (f.n == cap) {
            cap = cap ? cap * 2 : 256;
            f.p = realloc(f.p, cap * sizeof(*f.p));
        }
        lp_parse_line(line, &f.p[f.n++]);
    }
    free(text);
    return f;
}

static void lp_free(struct lp_file *f)
{
    for (size_t i = 0; i < f->n; i++) {
        struct lp_point *p = &f->p[i];
        free(p->meas);
        for (int k = 0; k < p->nt; k++) {
            free(p->tk[k]);
            free(p->tv[k]);
        }
        for (int k = 0; k < p->nf; k++) {
            free(p->fk[k]);
            free(p->fv[k]);
        }
    }
    free(f->p);
}

static const char *lp_field(const struct lp_point *p, const char *key)
{
    for (int k = 0; k < p->nf; k++)
        if (strcmp(p->fk[k], key) == 0)
            return p->fv[k];
    return NULL;
}

static long long floor_us(long long ns)
{
    return ns >= 0 ? ns / 1000 : -((-ns + 999) / 1000);
}

/* The tags as a JSON object. */
static void json_tags(const struct lp_point *p, char *out, size_t size)
{
    size_t n = 0;
    out[n++] = '{';
    for (int k = 0; k < p->nt; k++) {
        for (int part = 0; part < 2; part++) {
            const char *s = part ? p->tv[k] : p->tk[k];
            if (k || part)
                out[n++] = part ? ':' : ',';
            out[n++] = '"';
            for (; *s && n + 8 < size; s++) {
                if (*s == '"' || *s == '\\')
                    out[n++] = '\\';
                out[n++] = *s;
            }
            out[n++] = '"';
        }
    }
    out[n++] = '}';
    out[n] = '\0';
    cr_assert_lt(n, size);
}

/* ---- comparing ----------------------------------------------------------- */

/* Microseconds since the epoch (a bigint parameter) as timestamptz, exactly:
 * bigint * interval goes through double precision and rounds beyond 2^53. */
#define US_TO_TIMESTAMPTZ(p)                                                                       \
    "('epoch'::timestamptz + (" p "::bigint / 1000000) * interval '1 second' + (" p                \
    "::bigint % 1000000) * interval '1 microsecond')"

/* Rows of @a not in @b (with multiplicity), printed; returns their count. */
static long long except_all(PGconn *c, const char *a, const char *b, const char *what)
{
    char q[1024];
    snprintf(q, sizeof(q), "SELECT * FROM (%s EXCEPT ALL %s) d LIMIT 5", a, b);
    PGresult *r = PQexec(c, q);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", q, PQresultErrorMessage(r));
    for (int i = 0; i < PQntuples(r); i++) {
        fprintf(stderr, "%s:", what);
        for (int j = 0; j < PQnfields(r); j++)
            fprintf(stderr, " %s=%s", PQfname(r, j),
                    PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j));
        fprintf(stderr, "\n");
    }
    long long n = PQntuples(r);
    PQclear(r);
    return n;
}

static void assert_same_rows(PGconn *c, const char *actual, const char *expected, long long n)
{
    long long got = sql_num(c, "SELECT count(*) FROM (%s) x", actual);
    long long extra = except_all(c, actual, expected, "unexpected (or duplicated) row");
    long long missing = except_all(c, expected, actual, "missing row");
    cr_assert(extra == 0 && missing == 0, "rows differ: %lld unexpected, %lld missing (of %lld)",
              extra, missing, n);
    cr_assert_eq(got, n, "%lld rows, expected %lld", got, n);
}

/* Narrow: every field of every point of @f (with measurement @meas, or all
 * when NULL), keep(point) deciding, against table @table. */
static void check_narrow(PGconn *c, const char *table, const struct lp_file *f,
                         bool (*keep)(const struct lp_point *))
{
    sql(c, "CREATE TEMP TABLE expect_n (us bigint, measurement text, tags jsonb, field text, "
           "value double precision, value_text text)");
    sql(c, "BEGIN");
    long long rows = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct lp_point *p = &f->p[i];
        if (keep && !keep(p))
            continue;
        char us[32], tags[2048];
        snprintf(us, sizeof(us), "%lld", floor_us(p->ns));
        json_tags(p, tags, sizeof(tags));
        for (int k = 0; k < p->nf; k++) {
            const char *num = NULL, *str = NULL;
            if (p->ft[k] == 's')
                str = p->fv[k];
            else if (p->ft[k] == 'b')
                num = p->fv[k][0] == 't' ? "1" : "0";
            else
                num = p->fv[k];
            const char *params[6] = {us, p->meas, tags, p->fk[k], num, str};
            PGresult *r = PQexecParams(c, "INSERT INTO expect_n VALUES ($1, $2, $3, $4, $5, $6)", 6,
                                       NULL, params, NULL, NULL, 0);
            cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
            PQclear(r);
            rows++;
        }
    }
    sql(c, "COMMIT");
    char actual[512];
    snprintf(actual, sizeof(actual),
             "SELECT (extract(epoch FROM time) * 1000000)::bigint, measurement, tags, field, "
             "value, value_text FROM %s",
             table);
    assert_same_rows(c, actual, "SELECT * FROM expect_n", rows);
    sql(c, "DROP TABLE expect_n");
}

/* Wide: every point of measurement @meas in @f (keep() deciding) against
 * table @schema.@table. Checks each column's type too. */
static void check_wide(PGconn *c, const char *schema, const char *table, const char *meas,
                       const struct lp_file *f, bool (*keep)(const struct lp_point *))
{
    char *qs = ident(c, schema), *qt = ident(c, table);
    char q[4096];
    sql(c, "DROP TABLE IF EXISTS expect_w");
    sql(c, "CREATE TEMP TABLE expect_w (LIKE %s.%s)", qs, qt);
    sql(c, "BEGIN");
    long long rows = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct lp_point *p = &f->p[i];
        if (strcmp(p->meas, meas) != 0 || (keep && !keep(p)))
            continue;
        const char *params[2 * MAX_KV + 1];
        char us[32];
        snprintf(us, sizeof(us), "%lld", floor_us(p->ns));
        params[0] = us;
        int np = 1;
        size_t n = (size_t)snprintf(q, sizeof(q), "INSERT INTO expect_w (\"time\"");
        for (int k = 0; k < p->nt + p->nf; k++) {
            char *col = ident(c, k < p->nt ? p->tk[k] : p->fk[k - p->nt]);
            n += (size_t)snprintf(q + n, sizeof(q) - n, ", %s", col);
            PQfreemem(col);
            params[np++] = k < p->nt ? p->tv[k] : p->fv[k - p->nt];
        }
        n += (size_t)snprintf(q + n, sizeof(q) - n, ") VALUES (%s", US_TO_TIMESTAMPTZ("$1"));
        for (int k = 2; k <= np; k++)
            n += (size_t)snprintf(q + n, sizeof(q) - n, ", $%d", k);
        snprintf(q + n, sizeof(q) - n, ")");
        PGresult *r = PQexecParams(c, q, np, NULL, params, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", q, PQresultErrorMessage(r));
        PQclear(r);
        rows++;

        /* Types: tags are text, fields typed from the line protocol. */
        for (int k = 0; k < p->nt + p->nf; k++) {
            const char *want = "text";
            if (k >= p->nt) {
                char t = p->ft[k - p->nt];
                want = t == 'f'   ? "double precision"
                       : t == 'i' ? "bigint"
                       : t == 'u' ? "numeric"
                       : t == 'b' ? "boolean"
                                  : "text";
            }
            const char *tp[3] = {schema, table, k < p->nt ? p->tk[k] : p->fk[k - p->nt]};
            PGresult *tr = PQexecParams(c,
                                        "SELECT data_type FROM information_schema.columns "
                                        "WHERE table_schema = $1 AND table_name = $2 AND "
                                        "column_name = $3",
                                        3, NULL, tp, NULL, NULL, 0);
            cr_assert_eq(PQntuples(tr), 1, "column %s missing", tp[2]);
            cr_assert_str_eq(PQgetvalue(tr, 0, 0), want, "column %s", tp[2]);
            PQclear(tr);
        }
    }
    sql(c, "COMMIT");
    snprintf(q, sizeof(q), "SELECT * FROM %s.%s", qs, qt);
    assert_same_rows(c, q, "SELECT * FROM expect_w", rows);
    PQfreemem(qs);
    PQfreemem(qt);
}

/* ---- the daemon ---------------------------------------------------------- */

static int run_conf(int timeout_s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_conf(int timeout_s, const char *fmt, ...)
{
    char conf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(conf, sizeof(conf), fmt, ap);
    va_end(ap);
    gdt_write_file(gdt_path("gatherd.conf"), conf);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    return gdt_wait_exit(pid, timeout_s);
}

/* The daemon's log; a sanitizer report in it fails the test (the exit code
 * of some runs is not checked). */
static size_t count_str(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* The sim input and a file output with the same points; @more adds outputs. */
#define SIM_CONF                                                                                   \
    "global = { log_level = \"info\"; shutdown_timeout = \"%s\"; };\n"                             \
    "inputs = ( { plugin = \"sim\"; name = \"sim\"; interval = \"50ms\"; seed = 7; chambers = "    \
    "3;\n"                                                                                         \
    "             points_per_collect = 10; stop_after = %d; exit_when_done = true;\n"              \
    "             fault_rate = %s; %s } %s);\n"                                                    \
    "outputs = ( { plugin = \"file\"; name = \"file\"; path = \"%s\"; },\n"                        \
    "            %s );\n"

#define GOOD_INPUT ", { plugin = \"good_input\"; name = \"seq\"; interval = \"50ms\"; count = 3; } "

/* Tags and names that need escaping on the way: quote, backslash, comma,
 * space, equals sign, non-ASCII. */
#define ODD_SIM_OPTIONS                                                                            \
    "device_prefix = \"ch \\\"q\\\" \\\\ b,c=d \xc3\xa9-\"; tags = { site = \"lab \\\"a\\\", "     \
    "b=c\"; };"

static const char *pg_out(const char *name, const char *extra)
{
    static char buf[4][1024];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, 1024,
             "{ plugin = \"postgres\"; name = \"%s\"; conninfo = \"%s\"; batch_points = 100;\n"
             "              flush_interval = \"200ms\"; retry_max = \"1s\"; %s }",
             name, gdt_pg_conninfo(&srv), extra);
    return b;
}

static bool has_no_fault(const struct lp_point *p)
{
    return lp_field(p, "fault") == NULL;
}

/* ---- tests --------------------------------------------------------------- */

Test(postgres, narrow_layout_stores_every_field_once_with_time_tags_and_values)
{
    gdt_pg_start(&srv);
    int code = run_conf(60, SIM_CONF, "20s", 400, "0.2", ODD_SIM_OPTIONS, GOOD_INPUT,
                        gdt_path("points.lp"),
                        pg_out("narrow", "layout = \"narrow\"; copy_format = \"text\";"));
    char *log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    struct lp_file f = lp_read(gdt_path("points.lp"));
    cr_assert_gt(f.n, 400, "sim and good_input points in the file (%zu)", f.n);
    gdt_counters c = gdt_counters_of(log, "output:postgres/narrow");
    cr_assert_eq(c.dropped, 0, "%s", log);
    cr_assert_eq(c.delivered, f.n);

    PGconn *db_ = db();
    check_narrow(db_, "gatherd_points", &f, NULL);
    /* Strings went to value_text, numbers (ints too) to value. */
    cr_assert_gt(sql_num(db_, "SELECT count(*) FROM gatherd_points WHERE field = 'fault' AND "
                              "value IS NULL AND value_text = 'sensor_timeout'"),
                 0);
    cr_assert_gt(sql_num(db_, "SELECT count(*) FROM gatherd_points WHERE measurement = 't' AND "
                              "field = 'v' AND value IS NOT NULL"),
                 0);
    PQfinish(db_);
    lp_free(&f);
    free(log);
}

Test(postgres, wide_layout_creates_and_extends_tables_with_typed_columns)
{
    gdt_pg_start(&srv);
    PGconn *db_ = db();
    /* An existing table with a subset of the columns: the rest are added. */
    sql(db_, "CREATE TABLE chamber (\"time\" timestamptz NOT NULL, device text)");
    int code =
        run_conf(60, SIM_CONF, "20s", 400, "0.2", ODD_SIM_OPTIONS, GOOD_INPUT,
                 gdt_path("points.lp"), pg_out("wide", "layout = \"wide\"; timescaledb = true;"));
    char *log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    struct lp_file f = lp_read(gdt_path("points.lp"));
    gdt_counters c = gdt_counters_of(log, "output:postgres/wide");
    cr_assert_eq(c.dropped, 0, "%s", log);
    cr_assert_eq(c.delivered, f.n);
    check_wide(db_, "public", "chamber", "chamber", &f, NULL);
    check_wide(db_, "public", "t", "t", &f, NULL);
    cr_assert(strstr(log, "\"public\".\"chamber\": binary COPY"), "%s", log);
    cr_assert_eq(count_str(log, "the extension is not installed"), 1,
                 "timescaledb missing: one clear warning:\n%s", log);
    /* Tag columns are marked as such; field columns are not. */
    cr_assert_eq(sql_num(db_,
                         "SELECT count(*) FROM pg_attribute WHERE attrelid = 'chamber'::regclass "
                         "AND col_description(attrelid, attnum) = 'gatherd tag'"),
                 1, "site is marked; device existed before");
    PQfinish(db_);
    lp_free(&f);
    free(log);
}

Test(postgres, dedupe_stores_points_written_twice_once)
{
    gdt_pg_start(&srv);
    /* Two outputs write the same points into the same tables, like a
     * retried or replayed batch: each row lands once. */
    char outs[4096];
    snprintf(outs, sizeof(outs), "%s,\n%s,\n%s,\n%s",
             pg_out("wide-a", "layout = \"wide\"; dedupe = true;"),
             pg_out("wide-b", "layout = \"wide\"; dedupe = true; copy_format = \"text\";"),
             pg_out("narrow-a", "layout = \"narrow\"; dedupe = true;"),
             pg_out("narrow-b", "layout = \"narrow\"; dedupe = true; copy_format = \"text\";"));
    /* Not good_input: its points are less than a microsecond apart, and
     * dedupe (rightly) takes points with equal time (us) and tags for one. */
    int code =
        run_conf(60, SIM_CONF, "20s", 400, "0.2", ODD_SIM_OPTIONS, "", gdt_path("points.lp"), outs);
    char *log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    struct lp_file f = lp_read(gdt_path("points.lp"));
    const char *names[] = {"postgres/wide-a", "postgres/wide-b", "postgres/narrow-a",
                           "postgres/narrow-b"};
    for (int i = 0; i < 4; i++) {
        char who[128];
        snprintf(who, sizeof(who), "output:%s", names[i]);
        gdt_counters c = gdt_counters_of(log, who);
        cr_assert_eq(c.dropped, 0, "%s: %s", names[i], log);
        cr_assert_eq(c.delivered, f.n, "%s", names[i]);
    }
    PGconn *db_ = db();
    check_wide(db_, "public", "chamber", "chamber", &f, NULL);
    check_narrow(db_, "gatherd_points", &f, NULL);
    cr_assert_eq(sql_num(db_, "SELECT count(*) FROM pg_constraint WHERE contype = 'u' AND "
                              "conname LIKE 'gatherd_dedupe_%%'"),
                 2, "one unique key per table");
    PQfinish(db_);
    lp_free(&f);
    free(log);
}

Test(postgres, server_down_at_start_and_stopped_for_20_seconds_loses_nothing)
{
    gdt_pg_start(&srv); /* makes the cluster and picks the port */
    gdt_pg_stop(&srv);
    /* 6 points every 50 ms for about 30 s: the outage is in the middle. */
    char conf[8192];
    snprintf(conf, sizeof(conf),
             "global = { log_level = \"info\"; shutdown_timeout = \"60s\"; };\n"
             "inputs = ( { plugin = \"sim\"; name = \"sim\"; interval = \"50ms\"; seed = 3;\n"
             "             chambers = 3; points_per_collect = 6; stop_after = 3600;\n"
             "             exit_when_done = true; } );\n"
             "outputs = ( { plugin = \"file\"; name = \"file\"; path = \"%s\"; },\n"
             "            %s );\n",
             gdt_path("points.lp"), pg_out("main", "layout = \"wide\";"));
    gdt_write_file(gdt_path("gatherd.conf"), conf);
    /* The server is down when gatherd starts: it starts anyway. */
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    gdt_msleep(1500);
    cr_assert_eq(kill(pid, 0), 0, "gatherd runs without its server");
    gdt_pg_start(&srv);
    gdt_msleep(3000);
    gdt_pg_stop(&srv);
    sleep(20);
    gdt_pg_start(&srv);
    int code = gdt_wait_exit(pid, 60);
    char *log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    struct lp_file f = lp_read(gdt_path("points.lp"));
    cr_assert_eq(f.n, 3600);
    gdt_counters c = gdt_counters_of(log, "output:postgres/main");
    cr_assert_eq(c.dropped, 0, "nothing dropped across the outages:\n%s", log);
    cr_assert_eq(c.delivered, 3600);
    cr_assert(strstr(log, "cannot connect"), "the first connection failed:\n%s", log);
    cr_assert(strstr(log, "reconnected to"), "the plugin reconnected:\n%s", log);
    PGconn *db_ = db();
    check_wide(db_, "public", "chamber", "chamber", &f, NULL);
    PQfinish(db_);
    lp_free(&f);
    free(log);
}

Test(postgres, data_errors_drop_only_the_bad_points)
{
    gdt_pg_start(&srv);
    PGconn *db_ = db();
    /* wide: `fault` is a number here, so the string "sensor_timeout" is a
     * data error (22P02) for the points that carry it. */
    sql(db_, "CREATE TABLE chamber (\"time\" timestamptz NOT NULL, device text, "
             "temp_c double precision, humidity_pct double precision, "
             "pressure_hpa double precision, co2_ppm double precision, fault double precision)");
    /* narrow with dedupe: a CHECK constraint refuses them (23514), at the
     * INSERT from the staging table. */
    sql(db_, "CREATE TABLE gatherd_points (time timestamptz NOT NULL, measurement text NOT NULL, "
             "tags jsonb NOT NULL, field text NOT NULL, value double precision, value_text text "
             "CHECK (value_text IS DISTINCT FROM 'sensor_timeout'))");
    char outs[2048];
    snprintf(outs, sizeof(outs), "%s,\n%s", pg_out("wide", "layout = \"wide\";"),
             pg_out("narrow", "layout = \"narrow\"; dedupe = true;"));
    int code = run_conf(60, SIM_CONF, "20s", 600, "0.05", "", "", gdt_path("points.lp"), outs);
    char *log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    struct lp_file f = lp_read(gdt_path("points.lp"));
    cr_assert_eq(f.n, 600);
    unsigned long long faults = 0;
    for (size_t i = 0; i < f.n; i++)
        faults += !has_no_fault(&f.p[i]);
    cr_assert_gt(faults, 5, "the seed gives some faults (%llu)", faults);

    const char *names[] = {"postgres/wide", "postgres/narrow"};
    for (int i = 0; i < 2; i++) {
        char who[128];
        snprintf(who, sizeof(who), "output:%s", names[i]);
        gdt_counters c = gdt_counters_of(log, who);
        cr_assert_eq(c.rejected, faults, "%s: dropped{rejected}=%llu, %llu faults\n%s", names[i],
                     c.rejected, faults, log);
        cr_assert_eq(c.dropped, faults);
        cr_assert_eq(c.delivered, f.n - faults);
    }
    cr_assert(strstr(log, "invalid input syntax for type double precision"),
              "the server's message is logged:\n%s", log);
    cr_assert(strstr(log, "violates check constraint"), "%s", log);
    cr_assert(strstr(log, "\"public\".\"chamber\": text COPY (column \"fault\""),
              "strings for a number column go as text:\n%s", log);
    cr_assert(strstr(log, "fault=\"sensor_timeout\""), "the dropped point is logged:\n%s", log);
    check_wide(db_, "public", "chamber", "chamber", &f, has_no_fault);
    check_narrow(db_, "gatherd_points", &f, has_no_fault);
    PQfinish(db_);
    lp_free(&f);
    free(log);
}

Test(postgres, hostile_measurement_and_schema_names_are_literal_identifiers)
{
    gdt_pg_start(&srv);
    PGconn *db_ = db();
    sql(db_, "CREATE TABLE victim (x int)");
    sql(db_, "CREATE SCHEMA \"odd \"\"schema\"\"\"");
    static const char *meas = "x\"; DROP TABLE victim; --";
    char opts[512];
    snprintf(opts, sizeof(opts), "%s measurement = \"x\\\"; DROP TABLE victim; --\";",
             ODD_SIM_OPTIONS);
    int code = run_conf(60, SIM_CONF, "20s", 200, "0.2", opts, "", gdt_path("points.lp"),
                        pg_out("wide", "layout = \"wide\"; schema = \"odd \\\"schema\\\"\";"
                                       "table = \"m_{measurement}\"; dedupe = true;"));
    char *log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    struct lp_file f = lp_read(gdt_path("points.lp"));
    cr_assert_eq(f.n, 200);
    cr_assert_str_eq(f.p[0].meas, meas);
    gdt_counters c = gdt_counters_of(log, "output:postgres/wide");
    cr_assert_eq(c.dropped, 0, "%s", log);
    cr_assert_eq(sql_num(db_, "SELECT count(*) FROM victim"), 0, "victim is still there");
    char table[128];
    snprintf(table, sizeof(table), "m_%s", meas);
    check_wide(db_, "odd \"schema\"", table, meas, &f, NULL);
    PQfinish(db_);
    lp_free(&f);
    free(log);
}

Test(postgres, missing_database_and_privileges_are_clear_errors_and_lose_nothing)
{
    gdt_pg_start(&srv);
    /* A database that does not exist: the server's words, at error level. */
    char conninfo[256];
    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d user=postgres dbname=nope",
             srv.port);
    char out[1024];
    snprintf(
        out, sizeof(out),
        "{ plugin = \"postgres\"; name = \"nodb\"; conninfo = \"%s\"; retry_max = \"200ms\"; }",
        conninfo);
    run_conf(30, SIM_CONF, "2s", 20, "0", "", "", gdt_path("nodb.lp"), out);
    char *log = gdt_daemon_log();
    cr_assert(strstr(log, "database \"nope\" does not exist"), "%s", log);
    cr_assert(strstr(log, " error [output:postgres/nodb] postgres: cannot connect"), "%s", log);
    cr_assert_eq(gdt_counters_of(log, "output:postgres/nodb").delivered, 0);
    free(log);

    /* A role without INSERT: clear errors, retried until an operator
     * grants it, then everything lands. */
    PGconn *db_ = db();
    sql(db_, "CREATE ROLE limited LOGIN");
    sql(db_, "CREATE TABLE chamber (\"time\" timestamptz NOT NULL, device text, "
             "temp_c double precision, humidity_pct double precision, "
             "pressure_hpa double precision, co2_ppm double precision)");
    snprintf(conninfo, sizeof(conninfo), "postgresql://limited@127.0.0.1:%d/gatherd", srv.port);
    snprintf(out, sizeof(out),
             "{ plugin = \"postgres\"; name = \"limited\"; conninfo = \"%s\"; batch_points = 100; "
             "flush_interval = \"200ms\"; retry_max = \"500ms\"; }",
             conninfo);
    char conf[4096];
    snprintf(conf, sizeof(conf), SIM_CONF, "30s", 300, "0", "", "", gdt_path("points.lp"), out);
    gdt_write_file(gdt_path("gatherd.conf"), conf);
    pid_t pid = gdt_spawn(gdt_path("gatherd.conf"));
    char *early = NULL;
    for (int i = 0; i < 100; i++) {
        gdt_msleep(100);
        free(early);
        early = gdt_daemon_log();
        if (strstr(early, "permission denied for table chamber"))
            break;
    }
    cr_assert(strstr(early, " error [output:postgres/limited] postgres: writing: permission "
                            "denied for table chamber (SQLSTATE 42501)"),
              "%s", early);
    free(early);
    sql(db_, "GRANT INSERT ON chamber TO limited");
    int code = gdt_wait_exit(pid, 60);
    log = gdt_daemon_log();
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    gdt_counters c = gdt_counters_of(log, "output:postgres/limited");
    cr_assert_eq(c.dropped, 0, "%s", log);
    cr_assert_eq(c.delivered, 300);
    struct lp_file f = lp_read(gdt_path("points.lp"));
    check_wide(db_, "public", "chamber", "chamber", &f, NULL);
    PQfinish(db_);
    lp_free(&f);
    free(log);
}

/* ---- the COPY encoder, every type through a real COPY --------------------- */

struct enc_case {
    long long ns;
    const char *tag;
    const char *str;
    double f;
    long long i;
    unsigned long long u;
    bool b;
};

/* Rows (time, tags, s, f, i, u, b, nb, ni) of every point of @b. */
static void encode_text(gd_buf *copy, const gd_batch *b)
{
    struct pgc_time_cache tc = {0};
    for (size_t k = 0; k < gd_batch_len(b); k++) {
        const gd_point *p = gd_batch_point(b, k);
        size_t nt, nf;
        const gd_tag *tags = gd_point_tags(p, &nt);
        const gd_field *fl = gd_point_fields(p, &nf);
        cr_assert_eq(pgc_time(copy, gd_point_time(p), &tc), 0);
        gd_buf_puts(copy, "\t");
        cr_assert_eq(pgc_tags_json(copy, tags, nt), 0);
        for (size_t j = 0; j < nf; j++) {
            gd_buf_puts(copy, "\t");
            cr_assert_eq(pgc_field(copy, &fl[j]), 0);
        }
        gd_buf_puts(copy, "\t");
        cr_assert_eq(pgc_field_number(copy, &fl[4]), 0); /* bool -> 1 / 0 */
        gd_buf_puts(copy, "\t");
        cr_assert_eq(pgc_field_number(copy, &fl[2]), 0); /* int -> double */
        gd_buf_puts(copy, "\n");
    }
}

static void encode_binary(gd_buf *copy, const gd_batch *b)
{
    cr_assert_eq(gd_buf_reserve(copy, PGB_HEADER_LEN), 0);
    copy->len = (size_t)(pgb_header(copy->data) - copy->data);
    for (size_t k = 0; k < gd_batch_len(b); k++) {
        const gd_point *p = gd_batch_point(b, k);
        size_t nt, nf;
        const gd_tag *tags = gd_point_tags(p, &nt);
        const gd_field *fl = gd_point_fields(p, &nf);
        cr_assert_eq(gd_buf_reserve(copy, 4096), 0);
        char *d = pgb_row(copy->data + copy->len, 9);
        d = pgb_time(d, gd_point_time(p));
        d = pgb_tags_jsonb(d, tags, nt);
        cr_assert_not_null(d);
        for (size_t j = 0; j < nf; j++)
            d = pgb_field(d, &fl[j]);
        d = pgb_float8(d, &fl[4]);
        d = pgb_float8(d, &fl[2]);
        copy->len = (size_t)(d - copy->data);
    }
    cr_assert_eq(gd_buf_reserve(copy, PGB_TRAILER_LEN), 0);
    copy->len = (size_t)(pgb_trailer(copy->data + copy->len) - copy->data);
}

static void copy_in(PGconn *c, const char *sql_text, const gd_buf *copy)
{
    PGresult *r = PQexec(c, sql_text);
    cr_assert_eq(PQresultStatus(r), PGRES_COPY_IN, "%s", PQresultErrorMessage(r));
    PQclear(r);
    cr_assert_eq(PQputCopyData(c, copy->data, (int)copy->len), 1);
    cr_assert_eq(PQputCopyEnd(c, NULL), 1);
    r = PQgetResult(c);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql_text, PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
}

Test(postgres, copy_encodings_round_trip_every_type_through_the_server)
{
    gdt_pg_start(&srv);
    static const struct enc_case cases[] = {
        {1700000000123456789LL, "plain", "tab\there", 21.5, 0, 0, true},
        {-1, "back\\slash", "new\nline\r\n", 0.1, -9223372036854775807LL - 1,
         18446744073709551615ULL, false},
        {0, "quote\"d", "back\\slash \\N not null", 1e300, 9223372036854775807LL, 1, true},
        {-86400000000001LL, "ctl\x01\x1f", "\"quoted\" \xc3\xa9", -2.5e-310, -1, 10000, false},
        {9223372036854775807LL, "e\xc3\xa9", "", 123456789012345680000.0, 42, 9007199254740993ULL,
         true},
    };
    const size_t n = sizeof(cases) / sizeof(cases[0]);
    PGconn *c = db();

    gd_batch *b = gd_batch_new(n);
    for (size_t k = 0; k < n; k++) {
        gd_point *p = gd_batch_add(b, "m", cases[k].ns);
        cr_assert_eq(gd_point_tag(p, "k", cases[k].tag), 0);
        cr_assert_eq(gd_point_tag(p, "a\"b", "x"), 0);
        gd_point_str(p, "s", cases[k].str);
        gd_point_f64(p, "f", cases[k].f);
        gd_point_i64(p, "i", cases[k].i);
        gd_point_u64(p, "u", cases[k].u);
        gd_point_bool(p, "b", cases[k].b);
    }
    gd_buf copy = {0};
    for (int binary = 0; binary < 2; binary++) {
        sql(c, "DROP TABLE IF EXISTS enc");
        sql(c, "CREATE TABLE enc (time timestamptz, tags jsonb, s text, f double precision, "
               "i bigint, u numeric(20,0), b boolean, nb double precision, ni double precision)");
        gd_buf_reset(&copy);
        if (binary)
            encode_binary(&copy, b);
        else
            encode_text(&copy, b);
        copy_in(c,
                binary ? "COPY enc (time, tags, s, f, i, u, b, nb, ni) FROM STDIN (FORMAT binary)"
                       : "COPY enc (time, tags, s, f, i, u, b, nb, ni) FROM STDIN",
                &copy);

        /* Compare through parameters (no COPY encoding on this side). */
        for (size_t k = 0; k < n; k++) {
            char us[32], f[40], i[32], u[32], nb[4], tags[256];
            snprintf(us, sizeof(us), "%lld", floor_us(cases[k].ns));
            snprintf(f, sizeof(f), "%.17g", cases[k].f);
            snprintf(i, sizeof(i), "%lld", cases[k].i);
            snprintf(u, sizeof(u), "%llu", cases[k].u);
            snprintf(nb, sizeof(nb), "%d", cases[k].b);
            const char *tag = cases[k].tag;
            size_t t = (size_t)snprintf(tags, sizeof(tags), "{\"a\\\"b\": \"x\", \"k\": \"");
            for (; *tag; tag++) {
                if ((unsigned char)*tag < 0x20)
                    t += (size_t)snprintf(tags + t, sizeof(tags) - t, "\\u%04x", *tag);
                else if (*tag == '"' || *tag == '\\')
                    t += (size_t)snprintf(tags + t, sizeof(tags) - t, "\\%c", *tag);
                else
                    tags[t++] = *tag;
            }
            snprintf(tags + t, sizeof(tags) - t, "\"}");
            const char *params[9] = {us, tags, cases[k].str, f, i, u, cases[k].b ? "t" : "f",
                                     nb, i};
            PGresult *q = PQexecParams(
                c,
                "SELECT count(*) FROM enc WHERE time = " US_TO_TIMESTAMPTZ(
                    "$1") " AND tags = $2::jsonb AND s = $3 AND f = $4::float8 AND i = "
                          "$5::bigint AND u = $6::numeric AND b = $7::boolean AND nb = "
                          "$8::float8 AND ni = $9::float8",
                9, NULL, params, NULL, NULL, 0);
            cr_assert_eq(PQresultStatus(q), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(q));
            cr_assert_str_eq(PQgetvalue(q, 0, 0), "1",
                             "%s: case %zu (tag %s, string %s) not stored as is",
                             binary ? "binary" : "text", k, cases[k].tag, cases[k].str);
            PQclear(q);
        }
        cr_assert_eq(sql_num(c, "SELECT count(*) FROM enc"), (long long)n);
    }

    /* A NUL byte cannot be stored: refused, nothing appended. */
    size_t len = copy.len;
    cr_assert_eq(pgc_escape(&copy, "a\0b", 3), GD_EINVAL);
    cr_assert_eq(copy.len, len);
    const char *why;
    cr_assert(pgc_valid_name("temp_c", 6, &why));
    cr_assert(pgc_valid_name("x\"; DROP TABLE y; --", 20, &why));
    cr_assert_not(pgc_valid_name("a\tb", 3, &why));
    cr_assert_not(pgc_valid_name("\xff", 1, &why));
    cr_assert_not(pgc_valid_name("0123456789012345678901234567890123456789012345678901234567890123",
                                 64, &why));
    gd_buf_free(&copy);
    gd_batch_unref(b);
    PQfinish(c);
}
