/* main.c - `antenna`, the command-line client of antennad: parses commands, calls the HTTP API and
 * prints the answers. Must never crash on a server answer, whatever it holds, nor print a token
 * except the one `token create` was asked for.
 *
 * Exit status: 0 ok; 1 the server refused (or answered nonsense); 2 usage or local input error;
 * 3 cannot reach the server (network, TLS). `submit --wait` ends with the job's status;
 * `submit --dry-run` with 1 when the quote refuses the job; `audit verify` with 1 when the audit
 * trail is broken.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "api_client.h"
#include "audit_view.h"
#include "cli_config.h"
#include "job_request.h"
#include "job_array.h"
#include "job_view.h"
#include "quota_args.h"
#include "quota_view.h"
#include "reconcile_view.h"
#include "report_view.h"
#include "sbatch_script.h"
#include "table.h"
#include "term_text.h"
#include "usage_view.h"

#ifndef ANTENNA_VERSION
#define ANTENNA_VERSION "0.1.0"
#endif

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define SCRIPT_MAX_BYTES ((size_t)16 * 1024 * 1024)
/* How long --wait and logs --follow keep retrying while the server cannot be reached. */
#define RETRY_SECONDS 60
/* How long submit resends a job whose answer was lost, by default (--retry-for), and at most: well
 * inside the 24 h antennad keeps an Idempotency-Key. */
#define SUBMIT_RETRY_SECONDS     60
#define SUBMIT_RETRY_MAX_SECONDS 3600

enum opt_id {
    OPT_HELP,
    OPT_URL,
    OPT_TOKEN,
    OPT_CA,
    OPT_JSON,
    OPT_WAIT,
    OPT_LIMIT,
    OPT_FOLLOW,
    OPT_DESCRIPTION,
    OPT_PARTNER,
    OPT_UNIX_USER,
    OPT_ROLE,
    OPT_USER,
    OPT_LABEL,
    OPT_SHARE,
    OPT_CATEGORY,
    OPT_PERIOD,
    OPT_DRY_RUN,
    OPT_BY,
    OPT_FROM,
    OPT_TO,
    OPT_FORMAT,
    OPT_MONTH,
    OPT_OUTPUT,
    OPT_SINCE,
    OPT_ACTOR,
    OPT_ACTION,
    OPT_AFTER,
    OPT_IDEMPOTENCY_KEY,
    OPT_RETRY_FOR,
    OPT_RAW,        /* logs: bytes unchanged on a terminal too */
    OPT_CHECKPOINT, /* audit verify: a signed checkpoint file */
    OPT_PUBLIC_KEY, /* audit verify: the broker's public key, pinned by the auditor */
    OPT_EXPIRES,
    OPT_JOB,   /* an sbatch job option, applied through sbatch_opt_set */
    OPT_QUOTA, /* a `quota set` field, applied through quota_args_set */
    OPT_REASON,
    OPT_GPU_HOURS,
    OPT_CPU_HOURS,
    OPT_IGNORE_UNSUPPORTED, /* submit: skip unknown #SBATCH options with a warning */
    OPT_STDERR,             /* logs: the job's --error stream */
    OPT_COUNT
};

typedef struct optdef {
    const char *lng; /* "--json"; NULL ends a list */
    char shrt;       /* 'J' or 0 */
    bool has_arg;
    enum opt_id id;
} optdef;

static const optdef global_opts[] = {
    {"--help", 'h', false, OPT_HELP}, {"--url", 0, true, OPT_URL}, {"--token", 0, true, OPT_TOKEN},
    {"--ca", 0, true, OPT_CA},        {NULL, 0, false, OPT_COUNT},
};

typedef struct args {
    const char *value[OPT_COUNT];
    bool given[OPT_COUNT];
    const char *pos[4];
    int npos;
    sbatch_opts job;
    quota_args quota; /* closed by main */
} args;

typedef struct cli {
    const char *url, *token, *ca; /* global flags */
    cli_config cfg;
    api_client *api;
    const char *forbidden_hint; /* what a 403 forbidden means for this command, or NULL */
} cli;

typedef struct command {
    const char *group; /* "partner", "user", "token", "quota" or NULL */
    const char *name;
    const char *usage; /* after "Usage: " */
    const char *help;  /* the rest of --help */
    const optdef *opts;
    int min_pos, max_pos;
    int (*run)(cli *c, args *a);
} command;

/* ---- output helpers ---- */

static void print_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void print_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("antenna: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void print_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void print_warning(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("antenna: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int print_json(const json_t *j)
{
    if (json_dumpf(j, stdout, JSON_INDENT(2)) != 0) return EXIT_REFUSED;
    fputc('\n', stdout);
    return 0;
}

static const char *command_title(const command *cmd, char *buf, size_t len)
{
    if (cmd->group)
        snprintf(buf, len, "antenna %s %s", cmd->group, cmd->name);
    else
        snprintf(buf, len, "antenna %s", cmd->name);
    return buf;
}

static int usage_error(const command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const command *cmd, const char *fmt, ...)
{
    char title[64];
    command_title(cmd, title, sizeof title);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", title);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nUsage: %s\nTry '%s --help' for more information.\n", cmd->usage, title);
    return EXIT_USAGE;
}

static const char global_help[] =
    "Global options (anywhere on the line):\n"
    "  --url URL       server, e.g. https://antenna.example.org:8443\n"
    "                  (or env ANTENNA_URL, or \"url = ...\" in the config file)\n"
    "  --token TOKEN   API token (or env ANTENNA_TOKEN, or \"token = ...\" in the config file)\n"
    "  --ca FILE       CA certificate of the server (or env ANTENNA_CA, or \"ca = ...\")\n"
    "  -h, --help      show this help\n";

static void print_command_help(const command *cmd)
{
    printf("Usage: %s\n\n%s\n%s", cmd->usage, cmd->help, global_help);
}

/* ---- argument parsing ---- */

static const optdef *find_opt(const optdef *list, const char *name)
{
    for (const optdef *d = list; d->lng != NULL; d++) {
        if (name[1] == '-' && strcmp(d->lng, name) == 0) return d;
        if (name[1] != '-' && d->shrt != 0 && name[1] == d->shrt && name[2] == '\0') return d;
    }
    return NULL;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return false;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
    }
    return false;
}

/* Parses argv[0..argc) for `cmd`: options anywhere, "--" ends them. Returns 0 or EXIT_USAGE
 * (message printed). */
static int parse_args(const command *cmd, int argc, char **argv, args *a, cli *c)
{
    bool opts_done = false;
    sbatch_opts_init(&a->job);
    quota_args_init(&a->quota);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!opts_done && strcmp(arg, "--") == 0) {
            opts_done = true;
            continue;
        }
        if (opts_done || arg[0] != '-' || arg[1] == '\0') {
            if (a->npos >= cmd->max_pos) return usage_error(cmd, "unexpected argument '%s'", arg);
            a->pos[a->npos++] = arg;
            continue;
        }
        char name[64];
        const char *value = NULL;
        if (arg[1] == '-') {
            const char *eq = strchr(arg, '=');
            size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
            if (n >= sizeof name) return usage_error(cmd, "unknown option '%s'", arg);
            memcpy(name, arg, n);
            name[n] = '\0';
            if (eq) value = eq + 1;
        } else {
            snprintf(name, sizeof name, "-%c", arg[1]);
            if (arg[2] != '\0') value = arg + 2;
        }
        const optdef *d = cmd->opts ? find_opt(cmd->opts, name) : NULL;
        if (d == NULL) d = find_opt(global_opts, name);
        if (d == NULL) return usage_error(cmd, "unknown option '%s'", arg);
        if (!d->has_arg && value != NULL) {
            if (arg[1] == '-') return usage_error(cmd, "option %s takes no value", name);
            return usage_error(cmd, "unknown option '%s'", arg);
        }
        if (d->has_arg && value == NULL) {
            if (i + 1 >= argc) return usage_error(cmd, "option %s needs a value", name);
            value = argv[++i];
        }
        if (d->id == OPT_JOB) {
            char err[512];
            if (sbatch_opt_set(&a->job, name, value, err, sizeof err) != 0)
                return usage_error(cmd, "%s", err);
            continue;
        }
        if (d->id == OPT_QUOTA) {
            char err[512];
            int qrc = quota_args_set(&a->quota, name, value, err, sizeof err);
            if (qrc == -ENOMEM) {
                print_error("out of memory");
                return EXIT_REFUSED;
            }
            if (qrc != 0) return usage_error(cmd, "%s", err);
            continue;
        }
        a->given[d->id] = true;
        a->value[d->id] = value;
        if (d->id == OPT_URL) c->url = value;
        if (d->id == OPT_TOKEN) c->token = value;
        if (d->id == OPT_CA) c->ca = value;
    }
    if (a->npos < cmd->min_pos) {
        const char *what = strrchr(cmd->usage, ' ');
        return usage_error(cmd, "missing %s", what ? what + 1 : "argument");
    }
    return 0;
}

/* Parses a positive decimal id (job or token). Returns 0 or -EINVAL. */
static int parse_id(const char *s, long long *out)
{
    if (s == NULL || s[0] < '0' || s[0] > '9') return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0) return -EINVAL;
    *out = v;
    return 0;
}

/* ---- talking to the server ---- */

static int cli_connect(cli *c)
{
    if (c->api != NULL) return 0;
    char err[1024];
    int rc = cli_config_resolve(&c->cfg, c->url, c->token, c->ca, err, sizeof err);
    if (rc != 0) {
        print_error("%s", err);
        return EXIT_USAGE;
    }
    if (c->cfg.token_file_exposed)
        print_warning("%s holds an API token but other users may read it; run: chmod 600 %s",
                      c->cfg.path, c->cfg.path);
    rc = api_client_new(c->cfg.url.value, c->cfg.token.value, c->cfg.ca.value, &c->api, err,
                        sizeof err);
    if (rc != 0) {
        print_error("%s", err);
        return EXIT_UNREACHABLE;
    }
    return 0;
}

/* Returns true for the codes POST /v1/jobs refuses a job with when it can never be admitted. */
static bool admission_code(const char *code)
{
    static const char *const codes[] = {"walltime_limit",  "partner_gpu_limit",   "user_gpu_limit",
                                        "budget_exceeded", "cpu_budget_exceeded", "queued_limit"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i]) == 0) return true;
    return false;
}

/* Explains a refused request on stderr; returns EXIT_REFUSED. */
static int report_refusal(cli *c, const api_client_response *r)
{
    char code[64], msg[1024];
    api_client_response_error(r, code, sizeof code, msg, sizeof msg);
    print_error("%s (%s)", msg, code);
    if (r->status == 401)
        fprintf(stderr, "antenna: hint: check the API token (taken from %s)\n",
                c->cfg.token.source ? c->cfg.token.source : "nowhere");
    else if (r->status == 403 && strcmp(code, "forbidden") == 0 && c->forbidden_hint != NULL)
        fprintf(stderr, "antenna: hint: %s\n", c->forbidden_hint);
    else if (r->status == 403 && strcmp(code, "forbidden") == 0)
        fprintf(stderr, "antenna: hint: your token's role does not allow this; partners, users "
                        "and quota changes need a staff or admin token, tokens an admin one\n");
    else if (r->status == 403 && admission_code(code))
        fprintf(stderr, "antenna: hint: 'antenna quota' shows your partner's budget and limits; "
                        "'antenna submit --dry-run SCRIPT' checks a job without queueing it\n");
    else if (r->status == 422 && strcmp(code, "idempotency_key_reused") == 0)
        fprintf(stderr, "antenna: hint: that Idempotency-Key already queued a different job "
                        "request; leave out --idempotency-key to submit this one as a new job\n");
    return EXIT_REFUSED;
}

/* The end of call() and submit_call(): rc, failure and err from the request, its answer in *r.
 */
static int handle_answer(cli *c, int rc, int failure, const char *err, api_client_response *r,
                         json_t **json)
{
    if (rc == -EPIPE) return 0; /* our reader left (antenna logs ID | head): stop quietly */
    if (rc != 0) {
        print_error("%s", err);
        return failure != 0 ? EXIT_UNREACHABLE : EXIT_REFUSED;
    }
    if (r->status < 200 || r->status > 299) return report_refusal(c, r);
    if (json != NULL) {
        *json = api_client_response_json(r);
        if (*json == NULL) {
            print_error("the server answered HTTP %ld but not with a JSON object; is the URL "
                        "(%s, from %s) the one of antennad?",
                        r->status, c->cfg.url.value, c->cfg.url.source);
            return EXIT_REFUSED;
        }
    }
    return 0;
}

/* Sends one request. Returns 0 with a 2xx answer in *r (and, when `json` is non-NULL, its JSON
 * object in *json, a new reference), or prints why not and returns the exit status. */
static int call(cli *c, const char *method, const char *path, const json_t *body, FILE *sink,
                api_client_response *r, json_t **json)
{
    int rc = cli_connect(c);
    if (rc != 0) return rc;
    char *text = NULL;
    if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
        print_error("out of memory");
        return EXIT_REFUSED;
    }
    char err[1024];
    int failure = 0;
    rc = api_client_request(c->api, method, path, text, sink, r, &failure, err, sizeof err);
    free(text);
    return handle_answer(c, rc, failure, err, r, json);
}

/* Prints "retrying in 2 s" style seconds: whole ones as such, else with one decimal. */
static void format_delay(double s, char *buf, size_t len)
{
    long tenths = lround(s * 10);
    if (tenths % 10 == 0)
        snprintf(buf, len, "%ld s", tenths / 10);
    else
        snprintf(buf, len, "%ld.%ld s", tenths / 10, tenths % 10);
}

/* What print_submit_retry needs and counts. */
typedef struct submit_retry {
    const char *key;
    bool maybe_sent; /* an attempt may have reached antennad without its answer reaching us */
} submit_retry;

/* Whether a request that ended with `net` may have reached antennad. */
static bool may_have_arrived(int net)
{
    return net == API_CLIENT_NET_TIMEOUT || net == API_CLIENT_NET_LOST ||
           net == API_CLIENT_NET_EMPTY || net == API_CLIENT_NET_CUT;
}

/* api_client_retry_notify for submit: one line on stderr per retry; ctx is a submit_retry. */
static void print_submit_retry(void *ctx, const api_client_response *r, unsigned attempt,
                               double delay)
{
    (void)attempt;
    submit_retry *sr = ctx;
    const char *key = sr->key;
    if (may_have_arrived(r->net)) sr->maybe_sent = true;
    char when[32];
    format_delay(delay, when, sizeof when);
    if (r->net != API_CLIENT_NET_NONE) {
        fprintf(stderr,
                "antenna: no answer from antennad (%s); retrying in %s with the same "
                "Idempotency-Key %s\n",
                api_client_net_name(r->net), when, key);
    } else {
        char code[64], msg[512];
        api_client_response_error(r, code, sizeof code, msg, sizeof msg);
        fprintf(stderr,
                "antenna: antennad is unavailable (HTTP %ld: %s); retrying in %s with the same "
                "Idempotency-Key %s\n",
                r->status, msg, when, key);
    }
    fflush(stderr);
}

/* POSTs a job submission with Idempotency-Key `key`, resending it (same body, same key) for up to
 * `retry_for` seconds while its answer is lost or antennad answers 503. Returns like call(); when
 * no answer came at all, also says how to resend without risking a second job. */
static int submit_call(cli *c, const json_t *body, const char *key, double retry_for,
                       api_client_response *r, json_t **json)
{
    int rc = cli_connect(c);
    if (rc != 0) return rc;
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL) {
        print_error("out of memory");
        return EXIT_REFUSED;
    }
    char err[1024];
    int failure = 0;
    submit_retry sr = {.key = key};
    rc = api_client_request_retry(c->api, "POST", "/v1/jobs", text, key, retry_for,
                                  print_submit_retry, &sr, r, &failure, err, sizeof err);
    free(text);
    int status = handle_answer(c, rc, failure, err, r, json);
    if (rc != 0 && failure != 0 && (sr.maybe_sent || may_have_arrived(r->net)))
        fprintf(stderr,
                "antenna: hint: the job may or may not have been queued; to try again without "
                "risking a second job, rerun the same command with --idempotency-key %s "
                "(antennad remembers it for 24 h), or check with 'antenna jobs'\n",
                key);
    return status;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Bookkeeping for requests made while following a job: transport failures are retried for
 * RETRY_SECONDS, with one warning. */
typedef struct retry {
    time_t first_failure;
} retry;

/* Handles a failed api_client_request (rc, failure, err). Returns 0 when the caller should sleep
 * and try again, else the exit status (message printed; 0 with *stop set when the output reader
 * left). */
static int retry_failed(retry *rt, int rc, int failure, const char *err, bool *stop)
{
    *stop = false;
    if (failure == 0) {
        if (rc == -EPIPE) {
            *stop = true; /* the reader went away: nothing more to do */
            return 0;
        }
        print_error("%s", err);
        return EXIT_REFUSED;
    }
    time_t now = time(NULL);
    if (rt->first_failure == 0) {
        rt->first_failure = now;
        print_warning("%s; retrying for %d s", err, RETRY_SECONDS);
    } else if (now - rt->first_failure >= RETRY_SECONDS) {
        print_error("%s", err);
        return EXIT_UNREACHABLE;
    }
    sleep_seconds(2.0);
    return 0;
}

static void retry_succeeded(retry *rt)
{
    if (rt->first_failure != 0) fprintf(stderr, "antenna: reconnected\n");
    rt->first_failure = 0;
}

/* A GET (no sink) used while following a job, retried through transport failures. Returns 0 with
 * a 2xx answer in *r, or prints why not and returns the exit status. */
static int poll_get(cli *c, const char *path, api_client_response *r)
{
    retry rt = {0};
    for (;;) {
        char err[1024];
        int failure = 0;
        bool stop;
        int rc = api_client_request(c->api, "GET", path, NULL, NULL, r, &failure, err, sizeof err);
        if (rc == 0) {
            retry_succeeded(&rt);
            if (r->status < 200 || r->status > 299) return report_refusal(c, r);
            return 0;
        }
        if ((rc = retry_failed(&rt, rc, failure, err, &stop)) != 0) return rc;
        if (stop) return EXIT_REFUSED;
    }
}

/* ---- submit ---- */

static void warn_directive(void *ctx, const char *msg)
{
    (void)ctx;
    print_warning("%s", msg);
}

/* Reads a whole file (at most SCRIPT_MAX_BYTES). Returns 0 with a heap buffer (NUL-terminated) in
 * *out, or prints why not and returns EXIT_USAGE. */
static int read_script(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        print_error("cannot read %s: %s", path, strerror(errno));
        return EXIT_USAGE;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    int rc = EXIT_USAGE;
    if (buf == NULL) goto fail_alloc;
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > SCRIPT_MAX_BYTES) {
                print_error("%s is larger than %zu MiB; keep data out of the batch script", path,
                            SCRIPT_MAX_BYTES >> 20);
                goto fail_read;
            }
            char *b = realloc(buf, cap * 2);
            if (b == NULL) goto fail_alloc;
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        print_error("cannot read %s: %s", path, strerror(errno));
        goto fail_read;
    }
    if (n > SCRIPT_MAX_BYTES) {
        print_error("%s is larger than %zu MiB; keep data out of the batch script", path,
                    SCRIPT_MAX_BYTES >> 20);
        goto fail_read;
    }
    buf[n] = '\0';
    fclose(f);
    *out = buf;
    *len = n;
    return 0;

fail_alloc:
    print_error("out of memory reading %s", path);
fail_read:
    free(buf);
    fclose(f);
    return rc;
}

/* sbatch names a job after its script file: use the file's base name when it is a valid name. */
static void default_name(const char *path, jobreq *r)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n == 0 || n >= sizeof r->name) return;
    jobreq probe;
    jobreq_init(&probe);
    probe.script = "#!";
    memcpy(probe.name, base, n + 1);
    if (jobreq_validate(&probe, NULL, NULL) == 0) memcpy(r->name, base, n + 1);
}

/* Follows a job until it ends, printing each state change to `progress`. Returns the exit status
 * (the job's, or 1 / 3 when the server refuses or cannot be reached); *final gets the last job
 * object (new reference) when the job ended. */
static int wait_job(cli *c, long long id, json_t *job, FILE *progress, json_t **final)
{
    char last[512] = "", line[512], path[64];
    json_t *cur = json_incref(job);
    double delay = 1.0;
    snprintf(path, sizeof path, "/v1/jobs/%lld", id);
    api_client_response r;
    api_client_response_init(&r);
    int rc;
    for (;;) {
        job_view_state_line(cur, line, sizeof line);
        if (strcmp(line, last) != 0) {
            fprintf(progress, "%s\n", line);
            fflush(progress);
            memcpy(last, line, sizeof last);
        }
        if (job_view_state_terminal(json_string_value(json_object_get(cur, "state")))) break;
        sleep_seconds(delay);
        delay = delay * 1.1 > 2.0 ? 2.0 : delay * 1.1;
        if ((rc = poll_get(c, path, &r)) != 0) goto fail_poll;
        json_t *next = api_client_response_json(&r);
        if (next == NULL) {
            print_error("the server answered HTTP %ld but not with a JSON object", r.status);
            rc = EXIT_REFUSED;
            goto fail_poll;
        }
        json_decref(cur);
        cur = next;
    }
    api_client_response_close(&r);
    *final = cur;
    return job_view_exit_status(cur);

fail_poll:
    api_client_response_close(&r);
    json_decref(cur);
    return rc;
}

/* Prints the answer to a dry-run submission (the quote). Returns 0 when the job would be
 * admitted, else the exit status. */
static int print_quote(const json_t *quote, bool as_json)
{
    json_t *admitted = json_object_get(quote, "admitted");
    if (!json_is_boolean(admitted)) {
        print_error("the server's answer to a dry run holds no quote (no \"admitted\" field); "
                    "does this antennad support --dry-run?");
        return EXIT_REFUSED;
    }
    if (as_json) {
        int rc = print_json(quote);
        return rc != 0 ? rc : json_is_true(admitted) ? 0 : EXIT_REFUSED;
    }
    int rc = quota_view_print_quote(stdout, quote);
    json_t *arr = json_object_get(quote, "array");
    if (json_is_object(arr)) {
        const char *spec = json_string_value(json_object_get(arr, "spec"));
        long long n = (long long)json_integer_value(json_object_get(arr, "task_count"));
        long long mr = (long long)json_integer_value(json_object_get(arr, "max_running"));
        double each = json_number_value(json_object_get(quote, "max_cost_per_task_gpu_hours"));
        char most[48] = "";
        if (mr > 0) snprintf(most, sizeof most, ", at most %lld at once", mr);
        printf("Array %s: %lld task(s)%s; each task may cost up to %.2f GPU-hours (the cost "
               "above covers every task)\n",
               spec ? spec : "?", n, most, each);
    }
    return rc == 1 ? 0 : EXIT_REFUSED;
}

static const command cmd_submit;

static int run_submit(cli *c, args *a)
{
    const char *path = a->pos[0];
    char *text = NULL;
    size_t len = 0;
    char err[1024];
    bool dry_run = a->given[OPT_DRY_RUN];
    if (dry_run && a->given[OPT_WAIT])
        return usage_error(&cmd_submit, "--dry-run and --wait cannot be combined (a dry run "
                                        "queues nothing to wait for)");
    if (dry_run && (a->given[OPT_IDEMPOTENCY_KEY] || a->given[OPT_RETRY_FOR]))
        return usage_error(&cmd_submit,
                           "--dry-run cannot be combined with %s (a dry run queues "
                           "nothing, so it is sent once, without a key)",
                           a->given[OPT_IDEMPOTENCY_KEY] ? "--idempotency-key" : "--retry-for");
    char key[256];
    if (a->given[OPT_IDEMPOTENCY_KEY]) {
        if (api_client_idempotency_key_check(a->value[OPT_IDEMPOTENCY_KEY], err, sizeof err) != 0)
            return usage_error(&cmd_submit, "--idempotency-key: %s", err);
        snprintf(key, sizeof key, "%s", a->value[OPT_IDEMPOTENCY_KEY]);
    } else if (!dry_run && api_client_idempotency_key_new(key, sizeof key) != 0) {
        print_error("cannot read random bytes for the job's Idempotency-Key (getrandom and "
                    "/dev/urandom failed); give one with --idempotency-key KEY");
        return EXIT_USAGE;
    }
    long long retry_for = SUBMIT_RETRY_SECONDS;
    if (a->given[OPT_RETRY_FOR]) {
        const char *v = a->value[OPT_RETRY_FOR];
        if (strcmp(v, "0") == 0)
            retry_for = 0;
        else if (parse_id(v, &retry_for) != 0 || retry_for > SUBMIT_RETRY_MAX_SECONDS)
            return usage_error(&cmd_submit,
                               "--retry-for must be a whole number of seconds from 0 (no retry) "
                               "to %d (got '%s')",
                               SUBMIT_RETRY_MAX_SECONDS, v);
    }
    int rc = read_script(path, &text, &len);
    if (rc != 0) return rc;
    rc = EXIT_USAGE;
    if (sbatch_script_check_text(text, len, path, err, sizeof err) != 0) {
        print_error("%s", err);
        goto fail_script;
    }
    sbatch_opts opts;
    sbatch_opts_init(&opts);
    unsigned pflags = a->given[OPT_IGNORE_UNSUPPORTED] ? SBATCH_IGNORE_UNSUPPORTED : 0;
    int prc =
        sbatch_script_parse(text, len, path, pflags, &opts, warn_directive, NULL, err, sizeof err);
    if (prc != 0) {
        print_error("%s", err);
        goto fail_script;
    }
    sbatch_opts_override(&opts, &a->job);
    jobreq req;
    jobreq_init(&req);
    req.script = text;
    sbatch_opts_to_request(&opts, &req);
    if (!(opts.set & SBATCH_SET_NAME)) default_name(path, &req);
    jobreq_error jerr;
    if (jobreq_validate(&req, NULL, &jerr) != 0) {
        print_error("%s: %s", path, jerr.message);
        goto fail_script;
    }
    json_t *body = sbatch_request_json(&req, opts.set);
    if (body != NULL && a->given[OPT_WAIT] && json_object_get(body, "array") != NULL) {
        json_decref(body);
        rc = usage_error(&cmd_submit, "--wait follows one job, not an array: follow the array "
                                      "with antenna show ID");
        goto fail_script;
    }
    if (body != NULL && dry_run && json_object_set_new(body, "dry_run", json_true()) != 0) {
        json_decref(body);
        body = NULL;
    }
    if (body == NULL) {
        print_error("out of memory");
        rc = EXIT_REFUSED;
        goto fail_script;
    }
    api_client_response r;
    api_client_response_init(&r);
    json_t *job = NULL;
    if (dry_run)
        rc = call(c, "POST", "/v1/jobs", body, NULL, &r, &job);
    else
        rc = submit_call(c, body, key, (double)retry_for, &r, &job);
    json_decref(body);
    if (rc != 0) goto fail_call;
    if (dry_run) {
        rc = print_quote(job, a->given[OPT_JSON]);
        json_decref(job);
        goto fail_call;
    }
    long long id = 0;
    json_t *jid = json_object_get(job, "id");
    if (json_is_integer(jid)) id = (long long)json_integer_value(jid);
    if (id <= 0) {
        print_error("the server accepted the job but its answer holds no job id");
        rc = EXIT_REFUSED;
        json_decref(job);
        goto fail_call;
    }
    bool as_json = a->given[OPT_JSON];
    json_t *arr = json_object_get(job, "array");
    if (!a->given[OPT_WAIT] && json_is_object(arr) && !as_json) {
        printf("Submitted array job %lld: %lld task(s) (%lld_[%s]); see antenna show %lld\n", id,
               (long long)json_integer_value(json_object_get(arr, "task_count")), id,
               json_string_value(json_object_get(arr, "spec")) ?: "?", id);
        rc = 0;
    } else if (!a->given[OPT_WAIT]) {
        rc = as_json ? print_json(job) : (printf("Submitted job %lld\n", id), 0);
    } else {
        if (!as_json) printf("Submitted job %lld\n", id);
        fflush(stdout);
        json_t *final = NULL;
        rc = wait_job(c, id, job, as_json ? stderr : stdout, &final);
        if (final != NULL) {
            if (as_json) print_json(final);
            json_decref(final);
        }
    }
    json_decref(job);
fail_call:
    api_client_response_close(&r);
fail_script:
    free(text);
    return rc;
}

/* ---- jobs, show, cancel, logs ---- */

static const command cmd_jobs, cmd_show, cmd_cancel, cmd_logs, cmd_token_revoke;

static int run_jobs(cli *c, args *a)
{
    char path[64] = "/v1/jobs";
    if (a->given[OPT_LIMIT]) {
        long long n;
        if (parse_id(a->value[OPT_LIMIT], &n) != 0 || n > 1000)
            return usage_error(&cmd_jobs,
                               "--limit must be a whole number from 1 to 1000 (got '%s')",
                               a->value[OPT_LIMIT]);
        snprintf(path, sizeof path, "/v1/jobs?limit=%lld", n);
    }
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    int rc = call(c, "GET", path, NULL, NULL, &r, &j);
    if (rc != 0) goto done;
    if (a->given[OPT_JSON]) {
        rc = print_json(j);
        goto done;
    }
    json_t *jobs = json_object_get(j, "jobs");
    if (!json_is_array(jobs)) {
        print_error("the server's answer has no \"jobs\" list");
        rc = EXIT_REFUSED;
        goto done;
    }
    if (json_array_size(jobs) == 0) {
        printf("No jobs yet. Submit one with: antenna submit SCRIPT\n");
        goto done;
    }
    if (job_view_print_table(stdout, jobs) < 0) rc = EXIT_REFUSED;
done:
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

static int job_id_arg(const command *cmd, const args *a, long long *id)
{
    if (parse_id(a->pos[0], id) != 0)
        return usage_error(cmd, "ID must be a positive whole number (got '%s')", a->pos[0]);
    return 0;
}

/* ID or ID_TASK (the task of index TASK of array ID, as Slurm writes it) into ref[32], as the
 * API's path takes it. */
static int job_ref_arg(const command *cmd, const args *a, char ref[32])
{
    int64_t id;
    int task;
    if (job_array_ref_parse(a->pos[0], &id, &task) != 0)
        return usage_error(cmd,
                           "ID must be a job id (a positive whole number) or an array's task as "
                           "ID_TASK, e.g. 12_3 (got '%s')",
                           a->pos[0]);
    if (task >= 0)
        snprintf(ref, 32, "%lld_%d", (long long)id, task);
    else
        snprintf(ref, 32, "%lld", (long long)id);
    return 0;
}

static int run_show(cli *c, args *a)
{
    char ref[32];
    int rc = job_ref_arg(&cmd_show, a, ref);
    if (rc != 0) return rc;
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", ref);
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    rc = call(c, "GET", path, NULL, NULL, &r, &j);
    if (rc == 0 && !a->given[OPT_JSON]) {
        job_view_print_detail(stdout, j);
        job_view_print_array(stdout, json_object_get(j, "array"));
        job_view_print_runs(stdout, json_object_get(j, "runs"));
    } else if (rc == 0) {
        rc = print_json(j);
    }
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

static int run_cancel(cli *c, args *a)
{
    char ref[32];
    int rc = job_ref_arg(&cmd_cancel, a, ref);
    if (rc != 0) return rc;
    long long id = strtoll(ref, NULL, 10);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", ref);
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    rc = call(c, "DELETE", path, NULL, NULL, &r, &j);
    if (rc == 0) {
        json_t *now = json_object_get(j, "cancelled_now");
        if (a->given[OPT_JSON]) {
            rc = print_json(j);
        } else if (json_is_integer(now)) { /* a whole array */
            printf("Array %lld: %lld queued task(s) cancelled, cancellation of %lld task(s) in "
                   "Slurm requested.\n",
                   id, (long long)json_integer_value(now),
                   (long long)json_integer_value(json_object_get(j, "cancel_requested")));
        } else if (strchr(ref, '_') != NULL) {
            id = (long long)json_integer_value(json_object_get(j, "id"));
            const char *state = json_string_value(json_object_get(j, "state"));
            printf("Task %s (job %lld): %s.\n", ref, id,
                   state && strcmp(state, "cancelled") == 0 ? "cancelled"
                                                            : "cancellation requested");
        } else {
            const char *state = json_string_value(json_object_get(j, "state"));
            json_t *sid = json_object_get(j, "slurm_job_id");
            if (state != NULL && strcmp(state, "cancelled") == 0) {
                printf("Job %lld cancelled.\n", id);
            } else if (json_is_true(json_object_get(j, "cancel_requested"))) {
                if (json_is_integer(sid))
                    printf("Cancellation of job %lld requested: Slurm job %lld; it shows as "
                           "cancelled once Slurm confirms.\n",
                           id, (long long)json_integer_value(sid));
                else
                    printf("Cancellation of job %lld requested; it shows as cancelled once Slurm "
                           "confirms.\n",
                           id);
            } else {
                char line[512];
                printf("%s\n", job_view_state_line(j, line, sizeof line));
            }
        }
    }
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

/* Asks for the job's state when the output answer did not carry it. Returns 0 with state[len]
 * filled, or the exit status. */
static int fetch_state(cli *c, long long id, char *state, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", id);
    api_client_response r;
    api_client_response_init(&r);
    int rc = poll_get(c, path, &r);
    if (rc == 0) {
        json_t *j = api_client_response_json(&r);
        const char *s = json_string_value(json_object_get(j, "state"));
        snprintf(state, len, "%s", s ? s : "");
        json_decref(j);
    }
    api_client_response_close(&r);
    return rc;
}

/* The job id of ref (ID or ID_TASK): an array's task is asked for its own id. Returns 0 or the
 * exit status. */
static int job_ref_resolve(cli *c, const char *ref, long long *id)
{
    *id = strtoll(ref, NULL, 10);
    if (strchr(ref, '_') == NULL) return 0;
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", ref);
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    int rc = call(c, "GET", path, NULL, NULL, &r, &j);
    if (rc == 0) *id = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    api_client_response_close(&r);
    if (rc == 0 && *id <= 0) {
        print_error("the server's answer for %s holds no job id", ref);
        rc = EXIT_REFUSED;
    }
    return rc;
}

static int run_logs(cli *c, args *a)
{
    long long id;
    char ref[32];
    int rc = job_ref_arg(&cmd_logs, a, ref);
    if (rc == 0) rc = job_ref_resolve(c, ref, &id);
    if (rc != 0) return rc;
    bool follow = a->given[OPT_FOLLOW], as_json = a->given[OPT_JSON];
    if (follow && as_json) return usage_error(&cmd_logs, "--follow and --json cannot be combined");
    char *captured = NULL;
    size_t captured_len = 0;
    /* a terminal gets the job's bytes through the escaper, unless --raw */
    bool escape = !as_json && !a->given[OPT_RAW] && isatty(STDOUT_FILENO);
    FILE *esc = escape ? term_text_stream(stdout) : NULL;
    FILE *out = as_json ? open_memstream(&captured, &captured_len) : escape ? esc : stdout;
    if (out == NULL) {
        print_error("out of memory");
        return EXIT_REFUSED;
    }
    api_client_response r;
    api_client_response_init(&r);
    char path[96];
    const char *stream = a->given[OPT_STDERR] ? "stream=stderr&" : "";
    snprintf(path, sizeof path, "/v1/jobs/%lld/output%s%.*s", id, stream[0] ? "?" : "",
             stream[0] ? (int)strlen(stream) - 1 : 0, stream);
    rc = call(c, "GET", path, NULL, out, &r, NULL);
    fflush(out);
    if (rc != 0) goto done;
    uint64_t offset = r.streamed;
    double delay = 1.0;
    bool extra_pass = false;
    retry rt = {0};
    /* The server sends at most a few MiB per answer: read on while answers bring bytes. Once an
     * answer brings none, the output is caught up; with --follow, wait for more unless that answer
     * said the job had ended (the server reads the state before the output, so nothing can follow
     * a terminal state). */
    for (;;) {
        if (ferror(out)) break;
        if (r.streamed == 0) {
            if (!follow) break;
            char state[32];
            snprintf(state, sizeof state, "%s", r.job_state);
            bool from_header = state[0] != '\0';
            if (!from_header && (rc = fetch_state(c, id, state, sizeof state)) != 0) goto done;
            if (job_view_state_terminal(state)) {
                if (from_header || extra_pass) break;
                extra_pass = true; /* that state was read after the output: read once more */
            } else {
                sleep_seconds(delay);
                delay = delay * 1.2 > 2.0 ? 2.0 : delay * 1.2;
            }
        } else {
            delay = 1.0;
        }
        char err[1024];
        int failure = 0;
        for (;;) {
            snprintf(path, sizeof path, "/v1/jobs/%lld/output?%soffset=%" PRIu64, id, stream,
                     offset);
            int arc =
                api_client_request(c->api, "GET", path, NULL, out, &r, &failure, err, sizeof err);
            offset += r.streamed; /* counts what reached stdout even when the transfer broke */
            fflush(out);
            if (arc == 0) break;
            bool stop;
            if ((rc = retry_failed(&rt, arc, failure, err, &stop)) != 0 || stop) goto done;
        }
        retry_succeeded(&rt);
        if (r.status < 200 || r.status > 299) {
            rc = report_refusal(c, &r);
            goto done;
        }
    }
done:
    api_client_response_close(&r);
    if (esc != NULL && fclose(esc) == EOF && rc == 0) rc = EXIT_REFUSED;
    if (as_json) {
        char state[32] = "";
        fclose(out);
        if (rc == 0 && (rc = fetch_state(c, id, state, sizeof state)) == 0) {
            json_t *o = json_pack("{s:I,s:s,s:s%}", "id", (json_int_t)id, "state", state, "output",
                                  captured ? captured : "", captured_len);
            if (o == NULL) {
                print_error("job %lld's output is not valid UTF-8 text, so it cannot be shown as "
                            "JSON; run antenna logs %lld without --json",
                            id, id);
                rc = EXIT_REFUSED;
            } else {
                rc = print_json(o);
                json_decref(o);
            }
        }
        free(captured);
    }
    return rc;
}

/* ---- admin ---- */

/* Prints a list answer's array `key` as a table of `fields`, or `empty` when it is empty. */
static int print_list(const json_t *j, const char *key, size_t ncols, const char *const *headers,
                      const char *const *fields, const char *empty)
{
    json_t *list = json_object_get(j, key);
    if (!json_is_array(list)) {
        print_error("the server's answer has no \"%s\" list", key);
        return EXIT_REFUSED;
    }
    if (json_array_size(list) == 0) {
        printf("%s\n", empty);
        return 0;
    }
    table *t = table_new(ncols, headers);
    if (t == NULL) return EXIT_REFUSED;
    int rc = 0;
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        char cells[8][80];
        const char *row[8];
        for (size_t k = 0; k < ncols && k < 8; k++) {
            json_t *v = json_object_get(item, fields[k]);
            size_t fl = strlen(fields[k]);
            if (json_is_string(v) && fl > 3 && strcmp(fields[k] + fl - 3, "_at") == 0)
                table_time_local(json_string_value(v), false, cells[k], sizeof cells[k]);
            else if (json_is_string(v))
                snprintf(cells[k], sizeof cells[k], "%s", json_string_value(v));
            else if (json_is_integer(v))
                snprintf(cells[k], sizeof cells[k], "%lld", (long long)json_integer_value(v));
            else if (json_is_true(v))
                snprintf(cells[k], sizeof cells[k], "yes");
            else
                cells[k][0] = '\0';
            row[k] = cells[k];
        }
        if (table_add_row(t, row) != 0) {
            rc = EXIT_REFUSED;
            goto done;
        }
    }
    if (table_print(t, stdout) != 0) rc = EXIT_REFUSED;
done:
    table_free(t);
    return rc;
}

/* GETs a list and prints it (or its JSON). */
static int run_list(cli *c, args *a, const char *path, const char *key, size_t ncols,
                    const char *const *headers, const char *const *fields, const char *empty)
{
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    int rc = call(c, "GET", path, NULL, NULL, &r, &j);
    if (rc == 0)
        rc = a->given[OPT_JSON] ? print_json(j) : print_list(j, key, ncols, headers, fields, empty);
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

/* Sends `method` with `body` (reference stolen; NULL means out of memory) and returns the
 * answer's JSON in *out. */
static int send_body(cli *c, const char *method, const char *path, json_t *body, json_t **out)
{
    if (body == NULL) {
        print_error("out of memory");
        return EXIT_REFUSED;
    }
    api_client_response r;
    api_client_response_init(&r);
    int rc = call(c, method, path, body, NULL, &r, out);
    json_decref(body);
    api_client_response_close(&r);
    return rc;
}

static int post(cli *c, const char *path, json_t *body, json_t **out)
{
    return send_body(c, "POST", path, body, out);
}

static const command cmd_partner_add, cmd_partner_show, cmd_partner_set, cmd_user_add,
    cmd_user_list, cmd_quota, cmd_quota_set;

static int check_ident(const command *cmd, const char *what, const char *s)
{
    if (jobreq_ident_valid(s)) return 0;
    return usage_error(cmd,
                       "invalid %s '%s': use 1 to 63 letters, digits, '.', '_' or '-', not "
                       "starting with '.' or '-'",
                       what, s);
}

/* Adds --description and --share, when given, to `body` as description and share_weight.
 * Returns 0, or EXIT_USAGE (message printed) / EXIT_REFUSED (out of memory). */
static int add_partner_fields(const command *cmd, const args *a, json_t *body)
{
    if (a->given[OPT_SHARE]) {
        long long share;
        if (parse_id(a->value[OPT_SHARE], &share) != 0 || share > INT_MAX)
            return usage_error(cmd, "--share must be a whole number from 1 to %d (got '%s')",
                               INT_MAX, a->value[OPT_SHARE]);
        if (json_object_set_new(body, "share_weight", json_integer(share)) != 0) {
            print_error("out of memory");
            return EXIT_REFUSED;
        }
    }
    if (a->given[OPT_DESCRIPTION]) {
        json_t *d = json_string(a->value[OPT_DESCRIPTION]);
        if (d == NULL) return usage_error(cmd, "the description must be UTF-8 text");
        if (json_object_set_new(body, "description", d) != 0) {
            print_error("out of memory");
            return EXIT_REFUSED;
        }
    }
    return 0;
}

static int run_partner_add(cli *c, args *a)
{
    int rc = check_ident(&cmd_partner_add, "partner name", a->pos[0]);
    if (rc != 0) return rc;
    json_t *body = json_pack("{s:s}", "name", a->pos[0]);
    if (body == NULL) {
        print_error("out of memory");
        return EXIT_REFUSED;
    }
    if ((rc = add_partner_fields(&cmd_partner_add, a, body)) != 0) {
        json_decref(body);
        return rc;
    }
    json_t *j = NULL;
    rc = post(c, "/v1/partners", body, &j);
    if (rc == 0) {
        json_t *share = json_object_get(j, "share_weight");
        if (a->given[OPT_JSON])
            rc = print_json(j);
        else if (json_is_integer(share))
            printf("Partner %s added (share weight %lld).\n", a->pos[0],
                   (long long)json_integer_value(share));
        else
            printf("Partner %s added.\n", a->pos[0]);
    }
    json_decref(j);
    return rc;
}

static int run_partner_list(cli *c, args *a)
{
    static const char *const headers[] = {"NAME", "SHARE", "DESCRIPTION", "CREATED"};
    static const char *const fields[] = {"name", "share_weight", "description", "created_at"};
    return run_list(c, a, "/v1/partners", "partners", 4, headers, fields,
                    "No partners yet. Add one with: antenna partner add NAME");
}

static int run_partner_show(cli *c, args *a)
{
    int rc = check_ident(&cmd_partner_show, "partner name", a->pos[0]);
    if (rc != 0) return rc;
    char path[128];
    snprintf(path, sizeof path, "/v1/partners/%s", a->pos[0]);
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    rc = call(c, "GET", path, NULL, NULL, &r, &j);
    if (rc == 0) {
        if (a->given[OPT_JSON])
            rc = print_json(j);
        else if (quota_view_print_partner(stdout, j) != 0)
            rc = EXIT_REFUSED;
    }
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

static int run_partner_set(cli *c, args *a)
{
    const command *cmd = &cmd_partner_set;
    int rc = check_ident(cmd, "partner name", a->pos[0]);
    if (rc != 0) return rc;
    if (!a->given[OPT_SHARE] && !a->given[OPT_DESCRIPTION])
        return usage_error(cmd, "nothing to set: give --share N and/or --description TEXT");
    json_t *body = json_object();
    if (body == NULL) {
        print_error("out of memory");
        return EXIT_REFUSED;
    }
    if ((rc = add_partner_fields(cmd, a, body)) != 0) {
        json_decref(body);
        return rc;
    }
    char path[128];
    snprintf(path, sizeof path, "/v1/partners/%s", a->pos[0]);
    json_t *j = NULL;
    rc = send_body(c, "PATCH", path, body, &j);
    if (rc == 0) {
        if (a->given[OPT_JSON]) {
            rc = print_json(j);
        } else {
            json_t *share = json_object_get(j, "share_weight");
            const char *desc = json_string_value(json_object_get(j, "description"));
            char d[256] = "";
            for (size_t k = 0; desc && desc[k] && k + 1 < sizeof d; k++)
                d[k] = ((unsigned char)desc[k] < 0x20 || desc[k] == 0x7f) ? ' ' : desc[k];
            printf("Partner %s updated", a->pos[0]);
            if (json_is_integer(share))
                printf(": share weight %lld", (long long)json_integer_value(share));
            if (desc != NULL)
                printf("%s description \"%s\"", json_is_integer(share) ? "," : ":", d);
            printf(".\n");
        }
    }
    json_decref(j);
    return rc;
}

static bool one_of(const char *s, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(s, *list) == 0) return true;
    return false;
}

static int run_user_add(cli *c, args *a)
{
    static const char *const categories[] = {"sme", "researcher", "institution", NULL};
    static const char *const roles[] = {"user", "manager", "staff", "admin", "auditor", NULL};
    const command *cmd = &cmd_user_add;
    int rc;
    if ((rc = check_ident(cmd, "user name", a->pos[0])) != 0) return rc;
    if (!a->given[OPT_PARTNER]) return usage_error(cmd, "--partner is required");
    if (!a->given[OPT_CATEGORY])
        return usage_error(cmd,
                           "--category is required: sme, researcher or institution (the kind of "
                           "organisation the user works for)");
    if (!one_of(a->value[OPT_CATEGORY], categories))
        return usage_error(cmd, "--category must be sme, researcher or institution (got '%s')",
                           a->value[OPT_CATEGORY]);
    if (!a->given[OPT_UNIX_USER]) return usage_error(cmd, "--unix-user is required");
    const char *role = a->given[OPT_ROLE] ? a->value[OPT_ROLE] : "user";
    if (!one_of(role, roles))
        return usage_error(cmd, "--role must be user, manager, staff, admin or auditor (got '%s')",
                           role);
    if ((rc = check_ident(cmd, "partner name", a->value[OPT_PARTNER])) != 0 ||
        (rc = check_ident(cmd, "Unix user", a->value[OPT_UNIX_USER])) != 0)
        return rc;
    json_t *j = NULL;
    rc = post(c, "/v1/users",
              json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", a->pos[0], "partner",
                        a->value[OPT_PARTNER], "unix_user", a->value[OPT_UNIX_USER], "category",
                        a->value[OPT_CATEGORY], "role", role),
              &j);
    if (rc == 0) {
        if (a->given[OPT_JSON])
            rc = print_json(j);
        else
            printf("User %s added (partner %s, category %s, Unix account %s, role %s).\n",
                   a->pos[0], a->value[OPT_PARTNER], a->value[OPT_CATEGORY],
                   a->value[OPT_UNIX_USER], role);
    }
    json_decref(j);
    return rc;
}

static int run_user_list(cli *c, args *a)
{
    static const char *const headers[] = {"NAME", "PARTNER", "UNIX_USER", "CATEGORY",
                                          "ROLE", "CREATED", "DISABLED"};
    static const char *const fields[] = {"name", "partner",    "unix_user", "category",
                                         "role", "created_at", "disabled"};
    char path[128] = "/v1/users";
    char empty[192] = "No users yet. Add one with: antenna user add NAME --partner P "
                      "--category C --unix-user U";
    if (a->given[OPT_PARTNER]) {
        int rc = check_ident(&cmd_user_list, "partner name", a->value[OPT_PARTNER]);
        if (rc != 0) return rc;
        snprintf(path, sizeof path, "/v1/users?partner=%s", a->value[OPT_PARTNER]);
        snprintf(empty, sizeof empty, "No users in partner %s.", a->value[OPT_PARTNER]);
    }
    return run_list(c, a, path, "users", 7, headers, fields, empty);
}

/* ---- quotas ---- */

/* Prints one quota object (the answer of PATCH /v1/quotas/...) like `antenna quota`. Returns 0
 * or the exit status. */
static int print_one_quota(json_t *quota)
{
    json_t *list = json_array();
    if (list == NULL || json_array_append(list, quota) != 0) {
        json_decref(list);
        print_error("out of memory");
        return EXIT_REFUSED;
    }
    int rc = quota_view_print_table(stdout, list);
    json_decref(list);
    return rc < 0 ? EXIT_REFUSED : 0;
}

static int run_quota(cli *c, args *a)
{
    const command *cmd = &cmd_quota;
    const char *partner = a->npos > 0 ? a->pos[0] : NULL;
    const char *period = a->given[OPT_PERIOD] ? a->value[OPT_PERIOD] : NULL;
    int rc;
    if (partner != NULL && (rc = check_ident(cmd, "partner name", partner)) != 0) return rc;
    if (period != NULL && !quota_args_period_valid(period, 1))
        return usage_error(cmd, "--period must be YYYY-MM, e.g. 2026-11, or current (got '%s')",
                           period);
    if (period != NULL && strcmp(period, "current") == 0) period = NULL;
    char path[160];
    snprintf(path, sizeof path, "/v1/quotas%s%s%s%s", partner ? "?partner=" : "",
             partner ? partner : "", period ? (partner ? "&period=" : "?period=") : "",
             period ? period : "");
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    rc = call(c, "GET", path, NULL, NULL, &r, &j);
    if (rc != 0) goto done;
    if (a->given[OPT_JSON]) {
        rc = print_json(j);
        goto done;
    }
    json_t *quotas = json_object_get(j, "quotas");
    if (!json_is_array(quotas)) {
        print_error("the server's answer has no \"quotas\" list");
        rc = EXIT_REFUSED;
    } else if (json_array_size(quotas) == 0) {
        if (partner != NULL)
            printf("No quota for partner %s.\n", partner);
        else
            printf("No quotas: there are no partners yet.\n");
    } else if (quota_view_print_table(stdout, quotas) < 0) {
        rc = EXIT_REFUSED;
    }
done:
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

static int run_quota_set(cli *c, args *a)
{
    const command *cmd = &cmd_quota_set;
    const char *partner = a->pos[0];
    const char *period = a->given[OPT_PERIOD] ? a->value[OPT_PERIOD] : "current";
    int rc = check_ident(cmd, "partner name", partner);
    if (rc != 0) return rc;
    if (!quota_args_period_valid(period, 1))
        return usage_error(cmd, "--period must be YYYY-MM, e.g. 2026-11, or current (got '%s')",
                           period);
    char err[512];
    if (quota_args_check(&a->quota, err, sizeof err) != 0) return usage_error(cmd, "%s", err);
    char path[160];
    snprintf(path, sizeof path, "/v1/quotas/%s/%s", partner, period);
    json_t *j = NULL;
    rc = send_body(c, "PATCH", path, json_incref((json_t *)quota_args_body(&a->quota)), &j);
    if (rc == 0) rc = a->given[OPT_JSON] ? print_json(j) : print_one_quota(j);
    json_decref(j);
    return rc;
}

static const command cmd_token_create, cmd_user_set, cmd_user_disable, cmd_user_enable;

/* PATCH /v1/users/NAME with `body` (taken), printing the user's new state. */
static int user_patch(cli *c, const command *cmd, args *a, json_t *body, const char *done)
{
    int rc = check_ident(cmd, "user name", a->pos[0]);
    if (rc != 0) {
        json_decref(body);
        return rc;
    }
    char path[128];
    snprintf(path, sizeof path, "/v1/users/%s", a->pos[0]);
    json_t *j = NULL;
    rc = send_body(c, "PATCH", path, body, &j);
    if (rc == 0) {
        if (a->given[OPT_JSON])
            rc = print_json(j);
        else
            printf("User %s %s (Unix account %s%s).\n", a->pos[0], done,
                   json_string_value(json_object_get(j, "unix_user"))
                       ? json_string_value(json_object_get(j, "unix_user"))
                       : "?",
                   json_is_true(json_object_get(j, "disabled")) ? ", disabled" : "");
    }
    json_decref(j);
    return rc;
}

static int run_user_set(cli *c, args *a)
{
    if (!a->given[OPT_UNIX_USER]) return usage_error(&cmd_user_set, "--unix-user is required");
    int rc = check_ident(&cmd_user_set, "Unix user", a->value[OPT_UNIX_USER]);
    if (rc != 0) return rc;
    return user_patch(c, &cmd_user_set, a, json_pack("{s:s}", "unix_user", a->value[OPT_UNIX_USER]),
                      "changed");
}

static int run_user_disable(cli *c, args *a)
{
    return user_patch(c, &cmd_user_disable, a, json_pack("{s:b}", "disabled", 1),
                      "disabled: its tokens are refused from now on");
}

static int run_user_enable(cli *c, args *a)
{
    return user_patch(c, &cmd_user_enable, a, json_pack("{s:b}", "disabled", 0), "enabled");
}

/* --expires: a lifetime "N" (seconds) or "N" followed by s, m, h, d or w, set as "expires_in";
 * or a UTC date "YYYY-MM-DD" or time "YYYY-MM-DDTHH:MM:SSZ", set as "expires_at". Returns 0 or
 * -EINVAL. */
static int expires_set(json_t *body, const char *v)
{
    if (v[0] >= '0' && v[0] <= '9' && strchr(v, '-') == NULL) {
        char *end = NULL;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        long long unit = 1;
        if (errno != 0 || end == v || n <= 0) return -EINVAL;
        if (*end != '\0') {
            const char *units = "smhdw";
            static const long long secs[] = {1, 60, 3600, 86400, 7 * 86400};
            const char *u = strchr(units, *end);
            if (u == NULL || end[1] != '\0') return -EINVAL;
            unit = secs[u - units];
        }
        if (n > 100LL * 365 * 86400 / unit) return -EINVAL;
        return json_object_set_new(body, "expires_in", json_integer(n * unit)) == 0 ? 0 : -EINVAL;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(v, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0') {
        memset(&tm, 0, sizeof tm);
        end = strptime(v, "%Y-%m-%d", &tm);
        if (end == NULL || *end != '\0') return -EINVAL;
    }
    return json_object_set_new(body, "expires_at", json_string(v)) == 0 ? 0 : -EINVAL;
}

static int run_token_create(cli *c, args *a)
{
    if (!a->given[OPT_USER]) return usage_error(&cmd_token_create, "--user is required");
    json_t *body = json_pack("{s:s}", "user", a->value[OPT_USER]);
    if (body && a->given[OPT_EXPIRES] && expires_set(body, a->value[OPT_EXPIRES]) < 0) {
        json_decref(body);
        return usage_error(&cmd_token_create,
                           "--expires must be a lifetime like 3600, 90m, 12h, 30d or 2w, or a UTC "
                           "date YYYY-MM-DD (got '%s')",
                           a->value[OPT_EXPIRES]);
    }
    if (body && a->given[OPT_LABEL] &&
        json_object_set_new(body, "label", json_string(a->value[OPT_LABEL])) != 0) {
        json_decref(body);
        print_error("the label must be UTF-8 text");
        return EXIT_USAGE;
    }
    json_t *j = NULL;
    int rc = post(c, "/v1/tokens", body, &j);
    if (rc == 0) {
        const char *token = json_string_value(json_object_get(j, "token"));
        if (a->given[OPT_JSON]) {
            rc = print_json(j);
        } else if (token == NULL || token[0] == '\0' ||
                   token[strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789_-.~+/=")] != '\0') {
            print_error("the server's answer holds no usable token");
            rc = EXIT_REFUSED;
        } else {
            printf("%s\n", token);
            fflush(stdout);
            json_t *tid = json_object_get(j, "id");
            const char *exp = json_string_value(json_object_get(j, "expires_at"));
            fprintf(stderr,
                    "antenna: token %lld created for %s (expires %s); it is shown only this "
                    "once, keep it safe\n",
                    json_is_integer(tid) ? (long long)json_integer_value(tid) : 0LL,
                    a->value[OPT_USER], exp ? exp : "never");
        }
    }
    json_decref(j);
    return rc;
}

static int run_token_list(cli *c, args *a)
{
    static const char *const headers[] = {"ID", "USER", "LABEL", "CREATED", "EXPIRES", "REVOKED"};
    static const char *const fields[] = {"id",         "user",       "label",
                                         "created_at", "expires_at", "revoked_at"};
    return run_list(c, a, "/v1/tokens", "tokens", 6, headers, fields,
                    "No tokens yet. Create one with: antenna token create --user NAME");
}

static int run_token_revoke(cli *c, args *a)
{
    long long id;
    int rc = job_id_arg(&cmd_token_revoke, a, &id);
    if (rc != 0) return rc;
    char path[64];
    snprintf(path, sizeof path, "/v1/tokens/%lld", id);
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    rc = call(c, "DELETE", path, NULL, NULL, &r, &j);
    if (rc == 0) {
        if (a->given[OPT_JSON])
            rc = print_json(j);
        else
            printf("Token %lld revoked.\n", id);
    }
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

/* ---- usage, statements, audit ---- */

static const command cmd_usage, cmd_report, cmd_audit, cmd_audit_verify, cmd_audit_checkpoint,
    cmd_audit_public_key;

/* Appends "?key=value" or "&key=value" to the query path[len], the value percent-encoded (all
 * but RFC 3986's unreserved characters). Returns 0, or -ENAMETOOLONG when it does not fit. */
static int add_query(char *path, size_t len, const char *key, const char *value)
{
    size_t n = strlen(path);
    int w = snprintf(path + n, len - n, "%c%s=", strchr(path, '?') ? '&' : '?', key);
    if (w < 0 || (size_t)w >= len - n) return -ENAMETOOLONG;
    n += (size_t)w;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (n + (plain ? 1 : 3) >= len) return -ENAMETOOLONG;
        if (plain)
            path[n++] = (char)*p;
        else
            n += (size_t)snprintf(path + n, len - n, "%%%02X", *p);
    }
    path[n] = '\0';
    return 0;
}

/* Picks the --format value (or json for --json) among `allowed` (NULL-terminated; the first is
 * the default). Returns 0 with *format set, or EXIT_USAGE (message printed). */
static int pick_format(const command *cmd, const args *a, const char *const *allowed,
                       const char **format)
{
    const char *f = a->given[OPT_FORMAT] ? a->value[OPT_FORMAT] : allowed[0];
    if (a->given[OPT_JSON]) {
        if (a->given[OPT_FORMAT] && strcmp(f, "json") != 0)
            return usage_error(cmd, "--json and --format %s cannot be combined", f);
        f = "json";
    }
    for (const char *const *k = allowed; *k != NULL; k++)
        if (strcmp(f, *k) == 0) {
            *format = *k;
            return 0;
        }
    char list[128] = "";
    for (const char *const *k = allowed; *k != NULL; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 k == allowed   ? ""
                 : k[1] == NULL ? " or "
                                : ", ",
                 *k);
    return usage_error(cmd, "--format must be %s (got '%s')", list, f);
}

/* Writes `len` bytes of `data` to stdout, or to the file `path` (created or replaced) when it is
 * non-NULL, ending with a newline when `newline` and the data lacks one. Returns 0 or the exit
 * status (message printed). */
static int write_output(const char *path, const char *data, size_t len, bool newline)
{
    FILE *f = path ? fopen(path, "w") : stdout;
    if (f == NULL) {
        print_error("cannot write %s: %s", path, strerror(errno));
        return EXIT_USAGE;
    }
    fwrite(data, 1, len, f);
    if (newline && (len == 0 || data[len - 1] != '\n')) fputc('\n', f);
    int bad = path ? fclose(f) != 0 : (fflush(f) != 0 || ferror(f));
    if (bad && path != NULL) {
        print_error("cannot write %s: %s", path, strerror(errno));
        return EXIT_USAGE;
    }
    return bad ? EXIT_REFUSED : 0;
}

static int run_usage(cli *c, args *a)
{
    static const char *const bys[] = {"partner", "user",  "category", "gpu-type",
                                      "day",     "month", NULL};
    static const char *const formats[] = {"table", "csv", "json", NULL};
    const command *cmd = &cmd_usage;
    const char *by = a->given[OPT_BY] ? a->value[OPT_BY] : "partner";
    const char *format, *from = a->value[OPT_FROM], *to = a->value[OPT_TO];
    int rc;
    if (!one_of(by, bys))
        return usage_error(cmd,
                           "--by must be partner, user, category, gpu-type, day or month "
                           "(got '%s')",
                           by);
    if ((rc = pick_format(cmd, a, formats, &format)) != 0) return rc;
    if (a->given[OPT_PARTNER] && (rc = check_ident(cmd, "partner name", a->value[OPT_PARTNER])))
        return rc;
    if (a->given[OPT_USER] && (rc = check_ident(cmd, "user name", a->value[OPT_USER]))) return rc;
    if (from != NULL && !usage_view_date_valid(from))
        return usage_error(cmd, "--from must be a date YYYY-MM-DD, e.g. 2026-11-01 (got '%s')",
                           from);
    if (to != NULL && !usage_view_date_valid(to))
        return usage_error(cmd, "--to must be a date YYYY-MM-DD, e.g. 2026-12-01 (got '%s')", to);
    if (from != NULL && to != NULL && strcmp(from, to) >= 0)
        return usage_error(cmd, "--to must come after --from (--from is inclusive, --to exclusive: "
                                "a whole November is --from 2026-11-01 --to 2026-12-01)");
    char path[512] = "/v1/usage";
    add_query(path, sizeof path, "by", by);
    if (a->given[OPT_PARTNER]) add_query(path, sizeof path, "partner", a->value[OPT_PARTNER]);
    if (a->given[OPT_USER]) add_query(path, sizeof path, "user", a->value[OPT_USER]);
    if (from != NULL) add_query(path, sizeof path, "from", from);
    if (to != NULL) add_query(path, sizeof path, "to", to);
    c->forbidden_hint = "users see their own usage, managers their partner's; staff, admin and "
                        "auditor tokens see everyone's (try without --partner or --user)";
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    rc = call(c, "GET", path, NULL, NULL, &r, &j);
    if (rc != 0) goto done;
    if (strcmp(format, "json") == 0) {
        rc = write_output(NULL, r.body, r.body_len, true);
        goto done;
    }
    json_t *rows = json_object_get(j, "rows");
    if (strcmp(format, "table") == 0 && json_is_array(rows) && json_array_size(rows) == 0) {
        printf("No usage was charged%s%s%s%s%s%s%s%s.\n",
               a->given[OPT_PARTNER] ? " to partner " : "",
               a->given[OPT_PARTNER] ? a->value[OPT_PARTNER] : "",
               a->given[OPT_USER] ? " to user " : "", a->given[OPT_USER] ? a->value[OPT_USER] : "",
               from ? " from " : "", from ? from : "", to ? " until " : "", to ? to : "");
        goto done;
    }
    int vrc = strcmp(format, "csv") == 0 ? usage_view_print_csv(stdout, j, by)
                                         : usage_view_print_table(stdout, j, by);
    if (vrc == -EINVAL) print_error("the server's answer has no \"rows\" list");
    if (vrc < 0) rc = EXIT_REFUSED;
done:
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

static int run_report(cli *c, args *a)
{
    static const char *const formats[] = {"html", "csv", "json", NULL};
    const command *cmd = &cmd_report;
    const char *format, *partner = a->value[OPT_PARTNER], *month = a->value[OPT_MONTH];
    const char *output = a->value[OPT_OUTPUT];
    int rc;
    if (partner == NULL) return usage_error(cmd, "--partner is required");
    if ((rc = check_ident(cmd, "partner name", partner)) != 0) return rc;
    if (month == NULL) return usage_error(cmd, "--month is required, e.g. --month 2026-11");
    if (!quota_args_period_valid(month, 0))
        return usage_error(cmd, "--month must be YYYY-MM, e.g. 2026-11 (got '%s')", month);
    if ((rc = pick_format(cmd, a, formats, &format)) != 0) return rc;
    if (output != NULL && output[0] == '\0') return usage_error(cmd, "--output needs a file name");
    char path[160];
    snprintf(path, sizeof path, "/v1/reports/%s/%s", partner, month);
    c->forbidden_hint = "statements are for managers (their own partner), staff, admin and "
                        "auditor tokens";
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    char *text = NULL;
    size_t len = 0;
    rc = call(c, "GET", path, NULL, NULL, &r, &j);
    if (rc != 0) goto done;
    if (strcmp(format, "json") == 0) {
        rc = write_output(output, r.body, r.body_len, true);
    } else {
        FILE *mem = open_memstream(&text, &len);
        if (mem == NULL) {
            print_error("out of memory");
            rc = EXIT_REFUSED;
            goto done;
        }
        int vrc = strcmp(format, "html") == 0 ? report_view_print_html(mem, j)
                                              : report_view_print_csv(mem, j);
        if (fclose(mem) != 0 && vrc >= 0) vrc = -ENOMEM;
        if (vrc == -EINVAL) {
            print_error("the server's answer is not a statement (it has no %s); does this "
                        "antennad support statements?",
                        strcmp(format, "html") == 0 ? "\"month\" YYYY-MM" : "\"jobs\" list");
            rc = EXIT_REFUSED;
        } else if (vrc < 0) {
            print_error("out of memory");
            rc = EXIT_REFUSED;
        } else {
            rc = write_output(output, text, len, false);
        }
    }
    if (rc == 0 && output != NULL)
        fprintf(stderr, "antenna: statement for %s, %s written to %s (%s)\n", partner, month,
                output, format);
done:
    free(text);
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

/* Parses a whole number 0..LLONG_MAX. Returns 0 or -EINVAL. */
static int parse_count(const char *s, long long *out)
{
    if (s != NULL && strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    return parse_id(s, out);
}

static int run_audit(cli *c, args *a)
{
    static const char *const formats[] = {"table", "json", NULL};
    const command *cmd = &cmd_audit;
    const char *format, *since = a->value[OPT_SINCE];
    int rc;
    if ((rc = pick_format(cmd, a, formats, &format)) != 0) return rc;
    long long n;
    if (since != NULL && !usage_view_date_valid(since) && parse_count(since, &n) != 0)
        return usage_error(cmd,
                           "--since must be a date YYYY-MM-DD or a Unix time in seconds (got "
                           "'%s')",
                           since);
    if (a->given[OPT_ACTOR] && a->value[OPT_ACTOR][0] == '\0')
        return usage_error(cmd, "--actor needs a user name");
    if (a->given[OPT_ACTION] && a->value[OPT_ACTION][0] == '\0')
        return usage_error(cmd, "--action needs an action, e.g. job.submitted or job.");
    char path[512] = "/v1/audit";
    bool fits = true;
    if (since != NULL) fits = fits && add_query(path, sizeof path, "since", since) == 0;
    if (a->given[OPT_ACTOR])
        fits = fits && add_query(path, sizeof path, "actor", a->value[OPT_ACTOR]) == 0;
    if (a->given[OPT_ACTION])
        fits = fits && add_query(path, sizeof path, "action", a->value[OPT_ACTION]) == 0;
    if (a->given[OPT_AFTER]) {
        if (parse_count(a->value[OPT_AFTER], &n) != 0)
            return usage_error(cmd, "--after must be an entry number (SEQ), 0 or more (got '%s')",
                               a->value[OPT_AFTER]);
        fits = fits && add_query(path, sizeof path, "after", a->value[OPT_AFTER]) == 0;
    }
    if (a->given[OPT_LIMIT]) {
        if (parse_id(a->value[OPT_LIMIT], &n) != 0 || n > 100000)
            return usage_error(cmd, "--limit must be a whole number from 1 to 100000 (got '%s')",
                               a->value[OPT_LIMIT]);
        fits = fits && add_query(path, sizeof path, "limit", a->value[OPT_LIMIT]) == 0;
    }
    if (!fits) return usage_error(cmd, "--actor or --action is too long");
    c->forbidden_hint = "the audit trail needs an admin or auditor token";
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    rc = call(c, "GET", path, NULL, NULL, &r, &j);
    if (rc != 0) goto done;
    if (strcmp(format, "json") == 0) {
        rc = write_output(NULL, r.body, r.body_len, true);
        goto done;
    }
    json_t *entries = json_object_get(j, "entries");
    if (!json_is_array(entries)) {
        print_error("the server's answer has no \"entries\" list");
        rc = EXIT_REFUSED;
    } else if (json_array_size(entries) == 0) {
        printf("No audit entries match.\n");
    } else if (audit_view_print_table(stdout, entries, AUDIT_VIEW_DETAILS_WIDTH) < 0) {
        rc = EXIT_REFUSED;
    }
done:
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

/* Reads the small file `path` (at most 64 KiB) into a malloc'd NUL-terminated *out. Returns 0, or
 * prints why not and returns EXIT_USAGE. */
static int read_small_file(const char *what, const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        print_error("cannot read the %s %s: %s", what, path, strerror(errno));
        return EXIT_USAGE;
    }
    size_t cap = 64 * 1024;
    char *buf = malloc(cap + 1);
    size_t n = buf ? fread(buf, 1, cap + 1, f) : 0;
    bool bad = buf == NULL || ferror(f) || n > cap;
    fclose(f);
    if (bad) {
        print_error("cannot read the %s %s: %s", what, path,
                    buf == NULL ? "out of memory"
                    : n > cap   ? "larger than 64 KiB"
                                : "read error");
        free(buf);
        return EXIT_USAGE;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* `antenna audit verify --checkpoint FILE --public-key FILE`: the kept checkpoint's signature
 * with the pinned key, then whether the chain still holds its entry. Returns 0, 1 (the checkpoint
 * does not hold), or another exit status. */
static int check_checkpoint(cli *c, args *a)
{
    const char *cp_path = a->value[OPT_CHECKPOINT], *key_path = a->value[OPT_PUBLIC_KEY];
    if (key_path == NULL)
        return usage_error(&cmd_audit_verify,
                           "--checkpoint needs --public-key FILE: the broker's public key that "
                           "you pinned (antenna audit public-key > FILE, kept with your "
                           "checkpoints)");
    char *cp_text = NULL, *pem = NULL, why[512];
    int rc = read_small_file("checkpoint", cp_path, &cp_text);
    if (rc == 0) rc = read_small_file("public key", key_path, &pem);
    json_error_t jerr;
    json_t *cp = rc == 0 ? json_loads(cp_text, 0, &jerr) : NULL;
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    if (rc != 0) goto done;
    if (cp == NULL) {
        print_error("the checkpoint %s is not JSON (line %d: %s)", cp_path, jerr.line, jerr.text);
        rc = EXIT_USAGE;
        goto done;
    }
    int v = audit_view_checkpoint_check(cp, pem, why, sizeof why);
    if (v < 0) {
        print_error("%s: %s", key_path, why);
        rc = EXIT_USAGE;
        goto done;
    }
    if (v == 1) {
        printf("checkpoint %s REFUSED: %s\n", cp_path, why);
        rc = EXIT_REFUSED;
        goto done;
    }
    long long seq = (long long)json_integer_value(json_object_get(cp, "seq"));
    char path[96];
    snprintf(path, sizeof path, "/v1/audit?after=%lld&limit=1", seq - 1);
    if ((rc = call(c, "GET", path, NULL, NULL, &r, &j)) != 0) goto done;
    if (audit_view_checkpoint_in_chain(cp, json_object_get(j, "entries"), why, sizeof why) != 0) {
        printf("checkpoint %s FAILED: %s\n", cp_path, why);
        rc = EXIT_REFUSED;
        goto done;
    }
    printf("checkpoint OK: entry %lld (signed %s by key %s) is still in the chain\n", seq,
           json_string_value(json_object_get(cp, "at"))
               ? json_string_value(json_object_get(cp, "at"))
               : "?",
           json_string_value(json_object_get(cp, "key_id")));
done:
    json_decref(j);
    api_client_response_close(&r);
    json_decref(cp);
    free(pem);
    free(cp_text);
    return rc;
}

static int run_audit_verify(cli *c, args *a)
{
    c->forbidden_hint = "verifying the audit trail needs an admin or auditor token";
    if (a->value[OPT_PUBLIC_KEY] != NULL && a->value[OPT_CHECKPOINT] == NULL)
        return usage_error(&cmd_audit_verify, "--public-key goes with --checkpoint FILE");
    int cprc = 0;
    if (a->value[OPT_CHECKPOINT] != NULL) {
        cprc = check_checkpoint(c, a);
        if (cprc != 0 && cprc != EXIT_REFUSED) return cprc;
    }
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    int rc = call(c, "GET", "/v1/audit/verify", NULL, NULL, &r, &j);
    if (rc != 0) goto done;
    json_t *ok = json_object_get(j, "ok");
    if (!json_is_boolean(ok)) {
        print_error("the server's answer holds no verdict (no boolean \"ok\")");
        rc = EXIT_REFUSED;
    } else if (a->given[OPT_JSON]) {
        rc = write_output(NULL, r.body, r.body_len, true);
        if (rc == 0 && !json_is_true(ok)) rc = EXIT_REFUSED;
    } else {
        int vrc = audit_view_print_verify(stdout, j);
        rc = vrc < 0 ? EXIT_REFUSED : vrc; /* 0 verified, 1 broken */
    }
done:
    json_decref(j);
    api_client_response_close(&r);
    return rc != 0 ? rc : cprc;
}

static int run_audit_checkpoint(cli *c, args *a)
{
    (void)a;
    c->forbidden_hint = "audit checkpoints need an admin or auditor token";
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    int rc = call(c, "POST", "/v1/audit/checkpoint", NULL, NULL, &r, &j);
    if (rc == 0) rc = print_json(j);
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

static int run_audit_public_key(cli *c, args *a)
{
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    int rc = call(c, "GET", "/v1/audit/public-key", NULL, NULL, &r, &j);
    const char *pem = json_string_value(json_object_get(j, "pem"));
    if (rc == 0 && a->given[OPT_JSON]) {
        rc = print_json(j);
    } else if (rc == 0 && pem == NULL) {
        print_error("the server's answer holds no \"pem\" public key");
        rc = EXIT_REFUSED;
    } else if (rc == 0) {
        rc = write_output(NULL, pem, strlen(pem), true);
    }
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

/* ---- command table ---- */

/* ---- refunds, corrections and the reconciliation ---- */

static const command cmd_refund, cmd_correct, cmd_reconcile;

/* Parses an amount of hours (a number >= 0) for `opt`. Returns 0 or the usage error's status. */
static int hours_arg(const command *cmd, const char *opt, const char *s, double *out)
{
    char *end = NULL;
    double v = s ? strtod(s, &end) : -1;
    if (s == NULL || end == s || *end != '\0' || !(v >= 0) || v > 1e9)
        return usage_error(cmd, "%s must be a number of hours >= 0, e.g. 1.5 (got '%s')", opt,
                           s ? s : "");
    *out = v;
    return 0;
}

static int run_adjust(cli *c, args *a, const command *cmd, bool correct)
{
    long long id;
    double gpu = 0, cpu = 0;
    int rc = job_id_arg(cmd, a, &id);
    if (rc != 0) return rc;
    const char *reason = a->value[OPT_REASON];
    if (reason == NULL || reason[0] == '\0')
        return usage_error(cmd, "--reason is required: say why (it goes to the audit trail)");
    if (correct && !a->given[OPT_GPU_HOURS])
        return usage_error(cmd, "--gpu-hours is required: the charge the job should have");
    if (a->given[OPT_GPU_HOURS] &&
        (rc = hours_arg(cmd, "--gpu-hours", a->value[OPT_GPU_HOURS], &gpu)) != 0)
        return rc;
    if (a->given[OPT_CPU_HOURS] &&
        (rc = hours_arg(cmd, "--cpu-hours", a->value[OPT_CPU_HOURS], &cpu)) != 0)
        return rc;
    json_t *body = json_pack("{s:s}", "reason", reason);
    if (body && a->given[OPT_GPU_HOURS]) json_object_set_new(body, "gpu_hours", json_real(gpu));
    if (body && a->given[OPT_CPU_HOURS]) json_object_set_new(body, "cpu_hours", json_real(cpu));
    char path[80];
    snprintf(path, sizeof path, "/v1/jobs/%lld/%s", id, correct ? "correct" : "refund");
    c->forbidden_hint = "refunds and corrections are for staff and admin tokens";
    json_t *j = NULL;
    rc = post(c, path, body, &j);
    if (rc == 0) {
        if (a->given[OPT_JSON]) {
            rc = print_json(j);
        } else {
            json_t *adj = json_object_get(j, "adjustments");
            json_t *last = json_array_get(adj, json_array_size(adj) - 1);
            double delta = json_number_value(json_object_get(last, "gpu_hours"));
            json_t *now = json_object_get(j, "charge_gpu_hours");
            printf("Job %lld %s by %+.4f GPU-hours (%s); its charge is now %.4f GPU-hours.\n", id,
                   correct ? "corrected" : "refunded", delta, reason,
                   json_is_number(now) ? json_number_value(now) : 0.0);
        }
    }
    json_decref(j);
    return rc;
}

static int run_refund(cli *c, args *a)
{
    return run_adjust(c, a, &cmd_refund, false);
}

static int run_correct(cli *c, args *a)
{
    return run_adjust(c, a, &cmd_correct, true);
}

static int run_reconcile(cli *c, args *a)
{
    const command *cmd = &cmd_reconcile;
    const char *month = a->value[OPT_MONTH];
    if (month == NULL) return usage_error(cmd, "--month is required, e.g. --month 2026-11");
    if (!quota_args_period_valid(month, 0))
        return usage_error(cmd, "--month must be YYYY-MM, e.g. 2026-11 (got '%s')", month);
    char path[64];
    snprintf(path, sizeof path, "/v1/reconcile?month=%s", month);
    c->forbidden_hint = "reconciliation is for staff, admin and auditor tokens";
    api_client_response r;
    api_client_response_init(&r);
    json_t *j = NULL;
    int rc = call(c, "GET", path, NULL, NULL, &r, &j);
    if (rc == 0) {
        if (a->given[OPT_JSON]) {
            rc = print_json(j);
        } else if (reconcile_view_print(stdout, j) == -EINVAL) {
            print_error("the server's answer is not a reconciliation (no \"summary\")");
            rc = EXIT_REFUSED;
        }
    }
    json_decref(j);
    api_client_response_close(&r);
    return rc;
}

static const optdef submit_opts[] = {
    {"--job-name", 'J', true, OPT_JOB},
    {"--time", 't', true, OPT_JOB},
    {"--cpus-per-task", 'c', true, OPT_JOB},
    {"--gpus", 'G', true, OPT_JOB},
    {"--gres", 0, true, OPT_JOB},
    {"--mem", 0, true, OPT_JOB},
    {"--nodes", 'N', true, OPT_JOB},
    {"--ntasks", 'n', true, OPT_JOB},
    {"--ntasks-per-node", 0, true, OPT_JOB},
    {"--gpus-per-node", 0, true, OPT_JOB},
    {"--gpus-per-task", 0, true, OPT_JOB},
    {"--cpus-per-gpu", 0, true, OPT_JOB},
    {"--mem-per-gpu", 0, true, OPT_JOB},
    {"--mem-per-cpu", 0, true, OPT_JOB},
    {"--partition", 'p', true, OPT_JOB},
    {"--output", 'o', true, OPT_JOB},
    {"--error", 'e', true, OPT_JOB},
    {"--export", 0, true, OPT_JOB},
    {"--chdir", 'D', true, OPT_JOB},
    {"--signal", 0, true, OPT_JOB},
    {"--exclusive", 0, false, OPT_JOB},
    {"--constraint", 'C', true, OPT_JOB},
    {"--requeue", 0, false, OPT_JOB},
    {"--no-requeue", 0, false, OPT_JOB},
    {"--comment", 0, true, OPT_JOB},
    {"--array", 'a', true, OPT_JOB},
    {"--dependency", 'd', true, OPT_JOB},
    {"--ignore-unsupported", 0, false, OPT_IGNORE_UNSUPPORTED},
    {"--wait", 'W', false, OPT_WAIT},
    {"--dry-run", 0, false, OPT_DRY_RUN},
    {"--json", 0, false, OPT_JSON},
    {"--idempotency-key", 0, true, OPT_IDEMPOTENCY_KEY},
    {"--retry-for", 0, true, OPT_RETRY_FOR},
    {NULL, 0, false, OPT_COUNT},
};
static const optdef json_opts[] = {{"--json", 0, false, OPT_JSON}, {NULL, 0, false, OPT_COUNT}};
static const optdef audit_verify_opts[] = {{"--json", 0, false, OPT_JSON},
                                           {"--checkpoint", 0, true, OPT_CHECKPOINT},
                                           {"--public-key", 0, true, OPT_PUBLIC_KEY},
                                           {NULL, 0, false, OPT_COUNT}};
static const optdef jobs_opts[] = {
    {"--json", 0, false, OPT_JSON}, {"--limit", 'n', true, OPT_LIMIT}, {NULL, 0, false, OPT_COUNT}};
static const optdef logs_opts[] = {{"--follow", 'f', false, OPT_FOLLOW},
                                   {"--stderr", 0, false, OPT_STDERR},
                                   {"--json", 0, false, OPT_JSON},
                                   {"--raw", 0, false, OPT_RAW},
                                   {NULL, 0, false, OPT_COUNT}};
static const optdef partner_add_opts[] = {
    {"--description", 0, true, OPT_DESCRIPTION},
    {"--share", 0, true, OPT_SHARE},
    {"--json", 0, false, OPT_JSON},
    {NULL, 0, false, OPT_COUNT},
};
static const optdef user_add_opts[] = {
    {"--partner", 0, true, OPT_PARTNER},     {"--category", 0, true, OPT_CATEGORY},
    {"--unix-user", 0, true, OPT_UNIX_USER}, {"--role", 0, true, OPT_ROLE},
    {"--json", 0, false, OPT_JSON},          {NULL, 0, false, OPT_COUNT},
};
static const optdef user_list_opts[] = {
    {"--partner", 0, true, OPT_PARTNER},
    {"--json", 0, false, OPT_JSON},
    {NULL, 0, false, OPT_COUNT},
};
static const optdef quota_opts[] = {
    {"--period", 0, true, OPT_PERIOD},
    {"--json", 0, false, OPT_JSON},
    {NULL, 0, false, OPT_COUNT},
};
static const optdef quota_set_opts[] = {
    {"--period", 0, true, OPT_PERIOD},      {"--gpu-hours", 0, true, OPT_QUOTA},
    {"--cpu-hours", 0, true, OPT_QUOTA},    {"--max-gpus", 0, true, OPT_QUOTA},
    {"--max-jobs", 0, true, OPT_QUOTA},     {"--max-queued", 0, true, OPT_QUOTA},
    {"--max-walltime", 0, true, OPT_QUOTA}, {"--user-max-gpus", 0, true, OPT_QUOTA},
    {"--json", 0, false, OPT_JSON},         {NULL, 0, false, OPT_COUNT},
};
static const optdef usage_opts[] = {
    {"--by", 0, true, OPT_BY},      {"--partner", 0, true, OPT_PARTNER},
    {"--user", 0, true, OPT_USER},  {"--from", 0, true, OPT_FROM},
    {"--to", 0, true, OPT_TO},      {"--format", 0, true, OPT_FORMAT},
    {"--json", 0, false, OPT_JSON}, {NULL, 0, false, OPT_COUNT},
};
static const optdef report_opts[] = {
    {"--partner", 0, true, OPT_PARTNER}, {"--month", 0, true, OPT_MONTH},
    {"--format", 0, true, OPT_FORMAT},   {"--output", 'o', true, OPT_OUTPUT},
    {"--json", 0, false, OPT_JSON},      {NULL, 0, false, OPT_COUNT},
};
static const optdef audit_opts[] = {
    {"--since", 0, true, OPT_SINCE},   {"--actor", 0, true, OPT_ACTOR},
    {"--action", 0, true, OPT_ACTION}, {"--after", 0, true, OPT_AFTER},
    {"--limit", 'n', true, OPT_LIMIT}, {"--format", 0, true, OPT_FORMAT},
    {"--json", 0, false, OPT_JSON},    {NULL, 0, false, OPT_COUNT},
};
static const optdef token_create_opts[] = {
    {"--user", 0, true, OPT_USER},       {"--label", 0, true, OPT_LABEL},
    {"--expires", 0, true, OPT_EXPIRES}, {"--json", 0, false, OPT_JSON},
    {NULL, 0, false, OPT_COUNT},
};
static const optdef user_set_opts[] = {
    {"--unix-user", 0, true, OPT_UNIX_USER},
    {"--json", 0, false, OPT_JSON},
    {NULL, 0, false, OPT_COUNT},
};

static const optdef refund_opts[] = {
    {"--reason", 0, true, OPT_REASON},
    {"--gpu-hours", 0, true, OPT_GPU_HOURS},
    {"--cpu-hours", 0, true, OPT_CPU_HOURS},
    {"--json", 0, false, OPT_JSON},
    {NULL, 0, false, OPT_COUNT},
};
static const optdef reconcile_opts[] = {
    {"--month", 0, true, OPT_MONTH},
    {"--json", 0, false, OPT_JSON},
    {NULL, 0, false, OPT_COUNT},
};
static const command cmd_refund = {
    NULL,
    "refund",
    "antenna refund [--gpu-hours X] [--cpu-hours Y] --reason TEXT [--json] ID",
    "Refunds an ended job (staff or admin): a negative charge entry in the job's month, so its\n"
    "partner gets the budget back and usage and the statement show it. The ledger is never\n"
    "edited. The reason goes to the audit trail (job.refunded).\n"
    "\n"
    "  --reason TEXT     why (required), e.g. \"node failure\"\n"
    "  --gpu-hours X     refund X GPU-hours (default: the whole charge); never more than\n"
    "                    what is left of the charge\n"
    "  --cpu-hours Y     refund Y CPU-hours\n"
    "  --json            print the server's job JSON with its refunds and corrections\n",
    refund_opts,
    1,
    1,
    run_refund,
};
static const command cmd_correct = {
    NULL,
    "correct",
    "antenna correct --gpu-hours X [--cpu-hours Y] --reason TEXT [--json] ID",
    "Corrects an ended job's charge to X GPU-hours (staff or admin), e.g. a lost job charged\n"
    "its full hold, to what really ran: an entry of the difference in the job's month. The\n"
    "reason goes to the audit trail (job.corrected).\n"
    "\n"
    "  --gpu-hours X     the charge the job should have (required)\n"
    "  --cpu-hours Y     the CPU-hours it should have (default: unchanged)\n"
    "  --reason TEXT     why (required)\n"
    "  --json            print the server's job JSON\n",
    refund_opts,
    1,
    1,
    run_correct,
};
static const command cmd_reconcile = {
    NULL,
    "reconcile",
    "antenna reconcile --month YYYY-MM [--json]",
    "Compares the month's ledger with the cluster's accounting (slurmdbd) job by job (staff,\n"
    "admin or auditor) and lists: charges with no record, records on Antenna's partition or\n"
    "partners' accounts with no Antenna job (escaped jobs), elapsed times that differ by more\n"
    "than one second, GPU counts that differ, jobs still held after their end, and ledger\n"
    "charges that are not what the record's elapsed time costs. Each run is\n"
    "audited (reconcile.ran); antennad also runs it daily, and the statement shows the latest.\n"
    "Without slurmdbd the server answers that the cluster keeps no accounting of record.\n"
    "\n"
    "  --month M   the month, YYYY-MM (required; up to now for the current month)\n"
    "  --json      print the server's JSON\n",
    reconcile_opts,
    0,
    0,
    run_reconcile,
};

static const command cmd_submit = {
    NULL,
    "submit",
    "antenna submit [OPTIONS] [--wait | --dry-run] [--json] SCRIPT",
    "Submits a batch script, like sbatch. The script's #SBATCH lines are read as sbatch reads\n"
    "them (only in the comment block at the top); an option Antenna does not handle is refused\n"
    "and nothing is queued, unless --ignore-unsupported (then it is warned about and skipped).\n"
    "Options given here override the script's. README.md's options table says how each one\n"
    "is charged.\n"
    "\n"
    "Job options:\n"
    "  -J, --job-name NAME       job name (default: the script's file name)\n"
    "  -t, --time TIME           wall-time limit: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S\n"
    "  -c, --cpus-per-task N     CPUs (default 1)\n"
    "  -G, --gpus [TYPE:]N       GPUs, e.g. 2 or h100:2\n"
    "      --gres gpu[:TYPE][:N] GPUs as a GRES, e.g. gpu:h100:2\n"
    "      --mem SIZE            memory per node, e.g. 8G (suffix K, M, G or T; default M)\n"
    "  -N, --nodes N|MIN-MAX     nodes (a range is held and charged at MAX)\n"
    "  -n, --ntasks N            tasks;  --ntasks-per-node N  tasks on each node\n"
    "      --gpus-per-node [TYPE:]N, --gpus-per-task [TYPE:]N, --cpus-per-gpu N\n"
    "      --mem-per-cpu SIZE, --mem-per-gpu SIZE\n"
    "  -p, --partition NAME      one of the partitions your partner may use\n"
    "  -o, --output PATTERN      stdout file in the job's folder (%j %A %a %x %u %%)\n"
    "  -e, --error PATTERN       stderr apart (antenna logs --stderr)\n"
    "      --export ALL|NONE|[ALL,]NAME=value,...  only NAME=value items travel\n"
    "  -D, --chdir DIR           a folder inside the job's folder\n"
    "      --signal [R:|B:]SIG[@SECONDS], -C/--constraint FEATURES, --no-requeue,\n"
    "      --comment TEXT, -a/--array SPEC, -d/--dependency SPEC\n"
    "      (--exclusive and --requeue are read but refused: README.md says why)\n"
    "  -a, --array SPEC          a job array, as sbatch: 0-15, 0,4,7, 0-15:4, 1-7%2 (at most\n"
    "                            2 tasks at once); each task is a job of its own, the array\n"
    "                            is admitted or refused as a whole (tasks x the cost of one)\n"
    "  -d, --dependency LIST     wait on other Antenna jobs: after:ID, afterok:ID,\n"
    "                            afternotok:ID, afterany:ID (IDs joined by ':'), singleton;\n"
    "                            conditions joined by ',' must all hold\n"
    "\n"
    "Other options:\n"
    "      --ignore-unsupported  skip #SBATCH options Antenna does not handle (warned)\n"
    "  -W, --wait                follow the job until it ends; exit with 0 if it completed,\n"
    "                            else with its exit code (or 1)\n"
    "      --dry-run             queue nothing: ask whether the job would be admitted, its\n"
    "                            maximum cost, the budget left, its queue position and what\n"
    "                            it would wait on; exit 1 if it would be refused (not with\n"
    "                            --wait)\n"
    "      --json                print the server's job JSON instead of \"Submitted job ID\"\n"
    "                            (with --wait: the final job; progress goes to stderr; with\n"
    "                            --dry-run: the quote)\n"
    "\n"
    "Retries (not with --dry-run):\n"
    "      --retry-for SECONDS   when antennad's answer is lost (connection refused, reset or\n"
    "                            timed out, empty reply) or it answers 503 (stopping, disk\n"
    "                            full), send the job again for up to SECONDS (default 60,\n"
    "                            at most 3600; 0 = never), waiting 1, 2, 4 ... 16 s between\n"
    "                            tries, or what Retry-After says (at most 30 s)\n"
    "      --idempotency-key KEY\n"
    "                            send KEY (1-255 printable ASCII characters, no spaces)\n"
    "                            instead of a fresh random one; antennad queues at most one\n"
    "                            job per key and remembers it for 24 h, so rerunning with the\n"
    "                            key of a submit that failed cannot queue the job twice\n",
    submit_opts,
    1,
    1,
    run_submit,
};
static const command cmd_jobs = {
    NULL,
    "jobs",
    "antenna jobs [--limit N] [--json]",
    "Lists the jobs your role lets you see, newest first: your own (role user), your\n"
    "partner's (manager), everyone's (staff, admin, auditor). REASON says what a queued job\n"
    "waits on (ClusterFull, PartnerGpuLimit, PartnerJobLimit, UserGpuLimit, BudgetHeld,\n"
    "BudgetExhausted, Priority, JobArrayTaskLimit) or why Slurm keeps it pending. A job\n"
    "array is one line, ID_[SPEC], with its tasks counted by state; antenna show ID lists them.\n"
    "\n"
    "  -n, --limit N   show at most N jobs (1-1000, default 100)\n"
    "      --json      print the server's JSON\n",
    jobs_opts,
    0,
    0,
    run_jobs,
};
static const command cmd_show = {
    NULL,
    "show",
    "antenna show [--json] ID | ID_TASK",
    "Shows one job as \"key: value\" lines (times in local time; for jobs that went through\n"
    "the quota engine also its period, priority while queued, GPU-hours held and charged).\n"
    "For an array's id, also its tasks (id, index, state, reason, charge); ID_TASK (e.g. 12_3)\n"
    "shows one task of array 12.\n"
    "\n"
    "  --json   print the server's job JSON\n",
    json_opts,
    1,
    1,
    run_show,
};
static const command cmd_cancel = {
    NULL,
    "cancel",
    "antenna cancel [--json] ID | ID_TASK",
    "Cancels a job: a queued job at once, a job in Slurm once Slurm confirms. An array's id\n"
    "cancels every task of the array not ended; ID_TASK (e.g. 12_3) cancels one task.\n"
    "\n"
    "  --json   print the server's job JSON\n",
    json_opts,
    1,
    1,
    run_cancel,
};
static const command cmd_logs = {
    NULL,
    "logs",
    "antenna logs [--follow | --json] [--raw] [--stderr] ID | ID_TASK",
    "Prints the job's output (stdout and stderr) so far, a chunk at a time; ID_TASK (e.g.\n"
    "12_3) is the output of one task of array 12.\n"
    "A job whose script set --error apart from --output has its stderr apart: --stderr\n"
    "prints that one.\n"
    "On a terminal, control characters the job wrote (escape sequences, other C0 and C1\n"
    "characters, DEL; not newline or tab) are shown as \\xNN so that they cannot act on the\n"
    "terminal; when stdout is not a terminal (a pipe, a file) the bytes pass unchanged.\n"
    "\n"
    "  -f, --follow   keep printing new output until the job ends\n"
    "  --json         print {\"id\", \"state\", \"output\"} as JSON instead\n"
    "  --raw          pass the bytes unchanged to a terminal too\n"
    "  --stderr       the job's stderr stream (when its --error is apart)\n",
    logs_opts,
    1,
    1,
    run_logs,
};
static const command cmd_partner_add = {
    "partner",
    "add",
    "antenna partner add [--description TEXT] [--share N] [--json] NAME",
    "Adds a partner organisation (staff or admin).\n"
    "\n"
    "  --description TEXT   free text, e.g. the organisation's full name\n"
    "  --share N            fair-share weight, a whole number >= 1 (default 1): a partner\n"
    "                       with weight 2 gets twice the share of one with weight 1\n"
    "  --json               print the server's JSON\n",
    partner_add_opts,
    1,
    1,
    run_partner_add,
};
static const command cmd_partner_list = {
    "partner",
    "list",
    "antenna partner list [--json]",
    "Lists the partner organisations with their fair-share weight (staff or admin).\n"
    "\n"
    "  --json   print the server's JSON\n",
    json_opts,
    0,
    0,
    run_partner_list,
};
static const command cmd_partner_show = {
    "partner",
    "show",
    "antenna partner show [--json] NAME",
    "Shows a partner organisation and its quota for the current period, laid out as by\n"
    "'antenna quota' (staff or admin).\n"
    "\n"
    "  --json   print the server's JSON\n",
    json_opts,
    1,
    1,
    run_partner_show,
};
static const command cmd_partner_set = {
    "partner",
    "set",
    "antenna partner set [--share N] [--description TEXT] [--json] NAME",
    "Changes a partner's fair-share weight or description (staff or admin). Give at least\n"
    "one of:\n"
    "\n"
    "  --share N            fair-share weight, a whole number >= 1\n"
    "  --description TEXT   free text\n"
    "  --json               print the server's JSON\n",
    partner_add_opts,
    1,
    1,
    run_partner_set,
};
static const command cmd_user_add = {
    "user",
    "add",
    "antenna user add --partner P --category sme|researcher|institution --unix-user U\n"
    "       [--role user|manager|staff|admin|auditor] [--json] NAME",
    "Adds a user of a partner, mapped to an unprivileged Unix account on the cluster (staff\n"
    "or admin; only an admin may add staff, admin or auditor users).\n"
    "\n"
    "  --partner P      the user's partner (required)\n"
    "  --category C     what the user is (required): sme, researcher or institution\n"
    "  --unix-user U    the Unix account jobs run as (required; never root)\n"
    "  --role ROLE      user (default: own jobs), manager (sees the partner's jobs), staff\n"
    "                   (manages partners, users and quotas), admin (everything) or\n"
    "                   auditor (reads everything, changes nothing)\n"
    "  --json           print the server's JSON\n",
    user_add_opts,
    1,
    1,
    run_user_add,
};
static const command cmd_user_list = {
    "user",
    "list",
    "antenna user list [--partner P] [--json]",
    "Lists the users with their partner, category and role (staff or admin).\n"
    "\n"
    "  --partner P   only the users of partner P\n"
    "  --json        print the server's JSON\n",
    user_list_opts,
    0,
    0,
    run_user_list,
};
static const command cmd_user_set = {
    "user",
    "set",
    "antenna user set --unix-user U [--json] NAME",
    "Maps a user to another Unix account (staff or admin; only an admin may change staff, admin\n"
    "or auditor users). The account is checked as at creation: an ordinary unprivileged account\n"
    "(uid >= UID_MIN), not the SlurmUser, munge or a denied account, and not one that serves\n"
    "another partner's users. The change is audited with the old and new account.\n"
    "\n"
    "  --unix-user U   the Unix account the user's jobs run as from now on (required)\n"
    "  --json          print the server's JSON\n",
    user_set_opts,
    1,
    1,
    run_user_set,
};
static const command cmd_user_disable = {
    "user",
    "disable",
    "antenna user disable [--json] NAME",
    "Disables a user (staff or admin): every token of the user is refused from the moment this\n"
    "returns. The user's queued and running jobs are left as they are (cancel them with antenna\n"
    "cancel if needed). Audited; undo with antenna user enable.\n"
    "\n"
    "  --json   print the server's JSON\n",
    json_opts,
    1,
    1,
    run_user_disable,
};
static const command cmd_user_enable = {
    "user",
    "enable",
    "antenna user enable [--json] NAME",
    "Enables a disabled user again (staff or admin): its tokens that are neither revoked nor\n"
    "expired work again. Audited.\n"
    "\n"
    "  --json   print the server's JSON\n",
    json_opts,
    1,
    1,
    run_user_enable,
};
static const command cmd_quota = {
    NULL,
    "quota",
    "antenna quota [--period YYYY-MM] [--json] [PARTNER]",
    "Shows the partners' quotas for a period: GPU-hour budget, used, held by running jobs and\n"
    "left, and the caps (GPUs and jobs at once, queued jobs, wall time, GPUs per user).\n"
    "Users and managers see their own partner's; staff, admins and auditors every partner's.\n"
    "\"unlimited\" means no limit; \"not set\" means no quota was set for that period (so no\n"
    "GPU budget). CPU-hour columns appear when some partner has a CPU budget. To show a\n"
    "partner called \"set\", write: antenna quota -- set. To change a quota: antenna quota set.\n"
    "\n"
    "  --period P   YYYY-MM, e.g. 2026-11 (default: the current period, also 'current')\n"
    "  --json       print the server's JSON\n",
    quota_opts,
    0,
    1,
    run_quota,
};
static const command cmd_quota_set = {
    "quota",
    "set",
    "antenna quota set [--period YYYY-MM|current] [FIELD OPTIONS] [--json] PARTNER",
    "Changes a partner's quota for a period (staff or admin); it takes effect at once on the\n"
    "queue. Only the fields given change; give at least one. Every value may be 'unlimited'.\n"
    "\n"
    "  --period P           YYYY-MM or current (default current)\n"
    "Field options:\n"
    "  --gpu-hours N        GPU-hour budget of the period, e.g. 100 or 12.5\n"
    "  --cpu-hours N        CPU-hour budget of the period\n"
    "  --max-gpus N         GPUs the partner's jobs may use at once\n"
    "  --max-jobs N         jobs the partner may run at once\n"
    "  --max-queued N       jobs the partner may have queued\n"
    "  --max-walltime TIME  longest time limit of a job: M, H:M:S, D-H, D-H:M:S...\n"
    "  --user-max-gpus N    GPUs one user of the partner may use at once\n"
    "Other options:\n"
    "  --json               print the server's JSON of the new quota\n",
    quota_set_opts,
    1,
    1,
    run_quota_set,
};
static const command cmd_token_create = {
    "token",
    "create",
    "antenna token create --user U [--label L] [--expires LIFETIME|DATE] [--json]",
    "Creates an API token for a user (admin) and prints it alone on stdout, e.g.\n"
    "  export ANTENNA_TOKEN=$(antenna token create --user alice --label laptop --expires 30d)\n"
    "The token is shown only this once. Without --expires it lives as long as the server's\n"
    "default (token_default_lifetime_days); the server refuses more than its maximum.\n"
    "\n"
    "  --user U      the user the token authenticates (required)\n"
    "  --label L     a note, e.g. where the token is used\n"
    "  --expires E   a lifetime (3600, 90m, 12h, 30d, 2w) or a UTC date (YYYY-MM-DD or\n"
    "                YYYY-MM-DDTHH:MM:SSZ) at which the token stops working\n"
    "  --json        print the server's JSON\n",
    token_create_opts,
    0,
    0,
    run_token_create,
};
static const command cmd_token_list = {
    "token",
    "list",
    "antenna token list [--json]",
    "Lists the API tokens (never their text) (admin).\n"
    "\n"
    "  --json   print the server's JSON\n",
    json_opts,
    0,
    0,
    run_token_list,
};
static const command cmd_token_revoke = {
    "token",
    "revoke",
    "antenna token revoke [--json] ID",
    "Revokes an API token: requests with it are refused from now on (admin).\n"
    "\n"
    "  --json   print the server's JSON\n",
    json_opts,
    1,
    1,
    run_token_revoke,
};

static const command cmd_usage = {
    NULL,
    "usage",
    "antenna usage [--by partner|user|category|gpu-type|day|month] [--partner P] [--user U]\n"
    "       [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--format table|csv|json]",
    "Shows the GPU-hours and CPU-hours charged, grouped one way, with a TOTAL row. A job is\n"
    "charged once, when it ends, from Slurm's real start and end times x its GPUs x its GPU\n"
    "type's weight. Users see their own usage, managers their partner's; staff, admins and\n"
    "auditors everyone's.\n"
    "\n"
    "  --by KEY         group by partner (default), user, category, gpu-type, day or month\n"
    "  --partner P      only partner P's charges\n"
    "  --user U         only user U's charges\n"
    "  --from DATE      charges from that UTC day on (inclusive), e.g. 2026-11-01\n"
    "  --to DATE        charges before that UTC day (exclusive), e.g. 2026-12-01\n"
    "  --format F       table (default; hours with 2 decimals), csv (RFC 4180 with a header\n"
    "                   and a TOTAL record; hours with 4 decimals and the exact weighted\n"
    "                   seconds, so the columns add up to the total exactly) or json (the\n"
    "                   server's JSON as it came)\n"
    "  --json           same as --format json\n",
    usage_opts,
    0,
    0,
    run_usage,
};
static const command cmd_report = {
    NULL,
    "report",
    "antenna report --partner P --month YYYY-MM [--format html|csv|json] [--output FILE]",
    "Makes a partner's monthly statement (managers for their own partner; staff, admins and\n"
    "auditors for any): budget, used, held and left GPU-hours and the limits, GPU-hours by\n"
    "day, usage by user, and every job charged to the month with its charge.\n"
    "\n"
    "  --partner P      the partner (required)\n"
    "  --month M        the month, YYYY-MM (required); it holds the jobs dispatched in it\n"
    "  --format F       html (default: one self-contained page, ready to print on A4 or to\n"
    "                   save as PDF from a browser), csv (the jobs and their charges with a\n"
    "                   TOTAL record) or json (the server's JSON as it came)\n"
    "  -o, --output FILE  write to FILE instead of stdout\n"
    "  --json           same as --format json\n",
    report_opts,
    0,
    0,
    run_report,
};
static const command cmd_audit_checkpoint = {
    "audit",
    "checkpoint",
    "antenna audit checkpoint",
    "Has the broker sign the audit chain's last entry (admin or auditor) and prints the\n"
    "checkpoint as JSON: format, seq, hash, at, key_id, public_key, signature. Keep it\n"
    "away from the broker host; 'antenna audit verify --checkpoint FILE --public-key KEY'\n"
    "later fails if that entry was cut or rewritten. Refused (409) when the chain does not\n"
    "verify.\n",
    json_opts,
    0,
    0,
    run_audit_checkpoint,
};
static const command cmd_audit_public_key = {
    "audit",
    "public-key",
    "antenna audit public-key [--json]",
    "Prints the public key (PEM) the broker signs audit checkpoints with. Pin it once, and\n"
    "compare it with the broker host's (openssl pkey -in audit-signing.key -pubout).\n"
    "\n"
    "  --json   print {\"algorithm\", \"key_id\", \"public_key\", \"pem\"} instead\n",
    json_opts,
    0,
    0,
    run_audit_public_key,
};
static const command cmd_audit = {
    NULL,
    "audit",
    "antenna audit [--since DATE] [--actor A] [--action ACT] [--after SEQ] [--limit N]\n"
    "       [--format table|json]",
    "Lists the audit trail, oldest first (admin or auditor): who did what, when. The\n"
    "entries are hash-chained; 'antenna audit verify' checks the chain.\n"
    "\n"
    "  --since DATE     entries from that UTC day (YYYY-MM-DD) or Unix time on\n"
    "  --actor A        only what user A did\n"
    "  --action ACT     only that action, e.g. job.submitted; ending in '.' it matches a\n"
    "                   prefix (job. = every job action). Actions: job.submitted,\n"
    "                   job.refused, job.dispatched, job.finished, job.cancel_requested,\n"
    "                   partner.created, partner.changed, user.created, token.created,\n"
    "                   token.revoked, quota.set, auth.failed, audit.head_accepted,\n"
    "                   job.refunded, job.corrected, reconcile.ran\n"
    "  --after SEQ      only entries after entry number SEQ (to read on from a table)\n"
    "  -n, --limit N    at most N entries\n"
    "  --format F       table (default; DETAILS is the entry's details as compact JSON,\n"
    "                   cut to 60 characters) or json (the server's JSON, hashes included)\n"
    "  --json           same as --format json\n",
    audit_opts,
    0,
    0,
    run_audit,
};
static const command cmd_audit_verify = {
    "audit",
    "verify",
    "antenna audit verify [--json] [--checkpoint FILE --public-key FILE]",
    "Checks that the audit trail's hash chain is whole (admin or auditor). Prints\n"
    "\"audit trail OK: N entries verified\" and exits 0, or \"audit trail BROKEN at entry N:\n"
    "PROBLEM\" and exits 1. The same check runs on the server host without the network:\n"
    "antennad audit-verify --config FILE.\n"
    "With --checkpoint, also checks a checkpoint kept from 'antenna audit checkpoint': its\n"
    "signature with the public key you pinned, and that the chain still holds its entry\n"
    "with its hash; exits 1 when it does not (the tail was cut or rewritten, even if the\n"
    "chain and its head file agree again).\n"
    "\n"
    "  --json               print the server's JSON (the exit status is the same)\n"
    "  --checkpoint FILE    a kept checkpoint (JSON)\n"
    "  --public-key FILE    the broker's public key in PEM, pinned by you (needed with\n"
    "                       --checkpoint; from 'antenna audit public-key')\n",
    audit_verify_opts,
    0,
    0,
    run_audit_verify,
};

/* `quota set` comes before `quota` (and `audit verify` before `audit`) so that "antenna help
 * quota set" finds it. */
static const command *const commands[] = {
    &cmd_submit,
    &cmd_jobs,
    &cmd_show,
    &cmd_cancel,
    &cmd_logs,
    &cmd_quota_set,
    &cmd_quota,
    &cmd_partner_add,
    &cmd_partner_list,
    &cmd_partner_show,
    &cmd_partner_set,
    &cmd_user_add,
    &cmd_user_list,
    &cmd_user_set,
    &cmd_user_disable,
    &cmd_user_enable,
    &cmd_token_create,
    &cmd_token_list,
    &cmd_token_revoke,
    &cmd_usage,
    &cmd_report,
    &cmd_audit_verify,
    &cmd_audit_checkpoint,
    &cmd_audit_public_key,
    &cmd_audit,
    &cmd_refund,
    &cmd_correct,
    &cmd_reconcile,
};

static const char main_usage[] = "Usage: antenna [--url URL] [--token TOKEN] [--ca FILE] COMMAND "
                                 "[ARGS...]\n";

static void print_main_help(void)
{
    printf("%s", main_usage);
    printf("\nAntenna runs your batch jobs on a Slurm cluster through the antennad broker.\n"
           "\nJobs:\n"
           "  submit [OPTIONS] SCRIPT   submit a batch script (reads its #SBATCH lines)\n"
           "  submit --dry-run SCRIPT   ask whether a job would be admitted, and at what cost\n"
           "  jobs [--limit N]          list your jobs\n"
           "  show ID                   show one job\n"
           "  cancel ID                 cancel a job\n"
           "  logs [--follow] ID        print a job's output\n"
           "\nQuotas:\n"
           "  quota [PARTNER] [--period YYYY-MM]   budgets, usage and limits\n"
           "  quota set PARTNER [--period P] [--gpu-hours N] [--cpu-hours N] [--max-gpus N]\n"
           "      [--max-jobs N] [--max-queued N] [--max-walltime T] [--user-max-gpus N]\n"
           "                                       (staff or admin role)\n"
           "\nPartners and users (staff or admin role):\n"
           "  partner add NAME [--description TEXT] [--share N]\n"
           "  partner list\n"
           "  partner show NAME\n"
           "  partner set NAME [--share N] [--description TEXT]\n"
           "  user add NAME --partner P --category sme|researcher|institution --unix-user U\n"
           "      [--role user|manager|staff|admin|auditor]\n"
           "  user list [--partner P]\n"
           "  user set NAME --unix-user U        map the user to another Unix account\n"
           "  user disable NAME, user enable NAME   stop (or restore) all of a user's tokens\n"
           "\nUsage and statements:\n"
           "  usage [--by partner|user|category|gpu-type|day|month] [--partner P] [--user U]\n"
           "      [--from DATE] [--to DATE] [--format table|csv|json]\n"
           "                             GPU- and CPU-hours charged, with a total\n"
           "  report --partner P --month YYYY-MM [--format html|csv|json] [--output FILE]\n"
           "                             a partner's monthly statement (printable HTML)\n"
           "  reconcile --month YYYY-MM  compare the ledger with slurmdbd (staff, admin, auditor)\n"
           "  refund ID --reason TEXT [--gpu-hours X]     refund an ended job (staff or admin)\n"
           "  correct ID --gpu-hours X --reason TEXT      correct its charge (staff or admin)\n"
           "\nAudit trail (admin or auditor role):\n"
           "  audit [--since DATE] [--actor A] [--action ACT] [--limit N] [--format table|json]\n"
           "  audit verify               check the trail's hash chain (exit 1 when broken)\n"
           "  audit checkpoint           a signed checkpoint of the trail's last entry (JSON)\n"
           "  audit public-key           the key checkpoints are signed with (PEM)\n"
           "\nTokens (admin role):\n"
           "  token create --user U [--label L] [--expires 30d|YYYY-MM-DD]\n"
           "  token list\n"
           "  token revoke ID\n"
           "\nMost commands take --json to print the server's JSON; 'antenna COMMAND --help'\n"
           "describes one.\n\n");
    printf("%s", global_help);
    printf("  -V, --version   print the version\n"
           "\nSettings come from the flags, else the environment, else the config file\n"
           "$XDG_CONFIG_HOME/antenna/config (default ~/.config/antenna/config) with lines\n"
           "\"url = ...\", \"token = ...\", \"ca = ...\" and # comments (ANTENNA_CONFIG names "
           "another\n"
           "file).\n"
           "\nExit status: 0 ok, 1 the server refused the request, 2 usage or local input error,\n"
           "3 cannot reach the server (network or TLS); submit --wait ends with the job's status,\n"
           "submit --dry-run with 1 when the job would be refused, audit verify with 1 when the\n"
           "audit trail is broken.\n");
}

static int main_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int main_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "antenna: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%sTry 'antenna --help' for more information.\n", main_usage);
    return EXIT_USAGE;
}

static bool is_group(const char *w)
{
    return strcmp(w, "partner") == 0 || strcmp(w, "user") == 0 || strcmp(w, "token") == 0;
}

static void print_group_help(const char *group, FILE *out)
{
    fprintf(out, "Usage:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i]->group && strcmp(commands[i]->group, group) == 0)
            fprintf(out, "  %s\n", commands[i]->usage);
    fprintf(out, "Try 'antenna %s SUBCOMMAND --help' for more information.\n", group);
}

int main(int argc, char **argv)
{
    cli c = {0};
    cli_config_init(&c.cfg);
    int i = 1;
    /* Global options before the command. */
    while (i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_main_help();
            return 0;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("antenna %s\n", ANTENNA_VERSION);
            return 0;
        }
        const char **slot = NULL;
        const char *names[] = {"--url", "--token", "--ca"};
        const char **slots[] = {&c.url, &c.token, &c.ca};
        const char *value = NULL;
        for (size_t k = 0; k < 3 && slot == NULL; k++) {
            size_t n = strlen(names[k]);
            if (strcmp(a, names[k]) == 0) {
                if (i + 1 >= argc) return main_usage_error("option %s needs a value", names[k]);
                slot = slots[k];
                value = argv[++i];
            } else if (strncmp(a, names[k], n) == 0 && a[n] == '=') {
                slot = slots[k];
                value = a + n + 1;
            }
        }
        if (slot == NULL) return main_usage_error("unknown option '%s'", a);
        *slot = value;
        i++;
    }
    if (i < argc && strcmp(argv[i], "--") == 0) i++;
    if (i >= argc) return main_usage_error("no command given");
    const char *word = argv[i++];
    if (strcmp(word, "help") == 0) {
        if (i >= argc) {
            print_main_help();
            return 0;
        }
        word = argv[i++];
        if (is_group(word) && i >= argc) {
            print_group_help(word, stdout);
            return 0;
        }
        for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
            const command *cmd = commands[k];
            bool match = cmd->group ? (strcmp(cmd->group, word) == 0 && i < argc &&
                                       strcmp(cmd->name, argv[i]) == 0)
                                    : strcmp(cmd->name, word) == 0;
            if (match) {
                print_command_help(cmd);
                return 0;
            }
        }
        return main_usage_error("no help for '%s'", word);
    }
    if (strcmp(word, "version") == 0) {
        printf("antenna %s\n", ANTENNA_VERSION);
        return 0;
    }
    const command *cmd = NULL;
    if (strcmp(word, "quota") == 0 && i < argc && strcmp(argv[i], "set") == 0) {
        cmd = &cmd_quota_set; /* `quota` is a command that also has a subcommand */
        i++;
    } else if (strcmp(word, "audit") == 0 && i < argc &&
               (strcmp(argv[i], "verify") == 0 || strcmp(argv[i], "checkpoint") == 0 ||
                strcmp(argv[i], "public-key") == 0)) {
        /* so is `audit` */
        cmd = strcmp(argv[i], "verify") == 0       ? &cmd_audit_verify
              : strcmp(argv[i], "checkpoint") == 0 ? &cmd_audit_checkpoint
                                                   : &cmd_audit_public_key;
        i++;
    } else if (is_group(word)) {
        if (i >= argc || argv[i][0] == '-') {
            bool help = i < argc && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0);
            if (!help) fprintf(stderr, "antenna %s: missing subcommand\n", word);
            print_group_help(word, help ? stdout : stderr);
            return help ? 0 : EXIT_USAGE;
        }
        const char *sub = argv[i++];
        for (size_t k = 0; k < sizeof commands / sizeof commands[0] && !cmd; k++)
            if (commands[k]->group && strcmp(commands[k]->group, word) == 0 &&
                strcmp(commands[k]->name, sub) == 0)
                cmd = commands[k];
        if (cmd == NULL) {
            fprintf(stderr, "antenna %s: unknown subcommand '%s'\n", word, sub);
            print_group_help(word, stderr);
            return EXIT_USAGE;
        }
    } else {
        for (size_t k = 0; k < sizeof commands / sizeof commands[0] && !cmd; k++)
            if (commands[k]->group == NULL && strcmp(commands[k]->name, word) == 0)
                cmd = commands[k];
        if (cmd == NULL) return main_usage_error("unknown command '%s'", word);
    }
    if (wants_help(argc - i, argv + i)) {
        print_command_help(cmd);
        return 0;
    }
    args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(cmd, argc - i, argv + i, &a, &c);
    if (rc == 0) rc = cmd->run(&c, &a);
    quota_args_close(&a.quota);
    api_client_free(c.api);
    cli_config_close(&c.cfg);
    if (fflush(stdout) != 0 && rc == 0) rc = EXIT_REFUSED;
    return rc;
}
