//! The `mpirun` stand-in on its own, with a local rsh agent standing in for kubexec.sh:
//! placement by slot, rank env, `-x`, literal arguments, failures and too few slots.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use kflow_testcluster::runtime::{self, Runtime};

fn setup(dir: &Path) -> Command {
    let bin = dir.join("bin");
    runtime::write_bin_dir(&bin, &Runtime::Python(runtime::host_python())).unwrap();
    let agent = dir.join("agent.sh");
    std::fs::write(
        &agent,
        "#!/bin/sh\nhost=$1\nshift\nMPI_HOST=$host exec /bin/sh -c \"$*\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hostfile = dir.join("hostfile");
    std::fs::write(&hostfile, "# workers\nw-0 slots=2\nw-1 slots=1\n").unwrap();
    let mut cmd = Command::new(bin.join("mpirun"));
    cmd.env("OMPI_MCA_plm_rsh_agent", &agent)
        .env("OMPI_MCA_orte_default_hostfile", &hostfile)
        .env("FROM_LAUNCHER", "yes")
        .current_dir(dir);
    cmd
}

const PRINT: &str = "import os, sys; e = os.environ; print(e['OMPI_COMM_WORLD_RANK'], e['OMPI_COMM_WORLD_SIZE'], e['OMPI_COMM_WORLD_LOCAL_RANK'], e['OMPI_COMM_WORLD_LOCAL_SIZE'], e['PMIX_RANK'], e['MPI_HOST'], e.get('FROM_LAUNCHER'), e.get('SET'), sys.argv[1:])";

#[test]
fn ranks_fill_slots_through_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let out = setup(dir.path())
        .args([
            "--allow-run-as-root",
            "-bind-to",
            "none",
            "-map-by",
            "slot",
            "-x",
            "FROM_LAUNCHER",
        ])
        .args(["-x", "SET=1", "python3", "-c", PRINT, "$(id)", "a b"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    let args = "['$(id)', 'a b']";
    assert_eq!(
        lines,
        vec![
            format!("0 3 0 2 0 w-0 yes 1 {args}"),
            format!("1 3 1 2 1 w-0 yes 1 {args}"),
            format!("2 3 0 1 2 w-1 yes 1 {args}"),
        ]
    );
}

#[test]
fn a_failing_rank_stops_the_job_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let script = "import os, sys, time; r = int(os.environ['OMPI_COMM_WORLD_RANK']); time.sleep(30) if r != 1 else sys.exit(7)";
    let started = std::time::Instant::now();
    let out = setup(dir.path())
        .args(["-np", "2", "python3", "-c", script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(
        started.elapsed().as_secs() < 20,
        "the other rank was not stopped"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Process name: [["), "{err}");
    assert!(err.contains("Exit code:    7"), "{err}");
}

#[test]
fn too_few_slots_unless_oversubscribed() {
    let dir = tempfile::tempdir().unwrap();
    let out = setup(dir.path())
        .args(["-np", "4", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("There are not enough slots available"));
    let ok = setup(dir.path())
        .args(["-np", "4", "--oversubscribe", "true"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
