use super::*;

#[test]
fn the_rfc_s_examples_parse() {
    // RFC 6455 section 5.7: a single-frame masked text message "Hello".
    let masked = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let h = parse_header(&masked).unwrap().unwrap();
    assert_eq!(
        h,
        Header {
            fin: true,
            opcode: Opcode::Text,
            mask: Some([0x37, 0xfa, 0x21, 0x3d]),
            len: 5,
            header_len: 6,
        }
    );
    let mut payload = masked[6..].to_vec();
    apply_mask(&mut payload, h.mask.unwrap(), 0);
    assert_eq!(payload, b"Hello");
    // Its unmasked form, as a server sends it.
    let mut out = Vec::new();
    encode_frame(&mut out, Opcode::Text, None, b"Hello");
    assert_eq!(out, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
    let mut out = Vec::new();
    encode_frame(
        &mut out,
        Opcode::Text,
        Some([0x37, 0xfa, 0x21, 0x3d]),
        b"Hello",
    );
    assert_eq!(out, masked);
    // A fragmented unmasked text message: "Hel", "lo".
    let h = parse_header(&[0x01, 0x03, b'H', b'e', b'l'])
        .unwrap()
        .unwrap();
    assert!(!h.fin && h.opcode == Opcode::Text);
    let h = parse_header(&[0x80, 0x02, b'l', b'o']).unwrap().unwrap();
    assert!(h.fin && h.opcode == Opcode::Continuation);
}

#[test]
fn every_length_form_round_trips_at_its_boundaries() {
    for len in [0usize, 1, 125, 126, 127, 65_535, 65_536, 100_000] {
        for mask in [None, Some([1, 2, 3, 4])] {
            let mut out = Vec::new();
            encode_header(&mut out, true, Opcode::Binary, mask, len);
            assert_eq!(out.len(), header_len(len, mask.is_some()), "len {len}");
            let h = parse_header(&out).unwrap().unwrap();
            assert_eq!((h.len, h.header_len, h.mask), (len as u64, out.len(), mask));
            // Every shorter prefix is incomplete, never an error.
            for cut in 0..out.len() {
                assert_eq!(parse_header(&out[..cut]), Ok(None), "len {len} cut {cut}");
            }
        }
    }
}

#[test]
fn headers_that_can_never_be_valid_are_errors() {
    assert_eq!(parse_header(&[0xC1, 0x80]), Err(FrameError::Reserved));
    assert_eq!(
        parse_header(&[0x83, 0x80]),
        Err(FrameError::UnknownOpcode(3))
    );
    assert_eq!(
        parse_header(&[0x8B, 0x80]),
        Err(FrameError::UnknownOpcode(0xB))
    );
    // A fragmented ping, a ping of 126 bytes.
    assert_eq!(parse_header(&[0x09, 0x80]), Err(FrameError::BadControl));
    assert_eq!(
        parse_header(&[0x89, 0xFE, 0, 126]),
        Err(FrameError::BadControl)
    );
    let mut huge = vec![0x82, 0xFF];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(parse_header(&huge), Err(FrameError::BadLength));
}

#[test]
fn close_frames_carry_a_code_and_a_reason_cut_to_fit() {
    let mut out = Vec::new();
    encode_close(&mut out, 1008, "replaced", None);
    let h = parse_header(&out).unwrap().unwrap();
    assert_eq!(h.opcode, Opcode::Close);
    assert_eq!(
        parse_close(&out[h.header_len..]),
        Ok(Some((1008, "replaced")))
    );
    let mut out = Vec::new();
    encode_close(&mut out, 1000, &"x".repeat(300), None);
    assert_eq!(out.len(), 2 + MAX_CONTROL);
    assert_eq!(parse_close(b""), Ok(None));
    assert!(parse_close(b"\x03").is_err());
    assert!(parse_close(b"\x03\xe8\xff").is_err());
    // Every reason has a code in the ranges a server may send.
    for r in CloseReason::ALL {
        assert!((1000..=1013).contains(&close_code(r)), "{r}");
    }
}

const GOOD: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn a_browser_s_request_is_accepted_and_answered() {
    let (req, used) = parse_request(GOOD).unwrap().unwrap();
    assert_eq!(used, GOOD.len());
    assert_eq!(req.key, b"dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(req.origin, Some(&b"http://example.com"[..]));
    for cut in 0..GOOD.len() {
        assert_eq!(parse_request(&GOOD[..cut]), Ok(None), "cut {cut}");
    }
    let mut out = Vec::new();
    write_accept(&mut out, req.key);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 101 "));
    assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(text.ends_with("\r\n\r\n"));
}

#[test]
fn requests_that_are_not_websocket_upgrades_are_refused_with_their_status() {
    let swap = |from: &str, to: &str| {
        String::from_utf8(GOOD.to_vec())
            .unwrap()
            .replace(from, to)
            .into_bytes()
    };
    let status = |input: &[u8]| parse_request(input).map(|_| ()).map_err(|e| e.status().0);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Err(400));
    assert_eq!(status(&swap("GET", "POST")), Err(400));
    assert_eq!(status(&swap("HTTP/1.1", "HTTP/1.0")), Err(400));
    assert_eq!(
        status(&swap("Upgrade: websocket", "Upgrade: h2c")),
        Err(400)
    );
    assert_eq!(status(&swap("Version: 13", "Version: 8")), Err(426));
    assert_eq!(status(&swap("dGhlIHNhbXBsZSBub25jZQ==", "short")), Err(400));
    assert_eq!(status(b"\x16\x03\x01\x02\x00garbage\r\n\r\n"), Err(400));
    let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
    long.resize(MAX_REQUEST, b'a');
    assert_eq!(status(&long), Err(431));
    let mut out = Vec::new();
    write_refusal(&mut out, HandshakeError::BadVersion.status(), "version");
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"));
    assert!(text.ends_with("\r\n\r\nversion\n"));
}
