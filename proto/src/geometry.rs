//! Piece geometry: where a piece starts, how long it is, and which files a byte range
//! covers, from the piece length, the total length and the file offsets. Computed here
//! only; the metainfo, the client's storage and its piece picker all ask this module.

/// A torrent's piece length and total length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub piece_length: u32,
    pub total_length: u64,
}

impl Geometry {
    /// Pieces needed to hold `total_length` bytes (a validated torrent has one hash each).
    pub fn piece_count(&self) -> u32 {
        if self.piece_length == 0 {
            return 0;
        }
        self.total_length
            .div_ceil(u64::from(self.piece_length))
            .min(u64::from(u32::MAX)) as u32
    }

    pub fn piece_offset(&self, piece: u32) -> u64 {
        u64::from(piece) * u64::from(self.piece_length)
    }

    /// Length of `piece`: `piece_length`, except the last piece, which may be shorter
    /// (0 for an index past the end).
    pub fn piece_size(&self, piece: u32) -> u32 {
        let remaining = self.total_length.saturating_sub(self.piece_offset(piece));
        remaining.min(u64::from(self.piece_length)) as u32
    }
}

/// One part of a byte range that lies in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub file: usize,
    pub file_offset: u64,
    pub len: u64,
}

/// The parts of `[offset, offset + len)` in each file, in order; `place` gives a file's
/// (offset, length) in the torrent's concatenated data, and `files` are sorted by
/// offset. Zero-length files never appear, nor does anything past `total_length`.
pub fn spans<'a, F>(
    files: &'a [F],
    place: impl Fn(&F) -> (u64, u64) + Copy + 'a,
    total_length: u64,
    offset: u64,
    len: u64,
) -> impl Iterator<Item = Span> + 'a {
    let end = offset.saturating_add(len).min(total_length);
    // Binary search for the first file that ends after `offset`.
    let first = files.partition_point(|f| {
        let (o, l) = place(f);
        o + l <= offset
    });
    files
        .iter()
        .enumerate()
        .skip(first)
        .map(move |(i, f)| (i, place(f)))
        .take_while(move |&(_, (o, _))| o < end)
        .filter_map(move |(file, (o, l))| {
            let start = offset.max(o);
            let stop = end.min(o + l);
            (stop > start).then_some(Span {
                file,
                file_offset: start - o,
                len: stop - start,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_full_but_the_last() {
        let g = Geometry {
            piece_length: 16,
            total_length: 40,
        };
        assert_eq!(g.piece_count(), 3);
        assert_eq!(
            (g.piece_size(0), g.piece_size(1), g.piece_size(2)),
            (16, 16, 8)
        );
        assert_eq!(g.piece_size(3), 0);
        assert_eq!(g.piece_offset(2), 32);
        let exact = Geometry {
            piece_length: 8,
            total_length: 16,
        };
        assert_eq!((exact.piece_count(), exact.piece_size(1)), (2, 8));
        let empty = Geometry {
            piece_length: 0,
            total_length: 5,
        };
        assert_eq!(empty.piece_count(), 0);
    }

    #[test]
    fn a_range_splits_at_file_boundaries_skipping_empty_files() {
        // Files of 10, 0, 5 and 7 bytes.
        let files = [(0, 10), (10, 0), (10, 5), (15, 7)];
        let at = |f: &(u64, u64)| *f;
        let got: Vec<Span> = spans(&files, at, 22, 8, 9).collect();
        assert_eq!(
            got,
            vec![
                Span {
                    file: 0,
                    file_offset: 8,
                    len: 2
                },
                Span {
                    file: 2,
                    file_offset: 0,
                    len: 5
                },
                Span {
                    file: 3,
                    file_offset: 0,
                    len: 2
                },
            ]
        );
        assert_eq!(
            spans(&files, at, 22, 20, 100).count(),
            1,
            "clipped at the end"
        );
        assert_eq!(spans(&files, at, 22, 22, 5).count(), 0);
        assert_eq!(spans(&files, at, 22, u64::MAX, 5).count(), 0, "no overflow");
    }

    proptest::proptest! {
        /// Whatever the files and the range: the spans are in file order, each inside
        /// its file, never empty, and together exactly the part of the range that lies
        /// in the data.
        #[test]
        fn spans_cover_exactly_the_range(
            lens in proptest::collection::vec(0u64..50, 0..12),
            offset in 0u64..700,
            len in 0u64..700,
        ) {
            let mut files = Vec::new();
            let mut at = 0;
            for l in lens {
                files.push((at, l));
                at += l;
            }
            let total = at;
            let got: Vec<Span> = spans(&files, |f: &(u64, u64)| *f, total, offset, len).collect();
            let mut cursor = offset.min(total);
            let end = offset.saturating_add(len).min(total);
            let mut last_file = None;
            for s in &got {
                let (o, l) = files[s.file];
                proptest::prop_assert!(s.len > 0);
                proptest::prop_assert!(s.file_offset + s.len <= l);
                proptest::prop_assert!(last_file.is_none_or(|f| s.file > f));
                proptest::prop_assert_eq!(o + s.file_offset, cursor, "contiguous");
                cursor += s.len;
                last_file = Some(s.file);
            }
            proptest::prop_assert_eq!(cursor, end.max(offset.min(total)));
        }
    }
}
