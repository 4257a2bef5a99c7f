/*
 * shm.c - a user port's shared-memory rings for large bodies (docs/PROTOCOL.md,
 * "Shared memory"). One memfd per port, made the first time either side has a body of
 * SHM_MIN or more:
 *
 *   0                    SHM_HALF                 2 * SHM_HALF
 *   ┌────────────────────┬────────────────────────┐
 *   │ ring C -> worker   │ ring worker -> C       │
 *   └────────────────────┴────────────────────────┘
 *
 * The descriptor goes to the worker on the ctl socket (CTL_SHM, id = the port's serial)
 * before PY_SHM_ATTACH goes on the port's channel, so the worker always has it by then.
 * A writer places a body whole at a monotonic position (skipping the ring's tail when it
 * would wrap) and sends the frame with FL_SHM and `pos:u64, len:u64` as its body; the
 * reader copies it out and hands the space back (PY_SHM_RELEASE / DRV_SHM_RETURN: free up
 * to pos + len). A body that does not fit goes inline.
 */
#define _GNU_SOURCE                      /* memfd_create */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pybridge_protocol.h"
#include "user.h"

#define SHM_SIZE (2 * (size_t)SHM_HALF)

void pb_shm_setup(pb_user *u)
{
    int fd, ok;
    char *m;
    if (u->shm || u->shm_failed || u->fd < 0) return;
    u->shm_failed = 1;
    fd = memfd_create("pybridge-shm", MFD_CLOEXEC);
    if (fd < 0) return;
    if (ftruncate(fd, (off_t)SHM_SIZE) < 0 ||
        (m = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        close(fd);
        return;
    }
    ok = pb_worker_send_fd(u->c.worker, CTL_SHM, u->serial, fd);
    close(fd);
    if (!ok) {
        munmap(m, SHM_SIZE);
        return;
    }
    u->shm = m;
    u->shm_failed = 0;
    pb_send_u64(u, PY_SHM_ATTACH, SHM_HALF);
}

void pb_shm_free(pb_user *u)
{
    if (u->shm) munmap(u->shm, SHM_SIZE);
    u->shm = NULL;
}

/* Copy a body of `total` bytes (the iov) into our ring. Its position, or -1: no room. */
static int64_t shm_put(pb_user *u, struct iovec *iov, int cnt, size_t total)
{
    uint64_t pos = u->shm_wpos, rel = u->shm_wrel, off = pos % SHM_HALF;
    char *p;
    int i;
    if (off && pos == rel)
        pos = rel = pos + SHM_HALF - off;   /* empty: the front, whose cache is warm */
    else if (off + total > SHM_HALF)
        pos += SHM_HALF - off;              /* a body never wraps */
    if (pos + total - rel > SHM_HALF) return -1;
    p = u->shm + pos % SHM_HALF;
    for (i = 0; i < cnt; i++) {
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    u->shm_wpos = pos + total;
    u->shm_wrel = rel;
    return (int64_t)pos;
}

/* A frame whose body goes through the ring. -1: not sent (send it inline instead). */
int pb_shm_send(pb_user *u, int op, struct iovec *iov, int cnt, size_t total)
{
    char b[16];
    int64_t pos;
    pb_shm_setup(u);
    if (!u->shm || (pos = shm_put(u, iov, cnt, total)) < 0) return -1;
    u->bytes_to_python += total;
    put64(b, (uint64_t)pos);
    put64(b + 8, total);
    /* a channel that failed fails the inline send too, which reports it */
    return pb_send_frame(u, op, FL_SHM, 0, b, 16);
}

/* DRV_SHM_RETURN: the worker has copied out our ring up to upto. -1: not a position. */
int pb_shm_returned(pb_user *u, uint64_t upto)
{
    if (upto < u->shm_wrel || upto > u->shm_wpos) return -1;
    u->shm_wrel = upto;
    return 0;
}

/* A frame flagged FL_SHM: its body is in the worker's ring. As pb_handle_frame. */
int pb_shm_frame(pb_user *u, pb_frame *f)
{
    uint64_t pos, len;
    ErlDrvBinary *b;
    int rc;
    if (!u->shm || f->len != 16) goto bad;
    pos = get64(f->body);
    len = get64(f->body + 8);
    if (len > SHM_HALF || pos % SHM_HALF + len > SHM_HALF || len + HDR_AFTER_LEN > u->max_frame)
        goto bad;
    /* a private copy: the worker cannot change what pb_handle_frame has checked */
    b = driver_alloc_binary(len ? (ErlDrvSizeT)len : 1);
    memcpy(b->orig_bytes, u->shm + SHM_HALF + pos % SHM_HALF, (size_t)len);
    pb_send_u64(u, PY_SHM_RELEASE, pos + len);
    u->cur_bin = b;
    f->fl &= ~FL_SHM;
    f->body = b->orig_bytes;
    f->len = (size_t)len;
    rc = pb_handle_frame(u, f);
    u->cur_bin = NULL;
    driver_free_binary(b);
    return rc;
bad:
    pb_protocol_error(u);
    return -1;
}
