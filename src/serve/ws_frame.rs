//! The RFC 6455 pieces the event WebSocket needs: the handshake's accept key (SHA-1 of the
//! client's key and the protocol's GUID, in base64) and the frames — text, ping and close from
//! the server (unmasked), and the client's masked frames read back (only close and ping matter).

use base64::Engine as _;

/// The GUID every WebSocket accept key is made with (RFC 6455 section 1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Frames a client may send larger than this are refused (the server only reads control
/// frames, which are at most 125 bytes).
pub const MAX_CLIENT_FRAME: u64 = 64 * 1024;

/// `Sec-WebSocket-Accept` for the client's `Sec-WebSocket-Key`.
pub fn accept_key(client_key: &str) -> String {
    let digest = sha1(format!("{}{GUID}", client_key.trim()).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// One unmasked, unfragmented frame from the server.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A close frame with `code` (1000: normal, 1001: going away).
pub fn close(code: u16) -> Vec<u8> {
    frame(OP_CLOSE, &code.to_be_bytes())
}

/// A frame the client sent: its opcode and unmasked payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Reads one client frame from `buf`: the frame and the bytes it took, `Ok(None)` when `buf`
/// holds only part of one, or why the bytes are no WebSocket frame from a client.
pub fn parse_client(buf: &[u8]) -> Result<Option<(ClientFrame, usize)>, &'static str> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    if b1 & 0x80 == 0 {
        return Err("a client frame must be masked");
    }
    let (len, rest) = match b1 & 0x7F {
        126 => match rest {
            [a, b, tail @ ..] => (u64::from(u16::from_be_bytes([*a, *b])), tail),
            _ => return Ok(None),
        },
        127 => match rest.split_first_chunk::<8>() {
            Some((bytes, tail)) => (u64::from_be_bytes(*bytes), tail),
            None => return Ok(None),
        },
        n => (u64::from(n), rest),
    };
    if len > MAX_CLIENT_FRAME {
        return Err("a client frame larger than this server reads");
    }
    let Some((mask, rest)) = rest.split_first_chunk::<4>() else {
        return Ok(None);
    };
    let len = len as usize;
    if rest.len() < len {
        return Ok(None);
    }
    let payload = rest[..len]
        .iter()
        .enumerate()
        .map(|(i, byte)| byte ^ mask[i % 4])
        .collect();
    let used = buf.len() - rest.len() + len;
    Ok(Some((
        ClientFrame {
            opcode: b0 & 0x0F,
            payload,
        },
        used,
    )))
}

/// SHA-1 (FIPS 180-4): only for the handshake's accept key, as RFC 6455 prescribes.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut message = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bits.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_the_rfcs_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn sha1_matches_the_standard_vectors() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        // Two blocks (56 bytes of message).
        assert_eq!(
            hex(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    #[test]
    fn frames_carry_their_length_in_the_right_width() {
        assert_eq!(frame(OP_TEXT, b"hi"), [0x81, 2, b'h', b'i']);
        let mid = frame(OP_TEXT, &[b'x'; 300]);
        assert_eq!(&mid[..4], &[0x81, 126, 0x01, 0x2C]);
        assert_eq!(mid.len(), 4 + 300);
        let big = frame(OP_TEXT, &vec![b'x'; 70_000]);
        assert_eq!(big[1], 127);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70_000);
        assert_eq!(close(1000), [0x88, 2, 0x03, 0xE8]);
    }

    #[test]
    fn a_masked_client_frame_reads_back() {
        let mask = [1u8, 2, 3, 4];
        let payload: Vec<u8> = b"bye"
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        let mut bytes = vec![0x88, 0x80 | 3];
        bytes.extend_from_slice(&mask);
        bytes.extend_from_slice(&payload);
        let (f, used) = parse_client(&bytes).unwrap().unwrap();
        assert_eq!(
            (f.opcode, f.payload.as_slice(), used),
            (OP_CLOSE, &b"bye"[..], 9)
        );
        assert_eq!(parse_client(&bytes[..5]), Ok(None), "a partial frame waits");
        assert!(
            parse_client(&[0x81, 0x03, b'a', b'b', b'c']).is_err(),
            "unmasked"
        );
    }
}
