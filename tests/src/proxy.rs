//! Fault-injecting RPC proxies between an agent and anvil: one that can be cut and restored (an
//! outage), one that refuses wide `eth_getLogs` ranges like hosted providers do, and one that lies:
//! it rewrites any answer (an operator who controls the node's RPC URL can make it say anything).

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, server::conn::http1, service::service_fn, Response};
use serde_json::Value;
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};

/// A TCP proxy to anvil that can be cut (listener and every connection closed) and restored on
/// the same port.
pub struct TcpProxy {
    port: u16,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        TcpProxy { port, target, task: Some(Self::serve(listener, target)) }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn serve(listener: TcpListener, target: SocketAddr) -> JoinHandle<()> {
        tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        })
    }

    /// Close the listener and every connection.
    pub async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listen again on the same port.
    pub async fn resume(&mut self) {
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    eprintln!("proxy rebind: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind proxy port {}: {e}", self.port),
            }
        };
        self.task = Some(Self::serve(listener, self.target));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A JSON-RPC proxy that, like hosted providers, refuses `eth_getLogs` over more than `limit` blocks.
pub struct LimitedRpc {
    pub url: String,
    /// How many `eth_getLogs` calls it refused for their range.
    pub refused: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl LimitedRpc {
    pub async fn start(upstream: String, limit: u64) -> LimitedRpc {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind rpc proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let refused = Arc::new(AtomicU64::new(0));
        let counter = refused.clone();
        let task = tokio::spawn(async move {
            let client = alloy::transports::http::reqwest::Client::new();
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let up = Upstream { url: upstream.clone(), client: client.clone(), limit, refused: counter.clone() };
                conns.spawn(async move {
                    let _ = up.serve(stream).await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        LimitedRpc { url, refused, task }
    }
}

impl Drop for LimitedRpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Upstream {
    url: String,
    client: alloy::transports::http::reqwest::Client,
    limit: u64,
    refused: Arc<AtomicU64>,
}

impl Upstream {
    /// HTTP/1.1 keep-alive loop: one JSON-RPC POST at a time.
    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let mut len = 0usize;
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).await?;
            let answer = self.answer(&body).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                answer.len()
            );
            w.write_all(head.as_bytes()).await?;
            w.write_all(&answer).await?;
        }
    }

    async fn answer(&self, body: &[u8]) -> Vec<u8> {
        let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        if req["method"] == "eth_getLogs" && req["params"][0].get("blockHash").is_none() {
            let p = &req["params"][0];
            let from = self.block_number(&p["fromBlock"]).await;
            let to = self.block_number(&p["toBlock"]).await;
            if to.saturating_sub(from) + 1 > self.limit {
                self.refused.fetch_add(1, Ordering::SeqCst);
                let err = serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": req["id"],
                    "error": { "code": -32005, "message": format!("query exceeds max block range {}", self.limit) },
                });
                return err.to_string().into_bytes();
            }
        }
        self.forward(body.to_vec()).await
    }

    async fn forward(&self, body: Vec<u8>) -> Vec<u8> {
        let resp = self.client.post(&self.url).header("content-type", "application/json").body(body).send().await;
        match resp {
            Ok(r) => r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            Err(e) => serde_json::json!({"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":e.to_string()}})
                .to_string()
                .into_bytes(),
        }
    }

    /// A block tag or number as a number ("latest", "pending", absent → the head).
    async fn block_number(&self, v: &serde_json::Value) -> u64 {
        match v.as_str() {
            Some("earliest") => 0,
            Some(s) if s.starts_with("0x") => u64::from_str_radix(&s[2..], 16).unwrap_or(0),
            _ => {
                let q = br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#.to_vec();
                let r: serde_json::Value = serde_json::from_slice(&self.forward(q).await).unwrap_or_default();
                r["result"].as_str().and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()).unwrap_or(0)
            }
        }
    }
}

/// Rewrites one answer of a [`RpcProxy`]: `(request, upstream answer) -> answer the client gets`.
pub type Rewrite = Arc<dyn Fn(&Value, Value) -> Value + Send + Sync>;

/// A running proxy; stops when dropped.
pub struct RpcProxy {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl RpcProxy {
    /// Listen on a free loopback port and forward to `upstream`, passing every answer through `rewrite`.
    pub async fn start(upstream: &str, rewrite: Rewrite) -> RpcProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let upstream = upstream.to_string();
        let client = alloy::transports::http::reqwest::Client::new();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (client, upstream, rewrite) = (client.clone(), upstream.clone(), rewrite.clone());
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (client, upstream, rewrite) = (client.clone(), upstream.clone(), rewrite.clone());
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let answer: Value = match client
                            .post(&upstream)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                        {
                            Ok(r) => r.json().await.unwrap_or(Value::Null),
                            Err(e) => {
                                serde_json::json!({ "jsonrpc": "2.0", "id": request["id"], "error": { "code": -32000, "message": e.to_string() } })
                            }
                        };
                        let out = match (&request, answer) {
                            (Value::Array(reqs), Value::Array(answers)) => {
                                Value::Array(reqs.iter().zip(answers).map(|(q, a)| rewrite(q, a)).collect())
                            }
                            (q, a) => rewrite(q, a),
                        };
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(out.to_string()))))
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc));
            }
        });
        RpcProxy { url, task }
    }

    /// The proxy's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A JSON-RPC proxy whose operator can freeze the chain's head: once [`FrozenRpc::freeze`] names a
/// block, every question about the head (`eth_blockNumber`, a `latest`/`pending`/`safe`/`finalized`
/// tag, a block above the frozen one) is answered as of that block, while transactions are still
/// forwarded (and mined). This is what the machine's operator can do to the RPC and, by pointing a
/// beacon that follows this proxy, to the light client's view. Every call it is handed goes through
/// `watch` first, so a test counts what leaves the agent.
pub struct FrozenRpc {
    url: String,
    frozen: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// Sees each JSON-RPC call a [`FrozenRpc`] is handed, before it is forwarded.
pub type Watch = Arc<dyn Fn(&Value) + Send + Sync>;

impl FrozenRpc {
    /// Listen on a free loopback port and forward to `upstream`, not frozen yet.
    pub async fn start(upstream: &str, watch: Watch) -> FrozenRpc {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let frozen = Arc::new(AtomicU64::new(0));
        let (upstream, at) = (upstream.to_string(), frozen.clone());
        let client = alloy::transports::http::reqwest::Client::new();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (client, upstream, at, watch) = (client.clone(), upstream.clone(), at.clone(), watch.clone());
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (client, upstream, at, watch) = (client.clone(), upstream.clone(), at.clone(), watch.clone());
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let frozen = at.load(Ordering::SeqCst);
                        let out = match request {
                            Value::Array(reqs) => {
                                let mut answers = Vec::new();
                                for q in reqs {
                                    watch(&q);
                                    answers.push(frozen_answer(&client, &upstream, frozen, q).await);
                                }
                                Value::Array(answers)
                            }
                            q => {
                                watch(&q);
                                frozen_answer(&client, &upstream, frozen, q).await
                            }
                        };
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(out.to_string()))))
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc));
            }
        });
        FrozenRpc { url, frozen, task }
    }

    /// The proxy's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// From now on, the head is block `n` (0: follow the chain again).
    pub fn freeze(&self, n: u64) {
        self.frozen.store(n, Ordering::SeqCst);
    }
}

impl Drop for FrozenRpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `q` answered by `upstream` as if its head were block `frozen` (0: as it is).
async fn frozen_answer(
    client: &alloy::transports::http::reqwest::Client,
    upstream: &str,
    frozen: u64,
    mut q: Value,
) -> Value {
    let number = |v: &Value| v.as_str().and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
    if frozen > 0 {
        let head = Value::String(format!("{frozen:#x}"));
        if q["method"] == "eth_blockNumber" {
            return serde_json::json!({ "jsonrpc": "2.0", "id": q["id"], "result": head });
        }
        // A block above the frozen head does not exist yet, as far as this RPC tells.
        if q["method"] == "eth_getBlockByNumber" && number(&q["params"][0]).is_some_and(|n| n > frozen) {
            return serde_json::json!({ "jsonrpc": "2.0", "id": q["id"], "result": Value::Null });
        }
        fn pin(v: &mut Value, head: &Value) {
            match v {
                Value::String(s) if matches!(s.as_str(), "latest" | "pending" | "safe" | "finalized") => {
                    *v = head.clone()
                }
                Value::Array(a) => a.iter_mut().for_each(|v| pin(v, head)),
                Value::Object(o) => o.values_mut().for_each(|v| pin(v, head)),
                _ => {}
            }
        }
        if q["method"] != "eth_sendRawTransaction" {
            if let Some(params) = q.get_mut("params") {
                pin(params, &head);
            }
        }
    }
    match client.post(upstream).header("content-type", "application/json").body(q.to_string()).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(e) => {
            serde_json::json!({ "jsonrpc": "2.0", "id": q["id"], "error": { "code": -32000, "message": e.to_string() } })
        }
    }
}
