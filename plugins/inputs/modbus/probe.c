/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gatherd-modbus-probe - read registers of one device and print every way
 * to read them: raw hex, then each format in each word/byte order, starting
 * at every register. For mapping an undocumented device.
 */
#include "mb_decode.h"
#include "mb_url.h"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COUNT 125

struct args {
    const char *url;
    int unit;
    int kind;
    int address;
    int count;
    double timeout;
    int baud;
    char parity;
    int data_bits;
    int stop_bits;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: gatherd-modbus-probe [options] URL\n"
               "  URL                  tcp://host[:port] or rtu:///dev/ttyUSB0\n"
               "  -u, --unit N         unit id (default 1)\n"
               "  -k, --kind KIND      holding, input, coil or discrete (default holding)\n"
               "  -a, --address N      first address, 0-based (default 0)\n"
               "  -n, --count N        registers (1..125) or bits (1..2000) to read (default 8)\n"
               "  -t, --timeout S      response timeout in seconds (default 1)\n"
               "  -b, --baud N         rtu: baud rate (default 9600)\n"
               "  -p, --parity P       rtu: none, even or odd (default none)\n"
               "      --data-bits N    rtu: data bits (default 8)\n"
               "      --stop-bits N    rtu: stop bits (default 1)\n"
               "  -h, --help           this text\n");
}

static int index_of(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 0);
    if (errno || !*s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    enum { OPT_DATA = 256, OPT_STOP };
    static const struct option longs[] = {
        {"unit", required_argument, NULL, 'u'},
        {"kind", required_argument, NULL, 'k'},
        {"address", required_argument, NULL, 'a'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"baud", required_argument, NULL, 'b'},
        {"parity", required_argument, NULL, 'p'},
        {"data-bits", required_argument, NULL, OPT_DATA},
        {"stop-bits", required_argument, NULL, OPT_STOP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *a = (struct args){.unit = 1,
                       .kind = MB_HOLDING,
                       .count = 8,
                       .timeout = 1.0,
                       .baud = 9600,
                       .parity = 'N',
                       .data_bits = 8,
                       .stop_bits = 1};
    int c;
    bool ok = true;
    while ((c = getopt_long(argc, argv, "u:k:a:n:t:b:p:h", longs, NULL)) != -1) {
        switch (c) {
        case 'u':
            ok = parse_int(optarg, 0, 255, &a->unit);
            break;
        case 'k':
            ok = (a->kind = index_of(mb_kind_names, optarg)) >= 0;
            break;
        case 'a':
            ok = parse_int(optarg, 0, 65535, &a->address);
            break;
        case 'n':
            ok = parse_int(optarg, 1, 2000, &a->count);
            break;
        case 't': {
            char *end = NULL;
            a->timeout = strtod(optarg, &end);
            ok = *optarg && !*end && a->timeout > 0 && a->timeout <= 60;
            break;
        }
        case 'b':
            ok = parse_int(optarg, 300, 4000000, &a->baud);
            break;
        case 'p': {
            static const char *const parities[] = {"none", "even", "odd", NULL};
            int i = index_of(parities, optarg);
            ok = i >= 0;
            a->parity = i >= 0 ? "NEO"[i] : 'N';
            break;
        }
        case OPT_DATA:
            ok = parse_int(optarg, 5, 8, &a->data_bits);
            break;
        case OPT_STOP:
            ok = parse_int(optarg, 1, 2, &a->stop_bits);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "gatherd-modbus-probe: invalid value '%s'\n", optarg);
            return -1;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return -1;
    }
    a->url = argv[optind];
    if (!mb_kind_is_bit(a->kind) && a->count > MAX_COUNT) {
        fprintf(stderr, "gatherd-modbus-probe: at most %d registers per read\n", MAX_COUNT);
        return -1;
    }
    if (a->address + a->count > 65536) {
        fprintf(stderr, "gatherd-modbus-probe: address + count is past 65535\n");
        return -1;
    }
    return 0;
}

static void print_value(const struct mb_value *v)
{
    switch (v->type) {
    case MB_V_INT:
        printf(" %22" PRId64, v->v.i);
        break;
    case MB_V_UINT:
        printf(" %22" PRIu64, v->v.u);
        break;
    default:
        printf(" %22.10g", v->v.f);
        break;
    }
}

static void print_registers(const uint16_t *regs, int n, int address)
{
    printf("raw registers:\n");
    for (int i = 0; i < n; i++)
        printf("  %5d  0x%04x  %6u  %6d\n", address + i, regs[i], regs[i], (int16_t)regs[i]);
    static const enum mb_format numeric[] = {MB_INT16,   MB_UINT16, MB_INT32,  MB_UINT32,
                                             MB_FLOAT32, MB_INT64,  MB_UINT64, MB_FLOAT64};
    printf("\ninterpretations (address, format, then ABCD DCBA BADC CDAB):\n");
    for (int i = 0; i < n; i++) {
        for (size_t f = 0; f < sizeof(numeric) / sizeof(numeric[0]); f++) {
            unsigned w = mb_format_regs(numeric[f], 0);
            if (i + (int)w > n)
                continue;
            printf("  %5d  %-8s", address + i, mb_format_names[numeric[f]]);
            for (int o = 0; o < MB_NORDERS; o++) {
                struct mb_spec spec = {
                    .format = numeric[f], .order = (enum mb_order)o, .scale = 1, .offset = 0};
                bool is_int = numeric[f] != MB_FLOAT32 && numeric[f] != MB_FLOAT64;
                bool is_signed =
                    numeric[f] == MB_INT16 || numeric[f] == MB_INT32 || numeric[f] == MB_INT64;
                spec.as = is_int ? (is_signed ? MB_AS_INT : MB_AS_UINT) : MB_AS_DOUBLE;
                struct mb_value v;
                char buf[8];
                if (mb_decode_regs(&spec, regs + i, buf, &v) < 0)
                    printf(" %22s", "(nan/inf)");
                else
                    print_value(&v);
            }
            printf("   hex");
            for (unsigned k = 0; k < w; k++)
                printf(" %04x", regs[i + (int)k]);
            printf("\n");
        }
    }
    char text[2 * MAX_COUNT + 1];
    printf("\nas text: ABCD \"%s\"", (mb_string(regs, (unsigned)n, MB_ABCD, text), text));
    printf("  BADC \"%s\"\n", (mb_string(regs, (unsigned)n, MB_BADC, text), text));
}

int main(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a) < 0)
        return 2;
    struct mb_url u;
    const char *why = NULL;
    if (mb_url_parse(a.url, &u, &why) < 0) {
        fprintf(stderr, "gatherd-modbus-probe: %s: %s\n", a.url, why);
        return 2;
    }
    modbus_t *ctx = u.rtu ? modbus_new_rtu(u.path, a.baud, a.parity, a.data_bits, a.stop_bits)
                          : modbus_new_tcp_pi(u.host, u.port);
    if (!ctx) {
        fprintf(stderr, "gatherd-modbus-probe: %s: %s\n", a.url, modbus_strerror(errno));
        return 1;
    }
    uint32_t sec = (uint32_t)a.timeout;
    modbus_set_response_timeout(ctx, sec, (uint32_t)((a.timeout - sec) * 1e6));
    modbus_set_slave(ctx, a.unit);
    int code = 1;
    if (modbus_connect(ctx) < 0) {
        fprintf(stderr, "gatherd-modbus-probe: connect %s: %s\n", a.url, modbus_strerror(errno));
        goto out_free;
    }
    printf("%s unit %d, %s %d+%d\n\n", a.url, a.unit, mb_kind_names[a.kind], a.address, a.count);
    uint16_t regs[MAX_COUNT];
    uint8_t bits[2000];
    int rc;
    switch (a.kind) {
    case MB_COIL:
        rc = modbus_read_bits(ctx, a.address, a.count, bits);
        break;
    case MB_DISCRETE:
        rc = modbus_read_input_bits(ctx, a.address, a.count, bits);
        break;
    case MB_HOLDING:
        rc = modbus_read_registers(ctx, a.address, a.count, regs);
        break;
    default:
        rc = modbus_read_input_registers(ctx, a.address, a.count, regs);
        break;
    }
    if (rc < 0) {
        int e = errno;
        if (e > MODBUS_ENOBASE && e <= EMBXGTAR)
            fprintf(stderr, "gatherd-modbus-probe: exception %d: %s\n", e - MODBUS_ENOBASE,
                    modbus_strerror(e));
        else
            fprintf(stderr, "gatherd-modbus-probe: read: %s\n", modbus_strerror(e));
        goto out_close;
    }
    if (mb_kind_is_bit(a.kind)) {
        for (int i = 0; i < rc; i++)
            printf("  %5d  %d\n", a.address + i, bits[i] ? 1 : 0);
    } else {
        print_registers(regs, rc, a.address);
    }
    code = 0;
out_close:
    modbus_close(ctx);
out_free:
    modbus_free(ctx);
    return code;
}
