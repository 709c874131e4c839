//! One model's run through a batch in `WindowFleet` (`fleet.rs`), in three steps, so that
//! the models of a batch can run side by side:
//!
//! 1. `Hold::take`, with the GIL: the model's Python-held state read, its arrays held
//!    (written through slices the fleet vouches for: `spans.rs`);
//! 2. `Run::go`, without it, on any thread: its events into its window, its charts and its
//!    native ADWIN, up to its next due check, the end of a run in which its charts changed
//!    state, or its last event;
//! 3. `Objects::give_back`, with the GIL: the state written back, and the errors given to an
//!    error detector that is not native.
//!
//! A run reads and writes only its own model's state, so the models of a batch end with
//! the same windows, charts and stops whichever thread runs them, and in whatever order.
//! `runs.rs` takes a batch's models through the three steps.

use crate::adwin::Adwin;
use crate::charts::SequentialCharts;
use crate::fleet::{Enrolled, KeyArray, Staged, Stop};
use crate::lookup::{self, LookupError};
use crate::prefetch;
use crate::ring::{self, Buffers, Event, KeysMut, Lookups, Position};
use crate::sequential::Charts;
use crate::spans::Span;
use crate::PyAdwin;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

/// The state a run starts from and ends with: what the Python objects hold between runs.
#[derive(Clone, Copy)]
pub(crate) struct Progress {
    pos: Position,
    /// the window's tallies hold its rows (false after a write of the Python path)
    fresh: bool,
    /// the model's event count and its events since its last check
    seen: u64,
    since: u64,
    /// its check cadence: a check every `every` events
    every: u64,
}

/// A model's borrows for one run: taken, and later released, on the thread that holds
/// the GIL. Its two parts are borrowed apart: a run writes through `arrays` while the
/// runs before it are given back through their `objects` (`runs.rs`).
pub(crate) struct Hold<'py> {
    pub(crate) objects: Objects<'py>,
    pub(crate) arrays: Arrays<'py>,
}

/// The Python objects a run's state is read from and written back to.
pub(crate) struct Objects<'py> {
    model: Bound<'py, PyAny>,
    window: Bound<'py, PyAny>,
    /// `model.errors`, the concept-drift detector's stream
    stream: Bound<'py, PyAny>,
    pub(crate) start: Progress,
}

/// The arrays and native objects a run writes.
pub(crate) struct Arrays<'py> {
    features: Bound<'py, PyArray2<f64>>,
    scalars: Bound<'py, PyArray2<f64>>,
    prediction_bin: Bound<'py, PyArray1<i16>>,
    feature_bin: Bound<'py, PyArray2<i16>>,
    tallies: Bound<'py, PyArray2<i64>>,
    wide: Option<Bound<'py, PyArray2<i64>>>,
    narrow: Option<Bound<'py, PyArray2<i32>>>,
    flat: Option<Bound<'py, PyArray1<f64>>>,
    charts: Option<PyRefMut<'py, SequentialCharts>>,
    /// the detector when it is the native ADWIN
    adwin: Option<PyRefMut<'py, PyAdwin>>,
}

/// What a run did, for `Objects::give_back`.
pub(crate) struct Outcome {
    end: Progress,
    due: Option<Stop>,
    /// the run's finite errors, for a detector that is not native
    errors: Vec<f64>,
    /// the native ADWIN cut its window
    changed: bool,
    failed: Option<LookupError>,
}

/// One model's run: its borrows as slices, free of Python.
pub(crate) struct Run<'a> {
    staged: &'a mut Staged,
    look: Lookups<'a>,
    buffers: Buffers<'a>,
    charts: Option<&'a mut Charts>,
    adwin: Option<&'a mut Adwin>,
    width: usize,
    progress: Progress,
    pub(crate) outcome: Option<Outcome>,
}

/// An enrolled array's elements as a slice that this run alone writes, in place of numpy's
/// borrow checking (`try_readwrite`), whose process-wide bookkeeping of seven arrays per
/// model per batch took 15 % of the engine's time with 10 000 models (`spans.rs`;
/// docs/benchmarks.md, stage 9). Fails when the array no longer spans the memory it did
/// at enrolment (reshaped or reallocated in place since).
///
/// # Safety
/// `enrolled` is the array's span as the fleet holds it in its `Spans` (overlapping no
/// other array the fleet reads or writes), and no other slice of this array lives as long
/// as the one returned. The fleet's reference to the array keeps its memory alive. (Python
/// code could write the array meanwhile, as it could under numpy's borrow checking; the
/// engine's never does during a batch.)
unsafe fn slice_mut<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    array: &'a mut Bound<'_, numpy::PyArray<T, D>>,
    field: &str,
    enrolled: Span,
) -> PyResult<&'a mut [T]> {
    // SAFETY: the caller's (above); `as_slice_mut` checks the array is contiguous
    let slice = unsafe { array.as_slice_mut() }
        .map_err(|_| PyValueError::new_err(format!("{field}: not contiguous")))?;
    spans_still(field, Span::of(slice), enrolled)?;
    Ok(slice)
}

/// The reference's values as a slice, only read: as `slice_mut`.
///
/// # Safety
/// As `slice_mut`'s, except that other read-only slices of it may live (the fleet holds
/// no span that is written over it).
unsafe fn slice<'a>(
    array: &'a Bound<'_, PyArray1<f64>>,
    field: &str,
    enrolled: Span,
) -> PyResult<&'a [f64]> {
    // SAFETY: the caller's (above)
    let slice = unsafe { array.as_slice() }
        .map_err(|_| PyValueError::new_err(format!("{field}: not contiguous")))?;
    spans_still(field, Span::of(slice), enrolled)?;
    Ok(slice)
}

fn spans_still(field: &str, now: Span, enrolled: Span) -> PyResult<()> {
    if now == enrolled || (now.len == 0 && enrolled.len == 0) {
        return Ok(());
    }
    Err(PyRuntimeError::new_err(format!(
        "{field}: the array was reshaped or reallocated since its model was enrolled"
    )))
}

impl<'py> Hold<'py> {
    /// Reads the model's state and holds its arrays (an error leaves everything as it was).
    pub(crate) fn take(py: Python<'py>, entry: &Enrolled) -> PyResult<Self> {
        let model = entry.model.bind(py).clone();
        let window = entry.window.bind(py).clone();
        if !model.getattr(intern!(py, "window"))?.is(&window) {
            return Err(PyRuntimeError::new_err(format!(
                "model {}: its window was replaced without enrolling the new one",
                entry.name.bind(py)
            )));
        }
        let plan = model.getattr(intern!(py, "plan"))?;
        let start = Progress {
            pos: Position {
                head: window.getattr(intern!(py, "_head"))?.extract()?,
                count: window.getattr(intern!(py, "count"))?.extract()?,
            },
            fresh: window.getattr(intern!(py, "_fresh"))?.extract()?,
            seen: model.getattr(intern!(py, "events_seen"))?.extract()?,
            since: model.getattr(intern!(py, "since_check"))?.extract()?,
            every: plan.getattr(intern!(py, "check_every"))?.extract()?,
        };
        if start.every == 0 {
            return Err(PyValueError::new_err("check_every must be at least 1"));
        }
        let (mut wide, mut narrow) = (None, None);
        match &entry.keys {
            KeyArray::Absent => {}
            KeyArray::Wide(k) => wide = Some(k.bind(py).clone()),
            KeyArray::Narrow(k) => narrow = Some(k.bind(py).clone()),
        }
        let flat = entry
            .reference
            .as_ref()
            .map(|r| r.get().flat.bind(py).clone());
        let charts = match (&entry.charts, &entry.reference) {
            (Some(c), Some(_)) => Some(c.bind(py).try_borrow_mut()?),
            _ => None,
        };
        let stream = model.getattr(intern!(py, "errors"))?;
        let detector = stream.getattr(intern!(py, "detector"))?;
        let adwin = match detector.cast::<PyAdwin>() {
            Ok(a) => Some(a.try_borrow_mut()?),
            Err(_) => None,
        };
        let address = |object: &Bound<'_, PyAny>| object.as_ptr() as usize;
        entry
            .reached
            .remember(address(&plan), address(&stream), address(&detector));
        Ok(Hold {
            objects: Objects {
                model,
                window,
                stream,
                start,
            },
            arrays: Arrays {
                features: entry.features.bind(py).clone(),
                scalars: entry.scalars.bind(py).clone(),
                prediction_bin: entry.prediction_bin.bind(py).clone(),
                feature_bin: entry.feature_bin.bind(py).clone(),
                tallies: entry.tallies.bind(py).clone(),
                wide,
                narrow,
                flat,
                charts,
                adwin,
            },
        })
    }
}

impl<'py> Arrays<'py> {
    /// The run of `staged`'s next events over these borrows, from `start`.
    pub(crate) fn run<'a>(
        &'a mut self,
        entry: &'a Enrolled,
        staged: &'a mut Staged,
        start: Progress,
    ) -> PyResult<Run<'a>> {
        let spans = &entry.spans;
        // SAFETY: `spans` are the spans the fleet holds for these arrays (`enroll`), and
        // `&'a mut self` makes this run the only one of this hold; the fleet runs each
        // model once at a time (`run_models` refuses a model twice): no other slice of
        // these arrays lives while this run does.
        let (keys, flat) = unsafe {
            let keys = match (&mut self.wide, &mut self.narrow) {
                (Some(k), _) => KeysMut::Wide(slice_mut(k, "ks_key", spans.keys)?),
                (_, Some(k)) => KeysMut::Narrow(slice_mut(k, "ks_key", spans.keys)?),
                _ => KeysMut::Absent,
            };
            let flat = match &self.flat {
                Some(f) => Some(slice(f, "reference", spans.flat)?),
                None => None,
            };
            (keys, flat)
        };
        let columns = match (&entry.reference, flat) {
            (Some(r), Some(flat)) => {
                let (columns, index) = &entry.offsets;
                let columns =
                    lookup::Columns::with_offsets(flat, columns).map_err(crate::lookup_error)?;
                let index = lookup::Columns::with_offsets(&r.get().index, index)
                    .map_err(crate::lookup_error)?;
                Some((columns, index))
            }
            _ => None,
        };
        // SAFETY: as above
        let buffers = unsafe {
            Buffers {
                size: entry.size,
                features: slice_mut(&mut self.features, "features", spans.features)?,
                scalars: slice_mut(&mut self.scalars, "scalars", spans.scalars)?,
                keys,
                prediction_bin: slice_mut(
                    &mut self.prediction_bin,
                    "prediction_bin",
                    spans.prediction_bin,
                )?,
                feature_bin: slice_mut(&mut self.feature_bin, "numeric_bin", spans.feature_bin)?,
                tallies: slice_mut(&mut self.tallies, "tallies", spans.tallies)?,
            }
        };
        Ok(Run {
            staged,
            look: Lookups {
                columns,
                sizes: &entry.sizes,
                layout: entry.layout,
                prediction_edges: entry.prediction_edges.as_deref(),
                feature_edges: &entry.feature_edges,
            },
            buffers,
            charts: self.charts.as_mut().map(|c| &mut c.inner),
            adwin: self.adwin.as_mut().map(|a| &mut a.inner),
            width: entry.width,
            progress: start,
            outcome: None,
        })
    }
}

impl<'py> Objects<'py> {
    /// Writes the run's end state back to the Python objects; the run's stop, or its
    /// look-up error. `windows[model]` = (window fill, has a reference) when the model has
    /// no check left in the batch.
    pub(crate) fn give_back(
        &self,
        py: Python<'py>,
        entry: &Enrolled,
        staged: &Staged,
        outcome: Outcome,
        windows: &Bound<'py, PyDict>,
    ) -> PyResult<Option<Stop>> {
        if let Some(e) = outcome.failed {
            return Err(crate::lookup_error(e)); // nothing was written
        }
        if outcome.changed {
            self.stream.setattr(intern!(py, "changed"), true)?;
        }
        if !outcome.errors.is_empty() {
            // the detector's first errors make it (`ErrorStream.watch`)
            let errors = outcome.errors.into_pyarray(py);
            self.stream.call_method1(intern!(py, "watch"), (errors,))?;
        }
        let end = outcome.end;
        if !self.start.fresh {
            self.window.setattr(intern!(py, "_fresh"), true)?;
        }
        self.window.setattr(intern!(py, "_head"), end.pos.head)?;
        self.window.setattr(intern!(py, "count"), end.pos.count)?;
        self.model.setattr(intern!(py, "events_seen"), end.seen)?;
        self.model.setattr(intern!(py, "since_check"), end.since)?;
        if let Some(v) = staged
            .done
            .checked_sub(1)
            .and_then(|l| staged.columns.version_at(l))
        {
            set_version(&self.model, v)?;
        }
        if outcome.due.is_none() {
            let has_reference = entry.reference.is_some();
            windows.set_item(entry.name.bind(py), (end.pos.count, has_reference))?;
        }
        Ok(outcome.due)
    }
}

/// `model.version = version`, unless it already is that text.
fn set_version(model: &Bound<'_, PyAny>, version: &str) -> PyResult<()> {
    let py = model.py();
    let current = model.getattr(intern!(py, "version"))?;
    if let Ok(s) = current.cast::<PyString>() {
        if s.to_str().ok() == Some(version) {
            return Ok(());
        }
    }
    model.setattr(intern!(py, "version"), version)
}

/// The largest sparse index `Run::prefetch` asks for (every `lookup::STRIDE`-th value: a
/// reference of about 6 500 values per feature with 20 features): a larger one would push
/// the running model's own lines out of the cache.
const PREFETCHED_INDEX_BYTES: usize = 32 * 1024;

impl Run<'_> {
    /// The staged events not yet in the window.
    pub(crate) fn pending(&self) -> usize {
        self.staged.pending()
    }

    /// Its staged events and what it did, for `Objects::give_back` (None if it did not go).
    pub(crate) fn finish(&mut self) -> (&Staged, Option<Outcome>) {
        let outcome = self.outcome.take();
        (&*self.staged, outcome)
    }

    /// Prefetches what this run reads first: the window row it writes first
    /// (`Buffers::prefetch_row`) and its reference's sparse index, which each look-up
    /// searches first.
    pub(crate) fn prefetch(&self) {
        if self.pending() == 0 {
            return;
        }
        self.buffers.prefetch_row(self.progress.pos.head);
        if let Some((_, index)) = &self.look.columns {
            let all = index.all();
            if std::mem::size_of_val(all) <= PREFETCHED_INDEX_BYTES {
                prefetch::prefetch_span(all);
            }
        }
        if let Some(c) = &self.charts {
            c.prefetch();
        }
    }

    /// The staged events not yet in the window, up to the next stop (`Outcome`).
    pub(crate) fn go(&mut self) {
        let mut errors = Vec::new();
        let mut changed = false;
        let (due, failed) = match self.advance(&mut errors, &mut changed) {
            Ok(due) => (due, None),
            Err(e) => (None, Some(e)),
        };
        self.outcome = Some(Outcome {
            end: self.progress,
            due,
            errors,
            changed,
            failed,
        });
    }

    /// One stretch of events: to the next due check, or to the model's last staged event
    /// (a stop too when the charts changed state on the way). `errors` gets the stretch's
    /// finite errors unless a native ADWIN takes them (`cut`: it cut its window).
    fn advance(
        &mut self,
        errors: &mut Vec<f64>,
        cut: &mut bool,
    ) -> Result<Option<Stop>, LookupError> {
        let p = &mut self.progress;
        let staged = &mut *self.staged;
        let (look, buffers, width) = (&self.look, &mut self.buffers, self.width);
        if !p.fresh {
            buffers.recount(look, p.pos.count);
        }
        let columns = &staged.columns;
        let n = columns.len();
        if staged.done >= n {
            return Ok(None);
        }
        let take = (n - staged.done).min((p.every - p.since % p.every) as usize);
        let rows = staged.done * width..(staged.done + take) * width;
        let mut keys = Vec::new();
        ring::block_keys(look, &columns.features[rows.clone()], width, &mut keys)?;
        let mut projected = Vec::new();
        if let Some(c) = self.charts.as_mut() {
            c.projected_counts(&columns.features[rows], width, &mut projected);
        }
        let mut changed = false;
        for (i, r) in (staged.done..staged.done + take).enumerate() {
            let event = Event {
                features: &columns.features[r * width..(r + 1) * width],
                keys: keys.get(i * width..(i + 1) * width).unwrap_or(&[]),
                prediction: columns.prediction[r],
                actual: columns.actual[r],
                latency_ms: columns.latency_ms[r],
                timestamp: columns.timestamp[r],
            };
            buffers.push(look, &mut p.pos, &event);
            if let Some(c) = self.charts.as_mut() {
                let row = (p.pos.head + buffers.size - 1) % buffers.size;
                let number = p.seen + i as u64 + 1;
                let counts = |j| buffers.counts_at(look.layout, j, row);
                let position = columns.positions[r];
                let raw = projected.get(i).copied().flatten();
                if c.step(number, event.timestamp, position, counts, raw) {
                    if let Some(t) = c.pending.last_mut() {
                        t.version = columns.version_at(r).map(str::to_owned);
                    }
                    changed = true;
                }
            }
            let error = (event.prediction - event.actual).abs();
            if error.is_finite() {
                errors.push(error);
            }
        }
        if let Some(adwin) = self.adwin.as_mut() {
            *cut = !errors.is_empty() && adwin.update_many(errors);
            errors.clear();
        }
        let last = columns.positions[staged.done + take - 1];
        staged.done += take;
        p.seen += take as u64;
        p.since = (p.since + take as u64) % p.every;
        Ok((p.since == 0 || changed).then_some((last, p.since == 0)))
    }
}
