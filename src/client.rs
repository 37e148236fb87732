//! A blocking Thrudoc client over the compiler-generated bindings ([`crate::gen`]), for any
//! transport and protocol. Used by the tests and tools; Rust applications can use it too.

use std::net::SocketAddr;
use std::time::Duration;

use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol,
    TInputProtocol, TOutputProtocol,
};
use thrift::transport::{
    TBufferedReadTransport, TBufferedWriteTransport, TFramedReadTransport, TFramedWriteTransport,
    TIoChannel, TTcpChannel,
};

use crate::codec::{Protocol, Transport};
use crate::gen::thrudoc::ThrudocSyncClient;

/// The generated client with its protocols boxed, so one type serves all four combinations.
pub type Client =
    ThrudocSyncClient<Box<dyn TInputProtocol + Send>, Box<dyn TOutputProtocol + Send>>;

/// Connects to `addr` speaking `transport` and `protocol`. `timeout` bounds each read and
/// write, so a test or tool never hangs on a dead server.
pub fn connect(
    addr: SocketAddr,
    transport: Transport,
    protocol: Protocol,
    timeout: Duration,
) -> thrift::Result<Client> {
    let stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let (read, write) = TTcpChannel::with_stream(stream).split()?;
    let (input, output): (
        Box<dyn TInputProtocol + Send>,
        Box<dyn TOutputProtocol + Send>,
    ) = match (transport, protocol) {
        (Transport::Framed, Protocol::Binary) => (
            Box::new(TBinaryInputProtocol::new(
                TFramedReadTransport::new(read),
                true,
            )),
            Box::new(TBinaryOutputProtocol::new(
                TFramedWriteTransport::new(write),
                true,
            )),
        ),
        (Transport::Framed, Protocol::Compact) => (
            Box::new(TCompactInputProtocol::new(TFramedReadTransport::new(read))),
            Box::new(TCompactOutputProtocol::new(TFramedWriteTransport::new(
                write,
            ))),
        ),
        (Transport::Unframed, Protocol::Binary) => (
            Box::new(TBinaryInputProtocol::new(
                TBufferedReadTransport::new(read),
                true,
            )),
            Box::new(TBinaryOutputProtocol::new(
                TBufferedWriteTransport::new(write),
                true,
            )),
        ),
        (Transport::Unframed, Protocol::Compact) => (
            Box::new(TCompactInputProtocol::new(TBufferedReadTransport::new(
                read,
            ))),
            Box::new(TCompactOutputProtocol::new(TBufferedWriteTransport::new(
                write,
            ))),
        ),
    };
    Ok(ThrudocSyncClient::new(input, output))
}

/// The four transport/protocol pairs one port serves.
pub const ALL_KINDS: [(Transport, Protocol); 4] = [
    (Transport::Framed, Protocol::Binary),
    (Transport::Framed, Protocol::Compact),
    (Transport::Unframed, Protocol::Binary),
    (Transport::Unframed, Protocol::Compact),
];
