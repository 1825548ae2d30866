//! Serves zone files on 127.0.0.1 (UDP and TCP, one port) until killed, printing the
//! address on the first line. Each `NAME.zone` file is the zone NAME. Without arguments it
//! serves the audit fixture zones.
//!
//! `cargo run -p ses-dmarc --example zone_server -- [--port P] [DIR]...`

use ses_dmarc_dns::testing::TestServer;
use std::io::Write;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let port = match args.iter().position(|a| a == "--port") {
        Some(i) if i + 1 < args.len() => {
            let p = args.remove(i + 1);
            args.remove(i);
            p.parse::<u16>().unwrap_or_else(|_| fail(&format!("--port {p}: not a port number")))
        }
        Some(_) => fail("--port needs a number"),
        None => 0,
    };
    if args.is_empty() {
        args.push(concat!(env!("CARGO_MANIFEST_DIR"), "/../audit/tests/fixtures/zones").to_string());
    }
    let mut zones = Vec::new();
    for dir in &args {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("{dir}: {e}")));
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".zone")) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
            zones.push((format!("{name}."), text));
        }
    }
    let refs: Vec<(&str, &str)> = zones.iter().map(|(o, t)| (o.as_str(), t.as_str())).collect();
    let server = TestServer::start_on_port(&refs, port).unwrap_or_else(|e| fail(&e.to_string()));
    println!("{}", server.addr());
    let _ = std::io::stdout().flush();
    eprintln!("serving {} zones", zones.len());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("zone_server: {message}");
    std::process::exit(2)
}
