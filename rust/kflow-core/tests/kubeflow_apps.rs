//! Kubeflow Pipelines and the Model Registry through the gateway as a signed-in user, against
//! kflow-testcluster started in-process (realm, gateway and both apps; secrets in the memory
//! store): upload, versions, runs followed to the end, paging, registration, and the errors a
//! user meets (taken names, bad parameters and files, apps that are not installed).

use std::path::PathBuf;

use kflow_core::auth::{Credentials, Endpoints, SecretStore, Session};
use kflow_core::{
    AppError, Error, ErrorKind, ModelRegistry, PageRequest, Pipelines, RegisterRequest, RunRequest,
    RunState, UploadRequest,
};
use kflow_testcluster::cluster::{self, Options, Running};
use kflow_testcluster::components::Component;
use kflow_testcluster::idp::{IdpConfig, IdpUser};
use serde_json::json;
use zeroize::Zeroizing;

const PASSWORD: &str = "kflow-sentinel-Pa55-apps";
const NS: &str = "kubeflow-user-example-com";

const PIPELINE: &str = "\
pipelineInfo:
  name: add-numbers
root:
  dag:
    tasks: {}
  inputDefinitions:
    parameters:
      a:
        parameterType: NUMBER_INTEGER
      scale:
        parameterType: NUMBER_DOUBLE
        defaultValue: 1.0
schemaVersion: 2.1.0
sdkVersion: kfp-2.9.0
";

struct Deployment {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    ca: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.stop());
        }
    }
}

fn deployment(without: Vec<Component>) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(dir.path().join("cluster"));
    opts.gateway_port = Some(0);
    opts.without = without;
    opts.idp = Some(IdpConfig {
        users: vec![IdpUser {
            username: "user@example.com".into(),
            password: PASSWORD.into(),
            email: "user@example.com".into(),
            namespaces: vec![NS.into()],
            ..IdpUser::default()
        }],
        ..IdpConfig::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let running = rt
        .block_on(cluster::start(opts))
        .expect("test cluster starts");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, running.ca_pem.as_deref().unwrap()).unwrap();
    Deployment {
        rt,
        running: Some(running),
        ca,
        dir,
    }
}

impl Deployment {
    fn session(&self) -> Session {
        let running = self.running.as_ref().unwrap();
        let mut ep = Endpoints::new(running.gateway_url.as_deref().unwrap()).unwrap();
        ep.ca_file = Some(self.ca.clone());
        ep.api_server = running.base_url();
        let creds = Credentials {
            username: "user@example.com".into(),
            password: Zeroizing::new(PASSWORD.into()),
        };
        let state = self.dir.path().join("state");
        Session::login(ep, creds, false, SecretStore::memory(), &state).expect("login")
    }

    fn pipeline_file(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join(format!("p{}.yaml", text.len()));
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn app_error(e: Error) -> AppError {
    match e {
        Error::App(a) => a,
        other => panic!("not an app error: {other}"),
    }
}

#[test]
fn upload_run_follow_and_page_through_pipelines() {
    let d = deployment(Vec::new());
    let kfp = Pipelines::new(d.session());
    let file = d.pipeline_file(PIPELINE);
    let uploaded = kfp
        .upload(&UploadRequest {
            path: file.clone(),
            description: Some("adds".into()),
            ..Default::default()
        })
        .expect("upload");
    assert_eq!(uploaded.pipeline.name, "add-numbers");
    assert_eq!(uploaded.pipeline.namespace.as_deref(), Some(NS));
    let again = kfp.upload(&UploadRequest {
        path: file.clone(),
        ..Default::default()
    });
    let taken = again.unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict);
    assert!(taken.to_string().contains("--version"), "{taken}");
    let v2 = kfp
        .upload(&UploadRequest {
            path: file.clone(),
            version: Some("v2".into()),
            ..Default::default()
        })
        .expect("new version");
    assert_eq!(v2.pipeline.id, uploaded.pipeline.id);
    let versions = kfp
        .list_versions("add-numbers", None, &PageRequest::default())
        .unwrap();
    let names: Vec<&str> = versions.items.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["v2", "add-numbers"], "newest first");

    let first = kfp
        .start_run(&RunRequest {
            pipeline: "add-numbers".into(),
            parameters: json!({"a": "3"}).as_object().unwrap().clone(),
            ..Default::default()
        })
        .expect("run starts");
    assert_eq!(
        first.parameters["a"],
        json!(3),
        "text typed as the pipeline declares"
    );
    assert_eq!(
        first.pipeline_version_id.as_deref(),
        Some(v2.version.id.as_str())
    );
    let mut seen = Vec::new();
    let done = kfp
        .follow_run(&first.id, None, &mut || false, &mut |r| seen.push(r.state))
        .unwrap()
        .expect("not interrupted");
    assert_eq!(done.state, RunState::Succeeded);
    assert_eq!(
        seen.last(),
        Some(&RunState::Succeeded),
        "every change is reported: {seen:?}"
    );
    assert!(done.finished_at.is_some());
    let states: Vec<RunState> = done.history.iter().map(|h| h.state).collect();
    assert_eq!(
        states,
        [RunState::Pending, RunState::Running, RunState::Succeeded]
    );

    let second = kfp
        .start_run(&RunRequest {
            pipeline: uploaded.pipeline.id.clone(),
            version: Some(uploaded.version.name.clone()),
            experiment: Some("nightly".into()),
            name: Some("second".into()),
            parameters: json!({"a": 1, "scale": "0.5"}).as_object().unwrap().clone(),
            ..Default::default()
        })
        .unwrap();
    let interrupted = kfp
        .follow_run(&second.id, None, &mut || true, &mut |_| {})
        .unwrap();
    assert!(interrupted.is_none());
    let experiments = kfp.list_experiments(None, &PageRequest::default()).unwrap();
    let mut names: Vec<String> = experiments.items.into_iter().map(|e| e.name).collect();
    names.sort();
    assert_eq!(names, ["Default", "nightly"]);
    let one = PageRequest {
        limit: Some(1),
        cursor: None,
    };
    let page1 = kfp.list_runs(None, None, &one).unwrap();
    assert_eq!(page1.items[0].name, "second", "newest first");
    assert_eq!(page1.total, Some(2));
    let page2 = kfp
        .list_runs(
            None,
            None,
            &PageRequest {
                limit: Some(1),
                cursor: page1.next.clone(),
            },
        )
        .unwrap();
    assert_eq!(page2.items[0].id, first.id);
    assert!(page2.next.is_none());
    let nightly = kfp
        .list_runs(None, Some("nightly"), &PageRequest::default())
        .unwrap();
    assert_eq!(nightly.items.len(), 1);
}

#[test]
fn what_users_get_wrong_is_a_clear_error() {
    let d = deployment(Vec::new());
    let kfp = Pipelines::new(d.session());
    let not_compiled = d.pipeline_file("name: add\nsteps: []\n");
    let e = kfp
        .upload(&UploadRequest {
            path: not_compiled,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(
        matches!(app_error(e), AppError::InvalidPipelineFile { problem, .. } if problem.contains("pipelineInfo"))
    );
    kfp.upload(&UploadRequest {
        path: d.pipeline_file(PIPELINE),
        ..Default::default()
    })
    .unwrap();
    let run = |params: serde_json::Value| {
        kfp.start_run(&RunRequest {
            pipeline: "add-numbers".into(),
            parameters: params.as_object().unwrap().clone(),
            ..Default::default()
        })
        .unwrap_err()
    };
    let text = run(json!({"a": "three"}));
    assert_eq!(text.kind(), ErrorKind::Validation);
    assert!(
        text.to_string()
            .contains("pipeline add-numbers declares a as NUMBER_INTEGER"),
        "{text}"
    );
    let typed = run(json!({"a": [1]}));
    assert_eq!(typed.kind(), ErrorKind::Validation);
    assert!(
        matches!(app_error(typed), AppError::Refused { code: 400, message, .. } if message.contains("input parameter a requires type double or integer"))
    );
    let unknown = kfp
        .start_run(&RunRequest {
            pipeline: "no-such-pipeline".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);
    assert!(
        unknown.to_string().contains("kflow pipelines list"),
        "{unknown}"
    );
    let other_ns = kfp
        .list_experiments(Some("someone-else"), &PageRequest::default())
        .unwrap_err();
    assert!(matches!(
        app_error(other_ns),
        AppError::Refused { code: 403, .. }
    ));
}

#[test]
fn register_and_list_models() {
    let d = deployment(Vec::new());
    let registry = ModelRegistry::new(d.session());
    let request = RegisterRequest {
        model: "mnist".into(),
        version: "v1".into(),
        uri: "s3://models/mnist/1".into(),
        format_name: "onnx".into(),
        format_version: Some("1".into()),
        description: Some("first".into()),
        metadata: json!({"accuracy": 0.93, "epochs": 3, "framework": "pytorch"})
            .as_object()
            .unwrap()
            .clone(),
        ..Default::default()
    };
    let made = registry.register(&request).expect("registered");
    assert!(made.model_created);
    assert_eq!(made.version.author.as_deref(), Some("user@example.com"));
    assert_eq!(made.version.metadata["epochs"], json!(3));
    assert_eq!(made.artifact.uri.as_deref(), Some("s3://models/mnist/1"));
    let taken = registry.register(&request).unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict);
    let second = registry
        .register(&RegisterRequest {
            version: "v2".into(),
            metadata: Default::default(),
            ..request.clone()
        })
        .unwrap();
    assert!(!second.model_created);
    assert_eq!(second.model.id, made.model.id);
    let models = registry.list_models(&PageRequest::default()).unwrap();
    assert_eq!(models.items.len(), 1);
    let versions = registry
        .list_versions(
            "mnist",
            &PageRequest {
                limit: Some(1),
                cursor: None,
            },
        )
        .unwrap();
    assert_eq!(versions.items[0].name, "v1");
    let rest = registry
        .list_versions(
            "mnist",
            &PageRequest {
                limit: Some(1),
                cursor: versions.next,
            },
        )
        .unwrap();
    assert_eq!(rest.items[0].name, "v2");
    assert!(rest.next.is_none());
    let artifacts = registry
        .list_artifacts("mnist", "v2", &PageRequest::default())
        .unwrap();
    assert_eq!(artifacts.items[0].format_name.as_deref(), Some("onnx"));
    let missing = registry
        .list_versions("nope", &PageRequest::default())
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}

#[test]
fn apps_that_are_not_installed_say_so() {
    let d = deployment(vec![Component::Pipelines, Component::ModelRegistry]);
    let session = d.session();
    let kfp = Pipelines::new(session.clone())
        .list_pipelines(None, &PageRequest::default())
        .unwrap_err();
    assert_eq!(
        kfp.problem(),
        format!(
            "Kubeflow Pipelines is not installed in this deployment ({} has no Kubeflow Pipelines API)",
            session.endpoints().url
        )
    );
    assert!(kfp.fix().unwrap().contains("administrator"));
    let registry = ModelRegistry::new(session)
        .list_models(&PageRequest::default())
        .unwrap_err();
    assert!(
        matches!(app_error(registry), AppError::NotInstalled { .. }),
        "a 404 from the gateway, not the registry's own"
    );
}
