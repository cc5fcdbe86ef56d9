/* usage_view.c - the `antenna usage` table and CSV, exact hour arithmetic, date checks.
 * Must never talk to the network or trust the JSON's shape: every field is type-checked. */
#include "usage_view.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

int usage_view_days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12) return 0;
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 29;
    return days[month - 1];
}

int usage_view_date_valid(const char *s)
{
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-') return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return 0;
    int y = atoi(s), m = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < 1970) return 0;
    return d >= 1 && d <= usage_view_days_in_month(y, m);
}

char *usage_view_hours(long long seconds, int decimals, char *buf, size_t len)
{
    if (len == 0) return buf;
    if (decimals < 0) decimals = 0;
    if (decimals > 6) decimals = 6;
    unsigned long long scale = 1;
    for (int i = 0; i < decimals; i++)
        scale *= 10;
    bool neg = seconds < 0;
    unsigned long long mag = neg ? 0ULL - (unsigned long long)seconds : (unsigned long long)seconds;
    if (mag > ULLONG_MAX / scale) { /* beyond any real ledger: fall back to floating point */
        snprintf(buf, len, "%.*f", decimals, (double)seconds / 3600.0);
        return buf;
    }
    unsigned long long num = mag * scale, q = num / 3600, r = num % 3600;
    if (2 * r >= 3600) q++;
    const char *sign = neg && q != 0 ? "-" : "";
    if (decimals == 0)
        snprintf(buf, len, "%s%llu", sign, q);
    else
        snprintf(buf, len, "%s%llu.%0*llu", sign, q / scale, decimals, q % scale);
    return buf;
}

usage_amount usage_view_amount(const json_t *o, const char *what)
{
    usage_amount a = {0, 0, 0, 0.0};
    char key[64];
    snprintf(key, sizeof key, "%s_seconds", what);
    json_t *s = json_object_get(o, key);
    snprintf(key, sizeof key, "%s_hours", what);
    json_t *h = json_object_get(o, key);
    if (json_is_integer(s)) {
        a.has_seconds = 1;
        a.seconds = (long long)json_integer_value(s);
    }
    if (json_is_number(h)) {
        a.has_hours = 1;
        a.hours = json_number_value(h);
    } else if (a.has_seconds) {
        a.has_hours = 1;
        a.hours = (double)a.seconds / 3600.0;
    }
    return a;
}

void usage_view_amount_add(usage_amount *sum, usage_amount b)
{
    bool first = !sum->has_seconds && !sum->has_hours;
    if (!b.has_seconds && !b.has_hours) return;
    bool exact = b.has_seconds && (first || sum->has_seconds);
    if (exact && ((b.seconds > 0 && sum->seconds > LLONG_MAX - b.seconds) ||
                  (b.seconds < 0 && sum->seconds < LLONG_MIN - b.seconds)))
        exact = false;
    if (exact) {
        sum->seconds += b.seconds;
        sum->has_seconds = 1;
    } else {
        sum->has_seconds = 0;
    }
    sum->hours += b.hours;
    sum->has_hours = 1;
}

char *usage_view_amount_text(usage_amount a, int decimals, char *buf, size_t len)
{
    if (a.has_seconds) return usage_view_hours(a.seconds, decimals, buf, len);
    if (a.has_hours)
        snprintf(buf, len, "%.*f", decimals, a.hours);
    else
        snprintf(buf, len, "-");
    return buf;
}

/* ---- one row of figures ---- */

typedef struct urow {
    char *key; /* heap, control characters as spaces */
    usage_amount gpu, cpu;
    bool has_jobs;
    long long jobs;
} urow;

static char *key_text(const json_t *k)
{
    char num[32];
    const char *s = NULL;
    if (json_is_string(k))
        s = json_string_value(k);
    else if (json_is_integer(k))
        s = (snprintf(num, sizeof num, "%lld", (long long)json_integer_value(k)), num);
    char *d = strdup(s ? s : "");
    if (d == NULL) return NULL;
    for (char *p = d; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    return d;
}

static void read_figures(const json_t *o, urow *r)
{
    r->gpu = usage_view_amount(o, "gpu");
    r->cpu = usage_view_amount(o, "cpu");
    json_t *jobs = json_object_get(o, "jobs");
    r->has_jobs = json_is_integer(jobs);
    r->jobs = r->has_jobs ? (long long)json_integer_value(jobs) : 0;
}

/* The rows of a usage answer plus its total (read, or summed). */
typedef struct ureport {
    urow *rows;
    size_t n;
    urow total;
    char by[32];
} ureport;

static void ureport_free(ureport *u)
{
    for (size_t i = 0; i < u->n; i++)
        free(u->rows[i].key);
    free(u->rows);
    free(u->total.key);
}

static int ureport_read(const json_t *usage, const char *by, ureport *u)
{
    memset(u, 0, sizeof *u);
    json_t *rows = json_object_get(usage, "rows");
    if (!json_is_array(rows)) return -EINVAL;
    if (by == NULL) by = json_string_value(json_object_get(usage, "by"));
    snprintf(u->by, sizeof u->by, "%s", by ? by : "");
    size_t n = json_array_size(rows);
    u->rows = calloc(n ? n : 1, sizeof *u->rows);
    if (u->rows == NULL) return -ENOMEM;
    bool jobs_known = true;
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(rows, i);
        urow *r = &u->rows[i];
        if ((r->key = key_text(json_object_get(row, "key"))) == NULL) goto fail_row;
        u->n++;
        read_figures(row, r);
        usage_view_amount_add(&u->total.gpu, r->gpu);
        usage_view_amount_add(&u->total.cpu, r->cpu);
        jobs_known = jobs_known && r->has_jobs &&
                     !__builtin_add_overflow(u->total.jobs, r->jobs, &u->total.jobs);
    }
    u->total.has_jobs = jobs_known;
    json_t *total = json_object_get(usage, "total");
    if (json_is_object(total)) read_figures(total, &u->total);
    if ((u->total.key = strdup("TOTAL")) == NULL) goto fail_row;
    return 0;

fail_row:
    ureport_free(u);
    return -ENOMEM;
}

/* The column title for a grouping: PARTNER, USER, GPU_TYPE... KEY when unknown. */
static void key_title(const char *by, bool upper, char *buf, size_t len)
{
    static const char *const known[] = {"partner", "user", "category", "gpu-type", "day", "month"};
    bool found = false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(by, known[i]) == 0) found = true;
    snprintf(buf, len, "%s", found ? by : "key");
    for (char *p = buf; *p; p++) {
        if (*p == '-') *p = '_';
        if (upper && *p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
    }
}

/* Width of a UTF-8 string in characters (continuation bytes do not count). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) w++;
    return w;
}

enum { NCOL = 4 };

static void row_cells(const urow *r, char cells[NCOL][40])
{
    snprintf(cells[0], sizeof cells[0], "%s", "");
    usage_view_amount_text(r->gpu, 2, cells[1], sizeof cells[1]);
    usage_view_amount_text(r->cpu, 2, cells[2], sizeof cells[2]);
    if (r->has_jobs)
        snprintf(cells[3], sizeof cells[3], "%lld", r->jobs);
    else
        snprintf(cells[3], sizeof cells[3], "-");
}

static void print_line(FILE *out, const size_t *width, const char *key, char cells[NCOL][40])
{
    const char *k = key[0] ? key : "-";
    fprintf(out, "%s%*s", k, (int)(width[0] - text_width(k)), "");
    for (int c = 1; c < NCOL; c++)
        fprintf(out, "  %*s", (int)width[c], cells[c]);
    fputc('\n', out);
}

int usage_view_print_table(FILE *out, const json_t *usage, const char *by)
{
    ureport u;
    int rc = ureport_read(usage, by, &u);
    if (rc != 0) return rc;
    char title[32];
    key_title(u.by, true, title, sizeof title);
    char head[NCOL][40];
    snprintf(head[0], sizeof head[0], "%s", title);
    snprintf(head[1], sizeof head[1], "GPU_HOURS");
    snprintf(head[2], sizeof head[2], "CPU_HOURS");
    snprintf(head[3], sizeof head[3], "JOBS");
    size_t width[NCOL];
    for (int c = 0; c < NCOL; c++)
        width[c] = strlen(head[c]);
    char cells[NCOL][40];
    for (size_t i = 0; i <= u.n; i++) {
        const urow *r = i < u.n ? &u.rows[i] : &u.total;
        row_cells(r, cells);
        size_t kw = r->key[0] ? text_width(r->key) : 1;
        if (kw > width[0]) width[0] = kw;
        for (int c = 1; c < NCOL; c++)
            if (strlen(cells[c]) > width[c]) width[c] = strlen(cells[c]);
    }
    /* the header: title left, numbers' titles right-aligned like their numbers */
    fprintf(out, "%-*s", (int)width[0], head[0]);
    for (int c = 1; c < NCOL; c++)
        fprintf(out, "  %*s", (int)width[c], head[c]);
    fputc('\n', out);
    for (size_t i = 0; i < u.n; i++) {
        row_cells(&u.rows[i], cells);
        print_line(out, width, u.rows[i].key, cells);
    }
    size_t total_width = width[0];
    for (int c = 1; c < NCOL; c++)
        total_width += 2 + width[c];
    for (size_t k = 0; k < total_width; k++)
        fputc('-', out);
    fputc('\n', out);
    row_cells(&u.total, cells);
    print_line(out, width, u.total.key, cells);
    rc = ferror(out) ? -EIO : (int)u.n;
    ureport_free(&u);
    return rc;
}

static void seconds_text(usage_amount a, char *buf, size_t len)
{
    if (a.has_seconds)
        snprintf(buf, len, "%lld", a.seconds);
    else
        buf[0] = '\0';
}

static int csv_record(FILE *out, const urow *r)
{
    char gh[40], gs[32], ch[40], cs[32], jobs[32] = "";
    if (r->gpu.has_seconds || r->gpu.has_hours)
        usage_view_amount_text(r->gpu, 4, gh, sizeof gh);
    else
        gh[0] = '\0';
    if (r->cpu.has_seconds || r->cpu.has_hours)
        usage_view_amount_text(r->cpu, 4, ch, sizeof ch);
    else
        ch[0] = '\0';
    seconds_text(r->gpu, gs, sizeof gs);
    seconds_text(r->cpu, cs, sizeof cs);
    if (r->has_jobs) snprintf(jobs, sizeof jobs, "%lld", r->jobs);
    const char *f[] = {r->key, gh, gs, ch, cs, jobs};
    return csv_row(out, 6, f);
}

int usage_view_print_csv(FILE *out, const json_t *usage, const char *by)
{
    ureport u;
    int rc = ureport_read(usage, by, &u);
    if (rc != 0) return rc;
    char title[32];
    key_title(u.by, false, title, sizeof title);
    const char *head[] = {title, "gpu_hours", "gpu_seconds", "cpu_hours", "cpu_seconds", "jobs"};
    rc = csv_row(out, 6, head);
    for (size_t i = 0; i < u.n && rc == 0; i++)
        rc = csv_record(out, &u.rows[i]);
    if (rc == 0) rc = csv_record(out, &u.total);
    if (rc == 0) rc = (int)u.n;
    ureport_free(&u);
    return rc;
}
