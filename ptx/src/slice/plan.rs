//! Planning the slices of one launch: which block ranges, in which order.
//!
//! A slice is a box of blocks (`offset`, `grid`) of the original grid; launched through the
//! sliced entry with its offset and the original grid as extra parameters, its blocks see the
//! `%ctaid`/`%nctaid` they would see in the whole launch. [`plan_slices`] cuts along the
//! outermost dimension that has more than one block (z, then y, then x), so every slice is a
//! contiguous range of linear block indices (`x + X·(y + Y·z)`) and the slices follow one
//! another in that order, which is the order hardware tends to dispatch blocks in. When more
//! slices are asked for than that dimension has blocks, it is cut into single layers and the
//! slices are shared out among the layers, each layer cut further along the next inner
//! dimension; so the plan has `min(slices, blocks)` slices.

/// One block range of a launch: the blocks `offset + (0..grid)` of the original grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slice {
    /// Index of the slice's first block in the original grid (x, y, z).
    pub offset: [u32; 3],
    /// The slice's own grid: what the sliced launch is given as its grid dimensions.
    pub grid: [u32; 3],
}

impl Slice {
    /// The values of the six extra parameters of a sliced entry (`crate::slice`): this slice's
    /// block offset x, y, z and the original grid's dimensions x, y, z.
    pub fn params(&self, original_grid: [u32; 3]) -> [u32; 6] {
        let [ox, oy, oz] = self.offset;
        let [gx, gy, gz] = original_grid;
        [ox, oy, oz, gx, gy, gz]
    }

    /// Number of blocks in the slice.
    pub fn blocks(&self) -> u64 {
        self.grid.iter().map(|&d| u64::from(d)).product()
    }
}

/// Cuts a launch of `grid` into `slices` block ranges (at most: `min(slices, blocks)` of them;
/// `slices == 0` counts as 1), in linear block order, covering every block exactly once. A grid
/// with a zero dimension has no blocks and gives no slice.
pub fn plan_slices(grid: [u32; 3], slices: u32) -> Vec<Slice> {
    let mut out = Vec::new();
    if grid.contains(&0) {
        return out;
    }
    let whole = Slice {
        offset: [0; 3],
        grid,
    };
    cut(whole, slices.max(1), &mut out);
    out
}

/// Appends `k` (at most: one per block) slices of `b` to `out`, in linear block order.
fn cut(b: Slice, k: u32, out: &mut Vec<Slice>) {
    let Some(d) = (0..3).rev().find(|&d| b.grid[d] > 1) else {
        out.push(b);
        return;
    };
    if k <= 1 {
        out.push(b);
        return;
    }
    let extent = b.grid[d];
    if k <= extent {
        for i in 0..k {
            let (lo, hi) = (share(extent, k, i), share(extent, k, i + 1));
            out.push(layer(b, d, lo, hi - lo));
        }
        return;
    }
    // More slices than layers: one layer each, the slices shared out as evenly as possible.
    for j in 0..extent {
        let n = share(k, extent, j + 1) - share(k, extent, j);
        cut(layer(b, d, j, 1), n, out);
    }
}

/// `total · i / parts`, rounded down (the `i`-th cut of `total` into `parts` near-equal parts).
fn share(total: u32, parts: u32, i: u32) -> u32 {
    let v = u64::from(total) * u64::from(i) / u64::from(parts.max(1));
    u32::try_from(v).unwrap_or(total)
}

/// The part of `b` whose dimension `d` runs over `start..start + len` (relative to `b`).
fn layer(b: Slice, d: usize, start: u32, len: u32) -> Slice {
    let mut s = b;
    s.offset[d] = b.offset[d].saturating_add(start);
    s.grid[d] = len;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Linear index of block (x, y, z) in `grid`.
    fn linear(grid: [u32; 3], b: [u32; 3]) -> u64 {
        let [gx, gy, _] = grid.map(u64::from);
        let [x, y, z] = b.map(u64::from);
        x + gx * (y + gy * z)
    }

    /// Checks that `plan` covers `grid` exactly once, each slice a contiguous range of linear
    /// block indices following the previous one.
    fn check(grid: [u32; 3], k: u32, plan: &[Slice]) {
        let total: u64 = grid.iter().map(|&d| u64::from(d)).product();
        assert_eq!(
            plan.len() as u64,
            u64::from(k.max(1)).min(total),
            "{plan:?}"
        );
        let mut next = 0u64;
        for s in plan {
            assert!(s.blocks() > 0, "{s:?}");
            for (d, &extent) in grid.iter().enumerate() {
                assert!(u64::from(s.offset[d]) + u64::from(s.grid[d]) <= u64::from(extent));
            }
            let first = linear(grid, s.offset);
            let last = linear(grid, [0, 1, 2].map(|d| s.offset[d] + s.grid[d] - 1));
            assert_eq!(first, next, "slice {s:?} does not follow on");
            assert_eq!(
                last - first + 1,
                s.blocks(),
                "slice {s:?} is not contiguous"
            );
            next = last + 1;
        }
        assert_eq!(next, total);
    }

    #[test]
    fn cuts_the_outermost_dimension_first() {
        let p = plan_slices([8, 4, 3], 3);
        assert!(p.iter().all(|s| s.grid == [8, 4, 1]));
        assert_eq!(p[2].offset, [0, 0, 2]);
        let p = plan_slices([8, 4, 1], 2);
        assert_eq!(
            p[1],
            Slice {
                offset: [0, 2, 0],
                grid: [8, 2, 1]
            }
        );
        let p = plan_slices([10, 1, 1], 3);
        let sizes: Vec<u32> = p.iter().map(|s| s.grid[0]).collect();
        assert_eq!(sizes, [3, 3, 4]);
        check([10, 1, 1], 3, &p);
    }

    #[test]
    fn more_slices_than_layers_cut_inner_dimensions() {
        let p = plan_slices([6, 2, 1], 4);
        check([6, 2, 1], 4, &p);
        assert_eq!(
            p[1],
            Slice {
                offset: [3, 0, 0],
                grid: [3, 1, 1]
            }
        );
        check([3, 4, 5], 7, &plan_slices([3, 4, 5], 7));
    }

    #[test]
    fn degenerate_requests() {
        assert!(plan_slices([0, 1, 1], 4).is_empty());
        assert_eq!(plan_slices([5, 5, 5], 0), plan_slices([5, 5, 5], 1));
        assert_eq!(plan_slices([1, 1, 1], 7).len(), 1);
        assert_eq!(plan_slices([4, 1, 1], 9).len(), 4);
        let big = [u32::MAX >> 1, 65_535, 65_535];
        let p = plan_slices(big, 5);
        assert_eq!(p.len(), 5);
        assert_eq!(p[4].offset[2] + p[4].grid[2], 65_535);
        assert_eq!(p[0].params(big), [0, 0, 0, u32::MAX >> 1, 65_535, 65_535]);
    }

    proptest! {
        #[test]
        fn every_block_exactly_once_in_order(
            x in 1u32..40, y in 1u32..12, z in 1u32..12, k in 0u32..50
        ) {
            check([x, y, z], k, &plan_slices([x, y, z], k));
        }

        #[test]
        fn large_grids(x in 1u32..(u32::MAX >> 1), y in 1u32..65_536, k in 1u32..300) {
            check([x, y, 1], k, &plan_slices([x, y, 1], k));
        }
    }
}
