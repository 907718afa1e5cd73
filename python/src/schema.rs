//! [`Schema`]: `ltp`'s schemas (`demo`, `openflow`, `none`, or a TOML file; ltp/src/schema.rs)
//! from Python: message names and body fields per type, decoding a body into a dict of
//! named fields and encoding one back. Integers are `int`, floats `float`, `bool` fields
//! `bool`, `string` fields `str`, and `bytes`/`bytes:N` fields `bytes` (where `ltp`'s JSON
//! has hex).

use ltp::json::{from_hex, to_hex};
use ltp::schema::{FieldKind, MessageDef};
use ltprotocol::{ByteOrder, MessageType};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyString};
use serde_json::{Map, Number, Value};

use crate::exceptions::{EncodeError, Kind, SchemaError};
use crate::layout::Layout;

/// A schema bound to a layout's byte order. Immutable.
#[pyclass(frozen, module = "ltprotocol._native")]
#[derive(Debug)]
pub(crate) struct Schema {
    inner: ltp::schema::Schema,
    order: ByteOrder,
}

#[pymethods]
impl Schema {
    /// The schema `spec` names: `"demo"`, `"openflow"`, `"none"`, or the path of a TOML schema
    /// file, read as `ltp --schema` reads it; numbers in `layout`'s byte order unless a
    /// field says otherwise.
    ///
    /// Raises `SchemaError` naming the file and line of a problem.
    #[new]
    fn new(spec: &str, layout: &Layout) -> PyResult<Self> {
        let inner =
            ltp::schema::Schema::load(spec).map_err(|err| SchemaError::new_err(err.to_string()))?;
        Ok(Self {
            inner,
            order: layout.inner.byte_order(),
        })
    }

    /// The names of the messages it knows, in the order declared.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.inner
            .messages()
            .iter()
            .map(|m| m.name().to_owned())
            .collect()
    }

    /// The type number of the message called `name`, or `None`.
    fn type_of(&self, name: &str) -> Option<i128> {
        self.inner
            .message_named(name)
            .map(|m| m.message_type().value())
    }

    /// The name of type `message_type`, or `None`.
    fn name_of(&self, message_type: i128) -> Option<String> {
        self.inner
            .name_of(MessageType::new(message_type))
            .map(str::to_owned)
    }

    /// `(name, fields)` for a body of type `message_type`, or `None` for a type the schema
    /// does not know.
    ///
    /// Raises `DecodeError` naming the field when the body does not fit the type.
    fn decode<'py>(
        &self,
        py: Python<'py>,
        message_type: i128,
        body: &[u8],
    ) -> PyResult<Option<(String, Bound<'py, PyDict>)>> {
        let Some(def) = self.inner.message_of(MessageType::new(message_type)) else {
            return Ok(None);
        };
        let fields = def.decode(body, self.order).map_err(|reason| {
            Kind::DecodeError.new_err(format!("{} (type {message_type}): {reason}", def.name()))
        })?;
        Ok(Some((def.name().to_owned(), to_python(py, def, fields)?)))
    }

    /// `(message_type, body)` of the message called `name` with `fields` (a dict by field
    /// name; a trailing `string` or `bytes` field may be left out).
    ///
    /// Raises `EncodeError` naming the missing, extra or out-of-range field.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        fields: &Bound<'py, PyDict>,
    ) -> PyResult<(i128, Bound<'py, PyBytes>)> {
        let def = self.inner.message_named(name);
        let mut map = Map::new();
        for (key, value) in fields.iter() {
            let key: String = key.extract()?;
            let kind = def
                .and_then(|d| d.fields().iter().find(|f| f.name() == key))
                .map(|f| f.kind());
            let json = to_json(&value, kind).map_err(|reason| {
                EncodeError::new_err(format!("{name}: field `{key}`: {reason}"))
            })?;
            map.insert(key, json);
        }
        let (message_type, body) = self
            .inner
            .encode(name, &map, self.order)
            .map_err(|reason| EncodeError::new_err(format!("{name}: {reason}")))?;
        Ok((message_type.value(), PyBytes::new(py, &body)))
    }

    fn __repr__(&self) -> String {
        format!("Schema({})", self.names().join(", "))
    }
}

/// The decoded JSON fields as Python values; `bytes` fields from hex to `bytes`.
fn to_python<'py>(
    py: Python<'py>,
    def: &MessageDef,
    fields: Map<String, Value>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in fields {
        let kind = def
            .fields()
            .iter()
            .find(|f| f.name() == name)
            .map(|f| f.kind());
        let is_bytes = matches!(kind, Some(FieldKind::Bytes(_) | FieldKind::RestBytes));
        let object = match value {
            Value::String(hex) if is_bytes => {
                let bytes = from_hex(&hex).map_err(|e| Kind::DecodeError.new_err(e))?;
                PyBytes::new(py, &bytes).into_any()
            }
            // Non-finite floats, which JSON spells as strings.
            Value::String(text) if matches!(kind, Some(FieldKind::F32 | FieldKind::F64)) => {
                PyFloat::new(py, text.parse::<f64>().unwrap_or(f64::NAN)).into_any()
            }
            Value::String(text) => PyString::new(py, &text).into_any(),
            Value::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
            Value::Number(n) => number(py, &n)?,
            other => PyString::new(py, &other.to_string()).into_any(),
        };
        dict.set_item(name, object)?;
    }
    Ok(dict)
}

fn number<'py>(py: Python<'py>, n: &Number) -> PyResult<Bound<'py, PyAny>> {
    if let Some(i) = n.as_i64() {
        return Ok(i.into_pyobject(py)?.into_any());
    }
    if let Some(u) = n.as_u64() {
        return Ok(u.into_pyobject(py)?.into_any());
    }
    Ok(PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any())
}

/// A Python value as the JSON `ltp`'s schema encodes from; `kind` is the field's, when known.
fn to_json(value: &Bound<'_, PyAny>, kind: Option<FieldKind>) -> Result<Value, String> {
    if value.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(
            value.extract().map_err(|e: PyErr| e.to_string())?,
        ));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(i) = value.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = value.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err("integer out of range".to_owned());
    }
    if value.is_instance_of::<PyFloat>() {
        let f: f64 = value.extract().map_err(|e: PyErr| e.to_string())?;
        return Ok(Number::from_f64(f).map_or_else(
            || {
                Value::String(if f.is_nan() {
                    "NaN".to_owned()
                } else if f > 0.0 {
                    "inf".to_owned()
                } else {
                    "-inf".to_owned()
                })
            },
            Value::Number,
        ));
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(Value::String(to_hex(bytes.as_bytes())));
    }
    if let Ok(bytes) = value.cast::<PyByteArray>() {
        return Ok(Value::String(to_hex(&bytes.to_vec())));
    }
    if let Ok(text) = value.cast::<PyString>() {
        let text: String = text.extract().map_err(|e: PyErr| e.to_string())?;
        if matches!(kind, Some(FieldKind::Bytes(_) | FieldKind::RestBytes)) {
            return Err("expected bytes, got str".to_owned());
        }
        return Ok(Value::String(text));
    }
    let type_name = value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
    Err(format!("cannot encode a value of type {type_name}"))
}
