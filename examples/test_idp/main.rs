//! A test OpenID provider on 127.0.0.1, for `make run-auth` and manual tries. Never for production.
//!
//! `cargo run --example test_idp -- --port 9400 --options idp.json [--port-file F]`
//! where `idp.json` holds [`idp::IdpOptions`] (keys, users, clients, trusted issuers).

mod idp;

use std::time::Duration;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let Some(options) = arg("--options") else {
        eprintln!("usage: test_idp --port N --options FILE.json [--port-file F]");
        std::process::exit(64);
    };
    let text = std::fs::read_to_string(&options).unwrap_or_else(|e| {
        eprintln!("cannot read {options}: {e}");
        std::process::exit(64)
    });
    let opts: idp::IdpOptions = serde_json::from_str(&text).unwrap_or_else(|e| {
        eprintln!("{options}: {e}");
        std::process::exit(64)
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| {
            eprintln!("cannot bind 127.0.0.1:{port}: {e}");
            std::process::exit(1)
        });
    let idp = idp::Idp::start(listener, opts).await;
    if let Some(f) = arg("--port-file") {
        let _ = std::fs::write(f, idp.port.to_string());
    }
    println!("test IdP {} ready", idp.issuer);
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
