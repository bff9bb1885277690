//! Compiles the IEEE MAC address registry into the crate.
//!
//! Reads Debian's `ieee-data` CSVs (`oui.csv` MA-L 24-bit, `mam.csv` MA-M
//! 28-bit, `oui36.csv` MA-S and `iab.csv` IAB, both 36-bit) from
//! `/usr/share/ieee-data`, or from `$VIGIL_IEEE_DATA_DIR`, and writes into
//! `OUT_DIR`:
//!
//! - `ma_l.bin`, `ma_m.bin`, `ma_s.bin`: one record per assignment, sorted
//!   by prefix: the prefix big-endian in the fewest whole bytes (3, 4, 5),
//!   then the vendor's index big-endian in `INDEX_BYTES` bytes;
//! - `names.txt`: the distinct vendor names, concatenated; `offsets.bin`:
//!   where each starts (and, last, the end of the blob) in `OFFSET_BYTES`;
//! - `table.rs`: the sizes, the source description and the missing files,
//!   included by `src/table.rs`.
//!
//! Missing files give an empty table and a `cargo:warning`, not a failed
//! build: a machine without the package still builds Vigil.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const DEFAULT_DIR: &str = "/usr/share/ieee-data";
const DIR_ENV: &str = "VIGIL_IEEE_DATA_DIR";
/// Each file and the prefix length, in bits, of its assignments.
const FILES: [(&str, u32); 4] = [
    ("oui.csv", 24),
    ("mam.csv", 28),
    ("oui36.csv", 36),
    ("iab.csv", 36),
];
/// The three tables the prefix lengths make (IAB and MA-S share one).
const TABLES: [(&str, u32); 3] = [("ma_l", 24), ("ma_m", 28), ("ma_s", 36)];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={DIR_ENV}");
    let dir = std::env::var_os(DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    // The whole (small) directory: a file added, replaced or updated by
    // the package rebuilds the table. A directory that does not exist is
    // not watched (Cargo would rerun this script on every build).
    if dir.is_dir() {
        println!("cargo:rerun-if-changed={}", dir.display());
    }

    let mut registry = Registry::default();
    let mut missing = Vec::new();
    for (file, bits) in FILES {
        let path = dir.join(file);
        if !path.is_file() {
            missing.push(file);
            continue;
        }
        if let Err(e) = registry.read(&path, bits) {
            println!("cargo:warning=vigil-oui: {}: {e}", path.display());
        }
    }
    if missing.len() == FILES.len() {
        println!(
            "cargo:warning=vigil-oui: no IEEE registry in {} (install the Debian/Ubuntu package \
             `ieee-data` or set {DIR_ENV}, then `cargo clean -p vigil-oui`): MAC vendor \
             lookups will find nothing",
            dir.display()
        );
    } else if !missing.is_empty() {
        println!(
            "cargo:warning=vigil-oui: {} lacks {} (package `ieee-data`): those blocks get no vendor",
            dir.display(),
            missing.join(", ")
        );
    }
    let source = match (missing.len() == FILES.len(), updated(&dir)) {
        (true, _) => format!("none: no IEEE registry in {}", dir.display()),
        (false, Some(date)) => format!("{} (updated {date})", dir.display()),
        (false, None) => dir.display().to_string(),
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    registry.write(&out, &dir, &source, &missing);
}

/// The assignments read so far.
#[derive(Default)]
struct Registry {
    /// Per prefix length: prefix → index in `names`. The first row of a
    /// prefix wins (oui.csv lists a few old prefixes twice).
    prefixes: BTreeMap<u32, BTreeMap<u64, usize>>,
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Registry {
    fn read(&mut self, path: &Path, bits: u32) -> Result<(), csv::Error> {
        let mut rdr = csv::ReaderBuilder::new().flexible(true).from_path(path)?;
        let headers = rdr.headers()?.clone();
        let column = |name: &str, default: usize| {
            headers
                .iter()
                .position(|h| h.trim() == name)
                .unwrap_or(default)
        };
        let (assignment, organization) = (column("Assignment", 1), column("Organization Name", 2));
        let (mut kept, mut skipped) = (0usize, 0usize);
        for row in rdr.records() {
            let row = row?;
            let prefix = row.get(assignment).and_then(|a| parse_prefix(a, bits));
            let name = row.get(organization).map(str::trim).unwrap_or_default();
            let Some(prefix) = prefix.filter(|_| !name.is_empty()) else {
                skipped += 1;
                continue;
            };
            // A few early MA-L blocks (02608C, 1100AA…) have the locally
            // administered or the group bit set: no lookup returns them.
            if (prefix >> (bits - 8)) & 0x03 != 0 {
                continue;
            }
            let next = self.names.len();
            let id = *self.index.entry(name.to_owned()).or_insert(next);
            if id == next {
                self.names.push(name.to_owned());
            }
            self.prefixes
                .entry(bits)
                .or_default()
                .entry(prefix)
                .or_insert(id);
            kept += 1;
        }
        if skipped > 0 {
            println!(
                "cargo:warning=vigil-oui: {}: {skipped} rows without a {bits}-bit assignment or a name skipped ({kept} kept)",
                path.display()
            );
        }
        Ok(())
    }

    fn write(&self, out: &Path, dir: &Path, source: &str, missing: &[&str]) {
        let index_bytes = bytes_for(self.names.len() as u64);
        let mut blob = String::new();
        let mut offsets = Vec::new();
        let blob_len: usize = self.names.iter().map(String::len).sum();
        let offset_bytes = bytes_for(blob_len as u64 + 1);
        for name in &self.names {
            push_be(&mut offsets, blob.len() as u64, offset_bytes);
            blob.push_str(name);
        }
        push_be(&mut offsets, blob.len() as u64, offset_bytes);

        let mut rs = String::new();
        let mut entries = 0;
        let mut bytes = blob.len() + offsets.len();
        for (table, bits) in TABLES {
            let key_bytes = bits.div_ceil(8) as usize;
            let mut records = Vec::new();
            for (prefix, id) in self.prefixes.get(&bits).into_iter().flatten() {
                push_be(&mut records, *prefix, key_bytes);
                push_be(&mut records, *id as u64, index_bytes);
                entries += 1;
            }
            bytes += records.len();
            write_file(&out.join(format!("{table}.bin")), &records);
            writeln!(
                rs,
                "pub(crate) static {upper}: Table = Table {{ bits: {bits}, key_bytes: {key_bytes}, \
                 records: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{table}.bin\")) }};",
                upper = table.to_uppercase()
            )
            .expect("write to a String");
        }
        write_file(&out.join("names.txt"), blob.as_bytes());
        write_file(&out.join("offsets.bin"), &offsets);
        writeln!(
            rs,
            "pub(crate) const INDEX_BYTES: usize = {index_bytes};\n\
             pub(crate) const OFFSET_BYTES: usize = {offset_bytes};\n\
             pub(crate) static NAMES: &str = include_str!(concat!(env!(\"OUT_DIR\"), \"/names.txt\"));\n\
             pub(crate) static OFFSETS: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/offsets.bin\"));\n\
             pub(crate) const ENTRIES: usize = {entries};\n\
             pub(crate) const BYTES: usize = {bytes};\n\
             pub(crate) const SOURCE: &str = {source:?};\n\
             pub(crate) const MISSING: &[&str] = &{missing:?};\n\
             #[cfg(test)]\n\
             pub(crate) const DATA_DIR: &str = {dir:?};",
            dir = dir.display().to_string(),
        )
        .expect("write to a String");
        write_file(&out.join("table.rs"), rs.as_bytes());
    }
}

/// `hex` as a `bits`-bit prefix: exactly `bits / 4` hex digits.
fn parse_prefix(hex: &str, bits: u32) -> Option<u64> {
    let hex = hex.trim();
    (hex.len() == bits as usize / 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// The fewest bytes that hold every value below `count` (at least 1).
fn bytes_for(count: u64) -> usize {
    let max = count.saturating_sub(1);
    (1..=8)
        .find(|n| *n == 8 || max >> (8 * n) == 0)
        .unwrap_or(8)
}

fn push_be(out: &mut Vec<u8>, value: u64, bytes: usize) {
    out.extend_from_slice(&value.to_be_bytes()[8 - bytes..]);
}

fn write_file(path: &Path, data: &[u8]) {
    if let Err(e) = std::fs::write(path, data) {
        panic!("vigil-oui: cannot write {}: {e}", path.display());
    }
}

/// When the package last updated the registry: `.lastupdate` (a Unix
/// time written by Debian's `update-ieee-data`), else the newest CSV's
/// modification time; as `YYYY-MM-DD` (UTC).
fn updated(dir: &Path) -> Option<String> {
    let stamp = std::fs::read_to_string(dir.join(".lastupdate"))
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| {
            FILES
                .iter()
                .filter_map(|(f, _)| std::fs::metadata(dir.join(f)).ok()?.modified().ok())
                .max()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_secs()).ok())
        })?;
    let (y, m, d) = civil_from_days(stamp.div_euclid(86_400));
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
