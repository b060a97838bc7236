/* SPDX-License-Identifier: Apache-2.0 */
/**
 * gatherd/log.h - leveled logging to stderr, text or JSON lines.
 *
 * Plugins log through their instance, so every line names where it comes
 * from ("output:file/archive"). Repeated failures use gd_log_ratelimited():
 * at most a few lines per call site per interval, and the number suppressed
 * is reported with the next line that gets through.
 */
#ifndef GATHERD_LOG_H
#define GATHERD_LOG_H

#include <gatherd/common.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gd_instance gd_instance;

typedef enum gd_log_level {
    GD_ERROR = 0,
    GD_WARN = 1,
    GD_INFO = 2,
    GD_DEBUG = 3,
} gd_log_level;

typedef enum gd_log_format {
    GD_LOG_TEXT = 0,
    GD_LOG_JSON = 1,
} gd_log_format;

/** gd_log() - log a message for @inst (NULL for the daemon itself). */
GD_EXPORT void gd_log(const gd_instance *inst, gd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** gd_vlog() - va_list form of gd_log(). */
GD_EXPORT void gd_vlog(const gd_instance *inst, gd_log_level level, const char *fmt, va_list ap);

/** gd_log_ratelimited() - gd_log(), but a call site (identified by @fmt)
 * logs at most GD_LOG_BURST lines per GD_LOG_WINDOW_S seconds; the count of
 * suppressed lines is appended to the next line logged. */
GD_EXPORT void gd_log_ratelimited(const gd_instance *inst, gd_log_level level, const char *fmt,
                                  ...) __attribute__((format(printf, 3, 4)));

#define GD_LOG_BURST    5
#define GD_LOG_WINDOW_S 10

/** gd_log_enabled() - true when @level would be printed. Use it to skip
 * building expensive debug text. */
GD_EXPORT bool gd_log_enabled(gd_log_level level);

/** gd_log_setup() - set the threshold and format (the core calls this from
 * global.log_level / global.log_format). */
GD_EXPORT void gd_log_setup(gd_log_level level, gd_log_format format);

/** gd_log_level_parse() - "error"|"warn"|"info"|"debug" -> level, or -1. */
GD_EXPORT int gd_log_level_parse(const char *s);

/** gd_log_redact() - register a secret value: it is replaced by "***" in
 * every log line from now on. The core registers the values of options
 * marked GD_OPT_SENSITIVE. Values shorter than 4 bytes are ignored. */
GD_EXPORT void gd_log_redact(const char *secret);

/** gd_log_redact_clear() - forget every registered secret (on reload). */
GD_EXPORT void gd_log_redact_clear(void);

#ifdef __cplusplus
}
#endif
#endif
