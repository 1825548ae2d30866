//! A real IMAP server for tests: Debian's Dovecot, started unprivileged on loopback with
//! random ports and a configuration in a temporary folder, over TLS with a certificate
//! from a throw-away CA (made with the `openssl` command); stopped when dropped. Mail is
//! put in place as Maildir files, as a delivery agent would.

use crate::TempDir;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Dovecot.
#[derive(Debug)]
pub struct Dovecot {
    child: Child,
    dir: TempDir,
    /// The implicit-TLS port (IMAPS).
    pub tls_port: u16,
    /// The plain port (STARTTLS, or no TLS).
    pub plain_port: u16,
    /// The CA that signed the server's certificate (PEM), for `ca_file`.
    pub ca_file: PathBuf,
    owner: Option<(u32, u32)>,
}

/// Extra settings for a Dovecot.
#[derive(Debug, Clone, Default)]
pub struct DovecotOptions {
    /// Capabilities to announce instead of Dovecot's own (`IMAP4rev1 UIDPLUS` to hide MOVE).
    pub capabilities: Option<String>,
    /// XOAUTH2 and OAUTHBEARER sign-in too: a second passdb (`driver = oauth2`) POSTs each
    /// token (`token=...`) to this introspection URL and takes a JSON answer
    /// `{"active":true,"username":"..."}`. The users still log in with their passwords
    /// (PLAIN, LOGIN) from the first passdb.
    pub oauth2_introspection_url: Option<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim())) }
}

fn id(flag: &str, name: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn chown_all(path: &Path, owner: Option<(u32, u32)>) {
    let Some((uid, gid)) = owner else { return };
    let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            chown_all(&e.path(), owner);
        }
    }
}

impl Dovecot {
    /// Starts Dovecot with these users (name, password). `Err` says why it cannot run
    /// (Dovecot or openssl missing, a start that failed).
    pub fn start(users: &[(&str, &str)], options: &DovecotOptions) -> Result<Dovecot, String> {
        let binary = ["/usr/sbin/dovecot", "/usr/bin/dovecot"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("dovecot is not installed (Debian: apt-get install dovecot-imapd; scripts/test does it)")?;
        let dir = TempDir::new("dovecot");
        let d = dir.path();
        for sub in ["mail", "run", "state"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| e.to_string())?;
        }
        let p = |name: &str| d.join(name).display().to_string();
        run(Command::new("openssl").args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]).args([
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-subj",
            "/CN=ses-dmarc test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]))?;
        run(Command::new("openssl").args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"]).args([
            "-keyout",
            &p("leaf.key"),
            "-out",
            &p("leaf.csr"),
        ]))?;
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| e.to_string())?;
        run(Command::new("openssl").args(["x509", "-req", "-days", "2", "-CAcreateserial"]).args([
            "-in",
            &p("leaf.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-out",
            &p("leaf.pem"),
            "-extfile",
            &p("ext.cnf"),
        ]))?;
        let passwd: String = users.iter().map(|(u, pw)| format!("{u}:{{PLAIN}}{pw}\n")).collect();
        std::fs::write(d.join("passwd"), passwd).map_err(|e| e.to_string())?;
        // As root, Dovecot runs as `nobody`; otherwise as the user running the tests.
        let root = Command::new("id").arg("-u").output().ok().is_some_and(|o| o.stdout.starts_with(b"0\n"));
        let (user, group, owner) = if root {
            let uid = id("-u", "nobody").ok_or("no user `nobody` on this machine")?;
            let gid = id("-g", "nobody").ok_or("no group for `nobody`")?;
            let group = String::from_utf8_lossy(
                &Command::new("id").args(["-gn", "nobody"]).output().map_err(|e| e.to_string())?.stdout,
            )
            .trim()
            .to_string();
            ("nobody".to_string(), group, Some((uid, gid)))
        } else {
            let out = |args: &[&str]| {
                Command::new("id").args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            };
            (out(&["-un"]).map_err(|e| e.to_string())?, out(&["-gn"]).map_err(|e| e.to_string())?, None)
        };
        let (tls_port, plain_port) = (free_port(), free_port());
        let capability = options.capabilities.as_ref().map(|c| format!("imap_capability = {c}\n")).unwrap_or_default();
        // Passwords only through the passwd-file; tokens only through the oauth2 passdb.
        let (mechanisms, passwd_mechanisms, oauth2_passdb) = match options.oauth2_introspection_url.as_deref() {
            None => ("plain login", "", String::new()),
            Some(url) => {
                std::fs::write(
                    d.join("oauth2.conf.ext"),
                    format!(
                        "introspection_mode = post\nintrospection_url = {url}\nforce_introspection = yes\n\
                         username_attribute = username\nactive_attribute = active\nactive_value = true\n\
                         timeout_msecs = 10000\n"
                    ),
                )
                .map_err(|e| e.to_string())?;
                (
                    "plain login xoauth2 oauthbearer",
                    "  mechanisms = plain login\n",
                    format!(
                        "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\n",
                        p("oauth2.conf.ext")
                    ),
                )
            }
        };
        let config = format!(
            "base_dir = {run}\nstate_dir = {state}\nlog_path = {log}\ninfo_log_path = {log}\nprotocols = imap\n\
             listen = 127.0.0.1\nssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\ndisable_plaintext_auth = no\n\
             auth_mechanisms = {mechanisms}\npassdb {{\n  driver = passwd-file\n{passwd_mechanisms}  args = {passwd}\n}}\n\
             {oauth2_passdb}\
             userdb {{\n  driver = static\n  args = uid={user} gid={group} home={mail}/%u\n}}\n\
             mail_location = maildir:{mail}/%u\ndefault_internal_user = {user}\ndefault_login_user = {user}\n\
             default_internal_group = {group}\n{capability}\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = {plain_port}\n  }}\n\
             inet_listener imaps {{\n    port = {tls_port}\n    ssl = yes\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\nservice stats {{\n  chroot =\n}}\n",
            run = p("run"),
            state = p("state"),
            log = p("dovecot.log"),
            cert = p("leaf.pem"),
            key = p("leaf.key"),
            passwd = p("passwd"),
            mail = p("mail"),
        );
        std::fs::write(d.join("dovecot.conf"), config).map_err(|e| e.to_string())?;
        chown_all(d, owner);
        let mut cmd = if let Some((uid, gid)) = owner {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups").arg(binary);
            c
        } else {
            Command::new(binary)
        };
        let child = cmd
            .args(["-F", "-c"])
            .arg(d.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start dovecot: {e}"))?;
        let ca_file = d.join("ca.pem");
        let dovecot = Dovecot { child, dir, tls_port, plain_port, ca_file, owner };
        let user = users.first().ok_or("give at least one user")?;
        dovecot.wait_for_login(user.0, user.1)?;
        Ok(dovecot)
    }

    /// Waits until a real LOGIN works (the port alone opens before logins do).
    fn wait_for_login(&self, user: &str, password: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.try_login(user, password) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default();
        Err(format!("dovecot did not accept a login in 30 s ({last}); its log:\n{log}"))
    }

    fn try_login(&self, user: &str, password: &str) -> Result<(), String> {
        let stream = TcpStream::connect(("127.0.0.1", self.plain_port)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        (&stream)
            .write_all(format!("a LOGIN {user} {password}\r\nb LOGOUT\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("connection closed".into());
            }
            if line.starts_with("a OK") {
                return Ok(());
            }
            if line.starts_with("a ") {
                return Err(line.trim().to_string());
            }
        }
    }

    /// A folder's Maildir (`INBOX` is the user's Maildir itself; `A/B` is `.A.B`).
    pub fn maildir(&self, user: &str, folder: &str) -> PathBuf {
        let base = self.dir.join("mail").join(user);
        if folder.eq_ignore_ascii_case("INBOX") { base } else { base.join(format!(".{}", folder.replace('/', "."))) }
    }

    /// Puts a message into a folder, as a delivery agent would (tmp/, then new/).
    pub fn deliver(&self, user: &str, folder: &str, name: &str, message: &[u8]) {
        let dir = self.maildir(user, folder);
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create the Maildir");
        }
        let tmp = dir.join("tmp").join(name);
        std::fs::write(&tmp, message).expect("write the message");
        let new = dir.join("new").join(name);
        std::fs::rename(&tmp, &new).expect("deliver the message");
        // Only what this delivery made: a walk of the whole tree would make N deliveries N².
        if let Some((uid, gid)) = self.owner {
            let user_dir = self.dir.join("mail").join(user);
            let mut paths = vec![self.dir.join("mail"), user_dir.clone(), dir.clone(), new];
            paths.extend(["tmp", "new", "cur"].iter().map(|s| dir.join(s)));
            for p in paths {
                let _ = std::os::unix::fs::chown(p, Some(uid), Some(gid));
            }
        }
    }

    /// Marks a delivered message seen, as a mail client would (new/NAME to cur/NAME:2,S).
    pub fn mark_seen(&self, user: &str, folder: &str, name: &str) {
        let dir = self.maildir(user, folder);
        std::fs::rename(dir.join("new").join(name), dir.join("cur").join(format!("{name}:2,S")))
            .expect("mark the message seen");
    }

    /// Dovecot's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    /// The messages in a folder (new and cur), each with its Maildir flags (`S` seen).
    pub fn messages(&self, user: &str, folder: &str) -> Vec<(Vec<u8>, String)> {
        let dir = self.maildir(user, folder);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let flags = name.split_once(":2,").map(|(_, f)| f.to_string()).unwrap_or_default();
                if let Ok(body) = std::fs::read(e.path()) {
                    out.push((body, flags));
                }
            }
        }
        out
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children; SIGKILL if it does not go.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
