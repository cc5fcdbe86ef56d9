/* job_output.h - a job's output file, read safely for the API, and the output lane its reads run
 * on.
 *
 * The job's folder belongs to the job's Unix account, so whatever is in it is the job's choice: the
 * file is opened relative to the folder without following links and without blocking, and served
 * only when it is a regular file owned by the job's account with exactly one link, at most a
 * bounded chunk per read. The reads run on the output lane: a few threads of its own with a bound
 * on the reads in flight, so a slow or stuck file never holds libuv's pool or the loop thread.
 * Never follows a link, never reads more than the chunk asked for, never logs.
 */
#ifndef ANTENNA_JOB_OUTPUT_H
#define ANTENNA_JOB_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

/* The default and the largest chunk one read serves, in bytes. */
#define JOB_OUTPUT_CHUNK_DEFAULT (256u << 10)
#define JOB_OUTPUT_CHUNK_MAX     (4u << 20)
/* The output lane's threads and the reads it holds (running or waiting) at most. */
#define JOB_OUTPUT_LANE_THREADS 2
#define JOB_OUTPUT_LANE_MAX     8

/* One chunk of a job's output. Caller-allocated; job_output_chunk_close frees its data. */
typedef struct job_output_chunk {
    char *data;      /* heap, len bytes (plus a NUL); NULL when len is 0 */
    size_t len;      /* bytes read */
    uint64_t offset; /* where they start in the file */
    uint64_t next;   /* the offset to ask for next (offset + len) */
    uint64_t size;   /* the file's size when it was read */
    bool end;        /* the read reached the end of the file (as it was then) */
} job_output_chunk;

/* Reads at most `max` bytes (0 = JOB_OUTPUT_CHUNK_DEFAULT; capped at JOB_OUTPUT_CHUNK_MAX) from
 * `offset` of the file `path` ("<folder>/<name>"): opens the folder with O_DIRECTORY|O_NOFOLLOW,
 * then the file relative to it with O_NOFOLLOW|O_NONBLOCK, and serves it only when fstat says it
 * is a regular file owned by `owner` with one link. Blocking (file I/O): the output lane's threads
 * only. Thread-safe. Returns 0 with *out filled (close it with job_output_chunk_close); -ENOENT
 * when the folder or the file does not exist (yet: nothing to serve); -EPERM when the file is
 * refused, with err[errlen] saying why (a link, not a regular file, another owner, hard links);
 * -EINVAL (a path without a folder), -ENOMEM or another negative errno with a message. */
int job_output_read(const char *path, uid_t owner, uint64_t offset, size_t max,
                    job_output_chunk *out, char *err, size_t errlen);

/* Frees the chunk's data and zeroes it. Accepts NULL and a zeroed chunk. */
void job_output_chunk_close(job_output_chunk *c);

/* A unit of work for the output lane, embedded by the caller in its own struct. `work` runs on a
 * lane thread, then `done` on the loop thread. */
typedef struct job_output_task job_output_task;
struct job_output_task {
    job_output_task *next; /* the lane's */
    void (*work)(job_output_task *t);
    void (*done)(job_output_task *t);
};

typedef struct job_output_lane job_output_lane;

/* Starts a lane of `threads` threads (0 = JOB_OUTPUT_LANE_THREADS) holding at most `max` tasks
 * (0 = JOB_OUTPUT_LANE_MAX), its answers sent back to `loop` (borrowed) through a uv_async that
 * does not keep the loop alive. Loop thread only. Returns 0 and sets *out, or -ENOMEM / -EAGAIN. */
int job_output_lane_new(uv_loop_t *loop, unsigned threads, unsigned max, job_output_lane **out);

/* Queues `t` (borrowed until its done callback ran). Loop thread only. Returns 0, or -EBUSY when
 * the lane already holds its maximum (the caller answers 503 with Retry-After; neither callback
 * fires) or -ESHUTDOWN after job_output_lane_free began. */
int job_output_lane_push(job_output_lane *l, job_output_task *t);

/* The tasks the lane holds (queued or running). Loop thread only. */
unsigned job_output_lane_held(const job_output_lane *l);

/* Stops the lane: its threads run what is queued, then are joined, and the handle is closed, whose
 * close callback frees the lane: run the loop once after (api_free does). The done callbacks of
 * tasks not finished on the loop by then never fire (the HTTP server was closed first, so nobody
 * waits for them). Loop thread only. Accepts NULL. */
void job_output_lane_free(job_output_lane *l);

#endif
