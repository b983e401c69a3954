#include "daemon/handover.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "daemon/log.h"

/* Would flock(op | LOCK_NB) on state_dir/name block? A missing file is a
 * free lock. The probe takes the lock and drops it at once. */
static bool held(const char *state_dir, const char *name, int op) {
        char path[4096];
        bool busy;
        int fd;

        if ((size_t)snprintf(path, sizeof(path), "%s/%s", state_dir, name) >= sizeof(path))
                return false;
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return false;
        busy = flock(fd, op | LOCK_NB) < 0 && errno == EWOULDBLOCK;
        close(fd);
        return busy;
}

int handover_claim(const char *state_dir) {
        char path[4096];
        int fd;

        if ((size_t)snprintf(path, sizeof(path), "%s/daemon.lock", state_dir) >= sizeof(path))
                return -ENAMETOOLONG;
        fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        /* A stand-in's probe holds it shared for a moment; another daemon
         * holds it for good. */
        for (int i = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; i++) {
                struct timespec pause = { 0, 10 * 1000000L };
                int r = errno == EWOULDBLOCK ? -EBUSY : -errno;

                if (r != -EBUSY || i == 100) {
                        close(fd);
                        return r;
                }
                nanosleep(&pause, NULL);
        }
        return fd;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool handover_wait(const char *state_dir) {
        struct timespec pause = { 0, 20 * 1000000L };
        uint64_t t0 = now_ms();

        if (!handover_state_busy(state_dir))
                return true;
        log_info("state_dir \"%s\" is held by another sessyncd (a \"--serve\" applying a peer's frames while no "
                 "daemon ran, or a --full-sync); waiting for it to hand over (at most %d s)", state_dir,
                 HANDOVER_WAIT_MS / 1000);
        while (handover_state_busy(state_dir)) {
                if (now_ms() - t0 > HANDOVER_WAIT_MS) {
                        log_error("state_dir \"%s\": still held after %d s", state_dir, HANDOVER_WAIT_MS / 1000);
                        return false;
                }
                nanosleep(&pause, NULL);
        }
        log_info("state_dir \"%s\": handed over after %llu ms", state_dir, (unsigned long long)(now_ms() - t0));
        return true;
}

bool handover_wanted(const char *state_dir) {
        return held(state_dir, "daemon.lock", LOCK_SH);
}

bool handover_state_busy(const char *state_dir) {
        return held(state_dir, "lock", LOCK_EX);
}
