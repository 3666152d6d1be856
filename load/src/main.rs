//! `duet-load`: the load generator of Duet. It speaks only the public
//! contract (shared/CONTRACT.md): HTTP to sign in and create rooms, then
//! Phoenix Channels V2 over WebSockets bound to loopback source addresses,
//! with JSON edits (`response:update`) or binary y-protocols updates.
//!
//! Layout:
//! - `cli`: global options and one subcommand per scenario.
//! - `protocol`: Phoenix frames, y-protocols messages, edit markers (pure).
//! - `api`: sign-in and room creation over HTTP, bounded and retried.
//! - `client`: one task per socket: join, heartbeat, edit, watch, churn.
//! - `scenario`: the plans (who joins what, on which schedule).
//! - `harness`: spawn clients, step the phases, add stats up.
//! - `driver`: a whole run in one process, `smoke`, the server watch.
//! - `multi`: `--processes N`, children stepped over stdio, merged.
//! - `storm`: `reconnect-storm` (starts and restarts the server itself).
//! - `stats`, `report`: histograms, `/proc`, the report.

mod api;
mod cli;
mod client;
mod driver;
mod harness;
mod multi;
mod protocol;
mod report;
mod scenario;
mod stats;
mod storm;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Scenario};

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    cli.scenario.resolve_defaults();
    let nofile = stats::raise_nofile_limit();
    let threads = cli.global.threads.unwrap_or_else(driver::cores).max(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("duet-load: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let cap = cli.global.max_duration;
    let code = runtime.block_on(async {
        match tokio::time::timeout(cap, app(&cli, nofile)).await {
            Ok(Ok(code)) => code,
            Ok(Err(e)) => {
                eprintln!("duet-load: {e:#}");
                1
            }
            Err(_) => {
                eprintln!(
                    "duet-load: --max-duration of {:.0} s reached; stopping",
                    cap.as_secs_f64()
                );
                2
            }
        }
    });
    // Client tasks still running (after the cap) are dropped, not awaited.
    runtime.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(code)
}

async fn app(cli: &Cli, nofile: u64) -> anyhow::Result<u8> {
    let global = &cli.global;
    match &cli.scenario {
        Scenario::Smoke => driver::smoke(global).await,
        Scenario::ReconnectStorm(a) => storm::run(global, a, nofile).await,
        s if global.child => multi::child(global, s, nofile).await,
        s => {
            let processes = if global.shard.is_some() {
                1
            } else if global.processes == 0 {
                scenario::total_clients(s)
                    .div_ceil(scenario::SOCKETS_PER_PROCESS)
                    .max(1)
            } else {
                global.processes
            };
            if processes > 1 {
                multi::parent(global, s, processes).await
            } else {
                driver::single(global, s, nofile).await
            }
        }
    }
}
