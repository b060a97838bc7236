/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rd_tls_openssl.c - TLS for the redis output through hiredis_ssl (hiredis
 * >= 1.0, OpenSSL): one SSL context per writer, shared by its reconnects.
 */
#include "rd_tls.h"
#include <gatherd/common.h>
#include <hiredis/hiredis_ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct rd_tls {
    redisSSLContext *ctx;
};

static pthread_once_t openssl_once = PTHREAD_ONCE_INIT;

static void openssl_init(void)
{
    redisInitOpenSSL();
}

int rd_tls_new(const struct rd_tls_opts *o, rd_tls **out, char *why, size_t why_len)
{
    pthread_once(&openssl_once, openssl_init);
    rd_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return GD_ENOMEM;
    redisSSLContextError err = REDIS_SSL_CTX_NONE;
    t->ctx =
        redisCreateSSLContext(o->ca_file, NULL, o->cert_file, o->key_file, o->server_name, &err);
    if (!t->ctx) {
        snprintf(why, why_len, "cannot set up TLS: %s", redisSSLContextGetError(err));
        free(t);
        return GD_ECONFIG;
    }
    *out = t;
    return 0;
}

int rd_tls_attach(rd_tls *t, redisContext *c, char *why, size_t why_len)
{
    if (redisInitiateSSLWithContext(c, t->ctx) != REDIS_OK) {
        snprintf(why, why_len, "TLS handshake failed: %s", c->errstr);
        return GD_ECONN;
    }
    return 0;
}

void rd_tls_free(rd_tls *t)
{
    if (!t)
        return;
    redisFreeSSLContext(t->ctx);
    free(t);
}
