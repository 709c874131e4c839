//! Per-event reference look-ups: what a window keeps of each value as it enters.
//!
//! For KS, each value x of feature j becomes one key holding the reference counts
//! right = #{r <= x} and left = #{r < x} of that feature's sorted reference column,
//! `right << bits | left`, or the missing key when x is not finite: exactly what
//! `PreparedReference.cdf_counts` followed by `detectors.ks.ks_keys` gives. For PSI and
//! Jensen-Shannon, each value becomes its bin: the number of the feature's inner bin edges
//! at or below it (`detectors.numeric.bin_index`), -1 when it is not finite.
//!
//! Both are binary searches and integer packing: the results are integers, equal to
//! numpy's whatever the order of evaluation. Nothing here knows Python: `lib.rs` wraps it.

use crate::ks::Layout;
use std::borrow::Cow;
use std::fmt;

/// Why the look-ups cannot be made; `lib.rs` raises these as ValueError.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    Starts {
        features: usize,
        got: usize,
    },
    Offsets {
        feature: usize,
        start: i64,
        stop: i64,
        len: usize,
    },
    TooLarge {
        feature: usize,
        size: usize,
        max: i64,
    },
    Edges {
        got: usize,
        features: usize,
    },
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::Starts { features, got } => write!(
                f,
                "column_starts: {got} values for {features} features (expected {})",
                features + 1
            ),
            LookupError::Offsets {
                feature,
                start,
                stop,
                len,
            } => write!(
                f,
                "column_starts[{feature}..{}]: {start}..{stop} is not a range of the {len} \
                 reference values",
                feature + 1
            ),
            LookupError::TooLarge { feature, size, max } => write!(
                f,
                "feature {feature}: {size} reference values do not fit these keys (at most \
                 {max}; use bits=32)"
            ),
            LookupError::Edges { got, features } => write!(
                f,
                "edges: {got} columns for a window of {features} features"
            ),
        }
    }
}

impl std::error::Error for LookupError {}

/// `#{r <= x}` and `#{r < x}` in an ascending column of finite values, for a finite x.
#[inline]
pub fn counts(column: &[f64], x: f64) -> (usize, usize) {
    let right = column.partition_point(|&r| r <= x);
    // #{r < x} differs only when x is itself a reference value: then column[right - 1] == x.
    if right > 0 && column[right - 1] == x {
        (right, column[..right].partition_point(|&r| r < x))
    } else {
        (right, right)
    }
}

/// Values of a sorted column kept in a sparse index: every `STRIDE`-th. A column of 10 000
/// values is 80 KB, and with tens of models their references leave the cache: a plain
/// binary search then misses on most of its 14 steps. The index (a thirty-second of the
/// column) stays cached and narrows the search to one run of `STRIDE` values, a few cache
/// lines. Measured with 50 models of 20 features: see docs/benchmarks.md.
pub const STRIDE: usize = 32;

/// The sparse index of one column: `column[0], column[STRIDE], column[2 STRIDE], ...`.
pub fn sparse_index(column: &[f64]) -> Vec<f64> {
    column.iter().step_by(STRIDE).copied().collect()
}

/// `#{r in column : below(r)}` for a predicate true on a prefix of the ascending column,
/// found through its sparse index (which holds every `STRIDE`-th value of it).
#[inline]
fn prefix_len(column: &[f64], index: &[f64], below: impl Fn(f64) -> bool) -> usize {
    run_prefix_len(column, index.partition_point(|&v| below(v)), below)
}

/// The prefix length in the column, given `t`, how many of its index values are below: the
/// answer lies in the run after index value t - 1.
#[inline]
fn run_prefix_len(column: &[f64], t: usize, below: impl Fn(f64) -> bool) -> usize {
    if t == 0 {
        return 0; // column[0] is not below
    }
    // column[(t - 1) STRIDE] is below; column[t STRIDE] (if any) is not
    let lo = (t - 1) * STRIDE + 1;
    let hi = (t * STRIDE).min(column.len());
    // counted, not searched: the run is ascending, so the values below are its prefix. The
    // count reads the run's cache lines with independent loads, which a column out of the
    // cache fetches together; a binary search would wait for each of them in turn.
    lo + column[lo..hi].iter().filter(|&&v| below(v)).count()
}

/// Values searched together in `prefix_lens`.
pub const LANES: usize = 32;

/// For each x of `xs` (at most `LANES`), `#{r in column : r < x}` when `STRICT`, else
/// `#{r <= x}`, into `out`. The searches advance in lockstep, one branch-free step per
/// value per halving: the loads of different values do not wait for each other, which is
/// what matters when the column is not in the cache (many models' references are not).
#[inline]
pub fn prefix_lens<const STRICT: bool>(column: &[f64], xs: &[f64], out: &mut [usize]) {
    let n = xs.len().min(out.len());
    let below = |r: f64, x: f64| if STRICT { r < x } else { r <= x };
    if column.is_empty() {
        out[..n].fill(0);
        return;
    }
    let mut base = [0usize; LANES];
    let base = &mut base[..n];
    let mut len = column.len();
    while len > 1 {
        let half = len / 2;
        for (b, &x) in base.iter_mut().zip(xs) {
            // a select, not a branch: which way a search goes is random, and a mispredicted
            // branch per step cost more than the step (bench_native_lookups.py)
            *b += std::hint::select_unpredictable(below(column[*b + half], x), half, 0);
        }
        len -= half;
    }
    for ((o, &b), &x) in out.iter_mut().zip(base.iter()).zip(xs) {
        *o = b + usize::from(below(column[b], x));
    }
}

/// The reference's sorted columns laid end to end: feature j is `flat[starts[j]..starts[j+1]]`.
pub struct Columns<'a> {
    flat: &'a [f64],
    starts: Cow<'a, [usize]>,
}

impl<'a> Columns<'a> {
    /// Checks that `starts` (F + 1 offsets) cuts `flat` into F ascending ranges.
    pub fn new(flat: &'a [f64], starts: &[i64], features: usize) -> Result<Self, LookupError> {
        if starts.len() != features + 1 {
            return Err(LookupError::Starts {
                features,
                got: starts.len(),
            });
        }
        let mut out = Vec::with_capacity(starts.len());
        for j in 0..features {
            let (start, stop) = (starts[j], starts[j + 1]);
            if start < 0 || stop < start || stop as usize > flat.len() {
                return Err(LookupError::Offsets {
                    feature: j,
                    start,
                    stop,
                    len: flat.len(),
                });
            }
            out.push(start as usize);
        }
        out.push(starts[features].max(0) as usize);
        Ok(Columns {
            flat,
            starts: Cow::Owned(out),
        })
    }

    /// The offsets of columns made by `new` (`offsets()`), with the same `flat`: checked
    /// again only against its length, and not copied (a window's per-batch look-ups).
    pub fn with_offsets(flat: &'a [f64], offsets: &'a [usize]) -> Result<Self, LookupError> {
        let last = offsets.last().copied().unwrap_or(0);
        if offsets.is_empty() || last > flat.len() {
            return Err(LookupError::Offsets {
                feature: offsets.len().saturating_sub(1),
                start: 0,
                stop: last as i64,
                len: flat.len(),
            });
        }
        Ok(Columns {
            flat,
            starts: Cow::Borrowed(offsets),
        })
    }

    /// The column offsets, checked, for `with_offsets`.
    pub fn offsets(&self) -> &[usize] {
        &self.starts
    }

    pub fn features(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn column(&self, j: usize) -> &'a [f64] {
        &self.flat[self.starts[j]..self.starts[j + 1]]
    }

    /// Every column's values, end to end.
    pub fn all(&self) -> &'a [f64] {
        let (first, last) = (self.starts[0], self.starts[self.starts.len() - 1]);
        self.flat.get(first..last).unwrap_or(&[])
    }
}

/// One value to count through a sparse index: the value, its column (not empty) and the
/// column's sparse index.
#[derive(Clone, Copy)]
struct Lane<'a> {
    column: &'a [f64],
    index: &'a [f64],
    x: f64,
}

const EMPTY: Lane<'static> = Lane {
    column: &[],
    index: &[],
    x: 0.0,
};

/// `counts` of each lane (at most `LANES`), found through the sparse index, into `right`
/// and `left`, the lanes in
/// lockstep, so that the loads of different lanes do not wait for each other (with many
/// models the columns and their indexes are out of the cache):
/// 1. each value among its index's values, one branch-free halving step per lane at a time;
/// 2. each value's run of `STRIDE` column values touched, so that the runs' cache lines are
///    fetched together, not one lane's after another's;
/// 3. each run counted; `#{r < x}` is searched again only where x is a reference value.
fn indexed_counts(lanes: &[Lane<'_>], right: &mut [usize], left: &mut [usize]) {
    let n = lanes.len().min(LANES);
    let lanes = &lanes[..n];
    let mut base = [0usize; LANES];
    let mut len = [0usize; LANES];
    for (l, lane) in len.iter_mut().zip(lanes) {
        *l = lane.index.len();
    }
    let mut longest = len[..n].iter().copied().max().unwrap_or(0);
    while longest > 1 {
        // a lane whose length is down to 1 steps by 0: every length follows `longest`'s
        // halving, so all reach 1 together with it
        for ((b, l), lane) in base.iter_mut().zip(len.iter_mut()).zip(lanes) {
            let half = *l / 2;
            // a select, not a branch: which way a search goes is random, and a mispredicted
            // branch per step cost more than the step (bench_native_lookups.py)
            *b += std::hint::select_unpredictable(lane.index[*b + half] <= lane.x, half, 0);
            *l -= half;
        }
        longest -= longest / 2;
    }
    for ((t, &b), lane) in right.iter_mut().zip(&base).zip(lanes) {
        *t = b + usize::from(lane.index[b] <= lane.x);
    }
    count_runs(
        |i| (lanes[i].column, lanes[i].index, lanes[i].x),
        n,
        right,
        left,
    );
}

/// Steps 2 and 3 of `indexed_counts`, given in `right` each lane's count in its index;
/// `lane(i)` is lane i's column, index and value.
#[inline]
fn count_runs<'a>(
    lane: impl Fn(usize) -> (&'a [f64], &'a [f64], f64),
    n: usize,
    right: &mut [usize],
    left: &mut [usize],
) {
    let mut touched = 0.0;
    for (i, &t) in right[..n].iter().enumerate() {
        let (column, _, _) = lane(i);
        let lo = t.saturating_sub(1) * STRIDE;
        let hi = (t * STRIDE).min(column.len()).max(lo + 1) - 1;
        touched += column[lo] + column[(lo + hi) / 2] + column[hi];
    }
    std::hint::black_box(touched);
    for i in 0..n {
        let (column, index, x) = lane(i);
        let r = run_prefix_len(column, right[i], |v| v <= x);
        right[i] = r;
        left[i] = if r > 0 && column[r - 1] == x {
            prefix_len(column, index, |v| v < x)
        } else {
            r
        };
    }
}

/// `counts` of each of `xs` (finite values) in one column, through its sparse index,
/// into `right` and `left` (as long as `xs`): `indexed_counts` with every lane in the same
/// column, the index searched in `prefix_lens`, whose lanes share their length.
pub fn counts_in_column(
    column: &[f64],
    index: &[f64],
    xs: &[f64],
    right: &mut [usize],
    left: &mut [usize],
) {
    if column.is_empty() {
        right[..xs.len()].fill(0);
        left[..xs.len()].fill(0);
        return;
    }
    for ((xs, right), left) in xs
        .chunks(LANES)
        .zip(right.chunks_mut(LANES))
        .zip(left.chunks_mut(LANES))
    {
        prefix_lens::<false>(index, xs, right);
        count_runs(|i| (column, index, xs[i]), xs.len(), right, left);
    }
}

/// Fails when a column is too large for the layout (`detectors.ks.key_bits` picks one that
/// fits).
fn check_fits(columns: &Columns<'_>, layout: Layout) -> Result<(), LookupError> {
    let max = layout.max_count();
    for j in 0..columns.features() {
        let size = columns.column(j).len();
        if size as i64 > max {
            return Err(LookupError::TooLarge {
                feature: j,
                size,
                max,
            });
        }
    }
    Ok(())
}

/// The KS key of every value, feature by feature: `values(j)` yields feature j's values in
/// row order, `out(j, row, key)` stores a key; `index`, when given, holds each column's
/// sparse index (`sparse_index`) and is searched first (else both counts are searched in
/// lockstep over the whole column). Fails when a column is too large for the layout.
pub fn ks_keys<I: Iterator<Item = f64>>(
    columns: &Columns<'_>,
    index: Option<&Columns<'_>>,
    layout: Layout,
    values: impl Fn(usize) -> I,
    mut out: impl FnMut(usize, usize, i64),
) -> Result<(), LookupError> {
    check_fits(columns, layout)?;
    let key = |right: usize, left: usize| ((right as i64) << layout.bits()) | left as i64;
    let missing = layout.missing_key();
    let mut xs = [0.0f64; LANES];
    let mut rows = [0usize; LANES];
    let mut right = [0usize; LANES];
    let mut left = [0usize; LANES];
    for j in 0..columns.features() {
        let column = columns.column(j);
        let sparse = index.map(|i| i.column(j));
        let mut lane = 0;
        let mut values = values(j).enumerate().peekable();
        while let Some((row, x)) = values.next() {
            if !x.is_finite() {
                out(j, row, missing);
            } else if column.is_empty() {
                out(j, row, 0);
            } else {
                xs[lane] = x;
                rows[lane] = row;
                lane += 1;
            }
            if lane == LANES || (lane > 0 && values.peek().is_none()) {
                if let Some(index) = sparse {
                    counts_in_column(column, index, &xs[..lane], &mut right, &mut left);
                } else {
                    prefix_lens::<false>(column, &xs[..lane], &mut right[..lane]);
                    prefix_lens::<true>(column, &xs[..lane], &mut left[..lane]);
                }
                for i in 0..lane {
                    out(j, rows[i], key(right[i], left[i]));
                }
                lane = 0;
            }
        }
    }
    Ok(())
}

/// The KS keys of a block of rows (`rows`, row-major, `width` values a row, as many as
/// the columns) into `out` (the same shape), row by row with each row's features looked up
/// in lockstep: one event alone in its block (a model among thousands gets about one per
/// batch) still has its features' look-ups wait together, not one after another. Fails
/// when a column is too large for the layout.
pub fn keys_by_row(
    columns: &Columns<'_>,
    index: &Columns<'_>,
    layout: Layout,
    rows: &[f64],
    width: usize,
    out: &mut [i64],
) -> Result<(), LookupError> {
    check_fits(columns, layout)?;
    let features = columns.features().min(width);
    let mut lanes = [EMPTY; LANES];
    let mut at = [0usize; LANES];
    let mut right = [0usize; LANES];
    let mut left = [0usize; LANES];
    for (row, out) in rows
        .chunks_exact(width.max(1))
        .zip(out.chunks_exact_mut(width.max(1)))
    {
        let mut j = 0;
        while j < features {
            let mut lane = 0;
            while lane < LANES && j < features {
                let (column, x) = (columns.column(j), row[j]);
                if !x.is_finite() {
                    out[j] = layout.missing_key();
                } else if column.is_empty() {
                    out[j] = 0;
                } else {
                    lanes[lane] = Lane {
                        column,
                        index: index.column(j),
                        x,
                    };
                    at[lane] = j;
                    lane += 1;
                }
                j += 1;
            }
            indexed_counts(&lanes[..lane], &mut right, &mut left);
            for i in 0..lane {
                out[at[i]] = ((right[i] as i64) << layout.bits()) | left[i] as i64;
            }
        }
    }
    Ok(())
}

/// The bin of a value among a feature's inner edges (ascending, padded with +inf, which no
/// finite value reaches): how many edges are at or below it; -1 when it is not finite.
#[inline]
pub fn bin_of(edges: &[f64], x: f64) -> i16 {
    if x.is_finite() {
        edges.partition_point(|&e| e <= x) as i16
    } else {
        -1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_every_column_end_to_end() {
        let flat = [9.0, 1.0, 2.0, 3.0, 4.0, 9.0];
        let columns = Columns::new(&flat, &[1, 3, 5], 2).unwrap();
        assert_eq!(columns.all(), &[1.0, 2.0, 3.0, 4.0]);
        assert!(Columns::new(&flat, &[2, 2], 1).unwrap().all().is_empty());
    }

    #[test]
    fn counts_at_ties_between_and_outside() {
        let col = [1.0, 2.0, 2.0, 3.0, 5.0];
        assert_eq!(counts(&col, 2.0), (3, 1));
        assert_eq!(counts(&col, 4.0), (4, 4));
        assert_eq!(counts(&col, 0.0), (0, 0));
        assert_eq!(counts(&col, 5.0), (5, 4));
        assert_eq!(counts(&col, 9.0), (5, 5));
        assert_eq!(counts(&[], 1.0), (0, 0));
        assert_eq!(counts(&[0.0], -0.0), (1, 0)); // -0.0 == 0.0, as numpy compares
    }

    #[test]
    fn keys_pack_both_counts_and_mark_missing() {
        let flat = [1.0, 2.0, 2.0, 10.0, 20.0];
        let columns = Columns::new(&flat, &[0, 3, 5], 2).unwrap();
        let layout = Layout::new(4).unwrap();
        let rows = [[2.0, 15.0], [f64::NAN, f64::INFINITY]];
        let mut keys = [[0i64; 2]; 2];
        ks_keys(
            &columns,
            None,
            layout,
            |j| rows.iter().map(move |r| r[j]),
            |j, row, k| keys[row][j] = k,
        )
        .unwrap();
        assert_eq!(keys[0], [(3 << 4) | 1, (1 << 4) | 1]);
        assert_eq!(keys[1], [layout.missing_key(), layout.missing_key()]);
    }

    #[test]
    fn bad_offsets_and_sizes_are_errors() {
        let flat = [1.0, 2.0];
        assert!(Columns::new(&flat, &[0, 3], 1).is_err());
        assert!(Columns::new(&flat, &[0, 1], 2).is_err());
        assert!(Columns::new(&flat, &[1, 0], 1).is_err());
        let big = vec![0.0; 20];
        let columns = Columns::new(&big, &[0, 20], 1).unwrap();
        let layout = Layout::new(4).unwrap(); // at most 14 values per feature
        let err = ks_keys(&columns, None, layout, |_| std::iter::empty(), |_, _, _| {});
        assert!(matches!(err, Err(LookupError::TooLarge { .. })));
    }

    #[test]
    fn columns_rebuilt_from_their_offsets_are_the_same_columns() {
        let flat = [1.0, 2.0, 2.0, 10.0, 20.0];
        let columns = Columns::new(&flat, &[0, 3, 5], 2).unwrap();
        let again = Columns::with_offsets(&flat, columns.offsets()).unwrap();
        assert_eq!(again.features(), 2);
        assert_eq!(again.column(1), &[10.0, 20.0]);
        assert!(Columns::with_offsets(&flat[..4], columns.offsets()).is_err());
        assert!(Columns::with_offsets(&flat, &[]).is_err());
    }

    #[test]
    fn indexed_counts_equal_plain_ones() {
        let mut column: Vec<f64> = (0..1000).map(|i| f64::from(i / 7)).collect();
        column.extend([200.0, 200.0, 300.0]);
        let indexed = |column: &[f64], xs: &[f64]| {
            let (mut right, mut left) = (vec![0; xs.len()], vec![0; xs.len()]);
            counts_in_column(column, &sparse_index(column), xs, &mut right, &mut left);
            right.into_iter().zip(left).collect::<Vec<_>>()
        };
        // more values than one lockstep's lanes, ties, values between and outside
        let xs: Vec<f64> = (0..1248).map(|i| -2.0 + f64::from(i) * 0.25).collect();
        let plain: Vec<_> = xs.iter().map(|&x| counts(&column, x)).collect();
        assert_eq!(indexed(&column, &xs), plain);
        for len in [0, 1, STRIDE - 1, STRIDE, STRIDE + 1, 2 * STRIDE] {
            let column: Vec<f64> = (0..len).map(|i| (i / 3) as f64).collect();
            let xs = [-1.0, 0.0, 0.5, 3.0, 100.0];
            let plain: Vec<_> = xs.iter().map(|&x| counts(&column, x)).collect();
            assert_eq!(indexed(&column, &xs), plain, "{len} values");
        }
    }

    #[test]
    fn keys_by_row_and_by_feature_are_the_plain_counts() {
        // columns of ties, of one value, empty, and longer than an index stride
        let cols: Vec<Vec<f64>> = vec![
            (0..100).map(|i| f64::from(i / 3)).collect(),
            vec![2.0],
            vec![],
            (0..1000).map(|i| f64::from(i) * 0.5).collect(),
        ];
        let flat: Vec<f64> = cols.concat();
        let mut starts = vec![0i64];
        for c in &cols {
            starts.push(starts.last().unwrap() + c.len() as i64);
        }
        let sparse: Vec<Vec<f64>> = cols.iter().map(|c| sparse_index(c)).collect();
        let sparse_flat = sparse.concat();
        let mut sparse_starts = vec![0i64];
        for c in &sparse {
            sparse_starts.push(sparse_starts.last().unwrap() + c.len() as i64);
        }
        let columns = Columns::new(&flat, &starts, 4).unwrap();
        let index = Columns::new(&sparse_flat, &sparse_starts, 4).unwrap();
        let layout = Layout::new(32).unwrap();
        let xs = [
            -1.0,
            0.0,
            2.0,
            7.5,
            33.0,
            499.5,
            600.0,
            f64::NAN,
            f64::INFINITY,
        ];
        let rows: Vec<[f64; 4]> = (0..40)
            .map(|i| std::array::from_fn(|j| xs[(i * 7 + j * 3) % xs.len()]))
            .collect();
        let expected = |j: usize, x: f64| {
            if x.is_finite() {
                let (right, left) = counts(&cols[j], x);
                ((right as i64) << 32) | left as i64
            } else {
                layout.missing_key()
            }
        };
        let flat_rows: Vec<f64> = rows.concat();
        let mut by_row = vec![0i64; flat_rows.len()];
        keys_by_row(&columns, &index, layout, &flat_rows, 4, &mut by_row).unwrap();
        for (row, got) in rows.iter().zip(by_row.chunks_exact(4)) {
            for j in 0..4 {
                assert_eq!(got[j], expected(j, row[j]), "row {row:?}, feature {j}");
            }
        }
        for with_index in [true, false] {
            let mut keys = vec![[0i64; 4]; rows.len()];
            ks_keys(
                &columns,
                with_index.then_some(&index),
                layout,
                |j| rows.iter().map(move |r| r[j]),
                |j, row, key| keys[row][j] = key,
            )
            .unwrap();
            for (row, got) in rows.iter().zip(&keys) {
                for j in 0..4 {
                    assert_eq!(got[j], expected(j, row[j]), "index {with_index}, {row:?}");
                }
            }
        }
    }

    #[test]
    fn bins_count_edges_at_or_below() {
        let edges = [1.0, 2.0, f64::INFINITY];
        assert_eq!(bin_of(&edges, 0.5), 0);
        assert_eq!(bin_of(&edges, 1.0), 1);
        assert_eq!(bin_of(&edges, 7.0), 2);
        assert_eq!(bin_of(&edges, f64::NAN), -1);
        assert_eq!(bin_of(&edges, f64::NEG_INFINITY), -1);
    }
}
