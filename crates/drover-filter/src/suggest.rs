//! "Did you mean …?": the nearest known word to a misspelt one.

/// The edit distance between two strings in characters, where inserting,
/// deleting or replacing a character, or swapping two neighbours, is one
/// edit. Inputs are short (field names, keywords, status names); callers
/// cap their length before asking.
fn edit_distance(left: &str, right: &str) -> usize {
    let left_characters: Vec<char> = left.chars().collect();
    let right_characters: Vec<char> = right.chars().collect();
    let width = right_characters.len() + 1;
    let mut distances = vec![0_usize; (left_characters.len() + 1) * width];
    let cell = |left_index: usize, right_index: usize| left_index * width + right_index;
    for left_index in 0..=left_characters.len() {
        distances[cell(left_index, 0)] = left_index;
    }
    for right_index in 0..=right_characters.len() {
        distances[cell(0, right_index)] = right_index;
    }
    for left_index in 1..=left_characters.len() {
        for right_index in 1..=right_characters.len() {
            let substitution_cost = usize::from(left_characters[left_index - 1] != right_characters[right_index - 1]);
            let mut best = (distances[cell(left_index - 1, right_index - 1)] + substitution_cost)
                .min(distances[cell(left_index - 1, right_index)] + 1)
                .min(distances[cell(left_index, right_index - 1)] + 1);
            if left_index > 1
                && right_index > 1
                && left_characters[left_index - 1] == right_characters[right_index - 2]
                && left_characters[left_index - 2] == right_characters[right_index - 1]
            {
                best = best.min(distances[cell(left_index - 2, right_index - 2)] + 1);
            }
            distances[cell(left_index, right_index)] = best;
        }
    }
    distances[cell(left_characters.len(), right_characters.len())]
}

/// The candidate closest to `word` when it is close enough to be a typo
/// (one edit for short words, up to three for long ones), compared without
/// regard to case.
pub(crate) fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    const LONGEST_WORTH_COMPARING: usize = 64;
    let length = word.chars().count();
    if length > LONGEST_WORTH_COMPARING {
        return None;
    }
    let allowed_distance = match length {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    let lowercase_word = word.to_lowercase();
    candidates
        .into_iter()
        .filter(|candidate| *candidate != word)
        .map(|candidate| (edit_distance(&lowercase_word, &candidate.to_lowercase()), candidate))
        .filter(|(distance, _)| *distance <= allowed_distance)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_edits() {
        assert_eq!(edit_distance("hostgrup", "hostgroup"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("tpye", "type"), 1);
    }

    #[test]
    fn suggests_only_close_words() {
        let known = ["hostgroup", "environment", "owner"];
        assert_eq!(nearest("hostgrup", known), Some("hostgroup"));
        assert_eq!(nearest("HOSTGROUP", known), Some("hostgroup"));
        assert_eq!(nearest("enviroment", known), Some("environment"));
        assert_eq!(nearest("zzz", known), None);
    }
}
