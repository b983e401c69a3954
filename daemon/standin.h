/* The stand-in: what `sessyncd --serve` starts when no daemon answers on
 * the node's socket (docs/DESIGN.md "Inbound connections"). A child
 * process that takes the node's state lock and applies peers' frames in
 * the daemon's place, with the daemon's own objects and code, built as the
 * daemon builds them (daemon_open: strict.c's checks of PHP's user and the
 * session directory, the journal; the start-up judgement and scan; the
 * socket server's dispatch and node_recv; the turn, so tombstones are
 * durable before any ACK) but with no watcher, no peers of its own to push
 * to, no health or metrics, on a socket of its own, state_dir/serve.sock.
 * Every --serve that finds no daemon reaches that socket; the stand-in
 * lives as long as the --serve that started it, and hands the state over
 * to a daemon that starts (daemon/handover.h). */
#ifndef SESSYNC_DAEMON_STANDIN_H
#define SESSYNC_DAEMON_STANDIN_H

#include <stddef.h>

struct conf;

/* Connect to the node's stand-in, starting one if none runs. Returns 0 and
 * *ret_fd (a connection on which the relay sends RELAY, as to the daemon),
 * -EBUSY while the state is held by someone else (a daemon starting,
 * another stand-in starting, a --full-sync: try the daemon's socket again
 * shortly), or another negative errno with *why saying what the operator
 * must fix. */
int standin_reach(const struct conf *c, int *ret_fd, char *why, size_t why_size);

#endif
