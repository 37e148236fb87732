//! Bytes a well-behaved client would never send, straight onto the socket of the real
//! `thrudoc` binary: the server answers with a Thrift application exception or closes the
//! connection, never crashes, and keeps serving everyone else. Also connection limits and
//! graceful shutdown.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{error_code, ThrudocServer};
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::{ErrorCode, TThrudocSyncClient};

const T_STRING: u8 = 11;

/// A strict binary-protocol CALL message; `args` are the encoded fields (without the stop).
fn binary_call(name: &str, seqid: i32, args: &[u8]) -> Vec<u8> {
    let mut m = vec![0x80, 0x01, 0x00, 0x01];
    m.extend((name.len() as u32).to_be_bytes());
    m.extend(name.as_bytes());
    m.extend(seqid.to_be_bytes());
    m.extend(args);
    m.push(0);
    m
}

fn binary_string_field(id: i16, s: &[u8]) -> Vec<u8> {
    let mut f = vec![T_STRING];
    f.extend(id.to_be_bytes());
    f.extend((s.len() as u32).to_be_bytes());
    f.extend(s);
    f
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut f = (message.len() as u32).to_be_bytes().to_vec();
    f.extend(message);
    f
}

fn connect(server: &ThrudocServer) -> TcpStream {
    let s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one framed reply: (message type, method name).
fn read_framed_reply(s: &mut TcpStream) -> (u8, String) {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("a framed reply");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(&body[..2], &[0x80, 0x01], "strict binary reply");
    let name_len = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
    (
        body[3],
        String::from_utf8(body[8..8 + name_len].to_vec()).unwrap(),
    )
}

/// True when the server closes `s` (EOF or reset) within `within`, reading whatever it sends.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
        if start.elapsed() > within {
            return false;
        }
    }
}

fn assert_still_serving(server: &ThrudocServer) {
    for (transport, protocol) in thrudoc::client::ALL_KINDS {
        let mut c = server.client(transport, protocol);
        assert_eq!(c.get_buckets().unwrap(), vec!["data".to_string()]);
    }
}

#[test]
fn garbage_and_truncated_messages_close_only_their_connection() {
    let server = ThrudocServer::start("");
    let mut bystander = server.client(Transport::Framed, Protocol::Binary);
    bystander
        .put("data".into(), "k".into(), b"v".to_vec())
        .unwrap();

    let inputs: Vec<(&str, Vec<u8>)> = vec![
        (
            "http request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "random bytes",
            (0..200u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("bad binary version", vec![0x80, 0x02, 0, 1, 0, 0, 0, 0]),
        ("bad compact version", vec![0x82, 0xff, 0, 0]),
        ("zero-length frame", vec![0, 0, 0, 0, 0x80]),
        (
            "negative string length",
            binary_call("put", 1, &[T_STRING, 0, 1, 0xff, 0xff, 0xff, 0xf0]),
        ),
    ];
    for (name, bytes) in inputs {
        let mut s = connect(&server);
        s.write_all(&bytes).unwrap();
        assert!(
            closed_within(&mut s, Duration::from_secs(5)),
            "{name}: connection not closed"
        );
        bystander
            .put("data".into(), "k".into(), b"v".to_vec())
            .unwrap();
    }

    // A complete frame whose arguments make no sense: its end is known, so the server answers
    // with a TApplicationException and the connection goes on.
    let mut s = connect(&server);
    s.write_all(&framed(&binary_call(
        "get",
        1,
        &[99, 0, 1, 0, 0, 0, 1, b'x'],
    )))
    .unwrap();
    assert_eq!(read_framed_reply(&mut s), (3, "get".to_string()));
    s.write_all(&framed(&binary_call("getBuckets", 2, &[])))
        .unwrap();
    assert_eq!(read_framed_reply(&mut s), (2, "getBuckets".to_string()));

    // Truncated messages: half a call, then the client goes away.
    let whole = framed(&binary_call("put", 9, &binary_string_field(1, b"data")));
    for cut in [1, 3, 4, 9, whole.len() - 1] {
        let mut s = connect(&server);
        s.write_all(&whole[..cut]).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert!(
            closed_within(&mut s, Duration::from_secs(5)),
            "cut at {cut}"
        );
    }
    assert_eq!(bystander.get("data".into(), "k".into()).unwrap(), b"v");
    assert_still_serving(&server);
    assert!(
        server.stderr_text().contains("closing"),
        "refusals are logged"
    );
}

#[test]
fn oversize_frames_are_refused_before_they_are_read() {
    let server = ThrudocServer::start("MAX_FRAME_SIZE = 1048576\nDISK_MAX_VALUE_SIZE = 900000");
    let mut s = connect(&server);
    // Announce 1 GiB and send only the header: the server must refuse without waiting for it.
    s.write_all(&(1u32 << 30).to_be_bytes()).unwrap();
    s.write_all(&[0x80, 0x01, 0x00, 0x01]).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "oversize frame not refused"
    );

    // Unframed: a string length past the limit is refused as soon as it is read.
    let mut s = connect(&server);
    let mut call = binary_call("put", 1, &[]);
    call.pop();
    call.extend([T_STRING, 0, 1]);
    call.extend((64u32 << 20).to_be_bytes());
    s.write_all(&call).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "oversize string not refused"
    );

    // A value just under the limit still goes through; one just over is refused.
    let mut c = server.client(Transport::Framed, Protocol::Compact);
    c.put("data".into(), "ok".into(), vec![1; 800 * 1024])
        .unwrap();
    let mut c = server.client(Transport::Unframed, Protocol::Binary);
    assert!(c.put("data".into(), "no".into(), vec![1; 1 << 20]).is_err());
    assert_still_serving(&server);
    let mut c = server.client(Transport::Framed, Protocol::Binary);
    assert_eq!(
        error_code(c.get("data".into(), "no".into()).unwrap_err()),
        ErrorCode::NO_SUCH_KEY.0
    );
    assert!(server.stderr_text().contains("exceeds the limit"));
}

#[test]
fn unknown_methods_get_an_application_exception_and_the_connection_goes_on() {
    let server = ThrudocServer::start("");
    // Framed binary.
    let mut s = connect(&server);
    let unknown = binary_call("dropEverything", 5, &binary_string_field(1, b"data"));
    s.write_all(&framed(&unknown)).unwrap();
    assert_eq!(read_framed_reply(&mut s), (3, "dropEverything".to_string()));
    s.write_all(&framed(&binary_call("getBuckets", 6, &[])))
        .unwrap();
    assert_eq!(read_framed_reply(&mut s), (2, "getBuckets".to_string()));

    // Unframed compact: the unknown call's arguments must be skipped to find the next call.
    let mut s = connect(&server);
    let mut msg = vec![0x82, 0x21, 7, 4];
    msg.extend(b"nope");
    msg.extend([0x18, 3, b'a', b'b', b'c', 0x00]); // field 1: binary "abc"; stop
    msg.extend([0x82, 0x21, 8, 10]);
    msg.extend(b"getBuckets");
    msg.push(0x00);
    s.write_all(&msg).unwrap();
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], 0x82);
    assert_eq!(reply[1] >> 5, 3, "an EXCEPTION message first");
    // The second reply follows once the first is consumed; read to the next header.
    let mut rest: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 256];
    let start = Instant::now();
    while !rest.windows(10).any(|w| w == b"getBuckets") {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no reply to getBuckets"
        );
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed after an unknown method");
        rest.extend(&chunk[..n]);
    }
    assert_still_serving(&server);
}

#[test]
fn connections_over_the_limit_are_closed() {
    let server = ThrudocServer::start("MAX_CONNECTIONS = 2");
    let mut a = server.client(Transport::Framed, Protocol::Binary);
    let mut b = server.client(Transport::Unframed, Protocol::Compact);
    a.get_buckets().unwrap();
    b.get_buckets().unwrap();
    let mut third = connect(&server);
    assert!(
        closed_within(&mut third, Duration::from_secs(5)),
        "third connection served"
    );
    drop(a);
    common::wait_until(Duration::from_secs(10), "a free connection slot", || {
        let mut c = server.client(Transport::Framed, Protocol::Binary);
        c.get_buckets().is_ok()
    });
    b.get_buckets().unwrap();
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits() {
    let mut server = ThrudocServer::start("SHUTDOWN_TIMEOUT = 20");
    let idle = connect(&server);
    let mut busy = connect(&server);
    let call = framed(&binary_call(
        "put",
        3,
        &[
            binary_string_field(1, b"data"),
            binary_string_field(2, b"k"),
            binary_string_field(3, b"v"),
        ]
        .concat(),
    ));
    // Half a request is on the wire when the signal comes; the rest follows after it.
    busy.write_all(&call[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    busy.write_all(&call[10..]).unwrap();
    assert_eq!(read_framed_reply(&mut busy), (2, "put".to_string()));
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    let mut idle = idle;
    assert!(closed_within(&mut idle, Duration::from_secs(1)));
    assert!(TcpStream::connect(server.addr).is_err(), "listener closed");
}
