//! [`Frame`]: a message as it travels, its type number, body and extra header fields
//! (OpenFlow's `version` and `xid`), as Python sees it; and the conversions between a
//! Python dict of header fields (`{"xid": 7}`) and the library's [`HeaderFields`].

use ltprotocol::{HeaderFields, HeaderLayout};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::exceptions::EncodeError;
use crate::layout::Layout;

/// A raw frame: type number, body, extra header fields. Immutable.
///
/// Received frames carry every extra field of their layout; a frame made in Python carries
/// the fields given (the others are sent with the layout's defaults). Frames also answer
/// `get_type()` and `pack()`, so they go wherever an `LTMessage` goes.
#[pyclass(frozen, module = "ltprotocol")]
#[derive(Debug)]
pub(crate) struct Frame {
    message_type: i128,
    body: Py<PyBytes>,
    header: Header,
}

/// Where a frame's header fields come from.
#[derive(Debug)]
enum Header {
    /// Received: the values, named by the layout they were read with.
    Received {
        fields: HeaderFields,
        layout: Py<Layout>,
    },
    /// Made in Python: the dict given (copied).
    Given(Py<PyDict>),
}

impl Frame {
    /// A received frame.
    pub(crate) fn received(
        py: Python<'_>,
        message_type: i128,
        body: &[u8],
        fields: HeaderFields,
        layout: &Py<Layout>,
    ) -> Self {
        Self {
            message_type,
            body: PyBytes::new(py, body).unbind(),
            header: Header::Received {
                fields,
                layout: layout.clone_ref(py),
            },
        }
    }
}

#[pymethods]
impl Frame {
    /// A frame of type `message_type` with `body`, and extra header fields by name
    /// (`header={"xid": 7}`; checked against the layout when sent).
    #[new]
    #[pyo3(signature = (message_type, body = None, header = None))]
    fn new(
        py: Python<'_>,
        message_type: i128,
        body: Option<Bound<'_, PyBytes>>,
        header: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let header = match header {
            Some(given) => given.copy()?.unbind(),
            None => PyDict::new(py).unbind(),
        };
        Ok(Self {
            message_type,
            body: body.unwrap_or_else(|| PyBytes::new(py, b"")).unbind(),
            header: Header::Given(header),
        })
    }

    /// The type number.
    #[getter]
    fn message_type(&self) -> i128 {
        self.message_type
    }

    /// The body, without the header.
    #[getter]
    fn body(&self, py: Python<'_>) -> Py<PyBytes> {
        self.body.clone_ref(py)
    }

    /// The extra header fields by name (a new dict each time): `{"version": 4, "xid": 7}`
    /// for OpenFlow; `{}` for a layout with none.
    #[getter]
    fn header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        match &self.header {
            Header::Given(given) => given.bind(py).copy(),
            Header::Received { fields, layout } => header_dict(py, &layout.get().inner, fields),
        }
    }

    /// The type number (as `LTMessage.get_type`).
    fn get_type(&self) -> i128 {
        self.message_type
    }

    /// The body (as `LTMessage.pack`).
    fn pack(&self, py: Python<'_>) -> Py<PyBytes> {
        self.body.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let body = self.body.bind(py).repr()?;
        let header = self.header(py)?;
        if header.is_empty() {
            Ok(format!("Frame({}, {body})", self.message_type))
        } else {
            Ok(format!(
                "Frame({}, {body}, header={})",
                self.message_type,
                header.repr()?
            ))
        }
    }

    fn __eq__(&self, py: Python<'_>, other: &Self) -> PyResult<bool> {
        Ok(self.message_type == other.message_type
            && self.body.bind(py).as_bytes() == other.body.bind(py).as_bytes()
            && self.header(py)?.eq(other.header(py)?)?)
    }
}

#[pymethods]
impl Layout {
    /// The names of the extra header fields, in layout order (`["version", "xid"]` for
    /// OpenFlow; `[]` for the ltprotocol preset).
    #[getter]
    fn extra_fields(&self) -> Vec<String> {
        self.inner
            .extra_fields()
            .iter()
            .map(|f| f.name().to_owned())
            .collect()
    }
}

/// A frame's header fields as a dict, by the names `layout` gives them.
pub(crate) fn header_dict<'py>(
    py: Python<'py>,
    layout: &HeaderLayout,
    fields: &HeaderFields,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (id, value) in fields.iter() {
        if let Some(spec) = layout.field_spec(id) {
            dict.set_item(spec.name(), value)?;
        }
    }
    Ok(dict)
}

/// Header fields by name (`{"xid": 7}`) as the library's [`HeaderFields`] for `layout`.
///
/// # Errors
///
/// `EncodeError` for a name the layout has no field for, or a value that is not an integer.
pub(crate) fn header_fields(
    layout: &HeaderLayout,
    header: Option<&Bound<'_, PyDict>>,
) -> PyResult<HeaderFields> {
    let mut fields = HeaderFields::new();
    let Some(header) = header else {
        return Ok(fields);
    };
    for (name, value) in header.iter() {
        let name: String = name.extract()?;
        let Some(id) = layout.field(&name) else {
            let known: Vec<&str> = layout.extra_fields().iter().map(|f| f.name()).collect();
            return Err(EncodeError::new_err(if known.is_empty() {
                format!("unknown header field `{name}`: the layout has no extra fields")
            } else {
                format!(
                    "unknown header field `{name}` (the layout has: {})",
                    known.join(", ")
                )
            }));
        };
        let value: i128 = value.extract().map_err(|_| {
            EncodeError::new_err(format!("header field `{name}` must be an integer"))
        })?;
        fields.set(id, value);
    }
    Ok(fields)
}
