//! The re-announce fast path: a peer that the swarm already holds, announcing again on
//! the same side with nothing else to change, served by one pipeline of plain commands
//! instead of the announce script.
//!
//! Why: redis-server runs on one core, and most announces are such re-announces. Through
//! the script each costs it about 9-11 µs (the script call's set-up, its arguments, the
//! Lua around its `redis.call`s and each call's conversions); the same work as plain
//! pipelined commands costs about 5 µs (docs/benchmarks.md, "Tracker on Redis").
//!
//! How it stays exact: the pipeline is one MULTI/EXEC transaction (all its keys share
//! the swarm's slot), so it sees and leaves the swarm as one script call would. It reads
//! what decides whether the shortcut applies (the swarm's index score, the peer's stored
//! id, and whether the peer is on that side) and, in the same step, refreshes the peer's
//! last-seen if it is on that side and the new time is later (`ZADD XX GT`), counts both
//! sides and samples them. When the reads say the script is needed after all (a new
//! peer, a side change, a new id or a label to move, stale peers to trim, a clock behind
//! the index), the caller runs the script, which does all of that. To the script the
//! refresh is an ordinary re-announce's; and since it only ever raises a score it keeps
//! the index's lower bound true even if the script never runs (the caller's deadline
//! passed in between). Two differences remain, both at the edges and both the memory
//! store's behaviour too: a stale announcer that has not been trimmed yet is refreshed
//! and stays a known peer (the script alone would trim it, then add it back as a new
//! one), and a later time written by an instance whose clock is ahead is not lowered.

use rand::seq::SliceRandom;
use redis::{Cmd, Pipeline, Value};

use super::parts::Parts;

/// One unlabelled peer's event-less announce, for a reply without peer ids.
pub(super) struct Reannounce<'a> {
    /// The swarm's name in the index (the info hash in hex).
    pub hex: &'a str,
    /// The tag of the bucket that holds the swarm's index entry (`kpbt:ix{tag}`).
    pub bucket: &'a str,
    /// The announcer's compact address (the member of its side's sorted set).
    pub addr: &'a [u8],
    pub peer_id: &'a [u8; 20],
    pub now: u32,
    /// Peers last seen before this are stale.
    pub cutoff: u32,
    pub seeder: bool,
    /// Peers wanted (already capped).
    pub want: usize,
}

/// What the pipeline's replies say.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Served: the swarm's counts and the picked peers' compact addresses.
    Served {
        complete: u32,
        incomplete: u32,
        peers: Vec<Vec<u8>>,
    },
    /// The announce script has to run (it sees this call's refresh as a re-announce).
    NeedsScript,
}

/// A command with room for its arguments, so building it does not reallocate.
fn command(name: &str, args: &[&[u8]]) -> Cmd {
    let mut c = Cmd::with_capacity(
        args.len() + 1,
        name.len() + args.iter().map(|a| a.len()).sum::<usize>(),
    );
    c.arg(name);
    for a in args {
        c.arg(*a);
    }
    c
}

impl Reannounce<'_> {
    /// The commands, in the order [`Reannounce::verdict`] reads their replies.
    pub fn pipeline(&self) -> Pipeline {
        let mut parts: Parts<7> = Parts::with_capacity(192);
        let h = self.hex;
        let (s, l, p) = (
            parts.push_fmt(format_args!("{{{h}}}s")),
            parts.push_fmt(format_args!("{{{h}}}l")),
            parts.push_fmt(format_args!("{{{h}}}p")),
        );
        let index = parts.push_fmt(format_args!("kpbt:ix{}", self.bucket));
        let now = parts.push_fmt(format_args!("{}", self.now));
        let want = parts.push_fmt(format_args!("{}", self.want));
        let want_more = parts.push_fmt(format_args!("{}", self.want + 1));
        let part = |i| parts.get(i);
        let side = part(if self.seeder { s } else { l });
        let mut pipe = Pipeline::with_capacity(8);
        pipe.atomic();
        pipe.add_command(command("ZSCORE", &[part(index), h.as_bytes()]));
        pipe.add_command(command("HGET", &[part(p), self.addr]));
        pipe.add_command(command("ZSCORE", &[side, self.addr]));
        pipe.add_command(command("ZADD", &[side, b"XX", b"GT", part(now), self.addr]));
        pipe.add_command(command("ZCARD", &[part(s)]));
        pipe.add_command(command("ZCARD", &[part(l)]));
        if self.want > 0 {
            // Enough candidates for any split between the sides, the announcer (on its
            // own side) aside. A seeder is given leechers only.
            if self.seeder {
                pipe.add_command(command("ZRANDMEMBER", &[part(l), part(want)]));
            } else {
                pipe.add_command(command("ZRANDMEMBER", &[part(s), part(want)]));
                pipe.add_command(command("ZRANDMEMBER", &[part(l), part(want_more)]));
            }
        }
        pipe
    }

    /// Reads the pipeline's replies (the transaction's): served, or the script is
    /// needed.
    pub fn verdict(&self, replies: Vec<Value>) -> Result<Verdict, String> {
        let expected = 6 + match (self.want, self.seeder) {
            (0, _) => 0,
            (_, true) => 1,
            (_, false) => 2,
        };
        if replies.len() != expected {
            return Err(format!(
                "re-announce reply: {} replies, expected {expected}",
                replies.len()
            ));
        }
        let mut replies = replies.into_iter();
        let mut next = |what: &str| {
            replies
                .next()
                .ok_or_else(|| format!("re-announce reply: no {what}"))
        };
        let index = score(next("index score")?)?;
        let stored = match next("stored id")? {
            Value::Nil => None,
            Value::BulkString(b) => Some(b),
            other => return Err(format!("re-announce stored id: {other:?}")),
        };
        let on_side = score(next("side score")?)?.is_some();
        next("refresh")?;
        let s = count(next("seeder count")?)?;
        let l = count(next("leecher count")?)?;
        let (from_s, from_l) = match (self.want, self.seeder) {
            (0, _) => (Vec::new(), Vec::new()),
            (_, true) => (Vec::new(), members(next("leecher sample")?)?),
            (_, false) => (
                members(next("seeder sample")?)?,
                members(next("leecher sample")?)?,
            ),
        };
        // The index score is a lower bound of the swarm's oldest last-seen: at or above
        // the cutoff, no peer is stale. Above `now` (another instance's clock is ahead),
        // the script lowers it.
        let (now, cutoff) = (f64::from(self.now), f64::from(self.cutoff));
        let fresh = index.is_some_and(|m| m >= cutoff && m <= now);
        // The stored value is the id followed by the label's name: exactly the id means
        // same id and no label.
        let same = stored.as_deref() == Some(&self.peer_id[..]);
        if !(fresh && same && on_side) {
            return Ok(Verdict::NeedsScript);
        }
        let peers = pick(
            self.seeder,
            s,
            l,
            self.want,
            self.addr,
            from_s,
            from_l,
            &mut rand::thread_rng(),
        );
        let n = |c: u64| u32::try_from(c).unwrap_or(u32::MAX);
        Ok(Verdict::Served {
            complete: n(s),
            incomplete: n(l),
            peers,
        })
    }
}

/// A `ZSCORE` reply: a number as a bulk string (RESP2) or a double (RESP3), or nil.
fn score(v: Value) -> Result<Option<f64>, String> {
    match v {
        Value::Nil => Ok(None),
        Value::Double(d) => Ok(Some(d)),
        Value::BulkString(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|t| t.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("re-announce score {:?}", String::from_utf8_lossy(&b))),
        other => Err(format!("re-announce score: {other:?}")),
    }
}

fn count(v: Value) -> Result<u64, String> {
    match v {
        Value::Int(n) => Ok(n.max(0) as u64),
        other => Err(format!("re-announce count: {other:?}")),
    }
}

fn members(v: Value) -> Result<Vec<Vec<u8>>, String> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .map(|m| match m {
                Value::BulkString(b) => Ok(b),
                other => Err(format!("re-announce sample member: {other:?}")),
            })
            .collect(),
        other => Err(format!("re-announce sample: {other:?}")),
    }
}

/// Up to `want` peers other than `me` from the samples, as the announce script picks
/// them for an unlabelled announcer: a seeder gets leechers only; a leecher gets seeders
/// and leechers in proportion to their numbers, each side topped up from the other.
/// `s` and `l` are the sides' sizes, the announcer on its own.
#[allow(clippy::too_many_arguments)]
fn pick(
    seeder: bool,
    s: u64,
    l: u64,
    want: usize,
    me: &[u8],
    mut from_s: Vec<Vec<u8>>,
    mut from_l: Vec<Vec<u8>>,
    rng: &mut impl rand::Rng,
) -> Vec<Vec<u8>> {
    let want = want as u64;
    let (os, ol) = if seeder {
        (0, l)
    } else {
        (s, l.saturating_sub(1))
    };
    let (mut qs, mut ql) = (os, ol);
    if os + ol > want {
        // floor(want * os / (os + ol) + 0.5), as the script rounds (in u128: no
        // overflow whatever the counts; the result is at most `want`).
        let total = u128::from(os + ol);
        qs = ((2 * u128::from(want) * u128::from(os) + total) / (2 * total)) as u64;
        ql = ol.min(want - qs);
        qs = os.min(want - ql);
    }
    from_s.retain(|a| a != me);
    from_l.retain(|a| a != me);
    // A sample is a set, not in random order (ZRANDMEMBER says so), so a part of it is
    // chosen by shuffling (a sample holds at most numwant + 1 members).
    let mut take = |mut from: Vec<Vec<u8>>, n: u64| {
        let n = (n as usize).min(from.len());
        if n < from.len() {
            from.shuffle(rng);
            from.truncate(n);
        }
        from
    };
    let mut out = take(from_s, qs);
    out.extend(take(from_l, ql));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn a(n: u8) -> Vec<u8> {
        vec![10, 0, 0, n, 0, n]
    }

    fn call(seeder: bool, want: usize) -> Reannounce<'static> {
        static ME: [u8; 6] = [10, 0, 0, 9, 0, 9];
        static ID: [u8; 20] = [9; 20];
        Reannounce {
            hex: "ab",
            bucket: "{123}",
            addr: &ME,
            peer_id: &ID,
            now: 1000,
            cutoff: 900,
            seeder,
            want,
        }
    }

    fn bulk(b: &[u8]) -> Value {
        Value::BulkString(b.to_vec())
    }

    fn replies(index: Option<&str>, stored: Option<&[u8]>, on_side: bool) -> Vec<Value> {
        let opt = |v: Option<&[u8]>| v.map_or(Value::Nil, bulk);
        vec![
            opt(index.map(str::as_bytes)),
            opt(stored),
            if on_side { bulk(b"950") } else { Value::Nil },
            Value::Int(0),
            Value::Int(2),
            Value::Int(3),
            Value::Array(vec![bulk(&a(1)), bulk(&a(2))]),
            Value::Array(vec![bulk(&a(3)), bulk(&[10, 0, 0, 9, 0, 9]), bulk(&a(4))]),
        ]
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn the_pipeline_reads_then_refreshes_counts_and_samples_in_that_order() {
        let names = |p: &Pipeline| -> Vec<String> {
            p.cmd_iter()
                .map(|c| match c.args_iter().next() {
                    Some(redis::Arg::Simple(b)) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                })
                .collect()
        };
        let leecher = names(&call(false, 50).pipeline());
        assert_eq!(
            leecher,
            [
                "ZSCORE",
                "HGET",
                "ZSCORE",
                "ZADD",
                "ZCARD",
                "ZCARD",
                "ZRANDMEMBER",
                "ZRANDMEMBER"
            ]
        );
        assert_eq!(names(&call(true, 50).pipeline()).len(), 7);
        assert!(call(false, 50).pipeline().is_transaction());
        assert_eq!(names(&call(false, 0).pipeline()).len(), 6);
        // Every key of the pipeline is in the swarm's slot (its hash tag) or its bucket.
        let packed =
            String::from_utf8_lossy(&call(false, 5).pipeline().get_packed_pipeline()).into_owned();
        assert!(packed.contains("{ab}s") && packed.contains("{ab}l") && packed.contains("{ab}p"));
        assert!(packed.contains("kpbt:ix{123}"));
        assert!(packed.starts_with("*1\r\n$5\r\nMULTI\r\n"));
        assert!(packed.ends_with("*1\r\n$4\r\nEXEC\r\n"));
        // Refreshed only where it already is (XX), and never to an earlier time (GT).
        assert!(packed.contains("ZADD\r\n$5\r\n{ab}l\r\n$2\r\nXX\r\n$2\r\nGT\r\n$4\r\n1000\r\n"));
    }

    #[test]
    fn a_known_fresh_peer_is_served_without_itself() {
        let v = call(false, 50)
            .verdict(replies(Some("900"), Some(&[9; 20]), true))
            .unwrap();
        let Verdict::Served {
            complete,
            incomplete,
            mut peers,
        } = v
        else {
            panic!("not served: {v:?}");
        };
        assert_eq!((complete, incomplete), (2, 3));
        peers.sort();
        assert_eq!(peers, [a(1), a(2), a(3), a(4)]);
    }

    #[test]
    fn anything_the_script_must_handle_sends_the_announce_there() {
        let id: &[u8] = &[9; 20];
        let mut labelled = id.to_vec();
        labelled.extend_from_slice(b"rack1");
        for (why, r) in [
            ("no swarm in the index", replies(None, Some(id), true)),
            ("stale peers", replies(Some("899"), Some(id), true)),
            ("index ahead of now", replies(Some("1001"), Some(id), true)),
            ("new peer", replies(Some("950"), None, false)),
            ("other side", replies(Some("950"), Some(id), false)),
            ("new id", replies(Some("950"), Some(&[8; 20]), true)),
            ("stored label", replies(Some("950"), Some(&labelled), true)),
        ] {
            assert_eq!(
                call(false, 50).verdict(r).unwrap(),
                Verdict::NeedsScript,
                "{why}"
            );
        }
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let mut short = replies(Some("950"), Some(&[9; 20]), true);
        short.truncate(5);
        assert!(call(false, 50).verdict(short).is_err());
        let mut long = replies(Some("950"), Some(&[9; 20]), true);
        long.push(Value::Int(1));
        assert!(call(false, 50).verdict(long).is_err());
        // A seeder's pipeline has one sample, not two.
        assert!(call(true, 50)
            .verdict(replies(Some("950"), Some(&[9; 20]), true))
            .is_err());
        let mut bad = replies(Some("x"), Some(&[9; 20]), true);
        assert!(call(false, 50).verdict(bad.clone()).is_err());
        bad[0] = Value::Int(3);
        assert!(call(false, 50).verdict(bad).is_err());
        let mut member = replies(Some("950"), Some(&[9; 20]), true);
        member[6] = Value::Array(vec![Value::Int(1)]);
        assert!(call(false, 50).verdict(member).is_err());
    }

    #[test]
    fn seeders_get_leechers_only() {
        let got = pick(
            true,
            5,
            3,
            50,
            &a(9),
            vec![a(1)],
            vec![a(2), a(3)],
            &mut rng(),
        );
        assert_eq!(got, [a(2), a(3)]);
    }

    #[test]
    fn a_leecher_gets_both_sides_in_proportion_topped_up() {
        let side = |r: std::ops::Range<u8>| r.map(a).collect::<Vec<_>>();
        // 30 seeders, 90 other leechers, 40 wanted: 10 and 30.
        let me = a(200);
        let mut leechers = side(100..150);
        leechers.push(me.clone());
        let got = pick(false, 30, 91, 40, &me, side(0..30), leechers, &mut rng());
        assert_eq!(got.len(), 40);
        assert_eq!(got.iter().filter(|p| p[3] < 100).count(), 10);
        assert!(!got.contains(&me));
        let distinct: std::collections::HashSet<_> = got.iter().collect();
        assert_eq!(distinct.len(), 40);
        // Few seeders: their share rounds to none and leechers fill it.
        let got = pick(
            false,
            2,
            51,
            10,
            &me,
            side(0..2),
            side(100..111),
            &mut rng(),
        );
        assert_eq!(got.len(), 10);
        // Fewer peers than wanted: all of them.
        let got = pick(false, 2, 3, 50, &me, side(0..2), side(100..102), &mut rng());
        assert_eq!(got.len(), 4);
        // A sample smaller than the counts said (peers left in between): what is there.
        let got = pick(
            false,
            10,
            10,
            8,
            &me,
            side(0..1),
            side(100..102),
            &mut rng(),
        );
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn a_part_of_a_sample_is_a_random_part() {
        let side: Vec<Vec<u8>> = (0..50).map(a).collect();
        let mut seen = std::collections::HashSet::new();
        let mut r = rng();
        for _ in 0..50 {
            for p in pick(true, 0, 50, 5, &a(200), Vec::new(), side.clone(), &mut r) {
                seen.insert(p);
            }
        }
        assert!(seen.len() > 40, "only {} of 50 ever picked", seen.len());
    }
}
