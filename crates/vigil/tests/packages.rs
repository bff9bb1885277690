//! The Linux packages `scripts/package` makes (in `target/dist`, or
//! `VIGIL_DIST_DIR`), used as an admin would use them:
//!
//! - the `.deb`s are installed on this machine with dpkg; their units pass
//!   `systemd-analyze verify`; the installed server, its settings edited to
//!   free ports on 127.0.0.1, runs by hand as its `vigil` user and answers
//!   `/readyz`; `dpkg -r` keeps its data and `dpkg -P` deletes it; the agent's
//!   package likewise, and the agent unit's user and capabilities are shown
//!   to be enough to name another user's process (and not to write its
//!   memory);
//! - the tarball's binary is static and runs, its install.sh stages a tree;
//! - the OCI archive holds that same binary with its entrypoint, and runs
//!   under podman where this machine can run containers.
//!
//! The default settings are checked against the binary's flags without any
//! package. Everything else prints `SKIPPED` and passes without the packages
//! or root, unless `VIGIL_REQUIRE_PACKAGES=1` (CI, after `scripts/package`),
//! which turns that into a failure; a container that cannot run here fails
//! only with `VIGIL_REQUIRE_PODMAN=1`.
//!
//! The dpkg test changes the system while it runs. It refuses to start when
//! Vigil is installed here, and a guard purges what it installed, stops
//! what it started and deletes the users the packages created, also when a
//! check fails half-way. Only 127.0.0.1 is ever listened on or connected to.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dist_dir() -> PathBuf {
    std::env::var_os("VIGIL_DIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/dist"))
}

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// True when nothing is missing; otherwise prints why the test skips, or
/// fails when `VIGIL_REQUIRE_PACKAGES=1`.
fn have(missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    assert!(
        !required("VIGIL_REQUIRE_PACKAGES"),
        "VIGIL_REQUIRE_PACKAGES=1 but: {}",
        missing.join("; ")
    );
    eprintln!("SKIPPED: {}", missing.join("; "));
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn tool_missing(tool: &str, package: &str) -> Option<String> {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(tool).is_file());
    (!found).then(|| format!("{tool} not found (Debian's {package})"))
}

/// An artifact of `scripts/package`, or why it is missing.
fn artifact(name: &str) -> Result<PathBuf, String> {
    let path = dist_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: run `bash scripts/package` first",
            path.display()
        ))
    }
}

/// The packages' version: 1.0.0-rc1 is 1.0.0~rc1 in Debian.
fn deb_version() -> String {
    VERSION.replacen('-', "~", 1)
}

fn deb(name: &str) -> Result<PathBuf, String> {
    artifact(&format!("{name}_{}_amd64.deb", deb_version()))
}

fn tarball() -> Result<PathBuf, String> {
    artifact(&format!("vigil-{VERSION}-x86_64-linux.tar.gz"))
}

fn oci_archive() -> Result<PathBuf, String> {
    artifact(&format!("vigil-{VERSION}-x86_64-linux-oci.tar"))
}

fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "{cmd:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`; its output, or the test fails with it.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{}", describe(cmd, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cmd` ran and exited with 0.
fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A port nothing listens on now, on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The status of `GET path` on 127.0.0.1:port, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

/// Waits until `GET /readyz` on the port says 200, failing with `log` if
/// `alive` says the server is gone or a minute passes.
fn wait_ready(port: u16, mut alive: impl FnMut() -> bool, log: &Path) {
    let started = Instant::now();
    while http_status(port, "/readyz") != Some(200) {
        let log = || std::fs::read_to_string(log).unwrap_or_default();
        assert!(alive(), "the server exited:\n{}", log());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no ready server on 127.0.0.1:{port} after a minute:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `text` with the line that starts with `key = ` replaced.
fn set_key(text: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key} = ");
    let mut found = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                found += 1;
                format!("{prefix}{value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(found, 1, "one `{key} = …` line expected in:\n{text}");
    lines.join("\n") + "\n"
}

/// `vigil COMMAND --config FILE --print-config` with no `VIGIL_…`
/// variables: the effective settings, or the test fails with the error.
fn print_config(vigil: &Path, command: &[&str], file: &Path) -> String {
    let mut cmd = Command::new(vigil);
    cmd.args(command)
        .arg("--config")
        .arg(file)
        .arg("--print-config")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    run(&mut cmd)
}

/// The default settings files parse, with every key the comments suggest
/// uncommented too: the examples name real flags of this binary.
#[test]
fn default_settings_name_real_flags() {
    let vigil = Path::new(env!("CARGO_BIN_EXE_vigil"));
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("smtp-password");
    std::fs::write(&secret, "not a real password\n").expect("write");
    for (file, command) in [
        ("packaging/etc/server.toml", &["server"][..]),
        ("packaging/oci/server.toml", &["server"][..]),
        ("packaging/etc/agent.toml", &["agent", "run"][..]),
    ] {
        let path = repo().join(file);
        let text = std::fs::read_to_string(&path).expect("read settings");
        print_config(vigil, command, &path);
        // Every `# key = value` line and `# [table]` line, uncommented.
        let all: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[')
                        || rest.split_once(" = ").is_some_and(|(k, _)| {
                            !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        }) =>
                {
                    rest.replace("/etc/vigil/smtp-password", secret.to_str().expect("path"))
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let uncommented = dir.path().join("all.toml");
        std::fs::write(&uncommented, all).expect("write");
        let effective = print_config(vigil, command, &uncommented);
        let from_file = effective.lines().filter(|l| l.contains("# file")).count();
        let keys = text
            .lines()
            .filter(|l| {
                let l = l.strip_prefix("# ").unwrap_or(l);
                l.split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            })
            .count();
        assert_eq!(
            from_file, keys,
            "{file}: every key (set or suggested) is a setting:\n{effective}"
        );
    }
    // The units read the files the packages install.
    for (unit, conf) in [("vigil-server", "server"), ("vigil-agent", "agent")] {
        let text =
            std::fs::read_to_string(repo().join(format!("packaging/systemd/{unit}.service")))
                .expect("unit");
        assert!(
            text.contains(&format!("--config /etc/vigil/{conf}.toml\n")),
            "{unit}.service does not read /etc/vigil/{conf}.toml"
        );
    }
}

/// `tar -xf ARCHIVE -C DIR`.
fn untar(archive: &Path, dir: &Path) {
    run(Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dir));
}

/// The binary has no program interpreter and needs no shared library.
fn assert_static(binary: &Path) {
    let headers = run(Command::new("readelf").arg("-lW").arg(binary));
    assert!(
        !headers.contains("program interpreter"),
        "{} is dynamically linked:\n{headers}",
        binary.display()
    );
    let dynamic = run(Command::new("readelf").arg("-dW").arg(binary));
    assert!(
        !dynamic.contains("(NEEDED)"),
        "{} needs shared libraries:\n{dynamic}",
        binary.display()
    );
    if tool_missing("file", "file").is_none() {
        let kind = run(Command::new("file").arg("-b").arg(binary));
        assert!(
            kind.contains("statically linked") || kind.contains("static-pie linked"),
            "{kind}"
        );
    }
}

fn version_of(binary: &Path) -> String {
    run(Command::new(binary).arg("--version"))
        .trim()
        .to_string()
}

#[test]
fn tarball_holds_a_static_binary_that_runs_and_installs() {
    let mut missing: Vec<String> = tarball().err().into_iter().collect();
    missing.extend(tool_missing("readelf", "binutils"));
    if !have(&missing) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    untar(&tarball().unwrap(), dir.path());
    let top = dir.path().join(format!("vigil-{VERSION}-x86_64-linux"));
    for file in [
        "vigil",
        "install.sh",
        "systemd/vigil-server.service",
        "systemd/vigil-agent.service",
        "etc/server.toml",
        "etc/agent.toml",
        "completions/vigil.bash",
        "completions/_vigil",
        "completions/vigil.fish",
        "man/vigil.1",
        "man/vigil-server.1",
    ] {
        assert!(top.join(file).is_file(), "no {file} in the tarball");
    }
    let vigil = top.join("vigil");
    assert_static(&vigil);
    assert_eq!(version_of(&vigil), format!("vigil {VERSION}"));

    // install.sh into a staging tree (no users, no systemctl).
    let stage = dir.path().join("stage");
    let out = run(Command::new("sh")
        .arg(top.join("install.sh"))
        .env("DESTDIR", &stage)
        .env("PREFIX", "/usr/local"));
    assert!(out.contains(&format!("installed Vigil {VERSION}")), "{out}");
    for file in [
        "usr/local/bin/vigil",
        "usr/local/share/man/man1/vigil-server.1",
        "usr/local/share/bash-completion/completions/vigil",
        "usr/local/share/zsh/site-functions/_vigil",
        "usr/local/share/fish/vendor_completions.d/vigil.fish",
        "etc/vigil/server.toml",
        "etc/vigil/agent.toml",
    ] {
        assert!(stage.join(file).is_file(), "install.sh made no {file}");
    }
    let unit = std::fs::read_to_string(stage.join("etc/systemd/system/vigil-server.service"))
        .expect("installed unit");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/vigil server --config /etc/vigil/server.toml"),
        "{unit}"
    );
    // A second run keeps edited settings and puts the new default beside.
    std::fs::write(stage.join("etc/vigil/server.toml"), "# mine\n").expect("edit");
    run(Command::new("sh")
        .arg(top.join("install.sh"))
        .env("DESTDIR", &stage)
        .env("PREFIX", "/usr/local"));
    assert_eq!(
        std::fs::read_to_string(stage.join("etc/vigil/server.toml")).unwrap(),
        "# mine\n"
    );
    assert!(stage.join("etc/vigil/server.toml.new").is_file());
}

/// A JSON blob of an OCI layout, by digest (`sha256:…`).
fn blob(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').expect("digest");
    layout.join("blobs").join(alg).join(hex)
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read JSON")).expect("JSON")
}

/// `/usr/bin/vigil` of the deb, extracted into `dir`.
fn deb_binary(deb: &Path, dir: &Path) -> PathBuf {
    let tree = dir.join("deb");
    std::fs::create_dir_all(&tree).expect("mkdir");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree));
    tree.join("usr/bin/vigil")
}

#[test]
fn oci_archive_runs_the_same_static_binary_from_scratch() {
    let mut missing: Vec<String> = [oci_archive(), tarball(), deb("vigil")]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    missing.extend(tool_missing("dpkg-deb", "dpkg"));
    if !have(&missing) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(&layout).expect("mkdir");
    untar(&oci_archive().unwrap(), &layout);
    let index = json_file(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "{index}");
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        format!("localhost/vigil:{VERSION}")
    );
    let manifest = json_file(&blob(&layout, manifests[0]["digest"].as_str().unwrap()));
    let config = json_file(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/bin/vigil"]));
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["server", "--config", "/etc/vigil/server.toml"])
    );
    assert_eq!(c["User"], "65532:65532", "not root in the container");
    assert!(c["Volumes"].get("/var/lib/vigil").is_some(), "{c}");
    for port in ["8080/tcp", "8443/tcp"] {
        assert!(c["ExposedPorts"].get(port).is_some(), "{c}");
    }
    assert_eq!(c["Labels"]["org.opencontainers.image.version"], VERSION);

    // FROM scratch: one layer, the files scripts/package put there.
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    let layer = blob(&layout, layers[0]["digest"].as_str().unwrap());
    let listing = run(Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(&layer));
    let entry = |path: &str| {
        listing
            .lines()
            .find(|l| {
                l.trim_end()
                    .trim_end_matches('/')
                    .ends_with(&format!(" {path}"))
            })
            .unwrap_or_else(|| panic!("no {path} in the image:\n{listing}"))
            .to_string()
    };
    assert!(entry("usr/bin/vigil").starts_with("-rwxr-xr-x 0/0 "));
    assert!(entry("etc/vigil/server.toml").starts_with("-rw-r--r-- 0/0 "));
    assert!(entry("var/lib/vigil").starts_with("drwxr-xr-x 65532/65532 "));
    assert!(entry("var/lib").starts_with("drwxr-xr-x 0/0 "));
    assert!(entry("tmp").starts_with("drwxrwxrwt 0/0 "));
    entry("etc/passwd");

    // One binary in all three: the image's, the tarball's and the deb's.
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).expect("mkdir");
    untar(&layer, &rootfs);
    let image_binary = std::fs::read(rootfs.join("usr/bin/vigil")).expect("image binary");
    untar(&tarball().unwrap(), dir.path());
    let tar_binary = dir
        .path()
        .join(format!("vigil-{VERSION}-x86_64-linux/vigil"));
    assert!(
        image_binary == std::fs::read(&tar_binary).expect("tarball binary"),
        "the image and the tarball hold different binaries"
    );
    let deb_bin = deb_binary(&deb("vigil").unwrap(), dir.path());
    assert!(
        image_binary == std::fs::read(&deb_bin).expect("deb binary"),
        "the image and the deb hold different binaries"
    );
    // The image's settings are valid for its binary.
    let settings = print_config(
        &tar_binary,
        &["server"],
        &rootfs.join("etc/vigil/server.toml"),
    );
    assert!(settings.contains("listen = \"0.0.0.0:8080\""), "{settings}");

    run_in_podman(&oci_archive().unwrap(), dir.path());
}

/// podman with its own storage under `dir` (vfs: plain directories), so the
/// machine's images and containers are not touched.
struct Podman {
    dir: PathBuf,
    runtime: Option<&'static str>,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .arg(format!(
                "--runtime-flag=root={}",
                self.dir.join("runtime").display()
            ));
        if let Some(runtime) = self.runtime {
            cmd.args(["--runtime", runtime]);
        }
        cmd
    }

    /// `podman run --rm ARGS…` with limits this process already has (a
    /// container may not raise them without CAP_SYS_RESOURCE).
    fn run_args(&self) -> Command {
        let mut cmd = self.cmd();
        cmd.args(["run", "--rm"]).args(limits());
        cmd
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "--all", "--force"]).output();
        let _ = self.cmd().args(["rmi", "--all", "--force"]).output();
        // Container shm mounts live under the run root: none may outlive it.
        let prefix = format!("{}/", self.dir.display());
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        ours.sort_by(|a, b| b.cmp(a));
        for m in ours {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

/// `--ulimit` for nofile and nproc at or below this process's limits.
fn limits() -> Vec<String> {
    let mut args = Vec::new();
    for (name, resource) in [
        ("nofile", libc::RLIMIT_NOFILE),
        ("nproc", libc::RLIMIT_NPROC),
    ] {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes only `lim`.
        if unsafe { libc::getrlimit(resource, &mut lim) } == 0 {
            let n = lim.rlim_max.min(65536) / 2;
            args.push("--ulimit".to_string());
            args.push(format!("{name}={n}:{n}"));
        }
    }
    args
}

/// Loads the archive into a private podman store and runs it: `--version`
/// without a network, then the server with the host's network and its
/// settings moved to free ports on 127.0.0.1, until `/readyz` answers.
fn run_in_podman(archive: &Path, dir: &Path) {
    if !is_root() || tool_missing("podman", "podman").is_some() {
        assert!(
            !required("VIGIL_REQUIRE_PODMAN"),
            "VIGIL_REQUIRE_PODMAN=1 but podman or root is missing"
        );
        eprintln!("SKIPPED (running the image): needs root and podman");
        return;
    }
    let image = format!("localhost/vigil:{VERSION}");
    let mut podman = Podman {
        dir: dir.join("podman"),
        runtime: None,
    };
    run(podman.cmd().arg("load").arg("-i").arg(archive));
    // The default runtime (crun) first, then runc, which copes with
    // machines crun refuses (cgroup v1 + v2 "hybrid" hierarchies).
    let mut errors = Vec::new();
    for runtime in [None, Some("runc")] {
        if runtime.is_some_and(|r| tool_missing(r, r).is_some()) {
            continue;
        }
        podman.runtime = runtime;
        let mut cmd = podman.run_args();
        cmd.args(["--network", "none", &image, "--version"]);
        let out = cmd.output().expect("podman");
        if out.status.success() {
            if !errors.is_empty() {
                eprintln!("note: containers run with runc here, not with: {errors:?}");
            }
            errors.clear();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                format!("vigil {VERSION}")
            );
            break;
        }
        errors.push(format!(
            "{}: {}",
            runtime.unwrap_or("default runtime"),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if !errors.is_empty() {
        assert!(
            !required("VIGIL_REQUIRE_PODMAN"),
            "VIGIL_REQUIRE_PODMAN=1 but no container runs here: {errors:?}"
        );
        eprintln!("SKIPPED (running the image): no container runs here: {errors:?}");
        return;
    }

    let (api, agent_api) = (free_port(), free_port());
    let settings = dir.join("container-server.toml");
    let text = std::fs::read_to_string(repo().join("packaging/oci/server.toml")).expect("read");
    let text = set_key(&text, "listen", &format!("\"127.0.0.1:{api}\""));
    let text = set_key(&text, "agent_listen", &format!("\"127.0.0.1:{agent_api}\""));
    std::fs::write(&settings, text).expect("write");
    let name = format!("vigil-packages-test-{}", std::process::id());
    let mut cmd = podman.run_args();
    cmd.args(["-d", "--name", &name, "--network", "host", "-v"])
        .arg(format!("{}:/etc/vigil/server.toml:ro", settings.display()))
        .arg(&image);
    run(&mut cmd);
    let log = dir.join("container.log");
    wait_ready(
        api,
        || {
            let out = podman
                .cmd()
                .args(["logs", &name])
                .output()
                .expect("podman logs");
            let _ = std::fs::write(&log, [out.stdout, out.stderr].concat());
            podman
                .cmd()
                .args(["inspect", "--format", "{{.State.Running}}", &name])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
        },
        &log,
    );
    let pid = run(podman
        .cmd()
        .args(["inspect", "--format", "{{.State.Pid}}", &name]));
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).expect("status");
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t65532\t")),
        "the server does not run as 65532:\n{status}"
    );
    run(podman.cmd().args(["stop", "--time", "20", &name]));
}

// ---- the .debs, installed on this machine ----

const PACKAGES: [&str; 3] = ["vigil-server", "vigil-agent", "vigil"];
const USERS: [&str; 2] = ["vigil", "vigil-agent"];
/// What the packages create or keep; none may be here before or after.
const PATHS: [&str; 7] = [
    "/usr/bin/vigil",
    "/etc/vigil",
    "/var/lib/vigil",
    "/var/lib/vigil-agent",
    "/usr/lib/systemd/system/vigil-server.service",
    "/etc/systemd/system/vigil-server.service",
    "/etc/systemd/system/vigil-agent.service",
];

fn user_exists(user: &str) -> bool {
    succeeds(Command::new("getent").args(["passwd", user]))
}

fn group_exists(group: &str) -> bool {
    succeeds(Command::new("getent").args(["group", group]))
}

/// dpkg's state of a package: "install ok installed", "deinstall ok
/// config-files", or "" when dpkg does not know it.
fn dpkg_status(package: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `dpkg ARGS…`, waiting for the dpkg lock if apt holds it.
fn dpkg(args: &[&str]) -> Output {
    let started = Instant::now();
    loop {
        let out = Command::new("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("dpkg");
        let locked = String::from_utf8_lossy(&out.stderr).contains("lock");
        if out.status.success() || !locked || started.elapsed() > Duration::from_secs(120) {
            return out;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn dpkg_ok(args: &[&str]) {
    let out = dpkg(args);
    assert!(
        out.status.success(),
        "dpkg {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Undoes the test's changes when dropped, failed or not: stops the server
/// it started, purges the packages, deletes the users they created.
struct Cleanup {
    users_before: Vec<&'static str>,
    server: Option<Child>,
    sleeper: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(server) = &mut self.server {
            stop(server);
        }
        if let Some(sleeper) = &mut self.sleeper {
            let _ = sleeper.kill();
            let _ = sleeper.wait();
        }
        let installed: Vec<&str> = PACKAGES
            .into_iter()
            .filter(|p| !dpkg_status(p).is_empty())
            .collect();
        if !installed.is_empty() {
            let out = dpkg(&[&["--purge"][..], &installed].concat());
            if !out.status.success() {
                eprintln!(
                    "cleanup: dpkg --purge {installed:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        for user in USERS {
            if !self.users_before.contains(&user) && user_exists(user) {
                let _ = Command::new("userdel").arg(user).status();
                if group_exists(user) {
                    let _ = Command::new("groupdel").arg(user).status();
                }
            }
        }
    }
}

/// SIGTERM to `child` (runuser, which passes it on to the server), then
/// SIGKILL if it has not exited within 30 seconds.
fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `systemd-analyze verify` of an installed unit: no complaint about it.
fn verify_unit(unit: &str) {
    let path = format!("/usr/lib/systemd/system/{unit}");
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify");
    // Its Documentation= names manual pages, checked when man is here.
    if tool_missing("man", "man-db").is_some() {
        cmd.arg("--man=no");
    }
    let out = cmd.arg(&path).output().expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_it: Vec<&str> = stderr.lines().filter(|l| l.contains(unit)).collect();
    assert!(
        out.status.success() && about_it.is_empty(),
        "{}",
        describe(&cmd, &out)
    );
}

/// A process's uid, from /proc.
fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn uid_of_user(user: &str) -> u32 {
    run(Command::new("id").args(["-u", user]))
        .trim()
        .parse()
        .expect("uid")
}

/// The processes running `exe` that are `pid` or its children (runuser
/// may run the command in a child, to close its PAM session after it).
fn running_under(pid: u32, exe: &Path) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == exe))
        .filter(|p| {
            *p == pid
                || std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                    s.rsplit_once(") ")
                        .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok())
                        == Some(pid)
                })
        })
        .collect()
}

fn owner(path: &str) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// Anything deb-systemd-helper keeps about our units.
fn systemd_helper_state() -> Vec<PathBuf> {
    [
        "/var/lib/systemd/deb-systemd-helper-enabled",
        "/var/lib/systemd/deb-systemd-helper-masked",
    ]
    .iter()
    .flat_map(|d| {
        walk(Path::new(d))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("vigil-"))
    })
    .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            let mut v = vec![p.clone()];
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                v.extend(walk(&p));
            }
            v
        })
        .collect()
}

fn existing(paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| Path::new(p).symlink_metadata().is_ok())
        .map(|p| p.to_string())
        .collect()
}

#[test]
fn debs_install_run_remove_and_purge() {
    let mut missing: Vec<String> = ["vigil", "vigil-server", "vigil-agent"]
        .into_iter()
        .filter_map(|p| deb(p).err())
        .collect();
    if !is_root() {
        missing.push("needs root (dpkg -i on this machine)".into());
    }
    for (tool, package) in [
        ("dpkg", "dpkg"),
        ("systemd-analyze", "systemd"),
        ("adduser", "adduser"),
        ("runuser", "util-linux"),
        ("setpriv", "util-linux"),
        ("userdel", "passwd"),
    ] {
        missing.extend(tool_missing(tool, package));
    }
    if missing.is_empty() {
        // Never on a machine that has Vigil: purging would delete its data.
        let known: Vec<&str> = PACKAGES
            .into_iter()
            .filter(|p| !dpkg_status(p).is_empty())
            .collect();
        if !known.is_empty() {
            missing.push(format!("Vigil's packages are on this machine: {known:?}"));
        }
        let there = existing(&PATHS);
        if !there.is_empty() {
            missing.push(format!("Vigil's files are on this machine: {there:?}"));
        }
    }
    if !have(&missing) {
        return;
    }
    let mut cleanup = Cleanup {
        users_before: USERS.into_iter().filter(|u| user_exists(u)).collect(),
        server: None,
        sleeper: None,
    };
    let helper_state_before = systemd_helper_state();
    let (vigil_deb, server_deb, agent_deb) = (
        deb("vigil").unwrap(),
        deb("vigil-server").unwrap(),
        deb("vigil-agent").unwrap(),
    );

    // Install: the binary's package and the server's.
    dpkg_ok(&[
        "-i",
        vigil_deb.to_str().unwrap(),
        server_deb.to_str().unwrap(),
    ]);
    for p in ["vigil", "vigil-server"] {
        assert_eq!(dpkg_status(p), "install ok installed");
    }
    let vigil = Path::new("/usr/bin/vigil");
    assert_static(vigil);
    assert_eq!(version_of(vigil), format!("vigil {VERSION}"));
    // Files as shipped (md5sums), conffiles registered.
    let out = dpkg(&["--verify", "vigil", "vigil-server"]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "dpkg --verify: {out:?}"
    );
    let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "vigil-server"]));
    assert!(conffiles.contains("/etc/vigil/server.toml"), "{conffiles}");
    for file in [
        "/usr/share/man/man1/vigil.1.gz",
        "/usr/share/man/man1/vigil-server.1.gz",
        "/usr/share/bash-completion/completions/vigil",
        "/usr/share/zsh/vendor-completions/_vigil",
        "/usr/share/fish/vendor_completions.d/vigil.fish",
        "/usr/share/doc/vigil-server/copyright",
    ] {
        assert!(Path::new(file).is_file(), "no {file}");
    }
    let passwd = run(Command::new("getent").args(["passwd", "vigil"]));
    assert!(
        passwd
            .trim_end()
            .ends_with(":/var/lib/vigil:/usr/sbin/nologin"),
        "{passwd}"
    );
    let vigil_uid = uid_of_user("vigil");
    assert!(vigil_uid < 1000, "not a system user: {passwd}");
    let (uid, _, mode) = owner("/var/lib/vigil");
    assert_eq!((uid, mode), (vigil_uid, 0o750), "/var/lib/vigil");
    verify_unit("vigil-server.service");
    // Not enabled on install (see packaging/deb/postinst).
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/vigil-server.service").exists()
    );

    // The admin's edit: free ports on 127.0.0.1.
    let (api, agent_api) = (free_port(), free_port());
    let conf = "/etc/vigil/server.toml";
    let text = std::fs::read_to_string(conf).expect("read settings");
    let text = set_key(&text, "listen", &format!("\"127.0.0.1:{api}\""));
    let text = set_key(&text, "agent_listen", &format!("\"127.0.0.1:{agent_api}\""));
    std::fs::write(conf, &text).expect("write settings");

    // The unit's command, by hand, as its user, with a clean environment
    // (as systemd gives it: no VIGIL_… variables of this test's).
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/vigil-server.service").unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let log_dir = tempfile::tempdir().expect("temp dir");
    let log = log_dir.path().join("server.log");
    let log_file = std::fs::File::create(&log).expect("log");
    let server = Command::new("runuser")
        .args(["-u", "vigil", "--"])
        .args(exec.split(' '))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("runuser");
    let runuser = server.id();
    cleanup.server = Some(server);
    wait_ready(
        api,
        || {
            cleanup
                .server
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_none())
        },
        &log,
    );
    let servers = running_under(runuser, vigil);
    assert_eq!(servers.len(), 1, "one server under runuser: {servers:?}");
    assert_eq!(uid_of(servers[0]), Some(vigil_uid), "the server's user");
    assert!(
        TcpStream::connect(("127.0.0.1", agent_api)).is_ok(),
        "the agent API does not listen on 127.0.0.1:{agent_api}"
    );
    // Its data went where the settings say, owned by its user.
    let (uid, _, mode) = owner("/var/lib/vigil/tls/server.key");
    assert_eq!((uid, mode & 0o077), (vigil_uid, 0), "the TLS key");
    stop(cleanup.server.as_mut().unwrap());
    cleanup.server = None;

    // remove keeps the data and the edited settings; purge deletes them.
    dpkg_ok(&["-r", "vigil-server"]);
    assert_eq!(dpkg_status("vigil-server"), "deinstall ok config-files");
    assert!(
        Path::new("/var/lib/vigil/tls/server.crt").is_file(),
        "remove lost the data"
    );
    assert_eq!(std::fs::read_to_string(conf).ok().as_deref(), Some(&*text));
    assert!(!Path::new("/usr/lib/systemd/system/vigil-server.service").exists());
    dpkg_ok(&["-P", "vigil-server"]);
    assert_eq!(dpkg_status("vigil-server"), "");
    assert!(!Path::new("/var/lib/vigil").exists(), "purge kept the data");
    assert!(!Path::new(conf).exists(), "purge kept the settings");

    // The agent's package.
    dpkg_ok(&["-i", agent_deb.to_str().unwrap()]);
    assert_eq!(dpkg_status("vigil-agent"), "install ok installed");
    let out = dpkg(&["--verify", "vigil-agent"]);
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    assert!(Path::new("/etc/vigil/agent.toml").is_file());
    let passwd = run(Command::new("getent").args(["passwd", "vigil-agent"]));
    assert!(
        passwd
            .trim_end()
            .ends_with(":/var/lib/vigil-agent:/usr/sbin/nologin"),
        "{passwd}"
    );
    // Its state dir comes from `vigil agent enroll` (see postinst).
    assert!(!Path::new("/var/lib/vigil-agent").exists());
    verify_unit("vigil-agent.service");
    let settings = print_config(vigil, &["agent", "run"], Path::new("/etc/vigil/agent.toml"));
    assert!(
        settings.contains("state_dir = \"/var/lib/vigil-agent\""),
        "{settings}"
    );
    agent_capabilities_suffice(&mut cleanup);

    // An enrolled agent's state: remove keeps it, purge deletes it.
    std::fs::create_dir_all("/var/lib/vigil-agent").unwrap();
    std::fs::write("/var/lib/vigil-agent/identity.json", "{}").unwrap();
    dpkg_ok(&["-r", "vigil-agent"]);
    assert_eq!(dpkg_status("vigil-agent"), "deinstall ok config-files");
    assert!(Path::new("/var/lib/vigil-agent/identity.json").is_file());
    assert!(Path::new("/etc/vigil/agent.toml").is_file());
    dpkg_ok(&["-P", "vigil-agent"]);
    assert!(
        !Path::new("/var/lib/vigil-agent").exists(),
        "purge kept the state"
    );
    dpkg_ok(&["-P", "vigil"]);
    for p in PACKAGES {
        assert_eq!(dpkg_status(p), "", "{p}");
    }
    assert_eq!(existing(&PATHS), Vec::<String>::new(), "left behind");
    assert_eq!(
        systemd_helper_state(),
        helper_state_before,
        "deb-systemd-helper state left"
    );
    // The users stay after purge, as Debian's do; the guard deletes them.
    assert!(user_exists("vigil") && user_exists("vigil-agent"));
    let users_before = cleanup.users_before.clone();
    drop(cleanup);
    for user in USERS {
        assert_eq!(
            user_exists(user),
            users_before.contains(&user),
            "user {user}"
        );
        assert_eq!(
            group_exists(user),
            users_before.contains(&user),
            "group {user}"
        );
    }
}

/// The capabilities of the agent's unit, as `setpriv` names them
/// (`net_raw,dac_read_search,…`).
fn unit_capabilities() -> String {
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/vigil-agent.service").unwrap();
    let ambient = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("AmbientCapabilities=");
    let user = unit.lines().find_map(|l| l.strip_prefix("User="));
    assert_eq!(user, Some("vigil-agent"));
    ambient
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

/// `setpriv` as the agent's user with `caps` (none if empty), running ARGS.
fn as_agent(caps: &str, args: &[&str]) -> Command {
    let plus: String = caps
        .split(',')
        .filter(|c| !c.is_empty())
        .map(|c| format!(",+{c}"))
        .collect();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=vigil-agent",
        "--regid=vigil-agent",
        "--clear-groups",
    ])
    .arg(format!("--inh-caps=-all{plus}"))
    .arg(format!("--bounding-set=-all{plus}"));
    if !plus.is_empty() {
        cmd.arg(format!("--ambient-caps=-all{plus}"));
    }
    cmd.args(["--no-new-privs", "--"]).args(args);
    cmd
}

/// What the unit's comment claims: with its user and capabilities the agent
/// lists another user's (root's) open files and reads where they point —
/// how it names the process behind a listening port — and opens a packet
/// socket (ARP); without the capabilities it can do neither; either way it
/// cannot write that process's memory.
fn agent_capabilities_suffice(cleanup: &mut Cleanup) {
    let caps = unit_capabilities();
    let sleeper = Command::new("sleep")
        .arg("300")
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep");
    let pid = sleeper.id().to_string();
    cleanup.sleeper = Some(sleeper);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    let exe_link = format!("/proc/{pid}/exe");
    let fds = format!("/proc/{pid}/fd");
    let read_exe = run(&mut as_agent(&caps, &["readlink", &exe_link]));
    assert_eq!(Path::new(read_exe.trim()), exe);
    run(&mut as_agent(&caps, &["ls", &fds]));
    assert!(
        !succeeds(&mut as_agent("", &["readlink", &exe_link])),
        "the agent's user reads root's /proc links without capabilities"
    );
    assert!(!succeeds(&mut as_agent("", &["ls", &fds])));
    // The LAN sweep's packet socket (opened, nothing sent).
    if tool_missing("python3", "python3").is_none() {
        let packet = [
            "python3",
            "-c",
            "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)",
        ];
        run(&mut as_agent(&caps, &packet));
        assert!(
            !succeeds(&mut as_agent("", &packet)),
            "a packet socket without CAP_NET_RAW"
        );
    }
    let mem = format!("exec 3<>/proc/{pid}/mem");
    assert!(
        !succeeds(&mut as_agent(&caps, &["sh", "-c", &mem])),
        "the agent's capabilities open root's process memory for writing"
    );
    let mut sleeper = cleanup.sleeper.take().unwrap();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}
