//! The HCL functions a definition file may call: the pure part of Nomad's
//! HCL2 function library (go-cty's standard functions), evaluated by
//! `hcl::eval` while the file is read.
//!
//! `uuidv4()` and `timestamp()` are evaluated while the file is read, as
//! Nomad does: a random UUID and the current time in UTC (RFC 3339, whole
//! seconds). They make a file read differently each time, so a job using
//! them changes at every `job run` and `job plan` always shows a change.
//!
//! Left out on purpose, each refused at its position with what to do:
//! functions that read the machine (`file`, `env`): a job file reads the
//! same wherever it is read, so those values come in as variables;
//! `uuidv5`; and `try`/`can`, which need lazy evaluation that `hcl::eval`
//! does not have.
//!
//! A runtime reference such as `"${node.unique.name}"` is only text while
//! the file is read, so a function that looks into its argument (`upper`,
//! `length`, `split`, …) cannot be given one; functions that only move
//! text around (`format`, `join`, `concat`, `lookup`, …) can.

use hcl::Value;
use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};

use crate::expression::{describe_value, number_as_text, value_as_text};

/// Functions that keep their arguments' text whole, so runtime references
/// may pass through them.
pub(crate) const TEXT_PRESERVING: [&str; 14] = [
    "format",
    "join",
    "concat",
    "merge",
    "lookup",
    "element",
    "coalesce",
    "compact",
    "distinct",
    "flatten",
    "reverse",
    "tostring",
    "trimspace",
    "values",
];

/// Functions refused, with what to do instead.
pub(crate) const REFUSED: [(&str, &str); 5] = [
    ("file", "paste the content into the job file, or pass it as a variable (-var-file)"),
    ("uuidv5", "pass the value with -var"),
    ("env", "pass the value with -var, or DROVER_VAR_<name>"),
    ("try", "give a default in the variable block instead"),
    ("can", "give a default in the variable block instead"),
];

/// Every function a file may call.
pub const SUPPORTED: [&str; 35] = [
    "abs",
    "ceil",
    "chomp",
    "coalesce",
    "compact",
    "concat",
    "contains",
    "distinct",
    "element",
    "flatten",
    "floor",
    "format",
    "join",
    "jsonencode",
    "keys",
    "length",
    "lookup",
    "lower",
    "max",
    "merge",
    "min",
    "replace",
    "reverse",
    "split",
    "substr",
    "timestamp",
    "title",
    "tonumber",
    "tostring",
    "trimprefix",
    "trimspace",
    "trimsuffix",
    "upper",
    "uuidv4",
    "values",
];

/// Declares every supported function in `context`.
pub(crate) fn declare_all(context: &mut Context<'static>) {
    let any = || ParamType::Any;
    let string = || ParamType::String;
    let number = || ParamType::Number;
    let list = || ParamType::array_of(ParamType::Any);
    let definitions: [(&str, FuncDef); 35] = [
        ("abs", FuncDef::new(abs, [number()])),
        ("ceil", FuncDef::new(ceil, [number()])),
        ("chomp", FuncDef::new(chomp, [string()])),
        ("coalesce", FuncDef::builder().variadic_param(any()).build(coalesce)),
        ("compact", FuncDef::new(compact, [list()])),
        ("concat", FuncDef::builder().variadic_param(list()).build(concat)),
        ("contains", FuncDef::new(contains, [list(), any()])),
        ("distinct", FuncDef::new(distinct, [list()])),
        ("element", FuncDef::new(element, [list(), number()])),
        ("flatten", FuncDef::new(flatten, [list()])),
        ("floor", FuncDef::new(floor, [number()])),
        ("format", FuncDef::builder().param(string()).variadic_param(any()).build(format)),
        ("join", FuncDef::builder().param(string()).variadic_param(list()).build(join)),
        ("jsonencode", FuncDef::new(jsonencode, [any()])),
        ("keys", FuncDef::new(keys, [ParamType::object_of(any())])),
        ("length", FuncDef::new(length, [any()])),
        (
            "lookup",
            FuncDef::builder().params([ParamType::object_of(any()), string()]).variadic_param(any()).build(lookup),
        ),
        ("lower", FuncDef::new(lower, [string()])),
        ("max", FuncDef::builder().variadic_param(number()).build(max)),
        ("merge", FuncDef::builder().variadic_param(ParamType::object_of(any())).build(merge)),
        ("min", FuncDef::builder().variadic_param(number()).build(min)),
        ("replace", FuncDef::new(replace, [string(), string(), string()])),
        ("reverse", FuncDef::new(reverse, [list()])),
        ("split", FuncDef::new(split, [string(), string()])),
        ("substr", FuncDef::new(substr, [string(), number(), number()])),
        ("timestamp", FuncDef::builder().build(timestamp)),
        ("title", FuncDef::new(title, [string()])),
        ("tonumber", FuncDef::new(tonumber, [any()])),
        ("tostring", FuncDef::new(tostring, [any()])),
        ("trimprefix", FuncDef::new(trimprefix, [string(), string()])),
        ("trimspace", FuncDef::new(trimspace, [string()])),
        ("trimsuffix", FuncDef::new(trimsuffix, [string(), string()])),
        ("upper", FuncDef::new(upper, [string()])),
        ("uuidv4", FuncDef::builder().build(uuidv4)),
        ("values", FuncDef::new(values, [ParamType::object_of(any())])),
    ];
    for (name, definition) in definitions {
        context.declare_func(name, definition);
    }
}

type Outcome = Result<Value, String>;

fn text(value: &Value) -> String {
    value_as_text(value).unwrap_or_default()
}

fn string_at(args: &FuncArgs, index: usize) -> String {
    args.get(index).map(text).unwrap_or_default()
}

fn float_at(args: &FuncArgs, index: usize) -> f64 {
    args.get(index).and_then(Value::as_f64).unwrap_or(0.0)
}

fn list_at(args: &FuncArgs, index: usize) -> Vec<Value> {
    args.get(index).and_then(Value::as_array).cloned().unwrap_or_default()
}

fn number(float: f64) -> Value {
    if float.fract() == 0.0 && float.abs() < 9e15 {
        #[allow(clippy::cast_possible_truncation)]
        return Value::from(float as i64);
    }
    hcl::Number::from_f64(float).map_or(Value::Null, Value::Number)
}

fn abs(args: FuncArgs) -> Outcome {
    Ok(number(float_at(&args, 0).abs()))
}

fn ceil(args: FuncArgs) -> Outcome {
    Ok(number(float_at(&args, 0).ceil()))
}

fn floor(args: FuncArgs) -> Outcome {
    Ok(number(float_at(&args, 0).floor()))
}

/// A random (version 4) UUID, new at every call.
fn uuidv4(_args: FuncArgs) -> Outcome {
    Ok(Value::from(uuid::Uuid::new_v4().to_string()))
}

/// The time the file is read, in UTC: `2026-12-07T06:13:47Z`.
fn timestamp(_args: FuncArgs) -> Outcome {
    let now = drover_types::Timestamp::now().to_datetime();
    Ok(Value::from(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

fn chomp(args: FuncArgs) -> Outcome {
    Ok(Value::from(string_at(&args, 0).trim_end_matches(['\n', '\r']).to_owned()))
}

fn coalesce(args: FuncArgs) -> Outcome {
    args.iter()
        .find(|value| !value.is_null() && value.as_str() != Some(""))
        .cloned()
        .ok_or_else(|| "coalesce: every argument is null or empty".to_owned())
}

fn compact(args: FuncArgs) -> Outcome {
    Ok(Value::Array(
        list_at(&args, 0).into_iter().filter(|value| !value.is_null() && value.as_str() != Some("")).collect(),
    ))
}

fn concat(args: FuncArgs) -> Outcome {
    Ok(Value::Array(args.iter().filter_map(Value::as_array).flatten().cloned().collect()))
}

fn contains(args: FuncArgs) -> Outcome {
    let needle = args.get(1).cloned().unwrap_or(Value::Null);
    Ok(Value::Bool(list_at(&args, 0).contains(&needle)))
}

fn distinct(args: FuncArgs) -> Outcome {
    let mut seen: Vec<Value> = Vec::new();
    for value in list_at(&args, 0) {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    Ok(Value::Array(seen))
}

fn element(args: FuncArgs) -> Outcome {
    let list = list_at(&args, 0);
    if list.is_empty() {
        return Err("element: the list is empty".to_owned());
    }
    let index = float_at(&args, 1);
    if index < 0.0 {
        return Err("element: the index must not be negative".to_owned());
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let position = (index as usize) % list.len();
    Ok(list[position].clone())
}

fn flatten(args: FuncArgs) -> Outcome {
    fn add(value: Value, output: &mut Vec<Value>) {
        match value {
            Value::Array(items) => items.into_iter().for_each(|item| add(item, output)),
            other => output.push(other),
        }
    }
    let mut output = Vec::new();
    list_at(&args, 0).into_iter().for_each(|value| add(value, &mut output));
    Ok(Value::Array(output))
}

/// go-cty's `format`: `%s`, `%d`, `%v`, `%q`, `%f` (with a precision such as
/// `%.2f`), `%t` and `%%`.
fn format(args: FuncArgs) -> Outcome {
    let pattern = string_at(&args, 0);
    let mut values = args.iter().skip(1);
    let mut output = String::new();
    let mut characters = pattern.chars().peekable();
    while let Some(character) = characters.next() {
        if character != '%' {
            output.push(character);
            continue;
        }
        let mut precision = String::new();
        while let Some(next) = characters.peek().copied().filter(|next| next.is_ascii_digit() || *next == '.') {
            precision.push(next);
            characters.next();
        }
        let verb = characters.next().ok_or_else(|| format!("format: {pattern:?} ends with a lone %"))?;
        if verb == '%' {
            output.push('%');
            continue;
        }
        let value = values.next().ok_or_else(|| format!("format: {pattern:?} has more verbs than arguments"))?;
        match verb {
            's' | 'v' | 't' => output.push_str(&text(value)),
            'd' => output.push_str(&number_as_text(
                &value
                    .as_number()
                    .cloned()
                    .ok_or_else(|| format!("format: %d needs a number, not {}", describe_value(value)))?,
            )),
            'q' => output.push_str(&format!("{:?}", text(value))),
            'f' => {
                let float = value
                    .as_f64()
                    .ok_or_else(|| format!("format: %f needs a number, not {}", describe_value(value)))?;
                let digits = precision.trim_start_matches('.').parse::<usize>().unwrap_or(6);
                output.push_str(&format!("{float:.digits$}"));
            }
            other => return Err(format!("format: the verb %{other} is not supported: use %s, %d, %v, %q, %f or %t")),
        }
    }
    Ok(Value::from(output))
}

fn join(args: FuncArgs) -> Outcome {
    let separator = string_at(&args, 0);
    let parts: Vec<String> = args.iter().skip(1).filter_map(Value::as_array).flatten().map(text).collect();
    Ok(Value::from(parts.join(&separator)))
}

fn jsonencode(args: FuncArgs) -> Outcome {
    let value = args.first().cloned().unwrap_or(Value::Null);
    serde_json_like(&value).map(Value::from).ok_or_else(|| "jsonencode: the value cannot be encoded".to_owned())
}

/// JSON text of an HCL value (objects keep their key order).
fn serde_json_like(value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number_as_text(number),
        Value::String(text) => format!("{text:?}"),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(serde_json_like).collect::<Option<Vec<_>>>()?.join(","))
        }
        Value::Object(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(key, entry)| serde_json_like(entry).map(|encoded| format!("{key:?}:{encoded}")))
                .collect::<Option<Vec<_>>>()?
                .join(",")
        ),
    })
}

fn keys(args: FuncArgs) -> Outcome {
    let object = args.first().and_then(Value::as_object).cloned().unwrap_or_default();
    Ok(Value::Array(object.keys().map(|key| Value::from(key.clone())).collect()))
}

fn values(args: FuncArgs) -> Outcome {
    let object = args.first().and_then(Value::as_object).cloned().unwrap_or_default();
    Ok(Value::Array(object.values().cloned().collect()))
}

fn length(args: FuncArgs) -> Outcome {
    let count = match args.first() {
        Some(Value::String(text)) => text.chars().count(),
        Some(Value::Array(items)) => items.len(),
        Some(Value::Object(entries)) => entries.len(),
        Some(other) => return Err(format!("length: needs a string, list or map, not {}", describe_value(other))),
        None => 0,
    };
    Ok(Value::from(count as u64))
}

fn lookup(args: FuncArgs) -> Outcome {
    let object = args.first().and_then(Value::as_object).cloned().unwrap_or_default();
    let key = string_at(&args, 1);
    match (object.get(&key), args.get(2)) {
        (Some(value), _) => Ok(value.clone()),
        (None, Some(default)) => Ok(default.clone()),
        (None, None) => Err(format!("lookup: the map has no key \"{key}\" and no default was given")),
    }
}

fn lower(args: FuncArgs) -> Outcome {
    Ok(Value::from(string_at(&args, 0).to_lowercase()))
}

fn upper(args: FuncArgs) -> Outcome {
    Ok(Value::from(string_at(&args, 0).to_uppercase()))
}

fn title(args: FuncArgs) -> Outcome {
    let mut output = String::new();
    let mut at_word_start = true;
    for character in string_at(&args, 0).chars() {
        if at_word_start {
            output.extend(character.to_uppercase());
        } else {
            output.push(character);
        }
        at_word_start = character.is_whitespace();
    }
    Ok(Value::from(output))
}

fn max(args: FuncArgs) -> Outcome {
    args.iter().filter_map(Value::as_f64).reduce(f64::max).map(number).ok_or_else(|| "max: needs numbers".to_owned())
}

fn min(args: FuncArgs) -> Outcome {
    args.iter().filter_map(Value::as_f64).reduce(f64::min).map(number).ok_or_else(|| "min: needs numbers".to_owned())
}

fn merge(args: FuncArgs) -> Outcome {
    let mut merged = hcl::Map::new();
    for object in args.iter().filter_map(Value::as_object) {
        merged.extend(object.iter().map(|(key, value)| (key.clone(), value.clone())));
    }
    Ok(Value::Object(merged))
}

fn replace(args: FuncArgs) -> Outcome {
    let (subject, search, replacement) = (string_at(&args, 0), string_at(&args, 1), string_at(&args, 2));
    if search.len() > 1 && search.starts_with('/') && search.ends_with('/') {
        return Err("replace: regular expressions (/…/) are not supported by drover: give the literal text".to_owned());
    }
    Ok(Value::from(subject.replace(&search, &replacement)))
}

fn reverse(args: FuncArgs) -> Outcome {
    let mut list = list_at(&args, 0);
    list.reverse();
    Ok(Value::Array(list))
}

fn split(args: FuncArgs) -> Outcome {
    let (separator, subject) = (string_at(&args, 0), string_at(&args, 1));
    Ok(Value::Array(subject.split(separator.as_str()).map(Value::from).collect()))
}

fn substr(args: FuncArgs) -> Outcome {
    let subject: Vec<char> = string_at(&args, 0).chars().collect();
    let (offset, length) = (float_at(&args, 1), float_at(&args, 2));
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let start = if offset < 0.0 { subject.len().saturating_sub((-offset) as usize) } else { offset as usize };
    let start = start.min(subject.len());
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let end = if length < 0.0 { subject.len() } else { (start + length as usize).min(subject.len()) };
    Ok(Value::from(subject[start..end].iter().collect::<String>()))
}

fn tonumber(args: FuncArgs) -> Outcome {
    match args.first() {
        Some(Value::Number(number)) => Ok(Value::Number(*number)),
        Some(Value::String(text)) => {
            text.trim().parse::<f64>().map(number).map_err(|_| format!("tonumber: {text:?} is not a number"))
        }
        Some(other) => Err(format!("tonumber: cannot convert {}", describe_value(other))),
        None => Ok(Value::Null),
    }
}

fn tostring(args: FuncArgs) -> Outcome {
    match args.first() {
        Some(value) => value_as_text(value)
            .map(Value::from)
            .ok_or_else(|| format!("tostring: cannot convert {}", describe_value(value))),
        None => Ok(Value::Null),
    }
}

fn trimprefix(args: FuncArgs) -> Outcome {
    let (subject, prefix) = (string_at(&args, 0), string_at(&args, 1));
    Ok(Value::from(subject.strip_prefix(prefix.as_str()).unwrap_or(&subject).to_owned()))
}

fn trimsuffix(args: FuncArgs) -> Outcome {
    let (subject, suffix) = (string_at(&args, 0), string_at(&args, 1));
    Ok(Value::from(subject.strip_suffix(suffix.as_str()).unwrap_or(&subject).to_owned()))
}

fn trimspace(args: FuncArgs) -> Outcome {
    Ok(Value::from(string_at(&args, 0).trim().to_owned()))
}
