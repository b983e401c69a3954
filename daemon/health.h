/* The health listener (docs/DESIGN.md "Readiness"): HAProxy's agent-check
 * connects to health_listen and reads one line: "up ready" when this node
 * is ready and "down" while it is not, so the load balancer sends a
 * returning node no user before it has caught up; "up drain" instead of
 * "down" when PHP wrote here while no daemon ran (its own users keep their
 * newest data here, and stay; nobody else comes). It never reads a byte of what the
 * client sends: each connection gets its word and is closed, so nothing a
 * client says can reach the daemon. */
#ifndef SESSYNC_DAEMON_HEALTH_H
#define SESSYNC_DAEMON_HEALTH_H

struct health;
struct loop;
struct node;

/* Listen on addr ("ADDR:PORT", conf_parse_listen). *ret is new. */
int health_new(struct loop *l, struct node *n, const char *addr, struct health **ret);
void health_free(struct health *h);

#endif
