/* usage_view.h - how the CLI shows GET /v1/usage answers: the `antenna usage` table (KEY
 * GPU_HOURS CPU_HOURS JOBS with a TOTAL row) and its CSV export, plus the exact GPU-hour
 * arithmetic and the date checks the usage, report and audit commands share.
 *
 * Never talks to the network; prints only to the stream it is given. Tolerates any JSON: missing
 * fields or fields of the wrong type show as "-" (empty in CSV), control characters as spaces.
 */
#ifndef ANTENNA_USAGE_VIEW_H
#define ANTENNA_USAGE_VIEW_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* Returns 1 when `s` is a calendar date "YYYY-MM-DD" (year 1970..9999, a day that exists in that
 * month, leap years included), else 0 (also for NULL). */
int usage_view_date_valid(const char *s);

/* Returns the number of days (28..31) of month `month` (1..12) of `year`, or 0 when month is out
 * of range. */
int usage_view_days_in_month(int year, int month);

/* Formats `seconds` (weighted GPU- or CPU-seconds, may be negative) as hours with `decimals`
 * (0..6) decimals, rounded half away from zero with integer arithmetic only, so that the text is
 * exact: 5400 s with 4 decimals gives "1.5000", 1 s gives "0.0003". Writes into buf[len] (cut to
 * fit) and returns buf. */
char *usage_view_hours(long long seconds, int decimals, char *buf, size_t len);

/* One amount of an answer: exact seconds when the JSON has the integer `<what>_seconds`, else the
 * number `<what>_hours`, else nothing. */
typedef struct usage_amount {
    int has_seconds; /* 1: `seconds` is exact */
    int has_hours;   /* 1: `hours` holds the server's number (set when has_seconds too) */
    long long seconds;
    double hours;
} usage_amount;

/* Reads the amount `what` ("gpu", "cpu", "charge_gpu") of the JSON object `o`: the integer field
 * `<what>_seconds` and the number field `<what>_hours`. Never fails: an amount with neither is
 * all zeros. */
usage_amount usage_view_amount(const json_t *o, const char *what);

/* Adds `b` into `*sum`: exact while both are exact, else by hours. */
void usage_view_amount_add(usage_amount *sum, usage_amount b);

/* Formats an amount as hours with `decimals` decimals (exact from seconds when it has them, else
 * from its hours), or "-" when it has neither. Returns buf. */
char *usage_view_amount_text(usage_amount a, int decimals, char *buf, size_t len);

/* Prints a usage answer ({"by", "rows": [{"key", "gpu_hours", "gpu_seconds", "cpu_hours",
 * "cpu_seconds", "jobs"}], "total": {...}}) as an aligned table:
 *
 *   USER   GPU_HOURS  CPU_HOURS  JOBS
 *   alice      12.50      40.00     7
 *   ---------------------------------
 *   TOTAL      12.50      40.00     7
 *
 * The first column is named after `by` ("partner" PARTNER, "user" USER, "category" CATEGORY,
 * "gpu-type" GPU_TYPE, "day" DAY, "month" MONTH; `by` NULL takes the answer's "by", else KEY),
 * the numbers are right-aligned, hours with 2 decimals (exact from the seconds when present). The
 * TOTAL row is the answer's "total", or the sum of the rows when it has none. Returns the number
 * of rows printed (not counting the TOTAL row), -EINVAL (nothing printed) when the answer has no
 * "rows" array, or -ENOMEM / -EIO. */
int usage_view_print_table(FILE *out, const json_t *usage, const char *by);

/* Prints the same answer as RFC 4180 CSV (CRLF line ends): a header row
 * `<by>,gpu_hours,gpu_seconds,cpu_hours,cpu_seconds,jobs` (by with '-' as '_', "key" when
 * unknown), one record per row, then a record whose first field is TOTAL. Hours have 4 decimals,
 * computed exactly from the integer seconds, so the seconds columns sum to the total's exactly;
 * a missing field is an empty field. Returns the number of rows, -EINVAL (nothing printed) when
 * the answer has no "rows" array, or -ENOMEM / -EIO. */
int usage_view_print_csv(FILE *out, const json_t *usage, const char *by);

#endif
