//! Reading variables: each getter reads one declared [`Var`], takes its default and range from
//! the declaration, and records what is wrong with it, so that every problem is reported at once.

use std::fmt;
use std::time::Duration;

use super::vars::{Fallback, Var};

/// Reads variables through a lookup, collecting problems.
pub struct Reader<'a, F: Fn(&str) -> Option<String>> {
    lookup: &'a F,
    /// What was wrong, one line per problem.
    pub problems: Vec<String>,
}

/// A number a variable may hold.
pub trait Number: Copy + std::str::FromStr {
    /// What a valid value is, for the problem message.
    const KIND: &'static str;
    /// As a float, to compare with the variable's range.
    fn to_f64(self) -> f64;
    /// From a float inside the range.
    fn from_f64(value: f64) -> Self;
}

macro_rules! number {
    ($($t:ty => $kind:literal),*) => {$(
        impl Number for $t {
            const KIND: &'static str = $kind;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(value: f64) -> Self {
                value as $t
            }
        }
    )*};
}
number!(u16 => "whole number", u32 => "whole number", u64 => "whole number", usize => "whole number", f64 => "number");

impl<'a, F: Fn(&str) -> Option<String>> Reader<'a, F> {
    /// A reader over `lookup`, with no problem yet.
    pub fn new(lookup: &'a F) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
        }
    }

    /// The value set, if any (blank counts as unset).
    pub fn optional(&self, var: &Var) -> Option<String> {
        (self.lookup)(var.name).filter(|v| !v.trim().is_empty())
    }

    /// The value set, or the declared default.
    fn or_default(&self, var: &Var) -> Option<String> {
        self.optional(var).or(match var.default {
            Fallback::Value(d) => Some(d.to_owned()),
            _ => None,
        })
    }

    /// A string, the declared default when unset.
    pub fn text(&self, var: &Var) -> String {
        self.or_default(var).unwrap_or_default()
    }

    /// A string that must be set: its absence is a problem.
    pub fn required(&mut self, var: &Var) -> String {
        self.optional(var).unwrap_or_else(|| {
            self.problems.push(format!("{} is required", var.name));
            String::new()
        })
    }

    /// A switch: `true`/`1` or `false`/`0`, the declared default when unset.
    pub fn flag(&mut self, var: &Var) -> bool {
        match self.or_default(var).as_deref().map(str::trim) {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                self.problems
                    .push(format!("{}={other:?} is not true, false, 1 or 0", var.name));
                false
            }
        }
    }

    /// A number, inside the declared range: one outside a clamped range is moved to its bound,
    /// and one outside a refused range is a problem. NaN and infinities are never valid.
    pub fn number<T: Number>(&mut self, var: &Var) -> T {
        let Some(raw) = self.or_default(var) else {
            return T::from_f64(0.0);
        };
        let value = match raw.trim().parse::<T>() {
            Ok(v) if v.to_f64().is_finite() => v,
            _ => {
                self.problems
                    .push(format!("{}={raw:?} is not a valid {}", var.name, T::KIND));
                return Self::fallback(var);
            }
        };
        if let Some(problem) = var.refusal(value.to_f64()) {
            self.problems.push(problem);
        }
        T::from_f64(var.clamp(value.to_f64()))
    }

    /// The declared default of a number (zero when it has none).
    fn fallback<T: Number>(var: &Var) -> T {
        match var.default {
            Fallback::Value(d) => d.parse().unwrap_or(T::from_f64(0.0)),
            _ => T::from_f64(0.0),
        }
    }

    /// A number of seconds (one too large for a duration is a problem, not a panic).
    pub fn seconds(&mut self, var: &Var) -> Duration {
        let value = self.number::<f64>(var).max(0.0);
        Duration::try_from_secs_f64(value).unwrap_or_else(|_| {
            self.problems
                .push(format!("{}={value:e} seconds is too long", var.name));
            Duration::from_secs_f64(Self::fallback::<f64>(var).max(0.0))
        })
    }

    /// A number of seconds when set, `None` when not.
    pub fn optional_seconds(&mut self, var: &Var) -> Option<Duration> {
        self.optional(var)
            .map(|_| Duration::from_secs(self.number::<u64>(var)))
    }

    /// One of a set of named choices, parsed by `parse`; the declared default when unset, and
    /// `T::default()` (a test holds it equal to the declared one) when invalid.
    pub fn choice<T: Default, E: fmt::Display>(
        &mut self,
        var: &Var,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> T {
        match self.or_default(var) {
            None => T::default(),
            Some(v) => parse(&v).unwrap_or_else(|e| {
                self.problems.push(format!("{}: {e}", var.name));
                T::default()
            }),
        }
    }

    /// An http(s) URL without credentials, when set.
    pub fn url(&mut self, var: &Var) -> Option<url::Url> {
        let raw = self.optional(var)?;
        match url::Url::parse(raw.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.password().is_none() => Some(u),
            _ => {
                self.problems.push(format!(
                    "{} must be an http(s) URL without credentials",
                    var.name
                ));
                None
            }
        }
    }

    /// Two numbers, `min,max`; the declared default when invalid.
    pub fn pair(&mut self, var: &Var) -> (f64, f64) {
        let parse = |raw: &str| -> Option<(f64, f64)> {
            let (low, high) = raw.split_once(',')?;
            let number = |p: &str| p.trim().parse().ok().filter(|v: &f64| v.is_finite());
            Some((number(low)?, number(high)?))
        };
        let fallback = match var.default {
            Fallback::Value(d) => parse(d).unwrap_or((0.0, 0.0)),
            _ => (0.0, 0.0),
        };
        let Some(raw) = self.optional(var) else {
            return fallback;
        };
        parse(&raw).unwrap_or_else(|| {
            self.problems
                .push(format!("{}={raw:?} must be two numbers, min,max", var.name));
            fallback
        })
    }

    /// A comma-separated list of networks (CIDR).
    pub fn networks<T: std::str::FromStr>(&mut self, var: &Var) -> Vec<T> {
        let Some(raw) = self.optional(var) else {
            return Vec::new();
        };
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|item| {
                item.parse().ok().or_else(|| {
                    self.problems.push(format!(
                        "{}: {item:?} is not a valid network (CIDR)",
                        var.name
                    ));
                    None
                })
            })
            .collect()
    }
}
