#pragma once
#include <stdint.h>

/// Heap allocations (malloc, calloc, realloc, aligned variants) since the process started.
uint64_t dml_allocation_count(void);
