//! Logs of every replica, merged as lines arrive. Follow mode watches the job's pods, starts a
//! follower for each pod as soon as its container has started (so Pending pods are waited for,
//! not skipped), and resumes a dropped stream from its last timestamp: sinceTime has second
//! precision on real kubelets, so lines at or before the last one seen are skipped by their
//! full timestamp, and none is repeated or lost. Each replica's lines are also written to the
//! run folder (`logs/<replica>.log`, as the local backend does), so logs outlive the pods.
//!
//! A container that restarted in place (restartPolicy OnFailure) is read from its previous
//! instance first (`previous=true`, the one instance the kubelet keeps), so what it printed
//! before dying is not lost. While a replica is pending, each change of what it waits for
//! comes as one line of that replica, marked `kflow: ` (`waiting for worker-0:
//! ContainerCreating`); those lines are not written to the local copy, which holds only what
//! the job printed.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;

use crate::backend::local::FileLogs;
use crate::backend::LogLine;
use crate::error::Result;
use crate::kubeflow::Conditions;
use crate::records::RunDir;

use super::api_errors::status_code;
use super::retry::retry;
use super::status::{container_finished, container_started, main_container, replica_name};

/// What kflow's own lines in a job's log start with, so the CLI and the kernel can show them
/// apart from the job's output.
pub const KFLOW_LINE_PREFIX: &str = "kflow: ";

/// How many times the container has restarted in its pod.
pub fn restart_count(pod: &Pod, container: &str) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

/// What a pod that has not started yet waits for: its container's waiting reason
/// (ContainerCreating, ImagePullBackOff…), or why it is not scheduled, else "Pending".
pub fn waiting_reason(pod: &Pod, container: &str) -> String {
    let status = pod.status.as_ref();
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    let unscheduled = || {
        status?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .map(|c| match &c.message {
                Some(m) if !m.is_empty() => format!(
                    "{} ({m})",
                    c.reason.clone().unwrap_or_else(|| "Unschedulable".into())
                ),
                _ => c.reason.clone().unwrap_or_else(|| "Unschedulable".into()),
            })
    };
    waiting
        .or_else(unscheduled)
        .unwrap_or_else(|| "Pending".into())
}
use super::{pod_selector, ClusterBackend};

pub(crate) enum Msg {
    Line(LogLine),
    /// Lines that arrived together (one read of a stream): one hand-over, not one per line.
    Lines(Vec<LogLine>),
    /// The cluster has nothing for this job (pods gone): read the local copy instead.
    UseLocalCopy,
    Done,
}

/// Where a resumed stream picks up: the last timestamp emitted and how many lines carried it.
#[derive(Debug, Default, Clone)]
pub struct Cursor {
    last: Option<Timestamp>,
    at_last: usize,
}

impl Cursor {
    /// sinceTime for a reconnect: the last instant seen. Real API servers pass it on to the
    /// kubelet at second precision, so the lines of that second come again and are skipped by
    /// their full timestamps; servers that keep the precision send fewer repeats.
    pub fn since(&self) -> Option<Timestamp> {
        self.last
    }

    /// A reader over one stream: decides line by line whether it is new.
    pub fn reader(&mut self) -> CursorReader<'_> {
        let replay = self.at_last;
        CursorReader {
            cursor: self,
            replay,
        }
    }
}

pub struct CursorReader<'a> {
    cursor: &'a mut Cursor,
    replay: usize,
}

impl CursorReader<'_> {
    /// Takes a `<RFC3339Nano> <text>` line; returns the text when it was not emitted before.
    pub fn accept<'l>(&mut self, line: &'l str) -> Option<&'l str> {
        let (ts, text) = match line.split_once(' ') {
            Some((ts, text)) => (ts.parse::<Timestamp>().ok(), text),
            None => (line.parse::<Timestamp>().ok(), ""),
        };
        let Some(ts) = ts else { return Some(line) };
        let c = &mut *self.cursor;
        match c.last {
            Some(last) if ts < last => return None,
            Some(last) if ts == last && self.replay > 0 => {
                self.replay -= 1;
                return None;
            }
            Some(last) if ts == last => c.at_last += 1,
            _ => {
                c.last = Some(ts);
                c.at_last = 1;
                self.replay = 0;
            }
        }
        Some(text)
    }
}

/// An iterator of log lines, like the local backend's.
pub struct ClusterLogStream {
    rx: mpsc::Receiver<Msg>,
    ready: VecDeque<LogLine>,
    local: Option<FileLogs>,
    dir: RunDir,
    replicas: Vec<String>,
    done: bool,
    task: Option<tokio::task::JoinHandle<()>>,
    // Keeps the runtime the task runs on alive for as long as the stream.
    _backend: Arc<ClusterBackend>,
}

impl Drop for ClusterLogStream {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl ClusterLogStream {
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        backend: Arc<ClusterBackend>,
        jobs: Api<DynamicObject>,
        ns: &str,
        name: &str,
        run_id: &str,
        dir: RunDir,
        replicas: Vec<String>,
        follow: bool,
    ) -> ClusterLogStream {
        let (tx, rx) = mpsc::channel();
        let pods: Api<Pod> = Api::namespaced(backend.client().clone(), ns);
        let name = name.to_string();
        let selector = pod_selector(&name, run_id);
        let logs_dir = dir.logs();
        let task = if follow {
            backend
                .runtime()
                .spawn(follow_job(jobs, pods, name, selector, logs_dir, tx))
        } else {
            backend
                .runtime()
                .spawn(snapshot(pods, selector, logs_dir, tx))
        };
        ClusterLogStream {
            rx,
            ready: VecDeque::new(),
            local: None,
            dir,
            replicas,
            done: false,
            task: Some(task),
            _backend: backend,
        }
    }

    /// What is available now: `Ok(None)` at the end, `Ok(Some(empty))` when nothing new came.
    pub fn poll(&mut self) -> Result<Option<Vec<LogLine>>> {
        if let Some(local) = self.local.as_mut() {
            return local.poll();
        }
        if !self.ready.is_empty() {
            return Ok(Some(self.ready.drain(..).collect()));
        }
        if self.done {
            return Ok(None);
        }
        let mut lines = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Line(l)) => lines.push(l),
                Ok(Msg::Lines(batch)) => lines.extend(batch),
                Ok(Msg::UseLocalCopy) => {
                    self.local = Some(FileLogs::new(
                        self.dir.clone(),
                        self.replicas.clone(),
                        false,
                    ));
                    break;
                }
                Ok(Msg::Done) | Err(mpsc::TryRecvError::Disconnected) => {
                    self.done = true;
                    break;
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if lines.is_empty() {
            if let Some(local) = self.local.as_mut() {
                return local.poll();
            }
            if self.done {
                return Ok(None);
            }
        }
        Ok(Some(lines))
    }

    /// Like `poll`, but waits up to `wait` for the first line instead of returning empty at once.
    pub fn poll_wait(&mut self, wait: Duration) -> Result<Option<Vec<LogLine>>> {
        if self.local.is_none() && self.ready.is_empty() && !self.done {
            match self.rx.recv_timeout(wait) {
                Ok(Msg::Line(l)) => self.ready.push_back(l),
                Ok(Msg::Lines(batch)) => self.ready.extend(batch),
                Ok(Msg::UseLocalCopy) => {
                    self.local = Some(FileLogs::new(
                        self.dir.clone(),
                        self.replicas.clone(),
                        false,
                    ))
                }
                Ok(Msg::Done) | Err(mpsc::RecvTimeoutError::Disconnected) => self.done = true,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        let mut lines: Vec<LogLine> = self.ready.drain(..).collect();
        match self.poll()? {
            Some(more) => {
                lines.extend(more);
                Ok(Some(lines))
            }
            None if lines.is_empty() => Ok(None),
            None => Ok(Some(lines)),
        }
    }

    fn wait_next(&mut self) -> Option<LogLine> {
        loop {
            if let Some(l) = self.ready.pop_front() {
                return Some(l);
            }
            if let Some(local) = self.local.as_mut() {
                return local.next();
            }
            if self.done {
                return None;
            }
            match self.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Msg::Line(l)) => return Some(l),
                Ok(Msg::Lines(batch)) => self.ready.extend(batch),
                Ok(Msg::UseLocalCopy) => {
                    self.local = Some(FileLogs::new(
                        self.dir.clone(),
                        self.replicas.clone(),
                        false,
                    ))
                }
                Ok(Msg::Done) | Err(mpsc::RecvTimeoutError::Disconnected) => self.done = true,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

impl Iterator for ClusterLogStream {
    type Item = LogLine;

    fn next(&mut self) -> Option<LogLine> {
        self.wait_next()
    }
}

fn log_file(logs_dir: &std::path::Path, replica: &str) -> PathBuf {
    logs_dir.join(format!("{replica}.log"))
}

fn open_copy(path: &std::path::Path) -> Option<std::fs::File> {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::File::create(path).ok()
}

/// The whole log of every started replica once, without following. When the pods are gone,
/// the local copy is the log.
pub(crate) async fn snapshot(
    pods: Api<Pod>,
    selector: String,
    logs_dir: PathBuf,
    tx: mpsc::Sender<Msg>,
) {
    let lp = ListParams::default().labels(&selector);
    let list = match retry(|| pods.list(&lp)).await {
        Ok(l) => l.items,
        Err(_) => Vec::new(),
    };
    let mut named: Vec<(String, Pod)> = list
        .into_iter()
        .filter_map(|p| replica_name(&p).map(|n| (n, p)))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let started: Vec<&(String, Pod)> = named
        .iter()
        .filter(|(_, p)| main_container(p).is_some_and(|c| container_started(p, &c)))
        .collect();
    if started.is_empty() {
        let _ = tx.send(Msg::UseLocalCopy);
        let _ = tx.send(Msg::Done);
        return;
    }
    // All read before anything is shown or copied: when the pods' logs cannot be read, the
    // local copy is the log, and it must not be overwritten with less.
    let mut fetched: Vec<(String, Vec<String>)> = Vec::new();
    for (replica, pod) in started {
        let container = main_container(pod).unwrap_or_default();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let mut cursor = Cursor::default();
        let mut lines = Vec::new();
        if restart_count(pod, &container) > 0 {
            drain(&pods, &pod_name, &container, true, &mut cursor, &mut |t| {
                lines.push(t.to_string())
            })
            .await;
        }
        if !drain(&pods, &pod_name, &container, false, &mut cursor, &mut |t| {
            lines.push(t.to_string())
        })
        .await
        {
            let _ = tx.send(Msg::UseLocalCopy);
            let _ = tx.send(Msg::Done);
            return;
        }
        fetched.push((replica.clone(), lines));
    }
    for (replica, lines) in fetched {
        let mut copy = LogCopy::new(&log_file(&logs_dir, &replica), &replica, tx.clone());
        for text in &lines {
            copy.push(text);
        }
    }
    let _ = tx.send(Msg::Done);
}

/// Follows the job until it has ended and every started replica's log is drained.
async fn follow_job(
    jobs: Api<DynamicObject>,
    pods: Api<Pod>,
    job: String,
    selector: String,
    logs_dir: PathBuf,
    tx: mpsc::Sender<Msg>,
) {
    let mut pod_events =
        watcher::watcher(pods.clone(), watcher::Config::default().labels(&selector))
            .default_backoff()
            .boxed();
    let mut job_events = watcher::watcher(
        jobs,
        watcher::Config::default().fields(&format!("metadata.name={job}")),
    )
    .default_backoff()
    .boxed();
    let mut followers: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
    // Pod uids already followed: a replaced pod (same name, new uid) gets a new follower.
    let mut followed: HashSet<String> = HashSet::new();
    // The last waiting reason shown per replica: one line per change, not per pod update.
    let mut waiting: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut ended = false;
    let mut seen_job = false;
    let start_follower =
        |pod: &Pod, followers: &mut tokio::task::JoinSet<()>, followed: &mut HashSet<String>| {
            let (Some(replica), Some(container), Some(uid)) = (
                replica_name(pod),
                main_container(pod),
                pod.metadata.uid.clone(),
            ) else {
                return;
            };
            if !container_started(pod, &container) || followed.contains(&uid) {
                return;
            }
            followed.insert(uid);
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            followers.spawn(follow_pod(
                pods.clone(),
                pod_name,
                container,
                replica.clone(),
                log_file(&logs_dir, &replica),
                tx.clone(),
            ));
        };
    loop {
        tokio::select! {
            Some(ev) = pod_events.next() => {
                if let Ok(Event::Apply(p) | Event::InitApply(p)) = ev {
                    if let (Some(replica), Some(container)) = (replica_name(&p), main_container(&p)) {
                        if !container_started(&p, &container) && !container_finished(&p, &container) {
                            let reason = waiting_reason(&p, &container);
                            if waiting.get(&replica) != Some(&reason) {
                                let text = format!("{KFLOW_LINE_PREFIX}waiting for {replica}: {reason}");
                                let _ = tx.send(Msg::Line(LogLine { replica: replica.clone(), text }));
                                waiting.insert(replica, reason);
                            }
                        }
                    }
                    start_follower(&p, &mut followers, &mut followed);
                }
            }
            Some(ev) = job_events.next() => match ev {
                Ok(Event::Apply(j) | Event::InitApply(j)) => {
                    seen_job = true;
                    ended = job_ended(&j);
                }
                Ok(Event::Delete(_)) => ended = true,
                Ok(Event::InitDone) if !seen_job => ended = true,
                _ => {}
            },
            Some(_) = followers.join_next(), if !followers.is_empty() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        if ended {
            // The job's end may arrive before the pod update that shows a container started:
            // one last list makes sure every replica that ran is followed to its end.
            let lp = ListParams::default().labels(&selector);
            if let Ok(list) = retry(|| pods.list(&lp)).await {
                if list.items.is_empty() && followed.is_empty() {
                    let _ = tx.send(Msg::UseLocalCopy);
                }
                for p in &list.items {
                    start_follower(p, &mut followers, &mut followed);
                }
            }
            while followers.join_next().await.is_some() {}
            break;
        }
    }
    let _ = tx.send(Msg::Done);
}

fn job_ended(job: &DynamicObject) -> bool {
    Conditions::of_job(&job.data).ended()
}

/// One replica's lines on their way out: appended to its local copy through a buffer and
/// collected into one batch per read, so a fast log costs a write and a channel hand-over per
/// network read, not per line. `flush` also runs on drop, so nothing buffered is lost.
struct LogCopy {
    file: Option<std::io::BufWriter<std::fs::File>>,
    replica: String,
    batch: Vec<LogLine>,
    tx: mpsc::Sender<Msg>,
}

impl LogCopy {
    fn new(path: &std::path::Path, replica: &str, tx: mpsc::Sender<Msg>) -> LogCopy {
        let file = open_copy(path).map(|f| std::io::BufWriter::with_capacity(64 << 10, f));
        LogCopy {
            file,
            replica: replica.to_string(),
            batch: Vec::new(),
            tx,
        }
    }

    fn push(&mut self, text: &str) {
        if let Some(f) = self.file.as_mut() {
            let _ = writeln!(f, "{text}");
        }
        self.batch.push(LogLine {
            replica: self.replica.clone(),
            text: text.to_string(),
        });
    }

    fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
        }
        if !self.batch.is_empty() {
            let _ = self.tx.send(Msg::Lines(std::mem::take(&mut self.batch)));
        }
    }
}

impl Drop for LogCopy {
    fn drop(&mut self) {
        self.flush();
    }
}

/// One pod's container log, from its first line to its last, across dropped streams.
async fn follow_pod(
    pods: Api<Pod>,
    pod: String,
    container: String,
    replica: String,
    copy_path: PathBuf,
    tx: mpsc::Sender<Msg>,
) {
    let mut cursor = Cursor::default();
    let mut copy = LogCopy::new(&copy_path, &replica, tx);
    let mut failures = 0u32;
    // The restart count of the container instance read last (None: none read yet).
    let mut instance: Option<i32> = None;
    loop {
        // A restart since the last read (or before the first): the previous instance's rest
        // first, else what it printed after the last line seen would be lost.
        if let Ok(Some(p)) = retry(|| pods.get_opt(&pod)).await {
            let restarts = restart_count(&p, &container);
            if instance.map_or(restarts > 0, |n| restarts > n) {
                drain(&pods, &pod, &container, true, &mut cursor, &mut |t| {
                    copy.push(t)
                })
                .await;
                copy.flush();
            }
            instance = Some(restarts);
        }
        let client = pods.clone().into_client();
        match client
            .request_stream(log_request(
                &pods,
                &pod,
                &container,
                true,
                false,
                cursor.since(),
            ))
            .await
        {
            Ok(stream) => {
                failures = 0;
                let mut stream =
                    std::pin::pin!(futures::io::BufReader::with_capacity(256 << 10, stream));
                let mut reader = cursor.reader();
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match stream.read_until(b'\n', &mut buf).await {
                        // Only whole lines count: a line cut by a dropped stream comes again.
                        Ok(n) if n > 0 && buf.ends_with(b"\n") => {
                            let line = String::from_utf8_lossy(&buf[..buf.len() - 1]);
                            let line = line.strip_suffix('\r').unwrap_or(&line);
                            if let Some(t) = reader.accept(line) {
                                copy.push(t);
                            }
                            // Hand over what this read brought before waiting for the next.
                            if stream.buffer().is_empty() {
                                copy.flush();
                            }
                        }
                        _ => break,
                    }
                }
                copy.flush();
            }
            Err(e) if status_code(&e) == Some(404) => return,
            Err(_) => {
                failures += 1;
                // Not started yet, or a passing failure: try again shortly; give up after ~2 min.
                if failures > 600 {
                    return;
                }
            }
        }
        // The stream ended: either the container ended or the connection dropped.
        let current = match retry(|| pods.get_opt(&pod)).await {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if container_finished(&current, &container) {
            // Whatever came after a drop and before the end: fetched again, deduplicated.
            if restart_count(&current, &container) > instance.unwrap_or(0) {
                drain(&pods, &pod, &container, true, &mut cursor, &mut |t| {
                    copy.push(t)
                })
                .await;
            }
            drain(&pods, &pod, &container, false, &mut cursor, &mut |t| {
                copy.push(t)
            })
            .await;
            copy.flush();
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A pods/log request. Built here rather than with kube's LogParams because kube rounds
/// sinceTime to the nearest second, which can skip up to half a second of lines on a resume;
/// the full-precision instant (or a kubelet's truncation of it) never does.
fn log_request(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    follow: bool,
    previous: bool,
    since: Option<Timestamp>,
) -> http::Request<Vec<u8>> {
    let mut url = format!(
        "{}/{pod}/log?container={container}&timestamps=true",
        pods.resource_url()
    );
    if follow {
        url.push_str("&follow=true");
    }
    if previous {
        url.push_str("&previous=true");
    }
    if let Some(t) = since {
        // RFC 3339 in UTC: digits, '-', ':', '.', 'T', 'Z', all safe in a query.
        url.push_str(&format!("&sinceTime={t}"));
    }
    http::Request::get(url)
        .body(Vec::new())
        .expect("log request")
}

async fn fetch_text(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    previous: bool,
    since: Option<Timestamp>,
) -> kube::Result<String> {
    let client = pods.clone().into_client();
    retry(|| client.request_text(log_request(pods, pod, container, false, previous, since))).await
}

/// Reads a finished container's log from `cursor` on with plain (non-follow) requests until
/// one brings nothing new: a response cut short is simply continued.
/// False when not even the first request succeeded.
/// With `previous`, reads the instance before the last restart.
async fn drain(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    previous: bool,
    cursor: &mut Cursor,
    emit: &mut (dyn FnMut(&str) + Send),
) -> bool {
    for round in 0..10_000 {
        let Ok(text) = fetch_text(pods, pod, container, previous, cursor.since()).await else {
            return round > 0;
        };
        let mut reader = cursor.reader();
        let mut new = 0;
        for line in text.lines() {
            if let Some(t) = reader.accept(line) {
                emit(t);
                new += 1;
            }
        }
        if new == 0 {
            return true;
        }
    }
    true
}

/// Saved logs of a run: the local copy only (no cluster needed).
pub fn local_copy(dir: &RunDir, replicas: Vec<String>) -> FileLogs {
    FileLogs::new(dir.clone(), replicas, false)
}

impl crate::backend::LogSource for ClusterLogStream {
    fn poll(&mut self) -> Result<Option<Vec<LogLine>>> {
        ClusterLogStream::poll(self)
    }

    fn poll_wait(&mut self, wait: Duration) -> Result<Option<Vec<LogLine>>> {
        ClusterLogStream::poll_wait(self, wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_skips_what_was_seen_across_second_precision_resumes() {
        let mut c = Cursor::default();
        let first = [
            "2026-01-01T00:00:01.100000000Z a",
            "2026-01-01T00:00:01.200000000Z b",
            "2026-01-01T00:00:01.200000000Z c",
        ];
        let mut r = c.reader();
        let got: Vec<_> = first.iter().filter_map(|l| r.accept(l)).collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(c.since().unwrap().to_string(), "2026-01-01T00:00:01.2Z");
        // The resume replays the whole second, then new lines, one of them at the same instant.
        let resumed = [
            "2026-01-01T00:00:01.100000000Z a",
            "2026-01-01T00:00:01.200000000Z b",
            "2026-01-01T00:00:01.200000000Z c",
            "2026-01-01T00:00:01.200000000Z d",
            "2026-01-01T00:00:02.000000000Z e",
        ];
        let mut r = c.reader();
        let got: Vec<_> = resumed.iter().filter_map(|l| r.accept(l)).collect();
        assert_eq!(got, ["d", "e"]);
    }
}
