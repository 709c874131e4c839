//! `stream_monitor._native`: the package's compiled kernels.
//!
//! The kernels are plain Rust in their own modules (`ks`, `decode`), tested by `cargo test`; this
//! file only converts arguments, checks what the kernels cannot (dtypes, shapes), releases
//! the GIL around the work and raises the kernels' errors as ValueError.

pub mod decode;
pub mod ks;

use numpy::ndarray::ArrayView2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use std::borrow::Cow;

/// A statistic per feature and the window values each used.
type Statistics<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<i64>>);

/// One (n, F) window of keys as the kernel reads it, any memory order.
enum Keys<'a> {
    Wide(ArrayView2<'a, i64>),
    Narrow(ArrayView2<'a, i32>),
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
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
fn window_statistic<T: Copy + Sync>(
    view: &ArrayView2<'_, T>,
    widen: impl Fn(&T) -> i64 + Copy,
    refs: &[i64],
    layout: ks::Layout,
    wins: Option<&[i64]>,
) -> Result<(Vec<f64>, Vec<i64>), ks::KsError> {
    let (n, f) = view.dim();
    let transposed = view.t();
    match transposed.as_slice() {
        Some(data) => ks::ks_statistic(
            f,
            |j| data[j * n..(j + 1) * n].iter().map(widen),
            refs,
            layout,
            wins,
        ),
        None => ks::ks_statistic(
            f,
            |j| view.column(j).into_iter().map(widen),
            refs,
            layout,
            wins,
        ),
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
                "keys: expected a 2-d {want} array, got {}",
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
            Keys::Wide(v) => window_statistic(v, |&k| k, &refs, layout, wins),
            Keys::Narrow(v) => window_statistic(v, |&k| i64::from(k), &refs, layout, wins),
        }
    });
    let (stat, sizes) = result.map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((stat.into_pyarray(py), sizes.into_pyarray(py)))
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
    order: Py<PyList>,
    slow_positions: Py<PyList>,
    undecided_positions: Py<PyList>,
    fast: Py<PyDict>,
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
fn optional_strings<'py>(
    py: Python<'py>,
    items: &[Option<Cow<'_, str>>],
) -> PyResult<Bound<'py, PyList>> {
    let none = py.None().into_bound(py);
    let mut last: Option<(&str, Bound<'py, PyAny>)> = None;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let obj = match item {
            None => none.clone(),
            Some(s) => match &last {
                Some((text, obj)) if *text == s.as_ref() => obj.clone(),
                _ => {
                    let obj = PyString::new(py, s).into_any();
                    last = Some((s.as_ref(), obj.clone()));
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
fn decode_predictions<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    timestamps: &Bound<'py, PyAny>,
    schemas: &Bound<'py, PyAny>,
) -> PyResult<NativeDecoded> {
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
    let validated = py
        .detach(|| decode::validate(&value_bytes, &key_bytes, times.len()))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    // the schemas of the batch's models only (a service may know thousands), their names
    // borrowed from the Python strings
    let mut given: Vec<Option<Vec<Bound<'py, PyString>>>> = Vec::new();
    for model in &validated.models {
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
    let found: Vec<Option<decode::Schema<'_>>> = given
        .iter()
        .map(|names| {
            let names = names.as_ref()?;
            Some(decode::Schema::new(names.iter().map(|n| n.to_str().ok())))
        })
        .collect();
    let decoded = py.detach(|| decode::columns(validated, &found, &times));

    let dead = PyList::empty(py);
    for d in &decoded.dead {
        let detail = dead_detail(py, &d.detail)?;
        dead.append((d.index, d.reason, detail, d.model.as_ref()))?;
    }
    let order = PyList::empty(py);
    let fast = PyDict::new(py);
    for m in decoded.models.iter() {
        order.append((m.name.as_ref(), m.fast))?;
    }
    let slow_positions = PyList::new(py, decoded.slow_positions())?;
    let undecided_positions = PyList::new(py, &decoded.undecided)?;
    for m in decoded.models {
        if !m.fast {
            continue;
        }
        let c = m.columns;
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
            event_ids: optional_strings(py, &c.event_ids)?.unbind(),
            versions: optional_strings(py, &c.versions)?.unbind(),
        };
        fast.set_item(m.name.as_ref(), Bound::new(py, model)?)?;
    }
    Ok(NativeDecoded {
        dead: dead.unbind(),
        order: order.unbind(),
        slow_positions: slow_positions.unbind(),
        undecided_positions: undecided_positions.unbind(),
        fast: fast.unbind(),
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ks_statistic, m)?)?;
    m.add_function(wrap_pyfunction!(decode_predictions, m)?)?;
    m.add_class::<NativeDecoded>()?;
    m.add_class::<NativeModel>()?;
    Ok(())
}
