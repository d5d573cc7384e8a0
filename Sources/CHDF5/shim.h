#ifndef ZARRMOUNT_CHDF5_SHIM_H
#define ZARRMOUNT_CHDF5_SHIM_H
// libhdf5 is the parser's oracle only (tests and `zarrmount verify`), never on the mount path.
#include <hdf5.h>

// The H5T_NATIVE_* and H5P_* names are macros over globals that need H5open(); Swift cannot
// import them, so they are exposed as functions.
static inline hid_t chdf5_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t chdf5_property_default(void) { return H5P_DEFAULT; }
static inline hid_t chdf5_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t chdf5_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline herr_t chdf5_silence_errors(void) { return H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
static inline herr_t chdf5_open_library(void) { return H5open(); }
static inline hid_t chdf5_dataspace_all(void) { return H5S_ALL; }
static inline unsigned chdf5_read_only(void) { return H5F_ACC_RDONLY; }

/// Visits every object reachable from `file` in name order (libhdf5 reports each object once).
typedef herr_t (*chdf5_visit_callback)(hid_t object, const char *name, const H5O_info_t *info, void *context);
static inline herr_t chdf5_visit(hid_t file, chdf5_visit_callback callback, void *context) {
    return H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, callback, context, H5O_INFO_BASIC);
}
#endif
