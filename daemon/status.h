/* What `sessyncd --status` shows: per-peer state, as a table for people or
 * as the JSON object of docs/DESIGN.md "Interface" for scripts. */
#ifndef SESSYNC_DAEMON_STATUS_H
#define SESSYNC_DAEMON_STATUS_H

#include <stdint.h>

struct conf;
struct node;
struct peer;
struct proto_wr;

/* In the daemon (status.c): append the status (not a frame: the bytes of a
 * STATUS frame's text) in format PROTO_STATUS_TEXT or PROTO_STATUS_JSON.
 * peers are the daemon's, in conf order. Returns 0 or -ENOMEM. */
int status_render(struct node *n, struct peer *const *peers, uint8_t format, struct proto_wr *wr);

/* In the CLI (status_client.c): ask the running daemon and print its
 * answer. Returns the exit status: 0, or 1 if it is not running. */
int status_query(const struct conf *c, int json);
/* --wait-ready: ask every 100 ms until the daemon is ready (exit status 0)
 * or timeout_ms has passed, or the daemon refuses us (1). A daemon not
 * running yet is waited for. On a terminal, progress on standard error. */
int status_wait_ready(const struct conf *c, uint64_t timeout_ms);

#endif
