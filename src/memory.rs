//! Allocator settings for a process that holds a large catalog for a long
//! time. Only glibc's malloc is tuned; elsewhere nothing changes.
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

