/* The node's change detection, dirty sets and the version/tombstone order,
 * on a real directory (no peers connected: dirty sets are only filled). */
#include "tests/fixture_node.h"

TestSuite(node, .init = setup, .fini = teardown);

Test(node, new_file_is_dirty_for_every_peer_once) {
        struct node_ent *e;

        put_file("sess_one", "a|i:1;", 0);
        e = check("sess_one");
        cr_assert_not_null(e);
        cr_assert_eq(e->kind, PROTO_KIND_FILE);
        cr_assert_eq(e->ver.hash, sess_hash("a|i:1;", 6));
        cr_assert_eq(node_n_files(node), 1);
        /* Two events for the same file in one turn: still one entry. */
        node_check(node, "sess_one");
        node_check(node, "sess_one");
        cr_assert_eq(node_pending(node, 0), 1);
        cr_assert_eq(drain(0), 1);
        cr_assert_eq(drain(1), 1);
}

Test(node, unchanged_close_write_is_not_news) {
        put_file("sess_one", "a|i:1;", 1700000000);
        check("sess_one");
        drain(0);
        drain(1);
        /* PHP opened it O_RDWR and closed without writing: same version. */
        check("sess_one");
        cr_assert_eq(node_pending(node, 0), 0);
        cr_assert_eq(node_pending(node, 1), 0);
}

Test(node, same_size_rewrite_in_same_second_is_news) {
        struct node_ent *e;
        uint64_t h1;

        put_file("sess_one", "a|i:1;", 1700000000);
        e = check("sess_one");
        h1 = e->ver.hash;
        drain(0);
        /* rsync's quick check would miss this: same size, same second. */
        put_file("sess_one", "a|i:2;", 1700000000);
        e = check("sess_one");
        cr_assert_neq(e->ver.hash, h1);
        cr_assert_eq(drain(0), 1);
}

Test(node, ignores_foreign_names) {
        put_file("notes.txt", "x", 0);
        put_file("sess_a.b", "x", 0);
        cr_assert_null(check("notes.txt"));
        cr_assert_null(check("sess_a.b"));
        cr_assert_null(check("sess_"));
        cr_assert_eq(node_pending(node, 0), 0);
}

Test(node, young_delete_is_a_destroy_with_the_delete_time) {
        struct node_ent *e;
        uint64_t before = loop_realtime_ns();

        put_file("sess_one", "a|i:1;", 0);
        check("sess_one");
        drain(0);
        rm_file("sess_one");
        e = check("sess_one");
        cr_assert_eq(e->kind, PROTO_KIND_DESTROY);
        cr_assert_geq(e->ver.mtime_ns, before);
        cr_assert_eq(node_n_files(node), 0);
        cr_assert_eq(node_n_tombs(node), 1);
        cr_assert_eq(drain(0), 1);
}

Test(node, old_delete_is_an_expiry_with_the_files_version) {
        struct node_ent *e;
        struct proto_ver v;

        put_file("sess_old", "a|i:1;", 1600000000);
        e = check("sess_old");
        v = e->ver;
        rm_file("sess_old");
        e = check("sess_old");
        cr_assert_eq(e->kind, PROTO_KIND_EXPIRE);
        cr_assert_eq(e->ver.mtime_ns, v.mtime_ns);
        cr_assert_eq(e->ver.hash, v.hash);
}

Test(node, scan_finds_files_and_vanished_ones) {
        put_file("sess_a", "1", 0);
        put_file("sess_b", "2", 0);
        cr_assert_eq(node_scan(node), 0);
        node_run_checks(node);
        node_end_turn(node);
        cr_assert_eq(node_n_files(node), 2);
        rm_file("sess_a");
        cr_assert_eq(node_scan(node), 0);
        node_run_checks(node);
        node_end_turn(node);
        cr_assert_eq(node_n_files(node), 1);
        cr_assert_eq(node_n_tombs(node), 1);
}

Test(node, locked_file_is_retried_not_skipped) {
        char path[256];
        int fd;

        put_file("sess_busy", "x", 0);
        snprintf(path, sizeof(path), "%s/sess_busy", dir);
        fd = open(path, O_RDWR);
        cr_assert_eq(flock(fd, LOCK_EX), 0);
        node_check(node, "sess_busy");
        node_run_checks(node);
        cr_assert_eq(node_get(node, "sess_busy")->kind, VER_KIND_NONE, "not read while PHP holds the lock");
        close(fd);
        /* The busy timer puts it back into the check set. */
        run_for(60);
        node_run_checks(node);
        cr_assert_eq(node_get(node, "sess_busy")->kind, PROTO_KIND_FILE);
        cr_assert_eq(drain(0), 1);
}

/* A lock held long (docs/DESIGN.md "Change detection"): looked at after
 * 5 ms, then doubling up to 1 s, so 700 ms cost a handful of looks, not the
 * 140 a fixed 5 ms poll made; released, it is read at the next look. */
Test(node, long_lock_backs_off) {
        char path[256];
        uint64_t looks;
        int fd;

        put_file("sess_long", "x", 0);
        snprintf(path, sizeof(path), "%s/sess_long", dir);
        fd = open(path, O_RDWR);
        cr_assert_eq(flock(fd, LOCK_EX), 0);
        node_check(node, "sess_long");
        node_run_checks(node);
        for (int i = 0; i < 70; i++) {
                run_for(10);
                node_run_checks(node);
        }
        looks = node->lock_retries_total;
        cr_assert_geq(looks, 3, "it is looked at again (%llu)", (unsigned long long)looks);
        cr_assert_leq(looks, 10, "with backoff, not every 5 ms (%llu looks in 700 ms)", (unsigned long long)looks);
        cr_assert_eq(node_get(node, "sess_long")->kind, VER_KIND_NONE);
        close(fd);
        for (int i = 0; i < 120 && node_get(node, "sess_long")->kind != PROTO_KIND_FILE; i++) {
                run_for(10);
                node_run_checks(node);
        }
        cr_assert_eq(node_get(node, "sess_long")->kind, PROTO_KIND_FILE, "read within the 1 s cap once released");
        cr_assert_eq(node_get(node, "sess_long")->tries, 0, "and the backoff starts over");
}

/* An event for a name that is backing off looks at it at once: PHP's close
 * after a long request is seen without waiting for the backoff. */
Test(node, event_during_backoff_looks_at_once) {
        char path[256];
        int fd;

        put_file("sess_ev", "x", 0);
        snprintf(path, sizeof(path), "%s/sess_ev", dir);
        fd = open(path, O_RDWR);
        cr_assert_eq(flock(fd, LOCK_EX), 0);
        node_check(node, "sess_ev");
        node_run_checks(node);
        for (int i = 0; i < 40; i++) {
                run_for(10);
                node_run_checks(node);
        }
        close(fd);
        node_check(node, "sess_ev");   /* PHP's IN_CLOSE_WRITE */
        node_run_checks(node);
        cr_assert_eq(node_get(node, "sess_ev")->kind, PROTO_KIND_FILE);
}

Test(node, tombstone_rules) {
        struct proto_ver t = { 1000, 0 }, older = { 999, 5 }, newer = { 1001, 5 }, same = { 1000, 5 };
        struct proto_ver exp = { 1000, 7 };

        /* A destroy beats every version older than the delete. */
        cr_assert(ver_tomb_beats(PROTO_KIND_DESTROY, &t, &older));
        cr_assert_not(ver_tomb_beats(PROTO_KIND_DESTROY, &t, &newer));
        cr_assert_not(ver_tomb_beats(PROTO_KIND_DESTROY, &t, &same));
        /* An expiry beats only versions up to the expired one. */
        cr_assert(ver_tomb_beats(PROTO_KIND_EXPIRE, &exp, &same));
        cr_assert(ver_tomb_beats(PROTO_KIND_EXPIRE, &exp, &exp));
        cr_assert(ver_tomb_beats(PROTO_KIND_EXPIRE, &exp, &older));
        cr_assert_not(ver_tomb_beats(PROTO_KIND_EXPIRE, &exp, &newer));
        cr_assert_not(ver_tomb_beats(PROTO_KIND_FILE, &exp, &older));
}

Test(node, state_order_for_catch_up) {
        struct proto_ver a = { 10, 1 }, b = { 20, 1 }, tomb = { 15, 0 };

        cr_assert(ver_state_beats(PROTO_KIND_FILE, &b, PROTO_KIND_FILE, &a));
        cr_assert_not(ver_state_beats(PROTO_KIND_FILE, &a, PROTO_KIND_FILE, &b));
        cr_assert_not(ver_state_beats(PROTO_KIND_FILE, &a, PROTO_KIND_FILE, &a));
        cr_assert(ver_state_beats(PROTO_KIND_FILE, &a, VER_KIND_NONE, &a));
        cr_assert_not(ver_state_beats(VER_KIND_NONE, &a, PROTO_KIND_FILE, &a));
        cr_assert(ver_state_beats(PROTO_KIND_DESTROY, &tomb, PROTO_KIND_FILE, &a));
        cr_assert_not(ver_state_beats(PROTO_KIND_DESTROY, &tomb, PROTO_KIND_FILE, &b));
        cr_assert(ver_state_beats(PROTO_KIND_FILE, &b, PROTO_KIND_DESTROY, &tomb));
        cr_assert_not(ver_state_beats(PROTO_KIND_FILE, &a, PROTO_KIND_DESTROY, &tomb));
        cr_assert_not(ver_state_beats(PROTO_KIND_DESTROY, &tomb, PROTO_KIND_EXPIRE, &a));
        cr_assert(ver_state_beats(PROTO_KIND_DESTROY, &tomb, VER_KIND_NONE, &a));
}

Test(node, delay_returns_entry_to_dirty_set_after_timer) {
        struct node_ent *e;

        put_file("sess_one", "x", 0);
        e = check("sess_one");
        drain(0);
        node_delay(node, e, 0, 5);
        cr_assert(e->peer[0].delayed);
        cr_assert_eq(node_pending(node, 0), 1, "delayed counts as pending");
        node_mark_dirty(node, e, 0);
        cr_assert_eq(drain(0), 0, "a delayed entry is not sent before its time");
        run_for(40);
        cr_assert_not(e->peer[0].delayed);
        cr_assert_eq(drain(0), 1);
}

Test(node, expiry_never_frees_an_entry_still_in_a_dirty_vector) {
        struct proto_ver t = { 1, 0 };
        struct node_ent *e = node_ensure(node, "sess_gone");

        cr_assert_eq(node_record_tomb(node, e, PROTO_KIND_DESTROY, &t, false), 0);
        e->tomb_ns = 1;   /* made long ago: past tombstone_ttl */
        node_mark_dirty(node, e, 0);
        node_clear_dirty(node, e, 0);   /* catch-up: the peer has it */
        cr_assert_eq(node_pending(node, 0), 0);
        node_expire_tombs(node);
        cr_assert_not_null(node_get(node, "sess_gone"), "still referenced by the dirty vector: kept");
        cr_assert_null(node_next_dirty(node, 0), "a cleared entry is skipped");
        node_expire_tombs(node);
        cr_assert_null(node_get(node, "sess_gone"), "freed once nothing refers to it");
        cr_assert_eq(node_n_tombs(node), 0);
}

Test(node, a_file_left_mid_apply_is_reset_so_peers_win) {
        struct proto_ver v = { 1700000000000000000ull, 42 };
        struct stat st;
        char path[256];

        put_file("sess_torn", "new head + old tail", 0);
        node_load_record(node, "sess_torn", STATE_KIND_APPLYING, &v, 0);
        cr_assert(node_get(node, "sess_torn")->suspect);
        cr_assert_eq(node_n_files(node), 0, "not counted as a file we know");
        node_reset_suspects(node);
        snprintf(path, sizeof(path), "%s/sess_torn", dir);
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_mtim.tv_sec, 0);
        cr_assert_eq(st.st_mtim.tv_nsec, 1, "the oldest mtime: any peer's version beats it");
        cr_assert_not(node_get(node, "sess_torn")->suspect);
}

/* The journal is checked like the directory and the wire: a record for a
 * name that is not a session here makes no entry (docs/DESIGN.md "Files the
 * daemon creates"), whatever its kind. */
Test(node, journal_records_for_invalid_names_make_no_entry) {
        static const char *const bad[] = {
                "../x", "notes.txt", "sess_a.b", "sess_", "sess_../../etc/passwd", "sess_a b", "SESS_abc", "sess_a\n",
                "..", ".", "",
        };
        static const uint8_t kinds[] = { PROTO_KIND_FILE, PROTO_KIND_DESTROY, PROTO_KIND_EXPIRE, STATE_KIND_APPLYING };
        struct proto_ver v = { 1700000000000000000ull, 42 };

        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
                for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                        node_load_record(node, bad[i], kinds[k], &v, 1);
                        cr_assert_null(node_get(node, bad[i]), "kind %u: \"%s\" made an entry", kinds[k], bad[i]);
                }
        cr_assert_eq(node_n_files(node), 0);
        cr_assert_eq(node_n_tombs(node), 0);
        cr_assert_eq(node_pending(node, 0) + node_pending(node, 1), 0);
        node_reset_suspects(node);   /* no APPLYING entry: nothing touched */

        /* The control: the same records under valid names do make entries. */
        node_load_record(node, "sess_ok", PROTO_KIND_FILE, &v, 1);
        node_load_record(node, "sess_gone", PROTO_KIND_DESTROY, &v, 1);
        cr_assert_not_null(node_get(node, "sess_ok"));
        cr_assert_not_null(node_get(node, "sess_gone"));
        cr_assert_eq(node_n_tombs(node), 1);
}
