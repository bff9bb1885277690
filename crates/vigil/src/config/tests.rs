use super::*;
use clap::{value_parser, Arg, ArgAction, Command};
use std::io::Write;

/// A `vigil server` with one flag of each kind the real one has. Names
/// carry `cfgtest` so that their variables are this test's alone.
fn cli() -> Command {
    let server = Command::new("server")
        .arg(
            Arg::new("listen")
                .long("cfgtest-listen")
                .value_parser(value_parser!(std::net::SocketAddr))
                .default_value("127.0.0.1:8080"),
        )
        .arg(
            Arg::new("secs")
                .long("cfgtest-secs")
                .value_parser(value_parser!(u64).range(1..=3600))
                .default_value("30"),
        )
        .arg(
            Arg::new("proxy")
                .long("cfgtest-proxy")
                .action(ArgAction::Append),
        )
        .arg(Arg::new("smtp_host").long("cfgtest-smtp-host"))
        .arg(
            Arg::new("password")
                .long("cfgtest-password")
                .env("CFGTEST_PASSWORD")
                .hide_env_values(true),
        )
        .arg(
            Arg::new("verbose")
                .long("cfgtest-verbose")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new(CONFIG_ID)
                .long("config")
                .value_parser(value_parser!(PathBuf)),
        )
        .arg(
            Arg::new(PRINT_ID)
                .long("print-config")
                .action(ArgAction::SetTrue),
        );
    with_env(
        Command::new("vigil")
            .subcommand(server)
            .subcommand(Command::new("other")),
    )
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

fn run(args: &[&str]) -> Result<Parsed, ConfigError> {
    let argv = std::iter::once("vigil")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect();
    parse(cli(), argv)
}

fn server(parsed: &Parsed) -> &ArgMatches {
    parsed
        .matches
        .subcommand_matches("server")
        .expect("server matches")
}

fn error(args: &[&str]) -> String {
    match run(args) {
        Err(ConfigError::Invalid(msg)) => msg,
        Err(ConfigError::Clap(e)) => panic!("a clap error, not the file's: {e}"),
        Ok(p) => panic!("accepted: {:?}", p.matches),
    }
}

#[test]
fn every_flag_is_a_key_and_a_variable() {
    let help = cli()
        .find_subcommand_mut("server")
        .expect("server")
        .render_help()
        .to_string();
    assert!(help.contains("[env: VIGIL_CFGTEST_LISTEN="), "{help}");
    assert!(help.contains("[env: VIGIL_CFGTEST_SECS="), "{help}");
    // A flag that had a variable keeps it; --print-config gets none.
    assert!(help.contains("[env: CFGTEST_PASSWORD"), "{help}");
    assert!(!help.contains("PRINT_CONFIG"), "{help}");
    // Other commands are left alone.
    let other = cli()
        .find_subcommand("other")
        .map(|c| c.get_arguments().count());
    assert_eq!(other, Some(0));
}

#[test]
fn the_file_fills_what_flags_do_not_set() {
    let f = file(
        "# comment\ncfgtest_listen = \"127.0.0.1:9000\"\ncfgtest_secs = 15\n\
         cfgtest_proxy = [\"10.0.0.1\", \"10.0.0.0/8\"]\ncfgtest_verbose = true\n\
         [cfgtest.smtp]\nhost = \"mail.test\"\n",
    );
    let path = f.path().to_str().expect("utf-8 path");
    let parsed = run(&["server", "--config", path]).expect("parsed");
    let m = server(&parsed);
    assert_eq!(
        m.get_one::<std::net::SocketAddr>("listen")
            .map(|a| a.port()),
        Some(9000)
    );
    assert_eq!(m.get_one::<u64>("secs"), Some(&15));
    let proxies: Vec<&String> = m.get_many("proxy").expect("proxies").collect();
    assert_eq!(proxies, ["10.0.0.1", "10.0.0.0/8"]);
    assert!(m.get_flag("verbose"));
    assert_eq!(
        m.get_one::<String>("smtp_host").map(String::as_str),
        Some("mail.test")
    );

    // A flag wins over the file; what neither sets keeps its default.
    let parsed = run(&["server", "--config", path, "--cfgtest-secs", "40"]).expect("parsed");
    assert_eq!(server(&parsed).get_one::<u64>("secs"), Some(&40));
    let parsed = run(&[
        "server",
        "--config",
        file("").path().to_str().expect("path"),
    ])
    .expect("parsed");
    assert_eq!(server(&parsed).get_one::<u64>("secs"), Some(&30));
}

#[test]
fn a_variable_wins_over_the_file_and_a_flag_over_the_variable() {
    let f = file("cfgtest_smtp_host = \"from-file\"\n");
    let path = f.path().to_str().expect("utf-8 path");
    // SAFETY of the test: only this test reads this variable.
    std::env::set_var("VIGIL_CFGTEST_SMTP_HOST", "from-env");
    let by_env = run(&["server", "--config", path]).expect("parsed");
    let by_flag = run(&[
        "server",
        "--config",
        path,
        "--cfgtest-smtp-host",
        "from-flag",
    ])
    .expect("parsed");
    std::env::remove_var("VIGIL_CFGTEST_SMTP_HOST");
    let host = |p: &Parsed| server(p).get_one::<String>("smtp_host").cloned();
    assert_eq!(host(&by_env).as_deref(), Some("from-env"));
    assert_eq!(host(&by_flag).as_deref(), Some("from-flag"));
}

#[test]
fn mistakes_name_the_key_and_the_line() {
    let f = file(
        "cfgtest_secs = \"abc\"\n\ncfgtest_smtp_hots = \"x\"\ncfgtest_listen = [\"127.0.0.1:1\"]\n\
         cfgtest_verbose = \"yes\"\ncfgtest_proxy = 1.5\nnonsense = 1\n",
    );
    let path = f.path().to_str().expect("utf-8 path");
    let msg = error(&["server", "--config", path]);
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines.len(), 6, "{msg}");
    assert!(
        lines[0].starts_with(&format!("{path}:1: `cfgtest_secs`: invalid value 'abc'")),
        "{msg}"
    );
    assert!(
        lines[1]
            .ends_with(":3: unknown key `cfgtest_smtp_hots` (did you mean `cfgtest_smtp_host`?)"),
        "{msg}"
    );
    assert!(
        lines[2].ends_with(":4: `cfgtest_listen`: takes one value, not a list"),
        "{msg}"
    );
    assert!(
        lines[3].ends_with(":5: `cfgtest_verbose`: give true or false"),
        "{msg}"
    );
    assert!(
        lines[4].ends_with(":6: `cfgtest_proxy`: 1.5 is not a whole number"),
        "{msg}"
    );
    assert!(
        lines[5].ends_with(
            ":7: unknown key `nonsense`: the keys are `vigil server --help`'s flags with _ for -"
        ),
        "{msg}"
    );

    // Out of range, a key twice (table and flat), a flag-only key.
    let f = file("cfgtest_secs = 0\ncfgtest_smtp_host = \"a\"\n[cfgtest_smtp]\nhost = \"b\"\n");
    let msg = error(&["server", "--config", f.path().to_str().expect("path")]);
    assert!(
        msg.contains(":1: `cfgtest_secs`: invalid value '0'"),
        "{msg}"
    );
    assert!(
        msg.contains(":4: `cfgtest_smtp_host` is set on line 2 already"),
        "{msg}"
    );
    let f = file("config = \"other.toml\"\n");
    let msg = error(&["server", "--config", f.path().to_str().expect("path")]);
    assert!(
        msg.ends_with(":1: `config` is a command-line option, not a key of the file"),
        "{msg}"
    );

    // Not TOML; no file.
    let f = file("cfgtest_secs = \n");
    let msg = error(&["server", "--config", f.path().to_str().expect("path")]);
    assert!(msg.contains("TOML parse error at line 1"), "{msg}");
    let msg = error(&["server", "--config", "/nonexistent/vigil.toml"]);
    assert!(
        msg.starts_with("reading /nonexistent/vigil.toml: "),
        "{msg}"
    );
}

#[test]
fn secrets_come_from_files_and_are_never_printed() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("pw"), "s3cret-from-file\n").expect("write");
    let config = dir.path().join("server.toml");
    // Relative to the config file's directory.
    std::fs::write(&config, "cfgtest_password_file = \"pw\"\n").expect("write");
    let path = config.to_str().expect("utf-8 path");
    let parsed = run(&["server", "--config", path, "--print-config"]).expect("parsed");
    assert_eq!(
        server(&parsed)
            .get_one::<String>("password")
            .map(String::as_str),
        Some("s3cret-from-file")
    );
    let shown = parsed.print.expect("printed");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains(&format!(
            "cfgtest_password = \"(redacted)\"  # file {path}:1"
        )),
        "{shown}"
    );

    // An empty or missing secret file is an error, not an empty secret.
    std::fs::write(dir.path().join("empty"), "\n").expect("write");
    std::fs::write(&config, "cfgtest_password_file = \"empty\"\n").expect("write");
    assert!(error(&["server", "--config", path]).contains("empty"));
    std::fs::write(&config, "cfgtest_password_file = \"missing\"\n").expect("write");
    assert!(error(&["server", "--config", path]).contains("reading "));
    // `_file` only exists for secrets.
    std::fs::write(&config, "cfgtest_smtp_host_file = \"pw\"\n").expect("write");
    assert!(error(&["server", "--config", path]).contains("unknown key `cfgtest_smtp_host_file`"));
}

#[test]
fn the_printed_configuration_reads_back_the_same() {
    let f = file(
        "cfgtest_listen = \"127.0.0.2:9001\"\ncfgtest_secs = 99\ncfgtest_verbose = true\n\
         cfgtest_proxy = [\"a\", \"b\\\"c\"]\n",
    );
    let path = f.path().to_str().expect("utf-8 path");
    let first = run(&["server", "--config", path, "--print-config"]).expect("parsed");
    let shown = first.print.clone().expect("printed");
    assert!(shown.contains("cfgtest_secs = 99  # file "), "{shown}");
    assert!(shown.contains("# cfgtest_smtp_host = (not set)"), "{shown}");
    assert!(shown.contains("cfgtest_verbose = true"), "{shown}");
    let again = file(&shown);
    let second =
        run(&["server", "--config", again.path().to_str().expect("path")]).expect("re-read");
    for id in ["listen", "secs", "proxy", "verbose"] {
        let raw = |p: &Parsed| -> Vec<OsString> {
            server(p)
                .get_raw(id)
                .map(|v| v.map(OsString::from).collect())
                .unwrap_or_default()
        };
        assert_eq!(raw(&first), raw(&second), "{id}");
    }
}
