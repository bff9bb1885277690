//! What runs on the host: the shell script that puts the agent binary in
//! place, enrolls it and starts it, and the systemd unit it writes. Pure
//! text generation, so every value that ends up in a shell command or a
//! unit file is quoted here and tested here.
//!
//! The push install (over SSH) copies the binary first and then runs
//! [`setup_script`]; the manual install downloads [`install_sh`] with curl,
//! which downloads the binary (same pinned key) and runs the same setup.
//! Both take the single-use enrollment token as their only argument (`$1`),
//! so the script itself holds no secret and can be served to anyone.

use super::InstallError;
use vigil_proto::api::AgentStart;

pub(crate) const DEFAULT_INSTALL_DIR: &str = "/opt/vigil";
pub(crate) const DEFAULT_STATE_DIR: &str = "/var/lib/vigil-agent";
pub(crate) const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";
/// The name of the unit file and of the service.
pub(crate) const UNIT_NAME: &str = "vigil-agent.service";
/// Where the push install uploads the binary before the setup moves it.
pub(crate) const UPLOAD_NAME: &str = "vigil.new";
/// The pid of a detached agent, in the install directory.
pub(crate) const PID_FILE: &str = "vigil-agent.pid";

/// Where the agent goes on the host and how it is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub install_dir: String,
    pub state_dir: String,
    pub unit_dir: String,
    pub start: AgentStart,
}

impl Layout {
    /// The given directories (each absolute, no `..`, no control
    /// characters) or the defaults.
    pub fn new(
        install_dir: Option<&str>,
        state_dir: Option<&str>,
        unit_dir: Option<&str>,
        start: AgentStart,
    ) -> Result<Layout, InstallError> {
        let dir = |field: &'static str, given: Option<&str>, default: &str| {
            let path = given.unwrap_or(default);
            check_dir(field, path).map(|()| path.trim_end_matches('/').to_string())
        };
        Ok(Layout {
            install_dir: dir("install_dir", install_dir, DEFAULT_INSTALL_DIR)?,
            state_dir: dir("state_dir", state_dir, DEFAULT_STATE_DIR)?,
            unit_dir: dir("unit_dir", unit_dir, DEFAULT_UNIT_DIR)?,
            start,
        })
    }

    pub fn binary(&self) -> String {
        format!("{}/vigil", self.install_dir)
    }
}

fn check_dir(field: &'static str, path: &str) -> Result<(), InstallError> {
    let bad = |why: &str| InstallError::Invalid(format!("{field} {path:?}: {why}"));
    if !path.starts_with('/') {
        return Err(bad("must be an absolute path"));
    }
    if path.trim_end_matches('/').is_empty() {
        return Err(bad("must not be the root directory"));
    }
    if path.len() > 240 {
        return Err(bad("is longer than 240 characters"));
    }
    if path.chars().any(char::is_control) {
        return Err(bad("must not contain control characters"));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(bad("must not contain `..`"));
    }
    Ok(())
}

/// `value` as one POSIX shell word: single quotes, with each `'` written
/// as `'\''`. Safe for any text.
pub(crate) fn sh_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `value` as one argument of a systemd `ExecStart=` line: double quotes
/// with C-style escapes, `%` (specifiers) and `$` (variables) doubled.
/// Control characters are refused earlier ([`Layout::new`]).
fn systemd_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `vigil-agent.service`: runs the agent (heartbeats, scan tasks and the
/// identify listener on its default port 47760), restarted when it stops.
pub(crate) fn unit_file(layout: &Layout) -> String {
    format!(
        "[Unit]\n\
         Description=Vigil agent\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         ExecStart={} agent --state-dir {} run\n\
         Restart=always\n\
         RestartSec=10\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        systemd_quote(&layout.binary()),
        systemd_quote(&layout.state_dir),
    )
}

/// The setup, run with `sh -s -- TOKEN` once the binary is at
/// `<install_dir>/vigil.new`: check it runs here, enroll with it (a failed
/// enrollment leaves an earlier install running), stop a detached agent
/// of an earlier install, move the binary in place, write the unit, start
/// the agent. Lines starting `vigil-install:` report progress.
pub(crate) fn setup_script(layout: &Layout, server_url: &str, pin: &str) -> String {
    let mut s = String::from("set -eu\n");
    s.push_str(&preamble(layout));
    s.push_str(&setup_body(layout, server_url, pin));
    s
}

/// The manual installer, served at `/agent/v1/install.sh` and run as
/// `curl … | sh -s -- TOKEN`: downloads the binary over the same pinned
/// TLS connection, then runs the setup. Everything sits in a function
/// called on the last line, so a download cut short runs nothing.
pub(crate) fn install_sh(
    layout: &Layout,
    server_url: &str,
    pin: &str,
    curl_pin: &str,
    download_url: &str,
) -> String {
    let mut s = String::from(
        "#!/bin/sh\n# Vigil agent installer: curl ... | sh -s -- ENROLLMENT_TOKEN (as root)\n\
         set -eu\nvigil_install() {\n",
    );
    s.push_str(&preamble(layout));
    s.push_str(&format!(
        "mkdir -p \"$install_dir\"\n\
         echo \"vigil-install: downloading the agent to $install_dir\"\n\
         curl -fsS --insecure --pinnedpubkey {} -o \"$install_dir/{UPLOAD_NAME}\" {} \
         || fail \"downloading the agent binary failed\"\n",
        sh_quote(curl_pin),
        sh_quote(download_url),
    ));
    s.push_str(&setup_body(layout, server_url, pin));
    s.push_str("}\nvigil_install \"$@\"\n");
    s
}

fn preamble(layout: &Layout) -> String {
    format!(
        "fail() {{ echo \"vigil-install: $*\" >&2; exit 1; }}\n\
         token=\"${{1:-}}\"\n\
         [ -n \"$token\" ] || fail \"usage: sh -s -- ENROLLMENT_TOKEN\"\n\
         umask 022\n\
         install_dir={}\n\
         state_dir={}\n\
         unit_dir={}\n\
         start={}\n\
         bin=\"$install_dir/vigil\"\n\
         pidfile=\"$install_dir/{PID_FILE}\"\n\
         log=\"$install_dir/vigil-agent.log\"\n",
        sh_quote(&layout.install_dir),
        sh_quote(&layout.state_dir),
        sh_quote(&layout.unit_dir),
        sh_quote(layout.start.as_str()),
    )
}

fn setup_body(layout: &Layout, server_url: &str, pin: &str) -> String {
    format!(
        r#"new="$install_dir/{UPLOAD_NAME}"
[ -f "$new" ] || fail "the agent binary was not copied to $new"
chmod 755 "$new"
"$new" --version >/dev/null 2>&1 || fail "the agent binary does not run on this host ($(uname -sm))"
mkdir -p "$state_dir"
chmod 700 "$state_dir"
"$new" agent --state-dir "$state_dir" enroll --server {server} --token "$token" --pin {pin}
if [ -f "$pidfile" ]; then
    old=$(cat "$pidfile")
    kill "$old" 2>/dev/null || true
    n=0
    while kill -0 "$old" 2>/dev/null && [ "$n" -lt 20 ]; do sleep 1; n=$((n + 1)); done
    rm -f "$pidfile"
fi
mv -f "$new" "$bin"
mkdir -p "$unit_dir"
printf '%s' {unit} >"$unit_dir/{UNIT_NAME}"
echo "vigil-install: wrote $unit_dir/{UNIT_NAME}"
if [ "$start" = auto ]; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        start=systemd
    else
        start=detached
        echo "vigil-install: systemd was not found on this host"
    fi
fi
if [ "$start" = systemd ]; then
    systemctl daemon-reload
    systemctl enable {UNIT_NAME}
    systemctl restart {UNIT_NAME}
    echo "vigil-install: started {UNIT_NAME} with systemd"
else
    if command -v setsid >/dev/null 2>&1; then
        setsid "$bin" agent --state-dir "$state_dir" run </dev/null >>"$log" 2>&1 &
    else
        nohup "$bin" agent --state-dir "$state_dir" run </dev/null >>"$log" 2>&1 &
    fi
    pid=$!
    echo "$pid" >"$pidfile"
    sleep 1
    kill -0 "$pid" 2>/dev/null || fail "the agent exited at once: $(tail -n 5 "$log")"
    echo "vigil-install: started the agent detached (pid $pid, pid file $pidfile, log $log)"
fi
"#,
        server = sh_quote(server_url),
        pin = sh_quote(pin),
        unit = sh_quote(&unit_file(layout)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dir: &str) -> Layout {
        Layout::new(Some(dir), None, None, AgentStart::Detached).expect("valid")
    }

    #[test]
    fn shell_quoting_survives_every_character() {
        for value in [
            "plain",
            "it's",
            "a b",
            "$(rm -rf /)",
            "`x`",
            "\"q\"",
            "\\",
            "'",
            "",
        ] {
            let quoted = sh_quote(value);
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {quoted}"))
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), value, "{quoted}");
        }
    }

    #[test]
    fn unit_file_quotes_paths_for_systemd() {
        let unit = unit_file(&layout("/opt/my vigil"));
        assert!(
            unit.contains(
                "ExecStart=\"/opt/my vigil/vigil\" agent --state-dir \"/var/lib/vigil-agent\" run\n"
            ),
            "{unit}"
        );
        assert!(unit.contains("WantedBy=multi-user.target"));
        assert!(unit.contains("Restart=always"));
        let odd = unit_file(&layout("/opt/100%\"$HOME\\x"));
        assert!(
            odd.contains(r#"ExecStart="/opt/100%%\"$$HOME\\x/vigil""#),
            "{odd}"
        );
    }

    #[test]
    fn directories_are_checked() {
        let ok = Layout::new(None, None, None, AgentStart::Auto).expect("defaults");
        assert_eq!(ok.install_dir, DEFAULT_INSTALL_DIR);
        assert_eq!(ok.binary(), "/opt/vigil/vigil");
        assert_eq!(layout("/tmp/x/").install_dir, "/tmp/x");
        for (bad, why) in [
            ("opt/vigil", "absolute"),
            ("/", "root directory"),
            ("/opt/../etc", ".."),
            ("/opt/a\nb", "control"),
        ] {
            let err = Layout::new(Some(bad), None, None, AgentStart::Auto)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            let msg = err.to_string();
            assert!(msg.contains("install_dir") && msg.contains(why), "{msg}");
        }
        let long = format!("/{}", "a".repeat(300));
        assert!(Layout::new(None, Some(&long), None, AgentStart::Auto).is_err());
    }

    #[test]
    fn scripts_quote_every_value_and_parse() {
        let l = Layout::new(
            Some("/tmp/it's here"),
            Some("/tmp/st$(x)"),
            Some("/tmp/u`y`"),
            AgentStart::Auto,
        )
        .expect("valid");
        let setup = setup_script(&l, "https://h:8443", "sha256:ab");
        assert!(
            setup.contains(r"install_dir='/tmp/it'\''s here'"),
            "{setup}"
        );
        assert!(setup.contains("state_dir='/tmp/st$(x)'"), "{setup}");
        assert!(setup.contains("--server 'https://h:8443'"));
        assert!(!setup.contains("vge_"), "the script holds no token");
        let sh = install_sh(
            &l,
            "https://h:8443",
            "sha256:ab",
            "sha256//AAA=",
            "https://h/d",
        );
        assert!(sh.contains("--pinnedpubkey 'sha256//AAA='"), "{sh}");
        assert!(sh.ends_with("vigil_install \"$@\"\n"));
        for script in [setup, sh] {
            let status = std::process::Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(&script)
                .status()
                .expect("sh runs");
            assert!(status.success(), "not valid sh:\n{script}");
        }
    }

    /// The setup script run for real (the binary is a stub that records its
    /// arguments): enrolls, writes the unit, starts detached, records the pid.
    #[test]
    fn setup_script_runs_with_a_stub_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().display().to_string();
        let l = Layout::new(
            Some(&format!("{base}/opt dir")),
            Some(&format!("{base}/state")),
            Some(&format!("{base}/units")),
            AgentStart::Detached,
        )
        .expect("valid");
        std::fs::create_dir_all(&l.install_dir).expect("mkdir");
        let args_file = format!("{base}/args");
        let stub = format!(
            "#!/bin/sh\necho \"$*\" >> {}\ncase \"$*\" in *' run') exec sleep 30;; esac\n",
            sh_quote(&args_file)
        );
        let new = format!("{}/{UPLOAD_NAME}", l.install_dir);
        std::fs::write(&new, stub).expect("stub");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(setup_script(&l, "https://h:8443", "sha256:ab"))
            .args(["sh", "vge_tok'en"])
            .output()
            .expect("sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("started the agent detached"), "{stdout}");
        let args = std::fs::read_to_string(&args_file).expect("args");
        assert!(
            args.contains(&format!(
                "agent --state-dir {base}/state enroll --server https://h:8443 --token vge_tok'en --pin sha256:ab"
            )),
            "{args}"
        );
        let unit = std::fs::read_to_string(format!("{base}/units/{UNIT_NAME}")).expect("unit");
        assert_eq!(unit, unit_file(&l));
        let pid = std::fs::read_to_string(format!("{}/{PID_FILE}", l.install_dir)).expect("pid");
        let pid: i32 = pid.trim().parse().expect("a pid");
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        assert!(!std::path::Path::new(&new).exists(), "the upload was moved");
    }
}
