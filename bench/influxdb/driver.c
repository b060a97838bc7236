/* SPDX-License-Identifier: Apache-2.0 */
/*
 * driver.c - the reference client of bench/influxdb: posts a line-protocol
 * file to InfluxDB 1.x in bodies of N lines over C keep-alive HTTP/1.1
 * connections (one thread each, plain sockets), as fast as the server takes
 * them: each connection sends the next body not yet taken as soon as its
 * previous one is answered. Every body is cut from the file before timing starts. Adapted from
 * the sink baseline driver (influx_write_bench.c).
 *
 *   cc -O2 -pthread -o driver driver.c
 *   driver -p PORT [-h 127.0.0.1] [-d DB] [-c 2] [-b 5000] FILE
 *
 * Prints one line: points, posts, wall seconds (first POST to last 204),
 * points/s, and the POST latency median and 99th percentile. Exits 1 when
 * any response was not 204.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host = "127.0.0.1", *db = "bench";
static int port, senders = 2, batch = 5000;
static char **bodies;
static size_t *blen;
static long nbodies, npoints;
static long next_body; /* taken by whichever connection is free */
static double *lat;
static int errors;
static pthread_barrier_t start_line;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read one response (Content-Length bodies only); its status, or -1. */
static int read_response(int fd)
{
    static __thread char buf[65536];
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status = atoi(buf + 9);
    long clen = 0;
    char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl && cl < end)
        clen = atol(cl + 17);
    long body = (long)(have - (size_t)(end + 4 - buf));
    if (status != 204)
        fprintf(stderr, "HTTP %d: %.*s\n", status, (int)(body > 300 ? 300 : body), end + 4);
    while (body < clen) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r <= 0)
            return -1;
        body += r;
    }
    return status;
}

static void *sender(void *arg)
{
    long id = (long)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        exit(1);
    }
    char head[512];
    pthread_barrier_wait(&start_line);
    (void)id;
    for (long b; (b = __atomic_fetch_add(&next_body, 1, __ATOMIC_RELAXED)) < nbodies;) {
        int hl = snprintf(head, sizeof(head),
                          "POST /write?db=%s&precision=n HTTP/1.1\r\nHost: %s:%d\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n\r\n",
                          db, host, port, blen[b]);
        double t0 = now();
        if (write_all(fd, head, (size_t)hl) < 0 || write_all(fd, bodies[b], blen[b]) < 0) {
            perror("write");
            exit(1);
        }
        int st = read_response(fd);
        lat[b] = now() - t0;
        if (st != 204)
            __atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
    }
    close(fd);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Cut @text into bodies of @batch lines. */
static void cut(char *text, size_t len)
{
    long cap = 1024;
    bodies = malloc((size_t)cap * sizeof(*bodies));
    blen = malloc((size_t)cap * sizeof(*blen));
    char *p = text, *end = text + len;
    while (p < end) {
        char *q = p;
        long lines = 0;
        while (q < end && lines < batch) {
            char *nl = memchr(q, '\n', (size_t)(end - q));
            q = nl ? nl + 1 : end;
            lines++;
        }
        if (nbodies == cap) {
            cap *= 2;
            bodies = realloc(bodies, (size_t)cap * sizeof(*bodies));
            blen = realloc(blen, (size_t)cap * sizeof(*blen));
        }
        bodies[nbodies] = p;
        blen[nbodies++] = (size_t)(q - p);
        npoints += lines;
        p = q;
    }
}

int main(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "h:p:d:c:b:")) != -1) {
        switch (o) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'd':
            db = optarg;
            break;
        case 'c':
            senders = atoi(optarg);
            break;
        case 'b':
            batch = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: driver -p PORT [-h HOST] [-d DB] [-c CONNS] [-b LINES] FILE\n");
            return 2;
        }
    }
    if (optind != argc - 1 || port <= 0 || senders <= 0 || batch <= 0) {
        fprintf(stderr, "usage: driver -p PORT [-h HOST] [-d DB] [-c CONNS] [-b LINES] FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[optind], "rb");
    if (!f) {
        perror(argv[optind]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
        perror("read");
        return 1;
    }
    fclose(f);
    cut(text, (size_t)size);
    lat = calloc((size_t)nbodies, sizeof(*lat));

    pthread_barrier_init(&start_line, NULL, (unsigned)senders + 1);
    pthread_t *th = calloc((size_t)senders, sizeof(*th));
    for (long s = 0; s < senders; s++)
        pthread_create(&th[s], NULL, sender, (void *)s);
    pthread_barrier_wait(&start_line);
    double t0 = now();
    for (long s = 0; s < senders; s++)
        pthread_join(th[s], NULL);
    double wall = now() - t0;
    qsort(lat, (size_t)nbodies, sizeof(*lat), cmp_double);
    printf("points=%ld posts=%ld connections=%d lines_per_post=%d bytes=%ld wall_s=%.3f "
           "points_per_s=%.0f post_ms_p50=%.1f post_ms_p99=%.1f errors=%d\n",
           npoints, nbodies, senders, batch, size, wall, (double)npoints / wall,
           lat[nbodies / 2] * 1e3, lat[(long)((double)nbodies * 0.99)] * 1e3, errors);
    return errors ? 1 : 0;
}
