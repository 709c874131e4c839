//! A model's sliding window as the native core writes it: the rows of one event at a time
//! into the window's buffers (the numpy arrays `window/ring.py` allocates), with what the
//! checks read of each event computed as it enters (its KS keys, its prediction bin, its
//! feature bins) and the running tallies kept exact on every write.
//!
//! The buffers are those of `ModelWindow`: features (size, F) in C order; the four scalar
//! columns (prediction, actual, latency, timestamp) as a (4, size) array (an event's error,
//! |prediction - actual|, is derived where it is read); the KS keys
//! (size, F) in Fortran order (feature j at `j * size + row`); the prediction bin (size,);
//! the feature bins (size, F) in C order; the tallies (3 + bins, F): NaN values, infinite
//! values, finite values outside the reference's range, then the count of each feature bin.
//! Every result is an integer or a copied float: equal to what the Python writes.

use crate::ks::Layout;
use crate::lookup;
use crate::prefetch::{prefetch, prefetch_span};

/// Rows of the scalar columns in the (4, size) array.
pub const PREDICTION: usize = 0;
pub const ACTUAL: usize = 1;
pub const LATENCY: usize = 2;
pub const TIMESTAMP: usize = 3;
pub const SCALARS: usize = 4;

/// The tallies' first rows; feature bin b is row `BINS + b`.
const MISSING: usize = 0;
const INFINITE: usize = 1;
const OUTSIDE: usize = 2;
pub const BINS: usize = 3;

/// A window's KS keys: none without a reference, else wide (32-bit counts) or narrow.
pub enum KeysMut<'a> {
    Absent,
    Wide(&'a mut [i64]),
    Narrow(&'a mut [i32]),
}

impl KeysMut<'_> {
    #[inline]
    fn get(&self, at: usize) -> i64 {
        match self {
            KeysMut::Absent => 0,
            KeysMut::Wide(k) => k[at],
            KeysMut::Narrow(k) => i64::from(k[at]),
        }
    }

    #[inline]
    fn set(&mut self, at: usize, key: i64) {
        match self {
            KeysMut::Absent => {}
            KeysMut::Wide(k) => k[at] = key,
            // keys of a narrow layout fit 31 bits (`Layout::max_count`)
            KeysMut::Narrow(k) => k[at] = key as i32,
        }
    }

    fn present(&self) -> bool {
        !matches!(self, KeysMut::Absent)
    }
}

/// The buffers of one window, borrowed for a batch.
pub struct Buffers<'a> {
    pub size: usize,
    pub features: &'a mut [f64],
    pub scalars: &'a mut [f64],
    pub keys: KeysMut<'a>,
    pub prediction_bin: &'a mut [i16],
    pub feature_bin: &'a mut [i16],
    pub tallies: &'a mut [i64],
}

/// What a value is looked up in as it enters: the reference's sorted columns (and their
/// sparse index), the prediction histogram's inner edges, each feature's inner bin edges.
pub struct Lookups<'a> {
    pub columns: Option<(lookup::Columns<'a>, lookup::Columns<'a>)>,
    pub sizes: &'a [i64],
    pub layout: Layout,
    pub prediction_edges: Option<&'a [f64]>,
    pub feature_edges: &'a [Vec<f64>],
}

/// Where the ring stands: the next row to write and how many rows are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub head: usize,
    pub count: usize,
}

/// One event's values, as the decoder read them, with its KS keys (`block_keys`; empty
/// when the window has no reference).
pub struct Event<'a> {
    pub features: &'a [f64],
    pub keys: &'a [i64],
    pub prediction: f64,
    pub actual: f64,
    pub latency_ms: f64,
    pub timestamp: f64,
}

/// The KS keys of a block of events (`features`, row-major, `width` per row) into `keys`
/// (the same shape): the look-ups in lockstep, so that with many models, whose reference
/// columns are out of the cache, the values do not wait for their columns one after
/// another. Does nothing without a reference.
pub fn block_keys(
    look: &Lookups<'_>,
    features: &[f64],
    width: usize,
    keys: &mut Vec<i64>,
) -> Result<(), lookup::LookupError> {
    let rows = features.len().checked_div(width).unwrap_or(0);
    keys.clear();
    keys.resize(rows * width, look.layout.missing_key());
    let Some((columns, index)) = &look.columns else {
        return Ok(());
    };
    if columns.features() != width {
        return Err(lookup::LookupError::Starts {
            features: width,
            got: columns.features() + 1,
        });
    }
    if rows < ROWS_BY_FEATURE {
        return lookup::keys_by_row(columns, index, look.layout, features, width, keys);
    }
    lookup::ks_keys(
        columns,
        Some(index),
        look.layout,
        |j| features.iter().skip(j).step_by(width).copied(),
        |j, row, key| keys[row * width + j] = key,
    )
}

/// From this many rows on, `block_keys` looks values up feature by feature (each column
/// then stays cached across its rows); below, row by row with the row's features in
/// lockstep (a few rows would leave the lockstep with nothing to overlap).
const ROWS_BY_FEATURE: usize = 8;

impl Buffers<'_> {
    fn width(&self) -> usize {
        self.features.len().checked_div(self.size).unwrap_or(0)
    }

    /// Writes one event at `pos.head`, taking the overwritten row's tallies away first.
    pub fn push(&mut self, look: &Lookups<'_>, pos: &mut Position, event: &Event<'_>) {
        let at = pos.head;
        if pos.count == self.size {
            self.tally(look, at, -1);
        }
        let f = self.width();
        self.features[at * f..(at + 1) * f].copy_from_slice(&event.features[..f]);
        let size = self.size;
        self.scalars[PREDICTION * size + at] = event.prediction;
        self.scalars[ACTUAL * size + at] = event.actual;
        self.scalars[LATENCY * size + at] = event.latency_ms;
        self.scalars[TIMESTAMP * size + at] = event.timestamp;
        if look.columns.is_some() {
            for (j, &key) in event.keys[..f].iter().enumerate() {
                self.keys.set(j * size + at, key);
            }
            if !self.prediction_bin.is_empty() {
                self.prediction_bin[at] = match look.prediction_edges {
                    Some(edges) => lookup::bin_of(edges, event.prediction),
                    None => -1,
                };
            }
        }
        if !self.feature_bin.is_empty() {
            for (j, edges) in look.feature_edges.iter().enumerate().take(f) {
                self.feature_bin[at * f + j] = lookup::bin_of(edges, event.features[j]);
            }
        }
        self.tally(look, at, 1);
        pos.head = (at + 1) % self.size;
        pos.count = (pos.count + 1).min(self.size);
    }

    /// Asks the memory for the lines the next `push` reads and writes (the row at `at` in
    /// every buffer, and the tallies), so that they arrive while another model runs.
    pub fn prefetch_row(&self, at: usize) {
        let f = self.width();
        let size = self.size;
        if at >= size {
            return;
        }
        prefetch_span(self.features.get(at * f..(at + 1) * f).unwrap_or(&[]));
        for k in 0..SCALARS {
            prefetch(self.scalars.get(k * size + at));
        }
        match &self.keys {
            KeysMut::Absent => {}
            KeysMut::Wide(k) => (0..f).for_each(|j| prefetch(k.get(j * size + at))),
            KeysMut::Narrow(k) => (0..f).for_each(|j| prefetch(k.get(j * size + at))),
        }
        prefetch_span(self.feature_bin.get(at * f..(at + 1) * f).unwrap_or(&[]));
        prefetch_span(self.tallies);
    }

    /// The reference counts (left, right) of feature `j` at row `at`, as its KS key holds
    /// them; None for a missing value or a window without keys.
    pub fn counts_at(&self, layout: Layout, j: usize, at: usize) -> Option<(i64, i64)> {
        if !self.keys.present() {
            return None;
        }
        let key = self.keys.get(j * self.size + at);
        let bits = layout.bits();
        (key != layout.missing_key()).then_some((key & ((1i64 << bits) - 1), key >> bits))
    }

    /// Adds (`sign` 1) or takes away (-1) what the row at `at` counts in the tallies.
    fn tally(&mut self, look: &Lookups<'_>, at: usize, sign: i64) {
        let f = self.width();
        let size = self.size;
        let mask = (1i64 << look.layout.bits()) - 1;
        let missing = look.layout.missing_key();
        let with_keys = self.keys.present() && look.columns.is_some();
        let with_bins = !self.feature_bin.is_empty();
        for j in 0..f {
            let x = self.features[at * f + j];
            if x.is_nan() {
                self.tallies[MISSING * f + j] += sign;
            } else if x.is_infinite() {
                self.tallies[INFINITE * f + j] += sign;
            }
            if with_keys {
                let key = self.keys.get(j * size + at);
                let below = key >> look.layout.bits() == 0;
                let above = key & mask == look.sizes[j];
                if key != missing && (below || above) {
                    self.tallies[OUTSIDE * f + j] += sign;
                }
            }
            if with_bins {
                let b = self.feature_bin[at * f + j];
                if b >= 0 {
                    self.tallies[(BINS + b as usize) * f + j] += sign;
                }
            }
        }
    }

    /// The tallies counted afresh over the filled rows `0..count` (after writes that did
    /// not keep them, e.g. a window loaded from a snapshot).
    pub fn recount(&mut self, look: &Lookups<'_>, count: usize) {
        self.tallies.fill(0);
        for at in 0..count.min(self.size) {
            self.tally(look, at, 1);
        }
    }
}

/// numpy's sum of a contiguous float64 array, to the last bit: `0.0 + pairwise(values)`,
/// the pairwise sum of numpy's reduction loop (eight accumulators up to 128 values, halves
/// cut at a multiple of eight above).
pub fn numpy_sum(values: &[f64]) -> f64 {
    0.0 + pairwise(values)
}

fn pairwise(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = -0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise(&a[..half]) + pairwise(&a[half..])
    }
}

/// The latency histogram's bucket of a latency in seconds: how many bounds lie below it
/// (`numpy.searchsorted(bounds, seconds, side="left")`).
#[inline]
pub fn latency_bucket(bounds: &[f64], seconds: f64) -> usize {
    bounds.partition_point(|&b| b < seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_reads_nothing_and_takes_any_row() {
        let (mut features, mut scalars) = (vec![1.0; 6], vec![2.0; 12]);
        let (mut keys, mut pbin, mut fbin) = (vec![3i32; 6], vec![0i16; 3], vec![0i16; 6]);
        let mut tallies = vec![0i64; 8];
        let buffers = Buffers {
            size: 3,
            features: &mut features,
            scalars: &mut scalars,
            keys: KeysMut::Narrow(&mut keys),
            prediction_bin: &mut pbin,
            feature_bin: &mut fbin,
            tallies: &mut tallies,
        };
        for at in 0..5 {
            buffers.prefetch_row(at); // rows past the window: nothing
        }
        assert_eq!(buffers.features, &[1.0; 6]);
        assert_eq!(buffers.scalars, &[2.0; 12]);
    }

    #[test]
    fn a_full_ring_overwrites_its_oldest_row_and_keeps_the_tallies() {
        let reference = [1.0, 2.0, 3.0];
        let index = lookup::sparse_index(&reference);
        let cols = (
            lookup::Columns::new(&reference, &[0, 3], 1).unwrap(),
            lookup::Columns::new(&index, &[0, index.len() as i64], 1).unwrap(),
        );
        let sizes = [3i64];
        let edges = vec![vec![2.0]];
        let look = Lookups {
            columns: Some(cols),
            sizes: &sizes,
            layout: Layout::new(32).unwrap(),
            prediction_edges: Some(&[0.5]),
            feature_edges: &edges,
        };
        let (mut features, mut scalars) = (vec![f64::NAN; 2], vec![f64::NAN; 8]);
        let mut keys = vec![0i64; 2];
        let (mut pbin, mut fbin) = (vec![-1i16; 2], vec![-1i16; 2]);
        let mut tallies = vec![0i64; 5];
        let mut buf = Buffers {
            size: 2,
            features: &mut features,
            scalars: &mut scalars,
            keys: KeysMut::Wide(&mut keys),
            prediction_bin: &mut pbin,
            feature_bin: &mut fbin,
            tallies: &mut tallies,
        };
        let mut pos = Position { head: 0, count: 0 };
        let rows = [0.0, f64::NAN, 2.0];
        let mut event_keys = Vec::new();
        block_keys(&look, &rows, 1, &mut event_keys).unwrap();
        for (i, (x, p)) in [(0.0, 0.0), (f64::NAN, 1.0), (2.0, 1.0)]
            .into_iter()
            .enumerate()
        {
            let event = Event {
                features: &[x],
                keys: &event_keys[i..i + 1],
                prediction: p,
                actual: 0.25,
                latency_ms: 1.0,
                timestamp: 2.0,
            };
            buf.push(&look, &mut pos, &event);
        }
        assert_eq!(pos, Position { head: 1, count: 2 });
        // rows: 0 holds 2.0 (the third event), 1 holds NaN
        assert_eq!(buf.features[0], 2.0);
        assert_eq!(buf.keys.get(0), (2 << 32) | 1);
        assert_eq!(buf.keys.get(1), i64::MAX);
        assert_eq!(buf.prediction_bin, &[1, 1]);
        assert_eq!(buf.scalars[ACTUAL * 2], 0.25);
        // missing 1, infinite 0, outside 0 (0.0 left with the first row), bins: [0, 1]
        assert_eq!(buf.tallies, &[1, 0, 0, 0, 1]);
        let kept = buf.tallies.to_vec();
        buf.recount(&look, pos.count);
        assert_eq!(buf.tallies, kept.as_slice());
    }

    #[test]
    fn numpy_sum_of_few_values_is_their_running_sum() {
        assert_eq!(numpy_sum(&[]), 0.0);
        assert!(numpy_sum(&[-0.0]).is_sign_positive());
        assert_eq!(numpy_sum(&[1.0, 2.0, 3.5]), 6.5);
        let many: Vec<f64> = (0..300).map(f64::from).collect();
        assert_eq!(numpy_sum(&many), 44_850.0);
    }

    #[test]
    fn latency_buckets_hold_values_at_their_upper_bound() {
        let bounds = [0.001, 0.01];
        assert_eq!(latency_bucket(&bounds, 0.001), 0);
        assert_eq!(latency_bucket(&bounds, 0.002), 1);
        assert_eq!(latency_bucket(&bounds, 1.0), 2);
    }
}
