/* test_job_output.c - unit tests for job_output.c: each test makes its own job folder in a fresh
 * temporary directory, plants what a hostile job could leave there, and removes it all. Runs as
 * root (chown), as the daemon does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "job_output.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OWNER ((uid_t)4242)
#define OTHER ((uid_t)4343)

typedef struct fixture {
    char root[64];
    char dir[96];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    snprintf(f->root, sizeof f->root, "/tmp/test_job_output.XXXXXX");
    if (mkdtemp(f->root) == NULL) return -1;
    snprintf(f->dir, sizeof f->dir, "%s/7", f->root);
    snprintf(f->path, sizeof f->path, "%s/output.log", f->dir);
    if (mkdir(f->dir, 0700) < 0 || chown(f->dir, OWNER, OWNER) < 0) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Writes `text` to f->path, owned by `uid`. */
static void plant_file(const fixture *f, const char *text, uid_t uid)
{
    int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchown(fd, uid, uid), 0);
    close(fd);
}

static void test_read_serves_a_regular_file_of_the_owner(void **state)
{
    fixture *f = *state;
    job_output_chunk ch;
    char err[256] = "";
    plant_file(f, "hello\n", OWNER);
    assert_int_equal(job_output_read(f->path, OWNER, 0, 0, &ch, err, sizeof err), 0);
    assert_int_equal(ch.len, 6);
    assert_memory_equal(ch.data, "hello\n", 6);
    assert_int_equal(ch.next, 6);
    assert_true(ch.end);
    job_output_chunk_close(&ch);
}

static void test_read_from_an_offset_serves_the_rest(void **state)
{
    fixture *f = *state;
    job_output_chunk ch;
    char err[256] = "";
    plant_file(f, "0123456789", OWNER);
    assert_int_equal(job_output_read(f->path, OWNER, 4, 3, &ch, err, sizeof err), 0);
    assert_int_equal(ch.len, 3);
    assert_memory_equal(ch.data, "456", 3);
    assert_int_equal(ch.offset, 4);
    assert_int_equal(ch.next, 7);
    assert_false(ch.end);
    job_output_chunk_close(&ch);
}

static void test_read_past_the_end_is_empty_and_the_end(void **state)
{
    fixture *f = *state;
    job_output_chunk ch;
    char err[256] = "";
    plant_file(f, "abc", OWNER);
    assert_int_equal(job_output_read(f->path, OWNER, 99, 0, &ch, err, sizeof err), 0);
    assert_int_equal(ch.len, 0);
    assert_true(ch.end);
    job_output_chunk_close(&ch);
}

static void test_read_of_a_huge_file_is_one_bounded_chunk(void **state)
{
    fixture *f = *state;
    job_output_chunk ch;
    char err[256] = "";
    plant_file(f, "", OWNER);
    assert_int_equal(truncate(f->path, (off_t)8 << 30), 0); /* 8 GiB, sparse */
    assert_int_equal(job_output_read(f->path, OWNER, 0, 0, &ch, err, sizeof err), 0);
    assert_int_equal(ch.len, JOB_OUTPUT_CHUNK_DEFAULT);
    assert_false(ch.end);
    assert_int_equal(ch.next, JOB_OUTPUT_CHUNK_DEFAULT);
    job_output_chunk_close(&ch);
    /* a caller asking for more than the maximum gets the maximum */
    assert_int_equal(job_output_read(f->path, OWNER, 0, (size_t)1 << 30, &ch, err, sizeof err), 0);
    assert_int_equal(ch.len, JOB_OUTPUT_CHUNK_MAX);
    job_output_chunk_close(&ch);
}

static void test_read_of_a_missing_file_is_enoent(void **state)
{
    fixture *f = *state;
    job_output_chunk ch;
    char err[256] = "";
    assert_int_equal(job_output_read(f->path, OWNER, 0, 0, &ch, err, sizeof err), -ENOENT);
}

static void test_read_refuses_a_fifo_without_blocking(void **state)
{
    fixture *f = *state;
    job_output_chunk ch;
    char err[256] = "";
    assert_int_equal(mkfifo(f->path, 0644), 0);
    assert_int_equal(chown(f->path, OWNER, OWNER), 0);
    time_t t0 = time(NULL);
    assert_int_equal(job_output_read(f->path, OWNER, 0, 0, &ch, err, sizeof err), -EPERM);
    assert_true(time(NULL) - t0 < 2);
    assert_non_null(strstr(err, "FIFO"));
}

static void test_read_refuses_a_symlink_to_etc_shadow(void **state)
{
    fixture *f = *state;
    job_output_chunk ch;
    char err[256] = "";
    assert_int_equal(symlink("/etc/shadow", f->path), 0);
    assert_int_equal(lchown(f->path, OWNER, OWNER), 0);
    assert_int_equal(job_output_read(f->path, OWNER, 0, 0, &ch, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "symbolic link"));
    assert_null(ch.data);
}

static void test_read_refuses_a_hard_link(void **state)
{
    fixture *f = *state;
    job_output_chunk ch;
    char err[256] = "", other[160];
    plant_file(f, "someone else's secret\n", OWNER);
    snprintf(other, sizeof other, "%s/elsewhere", f->root);
    assert_int_equal(link(f->path, other), 0);
    assert_int_equal(job_output_read(f->path, OWNER, 0, 0, &ch, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "hard links"));
}

static void test_read_refuses_a_file_of_another_owner(void **state)
{
    fixture *f = *state;
    job_output_chunk ch;
    char err[256] = "";
    plant_file(f, "not yours\n", OTHER);
    assert_int_equal(job_output_read(f->path, OWNER, 0, 0, &ch, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "owned by uid 4343"));
}

static void test_read_refuses_a_directory_named_output_log(void **state)
{
    fixture *f = *state;
    job_output_chunk ch;
    char err[256] = "";
    assert_int_equal(mkdir(f->path, 0755), 0);
    assert_int_equal(chown(f->path, OWNER, OWNER), 0);
    assert_int_equal(job_output_read(f->path, OWNER, 0, 0, &ch, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "directory"));
}

static void test_read_refuses_a_job_folder_that_is_a_symlink(void **state)
{
    fixture *f = *state;
    job_output_chunk ch;
    char err[256] = "", link_dir[128], path[160];
    snprintf(link_dir, sizeof link_dir, "%s/8", f->root);
    assert_int_equal(symlink("/etc", link_dir), 0);
    snprintf(path, sizeof path, "%s/shadow", link_dir);
    assert_int_equal(job_output_read(path, 0, 0, 0, &ch, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "folder"));
}

static void test_read_refuses_a_path_without_a_folder(void **state)
{
    (void)state;
    job_output_chunk ch;
    char err[256] = "";
    assert_int_equal(job_output_read("output.log", OWNER, 0, 0, &ch, err, sizeof err), -EINVAL);
}

/* --- the lane --- */

struct lane_test {
    job_output_task t;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    bool *release;
    int ran, finished;
};

static void blocking_work(job_output_task *t)
{
    struct lane_test *lt = (struct lane_test *)t;
    pthread_mutex_lock(lt->mu);
    while (!*lt->release)
        pthread_cond_wait(lt->cv, lt->mu);
    pthread_mutex_unlock(lt->mu);
    lt->ran++;
}

static void count_done(job_output_task *t)
{
    ((struct lane_test *)t)->finished++;
}

static void keep_alive(uv_prepare_t *h)
{
    (void)h;
}

static void test_lane_refuses_beyond_its_bound_then_finishes_all(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_prepare_t alive; /* the lane's handle does not keep a loop alive; the daemon's server does */
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_prepare_init(&loop, &alive);
    uv_prepare_start(&alive, keep_alive);
    job_output_lane *l = NULL;
    assert_int_equal(job_output_lane_new(&loop, 2, 3, &l), 0);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    bool release = false;
    struct lane_test t[4];
    for (int i = 0; i < 4; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].t.work = blocking_work;
        t[i].t.done = count_done;
        t[i].mu = &mu;
        t[i].cv = &cv;
        t[i].release = &release;
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(job_output_lane_push(l, &t[i].t), 0);
    /* two threads are stuck on their files and one read waits: the fourth is refused at once */
    assert_int_equal(job_output_lane_push(l, &t[3].t), -EBUSY);
    assert_int_equal(job_output_lane_held(l), 3);
    pthread_mutex_lock(&mu);
    release = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int spins = 0; spins < 2000 && job_output_lane_held(l) > 0; spins++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t[i].ran, 1);
        assert_int_equal(t[i].finished, 1);
    }
    assert_int_equal(t[3].ran + t[3].finished, 0);
    assert_int_equal(job_output_lane_push(l, &t[3].t), 0); /* room again */
    for (int spins = 0; spins < 2000 && job_output_lane_held(l) > 0; spins++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(t[3].finished, 1);
    uv_close((uv_handle_t *)&alive, NULL);
    job_output_lane_free(l);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_lane_free_accepts_null(void **state)
{
    (void)state;
    job_output_lane_free(NULL);
    job_output_chunk_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_serves_a_regular_file_of_the_owner, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_from_an_offset_serves_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_past_the_end_is_empty_and_the_end, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_of_a_huge_file_is_one_bounded_chunk, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_of_a_missing_file_is_enoent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_refuses_a_fifo_without_blocking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_refuses_a_symlink_to_etc_shadow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_refuses_a_hard_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_refuses_a_file_of_another_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_refuses_a_directory_named_output_log, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_refuses_a_job_folder_that_is_a_symlink, setup,
                                        teardown),
        cmocka_unit_test(test_read_refuses_a_path_without_a_folder),
        cmocka_unit_test(test_lane_refuses_beyond_its_bound_then_finishes_all),
        cmocka_unit_test(test_lane_free_accepts_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
