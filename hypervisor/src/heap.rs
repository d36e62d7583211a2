//! The process heap, for daemons that see bursts: after thousands of
//! connections (or a flood of input) have come and gone, glibc keeps the
//! freed memory in its per-thread arenas, so the process's RSS stays at the
//! peak. [`release_free_memory`] hands it back. Here because it needs one
//! FFI call, and `unsafe` lives only in this crate; xend calls it.

/// Returns the heap's free memory to the system (glibc's `malloc_trim`).
/// True when some memory was released.
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointers; it walks glibc's own arenas under
    // their locks and only releases pages that hold no allocated chunk, so it
    // is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn freed_memory_goes_back() {
        let blocks: Vec<Vec<u8>> = (0..2000).map(|i| vec![i as u8; 8192]).collect();
        drop(blocks);
        // Whether pages were released depends on the heap's layout; the call
        // itself must be harmless, twice in a row too.
        super::release_free_memory();
        super::release_free_memory();
    }
}
