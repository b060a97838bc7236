/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modbus.c - Modbus TCP and RTU polling input.
 *
 * One instance polls many devices. Devices on one link (one TCP endpoint,
 * one serial bus) are polled one after another over one connection; links
 * are polled in parallel by the instance's own pool of max_concurrency
 * threads. Every device has its own schedule on a wall-clock grid
 * (interval, plus a phase that spreads the devices over the interval), so
 * a fleet does not hit the network in one burst.
 *
 * The core's collect() ticks open the polling window: each tick lets the
 * pool poll every occurrence due before the next tick, and waits (at most
 * 90 % of the interval) for the occurrences due at the tick itself, so
 * `gatherd --once` prints a complete first poll. Polls finishing later are
 * handed to the core with gd_emit() by the pool thread, so a device that
 * times out never delays another one, nor the instance's schedule.
 */
#include "mb_decode.h"
#include "mb_plan.h"
#include "mb_url.h"
#include <errno.h>
#include <gatherd/gatherd.h>
#include <inttypes.h>
#include <math.h>
#include <modbus.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_S            1000000000LL
#define NS_PER_MS           1000000LL
#define COLLECT_WAIT_SHARE  0.9 /* of the interval: longest wait of a collect */
#define BACKOFF_AFTER       2   /* consecutive unreachable polls before backing off */
#define MAX_STRING_REGS     MB_MAX_READ_REGS
#define DEFAULT_MEASUREMENT "modbus"
/* libmodbus waits for answers with select(), so a connection's descriptor
 * must stay below FD_SETSIZE (1024). At most this many connections stay
 * open between polls in the whole daemon; links beyond it connect for each
 * poll, which keeps descriptors low for any fleet size. */
#define MAX_PERSISTENT 768
#define FD_LIMIT       1024

/* Connections kept open between polls, over every instance. */
static atomic_int persistent_open;

/* ---- configuration ----------------------------------------------------- */

struct reg_cfg {
    char *field;
    int kind;
    int64_t address;
    int format; /* index into fmt_choices: 0 auto, then mb_format + 1 */
    int order;
    int64_t bit;
    int64_t length;
    double scale;
    double offset;
    int type;
    char *measurement;
    gd_kvlist tags;
};

struct profile_cfg {
    char *name;
    char *measurement;
    gd_kvlist tags;
    gd_list registers; /* struct reg_cfg */
};

struct device_cfg {
    char *name;
    char *url;
    int64_t unit_id;
    char *profile;
    gd_list registers; /* struct reg_cfg, added to the profile's */
    gd_kvlist tags;
    double interval;
    double response_timeout;
    double byte_timeout;
    int64_t retries;
    int64_t baud;
    int parity;
    int64_t data_bits;
    int64_t stop_bits;
    double frame_delay;
};

struct mb_cfg {
    gd_list profiles; /* struct profile_cfg */
    gd_list devices;  /* struct device_cfg */
    char *measurement;
    char *status_measurement;
    int64_t max_concurrency;
    int64_t max_gap;
    int64_t max_request_registers;
    int64_t max_request_bits;
    bool spread;
    double backoff_max;
};

static const char *const fmt_choices[] = {"auto",    "bit",     "int16",  "uint16",
                                          "int32",   "uint32",  "int64",  "uint64",
                                          "float32", "float64", "string", NULL};
static const char *const parities[] = {"none", "even", "odd", NULL};

#define R(f) offsetof(struct reg_cfg, f)
static const struct gd_option reg_options[] = {
    GD_OPT_STRING("field", NULL, GD_OF_REQUIRED, R(field), "field name"),
    GD_OPT_ENUM("kind", "holding", mb_kind_names, 0, R(kind),
                "register kind: coil, discrete, holding or input"),
    GD_OPT_INT("address", NULL, 0, 65535, GD_OF_REQUIRED, R(address),
               "address of the first register (or bit), 0-based"),
    GD_OPT_ENUM("format", "auto", fmt_choices, 0, R(format),
                "bit, int16, uint16, int32, uint32, int64, uint64, float32, float64, string; "
                "auto: bit for coils and discrete inputs, uint16 for registers"),
    GD_OPT_ENUM("order", "ABCD", mb_order_names, 0, R(order),
                "word and byte order of multi-byte values: ABCD, DCBA, BADC, CDAB"),
    GD_OPT_INT("bit", "0", 0, 15, 0, R(bit), "format bit on a register: bit number (0 = LSB)"),
    GD_OPT_INT("length", "0", 0, MAX_STRING_REGS, 0, R(length),
               "format string: length in registers (2 characters each)"),
    GD_OPT_DOUBLE("scale", "1", 0, 0, 0, R(scale), "value = raw * scale + offset"),
    GD_OPT_DOUBLE("offset", "0", 0, 0, 0, R(offset), "value = raw * scale + offset"),
    GD_OPT_ENUM("type", "auto", mb_as_names, 0, R(type),
                "field type: auto (double; bool for bits; string), double, int, uint, bool"),
    GD_OPT_STRING("measurement", NULL, 0, R(measurement),
                  "measurement of this field (default: the profile's)"),
    GD_OPT_KV("tags", 0, R(tags), "extra tags: the field goes into a point of its own"),
    GD_OPT_END,
};
#undef R

#define P(f) offsetof(struct profile_cfg, f)
static const struct gd_option profile_options[] = {
    GD_OPT_STRING("name", NULL, GD_OF_REQUIRED, P(name), "profile name devices refer to"),
    GD_OPT_STRING("measurement", NULL, 0, P(measurement),
                  "measurement of the fields (default: the instance's)"),
    GD_OPT_KV("tags", 0, P(tags), "tags of every point of devices using the profile"),
    GD_OPT_LIST("registers", reg_options, struct reg_cfg, GD_OF_REQUIRED, P(registers),
                "the register map"),
    GD_OPT_END,
};
#undef P

#define D(f) offsetof(struct device_cfg, f)
static const struct gd_option device_options[] = {
    GD_OPT_STRING("name", NULL, GD_OF_REQUIRED, D(name), "device name: tag device"),
    GD_OPT_STRING("url", NULL, GD_OF_REQUIRED, D(url),
                  "tcp://host[:port] or rtu:///dev/ttyX; devices with one url share it"),
    GD_OPT_INT("unit_id", "1", 0, 255, 0, D(unit_id), "Modbus unit (slave) id"),
    GD_OPT_STRING("profile", NULL, 0, D(profile), "name of the profile (register map)"),
    GD_OPT_LIST("registers", reg_options, struct reg_cfg, 0, D(registers),
                "registers of this device only (after the profile's)"),
    GD_OPT_KV("tags", 0, D(tags), "tags of every point of this device"),
    GD_OPT_DURATION("interval", "0", 0, 86400, 0, D(interval),
                    "poll interval (0: the instance's interval)"),
    GD_OPT_DURATION("response_timeout", "1s", 0.001, 60, 0, D(response_timeout),
                    "wait for the first byte of a response"),
    GD_OPT_DURATION("byte_timeout", "500ms", 0.001, 60, 0, D(byte_timeout),
                    "wait between two bytes of a response"),
    GD_OPT_INT("retries", "1", 0, 10, 0, D(retries), "resends of a request after a timeout"),
    GD_OPT_INT("baud", "9600", 300, 4000000, 0, D(baud), "rtu: baud rate"),
    GD_OPT_ENUM("parity", "none", parities, 0, D(parity), "rtu: none, even or odd"),
    GD_OPT_INT("data_bits", "8", 5, 8, 0, D(data_bits), "rtu: data bits"),
    GD_OPT_INT("stop_bits", "1", 1, 2, 0, D(stop_bits), "rtu: stop bits"),
    GD_OPT_DURATION("frame_delay", "0", 0, 10, 0, D(frame_delay),
                    "least silence between two frames on the link (rtu: e.g. 5ms)"),
    GD_OPT_END,
};
#undef D

#define C(f) offsetof(struct mb_cfg, f)
static const struct gd_option mb_options[] = {
    GD_OPT_LIST("profiles", profile_options, struct profile_cfg, 0, C(profiles),
                "named register maps shared by devices"),
    GD_OPT_LIST("devices", device_options, struct device_cfg, GD_OF_REQUIRED, C(devices),
                "the devices to poll"),
    GD_OPT_STRING("measurement", DEFAULT_MEASUREMENT, 0, C(measurement),
                  "measurement of the fields (profiles and registers may override)"),
    GD_OPT_STRING("status_measurement", "device_status", 0, C(status_measurement),
                  "measurement of the per-poll device health point (\"\": none)"),
    GD_OPT_INT("max_concurrency", "16", 1, 1024, 0, C(max_concurrency),
               "links (connections, buses) polled at the same time"),
    GD_OPT_INT("max_gap", "8", 0, 2000, 0, C(max_gap),
               "largest hole (registers, or bits) bridged to merge two reads"),
    GD_OPT_INT("max_request_registers", "125", 1, MB_MAX_READ_REGS, 0, C(max_request_registers),
               "registers per read request"),
    GD_OPT_INT("max_request_bits", "2000", 1, MB_MAX_READ_BITS, 0, C(max_request_bits),
               "coils or discrete inputs per read request"),
    GD_OPT_BOOL("spread", "true", 0, C(spread),
                "spread the devices' polls evenly over their interval"),
    GD_OPT_DURATION("backoff_max", "60s", 0, 86400, 0, C(backoff_max),
                    "longest pause of an unreachable device between attempts"),
    GD_OPT_END,
};
#undef C

/* ---- state ------------------------------------------------------------- */

/* One decoded field of a map. */
struct field {
    const struct reg_cfg *rc;
    struct mb_spec spec;
    enum mb_kind kind;
    unsigned address;
    size_t req;   /* index into the map's plan */
    size_t group; /* point the field goes into */
};

/* Fields with the same measurement and register tags share a point. */
struct group {
    const char *measurement;
    const gd_kvlist *tags; /* register tags, NULL for none */
};

/* A compiled register map: a profile, or a device's own registers. */
struct map {
    const char *name;
    const struct profile_cfg *profile;
    struct field *f;
    size_t nf;
    struct group *g;
    size_t ng;
    struct mb_plan plan;
    size_t *req_off; /* per request: first slot in the regs or bits buffer */
    size_t nregs, nbits;
};

enum dev_status { ST_OK, ST_EXCEPTION, ST_TIMEOUT, ST_CONNECTION, ST_PROTOCOL };
static const char *const status_names[] = {"ok", "exception", "timeout", "connection_error",
                                           "protocol_error"};

struct link;

struct device {
    const struct device_cfg *c;
    struct map *map;
    struct link *link;
    int64_t interval_ns;
    int64_t phase_ns;
    int64_t next_due; /* monotonic ns */
    int64_t last_good_ns;
    int64_t consecutive; /* failed polls in a row */
    int64_t unreachable; /* timeouts / connection errors in a row */
    int64_t failures;    /* failed polls since start */
    int64_t skipped;     /* occurrences missed (busy link, backoff) */
};

struct link {
    const char *url;
    struct mb_url u;
    modbus_t *ctx;
    bool connected;
    bool persistent; /* counted in persistent_open; else closed after each run */
    bool busy;
    struct device **dev;
    size_t ndev;
    int64_t next_due; /* earliest next_due of its devices */
    int64_t run_due;  /* while busy: the earliest occurrence being polled */
    int64_t frame_delay_ns;
    int64_t last_frame_ns;
    size_t heap_pos; /* index in the idle heap; SIZE_MAX when not in it */
    uint16_t *regs;  /* buffers big enough for the largest map of the link */
    uint8_t *bits;
};

struct mb {
    gd_instance *inst;
    const struct mb_cfg *cfg;
    struct map *maps;
    size_t nmaps;
    struct device *dev;
    size_t ndev;
    struct link *links;
    size_t nlinks;
    int64_t interval_ns;
    int64_t wall_minus_mono;

    pthread_mutex_t lock;
    pthread_cond_t work_cv; /* pool: work may be due, or closing */
    pthread_cond_t done_cv; /* collect: a link run finished */
    pthread_t *threads;
    size_t nthreads;
    struct link **heap; /* idle links by next_due */
    size_t nheap;
    int64_t horizon; /* poll occurrences due before this (monotonic ns) */
    bool started;
    atomic_bool closing; /* written under lock, read anywhere */
    bool lock_ok, work_ok, done_ok;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_until(int64_t mono)
{
    struct timespec ts = {.tv_sec = mono / NS_PER_S, .tv_nsec = mono % NS_PER_S};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* ---- the idle-link heap (min by next_due) ------------------------------- */

static void heap_swap(struct mb *s, size_t a, size_t b)
{
    struct link *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_pos = a;
    s->heap[b]->heap_pos = b;
}

static void heap_up(struct mb *s, size_t i)
{
    while (i > 0 && s->heap[(i - 1) / 2]->next_due > s->heap[i]->next_due) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct mb *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->nheap && s->heap[l]->next_due < s->heap[m]->next_due)
            m = l;
        if (r < s->nheap && s->heap[r]->next_due < s->heap[m]->next_due)
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_push(struct mb *s, struct link *l)
{
    l->heap_pos = s->nheap;
    s->heap[s->nheap++] = l;
    heap_up(s, l->heap_pos);
}

static struct link *heap_pop(struct mb *s)
{
    struct link *top = s->heap[0];
    s->nheap--;
    if (s->nheap) {
        s->heap[0] = s->heap[s->nheap];
        s->heap[0]->heap_pos = 0;
        heap_down(s, 0);
    }
    top->heap_pos = SIZE_MAX;
    return top;
}

static void link_update_due(struct link *l)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < l->ndev; i++)
        if (l->dev[i]->next_due < due)
            due = l->dev[i]->next_due;
    l->next_due = due;
}

static void link_close(struct link *l)
{
    if (!l->connected)
        return;
    modbus_close(l->ctx);
    l->connected = false;
    if (l->persistent)
        atomic_fetch_sub(&persistent_open, 1);
    l->persistent = false;
}

/* ---- maps --------------------------------------------------------------- */

static void map_free(struct map *m)
{
    free(m->f);
    free(m->g);
    free(m->req_off);
    mb_plan_free(&m->plan);
}

static bool kv_equal(const gd_kvlist *a, const gd_kvlist *b)
{
    size_t na = a ? a->n : 0, nb = b ? b->n : 0;
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a->v[i].key, b->v[i].key) != 0 || strcmp(a->v[i].value, b->v[i].value) != 0)
            return false;
    return true;
}

/* Tag values must be non-empty single lines: the line protocol cannot
 * carry anything else, so refuse them at start rather than drop points. */
static bool tags_ok(gd_instance *inst, const char *where, const gd_kvlist *kv)
{
    for (size_t i = 0; i < kv->n; i++)
        if (!kv->v[i].value[0] || strpbrk(kv->v[i].value, "\n\r")) {
            gd_log(inst, GD_ERROR, "modbus: %s: tag '%s' must be a non-empty single line", where,
                   kv->v[i].key);
            return false;
        }
    return true;
}

static int check_reg(gd_instance *inst, const char *where, const struct reg_cfg *rc)
{
    enum mb_format fmt = rc->format == 0 ? (mb_kind_is_bit(rc->kind) ? MB_BIT : MB_UINT16)
                                         : (enum mb_format)(rc->format - 1);
    const char *why = NULL;
    if (!rc->field[0])
        why = "field must not be empty";
    else if (mb_kind_is_bit(rc->kind) && fmt != MB_BIT)
        why = "coils and discrete inputs have format bit";
    else if (fmt == MB_STRING && rc->length == 0)
        why = "format string needs length (registers)";
    else if (fmt == MB_STRING && rc->type != MB_AS_AUTO)
        why = "a string field has type auto";
    else if (rc->measurement && !rc->measurement[0])
        why = "measurement must not be empty";
    if (!why && !tags_ok(inst, where, &rc->tags))
        return GD_ECONFIG;
    if (why) {
        gd_log(inst, GD_ERROR, "modbus: %s, register '%s' at %s %lld: %s", where, rc->field,
               mb_kind_names[rc->kind], (long long)rc->address, why);
        return GD_ECONFIG;
    }
    return 0;
}

/* Compile the registers of @lists (a profile's, then a device's) into @m. */
static int map_build(struct mb *s, struct map *m, const char *name,
                     const struct profile_cfg *profile, const gd_list *const *lists, size_t nlists)
{
    const struct mb_cfg *cfg = s->cfg;
    size_t n = 0;
    for (size_t i = 0; i < nlists; i++)
        n += lists[i]->n;
    m->name = name;
    m->profile = profile;
    if (n == 0) {
        gd_log(s->inst, GD_ERROR, "modbus: %s has no registers", name);
        return GD_ECONFIG;
    }
    m->f = calloc(n, sizeof(*m->f));
    m->g = calloc(n, sizeof(*m->g));
    struct mb_item *items = calloc(n, sizeof(*items));
    if (!m->f || !m->g || !items) {
        free(items);
        return GD_ENOMEM;
    }
    const char *meas = profile && profile->measurement ? profile->measurement : cfg->measurement;
    int rc = 0;
    for (size_t li = 0; li < nlists && rc == 0; li++) {
        for (size_t i = 0; i < lists[li]->n && rc == 0; i++) {
            const struct reg_cfg *r = (const struct reg_cfg *)lists[li]->items + i;
            rc = check_reg(s->inst, name, r);
            if (rc < 0)
                break;
            struct field *f = &m->f[m->nf];
            f->rc = r;
            f->kind = (enum mb_kind)r->kind;
            f->address = (unsigned)r->address;
            f->spec = (struct mb_spec){
                .format = r->format == 0 ? (mb_kind_is_bit(r->kind) ? MB_BIT : MB_UINT16)
                                         : (enum mb_format)(r->format - 1),
                .order = (enum mb_order)r->order,
                .as = (enum mb_as)r->type,
                .bit = (unsigned)r->bit,
                .length = (unsigned)r->length,
                .scale = r->scale,
                .offset = r->offset,
            };
            items[m->nf] = (struct mb_item){
                .kind = f->kind,
                .address = f->address,
                .count =
                    mb_kind_is_bit(f->kind) ? 1 : mb_format_regs(f->spec.format, f->spec.length),
            };
            const char *fm = r->measurement ? r->measurement : meas;
            const gd_kvlist *ft = r->tags.n ? &r->tags : NULL;
            size_t g;
            for (g = 0; g < m->ng; g++)
                if (strcmp(m->g[g].measurement, fm) == 0 && kv_equal(m->g[g].tags, ft))
                    break;
            if (g == m->ng)
                m->g[m->ng++] = (struct group){.measurement = fm, .tags = ft};
            f->group = g;
            m->nf++;
        }
    }
    if (rc < 0) {
        free(items);
        return rc;
    }
    struct mb_limits lim = {
        .max_gap = (unsigned)cfg->max_gap,
        .max_regs = (unsigned)cfg->max_request_registers,
        .max_bits = (unsigned)cfg->max_request_bits,
    };
    size_t bad = 0;
    rc = mb_plan_build(items, m->nf, &lim, &m->plan, &bad);
    free(items);
    if (rc < 0) {
        gd_log(s->inst, GD_ERROR, "modbus: %s, register '%s': %s", name,
               bad < m->nf ? m->f[bad].rc->field : "?",
               rc == GD_ERANGE ? "larger than one read request or past address 65535"
                               : gd_strerror(rc));
        return GD_ECONFIG;
    }
    m->req_off = calloc(m->plan.nreq ? m->plan.nreq : 1, sizeof(*m->req_off));
    if (!m->req_off)
        return GD_ENOMEM;
    for (size_t i = 0; i < m->plan.nreq; i++) {
        const struct mb_request *q = &m->plan.req[i];
        if (mb_kind_is_bit(q->kind)) {
            m->req_off[i] = m->nbits;
            m->nbits += q->count;
        } else {
            m->req_off[i] = m->nregs;
            m->nregs += q->count;
        }
    }
    for (size_t i = 0; i < m->nf; i++)
        m->f[i].req = m->plan.item_req[i];
    if (gd_log_enabled(GD_DEBUG)) {
        char buf[1024];
        mb_plan_describe(&m->plan, buf, sizeof(buf));
        gd_log(s->inst, GD_DEBUG, "modbus: %s: %zu fields in %zu requests: %s", name, m->nf,
               m->plan.nreq, buf);
    }
    return 0;
}

/* ---- init / destroy ----------------------------------------------------- */

static void stop_pool(struct mb *s)
{
    if (!s->threads)
        return;
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    free(s->threads);
    s->threads = NULL;
}

static void mb_destroy(void *state)
{
    struct mb *s = state;
    if (!s)
        return;
    stop_pool(s);
    for (size_t i = 0; i < s->nlinks; i++) {
        struct link *l = &s->links[i];
        if (l->ctx) {
            link_close(l);
            modbus_free(l->ctx);
        }
        free(l->dev);
        free(l->regs);
        free(l->bits);
    }
    free(s->links);
    for (size_t i = 0; i < s->nmaps; i++)
        map_free(&s->maps[i]);
    free(s->maps);
    free(s->dev);
    free(s->heap);
    if (s->done_ok)
        pthread_cond_destroy(&s->done_cv);
    if (s->work_ok)
        pthread_cond_destroy(&s->work_cv);
    if (s->lock_ok)
        pthread_mutex_destroy(&s->lock);
    free(s);
}

static const struct profile_cfg *find_profile(const struct mb_cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->profiles.n; i++) {
        const struct profile_cfg *p = (const struct profile_cfg *)cfg->profiles.items + i;
        if (strcmp(p->name, name) == 0)
            return p;
    }
    return NULL;
}

static int build_maps(struct mb *s)
{
    const struct mb_cfg *cfg = s->cfg;
    /* One map per profile, plus one per device with registers of its own. */
    size_t n = cfg->profiles.n;
    for (size_t i = 0; i < cfg->devices.n; i++)
        n += ((const struct device_cfg *)cfg->devices.items)[i].registers.n ? 1 : 0;
    s->maps = calloc(n ? n : 1, sizeof(*s->maps));
    if (!s->maps)
        return GD_ENOMEM;
    for (size_t i = 0; i < cfg->profiles.n; i++) {
        const struct profile_cfg *p = (const struct profile_cfg *)cfg->profiles.items + i;
        if (find_profile(cfg, p->name) != p) {
            gd_log(s->inst, GD_ERROR, "modbus: profile '%s' is defined twice", p->name);
            return GD_ECONFIG;
        }
        if (!tags_ok(s->inst, p->name, &p->tags))
            return GD_ECONFIG;
        if (p->measurement && !p->measurement[0]) {
            gd_log(s->inst, GD_ERROR, "modbus: profile '%s': measurement must not be empty",
                   p->name);
            return GD_ECONFIG;
        }
        const gd_list *lists[1] = {&p->registers};
        int rc = map_build(s, &s->maps[s->nmaps++], p->name, p, lists, 1);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < cfg->devices.n; i++) {
        const struct device_cfg *dc = (const struct device_cfg *)cfg->devices.items + i;
        struct device *d = &s->dev[i];
        const struct profile_cfg *p = NULL;
        if (dc->profile) {
            p = find_profile(cfg, dc->profile);
            if (!p) {
                gd_log(s->inst, GD_ERROR, "modbus: device '%s': no profile named '%s'", dc->name,
                       dc->profile);
                return GD_ECONFIG;
            }
        }
        if (!p && !dc->registers.n) {
            gd_log(s->inst, GD_ERROR, "modbus: device '%s' needs a profile or registers", dc->name);
            return GD_ECONFIG;
        }
        if (dc->registers.n) {
            const gd_list *lists[2] = {p ? &p->registers : NULL, &dc->registers};
            int rc =
                map_build(s, &s->maps[s->nmaps++], dc->name, p, p ? lists : lists + 1, p ? 2 : 1);
            if (rc < 0)
                return rc;
            d->map = &s->maps[s->nmaps - 1];
        } else {
            d->map = &s->maps[p - (const struct profile_cfg *)cfg->profiles.items];
        }
    }
    return 0;
}

static bool rtu_same(const struct device_cfg *a, const struct device_cfg *b)
{
    return a->baud == b->baud && a->parity == b->parity && a->data_bits == b->data_bits &&
           a->stop_bits == b->stop_bits;
}

static int link_open(struct mb *s, struct link *l, const struct device_cfg *dc)
{
    if (l->u.rtu) {
        static const char parity_chars[] = {'N', 'E', 'O'};
        l->ctx = modbus_new_rtu(l->u.path, (int)dc->baud, parity_chars[dc->parity],
                                (int)dc->data_bits, (int)dc->stop_bits);
    } else {
        l->ctx = modbus_new_tcp_pi(l->u.host, l->u.port);
    }
    if (!l->ctx) {
        gd_log(s->inst, GD_ERROR, "modbus: %s: %s", l->url, modbus_strerror(errno));
        return GD_ECONFIG;
    }
    return 0;
}

static int build_links(struct mb *s)
{
    s->links = calloc(s->ndev, sizeof(*s->links));
    s->heap = calloc(s->ndev, sizeof(*s->heap));
    if (!s->links || !s->heap)
        return GD_ENOMEM;
    for (size_t i = 0; i < s->ndev; i++) {
        struct device *d = &s->dev[i];
        const struct device_cfg *dc = d->c;
        struct link *l = NULL;
        for (size_t k = 0; k < s->nlinks && !l; k++)
            if (strcmp(s->links[k].url, dc->url) == 0)
                l = &s->links[k];
        if (!l) {
            l = &s->links[s->nlinks];
            const char *why = NULL;
            if (mb_url_parse(dc->url, &l->u, &why) < 0) {
                gd_log(s->inst, GD_ERROR, "modbus: device '%s': url '%s': %s", dc->name, dc->url,
                       why);
                return GD_ECONFIG;
            }
            l->url = dc->url;
            l->heap_pos = SIZE_MAX;
            s->nlinks++;
            int rc = link_open(s, l, dc);
            if (rc < 0)
                return rc;
        } else if (l->u.rtu && !rtu_same(l->dev[0]->c, dc)) {
            gd_log(s->inst, GD_ERROR,
                   "modbus: device '%s': serial settings differ from device '%s' on the same "
                   "bus %s",
                   dc->name, l->dev[0]->c->name, l->url);
            return GD_ECONFIG;
        }
        if ((l->ndev & (l->ndev - 1)) == 0) { /* 0, 1, 2, 4, ...: grow to the next power */
            struct device **nv = realloc(l->dev, (l->ndev ? 2 * l->ndev : 1) * sizeof(*nv));
            if (!nv)
                return GD_ENOMEM;
            l->dev = nv;
        }
        l->dev[l->ndev++] = d;
        d->link = l;
        int64_t fd = (int64_t)(dc->frame_delay * NS_PER_S);
        if (fd > l->frame_delay_ns)
            l->frame_delay_ns = fd;
    }
    for (size_t k = 0; k < s->nlinks; k++) {
        struct link *l = &s->links[k];
        size_t nregs = 1, nbits = 1;
        for (size_t i = 0; i < l->ndev; i++) {
            if (l->dev[i]->map->nregs > nregs)
                nregs = l->dev[i]->map->nregs;
            if (l->dev[i]->map->nbits > nbits)
                nbits = l->dev[i]->map->nbits;
        }
        l->regs = calloc(nregs, sizeof(*l->regs));
        l->bits = calloc(nbits, sizeof(*l->bits));
        if (!l->regs || !l->bits)
            return GD_ENOMEM;
    }
    return 0;
}

static void *pool_main(void *arg);

static int start_pool(struct mb *s)
{
    size_t n = (size_t)s->cfg->max_concurrency;
    if (n > s->nlinks)
        n = s->nlinks;
    s->threads = calloc(n, sizeof(*s->threads));
    if (!s->threads)
        return GD_ENOMEM;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024); /* decoding needs little stack */
    for (; s->nthreads < n; s->nthreads++) {
        if (pthread_create(&s->threads[s->nthreads], &attr, pool_main, s) != 0) {
            pthread_attr_destroy(&attr);
            gd_log(s->inst, GD_ERROR, "modbus: cannot start poll threads");
            return GD_ENOMEM;
        }
    }
    pthread_attr_destroy(&attr);
    return 0;
}

static int mb_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct mb_cfg *cfg = cfgp;
    struct mb *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    int rc = GD_ECONFIG;
    s->interval_ns = (int64_t)(gd_instance_interval(inst) * NS_PER_S);
    if (s->interval_ns <= 0) {
        gd_log(inst, GD_ERROR, "modbus: needs an interval > 0 (it sets the polling window)");
        goto out_destroy;
    }
    if (!cfg->measurement[0]) {
        gd_log(inst, GD_ERROR, "modbus: measurement must not be empty");
        goto out_destroy;
    }
    s->ndev = cfg->devices.n;
    s->dev = calloc(s->ndev ? s->ndev : 1, sizeof(*s->dev));
    rc = GD_ENOMEM;
    if (!s->dev)
        goto out_destroy;
    rc = GD_ECONFIG;
    for (size_t i = 0; i < s->ndev; i++) {
        struct device *d = &s->dev[i];
        d->c = (const struct device_cfg *)cfg->devices.items + i;
        for (size_t k = 0; k < i; k++)
            if (strcmp(s->dev[k].c->name, d->c->name) == 0) {
                gd_log(inst, GD_ERROR, "modbus: device '%s' is defined twice", d->c->name);
                goto out_destroy;
            }
        if (!tags_ok(inst, d->c->name, &d->c->tags))
            goto out_destroy;
        d->interval_ns = d->c->interval > 0 ? (int64_t)(d->c->interval * NS_PER_S) : s->interval_ns;
        if (d->interval_ns < s->interval_ns || d->interval_ns % s->interval_ns != 0)
            gd_log(inst, GD_WARN,
                   "modbus: device '%s': interval %gs is not a multiple of the instance "
                   "interval %gs: polls may start up to one instance interval late",
                   d->c->name, (double)d->interval_ns / NS_PER_S,
                   (double)s->interval_ns / NS_PER_S);
        d->phase_ns =
            cfg->spread
                ? (int64_t)((double)d->interval_ns * (double)i / (double)(s->ndev ? s->ndev : 1))
                : 0;
    }
    rc = build_maps(s);
    if (rc == 0)
        rc = build_links(s);
    if (rc < 0)
        goto out_destroy;

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    s->lock_ok = pthread_mutex_init(&s->lock, NULL) == 0;
    s->work_ok = pthread_cond_init(&s->work_cv, &ca) == 0;
    s->done_ok = pthread_cond_init(&s->done_cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    rc = GD_ENOMEM;
    if (!s->lock_ok || !s->work_ok || !s->done_ok)
        goto out_destroy;
    rc = start_pool(s);
    if (rc < 0)
        goto out_destroy;
    gd_log(inst, GD_DEBUG, "modbus: %zu devices on %zu links, %zu register maps, %zu poll threads",
           s->ndev, s->nlinks, s->nmaps, s->nthreads);
    *state = s;
    return 0;

out_destroy:
    mb_destroy(s);
    return rc;
}

/* ---- polling ------------------------------------------------------------ */

struct poll_result {
    enum dev_status status;
    int exception;                   /* Modbus exception code, ST_EXCEPTION */
    int err;                         /* errno of the first failure */
    const struct mb_request *failed; /* the request that failed first */
    size_t requests;
    bool *req_ok;
};

static bool is_exception(int e)
{
    return e >= EMBXILFUN && e <= EMBXGTAR;
}

static bool is_connection_error(int e)
{
    return e == ECONNRESET || e == EPIPE || e == EBADF || e == ECONNREFUSED || e == ENOTCONN ||
           e == ECONNABORTED || e == EHOSTUNREACH || e == ENETUNREACH || e == EIO;
}

static const char *exception_name(int code)
{
    switch (code) {
    case 1:
        return "illegal function";
    case 2:
        return "illegal data address";
    case 3:
        return "illegal data value";
    case 4:
        return "server device failure";
    case 5:
        return "acknowledge";
    case 6:
        return "server device busy";
    case 7:
        return "negative acknowledge";
    case 8:
        return "memory parity error";
    case 10:
        return "gateway path unavailable";
    case 11:
        return "gateway target device failed to respond";
    }
    return "unknown exception";
}

static void set_timeout(modbus_t *ctx, double sec, int (*fn)(modbus_t *, uint32_t, uint32_t))
{
    uint32_t whole = (uint32_t)sec;
    uint32_t usec = (uint32_t)((sec - whole) * 1e6);
    if (whole == 0 && usec == 0)
        usec = 1000;
    fn(ctx, whole, usec);
}

static int read_once(struct link *l, const struct map *m, size_t ri)
{
    const struct mb_request *q = &m->plan.req[ri];
    if (l->frame_delay_ns > 0 && l->last_frame_ns > 0)
        sleep_until(l->last_frame_ns + l->frame_delay_ns);
    int rc;
    switch (q->kind) {
    case MB_COIL:
        rc = modbus_read_bits(l->ctx, (int)q->start, (int)q->count, l->bits + m->req_off[ri]);
        break;
    case MB_DISCRETE:
        rc = modbus_read_input_bits(l->ctx, (int)q->start, (int)q->count, l->bits + m->req_off[ri]);
        break;
    case MB_HOLDING:
        rc = modbus_read_registers(l->ctx, (int)q->start, (int)q->count, l->regs + m->req_off[ri]);
        break;
    default:
        rc = modbus_read_input_registers(l->ctx, (int)q->start, (int)q->count,
                                         l->regs + m->req_off[ri]);
        break;
    }
    int e = errno;
    l->last_frame_ns = mono_ns();
    if (rc == (int)q->count)
        return 0;
    return rc < 0 ? (e ? e : EIO) : EMBMDATA;
}

/* Log one failed request (or connect, @q NULL) of @d. */
static void log_failure(struct mb *s, const struct device *d, enum dev_status st, int err,
                        const struct mb_request *q)
{
    char what[64] = "connect";
    if (q)
        snprintf(what, sizeof(what), "read %s %u+%u", mb_kind_names[q->kind], q->start, q->count);
    if (st == ST_EXCEPTION)
        gd_log_ratelimited(s->inst, GD_WARN,
                           "modbus: device %s (unit %lld, %s): %s: exception %d (%s)", d->c->name,
                           (long long)d->c->unit_id, d->link->url, what, err - MODBUS_ENOBASE,
                           exception_name(err - MODBUS_ENOBASE));
    else
        gd_log_ratelimited(s->inst, GD_WARN, "modbus: device %s (unit %lld, %s): %s: %s (%s)",
                           d->c->name, (long long)d->c->unit_id, d->link->url, what,
                           status_names[st], modbus_strerror(err));
}

static void fail(struct mb *s, const struct device *d, struct poll_result *r, enum dev_status st,
                 int err, const struct mb_request *q)
{
    log_failure(s, d, st, err, q);
    if (r->status == ST_OK || (r->status == ST_EXCEPTION && st != ST_EXCEPTION)) {
        r->status = st;
        r->err = err;
        r->failed = q;
        if (st == ST_EXCEPTION)
            r->exception = err - MODBUS_ENOBASE;
    }
}

/* Open the link's connection if it is closed; 0 or an errno value. */
static int link_connect(struct link *l, const struct device *d)
{
    if (l->connected)
        return 0;
    set_timeout(l->ctx, d->c->response_timeout, modbus_set_response_timeout);
    if (modbus_connect(l->ctx) < 0)
        return errno ? errno : ECONNREFUSED;
    if (modbus_get_socket(l->ctx) >= FD_LIMIT) {
        modbus_close(l->ctx);
        return EMFILE;
    }
    l->connected = true;
    l->persistent = atomic_fetch_add(&persistent_open, 1) < MAX_PERSISTENT;
    if (!l->persistent)
        atomic_fetch_sub(&persistent_open, 1);
    return 0;
}

/* After a timeout or a garbled answer the device may still answer late. On
 * TCP the connection is dropped, so the late answer cannot pass for the
 * answer to the next request (of this device or another on the link); a
 * serial line is flushed. */
static void link_resync(struct link *l)
{
    if (l->u.rtu)
        modbus_flush(l->ctx);
    else
        link_close(l);
}

/* Run the reads of device @d; results stay in the link's buffers. */
static void read_device(struct mb *s, struct device *d, struct poll_result *r)
{
    struct link *l = d->link;
    const struct map *m = d->map;
    for (size_t ri = 0; ri < m->plan.nreq; ri++) {
        int e = 0;
        for (int64_t attempt = 0; attempt <= d->c->retries; attempt++) {
            e = link_connect(l, d);
            if (e != 0) {
                fail(s, d, r, ST_CONNECTION, e, r->requests ? &m->plan.req[ri] : NULL);
                return;
            }
            modbus_set_slave(l->ctx, (int)d->c->unit_id);
            set_timeout(l->ctx, d->c->response_timeout, modbus_set_response_timeout);
            set_timeout(l->ctx, d->c->byte_timeout, modbus_set_byte_timeout);
            r->requests++;
            e = read_once(l, m, ri);
            if (e == 0 || is_exception(e) || is_connection_error(e))
                break;
            link_resync(l);
            if (atomic_load_explicit(&s->closing, memory_order_relaxed))
                break;
        }
        if (e == 0) {
            r->req_ok[ri] = true;
        } else if (is_exception(e)) {
            fail(s, d, r, ST_EXCEPTION, e, &m->plan.req[ri]);
        } else if (is_connection_error(e)) {
            fail(s, d, r, ST_CONNECTION, e, &m->plan.req[ri]);
            link_close(l);
            return;
        } else {
            fail(s, d, r, e == ETIMEDOUT ? ST_TIMEOUT : ST_PROTOCOL, e, &m->plan.req[ri]);
            return; /* an unresponsive device: do not spend the link on its other reads */
        }
    }
}

static int add_value(gd_point *p, const char *key, const struct mb_value *v)
{
    switch (v->type) {
    case MB_V_INT:
        return gd_point_i64(p, key, v->v.i);
    case MB_V_UINT:
        return gd_point_u64(p, key, v->v.u);
    case MB_V_BOOL:
        return gd_point_bool(p, key, v->v.b);
    case MB_V_STRING:
        return gd_point_str_n(p, key, v->v.s.ptr, v->v.s.len);
    default:
        return gd_point_f64(p, key, v->v.f);
    }
}

static int tag_all(gd_point *p, const gd_kvlist *kv)
{
    for (size_t i = 0; kv && i < kv->n; i++) {
        int rc = gd_point_tag(p, kv->v[i].key, kv->v[i].value);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int device_tags(const struct device *d, gd_point *p, bool with_profile)
{
    int rc = 0;
    if (with_profile && d->map->profile)
        rc = tag_all(p, &d->map->profile->tags);
    if (rc == 0)
        rc = tag_all(p, &d->c->tags);
    if (rc == 0)
        rc = gd_point_tag(p, "device", d->c->name);
    return rc;
}

/* Decode the fields of every read that succeeded into points of @b. */
static int emit_fields(struct mb *s, struct device *d, const struct poll_result *r, int64_t ts,
                       gd_batch *b)
{
    const struct map *m = d->map;
    const struct link *l = d->link;
    char str[2 * MAX_STRING_REGS + 1];
    for (size_t g = 0; g < m->ng; g++) {
        gd_point *p = NULL;
        for (size_t i = 0; i < m->nf; i++) {
            const struct field *f = &m->f[i];
            if (f->group != g || !r->req_ok[f->req])
                continue;
            size_t slot = m->req_off[f->req] + (f->address - m->plan.req[f->req].start);
            struct mb_value v;
            int rc = mb_kind_is_bit(f->kind) ? mb_decode_bit(&f->spec, l->bits[slot] != 0, &v)
                                             : mb_decode_regs(&f->spec, l->regs + slot, str, &v);
            if (rc < 0) {
                gd_log_ratelimited(s->inst, GD_WARN,
                                   "modbus: device %s (unit %lld): field %s at %s %u: value "
                                   "cannot be represented as %s",
                                   d->c->name, (long long)d->c->unit_id, f->rc->field,
                                   mb_kind_names[f->kind], f->address, mb_as_names[f->spec.as]);
                gd_count_error(s->inst);
                continue;
            }
            if (!p) {
                p = gd_batch_add(b, m->g[g].measurement, ts);
                if (!p)
                    return GD_ENOMEM;
                rc = device_tags(d, p, true);
                if (rc == 0)
                    rc = tag_all(p, m->g[g].tags);
                if (rc < 0) {
                    gd_batch_drop_last(b); /* no point without its tags */
                    return rc;
                }
            }
            rc = add_value(p, f->rc->field, &v);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int emit_status(struct mb *s, struct device *d, const struct poll_result *r, int64_t ts,
                       double resp_ms, double late_ms, gd_batch *b)
{
    if (!s->cfg->status_measurement[0])
        return 0;
    gd_point *p = gd_batch_add(b, s->cfg->status_measurement, ts);
    if (!p)
        return GD_ENOMEM;
    int rc = device_tags(d, p, false);
    if (rc == 0)
        rc = gd_point_str(p, "status", status_names[r->status]);
    if (rc == 0)
        rc = gd_point_i64(p, "unit_id", d->c->unit_id);
    if (rc == 0)
        rc = gd_point_f64(p, "response_time_ms", resp_ms);
    if (rc == 0)
        rc = gd_point_f64(p, "lateness_ms", late_ms);
    if (rc == 0)
        rc = gd_point_i64(p, "requests", (int64_t)r->requests);
    if (rc == 0)
        rc = gd_point_i64(p, "consecutive_failures", d->consecutive);
    if (rc == 0)
        rc = gd_point_i64(p, "failures", d->failures);
    if (rc == 0)
        rc = gd_point_i64(p, "skipped", d->skipped);
    if (rc == 0 && d->last_good_ns)
        rc = gd_point_i64(p, "last_good", d->last_good_ns);
    if (rc == 0 && r->status == ST_EXCEPTION)
        rc = gd_point_i64(p, "exception_code", r->exception);
    if (rc == 0 && r->status != ST_OK)
        rc = gd_point_str(p, "error",
                          r->status == ST_EXCEPTION ? exception_name(r->exception)
                                                    : modbus_strerror(r->err));
    if (rc < 0)
        gd_batch_drop_last(b); /* never half a point */
    return rc;
}

/* The next occurrence of @d after @due on its grid, not before @not_before. */
static int64_t next_occurrence(struct mb *s, struct device *d, int64_t due, int64_t not_before)
{
    int64_t iv = d->interval_ns;
    int64_t wall = due + s->wall_minus_mono - d->phase_ns;
    int64_t next = (wall / iv + 1) * iv + d->phase_ns - s->wall_minus_mono;
    if (next < not_before) {
        int64_t k = (not_before - next + iv - 1) / iv;
        d->skipped += k;
        next += k * iv;
    }
    return next;
}

/* Poll one device (the link's connection is ours) and schedule its next poll. */
static void poll_device(struct mb *s, struct device *d, bool *reqok, gd_batch *b)
{
    struct poll_result r = {.req_ok = reqok};
    memset(reqok, 0, d->map->plan.nreq * sizeof(*reqok));
    int64_t start = mono_ns();
    int64_t ts = gd_now_ns();
    int64_t due = d->next_due;
    read_device(s, d, &r);
    int64_t end = mono_ns();

    if (r.status == ST_OK) {
        d->consecutive = 0;
        d->unreachable = 0;
        d->last_good_ns = ts;
    } else {
        d->consecutive++;
        d->failures++;
        if (r.status != ST_EXCEPTION)
            d->unreachable++;
        else
            d->unreachable = 0;
        gd_count_error(s->inst);
    }
    /* An unreachable device waits interval * 2^k (up to backoff_max) before
     * its next attempt, so a dead slave on a bus costs the others little. */
    int64_t not_before = end;
    if (d->unreachable >= BACKOFF_AFTER) {
        double back = (double)d->interval_ns *
                      ldexp(1.0, (int)(d->unreachable - 1 < 20 ? d->unreachable - 1 : 20));
        double cap = s->cfg->backoff_max * NS_PER_S;
        if (back > cap)
            back = cap;
        not_before = end + (int64_t)back;
    }
    d->next_due = next_occurrence(s, d, due, not_before);

    int rc = emit_fields(s, d, &r, ts, b);
    if (rc == 0)
        rc = emit_status(s, d, &r, ts, (double)(end - start) / NS_PER_MS,
                         (double)(start - due) / NS_PER_MS, b);
    if (rc < 0)
        gd_log_ratelimited(s->inst, GD_WARN, "modbus: device %s: cannot build points: %s",
                           d->c->name, gd_strerror(rc));
}

/* Poll the devices of @l that are due, one after another. */
static void run_link(struct mb *s, struct link *l, int64_t horizon)
{
    gd_batch *b = gd_batch_new(2 * l->ndev);
    size_t maxreq = 1;
    for (size_t i = 0; i < l->ndev; i++)
        if (l->dev[i]->map->plan.nreq > maxreq)
            maxreq = l->dev[i]->map->plan.nreq;
    bool *reqok = calloc(maxreq, sizeof(*reqok));
    if (!b || !reqok) {
        gd_batch_unref(b);
        free(reqok);
        gd_count_error(s->inst);
        for (size_t i = 0; i < l->ndev; i++) /* try again next time */
            if (l->dev[i]->next_due < horizon)
                l->dev[i]->next_due = next_occurrence(s, l->dev[i], l->dev[i]->next_due, 0);
        return;
    }
    for (;;) {
        struct device *d = NULL;
        int64_t now = mono_ns();
        for (size_t i = 0; i < l->ndev; i++)
            if (l->dev[i]->next_due <= now && l->dev[i]->next_due < horizon &&
                (!d || l->dev[i]->next_due < d->next_due))
                d = l->dev[i];
        if (!d || atomic_load_explicit(&s->closing, memory_order_relaxed))
            break;
        poll_device(s, d, reqok, b);
    }
    if (!l->persistent)
        link_close(l);
    free(reqok);
    if (gd_batch_len(b) == 0) {
        gd_batch_unref(b);
        return;
    }
    if (atomic_load_explicit(&s->closing, memory_order_relaxed)) {
        gd_count_drop(s->inst, "shutdown", gd_batch_len(b));
        gd_batch_unref(b);
        return;
    }
    if (gd_emit(s->inst, b) == GD_ESHUTDOWN) {
        pthread_mutex_lock(&s->lock);
        s->horizon = 0; /* the instance stopped: poll no more */
        pthread_mutex_unlock(&s->lock);
    }
}

static void *pool_main(void *arg)
{
    struct mb *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->closing) {
        struct link *l = s->nheap ? s->heap[0] : NULL;
        if (!l || l->next_due >= s->horizon) {
            pthread_cond_wait(&s->work_cv, &s->lock);
            continue;
        }
        int64_t now = mono_ns();
        if (l->next_due > now) {
            struct timespec ts = {.tv_sec = l->next_due / NS_PER_S,
                                  .tv_nsec = l->next_due % NS_PER_S};
            pthread_cond_timedwait(&s->work_cv, &s->lock, &ts);
            continue;
        }
        heap_pop(s);
        l->busy = true;
        l->run_due = l->next_due;
        int64_t horizon = s->horizon;
        if (s->nheap) /* someone else waits for the next link */
            pthread_cond_signal(&s->work_cv);
        pthread_mutex_unlock(&s->lock);

        run_link(s, l, horizon);

        pthread_mutex_lock(&s->lock);
        l->busy = false;
        link_update_due(l);
        heap_push(s, l);
        if (l->heap_pos == 0)
            pthread_cond_signal(&s->work_cv);
        pthread_cond_broadcast(&s->done_cv);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* True while a poll due at or before @t is waiting or running. */
static bool polls_pending(const struct mb *s, int64_t t)
{
    for (size_t i = 0; i < s->nlinks; i++) {
        const struct link *l = &s->links[i];
        if (l->busy ? l->run_due <= t : l->next_due <= t)
            return true;
    }
    return false;
}

static int mb_collect(void *state, gd_batch *out)
{
    struct mb *s = state;
    (void)out; /* polls hand their points over with gd_emit() as they finish */
    int64_t now = mono_ns();
    pthread_mutex_lock(&s->lock);
    if (!s->started) {
        /* The first window polls every device at once (so --once shows all
         * of them); later ones follow each device's grid. */
        s->wall_minus_mono = gd_now_ns() - now;
        for (size_t i = 0; i < s->ndev; i++)
            s->dev[i].next_due = now;
        for (size_t k = 0; k < s->nlinks; k++) {
            link_update_due(&s->links[k]);
            heap_push(s, &s->links[k]);
        }
        s->started = true;
    }
    s->horizon = now + s->interval_ns;
    pthread_cond_broadcast(&s->work_cv);
    struct timespec dl;
    int64_t deadline = now + (int64_t)(COLLECT_WAIT_SHARE * (double)s->interval_ns);
    dl.tv_sec = deadline / NS_PER_S;
    dl.tv_nsec = deadline % NS_PER_S;
    while (polls_pending(s, now) && !s->closing)
        if (pthread_cond_timedwait(&s->done_cv, &s->lock, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* ---- descriptor --------------------------------------------------------- */

static const struct gd_input_ops mb_ops = {
    .struct_size = sizeof(struct gd_input_ops),
    .init = mb_init,
    .destroy = mb_destroy,
    .collect = mb_collect,
};

static const struct gd_plugin mb_plugin = {
    GD_PLUGIN_ABI,
    .name = "modbus",
    .version = "0.1.0",
    .kind = GD_KIND_INPUT,
    .flags = GD_PLUGIN_TEST_INIT, /* init() plans and checks; it connects to nothing */
    .summary = "Modbus TCP and RTU devices: register maps, profiles, coalesced reads",
    .options = mb_options,
    .config_size = sizeof(struct mb_cfg),
    .ops = &mb_ops,
};

GD_PLUGIN_ENTRY
{
    return &mb_plugin;
}
