/* SPDX-License-Identifier: Apache-2.0 */
/*
 * file.c - append every batch to a file as line protocol or JSON lines, with
 * size-based rotation and logrotate-friendly reopening.
 *
 * Durability: a failed write (ENOSPC, EIO...) is reported as GD_RETRY and the
 * core retries with backoff. The plugin keeps a reference to the batch and
 * the byte offset reached, so a retry of the same batch writes only the rest
 * (no duplicated or torn line). If another batch comes first, the torn line
 * is completed before it.
 */
#include <gatherd/gatherd.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
/* How often the path is checked for being removed or renamed externally. */
#define REOPEN_CHECK_NS NS_PER_S
/* Parent directories created by `mkdir = true`. */
#define DIR_MODE 0755

enum { FMT_LINE = GD_FORMAT_LINE, FMT_JSON = GD_FORMAT_JSON };

struct file_cfg {
    char *path;
    int format;    /* FMT_* */
    int precision; /* gd_precision */
    int64_t rotate_bytes;
    int64_t rotate_keep;
    bool mkdir;
    bool sync;
    char *mode;
};

static const char *const format_choices[] = {"line", "json", NULL};
static const char *const precision_choices[] = {"ns", "us", "ms", "s", NULL};

static const struct gd_option file_options[] = {
    GD_OPT_STRING("path", NULL, GD_OF_REQUIRED, offsetof(struct file_cfg, path),
                  "file to append to (relative to the working directory)"),
    GD_OPT_ENUM("format", "line", format_choices, 0, offsetof(struct file_cfg, format),
                "line protocol or JSON lines"),
    GD_OPT_ENUM("precision", "ns", precision_choices, 0, offsetof(struct file_cfg, precision),
                "timestamp unit of line protocol (JSON always carries ns)"),
    GD_OPT_INT("rotate_bytes", "0", 0, 1e15, 0, offsetof(struct file_cfg, rotate_bytes),
               "rotate before the file would grow past this size; 0: never"),
    GD_OPT_INT("rotate_keep", "5", 1, 1000, 0, offsetof(struct file_cfg, rotate_keep),
               "rotated files kept (path.1 newest ... path.N oldest)"),
    GD_OPT_BOOL("mkdir", "true", 0, offsetof(struct file_cfg, mkdir),
                "create missing parent directories"),
    GD_OPT_BOOL("sync", "false", 0, offsetof(struct file_cfg, sync), "fdatasync after every batch"),
    GD_OPT_STRING("mode", "0644", 0, offsetof(struct file_cfg, mode),
                  "octal permissions of a newly created file (umask applies)"),
    GD_OPT_END,
};

struct fout {
    gd_instance *inst;
    const struct file_cfg *cfg;
    mode_t mode;
    int fd;
    bool is_reg; /* rotation and fdatasync only make sense for regular files */
    dev_t dev;
    ino_t ino;
    uint64_t size; /* bytes in the current file, as far as we know */
    int64_t next_check_ns;
    char *rot_from; /* scratch for "path.N" names */
    char *rot_to;
    size_t rot_size;

    gd_buf buf;        /* the encoded batch, reused */
    gd_index_set rejects; /* points that could not be encoded */
    gd_batch *pending; /* referenced: batch whose write was cut short */
    size_t off;        /* bytes of buf already written */
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int errno_to_gd(int e)
{
    switch (e) {
    case ENOENT:
        return GD_ENOENT;
    case EACCES:
    case EPERM:
    case EROFS:
        return GD_EPERM;
    case ENOMEM:
        return GD_ENOMEM;
    default:
        return GD_EIO;
    }
}

/* ---- encoding ---------------------------------------------------------- */

/* Encode every point of @b into s->buf; points that cannot be encoded leave
 * nothing behind and are listed in s->rejects. */
static int encode(struct fout *s, const gd_batch *b)
{
    const char *why = NULL;
    gd_buf_reset(&s->buf);
    s->off = 0;
    int rc = gd_encode_batch(&s->buf, b, (gd_format)s->cfg->format, (gd_precision)s->cfg->precision, &s->rejects, &why);
    if (rc == 0 && s->rejects.n)
        gd_log_ratelimited(s->inst, GD_WARN, "file: %zu points dropped, the first (#%u): %s",
                           s->rejects.n, s->rejects.idx[0], why);
    return rc;
}

/* ---- the file ---------------------------------------------------------- */

/* mkdir -p of the directories leading to @path (not the file itself). */
static int make_parents(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return -ENOMEM;
    int err = 0;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, DIR_MODE) < 0 && errno != EEXIST) {
            err = -errno;
            break;
        }
        *p = '/';
    }
    free(dir);
    return err;
}

/* Write s->buf from s->off up to @end. Returns 0 or a negative errno. */
static int write_to(struct fout *s, size_t end)
{
    while (s->off < end) {
        ssize_t n = write(s->fd, s->buf.data + s->off, end - s->off);
        if (n > 0) {
            s->off += (size_t)n;
            s->size += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : -EIO;
    }
    return 0;
}

/* Complete the line a cut-short write left torn (best effort), so whatever
 * is written next starts on a line of its own. */
static void complete_torn_line(struct fout *s)
{
    if (!s->pending || s->fd < 0 || s->off == 0 || s->off >= s->buf.len ||
        s->buf.data[s->off - 1] == '\n')
        return;
    const char *nl = memchr(s->buf.data + s->off, '\n', s->buf.len - s->off);
    if (nl)
        write_to(s, (size_t)(nl - s->buf.data) + 1);
}

/* (Re)open the path; the old descriptor, if any, is closed only once the new
 * one is open. Returns 0 or a negative errno. */
static int open_file(struct fout *s)
{
    int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC;
    int fd = open(s->cfg->path, flags, s->mode);
    if (fd < 0 && errno == ENOENT && s->cfg->mkdir) {
        int err = make_parents(s->cfg->path);
        if (err < 0)
            return err;
        fd = open(s->cfg->path, flags, s->mode);
    }
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (s->fd >= 0) {
        complete_torn_line(s);
        close(s->fd);
    }
    s->fd = fd;
    s->is_reg = S_ISREG(st.st_mode);
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = (uint64_t)st.st_size;
    return 0;
}

/* Reopen when the file was removed or renamed under us (logrotate), checked
 * at most once per REOPEN_CHECK_NS. */
static void check_reopen(struct fout *s)
{
    int64_t now = mono_ns();
    if (s->fd >= 0 && now < s->next_check_ns)
        return;
    s->next_check_ns = now + REOPEN_CHECK_NS;

    struct stat cur, at_path;
    bool gone = s->fd < 0 || (fstat(s->fd, &cur) == 0 && cur.st_nlink == 0) ||
                stat(s->cfg->path, &at_path) < 0 || at_path.st_dev != s->dev ||
                at_path.st_ino != s->ino;
    if (!gone) {
        s->size = (uint64_t)at_path.st_size; /* truncated (copytruncate) or shared */
        return;
    }
    bool had_fd = s->fd >= 0;
    int err = open_file(s);
    if (err < 0)
        gd_log_ratelimited(s->inst, GD_WARN, "file: cannot open %s: %s", s->cfg->path,
                           strerror(-err));
    else if (had_fd)
        gd_log(s->inst, GD_INFO, "file: %s was moved or removed; reopened", s->cfg->path);
}

static void rot_name(char *dst, size_t size, const char *path, int64_t i)
{
    if (i == 0)
        snprintf(dst, size, "%s", path);
    else
        snprintf(dst, size, "%s.%lld", path, (long long)i);
}

/* path -> path.1 -> ... -> path.keep (the oldest is replaced), then open a
 * fresh path. On failure keep appending to the current file: no data lost. */
static void rotate(struct fout *s)
{
    if (s->cfg->sync && fdatasync(s->fd) < 0)
        gd_log_ratelimited(s->inst, GD_WARN, "file: fdatasync %s: %s", s->cfg->path,
                           strerror(errno));
    for (int64_t i = s->cfg->rotate_keep - 1; i >= 0; i--) {
        rot_name(s->rot_from, s->rot_size, s->cfg->path, i);
        rot_name(s->rot_to, s->rot_size, s->cfg->path, i + 1);
        if (rename(s->rot_from, s->rot_to) < 0 && errno != ENOENT) {
            gd_log_ratelimited(s->inst, GD_WARN, "file: cannot rotate %s to %s: %s", s->rot_from,
                               s->rot_to, strerror(errno));
            if (i == 0)
                return;
        }
    }
    int err = open_file(s);
    if (err < 0)
        gd_log_ratelimited(s->inst, GD_WARN, "file: cannot open %s after rotation: %s",
                           s->cfg->path, strerror(-err));
}

static bool needs_rotation(const struct fout *s)
{
    uint64_t limit = (uint64_t)s->cfg->rotate_bytes;
    return limit && s->is_reg && s->size > 0 && s->size + s->buf.len > limit;
}

/* ---- callbacks --------------------------------------------------------- */

static void drop_pending(struct fout *s)
{
    complete_torn_line(s);
    gd_batch_unref(s->pending);
    s->pending = NULL;
}

static int retry_later(struct fout *s, gd_batch *b, gd_done_fn done, void *token)
{
    if (!s->pending)
        s->pending = gd_batch_ref(b);
    done(token, GD_RETRY, NULL);
    return 0;
}

static int file_write(void *state, gd_batch *b, gd_done_fn done, void *token)
{
    struct fout *s = state;

    check_reopen(s);
    if (s->pending != b) {
        drop_pending(s);
        int rc = encode(s, b);
        if (rc < 0)
            return rc; /* done() not called: the core retries */
        if (s->fd >= 0 && needs_rotation(s))
            rotate(s);
    }
    if (s->fd < 0)
        return retry_later(s, b, done, token); /* check_reopen() logged why */

    int err = write_to(s, s->buf.len);
    if (err < 0) {
        gd_log_ratelimited(s->inst, GD_WARN, "file: write to %s failed: %s", s->cfg->path,
                           strerror(-err));
        return retry_later(s, b, done, token);
    }
    if (s->cfg->sync && s->is_reg && fdatasync(s->fd) < 0) {
        /* Durability unknown: write the batch again (at-least-once). */
        gd_log_ratelimited(s->inst, GD_WARN, "file: fdatasync %s failed: %s", s->cfg->path,
                           strerror(errno));
        s->off = 0;
        return retry_later(s, b, done, token);
    }
    gd_batch_unref(s->pending);
    s->pending = NULL;
    gd_rejects rej = {.idx = s->rejects.idx, .n = s->rejects.n};
    done(token, GD_DELIVERED, s->rejects.n ? &rej : NULL);
    return 0;
}

static int file_flush(void *state)
{
    struct fout *s = state;
    if (s->fd < 0 || !s->is_reg)
        return 0;
    if (fdatasync(s->fd) < 0) {
        gd_log_ratelimited(s->inst, GD_WARN, "file: fdatasync %s failed: %s", s->cfg->path,
                           strerror(errno));
        return GD_EIO;
    }
    return 0;
}

static void file_destroy(void *state)
{
    struct fout *s = state;
    if (!s)
        return;
    if (s->fd >= 0) {
        complete_torn_line(s);
        close(s->fd);
    }
    gd_batch_unref(s->pending);
    gd_buf_free(&s->buf);
    gd_index_set_free(&s->rejects);
    free(s->rot_from);
    free(s->rot_to);
    free(s);
}

static int parse_mode(const char *text, mode_t *mode)
{
    char *end;
    if (!text || !text[0])
        return GD_EINVAL;
    errno = 0;
    long v = strtol(text, &end, 8);
    if (errno || *end || v < 0 || v > 07777)
        return GD_EINVAL;
    *mode = (mode_t)v;
    return 0;
}

static int file_init(gd_instance *inst, void *cfgp, void **state)
{
    const struct file_cfg *cfg = cfgp;
    if (!cfg->path || !cfg->path[0]) {
        gd_log(inst, GD_ERROR, "file: path must not be empty");
        return GD_ECONFIG;
    }
    mode_t mode;
    if (parse_mode(cfg->mode, &mode) < 0) {
        gd_log(inst, GD_ERROR, "file: mode \"%s\" is not an octal file mode such as \"0644\"",
               cfg->mode ? cfg->mode : "");
        return GD_ECONFIG;
    }

    struct fout *s = calloc(1, sizeof(*s));
    if (!s)
        return GD_ENOMEM;
    s->inst = inst;
    s->cfg = cfg;
    s->mode = mode;
    s->fd = -1;
    s->rot_size = strlen(cfg->path) + 24; /* ".N" with any int64 */
    s->rot_from = malloc(s->rot_size);
    s->rot_to = malloc(s->rot_size);
    int rc = GD_ENOMEM;
    if (!s->rot_from || !s->rot_to)
        goto out_destroy;

    int err = open_file(s);
    if (err < 0) {
        gd_log(inst, GD_ERROR, "file: cannot open %s: %s", cfg->path, strerror(-err));
        rc = errno_to_gd(-err);
        goto out_destroy;
    }
    s->next_check_ns = mono_ns() + REOPEN_CHECK_NS;
    if (cfg->format == FMT_JSON && cfg->precision != GD_PREC_NS)
        gd_log(inst, GD_WARN, "file: precision applies to line protocol only; JSON time is ns");
    *state = s;
    return 0;

out_destroy:
    file_destroy(s);
    return rc;
}

static const struct gd_output_ops file_ops = {
    .struct_size = sizeof(struct gd_output_ops),
    .init = file_init,
    .destroy = file_destroy,
    .write = file_write,
    .flush = file_flush,
};

static const struct gd_plugin file_plugin = {
    GD_PLUGIN_ABI,
    .name = "file",
    .version = "0.1.0",
    .kind = GD_KIND_OUTPUT,
    .summary = "append points to a file (line protocol or JSON lines) with rotation",
    .options = file_options,
    .config_size = sizeof(struct file_cfg),
    .ops = &file_ops,
};

GD_PLUGIN_ENTRY
{
    return &file_plugin;
}
