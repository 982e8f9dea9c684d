//! A tiny seeded xorshift64* generator: enough to spread piece picks and choke rotation,
//! and deterministic under a fixed seed so tests can pin the outcome.

#[derive(Clone, Debug)]
pub struct XorShift64(u64);

impl XorShift64 {
    /// Any seed works; zero is nudged because xorshift would stay at zero forever.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
