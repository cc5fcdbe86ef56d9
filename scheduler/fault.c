/* fault.c - named crash points for the fault harness. Never fires unless ANTENNA_FAULT is set. */
#include "fault.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fault_name[64];
static atomic_long fault_left;
static int fault_armed;

int fault_init(void)
{
    const char *v = getenv("ANTENNA_FAULT");
    fault_armed = 0;
    if (v == NULL || v[0] == '\0') return 0;
    const char *colon = strchr(v, ':');
    size_t len = colon ? (size_t)(colon - v) : strlen(v);
    long n = 1;
    if (len == 0 || len >= sizeof fault_name) return -EINVAL;
    if (colon) {
        char *end;
        errno = 0;
        n = strtol(colon + 1, &end, 10);
        if (errno != 0 || *end != '\0' || n < 1) return -EINVAL;
    }
    memcpy(fault_name, v, len);
    fault_name[len] = '\0';
    atomic_store(&fault_left, n);
    fault_armed = 1;
    return 0;
}

void fault_point(const char *name)
{
    if (!fault_armed || strcmp(name, fault_name) != 0) return;
    if (atomic_fetch_sub(&fault_left, 1) == 1) {
        static const char msg[] = "antennad: ANTENNA_FAULT: crash point reached\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        kill(getpid(), SIGKILL);
    }
}
