//! The file `vigil ctl login` saves the server and token in, readable by
//! its owner only.

use crate::cmd::usage;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The REST API URL the token belongs to.
    pub server: String,
    pub token: String,
}

/// `$XDG_CONFIG_HOME/vigil/ctl.json`, else `~/.config/vigil/ctl.json`.
pub fn default_path() -> Result<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = match (var("XDG_CONFIG_HOME"), var("HOME")) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => Path::new(&home).join(".config"),
        (None, None) => {
            return Err(usage(
                "neither XDG_CONFIG_HOME nor HOME is set: give --config PATH",
            ))
        }
    };
    Ok(base.join("vigil").join("ctl.json"))
}

/// The saved login, if any.
pub fn load(path: &Path) -> Result<Option<Saved>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        usage(format!(
            "{} is not a `vigil ctl` config file ({e}): remove it and run `vigil ctl login`",
            path.display()
        ))
    })
}

/// Writes the file with mode 0600 (replacing any previous one atomically).
pub fn save(path: &Path, saved: &Saved) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut file = crate::sys::private_file_options().open(&tmp)?;
        let mut text = serde_json::to_vec_pretty(saved).map_err(std::io::Error::other)?;
        text.push(b'\n');
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("saving the login to {}", path.display()))
}

/// Deletes the file; false if there was none.
pub fn remove(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn saves_owner_only_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/ctl.json");
        assert_eq!(load(&path).unwrap(), None);
        let saved = Saved {
            server: "http://127.0.0.1:8080".into(),
            token: "vgl_x".into(),
        };
        save(&path, &saved).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(&path).unwrap(), Some(saved));
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
    }

    #[test]
    fn a_foreign_file_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.json");
        std::fs::write(&path, "token = 1").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.downcast_ref::<crate::cmd::UsageError>().is_some());
        assert!(err.to_string().contains("vigil ctl login"), "{err}");
    }
}
