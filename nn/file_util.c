// nn/file_util.c — whole-file reading (see file_util.h).
#include "file_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dice_read_file(const char *path, size_t max_bytes, char **out, size_t *len, DiceError *err) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    DICE_CHECK(err, f, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 16384;
            char *grown = cap <= 2 * max_bytes + 16384 ? realloc(buf, cap) : NULL;
            if (!grown) {
                free(buf);
                fclose(f);
                return DICE_FAIL(err, "%s: larger than %zu MiB or out of memory", path, max_bytes >> 20);
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n > max_bytes) {
            free(buf);
            fclose(f);
            return DICE_FAIL(err, "%s: larger than %zu MiB", path, max_bytes >> 20);
        }
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return DICE_FAIL(err, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}
