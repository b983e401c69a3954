#include "daemon/daemon.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon_int.h"
#include "daemon/handover.h"
#include "daemon/health.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "daemon/peer.h"
#include "daemon/peer_ssh.h"
#include "daemon/reload.h"
#include "daemon/server.h"
#include "daemon/strict.h"
#include "daemon/watch.h"
#include "lib/sess.h"
#include "lib/state.h"

#define HOUSEKEEPING_MS 60000
#define METRICS_MS 5000

/* Beside a running daemon, --full-sync reads tombstones only: it cannot
 * persist what it would infer from the journal's live files, and the
 * daemon does that itself. */
static void on_tomb_loaded(void *ctx, const char *name, uint8_t kind, const struct proto_ver *v, uint64_t made_ns) {
        if (kind != PROTO_KIND_FILE)
                node_load_record(ctx, name, kind, v, made_ns);
}

int daemon_open(struct daemon *d, const struct conf *c, enum daemon_state_mode mode) {
        uid_t php_uid;
        gid_t php_gid;
        int r;

        memset(d, 0, sizeof(*d));
        d->conf = c;
        d->dirfd = -1;
        d->sigfd = -1;
        d->dirfd = sess_dir_open(c->session_dir);
        if (d->dirfd < 0) {
                r = d->dirfd;
                log_error("session_dir \"%s\": %s", c->session_dir, strerror(-r));
                /* Debian's 1733 directory cannot even be listed by PHP's
                 * user: say why it is wrong and how to fix it. */
                if (r == -EACCES && strict_php_user(c, -1, &php_uid, &php_gid) == 0)
                        (void)strict_session_dir(c, -1, php_uid);
                return r;
        }
        if (mkdir(c->state_dir, 0700) < 0 && errno != EEXIST && mode == DAEMON_STATE_WRITE) {
                r = -errno;
                log_error("state_dir \"%s\": %s", c->state_dir, strerror(-r));
                return r;
        }
        d->loop = loop_new();
        if (!d->loop)
                return -ENOMEM;
        if ((r = strict_php_user(c, d->dirfd, &php_uid, &php_gid)) < 0 ||
            (r = strict_session_dir(c, d->dirfd, php_uid)) < 0)
                return r;
        if ((r = node_new(c, d->loop, d->dirfd, &d->node)) < 0)
                return r;
        node_set_php_user(d->node, php_uid, php_gid);
        r = state_open(c->state_dir, node_load_record, d->node, false, &d->state);
        if (r < 0 && mode == DAEMON_STATE_TRY) {
                /* The daemon runs and owns the state (or we may not lock
                 * it): read its tombstones. */
                state_close(d->state);
                d->state = NULL;
                d->state_readonly = true;
                r = state_open(c->state_dir, on_tomb_loaded, d->node, true, &d->state);
        }
        if (r < 0) {
                log_error("state in \"%s\": %s", c->state_dir,
                          r == -EBUSY ? "another sessyncd holds it (one daemon per state_dir)" :
                          r == -EPERM ? "not sessyncd's own (or root's), or others can write it: chown it to "
                                        "sessyncd's user and chmod 0700; a file in it owned by someone else is refused too" :
                          r == -EMLINK ? "a file in it has a second hard link: a write through it would land elsewhere; "
                                         "remove the link" : strerror(-r));
                return r;
        }
        if (!d->state_readonly)
                node_set_state(d->node, d->state);
        d->peers = calloc(c->n_peers ? c->n_peers : 1, sizeof(*d->peers));
        if (!d->peers)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_peers; i++)
                if ((r = peer_new(d->node, c, d->loop, i, &d->peers[i])) < 0)
                        return r;
        peer_ssh_report(c);
        return 0;
}

void daemon_close(struct daemon *d) {
        if (d->peers)
                for (size_t i = 0; i < d->conf->n_peers; i++)
                        peer_free(d->peers[i]);
        free(d->peers);
        server_free(d->server);
        health_free(d->health);
        watch_free(d->watch);
        loop_del_fd(d->loop, d->sigreg);
        if (d->sigfd >= 0)
                close(d->sigfd);
        loop_del_timer(d->loop, d->housekeeping);
        loop_del_timer(d->loop, d->metrics);
        node_free(d->node);
        state_close(d->state);
        loop_free(d->loop);
        if (d->dirfd >= 0)
                close(d->dirfd);
        conf_free(d->conf_owned);
        memset(d, 0, sizeof(*d));
        d->dirfd = -1;
        d->sigfd = -1;
}

/* One turn, once all callbacks have run (docs/ARCHITECTURE.md "The
 * turn"): check what inotify reported; make this turn's tombstones durable;
 * fill every peer's window; write the replies the socket's connections
 * produced; end the turn. Durability is ordered here and nowhere else: no
 * DELETE and no ACK leaves before the tombstones it depends on are on disk. */
void daemon_turn(struct loop *l, void *ctx) {
        struct daemon *d = ctx;
        bool durable;

        (void)l;

        node_run_checks(d->node);
        durable = node_make_durable(d->node) == 0;
        for (size_t i = 0; i < d->conf->n_peers; i++)
                if (!d->only || d->only[i])
                        peer_flush(d->peers[i]);
        /* Until the sync succeeds (a later turn tries again; the peers'
         * timers wake the loop every second), replies wait: an ACK may
         * acknowledge a tombstone that is not on disk yet. */
        if (d->server && durable)
                server_flush(d->server);
        node_end_turn(d->node);
        if (!d->first_turn_done) {
                d->first_turn_done = true;
                if (node_changed_at_start(d->node) > 0 && d->health)
                        log_info("PHP changed %zu session(s) here while sessyncd was not running: until ready, the "
                                 "health check says \"up drain\" (users already here stay, no new ones)",
                                 node_changed_at_start(d->node));
        }
        (void)node_ready(d->node);   /* logs when it becomes ready, and which peers it stopped waiting for */
        if (d->on_turn)
                d->on_turn(d);
}

static void on_watch(void *ctx, const char *name, uint32_t mask) {
        struct daemon *d = ctx;

        if (name) {
                node_check(d->node, name);
                return;
        }
        if (mask & IN_Q_OVERFLOW) {
                log_warn("inotify queue overflowed; rescanning \"%s\"", d->conf->session_dir);
                node_rescan_later(d->node);
                return;
        }
        log_error("session_dir \"%s\" was removed or unmounted; stopping", d->conf->session_dir);
        loop_stop(d->loop, 1);
}

static void reconf_timers(struct daemon *d);

static void on_signal(struct loop *l, uint32_t events, void *ctx) {
        struct daemon *d = ctx;
        struct signalfd_siginfo si;

        (void)events;
        while (read(d->sigfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                        log_info("SIGHUP: reloading %s", d->conf->path);
                        if (reload_config(d) == 0)
                                reconf_timers(d);
                        continue;
                }
                log_info("signal %u: stopping", si.ssi_signo);
                loop_stop(l, 0);
        }
}

static int64_t on_housekeeping(struct loop *l, void *ctx) {
        struct daemon *d = ctx;
        int r;

        (void)l;
        node_expire_tombs(d->node);
        if ((r = node_compact_state(d->node)) < 0)
                log_warn("cannot compact the state journal in \"%s\": %s", d->conf->state_dir, strerror(-r));
        return HOUSEKEEPING_MS;
}

/* A session dir without a single session file while the journal lists some
 * is a wiped or freshly mounted tmpfs far more often than a cluster where
 * every user logged out during a restart. */
static bool dir_has_sessions(struct daemon *d) {
        struct dirent *de;
        bool found = false;
        DIR *dir;
        int fd = openat(d->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0 || !(dir = fdopendir(fd))) {
                if (fd >= 0)
                        close(fd);
                return true;
        }
        while (!found && (de = readdir(dir)))
                found = sess_name_valid(de->d_name, d->conf->session_format, d->conf->session_prefix);
        closedir(dir);
        return found;
}

/* Files the journal lists but the directory lacks were deleted while we were
 * down: node_scan turns them into tombstones, unless the machine rebooted
 * or the directory was wiped, where absence means nothing. */
void daemon_judge_journal(struct daemon *d) {
        if (node_n_files(d->node) == 0 || d->state_readonly)
                return;
        if (state_new_boot(d->state)) {
                log_info("first start since boot: %zu session(s) known from before are not taken as deleted; "
                         "peers will send them back", node_n_files(d->node));
                node_forget_files(d->node);
        } else if (!dir_has_sessions(d)) {
                log_warn("\"%s\" holds no sessions but held %zu before this start: taken as wiped, not as "
                         "%zu logouts; peers will send them back", d->conf->session_dir, node_n_files(d->node),
                         node_n_files(d->node));
                node_forget_files(d->node);
        }
}

static int64_t on_metrics(struct loop *l, void *ctx) {
        struct daemon *d = ctx;
        int r;

        (void)l;
        r = metrics_write(d->node, d->peers, d->conf->metrics_file);
        if (r < 0 && !d->metrics_failed)
                log_warn("metrics_file \"%s\": %s; will keep trying", d->conf->metrics_file, strerror(-r));
        d->metrics_failed = r < 0;
        return METRICS_MS;
}

/* At start and after a reload: the timers whose existence depends on the
 * config (metrics_file). */
static void reconf_timers(struct daemon *d) {
        if (d->conf->metrics_file && !d->metrics && (d->metrics = loop_timer_new(d->loop, on_metrics, d)))
                loop_timer_arm(d->loop, d->metrics, 0);
        else if (d->conf->metrics_file && d->metrics)
                loop_timer_arm(d->loop, d->metrics, 0);   /* a new path gets its first write now */
        if (!d->conf->metrics_file && d->metrics) {
                loop_del_timer(d->loop, d->metrics);
                d->metrics = NULL;
        }
        d->metrics_failed = false;
}

int daemon_signals(struct daemon *d) {
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
        char watch_path[64];
        struct daemon d = { .dirfd = -1, .sigfd = -1 };
        int r, code = 1, claim;

        /* A `--serve` may be applying in our place (daemon/standin.c):
         * claim the state, so it hands over, and wait for the lock. */
        claim = handover_claim(c->state_dir);
        for (int tries = 0;; tries++) {
                if (claim >= 0 && !handover_wait(c->state_dir))
                        goto out;
                if ((r = daemon_open(&d, c, DAEMON_STATE_WRITE)) != -EBUSY || claim < 0 || tries == 3)
                        break;
                daemon_close(&d);   /* a stand-in took the lock just before our claim: it hands over */
        }
        if (r < 0)
                goto out;
        if ((r = daemon_signals(&d)) < 0) {
                log_error("signals: %s", strerror(-r));
                goto out;
        }
        /* Watch before scanning, so nothing changed in between is missed;
         * watch the directory that was opened and checked, not the path
         * again (it could name another one by now). */
        snprintf(watch_path, sizeof(watch_path), "/proc/self/fd/%d", d.dirfd);
        if ((r = watch_new(d.loop, watch_path, on_watch, &d, &d.watch)) < 0) {
                log_error("cannot watch \"%s\": %s", c->session_dir, strerror(-r));
                goto out;
        }
        daemon_judge_journal(&d);
        node_reset_suspects(d.node);
        if ((r = node_scan(d.node)) < 0) {
                log_error("cannot scan \"%s\": %s", c->session_dir, strerror(-r));
                goto out;
        }
        if ((r = server_new(d.node, d.loop, d.peers, &d.server)) < 0) {
                log_error("socket \"%s\": %s", c->socket,
                          r == -EADDRINUSE ? "another sessyncd is running there, or sessyncd.socket listens there "
                                             "(then systemctl start sessyncd)"
                          : r == -EBADFD   ? "not the socket systemd passed (see above)"
                                           : strerror(-r));
                goto out;
        }
        if (c->health_listen && (r = health_new(d.loop, d.node, c->health_listen, &d.health)) < 0) {
                log_error("health_listen \"%s\": %s", c->health_listen, strerror(-r));
                goto out;
        }
        d.housekeeping = loop_timer_new(d.loop, on_housekeeping, &d);
        if (!d.housekeeping)
                goto out;
        loop_timer_arm(d.loop, d.housekeeping, HOUSEKEEPING_MS);
        reconf_timers(&d);
        if (c->metrics_file && !d.metrics)
                goto out;
        for (size_t i = 0; i < c->n_peers; i++)
                peer_start(d.peers[i], false);
        loop_set_before_sleep(d.loop, daemon_turn, &d);
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
        if (d.server && server_socket_ours(d.server))
                (void)unlink(d.conf->socket);   /* read at start only: the same after a reload */
        daemon_close(&d);
        if (claim >= 0)
                close(claim);
        return code;
}
