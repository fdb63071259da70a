/* libev: N repeating ev_timers on the default loop (epoll backend), timer i
 * started with `after` = its first deadline and `repeat` = the period.
 *
 *   gcc -O2 -o /tmp/lateness-libev benches/c/libev.c -lev
 *   /tmp/lateness-libev N PERIOD_NS SECS
 *
 * Why ev_timer and not ev_periodic: "every P, with this phase" on a
 * monotonic clock is what ev_timer is for, and what a user writes. A
 * repeating ev_timer keeps its grid by itself: each expiry adds `repeat` to
 * the deadline it fired for, not to the time it ran; only a timer that fell
 * a whole period behind restarts from the time it ran (and fires again at
 * once). ev_periodic (offset + k * interval) would give the same grid, but
 * on the wall clock (CLOCK_REALTIME): it moves when the clock is set, and
 * its deadlines would have to be translated from the CLOCK_MONOTONIC ones
 * lateness is measured against.
 *
 * Kernel work: none per timer. libev keeps the deadlines in a heap and
 * sleeps in epoll_wait until the earliest, with a timeout in milliseconds
 * rounded up, and at least 1 ms (the epoll backend's minimum) unless a
 * timer is already due; plus the thread's timer slack. A wake-up serves
 * every timer due by then. With timers less than 1 ms apart, the loop
 * wakes every 1 ms and a bit, so a 1 ms timer slowly falls behind, until
 * it restarts. Per wake-up: one epoll_wait and a clock read; per expiry,
 * only the callback.
 */
#define _GNU_SOURCE
#include <ev.h>

#include "lateness.h"

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)loop, (void)revents;
    expire((int)(intptr_t)w->data);
}

static void on_end(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)w, (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv) {
    start(argc, argv, "lateness-libev", 0);
    struct ev_loop *loop = ev_default_loop(0);
    if (!loop) fail("ev_default_loop", "no usable backend");
    ev_timer *w = malloc((size_t)(R.n + 1) * sizeof *w);
    if (!w) fail("malloc", strerror(ENOMEM));
    /* An ev_timer's deadline is libev's cached monotonic time plus `after`.
     * Our clock is read before libev's, so each deadline lands at or (by
     * the nanoseconds between the two reads) after the exact one. */
    uint64_t before = now_ns();
    ev_now_update(loop);
    for (int i = 0; i <= R.n; i++) {
        uint64_t at = i < R.n ? R.next[i] : R.end;
        ev_timer_init(&w[i], i < R.n ? on_timer : on_end, (double)(at - before) / 1e9,
                      i < R.n ? (double)R.p / 1e9 : 0.);
        w[i].data = (void *)(intptr_t)i;
        ev_timer_start(loop, &w[i]);
    }
    ev_run(loop, 0);
    return finish();
}
