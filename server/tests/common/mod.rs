//! A real server on 127.0.0.1:0 with a temp SQLite file, and a small
//! Phoenix V2 client over tokio-tungstenite (as Phoenix's own
//! `test/support/websocket_client.exs`).
#![allow(dead_code)]

pub mod raw;
pub mod services;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use duet::config::Config;

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, tweak).await
    }

    /// Starts on an existing data dir (restarts).
    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestServer {
        if let Ok(filter) = std::env::var("DUET_TEST_LOG") {
            // Server logs in a test's output, when asked for.
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let mut config = Config::for_tests(dir.path());
        config.test_channels = true;
        if let Some(url) = postgres_for(dir.path()).await {
            config.database_url = Some(duet::config::DatabaseUrl(url));
        }
        tweak(&mut config);
        let app = duet::app::App::new(config).await.expect("app starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(duet::app::serve(app, listener, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful stop; returns the data dir for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub async fn sign_in(&self, name: &str) -> (String, String) {
        let res = reqwest::Client::new()
            .post(self.url("/api/session"))
            .json(&json!({ "first_name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        (
            body["token"].as_str().unwrap().to_owned(),
            body["user"]["id"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn create_challenge(&self, token: &str) -> String {
        let res = reqwest::Client::new()
            .post(self.url("/api/challenges"))
            .bearer_auth(token)
            .json(&json!({ "title": "FizzBuzz", "prompt": "Print 1..100", "language": "python" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        body["challenge"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn get_challenge(&self, token: &str, id: &str) -> Value {
        let res = reqwest::Client::new()
            .get(self.url(&format!("/api/challenges/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["challenge"].clone()
    }

    pub async fn connect(&self, token: &str) -> Client {
        let url = format!(
            "ws://{}/socket/websocket?vsn=2.0.0&token={}",
            self.addr, token
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Client {
            ws,
            next_ref: 0,
            backlog: Default::default(),
        }
    }

    /// Connects with a kernel receive buffer of `rcvbuf` bytes: what such a
    /// client does not read piles up in the server's queue rather than in
    /// the kernel's buffers.
    pub async fn connect_with_rcvbuf(&self, token: &str, rcvbuf: u32) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        let tcp = socket.connect(self.addr).await.expect("tcp connects");
        let url = format!(
            "ws://{}/socket/websocket?vsn=2.0.0&token={}",
            self.addr, token
        );
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("websocket connects");
        Client {
            ws,
            next_ref: 0,
            backlog: Default::default(),
        }
    }

    /// A counter of `/metrics`, by its full name.
    pub async fn metric(&self, name: &str) -> u64 {
        let body = reqwest::get(self.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
    }
}

/// GET `url`; its JSON body (long-poll answers are always 200 + JSON).
pub async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// POSTs `frames` as one ndjson batch, as phoenix.js's `LongPoll` does; the
/// JSON body of the answer.
pub async fn post_ndjson(url: &str, frames: &[Value]) -> Value {
    let body: Vec<String> = frames.iter().map(Value::to_string).collect();
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body.join("\n"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What the client received.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Binary(Vec<u8>),
    Closed(Option<u16>),
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
    /// Messages skipped by `expect`, seen again by later calls.
    backlog: std::collections::VecDeque<Value>,
}

pub const TIMEOUT: Duration = Duration::from_secs(5);

impl Client {
    pub fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    pub async fn send_json(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, m: Message) {
        let _ = self.ws.send(m).await;
    }

    /// Pushes `[join_ref, ref, topic, event, payload]`; returns the ref.
    pub async fn push(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        let r = self.next_ref();
        self.send_json(json!([join_ref, r, topic, event, payload]))
            .await;
        r
    }

    /// Pushes a binary frame (phoenix.js push kind 0).
    pub async fn push_binary(
        &mut self,
        join_ref: &str,
        topic: &str,
        event: &str,
        payload: &[u8],
    ) -> String {
        let r = self.next_ref();
        let mut f = vec![
            0u8,
            join_ref.len() as u8,
            r.len() as u8,
            topic.len() as u8,
            event.len() as u8,
        ];
        f.extend_from_slice(join_ref.as_bytes());
        f.extend_from_slice(r.as_bytes());
        f.extend_from_slice(topic.as_bytes());
        f.extend_from_slice(event.as_bytes());
        f.extend_from_slice(payload);
        self.ws.send(Message::binary(f)).await.expect("send");
        r
    }

    pub async fn recv(&mut self) -> Received {
        match tokio::time::timeout(TIMEOUT, self.ws.next()).await {
            Err(_) => panic!("nothing received within {TIMEOUT:?}"),
            Ok(None) => Received::Closed(None),
            Ok(Some(Err(_))) => Received::Closed(None),
            Ok(Some(Ok(Message::Text(t)))) => {
                Received::Json(serde_json::from_str(&t).expect("JSON frame"))
            }
            Ok(Some(Ok(Message::Binary(b)))) => Received::Binary(b.to_vec()),
            Ok(Some(Ok(Message::Close(c)))) => {
                Received::Closed(c.map(|c: CloseFrame| c.code.into()))
            }
            Ok(Some(Ok(_))) => Box::pin(self.recv()).await,
        }
    }

    /// Receives until a JSON message matches `pred`; panics on timeout.
    pub async fn expect(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i).expect("index is in range");
        }
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.recv()).await {
                Err(_) => panic!("expected message not received"),
                Ok(Received::Json(v)) if pred(&v) => return v,
                Ok(Received::Json(v)) => self.backlog.push_back(v),
                Ok(Received::Closed(c)) => panic!("closed ({c:?}) while waiting"),
                Ok(_) => continue,
            }
        }
    }

    pub async fn expect_binary(&mut self, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.recv()).await {
                Err(_) => panic!("expected binary message not received"),
                Ok(Received::Binary(b)) if pred(&b) => return b,
                Ok(Received::Closed(c)) => panic!("closed ({c:?}) while waiting"),
                Ok(_) => continue,
            }
        }
    }

    /// The reply to `r`.
    pub async fn reply(&mut self, r: &str) -> Value {
        self.expect(|v| v[1] == json!(r) && v[3] == json!("phx_reply"))
            .await
    }

    /// Joins a topic; returns (join_ref, reply payload).
    pub async fn join(&mut self, topic: &str, params: Value) -> (String, Value) {
        let r = self.next_ref();
        self.send_json(json!([r, r, topic, "phx_join", params]))
            .await;
        let reply = self.reply(&r).await;
        (r, reply[4].clone())
    }

    /// Waits for the connection to close; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.recv()).await {
                Err(_) => panic!("connection not closed"),
                Ok(Received::Closed(c)) => return c,
                Ok(_) => continue,
            }
        }
    }
}

/// With `DUET_TEST_STORE=postgres` (and the suite's Postgres), test servers
/// run on Postgres: a fresh database per data dir, the same one again when
/// a test restarts on that dir. Otherwise SQLite, in the dir.
async fn postgres_for(dir: &std::path::Path) -> Option<String> {
    if std::env::var("DUET_TEST_STORE").ok().as_deref() != Some("postgres") {
        return None;
    }
    let remembered = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return Some(url);
    }
    let url = duet::store::testing::fresh_postgres_url().await.expect(
        "DUET_TEST_STORE=postgres needs DUET_TEST_POSTGRES_URL (scripts/services.sh run -- ...)",
    );
    std::fs::write(&remembered, &url).expect("postgres-url written");
    Some(url)
}

/// Whether test servers run on SQLite (not `DUET_TEST_STORE=postgres`):
/// tests of SQLite's own failures (a file moved away, a write lock held)
/// say so and pass on Postgres, where other tests cover its failures.
pub fn on_sqlite(test: &str) -> bool {
    let sqlite = std::env::var("DUET_TEST_STORE").ok().as_deref() != Some("postgres");
    if !sqlite {
        eprintln!("{test}: SQLite only, skipped on Postgres");
    }
    sqlite
}

/// `select count(*) from <table>` on the database of the data dir `dir`,
/// whichever backend it is.
pub async fn count_rows(dir: &std::path::Path, table: &str) -> i64 {
    let sql = format!("select count(*) from {table}");
    if let Ok(url) = std::fs::read_to_string(dir.join("postgres-url")) {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let n = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        return n;
    }
    let url = format!("sqlite://{}", dir.join("duet.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let n = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}
