#ifndef CJEMALLOC_SHIM_H
#define CJEMALLOC_SHIM_H

// zarrmount's executables link jemalloc so that it replaces glibc's malloc for the whole process.
// The scan allocates and frees millions of small objects across threads; with glibc's allocator
// a fifth of its CPU went to malloc, free and fastbin consolidation (see README, "Memory allocator").

#include <jemalloc/jemalloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>

/// jemalloc's version string, e.g. "5.3.0-0-g54eaed1d8b56b1aa528be3bdd1877e59c56fa90c", or NULL.
static inline const char *CJemalloc_version(void) {
    const char *version = NULL;
    size_t length = sizeof(version);
    if (mallctl("version", &version, &length, NULL, 0) != 0) return NULL;
    return version;
}

/// Bytes this thread has allocated through jemalloc so far, or -1 when statistics are unavailable.
static inline int64_t CJemalloc_thread_allocated(void) {
    uint64_t allocated = 0;
    size_t length = sizeof(allocated);
    if (mallctl("thread.allocated", &allocated, &length, NULL, 0) != 0) return -1;
    return (int64_t)allocated;
}

/// Has jemalloc hand freed pages back to the system about `decay_ms` after they are freed, from
/// a background thread, rather than only as later allocations happen to pass through the arena:
/// a scan frees a large chunk index at once and then allocates little, and with the default (10 s,
/// no background thread) the freed index stayed resident through the rest of the scan. Returns
/// the number of settings jemalloc refused (0 when all took effect).
static inline int CJemalloc_return_freed_memory_within(long decay_ms) {
    ssize_t decay = (ssize_t)decay_ms;
    ssize_t immediately = 0;
    bool enable = true;
    int refused = 0;
    refused += mallctl("arenas.dirty_decay_ms", NULL, NULL, &decay, sizeof(decay)) != 0;
    refused += mallctl("arenas.muzzy_decay_ms", NULL, NULL, &immediately, sizeof(immediately)) != 0;
    refused += mallctl("arena.0.dirty_decay_ms", NULL, NULL, &decay, sizeof(decay)) != 0;
    refused += mallctl("arena.0.muzzy_decay_ms", NULL, NULL, &immediately, sizeof(immediately)) != 0;
    refused += mallctl("background_thread", NULL, NULL, &enable, sizeof(enable)) != 0;
    return refused;
}

/// Whether a plain `malloc` call (what the Swift runtime and libcurl use) is served by jemalloc.
/// Linking alone is not enough: the symbol only wins when jemalloc precedes libc in the lookup order.
static inline int CJemalloc_serves_malloc(void) {
    int64_t before = CJemalloc_thread_allocated();
    if (before < 0) return 0;
    void *volatile block = malloc(1 << 16);
    if (block == NULL) return 0;
    memset(block, 1, 1);
    int64_t after = CJemalloc_thread_allocated();
    free(block);
    return after - before >= (1 << 16);
}

#endif
