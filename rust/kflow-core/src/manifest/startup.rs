//! The container's startup chain: apt-get -> pip -> unpack code -> python. It is a shell script
//! because images differ in what they have, but every user string in it is single-quoted by
//! `shlex`, so a package spec or an argument is always one literal word and never shell syntax.

use super::chunks::{PARTS_MOUNT, PART_KEY};
use crate::spec::{CodeMode, RunSpec};

/// Where things live inside the container.
pub const CODE_MOUNT: &str = "/kflow/code";
pub const WORKSPACE: &str = "/workspace";
pub const PIP_CACHE_MOUNT: &str = "/kflow/pip-cache";
pub const ARCHIVE_KEY: &str = "code.tar.gz";
/// Written by an MPI worker once its setup is done; ranks wait for it before starting.
pub const READY_MARKER: &str = ".kflow-ready";

/// What the script does once the code is in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finale {
    /// Run the user's script: `exec python -u SCRIPT ARGS`.
    Python,
    /// MPI launcher: start the script on every worker with mpirun.
    MpiLaunch { ranks: u32 },
    /// MPI v1 worker: stay up so the launcher can exec ranks in it.
    Idle,
    /// MPI v2beta1 worker: serve ssh for the launcher.
    Sshd,
}

pub fn quote(word: &str) -> String {
    // Validation refuses NUL, the one byte shlex cannot quote; keep the word visible if it slips.
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| "''".to_string())
}

fn quoted_list(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// The script for `sh -c`; `code_parts` is how many ConfigMaps the archive travels in.
pub fn script(spec: &RunSpec, finale: &Finale, code_parts: usize) -> String {
    let mut lines = vec!["set -eu".to_string()];
    let setup = !matches!(finale, Finale::MpiLaunch { .. });
    if setup && !spec.apt.is_empty() {
        lines.push("export DEBIAN_FRONTEND=noninteractive".into());
        lines.push("apt-get update -qq".into());
        lines.push(format!(
            "apt-get install -y -qq --no-install-recommends {}",
            quoted_list(&spec.apt)
        ));
    }
    if setup && !spec.pip.is_empty() {
        lines.push(format!(
            "python -m pip install --disable-pip-version-check {}",
            quoted_list(&spec.pip)
        ));
    }
    if setup {
        lines.push(format!("mkdir -p {WORKSPACE}"));
        match spec.code_mode {
            CodeMode::Targz if code_parts > 1 => lines.push(format!(
                "cat {PARTS_MOUNT}/*/{PART_KEY} | tar -xzf - -C {WORKSPACE}"
            )),
            CodeMode::Targz => lines.push(format!(
                "tar -xzf {CODE_MOUNT}/{ARCHIVE_KEY} -C {WORKSPACE}"
            )),
            // A ConfigMap volume also holds its `..data` bookkeeping links; drop them after copying.
            CodeMode::Configmap => {
                lines.push(format!("cp -rL {CODE_MOUNT}/. {WORKSPACE}/"));
                lines.push(format!("rm -rf {WORKSPACE}/..?*"));
            }
        }
        lines.push(format!("cd {WORKSPACE}"));
    }
    let run = format!(
        "python -u {} {}",
        quote(&spec.script),
        quoted_list(&spec.args)
    );
    match finale {
        Finale::Python => lines.push(format!("exec {}", run.trim_end())),
        Finale::Idle => {
            lines.push(format!("touch {WORKSPACE}/{READY_MARKER}"));
            lines.push("exec sleep infinity".into());
        }
        Finale::Sshd => {
            lines.push(format!("touch {WORKSPACE}/{READY_MARKER}"));
            lines.push("exec /usr/sbin/sshd -De".into());
        }
        Finale::MpiLaunch { ranks } => {
            // Each rank waits for its worker's setup, then runs the script; the script and its
            // arguments travel as positional parameters, never spliced into the inner shell.
            let rank_script = format!(
                "while [ ! -f {WORKSPACE}/{READY_MARKER} ]; do sleep 1; done; cd {WORKSPACE} && exec python -u \"$@\""
            );
            let mut words = vec![spec.script.clone()];
            words.extend(spec.args.iter().cloned());
            lines.push(format!(
                "exec mpirun --allow-run-as-root -np {ranks} -bind-to none -map-by slot -x PYTHONUNBUFFERED sh -c {} kflow-rank {}",
                quote(&rank_script),
                quoted_list(&words)
            ));
        }
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_hostile_strings_literal() {
        for hostile in [
            "numpy; touch /tmp/pwned",
            "$(id)",
            "`id`",
            "a'b",
            "x\" && y",
            "--flag=$HOME",
        ] {
            let quoted = quote(hostile);
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {quoted}"))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), hostile);
        }
    }
}
