//! The REST API of CONTRACT §1 against a real server: every 4xx answers
//! with an error body, and forged, expired or foreign tokens are refused on
//! the HTTP API and the socket alike.

mod common;

use common::{get_json, TestServer};
use serde_json::{json, Value};

#[tokio::test]
async fn rest_validation_answers_every_4xx_with_an_error_body() {
    let server = TestServer::start().await;
    bad_sign_ins_answer_with_an_error_body(&server).await;
    let (token, _) = server.sign_in("Sophie").await;
    bad_challenges_are_refused(&server, &token).await;
    let res = post(
        &server,
        "/api/challenges",
        json!({"title": "ok", "prompt": "", "language": "python"}).to_string(),
        None,
    )
    .await;
    assert_eq!(res.status(), 401);
    let res = reqwest::Client::new()
        .get(server.url("/api/challenges/doesnotexist"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.json::<Value>().await.unwrap()["error"].is_string());
    let langs: Value = reqwest::get(server.url("/api/languages"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(langs["languages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["id"] == json!("python")));
    let health: Value = reqwest::get(server.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
}

/// POSTs a JSON `body` to `path`, with a bearer token if given.
async fn post(
    server: &TestServer,
    path: &str,
    body: String,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// Sign-ins with a bad name or body: 422, 400 or 413, each with an error.
async fn bad_sign_ins_answer_with_an_error_body(server: &TestServer) {
    let cases: Vec<(String, u16)> = vec![
        (r#"{"first_name": ""}"#.into(), 422),
        (r#"{"first_name": "   "}"#.into(), 422),
        (json!({"first_name": "a".repeat(41)}).to_string(), 422),
        (r#"{"first_name": "a\u0007b"}"#.into(), 422),
        (r#"{"first_name": 5}"#.into(), 422),
        (r#"{}"#.into(), 422),
        (r#"{"first_name": "#.into(), 400),
        ("x".repeat(2 << 20), 413),
    ];
    for (body, status) in cases {
        let res = post(server, "/api/session", body.clone(), None).await;
        assert_eq!(
            res.status().as_u16(),
            status,
            "{}",
            &body[..body.len().min(40)]
        );
        let err: Value = res.json().await.unwrap();
        assert!(
            err["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{err}"
        );
    }
}

/// Challenges with a bad title, prompt or language: 422.
async fn bad_challenges_are_refused(server: &TestServer, token: &str) {
    let bad = [
        json!({"title": "", "prompt": "", "language": "python"}),
        json!({"title": "t".repeat(121), "prompt": "", "language": "python"}),
        json!({"title": "ok", "prompt": "p".repeat(20_001), "language": "python"}),
        json!({"title": "ok", "prompt": "", "language": "cobol"}),
        json!({"title": "ok"}),
    ];
    for body in bad {
        let res = post(server, "/api/challenges", body.to_string(), Some(token)).await;
        assert_eq!(res.status().as_u16(), 422, "{body}");
    }
}

#[tokio::test]
async fn jwt_attacks_are_refused_on_http_and_socket() {
    use base64::Engine as _;
    let server = TestServer::start().await;
    let (_token, user_id) = server.sign_in("Sophie").await;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let now = duet::auth::now();
    let claims =
        json!({"sub": user_id, "name": "Sophie", "iat": now, "exp": now + 3600}).to_string();
    let forged = duet::auth::Keys::new(b"not the server key", 3600).issue(&user_id, "Sophie", now);
    let secret = std::fs::read(server.dir.path().join("secret.key")).unwrap();
    let expired = duet::auth::Keys::new(&secret, 10).issue(&user_id, "Sophie", now - 3600);
    // Signed with the right key, for a user this database never had (one
    // reset while its secret was kept).
    let ghost = duet::auth::Keys::new(&secret, 3600).issue("ghostghostghost1", "Ghost", now);
    let attacks = [
        format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims)),
        format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"HS512","typ":"JWT"}"#),
            b64(&claims)
        ),
        forged,
        expired,
        ghost,
        "garbage".into(),
    ];
    for token in attacks {
        let res = reqwest::Client::new()
            .get(server.url("/api/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{token}");
        let url = format!(
            "ws://{}/socket/websocket?vsn=2.0.0&token={token}",
            server.addr
        );
        assert!(
            tokio_tungstenite::connect_async(url).await.is_err(),
            "socket accepted {token}"
        );
        let poll =
            get_json(&server.url(&format!("/socket/longpoll?vsn=2.0.0&token={token}"))).await;
        assert_eq!(poll["status"], json!(403), "long-poll accepted {token}");
    }
}

/// With its database file gone (a data dir deleted under the server), a
/// sign-in or a new challenge would be acknowledged and lost at the next
/// start: they are refused with 503 instead, and work again once it is back.
#[tokio::test]
async fn writes_are_refused_while_the_database_file_is_gone() {
    if !common::on_sqlite("writes_are_refused_while_the_database_file_is_gone") {
        return;
    }
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Before").await;
    let db = server.dir.path().join("duet.db");
    let away = server.dir.path().join("duet.db.away");
    std::fs::rename(&db, &away).unwrap();
    let http = reqwest::Client::new();
    let res = http
        .post(server.url("/api/session"))
        .json(&json!({ "first_name": "During" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
    let res = http
        .post(server.url("/api/challenges"))
        .bearer_auth(&token)
        .json(&json!({ "title": "t", "prompt": "", "language": "python" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        503
    );
    std::fs::rename(&away, &db).unwrap();
    server.sign_in("After").await;
}

/// An export bigger than the API's usual body limit (a long session's is
/// megabytes) is imported: the import's own limit is the one that counts.
#[tokio::test]
async fn import_takes_files_over_the_usual_body_limit() {
    let server = TestServer::start().await;
    let (token, user_id) = server.sign_in("Sophie").await;
    // 4 000 events of about 150 bytes: over 256 KiB, far under the import's limit.
    let events: Vec<Value> = (0..4000)
        .map(|i| {
            json!({
                "at": format!("2026-11-30T09:{:02}:{:02}.000Z", i / 60 % 60, i % 60),
                "user_id": user_id, "first_name": "Sophie", "kind": "paste",
                "data": json!({ "chars": i }).to_string(),
            })
        })
        .collect();
    let file = json!({
        "format": "duet-export", "version": 1,
        "challenge": {
            "title": "A long one", "prompt": "", "language": "python",
            "created_at": "2026-11-30T09:00:00.000Z", "updated_at": "2026-11-30T10:00:00.000Z",
            "ended_at": "2026-11-30T10:00:00.000Z",
        },
        "answer": "", "timeline": [], "events": events, "updates": [],
    })
    .to_string();
    assert!(file.len() > 256 * 1024, "{} bytes", file.len());
    let res = reqwest::Client::new()
        .post(server.url("/api/challenges/import"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201, "{}", res.text().await.unwrap());
}

/// `/metrics` answers Prometheus's plain-text type, or OpenMetrics's to a
/// scraper that asks for it, with the same samples; they follow a real socket.
#[tokio::test]
async fn metrics_follow_sockets_in_either_text_type() {
    let server = TestServer::start().await;
    let (token, _) = server.sign_in("Sophie").await;
    let id = server.create_challenge(&token).await;
    let mut client = server.connect(&token).await;
    client.join(&format!("challenges:{id}"), json!({})).await;
    assert_eq!(server.metric("duet_sockets").await, 1);
    assert_eq!(server.metric("duet_channels").await, 1);
    assert_eq!(server.metric("duet_rooms_loaded").await, 1);
    assert!(server.metric("duet_messages_in_total").await >= 1);
    let scrape = |accept: &'static str| {
        let url = server.url("/metrics");
        async move {
            let res = reqwest::Client::new()
                .get(url)
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
            (kind, res.text().await.unwrap())
        }
    };
    let (plain, body) = scrape("*/*").await;
    assert_eq!(plain, "text/plain; version=0.0.4; charset=utf-8");
    let (open, same) =
        scrape("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5").await;
    assert_eq!(
        open,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    for text in [&body, &same] {
        for line in [
            "# TYPE duet_sockets gauge",
            "duet_sockets 1",
            "# TYPE duet_messages_in counter",
            "# TYPE duet_edit_seconds histogram",
            "duet_edit_seconds_bucket{le=\"+Inf\"} 0",
            "duet_slow_disconnects_total 0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }
    drop(client);
}
