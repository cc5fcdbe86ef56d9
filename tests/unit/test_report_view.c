/* test_report_view.c - unit tests for client/report_view: the partner statement as one
 * self-contained printable HTML page (no script, no outside reference, one SVG bar per day of
 * the month, every server string escaped, totals and the add-up check) and as CSV with a total.
 * Prints only into memory streams; never touches the network. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "report_view.h"

/* A November 2026 statement (h100 weight 1, a100 weight 0.5): six jobs, one with a hostile name,
 * one that ended on 1 December; days, users and jobs all add up to 153900 GPU-seconds. */
static const char report_json[] =
    "{\"partner\": \"ulb\", \"description\": \"Universit\\u00e9 libre <img src=x "
    "onerror=alert(1)>\", \"month\": \"2026-11\", \"generated_at\": \"2026-12-02T07:30:00Z\","
    " \"quota\": {\"partner\": \"ulb\", \"period\": \"2026-11\", \"share_weight\": 2,"
    "  \"gpu_hours\": 100.0, \"used_gpu_hours\": 42.75, \"held_gpu_hours\": 4.0,"
    "  \"left_gpu_hours\": 53.25, \"cpu_hours\": null, \"used_cpu_hours\": 3.2,"
    "  \"held_cpu_hours\": 0.5, \"left_cpu_hours\": null, \"max_gpus\": 8,"
    "  \"max_running_jobs\": null, \"max_queued_jobs\": 50, \"max_walltime_minutes\": 1440,"
    "  \"user_max_gpus\": 4, \"set\": true},"
    " \"by_day\": [{\"day\": \"2026-11-03\", \"gpu_hours\": 1.5, \"gpu_seconds\": 5400},"
    "  {\"day\": \"2026-11-10\", \"gpu_hours\": 11.0, \"gpu_seconds\": 39600},"
    "  {\"day\": \"2026-11-17\", \"gpu_hours\": 24.0, \"gpu_seconds\": 86400},"
    "  {\"day\": \"2026-11-24\", \"gpu_hours\": 2.25, \"gpu_seconds\": 8100},"
    "  {\"day\": \"2026-12-01\", \"gpu_hours\": 4.0, \"gpu_seconds\": 14400}],"
    " \"by_user\": [{\"user\": \"alice\", \"category\": \"sme\", \"gpu_hours\": 31.5,"
    "   \"gpu_seconds\": 113400, \"jobs\": 3},"
    "  {\"user\": \"bob\", \"category\": \"researcher\", \"gpu_hours\": 9.0,"
    "   \"gpu_seconds\": 32400, \"jobs\": 2},"
    "  {\"user\": \"<script>alert(1)</script>\", \"category\": \"institution\","
    "   \"gpu_hours\": 2.25, \"gpu_seconds\": 8100, \"jobs\": 1}],"
    " \"jobs\": ["
    "  {\"id\": 7, \"name\": \"train\", \"user\": \"alice\", \"gpus\": 2, \"gpu_type\": \"h100\","
    "   \"state\": \"completed\", \"started_at\": \"2026-11-03T10:00:00Z\", \"ended_at\":"
    "   \"2026-11-03T10:45:00Z\", \"elapsed_seconds\": 2700, \"charge_gpu_hours\": 1.5,"
    "   \"charge_gpu_seconds\": 5400},"
    "  {\"id\": 9, \"name\": \"<b>&\\\"\", \"user\": \"bob\", \"gpus\": 1, \"gpu_type\": \"a100\","
    "   \"state\": \"failed\", \"started_at\": \"2026-11-10T10:00:00Z\", \"ended_at\":"
    "   \"2026-11-10T20:00:00Z\", \"elapsed_seconds\": 36000, \"charge_gpu_hours\": 5.0,"
    "   \"charge_gpu_seconds\": 18000},"
    "  {\"id\": 12, \"name\": \"finetune-llm\", \"user\": \"alice\", \"gpus\": 4, \"gpu_type\":"
    "   \"h100\", \"state\": \"completed\", \"started_at\": \"2026-11-10T08:00:00Z\","
    "   \"ended_at\": \"2026-11-10T09:30:00Z\", \"elapsed_seconds\": 5400,"
    "   \"charge_gpu_hours\": 6.0, \"charge_gpu_seconds\": 21600},"
    "  {\"id\": 15, \"name\": \"eval, v2\", \"user\": \"<script>alert(1)</script>\", \"gpus\": 1,"
    "   \"gpu_type\": \"h100\", \"state\": \"timeout\", \"started_at\": \"2026-11-24T06:00:00Z\","
    "   \"ended_at\": \"2026-11-24T08:15:00Z\", \"elapsed_seconds\": 8100,"
    "   \"charge_gpu_hours\": 2.25, \"charge_gpu_seconds\": 8100},"
    "  {\"id\": 18, \"name\": \"sweep-3\", \"user\": \"alice\", \"gpus\": 8, \"gpu_type\":"
    "   \"h100\", \"state\": \"completed\", \"started_at\": \"2026-11-17T12:00:00Z\","
    "   \"ended_at\": \"2026-11-17T15:00:00Z\", \"elapsed_seconds\": 10800,"
    "   \"charge_gpu_hours\": 24.0, \"charge_gpu_seconds\": 86400},"
    "  {\"id\": 21, \"name\": \"ablation\", \"user\": \"bob\", \"gpus\": 2, \"gpu_type\": \"a100\","
    "   \"state\": \"completed\", \"started_at\": \"2026-11-30T22:00:00Z\", \"ended_at\":"
    "   \"2026-12-01T02:00:00Z\", \"elapsed_seconds\": 14400, \"charge_gpu_hours\": 4.0,"
    "   \"charge_gpu_seconds\": 14400}],"
    " \"total\": {\"gpu_hours\": 42.75, \"gpu_seconds\": 153900, \"jobs\": 6}}";

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL) fail_msg("bad test JSON: %s (line %d col %d)", e.text, e.line, e.column);
    return j;
}

enum fmt { HTML, CSV };

/* Renders a statement into a string (caller frees); *rc gets the view's result. */
static char *render_json(enum fmt f, const json_t *j, int *rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    *rc = f == HTML ? report_view_print_html(out, j) : report_view_print_csv(out, j);
    fclose(out);
    return buf;
}

static char *render(enum fmt f, const char *text, int *rc)
{
    json_t *j = parse(text);
    char *out = render_json(f, j, rc);
    json_decref(j);
    return out;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void html_is_one_self_contained_page_without_scripts_or_outside_references(void **state)
{
    (void)state;
    int rc;
    char *out = render(HTML, report_json, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(strncmp(out, "<!DOCTYPE html>\n<html lang=\"en\">", 31), 0);
    assert_non_null(strstr(out, "<meta charset=\"utf-8\">"));
    assert_non_null(strstr(out, "<style>"));
    assert_non_null(strstr(out + strlen(out) - 8, "</html>\n"));
    static const char *const banned[] = {"<script", "http://", "https://", "<link",
                                         "<img",    "url(",    "@import",  "<iframe",
                                         "<object", "<embed",  "<base",    "javascript:"};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strstr(out, banned[i]) != NULL) fail_msg("the page holds \"%s\"", banned[i]);
    /* no tag has an attribute that loads or runs anything (escaped text has no '<') */
    static const char *const attrs[] = {" src=", " href=", " srcset=", " onerror=", " onload="};
    size_t tags = 0;
    for (const char *p = strchr(out, '<'); p != NULL; p = strchr(p + 1, '<')) {
        size_t n = strcspn(p, ">");
        tags++;
        for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
            const char *hit = strstr(p, attrs[i]);
            if (hit != NULL && hit < p + n) fail_msg("a tag holds \"%s\": %.80s", attrs[i], p);
        }
    }
    assert_true(tags > 100);
    free(out);
}

static void html_is_laid_out_for_a4_print_in_grayscale(void **state)
{
    (void)state;
    int rc;
    char *out = render(HTML, report_json, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "@page{size:A4"));
    assert_non_null(strstr(out, "@media print{"));
    assert_non_null(strstr(out, "page-break-inside:avoid"));
    assert_non_null(strstr(out, "thead{display:table-header-group}"));
    /* only gray levels: every #rgb or #rrggbb colour has equal channels */
    for (const char *p = strchr(out, '#'); p != NULL; p = strchr(p + 1, '#')) {
        size_t n = strspn(p + 1, "0123456789abcdefABCDEF");
        if (n == 3) assert_true(p[1] == p[2] && p[2] == p[3]);
        if (n == 6) assert_true(strncmp(p + 1, p + 3, 2) == 0 && strncmp(p + 1, p + 5, 2) == 0);
    }
    free(out);
}

static void html_chart_has_one_bar_per_day_of_the_month_with_titles(void **state)
{
    (void)state;
    int rc;
    char *out = render(HTML, report_json, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(count(out, "<svg "), 1);
    assert_non_null(strstr(out, "role=\"img\""));
    assert_non_null(strstr(out, "<title id=\"chart-title\">GPU-hours charged per day, November "
                                "2026 (UTC)</title>"));
    assert_int_equal(count(out, "<rect class=\"bar\""), 30);
    assert_non_null(strstr(out, "<title>3 November 2026: 1.50 GPU-hours</title>"));
    assert_non_null(strstr(out, "<title>10 November 2026: 11.00 GPU-hours</title>"));
    assert_non_null(strstr(out, "<title>2 November 2026: 0.00 GPU-hours</title>"));
    assert_non_null(strstr(out, "<title>30 November 2026: 0.00 GPU-hours</title>"));
    assert_null(strstr(out, "31 November"));
    /* value labels over the used days, day numbers under every bar */
    assert_non_null(strstr(out, "text-anchor=\"middle\">24</text>"));
    assert_non_null(strstr(out, "text-anchor=\"middle\">2.3</text>"));
    assert_non_null(strstr(out, "text-anchor=\"middle\">1.5</text>"));
    assert_non_null(strstr(out, "text-anchor=\"middle\">30</text>"));
    /* the charge of the job that ended on 1 December is said, not drawn */
    assert_non_null(strstr(out, "Not in the chart: 4.00 GPU-hours charged to November 2026 on "
                                "days outside it (jobs dispatched in the month that ended after "
                                "it): 2026-12-01 (4.00).</figcaption>"));
    free(out);
}

static void html_chart_follows_the_length_of_the_month(void **state)
{
    (void)state;
    int rc;
    char *out = render(HTML, "{\"partner\": \"vub\", \"month\": \"2028-02\"}", &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(count(out, "<rect class=\"bar\""), 29);
    assert_non_null(strstr(out, "<title>29 February 2028: 0.00 GPU-hours</title>"));
    assert_non_null(strstr(out, "No GPU-hours were charged on any day of the month."));
    assert_non_null(strstr(out, "No job was charged this month."));
    free(out);
    out = render(HTML, "{\"partner\": \"vub\", \"month\": \"2026-02\"}", &rc);
    assert_int_equal(count(out, "<rect class=\"bar\""), 28);
    free(out);
}

static void html_escapes_every_string_from_the_server(void **state)
{
    (void)state;
    int rc;
    char *out = render(HTML, report_json, &rc);
    assert_int_equal(rc, 0);
    assert_null(strstr(out, "<b>&\""));
    assert_non_null(strstr(out, "<td class=\"w name\">&lt;b&gt;&amp;&quot;</td>"));
    assert_null(strstr(out, "<script"));
    assert_int_equal(count(out, "&lt;script&gt;alert(1)&lt;/script&gt;"), 2);
    assert_non_null(strstr(out, "Université libre &lt;img src=x onerror=alert(1)&gt;"));
    free(out);
    out = render(HTML,
                 "{\"partner\": \"a&b\\\"<x>'\", \"month\": \"2026-11\", \"generated_at\": "
                 "\"<i>now</i>\", \"jobs\": [{\"state\": \"<s>\", \"gpu_type\": \"<t>\", "
                 "\"gpus\": 1, \"started_at\": \"<u>\"}]}",
                 &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "<h1>a&amp;b&quot;&lt;x&gt;&#39; &ndash; November 2026</h1>"));
    assert_non_null(strstr(out, "&lt;i&gt;now&lt;/i&gt;"));
    assert_non_null(strstr(out, "<td>&lt;s&gt;</td>"));
    assert_non_null(strstr(out, "1 &times; &lt;t&gt;"));
    assert_non_null(strstr(out, "&lt;u&gt;"));
    assert_null(strstr(out, "<i>"));
    assert_null(strstr(out, "<u>"));
    free(out);
}

static void html_has_the_title_summary_and_totals_rows(void **state)
{
    (void)state;
    int rc;
    char *out = render(HTML, report_json, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "<title>GPU usage statement &ndash; ulb &ndash; November "
                                "2026</title>"));
    assert_non_null(strstr(out, "<h1>ulb &ndash; November 2026</h1>"));
    assert_non_null(strstr(out, "<dt>Generated</dt><dd>2026-12-02 07:30 UTC</dd>"));
    assert_non_null(strstr(out, "<div class=\"l\">Budget</div><div class=\"v\">100.00</div>"));
    assert_non_null(strstr(out, "<div class=\"l\">Used</div><div class=\"v\">42.75</div>"
                                "<div class=\"u\">GPU-hours (42.8% of the budget)</div>"));
    assert_non_null(strstr(out, "<div class=\"l\">Held</div><div class=\"v\">4.00</div>"));
    assert_non_null(strstr(out, "<div class=\"l\">Left</div><div class=\"v\">53.25</div>"));
    assert_non_null(strstr(out, "GPUs at once</th><td class=\"n\">8</td>"));
    assert_non_null(strstr(out, "Jobs running at once</th><td class=\"n\">unlimited</td>"));
    assert_non_null(strstr(out, "Longest wall time per job</th><td class=\"n\">1-00:00:00</td>"));
    assert_non_null(strstr(out, "<tfoot><tr><td colspan=\"2\">Total (3 users)</td><td "
                                "class=\"n\">6</td><td class=\"n\">42.75</td>"));
    assert_non_null(strstr(out, "<tfoot><tr><td colspan=\"7\">Total (6 jobs)</td><td "
                                "class=\"n\">21:30:00</td><td class=\"n\">42.75</td>"));
    assert_non_null(strstr(out, "<td class=\"n\">2026-11-30 22:00</td><td class=\"n\">"
                                "2026-12-01 02:00</td><td class=\"n\">4:00:00</td><td "
                                "class=\"n\">4.00</td>"));
    /* an end on the day of the start shows as its time alone */
    assert_non_null(strstr(out, "<td class=\"n\">2026-11-03 10:00</td><td class=\"n\">10:45</td>"));
    assert_non_null(strstr(out, "add up to the total of <b>42.75 GPU-hours</b>"));
    assert_null(strstr(out, "does not add up"));
    free(out);
}

static void html_warns_when_the_statement_does_not_add_up(void **state)
{
    (void)state;
    json_t *j = parse(report_json);
    json_object_set_new(json_object_get(j, "total"), "gpu_seconds", json_integer(153901));
    int rc;
    char *out = render_json(HTML, j, &rc);
    json_decref(j);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "<p class=\"check bad\">Warning: this statement does not add up. "
                                "Total 42.75 GPU-hours; by day 42.75, by user 42.75, jobs 42.75 "
                                "(6 jobs); quota used 42.75."));
    free(out);
}

static void html_refuses_an_answer_that_is_not_a_statement(void **state)
{
    (void)state;
    int rc;
    char *out = render(HTML, "{\"partner\": \"ulb\", \"month\": \"November\"}", &rc);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(out, "");
    free(out);
    out = render(HTML, "{\"partner\": \"ulb\", \"month\": \"2026-13\"}", &rc);
    assert_int_equal(rc, -EINVAL);
    free(out);
}

static void csv_lists_the_jobs_with_charges_and_a_total_record(void **state)
{
    (void)state;
    int rc;
    char *out = render(CSV, report_json, &rc);
    assert_int_equal(rc, 6);
    assert_string_equal(
        out,
        "job_id,name,user,gpus,gpu_type,state,started_at,ended_at,elapsed_seconds,"
        "charge_gpu_hours,charge_gpu_seconds\r\n"
        "7,train,alice,2,h100,completed,2026-11-03T10:00:00Z,2026-11-03T10:45:00Z,2700,1.5000,"
        "5400\r\n"
        "9,\"<b>&\"\"\",bob,1,a100,failed,2026-11-10T10:00:00Z,2026-11-10T20:00:00Z,36000,5.0000,"
        "18000\r\n"
        "12,finetune-llm,alice,4,h100,completed,2026-11-10T08:00:00Z,2026-11-10T09:30:00Z,5400,"
        "6.0000,21600\r\n"
        "15,\"eval, v2\",<script>alert(1)</script>,1,h100,timeout,2026-11-24T06:00:00Z,"
        "2026-11-24T08:15:00Z,8100,2.2500,8100\r\n"
        "18,sweep-3,alice,8,h100,completed,2026-11-17T12:00:00Z,2026-11-17T15:00:00Z,10800,"
        "24.0000,86400\r\n"
        "21,ablation,bob,2,a100,completed,2026-11-30T22:00:00Z,2026-12-01T02:00:00Z,14400,"
        "4.0000,14400\r\n"
        "TOTAL,,,,,,,,77400,42.7500,153900\r\n");
    free(out);
}

static void csv_total_is_the_sum_of_odd_seconds_to_the_second(void **state)
{
    (void)state;
    int rc;
    char *out = render(CSV,
                       "{\"jobs\": [{\"id\": 1, \"charge_gpu_seconds\": 1}, {\"id\": 2, "
                       "\"charge_gpu_seconds\": 1}, {\"id\": 3, \"charge_gpu_seconds\": 1}]}",
                       &rc);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "1,,,,,,,,,0.0003,1\r\n"));
    assert_non_null(strstr(out, "\r\nTOTAL,,,,,,,,,0.0008,3\r\n"));
    free(out);
}

static void csv_of_no_jobs_has_a_header_and_a_zero_total(void **state)
{
    (void)state;
    int rc;
    char *out = render(CSV, "{\"jobs\": []}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "job_id,name,user,gpus,gpu_type,state,started_at,ended_at,"
                             "elapsed_seconds,charge_gpu_hours,charge_gpu_seconds\r\n"
                             "TOTAL,,,,,,,,0,0.0000,0\r\n");
    free(out);
    out = render(CSV, "{\"month\": \"2026-11\"}", &rc);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(out, "");
    free(out);
}

static void html_shows_refunds_and_the_latest_reconciliation(void **state)
{
    (void)state;
    int rc;
    char *s =
        render(HTML,
               "{\"partner\": \"ulb\", \"month\": \"2026-11\", \"jobs\": [], \"by_day\": [],"
               " \"by_user\": [], \"total\": {\"gpu_seconds\": 0, \"jobs\": 0},"
               " \"adjustments\": [{\"job\": 7, \"kind\": \"refund\", \"gpu_seconds\": -900,"
               " \"reason\": \"node <failure>\", \"actor\": \"stan\", \"at\":"
               " \"2026-11-05T10:00:00Z\"}], \"reconciled\": {\"at\": \"2026-11-30T00:10:00Z\","
               " \"jobs\": 12, \"differences\": 1}}",
               &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(s, "<h2>Refunds and corrections</h2>"));
    assert_non_null(strstr(s, "-0.25"));
    assert_non_null(strstr(s, "node &lt;failure&gt;"));
    assert_non_null(strstr(s,
                           "reconciled with the cluster&#39;s accounting on 2026-11-30 00:10 UTC: "
                           "12 jobs, 1 difference</p>"));
    free(s);
    s = render(HTML,
               "{\"partner\": \"ulb\", \"month\": \"2026-11\", \"jobs\": [], \"reconciled\": null}",
               &rc);
    assert_non_null(strstr(s, "Not yet reconciled with the cluster"));
    assert_null(strstr(s, "Refunds and corrections"));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(html_is_one_self_contained_page_without_scripts_or_outside_references),
        cmocka_unit_test(html_is_laid_out_for_a4_print_in_grayscale),
        cmocka_unit_test(html_chart_has_one_bar_per_day_of_the_month_with_titles),
        cmocka_unit_test(html_chart_follows_the_length_of_the_month),
        cmocka_unit_test(html_escapes_every_string_from_the_server),
        cmocka_unit_test(html_has_the_title_summary_and_totals_rows),
        cmocka_unit_test(html_warns_when_the_statement_does_not_add_up),
        cmocka_unit_test(html_refuses_an_answer_that_is_not_a_statement),
        cmocka_unit_test(csv_lists_the_jobs_with_charges_and_a_total_record),
        cmocka_unit_test(csv_total_is_the_sum_of_odd_seconds_to_the_second),
        cmocka_unit_test(csv_of_no_jobs_has_a_header_and_a_zero_total),
        cmocka_unit_test(html_shows_refunds_and_the_latest_reconciliation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
