#include "daemon/daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon_int.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "daemon/peer.h"
#include "daemon/server.h"
#include "daemon/watch.h"
#include "lib/sess.h"
#include "lib/tomb.h"

#define HOUSEKEEPING_MS 60000
#define METRICS_MS 5000

static void on_tomb_loaded(void *ctx, const char *name, uint8_t kind, const struct proto_ver *v, uint64_t made_ns) {
        struct node *n = ctx;
        struct ent *e = node_ensure(n, name);

        if (!e)
                return;
        e->kind = kind;
        e->ver = *v;
        e->tomb_ns = made_ns;
        n->n_tombs++;
}

int dmn_open(struct dmn *d, const struct conf *c, bool readonly_state) {
        int r;

        memset(d, 0, sizeof(*d));
        d->conf = c;
        d->dirfd = -1;
        d->sigfd = -1;
        if (c->session_depth > 0) {
                log_error("session_dir \"%u;%s\": PHP's N;/path layout is not supported; use a flat directory",
                          c->session_depth, c->session_dir);
                return -ENOTSUP;
        }
        d->dirfd = sess_dir_open(c->session_dir);
        if (d->dirfd < 0) {
                log_error("session_dir \"%s\": %s", c->session_dir, strerror(-d->dirfd));
                return d->dirfd;
        }
        if (!readonly_state && mkdir(c->state_dir, 0700) < 0 && errno != EEXIST) {
                r = -errno;
                log_error("state_dir \"%s\": %s", c->state_dir, strerror(-r));
                return r;
        }
        d->loop = loop_new();
        if (!d->loop)
                return -ENOMEM;
        if ((r = node_new(c, d->loop, d->dirfd, &d->node)) < 0)
                return r;
        r = tomb_store_open(c->state_dir, on_tomb_loaded, d->node, readonly_state, &d->tombs);
        if (r < 0) {
                log_error("tombstones in \"%s\": %s", c->state_dir,
                          r == -EBUSY ? "another sessyncd holds them (one daemon per state_dir)" : strerror(-r));
                return r;
        }
        if (!readonly_state)
                d->node->tombs = d->tombs;
        for (size_t i = 0; i < c->n_peers; i++)
                if ((r = peer_new(d->node, i, &d->node->peers[i])) < 0)
                        return r;
        return 0;
}

void dmn_close(struct dmn *d) {
        if (d->node)
                for (size_t i = 0; i < d->node->n_peers; i++)
                        peer_free(d->node->peers[i]);
        server_free(d->server);
        watch_free(d->watch);
        loop_del_fd(d->loop, d->sigreg);
        if (d->sigfd >= 0)
                close(d->sigfd);
        loop_del_timer(d->loop, d->housekeeping);
        loop_del_timer(d->loop, d->metrics);
        node_free(d->node);
        tomb_store_close(d->tombs);
        loop_free(d->loop);
        if (d->dirfd >= 0)
                close(d->dirfd);
        memset(d, 0, sizeof(*d));
        d->dirfd = -1;
        d->sigfd = -1;
}

static void sync_tombs(struct dmn *d) {
        int r = tomb_store_sync(d->tombs);

        if (r < 0)
                log_error("cannot sync tombstones to disk: %s", strerror(-r));
}

/* Once per turn: look at what inotify reported, push it, reply. Tombstones
 * recorded this turn reach the disk before any ACK or DELETE leaves. */
void dmn_before_sleep(struct loop *l, void *ctx) {
        struct dmn *d = ctx;

        (void)l;
        sync_tombs(d);
        node_run_checks(d->node);
        sync_tombs(d);
        for (size_t i = 0; i < d->node->n_peers; i++)
                if (!d->only || d->only[i])
                        peer_flush(d->node->peers[i]);
        if (d->server)
                server_flush(d->server);
        node_end_turn(d->node);
        if (d->on_turn)
                d->on_turn(d);
}

static void on_watch(void *ctx, const char *name, uint32_t mask) {
        struct dmn *d = ctx;

        if (name) {
                node_check(d->node, name);
                return;
        }
        if (mask & IN_Q_OVERFLOW) {
                log_warn("inotify queue overflowed; rescanning \"%s\"", d->conf->session_dir);
                d->node->rescan = true;
                return;
        }
        log_error("session_dir \"%s\" was removed or unmounted; stopping", d->conf->session_dir);
        loop_stop(d->loop, 1);
}

static void on_signal(struct loop *l, uint32_t events, void *ctx) {
        struct dmn *d = ctx;
        struct signalfd_siginfo si;

        (void)events;
        while (read(d->sigfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                        log_info("SIGHUP: configuration is read at start only; restart to apply changes");
                        continue;
                }
                log_info("signal %u: stopping", si.ssi_signo);
                loop_stop(l, 0);
        }
}

static int64_t on_housekeeping(struct loop *l, void *ctx) {
        struct dmn *d = ctx;

        (void)l;
        node_expire_tombs(d->node);
        return HOUSEKEEPING_MS;
}

static int64_t on_metrics(struct loop *l, void *ctx) {
        struct dmn *d = ctx;
        int r;

        (void)l;
        r = metrics_write(d->node, d->conf->metrics_file);
        if (r < 0 && !d->metrics_failed)
                log_warn("metrics_file \"%s\": %s; will keep trying", d->conf->metrics_file, strerror(-r));
        d->metrics_failed = r < 0;
        return METRICS_MS;
}

int dmn_signals(struct dmn *d) {
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return -errno;
        signal(SIGPIPE, SIG_IGN);
        d->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (d->sigfd < 0)
                return -errno;
        return loop_add_fd(d->loop, d->sigfd, EPOLLIN, on_signal, d, &d->sigreg);
}

int daemon_run(const struct conf *c) {
        struct dmn d;
        int r, code = 1;

        if ((r = dmn_open(&d, c, false)) < 0)
                goto out;
        if ((r = dmn_signals(&d)) < 0) {
                log_error("signals: %s", strerror(-r));
                goto out;
        }
        /* Watch before scanning, so nothing changed in between is missed. */
        if ((r = watch_new(d.loop, c->session_dir, on_watch, &d, &d.watch)) < 0) {
                log_error("cannot watch \"%s\": %s", c->session_dir, strerror(-r));
                goto out;
        }
        if ((r = node_scan(d.node)) < 0) {
                log_error("cannot scan \"%s\": %s", c->session_dir, strerror(-r));
                goto out;
        }
        if ((r = server_new(d.node, &d.server)) < 0) {
                log_error("socket \"%s\": %s", c->socket,
                          r == -EADDRINUSE ? "another sessyncd is running there" : strerror(-r));
                goto out;
        }
        d.housekeeping = loop_timer_new(d.loop, on_housekeeping, &d);
        if (!d.housekeeping)
                goto out;
        loop_timer_arm(d.loop, d.housekeeping, HOUSEKEEPING_MS);
        if (c->metrics_file) {
                d.metrics = loop_timer_new(d.loop, on_metrics, &d);
                if (!d.metrics)
                        goto out;
                loop_timer_arm(d.loop, d.metrics, 0);
        }
        for (size_t i = 0; i < c->n_peers; i++)
                peer_start(d.node->peers[i], false);
        loop_set_before_sleep(d.loop, dmn_before_sleep, &d);
        log_info("node \"%s\": watching \"%s\", %zu peer(s), socket \"%s\"", c->name, c->session_dir, c->n_peers,
                 c->socket);
        r = loop_run(d.loop);
        code = r < 0 ? 1 : r;
        if (code == 0) {
                /* Push what is still queued before saying goodbye is not
                 * attempted: peers catch up from inventories on reconnect. */
                log_info("stopped");
        }
out:
        if (d.server)
                (void)unlink(c->socket);
        dmn_close(&d);
        return code;
}
