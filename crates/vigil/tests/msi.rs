//! The Windows agent's MSI (`packaging/build-msi`, `packaging/windows/
//! vigil-agent.wxs`), built from a dummy vigil.exe with wixl and read back
//! with msiinfo: what Windows Installer will do is all in its tables, so
//! checking them catches a package that would install but not enroll, not
//! start the service, or enroll again on every upgrade. Running it under
//! Wine's msiexec is another test's job.
//!
//! Without wixl/msitools the test prints `SKIPPED` and passes, unless
//! `VIGIL_REQUIRE_WIXL=1` or `VIGIL_REQUIRE_WINE=1`, which make it fail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the MSI tools are here; prints why not, or fails when required.
fn msi_tools_available() -> bool {
    let missing: Vec<&str> = ["wixl", "msiinfo", "msibuild"]
        .into_iter()
        .filter(|tool| Command::new(tool).arg("--version").output().is_err())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let required = ["VIGIL_REQUIRE_WIXL", "VIGIL_REQUIRE_WINE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    assert!(
        !required,
        "VIGIL_REQUIRE_WIXL/VIGIL_REQUIRE_WINE is set but {missing:?} are missing \
         (Debian packages wixl and msitools)"
    );
    eprintln!("SKIPPED: {missing:?} not found (Debian packages wixl and msitools)");
    false
}

/// `packaging/build-msi ARGS…` with cargo on the PATH (for the version).
fn build_msi(args: &[&Path]) -> Output {
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(cargo_dir) = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|c| c.parent().map(Path::to_path_buf))
    {
        let mut dirs = vec![cargo_dir];
        dirs.extend(std::env::split_paths(&path));
        path = std::env::join_paths(dirs).expect("PATH");
    }
    Command::new("bash")
        .arg(repo().join("packaging/build-msi"))
        .args(args)
        .env("PATH", path)
        .env_remove("VIGIL_VERSION")
        .output()
        .expect("run bash")
}

fn msiinfo(args: &[&str]) -> String {
    let out = Command::new("msiinfo")
        .args(args)
        .output()
        .expect("msiinfo");
    assert!(out.status.success(), "msiinfo {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The rows of `table`, each by column name (msiinfo's first line names
/// them; the next two are types and keys).
fn table(msi: &Path, name: &str) -> Vec<HashMap<String, String>> {
    let text = msiinfo(&["export", msi.to_str().expect("path"), name]);
    let mut lines = text.lines();
    let columns: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split('\t')
        .map(str::to_string)
        .collect();
    lines
        .skip(2)
        .filter(|l| !l.is_empty())
        .map(|l| {
            columns
                .iter()
                .cloned()
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}

/// The one row of `table` whose first column is `key`.
fn row(msi: &Path, name: &str, column: &str, key: &str) -> HashMap<String, String> {
    let rows = table(msi, name);
    let mut found = rows.iter().filter(|r| r[column] == key);
    let hit = found
        .next()
        .unwrap_or_else(|| panic!("no {key} in {name}: {rows:?}"))
        .clone();
    assert!(found.next().is_none(), "two {key} rows in {name}");
    hit
}

fn number(r: &HashMap<String, String>, column: &str) -> u32 {
    r[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column} is not a number: {r:?}"))
}

#[test]
fn the_msi_installs_the_service_and_enrolls_once() {
    if !msi_tools_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = dir.path().join("dummy-vigil.exe");
    let payload = b"MZ not really a Windows program";
    std::fs::write(&exe, payload).expect("write exe");
    let msi = dir.path().join("out/vigil-agent.msi");
    let out = build_msi(&[&exe, &msi]);
    assert!(out.status.success(), "build-msi failed: {out:?}");
    assert!(msi.is_file());
    let version = env!("CARGO_PKG_VERSION")
        .split(['-', '+'])
        .next()
        .expect("version");

    let tables = msiinfo(&["tables", msi.to_str().expect("path")]);
    for t in [
        "Property",
        "File",
        "Component",
        "Directory",
        "Feature",
        "Media",
        "ServiceInstall",
        "ServiceControl",
        "CustomAction",
        "InstallExecuteSequence",
        "Upgrade",
    ] {
        assert!(tables.lines().any(|l| l == t), "no {t} table in {tables}");
    }
    let suminfo = msiinfo(&["suminfo", msi.to_str().expect("path")]);
    assert!(suminfo.contains("Template: x64;1033"), "{suminfo}");

    let props: HashMap<String, String> = table(&msi, "Property")
        .into_iter()
        .map(|r| (r["Property"].clone(), r["Value"].clone()))
        .collect();
    assert_eq!(props["ProductName"], "Vigil agent");
    assert_eq!(props["ProductVersion"], version);
    assert_eq!(props["ALLUSERS"], "1");
    let secure: Vec<&str> = props["SecureCustomProperties"].split(';').collect();
    for p in ["SERVER", "TOKEN", "PIN", "WIX_UPGRADE_DETECTED"] {
        assert!(secure.contains(&p), "{p} not secure: {secure:?}");
    }
    assert_eq!(props["MsiHiddenProperties"], "TOKEN");
    // Given on the command line only: no defaults baked in.
    for p in ["SERVER", "TOKEN", "PIN"] {
        assert!(!props.contains_key(p), "{p} has a default");
    }

    let file = row(&msi, "File", "File", "VigilExe");
    assert_eq!(file["FileName"], "vigil.exe");
    assert_eq!(file["Component_"], "VigilExe");
    assert_eq!(number(&file, "FileSize") as usize, payload.len());
    let component = row(&msi, "Component", "Component", "VigilExe");
    assert_eq!(component["Directory_"], "INSTALLFOLDER");
    assert_eq!(component["KeyPath"], "VigilExe");
    assert_ne!(
        number(&component, "Attributes") & 0x100,
        0,
        "not a 64-bit component"
    );
    let folder = row(&msi, "Directory", "Directory", "INSTALLFOLDER");
    assert_eq!(folder["Directory_Parent"], "ProgramFiles64Folder");
    assert_eq!(folder["DefaultDir"], "Vigil");

    let service = row(&msi, "ServiceInstall", "Name", "VigilAgent");
    assert_eq!(service["DisplayName"], "Vigil agent");
    assert_eq!(
        service["Arguments"],
        r#"agent --state-dir "[CommonAppDataFolder]Vigil\agent" service-run"#
    );
    assert_eq!(number(&service, "ServiceType"), 0x10, "own process");
    assert_eq!(number(&service, "StartType"), 2, "automatic start");
    assert_eq!(service["StartName"], "LocalSystem");
    assert_eq!(service["Component_"], "VigilExe");
    let control = row(&msi, "ServiceControl", "Name", "VigilAgent");
    // Start on install, stop on install and uninstall, delete on uninstall.
    assert_eq!(number(&control, "Event"), 0x01 | 0x02 | 0x20 | 0x80);
    assert_eq!(control["Component_"], "VigilExe");
    assert_eq!(control["Wait"], "1");

    let enroll = row(&msi, "CustomAction", "Action", "EnrollAgent");
    let kind = number(&enroll, "Type");
    assert_eq!(kind & 0x3f, 18, "an exe from an installed file: {kind}");
    assert_ne!(kind & 0x400, 0, "deferred: {kind}");
    assert_ne!(kind & 0x800, 0, "no impersonation: {kind}");
    assert_ne!(kind & 0x2000, 0, "command line hidden from logs: {kind}");
    assert_eq!(
        kind & 0x40,
        0,
        "a failed enrollment must fail the install: {kind}"
    );
    assert_eq!(enroll["Source"], "VigilExe");
    assert_eq!(
        enroll["Target"],
        r#"agent --state-dir "[CommonAppDataFolder]Vigil\agent" enroll --server "[SERVER]" --token "[TOKEN]" --pin "[PIN]""#
    );

    let sequence: HashMap<String, (String, u32)> = table(&msi, "InstallExecuteSequence")
        .into_iter()
        .map(|r| {
            let n = number(&r, "Sequence");
            (r["Action"].clone(), (r["Condition"].clone(), n))
        })
        .collect();
    let at = |action: &str| {
        sequence
            .get(action)
            .unwrap_or_else(|| panic!("{action} not sequenced: {sequence:?}"))
            .1
    };
    let (condition, step) = &sequence["EnrollAgent"];
    assert_eq!(
        condition,
        "TOKEN AND NOT Installed AND NOT WIX_UPGRADE_DETECTED"
    );
    assert!(
        at("InstallFiles") < *step && at("InstallServices") < *step,
        "enrolls before vigil.exe is installed: {sequence:?}"
    );
    assert!(*step < at("StartServices"), "{sequence:?}");
    assert!(
        at("InstallInitialize") < *step && *step < at("InstallFinalize"),
        "a deferred action outside the script: {sequence:?}"
    );
    assert!(
        at("RemoveExistingProducts") < at("InstallInitialize"),
        "an upgrade must remove the old version before installing: {sequence:?}"
    );
}

#[test]
fn build_msi_refuses_bad_arguments() {
    if !msi_tools_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = build_msi(&[dir.path()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    let missing = dir.path().join("nope.exe");
    let out = build_msi(&[&missing, &dir.path().join("x.msi")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such file"),
        "{out:?}"
    );
    assert!(!dir.path().join("x.msi").exists());
}
