/* SPDX-License-Identifier: Apache-2.0 */
/* expand.c - ${ENV}, ${ENV:-default}, $${ and @file:/path references in
 * option values, so secrets stay out of configuration files. */
#include "options.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_PREFIX         "@file:"
#define MAX_FILE_VALUE_SIZE (1024 * 1024) /* a secret, not a data set */

static char *why_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *why_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    return rc < 0 ? NULL : s;
}

static void set_why(char **why, char *msg)
{
    if (why)
        *why = msg;
    else
        free(msg);
}

static bool is_name_char(char c, bool first)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_')
        return true;
    return !first && c >= '0' && c <= '9';
}

/* Expands the ${...} references of @in; "$${" is a literal "${". */
static char *expand_env(const char *in, char **why)
{
    gd_buf out = {0};
    const char *p = in;
    int rc = 0;

    while (*p && rc == 0) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            rc = gd_buf_append(&out, "${", 2);
            p += 3;
            continue;
        }
        if (p[0] != '$' || p[1] != '{') {
            const char *next = strchr(p + 1, '$');
            size_t len = next ? (size_t)(next - p) : strlen(p);
            rc = gd_buf_append(&out, p, len);
            p += len;
            continue;
        }
        const char *name = p + 2;
        const char *close = strchr(name, '}');
        if (!close) {
            set_why(why, why_printf("unterminated \"${\" (write \"$${\" for a literal \"${\")"));
            goto out_free;
        }
        const char *end = name;
        while (end < close && is_name_char(*end, end == name))
            end++;
        const char *def = NULL;
        if (end > name && end < close && end[0] == ':' && end[1] == '-')
            def = end + 2;
        if (end == name || (end != close && !def)) {
            set_why(why,
                    why_printf("invalid variable reference \"%.*s\"", (int)(close - p + 1), p));
            goto out_free;
        }
        char *var = strndup(name, (size_t)(end - name));
        if (!var) {
            set_why(why, why_printf("out of memory"));
            goto out_free;
        }
        const char *val = getenv(var);
        if (def) {
            if (val && *val)
                rc = gd_buf_puts(&out, val);
            else
                rc = gd_buf_append(&out, def, (size_t)(close - def));
        } else if (val) {
            rc = gd_buf_puts(&out, val);
        } else {
            set_why(why, why_printf("environment variable %s is not set", var));
            free(var);
            goto out_free;
        }
        free(var);
        p = close + 1;
    }
    if (rc == 0)
        return out.data ? out.data : strdup(""); /* gd_buf data is NUL-terminated */
    set_why(why, why_printf("out of memory"));
out_free:
    gd_buf_free(&out);
    return NULL;
}

/* Reads the whole (small, text) file @path, one trailing newline stripped. */
static char *read_value_file(const char *path, char **why)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_why(why, why_printf("cannot read file %s: %s", path, strerror(errno)));
        return NULL;
    }
    gd_buf b = {0};
    char chunk[4096];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > MAX_FILE_VALUE_SIZE) {
            set_why(why, why_printf("cannot read file %s: larger than %d bytes", path,
                                    MAX_FILE_VALUE_SIZE));
            goto out_free;
        }
        rc = gd_buf_append(&b, chunk, n);
    }
    if (ferror(f)) {
        set_why(why, why_printf("cannot read file %s: %s", path, strerror(errno)));
        goto out_free;
    }
    if (rc != 0) {
        set_why(why, why_printf("out of memory"));
        goto out_free;
    }
    fclose(f);
    f = NULL;
    if (!b.data)
        return strdup("");
    if (memchr(b.data, '\0', b.len)) {
        set_why(why, why_printf("cannot read file %s: contains a NUL byte", path));
        goto out_free;
    }
    if (b.len > 0 && b.data[b.len - 1] == '\n') {
        b.len--;
        if (b.len > 0 && b.data[b.len - 1] == '\r')
            b.len--;
    }
    b.data[b.len] = '\0';
    return b.data;

out_free:
    gd_buf_free(&b);
    if (f)
        fclose(f);
    return NULL;
}

char *gd__expand(const char *in, char **why)
{
    if (why)
        *why = NULL;
    if (!in) {
        set_why(why, why_printf("no value"));
        return NULL;
    }
    if (strncmp(in, FILE_PREFIX, strlen(FILE_PREFIX)) != 0)
        return expand_env(in, why);

    /* The path itself may name a variable: "@file:${CREDENTIALS_DIRECTORY}/pg". */
    char *path = expand_env(in + strlen(FILE_PREFIX), why);
    if (!path)
        return NULL;
    if (!*path) {
        set_why(why, why_printf("cannot read file: empty path after \"@file:\""));
        free(path);
        return NULL;
    }
    char *val = read_value_file(path, why);
    free(path);
    return val;
}
