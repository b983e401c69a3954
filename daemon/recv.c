#include "daemon/recv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "lib/delta.h"
#include "lib/sess.h"
#include "proto/msg.h"

/* How far ahead of our clock (beyond clock_skew_warn) a version may be. */
#define RECV_FUTURE_MS 300000

static void ack_state(struct proto_msg *ack, uint8_t status, uint8_t kind, const struct proto_ver *v) {
        ack->status = status;
        ack->kind = kind == ENT_NONE ? PROTO_KIND_FILE : kind;
        ack->ver = v ? *v : (struct proto_ver){ 0, 0 };
}

static void stale(struct node *n, size_t idx, const struct proto_msg *m, struct proto_msg *ack, uint8_t kind,
                  const struct proto_ver *have) {
        n->stats[idx].conflicts++;
        log_info("peer \"%s\": \"%s\": refused %s, this node holds a newer %s", n->conf->peers[idx].name, m->name,
                 proto_type_name(m->type), kind == PROTO_KIND_FILE ? "version" : "delete");
        ack_state(ack, PROTO_ST_STALE, kind, have);
}

static void write_failed(struct node *n, size_t idx, const struct proto_msg *m, struct proto_msg *ack, int r) {
        n->stats[idx].errors++;
        log_warn("peer \"%s\": \"%s\": cannot apply %s: %s; the old file is kept, retrying later",
                 n->conf->peers[idx].name, m->name, proto_type_name(m->type), strerror(-r));
        ack_state(ack, PROTO_ST_RETRY, ENT_NONE, NULL);
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

/* Versions a receiver never takes, whatever it holds:
 *  - older than tombstone_ttl: a logout of it may have been forgotten here
 *    already (tombstones live that long), and PHP's GC considers it garbage
 *    anyway (tombstone_ttl > session_lifetime);
 *  - from the future beyond clock skew: one bad clock (or a hostile peer)
 *    would otherwise win every comparison for as long as it is ahead. */
static bool too_new(const struct node *n, const struct proto_ver *v) {
        uint64_t ahead = (RECV_FUTURE_MS + n->conf->clock_skew_warn_ms) * 1000000ull;

        return v->mtime_ns > loop_realtime_ns() + ahead;
}

static bool version_refused(struct node *n, size_t idx, const struct proto_msg *m, struct proto_msg *ack) {
        if (too_new(n, &m->ver)) {
                n->stats[idx].errors++;
                log_warn("peer \"%s\": \"%s\": refused %s dated %llu s ahead of our clock: check its clock (NTP)",
                         n->conf->peers[idx].name, m->name, proto_type_name(m->type),
                         (unsigned long long)((m->ver.mtime_ns - loop_realtime_ns()) / 1000000000ull));
                ack_state(ack, PROTO_ST_REJECT, ENT_NONE, NULL);
                return true;
        }
        if (m->type != PROTO_DELETE && node_ver_forgettable(n, &m->ver)) {
                /* Answered as an expiry of that very version: the sender
                 * records the peer as having deleted it and stops. */
                ack_state(ack, PROTO_ST_STALE, PROTO_KIND_EXPIRE, &m->ver);
                return true;
        }
        return false;
}

static void apply_write(struct node *n, size_t idx, const struct proto_msg *m, struct ent *e,
                        struct proto_msg *ack) {
        const char *peer = n->conf->peers[idx].name;
        struct sess_file f = SESS_FILE_INIT;
        const uint8_t *content = NULL;
        uint8_t *owned = NULL;
        size_t len = 0;
        uint8_t st;
        int r;

        if (m->size > n->conf->max_file_size) {
                log_warn("peer \"%s\": \"%s\": %llu bytes, over max_file_size; refused", peer, m->name,
                         (unsigned long long)m->size);
                ack_state(ack, PROTO_ST_REJECT, ENT_NONE, NULL);
                return;
        }
        if (version_refused(n, idx, m, ack))
                return;
        r = sess_open(n->dirfd, m->name, SESS_EXCL, n->conf->max_file_size, &f);
        if (r == -ENOENT) {
                /* Not here. If the table says it was, PHP unlinked it and no
                 * check has seen that yet: make the tombstone first, so a
                 * logout is never overwritten by the version it ended. */
                node_saw(n, e, NULL);
                if ((e->kind == PROTO_KIND_DESTROY || e->kind == PROTO_KIND_EXPIRE) &&
                    node_tomb_beats(e->kind, &e->ver, &m->ver)) {
                        stale(n, idx, m, ack, e->kind, &e->ver);
                        return;
                }
                if (m->type != PROTO_FILE) {   /* DELTA or TOUCH with no basis here */
                        ack_state(ack, PROTO_ST_NEED_FULL, ENT_NONE, NULL);
                        return;
                }
                r = sess_open(n->dirfd, m->name, SESS_EXCL | SESS_CREATE, n->conf->max_file_size, &f);
        }
        if (r == -EWOULDBLOCK) {
                ack_state(ack, PROTO_ST_BUSY, ENT_NONE, NULL);
                return;
        }
        if (r == -EFBIG || r == -ELOOP || r == -EISDIR || r == -EINVAL) {
                /* Lasting conditions, not worth a retry: refuse for good. */
                n->stats[idx].errors++;
                log_warn("peer \"%s\": \"%s\": refused: %s here", peer, m->name,
                         r == -EFBIG ? "the file is over max_file_size" : "the name is not a regular file (never followed)");
                ack_state(ack, PROTO_ST_REJECT, ENT_NONE, NULL);
                return;
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
                c = proto_ver_cmp(&m->ver, &f.ver);
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
                        ack_state(ack, PROTO_ST_NEED_FULL, ENT_NONE, NULL);
                        goto out;
                }
                node_journal_applying(n, e, &m->ver);
                r = sess_set_mtime(&f, m->ver.mtime_ns);
                len = f.len;
        } else {
                st = new_content(n, m, &f, &content, &len, &owned);
                if (st != PROTO_ST_OK) {
                        if (st == PROTO_ST_REJECT)
                                log_error("peer \"%s\": \"%s\": content does not match its hash; refused", peer,
                                          m->name);
                        else
                                log_debug("peer \"%s\": \"%s\": delta basis differs, asking for the whole file",
                                          peer, m->name);
                        ack_state(ack, st, ENT_NONE, NULL);
                        goto out;
                }
                /* If we die between the write and the mtime, the next
                 * start must not take these bytes for a local change. */
                node_journal_applying(n, e, &m->ver);
                r = sess_replace(&f, content, len, m->ver.mtime_ns);
        }
        if (r == 0 && f.created && n->file_uid != (uid_t)-1)
                r = sess_chown(&f, n->file_uid, n->file_gid);
        if (r < 0) {
                node_journal_restore(n, e);   /* the old file is intact */
                write_failed(n, idx, m, ack, r);
                goto out;
        }
        node_record_file(n, e, &m->ver, len, true);
        ack_state(ack, PROTO_ST_OK, PROTO_KIND_FILE, &m->ver);
        log_debug("peer \"%s\": \"%s\": applied %s (%zu bytes)", peer, m->name, proto_type_name(m->type), len);
out:
        free(owned);
        sess_release(n->dirfd, m->name, &f);
}

/* Of two tombstones keep the one that beats more versions. */
static bool tomb_stronger(uint8_t ka, const struct proto_ver *a, uint8_t kb, const struct proto_ver *b) {
        if (kb != PROTO_KIND_DESTROY && kb != PROTO_KIND_EXPIRE)
                return true;
        if (a->mtime_ns != b->mtime_ns)
                return a->mtime_ns > b->mtime_ns;
        if (ka != kb)
                return ka == PROTO_KIND_DESTROY;
        return a->hash > b->hash;
}

static void apply_delete(struct node *n, size_t idx, const struct proto_msg *m, struct ent *e,
                         struct proto_msg *ack) {
        struct sess_file f = SESS_FILE_INIT;
        int r;

        r = sess_open(n->dirfd, m->name, SESS_EXCL, SIZE_MAX, &f);
        if (r == -EWOULDBLOCK) {
                ack_state(ack, PROTO_ST_BUSY, ENT_NONE, NULL);
                return;
        }
        if (r == -ENOENT || r == -ELOOP || r == -EISDIR || r == -EINVAL) {
                /* Nothing here to delete; keep the tombstone so a stale copy
                 * from a third node cannot bring the session back. A local
                 * delete nobody has looked at yet gets its own first. */
                node_saw(n, e, NULL);
                if (tomb_stronger(m->kind, &m->ver, e->kind, &e->ver) &&
                    (r = node_record_tomb(n, e, m->kind, &m->ver, true)) < 0) {
                        write_failed(n, idx, m, ack, r);
                        return;
                }
                ack_state(ack, PROTO_ST_OK, e->kind, &e->ver);
                return;
        }
        if (r < 0) {
                write_failed(n, idx, m, ack, r);
                return;
        }
        node_saw(n, e, &f);
        if (!node_tomb_beats(m->kind, &m->ver, &f.ver)) {
                stale(n, idx, m, ack, PROTO_KIND_FILE, &f.ver);
                goto out;
        }
        /* Persist first: if the tombstone cannot be written, the file stays. */
        if ((r = node_record_tomb(n, e, m->kind, &m->ver, true)) < 0) {
                write_failed(n, idx, m, ack, r);
                goto out;
        }
        r = sess_unlink(n->dirfd, m->name, &f);
        if (r < 0 && r != -ENOENT) {
                /* Replaced under us (ESTALE) or an I/O error: look again soon. */
                ack_state(ack, PROTO_ST_BUSY, ENT_NONE, NULL);
                node_check(n, m->name);
                goto out;
        }
        ack_state(ack, PROTO_ST_OK, m->kind, &m->ver);
        log_debug("peer \"%s\": \"%s\": deleted (%s)", n->conf->peers[idx].name, m->name,
                  m->kind == PROTO_KIND_DESTROY ? "destroyed" : "expired");
out:
        sess_release(n->dirfd, m->name, &f);
}

void recv_apply(struct node *n, size_t idx, const struct proto_msg *m, struct proto_msg *ack) {
        struct ent *e;

        memset(ack, 0, sizeof(*ack));
        ack->type = PROTO_ACK;
        ack->ack_seq = m->seq;
        strcpy(ack->name, m->name);
        if (!sess_name_valid(m->name, n->conf->session_prefix)) {
                n->stats[idx].errors++;
                log_warn("peer \"%s\": refused \"%s\": not a session file name here (prefix \"%s\")",
                         n->conf->peers[idx].name, m->name, n->conf->session_prefix);
                ack_state(ack, PROTO_ST_REJECT, ENT_NONE, NULL);
                return;
        }
        e = node_ensure(n, m->name);
        if (!e) {
                ack_state(ack, PROTO_ST_RETRY, ENT_NONE, NULL);
                return;
        }
        if (m->type == PROTO_DELETE) {
                if (!version_refused(n, idx, m, ack))
                        apply_delete(n, idx, m, e, ack);
        } else {
                apply_write(n, idx, m, e, ack);
        }
        return;
}
