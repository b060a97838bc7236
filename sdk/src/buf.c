/* SPDX-License-Identifier: Apache-2.0 */
/* buf.c - the growable, NUL-terminated byte buffer of lineproto.h. */
#include <gatherd/lineproto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_BYTES 64 /* first allocation */

int gd_buf_reserve(gd_buf *b, size_t extra)
{
    if (!b)
        return GD_EINVAL;
    if (extra > SIZE_MAX - 1 - b->len)
        return GD_ENOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap < BUF_MIN_BYTES ? BUF_MIN_BYTES : b->cap;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    char *p = realloc(b->data, ncap);
    if (!p)
        return GD_ENOMEM;
    if (!b->data)
        p[0] = '\0';
    b->data = p;
    b->cap = ncap;
    return 0;
}

int gd_buf_append(gd_buf *b, const void *data, size_t len)
{
    if (!b || (!data && len))
        return GD_EINVAL;
    int rc = gd_buf_reserve(b, len);
    if (rc < 0)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int gd_buf_puts(gd_buf *b, const char *s)
{
    if (!s)
        return GD_EINVAL;
    return gd_buf_append(b, s, strlen(s));
}

int gd_buf_printf(gd_buf *b, const char *fmt, ...)
{
    if (!b || !fmt)
        return GD_EINVAL;
    /* Try the free space first; grow once to the exact size if needed. */
    int rc = gd_buf_reserve(b, BUF_MIN_BYTES);
    if (rc < 0)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        goto out_restore;
    if ((size_t)n >= b->cap - b->len) {
        rc = gd_buf_reserve(b, (size_t)n);
        if (rc < 0)
            goto out_restore_rc;
        va_start(ap, fmt);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            goto out_restore;
    }
    b->len += (size_t)n;
    return 0;

out_restore:
    rc = GD_EINVAL;
out_restore_rc:
    b->data[b->len] = '\0';
    return rc;
}

void gd_buf_reset(gd_buf *b)
{
    if (!b)
        return;
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void gd_buf_free(gd_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
