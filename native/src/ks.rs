//! Two-sample Kolmogorov-Smirnov statistic of a window of packed reference counts.
//!
//! The same computation as `stream_monitor.detectors.ks.ks_statistic`, whose docstring has
//! the argument; in short: every window value x arrives as a key holding the reference
//! counts right = #{r <= x} and left = #{r < x}, `right << bits | left`. Both counts rise
//! with x, so sorting a feature's keys orders its values. With the keys sorted, at row i
//! (0-based) of n values against a reference of m values,
//!
//! - n m (F_win - F_ref)(x)  = (i + 1) m - right n  (the right limit, "above"),
//! - n m (F_ref - F_win)(x-) = left n - i m         (the left limit, "below"),
//!
//! and the statistic is the largest of them over every row, divided by n m. Those are
//! compared as exact integers; only the rows attaining the largest are then evaluated in
//! floating point, as `-(right/m - (i + 1)/n)` and `left/m - i/n`, the operations and
//! their order of the Python function (and of `scipy.stats.ks_2samp`), so the float is the
//! same to the last bit.
//!
//! Nothing here knows Python: `lib.rs` wraps it.

use std::fmt;

/// How keys pack their two counts: `bits` per count, 1..=15 for 32-bit keys (`2 bits <= 31`:
/// the missing key, all ones, stays positive), 32 for 64-bit keys (32-bit halves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    bits: u32,
}

impl Layout {
    pub fn new(bits: u32) -> Result<Self, KsError> {
        if (1..=15).contains(&bits) || bits == 32 {
            Ok(Layout { bits })
        } else {
            Err(KsError::Bits(bits))
        }
    }

    pub fn bits(self) -> u32 {
        self.bits
    }

    /// True when the keys are 64-bit integers (bits == 32), false for 32-bit ones.
    pub fn wide(self) -> bool {
        self.bits == 32
    }

    /// The key of a missing value, above every real key (`detectors.ks.missing_key`).
    pub fn missing_key(self) -> i64 {
        if self.wide() {
            i64::MAX
        } else {
            (1i64 << (2 * self.bits)) - 1
        }
    }

    /// The largest reference size whose counts the keys can hold below the missing key.
    pub fn max_count(self) -> i64 {
        if self.wide() {
            (1i64 << 31) - 2
        } else {
            (1i64 << self.bits) - 2
        }
    }
}

/// Why a window cannot be computed; `lib.rs` raises these as ValueError.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KsError {
    Bits(u32),
    Length {
        field: &'static str,
        got: usize,
        features: usize,
    },
    ReferenceSize {
        feature: usize,
        size: i64,
        max: i64,
    },
    Key {
        feature: usize,
        row: usize,
        key: i64,
        size: i64,
    },
    WindowSize {
        feature: usize,
        given: i64,
        counted: i64,
    },
}

impl fmt::Display for KsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KsError::Bits(bits) => write!(
                f,
                "bits: {bits} is not a key width (1 to 15 for int32 keys, 32 for int64 keys)"
            ),
            KsError::Length {
                field,
                got,
                features,
            } => write!(
                f,
                "{field}: {got} values for a window of {features} features"
            ),
            KsError::ReferenceSize { feature, size, max } => write!(
                f,
                "ref_sizes[{feature}]: {size} is not a reference size these keys can hold \
                 (0 to {max})"
            ),
            KsError::Key {
                feature,
                row,
                key,
                size,
            } => write!(
                f,
                "keys[{row}, {feature}]: {key} does not pack counts 0 <= left <= right <= \
                 {size} (the reference size) and is not the missing key"
            ),
            KsError::WindowSize {
                feature,
                given,
                counted,
            } => write!(
                f,
                "window_sizes[{feature}]: {given}, but the window holds {counted} keys that \
                 are not missing"
            ),
        }
    }
}

impl std::error::Error for KsError {}

/// A key the LSD radix sort can sort: an unsigned integer read as u64.
pub trait RadixKey: Copy + Ord + Default {
    const BITS: u32;
    fn to_u64(self) -> u64;
}

impl RadixKey for u32 {
    const BITS: u32 = 32;
    #[inline(always)]
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
}

impl RadixKey for u64 {
    const BITS: u32 = 64;
    #[inline(always)]
    fn to_u64(self) -> u64 {
        self
    }
}

/// Bits of a radix digit (docs/benchmarks.md: the widths measured on these keys).
pub const DIGIT_BITS: u32 = 8;
const BUCKETS: usize = 1 << DIGIT_BITS;
const MAX_PASSES: usize = (64 / DIGIT_BITS) as usize;
/// Below this many keys a comparison sort beats the histogram passes.
pub const RADIX_MIN: usize = 64;

/// Sorts `keys` ascending, all of which are below `1 << key_bits`: LSD radix sort on
/// `DIGIT_BITS`-bit digits, one histogram pass for all digits, a digit every key shares
/// skipped. `tmp`: scratch, reused.
pub fn radix_sort<K: RadixKey>(keys: &mut Vec<K>, tmp: &mut Vec<K>, key_bits: u32) {
    let n = keys.len();
    if n < RADIX_MIN {
        keys.sort_unstable();
        return;
    }
    let passes = key_bits.min(K::BITS).div_ceil(DIGIT_BITS) as usize;
    let mut hist = [[0u32; BUCKETS]; MAX_PASSES];
    let mask = (BUCKETS - 1) as u64;
    for &k in keys.iter() {
        let k = k.to_u64();
        for (pass, h) in hist[..passes].iter_mut().enumerate() {
            h[((k >> (DIGIT_BITS * pass as u32)) & mask) as usize] += 1;
        }
    }
    tmp.clear();
    tmp.resize(n, K::default());
    for (pass, h) in hist[..passes].iter_mut().enumerate() {
        let shift = DIGIT_BITS * pass as u32;
        let first = ((keys[0].to_u64() >> shift) & mask) as usize;
        if h[first] as usize == n {
            continue; // every key has this digit: the order stays
        }
        let mut sum = 0u32;
        for c in h.iter_mut() {
            let count = *c;
            *c = sum;
            sum += count;
        }
        for &k in keys.iter() {
            let d = ((k.to_u64() >> shift) & mask) as usize;
            tmp[h[d] as usize] = k;
            h[d] += 1;
        }
        std::mem::swap(keys, tmp);
    }
}

/// The statistic of one feature from its keys sorted ascending, recompacted as
/// `right << shift | left` (missing keys left out), against a reference of `m > 0` values.
/// `n m` must fit an i64 (the caller checks).
pub fn sorted_statistic<K: RadixKey>(sorted: &[K], shift: u32, m: i64) -> f64 {
    let n = sorted.len() as i64;
    if n == 0 || m == 0 {
        return 0.0;
    }
    let low = (1u64 << shift) - 1;
    let counts = |k: K| {
        let k = k.to_u64();
        ((k >> shift) as i64, (k & low) as i64)
    };
    // the largest n m difference, exactly
    let mut best = i64::MIN;
    for (at, &k) in sorted.iter().enumerate() {
        let (right, left) = counts(k);
        let at = at as i64;
        let above = (at + 1) * m - right * n;
        let below = left * n - at * m;
        best = best.max(above.max(below));
    }
    // the rows attaining it, in floating point as the Python forms them; `stat` starts at 0
    // and takes a candidate only when larger (numpy's maximum keeps the first of equals)
    let (mf, nf) = (m as f64, n as f64);
    let mut stat = 0.0f64;
    for (at, &k) in sorted.iter().enumerate() {
        let (right, left) = counts(k);
        let i = at as i64;
        if (i + 1) * m - right * n == best {
            let d = -(right as f64 / mf - (i + 1) as f64 / nf);
            if d > stat {
                stat = d;
            }
        }
        if left * n - i * m == best {
            let d = left as f64 / mf - i as f64 / nf;
            if d > stat {
                stat = d;
            }
        }
    }
    stat
}

/// Buffers reused from feature to feature.
#[derive(Default)]
pub struct Scratch {
    narrow: Vec<u32>,
    narrow_tmp: Vec<u32>,
    wide: Vec<u64>,
    wide_tmp: Vec<u64>,
}

/// Bits needed to write `m` (0 for 0).
fn bit_length(m: i64) -> u32 {
    64 - (m as u64).leading_zeros()
}

/// One feature: (statistic, values used). `keys`: the feature's keys in row order, `m`: its
/// reference size (checked by the caller against the layout). A feature with no value or an
/// empty reference gets (0, 0).
pub fn feature_statistic<I>(
    keys: I,
    m: i64,
    layout: Layout,
    feature: usize,
    scratch: &mut Scratch,
) -> Result<(f64, i64), KsError>
where
    I: IntoIterator<Item = i64>,
{
    if m == 0 {
        return Ok((0.0, 0));
    }
    // recompact to as few bits as this reference needs: fewer radix passes
    let shift = bit_length(m);
    if 2 * shift <= 32 {
        let n = gather(keys, m, layout, feature, shift, &mut scratch.narrow)?;
        radix_sort(&mut scratch.narrow, &mut scratch.narrow_tmp, 2 * shift);
        Ok(finish(&scratch.narrow, shift, m, n))
    } else {
        let n = gather(keys, m, layout, feature, shift, &mut scratch.wide)?;
        radix_sort(&mut scratch.wide, &mut scratch.wide_tmp, 2 * shift);
        Ok(finish(&scratch.wide, shift, m, n))
    }
}

fn finish<K: RadixKey>(sorted: &[K], shift: u32, m: i64, n: i64) -> (f64, i64) {
    if n == 0 {
        (0.0, 0)
    } else {
        (sorted_statistic(sorted, shift, m), n)
    }
}

/// The feature's keys that are not missing, checked and repacked with `shift`-bit counts
/// into `out`; returns how many.
fn gather<I, K>(
    keys: I,
    m: i64,
    layout: Layout,
    feature: usize,
    shift: u32,
    out: &mut Vec<K>,
) -> Result<i64, KsError>
where
    I: IntoIterator<Item = i64>,
    K: RadixKey + TryFrom<u64>,
{
    let missing = layout.missing_key();
    let half = layout.bits();
    let low = (1i64 << half) - 1;
    out.clear();
    for (row, key) in keys.into_iter().enumerate() {
        if key == missing {
            continue;
        }
        let (right, left) = (key >> half, key & low);
        if key < 0 || right > m || left > right {
            return Err(KsError::Key {
                feature,
                row,
                key,
                size: m,
            });
        }
        // fits: right, left <= m < 1 << shift and 2 shift <= K::BITS
        let packed = ((right as u64) << shift) | left as u64;
        out.push(K::try_from(packed).unwrap_or_default());
    }
    Ok(out.len() as i64)
}

/// The KS statistic of every feature and the values each used (0 where the feature has no
/// value or its reference none), as `detectors.ks.ks_statistic` returns them. `column(j)`:
/// feature j's keys in row order; `window_sizes`, when given, must equal the counts of keys
/// that are not missing (checked: they cost nothing here, the sort counts them).
pub fn ks_statistic<C, I>(
    features: usize,
    column: C,
    ref_sizes: &[i64],
    layout: Layout,
    window_sizes: Option<&[i64]>,
) -> Result<(Vec<f64>, Vec<i64>), KsError>
where
    C: Fn(usize) -> I,
    I: IntoIterator<Item = i64>,
{
    if ref_sizes.len() != features {
        return Err(KsError::Length {
            field: "ref_sizes",
            got: ref_sizes.len(),
            features,
        });
    }
    if let Some(w) = window_sizes {
        if w.len() != features {
            return Err(KsError::Length {
                field: "window_sizes",
                got: w.len(),
                features,
            });
        }
    }
    let max = layout.max_count();
    for (feature, &size) in ref_sizes.iter().enumerate() {
        if !(0..=max).contains(&size) {
            return Err(KsError::ReferenceSize { feature, size, max });
        }
    }
    let mut stat = vec![0.0; features];
    let mut sizes = vec![0i64; features];
    let mut scratch = Scratch::default();
    for j in 0..features {
        let (s, n) = feature_statistic(column(j), ref_sizes[j], layout, j, &mut scratch)?;
        if let Some(w) = window_sizes {
            // with an empty reference the keys were not read (size 0 either way)
            if ref_sizes[j] > 0 && w[j] != n {
                return Err(KsError::WindowSize {
                    feature: j,
                    given: w[j],
                    counted: n,
                });
            }
        }
        stat[j] = s;
        sizes[j] = n;
    }
    Ok((stat, sizes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(right: i64, left: i64, bits: u32) -> i64 {
        (right << bits) | left
    }

    #[test]
    fn radix_sort_sorts_small_and_large_inputs() {
        let mut tmp = Vec::new();
        let mut small: Vec<u32> = vec![5, 3, 9, 3, 0];
        radix_sort(&mut small, &mut tmp, 4);
        assert_eq!(small, vec![0, 3, 3, 5, 9]);
        // a simple LCG: deterministic keys over the full 28 and 62 bits, with duplicates
        let mut x = 12345u64;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 2
        };
        let mut narrow: Vec<u32> = (0..5000).map(|_| (next() % (1 << 28)) as u32).collect();
        let head: Vec<u32> = narrow[..100].into();
        narrow.extend(head);
        let mut expected = narrow.clone();
        expected.sort();
        radix_sort(&mut narrow, &mut tmp, 28);
        assert_eq!(narrow, expected);
        let mut wide: Vec<u64> = (0..3000).map(|_| next()).collect();
        let mut expected = wide.clone();
        expected.sort();
        radix_sort(&mut wide, &mut Vec::new(), 62);
        assert_eq!(wide, expected);
    }

    #[test]
    fn radix_sort_skips_shared_digits() {
        // every key has the same low digit: that pass is skipped, the result still sorted
        let mut keys: Vec<u32> = (0..200u32).rev().map(|v| v << 8 | 7).collect();
        radix_sort(&mut keys, &mut Vec::new(), 16);
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(keys[0], 7);
    }

    #[test]
    fn scan_of_a_hand_checked_case() {
        // reference [1, 2, 3, 4] (m = 4), window [2.5, 5] (n = 2):
        // 2.5: right = left = 2; 5: right = left = 4.
        // F_win - F_ref at 2.5: 1/2 - 2/4 = 0; at 5: 1 - 1 = 0.
        // F_ref - F_win just below 2.5: 2/4 - 0 = 1/2; below 5: 1 - 1/2 = 1/2. KS = 0.5
        let sorted: Vec<u32> = vec![2 << 3 | 2, 4 << 3 | 4];
        assert_eq!(sorted_statistic(&sorted, 3, 4), 0.5);
        // window [1, 1, 1] against the same reference: right = 1, left = 0 at every row;
        // F_win - F_ref at 1: 1 - 1/4 = 3/4 (at the last copy)
        let sorted: Vec<u32> = vec![1 << 3, 1 << 3, 1 << 3];
        assert_eq!(sorted_statistic(&sorted, 3, 4), 0.75);
        // identical samples: 0
        let sorted: Vec<u32> = (1..=4).map(|r| r << 3 | (r - 1)).collect();
        assert_eq!(sorted_statistic(&sorted, 3, 4), 0.0);
    }

    #[test]
    fn the_float_is_formed_as_the_python_forms_it() {
        // reference of 3 values, window [above all] (n = 1): right = left = 3
        // below: 3/3 - 0/1 = 1; above: -(3/3 - 1/1) = 0. KS = 1
        assert_eq!(sorted_statistic(&[3u32 << 2 | 3], 2, 3), 1.0);
        // m = 3, n = 7, one row attaining the maximum: the float is -(r/m - (i+1)/n)
        let (m, n) = (3i64, 7i64);
        let sorted: Vec<u32> = (0..n as u32).map(|_| 1 << 2 | 1).collect();
        let expected = -(1.0 / 3.0 - 7.0 / 7.0);
        assert_eq!(sorted_statistic(&sorted, 2, m), expected);
    }

    #[test]
    fn missing_keys_are_left_out_and_counted() {
        let layout = Layout::new(3).unwrap();
        let missing = layout.missing_key();
        let col = [key(2, 2, 3), missing, key(4, 4, 3), missing];
        let (stat, sizes) =
            ks_statistic(1, |_| col.iter().copied(), &[4], layout, Some(&[2])).unwrap();
        assert_eq!((stat[0], sizes[0]), (0.5, 2));
        // all missing, or an empty reference: 0 and size 0
        let gone = [missing, missing];
        let (stat, sizes) = ks_statistic(1, |_| gone.iter().copied(), &[4], layout, None).unwrap();
        assert_eq!((stat[0], sizes[0]), (0.0, 0));
        let (stat, sizes) = ks_statistic(1, |_| col.iter().copied(), &[0], layout, None).unwrap();
        assert_eq!((stat[0], sizes[0]), (0.0, 0));
    }

    #[test]
    fn wide_keys_use_32_bit_halves() {
        let layout = Layout::new(32).unwrap();
        let col = [key(2, 2, 32), i64::MAX, key(4, 4, 32)];
        let (stat, sizes) = ks_statistic(1, |_| col.iter().copied(), &[4], layout, None).unwrap();
        assert_eq!((stat[0], sizes[0]), (0.5, 2));
        // a reference too big for 16-bit counts: the 64-bit sort path
        let m = 100_000;
        let col = [key(50_000, 49_999, 32), key(m, m, 32)];
        let (stat, _) = ks_statistic(1, |_| col.iter().copied(), &[m], layout, None).unwrap();
        // below at row 1: 2 m - m = m is the largest: m/m - 1/2
        assert_eq!(stat[0], m as f64 / m as f64 - 1.0 / 2.0);
    }

    #[test]
    fn bad_input_is_an_error_naming_the_field() {
        assert_eq!(Layout::new(16), Err(KsError::Bits(16)));
        let layout = Layout::new(3).unwrap();
        let col = [key(5, 1, 3)]; // right above m = 4
        let err = ks_statistic(1, |_| col.iter().copied(), &[4], layout, None).unwrap_err();
        assert!(err.to_string().starts_with("keys[0, 0]:"), "{err}");
        let err = ks_statistic(1, |_| col.iter().copied(), &[7], layout, None).unwrap_err();
        assert!(err.to_string().starts_with("ref_sizes[0]:"), "{err}");
        let err = ks_statistic(2, |_| col.iter().copied(), &[4], layout, None).unwrap_err();
        assert!(err.to_string().starts_with("ref_sizes:"), "{err}");
        let ok = [key(2, 2, 3)];
        let err = ks_statistic(1, |_| ok.iter().copied(), &[4], layout, Some(&[3])).unwrap_err();
        assert!(err.to_string().starts_with("window_sizes[0]:"), "{err}");
    }
}
