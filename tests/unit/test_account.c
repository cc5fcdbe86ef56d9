/* test_account.c - unit tests of the Unix account rules: which accounts a user may be mapped to,
 * on this machine's password database (root, daemon, munge and nobody exist on every machine of
 * the project: Debian with the munge package), and the UID_MIN reader of login.defs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "account.h"

static void expect_refused(const account_rules *r, const char *name, int rc, const char *why)
{
    char msg[512] = "";
    assert_int_equal(account_check(r, name, NULL, msg, sizeof msg), rc);
    if (strstr(msg, why) == NULL) fail_msg("message for %s lacks \"%s\": %s", name, why, msg);
}

static void test_nobody_is_an_ordinary_account(void **state)
{
    (void)state;
    account_rules r = {.uid_min = 1000};
    uid_t uid = 0;
    char msg[512];
    assert_int_equal(account_check(&r, "nobody", &uid, msg, sizeof msg), 0);
    assert_true(uid >= 1000);
}

static void test_root_is_refused(void **state)
{
    (void)state;
    account_rules r = {.uid_min = 1};
    expect_refused(&r, "root", -EPERM, "is root");
}

static void test_system_account_below_uid_min_is_refused(void **state)
{
    (void)state;
    account_rules r = {.uid_min = 1000};
    expect_refused(&r, "daemon", -EPERM, "system account");
}

static void test_munge_account_is_refused_whatever_uid_min(void **state)
{
    (void)state;
    account_rules r = {.uid_min = 1};
    expect_refused(&r, "munge", -EPERM, "munge account");
}

static void test_slurm_user_is_refused(void **state)
{
    (void)state;
    account_rules r = {.uid_min = 1000, .slurm_user = "nobody"};
    expect_refused(&r, "nobody", -EPERM, "SlurmUser");
}

static void test_denied_account_is_refused(void **state)
{
    (void)state;
    static const char *const deny[] = {"games", "nobody", NULL};
    account_rules r = {.uid_min = 1000, .deny = deny};
    expect_refused(&r, "nobody", -EPERM, "deny list");
}

static void test_missing_and_invalid_names(void **state)
{
    (void)state;
    account_rules r = {.uid_min = 1000};
    expect_refused(&r, "no-such-account-xyz", -ENOENT, "does not exist");
    expect_refused(&r, "Root Me", -EINVAL, "not a valid Unix account name");
    expect_refused(&r, "", -EINVAL, "not a valid");
}

static void test_uid_min_is_read_from_login_defs(void **state)
{
    (void)state;
    char path[] = "/tmp/test_account.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# comment\nUID_MAX 60000\n  UID_MIN\t\t 2000\nSYS_UID_MIN 100\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(account_uid_min_read(path), 2000);
    FILE *f = fopen(path, "w");
    fputs("UID_MIN lots\n", f);
    fclose(f);
    assert_int_equal(account_uid_min_read(path), ACCOUNT_UID_MIN_DEFAULT);
    unlink(path);
    assert_int_equal(account_uid_min_read("/nonexistent/login.defs"), ACCOUNT_UID_MIN_DEFAULT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nobody_is_an_ordinary_account),
        cmocka_unit_test(test_root_is_refused),
        cmocka_unit_test(test_system_account_below_uid_min_is_refused),
        cmocka_unit_test(test_munge_account_is_refused_whatever_uid_min),
        cmocka_unit_test(test_slurm_user_is_refused),
        cmocka_unit_test(test_denied_account_is_refused),
        cmocka_unit_test(test_missing_and_invalid_names),
        cmocka_unit_test(test_uid_min_is_read_from_login_defs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
