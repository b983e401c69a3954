#!/usr/bin/env python3
"""systemd's socket activation (Accept=no) without systemd, for the tests.

  sockact.py [--pidfile F] [--tcp | --elsewhere] [--fds N] [--now]
             [--socket-user U --socket-group G --socket-mode M --directory-mode M] PATH -- CMD...

Binds the unix socket PATH (mode 0660, as SocketMode=0660 makes it) and
listens, the way a .socket unit does, then, like systemd for a service that
is down: waits until a connection is pending, and starts CMD with the socket
as fd 3 and LISTEN_FDS=1, LISTEN_PID=<CMD's pid> (sd_listen_fds(3)). When CMD
exits, it keeps listening and starts CMD again on the next connection, as
systemd does for a stopped or crashed service whose socket unit is active. At
most 20 starts, 0.2 s apart (systemd's start limit), then it exits 1.

Wrong sockets, to see them refused: --tcp passes a TCP socket listening on
127.0.0.1 (any port) in place of PATH's; --elsewhere passes a unix socket
bound to PATH.elsewhere; --fds N says LISTEN_FDS=N (fd 3 is still the one
socket). --now starts CMD at once, without waiting for a connection
(`systemctl start` of the service while its socket is active).

--socket-user, --socket-group, --socket-mode, --directory-mode: as the
.socket unit's SocketUser=, SocketGroup=, SocketMode= (default 0660) and
DirectoryMode= (PATH's missing parent directories, default 0755).

--pidfile F: CMD's pid is written to F at each start (the tests' daemon.pid).
SIGTERM stops the launcher and CMD (the socket file stays, as with systemd).
"""
import grp
import os
import pwd
import select
import signal
import socket
import sys
import time


def main():
    args = sys.argv[1:]
    pidfile, tcp, elsewhere, fds, now = None, False, False, 1, False
    user, group, mode, dmode = None, None, 0o660, 0o755
    while args and args[0] != "--" and args[0].startswith("--"):
        a = args.pop(0)
        if a == "--pidfile":
            pidfile = args.pop(0)
        elif a == "--tcp":
            tcp = True
        elif a == "--elsewhere":
            elsewhere = True
        elif a == "--fds":
            fds = int(args.pop(0))
        elif a == "--now":
            now = True
        elif a == "--socket-user":
            user = args.pop(0)
        elif a == "--socket-group":
            group = args.pop(0)
        elif a == "--socket-mode":
            mode = int(args.pop(0), 8)
        elif a == "--directory-mode":
            dmode = int(args.pop(0), 8)
        else:
            sys.exit("sockact.py: unknown option " + a)
    if len(args) < 3 or args[1] != "--":
        sys.exit(__doc__)
    path, cmd = args[0], args[2:]

    if tcp:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
    else:
        where = path + ".elsewhere" if elsewhere else path
        try:
            os.unlink(where)
        except FileNotFoundError:
            pass
        old = os.umask(0)
        os.makedirs(os.path.dirname(where), mode=dmode, exist_ok=True)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        os.umask(0o777 & ~mode)
        s.bind(where)
        os.umask(old)
        if user or group:
            os.chown(where, pwd.getpwnam(user).pw_uid if user else -1, grp.getgrnam(group).gr_gid if group else -1)
    s.listen(64)

    child = [0]

    def on_term(signum, frame):
        if child[0]:
            try:
                os.kill(child[0], signal.SIGTERM)
                os.waitpid(child[0], 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    for start in range(20):
        if not (now and start == 0):
            select.select([s], [], [])
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if s.fileno() != 3:
                os.dup2(s.fileno(), 3)
            os.set_inheritable(3, True)
            env = dict(os.environ, LISTEN_FDS=str(fds), LISTEN_PID=str(os.getpid()))
            os.execve(cmd[0], cmd, env)
        child[0] = pid
        if pidfile:
            with open(pidfile + ".new", "w") as f:
                f.write("%d\n" % pid)
            os.replace(pidfile + ".new", pidfile)
        sys.stderr.write("sockact.py: started %s as pid %d (start %d)\n" % (cmd[0], pid, start + 1))
        sys.stderr.flush()
        _, status = os.waitpid(pid, 0)
        child[0] = 0
        sys.stderr.write("sockact.py: pid %d ended, status %d\n" % (pid, os.waitstatus_to_exitcode(status)))
        sys.stderr.flush()
        time.sleep(0.2)
    sys.exit(1)


if __name__ == "__main__":
    main()
