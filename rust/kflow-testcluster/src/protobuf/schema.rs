//! Message schemas for the workload kinds typed clients send as protobuf (`kubectl create job
//! --from=cronjob/…`, `kubectl create cronjob`): Job and CronJob down to the pod template,
//! field numbers as in k8s.io/api v0.33's generated.proto. Decoding is by schema into the JSON
//! the API serves; a field this table lacks is refused by number, never dropped, so an object
//! is stored whole or not at all.

use serde_json::{json, Map, Value};

use super::{fields, text, Field, ProtoError};

/// How a field's value is written and how it reads as JSON. Plain (non-pointer) Go fields are
/// written even when empty; as JSON, their zero values are left out, as an object posted as
/// JSON would leave them out. Pointer fields (`Opt*`) keep their zero values.
#[derive(Clone, Copy)]
pub enum Ty {
    Str,
    Int,
    Bool,
    OptStr,
    OptInt,
    OptBool,
    /// A plain embedded message: left out when empty.
    Msg(&'static Msg),
    /// A pointer to a message: kept even when empty (`emptyDir: {}`).
    OptMsg(&'static Msg),
    /// A Go struct embedded inline: its fields land in the parent (Volume's VolumeSource).
    Inline(&'static Msg),
    RepStr,
    RepInt,
    RepMsg(&'static Msg),
    MapStr,
    MapQuantity,
    Time,
    OptTime,
    Quantity,
    OptQuantity,
}

pub struct Msg {
    pub name: &'static str,
    pub fields: &'static [(u64, &'static str, Ty)],
}

use Ty::*;

pub static OWNER_REFERENCE: Msg = Msg {
    name: "OwnerReference",
    fields: &[
        (1, "kind", Str),
        (3, "name", Str),
        (4, "uid", Str),
        (5, "apiVersion", Str),
        (6, "controller", OptBool),
        (7, "blockOwnerDeletion", OptBool),
    ],
};

pub static OBJECT_META: Msg = Msg {
    name: "ObjectMeta",
    fields: &[
        (1, "name", Str),
        (2, "generateName", Str),
        (3, "namespace", Str),
        (4, "selfLink", Str),
        (5, "uid", Str),
        (6, "resourceVersion", Str),
        (7, "generation", Int),
        (8, "creationTimestamp", Time),
        (9, "deletionTimestamp", OptTime),
        (10, "deletionGracePeriodSeconds", OptInt),
        (11, "labels", MapStr),
        (12, "annotations", MapStr),
        (13, "ownerReferences", RepMsg(&OWNER_REFERENCE)),
        (14, "finalizers", RepStr),
    ],
};

static LABEL_SELECTOR_REQUIREMENT: Msg = Msg {
    name: "LabelSelectorRequirement",
    fields: &[(1, "key", Str), (2, "operator", Str), (3, "values", RepStr)],
};

static LABEL_SELECTOR: Msg = Msg {
    name: "LabelSelector",
    fields: &[
        (1, "matchLabels", MapStr),
        (2, "matchExpressions", RepMsg(&LABEL_SELECTOR_REQUIREMENT)),
    ],
};

static LOCAL_OBJECT_REFERENCE: Msg = Msg {
    name: "LocalObjectReference",
    fields: &[(1, "name", Str)],
};

static KEY_SELECTOR: Msg = Msg {
    name: "ConfigMapKeySelector/SecretKeySelector",
    fields: &[
        (1, "", Inline(&LOCAL_OBJECT_REFERENCE)),
        (2, "key", Str),
        (3, "optional", OptBool),
    ],
};

static OBJECT_FIELD_SELECTOR: Msg = Msg {
    name: "ObjectFieldSelector",
    fields: &[(1, "apiVersion", Str), (2, "fieldPath", Str)],
};

static RESOURCE_FIELD_SELECTOR: Msg = Msg {
    name: "ResourceFieldSelector",
    fields: &[
        (1, "containerName", Str),
        (2, "resource", Str),
        (3, "divisor", Quantity),
    ],
};

static ENV_VAR_SOURCE: Msg = Msg {
    name: "EnvVarSource",
    fields: &[
        (1, "fieldRef", OptMsg(&OBJECT_FIELD_SELECTOR)),
        (2, "resourceFieldRef", OptMsg(&RESOURCE_FIELD_SELECTOR)),
        (3, "configMapKeyRef", OptMsg(&KEY_SELECTOR)),
        (4, "secretKeyRef", OptMsg(&KEY_SELECTOR)),
    ],
};

static ENV_VAR: Msg = Msg {
    name: "EnvVar",
    fields: &[
        (1, "name", Str),
        (2, "value", Str),
        (3, "valueFrom", OptMsg(&ENV_VAR_SOURCE)),
    ],
};

static ENV_SOURCE: Msg = Msg {
    name: "ConfigMapEnvSource/SecretEnvSource",
    fields: &[
        (1, "", Inline(&LOCAL_OBJECT_REFERENCE)),
        (2, "optional", OptBool),
    ],
};

static ENV_FROM_SOURCE: Msg = Msg {
    name: "EnvFromSource",
    fields: &[
        (1, "prefix", Str),
        (2, "configMapRef", OptMsg(&ENV_SOURCE)),
        (3, "secretRef", OptMsg(&ENV_SOURCE)),
    ],
};

static RESOURCE_CLAIM: Msg = Msg {
    name: "ResourceClaim",
    fields: &[(1, "name", Str), (2, "request", Str)],
};

static RESOURCE_REQUIREMENTS: Msg = Msg {
    name: "ResourceRequirements",
    fields: &[
        (1, "limits", MapQuantity),
        (2, "requests", MapQuantity),
        (3, "claims", RepMsg(&RESOURCE_CLAIM)),
    ],
};

static VOLUME_MOUNT: Msg = Msg {
    name: "VolumeMount",
    fields: &[
        (1, "name", Str),
        (2, "readOnly", Bool),
        (3, "mountPath", Str),
        (4, "subPath", Str),
        (5, "mountPropagation", OptStr),
        (6, "subPathExpr", Str),
        (7, "recursiveReadOnly", OptStr),
    ],
};

static CONTAINER_PORT: Msg = Msg {
    name: "ContainerPort",
    fields: &[
        (1, "name", Str),
        (2, "hostPort", Int),
        (3, "containerPort", Int),
        (4, "protocol", Str),
        (5, "hostIP", Str),
    ],
};

/// SecurityContext's scalar fields; its nested options (capabilities, SELinux, seccomp…) are
/// refused by number.
static SECURITY_CONTEXT: Msg = Msg {
    name: "SecurityContext",
    fields: &[
        (2, "privileged", OptBool),
        (4, "runAsUser", OptInt),
        (5, "runAsNonRoot", OptBool),
        (6, "readOnlyRootFilesystem", OptBool),
        (7, "allowPrivilegeEscalation", OptBool),
        (8, "runAsGroup", OptInt),
        (9, "procMount", OptStr),
    ],
};

static POD_SECURITY_CONTEXT: Msg = Msg {
    name: "PodSecurityContext",
    fields: &[
        (2, "runAsUser", OptInt),
        (3, "runAsNonRoot", OptBool),
        (4, "supplementalGroups", RepInt),
        (5, "fsGroup", OptInt),
        (6, "runAsGroup", OptInt),
        (9, "fsGroupChangePolicy", OptStr),
        (12, "supplementalGroupsPolicy", OptStr),
        (13, "seLinuxChangePolicy", OptStr),
    ],
};

static CONTAINER: Msg = Msg {
    name: "Container",
    fields: &[
        (1, "name", Str),
        (2, "image", Str),
        (3, "command", RepStr),
        (4, "args", RepStr),
        (5, "workingDir", Str),
        (6, "ports", RepMsg(&CONTAINER_PORT)),
        (7, "env", RepMsg(&ENV_VAR)),
        (8, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        (9, "volumeMounts", RepMsg(&VOLUME_MOUNT)),
        (13, "terminationMessagePath", Str),
        (14, "imagePullPolicy", Str),
        (15, "securityContext", OptMsg(&SECURITY_CONTEXT)),
        (16, "stdin", Bool),
        (17, "stdinOnce", Bool),
        (18, "tty", Bool),
        (19, "envFrom", RepMsg(&ENV_FROM_SOURCE)),
        (20, "terminationMessagePolicy", Str),
        (24, "restartPolicy", OptStr),
    ],
};

static KEY_TO_PATH: Msg = Msg {
    name: "KeyToPath",
    fields: &[(1, "key", Str), (2, "path", Str), (3, "mode", OptInt)],
};

static CONFIG_MAP_VOLUME: Msg = Msg {
    name: "ConfigMapVolumeSource",
    fields: &[
        (1, "", Inline(&LOCAL_OBJECT_REFERENCE)),
        (2, "items", RepMsg(&KEY_TO_PATH)),
        (3, "defaultMode", OptInt),
        (4, "optional", OptBool),
    ],
};

static SECRET_VOLUME: Msg = Msg {
    name: "SecretVolumeSource",
    fields: &[
        (1, "secretName", Str),
        (2, "items", RepMsg(&KEY_TO_PATH)),
        (3, "defaultMode", OptInt),
        (4, "optional", OptBool),
    ],
};

static EMPTY_DIR: Msg = Msg {
    name: "EmptyDirVolumeSource",
    fields: &[(1, "medium", Str), (2, "sizeLimit", OptQuantity)],
};

static PVC_VOLUME: Msg = Msg {
    name: "PersistentVolumeClaimVolumeSource",
    fields: &[(1, "claimName", Str), (2, "readOnly", Bool)],
};

static HOST_PATH: Msg = Msg {
    name: "HostPathVolumeSource",
    fields: &[(1, "path", Str), (2, "type", OptStr)],
};

static VOLUME_SOURCE: Msg = Msg {
    name: "VolumeSource",
    fields: &[
        (1, "hostPath", OptMsg(&HOST_PATH)),
        (2, "emptyDir", OptMsg(&EMPTY_DIR)),
        (6, "secret", OptMsg(&SECRET_VOLUME)),
        (10, "persistentVolumeClaim", OptMsg(&PVC_VOLUME)),
        (19, "configMap", OptMsg(&CONFIG_MAP_VOLUME)),
    ],
};

static VOLUME: Msg = Msg {
    name: "Volume",
    fields: &[(1, "name", Str), (2, "", Inline(&VOLUME_SOURCE))],
};

static TOLERATION: Msg = Msg {
    name: "Toleration",
    fields: &[
        (1, "key", Str),
        (2, "operator", Str),
        (3, "value", Str),
        (4, "effect", Str),
        (5, "tolerationSeconds", OptInt),
    ],
};

static POD_SPEC: Msg = Msg {
    name: "PodSpec",
    fields: &[
        (1, "volumes", RepMsg(&VOLUME)),
        (2, "containers", RepMsg(&CONTAINER)),
        (3, "restartPolicy", Str),
        (4, "terminationGracePeriodSeconds", OptInt),
        (5, "activeDeadlineSeconds", OptInt),
        (6, "dnsPolicy", Str),
        (7, "nodeSelector", MapStr),
        (8, "serviceAccountName", Str),
        (9, "serviceAccount", Str),
        (10, "nodeName", Str),
        (11, "hostNetwork", Bool),
        (12, "hostPID", Bool),
        (13, "hostIPC", Bool),
        (14, "securityContext", OptMsg(&POD_SECURITY_CONTEXT)),
        (15, "imagePullSecrets", RepMsg(&LOCAL_OBJECT_REFERENCE)),
        (16, "hostname", Str),
        (17, "subdomain", Str),
        (19, "schedulerName", Str),
        (20, "initContainers", RepMsg(&CONTAINER)),
        (21, "automountServiceAccountToken", OptBool),
        (22, "tolerations", RepMsg(&TOLERATION)),
        (24, "priorityClassName", Str),
        (25, "priority", OptInt),
        (29, "runtimeClassName", OptStr),
        (30, "enableServiceLinks", OptBool),
        (31, "preemptionPolicy", OptStr),
        (35, "setHostnameAsFQDN", OptBool),
        (37, "hostUsers", OptBool),
    ],
};

static POD_TEMPLATE_SPEC: Msg = Msg {
    name: "PodTemplateSpec",
    fields: &[
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "spec", Msg(&POD_SPEC)),
    ],
};

static JOB_SPEC: Msg = Msg {
    name: "JobSpec",
    fields: &[
        (1, "parallelism", OptInt),
        (2, "completions", OptInt),
        (3, "activeDeadlineSeconds", OptInt),
        (4, "selector", OptMsg(&LABEL_SELECTOR)),
        (5, "manualSelector", OptBool),
        (6, "template", Msg(&POD_TEMPLATE_SPEC)),
        (7, "backoffLimit", OptInt),
        (8, "ttlSecondsAfterFinished", OptInt),
        (9, "completionMode", OptStr),
        (10, "suspend", OptBool),
        (12, "backoffLimitPerIndex", OptInt),
        (13, "maxFailedIndexes", OptInt),
        (14, "podReplacementPolicy", OptStr),
        (15, "managedBy", OptStr),
    ],
};

static UNCOUNTED_TERMINATED_PODS: Msg = Msg {
    name: "UncountedTerminatedPods",
    fields: &[(1, "succeeded", RepStr), (2, "failed", RepStr)],
};

static JOB_CONDITION: Msg = Msg {
    name: "JobCondition",
    fields: &[
        (1, "type", Str),
        (2, "status", Str),
        (3, "lastProbeTime", Time),
        (4, "lastTransitionTime", Time),
        (5, "reason", Str),
        (6, "message", Str),
    ],
};

static JOB_STATUS: Msg = Msg {
    name: "JobStatus",
    fields: &[
        (1, "conditions", RepMsg(&JOB_CONDITION)),
        (2, "startTime", OptTime),
        (3, "completionTime", OptTime),
        (4, "active", Int),
        (5, "succeeded", Int),
        (6, "failed", Int),
        (7, "completedIndexes", Str),
        (
            8,
            "uncountedTerminatedPods",
            OptMsg(&UNCOUNTED_TERMINATED_PODS),
        ),
        (9, "ready", OptInt),
        (10, "failedIndexes", OptStr),
        (11, "terminating", OptInt),
    ],
};

pub static JOB: Msg = Msg {
    name: "Job",
    fields: &[
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "spec", Msg(&JOB_SPEC)),
        (3, "status", Msg(&JOB_STATUS)),
    ],
};

static JOB_TEMPLATE_SPEC: Msg = Msg {
    name: "JobTemplateSpec",
    fields: &[
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "spec", Msg(&JOB_SPEC)),
    ],
};

static OBJECT_REFERENCE: Msg = Msg {
    name: "ObjectReference",
    fields: &[
        (1, "kind", Str),
        (2, "namespace", Str),
        (3, "name", Str),
        (4, "uid", Str),
        (5, "apiVersion", Str),
        (6, "resourceVersion", Str),
        (7, "fieldPath", Str),
    ],
};

static CRON_JOB_SPEC: Msg = Msg {
    name: "CronJobSpec",
    fields: &[
        (1, "schedule", Str),
        (2, "startingDeadlineSeconds", OptInt),
        (3, "concurrencyPolicy", Str),
        (4, "suspend", OptBool),
        (5, "jobTemplate", Msg(&JOB_TEMPLATE_SPEC)),
        (6, "successfulJobsHistoryLimit", OptInt),
        (7, "failedJobsHistoryLimit", OptInt),
        (8, "timeZone", OptStr),
    ],
};

static CRON_JOB_STATUS: Msg = Msg {
    name: "CronJobStatus",
    fields: &[
        (1, "active", RepMsg(&OBJECT_REFERENCE)),
        (4, "lastScheduleTime", OptTime),
        (5, "lastSuccessfulTime", OptTime),
    ],
};

pub static CRON_JOB: Msg = Msg {
    name: "CronJob",
    fields: &[
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "spec", Msg(&CRON_JOB_SPEC)),
        (3, "status", Msg(&CRON_JOB_STATUS)),
    ],
};

/// `b`, a message of schema `msg`, as JSON.
pub fn decode(b: &[u8], msg: &Msg) -> Result<Map<String, Value>, ProtoError> {
    let mut out = Map::new();
    for (n, f) in fields(b)? {
        let Some((_, name, ty)) = msg.fields.iter().find(|(num, _, _)| *num == n) else {
            return Err(ProtoError::UnknownField {
                message: msg.name,
                number: n,
            });
        };
        let key = name.to_string();
        match (*ty, f) {
            (Str, Field::Bytes(x)) => {
                if !x.is_empty() {
                    out.insert(key, json!(text(x)));
                }
            }
            (OptStr, Field::Bytes(x)) => drop(out.insert(key, json!(text(x)))),
            (Int, Field::Varint(v)) => {
                if v != 0 {
                    out.insert(key, json!(v as i64));
                }
            }
            (OptInt, Field::Varint(v)) => drop(out.insert(key, json!(v as i64))),
            (Bool, Field::Varint(v)) => {
                if v != 0 {
                    out.insert(key, json!(true));
                }
            }
            (OptBool, Field::Varint(v)) => drop(out.insert(key, json!(v != 0))),
            (Msg(m), Field::Bytes(x)) => {
                let inner = decode(x, m)?;
                if !inner.is_empty() {
                    out.insert(key, Value::Object(inner));
                }
            }
            (OptMsg(m), Field::Bytes(x)) => drop(out.insert(key, Value::Object(decode(x, m)?))),
            (Inline(m), Field::Bytes(x)) => out.extend(decode(x, m)?),
            (RepStr, Field::Bytes(x)) => push(&mut out, key, json!(text(x))),
            (RepInt, Field::Varint(v)) => push(&mut out, key, json!(v as i64)),
            (RepInt, Field::Bytes(x)) => {
                // Packed, which Kubernetes does not write but protobuf allows.
                let mut pos = 0;
                while pos < x.len() {
                    let v = super::varint(x, &mut pos)?;
                    push(&mut out, key.clone(), json!(v as i64));
                }
            }
            (RepMsg(m), Field::Bytes(x)) => push(&mut out, key, Value::Object(decode(x, m)?)),
            (MapStr | MapQuantity, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, matches!(ty, MapQuantity))?;
                let entry = out.entry(key).or_insert_with(|| json!({}));
                entry[k] = v;
            }
            (Time, Field::Bytes(x)) => {
                if let Some(t) = time(x)? {
                    out.insert(key, t);
                }
            }
            (OptTime, Field::Bytes(x)) => {
                if let Some(t) = time(x)? {
                    out.insert(key, t);
                }
            }
            (Quantity | OptQuantity, Field::Bytes(x)) => {
                let q = quantity(x)?;
                if !q.is_empty() || matches!(ty, OptQuantity) {
                    out.insert(key, json!(q));
                }
            }
            _ => {
                return Err(ProtoError::UnknownField {
                    message: msg.name,
                    number: n,
                })
            }
        }
    }
    Ok(out)
}

fn push(out: &mut Map<String, Value>, key: String, v: Value) {
    match out.entry(key).or_insert_with(|| json!([])) {
        Value::Array(a) => a.push(v),
        other => *other = json!([v]),
    }
}

/// A map entry `{1 key, 2 value}`; a Quantity value is a message holding its string.
fn map_entry(b: &[u8], quantity_value: bool) -> Result<(String, Value), ProtoError> {
    let (mut k, mut v) = (String::new(), json!(""));
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = text(x),
            (2, Field::Bytes(x)) if quantity_value => v = json!(quantity(x)?),
            (2, Field::Bytes(x)) => v = json!(text(x)),
            _ => {}
        }
    }
    Ok((k, v))
}

fn quantity(b: &[u8]) -> Result<String, ProtoError> {
    Ok(fields(b)?
        .into_iter()
        .find_map(|(n, f)| match (n, f) {
            (1, Field::Bytes(x)) => Some(text(x)),
            _ => None,
        })
        .unwrap_or_default())
}

/// A meta/v1 Time (whole seconds; a zero Time is an empty message) as RFC 3339.
fn time(b: &[u8]) -> Result<Option<Value>, ProtoError> {
    let seconds = fields(b)?.into_iter().find_map(|(n, f)| match (n, f) {
        (1, Field::Varint(v)) => Some(v as i64),
        _ => None,
    });
    Ok(seconds
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))))
}
