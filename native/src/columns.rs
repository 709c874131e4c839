//! The columns of one model's fast events in a batch, owned and reusable.
//!
//! With thousands of models a batch holds about one event per model, so each model's
//! columns used to cost a dozen allocations (and as many frees) per batch: 9 % of the
//! main thread's samples with 10 000 models (docs/benchmarks.md, stage 11). The fleet keeps
//! the columns of the models it ran (`WindowFleet::spare`) and the decoder refills them
//! (`Columns::reset`): their buffers keep their capacity from batch to batch.
//!
//! The events' `model_version`s are kept run by run (a model's events mostly share one),
//! their text in one buffer, so that the columns borrow nothing from the batch.

use std::ops::Range;

/// A fast model's events of one batch, column by column.
#[derive(Debug, Default, PartialEq)]
pub struct Columns {
    /// each event's position in its batch
    pub positions: Vec<i64>,
    /// (events, width), row after row; NaN where a feature is absent or null
    pub features: Vec<f64>,
    pub prediction: Vec<f64>,
    pub actual: Vec<f64>,
    pub latency_ms: Vec<f64>,
    pub timestamp: Vec<f64>,
    /// (first event of the run, its version's bytes in `version_text`: None without one)
    version_runs: Vec<(usize, Option<Range<usize>>)>,
    version_text: String,
}

impl Columns {
    /// Empty columns for `events` events of `width` features, reusing this one's buffers.
    pub fn reset(&mut self, events: usize, width: usize) {
        let Columns {
            positions,
            features,
            prediction,
            actual,
            latency_ms,
            timestamp,
            version_runs,
            version_text,
        } = self;
        for column in [prediction, actual, latency_ms, timestamp] {
            column.clear();
            column.reserve(events);
        }
        positions.clear();
        positions.reserve(events);
        features.clear();
        features.reserve(events * width);
        version_runs.clear();
        version_text.clear();
    }

    /// How many events the columns hold.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Records the `model_version` of the event just appended (the last of `positions`).
    pub fn push_version(&mut self, version: Option<&str>) {
        let event = self.len().saturating_sub(1);
        let same = match self.version_runs.last() {
            Some((_, last)) => last.clone().map(|r| &self.version_text[r]) == version,
            None => false,
        };
        if same {
            return;
        }
        let text = version.map(|v| {
            let start = self.version_text.len();
            self.version_text.push_str(v);
            start..self.version_text.len()
        });
        self.version_runs.push((event, text));
    }

    /// The `model_version` of event `event` (None without one, or past the last event).
    pub fn version_at(&self, event: usize) -> Option<&str> {
        if event >= self.len() {
            return None;
        }
        let run = self
            .version_runs
            .partition_point(|(first, _)| *first <= event);
        let (_, text) = self.version_runs.get(run.checked_sub(1)?)?;
        text.clone().map(|r| &self.version_text[r])
    }

    /// Every event's `model_version`, in order: one pass over the runs.
    pub fn versions(&self) -> Versions<'_> {
        Versions {
            columns: self,
            event: 0,
            run: 0,
        }
    }
}

/// The iterator of `Columns::versions`: the runs walked once, not searched per event.
pub struct Versions<'a> {
    columns: &'a Columns,
    event: usize,
    /// the run `event` may be in: every earlier run ends before it
    run: usize,
}

impl<'a> Iterator for Versions<'a> {
    type Item = Option<&'a str>;

    fn next(&mut self) -> Option<Self::Item> {
        let c = self.columns;
        if self.event >= c.len() {
            return None;
        }
        let runs = &c.version_runs;
        while runs
            .get(self.run + 1)
            .is_some_and(|(first, _)| *first <= self.event)
        {
            self.run += 1;
        }
        let version = match runs.get(self.run) {
            Some((first, Some(text))) if *first <= self.event => {
                Some(&c.version_text[text.clone()])
            }
            _ => None,
        };
        self.event += 1;
        Some(version)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.columns.len().saturating_sub(self.event);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Versions<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_versions(versions: &[Option<&str>]) -> Columns {
        let mut c = Columns::default();
        c.reset(versions.len(), 0);
        for (i, v) in versions.iter().enumerate() {
            c.positions.push(i as i64);
            c.push_version(*v);
        }
        c
    }

    #[test]
    fn versions_are_kept_run_by_run() {
        let given = [
            None,
            Some("v1"),
            Some("v1"),
            Some(""),
            None,
            None,
            Some("v2"),
            Some("v1"),
        ];
        let c = with_versions(&given);
        assert_eq!(c.versions().collect::<Vec<_>>(), given);
        let one_by_one: Vec<_> = (0..given.len()).map(|e| c.version_at(e)).collect();
        assert_eq!(one_by_one, given);
        assert_eq!(c.versions().len(), given.len());
        assert_eq!(c.version_runs.len(), 6); // None, v1, "", None, v2, v1
        assert_eq!(c.version_at(given.len()), None);
        assert_eq!(Columns::default().version_at(0), None);
        let mut unversioned = Columns::default(); // events whose versions were not recorded
        unversioned.positions.extend([0, 1]);
        assert_eq!(unversioned.versions().collect::<Vec<_>>(), [None, None]);
    }

    #[test]
    fn reset_empties_and_keeps_the_buffers() {
        let mut c = with_versions(&[Some("v1"); 100]);
        c.features.extend([1.0; 300]);
        let capacity = (c.positions.capacity(), c.features.capacity());
        c.reset(10, 3);
        assert_eq!(c, Columns::default());
        assert_eq!((c.positions.capacity(), c.features.capacity()), capacity);
        c.positions.push(0);
        c.push_version(Some("v2"));
        assert_eq!(c.version_at(0), Some("v2"));
    }
}
