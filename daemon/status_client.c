/* --status and --wait-ready, the client side: ask the running daemon over
 * its socket for the text that status_render made there. */
#include "daemon/status.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/wire.h"
#include "lib/conf.h"
#include "lib/io.h"
#include "proto/msg.h"

/* Ask the daemon for one status text in format. Returns 0 with *ret_text
 * (owned, NUL-terminated), or a negative errno with why set for the
 * message: the daemon's own reason when it refused us (-EACCES). */
static int ask(const struct conf *c, uint8_t format, char **ret_text, char *why, size_t why_size) {
        struct proto_msg m = { .type = PROTO_STATUS_REQ, .kind = format };
        struct proto_wr wr;
        int fd = -1, r, wr_err;

        why[0] = 0;
        proto_wr_init(&wr);
        if ((r = io_unix_connect(c->socket, &fd)) < 0) {
                snprintf(why, why_size, "not running (cannot connect to %s: %s)", c->socket, strerror(-r));
                goto out;
        }
        if ((r = proto_msg_encode(&wr, &m)) < 0)
                goto out;
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
                        goto out;
                }
                proto_put_bytes(&wr, buf, (size_t)n);
                r = proto_frame_len(wr.buf, wr.len, &flen);
                if (r == -EAGAIN)
                        continue;
                if (r == 0)
                        r = proto_msg_decode(wr.buf, flen, &m);
                if (r < 0)
                        goto out;
                if (m.type == PROTO_ERROR) {
                        char clean[256];

                        snprintf(why, why_size, "the daemon at %s refused: %s", c->socket,
                                 log_clean(clean, sizeof(clean), m.data, m.data_len));
                        r = -EACCES;
                        goto out;
                }
                if (m.type != PROTO_STATUS) {
                        r = -EPROTO;
                        goto out;
                }
                if (!(*ret_text = strndup((const char *)m.data, m.data_len)))
                        r = -ENOMEM;
                goto out;
        }
out:
        if (r < 0 && !why[0])
                snprintf(why, why_size, "status from %s: %s", c->socket, wire_strerror(r));
        if (fd >= 0)
                close(fd);
        proto_wr_free(&wr);
        return r;
}

int status_query(const struct conf *c, int json) {
        char why[512], *text = NULL;

        if (ask(c, json ? PROTO_STATUS_JSON : PROTO_STATUS_TEXT, &text, why, sizeof(why)) < 0) {
                fprintf(stderr, "sessyncd: %s\n", why);
                return 1;
        }
        fputs(text, stdout);
        free(text);
        return 0;
}

int status_wait_ready(const struct conf *c, uint64_t timeout_ms) {
        uint64_t deadline = loop_clock_ms() + timeout_ms;
        bool tty = isatty(STDERR_FILENO);
        char why[512], last[512] = "";

        for (;;) {
                char *text = NULL;
                int r = ask(c, PROTO_STATUS_READY, &text, why, sizeof(why));

                if (r == 0) {
                        text[strcspn(text, "\n")] = 0;
                        snprintf(why, sizeof(why), "%s", text);
                        free(text);
                        if (strcmp(why, "ready") == 0) {
                                if (tty)
                                        fprintf(stderr, "\r\033[K");
                                printf("%s: ready\n", c->name);
                                return 0;
                        }
                }
                /* Not running yet is worth waiting for: the web server's
                 * unit may start right after ours. Refused is not. */
                if (r == -EACCES || loop_clock_ms() >= deadline) {
                        if (tty)
                                fprintf(stderr, "\r\033[K");
                        fprintf(stderr, "sessyncd: %s: %s\n", c->name, why);
                        return 1;
                }
                if (tty)
                        fprintf(stderr, "\r\033[K%s: %s", c->name, why);
                else if (strcmp(why, last) != 0)
                        fprintf(stderr, "%s: %s\n", c->name, why);
                snprintf(last, sizeof(last), "%s", why);
                usleep(100 * 1000);
        }
}
