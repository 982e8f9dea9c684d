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

/// The same strings in the same order (room left over does not count).
impl<const N: usize> PartialEq for Parts<N> {
    fn eq(&self, other: &Self) -> bool {
        self.ends[..self.len] == other.ends[..other.len] && self.buf == other.buf
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
    fn parts_are_equal_when_their_strings_are() {
        let mut a: Parts<3> = Parts::with_capacity(0);
        let mut b: Parts<3> = Parts::with_capacity(64);
        a.push(&[b"ab", b"c"]);
        b.push(&[b"abc"]);
        assert!(a == b);
        a.push(&[b""]);
        assert!(a != b, "an empty string is a string");
        b.push(&[b""]);
        assert!(a == b);
        let mut c: Parts<3> = Parts::with_capacity(0);
        c.push(&[b"a"]);
        c.push(&[b"bc"]);
        c.push(&[b""]);
        assert!(a != c, "same bytes, split elsewhere");
    }

    #[test]
    #[should_panic(expected = "more than 1 parts")]
    fn more_parts_than_room_is_a_bug_caught_at_once() {
        let mut p: Parts<1> = Parts::with_capacity(0);
        p.push(&[b"a"]);
        p.push(&[b"b"]);
    }
}
