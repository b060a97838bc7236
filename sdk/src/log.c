/* SPDX-License-Identifier: Apache-2.0 */
/* log.c - leveled logging to stderr as text or JSON lines, with secret
 * redaction and per-call-site rate limiting. */
#include "host.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LINE_BYTES 4096
#define MAX_SECRETS    64

static atomic_int log_level = GD_INFO;
static atomic_int log_format = GD_LOG_TEXT;
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;
static char *secrets[MAX_SECRETS];
static size_t nsecrets;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void gd_log_setup(gd_log_level level, gd_log_format format)
{
    atomic_store(&log_level, (int)level);
    atomic_store(&log_format, (int)format);
}

bool gd_log_enabled(gd_log_level level)
{
    return (int)level <= atomic_load(&log_level);
}

int gd_log_level_parse(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (s && strcmp(s, "warning") == 0)
        return GD_WARN;
    return -1;
}

void gd_log_redact(const char *secret)
{
    if (!secret || strlen(secret) < 4)
        return;
    pthread_mutex_lock(&secrets_lock);
    bool known = false;
    for (size_t i = 0; i < nsecrets; i++)
        known = known || strcmp(secrets[i], secret) == 0;
    if (!known && nsecrets < MAX_SECRETS) {
        char *copy = strdup(secret);
        if (copy)
            secrets[nsecrets++] = copy;
    }
    pthread_mutex_unlock(&secrets_lock);
}

void gd_log_redact_clear(void)
{
    pthread_mutex_lock(&secrets_lock);
    for (size_t i = 0; i < nsecrets; i++)
        free(secrets[i]);
    nsecrets = 0;
    pthread_mutex_unlock(&secrets_lock);
}

/* Replace every registered secret in @msg (in place, never growing). */
static void redact(char *msg)
{
    pthread_mutex_lock(&secrets_lock);
    for (size_t i = 0; i < nsecrets; i++) {
        size_t slen = strlen(secrets[i]);
        char *hit;
        while ((hit = strstr(msg, secrets[i])) != NULL) {
            memcpy(hit, "***", 3);
            memmove(hit + 3, hit + slen, strlen(hit + slen) + 1);
        }
    }
    pthread_mutex_unlock(&secrets_lock);
}

static void json_escape(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
}

static void emit_line(const gd_instance *inst, gd_log_level level, char *msg)
{
    struct timespec ts;
    struct tm tm;
    char when[40];
    char who[160];

    redact(msg);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    if (inst)
        snprintf(who, sizeof(who), "%s:%s/%s", inst->kind, inst->plugin, inst->name);
    else
        snprintf(who, sizeof(who), "gatherd");

    flockfile(stderr);
    if (atomic_load(&log_format) == GD_LOG_JSON) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"source\":\"", when, level_names[level]);
        json_escape(stderr, who);
        fputs("\",\"msg\":\"", stderr);
        json_escape(stderr, msg);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "%s %-5s [%s] %s\n", when, level_names[level], who, msg);
    }
    funlockfile(stderr);
}

void gd_vlog(const gd_instance *inst, gd_log_level level, const char *fmt, va_list ap)
{
    char msg[MAX_LINE_BYTES];
    if (level > GD_DEBUG)
        level = GD_DEBUG;
    if (!gd_log_enabled(level))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    emit_line(inst, level, msg);
}

void gd_log(const gd_instance *inst, gd_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gd_vlog(inst, level, fmt, ap);
    va_end(ap);
}

/* Rate-limit state for daemon-level call sites (inst == NULL). */
static struct gd_instance daemon_rl_head = {.name = "gatherd", .plugin = "", .kind = "core",
                                            .rl_lock = PTHREAD_MUTEX_INITIALIZER};

/* Returns true when the line may be printed; *@suppressed gets the number of
 * lines swallowed since the last one printed from this call site. */
static bool rl_allow(struct gd_instance *inst, const char *fmt, uint32_t *suppressed)
{
    const int64_t window_ns = (int64_t)GD_LOG_WINDOW_S * 1000000000LL;
    int64_t now = gd_now_ns();
    bool allow;

    pthread_mutex_lock(&inst->rl_lock);
    struct gd__ratelimit *slot = NULL, *oldest = &inst->rl[0];
    for (int i = 0; i < GD__RL_SLOTS; i++) {
        if (inst->rl[i].fmt == fmt) {
            slot = &inst->rl[i];
            break;
        }
        if (inst->rl[i].window_start_ns < oldest->window_start_ns)
            oldest = &inst->rl[i];
    }
    if (!slot) {
        slot = oldest;
        memset(slot, 0, sizeof(*slot));
        slot->fmt = fmt;
    }
    if (now - slot->window_start_ns >= window_ns) {
        slot->window_start_ns = now;
        slot->count = 0;
    }
    allow = slot->count < GD_LOG_BURST;
    if (allow) {
        slot->count++;
        *suppressed = slot->suppressed;
        slot->suppressed = 0;
    } else {
        slot->suppressed++;
    }
    pthread_mutex_unlock(&inst->rl_lock);
    return allow;
}

void gd_log_ratelimited(const gd_instance *inst, gd_log_level level, const char *fmt, ...)
{
    char msg[MAX_LINE_BYTES];
    uint32_t suppressed = 0;
    va_list ap;

    if (!gd_log_enabled(level))
        return;
    /* The rate-limit slots are mutable bookkeeping inside a const handle. */
    struct gd_instance *head = inst ? (struct gd_instance *)inst : &daemon_rl_head;
    if (!rl_allow(head, fmt, &suppressed))
        return;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (suppressed && n >= 0 && (size_t)n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - (size_t)n, " (%u similar messages suppressed)",
                 suppressed);
    emit_line(inst, level, msg);
}
