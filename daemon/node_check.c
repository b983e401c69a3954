/* Change detection: inotify events and rescans put names in the check set;
 * once per turn each is read under LOCK_SH and compared with the table
 * (docs/DESIGN.md "What PHP does, and what follows"). The bytes read are
 * kept for the turn (node_turn.c), so a change is read once however many
 * peers it goes to. The only file that turns what is on disk into news. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "lib/sess.h"
#include "lib/ver.h"

/* Looking again at a file that could not be read (docs/DESIGN.md "Change
 * detection"): a lock PHP holds for one request is looked at after 5 ms,
 * doubling up to 1 s (a short request costs no latency; one held for
 * seconds costs a few looks, and PHP's close raises the event that looks at
 * once); an unreadable file after 1 s, doubling up to 32 s. */
#define NODE_BUSY_MS 5
#define NODE_BUSY_MAX_MS 1000
#define NODE_RETRY_MS 1000
#define NODE_RETRY_MAX_MS 32000

/* Due entries go back to the check set; the others wait for their time.
 * An entry checked meanwhile (an event) is looked at then, and leaves here
 * when its time comes. */
static int64_t on_busy_timer(struct loop *l, void *ctx) {
        struct node *n = ctx;
        uint64_t now = loop_clock_ms(), next = 0;
        size_t k = 0;

        (void)l;
        for (size_t j = n->busy.head; j < n->busy.n; j++) {
                struct node_ent *e = n->busy.v[j];

                if (e->due_ms <= now) {
                        e->retrying = false;
                        node_check(n, e->name);
                        continue;
                }
                if (!next || e->due_ms - now < next)
                        next = e->due_ms - now;
                n->busy.v[k++] = e;
        }
        n->busy.head = 0;
        n->busy.n = k;
        return next ? (int64_t)next : LOOP_TIMER_STOP;
}

void node_check(struct node *n, const char *name) {
        struct node_ent *e;

        if (!sess_name_valid(name, n->conf->session_format, n->conf->session_prefix))
                return;
        e = node_ensure(n, name);
        if (!e) {
                log_error("session %s: out of memory; the next rescan will find it", NODE_TAG(name));
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
        for (struct node_ent *e = n->table; e; e = e->hh.next)
                if (e->kind == VER_KIND_FILE)
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

static void local_delete(struct node *n, struct node_ent *e) {
        struct proto_ver v;
        uint8_t kind;

        ver_delete(&e->ver, loop_realtime_ns(), n->conf->session_lifetime_ms * 1000000ull, &kind, &v);
        log_debug("session %s: deleted here (%s)", e->tag, kind == VER_KIND_EXPIRE ? "expired" : "destroyed");
        if (node_record_tomb(n, e, kind, &v, false) < 0)
                return;
        node_mark_all(n, e);
}

/* The first turn checks what the start-up scan found: a change then was
 * made by PHP while no daemon ran (killed, or restarted with the web server
 * up). Readiness tells the load balancer to keep that node's own users. */
static void count_start(struct node *n, struct node_ent *e) {
        if (n->turn == 1 || e->start_busy)
                n->changed_at_start++;
        e->start_busy = false;
}

void node_saw(struct node *n, struct node_ent *e, const struct sess_file *f) {
        if (!f) {
                if (e->kind == VER_KIND_FILE) {
                        count_start(n, e);
                        local_delete(n, e);
                }
                return;
        }
        if (e->kind != VER_KIND_FILE || ver_cmp(&f->ver, &e->ver) != 0) {
                count_start(n, e);
                log_debug("session %s: changed here (%zu bytes)", e->tag, f->len);
                node_record_file(n, e, &f->ver, f->len, false);
                node_mark_all(n, e);
        }
}

/* What identifies the file's state without reading it: a change of inode,
 * mode, size or mtime is worth a new warning. 0 when there is no file. */
static uint64_t fingerprint(const struct node *n, const struct node_ent *e) {
        struct stat st;
        uint64_t v[5];

        if (fstatat(n->dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return 0;
        v[0] = (uint64_t)st.st_ino;
        v[1] = (uint64_t)st.st_mode;
        v[2] = (uint64_t)st.st_size;
        v[3] = sess_ts_ns(&st.st_mtim);
        v[4] = (uint64_t)st.st_uid;
        return sess_hash(v, sizeof(v)) | 1;
}

/* e could be read (or is gone): it leaves the unreadable set. */
static void readable(struct node *n, struct node_ent *e, bool gone) {
        e->tries = 0;
        if (!e->read_fp)
                return;
        e->read_fp = 0;
        n->n_unreadable--;
        if (!gone)
                log_info("session %s: readable again", e->tag);
}

/* e cannot be read (EACCES, EIO, ...): warn once per name, and again only
 * when the file has changed since. */
static void unreadable(struct node *n, struct node_ent *e, int r) {
        uint64_t fp = fingerprint(n, e);

        if (!e->read_fp)
                n->n_unreadable++;
        if (e->read_fp == fp)
                return;   /* said already, nothing changed: quiet */
        e->read_fp = fp ? fp : 1;
        n->unreadable_total++;
        log_warn("session %s: cannot read: %s; looking again with backoff, quiet until it changes", e->tag,
                 strerror(-r));
}

/* Read e under LOCK_SH and reconcile the entry with the disk. */
static int look(struct node *n, struct node_ent *e) {
        struct sess_file f = SESS_FILE_INIT;
        int r;

        r = node_open(n, e, SESS_SHARED, n->conf->max_file_size, &f);
        if (r == -ENOENT || r == -ELOOP || r == -EISDIR || r == -EINVAL) {
                readable(n, e, true);
                node_saw(n, e, NULL);
                e->start_busy = false;
                return -ENOENT;
        }
        if (r == -EFBIG) {
                if (e->size != (uint32_t)f.len)
                        log_warn("session %s: %zu bytes, over max_file_size; not replicated", e->tag, f.len);
                e->size = (uint32_t)f.len;
                return r;
        }
        if (r == -EPERM || r == -EMLINK)
                readable(n, e, false);   /* read, and refused for its owner or links (node_file.c) */
        if (r < 0)
                return r;
        readable(n, e, false);
        node_saw(n, e, &f);
        e->start_busy = false;   /* seen once unlocked: a later change is no longer from the start */
        node_turn_keep(n, e, f.data, f.len);
        f.data = NULL;
        sess_release(n->dirfd, e->name, &f);
        return 0;
}

void node_rescan_later(struct node *n) {
        n->rescan = true;
}

/* Look at e again after base_ms, doubled for every look in a row that
 * failed, up to max_ms. The busy timer is this file's: created on first
 * use, deleted by node_free. */
static void look_later(struct node *n, struct node_ent *e, uint64_t base_ms, uint64_t max_ms) {
        uint64_t ms = base_ms << (e->tries < 16 ? e->tries : 16);

        if (ms > max_ms)
                ms = max_ms;
        if (e->tries < UINT8_MAX)
                e->tries++;
        if (!n->busy_timer && !(n->busy_timer = loop_timer_new(n->loop, on_busy_timer, n))) {
                n->rescan = true;
                return;
        }
        e->due_ms = loop_clock_ms() + ms;
        if (!e->retrying) {
                if (node_vec_push(&n->busy, e) < 0) {
                        n->rescan = true;
                        return;
                }
                e->retrying = true;
        }
        loop_timer_arm_sooner(n->loop, n->busy_timer, ms);
}

void node_run_checks(struct node *n) {
        struct node_ent *e;

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
                        if (n->turn == 1)
                                e->start_busy = true;   /* PHP is on it: what it finds still dates from the start */
                        n->lock_retries_total++;
                        look_later(n, e, NODE_BUSY_MS, NODE_BUSY_MAX_MS);
                } else if (r < 0 && r != -ENOENT && r != -EFBIG && r != -EPERM && r != -EMLINK) {
                        /* Unreadable (EACCES) or transient (EMFILE, EIO,
                         * ENOMEM): look again later, never forget a change. */
                        unreadable(n, e, r);
                        look_later(n, e, NODE_RETRY_MS, NODE_RETRY_MAX_MS);
                } else {
                        e->tries = 0;
                }
        }
}
