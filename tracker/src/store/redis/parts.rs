//! Byte strings packed one after another into one buffer and read back by index: a
//! Redis command's keys and arguments, built without an allocation for each.

use std::io::Write;

/// At most `N` byte strings in one buffer.
pub(super) struct Parts<const N: usize> {
    buf: Vec<u8>,
    /// Where each string ends in `buf`.
    ends: [u32; N],
    len: usize,
}

impl<const N: usize> Parts<N> {
    /// Room for `bytes` bytes before the buffer grows.
    pub fn with_capacity(bytes: usize) -> Self {
        Parts {
            buf: Vec::with_capacity(bytes),
            ends: [0; N],
            len: 0,
        }
    }

    fn end(&mut self) -> usize {
        assert!(self.len < N, "more than {N} parts");
        self.ends[self.len] = u32::try_from(self.buf.len()).expect("parts under 4 GiB");
        self.len += 1;
        self.len - 1
    }

    /// Appends the concatenation of `pieces` as one string; returns its index.
    pub fn push(&mut self, pieces: &[&[u8]]) -> usize {
        for p in pieces {
            self.buf.extend_from_slice(p);
        }
        self.end()
    }

    /// Appends formatted text (a number, a key with a tag) as one string.
    pub fn push_fmt(&mut self, args: std::fmt::Arguments<'_>) -> usize {
        self.buf
            .write_fmt(args)
            .expect("writing to a Vec cannot fail");
        self.end()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, i: usize) -> &[u8] {
        debug_assert!(i < self.len, "part {i} of {}", self.len);
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.buf[start..self.ends[i] as usize]
    }
}

impl<const N: usize> Parts<N> {
    /// Whether both hold the same first `n` strings (and at least `n`).
    pub fn same_first(&self, other: &Self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        if self.len < n || other.len < n || self.ends[..n] != other.ends[..n] {
            return false;
        }
        let end = self.ends[n - 1] as usize;
        self.buf[..end] == other.buf[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_read_back_as_written_including_empty_ones() {
        let mut p: Parts<4> = Parts::with_capacity(0);
        assert_eq!(p.push(&[b"{ab", b"}s"]), 0);
        assert_eq!(p.push(&[]), 1);
        assert_eq!(p.push_fmt(format_args!("{}", 1_800_000_000u32)), 2);
        assert_eq!(p.len(), 3);
        assert_eq!(p.get(0), b"{ab}s");
        assert_eq!(p.get(1), b"");
        assert_eq!(p.get(2), b"1800000000");
    }

    #[test]
    fn the_first_strings_are_compared_as_strings() {
        let mut a: Parts<3> = Parts::with_capacity(0);
        let mut b: Parts<3> = Parts::with_capacity(64);
        a.push(&[b"ab", b"c"]);
        b.push(&[b"abc"]);
        assert!(a.same_first(&b, 1));
        assert!(!a.same_first(&b, 2), "b has one string only");
        a.push(&[b""]);
        b.push(&[b""]);
        assert!(a.same_first(&b, 2), "an empty string is a string");
        a.push(&[b"x"]);
        b.push(&[b"y"]);
        assert!(a.same_first(&b, 2), "what follows does not count");
        assert!(!a.same_first(&b, 3));
        let mut c: Parts<3> = Parts::with_capacity(0);
        c.push(&[b"a"]);
        c.push(&[b"bc"]);
        assert!(!a.same_first(&c, 2), "same bytes, split elsewhere");
        assert!(a.same_first(&c, 0));
    }

    #[test]
    #[should_panic(expected = "more than 1 parts")]
    fn more_parts_than_room_is_a_bug_caught_at_once() {
        let mut p: Parts<1> = Parts::with_capacity(0);
        p.push(&[b"a"]);
        p.push(&[b"b"]);
    }
}
