//! Text normalization, tokenization and the reference-free text checks.
//!
//! Normalization, in order (see SCORING.md):
//! 1. Unicode NFKC, so full-width forms, ligatures and composed/decomposed accents compare
//!    equal;
//! 2. lower case;
//! 3. thousands separators inside numbers dropped (`1,000` → `1000`), apostrophes dropped
//!    (`don't` → `dont`);
//! 4. every other character that is not a letter, digit or combining mark becomes a space;
//! 5. English number words up to ninety-nine become digits (`twenty one` → `21`);
//! 6. runs of whitespace collapse.

use foldhash::{HashMap, HashSet, HashSetExt as _};
use unicode_normalization::UnicodeNormalization as _;
use unicode_normalization::char::is_combining_mark;

use crate::domain::Language;

/// What a text is compared in: words, or characters for languages written without spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Whitespace-separated words: word error rate.
    Word,
    /// Characters: character error rate (ja, zh, ko).
    Character,
}

impl Unit {
    /// The unit `language` is scored in. Korean is written with spaces, but its spacing varies
    /// between recognizers, so characters are fairer there too.
    pub fn of(language: Language) -> Self {
        if matches!(language.code(), "ja" | "zh" | "ko") {
            Self::Character
        } else {
            Self::Word
        }
    }
}

/// Applies the documented normalization.
pub fn normalize(text: &str, language: Language) -> String {
    use unicode_normalization::{IsNormalized, is_nfkc_quick};
    let composed: std::borrow::Cow<'_, str> =
        if text.is_ascii() || is_nfkc_quick(text.chars()) == IsNormalized::Yes {
            text.into()
        } else {
            text.nfkc().collect::<String>().into()
        };
    let lower = composed.to_lowercase();
    let mut spaced = String::with_capacity(lower.len());
    let mut previous = ' ';
    let mut chars = lower.chars().peekable();
    while let Some(c) = chars.next() {
        let next_is_digit = chars.peek().is_some_and(char::is_ascii_digit);
        let keep = match c {
            '\'' | '\u{2019}' => None,
            ',' if previous.is_ascii_digit() && next_is_digit => None,
            'a'..='z' | '0'..='9' => Some(c),
            _ if c.is_ascii() => Some(' '),
            _ if c.is_alphanumeric() || is_combining_mark(c) => Some(c),
            _ => Some(' '),
        };
        previous = c;
        if let Some(k) = keep {
            spaced.push(k);
        }
    }
    let mut out = String::with_capacity(spaced.len());
    let mut push = |word: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    };
    if language.code() == "en" {
        let words: Vec<&str> = spaced.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            match number_word(words[i]) {
                Some(tens) if tens >= 20 => {
                    let unit = words.get(i + 1).and_then(|w| number_word(w));
                    if let Some(u) = unit.filter(|u| (1..10).contains(u)) {
                        push(&(tens + u).to_string());
                        i += 2;
                        continue;
                    }
                    push(&tens.to_string());
                }
                Some(n) => push(&n.to_string()),
                None => push(words[i]),
            }
            i += 1;
        }
    } else {
        spaced.split_whitespace().for_each(push);
    }
    out
}

fn number_word(word: &str) -> Option<u32> {
    Some(match word {
        "zero" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        "twenty" => 20,
        "thirty" => 30,
        "forty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

/// Interns tokens as dense ids, shared by every text of one scoring run so that ids compare.
#[derive(Debug, Default)]
pub struct Vocabulary {
    words: HashMap<String, u32>,
    chars: HashMap<char, u32>,
}

impl Vocabulary {
    fn next_id(&self) -> u32 {
        (self.words.len() + self.chars.len()) as u32
    }

    /// The tokens of an already normalized text.
    pub fn tokens(&mut self, normalized: &str, unit: Unit) -> Vec<u32> {
        match unit {
            Unit::Word => normalized
                .split_whitespace()
                .map(|w| match self.words.get(w) {
                    Some(id) => *id,
                    None => {
                        let id = self.next_id();
                        self.words.insert(w.to_owned(), id);
                        id
                    }
                })
                .collect(),
            Unit::Character => normalized
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| {
                    let id = self.next_id();
                    *self.chars.entry(c).or_insert(id)
                })
                .collect(),
        }
    }

    /// Normalizes `text` for `language` and returns its tokens.
    pub fn text(&mut self, text: &str, language: Language) -> Vec<u32> {
        self.tokens(&normalize(text, language), Unit::of(language))
    }
}

/// The share of `tokens`' n-grams that repeat an earlier one: 0 for varied text, near 1 for
/// a loop such as "thank you thank you thank you". Word trigrams, character 4-grams.
pub fn repetition(tokens: &[u32], unit: Unit) -> f64 {
    let n = match unit {
        Unit::Word => 3,
        Unit::Character => 4,
    };
    if tokens.len() < n + 1 {
        return 0.0;
    }
    let windows = tokens.len() + 1 - n;
    let mut seen: HashSet<u128> = HashSet::with_capacity(windows);
    let repeated = tokens
        .windows(n)
        .filter(|w| {
            let key = w.iter().fold(0u128, |k, &t| (k << 32) | u128::from(t));
            !seen.insert(key)
        })
        .count();
    repeated as f64 / windows as f64
}

/// The score factor for a repetition share: 1 up to 0.2 (natural text repeats a little),
/// falling linearly to 0 at 0.6.
pub fn repetition_factor(share: f64) -> f64 {
    (1.0 - (share - 0.2) / 0.4).clamp(0.0, 1.0)
}

fn in_script(c: char, language: Language) -> bool {
    let u = c as u32;
    let latin =
        c.is_ascii_alphabetic() || (0x00C0..=0x024F).contains(&u) || (0x1E00..=0x1EFF).contains(&u);
    let han = (0x4E00..=0x9FFF).contains(&u)
        || (0x3400..=0x4DBF).contains(&u)
        || (0xF900..=0xFAFF).contains(&u)
        || (0x20000..=0x2A6DF).contains(&u);
    match language.code() {
        "ru" => (0x0400..=0x04FF).contains(&u),
        "ar" => {
            (0x0600..=0x06FF).contains(&u)
                || (0x0750..=0x077F).contains(&u)
                || (0x08A0..=0x08FF).contains(&u)
                || (0xFB50..=0xFDFF).contains(&u)
                || (0xFE70..=0xFEFF).contains(&u)
        }
        "hi" => (0x0900..=0x097F).contains(&u),
        "zh" => han,
        "ja" => {
            han || (0x3040..=0x30FF).contains(&u)
                || (0x31F0..=0x31FF).contains(&u)
                || (0xFF66..=0xFF9D).contains(&u)
        }
        "ko" => {
            han || (0xAC00..=0xD7AF).contains(&u)
                || (0x1100..=0x11FF).contains(&u)
                || (0x3130..=0x318F).contains(&u)
        }
        _ => latin,
    }
}

/// The share of the letters of `text` written in `language`'s script (Latin, Cyrillic,
/// Arabic, Devanagari, Han, kana, Hangul), or `None` when it has no letters. Digits and
/// punctuation do not count.
pub fn script_share(text: &str, language: Language) -> Option<f64> {
    if text.is_ascii() {
        // Plain ASCII: its letters are Latin, whatever they spell.
        let any = text.bytes().any(|b| b.is_ascii_alphabetic());
        return any.then(|| if in_script('a', language) { 1.0 } else { 0.0 });
    }
    let (mut letters, mut matching) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        matching += usize::from(in_script(c, language));
    }
    (letters > 0).then(|| matching as f64 / letters as f64)
}

/// The score factor for a script share: 1 from 0.8 up (names and loanwords in another script
/// are normal), falling linearly to 0 at 0.4.
pub fn script_factor(share: Option<f64>) -> f64 {
    share.map_or(1.0, |s| ((s - 0.4) / 0.4).clamp(0.0, 1.0))
}

/// The reference-free checks every text answer gets: repetition and script.
#[derive(Debug, Clone, PartialEq)]
pub struct TextChecks {
    /// Repeated n-gram share.
    pub repetition: f64,
    /// Share of letters in the language's script.
    pub script: Option<f64>,
    /// Product of both factors.
    pub factor: f64,
}

impl TextChecks {
    /// Checks `text` (tokenized as `tokens`), adding a note for each factor below 1.
    pub fn run(tokens: &[u32], text: &str, language: Language, notes: &mut Vec<String>) -> Self {
        let repetition = repetition(tokens, Unit::of(language));
        let rep_factor = repetition_factor(repetition);
        if rep_factor < 1.0 {
            notes.push(format!("{:.0} % repeated n-grams", repetition * 100.0));
        }
        let script = script_share(text, language);
        let script_f = script_factor(script);
        if script_f < 1.0 {
            notes.push(format!(
                "only {:.0} % of letters in the script of '{language}'",
                script.unwrap_or(0.0) * 100.0
            ));
        }
        Self {
            repetition,
            script,
            factor: rep_factor * script_f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(code: &str) -> Language {
        Language::parse(code).unwrap()
    }

    #[test]
    fn normalization_folds_width_case_punctuation_and_numbers() {
        let en = lang("en");
        assert_eq!(normalize("Ｈｅｌｌｏ, World!", en), "hello world");
        assert_eq!(
            normalize("I don't have 1,000  cats.", en),
            "i dont have 1000 cats"
        );
        assert_eq!(normalize("Twenty-one and seven", en), "21 and 7");
        assert_eq!(normalize("café", en), normalize("cafe\u{301}", en));
    }

    #[test]
    fn combining_marks_stay_inside_words() {
        assert_eq!(normalize("नमस्ते दुनिया", lang("hi")), "नमस्ते दुनिया");
    }

    #[test]
    fn cjk_is_tokenized_by_character() {
        let mut v = Vocabulary::default();
        let t = v.text("你好，世界。", lang("zh"));
        assert_eq!(t.len(), 4);
        assert_eq!(v.text("世界", lang("zh")), t[2..].to_vec());
    }

    #[test]
    fn loops_repeat_and_prose_does_not() {
        let mut v = Vocabulary::default();
        let en = lang("en");
        let prose = v.text(
            "the committee met on tuesday and agreed to fund the new library",
            en,
        );
        let looped = v.text(&"thank you ".repeat(30), en);
        assert_eq!(repetition(&prose, Unit::Word), 0.0);
        assert!(repetition(&looped, Unit::Word) > 0.9);
        assert_eq!(repetition_factor(0.1), 1.0);
        assert_eq!(repetition_factor(0.9), 0.0);
    }

    #[test]
    fn script_share_tells_scripts_apart() {
        assert_eq!(script_share("Привет мир", lang("ru")), Some(1.0));
        assert_eq!(script_share("Привет мир", lang("en")), Some(0.0));
        assert_eq!(script_share("こんにちは世界", lang("ja")), Some(1.0));
        assert_eq!(script_share("123 !!", lang("en")), None);
        assert_eq!(script_factor(Some(0.9)), 1.0);
        assert_eq!(script_factor(Some(0.2)), 0.0);
    }
}
