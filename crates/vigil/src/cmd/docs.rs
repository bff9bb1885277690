//! `vigil completions` and `vigil manpages`: shell completions and manual
//! pages, generated from the same command definitions that parse the
//! arguments (so they cannot drift). The packages run these at build time.

use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// The directory to write vigil.1, vigil-server.1, … into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Prints the completion script of `args.shell` on standard output.
pub fn completions(mut cli: clap::Command, args: CompletionsArgs) -> Result<ExitCode> {
    use std::io::Write;
    let name = cli.get_name().to_string();
    // Into a buffer first: clap_complete panics when its writer fails
    // (`vigil completions bash | head`); a closed pipe is no error here.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cli, name, &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the completion script")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Writes one manual page per command and subcommand (hidden ones left out).
pub fn manpages(cli: clap::Command, args: ManpagesArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    clap_mangen::generate_to(cli, &args.out)
        .with_context(|| format!("writing manual pages into {}", args.out.display()))?;
    let count = std::fs::read_dir(&args.out)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "1"))
        .count();
    println!("{count} manual pages in {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
