//! Cell output to iopub: the runner writes through `KernelSink` (any thread); a batcher task
//! coalesces stream text and publishes it about every 100 ms. Batching keeps a million-line
//! flood to a few hundred messages, far below zeromq's PUB queue (100k), which drops silently
//! once full.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::messages::{text_bundle, DisplayData, ExecuteResult, Stream};
use crate::runner::OutputSink;
use crate::wire::Outgoing;

pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// One stream message carries at most this much text; a bigger batch is split.
const MAX_STREAM_CHUNK: usize = 1024 * 1024;

enum Event {
    Text(&'static str, String),
    Status(Option<String>),
    Result(Map<String, Value>),
    Display(Map<String, Value>),
}

pub struct KernelSink {
    tx: mpsc::UnboundedSender<Event>,
}

impl OutputSink for KernelSink {
    fn stdout(&mut self, text: &str) {
        let _ = self.tx.send(Event::Text("stdout", text.to_string()));
    }
    fn stderr(&mut self, text: &str) {
        let _ = self.tx.send(Event::Text("stderr", text.to_string()));
    }
    fn status_line(&mut self, text: Option<&str>) {
        let _ = self.tx.send(Event::Status(text.map(String::from)));
    }
    fn result(&mut self, data: Map<String, Value>) {
        let _ = self.tx.send(Event::Result(data));
    }
    fn display(&mut self, data: Map<String, Value>) {
        let _ = self.tx.send(Event::Display(data));
    }
}

/// Where the batcher publishes: the iopub queue plus what every message needs.
#[derive(Clone)]
pub struct Publisher {
    pub iopub: mpsc::UnboundedSender<Outgoing>,
    pub session: String,
    pub parent: Value,
}

impl Publisher {
    pub fn publish(&self, msg_type: &str, content: impl serde::Serialize) {
        let topic = bytes::Bytes::from(format!("kernel.{}.{}", self.session, msg_type));
        let _ = self.iopub.send(Outgoing::new(
            vec![topic],
            msg_type,
            &self.session,
            self.parent.clone(),
            content,
        ));
    }
}

/// Start a batcher for one execution. Drop the sink (and await the handle) to flush the rest:
/// everything is published before the handle completes, so the execute_reply and the idle
/// status can never overtake output.
pub fn start(
    publisher: Publisher,
    execution_count: u64,
) -> (KernelSink, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = tokio::spawn(batch(rx, publisher, execution_count));
    (KernelSink { tx }, handle)
}

async fn batch(mut rx: mpsc::UnboundedReceiver<Event>, p: Publisher, execution_count: u64) {
    let mut pending: Option<(&'static str, String)> = None;
    let mut status_id: Option<String> = None;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    fn flush(p: &Publisher, pending: &mut Option<(&'static str, String)>) {
        if let Some((name, text)) = pending.take() {
            let mut rest = text.as_str();
            while !rest.is_empty() {
                let mut cut = rest.len().min(MAX_STREAM_CHUNK);
                // Cut at a line end when possible, and always on a char boundary.
                if cut < rest.len() {
                    if let Some(nl) = rest[..cut].rfind('\n') {
                        cut = nl + 1;
                    }
                    while !rest.is_char_boundary(cut) {
                        cut -= 1;
                    }
                }
                p.publish(
                    "stream",
                    Stream {
                        name,
                        text: rest[..cut].to_string(),
                    },
                );
                rest = &rest[cut..];
            }
        }
    }

    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(Event::Text(name, text)) => {
                    match &mut pending {
                        Some((n, buf)) if *n == name => buf.push_str(&text),
                        _ => {
                            flush(&p, &mut pending);
                            pending = Some((name, text));
                        }
                    }
                    if pending.as_ref().is_some_and(|(_, b)| b.len() >= MAX_STREAM_CHUNK) {
                        flush(&p, &mut pending);
                    }
                }
                Some(Event::Status(text)) => {
                    flush(&p, &mut pending);
                    let text = text.unwrap_or_default();
                    match &status_id {
                        None if text.is_empty() => {}
                        None => {
                            let id = uuid::Uuid::new_v4().to_string();
                            p.publish("display_data", DisplayData {
                                data: text_bundle(&text),
                                metadata: Map::new(),
                                transient: transient(&id),
                            });
                            status_id = Some(id);
                        }
                        Some(id) => p.publish("update_display_data", DisplayData {
                            data: text_bundle(&text),
                            metadata: Map::new(),
                            transient: transient(id),
                        }),
                    }
                }
                Some(Event::Result(data)) => {
                    flush(&p, &mut pending);
                    p.publish("execute_result", ExecuteResult { execution_count, data, metadata: Map::new() });
                }
                Some(Event::Display(data)) => {
                    flush(&p, &mut pending);
                    p.publish("display_data", DisplayData { data, metadata: Map::new(), transient: Map::new() });
                }
                None => {
                    flush(&p, &mut pending);
                    break;
                }
            },
            _ = tick.tick() => flush(&p, &mut pending),
        }
    }
}

fn transient(id: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("display_id".into(), Value::String(id.to_string()));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flood_is_batched_and_complete() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let p = Publisher {
            iopub: tx,
            session: "s".into(),
            parent: Value::Null,
        };
        let (mut sink, handle) = start(p, 1);
        let writer = std::thread::spawn(move || {
            for i in 0..200_000 {
                sink.stdout(&format!("line {i}\n"));
            }
            sink.stderr("oops\n");
            sink.stdout("after\n");
        });
        writer.join().unwrap();
        handle.await.unwrap();
        let mut text = String::new();
        let mut n = 0;
        let mut names = vec![];
        while let Ok(out) = rx.try_recv() {
            n += 1;
            names.push(out.content["name"].as_str().unwrap().to_string());
            if out.content["name"] == "stdout" {
                text.push_str(out.content["text"].as_str().unwrap());
            }
        }
        assert_eq!(text.lines().count(), 200_001);
        assert!(text.starts_with("line 0\n") && text.ends_with("line 199999\nafter\n"));
        assert!(n < 100, "{n} messages");
        // Order between the streams is kept.
        let err_at = names.iter().position(|x| x == "stderr").unwrap();
        assert_eq!(err_at, names.len() - 2);
    }

    #[tokio::test]
    async fn status_line_is_one_updating_display() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let p = Publisher {
            iopub: tx,
            session: "s".into(),
            parent: Value::Null,
        };
        let (mut sink, handle) = start(p, 1);
        sink.status_line(None);
        sink.status_line(Some("pending (pulling image)"));
        sink.stdout("log\n");
        sink.status_line(Some("running"));
        drop(sink);
        handle.await.unwrap();
        let mut msgs = vec![];
        while let Ok(out) = rx.try_recv() {
            msgs.push(out);
        }
        let kinds: Vec<&str> = msgs.iter().map(|m| m.header.msg_type.as_str()).collect();
        assert_eq!(kinds, ["display_data", "stream", "update_display_data"]);
        assert_eq!(
            msgs[0].content["transient"]["display_id"],
            msgs[2].content["transient"]["display_id"]
        );
        assert_eq!(msgs[2].content["data"]["text/plain"], "running");
    }
}
