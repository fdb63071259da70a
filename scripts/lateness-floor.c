/* The floor under timer lateness: N periodic timerfds with phases spread
 * evenly over the period, one epoll_wait loop, one read per ready timer, and
 * nothing else. The lateness harness (benches/src/bin/lateness/) compiles
 * and runs it beside the reactor, tokio, a thread::sleep loop and the C
 * event loops of benches/c/ (sd-event, libev, libuv, io_uring,
 * epoll_pwait2), and measures them all the same way.
 *
 *   gcc -O2 -o /tmp/lateness-floor scripts/lateness-floor.c
 *   /tmp/lateness-floor N PERIOD_NS SECS [one]
 *
 * With `one`, the kernel work of the reactor's shared mode instead: the N
 * deadlines live in user space and ONE timerfd is armed (absolute, one-shot)
 * at the earliest; each wake-up reads it, takes every due deadline, and
 * re-arms it. Every distinct deadline is still its own hrtimer expiry.
 *
 * Lateness of an expiry = CLOCK_MONOTONIC when the loop sees it, minus the
 * deadline of the latest expiry that read() reports (a read folding k ticks
 * counts once, late by its newest deadline), as the harness measures every
 * contender. CPU: getrusage(RUSAGE_SELF) user+sys from before the timers
 * are set up to the end of the run, divided by the expiries seen. Prints one
 * line: samples p50 p99 p99.9 max cpu_ns_per_expiry, all in nanoseconds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec;
}

static uint64_t cpu_ns(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return ((uint64_t)u.ru_utime.tv_sec + (uint64_t)u.ru_stime.tv_sec) * 1000000000ull +
           ((uint64_t)u.ru_utime.tv_usec + (uint64_t)u.ru_stime.tv_usec) * 1000ull;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A floor that silently lost a timer would report a wrong floor: a failed
 * set-up call ends the run with its errno, and the harness says so. */
static int must(int rc, const char *call) {
    if (rc < 0) {
        perror(call);
        exit(1);
    }
    return rc;
}

static void arm_at(int fd, uint64_t t) {
    struct itimerspec its = {{0, 0}, {t / 1000000000ull, t % 1000000000ull}};
    must(timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, 0), "timerfd_settime");
}

/* Shared mode's kernel work: one timerfd, re-armed at the earliest deadline. */
static size_t one_timerfd(int n, uint64_t p, uint64_t t0, uint64_t end, uint64_t *lat, size_t cap) {
    int ep = must(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
    int fd = must(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), "timerfd_create");
    uint64_t *next = calloc(n, sizeof *next);
    for (int i = 0; i < n; i++) next[i] = t0 + (uint64_t)i * p / n;
    struct epoll_event ev = {.events = EPOLLIN};
    must(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), "epoll_ctl");
    arm_at(fd, next[0]);
    size_t len = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (t >= end) break;
        /* A timeout or EINTR: look at the clock again. EAGAIN from read: a
         * spurious wake-up, nothing expired. Neither loses a deadline. */
        if (epoll_wait(ep, &ev, 1, (int)((end - t) / 1000000 + 1)) != 1) continue;
        uint64_t got, earliest = UINT64_MAX;
        if (read(fd, &got, 8) != 8) continue;
        uint64_t seen = now_ns();
        for (int i = 0; i < n; i++) {
            if (next[i] <= seen) {
                uint64_t k = (seen - next[i]) / p; /* missed ticks fold into one */
                uint64_t deadline = next[i] + k * p;
                uint64_t at = now_ns();
                if (len < cap) lat[len++] = at > deadline ? at - deadline : 0;
                next[i] = deadline + p;
            }
            if (next[i] < earliest) earliest = next[i];
        }
        arm_at(fd, earliest);
    }
    return len;
}

/* Dedicated mode's kernel work: a periodic timerfd per timer. */
static size_t per_timer(int n, uint64_t p, uint64_t t0, uint64_t end, uint64_t *lat, size_t cap) {
    int ep = must(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
    int *fd = calloc(n, sizeof *fd);
    uint64_t *first = calloc(n, sizeof *first), *ticks = calloc(n, sizeof *ticks);
    for (int i = 0; i < n; i++) {
        first[i] = t0 + (uint64_t)i * p / n;
        fd[i] = must(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), "timerfd_create");
        struct itimerspec its = {{p / 1000000000ull, p % 1000000000ull},
                                 {first[i] / 1000000000ull, first[i] % 1000000000ull}};
        must(timerfd_settime(fd[i], TFD_TIMER_ABSTIME, &its, 0), "timerfd_settime");
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        must(epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev), "epoll_ctl");
    }
    struct epoll_event evs[1024];
    size_t len = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (t >= end) break;
        int k = epoll_wait(ep, evs, 1024, (int)((end - t) / 1000000 + 1));
        for (int e = 0; e < k; e++) {
            int i = (int)evs[e].data.u32;
            uint64_t got;
            if (read(fd[i], &got, 8) != 8) continue;
            ticks[i] += got;
            uint64_t deadline = first[i] + (ticks[i] - 1) * p, seen = now_ns();
            if (len < cap) lat[len++] = seen > deadline ? seen - deadline : 0;
        }
    }
    return len;
}

int main(int argc, char **argv) {
    if ((argc != 4 && argc != 5) || (argc == 5 && strcmp(argv[4], "one") != 0))
        return fprintf(stderr, "usage: lateness-floor N PERIOD_NS SECS [one]\n"), 2;
    int n = atoi(argv[1]);
    uint64_t p = strtoull(argv[2], 0, 10);
    double secs = atof(argv[3]);
    if (n <= 0 || p == 0 || secs <= 0)
        return fprintf(stderr, "lateness-floor: N, PERIOD_NS and SECS must be positive\n"), 2;
    size_t cap = (size_t)(n * (secs * 1e9 / p + 2)) + 1024;
    uint64_t *lat = malloc(cap * sizeof *lat);
    uint64_t t0 = now_ns() + 10000000ull; /* start in 10 ms */
    uint64_t end = t0 + (uint64_t)(secs * 1e9);
    uint64_t cpu = cpu_ns();
    size_t len = argc == 5 ? one_timerfd(n, p, t0, end, lat, cap) : per_timer(n, p, t0, end, lat, cap);
    cpu = cpu_ns() - cpu;
    qsort(lat, len, sizeof *lat, cmp);
#define Q(x) (len ? lat[(size_t)(len * (x)) < len ? (size_t)(len * (x)) : len - 1] : 0)
    printf("%zu %llu %llu %llu %llu %llu\n", len, (unsigned long long)Q(0.5), (unsigned long long)Q(0.99),
           (unsigned long long)Q(0.999), (unsigned long long)(len ? lat[len - 1] : 0),
           (unsigned long long)(len ? cpu / len : 0));
    return 0;
}
