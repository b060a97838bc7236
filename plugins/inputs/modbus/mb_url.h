/* SPDX-License-Identifier: Apache-2.0 */
/**
 * mb_url.h - Modbus endpoint URLs: "tcp://host[:port]" (port 502 by
 * default, IPv6 as "tcp://[::1]:502") and "rtu:///dev/ttyUSB0".
 */
#ifndef GATHERD_MB_URL_H
#define GATHERD_MB_URL_H

#include <gatherd/common.h>

#define MB_DEFAULT_PORT "502"

struct mb_url {
    bool rtu;
    char host[256]; /* tcp */
    char port[8];   /* tcp, decimal */
    char path[256]; /* rtu: the serial device */
};

/** mb_url_parse() - parse @s into @u. Returns 0, or GD_EINVAL with *@why
 * set to a static reason. */
int mb_url_parse(const char *s, struct mb_url *u, const char **why);

#endif
