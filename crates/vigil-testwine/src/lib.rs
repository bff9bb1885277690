//! Vigil's Windows build under Wine, for integration tests on Linux.
//!
//! Debian's `wine64` (8.0) runs `x86_64-pc-windows-gnu` binaries: Winsock
//! calls become Linux socket calls in the Wine process itself, so a
//! `vigil.exe` started inside a test network namespace (`ip netns exec`)
//! scans and listens there, while the verdicts go through the Windows code
//! paths (Winsock error codes, no descriptor limit, no socket reuse).
//!
//! A [`Wine`] is one fresh prefix (a `C:` drive under a temporary
//! directory) with a test-only `bcryptprimitives.dll` in its `system32`
//! (Wine 8 lacks it and Rust's std imports `ProcessPrng` from it; the shim,
//! `shim/bcryptprimitives.c`, forwards to `RtlGenRandom`). The shim is
//! built here with mingw and never shipped. Dropping the [`Wine`] stops the
//! prefix's `wineserver` and deletes the prefix.
//!
//! ```no_run
//! # fn main() -> Result<(), vigil_testwine::WineError> {
//! let Some(wine) = vigil_testwine::Wine::for_test()? else { return Ok(()) };
//! let out = wine.command(&vigil_testwine::vigil_exe()?).arg("--version").output()?;
//! assert!(out.status.success());
//! # Ok(()) }
//! ```

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where Debian's `wine64` package puts its loader (not on PATH).
const LOADERS: [&str; 2] = ["/usr/lib/wine/wine64", "/usr/bin/wine64"];
/// The mingw compiler that builds the shim.
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";
/// The shim's source, compiled on first use.
const SHIM_SOURCE: &str = include_str!("../shim/bcryptprimitives.c");

/// Why Wine cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WineError {
    /// Wine or mingw is not installed.
    #[error("{0}")]
    Missing(String),
    /// A setup command failed.
    #[error("{what}: {detail}")]
    Setup { what: String, detail: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One Wine prefix with the shim installed; see the crate docs.
pub struct Wine {
    loader: PathBuf,
    prefix: tempfile::TempDir,
}

impl Wine {
    /// A fresh prefix, or `None` (with the reason printed) when Wine or
    /// mingw is missing — unless `VIGIL_REQUIRE_WINE=1`, which CI sets:
    /// then a missing piece fails the test.
    pub fn for_test() -> Result<Option<Wine>, WineError> {
        match Wine::new() {
            Ok(w) => Ok(Some(w)),
            Err(WineError::Missing(why)) if std::env::var_os("VIGIL_REQUIRE_WINE").is_none() => {
                eprintln!("SKIPPED: {why}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// A fresh prefix; fails if Wine or mingw is missing.
    pub fn new() -> Result<Wine, WineError> {
        let loader = LOADERS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                WineError::Missing(format!(
                    "needs Debian's wine64 (looked for {})",
                    LOADERS.join(", ")
                ))
            })?;
        let shim = shim_dll()?;
        let prefix = tempfile::Builder::new().prefix("vigil-wine-").tempdir()?;
        let wine = Wine { loader, prefix };
        // The first start creates the prefix (a few seconds).
        let out = wine.command("wineboot").arg("--init").output()?;
        if !out.status.success() {
            return Err(WineError::Setup {
                what: "wineboot --init".into(),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        // Let the first start settle (its services exit): an msiexec run
        // while they still start fails to reach the service manager.
        wine.wait_idle();
        let system32 = wine.drive_c().join("windows/system32");
        std::fs::copy(&shim, system32.join("bcryptprimitives.dll"))?;
        Ok(wine)
    }

    /// `wine64 PROGRAM` in this prefix, quiet; add arguments as usual.
    /// `PROGRAM` is a Linux path to an exe, or a Windows program name.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(&self.loader);
        self.configure(&mut cmd);
        cmd.arg(program);
        cmd
    }

    /// Sets this prefix's environment on a command built elsewhere (e.g.
    /// `ip netns exec NS /usr/lib/wine/wine64 …` from a test network).
    pub fn configure(&self, cmd: &mut Command) {
        cmd.env("WINEPREFIX", self.prefix.path())
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
    }

    /// The loader, for commands built elsewhere.
    pub fn loader(&self) -> &Path {
        &self.loader
    }

    /// The prefix's `C:` drive on the Linux side.
    pub fn drive_c(&self) -> PathBuf {
        self.prefix.path().join("drive_c")
    }

    /// The Linux path of a Windows path on `C:` (`C:\ProgramData\x` →
    /// `<prefix>/drive_c/ProgramData/x`). Wine's file names are
    /// case-insensitive; the Linux side keeps the case they were created with.
    pub fn unix_path(&self, windows: &str) -> PathBuf {
        let rest = windows
            .strip_prefix("C:\\")
            .or_else(|| windows.strip_prefix("c:\\"))
            .unwrap_or(windows);
        rest.split('\\')
            .filter(|s| !s.is_empty())
            .fold(self.drive_c(), |p, s| p.join(s))
    }

    /// Stops every process of this prefix (`wineserver -k`) and waits for
    /// the server to go.
    pub fn kill_all(&self) {
        let _ = self.wineserver().arg("-k").output();
        self.wait_idle();
    }

    /// Waits until every process of the prefix has exited and its
    /// `wineserver` with them (`wineserver -w`).
    pub fn wait_idle(&self) {
        let _ = self.wineserver().arg("-w").output();
    }

    fn wineserver(&self) -> Command {
        let server = self.loader.with_file_name("wineserver64");
        let mut cmd = Command::new(if server.is_file() {
            server
        } else {
            PathBuf::from("wineserver")
        });
        cmd.env("WINEPREFIX", self.prefix.path());
        cmd
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The Windows path Wine gives a Linux path (its `Z:` drive maps `/`).
pub fn windows_path(unix: &Path) -> String {
    format!("Z:{}", unix.display()).replace('/', "\\")
}

/// The cross-built `vigil.exe`: `VIGIL_WINDOWS_EXE`, or the workspace's
/// `target/x86_64-pc-windows-gnu/{debug,release}/vigil.exe` (newest),
/// built by `scripts/test` with `cargo build --target x86_64-pc-windows-gnu -p vigil`.
pub fn vigil_exe() -> Result<PathBuf, WineError> {
    if let Some(p) = std::env::var_os("VIGIL_WINDOWS_EXE") {
        return Ok(PathBuf::from(p));
    }
    let target = workspace_target();
    let found = ["debug", "release"]
        .iter()
        .map(|p| {
            target
                .join("x86_64-pc-windows-gnu")
                .join(p)
                .join("vigil.exe")
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max();
    found.map(|(_, p)| p).ok_or_else(|| {
        WineError::Missing(format!(
            "no vigil.exe under {}: build it with `cargo build --target x86_64-pc-windows-gnu -p vigil` \
             (or set VIGIL_WINDOWS_EXE)",
            target.join("x86_64-pc-windows-gnu").display()
        ))
    })
}

/// `target/` of this workspace (or `CARGO_TARGET_DIR`).
fn workspace_target() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// Builds the shim once per build (cached under `target/testwine/`).
fn shim_dll() -> Result<PathBuf, WineError> {
    let dir = workspace_target().join("testwine");
    std::fs::create_dir_all(&dir)?;
    let dll = dir.join("bcryptprimitives.dll");
    let src = dir.join("bcryptprimitives.c");
    if dll.is_file() && std::fs::read_to_string(&src).ok().as_deref() == Some(SHIM_SOURCE) {
        return Ok(dll);
    }
    std::fs::write(&src, SHIM_SOURCE)?;
    // A unique temporary name: test binaries may build it at the same time.
    let tmp = dir.join(format!("bcryptprimitives.{}.dll", std::process::id()));
    let out = Command::new(MINGW_GCC)
        .args(["-shared", "-O2", "-o"])
        .arg(&tmp)
        .arg(&src)
        .arg("-ladvapi32")
        .output()
        .map_err(|e| {
            WineError::Missing(format!(
                "needs {MINGW_GCC} (Debian's gcc-mingw-w64-x86-64) to build the test shim: {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(WineError::Setup {
            what: format!("{MINGW_GCC} {}", src.display()),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    std::fs::rename(&tmp, &dll)?;
    Ok(dll)
}

/// Polls `f` every 100 ms until it returns `Some` or `limit` passes.
pub fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths() {
        assert_eq!(windows_path(Path::new("/tmp/a b/x")), "Z:\\tmp\\a b\\x");
    }

    /// The shim makes a mingw-built Rust program start under Wine.
    #[test]
    fn vigil_exe_starts() {
        let Some(wine) = Wine::for_test().expect("wine") else {
            return;
        };
        assert!(wine.drive_c().join("windows/system32").is_dir());
        assert!(wine.unix_path("C:\\windows\\system32").is_dir());
        let exe = match vigil_exe() {
            Ok(exe) => exe,
            Err(e) if std::env::var_os("VIGIL_REQUIRE_WINE").is_none() => {
                eprintln!("SKIPPED: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let out = wine.command(&exe).arg("--version").output().expect("run");
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("vigil "));
    }
}
