/*
 * floor.c: the least a single-threaded epoll HTTP responder can do on this kernel.
 *
 * Not a server anyone should run: it answers 200 "Hello, World!" to every request except
 * `GET /blob`, never parses more than the request line's first bytes and the "\r\n\r\n" that
 * ends a header block, ignores bodies, and has no graceful shutdown (SIGTERM kills it). It exists
 * so benches/compare.sh can show the floor of server CPU per request, so every choice here is the
 * cheapest one:
 *   - edge-triggered epoll, each connection registered once for IN|OUT|RDHUP and never modified
 *     (level-triggered epoll re-polls every ready socket on the next epoll_wait);
 *   - one read per wake-up when it comes back short of the buffer (a short read on a TCP socket
 *     means the receive queue is empty; the next segment raises a new edge), so no EAGAIN read;
 *   - every pipelined request already in the buffer answered by one write (one writev when a
 *     /blob answer is among them);
 *   - a Date header refreshed once per second, not per request; no allocation after start
 *     unless a write comes up short (then the unsent output is queued until EPOLLOUT: small
 *     answers as a heap copy, /blob bodies as a reference into the one static buffer).
 * Per connection it keeps one byte of parser state, the first LINE_CAP bytes of a request that
 * spans two reads, and that queue of unsent output. Requests are routed from the read buffer
 * once their "\r\n\r\n" is in (a 9-byte compare per request), so the Hello path costs what it
 * cost before /blob existed.
 *
 * `GET /blob` (benches/large.sh, benches/slow_readers.sh) answers the 8 MiB BLOB, where byte i is
 * i % 251, filled once at start and shared by every connection; `GET /blob?bytes=N` (N <= 8 MiB)
 * its first N bytes; another N is answered 400. Bodies are written from BLOB itself (writev of
 * head + body, resumed at an offset after a short write), never copied.
 *
 * Build: gcc -O2 -o floor floor.c      Run: floor [PORT]   (or PORT env; default 8080)
 * Address from ADDR (default 127.0.0.1).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536
#define READ_BUF (64 * 1024)
#define MAX_EVENTS 256
#define BLOB_LEN (8 * 1024 * 1024)
#define LINE_CAP 48          /* request bytes route() looks at: "GET /blob?bytes=8388608" is 23 */
#define MAX_IOV 64           /* iovecs per writev; more answers than this are sent in turns */

static const char BODY[] = "Hello, World!";
static char resp[256]; /* one full response, Date refreshed once per second */
static size_t resp_len;
static time_t resp_sec;
static char date[64];
static char BLOB[BLOB_LEN]; /* byte i is i % 251; one copy for every connection */

static unsigned char matched[MAX_FDS];  /* bytes of "\r\n\r\n" matched so far, per fd */
/* The first bytes of a request that began in an earlier read (route() needs them), per fd. */
static unsigned char line_len[MAX_FDS];
static char line[MAX_FDS][LINE_CAP];

/* Unsent output of one connection, in order: a heap copy of small answers, or a reference into
 * BLOB (a /blob body is never copied). */
struct chunk {
    struct chunk *next;
    const char *ptr;
    size_t len;
    char own[];
};
static struct chunk *queue_head[MAX_FDS], *queue_tail[MAX_FDS];

static void refresh_date(void) {
    time_t now = time(NULL);
    if (now == resp_sec) return;
    resp_sec = now;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    resp_len = (size_t)snprintf(resp, sizeof resp,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nDate: %s\r\n\r\n%s",
        sizeof BODY - 1, date, BODY);
}

static int in_blob(const char *p) { return p >= BLOB && p < BLOB + BLOB_LEN; }

static void close_conn(int fd) {
    close(fd); /* also removes it from the epoll set */
    matched[fd] = 0;
    line_len[fd] = 0;
    while (queue_head[fd]) {
        struct chunk *c = queue_head[fd];
        queue_head[fd] = c->next;
        free(c);
    }
    queue_tail[fd] = NULL;
}

/* Appends bytes to fd's queue: a reference when they lie in BLOB, a copy otherwise. */
static int enqueue(int fd, const char *p, size_t len) {
    int ref = in_blob(p);
    struct chunk *c = malloc(sizeof *c + (ref ? 0 : len));
    if (!c) return -1;
    c->next = NULL;
    c->len = len;
    c->ptr = ref ? p : memcpy(c->own, p, len);
    if (queue_tail[fd]) queue_tail[fd]->next = c; else queue_head[fd] = c;
    queue_tail[fd] = c;
    return 0;
}

/* writev until everything went or the socket is full. Sets each iovec to what is left of it
 * (length 0 once sent) and returns the bytes written, or -1 on error. */
static ssize_t write_all(int fd, struct iovec *iov, int n) {
    size_t done = 0;
    int i = 0;
    while (i < n) {
        ssize_t w = (n - i == 1) ? write(fd, iov[i].iov_base, iov[i].iov_len)
                                 : writev(fd, iov + i, n - i);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            return -1;
        }
        done += (size_t)w;
        for (; i < n && (size_t)w >= iov[i].iov_len; i++) {
            w -= (ssize_t)iov[i].iov_len;
            iov[i].iov_len = 0;
        }
        if (i < n) {
            iov[i].iov_base = (char *)iov[i].iov_base + w;
            iov[i].iov_len -= (size_t)w;
        }
    }
    return (ssize_t)done;
}

/* Sends the answers in iov after anything still queued; queues what the socket does not take
 * (EPOLLOUT is registered, edge-triggered: the rest goes when the socket has room). */
static int send_out(int fd, struct iovec *iov, int n) {
    if (!queue_head[fd] && write_all(fd, iov, n) < 0) return -1;
    for (int i = 0; i < n; i++)
        if (iov[i].iov_len && enqueue(fd, iov[i].iov_base, iov[i].iov_len) < 0) return -1;
    return 0;
}

/* Writes the queue until it is empty or the socket is full. */
static int flush_queue(int fd) {
    while (queue_head[fd]) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        size_t want = 0;
        for (struct chunk *c = queue_head[fd]; c && n < MAX_IOV; c = c->next) {
            iov[n++] = (struct iovec){ .iov_base = (void *)c->ptr, .iov_len = c->len };
            want += c->len;
        }
        ssize_t w = write_all(fd, iov, n);
        if (w < 0) return -1;
        for (size_t left = (size_t)w; left > 0;) { /* free what went; move past a part that went */
            struct chunk *c = queue_head[fd];
            if (left < c->len) { c->ptr += left; c->len -= left; break; }
            left -= c->len;
            queue_head[fd] = c->next;
            free(c);
        }
        if (!queue_head[fd]) queue_tail[fd] = NULL;
        if ((size_t)w < want) break; /* socket full: the next EPOLLOUT edge brings us back */
    }
    return 0;
}

/* The body a request line asks for: BLOB's first *len bytes for /blob, else Hello (returns 0),
 * or -1 for a bad ?bytes=. */
static int route(const char *l, size_t n, size_t *len) {
    static const char blob[] = "GET /blob";
    const size_t b = sizeof blob - 1;
    if (n < b || memcmp(l, blob, b) != 0 || (n > b && l[b] != ' ' && l[b] != '?')) return 0;
    *len = BLOB_LEN;
    if (n > b && l[b] == '?') {
        static const char arg[] = "?bytes=";
        size_t a = sizeof arg - 1, v = 0, digits = 0;
        if (n < b + a || memcmp(l + b, arg, a) != 0) return -1;
        for (size_t i = b + a; i < n && l[i] >= '0' && l[i] <= '9' && v <= BLOB_LEN; i++, digits++)
            v = v * 10 + (size_t)(l[i] - '0');
        if (!digits || v > BLOB_LEN) return -1;
        *len = v;
    }
    return 1;
}

/* Returns -1 when the connection is done. */
static int on_readable(int fd) {
    static char in[READ_BUF];
    /* Each "\r\n\r\n" (4 bytes) is one response (or /blob head) of < 256 bytes, so this always
     * fits; pages never written stay out of RSS. */
    static char out[READ_BUF / 4 * 256];
    for (;;) {
        ssize_t n = read(fd, in, sizeof in);
        if (n == 0) return -1;
        if (n < 0) return (errno == EAGAIN) ? 0 : (errno == EINTR) ? on_readable(fd) : -1;
        struct iovec iov[MAX_IOV];
        int iovs = 0;
        size_t len = 0, mark = 0;  /* out[mark..len) is not yet in iov */
        size_t start = 0;          /* where the request being scanned began in `in` */
        unsigned char m = matched[fd];
        for (ssize_t i = 0; i < n; i++) {
            char c = in[i];
            if (c == ((m & 1) ? '\n' : '\r')) {
                if (++m < 4) continue;
            } else {
                m = (c == '\r');
                continue;
            }
            /* a request ended at i: answer it */
            const char *req = in + start;
            size_t req_len = (size_t)i + 1 - start, body = 0;
            if (line_len[fd]) { /* it began in an earlier read: join its first bytes */
                size_t kept = line_len[fd], more = LINE_CAP - kept;
                if (more > req_len) more = req_len;
                memcpy(line[fd] + kept, in, more);
                req = line[fd];
                req_len = kept + more;
                line_len[fd] = 0;
            }
            int r = route(req, req_len < LINE_CAP ? req_len : LINE_CAP, &body);
            m = 0;
            start = (size_t)i + 1;
            if (r == 0) {
                memcpy(out + len, resp, resp_len);
                len += resp_len;
                continue;
            }
            if (r < 0) {
                len += (size_t)snprintf(out + len, 256,
                    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nDate: %s\r\n\r\n", date);
                continue;
            }
            len += (size_t)snprintf(out + len, 256,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                "Content-Length: %zu\r\nDate: %s\r\n\r\n", body, date);
            iov[iovs++] = (struct iovec){ .iov_base = out + mark, .iov_len = len - mark };
            iov[iovs++] = (struct iovec){ .iov_base = BLOB, .iov_len = body };
            mark = len;
            if (iovs + 2 > MAX_IOV) { /* out of iovecs: send these, go on */
                if (send_out(fd, iov, iovs) < 0) return -1;
                iovs = 0;
                len = mark = 0;
            }
        }
        matched[fd] = m;
        if (start < (size_t)n && line_len[fd] < LINE_CAP) { /* a request goes on in the next read */
            size_t kept = line_len[fd], more = LINE_CAP - kept;
            if (more > (size_t)n - start) more = (size_t)n - start;
            memcpy(line[fd] + kept, in + start, more);
            line_len[fd] = (unsigned char)(kept + more);
        }
        if (len > mark) iov[iovs++] = (struct iovec){ .iov_base = out + mark, .iov_len = len - mark };
        if (iovs > 0 && send_out(fd, iov, iovs) < 0) return -1;
        if ((size_t)n < sizeof in) return 0; /* short read: queue drained, wait for the next edge */
    }
}

int main(int argc, char **argv) {
    const char *port = argc > 1 ? argv[1] : getenv("PORT");
    const char *host = getenv("ADDR");
    if (!port) port = "8080";
    if (!host) host = "127.0.0.1";

    for (size_t i = 0; i < BLOB_LEN; i++) BLOB[i] = (char)(i % 251);
    /* A client that leaves while a body is still being written makes the next write EPIPE;
     * without this its SIGPIPE would kill the process (every other peer ignores it too). */
    signal(SIGPIPE, SIG_IGN);

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
            if ((e & EPOLLOUT) && flush_queue(fd) < 0) { close_conn(fd); continue; }
            if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && on_readable(fd) < 0)
                close_conn(fd);
        }
    }
}
