/* libuv: N uv_timer_t on one loop, started with
 * uv_timer_start(t, cb, first_ms, period_ms).
 *
 *   gcc -O2 -o /tmp/lateness-libuv benches/c/libuv.c -luv
 *   /tmp/lateness-libuv N PERIOD_NS SECS
 *
 * libuv counts time in whole milliseconds of its loop clock, uv_now(), which
 * is CLOCK_MONOTONIC_COARSE when that clock ticks at least every 1 ms, else
 * CLOCK_MONOTONIC, and is read once per loop iteration. So PERIOD_NS must be
 * whole milliseconds, and a first deadline is rounded up to the next one
 * (never early; lateness is still measured against the exact nanosecond
 * deadline). A repeating timer is re-armed at the loop time when it runs
 * plus the period, not at its previous deadline plus the period: an expiry
 * run a millisecond late moves every later one by a millisecond. Those
 * count as late against the exact schedule (lateness.h folds whole missed
 * periods).
 *
 * Kernel work: none per timer. libuv keeps the deadlines in a heap and
 * sleeps in epoll_wait until the earliest, with a timeout in whole
 * milliseconds of its loop clock, plus the thread's timer slack; one
 * wake-up serves every timer due by then. Per wake-up: one epoll_wait and a
 * clock read; per expiry, only the callback.
 */
#define _GNU_SOURCE
#include <uv.h>

#include "lateness.h"

static void check(int r, const char *call) {
    if (r < 0) fail(call, uv_strerror(r));
}

static void on_timer(uv_timer_t *t) { expire((int)(intptr_t)t->data); }

static void on_end(uv_timer_t *t) { uv_stop(t->loop); }

int main(int argc, char **argv) {
    start(argc, argv, "lateness-libuv", 0);
    if (R.p % 1000000) fail("arguments", "libuv's timers count whole milliseconds: PERIOD_NS must be a multiple of 1000000");
    uv_loop_t loop;
    check(uv_loop_init(&loop), "uv_loop_init");
    uv_timer_t *t = malloc((size_t)(R.n + 1) * sizeof *t);
    if (!t) fail("malloc", strerror(ENOMEM));
    uv_update_time(&loop);
    uint64_t now_ms = uv_now(&loop);
    for (int i = 0; i <= R.n; i++) {
        uint64_t at_ms = ((i < R.n ? R.next[i] : R.end) + 999999) / 1000000;
        check(uv_timer_init(&loop, &t[i]), "uv_timer_init");
        t[i].data = (void *)(intptr_t)i;
        check(uv_timer_start(&t[i], i < R.n ? on_timer : on_end, at_ms - now_ms, i < R.n ? R.p / 1000000 : 0),
              "uv_timer_start");
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    return finish();
}
