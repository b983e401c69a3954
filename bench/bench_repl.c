/* Replication latency under load, end to end: write sessions the way PHP's
 * files handler does (open O_CREAT|O_RDWR, flock LOCK_EX, truncate, write,
 * close) into node 1's directory at a fixed rate, and time the moment each
 * write's bytes are readable in node 2's directory (inotify on it).
 *
 * usage: bench_repl SRC_DIR DST_DIR RATE_PER_S SECONDS SESSIONS SIZE
 * prints: writes, arrivals, superseded (rewritten before they arrived),
 * lost, latency p50/p90/p99/max in ms, and the achieved write rate. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static void php_write(const char *dir, unsigned sess, uint64_t seq, size_t size) {
        char path[4096], *buf = malloc(size + 64);
        int fd, n;

        if (!buf)
                exit(1);
        snprintf(path, sizeof(path), "%s/sess_bench%05u", dir, sess);
        n = snprintf(buf, size + 64, "seq|i:%" PRIu64 ";pad|s:%zu:\"", seq, size);
        memset(buf + n, 'x', size > (size_t)n + 2 ? size - (size_t)n - 2 : 0);
        if (size > (size_t)n + 2) {
                buf[size - 2] = '"';
                buf[size - 1] = ';';
                n = (int)size;
        }
        fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0 || flock(fd, LOCK_EX) < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
                perror(path);
                exit(1);
        }
        close(fd);
        free(buf);
}

/* The seq in a replica, or -1 while it is not readable whole. */
static int64_t read_seq(const char *dir, const char *name) {
        char path[4096], buf[64];
        uint64_t seq;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        n = pread(fd, buf, sizeof(buf) - 1, 0);
        close(fd);
        if (n <= 0)
                return -1;
        buf[n] = 0;
        return sscanf(buf, "seq|i:%" SCNu64 ";", &seq) == 1 ? (int64_t)seq : -1;
}

int main(int argc, char **argv) {
        const char *src, *dst;
        unsigned rate, secs, nsess;
        size_t size, total, arrived = 0, superseded = 0;
        uint64_t *sent, *lat, start, end;
        int64_t *latest;   /* per session: the newest seq written */
        char buf[64 * 1024];
        int ifd;

        if (argc != 7) {
                fprintf(stderr, "usage: %s SRC_DIR DST_DIR RATE_PER_S SECONDS SESSIONS SIZE\n", argv[0]);
                return 2;
        }
        src = argv[1];
        dst = argv[2];
        rate = (unsigned)atoi(argv[3]);
        secs = (unsigned)atoi(argv[4]);
        nsess = (unsigned)atoi(argv[5]);
        size = (size_t)atol(argv[6]);
        total = (size_t)rate * secs;
        sent = calloc(total, sizeof(*sent));
        lat = calloc(total, sizeof(*lat));
        latest = malloc(nsess * sizeof(*latest));
        if (!sent || !lat || !latest || !rate || !nsess)
                return 1;
        for (unsigned i = 0; i < nsess; i++)
                latest[i] = -1;
        ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ifd < 0 || inotify_add_watch(ifd, dst, IN_CLOSE_WRITE | IN_ATTRIB | IN_MODIFY) < 0) {
                perror("inotify");
                return 1;
        }
        start = now_us();
        for (size_t k = 0;; ) {
                uint64_t now = now_us();
                struct pollfd pfd = { .fd = ifd, .events = POLLIN };
                int timeout;

                while (k < total && now >= start + k * 1000000u / rate) {
                        unsigned s = (unsigned)(k % nsess);

                        if (latest[s] >= 0 && !lat[latest[s]])
                                superseded++;
                        sent[k] = now_us();
                        php_write(src, s, k, size);
                        latest[s] = (int64_t)k;
                        k++;
                        now = now_us();
                }
                if (k == total && arrived + superseded >= total)
                        break;
                if (k == total && now > start + (uint64_t)secs * 1000000u + 10000000u)
                        break;   /* 10 s after the last write: the rest is lost */
                timeout = k < total ? (int)((start + k * 1000000u / rate - now) / 1000u) : 100;
                if (poll(&pfd, 1, timeout < 0 ? 0 : timeout) <= 0)
                        continue;
                for (;;) {
                        ssize_t n = read(ifd, buf, sizeof(buf));
                        char *p;

                        if (n <= 0)
                                break;
                        for (p = buf; p < buf + n;) {
                                struct inotify_event *ev = (struct inotify_event *)p;
                                int64_t seq;

                                p += sizeof(*ev) + ev->len;
                                if (!ev->len || (seq = read_seq(dst, ev->name)) < 0 || (size_t)seq >= total)
                                        continue;
                                if (!lat[seq] && sent[seq] && latest[seq % nsess] == seq) {
                                        lat[seq] = now_us() - sent[seq] + 1;
                                        arrived++;
                                }
                        }
                }
        }
        end = now_us();
        {
                uint64_t *v = malloc(arrived * sizeof(*v));
                size_t m = 0;

                for (size_t k = 0; k < total; k++)
                        if (lat[k])
                                v[m++] = lat[k];
                qsort(v, m, sizeof(*v), cmp_u64);
                printf("writes %zu at %u/s (%.0f/s achieved), %u sessions of %zu B: arrived %zu, superseded %zu, "
                       "lost %zu\n", total, rate, (double)total * 1e6 / (double)(sent[total - 1] - start + 1), nsess,
                       size, arrived, superseded, total - arrived - superseded);
                if (m)
                        printf("latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", v[m / 2] / 1000.0,
                               v[m * 9 / 10] / 1000.0, v[m * 99 / 100] / 1000.0, v[m - 1] / 1000.0);
                free(v);
        }
        (void)end;
        free(sent);
        free(lat);
        free(latest);
        return 0;
}
