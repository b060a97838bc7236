/* SPDX-License-Identifier: Apache-2.0 */
/* digits.h - fast decimal integer formatting shared by the line-protocol
 * and JSON encoders (internal to libgatherd). */
#ifndef GATHERD_SDK_DIGITS_H
#define GATHERD_SDK_DIGITS_H

#include <stdint.h>
#include <string.h>

static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

static const uint64_t pow10_u64[] = {1ULL,
                                     10ULL,
                                     100ULL,
                                     1000ULL,
                                     10000ULL,
                                     100000ULL,
                                     1000000ULL,
                                     10000000ULL,
                                     100000000ULL,
                                     1000000000ULL,
                                     10000000000ULL,
                                     100000000000ULL,
                                     1000000000000ULL,
                                     10000000000000ULL,
                                     100000000000000ULL,
                                     1000000000000000ULL,
                                     10000000000000000ULL,
                                     100000000000000000ULL,
                                     1000000000000000000ULL,
                                     10000000000000000000ULL};

/* Number of decimal digits of @v (1 for 0). */
static inline int count_digits(uint64_t v)
{
    /* 1233 / 4096 ~ log10(2): an estimate from the bit length, then one
     * comparison. */
    int t = ((64 - __builtin_clzll(v | 1)) * 1233) >> 12;
    return t + (v >= pow10_u64[t]) + (v == 0);
}

/* Write exactly 8 digits of @v (< 10^8). */
static inline void put8(char *d, uint32_t v)
{
    uint32_t hi = v / 10000, lo = v % 10000;
    memcpy(d, digit_pairs + 2 * (hi / 100), 2);
    memcpy(d + 2, digit_pairs + 2 * (hi % 100), 2);
    memcpy(d + 4, digit_pairs + 2 * (lo / 100), 2);
    memcpy(d + 6, digit_pairs + 2 * (lo % 100), 2);
}

/* Write exactly @n digits of @v (zero-padded, v < 10^n); returns the end.
 * Eight-digit chunks in 32-bit arithmetic keep the dependency chains short. */
static inline char *put_digits(char *d, uint64_t v, int n)
{
    char *end = d + n;
    char *t = end;
    while (n >= 8) {
        t -= 8;
        put8(t, (uint32_t)(v % 100000000));
        v /= 100000000;
        n -= 8;
    }
    uint32_t w = (uint32_t)v;
    while (n >= 2) {
        t -= 2;
        memcpy(t, digit_pairs + 2 * (w % 100), 2);
        w /= 100;
        n -= 2;
    }
    if (n)
        *--t = (char)('0' + w);
    return end;
}

static inline char *put_u64(char *d, uint64_t v)
{
    return put_digits(d, v, count_digits(v));
}

static inline char *put_i64(char *d, int64_t v)
{
    if (v < 0) {
        *d++ = '-';
        return put_u64(d, 0 - (uint64_t)v);
    }
    return put_u64(d, (uint64_t)v);
}

#endif
