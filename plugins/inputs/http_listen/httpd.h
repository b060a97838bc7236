/* SPDX-License-Identifier: Apache-2.0 */
/*
 * httpd.h - a small HTTP/1.1 server on the core's event loop.
 *
 * Non-blocking sockets watched with gd_fd_watch(), one sweep timer for
 * deadlines, requests parsed with http-parser. Keep-alive, chunked request
 * bodies, pipelined requests (answered in order), `Expect: 100-continue`,
 * gzip request bodies (inflated with the body limit applied to the
 * inflated size) and optional TLS (OpenSSL with memory BIOs over the
 * non-blocking socket). The request handler runs synchronously on the main
 * thread and fills a response; the server writes it.
 *
 * The server answers some requests itself, without calling the handler,
 * and reports each through on_reject(): 400 (malformed request), 408 (a
 * header or body read timeout), 413 (body over max_body_bytes, before or
 * after inflating), 415 (a Content-Encoding other than gzip or identity),
 * 431 (request line and headers over max_header_bytes) and 503 (a
 * connection beyond max_connections: answered and closed at once).
 */
#ifndef GATHERD_HTTPD_H
#define GATHERD_HTTPD_H

#include <gatherd/lineproto.h>
#include <gatherd/plugin.h>

typedef struct httpd httpd;

/** One request header (both NUL-terminated, name as the client sent it). */
struct httpd_header {
    const char *name;
    const char *value;
};

/** A complete request, valid during the handler call. */
struct httpd_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* URL path, not decoded, without the query */
    const char *query;  /* text after '?', "" when none */
    const struct httpd_header *headers;
    size_t n_headers;
    const char *body; /* the body, inflated when it was gzip; NUL-terminated */
    size_t body_len;
    const char *peer; /* "address:port" of the client */
    bool tls;         /* received over TLS */
};

/** The response the handler fills. The server adds Content-Length and
 * Connection. */
struct httpd_response {
    int status;               /* default 204 */
    const char *content_type; /* with a body; default "application/json" */
    gd_buf headers;           /* extra header lines, each ending in "\r\n" */
    gd_buf body;
    bool close; /* close the connection after this response */
};

typedef void (*httpd_handler_fn)(void *ctx, const struct httpd_request *rq,
                                 struct httpd_response *rs);
/** Called when the server itself refused a request or a connection
 * (status as above, @reason a static text such as "header timeout"). */
typedef void (*httpd_reject_fn)(void *ctx, const char *peer, int status, const char *reason);

struct httpd_config {
    const char *address; /* numeric IPv4 or IPv6 address to bind */
    int port;            /* 0: any free port (see httpd_port()) */
    size_t max_connections;
    size_t max_header_bytes;    /* request line + headers */
    size_t max_body_bytes;      /* body, and inflated body */
    uint64_t header_timeout_ms; /* first byte of a request -> end of its headers */
    uint64_t body_timeout_ms;   /* end of headers -> end of body */
    uint64_t idle_timeout_ms;   /* keep-alive: waiting for the next request */
    bool gzip;                  /* inflate Content-Encoding: gzip bodies */
    void *tls_ctx;              /* an SSL_CTX * for TLS, or NULL for plain HTTP */
    httpd_handler_fn handler;
    httpd_reject_fn on_reject; /* may be NULL */
    void *ctx;
};

/** httpd_start() - bind, listen and serve on the main loop of @inst. Main
 * thread only. Returns 0 and *@out, or a negative code (logged). */
int httpd_start(gd_instance *inst, const struct httpd_config *cfg, httpd **out);

/** httpd_stop() - close the listener and every connection, free @h.
 * Accepts NULL. Main thread only. */
void httpd_stop(httpd *h);

/** httpd_port() - the port the server listens on. */
int httpd_port(const httpd *h);

/** httpd_connections() - the number of open connections. */
size_t httpd_connections(const httpd *h);

/** httpd_header_get() - the value of header @name (case-insensitive), or NULL. */
const char *httpd_header_get(const struct httpd_request *rq, const char *name);

/** httpd_query_get() - copy the percent-decoded value of query parameter
 * @key into @out (@cap bytes). Returns false when absent or too long. */
bool httpd_query_get(const struct httpd_request *rq, const char *key, char *out, size_t cap);

/** httpd_reason() - the reason phrase of @status ("Not Found"). */
const char *httpd_reason(int status);

#endif
