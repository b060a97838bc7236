/* SPDX-License-Identifier: Apache-2.0 */
/* End to end: the built daemon running sim -> scale -> aggregate ->
 * threshold -> file, checked point by point against values the test
 * computes itself.
 *
 * The first run writes sim's readings (a fixed seed) with no processors; the
 * second runs the chain on the same readings (same seed, new timestamps).
 * The test checks that the originals arrive converted (temp_c in °C becomes
 * temp_f in °F, the rest unchanged), recomputes every window's summary from
 * them, and replays the alert rule over those summaries. */
#include "harness.h"
#include <criterion/criterion.h>
#include <math.h> /* INFINITY */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(processors, .init = gdt_setup, .fini = gdt_teardown, .timeout = 300);

#define CHAMBERS   3
#define COLLECTS   30
#define NPOINTS    (CHAMBERS * COLLECTS)
#define PERIOD_NS  1000000000LL
#define MAX_FIELDS 8

/* One line of line protocol, as the file output writes it: no escapes,
 * no spaces in values (the test controls every name). */
struct pt {
    char meas[32];
    char dev[32];
    char state[16]; /* tag "state" of alerts */
    char field[32]; /* tag "field" of alerts */
    int64_t ts;
    size_t nf;
    char key[MAX_FIELDS][32];
    double num[MAX_FIELDS];
    char str[MAX_FIELDS][16];
};

static void parse_line(char *line, struct pt *p)
{
    memset(p, 0, sizeof(*p));
    char *sp1 = strchr(line, ' ');
    cr_assert_not_null(sp1, "bad line: %s", line);
    char *sp2 = strchr(sp1 + 1, ' ');
    cr_assert_not_null(sp2, "bad line: %s", line);
    *sp1 = *sp2 = '\0';
    p->ts = strtoll(sp2 + 1, NULL, 10);
    char *save;
    char *tok = strtok_r(line, ",", &save);
    snprintf(p->meas, sizeof(p->meas), "%s", tok);
    while ((tok = strtok_r(NULL, ",", &save))) {
        char *eq = strchr(tok, '=');
        cr_assert_not_null(eq);
        *eq = '\0';
        if (strcmp(tok, "device") == 0)
            snprintf(p->dev, sizeof(p->dev), "%s", eq + 1);
        else if (strcmp(tok, "state") == 0)
            snprintf(p->state, sizeof(p->state), "%s", eq + 1);
        else if (strcmp(tok, "field") == 0)
            snprintf(p->field, sizeof(p->field), "%s", eq + 1);
    }
    for (tok = strtok_r(sp1 + 1, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        cr_assert_not_null(eq);
        cr_assert_lt(p->nf, MAX_FIELDS);
        *eq = '\0';
        snprintf(p->key[p->nf], sizeof(p->key[0]), "%s", tok);
        if (eq[1] == '"')
            snprintf(p->str[p->nf], sizeof(p->str[0]), "%.*s", (int)strlen(eq + 2) - 1, eq + 2);
        else
            p->num[p->nf] = strtod(eq + 1, NULL);
        p->nf++;
    }
}

static size_t parse_file(const char *path, struct pt **out)
{
    char *text = gdt_read_file(path);
    size_t n = 0, cap = 64;
    struct pt *v = malloc(cap * sizeof(*v));
    char *save;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (n == cap)
            v = realloc(v, (cap *= 2) * sizeof(*v));
        parse_line(line, &v[n++]);
    }
    free(text);
    *out = v;
    return n;
}

static bool has(const struct pt *p, const char *key, double *v)
{
    for (size_t i = 0; i < p->nf; i++)
        if (strcmp(p->key[i], key) == 0) {
            if (v)
                *v = p->num[i];
            return true;
        }
    return false;
}

static double num(const struct pt *p, const char *key)
{
    double v = 0;
    cr_assert(has(p, key, &v), "%s has no field %s", p->meas, key);
    return v;
}

static const char *str(const struct pt *p, const char *key)
{
    for (size_t i = 0; i < p->nf; i++)
        if (strcmp(p->key[i], key) == 0)
            return p->str[i];
    cr_assert_fail("%s has no field %s", p->meas, key);
    return NULL;
}

/* (No libm here: the test links only what the harness needs.) */
static double dmin(double a, double b)
{
    return a < b ? a : b;
}

static double dmax(double a, double b)
{
    return a > b ? a : b;
}

static double dabs(double a)
{
    return a < 0 ? -a : a;
}

static void assert_close(double got, double want, const char *what)
{
    cr_assert(dabs(got - want) <= 1e-9 * dmax(1, dabs(want)), "%s: got %.17g, want %.17g", what,
              got, want);
}

static const char *sim_input =
    "inputs = ( { plugin = \"sim\"; name = \"chambers\"; interval = 0.1; chambers = %d;\n"
    "             seed = 7; stop_after = %d; exit_when_done = true; } );\n";

static void run(const char *conf_text)
{
    const char *conf = gdt_path("gatherd.conf");
    gdt_write_file(conf, conf_text);
    int rc = gdt_wait_exit(gdt_spawn(conf), 60);
    char *err = gdt_read_file(gdt_path("daemon.err"));
    cr_assert_eq(rc, 0, "gatherd exited with %d:\n%s", rc, err);
    free(err);
}

static char *daemon_log(void)
{
    return gdt_read_file(gdt_path("daemon.err"));
}

/* The summary the test expects for one (device, window). */
struct win {
    char dev[32];
    int64_t start;
    size_t n;
    double sum, min, max;
    const struct pt *got;
};

static struct win *win_of(struct win *w, size_t *nw, const char *dev, int64_t start)
{
    for (size_t i = 0; i < *nw; i++)
        if (w[i].start == start && strcmp(w[i].dev, dev) == 0)
            return &w[i];
    struct win *n = &w[(*nw)++];
    memset(n, 0, sizeof(*n));
    snprintf(n->dev, sizeof(n->dev), "%s", dev);
    n->start = start;
    return n;
}

static int by_dev_start(const void *a, const void *b)
{
    const struct win *x = a, *y = b;
    int c = strcmp(x->dev, y->dev);
    return c ? c : (x->start > y->start) - (x->start < y->start);
}

Test(processors, sim_aggregate_threshold_file_point_by_point)
{
    char conf[4096];

    /* Run 1: the readings alone. */
    int n = snprintf(conf, sizeof(conf), "global = { log_level = \"info\"; };\n");
    n += snprintf(conf + n, sizeof(conf) - n, sim_input, CHAMBERS, NPOINTS);
    snprintf(conf + n, sizeof(conf) - n,
             "outputs = ( { plugin = \"file\"; name = \"raw\"; path = \"%s\"; } );\n",
             gdt_path("raw.lp"));
    run(conf);
    struct pt *raw;
    size_t nraw = parse_file(gdt_path("raw.lp"), &raw);
    cr_assert_eq(nraw, NPOINTS);

    /* The warning limit: halfway between the coolest and warmest chamber, so
     * some windows are above it and some below. */
    double lo = INFINITY, hi = -INFINITY;
    for (int c = 0; c < CHAMBERS; c++) {
        double sum = 0;
        size_t k = 0;
        char dev[32];
        snprintf(dev, sizeof(dev), "chamber-%d", c);
        for (size_t i = 0; i < nraw; i++)
            if (strcmp(raw[i].dev, dev) == 0) {
                sum += num(&raw[i], "temp_c");
                k++;
            }
        cr_assert_gt(k, 0);
        lo = dmin(lo, sum / (double)k);
        hi = dmax(hi, sum / (double)k);
    }
    double limit = (double)(long long)(((lo + hi) / 2 * 1.8 + 32) * 100 + 0.5) / 100; /* °F */

    /* Run 2: the chain. */
    n = snprintf(conf, sizeof(conf), "global = { log_level = \"info\"; };\n");
    n += snprintf(conf + n, sizeof(conf) - n, sim_input, CHAMBERS, NPOINTS);
    snprintf(
        conf + n, sizeof(conf) - n,
        "processors = (\n"
        "  { plugin = \"scale\"; name = \"f\";\n"
        "    rules = ( { fields = [\"temp_c\"]; convert = \"C->F\"; rename = \"temp_f\"; } ); },\n"
        "  { plugin = \"aggregate\"; name = \"agg\"; period = \"1s\"; grace = \"2s\";\n"
        "    functions = [\"mean\", \"min\", \"max\", \"count\"]; fields = [\"temp_f\"];\n"
        "    measurement = \"chamber_1s\"; },\n"
        "  { plugin = \"threshold\"; name = \"th\"; match = [\"chamber_1s\"];\n"
        "    tag_state = \"state\";\n"
        "    rules = ( { fields = [\"temp_f_mean\"]; warning_high = %.2f; } ); } );\n"
        "outputs = ( { plugin = \"file\"; name = \"out\"; path = \"%s\"; } );\n",
        limit, gdt_path("out.lp"));
    run(conf);
    struct pt *out;
    size_t nout = parse_file(gdt_path("out.lp"), &out);

    /* 1. The originals pass through, in order, temp_c converted to temp_f. */
    size_t norig = 0;
    for (size_t i = 0; i < nout; i++) {
        if (strcmp(out[i].meas, "chamber") != 0)
            continue;
        cr_assert_lt(norig, nraw);
        /* sim reads chambers round-robin: the same order in both runs */
        const struct pt *r = &raw[norig++];
        cr_assert_str_eq(out[i].dev, r->dev);
        cr_assert_str_eq(out[i].state, "", "threshold matches the summaries only");
        cr_assert_eq(out[i].nf, r->nf);
        for (size_t k = 0; k < r->nf; k++) {
            if (strcmp(r->key[k], "temp_c") == 0) {
                cr_assert(!has(&out[i], "temp_c", NULL), "temp_c was not renamed");
                assert_close(num(&out[i], "temp_f"), r->num[k] * 1.8 + 32, "temp_f");
            } else {
                assert_close(num(&out[i], r->key[k]), r->num[k], r->key[k]);
            }
        }
    }
    cr_assert_eq(norig, NPOINTS, "%zu originals in the output, want %d", norig, NPOINTS);

    /* 2. Every (device, window) of the originals has exactly one summary
     * with the statistics recomputed here. */
    struct win *w = calloc(NPOINTS, sizeof(*w));
    size_t nw = 0;
    for (size_t i = 0; i < nout; i++) {
        if (strcmp(out[i].meas, "chamber") != 0)
            continue;
        int64_t start = out[i].ts / PERIOD_NS * PERIOD_NS;
        struct win *x = win_of(w, &nw, out[i].dev, start);
        double v = num(&out[i], "temp_f");
        x->min = x->n ? dmin(x->min, v) : v;
        x->max = x->n ? dmax(x->max, v) : v;
        x->sum += v;
        x->n++;
    }
    size_t nsum = 0;
    for (size_t i = 0; i < nout; i++) {
        if (strcmp(out[i].meas, "chamber_1s") != 0)
            continue;
        nsum++;
        cr_assert_eq(out[i].ts % PERIOD_NS, 0, "a summary carries its window start");
        struct win *x = NULL;
        for (size_t k = 0; k < nw && !x; k++)
            if (w[k].start == out[i].ts && strcmp(w[k].dev, out[i].dev) == 0)
                x = &w[k];
        cr_assert_not_null(x, "summary of %s at %lld has no originals", out[i].dev,
                           (long long)out[i].ts);
        cr_assert_null(x->got, "two summaries of %s at %lld", x->dev, (long long)x->start);
        x->got = &out[i];
        cr_assert_eq(out[i].nf, 4);
        cr_assert_eq((size_t)num(&out[i], "temp_f_count"), x->n);
        assert_close(num(&out[i], "temp_f_mean"), x->sum / (double)x->n, "mean");
        assert_close(num(&out[i], "temp_f_min"), x->min, "min");
        assert_close(num(&out[i], "temp_f_max"), x->max, "max");
    }
    cr_assert_eq(nsum, nw, "%zu summaries for %zu windows", nsum, nw);
    cr_assert_geq(nw, (size_t)CHAMBERS * 2, "the run should span several windows");

    /* 3. The alerts: replay "warning at or above the limit" over each
     * device's summaries in window order: each summary is tagged with its
     * state, every change is one alert, in the order the threshold saw
     * them. */
    qsort(w, nw, sizeof(*w), by_dev_start);
    size_t want_alerts = 0, got_alerts = 0;
    for (size_t i = 0; i < nout; i++)
        got_alerts += strcmp(out[i].meas, "alert") == 0;
    for (size_t k = 0; k < nw;) {
        const char *dev = w[k].dev;
        const char *state = "ok";
        size_t next_alert = 0; /* index into out of the next alert of dev */
        for (; k < nw && strcmp(w[k].dev, dev) == 0; k++) {
            double mean = num(w[k].got, "temp_f_mean");
            const char *now = mean >= limit ? "warning" : "ok";
            cr_assert_str_eq(w[k].got->state, now, "summary of %s at %lld tagged %s", dev,
                             (long long)w[k].start, w[k].got->state);
            if (strcmp(now, state) == 0)
                continue;
            want_alerts++;
            while (next_alert < nout && !(strcmp(out[next_alert].meas, "alert") == 0 &&
                                          strcmp(out[next_alert].dev, dev) == 0))
                next_alert++;
            cr_assert_lt(next_alert, nout, "missing alert %s -> %s of %s at %lld", state, now, dev,
                         (long long)w[k].start);
            const struct pt *a = &out[next_alert++];
            cr_assert_eq(a->ts, w[k].start);
            cr_assert_str_eq(a->state, now);
            cr_assert_str_eq(a->field, "temp_f_mean");
            cr_assert_str_eq(str(a, "previous"), state);
            cr_assert_str_eq(str(a, "side"), "high");
            assert_close(num(a, "value"), mean, "alert value");
            assert_close(num(a, "limit"), limit, "alert limit");
            state = now;
        }
    }
    cr_assert_eq(got_alerts, want_alerts);
    cr_assert_gt(want_alerts, 0, "the limit %.2f should be crossed", limit);
    cr_assert_eq(nout, NPOINTS + nsum + want_alerts, "unexpected points in the output");

    /* 4. Accounting: the file got everything, nothing was late. */
    char *log = daemon_log();
    gdt_counters c = gdt_counters_of(log, "output:file/out");
    cr_assert_eq(c.delivered, nout);
    cr_assert_eq(c.dropped, 0);
    gdt_counters ag = gdt_counters_of(log, "processor:aggregate/agg");
    cr_assert_eq(ag.dropped, 0, "late or dropped points in aggregate:\n%s", log);
    free(log);
    free(w);
    free(raw);
    free(out);
}
