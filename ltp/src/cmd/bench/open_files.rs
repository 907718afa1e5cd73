//! Open files: a load of many connections raises this process's open-files soft limit up to
//! the hard limit rather than failing on the first socket past it.

use anyhow::Context;

/// File descriptors kept free for everything else (the runtime, the control connection,
/// TLS files, stdio).
const SPARE_FDS: u64 = 64;

/// Makes sure this process may hold `connections` connections, two descriptors each when the
/// server runs `in_process` too: raises the open-files soft limit up to the hard limit when it
/// is lower (logged at `info`, `LTP_LOG=info`), and fails, naming the hard limit, when even
/// that is too low. Where the limit cannot be read, the run goes on and the first socket that
/// cannot be opened says why.
pub(super) fn make_room_for(connections: usize, in_process: bool) -> anyhow::Result<()> {
    let per_connection = if in_process { 2 } else { 1 };
    let needed = (connections as u64)
        .saturating_mul(per_connection)
        .saturating_add(SPARE_FDS);
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        return Ok(());
    };
    if needed <= soft {
        return Ok(());
    }
    let raised = rlimit::increase_nofile_limit(needed).with_context(|| {
        format!("cannot raise the open-files soft limit {soft} toward {needed}")
    })?;
    if raised > soft {
        tracing::info!(
            from = soft,
            to = raised,
            hard,
            "raised the open-files soft limit for the connections"
        );
    }
    if raised < needed {
        anyhow::bail!(
            "{connections} connections need about {needed} file descriptors{}, above this \
             process's hard limit of {hard} open files (the soft limit is raised up to it): \
             raise the hard limit (`ulimit -Hn` as root, `LimitNOFILE=` for a service) or use \
             fewer connections",
            if in_process {
                " (both ends in this process)"
            } else {
                ""
            },
        );
    }
    Ok(())
}
