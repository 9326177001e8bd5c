//! Allocator settings and housekeeping for a process that holds a large
//! catalog for a long time. Only glibc's malloc is concerned; elsewhere
//! (musl, macOS, Windows, whose heaps return memory on their own terms and
//! have no such knobs) these do nothing.
//!
//! glibc gives threads their own arenas (up to eight per core) and keeps
//! freed memory in the arena it came from. Contacts' share lists are parsed
//! and packed on whichever runtime thread is free, so what one list leaves
//! freed stays spread over many arenas. Measured with
//! `cargo bench --bench system -- memory` (an idle `bitweend` holding
//! 500,000 catalog shares): peak RSS 72 to 77 MiB with glibc's default,
//! 64 to 70 MiB with two arenas, 63 to 65 MiB with one.

/// Caps glibc's malloc arenas at two, unless `MALLOC_ARENA_MAX` in the
/// environment already chose. Call first thing in `main`, before any other
/// thread exists (a thread keeps the arena it got).
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator settings, and no other
        // thread is allocating yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Hands memory freed inside glibc's arenas back to the system. Cheap
/// enough to call after each contact's item (0.35 ms median, 0.9 ms at the
/// 90th percentile over the 184 calls of the benchmark above); without it,
/// what parsing and packing a list left freed stays resident until the
/// arena needs it again. With it, the same benchmark peaks at 65 to 66 MiB
/// instead of 68 to 70, and idles at 59 to 60 MiB instead of 67 to 69.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
