/* metrics_file: Prometheus textfile-collector format (node_exporter's
 * --collector.textfile.directory), replaced atomically every few seconds. */
#ifndef SESSYNC_DAEMON_METRICS_H
#define SESSYNC_DAEMON_METRICS_H

struct node;
struct peer;
struct proto_wr;

/* Append the exposition text (HELP/TYPE lines, one sample per peer).
 * peers are the daemon's, in conf order. */
int metrics_render(struct node *n, struct peer *const *peers, struct proto_wr *wr);
/* Write path.tmp, then rename it over path. Returns 0 or a negative errno. */
int metrics_write(struct node *n, struct peer *const *peers, const char *path);

#endif
