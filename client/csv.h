/* csv.h - RFC 4180 CSV output for the CLI's exports (usage, statements): fields quoted when they
 * hold a comma, a double quote, CR or LF (quotes doubled), records ended by CRLF.
 *
 * Never talks to the network and never reads input; writes only to the stream it is given.
 */
#ifndef ANTENNA_CSV_H
#define ANTENNA_CSV_H

#include <stddef.h>
#include <stdio.h>

/* Writes one field `s` (NULL writes an empty field) to `out`, between double quotes when it holds
 * ',', '"', '\r' or '\n' or starts or ends with a space, with every '"' doubled. Writes no
 * separator. Returns 0 or -EIO. */
int csv_field(FILE *out, const char *s);

/* Writes a record of `n` fields (as csv_field, separated by ',') and the CRLF that ends it.
 * Returns 0 or -EIO. */
int csv_row(FILE *out, size_t n, const char *const *fields);

#endif
