//! The `echo:*` channel, enabled by `DUET_TEST_CHANNELS=1` for protocol
//! tests: it exercises every part of the channel life cycle (join refusal,
//! replies, no reply, broadcast, broadcast_from, push, binary, crash,
//! `disconnect`) without any product logic.

use serde_json::{json, Value};

use crate::channels::channel::{Channel, ChannelCtx, HandleResult, ReplyHandle};
use crate::channels::message::{Payload, Status, DISCONNECT};

pub struct EchoChannel;

impl Channel for EchoChannel {
    type State = ();
    type Info = ();

    async fn join(_: &(), params: Value, ctx: &mut ChannelCtx<()>) -> Result<(Self, Value), Value> {
        if params.get("fail") == Some(&Value::Bool(true)) {
            return Err(json!({ "reason": "join refused" }));
        }
        Ok((
            EchoChannel,
            json!({ "topic": &*ctx.topic, "params": params }),
        ))
    }

    async fn handle_in(
        &mut self,
        event: String,
        payload: Payload,
        _reply: ReplyHandle,
        ctx: &mut ChannelCtx<()>,
    ) -> HandleResult {
        match event.as_str() {
            "ping" => HandleResult::Reply(Status::Ok, payload),
            "fail" => HandleResult::error("requested failure"),
            "noreply" => HandleResult::NoReply,
            "broadcast" => {
                ctx.broadcast("broadcast", payload);
                HandleResult::ok(json!({}))
            }
            "broadcast_from" => {
                ctx.broadcast_from("broadcast", payload);
                HandleResult::ok(json!({}))
            }
            "push" => {
                ctx.push("pushed", payload);
                HandleResult::ok(json!({}))
            }
            "binary" => {
                ctx.push("binary_pushed", payload.clone());
                HandleResult::Reply(Status::Ok, payload)
            }
            "crash" => panic!("crash requested by the client"),
            "disconnect_me" => {
                if let Some(id) = ctx.socket_id() {
                    ctx.endpoint_broadcast(&id, DISCONNECT, Payload::empty());
                }
                HandleResult::ok(json!({}))
            }
            _ => HandleResult::error("unknown event"),
        }
    }
}
