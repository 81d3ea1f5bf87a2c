//! A small loopback HTTP client (ureq) and the latency harness: several client threads, each
//! with its own keep-alive connection, for a fixed time; every latency kept for the percentiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A keep-alive agent with a time limit on each step of a request. Not `timeout_global`: with
/// any overall limit, ureq resolves the address on a thread of its own, and it resolves it for
/// every request, pooled connection or not. That was a thread started and ended per request,
/// on the same 2 cores as the server, in every figure up to the twenty-fourth session.
pub fn agent() -> ureq::Agent {
    let step = Some(Duration::from_secs(120));
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(step)
        .timeout_send_request(step)
        .timeout_send_body(step)
        .timeout_recv_response(step)
        .timeout_recv_body(step)
        .max_idle_connections_per_host(4)
        .build()
        .new_agent()
}

/// A reply: status and body bytes.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The JSON body when the status is the expected one; otherwise an error naming both.
    pub fn expect(self, status: u16, what: &str) -> anyhow::Result<Value> {
        if self.status != status {
            anyhow::bail!(
                "{what}: HTTP {} (expected {status}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        Ok(self.json())
    }
}

fn read(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> anyhow::Result<Reply> {
    let mut resp = resp?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()?;
    Ok(Reply { status, body })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub fn get(agent: &ureq::Agent, url: &str, token: Option<&str>) -> anyhow::Result<Reply> {
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &bearer(t));
    }
    read(req.call())
}

/// POSTs an already serialized JSON body (so callers can time serialization on its own).
pub fn post_raw(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    body: &[u8],
) -> anyhow::Result<Reply> {
    let mut req = agent.post(url).header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &bearer(t));
    }
    read(req.send(body))
}

pub fn post(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<Reply> {
    post_raw(agent, url, token, &serde_json::to_vec(body)?)
}

pub fn put(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<Reply> {
    let mut req = agent.put(url).header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &bearer(t));
    }
    read(req.send(serde_json::to_vec(body)?.as_slice()))
}

/// Latencies of one scenario (possibly merged over several rounds).
#[derive(Default, Clone)]
pub struct Latencies {
    /// Microseconds, one per successful request.
    pub micros: Vec<u32>,
    pub errors: u64,
    /// Wall time the clients were running, summed over rounds.
    pub wall: Duration,
    /// Requests per second of each round (for the median of per-round ratios).
    pub round_rates: Vec<f64>,
    pub first_error: Option<String>,
}

impl Latencies {
    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        self.wall += other.wall;
        self.round_rates.extend(other.round_rates);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn rate(&self) -> f64 {
        self.micros.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn sorted(&self) -> Vec<u32> {
        let mut v = self.micros.clone();
        v.sort_unstable();
        v
    }

    /// The q-quantile in milliseconds (nearest rank).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        f64::from(v[rank - 1]) / 1000.0
    }

    pub fn mean_ms(&self) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        self.micros.iter().map(|&m| f64::from(m)).sum::<f64>() / self.micros.len() as f64 / 1000.0
    }
}

/// Runs `op` from `clients` threads for `duration` (after a short warm-up that is not kept).
/// `op(agent, client, i)` sends one request and says whether it succeeded (Err: a message).
pub fn drive<F>(clients: usize, duration: Duration, op: F) -> Latencies
where
    F: Fn(&ureq::Agent, usize, u64) -> Result<(), String> + Sync,
{
    let warmup = Duration::from_millis(300).min(duration / 4);
    let counter = AtomicU64::new(0);
    let per_thread: Vec<Latencies> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let op = &op;
                let counter = &counter;
                s.spawn(move || {
                    let agent = agent();
                    let mut out = Latencies::default();
                    let start = Instant::now();
                    let mut measuring_since = None;
                    loop {
                        let now = Instant::now();
                        let elapsed = now - start;
                        if elapsed >= warmup + duration {
                            break;
                        }
                        if elapsed >= warmup && measuring_since.is_none() {
                            measuring_since = Some(now);
                        }
                        let i = counter.fetch_add(1, Ordering::Relaxed);
                        let t = Instant::now();
                        let result = op(&agent, c, i);
                        let micros = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        if measuring_since.is_some() {
                            match result {
                                Ok(()) => out.micros.push(micros),
                                Err(e) => {
                                    out.errors += 1;
                                    out.first_error.get_or_insert(e);
                                }
                            }
                        }
                    }
                    out.wall = measuring_since.map_or(Duration::ZERO, |s| s.elapsed());
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = per_thread
        .iter()
        .map(|l| l.wall)
        .max()
        .unwrap_or(Duration::ZERO);
    let mut all = Latencies::default();
    for l in per_thread {
        all.micros.extend(l.micros);
        all.errors += l.errors;
        if all.first_error.is_none() {
            all.first_error = l.first_error;
        }
    }
    all.wall = wall;
    all.round_rates = vec![all.rate()];
    all
}

/// Maps a reply to the harness's result: success on the expected status.
pub fn check(reply: anyhow::Result<Reply>, status: u16) -> Result<(), String> {
    match reply {
        Ok(r) if r.status == status => Ok(()),
        Ok(r) => Err(format!(
            "HTTP {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
        )),
        Err(e) => Err(e.to_string()),
    }
}
