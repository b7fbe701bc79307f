//! The functions templates may call beyond Go's built-ins, and those
//! refused because they need something drover does not have.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use gtmpl::{Func, FuncError, Value};

use crate::cluster;

thread_local! {
    /// The environment of the task whose template this thread renders
    /// (see `render`).
    pub(crate) static TASK_ENV: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };

    /// The text (with Go's delimiters) of the template this thread renders,
    /// for `executeTemplate` to find its `define`d templates in.
    pub(crate) static TEMPLATE_TEXT: RefCell<String> = const { RefCell::new(String::new()) };

    /// How many `executeTemplate` calls are running inside each other on
    /// this thread.
    static EXECUTE_DEPTH: RefCell<usize> = const { RefCell::new(0) };
}

/// The deepest `executeTemplate` may nest (a template executing itself
/// would otherwise never end).
const MAXIMUM_EXECUTE_DEPTH: usize = 32;

/// The consul-template functions drover has: name, function, what it does.
pub const FUNCTIONS: [(&str, Func, &str); 32] = [
    ("env", env, "env \"NAME\": the task's environment variable, empty when unset"),
    ("toLower", to_lower, "toLower STRING"),
    ("toUpper", to_upper, "toUpper STRING"),
    ("toTitle", to_title, "toTitle STRING: each word capitalised"),
    ("trimSpace", trim_space, "trimSpace STRING"),
    ("split", split, "split SEPARATOR STRING: a list"),
    ("join", join, "join SEPARATOR LIST"),
    ("replaceAll", replace_all, "replaceAll OLD NEW STRING"),
    ("contains", contains, "contains NEEDLE LIST_OR_STRING"),
    ("parseInt", parse_int, "parseInt STRING"),
    ("parseBool", parse_bool, "parseBool STRING"),
    ("toJSON", to_json, "toJSON VALUE"),
    ("parseJSON", parse_json, "parseJSON STRING"),
    ("add", add, "add B A: A + B (so that A | add B reads as A + B)"),
    ("subtract", subtract, "subtract B A: A - B"),
    ("multiply", multiply, "multiply B A: A * B"),
    ("divide", divide, "divide B A: A / B"),
    ("modulo", modulo, "modulo B A: A % B"),
    (
        "executeTemplate",
        execute_template,
        "executeTemplate \"NAME\" [DATA]: the output of the template defined as NAME, run with DATA as its dot",
    ),
    ("nomadVar", cluster::nomad_var, "nomadVar \"PATH\": the drover variable's items (.NAME, .Items)"),
    ("nomadVarExists", cluster::nomad_var_exists, "nomadVarExists \"PATH\": whether the variable exists"),
    ("nomadVarList", cluster::nomad_var_list, "nomadVarList [\"PREFIX\"]: the variables (.Path) under PREFIX"),
    ("nomadVarListSafe", cluster::nomad_var_list_safe, "nomadVarListSafe [\"PREFIX\"]: as nomadVarList"),
    ("key", cluster::key, "key \"A/B/C\": the only item of variable A/B/C, else item C of variable A/B"),
    ("keyOrDefault", cluster::key_or_default, "keyOrDefault \"PATH\" DEFAULT: key, or DEFAULT when unset"),
    ("keyExists", cluster::key_exists, "keyExists \"PATH\": whether key would find a value"),
    ("service", cluster::service, "service \"[TAG.]NAME\": the healthy instances (.Address, .Port, .Tags, .ID)"),
    ("services", cluster::services, "services: every service (.Name, .Tags)"),
    ("nomadService", cluster::nomad_service, "nomadService \"[TAG.]NAME\": every instance of the service"),
    ("nomadServices", cluster::nomad_services, "nomadServices: every service (.Name, .Tags)"),
    ("byTag", cluster::by_tag, "LIST | byTag: the services or instances of LIST by each of their .Tags"),
    ("toJSONPretty", to_json_pretty, "toJSONPretty VALUE: indented JSON"),
];

const CONSUL_KV: &str = "drover's key/value store is its variables: read one value with key \"PATH\" or a variable's items with nomadVar \"PATH\", list variables with nomadVarList \"PREFIX\"";
const CONSUL_HEALTH: &str =
    "drover's catalogue is read with service \"NAME\" (healthy instances) or nomadService \"NAME\" (all)";
const MESH: &str = "drover has no service mesh (Consul Connect)";
const VAULT: &str = "drover has no Vault integration: give secrets to the task through its env or a file on the node";
const NODES: &str =
    "drover has no catalogue of nodes for templates: read this node's facts with env (DROVER_NODE_NAME, NOMAD_DC, …)";

/// Functions of Nomad's and consul-template's that need something drover
/// does not have, with what to do instead.
pub const REFUSED: [(&str, &str); 17] = [
    ("ls", CONSUL_KV),
    ("safeLs", CONSUL_KV),
    ("tree", CONSUL_KV),
    ("safeTree", CONSUL_KV),
    ("connect", MESH),
    ("health", CONSUL_HEALTH),
    ("caRoots", MESH),
    ("caLeaf", MESH),
    ("secret", VAULT),
    ("secrets", VAULT),
    ("pkiCert", VAULT),
    ("node", NODES),
    ("nodes", NODES),
    ("datacenters", NODES),
    ("file", "templates do not read files of the node yet: render the file with source = \"<path>\" instead"),
    ("plugin", "drover runs no template plugins"),
    ("writeToFile", "a template writes its destination only"),
];

fn string_argument(name: &str, args: &[Value], index: usize, count: usize) -> Result<String, FuncError> {
    if args.len() != count {
        return Err(FuncError::ExactlyXArgs(name.to_owned(), count));
    }
    match &args[index] {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        other => Err(FuncError::Generic(format!("{name} needs a string, not {other}"))),
    }
}

fn env(args: &[Value]) -> Result<Value, FuncError> {
    let name = string_argument("env", args, 0, 1)?;
    Ok(Value::from(TASK_ENV.with(|slot| slot.borrow().get(&name).cloned().unwrap_or_default())))
}

/// consul-template's `executeTemplate`: runs a template `define`d in the
/// text being rendered, with the optional second argument as its dot, and
/// returns its output as a string (so it can be piped, unlike Go's
/// `{{ template }}`).
fn execute_template(args: &[Value]) -> Result<Value, FuncError> {
    let (name, data) = match args {
        [Value::String(name)] => (name.clone(), Value::NoValue),
        [Value::String(name), data] => (name.clone(), data.clone()),
        _ => return Err(FuncError::Generic("executeTemplate takes a template name and an optional value".to_owned())),
    };
    let depth = EXECUTE_DEPTH.with(|slot| *slot.borrow());
    if depth >= MAXIMUM_EXECUTE_DEPTH {
        return Err(FuncError::Generic(format!(
            "executeTemplate \"{name}\" is nested more than {MAXIMUM_EXECUTE_DEPTH} deep: a template executes itself"
        )));
    }
    let text = TEMPLATE_TEXT.with(|slot| slot.borrow().clone());
    let mut template = gtmpl::Template::default();
    for (function_name, function, _) in FUNCTIONS {
        template.add_func(function_name, function);
    }
    template.parse(text).map_err(|error| FuncError::Generic(format!("executeTemplate: {error}")))?;
    if name.is_empty() || !template.tree_set.contains_key(&name) {
        return Err(FuncError::Generic(format!(
            "executeTemplate: no template is defined as \"{name}\": add {{{{ define \"{name}\" }}}} … {{{{ end }}}}"
        )));
    }
    template.name = name;
    EXECUTE_DEPTH.with(|slot| *slot.borrow_mut() += 1);
    let rendered = template.render(&gtmpl::Context::from(data));
    EXECUTE_DEPTH.with(|slot| *slot.borrow_mut() -= 1);
    rendered.map(Value::from).map_err(|error| FuncError::Generic(format!("executeTemplate: {error}")))
}

fn to_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(string_argument("toLower", args, 0, 1)?.to_lowercase()))
}

fn to_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(string_argument("toUpper", args, 0, 1)?.to_uppercase()))
}

fn to_title(args: &[Value]) -> Result<Value, FuncError> {
    let text = string_argument("toTitle", args, 0, 1)?;
    let mut title = String::with_capacity(text.len());
    let mut at_word_start = true;
    for character in text.chars() {
        if at_word_start {
            title.extend(character.to_uppercase());
        } else {
            title.push(character);
        }
        at_word_start = character.is_whitespace();
    }
    Ok(Value::from(title))
}

fn trim_space(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(string_argument("trimSpace", args, 0, 1)?.trim().to_owned()))
}

fn split(args: &[Value]) -> Result<Value, FuncError> {
    let separator = string_argument("split", args, 0, 2)?;
    let text = string_argument("split", args, 1, 2)?;
    if text.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    Ok(Value::Array(text.split(separator.as_str()).map(Value::from).collect()))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    let separator = string_argument("join", args, 0, 2)?;
    let Value::Array(items) = &args[1] else {
        return Err(FuncError::Generic(format!("join needs a list, not {}", args[1])));
    };
    Ok(Value::from(items.iter().map(ToString::to_string).collect::<Vec<_>>().join(&separator)))
}

fn replace_all(args: &[Value]) -> Result<Value, FuncError> {
    let old = string_argument("replaceAll", args, 0, 3)?;
    let new = string_argument("replaceAll", args, 1, 3)?;
    let text = string_argument("replaceAll", args, 2, 3)?;
    Ok(Value::from(text.replace(&old, &new)))
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() != 2 {
        return Err(FuncError::ExactlyXArgs("contains".to_owned(), 2));
    }
    let found = match (&args[0], &args[1]) {
        (needle, Value::Array(items)) => {
            items.iter().any(|item| item == needle || item.to_string() == needle.to_string())
        }
        (needle, Value::String(text)) => text.contains(&needle.to_string()),
        (_, other) => return Err(FuncError::Generic(format!("contains needs a list or a string, not {other}"))),
    };
    Ok(Value::Bool(found))
}

fn parse_int(args: &[Value]) -> Result<Value, FuncError> {
    let text = string_argument("parseInt", args, 0, 1)?;
    text.trim()
        .parse::<i64>()
        .map(Value::from)
        .map_err(|error| FuncError::Generic(format!("parseInt: {text:?} is not an integer ({error})")))
}

fn parse_bool(args: &[Value]) -> Result<Value, FuncError> {
    let text = string_argument("parseBool", args, 0, 1)?;
    match text.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
        _ => Err(FuncError::Generic(format!("parseBool: {text:?} is not a boolean"))),
    }
}

fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() != 1 {
        return Err(FuncError::ExactlyXArgs("toJSON".to_owned(), 1));
    }
    Ok(Value::from(json_of(&args[0]).to_string()))
}

fn to_json_pretty(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() != 1 {
        return Err(FuncError::ExactlyXArgs("toJSONPretty".to_owned(), 1));
    }
    serde_json::to_string_pretty(&json_of(&args[0]))
        .map(Value::from)
        .map_err(|error| FuncError::Generic(format!("toJSONPretty: {error}")))
}

fn parse_json(args: &[Value]) -> Result<Value, FuncError> {
    let text = string_argument("parseJSON", args, 0, 1)?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|error| FuncError::Generic(format!("parseJSON: {error}")))?;
    Ok(value_of(&json))
}

fn json_of(value: &Value) -> serde_json::Value {
    match value {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::String(text) => serde_json::Value::String(text.clone()),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                serde_json::Value::from(integer)
            } else if let Some(integer) = number.as_u64() {
                serde_json::Value::from(integer)
            } else {
                number.as_f64().map_or(serde_json::Value::Null, serde_json::Value::from)
            }
        }
        Value::Array(items) => serde_json::Value::Array(items.iter().map(json_of).collect()),
        Value::Object(fields) | Value::Map(fields) => {
            let sorted: BTreeMap<&String, &Value> = fields.iter().collect();
            serde_json::Value::Object(sorted.into_iter().map(|(key, item)| (key.clone(), json_of(item))).collect())
        }
    }
}

fn value_of(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Value::from(integer)
            } else if let Some(integer) = number.as_u64() {
                Value::from(integer)
            } else {
                Value::from(number.as_f64().unwrap_or_default())
            }
        }
        serde_json::Value::String(text) => Value::from(text.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(value_of).collect()),
        serde_json::Value::Object(fields) => {
            Value::Map(fields.iter().map(|(key, item)| (key.clone(), value_of(item))).collect::<HashMap<_, _>>())
        }
    }
}

/// The two numbers of consul-template's arithmetic functions, in the
/// order `(a, b)` of `a OP b` (the piped value comes last).
fn operands(name: &str, args: &[Value]) -> Result<(i64, i64), FuncError> {
    if args.len() != 2 {
        return Err(FuncError::ExactlyXArgs(name.to_owned(), 2));
    }
    let number = |value: &Value| match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    match (number(&args[1]), number(&args[0])) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(FuncError::Generic(format!("{name} needs two whole numbers, not {} and {}", args[1], args[0]))),
    }
}

fn arithmetic(name: &str, args: &[Value], operation: fn(i64, i64) -> Option<i64>) -> Result<Value, FuncError> {
    let (a, b) = operands(name, args)?;
    operation(a, b).map(Value::from).ok_or_else(|| {
        FuncError::Generic(format!("{name}: {a} and {b} give no whole number (overflow or division by 0)"))
    })
}

fn add(args: &[Value]) -> Result<Value, FuncError> {
    arithmetic("add", args, i64::checked_add)
}

fn subtract(args: &[Value]) -> Result<Value, FuncError> {
    arithmetic("subtract", args, i64::checked_sub)
}

fn multiply(args: &[Value]) -> Result<Value, FuncError> {
    arithmetic("multiply", args, i64::checked_mul)
}

fn divide(args: &[Value]) -> Result<Value, FuncError> {
    arithmetic("divide", args, i64::checked_div)
}

fn modulo(args: &[Value]) -> Result<Value, FuncError> {
    arithmetic("modulo", args, i64::checked_rem)
}
