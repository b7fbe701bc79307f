//! The functions that read the cluster: drover variables (`nomadVar…`,
//! and Consul's `key…` mapped onto variables) and the service catalogue
//! (`service`, `services`, `nomadService`, `nomadServices`).
//!
//! They read a [`ClusterData`] the caller fills (the agent, with what the
//! servers let the job read), so rendering stays pure. A variable or
//! service that is not in it is treated as absent: `nomadVar` and `key`
//! fail (consul-template would wait for it; drover fails the render with
//! the path, so the task event says what is missing), the `…OrDefault`,
//! `…Exists` and list functions answer from what is there.
//!
//! `key "a/b/c"` reads the variable `a/b/c` when it has exactly one item
//! (its value), else item `c` of the variable `a/b`; see
//! [`ClusterData::key`].

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use gtmpl::{FuncError, Value};

/// What the cluster functions of a template may read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterData {
    /// The variables the job may read: path → items.
    pub variables: BTreeMap<String, BTreeMap<String, String>>,
    /// The instances of every service, in any order.
    pub services: Vec<ServiceEntry>,
}

/// One instance of a service, as templates see it (the fields of Nomad's
/// `nomadService` and consul-template's `service`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The service's name.
    pub name: String,
    /// A unique id of the instance.
    pub id: String,
    /// The address it is announced on.
    pub address: String,
    /// Its port (0 for a service without one).
    pub port: u16,
    /// Its tags.
    pub tags: Vec<String>,
    /// The service's `meta`.
    pub meta: BTreeMap<String, String>,
    /// The node's name.
    pub node: String,
    /// The node's id.
    pub node_id: String,
    /// The allocation that runs it.
    pub alloc_id: String,
    /// The job of that allocation.
    pub job_id: String,
    /// Whether its checks pass (an instance without checks passes).
    pub healthy: bool,
}

impl ClusterData {
    /// The value `key PATH` reads: the single item of the variable `PATH`,
    /// else item `LAST` of the variable `PARENT` for `PARENT/LAST`. `None`
    /// when neither exists.
    pub fn key(&self, path: &str) -> Option<&str> {
        let path = path.trim_matches('/');
        if let Some(items) = self.variables.get(path)
            && items.len() == 1
        {
            return items.values().next().map(String::as_str);
        }
        let (parent, last) = path.rsplit_once('/')?;
        self.variables.get(parent)?.get(last).map(String::as_str)
    }
}

thread_local! {
    /// The cluster data of the template this thread renders (see `render`).
    pub(crate) static CLUSTER_DATA: RefCell<ClusterData> = RefCell::new(ClusterData::default());
}

fn with_data<T>(read: impl FnOnce(&ClusterData) -> T) -> T {
    CLUSTER_DATA.with(|slot| read(&slot.borrow()))
}

fn one_string(name: &str, args: &[Value]) -> Result<String, FuncError> {
    match args {
        [Value::String(text)] => Ok(text.clone()),
        [other] => Err(FuncError::Generic(format!("{name} needs a path or name in quotes, not {other}"))),
        _ => Err(FuncError::ExactlyXArgs(name.to_owned(), 1)),
    }
}

fn items_value(items: &BTreeMap<String, String>) -> Value {
    let mut fields: HashMap<String, Value> =
        items.iter().map(|(key, value)| (key.clone(), Value::from(value.clone()))).collect();
    let all: HashMap<String, Value> =
        items.iter().map(|(key, value)| (key.clone(), Value::from(value.clone()))).collect();
    // `.Items` as in Nomad, unless an item has that name.
    fields.entry("Items".to_owned()).or_insert(Value::Map(all));
    Value::Map(fields)
}

/// Nomad's `nomadVar "PATH"`: the variable's items by name (`.NAME`,
/// `index . "NAME"`, `.Items`).
pub(crate) fn nomad_var(args: &[Value]) -> Result<Value, FuncError> {
    let path = one_string("nomadVar", args)?;
    let path = path.trim_matches('/');
    with_data(|data| data.variables.get(path).map(items_value)).ok_or_else(|| {
        FuncError::Generic(format!(
            "nomadVar: variable \"{path}\" does not exist or this job may not read it (a job reads variables under nomad/jobs/JOB and jobs/JOB); create it with drover var put {path} KEY=VALUE"
        ))
    })
}

/// Nomad's `nomadVarExists "PATH"`.
pub(crate) fn nomad_var_exists(args: &[Value]) -> Result<Value, FuncError> {
    let path = one_string("nomadVarExists", args)?;
    Ok(Value::Bool(with_data(|data| data.variables.contains_key(path.trim_matches('/')))))
}

fn var_list(name: &str, args: &[Value]) -> Result<Value, FuncError> {
    let prefix = match args {
        [] => String::new(),
        [Value::String(prefix)] => prefix.trim_start_matches('/').to_owned(),
        _ => return Err(FuncError::Generic(format!("{name} takes an optional path prefix in quotes"))),
    };
    let listed = with_data(|data| {
        data.variables
            .keys()
            .filter(|path| path.starts_with(&prefix))
            .map(|path| {
                let fields = HashMap::from([
                    ("Path".to_owned(), Value::from(path.clone())),
                    ("Namespace".to_owned(), Value::from("default")),
                ]);
                Value::Object(fields)
            })
            .collect()
    });
    Ok(Value::Array(listed))
}

/// Nomad's `nomadVarList [PREFIX]`: the variables (`.Path`) the job may
/// read under the prefix, in path order.
pub(crate) fn nomad_var_list(args: &[Value]) -> Result<Value, FuncError> {
    var_list("nomadVarList", args)
}

/// Nomad's `nomadVarListSafe [PREFIX]`: as `nomadVarList` (drover never
/// waits for a variable to appear).
pub(crate) fn nomad_var_list_safe(args: &[Value]) -> Result<Value, FuncError> {
    var_list("nomadVarListSafe", args)
}

/// consul-template's `key "PATH"` on drover variables.
pub(crate) fn key(args: &[Value]) -> Result<Value, FuncError> {
    let path = one_string("key", args)?;
    with_data(|data| data.key(&path).map(Value::from)).ok_or_else(|| {
        let trimmed = path.trim_matches('/');
        let (parent, last) = trimmed.rsplit_once('/').unwrap_or((trimmed, "value"));
        FuncError::Generic(format!(
            "key: \"{path}\" is not set: key reads the variable {trimmed} (its only item) or item {last} of the variable {parent}, which do not exist or this job may not read; set it with drover var put {parent} {last}=VALUE, or use keyOrDefault"
        ))
    })
}

/// consul-template's `keyOrDefault "PATH" "DEFAULT"`.
pub(crate) fn key_or_default(args: &[Value]) -> Result<Value, FuncError> {
    let [Value::String(path), default] = args else {
        return Err(FuncError::Generic("keyOrDefault takes a path in quotes and a default value".to_owned()));
    };
    Ok(with_data(|data| data.key(path).map(Value::from)).unwrap_or_else(|| Value::from(default.to_string())))
}

/// consul-template's `keyExists "PATH"`.
pub(crate) fn key_exists(args: &[Value]) -> Result<Value, FuncError> {
    let path = one_string("keyExists", args)?;
    Ok(Value::Bool(with_data(|data| data.key(&path).is_some())))
}

fn instance_value(entry: &ServiceEntry) -> Value {
    let meta: HashMap<String, Value> =
        entry.meta.iter().map(|(key, value)| (key.clone(), Value::from(value.clone()))).collect();
    let fields = HashMap::from([
        ("Name".to_owned(), Value::from(entry.name.clone())),
        ("ServiceName".to_owned(), Value::from(entry.name.clone())),
        ("ID".to_owned(), Value::from(entry.id.clone())),
        ("Address".to_owned(), Value::from(entry.address.clone())),
        ("Port".to_owned(), Value::from(u64::from(entry.port))),
        ("Tags".to_owned(), Value::Array(entry.tags.iter().cloned().map(Value::from).collect())),
        ("Meta".to_owned(), Value::Map(meta.clone())),
        ("ServiceMeta".to_owned(), Value::Map(meta)),
        ("Node".to_owned(), Value::from(entry.node.clone())),
        ("NodeID".to_owned(), Value::from(entry.node_id.clone())),
        ("AllocID".to_owned(), Value::from(entry.alloc_id.clone())),
        ("JobID".to_owned(), Value::from(entry.job_id.clone())),
        ("Datacenter".to_owned(), Value::from("dc1")),
        ("Namespace".to_owned(), Value::from("default")),
        ("Status".to_owned(), Value::from(if entry.healthy { "passing" } else { "critical" })),
    ]);
    Value::Object(fields)
}

/// The instances of a service query: `NAME`, or `TAG.NAME` for those
/// with the tag; consul-template's `@DATACENTER` suffix is ignored (one
/// region). With `healthy_only`, instances whose checks fail are left out.
fn instances(name: &str, args: &[Value], healthy_only: bool) -> Result<Value, FuncError> {
    let query = match args {
        [Value::String(query)] => query.clone(),
        // consul-template's `service "NAME" "any"` / `"passing"` filters.
        [Value::String(query), Value::String(_)] => query.clone(),
        _ => return Err(FuncError::Generic(format!("{name} takes a service name in quotes"))),
    };
    let query = query.split_once('@').map_or(query.as_str(), |(before, _)| before);
    let (tag, service) = match query.rsplit_once('.') {
        Some((tag, service)) => (Some(tag), service),
        None => (None, query),
    };
    let listed = with_data(|data| {
        let mut matching: Vec<&ServiceEntry> = data
            .services
            .iter()
            .filter(|entry| entry.name == service)
            .filter(|entry| !healthy_only || entry.healthy)
            .filter(|entry| tag.is_none_or(|tag| entry.tags.iter().any(|candidate| candidate == tag)))
            .collect();
        matching.sort_by(|left, right| {
            (&left.node, &left.address, left.port).cmp(&(&right.node, &right.address, right.port))
        });
        matching.into_iter().map(instance_value).collect()
    });
    Ok(Value::Array(listed))
}

fn service_names(args: &[Value], name: &str) -> Result<Value, FuncError> {
    if !args.is_empty() && !matches!(args, [Value::String(_)]) {
        return Err(FuncError::Generic(format!("{name} takes no argument (or a datacenter, ignored)")));
    }
    let listed = with_data(|data| {
        let mut tags_by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for entry in &data.services {
            tags_by_name.entry(&entry.name).or_default().extend(entry.tags.iter().map(String::as_str));
        }
        tags_by_name
            .into_iter()
            .map(|(service, tags)| {
                Value::Object(HashMap::from([
                    ("Name".to_owned(), Value::from(service)),
                    ("Tags".to_owned(), Value::Array(tags.into_iter().map(Value::from).collect())),
                ]))
            })
            .collect()
    });
    Ok(Value::Array(listed))
}

/// consul-template's `service "[TAG.]NAME"`: the healthy instances.
pub(crate) fn service(args: &[Value]) -> Result<Value, FuncError> {
    instances("service", args, true)
}

/// Nomad's `nomadService "[TAG.]NAME"`: every instance, healthy or not
/// (Nomad's own catalogue has no health).
pub(crate) fn nomad_service(args: &[Value]) -> Result<Value, FuncError> {
    instances("nomadService", args, false)
}

/// consul-template's `services`: each service once (`.Name`, `.Tags`),
/// by name.
pub(crate) fn services(args: &[Value]) -> Result<Value, FuncError> {
    service_names(args, "services")
}

/// Nomad's `nomadServices`, as `services`.
pub(crate) fn nomad_services(args: &[Value]) -> Result<Value, FuncError> {
    service_names(args, "nomadServices")
}

/// consul-template's `byTag`: the services (of `services`) or instances
/// (of `service`) piped in, grouped by each of their tags.
pub(crate) fn by_tag(args: &[Value]) -> Result<Value, FuncError> {
    let [Value::Array(entries)] = args else {
        return Err(FuncError::Generic("byTag needs a list of services, as `service \"NAME\" | byTag`".to_owned()));
    };
    let mut grouped: HashMap<String, Vec<Value>> = HashMap::new();
    for entry in entries {
        let tags = match entry {
            Value::Object(fields) | Value::Map(fields) => match fields.get("Tags") {
                Some(Value::Array(tags)) => tags.clone(),
                _ => Vec::new(),
            },
            other => return Err(FuncError::Generic(format!("byTag needs services, not {other}"))),
        };
        for tag in tags {
            grouped.entry(tag.to_string()).or_default().push(entry.clone());
        }
    }
    Ok(Value::Map(grouped.into_iter().map(|(tag, entries)| (tag, Value::Array(entries))).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Delimiters, render_with};

    fn data() -> ClusterData {
        let variables = BTreeMap::from([
            (
                "nomad/jobs/web".to_owned(),
                BTreeMap::from([("maxconns".to_owned(), "100".to_owned()), ("mode".to_owned(), "fast".to_owned())]),
            ),
            ("nomad/jobs/web/motd".to_owned(), BTreeMap::from([("value".to_owned(), "hello".to_owned())])),
            ("jobs/web/config".to_owned(), BTreeMap::from([("Items".to_owned(), "mine".to_owned())])),
        ]);
        let instance = |node: &str, port: u16, healthy: bool, tags: &[&str]| ServiceEntry {
            name: "db".to_owned(),
            id: format!("db-{node}-{port}"),
            address: format!("10.0.0.{}", node.len()),
            port,
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            meta: BTreeMap::from([("zone".to_owned(), "a".to_owned())]),
            node: node.to_owned(),
            node_id: format!("id-{node}"),
            alloc_id: format!("alloc-{port}"),
            job_id: "db".to_owned(),
            healthy,
        };
        let services = vec![
            instance("node-b", 5433, true, &["replica"]),
            instance("node-a", 5432, true, &["primary"]),
            instance("node-c", 5434, false, &["replica"]),
            ServiceEntry {
                name: "cache".to_owned(),
                tags: vec!["lru".to_owned()],
                healthy: true,
                ..Default::default()
            },
        ];
        ClusterData { variables, services }
    }

    fn rendered(text: &str) -> String {
        render_with(text, &Delimiters::default(), &BTreeMap::new(), &data()).unwrap()
    }

    fn error_of(text: &str) -> String {
        render_with(text, &Delimiters::default(), &BTreeMap::new(), &data()).unwrap_err().message
    }

    #[test]
    fn nomad_var_gives_the_items_by_name_by_index_and_under_items() {
        assert_eq!(rendered(r#"{{ with nomadVar "nomad/jobs/web" }}{{ .maxconns }}/{{ .mode }}{{ end }}"#), "100/fast");
        assert_eq!(rendered(r#"{{ index (nomadVar "nomad/jobs/web") "mode" }}"#), "fast");
        assert_eq!(rendered(r#"{{ (nomadVar "/nomad/jobs/web/").Items.maxconns }}"#), "100");
        // An item named Items wins over the `.Items` map.
        assert_eq!(rendered(r#"{{ (nomadVar "jobs/web/config").Items }}"#), "mine");
        let error = error_of(r#"{{ with nomadVar "nomad/jobs/other" }}{{ end }}"#);
        assert!(error.contains("variable \"nomad/jobs/other\" does not exist or this job may not read it"), "{error}");
        assert!(error.contains("drover var put nomad/jobs/other"), "{error}");
        assert!(error_of(r#"{{ nomadVar }}"#).contains("nomadVar"));
        assert!(error_of(r#"{{ nomadVar 3 }}"#).contains("needs a path or name in quotes"));
    }

    #[test]
    fn nomad_var_exists_and_lists_answer_from_what_the_job_may_read() {
        assert_eq!(rendered(r#"{{ nomadVarExists "nomad/jobs/web" }} {{ nomadVarExists "nope" }}"#), "true false");
        assert_eq!(
            rendered(r#"{{ range nomadVarList "nomad/jobs/" }}{{ .Path }};{{ end }}"#),
            "nomad/jobs/web;nomad/jobs/web/motd;"
        );
        assert_eq!(rendered(r#"{{ len nomadVarList }} {{ len (nomadVarListSafe "jobs") }}"#), "3 1");
        assert!(error_of(r#"{{ nomadVarList 1 2 }}"#).contains("optional path prefix"));
    }

    #[test]
    fn key_reads_a_single_item_variable_or_an_item_of_the_parent() {
        // The variable itself, with one item.
        assert_eq!(rendered(r#"{{ key "nomad/jobs/web/motd" }}"#), "hello");
        // Item `maxconns` of the variable `nomad/jobs/web`.
        assert_eq!(rendered(r#"{{ key "nomad/jobs/web/maxconns" }}"#), "100");
        assert_eq!(
            rendered(r#"{{ keyOrDefault "nomad/jobs/web/none" "7" }} {{ keyOrDefault "nomad/jobs/web/mode" "x" }}"#),
            "7 fast"
        );
        assert_eq!(rendered(r#"{{ keyExists "nomad/jobs/web/mode" }} {{ keyExists "a/b" }}"#), "true false");
        let error = error_of(r#"{{ key "app/db/password" }}"#);
        assert!(error.contains("item password of the variable app/db") && error.contains("keyOrDefault"), "{error}");
        assert!(error_of(r#"{{ keyOrDefault "a" }}"#).contains("a path in quotes and a default"));
    }

    #[test]
    fn service_gives_healthy_instances_in_node_order_with_nomads_fields() {
        let text = r#"{{ range service "db" }}{{ .Name }}@{{ .Address }}:{{ .Port }} {{ join "," .Tags }} {{ .Meta.zone }} {{ .Node }};{{ end }}"#;
        assert_eq!(rendered(text), "db@10.0.0.6:5432 primary a node-a;db@10.0.0.6:5433 replica a node-b;");
        assert_eq!(rendered(r#"{{ range service "replica.db" }}{{ .Port }}{{ end }}"#), "5433");
        assert_eq!(rendered(r#"{{ range service "db@dc1" }}{{ .ID }};{{ end }}"#), "db-node-a-5432;db-node-b-5433;");
        assert_eq!(rendered(r#"{{ len (service "nothing") }}"#), "0");
        assert!(error_of(r#"{{ service }}"#).contains("takes a service name"));
    }

    #[test]
    fn nomad_service_gives_every_instance_and_services_each_name_once() {
        assert_eq!(
            rendered(r#"{{ range nomadService "db" }}{{ .Port }}/{{ .Status }} {{ end }}"#),
            "5432/passing 5433/passing 5434/critical "
        );
        assert_eq!(
            rendered(r#"{{ range nomadService "replica.db" }}{{ .AllocID }} {{ end }}"#),
            "alloc-5433 alloc-5434 "
        );
        let names = r#"{{ range services }}{{ .Name }}[{{ join "," .Tags }}] {{ end }}"#;
        assert_eq!(rendered(names), "cache[lru] db[primary,replica] ");
        assert_eq!(rendered(&names.replace("services", "nomadServices")), "cache[lru] db[primary,replica] ");
        assert!(error_of(r#"{{ services 1 }}"#).contains("takes no argument"));
    }

    #[test]
    fn by_tag_groups_instances_and_services_by_their_tags() {
        let text = r#"{{ $tags := nomadService "db" | byTag }}{{ len $tags.replica }} {{ range $tags.primary }}{{ .Port }}{{ end }}"#;
        assert_eq!(rendered(text), "2 5432");
        assert_eq!(rendered(r#"{{ with services | byTag }}{{ range .lru }}{{ .Name }}{{ end }}{{ end }}"#), "cache");
        assert!(error_of(r#"{{ "x" | byTag }}"#).contains("byTag needs a list of services"));
        assert_eq!(
            rendered(r#"{{ toJSONPretty (nomadVar "nomad/jobs/web/motd").Items }}"#),
            "{\n  \"value\": \"hello\"\n}"
        );
    }

    #[test]
    fn without_cluster_data_nothing_is_found() {
        let error = crate::render(r#"{{ key "a/b" }}"#, &Delimiters::default(), &BTreeMap::new()).unwrap_err();
        assert!(error.message.contains("\"a/b\" is not set"), "{error}");
        // The data of one render does not leak into the next.
        assert_eq!(rendered(r#"{{ key "nomad/jobs/web/mode" }}"#), "fast");
        let empty = crate::render(r#"{{ len (service "db") }}"#, &Delimiters::default(), &BTreeMap::new()).unwrap();
        assert_eq!(empty, "0");
    }
}
