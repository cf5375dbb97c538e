//! Rate limits: the generic cell rate algorithm (GCRA) per principal, tool, server, tenant or
//! API key, held in process or globally through Redis (one atomic script per check, Redis's
//! clock, so replicas agree), with a fail mode per limit; and a cap on each principal's
//! calls in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{RateLimits, RateRule, RawFailMode, RawRatePer};

/// Keys kept in process before the table is swept of idle ones.
const MAX_LOCAL_KEYS: usize = 100_000;
/// Longest wait for Redis before the limit's fail mode decides.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// GCRA in Redis: `KEYS[1]` the key; `ARGV` interval and tolerance in microseconds.
/// Returns `{allowed, retry_after_us}`. The theoretical arrival time is stored in
/// microseconds by Redis's own clock and expires when idle.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if now < tat - tolerance then
  return {0, tat - tolerance - now}
end
local new = tat + interval
redis.call('SET', KEYS[1], new, 'PX', math.ceil((new - now) / 1000) + 1000)
return {1, 0}
";

/// What a request is, for choosing rules and keys.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub method: &'a str,
    pub principal: &'a str,
    pub tenant: Option<&'a str>,
    pub api_key: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub server: Option<&'a str>,
    /// The target's data is restricted: limits fail closed unless configured otherwise.
    pub restricted: bool,
}

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over the limit: try again after this long.
    Limited { rule: String, retry_after: Duration },
    /// The shared store could not be asked and the limit fails closed.
    Unavailable { rule: String },
    /// Too many of this principal's calls are in flight.
    InFlight,
}

/// A Redis client for `url`: `rediss://` is TLS (rustls), verified against `ca` when given
/// (the system's roots otherwise).
pub(crate) fn redis_client(
    url: &str,
    ca: Option<&std::path::Path>,
) -> Result<redis::Client, String> {
    match ca {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(|e| e.to_string())
        }
        None => redis::Client::open(url).map_err(|e| e.to_string()),
    }
}

/// The limiter: process-local state, and the Redis connection when configured.
pub struct Limiter {
    local: Mutex<HashMap<String, Instant>>,
    redis: tokio::sync::Mutex<Option<(String, redis::aio::ConnectionManager)>>,
    script: redis::Script,
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
    started: Instant,
    /// After a failed connect, Redis is not tried again until then: a dead store costs
    /// each request nothing, not a timeout.
    retry_connect: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            local: Mutex::new(HashMap::new()),
            redis: tokio::sync::Mutex::new(None),
            script: redis::Script::new(SCRIPT),
            in_flight: Mutex::new(HashMap::new()),
            started: Instant::now(),
            retry_connect: Mutex::new(None),
        }
    }
}

fn applies(rule: &RateRule, f: &Facts<'_>) -> bool {
    (rule.methods.is_empty() || rule.methods.iter().any(|m| m == f.method))
        && (rule.tools.is_empty() || f.tool.is_some_and(|t| rule.tools.iter().any(|x| x == t)))
        && (rule.servers.is_empty()
            || f.server
                .is_some_and(|s| rule.servers.iter().any(|x| x == s)))
}

/// The key a rule counts this request under; `None` when the rule does not count it (an
/// `api_key` rule and a caller without a key).
fn key(rule: &RateRule, f: &Facts<'_>) -> Option<String> {
    let k = match rule.per {
        RawRatePer::Principal => format!("p\u{0}{}", f.principal),
        RawRatePer::Tool => format!("t\u{0}{}", f.tool.unwrap_or(f.method)),
        RawRatePer::Server => format!("s\u{0}{}", f.server.unwrap_or("")),
        RawRatePer::Tenant => format!("n\u{0}{}", f.tenant.unwrap_or("")),
        RawRatePer::ApiKey => format!("k\u{0}{}", f.api_key?),
        RawRatePer::PrincipalTool => {
            format!("pt\u{0}{}\u{0}{}", f.principal, f.tool.unwrap_or(f.method))
        }
    };
    Some(format!("{}\u{0}{k}", rule.name))
}

impl Limiter {
    /// Checks every rule that applies; the first refusal wins.
    pub async fn check(&self, limits: &RateLimits, f: &Facts<'_>) -> Result<(), Refusal> {
        for rule in limits.rules.iter().filter(|r| applies(r, f)) {
            let Some(key) = key(rule, f) else { continue };
            let tolerance = rule.interval * u32::try_from(rule.burst).unwrap_or(u32::MAX);
            let outcome = match &limits.redis {
                None => Ok(self.local(&key, rule.interval, tolerance)),
                Some(url) => {
                    self.global(
                        url,
                        limits.redis_ca.as_deref(),
                        &key,
                        rule.interval,
                        tolerance,
                    )
                    .await
                }
            };
            match outcome {
                Ok(None) => {}
                Ok(Some(retry_after)) => {
                    return Err(Refusal::Limited {
                        rule: rule.name.clone(),
                        retry_after,
                    });
                }
                Err(e) => {
                    let closed = match rule.fail {
                        Some(RawFailMode::Closed) => true,
                        Some(RawFailMode::Open) => false,
                        None => f.restricted,
                    };
                    tracing::error!(rule = %rule.name, error = %e, closed, "rate limit store unavailable");
                    if closed {
                        return Err(Refusal::Unavailable {
                            rule: rule.name.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// GCRA in process: `None` to allow, else how long to wait.
    fn local(&self, key: &str, interval: Duration, tolerance: Duration) -> Option<Duration> {
        let now = Instant::now();
        let mut table = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        if table.len() >= MAX_LOCAL_KEYS && !table.contains_key(key) {
            // Idle keys (arrival time in the past) hold no state worth keeping.
            table.retain(|_, tat| *tat > now);
        }
        let tat = table.get(key).copied().unwrap_or(now).max(now);
        let allow_at = tat.checked_sub(tolerance).unwrap_or(self.started);
        if now < allow_at {
            return Some(allow_at - now);
        }
        table.insert(key.to_owned(), tat + interval);
        None
    }

    /// The shared connection to Redis at `url`, made on first use; after a failed connect
    /// none is tried for a second.
    async fn connection(
        &self,
        url: &str,
        ca: Option<&std::path::Path>,
    ) -> Result<redis::aio::ConnectionManager, String> {
        let conn = {
            let mut slot = self.redis.lock().await;
            match slot.as_ref() {
                Some((u, c)) if u == url => c.clone(),
                _ => {
                    let backoff = *self
                        .retry_connect
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if backoff.is_some_and(|t| Instant::now() < t) {
                        return Err("unreachable (recent connect failed)".into());
                    }
                    let connect = async {
                        let client = redis_client(url, ca)?;
                        tokio::time::timeout(
                            REDIS_TIMEOUT,
                            redis::aio::ConnectionManager::new(client),
                        )
                        .await
                        .map_err(|_| "connect timed out".to_owned())?
                        .map_err(|e| e.to_string())
                    };
                    match connect.await {
                        Ok(c) => {
                            *slot = Some((url.to_owned(), c.clone()));
                            c
                        }
                        Err(e) => {
                            *self
                                .retry_connect
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner) =
                                Some(Instant::now() + Duration::from_secs(1));
                            return Err(e);
                        }
                    }
                }
            }
        };
        Ok(conn)
    }

    /// Whether Redis at `url` answers a PING (readiness), on the limiter's connection.
    pub async fn redis_ready(&self, url: &str, ca: Option<&std::path::Path>) -> Result<(), String> {
        let mut conn = self.connection(url, ca).await?;
        let pong: String =
            tokio::time::timeout(REDIS_TIMEOUT, redis::cmd("PING").query_async(&mut conn))
                .await
                .map_err(|_| "timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        (pong == "PONG").then_some(()).ok_or(pong)
    }

    async fn global(
        &self,
        url: &str,
        ca: Option<&std::path::Path>,
        key: &str,
        interval: Duration,
        tolerance: Duration,
    ) -> Result<Option<Duration>, String> {
        let mut conn = self.connection(url, ca).await?;
        let mut inv = self.script.key(format!("gatehouse:rl:{key}"));
        inv.arg(interval.as_micros() as u64)
            .arg(tolerance.as_micros() as u64);
        let (allowed, retry_us): (i64, i64) =
            tokio::time::timeout(REDIS_TIMEOUT, inv.invoke_async(&mut conn))
                .await
                .map_err(|_| "timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        Ok((allowed == 0).then(|| Duration::from_micros(retry_us.max(0) as u64)))
    }

    /// A slot for one of `principal`'s calls, or a refusal when its cap is reached. The
    /// slot is freed when the returned permit drops.
    pub fn enter(
        &self,
        limits: &RateLimits,
        principal: &str,
    ) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
        let Some(cap) = limits.max_in_flight_per_principal else {
            return Ok(None);
        };
        let sem = {
            let mut map = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if map.len() >= MAX_LOCAL_KEYS {
                // Semaphores with every permit free belong to nobody in flight.
                map.retain(|_, s| s.available_permits() < cap);
            }
            map.entry(principal.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(cap)))
                .clone()
        };
        sem.try_acquire_owned()
            .map(Some)
            .map_err(|_| Refusal::InFlight)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rule(per: RawRatePer, requests: u32, burst: u64) -> RateRule {
        RateRule {
            name: "r".into(),
            per,
            interval: Duration::from_secs(60) / requests,
            burst,
            methods: vec![],
            tools: vec![],
            servers: vec![],
            fail: None,
        }
    }

    fn facts<'a>(principal: &'a str, tool: Option<&'a str>) -> Facts<'a> {
        Facts {
            method: "tools/call",
            principal,
            tenant: None,
            api_key: None,
            tool,
            server: Some("db"),
            restricted: false,
        }
    }

    #[tokio::test]
    async fn gcra_allows_the_burst_then_the_rate_per_key() {
        let l = Limiter::default();
        let limits = RateLimits {
            rules: vec![rule(RawRatePer::Principal, 60, 2)],
            ..RateLimits::default()
        };
        // Burst 2 plus the first: three at once, then refused with a retry hint.
        for _ in 0..3 {
            assert_eq!(l.check(&limits, &facts("alice", None)).await, Ok(()));
        }
        match l.check(&limits, &facts("alice", None)).await {
            Err(Refusal::Limited { retry_after, .. }) => {
                assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}");
            }
            other => panic!("{other:?}"),
        }
        // Another principal has its own allowance.
        assert_eq!(l.check(&limits, &facts("bob", None)).await, Ok(()));
    }

    #[tokio::test]
    async fn rules_apply_only_to_what_they_name_and_api_key_rules_skip_other_callers() {
        let l = Limiter::default();
        let mut r = rule(RawRatePer::Tool, 1, 0);
        r.tools = vec!["db__query".into()];
        let keyed = rule(RawRatePer::ApiKey, 1, 0);
        let limits = RateLimits {
            rules: vec![
                r,
                RateRule {
                    name: "k".into(),
                    ..keyed
                },
            ],
            ..RateLimits::default()
        };
        assert!(
            l.check(&limits, &facts("a", Some("db__query")))
                .await
                .is_ok()
        );
        // Per tool: the second caller shares the tool's budget.
        assert!(
            l.check(&limits, &facts("b", Some("db__query")))
                .await
                .is_err()
        );
        // Another tool is not counted; no API key, no key rule.
        assert!(
            l.check(&limits, &facts("b", Some("db__other")))
                .await
                .is_ok()
        );
        assert!(
            l.check(&limits, &facts("b", Some("db__other")))
                .await
                .is_ok()
        );
        let mut with_key = facts("svc", Some("db__other"));
        with_key.api_key = Some("k1");
        assert!(l.check(&limits, &with_key).await.is_ok());
        assert!(l.check(&limits, &with_key).await.is_err());
    }

    #[tokio::test]
    async fn an_unreachable_store_fails_per_the_rule() {
        let l = Limiter::default();
        let mut open = rule(RawRatePer::Principal, 60, 0);
        open.fail = Some(RawFailMode::Open);
        let limits = |r: RateRule| RateLimits {
            // Nothing listens on port 1.
            redis: Some("redis://127.0.0.1:1/".into()),
            rules: vec![r],
            ..RateLimits::default()
        };
        assert!(l.check(&limits(open), &facts("a", None)).await.is_ok());
        let mut closed = rule(RawRatePer::Principal, 60, 0);
        closed.fail = Some(RawFailMode::Closed);
        assert!(matches!(
            l.check(&limits(closed), &facts("a", None)).await,
            Err(Refusal::Unavailable { .. })
        ));
        // Default: closed for restricted data only.
        let mut restricted = facts("a", None);
        restricted.restricted = true;
        assert!(
            l.check(
                &limits(rule(RawRatePer::Principal, 60, 0)),
                &facts("a", None)
            )
            .await
            .is_ok()
        );
        assert!(
            l.check(&limits(rule(RawRatePer::Principal, 60, 0)), &restricted)
                .await
                .is_err()
        );
    }

    #[test]
    fn in_flight_caps_hold_per_principal() {
        let l = Limiter::default();
        let limits = RateLimits {
            max_in_flight_per_principal: Some(1),
            ..RateLimits::default()
        };
        let held = l.enter(&limits, "a").unwrap();
        assert_eq!(l.enter(&limits, "a").err(), Some(Refusal::InFlight));
        assert!(l.enter(&limits, "b").is_ok());
        drop(held);
        assert!(l.enter(&limits, "a").is_ok());
    }
}
