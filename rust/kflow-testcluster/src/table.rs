//! `meta.k8s.io/v1` Table responses, which kubectl asks for on `get` and `get -w`.

use serde_json::{json, Value};

use crate::resources::ResourceType;

fn columns(res: &ResourceType) -> Vec<(&'static str, &'static str)> {
    match res.plural {
        "pods" => vec![
            ("Name", "string"),
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "string"),
            ("Age", "string"),
        ],
        "pytorchjobs" | "tfjobs" | "mpijobs" => {
            vec![("Name", "string"), ("State", "string"), ("Age", "date")]
        }
        "events" => vec![
            ("Last Seen", "string"),
            ("Type", "string"),
            ("Reason", "string"),
            ("Object", "string"),
            ("Message", "string"),
        ],
        "namespaces" => vec![("Name", "string"), ("Status", "string"), ("Age", "string")],
        "nodes" => vec![
            ("Name", "string"),
            ("Status", "string"),
            ("Roles", "string"),
            ("Age", "string"),
            ("Version", "string"),
        ],
        "persistentvolumeclaims" => vec![
            ("Name", "string"),
            ("Status", "string"),
            ("Volume", "string"),
            ("Capacity", "string"),
            ("Access Modes", "string"),
            ("StorageClass", "string"),
            ("VolumeAttributesClass", "string"),
            ("Age", "string"),
        ],
        "persistentvolumes" => vec![
            ("Name", "string"),
            ("Capacity", "string"),
            ("Access Modes", "string"),
            ("Reclaim Policy", "string"),
            ("Status", "string"),
            ("Claim", "string"),
            ("StorageClass", "string"),
            ("VolumeAttributesClass", "string"),
            ("Reason", "string"),
            ("Age", "string"),
        ],
        "storageclasses" => vec![
            ("Name", "string"),
            ("Provisioner", "string"),
            ("ReclaimPolicy", "string"),
            ("VolumeBindingMode", "string"),
            ("AllowVolumeExpansion", "string"),
            ("Age", "string"),
        ],
        "statefulsets" => vec![("Name", "string"), ("Ready", "string"), ("Age", "string")],
        "jobs" => vec![
            ("Name", "string"),
            ("Status", "string"),
            ("Completions", "string"),
            ("Duration", "string"),
            ("Age", "string"),
        ],
        "cronjobs" => vec![
            ("Name", "string"),
            ("Schedule", "string"),
            ("Timezone", "string"),
            ("Suspend", "boolean"),
            ("Active", "integer"),
            ("Last Schedule", "string"),
            ("Age", "string"),
        ],
        _ => vec![("Name", "string"), ("Age", "string")],
    }
}

/// The columns `-o wide` adds (priority 1), after the others.
fn wide_columns(res: &ResourceType) -> Vec<(&'static str, &'static str)> {
    match res.plural {
        "persistentvolumeclaims" | "persistentvolumes" => vec![("VolumeMode", "string")],
        "statefulsets" => vec![("Containers", "string"), ("Images", "string")],
        _ => vec![],
    }
}

/// Access modes as kubectl abbreviates them, always in the same order.
fn access_modes(modes: &Value) -> String {
    let has = |m: &str| {
        modes
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == &json!(m)))
    };
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

fn str_or(v: &Value, default: &str) -> Value {
    json!(v.as_str().unwrap_or(default))
}

/// Kubernetes' short human duration ("5s", "3m2s", "4h", "2d").
pub fn human_age(created: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(created) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The STATUS column kubectl shows for a pod: a waiting/terminated reason beats the phase.
pub fn pod_status_text(pod: &Value) -> String {
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating".into();
    }
    let mut reason = pod["status"]["reason"]
        .as_str()
        .or(pod["status"]["phase"].as_str())
        .unwrap_or("Pending")
        .to_string();
    for cs in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(r) = cs["state"]["waiting"]["reason"].as_str() {
            return r.to_string();
        }
        if let Some(r) = cs["state"]["terminated"]["reason"].as_str() {
            reason = r.to_string();
        }
    }
    reason
}

fn cells(res: &ResourceType, obj: &Value) -> Vec<Value> {
    let name = obj["metadata"]["name"].clone();
    let age = json!(human_age(
        obj["metadata"]["creationTimestamp"].as_str().unwrap_or("")
    ));
    match res.plural {
        "pods" => {
            let statuses = obj["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = obj["spec"]["containers"]
                .as_array()
                .map(|c| c.len())
                .unwrap_or(0);
            let ready = statuses
                .iter()
                .filter(|c| c["ready"] == json!(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status_text(obj)),
                json!(restarts.to_string()),
                age,
            ]
        }
        "pytorchjobs" | "tfjobs" | "mpijobs" => {
            let state = obj["status"]["conditions"]
                .as_array()
                .and_then(|c| c.last())
                .map(|c| c["type"].clone())
                .unwrap_or(json!(""));
            vec![name, state, age]
        }
        "events" => vec![
            json!(human_age(obj["lastTimestamp"].as_str().unwrap_or(""))),
            obj["type"].clone(),
            obj["reason"].clone(),
            json!(format!(
                "{}/{}",
                obj["involvedObject"]["kind"]
                    .as_str()
                    .unwrap_or("")
                    .to_lowercase(),
                obj["involvedObject"]["name"].as_str().unwrap_or("")
            )),
            obj["message"].clone(),
        ],
        "namespaces" => vec![
            name,
            json!(obj["status"]["phase"].as_str().unwrap_or("Active")),
            age,
        ],
        "nodes" => {
            let ready = obj["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == json!("Ready") && c["status"] == json!("True"));
            let mut status = if ready { "Ready" } else { "NotReady" }.to_string();
            if obj["spec"]["unschedulable"] == json!(true) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<&str> = obj["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
                .collect();
            vec![
                name,
                json!(status),
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                }),
                age,
                obj["status"]["nodeInfo"]["kubeletVersion"].clone(),
            ]
        }
        "persistentvolumeclaims" => {
            let bound = !obj["spec"]["volumeName"].as_str().unwrap_or("").is_empty();
            let (capacity, modes) = if bound {
                (
                    str_or(&obj["status"]["capacity"]["storage"], ""),
                    json!(access_modes(&obj["status"]["accessModes"])),
                )
            } else {
                (json!(""), json!(""))
            };
            let class = obj["spec"]["storageClassName"]
                .as_str()
                .or(
                    obj["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"]
                        .as_str(),
                )
                .unwrap_or("");
            let phase = if obj["metadata"]["deletionTimestamp"].is_null() {
                str_or(&obj["status"]["phase"], "Pending")
            } else {
                json!("Terminating")
            };
            vec![
                name,
                phase,
                str_or(&obj["spec"]["volumeName"], ""),
                capacity,
                modes,
                json!(class),
                str_or(&obj["spec"]["volumeAttributesClassName"], "<unset>"),
                age,
                str_or(&obj["spec"]["volumeMode"], "<unset>"),
            ]
        }
        "persistentvolumes" => {
            let claim = &obj["spec"]["claimRef"];
            let claim = if claim.is_object() {
                format!(
                    "{}/{}",
                    claim["namespace"].as_str().unwrap_or(""),
                    claim["name"].as_str().unwrap_or("")
                )
            } else {
                String::new()
            };
            vec![
                name,
                str_or(&obj["spec"]["capacity"]["storage"], ""),
                json!(access_modes(&obj["spec"]["accessModes"])),
                str_or(&obj["spec"]["persistentVolumeReclaimPolicy"], ""),
                str_or(&obj["status"]["phase"], ""),
                json!(claim),
                str_or(&obj["spec"]["storageClassName"], ""),
                str_or(&obj["spec"]["volumeAttributesClassName"], "<unset>"),
                str_or(&obj["status"]["reason"], ""),
                age,
                str_or(&obj["spec"]["volumeMode"], "<unset>"),
            ]
        }
        "storageclasses" => {
            let default = obj["metadata"]["annotations"]
                ["storageclass.kubernetes.io/is-default-class"]
                == json!("true");
            let shown = format!(
                "{}{}",
                obj["metadata"]["name"].as_str().unwrap_or(""),
                if default { " (default)" } else { "" }
            );
            vec![
                json!(shown),
                obj["provisioner"].clone(),
                str_or(&obj["reclaimPolicy"], "Delete"),
                str_or(&obj["volumeBindingMode"], "Immediate"),
                json!(obj["allowVolumeExpansion"].as_bool().unwrap_or(false)),
                age,
            ]
        }
        "statefulsets" => {
            let containers = obj["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let join = |key: &str| {
                containers
                    .iter()
                    .filter_map(|c| c[key].as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    obj["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    obj["spec"]["replicas"].as_i64().unwrap_or(1)
                )),
                age,
                json!(join("name")),
                json!(join("image")),
            ]
        }
        "jobs" => {
            let has = |t: &str| {
                obj["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == json!(t) && c["status"] == json!("True"))
            };
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if obj["spec"]["suspend"] == json!(true) {
                "Suspended"
            } else {
                "Running"
            };
            let start = obj["status"]["startTime"].as_str().unwrap_or("");
            let duration = match obj["status"]["completionTime"].as_str() {
                Some(end) => match (
                    chrono::DateTime::parse_from_rfc3339(start),
                    chrono::DateTime::parse_from_rfc3339(end),
                ) {
                    (Ok(a), Ok(b)) => format!("{}s", (b - a).num_seconds().max(0)),
                    _ => String::new(),
                },
                None if !start.is_empty() => human_age(start),
                None => String::new(),
            };
            vec![
                name,
                json!(status),
                json!(format!(
                    "{}/{}",
                    obj["status"]["succeeded"].as_i64().unwrap_or(0),
                    obj["spec"]["completions"].as_i64().unwrap_or(1)
                )),
                json!(duration),
                age,
            ]
        }
        "cronjobs" => vec![
            name,
            str_or(&obj["spec"]["schedule"], ""),
            str_or(&obj["spec"]["timeZone"], "<none>"),
            json!(obj["spec"]["suspend"] == json!(true)),
            json!(obj["status"]["active"].as_array().map_or(0, Vec::len)),
            json!(obj["status"]["lastScheduleTime"]
                .as_str()
                .map(human_age)
                .unwrap_or_else(|| "<none>".into())),
            age,
        ],
        _ => vec![name, age],
    }
}

/// One Table for a set of objects. `include_object` is the `includeObject` query parameter:
/// "None", "Object", or the default "Metadata" (a PartialObjectMetadata per row).
pub fn table(
    res: &ResourceType,
    objects: &[Value],
    include_object: &str,
    list_meta: Value,
) -> Value {
    let wide = wide_columns(res).into_iter().map(|c| (c, 1));
    let cols: Vec<Value> = columns(res)
        .into_iter()
        .map(|c| (c, 0))
        .chain(wide)
        .enumerate()
        .map(|(i, ((n, t), priority))| {
            json!({"name": n, "type": t, "format": if i == 0 && n == "Name" { "name" } else { "" },
                   "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = match include_object {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()}),
            };
            json!({"cells": cells(res, o), "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": cols, "rows": rows})
}

/// Whether an Accept header asks for a Table (kubectl: `application/json;as=Table;v=v1;g=meta.k8s.io`).
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}
