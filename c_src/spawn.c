/*
 * spawn.c - a worker process (docs/PROTOCOL.md, "Processes and channels"): posix_spawn of
 * an argv (never a shell) with its ctl socket as fd 3, and the wait for its exit.
 */
#define _GNU_SOURCE                      /* posix_spawn_file_actions_addclosefrom_np */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

#define CTL_FD 3
#define CTL_SNDTIMEO_US 200000           /* how long a ctl send may block a scheduler */
#define REAP_TRIES 40                    /* times REAP_STEP_US: the grace before SIGKILL */
#define REAP_STEP_US 5000

extern char **environ;

/*
 * The worker gets /dev/null as fd 0, the node's fd 1 and 2, the ctl socket as fd 3 and
 * nothing else. 0 with *pid and our end of the socket in *ctl_fd, or -1.
 */
int pb_spawn(char *const argv[], pid_t *pid, int *ctl_fd)
{
    posix_spawn_file_actions_t fa;
    struct timeval tv = { 0, CTL_SNDTIMEO_US };
    int sv[2], fd, rc;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -1;
    /* keep the child's end off fd 3, so that dup2 onto 3 really clears close-on-exec */
    fd = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    close(sv[1]);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, CTL_FD);
    posix_spawn_file_actions_addclosefrom_np(&fa, CTL_FD + 1);
    rc = posix_spawn(pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    if (rc != 0) {
        close(sv[0]);
        return -1;
    }
    /* ctl sends block only briefly: a stuck worker must not stall a scheduler */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    *ctl_fd = sv[0];
    return 0;
}

/* The worker's waitpid status (-1 if unknown), once it is gone. */
int pb_reap(pid_t pid)
{
    int i, status = -1;
    /* the worker exits on its own once ctl closes; give it 200 ms, then SIGKILL */
    for (i = 0; i < REAP_TRIES; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) return status;
        usleep(REAP_STEP_US);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}
