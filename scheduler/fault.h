/* fault.h - named crash points for the fault harness (`make reliability`).
 *
 * antennad reads ANTENNA_FAULT once at start-up, "point" or "point:n": the n-th time (default 1)
 * the process passes fault_point("point") it kills itself with SIGKILL, as a power cut would.
 * Unset (the default, and always in production), fault_point costs one branch and never fires.
 * Never logs, never allocates.
 *
 * The points antennad passes (docs/reliability.md lists them with what each proves):
 *   commit.before   inside a group commit: every change of the batch written, COMMIT not yet run
 *   commit.after    a batch is on disk; its callers have not been answered yet
 *   dispatch.begun  a job's dispatch (hold, state dispatching) is committed; Slurm not yet asked
 *   dispatch.sent   Slurm accepted the job; its Slurm id is not recorded yet
 *   charge.before   a finished job's charge is written in the batch; not committed yet
 */
#ifndef ANTENNA_FAULT_H
#define ANTENNA_FAULT_H

/* Reads ANTENNA_FAULT. Call once, before any thread starts. Returns 0, or -EINVAL when the
 * variable is set but malformed (the caller refuses to start). */
int fault_init(void);

/* Passes the crash point `name` (a string literal). Any thread. */
void fault_point(const char *name);

#endif
