/*
 * alloccount.c: LD_PRELOAD shim that counts heap allocations of a dynamically linked server.
 *
 * benches/harness.py preloads it with ALLOC_COUNT_FILE=<path>; the counters live in that file,
 * mapped shared, so the harness reads them at any moment without stopping or signalling the
 * server: read, send N requests, read again, divide. Each call forwards to glibc's own
 * __libc_* entry points (no dlsym, which would itself allocate). Counts only: sizes and call
 * sites are what heaptrack is for.
 *
 * Build: gcc -O2 -shared -fPIC -o alloccount.so alloccount.c
 * Counters (uint64 each, in this order): malloc, calloc, realloc, aligned, free.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

enum { MALLOC, CALLOC, REALLOC, ALIGNED, FREE, N_COUNTERS };
static uint64_t fallback[N_COUNTERS];   /* until the constructor has mapped the file */
static uint64_t *counters = fallback;

__attribute__((constructor)) static void map_counters(void) {
    const char *path = getenv("ALLOC_COUNT_FILE");
    if (!path) return;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (ftruncate(fd, 4096) == 0) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            uint64_t *c = p;
            for (int i = 0; i < N_COUNTERS; i++) c[i] = fallback[i];
            counters = c;
        }
    }
    close(fd);
}

static inline void count(int which) { __atomic_fetch_add(&counters[which], 1, __ATOMIC_RELAXED); }

void *malloc(size_t n) { count(MALLOC); return __libc_malloc(n); }
void *calloc(size_t n, size_t m) { count(CALLOC); return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { count(REALLOC); return __libc_realloc(p, n); }
void free(void *p) { if (p) count(FREE); __libc_free(p); }
void *memalign(size_t a, size_t n) { count(ALIGNED); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { count(ALIGNED); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    count(ALIGNED);
    void *p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
