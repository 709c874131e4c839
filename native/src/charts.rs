//! The Python face of `sequential`: `NormalScores` (a reference size's table of normal
//! scores, shared by every model and feature with that size) and `SequentialCharts` (one
//! model's charts). The Python path feeds the charts a block's KS keys (`update`); the fleet
//! feeds them each event's keys as it writes the window (`fleet.rs`). Either way the
//! transitions wait in the charts until the engine takes them (`take_pending`).

use crate::ks::Layout;
use crate::sequential::{self, ChartState, Charts, Design, Projection, Status, CHARTS};
use numpy::ndarray::{Array2, ArrayView2};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::sync::Arc;

/// The normal score of each rank 0..=m of a reference of m values (ascending, finite).
#[pyclass(module = "stream_monitor._native", frozen)]
pub struct NormalScores {
    pub(crate) table: Arc<[f64]>,
}

#[pymethods]
impl NormalScores {
    #[new]
    fn new(table: PyReadonlyArray1<'_, f64>) -> PyResult<Self> {
        let t = table.as_slice()?;
        if t.is_empty() || t.iter().any(|x| !x.is_finite()) || t.windows(2).any(|w| w[0] > w[1]) {
            return Err(PyValueError::new_err(
                "table: expected a non-empty ascending array of finite scores",
            ));
        }
        Ok(NormalScores { table: t.into() })
    }

    fn __len__(&self) -> usize {
        self.table.len()
    }
}

/// One model's sequential charts (see `sequential.rs`).
#[pyclass(module = "stream_monitor._native")]
pub struct SequentialCharts {
    pub(crate) inner: Charts,
}

fn design_error(e: sequential::DesignError) -> PyErr {
    PyValueError::new_err(e.0)
}

fn keys_view<'py, T: numpy::Element>(keys: &Bound<'py, PyAny>) -> Option<PyReadonlyArray2<'py, T>> {
    keys.extract::<PyReadonlyArray2<'py, T>>().ok()
}

impl SequentialCharts {
    #[allow(clippy::too_many_arguments)]
    fn feed<T: Copy + Into<i64>>(
        &mut self,
        keys: ArrayView2<'_, T>,
        layout: Layout,
        first_event: u64,
        timestamps: &[f64],
        positions: &[i64],
        features: Option<ArrayView2<'_, f64>>,
    ) -> PyResult<usize> {
        let (n, f) = keys.dim();
        if f != self.inner.counted_width() || timestamps.len() != n || positions.len() != n {
            return Err(PyValueError::new_err(format!(
                "keys {:?}, {} timestamps and {} positions for charts of {} features",
                keys.dim(),
                timestamps.len(),
                positions.len(),
                self.inner.counted_width()
            )));
        }
        let width = self.inner.projected_width();
        let rows = match (&features, width) {
            (_, 0) => None,
            (Some(x), w) if x.dim() == (n, w) => Some(x),
            (x, w) => {
                return Err(PyValueError::new_err(format!(
                    "features: {:?} for {n} events of {w} features (the multivariate chart)",
                    x.as_ref().map(|x| x.dim())
                )))
            }
        };
        let mut projected = Vec::new();
        match rows {
            Some(x) => {
                let flat: Vec<f64> = x.iter().copied().collect(); // (n, w), row after row
                self.inner.projected_counts(&flat, width, &mut projected);
            }
            None => projected.resize(n, None),
        }
        let missing = layout.missing_key();
        let bits = layout.bits();
        let mask = (1i64 << bits) - 1;
        let mut transitions = 0;
        for (i, row) in keys.outer_iter().enumerate() {
            let counts = |j: usize| {
                let key: i64 = row[j].into();
                (key != missing).then_some((key & mask, key >> bits))
            };
            if self.inner.step(
                first_event + i as u64,
                timestamps[i],
                positions[i],
                counts,
                projected[i],
            ) {
                transitions += 1;
            }
        }
        Ok(transitions)
    }
}

fn components_of(components: &PyReadonlyArray2<'_, f64>, width: usize) -> PyResult<Vec<f64>> {
    let c = components.as_array();
    if c.ncols() != width || c.nrows() == 0 {
        return Err(PyValueError::new_err(format!(
            "projection: components {:?} for {width} features",
            c.dim()
        )));
    }
    Ok(c.iter().copied().collect())
}

/// The squared reconstruction error of each (n, F) row of `rows` under `p`, NaN for a row
/// with a value that is not finite.
fn errors_of<'py>(
    py: Python<'py>,
    p: &Projection,
    rows: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let f = p.width();
    let rows = rows.as_array();
    if rows.ncols() != f {
        return Err(PyValueError::new_err(format!(
            "rows: {:?} for {f} features",
            rows.dim()
        )));
    }
    let (mut row, mut z) = (vec![0.0; f], vec![0.0; f]);
    let out: Vec<f64> = rows
        .outer_iter()
        .map(|r| {
            row.iter_mut().zip(r).for_each(|(a, b)| *a = *b);
            p.error(&row, &mut z).unwrap_or(f64::NAN)
        })
        .collect();
    Ok(out.into_pyarray(py))
}

/// The squared reconstruction error of each (n, F) row in the subspace of `components`
/// ((k, F), orthonormal rows) after standardising by `mean` and `scale`; NaN for a row
/// with a value that is not finite (`reference/projection.py`, for the held-out rows).
#[pyfunction]
pub fn projection_errors<'py>(
    py: Python<'py>,
    mean: PyReadonlyArray1<'py, f64>,
    scale: PyReadonlyArray1<'py, f64>,
    components: PyReadonlyArray2<'py, f64>,
    rows: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = projection_of(&mean, &scale, &components, Vec::new())?;
    errors_of(py, &p, rows)
}

/// A `Projection` from its arrays (copied), or the reason they do not make one.
fn projection_of(
    mean: &PyReadonlyArray1<'_, f64>,
    scale: &PyReadonlyArray1<'_, f64>,
    components: &PyReadonlyArray2<'_, f64>,
    sorted_errors: Vec<f64>,
) -> PyResult<Projection> {
    Projection::new(
        mean.as_array().to_vec(),
        scale.as_array().to_vec(),
        components_of(components, mean.len()?)?,
        sorted_errors,
    )
    .map_err(design_error)
}

/// The multivariate chart's subspace of one reference, with its held-out errors
/// (`sequential::Projection`): made once per reference and shared, not copied, by the
/// charts of every model judged against it. Its arrays live here alone; the getters give
/// copies.
#[pyclass(module = "stream_monitor._native", frozen)]
pub struct ResidualSubspace {
    pub(crate) inner: Arc<Projection>,
}

#[pymethods]
impl ResidualSubspace {
    /// `mean`, `scale` (F,), `components` (k, F) orthonormal rows, `sorted_errors` the
    /// held-out rows' errors, ascending.
    #[new]
    fn new(
        mean: PyReadonlyArray1<'_, f64>,
        scale: PyReadonlyArray1<'_, f64>,
        components: PyReadonlyArray2<'_, f64>,
        sorted_errors: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<Self> {
        let p = projection_of(
            &mean,
            &scale,
            &components,
            sorted_errors.as_array().to_vec(),
        )?;
        Ok(ResidualSubspace { inner: Arc::new(p) })
    }

    /// Each row's squared reconstruction error (NaN when a value is not finite).
    fn errors<'py>(
        &self,
        py: Python<'py>,
        rows: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        errors_of(py, &self.inner, rows)
    }

    #[getter]
    fn size(&self) -> usize {
        self.inner.size()
    }

    #[getter]
    fn mean<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.mean().to_vec().into_pyarray(py)
    }

    #[getter]
    fn scale<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.scale().to_vec().into_pyarray(py)
    }

    #[getter]
    fn components<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let f = self.inner.width();
        let c = self.inner.components();
        let a = Array2::from_shape_vec((c.len() / f, f), c.to_vec())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(a.into_pyarray(py))
    }

    #[getter]
    fn sorted_errors<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.sorted().to_vec().into_pyarray(py)
    }
}

fn float_list(values: &[f64]) -> Vec<Option<f64>> {
    values
        .iter()
        .map(|&x| if x.is_nan() { None } else { Some(x) })
        .collect()
}

fn item<'py>(state: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    state
        .get_item(key)?
        .ok_or_else(|| PyKeyError::new_err(format!("charts state: no {key:?}")))
}

#[pymethods]
impl SequentialCharts {
    /// `name`: the model (it seeds the tie-breaking); `thresholds`: per feature, those of its
    /// (up, down, scale) charts; `scores`: per feature, the table of its reference size.
    /// `projection` (a reference's `ResidualSubspace`) adds
    /// the multivariate chart as the last feature (its score table last in `scores`).
    #[new]
    #[pyo3(signature = (name, k, c, thresholds, scores, events_seen = 0, projection = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &str,
        k: f64,
        c: f64,
        thresholds: Vec<[f64; CHARTS]>,
        scores: Vec<Py<NormalScores>>,
        events_seen: u64,
        projection: Option<PyRef<'_, ResidualSubspace>>,
    ) -> PyResult<Self> {
        let f = thresholds.len();
        let design = Design { k, c, thresholds };
        let tables = scores.iter().map(|s| s.get().table.clone()).collect();
        let inner = Charts::new(
            design,
            tables,
            sequential::name_seed(name),
            ChartState::new(f, events_seen),
        )
        .map_err(design_error)?;
        let inner = match projection {
            None => inner,
            Some(p) => inner
                .with_projection(Arc::clone(&p.inner))
                .map_err(design_error)?,
        };
        Ok(SequentialCharts { inner })
    }

    /// Feeds a block of events: their (n, F) KS keys (int64 for `bits` 32, else int32),
    /// event times and batch positions; `first_event` is the model's event count at the
    /// first of them. Returns how many transitions the block queued.
    /// `features`: the events' (n, F) numeric values, for the multivariate chart.
    #[pyo3(signature = (keys, bits, first_event, timestamps, positions, features = None))]
    fn update(
        &mut self,
        keys: &Bound<'_, PyAny>,
        bits: u32,
        first_event: u64,
        timestamps: PyReadonlyArray1<'_, f64>,
        positions: PyReadonlyArray1<'_, i64>,
        features: Option<PyReadonlyArray2<'_, f64>>,
    ) -> PyResult<usize> {
        let features = features.as_ref().map(|x| x.as_array());
        let layout = Layout::new(bits).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let (t, p) = (timestamps.as_array(), positions.as_array());
        let t: Vec<f64> = t.iter().copied().collect();
        let p: Vec<i64> = p.iter().copied().collect();
        if layout.wide() {
            let Some(k) = keys_view::<i64>(keys) else {
                return Err(PyTypeError::new_err(format!(
                    "keys: expected a 2-d int64 array (bits 32), got {}",
                    crate::describe(keys)
                )));
            };
            self.feed(k.as_array(), layout, first_event, &t, &p, features)
        } else {
            let Some(k) = keys_view::<i32>(keys) else {
                return Err(PyTypeError::new_err(format!(
                    "keys: expected a 2-d int32 array (bits < 32), got {}",
                    crate::describe(keys)
                )));
            };
            self.feed(k.as_array(), layout, first_event, &t, &p, features)
        }
    }

    /// Whether transitions wait to be taken.
    #[getter]
    fn pending(&self) -> bool {
        !self.inner.pending.is_empty()
    }

    /// The largest chart value over its threshold (1 = the alarm level; 0 at rest).
    fn evidence(&self) -> f64 {
        let s = &self.inner.state;
        let limits = self.inner.design.thresholds.iter().flatten();
        s.value
            .iter()
            .zip(limits)
            .map(|(v, h)| v / h)
            .fold(0.0, f64::max)
    }

    /// Whether the model's alert is firing.
    #[getter]
    fn firing(&self) -> bool {
        self.inner.state.firing
    }

    /// The transitions queued so far, oldest first, as (status "firing" or "resolved",
    /// event, batch position, event time, version or None, hits); each hit is (feature
    /// index, chart 0 up / 1 down / 2 scale, value, threshold, start event, start time,
    /// side: for a scale chart, 1 or -1 when the mean moved up or down with the spread).
    fn take_pending<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for t in self.inner.pending.drain(..) {
            let status = match t.status {
                Status::Firing => "firing",
                Status::Resolved => "resolved",
            };
            let hits = PyList::empty(py);
            for h in &t.hits {
                hits.append((
                    h.feature,
                    h.chart,
                    h.value,
                    h.threshold,
                    h.start_event,
                    h.start_timestamp,
                    h.side,
                ))?;
            }
            out.append(PyTuple::new(
                py,
                [
                    status.into_pyobject(py)?.into_any(),
                    t.event.into_pyobject(py)?.into_any(),
                    t.position.into_pyobject(py)?.into_any(),
                    t.timestamp.into_pyobject(py)?.into_any(),
                    t.version.into_pyobject(py)?.into_any(),
                    hits.into_any(),
                ],
            )?)?;
        }
        Ok(out)
    }

    /// The charts' values, (F, 3): up, down, scale per feature.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let f = self.inner.width();
        Array2::from_shape_vec((f, CHARTS), self.inner.state.value.clone())
            .map(|a| a.into_pyarray(py))
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Everything that evolves, as plain lists (JSON-ready: NaN times as None).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.inner.state;
        let d = PyDict::new(py);
        d.set_item("value", s.value.clone())?;
        d.set_item("zero_at", s.zero_at.clone())?;
        d.set_item("zero_timestamp", float_list(&s.zero_timestamp))?;
        d.set_item("fired", s.fired.clone())?;
        d.set_item("reverse", s.reverse.clone())?;
        d.set_item("firing", s.firing)?;
        Ok(d)
    }

    /// Continues from a `state()` of charts of the same design.
    fn restore(&mut self, state: &Bound<'_, PyDict>) -> PyResult<()> {
        let times: Vec<Option<f64>> = item(state, "zero_timestamp")?.extract()?;
        let restored = ChartState {
            value: item(state, "value")?.extract()?,
            zero_at: item(state, "zero_at")?.extract()?,
            zero_timestamp: times.into_iter().map(|t| t.unwrap_or(f64::NAN)).collect(),
            fired: item(state, "fired")?.extract()?,
            reverse: item(state, "reverse")?.extract()?,
            firing: item(state, "firing")?.extract()?,
        };
        let n = self.inner.width() * CHARTS;
        let lens = [
            restored.value.len(),
            restored.zero_at.len(),
            restored.zero_timestamp.len(),
            restored.fired.len(),
            restored.reverse.len(),
        ];
        if lens.iter().any(|&l| l != n) {
            return Err(PyValueError::new_err(format!(
                "charts state: {lens:?} charts, expected {n}"
            )));
        }
        self.inner.state = restored;
        Ok(())
    }
}
