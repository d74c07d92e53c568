//! A weighted choice among values (`10ms:90,200ms:10`): parsing, sampling per request and
//! writing it back, for every fault parameter that takes one.

use std::fmt::Write as _;

use rand::Rng;

/// Most entries accepted in one weighted choice; keeps hostile queries cheap to process.
pub const MAX_CHOICES: usize = 16;

/// A weighted choice among values: each entry is `(value, percent)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighted<T> {
    choices: Vec<(T, f64)>,
}

impl<T> Weighted<T> {
    /// A choice that always picks `value`.
    pub fn always(value: T) -> Self {
        Self {
            choices: vec![(value, 100.0)],
        }
    }

    /// Build from `(value, percent)` entries, validating the weights.
    pub fn new(choices: Vec<(T, f64)>) -> Result<Self, String> {
        if choices.is_empty() {
            return Err("no values given".into());
        }
        if choices.len() > MAX_CHOICES {
            return Err(format!("more than {MAX_CHOICES} values"));
        }
        let mut total = 0.0;
        for (_, w) in &choices {
            if !w.is_finite() || *w < 0.0 || *w > 100.0 {
                return Err(format!("weight {w} is not a percentage between 0 and 100"));
            }
            total += w;
        }
        if total > 100.0 + 1e-9 {
            return Err(format!("weights add up to {total}, more than 100"));
        }
        Ok(Self { choices })
    }

    /// The `(value, percent)` entries.
    pub fn choices(&self) -> &[(T, f64)] {
        &self.choices
    }

    /// Pick a value for a roll in `[0, 100)`; `None` means "unaffected".
    pub fn pick(&self, roll: f64) -> Option<&T> {
        let mut cumulative = 0.0;
        for (value, weight) in &self.choices {
            cumulative += weight;
            if roll < cumulative {
                return Some(value);
            }
        }
        None
    }

    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<&T> {
        // The common single-value-at-100% case needs no random number.
        if let [(value, w)] = self.choices.as_slice() {
            if *w >= 100.0 {
                return Some(value);
            }
        }
        self.pick(rng.random_range(0.0..100.0))
    }

    /// Parses `value:weight,...` (or one value, for every request).
    pub(crate) fn parse(
        raw: &str,
        parse_value: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Self, String> {
        let entries: Vec<&str> = raw.split(',').collect();
        if entries.len() > MAX_CHOICES {
            return Err(format!(
                "{:?} has more than {MAX_CHOICES} values",
                truncate(raw)
            ));
        }
        let single = entries.len() == 1;
        let mut choices = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.trim();
            let (value, weight) = match entry.rsplit_once(':') {
                Some((value, weight)) => {
                    let w = weight.trim().parse::<f64>().map_err(|_| {
                        format!(
                            "weight {:?} in {:?} is not a number",
                            truncate(weight),
                            truncate(entry)
                        )
                    })?;
                    (value.trim(), w)
                }
                None if single => (entry, 100.0),
                None => {
                    return Err(format!(
                        "{:?} needs a weight (`value:percent`) when several values are given",
                        truncate(entry)
                    ))
                }
            };
            let value = parse_value(value)?;
            choices.push((value, weight));
        }
        Self::new(choices)
    }

    pub(crate) fn write(&self, out: &mut String, fmt_value: impl Fn(&T, &mut String)) {
        for (i, (value, weight)) in self.choices.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            fmt_value(value, out);
            if !(self.choices.len() == 1 && *weight == 100.0) {
                let _ = write!(out, ":{weight}");
            }
        }
    }
}

/// Keep quoted user input in error messages short.
pub(crate) fn truncate(s: &str) -> &str {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
