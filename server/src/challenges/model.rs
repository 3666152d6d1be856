//! A challenge, what creating one takes, and the validation rules of
//! CONTRACT §1 (title 1–120 chars, prompt ≤ 20 000, language from a fixed
//! list; first names 1–40 chars; names and titles without control
//! characters, bidi controls or line separators and with something
//! visible in them; prompts without NUL).

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
    /// `live` or `ended` (CONTRACT §6).
    pub status: String,
    /// When the interview ended; `None` while live.
    pub ended_at: Option<String>,
    /// Candidates may not edit.
    pub locked: bool,
    /// Members may run the answer (interviewers may turn it off).
    pub run_enabled: bool,
    /// Who created it: an interviewer. Never serialized.
    #[serde(skip)]
    #[sqlx(rename = "user_id")]
    pub creator_id: String,
    /// Whoever has it is an interviewer. Never serialized: handlers add it
    /// for interviewers only.
    #[serde(skip)]
    pub interviewer_key: String,
}

/// `Challenge::status` values.
pub const LIVE: &str = "live";
pub const ENDED: &str = "ended";

/// A member's role in a room (CONTRACT §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Interviewer,
    Candidate,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Interviewer => "interviewer",
            Role::Candidate => "candidate",
        }
    }
}

/// Why a role was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forbidden;

impl Challenge {
    /// The role of `user_id` presenting `key`: the creator and whoever has
    /// the interviewer key are interviewers; a key that is not it is
    /// refused; everyone else is a candidate.
    pub fn role_of(&self, user_id: &str, key: Option<&str>) -> Result<Role, Forbidden> {
        match key.filter(|k| !k.is_empty()) {
            Some(key) if self.is_key(key) => Ok(Role::Interviewer),
            Some(_) => Err(Forbidden),
            None if user_id == self.creator_id => Ok(Role::Interviewer),
            None => Ok(Role::Candidate),
        }
    }

    /// Compares in constant time: a key is a password.
    pub fn is_key(&self, key: &str) -> bool {
        let (a, b) = (key.as_bytes(), self.interviewer_key.as_bytes());
        !b.is_empty()
            && a.len() == b.len()
            && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    pub fn is_ended(&self) -> bool {
        self.status == ENDED
    }

    /// Whether a member with `role` may edit the answer now.
    pub fn may_edit(&self, role: Role) -> bool {
        !self.is_ended() && (role == Role::Interviewer || !self.locked)
    }
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
        let mut out = s.serialize_struct("Challenge", 11)?;
        out.serialize_field("id", &c.id)?;
        out.serialize_field("title", &c.title)?;
        out.serialize_field("prompt", &c.prompt)?;
        out.serialize_field("response", self.response)?;
        out.serialize_field("language", &c.language)?;
        out.serialize_field("created_at", &c.created_at)?;
        out.serialize_field("updated_at", &c.updated_at)?;
        out.serialize_field("status", &c.status)?;
        out.serialize_field("ended_at", &c.ended_at)?;
        out.serialize_field("locked", &c.locked)?;
        out.serialize_field("run_enabled", &c.run_enabled)?;
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

/// What makes a short label (a first name, a title) unfit to be shown as
/// typed, as the end of "<field> must ...": control characters; bidi
/// controls, which reorder the text around them (a name that makes "Ann is
/// typing" read otherwise); line and paragraph separators; and a label
/// with nothing to see (only spaces and invisible characters).
fn label_problem(s: &str) -> Option<&'static str> {
    if s.chars().any(char::is_control) {
        return Some("not contain control characters");
    }
    if s.chars().any(is_bidi_control) {
        return Some(
            "not contain bidirectional formatting characters (U+202A–U+202E, U+2066–U+2069, U+061C, U+200E, U+200F)",
        );
    }
    if s.contains(['\u{2028}', '\u{2029}']) {
        return Some("not contain line or paragraph separators");
    }
    if !s.chars().any(|c| !c.is_whitespace() && !is_invisible(c)) {
        return Some("contain a visible character, not only spaces or invisible characters");
    }
    None
}

/// Embeddings, overrides, isolates and the invisible direction marks:
/// text that reorders what surrounds it. Letters of right-to-left scripts
/// carry their direction themselves and need none of these.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}' | '\u{200E}' | '\u{200F}')
}

/// Characters that draw nothing: Unicode's default-ignorable code points
/// (zero-width spaces and joiners, word joiner, BOM, variation selectors,
/// tags, Hangul fillers...) and the blank Braille pattern. A joiner
/// inside visible text (the ZWJ of 👩‍💻) is fine: only a label made of
/// nothing else is refused.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
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
    if let Some(problem) = label_problem(name) {
        return Err(Invalid("first_name", format!("first_name must {problem}")));
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
        if let Some(problem) = label_problem(&self.title) {
            return Err(Invalid("title", format!("title must {problem}")));
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
            status: ENDED.into(),
            ended_at: Some("2026-11-22T00:00:02.000Z".into()),
            locked: true,
            run_enabled: false,
            creator_id: "u".into(),
            interviewer_key: "k".into(),
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
    fn names_that_draw_nothing_or_reorder_text_are_refused() {
        for (bad, why) in [
            ("\u{200B}", "visible"),
            ("\u{200D}\u{200D}\u{200D}", "visible"),
            ("\u{FEFF}", "visible"),
            ("\u{3164}", "visible"),
            ("\u{115F}\u{1160}", "visible"),
            ("\u{FFA0}", "visible"),
            ("\u{2060}\u{2063}", "visible"),
            ("\u{034F}\u{FE0F}", "visible"),
            ("\u{E0041}\u{E007F}", "visible"),
            (" \u{00A0}\u{200C} ", "visible"),
            ("\u{202E}niamdA", "bidirectional"),
            ("Ann\u{2066}x\u{2069}", "bidirectional"),
            ("a\u{061C}b", "bidirectional"),
            ("Ann\u{200F}", "bidirectional"),
            ("a\u{2028}b", "separators"),
            ("a\u{2029}b", "separators"),
        ] {
            let err = validate_first_name(bad).unwrap_err();
            assert!(err.1.contains(why), "{bad:?}: {}", err.1);
            let title = new(bad, "", "python").validate().unwrap_err();
            assert_eq!(title.0, "title", "{bad:?}");
            assert!(title.1.contains(why), "{bad:?}: {}", title.1);
        }
    }

    #[test]
    fn names_in_every_script_are_kept() {
        for good in [
            "Zoë",
            "José María",
            "李小龙",
            "محمد",
            "דוד",
            "Ελένη",
            "Łukasz",
            "👩‍💻",
            "Ann 👩‍👩‍👧",
            "🏳️‍🌈",
            "a\u{0301}",
            "Chloé\u{200B}",
        ] {
            assert_eq!(validate_first_name(good).unwrap(), good);
            assert!(new(good, "", "python").validate().is_ok(), "{good:?}");
        }
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
