#ifndef ZARRMOUNT_CZSTD_SHIM_H
#define ZARRMOUNT_CZSTD_SHIM_H
#include <stdint.h>
#include <zstd.h>
#include <zstd_errors.h>

// ZSTD_getErrorCode returns a C enum that Swift imports as a struct; the wrapper gives the two
// codes a chunk decoder tells apart (output past the chunk's size, input ending early) as ints.
static inline int czstd_error_is_destination_full(size_t result) {
    return ZSTD_getErrorCode(result) == ZSTD_error_dstSize_tooSmall;
}
static inline int czstd_error_is_truncated(size_t result) {
    return ZSTD_getErrorCode(result) == ZSTD_error_srcSize_wrong;
}
#endif
