/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modbus_server.c - a Modbus TCP server for tests and benchmarks, built on
 * libmodbus's server API: one mapping, an epoll loop serving many clients.
 *
 *   modbus_server --dir DIR --port PORT [--addresses N]
 *
 * It listens on 127.0.0.1:PORT (and on 127.0.0.2 ... up to N loopback
 * addresses with --addresses, so a benchmark can have many endpoints),
 * writes DIR/ready once listening, and stops on SIGTERM.
 *
 * Holding and input registers hold the same known values, each in every
 * word and byte order (addresses below). Coil i is set when i % 3 == 0,
 * discrete input i when i % 2 == 1. Bookkeeping is readable as input
 * registers at 9000 and up (reading them is not counted):
 *   9000-9001  requests served (uint32, ABCD)
 *   9002-9003  connections accepted (uint32, ABCD)
 *   9100+u     requests for unit id u (uint16)
 * SIGUSR1 writes the request count to DIR/requests.
 *
 * DIR/modbus.conf, read at start, may add lines:
 *   exception KIND FIRST LAST CODE   answer reads of KIND (coil, discrete,
 *                                    holding, input) touching FIRST..LAST
 *                                    with exception CODE
 *   delay UNIT MS                    answer requests for UNIT after MS ms
 *                                    (other clients are served meanwhile)
 *   set KIND ADDRESS VALUE           set one register or bit
 *   dead UNIT                        never answer UNIT (TCP and RTU)
 *
 * Modbus RTU: the server also opens a pseudo-terminal and serves RTU read
 * requests (functions 1-4) of any unit id on it; the path of the terminal
 * a client opens (rtu:///dev/pts/N) is written to DIR/rtu_path.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <modbus.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define NREGS         10000
#define MAX_RULES     16
#define MAX_PENDING   4096
#define MAX_LISTENERS 4096
#define COUNTER_BASE  9000
#define UNIT_BASE     9100

enum { K_COIL, K_DISCRETE, K_HOLDING, K_INPUT };
static const char *const kinds[] = {"coil", "discrete", "holding", "input", NULL};

struct rule {
    int kind, first, last, code;
};

struct pending {
    int fd;
    long long due_ms;
    int len;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
};

static volatile sig_atomic_t stop_flag, dump_flag;
static struct rule rules[MAX_RULES];
static int nrules;
static int delay_unit = -1, delay_ms, dead_unit = -1;
static int rtu_fd = -1; /* the pty master */
static int rtu_len;
static uint8_t rtu_buf[MODBUS_RTU_MAX_ADU_LENGTH];
static struct pending pend[MAX_PENDING];
static int npend;
static unsigned long requests, connections;
static unsigned per_unit[256];
static modbus_mapping_t *map;
static const char *dir = ".";

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        dump_flag = 1;
    else
        stop_flag = 1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the known values ------------------------------------------------- */

/* wire[i] = canonical big-endian byte perm[i], for ABCD DCBA BADC CDAB. */
static const int perm16[4][2] = {{0, 1}, {1, 0}, {1, 0}, {0, 1}};
static const int perm32[4][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 0, 3, 2}, {2, 3, 0, 1}};
static const int perm64[4][8] = {{0, 1, 2, 3, 4, 5, 6, 7},
                                 {7, 6, 5, 4, 3, 2, 1, 0},
                                 {1, 0, 3, 2, 5, 4, 7, 6},
                                 {6, 7, 4, 5, 2, 3, 0, 1}};

static void put_bytes(int addr, const uint8_t *wire, int n)
{
    for (int i = 0; i < n / 2; i++) {
        uint16_t r = (uint16_t)(wire[2 * i] << 8 | wire[2 * i + 1]);
        map->tab_registers[addr + i] = r;
        map->tab_input_registers[addr + i] = r;
    }
}

static void put(int addr, uint64_t canon, int nbytes, int order)
{
    uint8_t be[8], wire[8];
    for (int i = 0; i < nbytes; i++)
        be[i] = (uint8_t)(canon >> (8 * (nbytes - 1 - i)));
    for (int i = 0; i < nbytes; i++)
        wire[i] = be[nbytes == 2   ? perm16[order][i]
                     : nbytes == 4 ? perm32[order][i]
                                   : perm64[order][i]];
    put_bytes(addr, wire, nbytes);
}

static void fill_known_values(void)
{
    float f32 = 123.456f;
    double f64 = -98765.4321;
    uint32_t f32bits;
    uint64_t f64bits;
    memcpy(&f32bits, &f32, 4);
    memcpy(&f64bits, &f64, 8);
    put(0, 54321, 2, 0);
    put(1, 54321, 2, 1);
    put(2, (uint16_t)(int16_t)-12345, 2, 0);
    put(3, (uint16_t)(int16_t)-12345, 2, 1);
    for (int o = 0; o < 4; o++) {
        put(10 + 2 * o, (uint32_t)(int32_t)-123456789, 4, o);
        put(20 + 2 * o, 3456789012u, 4, o);
        put(30 + 2 * o, f32bits, 4, o);
        put(40 + 4 * o, (uint64_t)(int64_t)-1234567890123456789LL, 8, o);
        put(60 + 4 * o, 12345678901234567890ull, 8, o);
        put(80 + 4 * o, f64bits, 8, o);
    }
    const char text[16] = "CH-2000 rev.B"; /* 13 characters, NUL padded to 8 registers */
    uint8_t swapped[16];
    for (int i = 0; i < 16; i += 2) {
        swapped[i] = (uint8_t)text[i + 1];
        swapped[i + 1] = (uint8_t)text[i];
    }
    put_bytes(100, (const uint8_t *)text, 16);
    put_bytes(108, swapped, 16);
    put(120, 0x8005, 2, 0); /* bits 0, 2 and 15 */
    put(121, 215, 2, 0);    /* 21.5 with scale 0.1 */
    for (int i = 0; i < NREGS; i++) {
        map->tab_bits[i] = i % 3 == 0;
        map->tab_input_bits[i] = i % 2 == 1;
    }
}

static int kind_of(const char *s)
{
    for (int i = 0; kinds[i]; i++)
        if (strcmp(kinds[i], s) == 0)
            return i;
    return -1;
}

static int read_conf(void)
{
    char path[4096], line[256], k[32];
    snprintf(path, sizeof(path), "%s/modbus.conf", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int a, b, c;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "exception %31s %d %d %d", k, &a, &b, &c) == 4 && kind_of(k) >= 0 &&
            nrules < MAX_RULES) {
            rules[nrules++] = (struct rule){kind_of(k), a, b, c};
        } else if (sscanf(line, "dead %d", &a) == 1) {
            dead_unit = a;
        } else if (sscanf(line, "delay %d %d", &a, &b) == 2) {
            delay_unit = a;
            delay_ms = b;
        } else if (sscanf(line, "set %31s %d %d", k, &a, &b) == 3 && a >= 0 && a < NREGS) {
            switch (kind_of(k)) {
            case K_COIL:
                map->tab_bits[a] = (uint8_t)(b != 0);
                break;
            case K_DISCRETE:
                map->tab_input_bits[a] = (uint8_t)(b != 0);
                break;
            case K_HOLDING:
                map->tab_registers[a] = (uint16_t)b;
                break;
            case K_INPUT:
                map->tab_input_registers[a] = (uint16_t)b;
                break;
            default:
                break;
            }
        } else if (line[0] != '#' && line[0] != '\n') {
            fprintf(stderr, "modbus_server: bad line in %s: %s", path, line);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

/* ---- serving ---------------------------------------------------------- */

static void update_counters(void)
{
    map->tab_input_registers[COUNTER_BASE] = (uint16_t)(requests >> 16);
    map->tab_input_registers[COUNTER_BASE + 1] = (uint16_t)requests;
    map->tab_input_registers[COUNTER_BASE + 2] = (uint16_t)(connections >> 16);
    map->tab_input_registers[COUNTER_BASE + 3] = (uint16_t)connections;
    for (int u = 0; u < 256; u++)
        map->tab_input_registers[UNIT_BASE + u] = (uint16_t)per_unit[u];
}

static void answer(modbus_t *ctx, int fd, const uint8_t *q, int len)
{
    int hl = modbus_get_header_length(ctx);
    int fn = q[hl], addr = q[hl + 1] << 8 | q[hl + 2], nb = q[hl + 3] << 8 | q[hl + 4];
    modbus_set_socket(ctx, fd);
    if (fn >= 1 && fn <= 4) {
        static const int kind_of_fn[] = {0, K_COIL, K_DISCRETE, K_HOLDING, K_INPUT};
        for (int i = 0; i < nrules; i++)
            if (rules[i].kind == kind_of_fn[fn] && addr <= rules[i].last &&
                addr + nb - 1 >= rules[i].first) {
                modbus_reply_exception(ctx, q, (unsigned)rules[i].code);
                return;
            }
    }
    update_counters();
    modbus_reply(ctx, q, len, map);
}

/* Frames are read here, not with modbus_receive(): libmodbus waits with
 * select(), which cannot watch descriptors past FD_SETSIZE, and a benchmark
 * server holds thousands. */
struct conn {
    int len;
    uint8_t buf[MODBUS_TCP_MAX_ADU_LENGTH];
};
static struct conn *conns;
static int max_fd;

static void drop_client(int fd, int ep)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    conns[fd].len = 0;
    for (int i = 0; i < npend; i++) /* forget its delayed answers */
        if (pend[i].fd == fd)
            pend[i--] = pend[--npend];
}

static void serve(modbus_t *ctx, int fd, const uint8_t *q, int len)
{
    int hl = modbus_get_header_length(ctx);
    int unit = q[hl - 1], fn = q[hl], addr = q[hl + 1] << 8 | q[hl + 2];
    if (!(fn == 4 && addr >= COUNTER_BASE)) {
        requests++;
        per_unit[unit]++;
    }
    if (unit == dead_unit)
        return;
    if (unit == delay_unit && npend < MAX_PENDING) {
        struct pending *p = &pend[npend++];
        p->fd = fd;
        p->due_ms = now_ms() + delay_ms;
        p->len = len;
        memcpy(p->query, q, (size_t)len);
        return;
    }
    answer(ctx, fd, q, len);
}

static void handle(modbus_t *ctx, int fd, int ep)
{
    struct conn *c = &conns[fd];
    ssize_t n = recv(fd, c->buf + c->len, sizeof(c->buf) - (size_t)c->len, MSG_DONTWAIT);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            drop_client(fd, ep);
        return;
    }
    c->len += (int)n;
    for (;;) { /* MBAP header: transaction, protocol, length (of unit + PDU), unit */
        if (c->len < 7)
            return;
        int frame = 6 + (c->buf[4] << 8 | c->buf[5]);
        if (frame < 8 || frame > (int)sizeof(c->buf)) {
            drop_client(fd, ep);
            return;
        }
        if (c->len < frame)
            return;
        serve(ctx, fd, c->buf, frame);
        memmove(c->buf, c->buf + frame, (size_t)(c->len - frame));
        c->len -= frame;
    }
}

/* RTU read requests are 8 bytes: unit, function, address, count, CRC. */
#define RTU_READ_FRAME 8

static void handle_rtu(modbus_t *rtu)
{
    ssize_t n = read(rtu_fd, rtu_buf + rtu_len, sizeof(rtu_buf) - (size_t)rtu_len);
    if (n <= 0)
        return;
    rtu_len += (int)n;
    while (rtu_len >= RTU_READ_FRAME) {
        uint8_t q[RTU_READ_FRAME];
        memcpy(q, rtu_buf, sizeof(q));
        memmove(rtu_buf, rtu_buf + RTU_READ_FRAME, (size_t)(rtu_len - RTU_READ_FRAME));
        rtu_len -= RTU_READ_FRAME;
        if (q[1] < 1 || q[1] > 4) { /* not a read: resynchronise */
            rtu_len = 0;
            return;
        }
        requests++;
        per_unit[q[0]]++;
        if (q[0] != dead_unit)
            answer(rtu, rtu_fd, q, RTU_READ_FRAME);
    }
}

/* Open the pty; keep its terminal side open (raw) so the master never
 * hangs up between clients. */
static int open_rtu(void)
{
    rtu_fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (rtu_fd < 0 || grantpt(rtu_fd) < 0 || unlockpt(rtu_fd) < 0)
        return -1;
    const char *name = ptsname(rtu_fd);
    int keep = name ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
    struct termios t;
    if (keep < 0 || tcgetattr(keep, &t) < 0)
        return -1;
    cfmakeraw(&t);
    tcsetattr(keep, TCSANOW, &t);
    char path[4096];
    snprintf(path, sizeof(path), "%s/rtu_path", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", name);
    fclose(f);
    return 0; /* @keep stays open until exit */
}

static int listen_on(const char *addr, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (inet_pton(AF_INET, addr, &a.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0) {
        fprintf(stderr, "modbus_server: %s:%d: %s\n", addr, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static bool is_listener(const int *lfd, int n, int fd)
{
    for (int i = 0; i < n; i++)
        if (lfd[i] == fd)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    int port = 0, naddr = 1;
    static const struct option longs[] = {{"dir", required_argument, NULL, 'd'},
                                          {"port", required_argument, NULL, 'p'},
                                          {"addresses", required_argument, NULL, 'a'},
                                          {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "d:p:a:", longs, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'a':
            naddr = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || naddr < 1 || naddr > MAX_LISTENERS) {
        fprintf(stderr, "usage: modbus_server --dir DIR --port PORT [--addresses N]\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
    map = modbus_mapping_new(NREGS, NREGS, NREGS, NREGS);
    if (!ctx || !map)
        return 1;
    fill_known_values();
    if (read_conf() < 0)
        return 1;

    struct rlimit rl;
    max_fd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1048576 ? (int)rl.rlim_cur : 65536;
    conns = calloc((size_t)max_fd, sizeof(*conns));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0)
        return 1;
    modbus_t *rtu = modbus_new_rtu("/dev/null", 9600, 'N', 8, 1);
    if (!rtu || open_rtu() < 0) {
        fprintf(stderr, "modbus_server: cannot open a pseudo-terminal: %s\n", strerror(errno));
        return 1;
    }
    struct epoll_event rev = {.events = EPOLLIN, .data.fd = rtu_fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, rtu_fd, &rev);
    static int lfd[MAX_LISTENERS];
    for (int i = 0; i < naddr; i++) {
        char a[32];
        /* 127.0.0.1, 127.0.0.2, ... 127.0.0.254, 127.0.1.1, ... */
        snprintf(a, sizeof(a), "127.0.%d.%d", i / 254, i % 254 + 1);
        lfd[i] = listen_on(a, port);
        if (lfd[i] < 0)
            return 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd[i], &ev);
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/ready", dir);
    FILE *rf = fopen(path, "w");
    if (rf)
        fclose(rf);

    struct epoll_event evs[256];
    while (!stop_flag) {
        if (dump_flag) {
            dump_flag = 0;
            snprintf(path, sizeof(path), "%s/requests", dir);
            FILE *f = fopen(path, "w");
            if (f) {
                fprintf(f, "%lu\n", requests);
                fclose(f);
            }
        }
        int timeout = -1;
        long long now = now_ms();
        for (int i = 0; i < npend; i++) {
            long long left = pend[i].due_ms - now;
            if (timeout < 0 || left < timeout)
                timeout = left < 0 ? 0 : (int)left;
        }
        int n = epoll_wait(ep, evs, 256, timeout);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == rtu_fd) {
                handle_rtu(rtu);
            } else if (is_listener(lfd, naddr, fd)) {
                int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
                if (cfd < 0)
                    continue;
                if (cfd >= max_fd) {
                    close(cfd);
                    continue;
                }
                conns[cfd].len = 0;
                connections++;
                struct epoll_event ev = {.events = EPOLLIN, .data.fd = cfd};
                epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
            } else {
                handle(ctx, fd, ep);
            }
        }
        now = now_ms();
        for (int i = 0; i < npend; i++)
            if (pend[i].due_ms <= now) {
                struct pending p = pend[i];
                pend[i--] = pend[--npend];
                answer(ctx, p.fd, p.query, p.len);
            }
    }
    for (int i = 0; i < naddr; i++)
        close(lfd[i]);
    close(ep);
    free(conns);
    modbus_free(rtu);
    modbus_mapping_free(map);
    modbus_free(ctx);
    return 0;
}
