/* SIGHUP (docs/DESIGN.md "Reload"): read the config file again and apply
 * it to the running daemon. An invalid file changes nothing: every error is
 * logged as FILE:LINE and the old config keeps running. A key that is read
 * at start only is named in the log and keeps its old value. Peers are
 * matched by name: a peer whose host, port and user are unchanged keeps its
 * connection and everything in flight (and all of them do unless identity
 * or known_hosts changed, which reconnects every peer: a replaced key or a
 * revoked host must take effect now, not at the next reconnect); a changed
 * peer reconnects; a removed one is dropped, with its connection to us; a
 * new one starts as after an outage, with a catch-up. */
#include "daemon/reload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_int.h"
#include "daemon/log.h"
#include "daemon/node.h"
#include "daemon/peer.h"
#include "daemon/peer_ssh.h"
#include "daemon/server.h"
#include "lib/conf.h"

struct changes {
        char live[512], start_only[512];   /* "key, key" */
        bool reconnect_all;                 /* identity or known_hosts changed */
};

static void add_key(char *list, size_t size, const char *key) {
        size_t len = strlen(list);

        snprintf(list + len, size - len, "%s%s", len ? ", " : "", key);
}

static void on_key(void *ctx, const char *key, bool live) {
        struct changes *ch = ctx;

        if (live)
                add_key(ch->live, sizeof(ch->live), key);
        else
                add_key(ch->start_only, sizeof(ch->start_only), key);
        if (strcmp(key, "identity") == 0 || strcmp(key, "known_hosts") == 0)
                ch->reconnect_all = true;
}

static void log_errors(const char *errors) {
        const char *line = errors;

        while (line && *line) {
                const char *end = strchr(line, '\n');
                int len = end ? (int)(end - line) : (int)strlen(line);

                log_error("reload: %.*s", len, line);
                line = end ? end + 1 : NULL;
        }
}

/* The daemon's peer array for c, old peers moved to their new index. The
 * new objects (added and changed peers) are made here, not started: on
 * failure they are freed and nothing else changed. old_of_new[j] is the old
 * index of c's peer j (NODE_NO_PEER: new), and reuse[j] says whether the old
 * object serves it unchanged. */
static int build_peers(struct daemon *d, const struct conf *c, const size_t *old_of_new, const bool *reuse,
                       struct peer ***ret) {
        struct peer **peers = calloc(c->n_peers ? c->n_peers : 1, sizeof(*peers));
        int r = 0;

        if (!peers)
                return -ENOMEM;
        for (size_t j = 0; j < c->n_peers && r == 0; j++)
                if (!reuse[j])
                        r = peer_new(d->node, c, d->loop, j, &peers[j]);
        if (r < 0) {
                for (size_t j = 0; j < c->n_peers; j++)
                        if (!reuse[j])
                                peer_free(peers[j]);
                free(peers);
                return r;
        }
        for (size_t j = 0; j < c->n_peers; j++)
                if (reuse[j])
                        peers[j] = d->peers[old_of_new[j]];
        *ret = peers;
        return 0;
}

static bool same_order(const struct conf *old, const struct conf *c, const size_t *old_of_new) {
        if (old->n_peers != c->n_peers)
                return false;
        for (size_t j = 0; j < c->n_peers; j++)
                if (old_of_new[j] != j)
                        return false;
        return true;
}

int reload_config(struct daemon *d) {
        const struct conf *old = d->conf;
        struct conf *c = NULL;
        struct changes ch = { 0 };
        struct peer **peers = NULL;
        size_t *old_of_new = NULL, *new_of_old = NULL;
        size_t added = 0, removed = 0, changed = 0;
        bool *reuse = NULL;
        char *errors = NULL;
        int r;

        r = conf_load(old->path, &c, &errors);
        if (r < 0) {
                log_errors(errors);
                log_error("reload of %s failed (%s); still running the configuration loaded before", old->path,
                          r == -EINVAL ? "invalid" : strerror(-r));
                goto out;
        }
        if ((r = conf_reload_keep(old, c, on_key, &ch)) < 0)
                goto nomem;
        old_of_new = malloc((c->n_peers ? c->n_peers : 1) * sizeof(*old_of_new));
        new_of_old = malloc((old->n_peers ? old->n_peers : 1) * sizeof(*new_of_old));
        reuse = calloc(c->n_peers ? c->n_peers : 1, sizeof(*reuse));
        if (!old_of_new || !new_of_old || !reuse)
                goto nomem;
        for (size_t i = 0; i < old->n_peers; i++)
                new_of_old[i] = NODE_NO_PEER;
        for (size_t j = 0; j < c->n_peers; j++) {
                const struct conf_peer *op = conf_peer_find(old, c->peers[j].name);

                old_of_new[j] = op ? (size_t)(op - old->peers) : NODE_NO_PEER;
                if (!op) {
                        added++;
                        continue;
                }
                new_of_old[old_of_new[j]] = j;
                reuse[j] = conf_peer_same(op, &c->peers[j]) && !ch.reconnect_all;
                changed += !reuse[j];
        }
        removed = old->n_peers + added - c->n_peers;
        if ((d->server && (r = server_reserve_peers(d->server, c->n_peers)) < 0) ||
            (r = build_peers(d, c, old_of_new, reuse, &peers)) < 0)
                goto nomem;
        if (same_order(old, c, old_of_new))
                node_set_conf(d->node, c);
        else if ((r = node_set_peers(d->node, c, old_of_new)) < 0) {
                for (size_t j = 0; j < c->n_peers; j++)
                        if (!reuse[j])
                                peer_free(peers[j]);
                goto nomem;
        }

        /* Committed: nothing below fails. */
        for (size_t i = 0; i < old->n_peers; i++)
                if (new_of_old[i] == NODE_NO_PEER || !reuse[new_of_old[i]]) {
                        if (new_of_old[i] == NODE_NO_PEER)
                                log_info("reload: peer \"%s\" removed", old->peers[i].name);
                        peer_free(d->peers[i]);
                }
        for (size_t j = 0; j < c->n_peers; j++)
                if (reuse[j])
                        peer_set_conf(peers[j], c, j);
        if (d->server)
                server_set_conf(d->server, c, peers, new_of_old);
        free(d->peers);
        d->peers = peers;
        d->conf = c;
        conf_free(d->conf_owned);   /* the previous reload's, or NULL: main owns the first */
        d->conf_owned = c;
        c = NULL;
        for (size_t j = 0; j < d->conf->n_peers; j++)
                if (!reuse[j]) {
                        log_info("reload: peer \"%s\" %s", d->conf->peers[j].name,
                                 old_of_new[j] == NODE_NO_PEER ? "added" : "changed; reconnecting");
                        peer_start(d->peers[j], false);
                }
        if (ch.reconnect_all)
                peer_ssh_report(d->conf);   /* the new known_hosts' unusable lines, as at start */
        if (ch.start_only[0])
                log_warn("reload: changed, but read at start only (the running value stays until sessyncd "
                         "restarts): %s", ch.start_only);
        log_info("reload of %s: %zu peer(s) (%zu added, %zu removed, %zu reconnected, %zu kept)%s%s",
                 d->conf->path, d->conf->n_peers, added, removed, changed, d->conf->n_peers - added - changed,
                 ch.live[0] ? "; changed: " : "", ch.live);
        log_set_level(d->conf->log_level);   /* last: the lines above are logged at the old level */
        r = 0;
        goto out;
nomem:
        r = -ENOMEM;
        log_error("reload of %s: out of memory; still running the configuration loaded before", old->path);
out:
        conf_free(c);
        free(errors);
        free(old_of_new);
        free(new_of_old);
        free(reuse);
        return r;
}
