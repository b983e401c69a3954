#include "proto/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int need(const struct proto_rd *rd, size_t n) {
        return proto_rd_left(rd) >= n ? 0 : -EBADMSG;
}

int proto_get_u8(struct proto_rd *rd, uint8_t *ret) {
        if (need(rd, 1) < 0)
                return -EBADMSG;
        *ret = rd->p[rd->off];
        rd->off += 1;
        return 0;
}

int proto_get_u16(struct proto_rd *rd, uint16_t *ret) {
        const uint8_t *p;

        if (need(rd, 2) < 0)
                return -EBADMSG;
        p = rd->p + rd->off;
        *ret = (uint16_t)((uint16_t)p[0] << 8 | p[1]);
        rd->off += 2;
        return 0;
}

int proto_get_u32(struct proto_rd *rd, uint32_t *ret) {
        const uint8_t *p;

        if (need(rd, 4) < 0)
                return -EBADMSG;
        p = rd->p + rd->off;
        *ret = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        rd->off += 4;
        return 0;
}

int proto_get_u64(struct proto_rd *rd, uint64_t *ret) {
        const uint8_t *p;
        uint64_t v = 0;

        if (need(rd, 8) < 0)
                return -EBADMSG;
        p = rd->p + rd->off;
        for (int i = 0; i < 8; i++)
                v = v << 8 | p[i];
        *ret = v;
        rd->off += 8;
        return 0;
}

int proto_get_blob(struct proto_rd *rd, size_t max, const uint8_t **ret, size_t *ret_len) {
        struct proto_rd peek = *rd;
        uint32_t n;
        int r;

        if ((r = proto_get_u32(&peek, &n)) < 0)
                return r;
        if (n > max)
                return -EMSGSIZE;
        if (need(&peek, n) < 0)
                return -EBADMSG;
        *ret = peek.p + peek.off;
        *ret_len = n;
        rd->off = peek.off + n;
        return 0;
}

int proto_get_str(struct proto_rd *rd, size_t max, char *out) {
        struct proto_rd peek = *rd;
        uint8_t n;
        int r;

        if ((r = proto_get_u8(&peek, &n)) < 0)
                return r;
        if (n > max)
                return -EMSGSIZE;
        if (need(&peek, n) < 0)
                return -EBADMSG;
        if (memchr(peek.p + peek.off, 0, n))
                return -EBADMSG;
        memcpy(out, peek.p + peek.off, n);
        out[n] = 0;
        rd->off = peek.off + n;
        return 0;
}

int proto_rd_end(const struct proto_rd *rd) {
        return proto_rd_left(rd) == 0 ? 0 : -EBADMSG;
}

void proto_wr_init(struct proto_wr *wr) {
        memset(wr, 0, sizeof(*wr));
}

void proto_wr_free(struct proto_wr *wr) {
        free(wr->buf);
        proto_wr_init(wr);
}

void proto_wr_reset(struct proto_wr *wr) {
        wr->len = 0;
        wr->err = 0;
}

int proto_wr_reserve(struct proto_wr *wr, size_t extra) {
        size_t cap;
        uint8_t *p;

        if (wr->err)
                return wr->err;
        if (wr->cap - wr->len >= extra)
                return 0;
        if (extra > SIZE_MAX / 2 - wr->len)
                return (wr->err = -ENOMEM);
        cap = wr->cap ? wr->cap : 256;
        while (cap - wr->len < extra)
                cap *= 2;
        p = realloc(wr->buf, cap);
        if (!p)
                return (wr->err = -ENOMEM);
        wr->buf = p;
        wr->cap = cap;
        return 0;
}

void proto_put_bytes(struct proto_wr *wr, const void *p, size_t len) {
        if (len == 0 || proto_wr_reserve(wr, len) < 0)
                return;
        memcpy(wr->buf + wr->len, p, len);
        wr->len += len;
}

void proto_put_u8(struct proto_wr *wr, uint8_t v) {
        proto_put_bytes(wr, &v, 1);
}

void proto_put_u16(struct proto_wr *wr, uint16_t v) {
        uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
        proto_put_bytes(wr, b, 2);
}

void proto_put_u32(struct proto_wr *wr, uint32_t v) {
        uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
        proto_put_bytes(wr, b, 4);
}

void proto_put_u64(struct proto_wr *wr, uint64_t v) {
        proto_put_u32(wr, (uint32_t)(v >> 32));
        proto_put_u32(wr, (uint32_t)v);
}

void proto_put_blob(struct proto_wr *wr, const void *p, size_t len) {
        if (wr->err)
                return;         /* keep the first error */
        if (len > UINT32_MAX) {
                wr->err = -EMSGSIZE;
                return;
        }
        proto_put_u32(wr, (uint32_t)len);
        proto_put_bytes(wr, p, len);
}

void proto_put_str(struct proto_wr *wr, const char *s) {
        size_t n = strlen(s);

        if (wr->err)
                return;         /* keep the first error */
        if (n > 255) {
                wr->err = -EMSGSIZE;
                return;
        }
        proto_put_u8(wr, (uint8_t)n);
        proto_put_bytes(wr, s, n);
}

void proto_put_fmt(struct proto_wr *wr, const char *fmt, ...) {
        char buf[1024];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n > 0)
                proto_put_bytes(wr, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void proto_poke_u32(struct proto_wr *wr, size_t off, uint32_t v) {
        /* Not off + 4 > len: that wraps for an off near SIZE_MAX. */
        if (wr->err || off > wr->len || wr->len - off < 4)
                return;
        wr->buf[off] = (uint8_t)(v >> 24);
        wr->buf[off + 1] = (uint8_t)(v >> 16);
        wr->buf[off + 2] = (uint8_t)(v >> 8);
        wr->buf[off + 3] = (uint8_t)v;
}

void proto_wr_consume(struct proto_wr *wr, size_t n) {
        if (n >= wr->len) {
                wr->len = 0;
                return;
        }
        memmove(wr->buf, wr->buf + n, wr->len - n);
        wr->len -= n;
}
