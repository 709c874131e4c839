//! `WindowFleet`: the models whose windows the native core writes, one call per batch.
//!
//! The decoder (`decode_predictions(..., fleet=...)`) hands the fleet the columns of every
//! enrolled model it reads fast; `ingest` then appends each model's events to its window
//! (`ring.rs`), in first-seen order, counts them for the metrics and stops a model at its
//! next due check: the checks (Python) must see the window exactly as it stands at that
//! event. `resume` goes on from there. The Python objects stay the state's one home: the
//! window's arrays are written in place, and its head and count, the model's event count,
//! cadence, version and partition are read at the start and written back at each stop, so
//! a batch the Python path takes for a model (a record the fast path cannot read) finds them
//! as it always did.

use crate::charts::SequentialCharts;
use crate::decode;
use crate::ks::Layout;
use crate::lookup;
use crate::ring::{self, Buffers, Event, KeysMut, Lookups, Position};
use crate::{PyAdwin, ReferenceColumns};
use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadwriteArray1, PyReadwriteArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use std::collections::HashMap;

/// A window's KS key array, as enrolled.
enum KeyArray {
    Absent,
    Wide(Py<PyArray2<i64>>),
    Narrow(Py<PyArray2<i32>>),
}

/// An enrolled model: its Python objects, its window's arrays, what its values are looked
/// up in, and the feature names the decoder reads.
struct Enrolled {
    name: Py<PyString>,
    model: Py<PyAny>,
    window: Py<PyAny>,
    features: Py<PyArray2<f64>>,
    scalars: Py<PyArray2<f64>>,
    keys: KeyArray,
    prediction_bin: Py<PyArray1<i16>>,
    feature_bin: Py<PyArray2<i16>>,
    tallies: Py<PyArray2<i64>>,
    reference: Option<Py<ReferenceColumns>>,
    /// the reference's column offsets and its sparse index's, checked once at enrolment
    offsets: (Vec<usize>, Vec<usize>),
    sizes: Vec<i64>,
    layout: Layout,
    prediction_edges: Option<Vec<f64>>,
    feature_edges: Vec<Vec<f64>>,
    /// the feature names' look-up, for the decoder
    schema: decode::Schema,
    size: usize,
    width: usize,
    /// the model's sequential charts, fed each event's keys as it enters
    charts: Option<Py<SequentialCharts>>,
}

/// Where `advance` stopped a model: the batch position of the event, and whether its
/// checks are due there (else its charts changed state in the run that ended there).
type Stop = (i64, bool);

/// A model's fast events of the batch being ingested, and how many are in its window.
pub(crate) struct Staged {
    slot: usize,
    positions: Vec<i64>,
    features: Vec<f64>,
    prediction: Vec<f64>,
    actual: Vec<f64>,
    latency_ms: Vec<f64>,
    timestamp: Vec<f64>,
    versions: Vec<Option<String>>,
    done: usize,
    counted: bool,
    /// stopped at a due check (possibly its last event): `resume` goes on
    paused: bool,
}

/// The models whose windows the native core writes (see the module docstring). A model is
/// found by name once per batch (`slot_of`); the rest of the batch addresses it by its slot.
#[pyclass(module = "stream_monitor._native")]
pub struct WindowFleet {
    slots: Vec<Option<Enrolled>>,
    by_name: HashMap<String, usize>,
    free: Vec<usize>,
    staged: Vec<Staged>,
    latency_bounds: Vec<f64>,
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
        self.slots[slot].as_ref().map(|e| &e.schema)
    }

    fn entry(&self, slot: usize) -> PyResult<&Enrolled> {
        self.slots
            .get(slot)
            .and_then(Option::as_ref)
            .ok_or_else(|| PyKeyError::new_err(format!("slot {slot} holds no enrolled model")))
    }

    pub(crate) fn clear_staged(&mut self) {
        self.staged.clear();
    }

    /// Keeps a fast model's columns for `ingest` (`slot` holds an enrolled model).
    pub(crate) fn stage(&mut self, slot: usize, columns: decode::Columns<'_>) {
        self.staged.push(Staged {
            slot,
            positions: columns.positions,
            features: columns.features,
            prediction: columns.prediction,
            actual: columns.actual,
            latency_ms: columns.latency_ms,
            timestamp: columns.timestamp,
            versions: columns
                .versions
                .into_iter()
                .map(|v| v.map(|s| s.into_owned()))
                .collect(),
            done: 0,
            counted: false,
            paused: false,
        });
    }

    fn staged_index(&self, name: &str) -> Option<usize> {
        let slot = self.slot_of(name)?;
        self.staged.iter().position(|s| s.slot == slot)
    }

    /// Appends a staged model's events until its next due check, or the end of a run in
    /// which its charts changed state (returns where it stopped), or its last event (returns
    /// None, after booking its window).
    fn advance(
        &mut self,
        py: Python<'_>,
        at: usize,
        windows: &Bound<'_, PyDict>,
    ) -> PyResult<Option<Stop>> {
        let staged = &mut self.staged[at];
        let entry = self.slots[staged.slot].as_ref().ok_or_else(|| {
            PyKeyError::new_err(format!("slot {} holds no enrolled model", staged.slot))
        })?;
        let model = entry.model.bind(py);
        let window = entry.window.bind(py);
        if !model.getattr(intern!(py, "window"))?.is(window) {
            return Err(PyRuntimeError::new_err(format!(
                "model {}: its window was replaced without enrolling the new one",
                entry.name.bind(py)
            )));
        }
        let mut pos = Position {
            head: window.getattr(intern!(py, "_head"))?.extract()?,
            count: window.getattr(intern!(py, "count"))?.extract()?,
        };
        let fresh: bool = window.getattr(intern!(py, "_fresh"))?.extract()?;
        let mut seen: u64 = model.getattr(intern!(py, "events_seen"))?.extract()?;
        let mut since: u64 = model.getattr(intern!(py, "since_check"))?.extract()?;
        let every: u64 = model
            .getattr(intern!(py, "plan"))?
            .getattr(intern!(py, "check_every"))?
            .extract()?;
        if every == 0 {
            return Err(PyValueError::new_err("check_every must be at least 1"));
        }
        let n = staged.positions.len();
        let width = entry.width;
        let mut due = None;
        {
            let mut features = entry.features.bind(py).try_readwrite()?;
            let mut scalars = entry.scalars.bind(py).try_readwrite()?;
            let mut prediction_bin = entry.prediction_bin.bind(py).try_readwrite()?;
            let mut feature_bin = entry.feature_bin.bind(py).try_readwrite()?;
            let mut tallies = entry.tallies.bind(py).try_readwrite()?;
            let mut wide: Option<PyReadwriteArray2<'_, i64>> = None;
            let mut narrow: Option<PyReadwriteArray2<'_, i32>> = None;
            match &entry.keys {
                KeyArray::Absent => {}
                KeyArray::Wide(k) => wide = Some(k.bind(py).try_readwrite()?),
                KeyArray::Narrow(k) => narrow = Some(k.bind(py).try_readwrite()?),
            }
            let keys = match (&mut wide, &mut narrow) {
                (Some(k), _) => KeysMut::Wide(slice_mut2(k, "ks_key")?),
                (_, Some(k)) => KeysMut::Narrow(slice_mut2(k, "ks_key")?),
                _ => KeysMut::Absent,
            };
            let flat = entry
                .reference
                .as_ref()
                .map(|r| r.get().flat.bind(py).readonly());
            let columns = match (&entry.reference, &flat) {
                (Some(r), Some(flat)) => {
                    let (columns, index) = &entry.offsets;
                    let columns = lookup::Columns::with_offsets(flat.as_slice()?, columns)
                        .map_err(crate::lookup_error)?;
                    let index = lookup::Columns::with_offsets(&r.get().index, index)
                        .map_err(crate::lookup_error)?;
                    Some((columns, index))
                }
                _ => None,
            };
            let look = Lookups {
                columns,
                sizes: &entry.sizes,
                layout: entry.layout,
                prediction_edges: entry.prediction_edges.as_deref(),
                feature_edges: &entry.feature_edges,
            };
            let mut buffers = Buffers {
                size: entry.size,
                features: slice_mut2(&mut features, "features")?,
                scalars: slice_mut2(&mut scalars, "scalars")?,
                keys,
                prediction_bin: slice_mut1(&mut prediction_bin, "prediction_bin")?,
                feature_bin: slice_mut2(&mut feature_bin, "numeric_bin")?,
                tallies: slice_mut2(&mut tallies, "tallies")?,
            };
            if !fresh {
                buffers.recount(&look, pos.count);
            }
            let charts = entry.charts.as_ref().map(|c| c.bind(py));
            let mut charts = match charts {
                Some(c) if look.columns.is_some() => Some(c.try_borrow_mut()?),
                _ => None,
            };
            let mut errors = Vec::new();
            let mut keys = Vec::new();
            let mut projected = Vec::new();
            while staged.done < n {
                let take = (n - staged.done).min((every - since % every) as usize);
                errors.clear();
                let rows = staged.done * width..(staged.done + take) * width;
                ring::block_keys(&look, &staged.features[rows.clone()], width, &mut keys)
                    .map_err(crate::lookup_error)?;
                if let Some(c) = charts.as_mut() {
                    c.inner
                        .projected_counts(&staged.features[rows], width, &mut projected);
                }
                let mut changed = false;
                for r in staged.done..staged.done + take {
                    let i = r - staged.done;
                    let event = Event {
                        features: &staged.features[r * width..(r + 1) * width],
                        keys: keys.get(i * width..(i + 1) * width).unwrap_or(&[]),
                        prediction: staged.prediction[r],
                        actual: staged.actual[r],
                        latency_ms: staged.latency_ms[r],
                        timestamp: staged.timestamp[r],
                    };
                    buffers.push(&look, &mut pos, &event);
                    if let Some(c) = charts.as_mut() {
                        let row = (pos.head + entry.size - 1) % entry.size;
                        let number = seen + (r - staged.done) as u64 + 1;
                        let counts = |j| buffers.counts_at(look.layout, j, row);
                        let position = staged.positions[r];
                        let raw = projected.get(i).copied().flatten();
                        if c.inner.step(number, event.timestamp, position, counts, raw) {
                            if let Some(t) = c.inner.pending.last_mut() {
                                t.version.clone_from(&staged.versions[r]);
                            }
                            changed = true;
                        }
                    }
                    let error = (event.prediction - event.actual).abs();
                    if error.is_finite() {
                        errors.push(error);
                    }
                }
                if !errors.is_empty() {
                    watch_errors(py, model, &errors)?;
                }
                staged.done += take;
                seen += take as u64;
                since = (since + take as u64) % every;
                if since == 0 || changed {
                    due = Some((staged.positions[staged.done - 1], since == 0));
                    break;
                }
            }
        }
        if !fresh {
            window.setattr(intern!(py, "_fresh"), true)?;
        }
        window.setattr(intern!(py, "_head"), pos.head)?;
        window.setattr(intern!(py, "count"), pos.count)?;
        model.setattr(intern!(py, "events_seen"), seen)?;
        model.setattr(intern!(py, "since_check"), since)?;
        let last = staged.done - 1;
        if let Some(v) = &staged.versions[last] {
            set_version(model, v)?;
        }
        if due.is_none() {
            let has_reference = entry.reference.is_some();
            windows.set_item(entry.name.bind(py), (pos.count, has_reference))?;
        }
        Ok(due)
    }
}

/// The errors of a run of events into the model's concept-drift detector, in order, as
/// `ErrorStream.watch` feeds them: natively when its detector is the native ADWIN, through
/// `watch` itself otherwise (its first errors, which make the detector).
fn watch_errors(py: Python<'_>, model: &Bound<'_, PyAny>, errors: &[f64]) -> PyResult<()> {
    let stream = model.getattr(intern!(py, "errors"))?;
    let detector = stream.getattr(intern!(py, "detector"))?;
    if let Ok(adwin) = detector.cast::<PyAdwin>() {
        if adwin.borrow_mut().inner.update_many(errors) {
            stream.setattr(intern!(py, "changed"), true)?;
        }
        return Ok(());
    }
    stream.call_method1("watch", (errors.to_vec().into_pyarray(py),))?;
    Ok(())
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

fn slice_mut1<'a, T: numpy::Element>(
    a: &'a mut PyReadwriteArray1<'_, T>,
    field: &str,
) -> PyResult<&'a mut [T]> {
    a.as_slice_mut()
        .map_err(|_| PyValueError::new_err(format!("{field}: not contiguous")))
}

fn slice_mut2<'a, T: numpy::Element>(
    a: &'a mut PyReadwriteArray2<'_, T>,
    field: &str,
) -> PyResult<&'a mut [T]> {
    a.as_slice_mut()
        .map_err(|_| PyValueError::new_err(format!("{field}: not contiguous")))
}

#[pymethods]
impl WindowFleet {
    /// `latency_bounds`: the latency histogram's upper bounds in seconds, ascending.
    #[new]
    fn new(latency_bounds: Vec<f64>) -> PyResult<Self> {
        if !latency_bounds.windows(2).all(|w| w[0] < w[1]) {
            return Err(PyValueError::new_err(
                "latency_bounds: expected ascending bounds",
            ));
        }
        Ok(WindowFleet {
            slots: Vec::new(),
            by_name: HashMap::new(),
            free: Vec::new(),
            staged: Vec::new(),
            latency_bounds,
        })
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
                format!("(5, {size}) in C order"),
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
            schema: decode::Schema::new(schema.iter().map(|n| Some(n.as_str()))),
            size,
            width,
            charts,
        };
        let key = name.to_str()?.to_string();
        self.drop(&key); // enrolled again: a fresh slot, nothing staged for the old one
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
            self.slots[slot] = None;
            self.free.push(slot);
            self.staged.retain(|s| s.slot != slot);
        }
    }

    /// Every model out of the fleet.
    fn clear(&mut self) {
        self.slots.clear();
        self.by_name.clear();
        self.free.clear();
        self.staged.clear();
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
            Some(i) => self.staged.remove(i).positions,
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
        let mut dues = Vec::new();
        let mut seconds = Vec::new();
        for at in 0..self.staged.len() {
            let (name, model, last) = {
                let s = &self.staged[at];
                let entry = self.entry(s.slot)?;
                if s.counted || s.positions.is_empty() {
                    continue;
                }
                (
                    entry.name.clone_ref(py),
                    entry.model.clone_ref(py),
                    *s.positions.last().unwrap_or(&0) as usize,
                )
            };
            let s = &mut self.staged[at];
            s.counted = true;
            let bound = name.bind(py);
            ok_counts.set_item(bound, s.positions.len())?;
            let model = model.bind(py);
            let partition = PyTuple::new(py, [topics.get_item(last)?, partitions.get_item(last)?])?;
            model.setattr(intern!(py, "partition"), partition)?;
            seconds.clear();
            seconds.extend(
                s.latency_ms
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
                names.append(bound)?;
            }
            let first = s.positions[0];
            if let Some((due, check)) = self.advance(py, at, windows)? {
                dues.push((first, name, due, check));
                self.staged[at].paused = true;
            }
        }
        self.staged.retain(|s| s.paused);
        let rows = sums.len();
        let counts = Array2::from_shape_vec((rows, buckets), counts)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok((
            dues,
            (names, counts.into_pyarray(py), sums.into_pyarray(py)),
        ))
    }

    /// A model stopped by `ingest` goes on: its events until its next stop (that event's
    /// batch position, and whether checks are due there) or its last (None;
    /// `windows[model]` set as by `ingest`).
    fn resume(
        &mut self,
        py: Python<'_>,
        name: &str,
        windows: &Bound<'_, PyDict>,
    ) -> PyResult<Option<Stop>> {
        let Some(at) = self.staged_index(name) else {
            return Err(PyKeyError::new_err(format!(
                "model {name:?} has no events waiting"
            )));
        };
        let due = self.advance(py, at, windows)?;
        if due.is_none() {
            self.staged.remove(at);
        }
        Ok(due)
    }
}
