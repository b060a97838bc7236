/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rd_tls.h - TLS for the redis output's connections. Two implementations,
 * chosen by meson: rd_tls_openssl.c (hiredis_ssl, hiredis >= 1.0) and
 * rd_tls_none.c (a build without hiredis_ssl: TLS is refused at init).
 */
#ifndef GATHERD_RD_TLS_H
#define GATHERD_RD_TLS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

typedef struct rd_tls rd_tls;

/* What the TLS context is made from (any may be NULL). */
struct rd_tls_opts {
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    const char *server_name;
};

/* rd_tls_new() - a TLS context for new connections. Returns 0 and sets
 * *@out, or a negative GD_E* code with the reason in @why (@why_len bytes). */
int rd_tls_new(const struct rd_tls_opts *o, rd_tls **out, char *why, size_t why_len);

/* rd_tls_attach() - start TLS on the freshly connected @c. Returns 0, or a
 * negative GD_E* code with the reason in @why. */
int rd_tls_attach(rd_tls *t, redisContext *c, char *why, size_t why_len);

/* rd_tls_free() - release the context. Accepts NULL. */
void rd_tls_free(rd_tls *t);

#endif
