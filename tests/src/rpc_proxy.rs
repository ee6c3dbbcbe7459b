//! A JSON-RPC proxy in front of anvil that can rewrite any answer: the lying RPC of the attack
//! tests (an operator who controls the node's RPC URL can make it say anything).

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, server::conn::http1, service::service_fn, Response};
use serde_json::Value;
use std::sync::Arc;

/// Rewrites one answer: `(request, upstream answer) -> answer the client gets`.
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
