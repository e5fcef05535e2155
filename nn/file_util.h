// nn/file_util.h — reading a whole (configuration or text) file into memory, with clear errors.
#pragma once
#include <stddef.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Reads `path` into a malloc'd, NUL-terminated buffer (*out, *len bytes before the NUL). Files larger than
// max_bytes are refused ("larger than N MiB"); errors name the file ("cannot open: ...", "read error").
int dice_read_file(const char *path, size_t max_bytes, char **out, size_t *len, DiceError *err);

#ifdef __cplusplus
}
#endif
