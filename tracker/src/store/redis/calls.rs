//! Script calls to Redis: running a script (loading it when the server lacks it), an
//! announce call's keys and arguments, and the batcher that sends the announces waiting
//! at the same moment to a single Redis as one script call.
//!
//! Why batch: redis-server runs on one core, and each script call costs it a fixed
//! amount around the script itself (reading and parsing the command, setting up the Lua
//! call and its argument tables, the reply, the socket round) that is a third of a small
//! announce's cost. Announces that arrive while earlier ones are in flight are sent
//! together; an idle tracker sends each one at once (no timer, no added wait).

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

/// Arguments of one announce (ARGV of `redis_announce.lua`).
const ARGS: usize = 15;
/// Keys of one announce: 5, or 7 with a label.
const MAX_KEYS: usize = 7;

/// One announce's script keys and arguments, encoded once into one buffer, for a call of
/// its own or a place in a batch.
pub(super) struct AnnounceCall {
    /// The keys, then the arguments.
    parts: Parts<{ MAX_KEYS + ARGS }>,
    keys: usize,
}

impl AnnounceCall {
    pub fn new() -> Self {
        AnnounceCall {
            parts: Parts::with_capacity(384),
            keys: 0,
        }
    }

    /// Appends a key; every key comes before the first argument.
    pub fn key(&mut self, parts: &[&[u8]]) {
        assert_eq!(self.keys, self.parts.len(), "keys come before arguments");
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

    fn part(&self, i: usize) -> &[u8] {
        self.parts.get(i)
    }

    fn check(&self) {
        debug_assert!(
            (self.keys == 5 || self.keys == 7) && self.parts.len() == self.keys + ARGS,
            "an announce call has 5 or 7 keys and {ARGS} arguments"
        );
    }

    /// EVALSHA of `script` (the one-announce entry point) with this call alone.
    pub fn command(&self, script: &Script) -> Cmd {
        self.check();
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(self.keys);
        for i in 0..self.parts.len() {
            cmd.arg(self.part(i));
        }
        cmd
    }
}

/// EVALSHA of `script` (the batch entry point) with `calls` in order: all keys, then
/// the digit string of key counts, then all arguments.
fn batch_command<'a>(
    script: &Script,
    calls: impl Iterator<Item = &'a AnnounceCall> + Clone,
) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    let mut counts = Vec::new();
    for c in calls.clone() {
        c.check();
        counts.push(b'0' + c.keys as u8);
    }
    cmd.arg(script.get_hash())
        .arg(calls.clone().map(|c| c.keys).sum::<usize>());
    for c in calls.clone() {
        for i in 0..c.keys {
            cmd.arg(c.part(i));
        }
    }
    cmd.arg(&counts[..]);
    for c in calls {
        for i in c.keys..c.parts.len() {
            cmd.arg(c.part(i));
        }
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
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
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

    fn call(keys: usize, tag: u8) -> AnnounceCall {
        let mut c = AnnounceCall::new();
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

    #[test]
    fn a_call_alone_lists_its_keys_then_its_arguments() {
        let script = Script::new("return 1");
        let got = args(&call(5, b'a').command(&script));
        assert_eq!(got[0], b"EVALSHA");
        assert_eq!(got[1], script.get_hash().as_bytes());
        assert_eq!(got[2], b"5");
        assert_eq!(got[3], b"ka0");
        assert_eq!(got[7], b"ka4");
        assert_eq!(got[8], b"97"); // the first argument: 0 * 1000 + b'a'
        assert_eq!(got[8 + 14], b"14097");
        assert_eq!(got.len(), 3 + 5 + ARGS);
    }

    #[test]
    fn a_batch_puts_all_keys_first_then_the_key_counts_then_all_arguments() {
        let script = Script::new("return 1");
        let calls = [call(5, b'a'), call(7, b'b')];
        let got = args(&batch_command(&script, calls.iter()));
        assert_eq!(got[2], b"12");
        assert_eq!(got[3], b"ka0");
        assert_eq!(got[8], b"kb0");
        assert_eq!(got[14], b"kb6");
        assert_eq!(got[15], b"57");
        assert_eq!(got[16], b"97");
        assert_eq!(got[16 + ARGS], b"98");
        assert_eq!(got.len(), 3 + 12 + 1 + 2 * ARGS);
    }

    #[test]
    #[should_panic(expected = "keys come before arguments")]
    fn a_key_after_an_argument_is_a_bug() {
        let mut c = AnnounceCall::new();
        c.num(1);
        c.key(&[b"late"]);
    }
}
