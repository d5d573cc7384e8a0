#ifndef ZARRMOUNT_CZLIB_SHIM_H
#define ZARRMOUNT_CZLIB_SHIM_H
#include <zlib.h>

// inflateInit is a macro over inflateInit_ with the library's version and stream size.
static inline int czlib_inflate_init(z_stream *stream) { return inflateInit(stream); }
#endif
