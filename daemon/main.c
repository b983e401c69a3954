/* sessyncd: the command line (DESIGN.md "Interface"). Exit status 0 =
 * success, 1 = runtime failure, 2 = usage or config error. */
#include <errno.h>
#include <getopt.h>
#include <libssh2.h>
#include <librsync.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/log.h"
#include "daemon/serve.h"
#include "lib/conf.h"

#ifndef SESSYNC_VERSION
#define SESSYNC_VERSION "0.0.0"
#endif

enum cmd { CMD_RUN, CMD_SERVE, CMD_FULL_SYNC, CMD_STATUS, CMD_CHECK };

static const struct {
        const char *usage;
        const char *what;
} commands[] = {
        { "sessyncd [-c CONF]", "run the daemon in the foreground" },
        { "sessyncd -c CONF --serve [--from PEER]", "forced command: relay the SSH channel to the daemon" },
        { "sessyncd -c CONF --full-sync [PEER...]", "push every session each peer lacks; wait for acknowledgements" },
        { "sessyncd -c CONF --status [--json]", "per-peer state from the running daemon" },
        { "sessyncd -c CONF --check-config", "validate the configuration and exit" },
        { "sessyncd --version | --help", "" },
};

static void usage(FILE *f) {
        fprintf(f, "sessyncd %s: replicate PHP session files between web nodes over SSH\n\nUsage:\n", SESSYNC_VERSION);
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                fprintf(f, "  %-44s %s\n", commands[i].usage, commands[i].what);
        fprintf(f, "\nCONF defaults to %s. Exit status: 0 ok, 1 failure, 2 usage or config error.\n",
                CONF_DEFAULT_PATH);
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

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "serve", no_argument, NULL, 'S' },
                { "from", required_argument, NULL, 'F' },
                { "full-sync", no_argument, NULL, 'Y' },
                { "status", no_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "check-config", no_argument, NULL, 'k' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        const char *path = CONF_DEFAULT_PATH, *from = NULL;
        enum cmd cmd = CMD_RUN;
        int ncmd = 0, json = 0, c, code;
        struct conf *conf = NULL;

        while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c': path = optarg; break;
                case 'S': cmd = CMD_SERVE; ncmd++; break;
                case 'F': from = optarg; break;
                case 'Y': cmd = CMD_FULL_SYNC; ncmd++; break;
                case 's': cmd = CMD_STATUS; ncmd++; break;
                case 'j': json = 1; break;
                case 'k': cmd = CMD_CHECK; ncmd++; break;
                case 'V': printf("sessyncd %s (librsync %s, libssh2 %s)\n", SESSYNC_VERSION, rs_librsync_version,
                                 LIBSSH2_VERSION);
                          return 0;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (ncmd > 1 || (from && cmd != CMD_SERVE) || (json && cmd != CMD_STATUS) ||
            (optind < argc && cmd != CMD_FULL_SYNC)) {
                usage(stderr);
                return 2;
        }
        if ((code = load(path, &conf)) != 0)
                return code;
        /* PHP's "N;/path" spreads sessions over N levels of directories. We
         * refuse it rather than watch thousands of directories: a flat
         * tmpfs directory holds any number of sessions well, and wire names
         * stay one path component. --serve does not touch the directory. */
        if (conf->session_depth > 0 && cmd != CMD_SERVE) {
                fprintf(stderr, "%s: session_dir: PHP's \"%u;%s\" layout (sessions in %u levels of subdirectories) is "
                        "not supported; use a flat directory in php.ini and here\n",
                        path, conf->session_depth, conf->session_dir, conf->session_depth);
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

        switch (cmd) {
        case CMD_CHECK:
                printf("%s: ok (node \"%s\", %zu peer(s))\n", path, conf->name, conf->n_peers);
                code = 0;
                break;
        case CMD_SERVE:
                code = serve_main(conf, from);
                break;
        case CMD_STATUS:
                code = daemon_status(conf, json);
                break;
        case CMD_FULL_SYNC:
        case CMD_RUN:
                if (libssh2_init(0) != 0) {
                        fprintf(stderr, "sessyncd: libssh2_init failed\n");
                        code = 1;
                        break;
                }
                if (cmd == CMD_RUN)
                        code = daemon_run(conf);
                else
                        code = daemon_full_sync(conf, argv + optind, (size_t)(argc - optind));
                libssh2_exit();
                break;
        }
        conf_free(conf);
        return code;
}
