#include "daemon/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/node.h"
#include "daemon/peer.h"
#include "lib/io.h"
#include "proto/buf.h"

static void head(struct proto_wr *wr, const char *name, const char *type, const char *help) {
        proto_put_fmt(wr, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample per peer; expr_ is evaluated with i the peer's index. Node and peer names are
 * [A-Za-z0-9._-], so they need no escaping in label values. */
#define PER_PEER(wr_, n_, metric_, type_, help_, fmt_, expr_)                                             \
        do {                                                                                                 \
                head(wr_, metric_, type_, help_);                                                            \
                for (size_t i = 0; i < node_conf(n_)->n_peers; i++)                                                   \
                        proto_put_fmt(wr_, "%s{node=\"%s\",peer=\"%s\"} " fmt_ "\n", metric_, node_conf(n_)->name,         \
                            node_conf(n_)->peers[i].name, expr_);                                               \
        } while (0)

int metrics_render(struct node *n, struct peer *const *peers, struct proto_wr *wr) {
        head(wr, "sessync_sessions", "gauge", "Session files on this node.");
        proto_put_fmt(wr, "sessync_sessions{node=\"%s\"} %zu\n", node_conf(n)->name, node_n_files(n));
        head(wr, "sessync_tombstones", "gauge", "Deleted sessions remembered so they cannot come back.");
        proto_put_fmt(wr, "sessync_tombstones{node=\"%s\"} %zu\n", node_conf(n)->name, node_n_tombs(n));
        head(wr, "sessync_ready", "gauge", "1 once this node has caught up with every reachable peer.");
        proto_put_fmt(wr, "sessync_ready{node=\"%s\"} %d\n", node_conf(n)->name, node_ready(n) ? 1 : 0);
        head(wr, "sessync_skipped", "gauge",
             "Files in the session directory not replicated: not owned by PHP's user, or with hard links.");
        proto_put_fmt(wr, "sessync_skipped{node=\"%s\"} %zu\n", node_conf(n)->name, node_n_skipped(n));
        head(wr, "sessync_skipped_total", "counter", "Times a file was found not to be PHP's own.");
        proto_put_fmt(wr, "sessync_skipped_total{node=\"%s\"} %" PRIu64 "\n", node_conf(n)->name,
                      node_skipped_total(n));
        head(wr, "sessync_unreadable", "gauge", "Session files that cannot be read now (looked at again with backoff).");
        proto_put_fmt(wr, "sessync_unreadable{node=\"%s\"} %zu\n", node_conf(n)->name, node_n_unreadable(n));
        head(wr, "sessync_unreadable_total", "counter", "Warnings about unreadable files (one per name and change).");
        proto_put_fmt(wr, "sessync_unreadable_total{node=\"%s\"} %" PRIu64 "\n", node_conf(n)->name,
                      node_unreadable_total(n));
        head(wr, "sessync_lock_retries_total", "counter", "Looks at a file that found PHP's lock held.");
        proto_put_fmt(wr, "sessync_lock_retries_total{node=\"%s\"} %" PRIu64 "\n", node_conf(n)->name,
                      node_lock_retries_total(n));
        head(wr, "sessync_unseen_tombstones", "gauge", "Tombstones kept for names this node never had.");
        proto_put_fmt(wr, "sessync_unseen_tombstones{node=\"%s\"} %zu\n", node_conf(n)->name, node_n_unseen(n));
        head(wr, "sessync_unseen_forgotten_total", "counter",
             "Tombstones for names never had here forgotten early under the watermark.");
        proto_put_fmt(wr, "sessync_unseen_forgotten_total{node=\"%s\"} %" PRIu64 "\n", node_conf(n)->name,
                      node_unseen_forgotten_total(n));
        PER_PEER(wr, n, "sessync_peer_connected", "gauge", "1 if the connection to the peer is up.", "%d",
                 peer_state(peers[i]) == PEER_READY ? 1 : 0);
        PER_PEER(wr, n, "sessync_peer_pending", "gauge", "Changes not yet acknowledged by the peer.", "%zu",
                 node_pending(n, i) + peer_in_flight(peers[i]));
        PER_PEER(wr, n, "sessync_peer_lag_seconds", "gauge", "Age of the oldest change the peer has not acknowledged.",
                 "%.3f", (double)peer_lag_ms(peers[i]) / 1000.0);
        PER_PEER(wr, n, "sessync_peer_sent_total", "counter", "Frames sent to the peer.", "%" PRIu64, node_stats(n, i)->sent);
        PER_PEER(wr, n, "sessync_peer_applied_total", "counter", "Changes the peer acknowledged as applied.",
                 "%" PRIu64, node_stats(n, i)->applied);
        PER_PEER(wr, n, "sessync_peer_bytes_sent_total", "counter", "Bytes of frames sent to the peer.", "%" PRIu64,
                 node_stats(n, i)->bytes_sent);
        PER_PEER(wr, n, "sessync_peer_bytes_full_total", "counter",
                 "Bytes whole-file transfers would have sent (savings = 1 - sent/full).", "%" PRIu64,
                 node_stats(n, i)->bytes_full);
        PER_PEER(wr, n, "sessync_peer_conflicts_total", "counter",
                 "Versions refused because the other side held a newer one.", "%" PRIu64, node_stats(n, i)->conflicts);
        PER_PEER(wr, n, "sessync_peer_refused_new_total", "counter",
                 "Frames for names never seen answered RETRY (the peer's budget of new names, or the space reserve).",
                 "%" PRIu64, node_stats(n, i)->refused_new);
        PER_PEER(wr, n, "sessync_peer_errors_total", "counter",
                 "Connection failures and changes the peer could not apply.", "%" PRIu64, node_stats(n, i)->errors);
        return proto_wr_error(wr);
}

int metrics_write(struct node *n, struct peer *const *peers, const char *path) {
        char tmp[4096];
        struct proto_wr wr;
        int fd = -1, r;

        /* Same directory, then rename: the collector never reads half a file. */
        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
                return -ENAMETOOLONG;
        proto_wr_init(&wr);
        if ((r = metrics_render(n, peers, &wr)) < 0)
                goto out;
        /* A fresh file, never through a name someone put there (the
         * textfile directory may be shared with other collectors). */
        (void)unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) {
                r = -errno;
                goto out;
        }
        if ((r = io_write_all(fd, wr.buf, wr.len)) < 0)
                goto out;
        if (close(fd) < 0) {
                fd = -1;
                r = -errno;
                goto out;
        }
        fd = -1;
        if (rename(tmp, path) < 0)
                r = -errno;
out:
        if (fd >= 0)
                close(fd);
        if (r < 0)
                (void)unlink(tmp);
        proto_wr_free(&wr);
        return r;
}
