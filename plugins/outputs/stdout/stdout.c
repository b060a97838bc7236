/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stdout.c - write every batch to standard output as line protocol or JSON
 * lines, one write(2) per batch.
 *
 * A write cut short (EAGAIN past a wait, EPIPE, EIO) is reported as GD_RETRY
 * and the plugin keeps a reference to the batch with the offset reached: when
 * the core retries the same batch, only the rest is written, so no line is
 * duplicated or torn. If another batch comes first, the torn line is
 * completed before it.
 */
#include <gatherd/gatherd.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* stdout left non-blocking by a parent: how long to wait for room. */
#define WAIT_WRITABLE_MS 1000

enum { FMT_LINE = GD_FORMAT_LINE, FMT_JSON = GD_FORMAT_JSON };

struct stdout_cfg {
    int format;    /* FMT_* */
    int precision; /* gd_precision */
};

static const char *const format_choices[] = {"line", "json", NULL};
static const char *const precision_choices[] = {"ns", "us", "ms", "s", NULL};

static const struct gd_option stdout_options[] = {
    GD_OPT_ENUM("format", "line", format_choices, 0, offsetof(struct stdout_cfg, format),
                "line protocol or JSON lines"),
    GD_OPT_ENUM("precision", "ns", precision_choices, 0, offsetof(struct stdout_cfg, precision),
                "timestamp unit of line protocol (JSON always carries ns)"),
    GD_OPT_END,
};

struct out {
    gd_instance *inst;
    int format;
    gd_precision prec;
    gd_buf buf;        /* the encoded batch, reused */
    gd_index_set rejects; /* points that could not be encoded */
    gd_batch *pending; /* referenced: batch whose write was cut short */
    size_t off;        /* bytes of buf already written */
};

/* Encode every point of @b into s->buf; points that cannot be encoded leave
 * nothing behind and are listed in s->rejects. */
static int encode(struct out *s, const gd_batch *b)
{
    const char *why = NULL;
    gd_buf_reset(&s->buf);
    s->off = 0;
    int rc = gd_encode_batch(&s->buf, b, (gd_format)s->format, s->prec, &s->rejects, &why);
    if (rc == 0 && s->rejects.n)
        gd_log_ratelimited(s->inst, GD_WARN, "stdout: %zu points dropped, the first (#%u): %s",
                           s->rejects.n, s->rejects.idx[0], why);
    return rc;
}

/* Write s->buf from s->off up to @end. Returns 0 or a negative errno. */
static int write_to(struct out *s, size_t end)
{
    while (s->off < end) {
        ssize_t n = write(STDOUT_FILENO, s->buf.data + s->off, end - s->off);
        if (n > 0) {
            s->off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};
            int pr = poll(&pfd, 1, WAIT_WRITABLE_MS);
            if (pr > 0 || (pr < 0 && errno == EINTR))
                continue;
            return -EAGAIN;
        }
        return n < 0 ? -errno : -EIO;
    }
    return 0;
}

/* Forget the pending batch, first completing its torn line (best effort)
 * so the next batch does not start in the middle of a line. */
static void drop_pending(struct out *s)
{
    if (!s->pending)
        return;
    if (s->off > 0 && s->off < s->buf.len && s->buf.data[s->off - 1] != '\n') {
        const char *nl = memchr(s->buf.data + s->off, '\n', s->buf.len - s->off);
        if (nl)
            write_to(s, (size_t)(nl - s->buf.data) + 1);
    }
    gd_batch_unref(s->pending);
    s->pending = NULL;
}

static int stdout_write(void *state, gd_batch *b, gd_done_fn done, void *token)
{
    struct out *s = state;

    if (s->pending != b) {
        drop_pending(s);
        int rc = encode(s, b);
        if (rc < 0)
            return rc; /* done() not called: the core retries */
    }
    int err = write_to(s, s->buf.len);
    if (err < 0) {
        gd_log_ratelimited(s->inst, GD_WARN, "stdout: write failed: %s", strerror(-err));
        if (!s->pending)
            s->pending = gd_batch_ref(b);
        done(token, GD_RETRY, NULL);
        return 0;
    }
    gd_batch_unref(s->pending);
    s->pending = NULL;
    gd_rejects rej = {.idx = s->rejects.idx, .n = s->rejects.n};
    done(token, GD_DELIVERED, s->rejects.n ? &rej : NULL);
    return 0;
}

static void stdout_destroy(void *state)
{
    struct out *s = state;
    if (!s)
        return;
    gd_batch_unref(s->pending);
    gd_buf_free(&s->buf);
    gd_index_set_free(&s->rejects);
    free(s);
}

static int stdout_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct stdout_cfg *cfg = cfgp;
    struct out *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->format = cfg->format;
    s->prec = (gd_precision)cfg->precision;
    if (s->format == FMT_JSON && s->prec != GD_PREC_NS)
        gd_log(inst, GD_WARN, "stdout: precision applies to line protocol only; JSON time is ns");
    *state = s;
    return 0;
}

static const struct gd_output_ops stdout_ops = {
    .struct_size = sizeof(struct gd_output_ops),
    .init = stdout_init,
    .destroy = stdout_destroy,
    .write = stdout_write,
    .flush = NULL,
};

static const struct gd_plugin stdout_plugin = {
    GD_PLUGIN_ABI,
    .name = "stdout",
    .version = "0.1.0",
    .kind = GD_KIND_OUTPUT,
    .summary = "write points to standard output as line protocol or JSON lines",
    .options = stdout_options,
    .config_size = sizeof(struct stdout_cfg),
    .ops = &stdout_ops,
};

GD_PLUGIN_ENTRY
{
    return &stdout_plugin;
}
