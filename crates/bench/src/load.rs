//! A webhook load generator: signed, Stripe-shaped events sent over loopback with bounded
//! count, concurrency and time. It refuses any target that is not on this machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use subsync_stripe::signature::{Secret, sign};

use crate::payload::Payload;

/// Options of `subsync-bench load`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Webhook URL; must be on loopback (127.0.0.0/8, localhost or [::1]).
    #[arg(long, default_value = "http://127.0.0.1:8080/webhooks/stripe")]
    pub url: String,
    /// The endpoint's signing secret.
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Requests to send (at most 1,000,000).
    #[arg(long, default_value_t = 10_000)]
    pub requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Stop after this many seconds whatever is left.
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
    /// Share of requests that repeat an earlier event, in percent.
    #[arg(long, default_value_t = 0)]
    pub duplicate_percent: u64,
    /// Event body: the whole subscription as Stripe sends it, or only the fields read.
    #[arg(long, value_enum, default_value_t = Payload::Realistic)]
    pub payload: Payload,
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: u64,
    pub ok: u64,
    pub duplicates: u64,
    pub non_2xx: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

/// Refuses anything but loopback targets.
pub fn check_loopback(url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("bad --url `{url}`: {e}"))?;
    let host = parsed.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("refusing to send load to `{url}`: only loopback targets (127.0.0.1, localhost, [::1]) are allowed");
    }
    Ok(())
}

/// Sends the load and reports.
pub async fn run_load(args: &Args) -> Result<Report> {
    check_loopback(&args.url)?;
    if args.requests == 0 || args.requests > 1_000_000 || args.concurrency == 0 || args.concurrency > 1024 {
        bail!("--requests must be 1..=1000000 and --concurrency 1..=1024");
    }
    let secret = Arc::new(Secret::parse(&args.secret)?);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds.max(1));
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    // Parsed once: the generator should spend its CPU on requests, not on re-reading the URL.
    let url = reqwest::Url::parse(&args.url)?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, secret, next, run, args, url) =
            (client.clone(), secret.clone(), next.clone(), run.clone(), args.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut report = Report::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.requests || Instant::now() > deadline {
                    return report;
                }
                let n = if args.duplicate_percent > 0 && i > 0 && fastrand::u64(0..100) < args.duplicate_percent {
                    fastrand::u64(0..i)
                } else {
                    i
                };
                let body = args.payload.body(&format!("evt_{run}_{n}"), &format!("sub_load_{}", n % 2000));
                let header = sign(&secret, chrono::Utc::now().timestamp(), &body);
                let t0 = Instant::now();
                let result = client
                    .post(url.clone())
                    .header("content-type", "application/json")
                    .header("stripe-signature", header)
                    .body(body)
                    .send()
                    .await;
                report.sent += 1;
                match result {
                    Ok(resp) if resp.status().is_success() => {
                        let duplicate = resp.text().await.map(|t| t.contains("\"duplicate\":true")).unwrap_or(false);
                        report.latencies.push(t0.elapsed());
                        report.ok += 1;
                        if duplicate {
                            report.duplicates += 1;
                        }
                    }
                    Ok(_) => report.non_2xx += 1,
                    Err(_) => report.errors += 1,
                }
            }
        }));
    }
    let mut total = Report::default();
    for t in tasks {
        let r = t.await?;
        total.sent += r.sent;
        total.ok += r.ok;
        total.duplicates += r.duplicates;
        total.non_2xx += r.non_2xx;
        total.errors += r.errors;
        total.latencies.extend(r.latencies);
    }
    total.elapsed = start.elapsed();
    total.latencies.sort();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::check_loopback;

    #[test]
    fn only_loopback_targets_are_allowed() {
        for ok in ["http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:80/x", "http://127.8.9.10/"] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in ["http://10.0.0.1/x", "http://192.168.1.2/x", "http://example.com/x", "http://8.8.8.8/", "not a url"]
        {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }
}
