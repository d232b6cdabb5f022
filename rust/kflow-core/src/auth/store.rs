//! Where secrets live: the editor's secret storage when an editor serves this process (`kflow
//! serve`), else the OS keyring (Secret Service on Linux — the store VS Code's
//! SecretStorage uses —, Keychain on macOS, Credential Manager on Windows); on Linux without a
//! Secret Service (a server, a container) the kernel keyring, kept until reboot; else this
//! process's memory. Never a file. The store is probed once per process; when there is none, the caller is
//! told once (`SecretStore::take_memory_notice`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use zeroize::Zeroizing;

use crate::error::{AuthError, Error, Result};

/// The keyring's service name for every kflow entry.
pub const SERVICE: &str = "kflow";

/// Marks an entry whose value is split over numbered entries.
const CHUNKED: &str = "kflow-chunks:";

/// Characters per keyring entry: Windows Credential Manager keeps at most 2560 bytes (UTF-16).
fn chunk_limit() -> usize {
    if cfg!(windows) {
        1200
    } else {
        usize::MAX
    }
}

/// Where sign-in secrets are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The platform's keyring; the name says which.
    Keyring(&'static str),
    /// Linux's kernel keyring (keyutils): shared by this login's processes, gone at reboot.
    KernelKeyring,
    /// No keyring: secrets live in this process only.
    Memory,
    /// The editor that serves this process keeps them (VS Code's SecretStorage, through
    /// `kflow serve`); the name says which.
    Editor(&'static str),
}

impl StoreKind {
    /// The store in words for the user, with what it means for how long a session lasts.
    pub fn describe(&self) -> String {
        match self {
            StoreKind::Keyring(name) => format!("OS keyring ({name})"),
            StoreKind::KernelKeyring => {
                "Linux kernel keyring (no Secret Service; kept until reboot)".into()
            }
            StoreKind::Memory => {
                "memory only (no OS keyring: the session ends with this process)".into()
            }
            StoreKind::Editor(name) => name.to_string(),
        }
    }

    /// A stable one-word name: `keyring`, `kernel-keyring` or `memory`.
    pub fn short(&self) -> &'static str {
        match self {
            StoreKind::Keyring(_) => "keyring",
            StoreKind::KernelKeyring => "kernel-keyring",
            StoreKind::Memory => "memory",
            StoreKind::Editor(_) => "editor",
        }
    }
}

fn platform_store() -> &'static str {
    if cfg!(target_os = "macos") {
        "macOS Keychain"
    } else if cfg!(windows) {
        "Windows Credential Manager"
    } else {
        "Secret Service"
    }
}

/// A secret store the process's host provides: an editor that keeps secrets in its own
/// storage and answers over the serving connection. Errors are the host's words.
pub trait EditorSecrets: Send + Sync {
    /// The value kept under `account`, if any.
    fn get(&self, account: &str) -> std::result::Result<Option<String>, String>;
    /// Keeps `value` under `account`.
    fn store(&self, account: &str, value: &str) -> std::result::Result<(), String>;
    /// Forgets `account` (a missing one is fine).
    fn delete(&self, account: &str) -> std::result::Result<(), String>;
}

/// The editor's store and its name; set once per process, so the name can be `'static`.
static EDITOR: OnceLock<(String, Box<dyn EditorSecrets>)> = OnceLock::new();

/// Makes `secrets` this process's secret store, described as `name` (e.g. "VS Code
/// SecretStorage"). Only before the store is first used: false when it already was.
pub fn use_editor_store(name: String, secrets: Box<dyn EditorSecrets>) -> bool {
    if PROBED.get().is_some() || EDITOR.set((name, secrets)).is_err() {
        return false;
    }
    let name = EDITOR.get().map_or("the editor", |(name, _)| name.as_str());
    PROBED.set(StoreKind::Editor(name)).is_ok()
}

fn editor() -> std::result::Result<&'static dyn EditorSecrets, String> {
    EDITOR
        .get()
        .map(|(_, secrets)| secrets.as_ref())
        .ok_or_else(|| "no editor store is connected".to_string())
}

static MEMORY: OnceLock<Mutex<HashMap<String, Zeroizing<String>>>> = OnceLock::new();
static NOTICE_GIVEN: AtomicBool = AtomicBool::new(false);
static PROBED: OnceLock<StoreKind> = OnceLock::new();

fn memory() -> std::sync::MutexGuard<'static, HashMap<String, Zeroizing<String>>> {
    MEMORY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// `KFLOW_KEYRING` picks a store: `none` (nothing persisted), `kernel` (skip the Secret
/// Service); unset, the best that works.
fn forced() -> Option<StoreKind> {
    match std::env::var("KFLOW_KEYRING").ok()?.as_str() {
        "none" | "memory" | "off" => Some(StoreKind::Memory),
        "kernel" | "keyutils" if cfg!(target_os = "linux") => Some(StoreKind::KernelKeyring),
        _ => None,
    }
}

/// The keyring entry of `account` in the store `kind` (not Memory).
fn entry(kind: StoreKind, account: &str) -> keyring::Result<keyring::Entry> {
    match kind {
        #[cfg(target_os = "linux")]
        StoreKind::KernelKeyring => {
            let credential =
                keyring::keyutils::KeyutilsCredential::new_with_target(None, SERVICE, account)?;
            Ok(keyring::Entry::new_with_credential(Box::new(credential)))
        }
        _ => keyring::Entry::new(SERVICE, account),
    }
}

/// Asks a store for an entry that does not exist: "no entry" means it works.
fn works(kind: StoreKind) -> bool {
    entry(kind, "kflow-probe")
        .and_then(|e| match e.get_password() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e),
        })
        .is_ok()
}

fn probe() -> StoreKind {
    let candidates: Vec<StoreKind> = match forced() {
        Some(StoreKind::Memory) => return StoreKind::Memory,
        Some(kind) => vec![kind],
        None if cfg!(target_os = "linux") => vec![
            StoreKind::Keyring(platform_store()),
            StoreKind::KernelKeyring,
        ],
        None => vec![StoreKind::Keyring(platform_store())],
    };
    candidates
        .into_iter()
        .find(|k| works(*k))
        .unwrap_or(StoreKind::Memory)
}

/// Where this process saves, loads and deletes sign-in secrets.
#[derive(Debug, Clone, Copy)]
pub struct SecretStore {
    kind: StoreKind,
}

impl SecretStore {
    /// The store of this process (probed on first use).
    pub fn detect() -> SecretStore {
        SecretStore {
            kind: *PROBED.get_or_init(probe),
        }
    }

    /// A store that keeps secrets in this process's memory only.
    pub fn memory() -> SecretStore {
        SecretStore {
            kind: StoreKind::Memory,
        }
    }

    /// Which kind of store this is.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The one-time notice that secrets are kept in memory only; None after the first call or
    /// when a keyring is in use.
    pub fn take_memory_notice(&self) -> Option<String> {
        (self.kind == StoreKind::Memory && !NOTICE_GIVEN.swap(true, Ordering::SeqCst)).then(|| {
            "no OS keyring is available (on Linux: no Secret Service on the D-Bus session): the Kubeflow session is kept in this process's memory only, and you will be asked to sign in again next time".to_string()
        })
    }

    fn fail(&self, action: &'static str, e: keyring::Error) -> Error {
        // keyring's messages name the store and the failure, never the secret.
        Error::Auth(AuthError::Keyring {
            store: self.kind.describe(),
            action,
            problem: e.to_string(),
        })
    }

    fn fail_editor(&self, action: &'static str, problem: String) -> Error {
        Error::Auth(AuthError::Keyring {
            store: self.kind.describe(),
            action,
            problem,
        })
    }

    /// Saves `secret`; values longer than the platform allows (Windows Credential Manager: 2560
    /// bytes) are split over `account#1…#n`, with `account` holding the count.
    pub fn save(&self, account: &str, secret: &str) -> Result<()> {
        self.save_chunked(account, secret, chunk_limit())
    }

    fn save_chunked(&self, account: &str, secret: &str, limit: usize) -> Result<()> {
        let old = self.chunk_count(account)?;
        let chars: Vec<char> = secret.chars().collect();
        if chars.len() <= limit && !secret.starts_with(CHUNKED) {
            self.save_raw(account, secret)?;
        } else {
            let parts: Vec<String> = chars
                .chunks(limit.max(1))
                .map(|c| c.iter().collect())
                .collect();
            for (i, part) in parts.iter().enumerate() {
                self.save_raw(&format!("{account}#{}", i + 1), part)?;
            }
            self.save_raw(account, &format!("{CHUNKED}{}", parts.len()))?;
            for i in parts.len() + 1..=old {
                self.delete_raw(&format!("{account}#{i}"))?;
            }
            return Ok(());
        }
        for i in 1..=old {
            self.delete_raw(&format!("{account}#{i}"))?;
        }
        Ok(())
    }

    fn chunk_count(&self, account: &str) -> Result<usize> {
        Ok(self
            .load_raw(account)?
            .and_then(|v| v.strip_prefix(CHUNKED).and_then(|n| n.parse().ok()))
            .unwrap_or(0))
    }

    /// The secret saved for `account`, its chunks joined again; `None` when there is none.
    pub fn load(&self, account: &str) -> Result<Option<Zeroizing<String>>> {
        let Some(head) = self.load_raw(account)? else {
            return Ok(None);
        };
        let Some(n) = head
            .strip_prefix(CHUNKED)
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return Ok(Some(head));
        };
        let mut whole = Zeroizing::new(String::new());
        for i in 1..=n {
            match self.load_raw(&format!("{account}#{i}"))? {
                Some(part) => whole.push_str(&part),
                None => return Ok(None),
            }
        }
        Ok(Some(whole))
    }

    /// Removes an entry (and its chunks); a missing one is fine.
    pub fn delete(&self, account: &str) -> Result<()> {
        for i in 1..=self.chunk_count(account)? {
            self.delete_raw(&format!("{account}#{i}"))?;
        }
        self.delete_raw(account)
    }

    fn save_raw(&self, account: &str, secret: &str) -> Result<()> {
        match self.kind {
            StoreKind::Memory => {
                memory().insert(account.to_string(), Zeroizing::new(secret.to_string()));
                Ok(())
            }
            StoreKind::Editor(_) => editor()
                .and_then(|e| e.store(account, secret))
                .map_err(|e| self.fail_editor("save the session", e)),
            kind => entry(kind, account)
                .and_then(|e| e.set_password(secret))
                .map_err(|e| self.fail("save the session", e)),
        }
    }

    fn load_raw(&self, account: &str) -> Result<Option<Zeroizing<String>>> {
        match self.kind {
            StoreKind::Memory => Ok(memory().get(account).cloned()),
            StoreKind::Editor(_) => editor()
                .and_then(|e| e.get(account))
                .map(|v| v.map(Zeroizing::new))
                .map_err(|e| self.fail_editor("read the session", e)),
            kind => match entry(kind, account).and_then(|e| e.get_password()) {
                Ok(s) => Ok(Some(Zeroizing::new(s))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(self.fail("read the session", e)),
            },
        }
    }

    fn delete_raw(&self, account: &str) -> Result<()> {
        match self.kind {
            StoreKind::Memory => {
                memory().remove(account);
                Ok(())
            }
            StoreKind::Editor(_) => editor()
                .and_then(|e| e.delete(account))
                .map_err(|e| self.fail_editor("delete the session", e)),
            kind => match entry(kind, account).and_then(|e| e.delete_credential()) {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(self.fail("delete the session", e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn kernel_keyring_round_trip_where_the_kernel_allows_it() {
        if !works(StoreKind::KernelKeyring) {
            eprintln!("skipped: keyctl is not permitted here (seccomp or no keyutils)");
            return;
        }
        let s = SecretStore {
            kind: StoreKind::KernelKeyring,
        };
        let account = format!("test/{}", std::process::id());
        s.save(&account, "kernel-secret").unwrap();
        assert_eq!(
            s.load(&account).unwrap().as_deref().map(String::as_str),
            Some("kernel-secret")
        );
        s.delete(&account).unwrap();
        assert!(s.load(&account).unwrap().is_none());
    }

    #[test]
    fn memory_store_round_trip_and_one_notice() {
        let s = SecretStore::memory();
        s.save("t/acct", "v1").unwrap();
        assert_eq!(
            s.load("t/acct").unwrap().as_deref().map(String::as_str),
            Some("v1")
        );
        s.delete("t/acct").unwrap();
        s.delete("t/acct").unwrap();
        assert!(s.load("t/acct").unwrap().is_none());
        // Chunked values round-trip, shrink and leave nothing behind.
        let long: String = (0..50).map(|i| format!("{i:02}é")).collect();
        s.save_chunked("t/big", &long, 16).unwrap();
        assert_eq!(s.chunk_count("t/big").unwrap(), 10);
        assert_eq!(s.load("t/big").unwrap().unwrap().as_str(), long);
        s.save_chunked("t/big", &long[..40], 16).unwrap();
        assert_eq!(s.load("t/big").unwrap().unwrap().as_str(), &long[..40]);
        assert!(s.load_raw("t/big#4").unwrap().is_none());
        s.delete("t/big").unwrap();
        assert!(memory().keys().all(|k| !k.starts_with("t/big")));
        let _ = s.take_memory_notice();
        assert!(
            s.take_memory_notice().is_none(),
            "the notice is given once per process"
        );
    }
}
