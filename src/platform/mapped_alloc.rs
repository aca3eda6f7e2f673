//! The process's allocator: the system allocator, plus vectors whose memory is a private mapping
//! of a file, so that a model's f32 weights can become CPU tensors without copying them.
//!
//! candle's CPU tensors own a `Vec`; the only way to hand one a file's pages is a `Vec` whose
//! buffer this allocator knows how to free. Allocations of at least [`TAGGED_BYTES`] carry a
//! small header right before the pointer saying where their memory came from: the system
//! allocator (and the block's real start) or a file mapping (its start and length, to unmap).
//! Smaller allocations go straight to the system allocator, untouched. The allocator holds no
//! state: everything it needs sits in the header.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;

/// Allocations of at least this many bytes carry the header.
pub const TAGGED_BYTES: usize = 64 * 1024;
/// Header bytes at the least (three words, rounded up so the pointer keeps 32-byte alignment).
const HEADER_MIN: usize = 32;
const TAG_SYSTEM: u64 = 0x7061_6c6c_5359_5354; // "pallSYST"
const TAG_MAPPED: u64 = 0x7061_6c6c_4d41_5050; // "pallMAPP"

/// The system allocator, with file-mapped vectors (see the module's text).
pub struct MappingAlloc;

fn header_len(align: usize) -> usize {
    align.max(HEADER_MIN)
}

/// The system block behind a tagged allocation of `layout`.
fn system_layout(layout: Layout) -> Option<Layout> {
    let h = header_len(layout.align());
    Layout::from_size_align(layout.size().checked_add(h)?, layout.align().max(16)).ok()
}

/// # Safety
/// `p` must be a tagged allocation's pointer (at least [`HEADER_MIN`] bytes of header before it).
unsafe fn write_header(p: *mut u8, tag: u64, base: usize, len: usize) {
    // SAFETY: the caller guarantees the three words before `p` belong to the block; they are
    // written unaligned-safe.
    unsafe {
        (p.sub(8) as *mut u64).write_unaligned(tag);
        (p.sub(16) as *mut u64).write_unaligned(base as u64);
        (p.sub(24) as *mut u64).write_unaligned(len as u64);
    }
}

/// # Safety
/// As [`write_header`].
unsafe fn read_header(p: *mut u8) -> (u64, usize, usize) {
    // SAFETY: as above.
    unsafe {
        (
            (p.sub(8) as *const u64).read_unaligned(),
            (p.sub(16) as *const u64).read_unaligned() as usize,
            (p.sub(24) as *const u64).read_unaligned() as usize,
        )
    }
}

impl MappingAlloc {
    /// # Safety
    /// As `GlobalAlloc::alloc`; `zeroed` picks `alloc_zeroed`.
    unsafe fn alloc_tagged(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let Some(full) = system_layout(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `full` has a non-zero size.
        let base = unsafe {
            if zeroed {
                System.alloc_zeroed(full)
            } else {
                System.alloc(full)
            }
        };
        if base.is_null() {
            return base;
        }
        let h = header_len(layout.align());
        // SAFETY: the block is `h + size` bytes, so `base + h` and the header before it lie
        // inside it; `h` is a multiple of the alignment.
        unsafe {
            let p = base.add(h);
            write_header(p, TAG_SYSTEM, base as usize, 0);
            p
        }
    }
}

// SAFETY: every pointer handed out is either the system allocator's, or (tagged) points inside a
// system block or a mapping whose origin its header records; dealloc and realloc read the header
// exactly when alloc wrote one (the layout's size decides, and callers pass the same layout).
unsafe impl GlobalAlloc for MappingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() < TAGGED_BYTES {
            // SAFETY: forwarded contract.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: forwarded contract.
        unsafe { self.alloc_tagged(layout, false) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() < TAGGED_BYTES {
            // SAFETY: forwarded contract.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // SAFETY: forwarded contract.
        unsafe { self.alloc_tagged(layout, true) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if layout.size() < TAGGED_BYTES {
            // SAFETY: forwarded contract: an untagged system allocation.
            return unsafe { System.dealloc(p, layout) };
        }
        // SAFETY: a tagged allocation (same layout as allocated), so its header is there.
        let (tag, base, len) = unsafe { read_header(p) };
        match (tag, system_layout(layout)) {
            // SAFETY: `base` is the system block allocated with `full`.
            (TAG_SYSTEM, Some(full)) => unsafe { System.dealloc(base as *mut u8, full) },
            (TAG_MAPPED, _) => unmap(base, len),
            // A corrupted header: freeing anything now could corrupt more.
            _ => std::process::abort(),
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if old < TAGGED_BYTES && new_size < TAGGED_BYTES {
            // SAFETY: forwarded contract: untagged before and after.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        // A system block staying tagged grows in place (or by the system's mremap).
        if old >= TAGGED_BYTES && new_size >= TAGGED_BYTES {
            // SAFETY: tagged, so the header is there.
            let (tag, base, _) = unsafe { read_header(p) };
            let h = header_len(layout.align());
            if let (TAG_SYSTEM, Some(full), Some(new_full)) =
                (tag, system_layout(layout), new_size.checked_add(h))
            {
                // SAFETY: `base` was allocated with `full`; the new size does not overflow.
                let nb = unsafe { System.realloc(base as *mut u8, full, new_full) };
                if nb.is_null() {
                    return nb;
                }
                // SAFETY: the header moved with the block's first `h` bytes; its base is new.
                unsafe {
                    let np = nb.add(h);
                    write_header(np, TAG_SYSTEM, nb as usize, 0);
                    return np;
                }
            }
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: a fresh allocation, the smaller length copied, the old one freed with its layout.
        unsafe {
            let np = self.alloc(new_layout);
            if !np.is_null() {
                std::ptr::copy_nonoverlapping(p, np, old.min(new_size));
                self.dealloc(p, layout);
            }
            np
        }
    }
}

fn unmap(base: usize, len: usize) {
    #[cfg(unix)]
    // SAFETY: [base, base + len) is the mapping `map_f32` made for this vector, now dropped.
    unsafe {
        libc::munmap(base as *mut libc::c_void, len);
    }
    #[cfg(not(unix))]
    let _ = (base, len);
}

/// `count` little-endian f32 values at byte `offset` of `file` as a vector backed by a private
/// mapping of the file: no copy; pages are read in when first touched, and a write (nothing in
/// candle writes to a weight) copies only the page written. None when this cannot apply: not a
/// Unix little-endian machine, a misaligned or too small tensor, or a failed mapping (the caller
/// copies instead).
///
/// The file must not be truncated while the vector lives (as with every memory-mapped loader).
pub fn map_f32(file: &File, offset: u64, count: usize) -> Option<Vec<f32>> {
    #[cfg(all(unix, target_endian = "little"))]
    {
        use std::os::fd::AsRawFd;
        let bytes = count.checked_mul(4)?;
        if bytes < TAGGED_BYTES || !offset.is_multiple_of(4) {
            return None;
        }
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        let inner = usize::try_from(offset).ok()? % page;
        let file_start = libc::off_t::try_from(offset - inner as u64).ok()?;
        let span = (inner + bytes).div_ceil(page) * page;
        let total = page + span;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh anonymous mapping: one page for the header, then room for the file.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                rw,
                libc::MAP_PRIVATE | libc::MAP_ANON,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let base = base as usize;
        // SAFETY: replaces the pages after the header page, inside the mapping just made, with a
        // private mapping of the file's pages holding the tensor.
        let fixed = unsafe {
            libc::mmap(
                (base + page) as *mut libc::c_void,
                span,
                rw,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                file.as_raw_fd(),
                file_start,
            )
        };
        if fixed == libc::MAP_FAILED {
            unmap(base, total);
            return None;
        }
        let p = (base + page + inner) as *mut u8;
        // SAFETY: the header's words lie in [base, p) (a page is larger than the header); the
        // vector's `count` floats lie in the file mapping, 4-aligned (page-aligned start plus a
        // multiple of 4). Its buffer is this allocator's (the header says how to free it), with
        // the layout of `count` f32: at least TAGGED_BYTES, so dealloc reads the header.
        unsafe {
            write_header(p, TAG_MAPPED, base, total);
            Some(Vec::from_raw_parts(p as *mut f32, count, count))
        }
    }
    #[cfg(not(all(unix, target_endian = "little")))]
    {
        let _ = (file, offset, count);
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_mapped_vector_reads_the_file_and_frees_cleanly() {
        let mut f = tempfile::tempfile().unwrap();
        let n = TAGGED_BYTES / 4 * 3 + 5;
        // An odd offset into the file's pages (8 + a header, as in a safetensors file).
        let lead = vec![7u8; 4100];
        f.write_all(&lead).unwrap();
        let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        for v in &values {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
        f.flush().unwrap();
        for _ in 0..3 {
            let mut v = map_f32(&f, lead.len() as u64, n).unwrap();
            assert_eq!(v, values);
            // A write stays in memory (the file is private) and growing reallocates.
            v[0] = 42.0;
            v.push(1.0);
            assert_eq!((v[0], v[n], v[1]), (42.0, 1.0, values[1]));
        }
        let again = map_f32(&f, lead.len() as u64, n).unwrap();
        assert_eq!(again[0], values[0]);
        assert!(map_f32(&f, 4102, n).is_none(), "misaligned");
        assert!(
            map_f32(&f, 4100, 10).is_none(),
            "too small to carry a header"
        );
    }

    #[test]
    fn large_system_allocations_keep_their_alignment_and_contents_through_realloc() {
        for align in [4usize, 64, 4096] {
            let layout = Layout::from_size_align(TAGGED_BYTES + 3, align).unwrap();
            // SAFETY: test of the allocator's own contract.
            unsafe {
                let p = MappingAlloc.alloc_zeroed(layout);
                assert_eq!(p as usize % align, 0);
                assert!(
                    std::slice::from_raw_parts(p, layout.size())
                        .iter()
                        .all(|b| *b == 0)
                );
                p.write(9);
                let q = MappingAlloc.realloc(p, layout, TAGGED_BYTES * 4);
                assert_eq!((q.read(), q as usize % align), (9, 0));
                let small = Layout::from_size_align(TAGGED_BYTES * 4, align).unwrap();
                let r = MappingAlloc.realloc(q, small, 16);
                assert_eq!(r.read(), 9);
                let tiny = Layout::from_size_align(16, align).unwrap();
                let s = MappingAlloc.realloc(r, tiny, TAGGED_BYTES * 2);
                assert_eq!(s.read(), 9);
                MappingAlloc.dealloc(s, Layout::from_size_align(TAGGED_BYTES * 2, align).unwrap());
            }
        }
    }
}
