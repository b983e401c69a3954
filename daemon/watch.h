/* The inotify watcher of the session directory.
 *
 * Which events, and why (PHP's files handler, ext/session/mod_files.c):
 *  IN_CLOSE_WRITE  PHP opens O_RDWR, rewrites in place under flock, closes.
 *                  Every request closes a writable fd, even one that changed
 *                  nothing, so the event says "look", not "changed": the
 *                  caller compares (mtime ns, content hash) with what it had.
 *  IN_ATTRIB       lazy_write with unchanged data only calls utime(): a
 *                  touch, shipped as an mtime-only message.
 *  IN_DELETE       session_destroy() and the GC unlink.
 *  IN_MOVED_TO     a file renamed in (tools that write-and-rename).
 *  IN_MOVED_FROM   a file renamed away: for us, a delete.
 *  IN_Q_OVERFLOW   the kernel dropped events: the caller rescans.
 *  IN_DELETE_SELF/IN_MOVE_SELF/IN_UNMOUNT: the directory itself went away.
 * Not taken: IN_MODIFY (fires mid-write, per write(); the close follows),
 * IN_CREATE (PHP creates the file empty and holds the lock until it writes;
 * the close that follows is the event that matters), IN_CLOSE_NOWRITE (our
 * own reads open O_RDONLY for exactly this reason).
 * IN_EXCL_UNLINK: no events for files already unlinked.
 */
#ifndef SESSYNC_DAEMON_WATCH_H
#define SESSYNC_DAEMON_WATCH_H

#include <stdint.h>

struct loop;
struct watch;

/* name: a directory entry (not yet validated) or NULL with IN_Q_OVERFLOW or
 * IN_IGNORED (directory gone). The string lives for the call only. */
typedef void (*watch_cb)(void *ctx, const char *name, uint32_t mask);

int watch_new(struct loop *l, const char *dir, watch_cb cb, void *ctx, struct watch **ret);
void watch_free(struct watch *w);

#endif
