/* daemon/sock: sock_open's socket activation (docs/DESIGN.md "The socket"):
 * what systemd passes by the sd_listen_fds(3) protocol is taken only if it
 * is the configured socket. Each case runs in a child of its own, which puts
 * its socket on fd 3 (Criterion may own fd 3 in the test process) and exits
 * with the number of the first check that failed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/sock.h"

static char dir[64], path[128], other[128];

static void setup(void) {
        snprintf(dir, sizeof(dir), "/tmp/sessync-test-sock.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/sessync.sock", dir);
        snprintf(other, sizeof(other), "%s/other.sock", dir);
}

static void teardown(void) {
        (void)unlink(path);
        (void)unlink(other);
        (void)rmdir(dir);
}

/* A unix stream socket bound to p, listening if listening. */
static int unix_socket(const char *p, bool listening) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || (listening && listen(fd, 4) < 0))
                return -1;
        return fd;
}

static int tcp_socket(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
                return -1;
        return fd;
}

enum kind { K_NONE, K_OURS, K_OTHER_PATH, K_TCP, K_NOT_LISTENING };

/* In a child: fd 3 as kind says, LISTEN_PID (ours, or pid_delta away),
 * LISTEN_FDS=n, then sock_open(path). Exits 0 if it returned want (-1: any
 * fd other than 3, that is, a socket it bound) with *from_systemd ==
 * want_from and the variables gone; else the number of the failed check. */
static int run(enum kind kind, int pid_delta, const char *n, int want, bool want_from) {
        pid_t pid = fork();
        int status;

        cr_assert_geq(pid, 0);
        if (pid == 0) {
                int fd = -1, r, fl;
                bool from = !want_from;
                gid_t gid = (gid_t)-1;
                char buf[32];

                if (kind == K_OURS || kind == K_NOT_LISTENING)
                        fd = unix_socket(path, kind == K_OURS);
                else if (kind == K_OTHER_PATH)
                        fd = unix_socket(other, true);
                else if (kind == K_TCP)
                        fd = tcp_socket();
                if (kind != K_NONE && (fd < 0 || dup2(fd, 3) != 3))
                        _exit(10);
                if (kind == K_NONE && fcntl(3, F_GETFD) < 0 && open("/dev/null", O_RDONLY) != 3)
                        _exit(10);      /* fd 3 taken, so a socket bound is not mistaken for it */
                if (fd > 3)
                        close(fd);
                snprintf(buf, sizeof(buf), "%ld", (long)getpid() + pid_delta);
                setenv("LISTEN_PID", buf, 1);
                setenv("LISTEN_FDS", n, 1);
                setenv("LISTEN_FDNAMES", "sessyncd.socket", 1);
                r = sock_open(path, &gid, &from);
                if (getenv("LISTEN_PID") || getenv("LISTEN_FDS") || getenv("LISTEN_FDNAMES"))
                        _exit(11);
                if (want == -1 ? r < 0 || r == 3 : r != want)
                        _exit(12);
                if (from != want_from)
                        _exit(13);
                if (r == 3) {
                        struct stat st;

                        if (!(fcntl(3, F_GETFD) & FD_CLOEXEC) || (fl = fcntl(3, F_GETFL)) < 0 || !(fl & O_NONBLOCK))
                                _exit(14);
                        if (stat(path, &st) < 0 || st.st_gid != gid)
                                _exit(15);
                }
                _exit(0);
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status));
        return WEXITSTATUS(status);
}

TestSuite(sock, .init = setup, .fini = teardown);

Test(sock, passed_socket_taken) {
        cr_assert_eq(run(K_OURS, 0, "1", 3, true), 0);
        cr_assert_eq(access(path, F_OK), 0, "sock_open never replaces systemd's socket file");
}

Test(sock, socket_bound_elsewhere_refused) {
        cr_assert_eq(run(K_OTHER_PATH, 0, "1", -EBADFD, false), 0);
        cr_assert_neq(access(path, F_OK), 0, "no socket of its own either");
}

Test(sock, tcp_socket_refused) {
        cr_assert_eq(run(K_TCP, 0, "1", -EBADFD, false), 0);
}

Test(sock, socket_not_listening_refused) {
        cr_assert_eq(run(K_NOT_LISTENING, 0, "1", -EBADFD, false), 0);
}

Test(sock, two_sockets_refused) {
        cr_assert_eq(run(K_OURS, 0, "2", -EBADFD, false), 0);
}

/* LISTEN_PID of another process (a parent's variables inherited): not
 * ours; with nothing passed the socket is bound as without systemd. */
Test(sock, another_pids_variables_ignored) {
        cr_assert_eq(run(K_NONE, 1, "1", -1, false), 0);
        cr_assert_eq(access(path, F_OK), 0);
}

Test(sock, no_variables_binds) {
        cr_assert_eq(run(K_NONE, 0, "0", -1, false), 0);
        cr_assert_eq(access(path, F_OK), 0);
}
