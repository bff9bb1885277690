//! Configuration files and environment variables of the long-running
//! commands (`vigil server`, `vigil agent run`).
//!
//! Every flag of those commands is also a key of a TOML file given with
//! `--config` (the flag's name with `_` for `-`: `--smtp-host` is
//! `smtp_host`; a table prefixes its keys: `[smtp] host` is `smtp_host`)
//! and an environment variable (`VIGIL_SMTP_HOST`; the agent's are
//! `VIGIL_AGENT_…`). Precedence: flag > variable > file > default.
//!
//! The file is read into arguments that go through the same clap
//! definitions as the command line, so a key has exactly its flag's
//! parser, default and help; clap has no config-file layer of its own.
//! Secrets (the flags whose values help hides) may also come from a file:
//! `smtp_password_file = "/etc/vigil/smtp-password"` in the file, or
//! `VIGIL_SMTP_PASSWORD_FILE` in the environment.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The id of the `--config FILE` argument of a configurable command.
pub const CONFIG_ID: &str = "config_file";
/// The id of its `--print-config` flag.
pub const PRINT_ID: &str = "print_config";

/// The commands that take `--config`, with their variables' prefix.
const CONFIGURABLE: &[(&[&str], &str)] =
    &[(&["server"], "VIGIL_"), (&["agent", "run"], "VIGIL_AGENT_")];

/// Shown when a secret is printed.
const REDACTED: &str = "(redacted)";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Bad command line (clap prints and exits with its own code).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error("{0}")]
    Invalid(String),
}

/// The parsed command line, and the effective configuration when
/// `--print-config` asked for it.
#[derive(Debug)]
pub struct Parsed {
    pub matches: ArgMatches,
    pub print: Option<String>,
}

/// `cli` with a `VIGIL_…` variable for every flag of the configurable
/// commands that has none of its own.
pub fn with_env(cli: Command) -> Command {
    CONFIGURABLE.iter().fold(cli, |cli, (path, prefix)| {
        mut_path(cli, path, &|cmd| {
            cmd.mut_args(|arg| match long_key(&arg) {
                Some(key) if arg.get_env().is_none() && arg.get_id() != PRINT_ID => {
                    arg.env(format!("{prefix}{}", key.to_uppercase()))
                }
                _ => arg,
            })
        })
    })
}

fn mut_path(cmd: Command, path: &[&str], f: &dyn Fn(Command) -> Command) -> Command {
    match path.split_first() {
        None => f(cmd),
        Some((first, rest)) if cmd.find_subcommand(first).is_some() => {
            cmd.mut_subcommand(first, |sub| mut_path(sub, rest, f))
        }
        Some(_) => cmd,
    }
}

/// The key of a flag: its long name with `_` for `-`; none for help,
/// version and positional arguments.
fn long_key(arg: &Arg) -> Option<String> {
    let long = arg.get_long()?;
    match arg.get_action() {
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version => None,
        _ => Some(long.replace('-', "_")),
    }
}

/// Parses `argv` with `cli` (from [`with_env`]), the config file given
/// with `--config` filling what neither a flag nor a variable set.
pub fn parse(cli: Command, argv: Vec<OsString>) -> Result<Parsed, ConfigError> {
    let mut cli = cli;
    cli.build();
    let first = cli.clone().try_get_matches_from(&argv)?;
    let names = names_of(&first);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let Some(leaf) = leaf_of(&first, &names).filter(|_| !names.is_empty()) else {
        return Ok(Parsed {
            matches: first,
            print: None,
        });
    };
    let Some(prefix) = CONFIGURABLE
        .iter()
        .find(|(path, _)| *path == names.as_slice())
        .map(|(_, prefix)| *prefix)
    else {
        return Ok(Parsed {
            matches: first,
            print: None,
        });
    };
    let leaf_cmd = subcommand(&cli, &names);
    let mut extra = Vec::new();
    let mut from_file = BTreeMap::new();
    if let Some(file) = leaf.get_one::<PathBuf>(CONFIG_ID) {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::Invalid(format!("reading {}: {e}", file.display())))?;
        let settings = settings(&text)
            .map_err(|msg| ConfigError::Invalid(format!("{}: {msg}", file.display())))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        // Every mistake of the file at once, each with its line.
        let mut errors = Vec::new();
        let mut lines = BTreeMap::new();
        for setting in settings {
            let at = format!("{}:{}", file.display(), setting.line);
            let key = arg_key(leaf_cmd, &setting.key);
            if let Some(first) = lines.insert(key.clone(), setting.line) {
                errors.push(format!("{at}: `{key}` is set on line {first} already"));
                continue;
            }
            match file_args(leaf_cmd, leaf, &setting, dir) {
                Ok(Some(args)) => {
                    from_file.insert(key, at);
                    extra.extend(args);
                }
                Ok(None) => {}
                Err(msg) => errors.push(format!("{at}: {msg}")),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors.join("\n")));
        }
    }
    extra.extend(secret_files_from_env(leaf_cmd, leaf, prefix, &from_file)?);
    let matches = if extra.is_empty() {
        first
    } else {
        let mut argv = argv;
        argv.extend(extra);
        cli.clone().try_get_matches_from(argv)?
    };
    let print = match leaf_of(&matches, &names) {
        Some(leaf) if has_arg(leaf_cmd, PRINT_ID) && leaf.get_flag(PRINT_ID) => {
            Some(render(leaf_cmd, leaf, &names, prefix, &from_file))
        }
        _ => None,
    };
    Ok(Parsed { matches, print })
}

/// The names of the subcommands given, outermost first.
fn names_of(matches: &ArgMatches) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = matches;
    while let Some((name, sub)) = at.subcommand() {
        names.push(name.to_string());
        at = sub;
    }
    names
}

fn leaf_of<'m>(matches: &'m ArgMatches, names: &[&str]) -> Option<&'m ArgMatches> {
    names
        .iter()
        .try_fold(matches, |m, name| m.subcommand_matches(name))
}

fn subcommand<'c>(cli: &'c Command, names: &[&str]) -> &'c Command {
    names.iter().fold(cli, |cmd, name| {
        cmd.find_subcommand(name)
            .expect("names come from matches of this command")
    })
}

fn has_arg(cmd: &Command, id: &str) -> bool {
    cmd.get_arguments().any(|a| a.get_id() == id)
}

/// One key of the file.
#[derive(Debug, Clone)]
struct Setting {
    key: String,
    value: toml_edit::Value,
    line: usize,
}

/// The file's keys, tables flattened (`[smtp] host` → `smtp_host`).
fn settings(text: &str) -> Result<Vec<Setting>, String> {
    let doc =
        toml_edit::ImDocument::parse(text).map_err(|e| e.to_string().trim_end().to_string())?;
    let mut out = Vec::new();
    flatten(doc.as_table(), "", text, &mut out)?;
    Ok(out)
}

fn flatten(
    table: &toml_edit::Table,
    prefix: &str,
    text: &str,
    out: &mut Vec<Setting>,
) -> Result<(), String> {
    for (name, item) in table.iter() {
        let span = table
            .key(name)
            .and_then(|k| k.span())
            .or_else(|| item.span());
        let line = span.map_or(0, |s| line_of(text, s.start));
        let key = format!("{prefix}{name}");
        match item {
            toml_edit::Item::None => {}
            toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
                flatten(&t.clone().into_table(), &format!("{key}_"), text, out)?
            }
            toml_edit::Item::Value(value) => out.push(Setting {
                key,
                value: value.clone(),
                line,
            }),
            toml_edit::Item::Table(t) => flatten(t, &format!("{key}_"), text, out)?,
            toml_edit::Item::ArrayOfTables(_) => {
                return Err(format!(
                    "line {line}: `{key}` is an array of tables; no key takes one"
                ))
            }
        }
    }
    Ok(())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

/// The flag a key names.
fn find<'c>(cmd: &'c Command, key: &str) -> Option<&'c Arg> {
    cmd.get_arguments()
        .find(|a| long_key(a).as_deref() == Some(key))
}

/// The key under which a setting is reported: its flag's (`…_file` of a
/// secret is the secret's).
fn arg_key(cmd: &Command, key: &str) -> String {
    match find(cmd, key) {
        Some(_) => key.to_string(),
        None => key.strip_suffix("_file").unwrap_or(key).to_string(),
    }
}

fn is_secret(arg: &Arg) -> bool {
    arg.is_hide_env_values_set()
}

fn given_outside_the_file(matches: &ArgMatches, arg: &Arg) -> bool {
    matches!(
        matches.value_source(arg.get_id().as_str()),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The arguments one setting stands for; `None` when a flag or a
/// variable sets it already (they win over the file).
fn file_args(
    cmd: &Command,
    matches: &ArgMatches,
    setting: &Setting,
    dir: &Path,
) -> Result<Option<Vec<OsString>>, String> {
    let key = setting.key.as_str();
    // `<secret>_file`: the secret is the file's content.
    if let (None, Some(base)) = (find(cmd, key), key.strip_suffix("_file")) {
        if let Some(arg) = find(cmd, base).filter(|a| is_secret(a)) {
            let path = string(setting).map_err(|e| format!("`{key}`: {e}"))?;
            if given_outside_the_file(matches, arg) {
                return Ok(None);
            }
            let secret = read_secret(&dir.join(path)).map_err(|e| format!("`{key}`: {e}"))?;
            return Ok(Some(vec![flag_value(arg, &secret)]));
        }
    }
    let Some(arg) = find(cmd, key) else {
        return Err(unknown(cmd, key));
    };
    if [CONFIG_ID, PRINT_ID].contains(&arg.get_id().as_str()) {
        return Err(format!(
            "`{key}` is a command-line option, not a key of the file"
        ));
    }
    if given_outside_the_file(matches, arg) {
        return Ok(None);
    }
    let values = scalars(arg, setting).map_err(|e| format!("`{key}`: {e}"))?;
    let mut out = Vec::new();
    for value in values {
        if is_flag(arg) {
            if value == "true" {
                out.push(OsString::from(format!("--{}", arg_long(arg))));
            }
            continue;
        }
        check(cmd, arg, &value).map_err(|e| format!("`{key}`: {e}"))?;
        out.push(flag_value(arg, &value));
    }
    Ok(Some(out))
}

fn arg_long(arg: &Arg) -> &str {
    arg.get_long().unwrap_or_default()
}

/// `--flag=value`: a value that starts with `-` stays a value.
fn flag_value(arg: &Arg, value: &str) -> OsString {
    OsString::from(format!("--{}={value}", arg_long(arg)))
}

fn is_flag(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

fn takes_many(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
}

/// A setting's value(s) as the text a flag would carry; the TOML type
/// must fit the flag: a list only where the flag repeats, true/false only
/// for switches, no tables or dates.
fn scalars(arg: &Arg, setting: &Setting) -> Result<Vec<String>, String> {
    use toml_edit::Value;
    let one = |v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.value().clone()),
            Value::Integer(i) => Ok(i.value().to_string()),
            Value::Boolean(_) => Err("true/false is not a value here".into()),
            Value::Float(f) => Err(format!("{} is not a whole number", f.value())),
            Value::Datetime(_) => Err("a date here: give text in quotes".into()),
            Value::Array(_) | Value::InlineTable(_) => Err("give one value".into()),
        }
    };
    match &setting.value {
        Value::Boolean(b) if is_flag(arg) => Ok(vec![b.value().to_string()]),
        _ if is_flag(arg) => Err("give true or false".into()),
        Value::Array(items) if takes_many(arg) => items.iter().map(one).collect(),
        Value::Array(_) => Err("takes one value, not a list".into()),
        v => one(v).map(|s| vec![s]),
    }
}

/// The flag's own parser on one value, so a bad value is reported with
/// the file's line rather than as a command-line error.
fn check(cmd: &Command, arg: &Arg, value: &str) -> Result<(), String> {
    // A one-flag command with the flag's parser: the value is checked as
    // the command line would check it (clap keeps parse_ref private).
    let probe = Arg::new(arg.get_id().clone())
        .long(arg_long(arg).to_string())
        .value_name(arg_long(arg).replace('-', "_").to_uppercase())
        .value_parser(arg.get_value_parser().clone())
        .action(ArgAction::Set);
    Command::new(cmd.get_name().to_string())
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--{}={value}", arg_long(arg))])
        .map(|_| ())
        .map_err(|e| clap_message(&e))
}

/// The first line of a clap error, without its `error: ` prefix.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

fn unknown(cmd: &Command, key: &str) -> String {
    let near = cmd
        .get_arguments()
        .filter_map(long_key)
        .map(|k| (strsim::jaro_winkler(key, &k), k))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match near {
        Some((_, k)) => format!("unknown key `{key}` (did you mean `{k}`?)"),
        None => format!(
            "unknown key `{key}`: the keys are `vigil {} --help`'s flags with _ for -",
            cmd.get_name()
        ),
    }
}

/// A secret from a file: its content without the final newline(s).
fn read_secret(path: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(secret.to_string())
}

fn string(setting: &Setting) -> Result<&str, String> {
    setting
        .value
        .as_str()
        .ok_or_else(|| "give a file name in quotes".to_string())
}

/// `VIGIL_…_FILE` variables of secrets that no flag, variable or file key set.
fn secret_files_from_env(
    cmd: &Command,
    matches: &ArgMatches,
    prefix: &str,
    from_file: &BTreeMap<String, String>,
) -> Result<Vec<OsString>, ConfigError> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments().filter(|a| is_secret(a)) {
        let Some(key) = long_key(arg) else { continue };
        if given_outside_the_file(matches, arg) || from_file.contains_key(&key) {
            continue;
        }
        let var = format!("{}_FILE", env_name(arg, prefix, &key));
        if let Some(path) = std::env::var_os(&var).filter(|p| !p.is_empty()) {
            let secret = read_secret(Path::new(&path))
                .map_err(|e| ConfigError::Invalid(format!("{var}: {e}")))?;
            out.push(flag_value(arg, &secret));
        }
    }
    Ok(out)
}

fn env_name(arg: &Arg, prefix: &str, key: &str) -> String {
    arg.get_env()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{prefix}{}", key.to_uppercase()))
}

/// The effective configuration as a TOML file (which `--config` reads
/// back), each key with where its value came from; secrets redacted.
fn render(
    cmd: &Command,
    matches: &ArgMatches,
    names: &[&str],
    prefix: &str,
    from_file: &BTreeMap<String, String>,
) -> String {
    let mut out = format!(
        "# vigil {}: effective configuration (flag > {prefix}… variable > file > default)\n",
        names.join(" ")
    );
    for arg in cmd.get_arguments() {
        let Some(key) = long_key(arg) else { continue };
        let id = arg.get_id().as_str();
        if id == CONFIG_ID || id == PRINT_ID {
            continue;
        }
        let source = match (matches.value_source(id), from_file.get(&key)) {
            (_, Some(at)) => format!("file {at}"),
            (Some(ValueSource::EnvVariable), _) => {
                format!("environment {}", env_name(arg, prefix, &key))
            }
            (Some(ValueSource::CommandLine), _) => "command line".to_string(),
            (Some(ValueSource::DefaultValue), _) => "default".to_string(),
            _ => String::new(),
        };
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        if raw.is_empty() {
            out.push_str(&format!("# {key} = (not set)\n"));
            continue;
        }
        let value = if is_secret(arg) {
            toml_value(REDACTED, arg)
        } else if takes_many(arg) {
            let items: Vec<String> = raw.iter().map(|v| toml_value(v, arg)).collect();
            format!("[{}]", items.join(", "))
        } else {
            toml_value(&raw[0], arg)
        };
        out.push_str(&format!("{key} = {value}  # {source}\n"));
    }
    out
}

/// A value as TOML: switches as booleans, whole numbers as integers,
/// everything else as a string.
fn toml_value(raw: &str, arg: &Arg) -> String {
    if is_flag(arg) && (raw == "true" || raw == "false") {
        return raw.to_string();
    }
    let integer = !raw.is_empty()
        && raw.bytes().all(|b| b.is_ascii_digit())
        && (raw == "0" || !raw.starts_with('0'))
        && raw.parse::<i64>().is_ok();
    if integer {
        raw.to_string()
    } else {
        toml_edit::Value::from(raw).to_string().trim().to_string()
    }
}

#[cfg(test)]
mod tests;
