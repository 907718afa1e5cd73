//! `--pcap FILE` and `--pcap-max-size BYTES` of `serve` and `connect`: the session captured to
//! pcapng files (the library's `capture`), and what the capture wrote and dropped, as the
//! `pcap` key of the `shutdown` or `summary` line.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ltprotocol::capture::Capture;
use serde_json::{Value, json};

/// The capture options of `serve` and `connect`.
#[derive(Debug, Args)]
pub(crate) struct PcapArgs {
    /// Capture every connection's messages, both directions (the plaintext over TLS), to this
    /// pcapng file, one TCP stream per connection: open it with Wireshark or tshark.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// With `--pcap`: past about this many bytes, go on in a new file (FILE's name with
    /// `.1`, `.2`… before its extension), as `tcpdump -C` does.
    #[arg(long, value_name = "BYTES", requires = "pcap", value_parser = clap::value_parser!(u64).range(1..))]
    pcap_max_size: Option<u64>,
}

impl PcapArgs {
    /// Creates the capture file, when `--pcap` asks for one.
    pub(crate) fn open(&self) -> anyhow::Result<Option<Capture>> {
        let Some(path) = &self.pcap else {
            return Ok(None);
        };
        let mut builder = Capture::builder(path);
        if let Some(max) = self.pcap_max_size {
            builder.max_file_size(max);
        }
        let capture = builder
            .open()
            .with_context(|| format!("--pcap {}", path.display()))?;
        Ok(Some(capture))
    }
}

/// Ends the capture: what it wrote and dropped, for the `pcap` key of the last line. A write
/// error is also said on stderr.
pub(crate) async fn finish(capture: Option<&Capture>) -> Option<Value> {
    let summary = capture?.finish().await;
    if let Some(err) = &summary.error {
        eprintln!("ltp: {}", ltprotocol::error_chain(err));
    }
    let files: Vec<String> = summary
        .files
        .iter()
        .map(|file| file.display().to_string())
        .collect();
    Some(json!({
        "files": files,
        "frames": summary.frames,
        "bytes": summary.bytes,
        "dropped_frames": summary.dropped_frames,
        "dropped_bytes": summary.dropped_bytes,
    }))
}
