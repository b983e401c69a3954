/* Open fds over a unix stream socket (SCM_RIGHTS): the relay hands its
 * stdin and stdout, the pipes from sshd, to the daemon, which then serves
 * the peer on them (docs/DESIGN.md "Connections", "Inbound connections").
 * Plain syscalls, no state. */
#ifndef SESSYNC_DAEMON_FDPASS_H
#define SESSYNC_DAEMON_FDPASS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The most fds one message may carry: the relay's stdin and stdout. */
#define FDPASS_MAX 2

/* Send all of buf (a few frames: at most a socket buffer) on a blocking
 * socket, with n_fds (1..FDPASS_MAX) fds attached to its first byte. The
 * fds stay open here. Returns 0 or a negative errno. */
int fdpass_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds);

/* One non-blocking read of up to len bytes, like recv(MSG_DONTWAIT), that
 * also takes the fds attached to them, O_CLOEXEC, into fds[*ret_n]
 * (*ret_n counts what fds already holds and grows; at most FDPASS_MAX in
 * all). Returns the bytes read (0 at EOF) or a negative errno (-EAGAIN:
 * nothing now). More fds than fit, or a truncated control message
 * (MSG_CTRUNC: the kernel closed what did not fit), is -ETOOMANYREFS: every
 * fd received by this call is closed then, those already in fds stay, and
 * the bytes read are lost (the caller drops the connection). */
ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fds, size_t *ret_n);

/* 0 if fd is a pipe or a socket open for reading (want_write false) or
 * writing (true), else a negative errno: -EBADF not open that way, -EINVAL
 * a regular file, device or anything else: only a byte stream from sshd
 * may be a peer's connection. */
int fdpass_stream_ok(int fd, bool want_write);

#endif
