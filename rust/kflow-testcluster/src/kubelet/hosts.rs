//! The /etc/hosts every container sees: pods share the host network, so every pod and service
//! name resolves to 127.0.0.1.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Kubelet;
use crate::resources;

impl Kubelet {
    /// Rewrites the shared /etc/hosts in place (bind mounts follow the inode): every pod and
    /// service resolves to 127.0.0.1 under its short and cluster names.
    pub(super) fn write_hosts(&self) {
        let _guard = self.hosts_lock.lock();
        let mut text =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        // Visited, not listed: with thousands of pods a copy of each per rewrite adds up.
        self.store.visit(resources::pods(), &mut |p| {
            let ns = p["metadata"]["namespace"].as_str().unwrap_or("");
            let name = p["metadata"]["name"].as_str().unwrap_or("");
            text.push_str("127.0.0.1\t");
            text.push_str(name);
            if let (Some(h), Some(sub)) = (
                p["spec"]["hostname"].as_str(),
                p["spec"]["subdomain"].as_str(),
            ) {
                text.push_str(&format!(
                    " {h}.{sub}.{ns}.svc.cluster.local {h}.{sub}.{ns}.svc {h}.{sub}"
                ));
            }
            text.push('\n');
        });
        let svc = resources::find("", "v1", "services").expect("served");
        self.store.visit(svc, &mut |s| {
            let ns = s["metadata"]["namespace"].as_str().unwrap_or("");
            let n = s["metadata"]["name"].as_str().unwrap_or("");
            text.push_str(&format!(
                "127.0.0.1\t{n} {n}.{ns} {n}.{ns}.svc {n}.{ns}.svc.cluster.local\n"
            ));
        });
        let path = self.hosts_path();
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)?;
            f.write_all(text.as_bytes())
        };
        let _ = write();
    }

    /// A rewrite soon, for a new or removed service: the services of a thousand jobs created
    /// at once become a few rewrites, not a thousand. (A starting pod rewrites the file itself
    /// first, so it never waits on this.)
    pub(super) fn write_hosts_soon(self: &Arc<Self>) {
        if self.hosts_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            me.hosts_pending.store(false, Ordering::SeqCst);
            me.write_hosts();
        });
    }

    pub(super) fn hosts_path(&self) -> PathBuf {
        self.cfg.state_dir.join("hosts")
    }
}
