//! Script calls to Redis: running a script (loading it when the server lacks it), an
//! announce call's keys and arguments, and the batcher that sends the announces waiting
//! at the same moment to a single Redis as one script call.
//!
//! Why batch: redis-server runs on one core, and each script call costs it a fixed
//! amount around the script itself (reading and parsing the command, setting up the Lua
//! call and its argument tables, the reply, the socket round) that is a third of a small
//! announce's cost. Announces that arrive while earlier ones are in flight are sent
//! together; an idle tracker sends each one at once (no timer, no added wait). What
//! the announces of one batch share (the bucket's keys, the second, the caps) goes once
//! per script call: each string handed to the script costs Redis time too.

use std::sync::{Arc, Mutex};

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, Script, ServerErrorKind, Value};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::parts::Parts;

/// Runs `cmd`, an EVALSHA of `script`, loading the script first when the server does
/// not know it (a restarted or new node), as `ScriptInvocation::invoke_async` does.
pub(super) async fn eval<T: FromRedisValue, C: ConnectionLike>(
    script: &Script,
    cmd: &Cmd,
    conn: &mut C,
) -> Result<T, RedisError> {
    match cmd.query_async(conn).await {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load_async(conn).await?;
            cmd.query_async(conn).await
        }
        other => other,
    }
}

/// What the announces of one script call share (`redis_announce.lua`'s `shared`): the
/// bucket's two keys, then the time, the stale cutoff and the three caps.
const SHARED: usize = 7;
/// Arguments of one announce (ARGV of `redis_announce.lua`'s `announce`).
const ARGS: usize = 7;
/// Keys of one announce: 3, or 5 with a label.
const MAX_KEYS: usize = 5;

/// The figures every announce of one script call shares (on a single server, every
/// announce of the same second).
pub(super) struct Shared<'a> {
    /// The tag of the bucket that holds the swarm's index entry and totals.
    pub bucket: &'a str,
    pub now: u32,
    /// Peers last seen before this are stale.
    pub cutoff: u32,
    pub max_peers_per_torrent: u64,
    /// 0: no cap.
    pub max_peers_per_ip: u64,
    /// Torrents the bucket may hold.
    pub max_torrents: u64,
}

/// One announce's script keys and arguments, encoded once into one buffer, for a call of
/// its own or a place in a batch: first what it shares with the others of a call, then
/// its own keys, then its own arguments.
pub(super) struct AnnounceCall {
    parts: Parts<{ SHARED + MAX_KEYS + ARGS }>,
    /// Its own keys.
    keys: usize,
}

impl AnnounceCall {
    pub fn new(shared: &Shared<'_>) -> Self {
        let mut parts = Parts::with_capacity(384);
        parts.push(&[b"kpbt:ix", shared.bucket.as_bytes()]);
        parts.push(&[b"kpbt:st", shared.bucket.as_bytes()]);
        for n in [
            u64::from(shared.now),
            u64::from(shared.cutoff),
            shared.max_peers_per_torrent,
            shared.max_peers_per_ip,
            shared.max_torrents,
        ] {
            parts.push_fmt(format_args!("{n}"));
        }
        AnnounceCall { parts, keys: 0 }
    }

    /// Whether this call and `other` can share one script call.
    pub fn shares_with(&self, other: &AnnounceCall) -> bool {
        self.parts.same_first(&other.parts, SHARED)
    }

    /// Appends a key; every key comes before the first argument.
    pub fn key(&mut self, parts: &[&[u8]]) {
        assert_eq!(
            SHARED + self.keys,
            self.parts.len(),
            "keys come before arguments"
        );
        assert!(self.keys < MAX_KEYS, "too many announce keys");
        self.parts.push(parts);
        self.keys += 1;
    }

    pub fn arg(&mut self, bytes: &[u8]) {
        self.parts.push(&[bytes]);
    }

    /// A number argument, as the decimal string the script reads.
    pub fn num(&mut self, n: u64) {
        self.parts.push_fmt(format_args!("{n}"));
    }

    fn check(&self) {
        debug_assert!(
            (self.keys == 3 || self.keys == 5) && self.parts.len() == SHARED + self.keys + ARGS,
            "an announce call has 3 or 5 keys and {ARGS} arguments"
        );
    }

    /// The shared keys (the bucket's two), the shared arguments, its own keys and its
    /// own arguments.
    fn shared_keys(&self) -> impl Iterator<Item = &[u8]> {
        (0..2).map(|i| self.parts.get(i))
    }

    fn shared_args(&self) -> impl Iterator<Item = &[u8]> {
        (2..SHARED).map(|i| self.parts.get(i))
    }

    fn own_keys(&self) -> impl Iterator<Item = &[u8]> {
        (SHARED..SHARED + self.keys).map(|i| self.parts.get(i))
    }

    fn own_args(&self) -> impl Iterator<Item = &[u8]> {
        (SHARED + self.keys..self.parts.len()).map(|i| self.parts.get(i))
    }

    /// EVALSHA of `script` (the one-announce entry point) with this call alone.
    pub fn command(&self, script: &Script) -> Cmd {
        self.check();
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(2 + self.keys);
        for part in self
            .shared_keys()
            .chain(self.own_keys())
            .chain(self.shared_args())
            .chain(self.own_args())
        {
            cmd.arg(part);
        }
        cmd
    }
}

/// EVALSHA of `script` (the batch entry point) with `calls` in order, which all share
/// the first one's part: its keys, then all calls' keys, the digit string of their key
/// counts, the shared arguments, then all calls' arguments.
fn batch_command<'a>(
    script: &Script,
    calls: impl Iterator<Item = &'a AnnounceCall> + Clone,
) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    let mut counts = Vec::new();
    let first = calls.clone().next().expect("a batch holds an announce");
    for c in calls.clone() {
        c.check();
        debug_assert!(c.shares_with(first), "a batch's calls share one part");
        counts.push(b'0' + c.keys as u8);
    }
    cmd.arg(script.get_hash())
        .arg(2 + calls.clone().map(|c| c.keys).sum::<usize>());
    for k in first.shared_keys() {
        cmd.arg(k);
    }
    for k in calls.clone().flat_map(|c| c.own_keys()) {
        cmd.arg(k);
    }
    cmd.arg(&counts[..]);
    for a in first.shared_args() {
        cmd.arg(a);
    }
    for a in calls.flat_map(|c| c.own_args()) {
        cmd.arg(a);
    }
    cmd
}

/// Most announces one batch carries (a batch blocks redis-server for its whole run).
const MAX_BATCH: usize = 64;
/// Batches in flight at once: while they run, new announces queue for the next one, so
/// redis-server always has the next batch waiting and batches grow with the load.
const IN_FLIGHT: usize = 2;
/// Announces waiting for a batch at most; a sender beyond waits (the seam's deadline
/// bounds how long).
const QUEUE: usize = 8192;

struct Job {
    call: AnnounceCall,
    reply: oneshot::Sender<Result<Value, RedisError>>,
}

/// Sends announces to one Redis in batches. The batch task runs on the runtime of the
/// first caller; should that runtime go away (its task with it), the next announce
/// starts a new one.
pub(super) struct Batcher<C> {
    conn: C,
    script: Arc<Script>,
    queue: Mutex<Option<mpsc::Sender<Job>>>,
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Batcher<C> {
    pub fn new(conn: C, script: Arc<Script>) -> Self {
        Batcher {
            conn,
            script,
            queue: Mutex::new(None),
        }
    }

    fn sender(&self, restart: bool) -> mpsc::Sender<Job> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        match &*q {
            Some(tx) if !restart && !tx.is_closed() => tx.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(run(rx, self.conn.clone(), self.script.clone()));
                *q = Some(tx.clone());
                tx
            }
        }
    }

    /// The script's reply to this announce (`redis_announce.lua`'s `announce`).
    pub async fn announce(&self, call: AnnounceCall) -> Result<Value, RedisError> {
        let (reply, rx) = oneshot::channel();
        let mut job = Job { call, reply };
        for restart in [false, true] {
            match self.sender(restart).send(job).await {
                Ok(()) => {
                    return rx.await.unwrap_or_else(|_| {
                        Err(RedisError::from((
                            ErrorKind::Client,
                            "announce batch task stopped",
                        )))
                    })
                }
                Err(mpsc::error::SendError(j)) => job = j,
            }
        }
        Err(RedisError::from((
            ErrorKind::Client,
            "announce batch task cannot start",
        )))
    }
}

async fn run<C: ConnectionLike + Clone + Send + 'static>(
    mut rx: mpsc::Receiver<Job>,
    conn: C,
    script: Arc<Script>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    // A job taken from the queue that could not join the batch before it.
    let mut carried: Option<Job> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) if j.call.shares_with(&jobs[0].call) => jobs.push(j),
                // Another second (or bucket): it starts the next batch.
                Ok(j) => {
                    carried = Some(j);
                    break;
                }
                Err(_) => break,
            }
        }
        let mut conn = conn.clone();
        let script = script.clone();
        tokio::spawn(async move {
            send(&mut conn, &script, jobs).await;
            drop(slot);
        });
    }
}

async fn send<C: ConnectionLike>(conn: &mut C, script: &Script, jobs: Vec<Job>) {
    let cmd = batch_command(script, jobs.iter().map(|j| &j.call));
    let replies = match eval::<Value, C>(script, &cmd, conn).await {
        Ok(Value::Array(items)) if items.len() == jobs.len() => Ok(items),
        Ok(other) => Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "announce batch reply",
            format!("expected {} replies, got {other:?}", jobs.len()),
        ))),
        Err(e) => Err(e),
    };
    match replies {
        Ok(items) => {
            for (job, item) in jobs.into_iter().zip(items) {
                let _ = job.reply.send(Ok(item));
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(now: u32) -> Shared<'static> {
        Shared {
            bucket: "{b}",
            now,
            cutoff: now - 100,
            max_peers_per_torrent: 1000,
            max_peers_per_ip: 8,
            max_torrents: 50,
        }
    }

    fn call(keys: usize, tag: u8) -> AnnounceCall {
        let mut c = AnnounceCall::new(&shared(1_800_000_000));
        for k in 0..keys {
            c.key(&[b"k", &[tag, b'0' + k as u8]]);
        }
        for a in 0..ARGS as u64 {
            c.num(a * 1000 + u64::from(tag));
        }
        c
    }

    fn args(cmd: &Cmd) -> Vec<Vec<u8>> {
        cmd.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => b"<not a plain argument>".to_vec(),
            })
            .collect()
    }

    /// The shared arguments, in `redis_announce.lua`'s order.
    const SHARED_ARGS: [&[u8]; 5] = [b"1800000000", b"1799999900", b"1000", b"8", b"50"];

    #[test]
    fn a_call_alone_lists_the_shared_keys_its_keys_the_shared_arguments_then_its_own() {
        let script = Script::new("return 1");
        let got = args(&call(3, b'a').command(&script));
        assert_eq!(got[0], b"EVALSHA");
        assert_eq!(got[1], script.get_hash().as_bytes());
        assert_eq!(got[2], b"5");
        assert_eq!(got[3], b"kpbt:ix{b}");
        assert_eq!(got[4], b"kpbt:st{b}");
        assert_eq!(got[5], b"ka0");
        assert_eq!(got[7], b"ka2");
        assert_eq!(got[8..13], SHARED_ARGS.map(|a| a.to_vec()));
        assert_eq!(got[13], b"97"); // the first argument: 0 * 1000 + b'a'
        assert_eq!(got[13 + 6], b"6097");
        assert_eq!(got.len(), 3 + 2 + 3 + 5 + ARGS);
    }

    #[test]
    fn a_batch_puts_all_keys_first_then_the_key_counts_then_all_arguments() {
        let script = Script::new("return 1");
        let calls = [call(3, b'a'), call(5, b'b')];
        let got = args(&batch_command(&script, calls.iter()));
        assert_eq!(got[2], b"10");
        assert_eq!(got[3], b"kpbt:ix{b}");
        assert_eq!(got[5], b"ka0");
        assert_eq!(got[8], b"kb0");
        assert_eq!(got[12], b"kb4");
        assert_eq!(got[13], b"35");
        assert_eq!(got[14..19], SHARED_ARGS.map(|a| a.to_vec()));
        assert_eq!(got[19], b"97");
        assert_eq!(got[19 + ARGS], b"98");
        assert_eq!(got.len(), 3 + 10 + 1 + 5 + 2 * ARGS);
    }

    #[test]
    fn only_calls_of_the_same_second_and_bucket_share_a_batch() {
        let a = AnnounceCall::new(&shared(1_800_000_000));
        assert!(a.shares_with(&AnnounceCall::new(&shared(1_800_000_000))));
        assert!(!a.shares_with(&AnnounceCall::new(&shared(1_800_000_001))));
        let other_bucket = Shared {
            bucket: "{c}",
            ..shared(1_800_000_000)
        };
        assert!(!a.shares_with(&AnnounceCall::new(&other_bucket)));
    }

    /// A connection that records each batch (its shared time and its calls' first
    /// arguments) and answers every call with that argument.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Batch>>>);

    /// A recorded batch: its shared time, and each call's first argument.
    type Batch = (Vec<u8>, Vec<Vec<u8>>);

    impl ConnectionLike for Recorder {
        fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, Value> {
            let got = args(cmd);
            let keys: usize = std::str::from_utf8(&got[2]).unwrap().parse().unwrap();
            let counts = &got[3 + keys];
            let now = got[3 + keys + 1].clone();
            let own = 3 + keys + 1 + 5;
            let firsts: Vec<Vec<u8>> = (0..counts.len())
                .map(|i| got[own + i * ARGS].clone())
                .collect();
            self.0.lock().unwrap().push((now, firsts.clone()));
            let reply = Value::Array(firsts.into_iter().map(Value::BulkString).collect());
            Box::pin(async move { Ok(reply) })
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            _: &'a redis::Pipeline,
            _: usize,
            _: usize,
        ) -> redis::RedisFuture<'a, Vec<Value>> {
            unreachable!("the batcher sends single commands")
        }

        fn get_db(&self) -> i64 {
            0
        }
    }

    #[tokio::test]
    async fn announces_of_another_second_wait_for_the_next_batch_in_order() {
        let conn = Recorder::default();
        let batcher = Batcher::new(conn.clone(), Arc::new(Script::new("return 1")));
        const T: u32 = 1_800_000_000;
        let at = |now: u32, tag: u8| {
            let mut c = AnnounceCall::new(&shared(now));
            for k in 0..3 {
                c.key(&[b"k", &[tag, b'0' + k]]);
            }
            c.arg(&[tag]);
            for _ in 1..ARGS {
                c.arg(b"-");
            }
            c
        };
        // All queued before the batch task first runs (one thread, no await between).
        let calls = [
            (T, b'a'),
            (T, b'b'),
            (T + 1, b'c'),
            (T + 1, b'd'),
            (T, b'e'),
        ];
        let replies =
            futures_util::future::join_all(calls.map(|(now, tag)| batcher.announce(at(now, tag))))
                .await;
        for ((_, tag), reply) in calls.iter().zip(replies) {
            assert_eq!(reply.unwrap(), Value::BulkString(vec![*tag]));
        }
        let t = |n: u32| n.to_string().into_bytes();
        assert_eq!(
            *conn.0.lock().unwrap(),
            [
                (t(T), vec![b"a".to_vec(), b"b".to_vec()]),
                (t(T + 1), vec![b"c".to_vec(), b"d".to_vec()]),
                (t(T), vec![b"e".to_vec()]),
            ]
        );
    }

    #[test]
    #[should_panic(expected = "keys come before arguments")]
    fn a_key_after_an_argument_is_a_bug() {
        let mut c = AnnounceCall::new(&shared(1_800_000_000));
        c.num(1);
        c.key(&[b"late"]);
    }
}
