/*
 * spawn.c - a worker process (docs/PROTOCOL.md, "Processes and channels", "The nanny"):
 * posix_spawn of the nanny's argv (never a shell) with the worker's ctl socket as fd 3
 * and the status pipe as fd 4; the worker's pid and wait status read from that pipe.
 */
#define _GNU_SOURCE                      /* posix_spawn_file_actions_addclosefrom_np */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "spawn.h"

#define CTL_FD 3
#define STATUS_FD 4
#define CTL_SNDTIMEO_US 200000           /* how long a ctl send may block a scheduler */
#define PID_WAIT_MS 2000                 /* the nanny forks at once; bound the wait anyway */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

extern char **environ;

/* 1 and *v once 4 bytes came, 0 at EOF or on an error, -1 if they would block. */
static int read_u32(int fd, uint32_t *v)
{
    unsigned char b[4];
    ssize_t r;
    do r = read(fd, b, 4); while (r < 0 && errno == EINTR);
    if (r < 0 && errno == EAGAIN) return -1;
    if (r != 4) return 0;                /* the nanny writes 4 bytes at once: no short read */
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 1;
}

/*
 * The nanny gets /dev/null as fd 0, the node's fd 1 and 2, the ctl socket as fd 3, the
 * status pipe as fd 4 and nothing else; the worker's pid comes first on that pipe. 0 and
 * *out filled in, or -1.
 */
int pb_spawn(char *const argv[], pb_spawned *out)
{
    posix_spawn_file_actions_t fa;
    struct timeval tv = { 0, CTL_SNDTIMEO_US };
    struct pollfd p;
    uint32_t worker = 0;
    int sv[2], st[2], fd, sfd, rc;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -1;
    if (pipe2(st, O_CLOEXEC) < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    /* keep the child's ends off fds 3 and 4, so that dup2 really clears close-on-exec */
    fd = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    sfd = fcntl(st[1], F_DUPFD_CLOEXEC, 10);
    close(sv[1]);
    close(st[1]);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, CTL_FD);
    posix_spawn_file_actions_adddup2(&fa, sfd, STATUS_FD);
    posix_spawn_file_actions_addclosefrom_np(&fa, STATUS_FD + 1);
    rc = posix_spawn(&out->nanny, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    close(sfd);
    p.fd = st[0];
    p.events = POLLIN;
    if (rc != 0 || poll(&p, 1, PID_WAIT_MS) != 1 || read_u32(st[0], &worker) != 1 || !worker) {
        if (rc == 0) kill(out->nanny, SIGKILL);   /* its worker follows (PDEATHSIG) */
        close(sv[0]);
        close(st[0]);
        return -1;
    }
    fcntl(st[0], F_SETFL, O_NONBLOCK);
    /* ctl sends block only briefly: a stuck worker must not stall a scheduler */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    out->worker = (pid_t)worker;
    out->ctl_fd = sv[0];
    out->status_fd = st[0];
    out->pidfd = (int)syscall(SYS_pidfd_open, out->nanny, 0);
    if (out->pidfd >= 0) fcntl(out->pidfd, F_SETFD, FD_CLOEXEC);
    return 0;
}

/*
 * The worker's wait status from the status pipe: 1 and *status, 0 if the nanny ended
 * without one (killed: its worker was killed with it, *status -1), -1 not yet.
 */
int pb_read_status(int status_fd, int *status)
{
    uint32_t v;
    int r = read_u32(status_fd, &v);
    if (r < 0) return -1;
    *status = r ? (int)v : -1;
    return r;
}

/* At the manager port's stop: the worker exits on ctl EOF; give it grace_ms, then SIGKILL. */
int pb_await_status(int status_fd, pid_t worker, int grace_ms)
{
    struct pollfd p = { status_fd, POLLIN, 0 };
    int status = -1;
    if (poll(&p, 1, grace_ms) == 0) {
        kill(worker, SIGKILL);
        poll(&p, 1, grace_ms);
    }
    pb_read_status(status_fd, &status);
    return status;
}
