/* table.c - aligned text tables and local-time cells for the CLI.
 * Must never print anywhere but the stream given to table_print. */
#include "table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct table {
    size_t ncols;
    size_t nrows, cap;
    char **cells; /* (nrows + 1) * ncols, row 0 = headers */
};

/* Copies a cell, "-" for NULL/empty, control characters as spaces. */
static char *cell_dup(const char *s)
{
    if (s == NULL || s[0] == '\0') s = "-";
    char *d = strdup(s);
    if (d == NULL) return NULL;
    for (char *p = d; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    return d;
}

static int add_row(table *t, const char *const *cells)
{
    if (t->nrows + 1 >= t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        char **v = realloc(t->cells, cap * t->ncols * sizeof *v);
        if (v == NULL) return -ENOMEM;
        t->cells = v;
        t->cap = cap;
    }
    char **row = t->cells + (t->nrows + 1) * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = cell_dup(cells[i]);
        if (row[i] == NULL) {
            while (i-- > 0)
                free(row[i]);
            return -ENOMEM;
        }
    }
    return 0;
}

table *table_new(size_t ncols, const char *const *headers)
{
    if (ncols == 0) return NULL;
    table *t = calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    t->ncols = ncols;
    t->cap = 8;
    t->cells = calloc(t->cap * ncols, sizeof *t->cells);
    if (t->cells == NULL) {
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < ncols; i++) {
        t->cells[i] = cell_dup(headers[i]);
        if (t->cells[i] == NULL) {
            table_free(t);
            return NULL;
        }
    }
    return t;
}

void table_free(table *t)
{
    if (t == NULL) return;
    size_t used = (t->nrows + 1) * t->ncols;
    for (size_t i = 0; i < used && t->cells; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

int table_add_row(table *t, const char *const *cells)
{
    int rc = add_row(t, cells);
    if (rc == 0) t->nrows++;
    return rc;
}

size_t table_rows(const table *t)
{
    return t->nrows;
}

/* Width of a UTF-8 string in characters (continuation bytes do not count). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) w++;
    return w;
}

int table_print(const table *t, FILE *out)
{
    size_t *width = calloc(t->ncols, sizeof *width);
    if (width == NULL) return -ENOMEM;
    for (size_t r = 0; r <= t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = text_width(t->cells[r * t->ncols + c]);
            if (w > width[c]) width[c] = w;
        }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            fputs(s, out);
            if (c + 1 < t->ncols) fprintf(out, "%*s", (int)(width[c] - text_width(s) + 2), "");
        }
        fputc('\n', out);
    }
    free(width);
    return ferror(out) ? -EIO : 0;
}

int table_time_parse(const char *s, time_t *out)
{
    if (s == NULL) return -EINVAL;
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return -EINVAL;
    const char *p = s + n;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return -EINVAL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "z") != 0 && strcmp(p, "+00:00") != 0) return -EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -EINVAL;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -EINVAL;
    *out = t;
    return 0;
}

char *table_time_local(const char *s, bool seconds, char *buf, size_t len)
{
    if (len == 0) return buf;
    time_t t;
    struct tm tm;
    if (s == NULL || s[0] == '\0') {
        snprintf(buf, len, "-");
    } else if (table_time_parse(s, &t) != 0 || localtime_r(&t, &tm) == NULL) {
        snprintf(buf, len, "%s", s);
    } else if (strftime(buf, len, seconds ? "%Y-%m-%d %H:%M:%S" : "%Y-%m-%d %H:%M", &tm) == 0) {
        buf[0] = '\0';
    }
    return buf;
}
