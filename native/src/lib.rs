//! `stream_monitor._native`: the package's compiled kernels.
//!
//! The kernels are plain Rust in their own modules (`adwin`, `decode`, `ks`, `lookup`,
//! `ring`, `sequential`, `summary`), tested by `cargo test`; `fleet` holds the windows the
//! native core writes; this file only converts arguments, checks what the kernels cannot
//! (dtypes, shapes), releases the GIL around the work and raises the kernels' errors as
//! ValueError.

pub mod advance;
pub mod adwin;
pub mod charts;
pub mod columns;
pub mod decode;
pub mod fleet;
pub mod ks;
pub mod lookup;
pub mod prefetch;
pub mod ring;
pub mod runs;
pub mod sequential;
pub mod spans;
pub mod summary;

use numpy::ndarray::{Array2, ArrayView1, ArrayView2};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use std::borrow::Cow;
use std::collections::VecDeque;

/// A statistic per feature and the window values each used.
type Statistics<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<i64>>);

/// One (n, F) window of keys as the kernel reads it, any memory order.
enum Keys<'a> {
    Wide(ArrayView2<'a, i64>),
    Narrow(ArrayView2<'a, i32>),
}

pub(crate) fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.cast::<numpy::PyUntypedArray>() {
        Ok(a) => format!("a {}-d {} array", a.ndim(), a.dtype()),
        Err(_) => obj
            .get_type()
            .name()
            .map(|n| format!("a {n}"))
            .unwrap_or_else(|_| "an object".into()),
    }
}

fn int64_vector<'py>(obj: &Bound<'py, PyAny>, field: &str) -> PyResult<PyReadonlyArray1<'py, i64>> {
    obj.extract::<PyReadonlyArray1<'py, i64>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{field}: expected a 1-d int64 array, got {}",
            describe(obj)
        ))
    })
}

/// KS statistic per feature of an (n, F) window of packed keys and the sizes used:
/// bit for bit `stream_monitor.detectors.ks.ks_statistic` (see its docstring).
///
/// `keys`: int64 when `bits` is 32, int32 when `bits` < 32, C or Fortran order;
/// `ref_sizes`, `window_sizes`: int64 of length F (`window_sizes`, when given, must be the
/// counts of keys that are not missing). Returns (statistic float64[F], sizes int64[F]).
/// The kernel over a window of any memory order; Fortran order (each feature contiguous,
/// as windows keep their keys) reads each feature as one slice, which is faster.
/// The statistic of every column of a window's keys, through the kernel that sorts them or
/// (`sorted`) the one that reads them sorted already.
fn window_statistic<T: Copy + Sync + Into<i64>>(
    view: &ArrayView2<'_, T>,
    widen: impl Fn(&T) -> i64 + Copy,
    refs: &[i64],
    layout: ks::Layout,
    wins: Option<&[i64]>,
    sorted: bool,
) -> Result<(Vec<f64>, Vec<i64>), ks::KsError> {
    let (n, f) = view.dim();
    let transposed = view.t();
    match (transposed.as_slice(), sorted) {
        (Some(data), false) => {
            let column = |j: usize| data[j * n..(j + 1) * n].iter().map(widen);
            ks::ks_statistic(f, column, refs, layout, wins)
        }
        (Some(data), true) => {
            let column = |j: usize| &data[j * n..(j + 1) * n];
            ks::sorted_ks_statistic_slices(f, column, refs, layout, wins)
        }
        (None, false) => {
            let column = |j: usize| view.column(j).into_iter().map(widen);
            ks::ks_statistic(f, column, refs, layout, wins)
        }
        (None, true) => {
            let column = |j: usize| view.column(j).into_iter().map(widen);
            ks::sorted_ks_statistic(f, column, refs, layout, wins)
        }
    }
}

#[pyfunction]
#[pyo3(signature = (keys, ref_sizes, bits = 32, window_sizes = None))]
fn ks_statistic<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    ref_sizes: &Bound<'py, PyAny>,
    bits: u32,
    window_sizes: Option<&Bound<'py, PyAny>>,
) -> PyResult<Statistics<'py>> {
    statistics(py, keys, "keys", ref_sizes, bits, window_sizes, false)
}

/// `ks_statistic` of keys sorted along the rows (see `ks::sorted_ks_statistic`).
#[pyfunction]
#[pyo3(signature = (sorted_keys, ref_sizes, bits = 32, window_sizes = None))]
fn ks_statistic_sorted<'py>(
    py: Python<'py>,
    sorted_keys: &Bound<'py, PyAny>,
    ref_sizes: &Bound<'py, PyAny>,
    bits: u32,
    window_sizes: Option<&Bound<'py, PyAny>>,
) -> PyResult<Statistics<'py>> {
    statistics(
        py,
        sorted_keys,
        "sorted_keys",
        ref_sizes,
        bits,
        window_sizes,
        true,
    )
}

/// Both KS entry points: the arguments checked and converted, the kernel run without the GIL.
fn statistics<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    field: &str,
    ref_sizes: &Bound<'py, PyAny>,
    bits: u32,
    window_sizes: Option<&Bound<'py, PyAny>>,
    sorted: bool,
) -> PyResult<Statistics<'py>> {
    let layout = ks::Layout::new(bits).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let wide = keys.cast::<PyArray2<i64>>().ok().map(|a| a.readonly());
    let narrow = keys.cast::<PyArray2<i32>>().ok().map(|a| a.readonly());
    let view = match (&wide, &narrow, layout.wide()) {
        (Some(a), _, true) => Keys::Wide(a.as_array()),
        (_, Some(a), false) => Keys::Narrow(a.as_array()),
        _ => {
            let want = if layout.wide() {
                "int64 (bits=32)"
            } else {
                "int32 (bits<32)"
            };
            return Err(PyTypeError::new_err(format!(
                "{field}: expected a 2-d {want} array, got {}",
                describe(keys)
            )));
        }
    };
    let ref_sizes = int64_vector(ref_sizes, "ref_sizes")?;
    let window_sizes = window_sizes
        .filter(|w| !w.is_none())
        .map(|w| int64_vector(w, "window_sizes"))
        .transpose()?;
    let ref_view = ref_sizes.as_array();
    let window_view = window_sizes.as_ref().map(|w| w.as_array());
    let result = py.detach(|| {
        let refs = ref_view.to_vec();
        let wins = window_view.map(|w| w.to_vec());
        let wins = wins.as_deref();
        match &view {
            Keys::Wide(v) => window_statistic(v, |&k| k, &refs, layout, wins, sorted),
            Keys::Narrow(v) => window_statistic(v, |&k| i64::from(k), &refs, layout, wins, sorted),
        }
    });
    let (stat, sizes) = result.map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((stat.into_pyarray(py), sizes.into_pyarray(py)))
}

/// `detectors.ks.as_scipy_default` of every feature (see `ks::as_scipy_default`).
#[pyfunction]
fn ks_scipy_default<'py>(
    py: Python<'py>,
    stat: &Bound<'py, PyAny>,
    ref_sizes: &Bound<'py, PyAny>,
    sizes: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let stat = float64_vector(stat, "stat")?;
    let ref_sizes = int64_vector(ref_sizes, "ref_sizes")?;
    let sizes = int64_vector(sizes, "sizes")?;
    let (stat, ref_sizes, sizes) = (stat.as_array(), ref_sizes.as_array(), sizes.as_array());
    for (field, len) in [("ref_sizes", ref_sizes.len()), ("sizes", sizes.len())] {
        if len != stat.len() {
            return Err(PyValueError::new_err(format!(
                "{field}: {len} values for {} statistics",
                stat.len()
            )));
        }
    }
    let out: Vec<f64> = (0..stat.len())
        .map(|j| ks::as_scipy_default(stat[j], ref_sizes[j], sizes[j]))
        .collect();
    Ok(out.into_pyarray(py))
}

fn float64_vector<'py>(
    obj: &Bound<'py, PyAny>,
    field: &str,
) -> PyResult<PyReadonlyArray1<'py, f64>> {
    obj.extract::<PyReadonlyArray1<'py, f64>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{field}: expected a 1-d float64 array, got {}",
            describe(obj)
        ))
    })
}

fn float64_matrix<'py>(
    obj: &Bound<'py, PyAny>,
    field: &str,
) -> PyResult<PyReadonlyArray2<'py, f64>> {
    obj.extract::<PyReadonlyArray2<'py, f64>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{field}: expected a 2-d float64 array, got {}",
            describe(obj)
        ))
    })
}

pub(crate) fn lookup_error(e: lookup::LookupError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The keys of a block against columns (and their sparse index, if any), as numpy wants
/// them: int64 for 64-bit layouts, int32 below.
fn block_keys<'py>(
    py: Python<'py>,
    flat: ArrayView1<'_, f64>,
    starts: &[i64],
    index: Option<(&[f64], &[i64])>,
    values: ArrayView2<'_, f64>,
    layout: ks::Layout,
) -> PyResult<Bound<'py, PyAny>> {
    let (k, f) = values.dim();
    let keys = py.detach(|| -> Result<Array2<i64>, lookup::LookupError> {
        // the reference is read in place (copied only if not contiguous): a block of a few
        // events must not pay for the reference's size
        let copied: Vec<f64>;
        let flat = match flat.as_slice() {
            Some(slice) => slice,
            None => {
                copied = flat.to_vec();
                &copied
            }
        };
        let columns = lookup::Columns::new(flat, starts, f)?;
        let index = index
            .map(|(values, starts)| lookup::Columns::new(values, starts, f))
            .transpose()?;
        let mut keys = Array2::<i64>::zeros((k, f));
        lookup::ks_keys(
            &columns,
            index.as_ref(),
            layout,
            |j| values.column(j).into_iter().copied(),
            |j, row, key| keys[[row, j]] = key,
        )?;
        Ok(keys)
    });
    let keys = keys.map_err(lookup_error)?;
    if layout.wide() {
        Ok(keys.into_pyarray(py).into_any())
    } else {
        // narrow keys fit in 31 bits (Layout): the conversion is exact
        Ok(keys.mapv(|key| key as i32).into_pyarray(py).into_any())
    }
}

/// The KS key of every value of a (k, F) block (any memory order) against the reference's
/// sorted columns laid end to end (`flat`, cut by the F + 1 `column_starts`): as
/// `detectors.ks.ks_keys` of `PreparedReference.cdf_counts`, int64 keys when `bits` is 32,
/// int32 ones below; the missing key where a value is not finite.
#[pyfunction]
#[pyo3(signature = (flat, column_starts, values, bits = 32))]
fn reference_keys<'py>(
    py: Python<'py>,
    flat: &Bound<'py, PyAny>,
    column_starts: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    bits: u32,
) -> PyResult<Bound<'py, PyAny>> {
    let layout = ks::Layout::new(bits).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let flat = float64_vector(flat, "flat")?;
    let starts = int64_vector(column_starts, "column_starts")?;
    let values = float64_matrix(values, "values")?;
    let starts = starts.as_array().to_vec();
    block_keys(
        py,
        flat.as_array(),
        &starts,
        None,
        values.as_array(),
        layout,
    )
}

/// A reference's sorted columns as the per-event look-ups read them: the numpy array itself
/// (held, not copied) and each column's sparse index (a thirty-second of it), built once.
#[pyclass(frozen, module = "stream_monitor._native")]
pub struct ReferenceColumns {
    pub(crate) flat: Py<PyArray1<f64>>,
    pub(crate) starts: Vec<i64>,
    pub(crate) index: Vec<f64>,
    pub(crate) index_starts: Vec<i64>,
}

#[pymethods]
impl ReferenceColumns {
    #[new]
    fn new(flat: &Bound<'_, PyAny>, column_starts: &Bound<'_, PyAny>) -> PyResult<Self> {
        let array = flat.cast::<PyArray1<f64>>().map_err(|_| {
            PyTypeError::new_err(format!(
                "flat: expected a 1-d float64 array, got {}",
                describe(flat)
            ))
        })?;
        let starts = int64_vector(column_starts, "column_starts")?
            .as_array()
            .to_vec();
        let view = array.readonly();
        let values = view.as_array();
        let values = match values.as_slice() {
            Some(v) => Cow::Borrowed(v),
            None => Cow::Owned(values.to_vec()),
        };
        let f = starts.len().saturating_sub(1);
        let columns = lookup::Columns::new(&values, &starts, f).map_err(lookup_error)?;
        // sized exactly: grown by doubling, the index of every model would carry up to as
        // much again in spare capacity (6 KB of a reference of 2 000 x 20)
        let size = (0..f)
            .map(|j| columns.column(j).len().div_ceil(lookup::STRIDE))
            .sum();
        let mut index = Vec::with_capacity(size);
        let mut index_starts = vec![0i64];
        for j in 0..f {
            index.extend(lookup::sparse_index(columns.column(j)));
            index_starts.push(index.len() as i64);
        }
        Ok(ReferenceColumns {
            flat: array.clone().unbind(),
            starts,
            index,
            index_starts,
        })
    }

    /// The KS key of every value of a (k, F) block: `reference_keys`, through the index.
    #[pyo3(signature = (values, bits = 32))]
    fn keys<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyAny>,
        bits: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let layout = ks::Layout::new(bits).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let values = float64_matrix(values, "values")?;
        let flat = self.flat.bind(py).readonly();
        let index = Some((self.index.as_slice(), self.index_starts.as_slice()));
        block_keys(
            py,
            flat.as_array(),
            &self.starts,
            index,
            values.as_array(),
            layout,
        )
    }
}

/// The bin of every value of a (k, F) block among each feature's inner edges, an (E, F)
/// array ascending per column and padded with +inf: `detectors.numeric.bin_index`, int16,
/// -1 where a value is not finite.
#[pyfunction]
fn bin_index<'py>(
    py: Python<'py>,
    edges: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray2<i16>>> {
    let edges = float64_matrix(edges, "edges")?;
    let values = float64_matrix(values, "values")?;
    let (edges, values) = (edges.as_array(), values.as_array());
    let (k, f) = values.dim();
    if edges.ncols() != f {
        return Err(lookup_error(lookup::LookupError::Edges {
            got: edges.ncols(),
            features: f,
        }));
    }
    let bins = py.detach(|| {
        let mut bins = Array2::<i16>::zeros((k, f));
        for j in 0..f {
            let column: Vec<f64> = edges.column(j).to_vec();
            for (row, &x) in values.column(j).iter().enumerate() {
                bins[[row, j]] = lookup::bin_of(&column, x);
            }
        }
        bins
    });
    Ok(bins.into_pyarray(py))
}

/// The KS statistic of a sorted finite sample against a sorted finite reference:
/// `detectors.ks.ks_sorted_statistic` to the last bit (one merge walk, no search).
#[pyfunction]
fn ks_sorted_statistic(
    sorted_reference: &Bound<'_, PyAny>,
    sorted_sample: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    let reference = float64_vector(sorted_reference, "sorted_reference")?;
    let sample = float64_vector(sorted_sample, "sorted_sample")?;
    // a few µs of work: read in place with the GIL held (no copies, no hand-over)
    let (reference, sample) = (reference.as_array(), sample.as_array());
    let reference = reference
        .as_slice()
        .map_or_else(|| reference.to_vec().into(), Cow::Borrowed);
    let sample = sample
        .as_slice()
        .map_or_else(|| sample.to_vec().into(), Cow::Borrowed);
    ks::sorted_sample_statistic(&reference, &sample)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A float64 vector's values in place, or copied when they are not contiguous.
fn float_slice<'a>(view: &'a ArrayView1<'_, f64>) -> Cow<'a, [f64]> {
    view.as_slice()
        .map_or_else(|| view.to_vec().into(), Cow::Borrowed)
}

/// `detectors.performance.regression_errors` of a window's predictions and actuals, to the
/// last bit: (labeled, mae, rmse), NaN for no labelled event.
#[pyfunction]
fn regression_errors(
    prediction: &Bound<'_, PyAny>,
    actual: &Bound<'_, PyAny>,
) -> PyResult<(usize, f64, f64)> {
    let prediction = float64_vector(prediction, "prediction")?;
    let actual = float64_vector(actual, "actual")?;
    let (p, a) = (prediction.as_array(), actual.as_array());
    if p.len() != a.len() {
        return Err(PyValueError::new_err(format!(
            "prediction and actual differ in length: {} and {}",
            p.len(),
            a.len()
        )));
    }
    // a few µs of work: read in place with the GIL held
    let (p, a) = (float_slice(&p), float_slice(&a));
    Ok(summary::regression_errors(&p, &a, &mut Vec::new()))
}

/// `np.percentile(values[np.isfinite(values)], percents)` to the last bit (the linear
/// method); an empty list when no value is finite.
#[pyfunction]
fn linear_percentiles(values: &Bound<'_, PyAny>, percents: Vec<f64>) -> PyResult<Vec<f64>> {
    if let Some(bad) = percents.iter().find(|p| !(0.0..=100.0).contains(*p)) {
        return Err(PyValueError::new_err(format!(
            "percents must lie in [0, 100], got {bad}"
        )));
    }
    let values = float64_vector(values, "values")?;
    let values = values.as_array();
    let values = float_slice(&values);
    Ok(summary::linear_percentiles(
        &values,
        &percents,
        &mut Vec::new(),
    ))
}

/// The prediction histogram of a window against the reference's smoothed one: (values
/// binned, `js_distance(reference_smoothed, smoothed(bin_counts(bin_index)))`), to the last
/// bit of `detectors.histogram`'s functions.
#[pyfunction]
fn histogram_js(
    bin_index: &Bound<'_, PyAny>,
    reference_smoothed: &Bound<'_, PyAny>,
) -> PyResult<(i64, f64)> {
    let bins = bin_index
        .extract::<PyReadonlyArray1<'_, i16>>()
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "bin_index: expected a 1-d int16 array, got {}",
                describe(bin_index)
            ))
        })?;
    let reference = float64_vector(reference_smoothed, "reference_smoothed")?;
    let reference = reference.as_array();
    let reference = float_slice(&reference);
    let bins = bins.as_array();
    let bins = bins
        .as_slice()
        .map_or_else(|| bins.to_vec().into(), Cow::Borrowed);
    let counts = summary::bin_counts(&bins, reference.len()).map_err(|b| {
        PyValueError::new_err(format!(
            "bin index {b} is past the reference's {} bins",
            reference.len()
        ))
    })?;
    let binned = counts.iter().sum();
    Ok((
        binned,
        summary::js_distance(&reference, &summary::smoothed(&counts)),
    ))
}

/// Missing, non-finite and out-of-range shares of a window's numeric features from its
/// tallies (see `summary::numeric_quality`): (the (feature, measure, share) over their limit,
/// each measure's largest share).
#[pyfunction]
fn numeric_quality(
    missing: &Bound<'_, PyAny>,
    nonfinite: &Bound<'_, PyAny>,
    outside: &Bound<'_, PyAny>,
    count: i64,
    limits: [f64; 3],
) -> PyResult<summary::Quality> {
    let missing = int64_vector(missing, "missing")?;
    let nonfinite = int64_vector(nonfinite, "nonfinite")?;
    let outside = int64_vector(outside, "outside")?;
    let (m, f, o) = (
        missing.as_array().to_vec(),
        nonfinite.as_array().to_vec(),
        outside.as_array().to_vec(),
    );
    if f.len() != m.len() || o.len() != m.len() {
        return Err(PyValueError::new_err(format!(
            "the tallies differ in length: {}, {} and {}",
            m.len(),
            f.len(),
            o.len()
        )));
    }
    Ok(summary::numeric_quality(&m, &f, &o, count, limits))
}

/// ADWIN on a stream of errors, bit for bit `stream_monitor.detectors.adwin.ADWIN` (the same
/// API, the same `state()`), without a Python call per value.
#[pyclass(module = "stream_monitor._native", name = "Adwin")]
pub struct PyAdwin {
    pub(crate) inner: adwin::Adwin,
}

fn bad_parameter(e: adwin::BadParameter) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn float_rows(state: &Bound<'_, PyDict>, key: &str) -> PyResult<Vec<VecDeque<f64>>> {
    let rows: Vec<Vec<f64>> = state_item(state, key)?.extract()?;
    Ok(rows.into_iter().map(VecDeque::from).collect())
}

fn state_item<'py>(state: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    state
        .get_item(key)?
        .ok_or_else(|| PyKeyError::new_err(key.to_string()))
}

#[pymethods]
impl PyAdwin {
    #[new]
    #[pyo3(signature = (delta = 0.002, clock = 32, max_buckets = 5, min_window_length = 5))]
    fn new(delta: f64, clock: i64, max_buckets: i64, min_window_length: i64) -> PyResult<Self> {
        let inner = adwin::Adwin::new(delta, clock, max_buckets, min_window_length)
            .map_err(bad_parameter)?;
        Ok(PyAdwin { inner })
    }

    #[getter]
    fn delta(&self) -> f64 {
        self.inner.delta
    }

    #[getter]
    fn clock(&self) -> u64 {
        self.inner.clock
    }

    #[getter]
    fn max_buckets(&self) -> usize {
        self.inner.max_buckets
    }

    #[getter]
    fn min_window_length(&self) -> u64 {
        self.inner.min_window_length
    }

    /// Empty the window.
    fn reset(&mut self) {
        self.inner.reset();
    }

    /// Whether the last update cut the window.
    #[getter]
    fn drift_detected(&self) -> bool {
        self.inner.drift
    }

    /// Values in the window.
    #[getter]
    fn n(&self) -> u64 {
        self.inner.width
    }

    /// Values in the window (the same as `n`).
    #[getter]
    fn width(&self) -> u64 {
        self.inner.width
    }

    /// Mean of the window (0.0 when it is empty).
    #[getter]
    fn estimation(&self) -> f64 {
        self.inner.estimation()
    }

    /// Population variance of the window (0.0 when it is empty).
    #[getter]
    fn variance(&self) -> f64 {
        self.inner.population_variance()
    }

    /// (size, sum, sum of squared deviations) of each bucket, oldest first.
    fn buckets(&self) -> Vec<(u64, f64, f64)> {
        self.inner.buckets()
    }

    /// Add one value; true exactly when this update cut the window.
    fn update(&mut self, x: f64) -> bool {
        self.inner.update_many(&[x])
    }

    /// Add values in order (a float64 array or any sequence of numbers), as one `update`
    /// each; true when any of them cut the window.
    fn update_many(&mut self, values: &Bound<'_, PyAny>) -> PyResult<bool> {
        if let Ok(array) = values.extract::<PyReadonlyArray1<'_, f64>>() {
            if let Ok(slice) = array.as_slice() {
                return Ok(self.inner.update_many(slice));
            }
            return Ok(self.inner.update_many(&array.as_array().to_vec()));
        }
        let values: Vec<f64> = values.extract()?;
        Ok(self.inner.update_many(&values))
    }

    /// Parameters, buckets and window sums as plain numbers and lists, as the Python
    /// class writes them (the changelog holds them).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let a = &self.inner;
        let rows = |r: &Vec<VecDeque<f64>>| -> Vec<Vec<f64>> {
            r.iter().map(|row| row.iter().copied().collect()).collect()
        };
        let state = PyDict::new(py);
        state.set_item("delta", a.delta)?;
        state.set_item("clock", a.clock)?;
        state.set_item("max_buckets", a.max_buckets)?;
        state.set_item("min_window_length", a.min_window_length)?;
        state.set_item("totals", rows(&a.totals))?;
        state.set_item("variances", rows(&a.variances))?;
        state.set_item("width", a.width)?;
        state.set_item("total", a.total)?;
        state.set_item("variance", a.variance)?;
        state.set_item("tick", a.tick)?;
        state.set_item("drift_detected", a.drift)?;
        Ok(state)
    }

    /// The detector `state()` described (by this class or the Python one), ready to
    /// continue identically.
    #[staticmethod]
    fn from_state(state: &Bound<'_, PyDict>) -> PyResult<Self> {
        let mut inner = adwin::Adwin::new(
            state_item(state, "delta")?.extract()?,
            state_item(state, "clock")?.extract()?,
            state_item(state, "max_buckets")?.extract()?,
            state_item(state, "min_window_length")?.extract()?,
        )
        .map_err(bad_parameter)?;
        inner.totals = float_rows(state, "totals")?;
        inner.variances = float_rows(state, "variances")?;
        let shape = |r: &Vec<VecDeque<f64>>| r.iter().map(VecDeque::len).collect::<Vec<_>>();
        if shape(&inner.totals) != shape(&inner.variances) {
            return Err(PyValueError::new_err(
                "totals and variances must have the same shape",
            ));
        }
        inner.width = state_item(state, "width")?.extract()?;
        inner.total = state_item(state, "total")?.extract()?;
        inner.variance = state_item(state, "variance")?.extract()?;
        inner.tick = state_item(state, "tick")?.extract()?;
        inner.drift = state_item(state, "drift_detected")?.extract()?;
        Ok(PyAdwin { inner })
    }
}

/// A fast model's events of one batch as columns (see `decode_predictions`).
#[pyclass(frozen, get_all, module = "stream_monitor._native")]
struct NativeModel {
    positions: Py<PyArray1<i64>>,
    features: Py<PyArray2<f64>>,
    prediction: Py<PyArray1<f64>>,
    actual: Py<PyArray1<f64>>,
    latency_ms: Py<PyArray1<f64>>,
    timestamp: Py<PyArray1<f64>>,
    error: Py<PyArray1<f64>>,
    event_ids: Py<PyList>,
    versions: Py<PyList>,
}

/// A batch of prediction records read by `decode_predictions`.
#[pyclass(frozen, get_all, module = "stream_monitor._native")]
struct NativeDecoded {
    dead: Py<PyList>,
    slow_positions: Py<PyList>,
    undecided_positions: Py<PyList>,
    fast: Py<PyDict>,
    staged: usize,
    /// (model, position of its first valid record) of each model neither in the schemas nor
    /// in the fleet, first seen first: a model new to the caller, which may admit it and
    /// read the batch again with its schema
    unknown: Py<PyList>,
}

/// The bytes of each item of a list of `bytes | None`, borrowed (bytes are immutable; the
/// list and its items are kept alive by the caller's references).
fn byte_items<'a, 'py>(
    items: &'a [Bound<'py, PyAny>],
    field: &str,
) -> PyResult<Vec<Option<&'a [u8]>>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if item.is_none() {
                return Ok(None);
            }
            match item.cast::<PyBytes>() {
                Ok(b) => Ok(Some(b.as_bytes())),
                Err(_) => Err(PyTypeError::new_err(format!(
                    "{field}[{i}]: expected bytes or None, got {}",
                    describe(item)
                ))),
            }
        })
        .collect()
}

fn list_items<'py>(obj: &Bound<'py, PyAny>, field: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let list = obj.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!("{field}: expected a list, got {}", describe(obj)))
    })?;
    Ok(list.iter().collect())
}

/// A list of optional strings, one Python string per distinct run (a model's version
/// repeats from event to event: made once while it does).
fn optional_strings<'py, 's>(
    py: Python<'py>,
    items: impl ExactSizeIterator<Item = Option<&'s str>>,
) -> PyResult<Bound<'py, PyList>> {
    let none = py.None().into_bound(py);
    let mut last: Option<(&str, Bound<'py, PyAny>)> = None;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let obj = match item {
            None => none.clone(),
            Some(s) => match &last {
                Some((text, obj)) if *text == s => obj.clone(),
                _ => {
                    let obj = PyString::new(py, s).into_any();
                    last = Some((s, obj.clone()));
                    obj
                }
            },
        };
        out.push(obj);
    }
    PyList::new(py, out)
}

fn dead_detail(py: Python<'_>, detail: &decode::Detail<'_>) -> PyResult<String> {
    Ok(match detail {
        decode::Detail::Text(t) => t.to_string(),
        // Python's repr of both names, as the Python forms the detail
        decode::Detail::Mismatch { key, model } => format!(
            "key {} and model {} disagree",
            PyString::new(py, key).repr()?,
            PyString::new(py, model).repr()?
        ),
    })
}

/// Prediction records validated exactly as `stream_monitor.decode.predictions.decode_batch`
/// validates them; the valid records of models in `schemas` whose values are all numbers
/// as columns, the rest left to the Python (see `_native.pyi`).
#[pyfunction]
#[pyo3(signature = (values, keys, timestamps, schemas, fleet = None, split_versions = false))]
fn decode_predictions<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    timestamps: &Bound<'py, PyAny>,
    schemas: &Bound<'py, PyAny>,
    fleet: Option<Bound<'py, fleet::WindowFleet>>,
    split_versions: bool,
) -> PyResult<NativeDecoded> {
    let mut fleet = fleet.as_ref().map(|f| f.borrow_mut());
    if let Some(f) = fleet.as_mut() {
        f.clear_staged();
    }
    let value_items = list_items(values, "values")?;
    let key_items = list_items(keys, "keys")?;
    let time_items = list_items(timestamps, "timestamps")?;
    let value_bytes = byte_items(&value_items, "values")?;
    let key_bytes = byte_items(&key_items, "keys")?;
    let times = time_items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.is_none() {
                return Ok(None);
            }
            t.extract::<f64>().map(Some).map_err(|_| {
                PyTypeError::new_err(format!(
                    "timestamps[{i}]: expected a float or None, got {}",
                    describe(t)
                ))
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let schema_dict = schemas.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "schemas: expected a dict, got {}",
            describe(schemas)
        ))
    })?;
    // the records are read on the fleet's threads (none: on this one)
    let threads = fleet.as_ref().map_or(1, |f| f.threads);
    let validated = py
        .detach(|| {
            decode::validate_on(
                &value_bytes,
                &key_bytes,
                times.len(),
                split_versions,
                threads,
            )
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    // the schemas of the batch's models only (a service may know thousands), their names
    // borrowed from the Python strings
    let mut given: Vec<Option<Vec<Bound<'py, PyString>>>> = Vec::new();
    // each model looked up in the fleet once: its slot, used for the rest of the batch
    let mut slots: Vec<Option<usize>> = Vec::new();
    for model in &validated.models {
        let slot = fleet.as_ref().and_then(|f| f.slot_of(model.as_ref()));
        slots.push(slot);
        if slot.is_some() {
            given.push(None);
            continue;
        }
        let Some(names) = schema_dict.get_item(model.as_ref())? else {
            given.push(None);
            continue;
        };
        let field = || format!("schemas[{:?}]", model.as_ref());
        if names.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(format!(
                "{}: expected a tuple of str, got a str",
                field()
            )));
        }
        let items = names.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "{}: expected a tuple of str, got {}",
                field(),
                describe(&names)
            ))
        })?;
        let mut strings = Vec::new();
        for (j, item) in items.enumerate() {
            let item = item?;
            let name = item.cast_into::<PyString>().map_err(|e| {
                PyTypeError::new_err(format!(
                    "{}[{j}]: expected a str, got {}",
                    field(),
                    describe(&e.into_inner())
                ))
            })?;
            strings.push(name);
        }
        given.push(Some(strings));
    }
    // a name that is not UTF-8 (a lone surrogate) is no JSON key: never found
    let decoded = {
        // an enrolled model's schema is the fleet's; the others' are made for this batch
        let made: Vec<Option<decode::Schema>> = given
            .iter()
            .map(|names| {
                let names = names.as_ref()?;
                Some(decode::Schema::new(names.iter().map(|n| n.to_str().ok())))
            })
            .collect();
        let mut spare = fleet.as_mut().map(|f| f.take_spare()).unwrap_or_default();
        // the fleet's models' events go to their windows: their ids are not kept
        let readings: Vec<Option<decode::Reading<'_>>> = made
            .iter()
            .zip(&slots)
            .map(|(made, &slot)| match slot {
                Some(slot) => fleet
                    .as_ref()?
                    .schema_at(slot)
                    .map(|schema| decode::Reading {
                        schema,
                        event_ids: false,
                    }),
                None => made.as_ref().map(|schema| decode::Reading {
                    schema,
                    event_ids: true,
                }),
            })
            .collect();
        let decoded = py.detach(|| decode::columns(validated, &readings, &times, &mut spare));
        if let Some(f) = fleet.as_mut() {
            f.give_spare(spare);
        }
        decoded
    };

    let dead = PyList::empty(py);
    for d in &decoded.dead {
        let detail = dead_detail(py, &d.detail)?;
        dead.append((d.index, d.reason, detail, d.model.as_ref()))?;
    }
    let fast = PyDict::new(py);
    let slow_positions = PyList::new(py, decoded.slow_positions())?;
    let undecided_positions = PyList::new(py, &decoded.undecided)?;
    let mut staged = 0;
    let unknown = PyList::empty(py);
    // decoded.models is in the order of validated.models (`decode::columns`), as slots and
    // given are
    for ((m, slot), names) in decoded.models.into_iter().zip(&slots).zip(&given) {
        if !m.fast {
            if let (None, None, Some(&first)) = (slot, names, m.positions.first()) {
                unknown.append((m.name.as_ref(), first))?;
            }
            continue;
        }
        if let (Some(f), Some(slot)) = (fleet.as_mut(), *slot) {
            f.stage(slot, m.columns);
            staged += 1;
            continue;
        }
        let c = m.columns;
        let versions = optional_strings(py, c.versions())?;
        let n = c.positions.len();
        let width = c.features.len().checked_div(n).unwrap_or(0);
        let features = numpy::ndarray::Array2::from_shape_vec((n, width), c.features)
            .map_err(|e| PyValueError::new_err(format!("features: {e}")))?;
        // |prediction - actual| as numpy's abs(subtract) forms it (IEEE subtraction, the
        // sign bit cleared): NaN without an actual
        let error: Vec<f64> = c
            .prediction
            .iter()
            .zip(&c.actual)
            .map(|(p, a)| (p - a).abs())
            .collect();
        let model = NativeModel {
            positions: c.positions.into_pyarray(py).unbind(),
            features: features.into_pyarray(py).unbind(),
            prediction: c.prediction.into_pyarray(py).unbind(),
            actual: c.actual.into_pyarray(py).unbind(),
            latency_ms: c.latency_ms.into_pyarray(py).unbind(),
            timestamp: c.timestamp.into_pyarray(py).unbind(),
            error: error.into_pyarray(py).unbind(),
            event_ids: optional_strings(py, m.event_ids.iter().map(|e| e.as_deref()))?.unbind(),
            versions: versions.unbind(),
        };
        fast.set_item(m.name.as_ref(), Bound::new(py, model)?)?;
    }
    Ok(NativeDecoded {
        dead: dead.unbind(),
        slow_positions: slow_positions.unbind(),
        undecided_positions: undecided_positions.unbind(),
        fast: fast.unbind(),
        staged,
        unknown: unknown.unbind(),
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAdwin>()?;
    m.add_function(wrap_pyfunction!(ks_sorted_statistic, m)?)?;
    m.add_function(wrap_pyfunction!(ks_statistic, m)?)?;
    m.add_function(wrap_pyfunction!(reference_keys, m)?)?;
    m.add_class::<ReferenceColumns>()?;
    m.add_function(wrap_pyfunction!(bin_index, m)?)?;
    m.add_function(wrap_pyfunction!(decode_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(ks_statistic_sorted, m)?)?;
    m.add_function(wrap_pyfunction!(ks_scipy_default, m)?)?;
    m.add_class::<NativeDecoded>()?;
    m.add_class::<NativeModel>()?;
    m.add_class::<fleet::WindowFleet>()?;
    m.add_class::<charts::NormalScores>()?;
    m.add_class::<charts::SequentialCharts>()?;
    m.add_function(wrap_pyfunction!(charts::projection_errors, m)?)?;
    m.add_class::<charts::ResidualSubspace>()?;
    m.add_function(wrap_pyfunction!(regression_errors, m)?)?;
    m.add_function(wrap_pyfunction!(linear_percentiles, m)?)?;
    m.add_function(wrap_pyfunction!(histogram_js, m)?)?;
    m.add_function(wrap_pyfunction!(numeric_quality, m)?)?;
    Ok(())
}
