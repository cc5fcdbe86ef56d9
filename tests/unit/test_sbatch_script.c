/* test_sbatch_script.c - unit tests for client/sbatch_script: #SBATCH directives as sbatch reads
 * them (a table of scripts), command-line overrides, text checks. Never touches network or disk. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>

#include "sbatch_script.h"

/* The data-driven parser cases: one folder per case holding script.sh, optionally args (command
 * line flags, one argument a line, applied over the script's directives) and flags
 * ("ignore-unsupported"), and either expected.json (the request's JSON fields, without script and
 * name) or expected_error (the exact message the CLI prints after "error: "). */
#define SBATCH_CASES_DIR "tests/sbatch/cases"

/* Collected warnings of one parse. */
typedef struct warnings {
    int n;
    char msg[8][512];
} warnings;

static void collect(void *ctx, const char *msg)
{
    warnings *w = ctx;
    if (w->n < 8) snprintf(w->msg[w->n], sizeof w->msg[0], "%s", msg);
    w->n++;
}

typedef struct script_case {
    const char *what;
    const char *text;
    unsigned flags; /* sbatch_script_parse's */
    int rc;
    unsigned set; /* SBATCH_SET_* expected */
    const char *name;
    int gpus;
    const char *gpu_type;
    int cpus;
    int64_t mem_mb;
    int time_minutes;
    const char *err;  /* expected error text (substring), rc != 0 */
    int nwarn;        /* expected warning count */
    const char *warn; /* expected first warning (exact) */
} script_case;

enum {
    NAME = SBATCH_SET_NAME,
    GPUS = SBATCH_SET_GPUS,
    CPUS = SBATCH_SET_CPUS,
    MEM = SBATCH_SET_MEM,
    TIME = SBATCH_SET_TIME,
    GPN = SBATCH_SET_GPUS_PER_NODE,
    IGN = SBATCH_IGNORE_UNSUPPORTED,
};

static const script_case cases[] = {
    {"long options with =",
     "#!/bin/bash\n#SBATCH --job-name=train\n#SBATCH --time=1:30:00\n#SBATCH --cpus-per-task=4\n"
     "#SBATCH --gres=gpu:h100:2\n#SBATCH --mem=16G\necho hi\n",
     0, 0, NAME | TIME | CPUS | GPN | MEM, "train", 2, "h100", 4, 16384, 90, NULL, 0, NULL},
    {"long options with a separate value",
     "#!/bin/bash\n#SBATCH --job-name train\n#SBATCH --time 90\n#SBATCH --gpus 3\n"
     "#SBATCH --mem 512\n",
     0, 0, NAME | TIME | GPUS | MEM, "train", 3, "", 0, 512, 90, NULL, 0, NULL},
    {"short options, separate and attached",
     "#!/bin/bash\n#SBATCH -J short\n#SBATCH -t5\n#SBATCH -c 2\n#SBATCH -G h100:1\n", 0, 0,
     NAME | TIME | CPUS | GPUS, "short", 1, "h100", 2, 0, 5, NULL, 0, NULL},
    {"attached short name", "#!/bin/sh\n#SBATCH -Jglued\n", 0, 0, NAME, "glued", 0, "", 0, 0, 0,
     NULL, 0, NULL},
    {"several options on one line, comment ends it",
     "#!/bin/bash\n#SBATCH -J a -t 5   # the rest -c 9 is a comment\n", 0, 0, NAME | TIME, "a", 0,
     "", 0, 0, 5, NULL, 0, NULL},
    {"double-quoted value keeps blanks", "#!/bin/bash\n#SBATCH -J \"my job\" -c 2\n", 0, 0,
     NAME | CPUS, "my job", 0, "", 2, 0, 0, NULL, 0, NULL},
    {"single quotes and a # inside quotes", "#!/bin/bash\n#SBATCH --job-name='run #3'\n", 0, 0,
     NAME, "run #3", 0, "", 0, 0, 0, NULL, 0, NULL},
    {"backslash escapes a quote", "#!/bin/bash\n#SBATCH -J a\\\"b\n", 0, 0, NAME, "a\"b", 0, "", 0,
     0, 0, NULL, 0, NULL},
    {"directive after the first command is ignored",
     "#!/bin/bash\n#SBATCH -t 5\necho hi\n#SBATCH -t 10\n#SBATCH --bogus\n", 0, 0, TIME, NULL, 0,
     "", 0, 0, 5, NULL, 0, NULL},
    {"blank lines and comments keep the directive block open",
     "#!/bin/bash\n\n# set up\n   \n\t# indented comment\n#SBATCH -c 3\nsrun x\n", 0, 0, CPUS, NULL,
     0, "", 3, 0, 0, NULL, 0, NULL},
    {"indented #SBATCH is a plain comment", "#!/bin/bash\n  #SBATCH -c 3\n#SBATCH -t 7\n", 0, 0,
     TIME, NULL, 0, "", 0, 0, 7, NULL, 0, NULL},
    {"'# SBATCH' is a plain comment", "#!/bin/bash\n# SBATCH -c 3\n", 0, 0, 0, NULL, 0, "", 0, 0, 0,
     NULL, 0, NULL},
    {"a later directive wins", "#!/bin/bash\n#SBATCH -t 5\n#SBATCH --time=10\n", 0, 0, TIME, NULL,
     0, "", 0, 0, 10, NULL, 0, NULL},
    {"--gres replaces an earlier --gpus, type included",
     "#!/bin/bash\n#SBATCH --gpus=h100:4\n#SBATCH --gres=gpu:2\n", 0, 0, GPN, NULL, 2, "", 0, 0, 0,
     NULL, 0, NULL},
    {"bare gpu gres means one GPU", "#!/bin/bash\n#SBATCH --gres gpu\n", 0, 0, GPN, NULL, 1, "", 0,
     0, 0, NULL, 0, NULL},
    {"unsupported long option is warned about and its value skipped",
     "#!/bin/bash\n#SBATCH --hint compute_bound\n#SBATCH -t 5\n", IGN, 0, TIME, NULL, 0, "", 0, 0,
     5, NULL, 1, "x.sh:2: #SBATCH --hint is not supported by Antenna, ignored"},
    {"unsupported short option with value, then a supported one",
     "#!/bin/bash\n#SBATCH -q high -c 2\n", IGN, 0, CPUS, NULL, 0, "", 2, 0, 0, NULL, 1,
     "x.sh:2: #SBATCH -q is not supported by Antenna, ignored"},
    {"unsupported option with = keeps the next word",
     "#!/bin/bash\n#SBATCH --licenses=matlab -c 2\n", IGN, 0, CPUS, NULL, 0, "", 2, 0, 0, NULL, 1,
     "x.sh:2: #SBATCH --licenses is not supported by Antenna, ignored"},
    {"unsupported flag does not eat the next option",
     "#!/bin/bash\n#SBATCH --hold\n#SBATCH --contiguous -c 2\n", IGN, 0, CPUS, NULL, 0, "", 2, 0, 0,
     NULL, 2, "x.sh:2: #SBATCH --hold is not supported by Antenna, ignored"},
    {"unsupported option does not take a value from the next line",
     "#!/bin/bash\n#SBATCH --foo\n#SBATCH bar\n", IGN, 0, 0, NULL, 0, "", 0, 0, 0, NULL, 2,
     "x.sh:2: #SBATCH --foo is not supported by Antenna, ignored"},
    {"stray word is warned about", "#!/bin/bash\n#SBATCH hello -c 1\n", 0, 0, CPUS, NULL, 0, "", 1,
     0, 0, NULL, 1, "x.sh:2: #SBATCH word \"hello\" is not an option, ignored"},
    {"'--' ends the options", "#!/bin/bash\n#SBATCH -- -c 3\n", 0, 0, 0, NULL, 0, "", 0, 0, 0, NULL,
     2, "x.sh:2: #SBATCH word \"-c\" is not an option, ignored"},
    {"a value may sit on the next directive line, as with getopt",
     "#!/bin/bash\n#SBATCH -J\n#SBATCH nextline\n", 0, 0, NAME, "nextline", 0, "", 0, 0, 0, NULL, 0,
     NULL},
    {"CRLF line endings", "#!/bin/bash\r\n#SBATCH -c 4\r\n#SBATCH -J win\r\n", 0, 0, CPUS | NAME,
     "win", 0, "", 4, 0, 0, NULL, 0, NULL},
    {"no trailing newline", "#!/bin/bash\n#SBATCH --mem=1K", 0, 0, MEM, NULL, 0, "", 0, 1, 0, NULL,
     0, NULL},
    {"empty #SBATCH line", "#!/bin/bash\n#SBATCH\n#SBATCH   \n", 0, 0, 0, NULL, 0, "", 0, 0, 0,
     NULL, 0, NULL},
    {"empty script", "", 0, 0, 0, NULL, 0, "", 0, 0, 0, NULL, 0, NULL},
    {"bad time names file and line", "#!/bin/sh\n\n#SBATCH --time=abc\n", 0, -EINVAL, 0, NULL, 0,
     "", 0, 0, 0, "x.sh:3: invalid --time value \"abc\"", 0, NULL},
    {"UNLIMITED time is refused", "#!/bin/sh\n#SBATCH -t UNLIMITED\n", 0, -EINVAL, 0, NULL, 0, "",
     0, 0, 0, "x.sh:2: invalid -t value \"UNLIMITED\"", 0, NULL},
    {"zero CPUs", "#!/bin/sh\n#SBATCH -c 0\n", 0, -EINVAL, 0, NULL, 0, "", 0, 0, 0,
     "x.sh:2: invalid -c value \"0\"", 0, NULL},
    {"non-numeric CPUs", "#!/bin/sh\n#SBATCH --cpus-per-task=4x\n", 0, -EINVAL, 0, NULL, 0, "", 0,
     0, 0, "x.sh:2: invalid --cpus-per-task value \"4x\"", 0, NULL},
    {"non-GPU gres", "#!/bin/sh\n#SBATCH -c 1\n#SBATCH --gres=mps:100\n", 0, -EINVAL, 0, NULL, 0,
     "", 0, 0, 0, "x.sh:3: invalid --gres value \"mps:100\"", 0, NULL},
    {"bad --gpus", "#!/bin/sh\n#SBATCH -G h100\n", 0, -EINVAL, 0, NULL, 0, "", 0, 0, 0,
     "x.sh:2: invalid -G value \"h100\"", 0, NULL},
    {"bad memory", "#!/bin/sh\n#SBATCH --mem=lots\n", 0, -EINVAL, 0, NULL, 0, "", 0, 0, 0,
     "x.sh:2: invalid --mem value \"lots\"", 0, NULL},
    {"unsupported option is refused without the flag",
     "#!/bin/bash\n#SBATCH -c 2\n#SBATCH --hint=compute_bound\n", 0, -ENOTSUP, 0, NULL, 0, "", 0, 0,
     0,
     "x.sh:3: #SBATCH --hint is not supported by Antenna; remove it, or submit with "
     "--ignore-unsupported to ignore it (nothing was queued)",
     0, NULL},
    {"unsupported short option is refused by its name", "#!/bin/bash\n#SBATCH -q high\n", 0,
     -ENOTSUP, 0, NULL, 0, "", 0, 0, 0, "x.sh:2: #SBATCH -q is not supported by Antenna", 0, NULL},
    {"a flag option given a value is refused", "#!/bin/bash\n#SBATCH --exclusive=user\n", 0,
     -EINVAL, 0, NULL, 0, "", 0, 0, 0, "x.sh:2: --exclusive takes no value", 0, NULL},
    {"missing value at the end", "#!/bin/sh\n#SBATCH --mem\n", 0, -EINVAL, 0, NULL, 0, "", 0, 0, 0,
     "x.sh:2: #SBATCH --mem needs a value", 0, NULL},
    {"unmatched quote", "#!/bin/sh\n#SBATCH -c 1\n#SBATCH -J \"abc\n", 0, -EINVAL, 0, NULL, 0, "",
     0, 0, 0, "x.sh:3: unmatched \" quote", 0, NULL},
    {"control character in name", "#!/bin/sh\n#SBATCH -J \"a\tb\"\n", 0, -EINVAL, 0, NULL, 0, "", 0,
     0, 0, "x.sh:2: invalid -J value", 0, NULL},
    {"name longer than 127 bytes",
     "#!/bin/sh\n#SBATCH -J "
     "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"
     "1234567890123456789012345678901234567\n",
     0, -EINVAL, 0, NULL, 0, "", 0, 0, 0, "x.sh:2: -J is 128 bytes long", 0, NULL},
};

static void parses_every_script_of_the_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const script_case *c = &cases[i];
        sbatch_opts o;
        sbatch_opts_init(&o);
        warnings w = {0};
        char err[512] = "";
        int rc = sbatch_script_parse(c->text, strlen(c->text), "x.sh", c->flags, &o, collect, &w,
                                     err, sizeof err);
        if (rc != c->rc) fail_msg("%s: rc %d, want %d (%s)", c->what, rc, c->rc, err);
        if (c->rc != 0) {
            if (strstr(err, c->err) == NULL)
                fail_msg("%s: error \"%s\" lacks \"%s\"", c->what, err, c->err);
            continue;
        }
        if (o.set != c->set) fail_msg("%s: set 0x%x, want 0x%x", c->what, o.set, c->set);
        const jobreq *r = &o.r;
        if ((c->set & NAME) && strcmp(r->name, c->name) != 0)
            fail_msg("%s: name \"%s\", want \"%s\"", c->what, r->name, c->name);
        if ((c->set & GPUS) && (r->gpus != c->gpus || strcmp(r->gpu_type, c->gpu_type) != 0))
            fail_msg("%s: gpus %d/%s, want %d/%s", c->what, r->gpus, r->gpu_type, c->gpus,
                     c->gpu_type);
        if ((c->set & GPN) &&
            (r->gpus_per_node != c->gpus || strcmp(r->gpu_type, c->gpu_type) != 0))
            fail_msg("%s: gpus per node %d/%s, want %d/%s", c->what, r->gpus_per_node, r->gpu_type,
                     c->gpus, c->gpu_type);
        if ((c->set & CPUS) && r->cpus_per_task != c->cpus)
            fail_msg("%s: cpus %d, want %d", c->what, r->cpus_per_task, c->cpus);
        if ((c->set & MEM) && r->mem_mb != c->mem_mb)
            fail_msg("%s: mem %lld, want %lld", c->what, (long long)r->mem_mb,
                     (long long)c->mem_mb);
        if ((c->set & TIME) && r->time_minutes != c->time_minutes)
            fail_msg("%s: time %d, want %d", c->what, r->time_minutes, c->time_minutes);
        if (w.n != c->nwarn) fail_msg("%s: %d warnings, want %d", c->what, w.n, c->nwarn);
        if (c->warn != NULL && strcmp(w.msg[0], c->warn) != 0)
            fail_msg("%s: warning \"%s\", want \"%s\"", c->what, w.msg[0], c->warn);
    }
}

static void parse_reads_only_len_bytes(void **state)
{
    (void)state;
    const char text[] = "#!/bin/sh\n#SBATCH -c 3\n#SBATCH -c 5\n";
    size_t len = strlen("#!/bin/sh\n#SBATCH -c 3\n");
    sbatch_opts o;
    sbatch_opts_init(&o);
    char err[256];
    assert_int_equal(sbatch_script_parse(text, len, "x.sh", 0, &o, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(o.r.cpus_per_task, 3);
}

static void parse_without_a_warning_callback_still_ignores_unknown_options(void **state)
{
    (void)state;
    const char *text = "#!/bin/sh\n#SBATCH --hint=nomultithread\n#SBATCH -c 2\n";
    sbatch_opts o;
    sbatch_opts_init(&o);
    char err[256];
    assert_int_equal(sbatch_script_parse(text, strlen(text), NULL, SBATCH_IGNORE_UNSUPPORTED, &o,
                                         NULL, NULL, err, sizeof err),
                     0);
    assert_int_equal(o.set, SBATCH_SET_CPUS);
}

static void command_line_flags_override_script_directives(void **state)
{
    (void)state;
    const char *text =
        "#!/bin/sh\n#SBATCH -J fromscript\n#SBATCH -t 10\n#SBATCH --gres=gpu:h100:2\n"
        "#SBATCH --mem=4G\n";
    sbatch_opts script, flags;
    sbatch_opts_init(&script);
    sbatch_opts_init(&flags);
    char err[256];
    assert_int_equal(
        sbatch_script_parse(text, strlen(text), "x.sh", 0, &script, NULL, NULL, err, sizeof err),
        0);
    assert_int_equal(sbatch_opt_set(&flags, "--time", "2:00:00", err, sizeof err), 0);
    assert_int_equal(sbatch_opt_set(&flags, "-G", "4", err, sizeof err), 0);
    assert_int_equal(sbatch_opt_set(&flags, "-c", "8", err, sizeof err), 0);
    sbatch_opts_override(&script, &flags);

    jobreq r;
    jobreq_init(&r);
    sbatch_opts_to_request(&script, &r);
    assert_string_equal(r.name, "fromscript"); /* kept from the script */
    assert_int_equal(r.time_minutes, 120);     /* flag wins */
    assert_int_equal(r.gpus, 4);               /* flag wins, and ... */
    assert_int_equal(r.gpus_per_node, 0);      /* ... replaces the script's --gres, ... */
    assert_string_equal(r.gpu_type, "");       /* ... type included */
    assert_int_equal(r.cpus_per_task, 8);
    assert_int_equal(r.mem_mb, 4096);
}

static void to_request_keeps_defaults_for_unset_fields(void **state)
{
    (void)state;
    sbatch_opts o;
    sbatch_opts_init(&o);
    char err[256];
    assert_int_equal(sbatch_opt_set(&o, "--job-name", "x", err, sizeof err), 0);
    jobreq r;
    jobreq_init(&r);
    sbatch_opts_to_request(&o, &r);
    assert_string_equal(r.name, "x");
    assert_int_equal(r.cpus_per_task, 1);
    assert_int_equal(r.time_minutes, 60);
    assert_int_equal(r.gpus, 0);
    assert_int_equal(r.mem_mb, 0);
}

static void opt_set_refuses_unknown_options_and_missing_values(void **state)
{
    (void)state;
    sbatch_opts o;
    sbatch_opts_init(&o);
    char err[256] = "";
    assert_int_equal(sbatch_opt_set(&o, "--hint", "compute_bound", err, sizeof err), -ENOENT);
    assert_int_equal(sbatch_opt_set(&o, "-q", "high", err, sizeof err), -ENOENT);
    assert_int_equal(sbatch_opt_set(&o, "--time", NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "--time needs a value"));
    assert_int_equal(o.set, 0u);
}

static void opt_known_lists_exactly_the_supported_options(void **state)
{
    (void)state;
    static const char *const known[] = {"--job-name",
                                        "-J",
                                        "--time",
                                        "-t",
                                        "--cpus-per-task",
                                        "-c",
                                        "--gpus",
                                        "-G",
                                        "--gres",
                                        "--mem",
                                        "--nodes",
                                        "-N",
                                        "--ntasks",
                                        "-n",
                                        "--ntasks-per-node",
                                        "--gpus-per-node",
                                        "--gpus-per-task",
                                        "--cpus-per-gpu",
                                        "--mem-per-gpu",
                                        "--mem-per-cpu",
                                        "--partition",
                                        "-p",
                                        "--output",
                                        "-o",
                                        "--error",
                                        "-e",
                                        "--export",
                                        "--chdir",
                                        "-D",
                                        "--signal",
                                        "--constraint",
                                        "-C",
                                        "--comment",
                                        "--array",
                                        "-a",
                                        "--dependency",
                                        "-d"};
    static const char *const flags[] = {"--exclusive", "--requeue", "--no-requeue"};
    static const char *const unknown[] = {"--hint", "-q",  "--qos",    "--licenses",       "-w",
                                          "--j",    "-JJ", "job-name", "--gpus-per-socket"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (sbatch_opt_known(known[i]) != 1) fail_msg("%s should take a value", known[i]);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (sbatch_opt_known(flags[i]) != 2) fail_msg("%s should be a flag", flags[i]);
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        if (sbatch_opt_known(unknown[i])) fail_msg("%s should be unknown", unknown[i]);
}

static void check_text_accepts_utf8_scripts(void **state)
{
    (void)state;
    const char *text = "#!/bin/bash\necho 'héllo 模型 🚀'\n";
    char err[256];
    assert_int_equal(sbatch_script_check_text(text, strlen(text), "x.sh", err, sizeof err), 0);
}

static void check_text_refuses_a_nul_byte_with_its_line(void **state)
{
    (void)state;
    const char text[] = "#!/bin/bash\necho a\necho \0b\n";
    char err[256] = "";
    assert_int_equal(sbatch_script_check_text(text, sizeof text - 1, "x.sh", err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "x.sh:3: "));
    assert_non_null(strstr(err, "NUL"));
}

static void check_text_refuses_invalid_utf8_with_its_line(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "#!/bin/bash\necho \xe9t\xe9\n", "#!/bin/bash\necho \xc0\xaf\n",
        "#!/bin/bash\necho \xed\xa0\x80\n", "#!/bin/bash\necho \xe2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        assert_int_equal(sbatch_script_check_text(bad[i], strlen(bad[i]), "x.sh", err, sizeof err),
                         -EINVAL);
        assert_non_null(strstr(err, "x.sh:2: "));
        assert_non_null(strstr(err, "UTF-8"));
    }
}

/* Reads a whole file into a malloc'd NUL-terminated string, or NULL when it does not exist. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", SBATCH_CASES_DIR, dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (n + 2 > cap) {
            cap = cap ? cap * 2 : 256;
            char *nb = realloc(buf, cap);
            if (nb == NULL) abort();
            buf = nb;
        }
        buf[n++] = (char)c;
    }
    fclose(f);
    if (buf == NULL) buf = calloc(1, 1);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* Applies the case's args file (one argument a line) as the CLI applies its flags. */
static int apply_args(char *args, sbatch_opts *flags, char *err, size_t len)
{
    char *argv[32];
    int argc = 0;
    char *save = NULL;
    for (char *l = strtok_r(args, "\n", &save); l && argc < 32; l = strtok_r(NULL, "\n", &save))
        argv[argc++] = l;
    for (int i = 0; i < argc; i++) {
        char name[64];
        const char *value = NULL;
        const char *eq = strchr(argv[i], '=');
        size_t n = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);
        snprintf(name, sizeof name, "%.*s", (int)n, argv[i]);
        if (eq) value = eq + 1;
        if (value == NULL && sbatch_opt_known(name) == 1 && i + 1 < argc) value = argv[++i];
        int rc = sbatch_opt_set(flags, name, value, err, len);
        if (rc != 0) return rc;
    }
    return 0;
}

/* One case: parse, override with the args, validate as the CLI does, and compare. */
static void run_parser_case(void **state)
{
    const char *dir = *state;
    size_t len = 0;
    char *text = slurp(dir, "script.sh", &len);
    char *args = slurp(dir, "args", NULL);
    char *flagtxt = slurp(dir, "flags", NULL);
    char *want_json = slurp(dir, "expected.json", NULL);
    char *want_err = slurp(dir, "expected_error", NULL);
    if (text == NULL) fail_msg("%s: no script.sh", dir);
    if ((want_json == NULL) == (want_err == NULL))
        fail_msg("%s: needs exactly one of expected.json and expected_error", dir);
    unsigned flags =
        flagtxt && strstr(flagtxt, "ignore-unsupported") ? SBATCH_IGNORE_UNSUPPORTED : 0;
    sbatch_opts o, over;
    sbatch_opts_init(&o);
    sbatch_opts_init(&over);
    char err[1024] = "";
    int rc = sbatch_script_parse(text, len, "script.sh", flags, &o, NULL, NULL, err, sizeof err);
    if (rc == 0 && args != NULL) rc = apply_args(args, &over, err, sizeof err);
    jobreq r;
    jobreq_init(&r);
    if (rc == 0) {
        sbatch_opts_override(&o, &over);
        sbatch_opts_to_request(&o, &r);
        r.script = "#!/bin/bash\n";
        jobreq_error je;
        if (jobreq_validate(&r, NULL, &je) != 0) {
            snprintf(err, sizeof err, "%s", je.message);
            rc = -EINVAL;
        }
    }
    if (want_err != NULL) {
        size_t n = strlen(want_err);
        while (n > 0 && want_err[n - 1] == '\n')
            want_err[--n] = '\0';
        if (rc == 0) fail_msg("%s: parsed, but the error \"%s\" was expected", dir, want_err);
        if (strcmp(err, want_err) != 0)
            fail_msg("%s: error\n  got  \"%s\"\n  want \"%s\"", dir, err, want_err);
    } else {
        if (rc != 0) fail_msg("%s: refused: %s", dir, err);
        r.script = NULL;
        json_t *got = sbatch_request_json(&r, o.set);
        json_error_t je;
        json_t *want = json_loads(want_json, 0, &je);
        if (want == NULL) fail_msg("%s: expected.json: %s", dir, je.text);
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(want, JSON_SORT_KEYS);
            fail_msg("%s: request\n  got  %s\n  want %s", dir, g, w);
        }
        json_decref(got);
        json_decref(want);
    }
    free(text);
    free(args);
    free(flagtxt);
    free(want_json);
    free(want_err);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_every_script_of_the_table),
        cmocka_unit_test(parse_reads_only_len_bytes),
        cmocka_unit_test(parse_without_a_warning_callback_still_ignores_unknown_options),
        cmocka_unit_test(command_line_flags_override_script_directives),
        cmocka_unit_test(to_request_keeps_defaults_for_unset_fields),
        cmocka_unit_test(opt_set_refuses_unknown_options_and_missing_values),
        cmocka_unit_test(opt_known_lists_exactly_the_supported_options),
        cmocka_unit_test(check_text_accepts_utf8_scripts),
        cmocka_unit_test(check_text_refuses_a_nul_byte_with_its_line),
        cmocka_unit_test(check_text_refuses_invalid_utf8_with_its_line),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    /* one test per case folder, in name order */
    char *names[256];
    size_t n = 0;
    DIR *d = opendir(SBATCH_CASES_DIR);
    if (d == NULL) {
        fprintf(stderr, "cannot open %s (run from the repository's root)\n", SBATCH_CASES_DIR);
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 256)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "no parser case in %s\n", SBATCH_CASES_DIR);
        return 1;
    }
    qsort(names, n, sizeof names[0], name_cmp);
    struct CMUnitTest *cases_t = calloc(n, sizeof *cases_t);
    for (size_t i = 0; i < n; i++) {
        cases_t[i].name = names[i];
        cases_t[i].test_func = run_parser_case;
        cases_t[i].initial_state = names[i];
    }
    failed += _cmocka_run_group_tests("sbatch_parser_cases", cases_t, n, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(cases_t);
    return failed;
}
