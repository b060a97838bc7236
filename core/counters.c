/* SPDX-License-Identifier: Apache-2.0 */
#include "counters.h"
#include <string.h>

void gd__count_drop(gd__counters *c, const char *reason, uint64_t n)
{
    if (!n)
        return;
    if (!reason)
        reason = "other";
    struct gd__drop_slot *last = &c->drops[GD__MAX_DROP_REASONS - 1];
    for (int i = 0; i < GD__MAX_DROP_REASONS - 1; i++) {
        struct gd__drop_slot *s = &c->drops[i];
        const char *cur = atomic_load(&s->reason);
        if (!cur) {
            const char *expected = NULL;
            if (atomic_compare_exchange_strong(&s->reason, &expected, reason))
                cur = reason;
            else
                cur = expected;
        }
        if (cur == reason || strcmp(cur, reason) == 0) {
            atomic_fetch_add(&s->n, n);
            return;
        }
    }
    const char *expected = NULL;
    atomic_compare_exchange_strong(&last->reason, &expected, "other");
    atomic_fetch_add(&last->n, n);
}

uint64_t gd__dropped(const gd__counters *c, const char *reason)
{
    uint64_t total = 0;
    for (int i = 0; i < GD__MAX_DROP_REASONS; i++) {
        const char *r = atomic_load(&c->drops[i].reason);
        if (!r)
            continue;
        if (!reason || strcmp(r, reason) == 0)
            total += atomic_load(&c->drops[i].n);
    }
    return total;
}

void gd__counters_print(const gd__counters *c, FILE *f)
{
    fprintf(f, "received=%llu delivered=%llu dropped=%llu retries=%llu errors=%llu",
            (unsigned long long)atomic_load(&c->received),
            (unsigned long long)atomic_load(&c->delivered),
            (unsigned long long)gd__dropped(c, NULL), (unsigned long long)atomic_load(&c->retries),
            (unsigned long long)atomic_load(&c->errors));
    if (atomic_load(&c->overruns))
        fprintf(f, " overruns=%llu", (unsigned long long)atomic_load(&c->overruns));
    if (atomic_load(&c->skipped))
        fprintf(f, " skipped=%llu", (unsigned long long)atomic_load(&c->skipped));
    for (int i = 0; i < GD__MAX_DROP_REASONS; i++) {
        const char *r = atomic_load(&c->drops[i].reason);
        if (r)
            fprintf(f, " dropped{%s}=%llu", r, (unsigned long long)atomic_load(&c->drops[i].n));
    }
}
