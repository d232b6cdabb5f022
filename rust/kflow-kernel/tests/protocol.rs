//! The dev binary driven over real ZeroMQ sockets from Rust: readiness (kernel_info + iopub),
//! heartbeat echo, signatures, an execute with the plain process runner, shutdown.
//! (Building this test also makes cargo build `kflow-kernel-dev`, which tests/kernel uses.)

use std::process::{Child, Command};
use std::time::Duration;

use bytes::Bytes;
use kflow_kernel::wire::{Incoming, Outgoing, Signer};
use serde_json::{json, Value};
use zeromq::{DealerSocket, ReqSocket, Socket, SocketRecv, SocketSend, SubSocket, ZmqMessage};

struct Kernel {
    child: Child,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Kernel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(key: &str) -> Kernel {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let conn = dir.path().join("kernel.json");
    std::fs::write(
        &conn,
        json!({"transport": "tcp", "ip": "127.0.0.1", "shell_port": ports[0], "iopub_port": ports[1],
               "stdin_port": ports[2], "control_port": ports[3], "hb_port": ports[4],
               "key": key, "signature_scheme": "hmac-sha256"})
        .to_string(),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kflow-kernel-dev"))
        .args(["--runner", "process", "-f"])
        .arg(&conn)
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    Kernel {
        child,
        ports,
        _dir: dir,
    }
}

fn request(msg_type: &str, content: Value, signer: &Signer) -> ZmqMessage {
    let out = Outgoing::new(vec![], msg_type, "test-session", json!({}), content);
    ZmqMessage::try_from(out.encode(signer)).unwrap()
}

async fn recv(sock: &mut impl SocketRecv, signer: &Signer, ms: u64) -> Option<Incoming> {
    let m = tokio::time::timeout(Duration::from_millis(ms), sock.recv())
        .await
        .ok()?
        .ok()?;
    Incoming::decode(m.into_vec(), signer).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_round_trip() {
    let key = "f6a1c7e0-secret";
    let signer = Signer::new(key);
    let mut k = start(key);
    let ep = |p: u16| format!("tcp://127.0.0.1:{p}");

    let mut shell = DealerSocket::new();
    let mut iopub = SubSocket::new();
    let mut control = DealerSocket::new();
    let mut hb = ReqSocket::new();
    // The kernel may not be listening yet: retry connecting as clients do.
    for _ in 0..100 {
        if shell.connect(&ep(k.ports[0])).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    iopub.connect(&ep(k.ports[1])).await.unwrap();
    iopub.subscribe("").await.unwrap();
    control.connect(&ep(k.ports[3])).await.unwrap();
    hb.connect(&ep(k.ports[4])).await.unwrap();

    // Readiness as jupyter_client does it: kernel_info until a reply and an iopub message.
    let mut ready = false;
    for _ in 0..50 {
        shell
            .send(request("kernel_info_request", json!({}), &signer))
            .await
            .unwrap();
        if let Some(reply) = recv(&mut shell, &signer, 1000).await {
            assert_eq!(reply.header.msg_type, "kernel_info_reply");
            assert_eq!(reply.content["protocol_version"], "5.3");
            assert_eq!(reply.content["language_info"]["name"], "python");
            if recv(&mut iopub, &signer, 300).await.is_some() {
                ready = true;
                break;
            }
        }
    }
    assert!(ready, "no kernel_info reply with iopub traffic");
    while recv(&mut iopub, &signer, 200).await.is_some() {}

    // Heartbeat echoes exactly.
    hb.send(ZmqMessage::from(Bytes::from_static(b"\x00beat\xff")))
        .await
        .unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), hb.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echo.get(0).unwrap().as_ref(), b"\x00beat\xff");

    // A wrong key: dropped without a reply.
    shell
        .send(request(
            "kernel_info_request",
            json!({}),
            &Signer::new("wrong"),
        ))
        .await
        .unwrap();
    assert!(recv(&mut shell, &signer, 500).await.is_none());

    // Execute: busy, execute_input, stream, idle; reply ok with execution_count 1.
    shell
        .send(request(
            "execute_request",
            json!({"code": "print('hi from a job')", "silent": false, "store_history": true}),
            &signer,
        ))
        .await
        .unwrap();
    let reply = recv(&mut shell, &signer, 20_000)
        .await
        .expect("execute_reply");
    assert_eq!(reply.content["status"], "ok");
    assert_eq!(reply.content["execution_count"], 1);
    let mut seen = vec![];
    while let Some(m) = recv(&mut iopub, &signer, 1000).await {
        let kind = m.header.msg_type.clone();
        if kind == "stream" {
            assert_eq!(m.content["text"], "hi from a job\n");
        }
        let idle = kind == "status" && m.content["execution_state"] == "idle";
        seen.push(if kind == "status" {
            m.content["execution_state"].as_str().unwrap().to_string()
        } else {
            kind
        });
        if idle {
            break;
        }
    }
    assert_eq!(seen, ["busy", "execute_input", "stream", "idle"]);

    // kernel_info works on control too (VS Code asks there).
    control
        .send(request("kernel_info_request", json!({}), &signer))
        .await
        .unwrap();
    assert_eq!(
        recv(&mut control, &signer, 5000)
            .await
            .unwrap()
            .header
            .msg_type,
        "kernel_info_reply"
    );

    // Shutdown: a reply, then the process ends.
    control
        .send(request(
            "shutdown_request",
            json!({"restart": false}),
            &signer,
        ))
        .await
        .unwrap();
    let r = recv(&mut control, &signer, 5000).await.unwrap();
    assert_eq!(r.header.msg_type, "shutdown_reply");
    let mut exited = false;
    for _ in 0..100 {
        if let Ok(Some(status)) = k.child.try_wait() {
            assert!(status.success());
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(exited, "kernel did not exit after shutdown_request");
}
