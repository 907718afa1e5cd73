//! `ltp dissector`: prints a Wireshark Lua dissector for the protocol that `--layout` and
//! `--schema` describe (see `ltp::dissector`).

use std::process::ExitCode;

use clap::Args;

use ltp::dissector::{DissectorOptions, check_proto_name, default_proto_name, lua_dissector};
use ltp::layout_file::load_layout;
use ltp::schema::Schema;

/// `ltp dissector` options.
#[derive(Debug, Args)]
pub(crate) struct DissectorArgs {
    /// Header layout: `ltprotocol`, `openflow`, or a TOML file.
    #[arg(long, default_value = "ltprotocol", value_name = "NAME|FILE")]
    layout: String,
    /// Message names and fields: `demo`, `openflow`, `none`, or a TOML file.
    #[arg(long, value_name = "NAME|FILE")]
    schema: String,
    /// TCP port to register the dissector on (repeatable). Without one, pick it in
    /// Wireshark's "Decode As…" or with `tshark -d tcp.port==PORT,NAME`.
    #[arg(long, value_name = "PORT")]
    port: Vec<u16>,
    /// The protocol's name, the prefix of its display-filter names (`NAME.type`); default
    /// `ltp_` and the schema's name (`ltp_demo`), or the layout's with `--schema none`.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

/// Prints the dissector to stdout (a closed stdout, as in `| head`, is no error); a bad
/// layout, schema or name is a usage error (exit 2).
pub(crate) fn run(args: &DissectorArgs) -> ExitCode {
    match script(args) {
        Ok(lua) => crate::docs::print(lua.as_bytes()),
        Err(err) => {
            eprintln!("ltp: {}", ltprotocol::escape_controls(&err.to_string()));
            ExitCode::from(2)
        }
    }
}

fn script(args: &DissectorArgs) -> Result<String, ltp::ConfigError> {
    let layout = load_layout(&args.layout)?;
    let schema = Schema::load(&args.schema)?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None if args.schema == "none" => default_proto_name(&args.layout),
        None => default_proto_name(&args.schema),
    };
    check_proto_name(&name)?;
    let options = DissectorOptions {
        name,
        ports: args.port.clone(),
    };
    Ok(lua_dissector(&layout, &schema, &options))
}
