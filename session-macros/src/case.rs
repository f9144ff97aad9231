//! `rename_all`: the case conventions serde knows, applied to field names.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RenameRule {
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

impl RenameRule {
    pub(crate) const NAMES: &'static str = "\"lowercase\", \"UPPERCASE\", \"PascalCase\", \"camelCase\", \"snake_case\", \"SCREAMING_SNAKE_CASE\", \"kebab-case\" or \"SCREAMING-KEBAB-CASE\"";

    pub(crate) fn from_str(name: &str) -> Option<Self> {
        Some(match name {
            "lowercase" => Self::Lower,
            "UPPERCASE" => Self::Upper,
            "PascalCase" => Self::Pascal,
            "camelCase" => Self::Camel,
            "snake_case" => Self::Snake,
            "SCREAMING_SNAKE_CASE" => Self::ScreamingSnake,
            "kebab-case" => Self::Kebab,
            "SCREAMING-KEBAB-CASE" => Self::ScreamingKebab,
            _ => return None,
        })
    }

    /// Applies the rule to a field name, which Rust style writes in snake_case.
    pub(crate) fn apply(self, field: &str) -> String {
        match self {
            Self::Lower | Self::Snake => field.to_owned(),
            Self::Upper | Self::ScreamingSnake => field.to_ascii_uppercase(),
            Self::Kebab => field.replace('_', "-"),
            Self::ScreamingKebab => field.to_ascii_uppercase().replace('_', "-"),
            Self::Pascal | Self::Camel => {
                let mut out = String::with_capacity(field.len());
                let mut upper = self == Self::Pascal;
                for c in field.chars() {
                    if c == '_' {
                        upper = true;
                    } else if upper {
                        out.extend(c.to_uppercase());
                        upper = false;
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RenameRule;

    #[test]
    fn rules_match_serde() {
        let cases = [
            ("lowercase", "user_id"),
            ("UPPERCASE", "USER_ID"),
            ("PascalCase", "UserId"),
            ("camelCase", "userId"),
            ("snake_case", "user_id"),
            ("SCREAMING_SNAKE_CASE", "USER_ID"),
            ("kebab-case", "user-id"),
            ("SCREAMING-KEBAB-CASE", "USER-ID"),
        ];
        for (rule, expected) in cases {
            assert_eq!(
                RenameRule::from_str(rule).unwrap().apply("user_id"),
                expected
            );
        }
        assert_eq!(RenameRule::Camel.apply("visits"), "visits");
        assert!(RenameRule::from_str("Camel").is_none());
    }
}
