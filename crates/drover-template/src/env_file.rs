//! The rendered file of an `env = true` template: `KEY=value` lines that
//! become environment variables of the task, as Nomad reads them.

use std::collections::BTreeMap;

use crate::TemplateError;

/// Reads `KEY=value` lines: blank lines and `#` comments are skipped, an
/// `export ` prefix is allowed, and a value in single or double quotes
/// loses them (double quotes also take `\n`, `\"` and `\\`).
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, TemplateError> {
    let mut variables = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let error = |message: String| TemplateError { line: Some(index + 1), message };
        let Some((key, value)) = line.split_once('=') else {
            return Err(error(format!("{line:?} is not KEY=value")));
        };
        let key = key.trim();
        let valid_key = !key.is_empty()
            && !key.starts_with(|character: char| character.is_ascii_digit())
            && key.chars().all(|character| character.is_ascii_alphanumeric() || character == '_' || character == '.');
        if !valid_key {
            return Err(error(format!("{key:?} is not a valid environment variable name")));
        }
        variables.insert(key.to_owned(), unquote(value.trim()));
    }
    Ok(variables)
}

fn unquote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        return value[1..value.len() - 1].to_owned();
    }
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        let mut unescaped = String::with_capacity(value.len());
        let mut characters = value[1..value.len() - 1].chars();
        while let Some(character) = characters.next() {
            if character != '\\' {
                unescaped.push(character);
                continue;
            }
            match characters.next() {
                Some('n') => unescaped.push('\n'),
                Some(other) => unescaped.push(other),
                None => unescaped.push('\\'),
            }
        }
        return unescaped;
    }
    // An unquoted value ends at a comment.
    value.split(" #").next().unwrap_or_default().trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dotenv_lines() {
        let text = "# settings\nPORT=8080\nexport NAME = web \nQUOTED=\"a b\\n\"\nSINGLE='x=y'\nTRAILING=v # note\n\n";
        let variables = parse_env_file(text).unwrap();
        assert_eq!(variables["PORT"], "8080");
        assert_eq!(variables["NAME"], "web");
        assert_eq!(variables["QUOTED"], "a b\n");
        assert_eq!(variables["SINGLE"], "x=y");
        assert_eq!(variables["TRAILING"], "v");
        assert_eq!(parse_env_file("A=1\nnot a line\n").unwrap_err().line, Some(2));
        assert!(parse_env_file("1A=x").is_err());
    }
}
