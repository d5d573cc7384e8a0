#ifndef ZARRMOUNT_CFUSE_SHIM_H
#define ZARRMOUNT_CFUSE_SHIM_H
// The FUSE API level is fixed here, once, so every Swift file sees the same structures.
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

static inline int cfuse_api_version(void) { return FUSE_USE_VERSION; }
#endif
