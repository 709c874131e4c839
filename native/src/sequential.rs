//! Sequential input-drift charts: CUSUMs on the normal scores of each value's reference rank.
//!
//! Each feature value x is ranked against the model's reference column (m values): with
//! `left = #{r < x}` and `right = #{r <= x}` (the counts its KS key already holds), the rank
//! `R = left + floor(V (right - left + 1))` breaks ties at random with V a hash of (model,
//! event number, feature), so a replay draws the same V. Under no drift R is uniform on
//! `0..=m` whatever the feature's distribution, ties included, and the score
//! `z = Phi^-1((R + 1/2) / (m + 1))`, read from a table of m + 1 values, is close to N(0, 1).
//!
//! Three charts per feature (Page 1954): `up = max(0, up + z - k)`, `down = max(0, down - z -
//! k)` and the scale chart `q = max(0, q + z^2 - c)`. A chart past its threshold fires the
//! model's alert; the (feature, chart) pairs that fired are remembered and each gets a reverse
//! chart (`max(0, r + k - s z)` for a mean chart of sign s, `max(0, r + c - z^2)` for a scale
//! chart) that crosses the same threshold when the values are back (the chart then restarts);
//! when every fired pair is back the alert resolves and every chart restarts. A missing value
//! moves no chart.
//! Thresholds are derived in Python (`detectors/sequential_design.py`).

use crate::lookup;
use crate::prefetch::prefetch_span;
use std::hint::select_unpredictable;
use std::sync::Arc;

pub const UP: usize = 0;
pub const DOWN: usize = 1;
pub const SCALE: usize = 2;
pub const CHARTS: usize = 3;

/// The charts' constants: the mean charts' reference value k, the scale chart's c, and per
/// feature the thresholds of its (up, down, scale) charts (infinite: the chart is off).
#[derive(Clone, Debug, PartialEq)]
pub struct Design {
    pub k: f64,
    pub c: f64,
    pub thresholds: Vec<[f64; CHARTS]>,
}

/// One chart that fired or came back.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub feature: usize,
    pub chart: usize,
    /// the chart's value (the reverse chart's, for a chart that came back)
    pub value: f64,
    pub threshold: f64,
    /// the last event at which the chart sat at zero: the estimated start of the change
    pub start_event: u64,
    /// the event time of the event after that one (NaN when unknown)
    pub start_timestamp: f64,
    /// for a scale chart that fired: 1 (-1) when the feature's up (down) chart stands at
    /// half its threshold or more, the spread having grown with a move of the mean; else 0
    pub side: i8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Firing,
    Resolved,
}

/// A change of the model's state, at one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub status: Status,
    pub event: u64,
    pub position: i64,
    pub timestamp: f64,
    pub hits: Vec<Hit>,
    pub version: Option<String>,
}

/// Everything that evolves: per (feature, chart), at `feature * CHARTS + chart`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartState {
    pub value: Vec<f64>,
    pub zero_at: Vec<u64>,
    pub zero_timestamp: Vec<f64>,
    pub fired: Vec<bool>,
    pub reverse: Vec<f64>,
    pub firing: bool,
}

impl ChartState {
    pub fn new(features: usize, events_seen: u64) -> Self {
        let n = features * CHARTS;
        ChartState {
            value: vec![0.0; n],
            zero_at: vec![events_seen; n],
            zero_timestamp: vec![f64::NAN; n],
            fired: vec![false; n],
            reverse: vec![0.0; n],
            firing: false,
        }
    }

    /// One chart from zero at `event`, its reverse chart too.
    fn restart_chart(&mut self, at: usize, event: u64) {
        self.reverse[at] = 0.0;
        self.value[at] = 0.0;
        self.zero_at[at] = event;
        self.zero_timestamp[at] = f64::NAN;
    }

    fn restart(&mut self, event: u64) {
        self.value.fill(0.0);
        self.zero_at.fill(event);
        self.zero_timestamp.fill(f64::NAN);
        self.fired.fill(false);
        self.reverse.fill(0.0);
    }
}

/// A PCA subspace of the reference's standardised rows, and the squared reconstruction
/// errors of its held-out rows (ascending): an event's error, ranked among them, is the
/// value of one more chart (the multivariate one; `reference/projection.py`). It never
/// changes once made, so the charts of every model judged against the reference share
/// one (`Arc`), and the Python side keeps no copy of its arrays.
#[derive(Debug)]
pub struct Projection {
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// (k, F) orthonormal rows, row-major
    components: Vec<f64>,
    sorted: Vec<f64>,
    /// every `lookup::STRIDE`-th held-out error: a rank is found as a window value's is
    index: Vec<f64>,
}

impl Projection {
    pub fn new(
        mean: Vec<f64>,
        scale: Vec<f64>,
        components: Vec<f64>,
        sorted: Vec<f64>,
    ) -> Result<Self, DesignError> {
        let f = mean.len();
        if f == 0
            || scale.len() != f
            || components.is_empty()
            || !components.len().is_multiple_of(f)
        {
            return Err(DesignError(format!(
                "projection: {} means, {} scales and {} component values",
                f,
                scale.len(),
                components.len()
            )));
        }
        if scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(DesignError("projection: scales must be positive".into()));
        }
        if sorted.iter().any(|x| x.is_nan()) || sorted.windows(2).any(|w| w[0] > w[1]) {
            return Err(DesignError(
                "projection: errors must be ascending numbers".into(),
            ));
        }
        Ok(Projection {
            mean,
            scale,
            components,
            index: lookup::sparse_index(&sorted),
            sorted,
        })
    }

    pub fn width(&self) -> usize {
        self.mean.len()
    }

    pub fn size(&self) -> usize {
        self.sorted.len()
    }

    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    pub fn scale(&self) -> &[f64] {
        &self.scale
    }

    /// (k, F), row after row
    pub fn components(&self) -> &[f64] {
        &self.components
    }

    pub fn sorted(&self) -> &[f64] {
        &self.sorted
    }

    /// The squared reconstruction error of one row; None when a value is not finite. `z`
    /// is scratch of at least `width()` values.
    pub fn error(&self, x: &[f64], z: &mut [f64]) -> Option<f64> {
        let f = self.mean.len();
        if x.len() < f || z.len() < f || x[..f].iter().any(|v| !v.is_finite()) {
            return None;
        }
        let z = &mut z[..f];
        for j in 0..f {
            z[j] = (x[j] - self.mean[j]) / self.scale[j];
        }
        for row in self.components.chunks_exact(f) {
            let along: f64 = row.iter().zip(z.iter()).map(|(c, v)| c * v).sum();
            for (v, c) in z.iter_mut().zip(row) {
                *v -= along * c;
            }
        }
        Some(z.iter().map(|v| v * v).sum())
    }

    /// (left, right) of each row of a block (`rows`, `stride` values a row, the projection's
    /// features first) into `out`: the held-out errors below and not above the row's error,
    /// None for a row with a value that is not finite. The rows' errors are found first,
    /// then ranked together through the sparse index (as the reference look-ups are), so
    /// that no row waits for the one before it: with many models the held-out errors are
    /// not in the cache.
    pub fn block_counts(&self, rows: &[f64], stride: usize, out: &mut Vec<Option<(i64, i64)>>) {
        out.clear();
        let (mut errors, mut at) = (Vec::new(), Vec::new());
        let mut z = vec![0.0; self.width()];
        for (i, row) in rows.chunks_exact(stride.max(1)).enumerate() {
            out.push(None);
            if let Some(e) = self.error(row, &mut z) {
                errors.push(e);
                at.push(i);
            }
        }
        let (mut right, mut left) = (vec![0; errors.len()], vec![0; errors.len()]);
        lookup::counts_in_column(&self.sorted, &self.index, &errors, &mut right, &mut left);
        for ((i, right), left) in at.into_iter().zip(right).zip(left) {
            out[i] = Some((left as i64, right as i64));
        }
    }
}

/// The charts of one model.
pub struct Charts {
    pub design: Design,
    /// per feature: the normal score of each rank 0..=m (shared by models of equal m)
    scores: Vec<Arc<[f64]>>,
    seed: u64,
    pub state: ChartState,
    pub pending: Vec<Transition>,
    /// the multivariate chart's subspace (shared): its chart is the last one
    projection: Option<Arc<Projection>>,
}

/// 64-bit FNV-1a: a stable hash of the model's name (the tie-breaking seed).
pub fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64's finaliser: a well-mixed 64-bit value of `x`.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// V in [0, 1) for (model seed, event number, feature): uniform and reproducible.
pub fn tie_break(seed: u64, event: u64, feature: usize) -> f64 {
    let x = mix(seed ^ mix(event.wrapping_add(0x9e37_79b9_7f4a_7c15)) ^ (feature as u64 + 1));
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The rank R for counts (left, right) against a reference of `m` values.
pub fn rank(left: i64, right: i64, m: usize, v: f64) -> usize {
    let ties = (right - left).max(0) as f64;
    let r = left.max(0) as f64 + (v * (ties + 1.0)).floor();
    (r as usize).min(m)
}

#[derive(Debug, PartialEq, Eq)]
pub struct DesignError(pub String);

impl Charts {
    /// Prefetches what a step reads of this model's charts: their state and the
    /// multivariate chart's subspace and the sparse index of its held-out errors.
    pub fn prefetch(&self) {
        let s = &self.state;
        prefetch_span(&s.value);
        prefetch_span(&s.zero_at);
        prefetch_span(&s.zero_timestamp);
        prefetch_span(&s.fired);
        prefetch_span(&s.reverse);
        if let Some(p) = &self.projection {
            prefetch_span(&p.mean);
            prefetch_span(&p.scale);
            prefetch_span(&p.components);
            prefetch_span(&p.index);
        }
    }

    pub fn new(
        design: Design,
        scores: Vec<Arc<[f64]>>,
        seed: u64,
        state: ChartState,
    ) -> Result<Self, DesignError> {
        let f = design.thresholds.len();
        if scores.len() != f {
            return Err(DesignError(format!(
                "{} score tables for {f} features",
                scores.len()
            )));
        }
        if scores.iter().any(|s| s.is_empty()) {
            return Err(DesignError("a score table is empty".into()));
        }
        if !(design.k >= 0.0 && design.c >= 0.0) {
            return Err(DesignError("k and c must be non-negative".into()));
        }
        if design
            .thresholds
            .iter()
            .flatten()
            .any(|h| h.is_nan() || *h <= 0.0)
        {
            return Err(DesignError("thresholds must be positive".into()));
        }
        let n = f * CHARTS;
        let lens = [
            state.value.len(),
            state.zero_at.len(),
            state.zero_timestamp.len(),
            state.fired.len(),
            state.reverse.len(),
        ];
        if lens.iter().any(|&l| l != n) {
            return Err(DesignError(format!(
                "state of {lens:?} charts, expected {n}"
            )));
        }
        Ok(Charts {
            design,
            scores,
            seed,
            state,
            pending: Vec::new(),
            projection: None,
        })
    }

    /// Adds the multivariate chart: the last of the design's features is the projection's.
    pub fn with_projection(mut self, projection: Arc<Projection>) -> Result<Self, DesignError> {
        let last = self.scores.len().checked_sub(1);
        match last {
            Some(j) if self.scores[j].len() == projection.size() + 1 => {
                self.projection = Some(projection);
                Ok(self)
            }
            _ => Err(DesignError(
                "projection: the last score table must hold one value more than its errors".into(),
            )),
        }
    }

    pub fn width(&self) -> usize {
        self.design.thresholds.len()
    }

    /// The features whose counts the caller gives (all but the multivariate chart's).
    pub fn counted_width(&self) -> usize {
        self.width() - usize::from(self.projection.is_some())
    }

    /// The raw features the multivariate chart reads from each event (0 without it).
    pub fn projected_width(&self) -> usize {
        self.projection.as_deref().map_or(0, Projection::width)
    }

    /// The multivariate chart's counts of each row of a block (`Projection::block_counts`),
    /// for `step`; all None without that chart.
    pub fn projected_counts(&self, rows: &[f64], stride: usize, out: &mut Vec<Option<(i64, i64)>>) {
        match &self.projection {
            Some(p) => p.block_counts(rows, stride, out),
            None => {
                out.clear();
                out.resize(rows.len() / stride.max(1), None);
            }
        }
    }

    /// One event (`event`: the model's event count including it). `counts(j)` gives the
    /// feature's (left, right) reference counts, None for a missing value; `projected`, the
    /// event's counts for the multivariate chart (`projected_counts`). Returns whether the
    /// event changed the model's state (a transition was queued in `pending`).
    pub fn step(
        &mut self,
        event: u64,
        timestamp: f64,
        position: i64,
        counts: impl Fn(usize) -> Option<(i64, i64)>,
        projected: Option<(i64, i64)>,
    ) -> bool {
        let (k, c) = (self.design.k, self.design.c);
        let mut returned = false;
        let mut crossed = false;
        let counted = self.counted_width();
        let s = &mut self.state;
        for j in 0..self.design.thresholds.len() {
            let found = if j < counted { counts(j) } else { projected };
            let Some((left, right)) = found else {
                continue;
            };
            let table = &self.scores[j];
            let m = table.len() - 1;
            // untied values (most of a continuous feature's) need no draw: their rank is left
            let r = if right > left {
                rank(left, right, m, tie_break(self.seed, event, j))
            } else {
                (left.max(0) as usize).min(m)
            };
            let z = table[r];
            let steps = [z - k, -z - k, z * z - c];
            let backs = [k - z, k + z, c - z * z];
            for chart in 0..CHARTS {
                let at = j * CHARTS + chart;
                let h = self.design.thresholds[j][chart];
                let before = s.value[at];
                let v = (before + steps[chart]).max(0.0);
                s.value[at] = v;
                // at zero the chart restarts; leaving zero dates its run. Selects, not
                // branches: under no change a chart touches zero at random
                let zero = v == 0.0;
                let leaves = before == 0.0;
                s.zero_at[at] = select_unpredictable(zero, event, s.zero_at[at]);
                let kept = select_unpredictable(leaves, timestamp, s.zero_timestamp[at]);
                s.zero_timestamp[at] = select_unpredictable(zero, f64::NAN, kept);
                if s.fired[at] {
                    let r = (s.reverse[at] + backs[chart]).max(0.0);
                    s.reverse[at] = r;
                    returned |= r > h;
                } else if v > h {
                    crossed = true;
                }
            }
        }
        if !(returned || crossed) {
            return false;
        }
        self.transition(event, timestamp, position)
    }

    /// Books what crossed or came back at this event.
    fn transition(&mut self, event: u64, timestamp: f64, position: i64) -> bool {
        let s = &mut self.state;
        let mut back = Vec::new();
        let mut fired = Vec::new();
        for (j, limits) in self.design.thresholds.iter().enumerate() {
            for (chart, &h) in limits.iter().enumerate() {
                let at = j * CHARTS + chart;
                let hit = |value: f64, side: i8| Hit {
                    feature: j,
                    chart,
                    value,
                    threshold: h,
                    start_event: s.zero_at[at],
                    start_timestamp: s.zero_timestamp[at],
                    side,
                };
                if s.fired[at] && s.reverse[at] > h {
                    back.push(hit(s.reverse[at], 0));
                    // back: the chart restarts from here (what it gathered while the
                    // alert fired is not evidence of a new change)
                    s.fired[at] = false;
                    s.restart_chart(at, event);
                } else if !s.fired[at] && s.value[at] > h {
                    let side = if chart == SCALE {
                        let up = s.value[j * CHARTS + UP] / limits[UP];
                        let down = s.value[j * CHARTS + DOWN] / limits[DOWN];
                        match (up >= 0.5, down >= 0.5) {
                            (true, _) if up >= down => 1,
                            (_, true) => -1,
                            _ => 0,
                        }
                    } else {
                        0
                    };
                    fired.push(hit(s.value[at], side));
                    // the chart restarts; it keeps watching for a further change
                    s.fired[at] = true;
                    s.restart_chart(at, event);
                }
            }
        }
        let status = if !s.firing && !fired.is_empty() {
            s.firing = true;
            Some((Status::Firing, fired))
        } else if s.firing && !s.fired.iter().any(|&f| f) {
            s.firing = false;
            s.restart(event);
            Some((Status::Resolved, back))
        } else {
            None
        };
        match status {
            Some((status, hits)) => {
                self.pending.push(Transition {
                    status,
                    event,
                    position,
                    timestamp,
                    hits,
                    version: None,
                });
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(m: usize) -> Arc<[f64]> {
        // a monotone stand-in for the normal quantiles: enough for the state machine
        (0..=m)
            .map(|r| (r as f64 + 0.5) / (m as f64 + 1.0) * 6.0 - 3.0)
            .collect::<Vec<_>>()
            .into()
    }

    fn charts(features: usize, h: f64) -> Charts {
        let design = Design {
            k: 0.25,
            c: 1.4597,
            thresholds: vec![[h, h, 4.0 * h]; features],
        };
        Charts::new(
            design,
            (0..features).map(|_| table(100)).collect(),
            name_seed("m"),
            ChartState::new(features, 0),
        )
        .unwrap()
    }

    #[test]
    fn ranks_cover_the_ties_uniformly() {
        let mut seen = [0usize; 4];
        for e in 0..40_000 {
            let r = rank(5, 8, 100, tie_break(7, e, 0));
            seen[r - 5] += 1;
        }
        for count in seen {
            assert!((9_000..11_000).contains(&count), "{seen:?}");
        }
        assert_eq!(rank(100, 100, 100, 0.999), 100);
        assert_eq!(rank(3, 3, 100, 0.999), 3);
    }

    #[test]
    fn the_hash_is_reproducible_and_spread() {
        assert_eq!(tie_break(1, 2, 3), tie_break(1, 2, 3));
        assert_ne!(tie_break(1, 2, 3), tie_break(1, 3, 3));
        assert_ne!(name_seed("a"), name_seed("b"));
        let mean: f64 = (0..10_000).map(|e| tie_break(9, e, 1)).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
    }

    #[test]
    fn a_shift_fires_then_its_end_resolves() {
        let mut c = charts(2, 5.0);
        let high = |_: usize| Some((95, 95)); // z ~ 2.7 on feature 0 and 1
        let mid = |_: usize| Some((50, 50));
        for e in 1..=10 {
            c.step(e, e as f64, e as i64, mid, None);
        }
        assert!(c.pending.is_empty());
        let mut fired_at = 0;
        for e in 11..=20 {
            if c.step(e, e as f64, e as i64, high, None) {
                fired_at = e;
                break;
            }
        }
        assert_eq!(fired_at, 13); // z = 2.67: 3 x (z - 0.25) > 5 > 2 x (z - 0.25)
        let t = &c.pending[0];
        assert_eq!(t.status, Status::Firing);
        assert_eq!(t.hits.len(), 2);
        assert!(t.hits.iter().all(|h| h.chart == UP && h.start_event == 10));
        assert_eq!(t.hits[0].start_timestamp, 11.0);
        let mut resolved_at = 0;
        for e in fired_at + 1..=40 {
            if c.step(e, e as f64, e as i64, mid, None) {
                resolved_at = e;
                break;
            }
        }
        // back at the centre (z = 0) the reverse chart gains k - z = 0.25 a step: 21 steps
        assert_eq!(resolved_at, 34);
        assert_eq!(c.pending[1].status, Status::Resolved);
        assert!(c.state.value.iter().all(|&v| v == 0.0));
        assert!(!c.state.firing);
    }

    #[test]
    fn missing_values_move_nothing() {
        let mut c = charts(1, 5.0);
        for e in 1..=100 {
            assert!(!c.step(e, 0.0, 0, |_| None, None));
        }
        assert!(c.state.value.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn the_projection_error_is_the_distance_from_the_subspace() {
        // the subspace of (1, 1) / sqrt 2 in two standardised features
        let r = std::f64::consts::FRAC_1_SQRT_2;
        let sorted = vec![0.0, 1.0, 2.0, 2.0, 8.0];
        let p = Projection::new(vec![1.0, 0.0], vec![2.0, 1.0], vec![r, r], sorted).unwrap();
        let mut z = [0.0; 2];
        // z = (1, -1): all of it off the subspace, squared length 2
        let e = p.error(&[3.0, -1.0], &mut z).unwrap();
        assert!((e - 2.0).abs() < 1e-12, "{e}");
        let mut out = Vec::new();
        // rows of three values: the projection reads the first two
        let rows = [3.0, -1.0, 9.0, f64::NAN, 1.0, 0.0, 1.0, 0.0, 0.0];
        p.block_counts(&rows, 3, &mut out);
        assert_eq!(out, vec![Some((2, 4)), None, Some((0, 1))]);
        assert!(p.error(&[3.0, 1.0], &mut z).unwrap().abs() < 1e-12); // on the subspace
        assert_eq!(p.error(&[f64::NAN, 1.0], &mut z), None);
        assert!(Projection::new(vec![0.0], vec![0.0], vec![1.0], vec![]).is_err());
    }

    #[test]
    fn bad_designs_are_refused() {
        let design = Design {
            k: 0.25,
            c: 1.0,
            thresholds: vec![[1.0, 1.0, 1.0]],
        };
        assert!(Charts::new(design.clone(), vec![], 0, ChartState::new(1, 0)).is_err());
        assert!(Charts::new(design.clone(), vec![table(3)], 0, ChartState::new(2, 0)).is_err());
        let mut bad = design;
        bad.thresholds[0][1] = f64::NAN;
        assert!(Charts::new(bad, vec![table(3)], 0, ChartState::new(1, 0)).is_err());
    }
}
