//! A private, throwaway PostgreSQL instance for tests that must stop, restart or kill the
//! database. The shared test server (`SUBSYNC_TEST_POSTGRES_URL`) is used by other tests at
//! the same time and must never be restarted, so fault tests bring their own: `initdb` into a
//! temp dir, `pg_ctl start` on a free loopback port, unix socket inside the temp dir, trust
//! authentication. Missing server binaries make the test FAIL with a message (never skip).
//!
//! PostgreSQL refuses to run as root; when the test runs as root every server command goes
//! through `runuser -u postgres --` and the temp dir is handed to that user.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The OS user the server runs as when the test itself runs as root.
const SERVER_USER: &str = "postgres";
/// Database the tests use inside the private instance.
pub const DATABASE: &str = "subsync";

/// A private PostgreSQL instance; stopped (immediately) and deleted on drop.
pub struct PgCluster {
    /// Temp dir holding `data/`, `sock/` and `server.log`.
    dir: PathBuf,
    bin: PathBuf,
    /// Loopback TCP port the server listens on.
    pub port: u16,
    /// Run server commands through `runuser -u postgres --` (we are root).
    as_postgres: bool,
}

/// Finds `initdb`/`pg_ctl`: `$SUBSYNC_PG_BIN` if set, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir`.
fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SUBSYNC_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("pg_ctl").exists().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (dir.join("initdb").exists() && dir.join("pg_ctl").exists()).then_some(dir)
}

fn is_root() -> bool {
    // `id -u` rather than libc: no extra dependency for one number.
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

impl PgCluster {
    /// `initdb`, start, and create database [`DATABASE`]. Panics with a message saying what
    /// is missing when the server cannot be had.
    pub async fn start() -> Self {
        let bin = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin \
                 or via pg_config: fault tests need a private instance they can restart. \
                 Install the PostgreSQL server (`bash scripts/ensure-postgres.sh`) or set SUBSYNC_PG_BIN."
            )
        });
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("subsync-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("sock")).expect("create cluster temp dir");
        if as_postgres {
            let out =
                Command::new("chown").args(["-R", &format!("{SERVER_USER}:"), &dir.display().to_string()]).output();
            assert!(
                out.as_ref().is_ok_and(|o| o.status.success()),
                "cannot hand {} to the `{SERVER_USER}` user (PostgreSQL refuses to run as root): {out:?}",
                dir.display()
            );
        }
        let cluster = Self { dir, bin, port: super::common::free_port(), as_postgres };
        let data = cluster.data_dir();
        let out = cluster.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
        );
        assert!(out.status.success(), "initdb failed:\n{}", describe(&out));
        // Enough connections for several subsync processes (16 each) plus the test's own.
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nmax_connections = 300\n\
             fsync = on\nlog_min_messages = warning\n",
            cluster.port,
            cluster.dir.join("sock").display()
        );
        let conf_path = Path::new(&data).join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
        cluster.start_server().await;
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
        let pool = sqlx::PgPool::connect(&admin).await.expect("connect to the private PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
            .execute(&pool)
            .await
            .expect("create database");
        pool.close().await;
        cluster
    }

    /// URL of the test database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn log_file(&self) -> String {
        self.dir.join("server.log").display().to_string()
    }

    /// Runs a server binary, capturing its output.
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        run_tool(&self.bin, self.as_postgres, tool, args)
    }

    /// Blocking `pg_ctl` on a blocking thread, so the test's async tasks (senders, probes)
    /// keep running while the server goes down or comes up.
    async fn pg_ctl(&self, args: Vec<String>) -> Output {
        let (bin, as_postgres) = (self.bin.clone(), self.as_postgres);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_tool(&bin, as_postgres, "pg_ctl", &args)
        })
        .await
        .expect("pg_ctl thread")
    }

    /// Starts the server and waits until it accepts connections. A start right after a
    /// kill can fail while the old children still hold shared memory: retried, bounded.
    pub async fn start_server(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self
                .pg_ctl(vec![
                    "start".into(),
                    "-D".into(),
                    self.data_dir(),
                    "-l".into(),
                    self.log_file(),
                    "-w".into(),
                    "-t".into(),
                    "30".into(),
                ])
                .await;
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pg_ctl start failed:\n{}\nserver log:\n{}",
                describe(&out),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops the server (`-m fast`: disconnects every client, checkpoints). While stopped,
    /// connections to the port are refused.
    pub async fn stop(&self) {
        let out = self
            .pg_ctl(vec!["stop".into(), "-D".into(), self.data_dir(), "-m".into(), "fast".into(), "-w".into()])
            .await;
        assert!(out.status.success(), "pg_ctl stop failed:\n{}", describe(&out));
    }

    /// `pg_ctl restart -m fast`: every client connection is cut, the server comes back.
    pub async fn restart(&self) {
        let out = self
            .pg_ctl(vec![
                "restart".into(),
                "-D".into(),
                self.data_dir(),
                "-m".into(),
                "fast".into(),
                "-l".into(),
                self.log_file(),
                "-w".into(),
                "-t".into(),
                "30".into(),
            ])
            .await;
        assert!(out.status.success(), "pg_ctl restart failed:\n{}\nserver log:\n{}", describe(&out), self.log_tail());
    }

    /// SIGKILLs the postmaster (a crash: crash recovery runs at the next start).
    pub async fn kill(&self) {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let pid =
            std::fs::read_to_string(&pid_file).ok().and_then(|t| t.lines().next().map(str::trim).map(String::from));
        let pid = pid.unwrap_or_else(|| panic!("no postmaster.pid in {}: server not running?", pid_file.display()));
        let status = Command::new("kill").args(["-KILL", &pid]).status().expect("run kill");
        assert!(status.success(), "kill -KILL {pid} failed");
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate: the data is thrown away anyway; bounded by pg_ctl's own wait (-t).
        let data = self.data_dir();
        let _ = self.run("pg_ctl", &["stop", "-D", &data, "-m", "immediate", "-w", "-t", "20"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a server binary (through `runuser -u postgres --` when we are root).
fn run_tool(bin: &Path, as_postgres: bool, tool: &str, args: &[&str]) -> Output {
    let exe = bin.join(tool);
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", SERVER_USER, "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.args(args).stdin(Stdio::null());
    cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
}

fn describe(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
