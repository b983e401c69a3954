/* Framed byte streams: the input buffer of a connection, split into frames
 * and decoded, shared by the outbound peer (libssh2 channel) and inbound
 * connections (unix socket). */
#ifndef SESSYNC_DAEMON_WIRE_H
#define SESSYNC_DAEMON_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"
#include "proto/msg.h"

/* The frame at the front of buf[0..len), if it is whole: 1 with *ret
 * decoded (its data points into buf and lives as long as those bytes) and
 * *ret_len its length, to be consumed by the caller; 0 if more bytes are
 * needed; -EMSGSIZE as soon as the length field says the frame is longer
 * than max bytes (header included), so an oversized frame is refused from
 * its first four bytes; or the decode error (-EBADMSG, -EPROTO). *ret and
 * *ret_len are written only when 1 is returned. */
int wire_next(const uint8_t *buf, size_t len, size_t max, struct proto_msg *ret, size_t *ret_len);

/* Called per decoded frame; a negative return stops dispatch and is
 * returned by wire_dispatch. */
typedef int (*wire_msg_cb)(void *ctx, const struct proto_msg *m);

/* Decode every whole frame in in, call cb for each, drop the consumed bytes.
 * Returns 0 (maybe with a partial frame left), or the decode error
 * (-EBADMSG, -EMSGSIZE, -EPROTO) or cb's error; *ret_why then says what
 * was wrong, for the log. */
int wire_dispatch(struct proto_wr *in, wire_msg_cb cb, void *ctx, const char **ret_why);

/* Text for a decode error. */
const char *wire_strerror(int r);

#endif
