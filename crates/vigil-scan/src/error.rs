use thiserror::Error;

/// Errors that stop a scan before it starts. Per-port failures are results, not errors.
#[derive(Debug, Error)]
pub enum ScanError {
    #[error("could not resolve {name:?}: {source}")]
    Resolve {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name:?} has no {family} address")]
    NoAddress { name: String, family: &'static str },
    #[error("target {target} is not an {family} address (remove -4/-6 or the target)")]
    WrongFamily {
        target: String,
        family: &'static str,
    },
    #[error("too many hosts: {count} addresses in the targets, the limit is {limit} per scan")]
    TooManyHosts { count: u128, limit: u128 },
    #[error("nothing to scan: no targets")]
    NoTargets,
    #[error("nothing to scan: no ports")]
    NoPorts,
    #[error("cannot start the scanner's threads: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("invalid setting: {0}")]
    Config(String),
}
