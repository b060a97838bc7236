/* SPDX-License-Identifier: Apache-2.0 */
/* fault - a test output that misbehaves on command and records what it
 * delivered, for fault tests.
 *
 * Before every write it reads the first line of `control` (a file the test
 * rewrites at will; missing or empty: "ok"):
 *     ok            deliver: append the points as line-protocol lines to
 *                   `path` (one write() per batch), report GD_DELIVERED
 *     fail          report GD_RETRY (the core retries with backoff)
 *     reject N      deliver all but every Nth point, which are rejected
 *     delay MS      sleep MS milliseconds, then deliver
 * `fail_first` fails that many writes before looking at `control`. */
#include <gatherd/gatherd.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct cfg {
    char *path;
    char *control;
    int64_t fail_first;
};

struct state {
    gd_instance *inst;
    struct cfg *cfg;
    int fd; /* O_APPEND: one write() per batch, whole lines even with two writers */
    int64_t writes;
    gd_buf buf;
};

static int init(gd_instance *inst, void *cfg, void **state)
{
    struct state *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    s->fd = open(s->cfg->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        gd_log(inst, GD_ERROR, "fault: cannot open %s", s->cfg->path);
        free(s);
        return GD_EIO;
    }
    *state = s;
    return 0;
}

static void destroy(void *state)
{
    struct state *s = state;
    close(s->fd);
    gd_buf_free(&s->buf);
    free(s);
}

static void read_control(const struct state *s, char *mode, size_t n, long *arg)
{
    strcpy(mode, "ok");
    *arg = 0;
    FILE *f = s->cfg->control ? fopen(s->cfg->control, "r") : NULL;
    if (!f)
        return;
    char line[128];
    if (fgets(line, sizeof(line), f)) {
        char m[32];
        long a = 0;
        int got = sscanf(line, "%31s %ld", m, &a);
        if (got >= 1) {
            snprintf(mode, n, "%s", m);
            *arg = got == 2 ? a : 0;
        }
    }
    fclose(f);
}

static int write_batch(void *state, gd_batch *b, gd_done_fn done, void *token)
{
    struct state *s = state;
    char mode[32];
    long arg;
    read_control(s, mode, sizeof(mode), &arg);
    if (s->writes++ < s->cfg->fail_first || strcmp(mode, "fail") == 0) {
        done(token, GD_RETRY, NULL);
        return 0;
    }
    if (strcmp(mode, "delay") == 0 && arg > 0) {
        struct timespec ts = {.tv_sec = arg / 1000, .tv_nsec = (arg % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    gd_index_set rej = {0};
    gd_buf_reset(&s->buf);
    for (size_t i = 0; i < gd_batch_len(b); i++) {
        if (strcmp(mode, "reject") == 0 && arg > 0 && (i + 1) % (size_t)arg == 0) {
            gd_index_set_add(&rej, (uint32_t)i);
            continue;
        }
        gd_lp_encode_point(&s->buf, gd_batch_point(b, i), GD_PREC_NS, NULL);
    }
    if (s->buf.len && write(s->fd, s->buf.data, s->buf.len) != (ssize_t)s->buf.len) {
        gd_index_set_free(&rej);
        done(token, GD_RETRY, NULL);
        return 0;
    }
    gd_rejects r = {.idx = rej.idx, .n = rej.n};
    done(token, GD_DELIVERED, &r);
    gd_index_set_free(&rej);
    return 0;
}

static const struct gd_option options[] = {
    GD_OPT_STRING("path", NULL, GD_OF_REQUIRED, offsetof(struct cfg, path),
                  "File the delivered points are appended to"),
    GD_OPT_STRING("control", NULL, 0, offsetof(struct cfg, control),
                  "File whose first line sets the behaviour"),
    GD_OPT_INT("fail_first", "0", 0, 1e9, 0, offsetof(struct cfg, fail_first),
               "Writes that fail before the control file is read"),
    GD_OPT_END,
};

static const struct gd_output_ops ops = {
    .struct_size = sizeof(struct gd_output_ops),
    .init = init,
    .destroy = destroy,
    .write = write_batch,
};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "fault",
    .version = "1.0.0",
    .kind = GD_KIND_OUTPUT,
    .summary = "test output: fails, delays or rejects on command",
    .options = options,
    .config_size = sizeof(struct cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
