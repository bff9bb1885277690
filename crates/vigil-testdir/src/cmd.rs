//! Running external commands (`samba-tool`, the sam.ldb helper, `cp`) with
//! errors that carry the command line and the end of its stderr.

use std::ffi::OsStr;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use crate::DirError;

/// A command running `program` inside network namespace `ns`.
pub(crate) fn in_ns(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Run `cmd` to completion, feeding `input` on stdin; a non-zero exit is
/// [`DirError::Command`].
pub(crate) fn run(cmd: &mut Command, input: Option<&[u8]>) -> Result<Output, DirError> {
    let out = output(cmd, input)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(failed(cmd, &out))
    }
}

/// Like [`run`], but any exit status is returned to the caller.
pub(crate) fn output(cmd: &mut Command, input: Option<&[u8]>) -> Result<Output, DirError> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| DirError::io(format!("starting `{}`", describe(cmd)), e))?;
    let writer = match (input, child.stdin.take()) {
        // A separate thread, so a child that writes a lot before reading
        // all its input cannot deadlock us. A write error shows up as a
        // failed exit status.
        (Some(input), Some(mut stdin)) => {
            let input = input.to_vec();
            Some(std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            }))
        }
        _ => None,
    };
    let out = child
        .wait_with_output()
        .map_err(|e| DirError::io(format!("waiting for `{}`", describe(cmd)), e))?;
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Ok(out)
}

/// [`DirError::Command`] for a finished command.
pub(crate) fn failed(cmd: &Command, out: &Output) -> DirError {
    DirError::Command {
        cmd: describe(cmd),
        status: out.status.to_string(),
        stderr: tail(&String::from_utf8_lossy(&out.stderr), 25),
    }
}

/// The last `lines` lines of `text`, trimmed.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Human-readable command line for error messages; the administrator
/// password never appears in it.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| {
            let s = s.to_string_lossy();
            if s.starts_with("--adminpass=") {
                "--adminpass=…".to_string()
            } else if s.len() > 200 {
                format!("<{} bytes>", s.len())
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_hides_password_and_long_scripts() {
        let mut cmd = Command::new("samba-tool");
        cmd.args(["domain", "provision", "--adminpass=Secret-1"]);
        cmd.arg("x".repeat(300));
        let line = describe(&cmd);
        assert!(!line.contains("Secret"), "{line}");
        assert!(line.len() < 150, "{line}");
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
