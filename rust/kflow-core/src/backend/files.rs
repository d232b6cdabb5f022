//! Reaching into a running replica: a command in it (`kubectl exec`) and a copy of one of its
//! folders to this machine (`kubectl cp`). A finished container's files are gone, so a job that
//! leaves results behind for kflow to fetch keeps its replica running until they are fetched
//! (the scheduled-notebook runner waits for a release file kflow writes with `exec`).

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::error::{Error, JobError, Result};

/// What a command run in a replica gave (see [`crate::Job::exec`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecOutput {
    /// The command's exit status (128 + N for a signal N).
    pub exit_code: i32,
    /// Its standard output, as UTF-8 (invalid bytes replaced).
    pub stdout: String,
    /// Its standard error, likewise.
    pub stderr: String,
}

/// Files copied out of a replica (see [`crate::Job::copy_from`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CopiedFiles {
    /// The regular files written, relative to the destination, in archive order.
    pub files: Vec<String>,
    /// Their total size.
    pub bytes: u64,
    /// Entries not copied, as "path (why)": links and special files, which could point
    /// outside the destination.
    pub skipped: Vec<String>,
}

/// The most a command's stdout or stderr may hold in memory; copies of big outputs go
/// through [`crate::Job::copy_from`], which streams.
pub const EXEC_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// The checks both backends make before they touch a replica: a replica the job has, a command
/// to run.
pub(crate) fn check_replica(job: &str, known: &[String], replica: Option<&str>) -> Result<String> {
    match replica {
        None => Ok(known.first().cloned().unwrap_or_else(|| "master-0".into())),
        Some(r) if known.iter().any(|k| k == r) => Ok(r.to_string()),
        Some(r) => Err(Error::Job(JobError::UnknownReplica {
            name: job.to_string(),
            replica: r.to_string(),
            known: known.to_vec(),
        })),
    }
}

pub(crate) fn check_command(job: &str, argv: &[String]) -> Result<()> {
    if argv.first().is_none_or(|a| a.is_empty()) {
        return Err(Error::Job(JobError::NoCommand {
            name: job.to_string(),
        }));
    }
    Ok(())
}

/// Unpacks a tar stream into `dest`: directories and regular files only, each path checked to
/// stay inside `dest` (no absolute paths, no `..`), so a replica cannot write elsewhere on this
/// machine.
pub(crate) fn unpack_tar(reader: impl Read, dest: &Path) -> std::io::Result<CopiedFiles> {
    std::fs::create_dir_all(dest)?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    let mut copied = CopiedFiles::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let Some(rel) = inside(&raw) else {
            copied
                .skipped
                .push(format!("{} (outside the folder)", raw.display()));
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // A link left at the target by an earlier copy is replaced, never followed.
                if target.symlink_metadata().is_ok_and(|m| !m.is_file()) {
                    let _ = std::fs::remove_file(&target);
                }
                let mut out = std::fs::File::create(&target)?;
                copied.bytes += std::io::copy(&mut entry, &mut out)?;
                copied.files.push(rel.to_string_lossy().into_owned());
            }
            other => copied
                .skipped
                .push(format!("{} ({})", rel.display(), kind_name(other))),
        }
    }
    Ok(copied)
}

/// `raw` as a path below the destination, without `.`; None when it would leave it.
fn inside(raw: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn kind_name(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Symlink => "a symbolic link",
        tar::EntryType::Link => "a hard link",
        _ => "not a regular file",
    }
}

/// `bytes` as text, cut at [`EXEC_OUTPUT_LIMIT`].
pub(crate) fn output_text(mut bytes: Vec<u8>) -> String {
    bytes.truncate(EXEC_OUTPUT_LIMIT);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A command in a local run's workspace, with the run's environment: what `exec` is on this
/// machine.
pub(crate) fn local_exec(
    workspace: &Path,
    env: &std::collections::BTreeMap<String, String>,
    argv: &[String],
) -> std::io::Result<ExecOutput> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(workspace)
        .envs(env)
        .stdin(Stdio::null())
        .output()?;
    use std::os::unix::process::ExitStatusExt;
    let exit_code = out
        .status
        .code()
        .or_else(|| out.status.signal().map(|s| 128 + s))
        .unwrap_or(255);
    Ok(ExecOutput {
        exit_code,
        stdout: output_text(out.stdout),
        stderr: output_text(out.stderr),
    })
}

/// A local run's folder, copied as a replica's would be: through the same tar unpacking, so
/// links and special files are skipped the same way on both backends.
pub(crate) fn local_copy(source: &Path, dest: &Path) -> std::io::Result<CopiedFiles> {
    if !source.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a folder", source.display()),
        ));
    }
    let (reader, writer) = std::io::pipe()?;
    let src = source.to_path_buf();
    let packer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut builder = tar::Builder::new(writer);
        builder.follow_symlinks(false);
        builder.append_dir_all(".", &src)?;
        builder.finish()
    });
    let unpacked = unpack_tar(reader, dest);
    let packed = packer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the packing thread panicked")));
    let copied = unpacked?;
    packed?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").unwrap();
                h.set_size(0);
            }
            // set_path refuses `..`; write the name raw as a hostile tar would.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacking_keeps_files_inside_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let tar = tar_of(&[
            ("./", tar::EntryType::Directory, b""),
            ("./a/b.txt", tar::EntryType::Regular, b"hello"),
            ("../escape.txt", tar::EntryType::Regular, b"no"),
            ("/abs.txt", tar::EntryType::Regular, b"no"),
            ("./link", tar::EntryType::Symlink, b""),
        ]);
        let copied = unpack_tar(&tar[..], &dest).unwrap();
        assert_eq!(copied.files, vec!["a/b.txt"]);
        assert_eq!(copied.bytes, 5);
        assert_eq!(std::fs::read(dest.join("a/b.txt")).unwrap(), b"hello");
        assert!(!dir.path().join("escape.txt").exists());
        assert!(!dest.join("link").exists());
        assert_eq!(copied.skipped.len(), 3, "{:?}", copied.skipped);
    }

    #[test]
    fn a_local_copy_skips_links() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/x.bin"), vec![7u8; 300_000]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("passwd")).unwrap();
        let copied = local_copy(&src, &dir.path().join("dest")).unwrap();
        assert_eq!(copied.files, vec!["sub/x.bin"]);
        assert_eq!(copied.bytes, 300_000);
        assert_eq!(copied.skipped, vec!["passwd (a symbolic link)"]);
    }

    #[test]
    fn replicas_and_commands_are_checked() {
        let known = vec!["master-0".to_string(), "worker-0".to_string()];
        assert_eq!(check_replica("j", &known, None).unwrap(), "master-0");
        let e = check_replica("j", &known, Some("worker-3")).unwrap_err();
        assert!(e.to_string().contains("master-0, worker-0"), "{e}");
        assert!(check_command("j", &[]).is_err());
    }
}
