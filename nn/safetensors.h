// nn/safetensors.h — safetensors files: a validating mmap reader and an atomic writer.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}},
// then the data section; offsets are relative to the data section.
// The reader checks everything before anything is used: header length bounded and inside the file,
// header is a JSON object, known dtypes, shape x dtype size == byte range, ranges inside the data
// section and not overlapping, __metadata__ a string->string map. Errors name the file and the problem.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_MAX_DIMS 8

typedef struct StTensorInfo {
    char *name;
    DType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;   // byte range within the data section
    const void *data;      // points into the mapping (file order; may be unaligned for the dtype)
} StTensorInfo;

typedef struct StFile {
    char *path;
    void *map;             // whole file, read-only
    size_t file_size;
    uint64_t header_len;
    const uint8_t *data;   // start of the data section
    uint64_t data_size;
    int n_tensors;
    StTensorInfo *tensors; // in header order
    int *name_order;       // indices into tensors, sorted by name (st_find's binary search)
    int n_meta;
    char **meta_keys, **meta_values;
} StFile;

// Map and validate `path`. The tensors must tile the data section exactly (as the reference
// implementation requires: no overlap, no hole, no trailing bytes); the header must be at most
// 100,000,000 bytes (the reference's limit). On failure *f is left empty (st_close is safe) and err says why.
int st_open(StFile *f, const char *path, DiceError *err);
void st_close(StFile *f);
const StTensorInfo *st_find(const StFile *f, const char *name);  // NULL if absent
const char *st_meta(const StFile *f, const char *key);            // NULL if absent
int64_t st_numel(const StTensorInfo *t);
// Copies s into out (cap bytes) for a one-line message: control characters as \xNN, cut with "..."
// when too long. Names in a file are untrusted and may hold newlines or terminal escapes.
void st_printable(char *out, size_t cap, const char *s);

typedef struct StWriteTensor {
    const char *name;
    DType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;      // dtype_size(dtype) * numel bytes
} StWriteTensor;

// Write tensors (and optional metadata key/value pairs) to `path` through a temporary file
// "<path>.tmp.<pid>" in the same directory, flushed, fsynced and renamed, so a crash never leaves a
// half-written file at `path`; on failure the temporary file is removed and `path` is untouched.
// The header lists __metadata__ first, then the tensors in the given order with contiguous offsets,
// padded with spaces to a multiple of 8 bytes like the reference writer (pass tensors in
// decreasing element size to keep every tensor aligned to its element size in the file).
// Names must be unique, non-empty UTF-8; metadata keys unique.
int st_write(const char *path, const StWriteTensor *tensors, int n_tensors, const char *const *meta_keys,
             const char *const *meta_values, int n_meta, DiceError *err);

#ifdef __cplusplus
}
#endif
