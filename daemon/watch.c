#include "daemon/watch.h"

#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "daemon/loop.h"

#define WATCH_MASK (IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
                    IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

struct watch {
        struct loop *loop;
        int fd;
        int wd;
        struct loop_fd *reg;
        watch_cb cb;
        void *ctx;
};

/* Drain until EAGAIN: level-triggered epoll would call again anyway, but one
 * read per wake-up keeps a burst from costing a turn per 64 KiB. */
static void on_readable(struct loop *l, uint32_t events, void *ctx) {
        struct watch *w = ctx;
        alignas(struct inotify_event) char buf[64 * 1024];

        (void)l;
        (void)events;
        for (;;) {
                ssize_t n = read(w->fd, buf, sizeof(buf));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return;   /* EAGAIN: drained */
                }
                for (char *p = buf; p < buf + n;) {
                        struct inotify_event *ev = (struct inotify_event *)p;

                        p += sizeof(*ev) + ev->len;
                        if (ev->mask & IN_Q_OVERFLOW)
                                w->cb(w->ctx, NULL, IN_Q_OVERFLOW);
                        else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED))
                                w->cb(w->ctx, NULL, ev->mask);
                        else if (ev->len > 0)
                                w->cb(w->ctx, ev->name, ev->mask);
                }
        }
}

int watch_new(struct loop *l, const char *dir, watch_cb cb, void *ctx, struct watch **ret) {
        struct watch *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        w->loop = l;
        w->cb = cb;
        w->ctx = ctx;
        w->wd = -1;
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0) {
                r = -errno;
                goto fail;
        }
        w->wd = inotify_add_watch(w->fd, dir, WATCH_MASK);
        if (w->wd < 0) {
                r = -errno;
                goto fail;
        }
        if ((r = loop_add_fd(l, w->fd, EPOLLIN, on_readable, w, &w->reg)) < 0)
                goto fail;
        *ret = w;
        return 0;
fail:
        watch_free(w);
        return r;
}

void watch_free(struct watch *w) {
        if (!w)
                return;
        loop_del_fd(w->loop, w->reg);
        if (w->fd >= 0)
                close(w->fd);
        free(w);
}
