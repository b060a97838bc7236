/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim.c - simulated sensor chambers: a polled input producing realistic
 * temperature, humidity, pressure and CO2 readings.
 *
 * It is also the benchmark source (`sim -> null`), so the per-point path is
 * kept cheap: device strings are built once at init, randomness comes from
 * splitmix64, noise is a sum of uniforms and nothing calls libm or snprintf
 * per point.
 */
#include <gatherd/gatherd.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
/* Upper bound of points one collect may emit (rate * interval is clamped). */
#define MAX_POINTS_PER_COLLECT 100000000ULL
/* Continuous mode: longest sleep of one collect, so shutdown stays prompt. */
#define MAX_SLEEP_NS (100LL * 1000 * 1000)
/* Continuous rate mode: backlog cap after a stall, in seconds of points. */
#define MAX_CATCHUP_S 1.0
/* sd of the sum of four uniform 16-bit integers: 65536 / sqrt(3). */
#define GAUSS4_SD 37837.2270

struct sim_cfg {
    int64_t chambers;
    char *device_prefix;
    char *measurement;
    char *site;
    int64_t points_per_collect;
    double rate;
    int64_t seed;
    double fault_rate;
    int64_t stop_after;
    bool exit_when_done;
};

/* A drift step is drawn as a 16-bit integer centred on 0: scale it once. */
#define STEP(max_step) ((max_step) / 32767.5)

/* How one sensor of a chamber behaves: value = base + drift + noise. The
 * ranges keep base +- drift_max +- 3.47 noise_sd inside the sensor's
 * physical range (humidity 0..100 %, CO2 > 0), so no clamping is needed. */
struct field_model {
    const char *key;
    double base_lo, base_hi; /* per-chamber base, drawn uniformly at init */
    double drift_step;       /* largest random-walk step per reading, STEP() */
    double drift_max;        /* the walk is clamped to +-drift_max */
    double noise_sd;         /* per-reading noise, roughly gaussian */
    double scale;            /* resolution is 1/scale (0.01 C ...) */
};

enum { F_TEMP, F_HUM, F_PRESS, F_CO2, NFIELDS };

static const struct field_model models[NFIELDS] = {
    [F_TEMP] = {.key = "temp_c",
                .base_lo = 18.0,
                .base_hi = 26.0,
                .drift_step = STEP(0.02),
                .drift_max = 1.5,
                .noise_sd = 0.05,
                .scale = 100.0},
    [F_HUM] = {.key = "humidity_pct",
               .base_lo = 35.0,
               .base_hi = 60.0,
               .drift_step = STEP(0.05),
               .drift_max = 5.0,
               .noise_sd = 0.3,
               .scale = 10.0},
    [F_PRESS] = {.key = "pressure_hpa",
                 .base_lo = 1008.0,
                 .base_hi = 1018.0,
                 .drift_step = STEP(0.02),
                 .drift_max = 3.0,
                 .noise_sd = 0.05,
                 .scale = 100.0},
    [F_CO2] = {.key = "co2_ppm",
               .base_lo = 400.0,
               .base_hi = 900.0,
               .drift_step = STEP(1.0),
               .drift_max = 80.0,
               .noise_sd = 5.0,
               .scale = 1.0},
};

struct chamber {
    const char *device; /* into sim.names */
    uint32_t device_len;
    double base[NFIELDS];
    double drift[NFIELDS];
};

struct sim {
    gd_instance *inst;
    const struct sim_cfg *cfg;
    struct chamber *ch;
    size_t nch;
    size_t cursor; /* next chamber to read */
    char *names;   /* "chamber-0\0chamber-1\0..." */
    size_t meas_len;
    size_t site_len;
    uint64_t rng;
    uint64_t fault_thr; /* fault when (rand >> 11) < fault_thr; 0: never */
    double acc;         /* rate mode: fractional points carried over */
    int64_t last_mono_ns;
    int64_t last_ts; /* newest timestamp emitted, keeps (device, time) unique */
    uint64_t emitted;
    bool finished;
};

static const struct gd_option sim_options[] = {
    GD_OPT_INT("chambers", "4", 1, 1000000, 0, offsetof(struct sim_cfg, chambers),
               "number of simulated chambers (one series each)"),
    GD_OPT_STRING("device_prefix", "chamber-", 0, offsetof(struct sim_cfg, device_prefix),
                  "device tag is this prefix followed by the chamber index"),
    GD_OPT_STRING("measurement", "chamber", 0, offsetof(struct sim_cfg, measurement),
                  "measurement name of every point"),
    GD_OPT_STRING("site", NULL, 0, offsetof(struct sim_cfg, site),
                  "when set, added to every point as tag \"site\""),
    GD_OPT_INT("points_per_collect", "0", 0, 100000000, 0,
               offsetof(struct sim_cfg, points_per_collect),
               "points per collect; 0: one per chamber (or driven by rate)"),
    GD_OPT_DOUBLE("rate", "0", 0, 1e9, 0, offsetof(struct sim_cfg, rate),
                  "points per second when points_per_collect is 0; 0: off"),
    GD_OPT_INT("seed", "0", 0, 0, 0, offsetof(struct sim_cfg, seed),
               "random seed for reproducible data; 0: time-based"),
    GD_OPT_DOUBLE("fault_rate", "0", 0, 1, 0, offsetof(struct sim_cfg, fault_rate),
                  "probability per point of a sensor fault (field fault, no temp_c)"),
    GD_OPT_INT("stop_after", "0", 0, 1e15, 0, offsetof(struct sim_cfg, stop_after),
               "emit nothing after this many points in total; 0: unlimited"),
    GD_OPT_BOOL("exit_when_done", "false", 0, offsetof(struct sim_cfg, exit_when_done),
                "request a graceful daemon shutdown once stop_after is reached"),
    GD_OPT_END,
};

/* ---- randomness -------------------------------------------------------- */

static inline uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline double unit01(uint64_t r)
{
    return (double)(r >> 11) * 0x1p-53;
}

/* Approximately N(0, 1): Irwin-Hall sum of the four 16-bit lanes of @r
 * (|x| < 3.47), added two lanes at a time. */
static inline double gauss(uint64_t r)
{
    const uint64_t lanes = 0x0000ffff0000ffffULL;
    uint64_t pairs = (r & lanes) + ((r >> 16) & lanes);
    int64_t sum = (int64_t)((pairs & 0xffffffffULL) + (pairs >> 32)) - 2 * 65535;
    return (double)sum * (1.0 / GAUSS4_SD);
}

/* Written so the compiler emits maxsd/minsd, not branches. */
static inline double clamp(double v, double lo, double hi)
{
    v = v > lo ? v : lo;
    return v < hi ? v : hi;
}

/* Round to the sensor's resolution: short, realistic numbers ("21.53").
 * Every model value is positive, so truncating x + 0.5 rounds. The division
 * (not a multiplication by 1/scale) gives the double nearest the decimal. */
static inline double quantize(double v, double scale)
{
    return (double)(int64_t)(v * scale + 0.5) / scale;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / NS_PER_S, .tv_nsec = ns % NS_PER_S};
    nanosleep(&ts, NULL);
}

/* ---- lifecycle --------------------------------------------------------- */

static bool is_line_safe(const char *s)
{
    return strchr(s, '\n') == NULL && strchr(s, '\r') == NULL;
}

static int check_strings(gd_instance *inst, const struct sim_cfg *cfg)
{
    if (!cfg->measurement || !cfg->measurement[0] || !is_line_safe(cfg->measurement)) {
        gd_log(inst, GD_ERROR, "sim: measurement must be a non-empty single line");
        return GD_ECONFIG;
    }
    if (!cfg->device_prefix || !is_line_safe(cfg->device_prefix)) {
        gd_log(inst, GD_ERROR, "sim: device_prefix must be a single line");
        return GD_ECONFIG;
    }
    if (cfg->site && (!cfg->site[0] || !is_line_safe(cfg->site))) {
        gd_log(inst, GD_ERROR, "sim: site must be a non-empty single line (or unset)");
        return GD_ECONFIG;
    }
    return 0;
}

/* Build every device string once, in one allocation. */
static int build_chambers(struct sim *s, const char *prefix)
{
    size_t plen = strlen(prefix);
    size_t per = plen + 8 + 1; /* index < 10^7, NUL */
    if (plen > UINT32_MAX - 16 || s->nch > SIZE_MAX / per)
        return GD_ERANGE;
    s->names = malloc(s->nch * per);
    s->ch = calloc(s->nch, sizeof(*s->ch));
    if (!s->names || !s->ch)
        return GD_ENOMEM;

    char *w = s->names;
    for (size_t i = 0; i < s->nch; i++) {
        struct chamber *c = &s->ch[i];
        int n = snprintf(w, per, "%s%zu", prefix, i);
        c->device = w;
        c->device_len = (uint32_t)n;
        w += n + 1;
        for (int f = 0; f < NFIELDS; f++) {
            const struct field_model *m = &models[f];
            c->base[f] = m->base_lo + unit01(splitmix64(&s->rng)) * (m->base_hi - m->base_lo);
            c->drift[f] = 0.0;
        }
    }
    return 0;
}

static void sim_destroy(void *state)
{
    struct sim *s = state;
    if (!s)
        return;
    free(s->ch);
    free(s->names);
    free(s);
}

static int sim_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct sim_cfg *cfg = cfgp;
    int rc = check_strings(inst, cfg);
    if (rc < 0)
        return rc;

    struct sim *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    s->nch = (size_t)cfg->chambers;
    s->meas_len = strlen(cfg->measurement);
    s->site_len = cfg->site ? strlen(cfg->site) : 0;
    s->rng = cfg->seed ? (uint64_t)cfg->seed
                       : (uint64_t)gd_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)s;
    uint64_t seed = s->rng;
    s->fault_thr = (uint64_t)(cfg->fault_rate * 0x1p53);
    s->last_ts = INT64_MIN;

    rc = build_chambers(s, cfg->device_prefix);
    if (rc < 0) {
        gd_log(inst, GD_ERROR, "sim: cannot set up %zu chambers: %s", s->nch, gd_strerror(rc));
        goto out_destroy;
    }
    if (cfg->points_per_collect > 0 && cfg->rate > 0)
        gd_log(inst, GD_WARN, "sim: rate is ignored because points_per_collect is set");
    gd_log(inst, GD_DEBUG, "sim: %zu chambers, seed %" PRIu64, s->nch, seed);
    *state = s;
    return 0;

out_destroy:
    sim_destroy(s);
    return rc;
}

/* ---- collect ----------------------------------------------------------- */

/* Rate mode: how many points are due now, carrying the fraction over. In
 * continuous mode (interval 0) the wall time since the last collect decides,
 * sleeping briefly rather than spinning when less than one point is due. */
static uint64_t rate_points_due(struct sim *s, double interval)
{
    double rate = s->cfg->rate;
    if (interval > 0) {
        s->acc += rate * interval;
    } else {
        int64_t now = mono_ns();
        if (s->last_mono_ns == 0)
            s->last_mono_ns = now;
        double due = s->acc + rate * (double)(now - s->last_mono_ns) / NS_PER_S;
        if (due < 1.0) {
            double wait_ns = (1.0 - due) / rate * NS_PER_S;
            sleep_ns(wait_ns < MAX_SLEEP_NS ? (int64_t)wait_ns + 1 : MAX_SLEEP_NS);
            now = mono_ns();
        }
        s->acc += rate * (double)(now - s->last_mono_ns) / NS_PER_S;
        s->last_mono_ns = now;
        if (s->acc > rate * MAX_CATCHUP_S + 1.0)
            s->acc = rate * MAX_CATCHUP_S + 1.0;
    }
    double whole =
        s->acc < (double)MAX_POINTS_PER_COLLECT ? s->acc : (double)MAX_POINTS_PER_COLLECT;
    uint64_t n = (uint64_t)whole;
    s->acc -= (double)n;
    if (s->acc >= 1.0) {
        gd_log_ratelimited(s->inst, GD_WARN,
                           "sim: rate too high, capped at %llu points per collect",
                           MAX_POINTS_PER_COLLECT);
        s->acc -= (double)(uint64_t)s->acc;
    }
    return n;
}

static uint64_t points_due(struct sim *s, double interval)
{
    if (s->cfg->points_per_collect > 0)
        return (uint64_t)s->cfg->points_per_collect;
    if (s->cfg->rate > 0)
        return rate_points_due(s, interval);
    return s->nch;
}

/* One sensor of chamber @c: step the drift by the 16-bit @step, add noise
 * from @noise. Inlined with a constant @f so the model folds into constants. */
static inline double sense(struct chamber *c, int f, uint64_t step, uint64_t noise)
{
    const struct field_model *m = &models[f];
    double u = (double)(step & 0xffff) - 32767.5;
    double d = clamp(c->drift[f] + u * m->drift_step, -m->drift_max, m->drift_max);
    c->drift[f] = d;
    return quantize(c->base[f] + d + gauss(noise) * m->noise_sd, m->scale);
}

/* Advance chamber @c by one reading into @v. */
static void read_sensors(struct sim *s, struct chamber *c, double v[NFIELDS])
{
    uint64_t steps = splitmix64(&s->rng); /* four 16-bit drift steps */
    v[F_TEMP] = sense(c, F_TEMP, steps, splitmix64(&s->rng));
    v[F_HUM] = sense(c, F_HUM, steps >> 16, splitmix64(&s->rng));
    v[F_PRESS] = sense(c, F_PRESS, steps >> 32, splitmix64(&s->rng));
    v[F_CO2] = sense(c, F_CO2, steps >> 48, splitmix64(&s->rng));
}

static int add_reading(struct sim *s, gd_batch *out, struct chamber *c, int64_t ts)
{
    double v[NFIELDS];
    bool fault = s->fault_thr && (splitmix64(&s->rng) >> 11) < s->fault_thr;
    read_sensors(s, c, v);

    gd_point *p = gd_batch_add_n(out, s->cfg->measurement, s->meas_len, ts);
    if (!p)
        return GD_ENOMEM;
    int rc = gd_point_tag_n(p, "device", 6, c->device, c->device_len);
    if (rc == 0 && s->cfg->site)
        rc = gd_point_tag_n(p, "site", 4, s->cfg->site, s->site_len);
    if (rc < 0)
        return rc;
    if (!fault) /* a fault loses the temperature reading */
        rc = gd_point_f64(p, models[F_TEMP].key, v[F_TEMP]);
    if (rc == 0)
        rc = gd_point_f64(p, models[F_HUM].key, v[F_HUM]);
    if (rc == 0)
        rc = gd_point_f64(p, models[F_PRESS].key, v[F_PRESS]);
    if (rc == 0)
        rc = gd_point_f64(p, models[F_CO2].key, v[F_CO2]);
    if (rc == 0 && fault)
        rc = gd_point_str_n(p, "fault", "sensor_timeout", 14);
    return rc;
}

static void finish(struct sim *s)
{
    s->finished = true;
    gd_log(s->inst, GD_INFO, "sim: stop_after reached (%" PRIu64 " points)", s->emitted);
    if (s->cfg->exit_when_done)
        gd_shutdown_request(s->inst, "sim: stop_after reached");
}

static int sim_collect(void *state, gd_batch *out)
{
    struct sim *s = state;
    double interval = gd_instance_interval(s->inst);

    if (s->finished) {
        if (interval <= 0)
            sleep_ns(MAX_SLEEP_NS); /* nothing left to do: do not spin */
        return 0;
    }
    uint64_t n = points_due(s, interval);
    uint64_t limit = (uint64_t)s->cfg->stop_after;
    if (limit && n > limit - s->emitted)
        n = limit - s->emitted;
    if (n == 0)
        return 0;

    /* Spread the points evenly over the last interval, ending now (1 ns
     * apart when continuous), strictly after anything emitted before. */
    int64_t step = 1;
    if (interval > 0) {
        step = (int64_t)(interval * NS_PER_S) / (int64_t)n;
        if (step < 1)
            step = 1;
    }
    int64_t ts = gd_now_ns() - (int64_t)(n - 1) * step;
    if (ts <= s->last_ts)
        ts = s->last_ts + 1;

    int rc = 0;
    uint64_t added = 0;
    for (; added < n; added++, ts += step) {
        rc = add_reading(s, out, &s->ch[s->cursor], ts);
        s->last_ts = ts; /* even a half-built point holds its timestamp */
        if (++s->cursor == s->nch)
            s->cursor = 0;
        if (rc < 0)
            break;
    }
    s->emitted += added;
    if (rc < 0)
        gd_log_ratelimited(s->inst, GD_WARN, "sim: cannot build point: %s", gd_strerror(rc));
    if (limit && s->emitted >= limit)
        finish(s);
    return rc;
}

/* ---- descriptor -------------------------------------------------------- */

static const struct gd_input_ops sim_ops = {
    .struct_size = sizeof(struct gd_input_ops),
    .init = sim_init,
    .destroy = sim_destroy,
    .collect = sim_collect,
    .start = NULL,
    .stop = NULL,
};

static const struct gd_plugin sim_plugin = {
    GD_PLUGIN_ABI,
    .name = "sim",
    .version = "0.1.0",
    .kind = GD_KIND_INPUT,
    .summary = "simulated sensor chambers (temperature, humidity, pressure, CO2)",
    .options = sim_options,
    .config_size = sizeof(struct sim_cfg),
    .ops = &sim_ops,
};

GD_PLUGIN_ENTRY
{
    return &sim_plugin;
}
