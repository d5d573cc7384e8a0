#ifndef ZARRMOUNT_CSZIP_SHIM_H
#define ZARRMOUNT_CSZIP_SHIM_H
// libaec's SZIP compatibility interface (libsz), the one libhdf5's szip filter calls: it maps
// SZIP's option mask, including the scanline padding of HDF5's parameters, onto libaec.
#include <stddef.h>
#include <szlib.h>

// The wrappers fill SZ_com_t from HDF5's parameters in one place, so Swift passes plain ints.
static inline int cszip_decompress(void *destination, size_t *destination_length, const void *source, size_t source_length,
                                   int options_mask, int bits_per_pixel, int pixels_per_block, int pixels_per_scanline) {
    SZ_com_t parameters = {options_mask, bits_per_pixel, pixels_per_block, pixels_per_scanline};
    return SZ_BufftoBuffDecompress(destination, destination_length, source, source_length, &parameters);
}
static inline int cszip_compress(void *destination, size_t *destination_length, const void *source, size_t source_length,
                                 int options_mask, int bits_per_pixel, int pixels_per_block, int pixels_per_scanline) {
    SZ_com_t parameters = {options_mask, bits_per_pixel, pixels_per_block, pixels_per_scanline};
    return SZ_BufftoBuffCompress(destination, destination_length, source, source_length, &parameters);
}
#endif
