/* The sender's choice of frame for one dirty entry and one peer
 * (DESIGN.md "Deltas"): nothing if the peer already holds this version, a
 * TOUCH if it holds the same bytes under another mtime, a DELTA against the
 * kept basis if the peer holds that basis and the delta is smaller, else the
 * whole FILE; a DELETE for a tombstone. */
#ifndef SESSYNC_DAEMON_SEND_H
#define SESSYNC_DAEMON_SEND_H

#include <stddef.h>
#include <stdint.h>

struct node;
struct ent;
struct proto_wr;

/* Append the frame for e to wr with sequence seq. Returns 1 if a frame was
 * appended, 0 if nothing needs sending now (the peer has it, the file is
 * locked and was re-queued, or it is too large), <0 on error (out of
 * memory: the entry is re-queued). Updates the peer's byte counters. */
int send_entry(struct node *n, size_t idx, struct ent *e, struct proto_wr *wr, uint32_t seq);

#endif
