//! Following the replicas' log files: every replica, merged line by line as lines complete,
//! until the job has ended and every file is drained. Nothing is lost between "the process
//! wrote its last line" and "the job is terminal": the files are read once more after that.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use crate::backend::LogLine;
use crate::error::Result;
use crate::records::RunDir;

use super::state;

const POLL: Duration = Duration::from_millis(30);

struct Source {
    replica: String,
    path: PathBuf,
    file: Option<File>,
    offset: u64,
    partial: Vec<u8>,
}

impl Source {
    /// Reads what is new; returns complete lines.
    fn poll(&mut self, out: &mut Vec<LogLine>) {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(_) => return,
            }
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if let Ok(n) = file.read_to_end(&mut buf) {
            self.offset += n as u64;
        }
        if buf.is_empty() {
            return;
        }
        self.partial.extend_from_slice(&buf);
        let mut start = 0;
        while let Some(pos) = self.partial[start..].iter().position(|b| *b == b'\n') {
            let line = &self.partial[start..start + pos];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            out.push(LogLine {
                replica: self.replica.clone(),
                text: String::from_utf8_lossy(line).into_owned(),
            });
            start += pos + 1;
        }
        self.partial.drain(..start);
    }

    fn flush(&mut self, out: &mut Vec<LogLine>) {
        if !self.partial.is_empty() {
            out.push(LogLine {
                replica: self.replica.clone(),
                text: String::from_utf8_lossy(&self.partial).into_owned(),
            });
            self.partial.clear();
        }
    }
}

/// An iterator of log lines. With `follow`, it waits for new lines until the job ends.
pub struct FileLogs {
    dir: RunDir,
    sources: Vec<Source>,
    follow: bool,
    ready: std::collections::VecDeque<LogLine>,
    done: bool,
}

impl FileLogs {
    pub fn new(dir: RunDir, replicas: Vec<String>, follow: bool) -> FileLogs {
        let sources = replicas
            .into_iter()
            .map(|r| Source {
                path: dir.log_file(&r),
                replica: r,
                file: None,
                offset: 0,
                partial: Vec::new(),
            })
            .collect();
        FileLogs {
            dir,
            sources,
            follow,
            ready: Default::default(),
            done: false,
        }
    }

    /// Returns what is available now without waiting: `Ok(None)` at the end of the logs,
    /// `Ok(Some(empty))` when the job is still going and nothing new arrived.
    pub fn poll(&mut self) -> Result<Option<Vec<LogLine>>> {
        if !self.ready.is_empty() {
            return Ok(Some(self.ready.drain(..).collect()));
        }
        if self.done {
            return Ok(None);
        }
        // Read the state before the files: if it says terminal, every byte the replicas wrote
        // is already in the files, and this read gets all of it.
        let terminal = !self.follow
            || state::read(&self.dir)
                .map(|s| s.status.phase.is_terminal())
                .unwrap_or(true);
        let mut lines = Vec::new();
        for source in &mut self.sources {
            source.poll(&mut lines);
        }
        if terminal {
            for source in &mut self.sources {
                source.flush(&mut lines);
            }
            self.done = true;
            if lines.is_empty() {
                return Ok(None);
            }
        }
        Ok(Some(lines))
    }
}

impl FileLogs {
    /// Like `poll`, but looks again every `POLL` for up to `wait` while nothing new is there.
    pub fn poll_wait(&mut self, wait: Duration) -> Result<Option<Vec<LogLine>>> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match self.poll()? {
                Some(lines) if lines.is_empty() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(POLL)
                }
                other => return Ok(other),
            }
        }
    }
}

impl Iterator for FileLogs {
    type Item = LogLine;

    fn next(&mut self) -> Option<LogLine> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Some(line);
            }
            match self.poll() {
                Ok(Some(lines)) if lines.is_empty() => std::thread::sleep(POLL),
                Ok(Some(lines)) => self.ready.extend(lines),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

impl crate::backend::LogSource for FileLogs {
    fn poll(&mut self) -> Result<Option<Vec<LogLine>>> {
        FileLogs::poll(self)
    }

    fn poll_wait(&mut self, wait: Duration) -> Result<Option<Vec<LogLine>>> {
        FileLogs::poll_wait(self, wait)
    }
}
