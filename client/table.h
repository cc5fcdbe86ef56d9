/* table.h - aligned text tables for the CLI's list commands (like squeue) and local-time cells.
 *
 * Never reads input or talks to the network; prints only in table_print, to the stream it is given.
 */
#ifndef ANTENNA_TABLE_H
#define ANTENNA_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

typedef struct table table;

/* Creates a table of `ncols` columns titled `headers` (copied). Returns NULL when out of memory or
 * ncols is 0. Free with table_free. */
table *table_new(size_t ncols, const char *const *headers);

/* Frees the table. Accepts NULL. */
void table_free(table *t);

/* Appends a row of ncols cells (copied; a NULL or empty cell shows as "-"; control characters
 * show as spaces). Returns 0 or -ENOMEM. */
int table_add_row(table *t, const char *const *cells);

/* Returns the number of rows added. */
size_t table_rows(const table *t);

/* Prints the header line and the rows, each column as wide as its widest cell (in UTF-8
 * characters), columns two spaces apart, no trailing blanks. Returns 0 or -EIO. */
int table_print(const table *t, FILE *out);

/* Parses an RFC 3339 UTC time ("2026-11-25T21:44:36Z", optional fraction, "Z" or "+00:00").
 * Returns 0 and sets *out, or -EINVAL. */
int table_time_parse(const char *s, time_t *out);

/* Formats an RFC 3339 UTC time as local time "YYYY-MM-DD HH:MM" (with ":SS" when `seconds`) into
 * buf[len]. NULL or "" gives "-"; an unparseable string is copied as is. Returns buf. */
char *table_time_local(const char *s, bool seconds, char *buf, size_t len);

#endif
