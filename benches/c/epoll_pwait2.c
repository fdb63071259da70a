/* No timerfd: the N deadlines in user space and epoll_pwait2 on an empty
 * epoll set, with a nanosecond timeout until the earliest. Each wake-up
 * takes every due deadline (a scan, as scripts/lateness-floor.c's `one`
 * mode does) and sleeps again.
 *
 *   gcc -O2 -o /tmp/lateness-epoll_pwait2 benches/c/epoll_pwait2.c
 *   /tmp/lateness-epoll_pwait2 N PERIOD_NS SECS
 *
 * Kernel work: per wake-up, one epoll_pwait2, whose timeout is an hrtimer
 * armed for the sleep; no fd read, no re-arm call. Per expiry, nothing.
 *
 * Timer slack: unlike a timerfd's, this hrtimer gets the thread's timer
 * slack (50 us by default, set with prctl(PR_SET_TIMERSLACK); or 0.1% of
 * the timeout when that is more; none for realtime threads). The kernel may
 * fire it anywhere from the deadline to the deadline plus the slack, to
 * batch it with other timers, and on an idle CPU it fires at the end: these
 * wake-ups are that much later than a timerfd's.
 */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lateness.h"

static int pwait2(int ep, struct epoll_event *ev, const struct timespec *timeout) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    return epoll_pwait2(ep, ev, 1, timeout, 0);
#else /* no wrapper before glibc 2.35 */
    return (int)syscall(SYS_epoll_pwait2, ep, ev, 1, timeout, (void *)0, (size_t)8);
#endif
}

int main(int argc, char **argv) {
    start(argc, argv, "lateness-epoll_pwait2", 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fail("epoll_create1", strerror(errno));
    for (;;) {
        uint64_t seen = now_ns(), earliest = R.end;
        if (seen >= R.end) break;
        for (int i = 0; i < R.n; i++) {
            if (R.next[i] <= seen) expire(i);
            if (R.next[i] < earliest) earliest = R.next[i];
        }
        uint64_t t = now_ns();
        if (earliest <= t) continue;
        struct timespec timeout = {(time_t)((earliest - t) / 1000000000ull), (long)((earliest - t) % 1000000000ull)};
        struct epoll_event ev;
        if (pwait2(ep, &ev, &timeout) < 0 && errno != EINTR) fail("epoll_pwait2", strerror(errno));
    }
    return finish();
}
