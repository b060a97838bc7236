/* SPDX-License-Identifier: Apache-2.0 */
/*
 * postgres.c - write batches to PostgreSQL with COPY (text format), one
 * transaction and one commit per batch.
 *
 * Layouts:
 *   narrow: one table (time, measurement, tags jsonb, field, value,
 *           value_text), one row per field of a point;
 *   wide:   a table per measurement (from the `table` template), a text
 *           column per tag and a typed column per field, one row per point.
 *           Tables and columns are created on first sight; the schema the
 *           plugin knows is cached and read again after any error.
 *
 * A write: [schema changes, in a transaction of their own] then BEGIN, COPY
 * per table (with dedupe: COPY into a temporary staging table, then INSERT
 * ... SELECT ... ON CONFLICT DO NOTHING), COMMIT. A data error (SQLSTATE
 * class 22 or 23) makes the batch go again in one transaction in which every
 * part is tried under a savepoint and split in halves on a data error, so
 * only the points the server refuses are dropped (reported as rejects and
 * logged with the server's message). Everything else is GD_RETRY: the core
 * retries with backoff, after the plugin reconnected if the connection is
 * gone. libpq is used in blocking mode from the output's writer thread, the
 * only thread that touches the connection.
 */
#include "pg_copy.h"
#include "pg_map.h"
#include <gatherd/gatherd.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* COPY data is handed to libpq in pieces of about this size, so the server
 * starts parsing while the rest of the batch is encoded (a large first piece
 * leaves it idle at the start of every batch). */
#define COPY_CHUNK_BYTES (32 * 1024)
/* Every gatherd's schema changes take this advisory lock (per database), so
 * two writers never race to create the same table, column or index. */
#define DDL_LOCK_KEY "7450580596923828125"
#define STAGE_PREFIX "gd_stage_"
#define UNIQ_PREFIX  "gatherd_dedupe_" /* + the table's oid */
#define TAG_COMMENT  "gatherd tag"
/* UNIQUE NULLS NOT DISTINCT (missing tags must compare equal) */
#define NULLS_NOT_DISTINCT_VERSION 150000
#define LOGGED_POINT_BYTES         400  /* of a dropped point, in the log */
#define MAX_MESSAGE_BYTES          1024 /* of a libpq message, in the log */
#define MS_PER_S                   1000.0
#define PLACEHOLDER                "{measurement}"
#define NARROW_DEFAULT_TABLE       "gatherd_points"
#define MEASUREMENT_COLUMN         "measurement"
#define TIME_COLUMN                "time"
#define TIME_COL                   0 /* index of "time" in every table's columns */

/* ---- configuration ----------------------------------------------------- */

enum { LAYOUT_NARROW = 0, LAYOUT_WIDE = 1 };
enum { FORMAT_BINARY = 0, FORMAT_TEXT = 1 };

struct pg_cfg {
    char *conninfo;
    int layout;
    char *schema;
    char *table;
    bool dedupe;
    bool timescaledb;
    int copy_format;
    double connect_timeout;
    double statement_timeout;
    char *application_name;
};

static const char *const layout_choices[] = {"narrow", "wide", NULL};
static const char *const format_choices[] = {"binary", "text", NULL};

static const struct gd_option pg_options[] = {
    GD_OPT_STRING("conninfo", NULL, GD_OF_REQUIRED | GD_OF_SENSITIVE,
                  offsetof(struct pg_cfg, conninfo),
                  "libpq connection string: URI (postgresql://...) or key=value pairs"),
    GD_OPT_ENUM("layout", "wide", layout_choices, 0, offsetof(struct pg_cfg, layout),
                "narrow: one row per field in one table; wide: one row per point, a table per "
                "measurement"),
    GD_OPT_STRING("schema", "public", 0, offsetof(struct pg_cfg, schema),
                  "PostgreSQL schema of the tables"),
    GD_OPT_STRING("table", NULL, 0, offsetof(struct pg_cfg, table),
                  "table name; {measurement} is replaced by the point's measurement (default: "
                  "\"{measurement}\" for wide, \"" NARROW_DEFAULT_TABLE "\" for narrow)"),
    GD_OPT_BOOL("dedupe", "false", 0, offsetof(struct pg_cfg, dedupe),
                "idempotent writes: a unique key on time and tags, rows already there are skipped"),
    GD_OPT_BOOL("timescaledb", "false", 0, offsetof(struct pg_cfg, timescaledb),
                "make the tables the plugin creates hypertables when TimescaleDB is installed"),
    GD_OPT_ENUM("copy_format", "binary", format_choices, 0, offsetof(struct pg_cfg, copy_format),
                "COPY format: binary (faster; used for a table whose column types match the "
                "values exactly, else text) or text"),
    GD_OPT_DURATION("connect_timeout", "5s", 1, 3600, 0, offsetof(struct pg_cfg, connect_timeout),
                    "longest wait for a connection (whole seconds)"),
    GD_OPT_DURATION("statement_timeout", "60s", 0, 86400, 0,
                    offsetof(struct pg_cfg, statement_timeout),
                    "server-side limit of each statement; 0: none"),
    GD_OPT_STRING("application_name", "gatherd", 0, offsetof(struct pg_cfg, application_name),
                  "shown in pg_stat_activity"),
    GD_OPT_END,
};

/* ---- state ------------------------------------------------------------- */

enum pg_type { PGT_TEXT, PGT_F64, PGT_I64, PGT_U64, PGT_BOOL };

static const char *const pg_type_sql[] = {
    [PGT_TEXT] = "text",         [PGT_F64] = "double precision", [PGT_I64] = "bigint",
    [PGT_U64] = "numeric(20,0)", [PGT_BOOL] = "boolean",
};

struct shape_key {
    const char *key; /* in the batch being written */
    uint32_t len;
    uint32_t kind;
    int32_t pos;
};

/* Type OIDs the binary format writes (pg_type.dat). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_TEXT = 25,
    OID_FLOAT8 = 701,
    OID_VARCHAR = 1043,
    OID_TIMESTAMPTZ = 1184,
    OID_NUMERIC = 1700,
    OID_JSONB = 3802,
};

/* Kinds of values a column receives in a batch: bit 0 a tag, bit t a
 * field of gd_ftype t. */
#define KIND_TAG      1u
#define KIND_FIELD(t) (1u << (t))
#define KINDS_TEXT    (KIND_TAG | KIND_FIELD(GD_STR))

/* A column of a table as the plugin knows it. */
struct pg_col {
    char *name;
    uint32_t len;
    uint8_t type;    /* enum pg_type, for creating it */
    bool on_server;  /* the table has it (as of the last read) */
    bool server_tag; /* its comment marks it a tag column */
    bool in_uniq;    /* part of the dedupe unique constraint */
    bool want_tag;   /* points use it as a tag */
    uint32_t typoid; /* its type on the server */
    uint8_t kinds;   /* KIND_* of the values of this batch */
    int32_t pos;     /* position in this batch's COPY column list, or -1 */
};

struct pg_table {
    unsigned id;
    char *key; /* the measurement, or "" when the table name does not use it */
    size_t key_len;
    char *name;          /* the table name */
    const char *invalid; /* why the name is unusable, or NULL */
    char *qname;         /* "schema"."table" */
    char stage[32];      /* pg_temp.gd_stage_<id> */
    bool loaded;         /* the columns below were read from the server */
    bool exists;
    bool has_uniq;           /* the dedupe constraint exists */
    bool stage_ok;           /* the staging table matches the table */
    bool binary;             /* this batch goes in binary COPY */
    unsigned logged_formats; /* 1 << FORMAT_* of the formats logged */
    char oid[16];
    struct pg_col *cols;
    size_t ncols, capcols;
    struct pgm colmap;
    int32_t meas_col; /* wide with a fixed table name: the "measurement" column */

    /* this batch */
    bool in_batch;
    /* The keys of the last point mapped and their positions: points of one
     * series have the same keys, compared here instead of hashed again. */
    struct shape_key *shape;
    size_t nshape, capshape, shape_nt;
    uint32_t *pts; /* point indexes */
    size_t npts, cappts;
    uint32_t *bcols; /* column indexes in COPY order */
    size_t nbcols, capbcols;
    gd_buf collist; /* "\"time\", \"device\", ..." */
};

/* Error classes, from the SQLSTATE and the connection status. */
enum pg_class {
    CLS_NONE,
    CLS_CONN,      /* connection lost or server going down: reconnect, retry */
    CLS_TRANSIENT, /* serialization failure, deadlock: retry */
    CLS_DATA,      /* class 22 / 23: some rows are bad */
    CLS_AUTH,      /* privileges, missing database, authentication */
    CLS_OTHER,     /* anything else: retry */
};

/* One value of a wide row. */
struct slot {
    const char *str; /* a tag value, or NULL */
    size_t len;
    const gd_field *field; /* a field, or NULL */
};

struct pg {
    gd_instance *inst;
    const struct pg_cfg *cfg;
    const char *tpl; /* table name template */
    bool tpl_has_meas;
    bool wide;

    PGconn *conn;
    int server_version;
    bool have_timescale;
    bool warned_timescale;
    bool was_connected;

    struct pg_table **tables;
    size_t ntables, captables;
    struct pgm tablemap;
    struct pg_table *last; /* the table of the last point mapped */

    /* the batch being written */
    const gd_batch *b;
    size_t n;
    uint8_t *rejected; /* per point */
    size_t cap_rejected;
    size_t nrejected;
    uint32_t *rej_idx; /* the rejected points' indexes, for done() */
    size_t cap_rej_idx;
    uint32_t *keyoff; /* wide: per point, its first entry in keypos */
    size_t cap_keyoff;
    int32_t *keypos; /* wide: per tag and field, its COPY position */
    size_t nkeypos, cap_keypos;
    struct pg_table **btables; /* tables of this batch, first seen first */
    size_t nbtables, cap_btables;
    struct slot *slots;
    size_t cap_slots;

    gd_buf copy; /* COPY data */
    gd_buf sql;
    gd_buf prefix; /* narrow: "time\tmeasurement\ttags\t" of a point */
    gd_buf text;   /* scratch: messages, dropped points */
    struct pgc_time_cache tc;

    /* the last error */
    int cls;
    char sqlstate[6];
    gd_buf err;
};

/* ---- small helpers ----------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * size);
    if (!q)
        return GD_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

#define GROW(arr, cap, need) grow((void **)&(arr), &(cap), (need), sizeof(*(arr)))

/* Turn runs of newlines, tabs and spaces (libpq messages have them) into
 * one space and trim the end, so a message stays on its log line. */
static void one_line(char *s)
{
    char *d = s;
    bool space = false;
    for (const char *p = s; *p; p++) {
        bool ws = *p == '\n' || *p == '\t' || *p == '\r' || *p == ' ';
        if (ws && space)
            continue;
        *d++ = ws ? ' ' : *p;
        space = ws;
    }
    while (d > s && d[-1] == ' ')
        d--;
    *d = '\0';
}

/* Append @name quoted as an identifier ("a""b"). libpq's
 * PQescapeIdentifier() also checks the encoding. */
static int put_ident(struct pg *s, gd_buf *out, const char *name, size_t len)
{
    char *q = PQescapeIdentifier(s->conn, name, len);
    if (!q)
        return GD_EINVAL;
    int rc = gd_buf_puts(out, q);
    PQfreemem(q);
    return rc;
}

/* ---- errors ------------------------------------------------------------ */

static int classify(const char *st, bool conn_bad)
{
    if (conn_bad)
        return CLS_CONN;
    if (!st || strlen(st) != 5)
        return CLS_OTHER;
    if (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
        strcmp(st, "57P03") == 0)
        return CLS_CONN;
    if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0)
        return CLS_TRANSIENT;
    /* 22P04 (bad COPY format) is the plugin's fault, not the rows': split
     * nothing, keep retrying with the message in the log. */
    if ((strncmp(st, "22", 2) == 0 && strcmp(st, "22P04") != 0) || strncmp(st, "23", 2) == 0)
        return CLS_DATA;
    if (strcmp(st, "42501") == 0 || strcmp(st, "3D000") == 0 || strncmp(st, "28", 2) == 0)
        return CLS_AUTH;
    return CLS_OTHER;
}

/* Remember the error of @res (NULL: the connection's message). */
static void set_error(struct pg *s, const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    bool bad = !s->conn || PQstatus(s->conn) == CONNECTION_BAD;
    s->cls = classify(st, bad);
    snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", st ? st : "");
    gd_buf_reset(&s->err);
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary) {
        gd_buf_puts(&s->err, primary);
        const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        const char *context = PQresultErrorField(res, PG_DIAG_CONTEXT);
        if (detail)
            gd_buf_printf(&s->err, " (%s)", detail);
        if (context)
            gd_buf_printf(&s->err, " [%s]", context);
    } else {
        const char *m = res ? PQresultErrorMessage(res) : "";
        if (!m || !m[0])
            m = s->conn ? PQerrorMessage(s->conn) : "no connection";
        gd_buf_puts(&s->err, m && m[0] ? m : "unknown error");
    }
    if (s->err.data)
        one_line(s->err.data);
}

static void set_client_error(struct pg *s, int rc, const char *what)
{
    s->cls = CLS_OTHER;
    s->sqlstate[0] = '\0';
    gd_buf_reset(&s->err);
    gd_buf_printf(&s->err, "%s: %s", what, gd_strerror(rc));
}

static const char *err_text(const struct pg *s)
{
    return s->err.data ? s->err.data : "unknown error";
}

/* Run @sql expecting @want; on failure remember the error, return -1. */
static int run(struct pg *s, const char *sql, ExecStatusType want)
{
    PGresult *res = PQexec(s->conn, sql);
    if (res && PQresultStatus(res) == want) {
        PQclear(res);
        return 0;
    }
    set_error(s, res);
    PQclear(res);
    return -1;
}

/* ---- connection -------------------------------------------------------- */

static void disconnect(struct pg *s)
{
    PQfinish(s->conn);
    s->conn = NULL;
}

static void invalidate_schema(struct pg *s)
{
    for (size_t i = 0; i < s->ntables; i++) {
        s->tables[i]->loaded = false;
        s->tables[i]->stage_ok = false;
    }
}

/* Server notices ("table exists, skipping") go to the log at debug level
 * instead of libpq's default, stderr. */
static void on_notice(void *arg, const char *message)
{
    struct pg *s = arg;
    if (!gd_log_enabled(GD_DEBUG))
        return;
    char line[MAX_MESSAGE_BYTES];
    snprintf(line, sizeof(line), "%s", message);
    one_line(line);
    gd_log(s->inst, GD_DEBUG, "postgres: server notice: %s", line);
}

/* Connect and set the session up. Logs why it failed. */
static int connect_db(struct pg *s)
{
    const struct pg_cfg *c = s->cfg;
    char timeout[32];
    snprintf(timeout, sizeof(timeout), "%.0f", ceil(c->connect_timeout));
    /* Later entries win: conninfo (expanded from dbname) overrides the
     * defaults before it; the client encoding is ours, the data is UTF-8.
     * Keepalives and tcp_user_timeout bound how long a dead peer can hold
     * the writer. */
    const char *const kw[] = {"application_name",    "connect_timeout",
                              "keepalives",          "keepalives_idle",
                              "keepalives_interval", "keepalives_count",
                              "tcp_user_timeout",    "dbname",
                              "client_encoding",     NULL};
    const char *const val[] = {c->application_name ? c->application_name : "gatherd",
                               timeout,
                               "1",
                               "30",
                               "10",
                               "3",
                               "60000",
                               c->conninfo,
                               "UTF8",
                               NULL};

    invalidate_schema(s);
    disconnect(s);
    s->conn = PQconnectdbParams(kw, val, 1);
    if (!s->conn) {
        gd_log_ratelimited(s->inst, GD_ERROR, "postgres: cannot connect: out of memory");
        return GD_ENOMEM;
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        char msg[MAX_MESSAGE_BYTES];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(s->conn));
        one_line(msg);
        /* A "FATAL" comes from the server itself: wrong database, role or
         * password, no access. Those need an operator; refused or timed-out
         * connections are the server being down and are expected to pass. */
        bool fatal =
            strstr(msg, "FATAL") && !strstr(msg, "starting up") && !strstr(msg, "shutting down");
        gd_log_ratelimited(s->inst, fatal ? GD_ERROR : GD_WARN,
                           "postgres: cannot connect: %s; retrying", msg);
        disconnect(s);
        return GD_ECONN;
    }
    PQsetNoticeProcessor(s->conn, on_notice, s);
    s->server_version = PQserverVersion(s->conn);
    if (c->statement_timeout > 0) {
        char sql[96];
        snprintf(sql, sizeof(sql), "SET statement_timeout = %.0f",
                 ceil(c->statement_timeout * MS_PER_S));
        if (run(s, sql, PGRES_COMMAND_OK) < 0) {
            gd_log_ratelimited(s->inst, GD_WARN, "postgres: setting statement_timeout: %s",
                               err_text(s));
            disconnect(s);
            return GD_ECONN;
        }
    }
    if (s->wide && c->dedupe && s->server_version < NULLS_NOT_DISTINCT_VERSION) {
        gd_log_ratelimited(s->inst, GD_ERROR,
                           "postgres: dedupe with layout \"wide\" needs PostgreSQL 15 or later "
                           "(UNIQUE NULLS NOT DISTINCT); the server is %d; retrying",
                           s->server_version);
        disconnect(s);
        return GD_ENOTSUP;
    }
    s->have_timescale = false;
    if (c->timescaledb) {
        PGresult *res = PQexec(s->conn, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'");
        s->have_timescale = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
        PQclear(res);
        if (!s->have_timescale && !s->warned_timescale) {
            gd_log(s->inst, GD_WARN,
                   "postgres: timescaledb = true but the extension is not installed in this "
                   "database (CREATE EXTENSION timescaledb); creating plain tables");
            s->warned_timescale = true;
        }
    }
    gd_log(s->inst, GD_INFO, "postgres: %s %s:%s, database %s (server %d.%d)%s",
           s->was_connected ? "reconnected to" : "connected to", PQhost(s->conn), PQport(s->conn),
           PQdb(s->conn), s->server_version / 10000, s->server_version % 10000,
           s->have_timescale ? ", TimescaleDB" : "");
    s->was_connected = true;
    return 0;
}

/* After a failed step: log by class, roll back, reconnect when the
 * connection is gone, forget the cached schema. Returns GD_RETRY. */
static int fail(struct pg *s, const char *what)
{
    char st[24] = "";
    if (s->sqlstate[0])
        snprintf(st, sizeof(st), " (SQLSTATE %s)", s->sqlstate);
    switch (s->cls) {
    case CLS_CONN:
        gd_log_ratelimited(s->inst, GD_WARN, "postgres: %s: connection lost: %s%s; reconnecting",
                           what, err_text(s), st);
        break;
    case CLS_AUTH:
        gd_log_ratelimited(s->inst, GD_ERROR,
                           "postgres: %s: %s%s; fix the role's privileges or the database; "
                           "retrying, nothing is dropped",
                           what, err_text(s), st);
        break;
    case CLS_TRANSIENT:
        gd_log_ratelimited(s->inst, GD_WARN, "postgres: %s: %s%s; retrying", what, err_text(s), st);
        break;
    default:
        gd_log_ratelimited(s->inst, GD_WARN, "postgres: %s failed: %s%s; retrying", what,
                           err_text(s), st);
    }
    invalidate_schema(s);
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK &&
        PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        PGresult *res = PQexec(s->conn, "ROLLBACK");
        PQclear(res);
    }
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK)
        connect_db(s); /* reconnect first; on failure the next write tries again */
    return GD_RETRY;
}

/* ---- tables and columns ------------------------------------------------ */

static void table_free(struct pg_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ncols; i++)
        free(t->cols[i].name);
    free(t->cols);
    pgm_free(&t->colmap);
    free(t->key);
    free(t->name);
    free(t->qname);
    free(t->pts);
    free(t->bcols);
    free(t->shape);
    gd_buf_free(&t->collist);
    free(t);
}

/* The column @name of @t, added to the cache (not to the server) when new.
 * Returns its index or GD_ENOMEM. */
static int64_t col_add(struct pg_table *t, const char *name, size_t len, uint32_t hash, int type)
{
    int64_t i = pgm_get(&t->colmap, name, len, hash);
    if (i >= 0)
        return i;
    if (GROW(t->cols, t->capcols, t->ncols + 1) < 0)
        return GD_ENOMEM;
    struct pg_col *c = &t->cols[t->ncols];
    memset(c, 0, sizeof(*c));
    c->name = malloc(len + 1);
    if (!c->name)
        return GD_ENOMEM;
    memcpy(c->name, name, len);
    c->name[len] = '\0';
    c->len = (uint32_t)len;
    c->type = (uint8_t)type;
    c->pos = -1;
    /* The map keeps pointers to the names, which never move. */
    if (pgm_put(&t->colmap, c->name, len, hash, (uint32_t)t->ncols) < 0) {
        free(c->name);
        return GD_ENOMEM;
    }
    return (int64_t)t->ncols++;
}

/* Expand the template for @meas into @out. */
static int expand_template(const char *tpl, const char *meas, size_t len, gd_buf *out)
{
    gd_buf_reset(out);
    const char *p = tpl, *hit;
    int rc = 0;
    while (rc == 0 && (hit = strstr(p, PLACEHOLDER)) != NULL) {
        rc = gd_buf_append(out, p, (size_t)(hit - p));
        if (rc == 0)
            rc = gd_buf_append(out, meas, len);
        p = hit + strlen(PLACEHOLDER);
    }
    return rc ? rc : gd_buf_puts(out, p);
}

/* The cached table for a point of measurement @meas (created when new). */
static struct pg_table *table_get(struct pg *s, const char *meas, size_t len)
{
    const char *key = s->tpl_has_meas ? meas : "";
    size_t klen = s->tpl_has_meas ? len : 0;
    struct pg_table *t = s->last;
    if (t && t->key_len == klen && memcmp(t->key, key, klen) == 0)
        return t;
    uint32_t h = pgm_hash(key, klen);
    int64_t i = pgm_get(&s->tablemap, key, klen, h);
    if (i >= 0)
        return s->last = s->tables[i];

    if (GROW(s->tables, s->captables, s->ntables + 1) < 0)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->id = (unsigned)s->ntables;
    t->meas_col = -1;
    t->key = malloc(klen + 1);
    if (!t->key || expand_template(s->tpl, meas, len, &s->text) < 0)
        goto out_free;
    memcpy(t->key, key, klen);
    t->key[klen] = '\0';
    t->key_len = klen;
    t->name = strdup(s->text.data);
    if (!t->name)
        goto out_free;
    const char *why = NULL;
    if (!pgc_valid_name(s->text.data, s->text.len, &why))
        t->invalid = why;
    snprintf(t->stage, sizeof(t->stage), "pg_temp." STAGE_PREFIX "%u", t->id);
    if (col_add(t, TIME_COLUMN, strlen(TIME_COLUMN), pgm_hash(TIME_COLUMN, 4), PGT_TEXT) !=
        TIME_COL)
        goto out_free;
    if (s->wide && !s->tpl_has_meas) {
        int64_t mc = col_add(t, MEASUREMENT_COLUMN, strlen(MEASUREMENT_COLUMN),
                             pgm_hash(MEASUREMENT_COLUMN, strlen(MEASUREMENT_COLUMN)), PGT_TEXT);
        if (mc < 0)
            goto out_free;
        t->meas_col = (int32_t)mc;
        t->cols[mc].want_tag = true;
    }
    if (pgm_put(&s->tablemap, t->key, klen, h, (uint32_t)s->ntables) < 0)
        goto out_free;
    s->tables[s->ntables++] = t;
    return s->last = t;

out_free:
    table_free(t);
    return NULL;
}

/* "schema"."table", quoted; needs the connection. */
static int table_qname(struct pg *s, struct pg_table *t)
{
    if (t->qname)
        return 0;
    gd_buf q = {0};
    int rc = put_ident(s, &q, s->cfg->schema, strlen(s->cfg->schema));
    if (rc == 0)
        rc = gd_buf_puts(&q, ".");
    if (rc == 0)
        rc = put_ident(s, &q, t->name, strlen(t->name));
    if (rc < 0) {
        gd_buf_free(&q);
        return rc;
    }
    t->qname = q.data;
    return 0;
}

/* Read the table's columns, tag marks and dedupe constraint. */
static int table_load(struct pg *s, struct pg_table *t)
{
    static const char *const sql =
        "SELECT c.oid::text, a.attname, a.atttypid::int8, "
        "coalesce(col_description(c.oid, a.attnum) = '" TAG_COMMENT "', false), "
        "coalesce(a.attnum = ANY (con.conkey), false), con.oid IS NOT NULL "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "LEFT JOIN pg_constraint con ON con.conrelid = c.oid AND con.contype = 'u' "
        "AND con.conname = '" UNIQ_PREFIX "' || c.oid::text "
        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')";
    const char *params[2] = {s->cfg->schema, t->name};
    PGresult *res = PQexecParams(s->conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_error(s, res);
        PQclear(res);
        return -1;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        t->cols[i].on_server = false;
        t->cols[i].server_tag = false;
        t->cols[i].in_uniq = false;
        t->cols[i].typoid = 0;
    }
    int rows = PQntuples(res);
    t->exists = rows > 0;
    t->has_uniq = false;
    t->oid[0] = '\0';
    for (int r = 0; r < rows; r++) {
        snprintf(t->oid, sizeof(t->oid), "%s", PQgetvalue(res, r, 0));
        if (PQgetisnull(res, r, 1))
            continue; /* a table without columns */
        const char *name = PQgetvalue(res, r, 1);
        size_t len = strlen(name);
        int64_t ci = col_add(t, name, len, pgm_hash(name, len), PGT_TEXT);
        if (ci < 0) {
            PQclear(res);
            set_client_error(s, (int)ci, "reading the table's columns");
            return -1;
        }
        struct pg_col *c = &t->cols[ci];
        c->on_server = true;
        c->typoid = (uint32_t)strtoul(PQgetvalue(res, r, 2), NULL, 10);
        c->server_tag = PQgetvalue(res, r, 3)[0] == 't';
        c->in_uniq = PQgetvalue(res, r, 4)[0] == 't';
        t->has_uniq = t->has_uniq || PQgetvalue(res, r, 5)[0] == 't';
    }
    PQclear(res);
    t->loaded = true;
    t->stage_ok = false;
    return 0;
}

/* Whether column @i belongs to the dedupe key. */
static bool uniq_wanted(const struct pg *s, const struct pg_table *t, size_t i)
{
    const struct pg_col *c = &t->cols[i];
    if (!s->wide)
        return strcmp(c->name, TIME_COLUMN) == 0 || strcmp(c->name, MEASUREMENT_COLUMN) == 0 ||
               strcmp(c->name, "tags") == 0 || strcmp(c->name, "field") == 0;
    if (!c->on_server && c->pos < 0)
        return false;
    return i == TIME_COL || c->server_tag || c->want_tag;
}

static bool uniq_ok(const struct pg *s, const struct pg_table *t)
{
    if (!t->has_uniq)
        return false;
    for (size_t i = 0; i < t->ncols; i++)
        if (t->cols[i].on_server && t->cols[i].in_uniq != uniq_wanted(s, t, i))
            return false;
    return true;
}

static bool needs_ddl(const struct pg *s, const struct pg_table *t)
{
    if (!t->exists)
        return true;
    if (!s->wide)
        return s->cfg->dedupe && !uniq_ok(s, t);
    for (size_t k = 0; k < t->nbcols; k++) {
        const struct pg_col *c = &t->cols[t->bcols[k]];
        if (!c->on_server || (s->cfg->dedupe && c->want_tag && !c->server_tag))
            return true;
    }
    return s->cfg->dedupe && !uniq_ok(s, t);
}

/* Append "COMMENT ON COLUMN t.c IS 'gatherd tag';" */
static int put_tag_comment(struct pg *s, struct pg_table *t, const struct pg_col *c)
{
    int rc = gd_buf_printf(&s->sql, "COMMENT ON COLUMN %s.", t->qname);
    if (rc == 0)
        rc = put_ident(s, &s->sql, c->name, c->len);
    return rc ? rc : gd_buf_puts(&s->sql, " IS '" TAG_COMMENT "';");
}

/* CREATE TABLE or ALTER TABLE ... ADD COLUMN, with tag comments, into s->sql. */
static int build_ddl(struct pg *s, struct pg_table *t)
{
    int rc = 0;
    gd_buf_reset(&s->sql);
    if (!s->wide)
        return gd_buf_printf(&s->sql,
                             "CREATE TABLE IF NOT EXISTS %s (time timestamptz NOT NULL, "
                             "measurement text NOT NULL, tags jsonb NOT NULL, field text NOT NULL, "
                             "value double precision, value_text text);",
                             t->qname);
    bool first = true;
    if (!t->exists)
        rc = gd_buf_printf(&s->sql, "CREATE TABLE %s (\"time\" timestamptz NOT NULL", t->qname);
    for (size_t k = 0; rc == 0 && k < t->nbcols; k++) {
        struct pg_col *c = &t->cols[t->bcols[k]];
        if (c->on_server || t->bcols[k] == TIME_COL)
            continue;
        if (t->exists)
            rc = gd_buf_printf(&s->sql, "%s%s ADD COLUMN IF NOT EXISTS ",
                               first ? "ALTER TABLE " : ",", first ? t->qname : "");
        else
            rc = gd_buf_puts(&s->sql, ", ");
        first = false;
        if (rc == 0)
            rc = put_ident(s, &s->sql, c->name, c->len);
        if (rc == 0)
            rc = gd_buf_printf(&s->sql, " %s", pg_type_sql[c->want_tag ? PGT_TEXT : c->type]);
    }
    if (rc == 0 && !t->exists)
        rc = gd_buf_puts(&s->sql, ");");
    else if (rc == 0 && !first)
        rc = gd_buf_puts(&s->sql, ";");
    /* Mark tag columns: new ones always (it documents the table), existing
     * ones when dedupe needs to know them. */
    for (size_t i = 0; rc == 0 && i < t->ncols; i++) {
        struct pg_col *c = &t->cols[i];
        if (c->want_tag && !c->server_tag && (c->pos >= 0 || c->on_server) &&
            (!c->on_server || s->cfg->dedupe))
            rc = put_tag_comment(s, t, c);
    }
    return rc;
}

/* ALTER TABLE: (re)create the dedupe constraint over the wanted columns. */
static int build_uniq(struct pg *s, struct pg_table *t)
{
    gd_buf_reset(&s->sql);
    int rc =
        gd_buf_printf(&s->sql,
                      "ALTER TABLE %s DROP CONSTRAINT IF EXISTS " UNIQ_PREFIX "%s;"
                      "ALTER TABLE %s ADD CONSTRAINT " UNIQ_PREFIX "%s UNIQUE%s (",
                      t->qname, t->oid, t->qname, t->oid,
                      s->server_version >= NULLS_NOT_DISTINCT_VERSION ? " NULLS NOT DISTINCT" : "");
    bool first = true;
    for (size_t i = 0; rc == 0 && i < t->ncols; i++) {
        if (!t->cols[i].on_server || !uniq_wanted(s, t, i))
            continue;
        if (!first)
            rc = gd_buf_puts(&s->sql, ", ");
        first = false;
        if (rc == 0)
            rc = put_ident(s, &s->sql, t->cols[i].name, t->cols[i].len);
    }
    return rc ? rc : gd_buf_puts(&s->sql, ")");
}

/* Create or extend the table in a transaction of its own, under the DDL
 * lock, deciding on a fresh read of the table. */
static int table_ddl(struct pg *s, struct pg_table *t)
{
    if (run(s, "BEGIN", PGRES_COMMAND_OK) < 0 ||
        run(s, "SELECT pg_advisory_xact_lock(" DDL_LOCK_KEY ")", PGRES_TUPLES_OK) < 0 ||
        table_load(s, t) < 0)
        return -1;
    bool created = !t->exists;
    if (needs_ddl(s, t)) {
        int rc = build_ddl(s, t);
        if (rc < 0) {
            set_client_error(s, rc, "building CREATE/ALTER TABLE");
            return -1;
        }
        if (s->sql.len && run(s, s->sql.data, PGRES_COMMAND_OK) < 0)
            return -1;
        if (created)
            gd_log(s->inst, GD_INFO, "postgres: created table %s", t->qname);
        if (created && s->have_timescale) {
            const char *params[1] = {t->qname};
            PGresult *res =
                PQexecParams(s->conn, "SELECT create_hypertable($1::regclass, 'time'::name)", 1,
                             NULL, params, NULL, NULL, 0);
            bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
            if (!ok)
                set_error(s, res);
            PQclear(res);
            if (!ok)
                return -1;
        }
        if (table_load(s, t) < 0)
            return -1;
        if (s->cfg->dedupe && !uniq_ok(s, t)) {
            int brc = build_uniq(s, t);
            if (brc < 0) {
                set_client_error(s, brc, "building the unique constraint");
                return -1;
            }
            if (run(s, s->sql.data, PGRES_COMMAND_OK) < 0)
                return -1;
            gd_log(s->inst, GD_INFO, "postgres: dedupe: unique constraint on %s (re)created",
                   t->qname);
            if (table_load(s, t) < 0)
                return -1;
        }
    }
    if (run(s, "COMMIT", PGRES_COMMAND_OK) < 0)
        return -1;
    return 0;
}

/* The temporary staging table of a dedupe write: the table's columns, no
 * constraints, emptied at every commit. */
static int stage_make(struct pg *s, struct pg_table *t)
{
    gd_buf_reset(&s->sql);
    int rc = gd_buf_printf(&s->sql,
                           "DROP TABLE IF EXISTS %s; CREATE TEMP TABLE %s ON COMMIT DELETE ROWS "
                           "AS SELECT * FROM %s WITH NO DATA",
                           t->stage, t->stage + strlen("pg_temp."), t->qname);
    if (rc < 0) {
        set_client_error(s, rc, "building the staging table");
        return -1;
    }
    if (run(s, s->sql.data, PGRES_COMMAND_OK) < 0)
        return -1;
    t->stage_ok = true;
    return 0;
}

static bool is_text_type(uint32_t oid)
{
    return oid == OID_TEXT || oid == OID_VARCHAR;
}

/* Whether the binary form of every value of this batch is the column's
 * type: then no conversion is needed and binary COPY can be used.
 * Otherwise *@col names the first column that needs text. */
static bool binary_fits(const struct pg *s, const struct pg_table *t, const char **col)
{
    *col = NULL;
    if (s->cfg->copy_format != FORMAT_BINARY)
        return false;
    if (!s->wide) {
        static const struct {
            const char *name;
            uint32_t oid;
        } narrow[] = {{TIME_COLUMN, OID_TIMESTAMPTZ},
                      {MEASUREMENT_COLUMN, OID_TEXT},
                      {"tags", OID_JSONB},
                      {"field", OID_TEXT},
                      {"value", OID_FLOAT8},
                      {"value_text", OID_TEXT}};
        for (size_t k = 0; k < sizeof(narrow) / sizeof(narrow[0]); k++) {
            int64_t ci = pgm_get(&t->colmap, narrow[k].name, strlen(narrow[k].name),
                                 pgm_hash(narrow[k].name, strlen(narrow[k].name)));
            uint32_t oid = ci < 0 ? 0 : t->cols[ci].typoid;
            if (oid != narrow[k].oid && !(narrow[k].oid == OID_TEXT && is_text_type(oid))) {
                *col = narrow[k].name;
                return false;
            }
        }
        return true;
    }
    for (size_t k = 0; k < t->nbcols; k++) {
        const struct pg_col *c = &t->cols[t->bcols[k]];
        *col = c->name;
        if (t->bcols[k] == TIME_COL) {
            if (c->typoid != OID_TIMESTAMPTZ)
                return false;
            continue;
        }
        uint32_t allowed;
        switch (c->typoid) {
        case OID_TEXT:
        case OID_VARCHAR:
            allowed = KINDS_TEXT;
            break;
        case OID_FLOAT8:
            allowed = KIND_FIELD(GD_F64);
            break;
        case OID_INT8:
            allowed = KIND_FIELD(GD_I64);
            break;
        case OID_NUMERIC:
            allowed = KIND_FIELD(GD_U64);
            break;
        case OID_BOOL:
            allowed = KIND_FIELD(GD_BOOL);
            break;
        default:
            return false;
        }
        if (c->kinds & ~allowed)
            return false;
    }
    *col = NULL;
    return true;
}

/* Say which format a table is written in, the first time it is used. */
static void log_format(struct pg *s, struct pg_table *t, const char *col)
{
    unsigned bit = 1u << (t->binary ? FORMAT_BINARY : FORMAT_TEXT);
    if (t->logged_formats & bit)
        return;
    t->logged_formats |= bit;
    if (t->binary || s->cfg->copy_format == FORMAT_TEXT)
        gd_log(s->inst, GD_INFO, "postgres: %s: %s COPY", t->qname, t->binary ? "binary" : "text");
    else
        gd_log_ratelimited(s->inst, GD_INFO,
                           "postgres: %s: text COPY (column \"%s\" has another type than the "
                           "values, the server converts them)",
                           t->qname, col ? col : "?");
}

/* Bring every table of the batch up to date with what it needs. */
static int ensure_schema(struct pg *s)
{
    for (size_t i = 0; i < s->nbtables; i++) {
        struct pg_table *t = s->btables[i];
        if (table_qname(s, t) < 0) {
            set_client_error(s, GD_ENOMEM, "quoting the table name");
            return -1;
        }
        if (!t->loaded && table_load(s, t) < 0)
            return -1;
        if (needs_ddl(s, t) && table_ddl(s, t) < 0)
            return -1;
        if (s->cfg->dedupe && !t->stage_ok && stage_make(s, t) < 0)
            return -1;
        const char *col;
        t->binary = binary_fits(s, t, &col);
        log_format(s, t, col);
    }
    return 0;
}

/* ---- mapping a batch to tables and columns ----------------------------- */

static void reject(struct pg *s, uint32_t i)
{
    if (!s->rejected[i]) {
        s->rejected[i] = 1;
        s->nrejected++;
    }
}

/* The point's line protocol for a log line (shortened), in s->text. */
static const char *point_text(struct pg *s, uint32_t i)
{
    const gd_point *p = gd_batch_point(s->b, i);
    gd_buf_reset(&s->text);
    if (gd_lp_encode_point(&s->text, p, GD_PREC_NS, NULL) < 0 || !s->text.data) {
        gd_buf_reset(&s->text);
        gd_buf_printf(&s->text, "(a point of measurement \"%s\")", gd_point_measurement(p, NULL));
    }
    if (!s->text.data)
        return "(a point: out of memory)";
    if (s->text.len > LOGGED_POINT_BYTES)
        memcpy(s->text.data + LOGGED_POINT_BYTES - 3, "...", 4);
    one_line(s->text.data);
    return s->text.data;
}

static void reject_invalid(struct pg *s, uint32_t i, const char *why, const char *name, size_t len)
{
    reject(s, i);
    gd_log_ratelimited(s->inst, GD_WARN, "postgres: dropped a point: %s (\"%.*s\"): %s", why,
                       (int)(len > 64 ? 64 : len), name, point_text(s, i));
}

/* Column position of @ci in this batch's COPY list (added when new). */
static int use_col(struct pg_table *t, int64_t ci)
{
    struct pg_col *c = &t->cols[ci];
    if (c->pos >= 0)
        return c->pos;
    if (GROW(t->bcols, t->capbcols, t->nbcols + 1) < 0)
        return GD_ENOMEM;
    t->bcols[t->nbcols] = (uint32_t)ci;
    c->pos = (int32_t)t->nbcols++;
    return c->pos;
}

static int field_type(const gd_field *f)
{
    switch (f->type) {
    case GD_F64:
        return PGT_F64;
    case GD_I64:
        return PGT_I64;
    case GD_U64:
        return PGT_U64;
    case GD_BOOL:
        return PGT_BOOL;
    default:
        return PGT_TEXT;
    }
}

/* Wide: give every tag and field of point @i a column of @t (cached, maybe
 * still to be created). Returns 1 when the point cannot be written (rejected
 * and logged), 0, or GD_ENOMEM. */
static bool same_shape(const struct pg_table *t, const gd_tag *tags, size_t nt,
                       const gd_field *fields, size_t nf)
{
    if (t->nshape != nt + nf || t->shape_nt != nt)
        return false;
    for (size_t k = 0; k < nt + nf; k++) {
        const struct shape_key *sk = &t->shape[k];
        const char *key = k < nt ? tags[k].key : fields[k - nt].key;
        uint32_t len = k < nt ? tags[k].key_len : fields[k - nt].key_len;
        uint32_t kind = k < nt ? KIND_TAG : KIND_FIELD(fields[k - nt].type);
        if (sk->len != len || sk->kind != kind || memcmp(sk->key, key, len) != 0)
            return false;
    }
    return true;
}

static int map_wide(struct pg *s, struct pg_table *t, uint32_t i, const gd_point *p)
{
    size_t nt, nf;
    const gd_tag *tags = gd_point_tags(p, &nt);
    const gd_field *fields = gd_point_fields(p, &nf);
    if (GROW(s->keypos, s->cap_keypos, s->nkeypos + nt + nf) < 0)
        return GD_ENOMEM;
    int32_t *kp = s->keypos + s->nkeypos;
    if (same_shape(t, tags, nt, fields, nf)) {
        for (size_t k = 0; k < nt + nf; k++)
            kp[k] = t->shape[k].pos;
        s->keyoff[i] = (uint32_t)s->nkeypos;
        s->nkeypos += nt + nf;
        return 0;
    }
    /* First the column indexes, so a bad point leaves no column behind in
     * this batch's list. */
    for (size_t k = 0; k < nt + nf; k++) {
        bool is_tag = k < nt;
        const char *key = is_tag ? tags[k].key : fields[k - nt].key;
        size_t len = is_tag ? tags[k].key_len : fields[k - nt].key_len;
        uint32_t h = pgm_hash(key, len);
        int64_t ci = pgm_get(&t->colmap, key, len, h);
        if (ci < 0) {
            const char *why = NULL;
            if (!pgc_valid_name(key, len, &why)) {
                reject_invalid(s, i, why, key, len);
                return 1;
            }
            ci = col_add(t, key, len, h, is_tag ? PGT_TEXT : field_type(&fields[k - nt]));
            if (ci < 0)
                return (int)ci;
        }
        if (ci == TIME_COL || ci == t->meas_col) {
            reject_invalid(s, i, "a tag or field may not use this column name", key, len);
            return 1;
        }
        for (size_t j = 0; is_tag == false && j < nt; j++)
            if (kp[j] == ci) {
                reject_invalid(s, i, "a tag and a field share the name", key, len);
                return 1;
            }
        kp[k] = (int32_t)ci;
    }
    if (use_col(t, TIME_COL) < 0 || (t->meas_col >= 0 && use_col(t, t->meas_col) < 0))
        return GD_ENOMEM;
    for (size_t k = 0; k < nt + nf; k++) {
        if (k < nt)
            t->cols[kp[k]].want_tag = true;
        t->cols[kp[k]].kinds |= k < nt ? KIND_TAG : KIND_FIELD(fields[k - nt].type);
        int pos = use_col(t, kp[k]);
        if (pos < 0)
            return pos;
        kp[k] = pos;
    }
    s->keyoff[i] = (uint32_t)s->nkeypos;
    s->nkeypos += nt + nf;
    if (GROW(t->shape, t->capshape, nt + nf) == 0) {
        for (size_t k = 0; k < nt + nf; k++) {
            t->shape[k].key = k < nt ? tags[k].key : fields[k - nt].key;
            t->shape[k].len = k < nt ? tags[k].key_len : fields[k - nt].key_len;
            t->shape[k].kind = k < nt ? KIND_TAG : KIND_FIELD(fields[k - nt].type);
            t->shape[k].pos = kp[k];
        }
        t->nshape = nt + nf;
        t->shape_nt = nt;
    }
    return 0;
}

static void batch_reset(struct pg *s)
{
    for (size_t i = 0; i < s->nbtables; i++) {
        struct pg_table *t = s->btables[i];
        for (size_t k = 0; k < t->nbcols; k++) {
            t->cols[t->bcols[k]].pos = -1;
            t->cols[t->bcols[k]].kinds = 0;
        }
        t->nbcols = 0;
        t->npts = 0;
        t->nshape = 0;
        t->in_batch = false;
    }
    s->nbtables = 0;
    s->nkeypos = 0;
    s->nrejected = 0;
    s->last = NULL;
}

/* Sort the batch's points into tables; reject those that cannot be
 * written. Returns the number of points to write, or GD_ENOMEM. */
static int64_t map_batch(struct pg *s, const gd_batch *b)
{
    batch_reset(s);
    s->b = b;
    s->n = gd_batch_len(b);
    /* Everything report() needs is allocated here: done() is always
     * reachable once SQL has run. */
    if (GROW(s->rejected, s->cap_rejected, s->n) < 0 ||
        GROW(s->rej_idx, s->cap_rej_idx, s->n) < 0 ||
        (s->wide && GROW(s->keyoff, s->cap_keyoff, s->n) < 0))
        return GD_ENOMEM;
    memset(s->rejected, 0, s->n);
    int64_t valid = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        const gd_point *p = gd_batch_point(b, i);
        size_t mlen, nf;
        const char *meas = gd_point_measurement(p, &mlen);
        gd_point_fields(p, &nf);
        if (nf == 0) {
            reject_invalid(s, i, "a point without fields", meas, mlen);
            continue;
        }
        struct pg_table *t = table_get(s, meas, mlen);
        if (!t)
            return GD_ENOMEM;
        if (t->invalid) {
            reject_invalid(s, i, t->invalid, t->name, strlen(t->name));
            continue;
        }
        if (s->wide) {
            int rc = map_wide(s, t, i, p);
            if (rc < 0)
                return rc;
            if (rc > 0)
                continue;
        }
        if (!t->in_batch) {
            if (GROW(s->btables, s->cap_btables, s->nbtables + 1) < 0)
                return GD_ENOMEM;
            s->btables[s->nbtables++] = t;
            t->in_batch = true;
        }
        if (GROW(t->pts, t->cappts, t->npts + 1) < 0)
            return GD_ENOMEM;
        t->pts[t->npts++] = i;
        valid++;
    }
    return valid;
}

/* "\"time\", \"device\", ..." of the table's COPY list. */
static int build_collist(struct pg *s, struct pg_table *t)
{
    gd_buf_reset(&t->collist);
    if (!s->wide)
        return gd_buf_puts(&t->collist, "time, measurement, tags, field, value, value_text");
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < t->nbcols; k++) {
        const struct pg_col *c = &t->cols[t->bcols[k]];
        if (k)
            rc = gd_buf_puts(&t->collist, ", ");
        if (rc == 0)
            rc = put_ident(s, &t->collist, c->name, c->len);
    }
    return rc;
}

/* ---- COPY rows --------------------------------------------------------- */

/* Narrow: one row per field, "time\tmeasurement\ttags\t" built once per
 * point. 0, GD_EINVAL (cannot be written) or GD_ENOMEM. */
static int encode_narrow(struct pg *s, const gd_point *p)
{
    size_t mlen, nt, nf;
    const char *meas = gd_point_measurement(p, &mlen);
    const gd_tag *tags = gd_point_tags(p, &nt);
    const gd_field *fields = gd_point_fields(p, &nf);
    gd_buf *pre = &s->prefix;
    gd_buf_reset(pre);
    int rc = pgc_time(pre, gd_point_time(p), &s->tc);
    if (rc == 0)
        rc = gd_buf_append(pre, "\t", 1);
    if (rc == 0)
        rc = pgc_escape(pre, meas, mlen);
    if (rc == 0)
        rc = gd_buf_append(pre, "\t", 1);
    if (rc == 0)
        rc = pgc_tags_json(pre, tags, nt);
    if (rc == 0)
        rc = gd_buf_append(pre, "\t", 1);
    for (size_t k = 0; rc == 0 && k < nf; k++) {
        const gd_field *f = &fields[k];
        size_t key_max = pgc_escaped_max(f->key_len), val_max = pgc_field_max(f);
        if (key_max == SIZE_MAX || val_max == SIZE_MAX ||
            gd_buf_reserve(&s->copy, pre->len + key_max + val_max + 8) < 0)
            return GD_ENOMEM;
        char *d = s->copy.data + s->copy.len;
        memcpy(d, pre->data, pre->len);
        d = pgc_put_escaped(d + pre->len, f->key, f->key_len);
        if (d && f->type == GD_STR) {
            memcpy(d, "\t\\N\t", 4);
            d = pgc_put_escaped(d + 4, f->v.str.ptr, f->v.str.len);
        } else if (d) {
            *d++ = '\t';
            d = pgc_put_field(d, f, true);
            memcpy(d, "\t\\N", 3);
            d += 3;
        }
        if (!d)
            return GD_EINVAL;
        *d++ = '\n';
        *d = '\0';
        s->copy.len = (size_t)(d - s->copy.data);
    }
    return rc;
}

/* Wide: one row, a value or \N per column of the COPY list, written into
 * room reserved once. */
static int encode_wide(struct pg *s, const struct pg_table *t, uint32_t i, const gd_point *p)
{
    size_t nt, nf, mlen;
    const gd_tag *tags = gd_point_tags(p, &nt);
    const gd_field *fields = gd_point_fields(p, &nf);
    const int32_t *kp = s->keypos + s->keyoff[i];
    struct slot *slots = s->slots;
    memset(slots, 0, t->nbcols * sizeof(*slots));
    size_t need = PGC_TIME_MAX + 3 * t->nbcols + 1; /* \t, \N, \n */
    for (size_t k = 0; k < nt; k++) {
        slots[kp[k]].str = tags[k].value;
        slots[kp[k]].len = tags[k].value_len;
        need += pgc_escaped_max(tags[k].value_len);
    }
    for (size_t k = 0; k < nf; k++) {
        slots[kp[nt + k]].str = NULL;
        slots[kp[nt + k]].field = &fields[k];
        need += pgc_field_max(&fields[k]);
    }
    if (t->meas_col >= 0) {
        struct slot *m = &slots[t->cols[t->meas_col].pos];
        m->str = gd_point_measurement(p, &mlen);
        m->len = mlen;
        need += pgc_escaped_max(mlen);
    }
    if (need < PGC_TIME_MAX || gd_buf_reserve(&s->copy, need) < 0) /* wrapped: too large */
        return GD_ENOMEM;
    char *d = pgc_put_time(s->copy.data + s->copy.len, gd_point_time(p), &s->tc);
    for (size_t k = 1; d && k < t->nbcols; k++) {
        const struct slot *v = &slots[k];
        *d++ = '\t';
        if (v->str) {
            d = pgc_put_escaped(d, v->str, v->len);
        } else if (v->field) {
            d = pgc_put_field(d, v->field, false);
        } else {
            *d++ = '\\';
            *d++ = 'N';
        }
    }
    if (!d)
        return GD_EINVAL;
    *d++ = '\n';
    *d = '\0';
    s->copy.len = (size_t)(d - s->copy.data);
    return 0;
}

/* Narrow, binary: one row per field; time, measurement and tags written
 * once per point into s->prefix. */
static int encode_narrow_bin(struct pg *s, const gd_point *p)
{
    size_t mlen, nt, nf;
    const char *meas = gd_point_measurement(p, &mlen);
    const gd_tag *tags = gd_point_tags(p, &nt);
    const gd_field *fields = gd_point_fields(p, &nf);
    size_t meas_max = pgb_bytes_max(mlen), tags_max = pgb_tags_jsonb_max(tags, nt);
    gd_buf *pre = &s->prefix;
    gd_buf_reset(pre);
    if (meas_max == SIZE_MAX || tags_max == SIZE_MAX)
        return GD_EINVAL;
    if (gd_buf_reserve(pre, PGB_TIME_LEN + meas_max + tags_max) < 0)
        return GD_ENOMEM;
    char *d = pgb_time(pre->data, gd_point_time(p));
    d = pgb_bytes(d, meas, mlen);
    d = pgb_tags_jsonb(d, tags, nt);
    if (!d)
        return GD_EINVAL;
    pre->len = (size_t)(d - pre->data);
    for (size_t k = 0; k < nf; k++) {
        const gd_field *f = &fields[k];
        size_t key_max = pgb_bytes_max(f->key_len), val_max = pgb_field_max(f);
        if (key_max == SIZE_MAX || val_max == SIZE_MAX)
            return GD_EINVAL;
        if (gd_buf_reserve(&s->copy,
                           PGB_ROW_LEN + pre->len + key_max + val_max + 2 * PGB_NULL_LEN) < 0)
            return GD_ENOMEM;
        d = pgb_row(s->copy.data + s->copy.len, 6);
        memcpy(d, pre->data, pre->len);
        d = pgb_bytes(d + pre->len, f->key, f->key_len);
        if (f->type == GD_STR) {
            d = pgb_null(d);
            d = pgb_bytes(d, f->v.str.ptr, f->v.str.len);
        } else {
            d = pgb_float8(d, f);
            d = pgb_null(d);
        }
        s->copy.len = (size_t)(d - s->copy.data);
    }
    return 0;
}

/* Wide, binary: the column types were checked (binary_fits()). */
static int encode_wide_bin(struct pg *s, const struct pg_table *t, uint32_t i, const gd_point *p)
{
    size_t nt, nf, mlen;
    const gd_tag *tags = gd_point_tags(p, &nt);
    const gd_field *fields = gd_point_fields(p, &nf);
    const int32_t *kp = s->keypos + s->keyoff[i];
    struct slot *slots = s->slots;
    memset(slots, 0, t->nbcols * sizeof(*slots));
    size_t need = PGB_ROW_LEN + PGB_TIME_LEN + PGB_NULL_LEN * t->nbcols;
    for (size_t k = 0; k < nt; k++) {
        slots[kp[k]].str = tags[k].value;
        slots[kp[k]].len = tags[k].value_len;
        need += tags[k].value_len;
    }
    for (size_t k = 0; k < nf; k++) {
        size_t max = pgb_field_max(&fields[k]);
        if (max == SIZE_MAX)
            return GD_EINVAL;
        slots[kp[nt + k]].str = NULL;
        slots[kp[nt + k]].field = &fields[k];
        need += max;
    }
    if (t->meas_col >= 0) {
        struct slot *m = &slots[t->cols[t->meas_col].pos];
        m->str = gd_point_measurement(p, &mlen);
        m->len = mlen;
        need += mlen;
    }
    if (need > INT32_MAX)
        return GD_EINVAL;
    if (gd_buf_reserve(&s->copy, need) < 0)
        return GD_ENOMEM;
    char *d = pgb_row(s->copy.data + s->copy.len, (unsigned)t->nbcols);
    d = pgb_time(d, gd_point_time(p));
    for (size_t k = 1; k < t->nbcols; k++) {
        const struct slot *v = &slots[k];
        if (v->str)
            d = pgb_bytes(d, v->str, v->len);
        else if (v->field)
            d = pgb_field(d, v->field);
        else
            d = pgb_null(d);
    }
    s->copy.len = (size_t)(d - s->copy.data);
    return 0;
}

static int put_copy(struct pg *s)
{
    if (!s->copy.len)
        return 0;
    int ok = PQputCopyData(s->conn, s->copy.data, (int)s->copy.len);
    gd_buf_reset(&s->copy);
    return ok == 1 ? 0 : -1;
}

/* Finish the COPY in progress (@abort_msg: abandon it) and collect its
 * result. */
static int end_copy(struct pg *s, const char *abort_msg)
{
    int rc = 0;
    if (PQputCopyEnd(s->conn, abort_msg) != 1)
        rc = -1;
    PGresult *res;
    bool first = true;
    while ((res = PQgetResult(s->conn)) != NULL) {
        if (first && PQresultStatus(res) != PGRES_COMMAND_OK) {
            set_error(s, res);
            rc = -1;
        }
        first = false;
        PQclear(res);
        if (PQstatus(s->conn) == CONNECTION_BAD)
            break;
    }
    if (rc < 0 && first)
        set_error(s, NULL);
    return rc;
}

/* COPY the points t->pts[lo..hi) (with dedupe: into the staging table, then
 * on into the table). Points that cannot be encoded are rejected here. */
static int copy_range(struct pg *s, struct pg_table *t, size_t lo, size_t hi, bool begin,
                      bool truncate_stage)
{
    bool dedupe = s->cfg->dedupe;
    gd_buf_reset(&s->sql);
    /* BEGIN rides with the COPY: one round trip less per batch. */
    if (gd_buf_printf(&s->sql, "%sCOPY %s (%s) FROM STDIN%s", begin ? "BEGIN; " : "",
                      dedupe ? t->stage : t->qname, t->collist.data,
                      t->binary ? " (FORMAT binary)" : "") < 0) {
        set_client_error(s, GD_ENOMEM, "building COPY");
        return -1;
    }
    if (run(s, s->sql.data, PGRES_COPY_IN) < 0)
        return -1;
    gd_buf_reset(&s->copy);
    if (GROW(s->slots, s->cap_slots, t->nbcols) < 0 ||
        (t->binary && gd_buf_reserve(&s->copy, PGB_HEADER_LEN) < 0)) {
        set_client_error(s, GD_ENOMEM, "encoding rows");
        end_copy(s, "out of memory");
        return -1;
    }
    if (t->binary)
        s->copy.len = (size_t)(pgb_header(s->copy.data) - s->copy.data);
    bool sent = true;
    uint64_t rows = 0;
    for (size_t k = lo; sent && k < hi; k++) {
        uint32_t i = t->pts[k];
        if (s->rejected[i])
            continue;
        size_t mark = s->copy.len;
        const gd_point *p = gd_batch_point(s->b, i);
        int rc;
        if (t->binary)
            rc = s->wide ? encode_wide_bin(s, t, i, p) : encode_narrow_bin(s, p);
        else
            rc = s->wide ? encode_wide(s, t, i, p) : encode_narrow(s, p);
        if (rc == GD_EINVAL) {
            s->copy.len = mark;
            reject(s, i);
            gd_log_ratelimited(s->inst, GD_WARN,
                               "postgres: dropped a point with a NUL byte or a value over 1 GB, "
                               "which PostgreSQL cannot store: %s",
                               point_text(s, i));
            continue;
        }
        if (rc < 0) {
            s->copy.len = mark;
            end_copy(s, "gatherd: out of memory");
            set_client_error(s, rc, "encoding rows");
            return -1;
        }
        size_t nrows = 1; /* narrow: one per field */
        if (!s->wide)
            gd_point_fields(p, &nrows);
        rows += nrows;
        if (s->copy.len >= COPY_CHUNK_BYTES)
            sent = put_copy(s) == 0;
    }
    if (sent && t->binary) {
        if (gd_buf_reserve(&s->copy, PGB_TRAILER_LEN) < 0) {
            end_copy(s, "gatherd: out of memory");
            set_client_error(s, GD_ENOMEM, "encoding rows");
            return -1;
        }
        s->copy.len = (size_t)(pgb_trailer(s->copy.data + s->copy.len) - s->copy.data);
    }
    if (sent)
        sent = put_copy(s) == 0;
    if (end_copy(s, sent ? NULL : "gatherd: sending failed") < 0)
        return -1;
    if (!sent) {
        set_error(s, NULL);
        return -1;
    }
    if (!dedupe)
        return 0;
    gd_buf_reset(&s->sql);
    if (gd_buf_printf(&s->sql, "INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT DO NOTHING",
                      t->qname, t->collist.data, t->collist.data, t->stage) < 0) {
        set_client_error(s, GD_ENOMEM, "building INSERT");
        return -1;
    }
    PGresult *res = PQexec(s->conn, s->sql.data);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        set_error(s, res);
        PQclear(res);
        return -1;
    }
    uint64_t inserted = strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (inserted < rows)
        gd_log(s->inst, GD_DEBUG,
               "postgres: dedupe: %llu of %llu rows for %s were already stored (a replay, or "
               "points with equal time in microseconds and tags)",
               (unsigned long long)(rows - inserted), (unsigned long long)rows, t->qname);
    if (!truncate_stage)
        return 0;
    gd_buf_reset(&s->sql);
    if (gd_buf_printf(&s->sql, "TRUNCATE %s", t->stage) < 0) {
        set_client_error(s, GD_ENOMEM, "building TRUNCATE");
        return -1;
    }
    return run(s, s->sql.data, PGRES_COMMAND_OK);
}

/* ---- writing ----------------------------------------------------------- */

/* The whole batch: one transaction, one COPY per table. */
static int write_all(struct pg *s)
{
    for (size_t i = 0; i < s->nbtables; i++) {
        struct pg_table *t = s->btables[i];
        if (copy_range(s, t, 0, t->npts, i == 0, false) < 0)
            return -1;
    }
    return run(s, "COMMIT", PGRES_COMMAND_OK);
}

/* Try t->pts[lo..hi) under a savepoint; on a data error split it in two,
 * down to single points, which are rejected with the server's message. */
static int bisect(struct pg *s, struct pg_table *t, size_t lo, size_t hi)
{
    size_t live = 0;
    for (size_t k = lo; k < hi; k++)
        live += !s->rejected[t->pts[k]];
    if (!live)
        return 0;
    if (run(s, "SAVEPOINT gd", PGRES_COMMAND_OK) < 0)
        return -1;
    if (copy_range(s, t, lo, hi, false, true) == 0)
        return run(s, "RELEASE SAVEPOINT gd", PGRES_COMMAND_OK);
    if (s->cls != CLS_DATA)
        return -1;
    /* Keep the message: rolling back replaces the last error. */
    if (hi - lo == 1) {
        uint32_t i = t->pts[lo];
        reject(s, i);
        gd_log_ratelimited(s->inst, GD_WARN,
                           "postgres: dropped a point the server refused: %s (SQLSTATE %s): %s",
                           err_text(s), s->sqlstate, point_text(s, i));
    }
    if (run(s, "ROLLBACK TO SAVEPOINT gd; RELEASE SAVEPOINT gd", PGRES_COMMAND_OK) < 0)
        return -1;
    if (hi - lo == 1)
        return 0;
    size_t mid = lo + (hi - lo) / 2;
    if (bisect(s, t, lo, mid) < 0)
        return -1;
    return bisect(s, t, mid, hi);
}

/* After a data error: the batch again, bisecting down to the bad points. */
static int write_bisect(struct pg *s)
{
    size_t before = s->nrejected;
    if (PQtransactionStatus(s->conn) != PQTRANS_IDLE && run(s, "ROLLBACK", PGRES_COMMAND_OK) < 0)
        return -1;
    /* Deferred constraints would fail at COMMIT, out of reach of the
     * savepoints: check them per statement instead. */
    if (run(s, "BEGIN", PGRES_COMMAND_OK) < 0 ||
        run(s, "SET CONSTRAINTS ALL IMMEDIATE", PGRES_COMMAND_OK) < 0)
        return -1;
    for (size_t i = 0; i < s->nbtables; i++) {
        struct pg_table *t = s->btables[i];
        if (bisect(s, t, 0, t->npts) < 0)
            return -1;
    }
    if (run(s, "COMMIT", PGRES_COMMAND_OK) < 0)
        return -1;
    if (s->nrejected > before)
        gd_log_ratelimited(s->inst, GD_WARN,
                           "postgres: %zu of %zu points refused by the server were dropped; the "
                           "rest of the batch is written",
                           s->nrejected - before, s->n);
    return 0;
}

/* done() with the rejected points; with GD_RETRY the core drops them and
 * retries the rest (a data error does not go away by retrying). */
static void report(struct pg *s, gd_done_fn done, void *token, int status)
{
    gd_rejects rej = {.idx = s->rej_idx, .n = 0};
    for (uint32_t i = 0; i < s->n && rej.n < s->nrejected; i++)
        if (s->rejected[i])
            s->rej_idx[rej.n++] = i;
    s->b = NULL;
    done(token, status, rej.n ? &rej : NULL);
}

static int pg_write(void *state, gd_batch *b, gd_done_fn done, void *token)
{
    struct pg *s = state;
    int64_t valid = map_batch(s, b);
    if (valid < 0)
        return (int)valid; /* done() not called: the core retries */
    int status = GD_DELIVERED;
    if (valid == 0)
        goto out_report;
    if (!s->conn && connect_db(s) < 0) {
        status = GD_RETRY;
        goto out_report;
    }
    for (size_t i = 0; i < s->nbtables; i++)
        if (build_collist(s, s->btables[i]) < 0) {
            set_client_error(s, GD_ENOMEM, "building the column list");
            status = fail(s, "writing");
            goto out_report;
        }
    if (ensure_schema(s) < 0) {
        status = fail(s, "preparing the tables");
        goto out_report;
    }
    if (write_all(s) == 0)
        goto out_report;
    if (s->cls != CLS_DATA) {
        status = fail(s, "writing");
        goto out_report;
    }
    if (write_bisect(s) < 0)
        status = fail(s, "writing after a data error");

out_report:
    report(s, done, token, status);
    return 0;
}

/* ---- lifecycle --------------------------------------------------------- */

static void pg_destroy(void *state)
{
    struct pg *s = state;
    if (!s)
        return;
    disconnect(s);
    for (size_t i = 0; i < s->ntables; i++)
        table_free(s->tables[i]);
    free(s->tables);
    pgm_free(&s->tablemap);
    free(s->rejected);
    free(s->rej_idx);
    free(s->keyoff);
    free(s->keypos);
    free(s->btables);
    free(s->slots);
    gd_buf_free(&s->copy);
    gd_buf_free(&s->sql);
    gd_buf_free(&s->prefix);
    gd_buf_free(&s->text);
    gd_buf_free(&s->err);
    free(s);
}

/* Only {measurement} may appear in braces. */
static bool template_ok(const char *tpl)
{
    for (const char *p = tpl; *p; p++) {
        if (*p == '}')
            return false;
        if (*p != '{')
            continue;
        if (strncmp(p, PLACEHOLDER, strlen(PLACEHOLDER)) != 0)
            return false;
        p += strlen(PLACEHOLDER) - 1;
    }
    return true;
}

static int pg_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct pg_cfg *cfg = cfgp;
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->conninfo, &err);
    if (!opts) {
        if (err)
            one_line(err);
        gd_log(inst, GD_ERROR, "postgres: conninfo: %s", err ? err : "out of memory");
        PQfreemem(err);
        return GD_ECONFIG;
    }
    PQconninfoFree(opts);

    const char *tpl = cfg->table                   ? cfg->table
                      : cfg->layout == LAYOUT_WIDE ? PLACEHOLDER
                                                   : NARROW_DEFAULT_TABLE;
    const char *why = NULL;
    if (!tpl[0] || !template_ok(tpl)) {
        gd_log(inst, GD_ERROR,
               "postgres: table \"%s\": only the placeholder {measurement} may appear in braces",
               tpl);
        return GD_ECONFIG;
    }
    if (!strstr(tpl, PLACEHOLDER) && !pgc_valid_name(tpl, strlen(tpl), &why)) {
        gd_log(inst, GD_ERROR, "postgres: table \"%s\": %s", tpl, why);
        return GD_ECONFIG;
    }
    if (!cfg->schema || !pgc_valid_name(cfg->schema, strlen(cfg->schema), &why)) {
        gd_log(inst, GD_ERROR, "postgres: schema \"%s\": %s", cfg->schema ? cfg->schema : "",
               why ? why : "empty");
        return GD_ECONFIG;
    }
    struct pg *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    s->tpl = tpl;
    s->tpl_has_meas = strstr(tpl, PLACEHOLDER) != NULL;
    s->wide = cfg->layout == LAYOUT_WIDE;
    /* No connection yet: the first write connects, so a server that is
     * down at start-up delays delivery instead of failing the daemon. */
    *state = s;
    return 0;
}

static const struct gd_output_ops pg_ops = {
    .struct_size = sizeof(struct gd_output_ops),
    .init = pg_init,
    .destroy = pg_destroy,
    .write = pg_write,
};

static const struct gd_plugin pg_plugin = {
    GD_PLUGIN_ABI,
    .name = "postgres",
    .version = "0.1.0",
    .kind = GD_KIND_OUTPUT,
    /* writers = N: each writer has its own state and connection; schema
     * changes are serialised by the advisory lock. */
    .flags = GD_PLUGIN_PARALLEL,
    .summary = "write points to PostgreSQL with COPY (narrow or wide tables, optional dedupe)",
    .options = pg_options,
    .config_size = sizeof(struct pg_cfg),
    .ops = &pg_ops,
};

GD_PLUGIN_ENTRY
{
    return &pg_plugin;
}
