/* test_reconcile_view.c - the CLI's text of a reconciliation. */
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

#include "reconcile_view.h"

static char *render(const char *text, int *rc)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL) fail_msg("bad test JSON: %s", e.text);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    *rc = reconcile_view_print(out, j);
    fclose(out);
    json_decref(j);
    return buf;
}

static void clean_run_prints_its_summary_and_no_table(void **state)
{
    (void)state;
    int rc;
    char *s = render("{\"month\": \"2026-11\", \"from\": \"2026-11-01T00:00:00Z\", \"to\": "
                     "\"2026-12-01T00:00:00Z\", \"summary\": {\"jobs_compared\": 12, \"records\": "
                     "12, \"differences\": 0, \"by_kind\": {}}, \"differences\": []}",
                     &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(s, "Reconciled 2026-11 with the cluster's accounting (2026-11-01 00:00 "
                              "to 2026-12-01 00:00 UTC): 12 jobs compared with 12 records, 0 "
                              "differences\n"));
    assert_non_null(strstr(s, "records with no Antenna job: 0"));
    assert_null(strstr(s, "KIND"));
    free(s);
}

static void differences_are_a_table_with_their_numbers(void **state)
{
    (void)state;
    int rc;
    char *s = render(
        "{\"month\": \"2026-12\", \"summary\": {\"jobs_compared\": 1, \"records\": 2, "
        "\"differences\": 2, \"by_kind\": {\"escaped\": 1, \"elapsed\": 1}}, \"differences\": ["
        "{\"kind\": \"escaped\", \"job\": null, \"slurm_job_id\": 4242, \"partner\": \"ulb\", "
        "\"antenna\": 0, \"slurm\": 30},"
        "{\"kind\": \"elapsed\", \"job\": 7, \"slurm_job_id\": 4200, \"partner\": \"ulb\", "
        "\"antenna\": 600, \"slurm\": 500}], \"truncated\": true}",
        &rc);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(s, "1 job compared with 2 records, 2 differences"));
    assert_non_null(strstr(s, "records with no Antenna job: 1"));
    assert_non_null(strstr(s, "KIND     JOB  SLURM JOB  PARTNER  ANTENNA  SLURM\n"));
    assert_non_null(strstr(s, "escaped  -    4242       ulb      0        30\n"));
    assert_non_null(strstr(s, "elapsed  7    4200       ulb      600      500\n"));
    assert_non_null(strstr(s, "only the first 2 differences"));
    free(s);
}

static void an_answer_without_summary_is_einval_and_writes_nothing(void **state)
{
    (void)state;
    int rc;
    char *s = render("{\"error\": {\"code\": \"x\"}}", &rc);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(s, "");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clean_run_prints_its_summary_and_no_table),
        cmocka_unit_test(differences_are_a_table_with_their_numbers),
        cmocka_unit_test(an_answer_without_summary_is_einval_and_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
