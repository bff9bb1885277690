//! `vigil agent` before enrollment and with bad input: clear errors, the
//! right exit codes, nothing written.

mod common;

use std::process::Command;

fn agent(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(common::vigil_bin())
        .arg("agent")
        .arg("--state-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run vigil");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn unenrolled_agent_and_bad_enrollment_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good_pin = format!("sha256:{}", "0".repeat(64));
    let cases: &[(&[&str], i32, &str)] = &[
        (&["status"], 1, "not enrolled"),
        (&["run"], 2, "vigil agent enroll"),
        (
            &[
                "enroll",
                "--server",
                "https://127.0.0.1:9",
                "--token",
                "t",
                "--pin",
                "sha256:00",
            ],
            2,
            "sha256:00",
        ),
        (
            &[
                "enroll",
                "--server",
                "http://127.0.0.1:9",
                "--token",
                "t",
                "--pin",
                &good_pin,
            ],
            2,
            "https only",
        ),
        (
            &[
                "enroll",
                "--server",
                "not a url",
                "--token",
                "t",
                "--pin",
                &good_pin,
            ],
            2,
            "not a url",
        ),
        // Nothing listens on the discard port of loopback: a runtime failure.
        (
            &[
                "enroll",
                "--server",
                "https://127.0.0.1:9",
                "--token",
                "t",
                "--pin",
                &good_pin,
            ],
            1,
            "unreachable",
        ),
    ];
    for (args, code, needle) in cases {
        let (got, text) = agent(dir.path(), args);
        assert_eq!(got, Some(*code), "{args:?}: {text}");
        assert!(text.contains(needle), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
        "failed enrollments write nothing"
    );
}
