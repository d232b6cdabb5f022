//! The /etc/hosts every container sees: pods share the host network, so every pod and service
//! name resolves to 127.0.0.1.

use std::path::PathBuf;

use super::Kubelet;
use crate::resources;

impl Kubelet {
    /// Rewrites the shared /etc/hosts in place (bind mounts follow the inode): every pod and
    /// service resolves to 127.0.0.1 under its short and cluster names.
    pub(super) fn write_hosts(&self) {
        let _guard = self.hosts_lock.lock();
        let mut text =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for p in self
            .store
            .list(resources::pods(), None, None, None, &|_| true)
            .items
        {
            let ns = p["metadata"]["namespace"].as_str().unwrap_or("");
            let name = p["metadata"]["name"].as_str().unwrap_or("");
            let mut names = vec![name.to_string()];
            if let (Some(h), Some(sub)) = (
                p["spec"]["hostname"].as_str(),
                p["spec"]["subdomain"].as_str(),
            ) {
                names.push(format!("{h}.{sub}.{ns}.svc.cluster.local"));
                names.push(format!("{h}.{sub}.{ns}.svc"));
                names.push(format!("{h}.{sub}"));
            }
            text.push_str(&format!("127.0.0.1\t{}\n", names.join(" ")));
        }
        let svc = resources::find("", "v1", "services").expect("served");
        for s in self.store.list(svc, None, None, None, &|_| true).items {
            let ns = s["metadata"]["namespace"].as_str().unwrap_or("");
            let n = s["metadata"]["name"].as_str().unwrap_or("");
            text.push_str(&format!(
                "127.0.0.1\t{n} {n}.{ns} {n}.{ns}.svc {n}.{ns}.svc.cluster.local\n"
            ));
        }
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

    pub(super) fn hosts_path(&self) -> PathBuf {
        self.cfg.state_dir.join("hosts")
    }
}
