/* The receiving side: apply one FILE, DELTA, TOUCH or DELETE from a peer,
 * exactly as DESIGN.md says, and fill in the ACK.
 *
 *  - names are validated like names from the directory (sess_name_valid);
 *  - the file is opened with openat(O_NOFOLLOW) on the directory fd and
 *    locked LOCK_EX without blocking: a PHP request holding it gets BUSY and
 *    the sender retries shortly;
 *  - a version older than the one on disk, or beaten by a tombstone, is
 *    refused (STALE, with what we hold) and counted as a conflict;
 *  - content is written in place (same inode) with the origin's mtime;
 *  - a basis or result hash mismatch asks for the whole file (NEED_FULL);
 *  - ENOSPC and other write errors leave the old bytes intact and answer
 *    RETRY.
 */
#ifndef SESSYNC_DAEMON_RECV_H
#define SESSYNC_DAEMON_RECV_H

#include <stddef.h>

struct node;
struct proto_msg;

/* m is a decoded FILE/DELTA/TOUCH/DELETE from peer number idx (conf order).
 * *ack is filled (type ACK). Never fails: every outcome is a status. */
void recv_apply(struct node *n, size_t idx, const struct proto_msg *m, struct proto_msg *ack);

#endif
