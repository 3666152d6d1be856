//! The [`Channel`] trait (join, handle_in, handle_out, handle_info,
//! terminate) with Phoenix's life cycle, the [`ChannelCtx`] a channel uses to
//! push, reply, broadcast and track presence, and [`run`], the per-join task
//! that owns one channel and cleans up after it on every exit path.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

use super::mailbox::{Mailbox, Receiver};
use super::message::{
    Broadcast, Message, Payload, Push, Reply, Status, PHX_CLOSE, PHX_ERROR, PRESENCE_STATE,
};
use super::presence::Owner;
use super::pubsub::{SubId, Subscriber};
use super::serializer::{encode_push, encode_reply};

use super::{Assigns, Endpoint, Outbound};

/// What `handle_in` asks the channel task to do next.
pub enum HandleResult {
    /// Reply to the push.
    Reply(Status, Payload),
    /// No reply now (maybe later, through a [`ReplyHandle`]).
    NoReply,
    /// Reply (if given), then stop the channel normally (`phx_close`).
    Stop(String, Option<(Status, Payload)>),
}

impl HandleResult {
    /// Reply ok with a JSON payload.
    pub fn ok(payload: Value) -> Self {
        HandleResult::Reply(Status::Ok, Payload::Json(payload))
    }

    /// Reply error with `{"reason": reason}`.
    pub fn error(reason: &str) -> Self {
        HandleResult::Reply(
            Status::Error,
            Payload::Json(serde_json::json!({ "reason": reason })),
        )
    }
}

/// Why a channel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The client left (`phx_leave`).
    Left,
    /// The server closed it: a duplicate join of the same topic, or `Stop`.
    Closed(String),
    /// The socket went away (closed, dropped, timed out, too slow).
    SocketGone,
    /// The server is shutting down.
    Shutdown,
    /// A handler panicked or failed: the client gets `phx_error`.
    Crashed(String),
}

/// A message from the socket to its channel task.
pub enum ChannelInput {
    /// Boxed: the inbox's slots stay small for idle channels.
    Message(Box<Message>),
    /// The client left (`phx_leave`); the reply goes to this `ref`.
    Leave {
        /// The `ref` of the `phx_leave`.
        msg_ref: Option<String>,
    },
    /// Close this join (a second join of the same topic arrived).
    Close,
    /// A message of the channel's own (`Channel::Info`) for `handle_info`;
    /// it shares the inbox so an idle channel holds one queue, not two.
    Info(Box<dyn std::any::Any + Send>),
}

/// Channel inputs count against the inbox's item bound only.
impl super::mailbox::Weigh for ChannelInput {}

/// Phoenix's channel behaviour. A channel value lives in its own task.
pub trait Channel: Sized + Send + 'static {
    /// Shared state the route hands to every join (database handles...).
    type State: Clone + Send + Sync + 'static;
    /// Server-side messages for `handle_info`.
    type Info: Send + 'static;
    /// Broadcast events this channel intercepts (Phoenix's `intercept`):
    /// they go through `handle_out` instead of straight to the socket.
    const INTERCEPTS: &'static [&'static str] = &[];

    /// Authorizes a join; `Ok` carries the channel and the reply payload,
    /// `Err` the error reply payload.
    fn join(
        state: &Self::State,
        params: Value,
        ctx: &mut ChannelCtx<Self::Info>,
    ) -> impl Future<Output = Result<(Self, Value), Value>> + Send;

    /// Runs after the join reply went out (presence tracking goes here).
    fn after_join(&mut self, _ctx: &mut ChannelCtx<Self::Info>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A push from the client.
    fn handle_in(
        &mut self,
        event: String,
        payload: Payload,
        reply: ReplyHandle,
        ctx: &mut ChannelCtx<Self::Info>,
    ) -> impl Future<Output = HandleResult> + Send;

    /// An intercepted broadcast; the default pushes it unchanged.
    fn handle_out(
        &mut self,
        b: Arc<Broadcast>,
        ctx: &mut ChannelCtx<Self::Info>,
    ) -> impl Future<Output = ()> + Send {
        ctx.push(&b.event, b.payload.clone());
        async {}
    }

    /// A server-side message; `Some(reason)` stops the channel.
    fn handle_info(
        &mut self,
        _info: Self::Info,
        _ctx: &mut ChannelCtx<Self::Info>,
    ) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }

    /// Called once when the channel ends for any reason but a crash.
    fn terminate(
        &mut self,
        _reason: &ExitReason,
        _ctx: &mut ChannelCtx<Self::Info>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Replies to one push, now or later, from any task.
#[derive(Clone)]
pub struct ReplyHandle {
    outbound: Outbound,
    topic: Arc<str>,
    join_ref: Option<String>,
    msg_ref: Option<String>,
}

impl ReplyHandle {
    /// Replies now (nothing is sent when the push had no `ref`).
    pub fn reply(&self, status: Status, payload: Payload) {
        self.prepare(status, payload).send();
    }

    /// Replies ok with a JSON payload.
    pub fn ok(&self, payload: Value) {
        self.reply(Status::Ok, Payload::Json(payload));
    }

    /// Encodes the reply now, to send later: whoever sends it (the
    /// group-commit completions) then only queues bytes.
    pub fn prepare(&self, status: Status, payload: Payload) -> PreparedReply {
        // No `ref`: the client did not ask for a reply.
        let frame = self.msg_ref.as_ref().and_then(|_| {
            encode_reply(&Reply {
                join_ref: self.join_ref.clone(),
                msg_ref: self.msg_ref.clone(),
                topic: self.topic.to_string(),
                status,
                payload,
            })
            .map_err(|err| warn!(cause = %err, "reply not encodable"))
            .ok()
        });
        PreparedReply {
            outbound: self.outbound.clone(),
            frame,
        }
    }

    /// Replies error with `{"reason": reason}`.
    pub fn error(&self, reason: &str) {
        self.reply(
            Status::Error,
            Payload::Json(serde_json::json!({ "reason": reason })),
        );
    }
}

/// A reply encoded ahead of time (see [`ReplyHandle::prepare`]).
pub struct PreparedReply {
    outbound: Outbound,
    frame: Option<super::serializer::Frame>,
}

impl PreparedReply {
    /// Queues the reply on the socket (never waits).
    pub fn send(self) {
        if let Some(frame) = self.frame {
            self.outbound.send(frame);
        }
    }
}

/// Pushes events to one channel member from any task (a room, a timer).
#[derive(Clone)]
pub struct Pusher {
    outbound: Outbound,
    topic: Arc<str>,
    join_ref: Option<String>,
}

impl Pusher {
    /// The member's outgoing queue (see [`super::fanout::Fanout`]).
    pub(super) fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Pushes `event` to the member (dropped if it cannot be encoded).
    pub fn push(&self, event: &str, payload: Payload) {
        let push = Push {
            join_ref: self.join_ref.clone(),
            topic: self.topic.to_string(),
            event: event.to_owned(),
            payload,
        };
        match encode_push(&push) {
            Ok(frame) => {
                self.outbound.send(frame);
            }
            Err(err) => warn!(cause = %err, "push not encodable"),
        }
    }
}

/// What a channel can do: push to its client, broadcast to its topic, track
/// presence, schedule messages to itself.
pub struct ChannelCtx<I> {
    /// The joined topic.
    pub topic: Arc<str>,
    /// The join's `ref`, carried by every push to this member.
    pub join_ref: Option<String>,
    /// What the socket's `connect` attached (see [`ChannelCtx::assigns`]).
    pub assigns: Assigns,
    /// This channel's PubSub subscription (and presence owner) id.
    pub sub_id: SubId,
    endpoint: Endpoint,
    outbound: Outbound,
    info_tx: InfoSender<I>,
}

impl<I: Send + 'static> ChannelCtx<I> {
    /// The socket's assigns as the product's type.
    pub fn assigns<T: 'static>(&self) -> Option<&T> {
        self.assigns.downcast_ref::<T>()
    }

    /// Pushes an event to this channel's client only.
    pub fn push(&self, event: &str, payload: Payload) {
        self.pusher().push(event, payload);
    }

    /// A handle that pushes to this channel's client from anywhere.
    pub fn pusher(&self) -> Pusher {
        Pusher {
            outbound: self.outbound.clone(),
            topic: self.topic.clone(),
            join_ref: self.join_ref.clone(),
        }
    }

    /// Broadcasts to every member of the topic, this one included.
    pub fn broadcast(&self, event: &str, payload: Payload) {
        self.endpoint.pubsub.broadcast(
            Broadcast {
                topic: self.topic.to_string(),
                event: event.to_owned(),
                payload,
            },
            None,
        );
    }

    /// Broadcasts to every member of the topic but this one.
    pub fn broadcast_from(&self, event: &str, payload: Payload) {
        self.endpoint.pubsub.broadcast(
            Broadcast {
                topic: self.topic.to_string(),
                event: event.to_owned(),
                payload,
            },
            Some(self.sub_id),
        );
    }

    /// The id of this channel's socket ([`SocketHandler::id`](crate::SocketHandler::id)):
    /// broadcasting `disconnect` to it closes every socket of that id.
    pub fn socket_id(&self) -> Option<String> {
        self.endpoint.handler.id(&self.assigns)
    }

    /// Broadcasts on any topic (e.g. `disconnect` to a socket id).
    pub fn endpoint_broadcast(&self, topic: &str, event: &str, payload: Payload) {
        self.endpoint.pubsub.broadcast(
            Broadcast {
                topic: topic.to_owned(),
                event: event.to_owned(),
                payload,
            },
            None,
        );
    }

    /// This channel's identity as a presence owner and PubSub subscriber.
    pub fn owner(&self) -> Owner {
        self.endpoint.presence.owner(self.sub_id)
    }

    /// Tracks `key` with `meta` on this topic, owned by this channel.
    pub fn track(&self, key: &str, meta: Map<String, Value>) -> String {
        self.endpoint
            .presence
            .track(&self.topic, key, self.owner(), meta)
    }

    /// Updates this channel's presence entry for `key`; the others are told
    /// within `window` (see [`Presence::update`](crate::presence::Presence::update)).
    pub fn update_presence(
        &self,
        key: &str,
        window: Duration,
        f: impl FnOnce(&mut Map<String, Value>),
    ) -> bool {
        self.endpoint
            .presence
            .update(&self.topic, key, self.owner(), window, f)
    }

    /// Pushes `presence_state` (everyone on the topic) to this client.
    pub fn push_presence_state(&self) {
        self.push(
            PRESENCE_STATE,
            Payload::Json(self.endpoint.presence.list(&self.topic)),
        );
    }

    /// A handle that replies to `msg_ref` later.
    pub fn reply_handle(&self, msg_ref: Option<String>) -> ReplyHandle {
        ReplyHandle {
            outbound: self.outbound.clone(),
            topic: self.topic.clone(),
            join_ref: self.join_ref.clone(),
            msg_ref,
        }
    }

    /// Sends a message to this channel's own `handle_info`.
    pub fn send_info(&self, info: I) {
        self.info_tx.send(info);
    }

    /// A sender other tasks can use to reach `handle_info`.
    pub fn info_sender(&self) -> InfoSender<I> {
        self.info_tx.clone()
    }

    /// Sends `info` to `handle_info` after `delay`. The timer is a task of
    /// the endpoint's tracker that ends at shutdown, so shutdown neither
    /// waits for it nor leaves it behind.
    pub fn send_after(&self, delay: Duration, info: I) {
        let tx = self.info_tx.clone();
        let shutdown = self.endpoint.shutdown.clone();
        self.endpoint.tracker.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => tx.send(info),
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// Sends messages to a channel's `handle_info` from any task.
pub struct InfoSender<I> {
    inbox: Mailbox<ChannelInput>,
    _info: std::marker::PhantomData<fn(I)>,
}

impl<I> Clone for InfoSender<I> {
    fn clone(&self) -> Self {
        InfoSender {
            inbox: self.inbox.clone(),
            _info: std::marker::PhantomData,
        }
    }
}

impl<I: Send + 'static> InfoSender<I> {
    /// Queues `info`; dropped when the channel has ended.
    pub fn send(&self, info: I) {
        let _ = self.inbox.force_send(ChannelInput::Info(Box::new(info)));
    }
}

/// What the socket hands a route to start a channel.
pub struct JoinArgs {
    /// The topic to join.
    pub topic: String,
    /// The `phx_join`'s `join_ref`.
    pub join_ref: Option<String>,
    /// The `phx_join`'s `ref`, for the join reply.
    pub msg_ref: Option<String>,
    /// The join params (a JSON object).
    pub params: Value,
    /// The socket's assigns.
    pub assigns: Assigns,
    /// The shared endpoint.
    pub endpoint: Endpoint,
    /// The socket's outgoing queue.
    pub outbound: Outbound,
    /// What the socket sends this channel.
    pub inbox: Receiver<ChannelInput>,
    /// The sending side of `inbox` (for the channel's own info messages).
    pub inbox_tx: Mailbox<ChannelInput>,
}

/// The per-join task: join, then serve the inbox, intercepted broadcasts and
/// info messages until the channel ends; then untrack, unsubscribe and tell
/// the client (`phx_close` or `phx_error`).
pub fn run<C: Channel>(
    state: C::State,
    args: JoinArgs,
) -> impl std::future::Future<Output = ()> + Send {
    // Set up synchronously, so the task's future keeps only what the
    // channel's life needs (an async fn keeps its arguments for good).
    let JoinArgs {
        topic,
        join_ref,
        msg_ref,
        params,
        assigns,
        endpoint,
        outbound,
        inbox,
        inbox_tx,
    } = args;
    let sub_id = endpoint.pubsub.next_id();
    let info_tx = InfoSender {
        inbox: inbox_tx,
        _info: std::marker::PhantomData,
    };
    let topic: Arc<str> = topic.into();
    let span = tracing::info_span!("channel", topic = %topic, join_ref = join_ref.as_deref().unwrap_or(""));
    let ctx = ChannelCtx {
        topic,
        join_ref,
        assigns,
        sub_id,
        endpoint,
        outbound,
        info_tx,
    };
    // Only needed to join: boxed, so the slot is one pointer afterwards.
    let join = Box::new(JoinInput::<C> {
        state,
        params,
        msg_ref,
    });
    live::<C>(join, ctx, inbox).instrument(span)
}

/// What the join needs and the channel's life does not.
struct JoinInput<C: Channel> {
    state: C::State,
    params: Value,
    msg_ref: Option<String>,
}

/// A joined channel and the queue of its intercepted broadcasts.
type Joined<C> = (C, Option<mpsc::Receiver<Arc<Broadcast>>>);

async fn live<C: Channel>(
    join: Box<JoinInput<C>>,
    mut ctx: ChannelCtx<C::Info>,
    mut inbox: Receiver<ChannelInput>,
) {
    let Some(mut joined) = Box::pin(join_phase::<C>(join, &mut ctx)).await else {
        return;
    };
    let span = tracing::Span::current();
    let (ref mut chan, ref mut intercepted) = joined;
    let outcome = AssertUnwindSafe(serve(chan, &mut ctx, &mut inbox, intercepted))
        .catch_unwind()
        .await;
    let reason = match outcome {
        Ok(reason) => {
            let terminated = AssertUnwindSafe(Box::pin(chan.terminate(&reason, &mut ctx)))
                .catch_unwind()
                .await;
            if terminated.is_err() {
                ExitReason::Crashed("terminate panicked".into())
            } else {
                reason
            }
        }
        Err(_) => ExitReason::Crashed("handler panicked".into()),
    };
    let topic = &ctx.topic;
    ctx.endpoint.pubsub.unsubscribe(topic, ctx.sub_id);
    ctx.endpoint.presence.untrack_owner(topic, ctx.owner());
    ctx.endpoint
        .metrics
        .channels
        .fetch_sub(1, Ordering::Relaxed);
    let notify = |event: &str| {
        ctx.outbound.send(super::serializer::encode_exit(
            ctx.join_ref.as_deref(),
            topic,
            event,
        ));
    };
    match &reason {
        ExitReason::Left | ExitReason::Closed(_) => notify(PHX_CLOSE),
        ExitReason::Crashed(why) => {
            span.in_scope(|| warn!(cause = %why, "channel crashed"));
            notify(PHX_ERROR)
        }
        ExitReason::SocketGone | ExitReason::Shutdown => {}
    }
    span.in_scope(|| info!(reason = ?reason, "left"));
}

/// Joins; on success subscribes the channel to its topic and replies ok.
async fn join_phase<C: Channel>(
    join: Box<JoinInput<C>>,
    ctx: &mut ChannelCtx<C::Info>,
) -> Option<Joined<C>> {
    let JoinInput {
        state,
        params,
        msg_ref,
    } = *join;
    let span = tracing::Span::current();
    let join_reply = ctx.reply_handle(msg_ref);
    let joined = AssertUnwindSafe(C::join(&state, params, ctx))
        .catch_unwind()
        .await;
    match joined {
        Ok(Ok((channel, reply))) => {
            // Only channels that intercept events get an inbox for them.
            let (on_intercept, rx) = if C::INTERCEPTS.is_empty() {
                (None, None)
            } else {
                let (tx, rx) = mpsc::channel::<Arc<Broadcast>>(ctx.endpoint.limits.outbound_queue);
                let closer = ctx.outbound.closer().clone();
                let f = Arc::new(move |b: &Arc<Broadcast>| {
                    if tx.try_send(b.clone()).is_err() {
                        closer.close(crate::CloseCode::POLICY);
                    }
                }) as super::pubsub::InterceptFn;
                (Some(f), Some(rx))
            };
            ctx.endpoint.pubsub.subscribe(
                &ctx.topic,
                ctx.sub_id,
                Subscriber {
                    outbound: ctx.outbound.clone(),
                    intercepts: C::INTERCEPTS,
                    on_intercept,
                },
            );
            ctx.endpoint
                .metrics
                .channels
                .fetch_add(1, Ordering::Relaxed);
            join_reply.ok(reply);
            span.in_scope(|| info!("joined"));
            Some((channel, rx))
        }
        Ok(Err(reason)) => {
            span.in_scope(|| info!(reason = %reason, "join refused"));
            join_reply.reply(Status::Error, Payload::Json(reason));
            None
        }
        Err(_) => {
            span.in_scope(|| warn!("join crashed"));
            join_reply.error("join crashed");
            None
        }
    }
}

async fn serve<C: Channel>(
    chan: &mut C,
    ctx: &mut ChannelCtx<C::Info>,
    inbox: &mut Receiver<ChannelInput>,
    intercepted: &mut Option<mpsc::Receiver<Arc<Broadcast>>>,
) -> ExitReason {
    let shutdown = ctx.endpoint.shutdown.clone();
    // Callbacks are boxed: they are large and rare, and an idle channel's
    // task should only hold the loop's own state.
    Box::pin(chan.after_join(ctx)).await;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return ExitReason::Shutdown,
            input = inbox.recv() => match input {
                None => return ExitReason::SocketGone,
                Some(ChannelInput::Close) => return ExitReason::Closed("duplicate join".into()),
                Some(ChannelInput::Info(any)) => {
                    if let Ok(info) = any.downcast::<C::Info>() {
                        if let Some(why) = Box::pin(chan.handle_info(*info, ctx)).await {
                            return ExitReason::Closed(why);
                        }
                    }
                }
                Some(ChannelInput::Leave { msg_ref }) => {
                    ctx.reply_handle(msg_ref).ok(serde_json::json!({}));
                    return ExitReason::Left;
                }
                Some(ChannelInput::Message(msg)) => {
                    let Message { msg_ref, event, payload, .. } = *msg;
                    debug!(event = %event, "handle_in");
                    let reply = ctx.reply_handle(msg_ref);
                    match Box::pin(chan.handle_in(event, payload, reply.clone(), ctx)).await {
                        HandleResult::Reply(status, payload) => reply.reply(status, payload),
                        HandleResult::NoReply => {}
                        HandleResult::Stop(why, r) => {
                            if let Some((status, payload)) = r {
                                reply.reply(status, payload);
                            }
                            return ExitReason::Closed(why);
                        }
                    }
                }
            },
            Some(b) = recv_intercepted(intercepted) => Box::pin(chan.handle_out(b, ctx)).await,
        }
    }
}

async fn recv_intercepted(
    rx: &mut Option<mpsc::Receiver<Arc<Broadcast>>>,
) -> Option<Arc<Broadcast>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
