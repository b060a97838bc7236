/* SPDX-License-Identifier: Apache-2.0 */
/* errs_assert.h - assertions on the gd__errs list `errs` of a Criterion test
 * file (the file defines `static gd__errs errs;` before including this). */
#ifndef GATHERD_TESTS_ERRS_ASSERT_H
#define GATHERD_TESTS_ERRS_ASSERT_H

#include "errs.h"
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* Every message, one per line, for assertion output (static: an assertion
 * failure leaves the test without running cleanup). */
static const char *all_errs(void)
{
    static char text[8192];
    size_t len = 0;
    text[0] = '\0';
    for (size_t i = 0; i < errs.n && len < sizeof(text); i++) {
        int n = snprintf(text + len, sizeof(text) - len, "  %s\n", errs.msgs[i]);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    return errs.n ? text : "  (none)\n";
}

static void assert_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void assert_err(const char *fmt, ...)
{
    char *want = NULL;
    va_list ap;
    va_start(ap, fmt);
    cr_assert(vasprintf(&want, fmt, ap) > 0);
    va_end(ap);
    bool found = gd__errs_contains(&errs, want);
    char shown[1024];
    snprintf(shown, sizeof(shown), "%s", want);
    free(want);
    cr_assert(found, "expected an error containing\n  %s\ngot\n%s", shown, all_errs());
}

/* rc is 0 and no error was added. */
static void assert_no_errs(int rc)
{
    cr_assert_eq(rc, 0, "unexpected errors:\n%s", all_errs());
    cr_assert_eq(errs.n, 0, "unexpected errors:\n%s", all_errs());
}

#endif
