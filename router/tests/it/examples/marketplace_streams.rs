//! `examples/marketplace-streams` (seed 002): durable mode with two real `router
//! serve` processes in one consumer group on a real `redis-server`; one is killed
//! with `kill -9` while it holds events, and every event is still handled.

use crate::common::*;
use crate::durable::{RedisServer, until};
use crate::process::{serve_with_env, signal};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const CONFIG: &str = "../examples/marketplace-streams/router.toml";
/// The example's `[kv] prefix`.
const KV: &str = "skillancer:kv:";

/// The marketplace's domain events for user `n`: every user signs up, every
/// fifth publishes a project, every fifth books one and pays for it.
fn events_of(n: usize) -> Vec<Value> {
    let user = format!("usr_{n}");
    let event = |ty: &str, data: Value| {
        json!({
            "specversion": "1.0",
            "id": format!("evt_{ty}_{n}"),
            "source": "/skillancer",
            "type": ty,
            "correlationid": format!("req_{n}"),
            "datacontenttype": "application/json",
            "data": data,
        })
    };
    let mut events = vec![event(
        "user.created",
        json!({"userId": user, "email": format!("{user}@example.com"), "role": "FREELANCER"}),
    )];
    if n.is_multiple_of(5) {
        events.push(event(
            "project.published",
            json!({"projectId": format!("prj_{n}"), "ownerEmail": format!("{user}@example.com"), "title": format!("Project {n}")}),
        ));
        events.push(event(
            "booking.created",
            json!({"bookingId": format!("bk_{n}"), "projectId": format!("prj_{n}"), "freelancerEmail": format!("{user}@example.com")}),
        ));
        events.push(event(
            "payment.completed",
            json!({"bookingId": format!("bk_{n}"), "paymentId": format!("pay_{n}"), "payerEmail": "client@example.com", "amount": 500}),
        ));
    }
    events
}

/// The value of a plugin's kv key in Redis, as JSON.
async fn kv_json(redis: &RedisServer, plugin: &str, key: &str) -> Option<Value> {
    let raw: Option<String> = redis
        .query(redis::cmd("GET").arg(format!("{KV}{plugin}:{key}")))
        .await;
    raw.map(|text| serde_json::from_str(&text).expect("kv documents are JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routers_share_the_marketplace_and_a_kill_9_loses_no_event() {
    let redis = RedisServer::start().await;
    let mail = Sink::start().await;
    let env = [
        ("REDIS_URL", redis.url()),
        ("MAIL_URL", mail.url()),
        // A killed process's entries are taken over after this long.
        ("VISIBILITY_TIMEOUT", "1s".to_owned()),
    ];
    let args = [
        std::ffi::OsStr::new("--config"),
        std::ffi::OsStr::new(CONFIG),
        std::ffi::OsStr::new("--no-watch"),
    ];
    let mut a = serve_with_env(&args, &env);
    let b = serve_with_env(&args, &env);

    let users = 100;
    let mut published: Vec<Value> = Vec::new();
    for n in 0..users {
        if n == 40 {
            // Hold the mail service so that the events published from now on
            // stay in hand; A dies holding some.
            mail.close();
        }
        if n == 60 {
            let pid = format!("-{}", a.child.id());
            until("A holds events it has not acknowledged", || async {
                let summary: redis::Value = redis
                    .query(
                        redis::cmd("XPENDING")
                            .arg("skillancer:events")
                            .arg("skillancer"),
                    )
                    .await;
                format!("{summary:?}").contains(&pid)
            })
            .await;
            signal(&a.child, "-9");
            let _ = a.child.wait();
            mail.open();
        }
        // Alternate between the two processes while both live.
        let target = if n % 2 == 0 && n < 60 {
            &a.addr
        } else {
            &b.addr
        };
        for event in events_of(n) {
            let (status, body) = post(
                &format!("http://{target}/events"),
                "application/cloudevents+json",
                event.to_string(),
            )
            .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{event}: {body}");
            published.push(event);
        }
    }
    // A comes back and joins the group again.
    a = serve_with_env(&args, &env);

    // Every domain event that asks for an email got its send.email command
    // delivered to the mail service, at least once.
    let wanted: BTreeSet<String> = published
        .iter()
        .map(|e| format!("{}-email", e["id"].as_str().expect("id")))
        .collect();
    until("every email command reached the mail service", || async {
        let got: BTreeSet<String> = mail.received().iter().filter_map(|r| r.ce("id")).collect();
        got.is_superset(&wanted)
    })
    .await;

    // Commands and domain events are kept apart: the mail service saw commands
    // only, each marked as one and correlated with the request that caused it.
    let received = mail.received();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for request in &received {
        assert_eq!(request.ce("type").as_deref(), Some("send.email"));
        assert_eq!(request.ce("kind").as_deref(), Some("command"));
        let id = request.ce("id").expect("id");
        let n = id
            .trim_end_matches("-email")
            .rsplit('_')
            .next()
            .expect("event number")
            .to_owned();
        assert_eq!(
            request.ce("correlationid"),
            Some(format!("req_{n}")),
            "{id}"
        );
        *per_id.entry(id).or_default() += 1;
    }
    assert_eq!(per_id.len(), wanted.len(), "no email nobody asked for");

    // The search index and the bookings, shared in Redis by both processes.
    until("every user and project is indexed", || async {
        for n in 0..users {
            if kv_json(&redis, "search", &format!("user:usr_{n}"))
                .await
                .is_none()
            {
                return false;
            }
            if n.is_multiple_of(5)
                && kv_json(&redis, "search", &format!("project:prj_{n}"))
                    .await
                    .is_none()
            {
                return false;
            }
        }
        true
    })
    .await;
    let project = kv_json(&redis, "search", "project:prj_5")
        .await
        .expect("indexed");
    assert_eq!(project["document"]["title"], "Project 5");
    assert_eq!(
        project["type"], "index.project",
        "written by the index.project command, not by the domain event"
    );
    until("every booking is created and paid", || async {
        for n in (0..users).step_by(5) {
            for fact in ["created", "paid"] {
                let key = format!("booking:bk_{n}:{fact}");
                if kv_json(&redis, "booking", &key).await.is_none() {
                    return false;
                }
            }
        }
        true
    })
    .await;
    let created = kv_json(&redis, "booking", "booking:bk_10:created").await;
    let paid = kv_json(&redis, "booking", "booking:bk_10:paid").await;
    assert_eq!(
        (
            created.as_ref().map(|c| &c["projectId"]),
            paid.as_ref().map(|p| &p["paymentId"])
        ),
        (Some(&json!("prj_10")), Some(&json!("pay_10")))
    );

    // Nothing failed for good, and the group has nothing left pending.
    let dead: usize = redis
        .query(redis::cmd("XLEN").arg("skillancer:dead-letters"))
        .await;
    assert_eq!(dead, 0, "dead letters");
    until("the group acknowledged everything", || async {
        let pending: redis::Value = redis
            .query(
                redis::cmd("XPENDING")
                    .arg("skillancer:events")
                    .arg("skillancer"),
            )
            .await;
        matches!(pending, redis::Value::Array(ref p) if p.first() == Some(&redis::Value::Int(0)))
    })
    .await;
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    eprintln!(
        "marketplace: {} events published, {} emails, {duplicates} delivered twice after the kill, 0 lost",
        published.len(),
        wanted.len()
    );
    for served in [a, b] {
        signal(&served.child, "-TERM");
    }
}

/// The commands of the README, as written, against one `router serve` on this
/// configuration (both of the README's ports lead to it), a `redis-server` of
/// the test's own, and `router sink` as the mail service, as `run.sh` starts
/// it: the answers and the mail commands are what the README shows, and so is
/// the search document.
#[tokio::test]
async fn the_readme_runs_as_written() {
    let readme = "examples/marketplace-streams/README.md";
    let text = std::fs::read_to_string(crate::readme::repo_root().join(readme)).expect("README");
    let script = std::fs::read_to_string(
        crate::readme::repo_root().join("examples/marketplace-streams/run.sh"),
    )
    .expect("run.sh");
    let sink = r#""$router" sink --listen 127.0.0.1:9025 --status "${MAIL_STATUS:-200}""#;
    assert!(script.contains(sink), "run.sh starts the mail sink so");
    let redis = RedisServer::start().await;
    let port = redis
        .url()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .expect("a port")
        .to_owned();
    let mut session = crate::readme::Session::start(
        readme,
        "examples/marketplace-streams/router.toml",
        &[("REDIS_URL", &redis.url()), ("MAIL_URL", "http://{sink}/")],
        &[
            ("127.0.0.1:8081", "{router}"),
            ("127.0.0.1:8082", "{router}"),
            ("-p 6390", &format!("-p {port}")),
        ],
    );
    session
        .start_sink("target/debug/router sink --status 200")
        .await;
    assert_eq!(session.run().await, 5, "the marked steps of the README");
    let shown = r#"{"document":{"email":"user@example.com","role":"FREELANCER","userId":"usr_123"},"indexedFrom":"evt_abc123","type":"user.created"}"#;
    assert!(text.contains(shown));
    let key = redis::cmd("GET")
        .arg("skillancer:kv:search:user:usr_123")
        .clone();
    let (redis, key) = (&redis, &key);
    until("the user is indexed", || async move {
        redis.query::<Option<String>>(key).await.as_deref() == Some(shown)
    })
    .await;
}
