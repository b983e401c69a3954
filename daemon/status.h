/* What `sessyncd --status` shows: per-peer state, as a table for people or
 * as the JSON object of DESIGN.md "Interface" for scripts. */
#ifndef SESSYNC_DAEMON_STATUS_H
#define SESSYNC_DAEMON_STATUS_H

#include <stdint.h>

struct node;
struct proto_wr;

/* Append the status (not a frame: the bytes of a STATUS frame's text) in
 * format PROTO_STATUS_TEXT or PROTO_STATUS_JSON. Returns 0 or -ENOMEM. */
int status_render(const struct node *n, uint8_t format, struct proto_wr *wr);

#endif
