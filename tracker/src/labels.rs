//! Rack/zone labels: named groups of networks, so that an announce's reply lists peers of
//! the announcer's own label first (same rack, same zone), then the rest.
//!
//! The config names labels in order (`[labels]` in TOML, `--label NAME=CIDR,...`); an
//! address has the first label, in that order, whose networks contain it. At start the
//! networks become one sorted table of disjoint address ranges per family, each with the
//! label that wins there, so a lookup is a binary search over a few entries and
//! allocates nothing.
//!
//! A label is a [`LabelId`]: 1..=255 in config order, 0 for none. Stores keep the id
//! (memory) or the name (Redis) with each peer.

use std::fmt;
use std::net::IpAddr;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clientaddr::Cidr;

/// Most labels one config may define (ids fit in a byte, 0 being "none").
pub const MAX_LABELS: usize = 255;
/// Longest label name; names become Redis key suffixes and metric label values.
pub const MAX_NAME_LEN: usize = 64;
/// What unlabelled peers are called in metrics and in `/swarms/{info_hash}`.
pub const NONE: &str = "none";

/// A label's number: 1.. in config order; 0 is [`LabelId::NONE`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelId(pub u8);

impl LabelId {
    pub const NONE: LabelId = LabelId(0);

    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The index of this label in per-label arrays that hold "none" at 0.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// The `labels` setting as written: label name → networks, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelsConfig(pub Vec<(String, Vec<String>)>);

impl LabelsConfig {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks names and networks; the error says which entry is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.compile().map(drop)
    }

    /// The lookup table, or why the setting is wrong.
    pub fn compile(&self) -> Result<Labels, String> {
        if self.0.len() > MAX_LABELS {
            return Err(format!(
                "labels: {} labels given, at most {MAX_LABELS} are supported",
                self.0.len()
            ));
        }
        let mut parsed = Vec::with_capacity(self.0.len());
        for (name, nets) in &self.0 {
            check_name(name)?;
            if parsed.iter().any(|(n, _): &(String, _)| n == name) {
                return Err(format!("labels: {name:?} is defined twice"));
            }
            if nets.is_empty() {
                return Err(format!("labels: {name:?} has no networks"));
            }
            let cidrs = nets
                .iter()
                .map(|c| c.parse::<Cidr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("labels: {name:?}: {e}"))?;
            parsed.push((name.clone(), cidrs));
        }
        Ok(Labels::new(&parsed))
    }

    /// Parses one `--label NAME=CIDR[,CIDR...]` argument.
    pub fn parse_arg(arg: &str) -> Result<(String, Vec<String>), String> {
        let Some((name, nets)) = arg.split_once('=') else {
            return Err(format!(
                "label {arg:?} is not NAME=CIDR[,CIDR...], e.g. rack-a=10.1.0.0/16"
            ));
        };
        let name = name.trim().to_owned();
        check_name(&name)?;
        let nets: Vec<String> = nets
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        if nets.is_empty() {
            return Err(format!("label {name:?} has no networks"));
        }
        for n in &nets {
            n.parse::<Cidr>()
                .map_err(|e| format!("label {name:?}: {e}"))?;
        }
        Ok((name, nets))
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(format!(
            "label name {name:?} must be 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.'"
        ));
    }
    if name == NONE {
        return Err(format!(
            "label name {NONE:?} is reserved for peers without a label"
        ));
    }
    Ok(())
}

impl Serialize for LabelsConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for LabelsConfig {
    /// A table of name → one network or an array of them, kept in the order written.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = LabelsConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of label name = [\"CIDR\", ...]")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<LabelsConfig, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = m.next_key::<String>()? {
                    let nets = match m.next_value::<OneOrMany>().map_err(|_| {
                        serde::de::Error::custom(format!(
                            "label {name:?} must be a network string or an array of them"
                        ))
                    })? {
                        OneOrMany::One(s) => vec![s],
                        OneOrMany::Many(v) => v,
                    };
                    out.push((name, nets));
                }
                Ok(LabelsConfig(out))
            }
        }
        d.deserialize_map(Ordered)
    }
}

/// A run of addresses `[start, end]` (as integers) that has label `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u128,
    end: u128,
    id: u8,
}

/// The label lookup table: label names in config order, and for each address family the
/// disjoint ranges each label wins, sorted by start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    names: Vec<String>,
    v4: Vec<Span>,
    v6: Vec<Span>,
}

impl Labels {
    /// No labels: every address is unlabelled.
    pub fn empty() -> Self {
        Labels::default()
    }

    /// From (name, networks) in config order; at most [`MAX_LABELS`] (later ones are
    /// ignored; [`LabelsConfig::compile`] refuses them first).
    pub fn new(labels: &[(String, Vec<Cidr>)]) -> Self {
        let labels = &labels[..labels.len().min(MAX_LABELS)];
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, (_, nets)) in labels.iter().enumerate() {
            let id = (i + 1) as u8;
            for net in nets {
                match canonical_bounds(net) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => {
                        v4.push(Span {
                            start: u128::from(u32::from(a)),
                            end: u128::from(u32::from(b)),
                            id,
                        });
                    }
                    (a, b) => v6.push(Span {
                        start: v6_value(a),
                        end: v6_value(b),
                        id,
                    }),
                }
            }
        }
        Labels {
            names: labels.iter().map(|(n, _)| n.clone()).collect(),
            v4: disjoint(v4),
            v6: disjoint(v6),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// How many labels there are (not counting "none").
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Label names in config order; name `i` has id `i + 1`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The label of `ip` (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn lookup(&self, ip: IpAddr) -> LabelId {
        let (spans, x) = match ip.to_canonical() {
            IpAddr::V4(a) => (&self.v4, u128::from(u32::from(a))),
            IpAddr::V6(a) => (&self.v6, u128::from(a)),
        };
        let i = spans.partition_point(|s| s.start <= x);
        match i.checked_sub(1).map(|i| spans[i]) {
            Some(s) if s.end >= x => LabelId(s.id),
            _ => LabelId::NONE,
        }
    }

    /// The name of `id`: the configured name, or [`NONE`].
    pub fn name(&self, id: LabelId) -> &str {
        match id.0 {
            0 => NONE,
            n => self
                .names
                .get(usize::from(n) - 1)
                .map_or(NONE, String::as_str),
        }
    }

    /// The id of the label called `name` ([`LabelId::NONE`] if there is none such).
    pub fn id_of(&self, name: &str) -> LabelId {
        self.names
            .iter()
            .position(|n| n == name)
            .map_or(LabelId::NONE, |i| LabelId((i + 1) as u8))
    }

    /// Every name with "none" first, as per-label arrays are indexed.
    pub fn names_with_none(&self) -> impl Iterator<Item = &str> {
        std::iter::once(NONE).chain(self.names.iter().map(String::as_str))
    }
}

/// A network's bounds with IPv4-mapped IPv6 networks (`::ffff:a.b.c.d/96+n`) as IPv4.
fn canonical_bounds(net: &Cidr) -> (IpAddr, IpAddr) {
    let (a, b) = net.bounds();
    match (a.to_canonical(), b.to_canonical()) {
        (a @ IpAddr::V4(_), b @ IpAddr::V4(_)) => (a, b),
        _ => (a, b),
    }
}

fn v6_value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V6(a) => u128::from(a),
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
    }
}

/// Overlapping ranges (in priority order: lower id wins) as sorted disjoint spans, with
/// neighbours of the same label merged. Quadratic in the number of networks, which is
/// what an operator types: fine at start-up.
fn disjoint(ranges: Vec<Span>) -> Vec<Span> {
    // Every place where the winning label can change.
    let mut cuts: Vec<u128> = ranges
        .iter()
        .flat_map(|r| [Some(r.start), r.end.checked_add(1)])
        .flatten()
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<Span> = Vec::new();
    for (i, &start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).map_or(u128::MAX, |next| next - 1);
        let Some(id) = ranges
            .iter()
            .filter(|r| r.start <= start && start <= r.end)
            .map(|r| r.id)
            .min()
        else {
            continue;
        };
        match out.last_mut() {
            Some(last) if last.id == id && last.end.checked_add(1) == Some(start) => {
                last.end = end;
            }
            _ => out.push(Span { start, end, id }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn config(entries: &[(&str, &[&str])]) -> LabelsConfig {
        LabelsConfig(
            entries
                .iter()
                .map(|(n, nets)| (n.to_string(), nets.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn first_label_in_config_order_wins_where_networks_overlap() {
        let l = config(&[
            ("rack-a", &["10.1.0.0/16"]),
            ("zone-eu", &["10.0.0.0/8", "fd00::/8"]),
            ("rack-b", &["10.1.2.0/24", "10.3.0.0/16"]),
        ])
        .compile()
        .unwrap();
        assert_eq!(l.names(), ["rack-a", "zone-eu", "rack-b"]);
        for (addr, want) in [
            ("10.1.2.3", "rack-a"), // in all three: the first wins
            ("10.1.0.0", "rack-a"),
            ("10.1.255.255", "rack-a"),
            ("10.0.255.255", "zone-eu"),
            ("10.2.0.1", "zone-eu"),
            ("10.3.0.1", "zone-eu"), // rack-b's 10.3/16 is inside zone-eu's 10/8
            ("10.255.255.255", "zone-eu"),
            ("11.0.0.0", NONE),
            ("9.255.255.255", NONE),
            ("::ffff:10.1.9.9", "rack-a"),
            ("fd12::1", "zone-eu"),
            ("fe80::1", NONE),
            ("::", NONE),
            ("255.255.255.255", NONE),
        ] {
            assert_eq!(l.name(l.lookup(ip(addr))), want, "{addr}");
        }
        assert_eq!(l.id_of("rack-b"), LabelId(3));
        assert_eq!(l.id_of("nope"), LabelId::NONE);
        assert_eq!(
            l.names_with_none().collect::<Vec<_>>(),
            ["none", "rack-a", "zone-eu", "rack-b"]
        );
    }

    #[test]
    fn table_is_sorted_disjoint_and_merged() {
        let l = config(&[
            ("a", &["10.0.0.0/24", "10.0.1.0/24"]),
            ("b", &["0.0.0.0/0"]),
            ("c", &["::/0"]),
        ])
        .compile()
        .unwrap();
        // a's two adjacent /24s merge into one span; b covers the rest of IPv4 around it.
        let v4: Vec<(u128, u128, u8)> = l.v4.iter().map(|s| (s.start, s.end, s.id)).collect();
        let a = u128::from(u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)));
        assert_eq!(
            v4,
            [
                (0, a - 1, 2),
                (a, a + 511, 1),
                (a + 512, u128::from(u32::MAX), 2)
            ]
        );
        assert_eq!(l.v6.len(), 1);
        assert_eq!(l.name(l.lookup(ip("2001:db8::1"))), "c");
        assert_eq!(
            l.name(l.lookup(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))),
            "c"
        );
        assert_eq!(Labels::empty().lookup(ip("10.0.0.1")), LabelId::NONE);
    }

    #[test]
    fn lookups_agree_with_a_linear_scan_of_the_config() {
        let entries: Vec<(String, Vec<Cidr>)> = [
            ("x", vec!["10.0.0.0/9", "192.168.0.0/16"]),
            ("y", vec!["10.64.0.0/10", "10.0.0.0/16"]),
            ("z", vec!["0.0.0.0/1", "2001:db8::/32"]),
        ]
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                v.iter().map(|c| c.parse().unwrap()).collect(),
            )
        })
        .collect();
        let l = Labels::new(&entries);
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Bias towards the configured networks' neighbourhood.
            let a = IpAddr::from(
                if x.is_multiple_of(3) {
                    x
                } else {
                    0x0a00_0000 | (x >> 8)
                }
                .to_be_bytes(),
            );
            let want = entries
                .iter()
                .position(|(_, nets)| nets.iter().any(|n| n.contains(a)))
                .map_or(LabelId::NONE, |i| LabelId(i as u8 + 1));
            assert_eq!(l.lookup(a), want, "{a}");
        }
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        for (entries, want) in [
            (config(&[("", &["10.0.0.0/8"])]), "label name"),
            (config(&[("rack a", &["10.0.0.0/8"])]), "label name"),
            (config(&[("none", &["10.0.0.0/8"])]), "reserved"),
            (config(&[("a", &[])]), "no networks"),
            (config(&[("a", &["10.0.0.0/33"])]), "not an IP network"),
            (
                config(&[("a", &["10.0.0.0/8"]), ("a", &["10.0.0.0/8"])]),
                "defined twice",
            ),
        ] {
            let e = entries.validate().unwrap_err();
            assert!(e.contains(want), "{entries:?}: {e}");
        }
        let many = LabelsConfig(
            (0..256)
                .map(|i| (format!("l{i}"), vec!["10.0.0.0/8".into()]))
                .collect(),
        );
        assert!(many.validate().unwrap_err().contains("at most 255"));
    }

    #[test]
    fn command_line_form() {
        assert_eq!(
            LabelsConfig::parse_arg("zone-eu=10.2.0.0/16, fd00::/8").unwrap(),
            (
                "zone-eu".into(),
                vec!["10.2.0.0/16".into(), "fd00::/8".into()]
            )
        );
        for bad in ["rack-a", "rack-a=", "=10.0.0.0/8", "a=banana"] {
            assert!(LabelsConfig::parse_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_keeps_the_order_written_and_takes_one_network_or_many() {
        #[derive(Deserialize, Serialize, Debug, PartialEq)]
        struct T {
            labels: LabelsConfig,
        }
        let text = "[labels]\nzz = [\"10.1.0.0/16\"]\naa = \"10.2.0.0/16\"\nmm = [\"fd00::/8\", \"10.3.0.0/16\"]\n";
        let t: T = toml::from_str(text).unwrap();
        assert_eq!(
            t.labels,
            config(&[
                ("zz", &["10.1.0.0/16"]),
                ("aa", &["10.2.0.0/16"]),
                ("mm", &["fd00::/8", "10.3.0.0/16"]),
            ])
        );
        let back: T = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        let err = toml::from_str::<T>("[labels]\na = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("network string or an array"), "{err}");
    }
}
