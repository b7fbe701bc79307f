//! "Did you mean …?": the nearest known name to a misspelt one.

/// The edit distance between two strings, counted in characters: inserting,
/// deleting or replacing one character, or swapping two neighbours, is one
/// edit (the "optimal string alignment" distance).
pub fn edit_distance(left: &str, right: &str) -> usize {
    let left_characters: Vec<char> = left.chars().collect();
    let right_characters: Vec<char> = right.chars().collect();
    let width = right_characters.len() + 1;
    // distances[i * width + j]: distance between the first i characters of
    // left and the first j characters of right.
    let mut distances = vec![0_usize; (left_characters.len() + 1) * width];
    for (left_length, row_start) in (0..=left_characters.len()).map(|length| (length, length * width)) {
        distances[row_start] = left_length;
    }
    for (right_length, cell) in distances.iter_mut().take(width).enumerate() {
        *cell = right_length;
    }
    for left_index in 1..=left_characters.len() {
        for right_index in 1..=right_characters.len() {
            let substitution_cost = usize::from(left_characters[left_index - 1] != right_characters[right_index - 1]);
            let mut best = (distances[(left_index - 1) * width + right_index - 1] + substitution_cost)
                .min(distances[(left_index - 1) * width + right_index] + 1)
                .min(distances[left_index * width + right_index - 1] + 1);
            if left_index > 1
                && right_index > 1
                && left_characters[left_index - 1] == right_characters[right_index - 2]
                && left_characters[left_index - 2] == right_characters[right_index - 1]
            {
                best = best.min(distances[(left_index - 2) * width + right_index - 2] + 1);
            }
            distances[left_index * width + right_index] = best;
        }
    }
    distances[left_characters.len() * width + right_characters.len()]
}

/// The candidate closest to `name`, when it is close enough to be a typo
/// (one edit for short names, up to three for long ones), compared without
/// regard to case. Names longer than 64 characters get no suggestion (the
/// distance costs the product of the lengths, and no real name is that
/// long).
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    const LONGEST_WORTH_COMPARING: usize = 64;
    let length = name.chars().count();
    if length > LONGEST_WORTH_COMPARING {
        return None;
    }
    let allowed_distance = match length {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    let lowercase_name = name.to_lowercase();
    candidates
        .into_iter()
        .filter(|candidate| *candidate != name)
        .map(|candidate| (edit_distance(&lowercase_name, &candidate.to_lowercase()), candidate))
        .filter(|(distance, _)| *distance <= allowed_distance)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// `; did you mean "x"?` when a near candidate exists, else nothing: ready
/// to append to a message.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(name, candidates).map_or_else(String::new, |candidate| format!("; did you mean \"{candidate}\"?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_edits() {
        assert_eq!(edit_distance("comand", "command"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("tpye", "type"), 1);
        assert_eq!(edit_distance("abc", ""), 3);
    }

    #[test]
    fn suggests_only_close_names() {
        let known = ["command", "args", "interval"];
        assert_eq!(nearest("comand", known), Some("command"));
        assert_eq!(nearest("intervl", known), Some("interval"));
        assert_eq!(nearest("zzz", known), None);
        assert_eq!(nearest("nope", ["mode"]), None);
        assert_eq!(did_you_mean("arg", known), "; did you mean \"args\"?");
        assert_eq!(did_you_mean("banana", known), "");
    }

    #[test]
    fn suggests_only_close_words_whatever_their_case() {
        let known = ["hostgroup", "environment", "owner"];
        assert_eq!(nearest("hostgrup", known), Some("hostgroup"));
        assert_eq!(nearest("HOSTGROUP", known), Some("hostgroup"));
        assert_eq!(nearest("enviroment", known), Some("environment"));
        assert_eq!(nearest("zzz", known), None);
        assert_eq!(nearest(&"a".repeat(100_000), known), None);
    }
}
