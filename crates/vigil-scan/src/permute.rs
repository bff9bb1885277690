//! A random permutation of `0..n` computed on the fly.
//!
//! Scans can hold billions of (host, port) pairs, so the order cannot be
//! shuffled in memory. A small Feistel network over the next power of two,
//! with cycle-walking to stay below `n`, maps each index to a unique index
//! in O(1) memory. No maintained crate offers exactly this (a keyed
//! bijection on an arbitrary range), and it is 40 lines.

pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    pub fn new(n: u64, seed: u64) -> Self {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let mut s = seed;
        let keys = std::array::from_fn(|_| {
            s = splitmix64(s);
            s
        });
        Permutation { n, half_bits, keys }
    }

    /// Number of elements permuted.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// The image of `i` (`i < n`).
    pub fn get(&self, i: u64) -> u64 {
        let mut x = i;
        loop {
            x = self.feistel(x);
            if x < self.n {
                return x;
            }
        }
    }

    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.n).map(|i| self.get(i))
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let mut left = x >> self.half_bits;
        let mut right = x & mask;
        for key in self.keys {
            let next = left ^ (splitmix64(right ^ key) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_bijection_for_many_sizes() {
        for n in [1u64, 2, 3, 7, 64, 65, 1000, 65535, 65536 * 3] {
            let p = Permutation::new(n, n ^ 42);
            let mut seen = vec![false; n as usize];
            for v in p.iter() {
                assert!(v < n);
                assert!(!seen[v as usize], "duplicate {v} for n={n}");
                seen[v as usize] = true;
            }
        }
    }

    #[test]
    fn shuffles() {
        let p = Permutation::new(1000, 7);
        let fixed = (0..1000).filter(|&i| p.get(i) == i).count();
        assert!(fixed < 20, "{fixed} fixed points");
        let q = Permutation::new(1000, 8);
        assert!((0..1000).any(|i| p.get(i) != q.get(i)));
    }

    #[test]
    fn zero_is_empty() {
        assert_eq!(Permutation::new(0, 1).iter().count(), 0);
    }
}
