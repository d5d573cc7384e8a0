#ifndef ZARRMOUNT_CBLOSC_SHIM_H
#define ZARRMOUNT_CBLOSC_SHIM_H
// c-blosc 1 (Blosc's version 2 buffer format, the one hdf5-blosc and numcodecs write). Only the
// context calls are used: they need no blosc_init and take no global lock, so decoders on
// several threads do not serialise.
#include <blosc.h>
#endif
