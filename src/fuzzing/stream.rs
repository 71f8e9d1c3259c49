//! Bytes on the channel: a client's byte stream into the daemon's serve loop, and a daemon's
//! greeting into the library's start-up.

use super::{peer, Machines};
use crate::daemon::{serve, Ended, Session};
use crate::error::AccessError;
use crate::wire::{self, Record, RECORD_LEN};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

/// Inputs beyond this are cut: the peer's replies must fit the socket buffer, as nobody reads
/// them while the loop runs.
const MAX_INPUT: usize = 32 * 1024;

/// What the serve loop must answer to `input`, by the protocol: the reply frames in order, as
/// (request, whether it is a batch header), and how the session ends.
fn expected(input: &[u8]) -> (Vec<(Record, bool)>, &'static str) {
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        if rest.is_empty() {
            return (out, "eof");
        }
        let Some(head) = rest.first_chunk::<RECORD_LEN>() else { return (out, "broken") };
        let req = Record::decode(head);
        rest = &rest[RECORD_LEN..];
        if req.kind == wire::Kind::Exit.code() {
            return (out, "exit");
        }
        if req.kind != wire::Kind::Batch.code() {
            out.push((req, false));
            continue;
        }
        if req.cpu > wire::MAX_BATCH {
            out.push((wire::batch_header(0, wire::ERR_UNKNOWN), true));
            return (out, "broken");
        }
        let len = req.cpu as usize * RECORD_LEN;
        if rest.len() < len {
            return (out, "broken");
        }
        out.push((wire::batch_header(req.cpu, wire::ERR_NOERROR), true));
        out.extend(wire::decode_records(&rest[..len]).into_iter().map(|r| (r, false)));
        rest = &rest[len..];
    }
}

/// The first byte picks pinned workers for batches (bit 0) and the machine (bit 3); the rest
/// is what a client sends.
/// Every request gets exactly one reply with its addressing and a LIKWID reply code, every
/// batch its header, and the session ends as the stream says.
pub fn wire_stream(machines: &Machines, data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else { return };
    let machine = machines.pick(flags);
    let input = &input[..input.len().min(MAX_INPUT)];
    let (mut ours, mut theirs) = UnixStream::pair().expect("socketpair");
    theirs.write_all(input).expect("input fits the socket buffer");
    theirs.shutdown(Shutdown::Write).expect("shutdown");
    let mut engine = machine.engine();
    let ended = serve(&mut ours, Session::new(&mut engine, peer(), None, flags & 1 == 1), true);
    drop(ours);
    let mut replies = Vec::new();
    // A daemon that stops with requests unread resets the connection after its last reply.
    if let Err(e) = theirs.read_to_end(&mut replies) {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "reading the replies");
    }
    let (frames, how) = expected(input);
    let ended = match ended {
        Ended::Exit => "exit",
        Ended::Eof => "eof",
        Ended::Broken(_) => "broken",
    };
    assert_eq!(ended, how, "session end");
    assert_eq!(replies.len(), frames.len() * RECORD_LEN, "reply bytes for {} frames", frames.len());
    for ((req, header), got) in frames.iter().zip(wire::decode_records(&replies)) {
        if *header {
            assert_eq!(got, *req, "batch header");
            continue;
        }
        assert_eq!((got.cpu, got.reg, got.device, got.kind), (req.cpu, req.reg, req.device, req.kind), "{req:?}");
        assert!((wire::ERR_NOERROR..=wire::ERR_LOCKED).contains(&got.errorcode), "code {}", got.errorcode);
        if got.errorcode != wire::ERR_NOERROR || req.kind != wire::Kind::Read.code() {
            assert_eq!(got.data, 0, "data in a reply that carries none: {req:?} -> {got:?}");
        }
    }
}

/// What a daemon says first on the library's channel. A greeting is accepted only when it is
/// well formed; a refusal becomes a negative errno for C, whatever number the peer sent.
pub fn greeting(data: &[u8]) {
    let data = &data[..data.len().min(MAX_INPUT)];
    let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
    theirs.write_all(data).expect("input fits the socket buffer");
    theirs.shutdown(Shutdown::Write).expect("shutdown");
    match crate::client::read_greeting(&ours) {
        Ok((cpus, _)) => {
            let record = Record::decode(data.first_chunk().expect("a greeting was read"));
            let hello = wire::Greeting::from_record(&record).expect("a greeting record");
            assert_eq!((hello.version, hello.errno), (wire::PROTOCOL_VERSION, 0));
            assert_eq!(cpus.len() * 8, hello.payload_len as usize, "CPU list length");
        }
        Err(e) => {
            let errno = -AccessError::Start(e.clone()).errno();
            assert!(errno < 0, "start error {e:?} reaches C as {errno}, not a negative errno");
            assert!(!e.message.is_empty(), "start error without a message");
        }
    }
}
