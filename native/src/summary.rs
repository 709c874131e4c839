//! Summaries of a window's per-event numbers, each equal to the numpy (or scipy) expression
//! the Python checks evaluate, to the last bit: the regression errors (MAE, RMSE), numpy's
//! linear percentiles, the prediction histogram and its Jensen-Shannon distance.
//!
//! Equality with numpy rests on doing its floating-point operations in its order: a sum is
//! numpy's pairwise summation (`pairwise_sum`), a mean that sum divided by the count, and the
//! percentiles read the same order statistics with the same interpolation. One call per
//! check replaces five to ten numpy calls, whose overhead was most of these checks' cost.
//!
//! Nothing here knows Python: `lib.rs` wraps it.

/// numpy's `add.reduce` of a contiguous float64 array: 0.0 plus the pairwise sum (blocks
/// of up to 128 values summed by eight accumulators, larger runs split in halves at a
/// multiple of eight), the operations and order of numpy's `pairwise_sum`.
pub fn numpy_sum(values: &[f64]) -> f64 {
    0.0 + pairwise_sum(values)
}

fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

/// `np.mean` of a contiguous float64 array (NaN for none, as numpy's warning-free result).
pub fn numpy_mean(values: &[f64]) -> f64 {
    numpy_sum(values) / values.len() as f64
}

/// MAE and RMSE of the events with both a finite prediction and a finite actual, as
/// `detectors.performance.regression_errors` computes them: (labeled, mae, rmse), NaN for
/// none. `scratch` holds the errors, then their squares.
pub fn regression_errors(
    prediction: &[f64],
    actual: &[f64],
    scratch: &mut Vec<f64>,
) -> (usize, f64, f64) {
    scratch.clear();
    scratch.extend(
        prediction
            .iter()
            .zip(actual)
            .map(|(p, a)| p - a)
            .filter(|e| e.is_finite()),
    );
    let labeled = scratch.len();
    if labeled == 0 {
        return (0, f64::NAN, f64::NAN);
    }
    let squares: Vec<f64> = scratch.iter().map(|e| e * e).collect();
    for e in scratch.iter_mut() {
        *e = e.abs();
    }
    let mae = numpy_mean(scratch);
    let rmse = numpy_mean(&squares).sqrt();
    (labeled, mae, rmse)
}

/// `np.percentile(values, percents)` (the linear method) of the finite values, as
/// `detectors.performance.linear_percentiles` computes it from the sorted values; empty when
/// there is none. Only the order statistics the percentiles read are found (by selection,
/// in increasing order, each within what the previous left above it), not a full sort.
pub fn linear_percentiles(values: &[f64], percents: &[f64], scratch: &mut Vec<f64>) -> Vec<f64> {
    scratch.clear();
    scratch.extend(values.iter().copied().filter(|v| v.is_finite()));
    let n = scratch.len();
    if n == 0 {
        return Vec::new();
    }
    // (virtual index, previous) per percent, and the ranks they read
    let places: Vec<(f64, usize)> = percents
        .iter()
        .map(|&p| {
            let virtual_index = (n - 1) as f64 * (p / 100.0);
            (virtual_index, virtual_index.floor() as usize)
        })
        .collect();
    let mut ranks: Vec<usize> = Vec::with_capacity(2 * places.len());
    for &(virtual_index, previous) in &places {
        if virtual_index >= (n - 1) as f64 {
            ranks.push(n - 1);
        } else {
            ranks.extend([previous, previous + 1]);
        }
    }
    ranks.sort_unstable();
    ranks.dedup();
    let mut start = 0;
    for &rank in &ranks {
        // the ranks before `start` are in place and nothing after them is smaller: select
        // within the rest, leaving them where they are
        scratch[start..].select_nth_unstable_by(rank - start, f64::total_cmp);
        start = rank + 1;
    }
    places
        .iter()
        .map(|&(virtual_index, previous)| {
            if virtual_index >= (n - 1) as f64 {
                return scratch[n - 1];
            }
            let (below, above) = (scratch[previous], scratch[previous + 1]);
            let gamma = virtual_index - previous as f64;
            let diff = above - below;
            if gamma >= 0.5 {
                above - diff * (1.0 - gamma)
            } else {
                below + diff * gamma
            }
        })
        .collect()
}

/// Each bin's count of a window's precomputed bin indices (negative: no value), as
/// `detectors.histogram.bin_counts`; indices past the last bin are an error (Err(index)).
pub fn bin_counts(bin_index: &[i16], bins: usize) -> Result<Vec<i64>, i16> {
    let mut counts = vec![0i64; bins];
    for &b in bin_index {
        if b >= 0 {
            *counts.get_mut(b as usize).ok_or(b)? += 1;
        }
    }
    Ok(counts)
}

/// The smoothing of `detectors.histogram.smoothed`: proportions plus 1e-10 per bin.
pub fn smoothed(counts: &[i64]) -> Vec<f64> {
    let total = counts.iter().sum::<i64>().max(1) as f64;
    counts.iter().map(|&c| c as f64 / total + 1e-10).collect()
}

/// scipy's `rel_entr(x, y)` as scipy computes it since its pull request 20816 (2024):
/// `x log(x / y)`, with `log1p((x - y) / y)` where x / y lies in (0.5, 2) and `log x - log y`
/// where x / y is not a normal number (checked against scipy on random values by
/// tests/test_native_summary.py).
fn rel_entr(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x > 0.0 && y > 0.0 {
        let ratio = x / y;
        if !ratio.is_normal() {
            x * (x.ln() - y.ln())
        } else if 0.5 < ratio && ratio < 2.0 {
            x * ((x - y) / y).ln_1p()
        } else {
            x * ratio.ln()
        }
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// `detectors.histogram.js_distance(p, q)`: the Jensen-Shannon distance of two unnormalised
/// distributions of the same length, with the natural logarithm, as scipy defines it.
pub fn js_distance(p: &[f64], q: &[f64]) -> f64 {
    let (ps, qs) = (numpy_sum(p), numpy_sum(q));
    let p: Vec<f64> = p.iter().map(|x| x / ps).collect();
    let q: Vec<f64> = q.iter().map(|x| x / qs).collect();
    let m: Vec<f64> = p.iter().zip(&q).map(|(a, b)| (a + b) / 2.0).collect();
    let left: Vec<f64> = p.iter().zip(&m).map(|(&a, &b)| rel_entr(a, b)).collect();
    let right: Vec<f64> = q.iter().zip(&m).map(|(&a, &b)| rel_entr(a, b)).collect();
    let divergence = (numpy_sum(&left) + numpy_sum(&right)) / 2.0;
    // Python's max(divergence, 0.0): the first argument unless the second is larger
    let divergence = if 0.0 > divergence { 0.0 } else { divergence };
    divergence.sqrt()
}

/// Every (feature, measure, share) over its limit, and each measure's largest share.
pub type Quality = (Vec<(usize, usize, f64)>, [f64; 3]);

/// The data-quality shares of a window's numeric features from its running tallies, as
/// `checks.operations.data_quality` forms them: missing and non-finite values per event
/// (`count`, at least 1), values outside the reference's range per finite value (at least 1).
/// Returns every (feature, measure, share) above its measure's limit, in measure order then
/// feature order, and each measure's largest share (-inf for no feature). Measures: 0
/// missing, 1 non-finite, 2 out of range. The tallies must have one entry per feature.
pub fn numeric_quality(
    missing: &[i64],
    nonfinite: &[i64],
    outside: &[i64],
    count: i64,
    limits: [f64; 3],
) -> Quality {
    let n = count.max(1) as f64;
    let mut over = Vec::new();
    let mut top = [f64::NEG_INFINITY; 3];
    for measure in 0..3 {
        for j in 0..missing.len() {
            let share = match measure {
                0 => missing[j] as f64 / n,
                1 => nonfinite[j] as f64 / n,
                _ => outside[j] as f64 / (count - missing[j] - nonfinite[j]).max(1) as f64,
            };
            if share > limits[measure] {
                over.push((j, measure, share));
            }
            // numpy's max: the first NaN wins (shares are never NaN: counts over counts)
            if share > top[measure] {
                top[measure] = share;
            }
        }
    }
    (over, top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_splits_as_numpy_does() {
        // 1e16 + 1 + ... is order-sensitive: summed left to right the ones vanish
        let mut a = vec![1.0; 300];
        a[0] = 1e16;
        let left_to_right = a.iter().fold(0.0, |s, x| s + x);
        assert_eq!(left_to_right, 1e16);
        assert!(numpy_sum(&a) > 1e16);
        assert_eq!(numpy_sum(&[]), 0.0);
        assert_eq!(numpy_sum(&[1.5, 2.5]), 4.0);
    }

    #[test]
    fn regression_errors_skip_unlabeled_events() {
        let mut scratch = Vec::new();
        let p = [1.0, 2.0, f64::NAN, 4.0];
        let a = [1.5, 4.0, 3.0, f64::INFINITY];
        let (labeled, mae, rmse) = regression_errors(&p, &a, &mut scratch);
        assert_eq!(labeled, 2);
        assert_eq!(mae, 1.25);
        assert_eq!(rmse, (4.25f64 / 2.0).sqrt());
        let (none, mae, _) = regression_errors(&[f64::NAN], &[1.0], &mut scratch);
        assert_eq!(none, 0);
        assert!(mae.is_nan());
    }

    #[test]
    fn percentiles_interpolate_linearly() {
        let mut scratch = Vec::new();
        let v = [40.0, 10.0, f64::NAN, 30.0, 20.0];
        let got = linear_percentiles(&v, &[50.0, 95.0, 99.0, 100.0, 0.0], &mut scratch);
        // np.percentile([40, 10, 30, 20], [50, 95, 99, 100, 0]), its rounding included
        assert_eq!(got, vec![25.0, 38.5, 39.699999999999996, 40.0, 10.0]);
        assert!(linear_percentiles(&[f64::NAN], &[50.0], &mut scratch).is_empty());
        assert_eq!(
            linear_percentiles(&[7.0], &[50.0, 99.0], &mut scratch),
            [7.0, 7.0]
        );
    }

    #[test]
    fn quality_shares_name_what_is_over_its_limit() {
        let (over, top) = numeric_quality(&[0, 5], &[1, 0], &[9, 0], 10, [0.4, 0.05, 0.5]);
        // feature 0: 1 of 10 non-finite (over 0.05), 9 of 9 finite outside (over 0.5)
        assert_eq!(over, vec![(1, 0, 0.5), (0, 1, 0.1), (0, 2, 1.0)]);
        assert_eq!(top, [0.5, 0.1, 1.0]);
        let (none, top) = numeric_quality(&[], &[], &[], 0, [0.1; 3]);
        assert!(none.is_empty() && top == [f64::NEG_INFINITY; 3]);
    }

    #[test]
    fn bins_count_and_reject_out_of_range() {
        assert_eq!(bin_counts(&[0, -1, 2, 2], 3), Ok(vec![1, 0, 2]));
        assert_eq!(bin_counts(&[3], 3), Err(3));
    }

    #[test]
    fn js_distance_of_equal_and_disjoint_histograms() {
        assert_eq!(js_distance(&[1.0, 3.0], &[2.0, 6.0]), 0.0);
        let disjoint = js_distance(&[1.0, 0.0], &[0.0, 1.0]);
        assert!((disjoint - std::f64::consts::LN_2.sqrt()).abs() < 1e-15);
    }
}
