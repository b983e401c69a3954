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

int wire_dispatch(struct proto_wr *in, wire_msg_cb cb, void *ctx, const char **ret_why) {
        size_t off = 0, flen;
        int r;

        *ret_why = NULL;
        for (;;) {
                struct proto_msg m;

                r = proto_frame_len(in->buf + off, in->len - off, &flen);
                if (r == -EAGAIN) {
                        r = 0;
                        break;
                }
                if (r < 0) {
                        *ret_why = wire_strerror(r);
                        break;
                }
                r = proto_msg_decode(in->buf + off, flen, &m);
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
