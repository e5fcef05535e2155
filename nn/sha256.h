// nn/sha256.h — SHA-256 (FIPS 180-4), for model hashes ("Model hash:" in PNG parameters).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Sha256 {
    uint32_t h[8];
    uint8_t block[64];
    size_t fill;        // bytes in block
    uint64_t total;     // bytes hashed so far
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
void sha256_final(Sha256 *s, uint8_t digest[32]);
// The digest of n bytes as 64 lower-case hex digits (hex holds at least 65 bytes).
void sha256_hex(const void *data, size_t n, char *hex);

#ifdef __cplusplus
}
#endif
