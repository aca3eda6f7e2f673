//! Working memory of one tile, and the tile size a memory budget allows (the planner and the
//! job use the same numbers).

/// Context pixels read around each tile and cropped off its output (Real-ESRGAN's `tile_pad`).
pub const TILE_PAD: usize = 10;
/// Tile sides tried, largest first; a tile at least the image's size means no tiling.
pub const TILE_SIDES: [u32; 10] = [1024, 768, 512, 384, 256, 192, 128, 96, 64, 32];
/// Floats live per input pixel of a tile at the peak, for the largest released network
/// (RRDBNet x4, 64 features): at the output resolution (16 pixels) the upsampled features, the
/// conv output and its activation (3 x 64 floats each), plus the trunk's dense-block
/// concatenations. SRVGGNetCompact needs far less; the bound serves both.
const FLOATS_PER_PIXEL: u64 = 16 * 3 * 64 + 512;
/// Im2col columns and the allocator's slack on top, in bytes.
const FIXED_BYTES: u64 = 64 << 20;

/// Bytes one tile of `side` input pixels (plus its context) needs, at `elem_bytes` a value.
pub fn tile_bytes(side: u32, elem_bytes: u64) -> u64 {
    let padded = u64::from(side) + 2 * TILE_PAD as u64;
    padded * padded * FLOATS_PER_PIXEL * elem_bytes.max(2) + FIXED_BYTES
}

/// The largest tile whose working memory fits in `available` bytes (None: not even the
/// smallest).
pub fn auto_tile(available: u64, elem_bytes: u64) -> Option<u32> {
    TILE_SIDES
        .into_iter()
        .find(|&side| tile_bytes(side, elem_bytes) <= available)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tiles_shrink_with_the_budget_and_fit_it() {
        let gib = 1u64 << 30;
        let big = auto_tile(16 * gib, 4).unwrap();
        let small = auto_tile(gib / 2, 4).unwrap();
        assert!(big > small, "{big} vs {small}");
        assert!(tile_bytes(small, 4) <= gib / 2);
        assert!(tile_bytes(small * 2, 4) > gib / 2);
        assert_eq!(auto_tile(1 << 20, 4), None);
        // Half precision halves the working set.
        assert!(auto_tile(gib, 2).unwrap() > auto_tile(gib, 4).unwrap());
    }
}
