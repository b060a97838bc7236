/* SPDX-License-Identifier: Apache-2.0 */
/*
 * expr.h - the filter expression language: compiled once into a flat node
 * array, evaluated per point without allocation. Grammar in README.md.
 */
#ifndef GATHERD_FILTER_EXPR_H
#define GATHERD_FILTER_EXPR_H

#include <gatherd/gatherd.h>

#define EXPR_ERR_LEN 160

typedef struct expr expr;

/* expr_compile() - compile @src. Returns 0 and *@out, or GD_ECONFIG with
 * "column N: reason" in @err (EXPR_ERR_LEN bytes), or GD_ENOMEM. */
int expr_compile(const char *src, expr **out, char *err);

/* expr_free() - release a compiled expression. Accepts NULL. */
void expr_free(expr *e);

/* expr_match() - does point @p satisfy @e? Allocates nothing. */
bool expr_match(const expr *e, const gd_point *p);

#endif
