/* sessync wire messages: frame split, encode and decode. Pure functions
 * over bytes, no I/O. The byte layout is in proto/PROTOCOL.md.
 *
 * Frame: u32 len | u8 type | u32 seq | payload      (len counts type..payload)
 *
 * Errors: -EAGAIN need more bytes, -EBADMSG malformed, -EMSGSIZE over a cap,
 *         -EPROTO unknown type or wrong protocol version/magic.
 */
#ifndef SESSYNC_PROTO_MSG_H
#define SESSYNC_PROTO_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"

#define PROTO_MAGIC 0x5353594eu          /* "SSYN" */
#define PROTO_VERSION 1
#define PROTO_HDR_LEN 9                   /* len + type + seq */
#define PROTO_FRAME_MAX (16u << 20)       /* len field cap: a whole file fits */
#define PROTO_DATA_MAX (PROTO_FRAME_MAX - 4096)
#define PROTO_NODE_MAX 64
#define PROTO_NAME_MAX 255                /* NAME_MAX: one path component */
#define PROTO_TEXT_MAX 255
#define PROTO_INV_MAX 4096                /* entries in one INV frame */

enum proto_type {
        PROTO_HELLO = 1,
        PROTO_FILE = 2,
        PROTO_DELTA = 3,
        PROTO_TOUCH = 4,
        PROTO_DELETE = 5,
        PROTO_ACK = 6,
        PROTO_INV = 7,
        PROTO_INV_END = 8,
        PROTO_PING = 9,
        PROTO_PONG = 10,
        PROTO_RELAY = 11,       /* local socket only: first frame from the --serve relay */
        PROTO_STATUS_REQ = 12,  /* local socket only */
        PROTO_STATUS = 13,      /* local socket only */
        PROTO_ERROR = 14,       /* either side: a reason before closing */
        PROTO_INV_REQ = 15,     /* pusher: send me your inventory again (periodic catch-up) */
        PROTO_HANDOFF = 16,     /* local socket only: the relay's stdin/stdout (SCM_RIGHTS); the daemon's ack */
        PROTO_TYPE_MAX_ = 16,
};

/* A file's version: origin's mtime in ns since the epoch, ties broken by the
 * xxh3-64 hash of the content. Which version wins is lib/ver.h. */
struct proto_ver {
        uint64_t mtime_ns;
        uint64_t hash;
};

/* Tombstone kinds, and INV entry kinds (0 = a live file). */
enum proto_kind {
        PROTO_KIND_FILE = 0,
        PROTO_KIND_DESTROY = 1,   /* logout: ver.mtime_ns is the time of the delete */
        PROTO_KIND_EXPIRE = 2,    /* GC: ver is the deleted file's version */
};

enum proto_status {
        PROTO_ST_OK = 0,          /* applied, or already had exactly this version */
        PROTO_ST_STALE = 1,       /* receiver holds a version that beats this one */
        PROTO_ST_NEED_FULL = 2,   /* basis or touch hash mismatch: send the whole file */
        PROTO_ST_BUSY = 3,        /* file locked by a PHP request: retry soon */
        PROTO_ST_RETRY = 4,       /* transient failure (ENOSPC, EIO): retry later */
        PROTO_ST_REJECT = 5,      /* never acceptable here (too large, bad name) */
        PROTO_ST_MAX_ = 5,
};

enum proto_status_format {
        PROTO_STATUS_TEXT = 0,
        PROTO_STATUS_JSON = 1,
        PROTO_STATUS_READY = 2,   /* one line: "ready", or "not ready: why" (--wait-ready, the health check) */
};

/* One decoded message. Strings are copied into the struct; data points into
 * the frame buffer given to proto_msg_decode() and lives as long as it does. */
struct proto_msg {
        uint8_t type;
        uint32_t seq;

        /* HELLO */
        uint16_t version;
        uint64_t clock_ns;            /* HELLO, PING, PONG: sender's CLOCK_REALTIME */
        uint64_t echo_ns;             /* PONG: the PING's clock_ns, echoed */
        char node[PROTO_NODE_MAX + 1];/* HELLO: sender's node name; RELAY: --from peer or "" */
        char to[PROTO_NODE_MAX + 1];  /* HELLO: the node the sender meant to reach */

        /* FILE, DELTA, TOUCH, DELETE, ACK */
        char name[PROTO_NAME_MAX + 1];
        struct proto_ver ver;         /* ACK: the receiver's version after the operation */
        uint8_t kind;                 /* DELETE: enum proto_kind; ACK: kind the receiver holds;
                                         STATUS_REQ: enum proto_status_format */
        uint64_t basis_hash;          /* DELTA */
        uint64_t size;                /* FILE/DELTA: size of the resulting file */
        const uint8_t *data;          /* FILE: content; DELTA: librsync delta; INV: entries; STATUS/ERROR: text */
        size_t data_len;

        /* ACK */
        uint32_t ack_seq;
        uint8_t status;               /* enum proto_status */

        /* INV */
        uint32_t count;
};

/* One inventory entry, as iterated by proto_inv_next(). */
struct proto_inv_ent {
        char name[PROTO_NAME_MAX + 1];
        uint8_t kind;
        struct proto_ver ver;
};

/* Split one frame off the front of buf. On success *ret_len is the whole
 * frame's length (header included) and the frame can be given to
 * proto_msg_decode(). -EAGAIN: incomplete, read more. -EMSGSIZE: the length
 * field is over PROTO_FRAME_MAX (checked on the first 4 bytes, before any
 * buffering), -EBADMSG: shorter than a header. */
int proto_frame_len(const uint8_t *buf, size_t len, size_t *ret_len);

/* Decode exactly one whole frame (as sized by proto_frame_len). Names in
 * FILE/DELTA/TOUCH/DELETE/ACK/INV are checked for charset and length only
 * here (no '/', no NUL, not "." or ".."); the session prefix check is the
 * caller's (sess_name_valid). *ret is written only on success. */
int proto_msg_decode(const uint8_t *frame, size_t len, struct proto_msg *ret);

/* Iterate INV entries: rd over msg.data/msg.data_len. Returns 1 with *ret
 * filled, 0 at the end (count reached and no trailing bytes), <0 on error. */
int proto_inv_next(struct proto_rd *rd, uint32_t *left, struct proto_inv_ent *ret);

/* Encoders append one frame to wr. They return 0, or a negative errno if a
 * field is over its cap or allocation failed (wr is then unusable until
 * proto_wr_reset). */
int proto_msg_encode(struct proto_wr *wr, const struct proto_msg *m);

/* INV encoding is incremental: begin, add entries, end. */
size_t proto_inv_begin(struct proto_wr *wr, uint32_t seq);
void proto_inv_add(struct proto_wr *wr, const char *name, uint8_t kind, const struct proto_ver *ver);
int proto_inv_end(struct proto_wr *wr, size_t start, uint32_t count);

/* True if name is one path component the receiver may create: 1..255
 * bytes, no '/', no NUL, not "." or "..". */
bool proto_name_ok(const char *name, size_t len);

/* Node names: [A-Za-z0-9._-]{1,64}. */
bool proto_node_ok(const char *name);

const char *proto_type_name(uint8_t type);
const char *proto_status_name(uint8_t status);

#endif
