//! Tokens: a cached identity dies with the key that verified it. A JWKS refresh that removes a
//! key, or replaces its material under the same `kid`, makes its cached tokens fail exactly as a
//! fresh token signed with that key would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Response;
use http_body_util::Full;

/// A JWKS server whose document can be swapped.
struct Keys {
    server: Upstream,
    doc: Arc<Mutex<serde_json::Value>>,
}

impl Keys {
    async fn start() -> Keys {
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture("keys/jwks.json")).unwrap()).unwrap();
        let doc = Arc::new(Mutex::new(doc));
        let served = doc.clone();
        let server = Upstream::with(Arc::new(move |_: &Seen| {
            let body = served.lock().unwrap().to_string();
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        }))
        .await;
        Keys { server, doc }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks.json", self.server.addr)
    }

    /// Applies `change` to the key list, then waits until the sidecar has fetched it twice
    /// (so at least one fetch saw the new document).
    async fn change(&self, change: impl FnOnce(&mut Vec<serde_json::Value>)) {
        {
            let mut doc = self.doc.lock().unwrap();
            change(doc["keys"].as_array_mut().unwrap());
        }
        let before = self.server.count();
        let refreshed = eventually(Duration::from_secs(5), || async {
            self.server.count() >= before + 2
        })
        .await;
        assert!(refreshed, "the sidecar did not refresh its JWKS");
    }
}

fn signed(kid: &str, pem: &str, claims: &serde_json::Value) -> String {
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(fixture(pem)).unwrap()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

async fn world(keys: &Keys) -> (Upstream, Running) {
    let upstream = Upstream::start().await;
    let yaml = config_yaml(&upstream.url(), &keys.url(), DEFAULT_ROUTES, "").replace(
        &format!("      url: {}\n", keys.url()),
        &format!(
            "      url: {}\n      refresh_interval: 200ms\n      min_refresh_interval: 100ms\n",
            keys.url()
        ),
    );
    let gw = sidecar(&yaml).await;
    (upstream, gw)
}

async fn status(gw: &Running, token: &str) -> (u16, String) {
    let reply = send(gw.addr, get("/work/works/W1", Some(token))).await;
    let reason = if reply.status.is_success() {
        String::new()
    } else {
        reply.reason()
    };
    (reply.status.as_u16(), reason)
}

#[tokio::test]
async fn a_cached_token_dies_with_its_removed_key() {
    let keys = Keys::start().await;
    let (upstream, gw) = world(&keys).await;
    let cached = signed(
        "rsa1",
        "keys/rsa1.pem",
        &claims("user-a", "7001", &["Planner"]),
    );
    let other = signed(
        "rsa2",
        "keys/rsa2.pem",
        &claims("user-b", "7001", &["Planner"]),
    );
    for _ in 0..3 {
        assert_eq!(status(&gw, &cached).await.0, 200);
        assert_eq!(status(&gw, &other).await.0, 200);
    }
    keys.change(|list| list.retain(|k| k["kid"] != "rsa1"))
        .await;

    let fresh = signed(
        "rsa1",
        "keys/rsa1.pem",
        &claims("user-c", "7001", &["Planner"]),
    );
    let expected = (401, "token_unknown_key".to_owned());
    assert_eq!(status(&gw, &fresh).await, expected, "a fresh token");
    for attempt in 0..3 {
        assert_eq!(
            status(&gw, &cached).await,
            expected,
            "cached, attempt {attempt}"
        );
    }
    assert_eq!(upstream.count(), 6, "nothing forwarded after the key went");
    assert_eq!(
        status(&gw, &other).await.0,
        200,
        "tokens of kept keys stay valid"
    );
}

#[tokio::test]
async fn a_cached_token_dies_when_its_kid_gets_other_material() {
    let keys = Keys::start().await;
    let (upstream, gw) = world(&keys).await;
    let cached = signed(
        "rsa1",
        "keys/rsa1.pem",
        &claims("user-a", "7001", &["Planner"]),
    );
    assert_eq!(status(&gw, &cached).await.0, 200);
    assert_eq!(status(&gw, &cached).await.0, 200);
    // rsa2's material published under the kid rsa1 (and rsa2 itself withdrawn).
    keys.change(|list| {
        let rsa2 = list.iter().find(|k| k["kid"] == "rsa2").unwrap().clone();
        list.retain(|k| k["kid"] != "rsa1" && k["kid"] != "rsa2");
        let mut moved = rsa2;
        moved["kid"] = "rsa1".into();
        list.push(moved);
    })
    .await;

    let fresh = signed(
        "rsa1",
        "keys/rsa1.pem",
        &claims("user-c", "7001", &["Planner"]),
    );
    let expected = (401, "token_signature".to_owned());
    assert_eq!(status(&gw, &fresh).await, expected, "a fresh token");
    assert_eq!(status(&gw, &cached).await, expected, "the cached token");
    assert_eq!(upstream.count(), 2);
    let new_material = signed(
        "rsa1",
        "keys/rsa2.pem",
        &claims("user-a", "7001", &["Planner"]),
    );
    assert_eq!(status(&gw, &new_material).await.0, 200);
}

#[tokio::test]
async fn an_unchanged_refresh_keeps_cached_tokens() {
    let keys = Keys::start().await;
    let (_upstream, gw) = world(&keys).await;
    let t = signed(
        "rsa1",
        "keys/rsa1.pem",
        &claims("user-a", "7001", &["Planner"]),
    );
    assert_eq!(status(&gw, &t).await.0, 200);
    keys.change(|_| {}).await;
    let before = sample(
        &metrics(&gw).await,
        "streetgate_token_cache_total{result=\"hit\"}",
    );
    assert_eq!(status(&gw, &t).await.0, 200);
    let after = sample(
        &metrics(&gw).await,
        "streetgate_token_cache_total{result=\"hit\"}",
    );
    assert_eq!(
        after,
        before + 1.0,
        "still served from the cache after a refresh"
    );
}

/// The refresh that removes a key need not be the periodic one: a token with an unknown `kid`
/// triggers one, and the cached tokens of the key it removed die with it.
#[tokio::test]
async fn a_refresh_for_an_unknown_kid_also_kills_cached_tokens_of_removed_keys() {
    let keys = Keys::start().await;
    let rsa2 = {
        let mut doc = keys.doc.lock().unwrap();
        let list = doc["keys"].as_array_mut().unwrap();
        let rsa2 = list.iter().find(|k| k["kid"] == "rsa2").unwrap().clone();
        list.retain(|k| k["kid"] != "rsa2");
        rsa2
    };
    let upstream = Upstream::start().await;
    let yaml = config_yaml(&upstream.url(), &keys.url(), DEFAULT_ROUTES, "").replace(
        &format!("      url: {}\n", keys.url()),
        &format!(
            "      url: {}\n      refresh_interval: 1h\n      min_refresh_interval: 100ms\n",
            keys.url()
        ),
    );
    let gw = sidecar(&yaml).await;
    let cached = signed(
        "rsa1",
        "keys/rsa1.pem",
        &claims("user-a", "7001", &["Planner"]),
    );
    for _ in 0..2 {
        assert_eq!(status(&gw, &cached).await.0, 200);
    }
    let fetches = keys.server.count();
    {
        let mut doc = keys.doc.lock().unwrap();
        let list = doc["keys"].as_array_mut().unwrap();
        list.retain(|k| k["kid"] != "rsa1");
        list.push(rsa2);
    }
    let newcomer = signed(
        "rsa2",
        "keys/rsa2.pem",
        &claims("user-b", "7001", &["Planner"]),
    );
    // The unknown kid refreshes the keys once `min_refresh_interval` allows it.
    let refreshed = eventually(Duration::from_secs(5), || async {
        status(&gw, &newcomer).await.0 == 200
    })
    .await;
    assert!(refreshed, "the unknown kid refreshed");
    assert!(keys.server.count() > fetches);
    for attempt in 0..2 {
        assert_eq!(
            status(&gw, &cached).await,
            (401, "token_unknown_key".to_owned()),
            "attempt {attempt}"
        );
    }
    assert_eq!(upstream.count(), 3);
}
