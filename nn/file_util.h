// nn/file_util.h — small file-system helpers with clear errors: reading a whole (configuration or text) file,
// creating folders, copying a file.
#pragma once
#include <stddef.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Reads `path` into a malloc'd, NUL-terminated buffer (*out, *len bytes before the NUL). Files larger than
// max_bytes are refused ("larger than N MiB"); errors name the file ("cannot open: ...", "read error").
int dice_read_file(const char *path, size_t max_bytes, char **out, size_t *len, DiceError *err);
// mkdir -p: creates `path` and its missing parents; an existing folder is fine, an existing file is an error.
int dice_make_dirs(const char *path, DiceError *err);
// Copies src to dst (at most max_bytes) through a temporary file renamed into place.
int dice_copy_file(const char *src, const char *dst, size_t max_bytes, DiceError *err);

#ifdef __cplusplus
}
#endif
