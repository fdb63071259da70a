/* The floor under an SSE heartbeat: the same kernel work as the demo
 * server's /stream/fixed, in plain C with nothing else. sse-load compiles and
 * runs it beside the demo server and reports the server's CPU per heartbeat
 * as a ratio to this.
 *
 *   gcc -O2 -o /tmp/sse-floor scripts/sse-floor.c
 *   /tmp/sse-floor dedicated 100    # one timerfd per stream, period in ms
 *   /tmp/sse-floor shared 100       # one timerfd for all streams
 *
 * It listens on 127.0.0.1 (an ephemeral port, printed on stdout the way the
 * demo server prints it), and answers every connection, whatever it asks,
 * with the demo server's SSE response head and then a heartbeat every
 * period, formatted as the demo server formats it (about 70 bytes). The
 * kernel work per heartbeat is the demo server's:
 *
 *   dedicated: a timerfd per stream, armed on the same grid (first expiry
 *              the next multiple of the period on CLOCK_MONOTONIC), in the
 *              epoll set; each expiry is one epoll event, one read(), one
 *              send(MSG_NOSIGNAL) on a TCP_NODELAY socket;
 *   shared:    one periodic timerfd on that grid; each expiry is one epoll
 *              event and one read(), then one send per stream.
 *
 * Client sockets stay in the epoll set for EPOLLIN|EPOLLRDHUP, as the demo
 * server's do, and a stream whose peer closes is dropped. No heap, no
 * bookkeeping beyond an array indexed by fd: the cost left is the kernel's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 65536
#define TAG_LISTEN (1ull << 62)
#define TAG_TIMER (1ull << 61)
#define TAG_SHARED (1ull << 60)

static const char HEAD[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    "Connection: close\r\nAccess-Control-Allow-Origin: *\r\n\r\n"
    "retry: 2000\nevent: hello\ndata: {\"route\":\"fixed\",\"interval_ms\":0,"
    "\"timer_mode\":\"floor\",\"resumed_from\":null}\n\n";

struct stream {
    int open;    /* 1 once the request was answered */
    int tfd;     /* dedicated mode: the stream's timerfd, else -1 */
    uint64_t seq;
};

static struct stream streams[MAX_FD]; /* indexed by socket fd */
static int live[MAX_FD];              /* shared mode: open stream fds, packed */
static int nlive;
static int ep, shared_mode, shared_tfd = -1;
static uint64_t period_ns;

static struct itimerspec on_grid(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t t = (uint64_t)now.tv_sec * 1000000000ull + now.tv_nsec;
    uint64_t first = (t / period_ns + 1) * period_ns;
    struct itimerspec its = {
        .it_interval = {period_ns / 1000000000ull, period_ns % 1000000000ull},
        .it_value = {first / 1000000000ull, first % 1000000000ull},
    };
    return its;
}

static void heartbeat(int fd, uint64_t ticks) {
    char buf[160];
    uint64_t seq = ++streams[fd].seq;
    int n = snprintf(buf, sizeof buf,
                     "id: %llu\ndata: {\"seq\":%llu,\"route\":\"fixed\",\"expirations\":%llu,\"missed\":%llu}\n\n",
                     (unsigned long long)seq, (unsigned long long)seq, (unsigned long long)ticks,
                     (unsigned long long)(ticks - 1));
    send(fd, buf, n, MSG_NOSIGNAL); /* a full socket drops the beat: never here */
}

static void drop_stream(int fd) {
    if (streams[fd].tfd >= 0) close(streams[fd].tfd); /* also leaves the epoll set */
    if (shared_mode && streams[fd].open)
        for (int i = 0; i < nlive; i++)
            if (live[i] == fd) {
                live[i] = live[--nlive];
                break;
            }
    streams[fd] = (struct stream){0, -1, 0};
    close(fd);
}

static void start_stream(int fd) {
    char req[4096];
    ssize_t r = read(fd, req, sizeof req);
    if (r == 0 || (r < 0 && errno != EAGAIN)) return drop_stream(fd);
    if (r < 0 || streams[fd].open) return; /* nothing yet, or a client talking on */
    send(fd, HEAD, sizeof HEAD - 1, MSG_NOSIGNAL);
    streams[fd].open = 1;
    if (shared_mode) {
        live[nlive++] = fd;
        return;
    }
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = on_grid();
    timerfd_settime(t, TFD_TIMER_ABSTIME, &its, 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_TIMER | (uint64_t)fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, t, &ev);
    streams[fd].tfd = t;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "dedicated") && strcmp(argv[1], "shared")))
        return fprintf(stderr, "usage: sse-floor dedicated|shared PERIOD_MS\n"), 2;
    shared_mode = !strcmp(argv[1], "shared");
    period_ns = strtoull(argv[2], 0, 10) * 1000000ull;
    for (int i = 0; i < MAX_FD; i++) streams[i].tfd = -1;

    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t alen = sizeof a;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (void *)&a, sizeof a) || listen(l, 4096) || getsockname(l, (void *)&a, &alen))
        return perror("listen"), 1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    if (shared_mode) {
        shared_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct itimerspec its = on_grid();
        timerfd_settime(shared_tfd, TFD_TIMER_ABSTIME, &its, 0);
        ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = TAG_SHARED};
        epoll_ctl(ep, EPOLL_CTL_ADD, shared_tfd, &ev);
    }
    printf("demo-server listening on http://127.0.0.1:%d/\n", ntohs(a.sin_port));
    fflush(stdout);

    static struct epoll_event evs[1024];
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, -1);
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;
            uint64_t ticks;
            if (d == TAG_LISTEN) {
                int c;
                while ((c = accept4(l, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (c >= MAX_FD) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    ev = (struct epoll_event){.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
            } else if (d == TAG_SHARED) {
                if (read(shared_tfd, &ticks, 8) == 8)
                    for (int k = 0; k < nlive; k++) heartbeat(live[k], ticks);
            } else if (d & TAG_TIMER) {
                int fd = (int)(d & 0xffffffff);
                if (read(streams[fd].tfd, &ticks, 8) == 8) heartbeat(fd, ticks);
            } else {
                int fd = (int)d;
                if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) drop_stream(fd);
                else start_stream(fd);
            }
        }
    }
}
