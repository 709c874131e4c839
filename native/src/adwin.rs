//! ADWIN2 (Bifet & Gavaldà 2007) on a stream of errors: `stream_monitor.detectors.adwin.ADWIN`
//! operation for operation, so that both give the same cuts and the same floats.
//!
//! The window is an exponential histogram: row i holds buckets of 2^i values (their sum and
//! their sum of squared deviations), oldest first; a row holding more than `max_buckets`
//! merges its two oldest into one bucket of the next row. Every `clock` updates each split
//! at a bucket boundary is tested with ADWIN2's bound and, while some split violates it, the
//! oldest values up to the newest violating split are dropped. The Python class's docstring
//! has the formulas; every expression below is evaluated in the Python's order (IEEE double
//! arithmetic both sides, `ln` and `sqrt` from the same C library), which is what makes the
//! results bit for bit equal. Nothing here knows Python: `lib.rs` wraps it.

use std::collections::VecDeque;
use std::fmt;

/// A parameter out of its range; the message is the Python class's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadParameter(pub &'static str);

impl fmt::Display for BadParameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BadParameter {}

#[derive(Clone, Debug, PartialEq)]
pub struct Adwin {
    pub delta: f64,
    pub clock: u64,
    pub max_buckets: usize,
    pub min_window_length: u64,
    /// row i: sums of buckets of 2^i values, oldest first
    pub totals: Vec<VecDeque<f64>>,
    /// row i: their sums of squared deviations
    pub variances: Vec<VecDeque<f64>>,
    pub width: u64,
    pub total: f64,
    /// sum of squared deviations from the mean over the window
    pub variance: f64,
    /// updates since the last clock tick
    pub tick: u64,
    pub drift: bool,
}

impl Adwin {
    pub fn new(
        delta: f64,
        clock: i64,
        max_buckets: i64,
        min_window_length: i64,
    ) -> Result<Self, BadParameter> {
        if !(0.0 < delta && delta < 1.0) {
            return Err(BadParameter("delta must be in (0, 1)"));
        }
        if clock < 1 {
            return Err(BadParameter("clock must be >= 1"));
        }
        if max_buckets < 2 {
            return Err(BadParameter("max_buckets must be >= 2"));
        }
        if min_window_length < 1 {
            return Err(BadParameter("min_window_length must be >= 1"));
        }
        Ok(Adwin {
            delta,
            clock: clock as u64,
            max_buckets: max_buckets as usize,
            min_window_length: min_window_length as u64,
            totals: Vec::new(),
            variances: Vec::new(),
            width: 0,
            total: 0.0,
            variance: 0.0,
            tick: 0,
            drift: false,
        })
    }

    /// Empty the window.
    pub fn reset(&mut self) {
        self.totals.clear();
        self.variances.clear();
        self.width = 0;
        self.total = 0.0;
        self.variance = 0.0;
        self.tick = 0;
        self.drift = false;
    }

    /// Mean of the window (0.0 when it is empty).
    pub fn estimation(&self) -> f64 {
        if self.width > 0 {
            self.total / self.width as f64
        } else {
            0.0
        }
    }

    /// Population variance of the window (0.0 when it is empty).
    pub fn population_variance(&self) -> f64 {
        if self.width > 0 {
            self.variance / self.width as f64
        } else {
            0.0
        }
    }

    /// (size, sum, sum of squared deviations) of each bucket, oldest first.
    pub fn buckets(&self) -> Vec<(u64, f64, f64)> {
        let mut out = Vec::new();
        for row in (0..self.totals.len()).rev() {
            for (&t, &v) in self.totals[row].iter().zip(self.variances[row].iter()) {
                out.push((1u64 << row, t, v));
            }
        }
        out
    }

    /// Add values in order, as one update each; true when any of them cut the window, and
    /// `drift` tells whether the last one did. Non-finite values are skipped.
    pub fn update_many(&mut self, values: &[f64]) -> bool {
        let mut any_cut = false;
        let mut last = false;
        for &x in values {
            last = false;
            if !x.is_finite() {
                continue;
            }
            if self.width > 0 {
                let width = self.width as f64;
                let d = x - self.total / width;
                self.variance += width * d * d / (width + 1.0);
            }
            self.width += 1;
            self.total += x;
            self.insert(x);
            self.tick += 1;
            if self.tick == self.clock {
                self.tick = 0;
                if self.width >= 2 * self.min_window_length {
                    last = self.cut();
                    any_cut = any_cut || last;
                }
            }
        }
        self.drift = last;
        any_cut
    }

    /// A new bucket of one value, then the merges of rows that overflow.
    fn insert(&mut self, x: f64) {
        if self.totals.is_empty() {
            self.totals.push(VecDeque::new());
            self.variances.push(VecDeque::new());
        }
        self.totals[0].push_back(x);
        self.variances[0].push_back(0.0);
        let mut row = 0;
        while self.totals[row].len() > self.max_buckets {
            let size = (1u64 << row) as f64;
            let (t1, t2) = (self.pop_total(row), self.pop_total(row));
            let (v1, v2) = (self.pop_variance(row), self.pop_variance(row));
            if row + 1 == self.totals.len() {
                self.totals.push(VecDeque::new());
                self.variances.push(VecDeque::new());
            }
            let d = t1 - t2;
            self.totals[row + 1].push_back(t1 + t2);
            self.variances[row + 1].push_back(v1 + v2 + d * d / (2.0 * size));
            row += 1;
        }
    }

    fn pop_total(&mut self, row: usize) -> f64 {
        self.totals[row].pop_front().unwrap_or(0.0)
    }

    fn pop_variance(&mut self, row: usize) -> f64 {
        self.variances[row].pop_front().unwrap_or(0.0)
    }

    /// Values in W0 for the newest split that violates eps_cut (0 when none does).
    fn newest_violating_split(&self) -> u64 {
        let width = self.width as f64;
        let total = self.total;
        let sigma2 = self.variance / width;
        let log_term = (2.0 * width.ln() / self.delta).ln();
        let least = self.min_window_length;
        let (mut n0, mut t0, mut cut) = (0u64, 0.0f64, 0u64);
        for row in (0..self.totals.len()).rev() {
            let size = 1u64 << row;
            for &bucket_total in &self.totals[row] {
                n0 += size;
                t0 += bucket_total;
                let n1 = self.width.saturating_sub(n0);
                if n1 < least {
                    return cut;
                }
                if n0 < least {
                    continue;
                }
                let (n0f, n1f) = (n0 as f64, n1 as f64);
                let inv_m = 1.0 / n0f + 1.0 / n1f;
                let eps = (2.0 * inv_m * sigma2 * log_term).sqrt() + 2.0 / 3.0 * inv_m * log_term;
                if (t0 / n0f - (total - t0) / n1f).abs() >= eps {
                    cut = n0;
                }
            }
        }
        cut
    }

    fn cut(&mut self) -> bool {
        let mut cut = false;
        while self.width >= 2 * self.min_window_length {
            let mut drop = self.newest_violating_split();
            if drop == 0 {
                break;
            }
            cut = true;
            while drop > 0 && !self.totals.is_empty() {
                let top = self.totals.len() - 1;
                self.totals[top].pop_front();
                self.variances[top].pop_front();
                drop = drop.saturating_sub(1u64 << top);
                while self.totals.last().is_some_and(VecDeque::is_empty) {
                    self.totals.pop();
                    self.variances.pop();
                }
            }
            self.summarise();
        }
        cut
    }

    /// Width, sum and squared deviations of the window again from its buckets (after a cut).
    fn summarise(&mut self) {
        let (mut width, mut total, mut variance) = (0u64, 0.0f64, 0.0f64);
        for (size, bucket_total, bucket_variance) in self.buckets() {
            if width > 0 {
                let (w, s) = (width as f64, size as f64);
                let d = bucket_total / s - total / w;
                variance += bucket_variance + d * d * w * s / ((width + size) as f64);
            } else {
                variance = bucket_variance;
            }
            width += size;
            total += bucket_total;
        }
        self.width = width;
        self.total = total;
        self.variance = variance;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        assert!(Adwin::new(0.0, 32, 5, 5).is_err());
        assert!(Adwin::new(0.002, 0, 5, 5).is_err());
        assert!(Adwin::new(0.002, 32, 1, 5).is_err());
        assert!(Adwin::new(0.002, 32, 5, 0).is_err());
    }

    #[test]
    fn buckets_hold_every_value_and_merge_in_powers_of_two() {
        let mut a = Adwin::new(0.002, 1_000_000, 2, 5).unwrap();
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        assert!(!a.update_many(&values));
        let buckets = a.buckets();
        assert_eq!(buckets.iter().map(|b| b.0).sum::<u64>(), 100);
        assert_eq!(buckets.iter().map(|b| b.1).sum::<f64>(), 4950.0);
        assert!(buckets.windows(2).all(|w| w[0].0 >= w[1].0));
        assert_eq!(a.estimation(), 49.5);
    }

    #[test]
    fn a_jump_in_the_mean_cuts_the_window() {
        let mut a = Adwin::new(0.002, 32, 5, 5).unwrap();
        let before: Vec<f64> = (0..1000).map(|i| 0.2 + 0.01 * f64::from(i % 5)).collect();
        assert!(!a.update_many(&before));
        let after: Vec<f64> = (0..1000).map(|i| 0.6 + 0.01 * f64::from(i % 5)).collect();
        assert!(a.update_many(&after));
        assert!(a.width < 1000);
        assert!((a.estimation() - 0.62).abs() < 0.01);
    }

    #[test]
    fn non_finite_values_change_nothing() {
        let mut a = Adwin::new(0.002, 32, 5, 5).unwrap();
        a.update_many(&[1.0, f64::NAN, f64::INFINITY, 2.0]);
        assert_eq!(a.width, 2);
        assert_eq!(a.total, 3.0);
    }
}
