/* SPDX-License-Identifier: Apache-2.0 */
/* errs.h - a list of human-readable error messages collected while loading
 * and validating configuration, so every problem is reported at once. */
#ifndef GATHERD_CORE_ERRS_H
#define GATHERD_CORE_ERRS_H

#include <stddef.h>
#include <stdio.h>

typedef struct gd__errs {
    char **msgs;
    size_t n;
} gd__errs;

/* gd__errs_add() - append a formatted message (one line, no trailing newline). */
void gd__errs_add(gd__errs *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* gd__errs_print() - write every message, one per line, to @f. */
void gd__errs_print(const gd__errs *e, FILE *f);
/* gd__errs_contains() - true if some message contains @needle (for tests). */
int gd__errs_contains(const gd__errs *e, const char *needle);
/* gd__errs_free() - release every message; the list is empty afterwards. */
void gd__errs_free(gd__errs *e);

#endif
