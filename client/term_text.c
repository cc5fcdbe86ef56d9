/* term_text.c - control characters escaped for a terminal. Must never pass a C0 (but \n and \t),
 * DEL or C1 byte through, and never change any other byte. */
#include "term_text.h"

#include <errno.h>
#include <stdlib.h>

void term_text_init(term_text *t)
{
    t->cont = 0;
    t->lead_c2 = false;
}

static int put_escape(FILE *out, unsigned char b)
{
    return fprintf(out, "\\x%02x", b) < 0 ? -EIO : 0;
}

int term_text_write(term_text *t, FILE *out, const char *in, size_t n)
{
    const unsigned char *p = (const unsigned char *)in;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = p[i];
        if (t->lead_c2) {
            t->lead_c2 = false;
            if (b >= 0x80 && b <= 0x9f) { /* U+0080..U+009F: a C1 control in UTF-8 */
                if (put_escape(out, 0xc2) < 0 || put_escape(out, b) < 0) return -EIO;
                continue;
            }
            if (putc(0xc2, out) == EOF) return -EIO;
            t->cont = 0;
            if (b >= 0x80 && b <= 0xbf) { /* the rest of U+00A0..U+00FF */
                if (putc(b, out) == EOF) return -EIO;
                continue;
            }
        }
        if (b == 0xc2) {
            t->lead_c2 = true;
            continue;
        }
        if (b >= 0x80 && b <= 0xbf && t->cont > 0) { /* inside a UTF-8 sequence */
            t->cont--;
            if (putc(b, out) == EOF) return -EIO;
            continue;
        }
        t->cont = b >= 0xf0 && b <= 0xf4  ? 3
                  : b >= 0xe0 && b < 0xf0 ? 2
                  : b >= 0xc3 && b < 0xe0 ? 1
                                          : 0;
        bool control =
            (b < 0x20 && b != '\n' && b != '\t') || b == 0x7f || (b >= 0x80 && b <= 0x9f);
        if (control ? put_escape(out, b) < 0 : putc(b, out) == EOF) return -EIO;
    }
    return 0;
}

int term_text_finish(term_text *t, FILE *out)
{
    if (!t->lead_c2) return 0;
    t->lead_c2 = false;
    return putc(0xc2, out) == EOF ? -EIO : 0;
}

struct cookie {
    term_text t;
    FILE *out;
};

static ssize_t cookie_write(void *arg, const char *buf, size_t n)
{
    struct cookie *c = arg;
    if (term_text_write(&c->t, c->out, buf, n) < 0 || fflush(c->out) == EOF) return -1;
    return (ssize_t)n;
}

static int cookie_close(void *arg)
{
    struct cookie *c = arg;
    int rc = term_text_finish(&c->t, c->out);
    if (fflush(c->out) == EOF) rc = -EIO;
    free(c);
    return rc < 0 ? EOF : 0;
}

FILE *term_text_stream(FILE *out)
{
    struct cookie *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->out = out;
    cookie_io_functions_t io = {.write = cookie_write, .close = cookie_close};
    FILE *f = fopencookie(c, "w", io);
    if (f == NULL) free(c);
    return f;
}
