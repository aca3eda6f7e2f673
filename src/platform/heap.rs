//! The C heap's settings for tensor work (Linux with glibc; nothing elsewhere).
//!
//! glibc serves every allocation above its mmap threshold (32 MiB at most) with a fresh mapping
//! and unmaps it on free, so each large activation of a step or a VAE decode faults its pages in
//! again: 2.6-3.4 million page faults for one 512x512 image on the CPU here. Serving them from
//! one heap and keeping freed memory until the worker goes idle took that to 0.37 million
//! (`bench image`: UNet step 7.3 -> 6.3 s, decode 13.7 -> 10.7 s, peak RSS +6%);
//! `return_freed_memory` hands the heap's free pages back between jobs.
//! `PALLAIDIUM_MALLOC_DEFAULTS=1` leaves glibc as it is.

/// Large allocations from the heap, freed memory kept, unless `malloc_defaults`
/// (`Switches::malloc_defaults`). Call once at start, before other threads.
pub fn keep_freed_memory(malloc_defaults: bool) -> bool {
    if malloc_defaults {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocation policy; any value is valid for both.
        // One arena: the engine's worker and the kernels' threads allocate activations that
        // other threads free; per-thread arenas would each keep (and fault in) their own.
        let ok = unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1) == 1
                && libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        };
        tracing::debug!(ok, "large allocations from the heap, freed memory kept");
        ok
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Returns the heap's free pages to the system (the worker calls it when the queue runs dry).
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases free heap memory.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(released, "freed heap memory returned");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_still_allocate_and_free_after_the_change() {
        keep_freed_memory(false);
        for size in [1usize << 20, 64 << 20, 3 << 20] {
            let v = vec![7u8; size];
            assert_eq!((v[0], v[size - 1], v.len()), (7, 7, size));
        }
        // And from another thread (glibc's other arenas retry the main heap).
        let t = std::thread::spawn(|| {
            vec![1u8; 80 << 20]
                .iter()
                .map(|x| *x as usize)
                .sum::<usize>()
        });
        assert_eq!(t.join().ok(), Some(80 << 20));
        return_freed_memory();
    }
}
