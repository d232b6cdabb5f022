//! core/v1 Events that the operator and kubelet record, as `kubectl describe` and
//! `kubectl get events` show them.

use serde_json::{json, Value};

use crate::resources;
use crate::store::{now_rfc3339, Store};

/// Records an event about `involved` (a stored object). Failures are ignored on purpose: an
/// event that cannot be stored (namespace gone) must not stop the controller that emits it.
pub fn record(
    store: &Store,
    involved: &Value,
    event_type: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let ns = involved["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let name = involved["metadata"]["name"].as_str().unwrap_or("");
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let now = now_rfc3339();
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": ns},
        "involvedObject": {
            "apiVersion": involved["apiVersion"], "kind": involved["kind"], "name": name, "namespace": ns,
            "uid": involved["metadata"]["uid"], "resourceVersion": involved["metadata"]["resourceVersion"]
        },
        "reason": reason, "message": message, "type": event_type,
        "source": {"component": component, "host": "kflow-testcluster"},
        "reportingComponent": component, "reportingInstance": "kflow-testcluster",
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    let _ = store.create(resources::events(), ev, false);
}
