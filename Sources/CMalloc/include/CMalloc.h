#ifndef USERAPI_CMALLOC_H
#define USERAPI_CMALLOC_H

/// Caps glibc's malloc arenas (mallopt(M_ARENA_MAX, count)); Swift's Glibc
/// module does not export <malloc.h>. Returns 1 when glibc accepted the
/// setting, 0 when it refused or the C library is not glibc.
int userapi_malloc_arena_max(int count);

/// Returns freed heap memory to the kernel (malloc_trim(0)): 1 when some was
/// released, 0 otherwise or when the C library is not glibc.
int userapi_malloc_trim(void);

#endif
