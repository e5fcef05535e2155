// data/h5util.h — checked HDF5 calls for the shard code (internal to data/): the H5_TRY macros,
// silencing HDF5's own error printing, file-access settings, attribute helpers, the IEEE half type.
//
// Every HDF5 call goes through H5_TRY / H5_TRY_SET. On failure they write one line into the DiceError,
//   "<where>: <call> failed: <HDF5's outermost message>: <its innermost message> [file:line]"
// (HDF5's error stack read with H5Ewalk2; `where` names the shard), and jump to the enclosing
// function's `fail:` label, where the function closes what it opened. HDF5 prints nothing: the first
// call into data/shards.h turns HDF5's automatic error printing off and leaves it off. (Restoring it
// would not do: HDF5 1.10 consults it again at exit and, after a damaged file was read, prints
// "HDF5: infinite loop closing library" over blocks its failed read left behind.)
#pragma once
#include <hdf5.h>
#include <stdint.h>

#include "nn/error.h"

// Fills err with the failed call and the top of HDF5's current error stack; returns -1.
int h5_fail_at(DiceError *err, const char *file, int line, const char *where, const char *call);

// A call whose negative result is failure (herr_t, or a result not kept).
#define H5_TRY(err, where, call)                                              \
    do {                                                                      \
        if ((call) < 0) {                                                     \
            h5_fail_at((err), __FILE__, __LINE__, (where), #call);            \
            goto fail;                                                        \
        }                                                                     \
    } while (0)
// A call whose result is kept in `var` (hid_t, htri_t, ssize_t, an enum with -1 for errors):
// negative is failure.
#define H5_TRY_SET(err, where, var, call)                                     \
    do {                                                                      \
        if (((var) = (call)) < 0) {                                           \
            h5_fail_at((err), __FILE__, __LINE__, (where), #call);            \
            goto fail;                                                        \
        }                                                                     \
    } while (0)
// A check of our own inside a function that cleans up at `fail:`.
#define H5_CHECK(err, cond, ...)                                              \
    do {                                                                      \
        if (!(cond)) {                                                        \
            dice_fail_at((err), __FILE__, __LINE__, __VA_ARGS__);             \
            goto fail;                                                        \
        }                                                                     \
    } while (0)

// Turns HDF5's automatic error printing off, for the whole process (idempotent; every public entry
// point of shards.h calls it first).
void h5_silence(void);

// Closes an identifier of any kind if it is valid (cleanup paths; a failure there is ignored).
void h5_close_id(hid_t id);

// A file-access property list: the HDF5 1.10 file format (checksummed superblock, object headers and
// chunk indexes) and file locking that is skipped, rather than failing, on file systems without locks
// (NFS, Lustre). Negative on failure; caller closes it.
hid_t h5_file_access(void);

// IEEE 754 binary16, little-endian (what numpy's float16 becomes in h5py). Caller closes it.
hid_t h5_half_type(void);

// Attributes. Writers: a scalar fixed-length UTF-8 string (NUL-padded, as long as the text: variable-
// length strings would go to HDF5's global heap, which has no checksum), int64, double.
int h5_write_attr_str(hid_t obj, const char *name, const char *value, const char *where, DiceError *err);
int h5_write_attr_i64(hid_t obj, const char *name, int64_t value, const char *where, DiceError *err);
int h5_write_attr_f64(hid_t obj, const char *name, double value, const char *where, DiceError *err);
// Readers: the attribute must exist, hold one value, and be of the class asked for (any integer width
// for i64, any float width for f64; a variable- or fixed-length string for str, copied into buf, which
// must have room for it and its NUL).
int h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t cap, const char *where, DiceError *err);
int h5_read_attr_i64(hid_t obj, const char *name, int64_t *value, const char *where, DiceError *err);
int h5_read_attr_f64(hid_t obj, const char *name, double *value, const char *where, DiceError *err);
