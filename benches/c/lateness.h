/* What every event loop in benches/c/ shares, so that each loop's file holds
 * only the loop: the command line, the schedule, and the measurement, all as
 * scripts/lateness-floor.c does them.
 *
 *   PROGRAM N PERIOD_NS SECS [extra]
 *
 * N periodic timers, timer i's first deadline t0 + i*P/N with t0 = now + 10
 * ms, running for SECS seconds from t0. Each callback calls one of:
 *
 * deliver(deadline), when the program knows the deadline the callback is
 * for and the loop delivers every tick (sd-event re-armed at usec + period):
 * lateness is CLOCK_MONOTONIC now minus that deadline.
 *
 * expire(i), otherwise: the expiry delivered is the newest deadline of
 * timer i that has passed (missed ticks fold into it, as a timerfd read
 * folds them), late by now minus that deadline; it returns the timer's next
 * deadline, where io_uring and epoll_pwait2 re-arm. libev and libuv keep
 * their own schedules, decided a little before the callback runs, and may
 * call back for a tick folded past here: such a callback comes before the
 * timer's next deadline. It takes the deadline the previous callback was
 * given, and the previous one gets the deadline before (one period more
 * late). A callback before the next deadline with no folded tick to take
 * back (a loop firing early) delivers nothing and is counted on stderr.
 *
 * CPU is getrusage(RUSAGE_SELF) user+sys from start(), before the loop and
 * its timers are set up, to finish(), divided by the expiries delivered.
 * finish() prints one line: samples p50 p99 p99.9 max cpu_ns_per_expiry,
 * all in nanoseconds.
 *
 * Every library call that can fail is checked; fail() exits with status 2.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static struct {
    const char *name;    /* the program, for messages */
    int n;               /* timers */
    uint64_t p, t0, end; /* period, first deadline of timer 0, end of the run (ns) */
    uint64_t *next;      /* per timer: its oldest deadline not yet delivered */
    uint64_t *folded;    /* per timer: ticks folded and not taken back */
    size_t *last;        /* per timer: where its last expiry's lateness is */
    uint64_t *lat;       /* lateness of each expiry delivered (ns) */
    size_t len, cap;
    uint64_t early; /* callbacks that ran before their timer's next deadline */
    uint64_t cpu0;  /* CPU time at start() (ns) */
} R;

/* clock_gettime and getrusage cannot fail here: a valid clock, RUSAGE_SELF,
 * and pointers to our own memory. */
static inline uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static inline uint64_t cpu_ns(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return ((uint64_t)u.ru_utime.tv_sec + (uint64_t)u.ru_stime.tv_sec) * 1000000000ull +
           ((uint64_t)u.ru_utime.tv_usec + (uint64_t)u.ru_stime.tv_usec) * 1000ull;
}

static inline void fail(const char *call, const char *why) {
    fprintf(stderr, "%s: %s: %s\n", R.name, call, why);
    exit(2);
}

/* Parse `N PERIOD_NS SECS` (argv[1..3]), lay out the schedule, start the CPU
 * clock. `extra` names the optional fourth argument in the usage message. */
static inline void start(int argc, char **argv, const char *name, const char *extra) {
    R.name = name;
    if (argc < 4 || argc > (extra ? 5 : 4)) {
        fprintf(stderr, "usage: %s N PERIOD_NS SECS%s%s\n", name, extra ? " " : "", extra ? extra : "");
        exit(2);
    }
    R.n = atoi(argv[1]);
    R.p = strtoull(argv[2], 0, 10);
    double secs = atof(argv[3]);
    if (R.n <= 0 || R.p == 0 || secs <= 0) fail("arguments", "N, PERIOD_NS and SECS must be positive");
    R.cap = (size_t)(R.n * (secs * 1e9 / (double)R.p + 2)) + 1024;
    R.lat = malloc(R.cap * sizeof *R.lat);
    R.next = malloc((size_t)R.n * sizeof *R.next);
    R.folded = calloc((size_t)R.n, sizeof *R.folded);
    R.last = calloc((size_t)R.n, sizeof *R.last);
    if (!R.lat || !R.next || !R.folded || !R.last) fail("malloc", strerror(ENOMEM));
    R.t0 = now_ns() + 10000000ull; /* start in 10 ms */
    R.end = R.t0 + (uint64_t)(secs * 1e9);
    for (int i = 0; i < R.n; i++) R.next[i] = R.t0 + (uint64_t)i * R.p / (uint64_t)R.n;
    R.cpu0 = cpu_ns();
}

static inline void record(uint64_t now, uint64_t deadline) {
    if (R.len < R.cap) R.lat[R.len++] = now - deadline;
}

/* A callback runs now, for `deadline`. */
static inline void deliver(uint64_t deadline) {
    uint64_t now = now_ns();
    if (now < deadline)
        R.early++;
    else
        record(now, deadline);
}

/* Timer i's callback runs now, for a deadline the loop does not say. */
static inline uint64_t expire(int i) {
    uint64_t now = now_ns();
    if (now < R.next[i] && R.folded[i]) { /* a tick folded past, delivered after all */
        R.folded[i]--;
        R.next[i] -= R.p;
        if (R.last[i] < R.len) R.lat[R.last[i]] += R.p;
    }
    uint64_t d = R.next[i];
    if (now < d) {
        R.early++;
        return d;
    }
    uint64_t k = (now - d) / R.p; /* missed ticks fold into the newest */
    d += k * R.p;
    R.folded[i] += k;
    R.last[i] = R.len;
    record(now, d);
    return R.next[i] = d + R.p;
}

static inline int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static inline int finish(void) {
    uint64_t cpu = cpu_ns() - R.cpu0;
    size_t len = R.len;
    qsort(R.lat, len, sizeof *R.lat, cmp);
#define Q(x) (len ? R.lat[(size_t)(len * (x)) < len ? (size_t)(len * (x)) : len - 1] : 0)
    printf("%zu %llu %llu %llu %llu %llu\n", len, (unsigned long long)Q(0.5), (unsigned long long)Q(0.99),
           (unsigned long long)Q(0.999), (unsigned long long)(len ? R.lat[len - 1] : 0),
           (unsigned long long)(len ? cpu / len : 0));
#undef Q
    if (R.early)
        fprintf(stderr, "%s: %llu callbacks ran before their deadline (not counted)\n", R.name,
                (unsigned long long)R.early);
    return 0;
}
