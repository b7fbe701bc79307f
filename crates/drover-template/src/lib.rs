//! Nomad's `template` blocks: Go text/template syntax, as Nomad and
//! consul-template users write it, with the functions drover can answer.
//!
//! The syntax is [gtmpl]'s (Go's `text/template`: `{{ if }}`, `{{ with }}`,
//! `{{ range }}`, pipelines, `{{- trim -}}`, variables, `printf`, `eq`,
//! `index`, `len`, …). On top of it come the consul-template and Nomad
//! functions in [`FUNCTIONS`], among them those that read the cluster:
//! drover variables (`nomadVar`, `nomadVarExists`, `nomadVarList`,
//! `nomadVarListSafe`, and Consul's `key`, `keyOrDefault`, `keyExists`
//! mapped onto variables) and the service catalogue (`service`,
//! `services`, `nomadService`, `nomadServices`). Those that need something
//! drover does not have (Consul's `ls`/`tree`, Vault, a mesh, other nodes)
//! are in [`REFUSED`] and are refused by [`check`] when the job file is
//! read, with what to do instead, so no template fails at run time for a
//! function it names.
//!
//! [`check`] is what the job file reader calls; [`render_with`] is what the
//! agent calls before the task starts and again when what the template
//! reads changes, with the task's environment for `env` and the
//! [`ClusterData`] the servers let the job read. Both are pure: no file or
//! network is read here.
//!
//! ```
//! use std::collections::BTreeMap;
//! use drover_template::{Delimiters, render};
//!
//! let env = BTreeMap::from([("NOMAD_PORT_http".to_owned(), "20123".to_owned())]);
//! let text = r#"listen = {{ env "NOMAD_PORT_http" }}"#;
//! assert_eq!(render(text, &Delimiters::default(), &env).unwrap(), "listen = 20123");
//! ```

mod cluster;
mod env_file;
mod functions;

use std::collections::BTreeMap;
use std::fmt;

pub use cluster::{ClusterData, ServiceEntry};
pub use env_file::parse_env_file;
pub use functions::{FUNCTIONS, REFUSED};

/// Go's default delimiters.
const LEFT: &str = "{{";
const RIGHT: &str = "}}";

/// A template's action delimiters (Nomad's `left_delimiter` and
/// `right_delimiter`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delimiters {
    /// Opens an action, `{{` by default.
    pub left: String,
    /// Closes an action, `}}` by default.
    pub right: String,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters { left: LEFT.to_owned(), right: RIGHT.to_owned() }
    }
}

/// What is wrong with a template, and where in it when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// The line of the template (from 1) the problem is on, when known.
    pub line: Option<usize>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(formatter, "line {line} of the template: {}", self.message),
            None => formatter.write_str(&self.message),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Checks that `text` parses and names only functions drover has.
pub fn check(text: &str, delimiters: &Delimiters) -> Result<(), TemplateError> {
    parse(text, delimiters).map(|_| ())
}

/// Renders `text` with no cluster data (every variable and service
/// absent); `env "NAME"` reads `env` (an unset name gives the empty
/// string, as in consul-template).
pub fn render(text: &str, delimiters: &Delimiters, env: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    render_with(text, delimiters, env, &ClusterData::default())
}

/// Renders `text`: `env "NAME"` reads `env`, the variable and service
/// functions read `cluster`.
pub fn render_with(
    text: &str,
    delimiters: &Delimiters,
    env: &BTreeMap<String, String>,
    cluster: &ClusterData,
) -> Result<String, TemplateError> {
    let template = parse(text, delimiters)?;
    // gtmpl's functions are plain `fn` pointers: the environment and the
    // cluster data reach the functions, and the text reaches
    // `executeTemplate`, through this thread's slots for the time of the
    // render.
    functions::TASK_ENV.with(|slot| *slot.borrow_mut() = env.clone());
    cluster::CLUSTER_DATA.with(|slot| *slot.borrow_mut() = cluster.clone());
    functions::TEMPLATE_TEXT.with(|slot| *slot.borrow_mut() = template.text.clone());
    let rendered = template.render(&gtmpl::Context::empty());
    functions::TASK_ENV.with(|slot| slot.borrow_mut().clear());
    cluster::CLUSTER_DATA.with(|slot| *slot.borrow_mut() = ClusterData::default());
    functions::TEMPLATE_TEXT.with(|slot| slot.borrow_mut().clear());
    rendered.map_err(|error| TemplateError { line: None, message: format!("cannot render: {error}") })
}

fn parse(text: &str, delimiters: &Delimiters) -> Result<gtmpl::Template, TemplateError> {
    let standard = with_standard_delimiters(text, delimiters)?;
    let mut template = gtmpl::Template::default();
    for (name, function, _) in FUNCTIONS {
        template.add_func(name, function);
    }
    template.parse(standard.clone()).map_err(|error| explain(text, &error))?;
    // Kept for `executeTemplate` (gtmpl's `parse` does not keep it).
    template.text = standard;
    Ok(template)
}

/// A parse error in words: a function drover does not have is named with
/// its reason and line; other errors keep gtmpl's message (its line
/// numbers are not reliable, so they are dropped).
fn explain(text: &str, error: &gtmpl::error::ParseError) -> TemplateError {
    let message = match error {
        gtmpl::error::ParseError::WithContext(_, message) => message.clone(),
        other => other.to_string(),
    };
    if let Some(name) = message.strip_prefix("function ").and_then(|rest| rest.strip_suffix(" not defined")) {
        let line = line_of_word(text, name);
        let message = match REFUSED.iter().find(|(refused, _)| *refused == name) {
            Some((_, why)) => format!("template function \"{name}\" is not supported by drover: {why}"),
            None => format!(
                "unknown template function \"{name}\": drover's templates have Go's built-ins and {}",
                FUNCTIONS.iter().map(|(name, _, _)| *name).collect::<Vec<_>>().join(", ")
            ),
        };
        return TemplateError { line, message };
    }
    TemplateError { line: None, message: format!("the template does not parse: {message}") }
}

/// The first line (from 1) on which `word` stands as a whole word.
fn line_of_word(text: &str, word: &str) -> Option<usize> {
    let is_word_byte = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_';
    text.lines()
        .position(|line| {
            line.match_indices(word).any(|(start, _)| {
                let before = line.as_bytes().get(start.wrapping_sub(1)).copied();
                let after = line.as_bytes().get(start + word.len()).copied();
                !before.is_some_and(is_word_byte) && !after.is_some_and(is_word_byte)
            })
        })
        .map(|index| index + 1)
}

/// `text` rewritten to Go's `{{ }}` delimiters (gtmpl has no others): the
/// actions between the custom delimiters become `{{ … }}`, and a literal
/// `{{` in the text around them becomes `{{"{{"}}`, so it stays text.
fn with_standard_delimiters(text: &str, delimiters: &Delimiters) -> Result<String, TemplateError> {
    if delimiters.left == LEFT && delimiters.right == RIGHT {
        return Ok(text.to_owned());
    }
    if delimiters.left.is_empty() || delimiters.right.is_empty() {
        return Err(TemplateError { line: None, message: "delimiters must not be empty".to_owned() });
    }
    let escape = |literal: &str| literal.replace(LEFT, "{{\"{{\"}}");
    let mut standard = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(&delimiters.left) {
        standard.push_str(&escape(&rest[..start]));
        let action = &rest[start + delimiters.left.len()..];
        let Some(end) = action.find(&delimiters.right) else {
            let line = text[..text.len() - rest.len() + start].lines().count().max(1);
            return Err(TemplateError {
                line: Some(line),
                message: format!("\"{}\" is not closed by \"{}\"", delimiters.left, delimiters.right),
            });
        };
        standard.push_str(LEFT);
        standard.push_str(&action[..end]);
        standard.push_str(RIGHT);
        rest = &action[end + delimiters.right.len()..];
    }
    standard.push_str(&escape(rest));
    Ok(standard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("NOMAD_PORT_http".to_owned(), "20123".to_owned()), ("NAMES".to_owned(), "a, b,c".to_owned())])
    }

    fn rendered(text: &str) -> String {
        render(text, &Delimiters::default(), &env()).unwrap()
    }

    #[test]
    fn env_reads_the_task_environment_and_unset_names_are_empty() {
        assert_eq!(rendered(r#"port={{ env "NOMAD_PORT_http" }} none=[{{ env "NOPE" }}]"#), "port=20123 none=[]");
    }

    #[test]
    fn go_control_structures_and_helpers_work() {
        let text = r#"{{ range $i, $name := split "," (env "NAMES") }}{{ if $i }};{{ end }}{{ trimSpace $name | toUpper }}{{ end }}"#;
        assert_eq!(rendered(text), "A;B;C");
        assert_eq!(rendered(r#"{{ "a-b-c" | replaceAll "-" "." }}"#), "a.b.c");
        assert_eq!(rendered(r#"{{ split "," "x,y" | join "+" }}"#), "x+y");
        assert_eq!(rendered(r#"{{ with parseJSON "{\"k\":[1,2]}" }}{{ toJSON .k }}{{ end }}"#), "[1,2]");
        assert_eq!(rendered("{{- /* comment */ -}}\n  x  {{- \" y\" }}"), "x y");
        assert_eq!(
            rendered(r#"{{ env "NOMAD_PORT_http" | parseInt | add 1 }} {{ 7 | subtract 2 }} {{ 7 | modulo 4 }}"#),
            "20124 5 3"
        );
        assert!(render("{{ 1 | divide 0 }}", &Delimiters::default(), &env()).is_err());
    }

    #[test]
    fn execute_template_runs_a_defined_template_with_its_data() {
        let text = concat!(
            "{{- define \"RULES\" -}}port={{ env \"NOMAD_PORT_http\" }}{{- end -}}\n",
            "{{- define \"GREET\" -}}hello {{ . }}{{- end -}}\n",
            "RULES={{ executeTemplate \"RULES\" | toJSON }} {{ executeTemplate \"GREET\" \"you\" | toUpper }}",
        );
        assert_eq!(rendered(text), r#"RULES="port=20123" HELLO YOU"#);
        let missing = render(r#"{{ executeTemplate "NOPE" }}"#, &Delimiters::default(), &env()).unwrap_err();
        assert!(missing.message.contains("no template is defined as \"NOPE\""), "{missing}");
        let looping = r#"{{ define "LOOP" }}{{ executeTemplate "LOOP" }}{{ end }}{{ executeTemplate "LOOP" }}"#;
        let error = render(looping, &Delimiters::default(), &env()).unwrap_err();
        assert!(error.message.contains("nested more than 32 deep"), "{error}");
    }

    #[test]
    fn custom_delimiters_keep_literal_braces() {
        let delimiters = Delimiters { left: "[[".to_owned(), right: "]]".to_owned() };
        let text = r#"{{ .Literal }} port=[[ env "NOMAD_PORT_http" ]]"#;
        assert_eq!(render(text, &delimiters, &env()).unwrap(), "{{ .Literal }} port=20123");
        let unclosed = check("a\nb [[ env", &delimiters).unwrap_err();
        assert_eq!(unclosed.line, Some(2));
    }

    #[test]
    fn missing_features_are_refused_with_their_line_and_reason() {
        let error = check("a\n{{ range ls \"x\" }}{{ end }}\n", &Delimiters::default()).unwrap_err();
        assert_eq!(error.line, Some(2));
        assert!(error.message.contains("\"ls\" is not supported") && error.message.contains("nomadVar"), "{error}");
        let error = check("{{ with secret \"a/b\" }}{{ .Data }}{{ end }}", &Delimiters::default()).unwrap_err();
        assert!(error.message.contains("Vault"), "{error}");
        let error = check("{{ frobnicate }}", &Delimiters::default()).unwrap_err();
        assert!(error.message.starts_with("unknown template function \"frobnicate\""), "{error}");
        let error = check("{{ if }}", &Delimiters::default()).unwrap_err();
        assert!(error.message.starts_with("the template does not parse"), "{error}");
    }
}
