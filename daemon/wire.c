#include "daemon/wire.h"

#include <errno.h>
#include <string.h>

const char *wire_strerror(int r) {
        switch (r) {
        case -EBADMSG: return "malformed frame";
        case -EMSGSIZE: return "frame or field over its size limit";
        case -EPROTO: return "unknown frame type, bad magic or unsupported protocol version";
        default: return strerror(r < 0 ? -r : r);
        }
}

int wire_next(const uint8_t *buf, size_t len, size_t max, struct proto_msg *ret, size_t *ret_len) {
        struct proto_rd rd;
        uint32_t n;
        size_t flen;
        int r;

        /* The cap is tested on the length field alone, so a frame over it is
         * refused before any more of it is read. */
        proto_rd_init(&rd, buf, len);
        if (proto_get_u32(&rd, &n) < 0)
                return 0;
        if ((size_t)n + 4 > max)
                return -EMSGSIZE;
        r = proto_frame_len(buf, len, &flen);
        if (r == -EAGAIN)
                return 0;
        if (r < 0)
                return r;
        if ((r = proto_msg_decode(buf, flen, ret)) < 0)
                return r;
        *ret_len = flen;
        return 1;
}

int wire_dispatch(struct proto_wr *in, wire_msg_cb cb, void *ctx, const char **ret_why) {
        size_t off = 0, flen;
        int r;

        *ret_why = NULL;
        for (;;) {
                struct proto_msg m;

                r = wire_next(in->buf + off, in->len - off, PROTO_FRAME_MAX + 4, &m, &flen);
                if (r == 0)
                        break;
                if (r < 0) {
                        *ret_why = wire_strerror(r);
                        break;
                }
                off += flen;
                if ((r = cb(ctx, &m)) < 0)
                        break;
        }
        proto_wr_consume(in, off);
        return r;
}
