/* SPDX-License-Identifier: Apache-2.0 */
/* mb_url.c - Modbus endpoint URLs (see mb_url.h). */
#include "mb_url.h"
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *p, struct mb_url *u, const char **why)
{
    char *end = NULL;
    long v = strtol(p, &end, 10);
    if (!*p || *end || v < 1 || v > 65535) {
        *why = "port must be 1..65535";
        return GD_EINVAL;
    }
    memcpy(u->port, p, strlen(p) + 1);
    return 0;
}

static int parse_tcp(const char *rest, struct mb_url *u, const char **why)
{
    const char *host = rest, *port = NULL;
    size_t hlen;
    if (rest[0] == '[') {
        const char *close = strchr(rest, ']');
        if (!close) {
            *why = "missing ']' after IPv6 address";
            return GD_EINVAL;
        }
        host = rest + 1;
        hlen = (size_t)(close - host);
        if (close[1] == ':')
            port = close + 2;
        else if (close[1]) {
            *why = "unexpected text after ']'";
            return GD_EINVAL;
        }
    } else {
        const char *colon = strchr(rest, ':');
        hlen = colon ? (size_t)(colon - rest) : strlen(rest);
        if (colon)
            port = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof(u->host) || memchr(host, '/', hlen)) {
        *why = "expected tcp://host[:port]";
        return GD_EINVAL;
    }
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    if (port)
        return parse_port(port, u, why);
    memcpy(u->port, MB_DEFAULT_PORT, sizeof(MB_DEFAULT_PORT));
    return 0;
}

int mb_url_parse(const char *s, struct mb_url *u, const char **why)
{
    memset(u, 0, sizeof(*u));
    if (!s) {
        *why = "missing url";
        return GD_EINVAL;
    }
    if (strncmp(s, "tcp://", 6) == 0)
        return parse_tcp(s + 6, u, why);
    if (strncmp(s, "rtu://", 6) == 0) {
        const char *path = s + 6;
        if (path[0] != '/' || strlen(path) >= sizeof(u->path)) {
            *why = "expected rtu:///dev/DEVICE";
            return GD_EINVAL;
        }
        u->rtu = true;
        memcpy(u->path, path, strlen(path) + 1);
        return 0;
    }
    *why = "expected tcp://host[:port] or rtu:///dev/DEVICE";
    return GD_EINVAL;
}
