//! The registry as compiled by `build.rs`: three sorted tables of
//! fixed-size records (prefix, vendor index), and the distinct vendor
//! names as one string with offsets. Lookups are binary searches over the
//! bytes; nothing is decoded up front and nothing is allocated.

include!(concat!(env!("OUT_DIR"), "/table.rs"));

/// The assignments of one prefix length.
pub(crate) struct Table {
    /// Prefix length: 24 (MA-L), 28 (MA-M) or 36 (MA-S, IAB).
    pub(crate) bits: u32,
    /// Bytes of a record's prefix (big-endian): the fewest that hold `bits`.
    pub(crate) key_bytes: usize,
    /// Records sorted by prefix: prefix, then the vendor's index in
    /// [`INDEX_BYTES`] bytes, both big-endian.
    pub(crate) records: &'static [u8],
}

impl Table {
    fn record_len(&self) -> usize {
        self.key_bytes + INDEX_BYTES
    }

    /// How many assignments.
    pub(crate) fn len(&self) -> usize {
        self.records.len() / self.record_len()
    }

    /// The vendor index of the block holding `mac48` (the address as a
    /// 48-bit number), if this table has it.
    pub(crate) fn find(&self, mac48: u64) -> Option<usize> {
        let key = mac48 >> (48 - self.bits);
        let rec = self.record_len();
        let record = |i: usize| &self.records[i * rec..(i + 1) * rec];
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let r = record(mid);
            match be(&r[..self.key_bytes]).cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(be(&r[self.key_bytes..]) as usize),
            }
        }
        None
    }
}

/// Vendor name number `index`.
pub(crate) fn name(index: usize) -> Option<&'static str> {
    let at = |i: usize| {
        OFFSETS
            .get(i * OFFSET_BYTES..(i + 1) * OFFSET_BYTES)
            .map(|b| be(b) as usize)
    };
    NAMES.get(at(index)?..at(index + 1)?)
}

/// Distinct vendor names.
pub(crate) fn names() -> usize {
    (OFFSETS.len() / OFFSET_BYTES).saturating_sub(1)
}

/// A big-endian unsigned number of up to 8 bytes.
fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}
