/* job_output.c - a job's output file read without trusting its folder, and the output lane.
 * Must never follow a link, open a file in blocking mode, serve what is not a regular file of the
 * job's account with one link, read more than one chunk, or run a read on the loop thread. */
#include "job_output.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Says why `sb` may not be served, or returns NULL when it may. */
static const char *refusal(const struct stat *sb, uid_t owner, char *buf, size_t len)
{
    if (S_ISFIFO(sb->st_mode)) return "it is a FIFO, not a regular file";
    if (S_ISDIR(sb->st_mode)) return "it is a directory, not a regular file";
    if (S_ISSOCK(sb->st_mode)) return "it is a socket, not a regular file";
    if (S_ISCHR(sb->st_mode) || S_ISBLK(sb->st_mode)) return "it is a device, not a regular file";
    if (!S_ISREG(sb->st_mode)) return "it is not a regular file";
    if (sb->st_uid != owner) {
        snprintf(buf, len, "it is owned by uid %u, not by the job's account (uid %u)",
                 (unsigned)sb->st_uid, (unsigned)owner);
        return buf;
    }
    if (sb->st_nlink != 1) {
        snprintf(buf, len, "it has %lu hard links (a link to another file); an output file has one",
                 (unsigned long)sb->st_nlink);
        return buf;
    }
    return NULL;
}

int job_output_read(const char *path, uid_t owner, uint64_t offset, size_t max,
                    job_output_chunk *out, char *err, size_t errlen)
{
    int ret;
    memset(out, 0, sizeof *out);
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (slash == NULL || slash == path || slash[1] == '\0') {
        set_err(err, errlen, "the output path %s has no folder", path ? path : "(null)");
        return -EINVAL;
    }
    if (max == 0) max = JOB_OUTPUT_CHUNK_DEFAULT;
    if (max > JOB_OUTPUT_CHUNK_MAX) max = JOB_OUTPUT_CHUNK_MAX;
    if (offset > (uint64_t)INT64_MAX) {
        set_err(err, errlen, "the offset is beyond any file");
        return -EINVAL;
    }
    size_t dlen = (size_t)(slash - path);
    char *dir = malloc(dlen + 1);
    if (dir == NULL) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    memcpy(dir, path, dlen);
    dir[dlen] = '\0';
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        ret = -errno;
        if (ret == -ENOENT) goto fail_dir;
        if (ret == -ELOOP || ret == -ENOTDIR) {
            set_err(err, errlen, "the job's folder is not a directory (a link or a file)");
            ret = -EPERM;
        } else {
            set_err(err, errlen, "cannot open the job's folder: %s", strerror(-ret));
        }
        goto fail_dir;
    }
    int fd = openat(dfd, slash + 1, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        ret = -errno;
        if (ret == -ELOOP) {
            set_err(err, errlen, "the output file %s is a symbolic link", slash + 1);
            ret = -EPERM;
        } else if (ret == -ENXIO || ret == -ENODEV) {
            set_err(err, errlen, "the output file %s is not a regular file", slash + 1);
            ret = -EPERM;
        } else if (ret != -ENOENT) {
            set_err(err, errlen, "cannot open the output file %s: %s", slash + 1, strerror(-ret));
        }
        goto fail_open;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        ret = -errno;
        set_err(err, errlen, "cannot stat the output file: %s", strerror(-ret));
        goto fail_stat;
    }
    char why[160];
    const char *no = refusal(&sb, owner, why, sizeof why);
    if (no != NULL) {
        set_err(err, errlen, "the output file %s is not served: %s", slash + 1, no);
        ret = -EPERM;
        goto fail_stat;
    }
    out->offset = offset;
    out->size = (uint64_t)sb.st_size;
    size_t want = max;
    if (offset >= out->size)
        want = 0;
    else if (out->size - offset < want)
        want = (size_t)(out->size - offset);
    out->data = malloc(want + 1);
    if (out->data == NULL) {
        ret = -ENOMEM;
        set_err(err, errlen, "out of memory");
        goto fail_stat;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(fd, out->data + got, want - got, (off_t)(offset + got));
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r < 0) {
            ret = -errno;
            set_err(err, errlen, "cannot read the output file: %s", strerror(-ret));
            goto fail_read;
        }
        if (r == 0) break; /* it shrank meanwhile */
        got += (size_t)r;
    }
    out->data[got] = '\0';
    out->len = got;
    out->next = offset + got;
    out->end = out->next >= out->size;
    if (got == 0) {
        free(out->data);
        out->data = NULL;
    }
    close(fd);
    close(dfd);
    free(dir);
    return 0;

fail_read:
    free(out->data);
    memset(out, 0, sizeof *out);
fail_stat:
    close(fd);
fail_open:
    close(dfd);
fail_dir:
    free(dir);
    return ret;
}

void job_output_chunk_close(job_output_chunk *c)
{
    if (c == NULL) return;
    free(c->data);
    memset(c, 0, sizeof *c);
}

/* --- the lane ------------------------------------------------------------------------------ */

struct job_output_lane {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_output_task *head, *tail;           /* to run */
    job_output_task *done_head, *done_tail; /* run, to finish on the loop thread */
    unsigned held;                          /* queued + running + run and not finished */
    unsigned max;
    bool stop;
    pthread_t *th;
    unsigned n_th;
    uv_async_t async;
};

static void *lane_main(void *arg)
{
    job_output_lane *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->head == NULL && !l->stop)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->head == NULL) break;
        job_output_task *t = l->head;
        l->head = t->next;
        if (l->head == NULL) l->tail = NULL;
        pthread_mutex_unlock(&l->mu);
        t->work(t);
        pthread_mutex_lock(&l->mu);
        t->next = NULL;
        if (l->done_tail)
            l->done_tail->next = t;
        else
            l->done_head = t;
        l->done_tail = t;
        uv_async_send(&l->async);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Loop thread: finishes what the threads ran. */
static void lane_finished(uv_async_t *h)
{
    job_output_lane *l = h->data;
    pthread_mutex_lock(&l->mu);
    job_output_task *t = l->done_head;
    l->done_head = l->done_tail = NULL;
    pthread_mutex_unlock(&l->mu);
    while (t != NULL) {
        job_output_task *next = t->next;
        pthread_mutex_lock(&l->mu);
        l->held--;
        pthread_mutex_unlock(&l->mu);
        t->done(t);
        t = next;
    }
}

int job_output_lane_new(uv_loop_t *loop, unsigned threads, unsigned max, job_output_lane **out)
{
    int ret = -ENOMEM;
    job_output_lane *l = calloc(1, sizeof *l);
    if (l == NULL) return -ENOMEM;
    l->max = max ? max : JOB_OUTPUT_LANE_MAX;
    if (threads == 0) threads = JOB_OUTPUT_LANE_THREADS;
    l->th = calloc(threads, sizeof *l->th);
    if (l->th == NULL) goto fail_th;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (uv_async_init(loop, &l->async, lane_finished) < 0) goto fail_async;
    l->async.data = l;
    uv_unref((uv_handle_t *)&l->async);
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&l->th[i], NULL, lane_main, l) != 0) break;
        l->n_th++;
    }
    if (l->n_th == 0) {
        ret = -EAGAIN;
        goto fail_threads;
    }
    *out = l;
    return 0;

fail_threads:
    /* the handle is initialised: it may only go through uv_close, which frees the lane */
    l->stop = true;
    job_output_lane_free(l);
    return ret;
fail_async:
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l->th);
fail_th:
    free(l);
    return ret;
}

int job_output_lane_push(job_output_lane *l, job_output_task *t)
{
    int ret = 0;
    pthread_mutex_lock(&l->mu);
    if (l->stop) {
        ret = -ESHUTDOWN;
    } else if (l->held >= l->max) {
        ret = -EBUSY;
    } else {
        t->next = NULL;
        if (l->tail)
            l->tail->next = t;
        else
            l->head = t;
        l->tail = t;
        l->held++;
        pthread_cond_signal(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return ret;
}

unsigned job_output_lane_held(const job_output_lane *l)
{
    job_output_lane *m = (job_output_lane *)l;
    pthread_mutex_lock(&m->mu);
    unsigned n = m->held;
    pthread_mutex_unlock(&m->mu);
    return n;
}

static void lane_closed(uv_handle_t *h)
{
    job_output_lane *l = h->data;
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l->th);
    free(l);
}

void job_output_lane_free(job_output_lane *l)
{
    if (l == NULL) return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (unsigned i = 0; i < l->n_th; i++)
        pthread_join(l->th[i], NULL);
    l->n_th = 0;
    uv_close((uv_handle_t *)&l->async, lane_closed);
}
