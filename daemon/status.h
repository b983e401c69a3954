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
int status_render(const struct node *n, struct peer *const *peers, uint8_t format, struct proto_wr *wr);

/* In the CLI (status_client.c): ask the running daemon and print its
 * answer. Returns the exit status: 0, or 1 if it is not running. */
int status_query(const struct conf *c, int json);

#endif
