/* csv.c - RFC 4180 fields and records.
 * Must never write anywhere but the stream it is given, nor drop or alter a field's characters. */
#include "csv.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static bool needs_quotes(const char *s)
{
    size_t n = strlen(s);
    if (n == 0) return false;
    return strpbrk(s, ",\"\r\n") != NULL || s[0] == ' ' || s[n - 1] == ' ';
}

int csv_field(FILE *out, const char *s)
{
    if (s == NULL) s = "";
    if (!needs_quotes(s)) {
        fputs(s, out);
    } else {
        fputc('"', out);
        for (; *s; s++) {
            if (*s == '"') fputc('"', out);
            fputc(*s, out);
        }
        fputc('"', out);
    }
    return ferror(out) ? -EIO : 0;
}

int csv_row(FILE *out, size_t n, const char *const *fields)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0) fputc(',', out);
        if (csv_field(out, fields[i]) != 0) return -EIO;
    }
    fputs("\r\n", out);
    return ferror(out) ? -EIO : 0;
}
