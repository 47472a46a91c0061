// File I/O calls that Swift's Glibc module does not show: glibc declares them only under
// _GNU_SOURCE, which that module is built without. Linux only; declared here, defined by libc.
#include <stdint.h>

#if defined(__linux__)
/// sync_file_range(2); `SYNC_FILE_RANGE_WRITE` (2) starts writeback of the range's dirty pages
/// without waiting for it.
int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags);
#define KV_SYNC_FILE_RANGE_WRITE 2u
#endif
