//! Keeps `docker-compose.yml`, `Dockerfile` and `docs/production.md` true to the `subsync`
//! binary, without docker: every command, flag and environment variable the deployment uses
//! is checked against the built binary's own `--help` (clap prints `[env: NAME…]` for each
//! setting), and every value against its own validation. A compose file is otherwise only
//! checked when someone deploys it; an unknown env var is silently ignored by the binary.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use yaml_rust2::{Yaml, YamlLoader};

const BIN: &str = env!("CARGO_BIN_EXE_subsync");

/// Environment variables the compose file may set on subsync services although clap does not
/// list them. Empty on purpose: every setting of the binary is a clap flag with an env
/// fallback (RUST_LOG included). (`HOSTNAME`, read for worker ids, is set by docker itself.)
const NON_CLAP_ENV: &[&str] = &[];

/// Secrets: they must come from the operator's environment with no default (`${NAME:?…}`),
/// never be written into the file.
const SECRETS: &[&str] = &["STRIPE_WEBHOOK_SECRET", "SUBSYNC_ADMIN_TOKEN"];

/// Stand-ins for required (`${NAME:?…}`) variables when the test runs the services' commands.
const DUMMIES: &[(&str, &str)] = &[
    ("STRIPE_WEBHOOK_SECRET", "whsec_compose_test_secret"),
    ("SUBSYNC_ADMIN_TOKEN", "compose-test-admin-token-0123456789"),
    ("SUBSYNC_APP_KEYS", "compose-test-app-key-0123456789"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("cannot read {file}: {e}"))
}

fn compose() -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read("docker-compose.yml"))
        .unwrap_or_else(|e| panic!("docker-compose.yml is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "docker-compose.yml must be one YAML document");
    docs.remove(0)
}

/// Fails with every problem at once, so one run shows all that needs fixing.
fn report(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  - {}", problems.join("\n  - "));
}

fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(y: &Yaml) -> Option<Vec<String>> {
    y.as_vec()?.iter().map(scalar).collect()
}

/// One service of the compose file that runs the subsync image.
struct Service<'a> {
    name: String,
    yaml: &'a Yaml,
    /// `command`, exec form.
    command: Vec<String>,
    /// `environment`, raw (before `${…}` interpolation), in file order.
    env: Vec<(String, String)>,
}

impl Service<'_> {
    fn env(&self, key: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| interpolate(v).unwrap_or_else(|e| panic!("service {}: {key}: {e}", self.name)))
    }

    /// The subcommand path (`["intake"]`, `["jobs", "list"]`): leading words before any flag.
    fn subcommand(&self) -> Vec<String> {
        self.command.iter().take_while(|a| !a.starts_with('-')).cloned().collect()
    }
}

/// The services built from this repository's Dockerfile (or tagged as its image).
fn subsync_services(doc: &Yaml) -> Vec<Service<'_>> {
    let services = doc["services"].as_hash().expect("docker-compose.yml has no `services:` mapping");
    let mut out = Vec::new();
    for (name, yaml) in services {
        let name = name.as_str().expect("service names are strings").to_string();
        let image = yaml["image"].as_str().unwrap_or("");
        if yaml["build"].is_badvalue() && !image.contains("subsync") {
            continue;
        }
        let command = match &yaml["command"] {
            Yaml::BadValue => Vec::new(),
            c => strings(c).unwrap_or_else(|| {
                panic!("service {name}: write `command` in exec form, a list of strings like [\"intake\"]")
            }),
        };
        let env = match &yaml["environment"] {
            Yaml::BadValue => Vec::new(),
            Yaml::Hash(h) => {
                h.iter().map(|(k, v)| (scalar(k).expect("env key"), scalar(v).unwrap_or_default())).collect()
            }
            Yaml::Array(a) => a
                .iter()
                .map(|e| {
                    let e = e.as_str().expect("environment list entries are strings");
                    let (k, v) = e.split_once('=').unwrap_or((e, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
            _ => panic!("service {name}: `environment` must be a mapping or a list"),
        };
        out.push(Service { name, yaml, command, env });
    }
    out
}

/// Compose's `${…}` interpolation as the file would see it with nothing set in the shell:
/// defaults (`:-`, `-`) apply and required variables (`:?`, `?`) get the test's stand-ins.
fn interpolate(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').ok_or_else(|| format!("unclosed ${{ in `{s}`"))?;
            let expr = &r[..end];
            rest = &r[end + 1..];
            let name_len = expr.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_len);
            if let Some(default) = op.strip_prefix(":-").or_else(|| op.strip_prefix('-')) {
                out.push_str(default);
            } else if op.starts_with(":?") || op.starts_with('?') {
                let dummy = DUMMIES.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                    format!("`${{{name}:?…}}` is required: add a stand-in to DUMMIES in tests/compose.rs")
                })?;
                out.push_str(dummy.1);
            } else if op.is_empty() {
                return Err(format!(
                    "`${{{name}}}` has no default and is not required (`:?`): compose would silently use an empty value"
                ));
            } else {
                return Err(format!("unsupported interpolation `${{{expr}}}`"));
            }
        } else {
            return Err(format!("bare `$` in `{s}`: write `${{NAME}}`, or `$$` for a literal dollar"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// What `subsync <path> --help` offers: long flags, and each env var with its flag.
struct Help {
    flags: BTreeSet<String>,
    env: BTreeMap<String, String>,
}

fn help(path: &[String]) -> Result<Help, String> {
    // A clean environment: clap prints the current value of a set variable, and the help
    // must not depend on the machine running the test.
    let out = Command::new(BIN).args(path).arg("--help").env_clear().output().expect("run subsync");
    if !out.status.success() {
        return Err(format!(
            "`subsync {} --help` failed ({}): {}",
            path.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut flags, mut env, mut last_flag) = (BTreeSet::new(), BTreeMap::new(), String::new());
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('-') {
            // `  -y, --yes` or `      --listen <LISTEN>`: the long flag of this option.
            if let Some(long) = trimmed.split([' ', ',']).find(|w| w.starts_with("--")) {
                last_flag = long.to_string();
                flags.insert(last_flag.clone());
            }
        }
        if let Some(i) = line.find("[env: ") {
            let name: String = line[i + 6..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            env.insert(name, last_flag.clone());
        }
    }
    Ok(Help { flags, env })
}

/// Runs `cmd` with `env` only, killing it after `limit`.
fn run_with_limit(args: &[String], env: &[(String, String)], limit: Duration) -> Result<Output, String> {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn subsync");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            return Err(format!(
                "still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child.wait_with_output().expect("wait"))
}

/// Compose short (`"127.0.0.1:8081:8081"`, `"8080"`) or long (`target:`, `host_ip:`) port
/// syntax as (host ip, container port).
fn published_ports(service: &Yaml) -> Vec<(Option<String>, u16)> {
    let Some(ports) = service["ports"].as_vec() else { return Vec::new() };
    ports
        .iter()
        .map(|p| match p {
            Yaml::Hash(_) => {
                (p["host_ip"].as_str().map(str::to_string), p["target"].as_i64().expect("ports: target") as u16)
            }
            _ => {
                let s = scalar(p).expect("ports entry");
                let s = s.split('/').next().unwrap_or_default();
                let parts: Vec<&str> = s.split(':').collect();
                let container =
                    parts.last().unwrap().parse().unwrap_or_else(|_| panic!("ports: `{s}` (ranges are not used here)"));
                let ip = (parts.len() == 3).then(|| parts[0].to_string());
                (ip, container)
            }
        })
        .collect()
}

/// `30s`, `1m30s`, `2m` → duration.
fn compose_duration(s: &str) -> Option<Duration> {
    let (mut total, mut number) = (0u64, String::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                n / 1000
            }
            ('h', _) => n * 3600,
            ('m', _) => n * 60,
            ('s', _) => n,
            _ => return None,
        };
    }
    number.is_empty().then_some(Duration::from_secs(total))
}

#[test]
fn compose_has_the_production_services_wired_in_order() {
    let doc = compose();
    let services = subsync_services(&doc);
    let mut problems = Vec::new();
    let get = |name: &str| services.iter().find(|s| s.name == name);

    // postgres: health-checked, data on a named volume, password from the environment.
    let pg = &doc["services"]["postgres"];
    if pg.is_badvalue() {
        problems.push("no `postgres` service".into());
    } else {
        let test = strings(&pg["healthcheck"]["test"]).unwrap_or_default().join(" ");
        if !test.contains("pg_isready") {
            problems.push("postgres: healthcheck must run pg_isready (the others wait for `service_healthy`)".into());
        }
        let volumes = strings(&pg["volumes"]).unwrap_or_default();
        let named = volumes
            .iter()
            .filter_map(|v| v.split_once(':').map(|(src, _)| src))
            .find(|src| !src.starts_with(['.', '/', '~']));
        match named {
            Some(v) if !doc["volumes"][v].is_badvalue() => {}
            Some(v) => problems.push(format!("postgres: volume `{v}` is not declared under top-level `volumes:`")),
            None => problems.push("postgres: keep the data in a named volume".into()),
        }
        let password = scalar(&pg["environment"]["POSTGRES_PASSWORD"]).unwrap_or_default();
        if !password.starts_with("${POSTGRES_PASSWORD") {
            problems.push(format!(
                "postgres: POSTGRES_PASSWORD must come from the environment (`${{POSTGRES_PASSWORD:-…}}`), not `{password}`"
            ));
        }
        // Every subsync service must reach this database with the credentials it was created
        // with (same user, same password default, same database).
        let pg_env = |k: &str| {
            scalar(&pg["environment"][k]).map(|v| interpolate(&v).unwrap_or_else(|e| panic!("postgres: {k}: {e}")))
        };
        let user = pg_env("POSTGRES_USER").unwrap_or_else(|| "postgres".into());
        let db = pg_env("POSTGRES_DB").unwrap_or_else(|| user.clone());
        let expected =
            format!("postgres://{user}:{}@postgres:5432/{db}", pg_env("POSTGRES_PASSWORD").unwrap_or_default());
        for s in &services {
            let url = s.env("DATABASE_URL");
            if url.as_deref() != Some(expected.as_str()) {
                problems.push(format!(
                    "{}: DATABASE_URL must be {expected} (the postgres service's user, password and database), found {url:?}",
                    s.name
                ));
            }
        }
    }

    for (name, command) in [("migrate", "migrate"), ("intake", "intake"), ("worker", "worker")] {
        match get(name) {
            None => problems.push(format!("no `{name}` service built from the Dockerfile")),
            Some(s) if s.subcommand() != [command] => {
                problems.push(format!("{name}: command must run `subsync {command}`, not {:?}", s.command))
            }
            Some(_) => {}
        }
    }

    let depends =
        |service: &str, on: &str| scalar(&doc["services"][service]["depends_on"][on]["condition"]).unwrap_or_default();
    if depends("migrate", "postgres") != "service_healthy" {
        problems.push("migrate: depends_on postgres with `condition: service_healthy`".into());
    }
    if scalar(&doc["services"]["migrate"]["restart"]).as_deref() != Some("no") {
        problems.push("migrate: one-shot, so `restart: \"no\"` (a restarted migrate would run forever)".into());
    }
    for name in ["intake", "worker"] {
        if depends(name, "migrate") != "service_completed_successfully" {
            problems.push(format!("{name}: depends_on migrate with `condition: service_completed_successfully`"));
        }
        if let Some(s) = get(name)
            && s.env("SUBSYNC_NO_MIGRATE").as_deref() != Some("true")
        {
            problems.push(format!("{name}: set SUBSYNC_NO_MIGRATE: \"true\" (the migrate service owns the schema)"));
        }
    }

    // Secrets are never written into the file.
    for s in &services {
        for (key, raw) in &s.env {
            if SECRETS.contains(&key.as_str()) && !(raw.starts_with(&format!("${{{key}:?")) && raw.ends_with('}')) {
                problems.push(format!("{}: {key} must be `${{{key}:?…}}` (required, no default), not `{raw}`", s.name));
            }
        }
    }

    // Listeners: bound to all interfaces inside the container, ports published to match.
    for s in &services {
        let mut listen_ports = BTreeMap::new();
        for (key, _) in s.env.iter().filter(|(k, _)| k.ends_with("_LISTEN")) {
            let value = s.env(key).unwrap_or_default();
            match value.parse::<SocketAddr>() {
                Ok(addr) if addr.ip().is_unspecified() => {
                    listen_ports.insert(addr.port(), key.clone());
                }
                Ok(_) => problems
                    .push(format!("{}: {key}={value} is unreachable from outside the container: bind 0.0.0.0", s.name)),
                Err(_) => problems
                    .push(format!("{}: {key}={value} is not an ip:port (the binary takes no host names)", s.name)),
            }
        }
        for (ip, port) in published_ports(s.yaml) {
            match listen_ports.get(&port).map(String::as_str) {
                None => problems.push(format!(
                    "{}: publishes container port {port}, which none of its *_LISTEN settings uses",
                    s.name
                )),
                Some("SUBSYNC_ADMIN_LISTEN") if ip.as_deref() != Some("127.0.0.1") => {
                    problems.push(format!(
                        "{}: the admin port {port} must be published on 127.0.0.1 only (`127.0.0.1:{port}:{port}`)",
                        s.name
                    ));
                }
                Some(_) => {}
            }
        }
    }
    if let Some(intake) = get("intake") {
        let ports: Vec<u16> = published_ports(intake.yaml).into_iter().map(|(_, p)| p).collect();
        let listen = intake.env("SUBSYNC_LISTEN").and_then(|v| v.parse::<SocketAddr>().ok());
        match listen {
            Some(addr) if ports.contains(&addr.port()) => {
                let test = strings(&intake.yaml["healthcheck"]["test"]).unwrap_or_default().join(" ");
                if !test.contains("/readyz") || !test.contains(&addr.port().to_string()) {
                    problems.push(format!("intake: healthcheck must ask /readyz on port {}", addr.port()));
                }
            }
            _ => problems.push("intake: set SUBSYNC_LISTEN=0.0.0.0:<port> and publish that port".into()),
        }
        if intake.env("SUBSYNC_ADMIN_TOKEN").is_none() {
            problems.push("intake: set SUBSYNC_ADMIN_TOKEN, or the admin listener does not start".into());
        }
    }

    // Workers: replicated, so no fixed name or host port; docker waits for their shutdown grace.
    if let Some(worker) = get("worker") {
        let replicas = worker.yaml["deploy"]["replicas"].as_i64().unwrap_or(1);
        if replicas < 2 {
            problems.push(format!("worker: deploy.replicas is {replicas}; run several (they share the queue)"));
        }
        if !worker.yaml["container_name"].is_badvalue() || !worker.yaml["ports"].is_badvalue() {
            problems.push("worker: replicas cannot share a container_name or host ports".into());
        }
        let grace: u64 =
            worker.env("SUBSYNC_SHUTDOWN_GRACE").map_or(20, |g| g.parse().expect("SUBSYNC_SHUTDOWN_GRACE"));
        let stop = scalar(&worker.yaml["stop_grace_period"])
            .map(|s| compose_duration(&s).unwrap_or_else(|| panic!("stop_grace_period `{s}`")));
        if stop.unwrap_or(Duration::from_secs(10)) <= Duration::from_secs(grace) {
            problems.push(format!("worker: stop_grace_period ({stop:?}, default 10s) must exceed SUBSYNC_SHUTDOWN_GRACE ({grace}s), or docker kills jobs mid-run"));
        }
    }
    report("docker-compose.yml", problems);
}

#[test]
fn compose_commands_flags_and_env_exist_in_the_binary() {
    let doc = compose();
    let mut problems = Vec::new();
    for s in subsync_services(&doc) {
        match strings(&s.yaml["entrypoint"]) {
            None if s.yaml["entrypoint"].is_badvalue() => {}
            Some(e) if e.len() == 1 && (e[0] == "subsync" || e[0].ends_with("/subsync")) => {}
            _ => problems.push(format!("{}: leave `entrypoint` to the image (subsync)", s.name)),
        }
        if s.subcommand().is_empty() {
            problems.push(format!(
                "{}: `command` must name a subcommand (the image's default is `serve`, not for production)",
                s.name
            ));
            continue;
        }
        let help = match help(&s.subcommand()) {
            Ok(h) => h,
            Err(e) => {
                problems.push(format!("{}: {e}", s.name));
                continue;
            }
        };
        for arg in s.command.iter().filter(|a| a.starts_with("--")) {
            let flag = arg.split('=').next().unwrap();
            if !help.flags.contains(flag) {
                problems.push(format!("{}: `subsync {}` has no flag {flag}", s.name, s.subcommand().join(" ")));
            }
        }
        for (key, _) in &s.env {
            if !help.env.contains_key(key) && !NON_CLAP_ENV.contains(&key.as_str()) {
                problems.push(format!(
                    "{}: environment variable {key} is not read by `subsync {}` (its --help lists {:?}); the binary would silently ignore it",
                    s.name,
                    s.subcommand().join(" "),
                    help.env.keys().collect::<Vec<_>>()
                ));
            }
        }
    }
    report("docker-compose.yml against the subsync binary", problems);
}

#[test]
fn compose_settings_pass_the_binarys_own_validation() {
    // Each service's exact command and environment, with the database pointed at a closed
    // port: the binary parses and checks every flag value (clap's parsers, listen addresses,
    // the webhook secret, worker settings) before it connects, so reaching "cannot open the
    // database" proves the configuration is accepted. (The admin token and admin address are
    // checked after connecting; the first is a stand-in here, the second is checked above.)
    let doc = compose();
    let mut problems = Vec::new();
    for s in subsync_services(&doc) {
        let mut env: Vec<(String, String)> = Vec::new();
        for (key, _) in &s.env {
            let value = s.env(key).unwrap();
            if key == "DATABASE_URL" {
                if !value.starts_with("postgres://") {
                    problems.push(format!(
                        "{}: DATABASE_URL must be the PostgreSQL service (postgres://…), not `{value}`",
                        s.name
                    ));
                }
                continue;
            }
            env.push((key.clone(), value));
        }
        env.push(("DATABASE_URL".into(), "postgres://subsync:x@127.0.0.1:1/subsync".into()));
        env.push(("SUBSYNC_DB_TIMEOUT".into(), "1".into()));
        match run_with_limit(&s.command, &env, Duration::from_secs(30)) {
            Err(e) => problems.push(format!("{}: `subsync {}` {e}", s.name, s.command.join(" "))),
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                if out.status.success() || !stderr.contains("cannot open the database") {
                    problems.push(format!(
                        "{}: `subsync {}` rejected its configuration ({}): {}",
                        s.name,
                        s.command.join(" "),
                        out.status,
                        stderr.trim()
                    ));
                }
            }
        }
    }
    report("docker-compose.yml settings", problems);
}

/// The instructions of a Dockerfile, continuation lines joined, comments dropped, grouped by stage.
fn dockerfile_stages(text: &str) -> Vec<Vec<(String, String)>> {
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let full = std::mem::take(&mut current);
        let (instr, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let instr = instr.to_ascii_uppercase();
        if instr == "FROM" {
            stages.push(Vec::new());
        }
        stages.last_mut().expect("the Dockerfile starts with FROM").push((instr, args.trim().to_string()));
    }
    stages
}

fn exec_form(args: &str) -> Option<Vec<String>> {
    let inner = args.trim().strip_prefix('[')?.strip_suffix(']')?;
    inner.split(',').map(|p| p.trim().strip_prefix('"')?.strip_suffix('"').map(str::to_string)).collect()
}

#[test]
fn dockerfile_runs_subsync_as_non_root_and_exposes_the_published_ports() {
    let stages = dockerfile_stages(&read("Dockerfile"));
    let mut problems = Vec::new();
    let last = stages.last().expect("the Dockerfile has no FROM");
    let all = |instr: &'static str| last.iter().filter(move |(i, _)| i == instr).map(|(_, a)| a.as_str());

    match all("USER").next_back().map(|u| u.split(':').next().unwrap_or_default().to_string()) {
        None => problems.push("final stage: no USER line; the process would run as root".into()),
        Some(u) if u == "root" || u == "0" => problems.push(format!("final stage: USER {u} is root")),
        Some(_) => {}
    }

    let entrypoint = all("ENTRYPOINT").next_back().and_then(exec_form);
    match entrypoint.as_deref() {
        Some([bin]) if bin == "subsync" || bin.ends_with("/subsync") => {
            // A bare name must be found on PATH: the binary is copied into /usr/local/bin.
            let copied = all("COPY").any(|a| a.ends_with("/usr/local/bin/subsync") || a.ends_with("/usr/local/bin/"));
            if bin == "subsync" && !copied {
                problems.push("final stage: ENTRYPOINT [\"subsync\"] but no COPY puts it in /usr/local/bin".into());
            }
        }
        _ => problems.push(format!(
            "final stage: ENTRYPOINT must be the exec form [\"subsync\"], found {:?}",
            all("ENTRYPOINT").next_back()
        )),
    }

    let exposed: BTreeSet<u16> =
        all("EXPOSE").flat_map(|a| a.split_whitespace()).filter_map(|p| p.split('/').next()?.parse().ok()).collect();
    let doc = compose();
    for s in subsync_services(&doc) {
        for (_, port) in published_ports(s.yaml) {
            if !exposed.contains(&port) {
                problems.push(format!(
                    "compose service {} publishes {port}, which the Dockerfile does not EXPOSE ({exposed:?})",
                    s.name
                ));
            }
        }
    }

    // The builder's toolchain must satisfy the workspace's rust-version.
    let wanted = read("Cargo.toml")
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("rust-version")
                .map(|v| v.trim_start_matches([' ', '=']).trim_matches('"').to_string())
        })
        .expect("rust-version in Cargo.toml");
    let version = |v: &str| -> Vec<u32> { v.split('.').map_while(|p| p.parse().ok()).collect() };
    let rust = stages.iter().filter_map(|s| s.first()).find_map(|(_, a)| a.strip_prefix("rust:"));
    match rust.map(|tag| version(tag.split('-').next().unwrap_or_default())) {
        Some(v) if v.len() >= 2 && v >= version(&wanted) => {}
        _ => problems
            .push(format!("the build stage must use a rust:<version> image with version >= {wanted}, found {rust:?}")),
    }
    if !stages.iter().flatten().any(|(i, a)| i == "RUN" && a.contains("cargo build --release --locked -p subsync-cli"))
    {
        problems.push("the build stage must run `cargo build --release --locked -p subsync-cli`".into());
    }
    report("Dockerfile", problems);
}

#[test]
fn production_doc_lists_every_setting() {
    let doc = read("docs/production.md");
    // Every flag that has an env fallback, and that env var, of every long-running command.
    let mut missing: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for command in ["serve", "intake", "worker", "migrate"] {
        let help = help(&[command.to_string()]).unwrap_or_else(|e| panic!("{e}"));
        for (env, flag) in &help.env {
            for name in [env, flag] {
                if !doc.contains(&format!("`{name}`")) {
                    missing.entry(name.clone()).or_default().insert(command);
                }
            }
        }
    }
    let problems = missing
        .iter()
        .map(|(name, commands)| {
            format!(
                "`{name}` (subsync {}) is missing from the settings table",
                commands.iter().copied().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    report("docs/production.md", problems);
}
