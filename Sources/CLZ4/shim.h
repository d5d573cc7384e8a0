#ifndef ZARRMOUNT_CLZ4_SHIM_H
#define ZARRMOUNT_CLZ4_SHIM_H
#include <stdint.h>
#include <lz4.h>

// liblz4 takes `char *` buffers; the wrappers take bytes as Swift holds them, so no call site
// rebinds memory. Both are bounded by the capacities given.
static inline int clz4_decompress(const uint8_t *source, uint8_t *destination, int source_length, int capacity) {
    return LZ4_decompress_safe((const char *)source, (char *)destination, source_length, capacity);
}
static inline int clz4_compress(const uint8_t *source, uint8_t *destination, int source_length, int capacity) {
    return LZ4_compress_default((const char *)source, (char *)destination, source_length, capacity);
}
#endif
