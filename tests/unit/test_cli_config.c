/* test_cli_config.c - unit tests for client/cli_config: file parsing, env and flag precedence,
 * missing-value messages. Uses a private temporary directory as HOME; never touches the network. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_config.h"

static char tmpdir[64];

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    if (nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* Each test starts from an empty environment and a fresh temporary HOME. */
static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/antenna-cfg-test-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) return -1;
    unsetenv("ANTENNA_URL");
    unsetenv("ANTENNA_TOKEN");
    unsetenv("ANTENNA_CA");
    unsetenv("ANTENNA_CONFIG");
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", tmpdir, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove_tree(tmpdir);
    return 0;
}

/* Writes `text` as $HOME/.config/antenna/config and returns its path (static buffer). */
static const char *write_home_config(const char *text, mode_t mode)
{
    static char path[256];
    char dir[200];
    snprintf(dir, sizeof dir, "%s/.config", tmpdir);
    mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/.config/antenna", tmpdir);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/config", dir);
    write_file(path, text, mode);
    return path;
}

static void parse_reads_keys_comments_blanks_and_quotes(void **state)
{
    (void)state;
    const char *text = "# Antenna settings\n"
                       "\n"
                       "url = https://antenna.example.org:8443\n"
                       "   token=ant_abc123   \n"
                       "\t# another comment\n"
                       "ca = \"/etc/antenna/ca.pem\"\n";
    cli_config c;
    cli_config_init(&c);
    char err[256] = "";
    assert_int_equal(cli_config_parse(&c, text, strlen(text), "cfg", err, sizeof err), 0);
    assert_string_equal(c.url.value, "https://antenna.example.org:8443");
    assert_string_equal(c.url.source, "cfg:3");
    assert_string_equal(c.token.value, "ant_abc123");
    assert_string_equal(c.token.source, "cfg:4");
    assert_string_equal(c.ca.value, "/etc/antenna/ca.pem");
    cli_config_close(&c);
}

static void parse_later_lines_win_and_empty_values_unset(void **state)
{
    (void)state;
    const char *text = "url = https://a\nurl = https://b\ntoken = t1\ntoken =\n";
    cli_config c;
    cli_config_init(&c);
    char err[256];
    assert_int_equal(cli_config_parse(&c, text, strlen(text), "cfg", err, sizeof err), 0);
    assert_string_equal(c.url.value, "https://b");
    assert_null(c.token.value);
    assert_null(c.token.source);
    cli_config_close(&c);
}

static void parse_refuses_an_unknown_key_with_its_line(void **state)
{
    (void)state;
    const char *text = "url = https://a\n\ntokne = ant_x\n";
    cli_config c;
    cli_config_init(&c);
    char err[256] = "";
    assert_int_equal(cli_config_parse(&c, text, strlen(text), "cfg", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "cfg:3:"));
    assert_non_null(strstr(err, "tokne"));
    cli_config_close(&c);
}

static void parse_refuses_a_line_without_equals(void **state)
{
    (void)state;
    const char *text = "url https://a\n";
    cli_config c;
    cli_config_init(&c);
    char err[256] = "";
    assert_int_equal(cli_config_parse(&c, text, strlen(text), "cfg", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "cfg:1:"));
    assert_non_null(strstr(err, "key = value"));
    cli_config_close(&c);
}

static void default_path_follows_xdg_then_home(void **state)
{
    (void)state;
    char want[256];
    char *p = cli_config_default_path();
    snprintf(want, sizeof want, "%s/.config/antenna/config", tmpdir);
    assert_string_equal(p, want);
    free(p);

    setenv("XDG_CONFIG_HOME", "/srv/xdg", 1);
    p = cli_config_default_path();
    assert_string_equal(p, "/srv/xdg/antenna/config");
    free(p);

    setenv("XDG_CONFIG_HOME", "relative/ignored", 1); /* the XDG spec ignores relative paths */
    p = cli_config_default_path();
    assert_string_equal(p, want);
    free(p);

    unsetenv("XDG_CONFIG_HOME");
    unsetenv("HOME");
    assert_null(cli_config_default_path());
}

static void load_file_treats_a_missing_file_as_empty(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/nope/config", tmpdir);
    cli_config c;
    cli_config_init(&c);
    char err[256];
    assert_int_equal(cli_config_load_file(&c, path, err, sizeof err), 0);
    assert_null(c.url.value);
    assert_string_equal(c.path, path);
    cli_config_close(&c);
}

static void load_file_flags_a_token_readable_by_others(void **state)
{
    (void)state;
    const char *path = write_home_config("url = https://a\ntoken = ant_x\n", 0644);
    cli_config c;
    cli_config_init(&c);
    char err[256];
    assert_int_equal(cli_config_load_file(&c, path, err, sizeof err), 0);
    assert_true(c.token_file_exposed);
    cli_config_close(&c);

    write_file(path, "url = https://a\ntoken = ant_x\n", 0600);
    cli_config_init(&c);
    assert_int_equal(cli_config_load_file(&c, path, err, sizeof err), 0);
    assert_false(c.token_file_exposed);
    cli_config_close(&c);

    write_file(path, "url = https://a\n", 0644); /* no token: nothing to protect */
    cli_config_init(&c);
    assert_int_equal(cli_config_load_file(&c, path, err, sizeof err), 0);
    assert_false(c.token_file_exposed);
    cli_config_close(&c);
}

static void env_overrides_the_file(void **state)
{
    (void)state;
    write_home_config("url = https://file.example\ntoken = ant_file\nca = /file/ca.pem\n", 0600);
    setenv("ANTENNA_URL", "https://env.example", 1);
    setenv("ANTENNA_TOKEN", "ant_env", 1);
    setenv("ANTENNA_CA", "", 1); /* empty: ignored, the file's value stays */
    cli_config c;
    cli_config_init(&c);
    char err[512] = "";
    assert_int_equal(cli_config_resolve(&c, NULL, NULL, NULL, err, sizeof err), 0);
    assert_string_equal(c.url.value, "https://env.example");
    assert_string_equal(c.url.source, "ANTENNA_URL");
    assert_string_equal(c.token.value, "ant_env");
    assert_string_equal(c.ca.value, "/file/ca.pem");
    cli_config_close(&c);
}

static void flags_override_env_and_file(void **state)
{
    (void)state;
    write_home_config("url = https://file.example\ntoken = ant_file\n", 0600);
    setenv("ANTENNA_URL", "https://env.example", 1);
    cli_config c;
    cli_config_init(&c);
    char err[512] = "";
    assert_int_equal(
        cli_config_resolve(&c, "https://flag.example", NULL, "/flag/ca.pem", err, sizeof err), 0);
    assert_string_equal(c.url.value, "https://flag.example");
    assert_string_equal(c.url.source, "--url");
    assert_string_equal(c.token.value, "ant_file");
    assert_string_equal(c.ca.value, "/flag/ca.pem");
    cli_config_close(&c);
}

static void resolve_reads_the_file_named_by_antenna_config(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/other.conf", tmpdir);
    write_file(path, "url = https://other.example\ntoken = ant_other\n", 0600);
    setenv("ANTENNA_CONFIG", path, 1);
    cli_config c;
    cli_config_init(&c);
    char err[512] = "";
    assert_int_equal(cli_config_resolve(&c, NULL, NULL, NULL, err, sizeof err), 0);
    assert_string_equal(c.url.value, "https://other.example");
    assert_string_equal(c.path, path);
    cli_config_close(&c);
}

static void resolve_reports_a_broken_file(void **state)
{
    (void)state;
    const char *path = write_home_config("url = https://a\nbogus\n", 0600);
    cli_config c;
    cli_config_init(&c);
    char err[512] = "";
    assert_int_equal(cli_config_resolve(&c, NULL, NULL, NULL, err, sizeof err), -EINVAL);
    char want[300];
    snprintf(want, sizeof want, "%s:2:", path);
    assert_non_null(strstr(err, want));
    cli_config_close(&c);
}

static void missing_url_names_the_env_var_key_and_file(void **state)
{
    (void)state;
    setenv("ANTENNA_TOKEN", "ant_env", 1);
    cli_config c;
    cli_config_init(&c);
    char err[512] = "";
    assert_int_equal(cli_config_resolve(&c, NULL, NULL, NULL, err, sizeof err), -EINVAL);
    char file[256];
    snprintf(file, sizeof file, "%s/.config/antenna/config", tmpdir);
    assert_non_null(strstr(err, "no server URL"));
    assert_non_null(strstr(err, "ANTENNA_URL"));
    assert_non_null(strstr(err, "url = "));
    assert_non_null(strstr(err, file));
    cli_config_close(&c);
}

static void missing_token_names_the_env_var_key_and_file(void **state)
{
    (void)state;
    setenv("ANTENNA_URL", "https://env.example", 1);
    cli_config c;
    cli_config_init(&c);
    char err[512] = "";
    assert_int_equal(cli_config_resolve(&c, NULL, NULL, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "no API token"));
    assert_non_null(strstr(err, "ANTENNA_TOKEN"));
    assert_non_null(strstr(err, "token = "));
    assert_null(strstr(err, "no server URL"));
    cli_config_close(&c);
}

static void check_refuses_a_plain_http_url(void **state)
{
    (void)state;
    cli_config c;
    cli_config_init(&c);
    char err[512] = "";
    assert_int_equal(cli_config_apply_flags(&c, "http://insecure.example", "ant_x", NULL), 0);
    assert_int_equal(cli_config_check(&c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "https://"));
    assert_non_null(strstr(err, "--url"));
    cli_config_close(&c);
}

static void check_refuses_a_token_with_blanks(void **state)
{
    (void)state;
    cli_config c;
    cli_config_init(&c);
    char err[512] = "";
    assert_int_equal(cli_config_apply_flags(&c, "https://a", "ant_x\r\nX-Evil: 1", NULL), 0);
    assert_int_equal(cli_config_check(&c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "token"));
    cli_config_close(&c);
}

static void close_accepts_null_and_an_empty_config(void **state)
{
    (void)state;
    cli_config_close(NULL);
    cli_config c;
    cli_config_init(&c);
    cli_config_close(&c);
    assert_null(c.url.value);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(parse_reads_keys_comments_blanks_and_quotes),
        T(parse_later_lines_win_and_empty_values_unset),
        T(parse_refuses_an_unknown_key_with_its_line),
        T(parse_refuses_a_line_without_equals),
        T(default_path_follows_xdg_then_home),
        T(load_file_treats_a_missing_file_as_empty),
        T(load_file_flags_a_token_readable_by_others),
        T(env_overrides_the_file),
        T(flags_override_env_and_file),
        T(resolve_reads_the_file_named_by_antenna_config),
        T(resolve_reports_a_broken_file),
        T(missing_url_names_the_env_var_key_and_file),
        T(missing_token_names_the_env_var_key_and_file),
        T(check_refuses_a_plain_http_url),
        T(check_refuses_a_token_with_blanks),
        T(close_accepts_null_and_an_empty_config),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
