//! The application: [`AppState`] (cheap handles), the socket handler that
//! turns a JWT into assigns, router assembly, and [`run`]: bind, serve,
//! and on shutdown close sockets with 1001, stop rooms, flush the document
//! writer and close the pool, in that order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::FromRef;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

use crate::auth::Keys;
use crate::challenges::channel::{ChallengeChannel, ChallengeState};
use crate::challenges::echo::EchoChannel;
use crate::challenges::notes::NotesChannel;
use crate::challenges::room::{RoomConfig, Rooms};
use crate::challenges::run::{RunLimits, Runs};
use crate::challenges::SocketUser;
use crate::channels::presence::Presence;
use crate::channels::pubsub::{LocalPubSub, PubSub};
use crate::channels::router::Router as ChannelRouter;
use crate::channels::{Assigns, ConnectInfo, Connected, Endpoint, Metrics, SocketHandler};
use crate::cluster::{Cluster, Wired};
use crate::config::Config;
use crate::store::writer::DocWriter;
use crate::store::Store;

/// How long shutdown waits for sockets and rooms before moving on.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub keys: Arc<Keys>,
    pub endpoint: Endpoint,
    pub rooms: Rooms,
    pub writer: DocWriter,
    pub config: Arc<Config>,
    pub api_limit: Arc<crate::http::limit::ApiLimit>,
    /// What `/metrics` shows (`http::health::registry`).
    pub metrics: Arc<prometheus_client::registry::Registry>,
    /// This node of a cluster, if it is one.
    pub cluster: Option<Cluster>,
}

impl AppState {
    /// The read path of live answers (see `challenges::read`).
    pub fn reader(&self) -> crate::challenges::read::Reader<'_> {
        crate::challenges::read::Reader {
            store: &self.store,
            rooms: &self.rooms,
            writer: &self.writer,
        }
    }
}

impl FromRef<AppState> for Endpoint {
    fn from_ref(state: &AppState) -> Self {
        state.endpoint.clone()
    }
}

/// The id of every socket of a user: broadcasting `disconnect` to it closes them all.
pub fn socket_id(user_id: &str) -> String {
    format!("user_socket:{user_id}")
}

/// Phoenix's `UserSocket`: a valid JWT of an existing user is required to
/// connect (as on the HTTP API).
struct DuetSocket {
    keys: Arc<Keys>,
    store: Store,
}

impl SocketHandler for DuetSocket {
    fn connect<'a>(
        &'a self,
        info: ConnectInfo<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<Connected, String>> {
        Box::pin(async move {
            let token = info.token.ok_or("no token")?;
            let claims = self
                .keys
                .verify(token, crate::auth::now())
                .map_err(|e| e.to_string())?;
            match self.store.user_exists(&claims.sub).await {
                Ok(true) => {}
                Ok(false) => return Err(format!("unknown user {}", claims.sub)),
                Err(err) => return Err(format!("user not checked: {err}")),
            }
            Ok(Connected {
                assigns: Arc::new(SocketUser {
                    id: claims.sub,
                    first_name: claims.name,
                }),
            })
        })
    }

    fn id(&self, assigns: &Assigns) -> Option<String> {
        let user = assigns.downcast_ref::<SocketUser>()?;
        Some(socket_id(&user.id))
    }
}

/// Everything the server runs, built from a config.
pub struct App {
    pub state: AppState,
    writer_task: crate::store::writer::WriterTask,
    writer_stop: CancellationToken,
    /// Held while the app lives: one server per data dir.
    _data_dir_lock: Option<std::fs::File>,
}

/// Takes `duet.lock` in the data dir, so that a second server on the same
/// data dir stops with a clear message instead of running beside the first
/// (each would keep its own copy of a room's live state). The kernel lets
/// it go when the process ends, however it ends.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<Option<std::fs::File>> {
    let path = dir.join("duet.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::Write;
            let _ = file.set_len(0);
            let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
            Ok(Some(file))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            let pid = pid.trim();
            anyhow::bail!(
                "another duet server{} is using the data dir {}; stop it first, or give this one its own DUET_DATA_DIR",
                if pid.is_empty() { String::new() } else { format!(" (pid {pid})") },
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(err)) => {
            tracing::warn!(cause = %err, path = %path.display(), "cannot lock the data dir; not checking for a second server");
            Ok(None)
        }
    }
}

/// Locks the data dir, opens the database (an SQLite URL only) and
/// repairs responses from the update log; the lock is held while the
/// app lives.
async fn open_store(config: &Config) -> anyhow::Result<(Store, Option<std::fs::File>)> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let data_dir_lock = lock_data_dir(&config.data_dir)?;
    let url = config.database_url();
    let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
    if !url.starts_with("sqlite:") && !postgres {
        let scheme = url.split_once(':').map_or(url.as_str(), |(s, _)| s);
        anyhow::bail!(
            "DATABASE_URL must be an SQLite URL (sqlite://path/to/duet.db) or a Postgres one (postgres://user:pass@host/db), not {scheme}:...; unset it to use the data dir's duet.db"
        );
    }
    let shown = crate::config::without_password(&url);
    let store = Store::open_with(&url, config.durability)
        .await
        .with_context(|| format!("opening {shown}"))?;
    // Reads work on a full disk: a repair that cannot write waits for
    // the next start, the server starts anyway.
    match crate::challenges::read::repair_responses(&store).await {
        Ok(0) => {}
        Ok(repaired) => {
            tracing::info!(repaired, "rebuilt challenge responses from the update log")
        }
        Err(err) => tracing::warn!(cause = %err, "responses not repaired from the update log"),
    }
    Ok((store, data_dir_lock))
}

/// The JWT keys: from `DUET_SECRET`, or the data dir's secret file.
fn load_keys(config: &Config) -> anyhow::Result<Keys> {
    let secret = match config.secret.as_ref().map(|s| s.expose()) {
        Some(s) if !s.is_empty() => s.as_bytes().to_vec(),
        _ => crate::auth::load_or_create_secret(&config.data_dir)?,
    };
    Ok(Keys::new(
        &secret,
        (config.token_ttl_hours.max(1) * 3600) as i64,
    ))
}

/// Topic patterns to channels: `challenges:*`, and `echo:*` for protocol
/// tests when enabled.
fn channel_routes(config: &Config, rooms: &Rooms) -> ChannelRouter {
    // Every run that ends goes on its challenge's timeline.
    let recorder = {
        let rooms = rooms.clone();
        Arc::new(
            move |room: &str, user: &SocketUser, run: serde_json::Value| {
                rooms.record_now(room, Some(user), "run", &run)
            },
        ) as crate::challenges::run::Recorder
    };
    let runs = Runs::new(RunLimits {
        wall: Duration::from_secs(config.run_timeout_secs),
    })
    .with_recorder(recorder);
    let challenge_state = ChallengeState {
        rooms: rooms.clone(),
        runs,
    };
    let mut router = ChannelRouter::new()
        .channel::<ChallengeChannel>("challenges:*", challenge_state)
        .channel::<NotesChannel>("notes:*", rooms.clone());
    if config.test_channels {
        router = router.channel::<EchoChannel>("echo:*", ());
    }
    router
}

/// How broadcasts and presence reach the members: this node's fan-out,
/// and with `DUET_REDIS_URL` the other nodes' (see `cluster`).
struct Fabric {
    /// This node's own fan-out.
    local: Arc<dyn PubSub>,
    /// What channels broadcast through: `local`, and the cluster's bus.
    pubsub: Arc<dyn PubSub>,
    /// Diffs go out on `local` only: each node computes its own.
    presence: Presence,
    cluster: Option<Cluster>,
}

impl Fabric {
    fn new(config: &Config, tracker: &TaskTracker) -> anyhow::Result<Fabric> {
        let cluster = config.cluster().map(Cluster::new).transpose()?;
        // One node alone has no peers: any number will do.
        let node = cluster.as_ref().map_or(1, Cluster::id);
        let local: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
        let presence = Presence::new(local.clone(), node, tracker.clone());
        let pubsub = match &cluster {
            Some(cluster) => cluster.pubsub(local.clone()),
            None => local.clone(),
        };
        Ok(Fabric {
            local,
            pubsub,
            presence,
            cluster,
        })
    }

    /// Starts the cluster node, if this is one.
    async fn start(
        &self,
        rooms: &Rooms,
        store: &Store,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<()> {
        if let Some(cluster) = &self.cluster {
            let key = store
                .cluster_key()
                .await
                .context("the cluster's name could not be read from the database")?;
            let wired = Wired {
                presence: self.presence.clone(),
                local: self.local.clone(),
                rooms: rooms.clone(),
                store: store.clone(),
            };
            cluster.start(wired, &key, shutdown, tracker);
        }
        Ok(())
    }
}

/// The socket endpoint: who may connect, the channels, PubSub, Presence,
/// the limits and the allowed origins.
fn build_endpoint(
    config: &Config,
    socket: DuetSocket,
    channels: ChannelRouter,
    fabric: &Fabric,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) -> Endpoint {
    let mut allowed = config.allowed_origins.clone();
    allowed.retain(|o| !o.trim().is_empty());
    for entry in crate::channels::transport::origin::unusable_entries(&allowed) {
        tracing::warn!(
            entry,
            "DUET_ALLOWED_ORIGINS: not an origin (http(s)://host[:port]); it matches nothing"
        );
    }
    Endpoint::new(crate::channels::EndpointParts {
        handler: Arc::new(socket),
        router: Arc::new(channels),
        pubsub: fabric.pubsub.clone(),
        presence: fabric.presence.clone(),
        limits: Arc::new(config.limits()),
        metrics: Arc::new(Metrics::default()),
        allowed_origins: Arc::new(allowed),
        shutdown,
        tracker,
        longpoll: Default::default(),
    })
}

impl App {
    /// Opens the store and starts the writer, the rooms and the socket
    /// endpoint: everything but the listener.
    pub async fn new(config: Config) -> anyhow::Result<App> {
        config.check().map_err(anyhow::Error::msg)?;
        let (store, data_dir_lock) = open_store(&config).await?;
        let keys = Arc::new(load_keys(&config)?);
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let fabric = Fabric::new(&config, &tracker)?;
        let persist_latency = crate::telemetry::latency_histogram();
        let writer_stop = CancellationToken::new();
        let (writer, writer_task) =
            DocWriter::spawn(store.clone(), persist_latency.clone(), writer_stop.clone())
                .await
                .context("starting the document writer")?;
        let rooms = Rooms::new(
            store.clone(),
            writer.clone(),
            RoomConfig {
                snapshot_every: config.snapshot_every,
                grace: Duration::from_millis(config.room_grace_ms),
                caps: config.caps(),
                node: fabric.presence.node(),
                bus: fabric.cluster.as_ref().map(Cluster::room_bus),
            },
            shutdown.clone(),
            tracker.clone(),
        );
        let channels = channel_routes(&config, &rooms);
        let socket = DuetSocket {
            keys: keys.clone(),
            store: store.clone(),
        };
        let endpoint = build_endpoint(
            &config,
            socket,
            channels,
            &fabric,
            shutdown.clone(),
            tracker.clone(),
        );
        fabric.start(&rooms, &store, shutdown, &tracker).await?;
        let api_limit = Arc::new(crate::http::limit::ApiLimit::new(
            config.api_rate,
            config.api_burst,
        ));
        let metrics = Arc::new(crate::http::health::registry(
            &endpoint,
            &rooms,
            &persist_latency,
            fabric.cluster.as_ref(),
        ));
        let state = AppState {
            store,
            keys,
            endpoint,
            rooms,
            writer,
            config: Arc::new(config),
            api_limit,
            metrics,
            cluster: fabric.cluster,
        };
        Ok(App {
            state,
            writer_task,
            writer_stop,
            _data_dir_lock: data_dir_lock,
        })
    }

    pub fn router(&self) -> Router {
        let api = crate::http::routes()
            .with_state(self.state.clone())
            .layer(CompressionLayer::new());
        let router = Router::new()
            .merge(crate::channels::transport::routes(
                self.state.endpoint.clone(),
            ))
            .merge(api)
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                    let path = req
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_else(|| req.uri().path().to_owned());
                    tracing::debug_span!("http", method = %req.method(), path)
                }),
            );
        crate::http::security::headers(router)
    }

    /// Stops everything that runs, in order, once HTTP has stopped.
    pub async fn shutdown(self) {
        let endpoint = &self.state.endpoint;
        endpoint.shutdown.cancel();
        endpoint.tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, endpoint.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sockets or rooms did not stop in time");
        }
        // Rooms have queued their last snapshots: commit what is queued, stop.
        self.writer_stop.cancel();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.writer_task.finished())
            .await
            .is_err()
        {
            tracing::warn!("the document writer did not finish in time");
        }
        self.state.store.close().await;
    }
}

/// Serves until `shutdown` resolves, then drains and flushes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // A refused setting is one line, before anything else is said.
    config.check().map_err(anyhow::Error::msg)?;
    tracing::info!(config = %config.redacted(), "starting");
    let addr = config.addr;
    let app = App::new(config).await?;
    let listener = bind(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    // Tests and scripts wait for this exact line.
    println!("duet listening on http://{local}");
    tracing::info!(addr = %local, "listening");
    serve(app, listener, shutdown).await
}

/// Pending connections the kernel queues for us. The default (128)
/// overflows when thousands of clients connect at once (a reconnect storm),
/// and each overflow costs the client a 1 s SYN retry.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listening socket with a deep accept queue.
pub fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves on a bound listener (tests bind port 0 themselves): HTTP through
/// [`crate::conn`] (timeouts, the per-address cap), then, once `shutdown`
/// resolves, sockets close with 1001, HTTP drains, and [`App::shutdown`]
/// stops rooms and flushes the writer.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = app.router();
    let limits = app.state.config.conn_limits();
    let token = app.state.endpoint.shutdown.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: closing sockets");
        // Upgraded sockets are not awaited by the HTTP server: cancel them ourselves.
        token.cancel();
    };
    crate::conn::serve_http(listener, router, limits, signal)
        .await
        .context("serving HTTP")?;
    app.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
