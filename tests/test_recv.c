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
