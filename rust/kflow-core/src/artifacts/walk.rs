//! Which files of a project travel with a run: everything but what `.gitignore`, `.kflowignore`
//! and `.ignore` exclude (ripgrep's `ignore` walker, so the rules match git's), and never `.git`,
//! virtualenvs or bytecode caches.

use std::path::{Component, Path, PathBuf};

use ignore::WalkBuilder;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { size: u64, executable: bool },
    /// A link to somewhere inside the project, stored relative to the link's folder.
    Symlink { target: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the project, with no leading `./`.
    pub relative: PathBuf,
    pub absolute: PathBuf,
    pub kind: EntryKind,
}

impl Entry {
    pub fn size(&self) -> u64 {
        match self.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        }
    }
}

/// Folder names that are never project code.
const ALWAYS_SKIPPED_DIRS: [&str; 7] = [".git", "__pycache__", ".venv", "venv", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache"];

fn skipped(path: &Path, is_dir: bool) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if is_dir {
        // Any folder holding pyvenv.cfg is a virtualenv, whatever its name.
        ALWAYS_SKIPPED_DIRS.contains(&name) || path.join("pyvenv.cfg").is_file()
    } else {
        name.ends_with(".pyc") || name.ends_with(".pyo")
    }
}

/// The project's entries in a stable order (sorted by path).
pub fn collect(root: &Path) -> Result<Vec<Entry>> {
    let root = root.canonicalize().map_err(Error::io("opening project folder", root))?;
    let mut walker = WalkBuilder::new(&root);
    walker
        .hidden(false)
        .parents(false)
        .git_global(false)
        .git_ignore(true)
        .git_exclude(true)
        .require_git(false)
        .ignore(true)
        .follow_links(false)
        .add_custom_ignore_filename(".kflowignore")
        .filter_entry(|e| !skipped(e.path(), e.file_type().is_some_and(|t| t.is_dir())));
    let mut entries = Vec::new();
    for item in walker.build() {
        let item = item.map_err(|e| Error::Io {
            action: "walking",
            path: root.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let absolute = item.path().to_path_buf();
        let Ok(relative) = absolute.strip_prefix(&root).map(Path::to_path_buf) else { continue };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let meta = std::fs::symlink_metadata(&absolute).map_err(Error::io("reading", &absolute))?;
        let kind = if meta.file_type().is_symlink() {
            EntryKind::Symlink { target: inside_target(&root, &absolute)? }
        } else if meta.is_dir() {
            EntryKind::Dir
        } else if meta.is_file() {
            EntryKind::File { size: meta.len(), executable: is_executable(&meta) }
        } else {
            // Sockets, FIFOs and devices are not code.
            continue;
        };
        entries.push(Entry { relative, absolute, kind });
    }
    entries.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(entries)
}

/// A link must resolve inside the project: anything else would ship (or dangle) a file the user
/// never meant to send.
fn inside_target(root: &Path, link: &Path) -> Result<PathBuf> {
    let raw = std::fs::read_link(link).map_err(Error::io("reading link", link))?;
    let outside = |target: PathBuf| Error::SymlinkOutsideProject { path: link.to_path_buf(), target, root: root.to_path_buf() };
    let resolved = link.parent().unwrap_or(root).join(&raw);
    let resolved = resolved.canonicalize().map_err(|_| outside(resolved.clone()))?;
    if !resolved.starts_with(root) {
        return Err(outside(resolved));
    }
    if raw.is_relative() && !raw.components().any(|c| matches!(c, Component::Prefix(_))) {
        return Ok(raw);
    }
    Ok(relative_to(link.parent().unwrap_or(root), &resolved))
}

fn relative_to(from_dir: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from_dir.components().collect();
    let to_parts: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to_parts).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to_parts[common..] {
        out.push(part.as_os_str());
    }
    out
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}
