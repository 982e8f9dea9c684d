//! The ceiling for any actix-web tracker on this machine: an actix-web server with the
//! same server settings as kpbt-tracker whose handler does no work (a fixed 36-byte
//! bencoded reply to every GET). scripts/bench-tracker.sh runs it beside kpbt-tracker so
//! each run shows how much of the framework's own rate the announce path keeps.
//!
//! `cargo run --release -p kpbt-tracker --example empty_actix -- 127.0.0.1:PORT [workers]`

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::{web, App, HttpResponse, HttpServer};

const REPLY: &[u8] = b"d8:completei0e10:incompletei0e5:peers0:e";

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    let workers = match args.next() {
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(w) => w.parse().unwrap_or_else(|_| usage()),
    };
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new().default_service(web::get().to(|| async {
                HttpResponse::Ok()
                    .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/plain")))
                    .body(REPLY)
            }))
        })
        .workers(workers)
        .backlog(4096)
        .keep_alive(Duration::from_secs(15))
        .bind(addr)?
        .run()
        .await
    })
}

fn usage() -> ! {
    eprintln!("usage: empty_actix ADDR [WORKERS]");
    std::process::exit(2);
}
