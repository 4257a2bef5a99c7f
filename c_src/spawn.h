/*
 * spawn.h - starting and reaping a worker process (spawn.c), for the manager port
 * (docs/PROTOCOL.md, "Processes and channels").
 */
#ifndef PB_SPAWN_H
#define PB_SPAWN_H

#include <sys/types.h>

int pb_spawn(char *const argv[], pid_t *pid, int *ctl_fd);
int pb_reap(pid_t pid);

#endif
