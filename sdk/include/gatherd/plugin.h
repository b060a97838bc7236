/* SPDX-License-Identifier: Apache-2.0 */
/**
 * gatherd/plugin.h - the plugin ABI: descriptor, option table, callbacks and
 * the services the core offers to plugins.
 *
 * A plugin is a shared object exporting one symbol:
 *
 *     GD_EXPORT const struct gd_plugin *gd_plugin_entry(void);
 *
 * The core dlopen()s it (RTLD_NOW|RTLD_LOCAL), checks the ABI version, reads
 * the option table, parses and validates every option of every configured
 * instance into a zeroed struct of config_size bytes (the plugin's config
 * struct, filled through the table's offsetof fields), then calls init().
 * The core owns that struct and frees it (strings and lists included) after
 * destroy(). A plugin never parses configuration by hand.
 *
 * Threads:
 *  - init, destroy, start, stop: the main (event loop) thread;
 *  - collect: a worker thread; never two collects of one instance at once;
 *  - process: any thread, but never two calls on one instance at once;
 *  - write, flush (outputs): the output instance's own writer thread;
 *  - timer, fd-watch and work "after" callbacks: the main thread.
 *
 * Structs here start with their size or version and only grow at the end;
 * the core reads only the fields inside a plugin's struct_size.
 */
#ifndef GATHERD_PLUGIN_H
#define GATHERD_PLUGIN_H

#include <gatherd/batch.h>
#include <gatherd/log.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- option table ------------------------------------------------------ */

/** Option value types and the C type each fills at its offset. */
typedef enum gd_opt_type {
    GD_OT_BOOL = 1,     /* bool */
    GD_OT_INT = 2,      /* int64_t */
    GD_OT_DOUBLE = 3,   /* double */
    GD_OT_DURATION = 4, /* double seconds; config: number of seconds or "250ms", "5s", "2m", "1h" */
    GD_OT_STRING = 5,   /* char * (NULL when unset without default) */
    GD_OT_ENUM = 6,     /* int: index into choices */
    GD_OT_STRLIST = 7,  /* gd_strlist; config: "a" or ["a", "b"] */
    GD_OT_KV = 8,       /* gd_kvlist; config: group of strings { site = "lab-a"; } */
    GD_OT_LIST = 9,     /* gd_list of sub-structs; config: ( { ... }, { ... } ) */
    GD_OT_GROUP = 10,   /* a nested struct at offset; config: { ... } */
} gd_opt_type;

/** Option flags. */
#define GD_OF_REQUIRED  (1u << 0) /* must be set; no default */
#define GD_OF_SENSITIVE (1u << 1) /* secret: redacted in logs and -t output */

/** Storage for GD_OT_STRLIST. */
typedef struct gd_strlist {
    char **v;
    size_t n;
} gd_strlist;

/** One key/value pair of a GD_OT_KV option. */
typedef struct gd_kv {
    char *key;
    char *value;
} gd_kv;

/** Storage for GD_OT_KV. Keys keep config order. */
typedef struct gd_kvlist {
    gd_kv *v;
    size_t n;
} gd_kvlist;

/** Storage for GD_OT_LIST: @n items of the option's item_size bytes each. */
typedef struct gd_list {
    void *items;
    size_t n;
} gd_list;

/** One option. Bounds apply to INT, DOUBLE and DURATION when min < max. */
struct gd_option {
    const char *name;
    uint32_t type;  /* gd_opt_type */
    uint32_t flags; /* GD_OF_* */
    const char *def; /* default, as config text ("502", "true", "5s"); NULL: none */
    double min;
    double max;
    const char *const *choices; /* ENUM: NULL-terminated list */
    size_t offset;              /* offsetof(struct my_cfg, field) */
    const char *help;
    const struct gd_option *sub; /* LIST, GROUP: the item's option table */
    size_t item_size;            /* LIST: sizeof one item */
};

_Static_assert(offsetof(struct gd_option, def) == 16, "ABI: gd_option.def");
_Static_assert(offsetof(struct gd_option, offset) == 48, "ABI: gd_option.offset");
_Static_assert(sizeof(struct gd_option) == 80, "ABI: gd_option");

#define GD__OPT(n, t, f, d, lo, hi, ch, off, h, s, is)                                             \
    {                                                                                              \
        .name = (n), .type = (t), .flags = (f), .def = (d), .min = (lo), .max = (hi),              \
        .choices = (ch), .offset = (off), .help = (h), .sub = (s), .item_size = (is)               \
    }
#define GD_OPT_BOOL(name, def, flags, off, help)                                                   \
    GD__OPT(name, GD_OT_BOOL, flags, def, 0, 0, NULL, off, help, NULL, 0)
#define GD_OPT_INT(name, def, min, max, flags, off, help)                                          \
    GD__OPT(name, GD_OT_INT, flags, def, min, max, NULL, off, help, NULL, 0)
#define GD_OPT_DOUBLE(name, def, min, max, flags, off, help)                                       \
    GD__OPT(name, GD_OT_DOUBLE, flags, def, min, max, NULL, off, help, NULL, 0)
#define GD_OPT_DURATION(name, def, min, max, flags, off, help)                                     \
    GD__OPT(name, GD_OT_DURATION, flags, def, min, max, NULL, off, help, NULL, 0)
#define GD_OPT_STRING(name, def, flags, off, help)                                                 \
    GD__OPT(name, GD_OT_STRING, flags, def, 0, 0, NULL, off, help, NULL, 0)
#define GD_OPT_ENUM(name, def, choices, flags, off, help)                                          \
    GD__OPT(name, GD_OT_ENUM, flags, def, 0, 0, choices, off, help, NULL, 0)
#define GD_OPT_STRLIST(name, flags, off, help)                                                     \
    GD__OPT(name, GD_OT_STRLIST, flags, NULL, 0, 0, NULL, off, help, NULL, 0)
#define GD_OPT_KV(name, flags, off, help)                                                          \
    GD__OPT(name, GD_OT_KV, flags, NULL, 0, 0, NULL, off, help, NULL, 0)
#define GD_OPT_LIST(name, sub, item_type, flags, off, help)                                        \
    GD__OPT(name, GD_OT_LIST, flags, NULL, 0, 0, NULL, off, help, sub, sizeof(item_type))
#define GD_OPT_GROUP(name, sub, flags, off, help)                                                  \
    GD__OPT(name, GD_OT_GROUP, flags, NULL, 0, 0, NULL, off, help, sub, 0)
#define GD_OPT_END                                                                                 \
    {                                                                                              \
        .name = NULL                                                                               \
    }

/* ---- callbacks --------------------------------------------------------- */

typedef struct gd_instance gd_instance;

/** Result of an output write, reported through done(). */
typedef enum gd_status {
    GD_DELIVERED = 0, /* written (but for @rejects, which are dropped and counted) */
    GD_RETRY = 1,     /* transient failure: the core retries with backoff
                         (the points in @rejects, if any, are dropped first) */
    GD_REJECT = 2,    /* permanent failure: the whole batch is dropped and counted */
} gd_status;

/** An index set of points of the written batch (sorted, unique). */
typedef struct gd_rejects {
    const uint32_t *idx;
    size_t n;
} gd_rejects;

/** done() - report the outcome of one write(). Call it exactly once per
 * successful write(), from any thread, synchronously or later. @rejects is
 * read before done() returns. */
typedef void (*gd_done_fn)(void *token, int status, const gd_rejects *rejects);

/** Returned by process() to forward @in unchanged (and ignore @out). */
#define GD_PASS 1

/** init() - build the instance state from the filled config struct @cfg
 * (owned by the core, valid until after destroy()). Return 0 and set
 * *@state, or a negative GD_E* code after logging why. */
typedef int (*gd_init_fn)(gd_instance *inst, void *cfg, void **state);
/** destroy() - free the state. Called once after a successful init(). */
typedef void (*gd_destroy_fn)(void *state);

/** Input callbacks. A polled input sets collect; an event-driven one sets
 * start and stop and hands batches to the core with gd_emit(). */
struct gd_input_ops {
    uint32_t struct_size;
    uint32_t reserved;
    gd_init_fn init;
    gd_destroy_fn destroy;
    /** collect() - read the device and add points to @out (owned by the core).
     * May block. Points added are forwarded even when an error is returned
     * (partial success); the error is counted. */
    int (*collect)(void *state, gd_batch *out);
    /** start() - begin producing (register fd watches, timers). */
    int (*start)(void *state);
    /** stop() - stop producing; no gd_emit() after it returns. */
    void (*stop)(void *state);
};

/** Processor callbacks. */
struct gd_processor_ops {
    uint32_t struct_size;
    uint32_t reserved;
    gd_init_fn init;
    gd_destroy_fn destroy;
    /** process() - read @in (frozen, borrowed) and add the resulting points to
     * @out (owned by the core, forwarded after return). Return 0, GD_PASS to
     * forward @in untouched, or a negative code (counted; nothing forwarded
     * from this call, @in is passed on unchanged so nothing is lost). */
    int (*process)(void *state, const gd_batch *in, gd_batch *out);
    /** flush() - optional: add any points held back (windows, state) to @out;
     * called when the instance is removed and at shutdown. */
    int (*flush)(void *state, gd_batch *out);
};

/** Output callbacks. */
struct gd_output_ops {
    uint32_t struct_size;
    uint32_t reserved;
    gd_init_fn init;
    gd_destroy_fn destroy;
    /** write() - deliver @b. @b is borrowed until done() is called; take a
     * gd_batch_ref() to keep it longer. Return 0 and call done() exactly
     * once, or return a negative code and never call done() (counted as a
     * retryable failure). */
    int (*write)(void *state, gd_batch *b, gd_done_fn done, void *token);
    /** flush() - optional: push out anything the plugin buffers; called
     * before destroy() and when the queue drains at shutdown. */
    int (*flush)(void *state);
};

_Static_assert(offsetof(struct gd_input_ops, init) == 8, "ABI: gd_input_ops");
_Static_assert(offsetof(struct gd_input_ops, stop) == 40, "ABI: gd_input_ops");
_Static_assert(offsetof(struct gd_processor_ops, flush) == 32, "ABI: gd_processor_ops");
_Static_assert(offsetof(struct gd_output_ops, flush) == 32, "ABI: gd_output_ops");

/* ---- descriptor -------------------------------------------------------- */

typedef enum gd_kind {
    GD_KIND_INPUT = 1,
    GD_KIND_PROCESSOR = 2,
    GD_KIND_OUTPUT = 3,
} gd_kind;

/** The plugin descriptor returned by gd_plugin_entry(). */
struct gd_plugin {
    uint16_t abi_major; /* GD_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor; /* GD_ABI_MINOR the plugin was built against */
    uint32_t struct_size; /* sizeof(struct gd_plugin) at build time */
    const char *name;     /* unique plugin name, e.g. "modbus" */
    const char *version;  /* the plugin's own version, e.g. "1.2.0" */
    uint32_t kind;        /* gd_kind */
    uint32_t flags;       /* GD_PLUGIN_* */
    const char *summary;  /* one line for --list-plugins */
    const struct gd_option *options; /* terminated by GD_OPT_END */
    size_t config_size;              /* sizeof the config struct options fill */
    const void *ops; /* struct gd_input_ops / gd_processor_ops / gd_output_ops */
};

_Static_assert(offsetof(struct gd_plugin, struct_size) == 4, "ABI: gd_plugin.struct_size");
_Static_assert(offsetof(struct gd_plugin, name) == 8, "ABI: gd_plugin.name");
_Static_assert(offsetof(struct gd_plugin, kind) == 24, "ABI: gd_plugin.kind");
_Static_assert(offsetof(struct gd_plugin, options) == 40, "ABI: gd_plugin.options");
_Static_assert(offsetof(struct gd_plugin, ops) == 56, "ABI: gd_plugin.ops");
_Static_assert(sizeof(struct gd_plugin) == 64, "ABI: gd_plugin");

/** Plugin flag: an output whose instances may run several writers
 * (`writers = N`): the core calls init() once per writer and each writer
 * thread writes with its own state, in parallel with the others. */
#define GD_PLUGIN_PARALLEL (1u << 0)

/** Plugin flag: init() has no outside effects (it connects to nothing and
 * writes nothing; threads it starts end in destroy()), so `gatherd -t` runs
 * init() and destroy() of the plugin's instances, with debug logging, to
 * show the checks and plans only init() can make (a Modbus request plan,
 * an unknown profile). (ABI 1.1) */
#define GD_PLUGIN_TEST_INIT (1u << 1)

/** Initialiser for the version header of struct gd_plugin (abi_major,
 * abi_minor, struct_size). The ops structs set their own
 * `.struct_size = sizeof(struct gd_input_ops)` (or processor, output). */
#define GD_PLUGIN_ABI                                                                              \
    .abi_major = GD_ABI_MAJOR, .abi_minor = GD_ABI_MINOR, .struct_size = sizeof(struct gd_plugin)

/** The entry symbol's name, as the loader looks it up. */
#define GD_PLUGIN_ENTRY_SYMBOL "gd_plugin_entry"

/** gd_plugin_entry() - the one symbol a plugin exports; define it once per
 * plugin with GD_PLUGIN_ENTRY { return &my_plugin; }. The core calls it
 * once after dlopen(); the descriptor must stay valid while loaded. */
GD_EXPORT const struct gd_plugin *gd_plugin_entry(void);
#define GD_PLUGIN_ENTRY GD_EXPORT const struct gd_plugin *gd_plugin_entry(void)

/* ---- services ---------------------------------------------------------- */

/** gd_instance_name() - the instance's configured name ("chamber-7"). */
GD_EXPORT const char *gd_instance_name(const gd_instance *inst);

/** gd_instance_plugin() - the plugin name of the instance ("modbus"). */
GD_EXPORT const char *gd_instance_plugin(const gd_instance *inst);

/** gd_instance_interval() - the collect interval in seconds (polled inputs;
 * 0 for continuous collection or other kinds). */
GD_EXPORT double gd_instance_interval(const gd_instance *inst);

/** gd_emit() - hand @b to the core, which freezes it and routes it through
 * the processors after this instance to the outputs. Thread-safe. Always
 * consumes @b, even on error. Returns GD_ESHUTDOWN after stop() or during
 * shutdown, GD_EQUEUEFULL when points were dropped by a full `block` queue
 * (counted); the points are accounted for either way. */
GD_EXPORT int gd_emit(gd_instance *inst, gd_batch *b);

/** gd_count_drop() - count @n points the plugin dropped for @reason (a short
 * static string such as "parse_error"), so no drop is silent. Thread-safe. */
GD_EXPORT void gd_count_drop(gd_instance *inst, const char *reason, uint64_t n);

/** gd_count_error() - count one error of the instance. Thread-safe. */
GD_EXPORT void gd_count_error(gd_instance *inst);

/** Loop-thread callbacks take a context that travels with its destructor:
 * @ctx_free (may be NULL) is called on @ctx once the timer, watch or work
 * item is finished. */
typedef void (*gd_free_fn)(void *ctx);

typedef struct gd_timer gd_timer;
typedef struct gd_watch gd_watch;

/** gd_timer_start() - call @cb(@ctx) on the main thread after @first_ms, then
 * every @repeat_ms (0: once). Main thread only. *@out may be NULL for a
 * fire-and-forget one-shot timer. */
GD_EXPORT int gd_timer_start(gd_instance *inst, uint64_t first_ms, uint64_t repeat_ms,
                             void (*cb)(void *ctx), void *ctx, gd_free_fn ctx_free,
                             gd_timer **out);

/** gd_timer_stop() - stop and release the timer (ctx_free runs). Accepts NULL. */
GD_EXPORT void gd_timer_stop(gd_timer *t);

#define GD_READABLE 1
#define GD_WRITABLE 2

/** gd_fd_watch() - call @cb(@ctx, fd, revents) on the main thread whenever
 * @fd is ready for @events (GD_READABLE|GD_WRITABLE). Main thread only. */
GD_EXPORT int gd_fd_watch(gd_instance *inst, int fd, int events,
                          void (*cb)(void *ctx, int fd, int revents), void *ctx,
                          gd_free_fn ctx_free, gd_watch **out);

/** gd_fd_watch_update() - change the events watched. */
GD_EXPORT int gd_fd_watch_update(gd_watch *w, int events);

/** gd_fd_unwatch() - stop watching and release (ctx_free runs). Accepts NULL. */
GD_EXPORT void gd_fd_unwatch(gd_watch *w);

/** gd_work_queue() - run @work(@ctx) on a worker thread, then @after(@ctx,
 * status) on the main thread (status 0, or GD_ESHUTDOWN if cancelled), then
 * ctx_free. Main thread only. On error nothing is called. */
GD_EXPORT int gd_work_queue(gd_instance *inst, void (*work)(void *ctx),
                            void (*after)(void *ctx, int status), void *ctx, gd_free_fn ctx_free);

/** gd_call_on_loop() - run @cb(@ctx) on the main thread soon, then ctx_free.
 * Thread-safe: for plugins with threads of their own. */
GD_EXPORT int gd_call_on_loop(gd_instance *inst, void (*cb)(void *ctx), void *ctx,
                              gd_free_fn ctx_free);

/** gd_backpressure() - true while an output this instance's points may
 * reach has a full `overflow = "block"` queue: a gd_emit() now would drop
 * points (counted). Inputs that can refuse work without losing it check
 * this first: an HTTP listener answers 503 so the node retries, a broker
 * client leaves messages unacknowledged. Thread-safe. (ABI 1.1) */
GD_EXPORT bool gd_backpressure(gd_instance *inst);

/** gd_instance_spool_dir() - the directory this instance may keep files in
 * across restarts: `global.spool_dir/<instance name>` (not created here;
 * the core's own queue spool uses its top level, so put plugin files in a
 * subdirectory). Copy it in init(); NULL without a daemon. (ABI 1.1) */
GD_EXPORT const char *gd_instance_spool_dir(const gd_instance *inst);

/** gd_emit_durable() - true when every output is configured so that a
 * gd_emit() that returned 0 left the points on disk: `queue.overflow =
 * "spool"` with `spool_always = true` and `spool_sync = "batch"` (the push
 * returns after fdatasync). Inputs that acknowledge to their sources (an
 * HTTP listener with `ack = "spooled"`, an MQTT QoS 1 subscriber) check it
 * to know whether their acknowledgement means "safe to delete". Such an
 * emit blocks for the disk write: call it off the main thread (gd_work_queue)
 * where latency matters. Thread-safe. (ABI 1.1) */
GD_EXPORT bool gd_emit_durable(gd_instance *inst);

/** gd_shutdown_request() - ask the daemon to stop gracefully (as SIGTERM).
 * Thread-safe. Used by finite inputs such as a benchmark source. */
GD_EXPORT void gd_shutdown_request(gd_instance *inst, const char *reason);

#ifdef __cplusplus
}
#endif
#endif
