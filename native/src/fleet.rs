//! `WindowFleet`: the models whose windows the native core writes, one call per batch.
//!
//! The decoder (`decode_predictions(..., fleet=...)`) hands the fleet the columns of every
//! enrolled model it reads fast; `ingest` then appends each model's events to its window
//! (`ring.rs`), in first-seen order, counts them for the metrics and stops a model at its
//! next due check: the checks (Python) must see the window exactly as it stands at that
//! event. `resume_many` goes on from there. The models of a batch run side by side on several
//! threads when they have enough events between them (`runs.rs`; `advance.rs`: each run
//! touches its own model alone, so the result is the same on any number of threads). The
//! Python objects stay the state's one home: the window's arrays are written in place,
//! and its head and count, the model's event count, cadence, version and partition are
//! read at the start and written back at each stop, so a batch the Python path takes for
//! a model (a record the fast path cannot read) finds them as it always did.

use crate::charts::SequentialCharts;
use crate::columns::Columns;
use crate::decode;
use crate::ks::Layout;
use crate::lookup;
use crate::prefetch;
use crate::ring;
use crate::runs;
use crate::spans::{Access, Span, Spans};
use crate::ReferenceColumns;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A window's KS key array, as enrolled.
pub(crate) enum KeyArray {
    Absent,
    Wide(Py<PyArray2<i64>>),
    Narrow(Py<PyArray2<i32>>),
}

/// An enrolled model: its Python objects, its window's arrays, what its values are looked
/// up in, and the feature names the decoder reads.
pub(crate) struct Enrolled {
    pub(crate) name: Py<PyString>,
    pub(crate) model: Py<PyAny>,
    pub(crate) window: Py<PyAny>,
    pub(crate) features: Py<PyArray2<f64>>,
    pub(crate) scalars: Py<PyArray2<f64>>,
    pub(crate) keys: KeyArray,
    pub(crate) prediction_bin: Py<PyArray1<i16>>,
    pub(crate) feature_bin: Py<PyArray2<i16>>,
    pub(crate) tallies: Py<PyArray2<i64>>,
    pub(crate) reference: Option<Py<ReferenceColumns>>,
    /// the reference's column offsets and its sparse index's, checked once at enrolment
    pub(crate) offsets: (Vec<usize>, Vec<usize>),
    pub(crate) sizes: Vec<i64>,
    pub(crate) layout: Layout,
    pub(crate) prediction_edges: Option<Vec<f64>>,
    pub(crate) feature_edges: Vec<Vec<f64>>,
    /// the feature names' look-up, for the decoder
    pub(crate) schema: Arc<decode::Schema>,
    pub(crate) size: usize,
    pub(crate) width: usize,
    /// the model's sequential charts, fed each event's keys as it enters
    pub(crate) charts: Option<Py<SequentialCharts>>,
    /// the memory of its arrays, held in the fleet's `Spans` while it is enrolled
    pub(crate) spans: ArraySpans,
    /// where the objects `Hold::take` reaches through the model were at its last run
    /// (`ReachedObjects`), for `prefetch_objects` alone
    pub(crate) reached: ReachedObjects,
}

/// The addresses of the Python objects a model's run reaches through attributes (its
/// check plan, its error stream and that stream's detector) as `Hold::take` last found
/// them. Only prefetched, never read: an address that is stale (the object replaced or
/// freed since) costs a wasted hint, nothing else.
#[derive(Default)]
pub(crate) struct ReachedObjects {
    pub(crate) plan: AtomicUsize,
    pub(crate) errors: AtomicUsize,
    pub(crate) detector: AtomicUsize,
}

impl ReachedObjects {
    pub(crate) fn remember(&self, plan: usize, errors: usize, detector: usize) {
        self.plan.store(plan, Ordering::Relaxed);
        self.errors.store(errors, Ordering::Relaxed);
        self.detector.store(detector, Ordering::Relaxed);
    }

    fn addresses(&self) -> [usize; 3] {
        [&self.plan, &self.errors, &self.detector].map(|a| a.load(Ordering::Relaxed))
    }
}

impl Enrolled {
    /// Prefetches the model's name and its Python object, which `ingest` reads and writes
    /// first.
    fn prefetch_model(&self) {
        prefetch::prefetch_bytes(self.name.as_ptr().cast(), HEADER_BYTES);
        prefetch::prefetch_bytes(self.model.as_ptr().cast(), OBJECT_BYTES);
    }

    /// Prefetches the Python objects `Hold::take` reads first: the model, its window, its
    /// arrays' headers, its charts, and the objects it reached through the model at its
    /// last run. With thousands of models none of them is in the cache when its model's
    /// turn comes (`runs::take_run_give` asks `AHEAD` models before).
    pub(crate) fn prefetch_objects(&self) {
        for address in self.reached.addresses() {
            if address != 0 {
                prefetch::prefetch_bytes(address as *const u8, OBJECT_BYTES);
            }
        }
        let keys = match &self.keys {
            KeyArray::Absent => None,
            KeyArray::Wide(k) => Some(k.as_ptr()),
            KeyArray::Narrow(k) => Some(k.as_ptr()),
        };
        let arrays = [
            Some(self.features.as_ptr()),
            Some(self.scalars.as_ptr()),
            keys,
            Some(self.prediction_bin.as_ptr()),
            Some(self.feature_bin.as_ptr()),
            Some(self.tallies.as_ptr()),
            self.charts.as_ref().map(Py::as_ptr),
        ];
        for object in [self.model.as_ptr(), self.window.as_ptr()] {
            prefetch::prefetch_bytes(object.cast(), OBJECT_BYTES);
        }
        for header in arrays.into_iter().flatten() {
            prefetch::prefetch_bytes(header.cast(), HEADER_BYTES);
        }
    }
}

/// The bytes of a model's and a window's Python objects prefetched: the fields `take`
/// reads (a slotted object's fields follow its header).
const OBJECT_BYTES: usize = 256;

/// The bytes of an array's (or a native object's) header prefetched.
const HEADER_BYTES: usize = 128;

/// The memory of an enrolled model's arrays (`spans.rs`): what each batch checks its
/// arrays still span before it writes them through plain slices.
pub(crate) struct ArraySpans {
    pub(crate) features: Span,
    pub(crate) scalars: Span,
    pub(crate) keys: Span,
    pub(crate) prediction_bin: Span,
    pub(crate) feature_bin: Span,
    pub(crate) tallies: Span,
    /// the reference's values, only read
    pub(crate) flat: Span,
}

impl ArraySpans {
    /// Each span with the field it is of and how the fleet uses it.
    fn listed(&self) -> [(&'static str, Span, Access); 7] {
        [
            ("features", self.features, Access::Write),
            ("scalars", self.scalars, Access::Write),
            ("ks_key", self.keys, Access::Write),
            ("prediction_bin", self.prediction_bin, Access::Write),
            ("numeric_bin", self.feature_bin, Access::Write),
            ("tallies", self.tallies, Access::Write),
            ("reference", self.flat, Access::Read),
        ]
    }
}

/// The span of a contiguous array's elements (an error names `field` when it is not).
fn span_of<T: numpy::Element, D: numpy::ndarray::Dimension>(
    array: &Bound<'_, numpy::PyArray<T, D>>,
    field: &str,
) -> PyResult<Span> {
    let view = array.try_readonly()?;
    let slice = view
        .as_slice()
        .map_err(|_| PyValueError::new_err(format!("{field}: expected a contiguous array")))?;
    Ok(Span::of(slice))
}

/// Holds every span of `spans` in `held`, or none of them: the error names the field
/// whose memory overlaps an array the fleet already reads or writes.
fn hold_spans(held: &mut Spans, spans: &ArraySpans) -> PyResult<()> {
    let listed = spans.listed();
    for (i, &(field, span, access)) in listed.iter().enumerate() {
        if let Err(e) = held.add(span, access) {
            for &(_, taken, _) in &listed[..i] {
                held.remove(taken);
            }
            return Err(PyValueError::new_err(format!("{field}: {e}")));
        }
    }
    Ok(())
}

/// Where `advance` stopped a model: the batch position of the event, and whether its
/// checks are due there (else its charts changed state in the run that ended there).
pub(crate) type Stop = (i64, bool);

/// A model's fast events of the batch being ingested, and how many are in its window.
pub(crate) struct Staged {
    pub(crate) slot: usize,
    pub(crate) columns: Columns,
    pub(crate) done: usize,
    pub(crate) counted: bool,
    /// stopped at a due check (possibly its last event): `resume_many` goes on
    pub(crate) paused: bool,
}

impl Staged {
    /// The staged events not yet in the window.
    pub(crate) fn pending(&self) -> usize {
        self.columns.len().saturating_sub(self.done)
    }
}

/// The models whose windows the native core writes (see the module docstring). A model is
/// found by name once per batch (`slot_of`); the rest of the batch addresses it by its slot.
#[pyclass(module = "stream_monitor._native")]
pub struct WindowFleet {
    slots: Vec<Option<Enrolled>>,
    by_name: HashMap<String, usize>,
    free: Vec<usize>,
    staged: Vec<Staged>,
    /// the columns of models run in earlier batches, for the decoder to refill
    /// (`columns.rs`): a batch's models then cost it no allocation
    spare: Vec<Columns>,
    /// the enrolled models' schemas, one per list of feature names: a fleet's models mostly
    /// share a few, and each costs a map and its names (1.5 KB for 20 features)
    schemas: HashMap<Vec<String>, Arc<decode::Schema>>,
    latency_bounds: Vec<f64>,
    /// the most threads a batch's models run on (and its records are read on)
    pub(crate) threads: usize,
    /// how many runs of models went side by side on several threads
    side_by_side: u64,
    /// the memory of every enrolled model's arrays (`spans.rs`)
    spans: Spans,
}

/// The model enrolled in `slot`.
fn enrolled(slots: &[Option<Enrolled>], slot: usize) -> PyResult<&Enrolled> {
    slots
        .get(slot)
        .and_then(Option::as_ref)
        .ok_or_else(|| PyKeyError::new_err(format!("slot {slot} holds no enrolled model")))
}

fn type_error(field: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "{field}: expected {expected}, got {}",
        crate::describe(obj)
    ))
}

fn array2<'py, T: numpy::Element>(
    obj: &Bound<'py, PyAny>,
    field: &str,
    what: &str,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    obj.cast::<PyArray2<T>>()
        .cloned()
        .map_err(|_| type_error(field, what, obj))
}

fn shape_error(field: &str, got: &[usize], expected: String) -> PyErr {
    PyValueError::new_err(format!("{field}: shape {got:?}, expected {expected}"))
}

impl WindowFleet {
    /// The slot of an enrolled model.
    pub(crate) fn slot_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The schema of the model in `slot` (enrolled), for the decoder.
    pub(crate) fn schema_at(&self, slot: usize) -> Option<&decode::Schema> {
        self.slots[slot].as_ref().map(|e| &*e.schema)
    }

    /// The staged models' columns, spare from now on.
    pub(crate) fn clear_staged(&mut self) {
        self.spare.extend(self.staged.drain(..).map(|s| s.columns));
    }

    /// The spare columns, for the decoder to refill (`decode::columns`); what it leaves
    /// comes back with `give_spare`.
    pub(crate) fn take_spare(&mut self) -> Vec<Columns> {
        std::mem::take(&mut self.spare)
    }

    pub(crate) fn give_spare(&mut self, spare: Vec<Columns>) {
        self.spare.extend(spare);
    }

    /// Keeps a fast model's columns for `ingest` (`slot` holds an enrolled model).
    pub(crate) fn stage(&mut self, slot: usize, columns: Columns) {
        self.staged.push(Staged {
            slot,
            columns,
            done: 0,
            counted: false,
            paused: false,
        });
    }

    /// Staged models whose events are all in their windows: their columns spare.
    fn unstage_finished(&mut self) {
        let finished = self.staged.extract_if(.., |s| !s.paused);
        self.spare.extend(finished.map(|s| s.columns));
    }

    fn staged_index(&self, name: &str) -> Option<usize> {
        let slot = self.slot_of(name)?;
        self.staged.iter().position(|s| s.slot == slot)
    }

    /// Runs the staged models at `ats` (ascending) each to its next stop (`advance.rs`),
    /// taken, run and given back in order, on several threads when there is enough to
    /// share (`runs.rs`). Each model's stop, in order.
    fn run_models(
        &mut self,
        py: Python<'_>,
        ats: &[usize],
        windows: &Bound<'_, PyDict>,
    ) -> PyResult<Vec<Option<Stop>>> {
        let WindowFleet {
            slots,
            staged,
            threads,
            side_by_side,
            ..
        } = self;
        // each model at most once: its run writes its arrays through slices no other run
        // may hold (`advance::Arrays::run`)
        let slot_of: Vec<usize> = ats.iter().map(|&at| staged[at].slot).collect();
        let mut running = slot_of.clone();
        running.sort_unstable();
        if running.windows(2).any(|w| w[0] == w[1]) {
            return Err(PyRuntimeError::new_err(
                "a model was staged twice in one batch",
            ));
        }
        let events: usize = ats.iter().map(|&at| staged[at].pending()).sum();
        let threads = runs::threads_for(*threads, ats.len(), events);
        if threads > 1 {
            *side_by_side += 1;
        }
        let mut chosen: Vec<&mut Staged> = Vec::with_capacity(ats.len());
        let mut wanted = ats.iter().peekable();
        for (i, s) in staged.iter_mut().enumerate() {
            if wanted.next_if_eq(&&i).is_some() {
                chosen.push(s);
            }
        }
        let batch = runs::Batch {
            slots,
            slot_of,
            staged: chosen,
            threads,
        };
        runs::take_run_give(py, batch, windows)
    }
}

/// The most threads a batch's models run on by default.
const MAX_THREADS: usize = 8;

/// One thread per core, at most `MAX_THREADS`.
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS)
}

#[pymethods]
impl WindowFleet {
    /// `latency_bounds`: the latency histogram's upper bounds in seconds, ascending;
    /// `threads`: the most threads a batch's models run on (None: one per core, at most
    /// 8; 1: all on the caller's).
    #[new]
    #[pyo3(signature = (latency_bounds, threads = None))]
    fn new(latency_bounds: Vec<f64>, threads: Option<usize>) -> PyResult<Self> {
        if !latency_bounds.windows(2).all(|w| w[0] < w[1]) {
            return Err(PyValueError::new_err(
                "latency_bounds: expected ascending bounds",
            ));
        }
        if threads == Some(0) {
            return Err(PyValueError::new_err("threads: expected at least 1"));
        }
        Ok(WindowFleet {
            slots: Vec::new(),
            by_name: HashMap::new(),
            free: Vec::new(),
            staged: Vec::new(),
            spare: Vec::new(),
            schemas: HashMap::new(),
            latency_bounds,
            threads: threads.unwrap_or_else(default_threads),
            side_by_side: 0,
            spans: Spans::default(),
        })
    }

    /// The most threads a batch's models run on.
    #[getter]
    fn threads(&self) -> usize {
        self.threads
    }

    /// How many times a batch's models ran side by side on several threads.
    #[getter]
    fn side_by_side(&self) -> u64 {
        self.side_by_side
    }

    /// How many distinct feature-name lists (schemas) the enrolled models hold among them.
    #[getter]
    fn schemas(&self) -> usize {
        self.schemas.len()
    }

    /// Enrolls a model: from now on the decoder reads its fast events into the fleet.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (name, model, window, schema, features, scalars, ks_key, prediction_bin,
        numeric_bin, tallies, reference, sizes, bits, prediction_edges, feature_edges,
        charts = None))]
    fn enroll(
        &mut self,
        py: Python<'_>,
        name: &Bound<'_, PyString>,
        model: &Bound<'_, PyAny>,
        window: &Bound<'_, PyAny>,
        schema: Vec<String>,
        features: &Bound<'_, PyAny>,
        scalars: &Bound<'_, PyAny>,
        ks_key: &Bound<'_, PyAny>,
        prediction_bin: &Bound<'_, PyAny>,
        numeric_bin: &Bound<'_, PyAny>,
        tallies: &Bound<'_, PyAny>,
        reference: Option<Py<ReferenceColumns>>,
        sizes: Vec<i64>,
        bits: u32,
        prediction_edges: Option<Vec<f64>>,
        feature_edges: Option<Vec<Vec<f64>>>,
        charts: Option<Py<SequentialCharts>>,
    ) -> PyResult<()> {
        let layout = Layout::new(bits).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let features = array2::<f64>(features, "features", "a 2-d float64 array")?;
        let (size, width) = (features.shape()[0], features.shape()[1]);
        if !features.is_c_contiguous() || size == 0 {
            return Err(shape_error(
                "features",
                features.shape(),
                "(size > 0, F) in C order".into(),
            ));
        }
        if width != schema.len() {
            return Err(PyValueError::new_err(format!(
                "schema: {} names for {width} feature columns",
                schema.len()
            )));
        }
        let scalars = array2::<f64>(scalars, "scalars", "a 2-d float64 array")?;
        if scalars.shape() != [ring::SCALARS, size] || !scalars.is_c_contiguous() {
            return Err(shape_error(
                "scalars",
                scalars.shape(),
                format!("({}, {size}) in C order", ring::SCALARS),
            ));
        }
        let with_reference = reference.is_some();
        let keys = if !with_reference {
            KeyArray::Absent
        } else if layout.wide() {
            let k = array2::<i64>(ks_key, "ks_key", "a 2-d int64 array (bits 32)")?;
            if k.shape() != [size, width] || !k.is_fortran_contiguous() {
                return Err(shape_error(
                    "ks_key",
                    k.shape(),
                    format!("({size}, {width}) in Fortran order"),
                ));
            }
            KeyArray::Wide(k.unbind())
        } else {
            let k = array2::<i32>(ks_key, "ks_key", "a 2-d int32 array (bits < 32)")?;
            if k.shape() != [size, width] || !k.is_fortran_contiguous() {
                return Err(shape_error(
                    "ks_key",
                    k.shape(),
                    format!("({size}, {width}) in Fortran order"),
                ));
            }
            KeyArray::Narrow(k.unbind())
        };
        let prediction_bin = prediction_bin
            .cast::<PyArray1<i16>>()
            .map_err(|_| type_error("prediction_bin", "a 1-d int16 array", prediction_bin))?;
        let expected = if with_reference { size } else { 0 };
        if prediction_bin.len() != expected {
            return Err(shape_error(
                "prediction_bin",
                prediction_bin.shape(),
                format!("({expected},)"),
            ));
        }
        let numeric_bin = array2::<i16>(numeric_bin, "numeric_bin", "a 2-d int16 array")?;
        let feature_edges = feature_edges.unwrap_or_default();
        let with_bins = !feature_edges.is_empty();
        let expected = if with_bins { [size, width] } else { [0, 0] };
        if numeric_bin.shape() != expected || !numeric_bin.is_c_contiguous() {
            return Err(shape_error(
                "numeric_bin",
                numeric_bin.shape(),
                format!("{expected:?} in C order"),
            ));
        }
        if with_bins && (!with_reference || feature_edges.len() != width) {
            return Err(PyValueError::new_err(format!(
                "feature_edges: {} features' edges for {width} features (and a reference)",
                feature_edges.len()
            )));
        }
        let bins = if with_bins {
            feature_edges[0].len() + 1
        } else {
            0
        };
        if feature_edges.iter().any(|e| e.len() + 1 != bins) {
            return Err(PyValueError::new_err(
                "feature_edges: every feature needs as many edges",
            ));
        }
        let tallies = array2::<i64>(tallies, "tallies", "a 2-d int64 array")?;
        if tallies.shape() != [ring::BINS + bins, width] || !tallies.is_c_contiguous() {
            return Err(shape_error(
                "tallies",
                tallies.shape(),
                format!("({}, {width}) in C order", ring::BINS + bins),
            ));
        }
        let mut offsets = (Vec::new(), Vec::new());
        if let Some(r) = &reference {
            let r = r.get();
            let f = r.starts.len().saturating_sub(1);
            if f != width || sizes.len() != width {
                return Err(PyValueError::new_err(format!(
                    "reference: {f} columns and {} sizes for {width} features",
                    sizes.len()
                )));
            }
            let flat = r.flat.bind(py).readonly();
            let columns = lookup::Columns::new(flat.as_slice()?, &r.starts, f)
                .map_err(crate::lookup_error)?;
            let index =
                lookup::Columns::new(&r.index, &r.index_starts, f).map_err(crate::lookup_error)?;
            offsets = (columns.offsets().to_vec(), index.offsets().to_vec());
        }
        let none = Span { start: 0, len: 0 };
        let spans = ArraySpans {
            features: span_of(&features, "features")?,
            scalars: span_of(&scalars, "scalars")?,
            keys: match &keys {
                KeyArray::Absent => none,
                KeyArray::Wide(k) => span_of(k.bind(py), "ks_key")?,
                KeyArray::Narrow(k) => span_of(k.bind(py), "ks_key")?,
            },
            prediction_bin: span_of(prediction_bin, "prediction_bin")?,
            feature_bin: span_of(&numeric_bin, "numeric_bin")?,
            tallies: span_of(&tallies, "tallies")?,
            flat: match &reference {
                Some(r) => span_of(r.get().flat.bind(py), "reference")?,
                None => none,
            },
        };
        let entry = Enrolled {
            name: name.clone().unbind(),
            model: model.clone().unbind(),
            window: window.clone().unbind(),
            features: features.unbind(),
            scalars: scalars.unbind(),
            keys,
            prediction_bin: prediction_bin.clone().unbind(),
            feature_bin: numeric_bin.unbind(),
            tallies: tallies.unbind(),
            reference,
            offsets,
            sizes,
            layout,
            prediction_edges,
            feature_edges,
            schema: Arc::clone(self.schemas.entry(schema).or_insert_with_key(|names| {
                Arc::new(decode::Schema::new(names.iter().map(|n| Some(n.as_str()))))
            })),
            size,
            width,
            charts,
            spans,
            reached: ReachedObjects::default(),
        };
        let key = name.to_str()?.to_string();
        self.drop(&key); // enrolled again: a fresh slot, nothing staged for the old one
        hold_spans(&mut self.spans, &entry.spans)?;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        };
        self.by_name.insert(key, slot);
        Ok(())
    }

    /// Takes a model out of the fleet (its Python objects keep their state).
    fn drop(&mut self, name: &str) {
        if let Some(slot) = self.by_name.remove(name) {
            if let Some(entry) = self.slots[slot].take() {
                for (_, span, _) in entry.spans.listed() {
                    self.spans.remove(span);
                }
            }
            self.free.push(slot);
            self.staged.retain(|s| s.slot != slot);
            self.schemas.retain(|_, s| Arc::strong_count(s) > 1); // in use by a model
        }
    }

    /// Every model out of the fleet.
    fn clear(&mut self) {
        self.slots.clear();
        self.by_name.clear();
        self.free.clear();
        self.staged.clear();
        self.spare.clear();
        self.schemas.clear();
        self.spans.clear();
    }

    fn __contains__(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    fn __len__(&self) -> usize {
        self.by_name.len()
    }

    /// Whether the last batch decoded holds fast events of `name` for `ingest`.
    fn staged(&self, name: &str) -> bool {
        self.staged_index(name).is_some()
    }

    /// A staged model's events taken back (the Python path reads them instead): their batch
    /// positions.
    fn unstage(&mut self, name: &str) -> Vec<i64> {
        match self.staged_index(name) {
            Some(i) => self.staged.remove(i).columns.positions,
            None => Vec::new(),
        }
    }

    /// The staged models' events into their windows, in first-seen order, each up to its
    /// next due check. Sets `ok_counts[model]` (events taken) and, for a model with no check
    /// left in the batch, `windows[model]` = (window fill, has a reference); `topics` and
    /// `partitions` (the batch's) give each model's partition. Returns the due checks as
    /// (first batch position of the model, model, batch position of the event, whether
    /// checks are due there: else its charts changed state in the run ending there), and
    /// the latency histogram of the batch: (models, counts (M, bounds + 1) int64, sums of
    /// seconds (M,) float64) over each model's finite latencies.
    #[allow(clippy::type_complexity)]
    fn ingest<'py>(
        &mut self,
        py: Python<'py>,
        topics: &Bound<'py, PyList>,
        partitions: &Bound<'py, PyList>,
        ok_counts: &Bound<'py, PyDict>,
        windows: &Bound<'py, PyDict>,
    ) -> PyResult<(
        Vec<(i64, Py<PyString>, i64, bool)>,
        (
            Bound<'py, PyList>,
            Bound<'py, PyArray2<i64>>,
            Bound<'py, PyArray1<f64>>,
        ),
    )> {
        let buckets = self.latency_bounds.len() + 1;
        let names = PyList::empty(py);
        let mut counts: Vec<i64> = Vec::new();
        let mut sums: Vec<f64> = Vec::new();
        let mut seconds = Vec::new();
        let mut ats = Vec::new();
        for at in 0..self.staged.len() {
            if let Some(next) = self.staged.get(at + runs::AHEAD) {
                enrolled(&self.slots, next.slot)?.prefetch_model();
            }
            let s = &mut self.staged[at];
            let entry = enrolled(&self.slots, s.slot)?;
            if s.counted || s.columns.is_empty() {
                continue;
            }
            s.counted = true;
            let name = entry.name.bind(py);
            ok_counts.set_item(name, s.columns.len())?;
            let last = *s.columns.positions.last().unwrap_or(&0) as usize;
            let partition = PyTuple::new(py, [topics.get_item(last)?, partitions.get_item(last)?])?;
            entry
                .model
                .bind(py)
                .setattr(intern!(py, "partition"), partition)?;
            seconds.clear();
            seconds.extend(
                s.columns
                    .latency_ms
                    .iter()
                    .filter(|l| l.is_finite())
                    .map(|l| l / 1000.0),
            );
            if !seconds.is_empty() {
                let row = counts.len();
                counts.resize(row + buckets, 0);
                for &x in &seconds {
                    counts[row + ring::latency_bucket(&self.latency_bounds, x)] += 1;
                }
                sums.push(ring::numpy_sum(&seconds));
                names.append(name)?;
            }
            ats.push(at);
        }
        let stops = self.run_models(py, &ats, windows)?;
        let mut dues = Vec::new();
        for (&at, stop) in ats.iter().zip(stops) {
            let s = &mut self.staged[at];
            if let Some((due, check)) = stop {
                s.paused = true;
                let name = self.slots[s.slot].as_ref().map(|e| e.name.clone_ref(py));
                if let Some(name) = name {
                    dues.push((s.columns.positions[0], name, due, check));
                }
            }
        }
        self.unstage_finished();
        let rows = sums.len();
        let counts = Array2::from_shape_vec((rows, buckets), counts)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok((
            dues,
            (names, counts.into_pyarray(py), sums.into_pyarray(py)),
        ))
    }

    /// Models stopped by `ingest` go on, named in first-seen order, their runs side by side
    /// (as `ingest`'s): each one's events until its next stop (that event's batch position,
    /// and whether checks are due there) or its last (None; `windows[model]` set as by
    /// `ingest`), in the same order. The checks of one model read its own state alone, so
    /// the engine may check every stopped model first and then resume them all
    /// (`engine/waves.py`).
    fn resume_many(
        &mut self,
        py: Python<'_>,
        names: Vec<String>,
        windows: &Bound<'_, PyDict>,
    ) -> PyResult<Vec<Option<Stop>>> {
        let mut ats = Vec::with_capacity(names.len());
        for name in &names {
            match self.staged_index(name) {
                Some(at) if self.staged[at].paused => ats.push(at),
                _ => {
                    return Err(PyKeyError::new_err(format!(
                        "model {name:?} has no events waiting"
                    )))
                }
            }
        }
        if ats.windows(2).any(|w| w[0] >= w[1]) {
            return Err(PyValueError::new_err(
                "names: expected stopped models in first-seen order, each once",
            ));
        }
        let stops = self.run_models(py, &ats, windows)?;
        for (&at, stop) in ats.iter().zip(&stops) {
            self.staged[at].paused = stop.is_some();
        }
        self.unstage_finished();
        Ok(stops)
    }
}
