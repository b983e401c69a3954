/* --status, the client side: ask the running daemon over its socket for the
 * text that status_render made there, and print it. */
#include "daemon/status.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/wire.h"
#include "lib/conf.h"
#include "lib/io.h"
#include "proto/msg.h"

int status_query(const struct conf *c, int json) {
        struct proto_msg m = { .type = PROTO_STATUS_REQ, .kind = json ? PROTO_STATUS_JSON : PROTO_STATUS_TEXT };
        struct proto_wr wr;
        int fd = -1, r, wr_err, code = 1;

        proto_wr_init(&wr);
        if ((r = io_unix_connect(c->socket, &fd)) < 0) {
                fprintf(stderr, "sessyncd: not running (cannot connect to %s: %s)\n", c->socket, strerror(-r));
                goto out;
        }
        if ((r = proto_msg_encode(&wr, &m)) < 0)
                goto fail;
        /* A daemon that refuses us has said why before closing: read that
         * even if our request could not be written. */
        wr_err = io_write_all(fd, wr.buf, wr.len);
        proto_wr_reset(&wr);
        for (;;) {
                char buf[16384];
                size_t flen;
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = wr_err < 0 ? wr_err : n < 0 ? -errno : -ECONNRESET;
                        goto fail;
                }
                proto_put_bytes(&wr, buf, (size_t)n);
                r = proto_frame_len(wr.buf, wr.len, &flen);
                if (r == -EAGAIN)
                        continue;
                if (r == 0)
                        r = proto_msg_decode(wr.buf, flen, &m);
                if (r < 0)
                        goto fail;
                if (m.type == PROTO_ERROR) {
                        char clean[256];

                        fprintf(stderr, "sessyncd: the daemon at %s refused: %s\n", c->socket,
                                log_clean(clean, sizeof(clean), m.data, m.data_len));
                        goto out;
                }
                if (m.type != PROTO_STATUS) {
                        r = -EPROTO;
                        goto fail;
                }
                fwrite(m.data, 1, m.data_len, stdout);
                code = 0;
                goto out;
        }
fail:
        fprintf(stderr, "sessyncd: status from %s: %s\n", c->socket, wire_strerror(r));
out:
        if (fd >= 0)
                close(fd);
        proto_wr_free(&wr);
        return code;
}
