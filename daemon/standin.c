#include "daemon/standin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/daemon_int.h"
#include "daemon/handover.h"
#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "daemon/server.h"
#include "lib/conf.h"
#include "lib/io.h"
#include "lib/state.h"

#define STANDIN_BUSY 75         /* the child's exit status: the state is held; try again */

struct standin {
        struct daemon d;
        const char *state_dir;
        bool orphan;                    /* the --serve that started us is gone */
        struct loop_fd *life_reg;
        struct loop_timer *poll;
};

static int sock_path(const struct conf *c, char *buf, size_t size) {
        struct sockaddr_un sun;

        if ((size_t)snprintf(buf, size, "%s/serve.sock", c->state_dir) >= sizeof(sun.sun_path))
                return -ENAMETOOLONG;
        return 0;
}

/* Would the state's next writer be the first since boot (lib/state.h
 * state_new_boot: state_dir/boot_id differs from the kernel's)? */
static bool first_since_boot(const char *state_dir) {
        char now[64] = "", was[64] = "", path[4096];
        ssize_t n;
        int fd;

        if ((fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC)) < 0)
                return false;
        n = read(fd, now, sizeof(now) - 1);
        close(fd);
        if (n <= 0)
                return false;
        now[n] = 0;
        snprintf(path, sizeof(path), "%s/boot_id", state_dir);
        if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
                return true;
        n = read(fd, was, sizeof(was) - 1);
        close(fd);
        was[n > 0 ? n : 0] = 0;
        return strcmp(now, was) != 0;
}

/* The --serve that started us is gone (its pusher left). Other drains may
 * still be served here: we end when the last one has (on_poll). Our
 * stderr was that --serve's SSH channel: let it close. */
static void on_life(struct loop *l, uint32_t events, void *ctx) {
        struct standin *s = ctx;
        int null;

        (void)events;
        loop_del_fd(l, s->life_reg);
        s->life_reg = NULL;
        s->orphan = true;
        if ((null = open("/dev/null", O_WRONLY | O_CLOEXEC)) >= 0) {
                (void)dup2(null, STDERR_FILENO);
                close(null);
        }
        if (server_n_conns(s->d.server) == 0)
                loop_stop(l, 0);
}

/* A daemon holds, or waits for, the state: end after this turn. Frames not
 * answered yet are not lost: the pushers reconnect, to the daemon, and its
 * inventory tells them what is missing. */
static int64_t on_poll(struct loop *l, void *ctx) {
        struct standin *s = ctx;

        if (s->orphan && server_n_conns(s->d.server) == 0) {
                loop_stop(l, 0);
                return LOOP_TIMER_STOP;
        }
        if (!handover_wanted(s->state_dir))
                return HANDOVER_POLL_MS;
        log_info("stand-in: a daemon is starting; handing the state over to it");
        loop_stop(l, 0);
        return LOOP_TIMER_STOP;
}

/* Tell the --serve that forked us how it went: "" = serving, else why not
 * (it passes that on to the pusher). */
static void tell(int fd, const char *why) {
        if (fd >= 0)
                (void)io_write_all(fd, why[0] ? why : "+", strlen(why[0] ? why : "+"));
}

/* The child. Returns its exit status. */
static int run(const struct conf *c0, char *path, int ready_fd, int life_fd) {
        struct conf c = *c0;    /* the node and the server see the stand-in's socket */
        struct standin s = { .state_dir = c0->state_dir };
        char why[300] = "";
        size_t n_files;
        int r, code = 1, null, fl;

        /* Leave the SSH channel to the relay: only it speaks there. */
        if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
                (void)dup2(null, STDIN_FILENO);
                (void)dup2(null, STDOUT_FILENO);
                close(null);
        }
        c.socket = path;
        /* Our stderr is the SSH channel's: the pusher logs every line of it
         * as a warning about this node. Say only what is one. */
        if (log_get_level() > CONF_LOG_WARN)
                log_set_level(CONF_LOG_WARN);
        /* And never wait for it: a pusher that does not read the channel's
         * stderr would block us in a log write, holding the state lock,
         * never looking at daemon.lock again, and the daemon could not
         * start (t_attack_standin.sh). A line the channel cannot take now
         * is dropped. */
        if ((fl = fcntl(STDERR_FILENO, F_GETFL)) >= 0)
                (void)fcntl(STDERR_FILENO, F_SETFL, fl | O_NONBLOCK);
        if (handover_wanted(c.state_dir) || handover_state_busy(c.state_dir))
                return STANDIN_BUSY;
        /* Opening the state records this boot's id: look before. */
        if (first_since_boot(c.state_dir)) {
                snprintf(why, sizeof(why), "the first start since boot is the daemon's: start sessyncd there");
                goto out;
        }    /* says nothing: the relay reads EOF, then this status */
        if (c.session_depth > 0) {
                snprintf(why, sizeof(why), "session_dir: PHP's \"N;/path\" layout is not supported");
                goto out;
        }
        if ((r = daemon_open(&s.d, &c, DAEMON_STATE_WRITE)) < 0) {
                if (r == -EBUSY) {
                        code = STANDIN_BUSY;
                        goto out;
                }
                snprintf(why, sizeof(why), "it cannot apply in the daemon's place (%s; it runs as uid %u): start "
                         "sessyncd there", strerror(-r), (unsigned)geteuid());
                goto out;
        }
        /* Taken after the lock: a daemon that claimed the state meanwhile
         * goes first. */
        if (handover_wanted(c.state_dir)) {
                code = STANDIN_BUSY;
                goto out;
        }
        if ((r = daemon_signals(&s.d)) < 0)
                goto fail;
        /* After a reboot or a wipe the daemon forgets the journal's files
         * (in memory): a stand-in that did so and applied a few files would
         * leave a journal whose other files look deleted to the daemon's
         * next start, a mass logout. Those starts are the daemon's. */
        n_files = node_n_files(s.d.node);
        daemon_judge_journal(&s.d);
        if (state_new_boot(s.d.state) || node_n_files(s.d.node) != n_files) {
                snprintf(why, sizeof(why), "the first start since boot, or after the session directory was wiped, "
                         "is the daemon's: start sessyncd there");
                goto out;
        }
        node_reset_suspects(s.d.node);
        /* No scan: the inventory is the journal's, as the daemon left it.
         * The daemon's next start then finds every change PHP made while
         * no daemon ran (docs/DESIGN.md "Readiness": those users stay on
         * this node), bar the names a peer sent meanwhile, which the
         * receiver reconciles first and journals. A session deleted here
         * meanwhile is still listed, so a peer's equal copy is not sent,
         * and a newer one meets the tombstone the receiver makes first. */
        if ((r = server_new(s.d.node, s.d.loop, NULL, &s.d.server)) < 0)
                goto fail;
        server_no_status(s.d.server);
        if ((r = loop_add_fd(s.d.loop, life_fd, EPOLLIN, on_life, &s, &s.life_reg)) < 0)
                goto fail;
        if (!(s.poll = loop_timer_new(s.d.loop, on_poll, &s))) {
                r = -ENOMEM;
                goto fail;
        }
        loop_timer_arm(s.d.loop, s.poll, HANDOVER_POLL_MS);
        loop_set_before_sleep(s.d.loop, daemon_turn, &s.d);
        log_warn("no daemon runs here: a stand-in (pid %d) applies peers' frames in its place until one starts",
                 (int)getpid());
        tell(ready_fd, "");
        close(ready_fd);
        ready_fd = -1;
        r = loop_run(s.d.loop);
        log_info("stand-in: done");
        code = r < 0 ? 1 : 0;
        goto out;
fail:
        snprintf(why, sizeof(why), "its stand-in for the daemon failed: %s", strerror(-r));
out:
        if (ready_fd >= 0 && code != STANDIN_BUSY)
                tell(ready_fd, why[0] ? why : "its stand-in for the daemon failed");
        loop_del_fd(s.d.loop, s.life_reg);
        if (s.poll)
                loop_del_timer(s.d.loop, s.poll);
        if (s.d.server)
                (void)unlink(path);
        if (s.d.loop)
                daemon_close(&s.d);
        return code;
}

/* Fork the stand-in and wait until it serves or gives up. */
static int start(const struct conf *c, char *path, char *why, size_t why_size) {
        int ready[2] = { -1, -1 }, life[2] = { -1, -1 }, status = 0, r;
        char answer[300];
        ssize_t n = 0, got;
        pid_t pid;

        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(life, O_CLOEXEC) < 0) {
                r = -errno;
                goto out;
        }
        pid = fork();
        if (pid < 0) {
                r = -errno;
                goto out;
        }
        if (pid == 0) {
                close(ready[0]);
                close(life[1]);
                _exit(run(c, path, ready[1], life[0]));
        }
        close(ready[1]);
        ready[1] = -1;
        close(life[0]);
        life[0] = -1;
        /* Until it has scanned and bound its socket, or said why not. */
        while ((size_t)n < sizeof(answer) - 1 &&
               ((got = read(ready[0], answer + n, sizeof(answer) - 1 - (size_t)n)) > 0 || (got < 0 && errno == EINTR)))
                if (got > 0)
                        n += got;
        answer[n] = 0;
        if (n > 0 && strcmp(answer, "+") == 0) {
                /* life[1] stays open, unclosed on exec: the stand-in lives
                 * as long as this process. */
                life[1] = -1;
                return 0;
        }
        (void)waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == STANDIN_BUSY) {
                r = -EBUSY;
                goto out;
        }
        snprintf(why, why_size, "no daemon runs here, and %s", n > 0 ? answer : "its stand-in for the daemon failed");
        r = -EPERM;
out:
        for (int i = 0; i < 2; i++) {
                if (ready[i] >= 0)
                        close(ready[i]);
                if (life[i] >= 0)
                        close(life[i]);
        }
        return r;
}

int standin_reach(const struct conf *c, int *ret_fd, char *why, size_t why_size) {
        char path[4096];
        int r;

        if (sock_path(c, path, sizeof(path)) < 0) {
                snprintf(why, why_size, "no daemon runs here, and state_dir \"%s\" is too long a path for the "
                         "socket of a stand-in", c->state_dir);
                return -ENAMETOOLONG;
        }
        r = io_unix_connect(path, ret_fd);
        if (r == -EACCES || r == -EPERM) {
                /* The README's receiving account: it may reach the daemon's
                 * socket, never its state or the sessions. */
                snprintf(why, why_size, "no daemon runs here, and --serve (uid %u) cannot apply in its place: only "
                         "root or PHP's user may open state_dir \"%s\"; start sessyncd there (or enable sessyncd.socket, which "
                         "starts it for a drain)", (unsigned)geteuid(),
                         c->state_dir);
                return r;
        }
        if (r == 0 || (r != -ENOENT && r != -ECONNREFUSED)) {
                if (r < 0)
                        snprintf(why, why_size, "no daemon runs here, and its stand-in's socket \"%s\": %s", path,
                                 strerror(-r));
                return r;
        }
        if ((r = start(c, path, why, why_size)) < 0)
                return r;
        r = io_unix_connect(path, ret_fd);
        if (r < 0)
                snprintf(why, why_size, "no daemon runs here, and its stand-in's socket \"%s\": %s", path, strerror(-r));
        return r;
}
