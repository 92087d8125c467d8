/* ksload: HTTP/1.0 GETs, each on a new TCP connection bound to the next of many source
 * addresses, for bench/boot_storm.py. wrk keeps connections alive from one address, and a
 * Python client costs about 1.5x this one's CPU per request, taken from the server's cores.
 *
 *   ksload -p PORT -a ADDRS [-d 127.0.0.1] [-u PATH] [-H HOST] [-c CONNS | -r RATE]
 *          [-n MAX_REQUESTS] [-t MAX_SECONDS] [-T TIMEOUT] [-D] [-L LOG]
 *
 * ADDRS: a file of IPv4 source addresses, one a line, used round-robin. Closed loop: CONNS
 * requests in flight at any time. Open loop (-r): a new request every 1/RATE s whatever is in
 * flight. It stops after MAX_REQUESTS or MAX_SECONDS, whichever comes first, or on SIGINT or
 * SIGTERM; requests then in flight are counted as unfinished, unless -D (drain): then it waits
 * for them to finish or time out, as a probe must (a request asked is a request to judge). It
 * prints one JSON object:
 * counts by status, errors by kind, latency percentiles over every finished request (errors
 * and timeouts included, at the time they failed), body sizes of the 200s, its own CPU time.
 * With -L, it also writes every finished request to LOG as "start latency status" (seconds from
 * its own start; status 0 for an error), to see when in a run the slow ones were.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { CONNECTING, SENDING, READING };
enum { E_CONNECT, E_RESET, E_TIMEOUT, E_NORESPONSE, E_SOCKET, E_KINDS };
static const char *error_names[E_KINDS] = {"connect", "reset", "timeout", "no_response",
                                           "socket"};

struct conn {
    int fd;
    int state;
    int active;
    double start;
    size_t sent;
    size_t received;
    char head[16];
    size_t head_len;
    size_t body_at; /* offset of the body, 0 until the header's end is seen */
    int crlf;       /* progress through "\r\n\r\n" */
};

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void) {
    fprintf(stderr, "usage: ksload -p PORT -a ADDRS [-d DEST] [-u PATH] [-H HOST] "
                    "[-c CONNS | -r RATE] [-n MAX] [-t SECONDS] [-T TIMEOUT] [-D] [-L LOG]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *dest = "127.0.0.1", *path = "/install/sbin/kickstart.cgi", *host = "fe";
    const char *addr_file = NULL, *log_file = NULL;
    int port = 0, conns = 64, drain = 0;
    double rate = 0, max_seconds = 30, timeout = 10;
    long max_requests = 100000;
    int opt;
    while ((opt = getopt(argc, argv, "p:a:d:u:H:c:r:n:t:T:DL:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'a': addr_file = optarg; break;
        case 'd': dest = optarg; break;
        case 'u': path = optarg; break;
        case 'H': host = optarg; break;
        case 'c': conns = atoi(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'n': max_requests = atol(optarg); break;
        case 't': max_seconds = atof(optarg); break;
        case 'T': timeout = atof(optarg); break;
        case 'D': drain = 1; break;
        case 'L': log_file = optarg; break;
        default: usage();
        }
    }
    if (!port || !addr_file || conns < 1 || max_requests < 1 || max_requests > 20000000)
        usage();

    FILE *fh = fopen(addr_file, "r");
    if (!fh) { perror(addr_file); return 2; }
    size_t naddrs = 0, cap = 1024;
    struct in_addr *addrs = malloc(cap * sizeof *addrs);
    char line[64];
    while (fgets(line, sizeof line, fh)) {
        line[strcspn(line, " \r\n")] = 0;
        if (!line[0]) continue;
        if (naddrs == cap) addrs = realloc(addrs, (cap *= 2) * sizeof *addrs);
        if (inet_pton(AF_INET, line, &addrs[naddrs]) != 1) {
            fprintf(stderr, "bad address: %s\n", line);
            return 2;
        }
        naddrs++;
    }
    fclose(fh);
    if (!naddrs) { fprintf(stderr, "no addresses in %s\n", addr_file); return 2; }

    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, dest, &to.sin_addr) != 1) usage();
    char request[1024];
    int request_len = snprintf(request, sizeof request,
                               "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: ksload\r\n\r\n", path,
                               host);

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Open loop: in flight is bounded only by what the descriptors allow. */
    int slots = rate > 0 ? 20000 : conns;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if ((rlim_t)slots + 16 > rl.rlim_cur) slots = (int)rl.rlim_cur - 16;
    }
    struct conn *pool = calloc((size_t)slots, sizeof *pool);
    int *free_slots = malloc((size_t)slots * sizeof *free_slots);
    int nfree = slots;
    for (int i = 0; i < slots; i++) free_slots[i] = slots - 1 - i;
    double *lat = malloc((size_t)max_requests * sizeof *lat);
    /* For -L only: when each finished request started, and its status. */
    double *began = log_file ? malloc((size_t)max_requests * sizeof *began) : NULL;
    short *code = log_file ? malloc((size_t)max_requests * sizeof *code) : NULL;
#define FINISH(c, t, status)                                                                     \
    do {                                                                                         \
        if (began) {                                                                             \
            began[finished] = (c)->start - t0;                                                   \
            code[finished] = (short)(status);                                                    \
        }                                                                                        \
        lat[finished++] = (t) - (c)->start;                                                      \
    } while (0)
    long statuses[600] = {0};
    long errors[E_KINDS] = {0};
    long issued = 0, finished = 0, inflight = 0, body_min = -1, body_max = -1;
    static char buf[1 << 16];

    int ep = epoll_create1(0);
    struct epoll_event events[512];
    double t0 = now(), last_sweep = t0, elapsed = 0;

    for (;;) {
        double t = now();
        int time_up = stopping || t - t0 >= max_seconds;
        if (time_up && !elapsed) elapsed = t - t0;
        if (inflight == 0 && (time_up || issued >= max_requests)) break;
        if (time_up && (!drain || t - t0 > elapsed + timeout + 1)) break;
        /* Launch what is due. */
        while (issued < max_requests && nfree > 0 && !time_up) {
            if (rate > 0) {
                if (t0 + (double)issued / rate > t) break;
            } else if (inflight >= conns) {
                break;
            }
            int s = free_slots[--nfree];
            struct conn *c = &pool[s];
            memset(c, 0, sizeof *c);
            c->start = now();
            c->active = 1;
            struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr = addrs[issued % naddrs]};
            issued++;
            inflight++;
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            int one = 1;
            int ok = c->fd >= 0;
            if (ok) {
                setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
                setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                ok = bind(c->fd, (struct sockaddr *)&from, sizeof from) == 0;
            }
            if (ok) {
                ok = connect(c->fd, (struct sockaddr *)&to, sizeof to) == 0 ||
                     errno == EINPROGRESS;
            }
            if (ok) {
                struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)s};
                ok = epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == 0;
            }
            if (!ok) {
                if (c->fd >= 0) close(c->fd);
                errors[c->fd >= 0 ? E_CONNECT : E_SOCKET]++;
                FINISH(c, now(), 0);
                c->active = 0;
                free_slots[nfree++] = s;
                inflight--;
            }
        }
        int wait_ms = 50;
        if (rate > 0 && issued < max_requests) {
            double due = t0 + (double)issued / rate - now();
            wait_ms = due <= 0 ? 0 : (int)(due * 1000) + 1;
            if (wait_ms > 50) wait_ms = 50;
        }
        int n = epoll_wait(ep, events, 512, wait_ms);
        for (int i = 0; i < n; i++) {
            int s = (int)events[i].data.u32;
            struct conn *c = &pool[s];
            if (!c->active) continue;
            int kind = -1, done = 0;
            if (c->state == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    kind = E_CONNECT;
                } else {
                    c->state = SENDING;
                }
            }
            if (kind < 0 && c->state == SENDING) {
                ssize_t w = send(c->fd, request + c->sent, (size_t)request_len - c->sent,
                                 MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN) {
                    kind = E_RESET;
                } else if (w > 0 && (c->sent += (size_t)w) == (size_t)request_len) {
                    c->state = READING;
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)s};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            } else if (kind < 0 && c->state == READING) {
                for (;;) {
                    ssize_t r = recv(c->fd, buf, sizeof buf, 0);
                    if (r > 0) {
                        for (ssize_t k = 0; k < r && !c->body_at; k++) {
                            char ch = buf[k];
                            if (c->head_len < sizeof c->head - 1) c->head[c->head_len++] = ch;
                            int want = (c->crlf % 2 == 0) ? '\r' : '\n';
                            c->crlf = ch == want ? c->crlf + 1 : (ch == '\r' ? 1 : 0);
                            if (c->crlf == 4) c->body_at = c->received + (size_t)k + 1;
                        }
                        c->received += (size_t)r;
                        continue;
                    }
                    if (r == 0) {
                        done = 1;
                    } else if (errno != EAGAIN) {
                        kind = E_RESET;
                    }
                    break;
                }
            }
            if (kind >= 0 || done) {
                int status = 0;
                if (done && c->head_len >= 12 && memcmp(c->head, "HTTP/", 5) == 0)
                    status = atoi(c->head + 9);
                if (done && (status < 100 || status > 599)) kind = E_NORESPONSE;
                if (kind >= 0) {
                    errors[kind]++;
                } else {
                    statuses[status]++;
                    if (status == 200) {
                        long body = c->body_at ? (long)(c->received - c->body_at) : 0;
                        if (body_min < 0 || body < body_min) body_min = body;
                        if (body > body_max) body_max = body;
                    }
                }
                FINISH(c, now(), kind >= 0 ? 0 : status);
                close(c->fd);
                c->active = 0;
                free_slots[nfree++] = s;
                inflight--;
            }
        }
        t = now();
        if (t - last_sweep > 0.1) {
            last_sweep = t;
            for (int s = 0; s < slots; s++) {
                struct conn *c = &pool[s];
                if (c->active && t - c->start > timeout) {
                    errors[E_TIMEOUT]++;
                    FINISH(c, t, 0);
                    close(c->fd);
                    c->active = 0;
                    free_slots[nfree++] = s;
                    inflight--;
                }
            }
        }
    }
    if (!elapsed) elapsed = now() - t0;
    for (int s = 0; s < slots; s++)
        if (pool[s].active) close(pool[s].fd);

    if (log_file) {
        FILE *out = fopen(log_file, "w");
        if (!out) { perror(log_file); return 2; }
        for (long k = 0; k < finished; k++)
            fprintf(out, "%.4f %.5f %d\n", began[k], lat[k], code[k]);
        fclose(out);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    qsort(lat, (size_t)finished, sizeof *lat, cmp_double);
#define PCT(p) (finished ? lat[(long)((double)(finished - 1) * (p))] * 1000 : 0.0)
    long ok = 0;
    for (int k = 200; k < 300; k++) ok += statuses[k];
    printf("{\"issued\": %ld, \"finished\": %ld, \"unfinished\": %ld, \"ok\": %ld, ", issued,
           finished, inflight, ok);
    printf("\"statuses\": {");
    const char *sep = "";
    for (int k = 0; k < 600; k++) {
        if (statuses[k]) {
            printf("%s\"%d\": %ld", sep, k, statuses[k]);
            sep = ", ";
        }
    }
    printf("}, \"errors\": {");
    for (int k = 0; k < E_KINDS; k++)
        printf("%s\"%s\": %ld", k ? ", " : "", error_names[k], errors[k]);
    printf("}, \"elapsed\": %.4f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"max_ms\": %.3f, \"body_min\": %ld, \"body_max\": %ld, \"cpu_user\": %.3f, "
           "\"cpu_system\": %.3f, \"addresses\": %zu}\n",
           elapsed, PCT(0.5), PCT(0.9), PCT(0.99), finished ? lat[finished - 1] * 1000 : 0.0,
           body_min, body_max, (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, naddrs);
    return 0;
}
