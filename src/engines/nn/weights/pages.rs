//! The mapped weight files' pages: mapped in bulk before a copy, dropped once copied, and the
//! large f32 copies spread over the threads.

use candle_core::{DType, Tensor};

use super::TensorRead;
use super::convert::convert_parallel;

/// Drops the resident pages of mapped weight bytes that have been copied into a tensor, so that
/// loading a model does not hold every weight twice (the mapped file and the copy) in the
/// process's memory: on a 16 GB Mac that doubling decides whether a model fits. The file stays
/// mapped and read-only: a later read of the same bytes faults them back in from the file.
pub(super) fn release_pages(bytes: &[u8]) {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let start = bytes.as_ptr() as usize;
        // Only whole pages inside the tensor's bytes: the pages it shares with its neighbours
        // stay until they are copied too.
        let first = start.div_ceil(page) * page;
        let last = (start + bytes.len()) / page * page;
        if page > 0 && last > first {
            // SAFETY: [first, last) lies inside `bytes`, a slice of a live read-only file mapping;
            // MADV_DONTNEED on such a mapping only drops cached pages, whose contents come back
            // from the file on the next access. No Rust reference is invalidated.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_DONTNEED,
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = bytes;
}

/// Maps the pages of [start, end) of a live read-only file mapping in one call
/// (MADV_POPULATE_READ, Linux 5.14+; silently nothing where unsupported).
pub(super) fn populate(start: usize, end: usize) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let first = start / page * page;
        if page == 0 || end <= first {
            return;
        }
        const MADV_POPULATE_READ: libc::c_int = 22;
        // SAFETY: [first, end) covers the tensors' bytes of one live read-only mapping, rounded
        // down to its page (the mapping starts on a page); populating only reads pages in and
        // changes no contents. An error (old kernel) leaves the pages to fault in as before.
        let rc =
            unsafe { libc::madvise(first as *mut libc::c_void, end - first, MADV_POPULATE_READ) };
        tracing::debug!(bytes = end - first, rc, "populated the weights' pages");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, end);
}

/// Tensors below this many bytes are copied by candle on one thread.
pub(super) const PARALLEL_COPY_BYTES: usize = 1 << 20;

/// An f32 weight kept f32 on the CPU: its pages mapped in one call, then copied over the
/// threads (candle copies on one thread, faulting the file in a page at a time; that was most
/// of a CPU model load). None where this does not apply (other dtypes, devices, small tensors).
pub(super) fn parallel_f32_copy(read: &TensorRead) -> candle_core::Result<Option<Tensor>> {
    if !read.f32_kept_on_cpu(PARALLEL_COPY_BYTES) {
        return Ok(None);
    }
    let data = read.data;
    let start = data.as_ptr() as usize;
    populate(start, start + data.len());
    let mut out = vec![0f32; data.len() / 4];
    if !convert_parallel(data, DType::F32, &mut out) {
        return Ok(None);
    }
    Tensor::from_vec(out, read.shape, read.dev).map(Some)
}
