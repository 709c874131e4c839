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
        field: &'static str,
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
    NotAscending {
        feature: usize,
        row: usize,
        key: i64,
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
                field,
                feature,
                row,
                key,
                size,
            } => write!(
                f,
                "{field}[{row}, {feature}]: {key} does not pack counts 0 <= left <= right <= \
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
            KsError::NotAscending { feature, row, key } => write!(
                f,
                "sorted_keys[{row}, {feature}]: {key} is below the key before it (the keys \
                 must be sorted ascending along the rows)"
            ),
        }
    }
}

impl std::error::Error for KsError {}

/// Above this size either sample, `scipy.stats.ks_2samp`'s default method is not exact and
/// it reports the statistic as computed.
pub const EXACT_MAX_N: i64 = 10_000;

/// The statistic as `ks_2samp` with its default method reports it: where both samples have
/// at most `EXACT_MAX_N` values, snapped to the nearest multiple of 1/lcm(n, m) (ties to
/// even, as numpy's `round`): `detectors.ks.as_scipy_default` of one feature.
pub fn as_scipy_default(stat: f64, ref_size: i64, size: i64) -> f64 {
    let (n1, n2) = (ref_size.max(1), size.max(1));
    if n1.max(n2) > EXACT_MAX_N {
        return stat;
    }
    let lcm = ((n1 / gcd(n1, n2)) * n2) as f64;
    round_half_even(stat * lcm) / lcm
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `x` rounded to the nearest integer, ties to even (numpy's `round`, IEEE's default).
fn round_half_even(x: f64) -> f64 {
    let r = x.round(); // ties away from zero
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

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

/// Bits of a radix digit. Measured on 1000 keys (docs/benchmarks.md): 8-bit digits sort
/// them in the time of 10-bit ones and faster than 7, 11, 14 or 16-bit ones (16-bit digits:
/// 65 536 buckets to clear and sum per pass, ten times slower at this size).
pub const DIGIT_BITS: u32 = 8;
const BUCKETS: usize = 1 << DIGIT_BITS;
const MAX_PASSES: usize = (64 / DIGIT_BITS) as usize;
/// Below this many keys a comparison sort beats the histogram passes.
pub const RADIX_MIN: usize = 64;

/// Sorts `keys` stably by their bits `lo..hi` (the others ride along): LSD radix sort on
/// `DIGIT_BITS`-bit digits, one histogram pass for all digits, a digit every key shares
/// skipped. `tmp`: scratch, reused. Short inputs are sorted by the whole key (also a
/// stable order of those bits, and a sorted one of the whole key).
pub fn radix_sort<K: RadixKey>(keys: &mut Vec<K>, tmp: &mut Vec<K>, lo: u32, hi: u32) {
    let n = keys.len();
    if n < RADIX_MIN {
        keys.sort_unstable();
        return;
    }
    let hi = hi.min(K::BITS);
    let passes = hi.saturating_sub(lo).div_ceil(DIGIT_BITS) as usize;
    let mut hist = [[0u32; BUCKETS]; MAX_PASSES];
    let hist = &mut hist[..passes];
    let mask = (BUCKETS - 1) as u64;
    let digit = |k: K, pass: usize| (k.to_u64() >> (lo + DIGIT_BITS * pass as u32)) & mask;
    for &k in keys.iter() {
        for (pass, h) in hist.iter_mut().enumerate() {
            h[digit(k, pass) as usize] += 1;
        }
    }
    tmp.clear();
    tmp.resize(n, K::default());
    for (pass, h) in hist.iter_mut().enumerate() {
        if h[digit(keys[0], pass) as usize] as usize == n {
            continue; // every key has this digit: the order stays
        }
        let mut sum = 0u32;
        for c in h.iter_mut() {
            let count = *c;
            *c = sum;
            sum += count;
        }
        for &k in keys.iter() {
            let d = digit(k, pass) as usize;
            tmp[h[d] as usize] = k;
            h[d] += 1;
        }
        std::mem::swap(keys, tmp);
    }
}

/// How a feature's keys are repacked for the sort, with `s = bit_length(m)` bits per count:
/// `right << (s + 1) | untied << s | left`, untied = (left == right). Sorting by
/// (right, untied) only, the bits above `s`, takes about half the radix passes of the whole
/// key, and orders the window fully whenever the rows of one `right` that are tied with a
/// reference value (left < right) share their `left`, as they do with a real reference
/// (left is then the first index of that value). Untied rows sort after tied ones of the
/// same right, and their left (= right) is above every tied left, so (right, untied, left)
/// orders keys as (right, left) does, as the packed keys of the Python. The scan checks that
/// the result is sorted and, if not, the whole key is sorted.
#[derive(Clone, Copy, Debug)]
struct Packing {
    shift: u32,
}

impl Packing {
    fn new(m: i64) -> Self {
        Packing {
            shift: bit_length(m),
        }
    }

    fn bits(self) -> u32 {
        2 * self.shift + 1
    }

    #[inline(always)]
    fn pack(self, right: i64, left: i64) -> u64 {
        let untied = u64::from(left == right);
        ((right as u64) << (self.shift + 1)) | (untied << self.shift) | left as u64
    }

    #[inline(always)]
    fn counts<K: RadixKey>(self, k: K) -> (i64, i64) {
        let k = k.to_u64();
        (
            (k >> (self.shift + 1)) as i64,
            (k & ((1 << self.shift) - 1)) as i64,
        )
    }
}

/// The largest of one kind of difference (above or below) found so far, exactly, and the
/// largest float among the rows attaining it.
#[derive(Clone, Copy)]
struct Extreme {
    exact: i64,
    float: f64,
}

impl Extreme {
    const NONE: Extreme = Extreme {
        exact: i64::MIN,
        float: f64::NEG_INFINITY,
    };

    /// A row's exact difference; `float` is evaluated only when the row attains the
    /// extreme (rarely: the record highs of a walk), so the scan stays one cheap pass.
    #[inline(always)]
    fn offer(&mut self, exact: i64, float: impl FnOnce() -> f64) {
        if exact >= self.exact {
            if exact > self.exact {
                *self = Extreme::NONE;
                self.exact = exact;
            }
            let d = float();
            if d > self.float {
                self.float = d;
            }
        }
    }
}

/// The statistic from keys sorted by (right, left), against `m > 0` reference values, or
/// None when the keys turn out not sorted (see `Packing`). Every row's differences are
/// compared exactly, scaled by n m; the rows attaining the largest are evaluated as the
/// Python forms them, `-(right/m - (i + 1)/n)` and `left/m - i/n`, and the largest float
/// among them is the statistic, at least +0.0 (the Python's maximum starts from 0 and keeps
/// it against -0.0). `n m` fits an i64 (the caller checks).
#[inline(always)]
fn scan<K: RadixKey>(sorted: &[K], packing: Packing, m: i64) -> Option<f64> {
    let n = sorted.len() as i64;
    let (mf, nf) = (m as f64, n as f64);
    let (mut above, mut below) = (Extreme::NONE, Extreme::NONE);
    let mut ordered = true;
    let mut previous = K::default();
    let mut i_m = 0i64; // i m
    for (i, &k) in sorted.iter().enumerate() {
        ordered &= previous <= k;
        previous = k;
        let (right, left) = packing.counts(k);
        above.offer(i_m + m - right * n, || {
            -(right as f64 / mf - (i + 1) as f64 / nf)
        });
        below.offer(left * n - i_m, || left as f64 / mf - i as f64 / nf);
        i_m += m;
    }
    if !ordered {
        return None;
    }
    let best = above.exact.max(below.exact);
    let mut stat = 0.0f64;
    for side in [above, below] {
        if side.exact == best && side.float > stat {
            stat = side.float;
        }
    }
    Some(stat)
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
    let packing = Packing::new(m);
    if packing.bits() <= 32 {
        let buf = &mut scratch.narrow;
        gather(keys, m, layout, feature, packing, buf)?;
        Ok(sorted_statistic(buf, &mut scratch.narrow_tmp, packing, m))
    } else {
        let buf = &mut scratch.wide;
        gather(keys, m, layout, feature, packing, buf)?;
        Ok(sorted_statistic(buf, &mut scratch.wide_tmp, packing, m))
    }
}

/// Sorts the repacked keys of a feature and returns (statistic, values).
fn sorted_statistic<K: RadixKey>(
    keys: &mut Vec<K>,
    tmp: &mut Vec<K>,
    packing: Packing,
    m: i64,
) -> (f64, i64) {
    let n = keys.len();
    if n == 0 {
        return (0.0, 0);
    }
    radix_sort(keys, tmp, packing.shift, packing.bits());
    let stat = scan(keys, packing, m).unwrap_or_else(|| {
        // rows of one reference value with different lefts: sort by the whole key
        radix_sort(keys, tmp, 0, packing.bits());
        scan(keys, packing, m).unwrap_or(0.0) // sorted now: always Some
    });
    (stat, n as i64)
}

/// The feature's keys that are not missing, checked and repacked (`Packing`) into `out`.
fn gather<I, K>(
    keys: I,
    m: i64,
    layout: Layout,
    feature: usize,
    packing: Packing,
    out: &mut Vec<K>,
) -> Result<(), KsError>
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
                field: "keys",
                feature,
                row,
                key,
                size: m,
            });
        }
        // fits: right, left <= m < 1 << shift and packing.bits() <= K::BITS
        out.push(K::try_from(packing.pack(right, left)).unwrap_or_default());
    }
    Ok(())
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
    check_sizes(features, ref_sizes, layout, window_sizes)?;
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

/// One feature from its keys sorted ascending by the whole key, as numpy sorts them (missing
/// keys, the largest, last): (statistic, values used). `n`: the values that are not missing
/// (the caller counts them, or takes the window's tallies; checked here). The rows are those
/// `scan` walks, read straight from the layout, with the same exact comparisons and floats:
/// the whole-key order (right, left) is the order `Packing` sorts into.
fn sorted_feature_statistic<I>(
    keys: I,
    m: i64,
    n: i64,
    layout: Layout,
    feature: usize,
) -> Result<(f64, i64), KsError>
where
    I: IntoIterator<Item = i64>,
{
    let missing = layout.missing_key();
    let half = layout.bits();
    let low = (1i64 << half) - 1;
    let (mf, nf) = (m as f64, n as f64);
    let (mut above, mut below) = (Extreme::NONE, Extreme::NONE);
    let mut previous = i64::MIN;
    let mut i = 0i64;
    for (row, key) in keys.into_iter().enumerate() {
        if key < previous {
            return Err(KsError::NotAscending { feature, row, key });
        }
        previous = key;
        if key == missing {
            continue; // and every key after it (ascending)
        }
        let (right, left) = (key >> half, key & low);
        if key < 0 || right > m || left > right {
            return Err(KsError::Key {
                field: "sorted_keys",
                feature,
                row,
                key,
                size: m,
            });
        }
        if i < n {
            let at = i;
            above.offer((at + 1) * m - right * n, || {
                -(right as f64 / mf - (at + 1) as f64 / nf)
            });
            below.offer(left * n - at * m, || left as f64 / mf - at as f64 / nf);
        }
        i += 1;
    }
    if i != n {
        return Err(KsError::WindowSize {
            feature,
            given: n,
            counted: i,
        });
    }
    let best = above.exact.max(below.exact);
    let mut stat = 0.0f64;
    for side in [above, below] {
        if side.exact == best && side.float > stat {
            stat = side.float;
        }
    }
    Ok((stat, n))
}

/// `ks_statistic` of keys already sorted ascending, feature by feature (numpy's `np.sort` of
/// the window's keys along the rows: its SIMD sort of 32- and 64-bit integers is faster
/// than the radix sort above, docs/benchmarks.md). `window_sizes`, when given, are the
/// counts of keys that are not missing (checked); else they are counted. Keys that are not
/// ascending are an error, not a wrong statistic.
pub fn sorted_ks_statistic<C, I>(
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
    let missing = layout.missing_key();
    each_sorted_feature(
        features,
        ref_sizes,
        layout,
        window_sizes,
        |j| column(j).into_iter().filter(|&k| k != missing).count() as i64,
        |j, m, n| sorted_feature_statistic(column(j), m, n, layout, j),
    )
}

/// `sorted_ks_statistic` of features held as contiguous slices (a window's keys in Fortran
/// order): the same statistic and errors, found in two straight passes per feature that the
/// compiler can vectorise (the largest exact differences, then the floats of the rows that
/// attain them) instead of one pass with a branch per row.
pub fn sorted_ks_statistic_slices<'a, C, T>(
    features: usize,
    column: C,
    ref_sizes: &[i64],
    layout: Layout,
    window_sizes: Option<&[i64]>,
) -> Result<(Vec<f64>, Vec<i64>), KsError>
where
    C: Fn(usize) -> &'a [T],
    T: Copy + Into<i64> + 'a,
{
    let missing = layout.missing_key();
    each_sorted_feature(
        features,
        ref_sizes,
        layout,
        window_sizes,
        |j| column(j).iter().filter(|&&k| k.into() != missing).count() as i64,
        |j, m, n| {
            let keys = column(j);
            match (n > 0)
                .then(|| slice_statistic(keys, m, n, layout))
                .flatten()
            {
                Some(s) => Ok((s, n)),
                // anything unusual (an error to name, no value): the row-by-row kernel
                None => sorted_feature_statistic(keys.iter().map(|&k| k.into()), m, n, layout, j),
            }
        },
    )
}

/// Both sorted kernels' walk over the features: the sizes checked, a feature without a
/// reference left at (0, 0), n taken from `window_sizes` or counted (`count`), and
/// `one(j, m, n)` giving the feature's (statistic, values used). With n = 0 `one` still
/// checks the keys (all missing, in order) and gives (0, 0).
fn each_sorted_feature(
    features: usize,
    ref_sizes: &[i64],
    layout: Layout,
    window_sizes: Option<&[i64]>,
    count: impl Fn(usize) -> i64,
    mut one: impl FnMut(usize, i64, i64) -> Result<(f64, i64), KsError>,
) -> Result<(Vec<f64>, Vec<i64>), KsError> {
    check_sizes(features, ref_sizes, layout, window_sizes)?;
    let mut stat = vec![0.0; features];
    let mut sizes = vec![0i64; features];
    for j in 0..features {
        let m = ref_sizes[j];
        if m == 0 {
            continue; // nothing to compare with (size 0, as the unsorted kernel gives)
        }
        let n = window_sizes.map_or_else(|| count(j), |w| w[j]);
        (stat[j], sizes[j]) = one(j, m, n)?;
    }
    Ok((stat, sizes))
}

/// One feature's statistic from `n > 0` valid keys sorted ascending then missing ones, or
/// None when the keys are not that (the caller then finds the error row by row).
fn slice_statistic<T: Copy + Into<i64>>(keys: &[T], m: i64, n: i64, layout: Layout) -> Option<f64> {
    let missing = layout.missing_key();
    let half = layout.bits();
    let count = usize::try_from(n).ok()?;
    if count > keys.len() {
        return None;
    }
    let (values, rest) = keys.split_at(count);
    if !rest.iter().all(|&k| k.into() == missing) {
        return None;
    }
    let (first, last) = (values[0].into(), values[count - 1].into());
    if first < 0 || last == missing || (last >> half) > m {
        return None;
    }
    let fits_i32 = !layout.wide()
        && (n + 1)
            .checked_mul(m)
            .is_some_and(|x| x <= i64::from(i32::MAX));
    if fits_i32 {
        extremes_i32_fastest(values, m, n, half)
    } else {
        extremes_i64(values, m, n, half)
    }
}

/// `extremes_i32` compiled for AVX2 where the processor has it (eight lanes of i32 instead
/// of SSE2's four, which also lacks a packed 32-bit multiply and maximum).
fn extremes_i32_fastest<K: Copy + Into<i64>>(
    values: &[K],
    m: i64,
    n: i64,
    half: u32,
) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2 (detected just above), the one requirement of
        // calling a function compiled for it. Measured: 20 features x 1000 keys, pass one
        // 3.6 µs with AVX2 against 10.5 µs without; the scan of a 20-feature window
        // (docs/benchmarks.md) 28 µs -> 12 µs.
        return unsafe { extremes_i32_avx2(values, m, n, half) };
    }
    extremes_i32(values, m, n, half)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn extremes_i32_avx2<K: Copy + Into<i64>>(values: &[K], m: i64, n: i64, half: u32) -> Option<f64> {
    extremes_i32(values, m, n, half) // inlined: its loops compiled for AVX2
}

/// Two straight passes over one feature's sorted valid keys: the largest exact differences
/// (branch-free, so the compiler vectorises it), then the floats of the rows attaining the
/// largest, as the Python forms them; None when a key's left exceeds its right. `$t`: the
/// integer the differences are formed in, i32 when n m fits one (twice the lanes).
macro_rules! extremes {
    ($name:ident, $t:ty) => {
        #[inline(always)]
        fn $name<K: Copy + Into<i64>>(values: &[K], m: i64, n: i64, half: u32) -> Option<f64> {
            let exact = |k: K| k.into() as $t; // the caller checked that every key fits
            let (mt, nt) = (m as $t, n as $t);
            let low: $t = (1 << half) - 1;
            let (mut above, mut below, mut bad) = (<$t>::MIN, <$t>::MIN, false);
            let mut am: $t = 0; // i m
            let mut previous = exact(values[0]);
            for &k in values {
                let k = exact(k);
                let (right, left) = (k >> half, k & low);
                bad |= (left > right) | (k < previous); // not a key, or not ascending
                previous = k;
                // wrapping: keys out of order may hold a right above m, whose product can
                // leave the type; those differences are then thrown away with the keys
                above = above.max((am + mt).wrapping_sub(right.wrapping_mul(nt)));
                below = below.max(left.wrapping_mul(nt) - am);
                am += mt;
            }
            if bad {
                return None;
            }
            let best = above.max(below);
            let (mf, nf) = (m as f64, n as f64);
            let mut stat = 0.0f64;
            // pass 2 in blocks: a block without a row attaining the largest (almost every
            // block) is passed over by one branch-free test
            const BLOCK: usize = 64;
            for (b, block) in values.chunks(BLOCK).enumerate() {
                let start = b * BLOCK;
                let mut am = (start as $t) * mt;
                let mut hit = false;
                for &k in block {
                    let k = exact(k);
                    let (right, left) = (k >> half, k & low);
                    hit |= (am + mt - right * nt == best) | (left * nt - am == best);
                    am += mt;
                }
                if !hit {
                    continue;
                }
                let mut am = (start as $t) * mt;
                for (r, &k) in block.iter().enumerate() {
                    let i = start + r;
                    let k = exact(k);
                    let (right, left) = (k >> half, k & low);
                    if above == best && am + mt - right * nt == best {
                        let d = -(right as f64 / mf - (i + 1) as f64 / nf);
                        if d > stat {
                            stat = d;
                        }
                    }
                    if below == best && left * nt - am == best {
                        let d = left as f64 / mf - i as f64 / nf;
                        if d > stat {
                            stat = d;
                        }
                    }
                    am += mt;
                }
            }
            Some(stat)
        }
    };
}

extremes!(extremes_i32, i32);
extremes!(extremes_i64, i64);

/// The arguments' sizes, as both kernels check them.
fn check_sizes(
    features: usize,
    ref_sizes: &[i64],
    layout: Layout,
    window_sizes: Option<&[i64]>,
) -> Result<(), KsError> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(right: i64, left: i64, bits: u32) -> i64 {
        (right << bits) | left
    }

    /// The statistic of (right, left) rows in any order against m reference values.
    fn statistic_of(rows: &[(i64, i64)], m: i64) -> f64 {
        let packing = Packing::new(m);
        let mut keys: Vec<u32> = rows
            .iter()
            .map(|&(r, l)| packing.pack(r, l) as u32)
            .collect();
        sorted_statistic(&mut keys, &mut Vec::new(), packing, m).0
    }

    /// A deterministic stream of 62-bit numbers (an LCG).
    fn numbers(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 2
        }
    }

    #[test]
    fn every_build_of_the_slice_passes_gives_the_row_by_row_statistic() {
        // ties (right > left), both ends, small and large n m: the SSE2 and AVX2 builds of
        // the i32 passes, the i64 passes and the row-by-row kernel agree to the last bit
        let mut next = numbers(11);
        for &(m, n, bits) in &[(10_000i64, 1000usize, 14u32), (37, 200, 6), (3, 1, 3)] {
            let layout = Layout::new(bits).unwrap();
            for _ in 0..20 {
                let mut keys: Vec<i32> = (0..n)
                    .map(|_| {
                        let right = (next() % (m as u64 + 1)) as i64;
                        let left = right - (next() % 3).min(right as u64) as i64;
                        key(right, left, bits) as i32
                    })
                    .collect();
                keys.sort_unstable();
                let n = n as i64;
                let want =
                    sorted_feature_statistic(keys.iter().map(|&k| i64::from(k)), m, n, layout, 0)
                        .unwrap()
                        .0;
                assert_eq!(extremes_i32(&keys, m, n, bits), Some(want));
                assert_eq!(extremes_i32_fastest(&keys, m, n, bits), Some(want));
                assert_eq!(extremes_i64(&keys, m, n, bits), Some(want));
                assert_eq!(slice_statistic(&keys, m, n, layout), Some(want));
            }
        }
    }

    #[test]
    fn sorted_keys_give_the_statistic_of_unsorted_ones() {
        // reference values with ties: right - left is the multiplicity of x in it
        let mut next = numbers(7);
        for &(m, n, bits) in &[(10_000i64, 1000usize, 14u32), (37, 200, 6), (500, 3, 32)] {
            let layout = Layout::new(bits).unwrap();
            let missing = layout.missing_key();
            let features = 3;
            let mut columns: Vec<Vec<i64>> = Vec::new();
            for _ in 0..features {
                let column = (0..n)
                    .map(|_| {
                        if next().is_multiple_of(17) {
                            return missing;
                        }
                        let right = (next() % (m as u64 + 1)) as i64;
                        let left = if right > 0 && next().is_multiple_of(3) {
                            right - 1 - (right - 1) % 4 // tied: the first of a run of four
                        } else {
                            right
                        };
                        key(right, left, bits)
                    })
                    .collect();
                columns.push(column);
            }
            let refs = vec![m; features];
            let want = ks_statistic(features, |j| columns[j].clone(), &refs, layout, None).unwrap();
            let sorted: Vec<Vec<i64>> = columns
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    c.sort_unstable();
                    c
                })
                .collect();
            let got = sorted_ks_statistic(features, |j| sorted[j].clone(), &refs, layout, None);
            assert_eq!(got.unwrap(), want);
            let given = Some(want.1.as_slice());
            let got = sorted_ks_statistic(features, |j| sorted[j].clone(), &refs, layout, given);
            assert_eq!(got.unwrap(), want);
        }
    }

    #[test]
    fn sorted_keys_out_of_order_or_miscounted_are_errors() {
        let layout = Layout::new(4).unwrap();
        let keys = [key(2, 2, 4), key(1, 1, 4)];
        let err = sorted_ks_statistic(1, |_| keys, &[3], layout, None).unwrap_err();
        assert!(matches!(err, KsError::NotAscending { row: 1, .. }), "{err}");
        let keys = [key(1, 1, 4), layout.missing_key()];
        let err = sorted_ks_statistic(1, |_| keys, &[3], layout, Some(&[2])).unwrap_err();
        assert!(
            matches!(err, KsError::WindowSize { counted: 1, .. }),
            "{err}"
        );
        let keys = [key(5, 5, 4)]; // right above the reference size
        let err = sorted_ks_statistic(1, |_| keys, &[3], layout, None).unwrap_err();
        assert!(matches!(err, KsError::Key { .. }), "{err}");
        let all_missing = [layout.missing_key(); 2];
        let got = sorted_ks_statistic(1, |_| all_missing, &[3], layout, None).unwrap();
        assert_eq!(got, (vec![0.0], vec![0]));
    }

    #[test]
    fn snapping_rounds_ties_to_even_within_the_exact_sizes() {
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        assert_eq!(round_half_even(-2.5), -2.0);
        assert_eq!(round_half_even(2.4999999), 2.0);
        assert_eq!(
            as_scipy_default(0.46666666666666673, 5, 3),
            0.4666666666666667
        );
        assert_eq!(as_scipy_default(0.123, 20_000, 3), 0.123); // above EXACT_MAX_N: as is
        assert!(as_scipy_default(f64::NAN, 5, 3).is_nan());
    }

    #[test]
    fn radix_sort_sorts_small_and_large_inputs() {
        let mut tmp = Vec::new();
        let mut small: Vec<u32> = vec![5, 3, 9, 3, 0];
        radix_sort(&mut small, &mut tmp, 0, 4);
        assert_eq!(small, vec![0, 3, 3, 5, 9]);
        let mut next = numbers(12345);
        let mut narrow: Vec<u32> = (0..5000).map(|_| (next() % (1 << 28)) as u32).collect();
        let head: Vec<u32> = narrow[..100].into(); // duplicates
        narrow.extend(head);
        let mut expected = narrow.clone();
        expected.sort();
        radix_sort(&mut narrow, &mut tmp, 0, 28);
        assert_eq!(narrow, expected);
        let mut wide: Vec<u64> = (0..3000).map(|_| next()).collect();
        let mut expected = wide.clone();
        expected.sort();
        radix_sort(&mut wide, &mut Vec::new(), 0, 62);
        assert_eq!(wide, expected);
    }

    #[test]
    fn radix_sort_by_high_bits_is_stable() {
        // sorted by bits 8.. only: equal high parts keep their input order
        let mut keys: Vec<u32> = (0..300u32)
            .map(|i| ((i % 7) << 8) | (255 - i % 256))
            .collect();
        let mut expected = keys.clone();
        expected.sort_by_key(|k| k >> 8); // a stable sort
        radix_sort(&mut keys, &mut Vec::new(), 8, 16);
        assert_eq!(keys, expected);
    }

    #[test]
    fn radix_sort_skips_shared_digits() {
        // every key has the same low digit: that pass is skipped, the result still sorted
        let mut keys: Vec<u32> = (0..200u32).rev().map(|v| (v << 8) | 7).collect();
        radix_sort(&mut keys, &mut Vec::new(), 0, 16);
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(keys[0], 7);
    }

    #[test]
    fn scan_of_hand_checked_cases() {
        // reference [1, 2, 3, 4] (m = 4), window [5, 2.5] (n = 2):
        // 2.5: right = left = 2; 5: right = left = 4.
        // F_win - F_ref at 2.5: 1/2 - 2/4 = 0; at 5: 1 - 1 = 0.
        // F_ref - F_win just below 2.5: 2/4 - 0 = 1/2; below 5: 1 - 1/2 = 1/2. KS = 1/2
        assert_eq!(statistic_of(&[(4, 4), (2, 2)], 4), 0.5);
        // window [1, 1, 1]: right = 1, left = 0 at every row;
        // F_win - F_ref at 1: 1 - 1/4 = 3/4 (at the last copy)
        assert_eq!(statistic_of(&[(1, 0); 3], 4), 0.75);
        // the window is the reference: 0
        assert_eq!(statistic_of(&[(3, 2), (1, 0), (4, 3), (2, 1)], 4), 0.0);
        // reference [1, 2, 2, 2] (m = 4), window [2, 0] (n = 2): 2 has right 4, left 1;
        // below 2: 1/4 - 1/2 < 0, at 0: 0; above 0: 1/2 - 0 = 1/2; at 2: 1 - 1 = 0. KS = 1/2
        assert_eq!(statistic_of(&[(4, 1), (0, 0)], 4), 0.5);
    }

    #[test]
    fn the_float_is_formed_as_the_python_forms_it() {
        // one value above a reference of 3: below 3/3 - 0/1 = 1
        assert_eq!(statistic_of(&[(3, 3)], 3), 1.0);
        // m = 3, n = 7 values at right = left = 1: the largest is above, at the last row,
        // -(1/3 - 7/7), which is not the float 2/3
        let expected = -(1.0 / 3.0 - 7.0 / 7.0);
        assert_eq!(statistic_of(&[(1, 1); 7], 3), expected);
    }

    #[test]
    fn tied_rows_with_different_lefts_fall_back_to_the_whole_key() {
        // not a real reference (one right, two lefts below it), but sorted as the Python
        // sorts it: by (right, left)
        let mut next = numbers(7);
        let rows: Vec<(i64, i64)> = (0..500)
            .map(|_| {
                let right = (next() % 40) as i64 + 2;
                (right, right - 1 - (next() % 2) as i64)
            })
            .collect();
        let mut sorted = rows.clone();
        sorted.sort();
        let m = 41;
        let packing = Packing::new(m);
        let keys: Vec<u32> = sorted
            .iter()
            .map(|&(r, l)| packing.pack(r, l) as u32)
            .collect();
        assert_eq!(statistic_of(&rows, m), scan(&keys, packing, m).unwrap());
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

/// Why a sorted sample cannot be compared; `lib.rs` raises it as ValueError.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotSorted {
    pub field: &'static str,
    pub index: usize,
}

impl fmt::Display for NotSorted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}]: the values must be finite and ascending",
            self.field, self.index
        )
    }
}

impl std::error::Error for NotSorted {}

fn check_sorted(values: &[f64], field: &'static str) -> Result<(), NotSorted> {
    // one pass without early exit (it vectorises); the index only when something is wrong
    let bad = values.iter().fold(false, |bad, x| bad | !x.is_finite())
        | values
            .windows(2)
            .fold(false, |bad, pair| bad | (pair[0] > pair[1]));
    if !bad {
        return Ok(());
    }
    if let Some(index) = values.iter().position(|x| !x.is_finite()) {
        return Err(NotSorted { field, index });
    }
    match values.windows(2).position(|pair| pair[0] > pair[1]) {
        Some(index) => Err(NotSorted { field, index }),
        None => Ok(()),
    }
}

/// The KS statistic of a sorted sample against a sorted reference, both finite:
/// `detectors.ks.ks_sorted_statistic` to the last bit. The sample's own order gives its
/// ECDF; `#{r <= x}` and `#{r < x}` only rise along it, so one merge walk finds them, and the
/// differences are formed as the Python forms them, `(i + 1)/n - right/m` and
/// `left/m - i/n`, each a correctly rounded quotient then a subtraction.
pub fn sorted_sample_statistic(reference: &[f64], sample: &[f64]) -> Result<f64, NotSorted> {
    check_sorted(reference, "sorted_reference")?;
    check_sorted(sample, "sorted_sample")?;
    let (n, m) = (sample.len(), reference.len());
    if n == 0 || m == 0 {
        return Ok(0.0);
    }
    let (nf, mf) = (n as f64, m as f64);
    let (mut above, mut below) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let (mut right, mut left) = (0usize, 0usize);
    for (i, &x) in sample.iter().enumerate() {
        while left < m && reference[left] < x {
            left += 1;
        }
        right = right.max(left);
        while right < m && reference[right] <= x {
            right += 1;
        }
        above = above.max((i + 1) as f64 / nf - right as f64 / mf);
        below = below.max(left as f64 / mf - i as f64 / nf);
    }
    Ok(above.max(below).max(0.0))
}

#[cfg(test)]
mod sorted_tests {
    use super::*;

    #[test]
    fn sorted_statistic_of_small_samples() {
        let reference = [1.0, 2.0, 2.0, 3.0, 5.0];
        // just below 4 (i = 1): F_ref = #{r < 4}/5 = 4/5 and F_win = 1/3, the largest gap
        let d = sorted_sample_statistic(&reference, &[2.0, 4.0, 6.0]).unwrap();
        assert_eq!(d, 4.0 / 5.0 - 1.0 / 3.0);
        assert_eq!(sorted_sample_statistic(&reference, &[]).unwrap(), 0.0);
        assert_eq!(sorted_sample_statistic(&[], &[1.0]).unwrap(), 0.0);
        assert_eq!(sorted_sample_statistic(&[1.0], &[1.0]).unwrap(), 0.0);
    }

    #[test]
    fn unsorted_or_non_finite_input_is_an_error() {
        assert!(sorted_sample_statistic(&[2.0, 1.0], &[1.0]).is_err());
        assert!(sorted_sample_statistic(&[1.0], &[f64::NAN]).is_err());
        assert!(sorted_sample_statistic(&[1.0, f64::INFINITY], &[1.0]).is_err());
    }
}
