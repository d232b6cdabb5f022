//! The training operator (kubeflow/training-operator v1 behaviour): defaults on create, one pod
//! and one headless service per replica with the operator's labels and env vars, job conditions
//! Created -> Running -> Succeeded/Failed, and the replica restart policies.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::events;
use crate::resources::{self, ResourceType};
use crate::store::{now_rfc3339, EventType, Store};

/// What differs between the job kinds the operator serves.
struct KindSpec {
    specs_field: &'static str,
    operator_name: &'static str,
    container: &'static str,
    port_name: &'static str,
    default_port: i64,
    default_restart: &'static str,
    /// Replica types in the order the operator creates them; the first is the "master" role.
    order: &'static [&'static str],
    /// mpi-operator's MPIJob v2beta1 (job-role launcher/worker, FQDN hostfile, one service).
    v2: bool,
}

fn kind_spec(res: &ResourceType) -> Option<KindSpec> {
    if res.plural == "mpijobs" && res.version == "v2beta1" {
        return Some(KindSpec {
            specs_field: "mpiReplicaSpecs",
            operator_name: "mpi-operator",
            container: "mpi",
            port_name: "mpi-port",
            default_port: 9999,
            default_restart: "Never",
            order: &["Launcher", "Worker"],
            v2: true,
        });
    }
    match res.plural {
        "pytorchjobs" => Some(KindSpec {
            specs_field: "pytorchReplicaSpecs",
            operator_name: "pytorchjob-controller",
            container: "pytorch",
            port_name: "pytorchjob-port",
            default_port: 23456,
            default_restart: "OnFailure",
            order: &["Master", "Worker"],
            v2: false,
        }),
        "tfjobs" => Some(KindSpec {
            specs_field: "tfReplicaSpecs",
            operator_name: "tfjob-controller",
            container: "tensorflow",
            port_name: "tfjob-port",
            default_port: 2222,
            default_restart: "Never",
            order: &["Chief", "Master", "PS", "Worker", "Evaluator"],
            v2: false,
        }),
        "mpijobs" => Some(KindSpec {
            specs_field: "mpiReplicaSpecs",
            operator_name: "mpijob-controller",
            container: "mpi",
            port_name: "mpi-port",
            default_port: 9999,
            default_restart: "Never",
            order: &["Launcher", "Worker"],
            v2: false,
        }),
        _ => None,
    }
}

fn camel_case_type(t: &str) -> String {
    match t.to_ascii_lowercase().as_str() {
        "ps" => "PS".into(),
        lower => {
            let mut c = lower.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        }
    }
}

/// The operator's defaulting webhook: replica type names in CamelCase, replicas 1, the kind's
/// restart policy, the default port on the main container, cleanPodPolicy None.
pub fn default_job(res: &ResourceType, obj: &mut Value) {
    let Some(k) = kind_spec(res) else { return };
    if let Some(specs) = obj["spec"][k.specs_field].as_object().cloned() {
        let mut fixed = Map::new();
        for (t, mut spec) in specs {
            if !spec.is_object() {
                fixed.insert(camel_case_type(&t), spec);
                continue;
            }
            if spec["replicas"].is_null() {
                spec["replicas"] = json!(1);
            }
            if spec["restartPolicy"].is_null() {
                spec["restartPolicy"] = json!(k.default_restart);
            }
            if let Some(containers) = spec["template"]["spec"]["containers"].as_array_mut() {
                for c in containers
                    .iter_mut()
                    .filter(|c| c["name"] == json!(k.container))
                {
                    let ports = c["ports"].as_array().cloned().unwrap_or_default();
                    if !ports.iter().any(|p| p["name"] == json!(k.port_name))
                        && res.plural != "mpijobs"
                    {
                        let mut ports = ports;
                        ports.push(json!({"name": k.port_name, "containerPort": k.default_port, "protocol": "TCP"}));
                        c["ports"] = json!(ports);
                    }
                }
            }
            fixed.insert(camel_case_type(&t), spec);
        }
        obj["spec"][k.specs_field] = Value::Object(fixed);
    }
    if k.v2 && obj["spec"].is_object() {
        // mpi-operator's defaults.
        for (field, value) in [
            ("slotsPerWorker", json!(1)),
            ("sshAuthMountPath", json!("/root/.ssh")),
            ("mpiImplementation", json!("OpenMPI")),
            ("launcherCreationPolicy", json!("AtStartup")),
        ] {
            if obj["spec"][field].is_null() {
                obj["spec"][field] = value;
            }
        }
    }
    if obj["spec"].is_object() && obj["spec"]["runPolicy"]["cleanPodPolicy"].is_null() {
        if !obj["spec"]["runPolicy"].is_object() {
            obj["spec"]["runPolicy"] = json!({});
        }
        obj["spec"]["runPolicy"]["cleanPodPolicy"] = json!("None");
    }
}

/// Runs the operator until the store's change channel closes.
const RESYNC: Duration = Duration::from_secs(2);

pub async fn run(store: Arc<Store>) {
    let mut rx = store.subscribe();
    resync_off_runtime(&store).await;
    // The periodic full pass runs every 2 s, or less often when it takes long (thousands of
    // jobs): it then gets at most a tenth of the time, and events still reconcile at once.
    let mut next_resync = tokio::time::Instant::now() + RESYNC;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(change) => {
                    if change.resource.is_training_job() && change.kind != EventType::Deleted {
                        reconcile(&store, change.resource, change.namespace(), change.name());
                    } else if change.resource.plural == "pods" {
                        let labels = &change.object["metadata"]["labels"];
                        let owner = labels["training.kubeflow.org/operator-name"].as_str().and_then(job_resource);
                        if let (Some(res), Some(job)) = (owner, labels["training.kubeflow.org/job-name"].as_str()) {
                            reconcile(&store, res, change.namespace(), job);
                        }
                    }
                }
                // Missed events are made up for by a full pass.
                Err(RecvError::Lagged(_)) => resync_off_runtime(&store).await,
                Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep_until(next_resync) => {
                let started = std::time::Instant::now();
                resync_off_runtime(&store).await;
                next_resync = tokio::time::Instant::now() + RESYNC.max(started.elapsed() * 10);
            }
        }
    }
}

fn job_resource(operator_name: &str) -> Option<&'static ResourceType> {
    let plural = match operator_name {
        "pytorchjob-controller" => "pytorchjobs",
        "tfjob-controller" => "tfjobs",
        "mpijob-controller" => "mpijobs",
        "mpi-operator" => return resources::find("kubeflow.org", "v2beta1", "mpijobs"),
        _ => return None,
    };
    resources::find("kubeflow.org", "v1", plural)
}

/// A full pass on a blocking thread: with thousands of jobs it takes long enough to starve the
/// runtime's few workers, which also serve the API (TLS handshakes time out).
async fn resync_off_runtime(store: &Arc<Store>) {
    let store = store.clone();
    let _ = tokio::task::spawn_blocking(move || resync(&store)).await;
}

fn resync(store: &Store) {
    for res in resources::RESOURCES.iter().filter(|r| r.is_training_job()) {
        for job in store.list(res, None, None, None, &|_| true).items {
            let ns = job["metadata"]["namespace"].as_str().unwrap_or("");
            let name = job["metadata"]["name"].as_str().unwrap_or("");
            reconcile(store, res, ns, name);
        }
    }
}

fn condition(t: &str, reason: &str, message: &str) -> Value {
    let now = now_rfc3339();
    json!({"type": t, "status": "True", "reason": reason, "message": message,
           "lastUpdateTime": now, "lastTransitionTime": now})
}

fn has_condition(status: &Value, t: &str) -> bool {
    status["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == json!(t) && c["status"] == json!("True"))
    })
}

/// Sets condition `t` True (others keep their history, Running turns False on completion).
fn set_condition(status: &mut Value, t: &str, reason: &str, message: &str) {
    if has_condition(status, t) {
        return;
    }
    let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
    if matches!(t, "Succeeded" | "Failed") {
        for c in conds
            .iter_mut()
            .filter(|c| c["type"] == json!("Running") || c["type"] == json!("Restarting"))
        {
            c["status"] = json!("False");
        }
    }
    if t == "Running" {
        conds.retain(|c| c["type"] != json!("Restarting"));
    }
    conds.push(condition(t, reason, message));
    status["conditions"] = json!(conds);
}

fn replica_types(k: &KindSpec, job: &Value) -> Vec<(String, Value)> {
    let specs = job["spec"][k.specs_field]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<(String, Value)> = specs.into_iter().collect();
    out.sort_by_key(|(t, _)| k.order.iter().position(|o| o == t).unwrap_or(99));
    out
}

fn pod_exit(pod: &Value) -> (String, i64) {
    for cs in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let t = &cs["state"]["terminated"];
        if let Some(code) = t["exitCode"].as_i64() {
            if code != 0 {
                return (t["reason"].as_str().unwrap_or("Error").to_string(), code);
            }
        }
    }
    ("Completed".into(), 0)
}

pub fn reconcile(store: &Store, res: &'static ResourceType, ns: &str, name: &str) {
    let Some(k) = kind_spec(res) else { return };
    let Some(job) = store.get(res, ns, name) else {
        return;
    };
    let mut status = if job["status"].is_object() {
        job["status"].clone()
    } else {
        json!({})
    };
    // A finished job keeps its conditions; only replicaStatuses follow the remaining pods.
    let finished = has_condition(&status, "Succeeded") || has_condition(&status, "Failed");
    if finished {
        clean_pods(store, &job, &k);
    }
    if !finished && !has_condition(&status, "Created") {
        set_condition(
            &mut status,
            "Created",
            &format!("{}Created", res.kind),
            &format!("{} {name} is created.", res.kind),
        );
        events::record(
            store,
            &job,
            "Normal",
            &format!("{}Created", res.kind),
            &format!("{} {name} is created.", res.kind),
            k.operator_name,
        );
    }
    // runPolicy.suspend, as the training operator (v1.7+) does it: a suspended job has no
    // pods and says so in a Suspended condition; resuming flips it False and starts them.
    let suspended = job["spec"]["runPolicy"]["suspend"].as_bool() == Some(true);
    if !finished && suspended {
        delete_job_pods(store, &job, &k, |_| true);
        if !has_condition(&status, "Suspended") {
            let msg = format!("{} {name} is suspended.", res.kind);
            let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
            conds.retain(|c| c["type"] != json!("Suspended"));
            for c in conds.iter_mut().filter(|c| c["type"] == json!("Running")) {
                c["status"] = json!("False");
            }
            conds.push(condition("Suspended", "JobSuspended", &msg));
            status["conditions"] = json!(conds);
        }
        let _ = store.update_with(res, ns, name, false, |old| {
            let mut new = old.clone();
            new["status"] = status.clone();
            Ok(new)
        });
        return;
    }
    if has_condition(&status, "Suspended") {
        if let Some(conds) = status["conditions"].as_array_mut() {
            for c in conds.iter_mut().filter(|c| c["type"] == json!("Suspended")) {
                c["status"] = json!("False");
                c["reason"] = json!("JobResumed");
                c["message"] = json!(format!("{} {name} is resumed.", res.kind));
                c["lastTransitionTime"] = json!(now_rfc3339());
            }
        }
    }
    let types = replica_types(&k, &job);
    let total: i64 = types
        .iter()
        .map(|(_, s)| s["replicas"].as_i64().unwrap_or(1))
        .sum();
    if res.plural == "mpijobs" && !finished {
        ensure_mpi_config(store, res, &k, &job, &types);
    }
    let has_master_type = types
        .iter()
        .any(|(t, _)| matches!(t.as_str(), "Master" | "Chief" | "Launcher"));
    let mut replica_statuses = Map::new();
    let mut failures: Vec<String> = Vec::new();
    let mut any_running = false;
    let mut restarting = false;
    let (mut master_succeeded, mut workers_all_succeeded) = (None::<bool>, true);
    let backoff_limit = job["spec"]["runPolicy"]["backoffLimit"].as_i64();
    let mut restarts_total = 0i64;

    for (rtype, rspec) in &types {
        let replicas = rspec["replicas"].as_i64().unwrap_or(1).max(0);
        let policy = rspec["restartPolicy"].as_str().unwrap_or(k.default_restart);
        let (mut active, mut succeeded, mut failed) = (0, 0, 0);
        for i in 0..replicas {
            let pod_name = replica_pod_name(&k, name, rtype, i);
            let Some(pod) = store.get(resources::pods(), ns, &pod_name) else {
                if !finished {
                    create_replica(store, res, &k, &job, rtype, rspec, i, &types, total);
                    active += 1;
                }
                continue;
            };
            restarts_total += pod["status"]["containerStatuses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                        .sum::<i64>()
                })
                .unwrap_or(0);
            match pod["status"]["phase"].as_str().unwrap_or("Pending") {
                "Succeeded" => succeeded += 1,
                "Failed" => {
                    let (reason, code) = pod_exit(&pod);
                    // ExitCode policy: 128+ (killed by a signal) is retryable, the pod is recreated.
                    if !finished && policy == "ExitCode" && code >= 128 {
                        let _ = store.delete(resources::pods(), ns, &pod_name, false, true);
                        restarting = true;
                        restarts_total += 1;
                        active += 1;
                    } else {
                        failed += 1;
                        failures.push(format!("{pod_name}: {reason}, exit code {code}"));
                    }
                }
                "Running" => {
                    active += 1;
                    any_running = true;
                }
                _ => active += 1,
            }
        }
        let mut rs = json!({"active": active, "succeeded": succeeded, "failed": failed});
        rs["selector"] = json!(format!(
            "training.kubeflow.org/job-name={name},training.kubeflow.org/operator-name={},training.kubeflow.org/replica-type={}",
            k.operator_name, rtype.to_ascii_lowercase()
        ));
        replica_statuses.insert(rtype.clone(), rs);
        if matches!(rtype.as_str(), "Master" | "Chief" | "Launcher") {
            master_succeeded = Some(succeeded == replicas);
        } else if rtype == "Worker" && succeeded != replicas {
            workers_all_succeeded = false;
        }
        if !finished && failed > 0 && !failures.is_empty() {
            let msg = format!(
                "{} {name} is failed because {failed} {rtype} replica(s) failed.",
                res.kind
            );
            let detail = failures.join("; ");
            if !has_condition(&status, "Failed") {
                set_condition(
                    &mut status,
                    "Failed",
                    &format!("{}Failed", res.kind),
                    &format!("{msg} ({detail})"),
                );
                events::record(
                    store,
                    &job,
                    "Warning",
                    &format!("{}Failed", res.kind),
                    &msg,
                    k.operator_name,
                );
            }
        }
    }
    status["replicaStatuses"] = Value::Object(replica_statuses);
    if status["startTime"].is_null() {
        status["startTime"] = json!(now_rfc3339());
    }
    if !finished && !has_condition(&status, "Failed") {
        if let Some(limit) = backoff_limit.filter(|l| restarts_total > *l) {
            let msg = format!(
                "{} {name} has failed because it has reached the specified backoff limit ({limit})",
                res.kind
            );
            set_condition(&mut status, "Failed", &format!("{}Failed", res.kind), &msg);
        }
    }
    let succeeded = if has_master_type {
        master_succeeded == Some(true)
    } else {
        workers_all_succeeded && total > 0
    };
    if !finished && !has_condition(&status, "Failed") {
        if succeeded {
            let msg = format!("{} {name} is successfully completed.", res.kind);
            set_condition(
                &mut status,
                "Succeeded",
                &format!("{}Succeeded", res.kind),
                &msg,
            );
            events::record(
                store,
                &job,
                "Normal",
                &format!("{}Succeeded", res.kind),
                &msg,
                k.operator_name,
            );
        } else if restarting {
            let msg = format!(
                "{} {name} is restarting because a replica failed with a retryable exit code.",
                res.kind
            );
            set_condition(
                &mut status,
                "Restarting",
                &format!("{}Restarting", res.kind),
                &msg,
            );
        } else if any_running {
            set_condition(
                &mut status,
                "Running",
                &format!("{}Running", res.kind),
                &format!("{} {name} is running.", res.kind),
            );
        }
    }
    if (has_condition(&status, "Succeeded") || has_condition(&status, "Failed"))
        && status["completionTime"].is_null()
    {
        status["completionTime"] = json!(now_rfc3339());
    }
    let _ = store.update_with(res, ns, name, false, |old| {
        let mut new = old.clone();
        new["status"] = status.clone();
        Ok(new)
    });
}

/// cleanPodPolicy on a finished job: All deletes every pod, Running the ones still running.
fn clean_pods(store: &Store, job: &Value, k: &KindSpec) {
    let policy = job["spec"]["runPolicy"]["cleanPodPolicy"]
        .as_str()
        .unwrap_or("None");
    if policy == "None" {
        return;
    }
    delete_job_pods(store, job, k, |phase| {
        policy == "All" || matches!(phase, "Running" | "Pending")
    });
}

/// Deletes the job's pods whose phase `which` picks.
fn delete_job_pods(store: &Store, job: &Value, k: &KindSpec, which: impl Fn(&str) -> bool) {
    let name = job["metadata"]["name"].as_str().unwrap_or("");
    let ns = job["metadata"]["namespace"].as_str().unwrap_or("");
    let selector = |p: &Value| {
        p["metadata"]["labels"]["training.kubeflow.org/job-name"] == json!(name)
            && p["metadata"]["labels"]["training.kubeflow.org/operator-name"]
                == json!(k.operator_name)
    };
    for pod in store
        .list(resources::pods(), Some(ns), None, None, &selector)
        .items
    {
        if which(pod["status"]["phase"].as_str().unwrap_or("")) {
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
            let _ = store.delete(resources::pods(), ns, pod_name, false, true);
        }
    }
}

fn set_env(container: &mut Value, name: &str, value: &str) {
    let mut env = container["env"].as_array().cloned().unwrap_or_default();
    if env.iter().any(|e| e["name"] == json!(name)) {
        return;
    }
    env.push(json!({"name": name, "value": value}));
    container["env"] = json!(env);
}

fn container_port(k: &KindSpec, spec: &Value) -> i64 {
    spec["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .find(|p| p["name"] == json!(k.port_name))
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or(k.default_port)
}

#[allow(clippy::too_many_arguments)]
fn create_replica(
    store: &Store,
    res: &'static ResourceType,
    k: &KindSpec,
    job: &Value,
    rtype: &str,
    rspec: &Value,
    index: i64,
    types: &[(String, Value)],
    total: i64,
) {
    let name = job["metadata"]["name"].as_str().unwrap_or("");
    let ns = job["metadata"]["namespace"].as_str().unwrap_or("");
    let lower = rtype.to_ascii_lowercase();
    let pod_name = replica_pod_name(k, name, rtype, index);
    let template = &rspec["template"];
    let mut labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(
        "training.kubeflow.org/operator-name".into(),
        json!(k.operator_name),
    );
    labels.insert("training.kubeflow.org/job-name".into(), json!(name));
    if k.v2 {
        // mpi-operator labels roles, not replica types; only workers carry an index.
        labels.insert("training.kubeflow.org/job-role".into(), json!(lower));
        if rtype == "Worker" {
            labels.insert(
                "training.kubeflow.org/replica-index".into(),
                json!(index.to_string()),
            );
        }
    } else {
        labels.insert("training.kubeflow.org/replica-type".into(), json!(lower));
        labels.insert(
            "training.kubeflow.org/replica-index".into(),
            json!(index.to_string()),
        );
    }
    let master_type = types
        .iter()
        .map(|(t, _)| t.as_str())
        .find(|t| matches!(*t, "Master" | "Chief" | "Launcher"));
    let is_master = match master_type {
        Some(m) => m == rtype,
        None => rtype == "Worker" && index == 0,
    };
    if is_master && !k.v2 {
        labels.insert("training.kubeflow.org/job-role".into(), json!("master"));
    }
    let mut spec = template["spec"].clone();
    let policy = rspec["restartPolicy"].as_str().unwrap_or(k.default_restart);
    // ExitCode is the operator's policy: the pod itself never restarts, the operator recreates it.
    spec["restartPolicy"] = json!(if policy == "ExitCode" {
        "Never"
    } else {
        policy
    });
    spec["hostname"] = json!(pod_name);
    spec["subdomain"] = json!(name);
    let env = replica_env(res, k, job, rtype, index, types, total);
    if res.plural == "mpijobs" && rtype == "Launcher" {
        mount_mpi_config(&mut spec, name);
    }
    if let Some(containers) = spec["containers"].as_array_mut() {
        for c in containers.iter_mut() {
            if res.plural == "tfjobs" && c["name"] != json!(k.container) {
                continue;
            }
            for (n, v) in &env {
                set_env(c, n, v);
            }
        }
    }
    let owner = json!([{"apiVersion": res.api_version(), "kind": res.kind, "name": name,
        "uid": job["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]);
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": ns, "labels": labels, "annotations": annotations, "ownerReferences": owner},
        "spec": spec, "status": {"phase": "Pending", "qosClass": "BestEffort"}});
    let port = container_port(k, rspec);
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": pod_name, "namespace": ns, "labels": labels, "ownerReferences": owner},
        "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": k.port_name, "port": port, "targetPort": port, "protocol": "TCP"}]},
        "status": {"loadBalancer": {}}});
    // mpi-operator makes one headless service for the job (see ensure_mpi_config) instead.
    if !k.v2 {
        let _ = store.create(
            resources::find("", "v1", "services").expect("services is served"),
            service,
            false,
        );
    }
    match store.create(resources::pods(), pod, false) {
        Ok(p) => events::record(
            store,
            job,
            "Normal",
            "SuccessfulCreatePod",
            &format!(
                "Created pod: {}",
                p["metadata"]["name"].as_str().unwrap_or("")
            ),
            k.operator_name,
        ),
        Err(e) => events::record(
            store,
            job,
            "Warning",
            "FailedCreatePod",
            &format!("Error creating: {}", e.message),
            k.operator_name,
        ),
    }
}

/// `<job>-<type>-<i>`; mpi-operator v2's launcher is `<job>-launcher`.
fn replica_pod_name(k: &KindSpec, job: &str, rtype: &str, index: i64) -> String {
    if k.v2 && rtype == "Launcher" {
        format!("{job}-launcher")
    } else {
        format!("{job}-{}-{index}", rtype.to_ascii_lowercase())
    }
}

/// MPIJob: the `<job>-config` ConfigMap (hostfile, kubexec.sh, discover_hosts.sh) the
/// launcher finds at /etc/mpi.
fn ensure_mpi_config(
    store: &Store,
    res: &ResourceType,
    k: &KindSpec,
    job: &Value,
    types: &[(String, Value)],
) {
    let name = job["metadata"]["name"].as_str().unwrap_or("");
    let ns = job["metadata"]["namespace"].as_str().unwrap_or("");
    let cms = resources::find("", "v1", "configmaps").expect("configmaps is served");
    let cm_name = format!("{name}-config");
    if store.get(cms, ns, &cm_name).is_some() {
        return;
    }
    let owner = json!([{"apiVersion": res.api_version(), "kind": res.kind, "name": name, "uid": job["metadata"]["uid"],
                        "controller": true, "blockOwnerDeletion": true}]);
    if k.v2 {
        // mpi-operator v2: workers reached over SSH by FQDN through one headless service.
        let selector = json!({"training.kubeflow.org/job-name": name, "training.kubeflow.org/job-role": "worker",
                              "training.kubeflow.org/operator-name": k.operator_name});
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "ownerReferences": owner},
            "spec": {"clusterIP": "None", "selector": selector, "publishNotReadyAddresses": true}, "status": {"loadBalancer": {}}});
        let _ = store.create(
            resources::find("", "v1", "services").expect("services is served"),
            svc,
            false,
        );
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/ssh-auth",
            "metadata": {"name": format!("{name}-ssh"), "namespace": ns, "ownerReferences": owner},
            "data": {"ssh-privatekey": b64("kflow-testcluster: not a real key\n"), "ssh-publickey": b64("ssh-ed25519 AAAA kflow-testcluster\n")}});
        let _ = store.create(
            resources::find("", "v1", "secrets").expect("secrets is served"),
            secret,
            false,
        );
    }
    let slots = job["spec"]["slotsPerWorker"].as_i64().unwrap_or(1);
    let workers = types
        .iter()
        .find(|(t, _)| t == "Worker")
        .and_then(|(_, s)| s["replicas"].as_i64())
        .unwrap_or(0);
    // v1 names workers by pod name; mpi-operator v2 by FQDN through the job's service.
    let host = |i: i64| {
        if k.v2 {
            format!("{name}-worker-{i}.{name}.{ns}.svc")
        } else {
            format!("{name}-worker-{i}")
        }
    };
    let hostfile: String = (0..workers)
        .map(|i| format!("{} slots={slots}\n", host(i)))
        .collect();
    let discover: String = (0..workers)
        .map(|i| format!("echo {}:{slots}\n", host(i)))
        .collect();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": cm_name, "namespace": ns, "labels": {"training.kubeflow.org/job-name": name},
            "ownerReferences": owner},
        "data": {"hostfile": hostfile, "discover_hosts.sh": format!("#!/bin/sh\n{discover}"),
                 "kubexec.sh": "#!/bin/sh\nset -x\nPOD_NAME=$1\nshift\n/opt/kube/kubectl exec ${POD_NAME} -- /bin/sh -c \"$*\""}});
    let _ = store.create(cms, cm, false);
}

fn mount_mpi_config(spec: &mut Value, job: &str) {
    let mut volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    volumes.push(
        json!({"name": "mpi-job-config", "configMap": {"name": format!("{job}-config"), "items": [
        {"key": "kubexec.sh", "path": "kubexec.sh", "mode": 365},
        {"key": "hostfile", "path": "hostfile", "mode": 292},
        {"key": "discover_hosts.sh", "path": "discover_hosts.sh", "mode": 365}]}}),
    );
    spec["volumes"] = json!(volumes);
    for c in spec["containers"].as_array_mut().into_iter().flatten() {
        let mut mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
        mounts.push(json!({"name": "mpi-job-config", "mountPath": "/etc/mpi"}));
        c["volumeMounts"] = json!(mounts);
    }
}

/// The env vars the operator injects, per kubeflow-training-facts.md.
fn replica_env(
    res: &ResourceType,
    k: &KindSpec,
    job: &Value,
    rtype: &str,
    index: i64,
    types: &[(String, Value)],
    total: i64,
) -> Vec<(String, String)> {
    let name = job["metadata"]["name"].as_str().unwrap_or("");
    let ns = job["metadata"]["namespace"].as_str().unwrap_or("");
    let mut env = Vec::new();
    match res.plural {
        "pytorchjobs" => {
            env.push(("PYTHONUNBUFFERED".into(), "1".into()));
            let nproc = job["spec"]["nprocPerNode"]
                .as_str()
                .map(str::to_string)
                .or_else(|| job["spec"]["nprocPerNode"].as_i64().map(|n| n.to_string()));
            if let Some((_, master)) = types.iter().find(|(t, _)| t == "Master") {
                let port = container_port(k, master).to_string();
                let per_node: i64 = nproc.as_deref().and_then(|n| n.parse().ok()).unwrap_or(1);
                let rank = if rtype == "Worker" { index + 1 } else { index };
                env.push(("MASTER_PORT".into(), port.clone()));
                env.push(("PET_MASTER_PORT".into(), port));
                env.push(("MASTER_ADDR".into(), format!("{name}-master-0")));
                env.push(("PET_MASTER_ADDR".into(), format!("{name}-master-0")));
                env.push(("WORLD_SIZE".into(), (total * per_node).to_string()));
                env.push(("RANK".into(), rank.to_string()));
                env.push(("PET_NODE_RANK".into(), rank.to_string()));
            }
            if let Some(n) = nproc {
                env.push(("PET_NPROC_PER_NODE".into(), n));
            }
            env.push(("PET_NNODES".into(), total.to_string()));
        }
        "tfjobs" if total > 1 => {
            let mut cluster = Map::new();
            for (t, spec) in types {
                let port = container_port(k, spec);
                let lower = t.to_ascii_lowercase();
                let hosts: Vec<Value> = (0..spec["replicas"].as_i64().unwrap_or(1))
                    .map(|i| json!(format!("{name}-{lower}-{i}.{ns}.svc:{port}")))
                    .collect();
                cluster.insert(lower, json!(hosts));
            }
            let tf_config = json!({"cluster": cluster, "task": {"type": rtype.to_ascii_lowercase(), "index": index}, "environment": "cloud"});
            env.push(("TF_CONFIG".into(), tf_config.to_string()));
        }
        "mpijobs" if k.v2 => {
            env.push(("K_MPI_JOB_ROLE".into(), rtype.to_ascii_lowercase()));
            if rtype == "Launcher" {
                let slots = job["spec"]["slotsPerWorker"]
                    .as_i64()
                    .unwrap_or(1)
                    .to_string();
                env.push(("OMPI_MCA_orte_keep_fqdn_hostnames".into(), "true".into()));
                env.push((
                    "OMPI_MCA_orte_default_hostfile".into(),
                    "/etc/mpi/hostfile".into(),
                ));
                env.push((
                    "OMPI_MCA_plm_rsh_args".into(),
                    "-o ConnectionAttempts=10".into(),
                ));
                env.push(("OMPI_MCA_orte_set_default_slots".into(), slots));
            }
        }
        "mpijobs" if rtype == "Launcher" => {
            let has_gpu = types
                .iter()
                .find(|(t, _)| t == "Launcher")
                .is_some_and(|(_, s)| {
                    s["template"]["spec"]["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| !c["resources"]["limits"]["nvidia.com/gpu"].is_null())
                });
            if !has_gpu {
                env.push(("NVIDIA_VISIBLE_DEVICES".into(), String::new()));
                env.push(("NVIDIA_DRIVER_CAPABILITIES".into(), String::new()));
            }
            env.push((
                "OMPI_MCA_plm_rsh_agent".into(),
                "/etc/mpi/kubexec.sh".into(),
            ));
            env.push((
                "OMPI_MCA_orte_default_hostfile".into(),
                "/etc/mpi/hostfile".into(),
            ));
            env.push(("I_MPI_HYDRA_BOOTSTRAP".into(), "rsh".into()));
            env.push((
                "I_MPI_HYDRA_BOOTSTRAP_EXEC".into(),
                "/etc/mpi/kubexec.sh".into(),
            ));
        }
        _ => {}
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_env() {
        let res = resources::find("kubeflow.org", "v1", "pytorchjobs").unwrap();
        let mut job = json!({"metadata": {"name": "j", "namespace": "ns"}, "spec": {"pytorchReplicaSpecs": {
            "master": {"template": {"spec": {"containers": [{"name": "pytorch", "image": "python"}]}}},
            "Worker": {"replicas": 2, "template": {"spec": {"containers": [{"name": "pytorch", "image": "python"}]}}}}}});
        default_job(res, &mut job);
        let specs = &job["spec"]["pytorchReplicaSpecs"];
        assert_eq!(specs["Master"]["restartPolicy"], "OnFailure");
        assert_eq!(
            specs["Master"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            23456
        );
        let k = kind_spec(res).unwrap();
        let types = replica_types(&k, &job);
        let env: std::collections::HashMap<_, _> =
            replica_env(res, &k, &job, "Worker", 1, &types, 3)
                .into_iter()
                .collect();
        assert_eq!(env["RANK"], "2");
        assert_eq!(env["WORLD_SIZE"], "3");
        assert_eq!(env["MASTER_ADDR"], "j-master-0");
        assert_eq!(env["PET_NNODES"], "3");
    }
}
