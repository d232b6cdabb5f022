//! A container's stdout and stderr, line by line, into its log file with the kubelet's
//! timestamps (`<RFC3339Nano> <line>`), the format pods/log serves.

use std::path::PathBuf;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::now_rfc3339_nanos;

/// The tasks copying one container instance's output.
pub(super) struct Capture {
    readers: Vec<JoinHandle<()>>,
    writer: JoinHandle<()>,
}

/// Takes the child's stdout and stderr and starts appending their lines to `path`.
pub(super) fn capture(child: &mut Child, path: PathBuf) -> Capture {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    let writer = tokio::spawn(async move {
        if let Some(parent) = path.parent() {
            let _ = tokio::fs::create_dir_all(parent).await;
        }
        let Ok(mut f) = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
        else {
            return;
        };
        while let Some(line) = rx.recv().await {
            let mut out = format!("{} ", now_rfc3339_nanos()).into_bytes();
            out.extend_from_slice(&line);
            out.push(b'\n');
            let _ = f.write_all(&out).await;
            let _ = f.flush().await;
        }
    });
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(pump(BufReader::new(out), tx.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(pump(BufReader::new(err), tx.clone())));
    }
    drop(tx);
    Capture { readers, writer }
}

impl Capture {
    /// Waits until both streams closed and every line is in the file, so the log is complete
    /// before the exit is reported.
    pub(super) async fn finish(self) {
        for r in self.readers {
            let _ = r.await;
        }
        let _ = self.writer.await;
    }
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(mut r: BufReader<R>, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while buf.last() == Some(&b'\n') || buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                if tx.send(buf.clone()).await.is_err() {
                    return;
                }
            }
        }
    }
}
