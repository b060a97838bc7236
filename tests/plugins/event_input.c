/* SPDX-License-Identifier: Apache-2.0 */
/* event_input - an event-driven input exercising the SDK services: a
 * repeating timer emits "e,src=timer v=<seq>i"; each tick also writes a byte
 * to a pipe whose read end is watched (gd_fd_watch) and emits
 * "e,src=fd v=<seq>i"; a thread of its own emits "e,src=thread v=<seq>i"
 * with gd_emit() directly and bounces through gd_call_on_loop(); start()
 * queues one gd_work_queue() item that emits "e,src=work v=0i". */
#include <gatherd/gatherd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct cfg {
    double period;
    bool fail_start;
};

struct state {
    gd_instance *inst;
    struct cfg *cfg;
    gd_timer *timer;
    gd_watch *watch;
    int pipefd[2];
    int64_t seq_timer, seq_fd, seq_loop;
    atomic_llong seq_thread;
    pthread_t thread;
    atomic_bool running;
};

static void emit_one(struct state *s, const char *src, int64_t v)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = gd_batch_add(b, "e", gd_now_ns());
    gd_point_tag(p, "src", src);
    gd_point_i64(p, "v", v);
    gd_emit(s->inst, b);
}

static void on_tick(void *ctx)
{
    struct state *s = ctx;
    emit_one(s, "timer", s->seq_timer++);
    char c = 'x';
    if (write(s->pipefd[1], &c, 1) != 1)
        gd_count_error(s->inst);
}

static void on_readable(void *ctx, int fd, int revents)
{
    struct state *s = ctx;
    char buf[64];
    (void)revents;
    ssize_t n = read(fd, buf, sizeof(buf));
    for (ssize_t i = 0; i < n; i++)
        emit_one(s, "fd", s->seq_fd++);
}

static void on_loop(void *ctx)
{
    struct state *s = ctx;
    emit_one(s, "loop", s->seq_loop++);
}

static void *thread_main(void *arg)
{
    struct state *s = arg;
    while (atomic_load(&s->running)) {
        emit_one(s, "thread", atomic_fetch_add(&s->seq_thread, 1));
        gd_call_on_loop(s->inst, on_loop, s, NULL);
        usleep((useconds_t)(s->cfg->period * 1e6));
    }
    return NULL;
}

static void work(void *ctx)
{
    (void)ctx;
}

static void work_done(void *ctx, int status)
{
    struct state *s = ctx;
    if (status == 0)
        emit_one(s, "work", 0);
}

static int init(gd_instance *inst, void *cfg, void **state)
{
    struct state *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    if (pipe(s->pipefd) < 0) {
        free(s);
        return GD_EIO;
    }
    *state = s;
    return 0;
}

static int start(void *state)
{
    struct state *s = state;
    if (s->cfg->fail_start) {
        gd_log(s->inst, GD_ERROR, "failing start() as configured");
        return GD_ECONN;
    }
    uint64_t ms = (uint64_t)(s->cfg->period * 1000);
    int rc = gd_timer_start(s->inst, ms, ms, on_tick, s, NULL, &s->timer);
    if (rc == 0)
        rc = gd_fd_watch(s->inst, s->pipefd[0], GD_READABLE, on_readable, s, NULL, &s->watch);
    if (rc == 0)
        rc = gd_work_queue(s->inst, work, work_done, s, NULL);
    if (rc < 0)
        return rc;
    atomic_store(&s->running, true);
    if (pthread_create(&s->thread, NULL, thread_main, s) != 0) {
        atomic_store(&s->running, false);
        return GD_ENOMEM;
    }
    return 0;
}

static void stop(void *state)
{
    struct state *s = state;
    atomic_store(&s->running, false);
    pthread_join(s->thread, NULL);
    gd_timer_stop(s->timer);
    gd_fd_unwatch(s->watch);
    s->timer = NULL;
    s->watch = NULL;
}

static void destroy(void *state)
{
    struct state *s = state;
    close(s->pipefd[0]);
    close(s->pipefd[1]);
    free(s);
}

static const struct gd_option options[] = {
    GD_OPT_DURATION("period", "20ms", 0.001, 10, 0, offsetof(struct cfg, period), "Tick period"),
    GD_OPT_BOOL("fail_start", "false", 0, offsetof(struct cfg, fail_start), "start() fails"),
    GD_OPT_END,
};

static const struct gd_input_ops ops = {
    .struct_size = sizeof(struct gd_input_ops),
    .init = init,
    .destroy = destroy,
    .start = start,
    .stop = stop,
};

static const struct gd_plugin plugin = {
    GD_PLUGIN_ABI,
    .name = "event_input",
    .version = "1.0.0",
    .kind = GD_KIND_INPUT,
    .summary = "test event-driven input",
    .options = options,
    .config_size = sizeof(struct cfg),
    .ops = &ops,
};

GD_PLUGIN_ENTRY
{
    return &plugin;
}
