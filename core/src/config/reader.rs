//! Reading variables: each getter parses one variable and records what is wrong with it, so
//! that every problem is reported at once.

use std::fmt;

/// Reads variables through a lookup, collecting problems.
pub(super) struct Reader<'a, F: Fn(&str) -> Option<String>> {
    pub(super) lookup: &'a F,
    pub(super) problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    pub(super) fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn string(&mut self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_owned())
    }

    pub(super) fn parse<T: std::str::FromStr>(&mut self, name: &str, default: T) -> T {
        match self.raw(name) {
            None => default,
            Some(v) => v.trim().parse().unwrap_or_else(|_| {
                self.problems.push(format!(
                    "{name}={v:?} is not a valid {}",
                    std::any::type_name::<T>()
                ));
                default
            }),
        }
    }

    /// One of a set of named choices, parsed by `parse`; `default` when unset or invalid.
    pub(super) fn choice<T, E: fmt::Display>(
        &mut self,
        name: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> T {
        match self.raw(name) {
            None => default,
            Some(v) => parse(&v).unwrap_or_else(|e| {
                self.problems.push(format!("{name}: {e}"));
                default
            }),
        }
    }

    pub(super) fn url(&mut self, name: &str) -> Option<url::Url> {
        let raw = self.raw(name)?;
        match url::Url::parse(raw.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.password().is_none() => Some(u),
            _ => {
                self.problems
                    .push(format!("{name} must be an http(s) URL without credentials"));
                None
            }
        }
    }

    pub(super) fn range(&mut self, name: &str, default: (f64, f64)) -> (f64, f64) {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        let parts: Vec<Option<f64>> = raw.split(',').map(|p| p.trim().parse().ok()).collect();
        match parts.as_slice() {
            [Some(low), Some(high)] => (*low, *high),
            _ => {
                self.problems
                    .push(format!("{name}={raw:?} must be two numbers, min,max"));
                default
            }
        }
    }

    pub(super) fn list<T: std::str::FromStr>(&mut self, name: &str) -> Vec<T> {
        let Some(raw) = self.raw(name) else {
            return Vec::new();
        };
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|item| {
                item.parse().ok().or_else(|| {
                    self.problems
                        .push(format!("{name}: {item:?} is not a valid network (CIDR)"));
                    None
                })
            })
            .collect()
    }
}
