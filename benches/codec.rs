//! Micro-benchmark of the codec on fixed request fixtures: parse a head, encode a response.
//! Runs on stable (`cargo bench --bench codec`), no bench framework: each case is timed over
//! several rounds and the median ns per operation is printed.

use std::hint::black_box;
use std::time::Instant;

use lameduck::codec::{
    BodyDecoder, BodyFraming, DateCache, HeadLimits, Parse, Persistence, Response, Version, encode,
    header_slots, parse,
};

/// What wrk sends.
const REQ_WRK: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n";

/// A browser-sized request: about 700 bytes and a dozen headers.
const REQ_BROWSER: &[u8] = b"GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n\
Host: www.kittyhell.com\r\n\
User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.6; ja-JP-mac; rv:1.9.2.3) Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n\
Accept-Encoding: gzip,deflate\r\n\
Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n\
Keep-Alive: 115\r\n\
Connection: keep-alive\r\n\
Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; __utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; __utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|utmcct=/reader/|utmcmd=referral\r\n\r\n";

const CHUNKED_BODY: &[u8] =
    b"10;name=value\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n";

const ROUNDS: usize = 7;
const ITERATIONS: u32 = 200_000;

fn bench(name: &str, bytes: usize, mut op: impl FnMut()) {
    let mut samples: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERATIONS {
                op();
            }
            start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let median = samples[ROUNDS / 2];
    let throughput = if bytes > 0 {
        format!("{:8.0} MB/s", bytes as f64 / median * 1e3)
    } else {
        String::new()
    };
    println!("{name:<28} {median:8.1} ns/op {throughput}");
}

fn main() {
    let limits = HeadLimits {
        max_head_bytes: 8192,
        max_target_bytes: 4096,
    };
    for (name, req) in [("parse/wrk", REQ_WRK), ("parse/browser", REQ_BROWSER)] {
        bench(name, req.len(), || {
            let mut slots = header_slots();
            match parse(black_box(req), &mut slots, &limits) {
                Parse::Complete { head_len, .. } => {
                    black_box(head_len);
                }
                _ => panic!("fixture must parse"),
            }
        });
    }

    // httparse alone, as the floor our validation adds to.
    for (name, req) in [("httparse/wrk", REQ_WRK), ("httparse/browser", REQ_BROWSER)] {
        bench(name, req.len(), || {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut request = httparse::Request::new(&mut headers);
            black_box(request.parse(black_box(req)).is_ok());
        });
    }

    let date = DateCache::default();
    let hello = Response::text(200, "Hello, World!");
    let mut out = Vec::with_capacity(4096);
    bench("encode/hello", 0, || {
        out.clear();
        encode(
            &mut out,
            black_box(&hello),
            false,
            Persistence::KeepAlive(Version::Http11),
            date.value(),
        );
        black_box(out.len());
    });

    bench("body/chunked", CHUNKED_BODY.len(), || {
        let mut decoder = BodyDecoder::new(BodyFraming::Chunked, 1 << 20)
            .ok()
            .flatten()
            .expect("chunked decoder");
        let progress = decoder.decode(black_box(CHUNKED_BODY)).expect("valid body");
        assert!(progress.done);
    });

    let mut cache = DateCache::default();
    bench("date/cached", 0, || {
        cache.update(black_box(std::time::SystemTime::now()));
        black_box(cache.value());
    });
}
