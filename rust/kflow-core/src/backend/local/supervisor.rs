//! The supervisor: a detached process per local run that does what the operator and kubelet do
//! for a pod: install dependencies, start one process per replica with the operator's
//! environment, record exit codes, and end everything on cancel. It outlives the process that
//! submitted the job, so `kflow run --detach` and a closed notebook leave the run going.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::env::{free_port, local_gpus, operator_env, split_gpus};
use super::state::{self, LocalState};
use super::venv;
use crate::backend::Phase;
use crate::error::{Error, Result};
use crate::records::RunDir;

/// How long replicas get between SIGTERM and SIGKILL, like a pod's grace period (shorter).
const GRACE: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(25);

/// Runs the job in `dir` to the end. `python` is the interpreter of the user who submitted it.
pub fn supervise(dir: &RunDir, python: &Path, cache: &Path) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(Error::io("installing signal handler", &dir.root))?;
    }
    let record = dir.read_record()?;
    let spec = record.spec;
    let replicas = spec.replicas();
    let labels: Vec<String> = replicas.iter().map(|r| r.label()).collect();
    let mut st = state::read(dir)?;
    st.supervisor_pid = Some(std::process::id());
    st.status.started_at = Some(state::now());
    state::write(dir, &st)?;

    std::fs::create_dir_all(dir.logs()).map_err(Error::io("creating", dir.logs()))?;
    let mut first_log = open_log(&dir.log_file(&labels[0]))?;

    // Setup, as a pod's startup chain does it: apt (not here), pip, then the code.
    if !spec.apt.is_empty() {
        let _ = writeln!(
            first_log,
            "kflow: warning: the local backend does not install apt packages ({}); install them on this machine if the script needs them",
            spec.apt.join(", ")
        );
    }
    if !spec.pip.is_empty() {
        st.status.reason = Some("InstallingDependencies".into());
        state::write(dir, &st)?;
    }
    let job_python = match venv::ensure(python, &spec.pip, cache, &mut first_log) {
        Ok(p) => p,
        Err(e) => {
            return finish(
                dir,
                &mut st,
                Phase::Failed,
                "DependencyInstallFailed",
                &e.to_string(),
            )
        }
    };
    if stop.load(Ordering::SeqCst) || dir.cancel_marker().exists() {
        return finish(
            dir,
            &mut st,
            Phase::Failed,
            "Cancelled",
            "cancelled before the replicas started",
        );
    }
    if !dir.workspace().exists() {
        if let Err(e) = crate::artifacts::unpack(&dir.archive(), &dir.workspace()) {
            return finish(
                dir,
                &mut st,
                Phase::Failed,
                "CodeUnpackFailed",
                &e.to_string(),
            );
        }
    }

    let gpus = local_gpus(std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref());
    let visible = match split_gpus(&gpus, spec.gpu, replicas.len()) {
        Ok(v) => v,
        Err(problem) => {
            let _ = writeln!(first_log, "kflow: warning: {problem}; running on the CPU");
            vec![String::new(); replicas.len()]
        }
    };
    // One port per replica: the master's is MASTER_PORT, TFJob lists them all in TF_CONFIG.
    let ports: Vec<u16> = replicas.iter().map(|_| free_port()).collect();
    drop(first_log);

    let mut children: Vec<Option<Child>> = Vec::new();
    for (i, replica) in replicas.iter().enumerate() {
        let log = open_log(&dir.log_file(&labels[i]))?;
        let err = log
            .try_clone()
            .map_err(Error::io("opening", dir.log_file(&labels[i])))?;
        let mut cmd = Command::new(&job_python);
        cmd.arg("-u")
            .arg(&spec.script)
            .args(&spec.args)
            .current_dir(dir.workspace())
            .envs(&spec.env)
            .envs(operator_env(&spec, replica, &ports))
            .env("CUDA_VISIBLE_DEVICES", &visible[i])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Its own process group: cancel ends the replica and everything it started.
            .process_group(0);
        match cmd.spawn() {
            Ok(child) => {
                st.replica_pgids.push(child.id() as i32);
                st.status.replicas[i].phase = Phase::Running;
                children.push(Some(child));
            }
            Err(e) => {
                terminate(&mut children, &st.replica_pgids);
                let msg = format!(
                    "could not start {} for {}: {e}",
                    job_python.display(),
                    labels[i]
                );
                return finish(dir, &mut st, Phase::Failed, "StartFailed", &msg);
            }
        }
    }
    st.status.phase = Phase::Running;
    st.status.reason = None;
    state::write(dir, &st)?;

    let mut failure: Option<String> = None;
    loop {
        let mut changed = false;
        for (i, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            if let Ok(Some(status)) = child.try_wait() {
                let code = status.code().unwrap_or_else(|| {
                    128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
                });
                let replica = &mut st.status.replicas[i];
                replica.exit_code = Some(code);
                replica.phase = if code == 0 {
                    Phase::Succeeded
                } else {
                    Phase::Failed
                };
                if code != 0 && failure.is_none() {
                    failure = Some(format!("{} exited with code {code}", labels[i]));
                }
                *slot = None;
                changed = true;
            }
        }
        if changed {
            state::write(dir, &st)?;
        }
        if let Some(message) = &failure {
            // Like restartPolicy Never: one failed replica fails the job; the others would only
            // wait for a peer that is gone.
            let message = message.clone();
            terminate(&mut children, &st.replica_pgids);
            mark_stopped(&mut st);
            return finish(dir, &mut st, Phase::Failed, "Error", &message);
        }
        if children.iter().all(Option::is_none) {
            return finish(
                dir,
                &mut st,
                Phase::Succeeded,
                "Completed",
                "all replicas exited with code 0",
            );
        }
        if stop.load(Ordering::SeqCst) || dir.cancel_marker().exists() {
            terminate(&mut children, &st.replica_pgids);
            mark_stopped(&mut st);
            return finish(
                dir,
                &mut st,
                Phase::Failed,
                "Cancelled",
                "the job was cancelled",
            );
        }
        std::thread::sleep(TICK);
    }
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(Error::io("opening", path))
}

fn mark_stopped(st: &mut LocalState) {
    for replica in &mut st.status.replicas {
        if !replica.phase.is_terminal() {
            replica.phase = Phase::Failed;
        }
    }
}

/// SIGTERM to every replica's group, SIGKILL to what is left after the grace period.
pub fn terminate(children: &mut [Option<Child>], pgids: &[i32]) {
    signal_groups(pgids, Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        let mut running = 0;
        for child in children.iter_mut().filter_map(|c| c.as_mut()) {
            if matches!(child.try_wait(), Ok(None)) {
                running += 1;
            }
        }
        if running == 0 {
            break;
        }
        std::thread::sleep(TICK);
    }
    signal_groups(pgids, Signal::SIGKILL);
    for child in children.iter_mut().filter_map(|c| c.as_mut()) {
        let _ = child.wait();
    }
}

pub fn signal_groups(pgids: &[i32], signal: Signal) {
    for pgid in pgids {
        let _ = killpg(Pid::from_raw(*pgid), signal);
    }
}

fn finish(
    dir: &RunDir,
    st: &mut LocalState,
    phase: Phase,
    reason: &str,
    message: &str,
) -> Result<()> {
    st.status.phase = phase;
    st.status.reason = Some(reason.to_string());
    st.status.message = Some(message.to_string());
    st.status.finished_at = Some(state::now());
    if phase == Phase::Failed {
        mark_stopped(st);
    }
    state::write(dir, st)
}
