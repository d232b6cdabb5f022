//! Project folder -> deterministic tar.gz (+ sha256). The same content gives the same bytes
//! whatever the mtimes, owners or walk order, so the digest identifies the code of a run.

mod pgzip;
mod walk;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use pgzip::ParallelGzWriter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use walk::{walk, Entry, EntryKind, Walked};

use crate::error::{Error, PackagingError, Result, SystemError};

/// Default cap on a project's packed size: code, not data sets.
pub const DEFAULT_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// What fits in a ConfigMap (1 MiB) once keys and base64 overhead are counted.
pub const CONFIGMAP_MAX_BYTES: u64 = 900 * 1024;

/// Every file's mtime in the archive: fixed, so content alone decides the digest. 2020-01-01,
/// not 0, because some unpackers warn about 1970 timestamps.
const FIXED_MTIME: u64 = 1_577_836_800;

/// A packed project: the deterministic tar.gz and what went into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archive {
    /// Where the tar.gz was written.
    pub path: PathBuf,
    /// The SHA-256 of the tar.gz, hex: the same files give the same digest.
    pub sha256: String,
    /// Size of the tar.gz.
    pub bytes: u64,
    /// Size of the files before compression.
    pub content_bytes: u64,
    /// How many files were packed.
    pub files: usize,
    /// The largest files (up to five) with their sizes, for previews.
    #[serde(default)]
    pub largest: Vec<(String, u64)>,
    /// Credential files left out of the archive, as "path (why)" (`.kflowignore`'s `!PATH`
    /// sends one anyway).
    #[serde(default)]
    pub withheld: Vec<String>,
}

impl Archive {
    /// One line for a user: "3 files, 12.0 KiB (largest: …)".
    pub fn summary(&self) -> String {
        let largest = self
            .largest
            .iter()
            .map(|(p, n)| format!("{p} {}", human_bytes(*n)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut line = format!(
            "{} files, {} ({} packed)",
            self.files,
            human_bytes(self.content_bytes),
            human_bytes(self.bytes)
        );
        if !largest.is_empty() {
            line.push_str(&format!("; largest: {largest}"));
        }
        line
    }
}

/// The warning to show when credentials were withheld (items as in [`Archive::withheld`]).
pub fn withheld_warning(withheld: &[String]) -> Option<String> {
    if withheld.is_empty() {
        return None;
    }
    Some(format!(
        "left out of the upload as credentials: {}. To send one anyway, add a line `!PATH` for it to .kflowignore",
        withheld.join(", ")
    ))
}

/// How to package a project.
pub struct PackOptions {
    /// The size cap on the files before compression, in bytes.
    pub max_bytes: u64,
    /// Shown in the size-limit error, e.g. " for ConfigMap mode".
    pub limit_reason: String,
    /// The script the run starts, relative to the root: it may be a link to a file outside
    /// the project (the user named it), whose content then travels under the link's name.
    pub entry_script: Option<PathBuf>,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            max_bytes: DEFAULT_MAX_BYTES,
            limit_reason: String::new(),
            entry_script: None,
        }
    }
}

/// Packs `root` into `out`. The size cap is checked before anything is compressed, so an
/// oversized project fails at once and names its largest files.
pub fn package(root: &Path, out: &Path, opts: &PackOptions) -> Result<Archive> {
    let Walked { entries, withheld } = walk(root, opts.entry_script.as_deref())?;
    check_size(root, &entries, opts)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    }
    let file = File::create(out).map_err(Error::io("creating", out))?;
    let hashing = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let gz = ParallelGzWriter::new(hashing, Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut content_bytes = 0;
    for entry in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(FIXED_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        match &entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, &entry.relative, std::io::empty())
                    .map_err(Error::io("packing", &entry.absolute))?;
            }
            EntryKind::File { size, executable } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(*size);
                let file =
                    File::open(&entry.absolute).map_err(Error::io("reading", &entry.absolute))?;
                // A file that changes size while we pack would corrupt the stream; take exactly
                // the size the header promised.
                let reader = std::io::Read::take(file, *size);
                tar.append_data(&mut header, &entry.relative, reader)
                    .map_err(Error::io("packing", &entry.absolute))?;
                content_bytes += size;
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, &entry.relative, target)
                    .map_err(Error::io("packing", &entry.absolute))?;
            }
        }
    }
    let gz = tar.into_inner().map_err(Error::io("writing", out))?;
    let mut hashing = gz.finish().map_err(Error::io("writing", out))?;
    hashing.inner.flush().map_err(Error::io("writing", out))?;
    Ok(Archive {
        path: out.to_path_buf(),
        sha256: hex::encode(hashing.hasher.finalize()),
        bytes: hashing.bytes,
        content_bytes,
        files: entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .count(),
        largest: largest_files(&entries, 5)
            .into_iter()
            .map(|e| (e.relative.display().to_string(), e.size()))
            .collect(),
        withheld: withheld
            .into_iter()
            .map(|w| format!("{} ({})", w.relative.display(), w.why))
            .collect(),
    })
}

fn largest_files(entries: &[Entry], n: usize) -> Vec<&Entry> {
    let mut files: Vec<&Entry> = entries.iter().filter(|e| e.size() > 0).collect();
    files.sort_by(|a, b| b.size().cmp(&a.size()).then(a.relative.cmp(&b.relative)));
    files.truncate(n);
    files
}

fn check_size(root: &Path, entries: &[Entry], opts: &PackOptions) -> Result<()> {
    let total: u64 = entries.iter().map(Entry::size).sum();
    if total <= opts.max_bytes {
        return Ok(());
    }
    let largest = largest_files(entries, 5)
        .iter()
        .map(|e| format!("{} ({})", e.relative.display(), human_bytes(e.size())))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::Packaging(PackagingError::ProjectTooLarge {
        root: root.to_path_buf(),
        size: total,
        limit: opts.max_bytes,
        mode: opts.limit_reason.clone(),
        largest,
    }))
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Unpacks an archive made by `package`. The tar crate refuses entries that would land outside
/// `dest`, so a hand-made archive cannot write elsewhere.
pub fn unpack(archive: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(Error::io("creating", dest))?;
    let file = File::open(archive).map_err(Error::io("opening", archive))?;
    // Multi: `package` writes one gzip member per block.
    let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
        file,
    )));
    tar.set_preserve_mtime(true);
    tar.unpack(dest).map_err(Error::io("unpacking into", dest))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(Error::io("opening", path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(Error::io("reading", path))?;
    Ok(hex::encode(hasher.finalize()))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The files of a tar.gz (ConfigMap mode keys each file), in archive order.
pub fn archive_files(targz: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    use std::io::Read;
    let bad = |e: std::io::Error| {
        Error::System(SystemError::Io {
            action: "reading the code archive",
            path: "code.tar.gz".into(),
            source: e,
        })
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(targz));
    let mut out = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(bad)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(bad)?;
        out.push((path, bytes));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
