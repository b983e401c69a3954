/* Bounds-checked reader and growing writer for wire bytes.
 *
 * Every byte that comes from outside the process is decoded through a
 * struct proto_rd. Each getter checks before it consumes: on failure it
 * returns a negative errno, and both the cursor and the out-parameter are
 * left unchanged (modelled on OpenSSH's sshbuf getters). All integers are
 * big-endian on the wire.
 *
 * Errors: -EBADMSG  the bytes are not there or not well formed
 *         -EMSGSIZE a length prefix is above its cap
 */
#ifndef SESSYNC_PROTO_BUF_H
#define SESSYNC_PROTO_BUF_H

#include <stddef.h>
#include <stdint.h>

struct proto_rd {
        const uint8_t *p;   /* borrowed; must outlive the reader */
        size_t len;
        size_t off;
};

static inline void proto_rd_init(struct proto_rd *rd, const void *p, size_t len) {
        rd->p = p;
        rd->len = len;
        rd->off = 0;
}

static inline size_t proto_rd_left(const struct proto_rd *rd) {
        return rd->len - rd->off;
}

int proto_get_u8(struct proto_rd *rd, uint8_t *ret);
int proto_get_u16(struct proto_rd *rd, uint16_t *ret);
int proto_get_u32(struct proto_rd *rd, uint32_t *ret);
int proto_get_u64(struct proto_rd *rd, uint64_t *ret);

/* A u32 length, then that many bytes. The length is tested against max
 * (-EMSGSIZE), then against the bytes left (-EBADMSG). *ret points into
 * the reader's buffer and lives as long as it does. */
int proto_get_blob(struct proto_rd *rd, size_t max, const uint8_t **ret, size_t *ret_len);

/* A u8 length, then that many bytes, copied into out[] and NUL-terminated.
 * out must hold at least max+1 bytes; max is at most 255. Embedded NUL
 * bytes are -EBADMSG: a name on the wire is never truncated silently. */
int proto_get_str(struct proto_rd *rd, size_t max, char *out);

/* 0 when every byte was consumed, -EBADMSG on trailing bytes. */
int proto_rd_end(const struct proto_rd *rd);

/* Writer: a heap buffer that grows. A failed allocation is remembered in
 * err and every later put is a no-op, so a sequence of puts is checked once,
 * at the end, with proto_wr_error(). */
struct proto_wr {
        uint8_t *buf;       /* owned; free with proto_wr_free() */
        size_t len;
        size_t cap;
        int err;
};

void proto_wr_init(struct proto_wr *wr);
void proto_wr_free(struct proto_wr *wr);
void proto_wr_reset(struct proto_wr *wr);            /* len = 0, keeps buf */
int proto_wr_reserve(struct proto_wr *wr, size_t extra);
void proto_put_u8(struct proto_wr *wr, uint8_t v);
void proto_put_u16(struct proto_wr *wr, uint16_t v);
void proto_put_u32(struct proto_wr *wr, uint32_t v);
void proto_put_u64(struct proto_wr *wr, uint64_t v);
void proto_put_bytes(struct proto_wr *wr, const void *p, size_t len);
void proto_put_blob(struct proto_wr *wr, const void *p, size_t len);   /* u32 len + bytes */
void proto_put_str(struct proto_wr *wr, const char *s);                 /* u8 len + bytes; s <= 255 */
/* printf-style text, no NUL (status tables, metrics). Lines over 1 KiB are
 * cut. */
void proto_put_fmt(struct proto_wr *wr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Overwrite a u32 at an offset already written (frame length fix-up). */
void proto_poke_u32(struct proto_wr *wr, size_t off, uint32_t v);
/* Drop the first n bytes (after a partial write to a socket). */
void proto_wr_consume(struct proto_wr *wr, size_t n);
static inline int proto_wr_error(const struct proto_wr *wr) { return wr->err; }

#endif
