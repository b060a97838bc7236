/* SPDX-License-Identifier: Apache-2.0 */
#include "runtime.h"
#include "default_conf.h"
#include "options.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* SIGHUPs arriving within this window are served by one reload. */
#define RELOAD_COALESCE_MS 100
/* Longest wait of a worker thread pushing to a full `block` queue, unless
 * shutdown_timeout is longer. */
#define PUSH_BLOCK_MIN_NS 1000000000LL

struct loop_call {
    struct loop_call *next;
    gd__inst *inst;
    void (*cb)(void *ctx);
    void *ctx;
    gd_free_fn ctx_free;
};

struct gd__rt {
    char *config_path;
    uv_loop_t loop;
    bool loop_inited;
    pthread_t loop_thread;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_async_t async;
    uv_timer_t reload_timer;
    uv_timer_t shutdown_timer;
    pthread_mutex_t calls_lock;
    struct loop_call *calls;
    atomic_bool shutdown_req;
    atomic_int_fast64_t push_wait_ns; /* read by workers; set from shutdown_timeout */
    gd__loader loader;
    gd__cfgset cur;
    pthread_rwlock_t pipe_lock;
    gd__pipeline *pipe;
    bool stopping;
    bool reload_pending;
    size_t pending_stops; /* input jobs still stopping */
    bool finished;
    int exit_code;
};

const char *gd__default_config(void)
{
    return gd__default_conf;
}

/* ---- configuration sets ---------------------------------------------- */

void gd__cfgset_free(gd__cfgset *set)
{
    for (size_t i = 0; i < set->n; i++)
        gd__inst_free(set->v[i]);
    free(set->v);
    for (size_t i = 0; i < set->nfiles; i++)
        free(set->files[i]);
    free(set->files);
    gd__opts_free(gd__global_options, &set->g);
    memset(set, 0, sizeof(*set));
}

int gd__cfgset_build(gd__rt *rt, gd__loader *l, const char *path, gd__cfgset *set,
                     gd__errs *errs)
{
    gd__conf conf = {0};
    static const int order[] = {GD_KIND_OUTPUT, GD_KIND_PROCESSOR, GD_KIND_INPUT};

    memset(set, 0, sizeof(*set));
    gd__conf_load(&conf, path, path ? NULL : gd__default_conf, "<embedded default>", errs);
    struct gd__optset gs = {.opts = gd__global_options, .dst = &set->g};
    gd__opts_fill(&gs, 1, conf.global, "global", errs);
    if (l->ndirs == 0)
        gd__loader_init(l, set->g.plugin_dir);

    size_t total = conf.ninst[1] + conf.ninst[2] + conf.ninst[3];
    set->v = calloc(total ? total : 1, sizeof(*set->v));
    for (int k = 0; k < 3 && set->v; k++) {
        int kind = order[k];
        for (size_t i = 0; i < conf.ninst[kind]; i++) {
            gd__inst *in = gd__inst_build(rt, l, &conf.inst[kind][i], &set->g, errs);
            if (in)
                set->v[set->n++] = in;
        }
    }
    /* Names are unique per kind after ${ENV} expansion too. */
    for (size_t i = 0; i < set->n; i++)
        for (size_t j = 0; j < i; j++)
            if (set->v[i]->kind == set->v[j]->kind &&
                strcmp(set->v[i]->head.name, set->v[j]->head.name) == 0)
                gd__errs_add(errs, "%s: %s '%s' is defined twice (first at %s)", set->v[i]->where,
                             gd__kind_name(set->v[i]->kind), set->v[i]->head.name,
                             set->v[j]->where);
    set->files = calloc(conf.nfiles ? conf.nfiles : 1, sizeof(*set->files));
    for (size_t i = 0; set->files && i < conf.nfiles; i++)
        set->files[set->nfiles++] = strdup(conf.files[i]);
    gd__conf_free(&conf);
    if (errs->n) {
        gd__cfgset_free(set);
        return GD_ECONFIG;
    }
    return 0;
}

static size_t count_kind(const gd__cfgset *s, int kind)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->v[i]->kind == kind;
    return n;
}

static gd__pipeline *pipeline_of(const gd__cfgset *s)
{
    gd__pipeline *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->procs = calloc(count_kind(s, GD_KIND_PROCESSOR) + 1, sizeof(*p->procs));
    p->outs = calloc(count_kind(s, GD_KIND_OUTPUT) + 1, sizeof(*p->outs));
    if (!p->procs || !p->outs) {
        free(p->procs);
        free(p->outs);
        free(p);
        return NULL;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i]->kind == GD_KIND_PROCESSOR)
            p->procs[p->nprocs++] = s->v[i];
        else if (s->v[i]->kind == GD_KIND_OUTPUT)
            p->outs[p->nouts++] = s->v[i];
    }
    return p;
}

static void pipeline_free(gd__pipeline *p)
{
    if (!p)
        return;
    free(p->procs);
    free(p->outs);
    free(p);
}

/* ---- submitting ------------------------------------------------------ */

static bool on_loop_thread(gd__rt *rt)
{
    return rt->loop_inited && pthread_equal(pthread_self(), rt->loop_thread);
}

static int64_t push_deadline(gd__rt *rt)
{
    if (on_loop_thread(rt))
        return 0;
    return gd__mono_ns() + atomic_load(&rt->push_wait_ns);
}

/* Add the input's configured tags to every point (before the freeze; a
 * batch the plugin froze itself is copied first). */
static gd_batch *apply_tags(gd__inst *in, gd_batch *b)
{
    const gd_kvlist *tags = &in->common.tags;
    if (!tags->n || !gd_batch_len(b))
        return b;
    if (gd_batch_is_frozen(b)) {
        gd_batch *copy = gd_batch_new(gd_batch_len(b));
        for (size_t i = 0; copy && i < gd_batch_len(b); i++)
            gd_batch_copy_point(copy, gd_batch_point(b, i));
        if (!copy)
            return b;
        gd_batch_unref(b);
        b = copy;
    }
    for (size_t i = 0; i < gd_batch_len(b); i++) {
        gd_point *p = (gd_point *)gd_batch_point(b, i);
        for (size_t t = 0; t < tags->n; t++)
            gd_point_tag(p, tags->v[t].key, tags->v[t].value);
    }
    return b;
}

/* Route @b from @in through the current pipeline. Consumes @b. */
static int submit(gd__inst *in, gd_batch *b, int64_t deadline)
{
    gd__rt *rt = in->rt;
    size_t from = 0;
    int rc;

    if (in->kind == GD_KIND_INPUT)
        b = apply_tags(in, b);
    atomic_fetch_add(&in->cnt.delivered, gd_batch_len(b));
    pthread_rwlock_rdlock(&rt->pipe_lock);
    if (in->kind == GD_KIND_PROCESSOR) {
        long idx = gd__pipeline_index(rt->pipe, in);
        from = idx < 0 ? rt->pipe->nprocs : (size_t)idx + 1;
    }
    rc = gd__pipeline_submit(rt->pipe, in, from, b, deadline);
    pthread_rwlock_unlock(&rt->pipe_lock);
    return rc;
}

/* ---- services for plugins -------------------------------------------- */

static int host_emit(gd_instance *gi, gd_batch *b)
{
    gd__inst *in = (gd__inst *)gi;
    if (!b)
        return GD_EINVAL;
    if (atomic_load(&in->stopped) || in->kind == GD_KIND_OUTPUT) {
        gd__count_drop(&in->cnt, "emit_after_stop", gd_batch_len(b));
        gd_log_ratelimited(gi, GD_WARN, "gd_emit() after stop: %zu points dropped",
                           gd_batch_len(b));
        gd_batch_unref(b);
        return GD_ESHUTDOWN;
    }
    if (in->kind == GD_KIND_INPUT)
        atomic_fetch_add(&in->cnt.received, gd_batch_len(b));
    return submit(in, b, push_deadline(in->rt));
}

static void host_count_drop(gd_instance *gi, const char *reason, uint64_t n)
{
    gd__count_drop(&((gd__inst *)gi)->cnt, reason, n);
}

static void host_count_error(gd_instance *gi)
{
    atomic_fetch_add(&((gd__inst *)gi)->cnt.errors, 1);
}

/* Plugin timers and watches begin with their libuv handle, and the handle's
 * data points to the struct itself (== the handle): that is how shutdown
 * tells them from the core's handles and closes them with their ctx_free. */
struct gd_timer {
    uv_timer_t h; /* first */
    void (*cb)(void *ctx);
    void *ctx;
    gd_free_fn ctx_free;
    bool auto_close;
};

static void timer_closed(uv_handle_t *h)
{
    struct gd_timer *t = h->data;
    if (t->ctx_free)
        t->ctx_free(t->ctx);
    free(t);
}

static void timer_fire(uv_timer_t *h)
{
    struct gd_timer *t = h->data;
    t->cb(t->ctx);
    if (t->auto_close && !uv_is_closing((uv_handle_t *)h))
        uv_close((uv_handle_t *)h, timer_closed);
}

static int host_timer_start(gd_instance *gi, uint64_t first_ms, uint64_t repeat_ms,
                            void (*cb)(void *ctx), void *ctx, gd_free_fn ctx_free,
                            gd_timer **out)
{
    gd__rt *rt = ((gd__inst *)gi)->rt;
    if (!out && repeat_ms)
        return GD_EINVAL; /* a repeating timer needs a handle to stop it */
    struct gd_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return GD_ENOMEM;
    t->cb = cb;
    t->ctx = ctx;
    t->ctx_free = ctx_free;
    t->auto_close = !out;
    uv_timer_init(&rt->loop, &t->h);
    t->h.data = t;
    uv_timer_start(&t->h, timer_fire, first_ms, repeat_ms);
    if (out)
        *out = t;
    return 0;
}

static void host_timer_stop(gd_timer *t)
{
    if (!uv_is_closing((uv_handle_t *)&t->h))
        uv_close((uv_handle_t *)&t->h, timer_closed);
}

struct gd_watch {
    uv_poll_t h; /* first */
    void (*cb)(void *ctx, int fd, int revents);
    void *ctx;
    gd_free_fn ctx_free;
    int fd;
};

static int to_uv_events(int events)
{
    return ((events & GD_READABLE) ? UV_READABLE : 0) | ((events & GD_WRITABLE) ? UV_WRITABLE : 0);
}

static void watch_fire(uv_poll_t *h, int status, int events)
{
    struct gd_watch *w = h->data;
    int rev = ((events & UV_READABLE) ? GD_READABLE : 0) | ((events & UV_WRITABLE) ? GD_WRITABLE : 0);
    if (status < 0)
        rev = GD_READABLE | GD_WRITABLE; /* let the plugin find the error on the fd */
    w->cb(w->ctx, w->fd, rev);
}

static void watch_closed(uv_handle_t *h)
{
    struct gd_watch *w = h->data;
    if (w->ctx_free)
        w->ctx_free(w->ctx);
    free(w);
}

static int host_fd_watch(gd_instance *gi, int fd, int events,
                         void (*cb)(void *ctx, int fd, int revents), void *ctx,
                         gd_free_fn ctx_free, gd_watch **out)
{
    gd__rt *rt = ((gd__inst *)gi)->rt;
    struct gd_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return GD_ENOMEM;
    int rc = uv_poll_init(&rt->loop, &w->h, fd);
    if (rc < 0) {
        free(w);
        return rc;
    }
    w->h.data = w;
    w->cb = cb;
    w->ctx = ctx;
    w->ctx_free = ctx_free;
    w->fd = fd;
    uv_poll_start(&w->h, to_uv_events(events), watch_fire);
    *out = w;
    return 0;
}

static int host_fd_watch_update(gd_watch *w, int events)
{
    if (!events)
        return uv_poll_stop(&w->h);
    return uv_poll_start(&w->h, to_uv_events(events), watch_fire);
}

static void host_fd_unwatch(gd_watch *w)
{
    if (!uv_is_closing((uv_handle_t *)&w->h))
        uv_close((uv_handle_t *)&w->h, watch_closed);
}

struct work_item {
    uv_work_t w;
    gd__inst *inst;
    void (*work)(void *ctx);
    void (*after)(void *ctx, int status);
    void *ctx;
    gd_free_fn ctx_free;
};

static void work_run(uv_work_t *w)
{
    struct work_item *it = w->data;
    it->work(it->ctx);
}

static void work_after(uv_work_t *w, int status)
{
    struct work_item *it = w->data;
    gd__inst *in = it->inst;
    if (it->after)
        it->after(it->ctx, status == UV_ECANCELED ? GD_ESHUTDOWN : 0);
    if (it->ctx_free)
        it->ctx_free(it->ctx);
    free(it);
    if (--in->pending_work == 0 && in->retired && !in->scheduled)
        gd__inst_free(in);
}

static int host_work_queue(gd_instance *gi, void (*work)(void *ctx),
                           void (*after)(void *ctx, int status), void *ctx, gd_free_fn ctx_free)
{
    gd__rt *rt = ((gd__inst *)gi)->rt;
    struct work_item *it = calloc(1, sizeof(*it));
    if (!it)
        return GD_ENOMEM;
    it->w.data = it;
    it->inst = (gd__inst *)gi;
    it->work = work;
    it->after = after;
    it->ctx = ctx;
    it->ctx_free = ctx_free;
    int rc = uv_queue_work(&rt->loop, &it->w, work_run, work_after);
    if (rc < 0) {
        free(it);
        return rc;
    }
    it->inst->pending_work++;
    return 0;
}

static int host_call_on_loop(gd_instance *gi, void (*cb)(void *ctx), void *ctx,
                             gd_free_fn ctx_free)
{
    gd__rt *rt = ((gd__inst *)gi)->rt;
    struct loop_call *c = calloc(1, sizeof(*c));
    if (!c)
        return GD_ENOMEM;
    c->inst = (gd__inst *)gi;
    c->cb = cb;
    c->ctx = ctx;
    c->ctx_free = ctx_free;
    pthread_mutex_lock(&rt->calls_lock);
    struct loop_call **tail = &rt->calls;
    while (*tail)
        tail = &(*tail)->next;
    *tail = c;
    pthread_mutex_unlock(&rt->calls_lock);
    uv_async_send(&rt->async);
    return 0;
}

static gd__rt *the_rt; /* for gd_shutdown_request(NULL) */

static void host_shutdown_request(gd_instance *gi, const char *reason)
{
    gd__rt *rt = gi ? ((gd__inst *)gi)->rt : the_rt;
    gd_log(gi, GD_INFO, "shutdown requested: %s", reason ? reason : "no reason given");
    if (rt)
        gd__rt_request_shutdown(rt);
}

static bool host_backpressure(gd_instance *gi)
{
    gd__inst *in = (gd__inst *)gi;
    gd__rt *rt = in->rt;
    if (!rt || !rt->pipe)
        return false;
    pthread_rwlock_rdlock(&rt->pipe_lock);
    bool full = gd__pipeline_blocked(rt->pipe, in);
    pthread_rwlock_unlock(&rt->pipe_lock);
    return full;
}

static bool host_emit_durable(gd_instance *gi)
{
    gd__rt *rt = ((gd__inst *)gi)->rt;
    if (!rt || !rt->pipe)
        return false;
    pthread_rwlock_rdlock(&rt->pipe_lock);
    bool durable = rt->pipe->nouts > 0;
    for (size_t i = 0; i < rt->pipe->nouts && durable; i++) {
        const struct gd__queue_opts *q = &rt->pipe->outs[i]->common.queue;
        durable = q->overflow == GD__OVF_SPOOL && q->spool_always && q->spool_sync == GD__SYNC_BATCH;
    }
    pthread_rwlock_unlock(&rt->pipe_lock);
    return durable;
}

static const char *host_spool_dir(const gd_instance *gi)
{
    return ((const gd__inst *)gi)->spool_dir;
}

static const struct gd_core_host host = {
    .struct_size = sizeof(struct gd_core_host),
    .emit = host_emit,
    .count_drop = host_count_drop,
    .count_error = host_count_error,
    .timer_start = host_timer_start,
    .timer_stop = host_timer_stop,
    .fd_watch = host_fd_watch,
    .fd_watch_update = host_fd_watch_update,
    .fd_unwatch = host_fd_unwatch,
    .work_queue = host_work_queue,
    .call_on_loop = host_call_on_loop,
    .shutdown_request = host_shutdown_request,
    .backpressure = host_backpressure,
    .emit_durable = host_emit_durable,
    .spool_dir = host_spool_dir,
};

/* ---- inputs ---------------------------------------------------------- */

static void collect_run(gd__sched_job *j)
{
    gd__inst *in = j->ctx;
    /* Size the batch like the last one, so its arrays never have to grow. */
    gd_batch *b = gd_batch_new(atomic_load(&in->last_batch_len) + 1);
    if (!b) {
        atomic_fetch_add(&in->cnt.errors, 1);
        return;
    }
    int rc = in->lib->ops.input.collect(in->state, b);
    if (rc < 0) {
        atomic_fetch_add(&in->cnt.errors, 1);
        gd_log_ratelimited(&in->head, GD_WARN, "collect failed: %s (%zu points kept)",
                           gd_strerror(rc), gd_batch_len(b));
    } else {
        atomic_store(&in->cnt.last_ok_ns, gd_now_ns());
    }
    atomic_fetch_add(&in->cnt.received, gd_batch_len(b));
    atomic_store(&in->last_batch_len, gd_batch_len(b));
    submit(in, b, push_deadline(in->rt));
}

static bool collect_can_run(gd__sched_job *j)
{
    gd__inst *in = j->ctx;
    gd__rt *rt = in->rt;
    pthread_rwlock_rdlock(&rt->pipe_lock);
    bool blocked = gd__pipeline_blocked(rt->pipe, in);
    pthread_rwlock_unlock(&rt->pipe_lock);
    return !blocked;
}

static void finish_shutdown(gd__rt *rt);
static void log_counters(gd__inst *in);

static void job_stopped(gd__sched_job *j)
{
    gd__inst *in = j->ctx;
    gd__rt *rt = in->rt;
    in->job_stopped = true;
    atomic_store(&in->stopped, true);
    if (in->retired) { /* removed by a reload */
        log_counters(in);
        gd__inst_free(in);
    }
    if (rt->pending_stops && --rt->pending_stops == 0 && rt->stopping)
        finish_shutdown(rt);
}

static int input_start(gd__rt *rt, gd__inst *in)
{
    const struct gd_input_ops *ops = &in->lib->ops.input;
    if (ops->collect) {
        gd__sched_job *j = &in->job;
        j->interval_s = in->common.interval;
        j->align = in->common.align;
        j->jitter_s = in->common.jitter;
        j->run = collect_run;
        j->can_run = collect_can_run;
        j->stopped = job_stopped;
        j->ctx = in;
        j->inst = &in->head;
        j->cnt = &in->cnt;
        int rc = gd__sched_start(&rt->loop, j);
        if (rc == 0)
            in->scheduled = true;
        return rc;
    }
    int rc = ops->start(in->state);
    if (rc < 0) {
        gd_log(&in->head, GD_ERROR, "start failed: %s", gd_strerror(rc));
        rt->exit_code = 1;
        return rc;
    }
    in->started = true;
    return 0;
}

/* Stop an input: event-driven ones at once, polled ones once the in-flight
 * collect is over (job_stopped; counted in pending_stops). */
static void stop_event_input(gd__rt *rt, gd__inst *in);

static void input_stop(gd__rt *rt, gd__inst *in)
{
    if (in->scheduled && !in->job.stopping) {
        rt->pending_stops++;
        gd__sched_stop(&in->job);
    }
    if (!in->scheduled)
        stop_event_input(rt, in);
}

/* ---- loop plumbing ---------------------------------------------------- */

static void run_loop_calls(gd__rt *rt)
{
    pthread_mutex_lock(&rt->calls_lock);
    struct loop_call *c = rt->calls;
    rt->calls = NULL;
    pthread_mutex_unlock(&rt->calls_lock);
    while (c) {
        struct loop_call *next = c->next;
        c->cb(c->ctx);
        if (c->ctx_free)
            c->ctx_free(c->ctx);
        free(c);
        c = next;
    }
}

/* Forget the pending loop calls of @in (NULL: all): after an input's stop()
 * none of its callbacks runs; their contexts are still freed. */
static void drop_loop_calls(gd__rt *rt, const gd__inst *in)
{
    struct loop_call *drop = NULL;
    pthread_mutex_lock(&rt->calls_lock);
    for (struct loop_call **pp = &rt->calls; *pp;) {
        struct loop_call *c = *pp;
        if (in && c->inst != in) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        c->next = drop;
        drop = c;
    }
    pthread_mutex_unlock(&rt->calls_lock);
    while (drop) {
        struct loop_call *next = drop->next;
        if (drop->ctx_free)
            drop->ctx_free(drop->ctx);
        free(drop);
        drop = next;
    }
}

/* Stop an event-driven input: stop(), then nothing of it runs any more. */
static void stop_event_input(gd__rt *rt, gd__inst *in)
{
    if (in->started) {
        in->lib->ops.input.stop(in->state);
        in->started = false;
    }
    atomic_store(&in->stopped, true);
    drop_loop_calls(rt, in);
}

static void begin_shutdown(gd__rt *rt);

static void on_async(uv_async_t *a)
{
    gd__rt *rt = a->data;
    run_loop_calls(rt);
    if (atomic_load(&rt->shutdown_req))
        begin_shutdown(rt);
}

void gd__rt_request_shutdown(gd__rt *rt)
{
    atomic_store(&rt->shutdown_req, true);
    if (rt->loop_inited)
        uv_async_send(&rt->async);
}

static void on_reload_timer(uv_timer_t *t)
{
    gd__rt *rt = t->data;
    rt->reload_pending = false;
    if (!rt->stopping)
        gd__rt_reload(rt);
}

static void on_signal(uv_signal_t *s, int signum)
{
    gd__rt *rt = s->data;
    if (signum == SIGHUP) {
        if (rt->stopping || rt->reload_pending)
            return; /* coalesced */
        rt->reload_pending = true;
        uv_timer_start(&rt->reload_timer, on_reload_timer, RELOAD_COALESCE_MS, 0);
        return;
    }
    gd_log(NULL, GD_INFO, "received %s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    begin_shutdown(rt);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->data == (void *)h) /* a plugin's timer or watch left running */
        uv_close(h, h->type == UV_TIMER ? timer_closed : watch_closed);
    else
        uv_close(h, NULL);
}

/* Drain and stop outputs of @set listed in @which (NULL: all). */
static void stop_outputs(gd__rt *rt, gd__inst **v, size_t n)
{
    int64_t deadline = gd__mono_ns() + (int64_t)(rt->cur.g.shutdown_timeout * 1e9);
    for (size_t i = 0; i < n; i++)
        if (v[i]->kind == GD_KIND_OUTPUT && v[i]->out_inited)
            gd__output_begin_stop(&v[i]->out, deadline);
    for (size_t i = 0; i < n; i++)
        if (v[i]->kind == GD_KIND_OUTPUT && v[i]->out_inited)
            gd__output_join(&v[i]->out);
}

/* Hand what a processor holds back to the outputs, through the processors
 * after it. */
static void flush_processor(gd__inst *pr)
{
    if (!pr->inited || !pr->lib->ops.processor.flush)
        return;
    gd_batch *out = gd_batch_new(16);
    if (!out)
        return;
    pthread_mutex_lock(&pr->proc_lock);
    int rc = pr->lib->ops.processor.flush(pr->state, out);
    pthread_mutex_unlock(&pr->proc_lock);
    if (rc < 0)
        gd_log(&pr->head, GD_ERROR, "flush failed: %s", gd_strerror(rc));
    submit(pr, out, gd__mono_ns() + PUSH_BLOCK_MIN_NS);
}

static void log_counters(gd__inst *in)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    gd__counters_print(&in->cnt, f);
    if (in->kind == GD_KIND_OUTPUT)
        fprintf(f, " queued=%zu", gd__queue_queued(&in->out.q));
    fclose(f);
    gd_log(&in->head, GD_INFO, "%s", text);
    free(text);
}

static void finish_shutdown(gd__rt *rt)
{
    if (rt->finished)
        return;
    rt->finished = true;
    for (size_t i = 0; i < rt->pipe->nprocs; i++)
        flush_processor(rt->pipe->procs[i]);
    stop_outputs(rt, rt->cur.v, rt->cur.n);
    for (size_t i = 0; i < rt->cur.n; i++)
        log_counters(rt->cur.v[i]);
    gd_log(NULL, GD_INFO, "stopped");
    uv_walk(&rt->loop, close_walk, NULL);
}

/* A collect still running shutdown_timeout after SIGTERM (a hung device)
 * cannot be waited for: drain what was handed over, then leave. */
static void on_shutdown_timeout(uv_timer_t *t)
{
    gd__rt *rt = t->data;
    for (size_t i = 0; i < rt->cur.n; i++) {
        gd__inst *in = rt->cur.v[i];
        if (in->scheduled && !in->job_stopped)
            gd_log(&in->head, GD_ERROR, "collect still running after shutdown_timeout (%g s); "
                                        "exiting without it", rt->cur.g.shutdown_timeout);
    }
    finish_shutdown(rt);
    fflush(NULL);
    _exit(rt->exit_code);
}

static void begin_shutdown(gd__rt *rt)
{
    if (rt->stopping)
        return;
    rt->stopping = true;
    uv_timer_stop(&rt->reload_timer);
    for (size_t i = 0; i < rt->cur.n; i++)
        if (rt->cur.v[i]->kind == GD_KIND_INPUT)
            input_stop(rt, rt->cur.v[i]);
    if (rt->pending_stops == 0) {
        finish_shutdown(rt);
        return;
    }
    uv_timer_start(&rt->shutdown_timer, on_shutdown_timeout,
                   (uint64_t)(rt->cur.g.shutdown_timeout * 1000) + 1, 0);
}

/* ---- lifecycle -------------------------------------------------------- */

gd__rt *gd__rt_new(const char *path)
{
    gd__rt *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return NULL;
    if (path && !(rt->config_path = strdup(path))) {
        free(rt);
        return NULL;
    }
    pthread_mutex_init(&rt->calls_lock, NULL);
    pthread_rwlock_init(&rt->pipe_lock, NULL);
    the_rt = rt;
    gd_core_attach(&host);
    return rt;
}

void gd__rt_free(gd__rt *rt)
{
    if (!rt)
        return;
    drop_loop_calls(rt, NULL);
    gd__cfgset_free(&rt->cur);
    pipeline_free(rt->pipe);
    gd__loader_free(&rt->loader);
    if (rt->loop_inited)
        uv_loop_close(&rt->loop);
    pthread_mutex_destroy(&rt->calls_lock);
    pthread_rwlock_destroy(&rt->pipe_lock);
    gd_core_attach(NULL);
    if (the_rt == rt)
        the_rt = NULL;
    free(rt->config_path);
    free(rt);
}

/* Apply the global settings that may change at runtime. */
static void apply_globals(gd__rt *rt, const struct gd__global *g)
{
    int64_t wait = (int64_t)(g->shutdown_timeout * 1e9);
    gd_log_setup((gd_log_level)g->log_level, (gd_log_format)g->log_format);
    atomic_store(&rt->push_wait_ns, wait > PUSH_BLOCK_MIN_NS ? wait : PUSH_BLOCK_MIN_NS);
}

static int load(gd__rt *rt, gd__cfgset *set, FILE *err)
{
    gd__errs errs = {0};
    int rc = gd__cfgset_build(rt, &rt->loader, rt->config_path, set, &errs);
    if (rc < 0) {
        if (err)
            gd__errs_print(&errs, err);
        else
            for (size_t i = 0; i < errs.n; i++)
                gd_log(NULL, GD_ERROR, "%s", errs.msgs[i]);
    }
    gd__errs_free(&errs);
    return rc;
}

int gd__rt_check(gd__rt *rt, FILE *out, FILE *err)
{
    gd__cfgset set;
    if (load(rt, &set, err) < 0) {
        fprintf(err, "configuration is invalid\n");
        return 1;
    }
    for (size_t i = 0; i < set.nfiles; i++)
        fprintf(out, "file      %s\n", set.files[i]);
    for (int kind = GD_KIND_INPUT; kind <= GD_KIND_OUTPUT; kind++)
        for (size_t i = 0; i < set.n; i++)
            if (set.v[i]->kind == kind)
                gd__inst_summary(set.v[i], out);
    /* Plugins whose init() is free of outside effects check themselves too,
     * with their debug output (plans, resolved settings) shown. */
    int failed = 0;
    for (size_t i = 0; i < set.n; i++) {
        gd__inst *in = set.v[i];
        if (!(in->lib->desc.flags & GD_PLUGIN_TEST_INIT))
            continue;
        gd_log_setup(GD_DEBUG, (gd_log_format)set.g.log_format);
        int rc = gd__inst_init(in);
        gd_log_setup((gd_log_level)set.g.log_level, (gd_log_format)set.g.log_format);
        if (rc < 0) {
            fprintf(err, "%s: %s '%s': init failed: %s\n", in->where ? in->where : "",
                    gd__kind_name(in->kind), in->head.name, gd_strerror(rc));
            failed++;
        }
    }
    if (failed) {
        fprintf(err, "configuration is invalid\n");
        gd__cfgset_free(&set);
        return 1;
    }
    fprintf(out, "configuration OK: %zu inputs, %zu processors, %zu outputs\n",
            count_kind(&set, GD_KIND_INPUT), count_kind(&set, GD_KIND_PROCESSOR),
            count_kind(&set, GD_KIND_OUTPUT));
    gd__cfgset_free(&set);
    return 0;
}

static int init_loop(gd__rt *rt, int64_t workers)
{
    char n[16];
    snprintf(n, sizeof(n), "%lld", (long long)workers);
    setenv("UV_THREADPOOL_SIZE", n, 0);
    int rc = uv_loop_init(&rt->loop);
    if (rc < 0)
        return rc;
    rt->loop_inited = true;
    rt->loop_thread = pthread_self();
    uv_async_init(&rt->loop, &rt->async, on_async);
    rt->async.data = rt;
    uv_timer_init(&rt->loop, &rt->reload_timer);
    rt->reload_timer.data = rt;
    uv_timer_init(&rt->loop, &rt->shutdown_timer);
    rt->shutdown_timer.data = rt;
    return 0;
}

/* Initialise @v[0..n) in order (outputs, processors, inputs); on failure,
 * nothing stays initialised. */
static int init_all(gd__inst **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i]->inited)
            continue;
        int rc = gd__inst_init(v[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int start_outputs(gd__inst **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i]->kind == GD_KIND_OUTPUT && !v[i]->out.running) {
            int rc = gd__output_start(&v[i]->out);
            if (rc < 0)
                return rc;
        }
    return 0;
}

int gd__rt_run(gd__rt *rt)
{
    if (load(rt, &rt->cur, stderr) < 0)
        return 1;
    apply_globals(rt, &rt->cur.g);
    if (init_loop(rt, rt->cur.g.workers) < 0)
        return 1;
    rt->pipe = pipeline_of(&rt->cur);
    if (!rt->pipe || init_all(rt->cur.v, rt->cur.n) < 0 ||
        start_outputs(rt->cur.v, rt->cur.n) < 0) {
        gd_log(NULL, GD_ERROR, "start-up failed; not running");
        stop_outputs(rt, rt->cur.v, rt->cur.n);
        uv_walk(&rt->loop, close_walk, NULL);
        uv_run(&rt->loop, UV_RUN_DEFAULT);
        return 1;
    }
    uv_signal_init(&rt->loop, &rt->sig_term);
    uv_signal_init(&rt->loop, &rt->sig_int);
    uv_signal_init(&rt->loop, &rt->sig_hup);
    rt->sig_term.data = rt->sig_int.data = rt->sig_hup.data = rt;
    uv_signal_start(&rt->sig_term, on_signal, SIGTERM);
    uv_signal_start(&rt->sig_int, on_signal, SIGINT);
    uv_signal_start(&rt->sig_hup, on_signal, SIGHUP);
    signal(SIGPIPE, SIG_IGN);

    for (size_t i = 0; i < rt->cur.n; i++)
        if (rt->cur.v[i]->kind == GD_KIND_INPUT && input_start(rt, rt->cur.v[i]) < 0)
            gd__rt_request_shutdown(rt);
    gd_log(NULL, GD_INFO, "gatherd %s running: %zu inputs, %zu processors, %zu outputs (%s)",
           gd_version(), count_kind(&rt->cur, GD_KIND_INPUT),
           count_kind(&rt->cur, GD_KIND_PROCESSOR), count_kind(&rt->cur, GD_KIND_OUTPUT),
           rt->config_path ? rt->config_path : "embedded default configuration");
    if (atomic_load(&rt->shutdown_req))
        begin_shutdown(rt);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    return rt->exit_code;
}

/* ---- reload ----------------------------------------------------------- */

static gd__inst *find_same(gd__cfgset *old, const gd__inst *in)
{
    for (size_t i = 0; i < old->n; i++) {
        gd__inst *o = old->v[i];
        if (o && o->kind == in->kind && strcmp(o->head.name, in->head.name) == 0 &&
            o->lib == in->lib && o->canon.len == in->canon.len &&
            memcmp(o->canon.data, in->canon.data, o->canon.len) == 0)
            return o;
    }
    return NULL;
}

int gd__rt_reload(gd__rt *rt)
{
    gd__cfgset next;
    gd_log(NULL, GD_INFO, "SIGHUP: reloading %s",
           rt->config_path ? rt->config_path : "the embedded default configuration");
    if (load(rt, &next, NULL) < 0) {
        gd_log(NULL, GD_ERROR, "reload failed: the new configuration is invalid; still running "
                               "the previous one");
        return GD_ECONFIG;
    }
    /* Keep unchanged instances: the running object replaces the fresh one. */
    bool *kept = calloc(rt->cur.n + 1, sizeof(*kept));
    size_t nkept = 0;
    if (!kept) {
        gd__cfgset_free(&next);
        return GD_ENOMEM;
    }
    for (size_t i = 0; i < next.n; i++) {
        gd__inst *same = find_same(&rt->cur, next.v[i]);
        if (!same)
            continue;
        for (size_t k = 0; k < rt->cur.n; k++)
            if (rt->cur.v[k] == same)
                kept[k] = true;
        gd__inst_free(next.v[i]);
        next.v[i] = same;
        nkept++;
    }
    int rc = init_all(next.v, next.n);
    if (rc == 0)
        rc = start_outputs(next.v, next.n);
    gd__pipeline *np = rc == 0 ? pipeline_of(&next) : NULL;
    if (!np) {
        gd_log(NULL, GD_ERROR, "reload failed: a new instance did not start; still running the "
                               "previous configuration");
        for (size_t i = 0; i < next.n; i++) {
            bool is_kept = false;
            for (size_t k = 0; k < rt->cur.n; k++)
                is_kept = is_kept || rt->cur.v[k] == next.v[i];
            if (is_kept) {
                next.v[i] = NULL;
                continue;
            }
            if (next.v[i]->out.running) {
                gd__output_begin_stop(&next.v[i]->out, gd__mono_ns());
                gd__output_join(&next.v[i]->out);
            }
        }
        size_t w = 0;
        for (size_t i = 0; i < next.n; i++)
            if (next.v[i])
                next.v[w++] = next.v[i];
        next.n = w;
        gd__cfgset_free(&next);
        free(kept);
        return rc < 0 ? rc : GD_ENOMEM;
    }
    /* Switch: from here on, new batches take the new route. */
    pthread_rwlock_wrlock(&rt->pipe_lock);
    gd__pipeline *old_pipe = rt->pipe;
    rt->pipe = np;
    pthread_rwlock_unlock(&rt->pipe_lock);

    gd__cfgset old = rt->cur;
    if (next.g.workers != old.g.workers)
        gd_log(NULL, GD_WARN, "global.workers changed to %lld: takes effect at the next start",
               (long long)next.g.workers);
    rt->cur = next;
    apply_globals(rt, &rt->cur.g);

    /* Retire what is gone: inputs stop, processors flush, outputs drain. */
    size_t nremoved = 0;
    for (size_t k = 0; k < old.n; k++) {
        gd__inst *in = old.v[k];
        if (kept[k] || in->kind != GD_KIND_INPUT)
            continue;
        nremoved++;
        if (in->scheduled) {
            in->retired = true;
            rt->pending_stops++;
            gd__sched_stop(&in->job);
        } else {
            stop_event_input(rt, in);
            log_counters(in);
            if (in->pending_work)
                in->retired = true; /* freed when its last work item is done */
            else
                gd__inst_free(in);
        }
        old.v[k] = NULL;
    }
    for (size_t k = 0; k < old.n; k++)
        if (old.v[k] && !kept[k] && old.v[k]->kind == GD_KIND_PROCESSOR)
            flush_processor(old.v[k]);
    gd__inst **gone = calloc(old.n + 1, sizeof(*gone));
    size_t ngone = 0;
    for (size_t k = 0; gone && k < old.n; k++)
        if (old.v[k] && !kept[k] && old.v[k]->kind != GD_KIND_INPUT)
            gone[ngone++] = old.v[k];
    stop_outputs(rt, gone, ngone);
    for (size_t k = 0; k < ngone; k++) {
        log_counters(gone[k]);
        gd__inst_free(gone[k]);
    }
    nremoved += ngone;
    free(gone);
    pipeline_free(old_pipe);
    /* The old set's kept and retired instances now belong elsewhere. */
    for (size_t k = 0; k < old.n; k++)
        old.v[k] = NULL;
    old.n = 0;
    gd__cfgset_free(&old);
    free(kept);

    /* Start inputs that are new (or changed). */
    for (size_t i = 0; i < rt->cur.n; i++) {
        gd__inst *in = rt->cur.v[i];
        if (in->kind == GD_KIND_INPUT && !in->scheduled && !in->started)
            input_start(rt, in);
    }
    /* Secrets of removed instances are forgotten, those of the others kept. */
    gd_log_redact_clear();
    for (size_t i = 0; i < rt->cur.n; i++)
        gd__opts_redact(rt->cur.v[i]->lib->desc.options, rt->cur.v[i]->cfg);
    size_t nfresh = rt->cur.n - nkept;
    gd_log(NULL, GD_INFO, "reloaded: %zu instances kept, %zu started, %zu stopped", nkept,
           nfresh, nremoved);
    return 0;
}

/* ---- --once ------------------------------------------------------------ */

struct once_sink {
    FILE *out;
    gd_buf buf;
    size_t points;
};

static void once_print(void *ctx, gd_batch *b)
{
    struct once_sink *s = ctx;
    size_t skipped = 0;
    gd_buf_reset(&s->buf);
    gd_lp_encode_batch(&s->buf, b, GD_PREC_NS, &skipped);
    if (s->buf.len)
        fwrite(s->buf.data, 1, s->buf.len, s->out);
    s->points += gd_batch_len(b) - skipped;
    if (skipped)
        gd_log(NULL, GD_WARN, "%zu points cannot be written as line protocol", skipped);
}

int gd__rt_once(gd__rt *rt, const char *input, FILE *out)
{
    struct once_sink sink = {.out = out};
    int code = 0;
    size_t ran = 0;

    if (load(rt, &rt->cur, stderr) < 0)
        return 1;
    apply_globals(rt, &rt->cur.g);
    rt->pipe = pipeline_of(&rt->cur);
    if (!rt->pipe)
        return 1;
    rt->pipe->sink = once_print;
    rt->pipe->sink_ctx = &sink;
    for (size_t i = 0; i < rt->cur.n; i++) {
        gd__inst *in = rt->cur.v[i];
        if (in->kind == GD_KIND_PROCESSOR && gd__inst_init(in) < 0)
            return 1;
    }
    for (size_t i = 0; i < rt->cur.n; i++) {
        gd__inst *in = rt->cur.v[i];
        if (in->kind != GD_KIND_INPUT || (input && strcmp(input, in->head.name) != 0))
            continue;
        if (!in->lib->ops.input.collect) {
            if (input) {
                fprintf(stderr, "input '%s' is event-driven: --once runs polled inputs only\n",
                        input);
                code = 1;
            }
            continue;
        }
        if (gd__inst_init(in) < 0) {
            code = 1;
            continue;
        }
        ran++;
        gd__sched_job j = {.ctx = in};
        collect_run(&j);
        if (atomic_load(&in->cnt.errors))
            code = 1;
    }
    for (size_t i = 0; i < rt->pipe->nprocs; i++)
        flush_processor(rt->pipe->procs[i]);
    fflush(out);
    gd_buf_free(&sink.buf);
    if (input && ran == 0 && code == 0) {
        fprintf(stderr, "no input named '%s'\n", input);
        return 1;
    }
    fprintf(stderr, "%zu points from %zu inputs\n", sink.points, ran);
    return code;
}
