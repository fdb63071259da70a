/* The floor under a heartbeat: CPU time of one 70-byte send() on a loopback
 * TCP connection, as the demo server sends it (TCP_NODELAY, MSG_NOSIGNAL).
 * On loopback the sender's CPU also pays for the receiver's TCP input.
 *
 *   gcc -O2 -o /tmp/send-floor scripts/send-floor.c && /tmp/send-floor
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    enum { K = 2000, ROUNDS = 20 };
    static int c[K], s[K];
    static char buf[65536];
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t n = sizeof a;
    if (bind(l, (void *)&a, sizeof a) || listen(l, K) || getsockname(l, (void *)&a, &n)) return perror("listen"), 1;
    for (int i = 0; i < K; i++) {
        int one = 1;
        c[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c[i], (void *)&a, sizeof a)) return perror("connect"), 1;
        s[i] = accept(l, 0, 0);
        setsockopt(s[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    char msg[70];
    memset(msg, 'x', sizeof msg);
    double spent = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = cpu();
        for (int i = 0; i < K; i++) send(s[i], msg, sizeof msg, MSG_NOSIGNAL);
        spent += cpu() - t0;
        for (int i = 0; i < K; i++) recv(c[i], buf, sizeof buf, MSG_DONTWAIT); /* drain, not timed */
    }
    printf("70-byte send on loopback TCP: %.2f us of CPU each (%d sends)\n", spent / (K * ROUNDS) * 1e6, K * ROUNDS);
    return 0;
}
