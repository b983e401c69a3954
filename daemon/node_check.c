/* Change detection: inotify events and rescans put names in the check set;
 * once per turn each is read under LOCK_SH and compared with the table
 * (DESIGN.md "What PHP does"). The bytes read are kept for the turn, so a
 * change is read once however many peers it goes to. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "lib/delta.h"
#include "lib/sess.h"

/* Below this a whole file is never larger than a delta: keep no signature. */
#define NODE_DELTA_MIN 512
#define NODE_RETRY_MS 1000
#define NODE_BUSY_MS 5 /* PHP holds the lock for one request: poll soon, cheaply */

/* Bytes of files one turn may keep for its peers. A rescan looks at every
 * file in one turn; without a cap the daemon would briefly hold the whole
 * session tmpfs in memory. Past it, senders read the file again. */
#define NODE_TURN_BYTES (16u << 20)

int64_t node_on_busy_timer(struct loop *l, void *ctx) {
        struct node *n = ctx;
        struct ent *e;

        (void)l;
        while ((e = node_vec_pop(&n->busy))) {
                e->checking = false;
                node_check(n, e->name);
        }
        return LOOP_TIMER_STOP;
}

void node_check(struct node *n, const char *name) {
        struct ent *e;

        if (!sess_name_valid(name, n->conf->session_prefix))
                return;
        e = node_ensure(n, name);
        if (!e) {
                log_error("\"%s\": out of memory; the next rescan will find it", name);
                n->rescan = true;
                return;
        }
        if (e->checking)
                return;
        if (node_vec_push(&n->checks, e) < 0) {
                n->rescan = true;
                return;
        }
        e->checking = true;
}

int node_scan(struct node *n) {
        struct dirent *de;
        DIR *d;
        int fd;

        /* Files that vanished while nobody watched: every known live file is
         * checked too, so a missing one becomes a tombstone. */
        for (struct ent *e = n->table; e; e = e->hh.next)
                if (e->kind == PROTO_KIND_FILE)
                        node_check(n, e->name);
        fd = openat(n->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                close(fd);
                return r;
        }
        while ((de = readdir(d)))
                if (de->d_type == DT_REG || de->d_type == DT_UNKNOWN)
                        node_check(n, de->d_name);
        closedir(d);
        return 0;
}

static void turn_keep(struct node *n, struct ent *e, uint8_t *data, size_t len) {
        if (e->tturn != n->turn && n->turn_bytes + len > NODE_TURN_BYTES) {
                free(data);
                return;
        }
        n->turn_bytes += len;
        free(e->tdata);
        e->tdata = data;
        e->tlen = len;
        if (e->tturn != n->turn) {
                e->tturn = n->turn;
                if (node_vec_push(&n->turn_reads, e) < 0) {
                        free(e->tdata);   /* no cache, read again: correct, slower */
                        e->tdata = NULL;
                        e->tturn = 0;
                }
        }
}

static void local_delete(struct node *n, struct ent *e) {
        uint64_t now = loop_realtime_ns();
        uint64_t life = n->conf->session_lifetime_ms * 1000000ull;
        struct proto_ver v;
        uint8_t kind;

        /* DESIGN "Versions": a file older than the lifetime was expired by
         * PHP's GC and the tombstone carries its version, so it cannot log
         * out a user who stayed active elsewhere; a younger one was a logout
         * and carries the time of the delete. */
        if (now > e->ver.mtime_ns && now - e->ver.mtime_ns >= life) {
                kind = PROTO_KIND_EXPIRE;
                v = e->ver;
        } else {
                kind = PROTO_KIND_DESTROY;
                v = (struct proto_ver){ .mtime_ns = now, .hash = 0 };
        }
        log_debug("\"%s\": deleted here (%s)", e->name, kind == PROTO_KIND_EXPIRE ? "expired" : "destroyed");
        if (node_record_tomb(n, e, kind, &v, false) < 0)
                return;
        node_mark_all(n, e);
}

void node_saw(struct node *n, struct ent *e, const struct sess_file *f) {
        if (!f) {
                if (e->kind == PROTO_KIND_FILE)
                        local_delete(n, e);
                return;
        }
        if (e->kind != PROTO_KIND_FILE || proto_ver_cmp(&f->ver, &e->ver) != 0) {
                log_debug("\"%s\": changed here (%zu bytes)", e->name, f->len);
                node_record_file(n, e, &f->ver, f->len, false);
                node_mark_all(n, e);
        }
}

/* Read e under LOCK_SH and reconcile the entry with the disk. */
static int look(struct node *n, struct ent *e) {
        struct sess_file f = SESS_FILE_INIT;
        int r;

        r = sess_open(n->dirfd, e->name, SESS_SHARED, n->conf->max_file_size, &f);
        if (r == -ENOENT || r == -ELOOP || r == -EISDIR || r == -EINVAL) {
                node_saw(n, e, NULL);
                return -ENOENT;
        }
        if (r == -EFBIG) {
                if (e->size != (uint32_t)f.len)
                        log_warn("\"%s\": %zu bytes, over max_file_size; not replicated", e->name, f.len);
                e->size = (uint32_t)f.len;
                return r;
        }
        if (r < 0)
                return r;
        node_saw(n, e, &f);
        turn_keep(n, e, f.data, f.len);
        f.data = NULL;
        sess_release(n->dirfd, e->name, &f);
        return 0;
}

void node_run_checks(struct node *n) {
        struct ent *e;

        if (n->rescan) {
                n->rescan = false;
                log_info("rescanning the session directory");
                if (node_scan(n) < 0)
                        log_error("rescan failed: %s", strerror(errno));
        }
        while ((e = node_vec_pop(&n->checks))) {
                int r;

                e->checking = false;
                if (e->tturn == n->turn)
                        continue;   /* read this turn already */
                r = look(n, e);
                if (r == -EWOULDBLOCK) {
                        if (node_vec_push(&n->busy, e) == 0) {
                                e->checking = true;
                                loop_timer_arm_sooner(n->loop, n->busy_timer, NODE_BUSY_MS);
                        }
                } else if (r < 0 && r != -ENOENT && r != -EFBIG) {
                        /* Transient (EMFILE, EIO, ENOMEM): look again later,
                         * never forget a change. */
                        log_warn("\"%s\": cannot read: %s; retrying", e->name, strerror(-r));
                        if (node_vec_push(&n->busy, e) == 0) {
                                e->checking = true;
                                loop_timer_arm_sooner(n->loop, n->busy_timer, NODE_RETRY_MS);
                        }
                }
        }
}

int node_read(struct node *n, struct ent *e, const uint8_t **ret_data, size_t *ret_len) {
        int r;

        if (e->tturn != n->turn) {
                if ((r = look(n, e)) < 0)
                        return r;
        }
        if (e->kind != PROTO_KIND_FILE)
                return -ENOENT;
        if (e->tturn != n->turn)
                return -ENOBUFS;   /* over this turn's cap: send it next turn */
        *ret_data = e->tdata;
        *ret_len = e->tlen;
        return 0;
}

void node_end_turn(struct node *n) {
        struct ent *e;

        while ((e = node_vec_pop(&n->turn_reads))) {
                if (e->kind == PROTO_KIND_FILE && e->tlen >= NODE_DELTA_MIN && e->sig_hash != e->ver.hash &&
                    sess_hash(e->tdata, e->tlen) == e->ver.hash) {
                        struct delta_sig *sig = NULL;

                        /* Move the basis forward only once some peer holds the
                         * new version; others fall back to whole files. */
                        for (size_t i = 0; i < n->n_peers; i++) {
                                if (e->peer[i].has.hash == e->ver.hash && e->peer[i].has_kind == PROTO_KIND_FILE) {
                                        if (delta_sig_new(e->tdata, e->tlen, &sig) == 0) {
                                                delta_sig_free(e->sig);
                                                e->sig = sig;
                                                e->sig_hash = e->ver.hash;
                                        }
                                        break;
                                }
                        }
                }
                free(e->tdata);
                e->tdata = NULL;
                e->tlen = 0;
                e->tturn = 0;
        }
        n->turn_bytes = 0;
        n->turn++;
}
