/* libFuzzer target for the receiving daemon: a real node, journal, watch
 * and socket server (daemon_open, as `sessyncd` builds them, on a session
 * dir and state dir under /dev/shm), fed one inbound connection per input
 * through the daemon's own unix socket and loop turns (daemon_turn). What
 * the connection's frames reach is the real code: server.c's dispatch and
 * handshake, node_recv.c's apply into real files, node_check.c through
 * inotify, lib/state.c's journal, status.c for STATUS_REQ.
 *
 * Input: byte 0 is a set of flags, the rest is the byte stream a peer's
 * relay sends.
 *   bits 0-2  0: the stream in one write; n: in writes of 2^(n+1) bytes with
 *             a loop turn after each (frames split across reads)
 *   bit 3     raw: no RELAY and HELLO first (the stream starts the handshake)
 *   bit 4     end with a half-close instead of a last PING
 *   bit 5     the connection is peer "c", not "b"
 *   bit 6     that peer has an older connection open, which the new one's
 *             HELLO replaces (unless raw, it must then be closed)
 *   bit 7     outbound: the stream is the peer's side of this node's own
 *             connection to it (its HELLO first unless raw, then INV,
 *             INV_END, ACKs...): peer.c, peer_msg.c and the node's sending
 *             side, over node_peer_ssh.c (a socketpair instead of SSH)
 * Unless raw, the harness first sends RELAY (--from the peer) and that
 * peer's HELLO. Unless bit 4, or the stream does not end on a frame
 * boundary, it last sends a PING whose PONG says everything before it was
 * handled (FZ_MARK_CLOCK).
 *
 * Every input starts from the same world (node_fixture.h), rebuilt in
 * place: the same directories, the same journal bytes. Afterwards the node
 * is taken down and these must hold (abort() otherwise, so libFuzzer keeps
 * the input):
 *  - replies: every frame the server wrote decodes; the i-th ACK answers
 *    the i-th FILE/DELTA/TOUCH/DELETE sent (seq and name); an ERROR is the
 *    last frame; after the last PING's PONG every change had its ACK; the
 *    last OK or STALE answer for each name is what the table ends with
 *    (nothing else changes it: no PHP runs);
 *  - the session dir holds only valid session names, each a regular file
 *    of the daemon's user with one link, within max_file_size, that the
 *    table holds at exactly its mtime and content hash; the fixture's
 *    foreign file, hard link, symlink and directory were never written
 *    through (their bytes, owners and targets are as made), though a
 *    logout may unlink the hard link's session name;
 *  - nothing was created outside session_dir (fixture root and state_dir
 *    hold only what they held, and the socket);
 *  - the table agrees with itself (file and tombstone counts), with the
 *    disk (no tombstone over a file PHP owns) and with the journal: the
 *    journal read back (lib/state.c, read-only) holds exactly the table's
 *    files and tombstones at the same versions, and no apply left half
 *    done: a crash now would restart to the same knowledge;
 *  - memory: table entries are at most the fixture's names plus the changes
 *    received (one per frame at most: names never seen cost no more);
 *  - no session id in full in anything logged or in a STATUS reply (the
 *    daemon's log lines are captured from stderr).
 *
 * The checks are node_checks.c. Build and run: tests/fuzz/run
 * (FUZZ_TARGETS=node). FUZZ_NODE_TMP sets where the world is made (default
 * /dev/shm, else /tmp); FUZZ_NODE_VERBOSE=1 prints what each input made the
 * daemon log and answer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uthash.h>

#include "daemon/daemon_int.h"
#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "daemon/node_int.h"
#include "daemon/peer.h"
#include "daemon/peer_int.h"
#include "daemon/server.h"
#include "lib/conf.h"
#include "lib/sess.h"
#include "lib/state.h"
#include "proto/msg.h"
#include "tests/fuzz/node_fixture.h"

#include "tests/fuzz/node_harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_harness fz;

void fz_fail(int line, const char *what) {
        size_t len;

        fflush(fz.log);
        len = fz.log ? (size_t)ftell(fz.log) : 0;
        fprintf(fz.err, "fuzz_node: %s:%d: %s\n", __FILE__, line, what);
        if (len > 0)
                fprintf(fz.err, "fuzz_node: the daemon logged (last 4000 bytes):\n%.*s\n", 4000,
                        fz.logbuf + (len > 4000 ? len - 4000 : 0));
        abort();
}

static void fz_path(char *dst, const char *sub) {
        if ((size_t)snprintf(dst, PATH_MAX, "%s/%s", fz.root, sub) >= PATH_MAX)
                abort();
}

static void write_file(const char *path, const char *content, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
        size_t len = strlen(content);

        CHECK(fd >= 0);
        CHECK(write(fd, content, len) == (ssize_t)len);
        close(fd);
}

bool fz_same_bytes(const char *path, const char *content) {
        char buf[4096];
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf));
        close(fd);
        return n == (ssize_t)strlen(content) && memcmp(buf, content, (size_t)n) == 0;
}

/* Remove everything in dir but the names in keep (NULL-terminated). */
static void empty_dir(const char *dir, const char *const *keep) {
        DIR *d = opendir(dir);
        struct dirent *de;

        CHECK(d);
        while ((de = readdir(d))) {
                bool kept = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");

                for (size_t i = 0; keep && keep[i] && !kept; i++)
                        kept = !strcmp(de->d_name, keep[i]);
                if (!kept && unlinkat(dirfd(d), de->d_name, 0) < 0)
                        CHECK(unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) == 0);
        }
        closedir(d);
}

static void set_mtime(int dfd, const char *name, unsigned s) {
        struct timespec ts[2] = { { (time_t)(FZ_T0_S + s), 0 }, { (time_t)(FZ_T0_S + s), 0 } };

        CHECK(utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW) == 0);
}

/* ------------------------------------------------------------ the world */

static void make_world(void) {
        static const char *const keep_state[] = { "lock", "boot_id", NULL };
        int dfd, fd;

        empty_dir(fz.sess, NULL);
        empty_dir(fz.state, keep_state);
        write_file(fz.outside, fz_fixtures[3].content, 0600);
        write_file(fz.target, FZ_TARGET_CONTENT, 0600);
        dfd = open(fz.sess, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(dfd >= 0);
        for (size_t i = 0; i < FZ_N_FIXTURES; i++) {
                const struct fz_fixture *x = &fz_fixtures[i];
                char path[PATH_MAX * 2];

                snprintf(path, sizeof(path), "%s/%s", fz.sess, x->name);
                switch (x->what) {
                case FZ_PLAIN:
                case FZ_FOREIGN:
                case FZ_LOCKED:
                        write_file(path, x->content, 0600);
                        if (x->what == FZ_FOREIGN)
                                CHECK(chown(path, FZ_FOREIGN_UID, FZ_FOREIGN_UID) == 0);
                        set_mtime(dfd, x->name, x->mtime_s);
                        if (x->what == FZ_LOCKED) {   /* as PHP's files handler holds it */
                                fz.locked = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
                                CHECK(fz.locked >= 0 && flock(fz.locked, LOCK_EX | LOCK_NB) == 0);
                        }
                        break;
                case FZ_HARDLINK:
                        CHECK(link(fz.outside, path) == 0);
                        set_mtime(dfd, x->name, x->mtime_s);
                        break;
                case FZ_SYMLINK:
                        CHECK(symlink("../target", path) == 0);
                        break;
                case FZ_DIR:
                        CHECK(mkdir(path, 0700) == 0);
                        break;
                case FZ_TOMB:
                        break;
                }
        }
        close(dfd);
        fd = open(fz.journal, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK(write(fd, fz.journal_bytes, fz.journal_len) == (ssize_t)fz.journal_len);
        close(fd);
}

static void rm_tree(const char *path) {
        char cmd[PATH_MAX + 16];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
        if (system(cmd) != 0)
                fprintf(fz.err, "fuzz_node: could not remove %s\n", path);
}

static void rm_root(void) {
        if (fz.root[0])
                rm_tree(fz.root);
}

/* libFuzzer often ends with _Exit (a crash, -runs, the time limit), which
 * runs no atexit: a world is named by its process, and worlds of processes
 * gone are removed by the next one to start here. */
static void rm_dead_worlds(const char *tmp) {
        DIR *d = opendir(tmp);
        struct dirent *de;
        char path[PATH_MAX];
        int pid;

        if (!d)
                return;
        while ((de = readdir(d))) {
                if (sscanf(de->d_name, "sessync-fuzz.%d.", &pid) == 1 && pid > 0 && kill(pid, 0) < 0 && errno == ESRCH &&
                    (size_t)snprintf(path, sizeof(path), "%s/%s", tmp, de->d_name) < sizeof(path))
                        rm_tree(path);
        }
        closedir(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        const char *tmp = getenv("FUZZ_NODE_TMP");
        char text[4 * PATH_MAX], *errors = NULL;
        struct state *st = NULL;
        struct stat sb;
        int n;

        (void)argc;
        (void)argv;
        fz.err = stderr;
        fz.verbose = getenv("FUZZ_NODE_VERBOSE") != NULL;
        if (!tmp)
                tmp = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : "/tmp";
        rm_dead_worlds(tmp);
        snprintf(fz.root, sizeof(fz.root), "%s/sessync-fuzz.%d.XXXXXX", tmp, (int)getpid());
        if (!mkdtemp(fz.root)) {
                fprintf(stderr, "fuzz_node: mkdtemp in %s: %s\n", tmp, strerror(errno));
                exit(1);
        }
        atexit(rm_root);
        fz_path(fz.sess, "sessions");
        fz_path(fz.state, "state");
        fz_path(fz.run, "run");
        fz_path(fz.sock, "run/sock");
        fz_path(fz.outside, "outside");
        fz_path(fz.target, "target");
        fz_path(fz.journal, "state/journal");
        if (strlen(fz.sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
                fprintf(stderr, "fuzz_node: %s: too long for a socket path\n", fz.sock);
                exit(1);
        }
        CHECK(mkdir(fz.sess, 0700) == 0 && mkdir(fz.state, 0700) == 0 && mkdir(fz.run, 0700) == 0);
        n = snprintf(text, sizeof(text),
                     "[node]\nname = a\nsession_dir = %s\nstate_dir = %s\nsocket = %s\n"
                     "identity = %s/id\nknown_hosts = %s/known_hosts\nmax_file_size = %u\n"
                     "tombstone_ttl = 3650d\nlog_level = debug\n"
                     "[peer b]\nhost = 127.0.0.1\n[peer c]\nhost = 127.0.0.1\n",
                     fz.sess, fz.state, fz.sock, fz.root, fz.root, FZ_MAX_FILE);
        CHECK(n > 0 && (size_t)n < sizeof(text));
        if (conf_load_mem("fuzz_node.conf", text, (size_t)n, &fz.conf, &errors) < 0) {
                fprintf(stderr, "fuzz_node: config: %s", errors ? errors : "?\n");
                exit(1);
        }
        free(errors);
        log_set_level(fz.conf->log_level);
        /* The fixture's journal, written once by lib/state.c itself. */
        for (size_t i = 0; i < FZ_N_FIXTURES; i++) {
                const struct proto_ver v = { FZ_NS(fz_fixtures[i].mtime_s), 0 };

                if (fz_fixtures[i].what != FZ_TOMB)
                        continue;
                if (!st)
                        CHECK(state_open(fz.state, NULL, NULL, false, &st) == 0);
                CHECK(state_put(st, fz_fixtures[i].name, PROTO_KIND_DESTROY, &v) == 0);
        }
        CHECK(state_sync(st) == 0);
        state_close(st);
        {
                FILE *f = fopen(fz.journal, "re");
                long len = 0;

                CHECK(f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0);
                fz.journal_len = (size_t)len;
                fz.journal_bytes = malloc(fz.journal_len);
                CHECK(fz.journal_bytes);
                rewind(f);
                CHECK(fread(fz.journal_bytes, 1, fz.journal_len, f) == fz.journal_len);
                fclose(f);
        }
        fz.ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        CHECK(fz.ino >= 0);
        CHECK(inotify_add_watch(fz.ino, fz.sess, IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                                         IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK) >= 0);
        fz.logbuf = malloc(FZ_LOG_MAX + 1);
        CHECK(fz.logbuf);
        fz.log = fmemopen(fz.logbuf, FZ_LOG_MAX, "w");
        CHECK(fz.log);
        return 0;
}

/* ------------------------------------------------------------ the daemon */

static int64_t spin_cb(struct loop *l, void *ctx) {
        (void)l;
        (void)ctx;
        return LOOP_TIMER_STOP;
}

/* loop_run calls this before each wait: the daemon's turn, then back to
 * the harness. The first call of a step only lets the wait happen, which
 * the spin timer makes non-blocking. */
static void hook(struct loop *l, void *ctx) {
        (void)ctx;
        if (!fz.turn_next) {
                fz.turn_next = true;
                return;
        }
        daemon_turn(l, &fz.d);
        loop_stop(l, 0);
}

/* Read what the server wrote; set eof and marked. */
static void drain(void) {
        uint8_t buf[64 * 1024];
        ssize_t n;
        size_t flen;

        while (!fz.eof && fz.client >= 0) {
                n = recv(fz.client, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        CHECK(errno == EAGAIN || errno == EINTR || errno == ECONNRESET);
                        if (errno == ECONNRESET)
                                fz.eof = true;
                        break;
                }
                if (n == 0) {
                        fz.eof = true;
                        break;
                }
                proto_put_bytes(&fz.rx, buf, (size_t)n);
                CHECK(proto_wr_error(&fz.rx) == 0);
        }
        while (fz.rx.len > fz.rx_seen && proto_frame_len(fz.rx.buf + fz.rx_seen, fz.rx.len - fz.rx_seen, &flen) == 0) {
                struct proto_msg m;

                CHECK(proto_msg_decode(fz.rx.buf + fz.rx_seen, flen, &m) == 0);
                if (m.type == PROTO_PONG && m.echo_ns == FZ_MARK_CLOCK)
                        fz.marked = true;
                fz.rx_seen += flen;
        }
}

/* One loop iteration (events, timers) and one turn; then read replies. */
static void step(void) {
        fz.turn_next = false;
        loop_timer_arm(fz.d.loop, fz.spin, 0);
        CHECK(loop_run(fz.d.loop) == 0);
        drain();
}

/* What inotify reports, handed to the node as daemon.c's on_watch does.
 * One inotify instance for the whole run, not watch.c's per daemon:
 * closing one waits for the kernel (an RCU grace period, ~2 ms), four
 * times the cost of the rest of an input. watch.c has its own tests. */
static void on_inotify(struct loop *l, uint32_t events, void *ctx) {
        alignas(struct inotify_event) char buf[16 * 1024];
        ssize_t n;

        (void)l;
        (void)events;
        (void)ctx;
        while ((n = read(fz.ino, buf, sizeof(buf))) > 0) {
                for (char *p = buf; p < buf + n;) {
                        struct inotify_event *ev = (struct inotify_event *)p;

                        if (fz.d.node) {
                                if (ev->len > 0)
                                        node_check(fz.d.node, ev->name);
                                else if (ev->mask & IN_Q_OVERFLOW)
                                        node_rescan_later(fz.d.node);
                                else
                                        CHECK(!"session_dir removed or unmounted");
                        }
                        p += sizeof(*ev) + ev->len;
                }
        }
}

static void start_daemon(void) {
        /* What make_world did is from before this daemon's start. */
        fz.d.node = NULL;
        on_inotify(NULL, 0, NULL);
        CHECK(daemon_open(&fz.d, fz.conf, DAEMON_STATE_WRITE) == 0);
        CHECK(loop_add_fd(fz.d.loop, fz.ino, EPOLLIN, on_inotify, NULL, &fz.ino_reg) == 0);
        daemon_judge_journal(&fz.d);
        node_reset_suspects(fz.d.node);
        CHECK(node_scan(fz.d.node) == 0);
        /* The outbound side talks SSH to the peers, which this target does
         * not fuzz: "once" keeps server.c's peer_kick (after a HELLO) from
         * dialling out. */
        for (size_t i = 0; i < fz.conf->n_peers; i++)
                fz.d.peers[i]->once = true;
        CHECK(server_new(fz.d.node, fz.d.loop, fz.d.peers, &fz.d.server) == 0);
        fz.spin = loop_timer_new(fz.d.loop, spin_cb, NULL);
        CHECK(fz.spin);
        loop_set_before_sleep(fz.d.loop, hook, NULL);
}

/* ------------------------------------------------------------ the stream */

static void note_node(const char *name) {
        if (name[0] && fz.n_nodes < sizeof(fz.nodes) / sizeof(fz.nodes[0]))
                snprintf(fz.nodes[fz.n_nodes++], sizeof(fz.nodes[0]), "%s", name);
}

/* Decode the stream as the server will. Returns true if it ends on a frame
 * boundary with every frame well formed (a last PING will then be read as
 * a frame of its own). */
static bool walk(const uint8_t *p, size_t len) {
        size_t off = 0, flen;
        struct proto_msg m;
        int r;

        while (off < len && (r = proto_frame_len(p + off, len - off, &flen)) == 0) {
                if (proto_msg_decode(p + off, flen, &m) < 0)
                        return false;
                off += flen;
                switch (m.type) {
                case PROTO_FILE:
                case PROTO_DELTA:
                case PROTO_TOUCH:
                case PROTO_DELETE:
                        if (fz.n_sent == fz.cap_sent) {
                                fz.cap_sent = fz.cap_sent ? 2 * fz.cap_sent : 64;
                                fz.sent = realloc(fz.sent, fz.cap_sent * sizeof(*fz.sent));
                                CHECK(fz.sent);
                        }
                        fz.sent[fz.n_sent].seq = m.seq;
                        strcpy(fz.sent[fz.n_sent].name, m.name);
                        fz.n_sent++;
                        break;
                case PROTO_PING:
                        if (m.clock_ns == FZ_MARK_CLOCK)
                                fz.mark_ambiguous = true;
                        break;
                case PROTO_INV:
                        fz.n_inv += m.count;
                        break;
                case PROTO_RELAY:
                        note_node(m.node);
                        break;
                case PROTO_HELLO:
                        note_node(m.node);
                        note_node(m.to);
                        break;
                }
        }
        return off == len;
}

static void encode(struct proto_wr *wr, const struct proto_msg *m) {
        CHECK(proto_msg_encode(wr, m) == 0);
}

/* Send all of wr, in pieces of chunk bytes (0: at once), a step after each. */
static void send_all(const struct proto_wr *wr, size_t chunk) {
        size_t off = 0;
        int stalls = 0;

        while (off < wr->len && !fz.eof) {
                size_t n = chunk && wr->len - off > chunk ? chunk : wr->len - off;
                ssize_t w = send(fz.client, wr->buf + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);

                if (w < 0) {
                        if (errno == EPIPE || errno == ECONNRESET)
                                break;   /* the server closed: it said why, or will */
                        CHECK(errno == EAGAIN || errno == EINTR);
                        CHECK(++stalls < FZ_MAX_STEPS);   /* the server stopped reading */
                } else {
                        off += (size_t)w;
                        stalls = 0;
                }
                step();
        }
}

/* RELAY (--from peer) and peer's HELLO to "a". */
static void handshake(struct proto_wr *wr, const char *peer) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_RELAY;
        strcpy(m.node, peer);
        encode(wr, &m);
        memset(&m, 0, sizeof(m));
        m.type = PROTO_HELLO;
        m.version = PROTO_VERSION;
        m.clock_ns = FZ_NS(1000);
        strcpy(m.node, peer);
        strcpy(m.to, "a");
        encode(wr, &m);
}

/* Read and drop what the older connection is sent; note its end. */
static void drain_other(void) {
        uint8_t buf[16 * 1024];
        ssize_t n = -1;

        while (fz.other >= 0 && !fz.other_eof && (n = recv(fz.other, buf, sizeof(buf), MSG_DONTWAIT)) != 0) {
                if (n < 0) {
                        fz.other_eof = errno == ECONNRESET;
                        CHECK(errno == EAGAIN || errno == EINTR || errno == ECONNRESET);
                        if (errno != EINTR)
                                break;
                }
        }
        if (n == 0)
                fz.other_eof = true;
}

/* F_OUT: the stream is what the peer answers on the node's own outbound
 * connection to it (after its HELLO, unless raw), through
 * node_peer_ssh.c, one frame per write. The peer is started as --full-sync starts it (once: no
 * reconnect when the stream makes it go down). */
static void run_outbound(const uint8_t *data, size_t size, uint8_t flags, size_t chunk) {
        size_t idx = flags & F_PEER_C ? 1 : 0;
        struct proto_wr wr;
        struct proto_msg m;

        walk(data, size);
        proto_wr_init(&wr);
        if (!(flags & F_RAW)) {
                memset(&m, 0, sizeof(m));
                m.type = PROTO_HELLO;
                m.version = PROTO_VERSION;
                m.clock_ns = loop_realtime_ns();   /* no skew warning, unless the stream sends its own */
                strcpy(m.node, fz.conf->peers[idx].name);
                strcpy(m.to, "a");
                encode(&wr, &m);
        }
        proto_put_bytes(&wr, data, size);
        CHECK(proto_wr_error(&wr) == 0);
        peer_start(fz.d.peers[idx], true);
        CHECK(fz.out_fd >= 0);
        fz.client = fz.out_fd;
        step();   /* our HELLO */
        /* A frame at a time, a turn after each: a peer answers what it
         * was sent, so an ACK must not arrive before its frame left. */
        for (size_t off = 0, flen; off < wr.len && !fz.eof; off += flen) {
                struct proto_wr one = { 0 };

                if (proto_frame_len(wr.buf + off, wr.len - off, &flen) < 0 || flen > wr.len - off)
                        flen = wr.len - off;   /* the rest, as it is */
                one.buf = wr.buf + off;
                one.len = flen;
                send_all(&one, chunk);
                step();
        }
        for (int i = 0; i < 8 && !fz.eof; i++)
                step();   /* ACKs free the window: more is sent */
        close(fz.client);
        fz.client = fz.out_fd = -1;
        step();   /* the peer goes down */
        step();
        proto_wr_free(&wr);
}

static void run_connection(const uint8_t *data, size_t size) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        uint8_t flags = size ? data[0] : 0;
        const char *peer = flags & F_PEER_C ? "c" : "b";
        size_t chunk = (flags & F_CHUNK) ? (size_t)2 << (flags & F_CHUNK) : 0;
        struct proto_wr wr;
        struct proto_msg m;
        bool boundary;
        int steps = 0;

        data += size ? 1 : 0;
        size -= size ? 1 : 0;
        if (flags & F_OUT) {
                run_outbound(data, size, flags, chunk);
                return;
        }
        boundary = walk(data, size);
        proto_wr_init(&wr);
        if (!(flags & F_RAW))
                handshake(&wr, peer);
        proto_put_bytes(&wr, data, size);
        if (boundary && !(flags & F_SHUT)) {
                memset(&m, 0, sizeof(m));
                m.type = PROTO_PING;
                m.seq = 0xfffffff0u;
                m.clock_ns = FZ_MARK_CLOCK;
                encode(&wr, &m);
        } else {
                boundary = false;
        }
        CHECK(proto_wr_error(&wr) == 0);

        strcpy(sa.sun_path, fz.sock);
        if (flags & F_OTHER) {
                struct proto_wr hs;

                proto_wr_init(&hs);
                handshake(&hs, peer);
                fz.other = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                CHECK(fz.other >= 0);
                CHECK(connect(fz.other, (struct sockaddr *)&sa, sizeof(sa)) == 0);
                CHECK(send(fz.other, hs.buf, hs.len, MSG_NOSIGNAL) == (ssize_t)hs.len);
                proto_wr_free(&hs);
                step();   /* accepted */
                step();   /* its HELLO answered */
        }
        fz.client = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(fz.client >= 0);
        CHECK(connect(fz.client, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        step();   /* accepted */
        send_all(&wr, chunk);
        if (!boundary)
                (void)shutdown(fz.client, SHUT_WR);
        /* Wait for the last PING's PONG, or for the server to close. */
        while (!fz.eof && !(boundary && fz.marked)) {
                CHECK(++steps < FZ_MAX_STEPS);   /* neither answered nor closed */
                step();
        }
        close(fz.client);
        fz.client = -1;
        step();   /* the server sees the close */
        step();   /* and inotify the last applies */
        if (fz.other >= 0) {
                drain_other();
                /* One live connection per peer: the older one was closed. */
                CHECK((flags & F_RAW) || fz.other_eof);
                close(fz.other);
                fz.other = -1;
        }
        proto_wr_free(&wr);
}

/* ------------------------------------------------------------ one input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FILE *real = stderr;
        long loglen;

        fz.n_sent = fz.n_inv = 0;
        fz.n_nodes = 0;
        fz.out_fd = -1;
        fz.mark_ambiguous = fz.marked = fz.eof = false;
        fz.rx_seen = 0;
        fz.client = fz.other = fz.locked = -1;
        fz.other_eof = false;
        proto_wr_init(&fz.rx);
        rewind(fz.log);
        stderr = fz.log;   /* log.c writes to stderr: keep what the daemon says */

        make_world();
        start_daemon();
        step();   /* the first turn */
        run_connection(data, size);

        if (size > 0 && (data[0] & F_OUT)) {
                fz_check_outbound(fz.d.node, fz.d.peers);
        } else {
                fz_check_replies(fz.d.node);
                fz_check_status_replies();
        }
        fz_check_session_dir(fz.d.node);
        fz_check_table_and_journal(fz.d.node);
        fz_check_outside();
        fflush(fz.log);
        loglen = ftell(fz.log);
        CHECK(loglen >= 0 && loglen < (long)FZ_LOG_MAX);
        fz_check_no_ids(fz.logbuf, (size_t)loglen);
        if (fz.verbose)
                fz_show(loglen);

        (void)unlink(fz.sock);
        loop_del_fd(fz.d.loop, fz.ino_reg);
        daemon_close(&fz.d);
        close(fz.locked);
        stderr = real;
        proto_wr_free(&fz.rx);
        return 0;
}
