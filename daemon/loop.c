#include "daemon/loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct loop_fd {
        int fd;
        uint32_t events;
        loop_fd_cb cb;
        void *ctx;
        bool dead;
        struct loop_fd *next_dead;
};

struct loop_timer {
        loop_timer_cb cb;
        void *ctx;
        uint64_t due_ms;        /* 0 = disarmed */
        bool dead;
        struct loop_timer *next;
};

struct loop {
        int epfd;
        bool stop;
        int code;
        uint64_t now_ms;
        struct loop_timer *timers;
        struct loop_fd *dead_fds;
        loop_hook_cb before_sleep;
        void *before_sleep_ctx;
};

uint64_t loop_clock_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t loop_realtime_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct loop *loop_new(void) {
        struct loop *l = calloc(1, sizeof(*l));

        if (!l)
                return NULL;
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (l->epfd < 0) {
                free(l);
                return NULL;
        }
        l->now_ms = loop_clock_ms();
        return l;
}

static void reap(struct loop *l) {
        struct loop_timer **tp = &l->timers;

        while (l->dead_fds) {
                struct loop_fd *f = l->dead_fds;
                l->dead_fds = f->next_dead;
                free(f);
        }
        while (*tp) {
                struct loop_timer *t = *tp;
                if (t->dead) {
                        *tp = t->next;
                        free(t);
                } else {
                        tp = &t->next;
                }
        }
}

void loop_free(struct loop *l) {
        if (!l)
                return;
        for (struct loop_timer *t = l->timers; t; t = t->next)
                t->dead = true;
        reap(l);
        close(l->epfd);
        free(l);
}

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ctx, struct loop_fd **ret) {
        struct epoll_event ev = { .events = events };
        struct loop_fd *f = calloc(1, sizeof(*f));

        if (!f)
                return -ENOMEM;
        *f = (struct loop_fd){ .fd = fd, .events = events, .cb = cb, .ctx = ctx };
        ev.data.ptr = f;
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int r = -errno;
                free(f);
                return r;
        }
        if (ret)
                *ret = f;
        return 0;
}

int loop_mod_fd(struct loop *l, struct loop_fd *f, uint32_t events) {
        struct epoll_event ev = { .events = events, .data.ptr = f };

        if (f->events == events)
                return 0;
        if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, f->fd, &ev) < 0)
                return -errno;
        f->events = events;
        return 0;
}

void loop_del_fd(struct loop *l, struct loop_fd *f) {
        if (!f || f->dead)
                return;
        (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, f->fd, NULL);
        f->dead = true;
        f->next_dead = l->dead_fds;
        l->dead_fds = f;
}

struct loop_timer *loop_timer_new(struct loop *l, loop_timer_cb cb, void *ctx) {
        struct loop_timer *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        t->cb = cb;
        t->ctx = ctx;
        t->next = l->timers;
        l->timers = t;
        return t;
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t delay_ms) {
        t->due_ms = loop_clock_ms() + delay_ms;
        if (t->due_ms == 0)
                t->due_ms = 1;
        (void)l;
}

void loop_timer_arm_sooner(struct loop *l, struct loop_timer *t, uint64_t delay_ms) {
        uint64_t due = loop_clock_ms() + delay_ms;

        if (t->due_ms == 0 || t->due_ms > due)
                loop_timer_arm(l, t, delay_ms);
}

void loop_timer_disarm(struct loop_timer *t) {
        t->due_ms = 0;
}

void loop_del_timer(struct loop *l, struct loop_timer *t) {
        (void)l;
        if (t) {
                t->dead = true;
                t->due_ms = 0;
        }
}

void loop_set_before_sleep(struct loop *l, loop_hook_cb cb, void *ctx) {
        l->before_sleep = cb;
        l->before_sleep_ctx = ctx;
}

void loop_stop(struct loop *l, int code) {
        l->stop = true;
        l->code = code;
}

uint64_t loop_now_ms(struct loop *l) {
        return l->now_ms;
}

static int next_timeout(struct loop *l) {
        uint64_t now = loop_clock_ms(), best = UINT64_MAX;

        for (struct loop_timer *t = l->timers; t; t = t->next)
                if (!t->dead && t->due_ms && t->due_ms < best)
                        best = t->due_ms;
        if (best == UINT64_MAX)
                return -1;
        if (best <= now)
                return 0;
        return best - now > 60000 ? 60000 : (int)(best - now);
}

static void run_timers(struct loop *l) {
        uint64_t now = loop_clock_ms();

        for (struct loop_timer *t = l->timers; t; t = t->next) {
                int64_t next;

                if (t->dead || !t->due_ms || t->due_ms > now)
                        continue;
                t->due_ms = 0;
                next = t->cb(l, t->ctx);
                /* The callback may have re-armed it itself; keep the sooner. */
                if (next >= 0 && !t->dead)
                        loop_timer_arm_sooner(l, t, (uint64_t)next);
        }
}

int loop_run(struct loop *l) {
        struct epoll_event evs[64];

        l->stop = false;
        while (!l->stop) {
                int n;

                if (l->before_sleep)
                        l->before_sleep(l, l->before_sleep_ctx);
                reap(l);
                if (l->stop)
                        break;
                n = epoll_wait(l->epfd, evs, 64, next_timeout(l));
                if (n < 0 && errno != EINTR)
                        return -errno;
                l->now_ms = loop_clock_ms();
                for (int i = 0; i < n; i++) {
                        struct loop_fd *f = evs[i].data.ptr;
                        uint32_t e = evs[i].events;

                        if (f->dead)
                                continue;
                        if (e & (EPOLLERR | EPOLLHUP))
                                e |= EPOLLIN | EPOLLOUT;
                        /* An earlier callback may have narrowed the interest. */
                        e &= f->events | EPOLLERR | EPOLLHUP;
                        if (e)
                                f->cb(l, e, f->ctx);
                }
                run_timers(l);
        }
        return l->code;
}
