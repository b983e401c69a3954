/* One epoll loop owns everything the daemon does (modelled on Redis ae.c).
 *
 * - fd callbacks: EPOLLERR/EPOLLHUP are reported as readable+writable so the
 *   handler meets the error on its own read or write.
 * - timers run on CLOCK_MONOTONIC; a callback returns its next delay in ms,
 *   or LOOP_TIMER_STOP to disarm (the timer object stays, re-arm with
 *   loop_timer_arm).
 * - removals during a batch only mark the registration; it is freed when the
 *   batch is over, so a later event of the same batch never reaches a freed
 *   object.
 * - the before-sleep hook runs once per turn, after all callbacks: the place
 *   for batched work (flushing dirty sets).
 */
#ifndef SESSYNC_DAEMON_LOOP_H
#define SESSYNC_DAEMON_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

#define LOOP_TIMER_STOP (-1)

struct loop;
struct loop_fd;
struct loop_timer;

typedef void (*loop_fd_cb)(struct loop *l, uint32_t events, void *ctx);
typedef int64_t (*loop_timer_cb)(struct loop *l, void *ctx);
typedef void (*loop_hook_cb)(struct loop *l, void *ctx);

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Register fd for events (EPOLLIN/EPOLLOUT). *ret is owned by the loop and
 * valid until loop_del_fd. The loop never closes fd. */
int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ctx, struct loop_fd **ret);
int loop_mod_fd(struct loop *l, struct loop_fd *f, uint32_t events);
/* Unregister; safe inside callbacks and with NULL. */
void loop_del_fd(struct loop *l, struct loop_fd *f);

/* A timer, disarmed until loop_timer_arm. Owned by the loop; valid until
 * loop_del_timer. */
struct loop_timer *loop_timer_new(struct loop *l, loop_timer_cb cb, void *ctx);
void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t delay_ms);
/* Arm only if disarmed or due later than delay_ms from now. */
void loop_timer_arm_sooner(struct loop *l, struct loop_timer *t, uint64_t delay_ms);
void loop_timer_disarm(struct loop_timer *t);
void loop_del_timer(struct loop *l, struct loop_timer *t);

void loop_set_before_sleep(struct loop *l, loop_hook_cb cb, void *ctx);

/* Run until loop_stop. Returns the code given to loop_stop. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l, int code);

/* Monotonic milliseconds, refreshed each turn. */
uint64_t loop_now_ms(struct loop *l);
uint64_t loop_clock_ms(void);
/* CLOCK_REALTIME in ns: the clock of versions and tombstones. */
uint64_t loop_realtime_ns(void);

#endif
