/*
 * nanny.c - pybridge_nanny, the process between the VM and one Python worker
 * (docs/PROTOCOL.md, "The nanny"). It exists to wait for the worker: the VM ignores
 * SIGCHLD, so its own children are reaped by the kernel and their exit status is lost.
 *
 *   pybridge_nanny VM_PID MEMORY_LIMIT -- WORKER_ARGV...
 *
 * fd 3 is the worker's ctl socket (passed on to the worker, then closed here), fd 4 the
 * write end of the status pipe to the manager port. On fd 4 it writes the worker's pid
 * (u32) once forked, then its raw wait status (i32) once it is gone, and exits. Both
 * nanny and worker die with their parent (PR_SET_PDEATHSIG): a killed VM takes the
 * nanny, and the nanny's end the worker. MEMORY_LIMIT (bytes, 0 for none) becomes the
 * worker's RLIMIT_AS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define CTL_FD 3
#define STATUS_FD 4

static void put_u32(uint32_t v)
{
    unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v };
    while (write(STATUS_FD, b, 4) < 0 && errno == EINTR)
        ;
}

/* The parent is gone already, or goes: PDEATHSIG covers only a death after the prctl. */
static void die_with(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
}

int main(int argc, char **argv)
{
    pid_t vm, nanny = getpid(), worker;
    unsigned long long limit;
    int status;
    sigset_t none;
    if (argc < 5 || strcmp(argv[3], "--") != 0) return 2;
    vm = (pid_t)strtol(argv[1], NULL, 10);
    limit = strtoull(argv[2], NULL, 10);
    die_with(vm);
    /* what the VM ignores or blocks, posix_spawn passed on: the worker gets defaults */
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC);
    worker = fork();
    if (worker < 0) {
        put_u32(0);
        return 1;
    }
    if (worker == 0) {
        die_with(nanny);
        if (limit) {
            struct rlimit r = { (rlim_t)limit, (rlim_t)limit };
            setrlimit(RLIMIT_AS, &r);
        }
        execv(argv[4], argv + 4);
        _exit(127);
    }
    /* the worker holds ctl now: its EOF must mean the worker's end, not ours */
    close(CTL_FD);
    put_u32((uint32_t)worker);
    while (waitpid(worker, &status, 0) < 0)
        if (errno != EINTR) {
            status = -1;
            break;
        }
    put_u32((uint32_t)status);
    return 0;
}
