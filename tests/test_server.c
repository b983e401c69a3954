/* daemon/server: the bounds of docs/DESIGN.md "Bounds" and "Inbound
 * connections", on a real unix socket and the real loop, with the node of
 * fixture_node.h ("a", peers "b" and "c"). A client writes, then the loop
 * runs a given number of iterations (each: callbacks, timers, then a turn
 * that flushes the replies as daemon_turn does), then the client reads what
 * came back. */
#include "fixture_server.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "daemon/server.h"
#include "proto/buf.h"
#include "proto/msg.h"

#define SHARE 256   /* SRV_SHARE_FRAMES */

struct cl {
        int fd;
        struct proto_wr in;
        int n[PROTO_TYPE_MAX_ + 1];   /* frames received, by type */
        bool eof;
        char error[256];              /* the last ERROR's text */
};

static void cl_open(struct cl *c) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };

        memset(c, 0, sizeof(*c));
        proto_wr_init(&c->in);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        cr_assert_geq(c->fd, 0);
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
        cr_assert_eq(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
}

static void cl_close(struct cl *c) {
        close(c->fd);
        proto_wr_free(&c->in);
}

/* Write what the socket takes of wr; returns the bytes written. */
static size_t cl_write(struct cl *c, const struct proto_wr *wr) {
        size_t off = 0;

        while (off < wr->len) {
                ssize_t n = write(c->fd, wr->buf + off, wr->len - off);

                if (n < 0) {
                        cr_assert(errno == EAGAIN, "write: %s", strerror(errno));
                        break;
                }
                off += (size_t)n;
        }
        return off;
}

static void cl_send(struct cl *c, const struct proto_msg *m) {
        struct proto_wr wr;

        proto_wr_init(&wr);
        cr_assert_eq(proto_msg_encode(&wr, m), 0);
        cr_assert_eq(cl_write(c, &wr), wr.len);
        proto_wr_free(&wr);
}

static void cl_hello(struct cl *c) {
        struct proto_msg relay = { .type = PROTO_RELAY };
        struct proto_msg hello = { .type = PROTO_HELLO, .version = PROTO_VERSION, .clock_ns = 1 };

        strcpy(hello.node, "b");
        strcpy(hello.to, "a");
        cl_send(c, &relay);
        cl_send(c, &hello);
}

/* Read what has arrived; count the frames by type. */
static void cl_read(struct cl *c) {
        for (;;) {
                uint8_t buf[65536];
                ssize_t n = read(c->fd, buf, sizeof(buf));
                size_t off = 0, flen;

                if (n == 0 || (n < 0 && errno == ECONNRESET)) {
                        c->eof = true;
                        return;
                }
                if (n < 0) {
                        cr_assert(errno == EAGAIN, "read: %s", strerror(errno));
                        return;
                }
                proto_put_bytes(&c->in, buf, (size_t)n);
                while (proto_frame_len(c->in.buf + off, c->in.len - off, &flen) == 0) {
                        struct proto_msg m;

                        cr_assert_eq(proto_msg_decode(c->in.buf + off, flen, &m), 0);
                        c->n[m.type]++;
                        if (m.type == PROTO_ERROR)
                                snprintf(c->error, sizeof(c->error), "%.*s", (int)m.data_len, (const char *)m.data);
                        off += flen;
                }
                proto_wr_consume(&c->in, off);
        }
}

static void put_pings(struct proto_wr *wr, size_t n) {
        for (size_t i = 0; i < n; i++) {
                struct proto_msg p = { .type = PROTO_PING, .seq = (uint32_t)i, .clock_ns = 7 };

                cr_assert_eq(proto_msg_encode(wr, &p), 0);
        }
}

TestSuite(server, .init = srv_setup, .fini = srv_teardown, .timeout = 30);

/* A fair share: frames already waiting are not all handled in one go, and
 * none is left behind (the resume timer and level-triggered epoll). */
Test(server, one_connection_gets_a_share_of_each_turn) {
        struct proto_wr wr;
        struct cl c;
        size_t sent, frames;

        cl_open(&c);
        cl_hello(&c);
        proto_wr_init(&wr);
        put_pings(&wr, 8000);
        sent = cl_write(&c, &wr);
        frames = sent / (wr.len / 8000);   /* whole PINGs */
        cr_assert_gt(frames, 4 * SHARE, "only %zu PINGs fit in the socket", frames);
        iterate(1);
        cl_read(&c);
        cr_assert_eq(c.n[PROTO_HELLO], 1);
        cr_assert_leq(c.n[PROTO_PONG], 2 * SHARE, "%d PINGs of %zu answered in one iteration: no share", c.n[PROTO_PONG],
                      frames);
        cr_assert_gt(c.n[PROTO_PONG], 0);
        for (int i = 0; i < 100 && (size_t)c.n[PROTO_PONG] < frames; i++) {
                iterate(1);
                cl_read(&c);
        }
        cr_assert_eq((size_t)c.n[PROTO_PONG], frames, "%d of %zu PINGs answered: frames left behind",
                     c.n[PROTO_PONG], frames);
        proto_wr_free(&wr);
        cl_close(&c);
}

/* Before a HELLO is accepted a frame over 4 KiB is refused from its
 * length field; after it, a big frame is read (and judged on its bytes). */
Test(server, big_frames_only_after_the_handshake) {
        uint8_t head[9] = { 0, 0, 0x10, 0x00, PROTO_HELLO };   /* len 4096: 4100 bytes in all */
        struct proto_wr wr;
        struct cl c, p;

        cl_open(&c);
        proto_wr_init(&wr);
        proto_put_bytes(&wr, head, sizeof(head));
        cr_assert_eq(cl_write(&c, &wr), wr.len);
        iterate(2);
        cl_read(&c);
        cr_assert_eq(c.n[PROTO_ERROR], 1);
        cr_assert_str_eq(c.error, "frame over the limit before the handshake");
        cr_assert(c.eof, "still open after the refusal");

        cl_open(&p);
        cl_hello(&p);
        proto_wr_reset(&wr);
        head[1] = 1;   /* 69632 bytes of PING: over 4 KiB, malformed */
        head[4] = PROTO_PING;
        proto_put_bytes(&wr, head, sizeof(head));
        for (int i = 0; i < 69632 - 5; i++)
                proto_put_u8(&wr, 0);
        cr_assert_eq(cl_write(&p, &wr), wr.len);
        for (int i = 0; i < 5 && !p.eof; i++) {
                iterate(1);
                cl_read(&p);
        }
        cr_assert_eq(p.n[PROTO_HELLO], 1);
        cr_assert_str_eq(p.error, "malformed frame", "a peer's 68 KiB frame: %s", p.error);
        proto_wr_free(&wr);
        cl_close(&c);
        cl_close(&p);
}

/* One inventory at a time: the HELLO's, then the five requests sent while
 * it was unwritten are answered by one more. */
Test(server, inventory_requests_are_coalesced) {
        struct cl c;

        put_file("sess_inv1", "a|i:1;", 1700000000);
        put_file("sess_inv2", "a|i:2;", 1700000000);
        check("sess_inv1");
        check("sess_inv2");
        cl_open(&c);
        cl_hello(&c);
        for (int i = 0; i < 5; i++)
                cl_send(&c, &(struct proto_msg){ .type = PROTO_INV_REQ, .seq = (uint32_t)i + 1 });
        for (int i = 0; i < 10; i++) {
                iterate(1);
                cl_read(&c);
        }
        cr_assert_eq(c.n[PROTO_INV_END], 2, "%d inventories for a HELLO and 5 requests", c.n[PROTO_INV_END]);
        cl_send(&c, &(struct proto_msg){ .type = PROTO_INV_REQ, .seq = 9 });
        for (int i = 0; i < 5; i++) {
                iterate(1);
                cl_read(&c);
        }
        cr_assert_eq(c.n[PROTO_INV_END], 3, "a request after the inventories are out is answered");
        cl_close(&c);
}

/* Backpressure: a peer that never reads can make the daemon hold at most
 * the high-water mark (1 MiB) of replies; then nothing more is read from
 * it, so what it can write at all is bounded too. */
Test(server, a_peer_that_does_not_read_is_not_read) {
        struct proto_wr wr;
        size_t total = 0, pos = 0;
        uint64_t last = loop_clock_ms();
        struct cl c;

        cl_open(&c);
        cl_hello(&c);
        proto_wr_init(&wr);
        put_pings(&wr, 4096);   /* 68 KiB a round */
        /* Until the socket has taken nothing for a second. */
        while (loop_clock_ms() - last < 1000 && total < (64u << 20)) {
                ssize_t n = write(c.fd, wr.buf + pos, wr.len - pos);   /* a stream of whole PINGs */

                if (n > 0) {
                        total += (size_t)n;
                        pos = (pos + (size_t)n) % wr.len;
                        last = loop_clock_ms();
                }
                iterate(1);
        }
        cl_read(&c);
        cr_assert(!c.eof && c.n[PROTO_ERROR] == 0, "closed: %s", c.error);
        /* PONG 25 bytes for 17 of PING: 1 MiB of replies, the socket
         * buffers both ways (~200 KiB each) and one read in flight. */
        cr_assert_lt(total, (2u << 20) + (512u << 10), "%zu bytes of PINGs taken from a peer that reads nothing", total);
        cr_assert_gt(total, (1u << 20) * 17 / 25, "only %zu bytes of PINGs taken", total);
        proto_wr_free(&wr);
        cl_close(&c);
}

/* Unclassified sockets have a pool of 16: the oldest goes when it is
 * full, and none of them keeps --status out. */
Test(server, silent_sockets_do_not_crowd_out_the_cli) {
        struct cl silent[40], st;
        int closed = 0;

        for (int i = 0; i < 40; i++)
                cl_open(&silent[i]);
        iterate(3);
        for (int i = 0; i < 40; i++) {
                cl_read(&silent[i]);
                closed += silent[i].eof;
        }
        cr_assert_eq(closed, 40 - 16, "%d of 40 silent sockets closed", closed);
        cr_assert(silent[0].eof && !silent[39].eof, "not the oldest were closed");
        cl_open(&st);
        cl_send(&st, &(struct proto_msg){ .type = PROTO_STATUS_REQ, .kind = PROTO_STATUS_READY });
        iterate(2);
        cl_read(&st);
        cr_assert_eq(st.n[PROTO_STATUS], 1, "no status answer beside 16 silent sockets");
        for (int i = 0; i < 40; i++)
                cl_close(&silent[i]);
        cl_close(&st);
}

/* RELAY without HELLO: a pool of 16, the oldest goes; a peer that then
 * says HELLO gets its own slot. */
Test(server, relays_without_hello_have_a_pool_of_their_own) {
        struct cl r[20], p;
        int closed = 0;

        for (int i = 0; i < 20; i++) {
                cl_open(&r[i]);
                cl_send(&r[i], &(struct proto_msg){ .type = PROTO_RELAY });
                iterate(1);
        }
        for (int i = 0; i < 20; i++) {
                cl_read(&r[i]);
                closed += r[i].eof;
        }
        cr_assert_eq(closed, 4, "%d of 20 HELLO-less relays closed", closed);
        cr_assert(r[0].eof && !r[19].eof);
        cl_open(&p);
        cl_hello(&p);
        iterate(2);
        cl_read(&p);
        cr_assert_eq(p.n[PROTO_HELLO], 1, "the peer got no HELLO back");
        cr_assert(!p.eof);
        for (int i = 0; i < 20; i++)
                cl_close(&r[i]);
        cl_close(&p);
}

/* A socket that sends nothing is closed after about 2 s. */
Test(server, a_silent_socket_is_closed_soon) {
        struct cl c;

        cl_open(&c);
        for (int i = 0; i < 40 && !c.eof; i++) {
                run_for(100);
                cl_read(&c);
        }
        cr_assert(c.eof, "a silent socket still open after 4 s");
        cl_close(&c);
}

/* A peer key that reconnects as fast as it can gets one inventory a second
 * after a burst of 4 (each costs a look at every file): the first four
 * connections' at once, the fifth's once a second has passed; each new
 * HELLO closes the older connection. */
Test(server, a_peer_that_reconnects_gets_one_inventory_a_second) {
        struct cl c[5];
        int inv = 0, hello = 0;

        for (int i = 0; i < 5; i++) {
                cl_open(&c[i]);
                cl_hello(&c[i]);
                iterate(1);
        }
        for (int i = 0; i < 5; i++) {
                cl_read(&c[i]);
                inv += c[i].n[PROTO_INV_END];
                hello += c[i].n[PROTO_HELLO];
        }
        cr_assert_eq(hello, 5);
        cr_assert_eq(inv, 4, "%d inventories for 5 HELLOs in a burst", inv);
        cr_assert_eq(c[4].n[PROTO_INV_END], 0, "the fifth got its inventory at once");
        cr_assert(c[0].eof && !c[4].eof, "the older connections are not replaced");
        for (int i = 0; i < 20 && !c[4].n[PROTO_INV_END]; i++) {
                iterate(1);
                cl_read(&c[4]);
        }
        cr_assert_eq(c[4].n[PROTO_INV_END], 1, "the last connection never got its inventory");
        for (int i = 0; i < 5; i++)
                cl_close(&c[i]);
}

/* The high-water mark counts what comes after the inventory in flight: a
 * peer that has not read a big inventory yet still has its changes
 * applied (and ACKed behind it), as before the mark existed. */
Test(server, a_big_inventory_does_not_hold_up_changes) {
        struct proto_msg f = { .type = PROTO_FILE, .seq = 1 };
        const char *content = "u|s:1:\"x\";";
        char name[PROTO_NAME_MAX + 1], path[512];
        struct cl c;

        /* 8000 names of 200 bytes (the fixture's paths hold 255): an
         * inventory of ~1.7 MiB, over the mark even once the socket's
         * buffer has taken its part. */
        for (int i = 0; i < 8000; i++) {
                snprintf(name, sizeof(name), "sess_%0195d", i);
                put_file(name, "a|i:1;", 0);   /* now: within session_lifetime */
                node_check(node, name);
        }
        node_run_checks(node);
        node_end_turn(node);
        cr_assert_eq(node_n_files(node), 8000, "%zu files in the table", node_n_files(node));
        cl_open(&c);
        cl_hello(&c);
        strcpy(f.name, "sess_behind");
        f.data = (const uint8_t *)content;
        f.data_len = f.size = strlen(content);
        f.ver.mtime_ns = (uint64_t)time(NULL) * 1000000000ull;
        f.ver.hash = sess_hash(content, strlen(content));
        cl_send(&c, &f);
        iterate(3);   /* the client reads nothing: the inventory stays unwritten */
        snprintf(path, sizeof(path), "%s/sess_behind", dir);
        cr_assert_eq(access(path, F_OK), 0, "a FILE behind an unread inventory was not applied");
        for (int i = 0; i < 50 && !c.n[PROTO_ACK]; i++) {
                iterate(1);
                cl_read(&c);
        }
        cr_assert_eq(c.n[PROTO_INV_END], 1);
        cr_assert_eq(c.n[PROTO_ACK], 1);
        cl_close(&c);
}
