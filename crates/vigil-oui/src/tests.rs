//! The compiled table against the registry's CSVs, read here again
//! (with `csv`, into hash maps: a second, independent reading).

use super::*;
use std::collections::HashMap;
use std::path::Path;

/// The registry files and their prefix lengths, as `build.rs` reads them.
const FILES: [(&str, u32); 4] = [
    ("oui.csv", 24),
    ("mam.csv", 28),
    ("oui36.csv", 36),
    ("iab.csv", 36),
];

/// One CSV row: its file, prefix length, prefix and trimmed vendor name.
struct Row {
    file: &'static str,
    bits: u32,
    prefix: u64,
    name: String,
}

/// Every row of the registry files the build read; `None` (test skipped)
/// when the build found no registry.
fn rows() -> Option<Vec<Row>> {
    if registry().entries == 0 {
        eprintln!(
            "SKIPPED: no IEEE registry at build time ({})",
            registry().source
        );
        return None;
    }
    let mut rows = Vec::new();
    for (file, bits) in FILES {
        let path = Path::new(table::DATA_DIR).join(file);
        if !path.is_file() {
            continue;
        }
        let mut rdr = csv::Reader::from_path(&path).expect("readable CSV");
        for rec in rdr.records() {
            let rec = rec.expect("a CSV row");
            rows.push(Row {
                file,
                bits,
                prefix: u64::from_str_radix(&rec[1], 16).expect("hex assignment"),
                name: rec[2].trim().to_owned(),
            });
        }
    }
    Some(rows)
}

/// (prefix length, prefix) → vendor; the first row of a prefix wins.
fn model(rows: &[Row]) -> HashMap<(u32, u64), &str> {
    let mut m = HashMap::new();
    for r in rows {
        m.entry((r.bits, r.prefix)).or_insert(r.name.as_str());
    }
    m
}

/// The vendor `model` gives `mac`: longest prefix, none for local or
/// group addresses.
fn expected<'a>(model: &HashMap<(u32, u64), &'a str>, mac: [u8; 6]) -> Option<&'a str> {
    if mac[0] & 0x03 != 0 {
        return None;
    }
    let mac48 = mac48(mac);
    [36, 28, 24]
        .into_iter()
        .find_map(|bits| model.get(&(bits, mac48 >> (48 - bits))).copied())
}

fn mac48(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

/// The address `low` (masked to the block) inside block `prefix/bits`.
fn mac_in(bits: u32, prefix: u64, low: u64) -> [u8; 6] {
    let n = (prefix << (48 - bits)) | (low & ((1 << (48 - bits)) - 1));
    let b = n.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

#[test]
fn every_row_of_every_file_is_found() {
    let Some(rows) = rows() else { return };
    let model = model(&rows);
    let mut per_file: HashMap<&str, usize> = HashMap::new();
    for r in &rows {
        // The block's first, last and some middle address.
        for low in [0, u64::MAX, 0x5a5a_5a5a_5a5a] {
            let mac = mac_in(r.bits, r.prefix, low);
            assert_eq!(vendor(mac), expected(&model, mac), "{} {:?}", r.file, mac);
        }
        *per_file.entry(r.file).or_default() += 1;
    }
    // The build read every file the test read.
    assert!(registry().missing.iter().all(|f| !per_file.contains_key(f)));
    let reachable = model.keys().filter(|(bits, p)| (p >> (bits - 8)) & 3 == 0);
    assert_eq!(registry().entries, reachable.count());
    eprintln!("checked {per_file:?}");
}

#[test]
fn a_few_rows_read_by_hand() {
    let Some(rows) = rows() else { return };
    // First, middle and last row of each file, where nothing longer and
    // no earlier row of the same prefix takes precedence.
    let model = model(&rows);
    for (file, _) in FILES {
        let of_file: Vec<&Row> = rows.iter().filter(|r| r.file == file).collect();
        if of_file.is_empty() {
            continue;
        }
        for r in [0, of_file.len() / 2, of_file.len() - 1].map(|i| of_file[i]) {
            let mac = mac_in(r.bits, r.prefix, 0x0123_4567_89ab);
            if expected(&model, mac) != Some(r.name.as_str()) {
                continue;
            }
            assert_eq!(vendor(mac), Some(r.name.as_str()), "{file} {:x}", r.prefix);
        }
    }
}

#[test]
fn the_longest_prefix_wins() {
    let Some(rows) = rows() else { return };
    let model = model(&rows);
    let mut checked = 0;
    // Blocks of 28 and 36 bits inside a registered 24-bit block (the IEEE
    // itself holds those MA-L blocks and sells them on in pieces).
    for bits in [28, 36] {
        let Some(r) = rows.iter().find(|r| {
            r.bits == bits
                && model
                    .get(&(24, r.prefix >> (bits - 24)))
                    .is_some_and(|outer| *outer != r.name)
                && model.get(&(bits, r.prefix)) == Some(&r.name.as_str())
        }) else {
            continue;
        };
        let outer = model[&(24, r.prefix >> (bits - 24))];
        assert_eq!(vendor(mac_in(bits, r.prefix, 0)), Some(r.name.as_str()));
        // An address of the 24-bit block outside every longer block of it.
        let free = (0..1u64 << 24)
            .step_by(4099)
            .map(|low| mac_in(24, r.prefix >> (bits - 24), low))
            .find(|mac| {
                let m = mac48(*mac);
                !model.contains_key(&(28, m >> 20)) && !model.contains_key(&(36, m >> 12))
            });
        if let Some(mac) = free {
            assert_eq!(vendor(mac), Some(outer), "{mac:02x?}");
        }
        eprintln!(
            "{bits}-bit {:x} {:?} inside 24-bit {:?}",
            r.prefix, r.name, outer
        );
        checked += 1;
    }
    if checked == 0 {
        // A partial registry (no mam.csv, oui36.csv): the rule is still
        // tested, by `nested_blocks_in_a_table_of_our_own`.
        eprintln!("no nested block in {}", registry().source);
    }
}

#[test]
fn nested_blocks_in_a_table_of_our_own() {
    // The same rule on records made here: the search itself, whatever
    // the registry holds.
    fn records(bits: u32, entries: &[(u64, usize)]) -> &'static [u8] {
        let mut v = Vec::new();
        for (prefix, id) in entries {
            v.extend_from_slice(&prefix.to_be_bytes()[8 - bits.div_ceil(8) as usize..]);
            v.extend_from_slice(&(*id as u64).to_be_bytes()[8 - table::INDEX_BYTES..]);
        }
        Box::leak(v.into_boxed_slice())
    }
    let t24 = table::Table {
        bits: 24,
        key_bytes: 3,
        records: records(24, &[(0x00000c, 1), (0x741ae0, 2), (0xfcfffe, 3)]),
    };
    let t28 = table::Table {
        bits: 28,
        key_bytes: 4,
        records: records(28, &[(0x741ae09, 4)]),
    };
    let find = |mac: u64| [&t28, &t24].into_iter().find_map(|t| t.find(mac));
    assert_eq!(find(0x741a_e09f_ffff), Some(4));
    assert_eq!(find(0x741a_e08f_ffff), Some(2));
    assert_eq!(find(0x0000_0c00_0000), Some(1));
    assert_eq!(find(0xfcff_feff_ffff), Some(3));
    assert_eq!(find(0x0000_0b00_0000), None);
    assert_eq!(find(0xffff_ffff_ffff), None);
}

#[test]
fn local_and_group_addresses_have_no_vendor() {
    // Cisco's 00:00:0C with the local bit, the group bit, both.
    for first in [0x02, 0x01, 0x03] {
        assert_eq!(vendor([first, 0x00, 0x0c, 1, 2, 3]), None);
        assert!(is_locally_administered([first, 0, 0x0c, 1, 2, 3]) == (first & 2 != 0));
    }
    assert_eq!(vendor([0xff; 6]), None);
    assert!(!is_locally_administered([0x00, 0x00, 0x0c, 1, 2, 3]));
    let Some(rows) = rows() else { return };
    // Every registered MA-L block, made local: nothing.
    for r in rows.iter().filter(|r| r.bits == 24) {
        let mut mac = mac_in(24, r.prefix, 0);
        mac[0] |= 0x02;
        assert_eq!(vendor(mac), None, "{mac:02x?}");
    }
}

#[test]
fn the_registry_says_where_it_came_from() {
    let r = registry();
    assert!(r.source.contains(table::DATA_DIR), "{r:?}");
    if r.entries == 0 {
        assert_eq!(r.missing.len(), 4, "{r:?}");
        assert!(r.source.starts_with("none"), "{r:?}");
    } else {
        assert!(r.vendors > 0 && r.vendors <= r.entries, "{r:?}");
        assert!(r.bytes > r.entries, "{r:?}");
    }
    eprintln!("{r:?}");
}
