/* SPDX-License-Identifier: Apache-2.0 */
#include "errs.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void gd__errs_add(gd__errs *e, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    va_start(ap, fmt);
    int rc = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (rc < 0)
        msg = NULL;
    char **nv = realloc(e->msgs, (e->n + 1) * sizeof(*nv));
    if (!nv) {
        free(msg);
        return;
    }
    e->msgs = nv;
    e->msgs[e->n++] = msg ? msg : strdup("(out of memory formatting an error)");
}

void gd__errs_print(const gd__errs *e, FILE *f)
{
    for (size_t i = 0; i < e->n; i++)
        fprintf(f, "%s\n", e->msgs[i] ? e->msgs[i] : "?");
}

int gd__errs_contains(const gd__errs *e, const char *needle)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->msgs[i] && strstr(e->msgs[i], needle))
            return 1;
    return 0;
}

void gd__errs_free(gd__errs *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        free(e->msgs[i]);
    free(e->msgs);
    e->msgs = NULL;
    e->n = 0;
}
