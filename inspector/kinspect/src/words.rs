//! Words in kinspect's text: counts with their noun in the right number
//! (`1 finding`, `2 findings`, never `1 findings` or `finding(s)`:
//! [`count`]), and text cut to a column with an ellipsis ([`ellipsize`]).

/// `n` and the noun in the right number: `count(1, "finding", "findings")`
/// is `1 finding`, `count(0, ...)` is `0 findings`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `s` cut to at most `width` characters; when cut, the last one is `…`
/// so a reader sees that something is missing.
pub fn ellipsize(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_string_ends_in_an_ellipsis() {
        assert_eq!(ellipsize("initcode", 16), "initcode");
        assert_eq!(ellipsize("0123456789abcdefg", 16), "0123456789abcde…");
        assert_eq!(ellipsize("0123456789abcdef", 16), "0123456789abcdef");
        assert_eq!(ellipsize("abc", 1), "…");
        assert_eq!(ellipsize("abc", 0), "");
    }

    #[test]
    fn one_is_singular_and_zero_is_plural() {
        assert_eq!(count(1, "finding", "findings"), "1 finding");
        assert_eq!(count(0, "finding", "findings"), "0 findings");
        assert_eq!(count(2, "process", "processes"), "2 processes");
    }
}
