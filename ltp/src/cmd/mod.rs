//! One subcommand per file.

pub(crate) mod bench;
pub(crate) mod connect;
pub(crate) mod demo;
pub(crate) mod serve;

use ltp::schema::Schema;
use ltprotocol::HeaderLayout;

use crate::Common;
use crate::output::Output;

/// What the common options resolve to.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) layout: HeaderLayout,
    pub(crate) schema: Schema,
    pub(crate) max_frame: Option<usize>,
    pub(crate) output: Output,
}

impl Setup {
    /// Loads the layout and schema files.
    ///
    /// # Errors
    ///
    /// A [`ltp::ConfigError`] naming the file, line and problem.
    pub(crate) fn load(common: &Common) -> Result<Self, ltp::ConfigError> {
        let layout = ltp::layout_file::load_layout(&common.layout)?;
        if let Some(max) = common.max_frame
            && max < layout.header_len()
        {
            return Err(ltp::ConfigError::Invalid(format!(
                "--max-frame {max} is smaller than the {}-byte header",
                layout.header_len()
            )));
        }
        let schema = match &common.schema {
            Some(spec) => Schema::load(spec)?,
            None => Schema::empty(),
        };
        Ok(Self {
            layout,
            schema,
            max_frame: common.max_frame,
            output: Output::new(common.format),
        })
    }
}
