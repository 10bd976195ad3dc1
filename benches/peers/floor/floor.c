/*
 * floor.c: the least a single-threaded epoll HTTP responder can do on this kernel.
 *
 * Not a server anyone should run: it answers every request with 200 "Hello, World!", never
 * parses more than the "\r\n\r\n" that ends a header block, ignores bodies, and has no graceful
 * shutdown (SIGTERM kills it). It exists so benches/compare.sh can show the floor of server CPU
 * per request, so every choice here is the cheapest one:
 *   - edge-triggered epoll, each connection registered once for IN|OUT|RDHUP and never modified
 *     (level-triggered epoll re-polls every ready socket on the next epoll_wait);
 *   - one read per wake-up when it comes back short of the buffer (a short read on a TCP socket
 *     means the receive queue is empty; the next segment raises a new edge), so no EAGAIN read;
 *   - every pipelined request already in the buffer answered by one write;
 *   - a Date header refreshed once per second, not per request; no allocation after start
 *     unless a write comes up short (then a heap copy of the unsent bytes until EPOLLOUT).
 * Per connection it keeps one byte of parser state plus that pending-output pointer.
 *
 * Build: gcc -O2 -o floor floor.c      Run: floor [PORT]   (or PORT env; default 8080)
 * Address from ADDR (default 127.0.0.1).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536
#define READ_BUF (64 * 1024)
#define MAX_EVENTS 256

static const char BODY[] = "Hello, World!";
static char resp[256]; /* one full response, Date refreshed once per second */
static size_t resp_len;
static time_t resp_sec;

static unsigned char matched[MAX_FDS]; /* bytes of "\r\n\r\n" matched so far, per fd */
static char *pending[MAX_FDS];         /* unsent output after a short write, per fd */
static size_t pending_len[MAX_FDS];

static void refresh_date(void) {
    time_t now = time(NULL);
    if (now == resp_sec) return;
    resp_sec = now;
    struct tm tm;
    gmtime_r(&now, &tm);
    char date[64];
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    resp_len = (size_t)snprintf(resp, sizeof resp,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nDate: %s\r\n\r\n%s",
        sizeof BODY - 1, date, BODY);
}

static void close_conn(int fd) {
    close(fd); /* also removes it from the epoll set */
    matched[fd] = 0;
    free(pending[fd]);
    pending[fd] = NULL;
    pending_len[fd] = 0;
}

/* Writes buf after any pending bytes; keeps what the socket does not take. -1 on error. */
static int send_out(int fd, const char *buf, size_t len) {
    if (pending[fd]) { /* still flushing earlier output: append, keep order */
        char *grown = realloc(pending[fd], pending_len[fd] + len);
        if (!grown) return -1;
        memcpy(grown + pending_len[fd], buf, len);
        pending[fd] = grown;
        pending_len[fd] += len;
        return 0;
    }
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n > 0) { buf += n; len -= (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        return -1;
    }
    if (len == 0) return 0;
    pending[fd] = malloc(len);
    if (!pending[fd]) return -1;
    memcpy(pending[fd], buf, len);
    pending_len[fd] = len;
    return 0; /* EPOLLOUT is already registered (edge-triggered) */
}

static int flush_pending(int fd) {
    char *buf = pending[fd];
    size_t len = pending_len[fd], off = 0;
    if (!buf) return 0;
    while (off < len) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n > 0) { off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        return -1;
    }
    if (off == len) {
        free(buf);
        pending[fd] = NULL;
        pending_len[fd] = 0;
    } else if (off > 0) {
        memmove(buf, buf + off, len - off);
        pending_len[fd] = len - off;
    }
    return 0;
}

/* Returns -1 when the connection is done. */
static int on_readable(int fd) {
    static char in[READ_BUF];
    /* Each "\r\n\r\n" (4 bytes) is one response of < 256 bytes, so this always fits; pages
     * never written stay out of RSS. */
    static char out[READ_BUF / 4 * 256];
    for (;;) {
        ssize_t n = read(fd, in, sizeof in);
        if (n == 0) return -1;
        if (n < 0) return (errno == EAGAIN) ? 0 : (errno == EINTR) ? on_readable(fd) : -1;
        size_t reqs = 0;
        unsigned char m = matched[fd];
        for (ssize_t i = 0; i < n; i++) {
            char c = in[i];
            if (c == ((m & 1) ? '\n' : '\r')) {
                if (++m == 4) { reqs++; m = 0; }
            } else {
                m = (c == '\r');
            }
        }
        matched[fd] = m;
        if (reqs > 0) {
            size_t len = 0;
            for (size_t i = 0; i < reqs; i++) { memcpy(out + len, resp, resp_len); len += resp_len; }
            if (send_out(fd, out, len) < 0) return -1;
        }
        if ((size_t)n < sizeof in) return 0; /* short read: queue drained, wait for the next edge */
    }
}

int main(int argc, char **argv) {
    const char *port = argc > 1 ? argv[1] : getenv("PORT");
    const char *host = getenv("ADDR");
    if (!port) port = "8080";
    if (!host) host = "127.0.0.1";

    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) { perror("socket"); return 2; }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port)) };
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) { fprintf(stderr, "bad ADDR\n"); return 2; }
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); return 2; }
    if (listen(lfd, 1024) < 0) { perror("listen"); return 2; }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    fprintf(stderr, "floor listening on %s:%s\n", host, port);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
        refresh_date();
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            uint32_t e = events[i].events;
            if (fd == lfd) {
                for (;;) { /* accept until EAGAIN */
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    if (c >= MAX_FDS) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {
                        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            if ((e & EPOLLOUT) && flush_pending(fd) < 0) { close_conn(fd); continue; }
            if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && on_readable(fd) < 0)
                close_conn(fd);
        }
    }
}
