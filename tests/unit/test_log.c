/* SPDX-License-Identifier: Apache-2.0 */
/* Logging: levels, JSON lines, rate limiting and secret redaction. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <gatherd/gatherd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void redirect(void)
{
    cr_redirect_stderr();
}

static char *captured(void)
{
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = 0;
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

TestSuite(log, .init = redirect);

Test(log, lines_below_the_threshold_are_not_printed)
{
    gd_log_setup(GD_WARN, GD_LOG_TEXT);
    gd_log(NULL, GD_INFO, "quiet info");
    gd_log(NULL, GD_ERROR, "loud error");
    char *out = captured();
    cr_assert_null(strstr(out, "quiet info"));
    cr_assert(strstr(out, "error [gatherd] loud error"), "%s", out);
    cr_assert_not(gd_log_enabled(GD_DEBUG));
    free(out);
}

Test(log, json_lines_escape_the_message)
{
    gd_log_setup(GD_INFO, GD_LOG_JSON);
    gd_log(NULL, GD_INFO, "say \"hi\"\n\tnow");
    char *out = captured();
    cr_assert(strstr(out, "\"level\":\"info\""), "%s", out);
    cr_assert(strstr(out, "\"msg\":\"say \\\"hi\\\"\\n\\tnow\"}"), "%s", out);
    cr_assert_eq(count(out, "\n"), 1, "one line per message");
    free(out);
}

Test(log, a_repeated_message_is_rate_limited_and_the_suppressed_count_reported)
{
    gd_log_setup(GD_INFO, GD_LOG_TEXT);
    for (int i = 0; i < 50; i++)
        gd_log_ratelimited(NULL, GD_WARN, "device %d unreachable", i);
    char *out = captured();
    cr_assert_eq(count(out, "unreachable"), GD_LOG_BURST, "%s", out);
    cr_assert(strstr(out, "device 0 unreachable"));
    cr_assert_null(strstr(out, "device 5 unreachable"));
    free(out);
}

Test(log, registered_secrets_never_appear)
{
    gd_log_setup(GD_INFO, GD_LOG_TEXT);
    gd_log_redact("s3cr3t-pass");
    gd_log(NULL, GD_ERROR, "connect to postgres://u:s3cr3t-pass@db failed (s3cr3t-pass)");
    char *out = captured();
    cr_assert_null(strstr(out, "s3cr3t"), "%s", out);
    cr_assert(strstr(out, "postgres://u:***@db failed (***)"), "%s", out);
    gd_log_redact_clear();
    free(out);
}

Test(log, level_names_parse)
{
    cr_assert_eq(gd_log_level_parse("debug"), GD_DEBUG);
    cr_assert_eq(gd_log_level_parse("warning"), GD_WARN);
    cr_assert_eq(gd_log_level_parse("loud"), -1);
}

Test(errors, every_code_has_a_name_and_a_message)
{
    cr_assert_str_eq(gd_strerror(0), "ok");
    cr_assert_str_eq(gd_strerror(GD_EQUEUEFULL), "queue full");
    cr_assert_str_eq(gd_err_name(GD_ECONFIG), "ECONFIG");
    cr_assert_str_eq(gd_strerror(-2), "No such file or directory");
    cr_assert_str_eq(gd_strerror(GD__EBASE), "unknown error");
}
