//! SPDY/3.1 framing, the part of it Kubernetes' streaming protocols use (moby/spdystream on the
//! client side): SYN_STREAM/SYN_REPLY with zlib-compressed header blocks (the SPDY/3 header
//! dictionary, one compression context per direction for the whole connection), DATA with FIN,
//! RST_STREAM, PING, GOAWAY, and SETTINGS/HEADERS/WINDOW_UPDATE read and let pass.
//!
//! Header blocks this side writes are deflate "stored" blocks, each block ending in a sync flush
//! (an empty stored block, after which a reader hands out what it has): valid zlib that needs
//! neither a compressor nor the dictionary, which spdystream reads like any other.

use std::sync::OnceLock;

use flate2::{Decompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Header name/value pairs (names lowercase; a value may hold several, NUL-separated).
pub type Headers = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        headers: Headers,
        fin: bool,
    },
    SynReply {
        stream_id: u32,
        headers: Headers,
        fin: bool,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Ping(u32),
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// SETTINGS, HEADERS, WINDOW_UPDATE and unknown control frames: read, not acted on (the
    /// client sends no flow control that would hold back what this side writes).
    Other(u16),
}

const VERSION: u16 = 3;
const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status: the stream was cancelled.
pub const CANCEL: u32 = 5;

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1): the
/// words below, each preceded by its length as 4 bytes big-endian, then `DICTIONARY_TAIL`.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 ",
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 ",
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, ",
    "Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,",
    "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0."
);

pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::new();
        for w in DICTIONARY_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// The peer's header blocks: one zlib stream across the connection.
pub struct HeaderDecoder(Decompress);

impl Default for HeaderDecoder {
    fn default() -> Self {
        HeaderDecoder(Decompress::new(true))
    }
}

impl HeaderDecoder {
    fn inflate(&mut self, input: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let mut pos = 0;
        loop {
            let before = self.0.total_in();
            match self
                .0
                .decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => self
                    .0
                    .set_dictionary(dictionary())
                    .map(drop)
                    .map_err(|e| bad(format!("SPDY header dictionary: {e}")))?,
                Err(e) => return Err(bad(format!("SPDY header block: {e}"))),
            }
            pos += (self.0.total_in() - before) as usize;
            if out.len() == out.capacity() {
                out.reserve(4096);
            } else if pos >= input.len() {
                return Ok(out);
            }
        }
    }

    fn decode(&mut self, block: &[u8]) -> std::io::Result<Headers> {
        let raw = self.inflate(block)?;
        let mut at = 0usize;
        let mut take = |n: usize| -> std::io::Result<&[u8]> {
            let s = raw
                .get(at..at + n)
                .ok_or_else(|| bad("SPDY header block cut short"))?;
            at += n;
            Ok(s)
        };
        let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let count = word(take(4)?);
        let mut headers = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let n = word(take(4)?);
            let name = String::from_utf8_lossy(take(n)?).to_ascii_lowercase();
            let n = word(take(4)?);
            let value = String::from_utf8_lossy(take(n)?).into_owned();
            headers.push((name, value));
        }
        Ok(headers)
    }
}

/// A header block before compression: the pair count, then each name and value with its length.
fn plain_block(headers: &Headers) -> Vec<u8> {
    let mut raw = Vec::new();
    raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        for s in [k, v] {
            raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
            raw.extend_from_slice(s.as_bytes());
        }
    }
    raw
}

/// This side's header blocks: the zlib header once, then each block stored and flushed.
#[derive(Default)]
pub struct HeaderEncoder {
    started: bool,
}

impl HeaderEncoder {
    fn encode(&mut self, headers: &Headers) -> Vec<u8> {
        let raw = plain_block(headers);
        let mut out = Vec::with_capacity(raw.len() + 16);
        if !self.started {
            // CMF 0x78 (deflate, 32K window), FLG 0x01: no preset dictionary, check bits.
            out.extend_from_slice(&[0x78, 0x01]);
            self.started = true;
        }
        for chunk in raw.chunks(0xffff) {
            let len = chunk.len() as u16;
            out.push(0x00); // not final, stored
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(chunk);
        }
        // The sync flush: Go's inflater releases a block's bytes only here.
        out.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        out
    }

    /// The frame's bytes on the wire.
    pub fn frame(&mut self, frame: &Frame) -> Vec<u8> {
        let control = |kind: u16, flags: u8, payload: Vec<u8>| {
            let mut out = Vec::with_capacity(payload.len() + 8);
            out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
            out.extend_from_slice(&kind.to_be_bytes());
            out.push(flags);
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(&payload);
            out
        };
        let fin = |f: bool| if f { FLAG_FIN } else { 0 };
        match frame {
            Frame::SynStream {
                stream_id,
                headers,
                fin: f,
            } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
                p.extend(self.encode(headers));
                control(TYPE_SYN_STREAM, fin(*f), p)
            }
            Frame::SynReply {
                stream_id,
                headers,
                fin: f,
            } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend(self.encode(headers));
                control(TYPE_SYN_REPLY, fin(*f), p)
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(TYPE_RST_STREAM, 0, p)
            }
            Frame::Ping(id) => control(TYPE_PING, 0, id.to_be_bytes().to_vec()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let mut p = last_good_stream_id.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(TYPE_GOAWAY, 0, p)
            }
            Frame::Data {
                stream_id,
                fin: f,
                data,
            } => {
                let mut out = Vec::with_capacity(data.len() + 8);
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.push(fin(*f));
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
                out
            }
            Frame::Other(_) => Vec::new(),
        }
    }
}

/// The next frame, None at a clean end of the connection.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    headers: &mut HeaderDecoder,
) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    let fin = flags & FLAG_FIN != 0;
    let word = |at: usize| -> std::io::Result<u32> {
        payload
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| bad("SPDY control frame cut short"))
    };
    if first & 0x8000_0000 == 0 {
        return Ok(Some(Frame::Data {
            stream_id: first & 0x7fff_ffff,
            fin,
            data: payload,
        }));
    }
    let version = ((first >> 16) & 0x7fff) as u16;
    if version != VERSION {
        return Err(bad(format!("SPDY version {version} is not 3")));
    }
    let frame = match (first & 0xffff) as u16 {
        TYPE_SYN_STREAM => Frame::SynStream {
            stream_id: word(0)? & 0x7fff_ffff,
            headers: headers.decode(payload.get(10..).unwrap_or_default())?,
            fin,
        },
        TYPE_SYN_REPLY => Frame::SynReply {
            stream_id: word(0)? & 0x7fff_ffff,
            headers: headers.decode(payload.get(4..).unwrap_or_default())?,
            fin,
        },
        TYPE_RST_STREAM => Frame::RstStream {
            stream_id: word(0)? & 0x7fff_ffff,
            status: word(4)?,
        },
        TYPE_PING => Frame::Ping(word(0)?),
        TYPE_GOAWAY => Frame::GoAway {
            last_good_stream_id: word(0)? & 0x7fff_ffff,
            status: word(4)?,
        },
        other => {
            // HEADERS carries a header block: read it, or the compression context drifts.
            if other == 8 {
                headers.decode(payload.get(4..).unwrap_or_default())?;
            }
            Frame::Other(other)
        }
    };
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    #[test]
    fn dictionary_is_spdy3s() {
        // Its Adler-32, the DICTID a SPDY/3 peer's zlib header names.
        let d = dictionary();
        let (mut a, mut b) = (1u32, 0u32);
        for x in d {
            a = (a + u32::from(*x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(d.len(), 1423);
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    /// A client's blocks as spdystream writes them: compressed with the dictionary, one
    /// stream, a sync flush after each.
    fn client_block(z: &mut Compress, headers: &Headers) -> Vec<u8> {
        let plain = plain_block(headers);
        let mut out = Vec::with_capacity(plain.len() + 64);
        z.compress_vec(&plain, &mut out, FlushCompress::Sync)
            .unwrap();
        out
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(dictionary()).unwrap();
        let h1: Headers = vec![
            ("streamtype".into(), "error".into()),
            ("port".into(), "8888".into()),
            ("requestid".into(), "0".into()),
        ];
        let h2: Headers = vec![
            ("streamtype".into(), "data".into()),
            ("port".into(), "8888".into()),
            ("requestid".into(), "0".into()),
        ];
        let mut wire = Vec::new();
        for (id, h) in [(1u32, &h1), (3, &h2)] {
            let block = client_block(&mut z, h);
            let mut p = id.to_be_bytes().to_vec();
            p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            p.extend(block);
            wire.extend_from_slice(&[0x80, 3, 0, 1, 0]);
            wire.extend_from_slice(&(p.len() as u32).to_be_bytes()[1..]);
            wire.extend(p);
        }
        let mut enc = HeaderEncoder::default();
        wire.extend(enc.frame(&Frame::Data {
            stream_id: 3,
            fin: true,
            data: b"GET /".to_vec(),
        }));
        wire.extend(enc.frame(&Frame::Ping(7)));
        let mut r = wire.as_slice();
        let mut dec = HeaderDecoder::default();
        let f = read_frame(&mut r, &mut dec).await.unwrap().unwrap();
        assert_eq!(
            f,
            Frame::SynStream {
                stream_id: 1,
                headers: h1,
                fin: false
            }
        );
        let f = read_frame(&mut r, &mut dec).await.unwrap().unwrap();
        assert_eq!(
            f,
            Frame::SynStream {
                stream_id: 3,
                headers: h2,
                fin: false
            }
        );
        let f = read_frame(&mut r, &mut dec).await.unwrap().unwrap();
        assert_eq!(
            f,
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: b"GET /".to_vec()
            }
        );
        assert_eq!(
            read_frame(&mut r, &mut dec).await.unwrap(),
            Some(Frame::Ping(7))
        );
        assert_eq!(read_frame(&mut r, &mut dec).await.unwrap(), None);
        // What this side writes, read back as a peer would.
        let reply = enc.frame(&Frame::SynReply {
            stream_id: 1,
            headers: vec![],
            fin: false,
        });
        let again = enc.frame(&Frame::SynReply {
            stream_id: 3,
            headers: vec![("a".into(), "b".into())],
            fin: true,
        });
        let r = [reply, again].concat();
        let mut slice = r.as_slice();
        let mut peer = HeaderDecoder::default();
        assert_eq!(
            read_frame(&mut slice, &mut peer).await.unwrap(),
            Some(Frame::SynReply {
                stream_id: 1,
                headers: vec![],
                fin: false
            })
        );
        assert_eq!(
            read_frame(&mut slice, &mut peer).await.unwrap(),
            Some(Frame::SynReply {
                stream_id: 3,
                headers: vec![("a".into(), "b".into())],
                fin: true
            })
        );
    }
}
