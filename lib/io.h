/* Small I/O helpers shared by lib/ and daemon/. */
#ifndef SESSYNC_LIB_IO_H
#define SESSYNC_LIB_IO_H

#include <stddef.h>

/* write() all of buf to a blocking fd, retrying EINTR and short writes.
 * Returns 0 or a negative errno. */
int io_write_all(int fd, const void *buf, size_t len);

#endif
