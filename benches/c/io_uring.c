/* io_uring (liburing): one absolute IORING_OP_TIMEOUT per timer
 * (IORING_TIMEOUT_ABS, on CLOCK_MONOTONIC, io_uring's default clock),
 * submitted again at the timer's next deadline each time it completes.
 *
 *   gcc -O2 -o /tmp/lateness-io_uring benches/c/io_uring.c -luring
 *   /tmp/lateness-io_uring N PERIOD_NS SECS
 *
 * Kernel work: an hrtimer per pending timeout, as a timerfd per timer has.
 * Its expiry posts a completion (through task work run by the waiting
 * thread) instead of making an fd readable. Per wake-up: one io_uring_enter
 * (io_uring_submit_and_wait) that submits the re-armed timeouts and waits
 * for the next completion; per expiry, a completion read from the shared
 * ring and an SQE written to it, no syscall of its own.
 */
#define _GNU_SOURCE
#include <liburing.h>

#include "lateness.h"

static struct io_uring ring;
static struct __kernel_timespec *ts; /* per timeout, read by the kernel at submission */

/* Queue timeout `i` (a timer, or the end of the run for i == N) at `at`. */
static void arm(int i, uint64_t at) {
    ts[i].tv_sec = (long long)(at / 1000000000ull);
    ts[i].tv_nsec = (long long)(at % 1000000000ull);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) { /* the submission queue is full: hand it to the kernel */
        int r = io_uring_submit(&ring);
        if (r < 0) fail("io_uring_submit", strerror(-r));
        if (!(sqe = io_uring_get_sqe(&ring))) fail("io_uring_get_sqe", "no room after a submit");
    }
    io_uring_prep_timeout(sqe, &ts[i], 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data(sqe, (void *)(intptr_t)i);
}

int main(int argc, char **argv) {
    start(argc, argv, "lateness-io_uring", 0);
    unsigned entries = R.n < 4095 ? (unsigned)R.n + 1 : 4096;
    int r = io_uring_queue_init(entries, &ring, 0);
    if (r < 0) fail("io_uring_queue_init", strerror(-r));
    ts = malloc((size_t)(R.n + 1) * sizeof *ts);
    if (!ts) fail("malloc", strerror(ENOMEM));
    for (int i = 0; i < R.n; i++) arm(i, R.next[i]);
    arm(R.n, R.end);
    for (int done = 0; !done;) {
        r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR) fail("io_uring_submit_and_wait", strerror(-r));
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            int i = (int)(intptr_t)io_uring_cqe_get_data(cqe);
            if (cqe->res != -ETIME) fail("IORING_OP_TIMEOUT", strerror(-cqe->res));
            if (i == R.n)
                done = 1;
            else
                arm(i, expire(i));
        }
        io_uring_cq_advance(&ring, seen);
    }
    return finish();
}
