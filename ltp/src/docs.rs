//! `ltp completions SHELL` and `ltp man`: the shell completion scripts and the man pages,
//! generated from the same clap definitions as the parser, so that they can never list an
//! option that `ltp` does not take.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use clap::error::ErrorKind;

/// `ltp completions` options.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell whose completion script to print.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// `ltp man` options.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The subcommand whose page to print, e.g. `connect` or `bench throughput` (the page
    /// `ltp-bench-throughput(1)`); without one, `ltp(1)`, which lists the subcommands.
    #[arg(value_name = "SUBCOMMAND", conflicts_with = "dir")]
    subcommand: Vec<String>,
    /// Write every page into this directory instead (created if missing): `ltp.1` and one
    /// per subcommand, `ltp-connect.1`, `ltp-bench-throughput.1`…
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints `args.shell`'s completion script for `cmd` (the whole `ltp` command) to stdout.
pub(crate) fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "ltp", &mut script);
    print(&script)
}

/// Prints the man page `args.subcommand` names (roff) to stdout, or writes every page into
/// `args.dir`. An unknown subcommand is a usage error (exit code 2).
pub(crate) fn man(args: &ManArgs, cmd: clap::Command) -> ExitCode {
    // Built once from the root, so that each subcommand knows its full name
    // (`ltp-bench-throughput`), which is its page's title. `help` is clap's, not a page.
    let mut root = cmd.disable_help_subcommand(true);
    root.build();
    if let Some(dir) = &args.dir {
        return match write_pages(&root, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!(
                    "ltp: cannot write the man pages into {}: {err}",
                    ltprotocol::escape_controls(&dir.display().to_string())
                );
                ExitCode::from(1)
            }
        };
    }
    let mut page = &root;
    for name in &args.subcommand {
        let Some(sub) = page.find_subcommand(name) else {
            let known: Vec<&str> = page
                .get_subcommands()
                .map(clap::Command::get_name)
                .collect();
            let within = page.get_display_name().unwrap_or("ltp").replace('-', " ");
            // clap's own usage error, with `ltp man`'s usage line.
            let man_cmd = root.find_subcommand("man").unwrap_or(&root);
            man_cmd
                .clone()
                .error(
                    ErrorKind::InvalidSubcommand,
                    format!(
                        "`{within}` has no subcommand `{name}` (it has: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
                .exit();
        };
        page = sub;
    }
    let mut roff = Vec::new();
    // Rendering into memory does not fail, but the type allows it.
    if let Err(err) = page_of(page).render(&mut roff) {
        eprintln!("ltp: cannot render the man page: {err}");
        return ExitCode::from(1);
    }
    print(&roff)
}

/// The man page of `cmd` (a command of the built root): titled by its full name, e.g.
/// `ltp-bench-throughput(1)`, from `ltp` and its version whichever page it is.
fn page_of(cmd: &clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd.clone()).source(concat!("ltp ", env!("CARGO_PKG_VERSION")))
}

/// `ltp.1` and a page per subcommand, at every depth, into `dir` (created if missing).
fn write_pages(root: &clap::Command, dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut pending = vec![root];
    while let Some(cmd) = pending.pop() {
        page_of(cmd).generate_to(dir)?;
        pending.extend(cmd.get_subcommands().filter(|sub| !sub.is_hide_set()));
    }
    Ok(())
}

/// Writes `bytes` to stdout. A reader that stopped early (`ltp man | head`) is no error.
pub(crate) fn print(bytes: &[u8]) -> ExitCode {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ltp: cannot write to stdout: {err}");
            ExitCode::from(1)
        }
    }
}
