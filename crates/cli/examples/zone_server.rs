//! Serves zone files on 127.0.0.1 (UDP and TCP, one port) until killed, printing the
//! address on the first line. Each `NAME.zone` file is the zone NAME. Without arguments it
//! serves the audit fixture zones.
//!
//! `cargo run -p ses-dmarc --example zone_server -- [--port P] [DIR]`

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
    if args.len() > 1 {
        fail("give one directory of NAME.zone files");
    }
    let server = TestServer::start_zone_dir(std::path::Path::new(&args[0]), port)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", args[0])));
    println!("{}", server.addr());
    let _ = std::io::stdout().flush();
    eprintln!("serving {}", args[0]);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("zone_server: {message}");
    std::process::exit(2)
}
