//! Fuzz target `codec`: the request-head parser and the body decoder over arbitrary bytes.
//!
//! Beyond "no panic", it checks the invariants the connection relies on:
//! - a complete head fits both the input and the head limit, and its target the target limit;
//! - `Partial` only while the input is shorter than the head limit (so no head can grow forever);
//! - every error maps to one of the statuses the server documents;
//! - the answer does not depend on how the bytes were split into reads: any prefix of the input
//!   is either still `Partial` or already the same answer as the whole;
//! - the body decoder never consumes more than it is given, takes everything it is given until the
//!   body is done, and gives the same answer fed whole or in pieces.
//!
//! Input layout: byte 0 picks the limits (small ones reach the limit paths quickly), byte 1 a
//! split point; the rest is the byte stream.

#![no_main]

use lameduck::codec::{
    BodyDecoder, BodyFraming, HeadLimits, Parse, ProtocolError, header_slots, parse,
};
use libfuzzer_sys::fuzz_target;

/// Every status a protocol error may map to (docs/design.md, "HTTP surface").
const ERROR_STATUSES: &[u16] = &[400, 408, 413, 414, 417, 431, 501, 505];

/// A parse outcome without the borrow, for comparing two parses.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Complete {
        head_len: usize,
        target: String,
        path: String,
        body: BodyFraming,
        keep_alive: bool,
        expect_continue: bool,
    },
    Partial,
    Error(ProtocolError),
}

fn outcome(buf: &[u8], limits: &HeadLimits) -> Outcome {
    let mut slots = header_slots();
    match parse(buf, &mut slots, limits) {
        Parse::Complete { request, head_len } => Outcome::Complete {
            head_len,
            target: request.target.to_string(),
            path: request.path.to_string(),
            body: request.framing,
            keep_alive: request.keep_alive,
            expect_continue: request.expect_continue,
        },
        Parse::Partial => Outcome::Partial,
        Parse::Error(e) => Outcome::Error(e),
    }
}

/// Decodes `input` in pieces of at most `step` bytes: the bytes the body took and whether it is
/// done, or its error.
fn decode(
    framing: BodyFraming,
    limit: u64,
    input: &[u8],
    step: usize,
) -> Result<(usize, bool), ProtocolError> {
    let Some(mut decoder) = BodyDecoder::new(framing, limit)? else {
        return Ok((0, true));
    };
    let mut at = 0;
    while at < input.len() {
        let end = (at + step).min(input.len());
        let progress = decoder.decode(&input[at..end])?;
        assert!(progress.consumed <= end - at, "consumed more than given");
        assert!(
            progress.done || progress.consumed == end - at,
            "an unfinished body left bytes"
        );
        at += progress.consumed;
        if progress.done {
            return Ok((at, true));
        }
    }
    Ok((at, false))
}

fn check_body(framing: BodyFraming, limit: u64, input: &[u8], split: usize) {
    let whole = decode(framing, limit, input, input.len().max(1));
    for step in [1, split.max(1)] {
        assert_eq!(
            decode(framing, limit, input, step),
            whole,
            "body decoded in steps of {step}"
        );
    }
    if let Err(e) = whole {
        assert!(ERROR_STATUSES.contains(&e.status()), "{e:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let [config, split, input @ ..] = data else {
        return;
    };
    let limits = match config % 4 {
        0 => HeadLimits {
            max_head_bytes: 8192,
            max_target_bytes: 4096,
        },
        1 => HeadLimits {
            max_head_bytes: 64,
            max_target_bytes: 16,
        },
        2 => HeadLimits {
            max_head_bytes: 256,
            max_target_bytes: 512,
        },
        _ => HeadLimits {
            max_head_bytes: 32,
            max_target_bytes: 32,
        },
    };
    let max_body = if config & 4 == 0 { 1 << 20 } else { 16 };

    let whole = outcome(input, &limits);
    match &whole {
        Outcome::Complete {
            head_len,
            target,
            path,
            body,
            ..
        } => {
            assert!(*head_len <= input.len() && *head_len <= limits.max_head_bytes);
            assert!(target.len() <= limits.max_target_bytes);
            assert!(
                target.contains(path.as_str()) || path == "/",
                "path {path:?} of {target:?}"
            );
            // The head ends exactly at `head_len`: one byte less is still partial.
            assert_eq!(outcome(&input[..head_len - 1], &limits), Outcome::Partial);
            check_body(*body, max_body, &input[*head_len..], usize::from(*split));
        }
        Outcome::Partial => assert!(input.len() < limits.max_head_bytes),
        Outcome::Error(e) => assert!(ERROR_STATUSES.contains(&e.status()), "{e:?}"),
    }
    // Split independence: the prefix the server would have seen after a first short read.
    if !input.is_empty() {
        let at = usize::from(*split) % input.len();
        let prefix = outcome(&input[..at], &limits);
        assert!(
            prefix == Outcome::Partial || prefix == whole,
            "prefix of {at} bytes: {prefix:?}; whole: {whole:?}"
        );
    }
    // The chunked decoder on its own, over the raw bytes (most of them are not heads).
    check_body(BodyFraming::Chunked, max_body, input, usize::from(*split));
});
