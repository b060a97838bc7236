/* SPDX-License-Identifier: Apache-2.0 */
/* test_batch.c - the data model of gatherd/batch.h. */
#include <criterion/criterion.h>
#include <gatherd/batch.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MANY_POINTS       100000
#define REF_THREADS       4
#define REFS_PER_THREAD   100000
#define LONG_STRING_BYTES (200 * 1024) /* larger than an arena chunk */

static gd_batch *new_batch(void)
{
    gd_batch *b = gd_batch_new(8);
    cr_assert_not_null(b);
    return b;
}

static const gd_point *only_point(const gd_batch *b)
{
    cr_assert_eq(gd_batch_len(b), 1);
    return gd_batch_point(b, 0);
}

/* ---- building ---------------------------------------------------------- */

Test(batch, new_batch_is_empty_with_one_reference)
{
    gd_batch *b = gd_batch_new(0);
    cr_assert_not_null(b);
    cr_assert_eq(gd_batch_len(b), 0);
    cr_assert_eq(gd_batch_refcount(b), 1);
    cr_assert_not(gd_batch_is_frozen(b));
    cr_assert_null(gd_batch_point(b, 0));
    gd_batch_unref(b);
}

Test(batch, builds_a_point_with_measurement_time_tags_and_fields)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "chamber", 1700000000123456789LL);
    cr_assert_not_null(p);
    cr_assert_eq(gd_point_tag(p, "device", "c17"), 0);
    cr_assert_eq(gd_point_f64(p, "temp_c", 21.5), 0);

    const gd_point *r = only_point(b);
    cr_assert_eq(r, p, "the handle is the stored point");
    size_t len = 0;
    cr_assert_str_eq(gd_point_measurement(r, &len), "chamber");
    cr_assert_eq(len, 7);
    cr_assert_eq(gd_point_time(r), 1700000000123456789LL);
    size_t nt, nf;
    const gd_tag *t = gd_point_tags(r, &nt);
    const gd_field *f = gd_point_fields(r, &nf);
    cr_assert_eq(nt, 1);
    cr_assert_str_eq(t[0].key, "device");
    cr_assert_eq(t[0].key_len, 6);
    cr_assert_str_eq(t[0].value, "c17");
    cr_assert_eq(t[0].value_len, 3);
    cr_assert_eq(nf, 1);
    cr_assert_str_eq(f[0].key, "temp_c");
    cr_assert_eq(f[0].type, GD_F64);
    cr_assert_eq(f[0].v.f64, 21.5);
    gd_batch_unref(b);
}

Test(batch, measurement_and_strings_are_copied)
{
    gd_batch *b = new_batch();
    char name[] = "cpu", key[] = "host", val[] = "a", fkey[] = "msg", fval[] = "hello";
    gd_point *p = gd_batch_add(b, name, 1);
    cr_assert_eq(gd_point_tag(p, key, val), 0);
    cr_assert_eq(gd_point_str(p, fkey, fval), 0);
    memset(name, 'X', 3);
    memset(key, 'X', 4);
    memset(val, 'X', 1);
    memset(fkey, 'X', 3);
    memset(fval, 'X', 5);
    cr_assert_str_eq(gd_point_measurement(p, NULL), "cpu");
    cr_assert_str_eq(gd_point_tag_get(p, "host"), "a");
    cr_assert_str_eq(gd_point_field_get(p, "msg")->v.str.ptr, "hello");
    gd_batch_unref(b);
}

Test(batch, length_counted_builders_take_exactly_len_bytes)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add_n(b, "cpu_total", 3, 5);
    cr_assert_not_null(p);
    cr_assert_eq(gd_point_tag_n(p, "hostname", 4, "abcdef", 2), 0);
    cr_assert_eq(gd_point_str_n(p, "s", "a\0b", 3), 0);
    size_t len;
    cr_assert_str_eq(gd_point_measurement(p, &len), "cpu");
    cr_assert_eq(len, 3);
    cr_assert_str_eq(gd_point_tag_get(p, "host"), "ab");
    const gd_field *f = gd_point_field_get(p, "s");
    cr_assert_eq(f->v.str.len, 3);
    cr_assert_eq(memcmp(f->v.str.ptr, "a\0b", 4), 0, "embedded NUL kept, NUL appended");
    gd_batch_unref(b);
}

Test(batch, tags_are_kept_sorted_by_key)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 0);
    const char *keys[] = {"region", "host", "zone", "APPLE", "A FOO", "az", "a"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        cr_assert_eq(gd_point_tag(p, keys[i], "v"), 0);
    const char *want[] = {"A FOO", "APPLE", "a", "az", "host", "region", "zone"};
    size_t n;
    const gd_tag *t = gd_point_tags(p, &n);
    cr_assert_eq(n, 7);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(t[i].key, want[i], "tag %zu", i);
    gd_batch_unref(b);
}

Test(batch, a_key_that_is_a_prefix_sorts_first)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 0);
    cr_assert_eq(gd_point_tag(p, "hostname", "1"), 0);
    cr_assert_eq(gd_point_tag(p, "host", "2"), 0);
    size_t n;
    const gd_tag *t = gd_point_tags(p, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(t[0].key, "host");
    cr_assert_str_eq(t[1].key, "hostname");
    gd_batch_unref(b);
}

Test(batch, setting_an_existing_tag_replaces_its_value)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 0);
    cr_assert_eq(gd_point_tag(p, "b", "1"), 0);
    cr_assert_eq(gd_point_tag(p, "a", "1"), 0);
    cr_assert_eq(gd_point_tag(p, "b", "second"), 0);
    size_t n;
    const gd_tag *t = gd_point_tags(p, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(t[1].key, "b");
    cr_assert_str_eq(t[1].value, "second");
    cr_assert_eq(t[1].value_len, 6);
    gd_batch_unref(b);
}

Test(batch, field_types_round_trip)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 0);
    cr_assert_eq(gd_point_f64(p, "f", -0.125), 0);
    cr_assert_eq(gd_point_i64(p, "i", INT64_MIN), 0);
    cr_assert_eq(gd_point_u64(p, "u", UINT64_MAX), 0);
    cr_assert_eq(gd_point_bool(p, "t", true), 0);
    cr_assert_eq(gd_point_bool(p, "n", false), 0);
    cr_assert_eq(gd_point_str(p, "s", "text"), 0);
    cr_assert_eq(gd_point_str(p, "e", ""), 0);

    size_t n;
    const gd_field *f = gd_point_fields(p, &n);
    cr_assert_eq(n, 7);
    cr_assert_eq(f[0].type, GD_F64);
    cr_assert_eq(f[0].v.f64, -0.125);
    cr_assert_eq(f[1].type, GD_I64);
    cr_assert_eq(f[1].v.i64, INT64_MIN);
    cr_assert_eq(f[2].type, GD_U64);
    cr_assert_eq(f[2].v.u64, UINT64_MAX);
    cr_assert_eq(f[3].type, GD_BOOL);
    cr_assert(f[3].v.b);
    cr_assert_eq(f[4].type, GD_BOOL);
    cr_assert_not(f[4].v.b);
    cr_assert_eq(f[5].type, GD_STR);
    cr_assert_eq(f[5].v.str.len, 4);
    cr_assert_str_eq(f[5].v.str.ptr, "text");
    cr_assert_eq(f[6].type, GD_STR);
    cr_assert_eq(f[6].v.str.len, 0);
    cr_assert_str_eq(f[6].v.str.ptr, "");
    gd_batch_unref(b);
}

Test(batch, fields_keep_insertion_order_and_duplicates)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 0);
    cr_assert_eq(gd_point_i64(p, "z", 1), 0);
    cr_assert_eq(gd_point_i64(p, "a", 2), 0);
    cr_assert_eq(gd_point_i64(p, "z", 3), 0);
    size_t n;
    const gd_field *f = gd_point_fields(p, &n);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(f[0].key, "z");
    cr_assert_str_eq(f[1].key, "a");
    cr_assert_str_eq(f[2].key, "z");
    cr_assert_eq(gd_point_field_get(p, "z")->v.i64, 1, "lookup finds the first");
    gd_batch_unref(b);
}

Test(batch, point_field_adds_a_copy_of_any_type)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 0);
    char key[] = "msg", val[] = "hi";
    gd_field f = {.key = key, .key_len = 3, .type = GD_STR, .v.str = {val, 2}};
    cr_assert_eq(gd_point_field(p, &f), 0);
    gd_field g = {.key = "u", .key_len = 1, .type = GD_U64, .v.u64 = 7};
    cr_assert_eq(gd_point_field(p, &g), 0);
    key[0] = val[0] = 'X';
    cr_assert_str_eq(gd_point_field_get(p, "msg")->v.str.ptr, "hi");
    cr_assert_eq(gd_point_field_get(p, "u")->v.u64, 7);

    gd_field bad = {.key = "x", .key_len = 1, .type = 99};
    cr_assert_eq(gd_point_field(p, &bad), GD_ETYPE);
    gd_field nan = {.key = "x", .key_len = 1, .type = GD_F64, .v.f64 = NAN};
    cr_assert_eq(gd_point_field(p, &nan), GD_ERANGE);
    size_t n;
    gd_point_fields(p, &n);
    cr_assert_eq(n, 2);
    gd_batch_unref(b);
}

Test(batch, set_time_changes_the_timestamp)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 1);
    cr_assert_eq(gd_point_set_time(p, -42), 0);
    cr_assert_eq(gd_point_time(p), -42);
    gd_batch_unref(b);
}

Test(batch, lookups_find_tags_and_fields_by_key)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 0);
    const char *keys[] = {"k5", "k1", "k9", "k3", "k7", "k2", "k8", "k4", "k6", "k0"};
    for (size_t i = 0; i < 10; i++) {
        cr_assert_eq(gd_point_tag(p, keys[i], keys[i]), 0);
        cr_assert_eq(gd_point_i64(p, keys[i], (int64_t)i), 0);
    }
    for (size_t i = 0; i < 10; i++) {
        cr_assert_str_eq(gd_point_tag_get(p, keys[i]), keys[i]);
        cr_assert_eq(gd_point_field_get(p, keys[i])->v.i64, (int64_t)i);
    }
    cr_assert_null(gd_point_tag_get(p, "k"));
    cr_assert_null(gd_point_tag_get(p, "k10"));
    cr_assert_null(gd_point_field_get(p, "nope"));
    gd_batch_unref(b);
}

Test(batch, strdup_copies_into_the_batch)
{
    gd_batch *b = new_batch();
    char src[] = "abcdef";
    const char *s = gd_batch_strdup(b, src, 3);
    src[0] = 'X';
    cr_assert_str_eq(s, "abc");
    gd_batch_unref(b);
}

Test(batch, long_strings_larger_than_a_chunk_are_stored)
{
    gd_batch *b = new_batch();
    char *big = malloc(LONG_STRING_BYTES + 1);
    cr_assert_not_null(big);
    memset(big, 'x', LONG_STRING_BYTES);
    big[LONG_STRING_BYTES] = '\0';
    gd_point *p = gd_batch_add(b, big, 0);
    cr_assert_not_null(p);
    cr_assert_eq(gd_point_str(p, "log", big), 0);
    cr_assert_eq(gd_point_tag(p, "t", big), 0);
    gd_point *q = gd_batch_add(b, "after", 0); /* the current chunk still serves */
    cr_assert_eq(gd_point_i64(q, "v", 1), 0);
    cr_assert_str_eq(gd_point_measurement(p, NULL), big);
    cr_assert_str_eq(gd_point_field_get(p, "log")->v.str.ptr, big);
    cr_assert_str_eq(gd_point_tag_get(p, "t"), big);
    cr_assert_geq(gd_batch_bytes(b), 3 * (size_t)LONG_STRING_BYTES);
    free(big);
    gd_batch_unref(b);
}

/* ---- refusals ---------------------------------------------------------- */

Test(batch, f64_refuses_nan_and_infinities)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 0);
    cr_assert_eq(gd_point_f64(p, "v", NAN), GD_ERANGE);
    cr_assert_eq(gd_point_f64(p, "v", INFINITY), GD_ERANGE);
    cr_assert_eq(gd_point_f64(p, "v", -INFINITY), GD_ERANGE);
    size_t n;
    gd_point_fields(p, &n);
    cr_assert_eq(n, 0, "nothing was added");
    gd_batch_unref(b);
}

Test(batch, empty_measurement_is_refused)
{
    gd_batch *b = new_batch();
    cr_assert_null(gd_batch_add(b, "", 0));
    cr_assert_null(gd_batch_add(b, NULL, 0));
    cr_assert_null(gd_batch_add_n(b, "m", 0, 0));
    cr_assert_null(gd_batch_add(NULL, "m", 0));
    cr_assert_eq(gd_batch_len(b), 0);
    gd_batch_unref(b);
}

Test(batch, empty_keys_and_tag_values_are_refused)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 0);
    cr_assert_eq(gd_point_tag(p, "", "v"), GD_EINVAL);
    cr_assert_eq(gd_point_tag(p, "k", ""), GD_EINVAL);
    cr_assert_eq(gd_point_tag(p, NULL, "v"), GD_EINVAL);
    cr_assert_eq(gd_point_tag(p, "k", NULL), GD_EINVAL);
    cr_assert_eq(gd_point_f64(p, "", 1.0), GD_EINVAL);
    cr_assert_eq(gd_point_i64(p, "", 1), GD_EINVAL);
    cr_assert_eq(gd_point_u64(p, "", 1), GD_EINVAL);
    cr_assert_eq(gd_point_bool(p, "", true), GD_EINVAL);
    cr_assert_eq(gd_point_str(p, "", "s"), GD_EINVAL);
    cr_assert_eq(gd_point_str(p, "k", NULL), GD_EINVAL);
    cr_assert_eq(gd_point_f64(p, NULL, 1.0), GD_EINVAL);
    cr_assert_eq(gd_point_f64(NULL, "k", 1.0), GD_EINVAL);
    size_t nt, nf;
    gd_point_tags(p, &nt);
    gd_point_fields(p, &nf);
    cr_assert_eq(nt, 0);
    cr_assert_eq(nf, 0);
    gd_batch_unref(b);
}

Test(batch, frozen_batch_refuses_builders)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 0);
    cr_assert_eq(gd_point_i64(p, "v", 1), 0);
    gd_batch_freeze(b);
    gd_batch_freeze(b); /* idempotent */
    cr_assert(gd_batch_is_frozen(b));

    cr_assert_null(gd_batch_add(b, "m2", 0));
    cr_assert_null(gd_batch_add_n(b, "m2", 2, 0));
    cr_assert_eq(gd_point_tag(p, "k", "v"), GD_EFROZEN);
    cr_assert_eq(gd_point_tag_n(p, "k", 1, "v", 1), GD_EFROZEN);
    cr_assert_eq(gd_point_f64(p, "f", 1.0), GD_EFROZEN);
    cr_assert_eq(gd_point_i64(p, "i", 1), GD_EFROZEN);
    cr_assert_eq(gd_point_u64(p, "u", 1), GD_EFROZEN);
    cr_assert_eq(gd_point_bool(p, "b", true), GD_EFROZEN);
    cr_assert_eq(gd_point_str(p, "s", "x"), GD_EFROZEN);
    cr_assert_eq(gd_point_str_n(p, "s", "x", 1), GD_EFROZEN);
    gd_field f = {.key = "i", .key_len = 1, .type = GD_I64, .v.i64 = 1};
    cr_assert_eq(gd_point_field(p, &f), GD_EFROZEN);
    cr_assert_eq(gd_point_set_time(p, 5), GD_EFROZEN);
    cr_assert_null(gd_batch_copy_point(b, p));
    cr_assert_null(gd_batch_strdup(b, "x", 1));

    cr_assert_eq(gd_batch_len(b), 1);
    size_t n;
    gd_point_fields(p, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(gd_point_time(p), 0);
    gd_batch_unref(b);
}

/* ---- ownership --------------------------------------------------------- */

Test(batch, ref_and_unref_count_references)
{
    gd_batch *b = new_batch();
    cr_assert_eq(gd_batch_ref(b), b);
    cr_assert_eq(gd_batch_refcount(b), 2);
    gd_batch_ref(b);
    cr_assert_eq(gd_batch_refcount(b), 3);
    gd_batch_unref(b);
    gd_batch_unref(b);
    cr_assert_eq(gd_batch_refcount(b), 1);
    gd_batch_unref(b);
}

Test(batch, last_unref_frees_the_batch_and_its_points)
{
    /* ASan (meson setup -Dsanitize=true) reports a leak if anything stays. */
    gd_batch *b = gd_batch_new(1);
    for (int i = 0; i < 5000; i++) {
        gd_point *p = gd_batch_add(b, "m", i);
        cr_assert_eq(gd_point_tag(p, "host", "a"), 0);
        cr_assert_eq(gd_point_str(p, "s", "a fairly long string value to fill chunks"), 0);
    }
    gd_batch_ref(b);
    gd_batch_unref(b);
    cr_assert_eq(gd_batch_len(b), 5000, "still alive after a non-final unref");
    gd_batch_unref(b);
}

Test(batch, unref_accepts_null)
{
    gd_batch_unref(NULL);
}

static void *ref_unref_loop(void *arg)
{
    gd_batch *b = arg;
    for (int i = 0; i < REFS_PER_THREAD; i++) {
        gd_batch_ref(b);
        gd_batch_unref(b);
    }
    return NULL;
}

Test(batch, references_are_counted_atomically_across_threads)
{
    gd_batch *b = new_batch();
    gd_batch_freeze(b);
    pthread_t th[REF_THREADS];
    for (int i = 0; i < REF_THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, ref_unref_loop, b), 0);
    for (int i = 0; i < REF_THREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(gd_batch_refcount(b), 1);
    gd_batch_unref(b);
}

/* ---- copying and extending --------------------------------------------- */

Test(batch, copy_point_across_batches_is_deep)
{
    gd_batch *src = new_batch();
    gd_point *p = gd_batch_add(src, "cpu", 99);
    cr_assert_eq(gd_point_tag(p, "host", "a"), 0);
    cr_assert_eq(gd_point_tag(p, "dc", "x"), 0);
    cr_assert_eq(gd_point_f64(p, "usage", 0.5), 0);
    cr_assert_eq(gd_point_str(p, "note", "busy"), 0);

    gd_batch *dst = new_batch();
    cr_assert_not_null(gd_batch_add(dst, "first", 0));
    gd_point *c = gd_batch_copy_point(dst, p);
    cr_assert_not_null(c);
    gd_batch_unref(src); /* the copy must not borrow anything */

    cr_assert_eq(gd_batch_len(dst), 2);
    cr_assert_eq(gd_batch_point(dst, 1), c);
    cr_assert_str_eq(gd_point_measurement(c, NULL), "cpu");
    cr_assert_eq(gd_point_time(c), 99);
    size_t nt, nf;
    const gd_tag *t = gd_point_tags(c, &nt);
    const gd_field *f = gd_point_fields(c, &nf);
    cr_assert_eq(nt, 2);
    cr_assert_str_eq(t[0].key, "dc");
    cr_assert_str_eq(t[1].value, "a");
    cr_assert_eq(nf, 2);
    cr_assert_eq(f[0].v.f64, 0.5);
    cr_assert_str_eq(f[1].v.str.ptr, "busy");

    /* The copy is a point of dst like any other. */
    cr_assert_eq(gd_point_tag(c, "zone", "z"), 0);
    cr_assert_str_eq(gd_point_tag_get(c, "zone"), "z");
    gd_batch_unref(dst);
}

Test(batch, copy_point_within_the_same_batch)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p = gd_batch_add(b, "m", 1);
    cr_assert_eq(gd_point_tag(p, "k", "v"), 0);
    cr_assert_eq(gd_point_i64(p, "i", 1), 0);
    /* Enough copies to force the tag and field arrays to move. */
    for (int i = 0; i < 100; i++)
        cr_assert_not_null(gd_batch_copy_point(b, gd_batch_point(b, (size_t)i)));
    cr_assert_eq(gd_batch_len(b), 101);
    gd_point *last = (gd_point *)gd_batch_point(b, 100);
    cr_assert_eq(gd_point_i64(last, "j", 2), 0);
    cr_assert_str_eq(gd_point_tag_get(last, "k"), "v");
    cr_assert_eq(gd_point_field_get(last, "i")->v.i64, 1);
    size_t n;
    gd_point_fields(p, &n);
    cr_assert_eq(n, 1, "the original is unchanged");
    gd_batch_unref(b);
}

Test(batch, extending_an_earlier_point_after_adding_later_ones)
{
    gd_batch *b = gd_batch_new(1);
    gd_point *p1 = gd_batch_add(b, "one", 1);
    cr_assert_eq(gd_point_tag(p1, "b", "1"), 0);
    cr_assert_eq(gd_point_i64(p1, "x", 1), 0);
    gd_point *p2 = gd_batch_add(b, "two", 2);
    cr_assert_eq(gd_point_tag(p2, "k", "2"), 0);
    cr_assert_eq(gd_point_i64(p2, "y", 2), 0);

    cr_assert_eq(gd_point_tag(p1, "a", "1"), 0);
    cr_assert_eq(gd_point_i64(p1, "z", 3), 0);
    cr_assert_eq(gd_point_tag(p2, "j", "2"), 0);
    cr_assert_eq(gd_point_i64(p2, "w", 4), 0);
    cr_assert_eq(gd_point_tag(p1, "c", "1"), 0);

    size_t nt, nf;
    const gd_tag *t = gd_point_tags(p1, &nt);
    const gd_field *f = gd_point_fields(p1, &nf);
    cr_assert_eq(nt, 3);
    cr_assert_str_eq(t[0].key, "a");
    cr_assert_str_eq(t[1].key, "b");
    cr_assert_str_eq(t[2].key, "c");
    cr_assert_eq(nf, 2);
    cr_assert_eq(f[0].v.i64, 1);
    cr_assert_eq(f[1].v.i64, 3);

    t = gd_point_tags(p2, &nt);
    f = gd_point_fields(p2, &nf);
    cr_assert_eq(nt, 2);
    cr_assert_str_eq(t[0].key, "j");
    cr_assert_str_eq(t[1].key, "k");
    cr_assert_eq(nf, 2);
    cr_assert_str_eq(f[0].key, "y");
    cr_assert_str_eq(f[1].key, "w");
    gd_batch_unref(b);
}

Test(batch, many_points_keep_stable_handles)
{
    gd_batch *b = gd_batch_new(16);
    gd_point **handles = calloc(MANY_POINTS, sizeof(*handles));
    cr_assert_not_null(handles);
    char name[32];
    for (int i = 0; i < MANY_POINTS; i++) {
        snprintf(name, sizeof(name), "m%d", i);
        gd_point *p = gd_batch_add(b, name, i);
        cr_assert_not_null(p);
        cr_assert_eq(gd_point_tag(p, "host", name), 0);
        cr_assert_eq(gd_point_i64(p, "i", i), 0);
        cr_assert_eq(gd_point_f64(p, "f", i * 0.5), 0);
        handles[i] = p;
    }
    /* Extend every tenth point after all the others: ranges move. */
    for (int i = 0; i < MANY_POINTS; i += 10)
        cr_assert_eq(gd_point_u64(handles[i], "late", (uint64_t)i), 0);

    cr_assert_eq(gd_batch_len(b), MANY_POINTS);
    for (int i = 0; i < MANY_POINTS; i++) {
        const gd_point *p = gd_batch_point(b, (size_t)i);
        cr_assert_eq(p, handles[i]);
        snprintf(name, sizeof(name), "m%d", i);
        cr_assert_str_eq(gd_point_measurement(p, NULL), name);
        cr_assert_eq(gd_point_time(p), i);
        cr_assert_str_eq(gd_point_tag_get(p, "host"), name);
        cr_assert_eq(gd_point_field_get(p, "i")->v.i64, i);
        cr_assert_eq(gd_point_field_get(p, "f")->v.f64, i * 0.5);
        size_t nf;
        gd_point_fields(p, &nf);
        cr_assert_eq(nf, i % 10 == 0 ? 3u : 2u);
    }
    free(handles);
    gd_batch_unref(b);
}

Test(batch, bytes_grow_with_content)
{
    gd_batch *b = gd_batch_new(4);
    size_t empty = gd_batch_bytes(b);
    gd_point *p = gd_batch_add(b, "m", 0);
    size_t one = gd_batch_bytes(b);
    cr_assert_gt(one, empty);
    cr_assert_eq(gd_point_f64(p, "v", 1.0), 0);
    size_t with_field = gd_batch_bytes(b);
    cr_assert_gt(with_field, one);
    for (int i = 0; i < 1000; i++)
        gd_point_f64(gd_batch_add(b, "m", i), "v", 1.0);
    size_t many = gd_batch_bytes(b);
    cr_assert_gt(many, 100 * (with_field - empty), "proportional to content");
    cr_assert_lt(many, 1000 * 1024, "not wildly over");
    gd_batch_unref(b);
}

Test(batch, drop_last_removes_the_point_being_built)
{
    gd_batch *b = gd_batch_new(2);
    gd_point *p = gd_batch_add(b, "keep", 1);
    gd_point_tag(p, "a", "1");
    gd_point_i64(p, "v", 1);
    gd_point *q = gd_batch_add(b, "half", 2);
    gd_point_tag(q, "b", "2");
    gd_point_i64(q, "w", 2);
    /* the earlier point grows after the later one: its tags move to the end */
    gd_point_tag(p, "c", "3");
    cr_assert_eq(gd_batch_drop_last(b), 0);
    cr_assert_eq(gd_batch_len(b), 1);
    size_t nt, nf;
    const gd_tag *t = gd_point_tags(gd_batch_point(b, 0), &nt);
    gd_point_fields(gd_batch_point(b, 0), &nf);
    cr_assert_eq(nt, 2);
    cr_assert_str_eq(t[0].key, "a");
    cr_assert_str_eq(t[1].key, "c");
    cr_assert_eq(nf, 1);
    gd_point *r = gd_batch_add(b, "next", 3);
    gd_point_i64(r, "x", 3);
    gd_point_fields(r, &nf);
    cr_assert_eq(nf, 1);
    gd_point_tags(r, &nt);
    cr_assert_eq(nt, 0);
    cr_assert_eq(gd_batch_drop_last(b), 0);
    cr_assert_eq(gd_batch_drop_last(b), 0);
    cr_assert_eq(gd_batch_drop_last(b), GD_ENOENT);
    gd_batch_freeze(b);
    cr_assert_eq(gd_batch_drop_last(b), GD_EFROZEN);
    gd_batch_unref(b);
}

/* ---- derived points ------------------------------------------------------ */

/* A frozen source batch with one point: chamber,device=c17,site=lab
 * temp_c=21.5,note="ok",n=3i at ts 5. */
static gd_batch *derive_source(void)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "chamber", 5);
    cr_assert_eq(gd_point_tag(p, "device", "c17"), 0);
    cr_assert_eq(gd_point_tag(p, "site", "lab"), 0);
    cr_assert_eq(gd_point_f64(p, "temp_c", 21.5), 0);
    cr_assert_eq(gd_point_str(p, "note", "ok"), 0);
    cr_assert_eq(gd_point_i64(p, "n", 3), 0);
    gd_batch_freeze(b);
    return b;
}

Test(batch, derived_point_equals_its_source_and_references_its_strings)
{
    gd_batch *src = derive_source();
    const gd_point *s = only_point(src);
    gd_batch *dst = new_batch();
    gd_point *d = gd_batch_derive_point(dst, s);
    cr_assert_not_null(d);
    cr_assert_eq(gd_batch_refcount(src), 2, "the destination holds the source");
    size_t len, snt, dnt, snf, dnf;
    cr_assert_eq(gd_point_measurement(d, &len), gd_point_measurement(s, NULL), "not copied");
    cr_assert_eq(len, 7);
    cr_assert_eq(gd_point_time(d), 5);
    const gd_tag *st = gd_point_tags(s, &snt), *dt = gd_point_tags(d, &dnt);
    const gd_field *sf = gd_point_fields(s, &snf), *df = gd_point_fields(d, &dnf);
    cr_assert_eq(dnt, snt);
    cr_assert_eq(dnf, snf);
    cr_assert_neq(dt, st, "the entries are the destination's own");
    for (size_t i = 0; i < dnt; i++) {
        cr_assert_eq(dt[i].key, st[i].key);
        cr_assert_eq(dt[i].value, st[i].value);
    }
    cr_assert_eq(df[1].v.str.ptr, sf[1].v.str.ptr);
    cr_assert_eq(memcmp(df, sf, dnf * sizeof(*df)), 0);
    gd_batch_unref(dst);
    cr_assert_eq(gd_batch_refcount(src), 1, "freeing the destination releases the source");
    gd_batch_unref(src);
}

Test(batch, derived_points_outlive_the_source_s_other_references)
{
    gd_batch *src = derive_source();
    gd_batch *dst = new_batch();
    for (int i = 0; i < 3; i++)
        cr_assert_not_null(gd_batch_derive_point(dst, only_point(src)));
    cr_assert_eq(gd_batch_refcount(src), 2, "one reference for a run of points");
    gd_batch_unref(src); /* the last other holder goes first */
    gd_batch_freeze(dst);
    for (size_t i = 0; i < 3; i++) {
        const gd_point *d = gd_batch_point(dst, i);
        cr_assert_str_eq(gd_point_measurement(d, NULL), "chamber");
        cr_assert_str_eq(gd_point_tag_get(d, "device"), "c17");
        cr_assert_str_eq(gd_point_field_get(d, "note")->v.str.ptr, "ok");
    }
    gd_batch_unref(dst);
}

Test(batch, derived_points_from_two_sources_hold_both)
{
    gd_batch *a = derive_source(), *b2 = derive_source();
    gd_batch *dst = new_batch();
    cr_assert_not_null(gd_batch_derive_point(dst, only_point(a)));
    cr_assert_not_null(gd_batch_derive_point(dst, only_point(b2)));
    cr_assert_not_null(gd_batch_derive_point(dst, only_point(a)));
    cr_assert_geq(gd_batch_refcount(a), 2);
    cr_assert_eq(gd_batch_refcount(b2), 2);
    gd_batch_unref(a);
    gd_batch_unref(b2);
    cr_assert_str_eq(gd_point_tag_get(gd_batch_point(dst, 2), "site"), "lab");
    gd_batch_unref(dst);
}

Test(batch, derived_point_from_its_own_batch_takes_no_reference)
{
    gd_batch *b = new_batch();
    gd_point *p = gd_batch_add(b, "m", 1);
    gd_point_i64(p, "v", 1);
    gd_point *d = gd_batch_derive_point(b, p);
    cr_assert_not_null(d);
    cr_assert_eq(gd_batch_refcount(b), 1);
    cr_assert_eq(gd_batch_len(b), 2);
    cr_assert_eq(gd_point_field_get(d, "v")->v.i64, 1);
    gd_batch_unref(b);
}

Test(batch, derived_point_can_be_changed_without_touching_the_source)
{
    gd_batch *src = derive_source();
    const gd_point *s = only_point(src);
    gd_batch *dst = new_batch();
    gd_point *d = gd_batch_derive_point(dst, s);
    gd_field *f = gd_point_field_mut(d, 0);
    cr_assert_not_null(f);
    f->v.f64 = 70.7;
    f->key = gd_batch_strdup(dst, "temp_f", 6);
    f->key_len = 6;
    cr_assert_eq(gd_point_remove_field(d, 1), 0);
    cr_assert_eq(gd_point_remove_tag(d, 1), 0);
    cr_assert_eq(gd_point_tag(d, "room", "r1"), 0);
    cr_assert_eq(gd_point_tag(d, "device", "c18"), 0);
    cr_assert_eq(gd_point_u64(d, "u", 9), 0);

    size_t nt, nf;
    const gd_tag *t = gd_point_tags(d, &nt);
    const gd_field *df = gd_point_fields(d, &nf);
    cr_assert_eq(nt, 2);
    cr_assert_str_eq(t[0].key, "device");
    cr_assert_str_eq(t[0].value, "c18");
    cr_assert_str_eq(t[1].key, "room");
    cr_assert_eq(nf, 3);
    cr_assert_str_eq(df[0].key, "temp_f");
    cr_assert_eq(df[0].v.f64, 70.7);
    cr_assert_str_eq(df[1].key, "n");
    cr_assert_str_eq(df[2].key, "u");

    /* the source is as it was */
    t = gd_point_tags(s, &nt);
    df = gd_point_fields(s, &nf);
    cr_assert_eq(nt, 2);
    cr_assert_str_eq(t[0].value, "c17");
    cr_assert_str_eq(t[1].key, "site");
    cr_assert_eq(nf, 3);
    cr_assert_str_eq(df[0].key, "temp_c");
    cr_assert_eq(df[0].v.f64, 21.5);
    gd_batch_unref(dst);
    gd_batch_unref(src);
}

Test(batch, removing_from_a_point_that_is_not_the_last_keeps_the_others)
{
    gd_batch *src = derive_source();
    gd_batch *dst = new_batch();
    gd_point *a = gd_batch_derive_point(dst, only_point(src));
    gd_point *b2 = gd_batch_derive_point(dst, only_point(src));
    cr_assert_eq(gd_point_remove_field(a, 0), 0);
    cr_assert_eq(gd_point_remove_tag(a, 0), 0);
    cr_assert_eq(gd_point_f64(a, "x", 1.0), 0); /* a grows after b2 */
    size_t nt, nf;
    gd_point_tags(b2, &nt);
    gd_point_fields(b2, &nf);
    cr_assert_eq(nt, 2);
    cr_assert_eq(nf, 3);
    const gd_field *f = gd_point_fields(a, &nf);
    cr_assert_eq(nf, 3);
    cr_assert_str_eq(f[0].key, "note");
    cr_assert_str_eq(f[2].key, "x");
    cr_assert_str_eq(gd_point_tags(a, &nt)[0].key, "site");
    cr_assert_eq(nt, 1);
    gd_batch_unref(dst);
    gd_batch_unref(src);
}

Test(batch, derive_and_changes_are_refused_on_a_frozen_batch_or_out_of_range)
{
    gd_batch *src = derive_source();
    gd_batch *dst = new_batch();
    gd_point *d = gd_batch_derive_point(dst, only_point(src));
    cr_assert_null(gd_point_field_mut(d, 3));
    cr_assert_eq(gd_point_remove_field(d, 3), GD_ENOENT);
    cr_assert_eq(gd_point_remove_tag(d, 2), GD_ENOENT);
    cr_assert_null(gd_batch_derive_point(NULL, only_point(src)));
    cr_assert_null(gd_batch_derive_point(dst, NULL));
    cr_assert_eq(gd_point_remove_tag(NULL, 0), GD_EINVAL);
    cr_assert_eq(gd_point_remove_field(NULL, 0), GD_EINVAL);
    cr_assert_null(gd_point_field_mut(NULL, 0));
    gd_batch_freeze(dst);
    cr_assert_null(gd_batch_derive_point(dst, only_point(src)));
    cr_assert_null(gd_point_field_mut(d, 0));
    cr_assert_eq(gd_point_remove_field(d, 0), GD_EFROZEN);
    cr_assert_eq(gd_point_remove_tag(d, 0), GD_EFROZEN);
    cr_assert_null(gd_point_field_mut((gd_point *)only_point(src), 0));
    cr_assert_eq(gd_batch_len(dst), 1);
    gd_batch_unref(src);
    gd_batch_unref(dst);
}

Test(batch, bytes_count_the_batches_derived_points_hold)
{
    gd_batch *src = derive_source();
    gd_batch *dst = new_batch();
    size_t empty = gd_batch_bytes(dst);
    cr_assert_not_null(gd_batch_derive_point(dst, only_point(src)));
    cr_assert_geq(gd_batch_bytes(dst), empty + gd_batch_bytes(src));
    gd_batch_unref(src);
    gd_batch_unref(dst);
}
