//! [`Layout`]: where a protocol's header keeps its length and type, as Python sees it: from
//! the ancestor's struct codes, from a preset name, or from a TOML layout file of `ltp`.

use ltprotocol::{HeaderLayout, Int};
use pyo3::prelude::*;

use crate::errors::LayoutError;

/// A header layout (the Rust library's `HeaderLayout`). Immutable.
#[pyclass(frozen, module = "ltprotocol._native")]
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) inner: HeaderLayout,
}

fn int_of(code: &str, which: &str) -> PyResult<Int> {
    let mut chars = code.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return Err(LayoutError::new_err(format!(
            "{which} struct code {code:?} is not one character of b B h H i I l L q Q"
        )));
    };
    Int::from_struct_code(c).ok_or_else(|| {
        LayoutError::new_err(format!(
            "{which} struct code {code:?} is not one of b B h H i I l L q Q"
        ))
    })
}

#[pymethods]
impl Layout {
    /// The ancestor's layout for `LTProtocol(msgs, len_type, type_type)`: big-endian, the
    /// length (counting the whole frame) at offset 0, the type right after it.
    #[staticmethod]
    #[pyo3(signature = (len_type = "H", type_type = "B"))]
    fn struct_codes(len_type: &str, type_type: &str) -> PyResult<Self> {
        let length = int_of(len_type, "length")?;
        let message_type = int_of(type_type, "type")?;
        let inner = HeaderLayout::builder()
            .length(0, length)
            .message_type(length.width(), message_type)
            .build()
            .map_err(|err| LayoutError::new_err(ltprotocol::error_chain(&err)))?;
        Ok(Self { inner })
    }

    /// A preset (`"ltprotocol"`, `"openflow"`) or the path of a TOML layout file, read as
    /// `ltp --layout` reads it.
    #[staticmethod]
    fn load(spec: &str) -> PyResult<Self> {
        let inner = ltp::layout_file::load_layout(spec)
            .map_err(|err| LayoutError::new_err(err.to_string()))?;
        Ok(Self { inner })
    }

    /// The header's size in bytes: the smallest legal frame.
    #[getter]
    fn header_len(&self) -> usize {
        self.inner.header_len()
    }

    /// The largest frame the length field can describe.
    #[getter]
    fn max_frame_len(&self) -> usize {
        self.inner.max_frame_len()
    }

    /// The preset's name, or `None`.
    #[getter]
    fn preset(&self) -> Option<&'static str> {
        self.inner.preset_name()
    }

    fn __repr__(&self) -> String {
        format!("Layout({:?})", self.inner)
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}
