/* report_view.h - how the CLI renders a partner statement (GET /v1/reports/PARTNER/MONTH): one
 * self-contained printable HTML page, or the CSV list of the jobs and their charges.
 *
 * Never talks to the network; writes only to the stream it is given. Tolerates any JSON inside
 * the statement: missing fields or fields of the wrong type show as "-" (empty in CSV).
 */
#ifndef ANTENNA_REPORT_VIEW_H
#define ANTENNA_REPORT_VIEW_H

#include <stdio.h>

#include <jansson.h>

/* Writes the statement as one self-contained HTML5 document: inline CSS only (no JavaScript, no
 * link, image, font or other reference outside the file), laid out for A4 print (@page, @media
 * print, no page break inside a row or box, table headers repeated on each page) and readable in
 * grayscale. It holds: a title with the partner and the month, the generation time, a summary box
 * (GPU-hour budget, used, held and left; the partner's caps; the CPU budget when one is set), GPU-
 * hours by day as an inline SVG bar chart (one bar, class "bar", per day of the month, empty days
 * included, each with a <title> giving its day and value; axis labels; values over the bars), the
 * usage by user and the jobs with their charges (tables with a totals row), and a check that the
 * days, users and jobs add up to the total. Amounts show with 2 decimals, exact from the integer
 * seconds when the statement has them. Every string from the statement is HTML-escaped.
 * Returns 0, -EINVAL (nothing written) when `report` is not an object whose "month" is YYYY-MM,
 * or -EIO. */
int report_view_print_html(FILE *out, const json_t *report);

/* Writes the statement's jobs as RFC 4180 CSV (CRLF line ends): a header row
 * `job_id,name,user,gpus,gpu_type,state,started_at,ended_at,elapsed_seconds,charge_gpu_hours,
 * charge_gpu_seconds`, one record per job (times as the server sent them, GPU-hours with 4
 * decimals exact from the seconds), then a record "TOTAL" with the sums of elapsed_seconds, the
 * GPU-hours and the GPU-seconds of those records. Returns the number of jobs, -EINVAL (nothing
 * written) when the statement has no "jobs" array, or -EIO. */
int report_view_print_csv(FILE *out, const json_t *report);

/* The statement's reconciliation line into buf[len]: "reconciled with the cluster's accounting on
 * DATE UTC: N jobs, M differences" from its "reconciled" object, or "not yet reconciled with the
 * cluster's accounting". Returns buf. The HTML page shows it after the check (and, when the
 * statement has refunds or corrections, a table of them before it). */
char *report_view_reconciled_line(const json_t *report, char *buf, size_t len);

/* Writes `s` to `out` with &, <, >, " and ' as HTML character references and control
 * characters (but tab and newline) as spaces. NULL writes nothing. Returns 0 or -EIO. */
int report_view_html_escape(FILE *out, const char *s);

#endif
