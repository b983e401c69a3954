/* The receiver (node_recv) against a real directory and node table: it
 * must never hide a local write or logout that no check has seen yet, and
 * never take versions a tombstone may have forgotten or a bad clock made. */
#include <stdbool.h>
#include <time.h>

#include "proto/msg.h"
#include "tests/fixture_node.h"

TestSuite(recv, .init = setup, .fini = teardown);

static struct proto_msg file_msg(const char *name, const char *content, uint64_t mtime_ns) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_FILE;
        m.seq = 7;
        strcpy(m.name, name);
        m.data = (const uint8_t *)content;
        m.data_len = strlen(content);
        m.size = m.data_len;
        m.ver.mtime_ns = mtime_ns;
        m.ver.hash = sess_hash(content, strlen(content));
        return m;
}

static bool exists(const char *name) {
        char path[256];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        return access(path, F_OK) == 0;
}

static uint64_t now_s(void) {
        return (uint64_t)time(NULL);
}

Test(recv, applies_a_newer_file_in_place) {
        struct proto_msg m = file_msg("sess_a", "user|s:1:\"a\";", (now_s() - 5) * 1000000000ull), ack;
        struct node_ent *e;

        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "%s", proto_status_name(ack.status));
        e = check("sess_a");
        cr_assert_eq(e->kind, PROTO_KIND_FILE);
        cr_assert_eq(e->ver.mtime_ns, m.ver.mtime_ns, "origin's mtime, to the ns");
        cr_assert_eq(node_pending(node, 0) + node_pending(node, 1), 0, "an applied version is not pushed back live");
}

/* A local PHP write not yet looked at, then an older FILE from a peer. */
Test(recv, stale_apply_never_hides_an_unseen_local_write) {
        struct proto_msg m, ack;
        uint64_t t = now_s();

        put_file("sess_x", "old", (long long)t - 30);
        check("sess_x");
        drain(0);
        drain(1);
        put_file("sess_x", "local-new", (long long)t - 10);   /* PHP writes; its event is still queued */
        m = file_msg("sess_x", "peer", (t - 20) * 1000000000ull);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_STALE, "%s", proto_status_name(ack.status));
        check("sess_x");   /* the queued IN_CLOSE_WRITE */
        cr_assert_gt(node_pending(node, 1), 0, "the local write goes to peer c");
        cr_assert_gt(node_pending(node, 0), 0, "and to peer b, which sent an older one");
}

/* Logout (unlink) here not yet looked at, then an older FILE from a peer
 * (e.g. a BUSY retry that was waiting on the logout request's lock). */
Test(recv, apply_in_the_delete_window_never_undoes_a_logout) {
        struct proto_msg m, ack;
        struct node_ent *e;
        uint64_t t = now_s();

        put_file("sess_y", "logged-in", (long long)t - 10);
        e = check("sess_y");
        drain(0);
        drain(1);
        rm_file("sess_y");   /* session_destroy(); IN_DELETE still queued */
        m = file_msg("sess_y", "logged-in-b", (t - 5) * 1000000000ull);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_STALE, "%s", proto_status_name(ack.status));
        cr_assert_eq(ack.kind, PROTO_KIND_DESTROY);
        check("sess_y");
        cr_assert_eq(e->kind, PROTO_KIND_DESTROY, "the logout wins");
        cr_assert_not(exists("sess_y"), "no file came back");
        cr_assert_gt(node_pending(node, 1), 0, "and its tombstone goes to the peers");
}

/* The same window for a DELETE from a peer: our own logout is recorded first. */
Test(recv, delete_in_the_delete_window_keeps_our_logout) {
        struct proto_msg m = { .type = PROTO_DELETE, .kind = PROTO_KIND_EXPIRE }, ack;
        struct node_ent *e;
        uint64_t t = now_s();

        put_file("sess_w", "x", (long long)t - 10);
        e = check("sess_w");
        drain(0);
        drain(1);
        rm_file("sess_w");
        strcpy(m.name, "sess_w");
        m.ver = (struct proto_ver){ (t - 100) * 1000000000ull, 1 };
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK);
        cr_assert_eq(e->kind, PROTO_KIND_DESTROY, "our destroy beats the peer's older expiry");
}

/* A logout older than tombstone_ttl is forgotten: a copy that old must not
 * come back (PHP's GC would call it garbage anyway). */
Test(recv, a_version_older_than_tombstone_ttl_is_never_applied) {
        struct proto_msg m, ack;
        struct proto_ver t = { 5000ull * 1000000000ull, 0 };
        struct node_ent *e = node_ensure(node, "sess_z");

        cr_assert_eq(node_record_tomb(node, e, PROTO_KIND_DESTROY, &t, false), 0);
        e->tomb_ns = 1;   /* made more than tombstone_ttl ago */
        node_expire_tombs(node);
        cr_assert_null(node_get(node, "sess_z"));
        m = file_msg("sess_z", "user=alice", 4000ull * 1000000000ull);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_STALE, "%s", proto_status_name(ack.status));
        cr_assert_eq(ack.kind, PROTO_KIND_EXPIRE, "answered as an expiry, so the sender stops");
        cr_assert_not(exists("sess_z"));
}

Test(recv, a_version_from_the_future_is_refused) {
        struct proto_msg m = file_msg("sess_f", "x", (now_s() + 3600) * 1000000000ull), ack;
        struct proto_msg d = { .type = PROTO_DELETE, .kind = PROTO_KIND_DESTROY };

        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_REJECT);
        cr_assert_not(exists("sess_f"));
        strcpy(d.name, "sess_f");
        d.ver = (struct proto_ver){ UINT64_MAX - 1, 0 };
        node_recv(node, 0, &d, &ack);
        cr_assert_eq(ack.status, PROTO_ST_REJECT, "a destroy dated far ahead would kill the session for good");
}

Test(recv, names_are_checked_like_names_from_the_directory) {
        struct proto_msg m = file_msg("notes.txt", "x", (now_s() - 5) * 1000000000ull), ack;

        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_REJECT);
        cr_assert_not(exists("notes.txt"));
}

/* ---- only PHP's own files are written (docs/DESIGN.md "Only PHP's own files") ---- */

#define OTHER_UID 65534   /* nobody; the tests run as root, PHP's user here is ours */

static char outside[64];

/* A file outside the session directory, with a name inside it: a second
 * hard link. Writing through the session name would write the outside
 * file (a root daemon could be made to overwrite anything). */
static void link_outside(const char *name, const char *content, long long mtime_s, char path[128]) {
        char in[256];
        struct timespec ts[2] = { { mtime_s, 0 }, { mtime_s, 456 } };
        FILE *f;

        strcpy(outside, "/tmp/sessync-outside.XXXXXX");
        cr_assert_not_null(mkdtemp(outside));
        snprintf(path, 128, "%s/victim", outside);
        f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs(content, f);
        fclose(f);
        cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
        snprintf(in, sizeof(in), "%s/%s", dir, name);
        cr_assert_eq(link(path, in), 0, "link %s: %s", in, strerror(errno));
}

static void rm_outside(void) {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", outside);
        (void)system(cmd);
}

static char *slurp(const char *path) {
        static char buf[4096];
        FILE *f = fopen(path, "r");
        size_t n;

        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        return buf;
}

static struct stat stat_path(const char *path) {
        struct stat st;

        cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
        return st;
}

static void in_dir(const char *name, char path[256]) {
        snprintf(path, 256, "%s/%s", dir, name);
}

/* FILE, DELTA and TOUCH for name, each newer than anything on disk. */
static void writes_for(const char *name, const char *old_content, struct proto_msg m[3]) {
        uint64_t t = (now_s() - 5) * 1000000000ull;

        m[0] = file_msg(name, "uid|i:0;role|s:5:\"admin\";", t);
        m[1] = file_msg(name, "uid|i:0;role|s:5:\"admin\";", t + 1);
        m[1].type = PROTO_DELTA;
        m[1].basis_hash = sess_hash(old_content, strlen(old_content));
        m[1].data = (const uint8_t *)"not even a delta";
        m[1].data_len = 16;
        m[2] = file_msg(name, old_content, t + 2);
        m[2].type = PROTO_TOUCH;
        m[2].data = NULL;
        m[2].data_len = 0;
}

Test(recv, a_write_through_a_hard_link_to_outside_is_rejected) {
        const char *victim = "root:x:0:0:root:/root:/bin/bash\n";
        struct proto_msg m[3], ack;
        char path[128];
        struct stat before, after;

        link_outside("sess_hl", victim, 1600000000, path);
        before = stat_path(path);
        writes_for("sess_hl", victim, m);
        for (size_t i = 0; i < 3; i++) {
                node_recv(node, 0, &m[i], &ack);
                cr_assert_eq(ack.status, PROTO_ST_REJECT, "%s: %s", proto_type_name(m[i].type),
                             proto_status_name(ack.status));
                after = stat_path(path);
                cr_assert_str_eq(slurp(path), victim, "%s: the outside file's bytes are unchanged",
                                 proto_type_name(m[i].type));
                cr_assert_eq(sess_ts_ns(&after.st_mtim), sess_ts_ns(&before.st_mtim),
                             "%s: the outside file's mtime is unchanged", proto_type_name(m[i].type));
                cr_assert_eq(after.st_ino, before.st_ino);
                cr_assert_eq(after.st_nlink, 2, "both names are still there");
        }
        cr_assert_eq(node_stats(node, 0)->errors, 3, "counted as errors of that peer");
        cr_assert_eq(node_n_skipped(node), 1, "and the name is counted as skipped");
        cr_assert_eq(node_pending(node, 0) + node_pending(node, 1), 0, "nothing queued for any peer");
        rm_outside();
}

Test(recv, a_write_into_a_file_of_another_uid_is_rejected) {
        const char *planted = "uid|i:1;role|s:5:\"admin\";";
        struct proto_msg m[3], ack;
        char path[256];
        struct stat before, after;

        put_file("sess_fo", planted, 1600000000);
        in_dir("sess_fo", path);
        cr_assert_eq(chown(path, OTHER_UID, OTHER_UID), 0, "chown: %s (tests run as root)", strerror(errno));
        before = stat_path(path);
        writes_for("sess_fo", planted, m);
        for (size_t i = 0; i < 3; i++) {
                node_recv(node, 0, &m[i], &ack);
                cr_assert_eq(ack.status, PROTO_ST_REJECT, "%s: %s", proto_type_name(m[i].type),
                             proto_status_name(ack.status));
                after = stat_path(path);
                cr_assert_str_eq(slurp(path), planted, "%s: bytes unchanged", proto_type_name(m[i].type));
                cr_assert_eq(sess_ts_ns(&after.st_mtim), sess_ts_ns(&before.st_mtim), "%s: mtime unchanged",
                             proto_type_name(m[i].type));
                cr_assert_eq(after.st_ino, before.st_ino, "%s: same inode (not replaced)", proto_type_name(m[i].type));
                cr_assert_eq(after.st_uid, OTHER_UID, "%s: still its owner's", proto_type_name(m[i].type));
        }
        cr_assert_eq(node_n_skipped(node), 1);
        cr_assert_eq(node_pending(node, 0) + node_pending(node, 1), 0);
}

/* A file of another uid is not PHP's and is left alone. A hard-linked name
 * is PHP's session still (PHP does not count links): the logout removes
 * that name, and nothing is written through the other one. */
Test(recv, a_delete_leaves_a_file_of_another_uid_and_unlinks_only_a_hard_linked_name) {
        struct proto_msg d = { .type = PROTO_DELETE, .kind = PROTO_KIND_DESTROY }, ack;
        char fo[256], hl[128];

        put_file("sess_fo", "planted", 1600000000);
        in_dir("sess_fo", fo);
        cr_assert_eq(chown(fo, OTHER_UID, OTHER_UID), 0, "chown: %s", strerror(errno));
        link_outside("sess_hl", "outside", 1600000000, hl);

        d.ver = (struct proto_ver){ (now_s() - 1) * 1000000000ull, 0 };
        strcpy(d.name, "sess_fo");
        node_recv(node, 0, &d, &ack);
        cr_assert_neq(ack.status, PROTO_ST_BUSY, "not a retry forever");
        cr_assert(exists("sess_fo"), "a file another uid owns is left in place");
        cr_assert_str_eq(slurp(fo), "planted");
        cr_assert_eq(stat_path(fo).st_uid, OTHER_UID);

        strcpy(d.name, "sess_hl");
        node_recv(node, 0, &d, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "the logout took effect");
        cr_assert_not(exists("sess_hl"), "the hard-linked name is removed: PHP would serve it");
        cr_assert_eq(stat_path(hl).st_nlink, 1, "the outside name stays");
        cr_assert_str_eq(slurp(hl), "outside", "and nothing was written through it");
        rm_outside();
}

Test(recv, a_planted_file_is_skipped_counted_and_forgotten_once_removed) {
        char path[256], hl[128];
        struct node_ent *e;

        put_file("sess_planted", "uid|i:1;role|s:5:\"admin\";", 0);
        in_dir("sess_planted", path);
        cr_assert_eq(chown(path, OTHER_UID, OTHER_UID), 0, "chown: %s", strerror(errno));
        put_file("sess_real", "uid|i:2;", 0);   /* PHP's own: the control */

        e = check("sess_planted");
        check("sess_real");
        cr_assert_not_null(e, "an entry keeps the refusal (logged once)");
        cr_assert_neq(e->kind, PROTO_KIND_FILE, "never recorded as a session file");
        cr_assert_eq(node_n_skipped(node), 1);
        cr_assert_eq(node_skipped_total(node), 1);
        cr_assert_eq(node_n_files(node), 1, "only sess_real counts as a session");
        cr_assert_eq(node_pending(node, 0), 1, "peer b gets sess_real only");
        cr_assert_eq(node_pending(node, 1), 1, "peer c gets sess_real only");
        cr_assert_eq(node_next_dirty(node, 0), node_get(node, "sess_real"));
        cr_assert_null(node_next_dirty(node, 0));
        drain(1);

        /* Seen again (the attacker writes it again): still one, counted once. */
        put_file("sess_planted", "uid|i:1;role|s:5:\"root\";", 0);
        check("sess_planted");
        cr_assert_eq(node_n_skipped(node), 1);
        cr_assert_eq(node_skipped_total(node), 1, "the same refusal is not counted again");
        cr_assert_eq(node_pending(node, 0) + node_pending(node, 1), 0);

        /* A hard link is another one. */
        link_outside("sess_linked", "outside", 1600000000, hl);
        check("sess_linked");
        cr_assert_eq(node_n_skipped(node), 2);
        cr_assert_eq(node_pending(node, 0) + node_pending(node, 1), 0);

        rm_file("sess_planted");
        check("sess_planted");
        cr_assert_eq(node_n_skipped(node), 1, "removed: no longer skipped");
        rm_file("sess_linked");
        check("sess_linked");
        cr_assert_eq(node_n_skipped(node), 0);
        cr_assert_eq(node_skipped_total(node), 2, "a total, not a gauge");
        cr_assert_eq(node_pending(node, 0) + node_pending(node, 1), 0,
                     "their removal is no news for the peers either (they never had them)");
        rm_outside();
}

/* ---- names never seen (docs/DESIGN.md "Names never seen") ---- */

static struct proto_msg delete_msg(const char *name, uint8_t kind, uint64_t mtime_ns) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_DELETE;
        m.seq = 9;
        m.kind = kind;
        strcpy(m.name, name);
        m.ver = (struct proto_ver){ mtime_ns, 0 };
        return m;
}

/* A flood of DELETEs for random names keeps at most unseen_max tombstones;
 * the ones forgotten early still keep their logouts: an older copy of any
 * of them arriving later is refused, a newer session is not. */
Test(recv, unseen_deletes_are_bounded_and_still_never_resurrect) {
        uint64_t t0 = (now_s() - 600) * 1000000000ull;
        struct proto_msg m, ack;
        char name[64];

        node->unseen_max = 100;
        node->new_burst = 100000;
        for (int i = 0; i < 1000; i++) {
                snprintf(name, sizeof(name), "sess_flood%04d", i);
                m = delete_msg(name, PROTO_KIND_DESTROY, t0 + (uint64_t)i * 100000000ull);   /* 0.1 s apart */
                node_recv(node, 0, &m, &ack);
                cr_assert_eq(ack.status, PROTO_ST_OK, "%d: %s", i, proto_status_name(ack.status));
        }
        cr_assert_eq(node_n_unseen(node), 100);
        cr_assert_eq(node_n_tombs(node), 100, "the table holds the bound, not the flood");
        cr_assert_eq(HASH_COUNT(node->table), 100, "and no empty entries");
        cr_assert_eq(node_unseen_forgotten_total(node), 900);
        /* A copy from before its logout, of a name forgotten early. */
        m = file_msg("sess_flood0003", "user=alice", t0 + 2 * 100000000ull);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_STALE, "%s", proto_status_name(ack.status));
        cr_assert_not(exists("sess_flood0003"), "the forgotten logout stays a logout");
        /* And one of a name still kept. */
        m = file_msg("sess_flood0950", "user=bob", t0 + 949 * 100000000ull);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_STALE);
        cr_assert_not(exists("sess_flood0950"));
        /* A session written after every one of those deletes is taken. */
        m = file_msg("sess_newlogin", "user=carol", (now_s() - 1) * 1000000000ull);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "%s", proto_status_name(ack.status));
        cr_assert(exists("sess_newlogin"));
        /* A tombstone the watermark covers costs nothing. */
        m = delete_msg("sess_oldnews", PROTO_KIND_DESTROY, t0 + 5 * 100000000ull);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK);
        cr_assert_null(node_get(node, "sess_oldnews"));
}

/* Past a peer's budget of tombstones for names never seen, a DELETE for one
 * answers RETRY (the peer sends it again later) and leaves nothing behind;
 * another peer's budget, a logout of a session this node holds, and new
 * sessions are untouched. */
Test(recv, unseen_budget_per_peer_answers_retry) {
        uint64_t t = (now_s() - 60) * 1000000000ull;
        struct proto_msg m, ack;
        char name[64];

        node->new_burst = 10;
        node->new_rate = 0;
        put_file("sess_real", "user=dave", (long long)now_s() - 100);
        check("sess_real");
        for (int i = 0; i < 20; i++) {
                snprintf(name, sizeof(name), "sess_budget%02d", i);
                m = delete_msg(name, PROTO_KIND_DESTROY, t);
                node_recv(node, 0, &m, &ack);
                cr_assert_eq(ack.status, i < 10 ? PROTO_ST_OK : PROTO_ST_RETRY, "%d: %s", i,
                             proto_status_name(ack.status));
                if (i >= 10)
                        cr_assert_null(node_get(node, name), "a refused name leaves no entry");
        }
        cr_assert_eq(node_stats(node, 0)->refused_new, 10);
        cr_assert_eq(node_n_tombs(node), 10);
        m = delete_msg("sess_real", PROTO_KIND_DESTROY, t);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "a real logout is never held back: %s", proto_status_name(ack.status));
        cr_assert_not(exists("sess_real"));
        /* New sessions do not take from it (a full sync to an empty node is
         * an honest flood of them; the space reserve bounds files). */
        m = file_msg("sess_budgetfile", "x", t);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "%s", proto_status_name(ack.status));
        cr_assert(exists("sess_budgetfile"));
        /* The other peer has its own budget. */
        m = delete_msg("sess_budgetother", PROTO_KIND_DESTROY, t);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "%s", proto_status_name(ack.status));
        cr_assert_eq(node_stats(node, 1)->refused_new, 0);
}

/* A refused FILE (hash mismatch) for a name never seen leaves no entry. */
Test(recv, refused_names_leave_no_entry) {
        struct proto_msg m = file_msg("sess_badhash", "x", (now_s() - 5) * 1000000000ull), ack;

        m.ver.hash ^= 1;
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_REJECT);
        cr_assert_null(node_get(node, "sess_badhash"));
        cr_assert_eq(HASH_COUNT(node->table), 0);
}

/* An unseen tombstone that a file later beats leaves the bound. */
Test(recv, unseen_tombstone_beaten_by_a_newer_file_leaves_the_bound) {
        uint64_t t = (now_s() - 60) * 1000000000ull;
        struct proto_msg m = delete_msg("sess_back", PROTO_KIND_DESTROY, t), ack;

        node_recv(node, 0, &m, &ack);
        cr_assert_eq(node_n_unseen(node), 1);
        m = file_msg("sess_back", "relogin", t + 1000000000ull);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK);
        cr_assert_eq(node_n_unseen(node), 0);
        cr_assert_eq(node_n_tombs(node), 0);
}

/* The bound at its edge: the tombstone just kept is never the one
 * forgotten (the receiver still holds it), the one before it is. */
Test(recv, unseen_bound_of_one_forgets_the_older) {
        uint64_t t = (now_s() - 60) * 1000000000ull;
        struct proto_msg m = delete_msg("sess_edge1", PROTO_KIND_DESTROY, t), ack;

        node->unseen_max = 0;
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK);
        cr_assert_eq(node_n_unseen(node), 1);
        m = delete_msg("sess_edge2", PROTO_KIND_DESTROY, t + 1);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK);
        cr_assert_eq(node_n_unseen(node), 1);
        cr_assert_null(node_get(node, "sess_edge1"));
        cr_assert_not_null(node_get(node, "sess_edge2"));
        m = file_msg("sess_edge1", "x", t - 1);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_STALE, "what the forgotten one beat stays refused");
}

/* Arriving in any order (a catch-up walks a hash table), the ones kept are
 * those covering most and the watermark is the highest cover forgotten:
 * as low as the bound allows. One grown by a stronger DELETE moves up. */
Test(recv, unseen_keeps_the_newest_whatever_the_order) {
        uint64_t t0 = (now_s() - 600) * 1000000000ull;
        struct proto_msg m, ack;
        char name[64];
        int order[1000];

        for (int i = 0; i < 1000; i++)
                order[i] = i;
        srand(7);
        for (int i = 999; i > 0; i--) {
                int j = rand() % (i + 1), x = order[i];

                order[i] = order[j];
                order[j] = x;
        }
        node->unseen_max = 100;
        for (int k = 0; k < 1000; k++) {
                int i = order[k];

                snprintf(name, sizeof(name), "sess_ord%04d", i);
                m = delete_msg(name, PROTO_KIND_DESTROY, t0 + (uint64_t)i * 100000000ull);
                node_recv(node, 0, &m, &ack);
                cr_assert_eq(ack.status, PROTO_ST_OK);
                if (i == 5) {   /* an old one grows: now it covers the most */
                        m = delete_msg(name, PROTO_KIND_DESTROY, t0 + 2000 * 100000000ull);
                        node_recv(node, 1, &m, &ack);
                        cr_assert_eq(ack.status, PROTO_ST_OK);
                }
        }
        cr_assert_eq(node_n_unseen(node), 100);
        cr_assert_not_null(node_get(node, "sess_ord0005"), "the grown one is kept");
        for (int i = 901; i < 1000; i++) {
                snprintf(name, sizeof(name), "sess_ord%04d", i);
                cr_assert_not_null(node_get(node, name), "%s: one of the newest, kept", name);
        }
        cr_assert_null(node_get(node, "sess_ord0900"));
        /* The watermark is the cover of sess_ord0900's destroy: a session
         * never seen, written just after it, is taken. */
        m = file_msg("sess_between", "x", t0 + 900 * 100000000ull + 50000000ull);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "%s", proto_status_name(ack.status));
        m = file_msg("sess_before", "x", t0 + 900 * 100000000ull - 1);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_STALE);
}

/* The bound, across a restart: the tombstones of names never seen are
 * journaled as such and the watermark of the forgotten ones with them, so
 * after a restart a copy from before a forgotten logout is still refused
 * and the set is still the set (lib/state.h, docs/DESIGN.md "Names never
 * seen"). */
Test(recv, unseen_watermark_survives_a_restart) {
        uint64_t t0 = (now_s() - 600) * 1000000000ull;
        char sdir[96], name[64], cmd[160];
        struct state *st = NULL;
        struct proto_msg m, ack;
        struct node *n2 = NULL;

        snprintf(sdir, sizeof(sdir), "%s.state", dir);
        cr_assert_eq(mkdir(sdir, 0700), 0);
        cr_assert_eq(state_open(sdir, node_load_record, node, false, &st), 0);
        node_set_state(node, st);
        node->unseen_max = 10;
        node->new_burst = 1000;
        for (int i = 0; i < 50; i++) {
                snprintf(name, sizeof(name), "sess_gone%04d", i);
                m = delete_msg(name, PROTO_KIND_DESTROY, t0 + (uint64_t)i * 100000000ull);
                node_recv(node, 0, &m, &ack);
                cr_assert_eq(ack.status, PROTO_ST_OK);
        }
        cr_assert_eq(node_n_unseen(node), 10);
        cr_assert_eq(node_make_durable(node), 0);
        state_close(st);
        node_set_state(node, NULL);

        /* The next start: a new node loads the same journal. */
        cr_assert_eq(node_new(&conf, loop, dirfd_, &n2), 0);
        cr_assert_eq(state_open(sdir, node_load_record, n2, false, &st), 0);
        node_set_state(n2, st);
        cr_assert_eq(node_n_unseen(n2), 10, "the kept ones are back in the bounded set");
        cr_assert_eq(node_n_tombs(n2), 10);
        m = file_msg("sess_gone0003", "user=alice", t0 + 2 * 100000000ull);
        node_recv(n2, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_STALE, "a copy from before a logout forgotten before the restart: %s",
                     proto_status_name(ack.status));
        cr_assert_not(exists("sess_gone0003"));
        m = file_msg("sess_after", "user=bob", (now_s() - 1) * 1000000000ull);
        node_recv(n2, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "%s", proto_status_name(ack.status));
        state_close(st);
        node_free(n2);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", sdir);
        (void)system(cmd);
}

/* A tombstone for a name never seen that covers past our clock (a peer's
 * clock ahead within the accepted skew, or a key stamping DELETEs ahead) is
 * kept: a logout from a node whose clock runs ahead must hold on every
 * replica. Forgotten, it lifts the watermark no further than our clock minus
 * clock_skew_warn, so a session written now is still taken
 * (t_attack_mark.sh). */
Test(recv, unseen_tombstones_ahead_of_our_clock_lift_the_watermark_no_further_than_it) {
        uint64_t now = now_s() * 1000000000ull, ahead = now + 60 * 1000000000ull;
        uint64_t skew = node_conf(node)->clock_skew_warn_ms * 1000000ull;
        struct proto_msg m, ack;

        node->unseen_max = 1;
        m = delete_msg("sess_ahead", PROTO_KIND_DESTROY, ahead);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "%s", proto_status_name(ack.status));
        cr_assert_eq(node_get(node, "sess_ahead")->ver.mtime_ns, ahead, "kept as stamped");
        m = file_msg("sess_ahead", "x", now + 30 * 1000000000ull);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_STALE, "the logout holds: %s", proto_status_name(ack.status));
        /* The next one forgets it: the watermark stops at our clock +
         * clock_skew_warn, not at its 60 s ahead. */
        m = delete_msg("sess_next", PROTO_KIND_DESTROY, ahead + 1000000000ull);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK);
        cr_assert_eq(node_unseen_forgotten_total(node), 1);
        cr_assert(node->unseen_marked);
        cr_assert_leq(node->unseen_mark.mtime_ns, now_s() * 1000000000ull + 1000000000ull - skew);
        m = file_msg("sess_login", "x", now + 1000000000ull);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "a session written after the capped watermark: %s",
                     proto_status_name(ack.status));
}

/* A key's FILE and then DELETE of each new name: the file existed, but only
 * a peer ever wrote it here, so its tombstone is a name never seen's and
 * bounded the same way (t_attack_churn.sh: on main 100,000 pairs left
 * 100,000 tombstones). A session PHP wrote here is a plain logout, never
 * held back. */
Test(recv, a_peers_file_and_delete_of_new_names_are_bounded) {
        uint64_t t0 = (now_s() - 600) * 1000000000ull;
        struct proto_msg m, ack;
        char name[64];

        node->unseen_max = 100;
        node->new_burst = 100000;
        for (int i = 0; i < 1000; i++) {
                snprintf(name, sizeof(name), "sess_churn%04d", i);
                m = file_msg(name, "x", t0 + (uint64_t)i * 100000000ull);
                node_recv(node, 0, &m, &ack);
                cr_assert_eq(ack.status, PROTO_ST_OK, "%d: %s", i, proto_status_name(ack.status));
                m = delete_msg(name, PROTO_KIND_DESTROY, t0 + (uint64_t)i * 100000000ull + 1);
                node_recv(node, 0, &m, &ack);
                cr_assert_eq(ack.status, PROTO_ST_OK, "%d: %s", i, proto_status_name(ack.status));
                cr_assert_not(exists(name), "the logout is applied");
        }
        cr_assert_leq(node_n_tombs(node), 101, "the bound, not the flood: %zu", node_n_tombs(node));
        /* What a forgotten one beat stays refused. */
        m = file_msg("sess_churn0003", "x", t0 + 3 * 100000000ull);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_STALE, "%s", proto_status_name(ack.status));
        cr_assert_not(exists("sess_churn0003"));
        /* PHP's own session, and a replica PHP wrote since: plain logouts. */
        put_file("sess_phps", "user=erin", (long long)now_s() - 100);
        check("sess_phps");
        m = file_msg("sess_relogged", "x", (now_s() - 50) * 1000000000ull);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK);
        put_file("sess_relogged", "user=frank", (long long)now_s() - 20);
        check("sess_relogged");
        node->new_burst = 0;
        node->new_rate = 0;
        node->peer[0].new_ms = 0;   /* the budget is spent from now on */
        m = delete_msg("sess_phps", PROTO_KIND_DESTROY, (now_s() - 1) * 1000000000ull);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "%s", proto_status_name(ack.status));
        m = delete_msg("sess_relogged", PROTO_KIND_DESTROY, (now_s() - 1) * 1000000000ull);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "%s", proto_status_name(ack.status));
        cr_assert_not(exists("sess_phps"));
        cr_assert_not(exists("sess_relogged"));
        cr_assert_eq(node_get(node, "sess_relogged")->unseen_at, 0, "not in the bounded set");
        /* A replica only a peer wrote: past its budget the logout holds
         * all the same, and RETRY makes the peer send it again for its
         * tombstone; nothing is kept meanwhile. */
        m = file_msg("sess_replica", "x", (now_s() - 50) * 1000000000ull);
        node_recv(node, 0, &m, &ack);
        m = delete_msg("sess_replica", PROTO_KIND_DESTROY, (now_s() - 1) * 1000000000ull);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_RETRY, "%s", proto_status_name(ack.status));
        cr_assert_not(exists("sess_replica"), "the logout is not held back");
        cr_assert_null(node_get(node, "sess_replica"));
        /* A logout stamped past our clock (a peer's clock ahead) is kept,
         * within the budget: it must hold against a third node's copy. */
        node->new_burst = 10;
        node->peer[0].new_ms = 0;
        m = file_msg("sess_fast", "x", (now_s() - 50) * 1000000000ull);
        node_recv(node, 0, &m, &ack);
        m = delete_msg("sess_fast", PROTO_KIND_DESTROY, (now_s() + 60) * 1000000000ull);
        node_recv(node, 0, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK, "%s", proto_status_name(ack.status));
        cr_assert_not(exists("sess_fast"));
        cr_assert_not_null(node_get(node, "sess_fast"));
        m = file_msg("sess_fast", "x", (now_s() - 50) * 1000000000ull);
        node_recv(node, 1, &m, &ack);
        cr_assert_eq(ack.status, PROTO_ST_STALE, "a third node's copy: %s", proto_status_name(ack.status));
}
