use std::path::Path;

use super::*;
use crate::error::PackagingError;

/// The project's entries in a stable order (sorted by path).
fn collect(root: &Path) -> Result<Vec<Entry>> {
    walk(root, None).map(|w| w.entries)
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn sample(root: &Path) {
    write(root, "train.py", "import model\n");
    write(root, "model/__init__.py", "X = 1\n");
    write(root, "model/__pycache__/x.cpython-311.pyc", "bytecode");
    write(root, ".git/HEAD", "ref: refs/heads/main\n");
    write(root, ".venv/pyvenv.cfg", "home = /usr\n");
    write(root, "env2/pyvenv.cfg", "home = /usr\n");
    write(root, "env2/lib/site.py", "");
    write(root, ".gitignore", "data/\n*.ckpt\n");
    write(root, ".kflowignore", "secret.txt\n");
    write(root, "data/big.bin", "0123456789");
    write(root, "weights.ckpt", "w");
    write(root, "secret.txt", "s");
    write(root, ".env.example", "A=1\n");
}

fn names(root: &Path) -> Vec<String> {
    collect(root)
        .unwrap()
        .into_iter()
        .map(|e| e.relative.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn ignores_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    assert_eq!(
        names(dir.path()),
        [
            ".env.example",
            ".gitignore",
            ".kflowignore",
            "model",
            "model/__init__.py",
            "train.py"
        ]
    );
}

#[test]
fn same_content_same_digest_whatever_the_mtimes_and_creation_order() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    sample(a.path());
    // Same files, written in another order, with other mtimes and permissions noise.
    write(b.path(), "model/__init__.py", "X = 1\n");
    std::thread::sleep(std::time::Duration::from_millis(20));
    for (rel, text) in [
        ("train.py", "import model\n"),
        (".gitignore", "data/\n*.ckpt\n"),
        (".kflowignore", "secret.txt\n"),
        (".env.example", "A=1\n"),
    ] {
        write(b.path(), rel, text);
    }
    let out = tempfile::tempdir().unwrap();
    let first = package(
        a.path(),
        &out.path().join("a.tar.gz"),
        &PackOptions::default(),
    )
    .unwrap();
    let second = package(
        b.path(),
        &out.path().join("b.tar.gz"),
        &PackOptions::default(),
    )
    .unwrap();
    assert_eq!(first.sha256, second.sha256);
    assert_eq!(first.sha256, sha256_file(&first.path).unwrap());
    assert_eq!(first.files, 5);

    write(b.path(), "train.py", "import model  # changed\n");
    let third = package(
        b.path(),
        &out.path().join("c.tar.gz"),
        &PackOptions::default(),
    )
    .unwrap();
    assert_ne!(first.sha256, third.sha256);
}

#[test]
fn round_trip_keeps_files_modes_and_inner_links() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let script = dir.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("model/__init__.py", dir.path().join("alias.py")).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let archive = package(
        dir.path(),
        &out.path().join("code.tar.gz"),
        &PackOptions::default(),
    )
    .unwrap();
    let dest = out.path().join("unpacked");
    unpack(&archive.path, &dest).unwrap();
    assert_eq!(
        std::fs::read_to_string(dest.join("model/__init__.py")).unwrap(),
        "X = 1\n"
    );
    assert!(!dest.join("data").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dest.join("run.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("alias.py")).unwrap(),
            "X = 1\n"
        );
    }
}

#[cfg(unix)]
#[test]
fn link_leaving_the_project_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "creds", "token");
    write(dir.path(), "train.py", "");
    std::os::unix::fs::symlink(outside.path().join("creds"), dir.path().join("creds")).unwrap();
    let err = collect(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::Packaging(PackagingError::SymlinkOutsideProject { .. })
        ),
        "{text}"
    );
    assert!(
        text.contains("creds") && text.contains(".kflowignore"),
        "{text}"
    );

    // Listing it in .kflowignore is the documented way out.
    write(dir.path(), ".kflowignore", "creds\n");
    assert!(collect(dir.path()).is_ok());
}

#[test]
fn size_cap_names_the_largest_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "train.py", "x");
    write(dir.path(), "a.bin", &"a".repeat(3000));
    write(dir.path(), "b.bin", &"b".repeat(2000));
    let out = tempfile::tempdir().unwrap();
    let opts = PackOptions {
        max_bytes: 1000,
        limit_reason: " for ConfigMap mode".into(),
        ..Default::default()
    };
    let err = package(dir.path(), &out.path().join("x.tar.gz"), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("a.bin (2.9 KiB), b.bin (2.0 KiB)"), "{err}");
    assert!(
        err.contains("for ConfigMap mode") && err.contains(".kflowignore"),
        "{err}"
    );
    assert!(
        !out.path().join("x.tar.gz").exists(),
        "nothing is written when the cap is hit"
    );
}

#[test]
fn credentials_are_withheld_and_named_unless_listed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "train.py", "print(1)\n");
    write(
        root,
        ".ssh/id_rsa",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
    );
    write(root, ".aws/credentials", "[default]\n");
    write(root, ".env", "TOKEN=x\n");
    write(root, ".env.example", "TOKEN=\n");
    write(
        root,
        "deploy/key.pem",
        "# ours\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n",
    );
    write(root, "notes/keys.md", "How to make a key: ssh-keygen\n");
    let walked = walk(root, None).unwrap();
    let names: Vec<String> = walked
        .entries
        .iter()
        .map(|e| e.relative.display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            ".env.example",
            "deploy",
            "notes",
            "notes/keys.md",
            "train.py"
        ]
    );
    let withheld: Vec<String> = walked
        .withheld
        .iter()
        .map(|w| w.relative.display().to_string())
        .collect();
    assert_eq!(withheld, [".aws", ".env", ".ssh", "deploy/key.pem"]);

    let out = tempfile::tempdir().unwrap();
    let archive = package(root, &out.path().join("c.tar.gz"), &PackOptions::default()).unwrap();
    let warning = withheld_warning(&archive.withheld).unwrap();
    assert!(
        warning.contains(".ssh (a credentials folder)")
            && warning.contains("deploy/key.pem (a private key)"),
        "{warning}"
    );
    let unpacked = tempfile::tempdir().unwrap();
    unpack(&archive.path, unpacked.path()).unwrap();
    assert!(
        !unpacked.path().join(".ssh").exists() && !unpacked.path().join("deploy/key.pem").exists()
    );

    // `!PATH` in .kflowignore sends one anyway.
    write(root, ".kflowignore", "!.env\n!deploy/key.pem\n");
    let withheld: Vec<String> = walk(root, None)
        .unwrap()
        .withheld
        .iter()
        .map(|w| w.relative.display().to_string())
        .collect();
    assert_eq!(withheld, [".aws", ".ssh"]);
}

#[cfg(unix)]
#[test]
fn a_linked_entry_script_travels_as_its_content_and_broken_links_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    write(elsewhere.path(), "train.py", "print('real')\n");
    write(
        elsewhere.path(),
        ".ssh/id_rsa",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    );
    write(dir.path(), "model.py", "");
    std::os::unix::fs::symlink(
        elsewhere.path().join("train.py"),
        dir.path().join("train.py"),
    )
    .unwrap();
    let walked = walk(dir.path(), Some(Path::new("train.py"))).unwrap();
    let names: Vec<String> = walked
        .entries
        .iter()
        .map(|e| e.relative.display().to_string())
        .collect();
    assert_eq!(names, ["model.py", "train.py"]);
    assert!(matches!(
        walked.entries[1].kind,
        EntryKind::File { size: 14, .. }
    ));
    // Any other link out of the project is still refused.
    assert!(matches!(
        walk(dir.path(), None),
        Err(Error::Packaging(
            PackagingError::SymlinkOutsideProject { .. }
        ))
    ));

    let looped = tempfile::tempdir().unwrap();
    write(looped.path(), "train.py", "");
    std::os::unix::fs::symlink("b", looped.path().join("a")).unwrap();
    std::os::unix::fs::symlink("a", looped.path().join("b")).unwrap();
    let err = collect(looped.path()).unwrap_err().to_string();
    assert!(err.contains("loop of symbolic links"), "{err}");
    let dangling = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("missing.py", dangling.path().join("x.py")).unwrap();
    let err = collect(dangling.path()).unwrap_err().to_string();
    assert!(err.contains("points to nothing"), "{err}");
}
