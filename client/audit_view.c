/* audit_view.c - the `antenna audit` table and the `antenna audit verify` verdict.
 * Must never talk to the network or trust the JSON's shape: every field is type-checked. */
#include "audit_view.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

char *audit_view_details(const json_t *details, size_t width, char *buf, size_t len)
{
    if (len == 0) return buf;
    if (width < 4) width = 4;
    if (details == NULL || json_is_null(details)) {
        snprintf(buf, len, "-");
        return buf;
    }
    char *text = json_dumps(details, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        snprintf(buf, len, "-");
        return buf;
    }
    /* find where the (width - 3)th character ends, and whether there are more than width */
    size_t chars = 0, cut = 0, i = 0;
    for (; text[i]; i++) {
        if (((unsigned char)text[i] & 0xc0) == 0x80) continue;
        if (chars == width - 3) cut = i;
        chars++;
    }
    if (chars <= width) {
        snprintf(buf, len, "%s", text);
    } else {
        snprintf(buf, len, "%.*s...", (int)cut, text);
    }
    /* a cut by a too-small buffer must not leave half a character */
    size_t n = strlen(buf);
    if (n + 1 == len) {
        size_t k = n;
        while (k > 0 && ((unsigned char)buf[k - 1] & 0xc0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)buf[k - 1] & 0x80)) buf[k - 1] = '\0';
    }
    free(text);
    return buf;
}

static void int_cell(const json_t *v, char *buf, size_t len)
{
    if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else
        buf[0] = '\0';
}

static const char *str_or_null(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

int audit_view_print_table(FILE *out, const json_t *entries, size_t width)
{
    static const char *const headers[] = {"SEQ", "TIME", "ACTOR", "PARTNER", "ACTION", "DETAILS"};
    if (!json_is_array(entries) || json_array_size(entries) == 0) return 0;
    table *t = table_new(6, headers);
    if (t == NULL) return -ENOMEM;
    int rc = 0;
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        char seq[32], at[64], details[1024];
        int_cell(json_object_get(e, "seq"), seq, sizeof seq);
        table_time_local(str_or_null(e, "at"), true, at, sizeof at);
        json_t *d = json_object_get(e, "details");
        audit_view_details(d, width, details, sizeof details);
        const char *row[] = {seq,
                             at,
                             str_or_null(e, "actor"),
                             str_or_null(e, "partner"),
                             str_or_null(e, "action"),
                             details};
        if ((rc = table_add_row(t, row)) != 0) goto done;
    }
    rc = table_print(t, out);
    if (rc == 0) rc = (int)table_rows(t);
done:
    table_free(t);
    return rc;
}

int audit_view_print_verify(FILE *out, const json_t *verdict)
{
    json_t *ok = json_object_get(verdict, "ok");
    if (!json_is_boolean(ok)) return -EINVAL;
    if (json_is_true(ok)) {
        json_t *n = json_object_get(verdict, "entries");
        if (json_is_integer(n))
            fprintf(out, "audit trail OK: %lld entries verified\n",
                    (long long)json_integer_value(n));
        else
            fprintf(out, "audit trail OK: ? entries verified\n");
        return ferror(out) ? -EIO : 0;
    }
    char at[32] = "?", problem[512];
    json_t *bad = json_object_get(verdict, "first_bad");
    if (json_is_integer(bad)) snprintf(at, sizeof at, "%lld", (long long)json_integer_value(bad));
    const char *p = str_or_null(verdict, "problem");
    snprintf(problem, sizeof problem, "%s", p && p[0] ? p : "no reason given");
    for (char *c = problem; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = ' ';
    fprintf(out, "audit trail BROKEN at entry %s: %s\n", at, problem);
    return ferror(out) ? -EIO : 1;
}
