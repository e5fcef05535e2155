// nn/file_util.c — file-system helpers (see file_util.h).
#include "file_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int dice_make_dirs(const char *path, DiceError *err) {
    char buf[4096];
    DICE_CHECK(err, *path && strlen(path) < sizeof buf, "%s: empty or too long a path", path);
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = 0;
        DICE_CHECK(err, !mkdir(buf, 0755) || errno == EEXIST, "%s: cannot create the folder: %s", buf,
                   strerror(errno));
        if (!c) break;
        *p = c;
    }
    struct stat st;
    DICE_CHECK(err, !stat(path, &st) && S_ISDIR(st.st_mode), "%s: not a folder", path);
    return 0;
}

int dice_copy_file(const char *src, const char *dst, size_t max_bytes, DiceError *err) {
    char *data;
    size_t len;
    DICE_TRY(dice_read_file(src, max_bytes, &data, &len, err));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dst, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(data);
        return DICE_FAIL(err, "%s: cannot create: %s", tmp, strerror(errno));
    }
    bool ok = fwrite(data, 1, len, f) == len;
    ok = !fclose(f) && ok;
    free(data);
    if (!ok || rename(tmp, dst)) {
        int e = errno;
        remove(tmp);
        return DICE_FAIL(err, "%s: cannot write: %s", dst, strerror(e));
    }
    return 0;
}
