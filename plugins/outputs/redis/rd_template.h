/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rd_template.h - key and channel templates of the redis output:
 * "gatherd:{measurement}:{device}". `{measurement}` is the point's
 * measurement, `{NAME}` the value of tag NAME (`{tag:NAME}` names a tag
 * even when it is called "measurement"), `{{` and `}}` are literal braces.
 */
#ifndef GATHERD_RD_TEMPLATE_H
#define GATHERD_RD_TEMPLATE_H

#include <gatherd/gatherd.h>

typedef struct rd_template rd_template;

/* rd_template_parse() - compile @text. Returns 0 and sets *@out, or
 * GD_EINVAL with the reason in *@why (static text), or GD_ENOMEM. */
int rd_template_parse(const char *text, rd_template **out, const char **why);

/* rd_template_expand() - append the template filled from @p to @out.
 * Returns 0; GD_ENOENT when a tag is missing (its name in *@missing,
 * @out as it was); GD_ENOMEM. */
int rd_template_expand(const rd_template *t, const gd_point *p, gd_buf *out, const char **missing);

/* rd_template_text() - the source text, for log lines. */
const char *rd_template_text(const rd_template *t);

/* rd_template_free() - release. Accepts NULL. */
void rd_template_free(rd_template *t);

#endif
