/* daemon/loop: the epoll loop (loop.h): fd callbacks on real pipes and
 * socketpairs, removals during a batch, EPOLLERR/EPOLLHUP as readable and
 * writable, timers, the before-sleep hook, loop_stop.
 *
 * Every test runs the loop with a guard timer armed in .init: if nothing
 * else stops the loop within GUARD_MS, the guard does, with GUARD_CODE, and
 * the test fails on that code instead of hanging. Objects that a removed
 * registration would reach are malloc'd and freed at removal, so under
 * ASan (build/asan) an event delivered after the removal is a
 * use-after-free report, and in the plain build a call counter is off. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/loop.h"

#define GUARD_MS 3000
#define GUARD_CODE (-999)

static struct loop *l;
static int fds[32];
static size_t n_fds;
static struct loop_fd *regs[16];   /* registrations still to remove at .fini */
static size_t n_regs;

static int64_t on_guard(struct loop *lp, void *ctx) {
        (void)ctx;
        loop_stop(lp, GUARD_CODE);
        return LOOP_TIMER_STOP;
}

static void setup(void) {
        struct loop_timer *guard;

        n_fds = n_regs = 0;
        l = loop_new();
        cr_assert_not_null(l, "loop_new: %s", strerror(errno));
        guard = loop_timer_new(l, on_guard, NULL);
        cr_assert_not_null(guard);
        loop_timer_arm(l, guard, GUARD_MS);
}

static void teardown(void) {
        for (size_t i = 0; i < n_regs; i++)
                loop_del_fd(l, regs[i]);
        loop_free(l);
        l = NULL;
        for (size_t i = 0; i < n_fds; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}

TestSuite(loop, .init = setup, .fini = teardown, .timeout = 20);

static void track(int fd) {
        cr_assert_lt(n_fds, sizeof(fds) / sizeof(fds[0]));
        fds[n_fds++] = fd;
}

/* Close fd now (and not again at .fini). */
static void close_now(int fd) {
        for (size_t i = 0; i < n_fds; i++)
                if (fds[i] == fd)
                        fds[i] = -1;
        cr_assert_eq(close(fd), 0);
}

static void make_pipe(int p[2]) {
        cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
        track(p[0]);
        track(p[1]);
}

static void make_socketpair(int sv[2]) {
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0, "socketpair: %s",
                     strerror(errno));
        track(sv[0]);
        track(sv[1]);
}

static void put_byte(int fd, char c) {
        cr_assert_eq(write(fd, &c, 1), 1, "write: %s", strerror(errno));
}

/* A registration removed at .fini unless the test removed it (then
 * forget_reg). */
static struct loop_fd *add_fd(int fd, uint32_t events, loop_fd_cb cb, void *ctx) {
        struct loop_fd *f = NULL;
        int r = loop_add_fd(l, fd, events, cb, ctx, &f);

        cr_assert_eq(r, 0, "loop_add_fd: %s", strerror(-r));
        cr_assert_not_null(f);
        cr_assert_lt(n_regs, sizeof(regs) / sizeof(regs[0]));
        regs[n_regs++] = f;
        return f;
}

static void forget_reg(struct loop_fd *f) {
        for (size_t i = 0; i < n_regs; i++)
                if (regs[i] == f)
                        regs[i] = NULL;
}

static void del_fd(struct loop_fd *f) {
        forget_reg(f);
        loop_del_fd(l, f);
}

/* Run the loop; it must be stopped by the test's own code, not the guard. */
static void run_expect(int code) {
        int r = loop_run(l);

        cr_assert_neq(r, GUARD_CODE, "the guard stopped the loop after %d ms: the test's own stop never came",
                      GUARD_MS);
        cr_assert_eq(r, code, "loop_run returned %d, want %d", r, code);
}

static struct loop_timer *timer_at(uint64_t ms, loop_timer_cb cb, void *ctx) {
        struct loop_timer *t = loop_timer_new(l, cb, ctx);

        cr_assert_not_null(t);
        loop_timer_arm(l, t, ms);
        return t;
}

static int64_t stop_with_1(struct loop *lp, void *ctx) {
        (void)ctx;
        loop_stop(lp, 1);
        return LOOP_TIMER_STOP;
}

/* ---- fd callbacks ---- */

struct rd {
        int fd;
        int calls;
        uint32_t events;
        char got;
        struct loop_fd *reg;
};

static void on_read_stop(struct loop *lp, uint32_t events, void *ctx) {
        struct rd *r = ctx;

        r->calls++;
        r->events = events;
        cr_assert_eq(read(r->fd, &r->got, 1), 1, "read: %s", strerror(errno));
        loop_stop(lp, 5);
}

Test(loop, readable_pipe_calls_back_with_its_ctx) {
        struct rd r = { 0 };
        int p[2];

        make_pipe(p);
        r.fd = p[0];
        r.reg = add_fd(p[0], EPOLLIN, on_read_stop, &r);
        put_byte(p[1], 'x');
        run_expect(5);
        cr_assert_eq(r.calls, 1);
        cr_assert(r.events & EPOLLIN, "events %#x", r.events);
        cr_assert_eq(r.got, 'x');
}

Test(loop, nothing_ready_no_callback) {
        struct rd r = { 0 };
        int p[2];

        make_pipe(p);
        r.fd = p[0];
        add_fd(p[0], EPOLLIN, on_read_stop, &r);
        timer_at(50, stop_with_1, NULL);
        run_expect(1);
        cr_assert_eq(r.calls, 0, "called %d times for an empty pipe", r.calls);
}

/* Writable first; then, interest narrowed to EPOLLIN with loop_mod_fd, the
 * peer's bytes. */
struct sp {
        int fd, peer;
        int calls;
        uint32_t ev[4];
        struct loop_fd *reg;
};

static void on_sock(struct loop *lp, uint32_t events, void *ctx) {
        struct sp *s = ctx;
        char buf[8];

        cr_assert_lt(s->calls, 4);
        s->ev[s->calls++] = events;
        if (s->calls == 1) {
                cr_assert_eq(write(s->peer, "hi", 2), 2);
                cr_assert_eq(loop_mod_fd(lp, s->reg, EPOLLIN), 0);
        } else {
                cr_assert_eq(read(s->fd, buf, sizeof(buf)), 2);
                cr_assert_eq(memcmp(buf, "hi", 2), 0);
                loop_stop(lp, 2);
        }
}

Test(loop, writable_then_mod_to_readable) {
        struct sp s = { 0 };
        int sv[2];

        make_socketpair(sv);
        s.fd = sv[0];
        s.peer = sv[1];
        s.reg = add_fd(sv[0], EPOLLOUT, on_sock, &s);
        run_expect(2);
        cr_assert_eq(s.calls, 2);
        cr_assert(s.ev[0] & EPOLLOUT, "first call: events %#x", s.ev[0]);
        cr_assert_not(s.ev[0] & EPOLLIN, "nothing to read yet, and EPOLLIN not asked for: %#x", s.ev[0]);
        cr_assert(s.ev[1] & EPOLLIN, "second call: events %#x", s.ev[1]);
        cr_assert_not(s.ev[1] & EPOLLOUT, "EPOLLOUT no longer asked for: %#x", s.ev[1]);
}

/* ---- removal during a batch ---- */

static int batch_calls;
static int batch_hooks;
static struct obj *batch_ran;   /* the object whose callback ran */

struct obj {
        int id;
        int fd;
        struct loop_fd *reg;
        struct obj *other;      /* the registration this one removes */
};

/* Removes and frees the other object: its event, ready in the same batch,
 * must not reach it. */
static void on_obj(struct loop *lp, uint32_t events, void *ctx) {
        struct obj *o = ctx;
        char c;

        (void)lp;
        (void)events;
        batch_calls++;
        cr_assert(o->id == 1 || o->id == 2, "callback with a dead object (id %d)", o->id);
        batch_ran = o;
        cr_assert_eq(read(o->fd, &c, 1), 1);
        if (o->other) {
                del_fd(o->other->reg);
                free(o->other);
                o->other = NULL;
        }
}

/* After the whole batch: stop once something ran. */
static void hook_stop_after_batch(struct loop *lp, void *ctx) {
        (void)ctx;
        batch_hooks++;
        if (batch_calls > 0)
                loop_stop(lp, 3);
}

Test(loop, callback_removes_other_fd_of_same_batch) {
        struct obj *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
        int pa[2], pb[2];
        char c;

        cr_assert(a && b);
        batch_calls = batch_hooks = 0;
        batch_ran = NULL;
        make_pipe(pa);
        make_pipe(pb);
        *a = (struct obj){ .id = 1, .fd = pa[0], .other = b };
        *b = (struct obj){ .id = 2, .fd = pb[0], .other = a };
        a->reg = add_fd(pa[0], EPOLLIN, on_obj, a);
        b->reg = add_fd(pb[0], EPOLLIN, on_obj, b);
        /* Both readable before the first epoll_wait: one batch. */
        put_byte(pa[1], 'a');
        put_byte(pb[1], 'b');
        loop_set_before_sleep(l, hook_stop_after_batch, NULL);
        run_expect(3);
        cr_assert_eq(batch_calls, 1, "%d callbacks: the removed registration got its event", batch_calls);
        cr_assert_eq(batch_hooks, 2, "one turn did it all");
        /* The removed one's byte is still in its pipe. */
        cr_assert(batch_ran == a || batch_ran == b);
        cr_assert_eq(read(batch_ran == a ? pb[0] : pa[0], &c, 1), 1, "the removed fd's byte was never read");
        del_fd(batch_ran->reg);
        free(batch_ran);
}

/* Both readable in one batch; whichever runs first narrows the other's
 * interest to EPOLLOUT, which a pipe's read end never is: the event already
 * collected for it must not be delivered. */
struct narrow {
        int fd;
        int calls;
        struct loop_fd *reg;
        struct narrow *other;
};

static int narrow_calls;

static void on_narrow(struct loop *lp, uint32_t events, void *ctx) {
        struct narrow *n = ctx;
        char c;

        narrow_calls++;
        n->calls++;
        cr_assert(events & EPOLLIN, "events %#x", events);
        cr_assert_eq(read(n->fd, &c, 1), 1);
        if (n->other)
                cr_assert_eq(loop_mod_fd(lp, n->other->reg, EPOLLOUT), 0);
        n->other = NULL;
}

static void hook_stop_after_narrow(struct loop *lp, void *ctx) {
        (void)ctx;
        if (narrow_calls > 0)
                loop_stop(lp, 11);
}

Test(loop, callback_narrows_other_fd_of_same_batch) {
        struct narrow a = { 0 }, b = { 0 };
        int pa[2], pb[2];

        narrow_calls = 0;
        make_pipe(pa);
        make_pipe(pb);
        a = (struct narrow){ .fd = pa[0], .other = &b };
        b = (struct narrow){ .fd = pb[0], .other = &a };
        a.reg = add_fd(pa[0], EPOLLIN, on_narrow, &a);
        b.reg = add_fd(pb[0], EPOLLIN, on_narrow, &b);
        put_byte(pa[1], 'a');
        put_byte(pb[1], 'b');
        loop_set_before_sleep(l, hook_stop_after_narrow, NULL);
        run_expect(11);
        cr_assert_eq(narrow_calls, 1, "%d calls: an event the fd no longer asks for was delivered", narrow_calls);

        /* Asked for again, the byte still there is delivered. */
        narrow_calls = 0;
        cr_assert_eq(loop_mod_fd(l, a.calls ? b.reg : a.reg, EPOLLIN), 0);
        run_expect(11);
        cr_assert_eq(narrow_calls, 1);
        cr_assert(a.calls == 1 && b.calls == 1, "calls %d and %d", a.calls, b.calls);
}

struct once {
        int fd;
        int calls;
        struct loop_fd *reg;
        int *freed_calls;       /* counter outside the freed object */
};

static void on_once_self_remove(struct loop *lp, uint32_t events, void *ctx) {
        struct once *o = ctx;
        char c;

        (void)lp;
        (void)events;
        (*o->freed_calls)++;
        cr_assert_eq(o->calls, 0, "called again after removing itself");
        o->calls++;
        cr_assert_eq(read(o->fd, &c, 1), 1);
        del_fd(o->reg);
        free(o);
}

static int64_t write_again(struct loop *lp, void *ctx) {
        (void)lp;
        put_byte(*(int *)ctx, 'y');
        return LOOP_TIMER_STOP;
}

Test(loop, callback_removes_itself) {
        struct once *o = calloc(1, sizeof(*o));
        int p[2], calls = 0;

        cr_assert_not_null(o);
        make_pipe(p);
        o->fd = p[0];
        o->freed_calls = &calls;
        o->reg = add_fd(p[0], EPOLLIN, on_once_self_remove, o);
        put_byte(p[1], 'x');
        put_byte(p[1], 'x');            /* still readable after the first read */
        timer_at(20, write_again, &p[1]);
        timer_at(100, stop_with_1, NULL);
        run_expect(1);
        cr_assert_eq(calls, 1, "%d calls after the registration removed itself", calls);
        loop_del_fd(l, NULL);           /* harmless */
}

/* ---- EPOLLERR / EPOLLHUP ---- */

struct err {
        int calls;
        uint32_t events;
        struct loop_fd *reg;
        int fd;
        ssize_t read_ret;
};

static void on_err(struct loop *lp, uint32_t events, void *ctx) {
        struct err *e = ctx;
        char c;

        e->calls++;
        e->events = events;
        if (events & EPOLLIN)
                e->read_ret = read(e->fd, &c, 1);
        del_fd(e->reg);
        loop_stop(lp, 4);
}

Test(loop, hup_reported_as_readable_and_writable) {
        struct err e = { .read_ret = -2 };
        int p[2];

        make_pipe(p);
        e.fd = p[0];
        /* A pipe's read end is never writable by itself: EPOLLOUT can only
         * come from the HUP. */
        e.reg = add_fd(p[0], EPOLLIN | EPOLLOUT, on_err, &e);
        close_now(p[1]);
        run_expect(4);
        cr_assert_eq(e.calls, 1);
        cr_assert(e.events & EPOLLHUP, "events %#x", e.events);
        cr_assert(e.events & EPOLLIN, "HUP without EPOLLIN: %#x", e.events);
        cr_assert(e.events & EPOLLOUT, "HUP without EPOLLOUT: %#x", e.events);
        cr_assert_eq(e.read_ret, 0, "the handler meets EOF on its own read");
}

Test(loop, err_reported_as_readable_and_writable) {
        struct err e = { .read_ret = -2 };
        int p[2];
        char fill[4096];

        make_pipe(p);
        memset(fill, 'f', sizeof(fill));
        while (write(p[1], fill, sizeof(fill)) > 0)
                ;
        cr_assert_eq(errno, EAGAIN, "filling the pipe: %s", strerror(errno));
        /* Full, so not writable; a write end is never readable: both bits
         * can only come from the EPOLLERR of a pipe without readers. */
        e.fd = p[1];
        e.reg = add_fd(p[1], EPOLLIN | EPOLLOUT, on_err, &e);
        close_now(p[0]);
        run_expect(4);
        cr_assert_eq(e.calls, 1);
        cr_assert(e.events & EPOLLERR, "events %#x", e.events);
        cr_assert(e.events & EPOLLIN, "ERR without EPOLLIN: %#x", e.events);
        cr_assert(e.events & EPOLLOUT, "ERR without EPOLLOUT: %#x", e.events);
}

Test(loop, socket_peer_closed_is_readable) {
        struct err e = { .read_ret = -2 };
        int sv[2];

        make_socketpair(sv);
        e.fd = sv[0];
        e.reg = add_fd(sv[0], EPOLLIN, on_err, &e);
        close_now(sv[1]);
        run_expect(4);
        cr_assert_eq(e.calls, 1);
        cr_assert(e.events & EPOLLIN, "events %#x", e.events);
        cr_assert_eq(e.read_ret, 0, "EOF");
}

/* ---- timers ---- */

struct tick {
        int id;
        uint64_t due_ms;        /* from the start of the run */
        int *order;
        int *n;
        uint64_t start;
        uint64_t fired_at;
        int stop_code;          /* stop the loop when fired, if non-zero */
};

static int64_t on_tick(struct loop *lp, void *ctx) {
        struct tick *t = ctx;

        t->fired_at = loop_clock_ms() - t->start;
        t->order[(*t->n)++] = t->id;
        if (t->stop_code)
                loop_stop(lp, t->stop_code);
        return LOOP_TIMER_STOP;
}

Test(loop, timers_fire_in_due_order_not_before_due) {
        static const uint64_t due[] = { 50, 150, 100 };   /* created out of order */
        struct tick t[3];
        int order[8], n = 0;
        uint64_t start = loop_clock_ms();

        for (int i = 0; i < 3; i++) {
                t[i] = (struct tick){ .id = i, .due_ms = due[i], .order = order, .n = &n, .start = start,
                                      .stop_code = i == 1 ? 6 : 0 };
                timer_at(due[i], on_tick, &t[i]);
        }
        run_expect(6);
        cr_assert_eq(n, 3);
        cr_assert(order[0] == 0 && order[1] == 2 && order[2] == 1, "fired %d %d %d, want 0 2 1", order[0], order[1],
                  order[2]);
        for (int i = 0; i < 3; i++)
                cr_assert_geq(t[i].fired_at, t[i].due_ms, "timer %d fired at %llu ms, due at %llu", i,
                              (unsigned long long)t[i].fired_at, (unsigned long long)t[i].due_ms);
}

struct rep {
        int calls;
        int stop_after;         /* return LOOP_TIMER_STOP on this call */
        int64_t every;
        uint64_t at[8];
};

static int64_t on_rep(struct loop *lp, void *ctx) {
        struct rep *r = ctx;

        (void)lp;
        cr_assert_lt(r->calls, 8, "fired on after LOOP_TIMER_STOP");
        r->at[r->calls++] = loop_clock_ms();
        return r->calls >= r->stop_after ? LOOP_TIMER_STOP : r->every;
}

Test(loop, callback_rearms_by_its_return_then_stops) {
        struct rep r = { .stop_after = 4, .every = 15 };

        timer_at(0, on_rep, &r);
        timer_at(250, stop_with_1, NULL);   /* long after the 4th */
        run_expect(1);
        cr_assert_eq(r.calls, 4, "%d calls: LOOP_TIMER_STOP after the 4th must disarm", r.calls);
        for (int i = 1; i < r.calls; i++)
                cr_assert_geq(r.at[i] - r.at[i - 1], 15, "call %d came %llu ms after the one before", i,
                              (unsigned long long)(r.at[i] - r.at[i - 1]));
}

struct rearm {
        struct loop_timer *t;
        struct rep *r;
        uint64_t at;
};

static int64_t rearm_other(struct loop *lp, void *ctx) {
        struct rearm *ra = ctx;

        cr_assert_eq(ra->r->calls, 1, "stopped timer fired before being re-armed");
        ra->at = loop_clock_ms();
        loop_timer_arm(lp, ra->t, 10);
        return LOOP_TIMER_STOP;
}

Test(loop, stopped_timer_rearmed_with_loop_timer_arm) {
        struct rep r = { .stop_after = 1, .every = 5 };
        struct rearm ra = { .r = &r };

        ra.t = timer_at(0, on_rep, &r);         /* fires once, stops */
        timer_at(50, rearm_other, &ra);
        timer_at(200, stop_with_1, NULL);
        run_expect(1);
        cr_assert_eq(r.calls, 2, "%d calls: the timer object stays and can be armed again", r.calls);
        cr_assert_geq(r.at[1], ra.at + 10, "fired %llu ms after being armed for 10",
                      (unsigned long long)(r.at[1] - ra.at));
}

Test(loop, disarmed_and_deleted_timers_never_fire) {
        struct rep r1 = { .stop_after = 1 }, r2 = { .stop_after = 1 };
        struct loop_timer *t1 = timer_at(10, on_rep, &r1), *t2 = timer_at(10, on_rep, &r2);

        loop_timer_disarm(t1);
        loop_del_timer(l, t2);
        loop_del_timer(l, NULL);                /* harmless */
        timer_at(100, stop_with_1, NULL);
        run_expect(1);
        cr_assert_eq(r1.calls, 0, "disarmed timer fired");
        cr_assert_eq(r2.calls, 0, "deleted timer fired");
}

struct tobj {
        int id;
        int *calls;
        struct loop_timer *self;
        struct tobj *other;
};

/* Deletes the other timer, due in the same pass, and frees its object; and
 * deletes itself while asking to be re-armed. */
static int64_t on_tobj(struct loop *lp, void *ctx) {
        struct tobj *o = ctx;

        (*o->calls)++;
        cr_assert(o->id == 1 || o->id == 2, "timer callback with a dead object (id %d)", o->id);
        if (o->other) {
                loop_del_timer(lp, o->other->self);
                free(o->other);
        }
        loop_del_timer(lp, o->self);
        free(o);
        return 5;
}

Test(loop, timer_callback_deletes_other_due_timer_and_itself) {
        struct tobj *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
        int calls = 0;

        cr_assert(a && b);
        *a = (struct tobj){ .id = 1, .calls = &calls, .other = b };
        *b = (struct tobj){ .id = 2, .calls = &calls, .other = a };
        a->self = timer_at(0, on_tobj, a);      /* both due at the first turn */
        b->self = timer_at(0, on_tobj, b);
        timer_at(100, stop_with_1, NULL);
        run_expect(1);
        cr_assert_eq(calls, 1, "%d timer callbacks: a deleted timer fired", calls);
}

struct when {
        int calls;
        uint64_t at;
        int stop_code;
};

static int64_t on_when(struct loop *lp, void *ctx) {
        struct when *w = ctx;

        w->calls++;
        w->at = loop_clock_ms();
        if (w->stop_code)
                loop_stop(lp, w->stop_code);
        return LOOP_TIMER_STOP;
}

Test(loop, arm_sooner_only_moves_earlier) {
        struct when far = { 0 }, near = { 0 }, idle = { .stop_code = 8 };
        uint64_t start = loop_clock_ms();
        struct loop_timer *t_far = timer_at(5000, on_when, &far), *t_near = timer_at(30, on_when, &near);
        struct loop_timer *t_idle = loop_timer_new(l, on_when, &idle);

        cr_assert_not_null(t_idle);
        loop_timer_arm_sooner(l, t_far, 20);     /* 5000 -> 20 */
        loop_timer_arm_sooner(l, t_near, 5000);  /* stays at 30 */
        loop_timer_arm_sooner(l, t_idle, 60);    /* disarmed -> 60 */
        run_expect(8);
        cr_assert_eq(far.calls, 1, "arm_sooner(20) on a timer due in 5 s");
        cr_assert_eq(near.calls, 1, "arm_sooner(5000) pushed a 30 ms timer back");
        cr_assert_eq(idle.calls, 1);
        cr_assert(far.at - start >= 20 && far.at - start < 1000, "fired after %llu ms",
                  (unsigned long long)(far.at - start));
        cr_assert(near.at - start >= 30 && near.at - start < 1000, "fired after %llu ms",
                  (unsigned long long)(near.at - start));
        cr_assert_geq(idle.at - start, 60);
}

/* ---- the before-sleep hook, loop_stop ---- */

static int hook_calls;

struct seen {
        int hook_at_call;
        int calls;
        int fd;
};

static void on_seen_fd(struct loop *lp, uint32_t events, void *ctx) {
        struct seen *s = ctx;
        char c;

        (void)lp;
        (void)events;
        s->calls++;
        s->hook_at_call = hook_calls;
        cr_assert_eq(read(s->fd, &c, 1), 1);
}

static int64_t on_seen_timer(struct loop *lp, void *ctx) {
        struct seen *s = ctx;

        (void)lp;
        s->calls++;
        s->hook_at_call = hook_calls;
        return LOOP_TIMER_STOP;
}

static struct seen seen[4];
static int done_at_second_hook = -1;

static void count_hook(struct loop *lp, void *ctx) {
        (void)ctx;
        hook_calls++;
        if (hook_calls == 2) {
                done_at_second_hook = 0;
                for (int i = 0; i < 4; i++)
                        done_at_second_hook += seen[i].calls;
                loop_stop(lp, 9);
        }
}

Test(loop, before_sleep_runs_once_per_turn_after_all_callbacks) {
        int p[3][2];

        hook_calls = 0;
        memset(seen, 0, sizeof(seen));
        for (int i = 0; i < 3; i++) {
                make_pipe(p[i]);
                seen[i].fd = p[i][0];
                add_fd(p[i][0], EPOLLIN, on_seen_fd, &seen[i]);
                put_byte(p[i][1], 'x');
        }
        timer_at(0, on_seen_timer, &seen[3]);
        loop_set_before_sleep(l, count_hook, NULL);
        run_expect(9);
        cr_assert_eq(hook_calls, 2, "hook ran %d times", hook_calls);
        cr_assert_eq(done_at_second_hook, 4, "%d of 4 callbacks had run by the second hook", done_at_second_hook);
        for (int i = 0; i < 4; i++) {
                cr_assert_eq(seen[i].calls, 1, "callback %d ran %d times", i, seen[i].calls);
                cr_assert_eq(seen[i].hook_at_call, 1, "callback %d ran after %d hooks: the hook ran mid-turn", i,
                             seen[i].hook_at_call);
        }
}

/* A timer firing every 10 ms: exactly one hook between two firings. */
struct per_turn {
        int fired;
        int hook_at[6];
};

static int64_t on_per_turn(struct loop *lp, void *ctx) {
        struct per_turn *pt = ctx;

        pt->hook_at[pt->fired++] = hook_calls;
        if (pt->fired == 6) {
                loop_stop(lp, 10);
                return LOOP_TIMER_STOP;
        }
        return 10;
}

static void plain_hook(struct loop *lp, void *ctx) {
        (void)lp;
        (void)ctx;
        hook_calls++;
}

Test(loop, before_sleep_once_per_idle_turn) {
        struct per_turn pt = { 0 };

        hook_calls = 0;
        loop_set_before_sleep(l, plain_hook, NULL);
        timer_at(10, on_per_turn, &pt);
        run_expect(10);
        cr_assert_eq(pt.fired, 6);
        for (int i = 1; i < 6; i++)
                cr_assert_eq(pt.hook_at[i] - pt.hook_at[i - 1], 1, "%d hooks between firings %d and %d",
                             pt.hook_at[i] - pt.hook_at[i - 1], i - 1, i);
}

static int64_t stop_with_ctx(struct loop *lp, void *ctx) {
        loop_stop(lp, *(int *)ctx);
        return LOOP_TIMER_STOP;
}

static int after_stop_calls;

static int64_t count_after_stop(struct loop *lp, void *ctx) {
        (void)lp;
        (void)ctx;
        after_stop_calls++;
        return LOOP_TIMER_STOP;
}

static void stop_in_hook(struct loop *lp, void *ctx) {
        (void)ctx;
        loop_stop(lp, -7);
}

Test(loop, loop_stop_returns_the_code_and_run_can_resume) {
        int c42 = 42, c0 = 0;

        timer_at(10, stop_with_ctx, &c42);
        run_expect(42);

        /* The loop runs again after a stop. */
        timer_at(10, stop_with_ctx, &c0);
        run_expect(0);

        /* Stopped from the hook, before sleeping: no callback runs. */
        after_stop_calls = 0;
        timer_at(0, count_after_stop, NULL);
        loop_set_before_sleep(l, stop_in_hook, NULL);
        run_expect(-7);
        cr_assert_eq(after_stop_calls, 0, "a callback ran after loop_stop in the hook");
        loop_set_before_sleep(l, NULL, NULL);
}

Test(loop, now_ms_is_monotonic_and_refreshed_each_turn) {
        struct when w = { .stop_code = 1 };
        uint64_t before = loop_now_ms(l);

        timer_at(30, on_when, &w);
        run_expect(1);
        cr_assert_geq(loop_now_ms(l), before + 30, "loop_now_ms %llu, %llu before a 30 ms wait",
                      (unsigned long long)loop_now_ms(l), (unsigned long long)before);
        cr_assert_leq(loop_now_ms(l), loop_clock_ms());
        cr_assert_gt(loop_realtime_ns(), 1600000000ull * 1000000000ull, "CLOCK_REALTIME in ns");
}
