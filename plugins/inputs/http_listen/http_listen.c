/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_listen.c - receive points over HTTP: InfluxDB 1.x `/write`, InfluxDB
 * 2.x `/api/v2/write` (line protocol) and `/ingest` (JSON mapped by
 * json_map.c), with token or HS256 JWT authentication (jwt.c), per-client
 * rate limits, body and time limits, gzip bodies and optional TLS. The
 * HTTP server itself is httpd.c.
 *
 * Everything runs on the main thread: a request is parsed, checked and
 * emitted inside the server's request callback, and answered when
 * gd_emit() has returned (ack = "accepted"). While an output this input
 * feeds has a full `block` queue the listener answers 503 and emits
 * nothing, so a retrying client loses nothing.
 */
#include "httpd.h"
#include "json_map.h"
#include "jwt.h"
#include <ctype.h>
#include <errno.h>
#include <gatherd/gatherd.h>
#include <jansson.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NS_PER_S 1000000000LL
/* Rate-limit buckets kept at most; the least recently used is evicted. */
#define MAX_BUCKETS 4096
/* Longest credential read from a request. */
#define MAX_CRED 8192
/* Timestamps of lines without one while parsing minute or hour precision:
 * a whole number of seconds no real timestamp in those units can be. */
#define NO_TIME_MARK (-9000000000LL * NS_PER_S)

enum auth_mode { AUTH_NONE = 0, AUTH_TOKEN, AUTH_JWT };
static const char *const auth_choices[] = {"none", "token", "jwt", NULL};
enum rate_unit { RATE_POINTS = 0, RATE_REQUESTS };
static const char *const rate_unit_choices[] = {"points", "requests", NULL};
enum ack_level { ACK_ACCEPTED = 0, ACK_SPOOLED };
static const char *const ack_choices[] = {"accepted", "spooled", NULL};

struct hl_json_cfg {
    char *measurement;
    char *measurement_key;
    gd_strlist tag_keys;
    gd_strlist field_keys;
    char *time_key;
    int time_format;
};

struct hl_cfg {
    char *address;
    int64_t port;
    int auth;
    char *tokens_file;
    char *token_tag;
    char *jwt_secret;
    char *jwt_secret_file;
    double jwt_leeway;
    gd_kvlist jwt_claim_tags;
    int64_t max_body_bytes;
    int64_t max_header_bytes;
    int64_t max_connections;
    double header_timeout;
    double body_timeout;
    double idle_timeout;
    double rate_limit;
    double rate_burst;
    int rate_unit;
    bool partial_writes;
    int ack;
    char *db_tag;
    char *bucket_tag;
    char *org_tag;
    bool gzip;
    char *tls_cert_file;
    char *tls_key_file;
    struct hl_json_cfg json;
};

#define JO(f) offsetof(struct hl_json_cfg, f)
static const struct gd_option json_options[] = {
    GD_OPT_STRING("measurement", "json", 0, JO(measurement),
                  "measurement when measurement_key is unset or absent from an object"),
    GD_OPT_STRING("measurement_key", NULL, 0, JO(measurement_key),
                  "key whose string value is the measurement"),
    GD_OPT_STRLIST("tag_keys", 0, JO(tag_keys), "keys copied as tags"),
    GD_OPT_STRLIST("field_keys", 0, JO(field_keys),
                   "keys copied as fields (default: every numeric or boolean key)"),
    GD_OPT_STRING("time_key", NULL, 0, JO(time_key),
                  "key holding the timestamp (default: the time of arrival)"),
    GD_OPT_ENUM("time_format", "unix_ms", jm_time_format_names, 0, JO(time_format),
                "format of time_key's value"),
    GD_OPT_END,
};
#undef JO

#define CO(f) offsetof(struct hl_cfg, f)
static const struct gd_option hl_options[] = {
    GD_OPT_STRING("address", "127.0.0.1", 0, CO(address),
                  "numeric IPv4 or IPv6 address to listen on (\"0.0.0.0\": all)"),
    GD_OPT_INT("port", "8186", 0, 65535, 0, CO(port), "TCP port (0: any free port)"),
    GD_OPT_ENUM("auth", "none", auth_choices, 0, CO(auth), "authentication: none, token, jwt"),
    GD_OPT_STRING("tokens_file", NULL, 0, CO(tokens_file),
                  "auth = token: file with one token per line, optionally followed by a name"),
    GD_OPT_STRING("token_tag", NULL, 0, CO(token_tag),
                  "auth = token: tag set to the token's name on every point (overrides)"),
    GD_OPT_STRING("jwt_secret", NULL, GD_OF_SENSITIVE, CO(jwt_secret),
                  "auth = jwt: the HS256 shared secret"),
    GD_OPT_STRING("jwt_secret_file", NULL, 0, CO(jwt_secret_file),
                  "auth = jwt: file holding the secret (a trailing newline is ignored)"),
    GD_OPT_DURATION("jwt_leeway", "30s", 0, 86400, 0, CO(jwt_leeway),
                    "clock skew allowed for exp and nbf"),
    GD_OPT_KV("jwt_claim_tags", 0, CO(jwt_claim_tags),
              "claim = tag: required claims copied to tags (overriding the body's)"),
    GD_OPT_INT("max_body_bytes", "10485760", 1, 1073741824, 0, CO(max_body_bytes),
               "largest request body, also after gzip inflation (413)"),
    GD_OPT_INT("max_header_bytes", "16384", 256, 1048576, 0, CO(max_header_bytes),
               "largest request line plus headers (431)"),
    GD_OPT_INT("max_connections", "256", 1, 100000, 0, CO(max_connections),
               "open connections; more are answered 503 and closed"),
    GD_OPT_DURATION("header_timeout", "10s", 0.01, 3600, 0, CO(header_timeout),
                    "time from a request's first byte to the end of its headers (408)"),
    GD_OPT_DURATION("body_timeout", "30s", 0.01, 3600, 0, CO(body_timeout),
                    "time from the end of the headers to the end of the body (408)"),
    GD_OPT_DURATION("idle_timeout", "60s", 0.01, 86400, 0, CO(idle_timeout),
                    "keep-alive: an idle connection is closed after this long"),
    GD_OPT_DOUBLE("rate_limit", "0", 0, 1e12, 0, CO(rate_limit),
                  "per client (token name, JWT subject or address): units per second; 0: off"),
    GD_OPT_DOUBLE("rate_burst", "0", 0, 1e12, 0, CO(rate_burst),
                  "bucket size (default: one second of rate_limit, at least 1)"),
    GD_OPT_ENUM("rate_limit_unit", "points", rate_unit_choices, 0, CO(rate_unit),
                "what rate_limit counts: points or requests"),
    GD_OPT_BOOL("partial_writes", "false", 0, CO(partial_writes),
                "on a malformed line keep the valid lines before it (still answering 400)"),
    GD_OPT_ENUM("ack", "accepted", ack_choices, 0, CO(ack),
                "answer 204 once the points are in the pipeline (accepted) or on disk in every "
                "output's spool (spooled)"),
    GD_OPT_STRING("db_tag", "db", 0, CO(db_tag),
                  "/write: tag set to the db parameter (\"\": ignore db)"),
    GD_OPT_STRING("bucket_tag", "bucket", 0, CO(bucket_tag),
                  "/api/v2/write: tag set to the bucket parameter (\"\": ignore bucket)"),
    GD_OPT_STRING("org_tag", "", 0, CO(org_tag),
                  "/api/v2/write: tag set to the org parameter (\"\": ignore org)"),
    GD_OPT_BOOL("gzip", "true", 0, CO(gzip), "accept Content-Encoding: gzip bodies"),
    GD_OPT_STRING("tls_cert_file", NULL, 0, CO(tls_cert_file),
                  "PEM certificate (chain): serve HTTPS"),
    GD_OPT_STRING("tls_key_file", NULL, 0, CO(tls_key_file), "PEM private key of tls_cert_file"),
    GD_OPT_GROUP("json", json_options, 0, CO(json), "/ingest: JSON to points mapping"),
    GD_OPT_END,
};
#undef CO

struct token {
    unsigned char hash[32]; /* SHA-256 of the token */
    char *name;
};

struct bucket {
    char *key;
    double level;
    int64_t last_ns;
};

struct hl {
    gd_instance *inst;
    struct hl_cfg *cfg;
    struct token *tokens;
    size_t ntokens;
    unsigned char *secret;
    size_t secret_len;
    SSL_CTX *tls;
    struct jm_map map;
    struct bucket *buckets;
    size_t nbuckets;
    double burst;
    httpd *srv;
};

/* ---- small helpers ---------------------------------------------------- */

static void sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

/* Read a whole small file (malloc'd, NUL-terminated). */
static char *read_small_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    gd_buf b = {0};
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0 && b.len < (1u << 24))
        gd_buf_append(&b, tmp, n);
    bool bad = ferror(f);
    fclose(f);
    if (bad || !b.data) {
        gd_buf_free(&b);
        return bad ? NULL : calloc(1, 1);
    }
    *len = b.len;
    return b.data;
}

/* Count the lines of line protocol in @body that hold a point (neither
 * blank nor comments): the points a refused body carried. */
static size_t count_lp_lines(const char *body, size_t len)
{
    size_t n = 0;
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *e = eol ? eol : end;
        while (p < e && (*p == ' ' || *p == '\t' || *p == '\r'))
            p++;
        if (p < e && *p != '#')
            n++;
        p = eol ? eol + 1 : end;
    }
    return n;
}

/* The points a refused /ingest body carried: its objects (1 if unparsable). */
static size_t count_json_items(const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    size_t n = json_is_array(j) ? json_array_size(j) : 1;
    json_decref(j);
    return n;
}

/* Fill @rs with @status and an InfluxDB-style error body. */
static void set_error(struct httpd_response *rs, int status, const char *code, const char *msg)
{
    rs->status = status;
    json_t *j = json_pack("{s:s, s:s}", "code", code, "message", msg);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    gd_buf_reset(&rs->body);
    if (text) {
        gd_buf_puts(&rs->body, text);
        gd_buf_puts(&rs->body, "\n");
    }
    free(text);
    json_decref(j);
}

/* ---- authentication --------------------------------------------------- */

/* The password of a Basic `Authorization` value @b64 (@n bytes) in @out. */
static bool basic_password(const char *b64, size_t n, char *out, size_t cap)
{
    if (!n || n % 4 || n > MAX_CRED)
        return false;
    unsigned char *dec = malloc(n / 4 * 3 + 1);
    if (!dec)
        return false;
    int dl = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
    /* EVP_DecodeBlock counts the bytes the padding stands for: drop them. */
    for (size_t pad = 0; pad < 2 && dl > 0 && b64[n - 1 - pad] == '='; pad++)
        dl--;
    bool ok = false;
    if (dl > 0) {
        const unsigned char *colon = memchr(dec, ':', (size_t)dl);
        size_t pl = colon ? (size_t)dl - (size_t)(colon + 1 - dec) : 0;
        if (pl && pl < cap) {
            memcpy(out, colon + 1, pl);
            out[pl] = '\0';
            ok = strlen(out) == pl; /* no NUL inside */
        }
    }
    OPENSSL_cleanse(dec, n / 4 * 3 + 1);
    free(dec);
    return ok;
}

/* The credential of the request in @out: `Authorization: Bearer X`,
 * `Token X`, a Basic auth password, or the v1 `p` query parameter. */
static bool credential(const struct httpd_request *rq, char *out, size_t cap)
{
    const char *a = httpd_header_get(rq, "Authorization");
    if (!a)
        return httpd_query_get(rq, "p", out, cap) && *out;
    a += strspn(a, " ");
    size_t slen = strcspn(a, " ");
    const char *v = a + slen + strspn(a + slen, " ");
    size_t n = strcspn(v, " \t\r\n");
    if ((slen == 6 && strncasecmp(a, "Bearer", 6) == 0) ||
        (slen == 5 && strncasecmp(a, "Token", 5) == 0)) {
        if (!n || n >= cap)
            return false;
        memcpy(out, v, n);
        out[n] = '\0';
        return true;
    }
    if (slen == 5 && strncasecmp(a, "Basic", 5) == 0)
        return basic_password(v, n, out, cap);
    return false;
}

/* Tags the credential imposes on every point of a request. */
struct identity {
    char who[160]; /* rate-limit key and log name */
    json_t *claims;
    const char *token_name;
};

static void unauthorized(struct hl *s, struct httpd_response *rs, const char *msg)
{
    set_error(rs, 401, "unauthorized", msg);
    gd_buf_printf(&rs->headers, "WWW-Authenticate: Bearer realm=\"gatherd\"%s\r\n",
                  s->cfg->auth == AUTH_JWT ? ", error=\"invalid_token\"" : "");
}

/* 0 when the request may write; otherwise the response is filled. */
static int authenticate(struct hl *s, const struct httpd_request *rq, struct identity *id,
                        struct httpd_response *rs)
{
    if (s->cfg->auth == AUTH_NONE) {
        snprintf(id->who, sizeof(id->who), "%s", rq->peer);
        char *colon = strrchr(id->who, ':'); /* the address, without the port */
        if (colon)
            *colon = '\0';
        return 0;
    }
    char *cred = malloc(MAX_CRED);
    if (!cred)
        return GD_ENOMEM;
    int rc = GD_EPERM;
    if (!credential(rq, cred, MAX_CRED)) {
        unauthorized(s, rs, "missing credentials");
        goto out_free_cred;
    }
    if (s->cfg->auth == AUTH_TOKEN) {
        unsigned char h[32];
        sha256(cred, strlen(cred), h);
        size_t match = SIZE_MAX;
        for (size_t i = 0; i < s->ntokens; i++) /* no early exit: constant time */
            if (CRYPTO_memcmp(h, s->tokens[i].hash, 32) == 0)
                match = i;
        if (match == SIZE_MAX) {
            unauthorized(s, rs, "invalid token");
            goto out_free_cred;
        }
        id->token_name = s->tokens[match].name;
        snprintf(id->who, sizeof(id->who), "token %s", id->token_name);
        rc = 0;
        goto out_free_cred;
    }
    const char *why = NULL;
    int64_t now_s = gd_now_ns() / NS_PER_S;
    if (jwt_verify_hs256(cred, strlen(cred), s->secret, s->secret_len, now_s,
                         (int64_t)s->cfg->jwt_leeway, &id->claims, &why) < 0) {
        unauthorized(s, rs, why);
        goto out_free_cred;
    }
    for (size_t i = 0; i < s->cfg->jwt_claim_tags.n; i++) {
        char v[256];
        if (!jwt_claim_text(id->claims, s->cfg->jwt_claim_tags.v[i].key, v, sizeof(v))) {
            char msg[200];
            snprintf(msg, sizeof(msg), "token lacks the required claim \"%s\"",
                     s->cfg->jwt_claim_tags.v[i].key);
            set_error(rs, 403, "forbidden", msg);
            goto out_free_cred;
        }
    }
    char sub[128] = "";
    jwt_claim_text(id->claims, "sub", sub, sizeof(sub));
    snprintf(id->who, sizeof(id->who), "jwt sub=%s", *sub ? sub : "(none)");
    rc = 0;
out_free_cred:
    free(cred);
    return rc;
}

/* Set the tags the identity imposes on every point of @b (they replace
 * the body's: a client cannot speak for another device). */
static int apply_identity(struct hl *s, gd_batch *b, const struct identity *id)
{
    for (size_t i = 0; i < gd_batch_len(b); i++) {
        /* The batch is still under construction and ours: its points may be
         * changed through the handle. */
        gd_point *p = (gd_point *)gd_batch_point(b, i);
        if (id->token_name && s->cfg->token_tag && *s->cfg->token_tag &&
            gd_point_tag(p, s->cfg->token_tag, id->token_name) < 0)
            return GD_ENOMEM;
        for (size_t k = 0; id->claims && k < s->cfg->jwt_claim_tags.n; k++) {
            char v[256];
            if (jwt_claim_text(id->claims, s->cfg->jwt_claim_tags.v[k].key, v, sizeof(v)) &&
                gd_point_tag(p, s->cfg->jwt_claim_tags.v[k].value, v) < 0)
                return GD_ENOMEM;
        }
    }
    return 0;
}

/* ---- rate limits ------------------------------------------------------ */

static struct bucket *bucket_of(struct hl *s, const char *key, int64_t now)
{
    for (size_t i = 0; i < s->nbuckets; i++)
        if (strcmp(s->buckets[i].key, key) == 0)
            return &s->buckets[i];
    struct bucket *b;
    if (s->nbuckets < MAX_BUCKETS) {
        b = &s->buckets[s->nbuckets++];
    } else {
        b = &s->buckets[0];
        for (size_t i = 1; i < s->nbuckets; i++)
            if (s->buckets[i].last_ns < b->last_ns)
                b = &s->buckets[i];
        free(b->key);
    }
    b->key = strdup(key);
    if (!b->key) {
        *b = s->buckets[--s->nbuckets];
        return NULL;
    }
    b->level = s->burst;
    b->last_ns = now;
    return b;
}

/* Take @cost from @who's bucket: 0, or the seconds to wait (>= 1). A cost
 * above the burst passes when the bucket is full (and empties it). */
static int64_t rate_take(struct hl *s, const char *who, double cost)
{
    if (s->cfg->rate_limit <= 0)
        return 0;
    int64_t now = gd_now_ns();
    struct bucket *b = bucket_of(s, who, now);
    if (!b)
        return 0;
    b->level += (double)(now - b->last_ns) / 1e9 * s->cfg->rate_limit;
    if (b->level > s->burst)
        b->level = s->burst;
    b->last_ns = now;
    double need = cost < s->burst ? cost : s->burst;
    if (b->level + 1e-9 >= need) {
        b->level -= cost;
        return 0;
    }
    double wait = ceil((need - b->level) / s->cfg->rate_limit);
    return wait < 1 ? 1 : (int64_t)wait;
}

/* ---- requests --------------------------------------------------------- */

enum endpoint { EP_V1 = 0, EP_V2, EP_INGEST };

/* The precision of a write, from its `precision` parameter; false when
 * not understood. *@mult is 60 or 3600 for v1's minutes and hours. */
static bool precision_of(const struct httpd_request *rq, enum endpoint ep, gd_precision *prec,
                         int64_t *mult)
{
    char v[8];
    *prec = GD_PREC_NS;
    *mult = 1;
    if (!httpd_query_get(rq, "precision", v, sizeof(v)) || !*v)
        return true;
    static const struct {
        const char *name;
        gd_precision prec;
        int64_t mult;
        bool v1_only;
    } map[] = {
        {"ns", GD_PREC_NS, 1, false}, {"n", GD_PREC_NS, 1, true},   {"us", GD_PREC_US, 1, false},
        {"u", GD_PREC_US, 1, true},   {"ms", GD_PREC_MS, 1, false}, {"s", GD_PREC_S, 1, false},
        {"m", GD_PREC_S, 60, true},   {"h", GD_PREC_S, 3600, true},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(v, map[i].name) == 0 && (ep == EP_V1 || !map[i].v1_only)) {
            *prec = map[i].prec;
            *mult = map[i].mult;
            return true;
        }
    return false;
}

/* Minutes or hours: scale the parsed seconds; mark-stamped lines get now. */
static int scale_times(gd_batch *b, int64_t mult, int64_t now)
{
    for (size_t i = 0; i < gd_batch_len(b); i++) {
        gd_point *p = (gd_point *)gd_batch_point(b, i);
        int64_t t = gd_point_time(p);
        if (t == NO_TIME_MARK) {
            gd_point_set_time(p, now / NS_PER_S * NS_PER_S);
            continue;
        }
        int64_t secs = t / NS_PER_S;
        if (secs > INT64_MAX / NS_PER_S / mult || secs < INT64_MIN / NS_PER_S / mult)
            return GD_ERANGE;
        gd_point_set_time(p, secs * mult * NS_PER_S);
    }
    return 0;
}

/* Set the tag @key (when configured) from the query parameter @param. */
static int query_tag(gd_batch *b, const struct httpd_request *rq, const char *param,
                     const char *key)
{
    char v[256];
    if (!key || !*key || !httpd_query_get(rq, param, v, sizeof(v)) || !*v)
        return 0;
    for (size_t i = 0; i < gd_batch_len(b); i++) {
        gd_point *p = (gd_point *)gd_batch_point(b, i);
        /* A tag of the line itself wins over the parameter. */
        if (!gd_point_tag_get(p, key) && gd_point_tag(p, key, v) < 0)
            return GD_EINVAL;
    }
    return 0;
}

static void reject(struct hl *s, const struct httpd_request *rq, const char *reason, size_t n,
                   int status, const char *msg)
{
    gd_count_drop(s->inst, reason, n);
    gd_log_ratelimited(s->inst, GD_WARN, "%s %s from %s: %d, %zu points dropped (%s): %s",
                       rq->method, rq->path, rq->peer, status, n, reason, msg);
}

/* The points a refused body carried: lines of line protocol, or the
 * objects of a JSON document. Counted only when something is dropped. */
static size_t body_points(const struct httpd_request *rq, enum endpoint ep)
{
    if (ep == EP_INGEST)
        return rq->body_len ? count_json_items(rq->body, rq->body_len) : 0;
    return count_lp_lines(rq->body, rq->body_len);
}

static void handle_write(struct hl *s, const struct httpd_request *rq, enum endpoint ep,
                         struct httpd_response *rs)
{
    struct identity id = {0};
    char msg[320];
    gd_batch *b = NULL;

    if (authenticate(s, rq, &id, rs) < 0) {
        if (rs->status == 204)
            set_error(rs, 500, "internal error", "out of memory");
        reject(s, rq, rs->status == 403 ? "forbidden" : "unauthorized", body_points(rq, ep),
               rs->status, "credentials refused");
        goto out_free;
    }
    if (gd_backpressure(s->inst)) {
        set_error(rs, 503, "unavailable", "the pipeline is applying backpressure; retry later");
        gd_buf_puts(&rs->headers, "Retry-After: 1\r\n");
        reject(s, rq, "backpressure", body_points(rq, ep), 503, "outputs are full");
        goto out_free;
    }
    if (s->cfg->rate_unit == RATE_REQUESTS) {
        int64_t wait = rate_take(s, id.who, 1);
        if (wait) {
            set_error(rs, 429, "too many requests", "rate limit exceeded");
            gd_buf_printf(&rs->headers, "Retry-After: %lld\r\n", (long long)wait);
            reject(s, rq, "rate_limited", body_points(rq, ep), 429, id.who);
            goto out_free;
        }
    }
    gd_precision prec = GD_PREC_NS;
    int64_t mult = 1;
    if (ep != EP_INGEST && !precision_of(rq, ep, &prec, &mult)) {
        set_error(rs, 400, "invalid", "invalid precision (ns, us, ms or s; v1 also n, u, m, h)");
        reject(s, rq, "parse_error", body_points(rq, ep), 400, "invalid precision");
        goto out_free;
    }
    /* About one point per 64 bytes: a hint, the batch grows as needed. */
    b = gd_batch_new(rq->body_len / 64 + 1);
    if (!b) {
        set_error(rs, 500, "internal error", "out of memory");
        goto out_free;
    }
    int64_t now = gd_now_ns();
    size_t added = 0, total = 0;
    int rc;
    *msg = '\0';
    if (ep == EP_INGEST) {
        struct jm_error je = {0};
        rc = jm_map_json(b, rq->body, rq->body_len, &s->map, now, &added, &total, &je);
        if (rc < 0 && je.line)
            snprintf(msg, sizeof(msg), "line %zu, column %zu: %s", je.line, je.column, je.text);
        else if (rc < 0)
            snprintf(msg, sizeof(msg), "%s", je.text);
    } else {
        gd_lp_error le = {0};
        rc = gd_lp_parse(b, rq->body, rq->body_len, prec, mult > 1 ? NO_TIME_MARK : now, &added,
                         &le);
        if (rc == GD_EPARSE)
            snprintf(msg, sizeof(msg), "line %zu, column %zu: %s", le.line, le.column,
                     le.reason ? le.reason : "malformed line");
        if ((rc >= 0 || rc == GD_EPARSE) && mult > 1 && scale_times(b, mult, now) < 0) {
            rc = GD_EPARSE;
            added = 0;
            snprintf(msg, sizeof(msg), "timestamp out of range");
        }
        total = rc < 0 ? count_lp_lines(rq->body, rq->body_len) : added;
    }
    if (rc < 0 && rc != GD_EPARSE) {
        set_error(rs, 500, "internal error", gd_strerror(rc));
        reject(s, rq, "out_of_memory", total, 500, gd_strerror(rc));
        goto out_free;
    }
    if (rc == GD_EPARSE && (!s->cfg->partial_writes || added == 0)) {
        set_error(rs, 400, "invalid", msg);
        reject(s, rq, "parse_error", total, 400, msg);
        goto out_free;
    }
    int trc = 0;
    if (ep == EP_V1)
        trc = query_tag(b, rq, "db", s->cfg->db_tag);
    else if (ep == EP_V2 && (trc = query_tag(b, rq, "bucket", s->cfg->bucket_tag)) == 0)
        trc = query_tag(b, rq, "org", s->cfg->org_tag);
    if (trc < 0 || apply_identity(s, b, &id) < 0) {
        set_error(rs, 400, "invalid", "cannot set the db, bucket, org or identity tags");
        reject(s, rq, "parse_error", total, 400, "tag values refused");
        goto out_free;
    }
    if (s->cfg->rate_unit == RATE_POINTS && added) {
        int64_t wait = rate_take(s, id.who, (double)added);
        if (wait) {
            set_error(rs, 429, "too many requests", "rate limit exceeded");
            gd_buf_printf(&rs->headers, "Retry-After: %lld\r\n", (long long)wait);
            reject(s, rq, "rate_limited", total, 429, id.who);
            goto out_free;
        }
    }
    if (rc == GD_EPARSE) { /* partial write: the lines before the bad one go on */
        set_error(rs, 400, "invalid", msg);
        reject(s, rq, "parse_error", total > added ? total - added : 1, 400, msg);
    }
    if (added) {
        int erc = gd_emit(s->inst, b);
        b = NULL;
        if (erc < 0) {
            /* The core counted what it dropped; the client should retry. */
            set_error(rs, 503, "unavailable", gd_strerror(erc));
            gd_buf_puts(&rs->headers, "Retry-After: 1\r\n");
            gd_log_ratelimited(s->inst, GD_WARN, "%s %s from %s: 503: %s", rq->method, rq->path,
                               rq->peer, gd_strerror(erc));
        }
    }
out_free:
    gd_batch_unref(b);
    json_decref(id.claims);
}

static void on_request(void *ctx, const struct httpd_request *rq, struct httpd_response *rs)
{
    struct hl *s = ctx;
    bool get = strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0;
    bool post = strcmp(rq->method, "POST") == 0;
    enum endpoint ep;
    if (strcmp(rq->path, "/write") == 0)
        ep = EP_V1;
    else if (strcmp(rq->path, "/api/v2/write") == 0)
        ep = EP_V2;
    else if (strcmp(rq->path, "/ingest") == 0)
        ep = EP_INGEST;
    else if (strcmp(rq->path, "/ping") == 0 && get) {
        rs->status = 204;
        return;
    } else if (strcmp(rq->path, "/health") == 0 && get) {
        bool bp = gd_backpressure(s->inst);
        rs->status = bp ? 503 : 200;
        gd_buf_puts(&rs->body, bp ? "{\"status\":\"fail\",\"message\":\"backpressure\"}\n"
                                  : "{\"status\":\"pass\"}\n");
        return;
    } else {
        bool known = strcmp(rq->path, "/ping") == 0 || strcmp(rq->path, "/health") == 0;
        set_error(rs, known ? 405 : 404, known ? "method not allowed" : "not found",
                  known ? "use GET" : "no such endpoint");
        return;
    }
    if (!post) {
        set_error(rs, 405, "method not allowed", "use POST");
        gd_buf_puts(&rs->headers, "Allow: POST\r\n");
        return;
    }
    handle_write(s, rq, ep, rs);
}

static void on_reject(void *ctx, const char *peer, int status, const char *reason)
{
    struct hl *s = ctx;
    const char *why = status == 413   ? "too_large"
                      : status == 408 ? "timeout"
                      : status == 503 ? "too_many_connections"
                                      : "bad_request";
    /* The body was not read: one request is counted. */
    if (status)
        gd_count_drop(s->inst, why, 1);
    gd_log_ratelimited(s->inst, GD_WARN, "request from %s refused: %d %s", peer, status, reason);
}

/* ---- lifecycle -------------------------------------------------------- */

static int load_tokens(struct hl *s)
{
    size_t len = 0;
    char *text = read_small_file(s->cfg->tokens_file, &len);
    if (!text) {
        gd_log(s->inst, GD_ERROR, "tokens_file %s: %s", s->cfg->tokens_file, strerror(errno));
        return GD_ECONFIG;
    }
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tok = line + strspn(line, " \t\r");
        if (!*tok || *tok == '#')
            continue;
        size_t tl = strcspn(tok, " \t\r");
        char *name = tok + tl + strspn(tok + tl, " \t");
        name[strcspn(name, "\r")] = '\0';
        for (size_t e = strlen(name); e && isspace((unsigned char)name[e - 1]); e--)
            name[e - 1] = '\0';
        struct token *nt = realloc(s->tokens, (s->ntokens + 1) * sizeof(*nt));
        if (!nt) {
            rc = GD_ENOMEM;
            break;
        }
        s->tokens = nt;
        sha256(tok, tl, nt[s->ntokens].hash);
        char def[32];
        snprintf(def, sizeof(def), "token-%zu", s->ntokens + 1);
        nt[s->ntokens].name = strdup(*name ? name : def);
        if (!nt[s->ntokens].name) {
            rc = GD_ENOMEM;
            break;
        }
        s->ntokens++;
    }
    OPENSSL_cleanse(text, len);
    free(text);
    if (rc == 0 && s->ntokens == 0) {
        gd_log(s->inst, GD_ERROR, "tokens_file %s holds no token", s->cfg->tokens_file);
        rc = GD_ECONFIG;
    }
    return rc;
}

static int load_secret(struct hl *s)
{
    const struct hl_cfg *c = s->cfg;
    if (c->jwt_secret && c->jwt_secret_file) {
        gd_log(s->inst, GD_ERROR, "set jwt_secret or jwt_secret_file, not both");
        return GD_ECONFIG;
    }
    if (c->jwt_secret) {
        s->secret_len = strlen(c->jwt_secret);
        s->secret = (unsigned char *)strdup(c->jwt_secret);
    } else if (c->jwt_secret_file) {
        char *text = read_small_file(c->jwt_secret_file, &s->secret_len);
        if (!text) {
            gd_log(s->inst, GD_ERROR, "jwt_secret_file %s: %s", c->jwt_secret_file,
                   strerror(errno));
            return GD_ECONFIG;
        }
        while (s->secret_len &&
               (text[s->secret_len - 1] == '\n' || text[s->secret_len - 1] == '\r'))
            text[--s->secret_len] = '\0';
        s->secret = (unsigned char *)text;
    } else {
        gd_log(s->inst, GD_ERROR, "auth = \"jwt\" needs jwt_secret or jwt_secret_file");
        return GD_ECONFIG;
    }
    if (!s->secret)
        return GD_ENOMEM;
    if (s->secret_len < 16) {
        gd_log(s->inst, GD_ERROR,
               "the JWT secret is %zu bytes; use at least 16 (32 random "
               "bytes recommended)",
               s->secret_len);
        return GD_ECONFIG;
    }
    return 0;
}

static int load_tls(struct hl *s)
{
    const struct hl_cfg *c = s->cfg;
    if (!c->tls_cert_file && !c->tls_key_file)
        return 0;
    if (!c->tls_cert_file || !c->tls_key_file) {
        gd_log(s->inst, GD_ERROR, "TLS needs both tls_cert_file and tls_key_file");
        return GD_ECONFIG;
    }
    s->tls = SSL_CTX_new(TLS_server_method());
    if (!s->tls)
        return GD_ENOMEM;
    SSL_CTX_set_min_proto_version(s->tls, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(s->tls, c->tls_cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(s->tls, c->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s->tls) != 1) {
        char err[256];
        ERR_error_string_n(ERR_get_error(), err, sizeof(err));
        gd_log(s->inst, GD_ERROR, "TLS: cannot use %s and %s: %s", c->tls_cert_file,
               c->tls_key_file, err);
        ERR_clear_error();
        return GD_ECONFIG;
    }
    return 0;
}

static void hl_destroy(void *state)
{
    struct hl *s = state;
    if (!s)
        return;
    httpd_stop(s->srv);
    for (size_t i = 0; i < s->ntokens; i++)
        free(s->tokens[i].name);
    free(s->tokens);
    if (s->secret) {
        OPENSSL_cleanse(s->secret, s->secret_len);
        free(s->secret);
    }
    for (size_t i = 0; i < s->nbuckets; i++)
        free(s->buckets[i].key);
    free(s->buckets);
    SSL_CTX_free(s->tls);
    free(s);
}

static int hl_init(gd_instance *inst, void *cfgp, void **state)
{
    struct hl_cfg *c = cfgp;
    struct hl *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = c;
    int rc = 0;
    if (c->auth == AUTH_TOKEN && !c->tokens_file) {
        gd_log(inst, GD_ERROR, "auth = \"token\" needs tokens_file");
        rc = GD_ECONFIG;
    } else if (c->auth == AUTH_TOKEN) {
        rc = load_tokens(s);
    } else if (c->auth == AUTH_JWT) {
        rc = load_secret(s);
    }
    if (rc == 0)
        rc = load_tls(s);
    if (rc == 0 && c->rate_limit > 0) {
        s->burst = c->rate_burst > 0 ? c->rate_burst : fmax(c->rate_limit, 1);
        s->buckets = calloc(MAX_BUCKETS, sizeof(*s->buckets));
        if (!s->buckets)
            rc = GD_ENOMEM;
    }
    if (rc < 0) {
        hl_destroy(s);
        return rc;
    }
    s->map = (struct jm_map){
        .measurement = c->json.measurement,
        .measurement_key = c->json.measurement_key,
        .tag_keys = c->json.tag_keys.v,
        .n_tag_keys = c->json.tag_keys.n,
        .field_keys = c->json.field_keys.v,
        .n_field_keys = c->json.field_keys.n,
        .time_key = c->json.time_key,
        .time_format = c->json.time_format,
    };
    *state = s;
    return 0;
}

static int hl_start(void *state)
{
    struct hl *s = state;
    const struct hl_cfg *c = s->cfg;
    /* "spooled" promises the node that its points are on disk when it gets
     * 204: only true when every output spools each batch before the push
     * returns. */
    if (c->ack == ACK_SPOOLED && !gd_emit_durable(s->inst)) {
        gd_log(s->inst, GD_ERROR,
               "ack = spooled needs every output to spool durably: queue = { overflow = "
               "\"spool\"; spool_always = true; spool_sync = \"batch\"; }");
        return GD_ECONFIG;
    }
    struct httpd_config hc = {
        .address = c->address,
        .port = (int)c->port,
        .max_connections = (size_t)c->max_connections,
        .max_header_bytes = (size_t)c->max_header_bytes,
        .max_body_bytes = (size_t)c->max_body_bytes,
        .header_timeout_ms = (uint64_t)(c->header_timeout * 1000),
        .body_timeout_ms = (uint64_t)(c->body_timeout * 1000),
        .idle_timeout_ms = (uint64_t)(c->idle_timeout * 1000),
        .gzip = c->gzip,
        .tls_ctx = s->tls,
        .handler = on_request,
        .on_reject = on_reject,
        .ctx = s,
    };
    int rc = httpd_start(s->inst, &hc, &s->srv);
    if (rc < 0)
        return rc;
    gd_log(s->inst, GD_INFO, "listening on %s port %d (%s, auth %s)", c->address,
           httpd_port(s->srv), s->tls ? "https" : "http", auth_choices[c->auth]);
    return 0;
}

static void hl_stop(void *state)
{
    struct hl *s = state;
    httpd_stop(s->srv);
    s->srv = NULL;
}

/* ---- descriptor -------------------------------------------------------- */

static const struct gd_input_ops hl_ops = {
    .struct_size = sizeof(struct gd_input_ops),
    .init = hl_init,
    .destroy = hl_destroy,
    .start = hl_start,
    .stop = hl_stop,
};

static const struct gd_plugin hl_plugin = {
    GD_PLUGIN_ABI,
    .name = "http_listen",
    .version = "0.1.0",
    .kind = GD_KIND_INPUT,
    .summary = "receive points over HTTP: InfluxDB v1/v2 write APIs and mapped JSON",
    .options = hl_options,
    .config_size = sizeof(struct hl_cfg),
    .ops = &hl_ops,
};

GD_PLUGIN_ENTRY
{
    return &hl_plugin;
}
