/* report_view.c - a partner statement as a printable, self-contained HTML page or as CSV.
 * Must never talk to the network, emit a script or a reference to anything outside the page, or
 * write a string from the statement into the HTML without escaping it. */
#include "report_view.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csv.h"
#include "job_request.h"
#include "table.h"
#include "usage_view.h"

int report_view_html_escape(FILE *out, const char *s)
{
    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        default:
            fputc((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f ? ' ' : (int)c, out);
        }
    }
    return ferror(out) ? -EIO : 0;
}

/* ---- small readers and formatters ---- */

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Writes an escaped string, or "-" when it is missing or empty. */
static void esc_or_dash(FILE *out, const char *s)
{
    if (s == NULL || s[0] == '\0')
        fputs("-", out);
    else
        report_view_html_escape(out, s);
}

static bool get_ll(const json_t *o, const char *key, long long *v)
{
    json_t *j = json_object_get(o, key);
    if (!json_is_integer(j)) return false;
    *v = (long long)json_integer_value(j);
    return true;
}

static const char *const month_names[] = {"January",   "February", "March",    "April",
                                          "May",       "June",     "July",     "August",
                                          "September", "October",  "November", "December"};

/* Parses "YYYY-MM" (month 01..12). */
static bool parse_month(const char *s, int *y, int *m)
{
    if (s == NULL || strlen(s) != 7 || s[4] != '-') return false;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (s[i] < '0' || s[i] > '9')) return false;
    *y = atoi(s);
    *m = (s[5] - '0') * 10 + (s[6] - '0');
    return *y >= 1970 && *m >= 1 && *m <= 12;
}

/* An RFC 3339 time as "YYYY-MM-DD HH:MM" UTC; "-" for NULL; an unparseable text as is. */
static char *utc_text(const char *s, char *buf, size_t len)
{
    time_t t;
    struct tm tm;
    if (s == NULL || s[0] == '\0')
        snprintf(buf, len, "-");
    else if (table_time_parse(s, &t) != 0 || gmtime_r(&t, &tm) == NULL)
        snprintf(buf, len, "%s", s);
    else
        strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
    return buf;
}

/* Seconds as H:MM:SS, or D-HH:MM:SS from a day on. */
static char *duration_text(long long s, char *buf, size_t len)
{
    if (s < 0) s = 0;
    long long d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
    if (d > 0)
        snprintf(buf, len, "%lld-%02lld:%02lld:%02lld", d, h, m, sec);
    else
        snprintf(buf, len, "%lld:%02lld:%02lld", h, m, sec);
    return buf;
}

/* Adds v to *sum unless that overflows; then *known becomes false (the sum shows as "-"). */
static void count_add(long long *sum, bool *known, long long v)
{
    if (*known && __builtin_add_overflow(*sum, v, sum)) *known = false;
}

/* A sum for a table cell: the number, or "-" when it overflowed. */
static char *count_text(long long n, bool known, char *buf, size_t len)
{
    if (known)
        snprintf(buf, len, "%lld", n);
    else
        snprintf(buf, len, "-");
    return buf;
}

static double amount_hours(usage_amount a)
{
    return a.has_seconds ? (double)a.seconds / 3600.0 : a.has_hours ? a.hours : 0.0;
}

static bool amount_known(usage_amount a)
{
    return a.has_seconds || a.has_hours;
}

/* Two amounts agree: to the second when both are exact, else to 0.0001 GPU-hours. */
static bool amounts_equal(usage_amount a, usage_amount b)
{
    if (a.has_seconds && b.has_seconds) return a.seconds == b.seconds;
    return fabs(amount_hours(a) - amount_hours(b)) < 0.0001;
}

static char *hours2(usage_amount a, char *buf, size_t len)
{
    return usage_view_amount_text(a, 2, buf, len);
}

/* ---- the page ---- */

static const char css[] =
    "@page{size:A4;margin:15mm 14mm 16mm 14mm}\n"
    "*{box-sizing:border-box}\n"
    "html{color:#111;background:#fff}\n"
    "body{font:10.5pt/1.4 \"DejaVu Sans\",\"Liberation Sans\",Arial,Helvetica,sans-serif;"
    "margin:0 auto;max-width:190mm;padding:10mm 6mm}\n"
    "h1{font-size:19pt;margin:0 0 1mm;line-height:1.2}\n"
    "h2{font-size:12.5pt;margin:7mm 0 2.5mm;padding-bottom:1mm;border-bottom:1.5pt solid #222}\n"
    ".kicker{font-size:9pt;letter-spacing:.08em;text-transform:uppercase;color:#444;margin:0}\n"
    ".desc{margin:0 0 2mm;color:#333}\n"
    ".meta{display:flex;flex-wrap:wrap;gap:1mm 8mm;margin:2mm 0 0;padding:0;font-size:9.5pt}\n"
    ".meta div{margin:0}.meta dt{display:inline;color:#444}.meta dt::after{content:\": \"}\n"
    ".meta dd{display:inline;margin:0;font-weight:bold}\n"
    ".summary{border:1.2pt solid #222;padding:3mm 4mm;margin-top:5mm}\n"
    ".summary h2{margin-top:0}\n"
    ".kpis{display:flex;gap:3mm;margin:0 0 3mm}\n"
    ".kpi{flex:1;border:0.8pt solid #555;padding:2mm 3mm}\n"
    ".kpi .l{font-size:8.5pt;text-transform:uppercase;letter-spacing:.05em;color:#333}\n"
    ".kpi .v{font-size:15pt;font-weight:bold;font-variant-numeric:tabular-nums}\n"
    ".kpi .u{font-size:8.5pt;color:#333}\n"
    ".kpi.main{border-width:2pt}\n"
    "table{border-collapse:collapse;width:100%;font-size:9pt}\n"
    "th,td{padding:1.1mm 1.8mm;border-bottom:0.5pt solid #aaa;text-align:left;"
    "vertical-align:top}\n"
    "thead th{border-bottom:1.2pt solid #222;background:#e8e8e8;font-weight:bold;"
    "white-space:nowrap}\n"
    "tbody tr:nth-child(even) td{background:#f4f4f4}\n"
    "tfoot td{border-top:1.5pt solid #222;border-bottom:none;font-weight:bold}\n"
    ".n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    ".w{overflow-wrap:anywhere}\n"
    ".nw{white-space:nowrap}\n"
    "table.jobs{font-size:8.5pt}table.jobs th,table.jobs td{padding:1mm 1.2mm}\n"
    "table.jobs .name{min-width:26mm}table.jobs .user{min-width:12mm}\n"
    "table.caps{width:auto;font-size:9pt}\n"
    "table.caps th{background:none;border:none;font-weight:normal;color:#333;"
    "padding-left:0}\n"
    "table.caps td{border:none;font-weight:bold}\n"
    "table.caps tr td,table.caps tr th{background:none}\n"
    "figure{margin:0}\n"
    "svg{width:100%;height:auto;display:block}\n"
    "svg text{font-family:\"DejaVu Sans\",\"Liberation Sans\",Arial,sans-serif;fill:#111}\n"
    "svg .bar{fill:#4a4a4a;stroke:#111;stroke-width:.6}\n"
    "svg .grid{stroke:#c8c8c8;stroke-width:.6}\n"
    "svg .axis{stroke:#111;stroke-width:1}\n"
    "svg .val{font-size:9.5px}svg .tick{font-size:10px}svg .atitle{font-size:11px}\n"
    "svg .we{fill:#efefef}\n"
    "figcaption,.note{font-size:8.5pt;color:#333;margin-top:1.5mm}\n"
    ".check{margin-top:6mm;padding:2mm 3mm;border:0.8pt solid #555;font-size:9pt}\n"
    ".check.bad{border:2pt solid #000;font-weight:bold}\n"
    "footer{margin-top:6mm;font-size:8pt;color:#444}\n"
    "@media print{\n"
    "body{max-width:none;padding:0;font-size:9.5pt}\n"
    "h2{break-after:avoid;page-break-after:avoid}\n"
    "tr,.kpi,.summary,figure,.check{break-inside:avoid;page-break-inside:avoid}\n"
    "thead{display:table-header-group}tfoot{display:table-row-group}\n"
    "section.jobs{break-before:auto}\n"
    "*{-webkit-print-color-adjust:exact;print-color-adjust:exact}\n"
    "}\n";

/* One KPI box of the summary. */
static void kpi(FILE *out, const char *label, const char *value, const char *unit, bool main)
{
    fprintf(out, "<div class=\"kpi%s\"><div class=\"l\">%s</div><div class=\"v\">",
            main ? " main" : "", label);
    report_view_html_escape(out, value);
    fprintf(out, "</div><div class=\"u\">%s</div></div>\n", unit);
}

/* A quota amount: a number with 2 decimals, null as `null_text`, else "-". */
static char *quota_amount(const json_t *q, const char *key, const char *null_text, char *buf,
                          size_t len)
{
    json_t *v = json_object_get(q, key);
    if (json_is_number(v))
        snprintf(buf, len, "%.2f", json_number_value(v));
    else
        snprintf(buf, len, "%s", json_is_null(v) ? null_text : "-");
    return buf;
}

static void cap_row(FILE *out, const json_t *q, const char *label, const char *key, bool walltime)
{
    char buf[64];
    json_t *v = json_object_get(q, key);
    if (json_is_integer(v)) {
        long long n = (long long)json_integer_value(v);
        if (walltime && n >= 0 && n <= INT_MAX)
            jobreq_time_format((int)n, buf, sizeof buf);
        else
            snprintf(buf, sizeof buf, "%lld", n);
    } else {
        snprintf(buf, sizeof buf, "%s", json_is_null(v) ? "unlimited" : "-");
    }
    fprintf(out, "<tr><th scope=\"row\">%s</th><td class=\"n\">%s</td></tr>\n", label, buf);
}

static void write_summary(FILE *out, const json_t *report, usage_amount total)
{
    const json_t *q = json_object_get(report, "quota");
    bool have_q = json_is_object(q);
    bool set = !json_is_false(json_object_get(q, "set"));
    char budget[48], used[48], held[48], left[48], unit[96];
    if (!have_q) {
        snprintf(budget, sizeof budget, "-");
        hours2(total, used, sizeof used);
        snprintf(held, sizeof held, "-");
        snprintf(left, sizeof left, "-");
    } else {
        if (set)
            quota_amount(q, "gpu_hours", "unlimited", budget, sizeof budget);
        else
            snprintf(budget, sizeof budget, "not set");
        quota_amount(q, "used_gpu_hours", "-", used, sizeof used);
        quota_amount(q, "held_gpu_hours", "-", held, sizeof held);
        quota_amount(q, "left_gpu_hours", set ? "unlimited" : "-", left, sizeof left);
    }
    fputs("<section class=\"summary\" aria-labelledby=\"h-summary\">\n"
          "<h2 id=\"h-summary\">Summary</h2>\n<div class=\"kpis\">\n",
          out);
    kpi(out, "Budget", budget, "GPU-hours for the month", false);
    json_t *b = json_object_get(q, "gpu_hours"), *u = json_object_get(q, "used_gpu_hours");
    if (set && json_is_number(b) && json_number_value(b) > 0 && json_is_number(u))
        snprintf(unit, sizeof unit, "GPU-hours (%.1f%% of the budget)",
                 100.0 * json_number_value(u) / json_number_value(b));
    else
        snprintf(unit, sizeof unit, "GPU-hours charged");
    kpi(out, "Used", used, unit, true);
    kpi(out, "Held", held, "GPU-hours held by running jobs", false);
    kpi(out, "Left", left, "GPU-hours", false);
    fputs("</div>\n", out);
    if (have_q) {
        fputs("<table class=\"caps\" aria-label=\"Limits\"><tbody>\n", out);
        cap_row(out, q, "GPUs at once", "max_gpus", false);
        cap_row(out, q, "GPUs per user at once", "user_max_gpus", false);
        cap_row(out, q, "Jobs running at once", "max_running_jobs", false);
        cap_row(out, q, "Jobs queued at once", "max_queued_jobs", false);
        cap_row(out, q, "Longest wall time per job", "max_walltime_minutes", true);
        cap_row(out, q, "Fair-share weight", "share_weight", false);
        json_t *cpu = json_object_get(q, "cpu_hours");
        char a[48], bb[48], c[48], d[48];
        if (set && json_is_number(cpu))
            fprintf(out,
                    "<tr><th scope=\"row\">CPU-hours: budget / used / held / left</th>"
                    "<td class=\"n\">%s / %s / %s / %s</td></tr>\n",
                    quota_amount(q, "cpu_hours", "unlimited", a, sizeof a),
                    quota_amount(q, "used_cpu_hours", "-", bb, sizeof bb),
                    quota_amount(q, "held_cpu_hours", "-", c, sizeof c),
                    quota_amount(q, "left_cpu_hours", "unlimited", d, sizeof d));
        else if (json_is_number(json_object_get(q, "used_cpu_hours")))
            fprintf(out,
                    "<tr><th scope=\"row\">CPU-hours used (no CPU budget)</th>"
                    "<td class=\"n\">%s</td></tr>\n",
                    quota_amount(q, "used_cpu_hours", "-", a, sizeof a));
        fputs("</tbody></table>\n", out);
        if (!set)
            fputs("<p class=\"note\">No quota was set for this month, so there was no GPU "
                  "budget.</p>\n",
                  out);
    } else {
        fputs("<p class=\"note\">The statement holds no quota for this month.</p>\n", out);
    }
    fputs("</section>\n", out);
}

/* A value label over a bar: at most 4 characters, so that 31 of them fit side by side (the
 * exact amount is in the bar's title and in the tables). Rounds half up. */
static void bar_label(double v, char *buf, size_t len)
{
    if (v < 0.05)
        snprintf(buf, len, "<0.1");
    else if (v < 9.95)
        snprintf(buf, len, "%.1f", floor(v * 10 + 0.5) / 10);
    else if (v < 999.5)
        snprintf(buf, len, "%.0f", floor(v + 0.5));
    else if (v < 9950)
        snprintf(buf, len, "%.1fk", floor(v / 100 + 0.5) / 10);
    else
        snprintf(buf, len, "%.0fk", floor(v / 1000 + 0.5));
}

/* The smallest "nice" number (1, 2, 2.5, 5 or 10 times a power of ten) >= v > 0, and how many
 * intervals its axis gets (steps of 1, 2 or 5 times a power of ten). */
static double nice_max(double v, int *intervals)
{
    double e = floor(log10(v)), p = pow(10, e), f = v / p;
    double nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
    *intervals = nf == 2 ? 4 : 5;
    return nf * p;
}

/* The GPU-hours of each day of the month (index 0 = the 1st), from by_day; amounts of days
 * outside the month are added to *outside. */
static void read_days(const json_t *by_day, int y, int m, int ndays, usage_amount *days,
                      usage_amount *outside, size_t *n_outside)
{
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%04d-%02d-", y, m);
    size_t i;
    json_t *e;
    json_array_foreach(by_day, i, e)
    {
        const char *day = str(e, "day");
        usage_amount a = usage_view_amount(e, "gpu");
        if (usage_view_date_valid(day) && strncmp(day, prefix, 8) == 0) {
            int d = atoi(day + 8);
            if (d >= 1 && d <= ndays) {
                usage_view_amount_add(&days[d - 1], a);
                continue;
            }
        }
        usage_view_amount_add(outside, a);
        (*n_outside)++;
    }
}

/* Lists the by_day entries that read_days left out of the chart: " DAY (H.HH)", comma-separated. */
static void write_outside_days(FILE *out, const json_t *by_day, int y, int m, int ndays)
{
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%04d-%02d-", y, m);
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(by_day, i, e)
    {
        const char *day = str(e, "day");
        if (usage_view_date_valid(day) && strncmp(day, prefix, 8) == 0 && atoi(day + 8) >= 1 &&
            atoi(day + 8) <= ndays)
            continue;
        char h[48];
        fputs(n++ ? ", " : " ", out);
        esc_or_dash(out, day);
        fprintf(out, " (%s)", hours2(usage_view_amount(e, "gpu"), h, sizeof h));
    }
}

static void write_chart(FILE *out, const json_t *report, int y, int m)
{
    enum { W = 760, H = 270, L = 58, R = 10, T = 22, B = 46 };
    const double pw = W - L - R, ph = H - T - B;
    int ndays = usage_view_days_in_month(y, m);
    usage_amount days[31], outside = {0, 0, 0, 0.0};
    memset(days, 0, sizeof days);
    size_t n_outside = 0;
    const json_t *by_day = json_object_get(report, "by_day");
    read_days(by_day, y, m, ndays, days, &outside, &n_outside);
    double maxv = 0, sum = 0;
    int busiest = 0, active = 0;
    for (int d = 0; d < ndays; d++) {
        double v = amount_hours(days[d]);
        sum += v;
        if (v > 0) active++;
        if (v > maxv) {
            maxv = v;
            busiest = d;
        }
    }
    int intervals = 5;
    double ymax = maxv > 0 ? nice_max(maxv, &intervals) : 1.0;
    double step = ymax / intervals;
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    const char *mname = month_names[m - 1];
    fprintf(out,
            "<section aria-labelledby=\"h-days\">\n<h2 id=\"h-days\">GPU-hours by day</h2>\n"
            "<figure>\n<svg viewBox=\"0 0 %d %d\" role=\"img\" "
            "aria-labelledby=\"chart-title chart-desc\">\n"
            "<title id=\"chart-title\">GPU-hours charged per day, %s %d (UTC)</title>\n",
            W, H, mname, y);
    fprintf(out, "<desc id=\"chart-desc\">Bar chart with one bar per day from 1 to %d %s %d. ",
            ndays, mname, y);
    if (active > 0)
        fprintf(out,
                "%.2f GPU-hours over %d day%s with usage; the busiest day was %d %s with "
                "%.2f GPU-hours.</desc>\n",
                sum, active, active == 1 ? "" : "s", busiest + 1, mname, maxv);
    else
        fprintf(out, "No GPU-hours were charged on any day of the month.</desc>\n");
    double slot = pw / ndays;
    /* weekends in a light band, so the weeks can be read off the chart */
    for (int d = 0; d < ndays; d++) {
        struct tm tm = {0};
        tm.tm_year = y - 1900;
        tm.tm_mon = m - 1;
        tm.tm_mday = d + 1;
        tm.tm_hour = 12;
        time_t t = timegm(&tm);
        struct tm g;
        if (gmtime_r(&t, &g) != NULL && (g.tm_wday == 0 || g.tm_wday == 6))
            fprintf(out,
                    "<rect class=\"we\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%.0f\"/>\n",
                    L + d * slot, T, slot, ph);
    }
    /* horizontal grid and y axis labels */
    for (int k = 0; k <= intervals; k++) {
        double v = step * k, yy = T + ph - ph * v / ymax;
        fprintf(out, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", L, yy,
                W - R, yy);
        fprintf(out,
                "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\" "
                "dominant-baseline=\"middle\">%.*f</text>\n",
                L - 5, yy, decimals, v);
    }
    fprintf(out,
            "<text class=\"atitle\" transform=\"translate(14 %.0f) rotate(-90)\" "
            "text-anchor=\"middle\">GPU-hours</text>\n",
            T + ph / 2);
    /* the bars, one per day, empty days included */
    for (int d = 0; d < ndays; d++) {
        double v = amount_hours(days[d]);
        double h = v > 0 ? ph * v / ymax : 0, x = L + d * slot + slot * 0.15;
        char exact[48];
        hours2(days[d], exact, sizeof exact);
        if (!amount_known(days[d])) snprintf(exact, sizeof exact, "0.00");
        fprintf(out,
                "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                "<title>%d %s %d: %s GPU-hours</title></rect>\n",
                x, T + ph - h, slot * 0.7, h, d + 1, mname, y, exact);
        if (v > 0) {
            char lab[16];
            bar_label(v, lab, sizeof lab);
            fprintf(out,
                    "<text class=\"val\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                    L + (d + 0.5) * slot, T + ph - h - 3, lab);
        }
        fprintf(out,
                "<text class=\"tick\" x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%d</text>\n",
                L + (d + 0.5) * slot, T + ph + 13, d + 1);
    }
    fprintf(out, "<line class=\"axis\" x1=\"%d\" y1=\"%.0f\" x2=\"%d\" y2=\"%.0f\"/>\n", L, T + ph,
            W - R, T + ph);
    fprintf(out, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%.0f\"/>\n", L, T, L,
            T + ph);
    fprintf(out,
            "<text class=\"atitle\" x=\"%.0f\" y=\"%d\" text-anchor=\"middle\">Day of %s %d "
            "(UTC, the day each job ended; weekends shaded)</text>\n",
            L + pw / 2, H - 8, mname, y);
    fputs("</svg>\n", out);
    if (n_outside > 0) {
        char o[48];
        fprintf(out,
                "<figcaption>Not in the chart: %s GPU-hours charged to %s %d on days outside it "
                "(jobs dispatched in the month that ended after it):",
                hours2(outside, o, sizeof o), mname, y);
        write_outside_days(out, by_day, y, m, ndays);
        fputs(".</figcaption>\n", out);
    }
    fputs("</figure>\n</section>\n", out);
}

static void write_users(FILE *out, const json_t *report, usage_amount total, usage_amount *sum)
{
    const json_t *users = json_object_get(report, "by_user");
    fputs("<section aria-labelledby=\"h-users\">\n<h2 id=\"h-users\">Usage by user</h2>\n", out);
    if (!json_is_array(users) || json_array_size(users) == 0) {
        fputs("<p class=\"note\">No user was charged this month.</p>\n</section>\n", out);
        return;
    }
    fputs("<table>\n<thead><tr><th scope=\"col\">User</th><th scope=\"col\">Category</th>"
          "<th scope=\"col\" class=\"n\">Jobs</th><th scope=\"col\" class=\"n\">GPU-hours</th>"
          "<th scope=\"col\" class=\"n\">Share</th></tr></thead>\n<tbody>\n",
          out);
    double th = amount_hours(total);
    long long jobs = 0;
    bool jobs_known = true;
    size_t i;
    json_t *u;
    json_array_foreach(users, i, u)
    {
        usage_amount a = usage_view_amount(u, "gpu");
        usage_view_amount_add(sum, a);
        long long n = 0;
        bool has_n = get_ll(u, "jobs", &n);
        count_add(&jobs, &jobs_known, n);
        char h[48];
        fputs("<tr><td class=\"w\">", out);
        esc_or_dash(out, str(u, "user"));
        fputs("</td><td>", out);
        esc_or_dash(out, str(u, "category"));
        if (has_n)
            fprintf(out, "</td><td class=\"n\">%lld", n);
        else
            fputs("</td><td class=\"n\">-", out);
        fprintf(out, "</td><td class=\"n\">%s</td>", hours2(a, h, sizeof h));
        if (th > 0)
            fprintf(out, "<td class=\"n\">%.1f%%</td></tr>\n", 100.0 * amount_hours(a) / th);
        else
            fputs("<td class=\"n\">-</td></tr>\n", out);
    }
    char h[48], nj[32];
    fprintf(out,
            "</tbody>\n<tfoot><tr><td colspan=\"2\">Total (%zu user%s)</td><td class=\"n\">%s"
            "</td><td class=\"n\">%s</td><td class=\"n\">%s</td></tr></tfoot>\n</table>\n"
            "</section>\n",
            json_array_size(users), json_array_size(users) == 1 ? "" : "s",
            count_text(jobs, jobs_known, nj, sizeof nj), hours2(*sum, h, sizeof h),
            th > 0 ? "100%" : "-");
}

static void write_jobs(FILE *out, const json_t *report, usage_amount *sum, size_t *count)
{
    const json_t *jobs = json_object_get(report, "jobs");
    fputs("<section class=\"jobs\" aria-labelledby=\"h-jobs\">\n"
          "<h2 id=\"h-jobs\">Jobs and charges</h2>\n",
          out);
    if (!json_is_array(jobs) || json_array_size(jobs) == 0) {
        fputs("<p class=\"note\">No job was charged this month.</p>\n</section>\n", out);
        return;
    }
    fputs("<table class=\"jobs\">\n<thead><tr><th scope=\"col\" class=\"n\">Job</th>"
          "<th scope=\"col\">Name</th><th scope=\"col\">User</th><th scope=\"col\">GPUs</th>"
          "<th scope=\"col\">State</th>"
          "<th scope=\"col\">Started (UTC)</th><th scope=\"col\">Ended (UTC)</th>"
          "<th scope=\"col\" class=\"n\">Elapsed</th>"
          "<th scope=\"col\" class=\"n\">GPU-hours</th></tr></thead>\n<tbody>\n",
          out);
    long long elapsed = 0;
    bool elapsed_known = true;
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        usage_amount a = usage_view_amount(j, "charge_gpu");
        usage_view_amount_add(sum, a);
        (*count)++;
        long long v;
        char buf[64];
        if (get_ll(j, "id", &v))
            fprintf(out, "<tr><td class=\"n\">%lld</td><td class=\"w name\">", v);
        else
            fputs("<tr><td class=\"n\">-</td><td class=\"w name\">", out);
        esc_or_dash(out, str(j, "name"));
        fputs("</td><td class=\"w user\">", out);
        esc_or_dash(out, str(j, "user"));
        fputs("</td><td class=\"nw\">", out);
        if (get_ll(j, "gpus", &v)) {
            fprintf(out, "%lld", v);
            const char *type = str(j, "gpu_type");
            if (type != NULL && type[0] != '\0') {
                fputs(" &times; ", out);
                report_view_html_escape(out, type);
            }
        } else {
            fputs("-", out);
        }
        fputs("</td><td>", out);
        esc_or_dash(out, str(j, "state"));
        fputs("</td><td class=\"n\">", out);
        char start[64];
        report_view_html_escape(out, utc_text(str(j, "started_at"), start, sizeof start));
        fputs("</td><td class=\"n\">", out);
        /* an end on the day of the start shows as its time alone */
        utc_text(str(j, "ended_at"), buf, sizeof buf);
        bool same_day = strlen(start) == 16 && strlen(buf) == 16 && strncmp(start, buf, 11) == 0;
        report_view_html_escape(out, same_day ? buf + 11 : buf);
        if (get_ll(j, "elapsed_seconds", &v)) {
            count_add(&elapsed, &elapsed_known, v);
            fprintf(out, "</td><td class=\"n\">%s", duration_text(v, buf, sizeof buf));
        } else {
            fputs("</td><td class=\"n\">-", out);
        }
        fprintf(out, "</td><td class=\"n\">%s</td></tr>\n", hours2(a, buf, sizeof buf));
    }
    char e[48], h[48];
    fprintf(out,
            "</tbody>\n<tfoot><tr><td colspan=\"7\">Total (%zu job%s)</td>"
            "<td class=\"n\">%s</td><td class=\"n\">%s</td></tr></tfoot>\n</table>\n</section>\n",
            *count, *count == 1 ? "" : "s",
            elapsed_known ? duration_text(elapsed, e, sizeof e) : "-", hours2(*sum, h, sizeof h));
}

/* The closing check: days, users and jobs each add up to the total (and the quota's used). */
static void write_check(FILE *out, const json_t *report, usage_amount total, usage_amount users,
                        usage_amount jobs, size_t njobs)
{
    usage_amount days = {0, 0, 0, 0.0};
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(report, "by_day"), i, e)
        usage_view_amount_add(&days, usage_view_amount(e, "gpu"));
    const json_t *q = json_object_get(report, "quota");
    json_t *used = json_object_get(q, "used_gpu_hours");
    long long total_jobs = 0;
    bool jobs_ok = !get_ll(json_object_get(report, "total"), "jobs", &total_jobs) ||
                   total_jobs == (long long)njobs;
    bool used_ok =
        !json_is_number(used) || fabs(json_number_value(used) - amount_hours(total)) < 0.0001;
    bool ok = amount_known(total) && amounts_equal(days, total) && amounts_equal(users, total) &&
              amounts_equal(jobs, total) && jobs_ok && used_ok;
    char t[48], d[48], u[48], j[48];
    hours2(total, t, sizeof t);
    if (ok) {
        fprintf(out,
                "<p class=\"check\">Check: the days, the users and the jobs above each add up "
                "to the total of <b>%s GPU-hours</b> charged for the month%s.</p>\n",
                t, json_is_number(used) ? ", which is the quota's used amount" : "");
        return;
    }
    fprintf(out,
            "<p class=\"check bad\">Warning: this statement does not add up. Total %s GPU-hours; "
            "by day %s, by user %s, jobs %s (%zu job%s",
            t, hours2(days, d, sizeof d), hours2(users, u, sizeof u), hours2(jobs, j, sizeof j),
            njobs, njobs == 1 ? "" : "s");
    if (!jobs_ok) fprintf(out, ", the total says %lld", total_jobs);
    fputs(")", out);
    if (json_is_number(used)) fprintf(out, "; quota used %.2f", json_number_value(used));
    fputs(". Ask the operators of Antenna to check the ledger.</p>\n", out);
}

/* The refunds and corrections of the month, when there are any: each one's job, kind, signed
 * GPU-hours, reason, who and when. */
static void write_adjustments(FILE *out, const json_t *report)
{
    const json_t *arr = json_object_get(report, "adjustments");
    if (!json_is_array(arr) || json_array_size(arr) == 0) return;
    fputs("<section>\n<h2>Refunds and corrections</h2>\n<table>\n<thead><tr><th>Job</th>"
          "<th>Kind</th><th class=\"num\">GPU-hours</th><th>Reason</th><th>By</th><th>When "
          "(UTC)</th></tr></thead>\n<tbody>\n",
          out);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        long long job = 0, gs = 0;
        char when[64];
        fputs("<tr><td>", out);
        if (get_ll(e, "job", &job))
            fprintf(out, "%lld", job);
        else
            fputs("-", out);
        fputs("</td><td>", out);
        esc_or_dash(out, str(e, "kind"));
        if (get_ll(e, "gpu_seconds", &gs))
            fprintf(out, "</td><td class=\"num\">%+.2f</td><td>", gs / 3600.0);
        else
            fputs("</td><td class=\"num\">-</td><td>", out);
        esc_or_dash(out, str(e, "reason"));
        fputs("</td><td>", out);
        esc_or_dash(out, str(e, "actor"));
        fputs("</td><td>", out);
        report_view_html_escape(out, utc_text(str(e, "at"), when, sizeof when));
        fputs("</td></tr>\n", out);
    }
    fputs("</tbody>\n</table>\n</section>\n", out);
}

/* The line of the latest reconciliation with the cluster's accounting, when the statement says
 * (an older antennad's statement has no "reconciled": nothing is written). */
static void write_reconciled(FILE *out, const json_t *report)
{
    const json_t *r = json_object_get(report, "reconciled");
    if (r == NULL) return;
    if (!json_is_object(r)) {
        fputs("<p class=\"check\">Not yet reconciled with the cluster's accounting.</p>\n", out);
        return;
    }
    char line[256];
    fputs("<p class=\"check\">", out);
    report_view_html_escape(out, report_view_reconciled_line(report, line, sizeof line));
    fputs("</p>\n", out);
}

char *report_view_reconciled_line(const json_t *report, char *buf, size_t len)
{
    const json_t *r = json_object_get(report, "reconciled");
    long long jobs = 0, diffs = 0;
    char when[64];
    if (!json_is_object(r)) {
        snprintf(buf, len, "not yet reconciled with the cluster's accounting");
        return buf;
    }
    get_ll(r, "jobs", &jobs);
    get_ll(r, "differences", &diffs);
    utc_text(str(r, "at"), when, sizeof when);
    snprintf(buf, len,
             "reconciled with the cluster's accounting on %s%s: %lld job%s, %lld "
             "difference%s",
             when, when[0] != '-' ? " UTC" : "", jobs, jobs == 1 ? "" : "s", diffs,
             diffs == 1 ? "" : "s");
    return buf;
}

int report_view_print_html(FILE *out, const json_t *report)
{
    int y, m;
    if (!json_is_object(report) || !parse_month(str(report, "month"), &y, &m)) return -EINVAL;
    const char *partner = str(report, "partner");
    const char *mname = month_names[m - 1];
    usage_amount total = usage_view_amount(json_object_get(report, "total"), "gpu");
    char gen[64];
    utc_text(str(report, "generated_at"), gen, sizeof gen);

    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          out);
    fputs("GPU usage statement &ndash; ", out);
    esc_or_dash(out, partner);
    fprintf(out, " &ndash; %s %d</title>\n<style>\n%s</style>\n</head>\n<body>\n", mname, y, css);

    fputs("<header>\n<p class=\"kicker\">Antenna &middot; GPU compute statement</p>\n<h1>", out);
    esc_or_dash(out, partner);
    fprintf(out, " &ndash; %s %d</h1>\n", mname, y);
    const char *desc = str(report, "description");
    if (desc != NULL && desc[0] != '\0') {
        fputs("<p class=\"desc\">", out);
        report_view_html_escape(out, desc);
        fputs("</p>\n", out);
    }
    fputs("<dl class=\"meta\">\n<div><dt>Partner</dt><dd>", out);
    esc_or_dash(out, partner);
    fprintf(out,
            "</dd></div>\n<div><dt>Period</dt><dd>%04d-%02d (1&ndash;%d %s %d, UTC)</dd></div>\n"
            "<div><dt>Generated</dt><dd>",
            y, m, usage_view_days_in_month(y, m), mname, y);
    report_view_html_escape(out, gen);
    fputs(gen[0] != '-' ? " UTC" : "", out);
    fputs("</dd></div>\n</dl>\n</header>\n<main>\n", out);

    write_summary(out, report, total);
    write_chart(out, report, y, m);
    usage_amount users = {0, 0, 0, 0.0}, jobs = {0, 0, 0, 0.0};
    size_t njobs = 0;
    write_users(out, report, total, &users);
    write_jobs(out, report, &jobs, &njobs);
    write_check(out, report, total, users, jobs, njobs);
    write_adjustments(out, report);
    write_reconciled(out, report);
    fputs("</main>\n<footer>GPU-hours are GPUs &times; hours &times; the weight of the GPU type, "
          "exact to the weighted GPU-second (amounts here are rounded to 2 decimals; the CSV "
          "export has them exactly). A job is charged once, when it ends, from the real start "
          "and end times Slurm recorded, to the month it was dispatched in.</footer>\n"
          "</body>\n</html>\n",
          out);
    return ferror(out) ? -EIO : 0;
}

int report_view_print_csv(FILE *out, const json_t *report)
{
    const json_t *jobs = json_object_get(report, "jobs");
    if (!json_is_array(jobs)) return -EINVAL;
    static const char *const head[] = {"job_id",
                                       "name",
                                       "user",
                                       "gpus",
                                       "gpu_type",
                                       "state",
                                       "started_at",
                                       "ended_at",
                                       "elapsed_seconds",
                                       "charge_gpu_hours",
                                       "charge_gpu_seconds"};
    if (csv_row(out, 11, head) != 0) return -EIO;
    usage_amount sum = {0, 0, 0, 0.0};
    long long elapsed = 0;
    bool elapsed_known = true;
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        char id[32] = "", gpus[32] = "", el[32] = "", gh[48] = "", gs[32] = "";
        long long v;
        if (get_ll(j, "id", &v)) snprintf(id, sizeof id, "%lld", v);
        if (get_ll(j, "gpus", &v)) snprintf(gpus, sizeof gpus, "%lld", v);
        if (get_ll(j, "elapsed_seconds", &v)) {
            snprintf(el, sizeof el, "%lld", v);
            count_add(&elapsed, &elapsed_known, v);
        } else {
            elapsed_known = false;
        }
        usage_amount a = usage_view_amount(j, "charge_gpu");
        usage_view_amount_add(&sum, a);
        if (amount_known(a)) usage_view_amount_text(a, 4, gh, sizeof gh);
        if (a.has_seconds) snprintf(gs, sizeof gs, "%lld", a.seconds);
        const char *row[] = {id,
                             str(j, "name"),
                             str(j, "user"),
                             gpus,
                             str(j, "gpu_type"),
                             str(j, "state"),
                             str(j, "started_at"),
                             str(j, "ended_at"),
                             el,
                             gh,
                             gs};
        if (csv_row(out, 11, row) != 0) return -EIO;
    }
    char el[32] = "", gh[48], gs[32] = "";
    if (elapsed_known) snprintf(el, sizeof el, "%lld", elapsed);
    usage_view_amount_text(sum, 4, gh, sizeof gh);
    if (!amount_known(sum)) usage_view_hours(0, 4, gh, sizeof gh);
    if (sum.has_seconds || !amount_known(sum)) snprintf(gs, sizeof gs, "%lld", sum.seconds);
    const char *total[] = {"TOTAL", "", "", "", "", "", "", "", el, gh, gs};
    if (csv_row(out, 11, total) != 0) return -EIO;
    return (int)json_array_size(jobs);
}
