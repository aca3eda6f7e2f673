//! A tiny parallel-for over disjoint output chunks on std scoped threads (`conv_into` uses
//! rayon's pool directly, for its per-thread scratch bands).

/// Runs `f(index, chunk)` for every `chunk_len`-sized chunk of `out`, spread over the threads
/// candle itself uses.
pub fn par_chunks_mut<T: Send>(
    out: &mut [T],
    chunk_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunk_len = chunk_len.max(1);
    let n_chunks = out.len().div_ceil(chunk_len);
    let threads = candle_core::utils::get_num_threads().clamp(1, n_chunks.max(1));
    if threads <= 1 {
        for (i, c) in out.chunks_mut(chunk_len).enumerate() {
            f(i, c);
        }
        return;
    }
    // Contiguous runs of chunks per thread.
    let per_thread = n_chunks.div_ceil(threads);
    std::thread::scope(|s| {
        for (t, run) in out.chunks_mut(per_thread * chunk_len).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (j, c) in run.chunks_mut(chunk_len).enumerate() {
                    f(t * per_thread + j, c);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_visited_once_with_its_index() {
        let mut v = vec![0usize; 103];
        par_chunks_mut(&mut v, 10, |i, c| c.iter_mut().for_each(|x| *x += i + 1));
        for (k, x) in v.iter().enumerate() {
            assert_eq!(*x, k / 10 + 1);
        }
    }
}
