//! A challenge, what creating one takes, and the validation rules of
//! CONTRACT §1 (title 1–120 chars, prompt ≤ 20 000, language from a fixed
//! list; first names 1–40 chars; names and titles without control
//! characters, prompts without NUL).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Challenge {
    #[sqlx(rename = "challenge_id")]
    pub id: String,
    pub title: String,
    pub prompt: String,
    pub response: String,
    pub language: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Challenge {
    /// Serializes as this challenge with `response` in place of its own,
    /// without copying it.
    pub fn with_response<'a>(&'a self, response: &'a str) -> WithResponse<'a> {
        WithResponse {
            challenge: self,
            response,
        }
    }
}

/// See [`Challenge::with_response`]: the same fields in the same order as
/// the derived `Serialize` of [`Challenge`] (a test checks it).
pub struct WithResponse<'a> {
    challenge: &'a Challenge,
    response: &'a str,
}

impl Serialize for WithResponse<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let c = self.challenge;
        let mut out = s.serialize_struct("Challenge", 7)?;
        out.serialize_field("id", &c.id)?;
        out.serialize_field("title", &c.title)?;
        out.serialize_field("prompt", &c.prompt)?;
        out.serialize_field("response", self.response)?;
        out.serialize_field("language", &c.language)?;
        out.serialize_field("created_at", &c.created_at)?;
        out.serialize_field("updated_at", &c.updated_at)?;
        out.end()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewChallenge {
    pub title: String,
    #[serde(default)]
    pub prompt: String,
    pub language: String,
}

pub const TITLE_MAX: usize = 120;
pub const PROMPT_MAX: usize = 20_000;
pub const NAME_MAX: usize = 40;
/// Longest answer a room accepts, in characters.
pub const RESPONSE_MAX: usize = 500_000;

/// The languages a challenge may use: (id, display name).
pub const LANGUAGES: &[(&str, &str)] = &[
    ("python", "Python"),
    ("javascript", "JavaScript"),
    ("typescript", "TypeScript"),
    ("rust", "Rust"),
    ("go", "Go"),
    ("java", "Java"),
    ("c", "C"),
    ("cpp", "C++"),
    ("ruby", "Ruby"),
    ("sql", "SQL"),
    ("plaintext", "Plain text"),
];

/// A field that failed validation: (field, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub &'static str, pub String);

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Trims and checks a first name.
pub fn validate_first_name(raw: &str) -> Result<String, Invalid> {
    let name = raw.trim();
    let len = name.chars().count();
    if len == 0 {
        return Err(Invalid("first_name", "first_name must not be empty".into()));
    }
    if len > NAME_MAX {
        return Err(Invalid(
            "first_name",
            format!("first_name must be at most {NAME_MAX} characters"),
        ));
    }
    if has_control(name) {
        return Err(Invalid(
            "first_name",
            "first_name must not contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

impl NewChallenge {
    /// Trims the title and checks every field.
    pub fn validate(mut self) -> Result<Self, Invalid> {
        self.title = self.title.trim().to_owned();
        let title_len = self.title.chars().count();
        if title_len == 0 {
            return Err(Invalid("title", "title must not be empty".into()));
        }
        if title_len > TITLE_MAX {
            return Err(Invalid(
                "title",
                format!("title must be at most {TITLE_MAX} characters"),
            ));
        }
        if has_control(&self.title) {
            return Err(Invalid(
                "title",
                "title must not contain control characters".into(),
            ));
        }
        if self.prompt.chars().count() > PROMPT_MAX {
            return Err(Invalid(
                "prompt",
                format!("prompt must be at most {PROMPT_MAX} characters"),
            ));
        }
        // The prompt is free text, pasted code and terminal output included
        // (tabs, form feeds, ANSI escapes): only NUL, which no text holds.
        if self.prompt.contains('\0') {
            return Err(Invalid(
                "prompt",
                "prompt must not contain NUL characters".into(),
            ));
        }
        if !LANGUAGES.iter().any(|(id, _)| *id == self.language) {
            let ids: Vec<&str> = LANGUAGES.iter().map(|(id, _)| *id).collect();
            return Err(Invalid(
                "language",
                format!("language must be one of: {}", ids.join(", ")),
            ));
        }
        Ok(self)
    }
}

/// A stable colour for a user, from their id.
pub fn color_for(user_id: &str) -> &'static str {
    const PALETTE: &[&str] = &[
        "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42a5a5", "#f032e6", "#9a6324",
        "#800000", "#008080", "#000075", "#c71585",
    ];
    let hash = user_id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    PALETTE[(hash % PALETTE.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_response_serializes_like_the_challenge_itself() {
        let c = Challenge {
            id: "id\"1".into(),
            title: "T <b>".into(),
            prompt: "line\nline".into(),
            response: "old".into(),
            language: "python".into(),
            created_at: "2026-11-22T00:00:00.000Z".into(),
            updated_at: "2026-11-22T00:00:01.000Z".into(),
        };
        let text = "print('é 😀')\n";
        let whole = Challenge {
            response: text.into(),
            ..c.clone()
        };
        assert_eq!(
            serde_json::to_string(&c.with_response(text)).unwrap(),
            serde_json::to_string(&whole).unwrap()
        );
    }

    fn new(title: &str, prompt: &str, language: &str) -> NewChallenge {
        NewChallenge {
            title: title.into(),
            prompt: prompt.into(),
            language: language.into(),
        }
    }

    #[test]
    fn names() {
        assert_eq!(validate_first_name("  Sophie ").unwrap(), "Sophie");
        assert!(validate_first_name("   ").is_err());
        assert!(validate_first_name(&"a".repeat(41)).is_err());
        assert!(validate_first_name(&"é".repeat(40)).is_ok());
        assert!(validate_first_name("So\u{7}phie").is_err());
        assert!(validate_first_name("So\nphie").is_err());
    }

    #[test]
    fn challenges() {
        assert!(new("FizzBuzz", "Print\n1..100", "python")
            .validate()
            .is_ok());
        assert_eq!(new(" ", "", "python").validate().unwrap_err().0, "title");
        assert_eq!(
            new(&"t".repeat(121), "", "python")
                .validate()
                .unwrap_err()
                .0,
            "title"
        );
        assert_eq!(
            new("t", &"p".repeat(20_001), "python")
                .validate()
                .unwrap_err()
                .0,
            "prompt"
        );
        assert_eq!(new("t", "", "cobol").validate().unwrap_err().0, "language");
        // A prompt keeps whatever text was pasted into it, but NUL.
        let pasted = "Strip \x1b[31mred\x1b[0m,\tpage\x0cbreak,\r\n\u{85}next";
        assert_eq!(
            new("t", pasted, "python").validate().unwrap().prompt,
            pasted
        );
        assert_eq!(
            new("t", "a\0b", "python").validate().unwrap_err().0,
            "prompt"
        );
        assert_eq!(new("a\nb", "", "python").validate().unwrap_err().0, "title");
    }

    #[test]
    fn colors_are_stable() {
        assert_eq!(color_for("abc"), color_for("abc"));
    }
}
