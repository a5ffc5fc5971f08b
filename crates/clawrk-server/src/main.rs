//! `clawrk-server`: `serve` (the default), `migrate`, and `admin create-user | create-key | credit`.
//!
//! `serve` opens the store (PostgreSQL with `DATABASE_URL`, else the embedded SQLite file), picks
//! the LLM (async-openai with `OPENAI_API_KEY`, else the offline heuristic), starts the HTTP API,
//! the verification workers and the deadline sweeper, and shuts down gracefully on SIGINT/SIGTERM.

mod admin;
mod background;
mod cli;
mod logging;
mod wiring;

use clap::Parser;
use cli::{Cli, Command, Payments, ServeArgs, StoreArgs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("{}", serde_json::json!({ "error": msg.to_string() }));
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    match cli.command {
        None => rt.block_on(serve(cli.store, ServeArgs::defaults())),
        Some(Command::Serve(args)) => rt.block_on(serve(cli.store, *args)),
        Some(Command::Migrate) => match wiring::migrate(&cli.store) {
            Ok(msg) => {
                println!("{}", serde_json::json!({ "migrated": msg }));
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Some(Command::Admin(cmd)) => rt.block_on(async {
            let opened = match wiring::open_store(&cli.store).await {
                Ok(o) => o,
                Err(e) => return fail(e),
            };
            // Admin commands need no LLM, move no money through the payment ports and touch no
            // file (so they create no files directory either).
            let no_files = Arc::new(clawrk_domain::memory::MemoryFiles::new());
            let market =
                match wiring::marketplace(opened.store.clone(), no_files, &ServeArgs::defaults()) {
                    Ok(m) => m,
                    Err(e) => return fail(e),
                };
            let result = admin::run(&market, cmd).await;
            opened.shutdown();
            match result {
                Ok(v) => {
                    println!("{v}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }),
    }
}

async fn serve(store_args: StoreArgs, args: ServeArgs) -> ExitCode {
    let lease = match wiring::verification_lease(&args) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let opened = match wiring::open_store(&store_args).await {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let files = match wiring::file_store(&store_args, &args) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let files_at = files.location().to_string();
    let market = match wiring::marketplace(opened.store.clone(), Arc::new(files), &args) {
        Ok(m) => Arc::new(m),
        Err(e) => return fail(e),
    };
    let llm = wiring::llm_config(&args);
    tracing::info!(
        addr = %args.addr,
        store = %opened.describe,
        llm = %if llm.api_key.is_some() { format!("llm:{}", llm.model) } else { "heuristic (no OPENAI_API_KEY)".into() },
        hold_seconds = args.hold_seconds,
        sweep_seconds = args.sweep_seconds,
        verify_lease_seconds = lease.as_secs(),
        llm_response_format = ?llm.response_format,
        llm_max_tokens = llm.max_tokens,
        webhook_workers = args.webhook_workers,
        webhook_allow_private = args.webhook_allow_private,
        files = %files_at,
        cron = args.cron_secret.is_some(),
        "clawrk starting"
    );
    if llm.api_key.is_none() {
        tracing::warn!(
            "no OPENAI_API_KEY: jobs are structured and verified by the offline heuristic, which \
             checks form and wording, not meaning. It is meant for trying clawrk out; set \
             OPENAI_API_KEY (and OPENAI_BASE_URL for a local OpenAI-compatible server) to run it \
             for real"
        );
    }
    if args.payments == Payments::Dev {
        tracing::warn!(
            "CLAWRK_PAYMENTS=dev: top-ups are credited without any payment and withdrawals go \
             nowhere. For local use only."
        );
    }
    let work = Arc::new(tokio::sync::Notify::new());
    let logs: Arc<clawrk_http::sse::LogHub> = Arc::default();
    let metrics = Arc::new(clawrk_http::metrics::Metrics::new(
        clawrk_http::metrics::ServerInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            store: opened.kind().into(),
            llm: if llm.api_key.is_some() {
                format!("llm:{}", llm.model)
            } else {
                "heuristic".into()
            },
            verification_workers: u32::try_from(args.verify_workers).unwrap_or(u32::MAX),
        },
    ));
    if let Some(probe) = opened.pool_probe() {
        metrics.set_pool_probe(probe);
    }
    let state = clawrk_http::AppState {
        work: work.clone(),
        rate_limit: clawrk_http::limit::RateLimit::per_second(args.rate_limit).map(Arc::new),
        market: market.clone(),
        watch: opened.watch(),
        logs: logs.clone(),
        cron_secret: args.cron_secret.clone().filter(|s| !s.is_empty()),
        metrics: metrics.clone(),
    };
    let grace = Duration::from_secs(args.shutdown_seconds);
    // Signals are ours, not actix's: shutdown has an order (below) that actix does not know.
    let mut server = actix_web::HttpServer::new(move || clawrk_http::app(state.clone()))
        .disable_signals()
        // A log stream writes each event as it happens, in small writes: with Nagle's algorithm
        // on, each waited for the client's delayed acknowledgement of the last (40 ms on Linux).
        .tcp_nodelay(true)
        .shutdown_timeout(args.shutdown_seconds);
    if let Some(n) = args.http_workers {
        server = server.workers(n.max(1));
    }
    let server = match server.bind(args.addr) {
        Ok(s) => s.run(),
        Err(e) => return fail(format!("cannot listen on {}: {e}", args.addr)),
    };
    let http = server.handle();
    let mut server = tokio::spawn(server);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers_n = usize::try_from(args.verify_workers).unwrap_or(4);
    let mut tasks = background::verification_workers(
        market.clone(),
        workers_n,
        work,
        stop_rx.clone(),
        metrics.clone(),
    );
    tasks.extend(background::webhook_workers(
        market.clone(),
        usize::try_from(args.webhook_workers).unwrap_or(1),
        Duration::from_secs_f64(args.webhook_retry_seconds),
        Duration::from_secs(args.webhook_timeout_seconds),
        stop_rx.clone(),
        metrics.clone(),
    ));
    tasks.extend(background::sweeper(
        market,
        metrics.clone(),
        Duration::from_secs(args.sweep_seconds),
        stop_rx,
    ));
    tracing::info!(addr = %args.addr, "listening");
    let ended_early = tokio::select! {
        r = &mut server => Some(r),
        signal = shutdown_signal() => {
            tracing::info!(%signal, grace_s = grace.as_secs(), "shutting down");
            None
        }
    };
    // Shutdown, within `grace`: background workers take no new work; log streams get their last
    // event (reconnect elsewhere); HTTP stops accepting and drains what is in flight; running
    // verifications finish. Anything cut short is resumed by another instance or after the
    // restart (leases lapse, nothing acknowledged is lost).
    let deadline = tokio::time::Instant::now() + grace;
    let _ = stop_tx.send(true);
    logs.close_all();
    // The HTTP server's own outcome (a task that panicked is an error too).
    let served = |r: Result<std::io::Result<()>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    };
    let result = match ended_early {
        Some(r) => served(r),
        None => {
            let _ = tokio::time::timeout_at(deadline, http.stop(true)).await;
            match tokio::time::timeout_at(deadline, &mut server).await {
                Ok(r) => served(r),
                Err(_) => {
                    server.abort();
                    Ok(())
                }
            }
        }
    };
    for t in tasks {
        if tokio::time::timeout_at(deadline, t).await.is_err() {
            tracing::warn!(
                "a verification was still running at the end of the shutdown grace; another instance resumes it when its lease lapses"
            );
        }
    }
    opened.shutdown();
    tracing::info!("clawrk stopped");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("server error: {e}")),
    }
}

/// Waits for SIGTERM or SIGINT and names it.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
