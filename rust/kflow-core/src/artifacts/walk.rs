//! Which files of a project travel with a run: everything but what `.gitignore`, `.kflowignore`
//! and `.ignore` exclude (ripgrep's `ignore` walker, so the rules match git's), and never `.git`,
//! virtualenvs or bytecode caches. Credentials (`.ssh/`, cloud and cluster configs, `.netrc`,
//! `.env`, private keys found by their content) are withheld unless `.kflowignore` names them
//! with `!`, and a folder that holds the user's home is refused outright.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::WalkBuilder;

use crate::error::{Error, PackagingError, Result, SystemError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File {
        size: u64,
        executable: bool,
    },
    /// A link to somewhere inside the project, stored relative to the link's folder.
    Symlink {
        target: PathBuf,
    },
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
const ALWAYS_SKIPPED_DIRS: [&str; 7] = [
    ".git",
    "__pycache__",
    ".venv",
    "venv",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".pytest_cache",
];

fn skipped(path: &Path, is_dir: bool) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if is_dir {
        // Any folder holding pyvenv.cfg is a virtualenv, whatever its name.
        ALWAYS_SKIPPED_DIRS.contains(&name) || path.join("pyvenv.cfg").is_file()
    } else {
        name.ends_with(".pyc") || name.ends_with(".pyo")
    }
}

/// Folders of credentials, never code.
const CREDENTIAL_DIRS: [&str; 6] = [
    ".ssh",
    ".aws",
    ".kube",
    ".gnupg",
    ".azure",
    ".password-store",
];
/// Files of credentials, by name.
const CREDENTIAL_FILES: [&str; 6] = [
    ".netrc",
    "_netrc",
    ".git-credentials",
    ".pgpass",
    ".pypirc",
    "credentials.json",
];
/// `.env` variants that are templates by convention and hold no secrets.
const ENV_TEMPLATES: [&str; 3] = [".env.example", ".env.sample", ".env.template"];
/// Private keys are small; larger files are not read for the check.
const KEY_SNIFF_MAX_FILE: u64 = 1024 * 1024;

/// Why a path is credential material, or None.
fn credential_kind(relative: &Path, is_dir: bool) -> Option<&'static str> {
    let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent = relative
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if is_dir {
        return CREDENTIAL_DIRS
            .contains(&name)
            .then_some("a credentials folder");
    }
    if CREDENTIAL_FILES.contains(&name) || (parent == ".docker" && name == "config.json") {
        return Some("a credentials file");
    }
    if (name == ".env" || name.starts_with(".env.")) && !ENV_TEMPLATES.contains(&name) {
        return Some("an environment file (secrets by convention)");
    }
    None
}

/// Whether a file's first bytes are a private key (PEM, OpenSSH, PGP or PuTTY).
fn holds_private_key(path: &Path, size: u64) -> bool {
    if size == 0 || size > KEY_SNIFF_MAX_FILE {
        return false;
    }
    let mut head = [0u8; 4096];
    let Ok(n) = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) else {
        return false;
    };
    let head = &head[..n];
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    head.starts_with(b"PuTTY-User-Key-File-") || (has(b"-----BEGIN ") && has(b"PRIVATE KEY"))
}

/// What a walk found: what travels, and what was withheld as credentials (with why).
#[derive(Debug, Clone, Default)]
pub struct Walked {
    pub entries: Vec<Entry>,
    pub withheld: Vec<Withheld>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    pub relative: PathBuf,
    pub why: &'static str,
}

/// `.kflowignore` lines starting with `!` are how a user says "this one travels anyway".
fn explicit_includes(root: &Path) -> Gitignore {
    let mut builder = GitignoreBuilder::new(root);
    let _ = builder.add(root.join(".kflowignore"));
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

fn explicitly_included(includes: &Gitignore, relative: &Path, is_dir: bool) -> bool {
    includes
        .matched_path_or_any_parents(relative, is_dir)
        .is_whitelist()
}

/// Refuses a root that is the user's home folder or holds it (`/`, `/home`): everything a user
/// owns would travel.
fn check_root(root: &Path) -> Result<()> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .and_then(|h| h.canonicalize().ok());
    match unsafe_root(root, home.as_deref()) {
        Some(what) => Err(Error::Packaging(PackagingError::UnsafeProjectRoot {
            root: root.to_path_buf(),
            what,
        })),
        None => Ok(()),
    }
}

fn unsafe_root(root: &Path, home: Option<&Path>) -> Option<&'static str> {
    if root.parent().is_none() {
        Some("the root of the file system")
    } else if home == Some(root) {
        Some("your home folder")
    } else if home.is_some_and(|h| h.starts_with(root)) {
        Some("a folder that holds your home folder")
    } else {
        None
    }
}

/// The project's entries (sorted by path) and what was withheld. `entry_script`, the script
/// the run starts, may be a link to a file outside the project: the user named it, so its
/// content travels under the link's name (any other link leaving the project is refused).
pub fn walk(root: &Path, entry_script: Option<&Path>) -> Result<Walked> {
    let root = root
        .canonicalize()
        .map_err(Error::io("opening project folder", root))?;
    check_root(&root)?;
    let includes = Arc::new(explicit_includes(&root));
    let withheld = Arc::new(Mutex::new(Vec::new()));
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
        .add_custom_ignore_filename(".kflowignore");
    let (filter_root, filter_includes, filter_withheld) =
        (root.clone(), includes.clone(), withheld.clone());
    walker.filter_entry(move |e| {
        let is_dir = e.file_type().is_some_and(|t| t.is_dir());
        if skipped(e.path(), is_dir) {
            return false;
        }
        let Ok(relative) = e.path().strip_prefix(&filter_root) else {
            return true;
        };
        match credential_kind(relative, is_dir) {
            Some(why) if !explicitly_included(&filter_includes, relative, is_dir) => {
                if let Ok(mut w) = filter_withheld.lock() {
                    w.push(Withheld {
                        relative: relative.to_path_buf(),
                        why,
                    });
                }
                false
            }
            _ => true,
        }
    });
    let mut entries = Vec::new();
    for item in walker.build() {
        let item = item.map_err(|e| {
            Error::System(SystemError::Io {
                action: "walking",
                path: root.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        })?;
        let absolute = item.path().to_path_buf();
        let Ok(relative) = absolute.strip_prefix(&root).map(Path::to_path_buf) else {
            continue;
        };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let meta = std::fs::symlink_metadata(&absolute).map_err(Error::io("reading", &absolute))?;
        let (kind, content) = if meta.file_type().is_symlink() {
            match inside_target(&root, &absolute) {
                Ok(target) => (EntryKind::Symlink { target }, absolute.clone()),
                Err(Error::Packaging(PackagingError::SymlinkOutsideProject { target, .. }))
                    if Some(relative.as_path()) == entry_script && target.is_file() =>
                {
                    let meta = std::fs::metadata(&target).map_err(Error::io("reading", &target))?;
                    (
                        EntryKind::File {
                            size: meta.len(),
                            executable: is_executable(&meta),
                        },
                        target,
                    )
                }
                Err(e) => return Err(e),
            }
        } else if meta.is_dir() {
            (EntryKind::Dir, absolute.clone())
        } else if meta.is_file() {
            (
                EntryKind::File {
                    size: meta.len(),
                    executable: is_executable(&meta),
                },
                absolute.clone(),
            )
        } else {
            // Sockets, FIFOs and devices are not code.
            continue;
        };
        if let EntryKind::File { size, .. } = kind {
            if holds_private_key(&content, size)
                && !explicitly_included(&includes, &relative, false)
            {
                if let Ok(mut w) = withheld.lock() {
                    w.push(Withheld {
                        relative,
                        why: "a private key",
                    });
                }
                continue;
            }
        }
        entries.push(Entry {
            relative,
            absolute: content,
            kind,
        });
    }
    entries.sort_by(|a, b| a.relative.cmp(&b.relative));
    let mut withheld = withheld.lock().map(|w| w.clone()).unwrap_or_default();
    withheld.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(Walked { entries, withheld })
}

/// A link must resolve inside the project: anything else would ship (or dangle) a file the user
/// never meant to send.
fn inside_target(root: &Path, link: &Path) -> Result<PathBuf> {
    let raw = std::fs::read_link(link).map_err(Error::io("reading link", link))?;
    let outside = |target: PathBuf| {
        Error::Packaging(PackagingError::SymlinkOutsideProject {
            path: link.to_path_buf(),
            target,
            root: root.to_path_buf(),
        })
    };
    let resolved = link.parent().unwrap_or(root).join(&raw);
    let resolved = resolved.canonicalize().map_err(|e| {
        // A loop or a dangling link is its own problem, wherever it points.
        let problem = if e.raw_os_error() == Some(nix::libc::ELOOP) {
            "is part of a loop of symbolic links"
        } else if e.kind() == std::io::ErrorKind::NotFound {
            "points to nothing (the target does not exist)"
        } else {
            return outside(resolved.clone());
        };
        Error::Packaging(PackagingError::BrokenSymlink {
            path: link.to_path_buf(),
            target: raw.clone(),
            problem,
        })
    })?;
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
    let common = from
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_and_its_parents_are_unsafe_roots() {
        let home = Path::new("/home/ada");
        assert_eq!(
            unsafe_root(Path::new("/"), Some(home)),
            Some("the root of the file system")
        );
        assert_eq!(unsafe_root(home, Some(home)), Some("your home folder"));
        assert_eq!(
            unsafe_root(Path::new("/home"), Some(home)),
            Some("a folder that holds your home folder")
        );
        assert_eq!(unsafe_root(Path::new("/home/ada/proj"), Some(home)), None);
        assert_eq!(unsafe_root(Path::new("/srv/proj"), None), None);
    }

    #[test]
    fn credential_names() {
        assert!(credential_kind(Path::new(".ssh"), true).is_some());
        assert!(credential_kind(Path::new("sub/.aws"), true).is_some());
        assert!(credential_kind(Path::new(".docker/config.json"), false).is_some());
        assert!(credential_kind(Path::new("config.json"), false).is_none());
        assert!(credential_kind(Path::new(".env"), false).is_some());
        assert!(credential_kind(Path::new(".env.production"), false).is_some());
        assert!(credential_kind(Path::new(".env.example"), false).is_none());
        assert!(credential_kind(Path::new(".netrc"), false).is_some());
        assert!(credential_kind(Path::new("ssh"), true).is_none());
    }
}
