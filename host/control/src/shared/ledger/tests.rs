//! The ledger against the machine's Redis: two replicas on one key prefix.

use super::*;
use crate::shared::RedisSettings;

fn replica(url: &str, prefix: &str) -> Arc<SharedRedis> {
    Arc::new(
        SharedRedis::connect(&RedisSettings {
            url: url.to_owned(),
            failure_mode: FailureMode::Closed,
            timeout: Duration::from_secs(2),
            key_prefix: prefix.to_owned(),
        })
        .unwrap(),
    )
}

async fn tenants(db: &Database, slugs: &[&str]) -> Vec<TenantId> {
    let audit = omniforge_store::AuditContext::system("test", "ledger");
    let mut ids = Vec::new();
    for slug in slugs {
        let tenant = db.platform().create_tenant(&audit, slug, slug).await;
        ids.push(tenant.unwrap().id);
    }
    ids
}

/// A database and a Redis key prefix of the test's own: the replicas made from it share
/// both, as replicas of one deployment do.
struct Fixture {
    url: String,
    prefix: String,
    test: omniforge_store::testing::TestDatabase,
}

impl Fixture {
    /// `None` when no Redis is configured (outside CI).
    async fn new(what: &str) -> Option<Self> {
        let url = omniforge_store::testing::redis_url()?;
        let test = omniforge_store::testing::sqlite().await;
        test.db.migrate().await.unwrap();
        Some(Self {
            url,
            prefix: omniforge_store::testing::unique_prefix(what),
            test,
        })
    }

    fn replica(&self) -> Arc<RedisLedger> {
        RedisLedger::new(replica(&self.url, &self.prefix), self.test.db.clone())
    }
}

/// The period's `held` or `used` counters as Redis has them: (invocations, fuel).
async fn counters(ledger: &RedisLedger, tenant: &TenantId, which: &str) -> (i64, i64) {
    let (period, _) = period_of(
        TenantPolicy::default().quota_period,
        OffsetDateTime::now_utc(),
    );
    let key = format!("{}:{which}", ledger.base(tenant, &period));
    let values: Vec<Option<i64>> = ledger
        .redis
        .run("test", |mut conn| async move {
            redis::cmd("HMGET")
                .arg(key)
                .arg("inv")
                .arg("fuel")
                .query_async(&mut conn)
                .await
        })
        .await
        .unwrap();
    (values[0].unwrap_or(0), values[1].unwrap_or(0))
}

/// Moves `hold`'s deadline into the past, as if its replica had died or stalled: the next
/// admission releases it.
async fn lapse(ledger: &RedisLedger, hold: &Hold) {
    let base = ledger.base(hold.tenant(), hold.period());
    let id = hold.shared_id().unwrap().to_owned();
    let moved: i64 = ledger
        .redis
        .run("test", |mut conn| async move {
            redis::cmd("ZADD")
                .arg(format!("{base}:holds"))
                .arg("XX")
                .arg("CH")
                .arg(0)
                .arg(&id)
                .query_async(&mut conn)
                .await
        })
        .await
        .unwrap();
    assert_eq!(moved, 1, "the hold was there, with a later deadline");
}

fn refused_quota(answer: Result<Hold, QuotaExceeded>) -> &'static str {
    answer.expect_err("refused").quota
}

#[tokio::test]
async fn near_the_quota_two_replicas_admit_exactly_it_and_settled_holds_free_their_share() {
    let Some(fx) = Fixture::new("ledger").await else {
        return;
    };
    let [tenant, other] =
        <[TenantId; 2]>::try_from(tenants(&fx.test.db, &["acme", "globex"]).await).unwrap();
    let (a, b) = (fx.replica(), fx.replica());
    // Within 16 invocations of the quota, every lease is one invocation.
    let policy = TenantPolicy {
        max_invocations: Some(10),
        ..TenantPolicy::default()
    };
    let asks: Vec<_> = (0..40)
        .map(|i| {
            let ledger = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let (tenant, policy) = (tenant.clone(), policy.clone());
            tokio::spawn(async move {
                let answer = ledger.reserve(&tenant, &policy, 100).await.unwrap();
                answer.map(|hold| (ledger, hold))
            })
        })
        .collect();
    let mut holds = Vec::new();
    for ask in asks {
        match ask.await.unwrap() {
            Ok(admitted) => holds.push(admitted),
            Err(refused) => {
                assert_eq!(refused.quota, "invocations");
                assert_eq!(refused.retry_after_secs, 1, "held, not used up");
            }
        }
    }
    assert_eq!(holds.len(), 10, "exactly the quota across both replicas");
    assert!(holds.iter().all(|(_, hold)| hold.is_shared()));
    assert_eq!(counters(&a, &tenant, "held").await.0, 10);

    // Three ran; two never did (their share comes back); five are still running. Each is
    // settled by the replica that admitted it; another replica leaves it alone.
    let spent = Spent {
        fuel: 40,
        wall_us: 1_500,
        failed: false,
    };
    let (stranger, hold) = &holds[0];
    let stranger = if Arc::ptr_eq(stranger, &a) { &b } else { &a };
    stranger.settle(hold, None);
    stranger.close().await.unwrap();
    assert_eq!(counters(&a, &tenant, "held").await.0, 10);
    for (ledger, hold) in &holds[..3] {
        ledger.settle(hold, Some(spent));
    }
    for (ledger, hold) in &holds[3..5] {
        ledger.settle(hold, None);
    }
    let mut admitted = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while admitted < 2 {
        match a.reserve(&tenant, &policy, 100).await.unwrap() {
            Ok(_) => admitted += 1,
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "the released share never came back"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let refused = b.reserve(&tenant, &policy, 100).await.unwrap();
    assert_eq!(refused_quota(refused), "invocations");
    // Each replica sends its settlements on its own: a's may land after b's.
    let deadline = Instant::now() + Duration::from_secs(5);
    while counters(&a, &tenant, "used").await.0 != 3 {
        assert!(
            Instant::now() < deadline,
            "what ran never reached the counters"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The database learns what ran from the replicas that settled it.
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    let (period, _) = period_of(policy.quota_period, OffsetDateTime::now_utc());
    let stored = fx.test.db.tenant(&tenant).usage(&period).await.unwrap();
    assert_eq!((stored.invocations, stored.fuel), (3, 120));

    // Fuel: the hold is cut to what is left, then refused.
    let fuel = TenantPolicy {
        max_total_fuel: Some(1_000),
        ..TenantPolicy::default()
    };
    let c = fx.replica();
    let first = a.reserve(&other, &fuel, 600).await.unwrap().unwrap();
    let second = c.reserve(&other, &fuel, 600).await.unwrap().unwrap();
    assert_eq!((first.fuel(), second.fuel()), (600, 400));
    assert_eq!(
        refused_quota(a.reserve(&other, &fuel, 1).await.unwrap()),
        "fuel"
    );
    assert_eq!(
        refused_quota(b.reserve(&other, &fuel, 1).await.unwrap()),
        "fuel"
    );

    // A hold nobody settles (its replica died) lapses at its deadline: moved to the past
    // here, it is released by the next admission.
    lapse(&a, &second).await;
    // b's refusal stands for a moment; then it asks again.
    tokio::time::sleep(leases::HELD_REFUSAL_MEMORY).await;
    let third = b.reserve(&other, &fuel, 600).await.unwrap().unwrap();
    assert_eq!(third.fuel(), 400);
    assert_eq!(counters(&a, &other, "held").await.1, 1_000);
    // Settling the lapsed hold later changes nothing: it was released once.
    c.settle(&second, None);
    c.close().await.unwrap();
    assert_eq!(counters(&a, &other, "held").await.1, 1_000);
    assert_eq!(
        refused_quota(b.reserve(&other, &fuel, 1).await.unwrap()),
        "fuel"
    );

    // A tenant without a quota never asks Redis.
    let before = a.redis.round_trips();
    let free = a
        .reserve(&TenantId::new("ten_free"), &TenantPolicy::default(), 10)
        .await
        .unwrap()
        .unwrap();
    assert!(!free.is_shared());
    assert_eq!(a.redis.round_trips(), before);
}

#[tokio::test]
async fn far_from_the_quota_leases_spare_redis_and_the_quota_stays_exact() {
    let Some(fx) = Fixture::new("leases").await else {
        return;
    };
    let tenant = tenants(&fx.test.db, &["initech"]).await.remove(0);
    let replicas = [fx.replica(), fx.replica()];
    const QUOTA: u64 = 3_000;
    let policy = TenantPolicy {
        max_invocations: Some(QUOTA),
        max_total_fuel: Some(u64::MAX >> 8),
        ..TenantPolicy::default()
    };
    // Eight workers per replica invoke until the quota is used up (not only held by the
    // other replica's lease, which says "in a second").
    let workers: Vec<_> = (0..16)
        .map(|i| {
            let ledger = Arc::clone(&replicas[i % 2]);
            let (tenant, policy) = (tenant.clone(), policy.clone());
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut admitted = 0u64;
                loop {
                    match ledger.reserve(&tenant, &policy, 1_000).await.unwrap() {
                        Ok(hold) => {
                            admitted += 1;
                            let spent = Spent {
                                fuel: 10,
                                wall_us: 100,
                                failed: false,
                            };
                            ledger.settle(&hold, Some(spent));
                            tokio::task::yield_now().await;
                        }
                        Err(refused) if refused.retry_after_secs > 1 => return admitted,
                        Err(_) => {
                            assert!(Instant::now() < deadline, "never used up");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect();
    let mut admitted = 0;
    for worker in workers {
        admitted += worker.await.unwrap();
    }
    assert_eq!(admitted, QUOTA, "exactly the quota across both replicas");
    let round_trips: u64 = replicas.iter().map(|r| r.redis.round_trips()).sum();
    assert!(
        round_trips < QUOTA / 5,
        "{round_trips} round trips for {QUOTA} invocations"
    );
    // Every lease ended: nothing held, everything used, fuel as burnt.
    tokio::time::sleep(LEASE_TTL + SWEEP_EVERY * 3).await;
    let ledger = &replicas[0];
    assert_eq!(counters(ledger, &tenant, "held").await, (0, 0));
    assert_eq!(
        counters(ledger, &tenant, "used").await,
        (QUOTA as i64, 10 * QUOTA as i64)
    );
    for ledger in &replicas {
        ledger.flush().await.unwrap();
    }
    let (period, _) = period_of(policy.quota_period, OffsetDateTime::now_utc());
    let stored = fx.test.db.tenant(&tenant).usage(&period).await.unwrap();
    assert_eq!(stored.invocations, QUOTA as i64);
}

#[tokio::test]
async fn closing_gives_back_the_leases_at_once() {
    let Some(fx) = Fixture::new("close").await else {
        return;
    };
    let tenant = tenants(&fx.test.db, &["umbrella"]).await.remove(0);
    let (a, b) = (fx.replica(), fx.replica());
    let policy = TenantPolicy {
        max_invocations: Some(1_000),
        ..TenantPolicy::default()
    };
    let hold = a.reserve(&tenant, &policy, 10).await.unwrap().unwrap();
    let (held, _) = counters(&a, &tenant, "held").await;
    assert!(held > 1, "a lease of several invocations, not one: {held}");
    a.settle(&hold, Some(Spent::default()));
    a.close().await.unwrap();
    assert_eq!(counters(&b, &tenant, "held").await, (0, 0));
    assert_eq!(counters(&b, &tenant, "used").await.0, 1);
}

#[tokio::test]
async fn a_retired_lease_keeps_only_what_is_in_flight_and_a_lapsed_ones_usage_still_counts() {
    let Some(fx) = Fixture::new("retired").await else {
        return;
    };
    let [tenant, other] =
        <[TenantId; 2]>::try_from(tenants(&fx.test.db, &["hooli", "piedpiper"]).await).unwrap();
    let (a, b) = (fx.replica(), fx.replica());
    let policy = TenantPolicy {
        max_invocations: Some(1_000),
        max_total_fuel: Some(1_000_000_000),
        ..TenantPolicy::default()
    };
    // A slow invocation outlives its lease: the lease's hold shrinks to it.
    let slow = a.reserve(&tenant, &policy, 1_000).await.unwrap().unwrap();
    let quick = a.reserve(&tenant, &policy, 1_000).await.unwrap().unwrap();
    a.settle(&quick, Some(Spent::default()));
    let (held, _) = counters(&a, &tenant, "held").await;
    assert!(held > 2, "a lease of several invocations: {held}");
    tokio::time::sleep(LEASE_TTL + SWEEP_EVERY * 3).await;
    assert_eq!(counters(&a, &tenant, "held").await, (1, 1_000));
    assert_eq!(counters(&a, &tenant, "used").await.0, 1);
    a.settle(&slow, Some(Spent::default()));
    a.close().await.unwrap();
    assert_eq!(counters(&a, &tenant, "held").await, (0, 0));
    assert_eq!(counters(&a, &tenant, "used").await.0, 2);

    // A lease that lapsed (its replica stalled past the deadline) still adds what it used.
    let stalled = a.reserve(&other, &policy, 1_000).await.unwrap().unwrap();
    lapse(&a, &stalled).await;
    let _ = b.reserve(&other, &policy, 1_000).await.unwrap().unwrap();
    let (held_by_b, _) = counters(&a, &other, "held").await;
    a.settle(&stalled, Some(Spent::default()));
    a.close().await.unwrap();
    assert_eq!(counters(&a, &other, "used").await.0, 1);
    assert_eq!(
        counters(&a, &other, "held").await.0,
        held_by_b,
        "b's lease only"
    );
}

#[tokio::test]
async fn near_a_fuel_quota_leases_are_single_and_a_refusal_is_not_asked_again_at_once() {
    let Some(fx) = Fixture::new("fuel").await else {
        return;
    };
    let tenant = tenants(&fx.test.db, &["stark"]).await.remove(0);
    let ledger = fx.replica();
    // Less than sixteen invocations' fuel: one invocation per lease, fuel-only quota or not.
    let policy = TenantPolicy {
        max_total_fuel: Some(10_000),
        ..TenantPolicy::default()
    };
    let mut holds = Vec::new();
    for _ in 0..10 {
        holds.push(
            ledger
                .reserve(&tenant, &policy, 1_000)
                .await
                .unwrap()
                .unwrap(),
        );
        assert_eq!(
            counters(&ledger, &tenant, "held").await.0,
            holds.len() as i64
        );
    }
    // Held, not used: refused for a second, and asked again only after a moment.
    let before = ledger.redis.round_trips();
    for _ in 0..100 {
        let refused = ledger
            .reserve(&tenant, &policy, 1)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!((refused.quota, refused.retry_after_secs), ("fuel", 1));
    }
    assert!(ledger.redis.round_trips() - before <= 2);
    tokio::time::sleep(leases::HELD_REFUSAL_MEMORY).await;
    for hold in &holds {
        ledger.settle(
            hold,
            Some(Spent {
                fuel: 1_000,
                ..Spent::default()
            }),
        );
    }
    ledger.close().await.unwrap();
    let refused = ledger
        .reserve(&tenant, &policy, 1)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        refused.retry_after_secs > 1,
        "used up, until the period ends"
    );
    assert_eq!(counters(&ledger, &tenant, "used").await, (10, 10_000));
}

#[tokio::test]
async fn a_lease_asked_for_by_a_nested_call_has_fuel_for_top_level_invocations() {
    let Some(fx) = Fixture::new("nested").await else {
        return;
    };
    let tenant = tenants(&fx.test.db, &["wayne"]).await.remove(0);
    let ledger = fx.replica();
    let policy = TenantPolicy {
        max_invocations: Some(1_000_000),
        max_total_fuel: Some(1_000_000_000_000),
        ..TenantPolicy::default()
    };
    // Which lease admitted the invocation.
    let invoke = async |fuel: u64| {
        let hold = ledger
            .reserve(&tenant, &policy, fuel)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hold.fuel(), fuel);
        ledger.settle(&hold, Some(Spent::default()));
        hold.shared_id().unwrap().to_owned()
    };
    // A top-level invocation asks for the first lease (eight invocations); nested calls
    // (which hold no fuel of their own) spend the rest of it, and the next nested call asks
    // for the second lease, with fuel for top-level invocations as the replica has seen them.
    let first = invoke(1_000).await;
    for _ in 1..leases::FIRST_LEASE {
        assert_eq!(invoke(0).await, first);
    }
    let second = invoke(0).await;
    assert_ne!(second, first, "the first lease is spent");
    assert_eq!(
        invoke(1_000).await,
        second,
        "the nested call's lease serves it"
    );
}
