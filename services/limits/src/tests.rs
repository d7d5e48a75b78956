use std::sync::atomic::{AtomicU64, Ordering};

use openheim_config::UserConfig;

use super::*;

fn server(defaults: LimitsConfig, users: &[(&str, LimitsConfig)]) -> ServerConfig {
    let mut server = ServerConfig {
        limits: defaults,
        ..ServerConfig::default()
    };
    for (name, limits) in users {
        let user = UserConfig {
            limits: *limits,
            ..UserConfig::default()
        };
        server.users.insert((*name).to_owned(), user);
    }
    server
}

/// A limiter over memory counters whose clock the test moves.
fn limiter(server: &ServerConfig, clock: &Arc<AtomicU64>) -> Limiter {
    let clock = Arc::clone(clock);
    Limiter::new(
        &LimitSettings::from_server(server),
        Arc::new(MemoryCounters::default()),
        "t",
    )
    .with_clock(move || Duration::from_secs(clock.load(Ordering::SeqCst)))
}

#[test]
fn nothing_configured_is_off_and_users_override_key_by_key() {
    assert!(
        Limiter::new(
            &LimitSettings::default(),
            Arc::new(MemoryCounters::default()),
            "t"
        )
        .is_off()
    );
    let defaults = LimitsConfig {
        concurrent_turns: Some(2),
        tokens_per_day: Some(1000),
        ..LimitsConfig::default()
    };
    let alice = LimitsConfig {
        tokens_per_day: Some(10),
        ..LimitsConfig::default()
    };
    let limiter = Limiter::new(
        &LimitSettings::from_server(&server(defaults, &[("alice", alice)])),
        Arc::new(MemoryCounters::default()),
        "t",
    );
    assert_eq!(limiter.limits_of("alice").tokens_per_day, Some(10));
    assert_eq!(limiter.limits_of("alice").concurrent_turns, Some(2));
    assert_eq!(limiter.limits_of("bob"), defaults);
    assert_eq!(
        Limit::from_name("tokens_per_day"),
        Some(Limit::TokensPerDay)
    );
}

#[tokio::test]
async fn requests_per_minute_are_refused_until_the_next_minute() {
    let limits = LimitsConfig {
        requests_per_minute: Some(2),
        ..LimitsConfig::default()
    };
    let clock = Arc::new(AtomicU64::new(600 + 45));
    let limiter = limiter(&server(limits, &[]), &clock);
    limiter.request("a").await.unwrap();
    limiter.request("a").await.unwrap();
    let refusal = limiter.request("a").await.unwrap_err();
    assert_eq!(refusal.limit, Limit::RequestsPerMinute);
    assert_eq!(refusal.retry_after_secs(), 15);
    // Refusals do not use up the window; another user has their own.
    assert!(limiter.request("a").await.is_err());
    limiter.request("b").await.unwrap();
    clock.store(660, Ordering::SeqCst);
    limiter.request("a").await.unwrap();
}

#[tokio::test]
async fn concurrent_turns_hold_a_slot_until_they_end() {
    let limits = LimitsConfig {
        concurrent_turns: Some(1),
        ..LimitsConfig::default()
    };
    let clock = Arc::new(AtomicU64::new(0));
    let limiter = limiter(&server(limits, &[]), &clock);
    let first = limiter.start_turn("a").await.unwrap();
    let refusal = limiter.start_turn("a").await.unwrap_err();
    assert_eq!(refusal.limit, Limit::ConcurrentTurns);
    assert_eq!(refusal.retry_after, CONCURRENT_RETRY_AFTER);
    let other = limiter.start_turn("b").await.unwrap();
    // A sub-agent's turn runs in its parent's slot.
    limiter.start_sub_turn("a").await.unwrap();
    first.release().await;
    let second = limiter.start_turn("a").await.unwrap();
    // Dropped (a turn task that panicked or was aborted): given back too.
    drop(second);
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    limiter.start_turn("a").await.unwrap().release().await;
    other.release().await;
}

#[tokio::test]
async fn the_token_budget_refuses_turns_until_the_next_utc_day() {
    let limits = LimitsConfig {
        tokens_per_day: Some(100),
        ..LimitsConfig::default()
    };
    // 2026-12-05T18:00:00Z.
    let clock = Arc::new(AtomicU64::new(1_796_493_600));
    let limiter = limiter(&server(limits, &[]), &clock);
    limiter.start_turn("a").await.unwrap().release().await;
    limiter.spend_tokens("a", 60).await;
    // Under the budget a turn starts (and may go over it).
    limiter.start_turn("a").await.unwrap().release().await;
    limiter.spend_tokens("a", 60).await;
    let refusal = limiter.start_turn("a").await.unwrap_err();
    assert_eq!(refusal.limit, Limit::TokensPerDay);
    assert_eq!(refusal.retry_after_secs(), 6 * 3600);
    assert_eq!(limiter.start_sub_turn("a").await.unwrap_err(), refusal);
    assert!(
        refusal.to_string().contains("100 tokens per day"),
        "{refusal}"
    );
    limiter.start_turn("b").await.unwrap().release().await;
    clock.store(1_796_515_200, Ordering::SeqCst);
    limiter.start_turn("a").await.unwrap().release().await;
}

#[tokio::test]
async fn sessions_per_day_count_each_new_session() {
    let limits = LimitsConfig {
        sessions_per_day: Some(1),
        ..LimitsConfig::default()
    };
    let clock = Arc::new(AtomicU64::new(86_400 * 3 + 10));
    let limiter = limiter(&server(limits, &[]), &clock);
    limiter.create_session("a").await.unwrap();
    let refusal = limiter.create_session("a").await.unwrap_err();
    assert_eq!(refusal.limit, Limit::SessionsPerDay);
    assert_eq!(refusal.retry_after_secs(), 86_390);
}

/// Two limiters over one Redis (two replicas) share the counts.
#[tokio::test]
async fn replicas_share_counts_through_redis() {
    let redis = openheim_test_redis::RedisServer::start();
    let limits = LimitsConfig {
        concurrent_turns: Some(1),
        tokens_per_day: Some(10),
        ..LimitsConfig::default()
    };
    let settings = LimitSettings::from_server(&server(limits, &[]));
    let one = Limiter::open(&settings, Some(redis.url()), redis.prefix()).unwrap();
    let two = Limiter::open(&settings, Some(redis.url()), redis.prefix()).unwrap();
    let slot = one.start_turn("a").await.unwrap();
    assert_eq!(
        two.start_turn("a").await.unwrap_err().limit,
        Limit::ConcurrentTurns
    );
    slot.release().await;
    two.spend_tokens("a", 10).await;
    assert_eq!(
        one.start_turn("a").await.unwrap_err().limit,
        Limit::TokensPerDay
    );
}
