/* SPDX-License-Identifier: Apache-2.0 */
/**
 * mb_plan.h - request coalescing: the reads that cover a register map.
 *
 * Items of one kind are sorted by address and merged greedily into one read
 * while the read stays within the protocol limit (125 registers, 2000 bits,
 * or lower limits a device needs) and the hole between two neighbours is at
 * most max_gap registers (bits for coils and discrete inputs). Overlapping
 * items share a read.
 */
#ifndef GATHERD_MB_PLAN_H
#define GATHERD_MB_PLAN_H

#include "mb_decode.h"
#include <stddef.h>

#define MB_MAX_READ_REGS 125  /* read holding/input registers, per request */
#define MB_MAX_READ_BITS 2000 /* read coils/discrete inputs, per request */
#define MB_ADDRESS_SPACE 65536

/* One thing to read: @count registers (or bits) from @address. */
struct mb_item {
    enum mb_kind kind;
    unsigned address;
    unsigned count;
};

struct mb_limits {
    unsigned max_gap;  /* largest hole bridged, in registers or bits */
    unsigned max_regs; /* registers per read, 1..125 */
    unsigned max_bits; /* bits per read, 1..2000 */
};

/* One read request. */
struct mb_request {
    enum mb_kind kind;
    unsigned start;
    unsigned count;
};

struct mb_plan {
    struct mb_request *req; /* ordered by kind, then address */
    size_t nreq;
    size_t *item_req; /* per item: index of the request that covers it */
};

/** mb_plan_build() - plan the reads of @items[0..n) into @plan (freed with
 * mb_plan_free()). Returns 0, GD_ERANGE when an item is larger than one read
 * allows or runs past the address space (*@bad set to its index), GD_EINVAL
 * for zero limits or an empty item, GD_ENOMEM. */
int mb_plan_build(const struct mb_item *items, size_t n, const struct mb_limits *lim,
                  struct mb_plan *plan, size_t *bad);

/** mb_plan_free() - release the plan. Accepts a zeroed plan. */
void mb_plan_free(struct mb_plan *plan);

/** mb_plan_describe() - "holding 0+38, input 100+6" into @buf (always
 * NUL-terminated, truncated to @cap). Returns the length it needed. */
size_t mb_plan_describe(const struct mb_plan *plan, char *buf, size_t cap);

#endif
