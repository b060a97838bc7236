/* SPDX-License-Identifier: Apache-2.0 */
/**
 * gatherd/common.h - export macro, ABI version and the one error map.
 *
 * Every gatherd function that can fail returns 0 or a negative GD_E* code.
 * gd_strerror() turns a code into text; the human context ("device c17 at
 * 10.0.0.7: ...") is logged where it is known.
 */
#ifndef GATHERD_COMMON_H
#define GATHERD_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GD_EXPORT __attribute__((visibility("default")))

/* Plugin ABI version. A plugin is accepted when its major equals the core's
 * and its minor is not newer than the core's (libuv's rule). */
#define GD_ABI_MAJOR 1
#define GD_ABI_MINOR 1 /* 1.1: gd_lp_parse, gd_batch_drop_last, gd_batch_derive_point, \
                          gd_point_field_mut, gd_point_remove_tag/field, gd_backpressure, \
                          gd_emit_durable, gd_instance_spool_dir, gd_time_parse_rfc3339, \
                          GD_EPARSE */

/* The error map: XX(NAME, "message"). Codes are negative, in this order. */
#define GD_ERRNO_MAP(XX)                                                                           \
    XX(EINVAL, "invalid argument")                                                                 \
    XX(ENOMEM, "out of memory")                                                                    \
    XX(EIO, "i/o error")                                                                           \
    XX(ENOENT, "not found")                                                                        \
    XX(EEXIST, "already exists")                                                                   \
    XX(EPERM, "permission denied")                                                                 \
    XX(EFROZEN, "batch is frozen (already emitted)")                                               \
    XX(ERANGE, "value out of range")                                                               \
    XX(ETYPE, "wrong type")                                                                        \
    XX(ECONFIG, "configuration error")                                                             \
    XX(EABI, "ABI mismatch")                                                                       \
    XX(ENOSYM, "entry symbol missing")                                                             \
    XX(EQUEUEFULL, "queue full")                                                                   \
    XX(ESHUTDOWN, "shutting down")                                                                 \
    XX(ETIMEDOUT, "timed out")                                                                     \
    XX(EAGAIN, "try again")                                                                        \
    XX(ECONN, "connection failed")                                                                 \
    XX(EPROTO, "protocol error")                                                                   \
    XX(ESPOOLFULL, "spool full")                                                                   \
    XX(ENOTSUP, "not supported")                                                                   \
    XX(EPARSE, "malformed input")

enum gd_errno {
    GD_OK = 0,
    GD__EBASE = -1000,
#define GD__ERR_ENUM(name, msg) GD_##name,
    GD_ERRNO_MAP(GD__ERR_ENUM)
#undef GD__ERR_ENUM
};

/** gd_strerror() - a static, human-readable message for an error code.
 * Accepts 0 ("ok"), any GD_E* code, and negative errno values. */
GD_EXPORT const char *gd_strerror(int err);

/** gd_err_name() - the symbolic name of an error code ("EINVAL"). */
GD_EXPORT const char *gd_err_name(int err);

/** gd_now_ns() - wall-clock time in nanoseconds since the Unix epoch. */
GD_EXPORT int64_t gd_now_ns(void);

/** gd_time_parse_rfc3339() - "2024-05-01T12:00:00.5+02:00" to ns since
 * the epoch: a full date and time, 'T', 't' or ' ' between them, an
 * optional fraction (digits past the nanosecond are truncated), then 'Z',
 * 'z' or an offset +hh:mm / -hh:mm; nothing after it. Returns 0, GD_EINVAL
 * (malformed or an impossible date) or GD_ERANGE (outside what int64 ns
 * hold: 1677..2262). (ABI 1.1) */
GD_EXPORT int gd_time_parse_rfc3339(const char *s, int64_t *ns);

/** gd_version() - the version string of the running libgatherd. */
GD_EXPORT const char *gd_version(void);

#ifdef __cplusplus
}
#endif
#endif
