#ifndef ZARRMOUNT_CBZIP2_SHIM_H
#define ZARRMOUNT_CBZIP2_SHIM_H
#include <stdint.h>
#include <bzlib.h>

// bzlib takes `char *` buffers and `unsigned int` lengths; the wrappers take bytes and sizes as
// Swift holds them, so no call site rebinds memory.
static inline int cbzip2_decompress(uint8_t *destination, size_t *destination_length, const uint8_t *source,
                                    size_t source_length) {
    if (*destination_length > 0xffffffffu || source_length > 0xffffffffu) return BZ_PARAM_ERROR;
    unsigned int length = (unsigned int)*destination_length;
    int status = BZ2_bzBuffToBuffDecompress((char *)destination, &length, (char *)source, (unsigned int)source_length, 0, 0);
    *destination_length = length;
    return status;
}
static inline int cbzip2_compress(uint8_t *destination, size_t *destination_length, const uint8_t *source,
                                  size_t source_length, int block_size) {
    if (*destination_length > 0xffffffffu || source_length > 0xffffffffu) return BZ_PARAM_ERROR;
    unsigned int length = (unsigned int)*destination_length;
    int status = BZ2_bzBuffToBuffCompress((char *)destination, &length, (char *)source, (unsigned int)source_length,
                                          block_size, 0, 0);
    *destination_length = length;
    return status;
}
#endif
