/* SPDX-License-Identifier: Apache-2.0 */
/*
 * httpd.c - a small HTTP/1.1 server on the core's event loop (see httpd.h).
 *
 * Every connection is a non-blocking socket with one fd watch. Bytes read
 * (after TLS, when configured) go straight into http-parser; a request is
 * handled as soon as its message is complete, inside the parse, so
 * pipelined requests are answered in the order they came. Responses are
 * appended to the connection's output buffer and written as far as the
 * socket takes them; the rest waits for writability, and reading stops
 * while more than OUT_HIGH_WATER bytes are waiting. One periodic timer
 * enforces the header, body and idle deadlines.
 */
#include "httpd.h"
#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define READ_CHUNK      65536
#define MAX_HEADERS     64
#define OUT_HIGH_WATER  (1u << 20)
#define SWEEP_MS        100
#define ACCEPTS_PER_RUN 64

enum phase { PH_IDLE = 0, PH_HEADERS, PH_BODY };

struct hdr_off {
    size_t name, value;
};

struct conn {
    struct httpd *srv;
    struct conn *prev, *next;
    int fd;
    gd_watch *w;
    int events;
    char peer[64];
    http_parser p;
    enum phase phase;
    int64_t deadline_ms;
    gd_buf url;
    gd_buf hbuf; /* "name\0value\0" ... */
    struct hdr_off hdr[MAX_HEADERS];
    size_t nh;
    bool in_value;
    bool too_many_headers;
    gd_buf body;
    gd_buf out;
    size_t out_off;
    bool close_after; /* close once out is written */
    bool answered;    /* a response ending the connection was queued in a callback */
    bool closed;
    SSL *ssl;
};

struct httpd {
    gd_instance *inst;
    struct httpd_config cfg;
    int lfd;
    int port;
    gd_watch *lw;
    gd_timer *sweep;
    struct conn *conns;
    size_t nconns;
    http_parser_settings settings;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *httpd_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* ---- connection I/O ---------------------------------------------------- */

static void conn_io(void *ctx, int fd, int revents);

static void conn_free(void *ctx)
{
    struct conn *c = ctx;
    gd_buf_free(&c->url);
    gd_buf_free(&c->hbuf);
    gd_buf_free(&c->body);
    gd_buf_free(&c->out);
    if (c->ssl)
        SSL_free(c->ssl);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    struct httpd *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    gd_fd_unwatch(c->w); /* conn_free runs once the watch is closed */
    close(c->fd);
}

static void conn_set_events(struct conn *c, int events)
{
    if (c->closed || events == c->events)
        return;
    c->events = events;
    gd_fd_watch_update(c->w, events);
}

/* Move what TLS produced into the output buffer. */
static int tls_pump(struct conn *c)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    char buf[16384];
    int n;
    while ((n = BIO_read(wbio, buf, sizeof(buf))) > 0)
        if (gd_buf_append(&c->out, buf, (size_t)n) < 0)
            return GD_ENOMEM;
    return 0;
}

/* Write as much of the output as the socket takes; close when done and
 * close_after is set. */
static void conn_flush(struct conn *c)
{
    while (!c->closed && c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_close(c);
        return;
    }
    if (c->closed)
        return;
    if (c->out_off == c->out.len) {
        gd_buf_reset(&c->out);
        c->out_off = 0;
        if (c->close_after) {
            shutdown(c->fd, SHUT_WR);
            conn_close(c);
            return;
        }
        conn_set_events(c, GD_READABLE);
    } else {
        int ev = GD_WRITABLE;
        if (c->out.len - c->out_off < OUT_HIGH_WATER && !c->close_after)
            ev |= GD_READABLE;
        conn_set_events(c, ev);
    }
}

/* Queue @len bytes of plaintext for the client. */
static int conn_send(struct conn *c, const char *data, size_t len)
{
    if (!c->ssl)
        return gd_buf_append(&c->out, data, len);
    while (len) {
        int n = SSL_write(c->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n <= 0)
            return GD_EIO;
        data += n;
        len -= (size_t)n;
    }
    return tls_pump(c);
}

/* Queue a complete response. */
static void conn_respond(struct conn *c, struct httpd_response *rs, bool head)
{
    gd_buf r = {0};
    gd_buf_printf(&r, "HTTP/1.1 %d %s\r\n", rs->status, httpd_reason(rs->status));
    if (rs->body.len)
        gd_buf_printf(&r, "Content-Type: %s\r\n",
                      rs->content_type ? rs->content_type : "application/json");
    if (rs->status != 204 && rs->status >= 200)
        gd_buf_printf(&r, "Content-Length: %zu\r\n", rs->body.len);
    if (rs->headers.len)
        gd_buf_append(&r, rs->headers.data, rs->headers.len);
    if (rs->close)
        gd_buf_puts(&r, "Connection: close\r\n");
    gd_buf_puts(&r, "\r\n");
    if (rs->body.len && !head && rs->status != 204)
        gd_buf_append(&r, rs->body.data, rs->body.len);
    if (!r.data || conn_send(c, r.data, r.len) < 0) {
        /* Cannot answer (out of memory, TLS failure): drop the connection. */
        rs->close = true;
        c->out_off = c->out.len;
    }
    gd_buf_free(&r);
    if (rs->close)
        c->close_after = true;
}

/* Queue an error answered by the server itself, and end the connection. */
static void conn_fail(struct conn *c, int status, const char *reason)
{
    struct httpd_response rs = {.status = status, .close = true};
    gd_buf_printf(&rs.body, "{\"code\":\"%s\",\"message\":\"%s\"}\n",
                  status == 413 ? "request too large" : "invalid", reason);
    conn_respond(c, &rs, false);
    gd_buf_free(&rs.body);
    c->answered = true;
    if (c->srv->cfg.on_reject)
        c->srv->cfg.on_reject(c->srv->cfg.ctx, c->peer, status, reason);
}

/* ---- request assembly ------------------------------------------------- */

static void req_reset(struct conn *c)
{
    gd_buf_reset(&c->url);
    gd_buf_reset(&c->hbuf);
    gd_buf_reset(&c->body);
    c->nh = 0;
    c->in_value = false;
    c->too_many_headers = false;
}

static size_t header_bytes(const struct conn *c)
{
    return c->url.len + c->hbuf.len;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    req_reset(c);
    c->phase = PH_HEADERS;
    c->deadline_ms = mono_ms() + (int64_t)c->srv->cfg.header_timeout_ms;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (header_bytes(c) + len > c->srv->cfg.max_header_bytes) {
        conn_fail(c, 431, "request line and headers too large");
        return -1;
    }
    return gd_buf_append(&c->url, at, len) < 0 ? -1 : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (header_bytes(c) + len + 2 > c->srv->cfg.max_header_bytes) {
        conn_fail(c, 431, "request line and headers too large");
        return -1;
    }
    if (c->in_value || c->nh == 0) {
        if (c->nh && gd_buf_append(&c->hbuf, "", 1) < 0) /* end the value */
            return -1;
        if (c->nh == MAX_HEADERS) {
            conn_fail(c, 431, "too many header fields");
            return -1;
        }
        c->hdr[c->nh++].name = c->hbuf.len;
        c->in_value = false;
    }
    return gd_buf_append(&c->hbuf, at, len) < 0 ? -1 : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (header_bytes(c) + len + 2 > c->srv->cfg.max_header_bytes) {
        conn_fail(c, 431, "request line and headers too large");
        return -1;
    }
    if (!c->in_value) {
        if (gd_buf_append(&c->hbuf, "", 1) < 0) /* end the name */
            return -1;
        c->hdr[c->nh - 1].value = c->hbuf.len;
        c->in_value = true;
    }
    return gd_buf_append(&c->hbuf, at, len) < 0 ? -1 : 0;
}

/* The value of header @name of the request being read, or NULL. */
static const char *conn_header(const struct conn *c, const char *name)
{
    for (size_t i = 0; i < c->nh; i++)
        if (strcasecmp(c->hbuf.data + c->hdr[i].name, name) == 0)
            return c->hbuf.data + c->hdr[i].value;
    return NULL;
}

static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    if (c->nh) {
        if (!c->in_value) { /* a name without value cannot happen; be safe */
            gd_buf_append(&c->hbuf, "", 1);
            c->hdr[c->nh - 1].value = c->hbuf.len;
        }
        if (gd_buf_append(&c->hbuf, "", 1) < 0)
            return -1;
    }
    if (gd_buf_append(&c->url, "", 0) < 0)
        return -1;
    c->phase = PH_BODY;
    c->deadline_ms = mono_ms() + (int64_t)c->srv->cfg.body_timeout_ms;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->srv->cfg.max_body_bytes) {
        conn_fail(c, 413, "request body too large");
        return -1;
    }
    const char *expect = conn_header(c, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (conn_send(c, cont, sizeof(cont) - 1) < 0)
            return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->body.len + len > c->srv->cfg.max_body_bytes) {
        conn_fail(c, 413, "request body too large");
        return -1;
    }
    return gd_buf_append(&c->body, at, len) < 0 ? -1 : 0;
}

/* Inflate a gzip body into @out, at most @limit bytes. 0, GD_ERANGE (too
 * large) or GD_EPARSE (not gzip data). */
static int inflate_body(const gd_buf *in, size_t limit, gd_buf *out)
{
    z_stream z = {0};
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return GD_ENOMEM;
    z.next_in = (Bytef *)in->data;
    z.avail_in = (uInt)in->len;
    int rc = 0, zr = Z_OK;
    while (zr != Z_STREAM_END) {
        if (gd_buf_reserve(out, 65536) < 0) {
            rc = GD_ENOMEM;
            break;
        }
        size_t room = out->cap - out->len - 1;
        z.next_out = (Bytef *)out->data + out->len;
        z.avail_out = (uInt)room;
        zr = inflate(&z, Z_NO_FLUSH);
        out->len += room - z.avail_out;
        out->data[out->len] = '\0';
        if (out->len > limit) {
            rc = GD_ERANGE;
            break;
        }
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK || (z.avail_in == 0 && z.avail_out != 0)) {
            rc = GD_EPARSE;
            break;
        }
    }
    inflateEnd(&z);
    return rc;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    struct httpd *s = c->srv;
    struct httpd_header hv[MAX_HEADERS];
    for (size_t i = 0; i < c->nh; i++)
        hv[i] =
            (struct httpd_header){c->hbuf.data + c->hdr[i].name, c->hbuf.data + c->hdr[i].value};
    if (gd_buf_append(&c->body, "", 0) < 0)
        return -1;
    char *url = c->url.data ? c->url.data : (char *)"/";
    char *q = strchr(url, '?');
    if (q)
        *q++ = '\0';
    struct httpd_request rq = {
        .method = http_method_str((enum http_method)p->method),
        .path = url,
        .query = q ? q : "",
        .headers = hv,
        .n_headers = c->nh,
        .body = c->body.data ? c->body.data : "",
        .body_len = c->body.len,
        .peer = c->peer,
        .tls = c->ssl != NULL,
    };
    const char *enc = conn_header(c, "Content-Encoding");
    gd_buf inflated = {0};
    bool keep = http_should_keep_alive(p);
    c->phase = PH_IDLE;
    c->deadline_ms = mono_ms() + (int64_t)s->cfg.idle_timeout_ms;
    if (enc && *enc && strcasecmp(enc, "identity") != 0) {
        bool gz = strcasecmp(enc, "gzip") == 0 || strcasecmp(enc, "x-gzip") == 0;
        if (!gz || !s->cfg.gzip) {
            conn_fail(c, 415, "unsupported Content-Encoding");
            return -1;
        }
        int rc = inflate_body(&c->body, s->cfg.max_body_bytes, &inflated);
        if (rc < 0) {
            gd_buf_free(&inflated);
            conn_fail(c, rc == GD_ERANGE ? 413 : 400,
                      rc == GD_ERANGE ? "decompressed request body too large"
                                      : "request body is not valid gzip data");
            return -1;
        }
        rq.body = inflated.data ? inflated.data : "";
        rq.body_len = inflated.len;
    }
    /* Protocol upgrades are not offered: answer, then close. */
    struct httpd_response rs = {.status = 204, .close = !keep || p->upgrade};
    s->cfg.handler(s->cfg.ctx, &rq, &rs);
    conn_respond(c, &rs, p->method == HTTP_HEAD);
    gd_buf_free(&rs.headers);
    gd_buf_free(&rs.body);
    gd_buf_free(&inflated);
    req_reset(c);
    if (c->close_after) {
        c->answered = true;
        return -1; /* stop parsing: anything pipelined after it is ignored */
    }
    return 0;
}

/* Feed plaintext to the parser. */
static void conn_parse(struct conn *c, const char *data, size_t len)
{
    if (c->close_after)
        return; /* ending: input after the last response is ignored */
    size_t n = http_parser_execute(&c->p, &c->srv->settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
    if (e == HPE_OK && n == len)
        return;
    if (c->answered)
        return;
    /* A request the parser refused (or a callback failed: out of memory). */
    conn_fail(c, 400, e == HPE_OK ? "malformed request" : http_errno_description(e));
}

static void conn_read(struct conn *c)
{
    char buf[READ_CHUNK];
    for (int round = 0; round < 4 && !c->closed && !c->close_after; round++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n == 0) { /* EOF: write what is pending, then close */
            c->close_after = true;
            return;
        }
        if (n < 0) {
            conn_close(c);
            return;
        }
        if (!c->ssl) {
            conn_parse(c, buf, (size_t)n);
            continue;
        }
        BIO_write(SSL_get_rbio(c->ssl), buf, (int)n);
        for (;;) {
            char plain[16384];
            int k = SSL_read(c->ssl, plain, sizeof(plain));
            if (k > 0) {
                conn_parse(c, plain, (size_t)k);
                if (c->close_after)
                    break;
                continue;
            }
            int err = SSL_get_error(c->ssl, k);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                break;
            /* Handshake failure, protocol error or close_notify. */
            tls_pump(c);
            c->close_after = true;
            ERR_clear_error();
            if (err != SSL_ERROR_ZERO_RETURN && c->srv->cfg.on_reject)
                c->srv->cfg.on_reject(c->srv->cfg.ctx, c->peer, 0, "TLS handshake or record error");
            break;
        }
        tls_pump(c);
        if (n < (ssize_t)sizeof(buf))
            break;
    }
}

static void conn_io(void *ctx, int fd, int revents)
{
    (void)fd;
    struct conn *c = ctx;
    if (c->closed)
        return;
    if (revents & GD_READABLE)
        conn_read(c);
    if (!c->closed)
        conn_flush(c);
}

/* ---- listener ---------------------------------------------------------- */

static void format_peer(const struct sockaddr_storage *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%d", host, port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%d", host, port);
    } else {
        snprintf(out, cap, "unknown");
    }
}

static void refuse(struct httpd *s, int fd, const char *peer)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               "Retry-After: 1\r\nConnection: close\r\n\r\n";
    ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
    close(fd);
    if (s->cfg.on_reject)
        s->cfg.on_reject(s->cfg.ctx, peer, 503, "too many connections");
}

static void on_accept(void *ctx, int lfd, int revents)
{
    (void)revents;
    struct httpd *s = ctx;
    for (int i = 0; i < ACCEPTS_PER_RUN; i++) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                gd_log_ratelimited(s->inst, GD_WARN, "accept: %s", strerror(errno));
            return;
        }
        char peer[64];
        format_peer(&sa, peer, sizeof(peer));
        if (s->nconns >= s->cfg.max_connections) {
            refuse(s, fd, peer);
            continue;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->srv = s;
        c->fd = fd;
        memcpy(c->peer, peer, sizeof(peer));
        http_parser_init(&c->p, HTTP_REQUEST);
        c->p.data = c;
        c->phase = PH_IDLE;
        c->deadline_ms = mono_ms() + (int64_t)s->cfg.idle_timeout_ms;
        if (s->cfg.tls_ctx) {
            c->ssl = SSL_new(s->cfg.tls_ctx);
            BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
            if (!c->ssl || !rb || !wb) {
                BIO_free(rb);
                BIO_free(wb);
                conn_free(c);
                close(fd);
                continue;
            }
            SSL_set_bio(c->ssl, rb, wb);
            SSL_set_accept_state(c->ssl);
        }
        c->events = GD_READABLE;
        if (gd_fd_watch(s->inst, fd, GD_READABLE, conn_io, c, conn_free, &c->w) < 0) {
            conn_free(c);
            close(fd);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
    }
}

static void on_sweep(void *ctx)
{
    struct httpd *s = ctx;
    int64_t now = mono_ms();
    struct conn *next;
    for (struct conn *c = s->conns; c; c = next) {
        next = c->next;
        if (now < c->deadline_ms)
            continue;
        if (c->close_after || c->phase == PH_IDLE) {
            conn_close(c); /* idle, or a client that does not read its answer */
            continue;
        }
        conn_fail(c, 408, c->phase == PH_HEADERS ? "header read timeout" : "body read timeout");
        c->deadline_ms = now + 1000; /* a last second to take the 408 */
        conn_flush(c);
    }
}

int httpd_start(gd_instance *inst, const struct httpd_config *cfg, httpd **out)
{
    struct httpd *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = *cfg;
    s->lfd = -1;
    s->settings = (http_parser_settings){
        .on_message_begin = on_message_begin,
        .on_url = on_url,
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
    };
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg->address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->port);
        sl = sizeof(*a4);
    } else if (inet_pton(AF_INET6, cfg->address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->port);
        sl = sizeof(*a6);
    } else {
        gd_log(inst, GD_ERROR, "address \"%s\" is not a numeric IPv4 or IPv6 address",
               cfg->address);
        free(s);
        return GD_ECONFIG;
    }
    int rc = GD_EIO;
    s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->lfd < 0)
        goto out_free;
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(s->lfd, 511) < 0) {
        gd_log(inst, GD_ERROR, "cannot listen on %s port %d: %s", cfg->address, cfg->port,
               strerror(errno));
        goto out_close;
    }
    sl = sizeof(ss);
    getsockname(s->lfd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
    rc = gd_fd_watch(inst, s->lfd, GD_READABLE, on_accept, s, NULL, &s->lw);
    if (rc < 0)
        goto out_close;
    rc = gd_timer_start(inst, SWEEP_MS, SWEEP_MS, on_sweep, s, NULL, &s->sweep);
    if (rc < 0)
        goto out_unwatch;
    *out = s;
    return 0;

out_unwatch:
    gd_fd_unwatch(s->lw);
out_close:
    close(s->lfd);
out_free:
    if (rc == GD_EIO)
        gd_log(inst, GD_ERROR, "cannot listen on %s port %d: %s", cfg->address, cfg->port,
               strerror(errno));
    free(s);
    return rc;
}

void httpd_stop(httpd *s)
{
    if (!s)
        return;
    gd_timer_stop(s->sweep);
    gd_fd_unwatch(s->lw);
    close(s->lfd);
    while (s->conns)
        conn_close(s->conns);
    free(s);
}

int httpd_port(const httpd *s)
{
    return s->port;
}

size_t httpd_connections(const httpd *s)
{
    return s->nconns;
}

/* ---- request helpers -------------------------------------------------- */

const char *httpd_header_get(const struct httpd_request *rq, const char *name)
{
    for (size_t i = 0; i < rq->n_headers; i++)
        if (strcasecmp(rq->headers[i].name, name) == 0)
            return rq->headers[i].value;
    return NULL;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

bool httpd_query_get(const struct httpd_request *rq, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = rq->query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (plen >= klen && strncmp(p, key, klen) == 0 && (plen == klen || p[klen] == '=')) {
            const char *v = plen == klen ? p + plen : p + klen + 1;
            size_t o = 0;
            for (const char *q = v; q < p + plen; q++) {
                char ch = *q;
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%' && q + 2 < p + plen && hexval(q[1]) >= 0 &&
                           hexval(q[2]) >= 0) {
                    ch = (char)(hexval(q[1]) * 16 + hexval(q[2]));
                    q += 2;
                }
                if (o + 1 >= cap)
                    return false;
                out[o++] = ch;
            }
            out[o] = '\0';
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}
