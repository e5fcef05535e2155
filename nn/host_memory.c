// nn/host_memory.c — see host_memory.h.
#include "host_memory.h"

#include <stdlib.h>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

void host_memory_keep_freed(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_MAX, 0);                        // large blocks from the heap, reused after free
    mallopt(M_TRIM_THRESHOLD, 1 << 30);            // do not give the heap's top back below 1 GiB free
#endif
}
