/* SPDX-License-Identifier: Apache-2.0 */
/* mb_plan.c - request coalescing (see mb_plan.h). */
#include "mb_plan.h"
#include <stdio.h>
#include <stdlib.h>

struct sorted {
    const struct mb_item *it;
    size_t idx;
};

static int cmp_items(const void *a, const void *b)
{
    const struct mb_item *x = ((const struct sorted *)a)->it;
    const struct mb_item *y = ((const struct sorted *)b)->it;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->address != y->address)
        return x->address < y->address ? -1 : 1;
    return x->count < y->count ? -1 : x->count > y->count;
}

static unsigned limit_of(const struct mb_limits *lim, enum mb_kind kind)
{
    return mb_kind_is_bit(kind) ? lim->max_bits : lim->max_regs;
}

int mb_plan_build(const struct mb_item *items, size_t n, const struct mb_limits *lim,
                  struct mb_plan *plan, size_t *bad)
{
    *plan = (struct mb_plan){0};
    if (!lim->max_regs || !lim->max_bits || lim->max_regs > MB_MAX_READ_REGS ||
        lim->max_bits > MB_MAX_READ_BITS)
        return GD_EINVAL;
    for (size_t i = 0; i < n; i++) {
        *bad = i;
        if (items[i].kind >= MB_NKINDS || items[i].count == 0)
            return GD_EINVAL;
        if (items[i].count > limit_of(lim, items[i].kind) ||
            (uint64_t)items[i].address + items[i].count > MB_ADDRESS_SPACE)
            return GD_ERANGE;
    }
    if (n == 0)
        return 0;
    struct sorted *s = calloc(n, sizeof(*s));
    plan->req = calloc(n, sizeof(*plan->req)); /* at most one read per item */
    plan->item_req = calloc(n, sizeof(*plan->item_req));
    if (!s || !plan->req || !plan->item_req) {
        free(s);
        mb_plan_free(plan);
        return GD_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        s[i] = (struct sorted){.it = &items[i], .idx = i};
    qsort(s, n, sizeof(*s), cmp_items);

    struct mb_request *cur = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct mb_item *it = s[i].it;
        uint64_t end = (uint64_t)it->address + it->count; /* one past */
        if (cur && cur->kind == it->kind) {
            uint64_t cur_end = (uint64_t)cur->start + cur->count;
            uint64_t new_end = end > cur_end ? end : cur_end;
            bool near = it->address <= cur_end + lim->max_gap;
            if (near && new_end - cur->start <= limit_of(lim, it->kind)) {
                cur->count = (unsigned)(new_end - cur->start);
                plan->item_req[s[i].idx] = (size_t)(cur - plan->req);
                continue;
            }
        }
        cur = &plan->req[plan->nreq++];
        *cur = (struct mb_request){.kind = it->kind, .start = it->address, .count = it->count};
        plan->item_req[s[i].idx] = (size_t)(cur - plan->req);
    }
    free(s);
    return 0;
}

void mb_plan_free(struct mb_plan *plan)
{
    if (!plan)
        return;
    free(plan->req);
    free(plan->item_req);
    *plan = (struct mb_plan){0};
}

size_t mb_plan_describe(const struct mb_plan *plan, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    for (size_t i = 0; i < plan->nreq; i++) {
        const struct mb_request *r = &plan->req[i];
        int k = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0, "%s%s %u+%u",
                         i ? ", " : "", mb_kind_names[r->kind], r->start, r->count);
        if (k > 0)
            len += (size_t)k;
    }
    return len;
}
