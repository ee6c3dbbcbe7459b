//! The report as ONE self-contained HTML file: inline CSS and SVG, no script, no fetches (a CSP
//! meta tag forbids them, so even a missed escape could not run code or phone home). Every string
//! that comes from the chain goes through [`esc`]: notes are attacker-controlled.

use super::{
    model::{EpochRecord, Report},
    render_text::{
        app_lines, attested_line, children, describe_event, epoch_line, fmt_policy, fmt_time, os_line, trust_mode_line,
    },
};
use alloy::primitives::Address;
use std::{collections::HashSet, fmt::Write as _};

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Links to a block explorer (Etherscan/Blockscout paths), or plain text without one.
struct Links<'a>(Option<&'a str>);

impl Links<'_> {
    fn link(&self, path: &str, id: &str, text: &str) -> String {
        match self.0 {
            Some(base) => format!("<a href=\"{}/{}/{}\">{}</a>", esc(base), path, esc(id), esc(text)),
            None => esc(text),
        }
    }
    fn tx(&self, h: impl ToString) -> String {
        let h = h.to_string();
        self.link("tx", &h, &short(&h))
    }
    fn addr(&self, a: Address) -> String {
        let a = a.to_string();
        self.link("address", &a, &short(&a))
    }
    fn block(&self, b: u64) -> String {
        self.link("block", &b.to_string(), &b.to_string())
    }
}

fn short(h: &str) -> String {
    if h.len() > 14 {
        format!("{}…{}", &h[..8], &h[h.len() - 4..])
    } else {
        h.to_string()
    }
}

/// A base URL is accepted only as http(s), without quotes or spaces.
pub fn valid_explorer(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '<' || c == '>')
}

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1c2330;background:#f5f6f8}
header{background:#17202e;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#b9c3d3}header a{color:#9cc3ff}main{padding:8px 28px 40px}
section{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:14px 18px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #eceef2;padding:5px 8px;text-align:left;vertical-align:top}
th{font-size:12px;color:#5b6576;text-transform:uppercase}code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.sev{display:inline-block;min-width:64px;text-align:center;border-radius:4px;padding:1px 6px;color:#fff;font-weight:600;font-size:12px}
.critical{background:#b3152a}.high{background:#d9531e}.medium{background:#c79100}.low{background:#3f7fbf}.info{background:#6b7585}
.finding{border-left:4px solid #ccc;padding:6px 10px;margin:8px 0}.finding.f-critical{border-color:#b3152a}
.finding.f-high{border-color:#d9531e}.finding.f-medium{border-color:#c79100}.finding.f-low{border-color:#3f7fbf}
.note{color:#6a4b00;background:#fff7e0;border-radius:3px;padding:0 4px;white-space:pre-wrap}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#f0f2f6;border-radius:6px;padding:8px 14px}
.card b{display:block;font-size:20px}svg text{font:12px ui-monospace,Menlo,Consolas,monospace}
.graph{overflow-x:auto}pre{background:#f0f2f6;border-radius:6px;padding:8px;overflow-x:auto;font-size:12px;max-height:360px}
.bad{color:#b3152a;font-weight:600}
"#;

/// Render the whole report.
pub fn render(r: &Report, explorer: Option<&str>) -> String {
    let l = Links(explorer.filter(|u| valid_explorer(u)).map(|u| u.trim_end_matches('/')));
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Replicatoor audit {}</title><style>{CSS}</style></head><body>",
        esc(&r.contract.to_string())
    );
    let s = &r.summary;
    let _ = write!(
        o,
        "<header><h1>Replicatoor audit</h1><p>chain {} · contract <span class=\"mono\">{}</span> · blocks {}–{} · up to {}</p></header><main>",
        r.chain_id,
        l.addr(r.contract),
        r.from_block,
        r.to_block,
        esc(&fmt_time(r.to_time))
    );
    let _ = write!(o, "<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">");
    for (label, n) in [
        ("critical", s.critical),
        ("high", s.high),
        ("medium", s.medium),
        ("low", s.low),
        ("epochs", s.epochs),
        ("requests", s.requests),
        ("delivered", s.delivered),
        ("refused", s.refused),
        ("pending", s.pending),
    ] {
        let _ = write!(o, "<div class=\"card\"><b>{n}</b>{label}</div>");
    }
    let _ = write!(o, "</div><p>Owner {} · widening delay {}", s.owner.map_or("unknown".into(), |a| l.addr(a)), {
        s.widening_delay.map_or("unknown".into(), |d| format!("{d} s"))
    });
    if let Some(p) = &s.policy {
        let _ = write!(o, " · policy now: {}", esc(&fmt_policy(p)));
    }
    if let Some(p) = &s.pending_policy {
        let _ = write!(o, " · pending: {} from {}", esc(&fmt_policy(&p.policy)), esc(&fmt_time(p.effective_at)));
    }
    let _ = write!(o, "</p></section>");
    provenance(&mut o, r, &l);
    findings(&mut o, r);
    approvals(&mut o, r);
    epochs(&mut o, r, &l);
    custody(&mut o, r, &l);
    timeline(&mut o, r, &l);
    let _ = writeln!(o, "</main></body></html>");
    o
}

/// What `audit --deployment` proved, at which header, signed by how many; or that nothing was.
fn provenance(o: &mut String, r: &Report, l: &Links) {
    let _ = write!(o, "<section id=\"provenance\"><h2>Proven or RPC-read</h2>");
    let Some(p) = &r.provenance else {
        let _ = write!(o, "<p>Every value in this report is what one RPC said (no <code>--deployment</code>: nothing proven).</p></section>");
        return;
    };
    let signed = match (p.signers, p.committee_size) {
        (Some(n), Some(size)) => format!(", signed by {n} of {size} sync-committee members"),
        _ => String::new(),
    };
    let _ = write!(
        o,
        "<p>Proven at block {} (<span class=\"mono\">{}</span>, {}), trust root {}{}. Events from block {} on are \
         proven from their blocks' receipts; older ones are RPC-read. <b{}>{} contradiction(s)</b>.</p>\
         <table><tr><th>value</th><th>RPC</th><th>proven</th><th>status</th></tr>",
        l.block(p.block),
        esc(&short(&p.block_hash.to_string())),
        esc(&fmt_time(p.time)),
        esc(&p.trust_mode),
        esc(&signed),
        p.events_window_from,
        if p.mismatches > 0 { " class=\"bad\"" } else { "" },
        p.mismatches
    );
    for v in &p.values {
        let _ = write!(
            o,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td{}>{}{}</td></tr>",
            esc(&v.name),
            esc(&v.rpc),
            esc(v.proven.as_deref().unwrap_or("—")),
            if v.status == "proven" { "" } else { " class=\"bad\"" },
            v.status,
            v.detail.as_deref().map_or(String::new(), |d| format!(": {}", esc(d)))
        );
    }
    let _ = write!(o, "</table><table><tr><th>block</th><th>index</th><th>event</th><th>status</th></tr>");
    for e in &p.events {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td{}>{}{}</td></tr>",
            l.block(e.block),
            e.log_index,
            esc(&e.event),
            if matches!(e.status, "proven" | "rpc_read") { "" } else { " class=\"bad\"" },
            e.status,
            e.detail.as_deref().map_or(String::new(), |d| format!(": {}", esc(d)))
        );
    }
    let _ = write!(o, "</table></section>");
}

fn findings(o: &mut String, r: &Report) {
    let _ = write!(o, "<section id=\"findings\"><h2>Findings</h2>");
    if r.findings.is_empty() {
        let _ = write!(o, "<p>No findings.</p>");
    }
    for f in &r.findings {
        let sev = f.severity.name();
        let blocks: Vec<_> = f
            .blocks
            .iter()
            .map(|b| {
                if b.from == b.to && !b.open {
                    b.from.to_string()
                } else {
                    format!("{}–{}{}", b.from, b.to, if b.open { "+" } else { "" })
                }
            })
            .collect();
        let _ = write!(
            o,
            "<div class=\"finding f-{sev}\" data-kind=\"{}\"><span class=\"sev {sev}\">{sev}</span> <b>{}</b> <code>{}</code><br>{}<br><small>blocks {}{}</small></div>",
            esc(f.kind),
            esc(&f.title),
            esc(f.kind),
            esc(&f.detail),
            esc(&blocks.join(", ")),
            if f.request_ids.is_empty() {
                String::new()
            } else {
                format!(" · requests {}", f.request_ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
            }
        );
    }
    let _ = write!(o, "</section>");
}

/// What each proposal published: the app's compose (and the trust mode it pins), the OS image.
fn approvals(o: &mut String, r: &Report) {
    let _ = write!(
        o,
        "<section id=\"approvals\"><h2>What was approved</h2><p>What each proposal published on chain with its \
         reference (owner-supplied text; an app's compose is checked against its compose hash).</p>"
    );
    for x in &r.references {
        let (class, lines) = match (&x.app, &x.os) {
            (Some(a), _) => {
                let ok = a.compose_hash_matches != Some(false)
                    && matches!(a.trust_mode, Some("beacon-light-client" | "rpc-quorum"))
                    && a.pin_matches_deployment == Some(true)
                    && a.unmeasured.is_empty();
                (if ok { "" } else { "bad" }, app_lines(x, a))
            }
            (_, Some(os)) => ("", vec![os_line(os)]),
            _ => continue,
        };
        let _ = write!(
            o,
            "<div class=\"approval\" data-ref=\"{}\"><h3>{} reference <span class=\"mono\">{}</span> ({})</h3><ul>",
            esc(&x.id.to_string()),
            esc(&x.ref_kind.as_str()),
            esc(&x.id.to_string()),
            esc(x.status)
        );
        if let Some(a) = &x.app {
            let _ = write!(o, "<li class=\"trust-mode {class}\">trust mode: {}</li>", esc(&trust_mode_line(a)));
        }
        for line in lines.iter().filter(|l| !l.starts_with("trust mode: ")) {
            let _ = write!(o, "<li>{}</li>", esc(line));
        }
        let _ = write!(o, "</ul>");
        if let Some(c) = x.app.as_ref().and_then(|a| a.compose.as_ref()) {
            let yaml = serde_json::from_str::<serde_json::Value>(c)
                .ok()
                .and_then(|v| v["docker_compose_file"].as_str().map(str::to_string));
            if let Some(y) = yaml {
                let _ = write!(o, "<p>docker_compose_file:</p><pre class=\"compose-yaml\">{}</pre>", esc(&y));
            }
            let _ =
                write!(o, "<p>published app-compose.json (exact bytes):</p><pre class=\"compose\">{}</pre>", esc(c));
        }
        let _ = write!(o, "</div>");
    }
    let _ = write!(o, "</section>");
}

/// Every epoch: how it began and who received its secret.
fn epochs(o: &mut String, r: &Report, l: &Links) {
    let _ = write!(
        o,
        "<section id=\"epochs\"><h2>Epochs</h2><p>Each epoch's cluster key and secret: a genesis, a re-bootstrap \
         (a new genesis replaced a live cluster) or a rotation (the previous cluster endorsed the new one).</p>\
         <table><tr><th>epoch</th><th>began by</th><th>cluster</th><th>proposal</th><th>block</th><th>received by</th></tr>"
    );
    for e in &r.epochs {
        let recipients: Vec<_> = e
            .recipients
            .iter()
            .map(|x| format!("{} (request {}, block {})", l.addr(x.requester), x.request_id, l.block(x.block)))
            .collect();
        let _ = write!(
            o,
            "<tr class=\"epoch {}\" title=\"{}\"><td>{}</td><td>{}{}</td><td class=\"mono\">{}</td><td>{} by {}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            e.kind,
            esc(&epoch_line(e)),
            e.epoch,
            e.kind.replace('_', "-"),
            e.previous_cluster.map_or(String::new(), |p| format!(" from {}", l.addr(p))),
            l.addr(e.cluster),
            e.proposal_id,
            e.proposer.map_or("?".into(), |a| l.addr(a)),
            l.block(e.block),
            if recipients.is_empty() { "nobody yet".into() } else { recipients.join("<br>") }
        );
    }
    let _ = write!(o, "</table></section>");
}

fn timeline(o: &mut String, r: &Report, l: &Links) {
    let _ = write!(
        o,
        "<section id=\"timeline\"><h2>Governance timeline</h2><table><tr><th>block</th><th>time</th><th>event</th><th>note</th><th>actor</th><th>tx</th></tr>"
    );
    for t in &r.timeline {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            l.block(t.block),
            esc(&fmt_time(t.time)),
            esc(&describe_event(&t.event)),
            if t.note.is_empty() { String::new() } else { format!("<span class=\"note\">{}</span>", esc(&t.note)) },
            t.actor.map_or("?".into(), |a| l.addr(a)),
            l.tx(t.tx)
        );
    }
    let _ = write!(o, "</table><h2 style=\"margin-top:16px\">Policy in force</h2><table><tr><th>blocks</th><th>policy</th><th>set in block</th></tr>");
    for p in &r.policies {
        let _ = write!(
            o,
            "<tr><td>{}–{}{}</td><td>{}</td><td>{}</td></tr>",
            p.from_block,
            p.to_block,
            if p.open { "+" } else { "" },
            esc(&fmt_policy(&p.policy)),
            l.block(p.set_in_block)
        );
    }
    let _ = write!(o, "</table><h2 style=\"margin-top:16px\">Reference values</h2><table><tr><th>status</th><th>kind</th><th>id</th><th>active from</th><th>note</th></tr>");
    for x in &r.references {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td><span class=\"note\">{}</span>{}</td></tr>",
            esc(x.status),
            esc(&x.ref_kind.as_str()),
            esc(&x.id.to_string()),
            esc(&fmt_time(x.activates_at)),
            esc(&x.note),
            x.revoke_note.as_ref().map_or(String::new(), |n| format!(" revoked: <span class=\"note\">{}</span>", esc(n)))
        );
    }
    let _ = write!(o, "</table></section>");
}

/// A node of the custody graph.
struct Node {
    x: f64,
    y: f64,
    label: String,
    sub: String,
    title: String,
    class: &'static str,
    parent: Option<usize>,
}

const W: f64 = 168.0;
const H: f64 = 44.0;
const SLOT: f64 = 184.0;
const ROW: f64 = 84.0;

/// Lay out one epoch as a tree (leaves left to right, parents centred over their children).
fn layout_epoch(ep: &EpochRecord, x0: f64, nodes: &mut Vec<Node>) -> f64 {
    let root = nodes.len();
    nodes.push(Node {
        x: 0.0,
        y: 30.0,
        label: format!("epoch {} genesis", ep.epoch),
        sub: short(&ep.proposer.unwrap_or(ep.cluster).to_string()),
        title: format!("cluster {} · proposal {} · block {} · note: {}", ep.cluster, ep.proposal_id, ep.block, ep.note),
        class: if ep.previous_cluster.is_some() { "reset" } else { "genesis" },
        parent: None,
    });
    let mut next_leaf = x0;
    let mut x = layout_deliveries(ep, None, root, 0, &mut next_leaf, nodes, &mut HashSet::new());
    for r in &ep.refusals {
        nodes.push(Node {
            x: next_leaf,
            y: 30.0 + ROW,
            label: format!("request {} ✗", r.request_id),
            sub: r.reason.to_string(),
            title: format!("refused: {} (code {}) · requester {} · block {}", r.reason, r.code, r.requester, r.block),
            class: "refused",
            parent: Some(root),
        });
        next_leaf += SLOT;
    }
    if x.is_nan() {
        x = x0;
        next_leaf = next_leaf.max(x0 + SLOT);
    }
    nodes[root].x = x;
    next_leaf
}

/// Lay out `holder`'s children in `ep` (`None`: the genesis node's, [`children`]) under node `me` at
/// `depth`: a leaf takes the next slot, a parent is centred over its children. Their mean x, or NaN
/// when there are none.
fn layout_deliveries(
    ep: &EpochRecord,
    holder: Option<Address>,
    me: usize,
    depth: usize,
    next_leaf: &mut f64,
    nodes: &mut Vec<Node>,
    seen: &mut HashSet<u64>,
) -> f64 {
    let mut xs = Vec::new();
    for d in children(ep, holder) {
        if !seen.insert(d.request_id) {
            continue;
        }
        let id = nodes.len();
        let bad = d.reverify.as_ref().is_some_and(|r| r.verdict == "rejected");
        nodes.push(Node {
            x: 0.0,
            y: 30.0 + ROW * (depth as f64 + 1.0),
            label: format!("request {}", d.request_id),
            sub: short(&d.requester.to_string()),
            title: format!(
                "requester {} · relayer {} · block {} · os {} · app {}",
                d.requester, d.relayer, d.block, d.os_ref, d.app_ref
            ),
            class: if bad { "bad" } else { "delivered" },
            parent: Some(me),
        });
        let x = if Some(d.requester) != ep.proposer {
            layout_deliveries(ep, Some(d.requester), id, depth + 1, next_leaf, nodes, seen)
        } else {
            f64::NAN
        };
        let x = if x.is_nan() {
            let x = *next_leaf;
            *next_leaf += SLOT;
            x
        } else {
            x
        };
        nodes[id].x = x;
        xs.push(x);
    }
    if xs.is_empty() {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn custody(o: &mut String, r: &Report, l: &Links) {
    let (nodes, roots, x) = layout(r);
    let width = x.max(400.0);
    let height = nodes.iter().map(|n| n.y).fold(0.0, f64::max) + H + 30.0;
    let _ = write!(
        o,
        "<section id=\"custody\"><h2>Custody tree</h2><p>Each epoch starts at its genesis; an edge means the child's delivery \
         was relayed by the parent's account (agents relay their own answers; anyone may relay, so this is a hint, the \
         cluster key signed every delivery). Red: refused; grey: never answered; orange border: custody reset.</p>\
         <div class=\"graph\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"custody tree\">"
    );
    svg_edges(o, &nodes, &roots);
    svg_nodes(o, &nodes);
    let _ = write!(o, "</svg></div>");
    custody_tables(o, r, l);
    let _ = write!(o, "</section>");
}

/// Every epoch's tree left to right, then the requests never answered: the nodes, the index of each
/// epoch's root, and the x where a next node would go.
fn layout(r: &Report) -> (Vec<Node>, Vec<usize>, f64) {
    let mut nodes = Vec::new();
    let mut x = 10.0;
    let mut roots = Vec::new();
    for ep in &r.custody.epochs {
        roots.push(nodes.len());
        x = layout_epoch(ep, x, &mut nodes) + 30.0;
    }
    for q in r.custody.requests.iter().filter(|q| q.status == "pending") {
        nodes.push(Node {
            x,
            y: 30.0,
            label: format!("request {} ?", q.request_id),
            sub: "never answered".into(),
            title: format!("requester {} · block {}", q.requester, q.block),
            class: "pending",
            parent: None,
        });
        x += SLOT;
    }
    (nodes, roots, x)
}

/// Epoch to epoch (dashed), and each node to its parent.
fn svg_edges(o: &mut String, nodes: &[Node], roots: &[usize]) {
    for w in roots.windows(2) {
        let (a, b) = (&nodes[w[0]], &nodes[w[1]]);
        let _ = write!(
            o,
            "<path d=\"M{:.0} {:.0} L{:.0} {:.0}\" stroke=\"#d9531e\" stroke-width=\"2\" stroke-dasharray=\"6 4\" fill=\"none\"/>",
            a.x + W,
            a.y + H / 2.0,
            b.x,
            b.y + H / 2.0
        );
    }
    for n in nodes {
        if let Some(p) = n.parent.map(|p| &nodes[p]) {
            let dash = if n.class == "refused" { " stroke-dasharray=\"4 3\"" } else { "" };
            let _ = write!(
                o,
                "<path d=\"M{:.0} {:.0} C{:.0} {:.0},{:.0} {:.0},{:.0} {:.0}\" stroke=\"#8a94a6\" fill=\"none\"{dash}/>",
                p.x + W / 2.0,
                p.y + H,
                p.x + W / 2.0,
                p.y + H + 20.0,
                n.x + W / 2.0,
                n.y - 20.0,
                n.x + W / 2.0,
                n.y
            );
        }
    }
}

fn svg_nodes(o: &mut String, nodes: &[Node]) {
    for n in nodes {
        let (fill, stroke) = match n.class {
            "genesis" => ("#dfeaff", "#2f5fb3"),
            "reset" => ("#dfeaff", "#d9531e"),
            "delivered" => ("#e3f5e5", "#2e8540"),
            "bad" => ("#ffe1e1", "#b3152a"),
            "refused" => ("#fde8e8", "#b3152a"),
            _ => ("#eceef2", "#6b7585"),
        };
        let _ = write!(
            o,
            "<g class=\"node {}\"><title>{}</title><rect x=\"{:.0}\" y=\"{:.0}\" width=\"{W}\" height=\"{H}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#4a5468\">{}</text></g>",
            n.class,
            esc(&n.title),
            n.x,
            n.y,
            n.x + W / 2.0,
            n.y + 18.0,
            esc(&n.label),
            n.x + W / 2.0,
            n.y + 35.0,
            esc(&n.sub)
        );
    }
}

fn custody_tables(o: &mut String, r: &Report, l: &Links) {
    for ep in &r.custody.epochs {
        let _ = write!(
            o,
            "<h3>Epoch {}</h3><p>cluster <span class=\"mono\">{}</span> · genesis proposal {} by {} · block {} · tx {} · note <span class=\"note\">{}</span>{}{}</p>",
            ep.epoch,
            l.addr(ep.cluster),
            ep.proposal_id,
            ep.proposer.map_or("?".into(), |a| l.addr(a)),
            l.block(ep.block),
            l.tx(ep.tx),
            esc(&ep.note),
            ep.previous_cluster.map_or(String::new(), |p| format!(" · <b>custody reset</b>, replaced {}", l.addr(p))),
            ep.reverify.as_ref().map_or(String::new(), |v| format!(" · reverify: {}", esc(v.verdict)))
        );
        let _ = write!(o, "<p>genesis quote: {}</p>", esc(&attested_line(&ep.attested_os)));
        let _ = write!(o, "<table><tr><th>request</th><th>requester</th><th>outcome</th><th>relayer</th><th>block</th><th>tx</th><th>reverify</th><th>OS image (its event log)</th></tr>");
        for d in &ep.deliveries {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td>delivered</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono os-image\">{}</td></tr>",
                d.request_id,
                l.addr(d.requester),
                l.addr(d.relayer),
                l.block(d.block),
                l.tx(d.tx),
                d.reverify.as_ref().map_or(String::new(), |v| esc(&format!(
                    "{}{}",
                    v.verdict,
                    v.reason.as_ref().map_or(String::new(), |r| format!(": {r}"))
                ))),
                esc(&attested_line(&d.attested_os))
            );
        }
        for x in &ep.refusals {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td>refused: {} (code {})</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td></td><td></td></tr>",
                x.request_id,
                l.addr(x.requester),
                esc(x.reason),
                x.code,
                l.addr(x.relayer),
                l.block(x.block),
                l.tx(x.tx)
            );
        }
        let _ = write!(o, "</table>");
    }
    let pending: Vec<_> = r.custody.requests.iter().filter(|q| q.status == "pending").collect();
    if !pending.is_empty() {
        let _ = write!(
            o,
            "<h3>Never answered</h3><table><tr><th>request</th><th>requester</th><th>block</th><th>tx</th></tr>"
        );
        for q in pending {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                q.request_id,
                l.addr(q.requester),
                l.block(q.block),
                l.tx(q.tx)
            );
        }
        let _ = write!(o, "</table>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markup_and_control_characters() {
        assert_eq!(esc("<script>alert('x')</script>&\""), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;");
        assert_eq!(esc("a\u{1b}[31mb"), "a\u{FFFD}[31mb");
    }

    #[test]
    fn explorer_urls_must_be_plain_http() {
        assert!(valid_explorer("https://etherscan.io"));
        assert!(!valid_explorer("javascript:alert(1)"));
        assert!(!valid_explorer("https://x\" onmouseover=\"y"));
    }
}
