//! Maps a request path onto what it addresses: a discovery document or a resource
//! (collection, object, subresource), for the core group (`/api/v1`) and named groups (`/apis`).

use crate::resources::{self, ResourceType};

#[derive(Debug, PartialEq)]
pub enum Target {
    Version,
    CoreVersions,
    GroupList,
    Group(String),
    ResourceList { group: String, version: String },
    OpenApiRoot,
    OpenApiGroupVersion { group: String, version: String },
    Resource(ResourcePath),
}

#[derive(Debug, PartialEq)]
pub struct ResourcePath {
    pub res: &'static ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

pub fn parse(path: &str) -> Option<Target> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["version"] => Some(Target::Version),
        ["api"] => Some(Target::CoreVersions),
        ["apis"] => Some(Target::GroupList),
        ["apis", g] => Some(Target::Group(g.to_string())),
        ["api", "v1"] => Some(Target::ResourceList {
            group: String::new(),
            version: "v1".into(),
        }),
        ["apis", g, v] => Some(Target::ResourceList {
            group: g.to_string(),
            version: v.to_string(),
        }),
        ["openapi", "v3"] => Some(Target::OpenApiRoot),
        ["openapi", "v3", "api", "v1"] => Some(Target::OpenApiGroupVersion {
            group: String::new(),
            version: "v1".into(),
        }),
        ["openapi", "v3", "apis", g, v] => Some(Target::OpenApiGroupVersion {
            group: g.to_string(),
            version: v.to_string(),
        }),
        ["api", "v1", rest @ ..] => resource_path("", "v1", rest).map(Target::Resource),
        ["apis", g, v, rest @ ..] => resource_path(g, v, rest).map(Target::Resource),
        _ => None,
    }
}

fn resource_path(group: &str, version: &str, rest: &[&str]) -> Option<ResourcePath> {
    let find = |plural: &str| resources::find(group, version, plural);
    let rp =
        |res: &'static ResourceType, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
            Some(ResourcePath {
                res,
                namespace: ns.map(str::to_string),
                name: name.map(str::to_string),
                sub: sub.map(str::to_string),
            })
        };
    match rest {
        // `namespaces/<ns>/<plural>…` addresses namespaced objects; `namespaces/<name>[/status]`
        // addresses the Namespace object itself.
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|r| r.namespaced) => {
            let res = find(plural)?;
            match tail {
                [] => rp(res, Some(ns), None, None),
                [name] => rp(res, Some(ns), Some(name), None),
                [name, sub] if res.subresources.contains(sub) => {
                    rp(res, Some(ns), Some(name), Some(sub))
                }
                _ => None,
            }
        }
        [plural, tail @ ..] => {
            let res = find(plural)?;
            match tail {
                // Listing a namespaced type across all namespaces.
                [] => rp(res, None, None, None),
                [name] if !res.namespaced => rp(res, None, Some(name), None),
                [name, sub] if !res.namespaced && res.subresources.contains(sub) => {
                    rp(res, None, Some(name), Some(sub))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(t: Option<Target>) -> ResourcePath {
        match t {
            Some(Target::Resource(r)) => r,
            other => panic!("not a resource: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let r = res(parse("/api/v1/namespaces/default/pods/p1/log"));
        assert_eq!(
            (
                r.res.plural,
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.sub.as_deref()
            ),
            ("pods", Some("default"), Some("p1"), Some("log"))
        );
        let r = res(parse("/api/v1/namespaces/default"));
        assert_eq!(
            (r.res.plural, r.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let r = res(parse("/api/v1/pods"));
        assert_eq!((r.res.plural, r.namespace), ("pods", None));
        let r = res(parse(
            "/apis/kubeflow.org/v1/namespaces/a/pytorchjobs/j/status",
        ));
        assert_eq!(
            (r.res.kind, r.sub.as_deref()),
            ("PyTorchJob", Some("status"))
        );
        assert_eq!(
            parse("/apis/kubeflow.org/v1"),
            Some(Target::ResourceList {
                group: "kubeflow.org".into(),
                version: "v1".into()
            })
        );
        assert!(parse("/api/v1/namespaces/default/nosuch").is_none());
        assert!(parse("/api/v1/namespaces/default/pods/p/exec").is_none());
    }
}
