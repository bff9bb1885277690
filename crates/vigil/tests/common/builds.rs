//! Agent builds for the self-update tests: a copy of a real build with its
//! version bumped (its version stamp rewritten, see `vigil_proto::version`),
//! and where an agent's update stands.

use super::server::Api;
use serde_json::Value;
use std::path::Path;

/// A copy of `from` whose stamp says `version` (same length as the old).
pub fn stamped(from: &Path, to: &Path, version: &str) {
    let mut bytes = std::fs::read(from).expect("read the build");
    let old = format!("VIGIL_VERSION_STAMP[{}]", vigil_proto::version::version());
    let new = format!("VIGIL_VERSION_STAMP[{version}]");
    assert_eq!(old.len(), new.len(), "a bump keeps the stamp's length");
    let at = bytes
        .windows(old.len())
        .position(|w| w == old.as_bytes())
        .expect("the build carries its stamp");
    bytes[at..at + new.len()].copy_from_slice(new.as_bytes());
    write_exe(to, &bytes);
}

/// Writes an executable file (directories created).
pub fn write_exe(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, bytes).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The patch version `by` after `v` (`0.2.0` → `0.2.1`), same length.
pub fn bump(v: &str, by: u32) -> String {
    let (head, patch) = v.rsplit_once('.').expect("x.y.z");
    let patch: u32 = patch.parse().expect("a number");
    let next = format!("{head}.{}", patch + by);
    assert_eq!(next.len(), v.len(), "pick a bump that keeps the length");
    next
}

/// `GET /updates`' entry of `agent`.
pub fn agent_update(api: &Api<'_>, agent: &str) -> Value {
    let v = api.get("/updates");
    v["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["agent_id"] == agent).cloned())
        .unwrap_or_else(|| panic!("agent {agent} not in /updates: {v}"))
}
