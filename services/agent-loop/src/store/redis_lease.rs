//! Turn leases in Redis: taken with a random token, renewed every fifth of
//! their TTL while the turn runs, given back with a script that checks the
//! token, so a replica never extends or frees another's lease.

use std::time::Duration;

use ::redis::Script;
use futures::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::redis::{HeldTokens, Retry, millis, store_error};
use super::{Lease, StoreError};

/// Renewals per TTL: a lease survives a Redis outage of up to four fifths
/// of its TTL, and a dead holder's lease lapses at most one TTL after its
/// last renewal.
const RENEWALS_PER_TTL: u32 = 5;

/// Takes a lease, or confirms that we already hold it (an earlier attempt
/// of this call took it and its answer was lost).
/// KEYS: lease. ARGV: token, TTL in ms. Returns 1 if held by us.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Extends a lease if the caller still holds it. A lease that is gone
/// altogether (Redis restarted without its data) while the caller renewed
/// it in time is taken again; one that another holder has is not.
/// KEYS: lease. ARGV: token, TTL in ms. Returns 1 if held by us.
const RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Frees a lease if (and only if) the caller still holds it.
/// KEYS: lease. ARGV: token. Returns 1 if freed.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

pub(super) struct LeaseScripts {
    acquire: Script,
    renew: Script,
    release: Script,
}

impl LeaseScripts {
    pub(super) fn new() -> Self {
        Self {
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        }
    }
}

/// What a lease's renewal and release need, owned by their tasks.
#[derive(Clone)]
pub(super) struct HeldLease {
    pub(super) retry: Retry,
    pub(super) session_id: String,
    pub(super) key: String,
    pub(super) token: String,
    pub(super) ttl: Duration,
    /// The store's table of held leases: the lease is in it from when it is
    /// taken until it is released (also once lost, so the fence refuses the
    /// lost turn's writes).
    pub(super) held: HeldTokens,
}

impl HeldLease {
    /// Takes the lease (sent again across reconnections), and keeps it
    /// renewed until it is released or lost; `None` when another holder has
    /// it.
    pub(super) async fn acquire(self, scripts: &LeaseScripts) -> Result<Option<Lease>, StoreError> {
        let script = &scripts.acquire;
        let (key, token, ttl) = (&self.key, &self.token, millis(self.ttl));
        let taken: i64 = self
            .retry
            .run(move |mut connection, _| {
                let mut invocation = script.prepare_invoke();
                invocation.key(key).arg(token).arg(ttl);
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await?;
        if taken != 1 {
            return Ok(None);
        }
        if let Ok(mut held) = self.held.lock() {
            held.insert(self.session_id.clone(), self.token.clone());
        }
        let lost = CancellationToken::new();
        let renewal = tokio::spawn(
            self.clone()
                .renew_until_lost(scripts.renew.clone(), lost.clone()),
        );
        let release = scripts.release.clone();
        Ok(Some(Lease::remote(
            move || -> BoxFuture<'static, ()> {
                renewal.abort();
                Box::pin(self.release(release))
            },
            lost,
        )))
    }

    /// Extends the lease every fifth of its TTL until it is released (the
    /// task is aborted) or lost: Redis has another holder's token, or no
    /// renewal succeeded for a whole TTL (so it may have expired).
    async fn renew_until_lost(self, script: Script, lost: CancellationToken) {
        let ttl = self.ttl;
        let period = ttl / RENEWALS_PER_TTL;
        let mut last_renewed = Instant::now();
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if last_renewed.elapsed() >= ttl {
                tracing::warn!(session = %self.session_id, "the session's turn lease expired: Redis was unreachable for its whole TTL");
                lost.cancel();
                return;
            }
            let mut connection = self.retry.connection.manager();
            let mut invocation = script.prepare_invoke();
            invocation.key(&self.key).arg(&self.token).arg(millis(ttl));
            let renewing = invocation.invoke_async::<i64>(&mut connection);
            match tokio::time::timeout(period, renewing).await {
                Ok(Ok(1)) => last_renewed = Instant::now(),
                Ok(Ok(_)) => {
                    tracing::warn!(session = %self.session_id, "the session's turn lease was taken over");
                    lost.cancel();
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(session = %self.session_id, error = %store_error(self.retry.connection.failure(&e)), "could not renew the turn lease; retrying");
                }
                Err(_) => {
                    tracing::warn!(session = %self.session_id, "renewing the turn lease timed out; retrying");
                }
            }
        }
    }

    /// Frees the lease, sent again across reconnections within the retry
    /// window, so a turn that ends while Redis is briefly away does not
    /// leave its session blocked until the TTL runs out.
    async fn release(self, script: Script) {
        if let Ok(mut held) = self.held.lock()
            && held.get(&self.session_id) == Some(&self.token)
        {
            held.remove(&self.session_id);
        }
        let (script, key, token) = (&script, &self.key, &self.token);
        let freed = self
            .retry
            .run(move |mut connection, _| {
                let mut invocation = script.prepare_invoke();
                invocation.key(key).arg(token);
                async move { invocation.invoke_async::<i64>(&mut connection).await }
            })
            .await;
        if let Err(e) = freed {
            tracing::warn!(
                session = %self.session_id,
                error = %e,
                "could not release the turn lease; it expires with its TTL"
            );
        }
    }
}
