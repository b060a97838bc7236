/* SPDX-License-Identifier: Apache-2.0 */
/* errors.c - the error map, clock and version. */
#include <gatherd/common.h>
#include <string.h>
#include <time.h>

#ifndef GD_VERSION
#define GD_VERSION "0.0.0"
#endif

struct err_entry {
    const char *name;
    const char *msg;
};

static const struct err_entry err_table[] = {
#define XX(name, msg) {#name, msg},
    GD_ERRNO_MAP(XX)
#undef XX
};

#define N_ERRS (sizeof(err_table) / sizeof(err_table[0]))

static const struct err_entry *lookup(int err)
{
    long idx = (long)err - (long)GD__EBASE - 1;
    if (err >= 0 || idx < 0 || (size_t)idx >= N_ERRS)
        return NULL;
    return &err_table[idx];
}

const char *gd_strerror(int err)
{
    if (err == 0)
        return "ok";
    const struct err_entry *e = lookup(err);
    if (e)
        return e->msg;
    if (err < 0 && err > GD__EBASE)
        return strerror(-err);
    return "unknown error";
}

const char *gd_err_name(int err)
{
    if (err == 0)
        return "OK";
    const struct err_entry *e = lookup(err);
    return e ? e->name : "ERRNO";
}

int64_t gd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

const char *gd_version(void)
{
    return GD_VERSION;
}
