//! The reference protocol's listener under strangers, in process on 127.0.0.0/8 (sources bound
//! to 127.0.0.2–5 so each stands for another address): a connection that never speaks is closed
//! at the first-frame deadline, one that goes silent is pinged and closed unless it answers, and
//! one address cannot take more than its share of inbound connections.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::loopback_options;
use spore_actors::legacy::{GetLegacyAddr, LegacyOptions};
use spore_actors::node::Node;
use spore_actors::Store;
use spore_spec::wire::{split_frame, Message};
use spore_spec::Signed as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

async fn connect_from(source: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// Frames the node sent within `wait`, and whether it closed the connection meanwhile.
async fn read_for(stream: &mut TcpStream, wait: Duration) -> (Vec<Message>, bool) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = Vec::new();
    let mut closed = false;
    loop {
        let mut chunk = [0u8; 64 * 1024];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => break,
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut messages = Vec::new();
    let mut at = 0;
    while let Ok(Some((body, len))) = split_frame(&buf[at..]) {
        if let Ok(Some(m)) = Message::decode_body(body) {
            messages.push(m);
        }
        at += len;
    }
    (messages, closed)
}

/// A node with identity `seed` listening for reference peers on 127.0.0.1, its reference
/// options set by `legacy`; its data dir, and the listener's address.
async fn start_node(
    seed: u8,
    legacy: impl FnOnce(&mut LegacyOptions),
) -> (tempfile::TempDir, Node, std::net::SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db/spored.redb")).unwrap());
    let mut options = loopback_options(seed, vec![]);
    options.legacy_listen = Some("127.0.0.1:0".into());
    legacy(&mut options.legacy);
    let node = Node::builder(store, options).spawn().unwrap();
    let addr = node.registry.legacy.send(GetLegacyAddr).await.unwrap();
    (dir, node, addr.unwrap())
}

#[test]
fn silent_strangers_and_crowds_from_one_address_do_not_hold_connections() {
    actix_rt::System::new().block_on(async {
        let (_dir, node, addr) = start_node(60, |legacy| {
            legacy.first_frame_timeout = Duration::from_secs(1);
            legacy.idle_timeout = Duration::from_secs(2);
            legacy.max_inbound_per_ip = 3;
        })
        .await;
        let ping = Message::Ping.encode_frame().unwrap();

        // three from one address are taken (the node greets each), a fourth is closed at once
        let mut crowd = Vec::new();
        for _ in 0..3 {
            let mut s = connect_from([127, 0, 0, 2], addr).await;
            s.write_all(&ping).await.unwrap();
            let (greeting, closed) = read_for(&mut s, Duration::from_millis(300)).await;
            assert!(
                !closed && !greeting.is_empty(),
                "a connection within the share"
            );
            crowd.push(s);
        }
        let mut fourth = connect_from([127, 0, 0, 2], addr).await;
        let (_, closed) = read_for(&mut fourth, Duration::from_millis(500)).await;
        assert!(closed, "a fourth connection from one address");
        // another address still gets in
        let mut other = connect_from([127, 0, 0, 3], addr).await;
        other.write_all(&ping).await.unwrap();
        let (greeting, closed) = read_for(&mut other, Duration::from_millis(300)).await;
        assert!(!closed && !greeting.is_empty(), "another address");
        drop(crowd);

        // a stranger that never sends a frame is closed at the first-frame deadline
        let started = Instant::now();
        let mut silent = connect_from([127, 0, 0, 4], addr).await;
        let (_, closed) = read_for(&mut silent, Duration::from_secs(5)).await;
        assert!(closed, "a silent connection stayed open");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "{took:?}"
        );

        // after its first frame, a peer that goes silent is pinged at half the idle timeout;
        // answering keeps it, staying silent closes it
        let mut answers = connect_from([127, 0, 0, 5], addr).await;
        let mut mute = connect_from([127, 0, 0, 5], addr).await;
        answers.write_all(&ping).await.unwrap();
        mute.write_all(&ping).await.unwrap();
        let pong = Message::Pong.encode_frame().unwrap();
        let started = Instant::now();
        let mut pinged = false;
        while started.elapsed() < Duration::from_secs(4) {
            let (messages, closed) = read_for(&mut answers, Duration::from_millis(200)).await;
            assert!(!closed, "a peer that answers pings was closed");
            if messages.iter().any(|m| matches!(m, Message::Ping)) {
                pinged = true;
                answers.write_all(&pong).await.unwrap();
            }
        }
        assert!(pinged, "never pinged");
        let (_, closed) = read_for(&mut mute, Duration::from_secs(1)).await;
        assert!(closed, "a peer that never answered was kept");
        node.shutdown().await;
    });
}

#[test]
fn a_peer_that_does_not_read_is_cut_off_at_its_outbox_cap_and_the_node_serves_on() {
    actix_rt::System::new().block_on(async {
        let (_dir, node, addr) = start_node(61, |_| {}).await;

        // a peer that speaks once, then never reads what it is sent
        let mut deaf = connect_from([127, 0, 0, 6], addr).await;
        deaf.write_all(&Message::Ping.encode_frame().unwrap())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        // the node stores ~24 MiB of new records, each forwarded to its reference peers
        let who = common::identity(7);
        let mut parent: Option<String> = None;
        let mut published = 0;
        for round in 0..4 {
            let mut bodies = Vec::new();
            for i in 0..4_000 {
                let mut r = common::record(
                    &who,
                    parent.as_deref(),
                    common::TASK,
                    spore_spec::Status::Keep,
                    1.0,
                    60_000 + round * 4_000 + i,
                );
                r.description = "x".repeat(1_200);
                r.sign_with(&who);
                parent = Some(r.id.clone());
                bodies.push(Message::Experiment(r).encode_body());
            }
            published += bodies.iter().map(String::len).sum::<usize>();
            let summary = node.registry.publish_local(bodies).await.unwrap();
            assert_eq!(summary.accepted, 4_000);
        }
        assert!(published > 20 * 1024 * 1024, "{published}");

        // the deaf peer was cut off: what it can still read ends, well short of what was sent
        let mut received = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        let ended = loop {
            match tokio::time::timeout(Duration::from_secs(5), deaf.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(n)) => received += n,
                Err(_) => break false,
            }
        };
        assert!(
            ended,
            "the node kept the connection of a peer that does not read"
        );
        assert!(
            received < published / 2,
            "received {received} of {published}"
        );
        // and a new peer is served
        let mut fresh = connect_from([127, 0, 0, 7], addr).await;
        fresh
            .write_all(&Message::Ping.encode_frame().unwrap())
            .await
            .unwrap();
        let (greeting, closed) = read_for(&mut fresh, Duration::from_millis(500)).await;
        assert!(!closed && !greeting.is_empty());
        node.shutdown().await;
    });
}

/// A listener on 127.0.0.1 that counts the connections it gets (and keeps them open).
async fn counting_listener() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, count)
}

/// Connects from `source` and reads until the node's `pex_request` (its first words).
async fn greeted(source: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    let mut s = connect_from(source, to).await;
    let (messages, closed) = read_for(&mut s, Duration::from_millis(500)).await;
    assert!(!closed);
    assert!(
        messages.iter().any(|m| matches!(m, Message::PexRequest)),
        "{messages:?}"
    );
    s
}

fn pex(peers: &[&str]) -> Vec<u8> {
    Message::PexResponse {
        peers: peers.iter().map(|p| p.to_string()).collect(),
    }
    .encode_frame()
    .unwrap()
}

async fn peers_told(s: &mut TcpStream) -> Vec<String> {
    s.write_all(&Message::PexRequest.encode_frame().unwrap())
        .await
        .unwrap();
    let (messages, _) = read_for(s, Duration::from_millis(500)).await;
    messages
        .into_iter()
        .find_map(|m| match m {
            Message::PexResponse { peers } => Some(peers),
            _ => None,
        })
        .expect("a pex_response")
}

#[test]
fn pex_answers_are_taken_only_when_asked_and_local_addresses_only_when_allowed() {
    use std::sync::atomic::Ordering::SeqCst;
    actix_rt::System::new().block_on(async {
        let (asked, asked_count) = counting_listener().await;
        let (unasked, unasked_count) = counting_listener().await;
        let (local, local_count) = counting_listener().await;
        let (configured, configured_count) = counting_listener().await;

        // a node on a LAN (local peers allowed) dials what it asked for
        let (_a_dir, a, a_addr) = start_node(61, |l| l.allow_local_peers = true).await;
        let mut stranger = greeted([127, 0, 0, 2], a_addr).await;
        stranger.write_all(&pex(&[&asked])).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while asked_count.load(SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "the asked-for peer was not dialled"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // a second pex_response nobody asked for is ignored
        stranger.write_all(&pex(&[&unasked])).await.unwrap();
        // and it tells others the peer it reached
        assert_eq!(peers_told(&mut stranger).await, vec![asked]);

        // a node on the internet (the default) neither dials nor tells loopback addresses,
        // learnt (by IP or by name) or configured
        let localhost = local.replace("127.0.0.1", "localhost");
        let (_b_dir, b, b_addr) = start_node(62, |l| l.peers = vec![configured.clone()]).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while configured_count.load(SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "the configured peer was not dialled"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut other = greeted([127, 0, 0, 3], b_addr).await;
        other.write_all(&pex(&[&local, &localhost])).await.unwrap();
        assert_eq!(peers_told(&mut other).await, Vec::<String>::new());

        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(
            unasked_count.load(SeqCst),
            0,
            "an unasked pex_response was dialled"
        );
        assert_eq!(
            local_count.load(SeqCst),
            0,
            "a learnt loopback address was dialled"
        );
        a.shutdown().await;
        b.shutdown().await;
    });
}

#[test]
fn an_address_that_sent_invalid_data_is_refused_after_it_reconnects() {
    actix_rt::System::new().block_on(async {
        let (_dir, node, addr) = start_node(63, |legacy| legacy.max_offences = 2).await;
        // experiments with no fields: invalid objects, a serious offence each
        let junk = Message::PexRequest.encode_frame().unwrap();
        let mut offender = greeted([127, 0, 0, 6], addr).await;
        for i in 0..4 {
            // each different: the same bytes again are dropped unread
            let body = format!(r#"{{"type":"experiment","payload":{{"id":"x{i}"}}}}"#);
            let mut bad = (body.len() as u32).to_be_bytes().to_vec();
            bad.extend_from_slice(body.as_bytes());
            let _ = offender.write_all(&bad).await;
        }
        let (_, closed) = read_for(&mut offender, Duration::from_secs(2)).await;
        assert!(closed, "an offender's connection stayed open");
        // from a new port of the same address: closed at once, never greeted
        let mut again = connect_from([127, 0, 0, 6], addr).await;
        let _ = again.write_all(&junk).await;
        let (messages, closed) = read_for(&mut again, Duration::from_millis(700)).await;
        assert!(closed && messages.is_empty(), "{messages:?}");
        // another address is served as before
        let mut honest = greeted([127, 0, 0, 7], addr).await;
        honest.write_all(&junk).await.unwrap();
        let (messages, closed) = read_for(&mut honest, Duration::from_millis(500)).await;
        assert!(!closed);
        assert!(messages
            .iter()
            .any(|m| matches!(m, Message::PexResponse { .. })));
        node.shutdown().await;
    });
}

#[test]
fn a_request_flood_is_cut_off_at_once() {
    actix_rt::System::new().block_on(async {
        let (_dir, node, addr) = start_node(64, |legacy| {
            legacy.request_rate = 100.0;
            legacy.request_burst = 100.0;
        })
        .await;
        // pings far past the budget within a second: closed, not merely refused for seconds
        let mut flooder = greeted([127, 0, 0, 8], addr).await;
        let ping = Message::Ping.encode_frame().unwrap();
        let flood: Vec<u8> = ping
            .iter()
            .copied()
            .cycle()
            .take(ping.len() * 3_000)
            .collect();
        let started = Instant::now();
        let _ = flooder.write_all(&flood).await;
        let (_, closed) = read_for(&mut flooder, Duration::from_secs(3)).await;
        assert!(closed, "a flooding connection stayed open");
        assert!(started.elapsed() < Duration::from_secs(3));
        node.shutdown().await;
    });
}

/// Reads frames until the node's `control_sync_response` (the end of its answer), for at most
/// `wait`: the control events it sent and the count it reported, or `None` if it did not end.
async fn control_answer(
    stream: &mut TcpStream,
    wait: Duration,
) -> Option<(Vec<spore_spec::ControlEvent>, i64)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = Vec::new();
    let mut events = Vec::new();
    loop {
        let mut chunk = vec![0u8; 256 * 1024];
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while let Ok(Some((body, len))) = split_frame(&buf[at..]) {
            match Message::decode_body(body) {
                Ok(Some(Message::Control(e))) => events.push(e),
                Ok(Some(Message::ControlSyncResponse { count, .. })) => {
                    return Some((events, count))
                }
                _ => {}
            }
            at += len;
        }
        buf.drain(..at);
    }
}

#[test]
fn control_sync_answers_are_streamed_whole_and_an_address_that_keeps_asking_waits_its_turn() {
    use spore_spec::json::{object, Value};
    actix_rt::System::new().block_on(async {
        let (_dir, node, addr) = start_node(65, |_| {}).await;
        // 2,500 verifications of a record nobody has yet, half of them in one second (more than
        // a page), in an order that is neither time nor event id
        let record = "ab".repeat(32);
        let events: Vec<String> = (0..2_500u32)
            .map(|i| {
                let who =
                    spore_spec::Identity::from_seed(spore_spec::crypto::sha256(&i.to_be_bytes()));
                let s = |x: &str| Value::Str(x.into());
                let mut e = spore_spec::ControlEvent {
                    event_type: "verification".into(),
                    payload: object([
                        (
                            "event_id",
                            s(&format!("verification:{record}:{}", (i * 7_919) % 2_500)),
                        ),
                        ("experiment_id", s(&record)),
                        ("verifier_id", s(&who.node_id())),
                        ("verifier_bpb", Value::Float(1.0)),
                        ("verifier_gpu", s("CPU_X86_64")),
                    ]),
                    node_id: who.node_id(),
                    timestamp: 1_767_225_600 + if i % 2 == 0 { 500 } else { (i % 997) as i64 },
                    signature: String::new(),
                    id: String::new(),
                    version: 1,
                };
                e.sign_with(&who);
                Message::Control(e).encode_body()
            })
            .collect();
        for chunk in events.chunks(500) {
            let out = node.registry.publish_local(chunk.to_vec()).await.unwrap();
            assert_eq!(out.accepted, 500, "{out:?}");
        }
        let ask = |since: i64| {
            Message::ControlSyncRequest { since }
                .encode_frame()
                .unwrap()
        };

        // all of it, in (timestamp, event id) order; and only what is newer than `since`
        let mut peer = connect_from([127, 0, 0, 8], addr).await;
        peer.write_all(&ask(0)).await.unwrap();
        let (got, count) = control_answer(&mut peer, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!((got.len(), count), (2_500, 2_500));
        let order: Vec<(i64, String)> = got
            .iter()
            .map(|e| (e.timestamp, e.payload_str("event_id").to_string()))
            .collect();
        let bad = order.windows(2).position(|w| w[0] > w[1]);
        assert!(
            bad.is_none(),
            "not in order at {bad:?}: {:?}",
            bad.map(|i| &order[i..i + 2])
        );
        peer.write_all(&ask(1_767_225_600 + 500)).await.unwrap();
        let (newer, _) = control_answer(&mut peer, Duration::from_secs(20))
            .await
            .unwrap();
        let expected = got
            .iter()
            .filter(|e| e.timestamp > 1_767_225_600 + 500)
            .count();
        assert_eq!(newer.len(), expected);

        // an address that keeps asking (here, reconnecting each time) gets a few answers at
        // once, then waits its turn
        let mut answered = 0;
        for _ in 0..8 {
            let mut again = connect_from([127, 0, 0, 9], addr).await;
            again.write_all(&ask(0)).await.unwrap();
            if control_answer(&mut again, Duration::from_secs(20))
                .await
                .is_some()
            {
                answered += 1;
            }
        }
        assert_eq!(answered, 8);
        let mut ninth = connect_from([127, 0, 0, 9], addr).await;
        ninth.write_all(&ask(0)).await.unwrap();
        assert!(
            control_answer(&mut ninth, Duration::from_secs(2))
                .await
                .is_none(),
            "answered at once, past the address's burst"
        );
        // meanwhile another address is answered at once
        let mut other = connect_from([127, 0, 0, 10], addr).await;
        other.write_all(&ask(0)).await.unwrap();
        let (all, _) = control_answer(&mut other, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(all.len(), 2_500);
        node.shutdown().await;
    });
}
