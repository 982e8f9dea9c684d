//! Bounded bencode: a zero-copy decoder that keeps raw spans (for info hashes) and an encoder.
//!
//! The decoder is iterative over nesting only through an explicit depth counter, and the
//! depth limit is checked before recursing, so hostile input cannot overflow the stack.
//! Every allocation is proportional to the number of items actually present in the input,
//! which is itself capped by [`Limits::max_items`].

use thiserror::Error;

/// Bounds applied while decoding untrusted bencode.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Deepest nesting of lists and dictionaries accepted.
    pub max_depth: usize,
    /// Total number of values (of any kind) accepted in one document.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_items: 4_000_000,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum BencodeError {
    #[error("bencode ends early at byte {0}")]
    UnexpectedEnd(usize),
    #[error("unexpected byte {byte:#04x} at offset {offset}")]
    UnexpectedByte { byte: u8, offset: usize },
    #[error("invalid integer at offset {0}")]
    InvalidInteger(usize),
    #[error("integer out of range at offset {0}")]
    IntegerOverflow(usize),
    #[error("invalid string length at offset {0}")]
    InvalidLength(usize),
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("more than {0} values")]
    TooManyItems(usize),
    #[error("dictionary key at offset {0} is not a byte string")]
    NonStringKey(usize),
    #[error("duplicate dictionary key at offset {0}")]
    DuplicateKey(usize),
    #[error("{0} bytes of trailing data after the bencoded value")]
    TrailingData(usize),
}

/// A decoded bencode value borrowing from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Dict(Dict<'a>),
}

/// A dictionary in input order, with the raw bytes it was decoded from.
///
/// Input order is kept (not re-sorted) and `raw` is the exact input span, so hashing
/// `raw` gives the same info hash as every other client even for non-canonical input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dict<'a> {
    entries: Vec<(&'a [u8], Value<'a>)>,
    raw: &'a [u8],
}

impl<'a> Dict<'a> {
    /// Builds a dictionary for encoding; `raw` stays empty because it was never decoded.
    pub fn from_entries(entries: Vec<(&'a [u8], Value<'a>)>) -> Self {
        Self { entries, raw: &[] }
    }

    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The exact input bytes of this dictionary, `d` through `e`.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &Value<'a>)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> Value<'a> {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if it is one.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Dictionary lookup; `None` when this is not a dictionary or the key is absent.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.as_dict().and_then(|d| d.get(key))
    }
}

/// Decodes exactly one value spanning the whole buffer, with default limits.
pub fn decode(buf: &[u8]) -> Result<Value<'_>, BencodeError> {
    decode_with(buf, Limits::default())
}

/// Decodes exactly one value spanning the whole buffer.
pub fn decode_with(buf: &[u8], limits: Limits) -> Result<Value<'_>, BencodeError> {
    let (value, used) = decode_prefix(buf, limits)?;
    if used != buf.len() {
        return Err(BencodeError::TrailingData(buf.len() - used));
    }
    Ok(value)
}

/// Decodes one value from the start of `buf`, returning it and the bytes it used.
pub fn decode_prefix(buf: &[u8], limits: Limits) -> Result<(Value<'_>, usize), BencodeError> {
    let mut decoder = Decoder {
        buf,
        pos: 0,
        items: 0,
        limits,
    };
    let value = decoder.value(0)?;
    Ok((value, decoder.pos))
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    items: usize,
    limits: Limits,
}

impl<'a> Decoder<'a> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(BencodeError::UnexpectedEnd(self.pos))
    }

    fn count_item(&mut self) -> Result<(), BencodeError> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(BencodeError::TooManyItems(self.limits.max_items));
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, BencodeError> {
        self.count_item()?;
        match self.peek()? {
            b'i' => self.int().map(Value::Int),
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                self.enter(depth)?;
                self.pos += 1;
                let mut list = Vec::new();
                while self.peek()? != b'e' {
                    list.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(list))
            }
            b'd' => {
                self.enter(depth)?;
                let start = self.pos;
                self.pos += 1;
                let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
                while self.peek()? != b'e' {
                    let key_at = self.pos;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(BencodeError::NonStringKey(key_at));
                    }
                    let key = self.bytes()?;
                    // Duplicate keys would make lookups ambiguous between clients.
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(BencodeError::DuplicateKey(key_at));
                    }
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                self.pos += 1;
                Ok(Value::Dict(Dict {
                    entries,
                    raw: &self.buf[start..self.pos],
                }))
            }
            byte => Err(BencodeError::UnexpectedByte {
                byte,
                offset: self.pos,
            }),
        }
    }

    fn enter(&self, depth: usize) -> Result<(), BencodeError> {
        if depth >= self.limits.max_depth {
            Err(BencodeError::TooDeep(self.limits.max_depth))
        } else {
            Ok(())
        }
    }

    fn int(&mut self) -> Result<i64, BencodeError> {
        let start = self.pos;
        self.pos += 1; // 'i'
        let end = self.find(b'e', start)?;
        let digits = &self.buf[self.pos..end];
        let value = parse_int(digits, start)?;
        self.pos = end + 1;
        Ok(value)
    }

    fn bytes(&mut self) -> Result<&'a [u8], BencodeError> {
        let start = self.pos;
        let colon = self.find(b':', start).map_err(|e| match e {
            BencodeError::InvalidInteger(at) => BencodeError::InvalidLength(at),
            other => other,
        })?;
        let digits = &self.buf[start..colon];
        if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
            return Err(BencodeError::InvalidLength(start));
        }
        let mut len: usize = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return Err(BencodeError::InvalidLength(start));
            }
            len = len
                .checked_mul(10)
                .and_then(|l| l.checked_add(usize::from(d - b'0')))
                .ok_or(BencodeError::InvalidLength(start))?;
        }
        let data_start = colon + 1;
        let data_end = data_start
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or(BencodeError::UnexpectedEnd(self.buf.len()))?;
        self.pos = data_end;
        Ok(&self.buf[data_start..data_end])
    }

    /// Position of `byte` at or after the current position; integers and lengths are
    /// short, so the search is capped to keep hostile input from scanning megabytes.
    fn find(&self, byte: u8, start: usize) -> Result<usize, BencodeError> {
        let window_end = self.buf.len().min(self.pos + 24);
        self.buf[self.pos..window_end]
            .iter()
            .position(|&b| b == byte)
            .map(|i| self.pos + i)
            .ok_or(if window_end == self.buf.len() {
                BencodeError::UnexpectedEnd(self.buf.len())
            } else {
                BencodeError::InvalidInteger(start)
            })
    }
}

fn parse_int(digits: &[u8], at: usize) -> Result<i64, BencodeError> {
    let (negative, body) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    let leading_zero = body.len() > 1 && body[0] == b'0';
    let negative_zero = negative && body == b"0";
    let digits_only = !body.is_empty() && body.iter().all(u8::is_ascii_digit);
    if !digits_only || leading_zero || negative_zero {
        return Err(BencodeError::InvalidInteger(at));
    }
    let mut value: i64 = 0;
    for &d in body {
        let digit = i64::from(d - b'0');
        value = value
            .checked_mul(10)
            .and_then(|v| {
                if negative {
                    v.checked_sub(digit)
                } else {
                    v.checked_add(digit)
                }
            })
            .ok_or(BencodeError::IntegerOverflow(at))?;
    }
    Ok(value)
}

/// Appends the bencoding of `value`; dictionary keys are written sorted, as BEP 3 requires.
pub fn encode(value: &Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Int(i) => write_int(out, *i),
        Value::Bytes(b) => write_bytes(out, b),
        Value::List(items) => {
            out.push(b'l');
            for item in items {
                encode(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(dict) => {
            let mut entries: Vec<_> = dict.entries.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'd');
            for (key, value) in entries {
                write_bytes(out, key);
                encode(value, out);
            }
            out.push(b'e');
        }
    }
}

/// Convenience: the encoding of `value` as a new buffer.
pub fn to_vec(value: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out);
    out
}

/// Appends `i<n>e`.
pub fn write_int(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    out.extend_from_slice(n.to_string().as_bytes());
    out.push(b'e');
}

/// Appends `<len>:<bytes>`.
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_nested_values_and_keeps_dict_raw_span() {
        let input = b"d3:bar4:spam3:fooi42e4:listl1:a1:bi-3eee";
        let v = decode(input).unwrap();
        assert_eq!(v.get(b"bar").unwrap().as_str(), Some("spam"));
        assert_eq!(v.get(b"foo").unwrap().as_int(), Some(42));
        let list = v.get(b"list").unwrap().as_list().unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[2].as_int(), Some(-3));
        assert_eq!(v.as_dict().unwrap().raw(), &input[..]);
    }

    #[test]
    fn raw_span_of_non_canonical_inner_dict_is_exact() {
        // Keys out of order: the raw span must still be the input bytes, not a re-encoding.
        let input = b"d4:infod1:zi1e1:ai2eee";
        let v = decode(input).unwrap();
        let info = v.get(b"info").unwrap().as_dict().unwrap();
        assert_eq!(info.raw(), b"d1:zi1e1:ai2ee");
        assert_eq!(to_vec(v.get(b"info").unwrap()), b"d1:ai2e1:zi1ee");
    }

    #[test]
    fn rejects_malformed_integers() {
        for bad in [
            &b"i-0e"[..],
            b"i03e",
            b"ie",
            b"i-e",
            b"i1x2e",
            b"i99999999999999999999e",
            b"i12",
        ] {
            assert!(
                decode(bad).is_err(),
                "{:?} should fail",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap().as_int(),
            Some(i64::MIN)
        );
        assert_eq!(
            decode(b"i9223372036854775808e"),
            Err(BencodeError::IntegerOverflow(0))
        );
    }

    #[test]
    fn rejects_bad_strings_and_structure() {
        assert_eq!(decode(b"5:abc"), Err(BencodeError::UnexpectedEnd(5)));
        assert!(decode(b"05:abcde").is_err());
        assert!(decode(b"99999999999999999999:a").is_err());
        assert!(decode(b"l").is_err());
        assert!(decode(b"di1ei2ee").is_err());
        assert_eq!(
            decode(b"d1:ai1e1:ai2ee"),
            Err(BencodeError::DuplicateKey(7))
        );
        assert_eq!(decode(b"i1ei2e"), Err(BencodeError::TrailingData(3)));
        assert!(decode(b"").is_err());
        assert!(decode(b"x").is_err());
    }

    #[test]
    fn depth_limit_is_enforced_without_recursing_past_it() {
        let deep: Vec<u8> = std::iter::repeat_n(b'l', 100_000)
            .chain(std::iter::repeat_n(b'e', 100_000))
            .collect();
        assert_eq!(decode(&deep), Err(BencodeError::TooDeep(64)));
        let ok: Vec<u8> = std::iter::repeat_n(b'l', 64)
            .chain(std::iter::repeat_n(b'e', 64))
            .collect();
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn item_limit_is_enforced() {
        let many: Vec<u8> = b"l"
            .iter()
            .chain(b"i1e".repeat(100).iter())
            .chain(b"e")
            .copied()
            .collect();
        let limits = Limits {
            max_depth: 8,
            max_items: 50,
        };
        assert_eq!(
            decode_with(&many, limits),
            Err(BencodeError::TooManyItems(50))
        );
    }

    #[test]
    fn encoder_matches_serde_bencode() {
        let value = Value::Dict(Dict::from_entries(vec![
            (b"zeta", Value::Int(-7)),
            (b"alpha", Value::Bytes(b"x\x00y")),
            (b"list", Value::List(vec![Value::Int(0), Value::Bytes(b"")])),
        ]));
        let ours = to_vec(&value);
        let theirs: serde_bencode::value::Value = serde_bencode::from_bytes(&ours).unwrap();
        assert_eq!(serde_bencode::to_bytes(&theirs).unwrap(), ours);
        assert_eq!(ours, b"d5:alpha3:x\x00y4:listli0e0:e4:zetai-7ee");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn arb_value() -> impl Strategy<Value = OwnedValue> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(OwnedValue::Int),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(OwnedValue::Bytes),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(OwnedValue::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..8),
                    inner,
                    0..6
                )
                .prop_map(|m| OwnedValue::Dict(m.into_iter().collect())),
            ]
        })
    }

    #[derive(Debug, Clone)]
    enum OwnedValue {
        Int(i64),
        Bytes(Vec<u8>),
        List(Vec<OwnedValue>),
        Dict(Vec<(Vec<u8>, OwnedValue)>),
    }

    fn borrow(v: &OwnedValue) -> Value<'_> {
        match v {
            OwnedValue::Int(i) => Value::Int(*i),
            OwnedValue::Bytes(b) => Value::Bytes(b),
            OwnedValue::List(l) => Value::List(l.iter().map(borrow).collect()),
            OwnedValue::Dict(d) => Value::Dict(Dict::from_entries(
                d.iter().map(|(k, v)| (k.as_slice(), borrow(v))).collect(),
            )),
        }
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(v in arb_value()) {
            let encoded = to_vec(&borrow(&v));
            let decoded = decode(&encoded).unwrap();
            prop_assert_eq!(to_vec(&decoded), encoded);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
