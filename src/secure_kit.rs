//! Servers for the security tests: throwaway certificates made with the
//! `openssl` CLI, a Tansu broker that requires SASL/SCRAM, and a private
//! ClickHouse that serves HTTPS. Each lives in its own directory under
//! `target/test-secure/` and is stopped and removed when dropped.
//!
//! Tansu 0.6.0 cannot serve TLS itself: its `--cert` and `--key` flags are
//! in one clap group, so they cannot be given together, and the broker never
//! wraps accepted connections in the acceptor it builds
//! (`tansu-broker` 0.6.0 `broker.rs`: `let _acceptor = ...`). TLS in front of
//! it is therefore terminated by the test itself (see
//! `tests/kafka_security.rs`), which advertises that TLS address, so the
//! client speaks TLS and SASL end to end and the broker checks the SCRAM
//! proof.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::testkit::{free_port, workspace_root};

/// A fresh directory under `target/test-secure/`.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = workspace_root()
        .join("target/test-secure")
        .join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl CLI runs");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A test certificate authority and certificates it signed, as PEM files.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    /// The CA certificate clients are told to trust.
    pub ca: PathBuf,
    /// Server certificate for `localhost` and `127.0.0.1`, and its key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A server certificate, signed by the same CA, for `broker.invalid`
    /// only: hostname verification must refuse it at 127.0.0.1.
    pub wrong_host_cert: PathBuf,
    pub wrong_host_key: PathBuf,
    /// A client certificate for mutual TLS and its key, encrypted with
    /// [`Pki::CLIENT_KEY_PASSWORD`].
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Another CA, which signed nothing the servers use.
    pub other_ca: PathBuf,
}

impl Pki {
    pub const CLIENT_KEY_PASSWORD: &'static str = "client-key-pass-5ff1";

    /// Makes a CA, server and client certificates in `dir`, valid for two days.
    pub fn generate(dir: &Path) -> Self {
        let ca = |name: &str, cn: &str| {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-sha256",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={cn}"),
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        };
        ca("ca", "Centile Test CA");
        ca("other-ca", "Some Other CA");
        let leaf = |name: &str, cn: &str, extensions: &str| {
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-sha256",
                    "-subj",
                    &format!("/CN={cn}"),
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            std::fs::write(dir.join(format!("{name}.ext")), extensions).expect("extensions");
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-sha256",
                    "-days",
                    "2",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        };
        leaf(
            "server",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        );
        leaf(
            "wrong-host",
            "broker.invalid",
            "subjectAltName=DNS:broker.invalid\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        );
        leaf(
            "client",
            "centile-client",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
        );
        openssl(
            dir,
            &[
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-in",
                "client.key",
                "-out",
                "client-encrypted.key",
                "-passout",
                &format!("pass:{}", Self::CLIENT_KEY_PASSWORD),
            ],
        );
        Self {
            dir: dir.to_owned(),
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            wrong_host_cert: dir.join("wrong-host.pem"),
            wrong_host_key: dir.join("wrong-host.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client-encrypted.key"),
            other_ca: dir.join("other-ca.pem"),
        }
    }
}

fn tansu_bin() -> String {
    std::env::var("CENTILE_TANSU_BIN").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        let cargo = PathBuf::from(home).join(".cargo/bin/tansu");
        if cargo.exists() {
            cargo.display().to_string()
        } else {
            "tansu".to_owned()
        }
    })
}

fn wait_listening(port: u16, what: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening on {port}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A SCRAM user of a [`ScramBroker`].
#[derive(Debug, Clone)]
pub struct ScramUser {
    pub name: String,
    pub password: String,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: &'static str,
}

impl ScramUser {
    pub fn new(name: &str, password: &str, mechanism: &'static str) -> Self {
        assert!(
            matches!(mechanism, "SCRAM-SHA-256" | "SCRAM-SHA-512"),
            "{mechanism}"
        );
        Self {
            name: name.to_owned(),
            password: password.to_owned(),
            mechanism,
        }
    }

    fn tansu_mechanism(&self) -> &'static str {
        if self.mechanism == "SCRAM-SHA-256" {
            "scram256"
        } else {
            "scram512"
        }
    }
}

/// A Tansu broker of a test's own (sqlite storage) that requires SASL
/// authentication, with SCRAM users created before it started requiring it.
///
/// `tansu user create` sends AlterUserScramCredentials without
/// authenticating, which an authenticating broker refuses; so the broker
/// first runs without `--authentication` on the same storage, the users are
/// created, and it is restarted with it.
#[derive(Debug)]
pub struct ScramBroker {
    /// Where the broker listens (plain TCP; a test puts TLS in front).
    pub port: u16,
    /// The address the broker advertises in metadata: the test's TLS port.
    pub advertised_port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl ScramBroker {
    pub fn start(name: &str, advertised_port: u16, users: &[ScramUser]) -> Self {
        let mut broker = Self {
            port: free_port(),
            advertised_port,
            dir: scratch_dir(&format!("broker-{name}")),
            child: None,
        };
        broker.spawn(false);
        for user in users {
            let output = Command::new(tansu_bin())
                .args([
                    "user",
                    "create",
                    "--broker",
                    &format!("tcp://127.0.0.1:{}", broker.port),
                    &user.name,
                    &user.password,
                    "--mechanism",
                    user.tansu_mechanism(),
                ])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .output()
                .expect("tansu user create runs");
            assert!(
                output.status.success(),
                "tansu user create {}: {}",
                user.name,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        stop(broker.child.as_mut().expect("running"));
        broker.spawn(true);
        broker
    }

    fn spawn(&mut self, authentication: bool) {
        let log_path = self.dir.join("tansu.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("broker log");
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised_port);
        let mut command = Command::new(tansu_bin());
        command
            .current_dir(&self.dir)
            .args([
                "broker",
                "--cluster-id",
                "centile-secure-test",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &advertised,
                // Relative to the working directory, as Tansu 0.6 resolves it.
                "--storage-engine",
                "sqlite://tansu.db",
                "--silent",
            ])
            .env("RUST_LOG", "warn")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("SCHEMA_REGISTRY")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        if authentication {
            command.arg("--authentication");
        }
        let mut child = command.spawn().expect("tansu starts");
        wait_listening(self.port, "tansu", &mut child, &log_path);
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default()
    }
}

impl Drop for ScramBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A ClickHouse server of a test's own, serving HTTPS with a test
/// certificate (and plain HTTP, for the test's own checks), with a
/// password-protected user `centile`.
#[derive(Debug)]
pub struct PrivateClickHouse {
    pub http_port: u16,
    pub https_port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl PrivateClickHouse {
    pub const USER: &'static str = "centile";
    pub const PASSWORD: &'static str = "ch-pass-8c2e";

    pub fn start(name: &str, cert: &Path, key: &Path) -> Self {
        let dir = scratch_dir(&format!("clickhouse-{name}"));
        let (http_port, https_port, tcp_port) = (free_port(), free_port(), free_port());
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>{dir}/clickhouse-server.log</log>
        <errorlog>{dir}/clickhouse-server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <https_port>{https_port}</https_port>
    <tcp_port>{tcp_port}</tcp_port>
    <openSSL>
        <server>
            <certificateFile>{cert}</certificateFile>
            <privateKeyFile>{key}</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>{data}/</path>
    <tmp_path>{data}/tmp/</tmp_path>
    <user_files_path>{data}/user_files/</user_files_path>
    <format_schema_path>{data}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
"#,
            dir = dir.display(),
            data = data.display(),
            cert = cert.display(),
            key = key.display(),
        );
        std::fs::write(dir.join("config.xml"), config).expect("config.xml");
        let password_sha256 = {
            use std::io::Write;
            let mut child = Command::new("sha256sum")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("sha256sum runs");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(Self::PASSWORD.as_bytes())
                .expect("write");
            let output = child.wait_with_output().expect("sha256sum");
            String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .next()
                .expect("hash")
                .to_owned()
        };
        let users = format!(
            r#"<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <{user}>
            <password_sha256_hex>{password_sha256}</password_sha256_hex>
            <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </{user}>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#,
            user = Self::USER,
        );
        std::fs::write(dir.join("users.xml"), users).expect("users.xml");
        let log_path = dir.join("stdout.log");
        let log = std::fs::File::create(&log_path).expect("log");
        let mut child = Command::new(clickhouse_server())
            .arg(format!(
                "--config-file={}",
                dir.join("config.xml").display()
            ))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("clickhouse-server starts (apt install clickhouse-server)");
        wait_listening(https_port, "clickhouse-server", &mut child, &log_path);
        wait_listening(http_port, "clickhouse-server", &mut child, &log_path);
        Self {
            http_port,
            https_port,
            dir,
            child: Some(child),
        }
    }

    /// `https://<host>:<https_port>`.
    pub fn https_url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.https_port)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}

fn clickhouse_server() -> String {
    ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"]
        .iter()
        .find(|p| Path::new(p).exists())
        .map_or_else(|| "clickhouse-server".to_owned(), |p| (*p).to_owned())
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
