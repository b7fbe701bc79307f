//! Small checks shared by the schema: names and cron expressions (the
//! rules themselves live in `drover_types::validate`).

use drover_hcl::BlockReader;
use drover_types::validate::name_problem;

/// Reports the block's label when it is not a valid name; `what` is `job
/// id`, `group name` or `task name`.
pub(crate) fn check_label(block: &BlockReader<'_>, what: &str) {
    if let Some(problem) = name_problem(what, block.label()) {
        block.report(block.label_location(), problem);
    }
}

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
    fn cron_expressions_have_five_or_six_fields() {
        assert_eq!(check_cron("*/15 * * * *"), Ok(()));
        assert_eq!(check_cron("0 3 * * MON-FRI 2030"), Ok(()));
        assert_eq!(check_cron("@daily"), Ok(()));
        assert!(check_cron("* * *").unwrap_err().contains("has 3 fields"));
        assert!(check_cron("@sometimes").is_err());
        assert!(check_cron("* * * * $").is_err());
    }
}
