//! Small checks shared by the schema: names, signals, cron expressions.

use drover_hcl::BlockReader;

/// Whether `name` can be a job id, group name or task name:
/// `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphanumeric())
        && characters.all(|character| character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | '-'))
}

/// Reports the block's label when it is not a valid name; `what` is `job
/// id`, `group name` or `task name`.
pub(crate) fn check_label(block: &BlockReader<'_>, what: &str) {
    let label = block.label();
    if is_valid_name(label) {
        return;
    }
    let problem = if label.is_empty() { "must not be empty".to_owned() } else { format!("{label:?} is not valid") };
    block.report(
        block.label_location(),
        format!("{what} {problem}: use letters, digits, \"_\", \".\" and \"-\", starting with a letter or a digit"),
    );
}

/// The signals a task may be stopped with.
pub(crate) const SIGNALS: [&str; 20] = [
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV",
    "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGWINCH",
];

/// Checks a cron expression's shape (5 or 6 fields, or a predefined
/// schedule such as `@daily`); full parsing happens in the periodic
/// launcher. Returns what is wrong.
pub(crate) fn check_cron(expression: &str) -> Result<(), String> {
    const DESCRIPTORS: [&str; 7] = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];
    let trimmed = expression.trim();
    if trimmed.starts_with('@') {
        if DESCRIPTORS.contains(&trimmed) {
            return Ok(());
        }
        return Err(format!(
            "cron expression {expression:?} is not valid: the predefined schedules are {}",
            DESCRIPTORS.join(", ")
        ));
    }
    let number_of_fields = trimmed.split_whitespace().count();
    if number_of_fields == 5 || number_of_fields == 6 {
        let allowed = |character: char| character.is_ascii_alphanumeric() || "*/,-?LW#".contains(character);
        if let Some(bad) = trimmed.chars().find(|character| !character.is_whitespace() && !allowed(*character)) {
            return Err(format!("cron expression {expression:?} is not valid: unexpected character {bad:?}"));
        }
        return Ok(());
    }
    Err(format!(
        "cron expression {expression:?} has {number_of_fields} fields: write 5 (minute hour day-of-month month day-of-week) or 6 (with a year)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_id_pattern() {
        for good in ["web", "nsmd2", "a.b-c_d", "9lives"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "-web", "my job", "ünï", "_x"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn cron_expressions_have_five_or_six_fields() {
        assert_eq!(check_cron("*/15 * * * *"), Ok(()));
        assert_eq!(check_cron("0 3 * * MON-FRI 2030"), Ok(()));
        assert_eq!(check_cron("@daily"), Ok(()));
        assert!(check_cron("* * *").unwrap_err().contains("has 3 fields"));
        assert!(check_cron("@sometimes").is_err());
        assert!(check_cron("* * * * $").is_err());
    }
}
