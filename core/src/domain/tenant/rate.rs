//! Request rates (a generic cell rate algorithm) and monthly quotas.

use super::*;

/// A request rate: `count` per `per`, with up to `burst` at once (a generic cell rate
/// algorithm: one request every `per / count`, with `burst` requests of credit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Requests per period.
    pub count: u32,
    /// The period in milliseconds.
    pub per_ms: u64,
    /// Requests admitted at once from a rested key.
    pub burst: u32,
}

/// What a rate allows one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Admitted; `tat` is the new theoretical arrival time to store.
    Admit {
        /// The new state (microseconds).
        tat: i64,
        /// Requests that could still be made at once.
        remaining: u32,
        /// Seconds until the full burst is available again.
        reset_s: u64,
    },
    /// Refused; nothing changes.
    Refuse {
        /// Seconds until one request would be admitted.
        retry_after_s: u64,
    },
}

impl Rate {
    /// Parses `N/s`, `N/min`, `N/h` or `N/day`; `burst` defaults to `N` (at least 1).
    pub fn parse(raw: &str, burst: Option<u32>) -> Result<Self, InvalidValue> {
        let bad = || {
            InvalidValue(format!(
                "rate '{}' is not N/s, N/min, N/h or N/day with N from 1 to 1000000",
                raw.escape_default()
            ))
        };
        let (count, unit) = raw.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per_ms = match unit.trim() {
            "s" | "sec" | "second" => 1_000,
            "m" | "min" | "minute" => 60_000,
            "h" | "hour" => 3_600_000,
            "d" | "day" => 86_400_000,
            _ => return Err(bad()),
        };
        if !(1..=1_000_000).contains(&count) {
            return Err(bad());
        }
        let burst = burst.unwrap_or(count).max(1);
        if burst > 1_000_000 {
            return Err(InvalidValue("burst must be at most 1000000".into()));
        }
        Ok(Self {
            count,
            per_ms,
            burst,
        })
    }

    /// Microseconds between two requests at the sustained rate.
    pub fn interval_us(&self) -> i64 {
        // `max(1)`: a stored record is not re-parsed, and must not divide by zero.
        ((self.per_ms as i64 * 1_000) / i64::from(self.count.max(1))).max(1)
    }

    /// The credit a rested key has, in microseconds.
    pub fn tolerance_us(&self) -> i64 {
        self.interval_us() * self.burst as i64
    }

    /// Seconds over which the burst refills (the `w` of the `RateLimit-Policy` field).
    pub fn window_s(&self) -> u64 {
        (self.tolerance_us() as u64).div_ceil(1_000_000).max(1)
    }

    /// Decides one request arriving at `now_us`, given the stored state `tat` (none for a
    /// rested key).
    pub fn decide(&self, tat: Option<i64>, now_us: i64) -> RateDecision {
        let t = self.interval_us();
        let tau = self.tolerance_us();
        let new_tat = tat.unwrap_or(now_us).max(now_us) + t;
        if new_tat - now_us > tau {
            let wait = new_tat - now_us - tau;
            return RateDecision::Refuse {
                retry_after_s: (wait as u64).div_ceil(1_000_000).max(1),
            };
        }
        RateDecision::Admit {
            tat: new_tat,
            remaining: ((now_us + tau - new_tat) / t) as u32,
            reset_s: ((new_tat - now_us) as u64).div_ceil(1_000_000),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per_ms {
            1_000 => "s",
            60_000 => "min",
            3_600_000 => "h",
            _ => "day",
        };
        write!(f, "{}/{unit} (burst {})", self.count, self.burst)
    }
}

/// Parses a monthly quota: `N/month` (or a bare `N`).
pub fn parse_quota(raw: &str) -> Result<u64, InvalidValue> {
    let n = raw.strip_suffix("/month").unwrap_or(raw).trim();
    n.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        InvalidValue(format!(
            "quota '{}' is not N/month with N at least 1",
            raw.escape_default()
        ))
    })
}

/// A calendar month (UTC): the period of quotas and usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `YYYY-MM`.
    pub label: String,
    /// When the next period starts (the quota's reset).
    pub resets_at: Millis,
}

impl Period {
    /// The month `now` falls in.
    pub fn of(now: Millis) -> Self {
        use chrono::{Datelike, TimeZone, Utc};
        let t = Utc
            .timestamp_millis_opt(now)
            .single()
            .unwrap_or_else(Utc::now);
        let (y, m) = if t.month() == 12 {
            (t.year() + 1, 1)
        } else {
            (t.year(), t.month() + 1)
        };
        let next = Utc
            .with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .single()
            .map_or(now, |d| d.timestamp_millis());
        Self {
            label: format!("{:04}-{:02}", t.year(), t.month()),
            resets_at: next,
        }
    }

    /// Seconds from `now` to the reset, at least 1.
    pub fn seconds_left(&self, now: Millis) -> u64 {
        ((self.resets_at - now).max(0) as u64).div_ceil(1000).max(1)
    }
}
