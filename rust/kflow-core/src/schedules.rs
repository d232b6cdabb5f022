//! Schedules: a run's pod on a cron schedule, as a Kubernetes CronJob, so it runs while nobody
//! is connected. The CronJob owns everything it needs — the code ConfigMaps and a claim the
//! runs write their outputs to — so deleting it leaves nothing. A run's outputs wait on the
//! claim until [`Schedule::collect`] moves them here through a short-lived reader pod (owned by
//! the CronJob too, so even a reader whose collector died goes with it).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{CronJob, Job as BatchJob};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde_json::json;

use crate::backend::cluster::api_errors::{api_error, status_code};
use crate::backend::cluster::files::ExecTarget;
use crate::backend::cluster::retry::retry;
use crate::backend::cluster::submit::owned_by;
use crate::backend::cluster::ClusterBackend;
use crate::backend::files::CopiedFiles;
use crate::backend::packaging::{self, Destination};
use crate::error::{Error, ResourceError, Result};
use crate::manifest::cron_job::{
    build_schedule, outputs_claim_name, ScheduleManifests, Timing, OUTPUTS_MOUNT, SCHEDULE_LABEL,
};
use crate::manifest::{MANAGED_BY, SCRIPT_ANNOTATION};
use crate::spec::{validate, BackendKind, JobKind, RunOptions};
use crate::status::Phase;
use crate::Client;

/// Size of a schedule's outputs claim when the request does not say.
pub const DEFAULT_OUTPUTS_SIZE: &str = "1Gi";
/// How long a reader pod may take to start before collecting gives up.
const READER_START: Duration = Duration::from_secs(120);
/// How long `delete(wait)` waits for the garbage collector.
const OWNED_GONE_WAIT: Duration = Duration::from_secs(60);
/// A reader pod ends itself after this, should its collector die.
const READER_LIFETIME_SECONDS: i64 = 900;

/// When and how a schedule runs, besides the run options.
#[derive(Debug, Clone, Default)]
pub struct ScheduleRequest {
    /// The cron expression: five fields (`0 6 * * 1-5`) or `@hourly`, `@daily`, …
    pub cron: String,
    /// The IANA time zone the expression is read in; `None`: the cluster's (UTC).
    pub timezone: Option<String>,
    /// Create it paused.
    pub suspend: bool,
    /// The outputs claim's size; `None`: [`DEFAULT_OUTPUTS_SIZE`].
    pub outputs_size: Option<String>,
    /// How long a run may take before Kubernetes ends it; `None`: no limit.
    pub timeout_seconds: Option<u64>,
}

/// What changes on a schedule; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ScheduleUpdate {
    /// A new cron expression.
    pub cron: Option<String>,
    /// A new time zone; `Some(None)` goes back to the cluster's.
    pub timezone: Option<Option<String>>,
    /// Pause (`true`) or resume (`false`).
    pub suspend: Option<bool>,
}

/// A schedule as the cluster has it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScheduleInfo {
    /// The schedule's (and CronJob's) name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The cron expression.
    pub cron: String,
    /// The time zone, when one is set.
    pub timezone: Option<String>,
    /// Whether it is paused.
    pub suspended: bool,
    /// When it last fired (RFC 3339), if ever.
    pub last_schedule_time: Option<String>,
    /// The script each run starts.
    pub script: String,
    /// The image each run runs in.
    pub image: String,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
}

/// One run of a schedule: a batch Job the CronJob made (or [`Schedule::trigger`] did).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScheduledRun {
    /// The run's name (its Job's), also the name of its outputs folder.
    pub name: String,
    /// Pending, Running, Succeeded or Failed.
    pub phase: Phase,
    /// Why it failed, the way kflow says it for jobs: `OOMKilled`, `Error`, `DeadlineExceeded`.
    pub reason: Option<String>,
    /// More words on that.
    pub message: Option<String>,
    /// When its Job started (RFC 3339).
    pub started_at: Option<String>,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
    /// Started by hand, not by the schedule.
    pub manual: bool,
}

/// A run's outputs, collected.
#[derive(Debug, Clone, Serialize)]
pub struct CollectedRun {
    /// The run.
    pub run: String,
    /// What arrived (under `dest/<run>`); empty when the run wrote nothing.
    pub copied: CopiedFiles,
}

/// A handle on one schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    backend: Arc<ClusterBackend>,
    cron_job: CronJob,
    info: ScheduleInfo,
    warnings: Vec<String>,
}

fn is_kflows(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY))
        .is_some_and(|v| v == "kflow")
}

fn info_of(cron_job: &CronJob) -> ScheduleInfo {
    let spec = cron_job.spec.clone().unwrap_or_default();
    let image = spec
        .job_template
        .spec
        .as_ref()
        .and_then(|j| j.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    ScheduleInfo {
        name: cron_job.metadata.name.clone().unwrap_or_default(),
        namespace: cron_job.metadata.namespace.clone().unwrap_or_default(),
        cron: spec.schedule,
        timezone: spec.time_zone,
        suspended: spec.suspend.unwrap_or(false),
        last_schedule_time: cron_job
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0.to_string()),
        script: cron_job
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SCRIPT_ANNOTATION))
            .cloned()
            .unwrap_or_default(),
        image,
        created_at: cron_job
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
    }
}

fn not_found(name: &str, namespace: &str) -> Error {
    Error::Resource(ResourceError::NotFound {
        kind: "schedule",
        name: name.to_string(),
        namespace: namespace.to_string(),
        fix: "`kflow.schedules()` lists the schedules kflow made in this namespace".into(),
    })
}

impl Client {
    /// Checks, packages and creates a schedule of the run `opts` describes: a CronJob that
    /// starts the run's pod at each time `request.cron` names. The run options are the ones
    /// `submit` takes (a scheduled run is one pod: one worker, no distributed kinds); nothing
    /// is created when any is wrong, and nothing is left when a step fails.
    pub fn schedule(&self, mut opts: RunOptions, request: ScheduleRequest) -> Result<Schedule> {
        if opts.backend == Some(BackendKind::Local) {
            return Err(Error::invalid(
                "backend",
                "local",
                "a schedule is a Kubernetes CronJob and runs on the cluster",
                "leave the backend out; on this machine, run it when it is due (jupyter-scheduler's own schedules do)",
            ));
        }
        opts.backend = Some(BackendKind::Cluster);
        validate::cron_schedule(&request.cron)?;
        if let Some(tz) = &request.timezone {
            validate::timezone(tz)?;
        }
        let outputs_size = request
            .outputs_size
            .clone()
            .unwrap_or_else(|| DEFAULT_OUTPUTS_SIZE.to_string());
        validate::memory("outputs size", &outputs_size)?;
        if request.timeout_seconds == Some(0) {
            return Err(Error::invalid(
                "timeout",
                "0",
                "a run needs more than 0 seconds",
                "give a positive number of seconds, or none for no limit",
            ));
        }
        let spec = self.resolve(opts)?;
        if spec.workers != 1 || spec.kind != JobKind::PyTorchJob {
            return Err(Error::invalid(
                "workers",
                spec.workers.to_string(),
                format!(
                    "a scheduled run is one pod (a CronJob makes batch Jobs), not a {} of {} replicas",
                    spec.kind.as_str(),
                    spec.workers
                ),
                "schedule it with one worker and the default kind",
            ));
        }
        let scratch = std::env::temp_dir().join(format!(
            "kflow-schedule-{}-{}",
            std::process::id(),
            spec.run_id
        ));
        let path = scratch.join("code.tar.gz");
        let packed = packaging::package(&spec, &path, Destination::Cluster).and_then(|archive| {
            let bytes = std::fs::read(&path).map_err(Error::io("reading", &path))?;
            let code = packaging::code_payload(&spec, bytes, &archive.sha256)?;
            Ok((code, archive.withheld))
        });
        let _ = std::fs::remove_dir_all(&scratch);
        let (code, withheld) = packed?;
        let timing = Timing {
            cron: request.cron.trim().to_string(),
            timezone: request.timezone.clone(),
            suspend: request.suspend,
            outputs_size,
            timeout_seconds: request
                .timeout_seconds
                .map(|t| t.min(i64::MAX as u64) as i64),
        };
        let manifests = build_schedule(&spec, &code, &timing);
        let backend = self.cluster_backend()?;
        let namespace = backend.namespace_for(&spec);
        let cron_job = backend.block_on(create(&backend, &namespace, &manifests))?;
        let mut schedule = Schedule::new(backend, cron_job);
        schedule.warnings = crate::artifacts::withheld_warning(&withheld)
            .into_iter()
            .collect();
        Ok(schedule)
    }

    /// The schedule `name` kflow made in `namespace` (default: the connection's).
    pub fn get_schedule(&self, name: &str, namespace: Option<&str>) -> Result<Schedule> {
        let (backend, ns) = self.schedules_namespace(namespace)?;
        if validate::job_name(name).is_err() {
            return Err(not_found(name, &ns));
        }
        let api: Api<CronJob> = Api::namespaced(backend.client().clone(), &ns);
        let found = backend
            .block_on(retry(|| api.get_opt(name)))
            .map_err(|e| api_error(e, "get", "cronjobs", &ns))?;
        match found {
            Some(cj) if is_kflows(&cj.metadata) => Ok(Schedule::new(backend, cj)),
            _ => Err(not_found(name, &ns)),
        }
    }

    /// Every schedule kflow made in `namespace` (default: the connection's), by name.
    pub fn schedules(&self, namespace: Option<&str>) -> Result<Vec<ScheduleInfo>> {
        let (backend, ns) = self.schedules_namespace(namespace)?;
        let api: Api<CronJob> = Api::namespaced(backend.client().clone(), &ns);
        let lp = ListParams::default().labels(&format!("{MANAGED_BY}=kflow"));
        let list = backend
            .block_on(retry(|| api.list(&lp)))
            .map_err(|e| api_error(e, "list", "cronjobs", &ns))?;
        let mut out: Vec<ScheduleInfo> = list.items.iter().map(info_of).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

impl Client {
    fn schedules_namespace(
        &self,
        namespace: Option<&str>,
    ) -> Result<(Arc<ClusterBackend>, String)> {
        if let Some(ns) = namespace {
            validate::namespace(ns)?;
        }
        let backend = self.cluster_backend()?;
        let ns = namespace.map_or_else(|| backend.namespace.clone(), str::to_string);
        Ok((backend, ns))
    }
}

/// Creates the CronJob paused (no run may start before its code exists), then what it owns,
/// then resumes it as asked. A failure removes the CronJob and with it whatever was made.
async fn create(backend: &ClusterBackend, ns: &str, m: &ScheduleManifests) -> Result<CronJob> {
    let client = backend.client();
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), ns);
    let name = m.cron_job.metadata.name.clone().unwrap_or_default();
    let mut paused = m.cron_job.clone();
    let suspend = paused
        .spec
        .as_ref()
        .and_then(|s| s.suspend)
        .unwrap_or(false);
    if let Some(spec) = paused.spec.as_mut() {
        spec.suspend = Some(true);
    }
    let pp = PostParams::default();
    let created = match retry(|| cron_jobs.create(&pp, &paused)).await {
        Ok(created) => created,
        Err(e) if status_code(&e) == Some(409) => {
            return Err(Error::Resource(ResourceError::Exists {
                kind: "schedule",
                name,
                namespace: ns.to_string(),
            }))
        }
        Err(e) => return Err(refused(e, "create", ns)),
    };
    let owner = owner_of(&created);
    let rest = async {
        if let Some(pvc) = &m.pip_cache {
            crate::backend::cluster::submit::ensure_pip_cache(client, ns, pvc).await?;
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let claim = owned_by(&m.outputs, &owner);
        let codes: Vec<ConfigMap> = std::iter::once(&m.code)
            .chain(&m.code_parts)
            .map(|cm| owned_by(cm, &owner))
            .collect();
        let pp = PostParams::default();
        let claim = async {
            retry(|| claims.create(&pp, &claim))
                .await
                .map_err(|e| api_error(e, "create", "persistentvolumeclaims", ns))
                .map(|_| ())
        };
        let codes = futures::future::join_all(codes.iter().map(|cm| async {
            retry(|| cms.create(&pp, cm))
                .await
                .map_err(|e| api_error(e, "create", "configmaps", ns))
                .map(|_| ())
        }));
        let (claim, codes) = futures::join!(claim, codes);
        claim?;
        codes.into_iter().collect::<Result<Vec<()>>>()?;
        if !suspend {
            set_suspend(&cron_jobs, &name, false, ns).await?;
        }
        retry(|| cron_jobs.get(&name))
            .await
            .map_err(|e| api_error(e, "get", "cronjobs", ns))
    };
    match rest.await {
        Ok(cron_job) => Ok(cron_job),
        Err(e) => {
            let _ = cron_jobs.delete(&name, &DeleteParams::background()).await;
            Err(e)
        }
    }
}

/// The API server's refusal of a CronJob: a 422 is about what the user gave (a time zone its
/// database lacks, say), so it reads as bad input, with the API server's words.
fn refused(e: kube::Error, verb: &str, ns: &str) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 422 => Error::invalid(
            "schedule",
            s.details
                .as_ref()
                .map(|d| d.name.clone())
                .unwrap_or_default(),
            format!("the cluster refused it: {}", s.message),
            "use five cron fields and a time zone name the cluster knows (IANA, e.g. \"Europe/Berlin\")",
        ),
        e => api_error(e, verb, "cronjobs", ns),
    }
}

fn owner_of(cron_job: &CronJob) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".into(),
        kind: "CronJob".into(),
        name: cron_job.metadata.name.clone().unwrap_or_default(),
        uid: cron_job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(false),
        block_owner_deletion: Some(false),
    }
}

async fn set_suspend(api: &Api<CronJob>, name: &str, suspend: bool, ns: &str) -> Result<()> {
    let patch = json!({ "spec": { "suspend": suspend } });
    let (pp, patch) = (PatchParams::default(), Patch::Merge(&patch));
    retry(|| api.patch(name, &pp, &patch))
        .await
        .map(|_| ())
        .map_err(|e| api_error(e, "patch", "cronjobs", ns))
}

impl Schedule {
    fn new(backend: Arc<ClusterBackend>, cron_job: CronJob) -> Schedule {
        Schedule {
            info: info_of(&cron_job),
            backend,
            cron_job,
            warnings: Vec::new(),
        }
    }

    /// What the user should know about how it was made: files left out of its code as
    /// credentials.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The schedule as last read.
    pub fn info(&self) -> &ScheduleInfo {
        &self.info
    }

    fn ns(&self) -> &str {
        &self.info.namespace
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.backend.client().clone(), self.ns())
    }

    /// Reads the schedule again (its last run time, a change made elsewhere).
    pub fn refresh(&mut self) -> Result<&ScheduleInfo> {
        let api: Api<CronJob> = self.api();
        let found = self
            .backend
            .block_on(retry(|| api.get_opt(&self.info.name)))
            .map_err(|e| api_error(e, "get", "cronjobs", self.ns()))?;
        let cron_job = found.ok_or_else(|| not_found(&self.info.name, self.ns()))?;
        *self = Schedule::new(self.backend.clone(), cron_job);
        Ok(&self.info)
    }

    /// Changes when it runs, or pauses or resumes it; each value is checked first.
    pub fn update(&mut self, update: ScheduleUpdate) -> Result<&ScheduleInfo> {
        let mut spec = serde_json::Map::new();
        if let Some(cron) = &update.cron {
            validate::cron_schedule(cron)?;
            spec.insert("schedule".into(), json!(cron.trim()));
        }
        if let Some(tz) = &update.timezone {
            if let Some(tz) = tz {
                validate::timezone(tz)?;
            }
            spec.insert("timeZone".into(), json!(tz));
        }
        if let Some(suspend) = update.suspend {
            spec.insert("suspend".into(), json!(suspend));
        }
        if spec.is_empty() {
            return Ok(&self.info);
        }
        let api: Api<CronJob> = self.api();
        let patch = json!({ "spec": spec });
        let (pp, patch) = (PatchParams::default(), Patch::Merge(&patch));
        let patched = self
            .backend
            .block_on(retry(|| api.patch(&self.info.name, &pp, &patch)))
            .map_err(|e| match status_code(&e) {
                Some(404) => not_found(&self.info.name, self.ns()),
                _ => refused(e, "patch", self.ns()),
            })?;
        *self = Schedule::new(self.backend.clone(), patched);
        Ok(&self.info)
    }

    /// Starts a run now, as `kubectl create job --from=cronjob/NAME` does: a Job from the
    /// schedule's template, owned by it. Returns the run's name.
    pub fn trigger(&self) -> Result<String> {
        let spec = self.cron_job.spec.clone().unwrap_or_default();
        let template = spec.job_template;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let name = format!("{}-m{stamp:x}", self.info.name);
        let mut meta = template.metadata.unwrap_or_default();
        meta.name = Some(name.clone());
        meta.namespace = Some(self.info.namespace.clone());
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert("cronjob.kubernetes.io/instantiate".into(), "manual".into());
        let mut owner = owner_of(&self.cron_job);
        owner.controller = Some(true);
        meta.owner_references = Some(vec![owner]);
        let job = BatchJob {
            metadata: meta,
            spec: template.spec,
            ..Default::default()
        };
        let api: Api<BatchJob> = self.api();
        let pp = PostParams::default();
        self.backend
            .block_on(retry(|| api.create(&pp, &job)))
            .map_err(|e| api_error(e, "create", "jobs", self.ns()))?;
        Ok(name)
    }

    /// Its runs the cluster still keeps (the CronJob keeps the last
    /// [`crate::manifest::cron_job::RUN_HISTORY`] of each outcome), oldest first.
    pub fn runs(&self) -> Result<Vec<ScheduledRun>> {
        let uid = self.cron_job.metadata.uid.clone().unwrap_or_default();
        let selector = format!("{SCHEDULE_LABEL}={}", self.info.name);
        let lp = ListParams::default().labels(&selector);
        let jobs: Api<BatchJob> = self.api();
        let pods: Api<Pod> = self.api();
        let (jobs, pods) = self
            .backend
            .block_on(async { futures::join!(retry(|| jobs.list(&lp)), retry(|| pods.list(&lp))) });
        let jobs = jobs.map_err(|e| api_error(e, "list", "jobs", self.ns()))?;
        let pods = pods.map_err(|e| api_error(e, "list", "pods", self.ns()))?;
        let mut runs: Vec<ScheduledRun> = jobs
            .items
            .iter()
            .filter(|j| {
                j.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == uid)
            })
            .map(|j| run_of(j, &pods.items))
            .collect();
        runs.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.name.cmp(&b.name)));
        Ok(runs)
    }

    /// Moves the outputs of `runs` from the schedule's claim to `dest/<run>/` through one
    /// reader pod, which is deleted afterwards. A run that wrote nothing yields an empty copy.
    /// A run's folder is removed from the claim only once it arrived here whole.
    pub fn collect(&self, runs: &[String], dest: &Path) -> Result<Vec<CollectedRun>> {
        for run in runs {
            validate_run_name(run)?;
        }
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let pods: Api<Pod> = self.api();
        let reader = self.reader_pod();
        let name = reader.metadata.name.clone().unwrap_or_default();
        self.backend.block_on(async {
            let pp = PostParams::default();
            retry(|| pods.create(&pp, &reader))
                .await
                .map_err(|e| api_error(e, "create", "pods", self.ns()))?;
            let copied = self.copy_runs(&pods, &name, runs, dest).await;
            let gone = DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::background()
            };
            let _ = pods.delete(&name, &gone).await;
            copied
        })
    }

    async fn copy_runs(
        &self,
        pods: &Api<Pod>,
        reader: &str,
        runs: &[String],
        dest: &Path,
    ) -> Result<Vec<CollectedRun>> {
        self.wait_running(pods, reader).await?;
        let target = ExecTarget {
            pods: pods.clone(),
            pod: reader.to_string(),
            container: "reader".into(),
            owner: self.info.name.clone(),
            replica: "reader".into(),
        };
        let mut out = Vec::new();
        for run in runs {
            let folder = format!("{OUTPUTS_MOUNT}/{run}");
            let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
            let exists = target.exec(&argv(&["test", "-d", &folder])).await?;
            let copied = if exists.exit_code == 0 {
                let copied = target.copy_from(&folder, &dest.join(run)).await?;
                target.exec(&argv(&["rm", "-rf", "--", &folder])).await?;
                copied
            } else {
                CopiedFiles::default()
            };
            out.push(CollectedRun {
                run: run.clone(),
                copied,
            });
        }
        Ok(out)
    }

    async fn wait_running(&self, pods: &Api<Pod>, reader: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            let pod = retry(|| pods.get(reader))
                .await
                .map_err(|e| api_error(e, "get", "pods", self.ns()))?;
            let status = pod.status.unwrap_or_default();
            let phase = status.phase.unwrap_or_else(|| "Pending".into());
            if phase == "Running" {
                return Ok(());
            }
            let waiting = status
                .container_statuses
                .iter()
                .flatten()
                .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
            let unschedulable = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                .and_then(|c| c.message.clone());
            let state = waiting.or(unschedulable).unwrap_or(phase.clone());
            if phase != "Pending" || started.elapsed() > READER_START {
                return Err(Error::Resource(ResourceError::Stuck {
                    what: "the reader pod",
                    name: reader.to_string(),
                    reason: state,
                    fix: format!(
                        "it mounts the claim {} with the schedule's image; see `kubectl describe pod {reader}`",
                        outputs_claim_name(&self.info.name)
                    ),
                }));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A pod that only holds the outputs claim open for exec, in the schedule's own image
    /// (already on the cluster's nodes), ending itself should nobody delete it.
    fn reader_pod(&self) -> Pod {
        let template = self
            .cron_job
            .spec
            .as_ref()
            .and_then(|s| s.job_template.spec.as_ref())
            .and_then(|j| j.template.spec.clone())
            .unwrap_or_default();
        let image = self.info.image.clone();
        let name = format!("{}-reader-{}", self.info.name, crate::spec::random_id(6));
        let mut labels = std::collections::BTreeMap::new();
        labels.insert(MANAGED_BY.to_string(), "kflow".to_string());
        labels.insert(
            SCHEDULE_LABEL.to_string(),
            format!("{}-reader", self.info.name),
        );
        Pod {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(self.info.namespace.clone()),
                labels: Some(labels),
                annotations: Some(
                    [("sidecar.istio.io/inject".to_string(), "false".to_string())].into(),
                ),
                owner_references: Some(vec![owner_of(&self.cron_job)]),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                active_deadline_seconds: Some(READER_LIFETIME_SECONDS),
                termination_grace_period_seconds: Some(0),
                image_pull_secrets: template.image_pull_secrets,
                containers: vec![Container {
                    name: "reader".into(),
                    image: Some(image),
                    command: Some(vec![
                        "sh".into(),
                        "-c".into(),
                        format!("exec sleep {READER_LIFETIME_SECONDS}"),
                    ]),
                    volume_mounts: Some(vec![VolumeMount {
                        name: "outputs".into(),
                        mount_path: OUTPUTS_MOUNT.into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                volumes: Some(vec![Volume {
                    name: "outputs".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: outputs_claim_name(&self.info.name),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Removes one run (its Job and pods) once its outputs are collected.
    pub fn delete_run(&self, run: &str) -> Result<()> {
        validate_run_name(run)?;
        let api: Api<BatchJob> = self.api();
        let background = DeleteParams::background();
        match self
            .backend
            .block_on(retry(|| api.delete(run, &background)))
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(api_error(e, "delete", "jobs", self.ns())),
        }
    }

    /// Deletes the schedule and everything it owns: its runs, their pods, the code and the
    /// outputs claim with whatever was not collected. With `wait`, returns once the garbage
    /// collector has removed the code and the claim, so a schedule of the same name can be made
    /// again at once.
    pub fn delete(self, wait: bool) -> Result<()> {
        let api: Api<CronJob> = self.api();
        let background = DeleteParams::background();
        match self
            .backend
            .block_on(retry(|| api.delete(&self.info.name, &background)))
        {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(api_error(e, "delete", "cronjobs", self.ns())),
        }
        if wait {
            self.backend.block_on(self.owned_gone())?;
        }
        Ok(())
    }

    async fn owned_gone(&self) -> Result<()> {
        let claims: Api<PersistentVolumeClaim> = self.api();
        let code: Api<ConfigMap> = self.api();
        let claim = outputs_claim_name(&self.info.name);
        let code_name = crate::manifest::code_configmap_name(&self.info.name);
        let started = Instant::now();
        loop {
            let (c, m) = futures::join!(claims.get_opt(&claim), code.get_opt(&code_name));
            let left = [
                c.ok().flatten().map(|_| claim.clone()),
                m.ok().flatten().map(|_| code_name.clone()),
            ];
            let left: Vec<String> = left.into_iter().flatten().collect();
            if left.is_empty() {
                return Ok(());
            }
            if started.elapsed() > OWNED_GONE_WAIT {
                return Err(Error::Resource(ResourceError::NotGone {
                    owner: format!("the schedule {}", self.info.name),
                    owned: left.join(" and "),
                    seconds: OWNED_GONE_WAIT.as_secs(),
                }));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A run name as the CronJob controller makes them (`<schedule>-<minutes>`): a DNS label, so
/// it is also a safe folder name.
fn validate_run_name(run: &str) -> Result<()> {
    let ok = !run.is_empty()
        && run.len() <= 63
        && run.starts_with(|c: char| c.is_ascii_lowercase())
        && run
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        "run",
        run,
        "not the name of a scheduled run",
        "use a name `Schedule.runs()` lists",
    ))
}

fn run_of(job: &BatchJob, pods: &[Pod]) -> ScheduledRun {
    let name = job.metadata.name.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let condition = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == kind && c.status == "True")
            .cloned()
    };
    let (complete, failed) = (condition("Complete"), condition("Failed"));
    let pod = pods
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("job-name"))
                .is_some_and(|n| *n == name)
        })
        .max_by_key(|p| p.metadata.creation_timestamp.clone());
    let terminated = pod
        .and_then(|p| {
            p.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()
                .cloned()
        })
        .and_then(|c| c.state?.terminated);
    let (phase, reason, message, finished) = if let Some(c) = complete {
        (Phase::Succeeded, None, None, c.last_transition_time)
    } else if let Some(c) = failed {
        // The container's own end says more than the Job's BackoffLimitExceeded.
        let (reason, message) = match &terminated {
            Some(t) if t.reason.as_deref() == Some("OOMKilled") => (
                t.reason.clone(),
                Some(format!("the run was killed for using more memory than its limit (exit code {}): raise memory= or use less", t.exit_code)),
            ),
            Some(t) if t.reason.as_deref().is_some_and(|r| r != "Completed") => {
                (t.reason.clone(), Some(format!("exit code {}", t.exit_code)))
            }
            _ => (c.reason.clone(), c.message.clone()),
        };
        (Phase::Failed, reason, message, c.last_transition_time)
    } else if status.ready.unwrap_or(0) > 0
        || pod
            .and_then(|p| p.status.as_ref()?.phase.clone())
            .is_some_and(|p| p == "Running")
    {
        (Phase::Running, None, None, None)
    } else {
        (Phase::Pending, None, None, None)
    };
    ScheduledRun {
        name,
        phase,
        reason,
        message,
        started_at: status.start_time.map(|t| t.0.to_string()),
        finished_at: finished.or(status.completion_time).map(|t| t.0.to_string()),
        manual: job
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("cronjob.kubernetes.io/instantiate"))
            .is_some_and(|v| v == "manual"),
    }
}
