/* What must hold after each input of fuzz_node (the list is in
 * fuzz_node.c's header comment): the replies, the session dir, the world
 * outside it, the table against itself, the disk and the journal read
 * back, and the log. Each check aborts through fz_fail. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/node.h"
#include "daemon/node_int.h"
#include "daemon/status.h"
#include "lib/sess.h"
#include "lib/state.h"
#include "lib/ver.h"
#include "tests/fuzz/node_fixture.h"
#include "tests/fuzz/node_harness.h"

static struct fz_rec *last_said(struct fz_rec **said, const char *name) {
        struct fz_rec *r = NULL;

        HASH_FIND_STR(*said, name, r);
        if (!r) {
                r = calloc(1, sizeof(*r) + strlen(name) + 1);
                CHECK(r);
                strcpy(r->name, name);
                HASH_ADD_STR(*said, name, r);
        }
        return r;
}

/* An OK or STALE ACK says what this node holds after the frame (but a
 * STALE expiry, the answer to a forgettable version, which echoes it).
 * Nothing else changes the table here (no PHP runs): the last such answer
 * for a name is what the table ends with. A change the daemon acknowledged
 * and then lost (or undid) shows here. */
static void check_answers_held(struct fz_rec **said, struct node *n) {
        struct fz_rec *r, *tmp;

        HASH_ITER(hh, *said, r, tmp) {
                struct node_ent *e = node_get(n, r->name);

                /* A tombstone for a name never had here may be dropped, or
                 * forgotten from the bounded set: then the watermark covers
                 * all it beat (docs/DESIGN.md "Names never seen"). */
                if ((!e || e->kind == VER_KIND_NONE) && ver_is_tomb(r->kind) &&
                    node_unseen_tomb_covered(n, r->kind, &r->ver)) {
                        HASH_DEL(*said, r);
                        free(r);
                        continue;
                }
                CHECK(e);
                CHECK(e->kind == r->kind);
                CHECK(e->ver.mtime_ns == r->ver.mtime_ns && e->ver.hash == r->ver.hash);
                HASH_DEL(*said, r);
                free(r);
        }
}

void fz_check_replies(struct node *n) {
        size_t off = 0, flen, acks = 0;
        struct fz_rec *said = NULL;
        bool error = false;
        struct proto_msg m;

        while (fz.rx.len > off && proto_frame_len(fz.rx.buf + off, fz.rx.len - off, &flen) == 0) {
                CHECK(proto_msg_decode(fz.rx.buf + off, flen, &m) == 0);
                off += flen;
                CHECK(!error);   /* nothing after an ERROR */
                if (m.type == PROTO_ERROR)
                        error = true;
                if (m.type == PROTO_ACK) {
                        CHECK(acks < fz.n_sent);
                        CHECK(m.ack_seq == fz.sent[acks].seq);
                        CHECK(strcmp(m.name, fz.sent[acks].name) == 0);
                        CHECK(m.status <= PROTO_ST_MAX_);
                        acks++;
                        if (m.status == PROTO_ST_OK || (m.status == PROTO_ST_STALE && m.kind != PROTO_KIND_EXPIRE)) {
                                struct fz_rec *r = last_said(&said, m.name);

                                CHECK(m.kind == VER_KIND_FILE || ver_is_tomb(m.kind));
                                r->kind = m.kind;
                                r->ver = m.ver;
                        }
                }
        }
        check_answers_held(&said, n);
        CHECK(!fz.eof || off == fz.rx.len);   /* the server never ends mid-frame */
        if (fz.marked && !fz.mark_ambiguous) {
                CHECK(!error);
                CHECK(acks == fz.n_sent);   /* every change before the last PING was answered */
        }
}

/* No "sess_" followed by an id character: a session name in full. Text a
 * peer sent and the log quotes (an ERROR's reason, a node name from RELAY
 * or HELLO) is not the daemon's doing. */
void fz_check_no_ids(const char *text, size_t len) {
        /* What follows these is the peer's own text (cleaned), to the end
         * of the line: server.c's ERROR from a peer, peer.c's. */
        static const char *const quotes[] = { "says: ", "refused by the peer: " };
        const char *end = text + len;

        for (const char *line = text; line < end;) {
                const char *nl = memchr(line, '\n', (size_t)(end - line));
                const char *eol = nl ? nl : end;
                const char *lim = eol;

                for (size_t i = 0; i < sizeof(quotes) / sizeof(quotes[0]); i++) {
                        const char *q = memmem(line, (size_t)(lim - line), quotes[i], strlen(quotes[i]));

                        if (q)
                                lim = q;
                }

                for (const char *p = line; p + 6 <= lim; p++) {
                        bool quoted = false;
                        char c;

                        if (memcmp(p, "sess_", 5) != 0)
                                continue;
                        c = p[5];
                        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ',' ||
                              c == '-'))
                                continue;
                        for (size_t i = 0; i < fz.n_nodes && !quoted; i++) {
                                size_t nlen = strlen(fz.nodes[i]);

                                for (const char *q = line; !quoted && (q = memmem(q, (size_t)(eol - q), fz.nodes[i], nlen));
                                     q++)
                                        quoted = p >= q && p < q + nlen;
                        }
                        if (!quoted) {
                                fprintf(fz.err, "fuzz_node: a session id in full: %.*s\n", (int)(eol - line), line);
                                CHECK(!"a session id logged or shown in full");
                        }
                }
                line = eol + 1;
        }
}

void fz_check_status_replies(void) {
        size_t off = 0, flen;
        struct proto_msg m;

        while (fz.rx.len > off && proto_frame_len(fz.rx.buf + off, fz.rx.len - off, &flen) == 0) {
                CHECK(proto_msg_decode(fz.rx.buf + off, flen, &m) == 0);
                off += flen;
                if (m.type == PROTO_STATUS)
                        fz_check_no_ids((const char *)m.data, m.data_len);
        }
}

static void check_dir_only(const char *dir, const char *const *allowed) {
        DIR *d = opendir(dir);
        struct dirent *de;

        CHECK(d);
        while ((de = readdir(d))) {
                bool ok = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");

                for (size_t i = 0; allowed[i] && !ok; i++)
                        ok = !strcmp(de->d_name, allowed[i]);
                if (!ok)
                        fprintf(fz.err, "fuzz_node: %s/%s should not be there\n", dir, de->d_name);
                CHECK(ok);
        }
        closedir(d);
}

static const struct fz_fixture *fixture(const char *name) {
        for (size_t i = 0; i < FZ_N_FIXTURES; i++)
                if (!strcmp(fz_fixtures[i].name, name))
                        return &fz_fixtures[i];
        return NULL;
}

/* A file PHP owns, as the daemon would write it. */
static bool php_file(const struct stat *st) {
        return S_ISREG(st->st_mode) && st->st_uid == geteuid() && st->st_nlink == 1;
}

void fz_check_session_dir(struct node *n) {
        DIR *d = opendir(fz.sess);
        struct dirent *de;
        bool seen[FZ_N_FIXTURES] = { false };
        char buf[FZ_MAX_FILE + 1];

        CHECK(d);
        while ((de = readdir(d))) {
                const struct fz_fixture *x = fixture(de->d_name);
                struct node_ent *e;
                struct stat st;
                char link[64];
                ssize_t len;
                int fd;

                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                CHECK(fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
                if (x)
                        seen[x - fz_fixtures] = true;
                if (x && x->what != FZ_PLAIN) {
                        switch (x->what) {
                        case FZ_FOREIGN:
                                CHECK(S_ISREG(st.st_mode) && st.st_uid == FZ_FOREIGN_UID);
                                break;
                        case FZ_HARDLINK:
                                CHECK(S_ISREG(st.st_mode) && st.st_nlink == 2);
                                break;
                        case FZ_SYMLINK:
                                len = readlinkat(dirfd(d), de->d_name, link, sizeof(link));
                                CHECK(S_ISLNK(st.st_mode) && len == 9 && !memcmp(link, "../target", 9));
                                break;
                        case FZ_DIR:
                                CHECK(S_ISDIR(st.st_mode) && st.st_nlink == 2);
                                break;
                        case FZ_LOCKED:   /* BUSY to every change, never written */
                                CHECK(php_file(&st) && sess_ts_ns(&st.st_mtim) == FZ_NS(x->mtime_s));
                                break;
                        default:   /* the logout's name came back as a file: checked below */
                                goto plain;
                        }
                        if (x->content) {   /* never written through */
                                char path[PATH_MAX * 2];

                                snprintf(path, sizeof(path), "%s/%s", fz.sess, x->name);
                                CHECK(fz_same_bytes(path, x->content));
                        }
                        continue;
                }
plain:
                CHECK(sess_name_valid(de->d_name, fz.conf->session_format, fz.conf->session_prefix));
                CHECK(php_file(&st));
                CHECK((uint64_t)st.st_size <= FZ_MAX_FILE);
                fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                CHECK(fd >= 0);
                len = read(fd, buf, sizeof(buf));
                close(fd);
                CHECK(len == st.st_size);
                e = node_get(n, de->d_name);
                CHECK(e);
                CHECK(e->kind == VER_KIND_FILE);   /* the table knows the file, */
                CHECK(e->ver.mtime_ns == sess_ts_ns(&st.st_mtim));   /* at its exact version */
                CHECK(e->ver.hash == sess_hash(buf, (size_t)len));
                CHECK(e->size == (uint32_t)len);
        }
        closedir(d);
        for (size_t i = 0; i < FZ_N_FIXTURES; i++) {
                enum fz_what w = fz_fixtures[i].what;

                /* Never unlinked: not PHP's own (the hard link's session
                 * name may go on a logout; its other name stays). */
                CHECK(seen[i] || w == FZ_PLAIN || w == FZ_HARDLINK || w == FZ_TOMB);
        }
}

void fz_check_outside(void) {
        static const char *const root[] = { "sessions", "state", "run", "outside", "target", NULL };
        static const char *const state[] = { "journal", "lock", "boot_id", NULL };
        static const char *const run[] = { "sock", NULL };

        check_dir_only(fz.root, root);
        check_dir_only(fz.state, state);
        check_dir_only(fz.run, run);
        CHECK(fz_same_bytes(fz.outside, fz_fixtures[3].content));
        CHECK(fz_same_bytes(fz.target, FZ_TARGET_CONTENT));
}

static void on_record(void *ctx, const char *name, uint8_t kind, const struct proto_ver *v, uint64_t made_ns) {
        struct fz_rec **recs = ctx, *r = NULL;

        (void)made_ns;
        if (kind == STATE_KIND_MARK && strcmp(name, STATE_MARK_NAME) == 0)
                return;   /* the watermark of names never seen: not a name */
        kind &= (uint8_t)~STATE_UNSEEN;
        HASH_FIND_STR(*recs, name, r);
        if (!r) {
                r = calloc(1, sizeof(*r) + strlen(name) + 1);
                CHECK(r);
                strcpy(r->name, name);
                HASH_ADD_STR(*recs, name, r);
        }
        r->kind = kind;
        r->ver = *v;
}

void fz_check_table_and_journal(struct node *n) {
        struct fz_rec *recs = NULL, *r, *tmp;
        struct state *st = NULL;
        struct node_ent *e, *etmp;
        size_t files = 0, tombs = 0;

        CHECK(state_open(fz.state, on_record, &recs, true, &st) == 0);
        state_close(st);
        HASH_ITER(hh, n->table, e, etmp) {
                struct stat sb;
                bool there = fstatat(n->dirfd, e->name, &sb, AT_SYMLINK_NOFOLLOW) == 0;

                CHECK(sess_name_valid(e->name, fz.conf->session_format, fz.conf->session_prefix));
                HASH_FIND_STR(recs, e->name, r);
                if (e->kind == VER_KIND_FILE) {
                        files++;
                        CHECK(e->skip || (there && php_file(&sb)));
                } else if (e->kind != VER_KIND_NONE) {
                        tombs++;
                        CHECK(ver_is_tomb(e->kind));
                        CHECK(!there || !php_file(&sb));   /* no logout over PHP's live file */
                }
                if (e->kind == VER_KIND_NONE) {
                        CHECK(!r);   /* the journal knows nothing the table forgot */
                } else {
                        /* A crash now restarts to the same knowledge. */
                        CHECK(r);
                        CHECK(r->kind == e->kind);
                        CHECK(r->ver.mtime_ns == e->ver.mtime_ns && r->ver.hash == e->ver.hash);
                }
                if (r) {
                        HASH_DEL(recs, r);
                        free(r);
                }
        }
        HASH_ITER(hh, recs, r, tmp) {
                fprintf(fz.err, "fuzz_node: journal record kind %u for a name not in the table\n", r->kind);
                CHECK(!"the journal holds a record the table does not");
        }
        CHECK(files == node_n_files(n));
        CHECK(tombs == node_n_tombs(n));
        CHECK(HASH_COUNT(n->table) <= FZ_N_FIXTURES + fz.n_sent + fz.n_inv);
}

/* FUZZ_NODE_VERBOSE=1: what the daemon logged and answered, to see what
 * an input does (replay one: build/fuzz/fuzz_node FILE). */
void fz_show(long loglen) {
        size_t off = 0, flen;
        struct proto_msg m;

        fprintf(fz.err, "---- log\n%.*s---- replies\n", (int)loglen, fz.logbuf);
        while (fz.rx.len > off && proto_frame_len(fz.rx.buf + off, fz.rx.len - off, &flen) == 0 &&
               proto_msg_decode(fz.rx.buf + off, flen, &m) == 0) {
                off += flen;
                if (m.type == PROTO_ACK)
                        fprintf(fz.err, "ACK %u %s %s kind %u\n", m.ack_seq, m.name, proto_status_name(m.status), m.kind);
                else if (m.type >= PROTO_FILE && m.type <= PROTO_DELETE)
                        fprintf(fz.err, "%s %u %s\n", proto_type_name(m.type), m.seq, m.name);
                else if (m.type == PROTO_ERROR || m.type == PROTO_STATUS)
                        fprintf(fz.err, "%s %.*s\n", proto_type_name(m.type), (int)m.data_len, (const char *)m.data);
                else
                        fprintf(fz.err, "%s\n", proto_type_name(m.type));
        }
        fprintf(fz.err, "---- files %zu, tombstones %zu, entries %u; %s\n", node_n_files(fz.d.node),
                node_n_tombs(fz.d.node), HASH_COUNT(((struct node *)fz.d.node)->table),
                fz.marked ? "last PING answered" : fz.eof ? "closed by the server" : "open");
}


/* F_OUT. Every frame the node sent decodes and is in sequence; a FILE
 * carries bytes that match its version, within max_file_size, and for a
 * fixture file exactly its bytes; sending changed nothing on disk (every
 * PHP file of the world is as made, and no other appeared); --status in
 * both formats shows no session id in full (last_error names the tag). */
void fz_check_outbound(struct node *n, struct peer *const *peers) {
        size_t off = 0, flen, frames = 0;
        uint32_t next_seq = 0;
        struct proto_msg m;
        struct proto_wr text;
        DIR *d;
        struct dirent *de;

        while (fz.rx.len > off && proto_frame_len(fz.rx.buf + off, fz.rx.len - off, &flen) == 0) {
                const struct fz_fixture *x;

                CHECK(proto_msg_decode(fz.rx.buf + off, flen, &m) == 0);
                off += flen;
                if (frames++ == 0)
                        CHECK(m.type == PROTO_HELLO && !strcmp(m.node, "a"));
                switch (m.type) {
                case PROTO_FILE:
                case PROTO_DELTA:
                case PROTO_TOUCH:
                case PROTO_DELETE:
                case PROTO_PING:
                case PROTO_INV_REQ:
                        CHECK(m.seq >= next_seq);   /* the window's order */
                        next_seq = m.seq + 1;
                        break;
                case PROTO_HELLO:
                        CHECK(frames == 1);
                        continue;
                default:
                        CHECK(!"a frame the pushing side never sends");
                }
                if (m.type == PROTO_PING || m.type == PROTO_INV_REQ)
                        continue;
                CHECK(sess_name_valid(m.name, fz.conf->session_format, fz.conf->session_prefix));
                if (m.type == PROTO_FILE) {
                        CHECK(m.data_len <= FZ_MAX_FILE);
                        CHECK(sess_hash(m.data, m.data_len) == m.ver.hash);
                        x = fixture(m.name);
                        if (x && x->content)
                                CHECK(m.data_len == strlen(x->content) && !memcmp(m.data, x->content, m.data_len));
                }
        }
        CHECK(!fz.eof || off == fz.rx.len);
        /* Sending only reads. */
        d = opendir(fz.sess);
        CHECK(d);
        while ((de = readdir(d))) {
                const struct fz_fixture *x = fixture(de->d_name);
                char path[PATH_MAX * 2];
                struct stat st;

                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                CHECK(x && x->what != FZ_TOMB);
                if (x->content) {
                        snprintf(path, sizeof(path), "%s/%s", fz.sess, x->name);
                        CHECK(fz_same_bytes(path, x->content));
                        CHECK(lstat(path, &st) == 0 && sess_ts_ns(&st.st_mtim) == FZ_NS(x->mtime_s));
                }
        }
        closedir(d);
        for (uint8_t fmt = PROTO_STATUS_TEXT; fmt <= PROTO_STATUS_READY; fmt++) {
                proto_wr_init(&text);
                (void)status_render(n, peers, fmt, &text);
                fz_check_no_ids((const char *)text.buf, text.len);
                proto_wr_free(&text);
        }
}
