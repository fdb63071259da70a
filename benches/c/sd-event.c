/* systemd's sd-event: N periodic timers as sd_event_add_time sources on
 * CLOCK_MONOTONIC, each re-armed from its callback at its next deadline
 * (sd_event_source_set_time; the sources are SD_EVENT_ON, so they stay
 * enabled), with the accuracy given in microseconds.
 *
 *   gcc -O2 -o /tmp/lateness-sd-event benches/c/sd-event.c -lsystemd
 *   /tmp/lateness-sd-event N PERIOD_NS SECS ACCURACY_US
 *
 * Kernel work: sd-event keeps the deadlines in a priority queue and one
 * timerfd per clock, armed absolute at a wake-up between the earliest
 * deadline and the earliest deadline + accuracy of any source: the earliest
 * deadline itself for an accuracy of 1 us; for a wider one, a spot that
 * recurs every minute, 10 s, 1 s or 250 ms (the same for every loop on the
 * machine) if one fits, else the latest time allowed, so that one wake-up
 * serves every timer due by then. Per wake-up: epoll_wait, a read of the
 * timerfd. Per expiry: one sd_event_run iteration, which dispatches ONE
 * source (a zero-timeout epoll_wait when more are pending) and re-arms the
 * timerfd (timerfd_settime) whenever the earliest wake-up moved: at 10
 * timers x 1 ms and 1 us, strace counts about one epoll_wait, 0.95
 * timerfd_settime and 0.9 read per expiry.
 *
 * sd-event times are whole microseconds: a deadline is rounded up to the
 * next microsecond, so a timer never fires before its exact deadline, and
 * lateness is measured against the exact nanosecond deadline (lateness.h).
 * Re-armed at "usec + period", a timer that fell behind is not skipped
 * ahead: sd-event delivers every missed tick, each late by its own deadline.
 */
#define _GNU_SOURCE
#include <systemd/sd-event.h>

#include "lateness.h"

static uint64_t usec(uint64_t ns) { return (ns + 999) / 1000; }

static void check(int r, const char *call) {
    if (r < 0) fail(call, strerror(-r));
}

static uint64_t *armed; /* per timer: the exact deadline it is armed for (ns) */

/* "usec + period", from the exact deadline rather than sd-event's rounded
 * one; missed ticks are not skipped, sd-event delivers them at once. */
static int on_time(sd_event_source *s, uint64_t at, void *data) {
    (void)at;
    int i = (int)(intptr_t)data;
    deliver(armed[i]);
    armed[i] += R.p;
    check(sd_event_source_set_time(s, usec(armed[i])), "sd_event_source_set_time");
    return 0;
}

static int on_end(sd_event_source *s, uint64_t at, void *data) {
    (void)at, (void)data;
    check(sd_event_exit(sd_event_source_get_event(s), 0), "sd_event_exit");
    return 0;
}

int main(int argc, char **argv) {
    start(argc, argv, "lateness-sd-event", "ACCURACY_US");
    uint64_t accuracy = argc == 5 ? strtoull(argv[4], 0, 10) : 0;
    if (accuracy == 0) fail("arguments", "ACCURACY_US must be positive (0 means sd-event's default, 250 ms)");
    if (!(armed = malloc((size_t)R.n * sizeof *armed))) fail("malloc", strerror(ENOMEM));
    sd_event *e;
    check(sd_event_new(&e), "sd_event_new");
    for (int i = 0; i < R.n; i++) {
        sd_event_source *s;
        armed[i] = R.next[i];
        check(sd_event_add_time(e, &s, CLOCK_MONOTONIC, usec(armed[i]), accuracy, on_time, (void *)(intptr_t)i),
              "sd_event_add_time");
        check(sd_event_source_set_enabled(s, SD_EVENT_ON), "sd_event_source_set_enabled");
    }
    check(sd_event_add_time(e, 0, CLOCK_MONOTONIC, usec(R.end), 1, on_end, 0), "sd_event_add_time");
    check(sd_event_loop(e), "sd_event_loop");
    return finish();
}
