/* SPDX-License-Identifier: Apache-2.0 */
/* The filter processor: expression precedence and types, regexes, presence,
 * compile errors with columns, keep/drop modes, field lists, and the
 * untouched fast path. */
#include "proc_harness.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(filter, .fini = gdp_unload);

static gd_batch *lp(const char *text)
{
    gd_batch *b = gd_batch_new(8);
    cr_assert_eq(gd_lp_parse(b, text, strlen(text), GD_PREC_NS, 0, NULL, NULL), 0, "%s", text);
    return b;
}

/* @s with " and \ escaped for a config string. */
static void escape(char *dst, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 2 < cap; s++) {
        if (*s == '"' || *s == '\\')
            dst[o++] = '\\';
        dst[o++] = *s;
    }
    dst[o] = '\0';
}

/* Config text of instance "f" with expression @expr and @extra options. */
static void conf_of(char *conf, size_t cap, const char *expr, const char *extra)
{
    char e[512] = "";
    if (expr)
        escape(e, sizeof(e), expr);
    snprintf(conf, cap, "processors = ({ plugin = \"filter\"; name = \"f\"; %s%s%s %s });",
             expr ? "expr = \"" : "", e, expr ? "\";" : "", extra ? extra : "");
}

static void load(const char *expr, const char *extra)
{
    char conf[1024];
    conf_of(conf, sizeof(conf), expr, extra);
    gdp_load(conf);
}

/* The points of @in that @expr keeps. */
static const char *kept(const char *expr, const char *in)
{
    load(expr, NULL);
    return gdp_process("f", lp(in));
}

/* The error init logged for @expr (stderr captured), malloc'd. */
static char *compile_error(const char *expr)
{
    char conf[1024], path[] = "/tmp/gd-filter-testXXXXXX";
    conf_of(conf, sizeof(conf), expr, NULL);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    char *e = gdp_load_error(conf);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_assert_not_null(e, "accepted: %s", expr);
    free(e);
    static char text[4096];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    char *m = strstr(text, "expr: ");
    cr_assert_not_null(m, "no expr error in: %s", text);
    char *nl = strchr(m, '\n');
    return strndup(m, nl ? (size_t)(nl - m) : strlen(m));
}

static void expect_error(const char *expr, const char *msg)
{
    char *e = compile_error(expr);
    cr_assert_str_eq(e, msg, "for %s", expr);
    free(e);
}

Test(filter, example_from_the_docs)
{
    const char *in = "chamber,device=c1 temp_c=81 1\n"
                     "chamber,device=c2 temp_c=79 2\n"
                     "room,device=test-9 temp_c=20 3\n"
                     "room,device=r1 temp_c=99 4\n";
    cr_assert_str_eq(kept("measurement == \"chamber\" && temp_c > 80 || device =~ \"^test-\"", in),
                     "chamber,device=c1 temp_c=81 1\nroom,device=test-9 temp_c=20 3\n");
    cr_assert_eq(gdp_dropped("f", "filtered"), 2);
}

Test(filter, and_binds_tighter_than_or)
{
    const char *in = "m a=1i,b=0i,c=0i 1\nm a=0i,b=1i,c=0i 2\nm a=0i,b=1i,c=1i 3\n";
    cr_assert_str_eq(kept("a == 1 || b == 1 && c == 1", in),
                     "m a=1i,b=0i,c=0i 1\nm a=0i,b=1i,c=1i 3\n");
    cr_assert_str_eq(kept("a == 1 or b == 1 and c == 1", in),
                     "m a=1i,b=0i,c=0i 1\nm a=0i,b=1i,c=1i 3\n");
    cr_assert_str_eq(kept("(a == 1 || b == 1) && c == 1", in), "m a=0i,b=1i,c=1i 3\n");
}

Test(filter, not_binds_tightest)
{
    const char *in = "m a=1i,b=1i 1\nm a=0i,b=1i 2\nm a=0i,b=0i 3\n";
    cr_assert_str_eq(kept("!a == 1 && b == 1", in), "m a=0i,b=1i 2\n");
    cr_assert_str_eq(kept("not (a == 1 or b == 1)", in), "m a=0i,b=0i 3\n");
    cr_assert_str_eq(kept("not not a == 1", in), "m a=1i,b=1i 1\n");
}

Test(filter, numbers_compare_across_int_float_and_unsigned)
{
    const char *in = "m v=5i 1\nm v=4.5 2\nm v=6u 3\nm v=-9223372036854775808i 4\n";
    cr_assert_str_eq(kept("v > 4.5", in), "m v=5i 1\nm v=6u 3\n");
    cr_assert_str_eq(kept("v >= 4.5", in), "m v=5i 1\nm v=4.5 2\nm v=6u 3\n");
    cr_assert_str_eq(kept("v == 5", in), "m v=5i 1\n");
    cr_assert_str_eq(kept("v != 5", in), "m v=4.5 2\nm v=6u 3\nm v=-9223372036854775808i 4\n");
    cr_assert_str_eq(kept("v < -9223372036854775807", in), "m v=-9223372036854775808i 4\n");
    cr_assert_str_eq(kept("v <= 4.5e0", in), "m v=4.5 2\nm v=-9223372036854775808i 4\n");
}

Test(filter, strings_compare_bytewise)
{
    const char *in = "m,d=abc v=1 1\nm,d=abd v=1 2\nm,d=ab v=1 3\n";
    cr_assert_str_eq(kept("d == \"abc\"", in), "m,d=abc v=1 1\n");
    cr_assert_str_eq(kept("d < \"abd\"", in), "m,d=abc v=1 1\nm,d=ab v=1 3\n");
    cr_assert_str_eq(kept("d > \"ab\"", in), "m,d=abc v=1 1\nm,d=abd v=1 2\n");
    cr_assert_str_eq(kept("s == \"say \\\"hi\\\"\"", "m s=\"say \\\"hi\\\"\" 1\nm s=\"x\" 2\n"),
                     "m s=\"say \\\"hi\\\"\" 1\n");
}

Test(filter, booleans_compare_equal_only)
{
    const char *in = "m ok=true 1\nm ok=false 2\nm ok=1i 3\n";
    cr_assert_str_eq(kept("ok == true", in), "m ok=true 1\n");
    cr_assert_str_eq(kept("ok != true", in), "m ok=false 2\n");
}

Test(filter, number_against_a_tag_parses_the_tag)
{
    const char *in = "m,slot=3 v=1 1\nm,slot=12 v=1 2\nm,slot=x v=1 3\n";
    cr_assert_str_eq(kept("slot > 5", in), "m,slot=12 v=1 2\n");
    cr_assert_str_eq(kept("slot == \"3\"", in), "m,slot=3 v=1 1\n");
    cr_assert_str_eq(kept("v == \"1\"", in), "");
}

Test(filter, a_missing_name_makes_every_comparison_false)
{
    const char *in = "m a=1 1\nm b=1 2\n";
    cr_assert_str_eq(kept("a == 1", in), "m a=1 1\n");
    cr_assert_str_eq(kept("a != 1", in), "");
    cr_assert_str_eq(kept("a < 5", in), "m a=1 1\n");
    cr_assert_str_eq(kept("a =~ \".\"", in), "");
    cr_assert_str_eq(kept("a !~ \"x\"", in), "");
    cr_assert_str_eq(kept("!(a == 1)", in), "m b=1 2\n");
    cr_assert_str_eq(kept("!exists(a) || a != 1", in), "m b=1 2\n");
}

Test(filter, regex_match_and_no_match)
{
    const char *in = "m,device=test-1 v=1 1\nm,device=prod-1 v=1 2\nm s=\"test-x\" 3\nm v=2 4\n";
    cr_assert_str_eq(kept("device =~ \"^test-\"", in), "m,device=test-1 v=1 1\n");
    cr_assert_str_eq(kept("device !~ \"^test-\"", in), "m,device=prod-1 v=1 2\n");
    cr_assert_str_eq(kept("s =~ \"-[a-z]$\"", in), "m s=\"test-x\" 3\n");
    cr_assert_str_eq(kept("v =~ \"2\"", in), "");
    cr_assert_str_eq(kept("measurement =~ \"^m$\"", "m v=1 1\nmm v=1 2\n"), "m v=1 1\n");
}

Test(filter, presence_and_qualifiers)
{
    const char *in = "m,x=tag v=1 1\nm x=2 2\nm v=3 3\n";
    cr_assert_str_eq(kept("exists(x)", in), "m,x=tag v=1 1\nm x=2 2\n");
    cr_assert_str_eq(kept("exists(tag.x)", in), "m,x=tag v=1 1\n");
    cr_assert_str_eq(kept("exists(field.x)", in), "m x=2 2\n");
    cr_assert_str_eq(kept("field.x == 2", in), "m x=2 2\n");
    cr_assert_str_eq(kept("tag.x == \"tag\"", in), "m,x=tag v=1 1\n");
    /* a bare name is a tag first: here the tag, a string, is not 2 */
    cr_assert_str_eq(kept("x == 2", "m,x=tag x=2 1\n"), "");
    cr_assert_str_eq(kept("field.x == 2", "m,x=tag x=2 1\n"), "m,x=tag x=2 1\n");
}

Test(filter, qualifiers_reach_names_that_are_keywords)
{
    cr_assert_str_eq(
        kept("field.and == 1 && tag.exists == \"y\"", "m,exists=y and=1 1\nm and=1 2\n"),
        "m,exists=y and=1 1\n");
}

Test(filter, measurement_is_a_keyword)
{
    const char *in = "chamber,measurement=t v=1 1\nroom v=1 2\n";
    cr_assert_str_eq(kept("measurement == \"room\"", in), "room v=1 2\n");
    cr_assert_str_eq(kept("tag.measurement == \"t\"", in), "chamber,measurement=t v=1 1\n");
}

Test(filter, drop_mode_drops_matches)
{
    load("device =~ \"^test-\"", "mode = \"drop\";");
    cr_assert_str_eq(gdp_process("f", lp("m,device=test-1 v=1 1\nm,device=p v=1 2\n")),
                     "m,device=p v=1 2\n");
    cr_assert_eq(gdp_dropped("f", "filtered"), 1);
}

Test(filter, pass_when_every_point_is_kept)
{
    load("v > 0", NULL);
    cr_assert_str_eq(gdp_process("f", lp("m v=1 1\nm v=2 2\n")), "m v=1 1\nm v=2 2\n");
    cr_assert_eq(gdp_last_rc(), GD_PASS);
    load(NULL, "fields_drop = [\"raw_*\"];");
    cr_assert_str_eq(gdp_process("f", lp("m v=1 1\n")), "m v=1 1\n");
    cr_assert_eq(gdp_last_rc(), GD_PASS);
}

Test(filter, fields_drop_and_keep)
{
    load(NULL, "fields_drop = [\"raw_*\", \"debug\"];");
    cr_assert_str_eq(gdp_process("f", lp("m,t=1 raw_a=1,v=2,debug=3,raw_b=4 1\nm w=1 2\n")),
                     "m,t=1 v=2 1\nm w=1 2\n");
    cr_assert_eq(gdp_last_rc(), 0);
    load(NULL, "fields_keep = [\"temp_*\", \"hum\"]; fields_drop = \"temp_raw\";");
    cr_assert_str_eq(gdp_process("f", lp("m temp_c=1,temp_raw=2,hum=3,x=4 1\n")),
                     "m temp_c=1,hum=3 1\n");
}

Test(filter, mode_applies_to_the_expression_only)
{
    load(NULL, "mode = \"drop\"; fields_drop = \"raw\";");
    cr_assert_str_eq(gdp_process("f", lp("m v=1,raw=2 1\n")), "m v=1 1\n");
    cr_assert_eq(gdp_dropped("f", NULL), 0);
}

Test(filter, a_point_left_without_fields_is_dropped_and_counted)
{
    load(NULL, "fields_drop = \"raw_*\";");
    cr_assert_str_eq(gdp_process("f", lp("m raw_a=1 1\nm raw_a=1,v=2 2\n")), "m v=2 2\n");
    cr_assert_eq(gdp_dropped("f", "filtered"), 1);
}

Test(filter, expression_and_fields_together)
{
    load("v > 1", "fields_drop = \"raw\";");
    cr_assert_str_eq(gdp_process("f", lp("m v=1,raw=1 1\nm v=2,raw=1 2\nm v=3 3\n")),
                     "m v=2 2\nm v=3 3\n");
}

Test(filter, compile_errors_point_at_the_column)
{
    expect_error("temp_c >", "expr: column 9: expected a value after '>'");
    expect_error("measurement == \"chamber\" && temp_c > ",
                 "expr: column 38: expected a value after '>'");
    expect_error("a == 1 &&", "expr: column 10: expected a name, 'not', 'exists(' or '(', found "
                              "the end");
    expect_error("(a == 1", "expr: column 8: expected ')' to close '(' at column 1, found the end");
    expect_error("a 1", "expr: column 3: expected a comparison operator after 'a', found '1'");
    expect_error("a == 1 b", "expr: column 8: unexpected 'b' after a complete expression");
    expect_error("a == \"x", "expr: column 6: unterminated string");
    char *re = compile_error("a =~ \"(\"");
    cr_assert(strncmp(re, "expr: column 6: invalid regex: ", 31) == 0, "%s", re);
    free(re);
    expect_error("a =~ 3", "expr: column 6: '=~' needs a string (a regex)");
    expect_error("a < true", "expr: column 3: '<' cannot order booleans");
    expect_error("exists a", "expr: column 8: expected '(' after exists");
    expect_error("a == 1 # b", "expr: column 8: unexpected '#' after a complete expression");
    expect_error("", "expr: column 1: expected a name, 'not', 'exists(' or '(', found the end");
}

Test(filter, nesting_is_bounded)
{
    char deep[300];
    memset(deep, '(', 100);
    strcpy(deep + 100, "a == 1");
    char *e = compile_error(deep);
    cr_assert(strstr(e, "nested too deeply"), "%s", e);
    free(e);
}

Test(filter, needs_something_to_do)
{
    char *e = gdp_load_error("processors = ({ plugin = \"filter\"; name = \"f\"; });");
    cr_assert_not_null(e);
    free(e);
}
