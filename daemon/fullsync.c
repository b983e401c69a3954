/* --full-sync (docs/DESIGN.md "Catch-up and full sync"). It does not need
 * the daemon: it scans the session
 * directory itself and pushes over its own SSH connections with the same
 * peer code the daemon uses. Without a daemon it takes the state lock and,
 * like the daemon at start, turns sessions deleted since the daemon stopped
 * into tombstones; beside a running daemon it only reads the tombstones
 * (the daemon handles deletes). The receiving daemons apply with the usual
 * version checks, so running it beside a live daemon is safe. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/daemon_int.h"
#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "daemon/peer.h"
#include "lib/conf.h"

#define FULLSYNC_TIMEOUT_MS 120000

/* A connection lost after its handshake (the receiver's daemon started and
 * its stand-in handed over, say) or refused with "retry" (another drain
 * applies there) is tried again, 1 s later, this many times in all. */
#define FULLSYNC_TRIES 4
#define FULLSYNC_RETRY_MS 1000

struct fs_peer {
        bool was_ready;                 /* this attempt got past the handshake */
        unsigned tries;
        uint64_t retry_at_ms;           /* 0 = no retry planned */
};

struct fs_run {
        bool *only;
        struct fs_peer *st;
        uint64_t deadline_ms;
        uint64_t last_progress_ms;
        bool tty;
        int result;
};

static void fs_progress(struct daemon *d, struct fs_run *fs) {
        uint64_t now = loop_clock_ms();
        char line[512] = "";
        size_t off = 0;

        if (!fs->tty || now - fs->last_progress_ms < 200)
                return;
        fs->last_progress_ms = now;
        for (size_t i = 0; i < d->conf->n_peers && off < sizeof(line) - 80; i++) {
                if (!fs->only[i])
                        continue;
                off += (size_t)snprintf(line + off, sizeof(line) - off, "%s: %llu sent, %zu to go  ",
                                        d->conf->peers[i].name, (unsigned long long)node_stats(d->node, i)->sent,
                                        node_pending(d->node, i) + peer_in_flight(d->peers[i]));
        }
        fprintf(stderr, "\r%s", line);
}

static void fs_turn(struct daemon *d) {
        struct fs_run *fs = d->ctx;
        bool done = true;

        uint64_t now = loop_clock_ms();

        for (size_t i = 0; i < d->conf->n_peers; i++) {
                struct peer *p = d->peers[i];
                struct fs_peer *st = &fs->st[i];

                if (!fs->only[i])
                        continue;
                if (peer_state(p) == PEER_READY)
                        st->was_ready = true;
                if (peer_failed(p) && !st->retry_at_ms && st->tries < FULLSYNC_TRIES &&
                    (st->was_ready || strstr(peer_last_error(p), "retry") ||
                     /* replaced by our own daemon's reconnect to that peer
                      * (one connection per peer there): not the peer's no */
                     strstr(peer_last_error(p), "closed the connection")))
                        st->retry_at_ms = now + FULLSYNC_RETRY_MS;
                if (st->retry_at_ms && now >= st->retry_at_ms) {
                        log_info("peer \"%s\": %s; trying again", d->conf->peers[i].name, peer_last_error(p));
                        st->retry_at_ms = 0;
                        st->was_ready = false;
                        st->tries++;
                        peer_start(p, true);
                }
                if (st->retry_at_ms || (!peer_failed(p) && !peer_idle(p)))
                        done = false;
        }
        fs_progress(d, fs);
        if (done || loop_clock_ms() > fs->deadline_ms)
                loop_stop(d->loop, 0);
}

static int64_t fs_tick(struct loop *l, void *ctx) {
        struct daemon *d = ctx;

        (void)l;
        fs_turn(d);   /* wakes the loop so the deadline is seen while idle */
        return 100;
}

int daemon_full_sync(const struct conf *c, char *const *names, size_t n) {
        struct fs_run fs = { .tty = isatty(STDERR_FILENO) };
        struct loop_timer *tick = NULL;
        struct daemon d;
        int r, code = 1;

        fs.only = calloc(c->n_peers ? c->n_peers : 1, sizeof(bool));
        fs.st = calloc(c->n_peers ? c->n_peers : 1, sizeof(*fs.st));
        if (!fs.only || !fs.st) {
                free(fs.only);
                free(fs.st);
                return 1;
        }
        for (size_t i = 0; i < c->n_peers; i++)
                fs.st[i].tries = 1;
        for (size_t i = 0; i < n; i++) {
                const struct conf_peer *cp = conf_peer_find(c, names[i]);

                if (!cp) {
                        fprintf(stderr, "sessyncd: \"%s\" is not a peer in %s\n", names[i], c->path);
                        free(fs.only);
                        free(fs.st);
                        return 2;
                }
                fs.only[cp - c->peers] = true;
        }
        for (size_t i = 0; i < c->n_peers && n == 0; i++)
                fs.only[i] = true;

        if ((r = daemon_open(&d, c, DAEMON_STATE_TRY)) < 0)
                goto out;
        daemon_judge_journal(&d);
        if ((r = node_scan(d.node)) < 0) {
                log_error("cannot scan \"%s\": %s", c->session_dir, strerror(-r));
                goto out;
        }
        d.only = fs.only;
        d.on_turn = fs_turn;
        d.ctx = &fs;
        tick = loop_timer_new(d.loop, fs_tick, &d);
        if (!tick)
                goto out;
        loop_timer_arm(d.loop, tick, 100);
        fs.deadline_ms = loop_clock_ms() + FULLSYNC_TIMEOUT_MS;
        for (size_t i = 0; i < c->n_peers; i++)
                if (fs.only[i])
                        peer_start(d.peers[i], true);
        loop_set_before_sleep(d.loop, daemon_turn, &d);
        (void)loop_run(d.loop);
        if (fs.tty)
                fprintf(stderr, "\r\033[K");

        code = 0;
        for (size_t i = 0; i < c->n_peers; i++) {
                struct peer *p = d.peers[i];
                const struct node_stats *st = node_stats(d.node, i);

                if (!fs.only[i])
                        continue;
                if (peer_idle(p) && !peer_failed(p) && st->rejected == 0) {
                        printf("%s: ok, %llu sent, 0 failed\n", c->peers[i].name, (unsigned long long)st->sent);
                } else if (peer_idle(p) && !peer_failed(p)) {
                        printf("%s: FAILED, %llu sent, %llu failed (refused there; see its log)\n", c->peers[i].name,
                               (unsigned long long)st->sent, (unsigned long long)st->rejected);
                        code = 1;
                } else {
                        printf("%s: FAILED, %llu sent, %llu confirmed: %s\n", c->peers[i].name,
                               (unsigned long long)st->sent, (unsigned long long)(st->applied + st->conflicts),
                               peer_last_error(p)[0] ? peer_last_error(p) : "timed out waiting for acknowledgements");
                        code = 1;
                }
        }
        fflush(stdout);
out:
        if (tick)
                loop_del_timer(d.loop, tick);
        daemon_close(&d);
        free(fs.only);
        free(fs.st);
        return code;
}
