/* Reload (docs/DESIGN.md "Reload"): the node's per-peer slots follow each
 * peer to its new index, and conf_reload_keep keeps what is read at start
 * only. */
#include "tests/fixture_node.h"

TestSuite(reload, .init = setup, .fini = teardown);

/* The new config: peers "c", "d" (new), "b", in that order. */
static struct conf conf2;
static struct conf_peer peers2[3];

static void make_conf2(void) {
        conf2 = conf;
        strcpy(peers2[0].name, "c");
        strcpy(peers2[1].name, "d");
        strcpy(peers2[2].name, "b");
        conf2.peers = peers2;
        conf2.n_peers = 3;
}

Test(reload, slots_move_with_their_peer) {
        struct node_ent *one, *two, *late;
        size_t old_of_new[3] = { 1, NODE_NO_PEER, 0 };

        put_file("sess_one", "a|i:1;", 0);
        put_file("sess_two", "a|i:2;", 0);
        one = check("sess_one");
        two = check("sess_two");
        /* "b" (0) took both; "c" (1) still owes both, and one of them is
         * believed to be held already. */
        cr_assert_eq(drain(0), 2);
        one->peer[1].has = one->ver;
        one->peer[1].has_kind = VER_KIND_FILE;
        node_count(node, 1, NODE_STAT_SENT);
        two->peer[0].busy_tries = 7;   /* a mark on "b"'s slot */

        make_conf2();
        cr_assert_eq(node_set_peers(node, &conf2, old_of_new), 0);
        cr_assert_eq(node_conf(node), &conf2);
        /* "c" is index 0 now, with its queue, view and counters. */
        cr_assert_eq(node_pending(node, 0), 2);
        cr_assert_eq(node_stats(node, 0)->sent, 1);
        cr_assert_eq(one->peer[0].has_kind, VER_KIND_FILE);
        cr_assert(one->peer[0].dirty);
        /* "b" is index 2 and owes nothing. */
        cr_assert_eq(node_pending(node, 2), 0);
        cr_assert_eq(two->peer[2].busy_tries, 7);
        cr_assert_eq(two->peer[0].busy_tries, 0);
        /* "d" is new: empty, knows nothing, counts from zero. */
        cr_assert_eq(node_pending(node, 1), 0);
        cr_assert_eq(node_stats(node, 1)->sent, 0);
        cr_assert_eq(one->peer[1].has_kind, VER_KIND_NONE);
        cr_assert_not(one->peer[1].dirty);
        /* The queues still hand out the right entries, and a new entry is
         * made with three slots. */
        cr_assert_eq(drain(0), 2);
        put_file("sess_late", "a|i:3;", 0);
        late = check("sess_late");
        cr_assert_not_null(late);
        cr_assert_eq(drain(0), 1);
        cr_assert_eq(drain(1), 1);
        cr_assert_eq(drain(2), 1);
}

Test(reload, removing_every_peer_and_adding_back) {
        struct conf none = conf;
        size_t map_back[2] = { NODE_NO_PEER, NODE_NO_PEER };
        struct node_ent *one;

        put_file("sess_one", "a|i:1;", 0);
        one = check("sess_one");
        none.n_peers = 0;
        cr_assert_eq(node_set_peers(node, &none, NULL), 0);
        cr_assert_eq(node_n_files(node), 1);
        /* Both come back as new peers: the file is not dirty for them until
         * their catch-up says they lack it. */
        cr_assert_eq(node_set_peers(node, &conf, map_back), 0);
        cr_assert_eq(node_pending(node, 0), 0);
        cr_assert_eq(node_pending(node, 1), 0);
        node_catchup_begin(node, 0);
        cr_assert_eq(node_catchup_finish(node, 0), 1);
        cr_assert_eq(node_pending(node, 0), 1);
        cr_assert_eq(one->peer[0].has_kind, VER_KIND_NONE);
        node_expire_tombs(node);   /* an entry whose slots moved is freed normally at teardown */
}

static void on_key(void *ctx, const char *key, bool live) {
        char *out = ctx;

        strcat(out, key);
        strcat(out, live ? "+ " : "- ");
}

Test(reload, start_only_keys_keep_the_running_value) {
        static const char a[] = "[node]\nname = a\nsession_dir = /s\nstate_dir = /st\nsocket = /run/x.sock\n"
                                "identity = /k\nknown_hosts = /kh\nlog_level = info\nsession_prefix = sess_\n"
                                "[peer b]\nhost = 127.0.0.1\n";
        static const char b[] = "[node]\nname = z\nsession_dir = 1;/s2\nstate_dir = /st\nsocket = /run/x.sock\n"
                                "identity = /k2\nknown_hosts = /kh\nlog_level = debug\nsession_prefix = sess_\n"
                                "session_format = codeigniter4\n"
                                "[peer b]\nhost = 127.0.0.2\n[peer c]\nhost = h\n";
        struct conf *ca = NULL, *cb = NULL;
        char *err = NULL, seen[256] = "";

        cr_assert_eq(conf_load_mem("a.conf", a, sizeof(a) - 1, &ca, &err), 0, "%s", err ? err : "");
        cr_assert_eq(conf_load_mem("b.conf", b, sizeof(b) - 1, &cb, &err), 0, "%s", err ? err : "");
        cr_assert_eq(conf_reload_keep(ca, cb, on_key, seen), 0);
        cr_assert_str_eq(seen, "name- session_dir- identity+ session_lifetime+ log_level+ session_format- ");
        /* Read at start only: the old values. Live: the new ones. */
        cr_assert_str_eq(cb->name, "a");
        cr_assert_str_eq(cb->session_dir, "/s");
        cr_assert_eq(cb->session_depth, 0);
        cr_assert_str_eq(cb->identity, "/k2");
        cr_assert_str_eq(cb->identity_pub, "/k2.pub");
        cr_assert_eq(cb->log_level, CONF_LOG_DEBUG);
        cr_assert_eq(cb->session_format, SESS_FORMAT_PHP, "which names are sessions is read at start only");
        /* Peers are the caller's business: b's address changed, c is new. */
        cr_assert_eq(cb->n_peers, 2);
        cr_assert_not(conf_peer_same(&ca->peers[0], &cb->peers[0]));
        /* Nothing differs any more but the live keys. */
        seen[0] = 0;
        cr_assert_eq(conf_reload_keep(ca, cb, on_key, seen), 0);
        cr_assert_str_eq(seen, "identity+ session_lifetime+ log_level+ ");
        conf_free(ca);
        conf_free(cb);
}

Test(reload, same_peer_means_same_address) {
        struct conf_peer x = { .name = "b", .host = "h", .port = 22, .user = "u" }, y = x;

        cr_assert(conf_peer_same(&x, &y));
        y.port = 2222;
        cr_assert_not(conf_peer_same(&x, &y));
        y = x;
        y.user = "v";
        cr_assert_not(conf_peer_same(&x, &y));
        y = x;
        y.host = "h2";
        cr_assert_not(conf_peer_same(&x, &y));
}
