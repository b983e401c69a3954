/* Small I/O helpers shared by lib/ and daemon/. */
#ifndef SESSYNC_LIB_IO_H
#define SESSYNC_LIB_IO_H

#include <stddef.h>

/* write() all of buf to a blocking fd, retrying EINTR and short writes.
 * Returns 0 or a negative errno. */
int io_write_all(int fd, const void *buf, size_t len);

/* Blocking connect to the unix socket at path (the relay and the CLI reach
 * the daemon this way). *ret_fd is written only on success (O_CLOEXEC).
 * Returns 0 or a negative errno. */
int io_unix_connect(const char *path, int *ret_fd);

#endif
