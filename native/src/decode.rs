//! Prediction records (contract §1) from JSON bytes to per-model columns, with the
//! validation of `stream_monitor.decode.common` and `decode.predictions` exactly.
//!
//! Each record is parsed once by serde_json (`float_roundtrip`: floats correctly rounded,
//! as orjson reads them), straight into the few fields validation reads; strings are
//! borrowed from the input (an escaped one is the only allocation), features go to one
//! scratch vector reused from record to record. A record then is
//!
//! - dead: it fails a check of the Python, in the Python's order, with its reason code and
//!   detail (`not_json` details carry serde_json's message, not orjson's);
//! - valid, of a model whose schema is known and every value of which is a number: *fast*,
//!   its numbers written into the model's columns here;
//! - valid otherwise: *slow*, left to the Python (class labels, RFC 3339 timestamps,
//!   string features, unknown models); one slow record makes its model's whole batch slow;
//! - *undecided*: where serde_json and orjson may read the bytes differently (see
//!   `Undecided`), left to the Python too.
//!
//! Nothing here knows Python: `lib.rs` wraps it.

pub use crate::columns::Columns;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// A JSON value as validation reads it: numbers and the strings it needs, the kind of the
/// rest. `Absent` is a missing key (Python's `obj.get` gives None for it, as for null).
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Absent,
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above i64::MAX that fits 64 bits (orjson: a Python int).
    UInt(u64),
    /// A number with a fraction or exponent, or an integer beyond 64 bits (orjson: a float).
    Float(f64),
    /// A string; its text only where validation reads it, else empty.
    Str(Cow<'a, str>),
    Object,
    List,
}

impl Value<'_> {
    /// The Python type name `decode.common.kind_of` gives the value orjson makes.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Absent | Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Object => "object",
            Value::List => "list",
        }
    }

    /// None in Python (absent or null).
    pub fn is_none(&self) -> bool {
        matches!(self, Value::Absent | Value::Null)
    }

    /// An int or a float (not a bool) as Python's `float()` makes it.
    pub fn number(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64), // round to nearest, ties to even, as float(int)
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    fn is_negative_zero(&self) -> bool {
        matches!(*self, Value::Float(f) if f == 0.0 && f.is_sign_negative())
    }
}

/// A feature's (name, value), in the order of the event's `features` object.
pub type Pair<'a> = (Cow<'a, str>, Value<'a>);

// ---------------------------------------------------------------- the serde front end -----

/// Any JSON value, checked and dropped. Strings are parsed as strings (serde_json's
/// `IgnoredAny` skips them without checking their escapes, and numbers without their range,
/// which orjson does check).
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Skip)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
}

/// A string, borrowed from the input unless it has escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// One value as a `Value`: `KEEP` keeps a string's text. With `pairs`, an object's
/// (name, value) pairs are appended there (the event's features).
struct Read<'s, 'de, const KEEP: bool> {
    pairs: Option<&'s mut Vec<Pair<'de>>>,
}

impl<'de, const KEEP: bool> Read<'_, 'de, KEEP> {
    fn scalar() -> Self {
        Read { pairs: None }
    }
}

impl<'de, const KEEP: bool> DeserializeSeed<'de> for Read<'_, 'de, KEEP> {
    type Value = Value<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, const KEEP: bool> Visitor<'de> for Read<'_, 'de, KEEP> {
    type Value = Value<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Borrowed(if KEEP { v } else { "" })))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::Str(if KEEP {
            Cow::Owned(v.to_owned())
        } else {
            Cow::Borrowed("")
        }))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        match self.pairs {
            Some(pairs) => {
                while let Some(name) = map.next_key_seed(Text)? {
                    let value = map.next_value_seed(Read::<false>::scalar())?;
                    pairs.push((name, value));
                }
            }
            None => {
                while map.next_key_seed(Skip)?.is_some() {
                    map.next_value_seed(Skip)?;
                }
            }
        }
        Ok(Value::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(Value::List)
    }
}

/// The top-level keys validation reads.
#[derive(Clone, Copy)]
enum Field {
    Model,
    Features,
    Prediction,
    Actual,
    Latency,
    Version,
    Timestamp,
    EventId,
    Other,
}

impl<'de> DeserializeSeed<'de> for Field {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Field {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        Ok(match v {
            "model" => Field::Model,
            "features" => Field::Features,
            "prediction" => Field::Prediction,
            "actual" => Field::Actual,
            "latency_ms" => Field::Latency,
            "model_version" => Field::Version,
            "timestamp" => Field::Timestamp,
            "event_id" => Field::EventId,
            _ => Field::Other,
        })
    }
}

/// The fields of an event object (the last of a repeated key, as in a Python dict).
#[derive(Debug)]
pub struct Fields<'a> {
    pub model: Value<'a>,
    /// `Object` when the features are in the scratch pairs.
    pub features: Value<'a>,
    pub prediction: Value<'a>,
    pub actual: Value<'a>,
    pub latency: Value<'a>,
    pub version: Value<'a>,
    pub timestamp: Value<'a>,
    pub event_id: Value<'a>,
}

/// What the JSON text of a record is.
// the fields are moved once into the batch's list of valid records: a box would cost an
// allocation per record
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed<'a> {
    NotJson(String),
    /// Not an object: the value itself (its kind names it).
    NotObject(Value<'a>),
    Object(Fields<'a>),
}

struct Event<'s, 'de> {
    pairs: &'s mut Vec<Pair<'de>>,
}

impl<'s, 'de> DeserializeSeed<'de> for Event<'s, 'de> {
    type Value = Parsed<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Event<'_, 'de> {
    type Value = Parsed<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Parsed<'de>, E> {
        Ok(Parsed::NotObject(Value::Null))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Parsed<'de>, E> {
        Ok(Parsed::NotObject(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Parsed<'de>, E> {
        Ok(Parsed::NotObject(Value::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Parsed<'de>, E> {
        Ok(Parsed::NotObject(
            i64::try_from(v).map_or(Value::UInt(v), Value::Int),
        ))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Parsed<'de>, E> {
        Ok(Parsed::NotObject(Value::Float(v)))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Parsed<'de>, E> {
        Ok(Parsed::NotObject(Value::Str(Cow::Borrowed(""))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed<'de>, A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(Parsed::NotObject(Value::List))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let start = self.pairs.len();
        let mut f = Fields {
            model: Value::Absent,
            features: Value::Absent,
            prediction: Value::Absent,
            actual: Value::Absent,
            latency: Value::Absent,
            version: Value::Absent,
            timestamp: Value::Absent,
            event_id: Value::Absent,
        };
        while let Some(field) = map.next_key_seed(Field::Other)? {
            match field {
                Field::Model => f.model = map.next_value_seed(Read::<true>::scalar())?,
                Field::Features => {
                    self.pairs.truncate(start); // a repeated key: the last one holds
                    f.features = map.next_value_seed(Read::<false> {
                        pairs: Some(&mut *self.pairs),
                    })?;
                }
                Field::Prediction => f.prediction = map.next_value_seed(Read::<false>::scalar())?,
                Field::Actual => f.actual = map.next_value_seed(Read::<false>::scalar())?,
                Field::Latency => f.latency = map.next_value_seed(Read::<false>::scalar())?,
                Field::Version => f.version = map.next_value_seed(Read::<true>::scalar())?,
                Field::Timestamp => f.timestamp = map.next_value_seed(Read::<false>::scalar())?,
                Field::EventId => f.event_id = map.next_value_seed(Read::<true>::scalar())?,
                Field::Other => map.next_value_seed(Skip)?,
            }
        }
        if !matches!(f.features, Value::Object) {
            self.pairs.truncate(start); // an object, then something else
        }
        Ok(Parsed::Object(f))
    }
}

/// Where serde_json and orjson may read the same bytes differently; such a record goes to
/// the Python, which reads it with orjson.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undecided {
    /// serde_json stops at 128 levels of nesting, orjson at 1024.
    Depth,
    /// serde_json reads the integer `-0` as the float -0.0, orjson as the int 0 (whose
    /// float is +0.0, and whose kind is int): a -0.0 that validation reads, in a text that
    /// has an integer `-0` somewhere (perhaps inside a string: only a false alarm).
    NegativeZero,
}

/// Parses one record's JSON text; the features' pairs are appended to `pairs` (which the
/// caller clears between records). Err for what the Python cannot be sure to agree with.
pub fn parse<'a>(bytes: &'a [u8], pairs: &mut Vec<Pair<'a>>) -> Result<Parsed<'a>, Undecided> {
    // orjson checks the whole input is UTF-8 (serde_json checks only what it reads as
    // strings); from a str, serde_json does not check it again
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Ok(Parsed::NotJson(format!(
                "str is not valid UTF-8 at byte {}",
                e.valid_up_to()
            )))
        }
    };
    let start = pairs.len();
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Event { pairs }
        .deserialize(&mut de)
        .and_then(|p| de.end().map(|()| p));
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            pairs.truncate(start);
            let message = e.to_string();
            if message.starts_with("recursion limit exceeded") {
                return Err(Undecided::Depth);
            }
            return Ok(Parsed::NotJson(message));
        }
    };
    let negative_zero = match &parsed {
        Parsed::NotJson(_) => false,
        Parsed::NotObject(v) => v.is_negative_zero(),
        Parsed::Object(f) => {
            [
                &f.features,
                &f.prediction,
                &f.actual,
                &f.latency,
                &f.version,
                &f.timestamp,
                &f.event_id,
            ]
            .iter()
            .any(|v| v.is_negative_zero())
                || pairs[start..].iter().any(|(_, v)| v.is_negative_zero())
        }
    };
    if negative_zero && has_integer_negative_zero(bytes) {
        pairs.truncate(start);
        return Err(Undecided::NegativeZero);
    }
    Ok(parsed)
}

/// Whether the text has `-0` followed by neither a fraction, an exponent nor a digit.
fn has_integer_negative_zero(bytes: &[u8]) -> bool {
    bytes.windows(2).enumerate().any(|(i, w)| {
        w == b"-0" && !matches!(bytes.get(i + 2), Some(b'.' | b'e' | b'E' | b'0'..=b'9'))
    })
}

// ---------------------------------------------------------------- validation --------------

/// A dead letter's detail; a model mismatch quotes both names with Python's `repr`, which
/// `lib.rs` forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail<'a> {
    Text(Cow<'static, str>),
    Mismatch { key: &'a str, model: Cow<'a, str> },
}

/// A record that fails validation, as `decode.common.readable_records` makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dead<'a> {
    pub index: usize,
    pub reason: &'static str,
    pub detail: Detail<'a>,
    /// The model when known: the key's, or the event's once it is read; "" else.
    pub model: Cow<'a, str>,
}

/// A record read: dead, or valid with its model and fields (features in the scratch pairs).
#[allow(clippy::large_enum_variant)] // as `Parsed`
#[derive(Debug)]
pub enum Verdict<'a> {
    Dead {
        reason: &'static str,
        detail: Detail<'a>,
        model: Cow<'a, str>,
    },
    Valid {
        model: Cow<'a, str>,
        fields: Fields<'a>,
    },
    Undecided(Undecided),
}

fn dead<'a>(
    reason: &'static str,
    detail: impl Into<Cow<'static, str>>,
    model: Cow<'a, str>,
) -> Verdict<'a> {
    Verdict::Dead {
        reason,
        detail: Detail::Text(detail.into()),
        model,
    }
}

/// One record through the checks of `key_model`, `read_object` and `_prediction_fields`,
/// in their order, up to the timestamp's type (a string one is the Python's to parse).
pub fn read_record<'a>(
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    pairs: &mut Vec<Pair<'a>>,
) -> Verdict<'a> {
    let hint: &'a str = match key {
        None => "",
        Some(k) => match std::str::from_utf8(k) {
            Ok(s) => s,
            Err(_) => return dead("bad_key", "message key is not UTF-8", Cow::Borrowed("")),
        },
    };
    let hinted = || Cow::Borrowed(hint);
    let Some(bytes) = value else {
        return dead("empty", "message has no value", hinted());
    };
    let f = match parse(bytes, pairs) {
        Err(u) => return Verdict::Undecided(u),
        Ok(Parsed::NotJson(message)) => {
            return dead(
                "not_json",
                format!("value is not JSON: {message}"),
                hinted(),
            )
        }
        Ok(Parsed::NotObject(v)) => {
            let detail = format!("value is a JSON {}, expected an object", v.kind());
            return dead("not_object", detail, hinted());
        }
        Ok(Parsed::Object(f)) => f,
    };
    let model: Cow<'a, str> = match &f.model {
        Value::Absent | Value::Null => Cow::Borrowed(hint),
        Value::Str(m) if !m.is_empty() => {
            if !hint.is_empty() && m.as_ref() != hint {
                return Verdict::Dead {
                    reason: "model_mismatch",
                    detail: Detail::Mismatch {
                        key: hint,
                        model: m.clone(),
                    },
                    model: hinted(),
                };
            }
            m.clone()
        }
        _ => return dead("bad_type", "model must be a non-empty string", hinted()),
    };
    if model.is_empty() {
        let detail = "no model: neither a message key nor a model field";
        return dead("missing_model", detail, model);
    }
    match &f.features {
        Value::Object => {}
        v if v.is_none() => return dead("missing_features", "features is missing", model),
        v => {
            let detail = format!("features must be an object, got {}", v.kind());
            return dead("bad_type", detail, model);
        }
    }
    match &f.prediction {
        Value::Int(_) | Value::UInt(_) | Value::Float(_) | Value::Str(_) => {}
        v if v.is_none() => return dead("missing_prediction", "prediction is missing", model),
        v => {
            let detail = format!("prediction must be a number or a string, got {}", v.kind());
            return dead("bad_type", detail, model);
        }
    }
    match &f.actual {
        Value::Absent | Value::Null | Value::Int(_) | Value::UInt(_) | Value::Float(_) => {}
        Value::Str(_) => {}
        v => {
            let detail = format!("actual must be a number or a string, got {}", v.kind());
            return dead("bad_type", detail, model);
        }
    }
    match &f.latency {
        Value::Absent | Value::Null | Value::Int(_) | Value::UInt(_) | Value::Float(_) => {}
        v => {
            let detail = format!("latency_ms must be a number, got {}", v.kind());
            return dead("bad_type", detail, model);
        }
    }
    match &f.version {
        Value::Absent | Value::Null | Value::Str(_) => {}
        v => {
            let detail = format!("model_version must be a string, got {}", v.kind());
            return dead("bad_type", detail, model);
        }
    }
    match &f.timestamp {
        Value::Absent | Value::Null | Value::Int(_) | Value::UInt(_) | Value::Float(_) => {}
        Value::Str(_) => {} // RFC 3339: the Python parses it (the record is slow)
        v => {
            let detail = format!(
                "timestamp must be a number or an RFC 3339 string, got {}",
                v.kind()
            );
            return dead("bad_type", detail, model);
        }
    }
    Verdict::Valid { model, fields: f }
}

/// The key a valid record is routed by when versions keep their own windows: its model,
/// or `model@version` for a record with a non-empty `model_version`.
pub fn route_key<'a>(model: Cow<'a, str>, version: &Value<'a>) -> Cow<'a, str> {
    match version {
        Value::Str(v) if !v.is_empty() => {
            let mut key = String::with_capacity(model.len() + 1 + v.len());
            write_route_key(&mut key, &model, v);
            Cow::Owned(key)
        }
        _ => model,
    }
}

/// Appends `model@version` to `out`: the one place a version's key is spelled.
fn write_route_key(out: &mut String, model: &str, version: &str) {
    out.push_str(model);
    out.push('@');
    out.push_str(version);
}

/// `event_id` as `decode_batch` keeps it: a non-empty string, an int as its decimal text.
pub fn event_id<'a>(v: &Value<'a>) -> Option<Cow<'a, str>> {
    match v {
        Value::Str(s) if !s.is_empty() => Some(s.clone()),
        Value::Int(i) => Some(Cow::Owned(i.to_string())),
        Value::UInt(u) => Some(Cow::Owned(u.to_string())),
        _ => None,
    }
}

// ---------------------------------------------------------------- a batch -----------------

/// FNV-1a: a fast hash for the few short names of a batch's models and features.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// A model's numeric feature names (the columns, in order) and their look-up. It owns its
/// names: an enrolled model's is made once and kept (`fleet.rs`), not made again for each
/// batch.
#[derive(Debug)]
pub struct Schema {
    width: usize,
    column: FastMap<Box<str>, usize>,
    /// (column, earlier column of the same name): a name given twice fills both
    copies: Vec<(usize, usize)>,
}

impl Schema {
    /// `names`: the columns in order; None for a name that no JSON key can equal (a Python
    /// string with a lone surrogate): its column stays missing.
    pub fn new<'s, I: IntoIterator<Item = Option<&'s str>>>(names: I) -> Self {
        let mut column = FastMap::default();
        let mut copies = Vec::new();
        let mut width = 0;
        for (j, name) in names.into_iter().enumerate() {
            width = j + 1;
            let Some(name) = name else { continue };
            match column.get(name) {
                Some(&first) => copies.push((j, first)),
                None => {
                    column.insert(Box::from(name), j);
                }
            }
        }
        Schema {
            width,
            column,
            copies,
        }
    }
}

/// How the decoder reads a model of the batch into columns: by its schema, keeping its
/// events' ids or not (the fleet's models need none).
#[derive(Clone, Copy)]
pub struct Reading<'s> {
    pub schema: &'s Schema,
    pub event_ids: bool,
}

/// One model of a batch: its columns while it is fast (and its events' ids when they are
/// kept), else its valid records' positions.
pub struct Model<'a> {
    pub name: Cow<'a, str>,
    pub fast: bool,
    pub positions: Vec<usize>,
    pub columns: Columns,
    pub event_ids: Vec<Option<Cow<'a, str>>>,
}

/// A batch read: dead letters and undecided records in batch order, every model with a
/// valid record in first-seen order.
#[derive(Default)]
pub struct Decoded<'a> {
    pub dead: Vec<Dead<'a>>,
    pub models: Vec<Model<'a>>,
    pub undecided: Vec<usize>,
}

impl Decoded<'_> {
    /// The positions of the slow models' valid records, sorted.
    pub fn slow_positions(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .models
            .iter()
            .filter(|m| !m.fast)
            .flat_map(|m| m.positions.iter().copied())
            .collect();
        out.sort_unstable();
        out
    }
}

/// A float of the feature row, or None when the value is not a number the arrays take
/// as numpy would (a string, an object, a list: the Python's to convert or reject).
#[inline]
fn feature_number(v: &Value<'_>) -> Option<f64> {
    match *v {
        Value::Absent | Value::Null => Some(f64::NAN),
        Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
        Value::Int(i) => Some(i as f64),
        Value::UInt(u) => Some(u as f64),
        Value::Float(f) => Some(f),
        Value::Str(_) | Value::Object | Value::List => None,
    }
}

/// Appends a valid record to its model's columns; false when it cannot be fast.
fn append_fast<'a>(
    c: &mut Columns,
    schema: &Schema,
    index: usize,
    f: &Fields<'a>,
    pairs: &[Pair<'a>],
    record_time: Option<f64>,
    ok: &mut Vec<bool>,
) -> bool {
    let Some(prediction) = f.prediction.number() else {
        return false; // a class label
    };
    let actual = match &f.actual {
        v if v.is_none() => f64::NAN,
        v => match v.number() {
            Some(a) => a,
            None => return false,
        },
    };
    let timestamp = match &f.timestamp {
        v if v.is_none() => record_time.unwrap_or(f64::NAN),
        v => match v.number() {
            Some(t) => t,
            None => return false, // RFC 3339
        },
    };
    let start = c.features.len();
    c.features.resize(start + schema.width, f64::NAN);
    let row = &mut c.features[start..];
    ok.clear();
    ok.resize(schema.width, true);
    for (name, value) in pairs {
        if let Some(&j) = schema.column.get(name.as_ref()) {
            match feature_number(value) {
                Some(x) => {
                    row[j] = x;
                    ok[j] = true;
                }
                None => ok[j] = false, // unless a later pair of the same name is a number
            }
        }
    }
    for &(j, first) in &schema.copies {
        row[j] = row[first];
        ok[j] = ok[first];
    }
    if ok.iter().any(|&good| !good) {
        c.features.truncate(start);
        return false;
    }
    c.positions.push(index as i64);
    c.prediction.push(prediction);
    c.actual.push(actual);
    c.latency_ms.push(f.latency.number().unwrap_or(f64::NAN));
    c.timestamp.push(timestamp);
    c.push_version(match &f.version {
        Value::Str(s) => Some(s.as_ref()),
        _ => None,
    });
    true
}

/// Why a batch's arguments do not fit together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LengthError {
    pub field: &'static str,
    pub got: usize,
    pub records: usize,
}

impl fmt::Display for LengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} items for a batch of {} records (values)",
            self.field, self.got, self.records
        )
    }
}

impl std::error::Error for LengthError {}

/// A valid record waiting for its model's schema.
struct Valid<'a> {
    index: usize,
    model: usize,
    fields: Fields<'a>,
    pairs: std::ops::Range<usize>,
}

/// A batch after validation: what `columns` needs, and the models whose schemas it needs
/// (`models`, first seen first), so that only those are looked up.
pub struct Validated<'a> {
    dead: Vec<Dead<'a>>,
    undecided: Vec<usize>,
    pub models: Vec<Cow<'a, str>>,
    counts: Vec<usize>,
    valid: Vec<Valid<'a>>,
    pairs: Vec<Pair<'a>>,
}

/// The records a thread reads must be at least this many: starting and joining a thread
/// costs 30-80 µs on a busy 2-core machine, reading a record of 20 features about 1.5.
const RECORDS_PER_THREAD: usize = 256;

/// A stretch of a batch's records read (`read_record`): each record's verdict and the
/// range of its pairs in the stretch's own `pairs`.
struct Part<'a> {
    verdicts: Vec<(Verdict<'a>, std::ops::Range<usize>)>,
    pairs: Vec<Pair<'a>>,
}

fn read_part<'a>(
    values: &[Option<&'a [u8]>],
    keys: &[Option<&'a [u8]>],
    records: std::ops::Range<usize>,
) -> Part<'a> {
    let mut part = Part {
        verdicts: Vec::with_capacity(records.len()),
        pairs: Vec::new(),
    };
    for i in records {
        let start = part.pairs.len();
        let verdict = read_record(keys[i], values[i], &mut part.pairs);
        if !matches!(verdict, Verdict::Valid { .. }) {
            part.pairs.truncate(start);
        }
        part.verdicts.push((verdict, start..part.pairs.len()));
    }
    part
}

/// The records read in consecutive stretches, one per thread (the caller's the first);
/// a panic in a helper is raised again here.
fn read_parts<'a>(
    values: &[Option<&'a [u8]>],
    keys: &[Option<&'a [u8]>],
    threads: usize,
) -> Vec<Part<'a>> {
    let records = values.len();
    let threads = threads.min(records / RECORDS_PER_THREAD).max(1);
    if threads == 1 {
        return vec![read_part(values, keys, 0..records)];
    }
    let cut = |t: usize| records * t / threads;
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .map(|t| scope.spawn(move || read_part(values, keys, cut(t)..cut(t + 1))))
            .collect();
        let mut parts = vec![read_part(values, keys, 0..cut(1))];
        for helper in helpers {
            parts.push(
                helper
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
        }
        parts
    })
}

/// Every record of a batch through validation: `values` and `keys` in batch order;
/// `timestamps` is checked for its length only (`columns` reads it).
///
/// With `split_versions`, a record that carries a non-empty `model_version` is routed by
/// `model@version` (each version keeps its own window); its dead letters keep the model.
pub fn validate<'a>(
    values: &[Option<&'a [u8]>],
    keys: &[Option<&'a [u8]>],
    timestamps: usize,
    split_versions: bool,
) -> Result<Validated<'a>, LengthError> {
    validate_on(values, keys, timestamps, split_versions, 1)
}

/// `validate` with the records read on up to `threads` threads, each a stretch of them
/// (the JSON parsing, most of a batch's decoding); they are routed in batch order after,
/// so the outcome is the same on any number.
pub fn validate_on<'a>(
    values: &[Option<&'a [u8]>],
    keys: &[Option<&'a [u8]>],
    timestamps: usize,
    split_versions: bool,
    threads: usize,
) -> Result<Validated<'a>, LengthError> {
    let records = values.len();
    for (field, got) in [("keys", keys.len()), ("timestamps", timestamps)] {
        if got != records {
            return Err(LengthError {
                field,
                got,
                records,
            });
        }
    }
    let mut out = Validated {
        dead: Vec::new(),
        undecided: Vec::new(),
        models: Vec::new(),
        counts: Vec::new(),
        valid: Vec::with_capacity(records),
        pairs: Vec::new(),
    };
    let mut by_name: FastMap<Cow<'a, str>, usize> = FastMap::default();
    let mut route = String::new();
    let records = read_parts(values, keys, threads)
        .into_iter()
        .flat_map(|part| {
            let base = out.pairs.len();
            if base == 0 {
                out.pairs = part.pairs;
            } else {
                out.pairs.extend(part.pairs);
            }
            let shift = move |r: std::ops::Range<usize>| r.start + base..r.end + base;
            part.verdicts.into_iter().map(move |(v, r)| (v, shift(r)))
        });
    for (i, (verdict, pairs)) in records.enumerate() {
        match verdict {
            Verdict::Dead {
                reason,
                detail,
                model,
            } => {
                out.dead.push(Dead {
                    index: i,
                    reason,
                    detail,
                    model,
                });
            }
            Verdict::Undecided(_) => {
                out.undecided.push(i);
            }
            Verdict::Valid { model, fields } => {
                // the key is looked up in a reused buffer: a `model@version` is formed into
                // a string of its own only for the model's first record
                let key = match (&fields.version, split_versions) {
                    (Value::Str(v), true) if !v.is_empty() => {
                        route.clear();
                        write_route_key(&mut route, &model, v);
                        route.as_str()
                    }
                    _ => model.as_ref(),
                };
                let m = match by_name.get(key) {
                    Some(&m) => m,
                    None => {
                        let model = if split_versions {
                            route_key(model, &fields.version)
                        } else {
                            model
                        };
                        by_name.insert(model.clone(), out.models.len());
                        out.models.push(model);
                        out.counts.push(0);
                        out.models.len() - 1
                    }
                };
                out.counts[m] += 1;
                out.valid.push(Valid {
                    index: i,
                    model: m,
                    fields,
                    pairs,
                });
            }
        }
    }
    Ok(out)
}

/// The validated batch as columns: `readings[m]` says how `validated.models[m]` is read
/// (None: its schema is not known, its records slow); `timestamps`: each record's own time.
/// A fast model's columns are taken from `spare` while it has some (refilled, their
/// buffers kept); a model that turns slow gives its columns back to it.
pub fn columns<'a>(
    validated: Validated<'a>,
    readings: &[Option<Reading<'_>>],
    timestamps: &[Option<f64>],
    spare: &mut Vec<Columns>,
) -> Decoded<'a> {
    let Validated {
        dead,
        undecided,
        models: names,
        counts,
        valid,
        pairs,
    } = validated;
    let reading = |m: usize| readings.get(m).copied().flatten();
    let mut models: Vec<Model<'a>> = names
        .into_iter()
        .enumerate()
        .map(|(m, name)| {
            let mut columns = Columns::default();
            let mut event_ids = Vec::new();
            let read = reading(m);
            if let Some(r) = read {
                columns = spare.pop().unwrap_or_default();
                columns.reset(counts[m], r.schema.width);
                if r.event_ids {
                    event_ids.reserve(counts[m]);
                }
            }
            Model {
                name,
                fast: read.is_some(),
                positions: Vec::new(),
                columns,
                event_ids,
            }
        })
        .collect();
    let mut ok = Vec::new();
    for v in &valid {
        let entry = &mut models[v.model];
        let Some(r) = reading(v.model).filter(|_| entry.fast) else {
            entry.positions.push(v.index);
            continue;
        };
        let record_time = timestamps.get(v.index).copied().flatten();
        let fits = append_fast(
            &mut entry.columns,
            r.schema,
            v.index,
            &v.fields,
            &pairs[v.pairs.clone()],
            record_time,
            &mut ok,
        );
        if fits {
            if r.event_ids {
                entry.event_ids.push(event_id(&v.fields.event_id));
            }
            continue;
        }
        // its events are the Python's, these and the ones before
        entry.fast = false;
        let columns = std::mem::take(&mut entry.columns);
        entry.positions = columns.positions.iter().map(|&p| p as usize).collect();
        entry.positions.push(v.index);
        entry.event_ids = Vec::new();
        spare.push(columns);
    }
    Decoded {
        dead,
        models,
        undecided,
    }
}

/// `validate` then `columns`, with the schemas as a map (model -> feature names).
pub fn decode_batch<'a>(
    values: &[Option<&'a [u8]>],
    keys: &[Option<&'a [u8]>],
    timestamps: &[Option<f64>],
    schemas: &HashMap<String, Vec<String>>,
    split_versions: bool,
) -> Result<Decoded<'a>, LengthError> {
    decode_batch_on(values, keys, timestamps, schemas, split_versions, 1)
}

/// `decode_batch` with the records read on up to `threads` threads (`validate_on`).
pub fn decode_batch_on<'a>(
    values: &[Option<&'a [u8]>],
    keys: &[Option<&'a [u8]>],
    timestamps: &[Option<f64>],
    schemas: &HashMap<String, Vec<String>>,
    split_versions: bool,
    threads: usize,
) -> Result<Decoded<'a>, LengthError> {
    let validated = validate_on(values, keys, timestamps.len(), split_versions, threads)?;
    let found: Vec<Option<Schema>> = validated
        .models
        .iter()
        .map(|m| {
            schemas
                .get(m.as_ref())
                .map(|names| Schema::new(names.iter().map(|n| Some(n.as_str()))))
        })
        .collect();
    let readings: Vec<Option<Reading<'_>>> = found
        .iter()
        .map(|schema| {
            schema.as_ref().map(|schema| Reading {
                schema,
                event_ids: true,
            })
        })
        .collect();
    Ok(columns(validated, &readings, timestamps, &mut Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(key: Option<&str>, value: &str) -> (String, String) {
        let mut pairs = Vec::new();
        match read_record(key.map(str::as_bytes), Some(value.as_bytes()), &mut pairs) {
            Verdict::Dead { reason, detail, .. } => (
                reason.to_string(),
                match detail {
                    Detail::Text(t) => t.into_owned(),
                    Detail::Mismatch { key, model } => format!("{key} != {model}"),
                },
            ),
            Verdict::Valid { model, .. } => ("valid".into(), model.into_owned()),
            Verdict::Undecided(u) => ("undecided".into(), format!("{u:?}")),
        }
    }

    fn parsed(text: &str) -> Parsed<'_> {
        parse(text.as_bytes(), &mut Vec::new()).unwrap()
    }

    #[test]
    fn numbers_keep_the_kind_orjson_gives_them() {
        let scalar = |t| match parsed(t) {
            Parsed::NotObject(v) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(scalar("1"), Value::Int(1));
        assert_eq!(scalar("-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(scalar("18446744073709551615"), Value::UInt(u64::MAX));
        // beyond 64 bits: a float, correctly rounded (as Python's float(int))
        assert_eq!(
            scalar("18446744073709551616"),
            Value::Float(18446744073709551616.0)
        );
        assert_eq!(
            scalar("-9223372036854775809"),
            Value::Float(-9223372036854775808.0)
        );
        assert_eq!(scalar("1E+2"), Value::Float(100.0));
        assert_eq!(scalar("5e-324"), Value::Float(5e-324));
        assert_eq!(
            scalar("9007199254740993.0"),
            Value::Float(9007199254740992.0)
        );
        assert_eq!(scalar("1e-400"), Value::Float(0.0));
        assert_eq!(scalar("1.0").kind(), "float");
        assert_eq!(scalar("true").kind(), "bool");
        assert_eq!(scalar("[1, {\"a\": 2}]").kind(), "list");
        assert_eq!(scalar("\"x\"").kind(), "str");
    }

    #[test]
    fn what_orjson_rejects_is_not_json() {
        for text in [
            "1e400",                // infinite
            "\"\\ud800\"",          // a lone surrogate
            "{\"a\": \"\\udc00\"}", // ignored, still checked
            "{\"a\": [1e999]}",
            "{\"a\":1,}",
            "01",
            "NaN",
            "{} x",
            "\u{feff}{}",
            "\"\u{1f}\"",
            "",
        ] {
            assert!(
                matches!(parsed(text), Parsed::NotJson(_)),
                "{text:?}: {:?}",
                parsed(text)
            );
        }
        let mut pairs = Vec::new();
        assert!(matches!(
            parse(b"{\"a\": \"\xff\"}", &mut pairs),
            Ok(Parsed::NotJson(_))
        ));
    }

    #[test]
    fn undecided_where_the_parsers_differ() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            parse(deep.as_bytes(), &mut Vec::new()).unwrap_err(),
            Undecided::Depth
        );
        let e = r#"{"features": {}, "prediction": -0}"#;
        assert_eq!(
            parse(e.as_bytes(), &mut Vec::new()).unwrap_err(),
            Undecided::NegativeZero
        );
        // a float -0.0 with no integer -0 in the text is read as it is
        let e = r#"{"features": {}, "prediction": -0.0}"#;
        match parse(e.as_bytes(), &mut Vec::new()).unwrap() {
            Parsed::Object(f) => assert!(f.prediction.is_negative_zero()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn checks_in_the_python_order() {
        assert_eq!(verdict(None, "{}").0, "missing_model");
        assert_eq!(
            verdict(Some("m"), "[]").1,
            "value is a JSON list, expected an object"
        );
        assert_eq!(
            verdict(Some("m"), "-0.5").1,
            "value is a JSON float, expected an object"
        );
        assert_eq!(verdict(Some("m"), r#"{"model": ""}"#).0, "bad_type");
        assert_eq!(
            verdict(Some("m"), r#"{"model": "n"}"#),
            ("model_mismatch".into(), "m != n".into())
        );
        assert_eq!(
            verdict(Some("m"), r#"{"prediction": true}"#).0,
            "missing_features"
        );
        assert_eq!(
            verdict(Some("m"), r#"{"features": 3, "prediction": true}"#).1,
            "features must be an object, got int"
        );
        assert_eq!(
            verdict(Some("m"), r#"{"features": {}, "prediction": true}"#).1,
            "prediction must be a number or a string, got bool"
        );
        assert_eq!(
            verdict(
                Some("m"),
                r#"{"features": {}, "prediction": 1, "actual": {}}"#
            )
            .1,
            "actual must be a number or a string, got object"
        );
        assert_eq!(
            verdict(
                Some("m"),
                r#"{"features": {}, "prediction": 1, "latency_ms": "1"}"#
            )
            .1,
            "latency_ms must be a number, got str"
        );
        assert_eq!(
            verdict(
                Some("m"),
                r#"{"features": {}, "prediction": 1, "model_version": 2}"#
            )
            .1,
            "model_version must be a string, got int"
        );
        assert_eq!(
            verdict(
                Some("m"),
                r#"{"features": {}, "prediction": 1, "timestamp": []}"#
            )
            .1,
            "timestamp must be a number or an RFC 3339 string, got list"
        );
        // the last of a repeated key holds
        let v = r#"{"features": 1, "features": {}, "prediction": "x", "prediction": 2}"#;
        assert_eq!(verdict(Some("m"), v), ("valid".into(), "m".into()));
        let mut pairs = Vec::new();
        assert!(matches!(
            read_record(Some(b"\xff"), None, &mut pairs),
            Verdict::Dead {
                reason: "bad_key",
                ..
            }
        ));
    }

    #[test]
    fn a_batch_in_columns() {
        let schemas = HashMap::from([("m".to_string(), vec!["a".into(), "b".into(), "a".into()])]);
        let values: Vec<&[u8]> = vec![
            br#"{"features": {"a": 1, "b": true, "c": "x"}, "prediction": 0.5, "event_id": 7}"#,
            br#"{"features": {"b": null, "a": "s", "a": 2.5}, "prediction": 1, "actual": 2,
                "timestamp": 10, "model_version": "v\u0031", "event_id": ""}"#,
            b"not json",
            br#"{"model": "other", "features": {}, "prediction": "cat"}"#,
        ];
        let values: Vec<Option<&[u8]>> = values.into_iter().map(Some).collect();
        let keys = vec![Some(&b"m"[..]), Some(b"m"), None, None];
        let times = vec![Some(3.0), None, None, None];
        let d = decode_batch(&values, &keys, &times, &schemas, false).unwrap();
        assert_eq!(d.dead.len(), 1);
        assert_eq!((d.dead[0].index, d.dead[0].reason), (2, "not_json"));
        assert_eq!(d.models.len(), 2);
        let m = &d.models[0];
        assert!(m.fast);
        let c = &m.columns;
        assert_eq!(c.positions, vec![0, 1]);
        let bits: Vec<u64> = c.features.iter().map(|x| x.to_bits()).collect();
        let want: Vec<u64> = [1.0, 1.0, 1.0, 2.5, f64::NAN, 2.5]
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(bits, want);
        assert_eq!(c.prediction, vec![0.5, 1.0]);
        assert!(c.actual[0].is_nan() && c.actual[1] == 2.0);
        assert_eq!(c.timestamp, vec![3.0, 10.0]);
        assert_eq!(m.event_ids, vec![Some(Cow::Borrowed("7")), None]);
        assert_eq!(c.versions().collect::<Vec<_>>(), vec![None, Some("v1")]);
        assert!(!d.models[1].fast);
        assert_eq!(d.slow_positions(), vec![3]);
        let err = decode_batch(&values, &keys[..1], &times, &schemas, false)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "keys: 1 items for a batch of 4 records (values)"
        );
    }

    #[test]
    fn versions_split_into_their_own_keys_when_asked() {
        let values: Vec<Option<&[u8]>> = vec![
            Some(br#"{"features": {"a": 1}, "prediction": 1, "model_version": "v1"}"#),
            Some(br#"{"features": {"a": 1}, "prediction": 1, "model_version": "v2"}"#),
            Some(br#"{"features": {"a": 1}, "prediction": 1, "model_version": ""}"#),
            Some(br#"{"features": {"a": 1}, "prediction": 1}"#),
            Some(br#"{"features": 1, "prediction": 1, "model_version": "v1"}"#),
            // a version's later records find the key its first one made
            Some(br#"{"features": {"a": 2}, "prediction": 1, "model_version": "v1"}"#),
            Some(br#"{"features": {"a": 2}, "prediction": 1, "model_version": "v2"}"#),
        ];
        let keys = vec![Some(&b"m"[..]); 7];
        let split = validate(&values, &keys, 7, true).unwrap();
        assert_eq!(split.models, vec!["m@v1", "m@v2", "m"]);
        assert_eq!(split.counts, vec![2, 2, 2]);
        let routed: Vec<usize> = split.valid.iter().map(|v| v.model).collect();
        assert_eq!(routed, vec![0, 1, 2, 2, 0, 1]);
        assert_eq!(split.dead[0].model, "m"); // a dead letter keeps the model
        let shared = validate(&values, &keys, 7, false).unwrap();
        assert_eq!(shared.models, vec!["m"]);
    }

    #[test]
    fn records_read_on_several_threads_decode_as_on_one() {
        let kinds = [
            r#"{"model": "m1", "features": {"a": 1.5, "b": -2}, "prediction": 0.25}"#,
            r#"{"features": {"a": 3, "b": 1e-3}, "prediction": 1, "model_version": "v1"}"#,
            r#"{"features": {"a": 1"#,
            r#"{"model": "m1", "features": 1, "prediction": 1}"#,
            r#"{"model": "m1", "features": {"a": -0}, "prediction": 1}"#,
            r#"{"model": "m3", "features": {"a": "x"}, "prediction": 1}"#,
            r#"{"model": "other", "features": {"a": 1}, "prediction": 1}"#,
            r#"{"features": {"b": 7}, "prediction": 2, "model_version": "v2", "timestamp": 4.5}"#,
            r#"[1, 2]"#,
        ];
        let n = 1_300;
        let texts: Vec<String> = (0..n)
            .map(|i| kinds[(i * 7 + i / 9) % kinds.len()].replace("1.5", &format!("{i}.5")))
            .collect();
        let values: Vec<Option<&[u8]>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (i % 97 != 5).then_some(t.as_bytes()))
            .collect();
        let keys: Vec<Option<&[u8]>> = (0..n)
            .map(|i| Some(if i % 2 == 0 { &b"m1"[..] } else { &b"m2"[..] }))
            .collect();
        let times: Vec<Option<f64>> = (0..n).map(|i| (i % 3 == 0).then_some(i as f64)).collect();
        let names = |fs: &[&str]| fs.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        let schemas = HashMap::from([
            ("m1".to_string(), names(&["a", "b"])),
            ("m2@v1".to_string(), names(&["b", "a"])),
            ("m3".to_string(), names(&["a"])),
        ]);
        let one = decode_batch(&values, &keys, &times, &schemas, true).unwrap();
        assert!(one.dead.len() > 100 && one.undecided.len() > 10 && one.models.len() >= 4);
        for threads in [2, 3, 8] {
            let many = decode_batch_on(&values, &keys, &times, &schemas, true, threads).unwrap();
            assert_eq!(many.dead, one.dead);
            assert_eq!(many.undecided, one.undecided);
            assert_eq!(many.models.len(), one.models.len());
            for (a, b) in many.models.iter().zip(&one.models) {
                assert_eq!(
                    (&a.name, a.fast, &a.positions),
                    (&b.name, b.fast, &b.positions)
                );
                assert_eq!(a.event_ids, b.event_ids);
                let bits = |c: &Columns| c.features.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a.columns), bits(&b.columns));
                assert_eq!(a.columns.positions, b.columns.positions);
                assert_eq!(a.columns.prediction, b.columns.prediction);
            }
        }
    }

    #[test]
    fn one_slow_record_makes_its_model_slow() {
        let schemas = HashMap::from([("m".to_string(), vec!["a".to_string()])]);
        let values: Vec<Option<&[u8]>> = vec![
            Some(br#"{"features": {"a": 1}, "prediction": 1}"#),
            Some(br#"{"features": {"a": [1]}, "prediction": 1}"#),
            Some(br#"{"features": {"a": 1}, "prediction": 1}"#),
        ];
        let keys = vec![Some(&b"m"[..]); 3];
        let d = decode_batch(&values, &keys, &[None; 3], &schemas, false).unwrap();
        assert!(!d.models[0].fast);
        assert_eq!(d.slow_positions(), vec![0, 1, 2]);
        assert_eq!(d.models[0].columns, Columns::default());
        assert!(d.models[0].event_ids.is_empty());
    }
}
