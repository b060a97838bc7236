/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rd_tls_none.c - the redis output built without hiredis_ssl (hiredis < 1.0,
 * e.g. Debian 12's 0.14): `tls = true` is refused with the reason.
 */
#include "rd_tls.h"
#include <gatherd/common.h>
#include <stdio.h>

int rd_tls_new(const struct rd_tls_opts *o, rd_tls **out, char *why, size_t why_len)
{
    (void)o;
    *out = NULL;
    snprintf(why, why_len,
             "this build of the redis plugin has no TLS support: it was built without "
             "hiredis_ssl (hiredis >= 1.0 with SSL); rebuild against it, or use a TLS tunnel");
    return GD_ENOTSUP;
}

int rd_tls_attach(rd_tls *t, redisContext *c, char *why, size_t why_len)
{
    (void)t, (void)c;
    snprintf(why, why_len, "TLS is not supported by this build");
    return GD_ENOTSUP;
}

void rd_tls_free(rd_tls *t)
{
    (void)t;
}
