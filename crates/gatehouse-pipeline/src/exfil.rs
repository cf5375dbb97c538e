//! Exfiltration controls over result sizes: byte budgets per principal, tool or both over
//! sliding windows (an agent cannot drain a database through many small calls), and an
//! alert when a result is far above the usual size for that principal and that tool.
//! State is per process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{Budget, Exfiltration, RawRatePer};

/// Buckets per budget window: the window slides in steps of 1/60 of its length.
const BUCKETS: usize = 60;
/// Keys kept before idle ones are dropped.
const MAX_KEYS: usize = 100_000;

/// Bytes per bucket over one window.
#[derive(Debug, Clone)]
struct Window {
    start: Instant,
    step: Duration,
    /// (bucket index since `start`, bytes).
    buckets: Vec<(u64, u64)>,
}

impl Window {
    fn new(len: Duration, now: Instant) -> Window {
        Window {
            start: now,
            step: (len / BUCKETS as u32).max(Duration::from_millis(1)),
            buckets: Vec::new(),
        }
    }

    fn index(&self, now: Instant) -> u64 {
        (now.duration_since(self.start).as_nanos() / self.step.as_nanos().max(1)) as u64
    }

    fn used(&mut self, now: Instant) -> u64 {
        let current = self.index(now);
        self.buckets
            .retain(|(i, _)| current.saturating_sub(*i) < BUCKETS as u64);
        self.buckets.iter().map(|(_, b)| b).sum()
    }

    fn add(&mut self, now: Instant, bytes: u64) {
        let i = self.index(now);
        match self.buckets.last_mut() {
            Some((last, b)) if *last == i => *b += bytes,
            _ => self.buckets.push((i, bytes)),
        }
    }

    /// When the oldest bucket leaves the window.
    fn frees_in(&self, now: Instant) -> Duration {
        let Some((oldest, _)) = self.buckets.first() else {
            return Duration::ZERO;
        };
        let leaves = self.start + self.step * (*oldest as u32 + BUCKETS as u32);
        leaves.saturating_duration_since(now)
    }
}

/// A running mean of result sizes.
#[derive(Debug, Clone, Copy, Default)]
struct Baseline {
    mean: f64,
    samples: u64,
}

impl Baseline {
    /// Exponentially weighted over about the last 50 results.
    fn add(&mut self, bytes: u64) {
        self.samples += 1;
        let alpha = (1.0 / self.samples as f64).max(0.02);
        self.mean += alpha * (bytes as f64 - self.mean);
    }
}

/// Why a result was withheld.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBudget {
    pub budget: String,
    pub retry_after: Duration,
}

/// What one call is, for budgets and baselines.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub principal: &'a str,
    pub tool: &'a str,
}

fn key(b: &Budget, c: &Call<'_>) -> String {
    let k = match b.per {
        RawRatePer::Tool => format!("t\u{0}{}", c.tool),
        RawRatePer::PrincipalTool => format!("pt\u{0}{}\u{0}{}", c.principal, c.tool),
        _ => format!("p\u{0}{}", c.principal),
    };
    format!("{}\u{0}{k}", b.name)
}

#[derive(Debug)]
pub struct Exfil {
    windows: Mutex<HashMap<String, Window>>,
    /// Result-size baselines, bounded with TinyLFU admission: a flood of new principals
    /// or tools cannot flush the baselines in steady use (and with them the anomaly
    /// alerts an exfiltration would raise). Each entry is a shared cell updated in place:
    /// a known key costs the cache a read, not a write (its write path allocated and
    /// queued on every call).
    baselines: moka::sync::Cache<String, Arc<Mutex<Baseline>>>,
}

impl Default for Exfil {
    fn default() -> Self {
        Exfil {
            windows: Mutex::default(),
            baselines: moka::sync::Cache::builder()
                .max_capacity(MAX_KEYS as u64)
                .time_to_idle(Duration::from_secs(30 * 24 * 3600))
                .build(),
        }
    }
}

impl Exfil {
    /// Before a call: refused when a budget it counts against is already spent.
    pub fn before(&self, cfg: &Exfiltration, c: &Call<'_>) -> Result<(), OverBudget> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        for b in &cfg.budgets {
            if let Some(w) = windows.get_mut(&key(b, c))
                && w.used(now) >= b.bytes
            {
                return Err(OverBudget {
                    budget: b.name.clone(),
                    retry_after: w.frees_in(now),
                });
            }
        }
        Ok(())
    }

    /// After a call, with its result's size: withheld (and not counted) when it would take
    /// a budget over; else counted.
    pub fn after(&self, cfg: &Exfiltration, c: &Call<'_>, bytes: u64) -> Result<(), OverBudget> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= MAX_KEYS {
            windows.retain(|_, w| w.used(now) > 0);
        }
        for b in &cfg.budgets {
            let w = windows
                .entry(key(b, c))
                .or_insert_with(|| Window::new(b.window, now));
            if w.used(now).saturating_add(bytes) > b.bytes {
                return Err(OverBudget {
                    budget: b.name.clone(),
                    retry_after: w.frees_in(now).max(Duration::from_secs(1)),
                });
            }
        }
        for b in &cfg.budgets {
            if let Some(w) = windows.get_mut(&key(b, c)) {
                w.add(now, bytes);
            }
        }
        Ok(())
    }

    /// Records a result's size; returns the baseline it is far above (both the
    /// principal's for this tool and the tool's overall), if it is.
    pub fn anomaly(&self, cfg: &Exfiltration, c: &Call<'_>, bytes: u64) -> Option<u64> {
        let a = cfg.anomaly.as_ref()?;
        let cell = |k: String| {
            self.baselines
                .get(&k)
                .unwrap_or_else(|| self.baselines.entry(k).or_default().into_value())
        };
        let mine = cell(format!("pt\u{0}{}\u{0}{}", c.principal, c.tool));
        let tool = cell(format!("t\u{0}{}", c.tool));
        let read = |b: &Mutex<Baseline>| *b.lock().unwrap_or_else(PoisonError::into_inner);
        let (m, t) = (read(&mine), read(&tool));
        let usual = m.mean.max(t.mean);
        let flagged =
            m.samples >= a.min_samples && bytes >= a.min_bytes && bytes as f64 > a.factor * usual;
        for b in [mine, tool] {
            b.lock().unwrap_or_else(PoisonError::into_inner).add(bytes);
        }
        flagged.then_some(usual as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Anomaly;

    fn cfg(budget: u64) -> Exfiltration {
        Exfiltration {
            budgets: vec![Budget {
                name: "b".into(),
                per: RawRatePer::Principal,
                bytes: budget,
                window: Duration::from_secs(60),
            }],
            anomaly: Some(Anomaly {
                factor: 10.0,
                min_bytes: 1000,
                min_samples: 5,
            }),
        }
    }

    #[test]
    fn many_small_results_spend_the_budget_then_calls_are_refused() {
        let e = Exfil::default();
        let c = cfg(1000);
        let alice = Call {
            principal: "alice",
            tool: "db__query",
        };
        for _ in 0..4 {
            assert!(e.before(&c, &alice).is_ok());
            assert!(e.after(&c, &alice, 250).is_ok());
        }
        let refused = e.before(&c, &alice).unwrap_err();
        assert_eq!(refused.budget, "b");
        assert!(
            refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(60)
        );
        // Another principal has its own budget.
        let bob = Call {
            principal: "bob",
            tool: "db__query",
        };
        assert!(e.before(&c, &bob).is_ok());
        // A result that would cross the line is withheld and not counted.
        assert!(e.after(&c, &bob, 900).is_ok());
        assert!(e.after(&c, &bob, 200).is_err());
        assert!(e.after(&c, &bob, 100).is_ok());
    }

    #[test]
    fn a_result_far_above_the_usual_size_is_flagged_once_there_is_a_baseline() {
        let e = Exfil::default();
        let c = cfg(u64::MAX);
        let call = Call {
            principal: "alice",
            tool: "db__query",
        };
        // No baseline yet: nothing to compare with.
        assert_eq!(e.anomaly(&c, &call, 1_000_000), None);
        let e = Exfil::default();
        for _ in 0..10 {
            assert_eq!(e.anomaly(&c, &call, 500), None);
        }
        assert_eq!(e.anomaly(&c, &call, 4000), None, "8x is within the factor");
        assert!(e.anomaly(&c, &call, 100_000).is_some());
        // Small results are never anomalies.
        let tiny = Call {
            principal: "bob",
            tool: "t",
        };
        for _ in 0..10 {
            e.anomaly(&c, &tiny, 10);
        }
        assert_eq!(e.anomaly(&c, &tiny, 900), None);
    }

    /// Baselines used to be cleared when the table filled: new principals (one call each)
    /// wiped alice's history, and her large result then raised nothing.
    #[test]
    fn a_flood_of_new_keys_does_not_wipe_a_baseline_in_use() {
        let e = Exfil::default();
        let c = cfg(u64::MAX);
        let alice = Call {
            principal: "alice",
            tool: "db__query",
        };
        for _ in 0..10 {
            e.anomaly(&c, &alice, 500);
        }
        // Alice keeps working while new keys arrive until the table is full (two keys per
        // new call, plus alice's two).
        for n in 0..MAX_KEYS / 2 {
            if n % 100 == 0 {
                e.anomaly(&c, &alice, 500);
            }
            let p = format!("p{n}");
            let t = format!("t{n}");
            e.anomaly(
                &c,
                &Call {
                    principal: &p,
                    tool: &t,
                },
                500,
            );
        }
        e.baselines.run_pending_tasks();
        assert!(e.anomaly(&c, &alice, 100_000).is_some());
    }
}
