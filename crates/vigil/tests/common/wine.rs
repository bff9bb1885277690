//! Running the cross-built `vigil.exe` under Wine from the tests.

use super::scenario::Verdicts;
use super::{parse_nmap_xml, run_ok};
use std::path::PathBuf;
use std::process::Command;
use vigil_testnet::TestNet;
pub use vigil_testwine::Wine;

/// A Wine prefix and the Windows binary, or `None` (printed why) when Wine,
/// mingw or the binary is missing and `VIGIL_REQUIRE_WINE` is not set.
pub fn wine_and_exe() -> Option<(Wine, PathBuf)> {
    let wine = vigil_testwine::Wine::for_test().unwrap_or_else(|e| panic!("wine: {e}"))?;
    match vigil_testwine::vigil_exe() {
        Ok(exe) => Some((wine, exe)),
        Err(e) if std::env::var_os("VIGIL_REQUIRE_WINE").is_none() => {
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// `vigil.exe ARGS` under Wine inside the scanner namespace.
pub fn scanner_cmd(net: &TestNet, wine: &Wine, exe: &std::path::Path) -> Command {
    let mut cmd = net.scanner_cmd(wine.loader());
    wine.configure(&mut cmd);
    cmd.arg(exe);
    cmd
}

/// `vigil.exe scan ARGS --xml -` under Wine inside the scanner namespace.
pub fn vigil_exe_xml(
    net: &TestNet,
    wine: &Wine,
    exe: &std::path::Path,
    targets: &[String],
    ports: &str,
) -> Verdicts {
    let mut cmd = scanner_cmd(net, wine, exe);
    cmd.args(["scan", "--no-progress", "-p", ports, "--xml", "-"])
        .args(targets);
    parse_nmap_xml(&run_ok(&mut cmd))
}
