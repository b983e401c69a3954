/* The receiving side: apply one FILE, DELTA, TOUCH or DELETE from a peer,
 * exactly as docs/DESIGN.md "Versions, conflicts, deletes" says, and fill in the ACK.
 *
 *  - names are validated like names from the directory (sess_name_valid);
 *  - the file is opened with openat(O_NOFOLLOW) on the directory fd and
 *    locked LOCK_EX without blocking: a PHP request holding it gets BUSY and
 *    the sender retries shortly;
 *  - a version older than the one on disk, or beaten by a tombstone, is
 *    refused (STALE, with what we hold) and counted as a conflict;
 *  - content is written in place (same inode) with the origin's mtime;
 *  - a basis or result hash mismatch asks for the whole file (NEED_FULL);
 *  - ENOSPC and other write errors leave the old bytes intact and answer
 *    RETRY;
 *  - what a name this node never had may cost is bounded (node_unseen.c,
 *    docs/DESIGN.md "Names never seen"): per-peer budget and space reserve
 *    answer RETRY, the watermark refuses what a forgotten tombstone beat.
 */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "lib/state.h"
#include "daemon/loop.h"
#include "lib/delta.h"
#include "lib/sess.h"
#include "lib/ver.h"
#include "proto/msg.h"

/* How far ahead of our clock (beyond clock_skew_warn) a version may be. */
#define RECV_FUTURE_MS 300000

/* What a peer's frames make us log is at most one line of each kind per
 * peer every RECV_NOTE_MS, then the count held back (docs/DESIGN.md
 * "Bounds"): a key sending 100,000 refused frames wrote 100,000 lines
 * (t_attack_logspam.sh). The counters (--status) still count every one. */
#define RECV_NOTE_MS 10000

static bool note(struct node *n, size_t idx, int kind, char *held, size_t size) {
        struct node_note *q = &n->peer[idx].note[kind];
        uint64_t now = loop_clock_ms();

        held[0] = 0;
        if (q->ms && now >= q->ms && now - q->ms < RECV_NOTE_MS) {
                q->quiet++;
                return false;
        }
        if (q->quiet)
                snprintf(held, size, " (and %llu more like it held back)", (unsigned long long)q->quiet);
        q->quiet = 0;
        q->ms = now ? now : 1;
        return true;
}

/* An answer that says what this node now holds: OK and STALE. */
static void ack_state(struct proto_msg *ack, uint8_t status, uint8_t kind, const struct proto_ver *v) {
        ack->status = status;
        ack->kind = kind;
        ack->ver = *v;
}

/* An answer that holds no state (NEED_FULL, BUSY, RETRY, REJECT): kind and
 * version are zero on the wire and mean nothing (proto/PROTOCOL.md "What an ACK's kind and ver mean"). */
static void ack_refuse(struct proto_msg *ack, uint8_t status) {
        ack->status = status;
        ack->kind = PROTO_KIND_FILE;
        ack->ver = (struct proto_ver){ 0, 0 };
}

static void stale(struct node *n, size_t idx, const struct proto_msg *m, struct proto_msg *ack, uint8_t kind,
                  const struct proto_ver *have) {
        char held[64];

        n->peer[idx].stats.conflicts++;
        if (note(n, idx, NODE_NOTE_STALE, held, sizeof(held)))
                log_info("peer \"%s\": session %s: refused %s, this node holds a newer %s%s", n->conf->peers[idx].name,
                         NODE_TAG(m->name), proto_type_name(m->type), kind == PROTO_KIND_FILE ? "version" : "delete",
                         held);
        ack_state(ack, PROTO_ST_STALE, kind, have);
}

static void write_failed(struct node *n, size_t idx, const struct proto_msg *m, struct proto_msg *ack, int r) {
        n->peer[idx].stats.errors++;
        log_warn("peer \"%s\": session %s: cannot apply %s: %s; the old file is kept, retrying later",
                 n->conf->peers[idx].name, NODE_TAG(m->name), proto_type_name(m->type), strerror(-r));
        ack_refuse(ack, PROTO_ST_RETRY);
}

/* Decode the new content: the FILE's bytes, or the DELTA applied to the
 * file on disk. Returns a status; on OK *out is the content (owned by
 * *owned when it had to be allocated). */
static uint8_t new_content(struct node *n, const struct proto_msg *m, const struct sess_file *f,
                           const uint8_t **out, size_t *out_len, uint8_t **owned) {
        size_t max = n->conf->max_file_size;
        uint8_t *buf = NULL;
        size_t len = 0;

        if (m->type == PROTO_FILE) {
                if (sess_hash(m->data, m->data_len) != m->ver.hash)
                        return PROTO_ST_REJECT;
                *out = m->data;
                *out_len = m->data_len;
                return PROTO_ST_OK;
        }
        if (f->ver.hash != m->basis_hash)
                return PROTO_ST_NEED_FULL;
        if (delta_patch(f->data, f->len, m->data, m->data_len, m->size < max ? m->size : max, &buf, &len) < 0)
                return PROTO_ST_NEED_FULL;
        if (len != m->size || sess_hash(buf, len) != m->ver.hash) {
                free(buf);
                return PROTO_ST_NEED_FULL;
        }
        *owned = buf;
        *out = buf;
        *out_len = len;
        return PROTO_ST_OK;
}

/* Versions a receiver never takes, whatever it holds (lib/ver.h): older
 * than tombstone_ttl (ver_forgettable), or from the future beyond clock
 * skew (ver_too_new). */
static bool too_new(const struct node *n, const struct proto_ver *v) {
        return ver_too_new(v, loop_realtime_ns(), (RECV_FUTURE_MS + n->conf->clock_skew_warn_ms) * 1000000ull);
}

static bool version_refused(struct node *n, size_t idx, const struct proto_msg *m, struct proto_msg *ack) {
        char held[64];

        if (too_new(n, &m->ver)) {
                n->peer[idx].stats.errors++;
                if (note(n, idx, NODE_NOTE_AHEAD, held, sizeof(held)))
                        log_warn("peer \"%s\": session %s: refused %s dated %llu s ahead of our clock: check its clock "
                                 "(NTP)%s", n->conf->peers[idx].name, NODE_TAG(m->name), proto_type_name(m->type),
                                 (unsigned long long)((m->ver.mtime_ns - loop_realtime_ns()) / 1000000000ull), held);
                ack_refuse(ack, PROTO_ST_REJECT);
                return true;
        }
        if (m->type != PROTO_DELETE && node_forgettable(n, &m->ver)) {
                /* Answered as an expiry of that very version: the sender
                 * records the peer as having deleted it and stops. */
                ack_state(ack, PROTO_ST_STALE, PROTO_KIND_EXPIRE, &m->ver);
                return true;
        }
        return false;
}

static void apply_write(struct node *n, size_t idx, const struct proto_msg *m, struct node_ent *e,
                        struct proto_msg *ack) {
        const char *peer = n->conf->peers[idx].name;
        struct sess_file f = SESS_FILE_INIT;
        const uint8_t *content = NULL;
        char held[64];
        uint8_t *owned = NULL;
        size_t len = 0;
        uint8_t st;
        int r;

        if (m->size > n->conf->max_file_size) {
                if (note(n, idx, NODE_NOTE_SIZE, held, sizeof(held)))
                        log_warn("peer \"%s\": session %s: %llu bytes, over max_file_size; refused%s", peer,
                                 NODE_TAG(m->name), (unsigned long long)m->size, held);
                ack_refuse(ack, PROTO_ST_REJECT);
                return;
        }
        if (version_refused(n, idx, m, ack))
                return;
        r = node_open(n, e, SESS_EXCL, n->conf->max_file_size, &f);
        if (r == -ENOENT) {
                /* Not here. If the table says it was, PHP unlinked it and no
                 * check has seen that yet: make the tombstone first, so a
                 * logout is never overwritten by the version it ended. */
                node_saw(n, e, NULL);
                if (ver_tomb_beats(e->kind, &e->ver, &m->ver)) {
                        stale(n, idx, m, ack, e->kind, &e->ver);
                        return;
                }
                if (e->kind == VER_KIND_NONE && node_unseen_covered(n, &m->ver)) {
                        /* A tombstone forgotten early may have beaten it:
                         * refused like a version older than tombstone_ttl. */
                        n->peer[idx].stats.conflicts++;
                        ack_state(ack, PROTO_ST_STALE, PROTO_KIND_EXPIRE, &m->ver);
                        return;
                }
                if (m->type != PROTO_FILE) {   /* DELTA or TOUCH with no basis here */
                        ack_refuse(ack, PROTO_ST_NEED_FULL);
                        return;
                }
                if (!node_space_reserved(n, idx, m->size)) {   /* files on disk are their own bound: the table follows them */
                        ack_refuse(ack, PROTO_ST_RETRY);
                        return;
                }
                r = node_open(n, e, SESS_EXCL | SESS_CREATE, n->conf->max_file_size, &f);
        }
        if (r == -EWOULDBLOCK) {
                ack_refuse(ack, PROTO_ST_BUSY);
                return;
        }
        if (r == -EPERM || r == -EMLINK) {
                /* Not PHP's own file (node_open logged it, once): never
                 * written into, a lasting condition. */
                n->peer[idx].stats.errors++;
                ack_refuse(ack, PROTO_ST_REJECT);
                return;
        }
        if (r == -EFBIG || r == -ELOOP || r == -EISDIR || r == -EINVAL) {
                /* Lasting conditions, not worth a retry: refuse for good. */
                n->peer[idx].stats.errors++;
                if (note(n, idx, NODE_NOTE_NOTREG, held, sizeof(held)))
                        log_warn("peer \"%s\": session %s: refused: %s here%s", peer, NODE_TAG(m->name),
                                 r == -EFBIG ? "the file is over max_file_size"
                                             : "the name is not a regular file (never followed)", held);
                ack_refuse(ack, PROTO_ST_REJECT);
                return;
        }
        if (r == 0 && f.created && n->give_away && (r = sess_chown(&f, n->php_uid, n->php_gid)) < 0) {
                /* PHP's from the start, as if PHP had made it: a PHP request
                 * opening it meanwhile must not find a root file. */
                write_failed(n, idx, m, ack, r);
                goto out;
        }
        if (r < 0) {
                write_failed(n, idx, m, ack, r);
                return;
        }
        if (!f.created) {
                int c;

                /* What is on disk may be a PHP write no check has seen yet:
                 * queue it before comparing, or a refusal would hide it. */
                node_saw(n, e, &f);
                c = ver_cmp(&m->ver, &f.ver);
                if (c == 0) {
                        ack_state(ack, PROTO_ST_OK, PROTO_KIND_FILE, &f.ver);
                        goto out;
                }
                if (c < 0) {
                        stale(n, idx, m, ack, PROTO_KIND_FILE, &f.ver);
                        goto out;
                }
        }
        if (m->type == PROTO_TOUCH) {
                if (f.created || f.ver.hash != m->ver.hash) {
                        ack_refuse(ack, PROTO_ST_NEED_FULL);
                        goto out;
                }
                node_journal_applying(n, e, &m->ver);
                r = sess_set_mtime(&f, m->ver.mtime_ns);
                len = f.len;
        } else {
                st = new_content(n, m, &f, &content, &len, &owned);
                if (st != PROTO_ST_OK) {
                        if (st == PROTO_ST_REJECT && note(n, idx, NODE_NOTE_HASH, held, sizeof(held)))
                                log_error("peer \"%s\": session %s: content does not match its hash; refused%s", peer,
                                          NODE_TAG(m->name), held);
                        else
                                log_debug("peer \"%s\": session %s: delta basis differs, asking for the whole file",
                                          peer, NODE_TAG(m->name));
                        ack_refuse(ack, st);
                        goto out;
                }
                /* Growing a file takes space as creating one does: the
                 * reserve holds whatever order a peer sends frames in
                 * (pages: tmpfs allocates 4 KiB at a time). */
                if (!f.created && (len + 4095) / 4096 > (f.len + 4095) / 4096 &&
                    !node_space_reserved(n, idx, len - f.len)) {
                        ack_refuse(ack, PROTO_ST_RETRY);
                        goto out;
                }
                /* If we die between the write and the mtime, the next
                 * start must not take these bytes for a local change. */
                node_journal_applying(n, e, &m->ver);
                r = sess_replace(&f, content, len, m->ver.mtime_ns);
        }
        if (r < 0) {
                node_journal_restore(n, e);   /* the old file is intact */
                write_failed(n, idx, m, ack, r);
                goto out;
        }
        node_record_file(n, e, &m->ver, len, true);
        if (f.created)
                e->peer_made = true;
        ack_state(ack, PROTO_ST_OK, PROTO_KIND_FILE, &m->ver);
        log_debug("peer \"%s\": session %s: applied %s (%zu bytes)", peer, NODE_TAG(m->name), proto_type_name(m->type), len);
out:
        free(owned);
        sess_release(n->dirfd, m->name, &f);
}

/* A DELETE for a name this node holds nothing for (docs/DESIGN.md "Names
 * never seen"): kept in the bounded set, within the peer's budget. */
static void apply_unseen_delete(struct node *n, size_t idx, const struct proto_msg *m, struct node_ent *e,
                                struct proto_msg *ack) {
        int r;

        if (node_unseen_tomb_covered(n, m->kind, &m->ver)) {
                /* The watermark refuses whatever this tombstone beats:
                 * nothing to keep. */
                ack_state(ack, PROTO_ST_OK, m->kind, &m->ver);
                return;
        }
        if (!node_new_name_allowed(n, idx)) {
                ack_refuse(ack, PROTO_ST_RETRY);
                return;
        }
        /* Journaled as a tombstone of a name never had (lib/state.h), so a
         * restart puts it back in the bounded set. */
        if ((r = node_record_tomb(n, e, m->kind | STATE_UNSEEN, &m->ver, true)) < 0) {
                write_failed(n, idx, m, ack, r);
                return;
        }
        (void)node_unseen_add(n, e);   /* out of memory: kept as a plain tombstone, which is safe */
        ack_state(ack, PROTO_ST_OK, m->kind, &m->ver);
}

static void apply_delete(struct node *n, size_t idx, const struct proto_msg *m, struct node_ent *e,
                         struct proto_msg *ack) {
        struct sess_file f = SESS_FILE_INIT;
        bool made;
        int r;

        r = node_open(n, e, SESS_EXCL, SIZE_MAX, &f);
        if (r == -EMLINK)
                /* A second name elsewhere: PHP still serves this one, so the
                 * logout must remove it. Unlinking writes nothing through
                 * the other name. */
                r = sess_open_owned(n->dirfd, m->name, SESS_EXCL | SESS_LINKED, SIZE_MAX, n->php_uid, &f);
        if (r == -EWOULDBLOCK) {
                ack_refuse(ack, PROTO_ST_BUSY);
                return;
        }
        if (r == -ENOENT || r == -ELOOP || r == -EISDIR || r == -EINVAL || r == -EPERM) {
                /* Nothing of PHP's here to delete (a file of another owner,
                 * which PHP refuses too, is left alone); keep the tombstone so a stale copy from a
                 * third node cannot bring the session back. A local delete
                 * nobody has looked at yet gets its own first. */
                node_saw(n, e, NULL);
                if (e->kind == VER_KIND_NONE) {
                        apply_unseen_delete(n, idx, m, e, ack);
                        return;
                }
                if (ver_tomb_stronger(m->kind, &m->ver, e->kind, &e->ver)) {
                        if ((r = node_record_tomb(n, e, m->kind | (e->unseen_at ? STATE_UNSEEN : 0), &m->ver,
                                                  true)) < 0) {
                                write_failed(n, idx, m, ack, r);
                                return;
                        }
                        node_unseen_heap_fix(n, e);   /* a name never seen covers more now */
                }
                ack_state(ack, PROTO_ST_OK, e->kind, &e->ver);
                return;
        }
        if (r < 0) {
                write_failed(n, idx, m, ack, r);
                return;
        }
        node_saw(n, e, &f);
        if (!ver_tomb_beats(m->kind, &m->ver, &f.ver)) {
                stale(n, idx, m, ack, PROTO_KIND_FILE, &f.ver);
                goto out;
        }
        /* Only a peer ever wrote it here: its tombstone is a name never
         * seen's, bounded the same way (docs/DESIGN.md "Names never seen"). */
        made = e->peer_made;
        if (made && !node_unseen_tomb_covered(n, m->kind, &m->ver) && !node_new_name_allowed(n, idx)) {
                /* Its tombstone cannot be kept now (past the budget), but
                 * the logout holds here at once:
                 * the file goes, nothing is kept, and RETRY makes the peer
                 * send the DELETE again, kept then as a name never seen's. */
                r = sess_unlink(n->dirfd, m->name, &f);
                if (r < 0 && r != -ENOENT) {
                        ack_refuse(ack, PROTO_ST_BUSY);
                        node_check(n, m->name);
                        goto out;
                }
                node_set_kind(n, e, VER_KIND_NONE);
                node_journal_restore(n, e);   /* journaled as gone; node_recv drops the entry */
                e->peer_made = false;
                ack_refuse(ack, PROTO_ST_RETRY);
                goto out;
        }
        /* Persist first: if the tombstone cannot be written, the file stays. */
        if ((r = node_record_tomb(n, e, m->kind | (made ? STATE_UNSEEN : 0), &m->ver, true)) < 0) {
                write_failed(n, idx, m, ack, r);
                goto out;
        }
        e->peer_made = false;
        if (made)
                (void)node_unseen_add(n, e);   /* out of memory: a plain tombstone, which is safe */
        r = sess_unlink(n->dirfd, m->name, &f);
        if (r < 0 && r != -ENOENT) {
                /* Replaced under us (ESTALE) or an I/O error: look again soon. */
                ack_refuse(ack, PROTO_ST_BUSY);
                node_check(n, m->name);
                goto out;
        }
        ack_state(ack, PROTO_ST_OK, m->kind, &m->ver);
        log_debug("peer \"%s\": session %s: deleted (%s)", n->conf->peers[idx].name, NODE_TAG(m->name),
                  m->kind == PROTO_KIND_DESTROY ? "destroyed" : "expired");
out:
        sess_release(n->dirfd, m->name, &f);
}

void node_recv(struct node *n, size_t idx, const struct proto_msg *m, struct proto_msg *ack) {
        struct node_ent *e;
        char held[64];

        memset(ack, 0, sizeof(*ack));
        ack->type = PROTO_ACK;
        ack->ack_seq = m->seq;
        strcpy(ack->name, m->name);
        if (!sess_name_valid(m->name, n->conf->session_format, n->conf->session_prefix)) {
                n->peer[idx].stats.errors++;
                if (note(n, idx, NODE_NOTE_NAME, held, sizeof(held)))
                        log_warn("peer \"%s\": refused a name %s: not a session file name here (session_format %s, "
                                 "prefix \"%s\")%s", n->conf->peers[idx].name, NODE_TAG(m->name),
                                 conf_format_name(n->conf->session_format), n->conf->session_prefix, held);
                ack_refuse(ack, PROTO_ST_REJECT);
                return;
        }
        e = node_ensure(n, m->name);
        if (!e) {
                ack_refuse(ack, PROTO_ST_RETRY);
                return;
        }
        if (m->type == PROTO_DELETE) {
                if (!version_refused(n, idx, m, ack))
                        apply_delete(n, idx, m, e, ack);
        } else {
                apply_write(n, idx, m, e, ack);
        }
        /* Handled, whatever the answer (BUSY aside: it comes again): no
         * longer something this node waits for from that peer. */
        if (ack->status != PROTO_ST_BUSY)
                node_ready_seen(n, e, idx);
        /* Nothing came of it (refused, RETRY): a name from the wire leaves
         * no entry behind, or every refused name would stay in the table. */
        if (e->kind == VER_KIND_NONE)
                node_forget(n, e);
}
