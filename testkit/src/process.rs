//! Kill-on-drop guard for third-party child processes, with logs captured to files
//! and dumped into the test output when the test fails.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How much of each log is printed when a test panics while the child is alive.
const DUMP_TAIL_BYTES: usize = 16 * 1024;

/// A spawned child process that is killed (SIGKILL) and reaped when dropped.
///
/// stdout and stderr go to `<name>.stdout.log` / `<name>.stderr.log` in the given
/// directory. If the guard is dropped while the thread is panicking (a failing test),
/// the tails of both logs are printed to stderr, which the test harness shows.
pub struct ChildGuard {
    name: String,
    child: Child,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
    extra_logs: Vec<PathBuf>,
    exited: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed and output captured into `log_dir`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(log_dir)?;
        let stdout_log = log_dir.join(format!("{name}.stdout.log"));
        let stderr_log = log_dir.join(format!("{name}.stderr.log"));
        cmd.stdin(Stdio::null())
            .stdout(File::create(&stdout_log)?)
            .stderr(File::create(&stderr_log)?);
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawning {name} ({cmd:?}): {e}")))?;
        Ok(Self {
            name: name.to_string(),
            child,
            stdout_log,
            stderr_log,
            extra_logs: Vec::new(),
            exited: None,
        })
    }

    /// Also dump this file (e.g. a `--log=` file the child writes) on failure.
    pub fn add_log(&mut self, path: PathBuf) {
        self.extra_logs.push(path);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout_log(&self) -> &Path {
        &self.stdout_log
    }

    pub fn stderr_log(&self) -> &Path {
        &self.stderr_log
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait()?;
        }
        Ok(self.exited)
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Waits for the child to exit, at most `timeout` (then: `TimedOut` error; the
    /// child keeps running until the guard is dropped).
    pub fn wait_exit(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait()? {
                return Ok(st);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} (pid {}) still running after {timeout:?}",
                        self.name,
                        self.pid()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls until `cond()` is true; fails early if the child exits, or on timeout.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut() -> bool,
    ) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if cond() {
                return Ok(());
            }
            if let Some(st) = self.try_wait()? {
                return Err(io::Error::other(format!(
                    "{} exited ({st}) before {what}\n{}",
                    self.name,
                    self.log_tails()
                )));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{}: no {what} within {timeout:?}", self.name),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until stdout or stderr contains `needle`.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) -> io::Result<()> {
        let (out, err) = (self.stdout_log.clone(), self.stderr_log.clone());
        self.wait_until(&format!("output {needle:?}"), timeout, || {
            [&out, &err]
                .iter()
                .any(|p| fs::read(p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle)))
        })
    }

    /// Kills (SIGKILL) and reaps the child now. Idempotent.
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// The last bytes of every captured log, as printable text.
    pub fn log_tails(&self) -> String {
        let mut s = String::new();
        for p in [&self.stdout_log, &self.stderr_log]
            .into_iter()
            .chain(self.extra_logs.iter())
        {
            let data = fs::read(p).unwrap_or_default();
            let tail = &data[data.len().saturating_sub(DUMP_TAIL_BYTES)..];
            // Progress lines use '\r'; make them readable.
            let text = String::from_utf8_lossy(tail).replace('\r', "\n");
            s.push_str(&format!(
                "----- {} {} ({} bytes, last {}) -----\n{}\n",
                self.name,
                p.display(),
                data.len(),
                tail.len(),
                text.trim_end()
            ));
        }
        s
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let status = self.try_wait().ok().flatten();
        self.kill();
        if std::thread::panicking() {
            let state = match status {
                Some(st) => format!("had exited: {st}"),
                None => "was running; killed".to_string(),
            };
            eprintln!(
                "===== test failed: logs of {} (pid {}, {state}) =====\n{}",
                self.name,
                self.child.id(),
                self.log_tails()
            );
        }
    }
}
