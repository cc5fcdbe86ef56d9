/* term_text.h - bytes made safe to show on a terminal: `antenna logs` writes a job's output, which
 * its job chose, through it when stdout is a terminal.
 *
 * Control characters (C0 but newline and tab, DEL, C1 as raw bytes or as UTF-8) are written as
 * visible escapes ("\x1b"), so a job cannot move the cursor, retitle the window, hide lines or
 * answer for the user. Everything else passes unchanged, invalid UTF-8 included. Never talks to
 * the network; writes only to the stream it is given.
 */
#ifndef ANTENNA_TERM_TEXT_H
#define ANTENNA_TERM_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The escaper's state between chunks (a UTF-8 sequence may be cut between two). Caller-allocated;
 * zero it (or term_text_init) before the first chunk. */
typedef struct term_text {
    unsigned cont; /* continuation bytes still expected by the UTF-8 sequence under way */
    bool lead_c2;  /* the last byte was 0xC2, held back: with 0x80-0x9F it is a C1 control */
} term_text;

/* Zeroes `t`. */
void term_text_init(term_text *t);

/* Writes `n` bytes of `in` to `out`, escaping control characters as \xNN (0xC2 0x9B becomes
 * "\xc2\x9b"). A trailing 0xC2 is held in `t` until the next chunk or term_text_finish. Returns 0
 * or -EIO. */
int term_text_write(term_text *t, FILE *out, const char *in, size_t n);

/* Writes what `t` still holds (a lone 0xC2 at the very end, unchanged). Returns 0 or -EIO. */
int term_text_finish(term_text *t, FILE *out);

/* A stream that writes through the escaper to `out` (borrowed; must outlive it), for code that
 * writes to a FILE *; closing it writes what the escaper holds. Returns NULL on out of memory. */
FILE *term_text_stream(FILE *out);

#endif
