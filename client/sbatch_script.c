/* sbatch_script.c - #SBATCH directives and sbatch-style job options into job-request fields.
 * Must never read files or print: text comes in, warnings leave through a callback. */
#include "sbatch_script.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_id { OPT_NAME, OPT_TIME, OPT_CPUS, OPT_GPUS, OPT_GRES, OPT_MEM };

static const struct {
    const char *long_name;
    char short_name; /* 0 = none */
    enum opt_id id;
} known_opts[] = {
    {"--job-name", 'J', OPT_NAME}, {"--time", 't', OPT_TIME}, {"--cpus-per-task", 'c', OPT_CPUS},
    {"--gpus", 'G', OPT_GPUS},     {"--gres", 0, OPT_GRES},   {"--mem", 0, OPT_MEM},
};

/* sbatch's long options that never take a separate value argument (no or optional argument). */
static const char *const sbatch_flag_opts[] = {
    "--contiguous",    "--exclusive",  "--get-user-env", "--help",
    "--hold",          "--ignore-pbs", "--immediate",    "--no-kill",
    "--no-requeue",    "--nice",       "--overcommit",   "--oversubscribe",
    "--parsable",      "--propagate",  "--quiet",        "--reboot",
    "--requeue",       "--spread-job", "--test-only",    "--usage",
    "--use-min-nodes", "--verbose",    "--version",      "--wait",
    "--x11",           NULL,
};

/* sbatch's short options that take a value ("+ba:A:B:c:C:d:D:e:F:G:hHi:IJ:kL:m:M:n:N:o:Op:q:Q...").
 */
static const char sbatch_short_with_value[] = "aABcCdDeFGiJLmMnNopqStwx";

static int lookup(const char *opt)
{
    if (opt == NULL) return -1;
    for (size_t i = 0; i < sizeof known_opts / sizeof known_opts[0]; i++) {
        if (strcmp(opt, known_opts[i].long_name) == 0) return (int)known_opts[i].id;
        if (known_opts[i].short_name && opt[0] == '-' && opt[1] == known_opts[i].short_name &&
            opt[2] == '\0')
            return (int)known_opts[i].id;
    }
    return -1;
}

void sbatch_opts_init(sbatch_opts *o)
{
    memset(o, 0, sizeof *o);
}

int sbatch_opt_known(const char *opt)
{
    return lookup(opt) >= 0;
}

/* Copies `v` into a short printable form for messages: control characters become '?', and long
 * values are cut with "...". */
static const char *shown(const char *v, char *buf, size_t len)
{
    size_t i = 0;
    for (; v[i] != '\0' && i + 4 < len; i++)
        buf[i] = ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ? '?' : v[i];
    if (v[i] != '\0' && len >= 4) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

static int parse_count(const char *v, int min, int *out)
{
    if (v[0] < '0' || v[0] > '9') return -EINVAL;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > INT_MAX) return -EINVAL;
    *out = (int)n;
    return 0;
}

int sbatch_opt_set(sbatch_opts *o, const char *opt, const char *value, char *err, size_t len)
{
    int id = lookup(opt);
    if (id < 0) return -ENOENT;
    char v[48];
    if (value == NULL) {
        snprintf(err, len, "%s needs a value", opt);
        return -EINVAL;
    }
    switch ((enum opt_id)id) {
    case OPT_NAME: {
        size_t n = strlen(value);
        if (n >= sizeof o->name) {
            snprintf(err, len, "%s is %zu bytes long; job names are at most %zu bytes", opt, n,
                     sizeof o->name - 1);
            return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
                snprintf(err, len,
                         "invalid %s value \"%s\": job names cannot hold tabs, newlines "
                         "or other control characters",
                         opt, shown(value, v, sizeof v));
                return -EINVAL;
            }
        }
        memcpy(o->name, value, n + 1);
        o->set |= SBATCH_SET_NAME;
        return 0;
    }
    case OPT_TIME: {
        int m;
        if (jobreq_time_parse(value, &m) != 0) {
            snprintf(err, len,
                     "invalid %s value \"%s\": use minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S "
                     "(e.g. 90 or 1:30:00), at least 1 minute",
                     opt, shown(value, v, sizeof v));
            return -EINVAL;
        }
        o->time_minutes = m;
        o->set |= SBATCH_SET_TIME;
        return 0;
    }
    case OPT_CPUS: {
        int n;
        if (parse_count(value, 1, &n) != 0) {
            snprintf(err, len, "invalid %s value \"%s\": give a whole number of CPUs, 1 or more",
                     opt, shown(value, v, sizeof v));
            return -EINVAL;
        }
        o->cpus_per_task = n;
        o->set |= SBATCH_SET_CPUS;
        return 0;
    }
    case OPT_GPUS:
    case OPT_GRES: {
        int n;
        char type[JOBREQ_GPU_TYPE_MAX];
        bool gres = id == OPT_GRES;
        int rc = gres ? jobreq_gres_parse(value, &n, type, sizeof type)
                      : jobreq_gpus_parse(value, &n, type, sizeof type);
        if (rc != 0) {
            if (gres)
                snprintf(err, len,
                         "invalid %s value \"%s\": Antenna handles GPUs only; use gpu, gpu:N, "
                         "gpu:TYPE or gpu:TYPE:N (e.g. gpu:h100:2)",
                         opt, shown(value, v, sizeof v));
            else
                snprintf(err, len, "invalid %s value \"%s\": use N or TYPE:N (e.g. 2 or h100:2)",
                         opt, shown(value, v, sizeof v));
            return -EINVAL;
        }
        o->gpus = n;
        memcpy(o->gpu_type, type, sizeof type);
        o->set |= SBATCH_SET_GPUS;
        return 0;
    }
    case OPT_MEM: {
        int64_t mb;
        if (jobreq_mem_parse(value, &mb) != 0) {
            snprintf(err, len,
                     "invalid %s value \"%s\": use a size in MiB or with a K, M, G or T suffix "
                     "(e.g. 8G)",
                     opt, shown(value, v, sizeof v));
            return -EINVAL;
        }
        o->mem_mb = mb;
        o->set |= SBATCH_SET_MEM;
        return 0;
    }
    }
    return -ENOENT;
}

void sbatch_opts_override(sbatch_opts *base, const sbatch_opts *over)
{
    if (over->set & SBATCH_SET_NAME) memcpy(base->name, over->name, sizeof base->name);
    if (over->set & SBATCH_SET_GPUS) {
        base->gpus = over->gpus;
        memcpy(base->gpu_type, over->gpu_type, sizeof base->gpu_type);
    }
    if (over->set & SBATCH_SET_CPUS) base->cpus_per_task = over->cpus_per_task;
    if (over->set & SBATCH_SET_MEM) base->mem_mb = over->mem_mb;
    if (over->set & SBATCH_SET_TIME) base->time_minutes = over->time_minutes;
    base->set |= over->set;
}

void sbatch_opts_to_request(const sbatch_opts *o, jobreq *r)
{
    if (o->set & SBATCH_SET_NAME) memcpy(r->name, o->name, sizeof r->name);
    if (o->set & SBATCH_SET_GPUS) {
        r->gpus = o->gpus;
        memcpy(r->gpu_type, o->gpu_type, sizeof r->gpu_type);
    }
    if (o->set & SBATCH_SET_CPUS) r->cpus_per_task = o->cpus_per_task;
    if (o->set & SBATCH_SET_MEM) r->mem_mb = o->mem_mb;
    if (o->set & SBATCH_SET_TIME) r->time_minutes = o->time_minutes;
}

/* ---- script scanning ---- */

typedef struct token {
    const char *s;
    int line;
} token;

typedef struct token_list {
    token *v;
    size_t n, cap;
    char *buf; /* token text, NUL-separated */
    size_t used;
} token_list;

static int tokens_push(token_list *t, const char *s, int line)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        token *v = realloc(t->v, cap * sizeof *v);
        if (v == NULL) return -ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n].s = s;
    t->v[t->n].line = line;
    t->n++;
    return 0;
}

/* Splits one directive line (after "#SBATCH") into tokens the way sbatch's _get_argument does.
 * Returns 0, -EINVAL (unmatched quote, message in err) or -ENOMEM. */
static int tokenize_line(token_list *t, const char *p, const char *end, int line, const char *path,
                         char *err, size_t errlen)
{
    for (;;) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p >= end || *p == '#') return 0;
        char *out = t->buf + t->used;
        size_t k = 0;
        bool quoted = false, escape = false;
        char q = 0;
        while (p < end && (quoted || !isspace((unsigned char)*p))) {
            char c = *p;
            if (escape) {
                escape = false;
            } else if (c == '\\') {
                escape = true;
                p++;
                continue;
            } else if (quoted) {
                if (c == q) {
                    quoted = false;
                    p++;
                    continue;
                }
            } else if (c == '"' || c == '\'') {
                quoted = true;
                q = c;
                p++;
                continue;
            } else if (c == '#') {
                break;
            }
            out[k++] = c;
            p++;
        }
        if (quoted) {
            snprintf(err, errlen, "%s:%d: unmatched %c quote in #SBATCH line", path, line, q);
            return -EINVAL;
        }
        out[k] = '\0';
        t->used += k + 1;
        int rc = tokens_push(t, out, line);
        if (rc != 0) return rc;
        if (p < end && *p == '#') return 0;
    }
}

static bool is_flag_opt(const char *name)
{
    for (const char *const *f = sbatch_flag_opts; *f != NULL; f++)
        if (strcmp(*f, name) == 0) return true;
    return false;
}

/* Sends "PATH:LINE: <pre><what><post>" to the warning callback. */
static void warn_line(sbatch_warn_fn *warn, void *ctx, const char *path, int line, const char *pre,
                      const char *what, const char *post)
{
    if (warn == NULL) return;
    char v[64], msg[512];
    snprintf(msg, sizeof msg, "%s:%d: %s%s%s", path, line, pre, shown(what, v, sizeof v), post);
    warn(ctx, msg);
}

/* Walks the tokens as getopt_long walks sbatch's argv. */
static int apply_tokens(const token_list *t, const char *path, sbatch_opts *o, sbatch_warn_fn *warn,
                        void *ctx, char *err, size_t errlen)
{
    bool options_done = false;
    for (size_t i = 0; i < t->n; i++) {
        const char *tok = t->v[i].s;
        int line = t->v[i].line;
        bool has_next = i + 1 < t->n;
        bool next_same_line = has_next && t->v[i + 1].line == line;
        if (options_done || tok[0] != '-' || tok[1] == '\0') {
            warn_line(warn, ctx, path, line, "#SBATCH word \"", tok,
                      "\" is not an option, ignored");
            continue;
        }
        if (strcmp(tok, "--") == 0) {
            options_done = true;
            continue;
        }
        char name[64];
        const char *value = NULL;
        if (tok[1] == '-') {
            const char *eq = strchr(tok, '=');
            size_t n = eq ? (size_t)(eq - tok) : strlen(tok);
            if (n >= sizeof name) n = sizeof name - 1;
            memcpy(name, tok, n);
            name[n] = '\0';
            if (eq) value = eq + 1;
        } else {
            name[0] = '-';
            name[1] = tok[1];
            name[2] = '\0';
            if (tok[2] != '\0') value = tok + 2;
        }
        if (sbatch_opt_known(name)) {
            if (value == NULL) {
                if (!has_next) {
                    snprintf(err, errlen, "%s:%d: #SBATCH %s needs a value", path, line, name);
                    return -EINVAL;
                }
                value = t->v[++i].s; /* getopt takes the next argument, whatever it is */
            }
            char msg[384];
            int rc = sbatch_opt_set(o, name, value, msg, sizeof msg);
            if (rc != 0) {
                snprintf(err, errlen, "%s:%d: %s", path, line, msg);
                return rc;
            }
            continue;
        }
        warn_line(warn, ctx, path, line, "#SBATCH ", name, " is not supported by Antenna, ignored");
        if (value != NULL || !next_same_line || t->v[i + 1].s[0] == '-') continue;
        bool takes_value =
            tok[1] == '-' ? !is_flag_opt(name) : strchr(sbatch_short_with_value, tok[1]) != NULL;
        if (takes_value) i++;
    }
    return 0;
}

int sbatch_script_parse(const char *text, size_t len, const char *path, sbatch_opts *o,
                        sbatch_warn_fn *warn, void *ctx, char *err, size_t errlen)
{
    static const char magic[] = "#SBATCH";
    const size_t magic_len = sizeof magic - 1;
    if (path == NULL) path = "script";
    token_list t = {0};
    t.buf = malloc(len + 2);
    if (t.buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    int rc = 0;
    int line = 0;
    const char *p = text;
    const char *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        line++;
        if ((size_t)(eol - p) >= magic_len && memcmp(p, magic, magic_len) == 0) {
            rc = tokenize_line(&t, p + magic_len, eol, line, path, err, errlen);
            if (rc == -ENOMEM) snprintf(err, errlen, "%s: out of memory", path);
            if (rc != 0) goto fail_tokenize;
        } else {
            const char *q = p;
            while (q < eol && isspace((unsigned char)*q))
                q++;
            if (q < eol && *q != '#') break; /* first command: directives end here */
        }
        p = nl ? nl + 1 : end;
    }
    rc = apply_tokens(&t, path, o, warn, ctx, err, errlen);
    if (rc == -ENOMEM) snprintf(err, errlen, "%s: out of memory", path);

fail_tokenize:
    free(t.v);
    free(t.buf);
    return rc;
}

/* Returns the length of the well-formed UTF-8 sequence at p (1..4), or 0 when it is malformed. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n) return 0;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[k] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

int sbatch_script_check_text(const char *text, size_t len, const char *path, char *err,
                             size_t errlen)
{
    const unsigned char *p = (const unsigned char *)text;
    int line = 1;
    if (path == NULL) path = "script";
    for (size_t i = 0; i < len;) {
        if (p[i] == '\0') {
            snprintf(err, errlen, "%s:%d: the script holds a NUL byte; a batch script must be text",
                     path, line);
            return -EINVAL;
        }
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) {
            snprintf(err, errlen,
                     "%s:%d: the script is not valid UTF-8 text; convert it (e.g. iconv -t UTF-8)",
                     path, line);
            return -EINVAL;
        }
        if (p[i] == '\n') line++;
        i += n;
    }
    return 0;
}
