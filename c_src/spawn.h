/*
 * spawn.h - starting a worker through its nanny (spawn.c, nanny.c) and learning how it
 * ended, for the manager port (docs/PROTOCOL.md, "Processes and channels", "The nanny").
 */
#ifndef PB_SPAWN_H
#define PB_SPAWN_H

#include <sys/types.h>

/* A spawned nanny and its worker, and the descriptors the manager port watches. */
typedef struct {
    pid_t nanny;
    pid_t worker;
    int ctl_fd;                          /* our end of the worker's ctl socket */
    int status_fd;                       /* the nanny's status pipe: worker pid, then status */
    int pidfd;                           /* the nanny's pidfd, or -1 (Linux < 5.3) */
} pb_spawned;

int pb_spawn(char *const argv[], pb_spawned *out);
int pb_read_status(int status_fd, int *status);
int pb_await_status(int status_fd, pid_t worker, int grace_ms);

#endif
