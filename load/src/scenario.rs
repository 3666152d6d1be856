//! The scenarios as plans: who signs in, which rooms exist, which client
//! joins which room in which role and on what schedule. All HTTP happens
//! here; no socket is opened.
//!
//! Schedules: a room with `rate` edits/s and `m` members has member `i`
//! edit every `m / rate` seconds starting at `phase + i / rate`, so the
//! room sees one edit every `1 / rate` from rotating members; `phase` is
//! random per room so rooms do not fire in lockstep.
//!
//! Nodes: with several `--url`s, member `i` of room `r` (the room's global
//! index, the same in every shard) connects to node `(r + i) mod n`, so every
//! room of two or more members spans nodes and each node holds its share.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use rand::Rng;
use serde_json::json;

use crate::api::{Api, User};
use crate::cli::{BigroomArgs, ChurnArgs, ConnectionsArgs, EditArgs, FanoutArgs, Global, Scenario};
use crate::client::{ClientSpec, EditMode, EditPlan, JoinTable, Role};
use crate::harness::{Plan, Target};
use crate::report::Kind;

/// Sockets one process can hold: 20 000 descriptors minus a margin.
pub const SOCKETS_PER_PROCESS: usize = 19_000;

/// How many client sockets a scenario opens in total (all shards).
pub fn total_clients(s: &Scenario) -> usize {
    match s {
        Scenario::Connections(a) => a.sockets,
        Scenario::Fanout(a) => a.rooms * a.room_size,
        Scenario::Bigroom(a) => a.members,
        Scenario::Churn(a) => a.rooms * (a.watchers + a.churners),
        Scenario::ReconnectStorm(a) => a.sockets,
        Scenario::Smoke => 8,
    }
}

/// The rooms (global indices) this shard owns.
fn my_rooms(total: usize, shard: Option<(usize, usize)>) -> Vec<usize> {
    let (i, n) = shard.unwrap_or((0, 1));
    (0..total).filter(|r| r % n == i).collect()
}

/// Signs in the users and creates the rooms a plan needs.
async fn users_and_rooms(
    api: &Api,
    global: &Global,
    distinct_needed: usize,
    per_room: usize,
    rooms: usize,
    label: &str,
) -> Result<(Vec<Arc<User>>, Vec<Arc<str>>)> {
    // At least one room's worth, so the members of a room are distinct.
    let n_users = global
        .users
        .max(per_room)
        .min(distinct_needed.max(per_room))
        .max(1);
    let shard = global.shard.map(|(i, _)| i).unwrap_or(0);
    let t = std::time::Instant::now();
    let users = api
        .sign_in_many(&format!("Load s{shard}"), n_users, global.http_concurrency)
        .await?;
    let rooms = api
        .create_many(&users, label, rooms, global.http_concurrency)
        .await?;
    eprintln!(
        "  signed in {} users, created {} rooms in {:.1} s",
        users.len(),
        rooms.len(),
        t.elapsed().as_secs_f64()
    );
    Ok((users, rooms))
}

fn topic(id: &str) -> Arc<str> {
    Arc::from(format!("challenges:{id}"))
}

/// The node of member `i` of the room with global index `room`.
pub fn node_for(room: usize, i: usize, nodes: usize) -> usize {
    (room + i) % nodes.max(1)
}

/// How many nodes the run spreads its clients over (one per `--url`).
fn nodes(global: &Global) -> usize {
    global.url.len().max(1)
}

/// Members of the rooms `room_ids` (global indices `global_rooms`, for the
/// node spread over `nodes`) with `sizes[r]` members each, with edit plans
/// from `rate` (None: no edits).
fn member_specs(
    users: &[Arc<User>],
    room_ids: &[Arc<str>],
    global_rooms: &[usize],
    nodes: usize,
    sizes: &[usize],
    rate: Option<f64>,
) -> Vec<ClientSpec> {
    let mut rng = rand::thread_rng();
    let mut specs = Vec::new();
    let mut u = 0usize;
    for (r, id) in room_ids.iter().enumerate() {
        let g = global_rooms.get(r).copied().unwrap_or(r);
        let t = topic(id);
        let m = sizes[r];
        let phase = rate.map(|rate| Duration::from_secs_f64(rng.gen_range(0.0..1.0) / rate));
        for i in 0..m {
            let plan = rate.zip(phase).map(|(rate, phase)| EditPlan {
                period: Duration::from_secs_f64(m as f64 / rate),
                offset: phase + Duration::from_secs_f64(i as f64 / rate),
            });
            specs.push(ClientSpec {
                idx: specs.len() as u32,
                user: users[(u + i) % users.len()].clone(),
                topic: t.clone(),
                room: r,
                node: node_for(g, i, nodes),
                role: Role::Member(plan),
            });
        }
        u = (u + m) % users.len();
    }
    specs
}

fn check_rate(rate: f64) -> Result<()> {
    if !(rate > 0.0 && rate <= 1000.0) {
        bail!("--rate must be in (0, 1000]");
    }
    Ok(())
}

fn edit_plan(
    name: &'static str,
    params: serde_json::Value,
    edits: &EditArgs,
    specs: Vec<ClientSpec>,
    rooms: usize,
    room_size: usize,
) -> Plan {
    Plan {
        name,
        params,
        kind: Kind::Edits,
        mode: if edits.yjs {
            EditMode::Yjs
        } else {
            EditMode::Json
        },
        text_bytes: edits.text_bytes,
        specs,
        run: Some(edits.duration),
        idle: None,
        offered: rooms as f64 * edits.rate() * edits.duration.as_secs_f64(),
        per_action_deliveries: room_size.saturating_sub(1) as f64,
        reconnect: false,
    }
}

pub async fn connections(
    api: &Api,
    global: &Global,
    a: &ConnectionsArgs,
    reconnect: bool,
) -> Result<Plan> {
    if a.room_size == 0 {
        bail!("--room-size must be at least 1");
    }
    let total_rooms = a.sockets.div_ceil(a.room_size);
    let mine = my_rooms(total_rooms, global.shard);
    let sizes: Vec<usize> = mine
        .iter()
        .map(|&r| a.room_size.min(a.sockets - r * a.room_size))
        .collect();
    let n: usize = sizes.iter().sum();
    let (users, room_ids) =
        users_and_rooms(api, global, n, a.room_size, mine.len(), "connections").await?;
    let specs = member_specs(&users, &room_ids, &mine, nodes(global), &sizes, None);
    Ok(Plan {
        name: if reconnect {
            "reconnect-storm"
        } else {
            "connections"
        },
        params: json!({ "sockets": a.sockets, "room_size": a.room_size, "idle_secs": a.idle.as_secs_f64() }),
        kind: Kind::Idle,
        mode: EditMode::Json,
        text_bytes: 0,
        specs,
        run: None,
        idle: Some(a.idle),
        offered: 0.0,
        per_action_deliveries: 0.0,
        reconnect,
    })
}

pub async fn fanout(api: &Api, global: &Global, a: &FanoutArgs) -> Result<Plan> {
    check_rate(a.edits.rate())?;
    if a.room_size < 2 {
        bail!("--room-size must be at least 2 for deliveries to exist");
    }
    let mine = my_rooms(a.rooms, global.shard);
    let sizes = vec![a.room_size; mine.len()];
    let (users, room_ids) = users_and_rooms(
        api,
        global,
        mine.len() * a.room_size,
        a.room_size,
        mine.len(),
        "fanout",
    )
    .await?;
    let specs = member_specs(
        &users,
        &room_ids,
        &mine,
        nodes(global),
        &sizes,
        Some(a.edits.rate()),
    );
    let params = json!({
        "rooms": a.rooms, "room_size": a.room_size, "rate": a.edits.rate(),
        "duration_secs": a.edits.duration.as_secs_f64(), "yjs": a.edits.yjs, "text_bytes": a.edits.text_bytes,
    });
    Ok(edit_plan(
        "fanout",
        params,
        &a.edits,
        specs,
        mine.len(),
        a.room_size,
    ))
}

pub async fn bigroom(api: &Api, global: &Global, a: &BigroomArgs) -> Result<Plan> {
    check_rate(a.edits.rate())?;
    if a.members < 2 {
        bail!("--members must be at least 2");
    }
    if global.shard.is_some_and(|(_, n)| n > 1) {
        bail!("bigroom is one room and runs in one process (up to ~{SOCKETS_PER_PROCESS} members)");
    }
    let (users, room_ids) = users_and_rooms(
        api,
        global,
        a.members,
        a.members.min(global.users),
        1,
        "bigroom",
    )
    .await?;
    let specs = member_specs(
        &users,
        &room_ids,
        &[0],
        nodes(global),
        &[a.members],
        Some(a.edits.rate()),
    );
    let params = json!({
        "members": a.members, "rate": a.edits.rate(), "duration_secs": a.edits.duration.as_secs_f64(),
        "yjs": a.edits.yjs, "text_bytes": a.edits.text_bytes,
    });
    Ok(edit_plan("bigroom", params, &a.edits, specs, 1, a.members))
}

pub async fn churn(api: &Api, global: &Global, a: &ChurnArgs) -> Result<Plan> {
    check_rate(a.rate)?;
    if a.watchers == 0 || a.churners == 0 {
        bail!("--watchers and --churners must be at least 1");
    }
    let per_room = a.watchers + a.churners;
    let mine = my_rooms(a.rooms, global.shard);
    let (users, room_ids) = users_and_rooms(
        api,
        global,
        mine.len() * per_room,
        per_room,
        mine.len(),
        "churn",
    )
    .await?;
    let mut rng = rand::thread_rng();
    let mut specs = Vec::new();
    let mut u = 0usize;
    for (r, id) in room_ids.iter().enumerate() {
        let g = mine[r];
        let t = topic(id);
        let table = Arc::new(JoinTable::default());
        let phase = rng.gen_range(0.0..1.0) / a.rate;
        for i in 0..per_room {
            let role = if i < a.watchers {
                Role::Watcher(table.clone())
            } else {
                let j = (i - a.watchers) as f64;
                Role::Churner {
                    table: table.clone(),
                    period: Duration::from_secs_f64(a.churners as f64 / a.rate),
                    offset: Duration::from_secs_f64(phase + j / a.rate),
                }
            };
            specs.push(ClientSpec {
                idx: specs.len() as u32,
                user: users[(u + i) % users.len()].clone(),
                topic: t.clone(),
                room: r,
                node: node_for(g, i, nodes(global)),
                role,
            });
        }
        u = (u + per_room) % users.len();
    }
    Ok(Plan {
        name: "churn",
        params: json!({
            "rooms": a.rooms, "rate": a.rate, "duration_secs": a.duration.as_secs_f64(),
            "watchers": a.watchers, "churners": a.churners,
        }),
        kind: Kind::Churn,
        mode: EditMode::Json,
        text_bytes: 0,
        specs,
        run: Some(a.duration),
        idle: None,
        offered: mine.len() as f64 * a.rate * a.duration.as_secs_f64(),
        per_action_deliveries: a.watchers as f64,
        reconnect: false,
    })
}

/// `smoke`: 2 rooms of 4, 4 edits/s per room for 2 s, in the given mode.
pub async fn smoke(api: &Api, global: &Global, yjs: bool) -> Result<Plan> {
    let a = FanoutArgs {
        rooms: 2,
        room_size: 4,
        edits: EditArgs {
            rate: Some(4.0),
            duration: Duration::from_secs(2),
            yjs,
            text_bytes: 256,
        },
    };
    let mut plan = fanout(api, global, &a).await?;
    plan.name = "smoke";
    Ok(plan)
}

/// Builds the plan of any scenario but the storm and smoke.
pub async fn plan(api: &Api, global: &Global, scenario: &Scenario) -> Result<Plan> {
    match scenario {
        Scenario::Connections(a) => connections(api, global, a, false).await,
        Scenario::Fanout(a) => fanout(api, global, a).await,
        Scenario::Bigroom(a) => bigroom(api, global, a).await,
        Scenario::Churn(a) => churn(api, global, a).await,
        Scenario::ReconnectStorm(_) | Scenario::Smoke => bail!("not a plain scenario"),
    }
}

pub fn api_for(target: &Target) -> Result<Api> {
    Api::new(target.base.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: usize) -> Vec<Arc<User>> {
        (0..n)
            .map(|i| {
                Arc::new(User {
                    id: format!("u{i}"),
                    token: format!("t{i}"),
                })
            })
            .collect()
    }

    #[test]
    fn shards_split_rooms() {
        assert_eq!(my_rooms(5, None), vec![0, 1, 2, 3, 4]);
        assert_eq!(my_rooms(5, Some((1, 2))), vec![1, 3]);
        assert_eq!(my_rooms(5, Some((0, 2))), vec![0, 2, 4]);
    }

    #[test]
    fn room_members_are_distinct_users_and_rotate() {
        let rooms: Vec<Arc<str>> = vec![Arc::from("a"), Arc::from("b"), Arc::from("c")];
        let specs = member_specs(&users(5), &rooms, &[0, 1, 2], 1, &[4, 4, 4], Some(5.0));
        assert_eq!(specs.len(), 12);
        for r in 0..3 {
            let mut ids: Vec<&str> = specs
                .iter()
                .filter(|s| s.room == r)
                .map(|s| s.user.id.as_str())
                .collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 4, "room {r}");
        }
        // Offsets inside a room step by 1/rate; each member's period is m/rate.
        let offs: Vec<Duration> = specs
            .iter()
            .filter(|s| s.room == 0)
            .map(|s| match &s.role {
                Role::Member(Some(p)) => {
                    assert_eq!(p.period, Duration::from_secs_f64(0.8));
                    p.offset
                }
                _ => panic!("member without plan"),
            })
            .collect();
        for w in offs.windows(2) {
            let step = (w[1] - w[0]).as_secs_f64();
            assert!((step - 0.2).abs() < 1e-6, "{step}");
        }
        // Indices are unique: they are the markers' sender ids.
        let mut idx: Vec<u32> = specs.iter().map(|s| s.idx).collect();
        idx.dedup();
        assert_eq!(idx.len(), 12);
    }

    #[test]
    fn every_room_spans_nodes_and_nodes_share_the_load() {
        let rooms: Vec<Arc<str>> = (0..6).map(|i| Arc::from(format!("r{i}"))).collect();
        // Shard 1 of 2 of 12 rooms: global indices 1, 3, 5, ...
        let global: Vec<usize> = (0..6).map(|i| 2 * i + 1).collect();
        let specs = member_specs(&users(8), &rooms, &global, 3, &[4; 6], None);
        let mut per_node = [0usize; 3];
        for (r, &g) in global.iter().enumerate() {
            let nodes: Vec<usize> = specs
                .iter()
                .filter(|s| s.room == r)
                .map(|s| s.node)
                .collect();
            // Member i of room g on node (g + i) % 3.
            assert_eq!(nodes, (0..4).map(|i| (g + i) % 3).collect::<Vec<_>>());
            let mut distinct = nodes.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "room {g} spans every node");
            for n in nodes {
                per_node[n] += 1;
            }
        }
        assert_eq!(per_node.iter().sum::<usize>(), 24);
        assert!(per_node.iter().all(|&n| n == 8), "{per_node:?}");
        // One node: everyone on it.
        let one = member_specs(&users(8), &rooms, &global, 1, &[4; 6], None);
        assert!(one.iter().all(|s| s.node == 0));
    }

    #[test]
    fn totals() {
        let s = Scenario::Churn(ChurnArgs {
            rooms: 10,
            rate: 1.0,
            duration: Duration::from_secs(1),
            watchers: 2,
            churners: 3,
        });
        assert_eq!(total_clients(&s), 50);
    }
}
