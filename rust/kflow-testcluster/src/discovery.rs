//! Discovery documents (`/version`, `/api`, `/apis`, group/version resource lists) and the small
//! OpenAPI v3 index kubectl reads to learn that the server validates fields itself.

use serde_json::{json, Value};

use crate::resources::{self, ResourceType};

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-kflow-testcluster",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn core_versions(server: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]})
}

fn group_doc(group: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0].clone()})
}

pub fn group_list(hidden: &[&ResourceType]) -> Value {
    let groups: Vec<Value> = resources::group_versions(hidden)
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(name: &str, hidden: &[&ResourceType]) -> Option<Value> {
    resources::group_versions(hidden)
        .into_iter()
        .find(|(g, _)| *g == name)
        .map(|(g, vs)| {
            let mut d = group_doc(g, &vs);
            d["kind"] = json!("APIGroup");
            d["apiVersion"] = json!("v1");
            d
        })
}

fn verbs(sub: Option<&str>) -> Value {
    match sub {
        None => json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]),
        Some("log") => json!(["get"]),
        Some(_) => json!(["get", "patch", "update"]),
    }
}

pub fn resource_list(group: &str, version: &str, hidden: &[&ResourceType]) -> Option<Value> {
    let rs: Vec<&ResourceType> = resources::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version && !hidden.contains(r))
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for r in rs {
        let mut entry = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": if r.is_review() { json!(["create"]) } else { verbs(None) },
            "storageVersionHash": ""});
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        // `kubectl get all` expands the "all" category: pods and services, as on a real server.
        if r.plural == "pods" || r.plural == "services" {
            entry["categories"] = json!(["all"]);
        } else if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        out.push(entry);
        for sub in r.subresources {
            out.push(
                json!({"name": format!("{}/{}", r.plural, sub), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs(Some(sub))}),
            );
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}

/// `/openapi/v3`: one entry per group/version served.
pub fn openapi_root(hidden: &[&ResourceType]) -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": "/openapi/v3/api/v1?hash=kflow1"}),
    );
    for (g, vs) in resources::group_versions(hidden) {
        for v in vs {
            paths.insert(
                format!("apis/{g}/{v}"),
                json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/{v}?hash=kflow1")}),
            );
        }
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<gv>`: only the PATCH operations with their `fieldValidation` parameter, which is
/// what kubectl's query-param verifier looks for before leaving validation to the server.
pub fn openapi_group_version(
    group: &str,
    version: &str,
    hidden: &[&ResourceType],
) -> Option<Value> {
    let rs: Vec<&ResourceType> = resources::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version && !hidden.contains(r))
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    for r in rs {
        let prefix = if group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": r.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}}
        ]);
        paths.insert(path, json!({
            "get": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "get", "responses": {}},
            "patch": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch",
                      "parameters": params, "responses": {}}
        }));
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths, "components": {"schemas": {}}}),
    )
}
