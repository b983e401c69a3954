/* sessyncd: the command line (docs/DESIGN.md "Interface"). Exit status 0 =
 * success, 1 = runtime failure, 2 = usage or config error. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <libssh2.h>
#include <librsync.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/log.h"
#include "daemon/relay.h"
#include "daemon/status.h"
#include "lib/conf.h"

#ifndef SESSYNC_VERSION
#define SESSYNC_VERSION "0.0.0"
#endif

/* What the command line asked for, beyond the command. */
struct args {
        const char *from;               /* --serve --from PEER */
        bool any_peer;                  /* --serve --any-peer */
        bool json;                      /* --status --json */
        char *const *names;             /* --full-sync PEER... */
        size_t n_names;
};

static int cmd_run(const struct conf *c, const struct args *a);
static int cmd_serve(const struct conf *c, const struct args *a);
static int cmd_full_sync(const struct conf *c, const struct args *a);
static int cmd_status(const struct conf *c, const struct args *a);
static int cmd_check(const struct conf *c, const struct args *a);
static int cmd_wait_ready(const struct conf *c, const struct args *a);

/* One row per command: its option (NULL: the default), the usage and help
 * text, what it accepts, and the function that runs it. The table drives
 * both the usage text and the dispatch. */
static const struct command {
        const char *option;
        const char *usage;
        const char *what;
        bool takes_from, takes_json, takes_names;
        bool ssh;                       /* talks SSH: libssh2 is set up around it */
        int (*run)(const struct conf *c, const struct args *a);
} commands[] = {
        { NULL, "sessyncd [-c CONF]", "run the daemon in the foreground", false, false, false, true, cmd_run },
        { "serve", "sessyncd -c CONF --serve --from PEER | --any-peer",
          "forced command: relay the SSH channel to the daemon, for that peer only", true, false, false, false,
          cmd_serve },
        { "full-sync", "sessyncd -c CONF --full-sync [PEER...]",
          "push every session each peer lacks; wait for acknowledgements", false, false, true, true, cmd_full_sync },
        { "status", "sessyncd -c CONF --status [--json]", "per-peer state from the running daemon", false, true, false,
          false, cmd_status },
        { "wait-ready", "sessyncd -c CONF --wait-ready [SECONDS]",
          "wait until the daemon has caught up with its peers (default 60 s)", false, false, true, false,
          cmd_wait_ready },
        { "check-config", "sessyncd -c CONF --check-config", "validate the configuration and exit", false, false, false,
          false, cmd_check },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f) {
        fprintf(f, "sessyncd %s: replicate PHP session files between web nodes over SSH\n\nUsage:\n", SESSYNC_VERSION);
        for (size_t i = 0; i < N_COMMANDS; i++)
                fprintf(f, "  %-50s %s\n", commands[i].usage, commands[i].what);
        fprintf(f, "  %s\n", "sessyncd --version | --help");
        fprintf(f, "\nCONF defaults to %s. Exit status: 0 ok, 1 failure, 2 usage or config error.\n",
                CONF_DEFAULT_PATH);
}

static const struct command *find_command(const char *option) {
        for (size_t i = 0; i < N_COMMANDS; i++)
                if (commands[i].option && strcmp(commands[i].option, option) == 0)
                        return &commands[i];
        return NULL;
}

/* librsync reports through its trace hook; route it into our log at debug,
 * since every failure it reports is also returned and handled by us. */
static void rs_log(rs_loglevel level, const char *msg) {
        (void)level;
        log_debug("librsync: %s", msg);
}

static int load(const char *path, struct conf **ret) {
        char *errors = NULL;
        int r = conf_load(path, ret, &errors);

        if (r < 0) {
                fputs(errors ? errors : "invalid configuration\n", stderr);
                free(errors);
                return 2;
        }
        free(errors);
        return 0;
}

static int cmd_run(const struct conf *c, const struct args *a) {
        (void)a;
        return daemon_run(c);
}

static int cmd_full_sync(const struct conf *c, const struct args *a) {
        return daemon_full_sync(c, a->names, a->n_names);
}

static int cmd_serve(const struct conf *c, const struct args *a) {
        return relay_main(c, a->from);
}

static int cmd_status(const struct conf *c, const struct args *a) {
        return status_query(c, a->json);
}

static int cmd_wait_ready(const struct conf *c, const struct args *a) {
        uint64_t ms = 60000;

        if (a->n_names > 1 || (a->n_names == 1 && conf_parse_duration(a->names[0], &ms) < 0)) {
                fprintf(stderr, "sessyncd --wait-ready: \"%s\" is not a number of seconds\n", a->names[a->n_names - 1]);
                return 2;
        }
        return status_wait_ready(c, ms);
}

static int cmd_check(const struct conf *c, const struct args *a) {
        (void)a;
        printf("%s: ok (node \"%s\", %zu peer(s))\n", c->path, c->name, c->n_peers);
        return 0;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "serve", no_argument, NULL, 'C' },
                { "full-sync", no_argument, NULL, 'C' },
                { "status", no_argument, NULL, 'C' },
                { "check-config", no_argument, NULL, 'C' },
                { "wait-ready", no_argument, NULL, 'C' },
                { "from", required_argument, NULL, 'F' },
                { "any-peer", no_argument, NULL, 'A' },
                { "json", no_argument, NULL, 'j' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        const char *path = CONF_DEFAULT_PATH;
        const struct command *cmd = &commands[0];
        struct args a = { 0 };
        int ncmd = 0, c, li, code;
        struct conf *conf = NULL;

        while ((c = getopt_long(argc, argv, "c:h", opts, &li)) != -1) {
                switch (c) {
                case 'c': path = optarg; break;
                case 'C': cmd = find_command(opts[li].name); ncmd++; break;
                case 'F': a.from = optarg; break;
                case 'A': a.any_peer = true; break;
                case 'j': a.json = true; break;
                case 'V': printf("sessyncd %s (librsync %s, libssh2 %s)\n", SESSYNC_VERSION, rs_librsync_version,
                                 LIBSSH2_VERSION);
                          return 0;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        a.names = argv + optind;
        a.n_names = (size_t)(argc - optind);
        if (!cmd || ncmd > 1 || ((a.from || a.any_peer) && !cmd->takes_from) || (a.json && !cmd->takes_json) ||
            (a.n_names > 0 && !cmd->takes_names)) {
                usage(stderr);
                return 2;
        }
        /* docs/DESIGN.md "Peers and keys": each key in authorized_keys is
         * bound to one peer name, or one peer's key could push the others
         * off; a relay for any peer must be asked for in so many words. */
        if (cmd->takes_from && !a.from == !a.any_peer) {
                fprintf(stderr, "sessyncd --serve: %s\n", a.from ? "--from and --any-peer exclude each other" :
                        "needs --from PEER (the peer this key belongs to, in authorized_keys' command=), or "
                        "--any-peer to accept any configured peer");
                return 2;
        }
        if ((code = load(path, &conf)) != 0)
                return code;
        /* PHP's "N;/path" spreads sessions over N levels of directories. We
         * refuse it rather than watch thousands of directories: a flat
         * tmpfs directory holds any number of sessions well, and wire names
         * stay one path component. The relay does not touch the directory. */
        if (conf->session_depth > 0 && cmd->run != cmd_serve) {
                fprintf(stderr, "%s: session_dir: PHP's \"%u;%s\" layout (sessions in %u levels of subdirectories) is "
                        "not supported; use a flat directory in php.ini and here\n",
                        path, conf->session_depth, conf->session_dir, conf->session_depth);
                conf_free(conf);
                return 2;
        }
        if (a.from && !conf_peer_find(conf, a.from)) {
                fprintf(stderr, "sessyncd --serve: --from \"%s\" is not a peer in %s\n", a.from, path);
                conf_free(conf);
                return 2;
        }
        log_set_level(conf->log_level);
        {
                char ident[96];

                snprintf(ident, sizeof(ident), "sessyncd[%s]", conf->name);
                log_set_ident(ident);
        }
        rs_trace_to(rs_log);
        /* A peer or the daemon closing on us is an error to report, never a
         * silent death (the CLI, the relay and the daemon alike). */
        signal(SIGPIPE, SIG_IGN);
        if (cmd->ssh && libssh2_init(0) != 0) {
                fprintf(stderr, "sessyncd: libssh2_init failed\n");
                code = 1;
        } else {
                code = cmd->run(conf, &a);
                if (cmd->ssh)
                        libssh2_exit();
        }
        conf_free(conf);
        return code;
}
